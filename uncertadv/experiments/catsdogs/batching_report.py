"""The batch-composition experiment's run and table (issue 28): every arm's ``scores.csv`` under
``results/catsdogs-ablation/batching/ARM/``, then ``batching.{csv,md,json}``, each row recomputed from
the arms' scores.csv files (``summarise``).

Intervals resample the arm's batches as clusters (outputs are coupled within a batch): in ``mixed``
and ``crafted-mixed`` a batch holds clean and adversarial images, so both kinds are drawn in one draw;
in ``one-adversarial`` the adversarial images and one-kind's clean batches are drawn apart. A change
from one-kind is paired: the compared arm's batches are resampled, each image carrying its one-kind
score too, on the images successful in both arms. Claim 7c's columns (``c7_*``) take its rule's
Bonferroni level over ``rules.BATCHING_ROWS`` rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, metrics
from uncertadv.experiments.catsdogs import ablation, batching, variants
from uncertadv.experiments.claims import rules

FOLDER = "batching"
KEY = ("head", "attack_sets", "version")  # what an arm's scores depend on beyond its own batches
MEASURES = ("mutual_information", "predictive_entropy")
NEGATIVES = ("all", "clean", "noise")
SEED = 0


def _auc_columns() -> list[str]:
    out = []
    for m in MEASURES:
        for subset in ("", "successful_"):
            for neg in NEGATIVES:
                out += [f"{m}_auc_{subset}{neg}", f"{m}_auc_{subset}{neg}_lo", f"{m}_auc_{subset}{neg}_hi"]
    return out


COLUMNS = ("arm", "attack", "eps", "n_adversarial", "n_clean", "n_noise", "n_label_changed", "label_changed_rate",
           "n_successful", "success_rate", "clean_accuracy", *_auc_columns(), "c7_auc", "c7_lo", "c7_hi",
           "n_successful_both", "c7_change", "c7_change_lo", "c7_change_hi", "verdict")  # fmt: skip


def joint(arm: str) -> bool:
    """Whether the arm's batches hold both kinds (then a bootstrap draws them together)."""
    return arm in ("mixed", "crafted-mixed")


def summarise(arm: str, rows: dict, one_kind: dict, rounds: int) -> dict:
    """One row of batching.csv from the arm's scores rows of one setting and one-kind's (pool order)."""
    kind = rows["kind"]
    adv, clean, noise = kind == "adversarial", kind == "clean", kind == "noise"
    if not np.array_equal(rows["index"], one_kind["index"]) or not np.array_equal(kind, one_kind["kind"]):
        raise ValueError(f"{arm}: its rows are not one-kind's images in one-kind's order")
    success = rows["success"][adv] == 1
    out = {"arm": arm, "attack": rows["attack"][0], "eps": float(rows["eps"][0]), "n_adversarial": int(adv.sum()),
           "n_clean": int(clean.sum()), "n_noise": int(noise.sum()),
           "n_label_changed": int(np.sum(rows["label_changed"][adv] == 1)),
           "label_changed_rate": float(np.mean(rows["label_changed"][adv] == 1)),
           "n_successful": int(success.sum()), "success_rate": float(success.mean()),
           "clean_accuracy": float(np.mean(rows["pred"][clean] == rows["label"][clean]))}  # fmt: skip
    batch = rows["batch"].astype(int)
    negs = {"all": clean | noise, "clean": clean, "noise": noise}
    for m in MEASURES:
        for subset, pos in (("", adv), ("successful_", adv & (rows["success"] == 1))):
            for neg_name, neg in negs.items():
                value, lo, hi = metrics.cluster_bootstrap_auc_difference(
                    rows[m][pos], rows[m][neg], None, None, batch[pos], batch[neg], rounds=rounds, seed=SEED,
                    joint=joint(arm))  # fmt: skip
                name = f"{m}_auc_{subset}{neg_name}"
                out.update({name: value, f"{name}_lo": lo, f"{name}_hi": hi})
    out.update(claim_7c(arm, rows, one_kind))
    return out


def claim_7c(arm: str, rows: dict, one_kind: dict) -> dict:
    """Claim 7c's statistic at its Bonferroni level, the paired change from one-kind, and the verdict (in
    7c's arms only)."""
    level, rounds = 1 - 0.05 / rules.BATCHING_ROWS, rules.bootstrap_rounds(rules.BATCHING_ROWS)
    kind, batch, mi = rows["kind"], rows["batch"].astype(int), rows["mutual_information"]
    clean = kind == "clean"
    ok = (kind == "adversarial") & (rows["success"] == 1)
    value, lo, hi = metrics.cluster_bootstrap_auc_difference(mi[ok], mi[clean], None, None, batch[ok], batch[clean],
                                                             rounds=rounds, seed=SEED, level=level,
                                                             joint=joint(arm))  # fmt: skip
    both = ok & (one_kind["success"] == 1)
    change = (np.nan, np.nan, np.nan)
    if both.sum() >= rules.MIN_DECIDING:
        base = one_kind["mutual_information"]
        change = metrics.cluster_bootstrap_auc_difference(mi[both], mi[clean], base[both], base[clean], batch[both],
                                                          batch[clean], rounds=rounds, seed=SEED, level=level,
                                                          joint=joint(arm))  # fmt: skip
    verdict = ""
    if arm in rules.BATCHING_ARMS:
        verdict = rules.deployed_detection(lo, hi, int(ok.sum()), change[1], change[2])
    return {"c7_auc": value, "c7_lo": lo, "c7_hi": hi, "n_successful_both": int(both.sum()), "c7_change": change[0],
            "c7_change_lo": change[1], "c7_change_hi": change[2], "verdict": verdict}  # fmt: skip


def _setting_rows(table: dict, attack: str, eps: float) -> dict:
    sel = (table["attack"] == attack) & (table["eps"] == eps)
    return {c: v[sel] for c, v in table.items()}


def scored_arms(folder: Path) -> tuple[str, ...]:
    """The arms whose scores.csv lies under ``folder``, in ARMS order; each must come from one-kind's head
    and attack sets (a partial run adds arms, it never mixes two heads in one table)."""
    base = artifacts.read_json(folder / "one-kind" / "scores.json")["config"]
    found = []
    for arm in batching.ARMS:
        if not (folder / arm / "scores.csv").is_file():
            continue
        config = artifacts.read_json(folder / arm / "scores.json")["config"]
        if {k: config[k] for k in KEY} != {k: base[k] for k in KEY}:
            raise ValueError(f"{folder / arm} was scored with another head or attack sets than one-kind: "
                             "run --batchings all")  # fmt: skip
        found.append(arm)
    return tuple(found)


def table(folder: Path, rounds: int) -> list[dict]:
    """batching.csv's rows from every scored arm's scores.csv under ``folder`` (one-kind's among them), at
    the settings scored (a run at one eps scores its two settings)."""
    base = artifacts.read_table(folder / "one-kind" / "scores.csv")
    present = set(zip(base["attack"], base["eps"]))
    out = []
    for arm in scored_arms(folder):
        mine = artifacts.read_table(folder / arm / "scores.csv")
        for attack, eps in [s for s in batching.SETTINGS if s in present]:
            out.append(summarise(arm, _setting_rows(mine, attack, eps), _setting_rows(base, attack, eps), rounds))
    return out


def markdown(rows: list[dict]) -> str:
    """batching.md from batching.csv's rows."""

    def iv(r, name):
        return f"{r[name]:.3f} [{r[name + '_lo']:.2f}, {r[name + '_hi']:.2f}]"

    lines = ["# Batch composition: does as-coded's MC MI flag an adversarial image among clean ones?", "",
             "Generated by `uncertadv report --dataset catsdogs --variant as-coded --batchings all` (and "
             "`uncertadv render`); do not edit. MC, T = 20, the ablation's as-coded images; intervals 95%, batches "
             "resampled as clusters. Success: correct when clean (one-kind), wrong after the attack in the arm's "
             "batching. Claim 7c (Bonferroni over its 12 rows): the MI AUC of the successful adversarial images "
             "against the clean ones, and its paired change from one-kind.", "",
             "| arm | attack | eps | clean accuracy | label changed | successful | MI AUC vs all | MI AUC vs clean | "
             "MI AUC vs noise | MI AUC, successful vs clean | entropy AUC vs clean | 7c: AUC | 7c: change from "
             "one-kind | 7c verdict |", "|---" * 14 + "|"]  # fmt: skip
    for r in rows:
        both = int(r["n_successful_both"])
        change = (f"{r['c7_change']:+.3f} [{r['c7_change_lo']:+.2f}, {r['c7_change_hi']:+.2f}] on {both}"
                  if not np.isnan(r["c7_change"]) else f"not testable ({both} successful in both)")  # fmt: skip
        lines.append(f"| {r['arm']} | {r['attack']} | {r['eps']:g} | {r['clean_accuracy']:.3f} | "
                     f"{int(r['n_label_changed'])} of {int(r['n_adversarial'])} | {int(r['n_successful'])} | "
                     f"{iv(r, 'mutual_information_auc_all')} | {iv(r, 'mutual_information_auc_clean')} | "
                     f"{iv(r, 'mutual_information_auc_noise')} | {iv(r, 'mutual_information_auc_successful_clean')} | "
                     f"{iv(r, 'predictive_entropy_auc_clean')} | "
                     f"{r['c7_auc']:.3f} [{r['c7_lo']:.2f}, {r['c7_hi']:.2f}] | {change} | "
                     f"{r['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def rendered_markdown(folder: Path) -> str:
    """batching.md as batching.csv renders it."""
    cols = artifacts.read_table(folder / "batching.csv")
    n = len(cols["arm"])
    rows = [{c: v[i] for c, v in cols.items()} for i in range(n)]
    for r in rows:
        r["verdict"] = "" if not isinstance(r["verdict"], str) else r["verdict"]
    return markdown(rows)


def run(cfg: ablation.AblationConfig, arms: tuple[str, ...], trunk=None) -> list[Path]:
    """Score the as-coded images under each arm (one-kind always, as the control), write every arm's
    scores.csv, then batching.{csv,md,json} from them."""
    start = time.perf_counter()
    arms = tuple(dict.fromkeys(("one-kind", *arms)))
    for arm in arms:
        batching.arm_batches(arm, 5, 0, 0)  # an unknown arm fails before any work
    trunks = ablation.Trunks(cfg, trunk)
    x, y = ablation.load_test(cfg)
    data_sha256 = inputs.data_sha256(x, y)
    network, head_record = ablation.ensure_head(cfg, trunks, variants.named(batching.VARIANT))
    folder = cfg.folder / FOLDER
    parts: dict[str, list[dict]] = {arm: [] for arm in arms}
    attack_sets = []
    for attack, eps in [(a, e) for a, e in batching.SETTINGS if e in cfg.eps]:
        s = batching.setting(cfg, network, head_record, x, y, attack, eps)
        attack_sets.append(s.attack_set)
        for arm in arms:
            pool = (
                batching.crafted_images(cfg, network, head_record, s, data_sha256) if arm == "crafted-mixed" else None
            )
            parts[arm].append(batching.score_arm(cfg, trunks, network, s, arm, pool))
    written = []
    for arm, chunks in parts.items():
        path = folder / arm / "scores.csv"
        # six digits, as the ablation's scores: one-kind's file then equals as-coded's rows cell for cell
        artifacts.write_csv(path, {c: np.concatenate([p[c] for p in chunks]) for c in batching.SCORE_COLUMNS}, digits=6)
        key = {"head": head_record["sha256"], "attack_sets": attack_sets, "version": batching.VERSION, "arm": arm}
        artifacts.write_json(path.with_suffix(".json"), artifacts.record(key, start, outputs=[path.name]))
        written += [path, path.with_suffix(".json")]
    arms = scored_arms(folder)  # this run's, and those of earlier runs with the same head and sets
    rows = table(folder, cfg.bootstrap)
    csv_path, md_path = folder / "batching.csv", folder / "batching.md"
    artifacts.write_csv(csv_path, {c: [r[c] for r in rows] for c in COLUMNS})
    artifacts.write_text(md_path, rendered_markdown(folder))
    settings = [list(s) for s in batching.SETTINGS if s[1] in cfg.eps]
    record = artifacts.record({**cfg.recorded(), "arms": list(arms), "settings": settings,
                               "arm_seed": batching.ARM_SEED, "version": batching.VERSION}, start,
                              head={k: head_record[k] for k in ("config", "sha256")},
                              sha256=artifacts.file_sha256(csv_path),
                              outputs=[csv_path.name, md_path.name, *(f"{a}/scores.csv" for a in arms)])  # fmt: skip
    artifacts.write_json(folder / "batching.json", record)
    return [*written, csv_path, md_path, folder / "batching.json"]


def findings(folder: Path) -> str:
    """The ablation README's block: per arm, over its four settings, the range of clean accuracy, of
    successful images, of the MI AUC of the successful images against the clean ones, and claim 7c's
    verdict for the arm (its rows combined)."""
    cols = artifacts.read_table(folder / "batching.csv")
    lines = ["| arm | clean accuracy | successful images | MI AUC, successful vs clean | 7c, the arm's rows |",
             "|---|---|---|---|---|"]  # fmt: skip

    def span(values, digits=3):
        values = np.asarray(values, float)
        values = values[~np.isnan(values)]
        if not len(values):
            return "none"
        lo, hi = values.min(), values.max()
        return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f} to {hi:.{digits}f}"

    for arm in batching.ARMS:
        sel = cols["arm"] == arm
        if not sel.any():
            continue
        verdicts = [v if isinstance(v, str) else "" for v in cols["verdict"][sel]]
        verdict = rules.combine(verdicts) if all(verdicts) else "no verdict (not one of 7c's arms)"
        auc = span(cols["mutual_information_auc_successful_clean"][sel])
        lines.append(f"| {arm} | {span(cols['clean_accuracy'][sel])} | {span(cols['n_successful'][sel], 0)} of "
                     f"{int(cols['n_adversarial'][sel][0])} | {auc} | {verdict} |")  # fmt: skip
    return "\n".join(lines) + "\n"
