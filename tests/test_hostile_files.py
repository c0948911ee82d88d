"""Loading hostile files: a generator of damaged and crafted checkpoints and exported blobs.

Every case must either load (a flip in padding can be harmless) or raise a ValueError that
names the file; nothing may crash, hang, or allocate more than a small multiple of the
file's size (measured with tracemalloc, which sees NumPy's buffers too)."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import funcgrad as fg
from funcgrad.serialization import load_params, save_params

pytest.importorskip("safetensors")

SLACK = 256 * 1024  # fixed overhead: error messages, parser state, small Python objects
FACTOR = 4  # allocations may not exceed FACTOR * file size + SLACK


def _tree():
    rng = np.random.default_rng(0)
    return {
        "params": [
            {"w": rng.normal(size=(8, 6)).astype(np.float32), "b": np.zeros(6, np.float32)},
            {"w": rng.normal(size=(6, 3)), "b": np.arange(3, dtype=np.int64)},
        ],
        "step": np.int32(3),
        "flags": np.array([True, False]),
        "meta": ("mlp", 2, None),
    }


def _v2_bytes(tmp_path) -> bytes:
    save_params(tmp_path / "base", _tree())
    return (tmp_path / "base").read_bytes()


def _v1_bytes() -> bytes:
    arrays = [np.ones((8, 6), np.float32), np.arange(5), np.float64(2.0)]
    tree = {
        "t": "dict",
        "keys": [["str", "w"], ["str", "i"], ["str", "s"]],
        "c": [{"t": "array", "i": i, "scalar": i == 2} for i in range(3)],
    }
    header = {"format": "funcgrad.params", "version": 1, "tree": tree}
    buf = io.BytesIO()
    entries = {"__funcgrad__": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    entries.update({f"a{i}": a for i, a in enumerate(arrays)})
    np.savez(buf, allow_pickle=False, **entries)
    return buf.getvalue()


def _st_file(header: dict, data: bytes = b"", pad: bool = True) -> bytes:
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def _crafted_safetensors() -> list[bytes]:
    meta = {"format": "funcgrad.params", "version": "2"}
    t = {"t": "array", "name": "w"}
    ok = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    data = bytes(16)
    cases = [
        _st_file({"w": {**ok, "shape": [10**9, 10**9]}}, data),  # huge claimed size
        _st_file({"w": {**ok, "data_offsets": [0, 10**12]}}, data),  # out of range
        _st_file({"w": {**ok, "data_offsets": [8, 24]}}, data),  # past the end
        _st_file({"w": ok, "v": {**ok, "data_offsets": [8, 24]}}, data + bytes(8)),  # overlap
        _st_file({"w": {**ok, "dtype": "Q128"}}, data),  # unknown dtype
        _st_file({"w": {**ok, "dtype": 7}}, data),
        _st_file({"w": {**ok, "shape": [-1, 4]}}, data),
        _st_file({"w": {**ok, "shape": "2,2"}}, data),
        _st_file({"w": {**ok, "shape": [2.0, 2]}}, data),
        _st_file({"w": {**ok, "shape": [1] * 1000}}, data),
        _st_file({"w": {**ok, "data_offsets": [16, 0]}}, data),
        _st_file({"w": {**ok, "extra": 1}}, data),
        _st_file({"w": [1, 2, 3]}, data),
        _st_file([1, 2, 3], data),  # not an object
        _st_file({"__metadata__": {"format": 3}, "w": ok}, data),
        _st_file({"__metadata__": {**meta, "tree": "[" * 100000}, "w": ok}, data),
        _st_file(
            {"__metadata__": {**meta, "tree": json.dumps({"t": "list", "c": [t, t]})}, "w": ok},
            data,
        ),
        _st_file(
            {"__metadata__": {**meta, "tree": json.dumps({"t": "array", "name": "zz"})}, "w": ok},
            data,
        ),
        _st_file(
            {
                "__metadata__": {**meta, "tree": json.dumps({"t": "dict", "keys": [1], "c": [t]})},
                "w": ok,
            },
            data,
        ),
        _st_file(
            {
                "__metadata__": {
                    **meta,
                    "tree": json.dumps(
                        {"t": "namedtuple", "name": "1x", "module": "m", "fields": ["a"], "c": [t]}
                    ),
                },
                "w": ok,
            },
            data,
        ),
        _st_file(
            {
                "__metadata__": {
                    **meta,
                    "tree": json.dumps({"t": "array", "name": "w", "dtype": "object"}),
                },
                "w": ok,
            },
            data,
        ),
        _st_file(
            {
                "__metadata__": {**meta, "tree": json.dumps({"t": "array", "name": "w", "crc": 1})},
                "w": ok,
            },
            data,
        ),
        _st_file({"__metadata__": {**meta, "version": "99"}, "w": ok}, data),
        _st_file(
            {"__metadata__": {**meta, "tree": json.dumps({"t": "py", "v": [1]})}, "w": ok}, data
        ),
        _st_file({"__metadata__": {**meta, "tree": json.dumps({"t": "weird"})}, "w": ok}, data),
        _st_file({"w": ok}, data)[:-1],
        b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":1, "a":2}  ',  # duplicate keys
        b"\xff" * 8 + b"{}",  # header length 2**64-1
        struct.pack("<Q", 200 * 1024 * 1024) + b"{" + b" " * 100,
        struct.pack("<Q", 4) + b"\xff\xfe{}",  # not UTF-8
        b"\x00" * 8,
        b"",
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
    ]
    return cases


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, method in entries:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def _npy(descr: str, shape: tuple, body: bytes, fortran: bool = False) -> bytes:
    h = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    h += b" " * (-(len(h) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + body


def _crafted_npz() -> list[bytes]:
    header = json.dumps(
        {"format": "funcgrad.params", "version": 1, "tree": {"t": "array", "i": 0}}
    ).encode()
    head = ("__funcgrad__.npy", _npy("|u1", (len(header),), header), zipfile.ZIP_STORED)
    cases = [
        # a zip bomb: 64 MiB of zeros deflated to ~64 KiB
        _zip([head, ("a0.npy", _npy("<f8", (8 << 20,), bytes(64 << 20)), zipfile.ZIP_DEFLATED)]),
        _zip([head, ("a0.npy", _npy("<f8", (10**12, 10**12), b""), zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", _npy("O", (2,), b"\x80\x04N."), zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", _npy("[('a', '<f4')]", (1,), bytes(4)), zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", _npy("<f8", (-1,), b""), zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", _npy("xyz", (1,), b""), zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 70000, zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", b"\x93NUMPY\x09\x00", zipfile.ZIP_STORED)]),
        _zip([head, ("a0.npy", b"\x93NUMPY\x01\x00\x10\x00__import__('os')", zipfile.ZIP_STORED)]),
        _zip([head]),  # the referenced array is missing
        _zip([("__funcgrad__.npy", _npy("<f4", (1,), bytes(4)), zipfile.ZIP_STORED)]),
        _zip([("__funcgrad__.npy", _npy("|u1", (3,), b"[1,"), zipfile.ZIP_STORED)]),
        _zip([("x.npy", b"", zipfile.ZIP_STORED)]),
        _zip([]),
    ]
    # a stored entry whose central directory claims 1 TiB (the local data is tiny)
    z = bytearray(_zip([head, ("a0.npy", _npy("<f8", (2,), bytes(16)), zipfile.ZIP_STORED)]))
    cd = z.rfind(b"PK\x01\x02")
    z[cd + 20 : cd + 28] = struct.pack("<II", 0xFFFFFFFE, 0xFFFFFFFE)
    cases.append(bytes(z))
    # the end record claims 65535 entries / a central directory past the end
    z2 = bytearray(z)
    eocd = z2.rfind(b"PK\x05\x06")
    z2[eocd + 8 : eocd + 12] = struct.pack("<HH", 0xFFFE, 0xFFFE)
    cases.append(bytes(z2))
    z3 = bytearray(z)
    z3[eocd + 16 : eocd + 20] = struct.pack("<I", 0x7FFFFFFF)
    cases.append(bytes(z3))
    return cases


def _mutations(data: bytes, rng: np.random.Generator, n_flips: int) -> list[bytes]:
    out = []
    step = max(1, len(data) // 40)
    out += [data[:k] for k in range(0, len(data), step)]  # truncations
    for _ in range(n_flips):  # bit flips, one to three per case
        b = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
        out.append(bytes(b))
    for _ in range(10):  # random byte runs written over the header
        b = bytearray(data)
        i = int(rng.integers(min(len(b), 200)))
        b[i : i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        out.append(bytes(b))
    return out


def _check_case(path, data: bytes, load) -> str:
    path.write_bytes(data)
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        load(path)
        outcome = "loaded"
    except ValueError as e:
        assert str(path) in str(e), f"the error does not name the file: {e}"
        outcome = "refused"
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak <= FACTOR * len(data) + SLACK, f"allocated {peak} bytes for a {len(data)}-byte file"
    return outcome


def test_hostile_checkpoints(tmp_path):
    rng = np.random.default_rng(1234)
    v2 = _v2_bytes(tmp_path)
    v1 = _v1_bytes()
    cases = (
        _mutations(v2, rng, 80)
        + _mutations(v1, rng, 60)
        + _crafted_safetensors()
        + _crafted_npz()
        + [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 7, 8, 100, 5000)]
    )
    assert len(cases) >= 200
    load_params(tmp_path / "base")  # warm up imports and class tables before measuring
    outcomes = {"loaded": 0, "refused": 0}
    tracemalloc.start()
    try:
        for i, data in enumerate(cases):
            try:
                outcomes[_check_case(tmp_path / f"case{i}", data, load_params)] += 1
            except AssertionError as e:
                raise AssertionError(f"case {i} ({len(data)} bytes): {e}") from None
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] > 0.8 * len(cases), outcomes
    # the undamaged files still load, and equal what was saved
    (tmp_path / "v1").write_bytes(v1)
    np.testing.assert_array_equal(load_params(tmp_path / "v1")["w"], np.ones((8, 6)))
    np.testing.assert_array_equal(load_params(tmp_path / "base")["params"][1]["b"], [0, 1, 2])


def test_hostile_exported_blobs(tmp_path):
    rng = np.random.default_rng(99)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    exp = fg.export.export(lambda x: fg.numpy.tanh(x @ w).sum(0))(np.ones((4, 5), np.float32))
    blob = exp.serialize()
    cases = _mutations(blob, rng, 60)
    meta_at = blob.find(b'"exported"')
    assert meta_at > 0
    desc = json.loads(
        json.loads(blob[8 : 8 + struct.unpack("<Q", blob[:8])[0]])["__metadata__"]["exported"]
    )
    assert desc["name"] == "<lambda>"
    tracemalloc.start()
    try:
        for i, data in enumerate(cases):
            try:
                _check_case(tmp_path / f"blob{i}", data, fg.export.load_exported)
            except AssertionError as e:
                raise AssertionError(f"blob case {i}: {e}") from None
    finally:
        tracemalloc.stop()
    for data in cases[:20]:
        with pytest.raises(ValueError, match="deserialize"):
            fg.export.deserialize(data[: len(data) // 2])
