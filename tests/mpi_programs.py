"""Programs that ``tests/test_distributed.py`` runs under ``mpiexec -n 2``.

``python -m tests.mpi_programs NAME OUTDIR``: each process runs program NAME and saves what
it computed to ``OUTDIR/NAME-<rank>.npz``; the test compares those with NumPy references.
Process ``r``'s data is ``data(r)``, so the test can rebuild every process's inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def data(rank: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + rank)
    return {"x": rng.standard_normal((2, 3)), "v": rng.standard_normal(4).astype(np.float32)}


def collectives() -> dict[str, np.ndarray]:
    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad import distributed, lax

    d = data(distributed.process_index())
    x, v = d["x"], d["v"]
    out: dict[str, np.ndarray] = {}
    for op in ("sum", "mean", "max", "min"):
        out[f"eager_{op}"] = distributed.allreduce(x, op=op)
    tree = distributed.allreduce({"x": x, "v": v, "s": np.float64(2.0)}, op="sum")
    out["tree_x"], out["tree_v"], out["tree_s"] = tree["x"], tree["v"], tree["s"]
    out["gather"] = distributed.allgather(x)
    out["bcast"] = distributed.broadcast(x, root=1)
    out["rank"] = np.asarray(distributed.process_index())
    out["count"] = np.asarray(distributed.process_count())

    # One kernel with every collective: the kernel calls out to MPI for each.
    def step(x, v):
        return (
            distributed.allreduce({"a": fnp.sin(x), "b": v * 2}, op="mean"),
            distributed.allreduce(x, op="max"),
            distributed.allgather(v),
            distributed.broadcast(x, root=1),
        )

    (m, mx, g, b) = fg.jit(step)(x, v)
    out["jit_mean_a"], out["jit_mean_b"], out["jit_max"] = m["a"], m["b"], mx
    out["jit_gather"], out["jit_bcast"] = g, b

    # grad: allreduce-sum's transpose is allreduce-sum.
    out["grad"] = fg.grad(lambda x: fnp.sum(distributed.allreduce(x) ** 2))(x)
    out["grad_jit"] = fg.jit(fg.grad(lambda x: fnp.sum(distributed.allreduce(x * x))))(x)
    # vmap over a batch on each process.
    out["vmap"] = fg.vmap(lambda r: distributed.allreduce(r, op="max"))(x)

    # shard_map: named-axis code over the processes, the same code vmap simulates.
    def normalize(x):
        return x / lax.psum(fnp.sum(x * x), "data") + lax.axis_index("data")

    sm = distributed.shard_map(
        normalize,
        in_specs=distributed.P("data"),
        out_specs=distributed.P("data"),
        axis_name="data",
    )
    out["shard_map"] = sm(x)
    out["shard_map_jit"] = fg.jit(sm)(x)
    out["shard_map_grad"] = fg.grad(lambda x: fnp.sum(sm(x) ** 2))(x)
    return out


PROGRAMS = {"collectives": collectives}


def main() -> None:
    name, outdir = sys.argv[1], Path(sys.argv[2])
    from funcgrad import distributed

    distributed.initialize(timeout=120)
    result = PROGRAMS[name]()
    np.savez(outdir / f"{name}-{distributed.process_index()}.npz", **result)


if __name__ == "__main__":
    main()
