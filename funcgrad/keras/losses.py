"""Keras's losses, called as Keras calls them: ``loss(y_true, y_pred)`` (targets first).

Strings accepted by ``model.compile(loss=...)``: ``"mse"``/``"mean_squared_error"``,
``"mae"``/``"mean_absolute_error"``, ``"huber"``, ``"binary_crossentropy"``,
``"categorical_crossentropy"`` (one-hot labels), ``"sparse_categorical_crossentropy"``
(integer labels). As in Keras the cross-entropies take probabilities (the output of a
``sigmoid``/``softmax`` layer) unless made with ``from_logits=True``:
``losses.SparseCategoricalCrossentropy(from_logits=True)``. Probabilities are clipped to
``[1e-7, 1 - 1e-7]`` as Keras does, so a log of zero never happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcgrad import losses as _L
from funcgrad import numpy as fnp
from funcgrad.nn import log_softmax

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Huber",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "categorical_crossentropy",
    "get",
    "huber",
    "mae",
    "mean_absolute_error",
    "mean_squared_error",
    "mse",
    "sparse_categorical_crossentropy",
]

_EPS = 1e-7


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """``mean((y_pred - y_true)**2)``."""
    return _L.mse(y_pred, y_true)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """``mean(|y_pred - y_true|)``."""
    return _L.mae(y_pred, y_true)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Any:
    """Huber loss (quadratic within ``delta``, linear outside)."""
    return _L.huber(y_pred, y_true, delta)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Binary cross-entropy of probabilities (or logits with ``from_logits=True``)."""
    if from_logits:
        return _L.sigmoid_binary_cross_entropy(y_pred, y_true)
    return _L.binary_cross_entropy(y_pred, y_true, eps=_EPS)


def _log_probs(y_pred: Any, from_logits: bool) -> Any:

    if from_logits:
        return log_softmax(y_pred, axis=-1)
    p = fnp.asarray(y_pred)
    p = p / fnp.sum(p, axis=-1, keepdims=True)  # Keras renormalises probabilities too
    return fnp.log(fnp.clip(p, _EPS, 1 - _EPS))


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Cross-entropy against one-hot (or probability) labels of the predictions' shape."""
    if from_logits:
        return _L.softmax_cross_entropy(y_pred, y_true)
    logp = _log_probs(y_pred, False)
    y = fnp.asarray(y_true)
    if y.shape != logp.shape:
        raise ValueError(
            f"categorical_crossentropy: labels {y.shape} must be one-hot like the predictions "
            f"{logp.shape}; for integer labels use sparse_categorical_crossentropy"
        )
    return fnp.mean(-fnp.sum(y.astype(logp.dtype) * logp, axis=-1))


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Cross-entropy against integer class labels (a trailing axis of size 1 is allowed)."""
    y = fnp.asarray(y_true)
    p = fnp.asarray(y_pred)
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = fnp.squeeze(y, axis=-1)
    if y.dtype.kind not in "iu":
        y = y.astype(fnp.int32)
    if from_logits:
        return _L.softmax_cross_entropy_with_integer_labels(p, y)
    return _L.softmax_cross_entropy_with_integer_labels(_log_probs(p, False), y)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


class Loss:
    """A loss object: ``loss(y_true, y_pred)``; subclasses set ``fn`` and keyword options."""

    fn: Callable = staticmethod(mean_squared_error)
    name = "loss"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        return type(self).fn(y_true, y_pred, **self.options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


class MeanSquaredError(Loss):
    fn = staticmethod(mean_squared_error)
    name = "mean_squared_error"

    def __init__(self) -> None:
        super().__init__()


class MeanAbsoluteError(Loss):
    fn = staticmethod(mean_absolute_error)
    name = "mean_absolute_error"

    def __init__(self) -> None:
        super().__init__()


class Huber(Loss):
    fn = staticmethod(huber)
    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__(delta=delta)


class BinaryCrossentropy(Loss):
    fn = staticmethod(binary_crossentropy)
    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(from_logits=from_logits)


class CategoricalCrossentropy(Loss):
    fn = staticmethod(categorical_crossentropy)
    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(from_logits=from_logits)


class SparseCategoricalCrossentropy(Loss):
    fn = staticmethod(sparse_categorical_crossentropy)
    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(from_logits=from_logits)


_BY_NAME: dict[str, Callable] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
    "huber_loss": huber,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def get(identifier: Any) -> Callable:
    """A loss ``fn(y_true, y_pred)`` for a Keras name, a :class:`Loss` or a function."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(
                f"unknown loss {identifier!r}; use one of {sorted(_BY_NAME)}, a "
                "keras.losses object, or a function loss(y_true, y_pred)"
            )
        return _BY_NAME[key]
    if callable(identifier):
        return identifier
    raise TypeError(f"a loss must be a name or a function loss(y_true, y_pred), got {identifier!r}")
