"""Spec cases for the shape primitives (funcgrad/lax/shape.py).

References are independent NumPy expressions: ``np.broadcast_to``, ``np.reshape``,
``np.transpose``, ``np.squeeze``, ``np.expand_dims``, ``np.flip``, ``np.indices``,
``np.concatenate``; ``pad`` is checked against an index map (output position -> source
position) so that negative and interior padding are covered by a second formulation.
"""

from __future__ import annotations

import numpy as np

from tests.specs import ALL, NUMBERS, Case, normal


def _one(shape):
    return lambda rng, dt: (normal(rng, shape, dt),)


# -- broadcast_in_dim


def _bid_ref(x, *, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(np.reshape(x, expanded), shape)


def _bid(name, in_shape, shape, bdims, dtypes=ALL):
    return Case(
        "broadcast_in_dim",
        _one(in_shape),
        _bid_ref,
        dict(shape=shape, broadcast_dimensions=bdims),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


# -- reshape, transpose


def _reshape(name, in_shape, new_sizes, dtypes=ALL):
    return Case(
        "reshape",
        _one(in_shape),
        lambda x, *, new_sizes: np.reshape(x, new_sizes),
        dict(new_sizes=new_sizes),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


def _transpose(name, in_shape, perm, dtypes=ALL):
    return Case(
        "transpose",
        _one(in_shape),
        lambda x, *, permutation: np.transpose(x, permutation),
        dict(permutation=perm),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


# -- squeeze, expand_dims, rev


def _squeeze(name, in_shape, dims, dtypes=ALL):
    return Case(
        "squeeze",
        _one(in_shape),
        lambda x, *, dimensions: np.squeeze(x, axis=dimensions),
        dict(dimensions=dims),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


def _expand_dims(name, in_shape, dims, dtypes=ALL):
    return Case(
        "expand_dims",
        _one(in_shape),
        lambda x, *, dimensions: np.expand_dims(x, dimensions),
        dict(dimensions=dims),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


def _rev(name, in_shape, dims, dtypes=ALL):
    return Case(
        "rev",
        _one(in_shape),
        lambda x, *, dimensions: np.flip(x, dimensions) if dimensions else x,
        dict(dimensions=dims),
        dtypes=dtypes,
        linear=((0,),),
        name=name,
    )


# -- iota


def _iota_ref(*, dtype, shape, dimension):
    return np.indices(shape)[dimension].astype(dtype) if shape else np.zeros((), dtype)


def _iota(name, shape, dimension):
    return Case(
        "iota",
        lambda rng, dt: (),
        _iota_ref,
        lambda dt: dict(dtype=dt, shape=shape, dimension=dimension),
        dtypes=NUMBERS,
        name=name,
    )


# -- concatenate


def _concatenate(name, shapes, dimension, dtypes=ALL, linear=None):
    n = len(shapes)
    return Case(
        "concatenate",
        lambda rng, dt: tuple(normal(rng, s, dt) for s in shapes),
        lambda *xs, dimension: np.concatenate(xs, axis=dimension),
        dict(dimension=dimension),
        dtypes=dtypes,
        linear=linear if linear is not None else (tuple(range(n)),),
        name=name,
    )


# -- pad


def _pad_ref(x, padding_value, *, padding_config):
    """Each output position reads operand[(o - low) / (interior + 1)] when that is an
    in-range integer, else the padding value."""
    out_shape = []
    for d, (lo, hi, it) in zip(x.shape, padding_config, strict=True):
        out_shape.append(lo + hi + d + max(d - 1, 0) * it)
    pos = np.indices(out_shape)
    valid = np.ones(out_shape, bool)
    src = []
    for axis, (d, (lo, _, it)) in enumerate(zip(x.shape, padding_config, strict=True)):
        rel = pos[axis] - lo
        q, r = np.divmod(rel, it + 1)
        valid &= (rel >= 0) & (r == 0) & (q < d)
        src.append(np.clip(q, 0, max(d - 1, 0)))
    out = np.full(out_shape, padding_value, x.dtype)
    if x.size:
        taken = x[tuple(src)] if x.ndim else np.full(out_shape, x)
        out = np.where(valid, taken, out)
    return out


def _pad(name, in_shape, config, dtypes=ALL):
    return Case(
        "pad",
        lambda rng, dt: (normal(rng, in_shape, dt), normal(rng, (), dt)),
        _pad_ref,
        dict(padding_config=config),
        dtypes=dtypes,
        linear=((0, 1),),
        name=name,
    )


CASES = [
    _bid("expand", (3, 1), (2, 3, 4), (1, 2)),
    _bid("scalar", (), (2, 3), ()),
    _bid("size0", (0, 1), (2, 0, 3), (1, 2)),
    _bid("same", (2, 3), (2, 3), (0, 1)),
    _reshape("merge", (2, 3, 4), (6, 4)),
    _reshape("scalar", (), (1, 1)),
    _reshape("size0", (0, 3), (3, 0, 1)),
    _transpose("3d", (2, 3, 4), (2, 0, 1)),
    _transpose("size0", (2, 0, 1), (1, 2, 0)),
    _transpose("1d", (5,), (0,), dtypes=(np.float64,)),
    _squeeze("two", (1, 3, 1), (0, 2)),
    _squeeze("to_scalar", (1,), (0,)),
    _squeeze("none", (3, 2), ()),
    _squeeze("size0", (0, 1), (1,)),
    _expand_dims("two", (3, 4), (0, 2)),
    _expand_dims("scalar", (), (0,)),
    _expand_dims("last", (0, 2), (2,)),
    _rev("both", (3, 4), (0, 1)),
    _rev("one", (2, 5), (1,)),
    _rev("size0", (2, 0), (0,)),
    _rev("none", (3,), ()),
    _iota("1d", (5,), 0),
    _iota("2d", (2, 3), 1),
    _iota("size0", (0, 3), 0),
    _concatenate("three", ((2, 1), (2, 3), (2, 0)), 1),
    _concatenate("axis0", ((1, 2), (3, 2)), 0),
    _concatenate("single", ((4,),), 0),
    _concatenate("size1", ((1, 1, 2), (1, 2, 2)), 1, dtypes=(np.float64,)),
    _pad("low_high_interior", (3, 4), ((1, 2, 0), (0, 1, 1))),
    _pad("negative", (4, 3), ((-1, 2, 1), (2, -3, 0))),
    _pad("crop_interior", (3,), ((-2, -1, 2),)),
    _pad("crop_to_empty", (3,), ((-2, -1, 0),)),
    _pad("size0", (0, 2), ((1, 1, 2), (0, 0, 0))),
    _pad("scalar", (), ()),
    _pad("size1", (1, 2), ((0, 0, 3), (1, 0, 1)), dtypes=(np.float64, np.int32)),
]
