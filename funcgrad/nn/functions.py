"""Activation functions and friends, as in ``jax.nn``: stable in value and in gradient.

Stability choices:

- ``logsumexp``, ``softmax`` and ``log_softmax`` subtract the (gradient-stopped) maximum
  before exponentiating, so large inputs do not overflow and very negative ones do not
  underflow to a log of zero; ``logsumexp`` of an all ``-inf`` slice is ``-inf`` (not
  NaN from ``-inf - -inf``), while ``softmax`` of it is NaN, as in JAX. ``softmax`` has a
  custom JVP (``y * (t - sum(y * t))``) that reuses its output.
- ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` (exact for large |x|) with the custom
  derivative ``sigmoid(x)``; ``log_sigmoid(x) = -softplus(-x)``.
- ``sigmoid`` is the ``logistic`` primitive with the derivative ``sigmoid(x) * sigmoid(-x)``
  (``y * (1 - y)`` loses all relative precision for large x, where ``1 - y`` cancels).
- ``relu``'s derivative at 0 is 0 (custom JVP, as JAX).
- ``elu``/``celu``/``selu`` use a single ``where``: the exponential of the branch that is not
  taken may overflow, and funcgrad's NaN-safe ``where`` (zero cotangents absorb inf, see
  ``funcgrad/interpreters/ad.py``) keeps the gradient finite without a second ``where``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.custom_derivatives import custom_jvp
from funcgrad.lax.stop_gradient import stop_gradient

__all__ = [
    "celu",
    "elu",
    "gelu",
    "hard_tanh",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "one_hot",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_sign",
    "softmax",
    "softplus",
    "standardize",
    "swish",
]

Axis = int | Sequence[int] | None


def _float(x: Any) -> Any:
    """``x`` as an array of a floating dtype (integers convert as NumPy's ``sin`` would)."""
    x = fnp.asarray(x)
    return x if x.dtype.kind in "fc" else x.astype(np.result_type(x.dtype, np.float16))


# ----------------------------------------------------------------------------------------
# Rectifiers


@custom_jvp
def relu(x: Any) -> Any:
    """``max(x, 0)``; the derivative at 0 is 0."""
    return fnp.maximum(x, 0)


@relu.defjvp
def _relu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return relu(x), fnp.where(x > 0, t, fnp.zeros_like(t))


def relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``."""
    return fnp.minimum(fnp.maximum(x, 0), 6)


def leaky_relu(x: Any, negative_slope: float = 1e-2) -> Any:
    """``x`` where ``x >= 0``, else ``negative_slope * x``."""
    x = fnp.asarray(x)
    return fnp.where(x >= 0, x, negative_slope * x)


def hard_tanh(x: Any) -> Any:
    """``x`` clipped to ``[-1, 1]``."""
    return fnp.clip(x, -1, 1)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    x = _float(x)
    return fnp.where(x > 0, x, alpha * fnp.expm1(x))


def celu(x: Any, alpha: float = 1.0) -> Any:
    """``max(x, 0) + alpha * min(exp(x / alpha) - 1, 0)``."""
    x = _float(x)
    return fnp.where(x > 0, x, alpha * fnp.expm1(x / alpha))


def selu(x: Any) -> Any:
    """Scaled ELU with the self-normalizing constants."""
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946
    return scale * elu(x, alpha)


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit (tanh approximation by default, as JAX)."""
    x = _float(x)
    if approximate:
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + fnp.tanh(c * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + lax.erf(x / math.sqrt(2)))


# ----------------------------------------------------------------------------------------
# Sigmoids


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` (the ``logistic`` primitive); its derivative is computed as
    ``sigmoid(x) * sigmoid(-x)``, accurate also where ``1 - sigmoid(x)`` would cancel."""
    return _sigmoid(_float(x))


@custom_jvp
def _sigmoid(x: Any) -> Any:
    return lax.logistic(x)


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    s = _sigmoid(x)
    return s, t * (s * lax.logistic(-x))


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    x = _float(x)
    return x * sigmoid(x)


swish = silu


@custom_jvp
def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, exact for large and very negative ``x``; its derivative is
    ``sigmoid(x)``."""
    x = _float(x)
    return fnp.maximum(x, 0) + fnp.log1p(fnp.exp(-fnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t * sigmoid(x)


def log_sigmoid(x: Any) -> Any:
    """``log(sigmoid(x)) = -softplus(-x)``, finite for very negative ``x``."""
    return -softplus(-_float(x))


def soft_sign(x: Any) -> Any:
    """``x / (|x| + 1)``."""
    x = _float(x)
    return x / (fnp.abs(x) + 1)


# ----------------------------------------------------------------------------------------
# Normalizers


def _stable_max(x: Any, axis: Axis) -> Any:
    """The maximum over ``axis`` (kept dims), gradient-stopped, with non-finite maxima
    (an all ``-inf`` slice) replaced by 0 so that ``x - max`` stays well defined."""
    m = fnp.max(x, axis=axis, keepdims=True)
    m = fnp.where(fnp.isfinite(m), m, fnp.zeros_like(m))
    return stop_gradient(m)


def logsumexp(
    a: Any, axis: Axis = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """``log(sum(b * exp(a), axis))``, computed stably (the maximum is subtracted first).

    With ``return_sign`` returns ``(log|sum|, sign(sum))`` (for weights ``b`` with negative
    entries).
    """
    a = _float(a)
    if isinstance(axis, list):
        axis = tuple(axis)
    m = _stable_max(a, axis)
    e = fnp.exp(a - m)
    if b is not None:
        e = fnp.asarray(b, dtype=a.dtype) * e
    s = fnp.sum(e, axis=axis, keepdims=True)
    sign = fnp.sign(s)
    out = fnp.log(fnp.abs(s) if return_sign else s) + m
    if not keepdims:
        out = fnp.squeeze(out, axis=axis) if axis is not None else fnp.reshape(out, ())
        sign = fnp.squeeze(sign, axis=axis) if axis is not None else fnp.reshape(sign, ())
    return (out, sign) if return_sign else out


def softmax(x: Any, axis: Axis = -1) -> Any:
    """``exp(x) / sum(exp(x), axis)``, computed stably."""
    x = _float(x)
    if isinstance(axis, list):
        axis = tuple(axis)
    return _softmax(x, axis)


def _softmax_impl(x: Any, axis: Axis) -> Any:
    unnormalized = fnp.exp(x - _stable_max(x, axis))
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


_softmax = custom_jvp(_softmax_impl, nondiff_argnums=(1,))


@_softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    y = _softmax(x, axis)
    return y, y * (t - fnp.sum(y * t, axis=axis, keepdims=True))


def log_softmax(x: Any, axis: Axis = -1) -> Any:
    """``x - logsumexp(x, axis)``, computed stably."""
    x = _float(x)
    if isinstance(axis, list):
        axis = tuple(axis)
    shifted = x - _stable_max(x, axis)
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


def standardize(
    x: Any, axis: Axis = -1, mean: Any = None, variance: Any = None, epsilon: float = 1e-5
) -> Any:
    """``(x - mean) / sqrt(variance + epsilon)`` over ``axis``."""
    x = _float(x)
    if mean is None:
        mean = fnp.mean(x, axis=axis, keepdims=True)
    if variance is None:
        variance = fnp.mean(fnp.square(x - mean), axis=axis, keepdims=True)
    return (x - mean) * lax.rsqrt(variance + epsilon)


def one_hot(x: Any, num_classes: int, dtype: Any = np.float32, axis: int = -1) -> Any:
    """``x[..., None] == arange(num_classes)`` as ``dtype`` (out-of-range labels: all 0)."""
    x = fnp.asarray(x)
    classes = np.arange(num_classes)
    out_axis = axis % (x.ndim + 1)
    shape = [1] * (x.ndim + 1)
    shape[out_axis] = num_classes
    lhs = fnp.expand_dims(x, out_axis)
    return (lhs == classes.reshape(shape)).astype(dtype)
