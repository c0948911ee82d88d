"""What a new user feels: whole programs in fresh processes, cold and warm kernel cache.

    python benchmarks/first_run.py [--only NAME] [--repeats N] [--quick]

Every program runs in a new Python process (import included), single-threaded (BLAS and
XLA pools of one thread, the process pinned to one CPU, as ``benchmarks/run.py``). funcgrad
runs twice: *cold* with an empty ``FUNCGRAD_CACHE_DIR``, then *warm* with the cache the cold
run left (a second run of the same program); JAX, optax and torch run once per repeat
(their compile caches are in-process). Peers that are not installed are skipped. Each
figure is the median over ``--repeats`` runs; ratios are funcgrad / peer (below 1: funcgrad
is faster). ``total_s`` runs from process start (imports included) to the program's end;
``process`` is the whole process's wall time. A cold run that ends before its kernels are
compiled hands them to a detached compile process at exit (``FUNCGRAD_JIT_AT_EXIT``); the
warm run starts when that process is done (``handoff_s``: how long it took after the cold
process ended), as a user's second run a few seconds later would.

Programs (synthetic data, same sizes and steps on every library; see ``first_run_programs.py``):

- ``seed_fit``: Keras-style Dense(10, relu) -> Dense(1), Adam 1e-3, MSE, 100 epochs,
  batch 32, 1000 samples: ``funcgrad.train.fit`` vs a JAX + optax loop (jitted step).
- ``torch_loop``: PyTorch-style loop, 100 full-batch steps of the same model: funcgrad jit,
  funcgrad eager, torch.
- ``first_call``: the jitted seed train step: ms from defining it to its first result, and
  a new batch size after the first (``new_batch_ms``).
- ``mlp``, ``vae``, ``dpsgd``, ``advi``, ``kernel_lsq``: programs like JAX's examples.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PIN = r"""
import os, sys, time
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
T0 = time.perf_counter()
sys.path.insert(0, %r)
"""


def _run(program: str, lib: str, cache: str, quick: bool) -> dict | None:
    code = (_PIN % str(ROOT)) + (
        "from benchmarks.first_run_programs import main\n"
        f"main({program!r}, {lib!r}, quick={quick!r}, t0=T0)\n"
    )
    env = dict(os.environ, FUNCGRAD_CACHE_DIR=cache)
    for v in ("FUNCGRAD_JIT_COMPILE", "FUNCGRAD_LOG_COMPILES", "PYTHONDONTWRITEBYTECODE"):
        env.pop(v, None)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    if out.returncode == 3:
        return None  # peer not installed
    if out.returncode:
        print(f"  {program}/{lib} failed:\n{out.stderr[-1500:]}", file=sys.stderr)
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall  # the whole process: start-up to exit
    return res


def _wait_for_handoff(cache: Path, timeout: float = 600.0) -> float:
    """Seconds until the compiles a cold run handed off at exit are in the cache."""
    from funcgrad.backend.numba.exit_compile import pending_jobs

    t0 = time.perf_counter()
    while pending_jobs(cache) and time.perf_counter() - t0 < timeout:
        time.sleep(0.05)
    return time.perf_counter() - t0


PROGRAMS = {
    "seed_fit": ["jax"],
    "torch_loop": ["fg_eager", "torch"],
    "first_call": [],
    "mlp": ["jax"],
    "vae": ["jax"],
    "dpsgd": ["jax"],
    "advi": ["jax"],
    "kernel_lsq": ["jax"],
}


def measure(program: str, repeats: int, quick: bool) -> dict:
    cold, warm, peers = [], [], {p: [] for p in PROGRAMS[program]}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            c = _run(program, "fg", cache, quick)
            if c:
                c["handoff_s"] = _wait_for_handoff(Path(cache))
            w = _run(program, "fg", cache, quick)
        if c:
            cold.append(c)
        if w:
            warm.append(w)
        for p in peers:
            r = _run(program, p, tempfile.gettempdir(), quick)
            if r:
                peers[p].append(r)

    def med(rows: list[dict], key: str) -> float | None:
        vals = [r[key] for r in rows if key in r]
        return statistics.median(vals) if vals else None

    res: dict = {"program": program}
    for key in ("total_s", "wall_s", "handoff_s", "first_ms", "new_batch_ms", "steady_ms"):
        if med(cold, key) is not None:
            res[f"cold_{key}"] = med(cold, key)
            res[f"warm_{key}"] = med(warm, key)
    for p, rows in peers.items():
        if rows:
            res[f"{p}_total_s"] = med(rows, "total_s")
            res[f"{p}_wall_s"] = med(rows, "wall_s")
            if med(rows, "steady_ms") is not None:
                res[f"{p}_steady_ms"] = med(rows, "steady_ms")
    if cold and warm:
        res["check"] = [cold[0].get("check"), warm[0].get("check")] + [
            rows[0].get("check") for rows in peers.values() if rows
        ]
    return res


def report(r: dict) -> str:
    name = r["program"]
    parts = [f"{name:11s}"]
    if "cold_total_s" in r:
        parts.append(
            f"fg cold {r['cold_total_s']:.2f} s (process {r['cold_wall_s']:.2f} s, handed-off "
            f"compile done {r['cold_handoff_s']:.1f} s later), "
            f"warm {r['warm_total_s']:.2f} s (process {r['warm_wall_s']:.2f} s)"
        )
    if "cold_first_ms" in r:
        parts.append(
            f"first call cold {r['cold_first_ms']:.1f} ms / warm {r['warm_first_ms']:.1f} ms"
        )
    if "cold_new_batch_ms" in r:
        parts.append(f"new batch {r['cold_new_batch_ms']:.2f} ms")
    for p in PROGRAMS[name]:
        t = r.get(f"{p}_total_s")
        if t:
            pw = r[f"{p}_wall_s"]
            parts.append(
                f"{p} {t:.2f} s (process {pw:.2f} s; cold/{p} {r['cold_total_s'] / t:.2f}, "
                f"process {r['cold_wall_s'] / pw:.2f}; warm/{p} {r['warm_total_s'] / t:.2f}, "
                f"process {r['warm_wall_s'] / pw:.2f})"
            )
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for name in PROGRAMS:
        if args.only and name not in args.only:
            continue
        r = measure(name, args.repeats, args.quick)
        rows.append(r)
        print(report(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
