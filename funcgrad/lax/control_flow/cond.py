"""``cond`` and ``switch``: the primitive ``cond`` with all its rules.

``cond_p.bind(index, *operands, branches=(jaxpr_0, ..., jaxpr_{n-1}))`` evaluates
``branches[index](*operands)``; ``index`` is an integer scalar (the public functions clamp
it into range, as JAX's ``switch``), every branch is a ``ClosedJaxpr`` without constants
taking the same operand types and returning the same output types. Values the branch
functions close over are leading operands (each branch ignores the others').

Decisions:

- **Both branches are traced**, eagerly too (as in JAX), so a type mismatch between them is
  an error whatever the predicate; only the taken branch runs.
- **A batched predicate runs every branch and selects** (``vmap`` of ``cond`` with a
  per-example predicate): each output is ``select_n(index, *branch_outputs)`` elementwise,
  as in JAX. Both branches then run on every example, so a branch must be safe to evaluate
  on inputs it would not see unbatched (NaN or inf in the untaken branch is discarded;
  an expensive untaken branch costs its time). With an unbatched predicate only one branch
  runs.
- **Reverse mode**: when the index is a concrete value (``grad`` outside ``jit``), partial
  evaluation inlines the taken branch, so the linear jaxpr holds no ``cond`` at all. When it
  is traced, the known part is one ``cond`` computing the primal outputs and the residuals
  of every branch (zeros for the branches not taken), and the linear part is a ``cond`` on
  the same index whose transpose is a ``cond`` of the transposed branches.
- A Python scalar returned by one branch takes the dtype of the other branches' output
  there (JAX's weak typing), so ``cond(p, lambda x: x, lambda x: 0.0, x32)`` is float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core, lax, tree_util
from funcgrad.core import Primitive, ShapedArray, Tracer, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Jaxpr, Var, eval_jaxpr
from funcgrad.lax.control_flow import common
from funcgrad.lax.control_flow.common import aval_of, types_text
from funcgrad.util import split_list

cond_p = Primitive("cond", multiple_results=True)


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as one primitive
    that works under ``jit``, ``vmap`` and ``grad`` (a scalar bool or integer ``pred``)."""
    if not callable(true_fun) or not callable(false_fun):
        raise TypeError(
            "cond: true_fun and false_fun must be callables, called as "
            "`cond(pred, true_fun, false_fun, *operands)`"
        )
    pred = core.as_array(pred)
    aval = get_aval(pred)
    if aval.shape != ():
        raise TypeError(
            f"cond: the predicate must be a scalar, got {aval.str_short()}; reduce it (e.g. "
            "`x.any()`), or use funcgrad.numpy.where for an elementwise choice"
        )
    if aval.dtype.kind != "b":
        if aval.dtype.kind not in "iu":
            raise TypeError(
                f"cond: the predicate must be a bool or integer scalar, got "
                f"{aval.str_short()}; compare it first (e.g. `x > 0`)"
            )
        pred = lax.ne(pred, np.zeros((), aval.dtype)[()])
    index = lax.convert_element_type(pred, np.int32)
    return _bind_cond(index, (false_fun, true_fun), operands, ("false_fun", "true_fun"), "cond")


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """``branches[index](*operands)``, with ``index`` clamped to ``[0, len(branches) - 1]``
    (JAX's semantics), as one primitive that works under ``jit``, ``vmap`` and ``grad``."""
    branches = tuple(branches)
    if not branches:
        raise ValueError("switch: `branches` is empty; give at least one function")
    for k, b in enumerate(branches):
        if not callable(b):
            raise TypeError(f"switch: branches[{k}] is not callable ({type(b).__name__})")
    index = core.as_array(index)
    aval = get_aval(index)
    if aval.shape != ():
        raise TypeError(f"switch: the branch index must be a scalar, got {aval.str_short()}")
    if aval.dtype.kind not in "iu":
        raise TypeError(
            f"switch: the branch index must be an integer, got {aval.str_short()}; convert it "
            "with `.astype(int32)`"
        )
    index = lax.convert_element_type(index, np.int32)
    if len(branches) == 1:
        return branches[0](*operands)
    hi = np.int32(len(branches) - 1)
    index = lax.clamp(np.int32(0), index, hi)
    names = tuple(f"branches[{k}]" for k in range(len(branches)))
    return _bind_cond(index, branches, operands, names, "switch")


def _bind_cond(
    index: Any, funs: Sequence[Callable], operands: tuple, names: Sequence[str], what: str
) -> Any:
    ops_flat, in_tree = tree_util.tree_flatten(operands)
    ops_flat = [core.as_array(x) for x in ops_flat]
    in_avals = [aval_of(x) for x in ops_flat]
    traced = [common.trace_function(f, in_tree, in_avals) for f in funs]
    traced = _unify_weak_outputs(traced, funs, in_tree, in_avals)
    for t, name in zip(traced[1:], names[1:], strict=True):
        common.check_types(
            what,
            f"the output of {names[0]}",
            traced[0].out_tree,
            traced[0].out_avals,
            f"the output of {name}",
            t.out_tree,
            t.out_avals,
            "Make every branch return the same structure of arrays (e.g. convert with "
            "`.astype(dtype)`, or broadcast with `fnp.broadcast_to`).",
        )
    branches, consts = common.join_consts([t.jaxpr for t in traced], [t.consts for t in traced])
    outs = cond_p.bind(index, *consts, *ops_flat, branches=tuple(branches))
    return tree_util.tree_unflatten(traced[0].out_tree, outs)


def _unify_weak_outputs(traced, funs, in_tree, in_avals):
    """Retrace branches whose Python-scalar outputs should take another branch's dtype."""
    n_out = {len(t.out_avals) for t in traced}
    trees = {t.out_tree for t in traced}
    if len(n_out) != 1 or len(trees) != 1:
        return traced  # a structure mismatch: reported by check_types
    targets: list[np.dtype | None] = []
    for k in range(n_out.pop()):
        strong = {t.out_avals[k].dtype for t in traced if not t.out_weak[k]}
        weak = {t.out_avals[k].dtype for t in traced if t.out_weak[k]}
        target = strong.pop() if len(strong) == 1 else None
        targets.append(target if target is not None and weak - {target} else None)
    if all(t is None for t in targets):
        return traced
    return [
        common.trace_function(f, in_tree, in_avals, targets)
        if any(w and dt is not None for w, dt in zip(t.out_weak, targets, strict=True))
        else t
        for t, f in zip(traced, funs, strict=True)
    ]


# ----------------------------------------------------------------------------------------
# Rules


@cond_p.def_abstract_eval
def _cond_abstract_eval(index: ShapedArray, *avals: ShapedArray, branches):
    if not branches:
        raise ValueError("cond: needs at least one branch")
    if index.shape != () or index.dtype.kind not in "iu":
        raise TypeError(
            f"cond: the branch index must be an integer scalar, got {index.str_short()}"
        )
    in_avals = [a.strip_weak() for a in avals]
    out_avals = [a.strip_weak() for a in branches[0].out_avals]
    for k, b in enumerate(branches):
        if b.jaxpr.constvars:
            raise ValueError("cond: branch jaxprs must have no constants (pass them as operands)")
        if [a.strip_weak() for a in b.in_avals] != in_avals:
            raise TypeError(
                f"cond: branch {k} takes {types_text(b.in_avals)} but the operands are "
                f"{types_text(in_avals)}"
            )
        if [a.strip_weak() for a in b.out_avals] != out_avals:
            raise TypeError(
                f"cond: branch {k} returns {types_text(b.out_avals)} but branch 0 returns "
                f"{types_text(out_avals)}; every branch must return the same types"
            )
    return out_avals


def _clamped(index: Any, n: int) -> int:
    return min(max(int(index), 0), n - 1)


@cond_p.def_impl
def _cond_impl(index, *ops, branches):
    branch = branches[_clamped(index, len(branches))]
    outs = eval_jaxpr(branch.jaxpr, branch.consts, *ops)
    return common.fresh_outputs(outs, ops)


def _cond_jvp(primals, tangents, *, branches):
    index, *ops = primals
    nonzeros = [type(t) is not ad.Zero for t in tangents[1:]]
    n_in, n_out = len(ops), len(branches[0].out_avals)
    out_nz = [False] * n_out
    for b in branches:
        _, _, nz = common.jvp_by_groups(b, [n_in], [n_out], nonzeros, [False] * n_out)
        out_nz = [a or c for a, c in zip(out_nz, nz, strict=True)]
    jvps = [common.jvp_by_groups(b, [n_in], [n_out], nonzeros, out_nz) for b in branches]
    new_branches, consts = common.join_consts([j for j, _, _ in jvps], [c for _, c, _ in jvps])
    ops_t = [t for t in tangents[1:] if type(t) is not ad.Zero]
    outs = cond_p.bind(index, *consts, *ops, *ops_t, branches=tuple(new_branches))
    primals_out, nz_tangents = split_list(outs, [n_out])
    it = iter(nz_tangents)
    tangents_out = [
        next(it) if nz else ad.Zero(a) for nz, a in zip(out_nz, branches[0].out_avals, strict=True)
    ]
    return primals_out, tangents_out


ad.primitive_jvps[cond_p] = _cond_jvp


def _cond_partial_eval(trace: pe.PartialEvalTrace, tracers: list, *, branches):
    index_t, *ops_t = tracers
    if not index_t.is_known:
        return trace.default_process_primitive(cond_p, tracers, {"branches": branches})
    index = index_t.const
    if not isinstance(index, Tracer):
        # A concrete index (grad outside jit): partially evaluate only the taken branch.
        b = branches[_clamped(index, len(branches))]
        outs = eval_jaxpr(b.jaxpr, b.consts, *ops_t)
        return [core.full_raise(trace, core.as_array(o)) for o in outs]
    unknowns = [not t.is_known for t in ops_t]
    n_out = len(branches[0].out_avals)
    out_uk = [False] * n_out
    for b in branches:
        _, _, uk, _ = pe.partial_eval_jaxpr(b, unknowns, instantiate=False)
        out_uk = [a or c for a, c in zip(out_uk, uk, strict=True)]
    splits = [pe.partial_eval_jaxpr(b, unknowns, instantiate=out_uk) for b in branches]
    n_known_out = n_out - sum(out_uk)
    # Residuals of every branch: branch i computes its own and returns zeros for the others'.
    res_avals = [list(jk.out_avals[n_known_out:]) for jk, _, _, _ in splits]
    known_ops = [t.const for t in ops_t if t.is_known]
    known_avals = [aval_of(x) for x in known_ops]
    known_branches, known_consts = [], []
    for i, (jk, _, _, _) in enumerate(splits):
        known_fun = _with_zero_residuals(jk, i, res_avals)
        jaxpr, consts = pe.trace_to_hoisted_jaxpr(known_fun, known_avals)
        known_branches.append(jaxpr)
        known_consts.append(consts)
    known_branches, consts = common.join_consts(known_branches, known_consts)
    known_outs: list[Any] = []
    if known_branches[0].jaxpr.outvars:
        known_outs = cond_p.bind(index, *consts, *known_ops, branches=tuple(known_branches))
    known_outs, residuals = split_list(known_outs, [n_known_out])
    # The unknown branches all take every residual and use their own.
    unknown_branches, unknown_consts = [], []
    for i, (_, ju, _, _) in enumerate(splits):
        ju, consts = pe.hoist_consts(ju)
        before = [a for avs in res_avals[:i] for a in avs]
        after = [a for avs in res_avals[i + 1 :] for a in avs]
        unknown_branches.append(_place_residuals(ju, len(consts), len(res_avals[i]), before, after))
        unknown_consts.append(consts)
    unknown_branches, consts = common.join_consts(unknown_branches, unknown_consts)
    unknown_ops = [t for t in ops_t if not t.is_known]
    out_avals = [a for a, uk in zip(branches[0].out_avals, out_uk, strict=True) if uk]
    unknown_outs: list[Any] = []
    if out_avals:
        unknown_outs = trace.record(
            cond_p,
            [index, *consts, *residuals, *unknown_ops],
            {"branches": tuple(unknown_branches)},
            out_avals,
        )
    known_it, unknown_it = iter(known_outs), iter(unknown_outs)
    return [
        next(unknown_it) if uk else core.full_raise(trace, core.as_array(next(known_it)))
        for uk in out_uk
    ]


def _with_zero_residuals(jk: ClosedJaxpr, i: int, res_avals: list[list[ShapedArray]]):
    """A function running ``jk`` (known outputs + branch i's residuals) that returns zeros
    in place of the other branches' residuals."""

    def fun(*args: Any) -> list[Any]:
        outs = eval_jaxpr(jk.jaxpr, jk.consts, *args)
        n_known = len(outs) - len(res_avals[i])
        result = list(outs[:n_known])
        for j, avals in enumerate(res_avals):
            if j == i:
                result += outs[n_known:]
            else:
                result += [lax.full(a.shape, 0, a.dtype) for a in avals]
        return result

    return fun


def _place_residuals(ju, n_consts, n_res, before, after):
    """``ju`` (inputs: consts, own residuals, unknown operands) taking every branch's
    residuals: ``before`` and ``after`` are the types of the other branches' ones."""
    j = ju.jaxpr
    consts, own, rest = split_list(j.invars, [n_consts, n_res])
    invars = consts + [Var(a) for a in before] + own + [Var(a) for a in after] + rest
    return ClosedJaxpr(Jaxpr(j.constvars, invars, j.eqns, j.outvars), ju.consts)


pe.custom_partial_eval_rules[cond_p] = _cond_partial_eval


def _cond_transpose(cts, index, *ops, branches):
    if ad.is_undefined_primal(index):
        raise ValueError("cond: transpose with respect to the branch index (it is not linear)")
    linear = [ad.is_undefined_primal(x) for x in ops]
    residuals = [x for x in ops if not ad.is_undefined_primal(x)]
    transposed = [pe.hoist_consts(ad.transpose_jaxpr(b, linear)) for b in branches]
    new_branches, consts = common.join_consts(
        [j for j, _ in transposed], [c for _, c in transposed]
    )
    cts = [ad.instantiate_zeros(c) for c in cts]
    outs = cond_p.bind(index, *consts, *residuals, *cts, branches=tuple(new_branches))
    it = iter(outs)
    return [None] + [next(it) if lin else None for lin in linear]


ad.primitive_transposes[cond_p] = _cond_transpose


def _cond_batch(args, dims, *, branches):
    index, *ops = args
    index_dim, *op_dims = dims
    size = batching.axis_size_of(args, dims)
    ops = [
        x if d is None else batching.moveaxis(x, d, 0) for x, d in zip(ops, op_dims, strict=True)
    ]
    ops_b = [d is not None for d in op_dims]
    n_out = len(branches[0].out_avals)
    if index_dim is not None:
        # A batched predicate: run every branch on the whole batch and select per example.
        index = batching.moveaxis(index, index_dim, 0)
        branch_outs = []
        for b in branches:
            jaxpr, consts, _ = common.batch_hoisted(b, ops_b, size, [True] * n_out)
            branch_outs.append(eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *consts, *ops))
        outs = []
        for k in range(n_out):
            shape = get_aval(branch_outs[0][k]).shape
            which = lax.broadcast_in_dim(index, shape, (0,))
            outs.append(lax.select_n(which, *[o[k] for o in branch_outs]))
        return outs, [0] * n_out
    out_b = [False] * n_out
    for b in branches:
        _, _, ob = common.batch_hoisted(b, ops_b, size, [False] * n_out)
        out_b = [x or y for x, y in zip(out_b, ob, strict=True)]
    batched = [common.batch_hoisted(b, ops_b, size, out_b) for b in branches]
    new_branches, consts = common.join_consts(
        [j for j, _, _ in batched], [c for _, c, _ in batched]
    )
    outs = cond_p.bind(index, *consts, *ops, branches=tuple(new_branches))
    return outs, [0 if b else None for b in out_b]


batching.primitive_batchers[cond_p] = _cond_batch
