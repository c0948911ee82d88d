"""Keras's optimizers with Keras's defaults, built on :mod:`funcgrad.optim`.

``Adam()`` is ``Adam(learning_rate=0.001)``; ``SGD()`` is ``SGD(learning_rate=0.01)``. Each
object turns into an Optax-style :class:`funcgrad.optim.GradientTransformation` with
``to_optax()``; ``compile(optimizer="adam")`` takes the names ``"adam"``, ``"adamw"``,
``"sgd"``, ``"rmsprop"``, ``"adagrad"``. A learning rate may be a schedule from
``funcgrad.optim``."""

from __future__ import annotations

from typing import Any

from funcgrad import optim

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "get"]


class Optimizer:
    """Base class: holds Keras-named settings; ``to_optax()`` builds the transformation."""

    def __init__(self, learning_rate: Any) -> None:
        self.learning_rate = learning_rate

    def to_optax(self) -> optim.GradientTransformation:
        raise NotImplementedError

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({items})"


class Adam(Optimizer):
    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
    ) -> None:
        if amsgrad:
            raise NotImplementedError("Adam(amsgrad=True) is not available; use amsgrad=False")
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def to_optax(self) -> optim.GradientTransformation:
        return optim.adam(self.learning_rate, self.beta_1, self.beta_2, self.epsilon)


class AdamW(Optimizer):
    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.weight_decay = weight_decay
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def to_optax(self) -> optim.GradientTransformation:
        return optim.adamw(
            self.learning_rate,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            weight_decay=self.weight_decay,
        )


class SGD(Optimizer):
    def __init__(
        self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate)
        self.momentum, self.nesterov = momentum, nesterov

    def to_optax(self) -> optim.GradientTransformation:
        m = self.momentum or None
        return optim.sgd(self.learning_rate, m, self.nesterov)


class RMSprop(Optimizer):
    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
    ) -> None:
        super().__init__(learning_rate)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def to_optax(self) -> optim.GradientTransformation:
        # Keras adds epsilon outside the square root.
        return optim.rmsprop(
            self.learning_rate,
            decay=self.rho,
            eps=self.epsilon,
            eps_in_sqrt=False,
            centered=self.centered,
            momentum=self.momentum or None,
        )


class Adagrad(Optimizer):
    def __init__(
        self,
        learning_rate: Any = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def to_optax(self) -> optim.GradientTransformation:
        return optim.adagrad(self.learning_rate, self.initial_accumulator_value, self.epsilon)


_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier: Any) -> optim.GradientTransformation:
    """A :class:`funcgrad.optim.GradientTransformation` from a Keras name, a Keras
    optimizer object, or a funcgrad optimizer (used as it is)."""
    if isinstance(identifier, optim.GradientTransformation):
        return identifier
    if isinstance(identifier, Optimizer):
        return identifier.to_optax()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]().to_optax()
    raise ValueError(
        f"unknown optimizer {identifier!r}; use one of {sorted(_BY_NAME)}, a "
        "keras.optimizers object (Adam(learning_rate=1e-3)) or a funcgrad.optim optimizer"
    )
