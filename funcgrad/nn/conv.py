"""Convolution and pooling for layers; pooling composed from existing primitives.

- :func:`conv_general_dilated` (JAX's ``lax`` signature, also exported as
  ``funcgrad.lax.conv_general_dilated``) is the ``conv_general_dilated`` primitive of
  ``funcgrad/lax/convolution.py`` (re-exported here with its helpers): its jvp and transposes
  are convolutions again and the numba backend lowers it to one loop nest.
- :func:`reduce_window` (JAX's signature, exported as ``funcgrad.lax.reduce_window``) has no
  primitive: it pads with ``init_value`` and folds ``computation`` over one strided
  ``slice`` per window position, so its rules come from ``pad`` and ``slice``; windows that
  tile the operand (the usual 2x2 pooling) are a reshape and one ``reduce_max``/
  ``reduce_sum``/``reduce_min`` instead (:func:`_tiled_reduce`). This module
  imports only ``funcgrad.lax`` family modules, so ``funcgrad.lax`` can re-export it without
  an import cycle.

The layer-level helpers :func:`conv2d`, :func:`max_pool` and :func:`avg_pool` take
channels-last inputs (``NHWC`` and ``HWIO`` kernels), as Flax and Keras do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad.core import get_aval
from funcgrad.lax.convolution import ConvDimensionNumbers as ConvDimensionNumbers
from funcgrad.lax.convolution import conv_dimension_numbers as conv_dimension_numbers
from funcgrad.lax.convolution import conv_general_dilated as conv_general_dilated
from funcgrad.lax.convolution import ints_arg as _ints
from funcgrad.lax.convolution import pads_arg as _pads
from funcgrad.lax.convolution import padtype_to_pads as padtype_to_pads
from funcgrad.lax.elementwise import add, convert_element_type, div
from funcgrad.lax.elementwise import max as lax_max
from funcgrad.lax.elementwise import min as lax_min
from funcgrad.lax.reductions import reduce_max, reduce_min, reduce_sum
from funcgrad.lax.shape import broadcast_in_dim, pad, reshape
from funcgrad.lax.slicing import slice as lax_slice

__all__ = [
    "ConvDimensionNumbers",
    "avg_pool",
    "conv2d",
    "conv_dimension_numbers",
    "conv_general_dilated",
    "max_pool",
    "padtype_to_pads",
    "reduce_window",
]

Padding = str | int | Sequence[tuple[int, int]] | Sequence[int]


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
    window = _ints(name, "window_dimensions", window_dimensions, nd)
    strides = _ints(name, "window_strides", window_strides, nd)
    base_dil = _ints(name, "base_dilation", base_dilation, nd)
    win_dil = _ints(name, "window_dilation", window_dilation, nd)
    init = np.asarray(init_value, aval.dtype)[()] if not hasattr(init_value, "aval") else init_value
    eff_window = tuple((k - 1) * d + 1 for k, d in zip(window, win_dil, strict=True))
    pads = _pads(name, padding, nd, aval.shape, eff_window, strides)
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


# ----------------------------------------------------------------------------------------
# Channels-last helpers for layers


def conv2d(
    inputs: Any,
    kernel: Any,
    strides: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    kernel_dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
) -> Any:
    """2-d convolution of ``NHWC`` ``inputs`` with an ``HWIO`` ``kernel`` (the operands are
    promoted to one dtype). ``padding``: ``"VALID"``, ``"SAME"``, an int or (low, high)
    pairs."""
    xa, ka = get_aval(inputs), get_aval(kernel)
    if xa.ndim != 4 or ka.ndim != 4:
        raise ValueError(
            f"conv2d: inputs must be NHWC (rank 4) and kernel HWIO (rank 4), got "
            f"{xa.str_short()} and {ka.str_short()}; add a batch axis with x[None] if needed"
        )
    dtype = np.result_type(xa.dtype, ka.dtype)
    if xa.dtype != dtype:
        inputs = convert_element_type(inputs, dtype)
    if ka.dtype != dtype:
        kernel = convert_element_type(kernel, dtype)
    return conv_general_dilated(
        inputs,
        kernel,
        _ints("conv2d", "strides", strides, 2),
        padding,
        rhs_dilation=_ints("conv2d", "kernel_dilation", kernel_dilation, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=feature_group_count,
    )


def _pool_dims(name: str, inputs: Any, window_shape, strides) -> tuple:
    aval = get_aval(inputs)
    nd = 2 if isinstance(window_shape, int | np.integer) else len(tuple(window_shape))
    window = _ints(name, "window_shape", window_shape, nd)
    if aval.ndim < nd + 1:
        raise ValueError(
            f"{name}: inputs {aval.str_short()} need (batch..., {nd} spatial axes, features) "
            f"for a window of {nd} axes"
        )
    strides = window if strides is None else _ints(name, "strides", strides, nd)
    lead = aval.ndim - nd - 1
    return aval, window, strides, lead


def max_pool(
    inputs: Any,
    window_shape: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Any:
    """Max over windows of the spatial axes of channels-last ``inputs``
    (``(batch..., *spatial, features)``); ``strides`` default to the window (as Keras).
    ``"SAME"`` padding never wins the max (it is ``-inf``)."""
    aval, window, strides, lead = _pool_dims("max_pool", inputs, window_shape, strides)
    if aval.dtype.kind == "f":
        init = np.array(-np.inf, aval.dtype)[()]
    elif aval.dtype.kind == "b":
        init = np.False_
    else:
        init = np.array(np.iinfo(aval.dtype).min, aval.dtype)[()]
    pads = _pads("max_pool", padding, len(window), aval.shape[lead:-1], window, strides)
    return reduce_window(
        inputs,
        init,
        lax_max,
        (1,) * lead + window + (1,),
        (1,) * lead + strides + (1,),
        [(0, 0)] * lead + pads + [(0, 0)],
    )


def avg_pool(
    inputs: Any,
    window_shape: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> Any:
    """Mean over windows of the spatial axes of channels-last ``inputs``; with padding,
    ``count_include_pad`` (the default, as Flax) divides by the full window size, otherwise
    by the number of real (unpadded) entries."""
    aval, window, strides, lead = _pool_dims("avg_pool", inputs, window_shape, strides)
    if aval.dtype.kind != "f":
        raise TypeError(f"avg_pool: needs float inputs, got {aval.str_short()}; use .astype")
    pads = _pads("avg_pool", padding, len(window), aval.shape[lead:-1], window, strides)
    zero = np.zeros((), aval.dtype)[()]
    total = reduce_window(
        inputs,
        zero,
        add,
        (1,) * lead + window + (1,),
        (1,) * lead + strides + (1,),
        [(0, 0)] * lead + pads + [(0, 0)],
    )
    if count_include_pad or all(p == (0, 0) for p in pads):
        return div(total, np.array(math.prod(window), aval.dtype)[()])
    counts = _window_counts(aval.shape[lead:-1], window, strides, pads).astype(aval.dtype)
    counts = counts.reshape((1,) * lead + counts.shape + (1,))
    return div(total, broadcast_in_dim(counts, get_aval(total).shape, tuple(range(aval.ndim))))


def _window_counts(spatial, window, strides, pads) -> np.ndarray:
    """How many unpadded entries each window covers (NumPy: shapes are static)."""
    ones = np.pad(np.ones(spatial, np.int64), pads)
    out = None
    for pos in itertools.product(*(range(w) for w in window)):
        sl = tuple(
            slice(p, p + (((ones.shape[i] - w) // s) * s) + 1, s)
            for i, (p, w, s) in enumerate(zip(pos, window, strides, strict=True))
        )
        out = ones[sl] if out is None else out + ones[sl]
    return out
