"""Evaluation metrics: ``metric(predictions, targets)``, predictions first (as
:mod:`funcgrad.losses`; note that scikit-learn's ``r2_score(y_true, y_pred)`` is the other way
round). Each returns a scalar, works eagerly and under ``jit``, and is not meant to be
differentiated (argmax and thresholds have zero gradient).

>>> accuracy(logits, labels)            # (N, C) logits or probabilities, (N,) int labels
>>> binary_accuracy(probs, labels)      # threshold 0.5; threshold=0.0 for logits
>>> r2_score(model.apply(params, x), y)
"""

from __future__ import annotations

from typing import Any

from funcgrad import numpy as fnp
from funcgrad.core import get_aval
from funcgrad.losses import match_shapes

__all__ = ["accuracy", "binary_accuracy", "mae", "mse", "r2_score", "rmse"]


def accuracy(predictions: Any, labels: Any) -> Any:
    """Fraction of examples whose arg-max class (over the last axis of logits or
    probabilities ``(..., C)``) equals the label; labels are integer classes ``(...)`` or
    one-hot ``(..., C)``. For one-column (binary) outputs use :func:`binary_accuracy`."""
    p = fnp.asarray(predictions)
    y = fnp.asarray(labels)
    if p.ndim == 0 or p.shape[-1] == 1:
        raise ValueError(
            f"accuracy: predictions {get_aval(p).str_short()} have one column, so there is no "
            "class to arg-max; use binary_accuracy(predictions, labels, threshold=0.5) for "
            "probabilities (threshold=0.0 for logits)"
        )
    if y.shape == p.shape:
        y = fnp.argmax(y, axis=-1)
    elif y.shape != p.shape[:-1]:
        raise ValueError(
            f"accuracy: labels {get_aval(y).str_short()} must be integer classes shaped "
            f"{p.shape[:-1]} or one-hot shaped {p.shape} for predictions "
            f"{get_aval(p).str_short()}"
        )
    dtype = p.dtype if p.dtype.kind == "f" else fnp.float32
    return fnp.mean((fnp.argmax(p, axis=-1) == y).astype(dtype))


def binary_accuracy(predictions: Any, labels: Any, threshold: float = 0.5) -> Any:
    """Fraction of examples where ``predictions > threshold`` agrees with ``labels > 0.5``
    (``threshold=0.5`` for probabilities, ``0.0`` for logits)."""
    p, y = match_shapes("binary_accuracy", predictions, labels)
    return fnp.mean(((p > threshold) == (y > 0.5)).astype(p.dtype))


def mse(predictions: Any, targets: Any) -> Any:
    """Mean squared error."""
    p, t = match_shapes("mse", predictions, targets)
    return fnp.mean(fnp.square(p - t))


def rmse(predictions: Any, targets: Any) -> Any:
    """Root mean squared error."""
    return fnp.sqrt(mse(predictions, targets))


def mae(predictions: Any, targets: Any) -> Any:
    """Mean absolute error."""
    p, t = match_shapes("mae", predictions, targets)
    return fnp.mean(fnp.abs(p - t))


def r2_score(predictions: Any, targets: Any) -> Any:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (over all elements; 1 is a
    perfect fit, 0 as good as predicting the mean)."""
    p, t = match_shapes("r2_score", predictions, targets)
    ss_res = fnp.sum(fnp.square(t - p))
    ss_tot = fnp.sum(fnp.square(t - fnp.mean(t)))
    return 1 - ss_res / ss_tot
