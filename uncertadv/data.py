"""Data sets as float32 NHWC images in [0, 1] with integer labels.

MNIST ships inside the package (``uncertadv/assets/mnist.npz``, provenance in
``assets/README.md``), so the default never touches the network. The tfds path
is the real ``tfds.load`` for connected machines.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import sys
import warnings
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


# ---------------------------------------------------------------------------- your own data


def load_npz(path: Path | str, pixel_max: float = 1.0, info: dict | None = None):
    """``(x [N, ...] float32 in [0, pixel_max], y [N] int64 or None)`` from an ``.npz`` with ``x``
    and, optionally, ``y`` (``allow_pickle=False``). An attack set from ``uncertadv attack`` is read
    too: its ``x_adv`` (with its source images' ``labels``).

    uint8 images are taken as 0-255 and scaled into [0, pixel_max]; float images are taken as
    already in the model's scale and refused if they leave [0, pixel_max] or hold NaN
    (``uncertadv.inputs``). ``info``, if given, receives ``{"array": name of the images read}``."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no data file at {path}")
    if not pixel_max > 0:
        raise ValueError(f"--pixel-max must be > 0, got {pixel_max}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an .npz (NumPy's zip of arrays); --data takes an .npz, a folder of "
                         "class subfolders of images, or tfds:NAME[:SPLIT]")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as npz:
            name = "x" if "x" in npz.files else ("x_adv" if "x_adv" in npz.files else None)
            if name is None:
                raise ValueError(f"{path} has no array 'x' (it holds {', '.join(npz.files) or 'nothing'})")
            labels = "y" if name == "x" else "labels"
            x, y = npz[name], (npz[labels] if labels in npz.files else None)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {path} as an .npz: {err}") from None
    except ValueError as err:
        if "pickle" in str(err):
            raise ValueError(f"{path} holds Python objects (pickled), which are not loaded; save plain arrays "
                             "with np.savez") from None  # fmt: skip
        raise
    if info is not None:
        info["array"] = name
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{path}: '{name}' must be [N, ...] with N >= 1, got shape {x.shape}")
    from uncertadv import inputs

    try:
        x = inputs.images(x, pixel_max, name=f"{path}: '{name}'")
        y = None if y is None else inputs.labels(y, len(x), name=f"{path}: '{labels}'")
    except ValueError as err:
        raise ValueError(str(err).replace("pixel_max=255 (--pixel-max 255)", "--pixel-max 255")) from None
    return x, y


def load_data(spec: str, pixel_max: float = 1.0, image_size: int | None = None, *, classes: list[str] | None = None,
              color_mode: str | None = None):  # fmt: skip
    """``(x [N, ...] float32 in [0, pixel_max], y [N] int64 or None, info)`` from ``--data``:

    - an ``.npz`` with ``x`` and optionally ``y`` (see ``load_npz``), or an attack set's ``x_adv``;
    - a folder of class subfolders of images (``image_size`` resizes, default 256; ``color_mode``
      rgb or grayscale, default rgb). Labels: see ``folder_classes``; ``info["classes"]`` records
      ``{folder: label}``;
    - ``tfds:NAME[:SPLIT]`` for a tfds image-classification set (split defaults to ``test``; only
      the first two colons split, so ``tfds:mnist:test[:10%]`` works).
    Images from folders and tfds are 0-255 and scaled into [0, pixel_max]."""
    if not pixel_max > 0:
        raise ValueError(f"--pixel-max must be > 0, got {pixel_max}")
    if color_mode not in (None, "rgb", "grayscale"):
        raise ValueError(f"--color-mode must be rgb or grayscale, got {color_mode!r}")
    info: dict = {}
    if spec.startswith("tfds:"):
        parts = spec.split(":", 2)
        name, split = parts[1], (parts[2] if len(parts) > 2 and parts[2] else "test")
        if not name:
            raise ValueError(f"--data {spec!r}: give a tfds name, as in tfds:mnist or tfds:mnist:test[:10%]")
        if classes:
            raise ValueError("--classes names the subfolders of an image folder; tfds data sets carry their labels")
        import tensorflow as tf
        import tensorflow_datasets as tfds

        ds = tfds.load(name, split=split, as_supervised=True)
        if image_size:
            ds = ds.map(lambda im, lab: (tf.image.resize(im, (image_size, image_size)), lab))
        if color_mode == "grayscale":
            ds = ds.map(lambda im, lab: (tf.image.rgb_to_grayscale(im) if im.shape[-1] == 3 else im, lab))
        elif color_mode == "rgb":
            ds = ds.map(lambda im, lab: (tf.image.grayscale_to_rgb(im) if im.shape[-1] == 1 else im, lab))
        try:
            batches = list(tfds.as_numpy(ds.batch(1000)))
        except tf.errors.OpError as err:
            raise ValueError(f"--data {spec}: cannot batch its images ({str(err.message).splitlines()[0]}); "
                             "images of different sizes need --image-size") from None  # fmt: skip
        x = np.concatenate([b[0] for b in batches]).astype(np.float32)
        y = np.concatenate([b[1] for b in batches]).astype(np.int64)
        return _scaled(x, pixel_max), y, info
    path = Path(spec)
    if path.is_dir():
        x, y, info["classes"] = _load_folder(path, pixel_max, image_size or 256, classes, color_mode or "rgb")
        return x, y, info
    if classes:
        raise ValueError("--classes names the subfolders of an image folder; --data is not a folder")
    x, y = load_npz(path, pixel_max, info)
    return x, y, info


def load_spec(spec: str, pixel_max: float = 1.0, image_size: int | None = None):
    """``(x, y)`` of ``load_data`` (folder classes in their default order, rgb)."""
    x, y, _ = load_data(spec, pixel_max, image_size)
    return x, y


def _scaled(x: np.ndarray, pixel_max: float) -> np.ndarray:
    """0-255 images -> float32 in [0, pixel_max], with a channel axis."""
    x = np.clip(np.asarray(x, np.float32), 0, 255) * np.float32(pixel_max / 255.0)
    return x[..., None] if x.ndim == 3 else x


IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what Keras's image_dataset_from_directory reads


def folder_classes(folder: Path, classes: list[str] | None = None) -> dict[str, int]:
    """``{subfolder: label}``: integer names map to their integers, others to their position in
    ``classes`` (if given) or in sorted order. A mix of the two, or a hidden subfolder
    (``.ipynb_checkpoints``), is refused: it would shift every label silently."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    hidden = [c for c in found if c.startswith(".")]
    if hidden:
        raise ValueError(f"{folder} holds the hidden subfolder {hidden[0]}, which would count as a class; remove it")
    if not found:
        raise ValueError(f"{folder} has no class subfolders (FOLDER/CLASS/image.jpg)")
    if classes:
        unknown = [c for c in found if c not in classes]
        missing = [c for c in classes if c not in found]
        if unknown or missing or len(set(classes)) != len(classes):
            raise ValueError(f"--classes {','.join(classes)} must name each subfolder of {folder} once "
                             f"(it holds {', '.join(found)})")  # fmt: skip
        return {c: i for i, c in enumerate(classes)}
    numbers = [c for c in found if c.isascii() and c.isdigit()]
    if numbers and len(numbers) != len(found):
        others = ", ".join(c for c in found if c not in numbers)
        raise ValueError(f"{folder} mixes integer subfolders ({', '.join(numbers)}) with others ({others}); "
                         "give the label order with --classes")  # fmt: skip
    if numbers:
        labels = {c: int(c) for c in found}
        if len(set(labels.values())) != len(labels):
            raise ValueError(f"{folder} has two subfolders for one label ({', '.join(found)}); merge or rename them")
        return labels
    return {c: i for i, c in enumerate(found)}


def _load_folder(folder: Path, pixel_max: float, image_size: int, classes: list[str] | None, color_mode: str):
    import keras
    import tensorflow as tf

    mapping = folder_classes(folder, classes)
    names = sorted(mapping, key=mapping.get)  # Keras labels are positions in class_names
    try:
        ds = keras.utils.image_dataset_from_directory(folder, labels="inferred", class_names=names,
                                                      image_size=(image_size, image_size), shuffle=False,
                                                      batch_size=256, color_mode=color_mode,
                                                      verbose=False)  # fmt: skip
    except ValueError as err:
        raise ValueError(f"{folder}: {str(err).splitlines()[0]}") from None
    try:
        xs, ys = zip(*[(xb.numpy(), yb.numpy()) for xb, yb in ds]) if len(ds) else ((), ())
    except tf.errors.OpError:
        raise ValueError(_undecodable(folder, names)) from None
    if not xs:
        raise ValueError(f"{folder} holds no images")
    to_label = np.array([mapping[n] for n in names], dtype=np.int64)
    return _scaled(np.concatenate(xs), pixel_max), to_label[np.concatenate(ys)], mapping


def _undecodable(folder: Path, names: list[str]) -> str:
    """The message naming the first image of ``folder`` that TensorFlow cannot decode."""
    import tensorflow as tf

    for name in names:
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
            except tf.errors.OpError as err:
                return f"cannot decode image {path}: {str(err.message).splitlines()[0]}; remove or replace it"
    return f"cannot decode an image in {folder}"


def load_for_model(options: dict, model) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """``--data`` checked against ``model``'s input contract: the one validation path of every command.

    options: ``spec``, ``pixel_max``, and optionally ``image_size`` (default for folders and tfds:
    the model's square input size), ``classes`` (folder names in label order) and ``color_mode``
    (default: grayscale for a one-channel model, else rgb).
    Returns ``(x, y or None, info)``; info holds ``classes`` (folders), ``array`` (npz) and
    ``data_sha256``, the data's identity in reuse keys. The folder mapping is printed."""
    from uncertadv import inputs

    shape = model.inputs[0].shape
    color_mode = options.get("color_mode") or ("grayscale" if shape[-1] == 1 else "rgb")
    image_size = options.get("image_size")
    spec = options["spec"]
    images = spec.startswith("tfds:") or Path(spec).is_dir()
    if images and image_size is None and len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
        image_size = int(shape[1])  # folders and tfds are resized to what the model takes
    x, y, info = load_data(spec, options["pixel_max"], image_size, classes=options.get("classes"),
                           color_mode=color_mode)  # fmt: skip
    hint = "; resize with --image-size, and choose channels with --color-mode" if images else ""
    inputs.check_shape(model, x, hint)
    warning = inputs.scale_hint(model, options["pixel_max"])
    if warning:
        warnings.warn(warning.replace("pixel_max=255 (--pixel-max 255)", "--pixel-max 255"), stacklevel=2)
    if y is not None:
        y = inputs.labels(y, len(x), inputs.classes(model), name=f"of {options['spec']}")
    if "classes" in info:
        pairs = ", ".join(f"{name!r} -> {label}" for name, label in sorted(info["classes"].items(), key=lambda p: p[1]))
        print(f"labels of {options['spec']}: {pairs}", file=sys.stderr)
    x, y = read_only(x, y)
    info["data_sha256"] = inputs.data_sha256(x, y)
    return x, y, info
