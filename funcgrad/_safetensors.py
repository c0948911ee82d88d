"""The safetensors container, written and read by funcgrad with a validating parser.

Layout (https://github.com/huggingface/safetensors): 8 bytes little-endian header length
``n``, ``n`` bytes of JSON (``{name: {"dtype", "shape", "data_offsets"}, "__metadata__":
{str: str}}``, space-padded to 8 bytes), then the tensors' bytes, back to back.

Files are data, so the reader trusts nothing: the header length is bounded by the file
size, the JSON must be an object with unique keys, every dtype must be known, every shape a
short list of non-negative ints whose byte size equals its offsets' span, and the spans
must tile the data area exactly (no overlap, no hole, nothing outside the file). Only then
is a tensor read, and only the tensors asked for; no allocation exceeds the file size.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Iterable
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MalformedFile",
    "TensorInfo",
    "dtype_to_st",
    "parse_header",
    "read_tensor",
    "write_file",
]

MAX_HEADER = 100 * 1024 * 1024  # what the reference (Rust) reader accepts
MAX_NDIM = 64


class MalformedFile(ValueError):
    """What is wrong with a file; callers add the file's name."""


def _ml_dtypes() -> Any:
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes


_NATIVE = {
    "BOOL": np.dtype(bool),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
}
# safetensors names of ml_dtypes types (read as raw bytes when ml_dtypes is missing)
_ML_ST = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_ML_ST_EXTRA = {"F8_E8M0": "float8_e8m0fnu"}
_ST_ITEMSIZE = {**{k: v.itemsize for k, v in _NATIVE.items()}, "BF16": 2, "F8_E4M3": 1}
_ST_ITEMSIZE.update({"F8_E5M2": 1, "F8_E8M0": 1})


def st_dtype(name: str) -> np.dtype | None:
    """The NumPy dtype of a safetensors dtype name, ``None`` if it needs a missing
    ml_dtypes (raises MalformedFile for an unknown name)."""
    if name in _NATIVE:
        return _NATIVE[name]
    ml_name = _ML_ST.get(name) or _ML_ST_EXTRA.get(name)
    if ml_name is None:
        raise MalformedFile(f"unknown dtype {name!r}")
    ml = _ml_dtypes()
    if ml is None or not hasattr(ml, ml_name):
        return None
    return np.dtype(getattr(ml, ml_name))


def dtype_to_st(dtype: np.dtype) -> str | None:
    """The safetensors name of a NumPy dtype, ``None`` if the format has none."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biufc" and dtype.fields is None:
        native = dtype.newbyteorder("=")
        for k, v in _NATIVE.items():
            if v == native:
                return k
    for k, name in {**_ML_ST, **_ML_ST_EXTRA}.items():
        if dtype.name == name:
            return k
    return None


class TensorInfo:
    """One validated header entry: where its bytes are and what they mean."""

    __slots__ = ("name", "st_dtype", "shape", "begin", "end")

    def __init__(self, name: str, st: str, shape: tuple[int, ...], begin: int, end: int):
        self.name, self.st_dtype, self.shape, self.begin, self.end = name, st, shape, begin, end


def _unique_object(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise MalformedFile(f"the header repeats the key {k!r}")
        out[k] = v
    return out


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_header(f: BinaryIO, size: int) -> tuple[dict[str, str], list[TensorInfo], int]:
    """Validate the header of a safetensors file of ``size`` bytes open as ``f``.

    Returns ``(metadata, tensors in file order, data_start)``; raises MalformedFile."""
    if size < 8:
        raise MalformedFile(f"it has {size} bytes, fewer than the 8-byte header length")
    f.seek(0)
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8 or n > MAX_HEADER:
        raise MalformedFile(
            f"the header claims {n} bytes but the file has {size - 8} after the length"
        )
    raw = f.read(n)
    if len(raw) != n:
        raise MalformedFile("the file is shorter than its header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object)
    except MalformedFile:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedFile(f"the header is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise MalformedFile("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise MalformedFile("__metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = size - data_start
    tensors = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise MalformedFile(
                f"tensor {name!r}: expected the keys dtype, shape, data_offsets, got {info!r:.200}"
            )
        st, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(st, str) or st not in _ST_ITEMSIZE:
            raise MalformedFile(f"tensor {name!r}: unknown dtype {st!r:.50}")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_NDIM
            or not all(_int(d) and d >= 0 for d in shape)
        ):
            raise MalformedFile(f"tensor {name!r}: bad shape {shape!r:.200}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_int(o) for o in offsets)):
            raise MalformedFile(f"tensor {name!r}: bad data_offsets {offsets!r:.200}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise MalformedFile(
                f"tensor {name!r}: data_offsets [{begin}, {end}] outside the {data_len} data bytes"
            )
        nbytes = math.prod(shape) * _ST_ITEMSIZE[st]
        if end - begin != nbytes:
            raise MalformedFile(
                f"tensor {name!r}: shape {shape} of {st} needs {nbytes} bytes, its offsets "
                f"span {end - begin}"
            )
        tensors.append(TensorInfo(name, st, tuple(shape), begin, end))
    pos = 0
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if t.begin != pos:
            what = "overlaps the previous tensor" if t.begin < pos else "leaves a gap before it"
            raise MalformedFile(f"tensor {t.name!r}: data_offsets {what}")
        pos = t.end
    if pos != data_len:
        raise MalformedFile(f"the tensors cover {pos} of the {data_len} data bytes")
    tensors.sort(key=lambda t: t.begin)
    return metadata, tensors, data_start


def read_tensor(f: BinaryIO, info: TensorInfo, data_start: int) -> np.ndarray:
    """A fresh, writable array with the bytes of ``info`` (validated by parse_header).
    Dtypes that need a missing ml_dtypes come back as raw ``uint8``/``uint16`` bits."""
    n = info.end - info.begin
    buf = np.empty(n, np.uint8)
    f.seek(data_start + info.begin)
    got = f.readinto(memoryview(buf)) if n else 0
    if got != n:
        raise MalformedFile(f"tensor {info.name!r}: the file ends inside its data")
    if info.st_dtype == "BOOL":  # any nonzero byte is True (NumPy would keep the raw byte)
        return (buf != 0).reshape(info.shape)
    dtype = st_dtype(info.st_dtype)
    if dtype is None:
        dtype = np.dtype(f"<u{_ST_ITEMSIZE[info.st_dtype]}")
    elif dtype.itemsize > 1 and dtype.kind in "iufc":
        dtype = dtype.newbyteorder("<")
    arr = buf.view(dtype).reshape(info.shape)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def crc32(arr: np.ndarray) -> int:
    """Checksum of an array's little-endian bytes, as stored."""
    return zlib.crc32(_bytes_view(arr)) & 0xFFFFFFFF


def _bytes_view(arr: np.ndarray) -> memoryview:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return memoryview(arr.reshape(-1).view(np.uint8))


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def write_file(
    f: BinaryIO, tensors: Iterable[tuple[str, str, np.ndarray]], metadata: dict[str, str]
) -> None:
    """Write ``(name, st_dtype, array)`` triples and ``metadata`` in the safetensors layout,
    in the given order (arrays already in the bytes their dtype name says)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    items = list(tensors)
    pos = 0
    for name, st, arr in items:
        nbytes = arr.size * _ST_ITEMSIZE[st]
        if nbytes != arr.nbytes:
            raise TypeError(f"save: tensor {name!r}: {arr.dtype} is not {st}")
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for _, _, arr in items:
        if arr.size:
            f.write(_bytes_view(arr))


def file_size(f: BinaryIO) -> int:
    """The size of an open file or of a BytesIO."""
    pos = f.tell()
    size = f.seek(0, os.SEEK_END)
    f.seek(pos)
    return size
