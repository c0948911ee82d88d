"""Spec cases for the multi-operand ``sort`` primitive (funcgrad/lax/sort.py).

The reference sorts each lane with Python's stable ``sorted`` on a tuple key made of the
first ``num_keys`` operands (NaNs mapped after every number), then permutes every operand
the same way: nothing in common with the impl's ``argsort``/``lexsort``. Keys that are
differentiated hold distinct values (finite differences must not reorder them); tied keys
test stability, with only the payload differentiated.
"""

from __future__ import annotations

import math

import numpy as np

from tests.specs import ALL, FLOATS, Case, normal


def _key(v) -> tuple:
    v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return (1, 0.0)
    return (0, v)


def _ref_sort(*operands, dimension, is_stable, num_keys):
    moved = [np.moveaxis(np.asarray(o), dimension, -1) for o in operands]
    outs = [np.empty_like(m) for m in moved]
    for idx in np.ndindex(*moved[0].shape[:-1]):
        lanes = [m[idx] for m in moved]
        order = sorted(
            range(lanes[0].shape[0]),
            key=lambda i, lanes=lanes: tuple(_key(lane[i]) for lane in lanes[:num_keys]),
        )
        for out, lane in zip(outs, lanes, strict=True):
            out[idx] = lane[order]
    return [np.moveaxis(o, -1, dimension) for o in outs]


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Distinct floats (0.37 apart, both signs); small ints and bools (with ties)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return normal(rng, shape, dtype)
    size = int(np.prod(shape, dtype=np.int64))
    perm = rng.permutation(size).reshape(shape) - size // 2
    return (perm * 0.37 + rng.uniform(0, 0.05, shape)).astype(dtype)


def _params(dimension, num_keys=1, is_stable=True):
    return {"dimension": dimension, "is_stable": is_stable, "num_keys": num_keys}


def _one(shape):
    return lambda rng, dt: (distinct(rng, shape, dt),)


CASES: list[Case] = [
    Case("sort", _one((3, 5)), _ref_sort, _params(1), ALL, name="dim1"),
    Case("sort", _one((4, 3)), _ref_sort, _params(0), ALL, name="dim0"),
    Case("sort", _one((2, 3, 4)), _ref_sort, _params(1), ALL, name="3d"),
    Case("sort", _one((6,)), _ref_sort, _params(0, is_stable=False), ALL, name="1d_unstable"),
    Case("sort", _one((3, 0)), _ref_sort, _params(1), ALL, name="size0_dim"),
    Case("sort", _one((0, 4)), _ref_sort, _params(1), ALL, name="empty"),
    Case("sort", _one((1, 4)), _ref_sort, _params(0), ALL, name="size1_dim"),
    Case(
        "sort",
        lambda rng, dt: (
            np.where(rng.random((3, 6)) < 0.3, np.nan, normal(rng, (3, 6), dt)).astype(dt),
        ),
        _ref_sort,
        _params(1),
        FLOATS,
        diff=(),
        name="nan",
    ),
    Case(
        "sort",
        lambda rng, dt: (
            rng.integers(-2, 2, (3, 6)).astype(dt),  # tied keys: the order must be stable
            normal(rng, (3, 6), dt),
        ),
        _ref_sort,
        _params(1),
        FLOATS,
        diff=(1,),
        name="payload_stable",
    ),
    Case(
        "sort",
        lambda rng, dt: (
            rng.integers(-1, 2, (4, 5)).astype(np.int32),  # primary key, with ties
            distinct(rng, (4, 5), dt),  # secondary key breaks them
            normal(rng, (4, 5), dt),  # payload
        ),
        _ref_sort,
        _params(1, num_keys=2),
        FLOATS,
        name="two_keys",
    ),
    Case(
        "sort",
        lambda rng, dt: (rng.random((2, 5)) < 0.5, normal(rng, (2, 5), dt)),
        _ref_sort,
        _params(1),
        ALL,
        name="bool_key_payload",
    ),
]
