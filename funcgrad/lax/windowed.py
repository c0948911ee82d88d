"""``reduce_window``: JAX's windowed reduction, composed from existing primitives.

It has no primitive of its own: it pads with ``init_value`` and folds ``computation`` over
one strided ``slice`` per window position, so its derivative and batching rules are those
of ``pad`` and ``slice``. Windows that tile the operand (the usual 2x2 pooling) are a
reshape and one ``reduce_max``/``reduce_sum``/``reduce_min`` instead (:func:`_tiled_reduce`),
which fuse into a few loops under ``jit``. Pooling (``funcgrad.nn.max_pool``/``avg_pool``)
is built on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad.core import get_aval
from funcgrad.lax.convolution import ints_arg, pads_arg
from funcgrad.lax.elementwise import add
from funcgrad.lax.elementwise import max as lax_max
from funcgrad.lax.elementwise import min as lax_min
from funcgrad.lax.reductions import reduce_max, reduce_min, reduce_sum
from funcgrad.lax.shape import broadcast_in_dim, pad, reshape
from funcgrad.lax.slicing import slice as lax_slice

__all__ = ["reduce_window"]


def _windows(
    x: Any,
    n_lead: int,
    window: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    out_sizes: tuple[int, ...],
) -> list[Any]:
    """One strided slice of ``x`` (spatial axes after ``n_lead`` leading axes, then any
    trailing axes) per window position, each of spatial shape ``out_sizes``."""
    shape = get_aval(x).shape
    nd = len(window)
    trail = shape[n_lead + nd :]
    out = []
    for pos in itertools.product(*(range(w) for w in window)):
        starts = [p * d for p, d in zip(pos, dilation, strict=True)]
        limits = [s + (o - 1) * st + 1 for s, o, st in zip(starts, out_sizes, strides, strict=True)]
        out.append(
            lax_slice(
                x,
                (0,) * n_lead + tuple(starts) + (0,) * len(trail),
                shape[:n_lead] + tuple(limits) + trail,
                (1,) * n_lead + strides + (1,) * len(trail),
            )
        )
    return out


def _out_sizes(name: str, padded: Sequence[int], window: Sequence[int], strides, what) -> tuple:
    sizes = []
    for p, w, s in zip(padded, window, strides, strict=True):
        if p < w:
            raise ValueError(
                f"{name}: the (padded, dilated) input has spatial size {tuple(padded)} but the "
                f"{what} spans {tuple(window)}; the window must fit: pad more or use a smaller "
                "window"
            )
        sizes.append((p - w) // s + 1)
    return tuple(sizes)


def reduce_window(
    operand: Any,
    init_value: Any,
    computation: Callable[[Any, Any], Any],
    window_dimensions: Sequence[int],
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    base_dilation: Sequence[int] | None = None,
    window_dilation: Sequence[int] | None = None,
) -> Any:
    """Reduce each window of ``operand`` with the binary ``computation`` (e.g. ``lax.add``,
    ``lax.max``), starting from ``init_value``, which also fills the padding. Windows span
    every axis of ``operand`` (use 1 for axes that are not pooled)."""
    name = "reduce_window"
    if isinstance(operand, list | tuple | dict):
        raise TypeError(f"{name}: one operand array only (pytrees of operands are not supported)")
    aval = get_aval(operand)
    nd = aval.ndim
    window = ints_arg(name, "window_dimensions", window_dimensions, nd)
    strides = ints_arg(name, "window_strides", window_strides, nd)
    base_dil = ints_arg(name, "base_dilation", base_dilation, nd)
    win_dil = ints_arg(name, "window_dilation", window_dilation, nd)
    init = np.asarray(init_value, aval.dtype)[()] if not hasattr(init_value, "aval") else init_value
    eff_window = tuple((k - 1) * d + 1 for k, d in zip(window, win_dil, strict=True))
    pads = pads_arg(name, padding, nd, aval.shape, eff_window, strides)
    tiled = (
        window == strides
        and all(p == (0, 0) for p in pads)
        and all(d == 1 for d in (*base_dil, *win_dil))
        and computation in _TILE_REDUCTIONS
        and aval.dtype.kind in "iuf"
        and not hasattr(init, "aval")
    )
    if tiled:
        return _tiled_reduce(operand, init, computation, window)
    config = tuple((lo, hi, d - 1) for (lo, hi), d in zip(pads, base_dil, strict=True))
    x = pad(operand, init, config) if any(c != (0, 0, 0) for c in config) else operand
    padded = get_aval(x).shape
    out_sizes = _out_sizes(name, padded, eff_window, strides, "window")
    acc = broadcast_in_dim(init, out_sizes, ())
    if math.prod(out_sizes) == 0:
        return acc
    for part in _windows(x, 0, window, strides, win_dil, out_sizes):
        acc = computation(acc, part)
    return acc


_TILE_REDUCTIONS = {lax_max: reduce_max, add: reduce_sum, lax_min: reduce_min}


def _identity(computation: Callable, dtype: np.dtype) -> Any:
    if computation is add:
        return dtype.type(0)
    big = np.inf if dtype.kind == "f" else np.iinfo(dtype).max
    return dtype.type(-big if computation is lax_max else big)


def _tiled_reduce(x: Any, init: Any, computation: Callable, window: tuple[int, ...]) -> Any:
    """Windows that tile the operand (strides = window, no padding or dilation, the usual
    2x2 pooling): drop the partial windows at the end, split each axis into (windows,
    window) with one reshape and reduce the window axes. Two or three equations instead of
    one strided slice and one ``computation`` per window position, so the forward and its
    gradient (the reduction's, ties sharing it equally as with the chained maxima) fuse
    into a few loops."""
    aval = get_aval(x)
    counts = tuple(n // k for n, k in zip(aval.shape, window, strict=True))
    whole = tuple(c * k for c, k in zip(counts, window, strict=True))
    if whole != aval.shape:
        x = lax_slice(x, (0,) * aval.ndim, whole)
    split = tuple(d for c, k in zip(counts, window, strict=True) for d in (c, k))
    out = _TILE_REDUCTIONS[computation](reshape(x, split), tuple(range(1, 2 * aval.ndim, 2)))
    if init == _identity(computation, aval.dtype):
        return out
    return computation(broadcast_in_dim(init, counts, ()), out)
