"""Keras's activation names (``"relu"``, ``"softmax"``, ``"linear"``...) as funcgrad functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcgrad.nn import functions as _F
from funcgrad.nn.layers import get_activation

__all__ = ["get", "relu", "sigmoid", "softmax", "tanh", "linear", "gelu", "elu", "selu"]

relu = _F.relu
sigmoid = _F.sigmoid
softmax = _F.softmax
gelu = _F.gelu
elu = _F.elu
selu = _F.selu
tanh = get_activation("tanh")
linear = get_activation("linear")


def get(identifier: Any) -> Callable:
    """The activation function for a name, a function, or ``None`` (the identity)."""
    fn = get_activation(identifier)
    return linear if fn is None else fn
