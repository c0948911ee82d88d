"""Spec cases for comparisons, logical/bitwise operations and shifts (funcgrad/lax/logical.py).

None of these has a derivative (``diff=()``; the jvp is a symbolic zero) and none is linear.
Comparison operands are drawn from a few small integer values so that ties are common.
Shift references work on Python integers with the out-of-range rule spelled out (amounts
outside ``[0, bits)`` give 0, or the sign fill for the arithmetic right shift), and
``population_count`` counts the characters of ``bin()`` of the two's-complement pattern.
"""

from __future__ import annotations

import numpy as np

from tests.specs import ALL, INTS, Case

SHAPES = [((3, 4), (4,)), ((2, 1, 3), (1, 4, 1)), ((), ()), ((0, 3), (1, 3)), ((1,), (2, 1))]
INT_OR_BOOL = INTS + (np.bool_,)


def _shape_name(*shapes: tuple[int, ...]) -> str:
    return "|".join("x".join(map(str, s)) if s else "scalar" for s in shapes)


def _few_values(rng, shape, dtype):
    """Values in {-2..2} (bools: random), so that equal operands are common."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0 if dtype.kind == "u" else -2, 3, shape).astype(dtype)


def _full_range(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _shift_amounts(rng, shape, dtype):
    """Amounts in [-2, bits + 2): in range mostly, some negative or too large."""
    bits = np.dtype(dtype).itemsize * 8
    return rng.integers(-2, bits + 2, shape).astype(dtype)


def _binary(prim, ref, draw_x, draw_y, dtypes, tag=""):
    return [
        Case(
            prim,
            lambda rng, dt, sx=sx, sy=sy: (draw_x(rng, sx, dt), draw_y(rng, sy, dt)),
            ref,
            dtypes=dtypes,
            diff=(),
            name=_shape_name(sx, sy) + (f"-{tag}" if tag else ""),
        )
        for sx, sy in SHAPES
    ]


# -- references on Python integers


def _wrap(v: int, bits: int) -> int:
    """The signed two's-complement value of the low ``bits`` bits of ``v``."""
    v %= 1 << bits
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _python_int_ref(fn):
    def ref(x, y=None):
        dtype = np.result_type(x)
        bits = dtype.itemsize * 8
        args = (x,) if y is None else (x, y)
        return np.vectorize(lambda *a: fn(*map(int, a), bits), otypes=[dtype])(*args)

    return ref


@_python_int_ref
def _shift_left_ref(a, b, bits):
    return _wrap(a << b, bits) if 0 <= b < bits else 0


@_python_int_ref
def _shift_right_arithmetic_ref(a, b, bits):
    if 0 <= b < bits:
        return a >> b
    return -1 if a < 0 else 0


@_python_int_ref
def _shift_right_logical_ref(a, b, bits):
    return _wrap((a % (1 << bits)) >> b, bits) if 0 <= b < bits else 0


@_python_int_ref
def _population_count_ref(a, bits):
    return bin(a % (1 << bits)).count("1")


def _logical_or_bitwise(logical, bitwise):
    return lambda *a: logical(*a) if np.result_type(a[0]) == np.bool_ else bitwise(*a)


CASES: list[Case] = []

for _prim, _ref in [
    ("eq", lambda x, y: ~(x != y)),
    ("ne", lambda x, y: ~(x == y)),
    ("lt", lambda x, y: y > x),
    ("le", lambda x, y: y >= x),
    ("gt", lambda x, y: y < x),
    ("ge", lambda x, y: y <= x),
]:
    CASES += _binary(_prim, _ref, _few_values, _few_values, ALL)

CASES += [
    Case(
        "eq",
        lambda rng, dt: (np.array([np.nan, 1.0, np.inf], dt), np.array([np.nan, 1.0, -np.inf], dt)),
        lambda x, y: np.array([False, True, False]),
        diff=(),
        name="nan",
    ),
    Case(
        "ne",
        lambda rng, dt: (np.array([np.nan, 1.0, np.inf], dt), np.array([np.nan, 1.0, -np.inf], dt)),
        lambda x, y: np.array([True, False, True]),
        diff=(),
        name="nan",
    ),
]

CASES += _binary("and", lambda x, y: x & y, _full_range, _full_range, INTS)
CASES += _binary("and", np.logical_and, _few_values, _few_values, (np.bool_,), tag="bool")
CASES += _binary("or", lambda x, y: x | y, _full_range, _full_range, INTS)
CASES += _binary("or", np.logical_or, _few_values, _few_values, (np.bool_,), tag="bool")
CASES += _binary("xor", lambda x, y: x ^ y, _full_range, _full_range, INTS)
CASES += _binary("xor", np.logical_xor, _few_values, _few_values, (np.bool_,), tag="bool")
CASES += [
    Case(
        "not",
        lambda rng, dt, s=s: (_full_range(rng, s, dt) if dt != np.bool_ else rng.random(s) < 0.5,),
        _logical_or_bitwise(np.logical_not, lambda x: -1 - x),
        dtypes=INT_OR_BOOL,
        diff=(),
        name=_shape_name(s),
    )
    for s in [(3, 4), (), (0, 3), (1,)]
]

CASES += _binary("shift_left", _shift_left_ref, _full_range, _shift_amounts, INTS)
CASES += _binary(
    "shift_right_arithmetic", _shift_right_arithmetic_ref, _full_range, _shift_amounts, INTS
)
CASES += _binary("shift_right_logical", _shift_right_logical_ref, _full_range, _shift_amounts, INTS)
CASES += [
    Case(
        "population_count",
        lambda rng, dt, s=s: (_full_range(rng, s, dt),),
        _population_count_ref,
        dtypes=INTS,
        diff=(),
        name=_shape_name(s),
    )
    for s in [(3, 4), (), (0, 3), (1,)]
]
