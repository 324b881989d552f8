"""Verdict rules of the claims ledger: pure functions from intervals and counts to a verdict.

Verdicts (``VERDICTS``):

- ``holds``: the 95% interval lies wholly on the claim's side of its boundary;
- ``does not hold``: it lies wholly on the other side;
- ``inconclusive``: it straddles the boundary;
- ``not testable here``: the data cannot decide, with the reason (too few successful images, no
  image scored both ways, missing rows);
- ``mixed``: a claim judged on several rows (BIM and MIM at each eps) holds in some rows and
  does not hold in others.

Several rows: each row's interval is taken at the Bonferroni-corrected level (``corrected_z``:
familywise 95% over the k rows), then ``combine`` applies: every testable row holds -> holds;
every one does not hold -> does not hold; both kinds present -> mixed; otherwise inconclusive.
Rows that are not testable are left out, and if none is left the claim is not testable.

Two rates on the same images (``paired_verdict``, revision 4): an exact McNemar interval; fewer than
MIN_DECIDING discordant images leave it inconclusive, and only a setting with no image scored both
ways is not testable.

The paper's numbers carry sampling error too. Its cats-vs-dogs rates are multiples of 1/300, so
they are binomial estimates with N = PAPER_N_ADVERSARIAL; its AUCs get the Hanley-McNeil standard
error with PAPER_N_ADVERSARIAL positives and PAPER_N_NEGATIVE negatives (its code scores N
adversarial images against 2N clean and noisy ones). Claim 7b compares our AUC with the paper's by
``seeds_reproduce`` (revision 7: the mean over head seeds, within +-EQUIVALENCE); ``reproduces``, the
rule before it (the interval of the difference includes 0), gives the old verdict shown beside it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
MIXED = "mixed"
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_TESTABLE, MIXED)

MIN_DECIDING = 20
PAPER_N_ADVERSARIAL = 300
PAPER_N_NEGATIVE = 600
LEVEL = 0.95


def bootstrap_rounds(k: int = 1, tail_draws: int = 50) -> int:
    """Bootstrap rounds for a Bonferroni interval over ``k`` rows: enough that each tail, of mass
    (1 - LEVEL) / (2k), holds ``tail_draws`` draws (a percentile on a handful of draws flips with the seed)."""
    return max(1000, math.ceil(tail_draws * 2 * k / (1 - LEVEL)))


def corrected_z(k: int = 1, level: float = LEVEL) -> float:
    """The two-sided normal quantile for a familywise ``level`` over ``k`` rows (Bonferroni)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return NormalDist().inv_cdf(1 - (1 - level) / (2 * k))


def interval_verdict(lo: float, hi: float, boundary: float, side: str = "above") -> str:
    """``holds`` if ``[lo, hi]`` lies wholly ``above`` (or ``below``) ``boundary``, ``does not hold``
    if wholly on the other side, ``inconclusive`` if it straddles; NaN bounds: not testable."""
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    if math.isnan(lo) or math.isnan(hi) or math.isnan(boundary):
        return NOT_TESTABLE
    if lo > hi:
        raise ValueError(f"the interval's bounds are reversed: [{lo}, {hi}]")
    above, below = lo > boundary, hi < boundary
    if side == "below":
        above, below = below, above
    return HOLDS if above else DOES_NOT_HOLD if below else INCONCLUSIVE


def paired_verdict(lo: float, hi: float, n_discordant: int, n: int, side: str = "above") -> str:
    """A paired difference of two rates on the same ``n`` images with interval ``[lo, hi]`` (claims 8, 9,
    10a, 10b, revision 4): not testable only with no image scored both ways; inconclusive below
    MIN_DECIDING discordant images, whatever the interval; else ``interval_verdict`` against 0."""
    if n == 0:
        return NOT_TESTABLE
    if n_discordant < MIN_DECIDING:
        return INCONCLUSIVE
    return interval_verdict(lo, hi, 0.0, side)


def combine(verdicts: list[str]) -> str:
    """One verdict for a claim judged on several rows (see the module doc)."""
    bad = [v for v in verdicts if v not in VERDICTS]
    if bad:
        raise ValueError(f"unknown verdict {bad[0]!r}; choose from {', '.join(VERDICTS)}")
    testable = [v for v in verdicts if v != NOT_TESTABLE]
    if not testable:
        return NOT_TESTABLE
    if all(v == HOLDS for v in testable):
        return HOLDS
    if all(v == DOES_NOT_HOLD for v in testable):
        return DOES_NOT_HOLD
    if (HOLDS in testable and DOES_NOT_HOLD in testable) or MIXED in testable:
        return MIXED
    return INCONCLUSIVE


BATCHING_ARMS = ("mixed", "one-adversarial", "crafted-mixed")  # claim 7c's arms: as a deployed detector meets images
BATCHING_SETTINGS = (("bim", 5.0), ("bim", 10.0), ("mim", 5.0), ("mim", 10.0))  # the ablation's BIM/MIM grid
BATCHING_ROWS = 12  # the three arms x BIM, MIM x eps 5, 10


def deployed_detection(lo: float, hi: float, n_successful: int, change_lo: float, change_hi: float) -> str:
    """Claim 7c on one row (an arm, an attack, an eps): the MI AUC of the arm's successful adversarial
    images against the clean images alone, interval ``[lo, hi]`` at 1 - 0.05/BATCHING_ROWS, and its paired
    change from ``one-kind`` on the images successful in both arms, ``[change_lo, change_hi]`` at the same
    level. Fewer than MIN_DECIDING successful images: not testable. ``holds`` if the AUC's interval lies
    above 0.5; ``does not hold`` if its upper bound is below 0.6 and the change's interval lies below 0;
    ``inconclusive`` otherwise (a change on fewer than MIN_DECIDING images is NaN: not below 0)."""
    if n_successful < MIN_DECIDING or math.isnan(lo) or math.isnan(hi):
        return NOT_TESTABLE
    if lo > 0.5:
        return HOLDS
    if hi < 0.6 and not math.isnan(change_hi) and change_hi < 0:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def combine_arms(verdicts: dict[str, list[str]]) -> str:
    """Claim 7c: each arm's rows combined, then the arms combined (so that arms that disagree are ``mixed``)."""
    return combine([combine(rows) for rows in verdicts.values()])


def hanley_mcneil_se(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of an AUC from ``n_positive`` and ``n_negative`` scores (Hanley & McNeil 1982, eq. 2)."""
    if not 0 <= auc <= 1 or n_positive < 1 or n_negative < 1:
        raise ValueError(f"need an AUC in [0, 1] and counts >= 1, got {auc}, {n_positive}, {n_negative}")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)) / (
        n_positive * n_negative
    )
    return math.sqrt(max(var, 0.0))


def binomial_se(rate: float, n: int) -> float:
    """Standard error of a rate estimated from ``n`` images."""
    if not 0 <= rate <= 1 or n < 1:
        raise ValueError(f"need a rate in [0, 1] and n >= 1, got {rate}, {n}")
    return math.sqrt(rate * (1 - rate) / n)


def se_from_interval(lo: float, hi: float, level: float = LEVEL) -> float:
    """The standard error a symmetric normal ``level`` interval ``[lo, hi]`` implies."""
    return (hi - lo) / (2 * corrected_z(1, level))


def reproduces(
    ours: float, ours_se: float, paper: float, paper_se: float, z: float | None = None
) -> tuple[str, float, float]:
    """``(verdict, lo, hi)``: ours - paper with its interval (``z``: default 95%); the value
    reproduces (``holds``) when the interval includes 0, and ``does not hold`` otherwise."""
    z = corrected_z() if z is None else z
    diff, se = ours - paper, math.hypot(ours_se, paper_se)
    lo, hi = diff - z * se, diff + z * se
    if math.isnan(lo) or math.isnan(hi):
        return NOT_TESTABLE, lo, hi
    return (HOLDS if lo <= 0 <= hi else DOES_NOT_HOLD), lo, hi


EQUIVALENCE = 0.05  # claim 7b (revision 7): our AUC reproduces the paper's if within this margin


def seeds_reproduce(aucs: list[float], ses: list[float], paper: float, paper_se: float, k: int = 1):
    """Claim 7b over head seeds (revision 7): ``aucs`` and bootstrap ``ses`` of one row, one per seed.
    The estimate is their mean; SE^2 = s_b^2 / S + mean(se^2) + paper_se^2 (the seeds share the images,
    so the bootstrap variance is not divided by S); degrees of freedom by Welch-Satterthwaite (only the
    seeds' term is estimated from S - 1 degrees of freedom; one seed: s_b = 0, normal); the interval of
    ours - paper at 1 - 0.05/k. ``holds`` if it lies within +-EQUIVALENCE, ``does not hold`` if it
    excludes 0, ``inconclusive`` otherwise. Returns ``(verdict, difference, lo, hi, dof)``."""
    from scipy.stats import t as student

    n = len(aucs)
    if n == 0 or n != len(ses):
        raise ValueError("need one AUC and one standard error per seed")
    between = float(np.var(aucs, ddof=1)) / n if n > 1 else 0.0
    var = between + float(np.mean(np.square(ses))) + paper_se**2
    dof = var**2 / (between**2 / (n - 1)) if between > 0 else math.inf
    q = corrected_z(k) if math.isinf(dof) else float(student.ppf(1 - (1 - LEVEL) / (2 * k), dof))
    diff = float(np.mean(aucs)) - paper
    lo, hi = diff - q * math.sqrt(var), diff + q * math.sqrt(var)
    if math.isnan(lo) or math.isnan(hi):
        return NOT_TESTABLE, diff, lo, hi, dof
    if -EQUIVALENCE <= lo and hi <= EQUIVALENCE:
        return HOLDS, diff, lo, hi, dof
    return (DOES_NOT_HOLD if lo > 0 or hi < 0 else INCONCLUSIVE), diff, lo, hi, dof


def worst_case_evasion(rows: list[dict]) -> tuple[str, str]:
    """Claim 12, per (setting, predictor, measure, tail) at 5% FPR, from the ``worst-case`` rows the
    adaptive suite writes: ``(verdict of 12a, verdict of 12b)``.

    12a, the detector-aware per-image worst case evades more often than plain PGD: the paired
    gain's interval (``evasion_gain_lo``, ``evasion_gain_hi``) lies above 0. 12b, it evades nearly
    all the images it fools: the evasion rate's interval (``evasion_rate_lo``, ``evasion_rate_hi``)
    lies above 0.9 x ``success_rate`` (below it: does not hold; across it: inconclusive). Rows are
    combined with ``combine``; with no rows both are not testable."""
    if not rows:
        return NOT_TESTABLE, NOT_TESTABLE
    gains = [interval_verdict(r["evasion_gain_lo"], r["evasion_gain_hi"], 0.0) for r in rows]
    nearly_all = [interval_verdict(r["evasion_rate_lo"], r["evasion_rate_hi"], 0.9 * r["success_rate"]) for r in rows]
    return combine(gains), combine(nearly_all)
