"""Data sets as float32 NHWC images in [0, 1] with integer labels.

MNIST ships inside the package (``uncertadv/assets/mnist.npz``, provenance in
``assets/README.md``), so the default never touches the network. The tfds path
is the real ``tfds.load`` for connected machines.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from enum import Enum

import numpy as np

MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"


class Source(str, Enum):
    auto = "auto"
    bundled = "bundled"
    tfds = "tfds"


class Split(str, Enum):
    train = "train"
    test = "test"


def _bundled_mnist_path():
    return importlib.resources.files("uncertadv.assets").joinpath("mnist.npz")


@functools.lru_cache(maxsize=1)
def _bundled_mnist() -> dict[str, np.ndarray]:
    raw = _bundled_mnist_path().read_bytes()
    if hashlib.sha256(raw).hexdigest() != MNIST_SHA256:
        raise ValueError("the bundled mnist.npz is corrupt (sha256 mismatch); reinstall uncertadv")
    import io

    with np.load(io.BytesIO(raw)) as npz:
        return {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _to_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W]`` or ``[N, H, W, 1]`` -> float32 ``[N, H, W, 1]`` in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return (x.astype(np.float32) / 255.0).astype(np.float32)


def load_mnist(split: Split | str = "test", source: Source | str = "auto", data_dir: str | None = None):
    """MNIST ``(x [N, 28, 28, 1] float32 in [0, 1], y [N] int64)``.

    source: ``auto`` and ``bundled`` read the copy shipped in the package (offline);
    ``tfds`` calls ``tfds.load("mnist")``, which downloads on first use."""
    split, source = Split(split), Source(source)
    if source is Source.tfds:
        import tensorflow_datasets as tfds

        ds = tfds.load("mnist", split=split.value, as_supervised=True, data_dir=data_dir)
        # Batched iteration rather than batch_size=-1, which aborts under tfds.testing.mock_data.
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        return _to_float_images(x), y.astype(np.int64)
    arrays = _bundled_mnist()
    return _to_float_images(arrays[f"x_{split.value}"]), arrays[f"y_{split.value}"].astype(np.int64)


DATASETS = {"mnist": load_mnist}


def load(dataset: str, split: Split | str = "test", source: Source | str = "auto"):
    """``(x, y)`` of a named data set; see the loader of each for the layout."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[dataset](split=split, source=source)
