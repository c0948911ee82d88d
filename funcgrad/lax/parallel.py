"""Collectives over named axes: ``psum pmean pmax pmin all_gather axis_index``, as in JAX.

A collective reduces (or gathers) a value across the instances of a *named axis*. Two kinds
of axis carry a name:

- a ``vmap`` axis (``vmap(f, axis_name="batch")``): the batching interpreter of that axis
  turns the collective into ordinary array operations (``psum`` over the batch axis is a
  ``reduce_sum`` of the batched value, whose result is the same for every instance);
- the process axis (``funcgrad.distributed``): every MPI process runs the function on its
  own data and the collective runs through MPI (allreduce/allgather on NumPy buffers). Inside
  ``jit`` the kernel calls out to MPI once per collective (see
  ``funcgrad/backend/numba/collective_rules.py``).

Binding resolves the name: the innermost ``vmap`` with that name, else a process axis bound
by ``distributed.shard_map``/``distributed.allreduce`` (the parameter then becomes a
:class:`ProcessAxis`, so a jaxpr staged under ``jit`` keeps meaning the processes), else a
``NameError``. A collective over a ``vmap`` axis always goes to that axis's interpreter, even
when its operand does not depend on the mapped inputs (``psum(1.0, "i")`` is the axis size).

Derivatives follow JAX: ``psum`` and ``all_gather`` are linear; ``psum``'s transpose is
``psum`` (so ``grad`` of a loss that was ``psum``-ed sums the per-instance cotangents: take
``pmean`` of the gradients, not of the loss); ``all_gather``'s transpose is a ``psum``
followed by taking this instance's slice; ``pmax``/``pmin`` pass the tangent of the
instances that attain the extremum (averaged over ties, as ``reduce_max``).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad import core, lax
from funcgrad.core import Primitive, ShapedArray, shaped_aval
from funcgrad.interpreters import ad, ad_templates, batching
from funcgrad.lax._base import NUMBER, check_dtype
from funcgrad.tree_util import tree_map

__all__ = [
    "ProcessAxis",
    "all_gather",
    "axis_index",
    "axis_size",
    "pmax",
    "pmean",
    "pmin",
    "psum",
]

ORDERED = "fiu"


class ProcessAxis:
    """The process axis (one instance per MPI process) under the name it was bound with.

    It is what a collective's ``axis_name`` parameter holds once resolved to the processes:
    a staged jaxpr or a compiled kernel then reduces across processes whatever names are
    bound when it runs. Equal by name; prints as the name."""

    __slots__ = ("name",)

    def __init__(self, name: Hashable) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return type(other) is ProcessAxis and other.name == self.name

    def __hash__(self) -> int:
        return hash(("ProcessAxis", self.name))

    def __repr__(self) -> str:
        return str(self.name)


class _Aliases(threading.local):
    """Names bound to the process axis (by ``distributed.shard_map``), innermost last, each
    with the interpreter-stack depth at binding (a later ``vmap`` of the same name wins)."""

    def __init__(self) -> None:
        self.stack: list[tuple[Hashable, int]] = []


_aliases = _Aliases()


@contextmanager
def process_axis_name(name: Hashable) -> Iterator[ProcessAxis]:
    """Bind ``name`` to the process axis for the duration (``distributed.shard_map``)."""
    _aliases.stack.append((name, len(core.trace_stack())))
    try:
        yield ProcessAxis(name)
    finally:
        _aliases.stack.pop()


def _resolve(name: Hashable) -> Any:
    """The ``vmap`` interpreter (a MainTrace) or the :class:`ProcessAxis` that ``name`` is."""
    if type(name) is ProcessAxis:
        return name
    depth = -1
    for alias, d in reversed(_aliases.stack):
        if alias == name:
            depth = d
            break
    stack = core.trace_stack()
    for main in reversed(stack):
        if main.level < depth:
            break
        trace = main.trace
        if type(trace) is batching.BatchTrace and trace.axis_name == name:
            return main
    if depth >= 0:
        return ProcessAxis(name)
    raise NameError(
        f"unbound axis name: {name!r}. A collective (psum, pmean, all_gather, axis_index...) "
        f"names the axis it reduces over: call it inside `vmap(f, axis_name={name!r})`, or "
        f"inside `funcgrad.distributed.shard_map(f, ..., axis_name={name!r})` to reduce "
        "across processes"
    )


def axis_size(axis_name: Hashable) -> int:
    """The number of instances of a bound axis (the ``vmap`` size or the process count)."""
    where = _resolve(axis_name)
    if type(where) is ProcessAxis:
        from funcgrad import distributed

        return distributed.process_count()
    return where.global_data


class _AxisPrimitive(Primitive):
    """A collective: ``bind`` sends it to the interpreter of its named axis (see above)."""

    __slots__ = ()

    def bind(self, *args: Any, axis_name: Hashable, **params: Any) -> Any:
        where = _resolve(axis_name)
        if type(where) is ProcessAxis:
            return Primitive.bind(self, *args, axis_name=where, **params)
        # Validate here: the vmap rule does not go through abstract eval.
        self.abstract_eval(*map(shaped_aval, args), axis_name=axis_name, **params)
        params = dict(params, axis_name=axis_name)
        trace = core.find_top_trace(args)
        if trace.main.level < where.level:
            trace = where.trace
        if trace.raw_args:
            return trace.process_primitive(self, args, params)
        tracers = [core.full_raise(trace, a) for a in args]
        return core.full_lower(trace.process_primitive(self, tracers, params))


def _world() -> Any:
    from funcgrad import distributed

    return distributed.world()


def _check_process_axis(name: str, axis_name: Any) -> None:
    if type(axis_name) is not ProcessAxis:
        raise NameError(
            f"{name}: axis {axis_name!r} is not bound here (a collective over a vmap axis was "
            "evaluated outside that vmap); return the value from the vmapped function instead"
        )


def _same(name: str, kinds: str):
    def abstract_eval(x: ShapedArray, *, axis_name: Any) -> ShapedArray:
        check_dtype(name, x, kinds)
        return ShapedArray(x.shape, x.dtype, x.weak_type)

    return abstract_eval


# -- psum, pmax, pmin
def _reduction(name: str, op: str, kinds: str) -> Primitive:
    prim = _AxisPrimitive(name)
    prim.def_abstract_eval(_same(name, kinds))

    def impl(x: Any, *, axis_name: Any) -> np.ndarray:
        _check_process_axis(name, axis_name)
        x = np.asarray(x)
        if x.dtype.kind not in kinds:
            prim.abstract_eval(shaped_aval(x), axis_name=axis_name)
        return _world().allreduce(x, op)

    prim.def_impl(impl)

    def batch_other(args, dims, *, axis_name):
        # Another axis's collective is elementwise across this one's instances.
        return prim.bind(args[0], axis_name=axis_name), dims[0]

    batching.primitive_batchers[prim] = batch_other
    return prim


psum_p = _reduction("psum", "sum", NUMBER)
pmax_p = _reduction("pmax", "max", ORDERED)
pmin_p = _reduction("pmin", "min", ORDERED)


def _psum_own(size, args, dims, *, axis_name):
    (x,), (d,) = args, dims
    if d is None:
        dtype = core.get_aval(x).dtype
        return lax.mul(x, np.asarray(size, dtype)), None
    return lax.reduce_sum(x, (d,)), None


def _chooser_own(reduce):
    def rule(size, args, dims, *, axis_name):
        (x,), (d,) = args, dims
        return (x, None) if d is None else (reduce(x, (d,)), None)

    return rule


def _reduce_max(x, axes):
    return lax.reduce_max(x, axes)


def _reduce_min(x, axes):
    return lax.reduce_min(x, axes)


batching.axis_batchers[psum_p] = _psum_own
batching.axis_batchers[pmax_p] = _chooser_own(_reduce_max)
batching.axis_batchers[pmin_p] = _chooser_own(_reduce_min)

ad.deflinear(psum_p, lambda ct, x, *, axis_name: [psum_p.bind(ct, axis_name=axis_name)])


def _chooser_jvp(prim: Primitive):
    def jvp(g, ans, x, *, axis_name):
        """The tangent of the instances that attain the extremum, averaged over ties."""
        g = np.asarray(g) if not isinstance(g, core.Tracer) else g
        location = lax.convert_element_type(lax.eq(x, ans), core.get_aval(g).dtype)
        num = psum_p.bind(lax.mul(g, location), axis_name=axis_name)
        return lax.div(num, psum_p.bind(location, axis_name=axis_name))

    return jvp


ad.defjvp2(pmax_p, _chooser_jvp(pmax_p))
ad.defjvp2(pmin_p, _chooser_jvp(pmin_p))


# -- all_gather
all_gather_p = _AxisPrimitive("all_gather")


def _gathered_shape(shape: tuple[int, ...], axis: int, tiled: bool, size: int) -> tuple:
    if tiled:
        return (*shape[:axis], size * shape[axis], *shape[axis + 1 :])
    return (*shape[:axis], size, *shape[axis:])


def _all_gather_abstract_eval(x, *, axis_name, axis, tiled, axis_size):
    limit = x.ndim if tiled else x.ndim + 1
    if not 0 <= axis < limit or (tiled and x.ndim == 0):
        raise ValueError(
            f"all_gather: axis={axis} is out of range for {x.str_short()} (tiled={tiled}); "
            f"use an axis in [0, {limit}) (tiled needs an operand of rank >= 1)"
        )
    return ShapedArray(_gathered_shape(x.shape, axis, tiled, axis_size), x.dtype)


def _all_gather_impl(x, *, axis_name, axis, tiled, axis_size):
    _check_process_axis("all_gather", axis_name)
    x = np.asarray(x)
    _all_gather_abstract_eval(
        shaped_aval(x), axis_name=axis_name, axis=axis, tiled=tiled, axis_size=axis_size
    )
    stacked = _world().allgather(x)  # (size, *shape), process order
    return arrange_gathered(stacked, axis, tiled)


def arrange_gathered(stacked: np.ndarray, axis: int, tiled: bool) -> np.ndarray:
    """Per-process blocks stacked on axis 0 -> the layout ``all_gather`` promises."""
    out = np.moveaxis(stacked, 0, axis)
    if tiled:
        shape = stacked.shape[1:]
        out = out.reshape(_gathered_shape(shape, axis, True, stacked.shape[0]))
    return np.ascontiguousarray(out)


all_gather_p.def_abstract_eval(_all_gather_abstract_eval)
all_gather_p.def_impl(_all_gather_impl)


def _all_gather_own(size, args, dims, *, axis_name, axis, tiled, axis_size):
    (x,), (d,) = args, dims
    if d is None:
        shape = core.get_aval(x).shape
        full = (*shape[:axis], size, *shape[axis:])
        keep = tuple(i for i in range(len(full)) if i != axis)
        x = lax.broadcast_in_dim(x, full, keep)
    else:
        x = batching.moveaxis(x, d, axis)
    if tiled:
        shape = core.get_aval(x).shape
        x = lax.reshape(x, _gathered_shape(shape[:axis] + shape[axis + 1 :], axis, True, size))
    return x, None


def _all_gather_other(args, dims, *, axis_name, axis, tiled, axis_size):
    x = batching.moveaxis(args[0], dims[0], 0)
    out = all_gather_p.bind(x, axis_name=axis_name, axis=axis + 1, tiled=tiled, axis_size=axis_size)
    return out, 0


def _all_gather_transpose(ct, x, *, axis_name, axis, tiled, axis_size):
    """Sum the cotangents of every instance, keep this instance's block."""
    summed = psum_p.bind(ct, axis_name=axis_name)
    idx = axis_index_p.bind(axis_name=axis_name)
    if tiled:
        n = x.aval.shape[axis]
        return [lax.dynamic_slice_in_dim(summed, lax.mul(idx, np.int32(n)), n, axis)]
    return [lax.dynamic_index_in_dim(summed, idx, axis, keepdims=False)]


batching.axis_batchers[all_gather_p] = _all_gather_own
batching.primitive_batchers[all_gather_p] = _all_gather_other
ad.deflinear(all_gather_p, _all_gather_transpose)


# -- axis_index
axis_index_p = _AxisPrimitive("axis_index")
axis_index_p.def_abstract_eval(lambda *, axis_name: ShapedArray((), np.dtype(np.int32)))


def _axis_index_impl(*, axis_name):
    _check_process_axis("axis_index", axis_name)
    return np.asarray(_world().rank, np.int32)


axis_index_p.def_impl(_axis_index_impl)


def _axis_index_own(size, args, dims, *, axis_name):
    return lax.iota(np.int32, size), 0


batching.axis_batchers[axis_index_p] = _axis_index_own
batching.primitive_batchers[axis_index_p] = lambda args, dims, **p: (
    axis_index_p.bind(**p),
    None,
)
ad.defjvp_zero(axis_index_p)

COLLECTIVES = (psum_p, pmax_p, pmin_p, all_gather_p, axis_index_p)

# Eager grad replays cached rule programs that call impls directly; a collective over a
# vmap axis must go through bind (to reach its axis), so it always runs its rules.
for _p in COLLECTIVES:
    ad_templates.always_run_rules(_p)


def _uses_axis(params: dict, name: Hashable) -> bool:
    """Whether a jaxpr among ``params`` (nested too) has a collective over ``name``."""
    from funcgrad.ir import ClosedJaxpr, Jaxpr

    def walk(v: Any) -> bool:
        if isinstance(v, ClosedJaxpr):
            v = v.jaxpr
        if isinstance(v, Jaxpr):
            for eqn in v.eqns:
                if eqn.primitive in COLLECTIVES and eqn.params.get("axis_name") == name:
                    return True
                if any(walk(p) for p in eqn.params.values()):
                    return True
            return False
        if isinstance(v, (tuple, list)):
            return any(walk(p) for p in v)
        return False

    return any(walk(v) for v in params.values())


batching.uses_axis_name.append(_uses_axis)


# ----------------------------------------------------------------------------------------
# The user-facing functions (pytrees, tuples of axis names), as in ``jax.lax``


def _names(axis_name: Any) -> tuple:
    return tuple(axis_name) if isinstance(axis_name, (tuple, list)) else (axis_name,)


def _reduce(prim: Primitive, x: Any, axis_name: Any) -> Any:
    """``prim`` over each name of ``axis_name`` in turn, on every leaf of ``x``."""

    def one(leaf: Any) -> Any:
        for name in _names(axis_name):
            leaf = prim.bind(_as_array(leaf), axis_name=name)
        return leaf

    return tree_map(one, x)


def psum(x: Any, axis_name: Any) -> Any:
    """Sum of ``x`` (a pytree) over the instances of ``axis_name`` (a name or a tuple of
    names); every instance gets the sum."""
    return _reduce(psum_p, x, axis_name)


def pmean(x: Any, axis_name: Any) -> Any:
    """Mean of ``x`` over the instances of ``axis_name`` (integers give floats, as
    ``numpy.mean``)."""
    n = 1
    for name in _names(axis_name):
        n *= axis_size(name)
    return tree_map(_divide_by(n), psum(x, axis_name))


def _divide_by(n: int) -> Any:
    """``s / n`` with NumPy's true-division dtypes (integers and bools give float64)."""

    def div(s: Any) -> Any:
        dtype = core.get_aval(s).dtype
        if dtype.kind in "biu":
            s = lax.convert_element_type(s, np.dtype(np.float64))
            dtype = np.dtype(np.float64)
        return lax.div(s, np.asarray(n, dtype)[()])

    return div


def pmax(x: Any, axis_name: Any) -> Any:
    """Elementwise maximum of ``x`` over the instances of ``axis_name``."""
    return _reduce(pmax_p, x, axis_name)


def pmin(x: Any, axis_name: Any) -> Any:
    """Elementwise minimum of ``x`` over the instances of ``axis_name``."""
    return _reduce(pmin_p, x, axis_name)


def all_gather(x: Any, axis_name: Any, *, axis: int = 0, tiled: bool = False) -> Any:
    """Every instance's ``x`` stacked along a new ``axis`` (in instance order), or
    concatenated along the existing ``axis`` with ``tiled=True``.

    Over a tuple of names the instances are ordered row-major (the first name is the
    slowest, as :func:`axis_index` numbers them): one gather over the last name, then
    concatenations over the others."""
    names = _names(axis_name)
    sizes = [axis_size(name) for name in names]

    def one(leaf: Any) -> Any:
        leaf = _as_array(leaf)
        ndim = core.get_aval(leaf).ndim
        ax = int(axis + (ndim if tiled else ndim + 1) if axis < 0 else axis)
        for k in range(len(names) - 1, -1, -1):
            last = k == len(names) - 1
            leaf = all_gather_p.bind(
                leaf,
                axis_name=names[k],
                axis=ax,
                tiled=bool(tiled) if last else True,
                axis_size=sizes[k],
            )
        return leaf

    return tree_map(one, x)


def axis_index(axis_name: Any) -> Any:
    """This instance's index along ``axis_name`` (int32; row-major over a tuple of names)."""
    names = _names(axis_name)
    idx = axis_index_p.bind(axis_name=names[0])
    for name in names[1:]:
        idx = lax.add(lax.mul(idx, np.int32(axis_size(name))), axis_index_p.bind(axis_name=name))
    return idx


def _as_array(x: Any) -> Any:
    return core.as_array(x)
