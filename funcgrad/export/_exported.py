"""``export(fun)(*args) -> Exported``: a function staged to a serializable jaxpr.

Symbolic dimensions without symbolic tracing: a function whose arguments have symbolic
sizes (``ShapeDtypeStruct(symbolic_shape("b, 784"), np.float32)``) is traced once at base
sizes, once more per symbol with only that symbol changed, and once with all changed. The
traces must be structurally identical; every integer that differs between them (shapes,
parameters, integer literals) is solved as an affine expression of the symbols, float
literals that follow a size (a mean's divisor) likewise, and the last trace verifies the
expressions. A function whose structure depends on the sizes is refused. At call time the
expressions are instantiated with the argument sizes, the concrete jaxpr is type-checked,
and it runs (under ``jit``, compiled once per size).
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core, lax
from funcgrad._atomic import atomic_write
from funcgrad._npz import NpzArchive
from funcgrad._safetensors import MalformedFile
from funcgrad.abstract import ShapeDtypeStruct
from funcgrad.api import jit as fg_jit
from funcgrad.core import ShapedArray, Tracer
from funcgrad.dtypes import short_name
from funcgrad.export._codec import Malformed, decode_dtype, decode_value, encode_value
from funcgrad.export._dims import Dim
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from funcgrad.ir import ClosedJaxpr, check_jaxpr, eval_jaxpr, inline_calls
from funcgrad.serialization import decode_tree, load_file, read_tree, write_tree

__all__ = ["Exported", "deserialize", "export", "load_exported", "save_exported"]

FORMAT = "funcgrad.exported"
VERSION = 2
_MAX_SIZES = 32  # concrete instantiations (and compiled kernels) kept per Exported

# Base and variant sizes for the generalizing traces: distinct primes, none of them 1 (a
# size-1 axis broadcasts) and none small enough to hit special cases.
_BASE = [17, 19, 23, 29, 31, 37, 41, 43]
_VARIANT = [47, 53, 59, 61, 67, 71, 73, 79]
_VERIFY = [83, 89, 97, 101, 103, 107, 109, 113]


class ExportError(ValueError):
    """A function that cannot be exported as asked (size-dependent structure...)."""


# ----------------------------------------------------------------------------------------
# Argument trees (a JSON-able description; leaves are numbered)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(tree: Any, what: str = "export") -> tuple[Any, list[Any]]:
    """Our own structure description (dict/list/tuple/None nodes) and the leaves."""
    leaves: list[Any] = []

    def walk(x: Any) -> Any:
        if x is None:
            return {"t": "none"}
        if isinstance(x, dict):
            keys = list(x)
            for k in keys:
                if not isinstance(k, str | int) or isinstance(k, bool):
                    raise TypeError(f"{what}: dict keys must be str or int, got {k!r}")
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


def unflatten(desc: Any, leaves: Sequence[Any]) -> Any:

    def leaf(node: dict) -> Any:
        i = node.get("i")
        if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(leaves)):
            raise Malformed(f"a tree leaf has the bad index {i!r:.20}")
        return leaves[i]

    return decode_tree(desc, leaf)


def _leaf_spec(x: Any) -> tuple[tuple, np.dtype]:
    """Shape (ints or Dims) and dtype of an example argument leaf."""
    if isinstance(x, ShapeDtypeStruct):
        return x.shape, x.dtype
    if isinstance(x, Tracer):
        return x.aval.shape, x.aval.dtype
    a = np.asarray(x)
    if a.dtype.hasobject:
        raise TypeError(f"export: an argument leaf is not an array ({type(x).__name__})")
    return a.shape, a.dtype


# ----------------------------------------------------------------------------------------
# Generalizing several traces into one symbolic jaxpr

# JSON keys under which numbers are structure (variable ids, flags) or may follow the sizes
_STRICT = {"constvars", "invars", "out", "prim", "dtype", "enum", "array", "scalar"}
_STRICT |= {"namedtuple", "eqns", "in", "outvars", "closed_jaxpr", "jaxpr"}
_SIZES = {"vars", "lit", "params", "consts"}


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class _Generalizer:
    def __init__(self, symbols: list[str], envs: list[dict[str, int]]) -> None:
        self.symbols = symbols
        self.envs = envs  # base, one variant per symbol, verification

    def merge(self, vals: list[Any], numok: bool, where: str) -> Any:
        first = vals[0]
        if all(_num(v) for v in vals):
            if all(v == first and type(v) is type(first) for v in vals):
                return first
            if not numok:
                raise self._structure(where)
            return self._solve(vals, where)
        if isinstance(first, dict):
            if not all(isinstance(v, dict) and v.keys() == first.keys() for v in vals):
                raise self._structure(where)
            out = {}
            if isinstance(first.get("prim"), str):
                where = f"a {first['prim']} equation"
            for k in first:
                ok = False if k in _STRICT else True if k in _SIZES else numok
                out[k] = self.merge([v[k] for v in vals], ok, f"{where}.{k}")
            return out
        if isinstance(first, list):
            if not all(isinstance(v, list) and len(v) == len(first) for v in vals):
                raise self._structure(where)
            return [self.merge([v[i] for v in vals], numok, where) for i in range(len(first))]
        if not all(type(v) is type(first) and v == first for v in vals):
            raise self._structure(where)
        return first

    def _structure(self, where: str) -> ExportError:
        names = ", ".join(self.symbols)
        return ExportError(
            f"export: the function's structure depends on the value of the symbolic "
            f"dimension(s) {names} (the traces at different sizes differ at {where}); "
            "Python control flow or NumPy computations on a symbolic size cannot be exported "
            "symbolically: export with concrete shapes, or compute from the arrays "
            "(fnp.zeros_like(x), x.shape only in shape arguments)"
        )

    def _solve(self, vals: list[Any], where: str) -> Any:
        base = self.envs[0]
        coefs = {}
        for i, s in enumerate(self.symbols):
            coefs[s] = (vals[i + 1] - vals[0]) / (self.envs[i + 1][s] - base[s])
        const = vals[0] - sum(c * base[s] for s, c in coefs.items())
        verify = self.envs[-1]

        def at(env: dict[str, int]) -> float:
            return const + sum(c * env[s] for s, c in coefs.items())

        if all(isinstance(v, int) for v in vals):
            if all(float(c).is_integer() for c in coefs.values()) and float(const).is_integer():
                dim = Dim({s: int(c) for s, c in coefs.items()}, int(const))
                if dim.evaluate(verify) == vals[-1]:
                    return dim.to_json()
            raise ExportError(
                f"export: a size at {where} ({', '.join(map(str, vals))} at the trial sizes) is "
                "not an affine function of the symbolic dimensions (such as b*b or b//2); "
                "only sums of integer multiples of the symbols are supported"
            )
        # floats: affine (a mean's divisor) or the reciprocal of an affine expression
        if math.isclose(at(verify), vals[-1], rel_tol=1e-6, abs_tol=1e-12):
            return {"$f": [[s, c] for s, c in coefs.items()], "c": const, "inv": False}
        if all(v != 0 for v in vals):
            inv = [1.0 / v for v in vals]
            rc = {}
            for i, s in enumerate(self.symbols):
                rc[s] = (inv[i + 1] - inv[0]) / (self.envs[i + 1][s] - base[s])
            rconst = inv[0] - sum(c * base[s] for s, c in rc.items())
            pred = rconst + sum(c * verify[s] for s, c in rc.items())
            if pred and math.isclose(1.0 / pred, vals[-1], rel_tol=1e-6):
                return {"$f": [[s, c] for s, c in rc.items()], "c": rconst, "inv": True}
        raise ExportError(
            f"export: a constant at {where} ({', '.join(map(str, vals))} at the trial sizes) "
            "depends on the symbolic dimensions in a way that cannot be exported"
        )


def instantiate(obj: Any, env: dict[str, int]) -> Any:
    """The JSON with its ``$dim``/``$f`` markers replaced by numbers for the sizes ``env``."""
    if isinstance(obj, dict):
        if "$dim" in obj:
            return Dim.from_json(obj).evaluate(env)
        if "$f" in obj:
            terms, const = obj["$f"], obj.get("c")
            if not (isinstance(terms, list) and _num(const)):
                raise Malformed("a size-dependent constant is malformed")
            coefs = {}
            for t in terms:
                if not (isinstance(t, list) and len(t) == 2 and t[0] in env and _num(t[1])):
                    raise Malformed("a size-dependent constant is malformed")
                coefs[t[0]] = float(t[1])
            sym = SymbolicFloat(coefs, float(const), bool(obj.get("inv")))
            return sym if any(isinstance(v, Dim) for v in env.values()) else sym.evaluate(env)
        return {k: instantiate(v, env) for k, v in obj.items()}
    if isinstance(obj, list):
        return [instantiate(v, env) for v in obj]
    return obj


class SymbolicFloat:
    """``sum(coef * symbol) + const`` in floats, or its reciprocal (a mean's divisor)."""

    __slots__ = ("coefs", "const", "inv")

    def __init__(self, coefs: dict[str, float], const: float, inv: bool) -> None:
        self.coefs, self.const, self.inv = coefs, const, inv

    def evaluate(self, env: dict[str, int]) -> float:
        total = self.const + sum(c * env[s] for s, c in self.coefs.items())
        return 1.0 / total if self.inv else total


def _dim_json(d: Any) -> Any:
    return d.to_json() if isinstance(d, Dim) else d


def _dim_from_json(d: Any) -> int | Dim:
    if isinstance(d, dict):
        return Dim.from_json(d)
    if not (isinstance(d, int) and not isinstance(d, bool) and d >= 0):
        raise Malformed(f"bad dimension {d!r:.40}")
    return d


# ----------------------------------------------------------------------------------------
# Exported


def _aval_str(shape: Sequence[Any], dtype: np.dtype) -> str:

    return f"{short_name(dtype)}[{','.join(str(d) for d in shape)}]"


class Exported:
    """A function staged for export: ``in_avals``/``out_avals`` (flat argument and result
    types, possibly with symbolic dimensions), ``in_tree``/``out_tree``, ``call``,
    ``serialize``. As ``jax.export.Exported``."""

    def __init__(
        self,
        fun_name: str,
        jaxpr_json: Any,
        arrays: list[np.ndarray],
        in_tree: Any,
        out_tree: Any,
        in_shapes: list[tuple[tuple, np.dtype]],
        out_shapes: list[tuple[tuple, np.dtype]],
    ) -> None:
        self.fun_name = fun_name
        self._json = jaxpr_json
        self._arrays = arrays
        self.in_tree = in_tree
        self.out_tree = out_tree
        self._in = in_shapes
        self._out = out_shapes
        syms: set[str] = set()
        for shape, _ in in_shapes + out_shapes:
            for d in shape:
                if isinstance(d, Dim):
                    syms |= d.symbols
        self.symbols = sorted(syms)
        self._concrete: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [ShapedArray(s, d) for s, d in self._in]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [ShapedArray(s, d) for s, d in self._out]

    @property
    def in_shapes(self) -> list[ShapeDtypeStruct]:
        return [ShapeDtypeStruct(s, d) for s, d in self._in]

    @property
    def out_shapes(self) -> list[ShapeDtypeStruct]:
        return [ShapeDtypeStruct(s, d) for s, d in self._out]

    @property
    def jaxpr(self) -> ClosedJaxpr:
        """The closed jaxpr (for an export with symbolic sizes: use :meth:`jaxpr_for`)."""
        if self.symbols:
            raise ValueError(
                f"Exported({self.fun_name}) has symbolic dimensions {self.symbols}: use "
                "jaxpr_for(b=...) to see it at concrete sizes"
            )
        return self._instantiated({})[0]

    def jaxpr_for(self, **sizes: int) -> ClosedJaxpr:
        """The type-checked jaxpr at the given values of the symbolic dimensions."""
        return self._instantiated(self._check_env(sizes))[0]

    def __repr__(self) -> str:
        ins = ", ".join(_aval_str(s, d) for s, d in self._in)
        outs = ", ".join(_aval_str(s, d) for s, d in self._out)
        return f"Exported({self.fun_name}: ({ins}) -> ({outs}))"

    # -- instantiation at concrete sizes

    def _check_env(self, env: dict[str, int]) -> dict[str, int]:
        if set(env) != set(self.symbols):
            raise ValueError(
                f"Exported({self.fun_name}): expected sizes for {self.symbols}, got {sorted(env)}"
            )
        for s, v in env.items():
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(
                    f"Exported({self.fun_name}): the symbolic dimension {s} must be a positive "
                    f"integer, got {v!r}"
                )
        return {s: int(v) for s, v in env.items()}

    def _instantiated(self, env: dict[str, int]) -> tuple[ClosedJaxpr, Any]:
        """``(closed jaxpr, jitted runner or None)`` for the sizes ``env``, type-checked."""
        key = tuple(sorted(env.items()))
        with self._lock:
            hit = self._concrete.get(key)
            if hit is not None:
                self._concrete.move_to_end(key)
                return hit
        closed = _decode_checked(instantiate(self._json, env), self._arrays, self.fun_name)
        entry = [closed, None]
        with self._lock:
            entry = self._concrete.setdefault(key, entry)
            while len(self._concrete) > _MAX_SIZES:
                self._concrete.popitem(last=False)
        return entry

    def _env_from_args(self, shapes: list[tuple[int, ...]]) -> dict[str, int]:
        env: dict[str, int] = {}
        for (spec, _), shape in zip(self._in, shapes, strict=True):
            for d, n in zip(spec, shape, strict=False):
                if isinstance(d, Dim) and len(d.terms) == 1:
                    ((s, c),) = d.terms.items()
                    if (n - d.const) % c == 0 and s not in env:
                        env[s] = (n - d.const) // c
        missing = set(self.symbols) - set(env)
        if missing:
            raise ValueError(
                f"Exported({self.fun_name}).call: cannot infer the symbolic dimension(s) "
                f"{sorted(missing)} from the argument shapes"
            )
        return env

    def _check_args(self, args: tuple) -> tuple[list[Any], dict[str, int]]:
        tree, leaves = flatten(args, f"Exported({self.fun_name}).call")
        if tree != self.in_tree:
            raise ValueError(
                f"Exported({self.fun_name}).call: the arguments have another structure than "
                "the exported example arguments"
            )
        shapes = []
        for i, x in enumerate(leaves):
            if not isinstance(x, Tracer):
                x = leaves[i] = np.asarray(x)
            shapes.append(tuple(x.aval.shape if isinstance(x, Tracer) else x.shape))
        env = self._env_from_args(shapes) if self.symbols else {}
        want = self.in_shapes
        for i, (x, shape, w) in enumerate(zip(leaves, shapes, want, strict=True)):
            dtype = x.aval.dtype if isinstance(x, Tracer) else x.dtype
            ok = len(shape) == len(w.shape) and all(
                (d.evaluate(env) if isinstance(d, Dim) else d) == n
                for d, n in zip(w.shape, shape, strict=True)
            )
            if not ok or np.dtype(dtype) != w.dtype:
                got = _aval_str(shape, np.dtype(dtype))
                sizes = f" (with {', '.join(f'{k}={v}' for k, v in env.items())})" if env else ""
                raise TypeError(
                    f"Exported({self.fun_name}).call: argument leaf {i} is {got} but the function "
                    f"was exported for {_aval_str(w.shape, w.dtype)}{sizes}"
                )
        if env:
            env = self._check_env(env)
        return leaves, env

    def call(self, *args: Any, jit: bool = True) -> Any:
        """Run the exported function on arguments of the exported structure and types
        (any value of each symbolic dimension): compiled with ``jit`` (default, once per
        size), or evaluated primitive by primitive with ``jit=False``."""
        leaves, env = self._check_args(args)
        entry = self._instantiated(env)
        closed = entry[0]
        if not jit:
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *leaves)
        else:
            if entry[1] is None:

                def run(*flat: Any) -> list[Any]:
                    return eval_jaxpr(closed.jaxpr, closed.consts, *flat)

                run.__name__ = self.fun_name
                entry[1] = fg_jit(run)
            outs = entry[1](*leaves)
        return unflatten(self.out_tree, outs)

    __call__ = call

    def rebuild_outputs(self, leaves: Sequence[Any]) -> Any:
        """The output tree with ``leaves`` in place of the results."""
        return unflatten(self.out_tree, leaves)

    # -- bytes

    def serialize(self) -> bytes:
        """Versioned, pickle-free bytes: a safetensors container whose metadata holds the
        jaxpr as JSON and whose tensors are its constants."""

        desc = {
            "name": self.fun_name,
            "in_tree": self.in_tree,
            "out_tree": self.out_tree,
            "in_avals": [[[_dim_json(d) for d in s], dt.name] for s, dt in self._in],
            "out_avals": [[[_dim_json(d) for d in s], dt.name] for s, dt in self._out],
            "jaxpr": self._json,
        }
        buf = io.BytesIO()
        extra = {
            "exported": json.dumps(desc, separators=(",", ":")),
            "export_version": str(VERSION),
        }
        write_tree(buf, list(self._arrays), FORMAT, extra)
        return buf.getvalue()


def _decode_checked(jaxpr_json: Any, arrays: list[np.ndarray], name: str) -> ClosedJaxpr:
    """Decode a concrete jaxpr and type-check it; a bad one is a ValueError."""

    def array(i: Any) -> np.ndarray:
        if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(arrays)):
            raise Malformed(f"a constant reference {i!r:.20} is out of range")
        return arrays[i]

    try:
        closed = decode_value(jaxpr_json, array)
        if not isinstance(closed, ClosedJaxpr):
            raise Malformed("the function body is not a closed jaxpr")
        check_jaxpr(closed.jaxpr)
        for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
            got = core.shaped_aval(np.asarray(c))
            if got.shape != v.aval.shape or got.dtype != v.aval.dtype:
                raise Malformed(f"a constant is {got.str_short()}, declared {v.aval.str_short()}")
    except Malformed as e:
        raise ValueError(f"Exported({name}): malformed exported function: {e}") from None
    except RecursionError:
        raise ValueError(
            f"Exported({name}): malformed exported function: nested too deeply"
        ) from None
    except Exception as e:  # noqa: BLE001 - an abstract-eval rule refusing crafted params
        raise ValueError(
            f"Exported({name}): the exported function does not type-check ({type(e).__name__}: {e})"
        ) from None
    return closed


# ----------------------------------------------------------------------------------------
# export / deserialize


def _trace(fun: Callable, in_tree: Any, avals: list[ShapedArray]) -> tuple[Any, list, Any, list]:
    """``(jaxpr JSON, constants, out_tree, out avals)`` of one trace."""

    out_trees: list[Any] = []

    def flat_fun(*flat: Any) -> list[Any]:
        rebuilt = unflatten(in_tree, flat)
        out_tree, outs = flatten(fun(*rebuilt), "export (the function's result)")
        out_trees.append(out_tree)
        return outs

    closed = ClosedJaxpr(*inline_calls(trace_to_jaxpr(flat_fun, avals), recursive=True))
    check_jaxpr(closed.jaxpr)
    arrays: list[np.ndarray] = []
    js = encode_value(closed, arrays, "the exported function")
    return js, arrays, out_trees[0], [(a.shape, np.dtype(a.dtype)) for a in closed.out_avals]


def _const_pattern(a: np.ndarray) -> tuple | None:
    """``("fill", value)`` or ``("iota", axis)`` if ``a`` is a constant that funcgrad can
    recompute from its shape (eager NumPy ``zeros``/``arange`` built from a symbolic size)."""
    if a.size == 0 or a.dtype.kind not in "biuf":
        return None
    flat = a.reshape(-1)
    if np.all(flat == flat[0]):
        return ("fill", flat[0].item())
    for axis in range(a.ndim):
        shape = [1] * a.ndim
        shape[axis] = a.shape[axis]
        ramp = np.arange(a.shape[axis]).reshape(shape)
        if np.array_equal(a, np.broadcast_to(ramp, a.shape)):
            return ("iota", axis)
    return None


def _regenerate_constants(traces: list) -> set[int]:
    """Constants that differ between the trial traces only because they were built from a
    symbolic size (all-equal fills, ``arange`` ramps): replace each by the equation that
    computes it (``broadcast_in_dim`` of a literal, ``iota``) in every trace, so the merge
    can make its shape symbolic. Returns the array indices no longer referenced."""

    done: set[int] = set()
    top = [t[0].get("closed_jaxpr") for t in traces]
    consts = [t[0].get("consts") for t in traces]
    n = len(consts[0])
    for j in reversed(range(n)):
        refs = [c[j].get("array") if isinstance(c[j], dict) else None for c in consts]
        if any(r is None for r in refs) or len(set(refs)) != 1:
            continue
        idx = refs[0]
        arrays = [t[1][idx] for t in traces]
        if all(a.shape == arrays[0].shape and np.array_equal(a, arrays[0]) for a in arrays):
            continue
        patterns = [_const_pattern(a) for a in arrays]
        if patterns[0] is None or any(p != patterns[0] for p in patterns):
            continue
        kind, arg = patterns[0]
        made = []
        for a in arrays:
            dtype, shape = a.dtype, a.shape
            if kind == "iota":
                fn = lambda: [lax.broadcasted_iota(dtype, shape, arg)]
            else:
                fn = lambda: [lax.full(shape, np.asarray(arg, dtype), dtype)]
            made.append(encode_value(trace_to_jaxpr(fn, []), [], "a regenerated constant"))
        if any(len(m["closed_jaxpr"]["eqns"]) != 1 for m in made):
            continue
        for t, jx, cs, m in zip(traces, top, consts, made, strict=True):
            jx["eqns"].insert(0, dict(m["closed_jaxpr"]["eqns"][0], out=[jx["constvars"][j]]))
            del jx["constvars"][j]
            del cs[j]
            t[1][idx] = np.zeros(0, t[1][idx].dtype)  # unreferenced now
        done.add(idx)
    return done


def export(fun: Callable) -> Callable[..., Exported]:
    """``export(fun)(*args)``: trace ``fun`` for the arguments (pytrees of arrays or
    ``ShapeDtypeStruct``, whose shapes may be symbolic) and return an :class:`Exported`,
    as ``jax.export.export``. Static arguments: close over them first."""
    name = str(getattr(fun, "__name__", None) or getattr(fun, "_name", None) or "fun")

    def do_export(*args: Any) -> Exported:
        in_tree, leaves = flatten(args)
        specs = [_leaf_spec(x) for x in leaves]
        symbols = sorted(
            {s for shape, _ in specs for d in shape if isinstance(d, Dim) for s in d.symbols}
        )
        if not symbols:
            avals = [ShapedArray(s, d) for s, d in specs]
            js, arrays, out_tree, outs = _trace(fun, in_tree, avals)
            return Exported(name, js, arrays, in_tree, out_tree, specs, outs)
        k = len(symbols)
        if k > len(_BASE):
            raise ExportError(f"export: at most {len(_BASE)} symbolic dimensions, got {k}")
        base = {s: _BASE[i] for i, s in enumerate(symbols)}
        envs = [base]
        for i, s in enumerate(symbols):
            envs.append({**base, s: _VARIANT[i]})
        envs.append({s: _VERIFY[i] for i, s in enumerate(symbols)})
        traces = []
        for env in envs:
            avals = []
            for shape, dtype in specs:
                dims = [d.evaluate(env) if isinstance(d, Dim) else d for d in shape]
                if any(n < 1 for n in dims if not isinstance(n, bool)) and any(
                    isinstance(d, Dim) for d in shape
                ):
                    raise ExportError(f"export: the shape {shape} is empty at trial sizes {env}")
                avals.append(ShapedArray(tuple(dims), dtype))
            try:
                traces.append(_trace(fun, in_tree, avals))
            except Exception as e:
                sizes = ", ".join(f"{k}={v}" for k, v in env.items())
                raise ExportError(
                    f"export: tracing at the trial sizes {sizes} for the symbolic dimensions "
                    f"failed ({type(e).__name__}: {e}); a function that only works for some "
                    "sizes cannot be exported symbolically: export it with concrete shapes"
                ) from e
        gen = _Generalizer(symbols, envs)
        if any(t[2] != traces[0][2] for t in traces):
            raise gen._structure("the output tree")
        regenerated = _regenerate_constants(traces)
        js = gen.merge([t[0] for t in traces], False, "jaxpr")
        for i, a in enumerate(traces[0][1]):
            if i in regenerated:
                continue
            for t in traces[1:]:
                b = t[1][i] if len(t[1]) == len(traces[0][1]) else None
                if (
                    b is None
                    or a.shape != b.shape
                    or a.dtype != b.dtype
                    or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
                ):
                    raise ExportError(
                        f"export: the constant {i} of the function ({a.dtype}{list(a.shape)} at "
                        "the first trial size) changes with the symbolic dimensions: it was "
                        "computed from a symbolic size outside funcgrad (e.g. with NumPy); "
                        "build it with funcgrad.numpy from the arguments instead"
                    )
        out_json = gen.merge(
            [[list(s) for s, _ in t[3]] for t in traces], True, "the output shapes"
        )
        outs = [
            (tuple(_dim_from_json(d) for d in shape), dtype)
            for shape, (_, dtype) in zip(out_json, traces[0][3], strict=True)
        ]
        exp = Exported(name, js, traces[0][1], in_tree, traces[0][2], specs, outs)
        exp._instantiated(envs[-1])  # the generalized jaxpr type-checks at other sizes
        return exp

    return do_export


def _parse_avals(entries: Any) -> list[tuple[tuple, np.dtype]]:
    if not isinstance(entries, list):
        raise Malformed("the argument types are malformed")
    out = []
    for e in entries:
        if not (isinstance(e, list) and len(e) == 2 and isinstance(e[0], list)):
            raise Malformed("an argument type is malformed")
        out.append((tuple(_dim_from_json(d) for d in e[0]), decode_dtype(e[1])))
    return out


def _from_container(f: Any, size: int) -> Exported:

    arrays, metadata = read_tree(f, size, FORMAT)
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise Malformed("the constants are not a list of arrays")
    version = metadata.get("export_version", "")
    if not version.isdigit() or len(version) > 5:
        raise Malformed(f"bad export format version {version!r:.20}")
    if int(version) > VERSION:
        raise Malformed(
            f"it has export format version {version}; this funcgrad reads up to {VERSION}: "
            "upgrade funcgrad"
        )
    try:
        desc = json.loads(metadata.get("exported", ""))
    except (ValueError, RecursionError) as e:
        raise Malformed(f"the function description is not valid JSON ({e})") from None
    if not isinstance(desc, dict) or not isinstance(desc.get("name"), str):
        raise Malformed("the function description is malformed")
    exp = Exported(
        desc["name"],
        desc.get("jaxpr"),
        arrays,
        desc.get("in_tree"),
        desc.get("out_tree"),
        _parse_avals(desc.get("in_avals")),
        _parse_avals(desc.get("out_avals")),
    )
    return _validated(exp)


def _validated(exp: Exported) -> Exported:
    """Type-check the blob's jaxpr once (at a trial size if symbolic) and its declared types."""
    env = {s: _VERIFY[i % len(_VERIFY)] for i, s in enumerate(exp.symbols)}
    closed = exp._instantiated(env)[0]
    for what, declared, actual in (
        ("argument", exp._in, closed.in_avals),
        ("result", exp._out, closed.out_avals),
    ):
        if len(declared) != len(actual):
            raise Malformed(f"the {what} count does not match the jaxpr")
        for (shape, dtype), a in zip(declared, actual, strict=True):
            dims = tuple(d.evaluate(env) if isinstance(d, Dim) else d for d in shape)
            if dims != tuple(a.shape) or dtype != a.dtype:
                raise Malformed(f"a declared {what} type does not match the jaxpr")
    n_in = sum(1 for _ in _leaf_indices(exp.in_tree))
    n_out = sum(1 for _ in _leaf_indices(exp.out_tree))
    if n_in != len(exp._in) or n_out != len(exp._out):
        raise Malformed("the argument or result tree does not match the jaxpr")
    unflatten(exp.in_tree, list(range(n_in)))
    unflatten(exp.out_tree, list(range(n_out)))
    return exp


def _leaf_indices(desc: Any) -> Any:
    stack = [desc]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            raise Malformed("a tree node is malformed")
        if node.get("t") == "array":
            yield node.get("i")
        elif isinstance(node.get("c"), list):
            stack.extend(node["c"])


def _from_npz_v1(f: Any) -> Exported:
    """Exported functions written by funcgrad 0.1 (an npz with a JSON header)."""

    archive = NpzArchive(f)
    entries = archive.entries(["__funcgrad__.npy"] + [f"a{i}.npy" for i in range(archive.count)])
    if "__funcgrad__.npy" not in entries:
        raise Malformed("an npz archive without a funcgrad header")
    raw = archive.read_array(entries["__funcgrad__.npy"])
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise Malformed(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise Malformed(f"it is not an exported function (expected the format {FORMAT!r})")
    arrays = []
    while f"a{len(arrays)}.npy" in entries:
        arrays.append(archive.read_array(entries[f"a{len(arrays)}.npy"]))
    closed = _decode_checked(header.get("jaxpr"), arrays, str(header.get("name")))
    exp = Exported(
        str(header.get("name")),
        header.get("jaxpr"),
        arrays,
        header.get("in_tree"),
        header.get("out_tree"),
        [(a.shape, a.dtype) for a in closed.in_avals],
        [(a.shape, a.dtype) for a in closed.out_avals],
    )
    return _validated(exp)


def _load_blob(f: Any, size: int) -> Exported:

    head = f.read(4)
    f.seek(0)
    try:
        if head in (b"PK\x03\x04", b"PK\x05\x06"):
            return _from_npz_v1(f)
        return _from_container(f, size)
    except MalformedFile:
        raise
    except ValueError as e:  # Malformed, ExportError, a type-check failure
        raise MalformedFile(str(e)) from None


def deserialize(blob: bytes | bytearray | memoryview) -> Exported:
    """Rebuild an :class:`Exported` from :meth:`Exported.serialize` bytes: parsed and
    type-checked, never executed (no pickle). A malformed blob or a newer format version is
    a ``ValueError``."""

    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"deserialize: expected bytes, got {type(blob).__name__}")
    data = bytes(blob)
    try:
        return _load_blob(io.BytesIO(data), len(data))
    except MalformedFile as e:
        raise ValueError(f"deserialize: not a valid exported function: {e}") from None
    except RecursionError:
        raise ValueError("deserialize: not a valid exported function: nested too deeply") from None
    except (KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
        raise ValueError(
            f"deserialize: not a valid exported function: {type(e).__name__}: {e}"
        ) from None


def save_exported(path: str | os.PathLike, exported: Exported) -> None:
    """Write ``exported.serialize()`` to ``path`` atomically."""

    blob = exported.serialize()
    atomic_write(path, lambda f: f.write(blob))


def load_exported(path: str | os.PathLike) -> Exported:
    """Read a function written by :func:`save_exported` (validated; see :func:`deserialize`)."""

    return load_file(path, "load_exported", _load_blob)
