"""``gradient``: NumPy's finite-difference derivative of sampled values.

Second-order central differences inside, first- or second-order one-sided differences at
the edges (``edge_order``), for uniform spacings (scalars) or sample coordinates (1-D
arrays, which may be uneven), exactly NumPy's formulas. Integers are computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.numpy import util
from funcgrad.numpy.shape import concatenate, reshape
from funcgrad.numpy.util import shape_of, to_operand


def _sl(nd: int, axis: int, start: Any, stop: Any) -> tuple:
    idx = [slice(None)] * nd
    idx[axis] = slice(start, stop)
    return tuple(idx)


def _along(v: Any, nd: int, axis: int) -> Any:
    """A 1-D ``v`` shaped to broadcast along ``axis`` of an ``nd``-D array."""

    shape = [1] * nd
    shape[axis] = -1
    return reshape(v, tuple(shape))


def _one_axis(f: Any, h: Any, axis: int, edge_order: int) -> Any:

    nd = len(shape_of(f))
    n = shape_of(f)[axis]
    if n < edge_order + 1:
        raise ValueError(
            f"fnp.gradient: shape of the array too small to calculate a numerical gradient "
            f"(axis {axis} has {n} samples; at least edge_order + 1 = {edge_order + 1} "
            "are required)"
        )

    def s(a: Any, b: Any) -> Any:
        return f[_sl(nd, axis, a, b)]

    if np.ndim(h) == 0 and not util.is_traced(h):
        dx = float(h)
        inner = (s(2, None) - s(None, -2)) / (2 * dx)
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / dx
            last = (s(-1, None) - s(-2, -1)) / dx
        else:
            first = (-1.5 * s(0, 1) + 2 * s(1, 2) - 0.5 * s(2, 3)) / dx
            last = (0.5 * s(-3, -2) - 2 * s(-2, -1) + 1.5 * s(-1, None)) / dx
        return concatenate([first, inner, last], axis=axis)
    x = to_operand(h, "fnp.gradient")
    if len(shape_of(x)) != 1 or shape_of(x)[0] != n:
        raise ValueError(
            f"fnp.gradient: coordinates {util.short(x)} must be 1-D with {n} entries (the "
            f"length of axis {axis}), or a scalar spacing"
        )
    dx = x[1:] - x[:-1]
    dx1, dx2 = dx[:-1], dx[1:]
    a = -dx2 / (dx1 * (dx1 + dx2))
    b = (dx2 - dx1) / (dx1 * dx2)
    c = dx1 / (dx2 * (dx1 + dx2))
    inner = (
        _along(a, nd, axis) * s(None, -2)
        + _along(b, nd, axis) * s(1, -1)
        + _along(c, nd, axis) * s(2, None)
    )
    if edge_order == 1:
        first = (s(1, 2) - s(0, 1)) / dx[0]
        last = (s(-1, None) - s(-2, -1)) / dx[-1]
    else:
        d1, d2 = dx[0], dx[1]
        a0 = -(2.0 * d1 + d2) / (d1 * (d1 + d2))
        b0 = (d1 + d2) / (d1 * d2)
        c0 = -d1 / (d2 * (d1 + d2))
        first = a0 * s(0, 1) + b0 * s(1, 2) + c0 * s(2, 3)
        d1, d2 = dx[-2], dx[-1]
        a1 = d2 / (d1 * (d1 + d2))
        b1 = -(d2 + d1) / (d1 * d2)
        c1 = (2.0 * d2 + d1) / (d2 * (d1 + d2))
        last = a1 * s(-3, -2) + b1 * s(-2, -1) + c1 * s(-1, None)
    return concatenate([first, inner, last], axis=axis)


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """The derivative of sampled ``f`` along each axis (a list for several axes)."""
    f = to_operand(f, "fnp.gradient")
    if util.dtype_of(f).kind not in "fc":
        f = util.convert(f, np.dtype(np.float64))
    nd = len(shape_of(f))
    axes = tuple(range(nd)) if axis is None else util.canonicalize_axes(axis, nd, "gradient")
    if edge_order not in (1, 2):
        raise ValueError(f"fnp.gradient: edge_order must be 1 or 2, got {edge_order!r}")
    if not varargs:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise TypeError(
            f"fnp.gradient: {len(varargs)} spacings given for {len(axes)} axes; give none, "
            "one scalar, or one per axis"
        )
    outs = [_one_axis(f, h, ax, edge_order) for h, ax in zip(spacing, axes, strict=True)]
    return outs[0] if len(outs) == 1 else outs
