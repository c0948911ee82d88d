"""``checkpoint`` (alias ``remat``): recompute a function's internals in the backward pass.

``checkpoint(f)`` behaves like ``f``, but under differentiation it saves only its inputs
(and whatever a ``policy`` allows) instead of every intermediate value, and recomputes the
rest when the backward pass needs it: memory for compute, as JAX's ``jax.checkpoint``.

It is the primitive ``checkpoint`` carrying the jaxpr of ``f`` (``jaxpr``, a ClosedJaxpr;
values ``f`` closes over become leading operands). Its rules transform that jaxpr and bind
``checkpoint`` again, so it composes with every transformation:

- jvp: the JVP of the jaxpr (primals and tangents in, primals and tangents out);
- partial evaluation (the heart of remat): the known part (the primal outputs) runs now;
  the unknown part is recorded as one ``checkpoint`` equation whose jaxpr *recomputes*
  the known intermediates it needs from the saved inputs (``differentiated=True``);
- transpose: the transposed jaxpr, which begins with that recomputation, bound as another
  ``checkpoint``. So ``make_jaxpr(grad(checkpoint(f)))`` shows ``f``'s operations twice:
  once in the forward pass and once inside the backward ``checkpoint``;
- batching: the batched jaxpr.

Outside any transformation ``checkpoint(f)(x)`` just calls ``f``. As in JAX the function is
traced abstractly under ``grad``, so Python control flow on argument values needs
``static_argnums``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from funcgrad import core, tree_util
from funcgrad.api_util import flatten_fun
from funcgrad.core import Primitive
from funcgrad.interpreters import ad, batching
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, dce_jaxpr, eval_jaxpr, inline_calls

__all__ = ["checkpoint", "checkpoint_policies", "remat"]


class checkpoint_policies:
    """Which intermediate values a checkpointed function may save (``policy(prim, params)
    -> bool``); everything else is recomputed. ``None`` is ``nothing_saveable``."""

    @staticmethod
    def nothing_saveable(prim: Primitive, params: dict) -> bool:
        return False

    @staticmethod
    def everything_saveable(prim: Primitive, params: dict) -> bool:
        return True

    @staticmethod
    def dots_saveable(prim: Primitive, params: dict) -> bool:
        return prim.name == "dot_general"

    checkpoint_dots = dots_saveable


checkpoint_p = Primitive("checkpoint", multiple_results=True)


@checkpoint_p.def_impl
def _checkpoint_impl(*args, jaxpr, prevent_cse, differentiated, policy):
    return eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)


@checkpoint_p.def_abstract_eval
def _checkpoint_abstract_eval(*avals, jaxpr, prevent_cse, differentiated, policy):
    return jaxpr.out_avals


def _checkpoint_jvp(primals, tangents, *, jaxpr, prevent_cse, differentiated, policy):
    nonzeros = [type(t) is not ad.Zero for t in tangents]
    jaxpr_jvp, out_nz = ad.jvp_jaxpr(jaxpr, nonzeros, instantiate=False)
    outs = checkpoint_p.bind(
        *primals,
        *[t for t in tangents if type(t) is not ad.Zero],
        jaxpr=jaxpr_jvp,
        prevent_cse=prevent_cse,
        differentiated=differentiated,
        policy=policy,
    )
    n = len(jaxpr.out_avals)
    it = iter(outs[n:])
    t_outs = [
        next(it) if nz else ad.Zero(a) for a, nz in zip(jaxpr.out_avals, out_nz, strict=False)
    ]
    return outs[:n], t_outs


def _checkpoint_transpose(cts, *args, jaxpr, prevent_cse, differentiated, policy):
    linear = [ad.is_undefined_primal(a) for a in args]
    res = [a for a, lin in zip(args, linear, strict=False) if not lin]
    if core.is_eager():
        # Nothing to stage: run the transposition (recomputation first) directly.
        full = list(args)
        cts_in = ad.backward_pass(jaxpr.jaxpr, jaxpr.consts, full, list(cts))
        return [
            ad.instantiate_zeros(c) if lin else None for c, lin in zip(cts_in, linear, strict=False)
        ]
    jaxpr_t = ad.transpose_jaxpr(jaxpr, linear)
    outs = checkpoint_p.bind(
        *res,
        *cts,
        jaxpr=jaxpr_t,
        prevent_cse=prevent_cse,
        differentiated=True,
        policy=policy,
    )
    it = iter(outs)
    return [next(it) if lin else None for lin in linear]


def _checkpoint_batch(args, dims, *, jaxpr, prevent_cse, differentiated, policy):
    size = batching.axis_size_of(args, dims)
    args, dims = batching.batch_axes_to_front(args, dims)
    outs = checkpoint_p.bind(
        *args,
        jaxpr=batching.batch_jaxpr(jaxpr, [d is not None for d in dims], size, True)[0],
        prevent_cse=prevent_cse,
        differentiated=differentiated,
        policy=policy,
    )
    return outs, [0] * len(outs)


def _closed(jaxpr: Jaxpr, consts_by_var: dict[Var, Any]) -> ClosedJaxpr:
    """DCE ``jaxpr`` and close it over the constants it still uses."""
    jaxpr, _ = dce_jaxpr(jaxpr)
    return ClosedJaxpr(jaxpr, [consts_by_var[v] for v in jaxpr.constvars])


def remat_partial_eval(
    closed: ClosedJaxpr, unknowns: Sequence[bool], saveable: Callable[[Primitive, dict], bool]
) -> tuple[ClosedJaxpr, ClosedJaxpr, list[bool], int]:
    """Split ``closed`` for rematerialization.

    Returns ``(known, unknown, out_unknowns, num_res)``. ``known`` takes the known inputs
    and returns the known outputs followed by ``num_res`` saved residuals (outputs of
    equations ``saveable`` allows). ``unknown`` takes those residuals followed by *all*
    inputs and returns the unknown outputs, recomputing every other known value it needs.
    """
    jaxpr = closed.jaxpr
    consts_by_var = dict(zip(jaxpr.constvars, closed.consts, strict=False))
    available = set(jaxpr.constvars) | set(jaxpr.invars)  # no need to save or recompute
    known_vars: set[Var] = set(jaxpr.constvars)
    known_vars.update(v for v, uk in zip(jaxpr.invars, unknowns, strict=True) if not uk)
    known_eqns: list[Eqn] = []
    unknown_eqns: list[Eqn] = []
    producer: dict[Var, Eqn] = {}
    for eqn in jaxpr.eqns:
        if all(type(x) is Literal or x in known_vars for x in eqn.inputs):
            known_eqns.append(eqn)
            known_vars.update(eqn.outvars)
            for v in eqn.outvars:
                producer[v] = eqn
        else:
            unknown_eqns.append(eqn)
    out_unknowns = [type(v) is Var and v not in known_vars for v in jaxpr.outvars]

    # Known values the unknown side reads: available, saved (residuals), or recomputed.
    residuals: list[Var] = []
    recompute: set[int] = set()
    seen: set[Var] = set()

    def need(v: Any) -> None:
        if type(v) is not Var or v in seen or v not in known_vars or v in available:
            return
        seen.add(v)
        eqn = producer[v]
        if saveable(eqn.primitive, eqn.params):
            residuals.append(v)
        elif id(eqn) not in recompute:
            recompute.add(id(eqn))
            for x in eqn.inputs:
                need(x)

    for eqn in unknown_eqns:
        for x in eqn.inputs:
            need(x)
    for v, uk in zip(jaxpr.outvars, out_unknowns, strict=False):
        if uk:
            need(v)

    known_ins = [v for v, uk in zip(jaxpr.invars, unknowns, strict=False) if not uk]
    known_outs = [v for v, uk in zip(jaxpr.outvars, out_unknowns, strict=False) if not uk]
    known = Jaxpr(jaxpr.constvars, known_ins, known_eqns, known_outs + residuals)
    # Fresh binders for the residuals on the unknown side (a Var is bound once per jaxpr).
    res_in = {v: Var(v.aval) for v in residuals}

    def sub(x: Any) -> Any:
        return res_in.get(x, x) if type(x) is Var else x

    unknown_ids = {id(e) for e in unknown_eqns}
    body = [
        e.replace(inputs=[sub(x) for x in e.inputs])
        for e in jaxpr.eqns
        if id(e) in recompute or id(e) in unknown_ids
    ]
    unknown_outs = [sub(v) for v, uk in zip(jaxpr.outvars, out_unknowns, strict=False) if uk]
    unknown = Jaxpr(
        jaxpr.constvars, [res_in[v] for v in residuals] + list(jaxpr.invars), body, unknown_outs
    )
    return (
        _closed(known, consts_by_var),
        _closed(unknown, consts_by_var),
        out_unknowns,
        len(residuals),
    )


# Calls whose bodies remat partial evaluation sees through: a nested ``jit`` (or
# ``checkpoint``) equation of a JVP jaxpr takes primals and tangents at once, and splitting
# equations whole would mark its primal outputs unknown, leaving the backward pass without
# the values it recomputes. Inlined, each primitive splits on its own (the outer remat
# recomputes everything the policy does not save, so the inner boundaries add nothing).
_TRANSPARENT_CALLS = {"jit": "jaxpr", "checkpoint": "jaxpr"}


def _inline_nested_calls(closed: ClosedJaxpr) -> ClosedJaxpr:
    if not any(e.primitive.name in _TRANSPARENT_CALLS for e in closed.jaxpr.eqns):
        return closed
    return ClosedJaxpr(*inline_calls(closed, _TRANSPARENT_CALLS))


def _checkpoint_partial_eval(trace, tracers, *, jaxpr, prevent_cse, differentiated, policy):
    unknowns = [not t.is_known for t in tracers]
    saveable = policy or checkpoint_policies.nothing_saveable
    jaxpr = _inline_nested_calls(jaxpr)
    known, unknown, out_unknowns, num_res = remat_partial_eval(jaxpr, unknowns, saveable)
    params = dict(prevent_cse=prevent_cse, policy=policy)
    known_vals = [t.const for t in tracers if t.is_known]
    known_outs: list[Any] = []
    if known.jaxpr.outvars:
        known_outs = checkpoint_p.bind(
            *known_vals, jaxpr=known, differentiated=differentiated, **params
        )
    n_known = len(known_outs) - num_res
    residuals = known_outs[n_known:]
    unknown_outs: list[Any] = []
    if unknown.jaxpr.outvars:
        inputs = list(residuals) + [t.const if t.is_known else t for t in tracers]
        unknown_outs = trace.record(
            checkpoint_p,
            inputs,
            dict(jaxpr=unknown, differentiated=True, **params),
            unknown.out_avals,
        )
    it_k, it_u = iter(known_outs[:n_known]), iter(unknown_outs)
    return [next(it_u) if uk else next(it_k) for uk in out_unknowns]


ad.primitive_jvps[checkpoint_p] = _checkpoint_jvp
ad.primitive_transposes[checkpoint_p] = _checkpoint_transpose
batching.primitive_batchers[checkpoint_p] = _checkpoint_batch
pe.custom_partial_eval_rules[checkpoint_p] = _checkpoint_partial_eval


def checkpoint(
    fun: Callable | None = None,
    *,
    prevent_cse: bool = True,
    policy: Callable[[Primitive, dict], bool] | None = None,
    static_argnums: int | Sequence[int] = (),
) -> Callable:
    """Make ``fun`` recompute its intermediate values in the backward pass (JAX's
    ``jax.checkpoint``). Usable as ``@checkpoint`` or ``@checkpoint(policy=...)``."""
    if fun is None:
        return functools.partial(
            checkpoint, prevent_cse=prevent_cse, policy=policy, static_argnums=static_argnums
        )
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(fun)
    def remat_fun(*args: Any, **kwargs: Any) -> Any:
        if core.is_eager():
            return fun(*args, **kwargs)
        static = {i % len(args) for i in statics} if args else set()
        dyn = tuple(a for i, a in enumerate(args) if i not in static)

        def with_statics(*dyn_args: Any, **kw: Any) -> Any:
            it = iter(dyn_args)
            return fun(*[args[i] if i in static else next(it) for i in range(len(args))], **kw)

        flat, in_tree = tree_util.tree_flatten((dyn, kwargs))
        flat = [core.as_array(x) for x in flat]
        flat_fun, out_tree = flatten_fun(with_statics, in_tree)
        closed, consts = pe.trace_to_hoisted_jaxpr(flat_fun, [core.shaped_aval(x) for x in flat])
        outs = checkpoint_p.bind(
            *consts,
            *flat,
            jaxpr=closed,
            prevent_cse=prevent_cse,
            differentiated=False,
            policy=policy,
        )
        return tree_util.tree_unflatten(out_tree.val, outs)

    return remat_fun


remat = checkpoint
