"""Carry a results folder's records over to protocol 3, whose reuse keys hold the data's contents.

Protocol 2 keyed attack sets and score tables by the data's *path* (the data set's name and
options). Protocol 3 adds ``data_sha256``, the sha256 of the images and labels (``inputs``).
Remaking every attack set would cost hours, so a protocol-2 record is migrated instead, but only
where the data it names today can be checked to be the data it was made from:

- labels: the label of every row of the set in ``scores.csv`` equals the data's label at that
  row's index (clean, noise and adversarial rows: 3N images for a Table 1 set);
- images, where the set's ``.npz`` is present: its labels equal the data's, and the recorded mean
  L2 of its perturbations (and the noise's L2 ratio) reproduce from the data's images (rtol 1e-5);
- pixels through the model, where its model files are present (same sha256): the predictive
  entropy of the first RESCORED clean rows, scored again from the data's images by the set's
  evaluator, equals scores.csv's (rtol 1e-4; batch composition changes float32 rounding only).

A record that cannot be checked, or fails a check, is left as it is and is remade on its next
use. The migrated record keeps its provenance and gains ``migrated`` (from which protocol, the
checks passed, the commit that migrated it). Detectors are not migrated: a protocol-2 detector
(no data hash in ``fit_data``) is refitted on its next use, which takes seconds to minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertadv import artifacts, data, inputs
from uncertadv.experiments import attack_sets

FROM_PROTOCOL = 2
RTOL = 1e-5
RESCORED = 10


def migrate(folder: Path, *, load=None) -> list[str]:
    """Migrate every protocol-2 record under ``folder`` that can be checked; returns one line per record.

    load: ``(record) -> (x, y)``, the data a record names (default: the paper's data sets by name;
    records of your own data, which need their model to label, are left to be remade)."""
    folder = Path(folder)
    load = load or _paper_data
    rows = _score_groups(folder / "scores.csv")
    lines, done = [], {}
    for path in sorted((folder / "attacks").glob("*.json")):
        record = artifacts.read_json(path)
        cfg = record.get("config", {})
        if cfg.get("protocol") != FROM_PROTOCOL:
            continue
        try:
            x, y = load(record)
        except ValueError as err:
            lines.append(f"kept {path.name}: its data cannot be loaded here ({err})")
            continue
        checks, problem = _check(path, record, x, y, rows.get(_group(path.stem, record)))
        if problem or not checks:
            lines.append(f"kept {path.name}: {problem or 'nothing to check it against (no .npz, no scores.csv rows)'}")
            continue
        digest = inputs.data_sha256(x, y)
        cfg.update(protocol=attack_sets.PROTOCOL, data_sha256=digest)
        record["migrated"] = {"from_protocol": FROM_PROTOCOL, "checks": checks,
                              "git_commit": artifacts.versions()["git_commit"]}  # fmt: skip
        artifacts.write_json(path, record)
        done[path.stem] = digest
        lines.append(f"migrated {path.name}: {'; '.join(checks)}")
    for path in sorted((folder / "scores").glob("*.json")):  # per-set score caches (not committed)
        record = artifacts.read_json(path)
        cfg = record.get("config", {})
        if cfg.get("protocol") == FROM_PROTOCOL and path.stem in done:
            cfg.update(protocol=attack_sets.PROTOCOL, data_sha256=done[path.stem])
            record["migrated"] = {"from_protocol": FROM_PROTOCOL, "checks": ["its attack set was migrated"]}
            artifacts.write_json(path, record)
            lines.append(f"migrated scores/{path.name}")
    for path in sorted(folder.glob("*.json")):  # score tables of `uncertadv score` (test_scores.json)
        lines += _migrate_score_table(path)
    return lines


def _migrate_score_table(path: Path) -> list[str]:
    record = artifacts.read_json(path)
    cfg = record.get("config", {})
    if not {"model_sha256", "samples", "dataset"} <= set(cfg) or "data_sha256" in cfg or cfg.get("data"):
        return []  # not a score table of a paper data set, or already carries its data's hash
    x, y = data.load(cfg["dataset"], "test", cfg.get("source", "auto"))
    x, y = x[: cfg.get("limit")], y[: cfg.get("limit")]
    table = path.with_suffix(".csv")
    if not table.is_file():
        return [f"kept {path.name}: no {table.name} to check it against"]
    labels = artifacts.read_table(table)["label"]
    if len(labels) != len(y) or not np.array_equal(labels.astype(int), y):
        return [f"kept {path.name}: the labels in {table.name} differ from the data's"]
    cfg["data_sha256"] = inputs.data_sha256(x, y)
    record["migrated"] = {"from_protocol": FROM_PROTOCOL, "checks": [f"labels of its {len(y)} rows"],
                          "git_commit": artifacts.versions()["git_commit"]}  # fmt: skip
    artifacts.write_json(path, record)
    return [f"migrated {path.name}: labels of its {len(y)} rows"]


def _paper_data(record: dict):
    cfg = record["config"]
    if cfg.get("dataset") not in data.DATASETS:
        raise ValueError(f"data set {cfg.get('dataset')!r} is not one of the paper's; remake the set")
    return data.load(cfg["dataset"], "test", **cfg.get("data_options", {}))


def _group(stem: str, record: dict) -> tuple:
    """The scores.csv group ``(attack, eps, predictor, detector_measure)`` of an attack set."""
    cfg = record["config"]
    attack = cfg["attack"]
    if "method" in cfg:  # an adaptive set: its own method, against a detector's measure
        return cfg["method"], float(attack["eps"]), attack["predictor"], cfg["detector"]["measure"]
    return attack["method"], float(attack["eps"]), attack["predictor"], ""


def _score_groups(scores_csv: Path) -> dict[tuple, dict[str, np.ndarray]]:
    """``{group: {"kind", "index", "label", "predictive_entropy"}}`` of scores.csv (empty if there is none)."""
    if not scores_csv.is_file():
        return {}
    table = artifacts.read_csv(scores_csv)
    table.setdefault("detector_measure", [""] * len(table["attack"]))  # scores.csv before adaptive attacks
    groups: dict[tuple, dict[str, list]] = {}
    for i in range(len(table["attack"])):
        key = (table["attack"][i], float(table["eps"][i]), table["predictor"][i], table["detector_measure"][i])
        block = groups.setdefault(key, {"kind": [], "index": [], "label": [], "predictive_entropy": []})
        for column in block:
            block[column].append(table[column][i])
    return {k: {c: np.asarray(v) for c, v in b.items()} for k, b in groups.items()}


def _check(path: Path, record: dict, x: np.ndarray, y: np.ndarray, rows: dict | None) -> tuple[list[str], str]:
    """``(checks passed, problem)``: the module's checks of one record against the data ``(x, y)``."""
    checks = []
    if rows is not None:
        index = rows["index"].astype(int)
        if index.max(initial=0) >= len(y):
            return checks, f"scores.csv indexes image {index.max()}, but the data has {len(y)}"
        if not np.array_equal(rows["label"].astype(int), y[index]):
            return checks, "the labels in scores.csv differ from the data's"
        checks.append(f"labels of its {len(index)} scores.csv rows")
        problem = _rescore(path, record, x, rows)
        if problem is None:
            checks.append(f"predictive entropy of {RESCORED} clean rows scored again")
        elif problem:
            return checks, problem
    npz = path.with_suffix(".npz")
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
        index = arrays["adversarial_index"]
        if not np.array_equal(arrays["labels"], y[index]):
            return checks, f"{npz.name} holds other labels than the data"
        l2 = attack_sets.perturbation_norms(x[index], arrays["x_adv"])[1]
        if not np.isclose(l2.mean(), record["mean_l2"], rtol=RTOL, atol=0):
            return checks, f"its perturbations on the data have mean L2 {l2.mean():.6g}, not {record['mean_l2']:.6g}"
        checks.append(f"labels and mean L2 of its {len(index)} adversarial images")
        if "x_noise" in arrays and np.isfinite(record.get("noise_l2_ratio", np.nan)):
            noise_l2 = attack_sets.perturbation_norms(x[arrays["noise_index"]], arrays["x_noise"])[1]
            ratio = float(np.mean(noise_l2[l2 > 0] / l2[l2 > 0]))
            if not np.isclose(ratio, record["noise_l2_ratio"], rtol=RTOL, atol=0):
                return checks, f"its noise L2 ratio on the data is {ratio:.6g}, not {record['noise_l2_ratio']:.6g}"
            checks.append("noise L2 ratio")
    return checks, ""


def _rescore(path: Path, record: dict, x: np.ndarray, rows: dict) -> str | None:
    """Score the first RESCORED clean rows again with the set's models and evaluator: None if they
    match scores.csv, a problem if not, "" if the models are not here (nothing checked)."""
    from uncertadv import io, measures, predictors

    cfg = record["config"]
    folder = path.parent.parent
    files = [folder / f for f in record.get("model_files", [])]
    if "eval_samples" not in cfg or not files or not all(f.is_file() for f in files):
        return ""
    if [artifacts.file_sha256(f) for f in files] != cfg["models"]:
        return ""
    clean = rows["kind"] == "clean"
    index = rows["index"][clean].astype(int)[:RESCORED]
    want = rows["predictive_entropy"][clean].astype(float)[:RESCORED]
    models = io.load_classifier(folder / record["model"])
    attack = cfg["attack"]
    probs = predictors.predict(models, x[index], predictor=attack["predictor"], samples=cfg["eval_samples"],
                               seed=cfg["eval_seed"], from_logits=cfg.get("data_options", {}).get("from_logits", False),
                               pixel_max=attack["pixel_max"])  # fmt: skip
    got = measures.predictive_entropy(probs)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
        return f"its clean rows scored again differ from scores.csv (max |diff| {np.abs(got - want).max():.3g})"
    return None
