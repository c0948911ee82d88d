"""Saving parameters and exporting functions, without pickle and without running code on load.

Parameters
    ``save_params(path, params)`` writes one ``.npz`` file: every array leaf under its own
    name, written with ``allow_pickle=False`` (object arrays are refused), plus a JSON
    description of the tree: dicts (string or int keys, order kept), lists, tuples, None,
    NamedTuples (optimizer states), and JSON-able scalars (Python bool/int/float/str) kept as
    they are. ``load_params(path)`` reads it back with ``np.load(..., allow_pickle=False)``
    and ``json``: nothing is imported or executed. A NamedTuple comes back as the funcgrad
    class of that name if one is loaded (``ScaleByAdamState``...), else as a plain
    ``collections.namedtuple`` with the same fields. The file is written to a temporary
    file in the same folder and moved into place with ``os.replace``, so a crash never
    leaves a half-written file under ``path`` (no extension is added).

Functions
    ``export(fun)(*example_args)`` traces ``fun`` (jitted or not) for the example arguments'
    shapes and dtypes and returns an :class:`Exported`; ``exported.serialize()`` gives bytes
    (an ``.npz``: the jaxpr as JSON plus its constants, e.g. closed-over parameters) and
    ``deserialize(blob)`` (or ``save_exported``/``load_exported`` for files) rebuilds it
    without pickle: primitives are looked up by name in ``funcgrad.core.primitives`` and
    parameter classes (gather dimension numbers, rounding modes...) only among the funcgrad
    classes already loaded. ``exported.call(*args)`` runs it jitted.
    Calls to ``jit``, ``checkpoint`` and functions with custom derivatives are inlined
    (their primal computation is kept; custom JVP/VJP rules are Python code and are
    dropped, so an exported function differentiates through the primal operations).
    Static arguments: close over them (``functools.partial``) before exporting.
"""

from __future__ import annotations

import collections
import enum
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ShapedArray, Tracer
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, check_jaxpr, eval_jaxpr

__all__ = [
    "Exported",
    "deserialize",
    "export",
    "load_exported",
    "load_params",
    "save_exported",
    "save_params",
]

_PARAMS_FORMAT = "funcgrad.params"
_EXPORT_FORMAT = "funcgrad.exported"
_VERSION = 1
_HEADER = "__funcgrad__"


# ----------------------------------------------------------------------------------------
# Pytrees <-> JSON + a list of arrays


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _encode_tree(tree: Any, arrays: list[np.ndarray], path: str = "") -> Any:
    """A JSON description of ``tree``; array leaves are appended to ``arrays``."""
    where = path or "the top level"
    if tree is None:
        return {"t": "none"}
    if isinstance(tree, bool | int | float | str) and not isinstance(tree, np.generic):
        return {"t": "py", "v": tree}
    if isinstance(tree, Tracer):
        raise TypeError(
            f"save: the value at {where} is a traced value ({tree.aval.str_short()}); save "
            "concrete arrays, outside jit/grad/vmap"
        )
    if isinstance(tree, np.ndarray | np.generic):
        arr = np.asarray(tree)
        if arr.dtype.hasobject:
            raise TypeError(f"save: the array at {where} has dtype object, which needs pickle")
        arrays.append(arr)
        return {"t": "array", "i": len(arrays) - 1, "scalar": isinstance(tree, np.generic)}
    if isinstance(tree, dict):
        keys, children = [], []
        for k, v in tree.items():
            if isinstance(k, str):
                keys.append(["str", k])
            elif isinstance(k, int) and not isinstance(k, bool):
                keys.append(["int", k])
            else:
                raise TypeError(f"save: dict keys must be str or int, got {k!r} at {where}")
            children.append(_encode_tree(v, arrays, f"{path}[{k!r}]"))
        return {"t": "dict", "keys": keys, "c": children}
    if _is_namedtuple(tree):
        cls = type(tree)
        return {
            "t": "namedtuple",
            "name": cls.__name__,
            "module": cls.__module__,
            "fields": list(cls._fields),
            "c": [_encode_tree(getattr(tree, f), arrays, f"{path}.{f}") for f in cls._fields],
        }
    if isinstance(tree, list | tuple):
        kind = "list" if isinstance(tree, list) else "tuple"
        children = [_encode_tree(v, arrays, f"{path}[{i}]") for i, v in enumerate(tree)]
        return {"t": kind, "c": children}
    if hasattr(tree, "__array__") and not callable(tree):
        return _encode_tree(np.asarray(tree), arrays, path)
    raise TypeError(
        f"save: cannot store {type(tree).__name__} at {where}; parameters must be arrays in "
        "dicts, lists, tuples and NamedTuples (or None, bool, int, float, str)"
    )


def _known_classes(kind: type) -> dict[tuple[str, str], type]:
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


def _namedtuple_class(module: str, name: str, fields: list[str]) -> type:
    cls = _known_classes(tuple).get((module, name))
    if cls is not None and list(cls._fields) == list(fields):
        return cls
    return collections.namedtuple(name, fields)  # names are validated identifiers


def _decode_tree(node: Any, arrays: Callable[[int], np.ndarray]) -> Any:
    t = node["t"]
    if t == "none":
        return None
    if t == "py":
        return node["v"]
    if t == "array":
        arr = arrays(node["i"])
        return arr[()] if node.get("scalar") else arr
    if t == "dict":
        out = {}
        for (kind, k), child in zip(node["keys"], node["c"], strict=True):
            out[int(k) if kind == "int" else str(k)] = _decode_tree(child, arrays)
        return out
    if t == "list":
        return [_decode_tree(c, arrays) for c in node["c"]]
    if t == "tuple":
        return tuple(_decode_tree(c, arrays) for c in node["c"])
    if t == "namedtuple":
        cls = _namedtuple_class(node["module"], node["name"], node["fields"])
        return cls(*[_decode_tree(c, arrays) for c in node["c"]])
    raise ValueError(f"load: unknown node type {t!r} in the file's tree description")


# ----------------------------------------------------------------------------------------
# Files


def _write_npz(target: Any, header: dict, arrays: list[np.ndarray]) -> None:
    entries = {_HEADER: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for i, a in enumerate(arrays):
        entries[f"a{i}"] = a
    np.savez(target, allow_pickle=False, **entries)


def _atomic_write(path: Any, write: Callable[[Any], None]) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_npz(source: Any, expected: str) -> tuple[dict, Callable[[int], np.ndarray]]:
    try:
        z = np.load(source, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"load: {source!r} is not a funcgrad file ({e})") from None
    with z:
        if not hasattr(z, "files") or _HEADER not in z.files:
            raise ValueError(f"load: {source!r} is not a funcgrad file (no {_HEADER} entry)")
        header = json.loads(bytes(z[_HEADER]).decode("utf-8"))
        if header.get("format") != expected:
            raise ValueError(
                f"load: {source!r} holds {header.get('format')!r}, expected {expected!r}"
            )
        if header.get("version", 0) > _VERSION:
            raise ValueError(
                f"load: {source!r} has format version {header['version']}; this funcgrad reads "
                f"up to {_VERSION}: upgrade funcgrad"
            )
        arrays = {name: z[name] for name in z.files if name != _HEADER}
    return header, lambda i: arrays[f"a{i}"]


def save_params(path: str | os.PathLike, params: Any) -> None:
    """Write ``params`` (a pytree of arrays) to ``path`` atomically, without pickle."""
    arrays: list[np.ndarray] = []
    tree = _encode_tree(params, arrays)
    header = {"format": _PARAMS_FORMAT, "version": _VERSION, "tree": tree}
    _atomic_write(path, lambda f: _write_npz(f, header, arrays))


def load_params(path: str | os.PathLike) -> Any:
    """Read parameters written by :func:`save_params` (no pickle, no code runs)."""
    header, arrays = _read_npz(os.fspath(path), _PARAMS_FORMAT)
    return _decode_tree(header["tree"], arrays)


# ----------------------------------------------------------------------------------------
# Jaxprs <-> JSON

_CALLEE = {
    "jit": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
}


def _inline_calls(closed: ClosedJaxpr) -> ClosedJaxpr:
    """``closed`` with call-like equations (jit, checkpoint, custom_jvp/vjp calls) replaced
    by their bodies, also inside control-flow sub-jaxprs."""
    constvars = list(closed.jaxpr.constvars)
    consts = list(closed.consts)
    eqns: list[Eqn] = []
    rename: dict[Var, Any] = {}

    def read(a: Any) -> Any:
        return a if type(a) is Literal else rename.get(a, a)

    def emit(jaxpr: Jaxpr, sub_consts: list, inputs: list, outvars: list[Var]) -> None:
        local: dict[Var, Any] = {}
        for v, c in zip(jaxpr.constvars, sub_consts, strict=True):
            nv = Var(v.aval)
            constvars.append(nv)
            consts.append(c)
            local[v] = nv
        for v, a in zip(jaxpr.invars, inputs, strict=True):
            local[v] = a
        sub = lambda a: a if type(a) is Literal else local[a]
        for e in jaxpr.eqns:
            ins = [sub(a) for a in e.inputs]
            outs = [Var(v.aval) for v in e.outvars]
            local.update(zip(e.outvars, outs, strict=True))
            _lower_eqn(e.replace(inputs=ins, outvars=outs))
        for v, o in zip(outvars, jaxpr.outvars, strict=True):
            rename[v] = read(sub(o))

    def _lower_eqn(e: Eqn) -> None:
        key = _CALLEE.get(e.primitive.name)
        ins = [read(a) for a in e.inputs]
        if key is not None and isinstance(e.params.get(key), ClosedJaxpr | Jaxpr):
            callee = e.params[key]
            inner = callee if isinstance(callee, ClosedJaxpr) else ClosedJaxpr(callee, [])
            emit(inner.jaxpr, list(inner.consts), ins, e.outvars)
            return
        params = {k: _inline_param(v) for k, v in e.params.items()}
        eqns.append(Eqn(e.primitive, ins, params, e.outvars))

    for e in closed.jaxpr.eqns:
        _lower_eqn(e)
    outvars = [read(a) for a in closed.jaxpr.outvars]
    jaxpr = Jaxpr(constvars, closed.jaxpr.invars, eqns, outvars)
    return ClosedJaxpr(jaxpr, consts)


def _inline_param(v: Any) -> Any:
    if isinstance(v, ClosedJaxpr):
        return _inline_calls(v)
    if isinstance(v, Jaxpr):
        out = _inline_calls(ClosedJaxpr(v, []))
        if out.consts:
            raise TypeError("export: a sub-jaxpr without constants gained constants by inlining")
        return out.jaxpr
    if isinstance(v, tuple) and not _is_namedtuple(v):
        return tuple(_inline_param(x) for x in v)
    return v


def _encode_value(v: Any, arrays: list[np.ndarray], where: str) -> Any:
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float) and not isinstance(v, np.generic):
        return v
    if isinstance(v, np.dtype):
        return {"dtype": v.name}
    if isinstance(v, type) and issubclass(v, np.generic):
        return {"dtype": np.dtype(v).name}
    if isinstance(v, np.ndarray | np.generic):
        arrays.append(np.asarray(v))
        return {"array": len(arrays) - 1, "scalar": isinstance(v, np.generic)}
    if isinstance(v, ClosedJaxpr):
        return {
            "closed_jaxpr": _encode_jaxpr(v.jaxpr, arrays),
            "consts": [_encode_value(c, arrays, where) for c in v.consts],
        }
    if isinstance(v, Jaxpr):
        return {"jaxpr": _encode_jaxpr(v, arrays)}
    if isinstance(v, enum.Enum):
        cls = type(v)
        return {"enum": [cls.__module__, cls.__name__, v.name]}
    if _is_namedtuple(v):
        cls = type(v)
        return {
            "namedtuple": [cls.__module__, cls.__name__, list(cls._fields)],
            "c": [_encode_value(x, arrays, where) for x in v],
        }
    if isinstance(v, tuple | list):
        return {
            "tuple" if isinstance(v, tuple) else "list": [
                _encode_value(x, arrays, where) for x in v
            ]
        }
    if isinstance(v, dict):
        return {"dict": [[k, _encode_value(x, arrays, where)] for k, x in v.items()]}
    raise TypeError(
        f"export: cannot serialize {type(v).__name__} {v!r} ({where}); only numbers, strings, "
        "dtypes, arrays, tuples, enums, NamedTuples and jaxprs can be exported"
    )


def _decode_value(v: Any, arrays: Callable[[int], np.ndarray]) -> Any:
    if not isinstance(v, dict):
        return v
    if "dtype" in v:
        return np.dtype(v["dtype"])
    if "array" in v:
        a = arrays(v["array"])
        return a[()] if v.get("scalar") else a
    if "closed_jaxpr" in v:
        consts = [_decode_value(c, arrays) for c in v["consts"]]
        return ClosedJaxpr(_decode_jaxpr(v["closed_jaxpr"], arrays), consts)
    if "jaxpr" in v:
        return _decode_jaxpr(v["jaxpr"], arrays)
    if "enum" in v:
        module, name, member = v["enum"]
        cls = _known_classes(enum.Enum).get((module, name))
        if cls is None:
            raise ValueError(f"load: unknown enum {module}.{name} in the exported function")
        return cls[member]
    if "namedtuple" in v:
        module, name, fields = v["namedtuple"]
        cls = _known_classes(tuple).get((module, name))
        if cls is None or list(cls._fields) != list(fields):
            raise ValueError(f"load: unknown parameter class {module}.{name}")
        return cls(*[_decode_value(x, arrays) for x in v["c"]])
    if "tuple" in v:
        return tuple(_decode_value(x, arrays) for x in v["tuple"])
    if "list" in v:
        return [_decode_value(x, arrays) for x in v["list"]]
    if "dict" in v:
        return {k: _decode_value(x, arrays) for k, x in v["dict"]}
    raise ValueError(f"load: unknown parameter encoding {v!r}")


def _aval_json(aval: ShapedArray) -> list:
    return [list(aval.shape), np.dtype(aval.dtype).name]


def _encode_jaxpr(jaxpr: Jaxpr, arrays: list[np.ndarray]) -> dict:
    ids: dict[Var, int] = {}
    avals: list[list] = []

    def var(v: Var) -> int:
        if v not in ids:
            ids[v] = len(avals)
            avals.append(_aval_json(v.aval))
        return ids[v]

    def atom(a: Any) -> Any:
        if type(a) is Literal:
            val = np.asarray(a.val)
            return {"lit": val.item(), "dtype": _aval_json(a.aval)[1]}
        return var(a)

    out: dict[str, Any] = {
        "constvars": [var(v) for v in jaxpr.constvars],
        "invars": [var(v) for v in jaxpr.invars],
    }
    eqns = []
    for e in jaxpr.eqns:
        where = f"parameter of {e.primitive.name}"
        eqns.append(
            {
                "prim": e.primitive.name,
                "in": [atom(a) for a in e.inputs],
                "params": {
                    k: _encode_value(v, arrays, f"{k} {where}") for k, v in e.params.items()
                },
                "out": [var(v) for v in e.outvars],
            }
        )
    out["eqns"] = eqns
    out["outvars"] = [atom(a) for a in jaxpr.outvars]
    out["vars"] = avals
    return out


def _decode_jaxpr(d: dict, arrays: Callable[[int], np.ndarray]) -> Jaxpr:
    vs = [Var(ShapedArray(tuple(shape), np.dtype(dt))) for shape, dt in d["vars"]]

    def atom(a: Any) -> Any:
        if isinstance(a, dict):
            return Literal(np.asarray(a["lit"], np.dtype(a["dtype"]))[()])
        return vs[a]

    eqns = []
    for e in d["eqns"]:
        prim = core.primitives.get(e["prim"])
        if prim is None:
            raise ValueError(
                f"load: the exported function uses the primitive {e['prim']!r}, which this "
                "funcgrad does not have"
            )
        params = {k: _decode_value(v, arrays) for k, v in e["params"].items()}
        eqns.append(Eqn(prim, [atom(a) for a in e["in"]], params, [vs[i] for i in e["out"]]))
    return Jaxpr(
        [vs[i] for i in d["constvars"]],
        [vs[i] for i in d["invars"]],
        eqns,
        [atom(a) for a in d["outvars"]],
    )


# ----------------------------------------------------------------------------------------
# Exported functions


def _flatten(tree: Any) -> tuple[Any, list[Any]]:
    """Our own structure description (dict/list/tuple/None nodes) and the leaves."""
    leaves: list[Any] = []

    def walk(x: Any) -> Any:
        if x is None:
            return {"t": "none"}
        if isinstance(x, dict):
            keys = list(x)
            for k in keys:
                if not isinstance(k, str | int) or isinstance(k, bool):
                    raise TypeError(f"export: dict keys must be str or int, got {k!r}")
            return {
                "t": "dict",
                "keys": [["int" if isinstance(k, int) else "str", k] for k in keys],
                "c": [walk(x[k]) for k in keys],
            }
        if isinstance(x, list | tuple) and not _is_namedtuple(x):
            return {"t": "list" if isinstance(x, list) else "tuple", "c": [walk(v) for v in x]}
        leaves.append(x)
        return {"t": "array", "i": len(leaves) - 1}

    return walk(tree), leaves


class Exported:
    """A traced function, ready to serialize and to call: ``in_avals``/``out_avals`` are the
    flat argument and result types, ``jaxpr`` the (inlined) closed jaxpr."""

    def __init__(self, name: str, jaxpr: ClosedJaxpr, in_tree: Any, out_tree: Any) -> None:
        self.fun_name = name
        self.jaxpr = jaxpr
        self.in_tree = in_tree
        self.out_tree = out_tree
        self._jitted: Any = None

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)

    def __repr__(self) -> str:
        ins = ", ".join(a.str_short() for a in self.in_avals)
        outs = ", ".join(a.str_short() for a in self.out_avals)
        return f"Exported({self.fun_name}: ({ins}) -> ({outs}))"

    def call(self, *args: Any, jit: bool = True) -> Any:
        """Run the exported function on arguments of the exported structure, shapes and
        dtypes: compiled with ``jit`` (default), or evaluated eagerly with ``jit=False``."""
        tree, leaves = _flatten(args)
        if tree != self.in_tree:
            raise ValueError(
                f"Exported({self.fun_name}).call: the arguments have another structure than "
                "the exported example arguments"
            )
        for i, (x, a) in enumerate(zip(leaves, self.in_avals, strict=True)):
            got = core.shaped_aval(np.asarray(x) if not isinstance(x, Tracer) else x)
            if got.shape != a.shape or got.dtype != a.dtype:
                raise TypeError(
                    f"Exported({self.fun_name}).call: argument leaf {i} is {got.str_short()} but "
                    f"the function was exported for {a.str_short()}"
                )
        if not jit:
            outs = eval_jaxpr(self.jaxpr.jaxpr, self.jaxpr.consts, *leaves)
            return _decode_tree(self.out_tree, lambda i: outs[i])
        if self._jitted is None:
            from funcgrad.api import jit

            closed = self.jaxpr

            def run(*flat: Any) -> list[Any]:
                return eval_jaxpr(closed.jaxpr, closed.consts, *flat)

            run.__name__ = self.fun_name
            self._jitted = jit(run)
        outs = self._jitted(*leaves)
        return _decode_tree(self.out_tree, lambda i: outs[i])

    def serialize(self) -> bytes:
        """The function as ``.npz`` bytes (JSON jaxpr + arrays), loadable without pickle."""
        arrays: list[np.ndarray] = []
        header = {
            "format": _EXPORT_FORMAT,
            "version": _VERSION,
            "name": self.fun_name,
            "in_tree": self.in_tree,
            "out_tree": self.out_tree,
            "jaxpr": _encode_value(self.jaxpr, arrays, "the exported function"),
        }
        buf = io.BytesIO()
        _write_npz(buf, header, arrays)
        return buf.getvalue()


def export(fun: Callable) -> Callable[..., Exported]:
    """``export(fun)(*example_args)``: trace ``fun`` for the example arguments (pytrees of
    arrays: dicts, lists, tuples) and return an :class:`Exported` (as ``jax.export``)."""
    from funcgrad.interpreters.partial_eval import trace_to_jaxpr

    name = getattr(fun, "__name__", None) or getattr(fun, "_name", None) or "fun"

    def do_export(*args: Any) -> Exported:
        in_tree, leaves = _flatten(args)
        leaves = [np.asarray(x) if not isinstance(x, Tracer) else x for x in leaves]
        out_trees: list[Any] = []

        def flat_fun(*flat: Any) -> list[Any]:
            rebuilt = _decode_tree(in_tree, lambda i: flat[i])
            out_tree, outs = _flatten(fun(*rebuilt))
            out_trees.append(out_tree)
            return outs

        closed = trace_to_jaxpr(flat_fun, [core.shaped_aval(x) for x in leaves])
        closed = _inline_calls(closed)
        check_jaxpr(closed.jaxpr)
        return Exported(str(name), closed, in_tree, out_trees[0])

    return do_export


def deserialize(blob: bytes) -> Exported:
    """Rebuild an :class:`Exported` from :meth:`Exported.serialize` bytes (no pickle)."""
    header, arrays = _read_npz(io.BytesIO(blob), _EXPORT_FORMAT)
    closed = _decode_value(header["jaxpr"], arrays)
    check_jaxpr(closed.jaxpr)
    return Exported(header["name"], closed, header["in_tree"], header["out_tree"])


def save_exported(path: str | os.PathLike, exported: Exported) -> None:
    """Write ``exported.serialize()`` to ``path`` atomically."""
    blob = exported.serialize()
    _atomic_write(path, lambda f: f.write(blob))


def load_exported(path: str | os.PathLike) -> Exported:
    """Read a function written by :func:`save_exported`."""
    with open(os.fspath(path), "rb") as f:
        return deserialize(f.read())
