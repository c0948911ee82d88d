"""Dispatch overhead of a jitted function: ``x * 2 + 1`` on a length-1 float32 array.

Almost no arithmetic, so the time is the call path: flatten the arguments, find the
compiled kernel for their shapes and dtypes, call it, unflatten. Target: at most a third of
``jax.jit``'s time per call.

``jit_dispatch_pytree_{1,10,100}``: the same for a parameter pytree (a dict of layers, each
``{kernel: f32[4,4], bias: f32[4]}``, 100 leaves for 50 layers) mapped to a tree of the same
structure (``p * 0.9`` leafwise), beside ``jax.jit`` and NumPy doing it eagerly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg

    x = np.ones(1, np.float32)
    f = fg.jit(lambda x: x * 2 + 1)
    impls: dict[str, Any] = {"funcgrad": lambda: f(x), "numpy": lambda: x * 2 + 1}
    jax = optional_import("jax")
    if jax is not None:
        fj = jax.jit(lambda x: x * 2 + 1)
        xj = jax.numpy.asarray(x)
        impls["jax (jit)"] = lambda: jax.block_until_ready(fj(xj))
    torch = optional_import("torch")
    if torch is not None:
        xt = torch.from_numpy(x)
        impls["torch (eager)"] = lambda: xt * 2 + 1
    return impls


def _params(n_leaves: int) -> dict[str, Any]:
    if n_leaves == 1:
        return {"w": np.ones((4, 4), np.float32)}
    return {
        f"layer{i:02d}": {"kernel": np.ones((4, 4), np.float32), "bias": np.ones(4, np.float32)}
        for i in range(n_leaves // 2)
    }


def _setup_pytree(n_leaves: int) -> Any:
    def setup(quick: bool) -> dict[str, Any]:
        import funcgrad as fg
        from funcgrad import tree_util

        p = _params(n_leaves)
        f = fg.jit(lambda p: tree_util.tree_map(lambda a: a * 0.9, p))
        impls: dict[str, Any] = {
            "funcgrad": lambda: f(p),
            "numpy": lambda: tree_util.tree_map(lambda a: a * np.float32(0.9), p),
        }
        jax = optional_import("jax")
        if jax is not None:
            fj = jax.jit(lambda p: jax.tree_util.tree_map(lambda a: a * 0.9, p))
            pj = jax.tree_util.tree_map(jax.numpy.asarray, p)
            impls["jax (jit)"] = lambda: jax.block_until_ready(fj(pj))
        return impls

    return setup


WORKLOADS = [
    Workload(
        name="jit_dispatch",
        description="jitted x*2+1 on f32[1]: the call path of a compiled function",
        setup=setup,
        rtol=0,
        atol=0,
    ),
    *(
        Workload(
            name=f"jit_dispatch_pytree_{n}",
            description=f"jitted p*0.9 on a {n}-leaf parameter pytree: the pytree call path",
            setup=_setup_pytree(n),
            rtol=1e-6,
            atol=0,
        )
        for n in (1, 10, 100)
    ),
]
