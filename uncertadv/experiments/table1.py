"""Table 1: detection of adversarial inputs by each uncertainty measure, from saved scores.

Rows are (attack, eps, predictor). Positives: adversarial rows; negatives: clean plus noise
rows; ``_s`` columns keep only the adversarial rows whose label changed. The first eight
columns are the paper's; the rest extend it.
"""

from __future__ import annotations

import numpy as np

from uncertadv import metrics

PAPER_COLUMNS = ["attack", "eps", "predictor", "entropy_auc", "mi_auc", "entropy_auc_s", "mi_auc_s", "success_rate"]
EXTRA_COLUMNS = [
    "expected_entropy_auc",
    "softmax_variance_auc",
    "variation_ratio_auc",
    "entropy_aupr",
    "mi_aupr",
    "entropy_fpr95",
    "mi_fpr95",
    "entropy_auc_lo",
    "entropy_auc_hi",
    "mi_auc_lo",
    "mi_auc_hi",
    "n_adversarial",
    "n_negative",
]
SHORT = {"entropy": "predictive_entropy", "mi": "mutual_information"}


def table_row(rows: dict[str, np.ndarray], *, bootstrap_rounds: int = 1000, seed: int = 0) -> dict[str, float]:
    """Metrics of one setting from its score rows (``kind``: clean, noise or adversarial)."""
    adv = rows["kind"] == "adversarial"
    neg = ~adv
    succ = adv & (rows["success"] == 1)
    out: dict[str, float] = {}
    for short, measure in SHORT.items():
        values = rows[measure]
        out[f"{short}_auc"] = metrics.roc_auc(values[adv], values[neg])
        out[f"{short}_auc_s"] = metrics.roc_auc(values[succ], values[neg])
        out[f"{short}_aupr"] = metrics.aupr(values[adv], values[neg])
        out[f"{short}_fpr95"] = metrics.fpr_at_tpr(values[adv], values[neg])
        out[f"{short}_auc_lo"], out[f"{short}_auc_hi"] = metrics.bootstrap_auc(
            values[adv], values[neg], rounds=bootstrap_rounds, seed=seed
        )
    for measure in ("expected_entropy", "softmax_variance", "variation_ratio"):
        out[f"{measure}_auc"] = metrics.roc_auc(rows[measure][adv], rows[measure][neg])
    out["success_rate"] = float(np.mean(rows["success"][adv]))
    out["n_adversarial"], out["n_negative"] = int(adv.sum()), int(neg.sum())
    return out


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown(table: list[dict], header: str, paper: dict | None = None) -> str:
    """Table 1 in the paper's layout, then the extended metrics. ``paper`` maps
    (attack, eps, predictor) to the paper's row, shown in brackets beside ours."""

    def ours_and_paper(row, column):
        text = _fmt(row[column])
        ref = (paper or {}).get((row["attack"], float(row["eps"]), row["predictor"]))
        if ref is not None:
            text += f" ({_fmt(ref.get(column))})"
        return text

    def ci(row, short):
        return f"{_fmt(row[f'{short}_auc'])} [{_fmt(row[f'{short}_auc_lo'], 2)}, {_fmt(row[f'{short}_auc_hi'], 2)}]"

    lines = [
        header,
        "",
        "| attack | eps | predictor | entropy AUC | MI AUC | entropy AUC (succ.) | MI AUC (succ.) | success rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        cells = [r["attack"], f"{r['eps']:g}", r["predictor"]] + [ours_and_paper(r, c) for c in PAPER_COLUMNS[3:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Extended metrics (AUC with bootstrap 95% interval; AUPR with adversarial as positive; FPR at 95% TPR):",
        "",
        "| attack | eps | predictor | entropy AUC [95% CI] | MI AUC [95% CI] | exp. entropy AUC | softmax var. AUC "
        "| var. ratio AUC | entropy AUPR | MI AUPR | entropy FPR95 | MI FPR95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        cells = [r["attack"], f"{r['eps']:g}", r["predictor"], ci(r, "entropy"), ci(r, "mi")] + [
            _fmt(r[c])
            for c in (
                "expected_entropy_auc",
                "softmax_variance_auc",
                "variation_ratio_auc",
                "entropy_aupr",
                "mi_aupr",
                "entropy_fpr95",
                "mi_fpr95",
            )
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_paper_table(path) -> dict:
    """The paper's Table 1 (assets/paper_table1.csv) keyed by (attack, eps, predictor)."""
    from uncertadv import artifacts

    raw = artifacts.read_csv(path)
    out = {}
    for i in range(len(raw["attack"])):
        row = {
            k: (float(v[i]) if v[i] != "" else float("nan")) for k, v in raw.items() if k not in ("attack", "predictor")
        }
        out[(raw["attack"][i], float(raw["eps"][i]), raw["predictor"][i])] = row
    return out
