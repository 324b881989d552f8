"""``uncertadv score``: a test set's MC and deterministic predictions and the five measures, as a CSV."""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from uncertadv import artifacts, data, inputs, io, mc, own_data, predictors
from uncertadv.measures import MEASURES

COLUMNS = ("index", "label", "mc_pred", "det_pred") + MEASURES


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """What determines a score table (recorded in its sidecar)."""

    model: str
    dataset: str | None = "mnist"  # None with ``data`` (your own data)
    source: str | None = "auto"
    samples: int = 50
    seed: int = 0
    limit: int | None = None
    data: dict | None = None  # your own data (--data): {"spec", "pixel_max", "image_size", ...}; replaces dataset


def score_arrays(
    models: list, x: np.ndarray, *, samples: int, seed: int, batch_size: int | None = None, from_logits: bool = False,
    pixel_max: float | None = 1.0,
) -> dict[str, np.ndarray]:  # fmt: skip
    """MC and deterministic predictions and the MC measures of ``x [N, ...]``: ``[N]`` columns.
    A list of K models is scored as one ensemble (K * T networks; dropout off: their mean).
    A single model without dropout has T identical networks, and T = 1 one network: the sample-based
    measures are then NaN ("not applicable"), never 0."""
    predictor = "ensemble" if len(models) > 1 else "mc"
    with warnings.catch_warnings():  # score_test_set says it once, with what it means for the table
        warnings.filterwarnings("ignore", message=".*has no dropout layer")
        probs = _predict(models, x, predictor, samples, seed, batch_size, from_logits, pixel_max)
    det = mc.deterministic_predict(models, x, from_logits=from_logits, pixel_max=pixel_max)
    values = predictors.scores(probs, predictor=predictor if predictors.sampled(models, predictor, samples)
                               else "deterministic")  # fmt: skip
    return {
        "mc_pred": probs.mean(axis=0).argmax(axis=-1),
        "det_pred": det.mean(axis=0).argmax(axis=-1),
        **{m: values[m] for m in MEASURES},
    }


def _predict(models, x, predictor, samples, seed, batch_size, from_logits, pixel_max):
    return predictors.predict(
        models,
        x,
        predictor=predictor,
        samples=samples,
        seed=seed,
        batch_size=batch_size,
        from_logits=from_logits,
        desc=f"MC scoring (T={samples})",
        pixel_max=pixel_max,
    )


WRITER = "score"  # the command whose files score_test_set may overwrite
ONE_NETWORK_WARNING = (
    "warning: {reason}, so only predictive entropy is defined; expected entropy, mutual information, "
    "softmax variance and variation ratio are written as empty cells (n/a), not 0"
)


def score_test_set(config: ScoreConfig, out: Path, *, batch_size: int | None = None, force: bool = False):
    """Score the test split of ``config.dataset`` (or ``config.data``) into ``out`` (CSV + JSON sidecar).

    Returns ``(columns, reused)``; a finished table with the same config, model file and data
    contents is read back instead of recomputed unless ``force``."""
    if config.samples < 1:
        raise ValueError(f"samples must be >= 1, got {config.samples}")
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, got {out.name}")
    model_path = Path(config.model)
    if not model_path.is_file():
        raise ValueError(f"no model file at {model_path}")
    from_logits = (config.data or {}).get("from_logits", False)
    model = mc.check_models(io.load_classifier(model_path), from_logits)
    pixel_max = 1.0
    if config.data is not None:
        x, y, info = own_data.load_for_model(config.data, model[0])
        pixel_max = config.data["pixel_max"]
    else:
        x, y = data.load(config.dataset, "test", config.source)
        info = {}
    x, y = x[: config.limit], (None if y is None else y[: config.limit])
    kind = "ensemble" if len(model) > 1 else "mc"
    if not predictors.sampled(model, kind, config.samples):
        print(ONE_NETWORK_WARNING.format(reason=predictors.one_network_reason(model, kind, config.samples)),
              file=sys.stderr)  # fmt: skip
    record_path = artifacts.sidecar_path(out)
    # nothing already saved is lost: NAME.json may be a manifest or a detector, NAME.csv another command's table
    artifacts.check_overwrite(out, WRITER, legacy=lambda record: "model_sha256" in record.get("config", {}))
    want = {**dataclasses.asdict(config), "model_sha256": artifacts.file_sha256(model_path),
            "data_sha256": inputs.data_sha256(x, y)}  # fmt: skip
    if "classes" in info:
        want["class_labels"] = info["classes"]
    if not force and artifacts.reusable_record(record_path, want, [out]) is not None:
        return read_scores(out), True
    start = time.perf_counter()
    columns = {
        "index": np.arange(len(x)),
        "label": np.full(len(x), np.nan) if y is None else y,  # no labels: the column stays empty
        **score_arrays(
            model,
            x,
            samples=config.samples,
            seed=config.seed,
            batch_size=batch_size,
            from_logits=from_logits,
            pixel_max=pixel_max,
        ),  # fmt: skip
    }
    columns = {name: columns[name] for name in COLUMNS}
    artifacts.write_csv(out, columns)
    artifacts.write_json(record_path, artifacts.record(want, start, writer=WRITER))
    return columns, False


def read_scores(path: Path) -> dict[str, np.ndarray]:
    """A score table written by ``score_test_set``, as typed columns."""
    table = artifacts.read_table(path)
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path} is not a score table (missing {', '.join(missing)})")
    return {c: table[c] for c in COLUMNS}


def summary(columns: dict[str, np.ndarray], config: ScoreConfig) -> str:
    """Accuracy and the mean of each measure on correct vs misclassified inputs (MC prediction)."""
    label = np.asarray(columns["label"], dtype=np.float64)
    source = config.data["spec"] if config.data else f"{config.dataset} test"
    head = f"{source}, {len(label)} images, T={config.samples}, seed={config.seed}"
    if np.isnan(label).all():  # no labels: accuracy omitted
        lines = [head, "accuracy: n/a (the data has no labels)", f"{'measure':<20} {'mean':>15}"]
        lines += [f"{name:<20} {_mean(columns[name]):>15}" for name in MEASURES]
        return "\n".join(lines + [NOTE])
    correct = columns["mc_pred"] == label
    lines = [
        head,
        f"accuracy: deterministic {np.mean(columns['det_pred'] == label):.4f}, MC {np.mean(correct):.4f}",
        f"{'measure':<20} {'mean (correct)':>15} {'mean (wrong)':>13}",
    ]
    for name in MEASURES:
        values = columns[name]
        lines.append(f"{name:<20} {_mean(values[correct]):>15} {_mean(values[~correct]):>13}")
    return "\n".join(lines + [NOTE])


NOTE = "Entropies are in nats; n/a: not applicable (one distinct network: no dropout, or T = 1), never 0."


def _mean(values: np.ndarray) -> str:
    if len(values) == 0:
        return "-"
    return "n/a" if np.isnan(values).all() else f"{np.mean(values):.4f}"
