"""Argument handling shared by funcgrad.numpy: conversion, NEP 50 promotion, axes, errors.

Decisions (they hold for every ``funcgrad.numpy`` function):

- Operands may be NumPy arrays and scalars, Python numbers, lists, or tracers. Python scalars
  are *weak* (NEP 50): ``f32_array * 2.0`` is float32, ``i32_array + 1`` is int32, and a
  Python int that does not fit the array's dtype raises ``OverflowError``, as NumPy 2.
  Everything else is strong: ``int32 + float32`` is float64. Weakness survives tracing as
  in JAX: avals carry a ``weak_type`` flag, so a Python scalar that became a tracer (an
  argument of ``jit``, a value computed only from Python scalars) still promotes like one,
  and promotion under every transformation matches the eager result.
- Ufunc-like functions take their dtypes from NumPy itself (``ufunc.resolve_dtypes``,
  cached per dtype combination), so ``true_divide`` of ints is float64, ``sin`` of int8 is
  float16, ``floor_divide`` of bools is int8, and unsupported combinations raise NumPy's
  ``TypeError`` (prefixed with the funcgrad function's name).
- With no transformation active, functions return fresh NumPy arrays (or NumPy scalars):
  never an input, never a view of one. Under a transformation they return tracers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import core, dtypes, lax
from funcgrad import numpy as fnp
from funcgrad.core import ShapedArray, Tracer
from funcgrad.errors import ConcretizationTypeError
from funcgrad.hints import traced_shape_hint

_PY_SCALARS = (bool, int, float, complex)
_eager = core._eager_only


def is_traced(x: Any) -> bool:
    return isinstance(x, Tracer)


is_eager = core.is_eager


def to_operand(x: Any, name: str = "funcgrad.numpy") -> Any:
    """A tracer or a NumPy array/scalar: ``core.as_array``, except that Python scalars stay
    scalars (NumPy scalars, weak at the call site) and lists holding tracers are stacked."""
    if isinstance(x, Tracer) or isinstance(x, np.ndarray | np.generic):
        return x
    if type(x) in _PY_SCALARS:
        return np.asarray(x)[()]
    if isinstance(x, list | tuple) and any(isinstance(e, Tracer) for e in _iter_nested(x)):
        return fnp.array(x)
    try:
        return core.as_array(x)
    except TypeError as e:
        raise TypeError(
            f"{name}: {type(x).__name__} is not array-like ({e}); pass numbers, NumPy arrays "
            "or (nested) lists of numbers"
        ) from None


def _iter_nested(x: Any):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _iter_nested(e)
        else:
            yield e


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an operand (tracer, array, scalar)."""
    s = getattr(x, "shape", None)
    return s if s is not None else np.shape(x)


def dtype_of(x: Any) -> np.dtype:
    return dtypes.dtype_of(x)


def short(x: Any) -> str:
    """``f32[3,4]``: an operand's type as error messages and jaxprs write it."""
    if isinstance(x, ShapedArray):
        return x.str_short()
    return ShapedArray(shape_of(x), dtypes.dtype_of(x)).str_short()


def convert(x: Any, dtype: np.dtype) -> Any:
    """``x`` as ``dtype``: a NumPy conversion for concrete values, a primitive for tracers."""
    if isinstance(x, Tracer):
        if x.dtype == dtype:
            return x
        return lax.convert_element_type(x, dtype)
    if type(x) in _PY_SCALARS:
        return np.array(x, dtype)[()]
    if not isinstance(x, (np.ndarray, np.generic)):
        x = to_operand(x)
    if x.dtype == dtype:
        return x
    if x.dtype.kind in "fc" and dtype.kind in "iub":
        with np.errstate(all="ignore"):  # NaN/inf to int: NumPy's value, no warning
            return x.astype(dtype)
    return x.astype(dtype)


def promote_args(name: str, *args: Any) -> list[Any]:
    """Convert ``args`` to one dtype by NumPy 2's rules (Python scalars are weak)."""
    dtype = None
    for a in args:  # the hot path: arrays and tracers of one dtype need nothing
        if type(a) is not np.ndarray and not isinstance(a, Tracer):
            break
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            break
    else:
        return list(args)
    ops = [a if type(a) in _PY_SCALARS else to_operand(a, name) for a in args]
    dtype = result_type(name, *ops)
    return [convert(a, dtype) for a in ops]


def promote_args_inexact(name: str, *args: Any) -> list[Any]:
    """Like :func:`promote_args`, then to a float dtype (as ``np.sin`` of ints)."""
    ops = [a if type(a) in _PY_SCALARS else to_operand(a, name) for a in args]
    dtype = dtypes.to_inexact(result_type(name, *ops))
    return [convert(a, dtype) for a in ops]


def result_type(name: str, *args: Any) -> np.dtype:
    """NEP 50 promotion of operands and dtypes, with errors that name ``name``."""
    try:
        return dtypes.result_type(*args)
    except TypeError as e:
        kinds = ", ".join(
            type(a).__name__ if type(a) in _PY_SCALARS else str(dtypes.dtype_of(a)) for a in args
        )
        raise TypeError(f"{name}: no common dtype for ({kinds}): {e}") from None


def lift_to_current(x: Any) -> Any:
    """Inside a transformation, box a constant as a value of the innermost trace."""
    if _eager[0] or isinstance(x, Tracer):
        return x
    return core.full_raise(core.current_trace(), x)


def fresh(x: Any) -> Any:
    """``x`` itself if traced (tracers are immutable), else a copy (never alias an input)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


# ----------------------------------------------------------------------------------------
# ufunc dtype resolution


_UFUNC_LOOPS: dict[tuple, Any] = {}


_BOOL = np.dtype(np.bool_)


def _key(x: Any) -> Any:
    t = type(x)
    if t is bool:
        return _BOOL  # as weak as a Python bool: bool never promotes anything
    if t in _PY_SCALARS:
        return t
    if x._weak if isinstance(x, Tracer) else False:  # a traced Python scalar
        dt = x.dtype
        return _BOOL if dt.kind == "b" else dtypes.weak_standin(dt)
    return x.dtype


def ufunc_loop(ufunc: np.ufunc, name: str, ops: tuple[Any, ...]) -> tuple[np.dtype, ...]:
    """NumPy's ``(in_dtype..., out_dtype...)`` loop for these operands (NEP 50), cached."""
    key = (ufunc, *map(_key, ops))
    loop = _UFUNC_LOOPS.get(key)
    if loop is None:
        try:
            loop = ufunc.resolve_dtypes((*key[1:], *([None] * ufunc.nout)))
        except TypeError as e:
            loop = e
        _UFUNC_LOOPS[key] = loop
    if type(loop) is not tuple:
        types = ", ".join(k.__name__ if isinstance(k, type) else str(k) for k in key[1:])
        raise TypeError(f"fnp.{name}: not supported for inputs of type ({types}): {loop}")
    return loop


def ufunc_args(ufunc: np.ufunc, name: str, *args: Any) -> tuple[list[Any], tuple]:
    """Operands converted to NumPy's loop dtypes for ``ufunc``, and that loop."""
    # The hot paths (eager code, and tracers under eager grad): array-array, array-scalar
    # and scalar-array operands whose loop is cached and needs no conversion.
    if len(args) == 2:
        x, y = args
        tx, ty = type(x), type(y)
        # Weak tracers (traced Python scalars) promote like Python scalars: slow path.
        x_arr = tx is np.ndarray or (isinstance(x, Tracer) and not x._weak)
        if x_arr and (ty is np.ndarray or (isinstance(y, Tracer) and not y._weak)):
            dx, dy = x.dtype, y.dtype
            loop = _UFUNC_LOOPS.get((ufunc, dx, dy))
            if type(loop) is tuple and dx == loop[0] and dy == loop[1]:
                return [x, y], loop
        elif x_arr and ty in _PY_SCALARS:
            dx = x.dtype
            loop = _UFUNC_LOOPS.get((ufunc, dx, _BOOL if ty is bool else ty))
            if type(loop) is tuple and dx == loop[0]:
                return [x, loop[1].type(y)], loop
        elif tx in _PY_SCALARS and (ty is np.ndarray or (isinstance(y, Tracer) and not y._weak)):
            dy = y.dtype
            loop = _UFUNC_LOOPS.get((ufunc, _BOOL if tx is bool else tx, dy))
            if type(loop) is tuple and dy == loop[1]:
                return [loop[0].type(x), y], loop
    elif len(args) == 1:
        (x,) = args
        if type(x) is np.ndarray or isinstance(x, Tracer):
            dx = x.dtype
            loop = _UFUNC_LOOPS.get((ufunc, dx))
            if type(loop) is tuple and dx == loop[0]:
                return [x], loop
    ops = []
    for a in args:
        t = type(a)
        if t is np.ndarray or t in _PY_SCALARS or isinstance(a, (Tracer, np.generic)):
            ops.append(a)
        else:
            ops.append(to_operand(a, f"fnp.{name}"))
    loop = ufunc_loop(ufunc, name, ops)
    # Traced Python scalars combined only with Python scalars (``lr * 2`` under jit, where
    # ``lr`` was a Python float argument) stay weak, as the Python arithmetic they stand for.
    weak = _only_weak(ops)
    out = []
    for a, dt in zip(ops, loop, strict=False):
        t = type(a)
        if t in _PY_SCALARS:
            out.append(dtypes.weak_literal(a, dt) if weak else dt.type(a))
        elif a.dtype == dt:
            out.append(a)
        else:
            out.append(convert(a, dt))
    return out, loop


def _only_weak(ops: list[Any]) -> bool:
    """Whether ``ops`` are weak tracers and Python scalars, with at least one tracer."""
    traced = False
    for a in ops:
        if isinstance(a, Tracer):
            if not a._weak:
                return False
            traced = True
        elif type(a) not in _PY_SCALARS:
            return False
    return traced


# ----------------------------------------------------------------------------------------
# Axes


def canonicalize_axis(axis: Any, ndim: int, name: str) -> int:
    """``axis`` in ``[0, ndim)`` (negative counts from the end), or NumPy's AxisError."""
    try:
        a = int(axis) if not isinstance(axis, (bool, np.bool_)) else None
    except TypeError:
        a = None
    if a is None or (not isinstance(axis, (int, np.integer)) and a != axis):
        raise TypeError(f"fnp.{name}: axis must be an integer, got {axis!r}")
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(
            f"fnp.{name}: axis {a} is out of bounds for an array of dimension {ndim}; give an "
            f"axis in [{-ndim}, {ndim})"
        )
    return a % ndim if ndim else a


def canonicalize_axes(axis: Any, ndim: int, name: str) -> tuple[int, ...]:
    """``None`` (all axes), an int, or a sequence of ints -> sorted distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(canonicalize_axis(a, ndim, name) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"fnp.{name}: repeated axis in {tuple(axis)}; give each axis once")
        return tuple(sorted(axes))
    return (canonicalize_axis(axis, ndim, name),)


def check_no_out(name: str, out: Any) -> None:
    if out is not None:
        raise TypeError(
            f"fnp.{name}: out= is not supported (funcgrad never writes into arrays); use the "
            "returned value instead"
        )


# ----------------------------------------------------------------------------------------
# Concrete values


def concrete(x: Any, name: str, what: str, fix: str) -> Any:
    """The concrete value of ``x`` (a NumPy value), or a ConcretizationTypeError.

    ``what`` names the argument; ``fix`` says what to do instead.
    """
    if isinstance(x, Tracer):
        aval = x.aval
        val = getattr(aval, "val", None)
        if val is not None and type(aval) is not ShapedArray:
            return np.asarray(val)
        raise ConcretizationTypeError(
            f"fnp.{name}: {what} must be concrete, but got the traced value "
            f"{aval.str_short()}. Under jit and vmap values are abstract (only shapes and "
            f"dtypes are known), so {fix}"
        )
    return x


def static_int(x: Any, name: str, what: str) -> int:
    """A Python int from a concrete integer (shapes, sizes, counts)."""
    x = concrete(
        x, name, what, "it cannot set a shape; pass a Python int (or mark it static in jit)"
    )
    try:
        return int(np.asarray(x).item()) if not isinstance(x, int) else x
    except (TypeError, ValueError) as e:
        raise TypeError(f"fnp.{name}: {what} must be an integer, got {x!r}") from e


def canonical_shape(shape: Any, name: str) -> tuple[int, ...]:
    """A shape argument (int or sequence of ints) as a tuple of Python ints."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        out = tuple(static_int(d, name, "shape") for d in shape)
    except TypeError as e:
        raise TypeError(
            f"fnp.{name}: shape must be an int or a tuple of ints, got {shape!r}"
            + traced_shape_hint(shape)
        ) from e
    if any(d < 0 for d in out):
        raise ValueError(f"fnp.{name}: negative dimensions are not allowed, got shape {out}")
    return out


def canonical_dtype(dtype: Any, name: str) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"fnp.{name}: {dtype!r} is not a dtype: {e}") from None
