"""The seed model's loss and gradient, eagerly: 10 -> Dense(10, relu) -> Dense(1), MSE.

Batch 32, float32, parameters as a dict pytree. Every implementation computes
``value_and_grad`` of the loss with respect to the parameters without compiling anything
(funcgrad without jit, JAX without jit, PyTorch eager, autograd); ``numpy`` is the
hand-written forward and backward pass, the floor for any eager framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import


def _data(quick: bool) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = {
        "w1": (rng.standard_normal((10, 10)) / np.sqrt(10)).astype(np.float32),
        "b1": np.zeros(10, np.float32),
        "w2": (rng.standard_normal((10, 1)) / np.sqrt(10)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }
    x = rng.standard_normal((32, 10)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    return params, x, y


def _numpy_impl(params, x, y):
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    pred = h @ w2 + b2
    err = pred - y
    loss = np.mean(err**2)
    d_pred = (2.0 / err.size) * err
    d_w2 = h.T @ d_pred
    d_b2 = d_pred.sum(0)
    d_h = d_pred @ w2.T
    d_z = d_h * (z > 0)
    d_w1 = x.T @ d_z
    d_b1 = d_z.sum(0)
    return loss, {"b1": d_b1, "b2": d_b2, "w1": d_w1, "w2": d_w2}


def setup(quick: bool) -> dict[str, Any]:
    params, x, y = _data(quick)
    impls: dict[str, Any] = {}

    import funcgrad as fg
    import funcgrad.numpy as fnp

    def loss_fg(p, x, y):
        h = fnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        pred = h @ p["w2"] + p["b2"]
        return fnp.mean((pred - y) ** 2)

    vg_fg = fg.value_and_grad(loss_fg)
    impls["funcgrad"] = lambda: vg_fg(params, x, y)
    impls["numpy"] = lambda: _numpy_impl(params, x, y)

    jax = optional_import("jax")
    if jax is not None:
        jnp = jax.numpy
        params_j = {k: jnp.asarray(v) for k, v in params.items()}
        x_j, y_j = jnp.asarray(x), jnp.asarray(y)

        def loss_jax(p, x, y):
            h = jnp.maximum(x @ p["w1"] + p["b1"], 0.0)
            pred = h @ p["w2"] + p["b2"]
            return jnp.mean((pred - y) ** 2)

        vg_jax = jax.value_and_grad(loss_jax)

        def run_jax():
            out = vg_jax(params_j, x_j, y_j)
            return jax.block_until_ready(out)

        impls["jax (eager)"] = run_jax

    torch = optional_import("torch")
    if torch is not None:
        params_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        x_t, y_t = torch.tensor(x), torch.tensor(y)
        keys = sorted(params_t)

        def run_torch():
            p = params_t
            h = torch.relu(x_t @ p["w1"] + p["b1"])
            pred = h @ p["w2"] + p["b2"]
            loss = torch.mean((pred - y_t) ** 2)
            grads = torch.autograd.grad(loss, [p[k] for k in keys])
            return loss, dict(zip(keys, grads, strict=False))

        impls["torch (eager)"] = run_torch

    autograd = optional_import("autograd")
    if autograd is not None:
        anp = optional_import("autograd.numpy")

        def loss_ag(p, x, y):
            h = anp.maximum(anp.dot(x, p["w1"]) + p["b1"], 0.0)
            pred = anp.dot(h, p["w2"]) + p["b2"]
            return anp.mean((pred - y) ** 2)

        vg_ag = autograd.value_and_grad(loss_ag)
        impls["autograd"] = lambda: vg_ag(params, x, y)

    return impls


WORKLOADS = [
    Workload(
        name="mlp_value_and_grad_eager",
        description="value_and_grad of the seed MLP loss (10->10 relu->1, MSE, batch 32, f32), "
        "eager",
        setup=setup,
        rtol=1e-4,
        atol=1e-6,
    )
]
