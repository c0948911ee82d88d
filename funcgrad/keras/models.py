"""Keras's ``Sequential`` model on funcgrad's functional core.

The model object holds what a Keras model holds (layers, weights, the compiled loss,
metrics and optimizer) and does its work with pure functions: the layers are
:mod:`funcgrad.nn` modules, the weights a pytree (``model.params``, one dict per layer),
and ``fit`` runs a jitted training step ``(params, opt_state, ...) -> (params, opt_state,
...)`` built by :mod:`funcgrad.train`. So everything the functional API offers stays at
hand: ``fg.grad(lambda p: loss(model.module.apply(p, x), y))(model.params)``.

Differences from Keras worth knowing: weights are created from the first layer's
``input_shape`` (or ``keras.Input``) or at the first ``fit``/``predict``/``build``; random
initialisation is deterministic (``keras.utils.set_random_seed`` changes the seed);
``fit`` fills the last batch of an epoch up with examples from the start of the epoch
(every step has one shape, so ``jit`` compiles once); ``save`` writes weights, the layer
configuration and the compile settings, but not the optimizer's state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import random, serialization, train
from funcgrad.api import jit
from funcgrad.keras import callbacks as callbacks_mod
from funcgrad.keras import layers as layers_mod
from funcgrad.keras import losses as losses_mod
from funcgrad.keras import metrics as metrics_mod
from funcgrad.keras import optimizers as optimizers_mod
from funcgrad.nn import layers as nn_layers
from funcgrad.nn.layers import Module
from funcgrad.tree_util import tree_flatten, tree_leaves, tree_unflatten

__all__ = ["Sequential", "load_model"]

_FORMAT = "funcgrad.keras.Sequential"
_seed = [0]
_counter = [0]


def set_random_seed(seed: int) -> None:
    """Seed the weight initialisation, dropout and shuffling of models made afterwards."""
    _seed[0] = int(seed)
    _counter[0] = 0


def _next_key() -> Any:
    _counter[0] += 1
    return random.fold_in(random.key(_seed[0]), _counter[0])


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _layer_type(layer: Any) -> str:
    return type(layer).__name__ if isinstance(layer, Module) else "Lambda"


def _named(fn: Callable, name: str) -> Callable:
    """``fn(y_true, y_pred)`` as a funcgrad-style ``(predictions, targets)`` function named
    ``name`` (the key in the logs)."""

    def swapped(predictions: Any, targets: Any) -> Any:
        return fn(targets, predictions)

    swapped.__name__ = name
    return swapped


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["None", *map(str, shape[1:])]) + ("," if len(shape) == 1 else "") + ")"


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``.

    >>> model = keras.Sequential([keras.layers.Dense(10, activation="relu", input_shape=(3,)),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    >>> history = model.fit(x, y, epochs=10, validation_split=0.2)
    """

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None) -> None:
        self.name = name or "sequential"
        self.layers: list[Any] = []
        self.params: Any = None
        self.state: Any = None
        self.optimizer: Any = None
        self.loss: Any = None
        self.stop_training = False
        self.jit_compile = True
        self.history: callbacks_mod.History | None = None
        self._compile_config: dict[str, Any] | None = None
        self._key = _next_key()
        self._steps: tuple[Callable, Callable] | None = None
        self._opt_state: Any = None
        self._input_shape: tuple[int, ...] | None = None
        for layer in layers or []:
            self.add(layer)

    # -- structure
    def add(self, layer: Any) -> None:
        """Append a layer (a Keras layer, an ``nn`` module or a function)."""
        if not (isinstance(layer, Module) or callable(layer)):
            raise TypeError(f"Sequential.add: {layer!r} is neither a layer nor a function")
        if self.params is not None:
            raise ValueError(
                "Sequential.add: the model already has weights; add every layer before the "
                "first fit/predict/build"
            )
        self.layers.append(layer)
        self._steps = None

    @property
    def module(self) -> nn_layers.Sequential:
        """The model as an :class:`funcgrad.nn.Sequential` (pure ``init``/``apply``)."""
        return nn_layers.Sequential(list(self.layers))

    @property
    def built(self) -> bool:
        return self.params is not None

    def build(self, input_shape: Sequence[Any] | None = None) -> None:
        """Create the weights for inputs of ``input_shape`` (with a leading batch axis, which
        may be None), or from the first layer's ``input_shape``."""
        if not self.layers:
            raise ValueError("Sequential.build: the model has no layers; add some first")
        if input_shape is None:
            example = self.module.example_input()
            if example is None:
                raise ValueError(
                    "Sequential: the weights are created from the input's shape: give the first "
                    "layer input_shape=(features,), call model.build((None, features)), or "
                    "call fit/predict first"
                )
        else:
            shape = tuple(1 if d is None else int(d) for d in input_shape)
            example = np.zeros(shape, np.float32)
        self._build_from(example)

    def _build_from(self, x: np.ndarray) -> None:
        example = np.asarray(x[:1])
        if example.dtype.kind == "f" and example.dtype != np.float32:
            example = example.astype(np.float32)
        self.params, state = self.module.init_with_state(self._key, example)
        self.state = state if tree_leaves(state) else None
        self._input_shape = tuple(example.shape[1:])
        self._opt_state = None

    def _ensure_built(self, x: np.ndarray) -> None:
        if self.params is None:
            ex = self.module.example_input()
            self._build_from(ex if ex is not None else x)

    # -- compile / fit / evaluate / predict
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Sequence[Any] | None = None,
        jit_compile: bool | str = "auto",
        **unsupported: Any,
    ) -> None:
        """Choose the optimizer (a name, a ``keras.optimizers`` object or a funcgrad
        optimizer), the loss (a name or ``fn(y_true, y_pred)``) and the metrics.

        ``jit_compile`` (default ``"auto"``: yes) compiles the training step into one numba
        kernel: fast steps after a compile of seconds (cached on disk across runs).
        ``jit_compile=False`` runs the step eagerly on NumPy: no compile wait, slower
        steps; worth it for short runs on small models."""
        if unsupported:
            raise TypeError(
                f"compile: {sorted(unsupported)} are not supported; funcgrad's Keras layer takes "
                "optimizer, loss and metrics"
            )
        if loss is None:
            raise ValueError('compile: pass a loss, e.g. loss="mse"')
        opt = optimizers_mod.get(optimizer)
        loss_fn = _named(losses_mod.get(loss), "loss")
        if isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        named = [metrics_mod.get(m, loss) for m in metrics or []]
        self.optimizer, self.loss, self._loss_fn = opt, loss, loss_fn
        self.jit_compile = jit_compile is True or jit_compile == "auto"
        self._metrics = [_named(fn, name) for name, fn in named]
        self._compile_config = {
            "optimizer": optimizer if isinstance(optimizer, str) else None,
            "loss": loss if isinstance(loss, str) else None,
            "metrics": [m for m in metrics or [] if isinstance(m, str)],
        }
        if isinstance(optimizer, optimizers_mod.Optimizer):
            settings = vars(optimizer)
            if all(isinstance(v, bool | int | float) for v in settings.values()):
                self._compile_config["optimizer"] = [type(optimizer).__name__, settings]
        self._opt_state = None
        self._steps = None

    def _task_steps(self) -> tuple[Callable, Callable]:
        if self.optimizer is None:
            raise RuntimeError(
                'the model must be compiled first: model.compile(optimizer="adam", loss="mse")'
            )
        if self._steps is None:
            task = train._Task(
                self.module, self._loss_fn, self._metrics, self.optimizer, False, self.state
            )
            if self.jit_compile:
                self._steps = (jit(task.train_step), task.eval_step)
            else:
                self._steps = (task.train_step, task.eval_step)
        return self._steps

    def fit(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[callbacks_mod.Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Sequence[Any] | None = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> callbacks_mod.History:
        """Train for ``epochs`` (Keras's arguments and defaults); returns the History."""
        x, y = _as_arrays("fit", x, y)
        batch_size = 32 if batch_size is None else int(batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is None:
            split_at = int(x.shape[0] * (1.0 - validation_split))  # the last examples, as Keras
            if split_at < 1 or split_at == x.shape[0]:
                raise ValueError(
                    f"fit: validation_split={validation_split} leaves no training or no "
                    f"validation examples out of {x.shape[0]}"
                )
            x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
            validation_data = (x_val, y_val)
        elif validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
            validation_data = _as_arrays("fit (validation_data)", *validation_data)
        self._ensure_built(x)
        step, eval_step = self._task_steps()
        if self._opt_state is None:
            self._opt_state = self.optimizer.init(self.params)

        history = callbacks_mod.History()
        cbs = [history, *(callbacks or [])]
        n = x.shape[0]
        bs = max(1, min(batch_size, n))
        n_batches = math.ceil(n / bs)
        for cb in cbs:
            cb.set_model(self)
            cb.set_params({"verbose": verbose, "epochs": epochs, "steps": n_batches})
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            t0 = time.perf_counter()
            self._key, k_perm, k_steps = random.split(self._key, 3)
            order = np.asarray(random.permutation(k_perm, n)) if shuffle else np.arange(n)
            order = np.concatenate([order, order[: n_batches * bs - n]]).reshape(n_batches, bs)
            step_keys = random.split(k_steps, n_batches)
            totals: dict[str, float] = {}
            for b in range(n_batches):
                xb, yb = x[order[b]], y[order[b]]
                self.params, self._opt_state, self.state, value, logs = step(
                    self.params, self._opt_state, self.state, step_keys[b], xb, yb
                )
                for k, v in {"loss": value, **logs}.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
            epoch_logs = {k: v / n_batches for k, v in totals.items()}
            if validation_data is not None:
                value, logs = eval_step(self.params, self.state, *validation_data)
                epoch_logs["val_loss"] = float(value)
                epoch_logs.update({f"val_{k}": float(v) for k, v in logs.items()})
            if verbose:
                _print_epoch(epoch, epochs, n_batches, time.perf_counter() - t0, epoch_logs)
            for cb in cbs:
                cb.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        self.history = history
        return history

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        return_dict: bool = False,
    ) -> Any:
        """The loss (and metrics) on ``(x, y)`` in inference mode: a float when there are no
        metrics, else ``[loss, *metrics]`` (or a dict with ``return_dict=True``)."""
        x, y = _as_arrays("evaluate", x, y)
        self._ensure_built(x)
        self._task_steps()
        results = train.evaluate(
            self.module,
            self.params,
            x,
            y,
            loss=self._loss_fn,
            metrics=self._metrics,
            batch_size=batch_size,
            state=self.state,
        )
        if (1 if verbose == "auto" else int(verbose)) > 0:
            n = x.shape[0]
            steps = 1 if batch_size is None else math.ceil(n / batch_size)
            parts = " - ".join(f"{k}: {v:.4f}" for k, v in results.items())
            print(f"{steps}/{steps} - {parts}", flush=True)
        if return_dict:
            return results
        values = list(results.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = "auto") -> Any:
        """The model's outputs for ``x`` (inference mode) as a NumPy array."""
        x = np.asarray(x)
        self._ensure_built(x)
        t0 = time.perf_counter()
        out = train.predict(self.module, self.params, x, batch_size=batch_size, state=self.state)
        if (1 if verbose == "auto" else int(verbose)) > 0:
            steps = 1 if batch_size is None else math.ceil(x.shape[0] / batch_size)
            print(f"{steps}/{steps} - {time.perf_counter() - t0:.2f}s", flush=True)
        return out

    def __call__(self, x: Any, training: bool = False) -> Any:
        x = np.asarray(x)
        self._ensure_built(x)
        if training:
            y, _ = self.module.apply_with_state(self.params, self.state, x, train=True)
            return np.asarray(y)
        return train.predict(self.module, self.params, x, state=self.state)

    # -- inspection
    def count_params(self) -> int:
        if self.params is None:
            raise ValueError("count_params: the model has no weights yet (build or fit it)")
        return int(sum(np.size(leaf) for leaf in tree_leaves(self.params)))

    def _layer_rows(self) -> list[tuple[str, str, int, int]]:
        """``(name (type), output shape, trainable count, non-trainable count)`` per layer."""
        rows, seen = [], {}
        x = nn_layers._example_like(nn_layers._aval(np.zeros((1, *self._input_shape), np.float32)))
        for i, layer in enumerate(self.layers):
            kind = _layer_type(layer)
            base = getattr(layer, "name", None) or _snake(kind)
            seen[base] = seen.get(base, -1) + 1
            name = (
                base if seen[base] == 0 or getattr(layer, "name", None) else f"{base}_{seen[base]}"
            )
            p = self.params[i]
            s = None if self.state is None else self.state[i]
            if isinstance(layer, Module):
                run = lambda v, layer=layer, p=p, s=s: layer.apply_with_state(p, s, v)[0]
            else:
                run = layer
            x_aval = nn_layers._eval_shape(run, x)
            x = nn_layers._example_like(x_aval)
            n_train = sum(int(np.size(a)) for a in tree_leaves(p))
            n_state = sum(int(np.size(a)) for a in tree_leaves(s)) if s is not None else 0
            if kind == "InputLayer":
                continue
            rows.append((f"{name} ({kind})", _shape_text(x_aval.shape), n_train, n_state))
        return rows

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print the layers with their output shapes and parameter counts, as Keras does."""
        if self.params is None:
            if self.module.example_input() is None:
                raise ValueError(
                    "summary: this model has not yet been built; give the first layer "
                    "input_shape=(...), call model.build((None, features)), or fit it first"
                )
            self.build()
        rows = self._layer_rows()
        head = ("Layer (type)", "Output Shape", "Param #")
        body = [(a, b, f"{c + d:,}") for a, b, c, d in rows]
        w = [max(len(r[i]) for r in [head, *body]) + 2 for i in range(3)]
        line = lambda r: f"{r[0]:<{w[0]}}{r[1]:<{w[1]}}{r[2]:>{w[2]}}"
        trainable = sum(r[2] for r in rows)
        frozen = sum(r[3] for r in rows)
        out = [f'Model: "{self.name}"', "=" * sum(w), line(head), "=" * sum(w)]
        out += [line(r) for r in body]
        out += [
            "=" * sum(w),
            f"Total params: {trainable + frozen:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {frozen:,}",
        ]
        (print_fn or print)("\n".join(out))

    def _repr_html_(self) -> str | None:
        if self.params is None:
            return None
        rows = "".join(
            f"<tr><td>{a}</td><td>{b}</td><td style='text-align:right'>{c + d:,}</td></tr>"
            for a, b, c, d in self._layer_rows()
        )
        return (
            f"<b>Model: {self.name}</b><table><thead><tr><th>Layer (type)</th>"
            f"<th>Output Shape</th><th>Param #</th></tr></thead><tbody>{rows}</tbody></table>"
            f"Total params: {self.count_params():,}"
        )

    def __repr__(self) -> str:
        return f"<keras.Sequential {self.name!r}: {', '.join(map(repr, self.layers))}>"

    # -- weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight array (and running statistic), in a fixed order."""
        leaves = tree_leaves((self.params, self.state))
        return [np.array(a) for a in leaves]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set every weight from a list like :meth:`get_weights`'s."""
        leaves, treedef = tree_flatten((self.params, self.state))
        if len(weights) != len(leaves):
            raise ValueError(f"set_weights: expected {len(leaves)} arrays, got {len(weights)}")
        new = []
        for old, w in zip(leaves, weights, strict=True):
            w = np.array(w, dtype=np.asarray(old).dtype)
            if w.shape != np.shape(old):
                raise ValueError(f"set_weights: shape {w.shape} given for a weight {np.shape(old)}")
            new.append(w)
        self.params, self.state = tree_unflatten(treedef, new)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Write the weights (atomically, no pickle)."""
        if self.params is None:
            raise ValueError("save_weights: the model has no weights yet")
        serialization.save_params(filepath, {"params": self.params, "state": self.state})

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Read weights written by :meth:`save_weights` (or :meth:`save`)."""
        tree = serialization.load_params(filepath)
        if self.params is None:
            self.build()
        self.set_weights(tree_leaves((tree["params"], tree["state"])))

    def get_config(self) -> dict[str, Any]:
        """The layer configuration as JSON-able data (Keras layers only)."""
        layers = []
        for layer in self.layers:
            cls = type(layer)
            if not isinstance(layer, Module) or cls.__name__ not in layers_mod.KERAS_LAYERS:
                raise TypeError(
                    f"save: {layer!r} is not a keras.layers layer, so it cannot be described in "
                    "the file; save the weights with model.save_weights(path) and rebuild the "
                    "model in code"
                )
            config = {}
            for f in dataclasses.fields(layer):
                v = getattr(layer, f.name)
                if f.default is not dataclasses.MISSING and _same_value(v, f.default):
                    continue
                if not _json_able(v):
                    raise TypeError(
                        f"save: {cls.__name__}.{f.name}={v!r} cannot be written as data (use a "
                        "name such as 'relu'); or save the weights with model.save_weights(path)"
                    )
                config[f.name] = v
            layers.append({"class_name": cls.__name__, "config": config})
        return {"name": self.name, "layers": layers}

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the model (layers, weights, compile settings) to one file, atomically and
        without pickle; :func:`load_model` reads it back."""
        if self.params is None and self.module.example_input() is not None:
            self.build()
        if self.params is None:
            raise ValueError("save: the model has no weights yet (build or fit it first)")
        blob = {
            "format": _FORMAT,
            "config": json.dumps(self.get_config()),
            "compile": json.dumps(self._compile_config),
            "input_shape": list(self._input_shape or ()),
            "params": self.params,
            "state": self.state,
        }
        serialization.save_params(filepath, blob)


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _json_able(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_json_able(e) for e in v)
    return False


def _tuples(v: Any) -> Any:
    return tuple(_tuples(e) for e in v) if isinstance(v, list) else v


def load_model(filepath: str | os.PathLike) -> Sequential:
    """Read a model written by :meth:`Sequential.save` (no pickle; nothing is executed)."""
    tree = serialization.load_params(filepath)
    if not isinstance(tree, dict) or tree.get("format") != _FORMAT:
        raise ValueError(f"load_model: {os.fspath(filepath)!r} is not a saved keras model")
    config = json.loads(tree["config"])
    layers = []
    for entry in config["layers"]:
        cls = layers_mod.KERAS_LAYERS.get(entry["class_name"])
        if cls is None:
            raise ValueError(f"load_model: unknown layer class {entry['class_name']!r}")
        layers.append(cls(**{k: _tuples(v) for k, v in entry["config"].items()}))
    model = Sequential(layers, name=config.get("name"))
    model._build_from(np.zeros((1, *tree["input_shape"]), np.float32))
    model.set_weights(tree_leaves((tree["params"], tree["state"])))
    compile_config = json.loads(tree["compile"]) if tree.get("compile") else None
    if compile_config and compile_config.get("loss") and compile_config.get("optimizer"):
        opt = compile_config["optimizer"]
        if isinstance(opt, list):
            opt = getattr(optimizers_mod, opt[0])(**opt[1])
        model.compile(optimizer=opt, loss=compile_config["loss"], metrics=compile_config["metrics"])
    return model


def _as_arrays(name: str, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x {x.shape} and y {y.shape} must have one example per row (same first axis)"
        )
    if x.dtype == np.float64:
        x = x.astype(np.float32)  # weights are float32, as in Keras
    if y.dtype == np.float64:
        y = y.astype(np.float32)
    return x, y


def _print_epoch(epoch: int, epochs: int, steps: int, seconds: float, logs: dict) -> None:
    parts = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
    per_step = 1000 * seconds / max(steps, 1)
    print(
        f"Epoch {epoch + 1}/{epochs}\n{steps}/{steps} - {seconds:.1f}s {per_step:.0f}ms/step"
        f" - {parts}",
        file=sys.stdout,
        flush=True,
    )
