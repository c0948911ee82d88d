"""Dispatch overhead of a jitted function: ``x * 2 + 1`` on a length-1 float32 array.

Almost no arithmetic, so the time is the call path: flatten the arguments, find the
compiled kernel for their shapes and dtypes, call it, unflatten. Target: at most a third of
``jax.jit``'s time per call.
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


WORKLOADS = [
    Workload(
        name="jit_dispatch",
        description="jitted x*2+1 on f32[1]: the call path of a compiled function",
        setup=setup,
        rtol=0,
        atol=0,
    )
]
