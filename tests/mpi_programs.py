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


def fit_problem() -> dict:
    """A tiny MLP regression: the same data, model and settings in every process."""
    import funcgrad as fg

    rng = np.random.default_rng(7)
    x = rng.standard_normal((48, 5)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    model = fg.nn.Sequential([fg.nn.Dense(16), fg.numpy.tanh, fg.nn.Dense(1)])
    params = model.init(fg.random.key(0), x[:1])
    return dict(
        target=model,
        params=params,
        data=(x, y),
        loss="mse",
        epochs=3,
        batch_size=16,
        optimizer=fg.optim.adam(1e-2),
        key=fg.random.key(3),
    )


def fit_run(distributed: bool, jit: bool = True) -> dict[str, np.ndarray]:
    from funcgrad import train
    from funcgrad.tree_util import keystr, tree_flatten_with_path

    p = fit_problem()
    params, history = train.fit(
        p["target"],
        p["params"],
        *p["data"],
        optimizer=p["optimizer"],
        loss=p["loss"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        key=p["key"],
        jit=jit,
        verbose=2,
        distributed=distributed,
    )
    out = {keystr(k): np.asarray(v) for k, v in tree_flatten_with_path(params)[0]}
    out["loss_history"] = np.asarray(history.history["loss"])
    return out


def fit() -> dict[str, np.ndarray]:
    return fit_run(distributed=True)


def fit_fails() -> dict[str, np.ndarray]:
    """Process 1 raises in its third step; process 0 must stop with a clear error."""
    import funcgrad.numpy as fnp
    from funcgrad import distributed, train

    p = fit_problem()
    calls = [0]

    def loss_fn(params, x, y):
        calls[0] += 1
        if distributed.process_index() == 1 and calls[0] == 3:
            raise ValueError("injected failure in process 1")
        return fnp.mean((p["target"].apply(params, x) - y) ** 2)

    train.fit(
        loss_fn,
        p["params"],
        *p["data"],
        optimizer=p["optimizer"],
        epochs=2,
        batch_size=16,
        jit=False,
        verbose=0,
        distributed=True,
    )
    return {}


def hangs() -> dict[str, np.ndarray]:
    """Process 1 stops answering (no error); process 0's collective must time out."""
    import time

    from funcgrad import distributed

    if distributed.process_index() == 1:
        time.sleep(60)
    distributed.allreduce(np.ones(3))
    return {}


PROGRAMS = {"collectives": collectives, "fit": fit, "fit_fails": fit_fails, "hangs": hangs}


def main() -> None:
    name, outdir = sys.argv[1], Path(sys.argv[2])
    from funcgrad import distributed

    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    distributed.initialize(timeout=timeout, debug=True)
    result = PROGRAMS[name]()
    np.savez(outdir / f"{name}-{distributed.process_index()}.npz", **result)


if __name__ == "__main__":
    main()
