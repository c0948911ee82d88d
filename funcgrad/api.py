"""The public transformations: each flattens pytrees, calls a ``*_flat`` core, unflattens."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from funcgrad import tree_util
from funcgrad.api_util import arg_names, flatten_fun, fun_name
from funcgrad.core import shaped_aval
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


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = ()) -> Callable[..., ClosedJaxpr]:
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
    for a, sub in zip(axes_leaves, subtrees):
        out.extend([a] * len(tree_util.tree_leaves(sub)))
    return out


def vmap(
    fun: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
) -> Callable:
    """Vectorize ``fun`` over an axis of its inputs: ``vmap(f)(xs)[i] == f(xs[i])``.

    ``in_axes``/``out_axes`` are an int (negative counts from the end), None (not mapped /
    not batched), or pytree prefixes of the arguments/outputs. ``axis_size`` is needed only
    when no input is mapped. Keyword arguments are mapped along axis 0.
    """
    from funcgrad.core import get_aval
    from funcgrad.interpreters.batching import vmap_flat

    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
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
        for x, ax, path in zip(flat_args, axes_flat, paths):
            if ax is None:
                norm_axes.append(None)
                continue
            shape = get_aval(x).shape
            if not -len(shape) <= ax < len(shape):
                raise ValueError(
                    f"vmap in_axes={ax} is out of range for argument {path} of shape "
                    f"{shape} (rank {len(shape)}); use an axis in [-{len(shape)}, "
                    f"{len(shape)}) or None to leave it unmapped"
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

        outs = vmap_flat(flat_fun, norm_axes, out_axes_flat, size, flat_args)
        return tree_util.tree_unflatten(out_tree.val, outs)

    return vmapped
