import numpy as np

from uncertadv import metrics
from uncertadv.experiments import attack_sets, table1


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
    # kinds: 2 adversarial (one successful), 2 negatives
    rows = {
        "kind": np.array(["adversarial", "adversarial", "clean", "noise"]),
        "success": np.array([1, 0, np.nan, np.nan]),
        "predictive_entropy": np.array([0.9, 0.1, 0.2, 0.3]),
        "mutual_information": np.full(4, np.nan),
        "expected_entropy": np.full(4, np.nan),
        "softmax_variance": np.full(4, np.nan),
        "variation_ratio": np.full(4, np.nan),
    }
    row = table1.table_row(rows, bootstrap_rounds=20)
    assert row["entropy_auc"] == 0.5 and row["entropy_auc_s"] == 1.0
    assert np.isnan(row["mi_auc"]) and np.isnan(row["mi_auc_s"])
    assert row["success_rate"] == 0.5 and row["n_adversarial"] == 2 and row["n_negative"] == 2


def test_rank_auc_equals_sklearn_with_ties_and_batches():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 5, (3, 40)).astype(float), rng.integers(0, 5, (3, 60)).astype(float)  # many ties
    got = metrics.rank_auc(pos, neg)
    want = [roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[pos[i], neg[i]]) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
