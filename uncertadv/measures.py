"""Uncertainty measures of an MC model (Smith & Gal 2018, §3).

Every measure takes ``probs`` of shape ``[T, N, C]``: T sampled networks (MC
samples or ensemble members), N inputs, C classes. Each row ``probs[t, n]`` is a
probability vector, never logits. Each measure returns ``[N]``.

Inputs may be NumPy arrays or tf tensors. NumPy input is computed in float64
(MI is a difference of two close numbers) and a NumPy array is returned; pass
``as_tensor=True`` to get a tf tensor instead (tf input keeps its dtype, so the
measures can sit inside a graph). 0·log 0 is taken as 0, so one-hot samples give
no NaNs.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

MEASURES = (
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "softmax_variance",
    "variation_ratio",
)


def _tensor_api(min_rank: int, exact_rank: int | None = None):
    """Convert the first argument to a float tensor, check its rank, and
    return NumPy unless ``as_tensor=True``."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(probs, *, as_tensor: bool = False):
            if isinstance(probs, (tf.Tensor, tf.Variable)):
                probs = tf.convert_to_tensor(probs)
                if not probs.dtype.is_floating:
                    probs = tf.cast(probs, tf.float64)
            else:
                probs = tf.convert_to_tensor(np.asarray(probs, dtype=np.float64))
            rank = probs.shape.rank
            if rank < min_rank or (exact_rank is not None and rank != exact_rank):
                want = f"rank {exact_rank} [T, N, C]" if exact_rank else f"rank >= {min_rank}"
                raise ValueError(f"{fn.__name__} expects probs of {want}, got shape {probs.shape}")
            out = fn(probs)
            return out if as_tensor else out.numpy()

        return wrapper

    return decorate


@_tensor_api(min_rank=1)
def entropy(probs):
    """Shannon entropy in nats over the last axis: ``[..., C] -> [...]``."""
    return tfp.distributions.Categorical(probs=probs).entropy()


def _mean_predictive(probs):
    return tf.reduce_mean(probs, axis=0)  # [T, N, C] -> [N, C]


@_tensor_api(min_rank=3, exact_rank=3)
def predictive_entropy(probs):
    """H[p̂], the entropy of the MC predictive (eq. 6): total uncertainty.
    ``[T, N, C] -> [N]``."""
    return entropy(_mean_predictive(probs), as_tensor=True)


@_tensor_api(min_rank=3, exact_rank=3)
def expected_entropy(probs):
    """mean_t H[p_t], the second term of eq. 7-8: aleatoric uncertainty.
    ``[T, N, C] -> [N]``."""
    return tf.reduce_mean(entropy(probs, as_tensor=True), axis=0)  # [T, N] -> [N]


@_tensor_api(min_rank=3, exact_rank=3)
def mutual_information(probs):
    """MI = H[p̂] - mean_t H[p_t] (eq. 7-8): epistemic uncertainty.
    ``[T, N, C] -> [N]``. Clipped at 0: it is >= 0 by Jensen, and a tiny
    negative value is rounding."""
    mi = predictive_entropy(probs, as_tensor=True) - expected_entropy(probs, as_tensor=True)
    return tf.maximum(mi, 0.0)


@_tensor_api(min_rank=3, exact_rank=3)
def softmax_variance(probs):
    """Mean over classes of the variance over samples, with 1/T (eq. 9).
    ``[T, N, C] -> [N]``. Its product with C is the leading Taylor term of MI (§3.2)."""
    return tf.reduce_mean(tf.math.reduce_variance(probs, axis=0), axis=-1)  # [N, C] -> [N]


@_tensor_api(min_rank=3, exact_rank=3)
def variation_ratio(probs):
    """1 - (votes for the modal class) / T, a vote is a sample's argmax.
    ``[T, N, C] -> [N]``."""
    votes = tf.one_hot(tf.argmax(probs, axis=-1), probs.shape[-1], dtype=probs.dtype)  # [T, N, C]
    modal = tf.reduce_max(tf.reduce_sum(votes, axis=0), axis=-1)  # [N]
    return 1.0 - modal / tf.cast(tf.shape(probs)[0], probs.dtype)


def all_measures(probs) -> dict[str, np.ndarray]:
    """The five measures as NumPy ``[N]`` arrays, keyed by the names in ``MEASURES``."""
    fns = {name: globals()[name] for name in MEASURES}
    return {name: fn(probs) for name, fn in fns.items()}
