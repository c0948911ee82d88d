"""Per-example gradients of the seed model, ``vmap(grad(loss))`` over 256 examples.

vmap turns the per-example matrix-vector work into batched operations, jit fuses them into
one kernel. Both funcgrad variants run: eager ``vmap(grad)`` (issue 4) and
``jit(vmap(grad))``; peers are ``jax.jit(jax.vmap(jax.grad))`` and ``torch.func``'s
``vmap(grad)``. ``numpy`` is the hand-written batched backward pass (outer products per
example). Target: jitted, at most half of ``jax.jit``'s time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import
from benchmarks.workloads._models import dense_params, seed_loss


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp

    rng = np.random.default_rng(0)
    params = dense_params(rng, [10, 10, 1])
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = rng.standard_normal((256, 1)).astype(np.float32)

    def one(xp):
        return lambda p, xi, yi: seed_loss(xp, p, xi[None], yi[None])

    per_example = fg.vmap(fg.grad(one(fnp)), in_axes=(None, 0, 0))
    g = fg.jit(per_example)
    impls: dict[str, Any] = {
        "funcgrad": lambda: g(params, x, y),
        "funcgrad (eager)": lambda: per_example(params, x, y),
    }

    def numpy_grads():
        z = x @ params["w1"] + params["b1"]
        h = np.maximum(z, 0)
        err = h @ params["w2"] + params["b2"] - y  # (256, 1)
        d_pred = 2.0 * err
        dz = (d_pred @ params["w2"].T) * (z > 0)
        return {
            "w1": x[:, :, None] * dz[:, None, :],
            "b1": dz,
            "w2": h[:, :, None] * d_pred[:, None, :],
            "b2": d_pred,
        }

    impls["numpy"] = numpy_grads
    jax = optional_import("jax")
    if jax is not None:
        gj = jax.jit(jax.vmap(jax.grad(one(jax.numpy)), in_axes=(None, 0, 0)))
        jp = jax.tree_util.tree_map(jax.numpy.asarray, (params, x, y))
        impls["jax (jit)"] = lambda: jax.block_until_ready(gj(*jp))
    torch = optional_import("torch")
    if torch is not None:
        from torch.func import grad as tgrad
        from torch.func import vmap as tvmap

        tp = {k: torch.from_numpy(v) for k, v in params.items()}
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_loss(p, xi, yi):
            h = torch.clamp(xi[None] @ p["w1"] + p["b1"], min=0.0)
            pred = h @ p["w2"] + p["b2"]
            return torch.mean((pred - yi[None]) ** 2)

        tg = tvmap(tgrad(torch_loss), in_dims=(None, 0, 0))

        def torch_grads():
            out = tg(tp, tx, ty)
            return {k: v.numpy() for k, v in out.items()}

        impls["torch (torch.func, eager)"] = torch_grads
    return impls


WORKLOADS = [
    Workload(
        name="jit_per_example_grads",
        description="per-example grads of the seed MLP, 256 examples, jit(vmap(grad))",
        setup=setup,
        rtol=1e-4,
        atol=1e-6,
    )
]
