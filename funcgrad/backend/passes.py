"""IR passes run before lowering: inline nested calls, CSE, a dot/transpose fold, DCE.

A jitted function's jaxpr may hold ``jit`` equations (``jit(jit(f))``, ``jit(grad(f))``
where ``f`` calls a jitted helper, the jvp of a ``jit``...). The backend compiles one kernel
per top-level jaxpr, so :func:`inline_calls` splices every call's body into its caller
(with fresh variables, as a body may be inlined twice). Constants of inlined
``ClosedJaxpr``s become extra leading inputs: :func:`prepare` returns the flat jaxpr and the
constant values to pass ahead of the arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.ir import (
    ClosedJaxpr,
    Eqn,
    Jaxpr,
    Literal,
    Var,
    dce_jaxpr,
    inline_calls,
)


def _literal_key(x: Literal) -> tuple:
    val = np.asarray(x.val)
    return ("lit", val.dtype.str, val.tobytes())


def _param_key(params: dict) -> Any:
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return None  # unhashable params: never merged


def cse(jaxpr: Jaxpr) -> Jaxpr:
    """Common-subexpression elimination: an equation equal to an earlier one is dropped.

    Two equations are equal when they apply one primitive with equal params to the same
    inputs (primitives are pure). Grad jaxprs repeat forward work (``sin x`` in the primal
    and again in the tangent rule), which this removes.
    """
    env: dict[Var, Any] = {}
    seen: dict[tuple, list[Var]] = {}
    eqns = []

    def read(x: Any) -> Any:
        return env.get(x, x) if type(x) is Var else x

    for eqn in jaxpr.eqns:
        ins = [read(x) for x in eqn.inputs]
        pkey = _param_key(eqn.params)
        key = None
        if pkey is not None:
            ikey = tuple(_literal_key(x) if type(x) is Literal else x for x in ins)
            key = (eqn.primitive.name, ikey, pkey)
            prev = seen.get(key)
            if prev is not None:
                for v, p in zip(eqn.outvars, prev, strict=True):
                    env[v] = p
                continue
            seen[key] = eqn.outvars
        eqns.append(eqn.replace(inputs=ins) if ins != eqn.inputs else eqn)
    outvars = [read(x) for x in jaxpr.outvars]
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, outvars)


def fold_dot_transpose(jaxpr: Jaxpr) -> Jaxpr:
    """``transpose(dot_general(a, b))`` that swaps the free axes -> ``dot_general(b, a)``.

    Reverse mode produces this for every weight gradient (``(x.T @ g).T``); folded, the
    product is written in its final layout instead of being copied once more.
    """
    uses: dict[Var, int] = {}
    for eqn in jaxpr.eqns:
        for x in eqn.inputs:
            if type(x) is Var:
                uses[x] = uses.get(x, 0) + 1
    for x in jaxpr.outvars:
        if type(x) is Var:
            uses[x] = uses.get(x, 0) + 1
    dots = {
        e.outvars[0]: e
        for e in jaxpr.eqns
        if e.primitive.name == "dot_general" and not e.params["dimension_numbers"][1][0]
    }
    replaced: dict[int, Eqn] = {}
    dropped: set[int] = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name != "transpose" or type(eqn.inputs[0]) is not Var:
            continue
        dot = dots.get(eqn.inputs[0])
        if dot is None or uses.get(dot.outvars[0]) != 1:
            continue
        (lc, rc), _ = dot.params["dimension_numbers"]
        a, b = dot.inputs
        nl = a.aval.ndim - len(lc)
        nr = b.aval.ndim - len(rc)
        swap = tuple(range(nl, nl + nr)) + tuple(range(nl))
        if eqn.params["permutation"] != swap:
            continue
        params = {**dot.params, "dimension_numbers": ((rc, lc), ((), ()))}
        replaced[id(eqn)] = Eqn(dot.primitive, [b, a], params, eqn.outvars)
        dropped.add(id(dot))
    if not replaced:
        return jaxpr
    eqns = [replaced.get(id(e), e) for e in jaxpr.eqns if id(e) not in dropped]
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, jaxpr.outvars)


def prepare(closed: ClosedJaxpr) -> tuple[Jaxpr, list[Any]]:
    """Inline calls, CSE, DCE; constants move to leading inputs.

    Returns ``(jaxpr, consts)`` where ``jaxpr`` has no constvars and its first
    ``len(consts)`` invars take the constants.
    """
    jaxpr, consts = inline_calls(closed)
    values = dict(zip(jaxpr.constvars, consts, strict=True))
    jaxpr = fold_dot_transpose(cse(jaxpr))
    jaxpr, _ = dce_jaxpr(jaxpr)
    consts = [values[v] for v in jaxpr.constvars]
    flat = Jaxpr([], [*jaxpr.constvars, *jaxpr.invars], jaxpr.eqns, jaxpr.outvars)
    return flat, consts
