"""Scoring inputs: MC and deterministic predictions plus the five measures, as a CSV."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, data, mc
from uncertadv.measures import MEASURES, all_measures

COLUMNS = ("index", "label", "mc_pred", "det_pred") + MEASURES


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """What determines a score table (recorded in its sidecar)."""

    model: str
    dataset: str = "mnist"
    source: str = "auto"
    samples: int = 50
    seed: int = 0
    limit: int | None = None


MODES = ("deterministic", "mc", "ensemble")


def model_probs(models: list, x: np.ndarray, *, mode: str, samples: int, seed: int, batch_size: int | None = None,
                desc: str | None = None) -> np.ndarray:
    """``[S, N, C]`` predictions of one of three models built from ``models``:
    deterministic (first model, dropout off, S = 1), mc (first model, S = T) or
    ensemble (every model, S = K * T)."""
    if mode == "deterministic":
        return mc.deterministic_predict(models[0], x, desc=desc)
    if mode == "mc":
        return mc.mc_predict(models[0], x, samples=samples, seed=seed, batch_size=batch_size, desc=desc)
    if mode == "ensemble":
        return mc.mc_predict(models, x, samples=samples, seed=seed, batch_size=batch_size, desc=desc)
    raise ValueError(f"unknown model {mode!r}; choose from {', '.join(MODES)}")


def measures_of(probs: np.ndarray, *, deterministic: bool) -> dict[str, np.ndarray]:
    """The five measures of ``probs [S, N, C]`` plus ``pred`` and ``confidence`` (max p̂).

    A deterministic model has one network, so only predictive entropy is defined; the
    sample-based measures are NaN ("not applicable", written as empty cells), never 0."""
    mean = probs.mean(axis=0)
    out = {"pred": mean.argmax(axis=-1), "confidence": mean.max(axis=-1)}
    values = all_measures(probs)
    if deterministic:
        values = {k: (v if k == "predictive_entropy" else np.full_like(v, np.nan)) for k, v in values.items()}
    return {**out, **values}


def score_arrays(model, x: np.ndarray, *, samples: int, seed: int, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Predictions and MC measures of ``x [N, ...]``: a dict of ``[N]`` columns."""
    probs = mc.mc_predict(model, x, samples=samples, seed=seed, batch_size=batch_size, desc=f"MC scoring (T={samples})")
    det = mc.deterministic_predict(model, x)
    return {
        "mc_pred": probs.mean(axis=0).argmax(axis=-1),
        "det_pred": det.mean(axis=0).argmax(axis=-1),  # an ensemble averages its members
        **all_measures(probs),
    }


def score_test_set(config: ScoreConfig, out: Path, *, batch_size: int | None = None, force: bool = False):
    """Score the test split of ``config.dataset`` into ``out`` (CSV + JSON sidecar).

    Returns ``(columns, reused)``; a finished table with the same config and model
    file is read back instead of recomputed unless ``force``."""
    from uncertadv.train import load_classifier

    if config.samples < 1:
        raise ValueError(f"samples must be >= 1, got {config.samples}")
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, got {out.name}")
    model_path = Path(config.model)
    if not model_path.is_file():
        raise ValueError(f"no model file at {model_path}")
    record_path = artifacts.sidecar_path(out)
    want = {**dataclasses.asdict(config), "model_sha256": artifacts.file_sha256(model_path)}
    if not force and out.is_file() and record_path.is_file():
        if artifacts.read_json(record_path).get("config") == want:
            return read_scores(out), True

    model = load_classifier(model_path)
    x, y = data.load(config.dataset, "test", config.source)
    x, y = x[: config.limit], y[: config.limit]
    start = time.perf_counter()
    columns = {"index": np.arange(len(y)), "label": y, **score_arrays(model, x, samples=config.samples, seed=config.seed, batch_size=batch_size)}
    columns = {name: columns[name] for name in COLUMNS}
    artifacts.write_csv(out, columns)
    artifacts.write_json(
        record_path,
        {
            "command": artifacts.command_line(),
            "config": want,
            "versions": artifacts.versions(),
            "wall_seconds": round(time.perf_counter() - start, 2),
        },
    )
    return columns, False


def read_scores(path: Path) -> dict[str, np.ndarray]:
    raw = artifacts.read_csv(path)
    missing = [c for c in COLUMNS if c not in raw]
    if missing:
        raise ValueError(f"{path} is not a score table (missing {', '.join(missing)})")
    ints = ("index", "label", "mc_pred", "det_pred")
    return {c: np.asarray(raw[c], dtype=np.int64 if c in ints else np.float64) for c in COLUMNS}


def summary(columns: dict[str, np.ndarray], config: ScoreConfig) -> str:
    """Accuracy and the mean of each measure on correct vs misclassified inputs (MC prediction)."""
    label = columns["label"]
    correct = columns["mc_pred"] == label
    lines = [
        f"{config.dataset} test, {len(label)} images, T={config.samples}, seed={config.seed}",
        f"accuracy: deterministic {np.mean(columns['det_pred'] == label):.4f}, MC {np.mean(correct):.4f}",
        f"{'measure':<20} {'mean (correct)':>15} {'mean (wrong)':>13}",
    ]
    for name in MEASURES:
        values = columns[name]
        wrong = f"{values[~correct].mean():13.4f}" if (~correct).any() else f"{'-':>13}"
        lines.append(f"{name:<20} {values[correct].mean() if correct.any() else float('nan'):15.4f} {wrong}")
    return "\n".join(lines)
