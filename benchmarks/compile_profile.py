"""Where numba's compile time goes for a jitted train step, from an empty kernel cache.

    python benchmarks/compile_profile.py [seed|cnn] [--batch N]

Runs in this process with a fresh temporary ``FUNCGRAD_CACHE_DIR``: traces and generates
the kernel, then compiles it while numba's event API (``numba.core.event``) records each
compiler pass and the time spent holding the LLVM lock. Prints the source size, trace and
generate time, numba's total and its split: type inference, lowering to LLVM IR (numba's
``native_lowering`` pass, which also runs LLVM's optimizer and code generation: LLVM time is
the part of it spent under the LLVM lock), and everything else.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _seed(batch: int):
    import numpy as np

    import funcgrad as fg
    import funcgrad.numpy as fnp
    from benchmarks.workloads._models import adam, dense_params, seed_loss

    rng = np.random.default_rng(0)
    params = dense_params(rng, [10, 10, 1])
    x = rng.standard_normal((batch, 10)).astype(np.float32)
    y = rng.standard_normal((batch, 1)).astype(np.float32)
    zeros = {k: np.zeros_like(p) for k, p in params.items()}

    def run(params, m, v, t, x, y):
        loss, grads = fg.value_and_grad(lambda p: seed_loss(fnp, p, x, y))(params)
        updates, m, v = adam(fg.tree_util.tree_map, fnp, grads, m, v, t)
        return fg.tree_util.tree_map(lambda p, u: p + u, params, updates), m, v, loss

    return run, (params, zeros, zeros, np.float32(1.0), x, y)


def _cnn(batch: int):
    import numpy as np

    import funcgrad as fg
    from funcgrad import nn

    rng = np.random.default_rng(0)
    p = {
        "w": (rng.standard_normal((3, 3, 1, 8)) * 0.3).astype(np.float32),
        "b": np.zeros(8, np.float32),
        "w2": (rng.standard_normal((13 * 13 * 8, 10)) * 0.01).astype(np.float32),
        "b2": np.zeros(10, np.float32),
    }
    x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]

    def loss(p, x, onehot):
        h = nn.relu(nn.conv2d(x, p["w"], padding="VALID") + p["b"])
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        logits = h.reshape(x.shape[0], -1) @ p["w2"] + p["b2"]
        return -(onehot * nn.log_softmax(logits)).sum(1).mean()

    def step(p, x, onehot):
        value, g = fg.value_and_grad(loss)(p, x, onehot)
        return fg.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g), value

    return step, (p, x, onehot)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?", default="seed", choices=["seed", "cnn"])
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    os.environ["FUNCGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="fg-profile-")
    sys.path.insert(0, str(ROOT))
    import funcgrad as fg
    from funcgrad.backend.numba.compile import numba_module

    t0 = time.perf_counter()
    numba_module()
    from numba.core import event

    import_s = time.perf_counter() - t0
    fn, fargs = (_seed if args.workload == "seed" else _cnn)(args.batch)
    t0 = time.perf_counter()
    lowered = fg.jit(fn).lower(*fargs)
    trace_generate_s = time.perf_counter() - t0
    text = lowered.as_text()
    code = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    passes: dict[str, float] = defaultdict(float)
    by_overload: dict[str, float] = defaultdict(float)
    starts: dict[tuple, float] = {}

    class Listener(event.Listener):
        def on_start(self, ev):
            if ev.kind == "numba:run_pass":
                starts[("pass", ev.data["name"])] = time.perf_counter()
            else:
                starts[(ev.kind, 0)] = time.perf_counter()

        def on_end(self, ev):
            now = time.perf_counter()
            if ev.kind == "numba:run_pass":
                took = now - starts.pop(("pass", ev.data["name"]), now)
                name, _, fn = ev.data["name"].partition(" [")
                if fn.rstrip("]") in own:
                    passes[name] += took  # a pass over a kernel function
                else:
                    passes["(numba's own overloads: " + name + ")"] += took
                    by_overload[fn.rstrip("]").split(".<locals>")[0]] += took
            elif ev.kind == "numba:llvm_lock":
                passes["(LLVM lock held)"] += now - starts.pop((ev.kind, 0), now)

    own = set(lowered.lowering.source.functions)
    listener = Listener()
    t0, c0 = time.perf_counter(), time.process_time()
    with (
        event.install_listener("numba:run_pass", listener),
        event.install_listener("numba:llvm_lock", listener),
    ):
        kernel = lowered.lowering.compile()
    compile_s = time.perf_counter() - t0
    compile_cpu_s = time.process_time() - c0
    kernel(*lowered.lowering.consts, *[a for a in _flat(fargs)])
    typing = passes.get("nopython_type_inference", 0.0)
    lowering = passes.get("native_lowering", 0.0)
    llvm = passes.get("(LLVM lock held)", 0.0)
    overloads = sum(v for k, v in passes.items() if k.startswith("(numba's own"))
    print(f"workload {args.workload} batch {args.batch}: {len(code)} code lines")
    print(f"  numba import + setup   {import_s:7.3f} s")
    print(f"  trace + generate       {trace_generate_s:7.3f} s")
    print(f"  numba compile (total)  {compile_s:7.3f} s  (CPU time {compile_cpu_s:.3f} s)")
    print(f"    type inference       {typing:7.3f} s")
    print(f"    native lowering      {lowering:7.3f} s  (of it, LLVM lock held {llvm:.3f} s)")
    print(f"    numba's overloads    {overloads:7.3f} s  (np.empty & co. compiled on first use)")
    top = sorted(passes.items(), key=lambda kv: -kv[1])[:6]
    print("  top passes: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    top = sorted(by_overload.items(), key=lambda kv: -kv[1])[:8]
    print("  overloads: " + ", ".join(f"{k} {v:.3f}" for k, v in top))


def _flat(args):
    import numpy as np

    from funcgrad.tree_util import tree_leaves

    return [np.asarray(x) for x in tree_leaves(args)]


if __name__ == "__main__":
    main()
