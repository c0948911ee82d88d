"""Calibrate two thresholds of the numba backend on this machine and print them.

    python benchmarks/calibrate_backend.py [--quick]

- ``PARALLEL_MIN_WORK`` (``funcgrad/backend/numba/lowering.py``): the loop size above which
  a fused loop nest runs under ``prange``. Times one fused elementwise kernel
  (``sin(x) * exp(-x*x) + tanh(x)``, float32) with threads off (``FUNCGRAD_NUM_THREADS=1``)
  and on, per size, each in a subprocess (the thread count is read at numba import).
- ``DOT_BLAS_MIN`` (``funcgrad/backend/numba/opaque_rules.py``): the ``M*N*K`` above which
  ``dot_general`` calls BLAS instead of its inlined loop. Times square float32 matmuls
  both ways.

The printed crossovers are for reading; the constants in the sources record the values
chosen (and the machine they were measured on). Timings never go into a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PRANGE = r"""
import json, sys, time, numpy as np
sys.path.insert(0, {root!r})
import funcgrad as fg, funcgrad.numpy as fnp
f = fg.jit(lambda x: fnp.sin(x) * fnp.exp(-x * x) + fnp.tanh(x))
out = {{}}
for n in {sizes!r}:
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    f(x)
    best = float("inf")
    for _ in range(7):
        reps = max(1, 200_000 // n)
        t0 = time.perf_counter()
        for _ in range(reps):
            f(x)
        best = min(best, (time.perf_counter() - t0) / reps)
    out[n] = best
print(json.dumps(out))
"""


def calibrate_prange(quick: bool) -> None:
    sizes = [2**k for k in range(12, 22 if quick else 25, 2)]
    results = {}
    for threads in ("1", str(os.cpu_count() or 1)):
        env = {**os.environ, "FUNCGRAD_NUM_THREADS": threads, "FUNCGRAD_PARALLEL_MIN_WORK": "1"}
        code = _PRANGE.format(root=str(ROOT), sizes=sizes)
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        results[threads] = {int(k): v for k, v in json.loads(proc.stdout).items()}
    serial, parallel = results["1"], results[str(os.cpu_count() or 1)]
    print(f"prange ({os.cpu_count()} threads) vs serial, fused 3-function f32 loop:")
    cross = None
    for n in sizes:
        ratio = serial[n] / parallel[n]
        print(
            f"  n={n:>9d}  serial {serial[n] * 1e6:9.1f} us  threads {parallel[n] * 1e6:9.1f} us"
            f"  speed-up {ratio:5.2f}x"
        )
        if cross is None and ratio > 1.2:
            cross = n
    print(f"  threads pay off (>1.2x) from n = {cross}")


def calibrate_dot(quick: bool) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import funcgrad as fg
    from funcgrad.backend.numba import opaque_rules

    print("dot_general f32 [n,n]@[n,n]: inlined loop vs BLAS (np.dot in the kernel)")
    for n in (4, 8, 12, 16, 24, 32, 48, 64) if not quick else (8, 16, 32):
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        times = {}
        for label, cut in (("loop", 1 << 62), ("blas", 0)):
            opaque_rules.DOT_BLAS_MIN = cut
            f = fg.jit(lambda x, y: x @ y)
            f(a, a)
            reps = 20000 if n <= 16 else 2000
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(reps):
                    f(a, a)
                best = min(best, (time.perf_counter() - t0) / reps)
            times[label] = best
        print(
            f"  n={n:3d} (M*N*K={n**3:7d})  loop {times['loop'] * 1e6:8.2f} us  "
            f"blas {times['blas'] * 1e6:8.2f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calibrate_dot(args.quick)
    calibrate_prange(args.quick)


if __name__ == "__main__":
    main()
