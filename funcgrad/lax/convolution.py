"""Convolution: the ``conv_general_dilated`` primitive (JAX's ``lax.conv_general_dilated``).

Why a primitive: composed from ``pad``/``slice``/``concatenate``/``dot_general`` (an
im2col), a convolution and its two transposes become dozens of equations each, and a small
CNN's jitted train step lowered to ~800 lines of numba source. As one primitive, its jvp and
both transposes are again ``conv_general_dilated`` (as in JAX), and the numba backend lowers
each to one compact loop nest (``funcgrad/backend/numba/opaque_rules.py``).

Params (hashable, JAX's names): ``window_strides``, ``padding`` (``(lo, hi)`` per spatial
axis; negative values crop), ``lhs_dilation``, ``rhs_dilation``, ``dimension_numbers`` (a
:class:`ConvDimensionNumbers` of axis permutations), ``feature_group_count``,
``batch_group_count`` (only 1) and ``preferred_element_type``. The public function accepts
JAX's forms (``"SAME"``/``"VALID"`` padding, ``("NHWC", "HWIO", "NHWC")`` specs) and
normalises them.

Rules:

- impl: NumPy. Channels-last views of both operands, the input dilated (a zero array with
  the input in every ``lhs_dilation``-th place) and padded, then
  ``sliding_window_view`` (subsampled by strides and ``rhs_dilation``) contracted with the
  kernel by ``tensordot`` (``einsum`` per group for feature groups).
- jvp: bilinear, ``conv(dlhs, rhs) + conv(lhs, drhs)``.
- transpose in lhs: the cotangent convolved with the kernel flipped in space and with its
  in/out feature axes swapped (for feature groups, the groups moved from the out- to the
  in-feature axis). The forward strides become lhs dilation (each cotangent element goes
  back to the input position its window started at), the forward lhs dilation becomes the
  stride, and the padding is ``dilated kernel - 1 - lo`` before, whatever makes the result
  the input's size after.
- transpose in rhs: the input convolved with the cotangent used as the kernel, batch and
  feature roles swapped (the input's batch axis is contracted as its feature axis, the
  cotangent's batch axis is its in-feature axis); forward strides become ``rhs_dilation``
  and forward ``rhs_dilation`` becomes the stride, so each output element is one kernel
  tap. For feature groups, one such convolution per group, concatenated.
- batch: one batched primitive. A batched lhs is folded into the batch axis; a batched rhs
  into the output features (inside each feature group); both batched: the batch goes into
  the features of both and becomes extra feature groups. The output is split back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import NUMBER, as_dtype, check_dtype
from funcgrad.lax.shape import concatenate, reshape, rev, transpose
from funcgrad.lax.slicing import slice_in_dim

__all__ = [
    "ConvDimensionNumbers",
    "conv_dimension_numbers",
    "conv_general_dilated",
    "conv_general_dilated_p",
    "padtype_to_pads",
]

_NAME = "conv_general_dilated"


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
            f"{_NAME}: lhs and rhs must have the same rank, got {tuple(lhs_shape)} "
            f"and {tuple(rhs_shape)}"
        )
    if dimension_numbers is None:
        default = tuple(range(nd))
        return ConvDimensionNumbers(default, default, default)
    if len(dimension_numbers) != 3:
        raise TypeError(
            f"{_NAME}: dimension_numbers must be None, a ConvDimensionNumbers or "
            f"three strings like ('NHWC', 'HWIO', 'NHWC'); got {dimension_numbers!r}"
        )
    if all(isinstance(s, str) for s in dimension_numbers):
        lhs, rhs, out = dimension_numbers
        pairs = (("N", "C"), ("O", "I"), ("N", "C"))
        for spec, pair in zip(dimension_numbers, pairs, strict=True):
            if len(spec) != nd or len(set(spec)) != nd or any(spec.count(c) != 1 for c in pair):
                raise ValueError(
                    f"{_NAME}: dimension spec {spec!r} must name each of {nd} axes "
                    f"once and contain {pair[0]!r} and {pair[1]!r}; got {dimension_numbers!r}"
                )
        if not set(lhs) - {"N", "C"} == set(rhs) - {"O", "I"} == set(out) - {"N", "C"}:
            raise ValueError(
                f"{_NAME}: the spatial letters of the lhs, rhs and out specs must "
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


def ints_arg(name: str, what: str, value: Any, n: int, default: int = 1) -> tuple[int, ...]:
    """``value`` (None, an int or ``n`` ints, each >= 1) as a tuple of ``n`` ints."""
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


def pads_arg(name: str, padding: Any, n: int, in_shape, window_shape, strides) -> list:
    """``padding`` (a string, an int, ints or ``(lo, hi)`` pairs) as ``n`` int pairs."""
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


def _dilate(n: int, d: int) -> int:
    return 0 if n == 0 else (n - 1) * d + 1


# -- conv_general_dilated
conv_general_dilated_p = Primitive("conv_general_dilated")


def conv_general_dilated(
    lhs: Any,
    rhs: Any,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
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
    ``batch_group_count`` other than 1 is not supported; ``precision`` is ignored.
    """
    del precision
    la, ra = get_aval(lhs), get_aval(rhs)
    if la.ndim < 3:
        raise ValueError(
            f"{_NAME}: lhs must have rank >= 3 (batch, feature, spatial...), got {la.str_short()}"
        )
    if batch_group_count != 1:
        raise NotImplementedError(f"{_NAME}: batch_group_count={batch_group_count} (only 1)")
    dn = conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    nd = la.ndim - 2
    strides = ints_arg(_NAME, "window_strides", window_strides, nd)
    lhs_dil = ints_arg(_NAME, "lhs_dilation", lhs_dilation, nd)
    rhs_dil = ints_arg(_NAME, "rhs_dilation", rhs_dilation, nd)
    if isinstance(padding, str):
        spatial = [la.shape[d] for d in dn.lhs_spec[2:]]
        window = [_dilate(ra.shape[d], r) for d, r in zip(dn.rhs_spec[2:], rhs_dil, strict=True)]
        pads = padtype_to_pads(spatial, window, strides, padding)
    else:
        pads = pads_arg(_NAME, padding, nd, None, None, None)
    pet = None if preferred_element_type is None else as_dtype(preferred_element_type)
    return conv_general_dilated_p.bind(
        lhs,
        rhs,
        window_strides=strides,
        padding=tuple(pads),
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil,
        dimension_numbers=dn,
        feature_group_count=int(feature_group_count),
        batch_group_count=1,
        preferred_element_type=pet,
    )


def _is_perm(spec: Any, n: int) -> bool:
    return sorted(spec) == list(range(n))


@conv_general_dilated_p.def_abstract_eval
def _conv_abstract_eval(
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
):
    check_dtype(_NAME, lhs, NUMBER)
    check_dtype(_NAME, rhs, NUMBER)
    if preferred_element_type is None and lhs.dtype != rhs.dtype:
        raise TypeError(
            f"{_NAME}: lhs {lhs.str_short()} and rhs {rhs.str_short()} must have one dtype; "
            "cast one with .astype (or pass preferred_element_type)"
        )
    if batch_group_count != 1:
        raise NotImplementedError(f"{_NAME}: batch_group_count={batch_group_count} (only 1)")
    if lhs.ndim < 3 or rhs.ndim != lhs.ndim:
        raise ValueError(
            f"{_NAME}: lhs and rhs must have one rank >= 3 (batch, feature, spatial...), got "
            f"lhs {lhs.str_short()} and rhs {rhs.str_short()}"
        )
    n = lhs.ndim
    nd = n - 2
    dn = dimension_numbers
    if not all(_is_perm(s, n) for s in dn):
        raise ValueError(
            f"{_NAME}: dimension_numbers {dn} must hold three permutations of range({n}) for "
            f"lhs {lhs.str_short()} and rhs {rhs.str_short()}"
        )
    for what, v in (
        ("window_strides", window_strides),
        ("lhs_dilation", lhs_dilation),
        ("rhs_dilation", rhs_dilation),
        ("padding", padding),
    ):
        if len(v) != nd:
            raise ValueError(f"{_NAME}: {what} needs {nd} entries (one per spatial axis), got {v}")
    c, o, i = lhs.shape[dn.lhs_spec[1]], rhs.shape[dn.rhs_spec[0]], rhs.shape[dn.rhs_spec[1]]
    g = feature_group_count
    if g < 1 or c != i * g or o % g:
        raise ValueError(
            f"{_NAME}: lhs {lhs.str_short()} has {c} features and rhs {rhs.str_short()} takes "
            f"{i} input and {o} output features with feature_group_count={g}; need "
            "input features == rhs input features * feature_group_count and output features "
            "divisible by feature_group_count"
        )
    spatial = [lhs.shape[d] for d in dn.lhs_spec[2:]]
    window = [rhs.shape[d] for d in dn.rhs_spec[2:]]
    padded = [
        _dilate(s, d) + lo + hi
        for s, d, (lo, hi) in zip(spatial, lhs_dilation, padding, strict=True)
    ]
    eff = [_dilate(k, d) for k, d in zip(window, rhs_dilation, strict=True)]
    if any(p < w or p < 0 for p, w in zip(padded, eff, strict=True)):
        raise ValueError(
            f"{_NAME}: the (padded, dilated) input has spatial size {tuple(padded)} but the "
            f"dilated kernel spans {tuple(eff)}; the window must fit: pad more or use a smaller "
            "window"
        )
    out = [(p - w) // s + 1 for p, w, s in zip(padded, eff, window_strides, strict=True)]
    shape = [0] * n
    shape[dn.out_spec[0]] = lhs.shape[dn.lhs_spec[0]]
    shape[dn.out_spec[1]] = o
    for axis, size in zip(dn.out_spec[2:], out, strict=True):
        shape[axis] = size
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    return ShapedArray(tuple(shape), dtype)


@conv_general_dilated_p.def_impl
def _conv_impl(lhs, rhs, **params):
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    aval = _conv_abstract_eval(
        ShapedArray(lhs.shape, lhs.dtype), ShapedArray(rhs.shape, rhs.dtype), **params
    )
    pet = params["preferred_element_type"]
    if pet is not None:
        lhs, rhs = lhs.astype(pet, copy=False), rhs.astype(pet, copy=False)
    dn = params["dimension_numbers"]
    nd = lhs.ndim - 2
    g = params["feature_group_count"]
    x = lhs.transpose(dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1])  # (N, *S, C)
    w = rhs.transpose(*dn.rhs_spec[2:], dn.rhs_spec[1], dn.rhs_spec[0])  # (*K, I, O)
    spatial = slice(None)
    if any(d > 1 for d in params["lhs_dilation"]):
        ld = params["lhs_dilation"]
        dshape = [_dilate(s, d) for s, d in zip(x.shape[1:-1], ld, strict=True)]
        xd = np.zeros((x.shape[0], *dshape, x.shape[-1]), x.dtype)
        xd[(spatial, *(slice(None, None, d) for d in params["lhs_dilation"]), spatial)] = x
        x = xd
    pads = params["padding"]
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        crop = tuple(
            slice(max(-lo, 0), s - max(-hi, 0))
            for s, (lo, hi) in zip(x.shape[1:-1], pads, strict=True)
        )
        x = x[(spatial, *crop, spatial)]
    if any(lo > 0 or hi > 0 for lo, hi in pads):
        x = np.pad(x, [(0, 0), *((max(lo, 0), max(hi, 0)) for lo, hi in pads), (0, 0)])
    rd = params["rhs_dilation"]
    eff = tuple(_dilate(k, d) for k, d in zip(w.shape[:nd], rd, strict=True))
    win = np.lib.stride_tricks.sliding_window_view(x, eff, axis=tuple(range(1, nd + 1)))
    steps = (*(slice(None, None, s) for s in params["window_strides"]), spatial)
    win = win[(spatial, *steps, *(slice(None, None, d) for d in rd))]  # (N, *O, C, *K)
    if g == 1:
        y = np.tensordot(win, w, axes=((nd + 1, *range(nd + 2, 2 * nd + 2)), (nd, *range(nd))))
    else:
        # Letters: n batch, s.. out positions, k.. window, g group, c in-feature, f out-feature.
        sp, kk = "stuvwx"[:nd], "klmpqr"[:nd]
        i_feat, o_feat = w.shape[nd], w.shape[nd + 1]
        win = win.reshape((*win.shape[: nd + 1], g, i_feat, *win.shape[nd + 2 :]))
        wg = w.reshape((*w.shape[:nd], i_feat, g, o_feat // g))
        y = np.einsum(f"n{sp}gc{kk},{kk}cgf->n{sp}gf", win, wg, optimize=True)
        y = y.reshape((*y.shape[: nd + 1], o_feat))
    perm = [0] * (nd + 2)
    perm[dn.out_spec[0]] = 0
    perm[dn.out_spec[1]] = nd + 1
    for k, axis in enumerate(dn.out_spec[2:]):
        perm[axis] = 1 + k
    return np.ascontiguousarray(y.transpose(perm)).astype(aval.dtype, copy=False)


def _conv_jvp_lhs(g, lhs, rhs, **params):
    return conv_general_dilated_p.bind(g, rhs, **params)


def _conv_jvp_rhs(g, lhs, rhs, **params):
    return conv_general_dilated_p.bind(lhs, g, **params)


def _swap01(spec: tuple[int, ...]) -> tuple[int, ...]:
    return (spec[1], spec[0], *spec[2:])


def _as_dtype(x: Any, dtype: np.dtype) -> Any:
    return x if get_aval(x).dtype == dtype else lax.convert_element_type(x, dtype)


def _pet(ct: Any, other: Any) -> np.dtype | None:
    """``preferred_element_type`` for a transpose: the cotangent's dtype when the operands
    differ from it (a forward pass with ``preferred_element_type``)."""
    dt = get_aval(ct).dtype
    return None if dt == get_aval(other).dtype else dt


def _spatial_sizes(dn: Any, lhs: Any, rhs: Any, out: Any) -> tuple[list, list, list]:
    """The input's, the window's and the output's sizes along the spatial axes."""
    return (
        [lhs.shape[d] for d in dn.lhs_spec[2:]],
        [rhs.shape[d] for d in dn.rhs_spec[2:]],
        [out.shape[d] for d in dn.out_spec[2:]],
    )


def _conv_transpose_lhs(ct, rhs, lhs_aval, params):
    dn = params["dimension_numbers"]
    g = params["feature_group_count"]
    nd = lhs_aval.ndim - 2
    ra = get_aval(rhs)
    spatial_in, window, out_sp = _spatial_sizes(dn, lhs_aval, ra, get_aval(ct))
    pads = []
    for k in range(nd):
        lo = params["padding"][k][0]
        ld, rdil = params["lhs_dilation"][k], params["rhs_dilation"][k]
        st = params["window_strides"][k]
        eff = _dilate(window[k], rdil)
        before = eff - 1 - lo
        after = _dilate(spatial_in[k], ld) + eff - 1 - _dilate(out_sp[k], st) - before
        pads.append((before, after))
    if g == 1:
        kernel, rhs_spec = rhs, _swap01(dn.rhs_spec)
    else:
        # (O, I, *K) with O = (G, O/G) -> (O/G, G * I, *K): the groups move to the features
        # the transposed convolution produces.
        o, i = ra.shape[dn.rhs_spec[0]], ra.shape[dn.rhs_spec[1]]
        w = transpose(rhs, dn.rhs_spec)
        w = reshape(w, (g, o // g, i, *window))
        w = transpose(w, (1, 0, 2, *range(3, nd + 3)))
        kernel = reshape(w, (o // g, g * i, *window))
        rhs_spec = (1, 0, *range(2, nd + 2))
    kernel = rev(kernel, tuple(rhs_spec[2:]))
    out = conv_general_dilated_p.bind(
        ct,
        kernel,
        window_strides=params["lhs_dilation"],
        padding=tuple(pads),
        lhs_dilation=params["window_strides"],
        rhs_dilation=params["rhs_dilation"],
        dimension_numbers=ConvDimensionNumbers(dn.out_spec, rhs_spec, dn.lhs_spec),
        feature_group_count=g,
        batch_group_count=1,
        preferred_element_type=_pet(ct, rhs),
    )
    return _as_dtype(out, lhs_aval.dtype)


def _conv_transpose_rhs(ct, lhs, rhs_aval, params):
    dn = params["dimension_numbers"]
    g = params["feature_group_count"]
    nd = rhs_aval.ndim - 2
    la, cta = get_aval(lhs), get_aval(ct)
    spatial_in, window, out_sp = _spatial_sizes(dn, la, rhs_aval, cta)
    pads = []
    for k in range(nd):
        lo = params["padding"][k][0]
        ld, rdil = params["lhs_dilation"][k], params["rhs_dilation"][k]
        st = params["window_strides"][k]
        hi = _dilate(out_sp[k], st) - _dilate(spatial_in[k], ld) + _dilate(window[k], rdil) - 1 - lo
        pads.append((lo, hi))
    conv_params = dict(
        window_strides=params["rhs_dilation"],
        padding=tuple(pads),
        lhs_dilation=params["lhs_dilation"],
        rhs_dilation=params["window_strides"],
        # lhs: batch<->feature; ct as the kernel: its features are the out-features and its
        # batch the in-features; the result's batch axis is rhs's in-feature axis.
        dimension_numbers=ConvDimensionNumbers(
            _swap01(dn.lhs_spec), _swap01(dn.out_spec), _swap01(dn.rhs_spec)
        ),
        feature_group_count=1,
        batch_group_count=1,
        preferred_element_type=_pet(ct, lhs),
    )
    if g == 1:
        out = conv_general_dilated_p.bind(lhs, ct, **conv_params)
    else:
        # One convolution per group: that group's input features against its outputs.
        c, o = la.shape[dn.lhs_spec[1]], cta.shape[dn.out_spec[1]]
        ci, co = c // g, o // g
        parts = [
            conv_general_dilated_p.bind(
                slice_in_dim(lhs, k * ci, (k + 1) * ci, axis=dn.lhs_spec[1]),
                slice_in_dim(ct, k * co, (k + 1) * co, axis=dn.out_spec[1]),
                **conv_params,
            )
            for k in range(g)
        ]
        out = concatenate(parts, dn.rhs_spec[0])
    return _as_dtype(out, rhs_aval.dtype)


def _conv_transpose(ct, lhs, rhs, **params):
    lhs_undef, rhs_undef = ad.is_undefined_primal(lhs), ad.is_undefined_primal(rhs)
    if lhs_undef and rhs_undef:
        raise NotImplementedError(f"{_NAME} is bilinear: transpose it in one operand at a time")
    if lhs_undef:
        return [_conv_transpose_lhs(ct, rhs, lhs.aval, params), None]
    return [None, _conv_transpose_rhs(ct, lhs, rhs.aval, params)]


def _merge_axis(x: Any, src: int, dst: int) -> Any:
    """Fold axis ``src`` of ``x`` into axis ``dst`` (``src`` the major part); ``dst`` counts
    the axes of ``x`` without ``src``, so the result has the unbatched layout."""
    shape = list(get_aval(x).shape)
    rest = [d for d in range(len(shape)) if d != src]
    perm = [*rest[:dst], src, *rest[dst:]]
    if perm != list(range(len(shape))):
        x = transpose(x, tuple(perm))
    new = [shape[d] for d in rest]
    new[dst] *= shape[src]
    return reshape(x, tuple(new))


def _split_axis(x: Any, axis: int, size: int) -> Any:
    """Split axis ``axis`` of ``x`` into ``(size, rest)``: the new batch axis is ``axis``."""
    shape = get_aval(x).shape
    return reshape(x, (*shape[:axis], size, shape[axis] // size, *shape[axis + 1 :]))


def _conv_batch(args, dims, **params):
    """One batched convolution (see the module docstring)."""
    lhs, rhs = args
    ld, rd = dims
    dn = params["dimension_numbers"]
    g = params["feature_group_count"]
    b = batching.axis_size_of(args, dims)
    bind = conv_general_dilated_p.bind
    if ld is not None and rd is not None:
        # The batch becomes the major part of both feature axes: b * g feature groups.
        new_lhs = _merge_axis(lhs, ld, dn.lhs_spec[1])
        new_rhs = _merge_axis(rhs, rd, dn.rhs_spec[0])
        out = bind(new_lhs, new_rhs, **{**params, "feature_group_count": b * g})
        return _split_axis(out, dn.out_spec[1], b), dn.out_spec[1]
    if ld is not None:
        out = bind(_merge_axis(lhs, ld, dn.lhs_spec[0]), rhs, **params)
        return _split_axis(out, dn.out_spec[0], b), dn.out_spec[0]
    if g == 1:
        out = bind(lhs, _merge_axis(rhs, rd, dn.rhs_spec[0]), **params)
        return _split_axis(out, dn.out_spec[1], b), dn.out_spec[1]
    # Feature groups: the batch goes inside each group's output features, (G, B, O/G).
    o_axis = dn.rhs_spec[0]
    x = batching.moveaxis(rhs, rd, 0)  # (B, *rhs)
    shape = get_aval(x).shape
    o = shape[1 + o_axis]
    x = reshape(x, (b, *shape[1 : 1 + o_axis], g, o // g, *shape[2 + o_axis :]))
    x = batching.moveaxis(x, 0, o_axis + 1)  # (..., G, B, O/G, ...)
    x = reshape(x, (*shape[1 : 1 + o_axis], g * b * (o // g), *shape[2 + o_axis :]))
    out = bind(lhs, x, **params)
    f = dn.out_spec[1]
    oshape = get_aval(out).shape
    out = reshape(out, (*oshape[:f], g, b, o // g, *oshape[f + 1 :]))
    out = batching.moveaxis(out, f + 1, f)  # (B, G, O/G)
    return reshape(out, (*oshape[:f], b, o, *oshape[f + 1 :])), f


ad.defjvp(conv_general_dilated_p, _conv_jvp_lhs, _conv_jvp_rhs)
ad.primitive_transposes[conv_general_dilated_p] = _conv_transpose
batching.primitive_batchers[conv_general_dilated_p] = _conv_batch
