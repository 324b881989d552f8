"""Claims 12a and 12b of the ledger, recomputed from the adaptive suite's per-image file
(``adaptive_images.csv``) at the Bonferroni level (revision 1): the suite's own intervals in
``adaptive.csv`` are unadjusted 95% intervals, and the registry takes a claim's rows at 1 - 0.05/k.

k is the number of judged rows of the claim on the setting: 12a judges the fresh attacker's rows
only (the known attacker's worst case is at least PGD's by construction), 12b every worst-case row.
The intervals are the suite's: a paired bootstrap over source images of worst-case minus PGD evasion
(12a) and a Wilson interval of the evasion rate (12b). Where outputs are coupled within batches
(the as-coded suite) the suite resamples whole batches of the images and of the detector's fit
images, re-fitting the threshold each round; that needs the fit scores (``adaptive_fit_scores.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertadv import artifacts, metrics
from uncertadv.experiments.claims import rules

SEED = 0
NOT_YET = "the adaptive suite's worst-case rows (issue 19) do not exist yet"
KNOWN = "the known attacker's worst case is at least PGD's by construction"


def _row(claim, setting, name, value, lo, hi, n, verdict, reason, source) -> dict:
    return dict(claim=claim, setting=setting, row=name, value=value, lo=lo, hi=hi, n=n, verdict=verdict,
                reason=reason, source=source)  # fmt: skip


def _images(table: dict, key: dict, attack: str) -> dict[str, np.ndarray]:
    """One row's images of ``adaptive_images.csv`` (``attack``: the worst case, or the PGD set it is paired
    with), sorted by source image. The feature head's file names the attack by an empty attacker."""
    sel = np.ones(len(table["index"]), bool)
    for column, value in key.items():
        if column in table:
            sel &= table[column] == value
    if "attack" in table:
        sel &= table["attack"] == attack
    elif attack == "pgd":
        sel &= table["attacker"] == ""
    # batch-coupled rows stay in their batches' order (the suite's bootstrap cuts them into batches)
    order = np.arange(sel.sum()) if "batch" in table else np.argsort(table["index"][sel], kind="stable")
    return {c: v[sel][order] for c, v in table.items()}


def _intervals(wc: dict, pgd: dict, level: float, rounds: int, fit_scores: np.ndarray | None, tail: str):
    """``(gain_lo, gain_hi, rate_lo, rate_hi)`` of one worst-case row at ``level``."""
    if not np.array_equal(wc["index"], pgd["index"]):
        raise ValueError("a worst-case row and its PGD row do not share their source images")
    evaded, pgd_evaded = wc["evaded_fpr05"].astype(float), pgd["evaded_fpr05"].astype(float)
    if fit_scores is None:
        _, gain_lo, gain_hi = metrics.paired_bootstrap_mean_difference(evaded, pgd_evaded, rounds=rounds, seed=SEED,
                                                                       level=level)  # fmt: skip
        rate_lo, rate_hi = metrics.wilson_interval(int(evaded.sum()), len(evaded), level)
        return gain_lo, gain_hi, rate_lo, rate_hi
    from uncertadv.experiments.adaptive import as_coded_suite

    judged = {"u": wc["u"].astype(float), "success": wc["success"].astype(bool), "evaded_fpr05": evaded}
    pgd_judged = {"u": pgd["u"].astype(float), "success": pgd["success"].astype(bool), "evaded_fpr05": pgd_evaded}
    iv = as_coded_suite.batch_intervals(judged, fit_scores, tail, pgd=pgd_judged, rounds=rounds, seed=SEED,
                                        level=level)  # fmt: skip
    return (*iv["gain"], *iv["evasion"])


def claims(setting: str, folder: Path, root: Path) -> list[dict]:
    """Claims 12a and 12b per worst-case row of the suite's adaptive.csv (5% FPR); not testable without one."""
    path = folder / "adaptive.csv"
    table = artifacts.read_table(path) if path.is_file() else {}
    if not table or "tail" not in table:
        return [_row(c, setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, NOT_YET, "")
                for c in ("12a", "12b")]  # fmt: skip
    source = str(path.relative_to(root))
    images = artifacts.read_table(folder / "adaptive_images.csv")
    coupled = "batch" in images
    fit_path = folder / "adaptive_fit_scores.csv"
    fit_scores = artifacts.read_table(fit_path)["u"].astype(float) if coupled and fit_path.is_file() else None
    worst = [{k: v[i] for k, v in table.items()} for i in np.flatnonzero(table["attack"] == "worst-case")]
    k = {"12a": max(sum(r["attacker"] == "fresh" for r in worst), 1), "12b": max(len(worst), 1)}
    out = []
    for r in worst:
        label = f"{r.get('predictor', 'mc')} {r.get('measure', 'mutual_information')} {r['tail']} eps {r['eps']:g}, "
        label += r["attacker"]
        key = {c: r[c] for c in ("eps", "predictor", "measure", "tail") if c in r}
        if coupled and fit_scores is None:
            reason = f"batch-coupled outputs: the fit scores that the re-fitted threshold needs ({fit_path.name}) "
            reason += "are not committed"
            out += [_row(c, setting, label, np.nan, np.nan, np.nan, r["n"], rules.NOT_TESTABLE, reason, source)
                    for c in ("12a", "12b")]  # fmt: skip
            continue
        wc, pgd = _images(images, {**key, "attacker": r["attacker"]}, "worst-case"), _images(images, key, "pgd")
        ivs = {c: _intervals(wc, pgd, 1 - 0.05 / k[c], rules.bootstrap_rounds(k[c]), fit_scores, r["tail"])
               for c in ("12a", "12b")}  # fmt: skip
        gain_lo, gain_hi = ivs["12a"][:2]
        rate_lo, rate_hi = ivs["12b"][2:]
        gain, nearly_all = rules.worst_case_evasion(
            [
                {
                    **r,
                    "evasion_gain_lo": gain_lo,
                    "evasion_gain_hi": gain_hi,
                    "evasion_rate_lo": rate_lo,
                    "evasion_rate_hi": rate_hi,
                }
            ]
        )
        reason = f"worst-case minus pgd evasion at 5% FPR, paired by source image; Bonferroni over {k['12a']} rows"
        if r["attacker"] == "known":
            gain, reason = rules.NOT_TESTABLE, KNOWN
        out.append(_row("12a", setting, label, r["evasion_gain"], gain_lo, gain_hi, r["n"], gain, reason, source))
        out.append(_row("12b", setting, label, r["evasion_rate"], rate_lo, rate_hi, r["n"], nearly_all,
                        f"against 0.9 x success rate {r['success_rate']:.3f}; Bonferroni over {k['12b']} rows",
                        source))  # fmt: skip
    return out
