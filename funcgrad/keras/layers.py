"""Keras's layers with Keras's names, arguments and defaults, as :mod:`funcgrad.nn` modules.

Each layer is a :class:`funcgrad.nn.Module` (a frozen dataclass holding configuration only)
that builds the matching ``nn`` layer: ``Dense(10, activation="relu", input_shape=(3,))``
is ``nn.Dense(10, activation="relu", kernel_init=glorot_uniform())``. They work inside
:class:`funcgrad.keras.Sequential` and inside ``nn.Sequential`` alike. Keras's defaults:
Glorot-uniform kernels, ``padding="valid"``, ``MaxPooling2D(pool_size=(2, 2))``,
``BatchNormalization(momentum=0.99, epsilon=1e-3)``. Inputs are channels-last (NHWC).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import numpy as fnp
from funcgrad.nn import initializers as _init
from funcgrad.nn import layers as _nn
from funcgrad.nn.layers import Module, get_activation

__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling2D",
    "Input",
    "InputLayer",
    "LayerNormalization",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
    "Softmax",
]


def _initializer(name: str, what: Any) -> Any:
    if callable(what):
        return what
    table = {
        "glorot_uniform": _init.glorot_uniform(),
        "glorot_normal": _init.glorot_normal(),
        "he_uniform": _init.he_uniform(),
        "he_normal": _init.he_normal(),
        "lecun_uniform": _init.lecun_uniform(),
        "lecun_normal": _init.lecun_normal(),
        "orthogonal": _init.orthogonal(),
        "random_normal": _init.normal(0.05),
        "random_uniform": _init.uniform(0.05),
        "uniform": _init.uniform(0.05),
        "zeros": _init.zeros,
        "ones": _init.ones,
    }
    if isinstance(what, str) and what.lower() in table:
        return table[what.lower()]
    raise ValueError(f"{name}: unknown initializer {what!r}; use one of {sorted(table)}")


def _padding(name: str, padding: Any) -> Any:
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"{name}: padding must be 'valid' or 'same', got {padding!r}")
        return padding.upper()
    return padding


class _Keras(Module):
    """A Keras layer: builds an ``nn`` layer (``_inner``) and runs it."""

    def _inner(self) -> Module:
        raise NotImplementedError

    def init_with_state(self, key: Any, x: Any = None) -> tuple[Any, Any]:
        return self._inner().init_with_state(key, _nn._example_or(self, x))

    def apply_with_state(
        self, params: Any, state: Any, x: Any, *, key: Any = None, train: bool = False
    ) -> tuple[Any, Any]:
        return self._inner().apply_with_state(params, state, x, key=key, train=train)


class Dense(_Keras):
    """``activation(x @ kernel + bias)`` with ``units`` outputs."""

    units: int
    activation: Any = None
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"
    input_shape: Any = None
    name: str | None = None

    def __post_init__(self) -> None:
        if int(self.units) < 1:
            raise ValueError(f"Dense: units must be a positive int, got {self.units!r}")
        get_activation(self.activation)
        shape = _nn._check_input_shape(f"Dense({self.units})", self.input_shape)
        object.__setattr__(self, "input_shape", shape)

    def _inner(self) -> Module:
        return _nn.Dense(
            int(self.units),
            self.activation,
            self.use_bias,
            _initializer("Dense", self.kernel_initializer),
            _initializer("Dense", self.bias_initializer),
        )


class Conv2D(_Keras):
    """2-d convolution of NHWC inputs with ``filters`` output channels."""

    filters: int
    kernel_size: Any
    strides: Any = (1, 1)
    padding: str = "valid"
    activation: Any = None
    use_bias: bool = True
    dilation_rate: Any = (1, 1)
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"
    input_shape: Any = None
    name: str | None = None

    def __post_init__(self) -> None:
        get_activation(self.activation)
        _padding("Conv2D", self.padding)
        shape = _nn._check_input_shape(f"Conv2D({self.filters})", self.input_shape)
        object.__setattr__(self, "input_shape", shape)

    def _inner(self) -> Module:
        return _nn.Conv2D(
            int(self.filters),
            self.kernel_size,
            self.strides,
            _padding("Conv2D", self.padding),
            self.dilation_rate,
            self.use_bias,
            _initializer("Conv2D", self.kernel_initializer),
            _initializer("Conv2D", self.bias_initializer),
            activation=self.activation,
        )


class MaxPooling2D(_Keras):
    """Max over ``pool_size`` windows (strides default to the pool size)."""

    pool_size: Any = (2, 2)
    strides: Any = None
    padding: str = "valid"
    input_shape: Any = None
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.MaxPool2D(self.pool_size, self.strides, _padding("MaxPooling2D", self.padding))


class AveragePooling2D(_Keras):
    """Mean over ``pool_size`` windows (strides default to the pool size)."""

    pool_size: Any = (2, 2)
    strides: Any = None
    padding: str = "valid"
    input_shape: Any = None
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.AvgPool2D(
            self.pool_size, self.strides, _padding("AveragePooling2D", self.padding)
        )


class GlobalAveragePooling2D(Module):
    """Mean over the two spatial axes of NHWC inputs: ``(N, H, W, C) -> (N, C)``."""

    name: str | None = None

    def init(self, key: Any, x: Any = None) -> Any:
        return {}

    def apply(self, params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return fnp.mean(fnp.asarray(x), axis=(1, 2))


class Flatten(_Keras):
    """``(batch, ...) -> (batch, -1)``."""

    input_shape: Any = None
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.Flatten()


class Dropout(_Keras):
    """Drop a fraction ``rate`` of the inputs while training (``fit``), identity otherwise."""

    rate: float
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.Dropout(float(self.rate))


class BatchNormalization(_Keras):
    """Batch normalisation with running statistics (Keras's defaults)."""

    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.BatchNorm(self.momentum, self.epsilon, self.axis, self.center, self.scale)


class LayerNormalization(_Keras):
    """Normalise each example over its last axis (Keras's ``epsilon=1e-3``)."""

    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    name: str | None = None

    def _inner(self) -> Module:
        return _nn.LayerNorm(self.epsilon, self.center, self.scale)


class Embedding(_Keras):
    """A ``(input_dim, output_dim)`` table looked up by integer ids."""

    input_dim: int
    output_dim: int
    embeddings_initializer: Any = "uniform"
    input_shape: Any = None
    name: str | None = None

    def _inner(self) -> Module:
        init = _initializer("Embedding", self.embeddings_initializer)
        return _nn.Embedding(int(self.input_dim), int(self.output_dim), init)

    def example_input(self, dtype: Any = np.int32) -> np.ndarray | None:
        return super().example_input(np.int32)


class Activation(Module):
    """An activation function as a layer: ``Activation("relu")``."""

    activation: Any
    name: str | None = None

    def __post_init__(self) -> None:
        get_activation(self.activation)

    def init(self, key: Any, x: Any = None) -> Any:
        return {}

    def apply(self, params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        fn = get_activation(self.activation)
        return fnp.array(x) if fn is None else fn(x)


def ReLU(name: str | None = None) -> Activation:
    """``Activation("relu")``."""
    return Activation("relu", name=name)


def Softmax(name: str | None = None) -> Activation:
    """``Activation("softmax")`` over the last axis."""
    return Activation("softmax", name=name)


class Reshape(Module):
    """Reshape each example to ``target_shape`` (the batch axis is kept)."""

    target_shape: Any
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_shape", tuple(int(d) for d in self.target_shape))

    def init(self, key: Any, x: Any = None) -> Any:
        return {}

    def apply(self, params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        x = fnp.asarray(x)
        return fnp.reshape(x, (x.shape[0], *self.target_shape))


class InputLayer(Module):
    """Declares the shape of one example (``keras.Input(shape=(3,))``); passes inputs on."""

    input_shape: Any
    name: str | None = None

    def __post_init__(self) -> None:
        shape = _nn._check_input_shape("Input", self.input_shape)
        object.__setattr__(self, "input_shape", shape)

    def init(self, key: Any, x: Any = None) -> Any:
        return {}

    def apply(self, params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return fnp.asarray(x)


def Input(shape: Any, name: str | None = None) -> InputLayer:
    """``keras.Input(shape=(features,))``: the first entry of a Sequential model."""
    return InputLayer(shape, name=name)


KERAS_LAYERS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Activation,
        AveragePooling2D,
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Embedding,
        Flatten,
        GlobalAveragePooling2D,
        InputLayer,
        LayerNormalization,
        MaxPooling2D,
        Reshape,
    )
}
