"""Forward mode (the JVP interpreter), symbolic zeros, and the jvp/transpose rule tables.

Reverse mode is linearize (jvp + partial evaluation) followed by transposition of the
linear part, so each primitive needs a jvp rule and each linear primitive a transpose rule.

Rule signatures:
- ``primitive_jvps[p](primals, tangents, **params) -> (primal_out, tangent_out)``; a tangent
  may be a symbolic :class:`Zero`. Most rules are built with :func:`defjvp`.
- ``primitive_transposes[p](ct, *args, **params) -> list`` with one cotangent (or ``None``
  for "no contribution") per argument; the linear arguments arrive as :class:`UndefPrimal`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcgrad import core
from funcgrad.core import Primitive, ShapedArray, Trace, Tracer, get_aval, shaped_aval

primitive_jvps: dict[Primitive, Callable] = {}
primitive_transposes: dict[Primitive, Callable] = {}


class Zero:
    """A symbolic zero tangent/cotangent: costs nothing until something needs its value."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval.strip()

    def __repr__(self) -> str:
        return f"Zero({self.aval.str_short()})"

    @staticmethod
    def from_value(x: Any) -> Zero:
        return Zero(shaped_aval(x))


class UndefPrimal:
    """Marks a linear input of a transpose rule: its value is what we solve for."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval.strip()

    def __repr__(self) -> str:
        return f"UndefPrimal({self.aval.str_short()})"


def is_undefined_primal(x: Any) -> bool:
    return type(x) is UndefPrimal


def zeros_like_aval(aval: ShapedArray) -> Any:
    from funcgrad import lax

    return lax.full(aval.shape, 0, aval.dtype)


def instantiate_zeros(t: Any) -> Any:
    return zeros_like_aval(t.aval) if type(t) is Zero else t


def add_tangents(x: Any, y: Any) -> Any:
    if type(x) is Zero:
        return y
    if type(y) is Zero:
        return x
    from funcgrad import lax

    return lax.add(x, y)


# ----------------------------------------------------------------------------------------
# Rule builders


def defjvp(primitive: Primitive, *jvprules: Callable | None) -> None:
    """One rule per input: ``rule(g, *primals, **params)`` is that input's contribution.

    ``None`` marks an input with no derivative (an integer index, say). Zero tangents are
    skipped and the contributions summed, as JAX's ``ad.defjvp``.
    """
    primitive_jvps[primitive] = lambda primals, tangents, **params: _standard_jvp(
        jvprules, primitive, primals, tangents, params
    )


def _standard_jvp(jvprules, primitive, primals, tangents, params):
    val_out = primitive.bind(*primals, **params)
    tangent_out: Any = Zero(shaped_aval(val_out))
    for rule, t in zip(jvprules, tangents):
        if rule is not None and type(t) is not Zero:
            tangent_out = add_tangents(tangent_out, rule(t, *primals, **params))
    return val_out, tangent_out


def defjvp2(primitive: Primitive, *jvprules: Callable | None) -> None:
    """Like :func:`defjvp`, but each rule also sees the output: ``rule(g, ans, *primals)``."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        tangent_out: Any = Zero(shaped_aval(ans))
        for rule, t in zip(jvprules, tangents):
            if rule is not None and type(t) is not Zero:
                tangent_out = add_tangents(tangent_out, rule(t, ans, *primals, **params))
        return ans, tangent_out

    primitive_jvps[primitive] = jvp


def defjvp_zero(primitive: Primitive) -> None:
    """The derivative is zero everywhere it exists (``floor``, ``sign``, comparisons)."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        if primitive.multiple_results:
            return ans, [Zero(shaped_aval(a)) for a in ans]
        return ans, Zero(shaped_aval(ans))

    primitive_jvps[primitive] = jvp


def deflinear(primitive: Primitive, transpose_rule: Callable) -> None:
    """A primitive linear in all its inputs: its jvp is itself applied to the tangents."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        t_out = primitive.bind(*map(instantiate_zeros, tangents), **params)
        return ans, t_out

    primitive_jvps[primitive] = jvp
    primitive_transposes[primitive] = transpose_rule


# ----------------------------------------------------------------------------------------
# The JVP interpreter


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any) -> None:
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self) -> ShapedArray:
        return get_aval(self.primal)

    def full_lower(self) -> Any:
        if type(self.tangent) is Zero:
            return core.full_lower(self.primal)
        return self

    def _provenance(self) -> str | None:
        p = self.primal
        return p._provenance() if isinstance(p, Tracer) else None


class JVPTrace(Trace):
    __slots__ = ()

    def pure(self, val: Any) -> JVPTracer:
        return JVPTracer(self, val, Zero(shaped_aval(val)))

    lift = pure

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        primals = [t.primal for t in tracers]
        tangents = [t.tangent for t in tracers]
        if all(type(t) is Zero for t in tangents):
            out = primitive.bind(*primals, **params)
            if primitive.multiple_results:
                return [JVPTracer(self, x, Zero(shaped_aval(x))) for x in out]
            return JVPTracer(self, out, Zero(shaped_aval(out)))
        rule = primitive_jvps.get(primitive)
        if rule is None:
            raise NotImplementedError(
                f"Differentiation rule for '{primitive.name}' not implemented"
            )
        primal_out, tangent_out = rule(primals, tangents, **params)
        if primitive.multiple_results:
            return [JVPTracer(self, x, t) for x, t in zip(primal_out, tangent_out)]
        return JVPTracer(self, primal_out, tangent_out)


def jvp_flat(fun: Callable, primals: list, tangents: list) -> tuple[list, list]:
    """Forward mode on flat lists: ``(fun(*primals), J @ tangents)``; tangents may be Zero."""
    with core.new_main(JVPTrace) as main:
        trace = main.trace
        tracers_in = [JVPTracer(trace, x, t) for x, t in zip(primals, tangents)]
        outs = fun(*tracers_in)
        tracers_out = [core.full_raise(trace, x) for x in outs]
        primals_out = [t.primal for t in tracers_out]
        tangents_out = [t.tangent for t in tracers_out]
    return primals_out, tangents_out
