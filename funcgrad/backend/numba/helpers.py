"""Scalar helpers the generated kernels call, written in plain Python over NumPy scalars.

They run as Python (kernel sources work without numba, for debugging and tests) and are
compiled by ``compile.py`` through the one ``njit`` wrapper, which swaps the compiled
versions into each kernel module before the kernel compiles. Each follows the NumPy/lax
semantics of its primitive exactly (NaN propagation, integer division by zero, shifts out
of range), so a kernel agrees with eager evaluation.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np


def fg_max(x, y):
    """``np.maximum`` on scalars: NaN if either is NaN."""
    if x != x:
        return x
    return x if x > y else y


def fg_min(x, y):
    """``np.minimum`` on scalars: NaN if either is NaN."""
    if x != x:
        return x
    return x if x < y else y


def fg_idiv(x, y):
    """Integer division rounding toward zero; ``x / 0`` is 0 (lax.div on integers)."""
    if y == 0:
        return x - x
    q = x // y
    if q < 0 and q * y != x:
        q += 1
    return q


def fg_irem(x, y):
    """Integer remainder with the sign of ``x`` (C fmod); ``x % 0`` is 0."""
    if y == 0:
        return x - x
    q = x // y
    if q < 0 and q * y != x:
        q += 1
    return x - q * y


def fg_ipow(x, n, one):
    """``x ** n`` for a non-negative integer ``n`` by repeated squaring (no libm call)."""
    acc = one
    base = x
    while n > 0:
        if n & 1:
            acc = acc * base
        base = base * base
        n >>= 1
    return acc


def fg_square(x):
    return x * x


def fg_round_away(x, half, one):
    """Round half away from zero (``one`` and ``half`` are typed like ``x``)."""
    t = np.trunc(x)
    if x - t >= half:
        return t + one
    if t - x >= half:
        return t - one
    return t


def fg_sign(x, one, zero):
    """``np.sign``: -1, 0 or 1 (typed like ``x``), NaN for NaN."""
    if x != x:
        return x
    if x > zero:
        return one
    if x < zero:
        return -one
    return zero


def fg_logistic(x, one):
    """``1 / (1 + exp(-x))``; exp(-x) overflowing to inf gives 0."""
    return one / (one + np.exp(-x))


def fg_logaddexp(a, b):
    """``log(exp(a) + exp(b))`` without overflow; NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    m = a if a > b else b
    if np.isinf(m):
        return m
    return m + np.log1p(np.exp(-np.abs(a - b)))


def fg_erf(x):
    return math.erf(x)


def fg_erf_inv(y):
    """Inverse error function: Giles' single-precision approximation, then two Newton steps
    (double precision)."""
    if y != y or y < -1.0 or y > 1.0:
        return math.nan
    if y == 1.0:
        return math.inf
    if y == -1.0:
        return -math.inf
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w = w - 2.5
        p = 2.81022636e-08
        p = 3.43273939e-07 + p * w
        p = -3.5233877e-06 + p * w
        p = -4.39150654e-06 + p * w
        p = 0.00021858087 + p * w
        p = -0.00125372503 + p * w
        p = -0.00417768164 + p * w
        p = 0.246640727 + p * w
        p = 1.50140941 + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        p = 0.000100950558 + p * w
        p = 0.00134934322 + p * w
        p = -0.00367342844 + p * w
        p = 0.00573950773 + p * w
        p = -0.0076224613 + p * w
        p = 0.00943887047 + p * w
        p = 1.00167406 + p * w
        p = 2.83297682 + p * w
    x = p * y
    for _ in range(2):
        err = math.erf(x) - y
        x = x - err / (1.1283791670955126 * math.exp(-x * x))
    return x


def fg_cbrt(x):
    if x != x or x == 0 or math.isinf(x):
        return x
    r = abs(x) ** (1.0 / 3.0)
    r = r - (r * r * r - abs(x)) / (3.0 * r * r)  # one Newton step
    return r if x > 0 else -r


def fg_popcount(v, one):
    """Set bits of an unsigned integer ``v`` (the two's-complement pattern of the operand);
    ``one`` is typed like ``v`` (uint64 minus an int literal would be a float in numba)."""
    n = 0
    while v:
        v &= v - one
        n += 1
    return n


def fg_shift_left(x, y, bits):
    if y < 0 or y >= bits:
        return x - x
    return x << y


def fg_shift_right_arithmetic(x, y, bits):
    if y < 0 or y >= bits:
        return x - x - 1 if x < 0 else x - x
    return x >> y


def fg_shift_right_logical(u, y, bits):
    """Logical right shift of the unsigned pattern ``u``; 0 when ``y`` is out of range."""
    if y < 0 or y >= bits:
        return u - u
    return u >> y


def fg_gemm(a, b, out, trans_a, trans_b):
    """``out = op(a) @ op(b)`` (BLAS gemm), ``op`` transposing where its flag is set.

    ``a``, ``b`` and ``out`` are C-contiguous 2-D arrays of one float/complex dtype. As
    Python this is NumPy; the compiled version is :func:`_numba_fg_gemm`.
    """
    out[...] = np.dot(a.T if trans_a else a, b.T if trans_b else b)


def fg_gemv(a, x, out, trans_a):
    """``out = op(a) @ x`` (BLAS gemv) for a C-contiguous matrix ``a`` and vectors ``x``,
    ``out``. As Python this is NumPy; the compiled version is :func:`_numba_fg_gemv`."""
    out[...] = np.dot(a.T if trans_a else a, x)


# Compiled versions of helpers that need numba itself: ``compile._helper`` calls
# ``_numba_<name>()`` (numba is imported by then) and compiles what it returns. The BLAS
# helpers call the C entry points numba's own ``np.dot`` uses (``numba_xxgemm`` and
# ``numba_xxgemv`` of its helper library, which load scipy's BLAS), resolved by symbol
# name so cached kernels stay valid across processes. One small function per dtype and
# operand layout is compiled once per process; each kernel then only types a call to it,
# instead of numba's ``np.dot`` overload (its shape checks, layout dispatch and error
# paths), which costs ~0.3 s of compile time per call site. The transpose flags are passed
# as ``np.bool_(...)`` so that numba compiles one version, not one per literal value.


@functools.cache
def _numba_blas_scalars():
    from numba import njit

    @njit(inline="always")
    def blas_scalars(out):
        """BLAS's type letter for ``out`` (s, d, c or z), and alpha = 1, beta = 0 as
        one-element arrays of its dtype (BLAS takes them by pointer)."""
        if np.iscomplexobj(out):
            kind = 99 if out.itemsize == 8 else 122
        else:
            kind = 115 if out.itemsize == 4 else 100
        one = np.empty(1, out.dtype)
        one[0] = 1
        zero = np.empty(1, out.dtype)
        zero[0] = 0
        return kind, one, zero

    return blas_scalars


def _numba_fg_gemm():
    from numba import types

    blas_scalars = _numba_blas_scalars()
    vp, n = types.voidptr, types.intp
    sig = types.intc(types.char, types.char, types.char, n, n, n, vp, vp, n, vp, n, vp, vp, n)
    xxgemm = types.ExternalFunction("numba_xxgemm", sig)

    def fg_gemm(a, b, out, trans_a, trans_b):
        m, n = out.shape
        k = a.shape[0] if trans_a else a.shape[1]
        kind, one, zero = blas_scalars(out)
        # Row-major out = op(a) @ op(b) is column-major out^T = op(b)^T @ op(a)^T: b first.
        xxgemm(
            kind,
            116 if trans_b else 110,  # 't' / 'n'
            116 if trans_a else 110,
            n,
            m,
            k,
            one.ctypes,
            b.ctypes,
            b.shape[1],
            a.ctypes,
            a.shape[1],
            zero.ctypes,
            out.ctypes,
            n,
        )

    return fg_gemm


def _numba_fg_gemv():
    from numba import types

    blas_scalars = _numba_blas_scalars()
    vp, n = types.voidptr, types.intp
    sig = types.intc(types.char, types.char, n, n, vp, vp, n, vp, vp, vp)
    xxgemv = types.ExternalFunction("numba_xxgemv", sig)

    def fg_gemv(a, x, out, trans_a):
        rows, cols = a.shape
        kind, one, zero = blas_scalars(out)
        # Column-major, a is its transpose (cols x rows): op(a) = a^T -> 'n', a -> 't'.
        xxgemv(
            kind,
            110 if trans_a else 116,
            cols,
            rows,
            one.ctypes,
            a.ctypes,
            cols,
            x.ctypes,
            zero.ctypes,
            out.ctypes,
        )

    return fg_gemv


#: Helpers that live with their lowering rules (``register``): name -> (Python function or
#: object, numba builder or None). Generated sources import them from this module by name.
_registered: dict[str, tuple[Any, Any]] = {}
#: Registered helpers that kernels use as they are (object-mode call-outs, ``objmode``).
_plain: set[str] = set()


def register(name: str, value: Any, build: Any = None, *, plain: bool = False) -> None:
    """Make ``value`` importable from this module as ``name`` for generated kernels, with
    ``build()`` (optional) returning its compiled form; ``plain`` helpers are never
    compiled (object mode calls them as Python)."""
    _registered[name] = (value, build)
    if plain:
        _plain.add(name)


def is_plain(name: str) -> bool:
    """Whether kernels take helper ``name`` as it is (see :func:`register`)."""
    return name in _plain


def __getattr__(name: str) -> Any:
    # The Threefry block lives with funcgrad.random's own numba kernels; reuse it.
    if name == "fg_threefry2x32":
        from funcgrad.backend.numba.random_kernels import threefry2x32

        return threefry2x32
    if name in _registered:
        return _registered[name][0]
    if name.startswith("_numba_") and name[7:] in _registered:
        build = _registered[name[7:]][1]
        if build is not None:
            return build
    raise AttributeError(name)
