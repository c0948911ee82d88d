"""Reductions over a tuple of axes: reduce_sum/max/min/prod/and/or, argmax, argmin.

Every reduction keeps its operand's dtype (``np.sum`` of int32 would give int64: the impls
pass ``dtype=``). ``axes`` are non-negative and distinct; ``funcgrad.numpy`` normalizes
negative axes and ``keepdims``.

Empty reductions (a reduced axis of size 0): reduce_sum gives 0, reduce_prod 1, reduce_and
True (all bits set), reduce_or False. reduce_max/reduce_min of floats give -inf/+inf, as JAX;
of ints and bools they have no identity, so abstract eval raises a ValueError (as NumPy
does). argmax/argmin of an empty axis raise a ValueError too (as NumPy and JAX).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, as_array
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import INT_OR_BOOL, NUMBER, as_dtype, check_dtype

#: Dtypes that have an order (reduce_max/min, argmax/argmin): numbers and bool, no complex.
ORDERED = "fiub"


def _check_axes(name: str, x: ShapedArray, axes: tuple[int, ...]) -> None:
    if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(
            f"{name}: axes {axes} are invalid for {x.str_short()}; give distinct axes in "
            f"[0, {x.ndim})"
        )


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _kept_dims(ndim: int, axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i not in axes)


def _batch_axes(axes: tuple[int, ...], d: int) -> tuple[int, ...]:
    """Axes of the batched operand, and where the batch axis ends up."""
    return tuple(a + (a >= d) for a in axes)


def _reduction_batcher(prim: Primitive):
    """Batch rule of any primitive with an ``axes`` param: renumber the axes."""

    def rule(args, dims, *, axes, **params):
        (x,), (d,) = args, dims
        out = prim.bind(x, axes=_batch_axes(axes, d), **params)
        return out, d - sum(a < d for a in axes)

    return rule


def _standard_reduction(name: str, impl, kinds: str, empty_ok: str = "fciub") -> Primitive:
    """A reduction primitive with ``axes``: abstract eval (dtype kept), impl, batching.

    ``empty_ok`` lists the dtype kinds for which reducing an axis of size 0 is allowed.
    """
    prim = Primitive(name)

    def abstract_eval(x, *, axes):
        check_dtype(name, x, kinds)
        _check_axes(name, x, axes)
        if x.dtype.kind not in empty_ok and any(x.shape[a] == 0 for a in axes):
            raise ValueError(
                f"{name} of an empty axis has no identity: got {x.str_short()} reduced over "
                f"axes {axes}; reduce a non-empty axis, or use a float dtype (which gives "
                "-inf/+inf)"
            )
        return ShapedArray(_reduced_shape(x.shape, axes), x.dtype)

    def checked_impl(x, *, axes):
        for a in axes:
            if a < 0:  # NumPy would accept these; abstract eval reports them
                abstract_eval(ShapedArray(np.shape(x), np.asarray(x).dtype), axes=axes)
        return impl(x, axes=axes)

    prim.def_abstract_eval(abstract_eval)
    prim.def_impl(checked_impl)
    prim.unchecked_impl = impl
    batching.primitive_batchers[prim] = _reduction_batcher(prim)
    return prim


# -- reduce_sum
def _reduce_sum_impl(x, *, axes):
    x = np.asarray(x)
    # np.add.reduce is np.sum without its Python wrapper (microseconds per eager call).
    return np.asarray(np.add.reduce(x, axis=axes, dtype=x.dtype))


reduce_sum_p = _standard_reduction("reduce_sum", _reduce_sum_impl, NUMBER)


def reduce_sum(operand: Any, axes: tuple[int, ...]) -> Any:
    """Sum over ``axes`` (non-negative, distinct); the dtype is kept."""
    return reduce_sum_p.bind(operand, axes=tuple(axes))


def _reduce_sum_transpose(ct, x, *, axes):
    shape = x.aval.shape
    return [lax.broadcast_in_dim(ct, shape, _kept_dims(len(shape), axes))]


ad.deflinear(reduce_sum_p, _reduce_sum_transpose)


# -- reduce_max and reduce_min
def _chooser_impl(np_fn, float_identity):
    def impl(x, *, axes):
        x = np.asarray(x)
        if any(x.shape[a] == 0 for a in axes):
            # Floats only: for ints and bools NumPy raises, and bind reports abstract
            # eval's clearer error.
            return np.asarray(np_fn(x, axis=axes, initial=float_identity)).astype(x.dtype)
        return np.asarray(np_fn(x, axis=axes))

    return impl


def _chooser_jvp(g, ans, x, *, axes):
    """Tangent of max/min: the average of ``g`` over the positions that attain ``ans``
    (as JAX). An empty reduction (a constant +-inf) has a zero tangent."""
    x, g = as_array(x), as_array(g)
    shape = x.shape
    if any(shape[a] == 0 for a in axes):
        return lax.full(ans.shape, 0, g.dtype)
    ans_b = lax.broadcast_in_dim(ans, shape, _kept_dims(len(shape), axes))
    location = lax.convert_element_type(lax.eq(x, ans_b), g.dtype)
    counts = reduce_sum(location, axes)
    return lax.div(reduce_sum(lax.mul(g, location), axes), counts)


reduce_max_p = _standard_reduction(
    "reduce_max", _chooser_impl(np.max, -np.inf), ORDERED, empty_ok="f"
)


def reduce_max(operand: Any, axes: tuple[int, ...]) -> Any:
    """Maximum over ``axes`` (NaN propagates; -inf for an empty float axis)."""
    return reduce_max_p.bind(operand, axes=tuple(axes))


ad.defjvp2(reduce_max_p, _chooser_jvp)

reduce_min_p = _standard_reduction(
    "reduce_min", _chooser_impl(np.min, np.inf), ORDERED, empty_ok="f"
)


def reduce_min(operand: Any, axes: tuple[int, ...]) -> Any:
    """Minimum over ``axes`` (NaN propagates; +inf for an empty float axis)."""
    return reduce_min_p.bind(operand, axes=tuple(axes))


ad.defjvp2(reduce_min_p, _chooser_jvp)


# -- reduce_prod
def _reduce_prod_impl(x, *, axes):
    x = np.asarray(x)
    return np.asarray(np.prod(x, axis=axes, dtype=x.dtype))


reduce_prod_p = _standard_reduction("reduce_prod", _reduce_prod_impl, NUMBER)


def reduce_prod(operand: Any, axes: tuple[int, ...]) -> Any:
    """Product over ``axes``; the dtype is kept (integers wrap around as in NumPy)."""
    return reduce_prod_p.bind(operand, axes=tuple(axes))


def _reduce_prod_jvp(g, x, *, axes):
    """``sum_i g_i * prod_{j != i} x_j`` with the product of the others computed as the
    product of exclusive cumulative products from both sides: exact with zeros, and
    differentiable again (cumprod's jvp is exact too)."""
    x, g = as_array(x), as_array(g)
    shape = x.shape
    kept = _kept_dims(len(shape), axes)
    out_shape = tuple(shape[i] for i in kept)
    n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if n == 0:
        return lax.full(out_shape, 0, g.dtype)
    if not axes:
        return g
    # Flatten the reduced axes into one leading axis.
    perm = tuple(axes) + kept
    x2 = lax.reshape(lax.transpose(x, perm), (n, *out_shape))
    g2 = lax.reshape(lax.transpose(g, perm), (n, *out_shape))
    shift = lax.cumulative.shift
    left = shift(lax.cumprod(x2, axis=0), axis=0, fill=1)
    right = shift(lax.cumprod(x2, axis=0, reverse=True), axis=0, fill=1, reverse=True)
    others = lax.mul(left, right)
    return reduce_sum(lax.mul(g2, others), (0,))


ad.defjvp(reduce_prod_p, _reduce_prod_jvp)


# -- reduce_and and reduce_or (bitwise for integers, logical for bool)
def _reduce_and_impl(x, *, axes):
    x = np.asarray(x)
    return np.asarray(np.bitwise_and.reduce(x, axis=axes, dtype=x.dtype))


reduce_and_p = _standard_reduction("reduce_and", _reduce_and_impl, INT_OR_BOOL)


def reduce_and(operand: Any, axes: tuple[int, ...]) -> Any:
    """Logical (bool) or bitwise (integer) AND over ``axes``; True for an empty axis."""
    return reduce_and_p.bind(operand, axes=tuple(axes))


ad.defjvp_zero(reduce_and_p)


def _reduce_or_impl(x, *, axes):
    x = np.asarray(x)
    return np.asarray(np.bitwise_or.reduce(x, axis=axes, dtype=x.dtype))


reduce_or_p = _standard_reduction("reduce_or", _reduce_or_impl, INT_OR_BOOL)


def reduce_or(operand: Any, axes: tuple[int, ...]) -> Any:
    """Logical (bool) or bitwise (integer) OR over ``axes``; False for an empty axis."""
    return reduce_or_p.bind(operand, axes=tuple(axes))


ad.defjvp_zero(reduce_or_p)


# -- argmax and argmin
def _arg_reduction(name: str, np_fn) -> Primitive:
    """argmax/argmin along one axis, ``axes=(axis,)``; the first NaN wins, as NumPy."""
    prim = Primitive(name)

    def abstract_eval(x, *, axes, index_dtype):
        check_dtype(name, x, ORDERED)
        if len(axes) != 1:
            raise ValueError(
                f"{name}: expected exactly one axis, got axes={axes} for {x.str_short()}; "
                "reduce one axis at a time (or reshape first)"
            )
        _check_axes(name, x, axes)
        if as_dtype(index_dtype).kind not in "iu":
            raise TypeError(
                f"{name}: index_dtype must be an integer dtype, got {index_dtype}; "
                "use np.int32 or np.int64"
            )
        if x.shape[axes[0]] == 0:
            raise ValueError(
                f"{name} of an empty axis is undefined: got {x.str_short()} with "
                f"axes={axes}; reduce a non-empty axis"
            )
        return ShapedArray(_reduced_shape(x.shape, axes), as_dtype(index_dtype))

    def impl(x, *, axes, index_dtype):
        if axes[0] < 0 or as_dtype(index_dtype).kind not in "iu":
            abstract_eval(
                ShapedArray(np.shape(x), np.asarray(x).dtype), axes=axes, index_dtype=index_dtype
            )
        return np.asarray(np_fn(np.asarray(x), axis=axes[0]), dtype=as_dtype(index_dtype))

    prim.def_abstract_eval(abstract_eval)
    prim.def_impl(impl)
    batching.primitive_batchers[prim] = _reduction_batcher(prim)
    ad.defjvp_zero(prim)
    return prim


argmax_p = _arg_reduction("argmax", np.argmax)


def argmax(operand: Any, axis: int, index_dtype: Any = np.int32) -> Any:
    """Index of the maximum along ``axis`` (first occurrence; a NaN counts as maximal)."""
    axis = int(axis)
    ndim = np.ndim(operand) if not hasattr(operand, "ndim") else operand.ndim
    return argmax_p.bind(
        operand, axes=(axis % ndim if ndim else axis,), index_dtype=as_dtype(index_dtype)
    )


argmin_p = _arg_reduction("argmin", np.argmin)


def argmin(operand: Any, axis: int, index_dtype: Any = np.int32) -> Any:
    """Index of the minimum along ``axis`` (first occurrence; a NaN counts as minimal)."""
    axis = int(axis)
    ndim = np.ndim(operand) if not hasattr(operand, "ndim") else operand.ndim
    return argmin_p.bind(
        operand, axes=(axis % ndim if ndim else axis,), index_dtype=as_dtype(index_dtype)
    )
