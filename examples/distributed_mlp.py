"""Data-parallel training of a small MLP across processes, on MPI.

Run on 4 processes (this machine, or a cluster through its launcher):

    pip install -e ".[mpi]"            # mpi4py and the MPICH runtime (mpiexec)
    mpiexec -n 4 python examples/distributed_mlp.py

or as a single process (``python examples/distributed_mlp.py``): the same code then runs
in a world of one. Part 1 uses ``train.fit(..., distributed=True)``; part 2 writes the
data-parallel step by hand with ``shard_map`` and ``lax.pmean``, and checks it against the
same function simulated with ``vmap(axis_name=...)`` in one process.
"""

import os
import tempfile

import numpy as np

import funcgrad as fg
from funcgrad import distributed, lax, losses, nn, optim, serialization, train

distributed.initialize()  # joins the MPI job (a world of one without mpiexec)
rank, size = distributed.process_index(), distributed.process_count()

# Every process builds the same data set (same seed); each reads only its rows of every
# batch. With data on disk, np.load(path, mmap_mode="r") reads just those rows.
rng = np.random.default_rng(0)
x = rng.normal(size=(2048, 8)).astype(np.float32)
y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2] > 0).astype(np.int32)

model = nn.Sequential([nn.Dense(32), nn.relu, nn.Dense(2)])
params = model.init(fg.random.key(0), x[:1])

# --- Part 1: fit(distributed=True) -------------------------------------------------------
# batch_size is the global batch (a multiple of the process count): the run equals a
# one-process run with batch_size=128, in 1/size of the per-process work per step.
params, history = train.fit(
    model,
    params,
    x,
    y,
    loss="softmax_cross_entropy_with_integer_labels",
    metrics=["accuracy"],
    optimizer=optim.adam(1e-2),
    epochs=5,
    batch_size=128,
    verbose=2,  # only process 0 prints
    distributed=True,
)
if rank == 0:  # only process 0 writes files
    path = os.path.join(tempfile.mkdtemp(), "mlp.safetensors")
    serialization.save_params(path, params)
    print(
        f"{size} process(es): final accuracy {history.history['accuracy'][-1]:.3f}, saved to {path}"
    )


# --- Part 2: the data-parallel step by hand ------------------------------------------------
def loss_fn(p, xb, yb):
    return losses.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb)


opt = optim.sgd(0.1)


def step(p, opt_state, xb, yb):
    """One step on this shard: local gradient, averaged over the "data" axis."""
    loss, g = fg.value_and_grad(loss_fn)(p, xb, yb)
    g, loss = lax.pmean((g, loss), "data")
    updates, opt_state = opt.update(g, opt_state, p)
    return optim.apply_updates(p, updates), opt_state, loss


# Across processes: each passes its block of the batch; params are replicated.
spmd_step = fg.jit(
    distributed.shard_map(
        step,
        in_specs=(distributed.P(), distributed.P(), distributed.P("data"), distributed.P("data")),
        out_specs=(distributed.P(), distributed.P(), distributed.P()),
        axis_name="data",
    )
)
opt_state = opt.init(params)
local = 64 // size
xb, yb = x[:64][rank * local : (rank + 1) * local], y[:64][rank * local : (rank + 1) * local]
p_dist, _, loss_dist = spmd_step(params, opt_state, xb, yb)

# The same step simulated in one process: vmap over `size` shards with the same axis name.
sim = fg.vmap(step, in_axes=(None, None, 0, 0), axis_name="data")
p_sim, _, loss_sim = sim(
    params, opt_state, x[:64].reshape(size, local, 8), y[:64].reshape(size, local)
)
same = all(
    np.allclose(a, b[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(fg.tree_util.tree_leaves(p_dist), fg.tree_util.tree_leaves(p_sim), strict=True)
)
if rank == 0:
    print(f"shard_map step loss {float(loss_dist):.4f}; vmap simulation agrees: {same}")
