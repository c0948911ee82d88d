"""``ShapeDtypeStruct`` and ``eval_shape``, as in JAX: computing with shapes only.

A :class:`ShapeDtypeStruct` stands for an array by its shape and dtype (the shape may hold
symbolic dimensions from :func:`funcgrad.export.symbolic_shape`). :func:`eval_shape` traces a
function on such stand-ins and returns its outputs' shapes and dtypes, computing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import ShapedArray

__all__ = ["ShapeDtypeStruct", "eval_shape"]


class ShapeDtypeStruct:
    """An array's shape and dtype, without data (``jax.ShapeDtypeStruct``)."""

    __slots__ = ("shape", "dtype", "weak_type")

    def __init__(self, shape: Any, dtype: Any, *, weak_type: bool = False) -> None:
        try:
            self.shape = tuple(shape)
        except TypeError:
            raise TypeError(f"ShapeDtypeStruct: shape must be a tuple, got {shape!r}") from None
        for d in self.shape:
            if isinstance(d, bool) or not (
                (isinstance(d, int | np.integer) and d >= 0) or hasattr(d, "evaluate")
            ):
                raise TypeError(
                    f"ShapeDtypeStruct: dimensions must be non-negative ints or symbolic "
                    f"dimensions (funcgrad.export.symbolic_shape), got {shape!r}"
                )
        self.shape = tuple(int(d) if isinstance(d, int | np.integer) else d for d in self.shape)
        self.dtype = np.dtype(dtype)
        self.weak_type = weak_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def is_symbolic(self) -> bool:
        return any(not isinstance(d, int) for d in self.shape)

    def __repr__(self) -> str:
        shape = (
            "("
            + ", ".join(str(d) for d in self.shape)
            + ("," if len(self.shape) == 1 else "")
            + ")"
        )
        return f"ShapeDtypeStruct(shape={shape}, dtype={self.dtype.name})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ShapeDtypeStruct)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.weak_type == other.weak_type
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.weak_type))


def aval_of(x: Any) -> ShapedArray:
    """The abstract value of an argument leaf: an array, a scalar or a ShapeDtypeStruct."""
    if isinstance(x, ShapeDtypeStruct):
        if x.is_symbolic:
            raise TypeError(f"{x} has symbolic dimensions; bind them first")
        return ShapedArray(x.shape, x.dtype, x.weak_type)
    if hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.ndarray | np.generic):
        if isinstance(x, core.Tracer):
            return x.aval.strip()
        return ShapedArray(tuple(x.shape), np.dtype(x.dtype))
    return core.shaped_aval(x if isinstance(x, np.ndarray | np.generic) else np.asarray(x)).strip()


def eval_shape(fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """The shapes and dtypes of ``fun(*args, **kwargs)`` as a pytree of ShapeDtypeStruct,
    without computing anything (``jax.eval_shape``). Arguments may be arrays, scalars or
    ShapeDtypeStructs; with symbolic dimensions the results carry them too."""
    from funcgrad import tree_util

    leaves, treedef = tree_util.tree_flatten((args, kwargs))
    if any(isinstance(x, ShapeDtypeStruct) and x.is_symbolic for x in leaves):
        from funcgrad.export import export

        exp = export(lambda a, k: fun(*a, **k))(*_as_export_args(args, kwargs))
        outs = [ShapeDtypeStruct(a.shape, a.dtype) for a in exp.out_avals]
        return exp.rebuild_outputs(outs)
    from funcgrad.interpreters.partial_eval import trace_to_jaxpr

    out_tree: list[Any] = []

    def flat_fun(*flat: Any) -> list[Any]:
        a, k = tree_util.tree_unflatten(treedef, flat)
        out_leaves, out_def = tree_util.tree_flatten(fun(*a, **k))
        out_tree.append(out_def)
        return out_leaves

    closed = trace_to_jaxpr(flat_fun, [aval_of(x) for x in leaves])
    outs = [
        ShapeDtypeStruct(a.shape, a.dtype, weak_type=bool(getattr(a, "weak_type", False)))
        for a in closed.out_avals
    ]
    return tree_util.tree_unflatten(out_tree[0], outs)


def _as_export_args(args: tuple, kwargs: dict) -> tuple:
    return (tuple(args), dict(kwargs))
