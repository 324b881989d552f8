import numpy as np
import pytest
import tensorflow as tf

from uncertadv import measures

LN2 = np.log(2.0)


def one_hot(classes, num_classes):
    return np.eye(num_classes)[classes]


def test_entropy_closed_forms_and_zero_probabilities():
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(measures.entropy(probs), [np.log(4), 0.0, LN2], rtol=1e-5, atol=1e-12)


def test_uniform_samples_are_all_aleatoric():
    probs = np.full((7, 3, 5), 0.2)  # [T, N, C]
    np.testing.assert_allclose(measures.predictive_entropy(probs), np.log(5), rtol=1e-5)
    np.testing.assert_allclose(measures.expected_entropy(probs), np.log(5), rtol=1e-5)
    np.testing.assert_allclose(measures.mutual_information(probs), 0.0, atol=1e-12)
    np.testing.assert_allclose(measures.softmax_variance(probs), 0.0, atol=1e-12)


def test_identical_one_hots_have_no_uncertainty_and_no_nans():
    probs = np.repeat(one_hot([2, 0], 4)[None], 6, axis=0)  # [6, 2, 4]
    for name, values in measures.all_measures(probs).items():
        assert not np.isnan(values).any(), name
        np.testing.assert_allclose(values, 0.0, atol=1e-12, err_msg=name)


def test_fifty_fifty_split_of_one_hots_is_purely_epistemic():
    probs = np.stack([one_hot([0], 3), one_hot([1], 3)] * 5)  # [10, 1, 3]
    np.testing.assert_allclose(measures.mutual_information(probs), LN2, rtol=1e-5)
    np.testing.assert_allclose(measures.predictive_entropy(probs), LN2, rtol=1e-5)
    np.testing.assert_allclose(measures.expected_entropy(probs), 0.0, atol=1e-12)
    np.testing.assert_allclose(measures.variation_ratio(probs), 0.5)
    # variance over samples of p_c is 1/4 for two classes, 0 for the third; mean over 3 classes
    np.testing.assert_allclose(measures.softmax_variance(probs), 0.5 / 3, rtol=1e-6)


def test_variation_ratio_counts_votes():
    votes = [0, 0, 0, 1, 2]  # modal class has 3 of 5 votes
    probs = one_hot(votes, 3)[:, None, :] * 0.6 + 0.4 / 3
    np.testing.assert_allclose(measures.variation_ratio(probs), [1 - 3 / 5])


def test_mi_between_zero_and_predictive_entropy_on_random_samples():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=(20, 500))  # [T, N, C]
    mi, pe = measures.mutual_information(probs), measures.predictive_entropy(probs)
    assert (mi >= 0).all() and (mi <= pe + 1e-12).all()
    np.testing.assert_allclose(mi, pe - measures.expected_entropy(probs), atol=1e-12)


def test_leading_taylor_term_of_mi_is_classes_times_softmax_variance():
    """§3.2: with log p ~ p - 1, MI ~ sum_c (mean_t p_c^2 - p̂_c^2) = C * softmax variance."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(6), size=(15, 40))  # [T, N, C]
    linear_entropy = lambda p: -np.sum(p * (p - 1.0), axis=-1)  # entropy with log x ~ x - 1
    taylor_mi = linear_entropy(probs.mean(0)) - linear_entropy(probs).mean(0)
    np.testing.assert_allclose(taylor_mi, 6 * measures.softmax_variance(probs), rtol=1e-10)
    # The exact second-order term is sum_c Var_c / (2 p̂_c): near the uniform point it is
    # C/2 times the linearised one, so the two measures rank inputs alike there.
    near = np.full((15, 40, 6), 1 / 6) + 1e-3 * (probs - probs.mean(-1, keepdims=True))
    exact, linearised = measures.mutual_information(near), 6 * measures.softmax_variance(near)
    np.testing.assert_allclose(exact, linearised * 6 / 2, rtol=1e-2)


def test_tensor_in_tensor_out_and_numpy_by_default():
    probs = tf.constant(np.full((2, 3, 4), 0.25), tf.float32)
    out = measures.mutual_information(probs, as_tensor=True)
    assert isinstance(out, tf.Tensor) and out.dtype == tf.float32 and out.shape == (3,)
    assert isinstance(measures.mutual_information(probs), np.ndarray)


def test_wrong_rank_is_a_value_error():
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        measures.predictive_entropy(np.full((3, 4), 0.25))
