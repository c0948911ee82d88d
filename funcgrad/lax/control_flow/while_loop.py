"""``while_loop`` and ``fori_loop``: the primitive ``while`` with all its rules.

``while_p.bind(*cond_consts, *body_consts, *init, cond_jaxpr=..., cond_nconsts=...,
body_jaxpr=..., body_nconsts=...)`` runs ``carry = body(*body_consts, *carry)`` while
``cond(*cond_consts, *carry)`` (a ``bool[]``) holds, and returns the final carry (JAX's
primitive and parameter names).

Decisions:

- **Batching with a batched predicate** (``vmap`` where examples need different numbers
  of iterations): the loop runs until every example is done; examples that are done keep
  their carry (the body's result is discarded for them with ``select_n``), as in JAX. The
  cost is the slowest example's trip count times the batch.
- **Reverse mode is refused with a clear error**, as in JAX: the number of iterations is
  only known while running, so no backward pass can be built. Forward mode (``jvp``,
  ``jacfwd``) and ``linearize`` work (the linearized loop recomputes the primal loop
  alongside the tangents). ``fori_loop`` with concrete bounds is a ``scan``, which reverse
  mode supports; that is the way to differentiate a loop in reverse.
- ``fori_loop(lower, upper, ...)`` with concrete bounds (Python ints, NumPy values) is a
  ``scan`` of ``upper - lower`` steps whose carry is ``(i, val)``; with traced bounds it is
  a ``while_loop``. The loop index ``i`` has the dtype NumPy gives ``lower`` and ``upper``
  (Python ints: int64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import core, dtypes, lax, tree_util
from funcgrad.core import ConcreteArray, Primitive, Tracer, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import eval_jaxpr
from funcgrad.lax.control_flow import common
from funcgrad.lax.control_flow.common import aval_of, types_text
from funcgrad.lax.control_flow.scan import scan_impl_entry
from funcgrad.util import split_list

while_p = Primitive("while", multiple_results=True)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """``val = init_val; while cond_fun(val): val = body_fun(val); return val``, as one
    primitive. ``val`` is any pytree of arrays; ``body_fun`` must return its type.

    Works under ``jit``, ``vmap`` and forward-mode differentiation; reverse mode (``grad``)
    raises: use ``scan`` or ``fori_loop`` with concrete bounds instead.
    """
    if not callable(cond_fun) or not callable(body_fun):
        raise TypeError("while_loop: cond_fun and body_fun must be callables")
    init_flat, in_tree = tree_util.tree_flatten((init_val,))
    weak = [dtypes.is_python_scalar(x) for x in init_flat]
    init_flat = [core.as_array(x) for x in init_flat]
    carry_tree = tree_util.tree_structure(init_val)
    body, in_avals = common.trace_loop_body(
        "while_loop", body_fun, in_tree, [aval_of(x) for x in init_flat], carry_tree, weak
    )
    init_flat = common.convert_weak(init_flat, in_avals)
    cond_t = common.trace_function(cond_fun, in_tree, in_avals)
    check_predicate("while_loop", "cond_fun", cond_t)
    outs = while_p.bind(
        *cond_t.consts,
        *body.consts,
        *init_flat,
        cond_jaxpr=cond_t.jaxpr,
        cond_nconsts=len(cond_t.consts),
        body_jaxpr=body.jaxpr,
        body_nconsts=len(body.consts),
    )
    return tree_util.tree_unflatten(in_tree, outs)[0]


def check_predicate(what: str, name: str, traced: common.Traced) -> None:
    avals = traced.out_avals
    if len(avals) != 1 or avals[0].shape != () or avals[0].dtype.kind != "b":
        raise TypeError(
            f"{what}: {name} must return a bool scalar, but it returned "
            f"{types_text(avals)} (structure {traced.out_tree}); compare to get a bool "
            "(e.g. `i < n`), and reduce arrays with `.any()` or `.all()`"
        )


# ----------------------------------------------------------------------------------------
# fori_loop


def _concrete(x: Any) -> Any:
    """The concrete value of ``x`` (a number, array, or tracer with a known value) or None."""
    if not isinstance(x, Tracer):
        return x
    aval = x.aval
    return aval.val if isinstance(aval, ConcreteArray) else None


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any) -> Any:
    """``val = init_val; for i in range(lower, upper): val = body_fun(i, val)``.

    With concrete bounds this is a ``scan`` (reverse mode works); with traced bounds a
    ``while_loop``. ``i`` has the dtype NumPy gives ``lower`` and ``upper`` (int64 for
    Python ints): note that ``float32_array + i`` is float64 by NumPy's promotion, so
    convert (``i.astype(x.dtype)``) when mixing it into a float32 carry.
    """
    if not callable(body_fun):
        raise TypeError("fori_loop: body_fun must be a callable `body_fun(i, val)`")
    for name, b in (("lower", lower), ("upper", upper)):
        aval = get_aval(b)
        if aval.shape != () or aval.dtype.kind not in "iu":
            raise TypeError(
                f"fori_loop: `{name}` must be an integer scalar, got {aval.str_short()}"
            )
    index_dtype = dtypes.result_type(lower, upper)
    lo, hi = _concrete(lower), _concrete(upper)
    if lo is not None and hi is not None:
        length = max(int(hi) - int(lo), 0)
        one = np.ones((), index_dtype)

        def step(carry: Any, _: Any) -> tuple[Any, None]:
            i, val = carry
            return (i + one, body_fun(i, val)), None

        (_, result), _ = scan_impl_entry(
            step,
            (np.asarray(lo, index_dtype), init_val),
            None,
            length,
            False,
            1,
            "fori_loop",
            _FORI_HINT,
        )
        return result
    lower = lax.convert_element_type(core.as_array(lower), index_dtype)
    upper = lax.convert_element_type(core.as_array(upper), index_dtype)

    def cond_fun(carry: Any) -> Any:
        i, hi_, _ = carry
        return lax.lt(i, hi_)

    def body(carry: Any) -> Any:
        i, hi_, val = carry
        return (lax.add(i, np.ones((), index_dtype)), hi_, body_fun(i, val))

    return while_loop(cond_fun, body, (lower, upper, init_val))[2]


_FORI_HINT = (
    "fori_loop: body_fun(i, val) must return a value of the same structure, shapes and "
    "dtypes as init_val (the carry above is (i, val)). The loop index i is an integer "
    "array, and NumPy's promotion makes `float32_value + i` float64: write "
    "`val + i.astype(val.dtype)`, or convert the result with `.astype`."
)


# ----------------------------------------------------------------------------------------
# Rules


@while_p.def_abstract_eval
def _while_abstract_eval(*avals, cond_jaxpr, cond_nconsts, body_jaxpr, body_nconsts):
    cc, bc, carry = split_list([a.strip_weak() for a in avals], [cond_nconsts, body_nconsts])
    for name, j in (("cond_jaxpr", cond_jaxpr), ("body_jaxpr", body_jaxpr)):
        if j.jaxpr.constvars:
            raise ValueError(f"while: {name} must have no constants (pass them as operands)")
    if [a.strip_weak() for a in cond_jaxpr.in_avals] != cc + carry:
        raise TypeError(
            f"while: cond_jaxpr takes {types_text(cond_jaxpr.in_avals)} but is given "
            f"{types_text(cc + carry)}"
        )
    pred = cond_jaxpr.out_avals
    if len(pred) != 1 or pred[0].shape != () or pred[0].dtype.kind != "b":
        raise TypeError(f"while: cond_jaxpr must return a bool scalar, got {types_text(pred)}")
    if [a.strip_weak() for a in body_jaxpr.in_avals] != bc + carry:
        raise TypeError(
            f"while: body_jaxpr takes {types_text(body_jaxpr.in_avals)} but is given "
            f"{types_text(bc + carry)}"
        )
    if [a.strip_weak() for a in body_jaxpr.out_avals] != carry:
        raise TypeError(
            f"while: body_jaxpr returns {types_text(body_jaxpr.out_avals)} but the carry is "
            f"{types_text(carry)}"
        )
    return carry


@while_p.def_impl
def _while_impl(*args, cond_jaxpr, cond_nconsts, body_jaxpr, body_nconsts):
    cc, bc, init = split_list(args, [cond_nconsts, body_nconsts])
    carry = list(init)
    while eval_jaxpr(cond_jaxpr.jaxpr, cond_jaxpr.consts, *cc, *carry)[0]:
        carry = eval_jaxpr(body_jaxpr.jaxpr, body_jaxpr.consts, *bc, *carry)
    return common.fresh_outputs(carry, args)


def _while_jvp(primals, tangents, *, cond_jaxpr, cond_nconsts, body_jaxpr, body_nconsts):
    cc, bc, init = split_list(primals, [cond_nconsts, body_nconsts])
    _, bc_t, init_t = split_list(tangents, [cond_nconsts, body_nconsts])
    bc_nz = [type(t) is not ad.Zero for t in bc_t]
    n = len(init)

    carry_nz, (body, consts, _) = common.fixed_point(
        lambda c: common.jvp_by_groups(body_jaxpr, [body_nconsts, n], [n], bc_nz + c, c),
        [type(t) is not ad.Zero for t in init_t],
        lambda result: result[2],
    )
    tangent_avals = [a for a, nz in zip(body_jaxpr.out_avals, carry_nz, strict=True) if nz]
    cond = common.pad_inputs(cond_jaxpr, [], tangent_avals)
    bc_t = [t for t in bc_t if type(t) is not ad.Zero]
    init_t = [ad.instantiate_zeros(t) for t, nz in zip(init_t, carry_nz, strict=True) if nz]
    outs = while_p.bind(
        *cc,
        *consts,
        *bc,
        *bc_t,
        *init,
        *init_t,
        cond_jaxpr=cond,
        cond_nconsts=cond_nconsts,
        body_jaxpr=body,
        body_nconsts=len(consts) + len(bc) + len(bc_t),
    )
    out, out_t = split_list(outs, [n])
    it = iter(out_t)
    return out, [
        next(it) if nz else ad.Zero(a) for nz, a in zip(carry_nz, body_jaxpr.out_avals, strict=True)
    ]


ad.primitive_jvps[while_p] = _while_jvp


def _while_partial_eval(trace: pe.PartialEvalTrace, tracers: list, **params: Any):
    """Known carries (when the predicate depends only on known values) are computed by a
    loop of the known part of the body; the unknown ones by the whole loop, recomputing the
    known part alongside (as in JAX). Reverse mode then stops at the transpose rule."""
    cond_jaxpr, cond_nconsts = params["cond_jaxpr"], params["cond_nconsts"]
    body_jaxpr, body_nconsts = params["body_jaxpr"], params["body_nconsts"]
    unknowns = [not t.is_known for t in tracers]
    cc_uk, bc_uk, init_uk = split_list(unknowns, [cond_nconsts, body_nconsts])
    n = len(init_uk)

    carry_uk, (jk, _, out_uk, num_res) = common.fixed_point(
        lambda c: pe.partial_eval_jaxpr(body_jaxpr, bc_uk + c, instantiate=c),
        init_uk,
        lambda result: result[2],
    )
    everything = trace.default_process_primitive(while_p, tracers, params)
    pred_deps = common.dependent_outputs(cond_jaxpr.jaxpr, cc_uk + carry_uk)
    if pred_deps[0] or all(carry_uk):
        return everything
    # The known carries: a loop of the known part of the body (its residuals unused).
    jk = common.restrict_outputs(jk, [True] * (n - sum(out_uk)) + [False] * num_res)
    jk, jk_consts = pe.hoist_consts(jk)
    known = [not uk for uk in cc_uk + carry_uk]
    cond = common.drop_inputs(common.restrict_outputs(cond_jaxpr, [True]), known)
    cc, bc, init = split_list(tracers, [cond_nconsts, body_nconsts])
    known_cc = [t.const for t in cc if t.is_known]
    known_bc = [t.const for t, uk in zip(bc, bc_uk, strict=True) if not uk]
    known_init = [t.const for t, uk in zip(init, carry_uk, strict=True) if not uk]
    known_outs = while_p.bind(
        *known_cc,
        *jk_consts,
        *known_bc,
        *known_init,
        cond_jaxpr=cond,
        cond_nconsts=len(known_cc),
        body_jaxpr=jk,
        body_nconsts=len(jk_consts) + len(known_bc),
    )
    it = iter(known_outs)
    return [o if uk else trace.pure(next(it)) for o, uk in zip(everything, carry_uk, strict=True)]


pe.custom_partial_eval_rules[while_p] = _while_partial_eval


def _while_transpose(cts, *args, **params):
    raise ValueError(
        "Reverse-mode differentiation (grad, vjp, jacrev) does not work through "
        "lax.while_loop, nor through lax.fori_loop with traced bounds: the number of "
        "iterations is only known while the loop runs, so its backward pass cannot be "
        "built. Use lax.scan, or lax.fori_loop with concrete (Python int) bounds, which "
        "runs as a scan; forward mode (jvp, jacfwd) works through while_loop."
    )


ad.primitive_transposes[while_p] = _while_transpose


def _while_batch(args, dims, *, cond_jaxpr, cond_nconsts, body_jaxpr, body_nconsts):
    size = batching.axis_size_of(args, dims)
    args = [x if d is None else batching.moveaxis(x, d, 0) for x, d in zip(args, dims, strict=True)]
    batched = [d is not None for d in dims]
    cc, bc, init = split_list(args, [cond_nconsts, body_nconsts])
    cc_b, bc_b, init_b = split_list(batched, [cond_nconsts, body_nconsts])
    n = len(init)

    carry_b, _ = common.fixed_point(
        lambda c: common.batch_hoisted(body_jaxpr, bc_b + c, size, c),
        init_b,
        lambda result: result[2],
    )
    _, _, (pred_b,) = common.batch_hoisted(cond_jaxpr, cc_b + carry_b, size, [False])
    if pred_b:
        carry_b = [True] * n
    init = [
        batching.bdim_at_front(x, None, size) if b and not ib else x
        for x, b, ib in zip(init, carry_b, init_b, strict=True)
    ]
    body, body_consts, _ = common.batch_hoisted(body_jaxpr, bc_b + carry_b, size, carry_b)
    cond, cond_consts, _ = common.batch_hoisted(cond_jaxpr, cc_b + carry_b, size, [pred_b])
    if not pred_b:
        outs = while_p.bind(
            *cond_consts,
            *cc,
            *body_consts,
            *bc,
            *init,
            cond_jaxpr=cond,
            cond_nconsts=len(cond_consts) + len(cc),
            body_jaxpr=body,
            body_nconsts=len(body_consts) + len(bc),
        )
        return outs, [0 if b else None for b in carry_b]
    # Per-example predicates: loop while any example runs; finished ones keep their carry.
    n_cc = len(cond_consts) + len(cc)
    n_bc = len(body_consts) + len(bc)
    cc_avals = [aval_of(x) for x in [*cond_consts, *cc]]
    bc_avals = [aval_of(x) for x in [*body_consts, *bc]]
    carry_avals = [aval_of(x) for x in init]

    def any_running(*a: Any) -> list[Any]:
        (pred,) = eval_jaxpr(cond.jaxpr, cond.consts, *a)
        return [lax.reduce_or(pred, (0,))]

    def masked_body(*a: Any) -> list[Any]:
        ccs, bcs, carry = split_list(a, [n_cc, n_bc])
        (pred,) = eval_jaxpr(cond.jaxpr, cond.consts, *ccs, *carry)
        new = eval_jaxpr(body.jaxpr, body.consts, *bcs, *carry)
        return [
            lax.select_n(lax.broadcast_in_dim(pred, get_aval(x).shape, (0,)), x, y)
            for x, y in zip(carry, new, strict=True)
        ]

    new_cond, consts1 = pe.trace_to_hoisted_jaxpr(any_running, cc_avals + carry_avals)
    new_body, consts2 = pe.trace_to_hoisted_jaxpr(masked_body, cc_avals + bc_avals + carry_avals)
    outs = while_p.bind(
        *consts1,
        *cond_consts,
        *cc,
        *consts2,
        *cond_consts,
        *cc,
        *body_consts,
        *bc,
        *init,
        cond_jaxpr=new_cond,
        cond_nconsts=len(consts1) + n_cc,
        body_jaxpr=new_body,
        body_nconsts=len(consts2) + n_cc + n_bc,
    )
    return outs, [0] * n


batching.primitive_batchers[while_p] = _while_batch
