"""Drawing 10M float32 random numbers (1M with ``--quick``): funcgrad.random vs its peers.

funcgrad draws eagerly (``fg.random.normal(key, (n,))``: one fused numba kernel, Threefry
plus the inverse-CDF transform) and under ``jit``; NumPy is
``numpy.random.Generator.standard_normal`` / ``.random`` (PCG64, ziggurat for normals); JAX
is ``jax.random.normal`` / ``uniform`` (jit-compiled inside JAX, Threefry). Different
generators give different numbers, so agreement is checked on the distribution: each
implementation returns a :class:`Moments`, which the harness turns into the sample's mean,
standard deviation and a tail fraction only when it checks agreement (outside the timing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import


class Moments:
    """A sample that converts to ``[mean, std, fraction above 1]`` (for the agreement check)."""

    def __init__(self, sample: Any) -> None:
        self.sample = sample

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        x = np.asarray(self.sample, np.float64)
        out = np.array([x.mean(), x.std(), np.mean(x > 1.0)])
        return out if dtype is None else out.astype(dtype)


def _size(quick: bool) -> int:
    return 1_000_000 if quick else 10_000_000


def _setup(kind: str):
    def setup(quick: bool) -> dict[str, Any]:
        import funcgrad as fg

        n = _size(quick)
        impls: dict[str, Any] = {}
        key = fg.random.key(0)
        draw = getattr(fg.random, kind)
        impls["funcgrad"] = lambda: Moments(draw(key, (n,)))
        jitted = fg.jit(lambda k: draw(k, (n,)))
        impls["funcgrad (jit)"] = lambda: Moments(jitted(key))

        rng = np.random.default_rng(0)
        if kind == "normal":
            impls["numpy"] = lambda: Moments(rng.standard_normal(n, dtype=np.float32))
        else:
            impls["numpy"] = lambda: Moments(rng.random(n, dtype=np.float32))

        jax = optional_import("jax")
        if jax is not None:
            jkey = jax.random.key(0)
            jdraw = getattr(jax.random, kind)
            impls["jax"] = lambda: Moments(jax.block_until_ready(jdraw(jkey, (n,))))

        torch = optional_import("torch")
        if torch is not None:
            gen = torch.Generator().manual_seed(0)
            tdraw = torch.randn if kind == "normal" else torch.rand
            impls["torch"] = lambda: Moments(tdraw(n, generator=gen).numpy())
        return impls

    return setup


WORKLOADS = [
    Workload(
        name="random_normal",
        description="10M float32 standard normals (1M with --quick), eager and jit",
        setup=_setup("normal"),
        atol=5e-3,
        rtol=5e-3,
        peers=("jax", "torch"),
    ),
    Workload(
        name="random_uniform",
        description="10M float32 uniforms in [0, 1) (1M with --quick), eager and jit",
        setup=_setup("uniform"),
        atol=5e-3,
        rtol=5e-3,
        peers=("jax", "torch"),
    ),
]
