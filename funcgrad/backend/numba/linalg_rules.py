"""Lowerings of the decompositions (``funcgrad/lax/linalg.py``): one statement block each.

Leading axes are flattened into one batch loop; each matrix is copied into a fresh 2-D
array and handed to the LAPACK routine numba's own ``np.linalg`` wraps (``potrf`` for
``cholesky``, ``geqrf``/``orgqr`` for ``qr``, ``syevd``/``heevd`` for ``eigh``, ``gesdd``
for ``svd``): the same drivers NumPy calls, so kernels and eager mode agree, eigenvector
signs included. numba has no triangular solve or LU with pivots: those are loops here
(substitution; LAPACK's unblocked ``getf2`` with its first-largest pivot choice).

- A complete ``qr`` of a tall ``m x n`` matrix factors ``[a | 0]`` (``m x m``): the zero
  columns give identity reflectors, so ``q`` is exactly LAPACK's (and NumPy's) complete
  ``q`` and ``r`` the first ``n`` columns.
- ``cholesky`` of a matrix that is not positive definite gives NaN (numba's routine
  raises; the rule catches that per matrix), as the eager impl does.
"""

from __future__ import annotations

from typing import Any

from funcgrad.backend.numba.lowering import opaque
from funcgrad.backend.numba.opaque_rules import loops


def _prod(xs: Any) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _as3(ctx: Any, x: str, shape: tuple[int, ...]) -> str:
    """``x`` viewed as ``(batch, rows, cols)``."""
    name = ctx.fresh(x + "_3")
    b = _prod(shape[:-2])
    ctx.emit(f"{name} = {x}.reshape(({b}, {shape[-2]}, {shape[-1]}))")
    return name


def _out3(ctx: Any, k: int) -> str:
    """Allocate output ``k`` and name its ``(batch, rows, cols)`` (or ``(batch, n)``) view."""
    out, aval = ctx.outs[k], ctx.out_avals[k]
    ctx.empty(out, aval.shape, aval.dtype)
    return out


def _view(ctx: Any, out: str, shape: tuple[int, ...], tail: int) -> str:
    name = ctx.fresh(out + "_v")
    b = _prod(shape[: len(shape) - tail])
    dims = ", ".join(str(d) for d in (b, *shape[len(shape) - tail :]))
    ctx.emit(f"{name} = {out}.reshape(({dims},))")
    return name


def _conj(expr: str, dtype: Any) -> str:
    return f"np.conj({expr})" if dtype.kind == "c" else expr


# -- cholesky
@opaque("cholesky")
def _cholesky(ctx, x):
    aval = ctx.in_avals[0]
    n = aval.shape[-1]
    out = _out3(ctx, 0)
    if aval.size == 0:
        return
    x3 = _as3(ctx, ctx.arg(x), aval.shape)
    o3 = _view(ctx, out, aval.shape, 2)
    a, lf = ctx.fresh("a"), ctx.fresh("L")
    with loops(ctx, [_prod(aval.shape[:-2])], "b") as (b,):
        ctx.emit(f"{a} = np.empty(({n}, {n}), {ctx.dtype(aval.dtype)})")
        src = ctx.fresh("src")
        ctx.emit(f"{src} = {x3}[{b}]")
        with loops(ctx, [n, n]) as (i, j):
            # The Hermitian matrix the lower triangle defines.
            ctx.emit(
                f"{a}[{i}, {j}] = {src}[{i}, {j}] if {i} >= {j} else "
                f"{_conj(f'{src}[{j}, {i}]', aval.dtype)}"
            )
        ctx.emit("try:")
        ctx.push()
        ctx.emit(f"{lf} = np.linalg.cholesky({a})")
        _copy_out(ctx, o3, b, lf, n, n, fortran=False)
        ctx.pop()
        ctx.emit("except Exception:")
        ctx.push()
        with loops(ctx, [n, n]) as (i, j):
            ctx.emit(f"{o3}[{b}, {i}, {j}] = np.nan")  # not positive definite
        ctx.pop()


# -- triangular_solve: substitution loops
@opaque("triangular_solve")
def _triangular_solve(ctx, a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    """Row-oriented substitution on a C-contiguous work matrix holding the right-hand
    sides as rows' columns: each step is an axpy over all right-hand sides at once (a
    contiguous, vectorizable inner loop)."""
    a_aval, b_aval = ctx.in_avals
    out = _out3(ctx, 0)
    if b_aval.size == 0:
        return
    m = a_aval.shape[-1]
    a3 = _as3(ctx, ctx.arg(a), a_aval.shape)
    b3 = _as3(ctx, ctx.arg(b), b_aval.shape)
    o3 = _view(ctx, out, b_aval.shape, 2)
    dtype = b_aval.dtype
    # Solve T w = r for all columns r, T = op(a) (left) or op(a)^T (right, on b^T).
    flip = transpose_a if left_side else not transpose_a
    t_lower = lower != flip
    ncols = b_aval.shape[-1] if left_side else b_aval.shape[-2]

    def t_at(av: str, i: str, j: str) -> str:
        e = f"{av}[{j}, {i}]" if flip else f"{av}[{i}, {j}]"
        return _conj(e, dtype) if conjugate_a else e

    w, av, bv, ov, t = (ctx.fresh(n) for n in ("w", "av", "bv", "ov", "t"))
    with loops(ctx, [_prod(b_aval.shape[:-2])], "b") as (bb,):
        ctx.emit(f"{av} = {a3}[{bb}]")
        ctx.emit(f"{bv} = {b3}[{bb}]")
        ctx.emit(f"{ov} = {o3}[{bb}]")
        ctx.emit(f"{w} = np.empty(({m}, {ncols}), {ctx.dtype(dtype)})")
        with loops(ctx, [m, ncols]) as (i, c):
            ctx.emit(
                f"{w}[{i}, {c}] = {bv}[{i}, {c}]"
                if left_side
                else f"{w}[{i}, {c}] = {bv}[{c}, {i}]"
            )
        i, j, c = ctx.fresh("i"), ctx.fresh("j"), ctx.fresh("c")
        order = f"range({m})" if t_lower else f"range({m - 1}, -1, -1)"
        inner = f"range({i})" if t_lower else f"range({i} + 1, {m})"
        ctx.emit(f"for {i} in {order}:")
        ctx.push()
        ctx.emit(f"for {j} in {inner}:")
        ctx.push()
        ctx.emit(f"{t} = {t_at(av, i, j)}")
        ctx.emit(f"for {c} in range({ncols}):")
        ctx.push()
        ctx.emit(f"{w}[{i}, {c}] -= {t} * {w}[{j}, {c}]")
        ctx.pop()
        ctx.pop()
        if not unit_diagonal:
            ctx.emit(f"{t} = {t_at(av, i, i)}")
            ctx.emit(f"for {c} in range({ncols}):")
            ctx.push()
            ctx.emit(f"{w}[{i}, {c}] = {w}[{i}, {c}] / {t}")
            ctx.pop()
        ctx.pop()
        with loops(ctx, [m, ncols]) as (i2, c2):
            ctx.emit(
                f"{ov}[{i2}, {c2}] = {w}[{i2}, {c2}]"
                if left_side
                else f"{ov}[{c2}, {i2}] = {w}[{i2}, {c2}]"
            )


# -- lu: LAPACK's getf2 as loops
@opaque("lu")
def _lu(ctx, x):
    aval = ctx.in_avals[0]
    m, n = aval.shape[-2:]
    k = min(m, n)
    batch = _prod(aval.shape[:-2])
    lu_out, piv_out, perm_out = (_out3(ctx, i) for i in range(3))
    if batch == 0:
        return
    p3 = _view(ctx, perm_out, ctx.out_avals[2].shape, 1)
    with loops(ctx, [batch, m], "b") as (b, i):
        ctx.emit(f"{p3}[{b}, {i}] = {i}")
    if m == 0 or n == 0:
        return
    x3 = _as3(ctx, ctx.arg(x), aval.shape)
    o3 = _view(ctx, lu_out, aval.shape, 2)
    v3 = _view(ctx, piv_out, ctx.out_avals[1].shape, 1)
    with loops(ctx, [batch, m, n], "b") as (b, i, j):
        ctx.emit(f"{o3}[{b}, {i}, {j}] = {x3}[{b}, {i}, {j}]")
    p, best, val, t, piv = (ctx.fresh(s) for s in ("p", "best", "v", "t", "pv"))
    with loops(ctx, [batch, k], "b") as (b, j):
        ctx.emit(f"{p} = {j}")
        ctx.emit(f"{best} = abs({o3}[{b}, {j}, {j}])")
        i = ctx.fresh("i")
        ctx.emit(f"for {i} in range({j} + 1, {m}):")
        ctx.push()
        ctx.emit(f"{val} = abs({o3}[{b}, {i}, {j}])")
        ctx.emit(f"if {val} > {best}:")
        ctx.push()
        ctx.emit(f"{best} = {val}")
        ctx.emit(f"{p} = {i}")
        ctx.pop()
        ctx.pop()
        ctx.emit(f"{v3}[{b}, {j}] = {p}")
        ctx.emit(f"if {p} != {j}:")
        ctx.push()
        c = ctx.fresh("c")
        ctx.emit(f"for {c} in range({n}):")
        ctx.push()
        ctx.emit(f"{t} = {o3}[{b}, {j}, {c}]")
        ctx.emit(f"{o3}[{b}, {j}, {c}] = {o3}[{b}, {p}, {c}]")
        ctx.emit(f"{o3}[{b}, {p}, {c}] = {t}")
        ctx.pop()
        ctx.emit(f"{t} = {p3}[{b}, {j}]")
        ctx.emit(f"{p3}[{b}, {j}] = {p3}[{b}, {p}]")
        ctx.emit(f"{p3}[{b}, {p}] = {t}")
        ctx.pop()
        ctx.emit(f"{piv} = {o3}[{b}, {j}, {j}]")
        ctx.emit(f"for {i} in range({j} + 1, {m}):")
        ctx.push()
        ctx.emit(f"if {piv} != 0:")
        ctx.push()
        ctx.emit(f"{o3}[{b}, {i}, {j}] = {o3}[{b}, {i}, {j}] / {piv}")
        ctx.pop()
        ctx.emit(f"{t} = {o3}[{b}, {i}, {j}]")
        ctx.emit(f"for {c} in range({j} + 1, {n}):")
        ctx.push()
        ctx.emit(f"{o3}[{b}, {i}, {c}] -= {t} * {o3}[{b}, {j}, {c}]")
        ctx.pop()
        ctx.pop()


def _copy_in(ctx: Any, x3: str, b: str, rows: int, cols: int, dtype: Any, width: int | None = None):
    """A fresh ``(rows, width)`` copy of matrix ``b`` of ``x3`` (zero columns past ``cols``)."""
    a, src = ctx.fresh("a"), ctx.fresh("src")
    width = cols if width is None else width
    ctx.emit(f"{a} = np.zeros(({rows}, {width}), {ctx.dtype(dtype)})")
    ctx.emit(f"{src} = {x3}[{b}]")
    with loops(ctx, [rows, cols]) as (i, j):
        ctx.emit(f"{a}[{i}, {j}] = {src}[{i}, {j}]")
    return a


#: Tile edge of the copies out of LAPACK results (numba returns them in Fortran order).
TILE = 32


def _copy_out(
    ctx: Any, o3: str, b: str, src: str, rows: int, cols: int, fortran: bool = True
) -> None:
    """``o3[b] = src``. numba's ``qr``, ``eigh`` and ``svd`` return Fortran-ordered
    arrays (its ``cholesky`` a C-ordered one): those are copied in tiles, so that neither
    side is walked a whole row or column apart."""
    dst = ctx.fresh("dst")
    ctx.emit(f"{dst} = {o3}[{b}]")  # a 2-D view, indexed in the loops
    if not fortran or (rows <= TILE and cols <= TILE):
        with loops(ctx, [rows, cols]) as (i, j):
            ctx.emit(f"{dst}[{i}, {j}] = {src}[{i}, {j}]")
        return
    i0, j0, i, j = ctx.fresh("ti"), ctx.fresh("tj"), ctx.fresh("i"), ctx.fresh("j")
    ctx.emit(f"for {i0} in range(0, {rows}, {TILE}):")
    ctx.push()
    ctx.emit(f"for {j0} in range(0, {cols}, {TILE}):")
    ctx.push()
    ctx.emit(f"for {j} in range({j0}, min({j0} + {TILE}, {cols})):")
    ctx.push()
    ctx.emit(f"for {i} in range({i0}, min({i0} + {TILE}, {rows})):")
    ctx.push()
    ctx.emit(f"{dst}[{i}, {j}] = {src}[{i}, {j}]")
    for _ in range(4):
        ctx.pop()


# -- qr
@opaque("qr")
def _qr(ctx, x, *, full_matrices):
    aval = ctx.in_avals[0]
    m, n = aval.shape[-2:]
    batch = _prod(aval.shape[:-2])
    q_out, r_out = _out3(ctx, 0), _out3(ctx, 1)
    qa, ra = ctx.out_avals
    if batch == 0 or qa.size == 0 and ra.size == 0:
        return
    if m == 0 or n == 0:
        # Empty factors; a complete q of an m x 0 matrix is the identity.
        q3 = _view(ctx, q_out, qa.shape, 2)
        with loops(ctx, [batch, qa.shape[-2], qa.shape[-1]], "b") as (b, i, j):
            ctx.emit(f"{q3}[{b}, {i}, {j}] = 1 if {i} == {j} else 0")
        r3 = _view(ctx, r_out, ra.shape, 2)
        with loops(ctx, [batch, ra.shape[-2], ra.shape[-1]], "b") as (b, i, j):
            ctx.emit(f"{r3}[{b}, {i}, {j}] = 0")
        return
    x3 = _as3(ctx, ctx.arg(x), aval.shape)
    q3 = _view(ctx, q_out, qa.shape, 2)
    r3 = _view(ctx, r_out, ra.shape, 2)
    pad = full_matrices and m > n
    qq, rr = ctx.fresh("q"), ctx.fresh("r")
    with loops(ctx, [batch], "b") as (b,):
        a = _copy_in(ctx, x3, b, m, n, aval.dtype, m if pad else None)
        ctx.emit(f"{qq}, {rr} = np.linalg.qr({a})")
        _copy_out(ctx, q3, b, qq, *qa.shape[-2:])
        _copy_out(ctx, r3, b, rr, *ra.shape[-2:])


# -- eigh
@opaque("eigh")
def _eigh(ctx, x, *, lower):
    aval = ctx.in_avals[0]
    n = aval.shape[-1]
    batch = _prod(aval.shape[:-2])
    v_out, w_out = _out3(ctx, 0), _out3(ctx, 1)
    if batch == 0 or n == 0:
        return
    x3 = _as3(ctx, ctx.arg(x), aval.shape)
    v3 = _view(ctx, v_out, ctx.out_avals[0].shape, 2)
    w2 = _view(ctx, w_out, ctx.out_avals[1].shape, 1)
    a, w, v = ctx.fresh("a"), ctx.fresh("w"), ctx.fresh("v")
    with loops(ctx, [batch], "b") as (b,):
        ctx.emit(f"{a} = np.empty(({n}, {n}), {ctx.dtype(aval.dtype)})")
        xb = ctx.fresh("src")
        ctx.emit(f"{xb} = {x3}[{b}]")
        with loops(ctx, [n, n]) as (i, j):
            # numba's eigh reads the lower triangle: that of x, or that of x^H.
            src = f"{xb}[{i}, {j}]" if lower else _conj(f"{xb}[{j}, {i}]", aval.dtype)
            ctx.emit(f"{a}[{i}, {j}] = {src}")
        ctx.emit(f"{w}, {v} = np.linalg.eigh({a})")
        _copy_out(ctx, v3, b, v, n, n)
        with loops(ctx, [n]) as (i,):
            ctx.emit(f"{w2}[{b}, {i}] = {w}[{i}]")


# -- svd
@opaque("svd")
def _svd(ctx, x, *, full_matrices, compute_uv):
    aval = ctx.in_avals[0]
    m, n = aval.shape[-2:]
    batch = _prod(aval.shape[:-2])
    outs = [_out3(ctx, i) for i in range(len(ctx.outs))]
    if batch == 0:
        return
    avals = ctx.out_avals
    if m == 0 or n == 0:
        if compute_uv:  # no singular values; full u / vh are identities
            for k in (1, 2):
                o3 = _view(ctx, outs[k], avals[k].shape, 2)
                with loops(ctx, [batch, *avals[k].shape[-2:]], "b") as (b, i, j):
                    ctx.emit(f"{o3}[{b}, {i}, {j}] = 1 if {i} == {j} else 0")
        return
    x3 = _as3(ctx, ctx.arg(x), aval.shape)
    s2 = _view(ctx, outs[0], avals[0].shape, 1)
    u, s, vh = ctx.fresh("u"), ctx.fresh("s"), ctx.fresh("vh")
    if compute_uv:
        u3 = _view(ctx, outs[1], avals[1].shape, 2)
        v3 = _view(ctx, outs[2], avals[2].shape, 2)
    with loops(ctx, [batch], "b") as (b,):
        a = _copy_in(ctx, x3, b, m, n, aval.dtype)
        full = "True" if (full_matrices and compute_uv) else "False"
        ctx.emit(f"{u}, {s}, {vh} = np.linalg.svd({a}, full_matrices={full})")
        with loops(ctx, [min(m, n)]) as (i,):
            ctx.emit(f"{s2}[{b}, {i}] = {s}[{i}]")
        if compute_uv:
            _copy_out(ctx, u3, b, u, *avals[1].shape[-2:])
            _copy_out(ctx, v3, b, vh, *avals[2].shape[-2:])
