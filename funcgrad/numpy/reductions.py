"""Reductions: sum, prod, mean, var, std, max, min, argmax, argmin, all, any, cumsum, ...

Decisions:

- ``axis`` is None (all axes), an int or a tuple of ints, negative allowed; ``keepdims``
  keeps the reduced axes as size 1 (one ``reshape``).
- Dtypes are NumPy's: ``sum``/``prod``/``cumsum``/``cumprod`` of bools and of integers
  narrower than 64 bits accumulate in int64 (uint64 for unsigned), as NumPy on 64-bit Linux;
  ``mean``/``var``/``std`` of integers and bools are float64; float16 is accumulated in
  float32 and returned as float16; ``dtype=`` overrides the accumulator.
- ``where=`` masks elements out (``sum``/``prod``/``mean``/``var``/``std``/``all``/``any``,
  and ``max``/``min`` with ``initial=``); ``initial=`` is folded in after the reduction.
- ``max``/``min`` of an empty axis without ``initial`` raise ValueError, and ``argmax``/
  ``argmin`` of an empty array raise ValueError, as NumPy. ``argmax``/``argmin`` return int64
  indices; the first NaN wins, as NumPy.
- ``median`` sorts (one ``sort``) and returns NaN where a NaN is present, as NumPy.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.numpy import util
from funcgrad.numpy.util import canonicalize_axes, check_no_out, shape_of, to_operand

_I64, _U64, _F64, _F32 = (np.dtype(t) for t in (np.int64, np.uint64, np.float64, np.float32))
_BOOL = np.dtype(np.bool_)


def _sum_dtype(dtype: np.dtype) -> np.dtype:
    """NumPy's accumulator for add/multiply reductions: small ints and bool widen."""
    if dtype.kind == "b" or (dtype.kind == "i" and dtype.itemsize < 8):
        return _I64
    if dtype.kind == "u" and dtype.itemsize < 8:
        return _U64
    return dtype


def _keep(x: Any, in_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    if not keepdims:
        return x
    return lax.reshape(x, tuple(1 if i in axes else d for i, d in enumerate(in_shape)))


def _prep(a: Any, axis: Any, name: str) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    a = to_operand(a, f"fnp.{name}")
    s = tuple(shape_of(a))
    return a, s, canonicalize_axes(axis, len(s), name)


def _mask(x: Any, where: Any, fill: Any, name: str) -> Any:
    if where is None or where is True:
        return x
    w = to_operand(where, f"fnp.{name}")
    if util.dtype_of(w) != _BOOL:
        raise TypeError(f"fnp.{name}: where= must be a bool array, got {util.short(w)}")
    try:
        np.broadcast_shapes(shape_of(w), shape_of(x))
    except ValueError:
        raise ValueError(
            f"fnp.{name}: where= of shape {shape_of(w)} does not broadcast to the array's "
            f"shape {shape_of(x)}"
        ) from None
    out = lax.select(w, x, np.array(fill, util.dtype_of(x))[()])
    return out if shape_of(out) == shape_of(x) else lax.broadcast_to(out, shape_of(x))


def sum(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """Sum over ``axis`` (int64 accumulator for small integers and bools, as NumPy)."""
    check_no_out("sum", out)
    a, s, axes = _prep(a, axis, "sum")
    dt = util.canonical_dtype(dtype, "sum") or _sum_dtype(util.dtype_of(a))
    x = _mask(util.convert(a, dt), where, 0, "sum")
    r = lax.reduce_or(x, axes) if dt == _BOOL else lax.reduce_sum(x, axes)
    if initial is not None:
        r = (
            lax.add(r, np.array(initial, dt)[()])
            if dt != _BOOL
            else lax.bitwise_or(r, np.array(initial, dt)[()])
        )
    return _keep(r, s, axes, keepdims)


def prod(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """Product over ``axis`` (int64 accumulator for small integers and bools, as NumPy)."""
    check_no_out("prod", out)
    a, s, axes = _prep(a, axis, "prod")
    dt = util.canonical_dtype(dtype, "prod") or _sum_dtype(util.dtype_of(a))
    x = _mask(util.convert(a, dt), where, 1, "prod")
    r = lax.reduce_and(x, axes) if dt == _BOOL else lax.reduce_prod(x, axes)
    if initial is not None:
        r = lax.mul(r, np.array(initial, dt)[()])
    return _keep(r, s, axes, keepdims)


product = prod


def _extremum(
    name: str,
    lax_reduce: Any,
    lax_binary: Any,
    a: Any,
    axis: Any,
    out: Any,
    keepdims: bool,
    initial: Any,
    where: Any,
) -> Any:
    check_no_out(name, out)
    a, s, axes = _prep(a, axis, name)
    dtype = util.dtype_of(a)
    if initial is None:
        if where is not None and where is not True:
            raise ValueError(
                f"fnp.{name}: reduction with where= needs an initial= value (an element "
                "could be masked out everywhere)"
            )
        empty = [i for i in axes if s[i] == 0]
        if empty:
            raise ValueError(
                f"fnp.{name}: zero-size array to reduction operation {name} which has no "
                f"identity (axis {empty[0]} of {util.short(a)} is empty); pass initial="
            )
        x = a
    else:
        init = np.array(initial, dtype)[()]
        x = _mask(a, where, init, name) if where is not None else a
    r = lax_reduce(x, axes)
    if initial is not None:
        r = lax_binary(r, np.array(initial, dtype)[()])
    return _keep(r, s, axes, keepdims)


def max(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """Maximum over ``axis`` (NaN propagates)."""
    return _extremum("max", lax.reduce_max, lax.max, a, axis, out, keepdims, initial, where)


def min(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """Minimum over ``axis`` (NaN propagates)."""
    return _extremum("min", lax.reduce_min, lax.min, a, axis, out, keepdims, initial, where)


amax, amin = max, min


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Range (maximum minus minimum) over ``axis``."""
    check_no_out("ptp", out)
    return fnp.subtract(max(a, axis, keepdims=keepdims), min(a, axis, keepdims=keepdims))


def _argext(name: str, lax_fn: Any, a: Any, axis: Any, out: Any, keepdims: bool) -> Any:
    check_no_out(name, out)
    a = to_operand(a, f"fnp.{name}")
    s = tuple(shape_of(a))
    if axis is None:
        if math.prod(s) == 0:
            raise ValueError(f"fnp.{name}: attempt to get {name} of an empty sequence")
        r = lax_fn(lax.reshape(a, (math.prod(s),)), 0, _I64)
        return lax.reshape(r, (1,) * len(s)) if keepdims else r
    ax = util.canonicalize_axis(axis, len(s), name)
    if s[ax] == 0:
        raise ValueError(
            f"fnp.{name}: attempt to get {name} of an empty sequence (axis {ax} of "
            f"{util.short(a)} is empty)"
        )
    return _keep(lax_fn(a, ax, _I64), s, (ax,), keepdims)


def argmax(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the maximum (over the flattened array when ``axis`` is None)."""
    return _argext("argmax", lax.argmax, a, axis, out, keepdims)


def argmin(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the minimum (over the flattened array when ``axis`` is None)."""
    return _argext("argmin", lax.argmin, a, axis, out, keepdims)


def truth(a: Any) -> Any:
    dtype = util.dtype_of(a)
    if dtype == _BOOL:
        return a
    return lax.ne(a, np.zeros((), dtype)[()])


def all(
    a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    """Whether all elements along ``axis`` are true (nonzero)."""
    check_no_out("all", out)
    a, s, axes = _prep(a, axis, "all")
    x = _mask(truth(a), where, True, "all")
    return _keep(lax.reduce_and(x, axes), s, axes, keepdims)


def any(
    a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    """Whether any element along ``axis`` is true (nonzero)."""
    check_no_out("any", out)
    a, s, axes = _prep(a, axis, "any")
    x = _mask(truth(a), where, False, "any")
    return _keep(lax.reduce_or(x, axes), s, axes, keepdims)


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """The number of nonzero elements along ``axis`` (int64)."""
    a, s, axes = _prep(a, axis, "count_nonzero")
    x = util.convert(truth(a), _I64)
    return _keep(lax.reduce_sum(x, axes), s, axes, keepdims)


def _mean_dtype(dtype: np.dtype, given: Any, name: str) -> tuple[np.dtype, np.dtype]:
    """(accumulator dtype, result dtype) of mean/var/std."""
    given = util.canonical_dtype(given, name)
    if given is not None:
        return given, given
    if dtype.kind in "biu":
        return _F64, _F64
    if dtype == np.float16:
        return _F32, dtype
    return dtype, dtype


def _count(
    s: tuple[int, ...], axes: tuple[int, ...], where: Any, dt: np.dtype, keepdims: bool
) -> Any:
    """How many elements each reduction sees: a scalar, or (with ``where=``) an array."""
    if where is None or where is True:
        return np.array(math.prod(s[i] for i in axes), dt)[()]
    w = lax.broadcast_to(util.convert(to_operand(where), dt), s)
    return _keep(lax.reduce_sum(w, axes), s, axes, keepdims)


def mean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = None,
) -> Any:
    """Arithmetic mean over ``axis`` (float64 for integers)."""
    check_no_out("mean", out)
    a, s, axes = _prep(a, axis, "mean")
    acc, res = _mean_dtype(util.dtype_of(a), dtype, "mean")
    x = _mask(util.convert(a, acc), where, 0, "mean")
    total = _keep(lax.reduce_sum(x, axes), s, axes, keepdims)
    r = lax.div(total, _count(s, axes, where, acc, keepdims))
    return util.convert(r, res)


def var(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: Any = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
    mean: Any = None,
    correction: Any = None,
) -> Any:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom (float64 for integers)."""
    check_no_out("var", out)
    if correction is not None:
        ddof = correction
    a, s, axes = _prep(a, axis, "var")
    acc, res = _mean_dtype(util.dtype_of(a), dtype, "var")
    x = util.convert(a, acc)
    if mean is None:
        total = _keep(lax.reduce_sum(_mask(x, where, 0, "var"), axes), s, axes, True)
        mu = lax.div(total, _count(s, axes, where, acc, True))
    else:
        mu = util.convert(to_operand(mean), acc)
    centered = lax.sub(x, mu)
    if util.dtype_of(centered).kind == "c":  # |x - mean|^2, real (NumPy's)
        re, im = lax.real(centered), lax.imag(centered)
        sq = _mask(lax.add(lax.mul(re, re), lax.mul(im, im)), where, 0, "var")
        acc = util.dtype_of(sq)
        res = np.dtype(acc) if res.kind == "c" else res
    else:
        sq = _mask(lax.mul(centered, centered), where, 0, "var")
    total = _keep(lax.reduce_sum(sq, axes), s, axes, keepdims)
    count = _count(s, axes, where, acc, keepdims)
    if type(ddof) in (int, float) and isinstance(count, np.generic):
        denom = np.array(builtins.max(float(count) - ddof, 0.0), acc)[()]
    else:
        ddof = util.convert(to_operand(ddof), acc)
        denom = lax.max(lax.sub(count, ddof), np.zeros((), acc)[()])
    return util.convert(lax.div(total, denom), res)


def std(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: Any = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
    mean: Any = None,
    correction: Any = None,
) -> Any:
    """Standard deviation over ``axis`` (``sqrt(var)``)."""
    check_no_out("std", out)
    v = var(a, axis, dtype, None, ddof, keepdims, where=where, mean=mean, correction=correction)
    return lax.sqrt(v)


def average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *, keepdims: bool = False
) -> Any:
    """Weighted average over ``axis``."""
    a = to_operand(a, "fnp.average")
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        if not returned:
            return avg
        s = shape_of(a)
        axes = canonicalize_axes(axis, len(s), "average")
        cnt = np.array(math.prod(s[i] for i in axes), util.dtype_of(avg))[()]
        return avg, fnp.broadcast_to(cnt, shape_of(avg))
    w = to_operand(weights, "fnp.average")
    s = tuple(shape_of(a))
    if shape_of(w) != s:
        if axis is None or len(shape_of(w)) != 1:
            raise ValueError(
                f"fnp.average: weights of shape {shape_of(w)} differ from a's shape {s}; give "
                "weights of a's shape, or 1-d weights along a single axis"
            )
        ax = util.canonicalize_axis(axis, len(s), "average")
        if shape_of(w)[0] != s[ax]:
            raise ValueError("fnp.average: length of weights differs from the averaged axis")
        w = fnp.moveaxis(fnp.reshape(w, (-1,) + (1,) * (len(s) - 1)), 0, ax)
    scl = sum(fnp.broadcast_to(w, s) if shape_of(w) != s else w, axis, keepdims=keepdims)
    num = sum(fnp.multiply(a, w), axis, keepdims=keepdims)
    avg = fnp.divide(num, scl)
    return (avg, fnp.broadcast_to(scl, shape_of(avg))) if returned else avg


def _cumulative(name: str, lax_fn: Any, a: Any, axis: Any, dtype: Any, out: Any) -> Any:
    check_no_out(name, out)
    a = to_operand(a, f"fnp.{name}")
    if axis is None:
        a = lax.reshape(a, (math.prod(shape_of(a)),))
        axis = 0
    ax = util.canonicalize_axis(axis, len(shape_of(a)), name)
    dt = util.canonical_dtype(dtype, name) or _sum_dtype(util.dtype_of(a))
    return lax_fn(util.convert(a, dt), axis=ax)


def cumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative sum along ``axis`` (of the flattened array when None)."""
    return _cumulative("cumsum", lax.cumsum, a, axis, dtype, out)


def cumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative product along ``axis`` (of the flattened array when None)."""
    return _cumulative("cumprod", lax.cumprod, a, axis, dtype, out)


cumproduct = cumprod


def cumulative_sum(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """Cumulative sum (the array API's form: ``axis`` required above 1-d)."""
    return _cumulative_api("cumulative_sum", cumsum, 0, x, axis, dtype, out, include_initial)


def cumulative_prod(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """Cumulative product (the array API's form: ``axis`` required above 1-d)."""
    return _cumulative_api("cumulative_prod", cumprod, 1, x, axis, dtype, out, include_initial)


def _cumulative_api(name, fn, identity, x, axis, dtype, out, include_initial):
    x = to_operand(x, f"fnp.{name}")
    if axis is None:
        if len(shape_of(x)) > 1:
            raise ValueError(f"fnp.{name}: axis must be given for arrays of more than 1 dimension")
        axis = 0
    r = fn(x, axis, dtype, out)
    if include_initial:
        ax = util.canonicalize_axis(axis, len(shape_of(x)), name)
        cfg = [(0, 0, 0)] * len(shape_of(r))
        cfg[ax] = (1, 0, 0)
        r = lax.pad(r, np.array(identity, util.dtype_of(r))[()], cfg)
    return r


# ----------------------------------------------------------------------------------------
# NaN-ignoring reductions


def _nan_fill(a: Any, value: Any) -> Any:
    dtype = util.dtype_of(a)
    if dtype.kind != "f":
        return a
    return lax.select(lax.ne(a, a), np.array(value, dtype)[()], a)


def nansum(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """Sum treating NaN as zero."""
    a = to_operand(a, "fnp.nansum")
    return sum(_nan_fill(a, 0), axis, dtype, out, keepdims, **kw)


def nanprod(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """Product treating NaN as one."""
    a = to_operand(a, "fnp.nanprod")
    return prod(_nan_fill(a, 1), axis, dtype, out, keepdims, **kw)


def nanmean(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False
) -> Any:
    """Mean ignoring NaN (NaN where every element is NaN)."""
    check_no_out("nanmean", out)
    a = to_operand(a, "fnp.nanmean")
    if util.dtype_of(a).kind != "f":
        return mean(a, axis, dtype, keepdims=keepdims)
    return mean(a, axis, dtype, keepdims=keepdims, where=fnp.logical_not(fnp.isnan(a)))


def nanvar(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: Any = 0,
    keepdims: bool = False,
) -> Any:
    """Variance ignoring NaN."""
    check_no_out("nanvar", out)
    a = to_operand(a, "fnp.nanvar")
    if util.dtype_of(a).kind != "f":
        return var(a, axis, dtype, ddof=ddof, keepdims=keepdims)
    return var(a, axis, dtype, ddof=ddof, keepdims=keepdims, where=fnp.logical_not(fnp.isnan(a)))


def nanstd(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: Any = 0,
    keepdims: bool = False,
) -> Any:
    """Standard deviation ignoring NaN."""
    return lax.sqrt(nanvar(a, axis, dtype, out, ddof, keepdims))


def _nanext(name: str, fn: Any, fill: float, a: Any, axis: Any, out: Any, keepdims: bool) -> Any:
    check_no_out(name, out)
    a = to_operand(a, f"fnp.{name}")
    if util.dtype_of(a).kind != "f":
        return fn(a, axis, keepdims=keepdims)
    r = fn(_nan_fill(a, fill), axis, keepdims=keepdims)
    all_nan = all(lax.ne(a, a), axis, keepdims=keepdims)
    return lax.select(all_nan, np.array(np.nan, util.dtype_of(a))[()], r)


def nanmax(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Maximum ignoring NaN (NaN where every element is NaN)."""
    return _nanext("nanmax", max, -np.inf, a, axis, out, keepdims)


def nanmin(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Minimum ignoring NaN (NaN where every element is NaN)."""
    return _nanext("nanmin", min, np.inf, a, axis, out, keepdims)


def nancumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative sum treating NaN as zero."""
    return cumsum(_nan_fill(to_operand(a, "fnp.nancumsum"), 0), axis, dtype, out)


def nancumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """Cumulative product treating NaN as one."""
    return cumprod(_nan_fill(to_operand(a, "fnp.nancumprod"), 1), axis, dtype, out)


def nanargmax(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the maximum ignoring NaN (an all-NaN slice gives 0; NumPy raises)."""
    return argmax(_nan_fill(to_operand(a, "fnp.nanargmax"), -np.inf), axis, out, keepdims=keepdims)


def nanargmin(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """Index of the minimum ignoring NaN (an all-NaN slice gives 0; NumPy raises)."""
    return argmin(_nan_fill(to_operand(a, "fnp.nanargmin"), np.inf), axis, out, keepdims=keepdims)


def bincount(x: Any, weights: Any = None, minlength: int = 0, *, length: Any = None) -> Any:
    """Counts (or summed ``weights``) of each non-negative integer in 1-d ``x``.

    The result's length is ``max(x) + 1`` (at least ``minlength``) for a concrete ``x``;
    a traced ``x`` needs a static ``length=`` (values outside it are dropped), as JAX.
    """
    x = to_operand(x, "fnp.bincount")
    if len(shape_of(x)) != 1 or util.dtype_of(x).kind not in "iub":
        raise TypeError(f"fnp.bincount: x must be a 1-d integer array, got {util.short(x)}")
    if length is None:
        xv = np.asarray(
            util.concrete(
                x,
                "bincount",
                "x",
                "the result's length would depend on its values; pass a "
                "static length=... (values at or beyond it are dropped)",
            )
        )
        if xv.size and xv.min() < 0:
            raise ValueError("fnp.bincount: x must contain non-negative integers")
        length = builtins.max(int(xv.max(initial=-1)) + 1, int(minlength))
    length = util.static_int(length, "bincount", "length")
    if weights is None:
        w, dt = np.int64(1), _I64
    else:
        w = util.convert(to_operand(weights, "fnp.bincount"), _F64)
        dt = _F64
    zeros = lax.full((length,), np.zeros((), dt)[()], dt)
    # Negative values are dropped like those at or beyond ``length``.
    x = lax.select(
        lax.lt(x, np.zeros((), util.dtype_of(x))[()]), np.int64(length), util.convert(x, _I64)
    )
    return fnp.at(zeros)[x].add(w, mode="drop")


# ----------------------------------------------------------------------------------------
# Order statistics


def median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """Median over ``axis`` (NaN if any element is NaN)."""
    return quantile(a, 0.5, axis=axis, out=out, keepdims=keepdims)


def quantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    interpolation: Any = None,
) -> Any:
    """``q``-th quantiles (linear interpolation) over ``axis``; ``q`` must be concrete."""
    check_no_out("quantile", out)
    if method != "linear" or interpolation not in (None, "linear"):
        raise NotImplementedError("fnp.quantile: only method='linear' is supported")
    a = to_operand(a, "fnp.quantile")
    qv = np.asarray(
        util.concrete(q, "quantile", "q", "the sort positions depend on it"), dtype=np.float64
    )
    if ((qv < 0) | (qv > 1)).any():
        raise ValueError("fnp.quantile: quantiles must be in the range [0, 1]")
    s = tuple(shape_of(a))
    axes = canonicalize_axes(axis, len(s), "quantile")
    dt = _mean_dtype(util.dtype_of(a), None, "quantile")[1]
    x = util.convert(a, dt)
    rest = [i for i in range(len(s)) if i not in axes]
    x = fnp.transpose(x, rest + list(axes))
    n = math.prod(s[i] for i in axes)
    x = fnp.reshape(x, tuple(s[i] for i in rest) + (n,))
    srt = fnp.sort(x, axis=-1)
    pos = qv * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, builtins.max(n - 1, 0))
    frac = (pos - lo).astype(dt)
    vlo = fnp.indexing.getitem(srt, (Ellipsis, lo))
    vhi = fnp.indexing.getitem(srt, (Ellipsis, hi))
    r = fnp.add(vlo, fnp.multiply(fnp.subtract(vhi, vlo), frac))
    if dt.kind == "f":
        has_nan = any(lax.ne(x, x), axis=-1)
        if qv.ndim:
            has_nan = fnp.reshape(has_nan, shape_of(has_nan) + (1,) * qv.ndim)
        r = lax.select(has_nan, np.array(np.nan, dt)[()], r)
    nb = len(rest)
    if qv.ndim:
        r = fnp.moveaxis(r, tuple(range(nb, nb + qv.ndim)), tuple(range(qv.ndim)))
    if keepdims:
        kshape = tuple(1 if i in axes else d for i, d in enumerate(s))
        r = fnp.reshape(r, qv.shape + kshape)
    return r


def percentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
) -> Any:
    """``q``-th percentiles (0-100) over ``axis``."""
    qv = np.asarray(util.concrete(q, "percentile", "q", "the sort positions depend on it"))
    return quantile(a, qv / 100.0, axis, out, method=method, keepdims=keepdims)
