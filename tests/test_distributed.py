"""funcgrad.distributed: process-level collectives over MPI, in a 2-process job.

The job runs ``tests/mpi_programs.py`` under ``mpiexec -n 2`` on the loopback (skipped when
mpi4py or mpiexec is missing); the references are NumPy expressions of both processes'
inputs (``mpi_programs.data(rank)``), with the gradients in closed form: allreduce-sum's
transpose is allreduce-sum, so each process gets the gradient of the sum of every process's
loss with respect to its own input. The single-process behaviour (a world of one) and the
one-buffer-per-step property are checked in this process.
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import distributed
from tests import mpi_launch
from tests.mpi_programs import data


@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collectives")
    proc = mpi_launch.run(["-m", "tests.mpi_programs", "collectives", str(tmp)], tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [dict(np.load(tmp / f"collectives-{r}.npz")) for r in range(2)]


def test_process_level_collectives_match_numpy(collectives):
    d0, d1 = data(0), data(1)
    x0, x1, v0, v1 = d0["x"], d1["x"], d0["v"], d1["v"]
    s = x0 + x1
    for rank, out in enumerate(collectives):
        assert out["rank"] == rank and out["count"] == 2
        np.testing.assert_allclose(out["eager_sum"], s, rtol=1e-15)
        np.testing.assert_allclose(out["eager_mean"], s / 2, rtol=1e-15)
        np.testing.assert_array_equal(out["eager_max"], np.maximum(x0, x1))
        np.testing.assert_array_equal(out["eager_min"], np.minimum(x0, x1))
        np.testing.assert_allclose(out["tree_x"], s, rtol=1e-15)
        assert out["tree_v"].dtype == np.float32
        np.testing.assert_allclose(out["tree_v"], v0 + v1, rtol=1e-6)
        assert out["tree_s"] == 4.0
        np.testing.assert_array_equal(out["gather"], np.stack([x0, x1]))
        np.testing.assert_array_equal(out["bcast"], x1)
        np.testing.assert_array_equal(out["vmap"], np.maximum(x0, x1))


def test_collectives_under_jit_match_numpy(collectives):
    d0, d1 = data(0), data(1)
    x0, x1, v0, v1 = d0["x"], d1["x"], d0["v"], d1["v"]
    for out in collectives:
        np.testing.assert_allclose(out["jit_mean_a"], (np.sin(x0) + np.sin(x1)) / 2, rtol=1e-12)
        assert out["jit_mean_b"].dtype == np.float32
        np.testing.assert_allclose(out["jit_mean_b"], v0 + v1, rtol=1e-6)
        np.testing.assert_array_equal(out["jit_max"], np.maximum(x0, x1))
        np.testing.assert_array_equal(out["jit_gather"], np.stack([v0, v1]))
        np.testing.assert_array_equal(out["jit_bcast"], x1)


def test_grads_follow_allreduce_transpose(collectives):
    xs = [data(0)["x"], data(1)["x"]]
    s = xs[0] + xs[1]
    for rank, out in enumerate(collectives):
        # Sum over processes of sum(S**2): d/dx_r = 2 * 2 * S.
        np.testing.assert_allclose(out["grad"], 4 * s, rtol=1e-12)
        # Sum over processes of sum(allreduce(x * x)): d/dx_r = 2 * 2 * x_r.
        np.testing.assert_allclose(out["grad_jit"], 4 * xs[rank], rtol=1e-12)


def test_shard_map_runs_named_axis_code_across_processes(collectives):
    xs = [data(0)["x"], data(1)["x"]]
    q = sum(np.sum(x * x) for x in xs)
    # Gradient of the sum over processes of sum((x_r / Q + r)**2), Q = sum_r sum(x_r**2).
    c = sum(np.sum(2 * (x / q + r) * (-x / q**2)) for r, x in enumerate(xs))
    for rank, out in enumerate(collectives):
        ref = xs[rank] / q + rank
        np.testing.assert_allclose(out["shard_map"], ref, rtol=1e-12)
        np.testing.assert_allclose(out["shard_map_jit"], ref, rtol=1e-12)
        grad = 2 * (xs[rank] / q + rank) / q + c * 2 * xs[rank]
        np.testing.assert_allclose(out["shard_map_grad"], grad, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# In this process: a world of one, and one buffer per dtype


def test_world_of_one_without_a_launcher():
    x = np.arange(6.0).reshape(2, 3)
    assert distributed.process_index() == 0 and distributed.process_count() == 1
    for op in ("sum", "mean", "max", "min"):
        np.testing.assert_array_equal(distributed.allreduce(x, op=op), x)
    np.testing.assert_array_equal(distributed.allgather(x), x[None])
    np.testing.assert_array_equal(distributed.broadcast(x), x)
    with pytest.raises(ValueError, match="op must be one of"):
        distributed.allreduce(x, op="prod")
    with pytest.raises(ValueError, match=r"root must be in \[0, 1\)"):
        distributed.broadcast(x, root=1)


def test_a_pytree_travels_in_one_buffer_per_dtype():
    """Gradient averaging of many leaves is one collective (one MPI call) per step."""
    tree = {
        "w1": np.ones((3, 4)),
        "b1": np.ones(4),
        "w2": np.ones((4, 2)),
        "b2": np.ones(2),
        "h": np.ones(3, np.float32),
    }
    jaxpr = fg.make_jaxpr(lambda t: distributed.allreduce(t, op="mean"))(tree)
    names = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert names.count("psum") == 2  # one float64 buffer, one float32 buffer
    text = fg.jit(lambda t: distributed.allreduce(t)).lower(tree).as_text()
    assert text.count("fg_allreduce(") == 2


def test_shard_map_checks_its_specs():
    with pytest.raises(ValueError, match="names an axis other than the process axis"):
        distributed.shard_map(lambda x: x, in_specs=distributed.P("model"), axis_name="data")
    f = distributed.shard_map(
        lambda x: fnp.sum(x) + distributed.process_index(),
        in_specs=distributed.P("data"),
        out_specs=distributed.P(),
        axis_name="data",
    )
    assert f(np.ones(3)) == 3.0


# ----------------------------------------------------------------------------------------
# train.fit(distributed=True)


def test_fit_on_two_processes_equals_one_process_on_the_global_batch(tmp_path):
    """Each process takes half of every batch; gradients are averaged by one allreduce per
    step; the result is the one-process run (debug mode also checks every epoch that both
    processes hold bit-identical parameters and optimizer state)."""
    from tests.mpi_programs import fit_run

    proc = mpi_launch.run(["-m", "tests.mpi_programs", "fit", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Epoch 3/3") == 1  # only process 0 prints
    outs = [dict(np.load(tmp_path / f"fit-{r}.npz")) for r in range(2)]
    ref = fit_run(distributed=False)
    for key, value in ref.items():
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
        np.testing.assert_allclose(outs[0][key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert ref["loss_history"][-1] < ref["loss_history"][0]


def test_a_process_that_raises_stops_the_others(tmp_path):
    timeout = 60  # the notice must stop process 0 long before its collective times out
    proc = mpi_launch.run(
        ["-m", "tests.mpi_programs", "fit_fails", str(tmp_path), str(timeout)],
        tmp_path,
        timeout=timeout,
    )
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0, err
    assert "ValueError: injected failure in process 1" in err
    assert (
        "DistributedError: process 0 of 2 stops: process 1 failed with ValueError: "
        "injected failure in process 1" in err
    ), err


def test_a_process_that_hangs_times_out_the_others(tmp_path):
    """Process 1 sleeps 60 s without failing: process 0 raises after its 3 s timeout and
    the job ends then (MPI_Abort at exit), not when process 1 wakes up."""
    proc = mpi_launch.run(
        ["-m", "tests.mpi_programs", "hangs", str(tmp_path), "3"], tmp_path, timeout=50
    )
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0, err
    assert "DistributedError: process 0 of 2 stops: timed out after 3 s" in err, err


def test_fit_distributed_in_a_world_of_one_equals_fit():
    from tests.mpi_programs import fit_problem

    p = fit_problem()
    runs = []
    for dist in (False, True):
        params, _ = fg.train.fit(
            p["target"],
            p["params"],
            *p["data"],
            optimizer=p["optimizer"],
            loss=p["loss"],
            epochs=1,
            batch_size=16,
            key=p["key"],
            jit=False,
            verbose=0,
            distributed=dist,
        )
        runs.append(fg.tree_util.tree_leaves(params))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_global_batch_must_split_evenly(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(distributed, "_world", SimpleNamespace(size=3, rank=0, debug=False))
    with pytest.raises(
        ValueError,
        match=r"batch size 16 is not a multiple of the 3 processes.*"
        r"batch_size=15 or 18",
    ):
        distributed.DataParallel(16)
