"""Indexing primitives: ``gather`` and the scatter family, with XLA's/JAX's semantics.

``funcgrad.numpy`` indexing (``x[idx]``, ``x.at[idx].set/add/...``, ``take``,
``take_along_axis``) is expressed in these primitives, so their signatures, dimension
numbers and semantics are exactly JAX's ``lax.gather`` / ``lax.scatter*``:

gather(operand, indices, dimension_numbers, slice_sizes)
    The last axis of ``indices`` is the index vector; the other axes are *batch* axes.
    For each batch position ``G`` the start of a slice is ``indices[G]`` scattered into
    operand axes ``start_index_map`` (0 elsewhere); for ``operand_batching_dims[k]`` the
    start is ``G[start_indices_batching_dims[k]]`` (a batch axis shared by operand and
    indices, as in ``take_along_axis``). A slice of ``slice_sizes`` is read there; its
    ``collapsed_slice_dims`` and ``operand_batching_dims`` (size 1) are dropped, and the
    remaining slice axes land at output positions ``offset_dims`` (sorted); the batch axes
    fill the other output positions in order.
scatter*(operand, indices, updates, dimension_numbers)
    The mirror image: ``update_window_dims`` of ``updates`` are window axes, the others
    match the batch axes of ``indices``; ``inserted_window_dims`` are the size-1 operand
    axes a window does not have; ``scatter_dims_to_operand_dims`` maps the index vector.
    ``scatter`` replaces; ``scatter-add/-mul/-min/-max`` combine with the operand.

Out-of-bounds indices (decisions; JAX leaves them to ``mode``, NumPy raises IndexError):
    - ``GatherScatterMode.CLIP`` ("clip"): a start index is clamped so that the whole slice or
      window lies inside the operand. **The default of gather** (``mode=None``), matching what
      ``jnp`` indexing does for reads. Negative indices are not wrapped at this level
      (``funcgrad.numpy`` normalises ``-1`` before it gets here): they clamp to 0.
    - ``GatherScatterMode.FILL_OR_DROP`` ("fill" / "drop"): a gather slice that does not fit
      is filled with ``fill_value`` (default: NaN for floats, the minimum for signed ints, the
      maximum for unsigned ints, True for bools); a scatter window that does not fit is
      dropped whole. **The default of the scatter family** (``mode=None``), as ``jnp``'s
      ``.at[]`` updates.
    - ``GatherScatterMode.PROMISE_IN_BOUNDS``: accepted for JAX compatibility; evaluated as
      CLIP here (NumPy must not read out of bounds).
    Note that JAX's ``lax.gather`` itself defaults to FILL_OR_DROP; funcgrad's lax default
    is CLIP, the NumPy-like choice that never invents values.

Duplicate indices:
    - ``scatter`` (replace): the *last* update wins, in row-major order of (index batch
      position, window position). This is deterministic, so the jvp of ``scatter``
      (scatter the tangents the same way) is exact even with duplicates, and its transpose
      gives each losing update a zero cotangent (found with a scatter of update ids; skipped
      when ``unique_indices=True``, which, as in JAX, is a promise that is not checked).
    - ``scatter-add``: all updates add (``np.add.at``); the rules are exact.
    - ``scatter-mul`` is linear in its operand only, and transposes only there.
    - ``scatter-mul``: with ``unique_indices=True`` the jvp is JAX's rule
      (``x * scatter_add(0, idx, du)``, wrong if the promise is broken); otherwise a rule
      that handles repeated indices and zero updates (each update's derivative is the product
      of the *other* updates at its target). Its first derivative is exact everywhere; its
      second derivative is not where an update is exactly 0 and shares its target with
      another update (the zero tests are piecewise constant). JAX raises there instead.
    - ``scatter-min/-max``: the tangent of each output element is the average of the
      tangents of the values that attain the extremum (operand and/or updates), so ties
      share the derivative. scatter-min/-max have no transpose (they are not linear).

The impls evaluate on a copy of the operand (never mutating inputs) with NumPy fancy
indexing and ``ufunc.at``. Batching rules emit one gather/scatter: a batched operand
with unbatched indices becomes one more window dimension; batched indices add a batch
axis; both batched become an ``operand_batching_dims`` pair.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import ANY, check_dtype

# ----------------------------------------------------------------------------------------
# Modes and dimension numbers


class GatherScatterMode(enum.Enum):
    """How gather/scatter treat indices whose slice or window leaves the operand."""

    CLIP = 0
    FILL_OR_DROP = 1
    PROMISE_IN_BOUNDS = 2

    def __repr__(self) -> str:
        return f"GatherScatterMode.{self.name}"

    __str__ = __repr__

    @staticmethod
    def from_any(s: Any, default: GatherScatterMode | None = None) -> GatherScatterMode:
        """``"clip"``, ``"fill"``/``"drop"``, ``"promise_in_bounds"``, a mode, or None."""
        if isinstance(s, GatherScatterMode):
            return s
        if s is None:
            return GatherScatterMode.CLIP if default is None else default
        if s == "clip":
            return GatherScatterMode.CLIP
        if s in ("fill", "drop"):
            return GatherScatterMode.FILL_OR_DROP
        if s == "promise_in_bounds":
            return GatherScatterMode.PROMISE_IN_BOUNDS
        raise ValueError(
            f"unknown gather/scatter mode {s!r}; use 'clip', 'fill' (gather), 'drop' "
            "(scatter), 'promise_in_bounds' or a GatherScatterMode"
        )


class GatherDimensionNumbers(NamedTuple):
    """How the axes of ``operand``, ``indices`` and the output of a gather relate (as JAX)."""

    offset_dims: tuple[int, ...]
    collapsed_slice_dims: tuple[int, ...]
    start_index_map: tuple[int, ...]
    operand_batching_dims: tuple[int, ...] = ()
    start_indices_batching_dims: tuple[int, ...] = ()


class ScatterDimensionNumbers(NamedTuple):
    """How the axes of ``operand``, ``indices`` and ``updates`` of a scatter relate (as JAX)."""

    update_window_dims: tuple[int, ...]
    inserted_window_dims: tuple[int, ...]
    scatter_dims_to_operand_dims: tuple[int, ...]
    operand_batching_dims: tuple[int, ...] = ()
    scatter_indices_batching_dims: tuple[int, ...] = ()


def _int_tuple(xs: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in xs)


def _canonical_gather_dn(dn: Any) -> GatherDimensionNumbers:
    if not isinstance(dn, GatherDimensionNumbers):
        raise TypeError(
            f"gather: dimension_numbers must be a GatherDimensionNumbers, got {dn!r}; build "
            "one with funcgrad.lax.GatherDimensionNumbers(offset_dims=..., "
            "collapsed_slice_dims=..., start_index_map=...)"
        )
    return GatherDimensionNumbers(*map(_int_tuple, dn))


def _canonical_scatter_dn(name: str, dn: Any) -> ScatterDimensionNumbers:
    if not isinstance(dn, ScatterDimensionNumbers):
        raise TypeError(
            f"{name}: dimension_numbers must be a ScatterDimensionNumbers, got {dn!r}; build "
            "one with funcgrad.lax.ScatterDimensionNumbers(update_window_dims=..., "
            "inserted_window_dims=..., scatter_dims_to_operand_dims=...)"
        )
    return ScatterDimensionNumbers(*map(_int_tuple, dn))


def _gather_dn_of_scatter(dn: ScatterDimensionNumbers) -> GatherDimensionNumbers:
    """The gather that reads, for each update element, the operand element it targets."""
    return GatherDimensionNumbers(
        offset_dims=dn.update_window_dims,
        collapsed_slice_dims=dn.inserted_window_dims,
        start_index_map=dn.scatter_dims_to_operand_dims,
        operand_batching_dims=dn.operand_batching_dims,
        start_indices_batching_dims=dn.scatter_indices_batching_dims,
    )


def _scatter_dn_of_gather(dn: GatherDimensionNumbers) -> ScatterDimensionNumbers:
    return ScatterDimensionNumbers(
        update_window_dims=dn.offset_dims,
        inserted_window_dims=dn.collapsed_slice_dims,
        scatter_dims_to_operand_dims=dn.start_index_map,
        operand_batching_dims=dn.operand_batching_dims,
        scatter_indices_batching_dims=dn.start_indices_batching_dims,
    )


def _scatter_window_sizes(
    rank: int, updates_shape: tuple[int, ...], dn: ScatterDimensionNumbers
) -> tuple[int, ...]:
    """Window size along every operand axis (1 for inserted and batching axes)."""
    sizes = []
    pos = 0
    for d in range(rank):
        if d in dn.inserted_window_dims or d in dn.operand_batching_dims:
            sizes.append(1)
        else:
            w = dn.update_window_dims[pos] if pos < len(dn.update_window_dims) else None
            sizes.append(updates_shape[w] if w is not None and w < len(updates_shape) else -1)
            pos += 1
    return tuple(sizes)


def default_fill_value(dtype: np.dtype) -> Any:
    """JAX's fill for out-of-bounds gathers: NaN, the int minimum/maximum, or True."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "i":
        return int(np.iinfo(dtype).min)
    if dtype.kind == "u":
        return int(np.iinfo(dtype).max)
    return True


# ----------------------------------------------------------------------------------------
# Shared validation


def _check_mode(name: str, mode: Any) -> None:
    if not isinstance(mode, GatherScatterMode):
        raise TypeError(
            f"{name}: mode must be a GatherScatterMode, got {mode!r}; bind through "
            f"funcgrad.lax.{name.replace('-', '_')}, which converts 'clip'/'fill'/'drop', or "
            "pass GatherScatterMode.from_any(mode)"
        )


def _sorted_unique(dims: tuple[int, ...]) -> bool:
    return all(a < b for a, b in zip(dims, dims[1:], strict=False))


def _check_index_dims(
    fail,
    operand: ShapedArray,
    indices: ShapedArray,
    index_map: tuple[int, ...],
    window_dropped: tuple[int, ...],
    map_name: str,
    dropped_name: str,
    obd: tuple[int, ...],
    ibd: tuple[int, ...],
    ibd_name: str,
) -> None:
    """Checks shared by gather and scatter on the operand/indices side."""
    rank = operand.ndim
    if indices.dtype.kind not in "iu":
        raise TypeError(
            fail("indices must have an integer dtype; convert them with `.astype(int32)`")
        )
    if indices.ndim < 1:
        raise ValueError(
            fail(
                "indices must have rank >= 1 (the last axis is the index "
                "vector); add a trailing axis of size 1"
            )
        )
    if len(index_map) != indices.shape[-1]:
        raise ValueError(
            fail(
                f"{map_name} has {len(index_map)} entries but the index vector (last axis of "
                f"indices) has size {indices.shape[-1]}; give one operand axis per index component"
            )
        )
    for name, dims in (
        (map_name, index_map),
        (dropped_name, window_dropped),
        ("operand_batching_dims", obd),
    ):
        if any(not 0 <= d < rank for d in dims):
            raise ValueError(fail(f"{name} {dims} out of range for operand rank {rank}"))
    if len(set(index_map)) != len(index_map):
        raise ValueError(fail(f"{map_name} {index_map} repeats an operand axis"))
    if not _sorted_unique(window_dropped):
        raise ValueError(fail(f"{dropped_name} {window_dropped} must be sorted and distinct"))
    if not _sorted_unique(obd):
        raise ValueError(fail(f"operand_batching_dims {obd} must be sorted and distinct"))
    if set(window_dropped) & set(obd):
        raise ValueError(fail(f"{dropped_name} and operand_batching_dims share axes"))
    if set(index_map) & set(obd):
        raise ValueError(
            fail(
                f"{map_name} and operand_batching_dims share axes; a batching "
                "axis is indexed by its batch position, not by indices"
            )
        )
    if len(obd) != len(ibd):
        raise ValueError(
            fail(
                f"operand_batching_dims {obd} and {ibd_name} {ibd} differ in "
                "length; pair each operand batching axis with an indices axis"
            )
        )
    if any(not 0 <= d < indices.ndim - 1 for d in ibd) or len(set(ibd)) != len(ibd):
        raise ValueError(
            fail(
                f"{ibd_name} {ibd} must be distinct batch axes of indices, in "
                f"[0, {indices.ndim - 1}) (not the index-vector axis)"
            )
        )
    for o, i in zip(obd, ibd, strict=True):
        if operand.shape[o] != indices.shape[i]:
            raise ValueError(
                fail(
                    f"operand batching axis {o} has size {operand.shape[o]} but indices axis {i} "
                    f"has size {indices.shape[i]}; paired batching axes must have equal sizes"
                )
            )


# ----------------------------------------------------------------------------------------
# Shared NumPy evaluation


def _aval(x: np.ndarray) -> ShapedArray:
    return ShapedArray(x.shape, x.dtype)


class _Plan(NamedTuple):
    """Vectorised addressing of every slice/window of a gather or scatter.

    Operand axes named by the index map or the batching dims are *indexed*: each batch
    position has a start (clamped, or checked for FILL_OR_DROP) plus window offsets. Every
    other axis starts at 0, so it is read as the basic slice ``[:window]`` (a view, no index
    arrays): ``x[i]`` on a matrix indexes one axis and slices the other.
    """

    indexed: list[int]  # operand axes addressed by index arrays
    static: list[int]  # operand axes taken as ``[:window]``
    positions: list[np.ndarray]  # per indexed axis, broadcastable to bshape + window[indexed]
    valid: np.ndarray | None  # FILL_OR_DROP: bool[bshape], which slices fit


def _plan(
    indices: np.ndarray,
    operand_shape: tuple[int, ...],
    index_map: tuple[int, ...],
    obd: tuple[int, ...],
    ibd: tuple[int, ...],
    window: tuple[int, ...],
    mode: GatherScatterMode,
) -> _Plan:
    bshape = indices.shape[:-1]
    nb = len(bshape)
    starts = {}
    for k, d in enumerate(index_map):
        starts[d] = indices[..., k].astype(np.intp)
    for o, i in zip(obd, ibd, strict=True):
        shape = [1] * nb
        shape[i] = bshape[i]
        starts[o] = np.broadcast_to(np.arange(bshape[i]).reshape(shape), bshape)
    indexed = sorted(starts)
    static = [d for d in range(len(operand_shape)) if d not in starts]
    valid = None
    for d in indexed:
        hi = operand_shape[d] - window[d]
        if mode is GatherScatterMode.FILL_OR_DROP:
            ok = (starts[d] >= 0) & (starts[d] <= hi)
            valid = ok if valid is None else valid & ok
        else:
            starts[d] = np.clip(starts[d], 0, max(hi, 0))
    if valid is not None:
        for d in indexed:
            starts[d] = np.where(valid, starts[d], 0)
    k = len(indexed)
    positions = []
    for j, d in enumerate(indexed):
        wshape = [1] * k
        wshape[j] = window[d]
        positions.append(
            starts[d].reshape(bshape + (1,) * k) + np.arange(window[d]).reshape(wshape)
        )
    return _Plan(indexed, static, positions, valid)


def _static_view(x: np.ndarray, plan: _Plan, window: tuple[int, ...]) -> np.ndarray:
    """``x`` with static axes cut to their window, axes ordered indexed then static."""
    cut = tuple(slice(0, window[d]) if d in plan.static else slice(None) for d in range(x.ndim))
    return x[cut].transpose(plan.indexed + plan.static)


# ----------------------------------------------------------------------------------------
# gather

gather_p = Primitive("gather")


def gather(
    operand: Any,
    start_indices: Any,
    dimension_numbers: GatherDimensionNumbers,
    slice_sizes: tuple[int, ...],
    *,
    unique_indices: bool = False,
    indices_are_sorted: bool = False,
    mode: str | GatherScatterMode | None = None,
    fill_value: Any = None,
) -> Any:
    """Read slices of ``operand`` at ``start_indices`` (JAX's ``lax.gather``; mode: clip)."""
    return gather_p.bind(
        operand,
        start_indices,
        dimension_numbers=_canonical_gather_dn(dimension_numbers),
        slice_sizes=_int_tuple(slice_sizes),
        indices_are_sorted=bool(indices_are_sorted),
        unique_indices=bool(unique_indices),
        mode=GatherScatterMode.from_any(mode, GatherScatterMode.CLIP),
        fill_value=fill_value,
    )


def _gather_out_shape(
    indices_shape: tuple[int, ...], dn: GatherDimensionNumbers, slice_sizes: tuple[int, ...]
) -> tuple[int, ...]:
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    offset_sizes = [s for d, s in enumerate(slice_sizes) if d not in dropped]
    batch_sizes = iter(indices_shape[:-1])
    offsets = iter(offset_sizes)
    rank = len(indices_shape) - 1 + len(dn.offset_dims)
    return tuple(next(offsets) if p in dn.offset_dims else next(batch_sizes) for p in range(rank))


@gather_p.def_abstract_eval
def _gather_abstract_eval(
    operand,
    indices,
    *,
    dimension_numbers,
    slice_sizes,
    indices_are_sorted,
    unique_indices,
    mode,
    fill_value,
):
    dn = dimension_numbers

    def fail(why):
        return (
            f"gather: {why} (operand {operand.str_short()}, indices {indices.str_short()}, "
            f"slice_sizes={slice_sizes}, {dn})"
        )

    check_dtype("gather", operand, ANY)
    _check_mode("gather", mode)
    _check_index_dims(
        fail,
        operand,
        indices,
        dn.start_index_map,
        dn.collapsed_slice_dims,
        "start_index_map",
        "collapsed_slice_dims",
        dn.operand_batching_dims,
        dn.start_indices_batching_dims,
        "start_indices_batching_dims",
    )
    rank = operand.ndim
    if len(slice_sizes) != rank:
        raise ValueError(fail(f"slice_sizes needs one entry per operand axis ({rank})"))
    for d, (s, n) in enumerate(zip(slice_sizes, operand.shape, strict=True)):
        if not 0 <= s <= n:
            raise ValueError(
                fail(
                    f"slice size {s} on axis {d} does not fit the operand's size {n}; use sizes in "
                    f"[0, {n}]"
                )
            )
    for name, dims in (
        ("collapsed_slice_dims", dn.collapsed_slice_dims),
        ("operand_batching_dims", dn.operand_batching_dims),
    ):
        for d in dims:
            if slice_sizes[d] != 1:
                raise ValueError(
                    fail(
                        f"{name} axis {d} has slice size {slice_sizes[d]}; "
                        "collapsed and batching axes need slice size 1"
                    )
                )
    n_window = rank - len(dn.collapsed_slice_dims) - len(dn.operand_batching_dims)
    if len(dn.offset_dims) != n_window:
        raise ValueError(
            fail(
                f"offset_dims has {len(dn.offset_dims)} entries but the slice keeps {n_window} "
                "axes (operand rank minus collapsed_slice_dims and operand_batching_dims)"
            )
        )
    out_rank = indices.ndim - 1 + n_window
    if not _sorted_unique(dn.offset_dims) or any(not 0 <= d < out_rank for d in dn.offset_dims):
        raise ValueError(
            fail(f"offset_dims {dn.offset_dims} must be sorted, distinct and in [0, {out_rank})")
        )
    return ShapedArray(_gather_out_shape(indices.shape, dn, slice_sizes), operand.dtype)


@gather_p.def_impl
def _gather_impl(
    operand,
    indices,
    *,
    dimension_numbers,
    slice_sizes,
    indices_are_sorted,
    unique_indices,
    mode,
    fill_value,
):
    dn = dimension_numbers
    operand, indices = np.asarray(operand), np.asarray(indices)
    # Eager binds skip abstract eval: check here (cheap next to the indexing itself).
    _gather_abstract_eval(
        _aval(operand),
        _aval(indices),
        dimension_numbers=dn,
        slice_sizes=slice_sizes,
        indices_are_sorted=indices_are_sorted,
        unique_indices=unique_indices,
        mode=mode,
        fill_value=fill_value,
    )
    bshape = indices.shape[:-1]
    nb = len(bshape)
    window = tuple(slice_sizes)
    plan = _plan(
        indices,
        operand.shape,
        dn.start_index_map,
        dn.operand_batching_dims,
        dn.start_indices_batching_dims,
        window,
        mode,
    )
    view = _static_view(operand, plan, window)
    if plan.indexed:
        full = view[tuple(plan.positions)]  # fresh: bshape + window[indexed] + window[static]
    else:
        full = np.broadcast_to(view, bshape + view.shape)
    if plan.valid is not None and not plan.valid.all():
        fill = default_fill_value(operand.dtype) if fill_value is None else fill_value
        full[~plan.valid] = np.array(fill, operand.dtype)
    # Axis of ``full`` holding each operand axis; then the output's layout: batch axes at the
    # non-offset positions, kept slice axes (in operand order) at offset_dims, and the
    # dropped size-1 axes (collapsed, batching) last, to be reshaped away.
    axis_of = {d: nb + j for j, d in enumerate(plan.indexed + plan.static)}
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    kept = iter(d for d in range(operand.ndim) if d not in dropped)
    batch = iter(range(nb))
    out_rank = nb + len(dn.offset_dims)
    perm = [axis_of[next(kept)] if p in dn.offset_dims else next(batch) for p in range(out_rank)]
    perm += [axis_of[d] for d in sorted(dropped)]
    out_shape = _gather_out_shape(indices.shape, dn, slice_sizes)
    out = full.transpose(perm).reshape(out_shape)
    if np.may_share_memory(out, operand):
        return out.copy()
    return np.asarray(out, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)


def _gather_jvp(g, operand, indices, *, fill_value, **params):
    # Filled (out-of-bounds) positions are constants: their tangent is 0.
    return gather_p.bind(g, indices, fill_value=0, **params)


def _gather_transpose(
    ct,
    operand,
    indices,
    *,
    dimension_numbers,
    slice_sizes,
    indices_are_sorted,
    unique_indices,
    mode,
    fill_value,
):
    if ad.is_undefined_primal(indices):
        raise NotImplementedError("gather is not linear in its indices")
    aval = operand.aval
    zeros = lax.full(aval.shape, 0, aval.dtype)
    out = scatter_add_p.bind(
        zeros,
        indices,
        ct,
        dimension_numbers=_scatter_dn_of_gather(dimension_numbers),
        indices_are_sorted=indices_are_sorted,
        unique_indices=unique_indices,
        mode=mode,
    )
    return [out, None]


def _insert_pos(positions: list[int], k: int) -> int:
    """Where to insert a new axis so that it becomes the ``k``-th of ``positions``' kind."""
    if k < len(positions):
        return positions[k]
    return positions[-1] + 1 if positions else 0


def _index_vector_last(indices: Any, idim: int) -> tuple[Any, int]:
    """Batched indices whose batch axis is not the index-vector (last) axis position."""
    if idim == get_aval(indices).ndim - 1:
        return batching.moveaxis(indices, idim, 0), 0
    return indices, idim


def _gather_batch(args, dims, *, dimension_numbers, slice_sizes, **params):
    operand, indices = args
    od, idim = dims
    dn = dimension_numbers
    if idim is not None:
        indices, idim = _index_vector_last(indices, idim)
    out_rank = len(get_aval(indices).shape) - 1 - (idim is not None) + len(dn.offset_dims)

    def shift(ds, at):
        return tuple(d + (d >= at) for d in ds)

    if od is not None:
        size = get_aval(operand).shape[od]
        collapsed = shift(dn.collapsed_slice_dims, od)
        index_map = shift(dn.start_index_map, od)
        obd = shift(dn.operand_batching_dims, od)
        sizes = slice_sizes[:od] + (size if idim is None else 1,) + slice_sizes[od:]
    else:
        collapsed, index_map = dn.collapsed_slice_dims, dn.start_index_map
        obd = dn.operand_batching_dims
        sizes = slice_sizes
    ibd = dn.start_indices_batching_dims
    if idim is not None:
        ibd = shift(ibd, idim)

    if idim is None:
        # Operand only: its batch axis is one more (full-size) window axis.
        dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
        r = sum(1 for d in range(od) if d not in dropped)
        out_dim = _insert_pos(list(dn.offset_dims), r)
        offset = shift(dn.offset_dims, out_dim)
        offset = tuple(sorted(offset + (out_dim,)))
    else:
        # Indices batched: one more batch axis, the idim-th among the output's batch axes.
        batch_positions = [p for p in range(out_rank) if p not in dn.offset_dims]
        out_dim = _insert_pos(batch_positions, idim)
        offset = shift(dn.offset_dims, out_dim)
        if od is not None:
            # Both: the two batch axes become an operand_batching_dims pair.
            pairs = sorted(zip(obd + (od,), ibd + (idim,), strict=True))
            obd = tuple(p[0] for p in pairs)
            ibd = tuple(p[1] for p in pairs)
    new_dn = GatherDimensionNumbers(offset, collapsed, index_map, obd, ibd)
    out = gather_p.bind(operand, indices, dimension_numbers=new_dn, slice_sizes=sizes, **params)
    return out, out_dim


ad.defjvp(gather_p, _gather_jvp, None)
ad.primitive_transposes[gather_p] = _gather_transpose
batching.primitive_batchers[gather_p] = _gather_batch


# ----------------------------------------------------------------------------------------
# The scatter family: shared abstract eval, impl and batching


def _scatter_abstract_eval(
    name,
    operand,
    indices,
    updates,
    *,
    dimension_numbers,
    indices_are_sorted,
    unique_indices,
    mode,
):
    dn = dimension_numbers

    def fail(why):
        return (
            f"{name}: {why} (operand {operand.str_short()}, indices {indices.str_short()}, "
            f"updates {updates.str_short()}, {dn})"
        )

    check_dtype(name, operand, ANY)
    _check_mode(name, mode)
    if updates.dtype != operand.dtype:
        raise TypeError(
            fail(
                "updates must have the operand's dtype; convert them with `.astype(operand.dtype)`"
            )
        )
    _check_index_dims(
        fail,
        operand,
        indices,
        dn.scatter_dims_to_operand_dims,
        dn.inserted_window_dims,
        "scatter_dims_to_operand_dims",
        "inserted_window_dims",
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
        "scatter_indices_batching_dims",
    )
    rank = operand.ndim
    n_window = rank - len(dn.inserted_window_dims) - len(dn.operand_batching_dims)
    if len(dn.update_window_dims) != n_window:
        raise ValueError(
            fail(
                f"update_window_dims has {len(dn.update_window_dims)} entries but a window has "
                f"{n_window} axes (operand rank minus inserted_window_dims and "
                "operand_batching_dims)"
            )
        )
    expected_rank = indices.ndim - 1 + n_window
    if updates.ndim != expected_rank:
        raise ValueError(
            fail(
                f"updates must have rank {expected_rank} (indices batch axes + window axes), got "
                f"rank {updates.ndim}"
            )
        )
    uwd = dn.update_window_dims
    if not _sorted_unique(uwd) or any(not 0 <= d < updates.ndim for d in uwd):
        raise ValueError(
            fail(f"update_window_dims {uwd} must be sorted, distinct and in [0, {updates.ndim})")
        )
    scatter_sizes = tuple(s for d, s in enumerate(updates.shape) if d not in uwd)
    if scatter_sizes != indices.shape[:-1]:
        raise ValueError(
            fail(
                f"the updates' scatter axes have sizes {scatter_sizes} but the indices' batch axes "
                f"have sizes {indices.shape[:-1]}; they must match"
            )
        )
    window = _scatter_window_sizes(rank, updates.shape, dn)
    for d, (w, n) in enumerate(zip(window, operand.shape, strict=True)):
        if w > n:
            raise ValueError(
                fail(
                    f"the window has size {w} on operand axis {d} of size {n}; "
                    "a window must fit inside the operand"
                )
            )
    return ShapedArray(operand.shape, operand.dtype)


def _scatter_impl(
    name,
    combine,
    operand,
    indices,
    updates,
    *,
    dimension_numbers,
    indices_are_sorted,
    unique_indices,
    mode,
):
    dn = dimension_numbers
    out = np.array(operand, copy=True, order="C")
    indices, updates = np.asarray(indices), np.asarray(updates)
    # Eager binds skip abstract eval: check here (cheap next to the scatter itself).
    _scatter_abstract_eval(
        name,
        _aval(out),
        _aval(indices),
        _aval(updates),
        dimension_numbers=dn,
        indices_are_sorted=indices_are_sorted,
        unique_indices=unique_indices,
        mode=mode,
    )
    rank = out.ndim
    bshape = indices.shape[:-1]
    nb = len(bshape)
    window = _scatter_window_sizes(rank, updates.shape, dn)
    plan = _plan(
        indices,
        out.shape,
        dn.scatter_dims_to_operand_dims,
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
        window,
        mode,
    )
    # Updates as (batch..., window axes in operand order), then indexed axes before static.
    scatter_axes = [d for d in range(updates.ndim) if d not in dn.update_window_dims]
    upd = updates.transpose(scatter_axes + list(dn.update_window_dims)).reshape(bshape + window)
    upd = upd.transpose([*range(nb), *(nb + d for d in plan.indexed + plan.static)])
    target = _static_view(out, plan, window)  # a view: writes land in ``out``
    if plan.indexed:
        positions = plan.positions
        w_idx = tuple(window[d] for d in plan.indexed)
    else:
        target = target[None]  # one pseudo-axis, always at index 0
        positions = [np.zeros(bshape + (1,), np.intp)]
        w_idx = (1,)
        upd = upd.reshape(bshape + (1,) + upd.shape[nb:])
    # One row per (batch position, indexed-window offset), in row-major order.
    pos = [np.broadcast_to(p, bshape + w_idx) for p in positions]
    if plan.valid is not None:
        pos = [p[plan.valid] for p in pos]  # drops whole windows that do not fit
        upd = upd[plan.valid]
    lead, n = pos[0].ndim, pos[0].size
    pos = [p.reshape(n) for p in pos]
    upd = upd.reshape((n,) + upd.shape[lead:])
    if combine is None:
        if pos[0].size > 1 and not unique_indices:
            # Replace; with repeated targets the last update (row-major order) wins.
            key = np.ravel_multi_index(pos, target.shape[: len(pos)])
            _, first_in_reversed = np.unique(key[::-1], return_index=True)
            last = key.size - 1 - first_in_reversed
            pos = [p[last] for p in pos]
            upd = upd[last]
        target[tuple(pos)] = upd
    else:
        combine.at(target, tuple(pos), upd)
    return out


def _batch_axis_at(x: Any, bdim: int | None, pos: int, size: int) -> Any:
    """``x`` with its batch axis at ``pos``; an unbatched ``x`` is broadcast straight there."""
    if bdim is not None:
        return batching.moveaxis(x, bdim, pos)
    aval = get_aval(x)
    shape = aval.shape[:pos] + (size,) + aval.shape[pos:]
    dims = tuple(d + (d >= pos) for d in range(aval.ndim))
    return lax.broadcast_in_dim(x, shape, dims)


def _scatter_batch(prim, args, dims, *, dimension_numbers, **params):
    operand, indices, updates = args
    od, idim, ud = dims
    dn = dimension_numbers
    size = batching.axis_size_of(args, dims)
    if od is None:
        operand = batching.bdim_at_front(operand, None, size)
        od = 0
    if idim is not None:
        indices, idim = _index_vector_last(indices, idim)

    def shift(ds, at):
        return tuple(d + (d >= at) for d in ds)

    inserted = shift(dn.inserted_window_dims, od)
    index_map = shift(dn.scatter_dims_to_operand_dims, od)
    obd = shift(dn.operand_batching_dims, od)
    ibd = dn.scatter_indices_batching_dims
    upd_rank = get_aval(updates).ndim - (ud is not None)
    if idim is None:
        # Indices unbatched: the operand's batch axis is one more (full-size) window axis.
        dropped = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
        r = sum(1 for d in range(od) if d not in dropped)
        upos = _insert_pos(list(dn.update_window_dims), r)
        uwd = tuple(sorted(shift(dn.update_window_dims, upos) + (upos,)))
    else:
        # Indices batched: a batching-axis pair (operand od, indices idim).
        scatter_positions = [p for p in range(upd_rank) if p not in dn.update_window_dims]
        upos = _insert_pos(scatter_positions, idim)
        uwd = shift(dn.update_window_dims, upos)
        pairs = sorted(zip(obd + (od,), shift(ibd, idim) + (idim,), strict=True))
        obd = tuple(p[0] for p in pairs)
        ibd = tuple(p[1] for p in pairs)
    updates = _batch_axis_at(updates, ud, upos, size)
    new_dn = ScatterDimensionNumbers(uwd, inserted, index_map, obd, ibd)
    return prim.bind(operand, indices, updates, dimension_numbers=new_dn, **params), od


def _scatter_primitive(name: str, combine: Any) -> Primitive:
    prim = Primitive(name)
    prim.def_abstract_eval(lambda *avals, **params: _scatter_abstract_eval(name, *avals, **params))
    prim.def_impl(lambda *args, **params: _scatter_impl(name, combine, *args, **params))
    batching.primitive_batchers[prim] = lambda args, dims, **params: _scatter_batch(
        prim, args, dims, **params
    )
    return prim


def _scatter_bind(
    prim,
    name,
    operand,
    scatter_indices,
    updates,
    dimension_numbers,
    indices_are_sorted,
    unique_indices,
    mode,
):
    return prim.bind(
        operand,
        scatter_indices,
        updates,
        dimension_numbers=_canonical_scatter_dn(name, dimension_numbers),
        indices_are_sorted=bool(indices_are_sorted),
        unique_indices=bool(unique_indices),
        mode=GatherScatterMode.from_any(mode, GatherScatterMode.FILL_OR_DROP),
    )


def _zeros(aval: ShapedArray) -> Any:
    return lax.full(aval.shape, 0, aval.dtype)


def _gather_targets(
    x, indices, updates_shape, *, dimension_numbers, indices_are_sorted, unique_indices, mode
):
    """For each update element of a scatter, the element of ``x`` it targets (0 if dropped)."""
    dn = dimension_numbers
    rank = get_aval(x).ndim
    return gather_p.bind(
        x,
        indices,
        dimension_numbers=_gather_dn_of_scatter(dn),
        slice_sizes=_scatter_window_sizes(rank, updates_shape, dn),
        indices_are_sorted=indices_are_sorted,
        unique_indices=unique_indices,
        mode=mode,
        fill_value=0,
    )


def _aval_of(x: Any) -> ShapedArray:
    return x.aval if ad.is_undefined_primal(x) else get_aval(x)


def _select(pred: Any, on_true: Any, on_false: Any) -> Any:
    if hasattr(lax, "select"):
        return lax.select(pred, on_true, on_false)
    return lax.select_n(pred, on_false, on_true)


# -- scatter (replace)
scatter_p = _scatter_primitive("scatter", None)


def scatter(
    operand: Any,
    scatter_indices: Any,
    updates: Any,
    dimension_numbers: ScatterDimensionNumbers,
    *,
    indices_are_sorted: bool = False,
    unique_indices: bool = False,
    mode: str | GatherScatterMode | None = None,
) -> Any:
    """Replace windows of ``operand`` by ``updates`` (JAX's ``lax.scatter``; mode: drop).

    With repeated indices the last update (row-major order) wins.
    """
    return _scatter_bind(
        scatter_p,
        "scatter",
        operand,
        scatter_indices,
        updates,
        dimension_numbers,
        indices_are_sorted,
        unique_indices,
        mode,
    )


def _scatter_jvp(primals, tangents, **params):
    x, indices, u = primals
    tx, _, tu = tangents
    out = scatter_p.bind(x, indices, u, **params)
    tx = ad.instantiate_zeros(tx)
    tu = ad.instantiate_zeros(tu)
    # Exact even with repeated indices: the same (last) update wins for the tangents.
    return out, scatter_p.bind(tx, indices, tu, **params)


def _scatter_transpose(ct, x, indices, u, **params):
    if ad.is_undefined_primal(indices):
        raise NotImplementedError("scatter is not linear in its indices")
    u_aval = _aval_of(u)
    x_ct = u_ct = None
    if ad.is_undefined_primal(x):
        # What the updates overwrote does not reach the output.
        x_ct = scatter_p.bind(ct, indices, _zeros(u_aval), **params)
    if ad.is_undefined_primal(u):
        u_ct = _gather_targets(ct, indices, u_aval.shape, **params)
        if not params["unique_indices"]:
            # Only the winning update of each target gets its cotangent: scatter update ids
            # (1, 2, ...) and keep the updates whose id survived.
            n = max(u_aval.size, 1)
            id_dtype = np.int32 if n < 2**31 - 1 else np.int64
            ids = np.arange(1, u_aval.size + 1, dtype=id_dtype).reshape(u_aval.shape)
            winners = scatter_p.bind(np.zeros(_aval_of(x).shape, id_dtype), indices, ids, **params)
            won = lax.eq(_gather_targets(winners, indices, u_aval.shape, **params), ids)
            u_ct = _select(won, u_ct, _zeros(u_aval))
    return [x_ct, None, u_ct]


ad.primitive_jvps[scatter_p] = _scatter_jvp
ad.primitive_transposes[scatter_p] = _scatter_transpose


# -- scatter-add
scatter_add_p = _scatter_primitive("scatter-add", np.add)


def scatter_add(
    operand: Any,
    scatter_indices: Any,
    updates: Any,
    dimension_numbers: ScatterDimensionNumbers,
    *,
    indices_are_sorted: bool = False,
    unique_indices: bool = False,
    mode: str | GatherScatterMode | None = None,
) -> Any:
    """Add ``updates`` into windows of ``operand`` (JAX's ``lax.scatter_add``; mode: drop)."""
    return _scatter_bind(
        scatter_add_p,
        "scatter-add",
        operand,
        scatter_indices,
        updates,
        dimension_numbers,
        indices_are_sorted,
        unique_indices,
        mode,
    )


def _scatter_add_jvp(primals, tangents, **params):
    x, indices, u = primals
    tx, _, tu = tangents
    out = scatter_add_p.bind(x, indices, u, **params)
    if type(tu) is ad.Zero:
        return out, tx
    return out, scatter_add_p.bind(ad.instantiate_zeros(tx), indices, tu, **params)


def _scatter_add_transpose(ct, x, indices, u, **params):
    if ad.is_undefined_primal(indices):
        raise NotImplementedError("scatter-add is not linear in its indices")
    x_ct = ct if ad.is_undefined_primal(x) else None
    u_ct = None
    if ad.is_undefined_primal(u):
        u_ct = _gather_targets(ct, indices, u.aval.shape, **params)
    return [x_ct, None, u_ct]


ad.primitive_jvps[scatter_add_p] = _scatter_add_jvp
ad.primitive_transposes[scatter_add_p] = _scatter_add_transpose


# -- scatter-mul
scatter_mul_p = _scatter_primitive("scatter-mul", np.multiply)


def scatter_mul(
    operand: Any,
    scatter_indices: Any,
    updates: Any,
    dimension_numbers: ScatterDimensionNumbers,
    *,
    indices_are_sorted: bool = False,
    unique_indices: bool = False,
    mode: str | GatherScatterMode | None = None,
) -> Any:
    """Multiply windows of ``operand`` by ``updates`` (JAX's ``lax.scatter_mul``)."""
    return _scatter_bind(
        scatter_mul_p,
        "scatter-mul",
        operand,
        scatter_indices,
        updates,
        dimension_numbers,
        indices_are_sorted,
        unique_indices,
        mode,
    )


def _scatter_mul_jvp(primals, tangents, **params):
    x, indices, u = primals
    tx, _, tu = tangents
    out = scatter_mul_p.bind(x, indices, u, **params)
    t_out: Any = ad.Zero(get_aval(out))
    if type(tx) is not ad.Zero:
        t_out = scatter_mul_p.bind(tx, indices, u, **params)
    if type(tu) is not ad.Zero:
        x_aval, u_aval = get_aval(x), get_aval(u)
        if params["unique_indices"]:
            # JAX's rule: each target receives at most one update, d(x*u) = x du.
            t_u = lax.mul(x, scatter_add_p.bind(_zeros(x_aval), indices, tu, **params))
        else:
            # d out[p] / d u_k = x[p] * (product of the other updates into p). With
            # P = x * (product of the nonzero updates) and c = the number of zero updates:
            # u_k != 0 -> P / u_k if c == 0 else 0;  u_k == 0 -> P if c == 1 else 0.
            zeros_u = _zeros(u_aval)
            is_zero = lax.eq(u, zeros_u)
            safe_u = _select(is_zero, lax.full(u_aval.shape, 1, u_aval.dtype), u)
            n_zero = scatter_add_p.bind(
                _zeros(x_aval),
                indices,
                lax.convert_element_type(is_zero, x_aval.dtype),
                **params,
            )
            prod_nz = scatter_mul_p.bind(x, indices, safe_u, **params)
            p_at = _gather_targets(prod_nz, indices, u_aval.shape, **params)
            c_at = _gather_targets(n_zero, indices, u_aval.shape, **params)
            one = lax.full(u_aval.shape, 1, u_aval.dtype)
            w = _select(
                is_zero,
                _select(lax.eq(c_at, one), p_at, zeros_u),
                _select(lax.eq(c_at, zeros_u), lax.div(p_at, safe_u), zeros_u),
            )
            t_u = scatter_add_p.bind(_zeros(x_aval), indices, lax.mul(tu, w), **params)
        t_out = ad.add_tangents(t_out, t_u)
    return out, t_out


def _scatter_mul_transpose(ct, x, indices, u, **params):
    if ad.is_undefined_primal(u) or ad.is_undefined_primal(indices):
        raise NotImplementedError(
            "scatter-mul is linear only in its operand; it cannot be transposed in updates"
        )
    return [scatter_mul_p.bind(ct, indices, u, **params), None, None]


ad.primitive_jvps[scatter_mul_p] = _scatter_mul_jvp
ad.primitive_transposes[scatter_mul_p] = _scatter_mul_transpose


# -- scatter-min / scatter-max
def _scatter_extremum_jvp(prim, primals, tangents, **params):
    x, indices, u = primals
    tx, _, tu = tangents
    out = prim.bind(x, indices, u, **params)
    x_aval, u_aval = get_aval(x), get_aval(u)
    dtype = x_aval.dtype
    # Every value equal to the result shares its derivative equally (ties average).
    x_wins = lax.convert_element_type(lax.eq(x, out), dtype)
    u_wins = lax.convert_element_type(
        lax.eq(u, _gather_targets(out, indices, u_aval.shape, **params)), dtype
    )
    count = lax.add(x_wins, scatter_add_p.bind(_zeros(x_aval), indices, u_wins, **params))
    num: Any = ad.Zero(x_aval)
    if type(tx) is not ad.Zero:
        num = lax.mul(x_wins, tx)
    if type(tu) is not ad.Zero:
        num = ad.add_tangents(
            num, scatter_add_p.bind(_zeros(x_aval), indices, lax.mul(u_wins, tu), **params)
        )
    return out, lax.div(ad.instantiate_zeros(num), count)


scatter_min_p = _scatter_primitive("scatter-min", np.minimum)
scatter_max_p = _scatter_primitive("scatter-max", np.maximum)


def scatter_min(
    operand: Any,
    scatter_indices: Any,
    updates: Any,
    dimension_numbers: ScatterDimensionNumbers,
    *,
    indices_are_sorted: bool = False,
    unique_indices: bool = False,
    mode: str | GatherScatterMode | None = None,
) -> Any:
    """Elementwise minimum of windows of ``operand`` and ``updates`` (``lax.scatter_min``)."""
    return _scatter_bind(
        scatter_min_p,
        "scatter-min",
        operand,
        scatter_indices,
        updates,
        dimension_numbers,
        indices_are_sorted,
        unique_indices,
        mode,
    )


def scatter_max(
    operand: Any,
    scatter_indices: Any,
    updates: Any,
    dimension_numbers: ScatterDimensionNumbers,
    *,
    indices_are_sorted: bool = False,
    unique_indices: bool = False,
    mode: str | GatherScatterMode | None = None,
) -> Any:
    """Elementwise maximum of windows of ``operand`` and ``updates`` (``lax.scatter_max``)."""
    return _scatter_bind(
        scatter_max_p,
        "scatter-max",
        operand,
        scatter_indices,
        updates,
        dimension_numbers,
        indices_are_sorted,
        unique_indices,
        mode,
    )


ad.primitive_jvps[scatter_min_p] = lambda primals, tangents, **params: _scatter_extremum_jvp(
    scatter_min_p, primals, tangents, **params
)
ad.primitive_jvps[scatter_max_p] = lambda primals, tangents, **params: _scatter_extremum_jvp(
    scatter_max_p, primals, tangents, **params
)
