"""Jaxprs as JSON plus a list of arrays: the pickle-free body of an exported function.

Export first inlines call-like equations (jit, checkpoint, custom_jvp/vjp calls) everywhere
(``funcgrad.ir.inline_calls(..., recursive=True)``), so only primitives remain (custom
JVP/VJP rules are Python code and are dropped: an exported function differentiates through
its primal operations). Decoding is parsing: primitives are looked up by name in
``funcgrad.core.primitives``, parameter classes (enums, NamedTuples such as gather dimension
numbers) only among funcgrad classes already loaded; anything else is an error. Dimensions
may be ``{"$dim": ...}`` markers (symbolic sizes), replaced by integers before decoding.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ShapedArray
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from funcgrad.serialization import ML_DTYPES_RAW, known_classes

__all__ = [
    "Malformed",
    "decode_dtype",
    "decode_value",
    "encode_jaxpr",
    "encode_value",
]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def encode_value(v: Any, arrays: list[np.ndarray], where: str) -> Any:
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
            "closed_jaxpr": encode_jaxpr(v.jaxpr, arrays),
            "consts": [encode_value(c, arrays, where) for c in v.consts],
        }
    if isinstance(v, Jaxpr):
        return {"jaxpr": encode_jaxpr(v, arrays)}
    if isinstance(v, enum.Enum):
        cls = type(v)
        return {"enum": [cls.__module__, cls.__name__, v.name]}
    if _is_namedtuple(v):
        cls = type(v)
        return {
            "namedtuple": [cls.__module__, cls.__name__, list(cls._fields)],
            "c": [encode_value(x, arrays, where) for x in v],
        }
    if isinstance(v, tuple | list):
        return {
            "tuple" if isinstance(v, tuple) else "list": [encode_value(x, arrays, where) for x in v]
        }
    if isinstance(v, dict):
        return {"dict": [[k, encode_value(x, arrays, where)] for k, x in v.items()]}
    raise TypeError(
        f"export: cannot serialize {type(v).__name__} {v!r} ({where}); only numbers, strings, "
        "dtypes, arrays, tuples, enums, NamedTuples and jaxprs can be exported"
    )


class Malformed(ValueError):
    """A malformed exported function; the caller names the blob."""


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise Malformed(what)


def _index(i: Any, n: int, what: str) -> int:
    _check(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n, f"bad {what} {i!r:.40}")
    return i


def decode_dtype(name: Any) -> np.dtype:
    """A numeric dtype by name (bool, ints, floats, complex, or an ml_dtypes type): a blob
    can never name object, string or structured dtypes."""
    _check(isinstance(name, str) and len(name) < 40, f"bad dtype {name!r:.40}")
    if name in ML_DTYPES_RAW:
        try:
            import ml_dtypes
        except ImportError:
            raise Malformed(f"the function uses {name}, which needs ml_dtypes") from None
        _check(hasattr(ml_dtypes, name), f"this ml_dtypes has no {name}")
        return np.dtype(getattr(ml_dtypes, name))
    try:
        dt = np.dtype(name)
    except TypeError:
        raise Malformed(f"unknown dtype {name!r}") from None
    _check(dt.kind in "biufc" and dt.fields is None and dt.name == name, f"bad dtype {name!r}")
    return dt


def decode_value(v: Any, arrays: Callable[[int], np.ndarray]) -> Any:
    if isinstance(v, list):
        raise Malformed("a parameter is a bare JSON list")
    if not isinstance(v, dict):
        return v
    if "dtype" in v:
        return decode_dtype(v["dtype"])
    if "array" in v:
        a = arrays(v["array"])
        return a[()] if v.get("scalar") else a
    if "closed_jaxpr" in v:
        consts = [decode_value(c, arrays) for c in v["consts"]]
        return ClosedJaxpr(decode_jaxpr(v["closed_jaxpr"], arrays), consts)
    if "jaxpr" in v:
        return decode_jaxpr(v["jaxpr"], arrays)
    if "enum" in v:
        module, name, member = v["enum"]
        cls = known_classes(enum.Enum).get((module, name))
        _check(cls is not None, f"unknown enum {module!r:.60}.{name!r:.60}")
        _check(isinstance(member, str) and member in cls.__members__, f"bad {name} member")
        return cls[member]
    if "namedtuple" in v:
        module, name, fields = v["namedtuple"]
        cls = known_classes(tuple).get((module, name))
        _check(
            cls is not None and list(cls._fields) == list(fields),
            f"unknown parameter class {module!r:.60}.{name!r:.60}",
        )
        _check(isinstance(v["c"], list) and len(v["c"]) == len(fields), f"bad {name}")
        return cls(*[decode_value(x, arrays) for x in v["c"]])
    if "tuple" in v:
        return tuple(decode_value(x, arrays) for x in v["tuple"])
    if "list" in v:
        return [decode_value(x, arrays) for x in v["list"]]
    if "dict" in v:
        return {k: decode_value(x, arrays) for k, x in v["dict"]}
    raise Malformed(f"unknown parameter encoding {v!r:.80}")


def _aval_json(aval: ShapedArray) -> list:
    return [list(aval.shape), np.dtype(aval.dtype).name]


def encode_jaxpr(jaxpr: Jaxpr, arrays: list[np.ndarray]) -> dict:
    ids: dict[Var, int] = {}
    avals: list[list] = []

    def var(v: Var) -> int:
        if v not in ids:
            ids[v] = len(avals)
            avals.append(_aval_json(v.aval))
        return ids[v]

    def atom(a: Any) -> Any:
        if type(a) is Literal:
            val = np.asarray(a.val).item()
            if isinstance(val, complex):
                val = [val.real, val.imag]
            return {"lit": val, "dtype": _aval_json(a.aval)[1]}
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
                "params": {k: encode_value(v, arrays, f"{k} {where}") for k, v in e.params.items()},
                "out": [var(v) for v in e.outvars],
            }
        )
    out["eqns"] = eqns
    out["outvars"] = [atom(a) for a in jaxpr.outvars]
    out["vars"] = avals
    return out


class _Mode(threading.local):
    symbolic = False


_mode = _Mode()


@contextlib.contextmanager
def symbolic_decoding() -> Any:
    """Decode jaxprs whose sizes are symbolic (Dim objects in shapes, parameters and
    literals): for converters such as ONNX, never for running or type-checking."""
    old, _mode.symbolic = _mode.symbolic, True
    try:
        yield
    finally:
        _mode.symbolic = old


class SymbolicLiteral:
    """A scalar constant that depends on symbolic sizes (``value``: a Dim, or a
    SymbolicFloat), only in jaxprs decoded under :func:`symbolic_decoding`."""

    __slots__ = ("value", "aval")

    def __init__(self, value: Any, dtype: np.dtype) -> None:
        self.value = value
        self.aval = ShapedArray((), dtype)


def _decode_shape(shape: Any) -> tuple[int, ...]:
    _check(isinstance(shape, list) and len(shape) <= 64, f"bad shape {shape!r:.60}")
    for d in shape:
        if _mode.symbolic and hasattr(d, "evaluate"):
            continue
        _check(isinstance(d, int) and not isinstance(d, bool) and d >= 0, f"bad dimension {d!r}")
    return tuple(shape)


def _decode_literal(a: dict) -> Any:
    dtype = decode_dtype(a.get("dtype"))
    val = a.get("lit")
    if _mode.symbolic and hasattr(val, "evaluate"):
        return SymbolicLiteral(val, dtype)
    if isinstance(val, list) and len(val) == 2 and dtype.kind == "c":
        val = complex(*val)
    _check(isinstance(val, bool | int | float | complex), f"a literal is not a number: {val!r:.40}")
    with np.errstate(all="ignore"):
        return Literal(np.asarray(val, dtype)[()])


def decode_jaxpr(d: dict, arrays: Callable[[int], np.ndarray]) -> Jaxpr:
    _check(isinstance(d, dict) and isinstance(d.get("vars"), list), "a jaxpr is malformed")
    vs = []
    for entry in d["vars"]:
        _check(isinstance(entry, list) and len(entry) == 2, "a variable type is malformed")
        vs.append(Var(ShapedArray(_decode_shape(entry[0]), decode_dtype(entry[1]))))

    def var(i: Any) -> Var:
        return vs[_index(i, len(vs), "variable")]

    def atom(a: Any) -> Any:
        if isinstance(a, dict):
            return _decode_literal(a)
        return var(a)

    eqns = []
    for e in d["eqns"]:
        _check(isinstance(e, dict) and isinstance(e.get("params"), dict), "bad equation")
        name = e["prim"]
        prim = core.primitives.get(name) if isinstance(name, str) else None
        if prim is None:
            raise Malformed(
                f"the exported function uses the primitive {name!r:.60}, which this "
                "funcgrad does not have (exported by a newer version?)"
            )
        params = {k: decode_value(v, arrays) for k, v in e["params"].items()}
        eqns.append(Eqn(prim, [atom(a) for a in e["in"]], params, [var(i) for i in e["out"]]))
    return Jaxpr(
        [var(i) for i in d["constvars"]],
        [var(i) for i in d["invars"]],
        eqns,
        [atom(a) for a in d["outvars"]],
    )
