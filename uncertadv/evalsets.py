"""The paper's evaluation set: N clean test images, N other images with Gaussian noise, and N
adversarial examples made from further images. All drawn with a seed; source arrays are
never modified."""

from __future__ import annotations

import numpy as np


def draw_indices(n_available: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets ``{"clean", "noise", "adversarial"}``, each ``[n]``."""
    if n < 1 or 3 * n > n_available:
        raise ValueError(f"need 1 <= n and 3 * n <= {n_available} images, got n = {n}")
    order = np.random.default_rng(seed).permutation(n_available)
    return {"clean": order[:n], "noise": order[n : 2 * n], "adversarial": order[2 * n : 3 * n]}


def matched_noise(x: np.ndarray, l2_norms: np.ndarray, seed: int, pixel_max: float = 1.0) -> np.ndarray:
    """``x [N, ...]`` plus Gaussian noise whose L2 norm equals ``l2_norms [N]`` (the paired
    adversarial perturbations), then clipped to the image range. Returns a new array."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    norms = np.sqrt((noise.reshape(len(x), -1) ** 2).sum(axis=1))
    noise *= (l2_norms / np.maximum(norms, 1e-12)).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.clip(x + noise, 0.0, pixel_max).astype(np.float32)


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image ``(L-inf, L2)`` norms of ``x_adv - x``, each ``[N]``."""
    delta = (x_adv - x).reshape(len(x), -1)
    return np.abs(delta).max(axis=1), np.sqrt((delta**2).sum(axis=1))
