"""Logistic-regression gradient, jitted: X float32[10000, 100], labels in {0, 1}.

``grad(mean(log(1 + exp(-s * (X @ w)))))`` with ``s = 2y - 1``: two matrix-vector products
(``X @ w`` and ``X.T @ r``) around elementwise work. funcgrad's kernel calls BLAS for both
(``X.T`` is read in place, no copy) and fuses the rest. Target: no slower than the best of
hand-written NumPy and ``jax.jit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import


def _loss(xp: Any, w: Any, x: Any, s: Any) -> Any:
    z = -s * (x @ w)
    return xp.mean(xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z))))  # log(1 + e^z)


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp

    rng = np.random.default_rng(0)
    n = 2000 if quick else 10000
    x = rng.standard_normal((n, 100)).astype(np.float32)
    s = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    w = (rng.standard_normal(100) * 0.1).astype(np.float32)
    g = fg.jit(fg.grad(lambda w, x, s: _loss(fnp, w, x, s)))
    impls: dict[str, Any] = {"funcgrad": lambda: g(w, x, s)}

    def numpy_grad():
        z = -s * (x @ w)
        return x.T @ (-s / (1.0 + np.exp(-z))) / np.float32(n)  # d/dz log(1+e^z) = sigmoid

    impls["numpy"] = numpy_grad
    jax = optional_import("jax")
    if jax is not None:
        gj = jax.jit(jax.grad(lambda w, x, s: _loss(jax.numpy, w, x, s)))
        wj, xj, sj = (jax.numpy.asarray(a) for a in (w, x, s))
        impls["jax (jit)"] = lambda: jax.block_until_ready(gj(wj, xj, sj))
    return impls


WORKLOADS = [
    Workload(
        name="jit_logreg_grad",
        description="logistic-regression gradient, X f32[10000,100] (2000 with --quick)",
        setup=setup,
        rtol=1e-4,
        atol=1e-6,
    )
]
