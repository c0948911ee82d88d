"""An MLP training step, jitted: 784-512-512-10 relu, softmax cross-entropy, SGD,
batch 128, float32.

Dominated by six matrix products (BLAS in every implementation); the question is the
overhead around them and whether the elementwise work fuses. Targets: no slower than
``jax.jit``, within 1.1x of hand-written NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import
from benchmarks.workloads._models import dense_params, mlp_loss, mlp_step_numpy, torch_sgd

LR = 0.01


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp

    rng = np.random.default_rng(0)
    params = dense_params(rng, [784, 512, 512, 10])
    x = rng.standard_normal((128, 784)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]

    def step(xp, tree_map, value_and_grad):
        def run(params, x, onehot):
            loss, grads = value_and_grad(lambda p: mlp_loss(xp, p, x, onehot))(params)
            return tree_map(lambda p, g: p - LR * g, params, grads), loss

        return run

    fg_step = fg.jit(step(fnp, fg.tree_util.tree_map, fg.value_and_grad))
    impls: dict[str, Any] = {
        "funcgrad": lambda: fg_step(params, x, onehot),
        "numpy": lambda: mlp_step_numpy(params, x, onehot, LR),
    }
    jax = optional_import("jax")
    if jax is not None:
        j_step = jax.jit(step(jax.numpy, jax.tree_util.tree_map, jax.value_and_grad))
        jp = jax.tree_util.tree_map(jax.numpy.asarray, (params, x, onehot))
        impls["jax (jit)"] = lambda: jax.block_until_ready(j_step(*jp))
    torch = optional_import("torch")
    if torch is not None:
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        xt, ot = torch.from_numpy(x), torch.from_numpy(onehot)

        def torch_step():
            h = torch.relu(xt @ tp["w1"] + tp["b1"])
            h = torch.relu(h @ tp["w2"] + tp["b2"])
            logp = torch.log_softmax(h @ tp["w3"] + tp["b3"], dim=1)
            loss = -(ot * logp).sum(1).mean()
            return torch_sgd(torch, tp, loss, LR)

        impls["torch (eager)"] = torch_step
    return impls


WORKLOADS = [
    Workload(
        name="jit_mlp_step",
        description="MLP 784-512-512-10, softmax CE, SGD, batch 128, whole step jitted",
        setup=setup,
        rtol=2e-3,
        atol=1e-5,
    )
]
