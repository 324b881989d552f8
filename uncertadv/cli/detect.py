"""``uncertadv detect fit|run``: a threshold on an uncertainty measure, fitted on clean data."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import (
    SAMPLES_TABLE,
    ClassesOption,
    ColorModeOption,
    ImageSizeOption,
    MeasureChoice,
    OneLineErrors,
    PredictorName,
    data_options,
    echo,
    quiet_tensorflow,
)

detect_app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="A deployable detector: flag inputs whose uncertainty is above a threshold fitted on clean data.",
)

ModelFile = Annotated[Path, typer.Option(help="A .keras classifier or an ensemble manifest (.json).")]
DataSpec = Annotated[
    str,
    typer.Option(
        help="An .npz with 'x' [N, ...] (uint8 0-255, or float in the model's scale), an attack set .npz (its "
        "x_adv), a folder of class subfolders of images (detect run: any folder of images, flat too), or "
        "tfds:NAME[:SPLIT]."
    ),
]


RUN_WRITER = "detect run"  # the command whose flag tables (and their sidecars) detect run may overwrite


class Rule(str, Enum):
    empirical = "empirical"
    conformal = "conformal"


class Tail(str, Enum):
    upper = "upper"
    lower = "lower"
    two_sided = "two-sided"


def _load(model: Path, data: str, options: dict):
    """``(models, x, info)``: the model file's models and --data, checked against its contract."""
    quiet_tensorflow()
    from uncertadv import io, mc, own_data

    models = mc.check_models(io.load_classifier(model), options["from_logits"])
    x, _, info = own_data.load_for_model(options, models[0])
    if info.get("array") == "x_adv":
        echo(f"reading the adversarial images (x_adv) of the attack set {data}")
    return models, x, info


@detect_app.command("fit")
def fit(
    model: ModelFile,
    data: DataSpec,
    out: Annotated[Path, typer.Option(help="Detector file to write (.json).")],
    measure: Annotated[
        MeasureChoice, typer.Option(help="Uncertainty measure; higher = more uncertain.")
    ] = MeasureChoice.mutual_information,
    fpr: Annotated[float, typer.Option(help="Target false-positive rate on the clean data, in (0, 1).")] = 0.05,
    rule: Annotated[
        Rule,
        typer.Option(
            help="empirical: at most FPR of the fitting data flagged; conformal: FPR <= target out of sample "
            "(the ceil((1 - fpr)(M + 1))-th smallest of M clean scores)."
        ),
    ] = Rule.empirical,
    tail: Annotated[
        Tail,
        typer.Option(
            help="upper: flag scores above the threshold; lower: below it (inputs more certain than clean ones); "
            "two-sided: either, FPR/2 on each tail."
        ),
    ] = Tail.upper,
    predictor: Annotated[
        PredictorName, typer.Option(help="deterministic, mc or ensemble (needs a manifest).")
    ] = PredictorName.mc,
    samples: Annotated[int, typer.Option(min=1, help=SAMPLES_TABLE)] = 20,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed (>= 0) of the detector's dropout networks. It is not a key: an attacker with the "
            "weights samples from the same dropout distribution."
        ),
    ] = 0,
    pixel_max: Annotated[
        float,
        typer.Option(help="The model's input scale: 1.0, or 255 for models that take 0-255 (recorded in the file)."),
    ] = 1.0,
    image_size: ImageSizeOption = None,
    classes: ClassesOption = None,
    color_mode: ColorModeOption = None,
    from_logits: Annotated[bool, typer.Option(help="The model outputs logits, not probabilities.")] = False,
) -> None:
    """Fit the threshold on clean data (--data) at the target false-positive rate and save the detector,
    with its input contract (shape, pixel scale), its model (relative path and hashes) and provenance."""
    if not 0 < fpr < 1:
        raise ValueError(f"--fpr must be in (0, 1), got {fpr:g}")
    if out.suffix != ".json":
        raise ValueError(f"--out must end in .json, got {out.name}")
    started = time.perf_counter()
    from uncertadv import detector as detectors
    from uncertadv.detector import Detector

    if out.exists() and not detectors.is_detector_file(out):  # refit a detector (any format), nothing else
        raise ValueError(f"--out {out} exists and is not a detector file; choose another name")

    options = data_options(data, pixel_max, image_size, from_logits, classes, color_mode)
    models, x, info = _load(model, data, options)
    detector = Detector(models, measure.value, predictor=predictor.value, samples=samples, seed=seed, from_logits=from_logits,
                        pixel_max=pixel_max, tail=tail.value)  # fmt: skip
    detector.fit(x, fpr, rule=rule.value)
    fit_data = {"data": data, "n": len(x), "data_sha256": info["data_sha256"],
                **({"class_labels": info["classes"]} if "classes" in info else {})}  # fmt: skip
    detector.save(out, model_file=model, fit_data=fit_data, started=started)
    echo(f"wrote {out}")
    typer.echo(
        f"flags {measure.value} {_range(detector)} ({rule.value} rule): "
        f"{detector.fit_record['fit_fpr']:.3f} of the {len(x)} clean inputs (target {fpr:g})"
    )


@detect_app.command("run")
def run(
    detector: Annotated[Path, typer.Option(help="A detector file from `uncertadv detect fit` or Detector.save.")],
    data: DataSpec,
    out: Annotated[
        Path,
        typer.Option(
            help="CSV to write: file (a folder's images, relative to --data) or index (an .npz or tfds), "
            "prediction, score, flagged; OUT.json beside it records the detector and the data."
        ),
    ],
    model: Annotated[
        Optional[Path],
        typer.Option(
            help="The detector's model (default: the file it names, relative to itself); refused if its weights "
            "or configuration differ from the ones it was fitted on.",
            show_default=False,
        ),
    ] = None,
    pixel_max: Annotated[
        Optional[float],
        typer.Option(
            help="The model's input scale (default: the detector's; another value is refused).", show_default=False
        ),
    ] = None,
    image_size: ImageSizeOption = None,
    classes: ClassesOption = None,
    color_mode: ColorModeOption = None,
) -> None:
    """Flag the inputs of --data with a saved detector, on the inputs its contract says it takes. A folder of
    images may be flat or hold subfolders: no labels are read."""
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, got {out.name}")
    if classes:
        raise ValueError("detect run reads no labels; --classes orders class subfolders, which it does not need")
    quiet_tensorflow()
    from uncertadv import artifacts, measures, predictors
    from uncertadv import detector as detectors
    from uncertadv.detector import Detector

    if not detector.is_file():
        raise ValueError(f"no detector file at {detector}")
    record = detectors.read(detector)
    stored = record["input"]["pixel_max"]
    if stored is None:
        raise ValueError(f"{detector} takes inputs in another scale than images (pixel_max None); use it from Python")
    if pixel_max is not None and pixel_max != stored:
        raise ValueError(f"--pixel-max {pixel_max:g} contradicts the detector, which was fitted on inputs in "
                         f"[0, {stored}]; leave --pixel-max out")  # fmt: skip
    if model is None:
        if "model" not in record:
            raise ValueError(f"{detector} does not name its model file; give it with --model")
        model = (
            (detector.parent / record["model"]) if not Path(record["model"]).is_absolute() else Path(record["model"])
        )
        if not model.is_file():
            raise ValueError(f"the model file {model} of {detector} is missing; give it with --model")
    artifacts.check_overwrite(out, RUN_WRITER)  # before any work: never a detector at OUT.json, never another CSV
    started = time.perf_counter()
    options = {**data_options(data, stored, image_size, record.get("from_logits", False), None, color_mode),
               "unlabelled": True}  # fmt: skip
    try:
        models, x, info = _load(model, data, options)
    except ValueError as err:  # the scale is the detector's: say so rather than suggest --pixel-max
        text = str(err)
        if "--pixel-max" in text:  # keep both remedies, in terms of the detector
            text = (text.rsplit(": ", 1)[0] + f": the detector was fitted on inputs in [0, {stored:g}]; divide the "
                    "images by 255, or fit a detector with --pixel-max 255 if the model takes 0-255")  # fmt: skip
        raise ValueError(text) from None
    det = Detector.load(detector, models)
    probs = predictors.predict(models, x, predictor=det.predictor, samples=det.samples, seed=det.seed,
                               from_logits=det.from_logits, pixel_max=det.pixel_max)  # fmt: skip
    scores = getattr(measures, det.measure)(probs)
    flagged = det.flags(scores)
    where = {"file": info["files"]} if "files" in info else {"index": range(len(x))}
    artifacts.write_csv(out, {**where, "prediction": probs.mean(axis=0).argmax(axis=-1), "score": scores,
                              "flagged": flagged.astype(int)})  # fmt: skip
    config = {"detector": str(detector), "detector_sha256": artifacts.file_sha256(detector), "data": data,
              "data_sha256": info["data_sha256"], "n": len(x), "measure": det.measure}  # fmt: skip
    artifacts.write_json(artifacts.sidecar_path(out), artifacts.record(
        config, started, writer=RUN_WRITER, flagged_share=float(flagged.mean())))  # fmt: skip
    echo(f"wrote {out} and {artifacts.sidecar_path(out).name}")
    typer.echo(f"flagged {flagged.mean():.3f} of {len(x)} inputs ({det.measure} {_range(det)})")


def _range(detector) -> str:
    """When the detector flags, as text: ``> 0.1``, ``< 0.001`` or ``outside [0.001, 0.1]``."""
    if detector.lower_threshold is None:
        return f"> {detector.threshold:.6g}"
    if detector.threshold is None:
        return f"< {detector.lower_threshold:.6g}"
    return f"outside [{detector.lower_threshold:.6g}, {detector.threshold:.6g}]"
