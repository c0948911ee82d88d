"""Loss functions: ``loss(predictions, targets, *, reduction="mean")``.

Conventions (shared with :mod:`funcgrad.metrics`):

- Predictions come first, targets second (Optax's and PyTorch's order; Keras and
  scikit-learn put the targets first).
- ``reduction``: ``"mean"`` (default) over every element (elementwise losses) or every
  example (cross-entropies, which first sum over the class axis), ``"sum"``, or ``"none"``
  for the unreduced values.
- Shapes must match. As in Keras, a trailing axis of size 1 on one side only is dropped, so
  ``(N, 1)`` predictions of a ``Dense(1)`` and ``(N,)`` targets compare example by example
  (rather than broadcasting to ``(N, N)``); other mismatches raise ``ValueError``.
- Targets are cast to the predictions' float dtype, so the loss of float32 predictions is a
  float32 scalar (a NumPy 0-d array or scalar eagerly; a tracer under ``grad``/``jit``).
- ``binary_cross_entropy`` takes probabilities (clipped to ``[eps, 1 - eps]``, as Keras);
  ``sigmoid_binary_cross_entropy`` and the ``softmax_*`` losses take logits and are
  computed stably (``log_sigmoid``/``log_softmax``): prefer them for training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import numpy as fnp
from funcgrad.core import get_aval
from funcgrad.nn.functions import log_sigmoid, log_softmax

__all__ = [
    "binary_cross_entropy",
    "huber",
    "huber_loss",
    "mae",
    "mean_absolute_error",
    "mean_squared_error",
    "mse",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]


def _float(name: str, x: Any) -> Any:
    x = fnp.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return x


def match_shapes(name: str, predictions: Any, targets: Any) -> tuple[Any, Any]:
    """``predictions`` as a float array and ``targets`` in its dtype, with a trailing size-1
    axis on one side only dropped; other shape mismatches raise ``ValueError``."""
    p = _float(name, predictions)
    t = fnp.asarray(targets)
    ps, ts = p.shape, t.shape
    if ps != ts and ts != ():
        if len(ps) == len(ts) + 1 and ps[-1] == 1 and ps[:-1] == ts:
            p = fnp.squeeze(p, axis=-1)
        elif len(ts) == len(ps) + 1 and ts[-1] == 1 and ts[:-1] == ps:
            t = fnp.squeeze(t, axis=-1)
        else:
            raise ValueError(
                f"{name}: predictions {get_aval(p).str_short()} and targets "
                f"{get_aval(t).str_short()} have different shapes; reshape one (e.g. "
                "y.reshape(-1, 1) or pred[:, 0]) so that they match example by example"
            )
    if t.dtype != p.dtype:
        t = t.astype(p.dtype)
    return p, t


def _reduce(name: str, values: Any, reduction: str) -> Any:
    if reduction == "mean":
        return fnp.mean(values)
    if reduction == "sum":
        return fnp.sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse(predictions: Any, targets: Any, *, reduction: str = "mean") -> Any:
    """Mean squared error ``mean((predictions - targets)**2)``."""
    p, t = match_shapes("mse", predictions, targets)
    return _reduce("mse", fnp.square(p - t), reduction)


def mae(predictions: Any, targets: Any, *, reduction: str = "mean") -> Any:
    """Mean absolute error ``mean(|predictions - targets|)``."""
    p, t = match_shapes("mae", predictions, targets)
    return _reduce("mae", fnp.abs(p - t), reduction)


def huber(predictions: Any, targets: Any, delta: float = 1.0, *, reduction: str = "mean") -> Any:
    """Huber loss: ``0.5 * e**2`` where ``|e| <= delta``, else ``delta * (|e| - 0.5 * delta)``."""
    p, t = match_shapes("huber", predictions, targets)
    err = fnp.abs(p - t)
    quadratic = fnp.minimum(err, delta)
    linear = err - quadratic
    return _reduce("huber", 0.5 * quadratic * quadratic + delta * linear, reduction)


def binary_cross_entropy(
    probabilities: Any, labels: Any, *, eps: float = 1e-7, reduction: str = "mean"
) -> Any:
    """``-(y log p + (1 - y) log(1 - p))`` from probabilities ``p`` (clipped to
    ``[eps, 1 - eps]``). From logits, use :func:`sigmoid_binary_cross_entropy`."""
    p, y = match_shapes("binary_cross_entropy", probabilities, labels)
    p = fnp.clip(p, eps, 1 - eps)
    values = -(y * fnp.log(p) + (1 - y) * fnp.log1p(-p))
    return _reduce("binary_cross_entropy", values, reduction)


def sigmoid_binary_cross_entropy(logits: Any, labels: Any, *, reduction: str = "mean") -> Any:
    """Binary cross-entropy of ``sigmoid(logits)`` against labels in ``[0, 1]``, computed
    stably as ``-(y log_sigmoid(z) + (1 - y) log_sigmoid(-z))``."""
    z, y = match_shapes("sigmoid_binary_cross_entropy", logits, labels)
    values = -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z))
    return _reduce("sigmoid_binary_cross_entropy", values, reduction)


def softmax_cross_entropy(
    logits: Any, labels: Any, *, axis: int = -1, reduction: str = "mean"
) -> Any:
    """``-sum(labels * log_softmax(logits), axis)`` per example, for one-hot (or
    probability) labels of the logits' shape; averaged over the examples."""
    z = _float("softmax_cross_entropy", logits)
    y = fnp.asarray(labels)
    if y.shape != z.shape:
        raise ValueError(
            f"softmax_cross_entropy: logits {get_aval(z).str_short()} and labels "
            f"{get_aval(y).str_short()} must have one shape (one-hot labels); for integer "
            "class labels use softmax_cross_entropy_with_integer_labels"
        )
    values = -fnp.sum(y.astype(z.dtype) * log_softmax(z, axis=axis), axis=axis)
    return _reduce("softmax_cross_entropy", values, reduction)


def softmax_cross_entropy_with_integer_labels(
    logits: Any, labels: Any, *, axis: int = -1, reduction: str = "mean"
) -> Any:
    """``logsumexp(logits) - logits[label]`` per example, for integer class labels shaped
    like the logits without the class ``axis``; averaged over the examples."""
    name = "softmax_cross_entropy_with_integer_labels"
    z = _float(name, logits)
    y = fnp.asarray(labels)
    ax = axis % z.ndim if z.ndim else 0
    expected = z.shape[:ax] + z.shape[ax + 1 :]
    if z.ndim == 0 or y.shape != expected:
        raise ValueError(
            f"{name}: labels {get_aval(y).str_short()} must have the logits' shape without the "
            f"class axis, {expected}, for logits {get_aval(z).str_short()}; for one-hot labels "
            "use softmax_cross_entropy"
        )
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers, got {get_aval(y).str_short()}")
    log_p = log_softmax(z, axis=ax)
    picked = fnp.take_along_axis(log_p, fnp.expand_dims(y, ax), axis=ax)
    return _reduce(name, -fnp.squeeze(picked, axis=ax), reduction)


mean_squared_error = mse
mean_absolute_error = mae
huber_loss = huber
