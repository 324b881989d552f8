"""The ablation's summary: ``results/catsdogs-ablation/ablation.{csv,md,json}``, one row per
(variant, attack, eps, predictor), computed from the variants' ``scores.csv`` alone.

Fixed before the run (issue 18), like the variants and their order:
- intervals are 95% percentile bootstraps that resample whole blocks of 5 consecutive draws of a
  kind (the authors' evaluation batch), in every variant, so that batch-statistics variants,
  whose scores within a batch are coupled, get honest intervals and every pair of variants is
  resampled alike;
- a variant is compared with the one before it in the cumulative chain (a leave-one-out variant
  with as-coded), paired by source image: the same blocks drawn for both;
- clean accuracy: the share of the N clean images (the same in every set of a predictor) that the
  predictor classifies correctly, with the evaluator's draw;
- the paper's claim that MC accuracy is below the point estimate (its repository holds no code
  for it) is judged by the claims ledger (claim 9) on those clean images, paired by image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, metrics
from uncertadv.experiments.catsdogs import variants

BLOCK = 5
SHORT = {"entropy": "predictive_entropy", "mi": "mutual_information"}
KEYS = ("variant", "attack", "eps", "predictor")


def _sets(scores_csv: Path) -> dict[tuple, dict[str, np.ndarray]]:
    """The rows of each (attack, eps, predictor) of one variant's scores.csv, in file (draw) order."""
    table = artifacts.read_table(scores_csv)
    out = {}
    for attack, eps, predictor in dict.fromkeys(zip(table["attack"], table["eps"], table["predictor"])):
        sel = (table["attack"] == attack) & (table["eps"] == eps) & (table["predictor"] == predictor)
        out[(str(attack), float(eps), str(predictor))] = {c: v[sel] for c, v in table.items()}
    return out


def blocks(rows: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids of the adversarial rows ``[P]`` and of the negatives ``[M]``: blocks of BLOCK
    consecutive rows within each kind."""
    kind = rows["kind"]
    ids = np.zeros(len(kind), int)
    for code, name in enumerate(("clean", "noise", "adversarial")):
        sel = kind == name
        ids[sel] = code * 100_000 + np.arange(sel.sum()) // BLOCK
    adv = kind == "adversarial"
    return ids[adv], ids[~adv]


def _auc(rows, measure, negatives=None, other=None, rounds=1000, seed=0):
    """(AUC, lo, hi) of ``measure``, adversarial against the negatives (all, or one kind); with
    ``other`` (the same set of another variant), this AUC minus that one, paired."""
    kind = rows["kind"]
    neg = (kind != "adversarial") if negatives is None else (kind == negatives)
    adv = kind == "adversarial"
    gp, gn = blocks(rows)
    gn = gn[(kind[kind != "adversarial"] == negatives) if negatives else slice(None)]
    pos_b = neg_b = None
    if other is not None:
        pos_b, neg_b = other[measure][other["kind"] == "adversarial"], other[measure][other["kind"] != "adversarial"]
    return metrics.cluster_bootstrap_auc_difference(rows[measure][adv], rows[measure][neg], pos_b, neg_b, gp, gn,
                                                    rounds=rounds, seed=seed)  # fmt: skip


def row(name: str, key: tuple, rows: dict, previous: dict | None, sets_record: dict, rounds: int, seed: int) -> dict:
    """One ablation row (see the module doc)."""
    attack, eps, predictor = key
    kind = rows["kind"]
    adv, clean = kind == "adversarial", kind == "clean"
    gp, _ = blocks(rows)
    succ, changed = rows["success"][adv] == 1, rows["label_changed"][adv] == 1
    variant = variants.named(name)
    record = sets_record.get(f"{attack}_eps{eps:g}_{predictor}", {})
    out = {"variant": name, "attack": attack, "eps": eps, "predictor": predictor,
           "switches": ";".join(variant.on) or "none",
           "point_estimate": variant.point_estimate if predictor == "deterministic" else "",
           "clean_accuracy": float(np.mean(rows["pred"][clean] == rows["label"][clean])), "n_clean": int(clean.sum()),
           "mean_linf_255": record.get("mean_linf_255", np.nan),
           "share_pixels_beyond_eps": record.get("share_pixels_beyond_eps", np.nan),
           "n_adversarial": int(adv.sum()), "n_successful": int(succ.sum()), "n_label_changed": int(changed.sum()),
           "success_rate": float(succ.mean()), "label_changed_rate": float(changed.mean())}  # fmt: skip
    boot = dict(rounds=rounds, seed=seed)
    for short, measure in SHORT.items():
        for suffix, negatives in (("", None), ("_vs_clean", "clean"), ("_vs_noise", "noise")):
            value, lo, hi = _auc(rows, measure, negatives, **boot)
            out.update({f"{short}_auc{suffix}": value, f"{short}_auc{suffix}_lo": lo, f"{short}_auc{suffix}_hi": hi})
        values, neg = rows[measure], rows[measure][~adv]
        out[f"{short}_auc_s"] = metrics.roc_auc(values[adv][succ], neg)
        out[f"{short}_auc_s_changed"] = metrics.roc_auc(values[adv][changed], neg)
    out["previous"] = ""
    for short in SHORT:
        out.update({f"d_{short}_auc": np.nan, f"d_{short}_auc_lo": np.nan, f"d_{short}_auc_hi": np.nan})
    out.update(d_label_changed_rate=np.nan, d_label_changed_rate_lo=np.nan, d_label_changed_rate_hi=np.nan)
    if previous is not None:
        prev_name, other = previous
        if not all(np.array_equal(rows["index"][kind == k], other["index"][other["kind"] == k])
                   for k in ("clean", "noise", "adversarial")):  # fmt: skip
            raise ValueError(f"variants {name} and {prev_name} do not share their source images ({key})")
        out["previous"] = prev_name
        for short, measure in SHORT.items():
            d = _auc(rows, measure, other=other, **boot)
            out.update({f"d_{short}_auc": d[0], f"d_{short}_auc_lo": d[1], f"d_{short}_auc_hi": d[2]})
        before = other["label_changed"][other["kind"] == "adversarial"] == 1
        d = metrics.cluster_bootstrap_mean_difference(changed, before, gp, **boot)
        out.update(d_label_changed_rate=d[0], d_label_changed_rate_lo=d[1], d_label_changed_rate_hi=d[2])
    return out


def variant_names(folder: Path) -> list[str]:
    """The ablation's variants that have a scores.csv under ``folder``, in the ablation's order."""
    return [name for name in variants.ablation() if (folder / name / "scores.csv").is_file()]


def table(folder: Path) -> list[dict]:
    """Every row of ablation.csv from the variants' scores.csv and scores.json."""
    out = []
    loaded = {name: _sets(folder / name / "scores.csv") for name in variant_names(folder)}
    for name, sets in loaded.items():
        record = artifacts.read_json(folder / name / "scores.json")
        rounds, seed = record["config"]["bootstrap"], record["config"]["seed"]
        prev = variants.previous(name)
        for key, rows in sets.items():
            other = (prev, loaded[prev][key]) if prev in loaded and key in loaded[prev] else None
            out.append(row(name, key, rows, other, record.get("attack_sets", {}), rounds, seed))
    return out


def write(folder: Path) -> list[Path]:
    """ablation.csv, ablation.md and ablation.json under ``folder``."""
    start = time.perf_counter()
    rows = table(folder)
    if not rows:
        raise ValueError(
            f"{folder} holds no variant's scores.csv; run `uncertadv report --dataset catsdogs --ablation`"
        )
    artifacts.write_csv(folder / "ablation.csv", {c: [r[c] for r in rows] for c in rows[0]})
    artifacts.write_json(folder / "ablation.json", artifacts.record(
        {"variants": variant_names(folder), "block": BLOCK}, start,
        inputs={f"{n}/scores.csv": artifacts.file_sha256(folder / n / "scores.csv") for n in variant_names(folder)},
        outputs=["ablation.csv", "ablation.md"]))  # fmt: skip
    artifacts.write_text(folder / "ablation.md", markdown(folder))
    return [folder / "ablation.csv", folder / "ablation.md", folder / "ablation.json"]


def _f(value, digits=3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _ci(r, col) -> str:
    if _f(r[col]) == "n/a":
        return "n/a"
    return f"{_f(r[col])} [{_f(r[col + '_lo'], 2)}, {_f(r[col + '_hi'], 2)}]"


def _d(r, col) -> str:
    if _f(r[col]) == "n/a":
        return ""
    lo, hi = r[col + "_lo"], r[col + "_hi"]
    star = " *" if lo > 0 or hi < 0 else ""
    return f"{r[col]:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}"


def markdown(folder: Path) -> str:
    """ablation.md from ablation.csv (and the paper's Table 1), rendered again by ``uncertadv render``."""
    from importlib.resources import files

    from uncertadv.experiments.table1 import detection

    cols = artifacts.read_table(folder / "ablation.csv")
    rows = [
        {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
        for i in range(len(cols["variant"]))
    ]
    paper = detection.read_paper_table(files("uncertadv.assets") / "paper_table1.csv")
    lines = [
        "# Cats vs dogs: the paper's code, switch by switch (generated by `uncertadv render`; do not edit)",
        "",
        "Each variant adds one switch of `uncertadv/experiments/catsdogs/variants.py` to the one before (the last "
        "is as-coded), then each `as-coded-X` sets switch X back alone. N adversarial images per row against N clean "
        f"and N noisy ones; the same source images in every variant. Intervals: 95% bootstrap resampling blocks of "
        f"{BLOCK} consecutive draws of a kind. Δ: this variant minus the previous one (`previous`), paired by source "
        "image; * marks an interval that excludes 0. Clean acc.: the N clean images. Label changed: the paper's "
        "success rate (wrong after the attack); success: correct when clean and wrong after. AUC below 0.5: the "
        "measure ranks adversarial images as less uncertain than the negatives.",
        "",
        "| variant | attack | eps | predictor | clean acc. | MI AUC | MI vs clean / vs noise | entropy AUC "
        "| entropy vs clean / vs noise | label changed | success | L-inf (beyond eps) | Δ MI AUC | Δ entropy AUC "
        "| Δ label changed |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        lines.append("| " + " | ".join([
            r["variant"], r["attack"], f"{r['eps']:g}", r["predictor"], _f(r["clean_accuracy"]), _ci(r, "mi_auc"),
            f"{_f(r['mi_auc_vs_clean'])} / {_f(r['mi_auc_vs_noise'])}", _ci(r, "entropy_auc"),
            f"{_f(r['entropy_auc_vs_clean'])} / {_f(r['entropy_auc_vs_noise'])}",
            f"{_f(r['label_changed_rate'])} ({int(r['n_label_changed'])})",
            f"{_f(r['success_rate'])} ({int(r['n_successful'])})",
            f"{_f(r['mean_linf_255'], 1)} ({_f(r['share_pixels_beyond_eps'], 4)})",
            _d(r, "d_mi_auc"), _d(r, "d_entropy_auc"), _d(r, "d_label_changed_rate")]) + " |")  # fmt: skip
    coded = [r for r in rows if r["variant"] == "as-coded"]
    if coded:
        lines += ["", "## as-coded beside the paper's Table 1 (the paper's value in brackets)", "",
                  "| attack | eps | predictor | entropy AUC | MI AUC | entropy AUC (S, label changed) "
                  "| MI AUC (S, label changed) | label changed (the paper's success) |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in coded:
            ref = paper.get((r["attack"], float(r["eps"]), r["predictor"]), {})

            def both(ours, theirs, r=r, ref=ref):
                return f"{_f(r[ours])} ({_f(ref.get(theirs))})"

            lines.append(f"| {r['attack']} | {r['eps']:g} | {r['predictor']} | {both('entropy_auc', 'entropy_auc')} "
                         f"| {both('mi_auc', 'mi_auc')} | {both('entropy_auc_s_changed', 'entropy_auc_s')} "
                         f"| {both('mi_auc_s_changed', 'mi_auc_s')} "
                         f"| {both('label_changed_rate', 'success_rate')} |")  # fmt: skip
    lines += ["", "Whether each row lies within the paper's sampling error is judged by claim 7b in `../CLAIMS.md`."]
    lines += seeds_markdown(folder)
    lines += retrained_heads_markdown(folder)
    return "\n".join(lines) + "\n"


def retrained_heads(folder: Path) -> list[list[str]]:
    """Groups of variants whose heads share a key (the same config) but not their weights: one was trained
    again, e.g. on another CPU, and a Δ between them mixes the switch with the retrained head."""
    by_key: dict[str, dict[str, list[str]]] = {}
    for name in variant_names(folder):
        head = artifacts.read_json(folder / name / "scores.json").get("head")
        if head:
            key = json.dumps(head["config"], sort_keys=True)
            by_key.setdefault(key, {}).setdefault(head["sha256"], []).append(name)
    return [[", ".join(names) for names in group.values()] for group in by_key.values() if len(group) > 1]


def retrained_heads_markdown(folder: Path) -> list[str]:
    """ablation.md's warning for ``retrained_heads``, where there are any."""
    groups = retrained_heads(folder)
    if not groups:
        return []
    lines = ["", "## Heads trained again", "",
             "These variants share a head's key, yet score different weights of it (trained again, as on another "
             "CPU; each variant's scores.json records the head's sha256). A Δ between two of them mixes the switch "
             "with the retrained head:", ""]  # fmt: skip
    return lines + [f"- {' | '.join(group)}" for group in groups] + [""]


def seeds_markdown(folder: Path) -> list[str]:
    """Each head seed's MC MI AUC on BIM and MIM (all negatives, and the clean alone) of the variants with
    more than one head seed (issue 28: seeds/NAME-sN/scores.csv beside NAME/scores.csv, seed 0)."""
    lines = []
    for name in ("as-coded", "+head"):
        found = sorted(
            (folder / "seeds").glob(f"{name}-s*/scores.csv"), key=lambda p: int(p.parent.name.rsplit("-s", 1)[1])
        )  # seeds in number order (s2 before s10), as the ledger reads them
        if not found or not (folder / name / "scores.csv").is_file():
            continue
        runs = [(0, folder / name / "scores.csv"), *((int(p.parent.name.rsplit("-s", 1)[1]), p) for p in found)]
        if not lines:
            lines = ["", "## Head seeds (MC MI AUC; the images, attacks' and evaluator's keys fixed)", "",
                     "| variant | head seed | attack | eps | vs all negatives | vs clean |",
                     "|---|---|---|---|---|---|"]  # fmt: skip
        for seed, path in runs:
            for (attack, eps, predictor), rows in _sets(path).items():
                if predictor != "mc" or attack not in ("bim", "mim"):
                    continue
                mi, kind = rows["mutual_information"], rows["kind"]
                adv = kind == "adversarial"
                lines.append(f"| {name} | {seed} | {attack} | {eps:g} | {metrics.roc_auc(mi[adv], mi[~adv]):.3f} | "
                             f"{metrics.roc_auc(mi[adv], mi[kind == 'clean']):.3f} |")  # fmt: skip
    return lines


# The paper's three numbers the README weighs each variant against (issue 18): the mc MI AUC and
# entropy AUC under BIM and MIM, and the point estimate's label-changed rate under BIM and MIM.
FINDINGS = {
    "mi": ("mc", "mi_auc", "d_mi_auc", "MC MI AUC"),
    "entropy": ("mc", "entropy_auc", "d_entropy_auc", "MC entropy AUC"),
    "changed": ("deterministic", "label_changed_rate", "d_label_changed_rate", "point-estimate label changed"),
}


def _span(values) -> str:
    values = [v for v in values if not np.isnan(v)]
    return "n/a" if not values else f"{min(values):.3f} to {max(values):.3f}"


def findings(folder: Path, which: str) -> str:
    """A README block: per variant, the BIM/MIM rows' range of one of FINDINGS (``which``), the range
    of its paired change from the previous variant, and how many of those changes' intervals exclude 0
    (and on which side); for ``mi`` also the ranges against clean and against noisy negatives alone."""
    if which not in FINDINGS:
        raise ValueError(f"unknown ablation finding {which!r}; choose from {', '.join(FINDINGS)}")
    predictor, column, delta, label = FINDINGS[which]
    if not (folder / "ablation.csv").is_file():
        return "(no ablation.csv yet: `make catsdogs-ablation` makes it)\n"
    cols = artifacts.read_table(folder / "ablation.csv")
    sel = np.isin(cols["attack"], ("bim", "mim")) & (cols["predictor"] == predictor)
    head = f"| variant | {label} (BIM, MIM; eps 5, 10) | change from `previous` | changes whose interval excludes 0 |"
    extra = which == "mi"
    lines = [
        head + (" MI vs clean | MI vs noise |" if extra else ""),
        "|---|---|---|---|" + ("---|---|" if extra else ""),
    ]
    for name in dict.fromkeys(cols["variant"][sel]):
        rows = sel & (cols["variant"] == name)
        lo, hi = cols[f"{delta}_lo"][rows], cols[f"{delta}_hi"][rows]
        up, down = int(np.sum(lo > 0)), int(np.sum(hi < 0))
        prev = str(cols["previous"][rows][0]) if str(cols["previous"][rows][0]) not in ("", "nan") else ""
        change = f"{_span(cols[delta][rows])} (vs {prev})" if prev else ""
        excl = f"{up} up, {down} down, of {int(rows.sum())}" if prev else ""
        line = f"| {name} | {_span(cols[column][rows])} | {change} | {excl} |"
        if extra:
            line += f" {_span(cols['mi_auc_vs_clean'][rows])} | {_span(cols['mi_auc_vs_noise'][rows])} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
