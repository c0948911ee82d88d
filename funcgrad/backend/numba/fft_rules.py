"""Lowering of the ``fft`` primitive: a call out to NumPy's pocketfft from the kernel.

numba has no FFT. The kernel calls ``fg_fft`` (below), a small compiled function whose
body runs in numba's object mode (``numba.objmode``) and calls NumPy's pocketfft on the
operand, writing into the kernel's preallocated result: one Python round trip per
``fft`` equation, the rest of the kernel stays compiled. Measured with
``benchmarks/linalg_bench.py`` (``irfft(rfft(x) * h)`` on 64 x 4096 float64 samples,
single-threaded): the kernel takes about 1.6x NumPy's time for the same calls (two
object-mode transitions and a copy of each result into the kernel's buffer). An in-kernel
transform was not built: to be worth it, it would have to match pocketfft's speed and
accuracy on every length (mixed radix, Bluestein for large primes), which is pocketfft.
"""

from __future__ import annotations

import functools

import numpy as np

from funcgrad.backend.numba import helpers
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


# Generated sources import helpers from ``funcgrad.backend.numba.helpers`` by name.
helpers.register("fg_fft", fg_fft, _numba_fg_fft)
