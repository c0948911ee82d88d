"""Spec cases for the ``fft`` primitive (funcgrad/lax/fft.py).

Reference: NumPy's ``fft.fftn``/``ifftn``/``rfftn``/``irfftn`` over the trailing axes, cast
to the primitive's dtype (complex64 for float32 inputs). Complex operands come from the
float dtype's precision; the transpose check pairs complex values as ``Re(sum(a * b))``.
"""

from __future__ import annotations

import numpy as np

from tests.specs import Case


def _cplx(rng, shape, dtype):
    ctype = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(ctype)


def _ref(fn, real_out=False):
    def ref(x, *, fft_type, fft_lengths):
        axes = tuple(range(x.ndim - len(fft_lengths), x.ndim))
        out = fn(x, s=fft_lengths, axes=axes)
        single = x.dtype in (np.float32, np.complex64)
        if real_out:
            return out.astype(np.float32 if single else np.float64)
        return out.astype(np.complex64 if single else np.complex128)

    return ref


def _irfft_operand(shape):
    def make(rng, dtype):
        # A Hermitian-consistent spectrum (the rfft of a real signal), so that finite
        # differences and NumPy agree on the ignored imaginary parts.
        ctype = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
        axes = tuple(range(len(shape) - 1, len(shape))) if len(shape) else ()
        return (np.fft.rfftn(rng.standard_normal(shape), axes=axes).astype(ctype),)

    return make


CASES = [
    Case(
        "fft",
        lambda rng, dt: (_cplx(rng, (3, 8), dt),),
        _ref(np.fft.fftn),
        dict(fft_type="FFT", fft_lengths=(8,)),
        linear=((0,),),
        name="fft_1d",
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "fft",
        lambda rng, dt: (_cplx(rng, (2, 3, 5), dt),),
        _ref(np.fft.ifftn),
        dict(fft_type="IFFT", fft_lengths=(3, 5)),
        linear=((0,),),
        name="ifft_2d",
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "fft",
        lambda rng, dt: (rng.standard_normal((2, 7)).astype(dt),),
        _ref(np.fft.rfftn),
        dict(fft_type="RFFT", fft_lengths=(7,)),
        linear=((0,),),
        name="rfft_odd",
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "fft",
        lambda rng, dt: (rng.standard_normal((4, 6)).astype(dt),),
        _ref(np.fft.rfftn),
        dict(fft_type="RFFT", fft_lengths=(4, 6)),
        linear=((0,),),
        name="rfft_2d_even",
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "fft",
        lambda rng, dt: (_cplx(rng, (2, 5), dt),),
        _ref(np.fft.irfftn, real_out=True),
        dict(fft_type="IRFFT", fft_lengths=(8,)),
        linear=((0,),),
        name="irfft_even",
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "fft",
        lambda rng, dt: (_cplx(rng, (3, 4), dt),),
        _ref(np.fft.irfftn, real_out=True),
        dict(fft_type="IRFFT", fft_lengths=(3, 7)),
        linear=((0,),),
        name="irfft_2d_odd",
        rtol=1e-4,
        atol=1e-5,
    ),
]
