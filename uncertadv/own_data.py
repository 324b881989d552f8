"""Your own data, checked against your model's contract: ``.npz`` files (``x``, ``y``; or an
attack set's ``x_adv`` and ``labels``), image folders (one subfolder per class) and ``tfds:``
specs, as float32 NHWC images in [0, pixel_max] with integer labels. ``load_for_model`` is the
one validation path for every ``--data``; the paper's own data sets are in ``uncertadv.data``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from uncertadv import inputs
from uncertadv.data import read_only


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

    try:
        x = inputs.images(x, pixel_max, name=f"{path}: '{name}'")
        y = None if y is None else inputs.labels(y, len(x), name=f"{path}: '{labels}'")
    except ValueError as err:
        raise ValueError(str(err).replace("pixel_max=255 (--pixel-max 255)", "--pixel-max 255")) from None
    return x, y


def load_data(spec: str, pixel_max: float = 1.0, image_size: int | None = None, *, classes: list[str] | None = None,
              color_mode: str | None = None, unlabelled: bool = False):  # fmt: skip
    """``(x [N, ...] float32 in [0, pixel_max], y [N] int64 or None, info)`` from ``--data``:

    - an ``.npz`` with ``x`` and optionally ``y`` (see ``load_npz``), or an attack set's ``x_adv``;
    - a folder of class subfolders of images (``image_size`` resizes, default 256; ``color_mode``
      rgb or grayscale, default rgb). Labels: see ``folder_classes``; ``info["classes"]`` records
      ``{folder: label}``;
    - ``tfds:NAME[:SPLIT]`` for a tfds image-classification set (split defaults to ``test``; only
      the first two colons split, so ``tfds:mnist:test[:10%]`` works).
    Images from folders and tfds are 0-255 and scaled into [0, pixel_max]. ``unlabelled`` (``detect run``):
    a folder may also be flat, every image below it is read (no labels), and ``info["files"]`` lists their
    paths relative to it, in the order of ``x``."""
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
    if path.is_dir() and unlabelled:
        x, info["files"] = _load_files(path, pixel_max, image_size or 256, color_mode or "rgb")
        return x, None, info
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


def _load_files(folder: Path, pixel_max: float, image_size: int, color_mode: str) -> tuple[np.ndarray, list[str]]:
    """Every image below ``folder`` (flat, or in subfolders; no labels), resized as ``_load_folder`` resizes,
    and their paths relative to ``folder``."""
    import keras
    import tensorflow as tf

    try:
        ds = keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(image_size, image_size),
                                                      shuffle=False, batch_size=256, color_mode=color_mode,
                                                      verbose=False)  # fmt: skip
        xs = [xb.numpy() for xb in ds] if len(ds) else []
    except ValueError as err:
        raise ValueError(f"{folder}: {str(err).splitlines()[0]}") from None
    except tf.errors.OpError:
        raise ValueError(f"cannot decode an image below {folder}; remove or replace it") from None
    if not xs:
        raise ValueError(f"{folder} holds no images")
    files = [Path(f).relative_to(folder).as_posix() for f in ds.file_paths]
    return _scaled(np.concatenate(xs), pixel_max), files


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

    shape = model.inputs[0].shape
    color_mode = options.get("color_mode") or ("grayscale" if shape[-1] == 1 else "rgb")
    image_size = options.get("image_size")
    spec = options["spec"]
    images = spec.startswith("tfds:") or Path(spec).is_dir()
    if images and image_size is None and len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
        image_size = int(shape[1])  # folders and tfds are resized to what the model takes
    x, y, info = load_data(spec, options["pixel_max"], image_size, classes=options.get("classes"),
                           color_mode=color_mode, unlabelled=options.get("unlabelled", False))  # fmt: skip
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
