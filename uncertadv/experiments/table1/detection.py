"""Table 1: detection of adversarial inputs by each uncertainty measure, from saved scores.

Rows are (attack, eps, predictor). Positives: the N adversarial rows; negatives: the N clean
plus N noise rows (``_vs_clean`` and ``_vs_noise``: one kind of negative only, so that a reader
sees which half carries the AUC). ``_s`` columns keep only the successful adversarial rows:
correct when clean and wrong after the attack; ``_s_changed`` the paper's filter instead: every
adversarial row whose label changed. The first eight columns are the paper's; the rest extend it, and
every one recomputes from ``scores.csv`` (``tests/test_table1.py`` does so).
"""

from __future__ import annotations

import numpy as np

from uncertadv import metrics
from uncertadv.inputs import min_negatives

PAPER_COLUMNS = ["attack", "eps", "predictor", "entropy_auc", "mi_auc", "entropy_auc_s", "mi_auc_s", "success_rate"]
EXTRA_COLUMNS = [
    "label_changed_rate",
    "n_adversarial",
    "n_clean_correct",
    "n_successful",
    "n_negative",
    "entropy_auc_lo",
    "entropy_auc_hi",
    "mi_auc_lo",
    "mi_auc_hi",
    "entropy_auc_s_lo",
    "entropy_auc_s_hi",
    "mi_auc_s_lo",
    "mi_auc_s_hi",
    "mi_minus_entropy_auc",
    "mi_minus_entropy_auc_lo",
    "mi_minus_entropy_auc_hi",
    "entropy_tpr_at_5fpr",
    "mi_tpr_at_5fpr",
    "expected_entropy_auc",
    "softmax_variance_auc",
    "variation_ratio_auc",
    "entropy_aupr",
    "mi_aupr",
    "entropy_fpr95",
    "mi_fpr95",
    "noise_l2_ratio",
    "entropy_auc_vs_clean",
    "entropy_auc_vs_noise",
    "mi_auc_vs_clean",
    "mi_auc_vs_noise",
    "entropy_auc_s_changed",
    "mi_auc_s_changed",
    "n_label_changed",
]
SHORT = {"entropy": "predictive_entropy", "mi": "mutual_information"}
FEW_POSITIVES = 20  # an (S) AUC on fewer successful adversarials is flagged
# Under this many successful adversarials the (S) interval is n/a: a bootstrap of a handful of
# points resamples little but the negatives and gives an interval far narrower than the truth.
MIN_FOR_INTERVAL = 10
NOISE_RATIO_FLOOR = 0.98  # rows whose noise falls short of its paired perturbation are named


def noise_l2_ratio(rows: dict[str, np.ndarray]) -> float:
    """Mean over pairs of noise L2 / paired adversarial L2 (pairs whose adversarial L2 is 0 skipped)."""
    kind, pair, l2 = rows["kind"], rows["pair"], rows["l2"]
    noise = dict(zip(pair[kind == "noise"].astype(int), l2[kind == "noise"]))
    adv = kind == "adversarial"
    ratios = [noise[int(p)] / d for p, d in zip(pair[adv], l2[adv]) if d > 0]
    return float(np.mean(ratios)) if ratios else float("nan")


def table_row(rows: dict[str, np.ndarray], *, bootstrap_rounds: int = 1000, seed: int = 0) -> dict[str, float]:
    """Metrics of one setting from its score rows (``kind``: clean, noise or adversarial)."""
    adv = rows["kind"] == "adversarial"
    neg = ~adv
    succ = adv & (rows["success"] == 1)
    changed = adv & (rows["label_changed"] == 1)
    boot = dict(rounds=bootstrap_rounds, seed=seed)
    out: dict[str, float] = {}
    for short, measure in SHORT.items():
        values = rows[measure]
        for kind in ("clean", "noise"):
            out[f"{short}_auc_vs_{kind}"] = metrics.roc_auc(values[adv], values[rows["kind"] == kind])
        out[f"{short}_auc_s_changed"] = metrics.roc_auc(values[changed], values[neg])
        out[f"{short}_auc"] = metrics.roc_auc(values[adv], values[neg])
        out[f"{short}_auc_s"] = metrics.roc_auc(values[succ], values[neg])
        out[f"{short}_auc_lo"], out[f"{short}_auc_hi"] = metrics.bootstrap_auc(values[adv], values[neg], **boot)
        out[f"{short}_auc_s_lo"], out[f"{short}_auc_s_hi"] = (
            metrics.bootstrap_auc(values[succ], values[neg], **boot)
            if succ.sum() >= MIN_FOR_INTERVAL
            else (float("nan"), float("nan"))
        )
        # with fewer than 1/0.05 negatives the threshold is the largest one: an FPR of 0, not 5%
        out[f"{short}_tpr_at_5fpr"] = (
            metrics.tpr_at_fpr(values[adv], values[neg], 0.05) if neg.sum() >= min_negatives(0.05) else float("nan")
        )
        out[f"{short}_aupr"] = metrics.aupr(values[adv], values[neg])
        out[f"{short}_fpr95"] = metrics.fpr_at_tpr(values[adv], values[neg])
    mi, pe = rows["mutual_information"], rows["predictive_entropy"]
    diff = metrics.paired_bootstrap_auc_difference(mi[adv], mi[neg], pe[adv], pe[neg], **boot)
    out["mi_minus_entropy_auc"], out["mi_minus_entropy_auc_lo"], out["mi_minus_entropy_auc_hi"] = diff
    for measure in ("expected_entropy", "softmax_variance", "variation_ratio"):
        out[f"{measure}_auc"] = metrics.roc_auc(rows[measure][adv], rows[measure][neg])
    out["success_rate"] = float(np.mean(rows["success"][adv] == 1))
    out["label_changed_rate"] = float(np.mean(rows["label_changed"][adv] == 1))
    out["n_adversarial"], out["n_negative"] = int(adv.sum()), int(neg.sum())
    out["n_clean_correct"] = int(np.sum(rows["clean_pred"][adv] == rows["label"][adv]))
    out["n_successful"] = int(succ.sum())
    out["n_label_changed"] = int(changed.sum())
    out["noise_l2_ratio"] = noise_l2_ratio(rows)
    return out


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _signed(value) -> str:
    return "n/a" if np.isnan(value) else f"{value:+.3f}"


def excludes_zero(row: dict) -> bool:
    """Whether the paired MI - entropy interval of a row excludes 0 ("significant")."""
    lo, hi = row["mi_minus_entropy_auc_lo"], row["mi_minus_entropy_auc_hi"]
    return bool(not np.isnan(lo) and (lo > 0 or hi < 0))


def markdown(table: list[dict], header: str, paper: dict | None = None) -> str:
    """Table 1 in the paper's layout, then the statistics behind it. ``paper`` maps
    (attack, eps, predictor) to the paper's row, shown in brackets beside ours; the paper's
    success rate is label-changed (its definition), so it stands beside ``label_changed_rate``."""

    def bracket(row, ours, theirs):
        text = _fmt(row[ours])
        ref = (paper or {}).get((row["attack"], float(row["eps"]), row["predictor"]))
        return text + (f" ({_fmt(ref.get(theirs))})" if ref is not None else "")

    def dagger(row, text):
        return text + (" †" if row["n_successful"] < FEW_POSITIVES and not text.startswith("n/a") else "")

    def with_ci(row, column):
        lo, hi = row[f"{column}_lo"], row[f"{column}_hi"]
        text = _fmt(row[column])
        if column.endswith("_s"):
            ci = "n/a" if np.isnan(lo) else f"{_fmt(lo, 2)}, {_fmt(hi, 2)}"
            return dagger(row, f"{text} [{ci}]" if text != "n/a" else text)
        return f"{text} [{_fmt(lo, 2)}, {_fmt(hi, 2)}]" if not np.isnan(lo) else text

    def succ_auc(row, short):
        return dagger(row, _fmt(row[f"{short}_auc_s"]))

    def changed_auc(row, short):  # the paper's (S) filter, so its bracketed (S) value stands here
        text = bracket(row, f"{short}_auc_s_changed", f"{short}_auc_s")
        few = row["n_label_changed"] < FEW_POSITIVES and not text.startswith("n/a")
        return text + (" †" if few else "")

    def split(row, short):
        return f"{_fmt(row[f'{short}_auc_vs_clean'])} / {_fmt(row[f'{short}_auc_vs_noise'])}"

    def key(r):
        return [r["attack"], f"{r['eps']:g}", r["predictor"]]

    lines = [
        header,
        "",
        "| attack | eps | predictor | entropy AUC | MI AUC | entropy AUC vs clean / vs noise "
        "| MI AUC vs clean / vs noise | entropy AUC (S) | MI AUC (S) | entropy AUC (S, label changed) "
        "| MI AUC (S, label changed) | success rate | label changed | n successful |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        cells = key(r) + [
            bracket(r, "entropy_auc", "entropy_auc"),
            bracket(r, "mi_auc", "mi_auc"),
            split(r, "entropy"),
            split(r, "mi"),
            succ_auc(r, "entropy"),
            succ_auc(r, "mi"),
            changed_auc(r, "entropy"),
            changed_auc(r, "mi"),
            _fmt(r["success_rate"]),
            bracket(r, "label_changed_rate", "success_rate"),
            f"{r['n_successful']} of {r['n_adversarial']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    paired = [r for r in table if not np.isnan(r["mi_minus_entropy_auc"])]
    significant = [r for r in paired if excludes_zero(r)]
    short_noise = [r for r in table if r["noise_l2_ratio"] < NOISE_RATIO_FLOOR]
    noise_text = (
        f"The noise reaches at least {NOISE_RATIO_FLOOR} of its paired perturbation's L2 in every row."
        if not short_noise
        else "Rows whose noise L2 ratio is below "
        f"{NOISE_RATIO_FLOOR} (their images cannot hold that much noise after clipping): "
        + ", ".join(" ".join(key(r)) for r in short_noise)
        + "."
    )
    lines += [
        "",
        f"† rests on fewer than {FEW_POSITIVES} successful (or, in the label-changed columns, changed) adversarial "
        "images: read the count and the "
        f"interval below, not the point; under {MIN_FOR_INTERVAL} the interval is n/a, because a bootstrap of "
        "so few points is far narrower than the truth.",
        "",
        "Intervals and comparisons. AUCs with their bootstrap 95% interval (each class resampled apart); "
        "MI − entropy: the difference of the two AUCs on the same images, with a paired bootstrap 95% "
        "interval (the same resampled rows for both measures); * marks an interval that excludes 0. "
        f"{len(significant)} of the {len(paired)} paired comparisons exclude 0; with {len(paired)} comparisons, "
        f"about {len(paired) / 20:.1f} would exclude 0 by chance alone at the 95% level. Deterministic and "
        "MC rows come from different attack sets (each attack targets its own predictor), so this table "
        "pairs no comparison across them; they share their source images, by which `uncertadv claims` pairs "
        "them. TPR at 5% FPR uses an in-sample threshold: the "
        "ceil(0.95 M)-th smallest of the M clean + noise scores, fitted on the very negatives it is judged on. "
        "Noise L2 ratio: mean of noise L2 / paired adversarial L2, after clipping to the image range. " + noise_text,
        "",
        "| attack | eps | predictor | entropy AUC [95% CI] | MI AUC [95% CI] | entropy AUC (S) [95% CI] "
        "| MI AUC (S) [95% CI] | MI − entropy [paired 95% CI] | entropy TPR@5%FPR | MI TPR@5%FPR "
        "| exp. entropy AUC | softmax var. AUC | var. ratio AUC | noise L2 ratio |",
        "|" + "---|" * 14,
    ]
    for r in table:
        diff = r["mi_minus_entropy_auc"]
        diff_text = "n/a"
        if not np.isnan(diff):
            diff_text = (
                f"{_signed(diff)} [{_signed(r['mi_minus_entropy_auc_lo'])}, {_signed(r['mi_minus_entropy_auc_hi'])}]"
            )
            diff_text += " *" if excludes_zero(r) else ""
        cells = key(r) + [
            with_ci(r, "entropy_auc"),
            with_ci(r, "mi_auc"),
            with_ci(r, "entropy_auc_s"),
            with_ci(r, "mi_auc_s"),
            diff_text,
            _fmt(r["entropy_tpr_at_5fpr"]),
            _fmt(r["mi_tpr_at_5fpr"]),
            _fmt(r["expected_entropy_auc"]),
            _fmt(r["softmax_variance_auc"]),
            _fmt(r["variation_ratio_auc"]),
            _fmt(r["noise_l2_ratio"]),
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
