"""The primitive spec table that ``tests/test_primitives.py`` walks.

Each family module here defines ``CASES: list[Case]``. A Case says how to make operands for a
primitive and gives an independent NumPy reference; the registry test derives every rule
check from it:

- impl: ``prim.impl(*operands, **params)`` against ``ref(*operands, **params)`` per dtype;
- abstract eval: shapes/dtypes against the impl's result;
- jvp: against central finite differences in float64, to order ``grad_order``, for the
  operands in ``diff`` (default: every floating operand);
- transpose: the dot-product identity ``<A x, y> == <x, A^T y>`` for each group of operand
  indices in ``linear`` (those operands are the linear inputs, the rest stay fixed);
- batch: against a Python loop over a batch of 3, with the batch axis first, last and in the
  middle, and with each operand in turn left unbatched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOATS = (np.float32, np.float64)
INTS = (np.int32, np.int64)
NUMBERS = FLOATS + INTS
ALL = NUMBERS + (np.bool_,)


@dataclass
class Case:
    prim: str
    #: ``make(rng, dtype) -> tuple of operands`` (NumPy arrays/scalars, any dtypes).
    make: Callable[[np.random.Generator, np.dtype], tuple]
    #: NumPy reference: ``ref(*operands, **params)``; an independent expression.
    ref: Callable[..., Any]
    #: Primitive params, or ``params(dtype) -> dict``.
    params: dict | Callable[[np.dtype], dict] = field(default_factory=dict)
    dtypes: tuple = FLOATS
    #: Operand indices to differentiate; None means every floating operand; () none.
    diff: tuple[int, ...] | None = None
    #: Groups of operand indices in which the primitive is linear (transpose checks).
    linear: tuple[tuple[int, ...], ...] = ()
    grad_order: int = 2
    batch: bool = True
    name: str = ""
    rtol: float | None = None
    atol: float | None = None

    def get_params(self, dtype: Any) -> dict:
        return self.params(np.dtype(dtype)) if callable(self.params) else dict(self.params)

    @property
    def id(self) -> str:
        return f"{self.prim}-{self.name}" if self.name else self.prim


def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Random operand of ``dtype``: normals for floats, small ints, random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-5 if dtype.kind == "i" else 0, 6, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise TypeError(dtype)


def positive(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(0.5, 2.0, shape).astype(dtype)
    return rng.integers(1, 6, shape).astype(dtype)


def uniform(rng, shape, dtype, lo=-0.9, hi=0.9):
    return rng.uniform(lo, hi, shape).astype(dtype)
