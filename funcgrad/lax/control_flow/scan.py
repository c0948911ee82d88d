"""``scan``: the primitive ``scan`` with all its rules.

``scan_p.bind(*consts, *init, *xs, jaxpr=..., length=n, reverse=..., linear=...,
unroll=..., num_consts=..., num_carry=...)`` runs ``carry, y = body(*consts, *carry,
*x[i])`` for ``i`` in ``range(n)`` (backwards with ``reverse``) and returns the final carry
followed by the ``y``s stacked along a new leading axis (JAX's primitive and parameter
names; ``linear`` marks operands known to be linear and is informational).

Decisions:

- **Reverse mode** is JAX's: the JVP scan is split by partial evaluation into a *known*
  scan (the primal loop, which also returns the per-step residuals the tangent loop needs,
  stacked along the scan axis) and an *unknown* scan over the tangents, which transposes
  into one scan running the other way. Residuals that do not change across steps (a weight
  matrix closed over by the body) are computed once and passed as constants; residuals that
  are slices of ``xs`` reuse ``xs`` rather than being stacked again. Memory is therefore
  ``O(length)`` residuals; wrap the body in ``checkpoint`` to store only its inputs and
  recompute the rest in the backward pass.
- Each step's ``y`` is written into a preallocated ``(length, ...)`` array; the carry is
  passed from step to step without copies.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import core, dtypes, tree_util
from funcgrad.core import Primitive, ShapedArray
from funcgrad.interpreters import ad, batching
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import Var, eval_jaxpr
from funcgrad.lax.control_flow import common
from funcgrad.lax.control_flow.common import aval_of, types_text
from funcgrad.util import split_list

scan_p = Primitive("scan", multiple_results=True)


def scan(
    f: Callable,
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
) -> tuple[Any, Any]:
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns the final
    carry and the ``y``s stacked. ``init``, ``xs`` and the ``y``s are pytrees; with
    ``xs=None`` give ``length``. As Python::

        def scan(f, init, xs, length=None, reverse=False):
            xs_seq = zip(*xs) if xs is not None else [None] * length
            carry, ys = init, []
            for x in (reversed(xs_seq) if reverse else xs_seq):
                carry, y = f(carry, x)
                ys.append(y)
            return carry, stack(reversed(ys) if reverse else ys)
    """
    return scan_impl_entry(f, init, xs, length, reverse, unroll, "scan")


def scan_impl_entry(
    f: Callable,
    init: Any,
    xs: Any,
    length: int | None,
    reverse: bool,
    unroll: int | bool,
    what: str,
    hint: str = "",
) -> tuple[Any, Any]:
    """``scan`` for ``scan`` and ``fori_loop`` (``what`` names the caller in errors)."""
    if not callable(f):
        raise TypeError(f"{what}: f must be a callable `f(carry, x) -> (carry, y)`")
    xs_flat, xs_tree = tree_util.tree_flatten(xs)
    xs_flat = [core.as_array(x) for x in xs_flat]
    length = _scan_length(what, xs, xs_flat, length)
    init_flat, init_tree = tree_util.tree_flatten(init)
    weak = [dtypes.is_python_scalar(x) for x in init_flat]
    init_flat = [core.as_array(x) for x in init_flat]
    x_avals = [ShapedArray(aval_of(x).shape[1:], aval_of(x).dtype) for x in xs_flat]
    in_tree = tree_util.tree_structure(
        (tree_util.tree_unflatten(init_tree, init_flat), tree_util.tree_unflatten(xs_tree, xs_flat))
    )
    store: dict[str, Any] = {}

    def body(carry: Any, x: Any) -> Any:
        out = f(carry, x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(
                f"{what}: the body function must return a pair (carry, y), got "
                f"{type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
            )
        store["carry_tree"] = tree_util.tree_structure(out[0])
        store["n_carry"] = len(tree_util.tree_leaves(out[0]))
        store["y_tree"] = tree_util.tree_structure(out[1])
        return tuple(out)

    traced, in_avals = common.trace_loop_body(
        what,
        body,
        in_tree,
        [aval_of(x) for x in init_flat] + x_avals,
        init_tree,
        weak + [False] * len(x_avals),
        out_carry=lambda t: (store["carry_tree"], t.out_avals[: store["n_carry"]]),
        hint=hint,
    )
    init_flat = common.convert_weak(init_flat, in_avals[: len(init_flat)])
    n_carry = len(init_flat)
    outs = scan_p.bind(
        *traced.consts,
        *init_flat,
        *xs_flat,
        jaxpr=traced.jaxpr,
        length=length,
        reverse=bool(reverse),
        linear=(False,) * (len(traced.consts) + n_carry + len(xs_flat)),
        unroll=int(unroll),
        num_consts=len(traced.consts),
        num_carry=n_carry,
    )
    carry, ys = split_list(outs, [n_carry])
    return (
        tree_util.tree_unflatten(init_tree, carry),
        tree_util.tree_unflatten(store["y_tree"], ys),
    )


def _scan_length(what: str, xs: Any, xs_flat: list[Any], length: Any) -> int:
    if length is not None:
        try:
            length = operator.index(length)
        except TypeError:
            raise TypeError(
                f"{what}: `length` must be a concrete Python int, got {type(length).__name__}"
            ) from None
        if length < 0:
            raise ValueError(f"{what}: `length` must be non-negative, got {length}")
    paths = [tree_util.keystr(p) for p, _ in tree_util.tree_flatten_with_path(xs)[0]]
    sizes = []
    for path, x in zip(paths, xs_flat, strict=True):
        aval = aval_of(x)
        if aval.ndim == 0:
            raise ValueError(
                f"{what}: every leaf of xs needs a leading axis to scan over, but xs{path} "
                f"is a scalar ({aval.str_short()})"
            )
        sizes.append((path, aval.shape[0], aval))
    distinct = {s for _, s, _ in sizes}
    if len(distinct) > 1:
        listing = ", ".join(f"xs{p}: {a.str_short()}" for p, _, a in sizes)
        raise ValueError(
            f"{what}: the leaves of xs must have the same leading axis size (the number of "
            f"steps), got {listing}"
        )
    if length is None:
        if not distinct:
            raise ValueError(
                f"{what}: with no xs to scan over (xs=None or no leaves), give `length`"
            )
        return distinct.pop()
    if distinct and distinct != {length}:
        raise ValueError(
            f"{what}: `length` is {length} but the leaves of xs have leading axis size "
            f"{distinct.pop()}; they must agree"
        )
    return length


# ----------------------------------------------------------------------------------------
# Rules


def _split_args(args, num_consts, num_carry):
    return split_list(args, [num_consts, num_carry])


@scan_p.def_abstract_eval
def _scan_abstract_eval(*avals, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    avals = [a.strip_weak() for a in avals]
    if num_consts + num_carry > len(avals) or len(linear) != len(avals):
        raise ValueError(
            f"scan: num_consts={num_consts}, num_carry={num_carry} and {len(linear)} linear "
            f"flags do not fit {len(avals)} operands"
        )
    if jaxpr.jaxpr.constvars:
        raise ValueError("scan: the body jaxpr must have no constants (pass them as operands)")
    consts, carry, xs = _split_args(avals, num_consts, num_carry)
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            raise ValueError(
                f"scan: every xs operand needs leading axis size {length} (the length), got "
                f"{x.str_short()}"
            )
    x_avals = [ShapedArray(x.shape[1:], x.dtype) for x in xs]
    body_in = [a.strip_weak() for a in jaxpr.in_avals]
    if body_in != consts + carry + x_avals:
        raise TypeError(
            f"scan: the body takes {types_text(body_in)} but is given consts, carry and xs "
            f"slices {types_text(consts + carry + x_avals)}"
        )
    body_out = [a.strip_weak() for a in jaxpr.out_avals]
    if body_out[:num_carry] != carry:
        raise TypeError(
            f"scan: the body returns the carry {types_text(body_out[:num_carry])} but the "
            f"carry is {types_text(carry)}"
        )
    ys = [ShapedArray((length, *a.shape), a.dtype) for a in body_out[num_carry:]]
    return carry + ys


@scan_p.def_impl
def _scan_impl(*args, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    consts, carry, xs = _split_args(args, num_consts, num_carry)
    ys = [np.empty((length, *a.shape), a.dtype) for a in jaxpr.out_avals[num_carry:]]
    body, body_consts = jaxpr.jaxpr, jaxpr.consts
    xs = [np.asarray(x) for x in xs]
    for step in range(length):
        i = length - 1 - step if reverse else step
        outs = eval_jaxpr(body, body_consts, *consts, *carry, *[x[i] for x in xs])
        carry = outs[:num_carry]
        for y, o in zip(ys, outs[num_carry:], strict=True):
            y[i] = o
    return common.fresh_outputs(carry, args) + ys


def _scan_jvp(primals, tangents, *, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    nc, ncar = num_consts, num_carry
    nx = len(primals) - nc - ncar
    ny = len(jaxpr.out_avals) - ncar
    nonzeros = [type(t) is not ad.Zero for t in tangents]
    const_nz, init_nz, xs_nz = _split_args(nonzeros, nc, ncar)
    carry_nz, (body, consts, out_nz) = common.fixed_point(
        lambda c: common.jvp_by_groups(
            jaxpr, [nc, ncar, nx], [ncar, ny], const_nz + c + xs_nz, c + [False] * ny
        ),
        init_nz,
        lambda result: result[2][:ncar],
    )
    consts_p, init, xs = _split_args(primals, nc, ncar)
    consts_t, init_t, xs_t = _split_args(tangents, nc, ncar)
    consts_t = [t for t in consts_t if type(t) is not ad.Zero]
    init_t = [ad.instantiate_zeros(t) for t, nz in zip(init_t, carry_nz, strict=True) if nz]
    xs_t = [t for t in xs_t if type(t) is not ad.Zero]
    lin_c, lin_car, lin_x = _split_args(list(linear), nc, ncar)
    new_linear = (
        (False,) * len(consts)
        + tuple(lin_c)
        + (True,) * len(consts_t)
        + tuple(lin_car)
        + (True,) * len(init_t)
        + tuple(lin_x)
        + (True,) * len(xs_t)
    )
    outs = scan_p.bind(
        *consts,
        *consts_p,
        *consts_t,
        *init,
        *init_t,
        *xs,
        *xs_t,
        jaxpr=body,
        length=length,
        reverse=reverse,
        linear=new_linear,
        unroll=unroll,
        num_consts=len(consts) + nc + len(consts_t),
        num_carry=ncar + len(init_t),
    )
    carry, carry_t, ys, ys_t = split_list(outs, [ncar, len(init_t), ny])
    out_avals = _scan_abstract_eval(
        *map(aval_of, primals),
        jaxpr=jaxpr,
        length=length,
        reverse=reverse,
        linear=linear,
        unroll=unroll,
        num_consts=nc,
        num_carry=ncar,
    )
    it = iter(carry_t + ys_t)
    return carry + ys, [
        next(it) if nz else ad.Zero(a) for nz, a in zip(out_nz, out_avals, strict=True)
    ]


ad.primitive_jvps[scan_p] = _scan_jvp


def _scan_partial_eval(trace: pe.PartialEvalTrace, tracers: list, **params: Any):
    jaxpr, length = params["jaxpr"], params["length"]
    nc, ncar = params["num_consts"], params["num_carry"]
    ny = len(jaxpr.out_avals) - ncar
    const_uk, init_uk, xs_uk = _split_args([not t.is_known for t in tracers], nc, ncar)
    carry_uk, (jk, ju, out_uk, num_res) = common.fixed_point(
        lambda c: pe.partial_eval_jaxpr(jaxpr, const_uk + c + xs_uk, instantiate=c + [False] * ny),
        init_uk,
        lambda result: result[2][:ncar],
    )
    ys_uk = out_uk[ncar:]
    consts_t, init_t, xs_t = _split_args(tracers, nc, ncar)
    jk, jk_consts = pe.hoist_consts(jk)
    known_consts = jk_consts + [t.const for t in consts_t if t.is_known]
    known_init = [t.const for t, uk in zip(init_t, carry_uk, strict=True) if not uk]
    known_xs = [t.const for t in xs_t if t.is_known]
    n_known_out = len(jk.out_avals) - num_res

    # Residuals: loop-invariant ones are computed once; slices of xs reuse xs; the others
    # are stacked by the known scan.
    jkj = jk.jaxpr
    varying = common.dependent_outputs(
        jkj, [False] * len(known_consts) + [True] * (len(known_init) + len(known_xs))
    )[n_known_out:]
    xs_vars = jkj.invars[len(known_consts) + len(known_init) :]
    kinds: list[Any] = []
    for v, var in zip(jkj.outvars[n_known_out:], varying, strict=True):
        if not var:
            kinds.append("invariant")
        elif type(v) is Var and any(v is x for x in xs_vars):
            kinds.append(next(k for k, x in enumerate(xs_vars) if v is x))
        else:
            kinds.append("stacked")
    invariant = [k == "invariant" for k in kinds]
    stacked = [k == "stacked" for k in kinds]
    inv_vals: list[Any] = []
    if any(invariant):
        inv = common.restrict_outputs(jk, [False] * n_known_out + invariant)
        n_in = len(inv.jaxpr.invars)
        inv = common.drop_inputs(inv, [k < len(known_consts) for k in range(n_in)])
        inv_vals = eval_jaxpr(inv.jaxpr, inv.consts, *known_consts)
    stacked_vals: list[Any] = []
    known_carry, known_ys = [], []
    if n_known_out or any(stacked):
        body = common.restrict_outputs(jk, [True] * n_known_out + stacked)
        outs = scan_p.bind(
            *known_consts,
            *known_init,
            *known_xs,
            jaxpr=body,
            length=length,
            reverse=params["reverse"],
            linear=(False,) * (len(known_consts) + len(known_init) + len(known_xs)),
            unroll=params["unroll"],
            num_consts=len(known_consts),
            num_carry=len(known_init),
        )
        known_carry, known_ys, stacked_vals = split_list(
            outs, [len(known_init), n_known_out - len(known_init)]
        )
    unknown_outs: list[Any] = []
    if any(out_uk):
        # The unknown scan: consts are its own, the invariant residuals and the unknown
        # consts; xs are the other residuals and the unknown xs.
        ju, ju_consts = pe.hoist_consts(ju)
        n_cu = sum(const_uk)
        n_caru = sum(carry_uk)
        idx = list(range(len(ju.jaxpr.invars)))
        own, res, cu, caru, xu = split_list(idx, [len(ju_consts), num_res, n_cu, n_caru])
        res_inv = [r for r, k in zip(res, kinds, strict=True) if k == "invariant"]
        res_x = [r for r, k in zip(res, kinds, strict=True) if k != "invariant"]
        ju = common.reorder_inputs(ju, own + res_inv + cu + caru + res_x + xu)
        stacked_it = iter(stacked_vals)
        res_x_vals = [
            next(stacked_it) if k == "stacked" else known_xs[k] for k in kinds if k != "invariant"
        ]
        inputs = [
            *ju_consts,
            *inv_vals,
            *[t for t in consts_t if not t.is_known],
            *[t for t, uk in zip(init_t, carry_uk, strict=True) if uk],
            *res_x_vals,
            *[t for t in xs_t if not t.is_known],
        ]
        out_avals = [a for a, uk in zip(jaxpr.out_avals[:ncar], carry_uk, strict=True) if uk] + [
            ShapedArray((length, *a.shape), a.dtype)
            for a, uk in zip(jaxpr.out_avals[ncar:], ys_uk, strict=True)
            if uk
        ]
        n_consts_u = len(ju_consts) + len(inv_vals) + n_cu
        unknown_outs = trace.record(
            scan_p,
            inputs,
            dict(
                params,
                jaxpr=ju,
                linear=(False,) * len(inputs),
                num_consts=n_consts_u,
                num_carry=n_caru,
            ),
            out_avals,
        )
    unknown_it = iter(unknown_outs)
    carry_it, ys_it = iter(known_carry), iter(known_ys)
    return [next(unknown_it) if uk else trace.pure(next(carry_it)) for uk in carry_uk] + [
        next(unknown_it) if uk else trace.pure(next(ys_it)) for uk in ys_uk
    ]


pe.custom_partial_eval_rules[scan_p] = _scan_partial_eval


def _scan_transpose(cts, *args, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    """The transposed loop runs the other way; its carry holds the cotangents of the
    linear consts (accumulated) and of the carry; its xs are the residual xs and the
    cotangents of the ys; its ys are the cotangents of the linear xs. Every carry is treated
    as linear (a carry of a linear scan is: a non-linear initial value is a known zero)."""
    nc, ncar = num_consts, num_carry
    consts, init, xs = _split_args(args, nc, ncar)
    ct_carry = [ad.instantiate_zeros(c) for c in cts[:ncar]]
    ct_ys = [ad.instantiate_zeros(c) for c in cts[ncar:]]
    c_lin = [ad.is_undefined_primal(c) for c in consts]
    x_lin = [ad.is_undefined_primal(x) for x in xs]
    res_c = [c for c, lin in zip(consts, c_lin, strict=True) if not lin]
    res_x = [x for x, lin in zip(xs, x_lin, strict=True) if not lin]
    c_avals, car_avals, x_avals = _split_args(jaxpr.in_avals, nc, ncar)
    y_avals = jaxpr.out_avals[ncar:]
    lin_c_avals = [a for a, lin in zip(c_avals, c_lin, strict=True) if lin]
    n_rc, n_lc, n_rx = len(res_c), len(lin_c_avals), len(res_x)

    def body(*a: Any) -> list[Any]:
        rc, acc, ct_c, rx, ct_y = split_list(a, [n_rc, n_lc, ncar, n_rx])
        rc_it, rx_it = iter(rc), iter(rx)
        full = (
            [
                ad.UndefPrimal(av) if lin else next(rc_it)
                for av, lin in zip(c_avals, c_lin, strict=True)
            ]
            + [ad.UndefPrimal(av) for av in car_avals]
            + [
                ad.UndefPrimal(av) if lin else next(rx_it)
                for av, lin in zip(x_avals, x_lin, strict=True)
            ]
        )
        cts_in = ad.backward_pass(jaxpr.jaxpr, jaxpr.consts, full, list(ct_c) + list(ct_y))
        ct_consts, ct_carry_in, ct_xs = _split_args(cts_in, nc, ncar)
        new_acc = [
            ad.add_tangents(s, c)
            for s, c in zip(
                acc, [c for c, lin in zip(ct_consts, c_lin, strict=True) if lin], strict=True
            )
        ]
        return (
            [ad.instantiate_zeros(c) for c in new_acc]
            + [ad.instantiate_zeros(c) for c in ct_carry_in]
            + [ad.instantiate_zeros(c) for c, lin in zip(ct_xs, x_lin, strict=True) if lin]
        )

    body_avals = (
        [a for a, lin in zip(c_avals, c_lin, strict=True) if not lin]
        + lin_c_avals
        + list(car_avals)
        + [a for a, lin in zip(x_avals, x_lin, strict=True) if not lin]
        + list(y_avals)
    )
    body_t, body_consts = pe.trace_to_hoisted_jaxpr(body, body_avals)
    acc_init = [ad.zeros_like_aval(a) for a in lin_c_avals]
    n_const_t = len(body_consts) + n_rc
    outs = scan_p.bind(
        *body_consts,
        *res_c,
        *acc_init,
        *ct_carry,
        *res_x,
        *ct_ys,
        jaxpr=body_t,
        length=length,
        reverse=not reverse,
        linear=(False,) * n_const_t
        + (True,) * (n_lc + ncar)
        + (False,) * n_rx
        + (True,) * len(ct_ys),
        unroll=unroll,
        num_consts=n_const_t,
        num_carry=n_lc + ncar,
    )
    ct_consts, ct_init, ct_xs = split_list(outs, [n_lc, ncar])
    c_it, x_it = iter(ct_consts), iter(ct_xs)
    return (
        [next(c_it) if lin else None for lin in c_lin]
        + [ct if ad.is_undefined_primal(x) else None for x, ct in zip(init, ct_init, strict=True)]
        + [next(x_it) if lin else None for lin in x_lin]
    )


ad.primitive_transposes[scan_p] = _scan_transpose


def _scan_batch(args, dims, *, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    nc, ncar = num_consts, num_carry
    ny = len(jaxpr.out_avals) - ncar
    size = batching.axis_size_of(args, dims)
    consts, init, xs = _split_args(args, nc, ncar)
    c_dims, init_dims, x_dims = _split_args(dims, nc, ncar)
    c_b = [d is not None for d in c_dims]
    x_b = [d is not None for d in x_dims]
    carry_b, (body, body_consts, out_b) = common.fixed_point(
        lambda c: common.batch_hoisted(jaxpr, c_b + c + x_b, size, c + [False] * ny),
        [d is not None for d in init_dims],
        lambda result: result[2][:ncar],
    )
    consts = [
        x if d is None else batching.moveaxis(x, d, 0) for x, d in zip(consts, c_dims, strict=True)
    ]
    init = [
        batching.move_batch_axis(x, d, 0, size) if b else x
        for x, d, b in zip(init, init_dims, carry_b, strict=True)
    ]
    # The scan axis stays first; the batch axis of xs (and so of the ys) is axis 1.
    xs = [x if d is None else batching.moveaxis(x, d, 1) for x, d in zip(xs, x_dims, strict=True)]
    outs = scan_p.bind(
        *body_consts,
        *consts,
        *init,
        *xs,
        jaxpr=body,
        length=length,
        reverse=reverse,
        linear=(False,) * len(body_consts) + tuple(linear),
        unroll=unroll,
        num_consts=len(body_consts) + nc,
        num_carry=ncar,
    )
    out_dims = [0 if b else None for b in carry_b] + [1 if b else None for b in out_b[ncar:]]
    return outs, out_dims


batching.primitive_batchers[scan_p] = _scan_batch
