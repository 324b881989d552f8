"""Data sets as float32 NHWC images in [0, 1] with integer labels.

MNIST ships inside the package (``uncertadv/assets/mnist.npz``, provenance in
``assets/README.md``), so the default never touches the network. The tfds path
is the real ``tfds.load`` for connected machines. Your own data (``--data``) is read and checked
against your model by ``uncertadv.own_data``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import sys
from enum import Enum
from pathlib import Path

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


# ---------------------------------------------------------------------------- cats vs dogs

PETIMAGES_ENV = "UNCERTADV_PETIMAGES"
CLASSES = ("Cat", "Dog")  # label 0, 1
NO_DATA_HELP = (
    "no cats-vs-dogs images found: download the Microsoft 'Kaggle Cats and Dogs Dataset' "
    "(kagglecatsanddogs_*.zip), unzip it, and pass --data-dir PATH/PetImages or set "
    f"{PETIMAGES_ENV}=PATH/PetImages (a folder with Cat/*.jpg and Dog/*.jpg); "
    "on a connected machine --source tfds downloads it instead"
)


def petimages_dir(data_dir: str | Path | None = None) -> Path:
    """The PetImages folder: ``data_dir``, else $UNCERTADV_PETIMAGES; a clear error if neither has images."""
    folder = data_dir or os.environ.get(PETIMAGES_ENV)
    if not folder:
        raise ValueError(NO_DATA_HELP)
    folder = Path(folder)
    if not all((folder / c).is_dir() for c in CLASSES):
        raise ValueError(f"{folder} has no Cat/ and Dog/ folders; {NO_DATA_HELP}")
    return folder


def petimages_split(folder: Path, seed: int = 0, test_fraction: float = 0.2):
    """Deterministic seeded split of the sorted file list: ``{"train": (paths, labels), "test": ...}``."""
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"{folder} holds no .jpg files; {NO_DATA_HELP}")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_test = int(round(test_fraction * len(paths)))
    pick = lambda idx: (np.asarray(paths)[idx], np.asarray(labels, dtype=np.int64)[idx])  # noqa: E731
    return {"test": pick(order[:n_test]), "train": pick(order[n_test:])}


def _decoded(paths: np.ndarray, labels: np.ndarray, image_size: int, batch_size: int):
    """A tf.data pipeline of ``(images [B, S, S, 3] float32 in [0, 1], labels [B])`` in file
    order; undecodable files are skipped."""
    import tensorflow as tf

    def read(path, label):
        raw = tf.io.read_file(path)
        image = tf.io.decode_jpeg(raw, channels=3)
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.clip_by_value(image / 255.0, 0.0, 1.0), label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).map(read, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors().batch(batch_size).prefetch(2)


def catsdogs_batches(split: Split | str = "train", *, data_dir=None, image_size: int = 224, seed: int = 0,
                     batch_size: int = 64, limit: int | None = None):  # fmt: skip
    """Stream one split of the PetImages folder in batches, decoded exactly as ``load_catsdogs``
    decodes it, without holding the split in memory: yields ``(x [B, S, S, 3] float32, y [B])``
    and a total batch count via ``len``. ``limit``: the first N files of the split only."""
    paths, labels = petimages_split(petimages_dir(data_dir), seed)[Split(split).value]
    paths, labels = paths[:limit], labels[:limit]
    return _Batches(_decoded(paths, labels, image_size, batch_size), int(np.ceil(len(paths) / batch_size)))


def petimages_source_size(data_dir=None, count: int = 50) -> int:
    """The median longer side, in pixels, of the first ``count`` images of the PetImages folder
    (so that a table can say whether its images were upsampled)."""
    import tensorflow as tf

    folder = petimages_dir(data_dir)
    files = sorted((folder / CLASSES[0]).glob("*.jp*g"))[:count] + sorted((folder / CLASSES[1]).glob("*.jp*g"))[:count]
    sides = []
    for f in files:
        try:
            sides.append(int(max(tf.io.extract_jpeg_shape(tf.io.read_file(str(f))).numpy()[:2])))
        except tf.errors.OpError:
            continue  # undecodable files are skipped, as in loading
    if not sides:
        raise ValueError(f"{folder} holds no decodable images")
    return int(np.median(sides))


class _Batches:
    def __init__(self, ds, count: int):
        self.ds, self.count = ds, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for xb, yb in self.ds:
            yield xb.numpy(), yb.numpy().astype(np.int64)


def _decode_folder(paths: np.ndarray, labels: np.ndarray, image_size: int, desc: str):
    """Decode and resize JPEGs in a tf.data pipeline; undecodable files are skipped and counted.
    Returns ``(x [N, S, S, 3] float32 in [0, 1], y [N], skipped)``."""
    ds = _decoded(paths, labels, image_size, 512)
    from uncertadv.progress import progress_bar

    xs, ys = [], []
    for xb, yb in progress_bar(ds, desc=desc, total=int(np.ceil(len(paths) / 512))):
        xs.append(xb.numpy().astype(np.float32))
        ys.append(yb.numpy())
    x = np.concatenate(xs) if xs else np.zeros((0, image_size, image_size, 3), np.float32)
    y = np.concatenate(ys) if ys else np.zeros((0,), np.int64)
    return x, y.astype(np.int64), len(paths) - len(y)


@functools.lru_cache(maxsize=4)
def _catsdogs_folder(folder: str, split: str, image_size: int, seed: int):
    paths, labels = petimages_split(Path(folder), seed)[split]
    x, y, skipped = _decode_folder(paths, labels, image_size, f"decoding {split} images ({image_size}px)")
    if skipped:
        print(f"skipped {skipped} undecodable image(s) in the {split} split of {folder}", file=sys.stderr)
    return x, y, skipped


def load_catsdogs(
    split: Split | str = "test", source: Source | str = "auto", *, data_dir=None, image_size: int = 64, seed: int = 0
):
    """Cats (0) vs dogs (1): ``(x [N, S, S, 3] float32 in [0, 1], y [N] int64)``.

    source auto/bundled: the PetImages folder (``data_dir`` or $UNCERTADV_PETIMAGES) with a
    seeded 80/20 split; tfds: ``tfds.load("cats_vs_dogs")`` (its one split, cut 80/20)."""
    split, source = Split(split), Source(source)
    if image_size < 8:
        raise ValueError(f"image size must be >= 8, got {image_size}")
    if source is Source.tfds:
        import tensorflow as tf
        import tensorflow_datasets as tfds

        part = "train[:80%]" if split is Split.train else "train[80%:]"
        ds = tfds.load("cats_vs_dogs", split=part, as_supervised=True, data_dir=data_dir)
        ds = ds.map(lambda im, lab: (tf.image.resize(tf.cast(im, tf.float32), (image_size, image_size)) / 255.0, lab))
        batches = list(tfds.as_numpy(ds.batch(1000)))
        x = np.clip(np.concatenate([b[0] for b in batches]), 0, 1).astype(np.float32)
        return x, np.concatenate([b[1] for b in batches]).astype(np.int64)
    x, y, _ = _catsdogs_folder(str(petimages_dir(data_dir)), split.value, image_size, seed)
    return x, y


DATASETS = {"mnist": load_mnist, "catsdogs": load_catsdogs}


def load(dataset: str, split: Split | str = "test", source: Source | str = "auto", **options):
    """``(x, y)`` of a named data set, read-only; see the loader of each for the layout and ``options``."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    return read_only(*DATASETS[dataset](split=split, source=source, **options))


def read_only(*arrays):
    """The arrays, marked read-only: a data set is never changed in place (and its hash is remembered)."""
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return arrays
