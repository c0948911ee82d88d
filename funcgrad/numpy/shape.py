"""Shape manipulation: reshape, transpose, concatenate/stack/split, tile/repeat, pad, ...

Decisions:

- Every function is a few static shape computations plus lax primitives (``reshape``,
  ``transpose``, ``broadcast_in_dim``, ``concatenate``, ``slice``, ``rev``, ``pad``); shapes,
  axes, split points and repeat counts must be concrete (they set the result's shape).
- Eagerly the results are fresh arrays (the primitives' impls copy; functions that would do
  nothing, e.g. ``squeeze`` of an array without size-1 axes, copy explicitly). NumPy's
  views (``reshape``, ``transpose``, ``broadcast_to``) are copies here: nothing aliases.
- ``reshape`` supports one ``-1`` and ``order='C'``/``'F'``; ``pad`` supports NumPy's modes
  ``constant`` (per-axis before/after values too), ``edge``, ``reflect``, ``symmetric``,
  ``wrap``, ``empty`` (the index-based ones are one gather per padded axis), ``maximum``,
  ``minimum``, ``mean``, ``median`` (with ``stat_length``) and ``linear_ramp`` (with
  ``end_values``), all differentiable.
- Errors name the function and the shapes: ``fnp.reshape: cannot reshape f32[6] into (4, 2)``.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.core import Tracer
from funcgrad.hints import traced_shape_hint
from funcgrad.numpy import util
from funcgrad.numpy.util import canonicalize_axes, canonicalize_axis, shape_of, to_operand


def _op(a: Any, name: str) -> Any:
    return to_operand(a, f"fnp.{name}")


# ----------------------------------------------------------------------------------------
# Introspection


def shape(a: Any) -> tuple[int, ...]:
    """The shape of ``a`` (works on tracers)."""
    return tuple(shape_of(a))


def ndim(a: Any) -> int:
    """The number of dimensions of ``a``."""
    return len(shape_of(a))


def size(a: Any, axis: int | None = None) -> int:
    """The number of elements of ``a`` (along ``axis`` if given)."""
    s = shape_of(a)
    if axis is None:
        return math.prod(s)
    return s[canonicalize_axis(axis, len(s), "size")]


def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    """``x`` converted to ``dtype`` (always a fresh array eagerly)."""
    x = _op(x, "astype")
    dtype = util.canonical_dtype(dtype, "astype")
    out = util.convert(x, dtype)
    return util.fresh(out) if out is x else out


# ----------------------------------------------------------------------------------------
# Reshaping


def _resolve_shape(name: str, x: Any, newshape: Any) -> tuple[int, ...]:
    if isinstance(newshape, (int, np.integer)) or (
        isinstance(newshape, Tracer) and newshape.ndim == 0
    ):
        newshape = (newshape,)
    try:
        dims = [util.static_int(d, name, "shape") for d in newshape]
    except TypeError:
        raise TypeError(
            f"fnp.{name}: the new shape must be an int or a tuple of ints, got {newshape!r}"
            + traced_shape_hint(newshape)
        ) from None
    size_ = math.prod(shape_of(x))
    unknown = [i for i, d in enumerate(dims) if d == -1]
    bad = len(unknown) > 1 or any(d < -1 for d in dims)
    if not bad and unknown:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or size_ % known:
            bad = True
        else:
            dims[unknown[0]] = size_ // known
    if bad or math.prod(dims) != size_:
        raise ValueError(
            f"fnp.{name}: cannot reshape {util.short(x)} ({size_} elements) into "
            f"{tuple(newshape)}; the number of elements must stay the same (at most one "
            "dimension may be -1)"
        )
    return tuple(dims)


def reshape(
    a: Any, /, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> Any:
    """``a`` with a new shape (one dimension may be -1); ``order`` 'C' or 'F'."""
    a = _op(a, "reshape")
    if shape is None:
        shape = newshape
    if shape is None:
        raise TypeError("fnp.reshape: missing the new shape")
    dims = _resolve_shape("reshape", a, shape)
    if order == "F":
        rev_in = tuple(range(a.ndim))[::-1]
        rev_out = tuple(range(len(dims)))[::-1]
        t = lax.transpose(a, rev_in) if a.ndim > 1 else a
        r = lax.reshape(t, dims[::-1])
        return lax.transpose(r, rev_out) if len(dims) > 1 else r
    if order not in ("C", "A"):
        raise ValueError(f"fnp.reshape: order must be 'C' or 'F', got {order!r}")
    return lax.reshape(a, dims)


def ravel(a: Any, order: str = "C") -> Any:
    """``a`` flattened to one dimension."""
    a = _op(a, "ravel")
    return reshape(a, (-1,), order=order)


def transpose(a: Any, axes: Any = None) -> Any:
    """``a`` with its axes permuted (reversed by default)."""
    a = _op(a, "transpose")
    n = a.ndim
    if axes is None:
        perm = tuple(range(n))[::-1]
    else:
        perm = tuple(canonicalize_axis(ax, n, "transpose") for ax in axes)
        if sorted(perm) != list(range(n)):
            raise ValueError(
                f"fnp.transpose: axes {tuple(axes)} are not a permutation of the axes of "
                f"{util.short(a)}; give each of {list(range(n))} once"
            )
    return lax.transpose(a, perm)


def permute_dims(a: Any, /, axes: Any) -> Any:
    """``transpose(a, axes)`` (the array API's name)."""
    return transpose(a, axes)


def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes."""
    return swapaxes(x, -1, -2)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """``a`` with two axes interchanged."""
    a = _op(a, "swapaxes")
    n = a.ndim
    i, j = canonicalize_axis(axis1, n, "swapaxes"), canonicalize_axis(axis2, n, "swapaxes")
    perm = list(range(n))
    perm[i], perm[j] = perm[j], perm[i]
    return lax.transpose(a, tuple(perm))


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """``a`` with axes moved from ``source`` to ``destination`` (ints or sequences)."""
    a = _op(a, "moveaxis")
    n = a.ndim
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(src) != len(dst):
        raise ValueError(
            f"fnp.moveaxis: source {source} and destination {destination} must have the same "
            "number of elements"
        )
    src = [canonicalize_axis(s, n, "moveaxis") for s in src]
    dst = [canonicalize_axis(d, n, "moveaxis") for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("fnp.moveaxis: repeated axis in source or destination")
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src, strict=False)):
        order.insert(d, s)
    return lax.transpose(a, tuple(order))


def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """Roll ``axis`` backwards until it lies before ``start``."""
    a = _op(a, "rollaxis")
    n = a.ndim
    axis = canonicalize_axis(axis, n, "rollaxis")
    if start < 0:
        start += n
    if not 0 <= start <= n:
        raise np.exceptions.AxisError(f"fnp.rollaxis: start {start} out of range for ndim {n}")
    if axis < start:
        start -= 1
    return moveaxis(a, axis, start)


def squeeze(a: Any, axis: Any = None) -> Any:
    """``a`` without size-1 axes (all of them, or those in ``axis``)."""
    a = _op(a, "squeeze")
    s = shape_of(a)
    if axis is None:
        dims = tuple(i for i, d in enumerate(s) if d == 1)
    else:
        dims = canonicalize_axes(axis, len(s), "squeeze")
        bad = [i for i in dims if s[i] != 1]
        if bad:
            raise ValueError(
                f"fnp.squeeze: cannot squeeze axis {bad[0]} of {util.short(a)}: its size is "
                f"{s[bad[0]]}, not 1"
            )
    if not dims:
        return util.fresh(a)
    return lax.reshape(a, tuple(d for i, d in enumerate(s) if i not in dims))


def expand_dims(a: Any, axis: Any) -> Any:
    """``a`` with size-1 axes inserted at ``axis`` (an int or a tuple) of the result."""
    a = _op(a, "expand_dims")
    s = shape_of(a)
    n = len(s) + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    axes = canonicalize_axes(axis, n, "expand_dims")
    it = iter(s)
    return lax.reshape(a, tuple(1 if i in axes else next(it) for i in range(n)))


def atleast_1d(*arys: Any) -> Any:
    """Inputs viewed as arrays with at least one dimension."""
    out = [_atleast(a, 1, "atleast_1d") for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_2d(*arys: Any) -> Any:
    """Inputs viewed as arrays with at least two dimensions."""
    out = [_atleast(a, 2, "atleast_2d") for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_3d(*arys: Any) -> Any:
    """Inputs viewed as arrays with at least three dimensions."""
    out = [_atleast(a, 3, "atleast_3d") for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def _atleast(a: Any, n: int, name: str) -> Any:
    a = _op(a, name)
    s = tuple(shape_of(a))
    if len(s) >= n:
        return util.fresh(a)
    if n == 3 and len(s) == 2:
        return lax.reshape(a, s + (1,))
    if n == 3 and len(s) == 1:
        return lax.reshape(a, (1,) + s + (1,))
    return lax.reshape(a, (1,) * (n - len(s)) + s)


# ----------------------------------------------------------------------------------------
# Broadcasting


def broadcast_shapes(*shapes: Any) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to (NumPy's rules)."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"fnp.broadcast_shapes: shapes {' '.join(map(str, shapes))} do not broadcast; each "
            "axis (aligned from the right) must match or be 1"
        ) from None


def broadcast_to(array: Any, shape: Any) -> Any:
    """``array`` broadcast to ``shape`` (a fresh array, not a view)."""
    x = _op(array, "broadcast_to")
    shape = util.canonical_shape(shape, "broadcast_to")
    s = tuple(shape_of(x))
    if s == shape:
        return util.fresh(x)
    lead = len(shape) - len(s)
    if lead < 0 or any(d not in (1, t) for d, t in zip(s, shape[lead:], strict=False)):
        raise ValueError(
            f"fnp.broadcast_to: cannot broadcast {util.short(x)} to shape {shape}; each axis "
            "of the array (aligned from the right) must equal the target's or be 1"
        )
    return lax.broadcast_in_dim(x, shape, tuple(range(lead, len(shape))))


def broadcast_arrays(*args: Any) -> tuple[Any, ...]:
    """The arguments broadcast against each other."""
    ops = [_op(a, "broadcast_arrays") for a in args]
    try:
        target = np.broadcast_shapes(*(shape_of(o) for o in ops))
    except ValueError:
        raise ValueError(
            "fnp.broadcast_arrays: shapes "
            f"{' '.join(str(shape_of(o)) for o in ops)} do not broadcast"
        ) from None
    return tuple(broadcast_to(o, target) for o in ops)


# ----------------------------------------------------------------------------------------
# Joining and splitting


def concatenate(arrays: Sequence[Any], axis: int | None = 0, dtype: Any = None) -> Any:
    """Join arrays along an existing axis (``axis=None`` flattens them first)."""
    if isinstance(arrays, (np.ndarray, Tracer)):
        arrays = list(arrays)
    ops = [_op(a, "concatenate") for a in arrays]
    if not ops:
        raise ValueError("fnp.concatenate: need at least one array to concatenate")
    if axis is None:
        ops = [ravel(o) for o in ops]
        axis = 0
    dt = util.canonical_dtype(dtype, "concatenate") or util.result_type("fnp.concatenate", *ops)
    ops = [util.convert(o, dt) for o in ops]
    shapes = [tuple(shape_of(o)) for o in ops]
    n = len(shapes[0])
    if n == 0:
        raise ValueError(
            "fnp.concatenate: zero-dimensional arrays cannot be concatenated; use fnp.stack "
            "or fnp.atleast_1d first"
        )
    ax = canonicalize_axis(axis, n, "concatenate")
    for s in shapes[1:]:
        if len(s) != n or any(
            a != b for i, (a, b) in enumerate(zip(s, shapes[0], strict=False)) if i != ax
        ):
            raise ValueError(
                f"fnp.concatenate: shapes {shapes} do not match off the concatenation axis "
                f"{ax}; all arrays need the same rank and equal sizes except along axis {ax}"
            )
    return lax.concatenate(ops, ax)


def concat(arrays: Sequence[Any], /, *, axis: int | None = 0) -> Any:
    """``concatenate`` (the array API's name)."""
    return concatenate(arrays, axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0, dtype: Any = None) -> Any:
    """Join arrays of one shape along a new axis."""
    if isinstance(arrays, (np.ndarray, Tracer)):
        arrays = list(arrays)
    ops = [_op(a, "stack") for a in arrays]
    if not ops:
        raise ValueError("fnp.stack: need at least one array to stack")
    shapes = {tuple(shape_of(o)) for o in ops}
    if len(shapes) != 1:
        raise ValueError(
            f"fnp.stack: all input arrays must have the same shape, got {sorted(shapes)}"
        )
    (s,) = shapes
    ax = canonicalize_axis(axis, len(s) + 1, "stack")
    new = s[:ax] + (1,) + s[ax:]
    dt = util.canonical_dtype(dtype, "stack") or util.result_type("fnp.stack", *ops)
    ops = [util.convert(o, dt) for o in ops]
    # Constants are reshaped by NumPy (concatenate copies), tracers by a primitive.
    ops = [lax.reshape(o, new) if isinstance(o, Tracer) else np.reshape(o, new) for o in ops]
    return lax.concatenate(ops, ax)


def hstack(tup: Sequence[Any], dtype: Any = None) -> Any:
    """Join arrays column-wise (along axis 1; axis 0 for 1-d arrays)."""
    arrs = [atleast_1d(a) for a in tup]
    axis = 0 if arrs and len(shape_of(arrs[0])) == 1 else 1
    return concatenate(arrs, axis=axis, dtype=dtype)


def vstack(tup: Sequence[Any], dtype: Any = None) -> Any:
    """Join arrays row-wise (1-d arrays become rows)."""
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


row_stack = vstack


def dstack(tup: Sequence[Any], dtype: Any = None) -> Any:
    """Join arrays along the third axis."""
    return concatenate([atleast_3d(a) for a in tup], axis=2, dtype=dtype)


def column_stack(tup: Sequence[Any]) -> Any:
    """Join 1-d arrays as columns (2-d arrays as they are)."""
    cols = []
    for a in tup:
        a = _op(a, "column_stack")
        s = tuple(shape_of(a))
        cols.append(lax.reshape(a, (s[0] if s else 1, 1)) if len(s) < 2 else a)
    return concatenate(cols, axis=1)


def _split_points(name: str, n: int, sections: Any, equal: bool) -> list[int]:
    if isinstance(sections, (int, np.integer)) or (
        isinstance(sections, np.ndarray) and sections.ndim == 0
    ):
        k = int(sections)
        if k <= 0:
            raise ValueError(f"fnp.{name}: number of sections must be larger than 0, got {k}")
        if equal and n % k:
            raise ValueError(
                f"fnp.{name}: array split does not result in an equal division: an axis of "
                f"size {n} into {k} sections; use fnp.array_split for unequal pieces"
            )
        q, r = builtins.divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        return list(np.cumsum([0] + sizes))
    pts = [util.static_int(p, name, "indices_or_sections") for p in sections]
    return [0] + pts + [n]


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Split into pieces (sizes may differ by one)."""
    return _split(ary, indices_or_sections, axis, "array_split", equal=False)


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Split into equal sections (an int) or at the given indices."""
    return _split(ary, indices_or_sections, axis, "split", equal=True)


def _split(ary: Any, sections: Any, axis: int, name: str, equal: bool) -> list[Any]:
    a = _op(ary, name)
    s = tuple(shape_of(a))
    ax = canonicalize_axis(axis, len(s), name)
    n = s[ax]
    pts = _split_points(name, n, sections, equal)
    out = []
    for lo, hi in zip(pts[:-1], pts[1:], strict=False):
        lo = builtins.min(builtins.max(_wrap(lo, n), 0), n)
        hi = builtins.min(builtins.max(_wrap(hi, n), lo), n)
        start = [0] * len(s)
        limit = list(s)
        start[ax], limit[ax] = lo, hi
        out.append(lax.slice(a, start, limit))
    return out


def _wrap(i: int, n: int) -> int:
    return i + n if i < 0 else i


def hsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split along axis 1 (axis 0 for 1-d arrays)."""
    a = _op(ary, "hsplit")
    return split(a, indices_or_sections, axis=1 if len(shape_of(a)) > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split along axis 0."""
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split along axis 2."""
    return split(ary, indices_or_sections, axis=2)


# ----------------------------------------------------------------------------------------
# Tiling, repeating, flipping, rolling


def tile(A: Any, reps: Any) -> Any:
    """``A`` repeated ``reps`` times along each axis."""
    a = _op(A, "tile")
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    reps = tuple(util.static_int(r, "tile", "reps") for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"fnp.tile: reps must be non-negative, got {reps}")
    s = tuple(shape_of(a))
    n = builtins.max(len(s), len(reps))
    s = (1,) * (n - len(s)) + s
    reps = (1,) * (n - len(reps)) + reps
    a = lax.reshape(a, s)
    big = tuple(v for r, d in zip(reps, s, strict=False) for v in (r, d))
    b = lax.broadcast_in_dim(a, big, tuple(range(1, 2 * n, 2)))
    return lax.reshape(b, tuple(r * d for r, d in zip(reps, s, strict=False)))


def repeat(
    a: Any, repeats: Any, axis: int | None = None, *, total_repeat_length: Any = None
) -> Any:
    """Repeat each element ``repeats`` times (an int, or one count per element)."""
    a = _op(a, "repeat")
    if axis is None:
        a = ravel(a)
        axis = 0
    s = tuple(shape_of(a))
    ax = canonicalize_axis(axis, len(s), "repeat")
    reps = util.concrete(
        repeats,
        "repeat",
        "repeats",
        "the result's length would depend on it; pass concrete repeat counts",
    )
    reps = np.asarray(reps)
    if reps.dtype.kind not in "iub":
        raise TypeError(f"fnp.repeat: repeats must be integers, got dtype {reps.dtype}")
    if (reps < 0).any():
        raise ValueError("fnp.repeat: repeats may not contain negative values")
    if reps.ndim == 0 or reps.size == 1:
        r = int(reps.reshape(-1)[0])
        big = s[: ax + 1] + (r,) + s[ax + 1 :]
        dims = tuple(i for i in range(len(big)) if i != ax + 1)
        b = lax.broadcast_in_dim(a, big, dims)
        return lax.reshape(b, s[:ax] + (s[ax] * r,) + s[ax + 1 :])
    if reps.shape != (s[ax],):
        raise ValueError(
            f"fnp.repeat: repeats of shape {reps.shape} does not match axis {ax} of "
            f"{util.short(a)}; give one count per element or a single count"
        )
    idx = np.repeat(np.arange(s[ax]), reps)
    return fnp.take(a, idx, axis=ax)


def flip(m: Any, axis: Any = None) -> Any:
    """``m`` with the order of elements reversed along ``axis`` (all axes by default)."""
    m = _op(m, "flip")
    axes = canonicalize_axes(axis, len(shape_of(m)), "flip")
    if not axes:
        return util.fresh(m)
    return lax.rev(m, axes)


def fliplr(m: Any) -> Any:
    """Reverse the columns (axis 1)."""
    m = _op(m, "fliplr")
    if len(shape_of(m)) < 2:
        raise ValueError(
            f"fnp.fliplr: needs an array of at least 2 dimensions, got {util.short(m)}"
        )
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """Reverse the rows (axis 0)."""
    m = _op(m, "flipud")
    if len(shape_of(m)) < 1:
        raise ValueError("fnp.flipud: needs an array of at least 1 dimension")
    return flip(m, 0)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``."""
    m = _op(m, "rot90")
    n = len(shape_of(m))
    a0, a1 = (canonicalize_axis(a, n, "rot90") for a in axes)
    if a0 == a1:
        raise ValueError("fnp.rot90: axes must be different")
    k = util.static_int(k, "rot90", "k") % 4
    if k == 0:
        return util.fresh(m)
    if k == 2:
        return flip(m, (a0, a1))
    if k == 1:
        return swapaxes(flip(m, a1), a0, a1)
    return flip(swapaxes(m, a0, a1), a1)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Elements shifted cyclically by ``shift`` along ``axis`` (``shift`` may be traced)."""
    a = _op(a, "roll")
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    shifts = shift if isinstance(shift, (tuple, list)) else (shift,) * len(axes)
    if len(shifts) == 1 and len(axes) > 1:
        shifts = tuple(shifts) * len(axes)
    if len(shifts) != len(axes):
        raise ValueError("fnp.roll: shift and axis must have the same length")
    out = a
    for sh, ax in zip(shifts, axes, strict=False):
        out = _roll1(out, sh, canonicalize_axis(ax, len(shape_of(a)), "roll"))
    return out if out is not a else util.fresh(a)


def _roll1(a: Any, shift: Any, ax: int) -> Any:
    s = tuple(shape_of(a))
    n = s[ax]
    if n == 0:
        return a
    if isinstance(shift, Tracer):
        start = fnp.remainder(lax.sub(np.array(n, shift.dtype)[()], fnp.remainder(shift, n)), n)
        doubled = lax.concatenate([a, a], ax)
        starts = [np.zeros((), shift.dtype)[()]] * len(s)
        starts[ax] = start
        return lax.dynamic_slice(doubled, starts, s)
    k = int(shift) % n
    if k == 0:
        return a
    lo = [0] * len(s)
    hi = list(s)
    first = list(lo)
    first[ax] = n - k
    second = list(hi)
    second[ax] = n - k
    return lax.concatenate([lax.slice(a, first, hi), lax.slice(a, lo, second)], ax)


# ----------------------------------------------------------------------------------------
# Padding


_PAD_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def _pad_widths(pad_width: Any, n: int) -> list[tuple[int, int]]:
    try:
        pw = np.broadcast_to(np.asarray(pad_width), (n, 2))
    except ValueError:
        raise ValueError(
            f"fnp.pad: pad_width {pad_width!r} does not fit an array of {n} dimensions; give "
            "an int, (before, after), or one (before, after) pair per axis"
        ) from None
    if pw.dtype.kind not in "iu":
        raise TypeError(f"fnp.pad: pad_width must be integers, got {pad_width!r}")
    if (pw < 0).any():
        raise ValueError(f"fnp.pad: pad_width may not contain negative values, got {pad_width!r}")
    return [(int(lo), int(hi)) for lo, hi in pw]


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """Pad an array as ``numpy.pad`` does (every mode but a callable one; see the module doc)."""
    a = _op(array, "pad")
    s = tuple(shape_of(a))
    widths = _pad_widths(pad_width, len(s))
    dtype = util.dtype_of(a)
    if mode in ("constant", "empty"):
        values = kwargs.get("constant_values", 0) if mode == "constant" else 0
        if isinstance(values, Tracer):
            values = util.convert(values, dtype)
            return lax.pad(a, values, [(lo, hi, 0) for lo, hi in widths])
        vals = np.asarray(values)
        with np.errstate(all="ignore"):
            vals = (
                np.broadcast_to(vals, (len(s), 2)).astype(dtype)
                if vals.ndim
                else vals.astype(dtype)
            )
        if vals.ndim == 0:
            if not any(lo or hi for lo, hi in widths):
                return util.fresh(a)
            return lax.pad(a, vals[()], [(lo, hi, 0) for lo, hi in widths])
        out = a
        for ax, (lo, hi) in enumerate(widths):
            for side, w in ((0, lo), (1, hi)):
                if w:
                    cfg = [(0, 0, 0)] * len(s)
                    cfg[ax] = (w, 0, 0) if side == 0 else (0, w, 0)
                    out = lax.pad(out, vals[ax, side], cfg)
        return out if out is not a else util.fresh(a)
    if mode in _PAD_INDEX_MODES:
        out = a
        for ax, (lo, hi) in enumerate(widths):
            if not (lo or hi):
                continue
            if s[ax] == 0:
                raise ValueError(
                    f"fnp.pad: cannot pad an empty axis ({ax} of {util.short(a)}) in mode "
                    f"{mode!r}; use mode='constant'"
                )
            idx = np.pad(np.arange(s[ax]), (lo, hi), mode=mode)
            out = fnp.take(out, idx, axis=ax)
        return out if out is not a else util.fresh(a)
    if mode in _PAD_STAT_MODES:
        return _pad_stat(a, widths, mode, kwargs.get("stat_length"))
    if mode == "linear_ramp":
        return _pad_linear_ramp(a, widths, kwargs.get("end_values", 0))
    raise ValueError(
        f"fnp.pad: mode {mode!r} is not supported; use one of 'constant', 'edge', "
        "'linear_ramp', 'maximum', 'mean', 'median', 'minimum', 'reflect', 'symmetric', "
        "'wrap', 'empty'"
    )


_PAD_STAT_MODES = ("maximum", "minimum", "mean", "median")


def _pad_pairs(value: Any, n: int, name: str, what: str) -> np.ndarray:
    """A per-axis (before, after) table of ``value``, broadcast as NumPy's ``pad`` does."""
    try:
        return np.broadcast_to(np.asarray(value), (n, 2))
    except ValueError:
        raise ValueError(
            f"fnp.pad: {what} {value!r} does not fit an array of {n} dimensions; give a "
            "scalar, (before, after), or one (before, after) pair per axis"
        ) from None


def _slice_axis(x: Any, ax: int, start: int, stop: int) -> Any:
    return lax.slice_in_dim(x, start, stop, axis=ax)


def _repeat_axis(x: Any, ax: int, n: int) -> Any:
    """``x`` (size 1 along ``ax``) repeated ``n`` times along ``ax``."""
    s = list(shape_of(x))
    s[ax] = n
    return broadcast_to(x, tuple(s))


def _pad_stat(a: Any, widths: list[tuple[int, int]], mode: str, stat_length: Any) -> Any:
    """Pad with a statistic of the first/last ``stat_length`` values of each axis (NumPy's
    rule: axes are padded in order, so later axes see the earlier axes' padding)."""
    reduce = {"maximum": fnp.max, "minimum": fnp.min, "mean": fnp.mean, "median": fnp.median}[mode]
    n = len(widths)
    lengths = None if stat_length is None else _pad_pairs(stat_length, n, "pad", "stat_length")
    if lengths is not None and (lengths.dtype.kind not in "iu" or (lengths < 0).any()):
        raise ValueError(f"fnp.pad: stat_length must be non-negative ints, got {stat_length!r}")
    dtype = util.dtype_of(a)
    out = a
    for ax, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        size_ax = shape_of(out)[ax]
        if size_ax == 0:
            raise ValueError(
                f"fnp.pad: cannot pad an empty axis ({ax} of {util.short(a)}) in mode "
                f"{mode!r}; use mode='constant'"
            )
        parts = []
        for side, w in ((0, lo), (1, hi)):
            if not w:
                continue
            k = size_ax if lengths is None else max(1, min(int(lengths[ax, side]), size_ax))
            region = (
                _slice_axis(out, ax, 0, k)
                if side == 0
                else _slice_axis(out, ax, size_ax - k, size_ax)
            )
            stat = reduce(region, axis=ax, keepdims=True)
            if np.dtype(dtype).kind in "iub" and mode in ("mean", "median"):
                stat = fnp.round(stat)  # NumPy rounds (half to even) before the cast back
            stat = astype(stat, dtype)
            parts.append((side, _repeat_axis(stat, ax, w)))
        before = [p for side, p in parts if side == 0]
        after = [p for side, p in parts if side == 1]
        out = concatenate([*before, out, *after], axis=ax)
    return out if out is not a else util.fresh(a)


def _pad_linear_ramp(a: Any, widths: list[tuple[int, int]], end_values: Any) -> Any:
    """Pad with linear ramps from ``end_values`` to the edge values, as ``numpy.pad``
    (``np.linspace(end, edge, width, endpoint=False)``, floored for integer dtypes)."""
    n = len(widths)
    ends = _pad_pairs(end_values, n, "pad", "end_values")
    dtype = np.dtype(util.dtype_of(a))
    work = np.dtype(np.float64) if dtype.kind in "iub" else dtype
    out = a
    for ax, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        size_ax = shape_of(out)[ax]
        if size_ax == 0:
            raise ValueError(
                f"fnp.pad: cannot pad an empty axis ({ax} of {util.short(a)}) in mode "
                "'linear_ramp'; use mode='constant'"
            )
        rank = len(shape_of(out))
        parts = []
        for side, w in ((0, lo), (1, hi)):
            if not w:
                continue
            edge = (
                _slice_axis(out, ax, 0, 1)
                if side == 0
                else _slice_axis(out, ax, size_ax - 1, size_ax)
            )
            edge = astype(edge, work)
            end = np.asarray(ends[ax, side]).astype(work)
            k = np.arange(w, dtype=work)
            if side == 1:
                k = k[::-1].copy()
            k = k.reshape([w if i == ax else 1 for i in range(rank)])
            step = fnp.divide(fnp.subtract(edge, end), np.asarray(w, work))
            ramp = fnp.add(fnp.multiply(k, step), end)
            if dtype.kind in "iu":
                ramp = fnp.floor(ramp)
            parts.append((side, astype(ramp, dtype)))
        before = [p for side, p in parts if side == 0]
        after = [p for side, p in parts if side == 1]
        out = concatenate([*before, out, *after], axis=ax)
    return out if out is not a else util.fresh(a)


# ----------------------------------------------------------------------------------------
# Differences, diagonals


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """The ``n``-th discrete difference along ``axis`` (``not_equal`` for bools)."""
    a = _op(a, "diff")
    n = util.static_int(n, "diff", "n")
    if n < 0:
        raise ValueError(f"fnp.diff: order must be non-negative, got {n}")
    if n == 0:
        return util.fresh(a)
    s = tuple(shape_of(a))
    if not s:
        raise ValueError("fnp.diff: needs an array of at least 1 dimension")
    ax = canonicalize_axis(axis, len(s), "diff")
    parts = []
    for extra in (prepend, append):
        if extra is None:
            parts.append(None)
            continue
        e = _op(extra, "diff")
        if len(shape_of(e)) == 0:
            es = list(s)
            es[ax] = 1
            e = broadcast_to(e, tuple(es))
        parts.append(e)
    if parts[0] is not None or parts[1] is not None:
        a = concatenate([p for p in (parts[0], a, parts[1]) if p is not None], axis=ax)
    op = fnp.not_equal if util.dtype_of(a) == np.bool_ else fnp.subtract
    for _ in range(n):
        s = tuple(shape_of(a))
        lo, hi = [0] * len(s), list(s)
        hi1 = list(s)
        lo1 = [0] * len(s)
        lo1[ax] = builtins.min(1, s[ax])
        hi1[ax] = builtins.max(s[ax] - 1, 0)
        a = op(lax.slice(a, lo1, hi), lax.slice(a, lo, hi1))
    return a


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The ``offset`` diagonal over ``axis1``/``axis2``, as the last axis of the result."""
    a = _op(a, "diagonal")
    s = tuple(shape_of(a))
    if len(s) < 2:
        raise ValueError(
            f"fnp.diagonal: needs an array of at least 2 dimensions, got {util.short(a)}"
        )
    i1 = canonicalize_axis(axis1, len(s), "diagonal")
    i2 = canonicalize_axis(axis2, len(s), "diagonal")
    if i1 == i2:
        raise ValueError("fnp.diagonal: axis1 and axis2 cannot be the same")
    offset = util.static_int(offset, "diagonal", "offset")
    rest = [i for i in range(len(s)) if i not in (i1, i2)]
    x = lax.transpose(a, tuple(rest) + (i1, i2))
    n, m = s[i1], s[i2]
    length = builtins.max(0, builtins.min(n + builtins.min(offset, 0), m - builtins.max(offset, 0)))
    rows = np.arange(length) - builtins.min(offset, 0)
    cols = np.arange(length) + builtins.max(offset, 0)
    return fnp.indexing.getitem(x, (Ellipsis, rows, cols))


def diag(v: Any, k: int = 0) -> Any:
    """The ``k``-th diagonal of a 2-d array, or a 2-d array with 1-d ``v`` on it."""
    v = _op(v, "diag")
    s = tuple(shape_of(v))
    k = util.static_int(k, "diag", "k")
    if len(s) == 2:
        return diagonal(v, k)
    if len(s) != 1:
        raise ValueError(f"fnp.diag: input must be 1-d or 2-d, got {util.short(v)}")
    n = s[0] + builtins.abs(k)
    padded = lax.pad(v, np.zeros((), util.dtype_of(v))[()], [(0, builtins.abs(k), 0)])
    vals = lax.broadcast_in_dim(padded, (n, n), (0,) if k >= 0 else (1,))
    mask = fnp.creation.tri_mask(n, n, k, lax.eq)
    return lax.select(mask, vals, np.zeros((), util.dtype_of(v))[()])


def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Any:
    """The sum along a diagonal."""
    util.check_no_out("trace", out)
    return fnp.sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """``values`` appended to ``arr`` (flattened when ``axis`` is None)."""
    arr = _op(arr, "append")
    values = _op(values, "append")
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None
) -> Any:
    """Cross product of 3-vectors (or the z component for 2-vectors)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(_op(a, "cross"), axisa, -1)
    b = moveaxis(_op(b, "cross"), axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(
            f"fnp.cross: incompatible vector dimensions {na} and {nb}; vectors must have 2 or "
            "3 components"
        )
    ca = [fnp.indexing.getitem(a, (Ellipsis, i)) for i in range(na)]
    cb = [fnp.indexing.getitem(b, (Ellipsis, i)) for i in range(nb)]
    if na == 2 and nb == 2:
        return fnp.subtract(fnp.multiply(ca[0], cb[1]), fnp.multiply(ca[1], cb[0]))
    if na == 2:
        ca.append(np.zeros((), util.dtype_of(a))[()])
    if nb == 2:
        cb.append(np.zeros((), util.dtype_of(b))[()])
    comps = [
        fnp.subtract(fnp.multiply(ca[1], cb[2]), fnp.multiply(ca[2], cb[1])),
        fnp.subtract(fnp.multiply(ca[2], cb[0]), fnp.multiply(ca[0], cb[2])),
        fnp.subtract(fnp.multiply(ca[0], cb[1]), fnp.multiply(ca[1], cb[0])),
    ]
    comps = broadcast_arrays(*comps)
    out = stack(comps, axis=-1)
    return moveaxis(out, -1, axisc)


def kron(a: Any, b: Any) -> Any:
    """Kronecker product."""
    a, b = _op(a, "kron"), _op(b, "kron")
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    n = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    ea = lax.reshape(a, tuple(v for d in sa for v in (d, 1)))
    eb = lax.reshape(b, tuple(v for d in sb for v in (1, d)))
    return lax.reshape(fnp.multiply(ea, eb), tuple(x * y for x, y in zip(sa, sb, strict=True)))


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    """The slices of ``x`` along ``axis``, as a tuple."""
    x = _op(x, "unstack")
    s = tuple(shape_of(x))
    if not s:
        raise ValueError("fnp.unstack: needs an array of at least 1 dimension")
    ax = canonicalize_axis(axis, len(s), "unstack")
    return tuple(fnp.indexing.getitem(x, (slice(None),) * ax + (i,)) for i in range(s[ax]))
