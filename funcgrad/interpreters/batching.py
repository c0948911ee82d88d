"""vmap: the batching interpreter and the batching-rule table.

Rule signature: ``primitive_batchers[p](args, dims, **params) -> (out, out_dim)``, where
each ``dims[i]`` is the batched axis of ``args[i]`` or ``not_mapped`` (None); for
``multiple_results`` primitives ``out`` and ``out_dim`` are lists. Rules produce batched
primitives (one ``dot_general`` with batch dimensions, one ``gather``...), never loops.
When no argument is batched the trace skips the rule and binds the primitive directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from funcgrad import core
from funcgrad.core import Primitive, ShapedArray, Trace, Tracer, get_aval
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, eval_jaxpr

not_mapped = None

primitive_batchers: dict[Primitive, Callable] = {}


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
    __slots__ = ()

    @property
    def axis_size(self) -> int:
        return self.main.global_data

    def pure(self, val: Any) -> BatchTracer:
        return BatchTracer(self, val, not_mapped)

    lift = pure

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        vals = [t.val for t in tracers]
        dims = [t.batch_dim for t in tracers]
        if all(d is not_mapped for d in dims):
            out = primitive.bind(*vals, **params)
            if primitive.multiple_results:
                return [BatchTracer(self, x, not_mapped) for x in out]
            return BatchTracer(self, out, not_mapped)
        rule = primitive_batchers.get(primitive)
        if rule is None:
            raise NotImplementedError(f"Batching rule for '{primitive.name}' not implemented")
        out, out_dim = rule(vals, dims, **params)
        if primitive.multiple_results:
            return [BatchTracer(self, x, d) for x, d in zip(out, out_dim, strict=True)]
        return BatchTracer(self, out, out_dim)


def vmap_flat(
    fun: Callable,
    in_axes: Sequence[int | None],
    out_axes: Sequence[int | None] | Callable[[], Sequence[int | None]],
    axis_size: int,
    args: Sequence[Any],
) -> list[Any]:
    """vmap on flat lists; in_axes validated and non-negative.

    ``out_axes`` may be a thunk, called after tracing (when the output structure is known).
    """
    with core.new_main(BatchTrace, axis_size) as main:
        trace = main.trace
        tracers_in = [
            BatchTracer(trace, x, ax) if ax is not not_mapped else x
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
    return results


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
