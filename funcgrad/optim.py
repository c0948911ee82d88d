"""Gradient transformations, as Optax: optimizers are pairs of pure functions.

An optimizer is a :class:`GradientTransformation` ``(init, update)``:
``state = opt.init(params)`` and ``updates, state = opt.update(grads, state, params)``; then
``params = apply_updates(params, updates)`` is the only place parameters change. States are
NamedTuples of arrays (pytrees), so a whole training step can be ``jit``-ed. Optimizers are
chains of small transformations (``adam = chain(scale_by_adam(...),
scale_by_learning_rate(lr))``); names, signatures and defaults are Optax's.

>>> opt = adam(1e-3)
>>> state = opt.init(params)
>>> grads = fg.grad(loss)(params, x, y)
>>> updates, state = opt.update(grads, state, params)
>>> params = apply_updates(params, updates)

A learning rate may be a number or a schedule (a function of the step count, e.g.
``warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000)``). Updates keep each parameter's
dtype (float32 stays float32, also where a schedule or bias correction computes in float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.tree_util import tree_leaves, tree_map, tree_structure

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "ScaleByAdamState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "ScaleByScheduleState",
    "TraceState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "global_norm",
    "identity",
    "join_schedules",
    "linear_schedule",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_stddev",
    "sgd",
    "trace",
]

Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[Any], Any]
ScalarOrSchedule = float | Schedule


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates,
    state)``, both pure."""

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


class ScaleByAdamState(NamedTuple):
    count: Any  # int32 step count
    mu: Updates
    nu: Updates


class ScaleByScheduleState(NamedTuple):
    count: Any


class TraceState(NamedTuple):
    trace: Params


class ScaleByRmsState(NamedTuple):
    nu: Updates


class ScaleByRmsWithCountState(NamedTuple):
    count: Any
    nu: Updates


class ScaleByRStdDevState(NamedTuple):
    mu: Updates
    nu: Updates


class ScaleByRStdDevWithCountState(NamedTuple):
    count: Any
    mu: Updates
    nu: Updates


class ScaleByRssState(NamedTuple):
    sum_of_squares: Updates


# ----------------------------------------------------------------------------------------
# Helpers


def _zeros_like(tree: Any, dtype: Any = None) -> Any:
    return tree_map(lambda p: fnp.zeros_like(p, dtype=dtype), tree)


def _full_like(tree: Any, value: float) -> Any:
    return tree_map(lambda p: fnp.full_like(p, value), tree)


def _count() -> np.ndarray:
    return np.zeros((), np.int32)


def _increment(count: Any) -> Any:
    """``count + 1``, saturating at the int32 maximum (as Optax)."""
    top = np.iinfo(np.int32).max
    return fnp.where(count < top, count + np.int32(1), np.int32(top))


def _cast(x: Any, dtype: Any) -> Any:
    x = fnp.asarray(x)
    return x if x.dtype == dtype else x.astype(dtype)


def _bias_correction(moment: Any, decay: float, count: Any) -> Any:
    """``moment / (1 - decay**count)`` leaf by leaf, in each leaf's dtype."""
    correction = 1 - decay ** fnp.asarray(count)
    return tree_map(lambda m: m / _cast(correction, m.dtype), moment)


def _as_dtype_tree(tree: Any, dtype: Any) -> Any:
    return tree if dtype is None else tree_map(lambda t: _cast(t, np.dtype(dtype)), tree)


def _need_params(name: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{name}: needs the current parameters; call opt.update(grads, state, params)"
        )


# ----------------------------------------------------------------------------------------
# Combinators and basic transformations


def identity() -> GradientTransformation:
    """Leaves updates unchanged."""
    return GradientTransformation(lambda params: EmptyState(), lambda u, s, p=None: (u, s))


def chain(*args: GradientTransformation) -> GradientTransformation:
    """Apply the transformations in order; the state is a tuple of their states."""
    transforms = tuple(args)
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"chain: argument {i} is {t!r}, not a GradientTransformation")

    def init_fn(params: Params) -> tuple:
        return tuple(t.init(params) for t in transforms)

    def update_fn(updates: Updates, state: tuple, params: Params = None) -> tuple:
        if len(state) != len(transforms):
            raise ValueError(
                f"chain: the state has {len(state)} entries for {len(transforms)} "
                "transformations; use the state that this optimizer's init returned"
            )
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init_fn, update_fn)


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by ``step_size``."""

    def update_fn(updates: Updates, state: EmptyState, params: Params = None) -> tuple:
        return tree_map(lambda g: _cast(step_size, g.dtype) * g, updates), state

    return GradientTransformation(lambda params: EmptyState(), update_fn)


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)``, ``count`` the number of updates so far."""

    def init_fn(params: Params) -> ScaleByScheduleState:
        return ScaleByScheduleState(count=_count())

    def update_fn(updates: Updates, state: ScaleByScheduleState, params: Params = None):
        step_size = fnp.asarray(step_size_fn(state.count))
        updates = tree_map(lambda g: _cast(step_size, g.dtype) * g, updates)
        return updates, ScaleByScheduleState(count=_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply updates by ``-learning_rate`` (gradient *descent*); a schedule is evaluated
    at the step count."""
    m = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: m * fnp.asarray(learning_rate(count)))
    return scale(m * learning_rate)


def trace(
    decay: float, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Momentum: ``t = g + decay * t``; the update is ``t`` (or ``g + decay * t`` with
    ``nesterov``)."""

    def init_fn(params: Params) -> TraceState:
        return TraceState(trace=_zeros_like(params, accumulator_dtype))

    def update_fn(updates: Updates, state: TraceState, params: Params = None) -> tuple:
        f = lambda g, t: g + decay * t
        new_trace = tree_map(f, updates, state.trace)
        updates = tree_map(f, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(trace=_as_dtype_tree(new_trace, accumulator_dtype))

    return GradientTransformation(init_fn, update_fn)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam's scaling: bias-corrected ``mu_hat / (sqrt(nu_hat + eps_root) + eps)``."""

    def init_fn(params: Params) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=_count(), mu=_zeros_like(params, mu_dtype), nu=_zeros_like(params)
        )

    def update_fn(updates: Updates, state: ScaleByAdamState, params: Params = None) -> tuple:
        mu = tree_map(lambda g, t: (1 - b1) * g + b1 * t, updates, state.mu)
        nu = tree_map(lambda g, t: (1 - b2) * (g * g) + b2 * t, updates, state.nu)
        count = _increment(state.count)
        if nesterov:
            c1 = 1 - b1 ** fnp.asarray(_increment(count))
            c0 = 1 - b1 ** fnp.asarray(count)
            mu_hat = tree_map(
                lambda m, g: b1 * m / _cast(c1, m.dtype) + (1 - b1) * g / _cast(c0, g.dtype),
                mu,
                updates,
            )
        else:
            mu_hat = _bias_correction(mu, b1, count)
        nu_hat = _bias_correction(nu, b2, count)
        updates = tree_map(lambda m, v: m / (fnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return updates, ScaleByAdamState(count=count, mu=_as_dtype_tree(mu, mu_dtype), nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp's scaling: ``g / sqrt(nu + eps)`` with ``nu`` an EMA of ``g**2``."""

    def init_fn(params: Params) -> Any:
        nu = _full_like(params, initial_scale)
        return ScaleByRmsWithCountState(_count(), nu) if bias_correction else ScaleByRmsState(nu)

    def update_fn(updates: Updates, state: Any, params: Params = None) -> tuple:
        nu = tree_map(lambda g, t: (1 - decay) * (g * g) + decay * t, updates, state.nu)
        if bias_correction:
            count = _increment(state.count)
            nu_hat = _bias_correction(nu, decay, count)
        else:
            nu_hat = nu
        if eps_in_sqrt:
            updates = tree_map(lambda g, n: g * lax.rsqrt(n + eps), updates, nu_hat)
        else:
            updates = tree_map(lambda g, n: g / (fnp.sqrt(n) + eps), updates, nu_hat)
        new = ScaleByRmsWithCountState(count, nu) if bias_correction else ScaleByRmsState(nu)
        return updates, new

    return GradientTransformation(init_fn, update_fn)


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centred RMSProp's scaling: ``g / sqrt(nu - mu**2 + eps)``."""

    def init_fn(params: Params) -> Any:
        mu, nu = _zeros_like(params), _full_like(params, initial_scale)
        if bias_correction:
            return ScaleByRStdDevWithCountState(_count(), mu, nu)
        return ScaleByRStdDevState(mu, nu)

    def update_fn(updates: Updates, state: Any, params: Params = None) -> tuple:
        mu = tree_map(lambda g, t: (1 - decay) * g + decay * t, updates, state.mu)
        nu = tree_map(lambda g, t: (1 - decay) * (g * g) + decay * t, updates, state.nu)
        if bias_correction:
            count = _increment(state.count)
            mu_hat, nu_hat = _bias_correction(mu, decay, count), _bias_correction(nu, decay, count)
        else:
            mu_hat, nu_hat = mu, nu
        if eps_in_sqrt:
            f = lambda g, m, n: g * lax.rsqrt(n - m * m + eps)
        else:
            f = lambda g, m, n: g / (fnp.sqrt(n - m * m) + eps)
        updates = tree_map(f, updates, mu_hat, nu_hat)
        if bias_correction:
            return updates, ScaleByRStdDevWithCountState(count, mu, nu)
        return updates, ScaleByRStdDevState(mu, nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """AdaGrad's scaling: ``g / sqrt(sum of all g**2 so far + eps)``."""

    def init_fn(params: Params) -> ScaleByRssState:
        return ScaleByRssState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update_fn(updates: Updates, state: ScaleByRssState, params: Params = None) -> tuple:
        sos = tree_map(lambda g, t: g * g + t, updates, state.sum_of_squares)
        inv = tree_map(lambda t: fnp.where(t > 0, lax.rsqrt(t + eps), fnp.zeros_like(t)), sos)
        return tree_map(lambda s, g: s * g, inv, updates), ScaleByRssState(sum_of_squares=sos)

    return GradientTransformation(init_fn, update_fn)


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates (decoupled weight decay). ``mask``: a
    pytree of bools shaped like the parameters, or a function of the parameters returning
    one; only leaves marked ``True`` decay (e.g. ``lambda p: tree_map(lambda x: x.ndim > 1,
    p)`` to skip biases)."""

    def update_fn(updates: Updates, state: EmptyState, params: Params = None) -> tuple:
        _need_params("add_decayed_weights", params)
        if mask is None:
            return tree_map(lambda g, p: g + weight_decay * p, updates, params), state
        m = mask(params) if callable(mask) else mask
        if tree_structure(m) != tree_structure(params):
            raise ValueError(
                "add_decayed_weights: mask must have the structure of the parameters "
                f"({tree_structure(params)}), got {tree_structure(m)}"
            )
        decay = lambda g, p, on: g + weight_decay * p if on else g
        return tree_map(decay, updates, params, m), state

    return GradientTransformation(lambda params: EmptyState(), update_fn)


def global_norm(updates: Updates) -> Any:
    """``sqrt(sum of squares of every leaf)``."""
    leaves = tree_leaves(updates)
    if not leaves:
        return np.zeros((), np.float32)
    total = sum(fnp.sum(fnp.square(x)) for x in leaves)
    return fnp.sqrt(total)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale the updates down to global norm ``max_norm`` when they exceed it."""

    def update_fn(updates: Updates, state: EmptyState, params: Params = None) -> tuple:
        g_norm = global_norm(updates)
        keep = g_norm < max_norm

        def clip_leaf(t: Any) -> Any:
            return fnp.where(keep, t, (t / _cast(g_norm, t.dtype)) * max_norm)

        return tree_map(clip_leaf, updates), state

    return GradientTransformation(lambda params: EmptyState(), update_fn)


def clip(max_delta: float) -> GradientTransformation:
    """Clip every update entry to ``[-max_delta, max_delta]``."""

    def update_fn(updates: Updates, state: EmptyState, params: Params = None) -> tuple:
        return tree_map(lambda g: fnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(lambda params: EmptyState(), update_fn)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf, keeping each parameter's dtype."""
    return tree_map(lambda p, u: _cast(fnp.asarray(p) + u, fnp.asarray(p).dtype), params, updates)


# ----------------------------------------------------------------------------------------
# Optimizers


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent, with optional (Nesterov) momentum."""
    return chain(
        trace(momentum, nesterov, accumulator_dtype) if momentum is not None else identity(),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba); ``nesterov=True`` gives NAdam. The learning rate defaults to
    1e-3, Keras's and PyTorch's default."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter): the decay is added after the
    Adam scaling and scaled by the learning rate."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp (``centered`` divides by the standard deviation rather than the RMS)."""
    scaling = scale_by_stddev if centered else scale_by_rms
    return chain(
        scaling(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov) if momentum is not None else identity(),
    )


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """AdaGrad."""
    return chain(
        scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )


# ----------------------------------------------------------------------------------------
# Schedules: functions of the step count (an int32 array, traced under jit)


def constant_schedule(value: float) -> Schedule:
    """``value`` at every step."""
    return lambda count: value


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """From ``init_value`` to ``end_value`` over ``transition_steps`` steps (after
    ``transition_begin``), along ``(1 - t)**power``; then ``end_value``."""
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count: Any) -> Any:
        t = fnp.clip(fnp.asarray(count) - transition_begin, 0, transition_steps)
        frac = 1 - t / transition_steps
        return (init_value - end_value) * frac**power + end_value

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear from ``init_value`` to ``end_value`` over ``transition_steps`` steps."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """``init_value``, multiplied by ``scale`` from each step ``boundary`` on."""
    items = sorted((boundaries_and_scales or {}).items())

    def schedule(count: Any) -> Any:
        v = fnp.asarray(init_value, dtype=np.float64)
        for boundary, s in items:
            v = fnp.where(fnp.asarray(count) < boundary, v, v * s)
        return v

    return schedule


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """``init_value * decay_rate ** ((count - transition_begin) / transition_steps)``
    (``floor`` of the exponent with ``staircase``), bounded by ``end_value`` if given."""
    if transition_steps <= 0:
        return constant_schedule(init_value)
    if decay_rate == 0:
        raise ValueError("exponential_decay: decay_rate must not be 0")

    def schedule(count: Any) -> Any:
        steps = fnp.asarray(count) - transition_begin
        p = steps / transition_steps
        if staircase:
            p = fnp.floor(p)
        value = fnp.where(steps <= 0, init_value, init_value * fnp.power(decay_rate, p))
        if end_value is not None:
            bound = fnp.maximum if decay_rate < 1.0 else fnp.minimum
            value = bound(value, end_value)
        return value

    return schedule


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``."""
    if decay_steps <= 0:
        raise ValueError(f"cosine_decay_schedule: decay_steps must be > 0, got {decay_steps}")

    def schedule(count: Any) -> Any:
        t = fnp.minimum(fnp.asarray(count), decay_steps)
        cosine = 0.5 * (1 + fnp.cos(math.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[i]`` from ``boundaries[i-1]`` on, each started at its own step 0."""
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"join_schedules: {len(schedules)} schedules need {len(schedules) - 1} boundaries, "
            f"got {len(boundaries)}"
        )

    def schedule(step: Any) -> Any:
        step = fnp.asarray(step)
        out = schedules[0](step)
        for boundary, sched in zip(boundaries, schedules[1:], strict=True):
            out = fnp.where(step < boundary, out, sched(step - boundary))
        return out

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine
    decay to ``end_value`` by step ``decay_steps`` (which counts the warm-up)."""
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )
