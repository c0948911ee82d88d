"""Keras's utilities: ``set_random_seed``, ``to_categorical``."""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.keras.models import set_random_seed as set_random_seed

__all__ = ["set_random_seed", "to_categorical"]


def to_categorical(y: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """One-hot rows for integer class labels."""
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    n = int(y.max()) + 1 if num_classes is None else int(num_classes)
    out = np.zeros((y.shape[0], n), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out
