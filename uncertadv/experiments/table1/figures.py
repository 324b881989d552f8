"""Figures of the adversarial experiments: ROC/PR curves (Figures 11-14) and example images
(Figure 7), read from the saved scores and attack sets."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from uncertadv import artifacts
from uncertadv.experiments import attack_sets, plots
from uncertadv.experiments.layout import Layout, set_name, settings_suffix

CURVES = (
    ("deterministic", "predictive_entropy"),
    ("mc", "predictive_entropy"),
    ("mc", "mutual_information"),
    ("ensemble", "predictive_entropy"),
    ("ensemble", "mutual_information"),
)


def model_title(layout: Layout) -> str:
    """Which models produced a results folder, for figure titles: your own model file and data (as
    ``report --model --data`` recorded them), the cats-vs-dogs model, or the paper's MNIST CNN."""
    record = layout.folder / "table1.json"
    own = artifacts.read_json(record)["config"] if record.is_file() else {}
    if own.get("model"):
        return f"your model {Path(own['model']).name} on {own['data']['spec']}"
    if layout.catsdogs.is_file():
        return artifacts.read_json(layout.catsdogs).get("title", "cats-vs-dogs model")
    return "the paper's MNIST CNN"


def report_stem(layout: Layout, method: str, eps: float, predictor: str) -> str:
    """The stem of the set that ``uncertadv report`` made in ``layout`` (its n, T and seed, from table1.json)."""
    record = layout.table1("json")
    if not record.is_file():
        return set_name(method, eps, predictor)
    cfg = artifacts.read_json(record)["config"]
    return set_name(method, eps, predictor) + settings_suffix(cfg["n"], cfg["samples"], seed=cfg["seed"])


def _own_sources(cfg: dict, arrays: dict) -> np.ndarray:
    """The test images of an attack set made from your own data (``--data``), read again from the path it
    recorded, at the set's image size and channels, and checked to be the data it was made from."""
    from uncertadv import inputs, own_data

    options, adv = cfg["data_options"], arrays["x_adv"]
    spec = options["spec"]
    color_mode = options.get("color_mode") or ("grayscale" if adv.shape[-1] == 1 else "rgb")
    x, y, _ = own_data.load_data(spec, options["pixel_max"], adv.shape[1], classes=options.get("classes"),
                                 color_mode=color_mode)  # fmt: skip
    index = arrays["adversarial_index"]
    budget = cfg["attack"]["eps"] / 255 * options["pixel_max"]
    same = x.shape[1:] == adv.shape[1:] and index.max() < len(x)
    if same and options.get("labels") == "data":
        same = inputs.data_sha256(x, y) == cfg["data_sha256"]
    if not same or np.abs(adv - x[index]).max() > budget * (1 + 1e-5) + 1e-6:  # float32 rounding of the clip
        raise ValueError(f"--data {spec} now holds other images than the attack set was made from; draw the "
                         "figure where that data is, or run `uncertadv report` again")  # fmt: skip
    return x


def read_long_scores(path: Path) -> dict[str, np.ndarray]:
    """The long ``scores.csv`` of ``uncertadv report``: strings, and floats where numeric."""
    if not path.is_file():
        raise ValueError(f"no scores at {path}; run `uncertadv report` first")
    return artifacts.read_table(path)


def table1_mask(scores: dict[str, np.ndarray]) -> np.ndarray:
    """``[rows]`` bool: the rows of attacks that ignore the detector (Table 1's kind), not the
    adaptive attacks' rows that ``report --adaptive`` adds (their detector_measure is set)."""
    measure = scores.get("detector_measure")
    if measure is None or measure.dtype.kind == "f":  # absent, or every cell empty (read as NaN)
        return np.ones(len(scores["attack"]), bool)
    return measure == ""


def _curve(scores: np.ndarray, positive: np.ndarray):
    fpr, tpr, _ = roc_curve(positive, scores)
    precision, recall, _ = precision_recall_curve(positive, scores)
    from sklearn.metrics import roc_auc_score

    return fpr, tpr, recall, precision, roc_auc_score(positive, scores)


def run_roc(layout: Layout) -> list[Path]:
    """One figure per (attack, eps): every predictor and measure, all vs successful-only adversarials."""
    started = time.perf_counter()
    scores = read_long_scores(layout.scores)
    scores = {k: v[table1_mask(scores)] for k, v in scores.items()}
    outputs = []
    settings = sorted({(a, e) for a, e in zip(scores["attack"], scores["eps"])}, key=lambda s: (s[0], s[1]))
    for attack, eps in settings:
        curves: dict[str, dict] = {"all adversarial": {}, "successful only": {}}
        for predictor, measure in CURVES:
            sel = (scores["attack"] == attack) & (scores["eps"] == eps) & (scores["predictor"] == predictor)
            if not sel.any():
                continue
            values, kind, success = scores[measure][sel], scores["kind"][sel], scores["success"][sel]
            adv = kind == "adversarial"
            label = f"{predictor}, {plots.SHORT[measure]}"
            curves["all adversarial"][label] = _curve(values, adv)
            keep = ~adv | (success == 1)
            if (adv & keep).any():
                curves["successful only"][label] = _curve(values[keep], adv[keep])
        title = f"{attack.upper()} eps = {eps:g}/255: adversarial vs clean + noise\n{model_title(layout)}"
        out = layout.folder / f"roc_{attack}_eps{eps:g}.png"
        plots.save_figure(plots.roc_pr({k: v for k, v in curves.items() if v}, title), out)
        plots.figure_record(out, {"figure": "roc", "attack": attack, "eps": float(eps)}, started, [layout.scores])
        outputs.append(out)
    return outputs


def run_examples(layout: Layout, method: str, eps: float, count: int = 8) -> Path:
    """Figure 7: originals, adversarial images against the deterministic and MC models, and
    their differences amplified to the full range."""
    from uncertadv import data

    started = time.perf_counter()
    sets = {}
    for predictor in ("deterministic", "mc"):
        sets[predictor], record = attack_sets.load(layout.attack_set(report_stem(layout, method, eps, predictor)))
    cfg = record["config"]
    x = (_own_sources(cfg, sets["mc"]) if cfg["dataset"] == "own"
         else data.load(cfg["dataset"], "test", **cfg["data_options"])[0])  # fmt: skip
    if not np.array_equal(sets["mc"]["adversarial_index"], sets["deterministic"]["adversarial_index"]):
        raise ValueError("the deterministic and MC attack sets were drawn from different images (other seeds)")
    index = sets["mc"]["adversarial_index"][:count]
    original = x[index]
    rows = [("original", original, [f"#{i}" for i in index])]
    for predictor, arrays in sets.items():
        adv = arrays["x_adv"][:count]
        captions = [
            "fooled" if fooled else ("wrong already" if changed else "not fooled")
            for fooled, changed in zip(arrays["success"][:count], arrays["label_changed"][:count])
        ]
        rows.append((f"adv. vs {predictor}", adv, captions))
        diff = adv - original
        scale = np.maximum(np.abs(diff).reshape(len(diff), -1).max(axis=1), 1e-12).reshape(-1, 1, 1, 1)
        rows.append((f"diff ({predictor})", 0.5 + 0.5 * diff / scale, ["amplified"] * len(diff)))
    out = layout.folder / f"adversarial_examples_{method}_eps{eps:g}.png"
    title = f"{method.upper()} eps = {eps:g}/255 (grey = no change)\n{model_title(layout)}"
    plots.save_figure(plots.adversarial_examples(rows, title), out)
    config = {"figure": "adversarial_examples", "method": method, "eps": float(eps), "count": count}
    plots.figure_record(out, config, started, [layout.attack_set(report_stem(layout, method, eps, p)) for p in sets])
    return out
