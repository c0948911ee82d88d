"""Spec cases for the elementwise math primitives (funcgrad/lax/elementwise.py).

References are independent NumPy expressions where one exists (``sinh`` from ``exp``,
``rsqrt`` as ``1 / sqrt``, ``atan2`` as the angle of a complex number, ``rem`` with
``math.fmod``, truncating integer division from ``abs`` and ``sign``), and the NumPy/SciPy
function of the same meaning otherwise (``np.sin``, ``scipy.special.erf``).

Operands come from each function's domain and away from its kinks (``floor`` away from
integers, ``abs`` away from 0, ``rem`` away from multiples of the divisor, ``max`` without
ties), so that finite differences are meaningful. Every unary primitive runs on shapes
(3, 4), (), (0, 3) and (1,); every binary one on (3, 4)|(4,), (2, 1, 3)|(1, 4, 1), ()|(),
(0, 3)|(1, 3) and (1,)|(2, 1).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

from tests.specs import ALL, FLOATS, INTS, NUMBERS, Case, normal, positive, uniform

UNARY_SHAPES = [(3, 4), (), (0, 3), (1,)]
BINARY_SHAPES = [((3, 4), (4,)), ((2, 1, 3), (1, 4, 1)), ((), ()), ((0, 3), (1, 3)), ((1,), (2, 1))]


def _shape_name(*shapes: tuple[int, ...]) -> str:
    return "|".join("x".join(map(str, s)) if s else "scalar" for s in shapes)


# -- operand draws: draw(rng, shape, dtype) -> array


def _away_from_zero(rng, shape, dtype):
    """Magnitudes in [0.5, 2] with random signs (ints: +-1..5)."""
    mag = positive(rng, shape, dtype)
    signs = np.where(rng.random(shape) < 0.5, -1, 1).astype(dtype)
    return (mag * signs).astype(dtype)


def _fractional(rng, shape, dtype):
    """k + f with k in [-3, 3] and f in [0.1, 0.4] or [0.6, 0.9]: away from integers and ties."""
    k = rng.integers(-3, 4, shape)
    f = rng.uniform(0.1, 0.4, shape) + np.where(rng.random(shape) < 0.5, 0.0, 0.5)
    return (k + f).astype(dtype)


def _ties(rng, shape, dtype):
    """Half-integers and ordinary fractions: checks how ``round`` breaks ties."""
    k = rng.integers(-3, 4, shape)
    f = rng.choice([0.5, 0.25, 0.75], shape)
    return (k + f).astype(dtype)


def _with_nonfinite(rng, shape, dtype):
    x = normal(rng, shape, dtype)
    special = rng.choice(np.array([np.inf, -np.inf, np.nan], dtype), shape)
    return np.where(rng.random(shape) < 0.3, special, x).astype(dtype)


def _unary(prim, ref, draw=normal, dtypes=FLOATS, shapes=UNARY_SHAPES, tag="", **kw):
    return [
        Case(
            prim,
            lambda rng, dt, s=s: (draw(rng, s, dt),),
            ref,
            dtypes=dtypes,
            name=_shape_name(s) + (f"-{tag}" if tag else ""),
            **kw,
        )
        for s in shapes
    ]


def _binary(
    prim, ref, draw_x=normal, draw_y=normal, dtypes=FLOATS, shapes=BINARY_SHAPES, tag="", **kw
):
    return [
        Case(
            prim,
            lambda rng, dt, sx=sx, sy=sy: (draw_x(rng, sx, dt), draw_y(rng, sy, dt)),
            ref,
            dtypes=dtypes,
            name=_shape_name(sx, sy) + (f"-{tag}" if tag else ""),
            **kw,
        )
        for sx, sy in shapes
    ]


# -- references that need a few lines


def _sign_ref(x):
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def _round_ref(x, *, rounding_method):
    if rounding_method == 1:
        return np.round(x)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(x.dtype)


def _trunc_div_ref(x, y):
    """Integer division rounding toward zero, from magnitudes and signs."""
    x, y = np.broadcast_arrays(x, y)
    q = (np.abs(x) // np.abs(y)) * np.sign(x) * np.sign(y)
    return np.asarray(q).astype(x.dtype)


def _int_rem_ref(x, y):
    return np.asarray(x - y * _trunc_div_ref(x, y)).astype(np.result_type(x))


def _float_rem_ref(x, y):
    return np.vectorize(math.fmod, otypes=[np.result_type(x)])(x, y)


def _rem_operands(rng, sx, sy, dtype):
    """|x| = k + f (k in 0..2, f in [0.3, 0.7]) and |y| in [1, 1.1], random signs: every
    broadcast pair has x / y at least 0.09 away from an integer (no jumps of rem)."""
    x = rng.integers(0, 3, sx) + rng.uniform(0.3, 0.7, sx)
    y = rng.uniform(1.0, 1.1, sy)
    x = np.where(rng.random(sx) < 0.5, -x, x)
    y = np.where(rng.random(sy) < 0.5, -y, y)
    return x.astype(dtype), y.astype(dtype)


def _select_ref(which, *cases):
    if which.dtype == np.bool_:
        return np.where(which, cases[1], cases[0])
    return np.choose(which.astype(np.intp), cases)


CASES: list[Case] = []

# ---------------------------------------------------------------------------------------
# unary

CASES += _unary("neg", lambda x: -x, dtypes=NUMBERS, linear=((0,),))
CASES += _unary("sign", _sign_ref, _away_from_zero, dtypes=NUMBERS)
CASES += _unary("abs", lambda x: np.where(x < 0, -x, x), _away_from_zero, dtypes=NUMBERS)
CASES += _unary("floor", np.floor, _fractional)
CASES += _unary("ceil", lambda x: -np.floor(-x), _fractional)
CASES += _unary("round", _round_ref, _fractional, params=dict(rounding_method=1))
CASES += _unary(
    "round", _round_ref, _ties, params=dict(rounding_method=1), diff=(), tag="even-ties"
)
CASES += _unary(
    "round", _round_ref, _ties, params=dict(rounding_method=0), diff=(), tag="away-ties"
)
CASES += _unary("is_finite", lambda x: ~(np.isnan(x) | np.isinf(x)), _with_nonfinite, diff=())
CASES += _unary("exp", lambda x: np.e**x)
CASES += _unary("exp2", lambda x: 2.0**x)
CASES += _unary("expm1", np.expm1)
CASES += _unary("log", np.log, positive)
CASES += _unary("log1p", np.log1p, lambda rng, s, dt: uniform(rng, s, dt, -0.5, 2.0))
CASES += _unary("sqrt", lambda x: x**0.5, positive)
CASES += _unary("rsqrt", lambda x: 1.0 / np.sqrt(x), positive)
CASES += _unary("cbrt", lambda x: np.sign(x) * np.abs(x) ** (1.0 / 3.0), _away_from_zero)
CASES += _unary("square", lambda x: x * x, dtypes=NUMBERS)
CASES += _unary("sin", np.sin)
CASES += _unary("cos", np.cos)
CASES += _unary("tan", lambda x: np.sin(x) / np.cos(x), lambda r, s, d: uniform(r, s, d, -1.2, 1.2))
CASES += _unary("asin", np.arcsin, uniform)
CASES += _unary("acos", np.arccos, uniform)
CASES += _unary("atan", np.arctan)
CASES += _unary("sinh", lambda x: (np.exp(x) - np.exp(-x)) / 2)
CASES += _unary("cosh", lambda x: (np.exp(x) + np.exp(-x)) / 2)
CASES += _unary("tanh", np.tanh)
CASES += _unary("asinh", np.arcsinh)
CASES += _unary("acosh", np.arccosh, lambda r, s, d: uniform(r, s, d, 1.5, 3.0))
CASES += _unary("atanh", np.arctanh, uniform)
CASES += _unary("logistic", lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)))
CASES += _unary("erf", scipy.special.erf)
CASES += _unary("erf_inv", scipy.special.erfinv, uniform)
CASES += _unary(
    "integer_pow", lambda x, *, y: x * x * x, dtypes=NUMBERS, params=dict(y=3), tag="cube"
)
CASES += _unary(
    "integer_pow",
    lambda x, *, y: 1 / (x * x),
    _away_from_zero,
    params=dict(y=-2),
    tag="inverse-square",
)
CASES += _unary(
    "integer_pow",
    lambda x, *, y: np.ones_like(x),
    dtypes=NUMBERS,
    params=dict(y=0),
    shapes=[(3, 4)],
    tag="zeroth",
)
CASES += _unary(
    "integer_pow", lambda x, *, y: x.copy(), params=dict(y=1), shapes=[(3, 4)], tag="first"
)

# ---------------------------------------------------------------------------------------
# binary

CASES += _binary("add", lambda x, y: x + y, dtypes=NUMBERS, linear=((0, 1),))
CASES += _binary("sub", lambda x, y: x - y, dtypes=NUMBERS, linear=((0, 1),))
CASES += _binary("mul", lambda x, y: x * y, dtypes=NUMBERS, linear=((0,), (1,)))
CASES += _binary("div", lambda x, y: x / y, draw_y=_away_from_zero, linear=((0,),))
CASES += _binary("div", _trunc_div_ref, draw_y=_away_from_zero, dtypes=INTS, tag="int")
CASES += [
    Case(
        "rem",
        lambda rng, dt, sx=sx, sy=sy: _rem_operands(rng, sx, sy, dt),
        _float_rem_ref,
        name=_shape_name(sx, sy),
    )
    for sx, sy in BINARY_SHAPES
]
CASES += _binary("rem", _int_rem_ref, draw_y=_away_from_zero, dtypes=INTS, tag="int")


def _small_with_zero(rng, shape, dtype):
    return rng.integers(-2, 3, shape).astype(dtype)


def _by_zero(ref):
    """Integer division by 0 gives 0 (NumPy's answer, without a warning)."""

    def zero_safe(x, y):
        x, y = np.broadcast_arrays(x, y)
        out = ref(x, np.where(y == 0, 1, y).astype(y.dtype))
        return np.where(y == 0, 0, out).astype(x.dtype)

    return zero_safe


CASES += _binary(
    "div",
    _by_zero(_trunc_div_ref),
    draw_y=_small_with_zero,
    dtypes=INTS,
    shapes=BINARY_SHAPES[:2],
    tag="int-by-zero",
)
CASES += _binary(
    "rem",
    _by_zero(_int_rem_ref),
    draw_y=_small_with_zero,
    dtypes=INTS,
    shapes=BINARY_SHAPES[:2],
    tag="int-by-zero",
)
CASES += _binary("pow", lambda x, y: np.exp(y * np.log(x)), draw_x=positive)
CASES += _binary("max", lambda x, y: np.where(x > y, x, y), dtypes=ALL)
CASES += _binary("min", lambda x, y: np.where(x < y, x, y), dtypes=ALL)
CASES += _binary(
    "atan2", lambda x, y: np.asarray(np.angle(y + 1j * x)).astype(np.result_type(x, y))
)
CASES += _binary("nextafter", np.nextafter)


def _clamp_operands(shapes):
    """lo < 0 < hi, x around them (floats: no ties with lo or hi)."""
    s_lo, s_x, s_hi = shapes

    def make(rng, dt):
        if dt.kind == "f":
            lo, hi = uniform(rng, s_lo, dt, -0.7, -0.3), uniform(rng, s_hi, dt, 0.3, 0.7)
        else:
            lo, hi = rng.integers(-3, 0, s_lo).astype(dt), rng.integers(1, 4, s_hi).astype(dt)
        return lo, normal(rng, s_x, dt), hi

    return make


CASES += [
    Case(
        "clamp",
        _clamp_operands(shapes),
        lambda lo, x, hi: np.minimum(np.maximum(x, lo), hi).astype(x.dtype),
        dtypes=NUMBERS,
        name=_shape_name(*shapes),
    )
    for shapes in [((), (3, 4), (4,)), ((3, 4), (3, 4), (3, 4)), ((1,), (0, 3), ()), ((), (), ())]
]

# ---------------------------------------------------------------------------------------
# select_n


def _select_bool(shapes):
    s_w, s_a, s_b = shapes
    return lambda rng, dt: (rng.random(s_w) < 0.5, normal(rng, s_a, dt), normal(rng, s_b, dt))


def _select_int(shapes):
    s_w, *s_cases = shapes
    return lambda rng, dt: (
        rng.integers(0, len(s_cases), s_w).astype(np.int32),
        *(normal(rng, s, dt) for s in s_cases),
    )


CASES += [
    Case(
        "select_n",
        _select_bool(shapes),
        _select_ref,
        dtypes=ALL,
        linear=((1, 2),),
        name="bool-" + _shape_name(*shapes),
    )
    for shapes in [
        ((3, 4), (3, 4), (3, 4)),
        ((3, 4), (4,), ()),
        ((), (2, 3), (2, 3)),
        ((0, 3), (1, 3), (3,)),
        ((2, 1, 3), (1, 4, 1), (4, 3)),
    ]
]
CASES += [
    Case(
        "select_n",
        _select_int(shapes),
        _select_ref,
        dtypes=ALL,
        linear=(tuple(range(1, len(shapes))),),
        name="int-" + _shape_name(*shapes),
    )
    for shapes in [
        ((3, 4), (3, 4), (3, 4), (3, 4)),
        ((2, 1, 3), (1, 4, 1), (3,), ()),
        ((4,), (4,)),
    ]
]

# ---------------------------------------------------------------------------------------
# convert_element_type


def _convert(name, draw, dtypes, new_dtype, ref, **kw):
    return [
        Case(
            "convert_element_type",
            lambda rng, dt, s=s: (draw(rng, s, dt),),
            ref,
            params=dict(new_dtype=np.dtype(new_dtype)),
            dtypes=dtypes,
            name=f"{name}-{_shape_name(s)}",
            **kw,
        )
        for s in [(3, 4), ()]
    ]


CASES += _convert(
    "to-f64",
    normal,
    FLOATS,
    np.float64,
    lambda x, *, new_dtype: np.float64(1) * x,
    linear=((0,),),
)
CASES += _convert(
    "to-f32",
    normal,
    FLOATS,
    np.float32,
    lambda x, *, new_dtype: np.asarray(x, np.float32),
    diff=(),
)
CASES += _convert(
    "f-to-i32",
    lambda r, s, d: (normal(r, s, d) * 4).astype(d),
    FLOATS,
    np.int32,
    lambda x, *, new_dtype: np.asarray(np.trunc(x), np.int32),
    diff=(),
)
CASES += _convert(
    "i-to-f32", normal, INTS, np.float32, lambda x, *, new_dtype: np.asarray(x, np.float32)
)
CASES += _convert(
    "i-to-i32",
    normal,
    INTS + (np.bool_,),
    np.int32,
    lambda x, *, new_dtype: np.asarray(x, np.int32),
)
CASES += _convert("to-bool", normal, NUMBERS, np.bool_, lambda x, *, new_dtype: x != 0, diff=())
