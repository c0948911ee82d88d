"""Elementwise primitives: unary and binary math, conversion, selection.

Each primitive is one block: definition (impl + abstract eval + batching via the family
helper), then its jvp and, for linear ones, its transpose. Binary operands share a dtype
and broadcast by NumPy's rules (funcgrad deviates from JAX here on purpose), so jvp rules
broadcast a tangent to the output's shape (:func:`_bcast_to`) and transposes sum it back
(:func:`unbroadcast`). The public functions accept Python scalars for convenience and give
them the other operand's dtype (``lax.add(x, 2.0)``); ``bind`` never sees one.

Impls compute in NumPy with its floating-point warnings filtered out for funcgrad's own
modules (see ``lax/_base.py``; a module-scoped filter costs nothing per call, where
``np.errstate`` costs microseconds): NaN and inf are the IEEE answers (``log(0) = -inf``,
``sqrt(-1) = nan``), integer overflow wraps, and integer division by zero gives NumPy's 0
without a warning.

Semantics worth knowing (where funcgrad chooses, it says so):
- ``div`` on integers rounds toward zero and ``rem`` takes the sign of the dividend (C
  ``fmod``), as JAX's ``lax.div``/``lax.rem``; ``funcgrad.numpy`` builds ``floor_divide``
  and ``mod`` from them. ``div(x, 0)`` and ``rem(x, 0)`` on integers give 0 (XLA gives -1
  and ``x``; funcgrad keeps NumPy's answer).
- ``round``'s ``rounding_method`` defaults to ``RoundingMethod.AWAY_FROM_ZERO`` (0), as JAX's
  ``lax.round``; ``funcgrad.numpy.round`` rounds half to even, as ``numpy.round``.
- ``max``/``min`` propagate NaN (``np.maximum``); their jvp splits the tangent half and half
  where the operands tie, as JAX.
- ``pow`` takes a float base and exponent of one dtype; its jvp with respect to the exponent
  uses ``log(x)`` with ``x == 0`` replaced by 1 (so 0, not NaN, at ``x == 0``), and with
  respect to the base it is 0 where ``y == 0``, as JAX.
- ``convert_element_type`` differentiates float -> float only (the tangent converts, and the
  transpose converts back); to or from integers and bools the tangent is a symbolic zero.
- ``select_n(which, *cases)``: ``which`` is bool (one or two cases) or an integer (any
  number of cases; out-of-range values clip to the first/last case). ``which`` and the
  cases broadcast together. Its transpose routes the cotangent to the chosen case.
- ``nextafter(x1, x2)`` is one ulp from ``x1``, so funcgrad differentiates it as ``x1``
  (JAX defines no derivative).
- Beyond JAX's list here: ``asinh acosh atanh`` (JAX has them as primitives too).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, Tracer, get_aval, shaped_aval
from funcgrad.interpreters import ad, ad_templates, batching
from funcgrad.interpreters.ad import defjvp, defjvp2, defjvp_zero
from funcgrad.lax._base import (
    ANY,
    FLOAT,
    NUMBER,
    as_dtype,
    broadcast_shapes,
    check_dtype,
    promote_scalars,
    shape_str,
    standard_naryop,
    standard_unop,
)
from funcgrad.lax.logical import bitwise_and, eq, gt, lt

_BOOL = np.dtype(np.bool_)


def _const(x: Any, value: Any) -> Any:
    """``value`` as a NumPy scalar of ``x``'s dtype."""
    return np.array(value, get_aval(x).dtype)[()]


def unbroadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to ``shape``: the transpose of NumPy broadcasting."""
    xshape = get_aval(x).shape
    if xshape == shape:
        return x
    lead = len(xshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and xshape[lead + i] != 1
    )
    if axes:
        x = lax.reduce_sum(x, axes)
    if get_aval(x).shape != shape:
        x = lax.reshape(x, shape)
    return x


def _bcast_to(g: Any, ans_like: Any) -> Any:
    """Broadcast a tangent of one operand to the output's shape."""
    shape = get_aval(ans_like).shape
    return g if get_aval(g).shape == shape else lax.broadcast_to(g, shape)


# ========================================================================================
# Unary math

# -- neg
neg_p = standard_unop("neg", np.negative, NUMBER)


def neg(x: Any) -> Any:
    """Elementwise negation."""
    return neg_p.bind(*promote_scalars(x))


ad.deflinear(neg_p, lambda ct, x: [neg(ct)])

# -- sign
sign_p = standard_unop("sign", np.sign, NUMBER)


def sign(x: Any) -> Any:
    """Elementwise sign: -1, 0 or 1 (NaN for NaN)."""
    return sign_p.bind(*promote_scalars(x))


defjvp_zero(sign_p)

# -- abs
abs_p = standard_unop("abs", np.abs, NUMBER)


def abs(x: Any) -> Any:
    """Elementwise absolute value."""
    return abs_p.bind(*promote_scalars(x))


def _abs_abstract_eval(x: ShapedArray) -> ShapedArray:
    # |z| of a complex z is real (float32 for complex64), as NumPy's.
    from funcgrad.lax.complex_ops import real_dtype

    check_dtype("abs", x, NUMBER)
    return ShapedArray(x.shape, real_dtype(x.dtype), x.weak_type)


abs_p.def_abstract_eval(_abs_abstract_eval)


def _abs_jvp(g, x):
    if get_aval(x).dtype.kind != "c":
        return mul(g, sign(x))
    # d|z| = Re(conj(z) dz) / |z| (0 at z = 0, as JAX's).
    from funcgrad.lax import complex_ops as lc

    mag = abs(x)
    zero = _const(mag, 0)
    safe = select(eq(mag, zero), full_like_const(mag, 1), mag)
    d = lc.real(mul(g, lc.conj(x)))
    return select(eq(mag, zero), full_like_const(mag, 0), div(d, safe))


def full_like_const(x: Any, value: Any) -> Any:
    from funcgrad.lax.shape import full

    aval = get_aval(x)
    return full(aval.shape, _const(x, value), aval.dtype)


defjvp(abs_p, _abs_jvp)

# -- floor
floor_p = standard_unop("floor", np.floor)


def floor(x: Any) -> Any:
    """Elementwise round down to an integer value (dtype kept)."""
    return floor_p.bind(*promote_scalars(x))


defjvp_zero(floor_p)

# -- ceil
ceil_p = standard_unop("ceil", np.ceil)


def ceil(x: Any) -> Any:
    """Elementwise round up to an integer value (dtype kept)."""
    return ceil_p.bind(*promote_scalars(x))


defjvp_zero(ceil_p)


# -- round
class RoundingMethod(enum.IntEnum):
    """How ``round`` breaks ties (JAX's values)."""

    AWAY_FROM_ZERO = 0
    TO_NEAREST_EVEN = 1


def _round_impl(x, *, rounding_method):
    if rounding_method == RoundingMethod.TO_NEAREST_EVEN:
        return np.rint(x)
    if rounding_method != RoundingMethod.AWAY_FROM_ZERO:
        raise ValueError(rounding_method)  # bind reports abstract eval's clearer error
    t = np.trunc(x)
    # x - t is exact; inf/nan fall through unchanged (the comparison is false).
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


def _round_abstract_eval(x, *, rounding_method):
    check_dtype("round", x, FLOAT)
    if rounding_method not in (0, 1):
        raise ValueError(
            f"round: rounding_method must be 0 (AWAY_FROM_ZERO) or 1 (TO_NEAREST_EVEN), got "
            f"{rounding_method!r}"
        )
    return ShapedArray(x.shape, x.dtype, x.weak_type)


round_p = standard_unop("round", _round_impl)
round_p.def_abstract_eval(_round_abstract_eval)


def round(x: Any, rounding_method: int = RoundingMethod.AWAY_FROM_ZERO) -> Any:
    """Elementwise round to an integer value; ties away from zero by default, as JAX's
    ``lax.round`` (``RoundingMethod.TO_NEAREST_EVEN`` rounds as ``numpy.round`` does)."""
    return round_p.bind(*promote_scalars(x), rounding_method=int(rounding_method))


defjvp_zero(round_p)

# -- is_finite
is_finite_p = standard_unop("is_finite", np.isfinite, FLOAT, result_dtype=_BOOL)


def is_finite(x: Any) -> Any:
    """Elementwise test for a finite value (not inf, not NaN); bool result."""
    return is_finite_p.bind(*promote_scalars(x))


defjvp_zero(is_finite_p)

# -- exp
exp_p = standard_unop("exp", np.exp)


def exp(x: Any) -> Any:
    """Elementwise ``e**x``."""
    return exp_p.bind(*promote_scalars(x))


defjvp2(exp_p, lambda g, ans, x: mul(g, ans))

# -- exp2
exp2_p = standard_unop("exp2", np.exp2)


def exp2(x: Any) -> Any:
    """Elementwise ``2**x``."""
    return exp2_p.bind(*promote_scalars(x))


defjvp2(exp2_p, lambda g, ans, x: mul(g, mul(ans, math.log(2.0))))

# -- expm1
expm1_p = standard_unop("expm1", np.expm1)


def expm1(x: Any) -> Any:
    """Elementwise ``e**x - 1``, accurate near 0."""
    return expm1_p.bind(*promote_scalars(x))


defjvp2(expm1_p, lambda g, ans, x: mul(g, add(ans, 1.0)))

# -- log
log_p = standard_unop("log", np.log)


def log(x: Any) -> Any:
    """Elementwise natural logarithm."""
    return log_p.bind(*promote_scalars(x))


defjvp(log_p, lambda g, x: div(g, x))

# -- log1p
log1p_p = standard_unop("log1p", np.log1p)


def log1p(x: Any) -> Any:
    """Elementwise ``log(1 + x)``, accurate near 0."""
    return log1p_p.bind(*promote_scalars(x))


defjvp(log1p_p, lambda g, x: div(g, add(x, 1.0)))

# -- sqrt
sqrt_p = standard_unop("sqrt", np.sqrt)


def sqrt(x: Any) -> Any:
    """Elementwise square root."""
    return sqrt_p.bind(*promote_scalars(x))


defjvp2(sqrt_p, lambda g, ans, x: div(g, mul(ans, 2.0)))


# -- rsqrt
def _rsqrt_impl(x):
    return np.reciprocal(np.sqrt(x))


rsqrt_p = standard_unop("rsqrt", _rsqrt_impl)


def rsqrt(x: Any) -> Any:
    """Elementwise ``1 / sqrt(x)``."""
    return rsqrt_p.bind(*promote_scalars(x))


defjvp2(rsqrt_p, lambda g, ans, x: mul(g, mul(div(ans, x), -0.5)))

# -- cbrt
cbrt_p = standard_unop("cbrt", np.cbrt)


def cbrt(x: Any) -> Any:
    """Elementwise real cube root."""
    return cbrt_p.bind(*promote_scalars(x))


defjvp2(cbrt_p, lambda g, ans, x: mul(g, mul(integer_pow(ans, -2), 1.0 / 3.0)))

# -- square
square_p = standard_unop("square", np.square, NUMBER)


def square(x: Any) -> Any:
    """Elementwise ``x * x``."""
    return square_p.bind(*promote_scalars(x))


defjvp(square_p, lambda g, x: mul(g, mul(x, 2)))

# -- sin
sin_p = standard_unop("sin", np.sin)


def sin(x: Any) -> Any:
    """Elementwise sine."""
    return sin_p.bind(*promote_scalars(x))


defjvp(sin_p, lambda g, x: mul(g, cos(x)))

# -- cos
cos_p = standard_unop("cos", np.cos)


def cos(x: Any) -> Any:
    """Elementwise cosine."""
    return cos_p.bind(*promote_scalars(x))


defjvp(cos_p, lambda g, x: neg(mul(g, sin(x))))

# -- tan
tan_p = standard_unop("tan", np.tan)


def tan(x: Any) -> Any:
    """Elementwise tangent."""
    return tan_p.bind(*promote_scalars(x))


defjvp2(tan_p, lambda g, ans, x: mul(g, add(square(ans), 1.0)))

# -- asin
asin_p = standard_unop("asin", np.arcsin)


def asin(x: Any) -> Any:
    """Elementwise inverse sine (NaN outside [-1, 1])."""
    return asin_p.bind(*promote_scalars(x))


defjvp(asin_p, lambda g, x: mul(g, rsqrt(sub(1.0, square(x)))))

# -- acos
acos_p = standard_unop("acos", np.arccos)


def acos(x: Any) -> Any:
    """Elementwise inverse cosine (NaN outside [-1, 1])."""
    return acos_p.bind(*promote_scalars(x))


defjvp(acos_p, lambda g, x: neg(mul(g, rsqrt(sub(1.0, square(x))))))

# -- atan
atan_p = standard_unop("atan", np.arctan)


def atan(x: Any) -> Any:
    """Elementwise inverse tangent."""
    return atan_p.bind(*promote_scalars(x))


defjvp(atan_p, lambda g, x: div(g, add(square(x), 1.0)))

# -- sinh
sinh_p = standard_unop("sinh", np.sinh)


def sinh(x: Any) -> Any:
    """Elementwise hyperbolic sine."""
    return sinh_p.bind(*promote_scalars(x))


defjvp(sinh_p, lambda g, x: mul(g, cosh(x)))

# -- cosh
cosh_p = standard_unop("cosh", np.cosh)


def cosh(x: Any) -> Any:
    """Elementwise hyperbolic cosine."""
    return cosh_p.bind(*promote_scalars(x))


defjvp(cosh_p, lambda g, x: mul(g, sinh(x)))

# -- tanh
tanh_p = standard_unop("tanh", np.tanh)


def tanh(x: Any) -> Any:
    """Elementwise hyperbolic tangent."""
    return tanh_p.bind(*promote_scalars(x))


defjvp2(tanh_p, lambda g, ans, x: mul(g, sub(1.0, square(ans))))

# -- asinh
asinh_p = standard_unop("asinh", np.arcsinh)


def asinh(x: Any) -> Any:
    """Elementwise inverse hyperbolic sine."""
    return asinh_p.bind(*promote_scalars(x))


defjvp(asinh_p, lambda g, x: mul(g, rsqrt(add(square(x), 1.0))))

# -- acosh
acosh_p = standard_unop("acosh", np.arccosh)


def acosh(x: Any) -> Any:
    """Elementwise inverse hyperbolic cosine (NaN below 1)."""
    return acosh_p.bind(*promote_scalars(x))


defjvp(acosh_p, lambda g, x: mul(g, rsqrt(mul(sub(x, 1.0), add(x, 1.0)))))

# -- atanh
atanh_p = standard_unop("atanh", np.arctanh)


def atanh(x: Any) -> Any:
    """Elementwise inverse hyperbolic tangent (NaN outside [-1, 1])."""
    return atanh_p.bind(*promote_scalars(x))


defjvp(atanh_p, lambda g, x: div(g, sub(1.0, square(x))))


# -- logistic
def _logistic_impl(x):
    # exp(-x) overflows to inf for very negative x, and 1 / inf is the right 0.
    return np.reciprocal(np.exp(np.negative(x)) + np.array(1, np.result_type(x)))


logistic_p = standard_unop("logistic", _logistic_impl)


def logistic(x: Any) -> Any:
    """Elementwise logistic sigmoid ``1 / (1 + exp(-x))``."""
    return logistic_p.bind(*promote_scalars(x))


# sigmoid'(x) = sigmoid(x) * sigmoid(-x): accurate also where 1 - sigmoid(x) would cancel.
defjvp2(logistic_p, lambda g, ans, x: mul(g, mul(ans, logistic(neg(x)))))


# -- erf
def _scipy_special(name: str) -> Callable:
    """A scipy.special ufunc, imported on first use (scipy.special costs ~0.2 s to import)."""

    def impl(x: Any) -> Any:
        import scipy.special

        return getattr(scipy.special, name)(x)

    impl.__name__ = name
    return impl


erf_p = standard_unop("erf", _scipy_special("erf"))


def erf(x: Any) -> Any:
    """Elementwise error function."""
    return erf_p.bind(*promote_scalars(x))


defjvp(erf_p, lambda g, x: mul(g, mul(exp(neg(square(x))), 2.0 / math.sqrt(math.pi))))

# -- erf_inv
erf_inv_p = standard_unop("erf_inv", _scipy_special("erfinv"))


def erf_inv(x: Any) -> Any:
    """Elementwise inverse error function (inf at +-1, NaN outside)."""
    return erf_inv_p.bind(*promote_scalars(x))


defjvp2(erf_inv_p, lambda g, ans, x: mul(g, mul(exp(square(ans)), math.sqrt(math.pi) / 2.0)))


# -- integer_pow
def _integer_pow_impl(x, *, y):
    out = np.power(x, y)
    return out if np.result_type(out) == np.result_type(x) else out.astype(np.result_type(x))


def _integer_pow_abstract_eval(x, *, y):
    check_dtype("integer_pow", x, NUMBER)
    if not isinstance(y, (int, np.integer)) or isinstance(y, bool):
        raise TypeError(f"integer_pow: the exponent y must be a Python int, got {y!r}")
    if y < 0 and x.dtype.kind in "iu":
        raise TypeError(
            f"integer_pow: a negative exponent (y={y}) needs a floating operand, got "
            f"{x.str_short()}; convert it first, e.g. with `.astype(float32)`"
        )
    return ShapedArray(x.shape, x.dtype, x.weak_type)


integer_pow_p = standard_unop("integer_pow", _integer_pow_impl, NUMBER)
integer_pow_p.def_abstract_eval(_integer_pow_abstract_eval)


def integer_pow(x: Any, y: int) -> Any:
    """Elementwise ``x**y`` for a static Python int ``y``."""
    return integer_pow_p.bind(*promote_scalars(x), y=int(y))


def _integer_pow_jvp(g, x, *, y):
    if y == 0:
        return ad.Zero(shaped_aval(x))
    if y == 1:
        return g
    # y * x**(y-1), without an integer_pow for x**1 (the common square).
    base = x if y == 2 else integer_pow(x, y - 1)
    return mul(g, mul(base, _const(x, y)))


defjvp(integer_pow_p, _integer_pow_jvp)

# ========================================================================================
# Binary math

# -- add
add_p = standard_naryop("add", np.add)


def add(x: Any, y: Any) -> Any:
    """Elementwise ``x + y`` (same dtype; shapes broadcast)."""
    return add_p.bind(*promote_scalars(x, y))


def _add_jvp(primals, tangents):
    x, y = primals
    ans = add(x, y)
    tx, ty = tangents
    if type(tx) is not ad.Zero:
        tx = _bcast_to(tx, ans)
    if type(ty) is not ad.Zero:
        ty = _bcast_to(ty, ans)
    return ans, ad.add_tangents(tx, ty)


def _add_transpose(ct, x, y):
    return [
        unbroadcast(ct, x.aval.shape) if ad.is_undefined_primal(x) else None,
        unbroadcast(ct, y.aval.shape) if ad.is_undefined_primal(y) else None,
    ]


ad.primitive_jvps[add_p] = _add_jvp
ad.primitive_transposes[add_p] = _add_transpose

# -- sub
sub_p = standard_naryop("sub", np.subtract)


def sub(x: Any, y: Any) -> Any:
    """Elementwise ``x - y``."""
    return sub_p.bind(*promote_scalars(x, y))


def _sub_jvp(primals, tangents):
    x, y = primals
    ans = sub(x, y)
    tx, ty = tangents
    if type(tx) is not ad.Zero:
        tx = _bcast_to(tx, ans)
    if type(ty) is not ad.Zero:
        ty = _bcast_to(neg(ty), ans)
    return ans, ad.add_tangents(tx, ty)


def _sub_transpose(ct, x, y):
    return [
        unbroadcast(ct, x.aval.shape) if ad.is_undefined_primal(x) else None,
        unbroadcast(neg(ct), y.aval.shape) if ad.is_undefined_primal(y) else None,
    ]


ad.primitive_jvps[sub_p] = _sub_jvp
ad.primitive_transposes[sub_p] = _sub_transpose

# -- mul
mul_p = standard_naryop("mul", np.multiply)


def mul(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``."""
    return mul_p.bind(*promote_scalars(x, y))


def _mul_transpose(ct, x, y):
    # Zero-absorbing (0 * inf = 0): NaN-safe `where`, see zero_absorbing_mul below.
    if ad.is_undefined_primal(x):
        return [unbroadcast(zero_absorbing_mul(ct, y), x.aval.shape), None]
    return [None, unbroadcast(zero_absorbing_mul(ct, x), y.aval.shape)]


defjvp(mul_p, lambda g, x, y: mul(g, y), lambda g, x, y: mul(x, g))
ad.primitive_transposes[mul_p] = _mul_transpose


# -- div
def _div_impl(x, y):
    if np.result_type(x).kind in "iu":
        # Round toward zero: x - fmod(x, y) is an exact multiple of y (0 when y == 0,
        # and NumPy's x // 0 is 0).
        return np.floor_divide(np.subtract(x, np.fmod(x, y)), y)
    return np.true_divide(x, y)


div_p = standard_naryop("div", _div_impl)


def div(x: Any, y: Any) -> Any:
    """Elementwise ``x / y``; integers round toward zero (``div(x, 0)`` is 0)."""
    return div_p.bind(*promote_scalars(x, y))


def _div_transpose(ct, x, y):
    if ad.is_undefined_primal(y):
        raise ValueError("div: transpose with respect to the divisor (it is not linear)")
    # Zero-absorbing (0 / 0 = 0): NaN-safe `where`, see zero_absorbing_mul below.
    return [unbroadcast(zero_absorbing_div(ct, y), x.aval.shape), None]


defjvp2(
    div_p,
    lambda g, ans, x, y: div(g, y),
    lambda g, ans, x, y: neg(mul(g, div(ans, y))),
)
ad.primitive_transposes[div_p] = _div_transpose

# -- zero-absorbing products: the transposes of mul and div (NaN-safe ``where``; the
# decision is explained in funcgrad/interpreters/ad.py's docstring)


def _has_zero(x: Any) -> bool:
    return not np.all(np.asarray(x) != 0)


def _all_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(x)))


def _absorbing_np(np_op: Callable, ct: Any, y: Any) -> Any:
    """The zero-absorbing product of NumPy values: the product, then a select only if it
    produced a NaN. One reduction finds out: a sum is NaN when a term is NaN (or when it
    meets both infinities, and then the select is merely unnecessary)."""
    out = np_op(ct, y)  # FP warnings are filtered for funcgrad's modules (lax/_base.py)
    if out.dtype.kind in "fc" and np.isnan(np.add.reduce(out, axis=None)):
        out = np.where(np.asarray(ct) == 0, np.zeros((), out.dtype), out)
    return out


def absorbing_mul_np(ct: Any, y: Any) -> Any:
    """:func:`zero_absorbing_mul` of NumPy values."""
    return _absorbing_np(np.multiply, ct, y)


def absorbing_div_np(ct: Any, y: Any) -> Any:
    """:func:`zero_absorbing_div` of NumPy values."""
    return _absorbing_np(np.true_divide, ct, y)


def _absorbing(op: Callable, np_op: Callable, ct: Any, y: Any) -> Any:
    ct_traced = isinstance(ct, Tracer)
    y_traced = isinstance(y, Tracer)
    if not ct_traced and not y_traced:
        return _absorbing_np(np_op, ct, y)
    if not ct_traced and not _has_zero(ct):
        return op(ct, y)
    if not y_traced and _all_finite(y):
        return op(ct, y)
    out = op(ct, y)
    zero = np.zeros((), get_aval(out).dtype)[()]
    return select_n(eq(ct, zero), out, zero)


def zero_absorbing_mul(ct: Any, y: Any) -> Any:
    """``ct * y``, but 0 wherever ``ct == 0`` (even where ``y`` is inf or NaN).

    For the transposes of ``mul`` (and any rule that scales a cotangent by a residual): a
    zero cotangent means "this path does not matter", so it must not turn into NaN.
    """
    return _absorbing(mul, np.multiply, ct, y)


def zero_absorbing_div(ct: Any, y: Any) -> Any:
    """``ct / y``, but 0 wherever ``ct == 0`` (even where ``y`` is 0, inf or NaN)."""
    return _absorbing(div, np.true_divide, ct, y)


# Eager replay fuses the traced form (product, eq, select_n) into these (ad_templates.py).
ad_templates.eager_products["mul"] = absorbing_mul_np
ad_templates.eager_products["div"] = absorbing_div_np


# -- rem
rem_p = standard_naryop("rem", np.fmod)


def rem(x: Any, y: Any) -> Any:
    """Elementwise remainder with the sign of ``x`` (C ``fmod``); ``rem(x, 0)`` is 0 on
    integers and NaN on floats."""
    return rem_p.bind(*promote_scalars(x, y))


def _trunc(x: Any) -> Any:
    return mul(sign(x), floor(abs(x)))


defjvp2(
    rem_p,
    lambda g, ans, x, y: _bcast_to(g, ans),
    lambda g, ans, x, y: neg(mul(g, _trunc(div(x, y)))),
)

# -- pow
pow_p = standard_naryop("pow", np.power, FLOAT)


def pow(x: Any, y: Any) -> Any:
    """Elementwise ``x**y`` for a float base and exponent of one dtype."""
    return pow_p.bind(*promote_scalars(x, y))


def _pow_jvp_x(g, ans, x, y):
    # y * x**(y-1), and 0 where y == 0 (not 0 * inf at x == 0).
    zero = _const(y, 0)
    jac = select_n(eq(y, zero), mul(y, pow(x, sub(y, 1.0))), zero)
    return mul(g, jac)


def _pow_jvp_y(g, ans, x, y):
    # log(x) * x**y with log(0) taken as 0 (x == 0 replaced by 1 before the log).
    safe_x = select_n(eq(x, _const(x, 0)), x, _const(x, 1))
    return mul(g, mul(log(safe_x), ans))


defjvp2(pow_p, _pow_jvp_x, _pow_jvp_y)


# -- max
def _tie_split(x: Any, y: Any, wins: Callable) -> Any:
    """1 where ``wins(x, y)``, 0.5 where x == y, else 0 (JAX's balanced tie rule; 0 for NaN).

    The 0/1 part is a conversion of the comparison, not a select: cheaper eagerly.
    """
    won = convert_element_type(wins(x, y), get_aval(x).dtype)
    return select_n(eq(x, y), won, _const(x, 0.5))


max_p = standard_naryop("max", np.maximum, ANY)


def max(x: Any, y: Any) -> Any:
    """Elementwise maximum; NaN if either is NaN."""
    return max_p.bind(*promote_scalars(x, y))


defjvp(
    max_p,
    lambda g, x, y: mul(g, _tie_split(x, y, gt)),
    lambda g, x, y: mul(g, _tie_split(y, x, gt)),
)

# -- min
min_p = standard_naryop("min", np.minimum, ANY)


def min(x: Any, y: Any) -> Any:
    """Elementwise minimum; NaN if either is NaN."""
    return min_p.bind(*promote_scalars(x, y))


defjvp(
    min_p,
    lambda g, x, y: mul(g, _tie_split(x, y, lt)),
    lambda g, x, y: mul(g, _tie_split(y, x, lt)),
)

# -- atan2
atan2_p = standard_naryop("atan2", np.arctan2, FLOAT)


def atan2(x: Any, y: Any) -> Any:
    """Elementwise angle of the point ``(y, x)``: ``atan(x / y)`` in the right quadrant."""
    return atan2_p.bind(*promote_scalars(x, y))


def _atan2_denom(x: Any, y: Any) -> Any:
    return add(square(x), square(y))


defjvp(
    atan2_p,
    lambda g, x, y: mul(g, div(y, _atan2_denom(x, y))),
    lambda g, x, y: neg(mul(g, div(x, _atan2_denom(x, y)))),
)

# -- nextafter
nextafter_p = standard_naryop("nextafter", np.nextafter, FLOAT)


def nextafter(x1: Any, x2: Any) -> Any:
    """Elementwise next representable value after ``x1`` toward ``x2``."""
    return nextafter_p.bind(*promote_scalars(x1, x2))


# One ulp away from x1: differentiated as x1 itself (JAX defines no derivative).
defjvp2(nextafter_p, lambda g, ans, x1, x2: _bcast_to(g, ans), None)


# -- clamp
def _clamp_impl(lo, x, hi):
    return np.minimum(np.maximum(x, lo), hi)


clamp_p = standard_naryop("clamp", _clamp_impl, ANY)


def clamp(min: Any, x: Any, max: Any) -> Any:
    """Elementwise ``x`` clipped to ``[min, max]`` (``min(max(x, min), max)``); all three
    broadcast."""
    x, lo, hi = promote_scalars(x, min, max)
    return clamp_p.bind(lo, x, hi)


def _clamp_jvp_lo(g, ans, lo, x, hi):
    # lo wins where it exceeds x and is below hi.
    return select_n(bitwise_and(gt(lo, x), lt(lo, hi)), _const(g, 0), _bcast_to(g, ans))


def _clamp_jvp_x(g, ans, lo, x, hi):
    return select_n(bitwise_and(gt(x, lo), lt(x, hi)), _const(g, 0), _bcast_to(g, ans))


def _clamp_jvp_hi(g, ans, lo, x, hi):
    # hi wins where it is below max(x, lo).
    return select_n(lt(hi, max(x, lo)), _const(g, 0), _bcast_to(g, ans))


defjvp2(clamp_p, _clamp_jvp_lo, _clamp_jvp_x, _clamp_jvp_hi)

# ========================================================================================
# Conversion and selection

# -- convert_element_type
convert_element_type_p = Primitive("convert_element_type")


def convert_element_type(operand: Any, new_dtype: Any) -> Any:
    """Elementwise conversion to ``new_dtype`` (NumPy's ``astype``: floats to integers
    truncate toward zero, nonzero to bool is True)."""
    new_dtype = as_dtype(new_dtype)
    (operand,) = promote_scalars(operand)
    if not isinstance(operand, (np.ndarray, np.generic)) and get_aval(operand).dtype == new_dtype:
        return operand  # a traced value of the right dtype: no equation needed
    return convert_element_type_p.bind(operand, new_dtype=new_dtype)


@convert_element_type_p.def_abstract_eval
def _convert_element_type_abstract_eval(x, *, new_dtype):
    if not isinstance(new_dtype, np.dtype) or new_dtype.kind not in ANY:
        raise TypeError(
            f"convert_element_type: cannot convert {x.str_short()} to {new_dtype!r}; give a "
            "NumPy bool, integer, floating or complex dtype"
        )
    return ShapedArray(x.shape, new_dtype)


@convert_element_type_p.def_impl
def _convert_element_type_impl(x, *, new_dtype):
    x = np.asarray(x)
    if x.dtype.kind == "c" and new_dtype.kind != "c":
        x = x.real  # as NumPy's astype, without its ComplexWarning
    # astype copies, so the result never aliases the input.
    return x.astype(new_dtype)


def _convert_element_type_jvp(primals, tangents, *, new_dtype):
    (x,), (t,) = primals, tangents
    ans = convert_element_type_p.bind(x, new_dtype=new_dtype)
    inexact = get_aval(x).dtype.kind in "fc" and new_dtype.kind in "fc"
    if type(t) is ad.Zero or not inexact:
        return ans, ad.Zero(shaped_aval(ans))
    return ans, convert_element_type_p.bind(t, new_dtype=new_dtype)


def _convert_element_type_transpose(ct, x, *, new_dtype):
    return [convert_element_type_p.bind(ct, new_dtype=x.aval.dtype)]


ad.primitive_jvps[convert_element_type_p] = _convert_element_type_jvp
ad.primitive_transposes[convert_element_type_p] = _convert_element_type_transpose
batching.defvectorized(convert_element_type_p)

# -- select_n
select_n_p = Primitive("select_n")


def select_n(which: Any, *cases: Any) -> Any:
    """Elementwise ``cases[which]``: ``which`` is bool (``False`` picks ``cases[0]``) or an
    integer (clipped to the cases); ``which`` and the cases broadcast together."""
    if not cases:
        raise ValueError("select_n: needs at least one case")
    (which,) = promote_scalars(which)
    return select_n_p.bind(which, *promote_scalars(*cases))


@select_n_p.def_abstract_eval
def _select_n_abstract_eval(which, *cases):
    if not cases:
        raise ValueError("select_n: needs at least one case")
    if which.dtype.kind not in "biu":
        raise TypeError(
            f"select_n: `which` must be bool or integer, got {which.str_short()}; compare it "
            "(`x > 0`) or convert it with `.astype(int32)`"
        )
    if which.dtype.kind == "b" and len(cases) > 2:
        raise TypeError(
            f"select_n: a bool `which` ({which.str_short()}) picks between at most 2 cases, "
            f"got {len(cases)}; use an integer `which`"
        )
    dtype = cases[0].dtype
    if any(c.dtype != dtype for c in cases):
        raise TypeError(
            f"select_n: the cases must have one dtype, got {shape_str(cases)}; convert them "
            "with `.astype`"
        )
    shape = broadcast_shapes("select_n", which.shape, *(c.shape for c in cases))
    return ShapedArray(shape, dtype, all(c.weak_type for c in cases))


@select_n_p.def_impl
def _select_n_impl(which, *cases):
    which = np.asarray(which)
    if which.dtype.kind not in "biu" or which.dtype.kind == "b" and len(cases) > 2:
        raise TypeError(which.dtype)  # bind reports abstract eval's clearer error
    if len(cases) == 1:
        shape = np.broadcast_shapes(which.shape, *(np.shape(c) for c in cases))
        return np.array(np.broadcast_to(cases[0], shape))
    if which.dtype.kind == "b":
        return np.where(which, cases[1], cases[0])
    out = np.where(which >= 1, cases[1], cases[0])
    for i in range(2, len(cases)):
        out = np.where(which >= i, cases[i], out)
    return out


def _select_n_jvp(primals, tangents):
    which, *cases = primals
    case_tangents = tangents[1:]
    ans = select_n(which, *cases)
    if all(type(t) is ad.Zero for t in case_tangents):
        return ans, ad.Zero(shaped_aval(ans))
    dtype = get_aval(ans).dtype
    ts = [np.zeros((), dtype)[()] if type(t) is ad.Zero else t for t in case_tangents]
    return ans, _bcast_to(select_n(which, *ts), ans)


def _select_n_transpose(ct, which, *cases):
    if ad.is_undefined_primal(which):
        raise ValueError("select_n: transpose with respect to `which` (it is not linear)")
    zero = np.zeros((), get_aval(ct).dtype)[()]
    cts: list[Any] = [None]
    for i, c in enumerate(cases):
        if not ad.is_undefined_primal(c):
            cts.append(None)
            continue
        routed = select_n(which, *(ct if j == i else zero for j in range(len(cases))))
        cts.append(unbroadcast(_bcast_to(routed, ct), c.aval.shape))
    return cts


ad.primitive_jvps[select_n_p] = _select_n_jvp
ad.primitive_transposes[select_n_p] = _select_n_transpose
batching.defbroadcasting(select_n_p)


def select(pred: Any, on_true: Any, on_false: Any) -> Any:
    """Elementwise ``on_true if pred else on_false`` (``select_n(pred, on_false, on_true)``)."""
    return select_n(pred, on_false, on_true)
