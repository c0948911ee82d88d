"""Sorting: the multi-operand ``sort`` primitive (JAX's), and ``argsort``/``top_k`` on it.

``sort(*operands, dimension, is_stable, num_keys)`` sorts every operand along
``dimension`` by the permutation that orders the first ``num_keys`` operands
lexicographically (the first key is the most significant). The order is NumPy's: NaNs
last, -0.0 and 0.0 equal. The impl is always stable, whatever ``is_stable`` says.
The primitive's keys are real; the ``sort``/``argsort`` functions order a complex key as
NumPy and JAX do, by its real part, then its imaginary part (two real keys).

The jvp sorts one more operand, an iota, to learn the permutation and applies it to the
tangents with a gather (take-along-axis), whose transpose is a scatter-add. Batching moves
every operand's batch axis to one place (broadcasting unbatched operands) and shifts
``dimension``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import as_dtype, shape_str

ORDERED = "fiub"

# -- sort
sort_p = Primitive("sort", multiple_results=True)


def sort(operand: Any, dimension: int = -1, is_stable: bool = True, num_keys: int = 1) -> Any:
    """Sort ``operand`` (an array, or a sequence of same-shape arrays sorted together by
    their first ``num_keys``) along ``dimension``; returns the same kind of thing."""
    operands = tuple(operand) if isinstance(operand, (list, tuple)) else (operand,)
    if not operands:
        raise ValueError("sort: needs at least one operand")
    num_keys = int(num_keys)
    params = dict(
        dimension=_canonical_dimension(dimension, get_aval(operands[0]).ndim),
        is_stable=bool(is_stable),
    )
    keys = operands[:num_keys]
    if 1 <= num_keys <= len(operands) and any(get_aval(k).dtype.kind == "c" for k in keys):
        # Complex keys: sort by real copies of their parts, drop the copies afterwards.
        real = _real_keys(keys)
        out = sort_p.bind(*real, *operands, num_keys=len(real), **params)[len(real) :]
    else:
        out = sort_p.bind(*operands, num_keys=num_keys, **params)
    return tuple(out) if isinstance(operand, (list, tuple)) else out[0]


def _real_keys(keys: tuple) -> tuple:
    """Sort keys with each complex key split into its real and imaginary parts (NumPy's
    lexicographic order for complex numbers)."""
    out: list[Any] = []
    for k in keys:
        if get_aval(k).dtype.kind == "c":
            out += [lax.real(k), lax.imag(k)]
        else:
            out.append(k)
    return tuple(out)


def _canonical_dimension(dimension: int, ndim: int) -> int:
    dimension = int(dimension)
    if -ndim <= dimension < 0:
        return dimension + ndim
    return dimension  # out-of-range values are reported by abstract eval


@sort_p.def_abstract_eval
def _sort_abstract_eval(*operands, dimension, is_stable, num_keys):
    if not operands:
        raise ValueError("sort: needs at least one operand")
    shape = operands[0].shape
    if any(x.shape != shape for x in operands):
        raise ValueError(
            f"sort: all operands must have one shape, got {shape_str(operands)}; broadcast "
            "them to a common shape first"
        )
    if not 0 <= dimension < len(shape):
        raise ValueError(
            f"sort: dimension {dimension} is out of range for {operands[0].str_short()}; "
            f"give a dimension in [0, {len(shape)}) (a 0-d operand cannot be sorted)"
        )
    if not 1 <= num_keys <= len(operands):
        raise ValueError(
            f"sort: num_keys={num_keys} must be between 1 and the number of operands "
            f"({len(operands)})"
        )
    for x in operands[:num_keys]:
        if x.dtype.kind not in ORDERED:
            raise TypeError(
                f"sort: sort keys must be real numbers or bools, got {x.str_short()}; "
                "sort by a real key (e.g. the real part) and pass this operand after the keys"
            )
    return [ShapedArray(x.shape, x.dtype) for x in operands]


@sort_p.def_impl
def _sort_impl(*operands, dimension, is_stable, num_keys):
    _sort_abstract_eval(
        *(ShapedArray(np.shape(x), np.asarray(x).dtype) for x in operands),
        dimension=dimension,
        is_stable=is_stable,
        num_keys=num_keys,
    )
    arrays = [np.asarray(x) for x in operands]
    if num_keys == 1:
        perm = np.argsort(arrays[0], axis=dimension, kind="stable")
    else:
        # lexsort's last key is the most significant; it is stable and puts NaNs last.
        perm = np.lexsort(arrays[num_keys - 1 :: -1], axis=dimension)
    return [np.take_along_axis(x, perm, axis=dimension) for x in arrays]


def take_along_axis(x: Any, indices: Any, axis: int) -> Any:
    """``out[..., i, ...] = x[..., indices[..., i, ...], ...]`` along ``axis``: one gather
    whose other axes are batching dims shared by operand and indices (as JAX)."""
    shape = get_aval(x).shape
    others = tuple(i for i in range(len(shape)) if i != axis)
    dnums = lax.GatherDimensionNumbers(
        offset_dims=(),
        collapsed_slice_dims=(axis,),
        start_index_map=(axis,),
        operand_batching_dims=others,
        start_indices_batching_dims=others,
    )
    indices = lax.reshape(indices, (*shape, 1))
    return lax.gather(x, indices, dnums, (1,) * len(shape), indices_are_sorted=False)


def _sort_jvp(primals, tangents, *, dimension, is_stable, num_keys):
    shape = get_aval(primals[0]).shape
    if 0 in shape or shape[dimension] == 1:  # nothing moves
        outs = sort_p.bind(*primals, dimension=dimension, is_stable=is_stable, num_keys=num_keys)
        return outs, list(tangents)
    index_dtype = np.int32 if shape[dimension] < np.iinfo(np.int32).max else np.int64
    iota = lax.broadcasted_iota(index_dtype, shape, dimension)
    *outs, perm = sort_p.bind(
        *primals, iota, dimension=dimension, is_stable=is_stable, num_keys=num_keys
    )
    tangents_out = [
        t if type(t) is ad.Zero else take_along_axis(t, perm, dimension) for t in tangents
    ]
    return outs, tangents_out


ad.primitive_jvps[sort_p] = _sort_jvp


def _sort_batch(args, dims, *, dimension, is_stable, num_keys):
    batched = {d for d in dims if d is not None}
    if len(batched) == 1 and None not in dims:
        # Every operand is batched at the same axis: leave it there.
        (d,) = batched
    else:
        size = batching.axis_size_of(args, dims)
        args = [batching.bdim_at_front(x, d, size) for x, d in zip(args, dims, strict=True)]
        d = 0
    outs = sort_p.bind(
        *args, dimension=dimension + (dimension >= d), is_stable=is_stable, num_keys=num_keys
    )
    return outs, [d] * len(outs)


batching.primitive_batchers[sort_p] = _sort_batch


# -- helpers built on sort
def argsort(
    operand: Any, dimension: int = -1, is_stable: bool = True, index_dtype: Any = np.int32
) -> Any:
    """The indices that sort ``operand`` along ``dimension`` (stable, NaNs last): one
    ``sort`` of ``(operand, iota)`` with ``num_keys=1``."""
    aval = get_aval(operand)
    dimension = _canonical_dimension(dimension, aval.ndim)
    if not 0 <= dimension < aval.ndim:
        raise ValueError(f"argsort: dimension {dimension} is out of range for {aval.str_short()}")
    iota = lax.broadcasted_iota(as_dtype(index_dtype), aval.shape, dimension)
    keys = _real_keys((operand,))
    *_, perm = sort_p.bind(
        *keys, iota, dimension=dimension, is_stable=bool(is_stable), num_keys=len(keys)
    )
    return perm


def sort_key_val(keys: Any, values: Any, dimension: int = -1, is_stable: bool = True) -> tuple:
    """Sort ``keys`` along ``dimension`` and permute ``values`` the same way (as JAX)."""
    return sort((keys, values), dimension=dimension, is_stable=is_stable, num_keys=1)


def top_k(operand: Any, k: int) -> tuple[Any, Any]:
    """The ``k`` largest entries along the last axis, in descending order, and their
    int32 indices; ties keep the lower index first. NaNs count as the smallest values
    (unlike JAX, where they count as the largest)."""
    aval = get_aval(operand)
    if aval.ndim == 0:
        raise ValueError("top_k: the operand must have at least one axis, got a 0-d array")
    n = aval.shape[-1]
    k = int(k)
    if not 0 <= k <= n:
        raise ValueError(
            f"top_k: k={k} must be between 0 and the last axis' size {n} ({aval.str_short()})"
        )
    # A key whose ascending order is the operand's descending order, without overflow:
    # -x for floats, ~x (= -x - 1) for integers, not x for bools.
    kind = aval.dtype.kind
    if kind == "f":
        key = lax.neg(operand)
    elif kind in "iub":
        key = lax.bitwise_not(operand)
    else:
        raise TypeError(f"top_k: expected a real or bool operand, got {aval.str_short()}")
    iota = lax.broadcasted_iota(np.int32, aval.shape, aval.ndim - 1)
    _, values, indices = sort_p.bind(
        key, operand, iota, dimension=aval.ndim - 1, is_stable=True, num_keys=1
    )
    axis = aval.ndim - 1
    return lax.slice_in_dim(values, 0, k, 1, axis), lax.slice_in_dim(indices, 0, k, 1, axis)
