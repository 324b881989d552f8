"""Read a PyTorch state dict saved in the *legacy* (non-zip) format, without torch.

The format, in order: a magic-number pickle, a protocol-version pickle, a sys-info pickle; the
state-dict pickle, whose tensors refer to storages by persistent id; a pickled list of storage
keys; then, for each key in that order, an int64 element count and the storage's raw
little-endian bytes.

It is a pickle, so it is read by an unpickler whose ``find_class`` allows only what a state
dict needs (an OrderedDict, the tensor-rebuild function, the storage types) and refuses
everything else: a file that would run code on load raises ``ValueError`` instead.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, name: str):
        self.dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")


class _TensorRef:
    """A tensor waiting for its storage: ``(key, offset, size, stride)``."""

    def __init__(self, storage: tuple, offset: int, size: tuple, stride: tuple):
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    return _TensorRef(storage, storage_offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Allows OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage; nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return name  # a marker, resolved by persistent_load
        raise ValueError(f"refusing to load {module}.{name} from a state dict: not a tensor, storage or dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id in a state dict: {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise ValueError("storage views are not supported")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, str) or storage_type not in STORAGE_DTYPES:
            raise ValueError(f"unsupported storage type {storage_type!r}")
        return (str(key), _Storage(storage_type).dtype)


class _PlainUnpickler(pickle.Unpickler):
    """For the header and key-list pickles: plain data only."""

    def find_class(self, module: str, name: str):
        raise ValueError(f"refusing to load {module}.{name}: the header of a state dict holds plain data only")


def _check_view(path, name: str, ref: _TensorRef, length: int) -> None:
    """Refuse a tensor whose offset, sizes or strides would reach outside its storage:
    ``as_strided`` checks none of them."""
    numbers = (ref.offset, *ref.size, *ref.stride)
    if not all(isinstance(v, int) and v >= 0 for v in numbers) or len(ref.size) != len(ref.stride):
        raise ValueError(f"{path}: entry {name!r} has an invalid shape or strides")
    if 0 in ref.size:
        return
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= length or int(np.prod(ref.size)) > length:
        raise ValueError(f"{path}: entry {name!r} reaches outside its storage")


def read_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """``{name: array}`` of a legacy-format PyTorch state dict, as NumPy arrays in torch's layout."""
    data = Path(path).read_bytes()
    handle = io.BytesIO(data)
    try:
        if _PlainUnpickler(handle).load() != MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file (bad magic number)")
        if _PlainUnpickler(handle).load() != PROTOCOL:
            raise ValueError(f"{path} has an unsupported PyTorch protocol version")
        _PlainUnpickler(handle).load()  # sys info: endianness, type sizes
        refs = _StateDictUnpickler(handle).load()
        keys = _PlainUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"cannot read {path} as a PyTorch state dict: {err}") from None
    if not isinstance(refs, dict) or not isinstance(keys, list):
        raise ValueError(f"{path} does not hold a state dict")
    dtypes = {ref.key: ref.dtype for ref in refs.values() if isinstance(ref, _TensorRef)}
    storages = {}
    for key in keys:
        (count,) = np.frombuffer(handle.read(8), dtype="<i8")
        dtype = dtypes.get(str(key), np.dtype("<f4"))
        raw = handle.read(int(count) * dtype.itemsize)
        if len(raw) != int(count) * dtype.itemsize:
            raise ValueError(f"{path} is truncated")
        storages[str(key)] = np.frombuffer(raw, dtype=dtype)
    out = {}
    for name, ref in refs.items():
        if not isinstance(ref, _TensorRef):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        if ref.key not in storages:
            raise ValueError(f"{path}: entry {name!r} refers to a missing storage")
        flat = storages[ref.key]
        _check_view(path, name, ref, len(flat))
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], shape=ref.size, strides=tuple(s * itemsize for s in ref.stride)
        )
        out[name] = np.array(view).astype(flat.dtype.newbyteorder("="))
    return out
