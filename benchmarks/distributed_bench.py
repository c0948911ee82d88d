"""Data-parallel training on MPI: step times at 1 and 2 processes, allreduce cost against
message size, and a model of scaling to N machines.

    python benchmarks/distributed_bench.py [--quick] [--json FILE]

The driver runs itself under ``mpiexec -n 1`` and ``mpiexec -n 2`` (loopback, this
machine) and prints:

1. allreduce time against message size (float32 sums): raw ``mpi4py`` ``Allreduce``,
   funcgrad's eager ``distributed.allreduce`` (with its failure watch) and the call-out
   from a jitted kernel; fitted latency (alpha) and bandwidth (beta) of ``t = alpha + n/beta``;
2. the jitted data-parallel training step of the MLP (784-512-512-10, global batch 128) and
   of the CNN (conv 3x3x8, pool, dense 10; global batch 32) of ``benchmarks/workloads``,
   split into compute (the same step without the allreduce) and communication;
3. the scaling model ``T(N) = C(B/N) + A_N(P)`` with ``C`` the measured compute time at the
   per-process batch and ``A_N`` a ring allreduce of the ``P`` gradient bytes, ``2 (N-1)
   alpha + 2 (N-1)/N P / beta``, for this machine's figures and for two assumed networks,
   and where communication starts to dominate.

Timings are medians of short runs on a shared machine: for reading, never for asserting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = [1, 16, 256, 4096, 65536, 262144, 1048576, 4194304]  # float32 elements
#: Assumed networks for the N-machine model: (name, latency s, bandwidth bytes/s).
NETWORKS = [("10 GbE", 25e-6, 1.1e9), ("100 Gb InfiniBand", 2e-6, 11e9)]


def _median_times(fns: dict[str, Any], repeat: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, sampled round-robin (a shared machine's
    load then weighs on every variant alike)."""
    for fn in fns.values():
        fn()  # warm up (compiles, allocates)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[k].append((time.perf_counter() - t0) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


# ----------------------------------------------------------------------------------------
# Worker (under mpiexec)


def _allreduce_times(quick: bool) -> list[dict[str, float]]:
    import funcgrad as fg
    from funcgrad import distributed

    comm = distributed.world().data
    rows = []
    for n in SIZES[:-2] if quick else SIZES:
        x = np.ones(n, np.float32)
        out = np.empty_like(x)
        inner = max(1, min(200, 2_000_000 // max(n, 1) // 4))
        repeat = 3 if quick else 7
        jitted = fg.jit(lambda v: distributed.allreduce(v))
        with_jit = n in (16, 65536, 1048576)  # a compile per size: three sizes

        def raw(x=x, out=out):
            if comm is None:
                np.copyto(out, x)
            else:
                comm.Allreduce(x, out)

        fns = {"mpi4py": raw, "eager": lambda x=x: distributed.allreduce(x)}
        if with_jit:
            fns["jit"] = lambda x=x: jitted(x)
        row = {"elements": n, "bytes": 4 * n, "jit": None}
        row.update(_median_times(fns, repeat, inner))
        rows.append(row)
        distributed.world().barrier()
    return rows


def _mlp_problem(local: int) -> tuple:
    import funcgrad.numpy as fnp
    from benchmarks.workloads._models import dense_params, mlp_loss

    rng = np.random.default_rng(0)
    params = dense_params(rng, [784, 512, 512, 10])
    x = rng.standard_normal((local, 784)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, local)]
    return params, (x, onehot), lambda p, x, o: mlp_loss(fnp, p, x, o)


def _cnn_problem(local: int) -> tuple:
    from benchmarks.workloads.cnn_train_step import _params
    from funcgrad import nn

    rng = np.random.default_rng(0)
    params = _params(rng)
    x = rng.standard_normal((local, 28, 28, 1)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, local)]

    def loss(p, x, onehot):
        h = nn.relu(nn.conv2d(x, p["w"], padding="VALID") + p["b"])
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        logits = h.reshape(x.shape[0], -1) @ p["w2"] + p["b2"]
        return -(onehot * nn.log_softmax(logits)).sum(1).mean()

    return params, (x, onehot), loss


def _step_times(problem: Any, global_batch: int, quick: bool) -> dict[str, float]:
    """The jitted data-parallel SGD step, and the same step without the allreduce."""
    import funcgrad as fg
    from funcgrad import distributed
    from funcgrad.tree_util import tree_leaves, tree_map

    size = distributed.process_count()
    params, batch, loss = problem(global_batch // size)

    def make(average: bool) -> Any:
        def step(p, *b):
            value, g = fg.value_and_grad(loss)(p, *b)
            if average:
                g, value = distributed.allreduce((g, value), op="mean")
            return tree_map(lambda w, d: w - 0.01 * d, p, g), value

        return fg.jit(step)

    with_comm, compute_only = make(True), make(False)
    repeat, inner = (5, 3) if quick else (9, 10)
    times = _median_times(
        {
            "step": lambda: with_comm(params, *batch),
            "compute": lambda: compute_only(params, *batch),
        },
        repeat,
        inner,
    )
    t_step, t_compute = times["step"], times["compute"]
    nbytes = sum(np.asarray(v).nbytes for v in tree_leaves(params)) + 4
    return {
        "step": t_step,
        "compute": t_compute,
        "grad_bytes": nbytes,
        "local_batch": global_batch // size,
    }


def worker(quick: bool) -> None:
    from funcgrad import distributed

    distributed.initialize(timeout=600)
    result = {
        "processes": distributed.process_count(),
        "allreduce": _allreduce_times(quick),
        "mlp": _step_times(_mlp_problem, 128, quick),
        "cnn": _step_times(_cnn_problem, 32, quick),
    }
    # Compute time at smaller per-process batches, for the model's C(b).
    for name, problem, batch in (("mlp", _mlp_problem, 128), ("cnn", _cnn_problem, 32)):
        if distributed.process_count() == 1:
            result[f"{name}_compute_by_batch"] = {
                str(b): _step_times(problem, b, quick)["compute"] for b in (batch // 4, batch // 2)
            }
    if distributed.process_index() == 0:
        print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------
# Driver


def _launch(n: int, quick: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.mpi_launch import command, loopback_env, mpiexec

    exe = mpiexec()
    if exe is None:
        raise SystemExit("needs mpiexec: pip install -e '.[mpi]'")
    args = [str(Path(__file__).resolve()), "--worker"] + (["--quick"] if quick else [])
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    env.update(loopback_env())
    proc = subprocess.run(
        command(exe, n, args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"worker with {n} processes failed:\n{proc.stdout}\n{proc.stderr}")


def _fit_alpha_beta(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
    """Latency: the fastest of the small messages (<= 1 KiB); bandwidth: the largest
    message's bytes over its time less that latency (robust to a noisy machine, where a
    least-squares fit is not)."""
    alpha = min(r[key] for r in rows if r["bytes"] <= 1024)
    big = max(rows, key=lambda r: r["bytes"])
    return alpha, big["bytes"] / max(big[key] - alpha, 1e-9)


def _ring(n: int, nbytes: float, alpha: float, beta: float) -> float:
    return 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / beta


def _compute_model(one: dict[str, Any], name: str, batch: int) -> tuple[float, float]:
    """``C(b) = c0 + c1 * b`` fitted to the one-process compute times."""
    points = {batch: one[name]["compute"]}
    points.update({int(k): v for k, v in one[f"{name}_compute_by_batch"].items()})
    bs = np.array(sorted(points), float)
    ts = np.array([points[int(b)] for b in bs])
    c1, c0 = np.polyfit(bs, ts, 1)
    return max(c0, 0.0), max(c1, 0.0)


def report(one: dict[str, Any], two: dict[str, Any]) -> None:
    us = 1e6
    print("\n== allreduce (float32 sum), median time per call, 2 processes on this machine ==")
    print(
        f"{'bytes':>10} {'mpi4py':>10} {'eager':>10} {'jit':>10} {'eager/mpi4py':>13} {'GB/s':>7}"
    )
    for r in two["allreduce"]:
        gbs = r["bytes"] / r["mpi4py"] / 1e9
        jit = "-" if r["jit"] is None else f"{r['jit'] * us:.1f}u"
        print(
            f"{r['bytes']:>10} {r['mpi4py'] * us:>9.1f}u {r['eager'] * us:>9.1f}u "
            f"{jit:>10} {r['eager'] / r['mpi4py']:>13.2f} {gbs:>7.2f}"
        )
    alpha, beta = _fit_alpha_beta(two["allreduce"], "mpi4py")
    print(
        f"fit t = alpha + bytes/beta: alpha = {alpha * us:.1f} us, beta = {beta / 1e9:.2f} "
        "GB/s (shared memory between two processes)"
    )

    print("\n== data-parallel training step (jitted), median ==")
    print(
        f"{'workload':>8} {'procs':>5} {'local batch':>11} {'step ms':>8} {'compute ms':>10}"
        f" {'comm ms':>8} {'grad KB':>8} {'speedup':>8}"
    )
    for name in ("mlp", "cnn"):
        base = one[name]["step"]
        for res in (one, two):
            r = res[name]
            print(
                f"{name:>8} {res['processes']:>5} {r['local_batch']:>11} "
                f"{r['step'] * 1e3:>8.2f} {r['compute'] * 1e3:>10.2f} "
                f"{(r['step'] - r['compute']) * 1e3:>8.2f} {r['grad_bytes'] / 1e3:>8.1f} "
                f"{base / r['step']:>7.2f}x"
            )

    print("\n== scaling model: T(N) = C(B/N) + 2(N-1) alpha + 2(N-1)/N P/beta ==")
    nets = [("this machine (shm)", alpha, beta), *NETWORKS]
    for name, batch in (("mlp", 128), ("cnn", 32)):
        c0, c1 = _compute_model(one, name, batch)
        p = one[name]["grad_bytes"]
        print(
            f"{name}: C(b) = {c0 * 1e3:.2f} ms + {c1 * 1e6:.1f} us/example, gradient "
            f"{p / 1e6:.2f} MB, global batch {batch}"
        )
        for net, a, bw in nets:
            cells = []
            crossover = None
            for n in (1, 2, 4, 8, 16, 32, 64):
                if batch % n:
                    break
                comp = c0 + c1 * batch / n
                comm = _ring(n, p, a, bw)
                cells.append(f"N={n}: {(comp + comm) * 1e3:.2f}")
                if crossover is None and comm > comp:
                    crossover = n
            where = (
                f"communication dominates from N={crossover}"
                if crossover
                else ("compute dominates up to the batch limit")
            )
            print(f"  {net:>20}: " + ", ".join(cells) + f" ms; {where}")
        # Weak scaling: per-process batch fixed at the global batch.
        comp = c0 + c1 * batch
        for net, a, bw in nets[1:]:
            comm = _ring(64, p, a, bw)
            print(
                f"  weak scaling ({net}, {batch} examples per process, N=64): efficiency "
                f"{comp / (comp + comm):.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        worker(args.quick)
        return
    one = _launch(1, args.quick)
    two = _launch(2, args.quick)
    report(one, two)
    if args.json:
        Path(args.json).write_text(json.dumps({"1": one, "2": two}, indent=1))


if __name__ == "__main__":
    main()
