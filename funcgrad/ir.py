"""The jaxpr IR: typed variables, literals, equations, jaxprs; checking and evaluation.

A :class:`Jaxpr` is a straight-line program ``{ lambda consts ; invars. let eqns in (outs) }``.
Control-flow primitives carry sub-jaxprs as parameters. ``eval_jaxpr`` calls ``bind``, so
evaluating a jaxpr can itself be traced: that is how every IR-to-IR transformation works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad.core import Primitive, ShapedArray, shaped_aval


class Var:
    """A typed variable. Hashes by identity; the printer gives it its name."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval

    def __repr__(self) -> str:
        return f"Var({self.aval.str_short()})"


class Literal:
    """A scalar constant written inline in the jaxpr text, e.g. ``2.0:f32[]``."""

    __slots__ = ("val", "aval")

    def __init__(self, val: Any) -> None:
        self.val = val
        self.aval = shaped_aval(val)

    def __repr__(self) -> str:
        return f"Literal({self.val})"


Atom = Var | Literal


class Eqn:
    """One equation: ``outvars = primitive[params] inputs``."""

    __slots__ = ("primitive", "inputs", "params", "outvars")

    def __init__(
        self, primitive: Primitive, inputs: Sequence[Atom], params: dict, outvars: list[Var]
    ) -> None:
        self.primitive = primitive
        self.inputs = inputs
        self.params = params
        self.outvars = outvars

    def replace(self, **kw: Any) -> Eqn:
        return Eqn(
            kw.get("primitive", self.primitive),
            kw.get("inputs", self.inputs),
            kw.get("params", self.params),
            kw.get("outvars", self.outvars),
        )

    def __repr__(self) -> str:
        from funcgrad.pretty import pp_eqn

        return pp_eqn(self)


class Jaxpr:
    """A typed straight-line program; constants are bound to ``constvars`` by a ClosedJaxpr."""

    __slots__ = ("constvars", "invars", "eqns", "outvars", "__weakref__")

    def __init__(
        self,
        constvars: list[Var],
        invars: list[Var],
        eqns: list[Eqn],
        outvars: list[Atom],
    ) -> None:
        self.constvars = list(constvars)
        self.invars = list(invars)
        self.eqns = list(eqns)
        self.outvars = list(outvars)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self) -> str:
        from funcgrad.pretty import pp_jaxpr

        return pp_jaxpr(self)

    __repr__ = __str__

    def pretty_print(self, width: int = 80) -> str:
        from funcgrad.pretty import pp_jaxpr

        return pp_jaxpr(self, width=width)


class ClosedJaxpr:
    """A jaxpr together with the values of its constants (what ``make_jaxpr`` returns)."""

    __slots__ = ("jaxpr", "consts", "__weakref__")

    def __init__(self, jaxpr: Jaxpr, consts: Sequence[Any]) -> None:
        assert len(jaxpr.constvars) == len(consts)
        self.jaxpr = jaxpr
        self.consts = list(consts)

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __call__(self, *args: Any) -> list[Any]:
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self) -> str:
        return str(self.jaxpr)

    __repr__ = __str__

    def pretty_print(self, width: int = 80) -> str:
        return self.jaxpr.pretty_print(width)

    def _repr_html_(self) -> str:  # Jupyter: the text and a drawing of the graph
        from funcgrad.pretty import jaxpr_html

        return jaxpr_html(self)

    def _repr_svg_(self) -> str | None:
        from funcgrad.pretty import jaxpr_svg

        return jaxpr_svg(self)


def eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list[Any]:
    """Run a jaxpr by binding each equation in order (so it can be traced again)."""
    env: dict[Any, Any] = {}  # Var -> value (read with atoms: literals checked first)
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x
    for eqn in jaxpr.eqns:
        ins = [x.val if type(x) is Literal else env[x] for x in eqn.inputs]
        outs = eqn.primitive.bind(*ins, **eqn.params)
        if eqn.primitive.multiple_results:
            for v, x in zip(eqn.outvars, outs, strict=True):
                env[v] = x
        else:
            env[eqn.outvars[0]] = outs
    return [x.val if type(x) is Literal else env[x] for x in jaxpr.outvars]


class JaxprTypeError(TypeError):
    """A jaxpr failed :func:`check_jaxpr`: a bug in a transformation, not in user code."""


def check_jaxpr(jaxpr: Jaxpr) -> None:
    """Typecheck a jaxpr with the primitives' own abstract-eval rules.

    Checks that every variable is bound once before use and that each equation's output
    types are what its primitive's abstract eval says for its input types.
    """
    env: set[Var] = set()

    def bind_var(v: Var) -> None:
        if not isinstance(v, Var):
            raise JaxprTypeError(f"expected a Var binder, got {v!r}")
        if v in env:
            raise JaxprTypeError(f"variable {v!r} is bound twice")
        env.add(v)

    def read(x: Atom) -> ShapedArray:
        if isinstance(x, Literal):
            if np.ndim(x.val) != 0:
                raise JaxprTypeError(f"literal {x!r} is not a scalar")
            return x.aval
        if x not in env:
            raise JaxprTypeError(f"variable {x!r} is used before it is bound")
        return x.aval

    for v in jaxpr.constvars:
        bind_var(v)
    for v in jaxpr.invars:
        bind_var(v)
    for eqn in jaxpr.eqns:
        in_avals = [read(x) for x in eqn.inputs]
        out = eqn.primitive.abstract_eval(*in_avals, **eqn.params)
        out_avals = list(out) if eqn.primitive.multiple_results else [out]
        if len(out_avals) != len(eqn.outvars):
            raise JaxprTypeError(
                f"{eqn.primitive.name}: {len(eqn.outvars)} binders for {len(out_avals)} outputs"
            )
        for v, aval in zip(eqn.outvars, out_avals, strict=True):
            if v.aval.strip() != aval.strip():
                raise JaxprTypeError(
                    f"{eqn.primitive.name}: binder of type {v.aval.str_short()} for an output "
                    f"of type {aval.str_short()}"
                )
            bind_var(v)
        for sub in subjaxprs(eqn.params):
            check_jaxpr(sub)
    for x in jaxpr.outvars:
        read(x)


def subjaxprs(params: dict) -> list[Jaxpr]:
    """The jaxprs a primitive carries in its parameters (control flow, calls)."""
    out = []
    for p in params.values():
        for item in p if isinstance(p, tuple) else (p,):
            if isinstance(item, ClosedJaxpr):
                out.append(item.jaxpr)
            elif isinstance(item, Jaxpr):
                out.append(item)
    return out


#: Names of primitives with side effects (``debug_callback``): dead-code elimination keeps
#: their equations, and those of higher-order primitives whose bodies contain one.
effectful_primitives: set[str] = set()


def has_effects(eqn: Eqn) -> bool:
    """Whether ``eqn`` (or a jaxpr in its params) runs an effectful primitive."""
    if not effectful_primitives:
        return False
    if eqn.primitive.name in effectful_primitives:
        return True
    return any(has_effects(e) for sub in subjaxprs(eqn.params) for e in sub.eqns)


def dce_jaxpr(jaxpr: Jaxpr, used_outputs: Sequence[bool] | None = None) -> tuple[Jaxpr, list[bool]]:
    """Dead-code elimination: drop equations and outputs nobody uses.

    Returns the new jaxpr (with only the used outputs) and, per input, whether it is still
    used. Primitives are pure, so an equation none of whose outputs is needed goes, except
    the effectful ones (:data:`effectful_primitives`).
    """
    if used_outputs is None:
        used_outputs = [True] * len(jaxpr.outvars)
    outvars = [v for v, u in zip(jaxpr.outvars, used_outputs, strict=True) if u]
    live: set[Var] = {v for v in outvars if isinstance(v, Var)}
    new_eqns = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outvars) or has_effects(eqn):
            new_eqns.append(eqn)
            live.update(x for x in eqn.inputs if isinstance(x, Var))
    new_eqns.reverse()
    used_consts = [v in live for v in jaxpr.constvars]
    used_inputs = [v in live for v in jaxpr.invars]
    constvars = [v for v, u in zip(jaxpr.constvars, used_consts, strict=True) if u]
    new = Jaxpr(constvars, jaxpr.invars, new_eqns, outvars)
    return new, used_inputs


#: Call-like primitives whose body is inlined: name -> the param holding the ClosedJaxpr.
CALL_PRIMITIVES: dict[str, str] = {
    "jit": "jaxpr",
    "checkpoint": "jaxpr",  # remat is a no-op once the backward pass is a jaxpr
    "custom_jvp_call": "call_jaxpr",  # the custom rules only matter to differentiation
    "custom_vjp_call": "call_jaxpr",
}


def inline_calls(
    closed: ClosedJaxpr, calls: dict[str, str] = CALL_PRIMITIVES, *, recursive: bool = False
) -> tuple[Jaxpr, list[Any]]:
    """A jaxpr with no call equations (those named in ``calls``: primitive name -> the
    param holding the body), and its constants (as constvars).

    ``recursive`` also rewrites the jaxprs held in other equations' params (cond branches,
    scan/while bodies): export must leave only primitives, at every level.
    """
    constvars: list[Var] = []
    consts: list[Any] = []
    eqns: list[Eqn] = []

    def splice(jaxpr: Jaxpr, jconsts: list[Any], args: list[Any]) -> list[Any]:
        env: dict[Var, Any] = {}
        for v, c in zip(jaxpr.constvars, jconsts, strict=True):
            nv = Var(v.aval)
            constvars.append(nv)
            consts.append(c)
            env[v] = nv
        for v, a in zip(jaxpr.invars, args, strict=True):
            env[v] = a

        def read(x: Any) -> Any:
            return x if type(x) is Literal else env[x]

        for eqn in jaxpr.eqns:
            ins = [read(x) for x in eqn.inputs]
            param = calls.get(eqn.primitive.name)
            body = None if param is None else eqn.params.get(param)
            if isinstance(body, ClosedJaxpr | Jaxpr):
                if isinstance(body, Jaxpr):
                    body = ClosedJaxpr(body, [])
                outs = splice(body.jaxpr, body.consts, ins)
                for v, o in zip(eqn.outvars, outs, strict=True):
                    env[v] = o
                continue
            outvars = [Var(v.aval) for v in eqn.outvars]
            for v, nv in zip(eqn.outvars, outvars, strict=True):
                env[v] = nv
            params = eqn.params
            if recursive:
                params = {k: _inline_param(p, calls) for k, p in params.items()}
            eqns.append(Eqn(eqn.primitive, ins, params, outvars))
        return [read(x) for x in jaxpr.outvars]

    invars = [Var(v.aval) for v in closed.jaxpr.invars]
    outvars = splice(closed.jaxpr, closed.consts, invars)
    return Jaxpr(constvars, invars, eqns, outvars), consts


def _inline_param(p: Any, calls: dict[str, str]) -> Any:
    """``p`` with calls inlined in the jaxprs it holds (directly or in plain tuples)."""
    if isinstance(p, ClosedJaxpr):
        return ClosedJaxpr(*inline_calls(p, calls, recursive=True))
    if isinstance(p, Jaxpr):
        jaxpr, consts = inline_calls(ClosedJaxpr(p, []), calls, recursive=True)
        if consts:  # a bare Jaxpr param has nowhere to keep them
            raise TypeError("inline_calls: a sub-jaxpr without constants gained constants")
        return jaxpr
    if isinstance(p, tuple) and not hasattr(type(p), "_fields"):  # not a NamedTuple param
        return tuple(_inline_param(x, calls) for x in p)
    return p
