"""Shape primitives: broadcast_in_dim, reshape, transpose, and friends.

All are linear, so each has a transpose rule; all impls return fresh arrays (NumPy's
reshape and transpose return views, which would alias the input).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import as_dtype

# -- broadcast_in_dim
broadcast_in_dim_p = Primitive("broadcast_in_dim")


def broadcast_in_dim(
    operand: Any, shape: tuple[int, ...], broadcast_dimensions: tuple[int, ...]
) -> Any:
    """Broadcast ``operand`` to ``shape``; operand axis i becomes output axis
    ``broadcast_dimensions[i]`` (where it must have size 1 or the output's size)."""
    return broadcast_in_dim_p.bind(
        operand, shape=tuple(shape), broadcast_dimensions=tuple(broadcast_dimensions)
    )


@broadcast_in_dim_p.def_abstract_eval
def _broadcast_in_dim_abstract_eval(x, *, shape, broadcast_dimensions):
    ok = len(broadcast_dimensions) == x.ndim and all(
        0 <= d < len(shape) for d in broadcast_dimensions
    )
    ok = ok and list(broadcast_dimensions) == sorted(set(broadcast_dimensions))
    ok = ok and all(
        x.shape[i] in (1, shape[d]) for i, d in enumerate(broadcast_dimensions)
    )
    if not ok:
        raise ValueError(
            f"broadcast_in_dim: cannot broadcast {x.str_short()} to shape {shape} with "
            f"broadcast_dimensions={broadcast_dimensions}; each operand axis needs a strictly "
            "increasing output axis whose size equals its own or is broadcast from 1"
        )
    return ShapedArray(shape, x.dtype)


@broadcast_in_dim_p.def_impl
def _broadcast_in_dim_impl(x, *, shape, broadcast_dimensions):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    out = np.empty(shape, x.dtype)
    out[...] = x.reshape(expanded)
    return out


def _broadcast_in_dim_transpose(ct, x, *, shape, broadcast_dimensions):
    from funcgrad.lax.reductions import reduce_sum

    in_shape = x.aval.shape
    new_axes = tuple(d for d in range(len(shape)) if d not in broadcast_dimensions)
    expanded_axes = tuple(
        d for i, d in enumerate(broadcast_dimensions) if in_shape[i] == 1 and shape[d] != 1
    )
    summed = reduce_sum(ct, tuple(sorted(new_axes + expanded_axes)))
    return [reshape(summed, in_shape)]


def _broadcast_in_dim_batch(args, dims, *, shape, broadcast_dimensions):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    size = get_aval(x).shape[0]
    return broadcast_in_dim(
        x, (size, *shape), (0, *(b + 1 for b in broadcast_dimensions))
    ), 0


ad.deflinear(broadcast_in_dim_p, _broadcast_in_dim_transpose)
batching.primitive_batchers[broadcast_in_dim_p] = _broadcast_in_dim_batch


def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    """NumPy-style ``broadcast_to`` in terms of ``broadcast_in_dim``."""
    aval = get_aval(x)
    shape = tuple(shape)
    if aval.shape == shape:
        return x
    lead = len(shape) - aval.ndim
    return broadcast_in_dim(x, shape, tuple(range(lead, len(shape))))


def full(shape: tuple[int, ...], fill_value: Any, dtype: Any = None) -> Any:
    """An array of ``shape`` filled with ``fill_value`` (one ``broadcast_in_dim``)."""
    dtype = as_dtype(dtype) if dtype is not None else get_aval(fill_value).dtype
    if isinstance(fill_value, (int, float, bool, complex, np.generic)):
        fill_value = np.array(fill_value, dtype)[()]
    else:
        from funcgrad.lax.elementwise import convert_element_type

        if get_aval(fill_value).dtype != dtype:
            fill_value = convert_element_type(fill_value, dtype)
    return broadcast_in_dim(fill_value, tuple(shape), ())


# -- reshape
reshape_p = Primitive("reshape")


def reshape(operand: Any, new_sizes: tuple[int, ...]) -> Any:
    """Row-major reshape to ``new_sizes`` (no -1: ``funcgrad.numpy.reshape`` resolves it)."""
    return reshape_p.bind(operand, new_sizes=tuple(int(d) for d in new_sizes))


@reshape_p.def_abstract_eval
def _reshape_abstract_eval(x, *, new_sizes):
    if any(d < 0 for d in new_sizes) or int(np.prod(new_sizes)) != x.size:
        raise ValueError(
            f"reshape: cannot reshape {x.str_short()} ({x.size} elements) into shape "
            f"{new_sizes}; the number of elements must stay the same"
        )
    return ShapedArray(new_sizes, x.dtype)


@reshape_p.def_impl
def _reshape_impl(x, *, new_sizes):
    return np.array(np.reshape(x, new_sizes))


def _reshape_batch(args, dims, *, new_sizes):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    return reshape(x, (get_aval(x).shape[0], *new_sizes)), 0


ad.deflinear(reshape_p, lambda ct, x, *, new_sizes: [reshape(ct, x.aval.shape)])
batching.primitive_batchers[reshape_p] = _reshape_batch

# -- transpose
transpose_p = Primitive("transpose")


def transpose(operand: Any, permutation: tuple[int, ...]) -> Any:
    """Permute the axes of ``operand``: output axis i is input axis ``permutation[i]``."""
    return transpose_p.bind(operand, permutation=tuple(int(p) for p in permutation))


@transpose_p.def_abstract_eval
def _transpose_abstract_eval(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ValueError(
            f"transpose: permutation {permutation} is not a permutation of the axes of "
            f"{x.str_short()}"
        )
    return ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype)


@transpose_p.def_impl
def _transpose_impl(x, *, permutation):
    return np.array(np.transpose(x, permutation))


def _transpose_transpose(ct, x, *, permutation):
    return [transpose(ct, tuple(np.argsort(permutation)))]


def _transpose_batch(args, dims, *, permutation):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    return transpose(x, (0, *(p + 1 for p in permutation))), 0


ad.deflinear(transpose_p, _transpose_transpose)
batching.primitive_batchers[transpose_p] = _transpose_batch
