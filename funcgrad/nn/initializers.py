"""Parameter initializers, as ``jax.nn.initializers``.

An initializer is a function ``init(key, shape, dtype=float32) -> array``. Most are made by
factories (``glorot_uniform()``, ``normal(stddev=0.1)``, ``constant(3.0)``); ``zeros`` and
``ones`` are initializers themselves, as in JAX.

The variance-scaling family (``glorot_*``, ``he_*``, ``lecun_*``) reads the fans from the
shape: the input axis is ``in_axis=-2``, the output axis ``out_axis=-1``, and every other
axis is the receptive field (a ``(3, 3, 16, 32)`` HWIO kernel has ``fan_in = 3*3*16``).

>>> w = glorot_uniform()(fg.random.key(0), (3, 4))
>>> w.shape, w.dtype
((3, 4), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import random
from funcgrad.core import Tracer

__all__ = [
    "Initializer",
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Initializer = Callable[..., Any]

# The standard deviation of a standard normal truncated to (-2, 2).
_TRUNCATED_STDDEV = 0.87962566103423978


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(
            f"{name}: shape must be a tuple of ints, got {shape!r}; pass e.g. (3, 4)"
        ) from None


def _float_dtype(name: str, dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"{name}: dtype must be a float dtype, got {dt}; pass np.float32")
    return dt


def zeros(key: Any, shape: Any, dtype: Any = np.float32) -> np.ndarray:
    """An array of zeros (the key is ignored)."""
    return np.zeros(_shape("zeros", shape), np.dtype(dtype))


def ones(key: Any, shape: Any, dtype: Any = np.float32) -> np.ndarray:
    """An array of ones (the key is ignored)."""
    return np.ones(_shape("ones", shape), np.dtype(dtype))


def constant(value: Any, dtype: Any = np.float32) -> Initializer:
    """An initializer filling every entry with ``value``."""

    def init(key: Any, shape: Any, dtype: Any = dtype) -> np.ndarray:
        return np.full(_shape("constant", shape), value, np.dtype(dtype))

    return init


def normal(stddev: float = 1e-2, dtype: Any = np.float32) -> Initializer:
    """Samples from ``N(0, stddev**2)``."""

    def init(key: Any, shape: Any, dtype: Any = dtype) -> Any:
        dt = _float_dtype("normal", dtype)
        return random.normal(key, _shape("normal", shape), dt) * dt.type(stddev)

    return init


def uniform(scale: float = 1e-2, dtype: Any = np.float32) -> Initializer:
    """Samples from ``U[0, scale)`` (as JAX: not centred on zero)."""

    def init(key: Any, shape: Any, dtype: Any = dtype) -> Any:
        dt = _float_dtype("uniform", dtype)
        return random.uniform(key, _shape("uniform", shape), dt) * dt.type(scale)

    return init


def truncated_normal(
    stddev: float = 1e-2, dtype: Any = np.float32, lower: float = -2.0, upper: float = 2.0
) -> Initializer:
    """Samples from ``stddev * N(0, 1)`` truncated to ``(lower, upper)`` (before scaling)."""

    def init(key: Any, shape: Any, dtype: Any = dtype) -> Any:
        dt = _float_dtype("truncated_normal", dtype)
        s = random.truncated_normal(key, lower, upper, _shape("truncated_normal", shape), dt)
        return s * dt.type(stddev)

    return init


def _axes_size(shape: tuple[int, ...], axes: int | Sequence[int]) -> int:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return math.prod(shape[a] for a in axes)


def _compute_fans(
    shape: tuple[int, ...],
    in_axis: int | Sequence[int],
    out_axis: int | Sequence[int],
    batch_axis: int | Sequence[int],
) -> tuple[float, float]:
    if len(shape) < 2:
        raise ValueError(
            f"variance_scaling: cannot compute fan-in and fan-out of a {len(shape)}-d shape "
            f"{shape}; these initializers need a kernel of rank >= 2 (use zeros, normal(...) "
            "or constant(...) for biases and vectors)"
        )
    norm = lambda ax: tuple(a % len(shape) for a in ((ax,) if isinstance(ax, int) else ax))
    ins, outs, batch = norm(in_axis), norm(out_axis), norm(batch_axis)
    receptive = math.prod(d for i, d in enumerate(shape) if i not in ins + outs + batch)
    return _axes_size(shape, ins) * receptive, _axes_size(shape, outs) * receptive


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """Samples with variance ``scale / n``, ``n`` the fan-in, fan-out or their average.

    ``mode``: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``; ``distribution``:
    ``"truncated_normal"`` (stddev corrected for the truncation at two sigmas), ``"normal"``
    or ``"uniform"`` (on ``[-limit, limit)``, ``limit = sqrt(3 * scale / n)``).
    """
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"variance_scaling: mode must be fan_in, fan_out or fan_avg; got {mode!r}")
    if distribution not in ("truncated_normal", "normal", "uniform"):
        raise ValueError(
            "variance_scaling: distribution must be truncated_normal, normal or uniform; "
            f"got {distribution!r}"
        )

    def init(key: Any, shape: Any, dtype: Any = dtype) -> Any:
        dt = _float_dtype("variance_scaling", dtype)
        shape = _shape("variance_scaling", shape)
        fan_in, fan_out = _compute_fans(shape, in_axis, out_axis, batch_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(n, 1)
        if distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_STDDEV
            return random.truncated_normal(key, -2.0, 2.0, shape, dt) * dt.type(stddev)
        if distribution == "normal":
            return random.normal(key, shape, dt) * dt.type(math.sqrt(variance))
        limit = math.sqrt(3 * variance)
        return random.uniform(key, shape, dt, minval=-limit, maxval=limit)

    return init


def glorot_uniform(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """Glorot (Xavier) uniform: ``U[-limit, limit)``, ``limit = sqrt(6 / (fan_in + fan_out))``."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """Glorot (Xavier) normal: truncated normal with variance ``2 / (fan_in + fan_out)``."""
    return variance_scaling(
        1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis, dtype
    )


def lecun_uniform(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """LeCun uniform: ``U[-limit, limit)``, ``limit = sqrt(3 / fan_in)``."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """LeCun normal: truncated normal with variance ``1 / fan_in``."""
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def he_uniform(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """He (Kaiming) uniform: ``U[-limit, limit)``, ``limit = sqrt(6 / fan_in)``."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: Sequence[int] = (),
    dtype: Any = np.float32,
) -> Initializer:
    """He (Kaiming) normal: truncated normal with variance ``2 / fan_in``."""
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: Any = np.float32) -> Initializer:
    """A (semi-)orthogonal matrix times ``scale``: the ``Q`` of a QR factorisation of a
    Gaussian sample, sign-corrected so that it is uniformly distributed. Shapes of rank > 2
    are treated as ``(prod(other axes), shape[column_axis])``.

    Runs eagerly only (the QR factorisation is NumPy's): initialise outside ``jit``/``vmap``.
    """

    def init(key: Any, shape: Any, dtype: Any = dtype) -> np.ndarray:
        dt = _float_dtype("orthogonal", dtype)
        shape = _shape("orthogonal", shape)
        if len(shape) < 2:
            raise ValueError(f"orthogonal: needs a shape of rank >= 2, got {shape}")
        if isinstance(key, Tracer):
            raise TypeError(
                "orthogonal: the QR factorisation runs in NumPy, so this initializer cannot be "
                "traced (under jit/vmap); call model.init outside jit"
            )
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        big, small = max(n_rows, n_cols), min(n_rows, n_cols)
        a = np.asarray(random.normal(key, (big, small), np.float64))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if n_rows < n_cols:
            q = q.T
        q = q.reshape(
            tuple(d for i, d in enumerate(shape) if i != column_axis % len(shape)) + (n_cols,)
        )
        q = np.moveaxis(q, -1, column_axis % len(shape))
        return np.ascontiguousarray((scale * q).astype(dt))

    return init
