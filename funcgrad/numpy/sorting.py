"""Sorting and searching: sort, argsort, partition, argpartition, searchsorted, unique.

Decisions: sorts are stable and put NaN last (NumPy's order), via the ``sort`` primitive;
``argsort`` sorts ``(x, iota)`` and returns int64 indices; ``descending=True`` keeps equal
elements in their original order (as the array API). ``searchsorted`` compares every value
with every element (``O(len(a) * v.size)`` work, no data-dependent control flow), with NaN
ordered last. ``unique`` needs a concrete argument (its length depends on the values).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.numpy import util
from funcgrad.numpy.util import shape_of, to_operand

_I64 = np.dtype(np.int64)


def _sort_args(a: Any, axis: Any, name: str) -> tuple[Any, int]:
    a = to_operand(a, f"fnp.{name}")
    if axis is None:
        return fnp.ravel(a), 0
    return a, util.canonicalize_axis(axis, len(shape_of(a)), name)


def sort(
    a: Any,
    axis: Any = -1,
    kind: Any = None,
    order: Any = None,
    *,
    stable: bool = True,
    descending: bool = False,
) -> Any:
    """A sorted copy of ``a`` along ``axis`` (flattened when None); NaN last."""
    a, ax = _sort_args(a, axis, "sort")
    if order is not None:
        raise NotImplementedError("fnp.sort: order= (structured arrays) is not supported")
    out = lax.sort(a, dimension=ax, is_stable=True)
    return lax.rev(out, (ax,)) if descending else out


def argsort(
    a: Any,
    axis: Any = -1,
    kind: Any = None,
    order: Any = None,
    *,
    stable: bool = True,
    descending: bool = False,
) -> Any:
    """Indices that sort ``a`` along ``axis`` (stable; int64)."""
    a, ax = _sort_args(a, axis, "argsort")
    if order is not None:
        raise NotImplementedError("fnp.argsort: order= (structured arrays) is not supported")
    if not descending:
        return lax.argsort(a, dimension=ax, is_stable=True, index_dtype=_I64)
    n = shape_of(a)[ax]
    idx = lax.argsort(lax.rev(a, (ax,)), dimension=ax, is_stable=True, index_dtype=_I64)
    return lax.rev(lax.sub(np.int64(n - 1), idx), (ax,))


def _less(x: Any, y: Any, strict: bool) -> Any:
    """``x < y`` (or ``<=``) with NaN ordered after every number."""
    cmp = lax.lt if strict else lax.le
    out = cmp(x, y)
    if util.dtype_of(x).kind == "f":
        x_nan, y_nan = lax.ne(x, x), lax.ne(y, y)
        no_nan_x = lax.bitwise_not(x_nan)
        out = lax.bitwise_or(out, lax.bitwise_and(y_nan, no_nan_x))
        if not strict:
            out = lax.bitwise_or(out, lax.bitwise_and(x_nan, y_nan))
    return out


def searchsorted(
    a: Any, v: Any, side: str = "left", sorter: Any = None, *, method: Any = None
) -> Any:
    """Indices where ``v`` would be inserted into sorted 1-d ``a`` to keep it sorted."""
    if side not in ("left", "right"):
        raise ValueError(f"fnp.searchsorted: side must be 'left' or 'right', got {side!r}")
    a, v = util.promote_args("fnp.searchsorted", a, v)
    if len(shape_of(a)) != 1:
        raise ValueError(f"fnp.searchsorted: a must be 1-d, got {util.short(a)}")
    if sorter is not None:
        a = fnp.take(a, sorter)
    vs = tuple(shape_of(v))
    n = shape_of(a)[0]
    av = lax.broadcast_in_dim(a, vs + (n,), (len(vs),))
    vv = lax.broadcast_in_dim(v, vs + (n,), tuple(range(len(vs))))
    below = _less(av, vv, strict=(side == "left"))
    return lax.reduce_sum(util.convert(below, _I64), (len(vs),))


def unique(
    ar: Any,
    return_index: bool = False,
    return_inverse: bool = False,
    return_counts: bool = False,
    axis: Any = None,
    *,
    equal_nan: bool = True,
) -> Any:
    """The sorted unique elements (``ar`` must be concrete: the length depends on it)."""
    if isinstance(ar, Tracer):
        ar = util.concrete(
            ar,
            "unique",
            "the argument",
            "the number of unique elements would be a dynamic shape; compute it outside the "
            "transformation",
        )
    out = np.unique(
        np.asarray(ar),
        return_index=return_index,
        return_inverse=return_inverse,
        return_counts=return_counts,
        axis=axis,
        equal_nan=equal_nan,
    )
    return out


def interp(
    x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None
) -> Any:
    """Piecewise-linear interpolation of ``(xp, fp)`` (increasing ``xp``) at ``x``."""
    if period is not None:
        raise NotImplementedError("fnp.interp: period= is not supported")
    xp = util.convert(to_operand(xp, "fnp.interp"), np.dtype(np.float64))
    fp = util.convert(to_operand(fp, "fnp.interp"), np.dtype(np.float64))
    x = util.convert(to_operand(x, "fnp.interp"), np.dtype(np.float64))
    if len(shape_of(xp)) != 1 or shape_of(xp) != shape_of(fp) or shape_of(xp)[0] == 0:
        raise ValueError(
            f"fnp.interp: xp and fp must be 1-d of one non-zero length, got {util.short(xp)} "
            f"and {util.short(fp)}"
        )
    n = shape_of(xp)[0]
    if n == 1:
        y = lax.broadcast_to(fnp.indexing.getitem(fp, 0), tuple(shape_of(x)))
    else:
        i = searchsorted(xp, x, side="right")
        i = lax.clamp(np.int64(1), i, np.int64(n - 1))
        prev = lax.sub(i, np.int64(1))
        x0, x1 = fnp.indexing.getitem(xp, prev), fnp.indexing.getitem(xp, i)
        y0, y1 = fnp.indexing.getitem(fp, prev), fnp.indexing.getitem(fp, i)
        slope = lax.div(lax.sub(y1, y0), lax.sub(x1, x0))
        y = lax.add(lax.mul(slope, lax.sub(x, x0)), y0)
        y = lax.select(lax.eq(x, x1), y1, y)
    lo = (
        fnp.indexing.getitem(fp, 0)
        if left is None
        else util.convert(to_operand(left), np.dtype(np.float64))
    )
    hi = (
        fnp.indexing.getitem(fp, -1)
        if right is None
        else util.convert(to_operand(right), np.dtype(np.float64))
    )
    y = lax.select(lax.lt(x, fnp.indexing.getitem(xp, 0)), lo, y)
    return lax.select(lax.gt(x, fnp.indexing.getitem(xp, -1)), hi, y)


def _check_kth(kth: Any, n: int, name: str) -> None:
    for k in np.atleast_1d(np.asarray(kth)):
        if not isinstance(k.item(), int) or not -n <= int(k) < n:
            raise ValueError(
                f"fnp.{name}: kth={kth!r} out of bounds for an axis of length {n}; give "
                f"integers in [{-n}, {n})"
            )


def partition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None):
    """``a`` with the element at each ``kth`` position where sorting would put it, smaller
    ones before and larger after. The result is fully sorted along ``axis`` (one valid
    partition; NumPy's order within the parts is unspecified, and may differ)."""
    a, ax = _sort_args(a, axis, "partition")
    _check_kth(kth, shape_of(a)[ax], "partition")
    return sort(a, axis=ax, order=order)


def argpartition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None):
    """Indices that partition ``a`` (see :func:`partition`: the indices that sort it)."""
    a, ax = _sort_args(a, axis, "argpartition")
    _check_kth(kth, shape_of(a)[ax], "argpartition")
    return argsort(a, axis=ax, order=order)
