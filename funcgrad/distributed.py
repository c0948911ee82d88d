"""Data parallelism across processes and machines, on MPI (through ``mpi4py``).

Launch one Python process per rank with the cluster's launcher (``mpiexec -n 4 python
train.py``); each process runs the same program on its own part of the data, and
collectives combine values across the processes:

>>> from funcgrad import distributed
>>> distributed.initialize()              # once, before any collective
>>> distributed.process_index(), distributed.process_count()
>>> g = distributed.allreduce(grads, op="mean")   # a pytree: one MPI call per dtype

- **Process-level collectives** (as mpi4jax gives JAX): :func:`allreduce` (``op="sum" |
  "mean" | "max" | "min"``), :func:`allgather`, :func:`broadcast`. They work eagerly, under
  ``jit`` (the compiled kernel calls out to MPI once per collective, on its own buffers),
  under ``grad`` (allreduce-sum's transpose is allreduce-sum) and under ``vmap``.
- **Named-axis code across processes**: :func:`shard_map` runs a function on every process
  with the process axis bound to a name, so the ``funcgrad.lax`` collectives
  (``psum pmean pmax pmin all_gather axis_index``) over that name reduce across processes.
  The same function under ``vmap(f, axis_name=...)`` simulates the processes in one.
  ``shard_map`` (rather than ``pmap``) because an MPI process *is* one shard: it holds its
  own block of the data, with no leading "device" axis to map over (pmap would make every
  rank pass an axis of size 1), and ``in_specs``/``out_specs`` say which values are split
  across processes (data) and which are the same on all (parameters), which is what
  data-parallel training needs to state and, in debug mode, to check.
- **Training**: ``funcgrad.train.fit(..., distributed=True)`` (see :class:`DataParallel`).

MPI comes from PyPI: ``pip install "funcgrad[mpi]"`` installs ``mpi4py`` and the MPICH
runtime (``mpiexec`` included). Without :func:`initialize`, a process that was not started
by an MPI launcher is a world of one: every collective returns its input (copied).

Failures: MPI collectives block until every process joins, so a process that raises would
leave the others waiting forever. Here every collective waits with a timeout (``timeout``
of :func:`initialize`, ``FUNCGRAD_DISTRIBUTED_TIMEOUT``, default 300 s) while listening on a
private control channel: a process that fails tells the others (its uncaught exception, or
an exception inside ``fit``), and they raise :class:`DistributedError` naming it at once.
Numbers are reduced through MPI on NumPy buffers without copies (``Iallreduce`` into a fresh
result); results never alias inputs.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from funcgrad import lax, random
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.lax import parallel
from funcgrad.lax.parallel import ProcessAxis
from funcgrad.tree_util import (
    keystr,
    tree_flatten,
    tree_flatten_with_path,
    tree_map,
    tree_structure,
    tree_unflatten,
)

__all__ = [
    "AXIS",
    "DataParallel",
    "DistributedError",
    "P",
    "PartitionSpec",
    "allgather",
    "allreduce",
    "broadcast",
    "check_replicated",
    "initialize",
    "is_initialized",
    "process_count",
    "process_index",
    "shard_map",
]

#: The default name of the process axis.
AXIS = "processes"

_OPS = ("sum", "mean", "max", "min")
_yield = getattr(os, "sched_yield", lambda: None)
#: From this many bytes a collective runs as a watched barrier, then MPI's blocking call.
BLOCKING_MIN_BYTES = 1 << 16
#: How long a collective busy-waits (testing its request) before it starts to sleep.
SPIN_SECONDS = 0.05
_FAIL_TAG = 7301
_ACK_TAG = 7302
#: Environment variables that MPI launchers set (MPICH/Hydra, Open MPI, Intel MPI, PMIx).
_LAUNCHER_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class DistributedError(RuntimeError):
    """Another process failed or stopped answering: this one cannot go on."""


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None


def _contiguous(x: Any) -> np.ndarray:
    """``x`` as a C-contiguous array, copied only if it is not one (0-d stays 0-d)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else np.array(x, order="C")


class World:
    """The processes: rank, size and the MPI communicators (none for a world of one).

    Collectives use a private duplicate of ``COMM_WORLD`` (so the user's own mpi4py
    messages never match ours) and failure notices a second one."""

    def __init__(self, comm: Any = None, timeout: float = 300.0, debug: bool = False) -> None:
        self.timeout = float(timeout)
        self.debug = bool(debug)
        self.failed: str | None = None
        self._notified = False
        if comm is None:
            self.rank, self.size = 0, 1
            self.data = self.ctrl = None
            self.mpi = None
            return
        from mpi4py import MPI

        self.mpi = MPI
        self.data = comm.Dup()
        self.ctrl = comm.Dup()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    # -- collectives on NumPy buffers
    def allreduce_into(self, x: np.ndarray, out: np.ndarray, op: str) -> None:
        """``out[...] = op over processes of x`` (C-contiguous ``x`` and ``out``)."""
        if self.size == 1:
            np.copyto(out, x)
            return
        self._check_usable()
        what = f"allreduce(op={op!r}) of {x.dtype.name}{list(x.shape)}"
        if x.nbytes >= BLOCKING_MIN_BYTES:
            # MPI's blocking allreduce is faster on large buffers than the non-blocking one:
            # meet first (a watched barrier), then every process is there to finish it.
            self._wait(self.data.Ibarrier(), what)
            self.data.Allreduce(x, out, self._ops[op])
            return
        self._wait(self.data.Iallreduce(x, out, self._ops[op]), what)

    def allreduce(self, x: Any, op: str) -> np.ndarray:
        x = _contiguous(x)
        out = np.empty_like(x)
        self.allreduce_into(x, out, op)
        return out

    def allgather_into(self, x: np.ndarray, out: np.ndarray) -> None:
        """``out[r] = x of process r`` (``out`` of shape ``(size, *x.shape)``)."""
        if self.size == 1:
            np.copyto(out[0], x)
            return
        self._check_usable()
        what = f"allgather of {x.dtype.name}{list(x.shape)}"
        if x.nbytes >= BLOCKING_MIN_BYTES:
            self._wait(self.data.Ibarrier(), what)
            self.data.Allgather(x, out)
            return
        self._wait(self.data.Iallgather(x, out), what)

    def allgather(self, x: Any) -> np.ndarray:
        x = _contiguous(x)
        out = np.empty((self.size, *x.shape), x.dtype)
        self.allgather_into(x, out)
        return out

    def bcast(self, x: Any, root: int = 0) -> np.ndarray:
        """A copy of process ``root``'s ``x`` (same shape and dtype on every process)."""
        out = np.array(x, copy=True, order="C")
        if self.size > 1:
            self._check_usable()
            req = self.data.Ibcast(out, root=root)
            self._wait(req, f"broadcast of {out.dtype.name}{list(out.shape)} from {root}")
        return out

    def barrier(self) -> None:
        if self.size > 1:
            self._check_usable()
            self._wait(self.data.Ibarrier(), "barrier")

    # -- waiting, failures
    def _check_usable(self) -> None:
        if self.failed is not None:
            raise DistributedError(
                f"process {self.rank}: the process group is broken ({self.failed}); no "
                "collective can complete any more"
            )

    def _wait(self, req: Any, what: str) -> None:
        """Wait for ``req`` while watching for failure notices, up to the timeout.

        MPI makes progress on a non-blocking collective only while some process tests it,
        so the wait spins (as a blocking MPI call does) for :data:`SPIN_SECONDS`, looking
        for failure notices every millisecond, then sleeps between tests (a peer that is
        still computing, compiling or loading data should not cost a busy core)."""
        if req.Test():
            return
        start = time.monotonic()
        deadline = start + self.timeout
        next_poll = start + 1e-3
        spin_until = start + SPIN_SECONDS
        pause = 0.0
        spins = 0
        while not req.Test():
            now = time.monotonic()
            if now < spin_until:
                if now >= next_poll:
                    self._poll_failures(what)
                    next_poll = now + 1e-3
                spins += 1
                if spins % 64 == 0:
                    _yield()  # now and then, let a peer on an oversubscribed core run
                continue
            self._poll_failures(what)
            if now > deadline:
                self._broken(
                    f"timed out after {self.timeout:g} s waiting for {what}: another process "
                    "stopped answering (it crashed, hangs, or runs a different number of "
                    "collectives); raise the limit with initialize(timeout=...) or "
                    "FUNCGRAD_DISTRIBUTED_TIMEOUT if a step legitimately takes longer",
                    abort=True,
                )
            pause = min(max(pause * 2, 5e-5), 1e-3)
            time.sleep(pause)

    def _poll_failures(self, what: str) -> None:
        MPI = self.mpi
        status = MPI.Status()
        if not self.ctrl.Iprobe(source=MPI.ANY_SOURCE, tag=_FAIL_TAG, status=status):
            return
        src = status.Get_source()
        msg = self.ctrl.recv(source=src, tag=_FAIL_TAG)
        self.ctrl.isend(self.rank, dest=src, tag=_ACK_TAG)
        self._broken(f"process {src} failed with {msg} (while this one waited for {what})")

    def _broken(self, why: str, abort: bool = False) -> None:
        self.failed = why
        if abort:
            # A peer that hangs would also hang MPI_Finalize at exit: end the job instead
            # (after Python has printed this error).
            atexit.register(self._abort)
        raise DistributedError(f"process {self.rank} of {self.size} stops: {why}")

    def _abort(self) -> None:
        sys.stderr.flush()
        sys.stdout.flush()
        # The launcher forwards each process's output through its own proxies, and an abort
        # kills them at once: give them a moment to pass on the error just printed.
        time.sleep(0.5)
        self.mpi.COMM_WORLD.Abort(1)

    def notify_failure(self, exc: BaseException, grace: float = 10.0) -> None:
        """Tell every other process that this one failed with ``exc``, and wait (up to
        ``grace`` seconds) until they have heard, so they stop with a clear error."""
        if self.size == 1 or self._notified or isinstance(exc, DistributedError):
            return
        self._notified = True
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        peers = [r for r in range(self.size) if r != self.rank]
        reqs = [self.ctrl.isend(text, dest=r, tag=_FAIL_TAG) for r in peers]
        deadline = time.monotonic() + min(grace, self.timeout)
        pending = set(peers)
        MPI = self.mpi
        while pending and time.monotonic() < deadline:
            status = MPI.Status()
            if self.ctrl.Iprobe(source=MPI.ANY_SOURCE, tag=_ACK_TAG, status=status):
                src = status.Get_source()
                self.ctrl.recv(source=src, tag=_ACK_TAG)
                pending.discard(src)
            else:
                time.sleep(1e-3)
        if pending:  # they are not listening: make sure the job ends rather than hangs
            atexit.register(self._abort)
        del reqs


_world: World | None = None
_lock = threading.Lock()


def _launched_by_mpi() -> bool:
    return any(
        os.environ.get(v) not in (None, "", "1") or (v == "PMIX_RANK" and v in os.environ)
        for v in _LAUNCHER_VARS
    )


def initialize(timeout: float | None = None, debug: bool | None = None) -> None:
    """Join the MPI job (``mpi4py`` initializes MPI); call once, before any collective.

    ``timeout``: seconds a collective may wait for the other processes before raising
    :class:`DistributedError` (``FUNCGRAD_DISTRIBUTED_TIMEOUT``, default 300: it must cover
    the slowest step, a first compile included). ``debug``: check that replicated values
    (parameters in ``fit``, ``shard_map`` outputs with a replicated spec) are identical on
    every process (``FUNCGRAD_DISTRIBUTED_DEBUG=1``). Installs an exception hook that tells
    the other processes when this one dies of an uncaught exception.
    """
    global _world
    with _lock:
        if timeout is None:
            timeout = _env_float("FUNCGRAD_DISTRIBUTED_TIMEOUT", 300.0)
        if debug is None:
            debug = os.environ.get("FUNCGRAD_DISTRIBUTED_DEBUG", "") not in ("", "0")
        if timeout <= 0:
            raise ValueError(f"initialize: timeout must be positive, got {timeout}")
        if _world is not None and _world.mpi is not None:
            _world.timeout, _world.debug = float(timeout), bool(debug)
            return
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                "funcgrad.distributed needs mpi4py and an MPI library: "
                "pip install 'funcgrad[mpi]' (mpi4py and the MPICH runtime from PyPI). "
                f"({e})"
            ) from None
        _world = World(MPI.COMM_WORLD, timeout, debug)
        _install_excepthook()


def is_initialized() -> bool:
    """Whether :func:`initialize` has joined an MPI job."""
    return _world is not None and _world.mpi is not None


def world() -> World:
    """The process group: the MPI job once initialized (automatically when this process
    was started by an MPI launcher and mpi4py is installed), else a world of one."""
    global _world
    w = _world
    if w is not None:
        return w
    if _launched_by_mpi():
        try:
            initialize()
            return _world  # type: ignore[return-value]
        except ImportError:
            pass
    with _lock:
        if _world is None:
            _world = World(None)
        return _world


def process_index() -> int:
    """This process's rank, ``0 <= process_index() < process_count()``."""
    return world().rank


def process_count() -> int:
    """The number of processes in the job (1 without MPI)."""
    return world().size


def _install_excepthook() -> None:
    previous = sys.excepthook

    def hook(tp: type, value: BaseException, tb: Any) -> None:
        w = _world
        if w is not None and w.size > 1 and not isinstance(value, KeyboardInterrupt):
            try:
                w.notify_failure(value, grace=5.0)
            except Exception:  # noqa: BLE001 - never mask the original error
                pass
        previous(tp, value, tb)

    sys.excepthook = hook


# ----------------------------------------------------------------------------------------
# Process-level collectives (functions of arrays and pytrees)

_AXIS = ProcessAxis(AXIS)


def _flat_groups(x: Any) -> tuple[list, Any, dict]:
    """Leaves as arrays, their structure, and leaf indices grouped by dtype."""

    leaves, tree = tree_flatten(x)
    leaves = [v if isinstance(v, (np.ndarray, Tracer)) else fnp.asarray(v) for v in leaves]
    groups: dict[Any, list[int]] = {}
    for i, leaf in enumerate(leaves):
        groups.setdefault(np.dtype(leaf.dtype), []).append(i)
    return leaves, tree, groups


def _flat_apply(x: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to one flat buffer per dtype holding every leaf of ``x``, then split
    the result back into the leaves (one collective per dtype, not per leaf)."""

    leaves, tree, groups = _flat_groups(x)
    out: list[Any] = [None] * len(leaves)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = fn(leaves[idx[0]])
            continue
        flat = fnp.concatenate([fnp.ravel(leaves[i]) for i in idx])
        res = fn(flat)
        off = 0
        for i in idx:
            shape = tuple(np.shape(leaves[i]))
            n = int(np.prod(shape, dtype=np.int64))
            out[i] = lax.reshape(lax.slice(res, (off,), (off + n,)), shape)
            off += n
    return tree_unflatten(tree, out)


def allreduce(x: Any, op: str = "sum") -> Any:
    """``op`` (``"sum" | "mean" | "max" | "min"``) of ``x`` over all processes; every
    process gets the result. ``x`` may be a pytree: its leaves travel in one flat buffer
    per dtype. Works eagerly and under jit, grad (sum's transpose is sum) and vmap."""
    if op not in _OPS:
        raise ValueError(f"allreduce: op must be one of {_OPS}, got {op!r}")
    fn = {
        "sum": lambda v: parallel.psum_p.bind(v, axis_name=_AXIS),
        "mean": lambda v: parallel.pmean(v, _AXIS),
        "max": lambda v: parallel.pmax_p.bind(v, axis_name=_AXIS),
        "min": lambda v: parallel.pmin_p.bind(v, axis_name=_AXIS),
    }[op]
    return _flat_apply(x, fn)


def allgather(x: Any) -> Any:
    """Every process's ``x`` stacked along a new leading axis, in process order (a pytree:
    leaf by leaf)."""

    return tree_map(lambda v: parallel.all_gather(v, _AXIS), x)


def broadcast(x: Any, root: int = 0) -> Any:
    """Process ``root``'s ``x`` on every process (``x`` has the same shape and dtype
    everywhere). Expressed as a sum in which only ``root`` contributes, so it is
    differentiable (the cotangents of every process flow to ``root``) and batches;
    ``-0.0`` comes back as ``0.0``."""

    n = process_count()
    if not 0 <= root < n:
        raise ValueError(f"broadcast: root must be in [0, {n}), got {root}")
    is_root = fnp.equal(parallel.axis_index(_AXIS), root)

    def one(v: Any) -> Any:
        if np.dtype(v.dtype).kind == "b":
            return one(v.astype(np.int8)).astype(bool)
        return parallel.psum_p.bind(fnp.where(is_root, v, fnp.zeros_like(v)), axis_name=_AXIS)

    return _flat_apply(x, one)


# ----------------------------------------------------------------------------------------
# shard_map over the one-axis process mesh


class PartitionSpec(tuple):
    """How a value is laid out over the process mesh, per dimension (as JAX's ``P``):
    ``P("processes")``: split along its first axis, each process holding its block;
    ``P()``: replicated (the same value on every process)."""

    def __new__(cls, *parts: Hashable | None) -> PartitionSpec:
        return super().__new__(cls, parts)

    def __repr__(self) -> str:
        return f"P{tuple.__repr__(self)}"


P = PartitionSpec


def _spec_leaves(specs: Any, tree: Any, what: str) -> list:
    """Broadcast a spec prefix (one spec, or a tuple per argument) over ``tree``'s leaves."""

    if specs is None or isinstance(specs, PartitionSpec):
        return [specs] * len(tree_flatten(tree)[0])
    if isinstance(specs, (tuple, list)) and isinstance(tree, (tuple, list)):
        if len(specs) != len(tree):
            raise ValueError(
                f"shard_map: {what} has {len(specs)} entries for {len(tree)} values; give "
                "one spec per argument (P('processes') for split data, P() for replicated)"
            )
        out = []
        for s, t in zip(specs, tree, strict=True):
            out += _spec_leaves(s, t, what)
        return out
    if isinstance(specs, dict) and isinstance(tree, dict):
        out = []
        for k in sorted(tree):
            out += _spec_leaves(specs[k], tree[k], what)
        return out
    raise ValueError(
        f"shard_map: {what} {specs!r} does not match the structure {tree_structure(tree)}"
    )


def _is_replicated(spec: Any) -> bool:
    return spec is None or all(p is None for p in spec)


def shard_map(
    f: Callable,
    *,
    in_specs: Any = None,
    out_specs: Any = None,
    axis_name: Hashable = AXIS,
) -> Callable:
    """Run ``f`` on every process, on this process's shard of each argument, with the
    process axis bound to ``axis_name`` for the collectives inside.

    ``in_specs``/``out_specs``: a :class:`PartitionSpec` per argument/output (or one for
    all): ``P(axis_name)`` for values split across processes (each passes and gets its own
    block), ``P()`` for replicated ones. With ``initialize(debug=True)`` replicated inputs
    and outputs are checked to be identical on every process. Composes with ``jit`` (inside
    or outside), ``grad`` and ``vmap`` like any function.
    """
    for specs, what in ((in_specs, "in_specs"), (out_specs, "out_specs")):
        for s in tree_flatten(specs, is_leaf=lambda v: isinstance(v, PartitionSpec))[0]:
            if isinstance(s, PartitionSpec) and any(p not in (None, axis_name) for p in s):
                raise ValueError(
                    f"shard_map: {what} entry {s!r} names an axis other than the process "
                    f"axis {axis_name!r}; the process mesh has one axis"
                )

    def mapped(*args: Any) -> Any:
        w = world()
        if w.debug and in_specs is not None:
            flags = _spec_leaves(in_specs, args, "in_specs")
            leaves = tree_flatten(args)[0]
            rep = [v for v, s in zip(leaves, flags, strict=True) if _is_replicated(s)]
            check_replicated(rep, "shard_map inputs with a replicated in_spec")
        with parallel.process_axis_name(axis_name):
            out = f(*args)
        if w.debug and out_specs is not None:
            flags = _spec_leaves(out_specs, out, "out_specs")
            leaves = tree_flatten(out)[0]
            rep = [v for v, s in zip(leaves, flags, strict=True) if _is_replicated(s)]
            check_replicated(rep, "shard_map outputs with a replicated out_spec")
        return out

    mapped.__name__ = getattr(f, "__name__", "shard_map")
    mapped.__doc__ = f.__doc__
    return mapped


def check_replicated(tree: Any, what: str = "values") -> None:
    """Raise :class:`DistributedError` unless ``tree`` is bit-identical on every process
    (one allgather of per-leaf digests; outside tracing only: traced values are skipped)."""

    w = world()
    if w.size == 1:
        return
    items = tree_flatten_with_path(tree)[0]
    if any(isinstance(v, Tracer) for _, v in items):
        return
    digests = np.zeros((len(items), 4), np.uint64)
    for i, (_, v) in enumerate(items):
        a = _contiguous(v)
        h = hashlib.sha256(str((a.shape, a.dtype.str)).encode() + a.tobytes()).digest()
        digests[i] = np.frombuffer(h, np.uint64)
    every = w.allgather(digests)
    for i, (path, _) in enumerate(items):
        differ = [r for r in range(w.size) if not np.array_equal(every[r, i], every[0, i])]
        if differ:
            raise DistributedError(
                f"{what} differ across processes: leaf {keystr(path) or '(root)'} on "
                f"process(es) {differ} is not the same as on process 0; replicated values "
                "must be computed identically on every process (same seed, same "
                "collectives, same code path)"
            )


# ----------------------------------------------------------------------------------------
# Data-parallel training (what ``train.fit(..., distributed=True)`` uses)


class DataParallel:
    """Data parallelism for a training loop: every process holds the same parameters and
    takes its share of each global batch; gradients are averaged with one allreduce per
    step, so the processes apply identical updates.

    - ``global_batch`` must be a multiple of the process count: process ``r`` takes rows
      ``[r*b, (r+1)*b)`` of every batch (``b = global_batch // count``), so the run equals a
      one-process run on the global batch, shuffling included (every process draws the
      same permutation). With memory-mapped data (``np.load(..., mmap_mode="r")``) each
      process reads only its rows.
    - :meth:`average`: gradients, loss, logged metrics and float model state (BatchNorm
      statistics) travel in one flat buffer per dtype, averaged by one MPI allreduce.
    - :meth:`synchronize` copies process 0's starting values to every process.
    - Only process 0 prints (``is_main``) and should write files.
    - Debug mode (``initialize(debug=True)``, ``FUNCGRAD_DISTRIBUTED_DEBUG=1``):
      :meth:`check` verifies after every epoch that parameters, optimizer state and model
      state are bit-identical on every process.
    """

    def __init__(self, global_batch: int) -> None:
        self.world = world()
        size = self.world.size
        if global_batch % size:
            lo = max(size, global_batch - global_batch % size)
            raise ValueError(
                f"fit(distributed=True): the batch size {global_batch} is not a multiple of "
                f"the {size} processes (each process takes an equal share of every batch); "
                f"use batch_size={lo} or {lo + size}"
            )
        self.local_batch = global_batch // size

    @property
    def is_main(self) -> bool:
        """Whether this is process 0 (the one that prints and writes checkpoints)."""
        return self.world.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's rows of a global batch's row indices."""
        r = self.world.rank
        return rows[r * self.local_batch : (r + 1) * self.local_batch]

    def fold_key(self, key: Any) -> Any:
        """A per-process key (dropout masks must differ between the processes' examples)."""

        return random.fold_in(key, self.world.rank) if self.world.size > 1 else key

    def synchronize(self, tree: Any) -> Any:
        """Process 0's ``tree`` on every process (fresh arrays; exact: a broadcast)."""
        leaves, treedef = tree_flatten(tree)
        if self.world.size == 1:
            return tree
        return tree_unflatten(treedef, [self.world.bcast(np.asarray(v)) for v in leaves])

    def average(self, grads: Any, value: Any, logs: Any, state: Any) -> tuple:
        """The mean over processes of everything a step reports: one allreduce per dtype."""
        s_leaves, s_tree = tree_flatten(state)
        floats = [i for i, v in enumerate(s_leaves) if np.dtype(v.dtype).kind in "fc"]
        grads, value, logs, s_avg = allreduce(
            (grads, value, logs, [s_leaves[i] for i in floats]), op="mean"
        )
        s_leaves = list(s_leaves)
        for i, v in zip(floats, s_avg, strict=True):
            s_leaves[i] = v
        return grads, value, logs, tree_unflatten(s_tree, s_leaves)

    def check(self, params: Any, opt_state: Any, state: Any, epoch: int) -> None:
        """In debug mode: raise unless the training state is identical on every process."""
        if self.world.debug:
            check_replicated(
                {"params": params, "opt_state": opt_state, "state": state},
                f"fit(distributed=True): the training state after epoch {epoch}",
            )

    def failed(self, exc: BaseException) -> None:
        """This process failed with ``exc``: tell the others, so that they stop too."""
        self.world.notify_failure(exc)
