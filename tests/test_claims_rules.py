"""The claims ledger's verdict rules on constructed cases whose verdict is known (issue 17): they are
committed before the measurements they judge."""

import math

import numpy as np
import pytest

from uncertadv.experiments.claims import registry, rules


def test_an_interval_on_one_side_holds_or_not_and_one_across_is_inconclusive():
    assert rules.interval_verdict(0.55, 0.70, 0.5) == rules.HOLDS
    assert rules.interval_verdict(0.20, 0.45, 0.5) == rules.DOES_NOT_HOLD
    assert rules.interval_verdict(0.45, 0.60, 0.5) == rules.INCONCLUSIVE  # straddles the claim
    assert rules.interval_verdict(0.20, 0.45, 0.5, side="below") == rules.HOLDS
    assert rules.interval_verdict(float("nan"), 0.6, 0.5) == rules.NOT_TESTABLE
    with pytest.raises(ValueError, match="reversed"):
        rules.interval_verdict(0.7, 0.6, 0.5)


def test_rows_that_disagree_are_mixed_and_partial_evidence_is_inconclusive():
    h, d, i, n = rules.HOLDS, rules.DOES_NOT_HOLD, rules.INCONCLUSIVE, rules.NOT_TESTABLE
    assert rules.combine([h, h, h]) == h and rules.combine([d, d]) == d
    assert rules.combine([h, d, h]) == rules.MIXED
    assert rules.combine([h, i]) == i and rules.combine([d, i, n]) == i
    assert rules.combine([h, n, n]) == h and rules.combine([n, n]) == n
    with pytest.raises(ValueError, match="unknown verdict"):
        rules.combine(["true"])


def test_bonferroni_widens_each_rows_interval():
    assert rules.corrected_z(1) == pytest.approx(1.959964, abs=1e-6)
    assert rules.corrected_z(4) == pytest.approx(2.497705, abs=1e-6)  # 1 - 0.05 / 8
    assert rules.se_from_interval(0.5, 0.7) == pytest.approx(0.1 / 1.959964, rel=1e-6)


def test_hanley_mcneil_at_half_is_the_mann_whitney_null_variance():
    for n1, n2 in ((300, 600), (20, 35)):
        assert rules.hanley_mcneil_se(0.5, n1, n2) ** 2 == pytest.approx((n1 + n2 + 1) / (12 * n1 * n2))
    assert rules.hanley_mcneil_se(1.0, 300, 600) == 0.0
    # by hand (Hanley & McNeil 1982, eq. 2), AUC 0.8 with 30 positives and 60 negatives: Q1 = 0.8 / 1.2,
    # Q2 = 1.28 / 1.8, var = (0.16 + 29 (Q1 - 0.64) + 59 (Q2 - 0.64)) / 1800; swapping the counts differs
    q1, q2 = 0.8 / 1.2, 1.28 / 1.8
    want = math.sqrt((0.16 + 29 * (q1 - 0.64) + 59 * (q2 - 0.64)) / 1800)
    assert (
        rules.hanley_mcneil_se(0.8, 30, 60) == pytest.approx(want) != pytest.approx(rules.hanley_mcneil_se(0.8, 60, 30))
    )
    assert rules.interval_verdict(0.2, 0.4, float("nan")) == rules.NOT_TESTABLE  # e.g. a missing success rate
    assert rules.bootstrap_rounds(1) == 2000 and rules.bootstrap_rounds(6) == 12_000
    assert rules.hanley_mcneil_se(0.7, 300, 600) < rules.hanley_mcneil_se(0.7, 30, 60)
    assert rules.binomial_se(0.75, 300) == pytest.approx(math.sqrt(0.75 * 0.25 / 300))


def test_reproduction_needs_the_difference_interval_to_include_zero():
    paper_se = rules.hanley_mcneil_se(0.70, rules.PAPER_N_ADVERSARIAL, rules.PAPER_N_NEGATIVE)
    verdict, lo, hi = rules.reproduces(0.68, 0.03, 0.70, paper_se)
    assert verdict == rules.HOLDS and lo < 0 < hi
    verdict, lo, hi = rules.reproduces(0.01, 0.005, 0.70, paper_se)
    assert verdict == rules.DOES_NOT_HOLD and hi < 0


def test_claim_12_is_not_testable_without_worst_case_rows_and_judged_with_them():
    assert rules.worst_case_evasion([]) == (rules.NOT_TESTABLE, rules.NOT_TESTABLE)
    strong = {"evasion_gain_lo": 0.05, "evasion_gain_hi": 0.15, "evasion_rate_lo": 0.93, "evasion_rate_hi": 0.99,
              "success_rate": 0.98}  # fmt: skip
    weak = {**strong, "evasion_gain_lo": -0.03, "evasion_rate_lo": 0.60, "evasion_rate_hi": 0.80}
    assert rules.worst_case_evasion([strong, strong]) == (rules.HOLDS, rules.HOLDS)
    assert rules.worst_case_evasion([strong, weak]) == (rules.INCONCLUSIVE, rules.MIXED)


def test_the_registry_numbers_every_claim_once():
    ids = [c.id for c in registry.CLAIMS]
    assert len(ids) == len(set(ids))
    assert sorted({int("".join(ch for ch in i if ch.isdigit())) for i in ids}) == list(range(1, 13))
    assert all(c.text and c.where and c.rule for c in registry.CLAIMS)
    assert np.all([registry.BY_ID[i].id == i for i in ids])


def test_a_paired_rate_is_inconclusive_below_20_discordant_images_and_untestable_only_without_images():
    assert rules.paired_verdict(0.01, 0.05, 19, 300) == rules.INCONCLUSIVE  # the interval alone would hold
    assert rules.paired_verdict(0.01, 0.05, 20, 300) == rules.HOLDS
    assert rules.paired_verdict(-0.05, -0.01, 40, 300, "below") == rules.HOLDS
    assert rules.paired_verdict(0.0, 0.0, 0, 0) == rules.NOT_TESTABLE


def test_claim_7c_holds_above_half_fails_only_below_0_6_with_a_falling_paired_change():
    """The rule committed before the batching experiment: rows under 20 successful images are not testable;
    a low AUC without a paired fall from one-kind is inconclusive, not a failure."""
    assert rules.deployed_detection(0.55, 0.7, 40, -0.1, 0.1) == rules.HOLDS
    assert rules.deployed_detection(0.3, 0.55, 40, -0.4, -0.1) == rules.DOES_NOT_HOLD
    assert rules.deployed_detection(0.3, 0.55, 40, -0.4, 0.05) == rules.INCONCLUSIVE
    assert rules.deployed_detection(0.3, 0.65, 40, -0.4, -0.1) == rules.INCONCLUSIVE
    assert rules.deployed_detection(0.3, 0.55, 40, float("nan"), float("nan")) == rules.INCONCLUSIVE
    assert rules.deployed_detection(0.6, 0.9, 19, 0.0, 0.1) == rules.NOT_TESTABLE
    arms = {"mixed": [rules.HOLDS] * 4, "one-adversarial": [rules.DOES_NOT_HOLD] * 4, "crafted-mixed": [rules.HOLDS]}
    assert rules.combine_arms(arms) == rules.MIXED
    assert rules.BATCHING_ROWS == len(rules.BATCHING_ARMS) * 2 * 2


def test_claim_7b_over_seeds_adds_the_seed_variance_with_welch_satterthwaite_degrees_of_freedom():
    """Revision 7. One seed: s_b = 0, a normal interval of sqrt(se^2 + paper_se^2). Three seeds: the seeds'
    term s_b^2/3 has 2 degrees of freedom, the others are known, so dof = SE^4 / ((s_b^2/3)^2 / 2)."""
    from scipy.stats import t as student

    verdict, diff, lo, hi, dof = rules.seeds_reproduce([0.70], [0.01], 0.70, 0.01)
    half = rules.corrected_z() * math.hypot(0.01, 0.01)
    assert (diff, dof, verdict) == (0.0, math.inf, rules.HOLDS) and (lo, hi) == pytest.approx((-half, half))
    aucs, ses = [0.60, 0.62, 0.64], [0.01, 0.02, 0.02]
    verdict, diff, lo, hi, dof = rules.seeds_reproduce(aucs, ses, 0.70, 0.01, k=4)
    between = np.var(aucs, ddof=1) / 3
    var = between + np.mean(np.square(ses)) + 0.01**2
    assert dof == pytest.approx(var**2 / (between**2 / 2))
    q = student.ppf(1 - 0.05 / 8, dof)
    assert (lo, hi) == pytest.approx((-0.08 - q * np.sqrt(var), -0.08 + q * np.sqrt(var)))
    assert diff == pytest.approx(-0.08) and verdict == rules.DOES_NOT_HOLD
    assert rules.seeds_reproduce([0.70, 0.72, 0.74], [0.03] * 3, 0.72, 0.03)[0] == rules.INCONCLUSIVE
