"""The seed train step, whole step jitted: 10 -> Dense(10, relu) -> Dense(1), MSE, Adam,
batch 32, float32.

One call computes the loss and gradient and applies Adam to every parameter: a few dozen
tiny operations, so the time is dispatch plus a handful of small kernels. funcgrad's jit
fuses the whole step into one kernel (the matmuls below the BLAS cut-over are inlined
loops). Target: at most a quarter of ``jax.jit``'s time per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import
from benchmarks.workloads._models import adam, dense_params, seed_grad_numpy, seed_loss


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp

    rng = np.random.default_rng(0)
    params = dense_params(rng, [10, 10, 1])
    x = rng.standard_normal((32, 10)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    zeros = {k: np.zeros_like(p) for k, p in params.items()}
    t = np.float32(3.0)

    def step(xp, tree_map, value_and_grad):
        def run(params, m, v, t, x, y):
            loss, grads = value_and_grad(lambda p: seed_loss(xp, p, x, y))(params)
            updates, m, v = adam(tree_map, xp, grads, m, v, t)
            params = tree_map(lambda p, u: p + u, params, updates)
            return params, m, v, loss

        return run

    fg_step = fg.jit(step(fnp, fg.tree_util.tree_map, fg.value_and_grad))
    impls: dict[str, Any] = {"funcgrad": lambda: fg_step(params, zeros, zeros, t, x, y)}

    def numpy_step():
        loss, grads = seed_grad_numpy(params, x, y)
        updates, m, v = adam(_tree_map, np, grads, zeros, zeros, t)
        return {k: params[k] + updates[k] for k in params}, m, v, loss

    impls["numpy"] = numpy_step
    jax = optional_import("jax")
    if jax is not None:
        j_step = jax.jit(step(jax.numpy, jax.tree_util.tree_map, jax.value_and_grad))
        jp = jax.tree_util.tree_map(jax.numpy.asarray, (params, zeros, zeros, t, x, y))
        impls["jax (jit)"] = lambda: jax.block_until_ready(j_step(*jp))
    return impls


def _tree_map(f: Any, *trees: dict) -> dict:
    return {k: f(*(t[k] for t in trees)) for k in trees[0]}


WORKLOADS = [
    Workload(
        name="jit_train_step_seed",
        description="seed MLP (10-10-1, relu, MSE) + Adam, batch 32, whole step jitted",
        setup=setup,
        rtol=1e-4,
        atol=1e-6,
    )
]
