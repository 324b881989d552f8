"""``uncertadv detect fit|run``: a threshold on an uncertainty measure, fitted on clean data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uncertadv.cli._common import OneLineErrors, PredictorName, echo, quiet_tensorflow

detect_app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="A deployable detector: flag inputs whose uncertainty is above a threshold fitted on clean data.",
)

ModelFile = Annotated[Path, typer.Option(help="A .keras classifier or an ensemble manifest (.json).")]
DataFile = Annotated[Path, typer.Option(help="An .npz with 'x' [N, ...] (uint8 0-255, or float in the model's scale).")]
PixelMax = Annotated[float, typer.Option(help="The model's input scale: 1.0, or 255 for models that take 0-255.")]


def _models(model: Path, data: Path, pixel_max: float, from_logits: bool):
    quiet_tensorflow()
    from uncertadv import data as loaders
    from uncertadv import io, mc

    models = io.load_classifier(model)
    x, _ = loaders.load_npz(data, pixel_max)
    models = mc.check_models(models, from_logits)
    mc.check_input(models[0], x)
    return models, x


@detect_app.command("fit")
def fit(
    model: ModelFile,
    data: DataFile,
    out: Annotated[Path, typer.Option(help="Detector file to write (.json).")],
    measure: Annotated[str, typer.Option(help="Uncertainty measure; higher = more uncertain.")] = "mutual_information",
    fpr: Annotated[float, typer.Option(help="Target false-positive rate on the clean data, in (0, 1).")] = 0.05,
    predictor: Annotated[
        PredictorName, typer.Option(help="deterministic, mc or ensemble (needs a manifest).")
    ] = PredictorName.mc,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T per network.")] = 20,
    seed: Annotated[
        int, typer.Option(help="Seed of the detector's dropout networks (keep it secret in deployment).")
    ] = 0,
    pixel_max: PixelMax = 1.0,
    from_logits: Annotated[bool, typer.Option(help="The model outputs logits, not probabilities.")] = False,
) -> None:
    """Fit the threshold on clean data (--data) at the target false-positive rate and save the detector."""
    if not 0 < fpr < 1:
        raise ValueError(f"--fpr must be in (0, 1), got {fpr:g}")
    if out.suffix != ".json":
        raise ValueError(f"--out must end in .json, got {out.name}")
    from uncertadv.detector import Detector

    models, x = _models(model, data, pixel_max, from_logits)
    detector = Detector(models, measure, predictor=predictor.value, samples=samples, seed=seed, from_logits=from_logits)
    detector.fit(x, fpr)
    detector.save(out, model_file=model)
    echo(f"wrote {out}")
    typer.echo(
        f"{measure} threshold {detector.threshold:.6g}: flags {detector.fit_record['fit_fpr']:.3f} of the "
        f"{len(x)} clean inputs (target {fpr:g})"
    )


@detect_app.command("run")
def run(
    detector: Annotated[Path, typer.Option(help="A detector file from `uncertadv detect fit`.")],
    data: DataFile,
    out: Annotated[Path, typer.Option(help="CSV to write: index, prediction, score, flagged.")],
    pixel_max: PixelMax = 1.0,
) -> None:
    """Flag the inputs of --data with a saved detector; refuses a detector whose model has changed."""
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, got {out.name}")
    from uncertadv import artifacts, predictors
    from uncertadv.detector import Detector

    record = artifacts.read_json(detector)
    if "model" not in record:
        raise ValueError(f"{detector} does not name its model file; fit it with `uncertadv detect fit`")
    model = Path(record["model"])
    if not model.is_file() or artifacts.file_sha256(model) != record.get("model_sha256"):
        raise ValueError(f"the model file {model} of {detector} is missing or has changed; fit the detector again")
    models, x = _models(model, data, pixel_max, record.get("from_logits", False))
    det = Detector.load(detector, models)
    probs = predictors.predict(models, x, predictor=det.predictor, samples=det.samples, seed=det.seed,
                               from_logits=det.from_logits)  # fmt: skip
    from uncertadv import measures

    scores = getattr(measures, det.measure)(probs)
    flagged = scores > det.threshold
    artifacts.write_csv(out, {"index": range(len(x)), "prediction": probs.mean(axis=0).argmax(axis=-1),
                              "score": scores, "flagged": flagged.astype(int)})  # fmt: skip
    echo(f"wrote {out}")
    typer.echo(f"flagged {flagged.mean():.3f} of {len(x)} inputs ({det.measure} > {det.threshold:.6g})")
