"""numba kernels behind ``threefry2x32`` and the eager fast paths of ``funcgrad.random``.

Imported lazily (the first time a large draw is made), never at ``import funcgrad``; every
kernel is compiled on its first call and cached on disk (``cache=True``), so later processes
load it instead of compiling. The kernels are serial: numba's default threading layer aborts
the process when two Python threads launch parallel kernels at once, which a library must
not risk.

Each kernel computes exactly what the NumPy/lax composition in ``funcgrad/lax/random_bits.py``
and ``funcgrad/random.py`` computes: integer results are bit-identical, and the float
transforms repeat the same float32/float64 operations in the same order. The one difference
is ``_log``: a vectorizable float64 logarithm (exponent split plus the ``atanh`` series)
that agrees with libm's ``log`` to 2 float64 ulp, which is invisible once the float64
result of ``normal`` is rounded to float32.

``error_model="numpy"`` lets LLVM vectorize the divisions (Python's model would check each
for zero), and every uint32 operation is wrapped in ``_u32`` because numba widens small
integers to 64 bits.
"""

from __future__ import annotations

import math

import numpy as np

from funcgrad.backend.numba.compile import numba_module

numba = numba_module()  # funcgrad's numba settings apply before anything compiles

_u32 = np.uint32
_u64 = np.uint64
_OPTS = {"cache": True, "error_model": "numpy", "nogil": True}
_INLINE = {"inline": "always", "error_model": "numpy"}

# -- Threefry-2x32 (20 rounds), scalar: the body every kernel below inlines


@numba.njit(**_INLINE)
def _rotl(x, r):
    return _u32((x << _u32(r)) | (x >> _u32(32 - r)))


@numba.njit(**_INLINE)
def _four_rounds(x0, x1, ra, rb, rc, rd):
    x0 = _u32(x0 + x1)
    x1 = _rotl(x1, ra) ^ x0
    x0 = _u32(x0 + x1)
    x1 = _rotl(x1, rb) ^ x0
    x0 = _u32(x0 + x1)
    x1 = _rotl(x1, rc) ^ x0
    x0 = _u32(x0 + x1)
    x1 = _rotl(x1, rd) ^ x0
    return x0, x1


@numba.njit(**_INLINE)
def threefry2x32(k0, k1, x0, x1):
    """One Threefry-2x32 block: key words ``k0 k1``, counter words ``x0 x1`` (uint32)."""
    k2 = _u32(k0 ^ k1 ^ _u32(0x1BD11BDA))
    x0 = _u32(x0 + k0)
    x1 = _u32(x1 + k1)
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = _u32(x0 + k1)
    x1 = _u32(x1 + k2 + _u32(1))
    x0, x1 = _four_rounds(x0, x1, 17, 29, 16, 24)
    x0 = _u32(x0 + k2)
    x1 = _u32(x1 + k0 + _u32(2))
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = _u32(x0 + k0)
    x1 = _u32(x1 + k1 + _u32(3))
    x0, x1 = _four_rounds(x0, x1, 17, 29, 16, 24)
    x0 = _u32(x0 + k1)
    x1 = _u32(x1 + k2 + _u32(4))
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = _u32(x0 + k2)
    x1 = _u32(x1 + k0 + _u32(5))
    return x0, x1


# -- the primitive's impl for large arrays (operands already broadcast and flattened)


@numba.njit(**_OPTS)
def threefry_scalar_key(k0, k1, x0, x1, out0, out1):
    for i in range(out0.size):
        a, b = threefry2x32(k0, k1, x0[i], x1[i])
        out0[i] = a
        out1[i] = b


@numba.njit(**_OPTS)
def threefry_arrays(k0, k1, x0, x1, out0, out1):
    for i in range(out0.size):
        a, b = threefry2x32(k0[i], k1[i], x0[i], x1[i])
        out0[i] = a
        out1[i] = b


# -- fused samplers: counters are the flat index i as (hi, lo) words, as random.bits uses


@numba.njit(**_INLINE)
def _word(k0, k1, i):
    a, b = threefry2x32(k0, k1, _u32(_u64(i) >> _u64(32)), _u32(i))
    return _u32(a ^ b)


@numba.njit(**_OPTS)
def bits32(k0, k1, out):
    for i in range(out.size):
        out[i] = _word(k0, k1, i)


@numba.njit(**_OPTS)
def bits64(k0, k1, out):
    for i in range(out.size):
        a, b = threefry2x32(k0, k1, _u32(_u64(i) >> _u64(32)), _u32(i))
        out[i] = (_u64(a) << _u64(32)) | _u64(b)


@numba.njit(**_INLINE)
def _affine32(f, span, lo):
    """``f * span + lo`` in float64 (the product is exact), rounded once to float32."""
    return max(lo, np.float32(np.float64(f) * np.float64(span) + np.float64(lo)))


@numba.njit(**_OPTS)
def uniform32(k0, k1, lo, hi, out):
    span = np.float32(hi - lo)
    for i in range(out.size):
        f = np.float32(_word(k0, k1, i) >> _u32(9)) * np.float32(2.0**-23)
        out[i] = _affine32(f, span, lo)


@numba.njit(**_OPTS)
def uniform64(k0, k1, lo, hi, out):
    span = hi - lo
    for i in range(out.size):
        a, b = threefry2x32(k0, k1, _u32(_u64(i) >> _u64(32)), _u32(i))
        m = ((_u64(a) << _u64(32)) | _u64(b)) >> _u64(12)
        f = np.float64(m) * 2.0**-52
        out[i] = max(lo, f * span + lo)


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951


@numba.njit(**_INLINE)
def _log(y):
    """log(y) for a positive normal float64 y, without a libm call (so loops vectorize)."""
    b = np.float64(y).view(np.uint64)
    e = np.int64(b >> _u64(52)) - 1023
    f = np.uint64((b & _u64(0x000FFFFFFFFFFFFF)) | _u64(0x3FF0000000000000)).view(np.float64)
    big = f > _SQRT2
    f = f * 0.5 if big else f
    e = e + 1 if big else e
    s = (f - 1.0) / (f + 1.0)
    z = s * s
    p = 1.0 / 23.0
    p = 1.0 / 21.0 + p * z
    p = 1.0 / 19.0 + p * z
    p = 1.0 / 17.0 + p * z
    p = 1.0 / 15.0 + p * z
    p = 1.0 / 13.0 + p * z
    p = 1.0 / 11.0 + p * z
    p = 1.0 / 9.0 + p * z
    p = 1.0 / 7.0 + p * z
    p = 1.0 / 5.0 + p * z
    p = 1.0 / 3.0 + p * z
    fe = np.float64(e)
    return fe * _LN2_HI + (2.0 * s + (2.0 * s * z * p + fe * _LN2_LO))


@numba.njit(**_INLINE)
def erfinv_giles(x):
    """Giles' single-precision inverse error function, evaluated in float64.

    The same formula as ``funcgrad.random._erfinv_giles``, operation for operation.
    """
    w = -_log((1.0 - x) * (1.0 + x))
    v = w - 2.5
    p = 2.81022636e-08
    p = 3.43273939e-07 + p * v
    p = -3.5233877e-06 + p * v
    p = -4.39150654e-06 + p * v
    p = 0.00021858087 + p * v
    p = -0.00125372503 + p * v
    p = -0.00417768164 + p * v
    p = 0.246640727 + p * v
    p = 1.50140941 + p * v
    s = math.sqrt(w) - 3.0
    q = -0.000200214257
    q = 0.000100950558 + q * s
    q = 0.00134934322 + q * s
    q = -0.00367342844 + q * s
    q = 0.00573950773 + q * s
    q = -0.0076224613 + q * s
    q = 0.00943887047 + q * s
    q = 1.00167406 + q * s
    q = 2.83297682 + q * s
    r = p if w < 5.0 else q
    return r * x


@numba.njit(**_OPTS)
def normal32(k0, k1, lo, out):
    span = np.float32(np.float32(1.0) - lo)
    for i in range(out.size):
        f = np.float32(_word(k0, k1, i) >> _u32(9)) * np.float32(2.0**-23)
        u = _affine32(f, span, lo)
        out[i] = np.float32(_SQRT2 * erfinv_giles(np.float64(u)))
