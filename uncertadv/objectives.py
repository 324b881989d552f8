"""The detector-aware attacks' objectives and update rules: pure TF functions, shapes in the docstrings.

An attack on a classifier plus a detector that flags U outside [τ_lo, τ_hi] has two terms:

- a classification loss ``f [N]`` to increase: cross-entropy of the predictive (``ce``), or the
  Carlini-Wagner margin on log-probabilities (``cw``), ``min(max_{j≠y} log p_j - log p_y, κ)``, which
  stops pulling once another class leads by κ (CE is unbounded and keeps fighting the detector term
  after the label has flipped);
- a detector loss ``g [N]`` to decrease: the margined hinge ``max(0, U/τ - (1 - m))`` (``hinge``),
  which is 0 only when U is m below τ in relative terms, so the attack does not park on τ; or
  ``(log U - log U*)²`` (``u-matching``) towards a target U* inside the clean range, which answers a
  two-sided detector (PGD's MI can be 1e-10: log U sees that scale).

They are combined by one of three update rules (Bryniarski et al. 2022, "Evading adversarial example
detection defenses with orthogonal projected gradient descent", Sec. 4):

- ``sum``: the gradient of ``f - c·g`` (Carlini & Wagner 2017);
- ``selective``: ∇f while the image is still classified correctly, -∇g once it is not;
- ``orthogonal``: the same choice, each gradient first projected orthogonal to the other
  (∇f - proj_∇g ∇f, then -(∇g - proj_∇f ∇g)), so that one step does not undo the other term.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

LOSSES = ("ce", "cw")
PENALTIES = ("hinge", "u-matching")
UPDATES = ("sum", "orthogonal", "selective")
SCHEDULES = ("constant", "decay")
_TINY = float(np.finfo(np.float32).tiny)


def classification_loss(log_probs, labels, loss: str, kappa):
    """``f [N]``, to increase: log-probabilities ``[N, C]``, true labels ``[N]`` int64, ``kappa`` scalar."""
    if loss == "ce":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=log_probs)
    true = tf.one_hot(labels, tf.shape(log_probs)[-1]) > 0  # [N, C]
    log_true = tf.reduce_max(tf.where(true, log_probs, -np.inf), axis=-1)  # [N]
    log_other = tf.reduce_max(tf.where(true, -np.inf, log_probs), axis=-1)  # [N]
    return tf.minimum(log_other - log_true, kappa)


def detector_loss(uncertainty, penalty: str, threshold, margin, log_target):
    """``g [N]``, to decrease: ``uncertainty`` U ``[N]``; ``threshold`` τ_hi, ``margin`` m and
    ``log_target`` log U* are scalars (the hinge uses τ and m, U-matching log U*)."""
    if penalty == "hinge":
        return tf.nn.relu(uncertainty / threshold - (1.0 - margin))
    return tf.square(tf.math.log(tf.maximum(uncertainty, _TINY)) - log_target)


def _remove_projection(a, b):
    """``a - (a·b / b·b) b`` per image: ``a, b [N, ...] -> [N, ...]`` (b = 0 leaves a as it is)."""
    axes = list(range(1, len(a.shape)))
    dot = tf.reduce_sum(a * b, axis=axes, keepdims=True)
    norm = tf.reduce_sum(b * b, axis=axes, keepdims=True)
    return a - tf.math.divide_no_nan(dot, norm) * b


def direction(grad_f, grad_g, misclassified, update: str, c):
    """The ascent direction ``[N, ...]`` before the sign step. ``grad_f``: ∇f ``[N, ...]``; ``grad_g``:
    ∇g ``[N, ...]``; ``misclassified`` ``[N]`` bool (the attacker's own estimate); ``c`` scalar (sum only)."""
    if update == "sum":
        return grad_f - c * grad_g
    if update == "orthogonal":
        grad_f, grad_g = _remove_projection(grad_f, grad_g), _remove_projection(grad_g, grad_f)
    done = tf.reshape(misclassified, [-1] + [1] * (len(grad_f.shape) - 1))
    return tf.where(done, -grad_g, grad_f)


def step_factor(step, iterations: int, schedule: str):
    """The step size's multiplier at iteration ``step`` (0-based scalar tensor) of ``iterations``:
    1 throughout (``constant``), or halved at each quarter of the run (``decay``: 1, 1/2, 1/4, 1/8),
    so that a long run explores first and then settles."""
    if schedule == "constant":
        return tf.constant(1.0)
    quarter = tf.cast(4 * step // iterations, tf.float32)
    return tf.pow(0.5, quarter)


def iterate_score(misclassified, accepted, g):
    """How good an iterate is for the attacker, ``[N]`` float: evading (misclassified and inside the
    detector's accepted range) beats misclassified-only beats neither; within each, a lower detector
    loss ``g [N]`` is better. ``misclassified``, ``accepted``: ``[N]`` bool."""
    evading = tf.cast(misclassified & accepted, tf.float32)
    return (
        3.0 * evading + 1.5 * tf.cast(misclassified, tf.float32) - 0.5 * tf.tanh(g)
    )  # in [4, 4.5], [1, 1.5], [-0.5, 0]


EVADING_SCORE = 3.0  # iterate_score above this: the iterate evades (by the attacker's estimate)
MISCLASSIFIED_SCORE = 0.75  # above this: misclassified (evading ones too)
