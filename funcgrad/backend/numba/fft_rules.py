"""Lowering of the ``fft`` primitive: a call out to NumPy's pocketfft from the kernel.

numba has no FFT. The kernel calls ``fg_fft`` (below), a small compiled function whose
body runs in numba's object mode (``numba.objmode``) and calls NumPy's pocketfft on the
operand, writing into the kernel's preallocated result: one Python round trip per
``fft`` equation, the rest of the kernel stays compiled. Measured (``benchmarks/
linalg_bench.py``'s ``fft`` lines) against NumPy itself, the call-out costs tens of
microseconds per call on top of pocketfft; an in-kernel transform would avoid that but
must match pocketfft's accuracy on every length (mixed radix, Bluestein for primes), a
larger and slower piece of code than pocketfft for large sizes.
"""

from __future__ import annotations

import functools

import numpy as np

from funcgrad.backend.numba.lowering import opaque

_KINDS = {"FFT": 0, "IFFT": 1, "RFFT": 2, "IRFFT": 3}
_NAMES = {v: k for k, v in _KINDS.items()}


def fft_into(x: np.ndarray, out: np.ndarray, kind: int, nd: int) -> None:
    """``out[...] = fft(x)`` over the trailing ``nd`` axes (``out``'s shape gives the
    lengths for IRFFT, ``x``'s for the others)."""
    from funcgrad.lax.fft import numpy_fft

    name = _NAMES[int(kind)]
    src = out if name == "IRFFT" else x
    lengths = tuple(src.shape[src.ndim - int(nd) :])
    out[...] = numpy_fft(x, name, lengths)


def fg_fft(x, out, kind, nd):
    """Python twin of the compiled helper (what the kernel module imports by name)."""
    fft_into(x, out, kind, nd)


@functools.cache
def _numba_fg_fft():
    import numba

    @numba.njit
    def fg_fft(x, out, kind, nd):
        with numba.objmode():
            fft_into(x, out, kind, nd)

    return fg_fft


@opaque("fft")
def _fft(ctx, x, *, fft_type, fft_lengths):
    out, aval = ctx.outs[0], ctx.out_avals[0]
    ctx.empty(out, aval.shape, aval.dtype)
    if aval.size == 0:
        return
    fn = ctx.helper("fg_fft")
    ctx.emit(f"{fn}({ctx.arg(x)}, {out}, {_KINDS[fft_type]}, {len(fft_lengths)})")
