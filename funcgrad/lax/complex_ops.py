"""Complex numbers: ``real``, ``imag``, ``conj`` and ``complex`` primitives (JAX's).

Derivatives follow JAX's convention. Tangents and cotangents of a complex value are
complex; transposes are linear, not conjugate-linear (``mul``'s transpose multiplies by
the other factor, unconjugated). So ``grad`` of a real-valued ``f`` of complex ``z``
returns ``df/dx - i df/dy`` (the conjugate of the steepest-ascent direction: a descent
step is ``z - lr * conj(g)``), and ``grad(f, holomorphic=True)`` of a holomorphic ``f``
returns ``f'(z)``. Accordingly ``real``'s transpose is ``ct + 0i``, ``imag``'s is
``-i ct``, ``conj``'s is ``conj(ct)`` and ``complex``'s is ``(real(ct), -imag(ct))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import broadcast_shapes, check_dtype
from funcgrad.lax.elementwise import unbroadcast

_COMPLEX_OF = {
    np.dtype(np.float32): np.dtype(np.complex64),
    np.dtype(np.float64): np.dtype(np.complex128),
}
_REAL_OF = {
    np.dtype(np.complex64): np.dtype(np.float32),
    np.dtype(np.complex128): np.dtype(np.float64),
}


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The real dtype of a complex ``dtype`` (``dtype`` itself otherwise)."""
    return _REAL_OF.get(np.dtype(dtype), np.dtype(dtype))


def complex_dtype(dtype: np.dtype) -> np.dtype:
    """The complex dtype with ``dtype``'s precision (float32 -> complex64)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return dtype
    return _COMPLEX_OF.get(dtype, np.dtype(np.complex128))


def _part(name: str, np_fn: Any) -> Primitive:
    prim = Primitive(name)

    def abstract_eval(x: ShapedArray) -> ShapedArray:
        check_dtype(name, x, "c")
        return ShapedArray(x.shape, real_dtype(x.dtype), x.weak_type)

    def impl(x: Any) -> Any:
        x = np.asarray(x)
        abstract_eval(ShapedArray(x.shape, x.dtype))
        return np.array(np_fn(x), real_dtype(x.dtype))

    prim.def_abstract_eval(abstract_eval)
    prim.def_impl(impl)
    batching.defvectorized(prim)
    return prim


real_p = _part("real", np.real)
imag_p = _part("imag", np.imag)


def real(x: Any) -> Any:
    """The real part of complex ``x`` (a real array)."""
    return real_p.bind(x)


def imag(x: Any) -> Any:
    """The imaginary part of complex ``x`` (a real array)."""
    return imag_p.bind(x)


def _zeros_like(x: Any) -> Any:

    aval = get_aval(x)
    return lax.full(aval.shape, np.zeros((), aval.dtype)[()], aval.dtype)


def _real_transpose(ct, x):
    if type(ct) is ad.Zero:
        return [ad.Zero(x.aval)]
    return [complex(ct, _zeros_like(ct))]


def _imag_transpose(ct, x):

    if type(ct) is ad.Zero:
        return [ad.Zero(x.aval)]
    return [complex(_zeros_like(ct), lax.neg(ct))]


ad.deflinear(real_p, _real_transpose)
ad.deflinear(imag_p, _imag_transpose)

# -- conj
conj_p = Primitive("conj")


def conj(x: Any) -> Any:
    """Complex conjugate (complex ``x`` only; real arrays are their own conjugate)."""
    return conj_p.bind(x)


@conj_p.def_abstract_eval
def _conj_abstract_eval(x):
    check_dtype("conj", x, "c")
    return ShapedArray(x.shape, x.dtype, x.weak_type)


@conj_p.def_impl
def _conj_impl(x):
    x = np.asarray(x)
    _conj_abstract_eval(ShapedArray(x.shape, x.dtype))
    return np.conj(x)


def _conj_transpose(ct, x):
    if type(ct) is ad.Zero:
        return [ad.Zero(x.aval)]
    return [conj(ct)]


ad.deflinear(conj_p, _conj_transpose)
batching.defvectorized(conj_p)

# -- complex
complex_p = Primitive("complex")


def complex(x: Any, y: Any) -> Any:
    """``x + i y`` from real arrays of one dtype (shapes broadcast)."""
    return complex_p.bind(x, y)


@complex_p.def_abstract_eval
def _complex_abstract_eval(x, y):
    check_dtype("complex", x, "f")
    check_dtype("complex", y, "f")
    if x.dtype != y.dtype:
        raise TypeError(
            f"complex: real and imaginary parts must have one dtype, got {x.str_short()} and "
            f"{y.str_short()}; convert one with `.astype`"
        )
    shape = broadcast_shapes("complex", x.shape, y.shape)
    return ShapedArray(shape, complex_dtype(x.dtype), x.weak_type and y.weak_type)


@complex_p.def_impl
def _complex_impl(x, y):
    x, y = np.asarray(x), np.asarray(y)
    aval = _complex_abstract_eval(ShapedArray(x.shape, x.dtype), ShapedArray(y.shape, y.dtype))
    out = np.empty(aval.shape, aval.dtype)
    out.real = x
    out.imag = y
    return out


def _unbroadcast(x: Any, shape: tuple[int, ...]) -> Any:

    return unbroadcast(x, shape)


def _complex_transpose(ct, x, y):

    xa = x.aval if ad.is_undefined_primal(x) else get_aval(x)
    ya = y.aval if ad.is_undefined_primal(y) else get_aval(y)
    if type(ct) is ad.Zero:
        return [ad.Zero(xa), ad.Zero(ya)]
    return [
        _unbroadcast(real(ct), xa.shape) if ad.is_undefined_primal(x) else None,
        _unbroadcast(lax.neg(imag(ct)), ya.shape) if ad.is_undefined_primal(y) else None,
    ]


ad.deflinear(complex_p, _complex_transpose)
batching.defbroadcasting(complex_p)
