"""A validating reader for the ``.npz`` files older funcgrad versions wrote.

An ``.npz`` is a zip archive of ``.npy`` entries. ``zipfile`` and ``np.load`` trust what
the archive declares (a 1 MB zip bomb inflates to 1 GiB; crafted headers raise KeyError,
TypeError, EOFError...), so this reader parses the archive itself: the end-of-central-
directory record (zip64 too), then the central directory, keeping only the entries asked
for. funcgrad always wrote uncompressed ("stored") entries, so every entry must be stored:
its data is then a byte range of the file, checked to lie inside the file and to match its
declared size and CRC-32 before anything is allocated. ``.npy`` headers are parsed with a
size limit and ``ast.literal_eval``; object and structured dtypes are refused.
"""

from __future__ import annotations

import ast
import math
import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

from funcgrad._safetensors import MalformedFile, file_size

__all__ = ["NpzArchive"]

_EOCD = b"PK\x05\x06"
_EOCD64_LOC = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 65536


class _Entry:
    __slots__ = ("name", "method", "flags", "crc", "csize", "usize", "offset")

    def __init__(self, name, method, flags, crc, csize, usize, offset) -> None:
        self.name, self.method, self.flags, self.crc = name, method, flags, crc
        self.csize, self.usize, self.offset = csize, usize, offset


def _zip64_extra(extra: bytes, need: list[str], values: dict[str, int]) -> None:
    """Replace the 0xFFFFFFFF fields named in ``need`` by their zip64 extra values."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 1:
            if len(body) < 8 * len(need):
                raise MalformedFile("a zip64 extra field is too short")
            for i, field in enumerate(need):
                (values[field],) = struct.unpack_from("<Q", body, 8 * i)
            return
        pos += 4 + size
    if need:
        raise MalformedFile("a zip64 size is missing its extra field")


class NpzArchive:
    """The stored ``.npy`` entries of a zip archive, read on demand."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = file_size(f)
        self.cd_offset, self.cd_size, self.count = self._end_record()

    def _end_record(self) -> tuple[int, int, int]:
        f, size = self.f, self.size
        if size < 22:
            raise MalformedFile(f"it has {size} bytes, too few for a zip archive")
        tail_len = min(size, 22 + 65535)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        at = tail.rfind(_EOCD)
        while at >= 0 and at + 22 > len(tail):
            at = tail.rfind(_EOCD, 0, at)
        if at < 0:
            head = (f.seek(0), f.read(6))[1]
            if head == _NPY_MAGIC:
                raise MalformedFile("it is a single .npy array, not a checkpoint archive")
            raise MalformedFile("it is not a zip archive (no end-of-central-directory record)")
        _, disk, cd_disk, _, count, cd_size, cd_offset, _ = struct.unpack_from(
            "<4sHHHHIIH", tail, at
        )
        eocd_pos = size - tail_len + at
        if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            loc = eocd_pos - 20
            if loc < 0:
                raise MalformedFile("a zip64 archive without its zip64 locator")
            f.seek(loc)
            block = f.read(20)
            if block[:4] != _EOCD64_LOC:
                raise MalformedFile("a zip64 archive without its zip64 locator")
            (rec,) = struct.unpack_from("<Q", block, 8)
            if rec + 56 > loc:
                raise MalformedFile("the zip64 end record lies outside the archive")
            f.seek(rec)
            block = f.read(56)
            if block[:4] != _EOCD64:
                raise MalformedFile("bad zip64 end-of-central-directory record")
            count, _, cd_size, cd_offset = struct.unpack_from("<QQQQ", block, 24)
            eocd_pos = rec
        elif disk or cd_disk:
            raise MalformedFile("multi-disk zip archives are not supported")
        if cd_offset + cd_size > eocd_pos:
            raise MalformedFile("the zip central directory lies outside the archive")
        if count > cd_size // 46:
            raise MalformedFile(f"the zip central directory cannot hold {count} entries")
        return cd_offset, cd_size, count

    def entries(self, wanted: Iterable[str]) -> dict[str, _Entry]:
        """The central-directory entries whose names are in ``wanted``."""
        wanted = set(wanted)
        f = self.f
        f.seek(self.cd_offset)
        cd = f.read(self.cd_size)
        if len(cd) != self.cd_size:
            raise MalformedFile("the zip central directory is truncated")
        found: dict[str, _Entry] = {}
        pos = 0
        for _ in range(self.count):
            if pos + 46 > len(cd) or cd[pos : pos + 4] != _CENTRAL:
                raise MalformedFile("a zip central directory entry is damaged")
            (flags, method, _, _, crc, csize, usize, nlen, elen, clen) = struct.unpack_from(
                "<HHHHIIIHHH", cd, pos + 8
            )
            (offset,) = struct.unpack_from("<I", cd, pos + 42)
            end = pos + 46 + nlen + elen + clen
            if end > len(cd):
                raise MalformedFile("a zip central directory entry runs past its end")
            raw_name = cd[pos + 46 : pos + 46 + nlen]
            extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
            pos = end
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if name not in wanted:
                continue
            if name in found:
                raise MalformedFile(f"the archive holds {name!r} twice")
            values = {"usize": usize, "csize": csize, "offset": offset}
            need = [k for k in ("usize", "csize", "offset") if values[k] == 0xFFFFFFFF]
            _zip64_extra(extra, need, values)
            found[name] = _Entry(
                name, method, flags, crc, values["csize"], values["usize"], values["offset"]
            )
        return found

    def read_entry(self, e: _Entry) -> bytearray:
        """The bytes of a stored entry, checked against its declared size and CRC."""
        if e.flags & 0x1:
            raise MalformedFile(f"entry {e.name!r} is encrypted")
        if e.method != 0:
            raise MalformedFile(
                f"entry {e.name!r} is compressed (method {e.method}); funcgrad checkpoints are "
                "uncompressed, and compressed entries are refused (they can inflate without bound)"
            )
        if e.csize != e.usize:
            raise MalformedFile(f"stored entry {e.name!r} declares two different sizes")
        f = self.f
        if e.offset + 30 > self.cd_offset:
            raise MalformedFile(f"entry {e.name!r} starts outside the archive's data")
        f.seek(e.offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != _LOCAL:
            raise MalformedFile(f"entry {e.name!r}: damaged local header")
        nlen, elen = struct.unpack_from("<HH", local, 26)
        start = e.offset + 30 + nlen + elen
        if start + e.usize > self.cd_offset:
            raise MalformedFile(
                f"entry {e.name!r} declares {e.usize} bytes, more than the archive holds"
            )
        f.seek(start)
        data = bytearray(e.usize)
        if f.readinto(data) != e.usize:
            raise MalformedFile(f"entry {e.name!r} is truncated")
        if zlib.crc32(data) & 0xFFFFFFFF != e.crc:
            raise MalformedFile(f"entry {e.name!r} fails its CRC-32 check (corrupted)")
        return data

    def read_array(self, e: _Entry) -> np.ndarray:
        return parse_npy(self.read_entry(e), e.name)


def parse_npy(data: bytearray, name: str) -> np.ndarray:
    """An array over ``.npy`` bytes (a writable view of ``data``), validated: no pickle,
    no object or structured dtypes, the size the header declares."""
    if len(data) < 10 or data[:6] != _NPY_MAGIC:
        raise MalformedFile(f"entry {name!r} is not a .npy array")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise MalformedFile(f"entry {name!r} is truncated")
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise MalformedFile(f"entry {name!r} has unknown .npy version {major}")
    if hlen > _MAX_NPY_HEADER or start + hlen > len(data):
        raise MalformedFile(f"entry {name!r} has a bad .npy header length {hlen}")
    try:
        text = data[start : start + hlen].decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, RecursionError, MemoryError) as e:
        raise MalformedFile(f"entry {name!r} has an unreadable .npy header ({e})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise MalformedFile(f"entry {name!r} has a malformed .npy header")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or not isinstance(fortran, bool):
        raise MalformedFile(f"entry {name!r}: unsupported .npy dtype or order {descr!r:.60}")
    if (
        not isinstance(shape, tuple)
        or len(shape) > 64
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise MalformedFile(f"entry {name!r}: bad shape {shape!r:.100}")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError) as e:
        raise MalformedFile(f"entry {name!r}: unknown dtype {descr!r:.60} ({e})") from None
    if dtype.hasobject:
        raise MalformedFile(f"entry {name!r} holds Python objects, which would need pickle")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise MalformedFile(f"entry {name!r}: unsupported dtype {descr!r:.60}")
    body = len(data) - start - hlen
    nbytes = math.prod(shape) * dtype.itemsize
    if body != nbytes:
        raise MalformedFile(
            f"entry {name!r}: shape {shape} of {dtype} needs {nbytes} bytes, the entry has {body}"
        )
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start + hlen)
    arr = flat.reshape(shape, order="F" if fortran else "C")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr
