"""Elementwise functions (NumPy's ufuncs) over arrays and tracers.

Decisions:

- Dtypes come from NumPy's own ufunc loop resolution (``util.ufunc_args``): the result
  dtype of ``fnp.f(x, y)`` is that of ``np.f(x, y)`` for every dtype combination and for weak
  Python scalars (NEP 50), eagerly and under every transformation.
- Broadcasting is NumPy's; the lax primitives broadcast themselves, so nothing is
  materialized here.
- Semantics are NumPy's where the primitives differ: ``floor_divide``/``remainder`` round
  toward minus infinity (built from ``div``/``rem``, which truncate), ``add``/``multiply`` of
  bools are logical or/and, ``power`` of integers is exact (repeated squaring; a concrete
  Python-int exponent becomes one ``integer_pow``). Integer ``power`` with a *traced*
  exponent uses its low 6 bits (as JAX): larger exponents overflow anyway unless the base
  is -1, 0 or 1.
- Bad dtypes raise NumPy's ``TypeError`` text prefixed with ``fnp.<name>``; shapes that do not
  broadcast raise ``ValueError`` naming the function and both shapes.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.numpy import util
from funcgrad.numpy.util import ufunc_args

_BOOL = np.dtype(np.bool_)


def _broadcast_error(name: str, *args: Any) -> None:
    shapes = [util.shape_of(a) for a in args]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"fnp.{name}: operands could not be broadcast together with shapes "
            f"{' '.join(map(str, shapes))}; each axis (aligned from the right) must match or "
            "be 1. Reshape an operand (e.g. `x[:, None]`) so that they broadcast"
        ) from None


def _call(name: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError:
        _broadcast_error(name, *args)
        raise


def _const(dtype: np.dtype, value: Any) -> Any:
    return np.array(value, dtype)[()]


def _full_like(x: Any, value: Any, dtype: np.dtype) -> Any:
    return lax.full(util.shape_of(x), _const(dtype, value), dtype)


def _to_bool(x: Any) -> Any:
    """Truthiness of ``x`` (``x != 0``) as a bool array."""
    if util.dtype_of(x) == _BOOL:
        return x
    return lax.ne(x, _const(util.dtype_of(x), 0))


# ========================================================================================
# Unary


def negative(x: Any, /) -> Any:
    """Elementwise ``-x``."""
    (x,), _ = ufunc_args(np.negative, "negative", x)
    return lax.neg(x)


def positive(x: Any, /) -> Any:
    """Elementwise ``+x`` (a copy)."""
    (x,), _ = ufunc_args(np.positive, "positive", x)
    return util.fresh(x)


def absolute(x: Any, /) -> Any:
    """Elementwise absolute value."""
    (x,), loop = ufunc_args(np.absolute, "absolute", x)
    if loop[0].kind in "ub":
        return util.fresh(x)
    return lax.abs(x)


abs = absolute


def fabs(x: Any, /) -> Any:
    """Elementwise absolute value as a float."""
    (x,), _ = ufunc_args(np.fabs, "fabs", x)
    return lax.abs(x)


def sign(x: Any, /) -> Any:
    """Elementwise sign: -1, 0 or 1 (NaN for NaN)."""
    (x,), loop = ufunc_args(np.sign, "sign", x)
    if loop[0].kind == "u":
        return lax.convert_element_type(lax.ne(x, _const(loop[0], 0)), loop[0])
    if loop[0].kind == "c":  # NumPy 2: z / |z| (0 at 0)
        mag = lax.abs(x)
        zero = _const(util.dtype_of(mag), 0.0)
        safe = lax.select(lax.eq(mag, zero), _full_like(mag, 1, util.dtype_of(mag)), mag)
        unit = lax.div(x, lax.complex(safe, _full_like(mag, 0, util.dtype_of(mag))))
        return lax.select(lax.eq(mag, zero), _full_like(x, 0, loop[0]), unit)
    return lax.sign(x)


def _float_unary(ufunc: np.ufunc, name: str, lax_fn: Any, doc: str) -> Any:
    def fn(x: Any, /) -> Any:
        (x,), _ = ufunc_args(ufunc, name, x)
        return lax_fn(x)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


exp = _float_unary(np.exp, "exp", lax.exp, "Elementwise ``e**x``.")
exp2 = _float_unary(np.exp2, "exp2", lax.exp2, "Elementwise ``2**x``.")
expm1 = _float_unary(np.expm1, "expm1", lax.expm1, "Elementwise ``exp(x) - 1``, accurate near 0.")
log = _float_unary(np.log, "log", lax.log, "Elementwise natural logarithm.")
log1p = _float_unary(np.log1p, "log1p", lax.log1p, "Elementwise ``log(1 + x)``, accurate near 0.")
sqrt = _float_unary(np.sqrt, "sqrt", lax.sqrt, "Elementwise square root.")
cbrt = _float_unary(np.cbrt, "cbrt", lax.cbrt, "Elementwise cube root.")
sin = _float_unary(np.sin, "sin", lax.sin, "Elementwise sine.")
cos = _float_unary(np.cos, "cos", lax.cos, "Elementwise cosine.")
tan = _float_unary(np.tan, "tan", lax.tan, "Elementwise tangent.")
arcsin = _float_unary(np.arcsin, "arcsin", lax.asin, "Elementwise inverse sine.")
arccos = _float_unary(np.arccos, "arccos", lax.acos, "Elementwise inverse cosine.")
arctan = _float_unary(np.arctan, "arctan", lax.atan, "Elementwise inverse tangent.")
sinh = _float_unary(np.sinh, "sinh", lax.sinh, "Elementwise hyperbolic sine.")
cosh = _float_unary(np.cosh, "cosh", lax.cosh, "Elementwise hyperbolic cosine.")
tanh = _float_unary(np.tanh, "tanh", lax.tanh, "Elementwise hyperbolic tangent.")
arcsinh = _float_unary(np.arcsinh, "arcsinh", lax.asinh, "Elementwise inverse hyperbolic sine.")
arccosh = _float_unary(np.arccosh, "arccosh", lax.acosh, "Elementwise inverse hyperbolic cosine.")
arctanh = _float_unary(np.arctanh, "arctanh", lax.atanh, "Elementwise inverse hyperbolic tangent.")
asin, acos, atan = arcsin, arccos, arctan
asinh, acosh, atanh = arcsinh, arccosh, arctanh


def log2(x: Any, /) -> Any:
    """Elementwise base-2 logarithm."""
    (x,), loop = ufunc_args(np.log2, "log2", x)
    return lax.div(lax.log(x), _const(loop[0], math.log(2.0)))


def log10(x: Any, /) -> Any:
    """Elementwise base-10 logarithm."""
    (x,), loop = ufunc_args(np.log10, "log10", x)
    return lax.div(lax.log(x), _const(loop[0], math.log(10.0)))


def square(x: Any, /) -> Any:
    """Elementwise ``x * x``."""
    (x,), _ = ufunc_args(np.square, "square", x)
    return lax.square(x)


def reciprocal(x: Any, /) -> Any:
    """Elementwise ``1 / x`` (integer division for integers, as NumPy)."""
    (x,), loop = ufunc_args(np.reciprocal, "reciprocal", x)
    return lax.div(_const(loop[0], 1), x)


def deg2rad(x: Any, /) -> Any:
    """Degrees to radians."""
    (x,), loop = ufunc_args(np.deg2rad, "deg2rad", x)
    return lax.mul(x, _const(loop[0], math.pi / 180.0))


def rad2deg(x: Any, /) -> Any:
    """Radians to degrees."""
    (x,), loop = ufunc_args(np.rad2deg, "rad2deg", x)
    return lax.mul(x, _const(loop[0], 180.0 / math.pi))


radians, degrees = deg2rad, rad2deg


def floor(x: Any, /) -> Any:
    """Elementwise floor (integers are returned as they are)."""
    (x,), loop = ufunc_args(np.floor, "floor", x)
    return util.fresh(x) if loop[0].kind in "iub" else lax.floor(x)


def ceil(x: Any, /) -> Any:
    """Elementwise ceiling (integers are returned as they are)."""
    (x,), loop = ufunc_args(np.ceil, "ceil", x)
    return util.fresh(x) if loop[0].kind in "iub" else lax.ceil(x)


def trunc(x: Any, /) -> Any:
    """Elementwise rounding toward zero."""
    (x,), loop = ufunc_args(np.trunc, "trunc", x)
    if loop[0].kind in "iub":
        return util.fresh(x)
    return lax.select(lax.lt(x, _const(loop[0], 0)), lax.ceil(x), lax.floor(x))


fix = trunc


def rint(x: Any, /) -> Any:
    """Elementwise round to the nearest integer value (ties to even)."""
    (x,), _ = ufunc_args(np.rint, "rint", x)
    return lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN)


def round(a: Any, decimals: int = 0, out: Any = None) -> Any:
    """Round to ``decimals`` decimal places (ties to even, as NumPy)."""
    util.check_no_out("round", out)
    a = util.to_operand(a, "fnp.round")
    decimals = util.static_int(decimals, "round", "decimals")
    dtype = a.dtype
    if dtype.kind in "iub":
        if decimals >= 0:
            return util.fresh(a)
        factor = _const(dtype, 10 ** (-decimals))
        return lax.mul(_round_int(a, factor), factor)
    if decimals == 0:
        return lax.round(a, lax.RoundingMethod.TO_NEAREST_EVEN)
    even = lax.RoundingMethod.TO_NEAREST_EVEN
    if decimals > 0:  # NumPy's order of operations, for identical rounding
        factor = _const(dtype, 10.0**decimals)
        return lax.div(lax.round(lax.mul(a, factor), even), factor)
    factor = _const(dtype, 10.0 ** (-decimals))
    return lax.mul(lax.round(lax.div(a, factor), even), factor)


def _round_int(a: Any, factor: Any) -> Any:
    """``a / factor`` rounded half to even, in ``a``'s integer dtype."""
    f = lax.convert_element_type(a, np.float64)
    q = lax.round(lax.div(f, float(factor)), lax.RoundingMethod.TO_NEAREST_EVEN)
    return lax.convert_element_type(q, util.dtype_of(a))


around = round


def isnan(x: Any, /) -> Any:
    """Elementwise test for NaN."""
    (x,), loop = ufunc_args(np.isnan, "isnan", x)
    if loop[0].kind not in "fc":
        return _full_like(x, False, _BOOL)
    return lax.ne(x, x)


def isinf(x: Any, /) -> Any:
    """Elementwise test for positive or negative infinity."""
    (x,), loop = ufunc_args(np.isinf, "isinf", x)
    if loop[0].kind not in "fc":
        return _full_like(x, False, _BOOL)
    return lax.eq(lax.abs(x), _const(loop[0], np.inf))


def isposinf(x: Any, /) -> Any:
    """Elementwise test for positive infinity."""
    x = util.to_operand(x, "fnp.isposinf")
    if x.dtype.kind != "f":
        return _full_like(x, False, _BOOL)
    return lax.eq(x, _const(x.dtype, np.inf))


def isneginf(x: Any, /) -> Any:
    """Elementwise test for negative infinity."""
    x = util.to_operand(x, "fnp.isneginf")
    if x.dtype.kind != "f":
        return _full_like(x, False, _BOOL)
    return lax.eq(x, _const(x.dtype, -np.inf))


def isfinite(x: Any, /) -> Any:
    """Elementwise test for a finite value (not inf, not NaN)."""
    (x,), loop = ufunc_args(np.isfinite, "isfinite", x)
    if loop[0].kind not in "fc":
        return _full_like(x, True, _BOOL)
    return lax.is_finite(x)


def signbit(x: Any, /) -> Any:
    """Elementwise test for a set sign bit (``x < 0``, and ``-0.0``)."""
    (x,), loop = ufunc_args(np.signbit, "signbit", x)
    if loop[0].kind != "f":
        return lax.lt(x, _const(loop[0], 0))
    zero = _const(loop[0], 0)
    # -0.0 has its sign bit set: 1 / -0.0 is -inf.
    neg_zero = lax.bitwise_and(lax.eq(x, zero), lax.lt(lax.div(_const(loop[0], 1), x), zero))
    return lax.bitwise_or(lax.lt(x, zero), neg_zero)


def logical_not(x: Any, /) -> Any:
    """Elementwise logical not (nonzero is True)."""
    (x,), _ = ufunc_args(np.logical_not, "logical_not", x)
    return lax.bitwise_not(_to_bool(x))


def invert(x: Any, /) -> Any:
    """Elementwise bitwise not (logical not for bools)."""
    (x,), _ = ufunc_args(np.invert, "invert", x)
    return lax.bitwise_not(x)


bitwise_not = bitwise_invert = invert


def conjugate(x: Any, /) -> Any:
    """Elementwise complex conjugate (a copy for real arrays)."""
    (x,), loop = ufunc_args(np.conjugate, "conjugate", x)
    if loop[0].kind == "c":
        return lax.conj(x)
    return util.fresh(x)


conj = conjugate


def real(val: Any) -> Any:
    """The real part (a copy for real arrays)."""
    val = util.to_operand(val, "fnp.real")
    if util.dtype_of(val).kind == "c":
        return lax.real(val)
    return util.fresh(val)


def imag(val: Any) -> Any:
    """The imaginary part (zeros for real arrays)."""
    val = util.to_operand(val, "fnp.imag")
    if util.dtype_of(val).kind == "c":
        return lax.imag(val)
    return _full_like(val, 0, util.dtype_of(val))


def angle(z: Any, deg: bool = False) -> Any:
    """The argument of complex ``z`` (``atan2(imag, real)``; 0 or pi for reals), in radians
    or degrees."""
    z = util.to_operand(z, "fnp.angle")
    dtype = util.dtype_of(z)
    if dtype.kind not in "fc":
        z = util.convert(z, np.dtype(np.float64))
    out = lax.atan2(imag(z), real(z))
    if deg:
        out = lax.mul(out, _const(util.dtype_of(out), 180.0 / math.pi))
    return out


def iscomplex(x: Any) -> Any:
    """Elementwise: a nonzero imaginary part (always False for real arrays)."""
    x = util.to_operand(x, "fnp.iscomplex")
    if util.dtype_of(x).kind != "c":
        return _full_like(x, False, np.dtype(np.bool_))
    return lax.ne(lax.imag(x), _const(util.dtype_of(lax.imag(x)), 0.0))


def isreal(x: Any) -> Any:
    """Elementwise: a zero imaginary part (always True for real arrays)."""
    x = util.to_operand(x, "fnp.isreal")
    if util.dtype_of(x).kind != "c":
        return _full_like(x, True, np.dtype(np.bool_))
    return lax.eq(lax.imag(x), _const(util.dtype_of(lax.imag(x)), 0.0))


def real_if_close(a: Any, tol: float = 100) -> Any:
    """``a``'s real part if every imaginary part is within ``tol`` machine epsilons of 0
    (``tol`` above 1), else ``a``. The result's dtype depends on the values, so ``a`` must
    be concrete (NumPy's function)."""
    a = util.to_operand(a, "fnp.real_if_close")
    if util.dtype_of(a).kind != "c":
        return util.fresh(a)
    a = util.concrete(
        a, "real_if_close", "its argument", "call it outside jit/vmap, or use fnp.real"
    )
    return np.real_if_close(a, tol=tol).copy()


# ========================================================================================
# Binary


def add(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 + x2`` (logical or for bools)."""
    (a, b), loop = ufunc_args(np.add, "add", x1, x2)
    return _call("add", lax.bitwise_or if loop[0] is _BOOL else lax.add, a, b)


def subtract(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 - x2``."""
    (a, b), _ = ufunc_args(np.subtract, "subtract", x1, x2)
    return _call("subtract", lax.sub, a, b)


def multiply(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 * x2`` (logical and for bools)."""
    (a, b), loop = ufunc_args(np.multiply, "multiply", x1, x2)
    return _call("multiply", lax.bitwise_and if loop[0] is _BOOL else lax.mul, a, b)


def divide(x1: Any, x2: Any, /) -> Any:
    """Elementwise true division ``x1 / x2`` (integers give float64)."""
    (a, b), _ = ufunc_args(np.divide, "divide", x1, x2)
    return _call("divide", lax.div, a, b)


true_divide = divide


def _floor_divide(a: Any, b: Any, dtype: np.dtype) -> Any:
    if dtype.kind == "u":
        return lax.div(a, b)
    if dtype.kind == "i":
        q = lax.div(a, b)
        r = lax.rem(a, b)
        zero = _const(dtype, 0)
        fix = lax.bitwise_and(lax.ne(r, zero), lax.ne(lax.lt(r, zero), lax.lt(b, zero)))
        return lax.select(fix, lax.sub(q, _const(dtype, 1)), q)
    return _float_divmod(a, b, dtype)[0]


def _float_divmod(a: Any, b: Any, dtype: np.dtype) -> tuple[Any, Any]:
    """NumPy's ``npy_divmod`` for floats: the floor quotient and the matching remainder."""
    zero = _const(dtype, 0)
    mod = lax.rem(a, b)
    div = lax.div(lax.sub(a, mod), b)
    fix = lax.bitwise_and(lax.ne(mod, zero), lax.ne(lax.lt(b, zero), lax.lt(mod, zero)))
    mod = lax.select(fix, lax.add(mod, b), mod)
    div = lax.select(fix, lax.sub(div, _const(dtype, 1)), div)
    # Exact zero remainders take the divisor's sign (as NumPy's copysign(0, b)).
    mod = lax.select(lax.eq(mod, zero), lax.select(lax.lt(b, zero), -zero, zero), mod)
    # The quotient is an exact integer up to rounding of (a - mod) / b: snap it.
    floordiv = lax.floor(div)
    floordiv = lax.select(
        lax.gt(lax.sub(div, floordiv), _const(dtype, 0.5)),
        lax.add(floordiv, _const(dtype, 1)),
        floordiv,
    )
    # Where a / b is 0 (b infinite, or a == 0), NumPy gives a signed zero quotient.
    plain = lax.div(a, b)
    floordiv = lax.select(lax.eq(div, zero), lax.mul(zero, plain), floordiv)
    # Division by zero: NumPy's quotient is a / b (inf or NaN), its remainder NaN.
    floordiv = lax.select(lax.eq(b, zero), plain, floordiv)
    return floordiv, mod


def floor_divide(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 // x2``, rounding toward minus infinity (as NumPy)."""
    (a, b), loop = ufunc_args(np.floor_divide, "floor_divide", x1, x2)
    _call("floor_divide", _check_shapes, a, b)
    return _floor_divide(a, b, loop[0])


def _check_shapes(a: Any, b: Any) -> None:
    np.broadcast_shapes(util.shape_of(a), util.shape_of(b))


def _remainder(a: Any, b: Any, dtype: np.dtype) -> Any:
    if dtype.kind == "u":
        return lax.rem(a, b)
    if dtype.kind == "i":
        zero = _const(dtype, 0)
        r = lax.rem(a, b)
        fix = lax.bitwise_and(lax.ne(r, zero), lax.ne(lax.lt(r, zero), lax.lt(b, zero)))
        return lax.select(fix, lax.add(r, b), r)
    return _float_divmod(a, b, dtype)[1]


def remainder(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 % x2`` with the sign of the divisor (as NumPy)."""
    (a, b), loop = ufunc_args(np.remainder, "remainder", x1, x2)
    _call("remainder", _check_shapes, a, b)
    return _remainder(a, b, loop[0])


mod = remainder


def fmod(x1: Any, x2: Any, /) -> Any:
    """Elementwise C ``fmod``: the remainder with the sign of the dividend."""
    (a, b), _ = ufunc_args(np.fmod, "fmod", x1, x2)
    return _call("fmod", lax.rem, a, b)


def divmod(x1: Any, x2: Any, /) -> tuple[Any, Any]:
    """``(floor_divide(x1, x2), remainder(x1, x2))``."""
    (a, b), loop = ufunc_args(np.divmod, "divmod", x1, x2)
    _call("divmod", _check_shapes, a, b)
    dtype = loop[0]
    if dtype.kind == "f":
        return _float_divmod(a, b, dtype)
    return _floor_divide(a, b, dtype), _remainder(a, b, dtype)


def _static_int_exponent(x: Any) -> int | None:
    """The exponent as a Python int when it is a concrete integer scalar."""
    if type(x) is int:
        return x
    if isinstance(x, np.integer) or (
        isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iu"
    ):
        return int(x)
    return None


def power(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 ** x2``."""
    (a, b), loop = ufunc_args(np.power, "power", x1, x2)
    dtype = loop[0]
    k = _static_int_exponent(x2)
    if k is not None and dtype.kind in "fiu":
        if k < 0 and dtype.kind in "iu":
            raise ValueError(
                f"fnp.power: integers to negative integer powers are not allowed ({k}); "
                "convert the base to float first"
            )
        return lax.integer_pow(a, k)
    if dtype.kind in "fc":
        return _call("power", lax.pow, a, b)
    return _call("power", _int_power, a, b)


def _int_power(a: Any, b: Any) -> Any:
    dtype = util.dtype_of(a)
    if not isinstance(b, Tracer):
        bv = np.asarray(b)
        if dtype.kind == "i" and (bv < 0).any():
            raise ValueError(
                "fnp.power: integers to negative integer powers are not allowed; convert the "
                "base to float first"
            )
        bits = builtins.max(int(bv.max(initial=0)).bit_length(), 1)
    else:
        bits = 6
    zero, one = _const(dtype, 0), _const(dtype, 1)
    # 0 ** k is 0 for k != 0 even when k's set bits lie above the ones we look at.
    acc = lax.select(lax.bitwise_and(lax.eq(a, zero), lax.ne(b, zero)), zero, one)
    for i in range(bits):
        acc = lax.select(lax.ne(lax.bitwise_and(b, one), zero), lax.mul(acc, a), acc)
        if i + 1 < bits:
            a = lax.mul(a, a)
            b = lax.shift_right_logical(b, one)
    return acc


def float_power(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 ** x2`` computed in float64."""
    (a, b), _ = ufunc_args(np.float_power, "float_power", x1, x2)
    return _call("float_power", lax.pow, a, b)


def maximum(x1: Any, x2: Any, /) -> Any:
    """Elementwise maximum (NaN propagates)."""
    (a, b), _ = ufunc_args(np.maximum, "maximum", x1, x2)
    return _call("maximum", lax.max, a, b)


def minimum(x1: Any, x2: Any, /) -> Any:
    """Elementwise minimum (NaN propagates)."""
    (a, b), _ = ufunc_args(np.minimum, "minimum", x1, x2)
    return _call("minimum", lax.min, a, b)


def fmax(x1: Any, x2: Any, /) -> Any:
    """Elementwise maximum that ignores NaN."""
    (a, b), loop = ufunc_args(np.fmax, "fmax", x1, x2)
    out = _call("fmax", lax.max, a, b)
    if loop[0].kind != "f":
        return out
    return lax.select(lax.ne(a, a), _bcast(b, out), lax.select(lax.ne(b, b), _bcast(a, out), out))


def fmin(x1: Any, x2: Any, /) -> Any:
    """Elementwise minimum that ignores NaN."""
    (a, b), loop = ufunc_args(np.fmin, "fmin", x1, x2)
    out = _call("fmin", lax.min, a, b)
    if loop[0].kind != "f":
        return out
    return lax.select(lax.ne(a, a), _bcast(b, out), lax.select(lax.ne(b, b), _bcast(a, out), out))


def _bcast(x: Any, like: Any) -> Any:
    shape = util.shape_of(like)
    return x if util.shape_of(x) == shape else lax.broadcast_to(x, shape)


def arctan2(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``atan(x1 / x2)`` in the right quadrant."""
    (a, b), _ = ufunc_args(np.arctan2, "arctan2", x1, x2)
    return _call("arctan2", lax.atan2, a, b)


atan2 = arctan2


def hypot(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``sqrt(x1**2 + x2**2)``."""
    (a, b), _ = ufunc_args(np.hypot, "hypot", x1, x2)
    return lax.sqrt(_call("hypot", lax.add, lax.square(a), lax.square(b)))


def nextafter(x1: Any, x2: Any, /) -> Any:
    """The next float after ``x1`` toward ``x2``."""
    (a, b), _ = ufunc_args(np.nextafter, "nextafter", x1, x2)
    return _call("nextafter", lax.nextafter, a, b)


def _logaddexp_value(a: Any, b: Any) -> Any:
    amax = lax.max(a, b)
    delta = lax.sub(a, b)
    # Equal infinities give NaN in delta; a + b is then the answer (inf or -inf).
    return lax.select(
        lax.ne(delta, delta),
        lax.add(a, b),
        lax.add(amax, lax.log1p(lax.exp(lax.neg(lax.abs(delta))))),
    )


def _logaddexp2_value(a: Any, b: Any) -> Any:
    amax = lax.max(a, b)
    delta = lax.sub(a, b)
    ln2 = _const(util.dtype_of(a), math.log(2.0))
    tail = lax.div(lax.log1p(lax.exp2(lax.neg(lax.abs(delta)))), ln2)
    return lax.select(lax.ne(delta, delta), lax.add(a, b), lax.add(amax, tail))


def _gap(x: Any, out: Any) -> Any:
    """``x - out``, with 0 where both are the same infinity (there ``x`` is the result)."""
    d = lax.sub(x, out)
    zero = lax.broadcast_to(_const(util.dtype_of(d), 0.0), tuple(util.shape_of(d)))
    return lax.select(lax.ne(d, d), zero, d)


def _logaddexp_family(value: Any, weight: Any) -> Any:
    """``value`` with the smooth derivative ``t1 * w(x1 - out) + t2 * w(x2 - out)`` (JAX's
    rule): the value's ``max``/``abs`` kinks cancel mathematically, but their derivatives
    do not, so differentiating the value directly gets the curvature at a tie wrong."""
    from funcgrad.custom_derivatives import custom_jvp

    fn = custom_jvp(value)

    def jvp(primals, tangents):
        a, b = primals
        ta, tb = tangents
        out = fn(a, b)
        wa, wb = weight(_gap(a, out)), weight(_gap(b, out))
        return out, lax.add(lax.mul(ta, wa), lax.mul(tb, wb))

    fn.defjvp(jvp)
    return fn


_logaddexp = _logaddexp_family(_logaddexp_value, lax.exp)
_logaddexp2 = _logaddexp_family(_logaddexp2_value, lax.exp2)


def logaddexp(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``log(exp(x1) + exp(x2))`` without overflow."""
    (a, b), loop = ufunc_args(np.logaddexp, "logaddexp", x1, x2)
    shape = np.broadcast_shapes(util.shape_of(a), util.shape_of(b))
    return _logaddexp(_to_shape(a, shape), _to_shape(b, shape))


def logaddexp2(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``log2(2**x1 + 2**x2)`` without overflow."""
    (a, b), loop = ufunc_args(np.logaddexp2, "logaddexp2", x1, x2)
    shape = np.broadcast_shapes(util.shape_of(a), util.shape_of(b))
    return _logaddexp2(_to_shape(a, shape), _to_shape(b, shape))


def _to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` (the custom rule's tangents then share one shape)."""
    if tuple(util.shape_of(x)) == tuple(shape):
        return x
    return lax.broadcast_to(x, shape)


def _comparison(ufunc: np.ufunc, name: str, lax_fn: Any, doc: str) -> Any:
    def fn(x1: Any, x2: Any, /) -> Any:
        (a, b), _ = ufunc_args(ufunc, name, x1, x2)
        return _call(name, lax_fn, a, b)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


equal = _comparison(np.equal, "equal", lax.eq, "Elementwise ``x1 == x2``.")
not_equal = _comparison(np.not_equal, "not_equal", lax.ne, "Elementwise ``x1 != x2``.")
less = _comparison(np.less, "less", lax.lt, "Elementwise ``x1 < x2``.")
less_equal = _comparison(np.less_equal, "less_equal", lax.le, "Elementwise ``x1 <= x2``.")
greater = _comparison(np.greater, "greater", lax.gt, "Elementwise ``x1 > x2``.")
greater_equal = _comparison(np.greater_equal, "greater_equal", lax.ge, "Elementwise ``x1 >= x2``.")
bitwise_and = _comparison(
    np.bitwise_and, "bitwise_and", lax.bitwise_and, "Elementwise ``x1 & x2``."
)
bitwise_or = _comparison(np.bitwise_or, "bitwise_or", lax.bitwise_or, "Elementwise ``x1 | x2``.")
bitwise_xor = _comparison(
    np.bitwise_xor, "bitwise_xor", lax.bitwise_xor, "Elementwise ``x1 ^ x2``."
)


def _logical(ufunc: np.ufunc, name: str, lax_fn: Any, doc: str) -> Any:
    def fn(x1: Any, x2: Any, /) -> Any:
        (a, b), _ = ufunc_args(ufunc, name, x1, x2)
        return _call(name, lax_fn, _to_bool(a), _to_bool(b))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


logical_and = _logical(np.logical_and, "logical_and", lax.bitwise_and, "Elementwise logical and.")
logical_or = _logical(np.logical_or, "logical_or", lax.bitwise_or, "Elementwise logical or.")
logical_xor = _logical(np.logical_xor, "logical_xor", lax.ne, "Elementwise logical xor.")


def left_shift(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 << x2``."""
    (a, b), _ = ufunc_args(np.left_shift, "left_shift", x1, x2)
    return _call("left_shift", lax.shift_left, a, b)


def right_shift(x1: Any, x2: Any, /) -> Any:
    """Elementwise ``x1 >> x2`` (arithmetic for signed integers)."""
    (a, b), loop = ufunc_args(np.right_shift, "right_shift", x1, x2)
    fn = lax.shift_right_logical if loop[0].kind == "u" else lax.shift_right_arithmetic
    return _call("right_shift", fn, a, b)


bitwise_left_shift, bitwise_right_shift = left_shift, right_shift


# ========================================================================================
# Not ufuncs, but elementwise


def where(condition: Any, x: Any = None, y: Any = None, /) -> Any:
    """``x`` where ``condition`` else ``y`` (broadcast); one argument: ``nonzero``."""
    if x is None and y is None:
        return fnp.nonzero(condition)
    if x is None or y is None:
        raise ValueError("fnp.where: give both x and y, or neither (for nonzero(condition))")
    cond = _to_bool(util.to_operand(condition, "fnp.where"))
    a, b = util.promote_args("fnp.where", x, y)
    try:
        return lax.select(cond, a, b)
    except ValueError:
        _broadcast_error("where", cond, a, b)
        raise


def clip(
    a: Any,
    a_min: Any = None,
    a_max: Any = None,
    out: Any = None,
    *,
    min: Any = None,
    max: Any = None,
) -> Any:
    """Limit values to ``[a_min, a_max]`` (``minimum(maximum(a, a_min), a_max)``)."""
    util.check_no_out("clip", out)
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    args = [a] + [v for v in (lo, hi) if v is not None]
    ops = util.promote_args("fnp.clip", *args)
    x = ops[0]
    rest = iter(ops[1:])
    if lo is not None:
        x = _call("clip", lax.max, x, next(rest))
    if hi is not None:
        x = _call("clip", lax.min, x, next(rest))
    if lo is None and hi is None:
        x = util.fresh(x)
    return x


def nan_to_num(
    x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None
) -> Any:
    """Replace NaN by ``nan`` and infinities by ``posinf``/``neginf`` (default: the extremes)."""
    x = util.to_operand(x, "fnp.nan_to_num")
    dtype = x.dtype
    if dtype.kind != "f":
        return util.fresh(x)
    info = np.finfo(dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    out = lax.select(lax.ne(x, x), _const(dtype, nan), x)
    out = lax.select(lax.eq(out, _const(dtype, np.inf)), _const(dtype, posinf), out)
    return lax.select(lax.eq(out, _const(dtype, -np.inf)), _const(dtype, neginf), out)


def isclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Any:
    """Elementwise ``|a - b| <= atol + rtol * |b|`` (infinities equal only to themselves)."""
    a, b = util.promote_args("fnp.isclose", a, b)
    dtype = util.dtype_of(a)
    if dtype.kind in "biu":
        a, b = util.convert(a, np.float64), util.convert(b, np.float64)
        dtype = np.dtype(np.float64)
    diff = lax.abs(_call("isclose", lax.sub, a, b))
    rdtype = util.dtype_of(diff)  # real for complex operands
    tol = lax.add(_const(rdtype, atol), lax.mul(_const(rdtype, rtol), lax.abs(b)))
    close = lax.bitwise_and(lax.le(diff, tol), lax.is_finite(diff))
    close = lax.bitwise_or(close, lax.eq(a, b))
    if equal_nan:
        close = lax.bitwise_or(close, lax.bitwise_and(lax.ne(a, a), lax.ne(b, b)))
    return close


def allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Any:
    """Whether all elements are close (a Python bool for concrete values)."""
    out = fnp.all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
    return builtins.bool(out) if not isinstance(out, Tracer) else out


def array_equal(a1: Any, a2: Any, equal_nan: bool = False) -> Any:
    """Whether two arrays have the same shape and elements (a Python bool when concrete)."""
    a1 = util.to_operand(a1, "fnp.array_equal")
    a2 = util.to_operand(a2, "fnp.array_equal")
    if util.shape_of(a1) != util.shape_of(a2):
        return False
    eq = equal(a1, a2)
    if equal_nan:
        eq = logical_or(eq, logical_and(isnan(a1), isnan(a2)))
    out = fnp.all(eq)
    return builtins.bool(out) if not isinstance(out, Tracer) else out


def array_equiv(a1: Any, a2: Any) -> Any:
    """Whether two arrays are equal after broadcasting."""
    try:
        np.broadcast_shapes(util.shape_of(a1), util.shape_of(a2))
    except ValueError:
        return False
    out = fnp.all(equal(a1, a2))
    return builtins.bool(out) if not isinstance(out, Tracer) else out


pow = power


def copysign(x1: Any, x2: Any, /) -> Any:
    """``x1`` with the sign of ``x2``."""
    (a, b), loop = ufunc_args(np.copysign, "copysign", x1, x2)
    neg = signbit(b)
    mag = lax.abs(a)
    return _call("copysign", lax.select, neg, lax.neg(mag), mag)


def heaviside(x1: Any, x2: Any, /) -> Any:
    """Step function: 0 where ``x1 < 0``, ``x2`` where ``x1 == 0``, 1 where ``x1 > 0``."""
    (a, b), loop = ufunc_args(np.heaviside, "heaviside", x1, x2)
    zero, one = _const(loop[0], 0), _const(loop[0], 1)
    out = _call("heaviside", lax.select, lax.gt(a, zero), one, b)
    out = lax.select(lax.lt(a, zero), zero, out)
    return lax.select(lax.ne(a, a), a, out)  # NaN stays NaN


def sinc(x: Any, /) -> Any:
    """``sin(pi x) / (pi x)``, and 1 at 0."""
    x = util.to_operand(x, "fnp.sinc")
    (x,) = util.promote_args_inexact("fnp.sinc", x)
    dtype = util.dtype_of(x)
    zero, one = _const(dtype, 0), _const(dtype, 1)
    is_zero = lax.eq(x, zero)
    pix = lax.mul(lax.select(is_zero, one, x), _const(dtype, math.pi))
    return lax.select(is_zero, one, lax.div(lax.sin(pix), pix))


def select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    """The choice of the first true condition, elementwise (``default`` where none is)."""
    if len(condlist) != len(choicelist):
        raise ValueError(
            f"fnp.select: {len(condlist)} conditions but {len(choicelist)} choices; give one "
            "choice per condition"
        )
    if not condlist:
        raise ValueError("fnp.select: needs at least one condition")
    choices = util.promote_args("fnp.select", *choicelist, default)
    out = choices[-1]
    for cond, choice in zip(condlist[::-1], choices[-2::-1], strict=True):
        c = util.to_operand(cond, "fnp.select")
        if util.dtype_of(c) != _BOOL:
            raise TypeError(f"fnp.select: conditions must be bool arrays, got {util.short(c)}")
        out = where(c, choice, out)
    if not isinstance(out, Tracer) and any(out is c for c in choicelist):
        out = util.fresh(out)
    return out
