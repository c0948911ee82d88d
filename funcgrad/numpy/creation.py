"""Array creation: array, asarray, zeros/ones/full (and _like), arange, linspace, eye, ...

Decisions:

- ``array`` and ``asarray`` always copy a NumPy input (a result never aliases an input).
  Inside a transformation they return a value of the innermost trace
  (``util.lift_to_current``), so ``fnp.asarray(table)[i]`` works with a traced ``i``.
- ``array([...])`` of tracers (or of nested lists mixing tracers and numbers) stacks the
  elements; Python numbers among them are weak, so ``array([x_f32, 1.0])`` is float32.
- Eagerly, ``zeros``/``ones``/``full``/``eye``/``arange`` call NumPy directly (fast, fresh).
  Under a transformation they are staged as primitives (``broadcast_in_dim`` of a scalar,
  ``iota``), not as large constants, except float ``arange``/``linspace`` with concrete
  bounds, which are constants so that their values are NumPy's exactly.
- Default dtypes are NumPy's: float64 for ``zeros``/``ones``/``eye``, the fill value's dtype
  for ``full`` (Python int -> int64), NumPy's rules for ``arange``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import dtypes, lax
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.numpy import util

_F64 = np.dtype(np.float64)


def _nested_has_tracer(x: Any) -> bool:
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (list, tuple)):
        return any(_nested_has_tracer(e) for e in x)
    return False


def _stack_nested(obj: Any, dtype: np.dtype | None) -> Any:
    """``array(obj)`` for nested sequences holding tracers: one dtype for all leaves (Python
    numbers weak), then stacked level by level."""
    leaves = [
        e if type(e) in (bool, int, float, complex) else util.to_operand(e, "fnp.array")
        for e in util._iter_nested(obj)
    ]
    target = dtype if dtype is not None else util.result_type("fnp.array", *leaves)
    return _build(obj, target)


def _build(obj: Any, dtype: np.dtype) -> Any:
    if not isinstance(obj, (list, tuple)):
        return util.convert(obj, dtype)
    if not _nested_has_tracer(obj):
        return util.convert(util.to_operand(obj, "fnp.array"), dtype)
    elems = [_build(e, dtype) for e in obj]
    if not elems:
        return lax.full((0,), np.zeros((), dtype)[()], dtype)
    shapes = {tuple(util.shape_of(e)) for e in elems}
    if len(shapes) > 1:
        raise ValueError(
            f"fnp.array: the elements of a sequence have different shapes "
            f"{sorted(shapes)}; a nested sequence must be rectangular (pad or stack them "
            "yourself)"
        )
    return fnp.stack(elems)


def array(
    object: Any, dtype: Any = None, copy: bool = True, order: Any = None, ndmin: int = 0
) -> Any:
    """An array from ``object`` (always a copy); nested sequences of tracers are stacked."""
    dtype = util.canonical_dtype(dtype, "array")
    if isinstance(object, Tracer):
        out = object if dtype is None else util.convert(object, dtype)
    elif isinstance(object, (list, tuple)) and _nested_has_tracer(object):
        out = _stack_nested(object, dtype)
    else:
        try:
            out = np.array(object, dtype=dtype, copy=True)
        except (ValueError, TypeError) as e:
            raise type(e)(f"fnp.array: cannot convert {type(object).__name__}: {e}") from None
        if out.dtype.kind == "O":
            raise TypeError(
                f"fnp.array: {type(object).__name__} is not array-like (NumPy makes it an "
                "object array); pass numbers, arrays or (nested, rectangular) lists of them"
            )
        out = util.lift_to_current(out)
    ndim = len(util.shape_of(out))
    if ndmin > ndim:
        out = fnp.reshape(out, (1,) * (ndmin - ndim) + tuple(util.shape_of(out)))
    return out


def asarray(a: Any, dtype: Any = None, order: Any = None, *, copy: Any = None) -> Any:
    """``a`` as an array of ``dtype`` (a copy of a NumPy input; tracers pass through)."""
    if isinstance(a, Tracer):
        dtype = util.canonical_dtype(dtype, "asarray")
        return a if dtype is None else util.convert(a, dtype)
    return array(a, dtype=dtype)


def asanyarray(a: Any, dtype: Any = None, order: Any = None) -> Any:
    """``asarray`` (funcgrad has no array subclasses)."""
    return asarray(a, dtype=dtype)


def ascontiguousarray(a: Any, dtype: Any = None) -> Any:
    """``asarray`` (funcgrad arrays are always contiguous)."""
    return asarray(a, dtype=dtype)


def copy(a: Any, order: Any = None) -> Any:
    """A copy of ``a``."""
    return asarray(a) if isinstance(a, Tracer) else array(a)


def _full(shape: tuple[int, ...], value: Any, dtype: np.dtype) -> Any:
    if util.is_eager():
        return np.full(shape, value, dtype)
    return lax.full(shape, np.array(value, dtype)[()], dtype)


def zeros(shape: Any, dtype: Any = None, order: Any = None) -> Any:
    """An array of zeros (float64 by default)."""
    shape = util.canonical_shape(shape, "zeros")
    dtype = util.canonical_dtype(dtype, "zeros") or _F64
    if util.is_eager():
        return np.zeros(shape, dtype)
    return lax.full(shape, np.zeros((), dtype)[()], dtype)


def ones(shape: Any, dtype: Any = None, order: Any = None) -> Any:
    """An array of ones (float64 by default)."""
    shape = util.canonical_shape(shape, "ones")
    dtype = util.canonical_dtype(dtype, "ones") or _F64
    return _full(shape, 1, dtype)


def empty(shape: Any, dtype: Any = None, order: Any = None) -> Any:
    """An array of zeros (funcgrad has no uninitialized memory)."""
    return zeros(shape, dtype)


def full(shape: Any, fill_value: Any, dtype: Any = None, order: Any = None) -> Any:
    """An array of ``shape`` filled with ``fill_value`` (which may be an array or traced)."""
    shape = util.canonical_shape(shape, "full")
    dtype = util.canonical_dtype(dtype, "full")
    if type(fill_value) in (bool, int, float, complex):
        return _full(shape, fill_value, dtype or dtypes.dtype_of(fill_value))
    fill = util.to_operand(fill_value, "fnp.full")
    dtype = dtype or util.dtype_of(fill)
    fill = util.convert(fill, dtype)
    fshape = util.shape_of(fill)
    if len(fshape) > len(shape) or any(
        f not in (1, s) for f, s in zip(fshape[::-1], shape[::-1], strict=False)
    ):
        raise ValueError(
            f"fnp.full: fill_value of shape {fshape} does not broadcast to shape {shape}"
        )
    if isinstance(fill, Tracer) or not util.is_eager():
        return lax.broadcast_in_dim(fill, shape, tuple(range(len(shape) - len(fshape), len(shape))))
    return np.array(np.broadcast_to(fill, shape))


def _like(a: Any, dtype: Any, shape: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
    a = util.to_operand(a, f"fnp.{name}")
    dtype = util.canonical_dtype(dtype, name) or util.dtype_of(a)
    shape = util.shape_of(a) if shape is None else util.canonical_shape(shape, name)
    return tuple(shape), dtype


def zeros_like(
    a: Any, dtype: Any = None, order: Any = None, subok: Any = None, shape: Any = None
) -> Any:
    """Zeros with the shape and dtype of ``a``."""
    shape, dtype = _like(a, dtype, shape, "zeros_like")
    return zeros(shape, dtype)


def ones_like(
    a: Any, dtype: Any = None, order: Any = None, subok: Any = None, shape: Any = None
) -> Any:
    """Ones with the shape and dtype of ``a``."""
    shape, dtype = _like(a, dtype, shape, "ones_like")
    return _full(shape, 1, dtype)


def empty_like(
    a: Any, dtype: Any = None, order: Any = None, subok: Any = None, shape: Any = None
) -> Any:
    """Zeros with the shape and dtype of ``a``."""
    return zeros_like(a, dtype=dtype, shape=shape)


def full_like(
    a: Any,
    fill_value: Any,
    dtype: Any = None,
    order: Any = None,
    subok: Any = None,
    shape: Any = None,
) -> Any:
    """``fill_value`` (converted to ``a``'s dtype) with the shape of ``a``."""
    shape, dtype = _like(a, dtype, shape, "full_like")
    if type(fill_value) in (bool, int, float, complex):
        with np.errstate(all="ignore"):
            return _full(shape, np.array(fill_value).astype(dtype)[()], dtype)
    return full(shape, fill_value, dtype)


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Any:
    """Evenly spaced values in ``[start, stop)`` (bounds must be concrete)."""
    fix = (
        "the length of the result would depend on it; pass Python numbers (or mark them "
        "static in jit)"
    )
    args = [util.concrete(v, "arange", "start/stop/step", fix) for v in (start, stop, step)]
    dtype = util.canonical_dtype(dtype, "arange")
    try:
        if args[1] is None and args[2] is None:
            ref = np.arange(args[0], dtype=dtype)
        else:
            ref = np.arange(
                *(a if a is not None else d for a, d in zip(args, (0, None, 1), strict=False)),
                dtype=dtype,
            )
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise type(e)(f"fnp.arange: {e}") from None
    if util.is_eager():
        return ref
    if ref.dtype.kind in "iu":
        begin = args[0] if args[1] is not None else 0
        stride = 1 if args[2] is None else args[2]
        out = lax.iota(ref.dtype, ref.shape[0])
        if stride != 1:
            out = lax.mul(out, np.array(stride, ref.dtype)[()])
        if begin != 0:
            out = lax.add(out, np.array(begin, ref.dtype)[()])
        return out
    return util.lift_to_current(ref)


def linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop`` (which may be traced)."""
    num = util.static_int(num, "linspace", "num")
    if num < 0:
        raise ValueError(f"fnp.linspace: num must be non-negative, got {num}")
    dtype = util.canonical_dtype(dtype, "linspace")
    if not isinstance(start, Tracer) and not isinstance(stop, Tracer):
        out = np.linspace(
            start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis
        )
        if retstep:
            return util.lift_to_current(out[0]), out[1]
        return util.lift_to_current(out)
    start, stop = util.promote_args_inexact("fnp.linspace", start, stop)
    comp = util.dtype_of(start)
    bshape = np.broadcast_shapes(util.shape_of(start), util.shape_of(stop))
    div = (num - 1) if endpoint else num
    delta = fnp.ufuncs.subtract(stop, start)
    steps = fnp.reshape(lax.iota(comp, num), (num,) + (1,) * len(bshape))
    step = (
        fnp.ufuncs.divide(delta, np.array(div, comp)[()])
        if div > 0
        else fnp.ufuncs.multiply(delta, np.array(np.nan, comp)[()])
    )
    # With no interval (num=1 and endpoint, or num=0) NumPy's step is NaN but the values
    # are start + i * delta, i.e. just start: never multiply by the NaN step.
    out = fnp.ufuncs.add(fnp.ufuncs.multiply(steps, step if div > 0 else delta), start)
    if endpoint and num > 1:
        last = lax.broadcast_to(stop, (1, *bshape)) if util.shape_of(stop) != (1, *bshape) else stop
        body = lax.slice(out, (0,) * out.ndim, (num - 1, *bshape))
        out = fnp.concatenate([body, fnp.reshape(last, (1, *bshape))], axis=0)
    if dtype is not None and dtype.kind in "iu":
        out = fnp.ufuncs.floor(out)
    if dtype is not None:
        out = util.convert(out, dtype)
    out = fnp.moveaxis(out, 0, axis)
    return (out, step) if retstep else out


def logspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    base: float = 10.0,
    dtype: Any = None,
    axis: int = 0,
) -> Any:
    """``base ** linspace(start, stop, num)``."""
    y = linspace(start, stop, num, endpoint=endpoint, axis=axis)
    out = fnp.ufuncs.power(base, y)
    return out if dtype is None else util.convert(out, np.dtype(dtype))


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None, order: Any = None) -> Any:
    """A 2-d array with ones on the ``k``-th diagonal (float64 by default)."""
    n = util.static_int(N, "eye", "N")
    m = n if M is None else util.static_int(M, "eye", "M")
    k = util.static_int(k, "eye", "k")
    dtype = util.canonical_dtype(dtype, "eye") or _F64
    if util.is_eager():
        return np.eye(n, m, k, dtype=dtype)
    return util.convert(tri_mask(n, m, k, lax.eq), dtype)


def identity(n: int, dtype: Any = None) -> Any:
    """The ``n`` by ``n`` identity matrix."""
    return eye(n, dtype=dtype)


def tri_mask(n: int, m: int, k: int, cmp: Any) -> Any:
    """``cmp(col - row, k)`` over an ``(n, m)`` grid, as a bool array."""
    rows = lax.broadcasted_iota(np.int64, (n, m), 0)
    cols = lax.broadcasted_iota(np.int64, (n, m), 1)
    return cmp(lax.sub(cols, rows), np.int64(k))


def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Any:
    """Ones at and below the ``k``-th diagonal, zeros above (float64 by default)."""
    n = util.static_int(N, "tri", "N")
    m = n if M is None else util.static_int(M, "tri", "M")
    k = util.static_int(k, "tri", "k")
    dtype = util.canonical_dtype(dtype, "tri") or _F64
    if util.is_eager():
        return np.tri(n, m, k, dtype=dtype)
    return util.convert(tri_mask(n, m, k, lax.le), dtype)


def _tri_select(m: Any, k: int, name: str, cmp: Any) -> Any:
    m = util.to_operand(m, f"fnp.{name}")
    shape = util.shape_of(m)
    if len(shape) < 2:
        raise ValueError(
            f"fnp.{name}: needs an array of at least 2 dimensions, got {util.short(m)}"
        )
    k = util.static_int(k, name, "k")
    mask = tri_mask(shape[-2], shape[-1], k, cmp)
    return lax.select(mask, m, np.zeros((), util.dtype_of(m))[()])


def tril(m: Any, k: int = 0) -> Any:
    """``m`` with the elements above the ``k``-th diagonal zeroed."""
    return _tri_select(m, k, "tril", lax.le)


def triu(m: Any, k: int = 0) -> Any:
    """``m`` with the elements below the ``k``-th diagonal zeroed."""
    return _tri_select(m, k, "triu", lax.ge)


def meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> tuple:
    """Coordinate arrays from coordinate vectors (``indexing`` ``'xy'`` or ``'ij'``)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"fnp.meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    xs = [fnp.ravel(util.to_operand(x, "fnp.meshgrid")) for x in xi]
    n = len(xs)
    sizes = [util.shape_of(x)[0] for x in xs]
    if indexing == "xy" and n > 1:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, x in enumerate(xs):
        pos = i
        if indexing == "xy" and n > 1 and i < 2:
            pos = 1 - i
        shape = [1] * n
        shape[pos] = util.shape_of(x)[0]
        y = fnp.reshape(x, tuple(shape))
        out.append(y if sparse else fnp.broadcast_to(y, tuple(sizes)))
    return tuple(out)


def indices(dimensions: Any, dtype: Any = int, sparse: bool = False) -> Any:
    """A grid of indices: ``out[k][i0, i1, ...] == ik``."""
    dims = util.canonical_shape(dimensions, "indices")
    dtype = util.canonical_dtype(dtype, "indices")
    n = len(dims)
    if sparse:
        return tuple(
            lax.reshape(lax.iota(dtype, d), tuple(d if j == i else 1 for j in range(n)))
            for i, d in enumerate(dims)
        )
    if not n:
        return zeros((0,), dtype)
    return fnp.stack([lax.broadcasted_iota(dtype, dims, i) for i in range(n)])


def _concrete_indices(arrays: tuple) -> tuple:
    return tuple(util.lift_to_current(a.astype(np.int64)) for a in arrays)


def tril_indices(n: int, k: int = 0, m: int | None = None) -> tuple:
    """Row and column indices of the lower triangle of an ``(n, m)`` array."""
    return _concrete_indices(np.tril_indices(util.static_int(n, "tril_indices", "n"), k, m))


def triu_indices(n: int, k: int = 0, m: int | None = None) -> tuple:
    """Row and column indices of the upper triangle of an ``(n, m)`` array."""
    return _concrete_indices(np.triu_indices(util.static_int(n, "triu_indices", "n"), k, m))


def ix_(*args: Any) -> tuple:
    """Open-mesh index arrays: each 1-d input reshaped along its own axis."""
    n = len(args)
    out = []
    for i, a in enumerate(args):
        a = util.to_operand(a, "fnp.ix_")
        s = util.shape_of(a)
        if len(s) != 1:
            raise ValueError(f"fnp.ix_: the inputs must be 1-d, got {util.short(a)}")
        shape = tuple(s[0] if j == i else 1 for j in range(n))
        if isinstance(a, Tracer):
            out.append(lax.reshape(a, shape))
        else:
            if a.dtype == np.bool_:
                a = np.nonzero(a)[0]
                shape = tuple(a.shape[0] if j == i else 1 for j in range(n))
            out.append(util.lift_to_current(np.array(a).reshape(shape)))
    return tuple(out)
