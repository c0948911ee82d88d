"""funcgrad.optim against hand-written NumPy optimizers (float64 references of the published
update rules, as Optax defines them) and closed-form schedules. Eager only (no compiles:
the jitted training step is covered in tests/test_train.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import optim
from funcgrad.tree_util import tree_leaves, tree_map


def make_params(seed=0):
    r = np.random.default_rng(seed)
    return {"w": r.normal(size=(3, 2)).astype(np.float32), "b": r.normal(size=2).astype(np.float32)}


def grad_seq(steps, seed=1):
    r = np.random.default_rng(seed)
    return [
        {"w": r.normal(size=(3, 2)).astype(np.float32), "b": r.normal(size=2).astype(np.float32)}
        for _ in range(steps)
    ]


def run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


def run_numpy(step_fn, params, grads):
    """``step_fn(p, g, t, slots) -> p`` per leaf, t = 1, 2, ...; float64 throughout."""
    out = {}
    for k in params:
        p = params[k].astype(np.float64)
        slots: dict = {}
        for t, g in enumerate(grads, start=1):
            p = step_fn(p, g[k].astype(np.float64), t, slots)
        out[k] = p
    return out


def assert_params_close(got, want, rtol=1e-5, atol=1e-6):
    for k in want:
        assert got[k].dtype == np.float32, f"{k} lost its dtype"
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


def np_adam(lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    def step(p, g, t, s):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        v_hat = s["v"] / (1 - b2**t)
        return p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)

    return step


def test_adam_matches_numpy():
    params, grads = make_params(), grad_seq(6)
    got, state = run(optim.adam(1e-2), params, grads)
    assert_params_close(got, run_numpy(np_adam(1e-2), params, grads))
    adam_state = state[0]
    assert isinstance(adam_state, optim.ScaleByAdamState)
    assert adam_state.count.dtype == np.int32 and int(adam_state.count) == 6
    assert adam_state.mu["w"].dtype == np.float32


def test_adamw_matches_numpy_and_mask():
    params, grads = make_params(2), grad_seq(5, 3)
    got, _ = run(optim.adamw(1e-2, weight_decay=0.1), params, grads)
    assert_params_close(got, run_numpy(np_adam(1e-2, wd=0.1), params, grads))
    # mask: only the kernel decays
    mask = lambda p: tree_map(lambda x: x.ndim > 1, p)
    got, _ = run(optim.adamw(1e-2, weight_decay=0.1, mask=mask), params, grads)
    plain = run_numpy(np_adam(1e-2), params, grads)
    decayed = run_numpy(np_adam(1e-2, wd=0.1), params, grads)
    assert_params_close(got, {"w": decayed["w"], "b": plain["b"]})


@pytest.mark.parametrize("momentum,nesterov", [(None, False), (0.9, False), (0.9, True)])
def test_sgd_matches_numpy(momentum, nesterov):
    params, grads = make_params(4), grad_seq(5, 5)
    got, _ = run(optim.sgd(0.1, momentum, nesterov), params, grads)

    def step(p, g, t, s):
        if momentum is None:
            return p - 0.1 * g
        s["v"] = g + momentum * s.get("v", 0.0)
        return p - 0.1 * ((g + momentum * s["v"]) if nesterov else s["v"])

    assert_params_close(got, run_numpy(step, params, grads))


@pytest.mark.parametrize("centered,momentum", [(False, None), (True, None), (False, 0.9)])
def test_rmsprop_matches_numpy(centered, momentum):
    params, grads = make_params(6), grad_seq(5, 7)
    got, _ = run(
        optim.rmsprop(1e-2, decay=0.9, centered=centered, momentum=momentum), params, grads
    )

    def step(p, g, t, s):
        s["nu"] = 0.9 * s.get("nu", 0.0) + 0.1 * g * g
        s["mu"] = 0.9 * s.get("mu", 0.0) + 0.1 * g
        denom = s["nu"] - s["mu"] ** 2 if centered else s["nu"]
        u = -1e-2 * g / np.sqrt(denom + 1e-8)
        if momentum is not None:
            s["tr"] = u + momentum * s.get("tr", 0.0)
            u = s["tr"]
        return p + u

    assert_params_close(got, run_numpy(step, params, grads), rtol=1e-4)


def test_adagrad_matches_numpy():
    params, grads = make_params(8), grad_seq(5, 9)
    got, _ = run(optim.adagrad(0.1), params, grads)

    def step(p, g, t, s):
        s["acc"] = s.get("acc", 0.1) + g * g
        return p - 0.1 * g / np.sqrt(s["acc"] + 1e-7)

    assert_params_close(got, run_numpy(step, params, grads))


def test_clip_by_global_norm_and_global_norm():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    assert float(optim.global_norm(g)) == pytest.approx(5.0)
    clip = optim.clip_by_global_norm(1.0)
    u, _ = clip.update(g, clip.init(g))
    np.testing.assert_allclose(u["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(u["b"], [[0.8]], rtol=1e-6)
    assert u["a"].dtype == np.float32
    u, _ = optim.clip_by_global_norm(10.0).update(g, optim.EmptyState())
    np.testing.assert_array_equal(u["a"], g["a"])
    u, _ = optim.clip(0.5).update(g, optim.EmptyState())
    np.testing.assert_array_equal(u["b"], [[0.5]])


def test_chain_states_are_pytrees_and_checked():
    params = make_params()
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
    state = opt.init(params)
    assert isinstance(state, tuple) and isinstance(state[0], optim.EmptyState)
    leaves = tree_leaves(state)
    assert all(isinstance(x, np.ndarray) for x in leaves) and len(leaves) == 1 + 2 * 2
    rebuilt = fg.tree_util.tree_unflatten(fg.tree_util.tree_structure(state), leaves)
    assert type(rebuilt[1][0]) is optim.ScaleByAdamState
    with pytest.raises(ValueError, match="state has 1 entries for 2"):
        opt.update(params, state[:1], params)
    with pytest.raises(TypeError, match="GradientTransformation"):
        optim.chain(optim.sgd(0.1), "adam")
    with pytest.raises(ValueError, match="needs the current parameters"):
        w = optim.adamw(1e-3)
        w.update(params, w.init(params))


def test_apply_updates_keeps_dtypes_and_returns_fresh_arrays():
    p = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float64)}
    u = {"a": np.full(3, 0.5, np.float64), "b": np.full(2, 0.25, np.float64)}
    out = optim.apply_updates(p, u)
    assert out["a"].dtype == np.float32 and out["b"].dtype == np.float64
    np.testing.assert_array_equal(out["a"], 1.5)
    out["a"][0] = 7
    assert p["a"][0] == 1


def test_adam_minimises_a_quadratic():
    target = np.array([1.0, -2.0, 3.0], np.float32)
    loss = lambda p: fg.numpy.sum((p["x"] - target) ** 2)
    p = {"x": np.zeros(3, np.float32)}
    opt = optim.adam(0.1)
    s = opt.init(p)
    for _ in range(300):
        g = fg.grad(loss)(p)
        u, s = opt.update(g, s, p)
        p = optim.apply_updates(p, u)
    np.testing.assert_allclose(p["x"], target, atol=1e-2)


# ----------------------------------------------------------------------------------------
# Schedules


def values(schedule, steps):
    return np.array([float(schedule(np.int32(t))) for t in steps])


def test_schedules_closed_forms():
    np.testing.assert_allclose(values(optim.constant_schedule(0.3), [0, 10]), [0.3, 0.3])
    lin = optim.linear_schedule(1.0, 0.0, transition_steps=10, transition_begin=5)
    np.testing.assert_allclose(values(lin, [0, 5, 10, 15, 100]), [1.0, 1.0, 0.5, 0.0, 0.0])
    poly = optim.polynomial_schedule(1.0, 0.0, power=2, transition_steps=4)
    np.testing.assert_allclose(values(poly, [0, 2, 4]), [1.0, 0.25, 0.0])
    exp = optim.exponential_decay(2.0, transition_steps=10, decay_rate=0.5)
    np.testing.assert_allclose(values(exp, [0, 5, 10, 20]), [2.0, 2 * 0.5**0.5, 1.0, 0.5])
    stair = optim.exponential_decay(2.0, 10, 0.5, staircase=True, end_value=0.6)
    np.testing.assert_allclose(values(stair, [9, 10, 25, 100]), [2.0, 1.0, 0.6, 0.6])
    cos = optim.cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
    expect = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / 100)) for t in (0, 25, 50, 100)]
    np.testing.assert_allclose(values(cos, [0, 25, 50, 100]), expect, rtol=1e-6)
    np.testing.assert_allclose(values(cos, [1000]), [0.1], rtol=1e-6)
    wc = optim.warmup_cosine_decay_schedule(
        0.0, 1.0, warmup_steps=10, decay_steps=110, end_value=0.01
    )
    np.testing.assert_allclose(
        values(wc, [0, 5, 10, 60, 110, 500]),
        [0.0, 0.5, 1.0, 0.01 + 0.99 * 0.5, 0.01, 0.01],
        rtol=1e-6,
        atol=1e-9,
    )
    pw = optim.piecewise_constant_schedule(1.0, {5: 0.5, 10: 0.1})
    np.testing.assert_allclose(values(pw, [0, 4, 5, 9, 10, 50]), [1, 1, 0.5, 0.5, 0.05, 0.05])
    joined = optim.join_schedules([optim.constant_schedule(1.0), lambda t: t * 1.0], [3])
    np.testing.assert_allclose(values(joined, [0, 2, 3, 5]), [1, 1, 0, 2])
    with pytest.raises(ValueError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)


def test_schedule_as_learning_rate():
    sched = optim.linear_schedule(0.1, 0.0, transition_steps=4)
    params, grads = make_params(10), grad_seq(5, 11)
    got, state = run(optim.sgd(sched), params, grads)

    def step(p, g, t, s):
        return p - float(sched(np.int32(t - 1))) * g

    assert_params_close(got, run_numpy(step, params, grads))
    assert int(state[1].count) == 5
    # adam with a schedule: the step size scales Adam's direction
    got, _ = run(optim.adam(optim.constant_schedule(1e-2)), params, grads)
    assert_params_close(got, run_numpy(np_adam(1e-2), params, grads))
