"""Spec cases for the complex-number primitives (funcgrad/lax/complex_ops.py).

Operands are complex64 for the float32 variant and complex128 for float64. The registry's
finite differences perturb floating operands only, so ``real``/``imag``/``conj`` derivatives
(complex operands) are checked in ``tests/test_complex.py``; ``complex`` (real operands) is
checked here. References: NumPy's ``real``, ``imag``, ``conj`` and ``x + 1j * y``.
"""

from __future__ import annotations

import numpy as np

from tests.specs import Case, normal


def _cplx(rng, shape, dtype):
    ctype = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(ctype)


def _real_dtype(x):
    return np.float32 if x.dtype == np.complex64 else np.float64


CASES = [
    Case(
        "real",
        lambda rng, dt: (_cplx(rng, (3, 4), dt),),
        lambda x: np.real(x).astype(_real_dtype(x)),
        linear=((0,),),
    ),
    Case(
        "imag",
        lambda rng, dt: (_cplx(rng, (3, 4), dt),),
        lambda x: np.imag(x).astype(_real_dtype(x)),
        linear=((0,),),
    ),
    Case("conj", lambda rng, dt: (_cplx(rng, (2, 3), dt),), lambda x: np.conj(x), linear=((0,),)),
    Case(
        "complex",
        lambda rng, dt: (normal(rng, (3, 1), dt), normal(rng, (4,), dt)),
        lambda x, y: (x + 1j * y).astype(np.complex64 if x.dtype == np.float32 else np.complex128),
        linear=((0, 1),),
    ),
]
