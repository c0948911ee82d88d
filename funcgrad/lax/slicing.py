"""Slicing primitives: static ``slice``, ``dynamic_slice`` and ``dynamic_update_slice``.

All three are linear in their array operands (the start indices of the dynamic ones are
integer operands, never differentiated). Dynamic start indices are clamped so that the
slice stays inside the operand, as in XLA and JAX; the public functions also wrap negative
indices (``allow_negative_indices=True``, JAX's default). Under ``vmap`` with batched start
indices the dynamic primitives become one ``gather`` / ``scatter`` in clip mode, whose
semantics are exactly this clamping.

Decisions, where JAX leaves room:

- ``slice`` keeps JAX's params (``strides=None`` means all ones) and takes non-negative
  bounds; ``slice_in_dim`` resolves ``None`` and negative bounds first.
- The start indices of ``dynamic_slice``/``dynamic_update_slice`` are 0-d integer operands
  of one dtype (as JAX). The public functions give Python ints that dtype (int64 when all
  are Python ints) and convert mismatched traced ones to the promoted integer dtype.
- Negative starts are wrapped (``i + dim``) by the public functions only
  (``allow_negative_indices``, per axis as in JAX); the primitives just clamp, so a start
  still negative after wrapping reads from 0.
- ``index_in_dim`` with a static out-of-range index raises ``IndexError``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, Tracer, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax.shape import (
    canonicalize_axis,
    concatenate,
    pad,
    reshape,
    squeeze,
    validate,
)

# -- slice
slice_p = Primitive("slice")


def slice(
    operand: Any,
    start_indices: Sequence[int],
    limit_indices: Sequence[int],
    strides: Sequence[int] | None = None,
) -> Any:
    """``operand[start:limit:stride]`` along every axis (static, non-negative bounds)."""
    return slice_p.bind(
        operand,
        start_indices=tuple(int(i) for i in start_indices),
        limit_indices=tuple(int(i) for i in limit_indices),
        strides=None if strides is None else tuple(int(s) for s in strides),
    )


@slice_p.def_abstract_eval
def _slice_abstract_eval(x, *, start_indices, limit_indices, strides):
    n = x.ndim
    for name, v in (("start_indices", start_indices), ("limit_indices", limit_indices)):
        if len(v) != n:
            raise ValueError(
                f"slice: {name} {v} has {len(v)} entries for {x.str_short()}; give one per "
                f"axis ({n})"
            )
    if strides is not None and len(strides) != n:
        raise ValueError(
            f"slice: strides {strides} has {len(strides)} entries for {x.str_short()}; give "
            f"one per axis ({n})"
        )
    if any(s < 0 for s in start_indices):
        raise ValueError(
            f"slice: start_indices {start_indices} are negative for {x.str_short()}; "
            "lax.slice takes non-negative bounds (use slice_in_dim for negative ones)"
        )
    if any(lim > d for lim, d in zip(limit_indices, x.shape, strict=True)):
        raise ValueError(
            f"slice: limit_indices {limit_indices} exceed the shape {x.str_short()}; "
            "each limit must be at most that axis's size"
        )
    if any(s > lim for s, lim in zip(start_indices, limit_indices, strict=True)):
        raise ValueError(
            f"slice: start_indices {start_indices} exceed limit_indices {limit_indices} for "
            f"{x.str_short()}; each start must be at most its limit"
        )
    strides = strides or (1,) * n
    if any(s <= 0 for s in strides):
        raise ValueError(
            f"slice: strides {strides} must be positive for {x.str_short()} (use rev to "
            "reverse an axis)"
        )
    shape = tuple(
        -(-(lim - s) // st)
        for s, lim, st in zip(start_indices, limit_indices, strides, strict=True)
    )
    return ShapedArray(shape, x.dtype)


@slice_p.def_impl
def _slice_impl(x, *, start_indices, limit_indices, strides):
    validate(slice_p, x, start_indices=start_indices, limit_indices=limit_indices, strides=strides)
    strides = strides or (1,) * len(start_indices)
    idx = tuple(
        builtins.slice(s, lim, st)
        for s, lim, st in zip(start_indices, limit_indices, strides, strict=True)
    )
    return np.array(np.asarray(x)[idx])


def _slice_transpose(ct, x, *, start_indices, limit_indices, strides):
    shape = x.aval.shape
    ct_shape = get_aval(ct).shape
    strides = strides or (1,) * len(shape)
    config = []
    for d, s, st, n in zip(shape, start_indices, strides, ct_shape, strict=True):
        # The last element the slice actually read, plus one (the limit may overshoot it).
        real_limit = s + (0 if n == 0 else 1 + (n - 1) * st)
        config.append((s, d - real_limit, st - 1))
    return [pad(ct, np.zeros((), x.aval.dtype), tuple(config))]


def _slice_batch(args, dims, *, start_indices, limit_indices, strides):
    (x,), (d,) = args, dims
    size = get_aval(x).shape[d]
    starts = list(start_indices)
    limits = list(limit_indices)
    starts.insert(d, 0)
    limits.insert(d, size)
    if strides is not None:
        strides = list(strides)
        strides.insert(d, 1)
    return slice(x, starts, limits, strides), d


ad.deflinear(slice_p, _slice_transpose)
batching.primitive_batchers[slice_p] = _slice_batch


def slice_in_dim(
    operand: Any,
    start_index: int | None,
    limit_index: int | None,
    stride: int = 1,
    axis: int = 0,
) -> Any:
    """``operand[..., start:limit:stride, ...]`` along ``axis`` (None and negative bounds
    as in Python slicing)."""
    shape = get_aval(operand).shape
    axis = canonicalize_axis("slice_in_dim", axis, len(shape))
    n = shape[axis]
    start = 0 if start_index is None else int(start_index)
    limit = n if limit_index is None else int(limit_index)
    start = start + n if start < 0 else start
    limit = limit + n if limit < 0 else limit
    starts = [0] * len(shape)
    limits = list(shape)
    strides = [1] * len(shape)
    starts[axis], limits[axis], strides[axis] = start, limit, int(stride)
    return slice(operand, starts, limits, strides)


def index_in_dim(operand: Any, index: int, axis: int = 0, keepdims: bool = True) -> Any:
    """``operand[..., index, ...]`` along ``axis`` for a static ``index`` (negative wraps)."""
    shape = get_aval(operand).shape
    axis = canonicalize_axis("index_in_dim", axis, len(shape))
    n = shape[axis]
    index = int(index)
    if not -n <= index < n:
        raise IndexError(
            f"index_in_dim: index {index} is out of bounds for axis {axis} with size {n}"
        )
    index = index + n if index < 0 else index
    out = slice_in_dim(operand, index, index + 1, 1, axis)
    return out if keepdims else squeeze(out, (axis,))


# ----------------------------------------------------------------------------------------
# Dynamic start indices


def _check_start_indices(name: str, x: ShapedArray, idx: Sequence[ShapedArray]) -> None:
    if len(idx) != x.ndim:
        raise ValueError(
            f"{name}: got {len(idx)} start indices for {x.str_short()}; give one scalar "
            f"index per axis ({x.ndim})"
        )
    for i in idx:
        if i.ndim != 0 or i.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: start indices must be integer scalars, got "
                f"{', '.join(a.str_short() for a in idx)}; pass one int per axis"
            )
    if len({i.dtype for i in idx}) > 1:
        raise TypeError(
            f"{name}: start indices must share one integer dtype, got "
            f"{', '.join(a.str_short() for a in idx)}; convert them with `.astype`"
        )


def _clamped_starts(shape, starts, sizes) -> list[int]:
    """XLA's rule: each start is clamped into ``[0, dim - size]``."""
    return [int(min(max(int(s), 0), d - n)) for d, s, n in zip(shape, starts, sizes, strict=True)]


def _index_dtype(indices: Sequence[Any]) -> np.dtype:
    """The dtype the public functions give every start index (JAX promotes likewise)."""
    strong = [get_aval(i).dtype for i in indices if type(i) not in (int, bool)]
    return np.result_type(*strong) if strong else np.dtype(np.int64)


def _normalize_indices(
    name: str, shape: tuple[int, ...], start_indices: Any, allow_negative_indices: Any
) -> list[Any]:
    """One scalar integer index per axis, all of one dtype, negative ones wrapped."""
    if isinstance(start_indices, (np.ndarray, Tracer)):
        aval = get_aval(start_indices)
        if aval.ndim != 1:
            raise ValueError(f"{name}: start_indices must be 1-d, got {aval.str_short()}")
        start_indices = [index_in_dim(start_indices, i, 0, False) for i in range(aval.shape[0])]
    indices = list(start_indices)
    if len(indices) != len(shape):
        raise ValueError(
            f"{name}: got {len(indices)} start indices for an operand of shape {shape}; "
            f"give one per axis ({len(shape)})"
        )
    if isinstance(allow_negative_indices, bool):
        allow = [allow_negative_indices] * len(shape)
    else:
        allow = list(allow_negative_indices)
    dtype = _index_dtype(indices)
    out = []
    for i, d, wrap in zip(indices, shape, allow, strict=True):
        if not isinstance(i, Tracer):
            i = np.asarray(i)
            if i.dtype.kind not in "iu":
                raise TypeError(
                    f"{name}: start index {i.item()!r} ({i.dtype}) is not an integer; pass "
                    "integer start indices"
                )
            v = int(i)
            out.append(np.array(v + d if wrap and v < 0 else v, dtype)[()])
            continue
        if i.dtype != dtype:
            i = lax.convert_element_type(i, dtype)
        if wrap:
            i = lax.select(lax.lt(i, np.zeros((), dtype)), lax.add(i, np.array(d, dtype)[()]), i)
        out.append(i)
    return out


def _batched_starts(idx, dims, size):
    """Per-example scalar start indices as one ``[size, n]`` index array (a column per axis)."""
    cols = [
        reshape(batching.bdim_at_front(i, d, size), (size, 1))
        for i, d in zip(idx, dims, strict=True)
    ]
    return concatenate(cols, 1)


def _other_axes(ndim: int, axis: int | None) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i != axis)


# -- dynamic_slice
dynamic_slice_p = Primitive("dynamic_slice")


def dynamic_slice(
    operand: Any,
    start_indices: Any,
    slice_sizes: Sequence[int],
    *,
    allow_negative_indices: bool | Sequence[bool] = True,
) -> Any:
    """The ``slice_sizes`` block of ``operand`` at traced ``start_indices``; starts are
    clamped so the block stays in bounds (negative starts first count from the end)."""
    shape = get_aval(operand).shape
    idx = _normalize_indices("dynamic_slice", shape, start_indices, allow_negative_indices)
    return dynamic_slice_p.bind(operand, *idx, slice_sizes=tuple(int(s) for s in slice_sizes))


@dynamic_slice_p.def_abstract_eval
def _dynamic_slice_abstract_eval(x, *idx, slice_sizes):
    _check_start_indices("dynamic_slice", x, idx)
    if len(slice_sizes) != x.ndim or any(
        not 0 <= n <= d for n, d in zip(slice_sizes, x.shape, strict=True)
    ):
        raise ValueError(
            f"dynamic_slice: slice_sizes {slice_sizes} do not fit {x.str_short()}; give one "
            "size per axis, each between 0 and that axis's size"
        )
    return ShapedArray(tuple(slice_sizes), x.dtype)


@dynamic_slice_p.def_impl
def _dynamic_slice_impl(x, *idx, slice_sizes):
    validate(dynamic_slice_p, x, *idx, slice_sizes=slice_sizes)
    x = np.asarray(x)
    starts = _clamped_starts(x.shape, idx, slice_sizes)
    window = tuple(builtins.slice(s, s + n) for s, n in zip(starts, slice_sizes, strict=True))
    return np.array(x[window])


def _dynamic_slice_jvp(primals, tangents, *, slice_sizes):
    x, *idx = primals
    out = dynamic_slice_p.bind(x, *idx, slice_sizes=slice_sizes)
    t = tangents[0]
    if type(t) is ad.Zero:
        return out, ad.Zero(get_aval(out).strip())
    return out, dynamic_slice_p.bind(t, *idx, slice_sizes=slice_sizes)


def _dynamic_slice_transpose(ct, x, *idx, slice_sizes):
    assert ad.is_undefined_primal(x), "dynamic_slice is linear in its operand only"
    zeros = ad.zeros_like_aval(x.aval)
    return [dynamic_update_slice_p.bind(zeros, ct, *idx), *([None] * len(idx))]


def _dynamic_slice_batch(args, dims, *, slice_sizes):
    x, *idx = args
    dx, *didx = dims
    if all(d is None for d in didx):
        # Only the operand is batched: slice the whole batch axis, from 0.
        starts = list(idx)
        sizes = list(slice_sizes)
        zero_dtype = get_aval(idx[0]).dtype if idx else np.dtype(np.int64)
        starts.insert(dx, np.zeros((), zero_dtype))
        sizes.insert(dx, get_aval(x).shape[dx])
        return dynamic_slice_p.bind(x, *starts, slice_sizes=tuple(sizes)), dx
    # Per-example start indices: one gather in clip mode, whose clamping is exactly
    # dynamic_slice's. A batched operand keeps its batch axis as a gather batching axis.
    size = batching.axis_size_of(args, dims)
    starts = _batched_starts(idx, didx, size)
    n = len(slice_sizes)
    sizes = list(slice_sizes)
    if dx is None:
        dnums = lax.indexing.GatherDimensionNumbers(
            offset_dims=tuple(range(1, n + 1)),
            collapsed_slice_dims=(),
            start_index_map=tuple(range(n)),
        )
    else:
        sizes.insert(dx, 1)
        dnums = lax.indexing.GatherDimensionNumbers(
            offset_dims=tuple(range(1, n + 1)),
            collapsed_slice_dims=(),
            start_index_map=_other_axes(n + 1, dx),
            operand_batching_dims=(dx,),
            start_indices_batching_dims=(0,),
        )
    mode = lax.indexing.GatherScatterMode.CLIP
    return lax.indexing.gather(x, starts, dnums, tuple(sizes), mode=mode), 0


ad.primitive_jvps[dynamic_slice_p] = _dynamic_slice_jvp
ad.primitive_transposes[dynamic_slice_p] = _dynamic_slice_transpose
batching.primitive_batchers[dynamic_slice_p] = _dynamic_slice_batch


def dynamic_slice_in_dim(
    operand: Any,
    start_index: Any,
    slice_size: int,
    axis: int = 0,
    *,
    allow_negative_indices: bool = True,
) -> Any:
    """``operand[..., start:start + slice_size, ...]`` along ``axis``, traced ``start``."""
    shape = get_aval(operand).shape
    axis = canonicalize_axis("dynamic_slice_in_dim", axis, len(shape))
    starts: list[Any] = [0] * len(shape)
    sizes = list(shape)
    starts[axis] = start_index
    sizes[axis] = int(slice_size)
    allow = [False] * len(shape)
    allow[axis] = allow_negative_indices
    return dynamic_slice(operand, starts, sizes, allow_negative_indices=allow)


def dynamic_index_in_dim(
    operand: Any,
    index: Any,
    axis: int = 0,
    keepdims: bool = True,
    *,
    allow_negative_indices: bool = True,
) -> Any:
    """``operand[..., index, ...]`` along ``axis`` for a traced ``index`` (clamped)."""
    ndim = get_aval(operand).ndim
    axis = canonicalize_axis("dynamic_index_in_dim", axis, ndim)
    out = dynamic_slice_in_dim(
        operand, index, 1, axis, allow_negative_indices=allow_negative_indices
    )
    return out if keepdims else squeeze(out, (axis,))


# -- dynamic_update_slice
dynamic_update_slice_p = Primitive("dynamic_update_slice")


def dynamic_update_slice(
    operand: Any,
    update: Any,
    start_indices: Any,
    *,
    allow_negative_indices: bool | Sequence[bool] = True,
) -> Any:
    """``operand`` with the block at traced ``start_indices`` replaced by ``update``; starts
    are clamped so the block stays in bounds (negative starts first count from the end)."""
    shape = get_aval(operand).shape
    idx = _normalize_indices("dynamic_update_slice", shape, start_indices, allow_negative_indices)
    return dynamic_update_slice_p.bind(operand, update, *idx)


@dynamic_update_slice_p.def_abstract_eval
def _dynamic_update_slice_abstract_eval(x, update, *idx):
    if update.dtype != x.dtype:
        raise TypeError(
            f"dynamic_update_slice: operand {x.str_short()} and update "
            f"{update.str_short()} must have one dtype; convert the update with `.astype`"
        )
    if update.ndim != x.ndim or any(u > d for u, d in zip(update.shape, x.shape, strict=True)):
        raise ValueError(
            f"dynamic_update_slice: update {update.str_short()} does not fit in operand "
            f"{x.str_short()}; it needs the operand's rank and no larger size on any axis"
        )
    _check_start_indices("dynamic_update_slice", x, idx)
    return ShapedArray(x.shape, x.dtype)


@dynamic_update_slice_p.def_impl
def _dynamic_update_slice_impl(x, update, *idx):
    validate(dynamic_update_slice_p, x, update, *idx)
    out = np.array(x, copy=True)
    update = np.asarray(update)
    starts = _clamped_starts(out.shape, idx, update.shape)
    window = tuple(builtins.slice(s, s + n) for s, n in zip(starts, update.shape, strict=True))
    out[window] = update
    return out


def _dynamic_update_slice_jvp(primals, tangents):
    x, update, *idx = primals
    tx, tu = tangents[:2]
    out = dynamic_update_slice_p.bind(x, update, *idx)
    if type(tx) is ad.Zero and type(tu) is ad.Zero:
        return out, ad.Zero(get_aval(out).strip())
    t = dynamic_update_slice_p.bind(ad.instantiate_zeros(tx), ad.instantiate_zeros(tu), *idx)
    return out, t


def _dynamic_update_slice_transpose(ct, x, update, *idx):
    upd_aval = update.aval if ad.is_undefined_primal(update) else get_aval(update)
    ct_x = ct_u = None
    if ad.is_undefined_primal(x):
        ct_x = dynamic_update_slice_p.bind(ct, ad.zeros_like_aval(upd_aval), *idx)
    if ad.is_undefined_primal(update):
        ct_u = dynamic_slice_p.bind(ct, *idx, slice_sizes=upd_aval.shape)
    return [ct_x, ct_u, *([None] * len(idx))]


def _dynamic_update_slice_batch(args, dims):
    x, update, *idx = args
    dx, du, *didx = dims
    size = batching.axis_size_of(args, dims)
    if all(d is None for d in didx):
        # Only data is batched: the update gets the operand's batch axis (broadcast if it
        # has none), and the whole batch axis is updated, from index 0.
        if dx is None:
            x, dx = batching.bdim_at_front(x, None, size), 0
        update = batching.move_batch_axis(update, du, dx, size)
        zero_dtype = get_aval(idx[0]).dtype if idx else np.dtype(np.int64)
        starts = list(idx)
        starts.insert(dx, np.zeros((), zero_dtype))
        return dynamic_update_slice_p.bind(x, update, *starts), dx
    # Per-example start indices: one scatter in clip mode, whose clamping is exactly
    # dynamic_update_slice's. Operand and update keep their batch axes (as scatter batching
    # axes); an unbatched one is broadcast, since every example writes its own copy.
    starts = _batched_starts(idx, didx, size)
    if dx is None:
        x, dx = batching.bdim_at_front(x, None, size), 0
    if du is None:
        update, du = batching.bdim_at_front(update, None, size), 0
    n = len(idx)
    dnums = lax.indexing.ScatterDimensionNumbers(
        update_window_dims=_other_axes(n + 1, du),
        inserted_window_dims=(),
        scatter_dims_to_operand_dims=_other_axes(n + 1, dx),
        operand_batching_dims=(dx,),
        scatter_indices_batching_dims=(0,),
    )
    mode = lax.indexing.GatherScatterMode.CLIP
    out = lax.indexing.scatter(x, starts, update, dnums, unique_indices=True, mode=mode)
    return out, dx


ad.primitive_jvps[dynamic_update_slice_p] = _dynamic_update_slice_jvp
ad.primitive_transposes[dynamic_update_slice_p] = _dynamic_update_slice_transpose
batching.primitive_batchers[dynamic_update_slice_p] = _dynamic_update_slice_batch


def dynamic_update_slice_in_dim(
    operand: Any,
    update: Any,
    start_index: Any,
    axis: int,
    *,
    allow_negative_indices: bool = True,
) -> Any:
    """Replace the block of ``operand`` at ``start_index`` along ``axis`` by ``update``."""
    ndim = get_aval(operand).ndim
    axis = canonicalize_axis("dynamic_update_slice_in_dim", axis, ndim)
    starts: list[Any] = [0] * ndim
    starts[axis] = start_index
    allow = [False] * ndim
    allow[axis] = allow_negative_indices
    return dynamic_update_slice(operand, update, starts, allow_negative_indices=allow)


def dynamic_update_index_in_dim(
    operand: Any,
    update: Any,
    index: Any,
    axis: int,
    *,
    allow_negative_indices: bool = True,
) -> Any:
    """Replace ``operand[..., index, ...]`` along ``axis`` by ``update`` (which may lack
    that axis)."""
    ndim = get_aval(operand).ndim
    axis = canonicalize_axis("dynamic_update_index_in_dim", axis, ndim)
    if get_aval(update).ndim == ndim - 1:
        update = lax.expand_dims(update, (axis,))
    return dynamic_update_slice_in_dim(
        operand, update, index, axis, allow_negative_indices=allow_negative_indices
    )
