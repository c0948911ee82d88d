"""Spec cases for the slicing primitives (funcgrad/lax/slicing.py).

References: Python slicing expressions for ``slice``; for the dynamic ones, NumPy's
``np.clip`` of each start into ``[0, dim - size]`` (XLA's clamping) and ``np.ix_`` fancy
indexing, so that out-of-range and negative starts are checked against a second formulation.
Start indices are drawn at random per example (seeded), so the batch checks see a different,
often out-of-range, start in every example.
"""

from __future__ import annotations

import numpy as np

from tests.specs import ALL, Case, normal


def _slice_ref(x, *, start_indices, limit_indices, strides):
    strides = strides or (1,) * x.ndim
    return x[tuple(slice(*t) for t in zip(start_indices, limit_indices, strides, strict=True))]


def _slice(name, shape, start, limit, strides=None, dtypes=ALL):
    return Case(
        "slice",
        lambda rng, dt: (normal(rng, shape, dt),),
        _slice_ref,
        dict(start_indices=start, limit_indices=limit, strides=strides),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


def _window(shape, starts, sizes):
    """``np.ix_`` index arrays of the clamped window ``starts .. starts + sizes``."""
    ranges = []
    for d, s, n in zip(shape, starts, sizes, strict=True):
        s = int(np.clip(int(s), 0, d - n))
        ranges.append(np.arange(s, s + n))
    return np.ix_(*ranges) if ranges else ()


def _dynamic_slice_ref(x, *idx, slice_sizes):
    return x[_window(x.shape, idx, slice_sizes)]


def _dynamic_update_slice_ref(x, update, *idx):
    out = x.copy()
    out[_window(x.shape, idx, update.shape)] = update
    return out


def _starts(rng, shape, index_dtype, lo=-3, extra=3):
    """Random starts in ``[lo, dim + extra)``: negative and past-the-end ones get clamped."""
    return tuple(np.array(rng.integers(lo, d + extra), index_dtype) for d in shape)


def _dynamic_slice(name, shape, sizes, index_dtype=np.int32, dtypes=ALL):
    return Case(
        "dynamic_slice",
        lambda rng, dt: (normal(rng, shape, dt), *_starts(rng, shape, index_dtype)),
        _dynamic_slice_ref,
        dict(slice_sizes=sizes),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


def _dynamic_update_slice(name, shape, update_shape, index_dtype=np.int32, dtypes=ALL):
    return Case(
        "dynamic_update_slice",
        lambda rng, dt: (
            normal(rng, shape, dt),
            normal(rng, update_shape, dt),
            *_starts(rng, shape, index_dtype),
        ),
        _dynamic_update_slice_ref,
        dtypes=dtypes,
        linear=((0, 1),),
        name=name,
    )


CASES = [
    _slice("2d", (5, 6), (1, 0), (4, 6)),
    _slice("strided", (5, 7), (0, 1), (5, 7), (2, 3)),
    _slice("overshoot", (6, 4), (1, 0), (6, 4), (2, 4)),
    _slice("empty", (4, 3), (2, 0), (2, 3), (1, 2)),
    _slice("size0_operand", (0, 3), (0, 1), (0, 3)),
    _slice("size1", (1, 4), (0, 3), (1, 4)),
    _slice("scalar", (), (), ()),
    _dynamic_slice("2d", (5, 4), (2, 3)),
    _dynamic_slice("int64_index", (6,), (4,), index_dtype=np.int64),
    _dynamic_slice("full_axis", (3, 4), (3, 1)),
    _dynamic_slice("size0_slice", (4, 2), (0, 2)),
    _dynamic_slice("size1", (1, 5), (1, 1), dtypes=(np.float64, np.int64)),
    _dynamic_slice("scalar", (), (), dtypes=(np.float32, np.float64)),
    _dynamic_update_slice("2d", (5, 4), (2, 3)),
    _dynamic_update_slice("int64_index", (6,), (4,), index_dtype=np.int64),
    _dynamic_update_slice("whole", (2, 3), (2, 3)),
    _dynamic_update_slice("size0_update", (3, 4), (0, 2)),
    _dynamic_update_slice("size1", (1, 5), (1, 2), dtypes=(np.float64, np.int32)),
    _dynamic_update_slice("scalar", (), (), dtypes=(np.float64,)),
]
