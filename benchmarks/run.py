"""funcgrad's benchmark harness: each workload side by side with NumPy and its peers.

    python benchmarks/run.py [--quick] [--only NAME] [--json FILE]

Workloads live in ``benchmarks/workloads/*.py``; each module defines ``WORKLOADS``, a list
of :class:`benchmarks.workloads.Workload`. A workload builds one zero-argument callable per
implementation (``funcgrad``, ``numpy`` and, when installed, ``jax``, ``torch``,
``autograd``) computing the same thing. The harness runs them all in one process, checks
that every implementation agrees with the reference (NumPy by default) to the workload's
tolerance, then times them: repeated samples of a batch of calls, taken round-robin across
the implementations, reporting the median time per call and its ratio to funcgrad's.
A disagreement is reported and makes the program
exit with status 1. Timings are for reading, never for asserting.

Every library runs single-threaded unless ``--threads N`` says otherwise: the development
machines have two cores and the second is often busy, so only single-threaded figures
compare fairly. BLAS, OpenMP and torch pools are set to one thread before any library is
imported, and on Linux the process is pinned to one CPU (XLA sizes the pool that runs its
fused loops by the CPUs the process may use, whatever its flags say).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _threads_from_argv(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if a.startswith("--threads=") and a.split("=", 1)[1].isdigit():
            return int(a.split("=", 1)[1])
    return 1


def pin_threads(n: int) -> None:
    """Limit every library's thread pool to ``n`` (must run before they are imported)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        flags = "--xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        # XLA sizes its pool for fused loops by the CPUs this process may run on: allow one.
        if hasattr(os, "sched_getaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[0]})
    if n > 1:
        os.environ.setdefault("FUNCGRAD_NUM_THREADS", str(n))


THREADS = _threads_from_argv(sys.argv[1:]) if __name__ == "__main__" else 1
if __name__ == "__main__":
    pin_threads(THREADS)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import workloads as workloads_pkg  # noqa: E402
from benchmarks.workloads import Workload, to_numpy_tree  # noqa: E402


def discover() -> list[Workload]:
    found: list[Workload] = []
    for info in sorted(pkgutil.iter_modules(workloads_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"benchmarks.workloads.{info.name}")
        found.extend(getattr(mod, "WORKLOADS", []))
    return found


def time_all(fns: dict[str, Any], quick: bool) -> dict[str, dict[str, float]]:
    """Median seconds per call for each implementation.

    Each sample times a batch of calls (about 10 ms, 2 ms with ``--quick``); samples are
    taken round-robin across the implementations, so a change in machine load affects all
    of them alike and the ratios stay meaningful.
    """
    number = {}
    for name, fn in fns.items():
        fn()  # warm up (caches, lazy imports, compilation)
        if name == "funcgrad":  # steady state: the kernel tier, not the interpreter tier
            from funcgrad.interpreters.tiers import wait_for_compiles

            wait_for_compiles()
            fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        target = 0.002 if quick else 0.01
        number[name] = max(1, min(100_000, int(target / once)))
    repeats = 5 if quick else 15
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = number[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {
        name: {
            "median_s": statistics.median(s),
            "min_s": min(s),
            "calls_per_sample": number[name],
            "samples": repeats,
        }
        for name, s in samples.items()
    }


def check_agreement(
    results: dict[str, Any], reference: str, rtol: float, atol: float
) -> dict[str, str]:
    """Per implementation: "ok" or what differs from the reference."""
    status = {}
    ref = results.get(reference)
    for name, res in results.items():
        if ref is None:
            status[name] = "no reference"
            continue
        try:
            leaves_r = to_numpy_tree(ref)
            leaves = to_numpy_tree(res)
            if len(leaves) != len(leaves_r):
                status[name] = f"{len(leaves)} outputs vs {len(leaves_r)}"
                continue
            bad = []
            for i, (a, b) in enumerate(zip(leaves, leaves_r, strict=False)):
                if a.shape != b.shape:
                    bad.append(f"output {i}: shape {a.shape} vs {b.shape}")
                elif not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                    bad.append(f"output {i}: max abs diff {err:.3g}")
            status[name] = "ok" if not bad else "; ".join(bad)
        except Exception as e:  # noqa: BLE001 - report, do not crash the whole run
            status[name] = f"check failed: {type(e).__name__}: {e}"
    return status


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:9.1f} us"
    if s < 1:
        return f"{s * 1e3:9.2f} ms"
    return f"{s:9.3f} s "


def run(args: argparse.Namespace) -> int:
    selected = discover()
    if args.only:
        names = set(args.only.split(","))
        selected = [w for w in selected if w.name in names]
        if not selected:
            known = ", ".join(w.name for w in discover())
            print(f"no workload named {args.only!r}; known: {known}", file=sys.stderr)
            return 2
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "quick": args.quick,
        "threads": THREADS,
        "workloads": {},
    }
    torch = sys.modules.get("torch")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(THREADS)
    print(f"threads per library: {THREADS} (--threads N to change)")
    failed = False
    for w in selected:
        print(f"\n== {w.name}: {w.description}")
        impls = w.setup(args.quick)
        results = {}
        errors = {}
        for name, fn in impls.items():
            try:
                results[name] = fn()
            except Exception as e:  # noqa: BLE001
                errors[name] = f"{type(e).__name__}: {e}"
        agreement = check_agreement(results, w.reference, w.rtol, w.atol)
        agreement.update(errors)
        timings = time_all({n: f for n, f in impls.items() if n not in errors}, args.quick)
        base = timings.get("funcgrad", {}).get("median_s")
        print(f"   {'implementation':22s} {'median/call':>13s} {'vs funcgrad':>12s}  agreement")
        for name in impls:
            t = timings.get(name)
            if t is None:
                print(f"   {name:22s} {'-':>13s} {'-':>12s}  {agreement[name]}")
                continue
            ratio = f"{t['median_s'] / base:11.2f}x" if base else f"{'-':>12s}"
            print(f"   {name:22s} {fmt_time(t['median_s'])} {ratio}  {agreement[name]}")
        missing = [p for p in w.peers if not any(n.split(" ")[0] == p for n in impls)]
        if missing:
            print(f"   (not installed: {', '.join(missing)})")
        if any(v != "ok" for v in agreement.values()):
            failed = True
        report["workloads"][w.name] = {
            "description": w.description,
            "timings": timings,
            "agreement": agreement,
            "ratios_to_funcgrad": {n: t["median_s"] / base for n, t in timings.items() if base},
        }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    if failed:
        print("\nsome implementations disagree (see above)", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--only", help="run only these workloads (comma-separated names)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per library (default 1; read at start)"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
