"""EfficientNet-Lite0: the torch-free reader, its refusal to run code, and a conversion checked
against an independent NumPy forward pass of the same state dict."""

import collections
import io
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from uncertadv import backbones
from uncertadv.torch_state_dict import MAGIC, PROTOCOL, read_state_dict

PETIMAGES = Path(
    os.environ.get("UNCERTADV_PETIMAGES") or Path(__file__).resolve().parents[2] / "shared" / "data" / "PetImages"
)


# ----------------------------------------------------------------------------- a legacy file, written by hand


class _FakeStorage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def _write_legacy(path, tensors: dict, extra_state=None, claimed_shape=None):
    """A legacy-format PyTorch file of ``tensors`` (float32 arrays), written without torch."""
    torch_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # a stand-in, pickled by name only
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch = types.ModuleType("torch")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    class _Tensor:
        def __init__(self, storage, array):
            self.storage, self.array = storage, array

        def __reduce__(self):
            strides = tuple(s // 4 for s in self.array.strides)
            shape = claimed_shape or self.array.shape  # a lie about the shape, to test the bounds check
            return _rebuild_tensor_v2, (self.storage, 0, shape, strides, False, collections.OrderedDict())

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.array.size)
            return None

    storages = [_FakeStorage(str(i), np.ascontiguousarray(a, np.float32)) for i, a in enumerate(tensors.values())]
    state = collections.OrderedDict((name, _Tensor(s, s.array)) for name, s in zip(tensors, storages))
    if extra_state:
        state.update(extra_state)
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": torch_utils})
    try:
        buffer = io.BytesIO()
        for header in (MAGIC, PROTOCOL, {"little_endian": True}):
            pickle.dump(header, buffer, protocol=2)
        _Pickler(buffer, protocol=2).dump(state)
        pickle.dump([s.key for s in storages], buffer, protocol=2)
        for s in storages:
            buffer.write(np.int64(s.array.size).tobytes())
            buffer.write(s.array.astype("<f4").tobytes())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    Path(path).write_bytes(buffer.getvalue())


def test_reader_round_trips_tensors_without_torch(tmp_path):
    tensors = {
        "a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "a.bias": np.array([1.5, -2.0], np.float32),
    }
    _write_legacy(tmp_path / "small.pth", tensors)
    got = read_state_dict(tmp_path / "small.pth")
    assert list(got) == list(tensors)
    for name in tensors:
        np.testing.assert_array_equal(got[name], tensors[name])


class _RunsCode:
    def __reduce__(self):
        return (eval, ("open('PWNED', 'w').write('x')",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_legacy(tmp_path / "evil.pth", {"w": np.zeros(2, np.float32)}, extra_state={"payload": _RunsCode()})
    with pytest.raises(ValueError, match=r"refusing to load (__builtin__|builtins)\.eval"):
        read_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "PWNED").exists()
    # a tensor claiming more elements than its storage holds would read other memory
    _write_legacy(tmp_path / "long.pth", {"w": np.zeros(4, np.float32)}, claimed_shape=(64,))
    with pytest.raises(ValueError, match="outside its storage"):
        read_state_dict(tmp_path / "long.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02K\x01.")  # a pickle, but not a PyTorch file
    with pytest.raises(ValueError, match="magic"):
        read_state_dict(tmp_path / "junk.pth")


# ----------------------------------------------------------------------------- the real weights


@pytest.fixture(scope="module")
def state():
    try:
        path = backbones.package_weights_file()
    except ValueError as err:
        pytest.skip(f"the weights package is not installed: {err}")
    return read_state_dict(path)


def test_state_dict_has_the_expected_contents(state):
    assert len(state) == 296
    trainable = sum(
        v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert trainable == 4_652_008
    assert int(np.sum([np.sum(v == 0) for k, v in state.items() if k.endswith("running_var")])) == 130


def _same_pad(x, kernel, stride):
    """TensorFlow's SAME padding of ``x [H, W, C]``: the extra pixel goes after."""
    pads = []
    for size in x.shape[:2]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)])


def _conv(x, w, stride):
    """``x [H, W, Cin]``, torch weight ``w [Cout, Cin, k, k]`` -> ``[H', W', Cout]``."""
    k = w.shape[-1]
    x = _same_pad(x, k, stride)
    out_h, out_w = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((out_h, out_w, w.shape[0]))
    for i in range(k):
        for j in range(k):
            patch = x[i : i + stride * out_h : stride, j : j + stride * out_w : stride]  # [H', W', Cin]
            out += patch @ w[:, :, i, j].T
    return out


def _depthwise(x, w, stride):
    """``x [H, W, C]``, torch weight ``w [C, 1, k, k]``."""
    k = w.shape[-1]
    x = _same_pad(x, k, stride)
    out_h, out_w = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((out_h, out_w, w.shape[0]))
    for i in range(k):
        for j in range(k):
            out += x[i : i + stride * out_h : stride, j : j + stride * out_w : stride] * w[:, 0, i, j]
    return out


# EfficientNet-B0's blocks (Lite0 keeps them), written out here rather than taken from the code
# under test: (kernel, stride, expand, out) per block, 16 blocks.
BLOCKS = [(3, 1, 1, 16), (3, 2, 6, 24), (3, 1, 6, 24), (5, 2, 6, 40), (5, 1, 6, 40), (3, 2, 6, 80), (3, 1, 6, 80),
          (3, 1, 6, 80), (5, 1, 6, 112), (5, 1, 6, 112), (5, 1, 6, 112), (5, 2, 6, 192), (5, 1, 6, 192),
          (5, 1, 6, 192), (5, 1, 6, 192), (3, 1, 6, 320)]  # fmt: skip


def _numpy_forward(state, image):
    """An independent forward pass of the torch state dict: ``image [H, W, 3]`` in 0-255 -> logits [1000]."""

    def bn(x, name):
        scale = state[f"{name}.weight"] / np.sqrt(state[f"{name}.running_var"] + 1e-3)
        return (x - state[f"{name}.running_mean"]) * scale + state[f"{name}.bias"]

    relu6 = lambda x: np.clip(x, 0, 6)  # noqa: E731
    x = (image.astype(np.float64) - 127.0) / 128.0
    x = relu6(bn(_conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    for block, (kernel, s, expand, out) in enumerate(BLOCKS):
        p = f"_blocks.{block}."
        inputs = x
        if expand != 1:
            x = relu6(bn(_conv(x, state[p + "_expand_conv.weight"], 1), p + "_bn0"))
        assert state[p + "_depthwise_conv.weight"].shape[-1] == kernel
        x = relu6(bn(_depthwise(x, state[p + "_depthwise_conv.weight"], s), p + "_bn1"))
        x = bn(_conv(x, state[p + "_project_conv.weight"], 1), p + "_bn2")
        if s == 1 and inputs.shape[-1] == out:  # residual where shape allows, as in the TF reference
            x = x + inputs
    x = relu6(bn(_conv(x, state["_conv_head.weight"], 1), "_bn1"))
    return state["_fc.weight"] @ x.mean(axis=(0, 1)) + state["_fc.bias"]


def test_keras_conversion_matches_a_numpy_forward_pass(state, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path))
    # 45 px: the later stride-2 layers (12 -> 6, 6 -> 3) pad unevenly, as TF "SAME" does
    model = backbones.efficientnet_lite0(include_top=True, input_shape=(45, 45, 3))
    image = np.random.default_rng(0).uniform(0, 255, (45, 45, 3)).astype(np.float32)
    want = _numpy_forward(state, image)
    probs = model.predict(image[None], verbose=0)[0]
    got = np.log(probs) - np.log(probs).mean()
    np.testing.assert_allclose(got, want - want.mean(), atol=2e-3)
    assert list(tmp_path.glob("efficientnet-lite0-*.npz"))  # converted once into the cache
    features = backbones.efficientnet_lite0(include_top=False, input_shape=(45, 45, 3))
    assert features.output.shape[-1] == backbones.FEATURES


@pytest.mark.skipif(
    not PETIMAGES.is_dir(),
    reason="needs the PetImages folder: $UNCERTADV_PETIMAGES or ../shared/data/PetImages (never committed)",
)
def test_zero_shot_tells_cats_from_dogs(state, tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path))
    model = backbones.efficientnet_lite0(include_top=True)
    files = sorted((PETIMAGES / "Cat").glob("*.jpg"))[:10] + sorted((PETIMAGES / "Dog").glob("*.jpg"))[:10]
    images = [tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(str(f)), channels=3), (224, 224)) for f in files]
    probs = model.predict(np.stack(images), verbose=0)
    dog_beats_cat = probs[:, 151:269].max(axis=1) > probs[:, 281:286].max(axis=1)  # ImageNet's dog and cat classes
    assert np.mean(dog_beats_cat == np.r_[np.zeros(10), np.ones(10)]) >= 0.85
