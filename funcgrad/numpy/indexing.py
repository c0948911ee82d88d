"""Indexing: ``x[idx]`` (``getitem``), ``.at[idx]`` updates, ``take``, ``take_along_axis``, ...

Semantics are NumPy's: ints, slices (any step, negative too), ``None``/``newaxis``,
``Ellipsis``, integer arrays (advanced indexing: the broadcast index shape replaces the
indexed axes where they stand if the advanced indices are adjacent, else it goes first;
ints count as advanced indices when any array is present), and boolean masks (as their
``nonzero()``).

How it maps to primitives:

- Static ints and slices only: one ``slice`` (strides for steps), ``rev`` for negative
  steps, one ``reshape`` (dropping int axes, adding ``None`` axes).
- Traced scalar ints (no arrays): one ``dynamic_slice`` (clamped, negative wraps), then the
  static path.
- Advanced indexing: the slices first (as above), then one ``gather`` whose indices stack the
  broadcast index arrays (constant when concrete).
- ``.at[idx].set/add/multiply/min/max``: one ``scatter``/``scatter-add``/... with the same
  index plan; step-1 slices are window axes, strided slices and arrays index axes.

Decisions:

- Concrete out-of-bounds indices raise ``IndexError`` (NumPy), for reads and for ``.at``
  updates. Traced indices cannot be checked: reads clamp (``gather`` mode clip, as JAX's
  reads do), updates drop out-of-bounds windows (JAX's default). Negative indices wrap, traced
  ones too. ``.at[idx].get(mode=...)``, ``.set(..., mode=...)`` and ``take(..., mode=...)``
  choose explicitly: ``'clip'``, ``'fill'``/``'drop'`` (with ``fill_value``),
  ``'promise_in_bounds'``; ``take`` also has NumPy's ``'wrap'``.
- Boolean masks must be concrete (the result's shape depends on them): a traced mask raises
  :class:`NonConcreteBooleanIndexError`, which points to ``fnp.where``.
- ``.at`` with repeated indices: ``set`` keeps the last update (NumPy's ``x[idx] = v``),
  ``add``/``multiply``/``min``/``max`` combine all of them (NumPy's ``ufunc.at``). Update
  values are broadcast to ``x[idx].shape`` and converted to ``x``'s dtype.
- ``nonzero``/``argwhere``/``flatnonzero``/one-argument ``where`` need a concrete argument,
  unless ``size=`` is given (then the result is padded with ``fill_value``, as JAX).
"""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.errors import ConcretizationTypeError
from funcgrad.numpy import util
from funcgrad.numpy.util import shape_of, to_operand

_I64 = np.dtype(np.int64)


class NonConcreteBooleanIndexError(ConcretizationTypeError, IndexError):
    """A traced boolean mask was used as an index (the result's shape would be dynamic)."""


_VALID = (
    "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer or "
    "boolean arrays are valid indices"
)


class _Kind(enum.Enum):
    """What a parsed index entry is (each consumes exactly one axis of the expanded operand)."""

    SLICE = "slice"  # val: a range
    INT = "int"  # val: a concrete int
    TINT = "tint"  # val: a traced integer scalar
    ARR = "arr"  # val: an integer array (ndarray or tracer)


_SLICE, _INT, _TINT, _ARR = _Kind.SLICE, _Kind.INT, _Kind.TINT, _Kind.ARR


class _Item:
    """One entry of a parsed index, on one axis of the (None-expanded) operand."""

    __slots__ = ("kind", "val", "new")

    def __init__(self, kind: _Kind, val: Any, new: bool = False) -> None:
        self.kind = kind
        self.val = val  # slice: range; int: int; tint: tracer; arr: ndarray or tracer
        self.new = new  # True on an axis inserted by None (or a 0-d bool)


def _bool_error(shape: tuple[int, ...]) -> NonConcreteBooleanIndexError:
    dims = ",".join(map(str, shape))
    return NonConcreteBooleanIndexError(
        f"fnp indexing: a boolean mask index (bool[{dims}]) is a traced value, so the shape "
        "of x[mask] would depend on the mask's values (a dynamic shape), which jit and vmap "
        "cannot trace. Keep the shape with fnp.where(mask, x, 0) (e.g. "
        "fnp.sum(fnp.where(mask, x, 0)) instead of fnp.sum(x[mask])), or build the mask from "
        "concrete (non-traced) values."
    )


def _classify(e: Any) -> tuple[str, Any]:
    """One raw index element -> (category, value)."""
    if e is None:
        return "none", None
    if e is Ellipsis:
        return "ellipsis", None
    if isinstance(e, slice):
        return "slice", e
    if isinstance(e, (bool, np.bool_)):
        return "bool0", bool(e)
    if isinstance(e, (int, np.integer)):
        return "int", int(e)
    if isinstance(e, list) and any(isinstance(v, Tracer) for v in util._iter_nested(e)):
        e = fnp.array(e)  # a list of traced ints: stack them into one traced index array
    if isinstance(e, Tracer):
        dtype = e.dtype
        if dtype == np.bool_:
            aval = e.aval
            val = getattr(aval, "val", None)
            if val is None:
                raise _bool_error(e.shape)
            e = np.asarray(val)
        elif dtype.kind not in "iu":
            raise IndexError(f"fnp indexing: {_VALID}; got a traced {e.aval.str_short()}")
        else:
            return ("tint", e) if e.ndim == 0 else ("arr", e)
    arr = np.asarray(e)
    if arr.dtype == np.bool_:
        return ("bool0", bool(arr)) if arr.ndim == 0 else ("bool", arr)
    if arr.size == 0 and arr.dtype.kind == "f" and not isinstance(e, np.ndarray):
        arr = arr.astype(_I64)  # x[[]] indexes with an empty integer array
    if arr.dtype.kind not in "iu":
        raise IndexError(f"fnp indexing: {_VALID}; got {type(e).__name__} of dtype {arr.dtype}")
    if arr.ndim == 0:
        return "int", int(arr)
    return "arr", arr


def _static_slice(s: slice) -> slice:
    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, Tracer):
            val = getattr(v.aval, "val", None)
            if val is None:
                raise IndexError(
                    "fnp indexing: slice bounds must be static (Python ints), got a traced "
                    f"{v.aval.str_short()}; for a slice at a traced start use "
                    "funcgrad.lax.dynamic_slice(x, starts, sizes)"
                )
            v = val
        try:
            return int(np.asarray(v).item()) if not isinstance(v, int) else v
        except (TypeError, ValueError):
            raise IndexError(f"fnp indexing: slice bounds must be integers, got {v!r}") from None

    out = slice(conv(s.start), conv(s.stop), conv(s.step))
    if out.step == 0:
        raise ValueError("fnp indexing: slice step cannot be zero")
    return out


def _parse(shape: tuple[int, ...], idx: Any, check: bool) -> tuple[list[_Item], tuple[int, ...]]:
    """The index as one item per axis of the expanded operand, and that expanded shape.

    ``check``: raise IndexError for concrete out-of-bounds indices (else leave them to the
    gather/scatter mode).
    """
    if not isinstance(idx, tuple):
        idx = (idx,)
    raw = [_classify(e) for e in idx]
    consumed = 0
    n_ellipsis = 0
    for cat, v in raw:
        if cat in ("int", "tint", "arr", "slice"):
            consumed += 1
        elif cat == "bool":
            consumed += v.ndim
        elif cat == "ellipsis":
            n_ellipsis += 1
    if n_ellipsis > 1:
        raise IndexError("fnp indexing: an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise IndexError(
            f"fnp indexing: too many indices for array: array is {len(shape)}-dimensional, "
            f"but {consumed} were indexed"
        )
    if n_ellipsis == 0:
        raw.append(("ellipsis", None))
    items: list[_Item] = []
    exp_shape: list[int] = []
    axis = 0
    for cat, v in raw:
        if cat == "ellipsis":
            for _ in range(len(shape) - consumed):
                n = shape[axis]
                items.append(_Item(_SLICE, range(n)))
                exp_shape.append(n)
                axis += 1
        elif cat == "none":
            items.append(_Item(_SLICE, range(1), new=True))
            exp_shape.append(1)
        elif cat == "bool0":
            items.append(_Item(_ARR, np.zeros(int(v), _I64), new=True))
            exp_shape.append(1)
        elif cat == "slice":
            n = shape[axis]
            items.append(_Item(_SLICE, range(n)[_static_slice(v)]))
            exp_shape.append(n)
            axis += 1
        elif cat == "int":
            n = shape[axis]
            if not -n <= v < n:
                if check:
                    raise IndexError(
                        f"fnp indexing: index {v} is out of bounds for axis {axis} with size {n}"
                    )
            elif v < 0:
                v += n
            items.append(_Item(_INT, v))
            exp_shape.append(n)
            axis += 1
        elif cat == "tint":
            items.append(_Item(_TINT, v))
            exp_shape.append(shape[axis])
            axis += 1
        elif cat == "bool":
            k = v.ndim
            target = shape[axis : axis + k]
            if v.shape != target:
                bad = next(i for i in range(k) if v.shape[i] != target[i])
                raise IndexError(
                    f"fnp indexing: boolean index did not match indexed array along axis "
                    f"{axis + bad}; size of axis is {target[bad]} but size of corresponding "
                    f"boolean axis is {v.shape[bad]}"
                )
            for arr in np.nonzero(v):
                items.append(_Item(_ARR, arr.astype(_I64)))
                exp_shape.append(shape[axis])
                axis += 1
        else:  # arr
            n = shape[axis]
            if not isinstance(v, Tracer):
                v = v.astype(_I64, copy=False)
                if v.size and check and ((v < -n).any() or (v >= n).any()):
                    bad = v[(v < -n) | (v >= n)].reshape(-1)[0]
                    raise IndexError(
                        f"fnp indexing: index {bad} is out of bounds for axis {axis} with size {n}"
                    )
                v = np.where((v < 0) & (v >= -n), v + n, v)
            items.append(_Item(_ARR, v))
            exp_shape.append(n)
            axis += 1
    return items, tuple(exp_shape)


def _normalize_traced(i: Any, n: int) -> Any:
    """A traced integer index with negative values wrapped, as int64."""
    i = util.convert(i, _I64)
    return lax.select(lax.lt(i, np.int64(0)), lax.add(i, np.int64(n)), i)


# ----------------------------------------------------------------------------------------
# Reading: x[idx]


def _apply_slices(x: Any, items: list[_Item], shape: tuple[int, ...]) -> Any:
    """Apply every slice item with one ``slice`` and one ``rev``; ints stay (size-1)."""
    start, limit, stride, rev = [], [], [], []
    for ax, (it, n) in enumerate(zip(items, shape, strict=False)):
        if it.kind is _INT:
            start.append(it.val)
            limit.append(it.val + 1)
            stride.append(1)
        elif it.kind is _SLICE:
            r = it.val
            if len(r) == 0:
                start.append(0)
                limit.append(0)
                stride.append(1)
            elif r.step > 0:
                start.append(r.start)
                limit.append(r[-1] + 1)
                stride.append(r.step)
            else:
                start.append(r[-1])
                limit.append(r.start + 1)
                stride.append(-r.step)
                if len(r) > 1:
                    rev.append(ax)
        else:
            start.append(0)
            limit.append(n)
            stride.append(1)
    if start != [0] * len(shape) or limit != list(shape) or any(s != 1 for s in stride):
        x = lax.slice(x, start, limit, None if all(s == 1 for s in stride) else stride)
    if rev:
        x = lax.rev(x, tuple(rev))
    return x


def getitem(x: Any, idx: Any, mode: Any = None, fill_value: Any = None) -> Any:
    """``x[idx]`` with NumPy's semantics (what ``Tracer.__getitem__`` calls)."""
    x = to_operand(x, "fnp indexing")
    shape = tuple(shape_of(x))
    items, exp_shape = _parse(shape, idx, check=mode is None)
    has_arr = any(it.kind is _ARR for it in items)
    if not has_arr and mode is None:
        return _basic_getitem(x, items, exp_shape)
    if exp_shape != shape:
        x = lax.reshape(x, exp_shape)
    if has_arr:
        # Slices first (static), so the gather only sees index arrays and full windows.
        x = _apply_slices(
            x, [it if it.kind is _SLICE else _Item(_TINT, None) for it in items], exp_shape
        )
        items = [
            _Item(_SLICE, range(len(it.val)), it.new) if it.kind is _SLICE else it for it in items
        ]
        exp_shape = tuple(shape_of(x))
    plan = _plan(items, exp_shape)
    if plan is None:
        return util.fresh(x)
    indices, dnums, sizes, _ = plan
    return lax.gather(
        x, indices, lax.GatherDimensionNumbers(*dnums), sizes, mode=mode, fill_value=fill_value
    )


def _basic_getitem(x: Any, items: list[_Item], exp_shape: tuple[int, ...]) -> Any:
    orig = [it for it in items if not it.new]
    shape = tuple(shape_of(x))
    out = _apply_slices(x, orig, shape)
    tints = [(ax, it.val) for ax, it in enumerate(orig) if it.kind is _TINT]
    if tints:
        cur = tuple(shape_of(out))
        starts: list[Any] = [0] * len(cur)
        sizes = list(cur)
        for ax, i in tints:
            starts[ax] = i
            sizes[ax] = 1
        out = lax.dynamic_slice(out, starts, sizes)
    final = []
    for it in items:
        if it.kind is _SLICE:
            final.append(len(it.val))
    final_t = tuple(final)
    if tuple(shape_of(out)) != final_t:
        out = lax.reshape(out, final_t)
    return util.fresh(x) if out is x else out


def _plan(items: list[_Item], shape: tuple[int, ...]) -> Any:
    """Gather/scatter plan: ``(indices, dnums, slice_sizes, out_shape)``, or None when
    every item is a full slice (nothing to index).

    Step-1 slices are windows (a nonzero start is an index component), strided slices and
    arrays are index components with batch axes, ints (no arrays present) are components
    without batch axes. ``dnums`` is ``(offset_dims, collapsed_slice_dims,
    start_index_map)``, shared by gather and scatter.
    """
    arr_axes = [ax for ax, it in enumerate(items) if it.kind is _ARR]
    has_arr = bool(arr_axes)
    adjacent = has_arr and arr_axes == list(range(arr_axes[0], arr_axes[-1] + 1))
    # Advanced indices (arrays, and ints when arrays are present) broadcast together.
    adv_axes = [
        ax
        for ax, it in enumerate(items)
        if it.kind is _ARR or (has_arr and it.kind in (_INT, _TINT))
    ]
    if has_arr:
        adjacent = adv_axes == list(range(adv_axes[0], adv_axes[-1] + 1))
        try:
            bshape = np.broadcast_shapes(*(shape_of(items[ax].val) for ax in adv_axes))
        except ValueError:
            shapes = " ".join(str(tuple(shape_of(items[ax].val))) for ax in adv_axes)
            raise IndexError(
                "fnp indexing: shape mismatch: indexing arrays could not be broadcast together "
                f"with shapes {shapes}"
            ) from None
    # Output axes, in order: ("w", ax) window, ("s", ax) strided slice, ("b", None) the
    # broadcast advanced block.
    out: list[tuple[str, Any]] = []
    if has_arr and not adjacent:
        out.append(("b", None))
    for ax, it in enumerate(items):
        if it.kind is _SLICE:
            r = it.val
            out.append(("w" if r.step == 1 or len(r) <= 1 else "s", ax))
        elif has_arr and adjacent and ax == adv_axes[0]:
            out.append(("b", None))
    batch_shape: list[int] = []
    bpos: dict[Any, int] = {}
    for kind, ax in out:
        if kind == "b":
            bpos["b"] = len(batch_shape)
            batch_shape.extend(bshape)
        elif kind == "s":
            bpos[ax] = len(batch_shape)
            batch_shape.append(len(items[ax].val))
    nb = len(batch_shape)
    comps: list[Any] = []
    index_map: list[int] = []
    collapsed: list[int] = []
    sizes: list[int] = []
    offset_dims = []
    pos = 0
    for kind, _ in out:
        if kind == "w":
            offset_dims.append(pos)
        pos += len(bshape) if kind == "b" else 1
    for ax, it in enumerate(items):
        n = shape[ax]
        if it.kind is _SLICE:
            r = it.val
            if r.step == 1 or len(r) <= 1:
                sizes.append(len(r))
                if len(r) and r.start != 0:
                    index_map.append(ax)
                    comps.append(np.full((1,) * nb, r.start, _I64))
                continue
            sizes.append(1)
            collapsed.append(ax)
            index_map.append(ax)
            vals = np.arange(r.start, r.stop, r.step, dtype=_I64)
            comps.append(vals.reshape(tuple(len(r) if j == bpos[ax] else 1 for j in range(nb))))
            continue
        sizes.append(1)
        collapsed.append(ax)
        index_map.append(ax)
        v = it.val
        if isinstance(v, Tracer):
            v = _normalize_traced(v, n)
        elif it.kind is _INT:
            v = np.asarray(v, _I64)
        if it.kind in (_INT, _TINT) and not has_arr:
            comps.append(_reshape_any(v, (1,) * nb))
            continue
        # An advanced index: broadcast to the block, placed at the block's batch axes.
        vshape = tuple(shape_of(v))
        full = (1,) * (len(bshape) - len(vshape)) + vshape
        p = bpos["b"]
        target = (1,) * p + full + (1,) * (nb - p - len(bshape))
        comps.append(_reshape_any(v, target))
    if not comps:
        partial = [ax for ax, it in enumerate(items) if len(it.val) != shape[ax]]
        if not partial:
            return None  # every item is a full slice: nothing to index
        # Windows that start at 0 but are shorter than their axis: index one of them at 0.
        index_map.append(partial[0])
        comps.append(np.zeros((1,) * nb, _I64))
    indices = _stack_components(comps, tuple(batch_shape))
    dnums = (tuple(offset_dims), tuple(sorted(collapsed)), tuple(index_map))
    out_shape = []
    it_b = iter(batch_shape)
    for kind, ax in out:
        if kind == "w":
            out_shape.append(len(items[ax].val))
        elif kind == "b":
            out_shape.extend(next(it_b) for _ in bshape)
        else:
            out_shape.append(next(it_b))
    return indices, dnums, tuple(sizes), tuple(out_shape)


def _reshape_any(v: Any, shape: tuple[int, ...]) -> Any:
    if isinstance(v, Tracer):
        return lax.reshape(v, shape) if tuple(v.shape) != shape else v
    return np.reshape(v, shape)


def _stack_components(comps: list[Any], batch_shape: tuple[int, ...]) -> Any:
    """Broadcast each component to ``batch_shape`` and stack them on a new last axis."""
    target = batch_shape + (1,)
    if not any(isinstance(c, Tracer) for c in comps):
        return np.concatenate(
            [np.broadcast_to(np.asarray(c, _I64)[..., None], target) for c in comps], axis=-1
        )
    cols = []
    for c in comps:
        if isinstance(c, Tracer):
            c = lax.reshape(c, tuple(c.shape) + (1,))
            cols.append(c if tuple(c.shape) == target else lax.broadcast_to(c, target))
        else:
            # A fresh, writable, C-ordered constant (what the jit backend takes best).
            cols.append(
                np.array(np.broadcast_to(np.asarray(c, _I64)[..., None], target), order="C")
            )
    if len(cols) == 1:
        return cols[0]
    return lax.concatenate(cols, len(target) - 1)


# ----------------------------------------------------------------------------------------
# Updates: x.at[idx].set(v), ...


def _scatter_update(
    x: Any,
    idx: Any,
    values: Any,
    kind: str,
    mode: Any,
    indices_are_sorted: bool,
    unique_indices: bool,
) -> Any:
    name = f"fnp .at[].{kind}"
    x = to_operand(x, name)
    shape = tuple(shape_of(x))
    dtype = util.dtype_of(x)
    items, exp_shape = _parse(shape, idx, check=mode is None)
    xe = x if exp_shape == shape else lax.reshape(x, exp_shape)
    plan = _plan(items, exp_shape)
    if plan is None:
        out_shape = exp_shape
    else:
        indices, dnums, sizes, out_shape = plan
    vals = to_operand(values, name)
    vals = util.convert(vals, dtype)
    vshape = tuple(shape_of(vals))
    while len(vshape) > len(out_shape) and vshape[0] == 1:
        vshape = vshape[1:]
    if vshape != tuple(shape_of(vals)):
        vals = lax.reshape(vals, vshape)
    try:
        np.broadcast_to(np.empty(vshape, np.bool_), out_shape)
    except ValueError:
        raise ValueError(
            f"{name}: cannot broadcast update values of shape {tuple(shape_of(values))} to "
            f"the indexed shape {tuple(out_shape)}"
        ) from None
    if vshape != tuple(out_shape):
        vals = lax.broadcast_in_dim(
            vals, out_shape, tuple(range(len(out_shape) - len(vshape), len(out_shape)))
        )
    if plan is None:
        combine = {
            "set": lambda a, b: util.fresh(b) if not isinstance(b, Tracer) else b,
            "add": lax.add if dtype != np.bool_ else lax.bitwise_or,
            "multiply": lax.mul if dtype != np.bool_ else lax.bitwise_and,
            "min": fnp.ufuncs.minimum,
            "max": fnp.ufuncs.maximum,
        }[kind]
        out = combine(xe, vals)
    else:
        fn = {
            "set": lax.scatter,
            "add": lax.scatter_add,
            "multiply": lax.scatter_mul,
            "min": lax.scatter_min,
            "max": lax.scatter_max,
        }[kind]
        out = fn(
            xe,
            indices,
            vals,
            lax.ScatterDimensionNumbers(*dnums),
            indices_are_sorted=indices_are_sorted,
            unique_indices=unique_indices,
            mode=mode,
        )
    return out if exp_shape == shape else lax.reshape(out, shape)


class _IndexUpdateRef:
    """``x.at[idx]``: functional updates of the elements ``x[idx]``."""

    __slots__ = ("array", "index")

    def __init__(self, array: Any, index: Any) -> None:
        self.array = array
        self.index = index

    def __repr__(self) -> str:
        return f"_IndexUpdateRef({self.array!r}, {self.index!r})"

    def get(
        self,
        *,
        mode: Any = None,
        fill_value: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """``x[idx]`` (with an explicit out-of-bounds ``mode`` if given)."""
        return getitem(self.array, self.index, mode=mode, fill_value=fill_value)

    def set(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] = values`` (the last of repeated indices wins)."""
        return _scatter_update(
            self.array, self.index, values, "set", mode, indices_are_sorted, unique_indices
        )

    def add(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] += values`` (repeated indices accumulate)."""
        return _scatter_update(
            self.array, self.index, values, "add", mode, indices_are_sorted, unique_indices
        )

    def subtract(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] -= values`` (repeated indices accumulate)."""
        v = util.convert(to_operand(values), util.dtype_of(self.array))
        return _scatter_update(
            self.array, self.index, fnp.negative(v), "add", mode, indices_are_sorted, unique_indices
        )

    def multiply(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] *= values`` (repeated indices accumulate)."""
        return _scatter_update(
            self.array, self.index, values, "multiply", mode, indices_are_sorted, unique_indices
        )

    mul = multiply

    def divide(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] /= values`` (floating ``x`` only)."""
        dtype = util.dtype_of(self.array)
        if dtype.kind != "f":
            raise TypeError(
                f"fnp .at[].divide: needs a floating array, got {util.short(self.array)}; "
                "convert it with .astype first"
            )
        v = fnp.reciprocal(util.convert(to_operand(values), dtype))
        return _scatter_update(
            self.array, self.index, v, "multiply", mode, indices_are_sorted, unique_indices
        )

    def min(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] = minimum(x[idx], values)``."""
        return _scatter_update(
            self.array, self.index, values, "min", mode, indices_are_sorted, unique_indices
        )

    def max(
        self,
        values: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] = maximum(x[idx], values)``."""
        return _scatter_update(
            self.array, self.index, values, "max", mode, indices_are_sorted, unique_indices
        )

    def apply(
        self,
        func: Any,
        *,
        mode: Any = None,
        indices_are_sorted: bool = False,
        unique_indices: bool = False,
    ) -> Any:
        """A copy of ``x`` with ``x[idx] = func(x[idx])`` (``func`` elementwise)."""
        vals = func(self.get(mode=mode))
        return self.set(vals, mode=mode)


class _IndexUpdateHelper:
    """What ``x.at`` returns; ``x.at[idx]`` gives the update methods."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array

    def __getitem__(self, index: Any) -> _IndexUpdateRef:
        return _IndexUpdateRef(self.array, index)

    def __repr__(self) -> str:
        return f"_IndexUpdateHelper({self.array!r})"


def at(x: Any) -> _IndexUpdateHelper:
    """``fnp.at(x)[idx].set(v)`` (and ``add multiply min max get``): ``x.at`` for any array."""
    return _IndexUpdateHelper(to_operand(x, "fnp.at"))


# ----------------------------------------------------------------------------------------
# take, take_along_axis


def take(
    a: Any,
    indices: Any,
    axis: int | None = None,
    out: Any = None,
    mode: Any = None,
    unique_indices: bool = False,
    indices_are_sorted: bool = False,
    fill_value: Any = None,
) -> Any:
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array when None).

    ``mode``: None/'raise' (NumPy: IndexError for concrete out-of-bounds indices; traced ones
    clamp), 'clip', 'wrap', 'fill' (JAX: out-of-bounds reads give ``fill_value``).
    """
    util.check_no_out("take", out)
    a = to_operand(a, "fnp.take")
    if axis is None:
        a = fnp.ravel(a)
        axis = 0
    s = tuple(shape_of(a))
    ax = util.canonicalize_axis(axis, len(s), "take")
    n = s[ax]
    ind = to_operand(indices, "fnp.take")
    if util.dtype_of(ind).kind not in "iu":
        raise IndexError(f"fnp.take: indices must be integers, got {util.short(ind)}")
    gather_mode = None
    if mode == "wrap":
        if n == 0:
            raise IndexError("fnp.take: cannot take from an empty axis with mode='wrap'")
        ind = fnp.remainder(ind, n)
    elif mode == "clip":
        if isinstance(ind, Tracer):
            ind = lax.clamp(np.array(0, ind.dtype)[()], ind, np.array(max(n - 1, 0), ind.dtype)[()])
        else:
            ind = np.clip(ind, 0, max(n - 1, 0))
    elif mode in ("fill", "drop"):
        gather_mode = "fill"
    elif mode not in (None, "raise", "promise_in_bounds"):
        raise ValueError(f"fnp.take: mode must be 'raise', 'clip', 'wrap' or 'fill', got {mode!r}")
    idx = (slice(None),) * ax + (ind,)
    if isinstance(ind, np.generic) or (isinstance(ind, np.ndarray) and ind.ndim == 0):
        idx = (slice(None),) * ax + (np.asarray(ind).reshape(()).astype(_I64)[()],)
    return getitem(a, idx, mode=gather_mode, fill_value=fill_value)


def take_along_axis(
    arr: Any, indices: Any, axis: int | None, mode: Any = None, fill_value: Any = None
) -> Any:
    """``arr`` indexed along ``axis`` by ``indices`` of the same rank (broadcast elsewhere)."""
    arr = to_operand(arr, "fnp.take_along_axis")
    ind = to_operand(indices, "fnp.take_along_axis")
    if axis is None:
        arr = fnp.ravel(arr)
        axis = 0
        if len(shape_of(ind)) != 1:
            raise ValueError("fnp.take_along_axis: with axis=None, indices must be 1-d")
    s = tuple(shape_of(arr))
    si = tuple(shape_of(ind))
    if len(si) != len(s):
        raise ValueError(
            f"fnp.take_along_axis: indices ({util.short(ind)}) and arr ({util.short(arr)}) "
            "must have the same number of dimensions"
        )
    if util.dtype_of(ind).kind not in "iu":
        raise IndexError(f"fnp.take_along_axis: indices must be integers, got {util.short(ind)}")
    ax = util.canonicalize_axis(axis, len(s), "take_along_axis")
    for d in range(len(s)):
        if d != ax and si[d] not in (1, s[d]) and s[d] != 1:
            raise ValueError(
                f"fnp.take_along_axis: indices of shape {si} do not broadcast with arr of "
                f"shape {s} along axis {d}"
            )
    idx = []
    for d in range(len(s)):
        if d == ax:
            idx.append(ind)
        else:
            r = np.arange(s[d], dtype=_I64).reshape(
                tuple(s[d] if j == d else 1 for j in range(len(s)))
            )
            idx.append(r)
    mode_ = "fill" if mode in ("fill", "drop") else mode if mode == "clip" else None
    return getitem(arr, tuple(idx), mode=mode_, fill_value=fill_value)


# ----------------------------------------------------------------------------------------
# nonzero and friends


def _concrete_or_size(a: Any, name: str, size: Any) -> Any:
    if size is not None or not isinstance(a, Tracer):
        return a
    return util.concrete(
        a,
        name,
        "the argument",
        f"the length of the result would depend on its values (a dynamic shape). Pass a "
        f"static size=... to fnp.{name} (the result is padded with fill_value), or use "
        "fnp.where(cond, x, y), which keeps the shape",
    )


def nonzero(a: Any, *, size: Any = None, fill_value: Any = None) -> tuple[Any, ...]:
    """Indices of the nonzero elements, one int64 array per axis.

    Needs a concrete ``a``, unless ``size`` is given (then at most ``size`` results,
    padded with ``fill_value``, default 0).
    """
    a = to_operand(a, "fnp.nonzero")
    a = _concrete_or_size(a, "nonzero", size)
    if size is None:
        arr = np.asarray(a)
        if arr.ndim == 0:
            raise ValueError(
                "fnp.nonzero: calling nonzero on 0d arrays is not allowed; use "
                "fnp.atleast_1d(x).nonzero() instead"
            )
        return tuple(util.lift_to_current(i.astype(_I64)) for i in np.nonzero(arr))
    size = util.static_int(size, "nonzero", "size")
    s = tuple(shape_of(a))
    if not s:
        raise ValueError("fnp.nonzero: calling nonzero on 0d arrays is not allowed")
    total = math.prod(s)
    mask = fnp.ravel(fnp.reductions.truth(a))
    pos = lax.sub(lax.cumsum(util.convert(mask, _I64), axis=0), np.int64(1))
    pos = lax.select(mask, pos, np.int64(size))  # non-selected positions are dropped
    flat = lax.iota(_I64, total)
    fill = 0 if fill_value is None else fill_value
    fills = fill if isinstance(fill, (tuple, list)) else (fill,) * len(s)
    base = lax.full((size,), np.int64(-1), _I64)
    idx = _scatter_update(base, pos, flat, "set", "drop", False, False)
    out = []
    strides = [math.prod(s[i + 1 :]) for i in range(len(s))]
    for d, (st, n) in enumerate(zip(strides, s, strict=False)):
        coord = lax.rem(lax.div(idx, np.int64(st)), np.int64(n))
        out.append(lax.select(lax.lt(idx, np.int64(0)), np.array(fills[d], _I64)[()], coord))
    return tuple(out)


def flatnonzero(a: Any, *, size: Any = None, fill_value: Any = None) -> Any:
    """Indices of the nonzero elements of the flattened array."""
    return nonzero(fnp.ravel(to_operand(a, "fnp.flatnonzero")), size=size, fill_value=fill_value)[0]


def argwhere(a: Any, *, size: Any = None, fill_value: Any = None) -> Any:
    """Indices of the nonzero elements, as an ``(N, a.ndim)`` array."""
    a = to_operand(a, "fnp.argwhere")
    if len(shape_of(a)) == 0:
        # NumPy: a 0-d input gives an (N, 0) result, N = 1 if it is nonzero.
        (idx,) = nonzero(fnp.reshape(a, (1,)), size=size, fill_value=fill_value)
        return lax.full((shape_of(idx)[0], 0), np.int64(0), _I64)
    return fnp.stack(nonzero(a, size=size, fill_value=fill_value), axis=1)


def unravel_index(indices: Any, shape: Any) -> tuple[Any, ...]:
    """Flat indices into ``shape`` -> a tuple of coordinate arrays (``indices`` may be traced)."""
    shape = util.canonical_shape(shape, "unravel_index")
    ind = to_operand(indices, "fnp.unravel_index")
    if util.dtype_of(ind).kind not in "iu":
        raise TypeError(f"fnp.unravel_index: indices must be integers, got {util.short(ind)}")
    if not isinstance(ind, Tracer):
        try:
            return tuple(
                util.lift_to_current(np.asarray(c, _I64)) for c in np.unravel_index(ind, shape)
            )
        except ValueError as e:
            raise ValueError(f"fnp.unravel_index: {e}") from None
    ind = util.convert(ind, _I64)
    out = []
    for d in range(len(shape)):
        stride = math.prod(shape[d + 1 :])
        out.append(lax.rem(lax.div(ind, np.int64(stride)), np.int64(shape[d])))
    return tuple(out)


def isin(
    element: Any,
    test_elements: Any,
    assume_unique: bool = False,
    invert: bool = False,
    *,
    kind: Any = None,
) -> Any:
    """Elementwise: is ``element`` in ``test_elements`` (compares with every test element)."""
    el, tests = util.promote_args("fnp.isin", element, test_elements)
    tests = fnp.ravel(tests)
    es = tuple(shape_of(el))
    n = shape_of(tests)[0]
    eb = lax.broadcast_in_dim(el, es + (n,), tuple(range(len(es))))
    tb = lax.broadcast_in_dim(tests, es + (n,), (len(es),))
    found = lax.reduce_or(lax.eq(eb, tb), (len(es),))
    return lax.bitwise_not(found) if invert else found
