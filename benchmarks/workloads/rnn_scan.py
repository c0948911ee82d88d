"""An RNN over a sequence with ``scan``: loss and gradient (forward and backward), jitted.

``h_t = tanh(x_t @ wx + h_{t-1} @ wh + b)`` with hidden size 32, input size 32, batch 16,
1,000 steps (100 with ``--quick``), float32; the loss is the mean of ``h_t ** 2`` over all
steps. Every implementation computes ``value_and_grad`` of the loss with respect to
``(wx, wh, b)``: funcgrad ``jit(value_and_grad(...))`` over ``lax.scan`` (one kernel: a
compiled forward loop and a compiled backward loop), JAX the same with ``jax.lax.scan``,
PyTorch a Python loop with autograd, and ``numpy`` hand-written backpropagation through
time (the reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import

HIDDEN, INPUT, BATCH = 32, 32, 16


def _data(quick: bool) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    steps = 100 if quick else 1000
    rng = np.random.default_rng(0)
    params = {
        "wx": (rng.standard_normal((INPUT, HIDDEN)) / np.sqrt(INPUT)).astype(np.float32),
        "wh": (rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32),
        "b": np.zeros(HIDDEN, np.float32),
    }
    xs = rng.standard_normal((steps, BATCH, INPUT)).astype(np.float32)
    h0 = np.zeros((BATCH, HIDDEN), np.float32)
    return params, xs, h0


def _numpy_impl(p, xs, h0):
    wx, wh, b = p["wx"], p["wh"], p["b"]
    steps = xs.shape[0]
    hs = np.empty((steps + 1, *h0.shape), np.float32)
    hs[0] = h0
    for t in range(steps):
        hs[t + 1] = np.tanh(xs[t] @ wx + hs[t] @ wh + b)
    n = hs[1:].size
    loss = np.float32((hs[1:] ** 2).sum() / n)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dh = np.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        dh = dh + (2.0 / n) * hs[t + 1]
        dz = dh * (1 - hs[t + 1] ** 2)
        g["wx"] += xs[t].T @ dz
        g["wh"] += hs[t].T @ dz
        g["b"] += dz.sum(0)
        dh = dz @ wh.T
    return loss, g


def setup(quick: bool) -> dict[str, Any]:
    params, xs, h0 = _data(quick)
    impls: dict[str, Any] = {}

    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad import lax

    def loss_fg(p, xs, h0):
        def cell(h, x):
            h = fnp.tanh(x @ p["wx"] + h @ p["wh"] + p["b"])
            return h, (h * h).sum()

        _, sq = lax.scan(cell, h0, xs)
        return sq.sum() / (xs.shape[0] * h0.size)

    vg_fg = fg.jit(fg.value_and_grad(loss_fg))
    impls["funcgrad"] = lambda: vg_fg(params, xs, h0)
    impls["numpy"] = lambda: _numpy_impl(params, xs, h0)

    jax = optional_import("jax")
    if jax is not None:
        jnp = jax.numpy
        params_j = {k: jnp.asarray(v) for k, v in params.items()}
        xs_j, h0_j = jnp.asarray(xs), jnp.asarray(h0)

        def loss_jax(p, xs, h0):
            def cell(h, x):
                h = jnp.tanh(x @ p["wx"] + h @ p["wh"] + p["b"])
                return h, (h * h).sum()

            _, sq = jax.lax.scan(cell, h0, xs)
            return sq.sum() / (xs.shape[0] * h0.size)

        vg_jax = jax.jit(jax.value_and_grad(loss_jax))
        impls["jax (jit, lax.scan)"] = lambda: jax.block_until_ready(vg_jax(params_j, xs_j, h0_j))

    torch = optional_import("torch")
    if torch is not None:
        params_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        xs_t, h0_t = torch.tensor(xs), torch.tensor(h0)
        keys = sorted(params_t)

        def run_torch():
            p = params_t
            h, total = h0_t, 0.0
            for t in range(xs_t.shape[0]):
                h = torch.tanh(xs_t[t] @ p["wx"] + h @ p["wh"] + p["b"])
                total = total + (h * h).sum()
            loss = total / (xs_t.shape[0] * h0_t.numel())
            grads = torch.autograd.grad(loss, [p[k] for k in keys])
            return loss, dict(zip(keys, grads, strict=True))

        impls["torch (eager loop)"] = run_torch

    return impls


WORKLOADS = [
    Workload(
        name="rnn_scan_value_and_grad",
        description="RNN over 1,000 steps with scan (hidden 32, input 32, batch 16, f32), "
        "value_and_grad, jitted",
        setup=setup,
        rtol=2e-3,
        atol=1e-5,
        peers=("jax", "torch"),
    )
]
