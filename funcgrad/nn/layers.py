"""Layers whose parameters are explicit pytrees: ``init`` makes them, ``apply`` uses them.

>>> model = fg.nn.Sequential([fg.nn.Dense(10), fg.nn.relu, fg.nn.Dense(1)])
>>> params = model.init(fg.random.key(0), x)      # [{'kernel', 'bias'}, {}, {...}]
>>> y = model.apply(params, x)

A layer (a :class:`Module`) holds only its configuration: it is a frozen dataclass (hashable,
so it can be a static argument of ``jit``) and a pytree with no leaves. Its parameters are a
plain pytree of NumPy arrays (dicts; a list for :class:`Sequential`) that grad, optimizers and
:func:`funcgrad.serialization.save_params` take as they are. Parameters default to float32.

The protocol:

- ``init(key, x) -> params`` and ``apply(params, x, *, key=None, train=False) -> y``. The
  example input ``x`` only lends its shape and dtype (``x[:1]`` is enough). ``key`` feeds the
  random layers (:class:`Dropout`) and ``train`` switches them (and :class:`BatchNorm`) to
  training behaviour.
- State that is not trained by gradients (the running statistics of :class:`BatchNorm`) lives
  in a separate pytree, ``state``, threaded explicitly:
  ``params, state = model.init_with_state(key, x)`` and
  ``y, state = model.apply_with_state(params, state, x, key=key, train=True)``. Keeping it out
  of ``params`` means gradients, optimizers and weight decay never see it. For a model
  without such layers the state is empty (``{}`` per layer). ``apply`` on a stateful model
  works with ``train=True`` (batch statistics, nothing to update); for inference without
  ``train`` it needs the running statistics, so use ``apply_with_state``.

Subclasses become frozen dataclasses automatically: declare the configuration as annotated
class attributes and override ``init``/``apply`` (or the ``*_with_state`` pair).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import lax, random, tree_util
from funcgrad import numpy as fnp
from funcgrad.api import make_jaxpr
from funcgrad.core import get_aval
from funcgrad.lax.stop_gradient import stop_gradient
from funcgrad.nn import functions as F
from funcgrad.nn import initializers
from funcgrad.nn.conv import avg_pool, conv2d, max_pool

__all__ = [
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "LayerNorm",
    "Linear",
    "MaxPool2D",
    "Module",
    "Sequential",
    "get_activation",
]

Params = Any
State = Any


def _aval(x: Any) -> Any:
    try:
        return get_aval(x)
    except TypeError:
        return get_aval(np.asarray(x))


def _pair(name: str, what: str, v: Any) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return (int(v), int(v))
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {v}")
    return v


def _as_float(x: Any, dtype: Any) -> Any:
    """Non-float inputs (ints, bools) are cast to the parameters' dtype, as Keras does."""
    x = fnp.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(dtype)


def _short_repr(v: Any) -> str:
    if isinstance(v, tuple) and v and any(callable(e) for e in v):
        return "[" + ", ".join(_short_repr(e) for e in v) + "]"
    if callable(v) and not isinstance(v, Module | type):
        return getattr(v, "__name__", None) or getattr(v, "__qualname__", None) or repr(v)
    if isinstance(v, type):
        return v.__name__
    return repr(v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, int) and not isinstance(b, bool):
        return all(e == b for e in a)  # normalised ints: strides=(1, 1) is the default 1
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other odd defaults compare as different
        return False


def _activations() -> dict[str, Callable]:

    return {
        "linear": lambda x: x,
        "relu": F.relu,
        "relu6": F.relu6,
        "sigmoid": F.sigmoid,
        "tanh": fnp.tanh,
        "softmax": F.softmax,
        "log_softmax": F.log_softmax,
        "gelu": F.gelu,
        "elu": F.elu,
        "selu": F.selu,
        "celu": F.celu,
        "softplus": F.softplus,
        "softsign": F.soft_sign,
        "swish": F.silu,
        "silu": F.silu,
        "leaky_relu": F.leaky_relu,
        "hard_tanh": F.hard_tanh,
        "log_sigmoid": F.log_sigmoid,
        "exponential": fnp.exp,
    }


def get_activation(activation: Any) -> Callable | None:
    """The function for an activation given by name (Keras's names: ``"relu"``,
    ``"sigmoid"``, ``"softmax"``, ``"linear"``...), a function, or ``None`` (identity)."""
    if activation is None or callable(activation):
        return activation
    table = _activations()
    if isinstance(activation, str) and activation.lower() in table:
        return table[activation.lower()]
    raise ValueError(
        f"unknown activation {activation!r}; use one of {sorted(table)}, a function such as "
        "fg.nn.relu, or None"
    )


def _activate(activation: Any, y: Any) -> Any:
    fn = get_activation(activation)
    return y if fn is None else fn(y)


def _check_input_shape(name: str, input_shape: Any) -> Any:
    """Keras's ``input_shape``: the shape of one example (no batch axis), as a tuple."""
    if input_shape is None:
        return None
    if isinstance(input_shape, int | np.integer):
        input_shape = (input_shape,)
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except TypeError:
        raise TypeError(
            f"{name}: input_shape must be a tuple of ints (one example, no batch axis), "
            f"got {input_shape!r}"
        ) from None
    return shape


class Module:
    """Base class of layers. Subclasses are frozen dataclasses and leafless pytrees."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, repr=False, eq=True)(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        tree_util.register_dataclass(cls, data_fields=[], meta_fields=names)

    def __repr__(self) -> str:
        """Required fields by position, the others only where they differ from the default:
        ``Dense(10)``, ``Conv2D(8, kernel_size=(3, 3), padding='SAME')``."""
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                parts.append(_short_repr(v))
            elif not (v is f.default or _same(v, f.default)):
                parts.append(f"{f.name}={_short_repr(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- the protocol: override init/apply (stateless) or the *_with_state pair.
    def init(self, key: Any, x: Any) -> Params:
        """Parameters for inputs shaped like ``x`` (``x`` may be a small example batch)."""
        if type(self).init_with_state is Module.init_with_state:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither init nor init_with_state"
            )
        return self.init_with_state(key, x)[0]

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        """The layer's output for ``x`` (``key`` and ``train`` reach random layers)."""
        if type(self).apply_with_state is Module.apply_with_state:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither apply nor apply_with_state"
            )
        return self.apply_with_state(params, None, x, key=key, train=train)[0]

    def init_with_state(self, key: Any, x: Any) -> tuple[Params, State]:
        """``(params, state)``; the state is ``{}`` for layers without one."""
        return self.init(key, x), {}

    def apply_with_state(
        self, params: Params, state: State, x: Any, *, key: Any = None, train: bool = False
    ) -> tuple[Any, State]:
        """``(y, new_state)``; layers without state return the state unchanged."""
        return self.apply(params, x, key=key, train=train), state

    def __call__(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return self.apply(params, x, key=key, train=train)

    def example_input(self, dtype: Any = np.float32) -> np.ndarray | None:
        """A one-example batch shaped by the layer's ``input_shape`` (Keras style), or None
        when the layer was made without one. ``init(key)`` uses it when no ``x`` is given."""
        shape = getattr(self, "input_shape", None)
        if shape is None:
            return None
        if any(d is None for d in shape):
            raise ValueError(
                f"{type(self).__name__}: input_shape {shape} has unknown (None) sizes; pass "
                "an example input to init instead"
            )
        return np.zeros((1, *shape), dtype)


def _example_or(layer: Module, x: Any) -> Any:
    if x is not None:
        return x
    ex = layer.example_input()
    if ex is None:
        raise TypeError(
            f"{layer!r}.init: needs an example input (init(key, x[:1])), or make the first "
            "layer with input_shape=(features,)"
        )
    return ex


# ----------------------------------------------------------------------------------------
# Dense, Conv2D, Embedding


class Dense(Module):
    """``y = x @ kernel + bias`` over the last axis of ``x``; ``kernel`` is ``(in, out)``.

    Defaults as Flax: ``lecun_normal`` kernel, zero bias, float32 parameters. Keras habits
    work too: ``activation`` (a name such as ``"relu"`` or a function) is applied to the
    output, and ``input_shape=(features,)`` lets ``init(key)`` run without an example."""

    features: int
    activation: Any = None
    use_bias: bool = True
    kernel_init: Callable = initializers.lecun_normal()
    bias_init: Callable = initializers.zeros
    param_dtype: Any = np.float32
    input_shape: Any = None

    def __post_init__(self) -> None:
        get_activation(self.activation)  # unknown names fail here, not in the first step
        shape = _check_input_shape(f"Dense({self.features})", self.input_shape)
        object.__setattr__(self, "input_shape", shape)

    def init(self, key: Any, x: Any = None) -> Params:
        a = _aval(_example_or(self, x))
        if a.ndim < 1:
            raise ValueError(
                f"Dense({self.features}).init: needs inputs of rank >= 1 "
                f"(..., features), got {a.str_short()}"
            )
        k_kernel, k_bias = random.split(key)
        params = {
            "kernel": self.kernel_init(k_kernel, (a.shape[-1], self.features), self.param_dtype)
        }
        if self.use_bias:
            params["bias"] = self.bias_init(k_bias, (self.features,), self.param_dtype)
        return params

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        kernel = params["kernel"]
        x = _as_float(x, _aval(kernel).dtype)
        a, k = _aval(x), _aval(kernel)
        if a.ndim < 1 or a.shape[-1] != k.shape[0]:
            raise ValueError(
                f"Dense({self.features}): input {a.str_short()} has "
                f"{a.shape[-1] if a.ndim else 'no'} features but the kernel {k.str_short()} "
                f"takes {k.shape[0]}; initialise with an example input of this shape"
            )
        y = fnp.matmul(x, kernel)
        if self.use_bias:
            y = y + params["bias"]
        return _activate(self.activation, y)


class Linear(Dense):
    """PyTorch's ``nn.Linear(in_features, out_features)``: a :class:`Dense` layer that also
    states its input size, so ``init(key)`` needs no example. Parameters are the Dense ones
    (``kernel`` is ``(in, out)``, the transpose of PyTorch's ``weight``)."""

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
        *,
        kernel_init: Callable | None = None,
        bias_init: Callable = initializers.zeros,
        param_dtype: Any = np.float32,
        **fields: Any,
    ) -> None:
        if kernel_init is None:  # Dense's default (lecun_normal)
            kernel_init = next(
                f for f in dataclasses.fields(Dense) if f.name == "kernel_init"
            ).default
        kw = dict(kernel_init=kernel_init, bias_init=bias_init, param_dtype=param_dtype)
        if fields:  # rebuilt from its fields (pytree unflattening)
            super().__init__(**fields, **kw)
            return
        if in_features is None or out_features is None:
            raise TypeError("Linear(in_features, out_features): both sizes are required")
        super().__init__(
            int(out_features), use_bias=bool(bias), input_shape=(int(in_features),), **kw
        )

    def __repr__(self) -> str:
        extra = "" if self.use_bias else ", bias=False"
        return f"Linear({self.input_shape[0]}, {self.features}{extra})"

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        a = _aval(x)
        if a.ndim < 1 or a.shape[-1] != self.input_shape[0]:
            raise ValueError(
                f"{self!r}: input {a.str_short()} must have {self.input_shape[0]} features "
                "in its last axis"
            )
        return super().apply(params, x, key=key, train=train)


class Conv2D(Module):
    """2-d convolution of ``NHWC`` inputs with an ``HWIO`` kernel (plus a bias).

    ``padding``: ``"VALID"`` (default, as Keras), ``"SAME"``, an int or (low, high) pairs."""

    features: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = "VALID"
    kernel_dilation: Any = 1
    use_bias: bool = True
    kernel_init: Callable = initializers.lecun_normal()
    bias_init: Callable = initializers.zeros
    param_dtype: Any = np.float32
    activation: Any = None
    input_shape: Any = None

    def __post_init__(self) -> None:
        name = f"Conv2D({self.features})"
        get_activation(self.activation)
        object.__setattr__(self, "input_shape", _check_input_shape(name, self.input_shape))
        object.__setattr__(self, "kernel_size", _pair(name, "kernel_size", self.kernel_size))
        object.__setattr__(self, "strides", _pair(name, "strides", self.strides))
        object.__setattr__(
            self, "kernel_dilation", _pair(name, "kernel_dilation", self.kernel_dilation)
        )
        if not isinstance(self.padding, str):  # an int, or one int / (low, high) per axis
            per_axis = (self.padding,) * 2 if isinstance(self.padding, int) else self.padding
            pads = tuple(_pair(name, "padding", p) for p in per_axis)
            object.__setattr__(self, "padding", pads)

    def init(self, key: Any, x: Any = None) -> Params:
        a = _aval(_example_or(self, x))
        if a.ndim != 4:
            raise ValueError(
                f"Conv2D({self.features}).init: needs NHWC inputs (rank 4), got "
                f"{a.str_short()}; add a batch axis with x[None] or a channel "
                "axis with x[..., None]"
            )
        k_kernel, k_bias = random.split(key)
        shape = (*self.kernel_size, a.shape[-1], self.features)
        params = {"kernel": self.kernel_init(k_kernel, shape, self.param_dtype)}
        if self.use_bias:
            params["bias"] = self.bias_init(k_bias, (self.features,), self.param_dtype)
        return params

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        kernel = params["kernel"]
        x = _as_float(x, _aval(kernel).dtype)
        a, k = _aval(x), _aval(kernel)
        if a.ndim != 4 or a.shape[-1] != k.shape[2]:
            raise ValueError(
                f"Conv2D({self.features}): input {a.str_short()} must be NHWC with {k.shape[2]} "
                f"channels for the kernel {k.str_short()}"
            )
        y = conv2d(x, kernel, self.strides, self.padding, self.kernel_dilation)
        if self.use_bias:
            y = y + params["bias"]
        return _activate(self.activation, y)


class Embedding(Module):
    """A ``(num_embeddings, features)`` table looked up by integer ids: ``table[ids]``.

    Default init ``normal(stddev=1.0)`` (as PyTorch)."""

    num_embeddings: int
    features: int
    embedding_init: Callable = initializers.normal(stddev=1.0)
    param_dtype: Any = np.float32

    def init(self, key: Any, x: Any) -> Params:
        shape = (self.num_embeddings, self.features)
        return {"embedding": self.embedding_init(key, shape, self.param_dtype)}

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        ids = fnp.asarray(x)
        if ids.dtype.kind not in "iu":
            raise TypeError(
                f"Embedding({self.num_embeddings}, {self.features}): ids must be integers, got "
                f"{_aval(ids).str_short()}; cast with .astype(np.int32)"
            )
        return fnp.take(params["embedding"], ids, axis=0)


# ----------------------------------------------------------------------------------------
# Pooling, Flatten, Dropout


class MaxPool2D(Module):
    """Max over ``window`` patches of ``NHWC`` inputs; ``strides`` default to ``window``."""

    window: Any = 2
    strides: Any = None
    padding: Any = "VALID"

    def init(self, key: Any, x: Any) -> Params:
        return {}

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        window = _pair("MaxPool2D", "window", self.window)
        strides = window if self.strides is None else _pair("MaxPool2D", "strides", self.strides)
        return max_pool(x, window, strides, self.padding)


class AvgPool2D(Module):
    """Mean over ``window`` patches of ``NHWC`` inputs; ``strides`` default to ``window``."""

    window: Any = 2
    strides: Any = None
    padding: Any = "VALID"
    count_include_pad: bool = True

    def init(self, key: Any, x: Any) -> Params:
        return {}

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        window = _pair("AvgPool2D", "window", self.window)
        strides = window if self.strides is None else _pair("AvgPool2D", "strides", self.strides)
        return avg_pool(x, window, strides, self.padding, self.count_include_pad)


class Flatten(Module):
    """Reshape ``(batch, ...)`` to ``(batch, -1)``."""

    def init(self, key: Any, x: Any) -> Params:
        return {}

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        x = fnp.asarray(x)
        return fnp.reshape(x, (x.shape[0], -1)) if x.ndim else fnp.reshape(x, (1,))


class Dropout(Module):
    """Zero each entry with probability ``rate`` and scale the rest by ``1 / (1 - rate)``,
    only when ``train=True`` (a ``key`` is then required); identity otherwise."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1], got {self.rate}")

    def init(self, key: Any, x: Any) -> Params:
        return {}

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        if not train or self.rate == 0.0:
            return fnp.array(x)  # a fresh array, never the input itself
        if key is None:
            raise ValueError(
                f"Dropout(rate={self.rate}): training needs a random key; call "
                "apply(params, x, key=key, train=True)"
            )
        x = fnp.asarray(x)
        if self.rate == 1.0:
            return fnp.zeros_like(x)
        keep = random.bernoulli(key, 1.0 - self.rate, x.shape)
        return fnp.where(keep, x / (1.0 - self.rate), fnp.zeros_like(x))


# ----------------------------------------------------------------------------------------
# Normalisation


def _feature_axis(name: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for inputs of rank {ndim}")
    return axis % ndim


class BatchNorm(Module):
    """Normalise over every axis but the feature ``axis`` (last by default).

    ``train=True``: batch statistics, and ``apply_with_state`` returns running statistics
    updated as ``momentum * running + (1 - momentum) * batch`` (biased batch variance, as
    Flax). ``train=False``: the running statistics from ``state``. Parameters ``scale`` and
    ``bias``; state ``mean`` and ``var`` (see the module docstring)."""

    momentum: float = 0.99
    epsilon: float = 1e-5
    axis: int = -1
    use_bias: bool = True
    use_scale: bool = True
    param_dtype: Any = np.float32

    def _features(self, x: Any) -> int:
        a = _aval(x)
        return a.shape[_feature_axis("BatchNorm", self.axis, a.ndim)]

    def init_with_state(self, key: Any, x: Any) -> tuple[Params, State]:
        c = self._features(x)
        params = {}
        if self.use_scale:
            params["scale"] = np.ones((c,), self.param_dtype)
        if self.use_bias:
            params["bias"] = np.zeros((c,), self.param_dtype)
        state = {"mean": np.zeros((c,), self.param_dtype), "var": np.ones((c,), self.param_dtype)}
        return params, state

    def apply_with_state(
        self, params: Params, state: State, x: Any, *, key: Any = None, train: bool = False
    ) -> tuple[Any, State]:
        x = _as_float(x, self.param_dtype)
        ndim = x.ndim
        ax = _feature_axis("BatchNorm", self.axis, ndim)
        reduce = tuple(i for i in range(ndim) if i != ax)
        shape = [1] * ndim
        shape[ax] = x.shape[ax]
        if train:
            mean = fnp.mean(x, axis=reduce)
            var = fnp.mean(fnp.square(x - fnp.reshape(mean, shape)), axis=reduce)
            if state is not None:
                m = self.momentum
                state = {
                    "mean": m * state["mean"] + (1 - m) * stop_gradient(mean),
                    "var": m * state["var"] + (1 - m) * stop_gradient(var),
                }
        else:
            if state is None or not state:
                raise ValueError(
                    "BatchNorm: inference (train=False) uses the running statistics, which "
                    "live in the model state: params, state = model.init_with_state(key, x), "
                    "then y, state = model.apply_with_state(params, state, x, train=...)"
                )
            mean, var = state["mean"], state["var"]
        y = (x - fnp.reshape(mean, shape)) * fnp.reshape(lax.rsqrt(var + self.epsilon), shape)
        if self.use_scale:
            y = y * fnp.reshape(params["scale"], shape)
        if self.use_bias:
            y = y + fnp.reshape(params["bias"], shape)
        return y, state


class LayerNorm(Module):
    """Normalise each example over its last axis, then ``* scale + bias`` (Flax defaults)."""

    epsilon: float = 1e-6
    use_bias: bool = True
    use_scale: bool = True
    param_dtype: Any = np.float32

    def init(self, key: Any, x: Any) -> Params:
        c = _aval(x).shape[-1]
        params = {}
        if self.use_scale:
            params["scale"] = np.ones((c,), self.param_dtype)
        if self.use_bias:
            params["bias"] = np.zeros((c,), self.param_dtype)
        return params

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        x = _as_float(x, self.param_dtype)
        mean = fnp.mean(x, axis=-1, keepdims=True)
        var = fnp.mean(fnp.square(x - mean), axis=-1, keepdims=True)
        y = (x - mean) * lax.rsqrt(var + self.epsilon)
        if self.use_scale:
            y = y * params["scale"]
        if self.use_bias:
            y = y + params["bias"]
        return y


# ----------------------------------------------------------------------------------------
# Sequential


def _example_like(aval: Any) -> np.ndarray:
    """A zero array of ``aval``'s shape and dtype that takes no memory (a broadcast view)."""
    return np.broadcast_to(np.zeros((), aval.dtype), aval.shape)


def _eval_shape(fn: Callable[[Any], Any], x: Any) -> Any:
    """The aval of ``fn(x)``, traced without computing anything."""

    closed = make_jaxpr(fn)(_example_like(_aval(x)))
    (out,) = closed.jaxpr.out_avals
    return out


class Sequential(Module):
    """Layers applied in order; plain functions (``fg.nn.relu``, lambdas) are allowed too.

    ``Sequential([a, b, c])`` (Keras, Flax) and ``Sequential(a, b, c)`` (PyTorch) are the
    same model. ``params`` (and ``state``) are lists with one entry per layer (``{}`` for
    functions). If the first layer has an ``input_shape`` (``Dense(10, input_shape=(3,))``,
    ``Linear(3, 10)``), ``init(key)`` needs no example input."""

    layers: Sequence[Any]

    def __init__(self, *args: Any, layers: Sequence[Any] | None = None) -> None:
        if layers is None:
            one_list = len(args) == 1 and isinstance(args[0], list | tuple)
            layers = tuple(args[0]) if one_list else args
        elif args:
            raise TypeError("Sequential: pass the layers either as a list or as arguments")
        object.__setattr__(self, "layers", layers)
        self.__post_init__()

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not (isinstance(layer, Module) or callable(layer)):
                raise TypeError(
                    f"Sequential: layer {i} is {layer!r}, neither a Module nor a function"
                )
        object.__setattr__(self, "layers", layers)

    def example_input(self, dtype: Any = np.float32) -> np.ndarray | None:
        first = self.layers[0] if self.layers else None
        return first.example_input(dtype) if isinstance(first, Module) else None

    def init_with_state(self, key: Any, x: Any = None) -> tuple[Params, State]:
        params, states = [], []
        keys = random.split(key, max(len(self.layers), 1))
        x = _example_like(_aval(_example_or(self, x)))
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Module):
                p, s = layer.init_with_state(keys[i], x)

                def run(v, layer=layer, p=p, s=s):
                    return layer.apply_with_state(p, s, v)[0]
            else:
                p, s, run = {}, {}, layer
            params.append(p)
            states.append(s)
            if i + 1 < len(self.layers):
                x = _example_like(_eval_shape(run, x))
        return params, states

    def init(self, key: Any, x: Any = None) -> Params:
        return self.init_with_state(key, x)[0]

    def apply_with_state(
        self, params: Params, state: State, x: Any, *, key: Any = None, train: bool = False
    ) -> tuple[Any, State]:
        if len(params) != len(self.layers):
            raise ValueError(
                f"Sequential: params has {len(params)} entries for {len(self.layers)} layers; "
                "use the params that this model's init returned"
            )
        keys = random.split(key, len(self.layers)) if key is not None else None
        new_states = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Module):
                s = None if state is None else state[i]
                k = None if keys is None else keys[i]
                x, s = layer.apply_with_state(params[i], s, x, key=k, train=train)
            else:
                x, s = layer(x), None if state is None else state[i]
            new_states.append(s)
        return x, (None if state is None else new_states)

    def apply(self, params: Params, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return self.apply_with_state(params, None, x, key=key, train=train)[0]
