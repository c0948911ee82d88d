"""A fused elementwise chain: ``sin(x) * exp(-x*x) + tanh(x)`` on 10M float32 values.

funcgrad compiles it to one loop over the elements with no temporaries, calling the
vectorizable polynomial math of ``funcgrad/backend/numba/mathlib.py``; NumPy makes five
passes and four temporaries. Targets: at least 2x NumPy, 3x ``jax.jit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp

    n = 1_000_000 if quick else 10_000_000
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    f = fg.jit(lambda x: fnp.sin(x) * fnp.exp(-x * x) + fnp.tanh(x))
    impls: dict[str, Any] = {
        "funcgrad": lambda: f(x),
        "numpy": lambda: np.sin(x) * np.exp(-x * x) + np.tanh(x),
    }
    jax = optional_import("jax")
    if jax is not None:
        jnp = jax.numpy
        fj = jax.jit(lambda x: jnp.sin(x) * jnp.exp(-x * x) + jnp.tanh(x))
        xj = jnp.asarray(x)
        impls["jax (jit)"] = lambda: jax.block_until_ready(fj(xj))
    torch = optional_import("torch")
    if torch is not None:
        xt = torch.from_numpy(x)
        impls["torch (eager)"] = lambda: torch.sin(xt) * torch.exp(-xt * xt) + torch.tanh(xt)
    return impls


WORKLOADS = [
    Workload(
        name="jit_fused_elementwise",
        description="sin(x)*exp(-x*x)+tanh(x) on f32[10M] (1M with --quick), jitted",
        setup=setup,
        rtol=1e-5,
        atol=1e-6,
    )
]
