"""The input contract: what a model's inputs and labels must be, checked by every command and API entry.

One rule for images, wherever they come from (files, folders, tfds, arrays):

- a model takes float images in ``[0, pixel_max]`` (``pixel_max`` 1.0 by default, or 255);
- ``uint8`` images are 0-255 and are scaled into ``[0, pixel_max]`` (x * pixel_max / 255);
- any other array outside ``[0, pixel_max]``, or holding NaN, is refused: a float array that
  reaches 255 given to a [0, 1] model is 0-255 data by mistake, and scoring it would give
  silently wrong numbers;
- ``pixel_max=None`` means inputs in another scale (features, standardised images): no range rule.

Labels are class indices ``[N]`` below the model's class count; one-hot labels are refused.
``data_sha256`` is the identity of a data set (images and labels) in every reuse key.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import weakref

import numpy as np

EPS_MAX = 255.0  # budgets are in 0-255 units: 255 already allows any image


def check_pixel_max(pixel_max) -> None:
    """Refuse a scale that is not a number > 0 (None: inputs in another scale, no range rule)."""
    if pixel_max is not None and not (isinstance(pixel_max, numbers.Real) and not isinstance(pixel_max, bool)
                                      and pixel_max > 0):  # fmt: skip
        raise ValueError(f"pixel_max must be > 0 (or None for inputs in another scale), got {pixel_max!r}")


def images(x, pixel_max: float | None = 1.0, *, name: str = "x") -> np.ndarray:
    """``x [N, ...]`` as float32 in ``[0, pixel_max]`` by the module's rule; a one-line ValueError otherwise."""
    check_pixel_max(pixel_max)
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32((pixel_max or 255.0) / 255.0)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold uint8 or float images, got {x.dtype}")
    x = x.astype(np.float32)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if pixel_max is not None and x.size and (x.min() < 0 or x.max() > pixel_max):
        lo, hi = float(x.min()), float(x.max())
        hint = (
            "divide by 255, or pass pixel_max=255 (--pixel-max 255) if the model takes 0-255"
            if hi > 1.5 and pixel_max <= 1
            else "rescale it, or pass the model's pixel_max (--pixel-max)"
        )
        raise ValueError(f"{name} lies in [{lo:.3g}, {hi:.3g}] but the model takes [0, {pixel_max:g}]: {hint}")
    if pixel_max is not None and pixel_max > 1.5 and x.size and x.max() <= 1.0:
        import warnings

        warnings.warn(f"{name} lies in [0, 1] but the model takes [0, {pixel_max:g}]: if these are [0, 1] images, "
                      f"multiply them by {pixel_max:g}", stacklevel=2)  # fmt: skip
    return x


def labels(y, n: int, classes: int | None = None, *, name: str = "y") -> np.ndarray:
    """Class indices ``[n]`` int64, each in ``[0, classes)``; one-hot ``[n, C]`` and other shapes are refused."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        raise ValueError(f"{name} looks one-hot {y.shape}: give class indices [N], e.g. y.argmax(axis=-1)")
    if y.shape != (n,):
        raise ValueError(f"{name} must be class indices of shape [{n}], got shape {y.shape}")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise ValueError(f"{name} must be integer class indices, got {y.dtype}")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise ValueError(f"{name} holds negative labels ({y.min()})")
    if classes is not None and n and y.max() >= classes:
        raise ValueError(f"the labels {name} go up to {y.max()}, but the model has {classes} classes (0-{classes - 1})")
    return y


def contract(model, pixel_max: float | None) -> dict:
    """A model's input contract ``{"shape", "dtype", "pixel_max", "range"}``, as a detector file records it."""
    shape = [None if d is None else int(d) for d in model.inputs[0].shape[1:]]
    return {"shape": shape, "dtype": "float32", "pixel_max": pixel_max,
            "range": None if pixel_max is None else [0.0, float(pixel_max)]}  # fmt: skip


def check_shape(model, x: np.ndarray, hint: str = "") -> None:
    """Refuse ``x`` whose rank or feature shape does not fit the model's input (``hint``: what to do)."""
    want = tuple(model.inputs[0].shape[1:])
    got = tuple(x.shape[1:])
    if x.ndim != len(want) + 1 or any(w is not None and w != g for w, g in zip(want, got)):
        raise ValueError(f"input of shape {x.shape} does not fit model input [N, {', '.join(map(str, want))}]{hint}")


def scale_hint(model, pixel_max: float | None) -> str | None:
    """A warning where the model's input layers and ``pixel_max`` disagree, the commonest ways to feed a
    model the wrong scale: it rescales by 1/255 (so it takes 0-255 images) while ``pixel_max`` says [0, 1];
    or ``pixel_max`` says 0-255 and it has no rescaling layer at its input."""
    import keras

    from uncertadv import _keras_compat as compat

    if pixel_max is None:
        return None
    layers = compat.all_layers(model, include_self=False)
    first = [layer for layer in layers if not isinstance(layer, keras.layers.InputLayer)][:3]
    rescales = [layer for layer in first if isinstance(layer, keras.layers.Rescaling)]
    if pixel_max > 1:
        if rescales:
            return None
        return (f"model {model.name!r} has no rescaling layer at its input: with pixel_max={pixel_max:g} "
                f"(--pixel-max {pixel_max:g}) it must have been trained on 0-{pixel_max:g} inputs")  # fmt: skip
    for layer in rescales:
        scale, offset = np.ravel(layer.scale), np.ravel(layer.offset)
        if np.allclose(scale, 1 / 255, rtol=0.01) and np.allclose(offset, 0):
            return (f"model {model.name!r} starts by rescaling its inputs by 1/255, so it likely takes 0-255 "
                    "images, but they are given in [0, 1]; pass pixel_max=255 (--pixel-max 255) if so")  # fmt: skip
    return None


def classes(model) -> int:
    """The number of classes a classifier outputs."""
    return int(model.outputs[0].shape[-1])


_HASHED: dict[tuple[int, int], tuple] = {}  # (id(x), id(y)) -> (weakref x, weakref y, hash)


def data_sha256(x: np.ndarray, y: np.ndarray | None = None) -> str:
    """sha256 of a data set's contents: the images as the model sees them (float32, with their
    shape) and the labels (int64). Two files with the same path but other contents differ.

    A report keys dozens of artefacts by one test set of up to gigabytes, so the hash of the very
    same read-only arrays is remembered (``x.flags.writeable`` False: they cannot change under it)."""
    key = (id(x), id(y))
    found = _HASHED.get(key)
    if found is not None and found[0]() is x and (y is None or found[1]() is y):
        return found[2]
    value = _sha256(x, y)
    if isinstance(x, np.ndarray) and not x.flags.writeable and (y is None or not y.flags.writeable):
        _HASHED[key] = (weakref.ref(x), weakref.ref(y) if y is not None else None, value)
    return value


def _sha256(x, y) -> str:
    digest = hashlib.sha256()
    x = np.ascontiguousarray(x, dtype=np.float32)
    digest.update(json.dumps(["x", list(x.shape)]).encode())
    digest.update(memoryview(x).cast("B"))
    if y is not None:
        y = np.ascontiguousarray(y, dtype=np.int64)
        digest.update(json.dumps(["y", list(y.shape)]).encode())
        digest.update(memoryview(y).cast("B"))
    return digest.hexdigest()


def check_eps(eps: float) -> str | None:
    """Refuse a budget outside [0, 255] (0-255 units); return a warning for one below 1, else None."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a number (0-255 pixel units), got {eps!r}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be >= 0 (0-255 pixel units), got {eps:g}")
    if eps > EPS_MAX:
        raise ValueError(f"eps is in 0-255 pixel units, so {eps:g} exceeds the whole range; the largest is 255")
    if 0 < eps < 1:
        return (f"eps is in 0-255 units; {eps:g} is {eps / 255:.2g} of the range. Did you mean "
                f"{eps * 255:g} ({eps:g} in [0, 1] units)?")  # fmt: skip
    return None


def min_negatives(fpr: float) -> int:
    """The fewest clean inputs that can set a threshold at ``fpr``: below ceil(1 / fpr), the threshold
    is the largest clean score and the false-positive rate is 0 by construction."""
    return math.ceil(1.0 / fpr - 1e-9)
