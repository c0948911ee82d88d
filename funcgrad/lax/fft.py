"""The ``fft`` primitive (JAX's ``lax.fft``): discrete Fourier transforms over trailing axes.

``fft(x, fft_type, fft_lengths)`` transforms the last ``len(fft_lengths)`` axes; every
leading axis is a batch axis. ``fft_type`` is ``"FFT"``/``"IFFT"`` (complex to complex,
forward unnormalized, inverse scaled by ``1/n``), ``"RFFT"`` (real to the ``n//2 + 1``
non-negative frequencies of the last axis) or ``"IRFFT"`` (its inverse: ``fft_lengths``
gives the real output's sizes). float32/complex64 stay single precision.

The transform is linear: its jvp is itself and its transpose, as JAX's, is FFT for FFT
and IFFT for IFFT (the DFT matrix is symmetric), ``real(fft(pad(ct)))`` for RFFT (the
transpose of "complex FFT, then keep the first half"), and a masked, scaled RFFT,
conjugated, for IRFFT (JAX's convention for complex cotangents).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax.complex_ops import complex_dtype, real_dtype

FFT_TYPES = ("FFT", "IFFT", "RFFT", "IRFFT")

fft_p = Primitive("fft")


def _canonical_type(fft_type: Any) -> str:
    name = getattr(fft_type, "name", fft_type)
    name = str(name).upper()
    if name not in FFT_TYPES:
        raise ValueError(f"fft: fft_type must be one of {FFT_TYPES}, got {fft_type!r}")
    return name


def fft(x: Any, fft_type: Any, fft_lengths: Any) -> Any:
    """A discrete Fourier transform of the trailing ``len(fft_lengths)`` axes."""
    lengths = tuple(int(n) for n in fft_lengths)
    return fft_p.bind(x, fft_type=_canonical_type(fft_type), fft_lengths=lengths)


@fft_p.def_abstract_eval
def _fft_abstract_eval(x, *, fft_type, fft_lengths):
    k = len(fft_lengths)
    if not 1 <= k <= x.ndim:
        raise ValueError(
            f"fft: {k} fft_lengths for {x.str_short()}; give between 1 and {x.ndim} lengths "
            "(one per transformed trailing axis)"
        )
    if any(n < 0 for n in fft_lengths):
        raise ValueError(f"fft: fft_lengths must be non-negative, got {fft_lengths}")
    lead, tail = x.shape[: x.ndim - k], x.shape[x.ndim - k :]
    if fft_type == "RFFT":
        if x.dtype.kind != "f":
            raise TypeError(
                f"fft: RFFT needs a real floating operand, got {x.str_short()}; use FFT for "
                "complex input or convert with `.astype(float32)`"
            )
        if tail != fft_lengths:
            raise ValueError(
                f"fft: RFFT of {x.str_short()} with fft_lengths={fft_lengths}: the trailing "
                "axes must have exactly these sizes (pad or slice first)"
            )
        out = lead + tail[:-1] + (fft_lengths[-1] // 2 + 1,)
        return ShapedArray(out, complex_dtype(x.dtype))
    if x.dtype.kind != "c":
        raise TypeError(
            f"fft: {fft_type} needs a complex operand, got {x.str_short()}; convert it with "
            "`.astype(complex64)` (or use RFFT for real input)"
        )
    if fft_type == "IRFFT":
        want = fft_lengths[:-1] + (fft_lengths[-1] // 2 + 1,)
        if tail != want:
            raise ValueError(
                f"fft: IRFFT of {x.str_short()} with fft_lengths={fft_lengths}: the trailing "
                f"axes must have sizes {want} (the last one n // 2 + 1)"
            )
        return ShapedArray(lead + fft_lengths, real_dtype(x.dtype))
    if tail != fft_lengths:
        raise ValueError(
            f"fft: {fft_type} of {x.str_short()} with fft_lengths={fft_lengths}: the trailing "
            "axes must have exactly these sizes (pad or slice first)"
        )
    return ShapedArray(x.shape, x.dtype)


def numpy_fft(x: np.ndarray, fft_type: str, fft_lengths: tuple[int, ...]) -> np.ndarray:
    """NumPy's (pocketfft's) transform, as the primitive defines it (dtype included)."""
    k = len(fft_lengths)
    axes = tuple(range(x.ndim - k, x.ndim))
    aval = _fft_abstract_eval(
        ShapedArray(x.shape, x.dtype), fft_type=fft_type, fft_lengths=fft_lengths
    )
    if 0 in x.shape or 0 in aval.shape:
        return np.zeros(aval.shape, aval.dtype)
    if fft_type == "FFT":
        out = np.fft.fftn(x, s=fft_lengths, axes=axes)
    elif fft_type == "IFFT":
        out = np.fft.ifftn(x, s=fft_lengths, axes=axes)
    elif fft_type == "RFFT":
        out = np.fft.rfftn(x, s=fft_lengths, axes=axes)
    else:
        out = np.fft.irfftn(x, s=fft_lengths, axes=axes)
    return np.ascontiguousarray(out, aval.dtype)


@fft_p.def_impl
def _fft_impl(x, *, fft_type, fft_lengths):
    return numpy_fft(np.asarray(x), fft_type, fft_lengths)


def _rfft_transpose(ct: Any, fft_lengths: tuple[int, ...]) -> Any:

    aval = get_aval(ct)
    n = fft_lengths[-1]
    pad = [(0, 0, 0)] * (aval.ndim - 1) + [(0, n - aval.shape[-1], 0)]
    zero = np.zeros((), aval.dtype)[()]
    full = fft_p.bind(lax.pad(ct, zero, pad), fft_type="FFT", fft_lengths=fft_lengths)
    return lax.real(full)


def _irfft_transpose(ct: Any, fft_lengths: tuple[int, ...]) -> Any:

    x = fft_p.bind(ct, fft_type="RFFT", fft_lengths=fft_lengths)
    aval = get_aval(x)
    m = aval.shape[-1]
    odd = fft_lengths[-1] % 2
    mask = np.concatenate([[1.0], np.full(m - 2 + odd, 2.0), np.ones(1 - odd)])[:m]
    scale = 1.0 / math.prod(fft_lengths)
    weights = (mask * scale).astype(aval.dtype)
    return lax.conj(lax.mul(x, weights))


def _fft_transpose(ct, x, *, fft_type, fft_lengths):
    aval = x.aval
    if type(ct) is ad.Zero:
        return [ad.Zero(aval)]
    if fft_type == "RFFT":
        return [_rfft_transpose(ct, fft_lengths)]
    if fft_type == "IRFFT":
        return [_irfft_transpose(ct, fft_lengths)]
    return [fft_p.bind(ct, fft_type=fft_type, fft_lengths=fft_lengths)]


ad.deflinear(fft_p, _fft_transpose)


def _fft_batch(args, dims, **params):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    return fft_p.bind(x, **params), 0


batching.primitive_batchers[fft_p] = _fft_batch
