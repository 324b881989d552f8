"""The ledger: the claims that the committed Table 1 files can judge, measured per setting from
``scores.csv`` (and ``test_scores.csv``), judged by ``rules``, written to ``CLAIMS.md`` and
``claims.csv``. Reading and bootstrapping only: nothing is trained, attacked or scored.

Each claim spanning several rows (BIM and MIM at each eps, ...) gets every row's interval at the
Bonferroni-corrected level and one combined verdict (``rules.combine``). Comparisons of two attacks
or two predictors pair the rows by source image: every set of a setting draws the same images.
Claims 1, 2, 3 and 5 are read from the MNIST figures' files (the cats-vs-dogs settings have no VAE,
so no latent space); claim 4 is listed as pending, with no verdict: pairing the ensemble's holes
with the single model's by grid point needs per-point flags that no committed file holds.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from uncertadv import artifacts, metrics
from uncertadv.experiments.claims import registry, rules

SETTINGS = {"mnist": "mnist", "catsdogs": "catsdogs", "catsdogs-small": "catsdogs-small"}  # name -> folder
ABLATION = "catsdogs-ablation"  # issue 18: each variant's folder is a setting, "catsdogs-ablation/NAME"
ROUNDS = 1000  # single-row intervals; a claim over k rows takes rules.bootstrap_rounds(k)
SEED = 0
ITERATIVE = ("bim", "mim")
PENDING: tuple[str, ...] = ()  # claims listed without a measurement yet
COLUMNS = ("claim", "setting", "row", "value", "lo", "hi", "n", "verdict", "reason", "source")


def _groups(scores_csv: Path) -> dict[tuple, dict[str, np.ndarray]]:
    """Table 1's rows of scores.csv by ``(attack, eps, predictor)`` (``report.score_groups``), each kind
    sorted by source image, so that two sets' rows line up image for image."""
    from uncertadv.experiments.table1.report import score_groups

    out = {}
    for key, rows in sorted(score_groups(scores_csv).items()):
        order = np.lexsort((rows["index"], rows["kind"]))  # kind, then source image
        out[key] = {c: v[order] for c, v in rows.items()}
    return out


def _kind(rows: dict, kind: str, column: str) -> np.ndarray:
    return rows[column][rows["kind"] == kind].astype(float)


def _paired(a: dict, b: dict, kind: str = "adversarial") -> bool:
    return np.array_equal(_kind(a, kind, "index"), _kind(b, kind, "index"))


def _clusters(rows: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Cluster ids ``([P], [M])`` of the adversarial rows and the negatives where scores within a batch
    are coupled (a ``batch`` column with values: the ablation's batch-statistics variants), else None.
    Such rows are resampled batch by batch; every other setting keeps the row bootstrap."""
    batch = rows.get("batch")
    if batch is None or np.isnan(batch.astype(float)).all():
        return None
    code = {"clean": 0, "noise": 1, "adversarial": 2}
    ids = np.array([code[k] for k in rows["kind"]]) * 100_000 + batch.astype(int)
    adv = rows["kind"] == "adversarial"
    return ids[adv], ids[~adv]


def _auc_interval(rows: dict, measure: str, rounds: int, level: float) -> tuple[float, float]:
    """The bootstrap interval of the adversarial-vs-(clean + noise) AUC of ``measure`` (by batch, where coupled)."""
    pos, neg = _kind(rows, "adversarial", measure), rows[measure][rows["kind"] != "adversarial"].astype(float)
    clusters = _clusters(rows)
    if clusters is None:
        return metrics.bootstrap_auc(pos, neg, rounds=rounds, seed=SEED, level=level)
    return metrics.cluster_bootstrap_auc_difference(pos, neg, None, None, *clusters, rounds=rounds, seed=SEED,
                                                    level=level)[1:]  # fmt: skip


def _row(claim, setting, row, value, lo, hi, n, verdict, reason, source) -> dict:
    return dict(claim=claim, setting=setting, row=row, value=value, lo=lo, hi=hi, n=n, verdict=verdict,
                reason=reason, source=source)  # fmt: skip


def _iterative(groups: dict, predictor: str) -> list[tuple[str, float]]:
    return sorted({(a, e) for a, e, p in groups if a in ITERATIVE and p == predictor})


def _auc_claim(claim, setting, groups, measure, boundary, side, source) -> list[dict]:
    """Claims 6 and 7a: the mc predictor's AUC of ``measure`` against ``boundary`` on BIM and MIM."""
    settings = _iterative(groups, "mc")
    level = 1 - 0.05 / max(len(settings), 1)
    out = []
    for attack, eps in settings:
        rows = groups[(attack, eps, "mc")]
        pos, neg = _kind(rows, "adversarial", measure), rows[measure][rows["kind"] != "adversarial"].astype(float)
        lo, hi = _auc_interval(rows, measure, rules.bootstrap_rounds(len(settings)), level)
        verdict = rules.interval_verdict(lo, hi, boundary, side)
        # context, not the verdict: which kind of negative carries the AUC (as Table 1's split columns)
        halves = ", ".join(f"vs {k} {metrics.roc_auc(pos, _kind(rows, k, measure)):.3f}" for k in ("clean", "noise"))
        out.append(_row(claim, setting, f"{attack} eps {eps:g}", metrics.roc_auc(pos, neg), lo, hi,
                        len(pos) + len(neg), verdict, halves, source))  # fmt: skip
    return out


def _reproduction(setting, groups, paper, source) -> list[dict]:
    """Claim 7b: our mc MI AUC minus the paper's, each with its error, per BIM/MIM row."""
    settings = _iterative(groups, "mc")
    z = rules.corrected_z(max(len(settings), 1))
    out = []
    for attack, eps in settings:
        rows = groups[(attack, eps, "mc")]
        pos = _kind(rows, "adversarial", "mutual_information")
        neg = rows["mutual_information"][rows["kind"] != "adversarial"].astype(float)
        ours = metrics.roc_auc(pos, neg)
        lo95, hi95 = _auc_interval(rows, "mutual_information", ROUNDS, 0.95)
        theirs = paper.get((attack, eps, "mc"))
        if theirs is None:
            out.append(_row("7b", setting, f"{attack} eps {eps:g}", ours, np.nan, np.nan, len(pos) + len(neg),
                            rules.NOT_TESTABLE, "the paper has no value for this row", source))  # fmt: skip
            continue
        paper_se = rules.hanley_mcneil_se(theirs, rules.PAPER_N_ADVERSARIAL, rules.PAPER_N_NEGATIVE)
        verdict, lo, hi = rules.reproduces(ours, rules.se_from_interval(lo95, hi95), theirs, paper_se, z)
        out.append(_row("7b", setting, f"{attack} eps {eps:g}", ours - theirs, lo, hi, len(pos) + len(neg), verdict,
                        f"ours {ours:.3f}, paper {theirs:.3f}", source))  # fmt: skip
    return out


def _success_difference(claim, setting, pairs, side, source) -> list[dict]:
    """Claims 8 and 10: success rate of set a minus set b on the same source images, per pair."""
    level = 1 - 0.05 / max(len(pairs), 1)
    out = []
    for label, a, b in pairs:
        if not _paired(a, b):
            raise ValueError(f"{source}: the sets of {label} do not share their source images")
        sa, sb = _kind(a, "adversarial", "success"), _kind(b, "adversarial", "success")
        rounds = rules.bootstrap_rounds(len(pairs))
        clusters = _clusters(a)
        if clusters is None:
            diff, lo, hi = metrics.paired_bootstrap_mean_difference(sa, sb, rounds=rounds, seed=SEED, level=level)
        else:  # the same batches in both sets (one variant): resample whole batches
            diff, lo, hi = metrics.cluster_bootstrap_mean_difference(sa, sb, clusters[0], rounds=rounds, seed=SEED,
                                                                     level=level)  # fmt: skip
        discordant = int(np.sum(sa != sb))
        verdict, reason = rules.rate_difference(sa.mean(), sb.mean(), lo, hi, discordant, side)
        reason = reason or f"{sa.mean():.3f} vs {sb.mean():.3f}, {discordant} discordant images"
        out.append(_row(claim, setting, label, diff, lo, hi, len(sa), verdict, reason, source))
    return out


def _ensemble_claim(setting, groups, source) -> list[dict]:
    """Claim 11: ensemble MI AUC minus mc MI AUC on the same images (paired bootstrap)."""
    settings = [s for s in _iterative(groups, "mc") if (*s, "ensemble") in groups]
    level = 1 - 0.05 / max(len(settings), 1)
    out = []
    for attack, eps in settings:
        ens, mc = groups[(attack, eps, "ensemble")], groups[(attack, eps, "mc")]
        if not all(_paired(ens, mc, kind) for kind in ("clean", "noise", "adversarial")):
            raise ValueError(f"{source}: the ensemble and mc sets of {attack} eps {eps:g} do not share their images")
        parts = [(_kind(r, "adversarial", "mutual_information"),
                  r["mutual_information"][r["kind"] != "adversarial"].astype(float)) for r in (ens, mc)]  # fmt: skip
        rounds = rules.bootstrap_rounds(len(settings))
        diff, lo, hi = metrics.paired_bootstrap_auc_difference(*parts[0], *parts[1], rounds=rounds, seed=SEED,
                                                               level=level)  # fmt: skip
        out.append(_row("11", setting, f"{attack} eps {eps:g}", diff, lo, hi, len(ens["kind"]),
                        rules.interval_verdict(lo, hi, 0.0), "", source))  # fmt: skip
    return out


def _accuracy_claim(setting, folder: Path, root: Path) -> list[dict]:
    """Claim 9: MC minus deterministic test accuracy, paired on the same test images."""
    table = folder / "test_scores.csv"
    if not table.is_file():
        return [_row("9", setting, "test set", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                     "no per-image test predictions are committed for this setting", "")]  # fmt: skip
    cols = artifacts.read_table(table)
    mc_ok, det_ok = (cols["mc_pred"] == cols["label"]).astype(float), (cols["det_pred"] == cols["label"]).astype(float)
    diff, lo, hi = metrics.paired_bootstrap_mean_difference(mc_ok, det_ok, rounds=ROUNDS, seed=SEED)
    discordant = int(np.sum(mc_ok != det_ok))
    # the count rule only: an accuracy near 1 is not a saturated attack rate
    verdict = rules.interval_verdict(lo, hi, 0.0, "below") if discordant >= rules.MIN_DECIDING else rules.NOT_TESTABLE
    reason = f"MC {mc_ok.mean():.4f} vs deterministic {det_ok.mean():.4f}, {discordant} images disagree"
    if discordant < rules.MIN_DECIDING:
        reason = f"only {discordant} images decide it (fewer than {rules.MIN_DECIDING})"
    return [_row("9", setting, "test set", diff, lo, hi, len(mc_ok), verdict, reason,
                 str(table.relative_to(root)))]  # fmt: skip


def _clean_accuracy_claim(setting: str, groups: dict, source: str) -> list[dict]:
    """Claim 9 on an ablation variant (the authors' code has no test for it; rule fixed before the run):
    the N clean images of the first attack setting, which both predictors score, MC minus point-estimate
    accuracy, paired by image (by batch where outputs are coupled)."""
    keys = sorted({(a, e) for a, e, p in groups if (a, e, "mc") in groups and (a, e, "deterministic") in groups})
    if not keys:
        return [_row("9", setting, "clean images", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                     "no setting has both predictors", source)]  # fmt: skip
    mc, det = groups[(*keys[0], "mc")], groups[(*keys[0], "deterministic")]
    if not _paired(mc, det, "clean"):
        raise ValueError(f"{source}: the mc and deterministic sets do not share their clean images")
    ok = [(_kind(r, "clean", "pred") == _kind(r, "clean", "label")).astype(float) for r in (mc, det)]
    if _clusters(mc) is None:
        diff, lo, hi = metrics.paired_bootstrap_mean_difference(*ok, rounds=ROUNDS, seed=SEED)
    else:  # the clean images' own batches
        batch = _kind(mc, "clean", "batch")
        diff, lo, hi = metrics.cluster_bootstrap_mean_difference(*ok, batch, rounds=ROUNDS, seed=SEED)
    discordant = int(np.sum(ok[0] != ok[1]))
    verdict = rules.interval_verdict(lo, hi, 0.0, "below") if discordant >= rules.MIN_DECIDING else rules.NOT_TESTABLE
    reason = f"MC {ok[0].mean():.3f} vs point estimate {ok[1].mean():.3f}, {discordant} images disagree"
    if discordant < rules.MIN_DECIDING:
        reason = f"only {discordant} images decide it (fewer than {rules.MIN_DECIDING})"
    return [_row("9", setting, f"clean images of {keys[0][0]} eps {keys[0][1]:g}", diff, lo, hi, len(ok[0]), verdict,
                 reason, source)]  # fmt: skip


def settings(root: Path) -> dict[str, str]:
    """The settings judged under ``root``: SETTINGS, then each ablation variant with a scores.csv or an
    adaptive.csv, in the ablation's order."""
    from uncertadv.experiments.catsdogs import variants

    found = {f"{ABLATION}/{n}": f"{ABLATION}/{n}" for n in variants.ablation()
             if any((root / ABLATION / n / f).is_file() for f in ("scores.csv", "adaptive.csv"))}  # fmt: skip
    return {**SETTINGS, **found}


def _table_claims(setting, groups, paper, source) -> list[dict]:
    """Claims 6, 7a, 7b, 8 and 10 from one setting's Table 1 rows."""
    rows = _auc_claim("6", setting, groups, "predictive_entropy", 0.5, "below", source)
    rows += _auc_claim("7a", setting, groups, "mutual_information", 0.5, "above", source)
    if setting.startswith("catsdogs"):
        rows += _reproduction(setting, groups, paper, source)
    else:
        rows.append(_row("7b", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                         "the paper's Table 1 is on cats vs dogs only", source))  # fmt: skip
    eps_list = sorted({e for _, e, _ in groups})
    predictors = sorted({p for _, _, p in groups})
    rows += _success_difference("8", setting, [
        (f"{a} - fgm, eps {e:g}, {p}", groups[(a, e, p)], groups[("fgm", e, p)])
        for e in eps_list for p in predictors for a in ITERATIVE
        if (a, e, p) in groups and ("fgm", e, p) in groups], "above", source)  # fmt: skip
    pairs = [(f"{a} eps {e:g}: mc - deterministic", groups[(a, e, "mc")], groups[(a, e, "deterministic")])
             for a in ("fgm", *ITERATIVE) for e in eps_list
             if (a, e, "mc") in groups and (a, e, "deterministic") in groups]  # fmt: skip
    rows += _success_difference("10a", setting, pairs, "above", source)
    rows += _success_difference("10b", setting, pairs, "below", source)
    return rows


def _figure_claims(setting: str, folder: Path, root: Path) -> list[dict]:
    """Claims 1-5 from the MNIST figures' files (Figs. 3, 4, 5, 6 and Sec. 3.2)."""
    files = {"1": folder / "interpolation_midpoints.csv", "2": folder / "cache" / "latent_grid_mc.csv",
             "3": folder / "holes.csv", "5": folder / "test_scores.csv"}  # fmt: skip
    out = _softmax_variance_claim(setting, files["5"], root)
    if not files["2"].is_file():
        reason = "no latent space in this setting (the paper's VAE is MNIST's)"
        return out + [_row(c, setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, reason, "")
                      for c in ("1", "2", "3", "4")]  # fmt: skip
    src = {c: str(f.relative_to(root)) for c, f in files.items()}
    mid = artifacts.read_table(files["1"])  # Fig. 3: pixel (positive) vs latent midpoints, the same pairs
    pixel, latent = mid["space"] == "pixel", mid["space"] == "latent"
    args = [mid["mutual_information"][pixel], mid["mutual_information"][latent]]
    args += [mid["predictive_entropy"][pixel], mid["predictive_entropy"][latent]]
    diff, lo, hi = metrics.paired_bootstrap_auc_difference(*args, rounds=ROUNDS, seed=SEED)
    out.append(_row("1", setting, "MI AUC - entropy AUC", diff, lo, hi, int(pixel.sum() + latent.sum()),
                    rules.interval_verdict(lo, hi, 0.0), "", src["1"]))  # fmt: skip
    grid = artifacts.read_table(files["2"])  # Fig. 4: the mc predictor's latent grid
    pe, mi = grid["predictive_entropy"], grid["mutual_information"]
    top_pe, top_mi = pe >= np.quantile(pe, 0.9), mi >= np.quantile(mi, 0.9)
    both = int(np.sum(top_pe & top_mi))
    lo, hi = metrics.wilson_interval(both, int(top_pe.sum()))
    out.append(_row("2", setting, "top-10% entropy points also top-10% MI", both / top_pe.sum(), lo, hi,
                    int(top_pe.sum()), rules.interval_verdict(lo, hi, 0.5, "below"), "", src["2"]))  # fmt: skip
    holes = artifacts.read_table(files["3"])  # Fig. 5: far, confident, low-MI grid points
    for i in np.flatnonzero(holes["predictor"] == "mc"):
        count, n = int(holes["hole_points"][i]), int(holes["grid_points"][i])
        lo, hi = metrics.wilson_interval(count, n)
        out.append(_row("3", setting, "mc: share of grid points that are holes", count / n, lo, hi, n,
                        rules.interval_verdict(lo, hi, 0.0), "", src["3"]))  # fmt: skip
    return out + [_ensemble_holes_claim(setting, folder / "holes_grid.csv", holes, root)]


def _ensemble_holes_claim(setting: str, path: Path, holes: dict[str, np.ndarray], root: Path) -> dict:
    """Claim 4 (Fig. 6): the ensemble's share of grid points that are holes minus the mc one's, paired
    by grid point (holes_grid.csv lists the far points; every other point is a hole for neither)."""
    if not path.is_file():
        return _row("4", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                    "no per-grid-point hole flags (holes_grid.csv, written by `uncertadv plot all`)", "")  # fmt: skip
    far = artifacts.read_table(path)
    grid_points = int(holes["grid_points"][0])
    hole = {p: np.zeros(grid_points) for p in ("mc", "ensemble")}
    for p in hole:
        hole[p][far["grid_index"].astype(int)] = far[f"hole_{p}"]
        if hole[p].sum() != holes["hole_points"][holes["predictor"] == p].sum():  # one run's files, not two
            raise ValueError(f"{path} and holes.csv disagree on the {p} hole count; run `uncertadv plot all` again")
    diff, lo, hi = metrics.paired_bootstrap_mean_difference(hole["ensemble"], hole["mc"], rounds=ROUNDS, seed=SEED)
    reason = "neighbouring grid points are not independent, so the interval is narrower than the data warrant"
    return _row("4", setting, "ensemble - mc: share of grid points that are holes", diff, lo, hi, grid_points,
                rules.interval_verdict(lo, hi, 0.0, "below"), reason, str(path.relative_to(root)))  # fmt: skip


def _softmax_variance_claim(setting: str, path: Path, root: Path) -> list[dict]:
    """Claim 5 (Sec. 3.2): softmax variance against MI on the test images."""
    test = artifacts.read_table(path) if path.is_file() else {}
    if "softmax_variance" not in test or "mutual_information" not in test:
        reason = "no per-image test scores of softmax variance and MI are committed for this setting"
        return [_row("5", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, reason, "")]
    rho, lo, hi = _spearman_interval(test["softmax_variance"], test["mutual_information"])
    return [_row("5", setting, "Spearman(softmax variance, MI), test images", rho, lo, hi, len(test["index"]),
                 rules.interval_verdict(lo, hi, 0.9), "", str(path.relative_to(root)))]  # fmt: skip


def _spearman_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Spearman's rho of ``a`` and ``b`` ``[N]`` with a percentile bootstrap 95% interval (pairs resampled)."""
    from scipy.stats import spearmanr

    idx = np.random.default_rng(SEED).integers(0, len(a), (ROUNDS, len(a)))
    rhos = np.array([spearmanr(a[i], b[i]).statistic for i in idx])
    return float(spearmanr(a, b).statistic), float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))


def paper_table() -> dict[tuple, float]:
    """The paper's Table 1 (cats vs dogs): ``{(attack, eps, predictor): MI AUC}``."""
    table = artifacts.read_table(importlib.resources.files("uncertadv.assets") / "paper_table1.csv")
    return {(a, float(e), p): float(m) for a, e, p, m in
            zip(table["attack"], table["eps"], table["predictor"], table["mi_auc"]) if not np.isnan(m)}  # fmt: skip


def measure(root: Path) -> list[dict]:
    """Every measured row, then one combined row per (claim, setting)."""
    paper = paper_table()
    rows: list[dict] = []
    for setting, name in settings(root).items():
        folder = root / name
        scores = folder / "scores.csv"
        if setting.startswith(ABLATION):  # the paper's Table 1 grid, and the adaptive suite where it ran (as-coded)
            if scores.is_file():
                source, groups = str(scores.relative_to(root)), _groups(scores)
                rows += _table_claims(setting, groups, paper, source) + _clean_accuracy_claim(setting, groups, source)
            if (folder / "adaptive.csv").is_file():
                rows += _adaptive_claims(setting, folder, root)
            continue
        if not scores.is_file():
            continue
        source = str(scores.relative_to(root))
        groups = _groups(scores)
        rows += _figure_claims(setting, folder, root)
        rows += _table_claims(setting, groups, paper, source)
        rows += _ensemble_claim(setting, groups, source)
        rows += _accuracy_claim(setting, folder, root)
        rows += _adaptive_claims(setting, folder, root)
    return rows + _combined(rows)


def _adaptive_claims(setting: str, folder: Path, root: Path) -> list[dict]:
    """Claims 12a and 12b per worst-case row of the suite's adaptive.csv (5% FPR); not testable without one."""
    path = folder / "adaptive.csv"
    table = artifacts.read_table(path) if path.is_file() else {}
    if not table or "tail" not in table:
        reason = "the adaptive suite's worst-case rows (issue 19) do not exist yet"
        return [_row(c, setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, reason, "")
                for c in ("12a", "12b")]  # fmt: skip
    source = str(path.relative_to(root))
    out = []
    for i in np.flatnonzero(table["attack"] == "worst-case"):
        r = {k: v[i] for k, v in table.items()}
        label = f"{r['predictor']} {r['measure']} {r['tail']} eps {r['eps']:g}, {r['attacker']}"
        gain, nearly_all = rules.worst_case_evasion([r])
        reason = "worst-case minus pgd evasion at 5% FPR, paired by source image"
        if r["attacker"] == "known":  # it sees the verdict, and PGD is its first candidate: >= PGD by construction
            gain, reason = rules.NOT_TESTABLE, "the known attacker's worst case is at least PGD's by construction"
        out.append(_row("12a", setting, label, r["evasion_gain"], r["evasion_gain_lo"], r["evasion_gain_hi"], r["n"],
                        gain, reason, source))  # fmt: skip
        out.append(_row("12b", setting, label, r["evasion_rate"], r["evasion_rate_lo"], r["evasion_rate_hi"], r["n"],
                        nearly_all, f"against 0.9 x success rate {r['success_rate']:.3f}", source))  # fmt: skip
    return out


def _combined(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["claim"], r["setting"]) for r in rows if r["row"] != "all"}, key=_order)
    for claim, setting in keys:
        mine = [r for r in rows if r["claim"] == claim and r["setting"] == setting]
        verdict = rules.combine([r["verdict"] for r in mine])
        reason = f"{len(mine)} rows combined" if len(mine) > 1 else mine[0]["reason"]
        out.append(_row(claim, setting, "all", np.nan, np.nan, np.nan, None, verdict, reason, mine[0]["source"]))
    return out


def _order(key: tuple) -> tuple:
    """Claims in the registry's order; settings as SETTINGS, then the ablation's variants in their order."""
    from uncertadv.experiments.catsdogs import variants

    ids = [c.id for c in registry.CLAIMS]
    order = [*SETTINGS, *(f"{ABLATION}/{n}" for n in variants.ablation())]
    return ids.index(key[0]), order.index(key[1])


def write(root: Path) -> list[Path]:
    """``ROOT/claims.csv`` and ``ROOT/CLAIMS.md`` from the committed files under ``root``."""
    import time

    start = time.perf_counter()
    rows = sorted(measure(root), key=lambda r: (*_order((r["claim"], r["setting"])), r["row"] != "all"))
    artifacts.write_csv(root / "claims.csv", {c: [r[c] for r in rows] for c in COLUMNS})
    # rendered from the rows as stored, so that CLAIMS.md re-renders from claims.csv alone
    artifacts.write_text(root / "CLAIMS.md", markdown(read_rows(root / "claims.csv")))
    artifacts.write_json(root / "claims.json", artifacts.record({"rounds": ROUNDS, "seed": SEED,
                                                                 "settings": list(settings(root))}, start,
                                                                outputs=["claims.csv", "CLAIMS.md"]))  # fmt: skip
    return [root / "claims.csv", root / "CLAIMS.md", root / "claims.json"]


def read_rows(path: Path) -> list[dict]:
    """claims.csv's rows as written by ``write`` (empty cells: NaN, or None for ``n``)."""
    cols = artifacts.read_csv(path)
    number = lambda v: float(v) if v != "" else float("nan")  # noqa: E731
    return [{"claim": cols["claim"][i], "setting": cols["setting"][i], "row": cols["row"][i],
             "value": number(cols["value"][i]), "lo": number(cols["lo"][i]), "hi": number(cols["hi"][i]),
             "n": int(cols["n"][i]) if cols["n"][i] != "" else None, "verdict": cols["verdict"][i],
             "reason": cols["reason"][i], "source": cols["source"][i]} for i in range(len(cols["claim"]))]  # fmt: skip


def _fmt(value: float) -> str:
    return "" if isinstance(value, float) and np.isnan(value) else f"{value:.3f}"


def markdown(rows: list[dict]) -> str:
    """CLAIMS.md: the verdict rules, then one section per claim with its verdict per setting."""
    lines = [
        "# The paper's claims, judged (generated by `uncertadv claims`; do not edit)",
        "",
        "Each claim has a rule fixed in code (`uncertadv/experiments/claims/`) before the results it judges. "
        "Verdicts: **holds** (the 95% interval lies on the claim's side), **does not hold** (on the other side), "
        "**inconclusive** (it straddles), **not testable here** (with the reason), **mixed** (rows disagree). "
        f"A claim on k rows takes each row's interval at the Bonferroni level 1 - 0.05/k. Rates that are both "
        f">= {rules.SATURATION:g}, or comparisons that fewer than {rules.MIN_DECIDING} images decide, are not "
        "testable. Differences of two attacks or predictors are paired by source image. Intervals are percentile "
        f"bootstraps (seed {SEED}; at least {ROUNDS} rounds, and for k rows enough that each Bonferroni tail holds "
        "50 draws), except Wilson intervals for the shares of claims 2 and 3 and a normal interval for the "
        "difference from the paper (7b); success is the table's (correct when clean, wrong after the attack). "
        "The paper's AUCs carry their Hanley-McNeil error "
        f"({rules.PAPER_N_ADVERSARIAL} adversarial, {rules.PAPER_N_NEGATIVE} negative images). AUC < 0.5 means "
        "the measure ranks adversarial images as less uncertain than clean and noisy ones. The notes of claims 6 "
        "and 7a give each row's AUC against the clean and the noisy negatives alone, so that a reader sees which "
        "half carries it; the verdict uses both.",
        "",
    ]
    for claim in registry.CLAIMS:
        lines += [f"## {claim.id}. {claim.text} ({claim.where})", "", f"Rule: {claim.rule}.", ""]
        if claim.id in PENDING:
            lines += ["Pending: this version of the ledger does not measure it yet (no verdict).", ""]
            continue
        mine = [r for r in rows if r["claim"] == claim.id]
        lines += ["| setting | row | value | interval | n | verdict | note |", "|---|---|---|---|---|---|---|"]
        for r in mine:
            interval = f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}]" if _fmt(r["lo"]) else ""
            verdict = f"**{r['verdict']}**" if r["row"] == "all" else r["verdict"]
            n = "" if r["n"] is None else r["n"]
            lines.append(f"| {r['setting']} | {r['row']} | {_fmt(r['value'])} | {interval} | {n} | {verdict} "
                         f"| {r['reason']} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)
