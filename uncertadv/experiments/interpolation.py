"""Interpolations between test images in pixel and latent space (Figures 2 and 3)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from uncertadv.experiments.latent import decode, encode


def path(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Straight line from ``a`` to ``b``: ``[steps, *a.shape]`` (t = 0 ... 1)."""
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, got {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape((steps,) + (1,) * a.ndim)
    return (1.0 - t) * a[None] + t * b[None]


def pixel_and_latent_paths(encoder, decoder, xa: np.ndarray, xb: np.ndarray, steps: int):
    """The two paths between images ``xa, xb [28, 28, 1]``: ``(pixel, latent)``, each ``[steps, 28, 28, 1]``.
    The latent path decodes the line between the encoder means."""
    za, zb = encode(encoder, np.stack([xa, xb]))
    return path(xa, xb, steps), decode(decoder, path(za, zb, steps))


def different_class_pairs(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random index pairs ``[n, 2]`` whose labels differ (seeded, without replacement of pairs)."""
    rng = np.random.default_rng(seed)
    pairs = np.empty((0, 2), dtype=np.int64)
    while len(pairs) < n:
        cand = rng.integers(0, len(labels), size=(2 * n, 2))
        cand = cand[labels[cand[:, 0]] != labels[cand[:, 1]]]
        pairs = np.unique(np.concatenate([pairs, cand]), axis=0)
    return rng.permutation(pairs)[:n]


def midpoints(encoder, decoder, x: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t = 0.5 points of each pair: ``(pixel [n, ...], latent [n, ...])``; x is not modified."""
    pixel = 0.5 * (x[pairs[:, 0]] + x[pairs[:, 1]])
    z = encode(encoder, x)
    latent = decode(decoder, 0.5 * (z[pairs[:, 0]] + z[pairs[:, 1]]))
    return pixel, latent


def separation_auc(pixel_values: np.ndarray, latent_values: np.ndarray) -> float:
    """ROC-AUC of a measure for telling pixel midpoints (positive) from latent ones.
    NaN if the measure is undefined (NaN) for this model."""
    values = np.concatenate([pixel_values, latent_values])
    if np.isnan(values).any():
        return float("nan")
    labels = np.concatenate([np.ones(len(pixel_values)), np.zeros(len(latent_values))])
    return float(roc_auc_score(labels, values))
