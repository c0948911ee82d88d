"""Saving parameters as safetensors checkpoints, without pickle and without running code on load.

``save_params(path, tree)`` writes one `safetensors <https://github.com/huggingface/safetensors>`_
file: every array leaf is a tensor named by its key path (``params/dense_0/kernel``; list
items by index, NamedTuple fields by name), and the file's metadata holds a JSON description
of the tree (dicts with str or int keys in order, lists, tuples, None, NamedTuples such as
optimizer states, and Python bool/int/float/str leaves). Any safetensors reader
(``safetensors.numpy.load_file``, PyTorch, Hugging Face tools) reads the tensors directly.
Dtypes are kept exactly: bool, (u)int8..64, float16/32/64, complex64, bfloat16 and float8
(``ml_dtypes``) natively; complex128 as float64 pairs and other ml_dtypes types as raw bits,
with the true dtype recorded in the tree. Dtypes the format cannot represent (object,
strings, long double...) are refused when saving, never mangled.

``load_params(path)`` validates the whole header before reading a byte of data, reads only
the tensors the tree references, and checks each one's CRC-32; it also reads plain
safetensors files (as a flat ``{name: array}`` dict) and the ``.npz`` checkpoints of older
funcgrad versions. Every damaged or hostile file is a ``ValueError`` naming the file and what
is wrong. ``load_params(path, like=template)`` also checks the structure, shapes and dtypes
against a template and names the first key path that differs.

Writes are atomic (a temporary file next to the target, then ``os.replace``), go through
symlinks to their target, keep the target's permission bits, and clean up temporaries left
by a killed save. Nothing is ever imported or executed when loading: a NamedTuple comes back
as the funcgrad class of that name if one is loaded (``ScaleByAdamState``...), else as a plain
``collections.namedtuple``.

Exported functions live in :mod:`funcgrad.export`; ``export``, ``Exported``,
``deserialize``, ``save_exported`` and ``load_exported`` are re-exported here.
"""

from __future__ import annotations

import collections
import enum
import json
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from funcgrad import _safetensors as st
from funcgrad._atomic import atomic_write
from funcgrad._npz import NpzArchive
from funcgrad._safetensors import MalformedFile
from funcgrad.core import Tracer
from funcgrad.dtypes import short_name

__all__ = ["load_params", "save_params"]  # plus, lazily, funcgrad.export's names below

PARAMS_FORMAT = "funcgrad.params"
VERSION = 2  # 1: npz (read only); 2: safetensors
_NPZ_HEADER = "__funcgrad__"

# ml_dtypes types stored as raw bits (their names are looked up in ml_dtypes, nothing else;
# exported functions name their dtypes the same way)
ML_DTYPES_RAW = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float8_e3m4",
    "float8_e4m3",
    "float8_e8m0fnu",
    "float4_e2m1fn",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "int2",
    "int4",
    "uint2",
    "uint4",
)


# ----------------------------------------------------------------------------------------
# Key paths


def _component(k: Any) -> str:
    return str(k).replace("%", "%25").replace("/", "%2F")


def keystr(path: tuple) -> str:
    """``['params'][0].mu``: a key path as JAX's ``keystr`` writes it."""
    out = []
    for kind, k in path:
        out.append(f".{k}" if kind == "field" else f"[{k!r}]")
    return "".join(out) or "the top level"


# ----------------------------------------------------------------------------------------
# Saving


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _storage(arr: np.ndarray, where: str) -> tuple[str, np.ndarray, str | None]:
    """``(safetensors dtype, array as stored, true dtype name or None)``."""
    code = st.dtype_to_st(arr.dtype)
    if code is not None:
        return code, arr, None
    if arr.dtype == np.complex128 or arr.dtype == np.dtype(">c16"):
        flat = np.ascontiguousarray(arr, dtype=np.complex128)
        return "F64", flat.view(np.float64).reshape(arr.shape + (2,)), "complex128"
    if arr.dtype.type.__module__.startswith("ml_dtypes") and arr.dtype.name in ML_DTYPES_RAW:
        if arr.dtype.itemsize in (1, 2):
            code = "U8" if arr.dtype.itemsize == 1 else "U16"
            bits = np.ascontiguousarray(arr).view(f"u{arr.dtype.itemsize}")
            return code, bits.reshape(arr.shape), arr.dtype.name
    raise TypeError(
        f"save_params: the array at {where} has dtype {arr.dtype}, which a checkpoint cannot "
        "store faithfully (supported: bool, (u)int8..64, float16/32/64, complex64/128, and "
        "ml_dtypes' bfloat16/float8/int4 types); convert it first, e.g. .astype(np.float32)"
    )


class _Encoder:
    def __init__(self) -> None:
        self.tensors: list[tuple[str, str, np.ndarray]] = []
        self.names: set[str] = set()

    def name_for(self, parts: list[str]) -> str:
        base = "/".join(parts) or "value"
        name, i = base, 1
        while name in self.names or name == "__metadata__":
            name, i = f"{base}~{i}", i + 1
        self.names.add(name)
        return name

    def encode(self, tree: Any, path: tuple, parts: list[str]) -> Any:
        where = keystr(path)
        if tree is None:
            return {"t": "none"}
        if isinstance(tree, bool | int | float | str) and not isinstance(tree, np.generic):
            return {"t": "py", "v": tree}
        if isinstance(tree, Tracer):
            raise TypeError(
                f"save_params: the value at {where} is a traced value ({tree.aval.str_short()}); "
                "save concrete arrays, outside jit/grad/vmap"
            )
        if isinstance(tree, np.ndarray | np.generic):
            arr = np.asarray(tree)
            if arr.dtype.hasobject:
                raise TypeError(
                    f"save_params: the array at {where} has dtype object, which needs pickle"
                )
            code, stored, true = _storage(arr, where)
            name = self.name_for(parts)
            self.tensors.append((name, code, stored))
            node = {"t": "array", "name": name, "crc": st.crc32(stored)}
            if isinstance(tree, np.generic):
                node["scalar"] = True
            if true is not None:
                node["dtype"] = true
            return node
        if isinstance(tree, dict):
            keys, children = [], []
            for k, v in tree.items():
                if isinstance(k, str):
                    keys.append(["str", k])
                elif isinstance(k, int) and not isinstance(k, bool):
                    keys.append(["int", k])
                else:
                    raise TypeError(
                        f"save_params: dict keys must be str or int, got {k!r} at {where}"
                    )
                children.append(self.encode(v, path + (("key", k),), parts + [_component(k)]))
            return {"t": "dict", "keys": keys, "c": children}
        if _is_namedtuple(tree):
            cls = type(tree)
            return {
                "t": "namedtuple",
                "name": cls.__name__,
                "module": cls.__module__,
                "fields": list(cls._fields),
                "c": [
                    self.encode(getattr(tree, f), path + (("field", f),), parts + [_component(f)])
                    for f in cls._fields
                ],
            }
        if isinstance(tree, list | tuple):
            kind = "list" if isinstance(tree, list) else "tuple"
            children = [
                self.encode(v, path + (("key", i),), parts + [str(i)]) for i, v in enumerate(tree)
            ]
            return {"t": kind, "c": children}
        if hasattr(tree, "__array__") and not callable(tree):
            return self.encode(np.asarray(tree), path, parts)
        raise TypeError(
            f"save_params: cannot store {type(tree).__name__} at {where}; parameters must be "
            "arrays in dicts, lists, tuples and NamedTuples (or None, bool, int, float, str)"
        )


def _container(tree: Any, fmt: str, extra: dict[str, str] | None) -> tuple[list, dict]:
    """``(tensors, metadata)`` of ``tree``: raises for unsavable trees before any I/O."""
    enc = _Encoder()
    desc = enc.encode(tree, (), [])
    metadata = {
        "format": fmt,
        "version": str(VERSION),
        "tree": json.dumps(desc, separators=(",", ":")),
    }
    metadata.update(extra or {})
    return enc.tensors, metadata


def write_tree(f: BinaryIO, tree: Any, fmt: str, extra: dict[str, str] | None = None) -> None:
    """Write ``tree`` in the safetensors layout with format name ``fmt`` (and ``extra``
    metadata strings): the container of checkpoints and exported functions."""
    tensors, metadata = _container(tree, fmt, extra)
    st.write_file(f, tensors, metadata)


def save_params(path: str | os.PathLike, params: Any) -> None:
    """Write ``params`` (a pytree of arrays) to ``path`` as a safetensors file, atomically.

    No extension is added (``.safetensors`` is the convention). A symlink is written
    through (the link stays, its target is replaced) and an existing file keeps its mode."""
    tensors, metadata = _container(params, PARAMS_FORMAT, None)
    atomic_write(path, lambda f: st.write_file(f, tensors, metadata))


# ----------------------------------------------------------------------------------------
# Loading: the tree description is data, validated node by node


def known_classes(kind: type) -> dict[tuple[str, str], type]:
    """Subclasses of ``kind`` (NamedTuple-likes or Enums) defined in loaded funcgrad modules:
    the only classes a file may name. Nothing is imported."""
    found = {}
    for name, mod in list(sys.modules.items()):
        if not (name == "funcgrad" or name.startswith("funcgrad.")) or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if not isinstance(obj, type) or obj.__module__ != name:
                continue
            if kind is tuple and issubclass(obj, tuple) and hasattr(obj, "_fields"):
                found[(obj.__module__, obj.__name__)] = obj
            elif kind is enum.Enum and issubclass(obj, enum.Enum):
                found[(obj.__module__, obj.__name__)] = obj
    return found


def _namedtuple_class(module: Any, name: Any, fields: Any) -> type:
    if not (
        isinstance(module, str)
        and isinstance(name, str)
        and isinstance(fields, list)
        and all(isinstance(f, str) for f in fields)
    ):
        raise MalformedFile("a NamedTuple node has a bad module, name or field list")
    cls = known_classes(tuple).get((module, name))
    if cls is not None and list(cls._fields) == list(fields):
        return cls
    try:
        return collections.namedtuple(name, fields)
    except (ValueError, TypeError) as e:
        raise MalformedFile(f"bad NamedTuple {name!r:.60}: {e}") from None


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise MalformedFile(what)


_CONTAINERS = ("dict", "list", "tuple", "namedtuple")


def decode_tree(node: Any, leaf: Callable[[dict], Any]) -> Any:
    """Rebuild a tree from its JSON description; ``leaf(node)`` gives an array leaf."""
    _expect(isinstance(node, dict) and isinstance(node.get("t"), str), "a tree node is malformed")
    t = node["t"]
    if t == "none":
        return None
    if t == "py":
        v = node.get("v")
        _expect(isinstance(v, bool | int | float | str), "a scalar leaf holds a non-scalar")
        return v
    if t == "array":
        return leaf(node)
    _expect(t in _CONTAINERS, f"unknown node type {t!r:.30} in the tree description")
    children = node.get("c")
    _expect(isinstance(children, list), f"a {t!r:.20} node has no child list")
    if t == "dict":
        keys = node.get("keys")
        _expect(isinstance(keys, list) and len(keys) == len(children), "a dict node is malformed")
        out = {}
        for key, child in zip(keys, children, strict=True):
            _expect(
                isinstance(key, list)
                and len(key) == 2
                and (
                    (key[0] == "str" and isinstance(key[1], str))
                    or (
                        key[0] == "int" and isinstance(key[1], int) and not isinstance(key[1], bool)
                    )
                ),
                f"a dict key is malformed: {key!r:.60}",
            )
            out[key[1]] = decode_tree(child, leaf)
        return out
    if t == "list":
        return [decode_tree(c, leaf) for c in children]
    if t == "tuple":
        return tuple(decode_tree(c, leaf) for c in children)
    if t == "namedtuple":
        cls = _namedtuple_class(node.get("module"), node.get("name"), node.get("fields"))
        _expect(len(children) == len(cls._fields), "a NamedTuple has the wrong number of fields")
        try:
            return cls(*[decode_tree(c, leaf) for c in children])
        except MalformedFile:
            raise
        except (TypeError, ValueError) as e:
            raise MalformedFile(f"cannot rebuild NamedTuple {cls.__name__}: {e}") from None
    raise MalformedFile(f"unknown node type {t!r:.30} in the tree description")


def _true_dtype(name: str, stored: np.ndarray, tensor: str) -> np.ndarray:
    """Undo :func:`_storage` for a tensor whose tree node records its real dtype."""
    if name == "complex128":
        _expect(
            stored.dtype == np.float64 and stored.ndim >= 1 and stored.shape[-1] == 2,
            f"tensor {tensor!r}: complex128 must be stored as float64 pairs",
        )
        return np.ascontiguousarray(stored).view(np.complex128).reshape(stored.shape[:-1])
    _expect(name in ML_DTYPES_RAW, f"tensor {tensor!r}: unknown dtype {name!r:.40}")
    try:
        import ml_dtypes
    except ImportError:
        raise MalformedFile(
            f"tensor {tensor!r} is {name}, which needs the ml_dtypes package: pip install ml_dtypes"
        ) from None
    cls = getattr(ml_dtypes, name, None)
    _expect(cls is not None, f"tensor {tensor!r} is {name}, which this ml_dtypes lacks")
    dtype = np.dtype(cls)
    _expect(
        stored.dtype.kind == "u" and stored.dtype.itemsize == dtype.itemsize,
        f"tensor {tensor!r}: {name} stored with the wrong width",
    )
    return stored.view(dtype)


def read_tree(f: BinaryIO, size: int, fmt: str) -> tuple[Any, dict[str, str]]:
    """Read a tree written by :func:`write_tree` with format ``fmt``: ``(tree, metadata)``.
    A safetensors file without funcgrad metadata comes back as ``{name: array}``."""
    metadata, tensors, data_start = st.parse_header(f, size)
    by_name = {t.name: t for t in tensors}

    def read(name: str) -> np.ndarray:
        info = by_name[name]
        if st.st_dtype(info.st_dtype) is None:
            raise MalformedFile(
                f"tensor {name!r} is {info.st_dtype}, which needs the ml_dtypes package: "
                "pip install ml_dtypes"
            )
        return st.read_tensor(f, info, data_start)

    found = metadata.get("format")
    if found != fmt:
        if isinstance(found, str) and found.startswith("funcgrad.") or fmt != PARAMS_FORMAT:
            raise MalformedFile(f"it holds {found!r:.40}, expected {fmt!r}")
        return {t.name: read(t.name) for t in tensors}, metadata  # a plain safetensors file
    version = metadata.get("version", "")
    _expect(version.isdigit() and len(version) < 6, f"bad format version {version!r:.20}")
    if int(version) > VERSION:
        raise MalformedFile(
            f"it has format version {version}; this funcgrad reads up to {VERSION}: "
            "upgrade funcgrad"
        )
    try:
        tree = json.loads(metadata.get("tree", ""))
    except (ValueError, RecursionError) as e:
        raise MalformedFile(f"the tree description is not valid JSON ({e})") from None
    used: set[str] = set()

    def leaf(node: dict) -> Any:
        name = node.get("name")
        _expect(isinstance(name, str) and name in by_name, f"unknown tensor {name!r:.80}")
        _expect(name not in used, f"the tree references tensor {name!r} twice")
        used.add(name)
        arr = read(name)
        crc = node.get("crc")
        if crc is not None and st.crc32(arr) != crc:
            raise MalformedFile(f"tensor {name!r} fails its CRC-32 check (corrupted data)")
        if "dtype" in node:
            arr = _true_dtype(str(node["dtype"]), arr, name)
        return arr[()] if node.get("scalar") else arr

    return decode_tree(tree, leaf), metadata


def _load_npz(f: BinaryIO) -> Any:
    """The version-1 format: an uncompressed npz with a JSON ``__funcgrad__`` entry."""
    archive = NpzArchive(f)
    header_name = _NPZ_HEADER + ".npy"
    entries = archive.entries([header_name])
    if header_name not in entries:
        raise MalformedFile(f"it is an npz archive but not a funcgrad file (no {_NPZ_HEADER})")
    raw = archive.read_array(entries[header_name])
    _expect(raw.dtype == np.uint8 and raw.ndim == 1, f"the {_NPZ_HEADER} entry is not bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise MalformedFile(f"the tree description is not valid JSON ({e})") from None
    _expect(isinstance(header, dict), "the header is not a JSON object")
    fmt = header.get("format")
    if fmt != PARAMS_FORMAT:
        raise MalformedFile(f"it holds {fmt!r:.40}, expected {PARAMS_FORMAT!r}")
    version = header.get("version", 0)
    _expect(isinstance(version, int), "bad format version")
    if version > 1:
        raise MalformedFile(f"npz format version {version} is newer than this funcgrad reads")
    refs: list[int] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("t") == "array":
                i = node.get("i")
                _expect(isinstance(i, int) and not isinstance(i, bool), "bad array reference")
                refs.append(i)
            for c in node.get("c", ()) if isinstance(node.get("c"), list) else ():
                collect(c)

    collect(header.get("tree"))
    _expect(len(set(refs)) == len(refs), "the tree references an array twice")
    entries = archive.entries([f"a{i}.npy" for i in refs])

    def leaf(node: dict) -> Any:
        name = f"a{node['i']}.npy"
        _expect(name in entries, f"the tree references the missing array {name!r}")
        arr = archive.read_array(entries[name])
        return arr[()] if node.get("scalar") else arr

    return decode_tree(header.get("tree"), leaf)


def load_file(path: str | os.PathLike, what: str, load: Callable[[BinaryIO, int], Any]) -> Any:
    """Open ``path`` and run ``load(file, size)``; every sign of a malformed file becomes
    one ``ValueError`` naming the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return load(f, size)
    except MalformedFile as e:
        raise ValueError(f"{what}: {name!r} is not a valid file: {e}") from None
    except RecursionError:
        raise ValueError(
            f"{what}: {name!r} is not a valid file: its tree is nested too deeply"
        ) from None
    except (KeyError, IndexError, TypeError, AttributeError, OverflowError, MemoryError) as e:
        raise ValueError(f"{what}: {name!r} is not a valid file: {type(e).__name__}: {e}") from None


def _sniff_and_load(f: BinaryIO, size: int) -> Any:
    head = f.read(4)
    f.seek(0)
    if size == 0:
        raise MalformedFile("it is empty")
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return _load_npz(f)
    if head[:4] == b"\x93NUM":
        raise MalformedFile("it is a single .npy array, not a checkpoint (use np.load)")
    return read_tree(f, size, PARAMS_FORMAT)[0]


def load_params(path: str | os.PathLike, like: Any = None) -> Any:
    """Read parameters written by :func:`save_params` (or an older funcgrad's ``.npz``, or
    any safetensors file as ``{name: array}``). No pickle, no code runs.

    ``like``: a template tree (arrays or anything with ``.shape`` and ``.dtype``, e.g.
    ``fg.ShapeDtypeStruct``); the loaded tree must match its structure, shapes and dtypes,
    else a ``ValueError`` names the first key path that differs."""
    tree = load_file(path, "load_params", _sniff_and_load)
    if like is not None:
        problem = first_difference(like, tree, ())
        if problem is not None:
            where, what = problem
            raise ValueError(
                f"load_params: {os.fspath(path)!r} does not match the template at "
                f"{keystr(where)}: {what}"
            )
    return tree


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{short_name(np.dtype(x.dtype))}[{','.join(map(str, x.shape))}]"
    return type(x).__name__


def first_difference(like: Any, got: Any, path: tuple) -> tuple[tuple, str] | None:
    """Where and how ``got`` differs from the template ``like`` (None if it matches)."""
    if like is None or got is None:
        if (like is None) != (got is None):
            return path, f"the file has {_describe(got)}, the template {_describe(like)}"
        return None
    if isinstance(like, dict):
        if not isinstance(got, dict):
            return path, f"the file has a {type(got).__name__}, the template a dict"
        for k in like:
            if k not in got:
                return path + (("key", k),), "missing from the file"
        for k in got:
            if k not in like:
                return path + (("key", k),), "in the file but not in the template"
        for k in like:
            d = first_difference(like[k], got[k], path + (("key", k),))
            if d:
                return d
        return None
    if _is_namedtuple(like):
        if not _is_namedtuple(got) or got._fields != like._fields:
            return path, f"the file has {type(got).__name__}, the template {type(like).__name__}"
        for f in like._fields:
            d = first_difference(getattr(like, f), getattr(got, f), path + (("field", f),))
            if d:
                return d
        return None
    if isinstance(like, list | tuple):
        if type(got) is not type(like) or _is_namedtuple(got):
            return (
                path,
                f"the file has a {type(got).__name__}, the template a {type(like).__name__}",
            )
        if len(got) != len(like):
            return path, f"the file has {len(got)} items, the template {len(like)}"
        for i, (a, b) in enumerate(zip(like, got, strict=True)):
            d = first_difference(a, b, path + (("key", i),))
            if d:
                return d
        return None
    if hasattr(like, "shape") and hasattr(like, "dtype"):
        if not isinstance(got, np.ndarray | np.generic):
            return path, f"the file has {_describe(got)}, the template an array"
        if tuple(got.shape) != tuple(like.shape) or np.dtype(got.dtype) != np.dtype(like.dtype):
            return path, f"the file has {_describe(got)}, the template {_describe(like)}"
        return None
    if type(got) is not type(like):
        return path, f"the file has {_describe(got)}, the template {_describe(like)}"
    return None


# ----------------------------------------------------------------------------------------
# Exported functions (funcgrad.export), under their old names


def __getattr__(name: str) -> Any:
    if name in ("Exported", "deserialize", "export", "load_exported", "save_exported"):
        from funcgrad import export as _export_mod

        return getattr(_export_mod, name)
    raise AttributeError(f"module 'funcgrad.serialization' has no attribute {name!r}")
