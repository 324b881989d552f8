"""Latent-space maps (Figures 1, 4, 6) and uncertainty holes (Figure 5).

A 2-D VAE latent grid is decoded into images, which a classifier then scores. Shapes:
``z`` is ``[M, 2]``; images ``[M, 28, 28, 1]``.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


def latent_grid(extent: float = 10.0, size: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Grid over ``[-extent, extent]^2``: ``(z [size*size, 2], axis [size])``.

    Row-major with z2 (the vertical axis) outer, so ``values.reshape(size, size)``
    is an image whose row i is ``z2 = axis[i]`` (draw with ``origin="lower"``)."""
    if size < 2 or not extent > 0:
        raise ValueError(f"grid needs size >= 2 and extent > 0, got size={size}, extent={extent}")
    axis = np.linspace(-extent, extent, size, dtype=np.float32)
    z1, z2 = np.meshgrid(axis, axis)
    return np.stack([z1.ravel(), z2.ravel()], axis=1), axis


def encode(encoder, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``x [N, 28, 28, 1] -> z_mean [N, 2]``."""
    return np.concatenate(
        [encoder(x[i : i + batch_size], training=False)[0].numpy() for i in range(0, len(x), batch_size)]
    )


def decode(decoder, z: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``z [M, 2] -> images [M, 28, 28, 1]`` in (0, 1)."""
    z = np.asarray(z, dtype=np.float32)
    return np.concatenate(
        [decoder(z[i : i + batch_size], training=False).numpy() for i in range(0, len(z), batch_size)]
    )


def distance_to_data(z: np.ndarray, data_z: np.ndarray) -> np.ndarray:
    """Euclidean distance from each ``z [M, 2]`` to its nearest ``data_z [N, 2]``: ``[M]``."""
    tree = NearestNeighbors(n_neighbors=1).fit(data_z)
    return tree.kneighbors(z)[0][:, 0]


def hole_mask(
    distance: np.ndarray,
    confidence: np.ndarray,
    mi: np.ndarray,
    *,
    far_distance: float,
    min_confidence: float,
    mi_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(far [M], hole [M])`` booleans.

    far: farther than ``far_distance`` from every encoded training image.
    hole: far, yet confident (max probability >= ``min_confidence``) with MI at most
    ``mi_threshold`` - a region where the model should be unsure and is not."""
    far = distance > far_distance
    hole = far & (confidence >= min_confidence) & (mi <= mi_threshold)
    return far, hole
