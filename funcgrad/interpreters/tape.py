"""Eager reverse mode on a tape: ``grad``/``vjp`` of concrete values outside jit and vmap.

Reverse mode in general is linearize (JVP + partial evaluation) followed by transposition
(see ``ad.py``): two interpreters per value, a jaxpr equation per tangent operation, and a
backward pass that interprets that jaxpr. When ``grad``/``value_and_grad``/``vjp`` run with
no transformation around them and concrete inputs (the eager case), all that machinery
costs far more than the NumPy work of small programs. So in that case (only) funcgrad
records an autograd-style *tape* instead: one :class:`TapeTracer` per value (its NumPy
value and the tape node that made it), one node per primitive application, and a backward
pass that walks the nodes in reverse creation order calling each node's VJP.

The VJPs come from the same rules as everywhere else, so the results are those of the
general path:

- First-order primitives use the cached linearization templates of ``ad_templates.py`` (the jvp rule
  traced once per primitive, parameters, input types and differentiated inputs, split by
  partial evaluation): the forward runs the template's *known* program (primal output and
  residuals) on the NumPy values; the node keeps the residuals. Its VJP is the transpose of
  the template's *linear* program, itself traced once into a program
  (``ad_templates.template_vjp``)
  and replayed on NumPy values; under a transformation (``vmap`` of a ``vjp`` function,
  say) the linear program is transposed by ``ad.backward_pass`` instead.
- Everything else (primitives carrying jaxprs or functions: control flow, ``checkpoint``,
  ``jit`` calls, ``custom_jvp``/``custom_vjp`` functions; rules that need concrete values)
  is linearized as one call with ``ad.linearize_flat`` and its node transposes that
  linearization. Values the call closes over that are themselves on the tape (a
  ``custom_jvp`` function closing over a differentiated parameter) keep their own path:
  the call's primal output depends on them through the nodes recorded while it ran.

The tape is the outermost reverse-mode level, so its VJPs need only first-order values:
residuals are plain NumPy values, and a node's VJP is linear in its cotangent. Inner
transformations (``grad`` of ``grad``, ``vmap``/``jit``/``jvp`` inside ``grad``) run their
usual interpreters on top of it; the tape only sees primitives whose top-level operands are
its own tracers. Under ``jit``, ``vmap``, ``make_jaxpr`` or another transformation,
``grad`` never uses the tape, so ``make_jaxpr(grad(f))`` is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ConcreteArray, Primitive, ShapedArray, Trace, Tracer, shaped_aval
from funcgrad.interpreters import ad, ad_templates
from funcgrad.interpreters.ad import UndefPrimal, Zero


def applies(primals: Sequence[Any]) -> bool:
    """Whether ``grad``/``vjp`` of ``primals`` can use the tape: nothing is being traced and
    every input is a NumPy value."""
    if not core.is_eager():
        return False
    for p in primals:
        if type(p) is not np.ndarray and not isinstance(p, np.generic):
            return False
    return True


# ----------------------------------------------------------------------------------------
# Nodes


class _Node:
    """One primitive application (or call) on the tape.

    ``parents``: where the cotangents of its differentiated inputs go (a node, or an
    :class:`_Out` for one output of a multiple-result node), aligned with what ``vjp``
    returns. ``n_out``: 0 for a single output (the cotangent is one value), else the number
    of outputs (the cotangent is a list with None where none flowed). ``vjp(ct, eager)``
    pulls ``ct`` back; ``eager`` (no transformation active, so cotangents are NumPy
    values) is decided once per backward pass rather than per node.
    """

    __slots__ = ("parents", "n_out")
    parents: Sequence[Any]
    n_out: int

    def vjp(self, ct: Any, eager: bool) -> Sequence[Any]:
        raise NotImplementedError


class _Leaf(_Node):
    """An input of the differentiated function: collects its cotangent."""

    __slots__ = ()

    def __init__(self) -> None:
        self.parents = ()
        self.n_out = 0


class _Out:
    """Output ``idx`` of a multiple-result node (a cotangent destination)."""

    __slots__ = ("node", "idx")

    def __init__(self, node: _Node, idx: int) -> None:
        self.node = node
        self.idx = idx


class _TemplateNode(_Node):
    """A first-order primitive, linearized by a cached template; keeps its residuals."""

    __slots__ = ("template", "residuals")

    def __init__(self, template: Any, residuals: list, parents: list) -> None:
        self.template = template
        self.residuals = residuals
        self.parents = parents
        self.n_out = 0

    def vjp(self, ct: Any, eager: bool) -> Sequence[Any]:
        template = self.template
        if eager:
            vjp = template.vjp
            if vjp is None:
                vjp = ad_templates.template_vjp(template)
            if vjp is not ad_templates.NO_TEMPLATE:
                run, pattern = vjp
                outs = run(ct, *self.residuals)
                if pattern is None:
                    return outs
                it = iter(outs)
                return [next(it) if computed else None for computed in pattern]
        # Under a transformation (or a rule that needs concrete values): the rules themselves.
        closed = template.unknown_jaxpr
        jaxpr = closed.jaxpr
        num_res = template.num_res
        args = self.residuals + [UndefPrimal(v.aval) for v in jaxpr.invars[num_res:]]
        cts = ad.backward_pass(jaxpr, closed.consts, args, [ct], all_linear=True)
        return [None if type(c) is Zero else c for c in cts[num_res:]]


class _CallNode(_Node):
    """A call linearized as a whole (``ad.linearize_flat``); see the module docstring.

    Its differentiated inputs come first among ``parents``; then one parent per output that
    depends on tape values the call closed over (its cotangent passes through unchanged).
    """

    __slots__ = ("lin", "closure_outs")

    def __init__(self, lin: ad.LinearFun, n_out: int, closure_outs: list[int]) -> None:
        self.lin = lin
        self.n_out = n_out
        self.closure_outs = closure_outs

    def vjp(self, ct: Any, eager: bool) -> Sequence[Any]:
        cts = ct if self.n_out else [ct]
        cts_in = self.lin.transpose(cts)
        return [None if type(c) is Zero else c for c in cts_in] + [
            cts[k] for k in self.closure_outs
        ]


# ----------------------------------------------------------------------------------------
# The tracer and the trace


class TapeTracer(Tracer):
    """A value on the tape: its NumPy value and where its cotangent goes (``ref``: a node,
    an :class:`_Out`, or None for a constant that carries no derivative)."""

    __slots__ = ("val", "ref", "_aval")

    def __init__(self, trace: TapeTrace, val: Any, ref: Any) -> None:
        self._trace = trace
        self.val = val
        self.ref = ref
        self._aval: ShapedArray | None = None

    @property
    def aval(self) -> ShapedArray:
        # Concrete, so that Python control flow on values works under grad.
        aval = self._aval
        if aval is None:
            aval = self._aval = ConcreteArray(self.val)
        return aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.val.shape

    @property
    def dtype(self) -> np.dtype:
        return self.val.dtype


class TapeTrace(Trace):
    """The tape interpreter. ``bind`` hands it the raw operands (``raw_args``): boxing
    constants and unboxing results would only cost time here."""

    __slots__ = ("tape",)
    raw_args = True

    def __init__(self, main: core.MainTrace) -> None:
        super().__init__(main)
        self.tape: list[_Node] = main.global_data  # the nodes, in creation order

    def pure(self, val: Any) -> TapeTracer:
        return TapeTracer(self, val, None)

    lift = pure

    def process_primitive(self, primitive: Primitive, args: Sequence[Any], params: dict) -> Any:
        template, vals, refs = ad_templates.lookup_boxed(primitive, params, args, TapeTracer)
        if template is not None:
            outs = template.known.run(*vals)
            if template.tangent_kind != "unknown":
                # A zero tangent (comparisons, integer results): no derivative to record.
                return outs[0]
            if template.identity:
                # The cotangent passes through unchanged (``x + constant``): no node, the
                # output sends its cotangent straight to the input's destination.
                return TapeTracer(self, outs[0], refs[0])
            node = _TemplateNode(template, outs[1:], refs)
            self.tape.append(node)
            return TapeTracer(self, outs[0], node)
        if not refs:
            return primitive.bind(*vals, **params)
        return self.linearize_call(
            lambda *xs: primitive.bind(*xs, **params), args, primitive.multiple_results
        )

    def linearize_call(self, fn: Callable, args: Sequence[Any], multiple_results: bool) -> Any:
        """``fn(*args)`` with its derivative recorded as one node (``ad.linearize_flat``)."""
        vals = []
        diff = []
        refs = []
        for i, a in enumerate(args):
            if type(a) is TapeTracer:
                vals.append(a.val)
                if a.ref is not None:
                    diff.append(i)
                    refs.append(a.ref)
            else:
                vals.append(a)
        if not diff:
            return fn(*vals)

        def call(*diff_vals: Any) -> list[Any]:
            full = list(vals)
            for i, v in zip(diff, diff_vals, strict=True):
                full[i] = v
            out = fn(*full)
            return list(out) if multiple_results else [out]

        primals_out, lin, _ = ad.linearize_flat(call, [vals[i] for i in diff])
        # First order is all the tape needs: residuals that are tape values (computed from
        # closed-over tape values) enter the backward pass as their NumPy values.
        lin.consts = [c.val if type(c) is TapeTracer else c for c in lin.consts]
        closure_outs = [
            k for k, p in enumerate(primals_out) if type(p) is TapeTracer and p.ref is not None
        ]
        out_vals = [p.val if type(p) is TapeTracer else p for p in primals_out]
        if not closure_outs and not any(lin.out_nonzero):
            return out_vals if multiple_results else out_vals[0]
        node = _CallNode(lin, len(out_vals) if multiple_results else 0, closure_outs)
        node.parents = refs + [primals_out[k].ref for k in closure_outs]
        self.tape.append(node)
        live = set(closure_outs) | {k for k, nz in enumerate(lin.out_nonzero) if nz}
        if not multiple_results:
            return TapeTracer(self, out_vals[0], node)
        return [
            TapeTracer(self, v, _Out(node, k)) if k in live else v for k, v in enumerate(out_vals)
        ]


# ----------------------------------------------------------------------------------------
# The backward pass


def _add(x: Any, y: Any) -> Any:
    if type(x) is np.ndarray and type(y) is np.ndarray and x.dtype == y.dtype:
        return np.add(x, y)  # the eager case: skip lax.add's dispatch
    return ad.add_tangents(x, y)


def _accumulate(env: dict, ref: Any, ct: Any) -> None:
    if type(ref) is _Out:
        node = ref.node
        cts = env.get(node)
        if cts is None:
            cts = env[node] = [None] * node.n_out
        old = cts[ref.idx]
        cts[ref.idx] = ct if old is None else _add(old, ct)
    else:
        old = env.get(ref)
        env[ref] = ct if old is None else _add(old, ct)


def backward(tape: list[_Node], out_refs: Sequence[Any], cts_out: Sequence[Any]) -> dict:
    """Walk ``tape`` backwards from the output cotangents; returns the cotangent of every
    node that received one (the inputs' :class:`_Leaf` nodes among them)."""
    env: dict[Any, Any] = {}
    for ref, ct in zip(out_refs, cts_out, strict=True):
        if ref is not None and ct is not None and type(ct) is not Zero:
            _accumulate(env, ref, ct)
    pop = env.pop
    get = env.get
    eager = core.is_eager()
    for node in reversed(tape):
        ct = pop(node, None)
        if ct is None:
            continue
        for ref, c in zip(node.parents, node.vjp(ct, eager), strict=True):
            if c is None:
                continue
            if type(ref) is _Out:
                _accumulate(env, ref, c)
            else:
                old = get(ref)
                env[ref] = c if old is None else _add(old, c)
    return env


class TapeVJP:
    """The backward half of :func:`vjp_flat`, with ``LinearFun``'s interface."""

    __slots__ = ("tape", "leaves", "out_refs", "in_avals", "out_avals")

    def __init__(self, tape, leaves, out_refs, in_avals, out_avals) -> None:
        self.tape = tape
        self.leaves = leaves
        self.out_refs = out_refs
        self.in_avals = in_avals
        self.out_avals = out_avals

    def transpose(self, cts: Sequence[Any]) -> list[Any]:
        """Pull output cotangents back: one cotangent per input (Zero where none flows)."""
        env = backward(self.tape, self.out_refs, cts)
        return [
            env[leaf] if leaf in env else Zero(a)
            for leaf, a in zip(self.leaves, self.in_avals, strict=True)
        ]


def vjp_flat(
    fun: Callable, primals: Sequence[Any], has_aux: bool = False
) -> tuple[list[Any], TapeVJP, list[Any]]:
    """``(fun(*primals), backward, aux)`` on flat lists, for NumPy ``primals`` with nothing
    being traced (:func:`applies`); ``backward.transpose(cts)`` gives one cotangent per
    input. With ``has_aux``, ``fun`` returns ``(outputs, aux)``; aux comes back as values."""
    tape: list[_Node] = []
    with core.new_main(TapeTrace, tape) as main:
        trace = main.trace
        leaves = [_Leaf() for _ in primals]
        result = fun(*[TapeTracer(trace, x, leaf) for x, leaf in zip(primals, leaves, strict=True)])
        outs, aux = result if has_aux else (result, ())
        out_vals = []
        out_refs = []
        for o in outs:
            if isinstance(o, Tracer):
                o = core.full_raise(trace, o)  # a leaked tracer raises here
                out_vals.append(o.val)
                out_refs.append(o.ref)
            else:
                out_vals.append(o)
                out_refs.append(None)
        aux = [a.val if type(a) is TapeTracer and a._trace is trace else a for a in aux]
    in_avals = [shaped_aval(p) for p in primals]
    out_avals = [shaped_aval(o) for o in out_vals]
    return out_vals, TapeVJP(tape, leaves, out_refs, in_avals, out_avals), aux
