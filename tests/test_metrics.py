import numpy as np
import pytest

from uncertadv import metrics
from uncertadv.experiments import attack_sets
from uncertadv.experiments.table1 import detection


def test_auc_aupr_fpr_on_separable_and_reversed_scores():
    pos, neg = np.array([2.0, 3.0, 4.0]), np.array([0.0, 1.0])
    assert metrics.roc_auc(pos, neg) == 1.0 and metrics.roc_auc(neg, pos) == 0.0
    assert metrics.aupr(pos, neg) == 1.0
    assert metrics.fpr_at_tpr(pos, neg) == 0.0
    assert metrics.fpr_at_tpr(neg, pos) == 1.0


def test_undefined_measures_give_nan_not_half():
    nan = np.full(3, np.nan)
    assert np.isnan(metrics.roc_auc(nan, np.zeros(3)))
    assert np.isnan(metrics.aupr(nan, np.zeros(3)))
    assert all(np.isnan(metrics.bootstrap_auc(nan, np.zeros(3))))


def test_bootstrap_interval_brackets_the_auc():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 200), rng.normal(0, 1, 400)
    auc = metrics.roc_auc(pos, neg)
    lo, hi = metrics.bootstrap_auc(pos, neg, rounds=300, seed=1)
    assert lo < auc < hi and hi - lo < 0.2
    assert (lo, hi) == metrics.bootstrap_auc(pos, neg, rounds=300, seed=1)


def test_indices_are_disjoint_and_seeded():
    idx = attack_sets.draw_indices(1000, 200, seed=3)
    together = np.concatenate(list(idx.values()))
    assert len(np.unique(together)) == 600
    assert np.array_equal(idx["clean"], attack_sets.draw_indices(1000, 200, seed=3)["clean"])
    assert not np.array_equal(idx["clean"], attack_sets.draw_indices(1000, 200, seed=4)["clean"])


def test_noise_matches_the_paired_l2_norm_and_leaves_the_source_alone():
    x = np.full((4, 28, 28, 1), 0.5, np.float32)
    before = x.copy()
    norms = np.array([0.0, 0.5, 1.0, 2.0])
    noisy = attack_sets.matched_noise(x, norms, seed=0)
    np.testing.assert_array_equal(x, before)
    got = np.sqrt(((noisy - x) ** 2).reshape(4, -1).sum(1))
    np.testing.assert_allclose(got, norms, rtol=1e-5)  # no clipping happens at 0.5 +- small noise
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_table_row_uses_successful_subset_and_nan_for_deterministic_mi():
    # kinds: 3 adversarial (one successful, one wrong before the attack), 4 negatives
    nan = np.nan
    rows = {
        "kind": np.array(["adversarial"] * 3 + ["clean"] + ["noise"] * 3),
        "label": np.array([1, 2, 3, 4, 5, 6, 7]),
        "pred": np.array([0, 2, 0, 4, 5, 6, 7]),
        "clean_pred": np.array([1, 2, 7] + [nan] * 4),
        "success": np.array([1, 0, 0] + [nan] * 4),
        "label_changed": np.array([1, 0, 1] + [nan] * 4),
        "l2": np.array([2.0, 0.0, 1.0, 0.0, 1.8, 0.5, 0.8]),
        "pair": np.array([0, 1, 2, nan, 0, 1, 2]),
        "predictive_entropy": np.array([0.9, 0.1, 0.05, 0.2, 0.3, 0.25, 0.15]),
        "mutual_information": np.full(7, nan),
        "expected_entropy": np.full(7, nan),
        "softmax_variance": np.full(7, nan),
        "variation_ratio": np.full(7, nan),
    }
    row = detection.table_row(rows, bootstrap_rounds=20)
    assert row["entropy_auc"] == pytest.approx(1 / 3) and row["entropy_auc_s"] == 1.0
    assert np.isnan(row["mi_auc"]) and np.isnan(row["mi_auc_s"]) and np.isnan(row["mi_minus_entropy_auc"])
    assert row["success_rate"] == pytest.approx(1 / 3) and row["label_changed_rate"] == pytest.approx(2 / 3)
    assert row["n_adversarial"] == 3 and row["n_negative"] == 4
    assert row["n_clean_correct"] == 2 and row["n_successful"] == 1
    assert row["noise_l2_ratio"] == pytest.approx(0.85)  # pairs 0 and 2: pair 1's adversarial L2 is 0


def test_rank_auc_equals_sklearn_with_ties_and_batches():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 5, (3, 40)).astype(float), rng.integers(0, 5, (3, 60)).astype(float)  # many ties
    got = metrics.rank_auc(pos, neg)
    want = [roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[pos[i], neg[i]]) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_noise_is_matched_after_clipping_on_a_black_background():
    """On MNIST-like images most pixels are 0, so clipping removes about a quarter of Gaussian
    noise; the rescaling passes put the norm back within 1%."""
    rng = np.random.default_rng(0)
    x = np.zeros((20, 28, 28, 1), np.float32)
    x[:, 8:20, 8:20] = rng.random((20, 12, 12, 1)) > 0.5
    norms = rng.uniform(1.0, 5.0, 20)
    got = attack_sets.perturbation_norms(x, attack_sets.matched_noise(x, norms, seed=1))[1]
    np.testing.assert_allclose(got, norms, rtol=0.01)
    one_pass = attack_sets.perturbation_norms(x, attack_sets.matched_noise(x, norms, seed=1, passes=0))[1]
    assert np.mean(one_pass / norms) < 0.85  # what a single scaling before clipping gave


def test_tpr_at_fpr_uses_the_in_sample_threshold():
    negative = np.arange(1.0, 21.0)  # 20 negatives: the 19th smallest (19.0) is the threshold at 5% FPR
    assert metrics.tpr_at_fpr(np.array([18.0, 19.0, 19.5, 30.0]), negative, 0.05) == 0.5
    assert np.mean(negative > 19.0) <= 0.05
    assert np.isnan(metrics.tpr_at_fpr(np.array([np.nan]), negative))


def test_paired_difference_of_a_measure_with_itself_is_exactly_zero_and_pairs_rows():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, 1, 50), rng.normal(0, 1, 80)
    assert metrics.paired_bootstrap_auc_difference(pos, neg, pos, neg, rounds=50) == (0.0, 0.0, 0.0)
    noisy_pos, noisy_neg = pos + rng.normal(0, 0.1, 50), neg + rng.normal(0, 0.1, 80)
    diff, lo, hi = metrics.paired_bootstrap_auc_difference(noisy_pos, noisy_neg, pos, neg, rounds=300)
    separate = [metrics.bootstrap_auc(p, n, rounds=300) for p, n in ((noisy_pos, noisy_neg), (pos, neg))]
    assert lo <= diff <= hi
    assert hi - lo < 0.5 * min(h - low for low, h in separate)  # pairing removes the shared variation
    with pytest.raises(ValueError, match="same rows"):
        metrics.paired_bootstrap_auc_difference(pos, neg, pos[:10], neg)


def test_resampled_auc_is_rank_auc_of_each_resample_bit_for_bit():
    rng = np.random.default_rng(3)
    for pos, neg in (
        (rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 70).astype(float)),  # many ties
        (rng.normal(size=57), rng.normal(size=31)),
    ):
        pos_idx, neg_idx = metrics._draws(len(pos), len(neg), rounds=300, seed=1)
        got = metrics.resampled_auc(pos, neg, pos_idx, neg_idx, chunk=64)  # several chunks, the last partial
        np.testing.assert_array_equal(got, metrics.rank_auc(pos[pos_idx], neg[neg_idx]))


def test_resampled_auc_takes_resamples_of_another_size():
    pos, neg = np.array([0.1, 0.5, 0.9, 0.5]), np.array([0.2, 0.5, 0.7])
    pos_idx, neg_idx = np.array([[0, 1], [2, 3]]), np.array([[0, 1, 1, 2, 0], [2, 2, 2, 2, 2]])
    got = metrics.resampled_auc(pos, neg, pos_idx, neg_idx)
    np.testing.assert_array_equal(got, metrics.rank_auc(pos[pos_idx], neg[neg_idx]))
    assert got[1] == 0.5  # 0.9 above every 0.7, 0.5 below them all


def test_exact_mcnemar_maps_the_clopper_pearson_interval_of_b_over_b_plus_c_to_the_difference():
    """20 discordant images all one way: the Clopper-Pearson interval of b/(b + c) = 1 is [(alpha/2)^(1/20), 1]
    in closed form, and the difference (b - c)/n spans (b + c)(2p - 1)/n over it."""
    n = 100
    a, b = np.r_[np.ones(30), np.zeros(70)], np.r_[np.ones(10), np.zeros(90)]
    test = metrics.mcnemar_exact(a, b)
    p_lo = 0.025 ** (1 / 20)
    assert test["b"] == 20 and test["c"] == 0 and test["difference"] == pytest.approx(0.2)
    assert test["lo"] == pytest.approx(20 * (2 * p_lo - 1) / n, rel=1e-9) and test["hi"] == pytest.approx(0.2)
    assert test["p_value"] == pytest.approx(2 * 0.5**20)
    swapped = metrics.mcnemar_exact(b, a)  # the same test from the other side
    assert (swapped["lo"], swapped["hi"]) == pytest.approx((-test["hi"], -test["lo"]))
    same = metrics.mcnemar_exact(a, a)
    assert (same["lo"], same["hi"], same["p_value"]) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same, non-empty"):
        metrics.mcnemar_exact(a, b[:5])
    with pytest.raises(ValueError, match="0/1 outcomes"):  # a NaN cell is no success (astype(bool) said it was)
        metrics.mcnemar_exact(np.r_[a[:-1], np.nan], b)


def test_a_joint_cluster_bootstrap_draws_each_batch_whole_and_redraws_rounds_without_a_class():
    """Cluster i holds one positive and one negative, both scored i. Drawn whole, any round's AUC is
    (sum_{i>j} w_i w_j + sum_i w_i^2 / 2) / (sum w)^2 = 1/2 exactly; drawn apart, it varies. Two
    one-class clusters: half the joint rounds lack a class, and are drawn again rather than giving NaN."""
    scores = np.arange(12.0)
    groups = np.arange(12)
    value, lo, hi = metrics.cluster_bootstrap_auc_difference(scores, scores, None, None, groups, groups,
                                                             rounds=300, seed=0, joint=True)  # fmt: skip
    assert (value, lo, hi) == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)  # sums of 144 pair terms: rounding only
    _, lo_apart, hi_apart = metrics.cluster_bootstrap_auc_difference(scores, scores, None, None, groups, groups,
                                                                     rounds=300, seed=0)  # fmt: skip
    assert hi_apart - lo_apart > 0.2
    one_class = metrics.cluster_bootstrap_auc_difference(np.ones(3), np.zeros(3), None, None, np.zeros(3),
                                                         np.ones(3), rounds=200, seed=1, joint=True)  # fmt: skip
    assert one_class == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)


def test_a_cluster_bootstrap_ratio_resamples_whole_clusters():
    """Two clusters, one all hits and one all misses: every round's ratio is 0, 1/2 or 1, and the point value
    is the pooled share."""
    num, den = np.r_[np.ones(5), np.zeros(5)], np.ones(10)
    ratio, lo, hi = metrics.cluster_bootstrap_ratio(num, den, np.r_[np.zeros(5), np.ones(5)], rounds=400, seed=0)
    assert ratio == 0.5 and (lo, hi) == (0.0, 1.0)
    with pytest.raises(ValueError, match="non-zero denominator"):
        metrics.cluster_bootstrap_ratio(num, np.zeros(10), np.zeros(10))
