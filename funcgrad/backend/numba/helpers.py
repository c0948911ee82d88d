"""Scalar helpers the generated kernels call, written in plain Python over NumPy scalars.

They run as Python (kernel sources work without numba, for debugging and tests) and are
compiled by ``compile.py`` through the one ``njit`` wrapper, which swaps the compiled
versions into each kernel module before the kernel compiles. Each follows the NumPy/lax
semantics of its primitive exactly (NaN propagation, integer division by zero, shifts out
of range), so a kernel agrees with eager evaluation.
"""

from __future__ import annotations

import math

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


def __getattr__(name: str):
    # The Threefry block lives with funcgrad.random's own numba kernels; reuse it.
    if name == "fg_threefry2x32":
        from funcgrad.lax._random_kernels import threefry2x32

        return threefry2x32
    raise AttributeError(name)
