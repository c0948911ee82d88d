"""Opaque lowering rules: primitives that get their own statements rather than fusing.

Each rule is ``rule(ctx, *operands, **params)`` and emits lines that assign ``ctx.outs``
(fresh, C-contiguous arrays, except where marked ``returns_view``). ``ctx.arg(x)`` names an
array operand, ``ctx.scalar(x)`` a 0-d one as a scalar, ``loops(ctx, sizes)`` opens a loop
nest and yields its index names. Rules use numba-supported NumPy calls where those are
fast and explicit loops elsewhere (BLAS through the ``fg_gemm``/``fg_gemv`` helpers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad.backend.numba import sizes as sizes_mod
from funcgrad.backend.numba.lowering import REDUCTIONS, cast, opaque
from funcgrad.backend.numba.sizes import concrete

#: ``dot_general`` calls BLAS when ``M*N*K`` reaches this (``benchmarks/workloads/
#: dot_cutover.py``); below it an inlined loop avoids the call overhead.
DOT_BLAS_MIN = 4096


@contextmanager
def loops(ctx: Any, sizes: Sequence[int], base: str = "j") -> Iterator[list[str]]:
    """Open ``for`` loops over ``sizes`` (outermost first); yields the index names. An axis
    of size 1 gets no loop (its index is ``0``): less code for numba to type and LLVM to
    compile."""
    names = []
    opened = 0
    try:
        for n in sizes:
            if not isinstance(n, sizes_mod.Dim) and n == 1:
                names.append("0")
                continue
            name = ctx.fresh(base)
            names.append(name)
            ctx.emit(f"for {name} in range({n}):")
            ctx.push()
            opened += 1
        yield names
    finally:
        for _ in range(opened):
            ctx.pop()


def _idx(parts: Sequence[str]) -> str:
    return ", ".join(parts) if parts else "()"


def _prod(xs: Sequence[int]) -> int:
    """A product of sizes that keeps their symbolic forms (``sizes.Dim``)."""
    n: Any = 1
    for x in xs:
        n = n * x
    return n


# -- reshape (a general one; unit-axis reshapes are views in plan.py)
@opaque("reshape", returns_view=True)
def _reshape(ctx, x, *, new_sizes, **_):
    # The result's shape, not ``new_sizes``: its sizes carry their symbolic forms.
    ctx.emit(f"{ctx.outs[0]} = {ctx.arg(x)}.reshape({ctx.shape(ctx.out_avals[0].shape)})")


# -- concatenate
@opaque("concatenate")
def _concatenate(ctx, *xs, dimension):
    """Each operand is a contiguous block of every output row (axes before ``dimension``
    collapsed into rows, the rest into columns): a two-loop copy per operand. Loops, not
    ``out[:, a:b] = x``: numba's slice assignment (broadcasting, its shape-mismatch error
    path) costs seconds of compile time on first use and ~0.2 s per further site."""
    out, aval = ctx.outs[0], ctx.out_avals[0]
    ctx.empty(out, aval.shape, aval.dtype)
    rows = _prod(aval.shape[:dimension])
    inner = _prod(aval.shape[dimension + 1 :])
    width = aval.shape[dimension] * inner
    if rows == 0 or width == 0:
        return
    out2 = ctx.fresh(out + "_r")
    ctx.emit(f"{out2} = {out}.reshape(({rows}, {width}))")
    off = 0
    for x, a in zip(xs, ctx.in_avals, strict=True):
        n = a.shape[dimension] * inner
        if n:
            x2 = _flat2(ctx, ctx.arg(x), rows, n)
            _copy2(ctx, out2, x2, rows, n, off)
        off += n


def _flat2(ctx, x: str, rows: int, cols: int) -> str:
    """``x`` (C-contiguous) reshaped to ``(rows, cols)``, named."""
    name = ctx.fresh(x + "_r")
    ctx.emit(f"{name} = {x}.reshape(({rows}, {cols}))")
    return name


def _copy2(ctx, dst: str, src: str, rows: int, cols: int, col0: int = 0) -> None:
    """``dst[r, col0 + c] = src[r, c]`` over ``(rows, cols)`` as loops (a size-1 axis gets
    no loop)."""
    with loops(ctx, [n for n in (rows, cols) if n != 1]) as idx:
        it = iter(idx)
        r = "0" if rows == 1 else next(it)
        c = "0" if cols == 1 else next(it)
        dc = str(col0) if c == "0" else _affine(col0, 1, c)
        ctx.emit(f"{dst}[{r}, {dc}] = {src}[{r}, {c}]")


# -- pad
@opaque("pad")
def _pad(ctx, x, padding_value, *, padding_config):
    """Fill, then copy ``x`` into its (strided) place with loops. Trailing axes without
    padding are collapsed into one; an all-zero config is a flat copy."""
    out, aval = ctx.outs[0], ctx.out_avals[0]
    xa = ctx.in_avals[0]
    if all(tuple(c) == (0, 0, 0) for c in padding_config):
        size = _prod(xa.shape)
        ctx.empty(out, aval.shape, aval.dtype)
        if xa.ndim == 0:
            ctx.emit(f"{out}[()] = {ctx.arg(x)}[()]")
        elif size:
            o1, x1 = ctx.fresh(out + "_f"), ctx.fresh("xf")
            ctx.emit(f"{o1} = {out}.reshape(({size},))")
            ctx.emit(f"{x1} = {ctx.arg(x)}.reshape(({size},))")
            with loops(ctx, [size]) as (i,):
                ctx.emit(f"{o1}[{i}] = {x1}[{i}]")
        return
    ctx.fill(out, aval.shape, aval.dtype, ctx.scalar(padding_value))
    # Axes from `tail` on are unpadded: one collapsed axis of `inner` elements.
    tail = len(padding_config)
    while tail > 0 and tuple(padding_config[tail - 1]) == (0, 0, 0):
        tail -= 1
    inner = _prod(xa.shape[tail:])
    ranges = []  # per padded axis: (output start, step, input start, count)
    padded = zip(xa.shape[:tail], aval.shape[:tail], padding_config[:tail], strict=True)
    for n, m, (lo, _hi, it) in padded:
        step = it + 1
        i_min = 0 if lo >= 0 else -(lo // step) if lo % step == 0 else -lo // step + 1
        i_max = min(n - 1, (m - 1 - lo) // step) if m - 1 - lo >= 0 else -1
        count = i_max - i_min + 1
        if count <= 0:
            return  # nothing of x lands in the output
        ranges.append((lo + i_min * step, step, i_min, count))
    if inner == 0:
        return
    xn, on = ctx.arg(x), out
    counts = [c for _, _, _, c in ranges]
    if tail < len(padding_config):
        counts.append(inner)
    if tail < len(padding_config) - 1:
        xn, on = ctx.fresh("xr"), ctx.fresh(out + "_r")
        ctx.emit(f"{xn} = {ctx.arg(x)}.reshape({ctx.shape((*xa.shape[:tail], inner))})")
        ctx.emit(f"{on} = {out}.reshape({ctx.shape((*aval.shape[:tail], inner))})")
    with loops(ctx, counts) as idx:
        dst, src = [], []
        for (o0, step, i0, _), i in zip(ranges, idx, strict=False):
            dst.append(_affine(o0, step, i))
            src.append(_affine(i0, 1, i))
        if len(idx) > len(ranges):
            dst.append(idx[-1])
            src.append(idx[-1])
        ctx.emit(f"{on}[{_idx(dst)}] = {xn}[{_idx(src)}]")


def _affine(start: int, step: int, i: str) -> str:
    """``start + step * i`` without the no-op parts."""
    term = i if step == 1 else f"{step} * {i}"
    return term if start == 0 else f"{start} + {term}"


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
    out = ctx.outs[0]
    starts = _starts(ctx, idx, xa.shape, slice_sizes)
    xn = ctx.arg(x)
    ctx.empty(out, tuple(slice_sizes), xa.dtype)
    if not slice_sizes:
        ctx.emit(f"{out}[()] = {xn}[()]")
        return
    with loops(ctx, slice_sizes) as ivs:
        src = [f"{s} + {i}" for s, i in zip(starts, ivs, strict=True)]
        ctx.emit(f"{out}[{_idx(ivs)}] = {xn}[{_idx(src)}]")


@opaque("dynamic_update_slice")
def _dynamic_update_slice(ctx, x, update, *idx):
    xa, ua = ctx.in_avals[0], ctx.in_avals[1]
    out = ctx.outs[0]
    ctx.emit(f"{out} = {ctx.arg(x)}.copy()")
    starts = _starts(ctx, idx, xa.shape, ua.shape)
    un = ctx.arg(update)
    if not ua.shape:
        ctx.emit(f"{out}[()] = {un}[()]")
        return
    with loops(ctx, ua.shape) as ivs:
        dst = [f"{s} + {i}" for s, i in zip(starts, ivs, strict=True)]
        ctx.emit(f"{out}[{_idx(dst)}] = {un}[{_idx(ivs)}]")


# -- dot_general: BLAS (the fg_gemm/fg_gemv helpers on contiguous matrices) or a loop nest
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


def _layout(aval, perm: list[int], split: int) -> str | None:
    """How ``x`` holds the matrix whose rows are axes ``perm[:split]`` and columns
    ``perm[split:]``: "n" (its memory is that matrix, row-major), "t" (its memory is the
    transposed matrix) or None (a copy is needed). Unit axes do not count."""
    rows = [d for d in perm[:split] if aval.shape[d] != 1]
    cols = [d for d in perm[split:] if aval.shape[d] != 1]
    if rows + cols == sorted(rows + cols):
        return "n"
    if cols + rows == sorted(cols + rows):
        return "t"
    return None


def _blas_matrix(ctx, x: str, aval, perm: list[int], split: int, rows: int, cols: int):
    """``x`` as a C-contiguous 2-D array for BLAS and whether BLAS transposes it."""
    how = _layout(aval, perm, split)
    if how == "n":
        return f"{x}.reshape(({rows}, {cols}))", False
    if how == "t":
        return f"{x}.reshape(({cols}, {rows}))", True
    return _permuted_copy(ctx, x, aval.shape, perm, (rows, cols)), False


def _blas_vector(ctx, x: str, aval, perm: list[int], n: int) -> str:
    """``x`` (one non-unit dimension group, in ``perm`` order) as a contiguous vector."""
    if _layout(aval, perm, len(perm)) == "n":
        return f"{x}.reshape(({n},))"
    return _permuted_copy(ctx, x, aval.shape, perm, (n,))


def _matrix3(ctx, x: str, aval, perm: list[int], b: int, rows: int, cols: int) -> str:
    """``x`` as a C-contiguous ``(b, rows, cols)`` array."""
    if _layout(aval, perm, len(perm)) == "n":
        return f"{x}.reshape(({b}, {rows}, {cols}))"
    return _permuted_copy(ctx, x, aval.shape, perm, (b, rows, cols))


def _flag(v: bool) -> str:
    """A transpose flag for the BLAS helpers: typed, so numba compiles one helper version
    for both values (a literal ``True`` would get its own)."""
    return f"np.bool_({v})"


@opaque("dot_general")
def _dot_general(ctx, lhs, rhs, *, dimension_numbers, preferred_element_type=None, **_):
    """BLAS through the ``fg_gemm``/``fg_gemv`` helpers (``helpers.py``) when the product is
    large (``M*N*K >= DOT_BLAS_MIN``) and of one float/complex dtype; operands are passed
    in place (a transposed layout as BLAS's transpose flag) unless their axes need a
    permuted copy. Otherwise an inlined loop nest."""
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
    if dt.kind in "fc" and la.dtype == dt and ra.dtype == dt and min(M, N, K) > 0:
        work = int(M) * int(N) * int(K)
        how = "BLAS" if blas else "inlined loops"
        side = ">=" if blas else "<"
        ctx.specialize(
            f"dot_general: BLAS from M*N*K >= DOT_BLAS_MIN = {DOT_BLAS_MIN}, loops below",
            f"{concrete(la)} x {concrete(ra)} {how} ({work} {side} {DOT_BLAS_MIN})",
        )
    if not blas:
        _dot_loops(ctx, a, b, la, ra, (lb, lf, lc), (rb, rf, rc), out, oaval)
        return
    ctx.empty(out, oaval.shape, dt)
    if B == 1:
        lperm, rperm = [*lf, *lc], [*rc, *rf]
        if N == 1:  # out[m] = op(a)[m, :] . b
            a2, ta = _blas_matrix(ctx, a, la, lperm, len(lf), M, K)
            b1 = _blas_vector(ctx, b, ra, rperm, K)
            ctx.emit(f"{ctx.helper('fg_gemv')}({a2}, {b1}, {out}.reshape(({M},)), {_flag(ta)})")
        elif M == 1:  # out[n] = op(b)[:, n] . a: the transposed matrix times a
            b2, tb = _blas_matrix(ctx, b, ra, rperm, len(rc), K, N)
            a1 = _blas_vector(ctx, a, la, lperm, K)
            o1 = f"{out}.reshape(({N},))"
            ctx.emit(f"{ctx.helper('fg_gemv')}({b2}, {a1}, {o1}, {_flag(not tb)})")
        else:
            a2, ta = _blas_matrix(ctx, a, la, lperm, len(lf), M, K)
            b2, tb = _blas_matrix(ctx, b, ra, rperm, len(rc), K, N)
            o2 = f"{out}.reshape(({M}, {N}))"
            flags = f"{_flag(ta)}, {_flag(tb)}"
            ctx.emit(f"{ctx.helper('fg_gemm')}({a2}, {b2}, {o2}, {flags})")
        return
    an, bn, o3 = ctx.fresh("lhs"), ctx.fresh("rhs"), ctx.fresh("o")
    ctx.emit(f"{an} = {_matrix3(ctx, a, la, [*lb, *lf, *lc], B, M, K)}")
    ctx.emit(f"{bn} = {_matrix3(ctx, b, ra, [*rb, *rc, *rf], B, K, N)}")
    ctx.emit(f"{o3} = {out}.reshape(({B}, {M}, {N}))")
    with loops(ctx, [B]) as (ib,):
        flags = f"{_flag(False)}, {_flag(False)}"
        ctx.emit(f"{ctx.helper('fg_gemm')}({an}[{ib}], {bn}[{ib}], {o3}[{ib}], {flags})")


def _pairs(axes: Sequence[int], names: Sequence[str]) -> dict[int, str]:
    return dict(zip(axes, names, strict=True))


def _dot_loops(ctx, a, b, la, ra, ldims, rdims, out, oaval) -> None:
    """dot_general as a loop nest indexing both operands in place (any layout, any dtype):
    batch, lhs free and contracting axes outside, rhs free axes innermost."""
    (lb, lf, lc), (rb, rf, rc) = ldims, rdims
    dt = oaval.dtype
    ctx.empty(out, oaval.shape, dt)
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


# -- conv_general_dilated: one loop nest, kernel taps outside output positions
@opaque("conv_general_dilated")
def _conv_general_dilated(
    ctx,
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    **_,
):
    """Zero the output, then for each batch element, kernel tap and input feature add
    ``input * kernel`` into every output position the tap reaches, accumulating in the
    output dtype. Loops: batch, one per kernel axis, group, input feature, one per output
    axis (over the positions whose tap lands inside the input: a range computed per tap, so
    padding costs nothing), and innermost the group's output features (the contiguous axis
    of ``NHWC``/``HWIO``, so it vectorizes). Taps outside positions: consecutive iterations
    update different output cells, so no iteration waits on the previous one's store. With
    ``lhs_dilation``, taps that land between input elements are skipped with ``continue``."""
    dn = dimension_numbers
    la, ra = ctx.in_avals
    out, oaval = ctx.outs[0], ctx.out_avals[0]
    dt = oaval.dtype
    ctx.empty(out, oaval.shape, dt)
    size = _prod(oaval.shape)
    if size == 0:
        return
    flat = ctx.fresh(out + "_f")
    ctx.emit(f"{flat} = {out}.reshape(({size},))")
    with loops(ctx, [size]) as (i,):
        ctx.emit(f"{flat}[{i}] = {ctx.lit(0, dt)}")
    x, w = ctx.arg(lhs), ctx.arg(rhs)
    g = feature_group_count
    # The window and the output features per group (the innermost, vectorized loop) are
    # compiled in: constant trip counts let LLVM unroll and vectorize the inner loops
    # without runtime checks (measured: a small CNN train step compiles ~20% faster than
    # with them read from the shapes). They are the weights' sizes in a forward pass and
    # in both transposes of backprop (whose rhs input features are the batch: those stay
    # symbolic), so a new batch size still reuses the kernel.
    n_in = ra.shape[dn.rhs_spec[1]]  # input features per group
    n_out = int(ra.shape[dn.rhs_spec[0]]) // g  # output features per group
    in_sizes = [la.shape[d] for d in dn.lhs_spec[2:]]
    k_sizes = [int(ra.shape[d]) for d in dn.rhs_spec[2:]]
    ctx.specialize(
        "conv_general_dilated: the window and output features are compiled in",
        f"{concrete(ra)}",
    )
    o_sizes = [oaval.shape[d] for d in dn.out_spec[2:]]
    if 0 in in_sizes or 0 in k_sizes or n_in == 0:
        return

    def at(name: str, aval, spec, lead: str, feature: str, spatial: Sequence[str]) -> str:
        parts = [""] * aval.ndim
        parts[spec[0]], parts[spec[1]] = lead, feature
        for axis, v in zip(spec[2:], spatial, strict=True):
            parts[axis] = v
        expr = f"{name}[{_idx(parts)}]"
        return expr if aval.dtype == dt or name == out else cast(expr, dt)

    with loops(ctx, [la.shape[dn.lhs_spec[0]]], "b") as (b,), loops(ctx, k_sizes, "k") as taps:
        # Per axis: the positions p whose tap lands in the (dilated) input, q = st*p + rd*k
        # - lo in [0, span).
        bounds = []
        for d in range(len(taps)):
            st, rd, ld, lo = window_strides[d], rhs_dilation[d], lhs_dilation[d], padding[d][0]
            span = (in_sizes[d] - 1) * ld + 1
            n = o_sizes[d]
            shift = _affine(-lo, rd, taps[d])  # q = st * p + shift
            start, stop = "0", str(n)
            if lo > 0:  # p >= ceil(-shift / st)
                start = ctx.fresh("lo")
                first = f"-(({shift}) // {st})" if st > 1 else f"-({shift})"
                ctx.emit(f"{start} = max(0, {first})")
            if (n - 1) * st + (k_sizes[d] - 1) * rd - lo >= span:  # p < ceil((span - shift) / st)
                stop = ctx.fresh("hi")
                last = f"-(({shift} - {span}) // {st})" if st > 1 else f"{span} - ({shift})"
                ctx.emit(f"{stop} = min({n}, {last})")
            bounds.append((start, stop, shift))
        with (
            loops(ctx, [g] if g > 1 else [], "g") as gv,
            loops(ctx, [n_in], "c") as (c,),
        ):
            gi = gv[0] if gv else None
            cin = c if gi is None else f"{gi} * {n_in} + {c}"
            src, pv = [], []
            for d, (start, stop, shift) in enumerate(bounds):
                p = ctx.fresh("p")
                pv.append(p)
                rng = stop if start == "0" else f"{start}, {stop}"
                ctx.emit(f"for {p} in range({rng}):")
                ctx.push()
                q = _affine(0, window_strides[d], p)
                q = q if shift == "0" else f"{q} + {shift}"
                ld = lhs_dilation[d]
                if ld > 1:
                    qn = ctx.fresh("q")
                    ctx.emit(f"{qn} = {q}")
                    ctx.emit(f"if {qn} % {ld} != 0:")
                    with ctx.indent():
                        ctx.emit("continue")
                    q = f"{qn} // {ld}"
                src.append(q)
            a = ctx.fresh("a")
            ctx.emit(f"{a} = {at(x, la, dn.lhs_spec, b, cin, src)}")
            with loops(ctx, [n_out], "f") as (f,):
                fo = f if gi is None else f"{gi} * {n_out} + {f}"
                cell = at(out, oaval, dn.out_spec, b, fo, pv)
                ctx.emit(f"{cell} += {a} * {at(w, ra, dn.rhs_spec, fo, c, taps)}")
            for _ in pv:
                ctx.pop()


# -- argmax / argmin: the first extreme wins; the first NaN wins over everything
def _arg_reduction(better: str):
    def rule(ctx, x, *, axes, index_dtype):
        (axis,) = axes
        xa = ctx.in_avals[0]
        out, oaval = ctx.outs[0], ctx.out_avals[0]
        xn = ctx.arg(x)
        ctx.empty(out, oaval.shape, oaval.dtype)
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
        ctx.empty(out, xa.shape, dt)
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
        ctx.empty(out, shape, a.dtype)
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
        with loops(ctx, [n]) as (j,):
            dst, src = list(idx), list(idx)
            dst.insert(dimension, j)
            src.insert(dimension, f"{perm}[{j}]")
            for out, name in zip(ctx.outs, names, strict=True):
                ctx.emit(f"{out}[{_idx(dst)}] = {name}[{_idx(src)}]")


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
    ctx.empty(out, oaval.shape, oaval.dtype)
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
        ctx.empty(out, shape, np.uint32)
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
