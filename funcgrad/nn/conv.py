"""Convolution and pooling for layers, on top of ``funcgrad.lax``.

- :func:`conv_general_dilated` (JAX's ``lax`` signature) is the ``conv_general_dilated``
  primitive of ``funcgrad/lax/convolution.py``, re-exported here with its helpers.
- :func:`reduce_window` is ``funcgrad.lax.reduce_window`` (``funcgrad/lax/windowed.py``),
  re-exported here: pooling is built on it.

The layer-level helpers :func:`conv2d`, :func:`max_pool` and :func:`avg_pool` take
channels-last inputs (``NHWC`` and ``HWIO`` kernels), as Flax and Keras do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
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
from funcgrad.lax.shape import broadcast_in_dim
from funcgrad.lax.windowed import reduce_window as reduce_window

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
