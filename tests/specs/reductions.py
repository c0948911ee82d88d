"""Spec cases for the reductions (funcgrad/lax/reductions.py).

References: ``np.add.reduce``/``np.multiply.reduce`` with an explicit dtype, ``np.amax``/
``np.amin``, ``np.all``/``np.any`` (bools) and ``functools.reduce`` of ``&``/``|``
(integers), ``np.argmax``/``np.argmin``. Operands whose max/min are differentiated hold
distinct values well apart (finite differences must not cross a tie); tie and NaN cases
are checked for values only (``diff=()``). Shapes cover several axes, no axes, size-0 and
size-1 dims, and (for floats) an empty reduced axis, whose max is -inf.
"""

from __future__ import annotations

import functools

import numpy as np

from tests.specs import ALL, FLOATS, INTS, NUMBERS, Case, normal

ORDERED = NUMBERS + (np.bool_,)
BITWISE = INTS + (np.bool_,)


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Values that are pairwise distinct (at least 0.37 apart for floats), both signs."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    perm = rng.permutation(size).reshape(shape) - size // 2
    if dtype.kind == "f":
        return (perm * 0.37 + rng.uniform(0, 0.05, shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return perm.astype(dtype)


def ties(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Few distinct values, so that maxima and minima repeat."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(-2, 2, shape).astype(dtype)


def _ref_sum(x, *, axes):
    return np.asarray(np.add.reduce(x, axis=axes, dtype=x.dtype))


def _ref_prod(x, *, axes):
    return np.asarray(np.multiply.reduce(x, axis=axes, dtype=x.dtype))


def _ref_max(x, *, axes):
    if x.dtype.kind == "f" and any(x.shape[a] == 0 for a in axes):
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return np.full(shape, -np.inf, x.dtype)
    return np.asarray(np.amax(x, axis=axes))


def _ref_min(x, *, axes):
    if x.dtype.kind == "f" and any(x.shape[a] == 0 for a in axes):
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return np.full(shape, np.inf, x.dtype)
    return np.asarray(np.amin(x, axis=axes))


def _bitwise_ref(op, identity, bool_fn):
    def ref(x, *, axes):
        if x.dtype == np.bool_:
            return np.asarray(bool_fn(x, axis=axes))
        # Move the reduced axes to the front and fold them one element at a time.
        kept = [i for i in range(x.ndim) if i not in axes]
        moved = np.transpose(x, list(axes) + kept).reshape(-1, *[x.shape[i] for i in kept])
        start = np.full(moved.shape[1:], identity, x.dtype)
        return np.asarray(functools.reduce(op, list(moved), start), dtype=x.dtype)

    return ref


def _ref_argmax(x, *, axes, index_dtype):
    return np.asarray(np.argmax(x, axis=axes[0])).astype(index_dtype)


def _ref_argmin(x, *, axes, index_dtype):
    return np.asarray(np.argmin(x, axis=axes[0])).astype(index_dtype)


def _with_nans(rng, shape, dtype):
    x = distinct(rng, shape, dtype)
    x[0, 1] = np.nan
    x[2, 3] = np.nan
    x[2, 0] = np.nan
    return x


def _with_zeros(rng, shape, dtype):
    x = rng.uniform(-2, 2, shape).astype(dtype)
    x[0, 1] = 0  # one zero in row 0, two in row 2 (products and their derivatives)
    x[2, 0] = 0
    x[2, 3] = 0
    return x


CASES: list[Case] = []

# -- reduce_sum
CASES += [
    Case(
        "reduce_sum",
        lambda rng, dt: (normal(rng, (3, 4, 5), dt),),
        _ref_sum,
        {"axes": (0, 2)},
        NUMBERS,
        linear=((0,),),
        name="axes02",
    ),
    Case(
        "reduce_sum",
        lambda rng, dt: (normal(rng, (2, 0, 3), dt),),
        _ref_sum,
        {"axes": (1,)},
        NUMBERS,
        linear=((0,),),
        name="empty_axis",
    ),
    Case(
        "reduce_sum",
        lambda rng, dt: (normal(rng, (1, 4), dt),),
        _ref_sum,
        {"axes": (0, 1)},
        NUMBERS,
        linear=((0,),),
        name="size1_all",
    ),
    Case(
        "reduce_sum",
        lambda rng, dt: (normal(rng, (3, 2), dt),),
        _ref_sum,
        {"axes": ()},
        NUMBERS,
        linear=((0,),),
        name="no_axes",
    ),
]

# -- reduce_max and reduce_min
for _prim, _ref in (("reduce_max", _ref_max), ("reduce_min", _ref_min)):
    CASES += [
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (3, 4, 5), dt),),
            _ref,
            {"axes": (1,)},
            ORDERED,
            name="axis1",
        ),
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (3, 1, 4), dt),),
            _ref,
            {"axes": (0, 2)},
            ORDERED,
            name="axes02",
        ),
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (2, 3), dt),),
            _ref,
            {"axes": ()},
            ORDERED,
            name="no_axes",
        ),
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (0, 3), dt),),
            _ref,
            {"axes": (1,)},
            ORDERED,
            name="empty_output",
        ),
        Case(
            _prim,
            lambda rng, dt: (ties(rng, (4, 5), dt),),
            _ref,
            {"axes": (1,)},
            ORDERED,
            diff=(),
            name="ties",
        ),
        Case(
            _prim,
            lambda rng, dt: (normal(rng, (3, 0), dt),),
            _ref,
            {"axes": (1,)},
            FLOATS,
            diff=(),
            name="empty_axis_inf",
        ),
        Case(
            _prim,
            lambda rng, dt: (_with_nans(rng, (3, 4), dt),),
            _ref,
            {"axes": (1,)},
            FLOATS,
            diff=(),
            name="nan",
        ),
    ]

# -- reduce_prod
CASES += [
    Case(
        "reduce_prod",
        lambda rng, dt: (rng.uniform(-1.5, 1.5, (3, 4, 2)).astype(dt),),
        _ref_prod,
        {"axes": (0, 2)},
        FLOATS,
        name="axes02",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (normal(rng, (3, 4), dt),),
        _ref_prod,
        {"axes": (1,)},
        INTS,
        name="ints",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (_with_zeros(rng, (3, 4), dt),),
        _ref_prod,
        {"axes": (1,)},
        FLOATS,
        name="zeros",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (_with_zeros(rng, (3, 4), dt),),
        _ref_prod,
        {"axes": (0, 1)},
        FLOATS,
        name="zeros_all",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (normal(rng, (2, 0, 3), dt),),
        _ref_prod,
        {"axes": (1,)},
        NUMBERS,
        name="empty_axis",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (normal(rng, (1, 3), dt),),
        _ref_prod,
        {"axes": (0,)},
        NUMBERS,
        name="size1",
    ),
    Case(
        "reduce_prod",
        lambda rng, dt: (normal(rng, (3, 2), dt),),
        _ref_prod,
        {"axes": ()},
        FLOATS,
        name="no_axes",
    ),
]

# -- reduce_and and reduce_or (logical for bool, bitwise for integers)
_and_ref = _bitwise_ref(np.bitwise_and, -1, np.all)
_or_ref = _bitwise_ref(np.bitwise_or, 0, np.any)
for _prim, _ref in (("reduce_and", _and_ref), ("reduce_or", _or_ref)):
    CASES += [
        Case(
            _prim,
            lambda rng, dt: (normal(rng, (3, 4, 2), dt),),
            _ref,
            {"axes": (0, 2)},
            BITWISE,
            name="axes02",
        ),
        Case(
            _prim,
            lambda rng, dt: (normal(rng, (3, 0), dt),),
            _ref,
            {"axes": (1,)},
            BITWISE,
            name="empty_axis",
        ),
        Case(
            _prim,
            lambda rng, dt: (normal(rng, (1, 5), dt),),
            _ref,
            {"axes": (1,)},
            BITWISE,
            name="size1",
        ),
    ]

# -- argmax and argmin
for _prim, _ref in (("argmax", _ref_argmax), ("argmin", _ref_argmin)):
    CASES += [
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (3, 4, 2), dt),),
            _ref,
            {"axes": (1,), "index_dtype": np.dtype(np.int32)},
            ORDERED,
            name="axis1",
        ),
        Case(
            _prim,
            lambda rng, dt: (ties(rng, (4, 5), dt),),
            _ref,
            {"axes": (0,), "index_dtype": np.dtype(np.int64)},
            ALL,
            diff=(),
            name="ties_int64",
        ),
        Case(
            _prim,
            lambda rng, dt: (_with_nans(rng, (3, 4), dt),),
            _ref,
            {"axes": (1,), "index_dtype": np.dtype(np.int32)},
            FLOATS,
            name="nan",
        ),
        Case(
            _prim,
            lambda rng, dt: (distinct(rng, (0, 1, 3), dt),),
            _ref,
            {"axes": (2,), "index_dtype": np.dtype(np.int32)},
            NUMBERS,
            name="size0_size1",
        ),
    ]
