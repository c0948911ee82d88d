"""Keras's metrics, ``metric(y_true, y_pred)`` (targets first), and the names ``compile``
accepts: ``"mae"``, ``"mse"``, ``"mean_absolute_error"``, ``"mean_squared_error"``,
``"root_mean_squared_error"``, ``"accuracy"``/``"acc"`` (chosen from the loss as Keras
does: binary, categorical or sparse categorical), ``"binary_accuracy"``,
``"categorical_accuracy"``, ``"sparse_categorical_accuracy"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcgrad import metrics as _M
from funcgrad import numpy as fnp
from funcgrad.keras import losses as _losses

__all__ = [
    "accuracy_for_loss",
    "binary_accuracy",
    "categorical_accuracy",
    "get",
    "mean_absolute_error",
    "mean_squared_error",
    "root_mean_squared_error",
    "sparse_categorical_accuracy",
]


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    return _M.mse(y_pred, y_true)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    return _M.mae(y_pred, y_true)


def root_mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    return _M.rmse(y_pred, y_true)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Fraction where ``y_pred > threshold`` agrees with the 0/1 label."""
    return _M.binary_accuracy(y_pred, y_true, threshold)


def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Fraction whose arg-max matches the arg-max of the one-hot label."""
    return _M.accuracy(y_pred, y_true)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Fraction whose arg-max matches the integer label (a trailing axis of 1 is allowed)."""
    y = fnp.asarray(y_true)
    p = fnp.asarray(y_pred)
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = fnp.squeeze(y, axis=-1)
    return _M.accuracy(p, y.astype(fnp.int32) if y.dtype.kind == "f" else y)


_BY_NAME: dict[str, Callable] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "rmse": root_mean_squared_error,
    "root_mean_squared_error": root_mean_squared_error,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
}


def _accuracy(y_true: Any, y_pred: Any) -> Any:
    """Binary accuracy for one output column, else categorical (one-hot labels of the
    predictions' shape) or sparse categorical (integer labels)."""
    p, y = fnp.asarray(y_pred), fnp.asarray(y_true)
    if p.ndim == 0 or p.shape[-1] == 1:
        return binary_accuracy(y, p)
    if y.shape == p.shape:
        return categorical_accuracy(y, p)
    return sparse_categorical_accuracy(y, p)


def accuracy_for_loss(loss: Any) -> Callable:
    """Keras's meaning of ``"accuracy"``: follows the loss (binary, one-hot or sparse), and
    the output's shape when the loss does not say."""
    if isinstance(loss, str):
        loss = _losses.get(loss)
    fn = getattr(loss, "fn", loss)
    logits = bool(getattr(loss, "options", {}).get("from_logits", False))
    if fn is _losses.binary_crossentropy:
        t = 0.0 if logits else 0.5
        return lambda y_true, y_pred: binary_accuracy(y_true, y_pred, t)
    if fn is _losses.categorical_crossentropy:
        return categorical_accuracy
    if fn is _losses.sparse_categorical_crossentropy:
        return sparse_categorical_accuracy
    return _accuracy


def get(identifier: Any, loss: Any = None) -> tuple[str, Callable]:
    """``(name, fn(y_true, y_pred))`` for a metric name or function."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return identifier, accuracy_for_loss(loss)
        if key not in _BY_NAME:
            raise ValueError(
                f"unknown metric {identifier!r}; use one of "
                f"{sorted([*_BY_NAME, 'accuracy', 'acc'])} or a function metric(y_true, y_pred)"
            )
        return identifier, _BY_NAME[key]
    if callable(identifier):
        name = getattr(identifier, "name", None) or getattr(identifier, "__name__", "metric")
        return name, identifier
    raise TypeError(f"a metric must be a name or a function, got {identifier!r}")
