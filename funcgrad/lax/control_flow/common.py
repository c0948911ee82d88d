"""Machinery shared by the control-flow primitives (``cond``, ``while``, ``scan``).

- Tracing: :func:`trace_function` stages a user function (over pytrees) into a jaxpr with
  ``funcgrad.interpreters.partial_eval.trace_to_jaxpr``. Values the function closes over
  (NumPy arrays, tracers of outer transformations) come back as *explicit operands*: every
  sub-jaxpr a control-flow equation carries is a ``ClosedJaxpr`` without constants, whose
  leading inputs take them. So ``vmap``/``grad``/``jit`` of the enclosing function see the
  closed-over values as ordinary operands of the equation.
- Type checks: :func:`check_types` compares what a branch or loop body returns with what
  it must return and names both pytree structures and every differing shape and dtype.
- Layouts of the interpreters' jaxpr-to-jaxpr transformations for the rules
  (:func:`jvp_by_groups` over ``ad.jvp_jaxpr``, :func:`batch_hoisted` over
  ``batching.batch_jaxpr``), with the constants of the result hoisted into leading inputs
  again (``partial_eval.hoist_consts``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from funcgrad import core, dtypes, tree_util
from funcgrad.core import ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Jaxpr, Var, dce_jaxpr
from funcgrad.tree_util import PyTreeDef

# ----------------------------------------------------------------------------------------
# Values and avals


def aval_of(x: Any) -> ShapedArray:
    return get_aval(x).strip_weak()


def types_text(avals: Sequence[ShapedArray]) -> str:
    return "(" + ", ".join(a.str_short() for a in avals) + ")"


def fresh_outputs(outs: Sequence[Any], inputs: Sequence[Any]) -> list[Any]:
    """``outs`` with every array that may share memory with an input (or an earlier output)
    copied: results never alias an input or each other."""
    taken = [x for x in inputs if isinstance(x, np.ndarray)]
    result = []
    for o in outs:
        if isinstance(o, np.ndarray):
            if any(np.may_share_memory(o, x) for x in taken):
                o = o.copy()
            taken.append(o)
        result.append(o)
    return result


# ----------------------------------------------------------------------------------------
# Tracing user functions


class Traced(NamedTuple):
    """A user function staged into a jaxpr: ``jaxpr`` takes ``consts`` then the arguments."""

    jaxpr: ClosedJaxpr
    consts: list[Any]
    out_tree: PyTreeDef
    #: Per output leaf: was it a Python scalar (weakly typed, as in JAX)?
    out_weak: list[bool]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return self.jaxpr.out_avals


def trace_function(
    fun: Callable,
    in_tree: PyTreeDef,
    in_avals: Sequence[ShapedArray],
    out_dtypes: Sequence[np.dtype | None] | None = None,
) -> Traced:
    """Stage ``fun(*tree_unflatten(in_tree, args))`` at ``in_avals``.

    ``out_dtypes`` (one entry per output leaf, or None) gives the dtype of output leaves that
    are Python scalars, so a branch returning ``0.0`` can match a float32 branch.
    """
    store: dict[str, Any] = {}

    def flat_fun(*flat: Any) -> list[Any]:
        out = fun(*tree_util.tree_unflatten(in_tree, flat))
        leaves, out_tree = tree_util.tree_flatten(out)
        weak = [dtypes.is_python_scalar(x) for x in leaves]
        if out_dtypes is not None and len(out_dtypes) == len(leaves):
            leaves = [
                np.asarray(x, dt) if w and dt is not None else x
                for x, w, dt in zip(leaves, weak, out_dtypes, strict=True)
            ]
        store["tree"], store["weak"] = out_tree, weak
        return [core.as_array(x) for x in leaves]

    closed = pe.trace_to_jaxpr(flat_fun, [a.strip_weak() for a in in_avals])
    jaxpr, consts = pe.hoist_consts(closed)
    return Traced(jaxpr, consts, store["tree"], store["weak"])


def trace_loop_body(
    what: str,
    fun: Callable,
    in_tree: PyTreeDef,
    in_avals: Sequence[ShapedArray],
    carry_tree: PyTreeDef,
    weak: Sequence[bool],
    out_carry: Callable[[Traced], tuple[PyTreeDef, list[ShapedArray]]] | None = None,
    hint: str = "",
) -> tuple[Traced, list[ShapedArray]]:
    """Trace a loop body whose leading inputs are the carry, and check that it returns the
    carry's type.

    ``out_carry(traced)`` picks the carry part of the output (treedef, avals); by default
    the whole output. A carry leaf given as a Python scalar (``weak``) whose dtype the body
    changes takes the body's dtype (JAX's weak typing: ``fori_loop(0, n, lambda i, x: x +
    0.5, 0)`` carries a float). Returns the traced body and the (possibly updated) input
    avals; convert the initial values with :func:`convert_weak`.
    """
    in_avals = [a.strip_weak() for a in in_avals]
    n = carry_tree.num_leaves
    pick = out_carry or (lambda t: (t.out_tree, t.out_avals))
    for attempt in range(2):
        traced = trace_function(fun, in_tree, in_avals)
        out_tree, out_avals = pick(traced)
        if attempt == 0 and out_tree == carry_tree:
            fix = {
                k: o.dtype
                for k, (c, o) in enumerate(zip(in_avals[:n], out_avals, strict=True))
                if weak[k] and c.shape == o.shape and c.dtype != o.dtype
            }
            if fix:
                in_avals = [
                    a.update(dtype=fix[k]) if k in fix else a for k, a in enumerate(in_avals)
                ]
                continue
        break
    check_types(
        what,
        "the carry it was given",
        carry_tree,
        in_avals[:n],
        "the carry the body returns",
        out_tree,
        out_avals,
        hint
        or "The loop body must return a carry of the same structure, shapes and dtypes "
        "as its input carry (convert with `.astype(dtype)`).",
    )
    return traced, in_avals


def convert_weak(values: Sequence[Any], avals: Sequence[ShapedArray]) -> list[Any]:
    """``values`` converted to the dtypes of ``avals`` where they differ (weak scalars)."""
    return [
        np.asarray(x, a.dtype) if aval_of(x).dtype != a.dtype else x
        for x, a in zip(values, avals, strict=True)
    ]


def fixed_point(
    compute: Callable[[list[bool]], Any],
    start: Sequence[bool],
    project: Callable[[Any], Sequence[bool]],
) -> tuple[list[bool], Any]:
    """The least ``flags >= start`` with ``project(compute(flags)) <= flags``, and
    ``compute(flags)`` there: which loop carries are nonzero/unknown/batched (a carry is
    when its initial value is, or when the body makes it so)."""
    flags = list(start)
    for _ in range(len(flags) + 1):
        result = compute(flags)
        new = [a or b for a, b in zip(flags, project(result), strict=True)]
        if new == flags:
            return flags, result
        flags = new
    raise AssertionError("fixed_point did not converge")


# ----------------------------------------------------------------------------------------
# Type checks with clear errors


def _leaf_paths(tree: PyTreeDef, n: int) -> list[str]:
    dummy = tree_util.tree_unflatten(tree, [0] * n)
    return [
        tree_util.keystr(p) or "(the value itself)"
        for p, _ in tree_util.tree_flatten_with_path(dummy)[0]
    ]


def check_types(
    what: str,
    expected_name: str,
    expected_tree: PyTreeDef,
    expected_avals: Sequence[ShapedArray],
    got_name: str,
    got_tree: PyTreeDef,
    got_avals: Sequence[ShapedArray],
    hint: str = "",
) -> None:
    """Raise a TypeError naming both structures and every differing leaf, or return."""
    expected_avals = [a.strip_weak() for a in expected_avals]
    got_avals = [a.strip_weak() for a in got_avals]
    if expected_tree == got_tree and expected_avals == got_avals:
        return
    head = (
        f"{what}: {got_name} must have the same pytree structure, shapes and dtypes as "
        f"{expected_name}, but"
    )
    if expected_tree != got_tree:
        msg = (
            f"{head} their structures differ: {expected_name} is {expected_tree} with types "
            f"{types_text(expected_avals)}, and {got_name} is {got_tree} with types "
            f"{types_text(got_avals)}."
        )
    else:
        lines = []
        for path, e, g in zip(
            _leaf_paths(expected_tree, len(expected_avals)), expected_avals, got_avals, strict=True
        ):
            if e == g:
                continue
            why = []
            if e.shape != g.shape:
                why.append("the shapes differ")
            if e.dtype != g.dtype:
                why.append("the dtypes differ")
            lines.append(
                f"  * {path}: {expected_name} has {e.str_short()} but {got_name} has "
                f"{g.str_short()} ({' and '.join(why)})"
            )
        msg = f"{head} they differ (structure {expected_tree}):\n" + "\n".join(lines)
    if hint:
        msg += "\n" + hint
    raise TypeError(msg)


# ----------------------------------------------------------------------------------------
# Jaxpr surgery


def pad_inputs(
    closed: ClosedJaxpr, before: Sequence[ShapedArray], after: Sequence[ShapedArray] = ()
) -> ClosedJaxpr:
    """``closed`` with unused inputs of types ``before`` (and ``after``) added around its own."""
    jaxpr = closed.jaxpr
    invars = [Var(a) for a in before] + jaxpr.invars + [Var(a) for a in after]
    return ClosedJaxpr(Jaxpr(jaxpr.constvars, invars, jaxpr.eqns, jaxpr.outvars), closed.consts)


def join_consts(
    jaxprs: Sequence[ClosedJaxpr], consts: Sequence[Sequence[Any]]
) -> tuple[list[ClosedJaxpr], list[Any]]:
    """Jaxprs whose leading inputs take ``consts[i]`` -> jaxprs that all take every const
    (the concatenation, returned), each ignoring the others' (for ``cond`` branches)."""
    avals = [[aval_of(c) for c in cs] for cs in consts]
    joined = []
    for i, jaxpr in enumerate(jaxprs):
        before = [a for avs in avals[:i] for a in avs]
        after_consts = [a for avs in avals[i + 1 :] for a in avs]
        # Put the other branches' consts around this branch's own (which come first).
        n = len(avals[i])
        j = jaxpr.jaxpr
        own, rest = j.invars[:n], j.invars[n:]
        invars = [Var(a) for a in before] + own + [Var(a) for a in after_consts] + rest
        joined.append(ClosedJaxpr(Jaxpr(j.constvars, invars, j.eqns, j.outvars), jaxpr.consts))
    return joined, [c for cs in consts for c in cs]


def dependent_outputs(jaxpr: Jaxpr, dependent_inputs: Sequence[bool]) -> list[bool]:
    """Which outputs depend on the inputs marked True (a forward taint analysis)."""
    dep = {v for v, d in zip(jaxpr.invars, dependent_inputs, strict=True) if d}
    for eqn in jaxpr.eqns:
        if any(type(x) is Var and x in dep for x in eqn.inputs):
            dep.update(eqn.outvars)
    return [type(x) is Var and x in dep for x in jaxpr.outvars]


def restrict_outputs(closed: ClosedJaxpr, keep: Sequence[bool]) -> ClosedJaxpr:
    """``closed`` returning only the outputs marked in ``keep`` (dead code removed)."""
    jaxpr, _ = dce_jaxpr(closed.jaxpr, keep)
    kept = set(jaxpr.constvars)
    consts = [c for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True) if v in kept]
    return ClosedJaxpr(jaxpr, consts)


def drop_inputs(closed: ClosedJaxpr, keep: Sequence[bool]) -> ClosedJaxpr:
    """``closed`` without the inputs not marked in ``keep`` (they must be unused)."""
    jaxpr = closed.jaxpr
    used: set[Var] = {x for e in jaxpr.eqns for x in e.inputs if type(x) is Var}
    used.update(x for x in jaxpr.outvars if type(x) is Var)
    invars = []
    for v, k in zip(jaxpr.invars, keep, strict=True):
        if k:
            invars.append(v)
        else:
            assert v not in used, "drop_inputs: dropping an input that is used"
    return ClosedJaxpr(Jaxpr(jaxpr.constvars, invars, jaxpr.eqns, jaxpr.outvars), closed.consts)


def reorder_inputs(closed: ClosedJaxpr, order: Sequence[int]) -> ClosedJaxpr:
    """``closed`` whose i-th input is its old input ``order[i]``."""
    jaxpr = closed.jaxpr
    invars = [jaxpr.invars[i] for i in order]
    assert sorted(order) == list(range(len(jaxpr.invars)))
    return ClosedJaxpr(Jaxpr(jaxpr.constvars, invars, jaxpr.eqns, jaxpr.outvars), closed.consts)


# ----------------------------------------------------------------------------------------
# Transformed jaxprs


def _groups(sizes: Sequence[int]) -> list[range]:
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


def jvp_by_groups(
    closed: ClosedJaxpr,
    in_sizes: Sequence[int],
    out_sizes: Sequence[int],
    nonzeros: Sequence[bool],
    instantiate: Sequence[bool],
) -> tuple[ClosedJaxpr, list[Any], list[bool]]:
    """``ad.jvp_jaxpr`` of ``closed``, laid out group by group, constants hoisted.

    Inputs and outputs are split into consecutive groups (``in_sizes``, e.g. consts, carry,
    xs of a scan body; ``out_sizes``, e.g. carry, ys). The result takes, per input group,
    its primals followed by the tangents marked in ``nonzeros``; it returns, per output
    group, its primals followed by the tangents that are not symbolic zeros or that
    ``instantiate`` asks for. Returns ``(jaxpr, consts, out_nonzeros)``; ``consts`` go
    before every other input.
    """
    jvp, out_nz = ad.jvp_jaxpr(closed, nonzeros, list(instantiate))
    jaxpr = jvp.jaxpr
    n_in, n_out = len(closed.in_avals), len(closed.out_avals)
    # ad.jvp_jaxpr's layout: all primals, then the nonzero tangents (inputs and outputs).
    nz_in = [k for k in range(n_in) if nonzeros[k]]
    nz_out = [k for k in range(n_out) if out_nz[k]]
    tangent_in = dict(zip(nz_in, range(n_in, len(jaxpr.invars)), strict=True))
    tangent_out = dict(zip(nz_out, range(n_out, len(jaxpr.outvars)), strict=True))
    invars, outvars = [], []
    for g in _groups(in_sizes):
        invars += [jaxpr.invars[k] for k in g]
        invars += [jaxpr.invars[tangent_in[k]] for k in g if k in tangent_in]
    for g in _groups(out_sizes):
        outvars += [jaxpr.outvars[k] for k in g]
        outvars += [jaxpr.outvars[tangent_out[k]] for k in g if k in tangent_out]
    grouped = ClosedJaxpr(Jaxpr(jaxpr.constvars, invars, jaxpr.eqns, outvars), jvp.consts)
    hoisted, consts = pe.hoist_consts(grouped)
    return hoisted, consts, out_nz


def batch_hoisted(
    closed: ClosedJaxpr,
    in_batched: Sequence[bool],
    size: int,
    instantiate: Sequence[bool],
) -> tuple[ClosedJaxpr, list[Any], list[bool]]:
    """``batching.batch_jaxpr`` of ``closed`` with its constants hoisted: ``(jaxpr, consts,
    out_batched)``; ``consts`` go before every other input."""
    batched, out_b = batching.batch_jaxpr(closed, in_batched, size, list(instantiate))
    jaxpr, consts = pe.hoist_consts(batched)
    return jaxpr, consts, out_b
