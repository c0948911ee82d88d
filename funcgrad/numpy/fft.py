"""funcgrad.numpy.fft: NumPy's ``fft`` module on the ``fft`` primitive.

Every transform differentiates (JAX's rules, ``funcgrad/lax/fft.py``), batches and lowers
(a call out to NumPy's pocketfft from the kernel). As NumPy: ``n``/``s`` crop or zero-pad
the input first, ``axes`` may be any axes (they are moved last and back), and ``norm`` is
``"backward"`` (default), ``"ortho"`` or ``"forward"``. Unlike NumPy, float32 input gives
complex64 output (JAX's rule; NumPy computes in double precision). Real input to
``fft``/``ifft`` is converted to complex first; ``rfft`` needs real input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.lax.complex_ops import complex_dtype
from funcgrad.numpy import util
from funcgrad.numpy.shape import moveaxis, roll
from funcgrad.numpy.util import shape_of, to_operand

__all__ = [
    "fft",
    "fft2",
    "fftfreq",
    "fftn",
    "fftshift",
    "ifft",
    "ifft2",
    "ifftn",
    "ifftshift",
    "irfft",
    "irfft2",
    "irfftn",
    "rfft",
    "rfft2",
    "rfftfreq",
    "rfftn",
]

_NORMS = (None, "backward", "ortho", "forward")


def _as_complex(x: Any) -> Any:
    dtype = util.dtype_of(x)
    if dtype.kind == "c":
        return x
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return util.convert(x, complex_dtype(dtype))


def _as_real(x: Any, name: str) -> Any:
    dtype = util.dtype_of(x)
    if dtype.kind == "c":
        raise TypeError(
            f"fnp.fft.{name}: needs a real input, got {util.short(x)}; use fnp.fft.fft for "
            "complex input (or take .real)"
        )
    if dtype.kind != "f":
        x = util.convert(x, np.dtype(np.float64))
    return x


def _resize(x: Any, axis: int, n: int) -> Any:
    """Crop or zero-pad axis ``axis`` of ``x`` to ``n`` (NumPy's ``n``/``s``)."""
    size = shape_of(x)[axis]
    if n == size:
        return x
    if n < size:
        return lax.slice_in_dim(x, 0, n, axis=axis)
    pad = [(0, 0, 0)] * len(shape_of(x))
    pad[axis] = (0, n - size, 0)
    return lax.pad(x, np.zeros((), util.dtype_of(x))[()], pad)


def _axes_and_sizes(x: Any, s: Any, axes: Any, name: str) -> tuple[list[int], list[int | None]]:
    nd = len(shape_of(x))
    if axes is None:
        axes = list(range(nd)) if s is None else list(range(nd - len(s), nd))
    elif isinstance(axes, (int, np.integer)):
        axes = [axes]
    axes = [util.canonicalize_axis(a, nd, f"fft.{name}") for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"fnp.fft.{name}: repeated axes {axes}")
    if s is None:
        sizes: list[int | None] = [None] * len(axes)
    else:
        if isinstance(s, (int, np.integer)):
            s = [s]
        if len(s) != len(axes):
            raise ValueError(
                f"fnp.fft.{name}: s={tuple(s)} and axes={tuple(axes)} must have one length each"
            )
        sizes = [None if v in (None, -1) else int(v) for v in s]
    for v in sizes:
        if v is not None and v < 1:
            raise ValueError(f"fnp.fft.{name}: invalid number of data points {v}; use >= 1")
    return axes, sizes


def _scale(out: Any, norm: Any, n: int, inverse: bool, name: str) -> Any:
    if norm not in _NORMS:
        raise ValueError(
            f"fnp.fft.{name}: norm must be 'backward', 'ortho' or 'forward', got {norm!r}"
        )
    if norm in (None, "backward"):
        return out  # the primitive's own convention (inverses scaled by 1/n)
    if inverse:  # undo the primitive's 1/n, then scale by 1/sqrt(n) (ortho) or 1 (forward)
        factor = math.sqrt(n) if norm == "ortho" else float(n)
    else:
        factor = 1.0 / math.sqrt(n) if norm == "ortho" else 1.0 / n
    dtype = util.dtype_of(out)
    return lax.mul(out, np.array(factor, dtype)[()])


def _transform(x: Any, kind: str, s: Any, axes: Any, norm: Any, name: str) -> Any:

    x = to_operand(x, f"fnp.fft.{name}")
    axes_l, sizes = _axes_and_sizes(x, s, axes, name)
    if not axes_l:
        return util.fresh(_as_complex(x)) if kind in ("FFT", "IFFT") else x
    x = _as_real(x, name) if kind == "RFFT" else _as_complex(x)
    shape = shape_of(x)
    if kind == "IRFFT":
        last = sizes[-1] if sizes[-1] is not None else 2 * (shape[axes_l[-1]] - 1)
        if last < 1:
            raise ValueError(f"fnp.fft.{name}: invalid number of data points {last}")
        lengths = [
            v if v is not None else shape[a] for v, a in zip(sizes[:-1], axes_l[:-1], strict=True)
        ] + [last]
        for a, n in zip(axes_l[:-1], lengths[:-1], strict=True):
            x = _resize(x, a, n)
        x = _resize(x, axes_l[-1], last // 2 + 1)
    else:
        lengths = [v if v is not None else shape[a] for v, a in zip(sizes, axes_l, strict=True)]
        for a, n in zip(axes_l, lengths, strict=True):
            x = _resize(x, a, n)
    k = len(axes_l)
    nd = len(shape_of(x))
    dest = list(range(nd - k, nd))
    moved = moveaxis(x, axes_l, dest)
    out = lax.fft(moved, kind, tuple(lengths))
    out = moveaxis(out, dest, axes_l)
    return _scale(out, norm, math.prod(lengths), kind in ("IFFT", "IRFFT"), name)


def fft(a: Any, n: int | None = None, axis: int = -1, norm: Any = None) -> Any:
    """One-dimensional discrete Fourier transform along ``axis``."""
    return _transform(a, "FFT", None if n is None else [n], [axis], norm, "fft")


def ifft(a: Any, n: int | None = None, axis: int = -1, norm: Any = None) -> Any:
    """One-dimensional inverse discrete Fourier transform along ``axis``."""
    return _transform(a, "IFFT", None if n is None else [n], [axis], norm, "ifft")


def rfft(a: Any, n: int | None = None, axis: int = -1, norm: Any = None) -> Any:
    """The non-negative frequency terms of a real input's FFT along ``axis``."""
    return _transform(a, "RFFT", None if n is None else [n], [axis], norm, "rfft")


def irfft(a: Any, n: int | None = None, axis: int = -1, norm: Any = None) -> Any:
    """The real signal (``n`` samples, default ``2 * (m - 1)``) with spectrum ``a``."""
    return _transform(a, "IRFFT", None if n is None else [n], [axis], norm, "irfft")


def fftn(a: Any, s: Sequence[int] | None = None, axes: Any = None, norm: Any = None) -> Any:
    """N-dimensional FFT over ``axes`` (all axes by default)."""
    return _transform(a, "FFT", s, axes, norm, "fftn")


def ifftn(a: Any, s: Sequence[int] | None = None, axes: Any = None, norm: Any = None) -> Any:
    """N-dimensional inverse FFT over ``axes`` (all axes by default)."""
    return _transform(a, "IFFT", s, axes, norm, "ifftn")


def rfftn(a: Any, s: Sequence[int] | None = None, axes: Any = None, norm: Any = None) -> Any:
    """N-dimensional FFT of real input (the last axis halved)."""
    return _transform(a, "RFFT", s, axes, norm, "rfftn")


def irfftn(a: Any, s: Sequence[int] | None = None, axes: Any = None, norm: Any = None) -> Any:
    """Inverse of :func:`rfftn`."""
    return _transform(a, "IRFFT", s, axes, norm, "irfftn")


def fft2(a: Any, s: Sequence[int] | None = None, axes: Any = (-2, -1), norm: Any = None) -> Any:
    """Two-dimensional FFT over the last two axes."""
    return _transform(a, "FFT", s, axes, norm, "fft2")


def ifft2(a: Any, s: Sequence[int] | None = None, axes: Any = (-2, -1), norm: Any = None) -> Any:
    """Two-dimensional inverse FFT over the last two axes."""
    return _transform(a, "IFFT", s, axes, norm, "ifft2")


def rfft2(a: Any, s: Sequence[int] | None = None, axes: Any = (-2, -1), norm: Any = None) -> Any:
    """Two-dimensional FFT of real input."""
    return _transform(a, "RFFT", s, axes, norm, "rfft2")


def irfft2(a: Any, s: Sequence[int] | None = None, axes: Any = (-2, -1), norm: Any = None) -> Any:
    """Inverse of :func:`rfft2`."""
    return _transform(a, "IRFFT", s, axes, norm, "irfft2")


def fftfreq(n: int, d: float = 1.0, *, dtype: Any = None) -> Any:
    """Sample frequencies of an ``n``-point FFT with spacing ``d`` (a constant array)."""
    out = np.fft.fftfreq(int(n), d)
    return out.astype(dtype) if dtype is not None else out


def rfftfreq(n: int, d: float = 1.0, *, dtype: Any = None) -> Any:
    """Sample frequencies of an ``n``-point real FFT with spacing ``d``."""
    out = np.fft.rfftfreq(int(n), d)
    return out.astype(dtype) if dtype is not None else out


def _shift(x: Any, axes: Any, inverse: bool, name: str) -> Any:

    x = to_operand(x, f"fnp.fft.{name}")
    shape = shape_of(x)
    if axes is None:
        axes = tuple(range(len(shape)))
    elif isinstance(axes, (int, np.integer)):
        axes = (axes,)
    axes = tuple(util.canonicalize_axis(a, len(shape), f"fft.{name}") for a in axes)
    shifts = tuple(-(shape[a] // 2) if inverse else shape[a] // 2 for a in axes)
    return roll(x, shifts, axes)


def fftshift(x: Any, axes: Any = None) -> Any:
    """Move the zero-frequency term to the center."""
    return _shift(x, axes, False, "fftshift")


def ifftshift(x: Any, axes: Any = None) -> Any:
    """The inverse of :func:`fftshift`."""
    return _shift(x, axes, True, "ifftshift")
