"""Reductions: reduce_sum, reduce_max, ... over a tuple of axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.core import Primitive, ShapedArray
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import NUMBER, check_dtype


def _check_axes(name: str, x: ShapedArray, axes: tuple[int, ...]) -> None:
    if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(
            f"{name}: axes {axes} are invalid for {x.str_short()}; give distinct axes in "
            f"[0, {x.ndim})"
        )


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _batch_axes(axes: tuple[int, ...], d: int) -> tuple[int, ...]:
    """Axes of the batched operand, and where the batch axis ends up."""
    return tuple(a + (a >= d) for a in axes)


# -- reduce_sum
reduce_sum_p = Primitive("reduce_sum")


def reduce_sum(operand: Any, axes: tuple[int, ...]) -> Any:
    """Sum over ``axes`` (non-negative, distinct); the dtype is kept."""
    return reduce_sum_p.bind(operand, axes=tuple(axes))


@reduce_sum_p.def_abstract_eval
def _reduce_sum_abstract_eval(x, *, axes):
    check_dtype("reduce_sum", x, NUMBER)
    _check_axes("reduce_sum", x, axes)
    return ShapedArray(_reduced_shape(x.shape, axes), x.dtype)


@reduce_sum_p.def_impl
def _reduce_sum_impl(x, *, axes):
    return np.asarray(np.sum(x, axis=axes, dtype=x.dtype))


def _reduce_sum_transpose(ct, x, *, axes):
    from funcgrad.lax.shape import broadcast_in_dim

    shape = x.aval.shape
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    return [broadcast_in_dim(ct, shape, kept)]


def _reduce_sum_batch(args, dims, *, axes):
    (x,), (d,) = args, dims
    new_axes = _batch_axes(axes, d)
    return reduce_sum(x, new_axes), d - sum(a < d for a in axes)


ad.deflinear(reduce_sum_p, _reduce_sum_transpose)
batching.primitive_batchers[reduce_sum_p] = _reduce_sum_batch
