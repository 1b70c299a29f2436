"""A legacy-format `torch.save` file read with numpy alone (resemblyzer's `pretrained.pt`).

The format (torch before 1.6): five pickles in a row (a magic number, a
protocol version, system info, the saved object, the storage keys in order),
then each storage as an 8-byte element count followed by its raw bytes. The
object names tensors by storage key through pickle's persistent ids. Only the
few classes such a state dict needs may be unpickled: anything else in the
file is refused, so a doctored checkpoint cannot run code (and the weights are
pinned by SHA-256 before they are read at all).
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
_STORAGES = {
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


class CheckpointError(ValueError):
    """Not a legacy torch checkpoint this reader understands, or it asks for a class it may not build."""


class _Storage:
    """A storage named in the pickle; its bytes come after it, filled in by `load`."""

    def __init__(self, dtype: type, size: int) -> None:
        self.dtype, self.size = dtype, size
        self.data: np.ndarray | None = None


class _Tensor:
    """A tensor waiting for its storage: (storage, offset, size, stride) as torch's rebuild gets them."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise CheckpointError("a tensor's storage was missing from the file")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view)  # a copy: the file's buffer is let go


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGES:
            return name  # only ever seen inside a persistent id
        raise CheckpointError(f"refusing to unpickle {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage" or storage_type not in _STORAGES:
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGES[storage_type], int(size))
        return self.storages[key]


def _arrays(obj: Any) -> Any:
    """The loaded object with every tensor as a numpy array."""
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_arrays(v) for v in obj)
    return obj


def load(path: Path) -> Any:
    """The saved object (dicts, numbers, tensors as numpy arrays)."""
    with path.open("rb") as src:
        safe = _Unpickler(src, {})  # the header holds plain values; the same restrictions apply
        if safe.load() != MAGIC or safe.load() != PROTOCOL:
            raise CheckpointError(f"{path} is not a legacy torch checkpoint")
        info = safe.load()
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise CheckpointError(f"{path}: big-endian or unknown system info {info!r}")
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(src, storages).load()
        keys = _Unpickler(src, {}).load()
        for key in keys:
            storage = storages[key]
            count = int(np.frombuffer(src.read(8), dtype="<i8")[0])
            raw = src.read(count * np.dtype(storage.dtype).itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _arrays(obj)
