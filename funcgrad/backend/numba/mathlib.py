"""Branch-free float32/float64 math that LLVM vectorizes inside numba loops.

numba from PyPI has no SVML, so ``np.exp``/``np.sin``/``np.tanh`` in an ``@njit`` loop are
scalar libm calls and the loop does not vectorize. The functions here are Cephes-style:
range reduction, a minimax polynomial, reconstruction through the exponent bits, and the
special cases (NaN, +-inf, +-0, overflow, underflow, denormals) folded in with selects, so a
loop ``for i in range(n): out[i] = exp_f32(x[i])`` compiles to SIMD code with no branches
and no calls.

Calling them from generated kernels
-----------------------------------
Every function is a module-level ``numba.njit`` dispatcher taking and returning one scalar of
its dtype; import it by name in the generated source and call it::

    from funcgrad.backend.numba.mathlib import exp_f32, sin_f32

    def kernel(x, out):
        for i in range(x.shape[0]):
            out[i] = sin_f32(x[i]) * exp_f32(-x[i] * x[i])

``MATH[(name, dtype_name)]`` gives the dispatcher for the primitives ``exp, expm1, log,
log1p, sin, cos, tanh, logistic, erf`` and dtypes ``"float32"``/``"float64"``. Pass exactly
that dtype (a float32 function called with a float64 value does not compile: the bit casts
are typed). LLVM inlines the calls; each function carries its own flags, so the caller's
flags do not matter. The argument must not be an int or a Python float literal typed float64.

Flags: ``fastmath={"contract"}`` only (FMA contraction; no flag that changes NaN, inf or
signed-zero semantics) and ``error_model="numpy"`` (no exception path on division).
``cache=True``: the machine code of each function is kept in numba's cache next to this file
(or in numba's user cache directory when that is read-only). A kernel cached on disk embeds
the compiled math, so a kernel cache key must hash this file's source.

Range of sin and cos
--------------------
The argument reduction (Cody-Waite with pi/2 in three parts and exact two-sum/two-product
steps) is exact for ``abs(x) <= SINCOS_MAX[dtype]``: 2**20 (about 1e6) for float32, 2**40
(about 1e12) for float64. Beyond that sin and cos return NaN: a branch to libm inside the
function would stop LLVM vectorizing the loop, which then runs at libm speed for every
element (measured: 11 ns per float32 element instead of 0.5). A kernel that must be right
everywhere keeps a flag in its vectorized loop (free: measured within noise) and recomputes
the elements concerned with libm in a rare second loop::

    big = False
    for i in range(n):
        out[i] = sin_f32(x[i])
        big |= abs(x[i]) > SINCOS_MAX_F32       # NaN and inf are handled by sin_f32
    if big:
        for i in range(n):
            if abs(x[i]) > SINCOS_MAX_F32:
                out[i] = np.sin(x[i])           # the element's whole expression, with libm

Accuracy
--------
Against long double references (``tests/test_mathlib.py`` gives the table): at most 1.37 ulp
for float32 (every input checked) and 1.56 ulp for float64 (expm1; most functions under 1.1).
``benchmarks/mathlib_bench.py`` prints errors and speeds. The error-free steps use
``llvm.fma`` explicitly, so they are exact with or without hardware FMA (without it, the fma
is a libm call: correct but slow).

Coefficients: minimax (Remez) polynomials fitted for the form and interval used here, with
mpmath at 50 digits, weighted for the relative error of the final result, and checked after
rounding to the working precision.

Writing numba code that stays in float32: every constant is a module-level ``np.float32``
(a Python float literal is float64 and promotes the whole expression). numba types integer
arithmetic as int64; the bit casts truncate back to 32 bits, and where LLVM cannot narrow
the int64 work by itself (a shifted difference, an int-to-float conversion) the int32
intrinsics below do it, or the loop runs in 64-bit integer lanes.
"""

from __future__ import annotations

import numpy as np

from funcgrad.backend.numba.compile import numba_module

numba_module()  # funcgrad's numba settings apply before anything compiles

from numba import njit, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

__all__ = [
    "MATH",
    "SINCOS_MAX",
    "SINCOS_MAX_F32",
    "SINCOS_MAX_F64",
    "exp_f32",
    "exp_f64",
    "expm1_f32",
    "expm1_f64",
    "log_f32",
    "log_f64",
    "log1p_f32",
    "log1p_f64",
    "sin_f32",
    "sin_f64",
    "cos_f32",
    "cos_f64",
    "tanh_f32",
    "tanh_f64",
    "logistic_f32",
    "logistic_f64",
    "erf_f32",
    "erf_f64",
]

# forceinline: LLVM's inliner otherwise leaves the larger functions (erf) as calls, and a
# call stops the caller's loop from vectorizing. _jit_exact: no contraction, for the
# error-free transformations (instructions keep their own flags after inlining).
_jit = njit(fastmath={"contract"}, error_model="numpy", forceinline=True, cache=True)
_jit_exact = njit(fastmath=False, error_model="numpy", forceinline=True, cache=True)

_f = np.float32
_d = np.float64
_SIGN32 = np.int32(-(2**31))
_SIGN64 = np.int64(-(2**63))


# ---------------------------------------------------------------------------------------
# Bit casts between floats and integers of the same width (LLVM bitcast: one register move
# or nothing). The integer side accepts any integer type and is truncated to the width.


def _float_to_bits(fty: types.Float, ity: types.Integer):
    @intrinsic
    def cast(typingctx, x):
        if x != fty:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(ity))

        return ity(fty), codegen

    return cast


def _bits_to_float(fty: types.Float, ity: types.Integer):
    @intrinsic
    def cast(typingctx, n):
        if not isinstance(n, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = args[0]
            lty = context.get_value_type(ity)
            if n.bitwidth > ity.bitwidth:
                v = builder.trunc(v, lty)
            elif n.bitwidth < ity.bitwidth:
                v = builder.sext(v, lty)
            return builder.bitcast(v, context.get_value_type(fty))

        return fty(n), codegen

    return cast


_bits32 = _float_to_bits(types.float32, types.int32)
_from_bits32 = _bits_to_float(types.float32, types.int32)
_bits64 = _float_to_bits(types.float64, types.int64)
_from_bits64 = _bits_to_float(types.float64, types.int64)


def _int32_op(name: str):
    """An int32 binary operation (LLVM ``sub``/``shl``/``ashr`` on i32). numba types integer
    arithmetic as int64; where LLVM cannot narrow that back (a right shift or an int-to-float
    conversion of a difference), the vector loop runs in 64-bit lanes, which on AVX-512
    machines means 512-bit instructions and about 30% more time for log."""

    @intrinsic
    def op(typingctx, a, b):
        if not (isinstance(a, types.Integer) and isinstance(b, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            i32 = context.get_value_type(types.int32)
            vals = []
            for v, t in zip(args, (a, b), strict=True):
                if t.bitwidth > 32:
                    v = builder.trunc(v, i32)
                elif t.bitwidth < 32:
                    v = builder.sext(v, i32)
                vals.append(v)
            return getattr(builder, name)(*vals)

        return types.int32(a, b), codegen

    return op


_sub32 = _int32_op("sub")
_shl32 = _int32_op("shl")
_sra32 = _int32_op("ashr")


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (llvm.fma: one instruction where the CPU has FMA, a libm
    call elsewhere, so the error-free transformations below stay exact everywhere)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return a(a, a, a), codegen


@_jit_exact
def _two_sum(a, b):
    """``s + e == a + b`` exactly, s = fl(a + b) (Knuth; compiled without contraction, so the
    additions stay separate after LLVM inlines this into a contracting caller)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_jit_exact
def _two_prod(a, b):
    """``p + e == a * b`` exactly, p = fl(a * b)."""
    p = a * b
    return p, _fma(a, b, -p)


def _horner(t, c):
    """``c[0] + c[1]*t + ... + c[-1]*t**(n-1)`` by Horner's rule (a chain of FMAs)."""
    p = c[-1]
    for ci in c[-2::-1]:
        p = p * t + ci
    return p


@overload(_horner, jit_options={"fastmath": {"contract"}, "forceinline": True})
def _horner_ol(t, c):
    # Straight-line source per tuple length: a loop over a constant tuple is only unrolled
    # (and the caller's loop only vectorized) when LLVM's unroll heuristics allow it, which
    # they stop doing at about 12 terms.
    n = len(c)
    lines = ["def horner(t, c):", f"    p = c[{n - 1}]"]
    lines += [f"    p = p * t + c[{i}]" for i in range(n - 2, -1, -1)]
    lines.append("    return p")
    namespace: dict = {}
    exec("\n".join(lines), namespace)
    return namespace["horner"]


# ---------------------------------------------------------------------------------------
# exp and expm1: x = k*ln2 + r, |r| <= ln2/2; k = round(x/ln2) through the 1.5*2^p "magic"
# addition (its low mantissa bits then hold k), 2^k built in the exponent field. 2^k is
# applied as 2^(k//2) * 2^(k - k//2), so results that overflow become inf and results in
# the denormal range are rounded once.

_ONE_F = _f(1.0)
_HALF_F = _f(0.5)
_TWO_F = _f(2.0)
_INF_F = _f(np.inf)
_NAN_F = _f(np.nan)
_ONE_D = _d(1.0)
_HALF_D = _d(0.5)
_TWO_D = _d(2.0)
_INF_D = _d(np.inf)
_NAN_D = _d(np.nan)

_ROUND_F = _f(12582912.0)  # 1.5 * 2**23
_ROUND_BITS_F = int(np.array(_ROUND_F).view(np.int32))
_ROUND_D = _d(6755399441055744.0)  # 1.5 * 2**52
_ROUND_BITS_D = int(np.array(_ROUND_D).view(np.int64))

_LOG2E_F = _f(1.4426950408889634)
_LN2_HI_F = _f(0.693359375)  # 9 bits: k * _LN2_HI_F is exact
_LN2_LO_F = _f(-2.12194440e-4)
_EXP_MAX_F = _f(89.0)  # exp overflows above 88.7228
_EXP_MIN_F = _f(-104.0)  # exp is below half the smallest denormal under -103.97
_EXP_F = (
    _f(0.4999999403953552),
    _f(0.1666652113199234),
    _f(0.04166838899254799),
    _f(0.008368716575205326),
    _f(0.001381459878757596),
)

_LOG2E_D = _d(1.4426950408889634)
_LN2_HI_D = _d(0.6931471803691238)  # 32 bits: k * _LN2_HI_D is exact
_LN2_LO_D = _d(1.9082149292705877e-10)
_EXP_MAX_D = _d(710.0)  # exp overflows above 709.78
_EXP_MIN_D = _d(-746.0)  # underflows to 0 below -745.13
_EXP_D = (
    _d(0.5000000000000011),
    _d(0.16666666666666413),
    _d(0.041666666666530155),
    _d(0.008333333333494465),
    _d(0.0013888888943630222),
    _d(0.0001984126950657147),
    _d(2.480149309878537e-05),
    _d(2.7557586380575703e-06),
    _d(2.763024842363552e-07),
    _d(2.500005939548413e-08),
)


@_jit
def _scale2_f32(p, k):
    """``p * 2**k`` for ``k`` in [-252, 254], rounded once."""
    k1 = k >> 1
    k2 = k - k1
    return p * _from_bits32((k1 + 127) << 23) * _from_bits32((k2 + 127) << 23)


@_jit
def _scale2_f64(p, k):
    """``p * 2**k`` for ``k`` in [-2044, 2046], rounded once."""
    k1 = k >> 1
    k2 = k - k1
    return p * _from_bits64((k1 + 1023) << 52) * _from_bits64((k2 + 1023) << 52)


@_jit
def _exp_arg_f32(x):
    """``x = k*ln2 + r + dr``: k, r (|r| <= 0.347) and dr, the rounding error of r."""
    t = x * _LOG2E_F + _ROUND_F
    k = _bits32(t) - _ROUND_BITS_F
    kf = t - _ROUND_F
    rh = x - kf * _LN2_HI_F  # exact
    r = rh - kf * _LN2_LO_F
    return k, r, (rh - r) - kf * _LN2_LO_F


@_jit
def _exp_reduce_f32(x):
    """``exp(x) = p * 2**k``, p in [0.7, 1.5) within 1 ulp; NaN propagates into p."""
    k, r, _ = _exp_arg_f32(x)
    return (_horner(r, _EXP_F) * (r * r) + r) + _ONE_F, k


@_jit
def _exp_parts_f32(x):
    """``exp(x) = (hi + lo) * 2**k``, hi in [0.7, 1.5), lo below its last bit (45 correct
    bits in all), for x in [_EXP_MIN_F, _EXP_MAX_F]; NaN propagates into hi."""
    k, r, dr = _exp_arg_f32(x)
    w = _horner(r, _EXP_F) * (r * r) + dr
    q = r + w  # expm1(r + dr), |q| < 0.42
    hi = _ONE_F + q
    return hi, ((_ONE_F - hi) + q) + ((r - q) + w), k  # exact sum errors (Fast2Sum)


@_jit
def _exp_normal_f32(x):
    """exp for x in [-87, 88] (normal results, one scaling), used inside other functions."""
    p, k = _exp_reduce_f32(x)
    return p * _from_bits32((k + 127) << 23)


@_jit
def exp_f32(x):
    x = _EXP_MAX_F if x > _EXP_MAX_F else x  # NaN compares false and passes through
    x = _EXP_MIN_F if x < _EXP_MIN_F else x
    p, k = _exp_reduce_f32(x)
    return _scale2_f32(p, k)


@_jit
def _exp_arg_f64(x):
    t = x * _LOG2E_D + _ROUND_D
    k = _bits64(t) - _ROUND_BITS_D
    kf = t - _ROUND_D
    rh = x - kf * _LN2_HI_D
    r = rh - kf * _LN2_LO_D
    return k, r, (rh - r) - kf * _LN2_LO_D


@_jit
def _exp_reduce_f64(x):
    k, r, _ = _exp_arg_f64(x)
    return (_horner(r, _EXP_D) * (r * r) + r) + _ONE_D, k


@_jit
def _exp_parts_f64(x):
    k, r, dr = _exp_arg_f64(x)
    w = _horner(r, _EXP_D) * (r * r) + dr
    q = r + w
    hi = _ONE_D + q
    return hi, ((_ONE_D - hi) + q) + ((r - q) + w), k


@_jit
def _exp_normal_f64(x):
    """exp for x in [-708, 709] (normal results, one scaling)."""
    p, k = _exp_reduce_f64(x)
    return p * _from_bits64((k + 1023) << 52)


@_jit
def exp_f64(x):
    x = _EXP_MAX_D if x > _EXP_MAX_D else x
    x = _EXP_MIN_D if x < _EXP_MIN_D else x
    p, k = _exp_reduce_f64(x)
    return _scale2_f64(p, k)


_EXPM1_MIN_F = _f(-18.0)  # expm1 rounds to -1 below -17.33
_EXPM1_TINY_F = _f(2.0**-25)  # expm1(x) rounds to x below this (also keeps -0)
_EXPM1_F = (
    _f(0.5),
    _f(0.1666666567325592),
    _f(0.041666362434625626),
    _f(0.008333389647305012),
    _f(0.0013940627686679363),
    _f(0.00019845878705382347),
)
_EXPM1_MIN_D = _d(-38.0)  # rounds to -1 below -37.43
_EXPM1_TINY_D = _d(2.0**-54)
_EXPM1_D = (
    _d(0.5),
    _d(0.16666666666666677),
    _d(0.04166666666666651),
    _d(0.008333333333321691),
    _d(0.001388888888896237),
    _d(0.0001984126988596624),
    _d(2.4801587172539033e-05),
    _d(2.755724437387623e-06),
    _d(2.7557402642325026e-07),
    _d(2.5108978989860374e-08),
    _d(2.087533010858296e-09),
)


@_jit
def expm1_f32(x):
    """``exp(x) - 1 = 2**k * (1 + e) - 1`` with ``e = expm1(r)`` carried as hi + lo; e itself
    for k == 0; x itself for tiny x (which keeps -0 and denormals)."""
    xc = _EXP_MAX_F if x > _EXP_MAX_F else x
    xc = _EXPM1_MIN_F if xc < _EXPM1_MIN_F else xc
    k, r, dr = _exp_arg_f32(xc)
    w = _horner(r, _EXPM1_F) * (r * r) + dr
    e = r + w
    e_lo = (r - e) + w
    # 2**k for k <= 128: 2**(k-1) * 2 when k == 128 (x in [88.4, 88.7])
    top = k > 127
    s = _from_bits32((k - top + 127) << 23)
    y = s * e + ((s - _ONE_F) + s * e_lo)
    y = y * _TWO_F if top else y
    y = e if k == 0 else y
    return x if abs(x) < _EXPM1_TINY_F else y


@_jit
def expm1_f64(x):
    xc = _EXP_MAX_D if x > _EXP_MAX_D else x
    xc = _EXPM1_MIN_D if xc < _EXPM1_MIN_D else xc
    k, r, dr = _exp_arg_f64(xc)
    w = _horner(r, _EXPM1_D) * (r * r) + dr
    e = r + w
    e_lo = (r - e) + w
    top = k > 1023
    s = _from_bits64((k - top + 1023) << 52)
    y = s * e + ((s - _ONE_D) + s * e_lo)
    y = y * _TWO_D if top else y
    y = e if k == 0 else y
    return x if abs(x) < _EXPM1_TINY_D else y


# ---------------------------------------------------------------------------------------
# log and log1p: x = 2^k * z with z in [sqrt(1/2), sqrt(2)) taken from the bits (subtracting
# the bits of sqrt(1/2) first makes the exponent field k directly), f = z - 1 (exact).
# float32: log(1+f) = f - f^2/2 + f^3 P(f). float64: s = f/(2+f), log(1+f) = 2 atanh(s)
# = f - (f^2/2 - s (f^2/2 + R(s^2))) (fdlibm's form, one division, degree-7 polynomial).

_SQRTH_BITS_F = int(np.array(_f(0.70710677)).view(np.int32))
_SQRTH_BITS_D = int(np.array(_d(0.7071067811865476)).view(np.int64))
_MIN_NORMAL_F = _f(1.1754943508222875e-38)
_MIN_NORMAL_D = _d(2.2250738585072014e-308)
_TWO23_F = _f(2.0**23)
_TWO54_D = _d(2.0**54)
_LOG_F = (
    _f(0.3333333134651184),
    _f(-0.250008225440979),
    _f(0.20001228153705597),
    _f(-0.1662333607673645),
    _f(0.1420171856880188),
    _f(-0.1316036432981491),
    _f(0.12761962413787842),
    _f(-0.07634487748146057),
)
_LOG_D = (
    _d(0.6666666666666734),
    _d(0.39999999999416014),
    _d(0.2857142874210241),
    _d(0.2222219860112583),
    _d(0.1818356294344099),
    _d(0.15314084176109982),
    _d(0.14795630339876392),
)
_ZERO_F = _f(0.0)
_ZERO_D = _d(0.0)
_K23_F = _f(23.0)
_K54_D = _d(54.0)


@_jit
def _log1p_poly_f32(f):
    """``log(1 + f) - f`` for f in [sqrt(1/2) - 1, sqrt(2) - 1]."""
    p = _horner(f, _LOG_F)
    z = f * f
    return p * (z * f) - _HALF_F * z


@_jit
def log_f32(x):
    tiny = x < _MIN_NORMAL_F  # denormals: scale into the normal range first
    xs = x * _TWO23_F if tiny else x
    ix = _bits32(xs)
    k = _sra32(_sub32(ix, _SQRTH_BITS_F), 23)
    z = _from_bits32(_sub32(ix, _shl32(k, 23)))
    kf = _f(k)
    kf = kf - _K23_F if tiny else kf
    f = z - _ONE_F
    y = _log1p_poly_f32(f) + kf * _LN2_LO_F
    y = (f + y) + kf * _LN2_HI_F
    y = x if not x < _INF_F else y  # +inf and NaN
    y = _NAN_F if x < _ZERO_F else y
    return -_INF_F if x == _ZERO_F else y


@_jit
def log_f64(x):
    tiny = x < _MIN_NORMAL_D
    xs = x * _TWO54_D if tiny else x
    ix = _bits64(xs)
    k = (ix - _SQRTH_BITS_D) >> 52
    z = _from_bits64(ix - (k << 52))
    kf = _d(k)
    kf = kf - _K54_D if tiny else kf
    f = z - _ONE_D
    hfsq = _HALF_D * f * f
    s = f / (_TWO_D + f)
    w = s * s
    r = _horner(w, _LOG_D) * w
    y = kf * _LN2_HI_D + (f - (hfsq - (s * (hfsq + r) + kf * _LN2_LO_D)))
    y = x if not x < _INF_D else y
    y = _NAN_D if x < _ZERO_D else y
    return -_INF_D if x == _ZERO_D else y


@_jit
def _log1p_poly_f64(f, kf, corr):
    """``log(2**kf * (1 + f)) + corr`` for f in [sqrt(1/2) - 1, sqrt(2) - 1]."""
    hfsq = _HALF_D * f * f
    s = f / (_TWO_D + f)
    w = s * s
    r = _horner(w, _LOG_D) * w
    lo = s * (hfsq + r) + (kf * _LN2_LO_D + corr)
    return kf * _LN2_HI_D + (f - (hfsq - lo))


_LOG1P_TINY_F = _f(2.0**-24)  # log1p(x) rounds to x below this
_LOG1P_TINY_D = _d(2.0**-53)


@_jit
def log1p_f32(x):
    """``log(1 + x)``: log of ``u = 1 + x`` plus ``c / u``, c the rounding error of u."""
    u = x + _ONE_F
    corr = (x - (u - _ONE_F)) / u
    iu = _bits32(u)
    k = _sra32(_sub32(iu, _SQRTH_BITS_F), 23)
    f = _from_bits32(_sub32(iu, _shl32(k, 23))) - _ONE_F
    kf = _f(k)
    y = _log1p_poly_f32(f) + (kf * _LN2_LO_F + corr)
    y = (f + y) + kf * _LN2_HI_F
    y = x if not x < _INF_F else y
    y = _NAN_F if x < -_ONE_F else y
    y = -_INF_F if x == -_ONE_F else y
    return x if abs(x) < _LOG1P_TINY_F else y


@_jit
def log1p_f64(x):
    u = x + _ONE_D
    corr = (x - (u - _ONE_D)) / u
    iu = _bits64(u)
    k = (iu - _SQRTH_BITS_D) >> 52
    f = _from_bits64(iu - (k << 52)) - _ONE_D
    y = _log1p_poly_f64(f, _d(k), corr)
    y = x if not x < _INF_D else y
    y = _NAN_D if x < -_ONE_D else y
    y = -_INF_D if x == -_ONE_D else y
    return x if abs(x) < _LOG1P_TINY_D else y


# ---------------------------------------------------------------------------------------
# sin and cos: |x| = j*pi/2 + (r + lo), |r| <= pi/4 (+ a margin for the rounding of j), pi/2
# in three parts p1 + p2 + p3 (72 bits for float32, 159 for float64). r1 = |x| - j*p1 is
# exact with one FMA; r1 - j*p2 is carried as hi + lo with exact two-sum/two-product, which
# keeps the reduction exact to the last bit even when |x| is close to a multiple of pi/2.
# sin(r + lo) = r + r^3 S(r^2) + lo (1 - r^2/2), cos(r + lo) = 1 - r^2/2 + r^4 C(r^2) - r lo.
# Bit 0 of j (plus 1 for cos) picks the polynomial, bit 1 the sign; sin takes the sign of x
# through the sign bit (sin(-0) = -0). |x| > SINCOS_MAX gives NaN (see the module docstring).

_TWO_OVER_PI_F = _f(0.6366197723675814)
_PIO2_F = (_f(1.5707963705062866), _f(-4.371138828673793e-08), _f(-1.7151245100058819e-15))
_SIN_F = (_f(-0.16666649281978607), _f(0.00833186972886324), _f(-0.00019477272871881723))
_COS_F = (_f(0.04166663810610771), _f(-0.0013886920642107725), _f(2.4389668396906927e-05))
SINCOS_MAX_F32 = _f(2.0**20)  # j = round(x * fl(2/pi)) keeps |r| <= 0.828 (the fit: 0.83)

_TWO_OVER_PI_D = _d(0.6366197723675814)
_PIO2_D = (_d(1.5707963267948966), _d(6.123233995736766e-17), _d(-1.4973849048591698e-33))
_SIN_D = (
    _d(-0.1666666666666663),
    _d(0.008333333333322004),
    _d(-0.00019841269829493508),
    _d(2.7557313586907886e-06),
    _d(-2.505074219323345e-08),
    _d(1.5895897912872111e-10),
)
_COS_D = (
    _d(0.041666666666666595),
    _d(-0.001388888888887289),
    _d(2.4801587288746e-05),
    _d(-2.7557314147976903e-07),
    _d(2.087569648269313e-09),
    _d(-1.1358305736726993e-11),
)
SINCOS_MAX_F64 = _d(2.0**40)  # |r| <= pi/4 * 1.0001 (the fit: 1.001)


@_jit
def _sincos_f32(x, quadrant, sign):
    """sin(|x| + quadrant * pi/2) with ``sign`` xor-ed into the sign bit. The low bits of
    t + quadrant (a float add: an integer add here would make LLVM widen the lane to 64
    bits) are those of j + quadrant, as the rounding constant's low bits are 0."""
    a = abs(x)
    t = _fma(a, _TWO_OVER_PI_F, _ROUND_F)
    j = _bits32(t + quadrant)
    jf = t - _ROUND_F
    p = _PIO2_F
    r1 = _fma(-jf, p[0], a)
    b, eb = _two_prod(jf, p[1])
    r, e = _two_sum(r1, -b)
    lo = (e - eb) - jf * p[2]
    z = r * r
    hc = _ONE_F - _HALF_F * z
    hcl = (_ONE_F - hc) - _HALF_F * z
    ps = _horner(z, _SIN_F) * (z * r) + lo * hc + r
    pc = hc + ((_horner(z, _COS_F) * (z * z) + hcl) - r * lo)
    y = pc if j & 1 else ps
    y = _from_bits32(_bits32(y) ^ ((j & 2) << 30) ^ sign)
    return _NAN_F if a > SINCOS_MAX_F32 else y


@_jit
def sin_f32(x):
    return _sincos_f32(x, _ZERO_F, _bits32(x) & _SIGN32)


@_jit
def cos_f32(x):
    return _sincos_f32(x, _ONE_F, 0)


@_jit
def _sincos_f64(x, quadrant, sign):
    a = abs(x)
    t = _fma(a, _TWO_OVER_PI_D, _ROUND_D)
    j = _bits64(t + quadrant)
    jf = t - _ROUND_D
    p = _PIO2_D
    r1 = _fma(-jf, p[0], a)
    b, eb = _two_prod(jf, p[1])
    r, e = _two_sum(r1, -b)
    lo = (e - eb) - jf * p[2]
    z = r * r
    hc = _ONE_D - _HALF_D * z
    hcl = (_ONE_D - hc) - _HALF_D * z
    ps = _horner(z, _SIN_D) * (z * r) + lo * hc + r
    pc = hc + ((_horner(z, _COS_D) * (z * z) + hcl) - r * lo)
    y = pc if j & 1 else ps
    y = _from_bits64(_bits64(y) ^ ((j & 2) << 62) ^ sign)
    return _NAN_D if a > SINCOS_MAX_F64 else y


@_jit
def sin_f64(x):
    return _sincos_f64(x, _ZERO_D, _bits64(x) & _SIGN64)


@_jit
def cos_f64(x):
    return _sincos_f64(x, _ONE_D, 0)


# ---------------------------------------------------------------------------------------
# tanh: |x| < 0.625: x + x^3 T(x^2); above: 1 - 2 / (exp(2|x|) + 1), |x| clamped where tanh
# rounds to 1; the sign of x is or-ed back in (tanh(-0) = -0).

_TANH_SMALL_F = _f(0.625)
_TANH_MAX_F = _f(9.5)
_TANH_F = (
    _f(-0.3333328068256378),
    _f(0.13331441581249237),
    _f(-0.05373965576291084),
    _f(0.020638883113861084),
    _f(-0.005704749375581741),
)
_TANH_SMALL_D = _d(0.625)
_TANH_MAX_D = _d(20.0)
_TANH_D = (
    _d(-0.33333333333332854),
    _d(0.13333333333262026),
    _d(-0.05396825393123748),
    _d(0.021869487575405543),
    _d(-0.008863220993642628),
    _d(0.003591989101576728),
    _d(-0.001454958508108041),
    _d(0.000586315331017784),
    _d(-0.00022856176759716002),
    _d(7.714158730345083e-05),
    _d(-1.6071208989850866e-05),
)


@_jit
def tanh_f32(x):
    a = abs(x)
    z = a * a
    small = _horner(z, _TANH_F) * (z * a) + a
    ac = _TANH_MAX_F if a > _TANH_MAX_F else a
    large = _ONE_F - _TWO_F / (_exp_normal_f32(ac + ac) + _ONE_F)
    y = small if a < _TANH_SMALL_F else large
    return _from_bits32(_bits32(y) | (_bits32(x) & _SIGN32))


@_jit
def tanh_f64(x):
    a = abs(x)
    z = a * a
    small = _horner(z, _TANH_D) * (z * a) + a
    ac = _TANH_MAX_D if a > _TANH_MAX_D else a
    large = _ONE_D - _TWO_D / (_exp_normal_f64(ac + ac) + _ONE_D)
    y = small if a < _TANH_SMALL_D else large
    return _from_bits64(_bits64(y) | (_bits64(x) & _SIGN64))


# ---------------------------------------------------------------------------------------
# logistic(x) = 1 / (1 + exp(-x)): with t = exp(-|x|) in (0, 1], 1 / (1 + t) for x >= 0 and
# t / (1 + t) for x < 0, so nothing overflows and tiny results keep their denormal digits.


@_jit
def logistic_f32(x):
    # float32 carries t = exp(-|x|) and 1 + t as hi + lo pairs and corrects the quotient
    # once (an FMA remainder), which keeps the result within 1 ulp; the plain formula
    # reaches 2.3 ulp.
    a = -abs(x)
    a = _EXP_MIN_F if a < _EXP_MIN_F else a
    hi, lo, k = _exp_parts_f32(a)
    th = _scale2_f32(hi, k)
    tl = _scale2_f32(lo, k)
    d = _ONE_F + th
    dl = ((_ONE_F - d) + th) + tl
    neg = x < _ZERO_F
    nh = th if neg else _ONE_F
    nl = tl if neg else _ZERO_F
    rcp = _ONE_F / d
    q = nh * rcp
    return q + (_fma(-q, d, nh) + (nl - q * dl)) * rcp


@_jit
def logistic_f64(x):
    a = -abs(x)
    a = _EXP_MIN_D if a < _EXP_MIN_D else a
    hi, lo, k = _exp_parts_f64(a)
    th = _scale2_f64(hi, k)
    tl = _scale2_f64(lo, k)
    d = _ONE_D + th
    dl = ((_ONE_D - d) + th) + tl
    neg = x < _ZERO_D
    nh = th if neg else _ONE_D
    nl = tl if neg else _ZERO_D
    rcp = _ONE_D / d
    q = nh * rcp
    return q + (_fma(-q, d, nh) + (nl - q * dl)) * rcp


# ---------------------------------------------------------------------------------------
# erf: |x| < 1: x + x Q(x^2); 1 <= |x| < X: 1 - exp(-x^2) G(x), G a polynomial in
# (x - m) / h over [1, X]; above X (4 for float32, 6 for float64) erf rounds to 1.

_ERF_SPLIT_F = _f(1.0)
_ERF_MAX_F = _f(4.0)
_ERF_SMALL_F = (
    _f(0.12837916612625122),
    _f(-0.3761262595653534),
    _f(0.1128358468413353),
    _f(-0.026853807270526886),
    _f(0.005188317969441414),
    _f(-0.0008010101155377924),
    _f(7.853528950363398e-05),
)
_ERF_MID_F = _f(2.5)
_ERF_INV_HALF_WIDTH_F = _f(0.6666666865348816)
_ERF_LARGE_F = (
    _f(0.2108076512813568),
    _f(-0.11151348054409027),
    _f(0.05605262517929077),
    _f(-0.027464397251605988),
    _f(0.011652468703687191),
    _f(-0.004940197337418795),
    _f(0.00634813355281949),
    _f(0.003968335222452879),
    _f(0.0027729328721761703),
)
_ERF_SPLIT_D = _d(1.0)
_ERF_MAX_D = _d(6.0)
_ERF_SMALL_D = (
    _d(0.12837916709551256),
    _d(-0.3761263890318352),
    _d(0.11283791670944174),
    _d(-0.026866170643109717),
    _d(0.0052239776061036875),
    _d(-0.0008548325928587364),
    _d(0.00012055293554664933),
    _d(-1.492471186633571e-05),
    _d(1.6447126099263796e-06),
    _d(-1.6206271165650895e-07),
    _d(1.3710793379912577e-08),
    _d(-7.779114472957182e-10),
)
_ERF_MID_D = _d(3.5)
_ERF_INV_HALF_WIDTH_D = _d(0.4)
_ERF_LARGE_D = (
    _d(0.15529365560718852),
    _d(-0.10330894457769255),
    _d(0.06663208341395073),
    _d(-0.04176677817572283),
    _d(0.02549556785796778),
    _d(-0.015182898134150889),
    _d(0.008831122682297835),
    _d(-0.005031135687017104),
    _d(0.0028221643395583847),
    _d(-0.001439059113093326),
    _d(0.0009642529608654754),
    _d(-0.0005689564897646804),
    _d(-0.0006933438823434295),
    _d(-0.0016485660929626315),
    _d(-0.0006526791781017077),
    _d(0.0016321064464269012),
    _d(0.003729714791007232),
    _d(0.003714641012153906),
    _d(0.0021688615142083545),
    _d(0.0007153664075458482),
    _d(0.00010795164493041534),
)


@_jit
def erf_f32(x):
    a = abs(x)
    z = a * a
    small = _horner(z, _ERF_SMALL_F) * a + a
    ac = _ERF_MAX_F if a > _ERF_MAX_F else a
    t = (ac - _ERF_MID_F) * _ERF_INV_HALF_WIDTH_F
    large = _ONE_F - _exp_normal_f32(-(ac * ac)) * _horner(t, _ERF_LARGE_F)
    y = small if a < _ERF_SPLIT_F else large
    return _from_bits32(_bits32(y) | (_bits32(x) & _SIGN32))


@_jit
def erf_f64(x):
    a = abs(x)
    z = a * a
    small = _horner(z, _ERF_SMALL_D) * a + a
    ac = _ERF_MAX_D if a > _ERF_MAX_D else a
    t = (ac - _ERF_MID_D) * _ERF_INV_HALF_WIDTH_D
    large = _ONE_D - _exp_normal_f64(-(ac * ac)) * _horner(t, _ERF_LARGE_D)
    y = small if a < _ERF_SPLIT_D else large
    return _from_bits64(_bits64(y) | (_bits64(x) & _SIGN64))


# ---------------------------------------------------------------------------------------

SINCOS_MAX = {"float32": SINCOS_MAX_F32, "float64": SINCOS_MAX_F64}

MATH = {
    ("exp", "float32"): exp_f32,
    ("exp", "float64"): exp_f64,
    ("expm1", "float32"): expm1_f32,
    ("expm1", "float64"): expm1_f64,
    ("log", "float32"): log_f32,
    ("log", "float64"): log_f64,
    ("log1p", "float32"): log1p_f32,
    ("log1p", "float64"): log1p_f64,
    ("sin", "float32"): sin_f32,
    ("sin", "float64"): sin_f64,
    ("cos", "float32"): cos_f32,
    ("cos", "float64"): cos_f64,
    ("tanh", "float32"): tanh_f32,
    ("tanh", "float64"): tanh_f64,
    ("logistic", "float32"): logistic_f32,
    ("logistic", "float64"): logistic_f64,
    ("erf", "float32"): erf_f32,
    ("erf", "float64"): erf_f64,
}
