"""Shape primitives: broadcast_in_dim, reshape, transpose, squeeze, expand_dims, rev, iota,
concatenate and pad (the slicing family is in ``slicing.py``).

All but ``iota`` are linear in their array operands, so each has a transpose rule; all
impls return fresh arrays (NumPy's reshape, transpose and flip return views, which would
alias the input). Decisions, where JAX leaves room:

- ``expand_dims`` is a primitive here (JAX spells it as ``broadcast_in_dim``), with the
  param ``dimensions``: sorted, non-negative positions of the new size-1 axes in the output.
- The public functions accept negative axes (``squeeze``, ``expand_dims``, ``rev``,
  ``concatenate``, ``broadcasted_iota``) and bind canonical ones: non-negative, and sorted
  where order does not matter. They never skip the bind (JAX returns a lone
  ``concatenate`` operand or an empty ``squeeze`` as is), so results never alias inputs.
- ``pad``: ``padding_config`` is one ``(low, high, interior)`` per axis; negative low/high
  crop (after interior padding), as XLA. A Python scalar padding value takes the operand's
  dtype (it is weakly typed, NEP 50); any other must match it.
- ``iota`` takes integer and floating dtypes (not bool). It has no operands, so its jvp
  is zero and its batch rule is never called.
- Impls whose NumPy code would quietly accept bad input (``np.concatenate`` promotes, a
  padding value is cast) first run the abstract eval (:func:`validate`): eager ``bind``
  calls the impl directly, and must still raise the primitive's own error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval, shaped_aval
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
    ok = ok and all(x.shape[i] in (1, shape[d]) for i, d in enumerate(broadcast_dimensions))
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
    in_shape = x.aval.shape
    new_axes = tuple(d for d in range(len(shape)) if d not in broadcast_dimensions)
    expanded_axes = tuple(
        d for i, d in enumerate(broadcast_dimensions) if in_shape[i] == 1 and shape[d] != 1
    )
    axes = tuple(sorted(new_axes + expanded_axes))
    summed = lax.reduce_sum(ct, axes) if axes else ct
    # Only the size-1 axes that were expanded need putting back (no no-op reshape).
    return [summed if get_aval(summed).shape == tuple(in_shape) else reshape(summed, in_shape)]


def _broadcast_in_dim_batch(args, dims, *, shape, broadcast_dimensions):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    size = get_aval(x).shape[0]
    return broadcast_in_dim(x, (size, *shape), (0, *(b + 1 for b in broadcast_dimensions))), 0


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
        if get_aval(fill_value).dtype != dtype:
            fill_value = lax.convert_element_type(fill_value, dtype)
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


def validate(prim: Primitive, *args: Any, **params: Any) -> None:
    """Run ``prim``'s abstract eval on concrete inputs.

    Eager ``bind`` calls the impl directly; impls whose NumPy code would quietly accept bad
    input (clip a slice bound, cast a padding value, promote dtypes) call this first.
    """
    prim.abstract_eval(*(shaped_aval(a) for a in args), **params)


def canonicalize_axis(name: str, axis: int, ndim: int) -> int:
    """``axis`` in ``[0, ndim)`` (negative counts from the end), or a ValueError."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}: axis {axis} is out of range for an array of rank {ndim}; "
            f"give an axis in [{-ndim}, {ndim})"
        )
    return axis % ndim if ndim else axis


def _check_dims(name: str, x: ShapedArray, dims: tuple[int, ...], rank: int | None = None):
    rank = x.ndim if rank is None else rank
    if any(not 0 <= d < rank for d in dims) or len(set(dims)) != len(dims):
        raise ValueError(
            f"{name}: dimensions {dims} are invalid for {x.str_short()}; give distinct "
            f"axes in [0, {rank})"
        )


def _insert_unbatched(dims: tuple[int, ...], bdim: int) -> tuple[int, ...]:
    """Axes of the unbatched operand, renumbered for an operand batched at ``bdim``."""
    return tuple(d + (d >= bdim) for d in dims)


# -- squeeze
squeeze_p = Primitive("squeeze")


def squeeze(array: Any, dimensions: tuple[int, ...]) -> Any:
    """Remove the size-1 axes ``dimensions`` (negative axes count from the end)."""
    ndim = get_aval(array).ndim
    dims = tuple(sorted(canonicalize_axis("squeeze", d, ndim) for d in dimensions))
    return squeeze_p.bind(array, dimensions=dims)


@squeeze_p.def_abstract_eval
def _squeeze_abstract_eval(x, *, dimensions):
    _check_dims("squeeze", x, dimensions)
    for d in dimensions:
        if x.shape[d] != 1:
            raise ValueError(
                f"squeeze: dimension {d} of {x.str_short()} has size {x.shape[d]}, not 1; "
                "only size-1 axes can be squeezed (slice or reshape instead)"
            )
    return ShapedArray(tuple(s for i, s in enumerate(x.shape) if i not in dimensions), x.dtype)


@squeeze_p.def_impl
def _squeeze_impl(x, *, dimensions):
    return np.array(np.squeeze(np.asarray(x), axis=dimensions))


def _squeeze_batch(args, dims, *, dimensions):
    (x,), (d,) = args, dims
    out_d = d - sum(a < d for a in dimensions)
    return squeeze(x, _insert_unbatched(dimensions, d)), out_d


ad.deflinear(squeeze_p, lambda ct, x, *, dimensions: [expand_dims(ct, dimensions)])
batching.primitive_batchers[squeeze_p] = _squeeze_batch

# -- expand_dims (a primitive here; JAX spells it as broadcast_in_dim)
expand_dims_p = Primitive("expand_dims")


def expand_dims(array: Any, dimensions: tuple[int, ...]) -> Any:
    """Insert size-1 axes so that they sit at ``dimensions`` of the result."""
    ndim_out = get_aval(array).ndim + len(dimensions)
    dims = [canonicalize_axis("expand_dims", d, ndim_out) for d in dimensions]
    if len(set(dims)) != len(dims):
        raise ValueError(f"expand_dims: repeated axis in dimensions {tuple(dimensions)}")
    return expand_dims_p.bind(array, dimensions=tuple(sorted(dims)))


@expand_dims_p.def_abstract_eval
def _expand_dims_abstract_eval(x, *, dimensions):
    _check_dims("expand_dims", x, dimensions, x.ndim + len(dimensions))
    shape = list(x.shape)
    for d in sorted(dimensions):
        shape.insert(d, 1)
    return ShapedArray(tuple(shape), x.dtype)


@expand_dims_p.def_impl
def _expand_dims_impl(x, *, dimensions):
    return np.array(np.expand_dims(np.asarray(x), dimensions))


def _expand_dims_batch(args, dims, *, dimensions):
    (x,), (d,) = args, dims
    x = batching.moveaxis(x, d, 0)
    return expand_dims(x, tuple(a + 1 for a in dimensions)), 0


ad.deflinear(expand_dims_p, lambda ct, x, *, dimensions: [squeeze(ct, dimensions)])
batching.primitive_batchers[expand_dims_p] = _expand_dims_batch

# -- rev
rev_p = Primitive("rev")


def rev(operand: Any, dimensions: tuple[int, ...]) -> Any:
    """Reverse the order of elements along each axis in ``dimensions``."""
    ndim = get_aval(operand).ndim
    dims = tuple(sorted(canonicalize_axis("rev", d, ndim) for d in dimensions))
    return rev_p.bind(operand, dimensions=dims)


@rev_p.def_abstract_eval
def _rev_abstract_eval(x, *, dimensions):
    _check_dims("rev", x, dimensions)
    return ShapedArray(x.shape, x.dtype)


@rev_p.def_impl
def _rev_impl(x, *, dimensions):
    return np.array(np.flip(np.asarray(x), dimensions))


def _rev_batch(args, dims, *, dimensions):
    (x,), (d,) = args, dims
    return rev(x, _insert_unbatched(dimensions, d)), d


ad.deflinear(rev_p, lambda ct, x, *, dimensions: [rev(ct, dimensions)])
batching.primitive_batchers[rev_p] = _rev_batch

# -- iota
iota_p = Primitive("iota")


def iota(dtype: Any, size: int) -> Any:
    """``[0, 1, ..., size - 1]`` of ``dtype``."""
    return iota_p.bind(dtype=as_dtype(dtype), shape=(int(size),), dimension=0)


def broadcasted_iota(dtype: Any, shape: tuple[int, ...], dimension: int) -> Any:
    """An array of ``shape`` whose value at each position is its index along ``dimension``."""
    shape = tuple(int(s) for s in shape)
    dimension = canonicalize_axis("broadcasted_iota", dimension, len(shape))
    return iota_p.bind(dtype=as_dtype(dtype), shape=shape, dimension=dimension)


@iota_p.def_abstract_eval
def _iota_abstract_eval(*, dtype, shape, dimension):
    if dtype.kind not in "iuf":
        raise TypeError(
            f"iota: dtype {dtype.name} is not a number type; use an integer or floating dtype"
        )
    if any(s < 0 for s in shape) or not 0 <= dimension < len(shape):
        raise ValueError(
            f"iota: shape {shape} with dimension={dimension} is invalid; give non-negative "
            f"sizes and a dimension in [0, {len(shape)})"
        )
    return ShapedArray(shape, dtype)


@iota_p.def_impl
def _iota_impl(*, dtype, shape, dimension):
    validate(iota_p, dtype=dtype, shape=shape, dimension=dimension)
    line = np.arange(shape[dimension], dtype=dtype)
    expanded = [1] * len(shape)
    expanded[dimension] = shape[dimension]
    out = np.empty(shape, dtype)
    out[...] = line.reshape(expanded)
    return out


def _iota_batch(args, dims, **params):
    # iota has no operands, so the batching trace never calls this (nothing is batched).
    raise AssertionError("iota has no operands to batch")


ad.defjvp_zero(iota_p)
batching.primitive_batchers[iota_p] = _iota_batch

# -- concatenate
concatenate_p = Primitive("concatenate")


def concatenate(operands: Any, dimension: int) -> Any:
    """Join ``operands`` (same dtype and rank; equal sizes off ``dimension``) along it."""
    operands = list(operands)
    if not operands:
        raise ValueError("concatenate: needs at least one operand, got an empty sequence")
    ndim = get_aval(operands[0]).ndim
    if ndim == 0:
        raise ValueError("concatenate: cannot concatenate 0-d arrays; expand them to rank 1 first")
    dimension = canonicalize_axis("concatenate", dimension, ndim)
    return concatenate_p.bind(*operands, dimension=dimension)


@concatenate_p.def_abstract_eval
def _concatenate_abstract_eval(*xs, dimension):
    if not xs:
        raise ValueError("concatenate: needs at least one operand")
    x0 = xs[0]
    if not 0 <= dimension < x0.ndim:
        raise ValueError(
            f"concatenate: dimension {dimension} is out of range for {x0.str_short()}; "
            f"give a dimension in [0, {x0.ndim})"
        )
    for x in xs[1:]:
        if x.dtype != x0.dtype:
            raise TypeError(
                f"concatenate: operands {x0.str_short()} and {x.str_short()} have different "
                "dtypes; convert them to one dtype first (e.g. with `.astype`)"
            )
        if x.ndim != x0.ndim:
            raise ValueError(
                f"concatenate: operands {x0.str_short()} and {x.str_short()} have different "
                "ranks; reshape them to one rank first"
            )
        for i, (a, b) in enumerate(zip(x0.shape, x.shape, strict=True)):
            if i != dimension and a != b:
                raise ValueError(
                    f"concatenate: operands {x0.str_short()} and {x.str_short()} differ in "
                    f"axis {i} ({a} vs {b}), but only the concatenation axis {dimension} may "
                    "differ; reshape or slice them to match"
                )
    shape = list(x0.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return ShapedArray(tuple(shape), x0.dtype)


@concatenate_p.def_impl
def _concatenate_impl(*xs, dimension):
    validate(concatenate_p, *xs, dimension=dimension)
    return np.concatenate([np.asarray(x) for x in xs], axis=dimension)


def _concatenate_transpose(ct, *xs, dimension):
    cts = []
    start = 0
    for x in xs:
        size = (x.aval if ad.is_undefined_primal(x) else get_aval(x)).shape[dimension]
        if ad.is_undefined_primal(x):
            cts.append(lax.slice_in_dim(ct, start, start + size, axis=dimension))
        else:
            cts.append(None)
        start += size
    return cts


def _concatenate_batch(args, dims, *, dimension):
    size = batching.axis_size_of(args, dims)
    xs = [batching.bdim_at_front(x, d, size) for x, d in zip(args, dims, strict=True)]
    return concatenate_p.bind(*xs, dimension=dimension + 1), 0


ad.deflinear(concatenate_p, _concatenate_transpose)
batching.primitive_batchers[concatenate_p] = _concatenate_batch

# -- pad
pad_p = Primitive("pad")


def pad(operand: Any, padding_value: Any, padding_config: Any) -> Any:
    """Pad ``operand`` with the scalar ``padding_value``: ``padding_config`` gives
    ``(low, high, interior)`` per axis; negative low/high crop, interior goes between
    elements."""
    if type(padding_value) in (bool, int, float):
        padding_value = np.array(padding_value, get_aval(operand).dtype)[()]
    config = tuple((int(lo), int(hi), int(it)) for lo, hi, it in padding_config)
    return pad_p.bind(operand, padding_value, padding_config=config)


def _dilated(size: int, interior: int) -> int:
    return size + max(size - 1, 0) * interior


@pad_p.def_abstract_eval
def _pad_abstract_eval(x, padding_value, *, padding_config):
    if padding_value.dtype != x.dtype:
        raise TypeError(
            f"pad: operand {x.str_short()} and padding_value {padding_value.str_short()} "
            "must have one dtype; convert the padding value (e.g. `np.float32(0)`)"
        )
    if padding_value.ndim != 0:
        raise ValueError(f"pad: padding_value must be a scalar, got {padding_value.str_short()}")
    if len(padding_config) != x.ndim:
        raise ValueError(
            f"pad: padding_config has {len(padding_config)} entries for {x.str_short()}; "
            f"give one (low, high, interior) triple per axis ({x.ndim})"
        )
    shape = []
    for i, (d, (lo, hi, it)) in enumerate(zip(x.shape, padding_config, strict=True)):
        if it < 0:
            raise ValueError(
                f"pad: interior padding {it} of axis {i} is negative for {x.str_short()}; "
                "interior padding must be >= 0 (only low/high may be negative)"
            )
        size = lo + hi + _dilated(d, it)
        if size < 0:
            raise ValueError(
                f"pad: padding_config {padding_config} gives axis {i} of {x.str_short()} "
                f"the negative size {size}; crop less with negative low/high padding"
            )
        shape.append(size)
    return ShapedArray(tuple(shape), x.dtype)


@pad_p.def_impl
def _pad_impl(x, padding_value, *, padding_config):
    validate(pad_p, x, padding_value, padding_config=padding_config)
    x = np.asarray(x)
    # Dilate and pad by the positive amounts, then crop by the negative ones.
    grown = [
        max(lo, 0) + max(hi, 0) + _dilated(d, it)
        for d, (lo, hi, it) in zip(x.shape, padding_config, strict=True)
    ]
    out = np.full(grown, padding_value, dtype=x.dtype)
    inner = tuple(
        slice(max(lo, 0), max(lo, 0) + _dilated(d, it), it + 1)
        for d, (lo, hi, it) in zip(x.shape, padding_config, strict=True)
    )
    out[inner] = x
    crop = tuple(
        slice(-min(lo, 0), g + min(hi, 0))
        for g, (lo, hi, _) in zip(grown, padding_config, strict=True)
    )
    return np.array(out[crop])


def _pad_transpose(ct, x, padding_value, *, padding_config):
    ct_aval = get_aval(ct)
    # Undo low/high padding (re-growing what was cropped, with zeros), then drop interior.
    zero = np.zeros((), ct_aval.dtype)
    unpadded = pad(ct, zero, tuple((-lo, -hi, 0) for lo, hi, _ in padding_config))
    strides = tuple(it + 1 for _, _, it in padding_config)
    shape = get_aval(unpadded).shape
    t_x = lax.slice(unpadded, (0,) * len(shape), shape, strides)
    ct_x = t_x if ad.is_undefined_primal(x) else None
    ct_pv = None
    if ad.is_undefined_primal(padding_value):
        every = tuple(range(ct_aval.ndim))
        ct_pv = lax.sub(lax.reduce_sum(ct, every), lax.reduce_sum(t_x, every))
    return [ct_x, ct_pv]


def _pad_batch(args, dims, *, padding_config):
    (x, pv), (dx, dpv) = args, dims
    if dpv is None:
        config = list(padding_config)
        config.insert(dx, (0, 0, 0))
        return pad(x, pv, tuple(config)), dx
    # A batched padding value: pad with zeros, then select the padding value where a mask
    # (the padded positions) is true.
    size = batching.axis_size_of(args, dims)
    x = batching.bdim_at_front(x, dx, size)
    config = ((0, 0, 0), *padding_config)
    aval = get_aval(x)
    padded = pad(x, np.zeros((), aval.dtype), config)
    mask = pad(full(aval.shape, False, np.bool_), np.True_, config)
    out_shape = get_aval(padded).shape
    pv_full = broadcast_in_dim(pv, out_shape, (0,))
    return lax.select(mask, pv_full, padded), 0


ad.deflinear(pad_p, _pad_transpose)
batching.primitive_batchers[pad_p] = _pad_batch
