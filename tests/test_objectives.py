"""The detector-aware attacks' objectives and update rules, against values computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from uncertadv import objectives


def test_cw_loss_is_the_capped_log_probability_margin():
    log_p = tf.math.log(tf.constant([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.05, 0.05, 0.9]]))
    y = tf.constant([0, 2, 0], tf.int64)
    got = objectives.classification_loss(log_p, y, "cw", tf.constant(5.0)).numpy()
    want = [np.log(0.2) - np.log(0.7), np.log(0.3) - np.log(0.6), min(np.log(0.9) - np.log(0.05), 5.0)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    capped = objectives.classification_loss(log_p, y, "cw", tf.constant(0.0)).numpy()
    np.testing.assert_allclose(capped, [want[0], want[1], 0.0], rtol=1e-6)  # κ = 0: no pull once flipped
    ce = objectives.classification_loss(log_p, y, "ce", tf.constant(0.0)).numpy()
    np.testing.assert_allclose(ce, -np.log([0.7, 0.6, 0.05]), rtol=1e-5)


def test_the_hinge_has_its_margin_and_u_matching_works_in_log_u():
    u = tf.constant([0.5, 0.8, 1.0, 2.0])
    hinge = objectives.detector_loss(u, "hinge", tf.constant(1.0), tf.constant(0.2), tf.constant(0.0)).numpy()
    np.testing.assert_allclose(hinge, [0.0, 0.0, 0.2, 1.2], atol=1e-6)  # 0 only from U <= 0.8 τ
    plain = objectives.detector_loss(u, "hinge", tf.constant(1.0), tf.constant(0.0), tf.constant(0.0)).numpy()
    np.testing.assert_allclose(plain, [0.0, 0.0, 0.0, 1.0], atol=1e-6)
    tiny = tf.constant([1e-10, 1e-2])
    matched = objectives.detector_loss(tiny, "u-matching", tf.constant(1.0), tf.constant(0.0),
                                       tf.math.log(tf.constant(1e-2))).numpy()  # fmt: skip
    np.testing.assert_allclose(matched, [(np.log(1e-10) - np.log(1e-2)) ** 2, 0.0], rtol=1e-4, atol=1e-6)


def test_orthogonal_and_selective_pgd_on_a_two_dimensional_case():
    """∇f = (3, 1), ∇g = (1, 2). Still correct: selective steps along ∇f; orthogonal along
    ∇f - (∇f·∇g / |∇g|²) ∇g = (3, 1) - 5/5 (1, 2) = (2, -1). Misclassified: selective along -∇g = (-1, -2);
    orthogonal along -(∇g - (∇g·∇f / |∇f|²) ∇f) = -((1, 2) - 5/10 (3, 1)) = (0.5, -1.5)."""
    grad_f, grad_g = tf.constant([[3.0, 1.0]] * 2), tf.constant([[1.0, 2.0]] * 2)
    done = tf.constant([False, True])
    selective = objectives.direction(grad_f, grad_g, done, "selective", tf.constant(0.0)).numpy()
    orthogonal = objectives.direction(grad_f, grad_g, done, "orthogonal", tf.constant(0.0)).numpy()
    np.testing.assert_allclose(selective, [[3.0, 1.0], [-1.0, -2.0]])
    np.testing.assert_allclose(orthogonal, [[2.0, -1.0], [0.5, -1.5]], atol=1e-6)
    np.testing.assert_array_equal(np.sign(orthogonal), [[1, -1], [1, -1]])  # the sign step differs from selective's
    summed = objectives.direction(grad_f, grad_g, done, "sum", tf.constant(2.0)).numpy()
    np.testing.assert_allclose(summed, [[1.0, -3.0]] * 2)
    zero = objectives.direction(grad_f, tf.zeros_like(grad_g), done, "orthogonal", tf.constant(0.0)).numpy()
    np.testing.assert_allclose(zero, [[3.0, 1.0], [0.0, 0.0]])  # no detector gradient: nothing projected away


def test_the_decay_schedule_halves_at_each_quarter():
    got = [float(objectives.step_factor(tf.constant(i), 100, "decay")) for i in (0, 24, 25, 50, 74, 75, 99)]
    assert got == [1.0, 1.0, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert float(objectives.step_factor(tf.constant(99), 100, "constant")) == 1.0


@pytest.mark.parametrize("g", [0.0, 0.5, 50.0])
def test_an_evading_iterate_outranks_a_misclassified_one_which_outranks_neither(g):
    score = objectives.iterate_score(tf.constant([True, True, False]), tf.constant([True, False, True]),
                                     tf.constant([g, 0.0, 0.0])).numpy()  # fmt: skip
    assert score[0] > objectives.EVADING_SCORE > score[1] > score[2]
