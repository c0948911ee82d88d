"""Per-operation overhead of eager reverse mode: grad through a chain of cheap ops.

``f(x) = sum(chain(x))`` where the chain applies ``x = sin(x) * 1.01 + 0.1`` 50 times to an
8-element float64 vector: 150 tiny operations, so the time is almost all framework
overhead (tracing, bookkeeping, the backward pass), not arithmetic. ``numpy`` is the
hand-written forward and backward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import

STEPS = 50


def _numpy_impl(x):
    xs = [x]
    for _ in range(STEPS):
        x = np.sin(x) * 1.01 + 0.1
        xs.append(x)
    g = np.ones_like(x)
    for x_prev in reversed(xs[:-1]):
        g = g * 1.01 * np.cos(x_prev)
    return xs[-1].sum(), g


def setup(quick: bool) -> dict[str, Any]:
    x = np.linspace(-1.0, 1.0, 8)
    impls: dict[str, Any] = {}

    import funcgrad as fg
    import funcgrad.numpy as fnp

    def f_fg(x):
        for _ in range(STEPS):
            x = fnp.sin(x) * 1.01 + 0.1
        return fnp.sum(x)

    vg = fg.value_and_grad(f_fg)
    impls["funcgrad"] = lambda: vg(x)
    impls["numpy"] = lambda: _numpy_impl(x)

    jax = optional_import("jax")
    if jax is not None:
        jnp = jax.numpy
        jax.config.update("jax_enable_x64", True)
        x_j = jnp.asarray(x)

        def f_jax(x):
            for _ in range(STEPS):
                x = jnp.sin(x) * 1.01 + 0.1
            return jnp.sum(x)

        vg_jax = jax.value_and_grad(f_jax)
        impls["jax (eager)"] = lambda: jax.block_until_ready(vg_jax(x_j))

    torch = optional_import("torch")
    if torch is not None:
        x_t = torch.tensor(x, requires_grad=True)

        def run_torch():
            y = x_t
            for _ in range(STEPS):
                y = torch.sin(y) * 1.01 + 0.1
            s = y.sum()
            (g,) = torch.autograd.grad(s, [x_t])
            return s, g

        impls["torch (eager)"] = run_torch

    autograd = optional_import("autograd")
    if autograd is not None:
        anp = optional_import("autograd.numpy")

        def f_ag(x):
            for _ in range(STEPS):
                x = anp.sin(x) * 1.01 + 0.1
            return anp.sum(x)

        vg_ag = autograd.value_and_grad(f_ag)
        impls["autograd"] = lambda: vg_ag(x)

    return impls


WORKLOADS = [
    Workload(
        name="op_overhead_grad_eager",
        description=f"value_and_grad through {STEPS} x (sin, mul, add) on f64[8], eager: "
        "per-op framework overhead",
        setup=setup,
        rtol=1e-10,
        atol=1e-12,
    )
]
