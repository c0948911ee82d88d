"""Compile-time costs of jit, each measured in a fresh process, side by side with JAX.

    python benchmarks/jit_compile_time.py [--repeats N]

- ``import``: ``import funcgrad`` (and ``import jax``) in a new interpreter.
- cold compile: the seed train step (10 -> Dense(10, relu) -> Dense(1), MSE, Adam,
  batch 32, whole step jitted), from defining it to its first result, import excluded,
  with an empty kernel cache (``FUNCGRAD_CACHE_DIR`` in a temporary folder).
- warm start: the same program in a second process with the cache the first one left:
  funcgrad traces and generates source again but loads the machine code from disk.

Targets (issue 5): cold compile <= 1.5x JAX's, warm start <= 1/3 of JAX's cold compile,
``import funcgrad`` <= 0.5 s. Medians of ``--repeats`` runs are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_STEP = r"""
import json, sys, time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
from benchmarks.workloads._models import adam, dense_params, seed_loss
rng = np.random.default_rng(0)
params = dense_params(rng, [10, 10, 1])
x = rng.standard_normal((32, 10)).astype(np.float32)
y = rng.standard_normal((32, 1)).astype(np.float32)
zeros = {{k: np.zeros_like(p) for k, p in params.items()}}
t2 = time.perf_counter()
{body}
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "first_result_s": t3 - t2}}))
"""

_FUNCGRAD = dict(
    imports="import funcgrad as fg, funcgrad.numpy as fnp",
    body="""
def run(params, m, v, t, x, y):
    loss, grads = fg.value_and_grad(lambda p: seed_loss(fnp, p, x, y))(params)
    updates, m, v = adam(fg.tree_util.tree_map, fnp, grads, m, v, t)
    return fg.tree_util.tree_map(lambda p, u: p + u, params, updates), m, v, loss
out = fg.jit(run)(params, zeros, zeros, np.float32(1.0), x, y)
""",
)

_JAX = dict(
    imports="import jax, jax.numpy as jnp",
    body="""
def run(params, m, v, t, x, y):
    loss, grads = jax.value_and_grad(lambda p: seed_loss(jnp, p, x, y))(params)
    updates, m, v = adam(jax.tree_util.tree_map, jnp, grads, m, v, t)
    return jax.tree_util.tree_map(lambda p, u: p + u, params, updates), m, v, loss
out = jax.block_until_ready(jax.jit(run)(params, zeros, zeros, np.float32(1.0), x, y))
""",
)


def _run(spec: dict, env: dict) -> dict:
    code = _STEP.format(root=str(ROOT), **spec)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "funcgrad import",
            "funcgrad cold compile",
            "funcgrad warm start",
            "jax import",
            "jax cold compile",
        )
    }
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            # compile time itself: a blocking compile (the default runs on the interpreter
            # tier meanwhile; benchmarks/first_run.py measures that)
            env = {**os.environ, "FUNCGRAD_CACHE_DIR": cache, "FUNCGRAD_JIT_COMPILE": "sync"}
            cold = _run(_FUNCGRAD, env)
            warm = _run(_FUNCGRAD, env)
        rows["funcgrad import"].append(cold["import_s"])
        rows["funcgrad cold compile"].append(cold["first_result_s"])
        rows["funcgrad warm start"].append(warm["first_result_s"])
        try:
            jax = _run(_JAX, dict(os.environ))
            rows["jax import"].append(jax["import_s"])
            rows["jax cold compile"].append(jax["first_result_s"])
        except subprocess.CalledProcessError:
            pass  # JAX not installed
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"seed train step, medians of {args.repeats} fresh processes:")
    for k, v in med.items():
        print(f"  {k:24s} {v * 1e3:9.1f} ms")
    if "jax cold compile" in med:
        jc = med["jax cold compile"]
        print(
            f"  cold compile / JAX cold : {med['funcgrad cold compile'] / jc:5.2f}x (target <= 1.5)"
        )
        print(
            f"  warm start / JAX cold   : {med['funcgrad warm start'] / jc:5.2f}x (target <= 0.33)"
        )


if __name__ == "__main__":
    main()
