"""Cumulative reductions along one axis: cumsum, cumprod, cummax, cummin, cumlogsumexp.

Each primitive has params ``axis`` (non-negative) and ``reverse`` (scan from the end), keeps
its operand's dtype and shape, and batches by renumbering ``axis``.

cumsum is linear; its transpose is the cumsum in the other direction. The other jvps are
first-order linear recurrences ``y_i = r_i * y_{i-1} + b_i`` along the axis, solved by a
doubling (Hillis-Steele) scan made of slices, concatenations, ``mul`` and ``add``: exact for
any operand (cumprod with zeros included) and differentiable again, to any order.

- cumprod: ``r = x``, ``b = g * (exclusive cumprod)``.
- cummax/cummin: the tangent is taken from the element that set the running max/min; on a
  tie it stays with the element reached first in scan order (``r`` and ``b`` are 0/1 masks).
- cumlogsumexp: ``r_i = exp(out_{i-1} - out_i)``, ``b_i = g_i * exp(x_i - out_i)``: every
  factor lies in [0, 1], so nothing overflows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import FLOAT, NUMBER, check_dtype
from funcgrad.lax.reductions import as_array

ORDERED = "fiub"

# ----------------------------------------------------------------------------------------
# Helpers along one axis (all in terms of lax primitives, so they trace and differentiate)


def _slice(x: Any, start: int, stop: int, axis: int) -> Any:
    """``x[..., start:stop, ...]`` along ``axis`` with one ``slice``."""
    return lax.slice_in_dim(x, start, stop, 1, axis)


def _concatenate(xs: list, axis: int) -> Any:
    return lax.concatenate(xs, axis)


def _fill_block(x: Any, axis: int, fill: Any) -> Any:
    """An array like ``x`` but of size 1 along ``axis``, filled with ``fill``."""
    shape = list(x.shape)
    shape[axis] = 1
    return lax.full(tuple(shape), fill, x.dtype)


def _prepend(fill: Any, rest: Any, axis: int, reverse: bool) -> Any:
    """Put a size-1 block of ``fill`` before ``rest`` in scan order (after it if reverse)."""
    block = _fill_block(rest, axis, fill)
    return _concatenate([rest, block] if reverse else [block, rest], axis)


def _rest(x: Any, axis: int, reverse: bool) -> Any:
    """``x`` without its first element in scan order."""
    n = x.shape[axis]
    return _slice(x, 0, n - 1, axis) if reverse else _slice(x, 1, n, axis)


def _all_but_last(x: Any, axis: int, reverse: bool) -> Any:
    """``x`` without its last element in scan order."""
    n = x.shape[axis]
    return _slice(x, 1, n, axis) if reverse else _slice(x, 0, n - 1, axis)


def shift(x: Any, axis: int, fill: Any, reverse: bool = False) -> Any:
    """Shift by one along ``axis`` in scan order: ``out[i] = x[i-1]`` (``x[i+1]`` when
    ``reverse``), with ``fill`` at the first position (one slice and one concatenate)."""
    if x.shape[axis] == 0:
        return x
    return _prepend(fill, _all_but_last(x, axis, reverse), axis, reverse)


def _linear_scan(r: Any, b: Any, axis: int, reverse: bool) -> Any:
    """Solve ``y_i = r_i * y_{i-1} + b_i`` (nothing before the first element) along
    ``axis``, in scan order, by composing the affine maps ``y -> r*y + b`` in
    ``ceil(log2 n)`` doubling steps. ``r`` of the first element is never used."""
    n = b.shape[axis]
    k = 1
    while k < n:
        # Element i (in scan order) absorbs the segment that ends k elements before it.
        prev, cur = ((k, n), (0, n - k)) if reverse else ((0, n - k), (k, n))
        untouched = (n - k, n) if reverse else (0, k)

        def step(new, old):
            kept = _slice(old, *untouched, axis)
            return _concatenate([new, kept] if reverse else [kept, new], axis)

        r_cur = _slice(r, *cur, axis)
        new_b = lax.add(lax.mul(_slice(b, *prev, axis), r_cur), _slice(b, *cur, axis))
        if 2 * k < n:  # the last step needs no r
            r = step(lax.mul(_slice(r, *prev, axis), r_cur), r)
        b = step(new_b, b)
        k *= 2
    return b


# ----------------------------------------------------------------------------------------
# The family


def _axis(operand: Any, axis: int) -> int:
    """The public functions accept a negative ``axis``; the primitives' is non-negative."""
    axis, ndim = int(axis), get_aval(operand).ndim
    return axis + ndim if -ndim <= axis < 0 else axis


def _cumulative(name: str, np_fn, kinds: str) -> Primitive:
    """A cumulative primitive: abstract eval, impl (dtype kept, fresh), batching."""
    prim = Primitive(name)

    @prim.def_abstract_eval
    def abstract_eval(x, *, axis, reverse):
        check_dtype(name, x, kinds)
        if not 0 <= axis < x.ndim:
            raise ValueError(
                f"{name}: axis {axis} is out of range for {x.str_short()}; give an axis in "
                f"[0, {x.ndim}) (a 0-d operand has none: reshape it to 1-d first)"
            )
        return ShapedArray(x.shape, x.dtype)

    @prim.def_impl
    def impl(x, *, axis, reverse):
        x = np.asarray(x)
        if not 0 <= axis < x.ndim:  # NumPy accepts some of these (axis 0 of a 0-d array)
            abstract_eval(ShapedArray(x.shape, x.dtype), axis=axis, reverse=reverse)
        if reverse:
            x = np.flip(x, axis)
        out = np.asarray(np_fn(x, axis), dtype=x.dtype)
        if reverse:
            out = np.flip(out, axis)
        return np.array(out)

    def batch(args, dims, *, axis, reverse):
        (x,), (d,) = args, dims
        return prim.bind(x, axis=axis + (axis >= d), reverse=reverse), d

    batching.primitive_batchers[prim] = batch
    return prim


# -- cumsum
cumsum_p = _cumulative("cumsum", lambda x, axis: np.cumsum(x, axis=axis, dtype=x.dtype), NUMBER)


def cumsum(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """Cumulative sum along ``axis`` (from the end when ``reverse``); the dtype is kept."""
    return cumsum_p.bind(operand, axis=_axis(operand, axis), reverse=bool(reverse))


ad.deflinear(cumsum_p, lambda ct, x, *, axis, reverse: [cumsum(ct, axis=axis, reverse=not reverse)])

# -- cumprod
cumprod_p = _cumulative("cumprod", lambda x, axis: np.cumprod(x, axis=axis, dtype=x.dtype), NUMBER)


def cumprod(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """Cumulative product along ``axis`` (from the end when ``reverse``)."""
    return cumprod_p.bind(operand, axis=_axis(operand, axis), reverse=bool(reverse))


def _cumprod_jvp(primals, tangents, *, axis, reverse):
    (x,), (g,) = primals, tangents
    x, g = as_array(x), as_array(g)
    ans = cumprod(x, axis=axis, reverse=reverse)
    exclusive = shift(ans, axis, 1, reverse)
    return ans, _linear_scan(x, lax.mul(g, exclusive), axis, reverse)


ad.primitive_jvps[cumprod_p] = _cumprod_jvp


# -- cummax and cummin
def _cumchooser_jvp(prim: Primitive, compare: str):
    """jvp of cummax (``compare="gt"``) or cummin (``"lt"``)."""

    def jvp(primals, tangents, *, axis, reverse):
        (x,), (g,) = primals, tangents
        x, g = as_array(x), as_array(g)
        ans = prim.bind(x, axis=axis, reverse=reverse)
        if x.shape[axis] <= 1:
            return ans, g
        # Does element i set a new running extreme (vs. the one before it in scan order)?
        before = _all_but_last(ans, axis, reverse)
        new_extreme = getattr(lax, compare)(_rest(x, axis, reverse), before)
        new_extreme = _prepend(True, new_extreme, axis, reverse)
        zero, one = np.zeros((), g.dtype)[()], np.ones((), g.dtype)[()]
        r = lax.select_n(new_extreme, one, zero)  # keep the previous tangent?
        b = lax.select_n(new_extreme, zero, g)  # or take this one?
        return ans, _linear_scan(r, b, axis, reverse)

    return jvp


cummax_p = _cumulative("cummax", lambda x, axis: np.maximum.accumulate(x, axis=axis), ORDERED)


def cummax(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """Running maximum along ``axis`` (NaN propagates, as ``np.maximum.accumulate``)."""
    return cummax_p.bind(operand, axis=_axis(operand, axis), reverse=bool(reverse))


cummin_p = _cumulative("cummin", lambda x, axis: np.minimum.accumulate(x, axis=axis), ORDERED)


def cummin(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """Running minimum along ``axis`` (NaN propagates, as ``np.minimum.accumulate``)."""
    return cummin_p.bind(operand, axis=_axis(operand, axis), reverse=bool(reverse))


ad.primitive_jvps[cummax_p] = _cumchooser_jvp(cummax_p, "gt")
ad.primitive_jvps[cummin_p] = _cumchooser_jvp(cummin_p, "lt")

# -- cumlogsumexp
cumlogsumexp_p = _cumulative(
    "cumlogsumexp", lambda x, axis: np.logaddexp.accumulate(x, axis=axis), FLOAT
)


def cumlogsumexp(operand: Any, axis: int = 0, reverse: bool = False) -> Any:
    """``log(cumsum(exp(x)))`` along ``axis``, computed stably."""
    return cumlogsumexp_p.bind(operand, axis=_axis(operand, axis), reverse=bool(reverse))


def _cumlogsumexp_jvp(primals, tangents, *, axis, reverse):
    (x,), (g,) = primals, tangents
    x, g = as_array(x), as_array(g)
    ans = cumlogsumexp(x, axis=axis, reverse=reverse)
    b = lax.mul(g, lax.exp(lax.sub(x, ans)))
    if x.shape[axis] <= 1:
        return ans, b
    decay = lax.exp(lax.sub(_all_but_last(ans, axis, reverse), _rest(ans, axis, reverse)))
    r = _prepend(0, decay, axis, reverse)
    return ans, _linear_scan(r, b, axis, reverse)


ad.primitive_jvps[cumlogsumexp_p] = _cumlogsumexp_jvp
