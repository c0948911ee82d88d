"""Convolution and pooling, composed from existing primitives (no primitive of their own).

- :func:`conv_general_dilated` (JAX's ``lax`` signature, also exported as
  ``funcgrad.lax.conv_general_dilated``) is an *im2col*: pad the input (``pad``, with
  interior padding for ``lhs_dilation``), take one strided ``slice`` per kernel position,
  ``concatenate`` them along the feature axis and contract the patches with the reshaped
  kernel in a single ``dot_general`` (a batched one for ``feature_group_count > 1``).
- :func:`reduce_window` (JAX's signature, exported as ``funcgrad.lax.reduce_window``) pads
  with ``init_value`` and folds ``computation`` over one strided slice per window position.

Every rule (jvp, transpose, vmap, numba lowering) therefore comes from ``pad``, ``slice``,
``concatenate`` and ``dot_general``: ``make_jaxpr`` shows those equations, not a ``conv``
one. The im2col holds ``prod(kernel_size)`` copies of the input, which is fine for the small
models this library is for. This module imports only ``funcgrad.lax`` family modules, so
``funcgrad.lax`` can re-export it without an import cycle.

The layer-level helpers :func:`conv2d`, :func:`max_pool` and :func:`avg_pool` take
channels-last inputs (``NHWC`` and ``HWIO`` kernels), as Flax and Keras do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from funcgrad.core import get_aval
from funcgrad.lax.elementwise import add, convert_element_type, div
from funcgrad.lax.elementwise import max as lax_max
from funcgrad.lax.linalg import dot_general
from funcgrad.lax.shape import broadcast_in_dim, concatenate, pad, reshape, transpose
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


class ConvDimensionNumbers(NamedTuple):
    """Where the batch/feature/spatial axes are: ``lhs_spec = (batch, feature, *spatial)``,
    ``rhs_spec = (out_feature, in_feature, *spatial)``, ``out_spec = (batch, feature,
    *spatial)``, each a tuple of axis indices (as in JAX)."""

    lhs_spec: tuple[int, ...]
    rhs_spec: tuple[int, ...]
    out_spec: tuple[int, ...]


def _spec_perm(spec: str, pair: tuple[str, str], rhs_spec: str) -> tuple[int, ...]:
    spatial = [i for i, c in enumerate(spec) if c not in pair]
    if spec is not rhs_spec:
        spatial = sorted(spatial, key=lambda i: rhs_spec.index(spec[i]))
    return (spec.index(pair[0]), spec.index(pair[1]), *spatial)


def conv_dimension_numbers(
    lhs_shape: Sequence[int], rhs_shape: Sequence[int], dimension_numbers: Any
) -> ConvDimensionNumbers:
    """Normalise ``dimension_numbers`` (``None`` = ``NCHW``/``OIHW``/``NCHW``, a triple of
    strings like ``("NHWC", "HWIO", "NHWC")``, or a :class:`ConvDimensionNumbers`)."""
    nd = len(lhs_shape)
    if len(rhs_shape) != nd:
        raise ValueError(
            f"conv_general_dilated: lhs and rhs must have the same rank, got {tuple(lhs_shape)} "
            f"and {tuple(rhs_shape)}"
        )
    if dimension_numbers is None:
        default = tuple(range(nd))
        return ConvDimensionNumbers(default, default, default)
    if isinstance(dimension_numbers, ConvDimensionNumbers):
        return dimension_numbers
    if len(dimension_numbers) != 3:
        raise TypeError(
            "conv_general_dilated: dimension_numbers must be None, a ConvDimensionNumbers or "
            f"three strings like ('NHWC', 'HWIO', 'NHWC'); got {dimension_numbers!r}"
        )
    if all(isinstance(s, str) for s in dimension_numbers):
        lhs, rhs, out = dimension_numbers
        pairs = (("N", "C"), ("O", "I"), ("N", "C"))
        for spec, pair in zip(dimension_numbers, pairs, strict=True):
            if len(spec) != nd or len(set(spec)) != nd or any(spec.count(c) != 1 for c in pair):
                raise ValueError(
                    f"conv_general_dilated: dimension spec {spec!r} must name each of {nd} axes "
                    f"once and contain {pair[0]!r} and {pair[1]!r}; got {dimension_numbers!r}"
                )
        if not set(lhs) - {"N", "C"} == set(rhs) - {"O", "I"} == set(out) - {"N", "C"}:
            raise ValueError(
                "conv_general_dilated: the spatial letters of the lhs, rhs and out specs must "
                f"agree; got {dimension_numbers!r}"
            )
        perms = [_spec_perm(s, p, rhs) for s, p in zip(dimension_numbers, pairs, strict=True)]
        return ConvDimensionNumbers(*perms)
    return ConvDimensionNumbers(*(tuple(int(i) for i in s) for s in dimension_numbers))


def padtype_to_pads(
    in_shape: Sequence[int],
    window_shape: Sequence[int],
    window_strides: Sequence[int],
    padding: str,
) -> list[tuple[int, int]]:
    """Explicit ``(low, high)`` pads for ``"VALID"``, ``"SAME"`` or ``"SAME_LOWER"``
    (``SAME``: output size ``ceil(in / stride)``, the odd pad element goes high)."""
    kind = padding.upper()
    if kind == "VALID":
        return [(0, 0)] * len(in_shape)
    if kind not in ("SAME", "SAME_LOWER"):
        raise ValueError(f"padding must be 'VALID', 'SAME' or 'SAME_LOWER', got {padding!r}")
    pads = []
    for n, w, s in zip(in_shape, window_shape, window_strides, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + w - n, 0)
        lo = total // 2 if kind == "SAME" else total - total // 2
        pads.append((int(lo), int(total - lo)))
    return pads


def _ints(name: str, what: str, value: Any, n: int, default: int = 1) -> tuple[int, ...]:
    if value is None:
        return (default,) * n
    if isinstance(value, int | np.integer):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name}: {what} needs {n} entries (one per spatial axis), got {value}")
    if any(v < 1 for v in value):
        raise ValueError(f"{name}: {what} must be >= 1, got {value}")
    return value


def _pads(name: str, padding: Any, n: int, in_shape, window_shape, strides) -> list:
    if isinstance(padding, str):
        return padtype_to_pads(in_shape, window_shape, strides, padding)
    if isinstance(padding, int | np.integer):
        return [(int(padding), int(padding))] * n
    pads = [
        (int(p), int(p)) if isinstance(p, int | np.integer) else tuple(map(int, p)) for p in padding
    ]
    if len(pads) != n or any(len(p) != 2 for p in pads):
        raise ValueError(
            f"{name}: padding must be 'VALID', 'SAME' or {n} (low, high) pairs, got {padding!r}"
        )
    return pads


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


def conv_general_dilated(
    lhs: Any,
    rhs: Any,
    window_strides: Sequence[int],
    padding: Padding,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Any:
    """General n-d convolution (cross-correlation, as in JAX).

    ``lhs`` is ``(N, C, *spatial)`` and ``rhs`` ``(O, I, *window)`` unless
    ``dimension_numbers`` says otherwise (e.g. ``("NHWC", "HWIO", "NHWC")``); ``padding`` is
    ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or ``(low, high)`` pairs; ``lhs_dilation`` is a
    transposed convolution's input dilation, ``rhs_dilation`` an atrous kernel's;
    ``feature_group_count`` splits the features into groups (``I = C / groups``).
    ``batch_group_count`` other than 1 is not supported.
    """
    name = "conv_general_dilated"
    la, ra = get_aval(lhs), get_aval(rhs)
    if la.ndim < 3:
        raise ValueError(
            f"{name}: lhs must have rank >= 3 (batch, feature, spatial...), got {la.str_short()}"
        )
    if la.dtype != ra.dtype:
        raise TypeError(
            f"{name}: lhs {la.str_short()} and rhs {ra.str_short()} must have one dtype; cast one "
            "with .astype"
        )
    if batch_group_count != 1:
        raise NotImplementedError(f"{name}: batch_group_count={batch_group_count} (only 1)")
    dn = conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    nd = la.ndim - 2
    strides = _ints(name, "window_strides", window_strides, nd)
    lhs_dil = _ints(name, "lhs_dilation", lhs_dilation, nd)
    rhs_dil = _ints(name, "rhs_dilation", rhs_dilation, nd)
    # Channels last: x (N, *S, C), w (*K, I, O).
    x = transpose(lhs, (dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1]))
    w = transpose(rhs, (*dn.rhs_spec[2:], dn.rhs_spec[1], dn.rhs_spec[0]))
    xs, ws = get_aval(x).shape, get_aval(w).shape
    n, spatial, c = xs[0], xs[1:-1], xs[-1]
    window, i_feat, o_feat = ws[:-2], ws[-2], ws[-1]
    g = int(feature_group_count)
    if g < 1 or c != i_feat * g or o_feat % g:
        raise ValueError(
            f"{name}: lhs {la.str_short()} has {c} features and rhs {ra.str_short()} takes "
            f"{i_feat} input and {o_feat} output features with feature_group_count={g}; need "
            "input features == rhs input features * feature_group_count and output features "
            "divisible by feature_group_count"
        )
    eff_window = tuple((k - 1) * d + 1 for k, d in zip(window, rhs_dil, strict=True))
    pads = _pads(name, padding, nd, spatial, eff_window, strides)
    config = (
        (0, 0, 0),
        *((lo, hi, d - 1) for (lo, hi), d in zip(pads, lhs_dil, strict=True)),
        (0, 0, 0),
    )
    x = pad(x, np.zeros((), la.dtype)[()], config)
    padded = get_aval(x).shape[1:-1]
    out_sizes = _out_sizes(name, padded, eff_window, strides, "dilated kernel")
    out_dtype = la.dtype if preferred_element_type is None else np.dtype(preferred_element_type)
    k = math.prod(window)
    if min((n, *out_sizes, o_feat, k * i_feat), default=1) == 0:
        zero = np.zeros((), out_dtype)[()]
        y = broadcast_in_dim(zero, (n, *out_sizes, o_feat), ())
    else:
        cols = _windows(x, 1, window, strides, rhs_dil, out_sizes)
        patches = concatenate(cols, nd + 1) if len(cols) > 1 else cols[0]  # (N, *O, K*C)
        if g == 1:
            y = dot_general(
                patches,
                reshape(w, (k * i_feat, o_feat)),
                (((nd + 1,), (0,)), ((), ())),
                preferred_element_type=preferred_element_type,
            )
        else:
            og = o_feat // g
            patches = reshape(patches, (n, *out_sizes, k, g, i_feat))
            wg = reshape(w, (k, i_feat, g, og))
            y = dot_general(
                patches,
                wg,
                (((nd + 1, nd + 3), (0, 1)), ((nd + 2,), (2,))),
                preferred_element_type=preferred_element_type,
            )  # (G, N, *O, Og)
            y = transpose(y, (*range(1, nd + 2), 0, nd + 2))
            y = reshape(y, (n, *out_sizes, o_feat))
    # y is (N, *spatial, O); lay it out as out_spec says.
    perm = [0] * (nd + 2)
    perm[dn.out_spec[0]] = 0
    perm[dn.out_spec[1]] = nd + 1
    for i, axis in enumerate(dn.out_spec[2:]):
        perm[axis] = 1 + i
    return transpose(y, tuple(perm)) if perm != list(range(nd + 2)) else y


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
