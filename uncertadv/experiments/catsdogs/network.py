"""A variant's network: a frozen trunk (inference or batch-statistics BatchNorm) whose features
or ImageNet probabilities feed one Dropout(0.5) -> Dense(2) softmax head, with the dropout masks
drawn here from stateless keys (one mask per example per call, as Keras 2's learning phase 1).

The trunk is deterministic given its batch, so it runs once per call and the T sampled
networks differ only in the head: ``z [N, D] -> probs [T, N, 2]``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

RATE = 0.5  # the head's dropout rate (the paper's, and the authors' code's)


def head_probs(z, kernel, bias, keep=None):
    """The head's probabilities ``[T, N, C]`` of trunk outputs ``z [N, D]``.

    keep: boolean masks ``[T, N, D]`` (True: unit kept, scaled by 1 / (1 - RATE), as Keras's
    Dropout), or None for dropout off (``T = 1``)."""
    if keep is None:
        return tf.nn.softmax(tf.matmul(z, kernel) + bias)[None]
    dropped = tf.where(keep, z[None] / (1.0 - RATE), tf.zeros_like(z[None]))  # [T, N, D]
    return tf.nn.softmax(tf.einsum("tnd,dc->tnc", dropped, kernel) + bias)


def head_log_probs(z, kernel, bias, keep=None):
    """log of the MC-mean predictive ``[N, C]`` (log-sum-exp over the T networks), finite everywhere."""
    if keep is None:
        return tf.nn.log_softmax(tf.matmul(z, kernel) + bias)
    dropped = tf.where(keep, z[None] / (1.0 - RATE), tf.zeros_like(z[None]))
    log_p = tf.nn.log_softmax(tf.einsum("tnd,dc->tnc", dropped, kernel) + bias)  # [T, N, C]
    return tf.reduce_logsumexp(log_p, axis=0) - tf.math.log(tf.cast(tf.shape(log_p)[0], log_p.dtype))


def keep_masks(key, samples: int, n, dim: int):
    """Bernoulli(1 - RATE) masks ``[samples, n, dim]`` from a stateless key ``[2]``: a new mask per
    example and per network."""
    return tf.random.stateless_uniform(tf.stack([samples, n, dim]), key) >= RATE


def key(*parts: int) -> np.ndarray:
    """A stateless RNG key ``[2]`` (int64) from any integers: each tuple of parts its own stream."""
    return np.random.SeedSequence([int(p) for p in parts]).generate_state(2).astype(np.int64)


class VariantNetwork:
    """Trunk + head of one variant. ``inputs``: ``features`` or ``probs`` (which trunk output the
    head reads). ``samples_for`` gives how many masks a call draws: 0 for dropout off, 1 for one
    dropout sample, T for the mc predictor.

    The attack's loss: the cross-entropy of log p (of one network), or of the log MC-mean
    predictive. ``mean_as_logits``: for T > 1, CleverHans 2's loss on the authors' MC model
    instead, a softmax cross-entropy that takes the mean *probabilities* as logits (its
    ``model_loss`` finds logits only behind a Softmax op). With two classes both give, image by
    image, gradients that are positive multiples of each other, so sign steps agree; but when
    batch-mates are coupled (batch statistics) an image's gradient sums its batch-mates' losses,
    whose weights differ, so the batch-statistics variants use the authors' loss."""

    def __init__(self, trunk, kernel: np.ndarray, bias: np.ndarray, inputs: str, mean_as_logits: bool = False):
        if inputs not in ("features", "probs"):
            raise ValueError(f"a head reads features or probs, got {inputs!r}")
        self.trunk, self.inputs, self.mean_as_logits = trunk, inputs, mean_as_logits
        self.kernel = tf.constant(kernel, tf.float32)
        self.bias = tf.constant(bias, tf.float32)
        self._grad = tf.function(self._gradient, reduce_retracing=True)
        self._probs = tf.function(self._probabilities, reduce_retracing=True)

    def trunk_outputs(self, x):
        features, probs = self.trunk(x, training=False)
        return features if self.inputs == "features" else probs

    def _masks(self, z, samples, rng_key):
        return None if samples == 0 else keep_masks(rng_key, samples, tf.shape(z)[0], z.shape[-1])

    def _probabilities(self, x, rng_key, samples: int):
        z = self.trunk_outputs(x)
        return head_probs(z, self.kernel, self.bias, self._masks(z, samples, rng_key))

    def _gradient(self, x, labels, rng_key, samples: int):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = self.trunk_outputs(x)
            keep = self._masks(z, samples, rng_key)
            if self.mean_as_logits and samples > 1:
                logits = tf.reduce_mean(head_probs(z, self.kernel, self.bias, keep), axis=0)
            else:
                logits = head_log_probs(z, self.kernel, self.bias, keep)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return tape.gradient(loss, x)

    def probs(self, x: np.ndarray, rng_key: np.ndarray, samples: int) -> np.ndarray:
        """Probabilities ``[max(samples, 1), N, 2]`` of one batch ``x [N, S, S, 3]``."""
        return self._probs(tf.constant(x, tf.float32), tf.constant(rng_key), samples).numpy()

    def gradient(self, x, labels, rng_key, samples: int):
        """Gradient ``[N, S, S, 3]`` of the cross-entropy of the (MC-mean) predictive at ``labels``."""
        return self._grad(tf.constant(x, tf.float32), tf.constant(labels, tf.int64), tf.constant(rng_key), samples)


def samples_for(predictor: str, point_estimate: str, mc_samples: int) -> int:
    """Masks per call: the mc predictor draws T; the point estimate none (dropout off) or one."""
    if predictor == "mc":
        return mc_samples
    return 0 if point_estimate == "dropout-off" else 1
