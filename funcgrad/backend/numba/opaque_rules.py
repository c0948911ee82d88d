"""Opaque lowering rules: primitives that get their own statements rather than fusing.

Each rule is ``rule(ctx, *operands, **params)`` and emits lines that assign ``ctx.outs``
(fresh, C-contiguous arrays, except where marked ``returns_view``). ``ctx.arg(x)`` names an
array operand, ``ctx.scalar(x)`` a 0-d one as a scalar, ``loops(ctx, sizes)`` opens a loop
nest and yields its index names. Rules use numba-supported NumPy calls where those are
fast (``np.dot`` is BLAS) and explicit loops elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad.backend.numba.lowering import REDUCTIONS, cast, opaque

#: ``dot_general`` calls BLAS when ``M*N*K`` reaches this (``benchmarks/workloads/
#: dot_cutover.py``); below it an inlined loop avoids the call overhead.
DOT_BLAS_MIN = 4096


@contextmanager
def loops(ctx: Any, sizes: Sequence[int], base: str = "j") -> Iterator[list[str]]:
    """Open ``for`` loops over ``sizes`` (outermost first); yields the index names."""
    names = []
    try:
        for n in sizes:
            name = ctx.fresh(base)
            names.append(name)
            ctx.emit(f"for {name} in range({n}):")
            ctx.push()
        yield names
    finally:
        for _ in names:
            ctx.pop()


def _idx(parts: Sequence[str]) -> str:
    return ", ".join(parts) if parts else "()"


def _prod(xs: Sequence[int]) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


# -- reshape (a general one; unit-axis reshapes are views in plan.py)
@opaque("reshape", returns_view=True)
def _reshape(ctx, x, *, new_sizes, **_):
    ctx.emit(f"{ctx.outs[0]} = {ctx.arg(x)}.reshape({ctx.shape(tuple(new_sizes))})")


# -- concatenate
@opaque("concatenate")
def _concatenate(ctx, *xs, dimension):
    out, aval = ctx.outs[0], ctx.out_avals[0]
    ctx.emit(f"{out} = np.empty({ctx.shape(aval.shape)}, {ctx.dtype(aval.dtype)})")
    off = 0
    for x, a in zip(xs, ctx.in_avals, strict=True):
        n = a.shape[dimension]
        if n:
            sl = [":"] * dimension + [f"{off}:{off + n}"]
            ctx.emit(f"{out}[{', '.join(sl)}] = {ctx.arg(x)}")
        off += n


# -- pad
@opaque("pad")
def _pad(ctx, x, padding_value, *, padding_config):
    out, aval = ctx.outs[0], ctx.out_avals[0]
    xa = ctx.in_avals[0]
    ctx.fill(out, aval.shape, aval.dtype, ctx.scalar(padding_value))
    dst, src = [], []
    for n, m, (lo, _hi, it) in zip(xa.shape, aval.shape, padding_config, strict=True):
        step = it + 1
        i_min = 0 if lo >= 0 else -(lo // step) if lo % step == 0 else -lo // step + 1
        i_max = min(n - 1, (m - 1 - lo) // step) if m - 1 - lo >= 0 else -1
        count = i_max - i_min + 1
        if count <= 0:
            return  # nothing of x lands in the output
        o0 = lo + i_min * step
        dst.append(f"{o0}:{o0 + (count - 1) * step + 1}:{step}")
        src.append(f"{i_min}:{i_max + 1}")
    if not dst:
        ctx.emit(f"{out}[()] = {ctx.arg(x)}[()]")
        return
    ctx.emit(f"{out}[{', '.join(dst)}] = {ctx.arg(x)}[{', '.join(src)}]")


# -- dynamic_slice / dynamic_update_slice (start indices clamped, as lax)
def _starts(ctx, idx, shape, sizes) -> list[str]:
    names = []
    for i, n, s in zip(idx, shape, sizes, strict=True):
        name = ctx.fresh("s")
        ctx.emit(f"{name} = min(max(int({ctx.scalar(i)}), 0), {n - s})")
        names.append(name)
    return names


@opaque("dynamic_slice")
def _dynamic_slice(ctx, x, *idx, slice_sizes):
    xa = ctx.in_avals[0]
    starts = _starts(ctx, idx, xa.shape, slice_sizes)
    sl = [f"{s}:{s} + {n}" for s, n in zip(starts, slice_sizes, strict=True)]
    if sl:
        ctx.emit(f"{ctx.outs[0]} = {ctx.arg(x)}[{_idx(sl)}].copy()")
    else:
        ctx.emit(f"{ctx.outs[0]} = {ctx.arg(x)}.copy()")


@opaque("dynamic_update_slice")
def _dynamic_update_slice(ctx, x, update, *idx):
    xa, ua = ctx.in_avals[0], ctx.in_avals[1]
    out = ctx.outs[0]
    ctx.emit(f"{out} = {ctx.arg(x)}.copy()")
    starts = _starts(ctx, idx, xa.shape, ua.shape)
    sl = [f"{s}:{s} + {n}" for s, n in zip(starts, ua.shape, strict=True)]
    if sl:
        ctx.emit(f"{out}[{_idx(sl)}] = {ctx.arg(update)}")
    else:
        ctx.emit(f"{out}[()] = {ctx.arg(update)}[()]")


# -- dot_general: BLAS (np.dot on contiguous 2-D matrices) or an inlined loop nest
def _free(ndim: int, contract: Sequence[int], batch: Sequence[int]) -> list[int]:
    return [d for d in range(ndim) if d not in contract and d not in batch]


def _permuted_copy(ctx, x: str, shape, perm: list[int], new_shape: tuple[int, ...]) -> str:
    """A C-contiguous copy of ``x`` with axes ``perm``, reshaped to ``new_shape``.

    Explicit loops, not ``np.transpose(x, axes)``: numba compiles that overload (and the
    string formatting of its error path) for seconds on first use in a process."""
    t = ctx.fresh("tr")
    pshape = tuple(shape[p] for p in perm)
    ctx.emit(f"{t} = np.empty({ctx.shape(pshape)}, {x}.dtype)")
    with loops(ctx, pshape) as idx:
        src = [""] * len(shape)
        for i, p in enumerate(perm):
            src[p] = idx[i]
        ctx.emit(f"{t}[{_idx(idx)}] = {x}[{_idx(src)}]")
    return f"{t}.reshape({ctx.shape(new_shape)})"


def _matrix(ctx, x: str, aval, perm: list[int], rows: int, cols: int, b: int) -> str:
    """``x`` as C-contiguous ``(b, rows, cols)``, or as ``(rows, cols)`` when ``b == 1`` (then
    possibly a transposed view, which BLAS reads without a copy)."""
    ident = perm == list(range(aval.ndim))
    if b == 1 and aval.ndim == 2 and perm == [1, 0]:
        return f"{x}.T"
    shape = (rows, cols) if b == 1 else (b, rows, cols)
    if ident:
        return f"{x}.reshape({ctx.shape(shape)})"
    return _permuted_copy(ctx, x, aval.shape, perm, shape)


def _vector(x: str, n: int) -> str:
    """A matrix with one non-unit axis as a vector: its elements are contiguous in ``x``."""
    return f"{x}.reshape(({n},))"


@opaque("dot_general")
def _dot_general(ctx, lhs, rhs, *, dimension_numbers, preferred_element_type=None, **_):
    (lc, rc), (lb, rb) = dimension_numbers
    la, ra = ctx.in_avals
    out, oaval = ctx.outs[0], ctx.out_avals[0]
    dt = oaval.dtype
    lf, rf = _free(la.ndim, lc, lb), _free(ra.ndim, rc, rb)
    B = _prod([la.shape[d] for d in lb])
    M = _prod([la.shape[d] for d in lf])
    K = _prod([la.shape[d] for d in lc])
    N = _prod([ra.shape[d] for d in rf])
    a, b = ctx.arg(lhs), ctx.arg(rhs)
    blas = (
        dt.kind in "fc"
        and la.dtype == dt
        and ra.dtype == dt
        and M * N * K >= DOT_BLAS_MIN
        and min(M, N, K) > 0
    )
    if not blas:
        _dot_loops(ctx, a, b, la, ra, (lb, lf, lc), (rb, rf, rc), out, oaval)
        return
    lperm, rperm = [*lb, *lf, *lc], [*rb, *rc, *rf]
    oshape = ctx.shape(oaval.shape)
    if B == 1:
        a2 = _vector(a, K) if M == 1 else _matrix(ctx, a, la, lperm, M, K, 1)
        b2 = _vector(b, K) if N == 1 else _matrix(ctx, b, ra, rperm, K, N, 1)
        if M == 1 and N == 1:  # a scalar
            ctx.emit(f"{out} = np.empty({oshape}, {ctx.dtype(dt)})")
            ctx.emit(f"{out}.reshape((1,))[0] = np.dot({a2}, {b2})")
        else:
            ctx.emit(f"{out} = np.dot({a2}, {b2}).reshape({oshape})")
        return
    a3 = _matrix(ctx, a, la, lperm, M, K, B)
    b3 = _matrix(ctx, b, ra, rperm, K, N, B)
    an, bn, o3 = ctx.fresh("lhs"), ctx.fresh("rhs"), ctx.fresh("o")
    ctx.emit(f"{an} = {a3}")
    ctx.emit(f"{bn} = {b3}")
    ctx.emit(f"{out} = np.empty({oshape}, {ctx.dtype(dt)})")
    ctx.emit(f"{o3} = {out}.reshape(({B}, {M}, {N}))")
    with loops(ctx, [B]) as (ib,):
        ctx.emit(f"{o3}[{ib}] = np.dot({an}[{ib}], {bn}[{ib}])")


def _pairs(axes: Sequence[int], names: Sequence[str]) -> dict[int, str]:
    return dict(zip(axes, names, strict=True))


def _dot_loops(ctx, a, b, la, ra, ldims, rdims, out, oaval) -> None:
    """dot_general as a loop nest indexing both operands in place (any layout, any dtype):
    batch, lhs free and contracting axes outside, rhs free axes innermost."""
    (lb, lf, lc), (rb, rf, rc) = ldims, rdims
    dt = oaval.dtype
    ctx.emit(f"{out} = np.empty({ctx.shape(oaval.shape)}, {ctx.dtype(dt)})")
    if 0 in oaval.shape:
        return
    zero = ctx.lit(0, dt)

    def read(x: str, aval, idx_of: dict[int, str]) -> str:
        expr = f"{x}[{_idx([idx_of[d] for d in range(aval.ndim)])}]"
        return expr if aval.dtype == dt else cast(expr, dt)

    with loops(ctx, [la.shape[d] for d in lb], "b") as bv:
        with loops(ctx, [la.shape[d] for d in lf], "m") as mv:
            nsizes = [ra.shape[d] for d in rf]
            with loops(ctx, nsizes, "n") as nv:
                ctx.emit(f"{out}[{_idx([*bv, *mv, *nv])}] = {zero}")
            with loops(ctx, [la.shape[d] for d in lc], "k") as kv:
                av = ctx.fresh("av")
                lhs_idx = {**_pairs(lb, bv), **_pairs(lf, mv), **_pairs(lc, kv)}
                ctx.emit(f"{av} = {read(a, la, lhs_idx)}")
                with loops(ctx, nsizes, "n") as nv:
                    cell = f"{out}[{_idx([*bv, *mv, *nv])}]"
                    bval = read(b, ra, {**_pairs(rb, bv), **_pairs(rf, nv), **_pairs(rc, kv)})
                    if dt.kind == "b":
                        ctx.emit(f"{cell} = {cell} | ({av} & {bval})")
                    else:
                        ctx.emit(f"{cell} += {av} * {bval}")


# -- argmax / argmin: the first extreme wins; the first NaN wins over everything
def _arg_reduction(better: str):
    def rule(ctx, x, *, axes, index_dtype):
        (axis,) = axes
        xa = ctx.in_avals[0]
        out, oaval = ctx.outs[0], ctx.out_avals[0]
        xn = ctx.arg(x)
        ctx.emit(f"{out} = np.empty({ctx.shape(oaval.shape)}, {ctx.dtype(oaval.dtype)})")
        kept = [n for d, n in enumerate(xa.shape) if d != axis]
        with loops(ctx, kept) as idx:

            def at(j: str) -> str:
                parts = list(idx)
                parts.insert(axis, j)
                return f"{xn}[{_idx(parts)}]"

            best, bi, v = ctx.fresh("best"), ctx.fresh("bi"), ctx.fresh("v")
            ctx.emit(f"{best} = {at('0')}")
            ctx.emit(f"{bi} = 0")
            with loops(ctx, [xa.shape[axis]]) as (j,):
                ctx.emit(f"{v} = {at(j)}")
                nan = f" or ({v} != {v} and {best} == {best})" if xa.dtype.kind == "f" else ""
                ctx.emit(f"if {v} {better} {best}{nan}:")
                with ctx.indent():
                    ctx.emit(f"{best} = {v}")
                    ctx.emit(f"{bi} = {j}")
            ctx.emit(f"{out}[{_idx(idx)}] = {bi}")

    return rule


opaque("argmax")(_arg_reduction(">"))
opaque("argmin")(_arg_reduction("<"))


# -- cumulative reductions along one axis
def _cumulative(identity: Any, combine: Any):
    def rule(ctx, x, *, axis, reverse):
        xa = ctx.in_avals[0]
        out, dt = ctx.outs[0], xa.dtype
        xn = ctx.arg(x)
        ctx.emit(f"{out} = np.empty({ctx.shape(xa.shape)}, {ctx.dtype(dt)})")
        n = xa.shape[axis]
        kept = [m for d, m in enumerate(xa.shape) if d != axis]
        with loops(ctx, kept) as idx:
            acc = ctx.fresh("acc")
            ctx.emit(f"{acc} = {ctx.lit(identity(dt), dt)}")
            with loops(ctx, [n]) as (j,):
                jj = f"{n - 1} - {j}" if reverse else j
                parts = list(idx)
                parts.insert(axis, jj)
                cell = _idx(parts)
                ctx.emit(f"{acc} = {combine(ctx, acc, f'{xn}[{cell}]')}")
                ctx.emit(f"{out}[{cell}] = {acc}")

    return rule


class _Ctx:
    """Adapter so reduction combiners (written for ExprCtx) work in opaque rules."""

    def __init__(self, ctx: Any) -> None:
        self.helper = ctx.helper
        self.out_aval = ctx.out_avals[0]


def _reduction_combine(name: str):
    red = REDUCTIONS[name]
    return lambda ctx, a, v: red.combine(_Ctx(ctx), a, v)


opaque("cumsum")(_cumulative(lambda dt: 0, _reduction_combine("reduce_sum")))
opaque("cumprod")(_cumulative(lambda dt: 1, _reduction_combine("reduce_prod")))
opaque("cummax")(_cumulative(REDUCTIONS["reduce_max"].identity, _reduction_combine("reduce_max")))
opaque("cummin")(_cumulative(REDUCTIONS["reduce_min"].identity, _reduction_combine("reduce_min")))
opaque("cumlogsumexp")(
    _cumulative(lambda dt: -np.inf, lambda ctx, a, v: f"{ctx.helper('fg_logaddexp')}({a}, {v})")
)


# -- sort: a stable argsort per lane (lexicographic keys by successive stable sorts)
@opaque("sort")
def _sort(ctx, *operands, dimension, is_stable, num_keys):
    shape = ctx.in_avals[0].shape
    names = [ctx.arg(x) for x in operands]
    for out, a in zip(ctx.outs, ctx.in_avals, strict=True):
        ctx.emit(f"{out} = np.empty({ctx.shape(shape)}, {ctx.dtype(a.dtype)})")
    n = shape[dimension]
    kept = [m for d, m in enumerate(shape) if d != dimension]
    with loops(ctx, kept) as idx:
        parts = list(idx)
        parts.insert(dimension, ":")
        lane = _idx(parts)
        perm = ctx.fresh("perm")
        ctx.emit(f"{perm} = np.arange({n})")
        for k in range(num_keys - 1, -1, -1):
            key = f"{names[k]}[{lane}][{perm}]"
            if ctx.in_avals[k].dtype.kind == "b":
                key = f"{key}.astype(np.uint8)"
            ctx.emit(f"{perm} = {perm}[np.argsort({key}, kind='mergesort')]")
        for out, name in zip(ctx.outs, names, strict=True):
            ctx.emit(f"{out}[{lane}] = {name}[{lane}][{perm}]")


# -- gather / scatter: XLA semantics as funcgrad.lax.indexing documents them, as loops
def _starts_from_indices(
    ctx, indices, bvars, operand_shape, window, index_map, obd, ibd, mode
) -> tuple[dict[int, str], str | None]:
    """Start index per indexed operand axis (clamped, or checked for FILL_OR_DROP)."""
    starts: dict[int, str] = {}
    valid = None
    fill = getattr(mode, "name", str(mode)) == "FILL_OR_DROP"
    ind = ctx.arg(indices)
    for k, d in enumerate(index_map):
        s = ctx.fresh("s")
        hi = operand_shape[d] - window[d]
        ctx.emit(f"{s} = int({ind}[{_idx([*bvars, str(k)])}])")
        if fill:
            ok = f"(0 <= {s} <= {hi})"
            valid = ok if valid is None else f"{valid} and {ok}"
        else:
            ctx.emit(f"{s} = min(max({s}, 0), {max(hi, 0)})")
        starts[d] = s
    for o, i in zip(obd, ibd, strict=True):
        starts[o] = bvars[i]
    return starts, valid


@opaque("gather")
def _gather(ctx, operand, indices, *, dimension_numbers, slice_sizes, mode, fill_value, **_):
    from funcgrad.lax.indexing import default_fill_value

    dn = dimension_numbers
    oa, ia = ctx.in_avals
    out, oaval = ctx.outs[0], ctx.out_avals[0]
    ctx.emit(f"{out} = np.empty({ctx.shape(oaval.shape)}, {ctx.dtype(oaval.dtype)})")
    if 0 in oaval.shape:
        return
    src = ctx.arg(operand)
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    kept = [d for d in range(oa.ndim) if d not in dropped]
    with loops(ctx, ia.shape[:-1], "b") as bvars:
        starts, valid = _starts_from_indices(
            ctx,
            indices,
            bvars,
            oa.shape,
            slice_sizes,
            dn.start_index_map,
            dn.operand_batching_dims,
            dn.start_indices_batching_dims,
            mode,
        )
        with loops(ctx, [slice_sizes[d] for d in kept], "w") as wvars:
            wv = dict(zip(kept, wvars, strict=True))
            it_k, it_b = iter(kept), iter(bvars)
            out_idx = [
                wv[next(it_k)] if p in dn.offset_dims else next(it_b) for p in range(oaval.ndim)
            ]
            src_idx = []
            for d in range(oa.ndim):
                parts = [p for p in (starts.get(d), wv.get(d)) if p is not None]
                src_idx.append(" + ".join(parts) if parts else "0")
            read = f"{src}[{_idx(src_idx)}]"
            if valid is not None:
                fv = default_fill_value(oaval.dtype) if fill_value is None else fill_value
                read = f"({read} if {valid} else {ctx.lit(fv, oaval.dtype)})"
            ctx.emit(f"{out}[{_idx(out_idx)}] = {read}")


def _scatter(combine: str | None):
    def rule(ctx, operand, indices, updates, *, dimension_numbers, mode, **_):
        dn = dimension_numbers
        oa, ia, ua = ctx.in_avals
        out = ctx.outs[0]
        ctx.emit(f"{out} = {ctx.arg(operand)}.copy()")
        upd = ctx.arg(updates)
        inserted = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
        win_axes = [d for d in range(oa.ndim) if d not in inserted]
        window = [1] * oa.ndim
        for d, u in zip(win_axes, dn.update_window_dims, strict=True):
            window[d] = ua.shape[u]
        if 0 in ua.shape:
            return
        with loops(ctx, ia.shape[:-1], "b") as bvars:
            starts, valid = _starts_from_indices(
                ctx,
                indices,
                bvars,
                oa.shape,
                window,
                dn.scatter_dims_to_operand_dims,
                dn.operand_batching_dims,
                dn.scatter_indices_batching_dims,
                mode,
            )
            if valid is not None:
                ctx.emit(f"if {valid}:")
                ctx.push()
            sizes = [ua.shape[u] for u in dn.update_window_dims]
            with loops(ctx, sizes, "w") as wvars:
                wv = dict(zip(win_axes, wvars, strict=True))
                uw = dict(zip(dn.update_window_dims, wvars, strict=True))
                it_b = iter(bvars)
                upd_idx = [uw[p] if p in uw else next(it_b) for p in range(ua.ndim)]
                dst = []
                for d in range(oa.ndim):
                    parts = [p for p in (starts.get(d), wv.get(d)) if p is not None]
                    dst.append(" + ".join(parts) if parts else "0")
                cell = f"{out}[{_idx(dst)}]"
                val = f"{upd}[{_idx(upd_idx)}]"
                if combine is not None:
                    for h in ("fg_min", "fg_max"):
                        if h in combine:
                            ctx.helper(h)
                    val = combine.format(cell=cell, val=val)
                ctx.emit(f"{cell} = {val}")
            if valid is not None:
                ctx.pop()

    return rule


opaque("scatter")(_scatter(None))
opaque("scatter-add")(_scatter("{cell} + {val}"))
opaque("scatter-mul")(_scatter("{cell} * {val}"))
opaque("scatter-min")(_scatter("fg_min({cell}, {val})"))
opaque("scatter-max")(_scatter("fg_max({cell}, {val})"))


# -- threefry2x32: the elementwise (broadcasting) random-bits block, two results
@opaque("threefry2x32")
def _threefry2x32(ctx, *operands):
    shape = ctx.out_avals[0].shape
    names = []
    for x, a in zip(operands, ctx.in_avals, strict=True):
        if a.ndim == 0:  # key words, a zero counter word: one scalar, read once
            name = ctx.fresh("w")
            ctx.emit(f"{name} = {ctx.scalar(x)}")
            names.append(name)
        else:
            names.append(ctx.arg(x))
    for out in ctx.outs:
        ctx.emit(f"{out} = np.empty({ctx.shape(shape)}, np.uint32)")
    fn = ctx.helper("fg_threefry2x32")
    with loops(ctx, shape) as idx:
        reads = []
        for name, a in zip(names, ctx.in_avals, strict=True):
            if a.ndim == 0:
                reads.append(name)
                continue
            lead = len(shape) - a.ndim
            parts = ["0" if n == 1 else idx[lead + k] for k, n in enumerate(a.shape)]
            reads.append(f"{name}[{_idx(parts)}]")
        y1, y2 = ctx.fresh("y"), ctx.fresh("y")
        ctx.emit(f"{y1}, {y2} = {fn}({', '.join(reads)})")
        ctx.emit(f"{ctx.outs[0]}[{_idx(idx)}] = {y1}")
        ctx.emit(f"{ctx.outs[1]}[{_idx(idx)}] = {y2}")


@opaque("custom_lin")
def _custom_lin(ctx, *args, **params):
    from funcgrad.errors import LoweringError

    raise LoweringError(
        "numba backend: 'custom_lin' (the linear part of a custom_vjp function) only exists "
        "between linearize and transpose; jit the whole gradient (jit(grad(f))) instead of "
        "the linearized function"
    )
