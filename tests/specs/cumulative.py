"""Spec cases for the cumulative primitives (funcgrad/lax/cumulative.py).

The reference is a plain loop along the axis that folds with the NumPy ufunc (``np.add``,
``np.multiply``, ``np.maximum``, ``np.minimum``, ``np.logaddexp``), so it shares nothing
with the impls' ``np.cumsum``/``accumulate``. Each primitive runs forwards and in reverse,
on a middle axis, on size-0 and size-1 axes; cumprod also with zeros (whose derivatives
the jvp must get right); cummax/cummin on distinct values (ties and NaNs for values only).
"""

from __future__ import annotations

import numpy as np

from tests.specs import FLOATS, NUMBERS, Case, normal

ORDERED = NUMBERS + (np.bool_,)


def _scan_ref(op):
    def ref(x, *, axis, reverse):
        moved = np.moveaxis(np.asarray(x), axis, 0)
        order = range(moved.shape[0] - 1, -1, -1) if reverse else range(moved.shape[0])
        out = np.empty_like(moved)
        acc = None
        for i in order:
            acc = moved[i].copy() if acc is None else op(acc, moved[i]).astype(x.dtype)
            out[i] = acc
        return np.moveaxis(out, 0, axis)

    return ref


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Pairwise distinct values (0.37 apart for floats) of both signs; random bools."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    perm = rng.permutation(size).reshape(shape) - size // 2
    if dtype.kind == "f":
        return (perm * 0.37 + rng.uniform(0, 0.05, shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return perm.astype(dtype)


def _with_zeros(rng, shape, dtype):
    x = rng.uniform(-2, 2, shape).astype(dtype)
    x[0, 1] = 0
    x[2, 0] = 0
    x[2, 3] = 0
    return x


def _variants(prim, ref, make, dtypes, **kw):
    """The case on axis 1 of (3, 4, 2) forwards and in reverse, plus size-0/size-1 axes."""
    return [
        Case(prim, make((3, 4, 2)), ref, {"axis": 1, "reverse": False}, dtypes, name="ax1", **kw),
        Case(prim, make((3, 4, 2)), ref, {"axis": 1, "reverse": True}, dtypes, name="rev", **kw),
        Case(prim, make((5, 3)), ref, {"axis": 0, "reverse": True}, dtypes, name="ax0", **kw),
        Case(prim, make((2, 0)), ref, {"axis": 1, "reverse": False}, dtypes, name="size0", **kw),
        Case(prim, make((0, 3)), ref, {"axis": 1, "reverse": True}, dtypes, name="empty", **kw),
        Case(prim, make((1, 3)), ref, {"axis": 0, "reverse": False}, dtypes, name="size1", **kw),
    ]


def _normal(shape):
    return lambda rng, dt: (normal(rng, shape, dt),)


def _small(shape):
    """Factors near 1 in size, both signs (products stay tame); small ints."""

    def make(rng, dt):
        if np.dtype(dt).kind == "f":
            x = rng.uniform(0.6, 1.5, shape) * rng.choice([-1, 1], shape)
        else:
            x = rng.integers(-3, 4, shape)
        return (x.astype(dt),)

    return make


def _distinct(shape):
    return lambda rng, dt: (distinct(rng, shape, dt),)


CASES: list[Case] = []

CASES += _variants("cumsum", _scan_ref(np.add), _normal, NUMBERS, linear=((0,),))
CASES += _variants("cumprod", _scan_ref(np.multiply), _small, NUMBERS)
CASES += [
    Case(
        "cumprod",
        lambda rng, dt: (_with_zeros(rng, (3, 5), dt),),
        _scan_ref(np.multiply),
        {"axis": 1, "reverse": reverse},
        FLOATS,
        name=f"zeros_rev{int(reverse)}",
    )
    for reverse in (False, True)
]

for _prim, _op in (("cummax", np.maximum), ("cummin", np.minimum)):
    CASES += _variants(_prim, _scan_ref(_op), _distinct, ORDERED)
    CASES += [
        Case(
            _prim,
            lambda rng, dt: (rng.integers(-2, 2, (3, 6)).astype(dt),),
            _scan_ref(_op),
            {"axis": 1, "reverse": False},
            NUMBERS,
            diff=(),
            name="ties",
        ),
        Case(
            _prim,
            lambda rng, dt: (
                np.where(rng.random((3, 5)) < 0.3, np.nan, normal(rng, (3, 5), dt)).astype(dt),
            ),
            _scan_ref(_op),
            {"axis": 1, "reverse": True},
            FLOATS,
            diff=(),
            name="nan",
        ),
    ]

CASES += _variants("cumlogsumexp", _scan_ref(np.logaddexp), _normal, FLOATS)
CASES += [
    Case(
        "cumlogsumexp",
        lambda rng, dt: ((rng.standard_normal((2, 6)) * 30).astype(dt),),
        _scan_ref(np.logaddexp),
        {"axis": 1, "reverse": False},
        FLOATS,
        name="wide_range",
    )
]
