"""A Keras-like training loop over explicit parameters: :func:`fit`, :func:`evaluate`,
:func:`predict`.

>>> model = fg.nn.Sequential([fg.nn.Dense(10), fg.nn.relu, fg.nn.Dense(1)])
>>> params = model.init(fg.random.key(0), x_train[:1])
>>> params, history = fg.train.fit(model, params, x_train, y_train, loss="mse",
...                                optimizer=fg.optim.adam(1e-2), epochs=50, batch_size=32,
...                                validation_data=(x_val, y_val), metrics=["mae"])
>>> history.history["val_loss"][-1]; history.plot()
>>> fg.train.evaluate(model, params, x_test, y_test, loss="mse", metrics=["r2_score"])

Two ways to say what to minimise:

- a model and a loss: ``fit(model, params, x, y, loss=..., optimizer=...)``. ``model`` is a
  :class:`funcgrad.nn.Module` (called with ``key`` and ``train=True`` while training, so
  Dropout and BatchNorm work; BatchNorm's running statistics are threaded through ``state``)
  or any function ``apply(params, x)``; ``loss(predictions, y)`` is a function of
  :mod:`funcgrad.losses` or its name (``"mse"``, ``"sigmoid_binary_cross_entropy"``...).
  ``metrics`` (functions of :mod:`funcgrad.metrics` or names) are averaged over the epoch;
  ``"accuracy"`` with a binary cross-entropy loss means :func:`~funcgrad.metrics.binary_accuracy`.
- a loss function of the parameters: ``fit(loss_fn, params, *data, optimizer=...)`` with
  ``loss_fn(params, *batch) -> scalar`` (``has_aux=True``: ``(scalar, {name: value})``, the
  values logged as metrics). A ``key`` keyword of ``loss_fn`` receives a fresh key per step.

``fit`` returns ``(params, history)``: parameters are values, so the trained ones come back
(also as ``history.params``, with ``history.opt_state`` and ``history.state``).

Batches: each epoch shuffles the examples (with ``key``, ``fg.random.key(0)`` by default) and
cuts them into batches of ``batch_size``; the last batch is filled up with examples from the
start of the epoch's order, so every step has one shape (``jit`` compiles the step once, and
eager runs match jitted ones). ``jit=True`` (default) compiles the training step with
:func:`funcgrad.jit`: while numba compiles it in the background (seconds, once: it is cached
on disk for the next run) the first steps run on NumPy, and ``fit`` says so.

Progress: ``verbose=0`` is silent, ``1`` shows a tqdm bar over the epochs when tqdm is
installed and otherwise prints about ten epoch lines, ``2`` prints every epoch. The time
left is estimated from epochs that ran on the compiled step only, so compile time and
the slower first steps do not inflate it.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import losses as losses_mod
from funcgrad import metrics as metrics_mod
from funcgrad import optim, random
from funcgrad.api import jit as fg_jit
from funcgrad.api import value_and_grad
from funcgrad.distributed import DataParallel
from funcgrad.nn.layers import Module
from funcgrad.serialization import first_difference, keystr, load_params, save_params
from funcgrad.tree_util import tree_leaves

__all__ = ["History", "evaluate", "fit", "predict"]

_LOSSES: dict[str, Callable] = {
    "mse": losses_mod.mse,
    "mean_squared_error": losses_mod.mse,
    "mae": losses_mod.mae,
    "mean_absolute_error": losses_mod.mae,
    "huber": losses_mod.huber,
    "binary_cross_entropy": losses_mod.binary_cross_entropy,
    "sigmoid_binary_cross_entropy": losses_mod.sigmoid_binary_cross_entropy,
    "softmax_cross_entropy": losses_mod.softmax_cross_entropy,
}
_LOSSES["softmax_cross_entropy_with_integer_labels"] = (
    losses_mod.softmax_cross_entropy_with_integer_labels
)

_METRICS: dict[str, Callable] = {
    "accuracy": metrics_mod.accuracy,
    "binary_accuracy": metrics_mod.binary_accuracy,
    "mse": metrics_mod.mse,
    "rmse": metrics_mod.rmse,
    "mae": metrics_mod.mae,
    "r2_score": metrics_mod.r2_score,
    "r2": metrics_mod.r2_score,
}


class History:
    """What :func:`fit` recorded: ``history`` maps ``"loss"``, ``"val_loss"`` and metric
    names to per-epoch lists of floats; ``epoch`` lists the epochs; ``params``,
    ``opt_state`` and ``state`` are the final values."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: Any = None
        self.opt_state: Any = None
        self.state: Any = None

    def _record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History({len(self.epoch)} epochs: {last})"

    def plot(self, keys: Sequence[str] | None = None, ax: Any = None, logy: bool = False) -> Any:
        """Plot the curves (each metric with its ``val_`` twin) against the epoch; returns
        the Matplotlib axes. Needs matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib, which is not installed: pip install matplotlib "
                "(or plot history.history yourself)"
            ) from None
        if ax is None:
            _, ax = plt.subplots()
        for k in keys or list(self.history):
            ax.plot(self.epoch, self.history[k], label=k)
        ax.set_xlabel("epoch")
        if logy:
            ax.set_yscale("log")
        ax.legend()
        return ax


# ----------------------------------------------------------------------------------------
# Resolving what to train


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _resolve_loss(loss: Any) -> Callable:
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(
                f"fit: unknown loss {loss!r}; use one of {sorted(_LOSSES)} or a "
                "function loss(predictions, targets)"
            )
        return _LOSSES[loss]
    if not callable(loss):
        raise TypeError(f"fit: loss must be a function or a name, got {loss!r}")
    return loss


def _resolve_metrics(metrics: Sequence[Any], loss_fn: Callable | None) -> dict[str, Callable]:
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    out: dict[str, Callable] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in _METRICS:
                raise ValueError(
                    f"fit: unknown metric {m!r}; use one of {sorted(_METRICS)} or "
                    "a function metric(predictions, targets)"
                )
            fn = _METRICS[m]
            if m == "accuracy" and loss_fn is losses_mod.sigmoid_binary_cross_entropy:
                fn = lambda p, y: metrics_mod.binary_accuracy(p, y, threshold=0.0)
            elif m == "accuracy" and loss_fn is losses_mod.binary_cross_entropy:
                fn = metrics_mod.binary_accuracy
            out[m] = fn
        elif callable(m):
            out[_name(m)] = m
        else:
            raise TypeError(f"fit: a metric must be a function or a name, got {m!r}")
    return out


def _accepts_key(fn: Callable) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class _Task:
    """The pure functions of one fit/evaluate call: a training step and an evaluation."""

    def __init__(
        self,
        target: Any,
        loss: Any,
        metrics: Sequence[Any],
        optimizer: Any,
        has_aux: bool,
        state: Any,
    ) -> None:
        self.model_mode = loss is not None
        self.optimizer = optimizer
        self.has_aux = has_aux
        if self.model_mode:
            self.loss = _resolve_loss(loss)
            self.metrics = _resolve_metrics(metrics, self.loss)
            self.model = target
            self.is_module = isinstance(target, Module)
            self.stateful = bool(tree_leaves(state))
            if not callable(target):
                raise TypeError(f"fit: the model must be a Module or a function, got {target!r}")
        else:
            if metrics:
                raise ValueError(
                    "fit: metrics need predictions: pass a model with loss=..., or return the "
                    "metrics from the loss function as aux ({name: value}) with has_aux=True"
                )
            if not callable(target):
                raise TypeError(f"fit: expected a model or a loss function, got {target!r}")
            self.loss_fn = target
            self.loss_takes_key = _accepts_key(target)
            self.metrics = {}
            self.stateful = False
        #: ``fit(distributed=True)``: averages (grads, loss, logs, state) across processes.
        self.cross_process: Callable | None = None

    # -- the forward computation shared by training and evaluation
    def _forward(self, params: Any, state: Any, key: Any, batch: tuple, train: bool) -> tuple:
        """``(loss, (logs, new_state))``."""
        if not self.model_mode:
            kw = {"key": key} if self.loss_takes_key else {}
            out = self.loss_fn(params, *batch, **kw)
            if self.has_aux:
                value, aux = out
                return value, (dict(aux), state)
            return out, ({}, state)
        x, y = batch
        if self.stateful:
            preds, state = self.model.apply_with_state(params, state, x, key=key, train=train)
        elif self.is_module:
            preds = self.model.apply(params, x, key=key, train=train)
        else:
            preds = self.model(params, x)
        value = self.loss(preds, y)
        logs = {name: m(preds, y) for name, m in self.metrics.items()}
        return value, (logs, state)

    def train_step(self, params: Any, opt_state: Any, state: Any, key: Any, *batch: Any):
        def objective(p: Any) -> tuple:
            return self._forward(p, state, key, batch, True)

        (value, (logs, new_state)), grads = value_and_grad(objective, has_aux=True)(params)
        if self.cross_process is not None:  # one allreduce per step (distributed.DataParallel)
            grads, value, logs, new_state = self.cross_process(grads, value, logs, new_state)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        return params, opt_state, new_state, value, logs

    def eval_step(self, params: Any, state: Any, *batch: Any) -> tuple:
        value, (logs, _) = self._forward(params, state, None, batch, False)
        return value, logs


def _check_data(name: str, data: Sequence[Any], model_mode: bool) -> list[np.ndarray]:
    if not data:
        raise ValueError(f"{name}: no data given; pass the arrays after params (x, y)")
    arrays = [np.asarray(a) for a in data]
    if model_mode and len(arrays) != 2:
        raise ValueError(
            f"{name}: with a model and a loss, pass exactly two arrays (x, y); got {len(arrays)}"
        )
    n = {a.shape[0] if a.ndim else None for a in arrays}
    if len(n) != 1 or None in n:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(
            f"{name}: the data arrays must share their first (example) axis, got shapes {shapes}"
        )
    return arrays


def _initial_state(target: Any, loss: Any, state: Any, key: Any, x: np.ndarray) -> Any:
    """Fresh running statistics for a stateful Module when none were given."""
    if state is not None or loss is None or not isinstance(target, Module):
        return state
    _, fresh = target.init_with_state(key, x[:1])
    return fresh if tree_leaves(fresh) else None


# ----------------------------------------------------------------------------------------
# Progress


class _Progress:
    """Epoch lines or a tqdm bar, the compile notices, and an ETA without compile time.

    The ETA averages the epochs that ran wholly on the compiled step (``steady``): an epoch
    that started before the kernel was ready (interpreter tier, or a blocking compile) is
    left out; until one such epoch exists, all epochs are used and the ETA is marked ``~``.
    """

    def __init__(self, epochs: int, verbose: int) -> None:
        self.epochs = epochs
        self.verbose = verbose
        self.bar = None
        self.steady: list[float] = []
        self.all: list[float] = []
        self.compiling = False
        self.compile_t0 = 0.0
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=epochs,
                    unit="epoch",
                    file=sys.stdout,
                    # tqdm's own ETA would count the compile: ours is in the postfix.
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                )

    def say(self, text: str) -> None:
        if self.verbose == 0:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def step_tier(self, step: Any) -> None:
        """After a training step: announce a background compile, and its end."""
        tier = getattr(step, "tier", None)
        if tier is None:
            return
        now = tier()
        if now == "interpreter" and not self.compiling:
            self.compiling, self.compile_t0 = True, time.perf_counter()
            self.say(
                "funcgrad: compiling the training step in the background; the first steps "
                "run on NumPy meanwhile (slower). Once built, the kernel is cached on disk "
                "for the next run."
            )
        elif now == "kernel" and self.compiling:
            self.compiling = False
            took = time.perf_counter() - self.compile_t0
            self.say(
                f"funcgrad: training step compiled after {took:.1f} s; switched to the kernel."
            )

    def eta(self, epoch: int) -> str:
        left = self.epochs - epoch
        if left <= 0 or not self.all:
            return ""
        times = self.steady or self.all
        est = left * sum(times) / len(times)
        return ("" if self.steady else "~") + _fmt_seconds(est)

    def update(
        self, epoch: int, seconds: float, logs: dict[str, float], steady: bool = True
    ) -> None:
        self.all.append(seconds)
        if steady:
            self.steady.append(seconds)
        if self.verbose == 0:
            return
        if self.bar is not None:
            post = {k: f"{v:.4g}" for k, v in logs.items()}
            eta = self.eta(epoch)
            if eta:
                post["eta"] = eta
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
            return
        every = 1 if self.verbose >= 2 else max(1, self.epochs // 10)
        if epoch == 1 or epoch == self.epochs or epoch % every == 0:
            width = len(str(self.epochs))
            parts = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
            eta = self.eta(epoch)
            tail = f" - eta {eta}" if eta else ""
            print(
                f"Epoch {epoch:>{width}}/{self.epochs} - {seconds:.2f}s - {parts}{tail}", flush=True
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _on_kernel(step: Any) -> bool:
    """True when a jitted step runs its kernel (and so an epoch starting now is steady)."""
    tier = getattr(step, "tier", None)
    return tier is None or tier() == "kernel"


# ----------------------------------------------------------------------------------------
# Checkpoints (checkpoint_dir=)

_CKPT = re.compile(r"^ckpt-(\d{6,})\.safetensors$")


class _Checkpointer:
    """Every ``every`` epochs, the whole training state (params, optimizer state, model
    state, the RNG key, the history) goes to ``ckpt-EPOCH.safetensors`` in ``folder``; the
    ``keep`` newest files stay. Resuming restores the newest readable one, so the run
    continues exactly as if it had not stopped (the key fixes the shuffles and dropout)."""

    def __init__(self, folder: str | os.PathLike, every: int, keep: int) -> None:
        if every < 1 or keep < 1:
            raise ValueError(
                f"fit: need checkpoint_every >= 1 and keep_checkpoints >= 1, got {every}, {keep}"
            )
        self.folder = os.fspath(folder)
        self.every, self.keep = every, keep
        os.makedirs(self.folder, exist_ok=True)

    def _files(self) -> list[tuple[int, str]]:
        found = []
        for name in os.listdir(self.folder):
            m = _CKPT.match(name)
            if m:
                found.append((int(m.group(1)), os.path.join(self.folder, name)))
        return sorted(found)

    def save(
        self, epoch: int, params: Any, opt_state: Any, state: Any, key: Any, history: History
    ) -> None:

        tree = {
            "epoch": epoch,
            "params": params,
            "opt_state": opt_state,
            "state": state,
            "key": np.asarray(key),
            "history": {k: list(map(float, v)) for k, v in history.history.items()},
            "epochs_done": list(history.epoch),
        }
        save_params(os.path.join(self.folder, f"ckpt-{epoch:06d}.safetensors"), tree)
        for _, path in self._files()[: -self.keep]:
            try:
                os.unlink(path)
            except OSError:
                pass

    def restore(self, params: Any, opt_state: Any) -> dict | None:
        """The newest checkpoint that loads and fits ``params``/``opt_state`` (None if none)."""

        for epoch, path in reversed(self._files()):
            try:
                tree = load_params(path)
            except ValueError as e:
                warnings.warn(f"fit: skipping the unreadable checkpoint {path}: {e}", stacklevel=3)
                continue
            for name, like in (("params", params), ("opt_state", opt_state)):
                diff = first_difference(like, tree.get(name), ())
                if diff is not None:
                    raise ValueError(
                        f"fit: the checkpoint {path} does not fit this model: its {name} differ "
                        f"at {keystr(diff[0])} ({diff[1]}); use another checkpoint_dir or "
                        "resume=False"
                    )
            if tree.get("epoch") != epoch:
                warnings.warn(f"fit: skipping the mislabelled checkpoint {path}", stacklevel=3)
                continue
            return tree
        return None


# ----------------------------------------------------------------------------------------
# The public loop


def fit(
    target: Any,
    params: Any,
    *data: Any,
    optimizer: optim.GradientTransformation,
    loss: Any = None,
    metrics: Sequence[Any] = (),
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    validation_data: Sequence[Any] | None = None,
    key: Any = None,
    state: Any = None,
    opt_state: Any = None,
    has_aux: bool = False,
    jit: bool = True,
    verbose: int = 1,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 3,
    resume: bool = True,
    distributed: bool = False,
) -> tuple[Any, History]:
    """Train ``params`` for ``epochs`` passes over ``data``; returns ``(params, history)``.

    See the module docstring for the two forms (model + ``loss``, or a loss function).
    ``validation_data``: a tuple of arrays like ``data``, evaluated after every epoch into
    ``val_``-prefixed entries. ``state``: the model state (BatchNorm statistics; fresh ones
    if omitted). ``opt_state``: resume an optimizer. ``key``: shuffling, dropout.

    ``checkpoint_dir``: every ``checkpoint_every`` epochs (and after the last) the training
    state is saved there as ``ckpt-EPOCH.safetensors``, keeping the ``keep_checkpoints``
    newest; with ``resume=True`` a later call continues from the newest one and ends exactly
    where an uninterrupted run would (same parameters, same history). In a distributed run
    only process 0 writes them.

    ``distributed=True``: data-parallel over the processes of an MPI job (``mpiexec -n 4
    python train.py``; see :class:`funcgrad.distributed.DataParallel`): ``batch_size`` is
    the global batch, each process reads its share of every batch, and the result equals
    a one-process run with the same arguments (up to float rounding).
    """
    if not isinstance(optimizer, optim.GradientTransformation):
        raise TypeError(
            f"fit: optimizer must be a funcgrad.optim optimizer (e.g. "
            f"optim.adam(1e-3)), got {optimizer!r}"
        )
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"fit: need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    arrays = _check_data("fit", data, loss is not None)
    key = random.key(0) if key is None else key
    key, init_key = random.split(key)
    state = _initial_state(target, loss, state, init_key, arrays[0])
    task = _Task(target, loss, metrics, optimizer, has_aux, state)
    val_arrays = None
    if validation_data is not None:
        val_arrays = _check_data("fit (validation_data)", tuple(validation_data), loss is not None)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    dp = None
    if distributed:
        dp = DataParallel(min(batch_size, arrays[0].shape[0]))
        task.cross_process = dp.average
        params, opt_state, state = dp.synchronize((params, opt_state, state))
        verbose = verbose if dp.is_main else 0
    step = fg_jit(task.train_step) if jit else task.train_step
    eval_step = fg_jit(task.eval_step) if jit else task.eval_step

    n = arrays[0].shape[0]
    bs = min(batch_size, n)
    n_batches = math.ceil(n / bs)
    history = History()
    first_epoch = 1
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = _Checkpointer(checkpoint_dir, checkpoint_every, keep_checkpoints)
        saved = ckpt.restore(params, opt_state) if resume else None
        if saved is not None:
            params, opt_state, state = saved["params"], saved["opt_state"], saved["state"]
            key, first_epoch = saved["key"], saved["epoch"] + 1
            history.history = {k: list(v) for k, v in saved["history"].items()}
            history.epoch = list(saved["epochs_done"])
    progress = _Progress(epochs, verbose)
    try:
        for epoch in range(first_epoch, epochs + 1):
            t0 = time.perf_counter()
            steady = _on_kernel(step)
            key, k_perm, k_steps = random.split(key, 3)
            order = np.asarray(random.permutation(k_perm, n)) if shuffle else np.arange(n)
            order = np.concatenate([order, order[: n_batches * bs - n]]).reshape(n_batches, bs)
            step_keys = random.split(k_steps, n_batches)
            totals: dict[str, float] = {}
            for b in range(n_batches):
                rows, step_key = order[b], step_keys[b]
                if dp is not None:  # this process's share of the global batch
                    rows, step_key = dp.shard(rows), dp.fold_key(step_key)
                batch = [a[rows] for a in arrays]
                params, opt_state, state, value, logs = step(
                    params, opt_state, state, step_key, *batch
                )
                if b == 0 or progress.compiling:
                    progress.step_tier(step)
                for k, v in {"loss": value, **logs}.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
            epoch_logs = {k: v / n_batches for k, v in totals.items()}
            if val_arrays is not None:
                value, logs = eval_step(params, state, *val_arrays)
                epoch_logs["val_loss"] = float(value)
                epoch_logs.update({f"val_{k}": float(v) for k, v in logs.items()})
            history._record(epoch, epoch_logs)
            progress.update(epoch, time.perf_counter() - t0, epoch_logs, steady)
            if dp is not None:
                dp.check(params, opt_state, state, epoch)
            if (
                ckpt is not None
                and (dp is None or dp.is_main)
                and (epoch % ckpt.every == 0 or epoch == epochs)
            ):
                ckpt.save(epoch, params, opt_state, state, key, history)
    except BaseException as e:
        if dp is not None:  # tell the other processes, so they stop instead of waiting
            dp.failed(e)
        raise
    finally:
        progress.close()
    history.params, history.opt_state, history.state = params, opt_state, state
    return params, history


def evaluate(
    target: Any,
    params: Any,
    *data: Any,
    loss: Any = None,
    metrics: Sequence[Any] = (),
    batch_size: int | None = None,
    state: Any = None,
    has_aux: bool = False,
    jit: bool = False,
) -> dict[str, float]:
    """``{"loss": ..., metric: ...}`` on ``data`` (inference mode: ``train=False``).

    ``batch_size=None`` evaluates everything at once (exact for every metric); with a
    ``batch_size`` the per-batch values are averaged, weighted by batch size."""
    arrays = _check_data("evaluate", data, loss is not None)
    task = _Task(target, loss, metrics, None, has_aux, state)
    step = fg_jit(task.eval_step) if jit else task.eval_step
    n = arrays[0].shape[0]
    bs = n if batch_size is None else max(1, min(batch_size, n))
    totals: dict[str, float] = {}
    for start in range(0, n, bs):
        batch = [a[start : start + bs] for a in arrays]
        value, logs = step(params, state, *batch)
        weight = batch[0].shape[0] / n
        for k, v in {"loss": value, **logs}.items():
            totals[k] = totals.get(k, 0.0) + weight * float(v)
    return totals


def predict(
    model: Any,
    params: Any,
    x: Any,
    *,
    batch_size: int | None = None,
    state: Any = None,
    jit: bool = False,
) -> np.ndarray:
    """The model's outputs for ``x`` in inference mode, batch by batch if ``batch_size``."""
    if isinstance(model, Module):
        if tree_leaves(state):
            run = lambda p, s, xb: model.apply_with_state(p, s, xb)[0]
        else:
            run = lambda p, s, xb: model.apply(p, xb)
    else:
        run = lambda p, s, xb: model(p, xb)
    run = fg_jit(run) if jit else run
    x = np.asarray(x)
    if batch_size is None:
        return np.asarray(run(params, state, x))
    outs = [
        np.asarray(run(params, state, x[i : i + batch_size]))
        for i in range(0, x.shape[0], batch_size)
    ]
    return np.concatenate(outs, axis=0)
