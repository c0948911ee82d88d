"""vmap: the batching interpreter and the batching-rule table.

Rule signature: ``primitive_batchers[p](args, dims, **params) -> (out, out_dim)``, where
each ``dims[i]`` is the batched axis of ``args[i]`` or ``not_mapped`` (None); for
``multiple_results`` primitives ``out`` and ``out_dim`` are lists. Rules produce batched
primitives (one ``dot_general`` with batch dimensions, one ``gather``...), never loops.
When no argument is batched the trace skips the rule and binds the primitive directly.

Named axes (``vmap(f, axis_name="batch")``): each :class:`BatchTrace` carries the name of
the axis it maps (or None). Collectives over that name (``lax.psum`` & co., see
``funcgrad/lax/parallel.py``) are batched by :data:`axis_batchers` (the reduction across
the batch axis itself); over any other name by :data:`primitive_batchers` as usual. The
sub-traces a rule starts (batching a ``jit``/``cond``/``scan`` body) map the same axis, so
they inherit the name: rules run with the name in a thread-local context, which a new
``BatchTrace`` reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import Primitive, ShapedArray, Trace, Tracer, get_aval
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, eval_jaxpr

not_mapped = None

primitive_batchers: dict[Primitive, Callable] = {}

#: Collectives over the trace's own named axis:
#: ``axis_batchers[p](axis_size, args, dims, **params) -> (out, out_dim)``.
axis_batchers: dict[Primitive, Callable] = {}

#: Whether a primitive's params (a jaxpr) contain a collective over a given axis name:
#: set by ``funcgrad.lax.parallel`` (a call whose operands are all unbatched must still be
#: batched when its body reduces over this trace's axis).
uses_axis_name: list[Callable[[dict, Hashable], bool]] = []


class _AxisContext(threading.local):
    #: The axis name that a BatchTrace created now maps (rules set it to their trace's).
    name: Hashable | None = None


_axis_ctx = _AxisContext()
_INHERIT: Any = object()


def current_axis_name() -> Hashable | None:
    """The axis name of the batching rule now running (None outside rules / unnamed)."""
    return _axis_ctx.name


def axis_size_of(args: Sequence[Any], dims: Sequence[int | None]) -> int:
    """The batch size, read off the first batched argument."""
    for x, d in zip(args, dims, strict=True):
        if d is not None:
            return get_aval(x).shape[d]
    raise AssertionError("axis_size_of: no batched argument")


def moveaxis(x: Any, src: int, dst: int) -> Any:
    """Move axis ``src`` of ``x`` to ``dst`` with one ``transpose`` (or nothing)."""
    from funcgrad import lax

    ndim = get_aval(x).ndim
    src, dst = src % ndim, dst % ndim
    if src == dst:
        return x
    perm = [i for i in range(ndim) if i != src]
    perm.insert(dst, src)
    return lax.transpose(x, tuple(perm))


def bdim_at_front(x: Any, bdim: int | None, size: int) -> Any:
    """``x`` with its batch axis first; an unbatched ``x`` is broadcast to ``size``."""
    from funcgrad import lax

    if bdim is not_mapped:
        aval = get_aval(x)
        return lax.broadcast_in_dim(x, (size, *aval.shape), tuple(range(1, aval.ndim + 1)))
    return moveaxis(x, bdim, 0)


def move_batch_axis(x: Any, src: int | None, dst: int, size: int) -> Any:
    """Put the batch axis of ``x`` at ``dst`` (broadcasting if it has none)."""
    if src is not_mapped:
        x = bdim_at_front(x, None, size)
        src = 0
    return moveaxis(x, src, dst)


# ----------------------------------------------------------------------------------------
# Rule builders


def defvectorized(primitive: Primitive) -> None:
    """Unary elementwise: the batch axis passes straight through."""

    def rule(args, dims, **params):
        return primitive.bind(*args, **params), dims[0]

    primitive_batchers[primitive] = rule


def defbroadcasting(primitive: Primitive) -> None:
    """N-ary elementwise with NumPy broadcasting: batch axes go first, ranks line up.

    Unbatched operands stay unbatched (NumPy broadcasting handles them); a batched operand
    of lower rank than the result gets size-1 axes after its batch axis.
    """

    def rule(args, dims, **params):
        from funcgrad import lax

        rank = max(get_aval(x).ndim - (d is not None) for x, d in zip(args, dims, strict=True))
        new_args = []
        for x, d in zip(args, dims, strict=True):
            if d is None:
                new_args.append(x)
                continue
            x = moveaxis(x, d, 0)
            shape = get_aval(x).shape
            if len(shape) - 1 < rank:
                x = lax.reshape(x, (shape[0],) + (1,) * (rank - len(shape) + 1) + shape[1:])
            new_args.append(x)
        return primitive.bind(*new_args, **params), 0

    primitive_batchers[primitive] = rule


# ----------------------------------------------------------------------------------------
# The batching interpreter


class BatchTracer(Tracer):
    __slots__ = ("val", "batch_dim")

    def __init__(self, trace: BatchTrace, val: Any, batch_dim: int | None) -> None:
        self._trace = trace
        self.val = val
        self.batch_dim = batch_dim

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.val)
        if self.batch_dim is not_mapped:
            return aval
        shape = aval.shape
        return ShapedArray(shape[: self.batch_dim] + shape[self.batch_dim + 1 :], aval.dtype)

    def full_lower(self) -> Any:
        if self.batch_dim is not_mapped:
            return core.full_lower(self.val)
        return self

    def _provenance(self) -> str | None:
        v = self.val
        return v._provenance() if isinstance(v, Tracer) else "a value batched by vmap"


class BatchTrace(Trace):
    __slots__ = ("axis_name",)

    def __init__(self, main: Any) -> None:
        super().__init__(main)
        self.axis_name = _axis_ctx.name

    @property
    def axis_size(self) -> int:
        return self.main.global_data

    def pure(self, val: Any) -> BatchTracer:
        return BatchTracer(self, val, not_mapped)

    lift = pure

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        vals = [t.val for t in tracers]
        dims = [t.batch_dim for t in tracers]
        name = self.axis_name
        if name is not None and primitive in axis_batchers and params["axis_name"] == name:
            out, out_dim = axis_batchers[primitive](self.axis_size, vals, dims, **params)
            return BatchTracer(self, out, out_dim)
        if all(d is not_mapped for d in dims):
            if name is None or not vals or not any(u(params, name) for u in uses_axis_name):
                out = primitive.bind(*vals, **params)
                if primitive.multiple_results:
                    return [BatchTracer(self, x, not_mapped) for x in out]
                return BatchTracer(self, out, not_mapped)
            # The body reduces over this axis: batch it (one operand broadcast).
            vals[0] = bdim_at_front(vals[0], None, self.axis_size)
            dims[0] = 0
        rule = primitive_batchers.get(primitive)
        if rule is None:
            raise NotImplementedError(f"Batching rule for '{primitive.name}' not implemented")
        prev = _axis_ctx.name
        if prev is name:
            out, out_dim = rule(vals, dims, **params)
        else:
            _axis_ctx.name = name
            try:
                out, out_dim = rule(vals, dims, **params)
            finally:
                _axis_ctx.name = prev
        if primitive.multiple_results:
            return [BatchTracer(self, x, d) for x, d in zip(out, out_dim, strict=True)]
        return BatchTracer(self, out, out_dim)


def vmap_flat(
    fun: Callable,
    in_axes: Sequence[int | None],
    out_axes: Sequence[int | None] | Callable[[], Sequence[int | None]],
    axis_size: int,
    args: Sequence[Any],
    axis_name: Hashable | None = _INHERIT,
) -> list[Any]:
    """vmap on flat lists; in_axes validated and non-negative.

    ``out_axes`` may be a thunk, called after tracing (when the output structure is known).
    ``axis_name`` names the mapped axis for collectives; by default it is the axis of the
    batching rule that calls this (None outside rules), as a rule batches the same axis.
    """
    with core.new_main(BatchTrace, axis_size) as main:
        trace = main.trace
        if axis_name is not _INHERIT:
            trace.axis_name = axis_name
        # Unmapped arrays are boxed too, so they behave as traced arrays do (indexing a
        # NumPy array with a batched index works, as in JAX); other leaves (Python numbers,
        # objects) pass through as they are.
        tracers_in = [
            BatchTracer(trace, x, ax)
            if ax is not not_mapped or isinstance(x, (np.ndarray, np.generic))
            else x
            for x, ax in zip(args, in_axes, strict=True)
        ]
        outs = fun(*tracers_in)
        tracers_out = [core.full_raise(trace, x) for x in outs]
        vals_out = [t.val for t in tracers_out]
        dims_out = [t.batch_dim for t in tracers_out]
    if callable(out_axes):
        out_axes = out_axes()
    results = []
    for val, d, out_ax in zip(vals_out, dims_out, out_axes, strict=True):
        if out_ax is None:
            if d is not not_mapped:
                raise ValueError(
                    "vmap has out_axes=None for an output that is batched; only outputs that "
                    "do not depend on the mapped inputs can have out_axes=None"
                )
            results.append(val)
        else:
            ndim = get_aval(val).ndim + (d is not_mapped)
            results.append(move_batch_axis(val, d, out_ax % ndim, axis_size))
    # An input returned as it is (``vmap(lambda v: v)``) is copied: results never alias inputs.
    ids = {id(x) for x in args if isinstance(x, np.ndarray)}
    return [np.array(r) if type(r) is np.ndarray and id(r) in ids else r for r in results]


def batch_axes_to_front(
    args: Sequence[Any], dims: Sequence[int | None]
) -> tuple[list[Any], list[int | None]]:
    """Batched arguments with their batch axis moved to the front (unbatched ones as they
    are), and the new dims (0 or None)."""
    moved = [x if d is None else moveaxis(x, d, 0) for x, d in zip(args, dims, strict=True)]
    return moved, [None if d is None else 0 for d in dims]


# ----------------------------------------------------------------------------------------
# The jaxpr-to-jaxpr transformation (for primitives that carry jaxprs)


def batch_jaxpr(
    closed: ClosedJaxpr,
    in_batched: Sequence[bool],
    size: int,
    instantiate: bool | Sequence[bool],
) -> tuple[ClosedJaxpr, list[bool]]:
    """``closed`` vectorized over a leading axis of size ``size``.

    Inputs marked in ``in_batched`` get the batch axis first; outputs are batched along
    axis 0 when they depend on a batched input or ``instantiate`` asks for it (an unbatched
    output is broadcast then). Returns the jaxpr and which outputs are batched.
    """
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * len(closed.out_avals)
    avals = [
        ShapedArray((size, *a.shape), a.dtype) if b else a
        for a, b in zip(closed.in_avals, in_batched, strict=True)
    ]
    box: list[list[bool]] = []

    def fun(*args: Any) -> list[Any]:
        with core.new_main(BatchTrace, size) as main:
            trace = main.trace
            tracers = [
                BatchTracer(trace, x, 0) if b else x for x, b in zip(args, in_batched, strict=True)
            ]
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *tracers)
            outs = [core.full_raise(trace, core.as_array(o)) for o in outs]
            vals = [o.val for o in outs]
            dims = [o.batch_dim for o in outs]
        out_b = [d is not None or inst for d, inst in zip(dims, instantiate, strict=True)]
        box.append(out_b)
        return [
            move_batch_axis(v, d, 0, size) if b else v
            for v, d, b in zip(vals, dims, out_b, strict=True)
        ]

    return pe.trace_to_jaxpr(fun, avals), box[0]
