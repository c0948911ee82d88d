"""Spec cases for gather and the scatter family (funcgrad/lax/indexing.py).

References: a direct element-by-element loop over XLA's gather/scatter definition (start
vector, batching axes, clamping or filling/dropping per slice, updates applied in order:
index batch position, then window position), written independently of the vectorised
impl; and for the configurations NumPy indexing produces (``x[i]``, ``x[:, i]``,
``x[i, j]``, ``take_along_axis``, ``np.add.at``) a plain NumPy expression as well.
"""

from __future__ import annotations

import itertools

import numpy as np

from funcgrad.lax import GatherDimensionNumbers as GDN
from funcgrad.lax import GatherScatterMode
from funcgrad.lax import ScatterDimensionNumbers as SDN
from tests.specs import ALL, FLOATS, NUMBERS, Case, normal

CLIP = GatherScatterMode.CLIP
FILL = GatherScatterMode.FILL_OR_DROP


def _start(x_shape, vec, batch_pos, index_map, obd, ibd, window, mode):
    """The slice/window start for one index vector, or None when it must be filled/dropped."""
    start = [0] * len(x_shape)
    for k, d in enumerate(index_map):
        start[d] = int(vec[k])
    for o, i in zip(obd, ibd, strict=True):
        start[o] = batch_pos[i]
    fits = all(0 <= s <= n - w for s, n, w in zip(start, x_shape, window, strict=True))
    if mode is FILL and not fits:
        return None
    if mode is not FILL:
        start = [min(max(s, 0), n - w) for s, n, w in zip(start, x_shape, window, strict=True)]
    return start


def _fill(dtype, fill_value):
    if fill_value is not None:
        return fill_value
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    return np.iinfo(dtype).min if dtype.kind == "i" else np.iinfo(dtype).max


def gather_loop(x, idx, *, dimension_numbers, slice_sizes, mode, fill_value, **_):
    dn = dimension_numbers
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    offset_sizes = [s for d, s in enumerate(slice_sizes) if d not in dropped]
    out_rank = idx.ndim - 1 + len(dn.offset_dims)
    bsizes, osizes = iter(idx.shape[:-1]), iter(offset_sizes)
    out_shape = tuple(
        next(osizes) if p in dn.offset_dims else next(bsizes) for p in range(out_rank)
    )
    out = np.empty(out_shape, x.dtype)
    for o in itertools.product(*map(range, out_shape)):
        g = tuple(o[p] for p in range(out_rank) if p not in dn.offset_dims)
        w = iter(o[p] for p in dn.offset_dims)
        start = _start(
            x.shape,
            idx[g],
            g,
            dn.start_index_map,
            dn.operand_batching_dims,
            dn.start_indices_batching_dims,
            slice_sizes,
            mode,
        )
        if start is None:
            out[o] = _fill(x.dtype, fill_value)
            continue
        at = tuple(s + (0 if d in dropped else next(w)) for d, s in enumerate(start))
        out[o] = x[at]
    return out


def scatter_loop(combine):
    def ref(x, idx, upd, *, dimension_numbers, mode, **_):
        dn = dimension_numbers
        out = x.copy()
        dropped = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
        window, uw = [], iter(dn.update_window_dims)
        for d in range(x.ndim):
            window.append(1 if d in dropped else upd.shape[next(uw)])
        scatter_axes = [a for a in range(upd.ndim) if a not in dn.update_window_dims]
        wsizes = [upd.shape[a] for a in dn.update_window_dims]
        for g in itertools.product(*(range(upd.shape[a]) for a in scatter_axes)):
            start = _start(
                x.shape,
                idx[g],
                g,
                dn.scatter_dims_to_operand_dims,
                dn.operand_batching_dims,
                dn.scatter_indices_batching_dims,
                window,
                mode,
            )
            if start is None:
                continue
            for w in itertools.product(*map(range, wsizes)):
                u = [0] * upd.ndim
                for a, v in zip(scatter_axes, g, strict=True):
                    u[a] = v
                for a, v in zip(dn.update_window_dims, w, strict=True):
                    u[a] = v
                wi = iter(w)
                at = tuple(s + (0 if d in dropped else next(wi)) for d, s in enumerate(start))
                out[at] = combine(out[at], upd[tuple(u)])
        return out

    return ref


def _indices(rng, shape, hi, lo=0, dtype=np.int32):
    return rng.integers(lo, hi, shape).astype(dtype)


def _gparams(dn, slice_sizes, mode=CLIP, fill_value=None):
    return dict(
        dimension_numbers=dn,
        slice_sizes=slice_sizes,
        indices_are_sorted=False,
        unique_indices=False,
        mode=mode,
        fill_value=fill_value,
    )


def _gather(
    name,
    x_shape,
    make_idx,
    dn,
    slice_sizes,
    ref=gather_loop,
    mode=CLIP,
    fill_value=None,
    dtypes=NUMBERS,
    linear=((0,),),
    **kw,
):
    return Case(
        "gather",
        lambda rng, dt: (normal(rng, x_shape, dt), make_idx(rng)),
        ref,
        _gparams(dn, slice_sizes, mode, fill_value),
        dtypes=dtypes,
        linear=linear,
        name=name,
        **kw,
    )


def _numpy_ref(fn):
    """A reference written as a plain NumPy indexing expression of (x, idx)."""
    return lambda x, idx, **_: np.array(fn(x, idx))


GATHER_CASES = [
    # x[i] with an int array i (rows of a matrix)
    _gather(
        "rows",
        (5, 3),
        lambda r: _indices(r, (4, 1), 5),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 3),
        ref=_numpy_ref(lambda x, i: x[i[..., 0]]),
        dtypes=ALL,
    ),
    # x[:, i] with a 2-D index array i
    _gather(
        "columns",
        (3, 5),
        lambda r: _indices(r, (2, 2, 1), 5, dtype=np.int64),
        GDN(offset_dims=(0,), collapsed_slice_dims=(1,), start_index_map=(1,)),
        (3, 1),
        ref=_numpy_ref(lambda x, i: x[:, i[..., 0]]),
    ),
    # x[i, j] with paired index arrays (and a trailing full axis)
    _gather(
        "pairs",
        (4, 5),
        lambda r: np.stack([_indices(r, (6,), 4), _indices(r, (6,), 5)], -1),
        GDN(offset_dims=(), collapsed_slice_dims=(0, 1), start_index_map=(0, 1)),
        (1, 1),
        ref=_numpy_ref(lambda x, i: x[i[:, 0], i[:, 1]]),
    ),
    _gather(
        "pairs_trailing",
        (4, 5, 2),
        lambda r: np.stack([_indices(r, (3,), 4), _indices(r, (3,), 5)], -1),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0, 1), start_index_map=(0, 1)),
        (1, 1, 2),
        ref=_numpy_ref(lambda x, i: x[i[:, 0], i[:, 1]]),
    ),
    # index map in reverse order: x[j, i] spelled with start_index_map=(1, 0)
    _gather(
        "reversed_map",
        (4, 5),
        lambda r: np.stack([_indices(r, (3,), 5), _indices(r, (3,), 4)], -1),
        GDN(offset_dims=(), collapsed_slice_dims=(0, 1), start_index_map=(1, 0)),
        (1, 1),
        ref=_numpy_ref(lambda x, i: x[i[:, 1], i[:, 0]]),
    ),
    # take_along_axis(x, i, axis=1): a batching-axis pair
    _gather(
        "take_along_axis",
        (3, 4),
        lambda r: _indices(r, (3, 5, 1), 4),
        GDN(
            offset_dims=(),
            collapsed_slice_dims=(1,),
            start_index_map=(1,),
            operand_batching_dims=(0,),
            start_indices_batching_dims=(0,),
        ),
        (1, 1),
        ref=_numpy_ref(lambda x, i: np.take_along_axis(x, i[..., 0], axis=1)),
        dtypes=ALL,
    ),
    # batching pair on a later axis with an indices batch axis that is not first
    _gather(
        "batching_axis1",
        (2, 3, 4),
        lambda r: _indices(r, (5, 3, 1), 4),
        GDN(
            offset_dims=(1,),
            collapsed_slice_dims=(2,),
            start_index_map=(2,),
            operand_batching_dims=(1,),
            start_indices_batching_dims=(1,),
        ),
        (2, 1, 1),
    ),
    # windows (dynamic_slice per index vector)
    _gather(
        "windows",
        (6, 5),
        lambda r: np.stack([_indices(r, (3,), 5), _indices(r, (3,), 3)], -1),
        GDN(offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=(0, 1)),
        (2, 3),
    ),
    _gather(
        "windows_offset_first",
        (6, 5),
        lambda r: _indices(r, (2, 1), 4),
        GDN(offset_dims=(0, 2), collapsed_slice_dims=(), start_index_map=(0,)),
        (3, 5),
    ),
    # a single index vector (indices rank 1): a 0-d result
    _gather(
        "scalar_out",
        (5,),
        lambda r: _indices(r, (1,), 5),
        GDN(offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1,),
    ),
    # out of bounds, clamped (negative starts clamp to 0: no wrapping at this level)
    _gather(
        "clip",
        (5, 2),
        lambda r: _indices(r, (6, 1), 8, lo=-3),
        GDN(offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=(0,)),
        (2, 2),
    ),
    # out of bounds, filled: default fill (NaN / int min) is not differentiable data
    _gather(
        "fill_default",
        (5, 2),
        lambda r: _indices(r, (6, 1), 7, lo=-2),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 2),
        mode=FILL,
        diff=(),
        linear=(),
    ),
    _gather(
        "fill_zero",
        (5, 2),
        lambda r: _indices(r, (6, 1), 7, lo=-2),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 2),
        mode=FILL,
        fill_value=0,
    ),
    _gather(
        "fill_value",
        (5, 2),
        lambda r: _indices(r, (6, 1), 7, lo=-2),
        GDN(offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=(0,)),
        (2, 2),
        mode=FILL,
        fill_value=-1,
        linear=(),
    ),
    # size 0 and size 1
    _gather(
        "no_indices",
        (4, 3),
        lambda r: _indices(r, (0, 1), 4),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 3),
    ),
    _gather(
        "empty_window",
        (3, 0),
        lambda r: _indices(r, (2, 1), 3),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 0),
    ),
    _gather(
        "size1",
        (1, 1),
        lambda r: _indices(r, (1, 1), 1),
        GDN(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)),
        (1, 1),
    ),
]


def _sparams(dn, mode=FILL, unique=False):
    return dict(dimension_numbers=dn, indices_are_sorted=False, unique_indices=unique, mode=mode)


def _scatter(
    prim,
    name,
    combine,
    x_shape,
    make_idx,
    u_shape,
    dn,
    mode=FILL,
    unique=False,
    dtypes=NUMBERS,
    linear=(),
    make_u=normal,
    **kw,
):
    return Case(
        prim,
        lambda rng, dt: (normal(rng, x_shape, dt), make_idx(rng), make_u(rng, u_shape, dt)),
        scatter_loop(combine),
        _sparams(dn, mode, unique),
        dtypes=dtypes,
        linear=linear,
        name=name,
        **kw,
    )


def _unique_rows(rng, k, n, dtype=np.int32):
    return rng.permutation(n)[:k].astype(dtype).reshape(k, 1)


ROWS = SDN(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))
COLS = SDN(update_window_dims=(0,), inserted_window_dims=(1,), scatter_dims_to_operand_dims=(1,))
PAIRS = SDN(update_window_dims=(), inserted_window_dims=(0, 1), scatter_dims_to_operand_dims=(0, 1))
ALONG = SDN(
    update_window_dims=(),
    inserted_window_dims=(1,),
    scatter_dims_to_operand_dims=(1,),
    operand_batching_dims=(0,),
    scatter_indices_batching_dims=(0,),
)
WINDOWS = SDN(
    update_window_dims=(1, 2), inserted_window_dims=(), scatter_dims_to_operand_dims=(0, 1)
)
SCALAR = SDN(update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))


def _pairs(rng, k=6):
    return np.stack([_indices(rng, (k,), 4), _indices(rng, (k,), 5)], -1)


def _windows(rng):
    return np.stack([_indices(rng, (3,), 8, lo=-2), _indices(rng, (3,), 5, lo=-1)], -1)


def _np_add_at(x, idx, u, **_):
    out = x.copy()
    np.add.at(out, idx[..., 0], u)
    return out


def _scatter_family(prim, combine, linear_ok):
    """The NumPy-indexing configurations for one scatter primitive (repeated indices)."""
    lin = ((0, 2),) if linear_ok else ()
    return [
        _scatter(
            prim,
            "rows",
            combine,
            (5, 3),
            lambda r: _indices(r, (4, 1), 5),
            (4, 3),
            ROWS,
            linear=lin,
            dtypes=ALL,
        ),
        _scatter(
            prim,
            "columns",
            combine,
            (3, 5),
            lambda r: _indices(r, (2, 2, 1), 5, dtype=np.int64),
            (3, 2, 2),
            SDN((0,), (1,), (1,)),
            linear=lin,
        ),
        _scatter(prim, "pairs", combine, (4, 5), _pairs, (6,), PAIRS, linear=lin),
        _scatter(
            prim,
            "along_axis",
            combine,
            (3, 4),
            lambda r: _indices(r, (3, 2, 1), 4),
            (3, 2),
            ALONG,
            linear=lin,
        ),
        _scatter(prim, "windows_drop", combine, (6, 5), _windows, (3, 2, 3), WINDOWS, linear=lin),
        _scatter(
            prim,
            "windows_clip",
            combine,
            (6, 5),
            _windows,
            (3, 2, 3),
            WINDOWS,
            mode=CLIP,
            linear=lin,
        ),
        _scatter(
            prim,
            "oob_drop",
            combine,
            (5,),
            lambda r: _indices(r, (6, 1), 8, lo=-3),
            (6,),
            SCALAR,
            linear=lin,
        ),
        _scatter(
            prim,
            "no_updates",
            combine,
            (4, 3),
            lambda r: _indices(r, (0, 1), 4),
            (0, 3),
            ROWS,
            linear=lin,
        ),
        _scatter(
            prim, "size1", combine, (1,), lambda r: _indices(r, (1, 1), 1), (1,), SCALAR, linear=lin
        ),
    ]


def _last_wins(old, new):
    return new


SCATTER_CASES = [
    *_scatter_family("scatter-add", np.add, linear_ok=True),
    Case(
        "scatter-add",
        lambda r, dt: (normal(r, (5, 3), dt), _indices(r, (7, 1), 5), normal(r, (7, 3), dt)),
        _np_add_at,
        _sparams(ROWS),
        dtypes=NUMBERS,
        linear=((0, 2),),
        name="vs_np_add_at",
    ),
    # scatter (replace): linear in (operand, updates) with unique and with repeated indices
    *_scatter_family("scatter", _last_wins, linear_ok=True),
    _scatter(
        "scatter",
        "unique_rows",
        _last_wins,
        (5, 3),
        lambda r: _unique_rows(r, 3, 5),
        (3, 3),
        ROWS,
        unique=True,
        linear=((0, 2),),
    ),
    _scatter(
        "scatter",
        "unique_pairs",
        _last_wins,
        (4, 5),
        lambda r: np.stack(np.unravel_index(r.permutation(20)[:6], (4, 5)), -1).astype(np.int32),
        (6,),
        PAIRS,
        unique=True,
        linear=((0, 2),),
    ),
    # scatter-mul: linear in the operand only
    *_scatter_family("scatter-mul", np.multiply, linear_ok=False),
    _scatter(
        "scatter-mul",
        "unique_rows",
        np.multiply,
        (5, 3),
        lambda r: _unique_rows(r, 3, 5),
        (3, 3),
        ROWS,
        unique=True,
        linear=((0,),),
    ),
    _scatter(
        "scatter-mul",
        "rows_linear",
        np.multiply,
        (5, 3),
        lambda r: _indices(r, (4, 1), 5),
        (4, 3),
        ROWS,
        linear=((0,),),
    ),
    # zero updates on repeated targets: the jvp is exact to first order there
    _scatter(
        "scatter-mul",
        "zero_updates",
        np.multiply,
        (3,),
        lambda r: np.array([[0], [0], [1], [2], [2]], np.int32),
        (5,),
        SCALAR,
        make_u=lambda r, s, dt: np.array([0, 2, -1, 3, 0.5], dt),
        grad_order=1,
        dtypes=FLOATS,
    ),
    *_scatter_family("scatter-min", np.minimum, linear_ok=False),
    *_scatter_family("scatter-max", np.maximum, linear_ok=False),
]

CASES = GATHER_CASES + SCATTER_CASES
