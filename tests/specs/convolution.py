"""Spec cases for conv_general_dilated (funcgrad/lax/convolution.py).

Reference: a plain NumPy loop over output positions and kernel taps in float64 (operands
first put in ``NC...``/``OI...`` order), mapping each tap to its input element through the
padding, strides and dilations, so it shares nothing with the impl's dilate/pad/
sliding-window/tensordot route.
"""

from __future__ import annotations

import itertools

import numpy as np

from funcgrad.lax.convolution import conv_dimension_numbers, padtype_to_pads
from tests.specs import FLOATS, Case, normal


def _conv_ref(
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
    dn = dimension_numbers
    dtype = preferred_element_type or lhs.dtype
    wide = np.float64 if np.dtype(dtype).kind == "f" else np.int64
    x = np.transpose(lhs, dn.lhs_spec).astype(wide)  # (N, C, *S)
    w = np.transpose(rhs, dn.rhs_spec).astype(wide)  # (O, I, *K)
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    o, i, window = w.shape[0], w.shape[1], w.shape[2:]
    g = feature_group_count
    og = o // g
    out_sizes = []
    for s, k, st, (lo, hi), ld, rd in zip(
        spatial, window, window_strides, padding, lhs_dilation, rhs_dilation, strict=True
    ):
        span = (s - 1) * ld + 1 + lo + hi
        out_sizes.append((span - ((k - 1) * rd + 1)) // st + 1)
    y = np.zeros((n, o, *out_sizes), wide)
    for pos in itertools.product(*map(range, out_sizes)):
        for tap in itertools.product(*map(range, window)):
            src = []
            for p, t, st, (lo, _), ld, rd, s in zip(
                pos, tap, window_strides, padding, lhs_dilation, rhs_dilation, spatial, strict=True
            ):
                q = p * st + t * rd - lo  # position in the dilated input
                if q < 0 or q % ld or q // ld >= s:
                    break
                src.append(q // ld)
            else:
                xs = x[(slice(None), slice(None), *src)]  # (N, C)
                for gi in range(g):
                    wk = w[(slice(gi * og, (gi + 1) * og), slice(None), *tap)]  # (Og, I)
                    y[(slice(None), slice(gi * og, (gi + 1) * og), *pos)] += (
                        xs[:, gi * i : (gi + 1) * i] @ wk.T
                    )
    del c, batch_group_count
    return np.transpose(y, np.argsort(dn.out_spec)).astype(dtype)


def _conv(
    name,
    lhs_shape,
    rhs_shape,
    dims,
    strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    groups=1,
    dtypes=FLOATS,
    pet=None,
):
    nd = len(lhs_shape) - 2
    dn = conv_dimension_numbers(lhs_shape, rhs_shape, dims)
    ld = tuple(lhs_dilation or (1,) * nd)
    rd = tuple(rhs_dilation or (1,) * nd)
    if isinstance(padding, str):
        spatial = [lhs_shape[d] for d in dn.lhs_spec[2:]]
        eff = [(rhs_shape[d] - 1) * r + 1 for d, r in zip(dn.rhs_spec[2:], rd, strict=True)]
        padding = padtype_to_pads(spatial, eff, strides, padding)
    params = dict(
        window_strides=tuple(strides),
        padding=tuple(tuple(p) for p in padding),
        lhs_dilation=ld,
        rhs_dilation=rd,
        dimension_numbers=dn,
        feature_group_count=groups,
        batch_group_count=1,
        preferred_element_type=None if pet is None else np.dtype(pet),
    )
    return Case(
        "conv_general_dilated",
        lambda rng, dt: (normal(rng, lhs_shape, dt), normal(rng, rhs_shape, dt)),
        _conv_ref,
        params,
        dtypes=dtypes,
        linear=((0,), (1,)),
        name=name,
    )


NHWC = ("NHWC", "HWIO", "NHWC")

CASES = [
    _conv("1d_nwc_stride2", (2, 7, 2), (3, 2, 3), ("NWC", "WIO", "NWC"), (2,), "VALID"),
    _conv("1d_ncw_same", (1, 2, 6), (2, 2, 3), None, (1,), "SAME"),
    _conv(
        "2d_nhwc_same",
        (1, 5, 4, 2),
        (3, 2, 2, 3),
        NHWC,
        (1, 2),
        "SAME",
        dtypes=(*FLOATS, np.int32),
    ),
    _conv("2d_nchw_asym_pad", (2, 2, 4, 3), (3, 2, 2, 2), None, (2, 1), ((1, 0), (2, 1))),
    _conv(
        "2d_lhs_dilation",
        (1, 3, 3, 2),
        (2, 2, 2, 2),
        NHWC,
        (1, 1),
        ((1, 1), (0, 1)),
        lhs_dilation=(2, 1),
    ),
    _conv(
        "2d_rhs_dilation", (1, 6, 5, 1), (2, 2, 1, 3), NHWC, (1, 2), "VALID", rhs_dilation=(2, 2)
    ),
    _conv("2d_groups_nhwc", (1, 4, 3, 4), (2, 2, 2, 4), NHWC, (1, 1), "VALID", groups=2),
    _conv(
        "2d_groups_nchw_stride_pad",
        (1, 4, 3, 3),
        (4, 2, 2, 2),
        None,
        (2, 1),
        ((1, 1), (0, 1)),
        groups=2,
    ),
    _conv(
        "2d_mixed_out_negative_pad",
        (1, 5, 4, 2),
        (2, 2, 2, 2),
        ("NHWC", "HWIO", "NCHW"),
        (1, 1),
        ((-1, 1), (0, -1)),
    ),
    _conv(
        "2d_all_dilations",
        (1, 3, 4, 1),
        (2, 2, 1, 2),
        NHWC,
        (2, 1),
        ((2, 1), (1, 1)),
        lhs_dilation=(2, 1),
        rhs_dilation=(1, 2),
    ),
    _conv(
        "pet_f64", (1, 4, 3, 2), (2, 2, 2, 2), NHWC, (1, 1), "VALID", dtypes=(np.float32,), pet="f8"
    ),
]
