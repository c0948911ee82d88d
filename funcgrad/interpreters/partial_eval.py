"""Staging and partial evaluation: turning Python into jaxprs.

Staging (``make_jaxpr``, ``jit``, control flow): the staging interpreter records one
equation per ``bind``. It is installed as the *dynamic* trace, so it sees every primitive,
even those applied only to constants. Constants (NumPy arrays the function closes over, or
tracers of outer transformations) become constvars; 0-d concrete constants are inlined as
literals, as in JAX. API: :func:`trace_to_jaxpr`, :class:`StagingTrace`,
:class:`JaxprBuilder`.

Partial evaluation (reverse-mode AD, remat, splitting call primitives): with some inputs
known and others unknown, :class:`PartialEvalTrace` computes the known operations now and
records those with an unknown input; see the section below. API: :class:`PartialVal`,
:func:`partial_eval_flat`, :func:`partial_eval_jaxpr`, and the rule table
:data:`custom_partial_eval_rules` for higher-order primitives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ShapedArray, Trace, Tracer, get_aval, new_dynamic, new_main, shaped_aval
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, dce_jaxpr, eval_jaxpr


class StagingTracer(Tracer):
    """A value being staged into a jaxpr: only its type is known."""

    __slots__ = ("_aval",)

    def __init__(self, trace: StagingTrace, aval: ShapedArray) -> None:
        self._trace = trace
        self._aval = aval

    @property
    def aval(self) -> ShapedArray:
        return self._aval

    @property
    def _weak(self) -> bool:  # type: ignore[override]
        return self._aval.weak_type

    def _provenance(self) -> str | None:
        return self._trace.main.global_data.provenance(self)


class JaxprBuilder:
    """Collects the equations, variables and constants of a jaxpr being staged."""

    def __init__(self) -> None:
        self.eqns: list[Eqn] = []
        self.tracer_to_var: dict[int, Var] = {}
        self.const_tracers: dict[int, StagingTracer] = {}
        self.constvals: dict[Var, Any] = {}
        self.tracers: list[StagingTracer] = []  # keeps ids stable while staging
        self.producers: dict[Var, Eqn] = {}
        self.arg_names: dict[Var, str] = {}

    def new_tracer(self, trace: StagingTrace, aval: ShapedArray) -> StagingTracer:
        tracer = StagingTracer(trace, aval)
        self.tracers.append(tracer)
        self.tracer_to_var[id(tracer)] = Var(aval)
        return tracer

    def new_arg(self, trace: StagingTrace, aval: ShapedArray, name: str | None) -> StagingTracer:
        tracer = self.new_tracer(trace, aval)
        if name:
            self.arg_names[self.tracer_to_var[id(tracer)]] = name
        return tracer

    def getvar(self, tracer: StagingTracer) -> Var:
        var = self.tracer_to_var.get(id(tracer))
        if var is None:
            raise core._leaked_tracer_error(tracer, None)
        return var

    def getconst(self, trace: StagingTrace, val: Any) -> StagingTracer:
        tracer = self.const_tracers.get(id(val))
        if tracer is None:
            tracer = self.new_tracer(trace, get_aval(val).strip())
            self.const_tracers[id(val)] = tracer
            self.constvals[self.tracer_to_var[id(tracer)]] = val
        return tracer

    def add_eqn(self, eqn: Eqn) -> None:
        self.eqns.append(eqn)
        for v in eqn.outvars:
            self.producers[v] = eqn

    def provenance(self, tracer: StagingTracer) -> str | None:
        """Name the function arguments a staged value depends on."""
        var = self.tracer_to_var.get(id(tracer))
        if var is None:
            return None
        seen: set[Var] = set()
        stack = [var]
        names: list[str] = []
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            if v in self.arg_names:
                names.append(self.arg_names[v])
            eqn = self.producers.get(v)
            if eqn is not None:
                stack.extend(x for x in eqn.inputs if isinstance(x, Var))
        if not names:
            return None
        names = sorted(set(names))
        plural = "s" if len(names) > 1 else ""
        return f"the traced argument{plural} {', '.join(names)}"

    def build(
        self, in_tracers: Sequence[StagingTracer], out_tracers: Sequence[StagingTracer]
    ) -> tuple[Jaxpr, list[Any]]:
        invars = [self.getvar(t) for t in in_tracers]
        outvars: list[Any] = [self.getvar(t) for t in out_tracers]
        constvars = list(self.constvals)
        consts = [self.constvals[v] for v in constvars]
        jaxpr = Jaxpr(constvars, invars, self.eqns, outvars)
        return _inline_literals(jaxpr, consts)


def _is_literalable(val: Any) -> bool:
    return not isinstance(val, Tracer) and np.ndim(val) == 0


def _inline_literals(jaxpr: Jaxpr, consts: list[Any]) -> tuple[Jaxpr, list[Any]]:
    """Replace 0-d concrete constants by literals, as JAX prints ``mul b 2.0:f32[]``."""
    lits = {
        v: Literal(c) for v, c in zip(jaxpr.constvars, consts, strict=True) if _is_literalable(c)
    }
    if not lits:
        return jaxpr, consts
    constvars = [v for v in jaxpr.constvars if v not in lits]
    consts = [c for v, c in zip(jaxpr.constvars, consts, strict=True) if v not in lits]

    def sub(x: Any) -> Any:
        return lits.get(x, x) if isinstance(x, Var) else x

    eqns = [e.replace(inputs=[sub(x) for x in e.inputs]) for e in jaxpr.eqns]
    outvars = [sub(x) for x in jaxpr.outvars]
    return Jaxpr(constvars, jaxpr.invars, eqns, outvars), consts


class StagingTrace(Trace):
    """The interpreter that records equations instead of computing."""

    __slots__ = ()

    @property
    def builder(self) -> JaxprBuilder:
        return self.main.global_data

    def pure(self, val: Any) -> StagingTracer:
        return self.builder.getconst(self, val)

    lift = pure

    def process_primitive(self, primitive: core.Primitive, tracers: list, params: dict) -> Any:
        builder = self.builder
        avals_in = [t.aval for t in tracers]
        out = primitive.abstract_eval(*avals_in, **params)
        avals_out = out if primitive.multiple_results else [out]
        outs = [builder.new_tracer(self, a.strip()) for a in avals_out]
        inputs = [builder.getvar(t) for t in tracers]
        outvars = [builder.getvar(t) for t in outs]
        builder.add_eqn(Eqn(primitive, inputs, params, outvars))
        return outs if primitive.multiple_results else outs[0]


def trace_to_jaxpr(
    fun: Callable[..., Sequence[Any]],
    in_avals: Sequence[ShapedArray],
    arg_names: Sequence[str | None] | None = None,
) -> ClosedJaxpr:
    """Stage ``fun`` (flat list of arrays in, flat list out) into a closed jaxpr."""
    builder = JaxprBuilder()
    names = arg_names if arg_names is not None else [None] * len(in_avals)
    with new_main(StagingTrace, builder) as main:
        with new_dynamic(main):
            trace = main.trace
            tracers_in = [
                builder.new_arg(trace, a.strip(), n) for a, n in zip(in_avals, names, strict=True)
            ]
            outs = fun(*tracers_in)
            tracers_out = [core.full_raise(trace, core.as_array(x)) for x in outs]
            jaxpr, consts = builder.build(tracers_in, tracers_out)
    return ClosedJaxpr(jaxpr, consts)


def hoist_consts(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list[Any]]:
    """``closed`` with its constants turned into leading inputs, and their values.

    Sub-jaxprs that primitives carry (``jit``, control flow, custom rules, ``checkpoint``)
    take their constants as explicit operands this way, so transformations of the
    enclosing function see them as ordinary operands.
    """
    jaxpr = closed.jaxpr
    if not jaxpr.constvars:
        return closed, []
    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
    return ClosedJaxpr(hoisted, []), list(closed.consts)


def trace_to_hoisted_jaxpr(
    fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray]
) -> tuple[ClosedJaxpr, list[Any]]:
    """:func:`trace_to_jaxpr`, then :func:`hoist_consts`."""
    return hoist_consts(trace_to_jaxpr(fun, list(in_avals)))


# ========================================================================================
# Partial evaluation: known values are computed now, unknown ones are staged into a jaxpr.
#
# Reverse mode is linearize (jvp + partial evaluation) followed by transposition: under
# ``linearize`` the primal inputs are *known* and the tangent inputs *unknown*, so every
# primal operation runs immediately (eagerly on NumPy values outside jit/vmap, which is why
# Python control flow on values works under ``grad``) while every tangent operation is
# recorded as an equation of a linear jaxpr. Known values that unknown equations use become
# the jaxpr's constants (the residuals); 0-d concrete ones are inlined as literals.
#
# The trace records equations in the order they are created (like the staging trace),
# so building the jaxpr needs no topological sort; unused equations are dropped by DCE
# where it matters. Higher-order primitives (``checkpoint``, ``jit``, control flow) register
# a rule in :data:`custom_partial_eval_rules` to split themselves into a known and an
# unknown part; every other primitive with an unknown input is recorded whole.


class PartialVal:
    """A value that is either known (``const``) or unknown (only its ``aval``)."""

    __slots__ = ("aval", "const")

    def __init__(self, aval: ShapedArray, const: Any) -> None:
        self.aval = aval
        self.const = const

    @classmethod
    def known(cls, val: Any) -> PartialVal:
        return cls(get_aval(val), val)

    @classmethod
    def unknown(cls, aval: ShapedArray) -> PartialVal:
        return cls(aval.strip(), None)

    @property
    def is_known(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        what = "known" if self.is_known else "unknown"
        return f"PartialVal({what} {self.aval.str_short()})"


class PartialEvalTracer(Tracer):
    """Known (``var is None``: ``const`` holds the value) or unknown (a jaxpr variable)."""

    __slots__ = ("const", "var")
    # ``var`` (the jaxpr variable) hides ``Tracer.var`` (NumPy's variance): user code never
    # holds these tracers, only the JVP tracers around them.
    var: Var | None  # type: ignore[assignment]

    def __init__(self, trace: PartialEvalTrace, const: Any, var: Var | None) -> None:
        self._trace = trace
        self.const = const
        self.var = var

    @property
    def aval(self) -> ShapedArray:
        var = self.var
        return get_aval(self.const) if var is None else var.aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def is_known(self) -> bool:
        return self.var is None

    def full_lower(self) -> Any:
        if self.var is None:
            return core.full_lower(self.const)
        return self


def _literal(val: Any, aval: ShapedArray) -> Literal:
    """A Literal with a known aval (skips recomputing it from the value)."""
    lit = Literal.__new__(Literal)
    lit.val = val
    lit.aval = aval
    return lit


class PEBuilder:
    """The unknown side of a partial evaluation: equations, inputs and residuals."""

    __slots__ = ("eqns", "residual_vars", "residual_vals", "_by_id")

    def __init__(self) -> None:
        self.eqns: list[Eqn] = []
        self.residual_vars: list[Var] = []
        self.residual_vals: list[Any] = []  # also keeps the ids in ``_by_id`` stable
        self._by_id: dict[int, Var] = {}

    def new_arg(self, trace: PartialEvalTrace, aval: ShapedArray) -> PartialEvalTracer:
        return PartialEvalTracer(trace, None, Var(aval))

    def const_atom(self, val: Any) -> Var | Literal:
        """The jaxpr atom of a known value: a literal (0-d, concrete) or a residual."""
        var = self._by_id.get(id(val))
        if var is not None:
            return var
        t = type(val)
        if t is np.ndarray:
            if val.ndim == 0:
                return _literal(val, ShapedArray((), val.dtype))
            aval = ShapedArray(val.shape, val.dtype)
        elif isinstance(val, np.generic):
            return _literal(val, ShapedArray((), val.dtype))
        elif isinstance(val, Tracer):
            aval = val.aval.strip()
        elif np.ndim(val) == 0:
            return Literal(val)
        else:
            aval = shaped_aval(val)
        var = Var(aval)
        self._by_id[id(val)] = var
        self.residual_vars.append(var)
        self.residual_vals.append(val)
        return var

    def atom(self, tracer: PartialEvalTracer) -> Var | Literal:
        var = tracer.var
        return self.const_atom(tracer.const) if var is None else var

    def build(
        self, invars: Sequence[Var], outs: Sequence[Any], dce: bool = True
    ) -> tuple[Jaxpr, list[Any]]:
        """The jaxpr ``residuals ; invars -> outs`` (``outs``: tracers or known values)."""
        outvars = [
            self.atom(o) if isinstance(o, PartialEvalTracer) else self.const_atom(o) for o in outs
        ]
        jaxpr = Jaxpr(self.residual_vars, list(invars), self.eqns, outvars)
        consts = list(self.residual_vals)
        if dce:
            jaxpr, _ = dce_jaxpr(jaxpr)
            kept = set(jaxpr.constvars)
            consts = [c for v, c in zip(self.residual_vars, consts, strict=True) if v in kept]
        return jaxpr, consts


#: ``rule(trace, tracers, **params) -> output tracer(s)`` for primitives that split
#: themselves into known and unknown parts (called only when some input is unknown).
custom_partial_eval_rules: dict[core.Primitive, Callable] = {}


class PartialEvalTrace(Trace):
    """Run known operations now; record operations with an unknown input."""

    __slots__ = ()

    @property
    def builder(self) -> PEBuilder:
        return self.main.global_data

    def pure(self, val: Any) -> PartialEvalTracer:
        return PartialEvalTracer(self, val, None)

    lift = pure

    def new_arg(self, aval: ShapedArray) -> PartialEvalTracer:
        return PartialEvalTracer(self, None, Var(aval.strip()))

    def process_primitive(self, primitive: core.Primitive, tracers: list, params: dict) -> Any:
        for t in tracers:
            if t.var is not None:
                break
        else:
            return primitive.bind(*[t.const for t in tracers], **params)
        rule = custom_partial_eval_rules.get(primitive)
        if rule is not None:
            return rule(self, tracers, **params)
        return self.default_process_primitive(primitive, tracers, params)

    def default_process_primitive(
        self, primitive: core.Primitive, tracers: list, params: dict
    ) -> Any:
        """Record ``primitive`` as one unknown equation (its known inputs are residuals)."""
        builder = self.main.global_data
        inputs = []
        avals = []
        for t in tracers:
            atom = t.var
            if atom is None:
                atom = builder.const_atom(t.const)
            inputs.append(atom)
            avals.append(atom.aval)
        out = primitive.abstract_eval(*avals, **params)
        if primitive.multiple_results:
            outvars = [Var(a.strip()) for a in out]
            builder.eqns.append(Eqn(primitive, inputs, params, outvars))
            return [PartialEvalTracer(self, None, v) for v in outvars]
        outvar = Var(out.strip())
        builder.eqns.append(Eqn(primitive, inputs, params, [outvar]))
        return PartialEvalTracer(self, None, outvar)

    def record(
        self,
        primitive: core.Primitive,
        inputs: Sequence[Any],
        params: dict,
        out_avals: Sequence[ShapedArray],
    ) -> list[PartialEvalTracer]:
        """Record an equation with the given output types (for custom rules)."""
        builder = self.main.global_data
        atoms = [
            builder.atom(x) if isinstance(x, PartialEvalTracer) else builder.const_atom(x)
            for x in inputs
        ]
        outvars = [Var(a.strip()) for a in out_avals]
        builder.eqns.append(Eqn(primitive, atoms, params, outvars))
        return [PartialEvalTracer(self, None, v) for v in outvars]


def partial_eval_flat(
    fun: Callable[..., Sequence[Any]], pvals: Sequence[PartialVal]
) -> tuple[ClosedJaxpr, list[PartialVal]]:
    """Run ``fun`` on partly known inputs.

    Returns the jaxpr of the unknown part (inputs: the unknown inputs, in order; constants:
    the residuals) and one PartialVal per output (known outputs carry their value).
    """
    builder = PEBuilder()
    with new_main(PartialEvalTrace, builder) as main:
        trace = main.trace
        tracers_in = [
            PartialEvalTracer(trace, p.const, None) if p.is_known else trace.new_arg(p.aval)
            for p in pvals
        ]
        outs = fun(*tracers_in)
        outs = [core.full_raise(trace, core.as_array(x)) for x in outs]
        pvals_out = [
            PartialVal.known(o.const) if o.is_known else PartialVal.unknown(o.var.aval)
            for o in outs
        ]
        unknown_outs = [o for o in outs if not o.is_known]
        invars = [t.var for t in tracers_in if t.var is not None]
        jaxpr, consts = builder.build(invars, unknown_outs)
    return ClosedJaxpr(jaxpr, consts), pvals_out


def partial_eval_jaxpr(
    closed: ClosedJaxpr,
    unknowns: Sequence[bool],
    instantiate: bool | Sequence[bool] = False,
) -> tuple[ClosedJaxpr, ClosedJaxpr, list[bool], int]:
    """Split ``closed`` into a known and an unknown jaxpr.

    ``unknowns[i]`` says whether input i is unknown. Returns ``(jaxpr_known,
    jaxpr_unknown, out_unknowns, num_res)``: ``jaxpr_known`` takes the known inputs and
    returns the known outputs followed by ``num_res`` residuals; ``jaxpr_unknown`` takes
    the residuals followed by the unknown inputs and returns the unknown outputs. An output
    is unknown if it depends on an unknown input or ``instantiate`` asks for it.
    """
    n_out = len(closed.jaxpr.outvars)
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * n_out
    in_avals = closed.in_avals
    known_avals = [a for a, uk in zip(in_avals, unknowns, strict=True) if not uk]
    result: dict[str, Any] = {}

    def fun_known(*known_args: Any) -> list[Any]:
        builder = PEBuilder()
        with new_main(PartialEvalTrace, builder) as main:
            trace = main.trace
            it = iter(known_args)
            tracers_in = [
                trace.new_arg(a) if uk else PartialEvalTracer(trace, next(it), None)
                for a, uk in zip(in_avals, unknowns, strict=True)
            ]
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *tracers_in)
            outs = [core.full_raise(trace, core.as_array(x)) for x in outs]
            out_unknowns = [
                not o.is_known or inst for o, inst in zip(outs, instantiate, strict=True)
            ]
            known_outs = [o.const for o, uk in zip(outs, out_unknowns, strict=True) if not uk]
            unknown_outs = [o for o, uk in zip(outs, out_unknowns, strict=True) if uk]
            invars = [t.var for t in tracers_in if t.var is not None]
            jaxpr, consts = builder.build(invars, unknown_outs)
        # Residuals computed by the known side become its outputs; concrete ones (constants
        # of ``closed``) stay constants of the unknown jaxpr.
        staged = [isinstance(c, Tracer) for c in consts]
        res_vars = [v for v, s in zip(jaxpr.constvars, staged, strict=True) if s]
        const_vars = [v for v, s in zip(jaxpr.constvars, staged, strict=True) if not s]
        jaxpr_unknown = Jaxpr(const_vars, res_vars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
        result["unknown"] = ClosedJaxpr(
            jaxpr_unknown, [c for c, s in zip(consts, staged, strict=True) if not s]
        )
        result["out_unknowns"] = out_unknowns
        residuals = [c for c, s in zip(consts, staged, strict=True) if s]
        result["num_res"] = len(residuals)
        return known_outs + residuals

    jaxpr_known = trace_to_jaxpr(fun_known, known_avals)
    return jaxpr_known, result["unknown"], result["out_unknowns"], result["num_res"]
