"""Staging: trace a Python function into a jaxpr (``make_jaxpr``, ``jit``, control flow).

The staging interpreter records one equation per ``bind``. It is installed as the
*dynamic* trace, so it sees every primitive, even those applied only to constants.
Constants (NumPy arrays the function closes over, or tracers of outer transformations)
become constvars; 0-d concrete constants are inlined as literals, as in JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ShapedArray, Trace, Tracer, get_aval, new_dynamic, new_main
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var


class StagingTracer(Tracer):
    """A value being staged into a jaxpr: only its type is known."""

    __slots__ = ("_aval",)

    def __init__(self, trace: StagingTrace, aval: ShapedArray) -> None:
        self._trace = trace
        self._aval = aval

    @property
    def aval(self) -> ShapedArray:
        return self._aval

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
    lits = {v: Literal(c) for v, c in zip(jaxpr.constvars, consts) if _is_literalable(c)}
    if not lits:
        return jaxpr, consts
    constvars = [v for v in jaxpr.constvars if v not in lits]
    consts = [c for v, c in zip(jaxpr.constvars, consts) if v not in lits]

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
            tracers_in = [builder.new_arg(trace, a.strip(), n) for a, n in zip(in_avals, names)]
            outs = fun(*tracers_in)
            tracers_out = [core.full_raise(trace, _as_array(x)) for x in outs]
            jaxpr, consts = builder.build(tracers_in, tracers_out)
    return ClosedJaxpr(jaxpr, consts)


def _as_array(x: Any) -> Any:
    if isinstance(x, Tracer) or isinstance(x, (np.ndarray, np.generic)):
        return x
    return np.asarray(x)
