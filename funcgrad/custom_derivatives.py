"""``custom_jvp`` and ``custom_vjp``: user-defined derivative rules, with JAX's semantics.

Both are decorators. ``f = custom_jvp(fun)`` then ``f.defjvp(rule)`` (``rule(primals,
tangents) -> (primal_out, tangent_out)``) or ``f.defjvps(*per_input_rules)``;
``g = custom_vjp(fun)`` then ``g.defvjp(fwd, bwd)`` (``fwd(*args) -> (out, res)``,
``bwd(res, cotangent_out) -> tuple of cotangents, one per argument``, ``None`` for zero).
``nondiff_argnums`` marks arguments that are not differentiated; they are passed first to
the jvp rule / to ``bwd``, as in JAX.

How a call is processed depends on the innermost transformation of its arguments, as in
JAX (``process_custom_jvp_call``):

- no transformation (eager, or only concrete values): ``fun`` is called directly;
- forward mode (the JVP interpreter, also inside ``grad``, which linearizes with it): the
  custom rule is called on the primal and tangent values (concrete outside ``jit`` and
  ``vmap``, so Python control flow in the rule works). For ``custom_vjp``, ``fwd`` runs and
  the tangent side is one ``custom_lin`` equation whose transpose calls ``bwd``; pure
  forward mode through a ``custom_vjp`` function is an error, as in JAX;
- anything else (``jit``/``make_jaxpr`` staging, ``vmap``): ``fun`` is traced to a jaxpr and
  the primitive ``custom_jvp_call`` / ``custom_vjp_call`` is bound with it (``call_jaxpr``)
  and with the rule functions as parameters. Its batching rule batches the jaxpr and the
  rules; its jvp rule calls the rule functions, so ``grad(vmap(f))`` and ``grad(jit(f))``
  still use the custom derivative. Values ``fun`` closes over become leading operands
  (``num_consts``); differentiating with respect to such a closed-over value is an error.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core, lax, tree_util
from funcgrad.api_util import fun_name
from funcgrad.core import Primitive, get_aval
from funcgrad.interpreters import ad, batching, tape
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, eval_jaxpr
from funcgrad.util import HashableFunction

__all__ = ["custom_jvp", "custom_vjp"]


# ----------------------------------------------------------------------------------------
# Shared helpers


def _resolve_args(fun: Callable, args: tuple, kwargs: dict, what: str) -> tuple:
    """Positional arguments only (keyword arguments are bound by ``fun``'s signature)."""
    if not kwargs:
        return args
    try:
        bound = inspect.signature(fun).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{what} {fun_name(fun)}: {e}") from None
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(
            f"{what} {fun_name(fun)}: keyword-only arguments ({', '.join(bound.kwargs)}) are "
            "not supported; make them positional or close over them"
        )
    return tuple(bound.args)


def _split_nondiff(args: tuple, nondiff_argnums: tuple[int, ...]) -> tuple[list, list]:
    nondiff = [args[i] for i in nondiff_argnums]
    dyn = [a for i, a in enumerate(args) if i not in nondiff_argnums]
    return nondiff, dyn


def _merge_nondiff(nondiff: list, dyn: Sequence[Any], nondiff_argnums: tuple[int, ...]) -> list:
    n = len(nondiff) + len(dyn)
    it_nd, it_d = iter(nondiff), iter(dyn)
    positions = dict(zip(nondiff_argnums, range(len(nondiff)), strict=True))
    return [next(it_nd) if i in positions else next(it_d) for i in range(n)]


def _vmap_all0(fun: Callable, in_dims: Sequence[int | None], size: int, args: Sequence[Any]):
    """vmap ``fun`` (flat lists) with every output batched along axis 0."""
    n_out: list[int] = []

    def counted(*xs: Any) -> list[Any]:
        outs = list(fun(*xs))
        n_out.append(len(outs))
        return outs

    return batching.vmap_flat(counted, list(in_dims), lambda: [0] * n_out[-1], size, list(args))


def _batched(closed: ClosedJaxpr, dims: Sequence[int | None], size: int) -> ClosedJaxpr:
    """``closed`` batched along axis 0 of the inputs where ``dims`` is 0, every output too."""
    return batching.batch_jaxpr(closed, [d is not None for d in dims], size, True)[0]


def _inline_partial_eval(trace: pe.PartialEvalTrace, tracers: list, *, call_jaxpr, **_: Any):
    """On the linear (unknown) side the custom rule no longer matters: inline the call."""
    return eval_jaxpr(call_jaxpr.jaxpr, call_jaxpr.consts, *tracers)


def _closed_over_error(name: str) -> TypeError:
    return TypeError(
        f"The custom derivative of {name} was asked for the derivative with respect to a "
        "value the function closes over (a traced value of an outer transformation). A "
        "custom rule only covers the function's explicit arguments: pass that value as an "
        "argument instead."
    )


# ========================================================================================
# custom_jvp

custom_jvp_call_p = Primitive("custom_jvp_call", multiple_results=True)


@custom_jvp_call_p.def_impl
def _custom_jvp_call_impl(*args, call_jaxpr, jvp, num_consts, symbolic_zeros, name):
    return eval_jaxpr(call_jaxpr.jaxpr, call_jaxpr.consts, *args)


@custom_jvp_call_p.def_abstract_eval
def _custom_jvp_call_abstract_eval(*avals, call_jaxpr, jvp, num_consts, symbolic_zeros, name):
    return call_jaxpr.out_avals


def _custom_jvp_rule_call(jvp: Callable, primals: list, tangents: list) -> tuple[list, list]:
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    return jvp(primals, tangents)


def _custom_jvp_call_jvp(primals, tangents, *, call_jaxpr, jvp, num_consts, symbolic_zeros, name):
    if any(type(t) is not ad.Zero for t in tangents[:num_consts]):
        raise _closed_over_error(name)
    return _custom_jvp_rule_call(jvp, list(primals[num_consts:]), list(tangents[num_consts:]))


def _custom_jvp_call_batch(args, dims, *, call_jaxpr, jvp, num_consts, symbolic_zeros, name):
    size = batching.axis_size_of(args, dims)
    args, dims = batching.batch_axes_to_front(args, dims)
    n_out = len(call_jaxpr.out_avals)
    rule_dims = dims[num_consts:]

    def batched_jvp(primals: list, tangents: list) -> tuple[list, list]:
        outs = _vmap_all0(
            lambda *xs: _flat_pair(jvp(list(xs[: len(primals)]), list(xs[len(primals) :]))),
            rule_dims + rule_dims,
            size,
            list(primals) + list(tangents),
        )
        return outs[:n_out], outs[n_out:]

    outs = custom_jvp_call_p.bind(
        *args,
        call_jaxpr=_batched(call_jaxpr, dims, size),
        jvp=HashableFunction(batched_jvp),
        num_consts=num_consts,
        symbolic_zeros=symbolic_zeros,
        name=name,
    )
    return outs, [0] * n_out


def _flat_pair(pair: tuple[list, list]) -> list:
    return list(pair[0]) + list(pair[1])


ad.primitive_jvps[custom_jvp_call_p] = _custom_jvp_call_jvp
batching.primitive_batchers[custom_jvp_call_p] = _custom_jvp_call_batch
pe.custom_partial_eval_rules[custom_jvp_call_p] = _inline_partial_eval


def _bind_custom_jvp(fun: Callable, jvp: Callable, args: list, name: str) -> list:
    """Dispatch a custom_jvp call to the innermost transformation of ``args``."""
    trace = core.find_top_trace(args)
    if type(trace) is core.EvalTrace:
        return list(fun(*args))
    if type(trace) is tape.TapeTrace:
        # Eager reverse mode: linearize the call on its values (the JVPTrace branch below).
        return trace.linearize_call(
            lambda *xs: _bind_custom_jvp(fun, jvp, list(xs), name), args, True
        )
    if isinstance(trace, ad.JVPTrace):
        tracers = [core.full_raise(trace, a) for a in args]
        primals = [t.primal for t in tracers]
        tangents = [t.tangent for t in tracers]
        if all(type(t) is ad.Zero for t in tangents):
            return _bind_custom_jvp(fun, jvp, primals, name)
        outs, t_outs = _custom_jvp_rule_call(jvp, primals, tangents)
        return [
            core.full_lower(ad.JVPTracer(trace, o, t)) for o, t in zip(outs, t_outs, strict=True)
        ]
    call_jaxpr, consts = pe.trace_to_hoisted_jaxpr(fun, [get_aval(a).strip() for a in args])
    return custom_jvp_call_p.bind(
        *consts,
        *args,
        call_jaxpr=call_jaxpr,
        jvp=HashableFunction(jvp),
        num_consts=len(consts),
        symbolic_zeros=False,
        name=name,
    )


class custom_jvp:
    """A function with a custom forward-mode derivative (reverse mode follows from it).

    >>> @custom_jvp
    ... def f(x):
    ...     return fnp.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return f(x), fnp.cos(x) * t
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(sorted(nondiff_argnums))
        self.jvp: Callable | None = None
        self.symbolic_zeros = False

    def defjvp(self, jvp: Callable, symbolic_zeros: bool = False) -> Callable:
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``."""
        if symbolic_zeros:
            raise NotImplementedError("custom_jvp: symbolic_zeros=True is not supported")
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """One rule per argument, ``rule(g, ans, *primals) -> tangent contribution`` (None:
        the argument does not affect the output); contributions are summed."""
        if self.nondiff_argnums:
            raise TypeError("custom_jvp.defjvps does not support nondiff_argnums; use defjvp")

        def jvp(primals: tuple, tangents: tuple) -> tuple[Any, Any]:
            ans = self(*primals)
            contributions = [
                rule(t, ans, *primals)
                for rule, t in zip(jvps, tangents, strict=False)
                if rule is not None
            ]
            if not contributions:
                return ans, tree_util.tree_map(_zeros_like, ans)
            total = contributions[0]
            for c in contributions[1:]:
                total = tree_util.tree_map(lambda a, b: a + b, total, c)
            return ans, total

        self.defjvp(jvp)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = fun_name(self.fun)
        if self.jvp is None:
            raise AttributeError(
                f"No JVP defined for custom_jvp function {name}; define one with `@{name}.defjvp`"
            )
        args = _resolve_args(self.fun, args, kwargs, "custom_jvp function")
        for i in self.nondiff_argnums:
            if i >= len(args):
                raise TypeError(
                    f"custom_jvp function {name}: nondiff_argnums={self.nondiff_argnums} "
                    f"but it was called with {len(args)} arguments"
                )
        if core.is_eager():
            return self.fun(*args)
        nondiff, dyn = _split_nondiff(args, self.nondiff_argnums)
        flat, in_tree = tree_util.tree_flatten(tuple(dyn))
        flat = [core.as_array(x) for x in flat]
        out_tree: list[Any] = []
        nums = self.nondiff_argnums
        user_fun, user_jvp = self.fun, self.jvp
        jvp_name = fun_name(user_jvp)

        def flat_fun(*xs: Any) -> list[Any]:
            full = _merge_nondiff(nondiff, tree_util.tree_unflatten(in_tree, xs), nums)
            leaves, tree = tree_util.tree_flatten(user_fun(*full))
            out_tree.append(tree)
            return leaves

        def flat_jvp(primals: list, tangents: list) -> tuple[list, list]:
            p = tree_util.tree_unflatten(in_tree, primals)
            t = tree_util.tree_unflatten(in_tree, tangents)
            result = user_jvp(*nondiff, p, t)
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError(
                    f"The custom_jvp rule {jvp_name} of {name} must return a pair "
                    f"(primal_out, tangent_out), got {type(result).__name__}"
                )
            p_out, t_out = result
            p_leaves, p_tree = tree_util.tree_flatten(p_out)
            t_leaves, t_tree = tree_util.tree_flatten(t_out)
            if p_tree != t_tree:
                raise TypeError(
                    f"The custom_jvp rule {jvp_name} of {name} must return primal and tangent "
                    f"outputs of the same structure, got {p_tree} and {t_tree}"
                )
            t_leaves = [
                _check_leaf(jvp_name, name, p, t, "tangent")
                for p, t in zip(p_leaves, t_leaves, strict=False)
            ]
            out_tree.append(p_tree)
            return [core.as_array(x) for x in p_leaves], t_leaves

        outs = _bind_custom_jvp(flat_fun, flat_jvp, flat, name)
        return tree_util.tree_unflatten(out_tree[-1], outs)


def _zeros_like(x: Any) -> Any:
    aval = get_aval(x)
    return ad.zeros_like_aval(aval.strip())


def _check_leaf(rule_name: str, name: str, primal: Any, t: Any, what: str) -> Any:
    if t is None or type(t) is ad.Zero:
        return _zeros_like(primal)
    p_aval, t_aval = get_aval(primal), get_aval(t)
    if p_aval.shape != t_aval.shape:
        raise TypeError(
            f"The custom rule {rule_name} of {name} returned a {what} of shape "
            f"{t_aval.str_short()} for an output of shape {p_aval.str_short()}; they must match"
        )
    if t_aval.dtype != p_aval.dtype:
        if _kind(t_aval.dtype) != _kind(p_aval.dtype):
            raise TypeError(
                f"The custom rule {rule_name} of {name} returned a {what} of dtype "
                f"{t_aval.dtype.name} for an output of dtype {p_aval.dtype.name}"
            )
        t = lax.convert_element_type(t, p_aval.dtype)
    return t


def _kind(dtype: np.dtype) -> str:
    return "float" if dtype.kind in "fc" else dtype.kind


# ========================================================================================
# custom_vjp

custom_vjp_call_p = Primitive("custom_vjp_call", multiple_results=True)


@custom_vjp_call_p.def_impl
def _custom_vjp_call_impl(*args, call_jaxpr, fwd, bwd, num_consts, symbolic_zeros, name):
    return eval_jaxpr(call_jaxpr.jaxpr, call_jaxpr.consts, *args)


@custom_vjp_call_p.def_abstract_eval
def _custom_vjp_call_abstract_eval(*avals, call_jaxpr, fwd, bwd, num_consts, symbolic_zeros, name):
    return call_jaxpr.out_avals


# -- custom_lin: the tangent side of a custom_vjp call; its transpose runs ``bwd``.
custom_lin_p = Primitive("custom_lin", multiple_results=True)


def _forward_mode_error(name: str) -> TypeError:
    return TypeError(
        f"can't apply forward-mode autodiff (jvp, jacfwd) to the custom_vjp function {name}: "
        "it only defines a reverse-mode rule. Use grad/vjp/jacrev, or define the derivative "
        "with custom_jvp (which gives both modes). (For forward-over-reverse, e.g. hessian, "
        "compute the primal output in fwd without calling the custom_vjp function itself.)"
    )


@custom_lin_p.def_impl
def _custom_lin_impl(*args, num_res, bwd, out_avals, name):
    # Evaluating the tangent side with concrete tangents: that is forward mode.
    raise _forward_mode_error(name)


def _custom_lin_jvp(primals, tangents, *, num_res, bwd, out_avals, name):
    raise _forward_mode_error(name)


def _custom_lin_batch(args, dims, *, num_res, bwd, out_avals, name):
    # Only a batched forward-mode tangent (jacfwd) reaches vmap before linearize records it.
    raise _forward_mode_error(name)


@custom_lin_p.def_abstract_eval
def _custom_lin_abstract_eval(*avals, num_res, bwd, out_avals, name):
    return list(out_avals)


def _custom_lin_transpose(cts, *args, num_res, bwd, out_avals, name):
    res, lin_args = args[:num_res], args[num_res:]
    cts_in = bwd(list(res), list(cts))
    return [None] * num_res + [
        c if ad.is_undefined_primal(a) else None for c, a in zip(cts_in, lin_args, strict=True)
    ]


ad.primitive_transposes[custom_lin_p] = _custom_lin_transpose
ad.primitive_jvps[custom_lin_p] = _custom_lin_jvp
batching.primitive_batchers[custom_lin_p] = _custom_lin_batch


def _custom_vjp_jvp(fwd: Callable, bwd: Callable, primals: list, tangents: list, name: str):
    outs, res = fwd(*primals)
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    t_outs = custom_lin_p.bind(
        *res,
        *tangents,
        num_res=len(res),
        bwd=HashableFunction(bwd),
        out_avals=tuple(get_aval(o).strip() for o in outs),
        name=name,
    )
    return outs, t_outs


def _custom_vjp_call_jvp(
    primals, tangents, *, call_jaxpr, fwd, bwd, num_consts, symbolic_zeros, name
):
    if any(type(t) is not ad.Zero for t in tangents[:num_consts]):
        raise _closed_over_error(name)
    return _custom_vjp_jvp(fwd, bwd, list(primals[num_consts:]), list(tangents[num_consts:]), name)


def _custom_vjp_call_batch(args, dims, *, call_jaxpr, fwd, bwd, num_consts, symbolic_zeros, name):
    size = batching.axis_size_of(args, dims)
    args, dims = batching.batch_axes_to_front(args, dims)
    n_out = len(call_jaxpr.out_avals)
    rule_dims = dims[num_consts:]

    def batched_fwd(*primals: Any) -> tuple[list, list]:
        outs = _vmap_all0(lambda *xs: _flat_pair(fwd(*xs)), rule_dims, size, primals)
        return outs[:n_out], outs[n_out:]

    def batched_bwd(res: list, cts: list) -> list:
        cts_in = _vmap_all0(
            lambda *xs: [
                ad.instantiate_zeros(c) for c in bwd(list(xs[: len(res)]), list(xs[len(res) :]))
            ],
            [0] * (len(res) + len(cts)),
            size,
            list(res) + list(cts),
        )
        # An unbatched argument was shared by the whole batch: its cotangent is the sum.
        return [
            c if d is not None else lax.reduce_sum(c, (0,))
            for c, d in zip(cts_in, rule_dims, strict=False)
        ]

    outs = custom_vjp_call_p.bind(
        *args,
        call_jaxpr=_batched(call_jaxpr, dims, size),
        fwd=HashableFunction(batched_fwd),
        bwd=HashableFunction(batched_bwd),
        num_consts=num_consts,
        symbolic_zeros=symbolic_zeros,
        name=name,
    )
    return outs, [0] * n_out


ad.primitive_jvps[custom_vjp_call_p] = _custom_vjp_call_jvp
batching.primitive_batchers[custom_vjp_call_p] = _custom_vjp_call_batch
pe.custom_partial_eval_rules[custom_vjp_call_p] = _inline_partial_eval


def _bind_custom_vjp(fun: Callable, fwd: Callable, bwd: Callable, args: list, name: str):
    """Dispatch a custom_vjp call to the innermost transformation of ``args``."""
    trace = core.find_top_trace(args)
    if type(trace) is core.EvalTrace:
        return list(fun(*args))
    if type(trace) is tape.TapeTrace:
        # Eager reverse mode: linearize the call on its values (the JVPTrace branch below).
        return trace.linearize_call(
            lambda *xs: _bind_custom_vjp(fun, fwd, bwd, list(xs), name), args, True
        )
    if isinstance(trace, ad.JVPTrace):
        tracers = [core.full_raise(trace, a) for a in args]
        primals = [t.primal for t in tracers]
        tangents = [t.tangent for t in tracers]
        if all(type(t) is ad.Zero for t in tangents):
            return _bind_custom_vjp(fun, fwd, bwd, primals, name)
        outs, t_outs = _custom_vjp_jvp(fwd, bwd, primals, tangents, name)
        return [
            core.full_lower(ad.JVPTracer(trace, o, t)) for o, t in zip(outs, t_outs, strict=False)
        ]
    call_jaxpr, consts = pe.trace_to_hoisted_jaxpr(fun, [get_aval(a).strip() for a in args])
    return custom_vjp_call_p.bind(
        *consts,
        *args,
        call_jaxpr=call_jaxpr,
        fwd=HashableFunction(fwd),
        bwd=HashableFunction(bwd),
        num_consts=len(consts),
        symbolic_zeros=False,
        name=name,
    )


class custom_vjp:
    """A function with a custom reverse-mode derivative.

    >>> @custom_vjp
    ... def f(x):
    ...     return fnp.sin(x)
    >>> def f_fwd(x):
    ...     return f(x), fnp.cos(x)          # output, residuals
    >>> def f_bwd(cos_x, g):
    ...     return (cos_x * g,)              # one cotangent per argument
    >>> f.defvjp(f_fwd, f_bwd)
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(sorted(nondiff_argnums))
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable, symbolic_zeros: bool = False) -> None:
        """``fwd(*args) -> (out, residuals)``; ``bwd(*nondiff_args, residuals, g)`` returns
        a tuple with one cotangent (or None) per differentiated argument."""
        if symbolic_zeros:
            raise NotImplementedError("custom_vjp: symbolic_zeros=True is not supported")
        self.fwd, self.bwd = fwd, bwd

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = fun_name(self.fun)
        if self.fwd is None or self.bwd is None:
            raise AttributeError(
                f"No VJP defined for custom_vjp function {name}; define one with "
                f"`{name}.defvjp(fwd, bwd)`"
            )
        args = _resolve_args(self.fun, args, kwargs, "custom_vjp function")
        if core.is_eager():
            return self.fun(*args)
        nums = self.nondiff_argnums
        nondiff, dyn = _split_nondiff(args, nums)
        flat, in_tree = tree_util.tree_flatten(tuple(dyn))
        flat = [core.as_array(x) for x in flat]
        user_fun, user_fwd, user_bwd = self.fun, self.fwd, self.bwd
        fwd_name, bwd_name = fun_name(user_fwd), fun_name(user_bwd)
        out_tree: list[Any] = []
        res_tree: list[Any] = []

        def flat_fun(*xs: Any) -> list[Any]:
            full = _merge_nondiff(nondiff, tree_util.tree_unflatten(in_tree, xs), nums)
            leaves, tree = tree_util.tree_flatten(user_fun(*full))
            out_tree.append(tree)
            return leaves

        def flat_fwd(*xs: Any) -> tuple[list, list]:
            full = _merge_nondiff(nondiff, tree_util.tree_unflatten(in_tree, xs), nums)
            result = user_fwd(*full)
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError(
                    f"The custom_vjp fwd function {fwd_name} of {name} must return a pair "
                    f"(output, residuals), got {type(result).__name__}"
                )
            out, res = result
            out_leaves, tree = tree_util.tree_flatten(out)
            out_tree.append(tree)
            res_leaves, rtree = tree_util.tree_flatten(res)
            res_tree.append(rtree)
            return [core.as_array(x) for x in out_leaves], [core.as_array(x) for x in res_leaves]

        def flat_bwd(res: list, cts: list) -> list:
            res_val = tree_util.tree_unflatten(res_tree[-1], res)
            ct_val = tree_util.tree_unflatten(out_tree[-1], cts)
            result = user_bwd(*nondiff, res_val, ct_val)
            return _check_bwd_output(result, in_tree, flat, name, bwd_name)

        outs = _bind_custom_vjp(flat_fun, flat_fwd, flat_bwd, flat, name)
        return tree_util.tree_unflatten(out_tree[-1], outs)


def _check_bwd_output(result: Any, in_tree: Any, primals: list, name: str, bwd_name: str):
    """The flat cotangents from a bwd result, or an error naming both structures."""
    expected = tree_util.tree_structure(tuple(tree_util.tree_unflatten(in_tree, primals)))
    if not isinstance(result, tuple):
        got = tree_util.tree_structure(result)
        raise TypeError(
            f"The custom_vjp bwd function {bwd_name} of {name} must return a tuple with one "
            f"cotangent per differentiated argument (structure {expected}), but it returned a "
            f"{type(result).__name__} with structure {got}. Wrap a single cotangent in a "
            "tuple: `return (g,)`."
        )
    args = tree_util.tree_unflatten(in_tree, primals)
    n_args = len(args)
    if len(result) != n_args:
        raise TypeError(
            f"The custom_vjp bwd function {bwd_name} of {name} returned {len(result)} "
            f"cotangents (structure {tree_util.tree_structure(result)}) but {name} has "
            f"{n_args} differentiated arguments (structure {expected})"
        )
    # None stands for a zero cotangent of a whole argument (or any subtree).
    leaves: list[Any] = []
    for i, (r, a) in enumerate(zip(result, args, strict=False)):
        a_leaves, a_tree = tree_util.tree_flatten(a)
        if r is None:
            leaves.extend(ad.Zero(get_aval(x).strip()) for x in a_leaves)
            continue
        r_leaves, r_tree = tree_util.tree_flatten(r)
        if r_tree != a_tree:
            raise TypeError(
                f"The custom_vjp bwd function {bwd_name} of {name} returned a cotangent of "
                f"structure {r_tree} for argument {i}, whose structure is {a_tree}; the bwd "
                f"output (structure {tree_util.tree_structure(result)}) must match the "
                f"differentiated arguments (structure {expected})"
            )
        for x, c in zip(a_leaves, r_leaves, strict=False):
            x_aval = get_aval(x).strip()
            if c is None:
                leaves.append(ad.Zero(x_aval))
                continue
            c_aval = get_aval(c)
            if c_aval.shape != x_aval.shape:
                raise TypeError(
                    f"The custom_vjp bwd function {bwd_name} of {name} returned a cotangent "
                    f"of shape {c_aval.str_short()} for argument {i}, a primal of shape "
                    f"{x_aval.str_short()}; each cotangent must have its primal's shape "
                    f"(bwd output structure {tree_util.tree_structure(result)}, arguments "
                    f"{expected})"
                )
            if c_aval.dtype != x_aval.dtype:
                c = lax.convert_element_type(core.as_array(c), x_aval.dtype)
            leaves.append(core.as_array(c))
    return leaves
