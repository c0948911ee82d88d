"""Lowering of the collectives (``funcgrad/lax/parallel.py``): the kernel calls out to MPI.

A collective that reaches the backend reduces across processes (a ``vmap`` axis never gets
here: batching turned it into array operations). The kernel allocates the result, then
leaves compiled code once, in a numba ``objmode`` block, to run the MPI call on the operand
and result buffers in place (no copies: numba hands the same memory to NumPy), and goes on.
So a jitted training step whose gradients travel in one flat buffer calls MPI once per step,
never per element. The call-out costs a few microseconds next to the MPI latency.

The called Python functions are looked up by name when the kernel runs (object mode), so
a kernel cached on disk works in every process of the job, whatever its rank.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from funcgrad.backend.numba import compile as _compile
from funcgrad.backend.numba import helpers as _helpers_module
from funcgrad.backend.numba.lowering import opaque
from funcgrad.errors import LoweringError
from funcgrad.lax.parallel import ProcessAxis, arrange_gathered

_OBJMODE = "fg_objmode"

# numba notes that the object-mode block holds the GIL (kernels are nogil): expected here.
warnings.filterwarnings("ignore", message=r".*Code running in object mode won't allow parallel")


def fg_allreduce(op: str, x: np.ndarray, out: np.ndarray) -> None:
    """Kernel call-out: ``out[...] = op over processes of x``."""
    from funcgrad import distributed

    distributed.world().allreduce_into(x, out, op)


def fg_allgather(x: np.ndarray, out: np.ndarray, axis: int, tiled: bool) -> None:
    """Kernel call-out: ``out`` = every process's ``x``, laid out as ``all_gather`` says."""
    from funcgrad import distributed

    w = distributed.world()
    stacked = np.empty((w.size, *x.shape), x.dtype)
    w.allgather_into(x, stacked)
    np.copyto(out, arrange_gathered(stacked, axis, tiled))


def fg_process_index(out: np.ndarray) -> None:
    """Kernel call-out: this process's rank into the 1-element ``out``."""
    from funcgrad import distributed

    out[0] = distributed.world().rank


_CALLOUTS = {
    "fg_allreduce": fg_allreduce,
    "fg_allgather": fg_allgather,
    "fg_process_index": fg_process_index,
}


_registered: set[str] = set()


def _use(ctx: Any, name: str) -> str:
    """Make ``name`` (a call-out, or numba's ``objmode``) a global of the kernel module.

    Kernel modules import their helpers from ``helpers.py`` by name, and the compiler keeps
    ready helpers in its table; both get these Python objects (not compiled: object mode
    calls them as they are)."""
    if name not in _registered:
        value = _compile.numba_module().objmode if name == _OBJMODE else _CALLOUTS[name]
        _helpers_module.register(name, value, plain=True)
        _registered.add(name)
    return ctx.helper(name)


def _process_axis(ctx: Any, axis_name: Any) -> None:
    if type(axis_name) is not ProcessAxis:
        raise LoweringError(
            f"numba backend: {ctx.eqn.primitive.name} over axis {axis_name!r} reached the "
            "compiler, but that name is bound by no vmap or process axis here"
        )


def _flat(ctx: Any, name: str, size: int) -> str:
    flat = ctx.fresh(name + "_f")
    ctx.emit(f"{flat} = {name}.reshape(({size},))")
    return flat


def _call_out(ctx: Any, call: str) -> None:
    ctx.emit(f"with {_use(ctx, _OBJMODE)}():")
    ctx.push()
    ctx.emit(call)
    ctx.pop()


def _reduction(name: str, op: str) -> None:
    @opaque(name)
    def rule(ctx, x, *, axis_name):
        _process_axis(ctx, axis_name)
        out, aval = ctx.outs[0], ctx.out_avals[0]
        ctx.empty(out, aval.shape, aval.dtype)
        n = max(1, aval.size)
        xf, of = _flat(ctx, ctx.arg(x), n), _flat(ctx, out, n)
        _call_out(ctx, f"{_use(ctx, 'fg_allreduce')}({op!r}, {xf}, {of})")


_reduction("psum", "sum")
_reduction("pmax", "max")
_reduction("pmin", "min")


@opaque("all_gather")
def _all_gather(ctx, x, *, axis_name, axis, tiled, axis_size):
    _process_axis(ctx, axis_name)
    out, aval = ctx.outs[0], ctx.out_avals[0]
    ctx.empty(out, aval.shape, aval.dtype)
    call = f"{_use(ctx, 'fg_allgather')}({ctx.arg(x)}, {out}, {int(axis)}, {bool(tiled)})"
    _call_out(ctx, call)


@opaque("axis_index")
def _axis_index(ctx, *, axis_name):
    _process_axis(ctx, axis_name)
    out = ctx.outs[0]
    buf = ctx.fresh("rank")
    ctx.empty(buf, (1,), np.dtype(np.int32))
    _call_out(ctx, f"{_use(ctx, 'fg_process_index')}({buf})")
    ctx.emit(f"{out} = {buf}.reshape(())")
