"""funcgrad.numpy.linalg: NumPy's ``linalg`` on the decomposition primitives.

Every function works on stacks of matrices (the last two axes) as NumPy's does, under
``grad``, ``vmap`` and ``jit``. Decisions:

- Factorizations follow JAX where NumPy raises: ``cholesky`` of a matrix that is not
  positive definite is all NaN; ``solve``/``inv`` of a singular matrix give inf/NaN.
- ``cholesky`` and ``eigh``/``eigvalsh`` symmetrize their input (``(a + a^H) / 2``), as
  JAX's do, so their gradients are symmetric; for symmetric input the values are NumPy's.
- ``solve``, ``inv``, ``det`` and ``slogdet`` go through ``lu`` (partial pivoting);
  ``lstsq``, ``pinv``, ``matrix_rank``, ``cond`` and the matrix norms ``2``, ``-2`` and
  ``'nuc'`` through ``svd``. ``rcond``/``rtol`` defaults are NumPy 2's
  (``max(m, n) * eps``).
- ``lstsq`` returns ``(x, residuals, rank, s)``; ``residuals`` (the squared residual norm
  per column) is given whenever ``m > n`` (JAX's rule: the rank is a traced value, so the
  shape cannot depend on it), else it has shape ``(0,)``.
- Derivatives: those of ``eigh`` and ``svd`` need distinct eigenvalues / singular values
  (see ``funcgrad.lax.linalg``); ``pinv``'s derivative is the closed form for a matrix of
  constant rank; ``det``'s goes through ``lu`` and is not finite at singular matrices.
- Integer operands are computed in float64 (as NumPy's).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.custom_derivatives import custom_jvp
from funcgrad.lax.linalg import take_rows
from funcgrad.numpy import util
from funcgrad.numpy.products import matmul as matmul
from funcgrad.numpy.products import outer as outer
from funcgrad.numpy.products import tensordot as tensordot
from funcgrad.numpy.products import vecdot as vecdot
from funcgrad.numpy.shape import diagonal as _diagonal
from funcgrad.numpy.shape import matrix_transpose as matrix_transpose
from funcgrad.numpy.shape import trace as _trace
from funcgrad.numpy.util import shape_of, to_operand


def diagonal(x: Any, /, *, offset: int = 0) -> Any:
    """The diagonal of the last two axes."""
    return _diagonal(x, offset, -2, -1)


def trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    """The trace of the last two axes."""
    return _trace(x, offset, -2, -1, dtype=dtype)


def _keep(x: Any, s: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    if not keepdims:
        return x
    return lax.reshape(x, tuple(1 if i in axes else d for i, d in enumerate(s)))


def _abs2(x: Any) -> Any:
    """``|x|**2`` (real for complex ``x``)."""
    if util.dtype_of(x).kind == "c":
        fnp = _fnp()
        return lax.add(lax.mul(fnp.real(x), fnp.real(x)), lax.mul(fnp.imag(x), fnp.imag(x)))
    return lax.mul(x, x)


def _sum(x: Any, axes: tuple[int, ...]) -> Any:
    return lax.reduce_sum(x, axes)


def _vector_norm(x: Any, ord: Any, axes: tuple[int, ...]) -> Any:
    if isinstance(ord, str):
        raise ValueError(f"fnp.linalg.norm: invalid norm order {ord!r} for vectors")
    dtype = util.dtype_of(x)
    if ord is None or ord == 2:
        return lax.sqrt(_sum(_abs2(x), axes))
    if ord == np.inf:
        return lax.reduce_max(lax.abs(x), axes)
    if ord == -np.inf:
        return lax.reduce_min(lax.abs(x), axes)
    if ord == 0:
        return _sum(lax.convert_element_type(lax.ne(x, np.zeros((), dtype)[()]), dtype), axes)
    if ord == 1:
        return _sum(lax.abs(x), axes)
    p = np.array(ord, dtype)[()]
    s = _sum(lax.pow(lax.abs(x), p), axes)
    return lax.pow(s, lax.div(np.ones((), dtype)[()], p))


def _matrix_norm(x: Any, ord: Any, row: int, col: int) -> Any:
    if ord is None or ord == "fro":
        return lax.sqrt(_sum(_abs2(x), (row, col)))
    if ord in (2, -2, "nuc"):
        x = _fnp().moveaxis(x, (row, col), (-2, -1))
        s = svd(x, compute_uv=False)
        if ord == "nuc":
            return lax.reduce_sum(s, (util.shape_of(s).__len__() - 1,))
        red = lax.reduce_max if ord == 2 else lax.reduce_min
        return red(s, (len(util.shape_of(s)) - 1,))
    if ord in (1, -1):
        red = lax.reduce_max if ord == 1 else lax.reduce_min
        sums = _sum(lax.abs(x), (row,))
        return red(sums, (col - 1 if col > row else col,))
    if ord in (np.inf, -np.inf):
        red = lax.reduce_max if ord == np.inf else lax.reduce_min
        sums = _sum(lax.abs(x), (col,))
        return red(sums, (row - 1 if row > col else row,))
    raise ValueError(f"fnp.linalg.norm: invalid norm order {ord!r} for matrices")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm (NumPy's ``linalg.norm``)."""
    x = to_operand(x, "fnp.linalg.norm")
    dtype = util.dtype_of(x)
    if dtype.kind not in "fc":
        x = util.convert(x, np.dtype(np.float64))
    s = tuple(shape_of(x))
    n = len(s)
    if axis is None:
        if ord is None:
            axes = tuple(range(n))
            return _keep(lax.sqrt(_sum(_abs2(x), axes)), s, axes, keepdims)
        if n == 1:
            axes = (0,)
        elif n == 2:
            axes = (0, 1)
        else:
            raise ValueError(
                f"fnp.linalg.norm: improper number of dimensions to norm ({util.short(x)} "
                f"with ord={ord!r}); give axis= (one axis for vectors, two for matrices)"
            )
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = tuple(util.canonicalize_axis(a, n, "linalg.norm") for a in axes)
    if len(axes) == 1:
        if s[axes[0]] == 0 and ord in (np.inf, -np.inf):
            raise ValueError("fnp.linalg.norm: max/min norm of an empty axis is undefined")
        return _keep(_vector_norm(x, ord, axes), s, axes, keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError("fnp.linalg.norm: duplicate axes given")
        return _keep(_matrix_norm(x, ord, axes[0], axes[1]), s, tuple(sorted(axes)), keepdims)
    raise ValueError(
        f"fnp.linalg.norm: improper number of dimensions to norm: axis={axis!r}; give one "
        "axis (vector norm) or two (matrix norm)"
    )


def vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """Vector norm over ``axis`` (all axes, flattened, when None)."""
    x = to_operand(x, "fnp.linalg.vector_norm")
    if util.dtype_of(x).kind not in "fc":
        x = util.convert(x, np.dtype(np.float64))
    s = tuple(shape_of(x))
    axes = util.canonicalize_axes(axis, len(s), "linalg.vector_norm")
    if axis is None:
        flat = lax.reshape(x, (math.prod(s),))
        r = _vector_norm(flat, ord, (0,))
        return _keep(r, s, axes, keepdims)
    return _keep(_vector_norm(x, ord, axes), s, axes, keepdims)


def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    """Matrix norm over the last two axes."""
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


# ----------------------------------------------------------------------------------------
# Decompositions and solvers (on funcgrad.lax.linalg's primitives)


def _fnp() -> Any:

    return fnp


class EighResult(NamedTuple):
    eigenvalues: Any
    eigenvectors: Any


class SVDResult(NamedTuple):
    U: Any
    S: Any
    Vh: Any


class QRResult(NamedTuple):
    Q: Any
    R: Any


class SlogdetResult(NamedTuple):
    sign: Any
    logabsdet: Any


def _matrix(a: Any, name: str, square: bool = True) -> Any:
    """``a`` as a floating stack of matrices (integers to float64), checked."""
    a = to_operand(a, f"fnp.linalg.{name}")
    dtype = util.dtype_of(a)
    if dtype.kind not in "fc":
        a = util.convert(a, np.dtype(np.float64))
    s = shape_of(a)
    if len(s) < 2:
        raise ValueError(
            f"fnp.linalg.{name}: {len(s)}-dimensional array given ({util.short(a)}); the "
            "array must be at least two-dimensional (a matrix or a stack of them)"
        )
    if square and s[-1] != s[-2]:
        raise ValueError(
            f"fnp.linalg.{name}: last 2 dimensions of the array must be square, got {util.short(a)}"
        )
    return a


def _eps(a: Any) -> float:
    return float(np.finfo(util.dtype_of(a)).eps)


def _swap(x: Any) -> Any:
    return _fnp().swapaxes(x, -1, -2)


def _h(x: Any) -> Any:
    return _swap(x)


def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """The lower (or ``upper``) Cholesky factor of symmetric positive definite ``a``."""
    a = _matrix(a, "cholesky")
    low = lax.linalg.cholesky(a)
    return _h(low) if upper else low


def _lu_solve(lu_: Any, perm: Any, b: Any) -> Any:
    """``a^-1 b`` from ``a``'s LU factors (``b``: ``(..., m, k)`` with ``a``'s batch axes)."""

    pb = take_rows(b, perm)
    y = lax.linalg.triangular_solve(lu_, pb, left_side=True, lower=True, unit_diagonal=True)
    return lax.linalg.triangular_solve(lu_, y, left_side=True, lower=False)


def solve(a: Any, b: Any) -> Any:
    """Solve ``a @ x = b`` (NumPy 2: ``b`` is a vector only when it is 1-D; batch axes
    broadcast)."""
    fnp = _fnp()
    a = _matrix(a, "solve")
    b = to_operand(b, "fnp.linalg.solve")
    a, b = util.promote_args_inexact("fnp.linalg.solve", a, b)
    sa, sb = shape_of(a), shape_of(b)
    n = sa[-1]
    vector = len(sb) == 1
    if vector:
        if sb[0] != n:
            raise ValueError(
                f"fnp.linalg.solve: a {util.short(a)} and the vector b {util.short(b)} do "
                f"not match: b needs {n} entries"
            )
        b = lax.reshape(b, (n, 1))
        sb = (n, 1)
    if sb[-2] != n:
        raise ValueError(
            f"fnp.linalg.solve: a {util.short(a)} and b {util.short(b)} do not match: b "
            f"must be (..., {n}, k) (or a vector of {n} entries)"
        )
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    a = fnp.broadcast_to(a, batch + sa[-2:])
    b = fnp.broadcast_to(b, batch + sb[-2:])
    lu_, _, perm = lax.linalg.lu(a)
    x = _lu_solve(lu_, perm, b)
    if vector:
        x = lax.reshape(x, batch + (n,))
    return x


def inv(a: Any) -> Any:
    """The inverse of each square matrix (inf/NaN where singular)."""
    fnp = _fnp()
    a = _matrix(a, "inv")
    s = shape_of(a)
    eye = fnp.broadcast_to(fnp.eye(s[-1], dtype=util.dtype_of(a)), s)
    return solve(a, eye)


def _lu_parts(a: Any) -> tuple[Any, Any]:
    """The diagonal of ``U`` and the permutation's parity sign (+1/-1) of ``a``'s LU."""
    fnp = _fnp()
    lu_, piv, _ = lax.linalg.lu(a)
    diag = fnp.diagonal(lu_, axis1=-2, axis2=-1)
    k = shape_of(piv)[-1]
    swaps = fnp.sum(piv != fnp.arange(k, dtype=np.int32), axis=-1)
    parity = 1 - 2 * (swaps % 2)
    return diag, parity.astype(util.dtype_of(a))


def det(a: Any) -> Any:
    """The determinant of each square matrix (through ``lu``)."""
    fnp = _fnp()
    a = _matrix(a, "det")
    diag, parity = _lu_parts(a)
    return parity * fnp.prod(diag, axis=-1)


def slogdet(a: Any) -> SlogdetResult:
    """``(sign, log|det|)`` of each square matrix (sign 0 and -inf when singular)."""
    fnp = _fnp()
    a = _matrix(a, "slogdet")
    diag, parity = _lu_parts(a)
    mag = fnp.abs(diag)
    if util.dtype_of(diag).kind == "c":  # the unit phase d / |d| (0 for a zero pivot)
        unit = fnp.where(mag == 0, 0, diag / fnp.where(mag == 0, 1, mag))
    else:
        unit = fnp.sign(diag)
    sign = parity * fnp.prod(unit, axis=-1)
    logabs = fnp.sum(fnp.log(mag), axis=-1)
    return SlogdetResult(sign, logabs)


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Ascending eigenvalues and eigenvectors (columns) of symmetric ``a``."""
    a = _matrix(a, "eigh")
    if UPLO not in ("L", "U"):
        raise ValueError(f"fnp.linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    v, w = lax.linalg.eigh(a, lower=UPLO == "L")
    return EighResult(w, v)


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """The ascending eigenvalues of symmetric ``a``."""
    return eigh(a, UPLO).eigenvalues


def svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """Singular value decomposition ``a = U @ diag(S) @ Vh`` (NumPy's order: ``U, S, Vh``);
    only ``S`` (descending) when ``compute_uv`` is False. ``hermitian`` is accepted and
    ignored (the general algorithm gives the same values)."""
    del hermitian
    a = _matrix(a, "svd", square=False)
    if not compute_uv:
        return lax.linalg.svd(a, full_matrices=False, compute_uv=False)
    u, s, vh = lax.linalg.svd(a, full_matrices=full_matrices)
    return SVDResult(u, s, vh)


def svdvals(x: Any, /) -> Any:
    """The singular values, descending."""
    return svd(x, compute_uv=False)


def qr(a: Any, mode: str = "reduced") -> Any:
    """QR decomposition: ``mode`` 'reduced' or 'complete' give ``(Q, R)``, 'r' gives ``R``."""
    a = _matrix(a, "qr", square=False)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(
            f"fnp.linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r} ('raw' "
            "exposes LAPACK's Householder form, which funcgrad does not)"
        )
    q, r = lax.linalg.qr(a, full_matrices=mode == "complete")
    return r if mode == "r" else QRResult(q, r)


def _default_rtol(a: Any, rtol: Any) -> Any:
    if rtol is not None:
        return rtol
    m, n = shape_of(a)[-2:]
    return max(m, n) * _eps(a)


def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple[Any, Any, Any, Any]:
    """Least-squares solution of ``a @ x = b``: ``(x, residuals, rank, s)`` (see the module
    docstring for ``residuals``)."""
    fnp = _fnp()
    a = _matrix(a, "lstsq", square=False)
    b = to_operand(b, "fnp.linalg.lstsq")
    a, b = util.promote_args_inexact("fnp.linalg.lstsq", a, b)
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != 2 or len(sb) not in (1, 2) or sb[0] != sa[0]:
        raise ValueError(
            f"fnp.linalg.lstsq: a must be (m, n) and b (m,) or (m, k) with the same m, got a "
            f"{util.short(a)} and b {util.short(b)}"
        )
    vector = len(sb) == 1
    if vector:
        b = lax.reshape(b, (sb[0], 1))
    m, n = sa
    dtype = util.dtype_of(a)
    rcond = _default_rtol(a, rcond)
    u, s, vt = lax.linalg.svd(a, full_matrices=False)
    k = min(m, n)
    if k == 0:
        x = fnp.zeros((n, shape_of(b)[1]), dtype)
        rank = np.asarray(0, np.int32)[()]
    else:
        mask = s >= fnp.asarray(rcond, dtype) * s[0]
        rank = fnp.sum(mask, dtype=np.int32)
        safe = fnp.where(mask, s, fnp.ones((), dtype))
        s_inv = fnp.where(mask, 1 / safe, fnp.zeros((), dtype))[:, None]
        x = fnp.matmul(_h(vt), s_inv * fnp.matmul(_h(u), b))
    if m > n:
        r = b - fnp.matmul(a, x)
        resid = fnp.sum(r * r, axis=0)
    else:
        resid = fnp.zeros((0,), dtype)
    if vector:
        x = lax.reshape(x, (n,))
        resid = lax.reshape(resid, (shape_of(resid)[0],))
    return x, resid, rank, s


def _pinv_impl(a: Any, rtol: Any) -> Any:
    fnp = _fnp()
    dtype = util.dtype_of(a)
    u, s, vt = lax.linalg.svd(a, full_matrices=False)
    if 0 in shape_of(s):
        return fnp.zeros(shape_of(a)[:-2] + shape_of(a)[-2:][::-1], dtype)
    cutoff = fnp.asarray(rtol, dtype)[..., None] * fnp.max(s, axis=-1, keepdims=True)
    mask = s > cutoff
    safe = fnp.where(mask, s, fnp.ones((), dtype))
    s_inv = fnp.where(mask, 1 / safe, fnp.zeros((), dtype))
    return fnp.matmul(_h(vt) * s_inv[..., None, :], _h(u))


def pinv(a: Any, rtol: Any = None, hermitian: bool = False, *, rcond: Any = None) -> Any:
    """Moore-Penrose pseudo-inverse through ``svd`` (singular values below
    ``rtol * max(s)`` count as zero). Its derivative is the closed form for a matrix of
    constant rank (Golub and Pereyra), so it is defined at rank-deficient matrices."""

    del hermitian
    a = _matrix(a, "pinv", square=False)
    tol = rcond if rcond is not None else _default_rtol(a, rtol)

    @custom_jvp
    def _pinv(x):
        return _pinv_impl(x, tol)

    @_pinv.defjvp
    def _pinv_jvp(primals, tangents):
        fnp = _fnp()
        (x,), (dx,) = primals, tangents
        p = _pinv(x)
        m, n = shape_of(x)[-2:]
        eye_m = fnp.eye(m, dtype=util.dtype_of(x))
        eye_n = fnp.eye(n, dtype=util.dtype_of(x))
        mm = fnp.matmul
        pt = _h(p)
        dxt = _h(dx)
        dp = (
            -mm(mm(p, dx), p)
            + mm(mm(mm(p, pt), dxt), eye_m - mm(x, p))
            + mm(mm(eye_n - mm(p, x), dxt), mm(pt, p))
        )
        return p, dp

    return _pinv(a)


def matrix_rank(a: Any, tol: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """The number of singular values above ``tol`` (default ``max(s) * max(m, n) * eps``)."""
    fnp = _fnp()
    del hermitian
    a = to_operand(a, "fnp.linalg.matrix_rank")
    if len(shape_of(a)) < 2:  # a vector has rank 1 unless it is all zeros
        return fnp.asarray(fnp.any(a != 0), np.int64)
    a = _matrix(a, "matrix_rank", square=False)
    s = svd(a, compute_uv=False)
    if tol is None:
        r = _default_rtol(a, rtol)
        tol = fnp.max(s, axis=-1, keepdims=True) * fnp.asarray(r, util.dtype_of(s))
    else:
        tol = fnp.asarray(tol)[..., None]
    return fnp.sum(s > tol, axis=-1)


def matrix_power(a: Any, n: int) -> Any:
    """``a`` to the integer power ``n`` by repeated squaring (``inv(a)`` first for n < 0)."""
    fnp = _fnp()
    a = to_operand(a, "fnp.linalg.matrix_power")
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(
            f"fnp.linalg.matrix_power: expected a square matrix (or a stack), got {util.short(a)}"
        )
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"fnp.linalg.matrix_power: exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        return fnp.broadcast_to(fnp.eye(s[-1], dtype=util.dtype_of(a)), s) + fnp.zeros_like(a)
    if n < 0:
        a = inv(a)
        n = -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else fnp.matmul(result, base)
        n >>= 1
        if n:
            base = fnp.matmul(base, base)
    return util.fresh(result)


def cond(x: Any, p: Any = None) -> Any:
    """The condition number in norm ``p`` (None/2/-2 through singular values)."""
    x = _matrix(x, "cond", square=p not in (None, 2, -2))
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        if p == -2:
            return s[..., -1] / s[..., 0]
        return s[..., 0] / s[..., -1]
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def multi_dot(arrays: Any, *, out: Any = None) -> Any:
    """The product of a chain of matrices in the cheapest order (NumPy's dynamic program);
    the first and last may be vectors."""
    fnp = _fnp()
    util.check_no_out("linalg.multi_dot", out)
    arrays = [to_operand(a, "fnp.linalg.multi_dot") for a in arrays]
    if len(arrays) < 2:
        raise ValueError("fnp.linalg.multi_dot: expecting at least two arrays")
    first_vec = len(shape_of(arrays[0])) == 1
    last_vec = len(shape_of(arrays[-1])) == 1
    if first_vec:
        arrays[0] = fnp.reshape(arrays[0], (1, -1))
    if last_vec:
        arrays[-1] = fnp.reshape(arrays[-1], (-1, 1))
    for a in arrays:
        if len(shape_of(a)) != 2:
            raise ValueError(
                f"fnp.linalg.multi_dot: {util.short(a)}: every array but the first and last "
                "must be 2-D (those may be 1-D)"
            )
    dims = [shape_of(a)[0] for a in arrays] + [shape_of(arrays[-1])[1]]
    n = len(arrays)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def chain(i: int, j: int) -> Any:
        if i == j:
            return arrays[i]
        k = split[i][j]
        return fnp.matmul(chain(i, k), chain(k + 1, j))

    result = chain(0, n - 1)
    if first_vec and last_vec:
        return result[0, 0]
    if first_vec:
        return result[0]
    if last_vec:
        return result[:, 0]
    return result


def tensorsolve(a: Any, b: Any, axes: Any = None) -> Any:
    """Solve ``tensordot(a, x, x.ndim) = b`` for ``x`` (NumPy's ``tensorsolve``)."""
    fnp = _fnp()
    a = to_operand(a, "fnp.linalg.tensorsolve")
    b = to_operand(b, "fnp.linalg.tensorsolve")
    if axes is not None:
        nd = len(shape_of(a))
        allaxes = [ax for ax in range(nd) if ax not in [x % nd for x in axes]]
        a = fnp.transpose(a, allaxes + [x % nd for x in axes])
    sa = shape_of(a)
    bshape = shape_of(b)
    xshape = sa[len(bshape) :]
    rows = math.prod(bshape)
    x = solve(fnp.reshape(a, (rows, math.prod(xshape))), fnp.reshape(b, (rows,)))
    return fnp.reshape(x, xshape)


def tensorinv(a: Any, ind: int = 2) -> Any:
    """The inverse of ``a`` as a tensor map of its first ``ind`` axes (NumPy's)."""
    fnp = _fnp()
    a = to_operand(a, "fnp.linalg.tensorinv")
    s = shape_of(a)
    inv_shape = s[ind:] + s[:ind]
    rows = math.prod(s[:ind])
    return fnp.reshape(inv(fnp.reshape(a, (rows, -1))), inv_shape)
