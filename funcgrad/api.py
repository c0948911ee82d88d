"""The public transformations: each flattens pytrees, calls a ``*_flat`` core, unflattens."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import dtypes, lax, tree_util
from funcgrad.api_util import arg_names, flatten_fun, fun_name
from funcgrad.core import ShapedArray, Tracer, as_array, get_aval, shaped_aval
from funcgrad.hints import list_arguments, vmap_axis_hint
from funcgrad.interpreters import ad, tape
from funcgrad.interpreters.batching import vmap_flat
from funcgrad.interpreters.jit import jit as jit
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from funcgrad.ir import ClosedJaxpr


def _split_static(args: tuple, static_argnums: Sequence[int]) -> tuple[tuple, Callable]:
    """Separate static arguments (closed over) from the traced ones."""
    static = {i % len(args) if args else i for i in static_argnums}
    dyn = tuple(a for i, a in enumerate(args) if i not in static)

    def rebuild(dyn_args: Sequence[Any]) -> list[Any]:
        it = iter(dyn_args)
        return [args[i] if i in static else next(it) for i in range(len(args))]

    return dyn, rebuild


def make_jaxpr(
    fun: Callable, static_argnums: int | Sequence[int] = ()
) -> Callable[..., ClosedJaxpr]:
    """Trace ``fun`` and return its jaxpr; ``str()`` of the result prints JAX's text form.

    >>> make_jaxpr(lambda x: fnp.sin(x) * 2.0)(np.ones(3, np.float32))
    { lambda ; a:f32[3]. let b:f32[3] = sin a; c:f32[3] = mul b 2.0:f32[] in (c,) }
    """
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)

    @functools.wraps(fun)
    def make(*args: Any, **kwargs: Any) -> ClosedJaxpr:
        dyn, rebuild = _split_static(args, static_argnums)
        flat_args, in_tree = tree_util.tree_flatten((dyn, kwargs))

        def with_statics(*dyn_args: Any, **kw: Any) -> Any:
            return fun(*rebuild(dyn_args), **kw)

        flat_fun, _ = flatten_fun(with_statics, in_tree)
        names = arg_names(fun, dyn, kwargs) if not static_argnums else None
        return trace_to_jaxpr(flat_fun, [shaped_aval(x) for x in flat_args], names)

    return make


# ----------------------------------------------------------------------------------------
# vmap


def _is_axis_leaf(x: Any) -> bool:
    return x is None


def _broadcast_axes(axes: Any, tree: Any, what: str) -> list[int | None]:
    """One axis per leaf of ``tree``, from the prefix tree ``axes`` (int/None leaves)."""
    axes_leaves, axes_tree = tree_util.tree_flatten(axes, is_leaf=_is_axis_leaf)
    for a in axes_leaves:
        if a is not None and not isinstance(a, int):
            raise ValueError(
                f"vmap {what} must be ints, None, or (nested) tuples/lists/dicts of them "
                f"matching the arguments; got {a!r}"
            )
    try:
        subtrees = axes_tree.flatten_up_to(tree)
    except ValueError as e:
        msg = str(e).replace("flatten_up_to: ", "")
        raise ValueError(
            f"vmap {what} does not match the structure of the "
            f"{'arguments' if what == 'in_axes' else 'outputs'}: {msg}"
        ) from None
    out: list[int | None] = []
    for a, sub in zip(axes_leaves, subtrees, strict=False):
        out.extend([a] * len(tree_util.tree_leaves(sub)))
    return out


def vmap(
    fun: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
    axis_name: Any = None,
) -> Callable:
    """Vectorize ``fun`` over an axis of its inputs: ``vmap(f)(xs)[i] == f(xs[i])``.

    ``in_axes``/``out_axes`` are an int (negative counts from the end), None (not mapped /
    not batched), or pytree prefixes of the arguments/outputs. ``axis_size`` is needed only
    when no input is mapped. Keyword arguments are mapped along axis 0. ``axis_name`` (any
    hashable, e.g. ``"batch"``) names the mapped axis for collectives inside ``fun``
    (``lax.psum(x, "batch")``, ``lax.axis_index("batch")``; see ``funcgrad.lax.parallel``).
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if axis_name is not None:
        try:
            hash(axis_name)
        except TypeError:
            raise TypeError(
                f"vmap axis_name must be hashable (a string, say), got {axis_name!r}"
            ) from None
    if not isinstance(in_axes, (int, tuple, dict)) and in_axes is not None:
        raise ValueError(
            f"vmap in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument; got {type(in_axes).__name__}"
        )

    @functools.wraps(fun)
    def vmapped(*args: Any, **kwargs: Any) -> Any:
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(
                f"vmap in_axes is a tuple of length {len(in_axes)} but {fun_name(fun)} was "
                f"called with {len(args)} positional arguments; give one entry per argument"
            )
        flat_args, in_tree = tree_util.tree_flatten((args, kwargs))
        axes_flat = _broadcast_axes(in_axes, args, "in_axes") + [0] * len(
            tree_util.tree_leaves(kwargs)
        )
        paths = arg_names(fun, args, kwargs)
        sizes = {}
        norm_axes: list[int | None] = []
        for x, ax, path in zip(flat_args, axes_flat, paths, strict=False):
            if ax is None:
                norm_axes.append(None)
                continue
            shape = get_aval(x).shape
            if not -len(shape) <= ax < len(shape):
                raise ValueError(
                    f"vmap in_axes={ax} is out of range for argument {path} of shape "
                    f"{shape} (rank {len(shape)}); use an axis in [-{len(shape)}, "
                    f"{len(shape)}) or None to leave it unmapped"
                    + vmap_axis_hint(fun, args, shape, path)
                )
            ax %= len(shape)
            norm_axes.append(ax)
            sizes[path] = shape[ax]
        if axis_size is not None:
            sizes_all = set(sizes.values()) | {axis_size}
        else:
            sizes_all = set(sizes.values())
        if len(sizes_all) > 1:
            listing = ", ".join(f"{p} has size {s}" for p, s in sizes.items())
            extra = f" (axis_size={axis_size})" if axis_size is not None else ""
            raise ValueError(
                f"vmap got inconsistent sizes for the mapped axis{extra}: {listing}; all "
                "mapped arguments must have the same size along their in_axes"
            )
        if not sizes_all:
            raise ValueError(
                "vmap needs at least one mapped argument (in_axes not None) or an explicit "
                "axis_size"
            )
        size = sizes_all.pop()
        flat_fun, out_tree = flatten_fun(fun, in_tree)

        def out_axes_flat() -> list[int | None]:
            dummy = tree_util.tree_unflatten(out_tree.val, [0] * out_tree.val.num_leaves)
            return _broadcast_axes(out_axes, dummy, "out_axes")

        outs = vmap_flat(flat_fun, norm_axes, out_axes_flat, size, flat_args, axis_name)
        return tree_util.tree_unflatten(out_tree.val, outs)

    return vmapped


# ----------------------------------------------------------------------------------------
# Automatic differentiation: jvp, linearize, vjp, grad, value_and_grad, jacobians


def _normalize_argnums(argnums: int | Sequence[int], nargs: int, fname: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or any(not isinstance(i, int) or isinstance(i, bool) for i in nums):
        raise TypeError(f"argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    out = []
    for i in nums:
        if not -nargs <= i < nargs:
            raise TypeError(
                f"differentiating {fname} with respect to argnums={argnums!r} needs at least "
                f"{(i if i >= 0 else -i - 1) + 1} positional arguments, but it was called "
                f"with {nargs}; pass the differentiated arguments positionally"
            )
        out.append(i % nargs)
    if len(set(out)) != len(out):
        raise ValueError(f"argnums {argnums!r} names an argument twice")
    return tuple(out)


def _dyn_args(
    fun: Callable, args: tuple, kwargs: dict, argnums: tuple[int, ...]
) -> tuple[list[Any], Any, Callable[..., Any], Callable[[], list[str]]]:
    """Flatten the differentiated arguments; a function of their leaves; a thunk giving the
    leaves' names (for error messages only: computing them is slow)."""
    flat, in_tree = tree_util.tree_flatten(tuple(args[i] for i in argnums))
    flat = [as_array(x) for x in flat]

    def call(*dyn_flat: Any) -> Any:
        dyn_args = tree_util.tree_unflatten(in_tree, dyn_flat)
        full = list(args)
        for i, a in zip(argnums, dyn_args, strict=False):
            full[i] = a
        return fun(*full, **kwargs)

    return flat, in_tree, call, lambda: _leaf_names(fun, args, argnums, len(flat))


def _leaf_names(fun: Callable, args: tuple, argnums: tuple[int, ...], n: int) -> list[str]:
    """Readable names (``params['w']``) of the leaves of the differentiated arguments."""
    names = arg_names(fun, args)
    starts = [0]
    for a in args:
        starts.append(starts[-1] + len(tree_util.tree_leaves(a)))
    out = [name for i in argnums for name in names[starts[i] : starts[i + 1]]]
    return out if len(out) == n else [f"leaf {k}" for k in range(n)]


def _check_float_inputs(
    flat: Sequence[Any], names: Callable[[], list[str]], fname: str, what: str
) -> None:
    for i, x in enumerate(flat):
        dtype = dtypes.dtype_of(x)
        if dtype.kind not in "fc":
            name = names()[i]
            raise TypeError(
                f"{what}({fname}): the differentiated argument {name} has dtype "
                f"{dtype.name}, but differentiation needs floating-point inputs. Pass floats "
                f"(e.g. `1.0` instead of `1`, or `x.astype(np.float32)`), or leave the "
                f"argument out of argnums."
            )


def _check_complex_inputs(
    flat: Sequence[Any], names: Callable[[], list[str]], fname: str, what: str
) -> None:
    """``holomorphic=True`` differentiates with respect to complex inputs only."""
    for i, x in enumerate(flat):
        if dtypes.dtype_of(x).kind != "c":
            raise TypeError(
                f"{what}({fname}, holomorphic=True) needs complex inputs, but "
                f"{names()[i]} has dtype {dtypes.dtype_of(x).name}; convert it with "
                "`.astype(np.complex64)` or drop holomorphic=True"
            )


def _check_real_inputs(fname: str, dtypes_in: Sequence[Any]) -> None:
    """``jacfwd`` without ``holomorphic`` pushes real input directions (a complex input
    would need both a real and an imaginary one), as JAX."""
    for dt in dtypes_in:
        if np.dtype(dt).kind == "c":
            raise TypeError(
                f"jacfwd({fname}) needs real inputs, but got dtype {np.dtype(dt).name}: "
                "for a holomorphic function pass holomorphic=True; otherwise "
                "differentiate the real and imaginary parts as separate real inputs"
            )


def _check_jacobian_outputs(
    what: str, fname: str, holomorphic: bool, dtypes_out: Sequence[Any]
) -> None:
    """JAX's rules for a Jacobian's outputs: complex with ``holomorphic`` (the Jacobian is
    ``f'(z)``); real for ``jacrev`` without it (it pulls back real output directions)."""
    for dt in dtypes_out:
        complex_out = np.dtype(dt).kind == "c"
        if holomorphic and not complex_out:
            raise TypeError(
                f"{what}({fname}, holomorphic=True) needs complex outputs, but the "
                f"function returned dtype {np.dtype(dt).name}; drop holomorphic=True "
                "for a real function"
            )
        if what == "jacrev" and not holomorphic and complex_out:
            raise TypeError(
                f"jacrev({fname}) needs real outputs, but the function returned dtype "
                f"{np.dtype(dt).name}: for a holomorphic function pass holomorphic=True; "
                "for a non-holomorphic one with complex outputs use vjp directly"
            )


def _fix_cotangent(ct: Any, aval: ShapedArray) -> Any:
    """A (co)tangent with exactly its primal's dtype; symbolic zeros become real zeros."""
    if type(ct) is np.ndarray and ct.dtype == aval.dtype:
        return ct  # the common case
    if type(ct) is ad.Zero:
        return ad.zeros_like_aval(aval)
    if dtypes.dtype_of(ct) != aval.dtype:
        ct = lax.convert_element_type(ct, aval.dtype)
    return ct


class _Outputs:
    """The flat-function form of what a differentiated function returns: the leaves of its
    output as arrays and, with ``has_aux``, the leaves of the aux pytree (kept as values).
    Records both structures when called. ``check`` may validate (and convert) the output
    before it is flattened (``grad`` wants one scalar)."""

    __slots__ = ("fun", "has_aux", "what", "fname", "check", "out_tree", "aux_tree", "num_out")

    def __init__(
        self,
        fun: Callable,
        has_aux: bool,
        what: str,
        fname: str,
        check: Callable[[Any], Any] | None = None,
    ) -> None:
        self.fun = fun
        self.has_aux = has_aux
        self.what = what
        self.fname = fname
        self.check = check
        self.out_tree: Any = None
        self.aux_tree: Any = None
        self.num_out = 0

    def __call__(self, *xs: Any) -> tuple[list[Any], list[Any]]:
        out = self.fun(*xs)
        aux_leaves: list[Any] = []
        if self.has_aux:
            if not (isinstance(out, tuple | list) and len(out) == 2):
                raise TypeError(
                    f"{self.what}({self.fname}, has_aux=True): the function must return a pair "
                    f"(output, aux), got {type(out).__name__}"
                )
            out, aux = out
            aux_leaves, self.aux_tree = tree_util.tree_flatten(aux)
        if self.check is not None:
            out = self.check(out)
        leaves, self.out_tree = tree_util.tree_flatten(out)
        self.num_out = len(leaves)
        return [as_array(x) for x in leaves], aux_leaves

    def concatenated(self, *xs: Any) -> list[Any]:
        """The output leaves followed by the aux leaves, as one list (for ``jvp_flat``)."""
        outs, aux_leaves = self(*xs)
        return outs + aux_leaves

    def aux(self, aux_leaves: list[Any]) -> Any:
        """The aux pytree (None without ``has_aux``)."""
        return tree_util.tree_unflatten(self.aux_tree, aux_leaves) if self.has_aux else None


def _reverse_flat(fun: Callable, flat: list[Any]) -> tuple[list[Any], Any, list[Any]]:
    """``(outputs, lin, aux)`` for reverse mode: ``lin`` has ``transpose``, ``in_avals`` and
    ``out_avals``. Eagerly (concrete inputs, nothing traced) the autograd-style tape
    (``interpreters/tape.py``) is much cheaper than a linearized jaxpr; it gives the same
    values."""
    if tape.applies(flat):
        return tape.vjp_flat(fun, flat, has_aux=True)
    return ad.linearize_flat(fun, flat, has_aux=True)


def _value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int],
    has_aux: bool,
    what: str,
    args: tuple,
    kwargs: dict,
    holomorphic: bool = False,
) -> tuple[Any, Any, Any]:
    fname = fun_name(fun)
    nums = _normalize_argnums(argnums, len(args), fname)
    flat, in_tree, call, names = _dyn_args(fun, args, kwargs, nums)
    _check_float_inputs(flat, names, fname, what)
    if holomorphic:
        _check_complex_inputs(flat, names, fname, what)

    def scalar_output(out: Any) -> Any:
        leaves = tree_util.tree_leaves(out)
        if len(leaves) != 1 or not isinstance(out, np.ndarray | np.generic | Tracer | float | int):
            raise TypeError(
                f"{what}({fname}) needs a function that returns one scalar array, but it "
                f"returned {type(out).__name__} ({len(leaves)} leaves); reduce the output to "
                "a scalar (e.g. `loss.sum()`), return extra values with has_aux=True, or use "
                "vjp/jacrev for structured outputs"
            )
        out = as_array(out)
        aval = get_aval(out)
        if aval.shape != ():
            raise TypeError(
                f"{what}({fname}) needs a scalar output, but the function returned "
                f"{aval.str_short()}; reduce it to a scalar first (e.g. with `.sum()` or "
                "`.mean()`), or use vjp or jacrev for non-scalar outputs"
            )
        if aval.dtype.kind not in "fc":
            raise TypeError(
                f"{what}({fname}) needs a floating-point output, but the function returned "
                f"{aval.str_short()}; compute the output from floats"
            )
        if aval.dtype.kind == "c" and not holomorphic:
            raise TypeError(
                f"{what}({fname}) needs a real output, but the function returned "
                f"{aval.str_short()}; for the complex derivative of a holomorphic function "
                "pass holomorphic=True, else reduce to a real value (e.g. `.real` or `abs`)"
            )
        if holomorphic and aval.dtype.kind != "c":
            raise TypeError(
                f"{what}({fname}, holomorphic=True) needs a complex output, but the function "
                f"returned {aval.str_short()}"
            )
        return out

    flat_fun = _Outputs(call, has_aux, what, fname, scalar_output)
    outs, lin, aux_leaves = _reverse_flat(flat_fun, flat)
    out = outs[0]
    out_aval = lin.out_avals[0]
    cts = lin.transpose([np.ones((), out_aval.dtype)])
    grads = [_fix_cotangent(c, a) for c, a in zip(cts, lin.in_avals, strict=True)]
    g = tree_util.tree_unflatten(in_tree, grads)
    if isinstance(argnums, int):
        g = g[0]
    return out, g, flat_fun.aux(aux_leaves)


def grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The gradient of a scalar-valued ``fun`` with respect to its ``argnums`` argument(s).

    ``argnums`` is an int (the gradient has that argument's structure) or a tuple (a tuple
    of gradients). With ``has_aux``, ``fun`` returns ``(value, aux)`` and the result is
    ``(gradient, aux)``. Outside ``jit``/``vmap`` the function sees concrete values, so
    Python control flow on them works. Gradients have their argument's dtype. Complex
    inputs follow JAX: for a real output the gradient is ``df/dx - i df/dy``; a complex
    output needs ``holomorphic=True`` (complex inputs, the derivative ``f'(z)``).

    >>> fg.grad(lambda x: fnp.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    """

    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        with list_arguments("grad", fun, args):
            _, g, aux = _value_and_grad(fun, argnums, has_aux, "grad", args, kwargs, holomorphic)
        return (g, aux) if has_aux else g

    return grad_fun


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """Like :func:`grad`, but returns ``(value, gradient)`` (``((value, aux), gradient)``
    with ``has_aux``), computing the value once."""

    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any) -> Any:
        with list_arguments("value_and_grad", fun, args):
            out, g, aux = _value_and_grad(
                fun, argnums, has_aux, "value_and_grad", args, kwargs, holomorphic
            )
        return ((out, aux), g) if has_aux else (out, g)

    return value_and_grad_fun


def _check_same_structure(
    what: str, fname: str, got: Any, expected: Any, got_name: str, expected_name: str
) -> None:
    if got != expected:
        raise ValueError(
            f"{what}({fname}): the {got_name} have structure {got} but the {expected_name} "
            f"have structure {expected}; they must match"
        )


def _check_tangent(what: str, t: Any, aval: ShapedArray, name: str) -> Any:
    if dtypes.is_python_scalar(t):
        t = np.asarray(t, aval.dtype)
    t = as_array(t)
    t_aval = get_aval(t)
    if t_aval.shape != aval.shape or t_aval.dtype != aval.dtype:
        raise ValueError(
            f"{what}: the {name} is {t_aval.str_short()} but it must have the same shape "
            f"and dtype as its primal, {aval.str_short()}"
        )
    return t


def jvp(
    fun: Callable, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False
) -> tuple[Any, ...]:
    """Forward mode: ``(fun(*primals), J(primals) @ tangents)``.

    ``primals`` and ``tangents`` are tuples (or lists) of pytrees of the same structure;
    each tangent has its primal's shape and dtype. With ``has_aux`` returns
    ``(out, tangent_out, aux)``.
    """
    fname = fun_name(fun)
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            f"jvp({fname}): primals and tangents must be tuples or lists (one entry per "
            f"argument), got {type(primals).__name__} and {type(tangents).__name__}; write "
            "e.g. `jvp(f, (x,), (t,))`"
        )
    flat_p, tree_p = tree_util.tree_flatten(tuple(primals))
    flat_t, tree_t = tree_util.tree_flatten(tuple(tangents))
    _check_same_structure("jvp", fname, tree_t, tree_p, "tangents", "primals")
    flat_p = [as_array(x) for x in flat_p]
    flat_t = [
        _check_tangent(f"jvp({fname})", t, get_aval(p).strip(), f"tangent of primal leaf {i}")
        for i, (p, t) in enumerate(zip(flat_p, flat_t, strict=True))
    ]
    outputs = _Outputs(
        lambda *xs: fun(*tree_util.tree_unflatten(tree_p, xs)), has_aux, "jvp", fname
    )
    outs, touts = ad.jvp_flat(outputs.concatenated, flat_p, flat_t)
    n = outputs.num_out
    touts = [_fix_cotangent(t, shaped_aval(o)) for t, o in zip(touts[:n], outs[:n], strict=True)]
    out = tree_util.tree_unflatten(outputs.out_tree, outs[:n])
    t_out = tree_util.tree_unflatten(outputs.out_tree, touts)
    if has_aux:
        return out, t_out, outputs.aux(outs[n:])
    return out, t_out


def _linearize(
    what: str, fun: Callable, primals: tuple, has_aux: bool
) -> tuple[Any, Any, Any, Any, Any]:
    fname = fun_name(fun)
    flat_p, in_tree = tree_util.tree_flatten(primals)
    flat_p = [as_array(x) for x in flat_p]
    flat_fun = _Outputs(
        lambda *xs: fun(*tree_util.tree_unflatten(in_tree, xs)), has_aux, what, fname
    )

    if what == "linearize":
        outs, lin, aux_leaves = ad.linearize_flat(flat_fun, flat_p, has_aux=True)
    else:
        outs, lin, aux_leaves = _reverse_flat(flat_fun, flat_p)
    out = tree_util.tree_unflatten(flat_fun.out_tree, outs)
    return out, lin, flat_fun.aux(aux_leaves), in_tree, flat_fun.out_tree


def linearize(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """``(fun(*primals), f_jvp)`` where ``f_jvp(*tangents)`` evaluates the linearization
    (a jaxpr of the tangent computations) at new tangents without re-running ``fun``."""
    fname = fun_name(fun)
    out, lin, aux, in_tree, out_tree = _linearize("linearize", fun, primals, has_aux)

    def f_jvp(*tangents: Any) -> Any:
        flat_t, tree_t = tree_util.tree_flatten(tangents)
        _check_same_structure("linearize", fname, tree_t, in_tree, "tangents", "primals")
        flat_t = [
            _check_tangent(f"linearize({fname})", t, a, f"tangent {i}")
            for i, (t, a) in enumerate(zip(flat_t, lin.in_avals, strict=True))
        ]
        return tree_util.tree_unflatten(out_tree, lin.jvp(flat_t))

    return (out, f_jvp, aux) if has_aux else (out, f_jvp)


def vjp(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """Reverse mode: ``(fun(*primals), vjp_fun)``; ``vjp_fun(cotangent)`` returns a tuple
    with one cotangent per primal (``(out, vjp_fun, aux)`` with ``has_aux``)."""
    fname = fun_name(fun)
    out, lin, aux, in_tree, out_tree = _linearize("vjp", fun, primals, has_aux)

    def vjp_fun(cotangent: Any) -> tuple[Any, ...]:
        flat_ct, ct_tree = tree_util.tree_flatten(cotangent)
        _check_same_structure("vjp", fname, ct_tree, out_tree, "cotangents", "outputs")
        flat_ct = [
            _check_tangent(f"vjp({fname})", c, a, f"cotangent of output leaf {i}")
            for i, (c, a) in enumerate(zip(flat_ct, lin.out_avals, strict=True))
        ]
        cts = lin.transpose(flat_ct)
        grads = [_fix_cotangent(c, a) for c, a in zip(cts, lin.in_avals, strict=True)]
        return tuple(tree_util.tree_unflatten(in_tree, grads))

    return (out, vjp_fun, aux) if has_aux else (out, vjp_fun)


def _std_basis(avals: Sequence[ShapedArray]) -> list[np.ndarray]:
    """Per leaf, the rows of the identity on all leaves' elements: ``(N, *leaf_shape)``."""
    total = sum(a.size for a in avals)
    out = []
    offset = 0
    for a in avals:
        rows = np.zeros((total, a.size), a.dtype)
        rows[offset : offset + a.size] = np.eye(a.size, dtype=a.dtype)
        out.append(rows.reshape((total, *a.shape)))
        offset += a.size
    return out


def _move_first_axis_to(x: Any, shape: tuple[int, ...], lead: tuple[int, ...]) -> Any:
    """``x`` of shape ``(n, *lead)`` reshaped to ``(*lead, *shape)`` with n = prod(shape)."""
    ndim = get_aval(x).ndim
    if ndim > 1:
        x = lax.transpose(x, tuple(range(1, ndim)) + (0,))
    return lax.reshape(x, tuple(lead) + tuple(shape))


def jacfwd(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Jacobian of ``fun`` by forward mode (one batched jvp over the input basis).

    The result has the output's structure, each leaf holding the input structure (a tuple
    when ``argnums`` is a tuple) with leaves of shape ``out_shape + in_shape``. Best when
    inputs are smaller than outputs. With ``has_aux`` returns ``(jacobian, aux)``. Inputs
    are real unless ``holomorphic=True`` (complex inputs and outputs: the derivative
    ``f'(z)``), as in JAX.
    """

    @functools.wraps(fun)
    def jacfun(*args: Any, **kwargs: Any) -> Any:
        fname = fun_name(fun)
        nums = _normalize_argnums(argnums, len(args), fname)
        flat, in_tree, call, names = _dyn_args(fun, args, kwargs, nums)
        _check_float_inputs(flat, names, fname, "jacfwd")
        avals = [get_aval(x).strip() for x in flat]
        if holomorphic:
            _check_complex_inputs(flat, names, fname, "jacfwd")
        else:
            _check_real_inputs(fname, [a.dtype for a in avals])
        outputs = _Outputs(call, has_aux, "jacfwd", fname)
        flat_call = outputs.concatenated

        def pushfwd(*basis: Any) -> tuple[list[Any], list[Any]]:
            outs, touts = ad.jvp_flat(flat_call, flat, list(basis))
            n = outputs.num_out
            out_dtypes = [get_aval(o).dtype for o in outs[:n]]
            _check_jacobian_outputs("jacfwd", fname, holomorphic, out_dtypes)
            touts = [
                _fix_cotangent(t, get_aval(o).strip())
                for t, o in zip(touts[:n], outs[:n], strict=True)
            ]
            return touts, outs[n:]

        total = sum(a.size for a in avals)
        if total == 0:  # nothing to differentiate with respect to: empty Jacobians
            outs = flat_call(*flat)
            n = outputs.num_out
            touts = [np.zeros((0, *np.shape(o)), get_aval(o).dtype) for o in outs[:n]]
            aux_leaves = outs[n:]
        else:
            touts, aux_leaves = vmap(pushfwd, in_axes=0, out_axes=(0, None))(*_std_basis(avals))
        jac_leaves = []
        for t in touts:
            t_shape = get_aval(t).shape[1:]
            per_input = []
            offset = 0
            for a in avals:
                piece = t if len(avals) == 1 else lax.slice_in_dim(t, offset, offset + a.size)
                offset += a.size
                per_input.append(_move_first_axis_to(piece, a.shape, t_shape))
            tree_in = tree_util.tree_unflatten(in_tree, per_input)
            jac_leaves.append(tree_in[0] if isinstance(argnums, int) else tree_in)
        jac = tree_util.tree_unflatten(outputs.out_tree, jac_leaves)
        if has_aux:
            return jac, outputs.aux(aux_leaves)
        return jac

    return jacfun


def jacrev(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Jacobian of ``fun`` by reverse mode (one linearization, then a batched backward
    pass per output leaf). Same layout as :func:`jacfwd`; best for few outputs. Outputs
    are real unless ``holomorphic=True`` (complex inputs and outputs: the derivative
    ``f'(z)``), as in JAX; a real output of complex inputs gives ``grad``'s convention."""

    @functools.wraps(fun)
    def jacfun(*args: Any, **kwargs: Any) -> Any:
        fname = fun_name(fun)
        nums = _normalize_argnums(argnums, len(args), fname)
        flat, in_tree, call, names = _dyn_args(fun, args, kwargs, nums)
        _check_float_inputs(flat, names, fname, "jacrev")
        if holomorphic:
            _check_complex_inputs(flat, names, fname, "jacrev")
        outputs = _Outputs(call, has_aux, "jacrev", fname)
        outs, lin, aux_leaves = _reverse_flat(outputs, flat)
        out_dtypes = [a.dtype for a in lin.out_avals]
        _check_jacobian_outputs("jacrev", fname, holomorphic, out_dtypes)
        jac_leaves = []
        for j, out_aval in enumerate(lin.out_avals):
            m = out_aval.size

            def pullback(ct: Any, j: int = j) -> list[Any]:
                cts = [ct if k == j else ad.Zero(a) for k, a in enumerate(lin.out_avals)]
                res = lin.transpose(cts)
                return [_fix_cotangent(c, a) for c, a in zip(res, lin.in_avals, strict=True)]

            if m == 0:
                per_input = [np.zeros((*out_aval.shape, *a.shape), a.dtype) for a in lin.in_avals]
            else:
                basis = np.eye(m, dtype=out_aval.dtype).reshape((m, *out_aval.shape))
                rows = vmap(pullback)(basis)
                per_input = [
                    _reshape_to(r, (*out_aval.shape, *a.shape))
                    for r, a in zip(rows, lin.in_avals, strict=True)
                ]
            tree_in = tree_util.tree_unflatten(in_tree, per_input)
            jac_leaves.append(tree_in[0] if isinstance(argnums, int) else tree_in)
        jac = tree_util.tree_unflatten(outputs.out_tree, jac_leaves)
        if has_aux:
            return jac, outputs.aux(aux_leaves)
        return jac

    return jacfun


def _reshape_to(x: Any, shape: tuple[int, ...]) -> Any:
    return x if get_aval(x).shape == shape else lax.reshape(x, shape)


def hessian(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Hessian of a scalar ``fun``: ``jacfwd(jacrev(fun))`` (forward over reverse)."""
    inner = jacrev(fun, argnums, has_aux=has_aux, holomorphic=holomorphic)
    return jacfwd(inner, argnums, has_aux=has_aux, holomorphic=holomorphic)


def block_until_ready(x: Any) -> Any:
    """Returns ``x``: funcgrad computes synchronously (kept for JAX compatibility)."""
    return x
