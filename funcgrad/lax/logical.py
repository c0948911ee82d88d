"""Comparisons, logical/bitwise operations and shifts: elementwise, with no derivative.

Every primitive here is piecewise constant or integer-valued, so its jvp is a symbolic zero
(``ad.defjvp_zero``) and none is linear. Binary operands share a dtype and broadcast by
NumPy's rules (``funcgrad.numpy`` promotes first); the batch rules come from the family
helpers.

Semantics follow JAX's ``lax``:
- ``eq ne lt le gt ge`` take operands of any dtype and give bool.
- ``and or xor not`` (JAX's primitive names; the functions are ``bitwise_and`` ...) are
  logical on bool and bitwise on integers.
- Shifts take integers. A shift amount outside ``[0, bits)`` (negative or too large) gives 0
  for ``shift_left`` and ``shift_right_logical``, and the sign fill (0 or -1) for
  ``shift_right_arithmetic``, as XLA (NumPy's shifts agree).
- ``population_count`` counts the set bits of the two's-complement pattern (of a negative
  integer too) and keeps the dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.core import Primitive
from funcgrad.interpreters.ad import defjvp_zero
from funcgrad.lax._base import (
    ANY,
    INT,
    INT_OR_BOOL,
    promote_scalars,
    standard_naryop,
    standard_unop,
)

_BOOL = np.dtype(np.bool_)


def _comparison(name: str, impl: Any) -> Primitive:
    prim = standard_naryop(name, impl, ANY, result_dtype=_BOOL)
    defjvp_zero(prim)
    return prim


# -- eq
eq_p = _comparison("eq", np.equal)


def eq(x: Any, y: Any) -> Any:
    """Elementwise ``x == y`` (bool result)."""
    return eq_p.bind(*promote_scalars(x, y))


# -- ne
ne_p = _comparison("ne", np.not_equal)


def ne(x: Any, y: Any) -> Any:
    """Elementwise ``x != y`` (bool result; true where either is NaN)."""
    return ne_p.bind(*promote_scalars(x, y))


# -- lt
lt_p = _comparison("lt", np.less)


def lt(x: Any, y: Any) -> Any:
    """Elementwise ``x < y`` (bool result)."""
    return lt_p.bind(*promote_scalars(x, y))


# -- le
le_p = _comparison("le", np.less_equal)


def le(x: Any, y: Any) -> Any:
    """Elementwise ``x <= y`` (bool result)."""
    return le_p.bind(*promote_scalars(x, y))


# -- gt
gt_p = _comparison("gt", np.greater)


def gt(x: Any, y: Any) -> Any:
    """Elementwise ``x > y`` (bool result)."""
    return gt_p.bind(*promote_scalars(x, y))


# -- ge
ge_p = _comparison("ge", np.greater_equal)


def ge(x: Any, y: Any) -> Any:
    """Elementwise ``x >= y`` (bool result)."""
    return ge_p.bind(*promote_scalars(x, y))


# -- and
and_p = standard_naryop("and", np.bitwise_and, INT_OR_BOOL)
defjvp_zero(and_p)


def bitwise_and(x: Any, y: Any) -> Any:
    """Elementwise logical (bool) or bitwise (integers) AND."""
    return and_p.bind(*promote_scalars(x, y))


# -- or
or_p = standard_naryop("or", np.bitwise_or, INT_OR_BOOL)
defjvp_zero(or_p)


def bitwise_or(x: Any, y: Any) -> Any:
    """Elementwise logical (bool) or bitwise (integers) OR."""
    return or_p.bind(*promote_scalars(x, y))


# -- xor
xor_p = standard_naryop("xor", np.bitwise_xor, INT_OR_BOOL)
defjvp_zero(xor_p)


def bitwise_xor(x: Any, y: Any) -> Any:
    """Elementwise logical (bool) or bitwise (integers) XOR."""
    return xor_p.bind(*promote_scalars(x, y))


# -- not
not_p = standard_unop("not", np.invert, INT_OR_BOOL)
defjvp_zero(not_p)


def bitwise_not(x: Any) -> Any:
    """Elementwise logical (bool) or bitwise (integers) NOT."""
    return not_p.bind(*promote_scalars(x))


# -- shifts
def _unsigned(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{dtype.itemsize}")


def _shift_left_impl(x, y):
    # NumPy's shifts give 0 for amounts outside [0, bits), as XLA.
    return np.left_shift(x, y)


def _shift_right_arithmetic_impl(x, y):
    # Outside [0, bits) NumPy gives the sign fill, as XLA.
    return np.right_shift(x, y)


def _shift_right_logical_impl(x, y):
    x = np.asarray(x)
    if x.dtype.kind == "u":
        return np.right_shift(x, y)
    u = _unsigned(x.dtype)
    # A negative amount becomes a huge unsigned one: out of range, so 0.
    out = np.right_shift(x.view(u), np.asarray(y).astype(u))
    return np.asarray(out).view(x.dtype)


shift_left_p = standard_naryop("shift_left", _shift_left_impl, INT)
defjvp_zero(shift_left_p)


def shift_left(x: Any, y: Any) -> Any:
    """Elementwise ``x << y``; 0 where ``y`` is outside ``[0, bits)``."""
    return shift_left_p.bind(*promote_scalars(x, y))


shift_right_arithmetic_p = standard_naryop(
    "shift_right_arithmetic", _shift_right_arithmetic_impl, INT
)
defjvp_zero(shift_right_arithmetic_p)


def shift_right_arithmetic(x: Any, y: Any) -> Any:
    """Elementwise sign-filling ``x >> y``; the sign fill where ``y`` is outside ``[0, bits)``."""
    return shift_right_arithmetic_p.bind(*promote_scalars(x, y))


shift_right_logical_p = standard_naryop("shift_right_logical", _shift_right_logical_impl, INT)
defjvp_zero(shift_right_logical_p)


def shift_right_logical(x: Any, y: Any) -> Any:
    """Elementwise zero-filling ``x >> y``; 0 where ``y`` is outside ``[0, bits)``."""
    return shift_right_logical_p.bind(*promote_scalars(x, y))


# -- population_count
def _population_count_impl(x):
    x = np.asarray(x)
    # np.bitwise_count counts the bits of |x|; count the two's-complement pattern instead.
    bits = x.view(_unsigned(x.dtype)) if x.dtype.kind == "i" else x
    return np.asarray(np.bitwise_count(bits)).astype(x.dtype)


population_count_p = standard_unop("population_count", _population_count_impl, INT)
defjvp_zero(population_count_p)


def population_count(x: Any) -> Any:
    """Elementwise number of set bits (of the two's-complement pattern); dtype kept."""
    return population_count_p.bind(*promote_scalars(x))
