"""Matrix decompositions as primitives, under JAX's ``lax.linalg`` names.

``cholesky``, ``triangular_solve``, ``lu``, ``qr``, ``eigh`` and ``svd`` act on the last two
axes; every leading axis is a batch axis (so ``vmap`` is the same primitive with one more
leading axis). The NumPy implementations call LAPACK through NumPy/SciPy; the numba
lowerings (``funcgrad/backend/numba/linalg_rules.py``) call the LAPACK routines numba's own
``np.linalg`` uses, or loops where numba has none (triangular solves, LU).

Decisions, as JAX:

- Failures are values, not exceptions: the Cholesky factor of a matrix that is not
  positive definite is all NaN (NumPy raises ``LinAlgError``; under ``jit`` there is no
  place to raise from). ``lu`` of a singular matrix factors it (zero pivots in ``U``).
- ``cholesky`` and ``eigh`` read one triangle only (the lower one by default), and their
  derivatives are those of the symmetric matrix that triangle defines; the public
  wrappers (``symmetrize_input=True``) symmetrize first, as JAX's do.
- Derivatives of ``eigh`` and ``svd`` assume distinct eigenvalues / singular values: at a
  degenerate one the eigenvector (singular vector) derivatives contain ``inf``/``nan``,
  as JAX's do; eigenvalue and singular-value derivatives stay finite.
  ``qr``'s derivative needs ``m >= n`` and reduced mode (JAX's limitation as well).
- ``lu`` returns ``(lu, pivots, permutation)``: ``a[..., permutation, :] == l @ u`` with
  ``l`` the unit lower triangle of ``lu`` and ``u`` its upper triangle; pivots are LAPACK's
  row swaps (0-based), int32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax.sort import take_along_axis

_FLOATS = "fc"


# ----------------------------------------------------------------------------------------
# Small matrix helpers on lax primitives (for the jvp rules)


def _nd(x: Any) -> int:
    return get_aval(x).ndim


def _mT(x: Any) -> Any:
    """Swap the last two axes."""
    n = _nd(x)
    perm = tuple(range(n - 2)) + (n - 1, n - 2)
    return lax.transpose(x, perm)


def _H(x: Any) -> Any:
    """Conjugate transpose of the last two axes (the transpose for real dtypes)."""
    x = _mT(x)
    if get_aval(x).dtype.kind == "c":
        x = lax.conj(x)
    return x


def _mm(a: Any, b: Any) -> Any:
    """Batched matrix product; both operands have the same leading (batch) axes."""
    n = _nd(a)
    batch = tuple(range(n - 2))
    return lax.dot_general(a, b, (((n - 1,), (n - 2,)), (batch, batch)))


def _mask(shape: tuple[int, ...], k: int, lower: bool) -> Any:
    """Bool mask of the triangle ``col - row <= k`` (lower) or ``col - row >= k`` (upper)
    of the last two axes of ``shape``."""
    rows = lax.broadcasted_iota(np.int32, shape[-2:], 0)
    cols = lax.broadcasted_iota(np.int32, shape[-2:], 1)
    diff = lax.sub(cols, rows)
    kk = np.int32(k)
    return lax.le(diff, kk) if lower else lax.ge(diff, kk)


def _tri(x: Any, k: int = 0, lower: bool = True) -> Any:
    """``tril(x, k)`` (lower) or ``triu(x, k)`` of the last two axes."""
    aval = get_aval(x)
    zero = np.zeros((), aval.dtype)[()]
    return lax.select(_mask(aval.shape, k, lower), x, lax.full(aval.shape, zero, aval.dtype))


def _eye(n: int, m: int, dtype: np.dtype) -> Any:
    eq = lax.eq(
        lax.broadcasted_iota(np.int32, (n, m), 0), lax.broadcasted_iota(np.int32, (n, m), 1)
    )
    return lax.convert_element_type(eq, dtype)


def _diag(x: Any) -> Any:
    """The diagonal of the last two (square) axes, shape ``(..., n)``."""
    aval = get_aval(x)
    n = aval.shape[-1]
    return lax.reduce_sum(lax.mul(x, _eye(n, n, aval.dtype)), (aval.ndim - 1,))


def _real(x: Any) -> Any:
    if get_aval(x).dtype.kind == "c":
        return lax.real(x)
    return x


def _sym_from_triangle(x: Any, lower: bool) -> Any:
    """The Hermitian matrix one triangle of ``x`` defines (the other triangle ignored)."""
    t = _tri(x, 0, lower)
    strict = _tri(x, -1 if lower else 1, lower)
    return lax.add(t, _H(strict))


# ----------------------------------------------------------------------------------------
# Checks shared by the rules


def _check_matrix(name: str, x: ShapedArray, square: bool = True) -> None:
    if x.dtype.kind not in _FLOATS:
        raise TypeError(
            f"{name}: expected a floating or complex matrix, got {x.str_short()}; convert it "
            "first, e.g. with `.astype(float32)`"
        )
    if x.ndim < 2:
        raise ValueError(
            f"{name}: expected a matrix (an array of rank >= 2, the last two axes the matrix), "
            f"got {x.str_short()}"
        )
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"{name}: expected square matrices in the last two axes, got {x.str_short()}"
        )


def _batch_front(args: Any, dims: Any) -> list[Any]:
    """Every operand with its batch axis first (unbatched operands broadcast)."""
    size = batching.axis_size_of(args, dims)
    return [batching.bdim_at_front(x, d, size) for x, d in zip(args, dims, strict=True)]


def _real_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype in (np.float32, np.complex64) else np.dtype(np.float64)


def _each_matrix(fn: Any, *arrays: np.ndarray) -> list[np.ndarray]:
    """``fn`` on each matrix (last two axes) of ``arrays`` (one batch shape), restacked.

    ``fn`` returns a tuple of arrays; the result is one stacked array per tuple entry."""
    batch = arrays[0].shape[:-2]
    count = int(np.prod(batch, dtype=np.int64))
    flat = [a.reshape((count,) + a.shape[-2:]) for a in arrays]
    results = [fn(*(f[i] for f in flat)) for i in range(count)]
    if count == 0:
        probe = fn(*(np.zeros(a.shape[-2:], a.dtype) for a in arrays))
        return [np.zeros(batch + np.shape(p), np.asarray(p).dtype) for p in probe]
    return [
        np.stack([r[k] for r in results]).reshape(batch + np.shape(results[0][k]))
        for k in range(len(results[0]))
    ]


# ----------------------------------------------------------------------------------------
# cholesky

cholesky_p = Primitive("cholesky")


def cholesky(x: Any, *, symmetrize_input: bool = True) -> Any:
    """The lower Cholesky factor ``L`` of Hermitian positive definite ``x`` (``x = L L^H``);
    all NaN where ``x`` is not positive definite. ``symmetrize_input`` uses
    ``(x + x^H) / 2`` (JAX's default); otherwise only the lower triangle is read."""
    if symmetrize_input:
        x = symmetrize(x)
    return cholesky_p.bind(x)


def symmetrize(x: Any) -> Any:
    """``(x + x^H) / 2`` of the last two axes."""
    aval = get_aval(x)
    return lax.div(lax.add(x, _H(x)), np.array(2, aval.dtype)[()])


@cholesky_p.def_abstract_eval
def _cholesky_abstract_eval(x):
    _check_matrix("cholesky", x)
    return ShapedArray(x.shape, x.dtype)


def _cholesky_one(a: np.ndarray) -> tuple[np.ndarray]:
    try:
        return (np.linalg.cholesky(a),)
    except np.linalg.LinAlgError:
        return (np.full(a.shape, np.nan, a.dtype),)


def _cholesky_one_scipy(a: np.ndarray) -> tuple[np.ndarray]:
    import scipy.linalg

    try:
        return (scipy.linalg.cholesky(a, lower=True, check_finite=False).astype(a.dtype),)
    except np.linalg.LinAlgError:
        return (np.full(a.shape, np.nan, a.dtype),)


@cholesky_p.def_impl
def _cholesky_impl(x):
    x = np.asarray(x)
    _cholesky_abstract_eval(ShapedArray(x.shape, x.dtype))
    lower = np.tril(x)
    a = lower + np.conj(np.swapaxes(np.tril(x, -1), -1, -2))
    if x.shape[-1] >= 64:  # SciPy's potrf call is ~5x faster than NumPy's on large matrices
        return _each_matrix(_cholesky_one_scipy, a)[0]
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:  # some matrix is not positive definite: NaN for it alone
        return _each_matrix(_cholesky_one, a)[0]


def _cholesky_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    L = cholesky_p.bind(x)
    if type(t) is ad.Zero:
        return L, t
    dtype = get_aval(x).dtype
    sigma = _sym_from_triangle(t, True)
    # L^-1 sigma L^-H, then L times its lower triangle with half the diagonal.
    tmp = triangular_solve(
        L, sigma, left_side=False, lower=True, transpose_a=True, conjugate_a=True
    )
    tmp = triangular_solve(L, tmp, left_side=True, lower=True)
    half = np.array(0.5, dtype)[()]
    phi = lax.add(_tri(tmp, -1, True), lax.mul(_tri(_tri(tmp, 0, True), 0, False), half))
    return L, _mm(L, phi)


ad.primitive_jvps[cholesky_p] = _cholesky_jvp


def _cholesky_batch(args, dims):
    (x,) = _batch_front(args, dims)
    return cholesky_p.bind(x), 0


batching.primitive_batchers[cholesky_p] = _cholesky_batch


# ----------------------------------------------------------------------------------------
# triangular_solve

triangular_solve_p = Primitive("triangular_solve")


def triangular_solve(
    a: Any,
    b: Any,
    *,
    left_side: bool = False,
    lower: bool = False,
    transpose_a: bool = False,
    conjugate_a: bool = False,
    unit_diagonal: bool = False,
) -> Any:
    """Solve ``op(a) @ x = b`` (``left_side``) or ``x @ op(a) = b`` for triangular ``a``
    (JAX's ``lax.linalg.triangular_solve``: same defaults, right side by default).

    Only the ``lower`` (or upper) triangle of ``a`` is read; ``unit_diagonal`` takes its
    diagonal as ones; ``op`` transposes and/or conjugates ``a`` as the flags say.
    ``a`` is ``(..., m, m)``; ``b`` is ``(..., m, n)`` (left) or ``(..., n, m)`` (right)
    with the same leading axes."""
    return triangular_solve_p.bind(
        a,
        b,
        left_side=bool(left_side),
        lower=bool(lower),
        transpose_a=bool(transpose_a),
        conjugate_a=bool(conjugate_a),
        unit_diagonal=bool(unit_diagonal),
    )


@triangular_solve_p.def_abstract_eval
def _triangular_solve_abstract_eval(a, b, *, left_side, **_):
    _check_matrix("triangular_solve", a)
    _check_matrix("triangular_solve", b, square=False)
    if a.dtype != b.dtype:
        raise TypeError(
            f"triangular_solve: a and b must have one dtype, got {a.str_short()} and "
            f"{b.str_short()}; convert one with `.astype`"
        )
    m = a.shape[-1]
    k = b.shape[-2] if left_side else b.shape[-1]
    if a.shape[:-2] != b.shape[:-2] or k != m:
        side = "(..., m, n) with left_side=True" if left_side else "(..., n, m)"
        raise ValueError(
            f"triangular_solve: a {a.str_short()} and b {b.str_short()} do not match: with a "
            f"(..., m, m), b must be {side} with the same leading axes; broadcast the leading "
            "axes first or set left_side"
        )
    return ShapedArray(b.shape, b.dtype)


@triangular_solve_p.def_impl
def _triangular_solve_impl(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    import scipy.linalg

    a, b = np.asarray(a), np.asarray(b)
    _triangular_solve_abstract_eval(
        ShapedArray(a.shape, a.dtype), ShapedArray(b.shape, b.dtype), left_side=left_side
    )
    if conjugate_a:
        a = np.conj(a)

    def one(a2: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray]:
        if left_side:  # op(a) x = b
            x = scipy.linalg.solve_triangular(
                a2, b2, trans=int(transpose_a), lower=lower, unit_diagonal=unit_diagonal
            )
        else:  # x op(a) = b  <=>  op(a)^T x^T = b^T
            x = scipy.linalg.solve_triangular(
                a2, b2.T, trans=int(not transpose_a), lower=lower, unit_diagonal=unit_diagonal
            ).T
        return (np.asarray(x, b.dtype),)

    if 0 in a.shape[-2:] or 0 in b.shape[-2:]:
        return np.zeros(b.shape, b.dtype)
    return np.ascontiguousarray(_each_matrix(one, a, b)[0])


def _op(a: Any, transpose_a: bool, conjugate_a: bool) -> Any:
    if transpose_a:
        a = _mT(a)
    if conjugate_a and get_aval(a).dtype.kind == "c":
        a = lax.conj(a)
    return a


def _triangular_solve_jvp_a(
    g, ans, a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal
):
    g = (
        _tri(g, -1 if unit_diagonal else 0, True)
        if lower
        else _tri(g, 1 if unit_diagonal else 0, False)
    )
    ga = _op(g, transpose_a, conjugate_a)
    rhs = _mm(ga, ans) if left_side else _mm(ans, ga)
    return lax.neg(
        triangular_solve(
            a,
            rhs,
            left_side=left_side,
            lower=lower,
            transpose_a=transpose_a,
            conjugate_a=conjugate_a,
            unit_diagonal=unit_diagonal,
        )
    )


def _triangular_solve_jvp_b(g, ans, a, b, **params):
    return triangular_solve_p.bind(a, g, **params)


ad.defjvp2(triangular_solve_p, _triangular_solve_jvp_a, _triangular_solve_jvp_b)


def _triangular_solve_transpose(ct, a, b, *, transpose_a, **params):
    if ad.is_undefined_primal(a):
        raise NotImplementedError("triangular_solve is linear in b only: transpose it with a known")
    if type(ct) is ad.Zero:
        return [None, ad.Zero(b.aval)]
    return [None, triangular_solve_p.bind(a, ct, transpose_a=not transpose_a, **params)]


ad.primitive_transposes[triangular_solve_p] = _triangular_solve_transpose


def _triangular_solve_batch(args, dims, **params):
    a, b = _batch_front(args, dims)
    return triangular_solve_p.bind(a, b, **params), 0


batching.primitive_batchers[triangular_solve_p] = _triangular_solve_batch


# ----------------------------------------------------------------------------------------
# lu

lu_p = Primitive("lu", multiple_results=True)


def lu(x: Any) -> tuple[Any, Any, Any]:
    """LU decomposition with partial pivoting: ``(lu, pivots, permutation)``, as JAX's
    ``lax.linalg.lu`` (see the module docstring for the layout)."""
    return tuple(lu_p.bind(x))


@lu_p.def_abstract_eval
def _lu_abstract_eval(x):
    _check_matrix("lu", x, square=False)
    m, n = x.shape[-2:]
    batch = x.shape[:-2]
    return [
        ShapedArray(x.shape, x.dtype),
        ShapedArray(batch + (min(m, n),), np.dtype(np.int32)),
        ShapedArray(batch + (m,), np.dtype(np.int32)),
    ]


def lu_pivots_to_permutation(piv: np.ndarray, m: int) -> np.ndarray:
    """The row permutation of size ``m`` that LAPACK's sequential row swaps ``piv`` apply
    (JAX's name; here on concrete NumPy pivots, one matrix)."""
    perm = np.arange(m, dtype=np.int32)
    for i, p in enumerate(piv):
        perm[i], perm[p] = perm[p], perm[i]
    return perm


def _lu_one(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import warnings

    import scipy.linalg

    m, n = a.shape
    if m == 0 or n == 0:
        return a.copy(), np.zeros(0, np.int32), np.arange(m, dtype=np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular: LU exists, zero pivots say so
        lu_, piv = scipy.linalg.lu_factor(a, check_finite=False)
    piv = piv.astype(np.int32)
    return lu_.astype(a.dtype), piv, lu_pivots_to_permutation(piv, m)


@lu_p.def_impl
def _lu_impl(x):
    x = np.asarray(x)
    _lu_abstract_eval(ShapedArray(x.shape, x.dtype))
    return [np.ascontiguousarray(r) for r in _each_matrix(_lu_one, x)]


def _lu_jvp(primals, tangents):
    (a,), (a_dot,) = primals, tangents
    lu_, pivots, perm = lu_p.bind(a)
    zeros = [ad.Zero.of_value(pivots), ad.Zero.of_value(perm)]
    if type(a_dot) is ad.Zero:
        return [lu_, pivots, perm], [a_dot, *zeros]
    aval = get_aval(a)
    m, n = aval.shape[-2:]
    k = min(m, n)
    dtype = aval.dtype
    nd = aval.ndim
    batch = aval.shape[:-2]
    x = take_rows(a_dot, perm)
    zero = np.zeros((), dtype)[()]
    l_part = lax.slice_in_dim(lu_, 0, k, axis=nd - 1)
    lo = lax.pad(_tri(l_part, -1, True), zero, [(0, 0, 0)] * (nd - 1) + [(0, m - k, 0)])
    lo = lax.add(lo, _eye(m, m, dtype))
    u_part = lax.slice_in_dim(lu_, 0, k, axis=nd - 2)
    u = lax.pad(_tri(u_part, 0, False), zero, [(0, 0, 0)] * (nd - 2) + [(0, n - k, 0), (0, 0, 0)])
    if n > k:
        u_eye = lax.pad(_eye(n - k, n - k, dtype), zero, [(k, 0, 0), (k, 0, 0)])
        u = lax.add(u, u_eye)
    del batch
    la = triangular_solve(lo, x, left_side=True, lower=True, unit_diagonal=True)
    lau = triangular_solve(u, la, left_side=False, lower=False)
    l_dot = _mm(lo, _tri(lau, -1, True))
    u_dot = _mm(_tri(lau, 0, False), u)
    return [lu_, pivots, perm], [lax.add(l_dot, u_dot), *zeros]


def take_rows(x: Any, perm: Any) -> Any:
    """``x[..., perm, :]`` with ``perm`` of shape ``(..., m)`` (one gather)."""
    aval = get_aval(x)
    nd = aval.ndim
    idx = lax.broadcast_in_dim(perm, aval.shape, tuple(range(nd - 1)))
    return take_along_axis(x, idx, nd - 2)


ad.primitive_jvps[lu_p] = _lu_jvp


def _lu_batch(args, dims):
    (x,) = _batch_front(args, dims)
    return lu_p.bind(x), [0, 0, 0]


batching.primitive_batchers[lu_p] = _lu_batch


# ----------------------------------------------------------------------------------------
# qr

qr_p = Primitive("qr", multiple_results=True)


def qr(x: Any, *, full_matrices: bool = True) -> tuple[Any, Any]:
    """QR decomposition ``x = q @ r`` (JAX's ``lax.linalg.qr``; NumPy's 'complete' mode when
    ``full_matrices``, its 'reduced' mode otherwise)."""
    return tuple(qr_p.bind(x, full_matrices=bool(full_matrices)))


@qr_p.def_abstract_eval
def _qr_abstract_eval(x, *, full_matrices):
    _check_matrix("qr", x, square=False)
    m, n = x.shape[-2:]
    batch = x.shape[:-2]
    k = m if full_matrices else min(m, n)
    return [ShapedArray(batch + (m, k), x.dtype), ShapedArray(batch + (k, n), x.dtype)]


@qr_p.def_impl
def _qr_impl(x, *, full_matrices):
    x = np.asarray(x)
    _qr_abstract_eval(ShapedArray(x.shape, x.dtype), full_matrices=full_matrices)
    q, r = np.linalg.qr(x, mode="complete" if full_matrices else "reduced")
    return [np.ascontiguousarray(q, x.dtype), np.ascontiguousarray(r, x.dtype)]


def _qr_jvp(primals, tangents, *, full_matrices):
    (x,), (dx,) = primals, tangents
    q, r = qr_p.bind(x, full_matrices=full_matrices)
    if type(dx) is ad.Zero:
        return [q, r], [ad.Zero.of_value(q), ad.Zero.of_value(r)]
    m, n = get_aval(x).shape[-2:]
    if m < n or (full_matrices and m != n):
        raise NotImplementedError(
            f"qr: the derivative needs m >= n and reduced mode (full_matrices=False when "
            f"m > n); got a {m}x{n} matrix with full_matrices={full_matrices}"
        )
    dx_rinv = triangular_solve(r, dx)  # dx r^-1
    qt_dx_rinv = _mm(_H(q), dx_rinv)
    low = _tri(qt_dx_rinv, -1, True)
    do = lax.sub(low, _H(low))  # skew-Hermitian
    if get_aval(x).dtype.kind == "c":
        eye = _eye(n, n, get_aval(x).dtype)
        re = lax.convert_element_type(lax.real(qt_dx_rinv), do.dtype)
        do = lax.add(do, lax.mul(eye, lax.sub(qt_dx_rinv, re)))
    dq = lax.add(_mm(q, lax.sub(do, qt_dx_rinv)), dx_rinv)
    dr = _mm(lax.sub(qt_dx_rinv, do), r)
    return [q, r], [dq, dr]


ad.primitive_jvps[qr_p] = _qr_jvp


def _qr_batch(args, dims, *, full_matrices):
    (x,) = _batch_front(args, dims)
    return qr_p.bind(x, full_matrices=full_matrices), [0, 0]


batching.primitive_batchers[qr_p] = _qr_batch


# ----------------------------------------------------------------------------------------
# eigh

eigh_p = Primitive("eigh", multiple_results=True)


def eigh(
    x: Any, *, lower: bool = True, symmetrize_input: bool = True, sort_eigenvalues: bool = True
) -> tuple[Any, Any]:
    """Eigenvectors ``v`` (columns) and ascending real eigenvalues ``w`` of Hermitian ``x``:
    ``(v, w)``, as JAX's ``lax.linalg.eigh``. Eigenvalues always come sorted (LAPACK's
    order); ``sort_eigenvalues`` is accepted for JAX compatibility."""
    del sort_eigenvalues
    if symmetrize_input:
        x = symmetrize(x)
    return tuple(eigh_p.bind(x, lower=bool(lower)))


@eigh_p.def_abstract_eval
def _eigh_abstract_eval(x, *, lower):
    _check_matrix("eigh", x)
    return [ShapedArray(x.shape, x.dtype), ShapedArray(x.shape[:-1], _real_dtype(x.dtype))]


@eigh_p.def_impl
def _eigh_impl(x, *, lower):
    x = np.asarray(x)
    _eigh_abstract_eval(ShapedArray(x.shape, x.dtype), lower=lower)
    if not lower:  # the upper triangle of x is the lower one of x^H (one LAPACK path)
        x = np.conj(np.swapaxes(x, -1, -2))
    w, v = np.linalg.eigh(x, UPLO="L")
    return [np.ascontiguousarray(v, x.dtype), np.ascontiguousarray(w, _real_dtype(x.dtype))]


def _eigh_jvp(primals, tangents, *, lower):
    (a,), (a_dot,) = primals, tangents
    v, w = eigh_p.bind(a, lower=lower)
    if type(a_dot) is ad.Zero:
        return [v, w], [ad.Zero.of_value(v), ad.Zero.of_value(w)]
    aval = get_aval(a)
    n = aval.shape[-1]
    a_dot = _sym_from_triangle(a_dot, lower)
    wc = lax.convert_element_type(w, aval.dtype)
    eye = _eye(n, n, aval.dtype)
    nd = aval.ndim
    # F[i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it (inf where eigenvalues repeat).
    diff = lax.sub(lax.expand_dims(wc, (nd - 2,)), lax.expand_dims(wc, (nd - 1,)))
    one = np.ones((), aval.dtype)[()]
    fmat = lax.sub(lax.div(one, lax.add(eye, diff)), eye)
    vdag_adot_v = _mm(_mm(_H(v), a_dot), v)
    dv = _mm(v, lax.mul(fmat, vdag_adot_v))
    dw = _real(_diag(vdag_adot_v))
    return [v, w], [dv, dw]


ad.primitive_jvps[eigh_p] = _eigh_jvp


def _eigh_batch(args, dims, *, lower):
    (x,) = _batch_front(args, dims)
    return eigh_p.bind(x, lower=lower), [0, 0]


batching.primitive_batchers[eigh_p] = _eigh_batch


# ----------------------------------------------------------------------------------------
# svd

svd_p = Primitive("svd", multiple_results=True)


def svd(x: Any, *, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """Singular values (descending) and, with ``compute_uv``, ``(u, s, vh)`` such that
    ``x = u @ diag(s) @ vh`` (JAX's ``lax.linalg.svd``; the primitive's outputs are
    ``(s, u, vh)``, as JAX's ``svd_p``)."""
    out = svd_p.bind(x, full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))
    if not compute_uv:
        return out[0]
    s, u, vh = out
    return u, s, vh


@svd_p.def_abstract_eval
def _svd_abstract_eval(x, *, full_matrices, compute_uv):
    _check_matrix("svd", x, square=False)
    m, n = x.shape[-2:]
    k = min(m, n)
    batch = x.shape[:-2]
    s = ShapedArray(batch + (k,), _real_dtype(x.dtype))
    if not compute_uv:
        return [s]
    if full_matrices:
        return [s, ShapedArray(batch + (m, m), x.dtype), ShapedArray(batch + (n, n), x.dtype)]
    return [s, ShapedArray(batch + (m, k), x.dtype), ShapedArray(batch + (k, n), x.dtype)]


@svd_p.def_impl
def _svd_impl(x, *, full_matrices, compute_uv):
    x = np.asarray(x)
    avals = _svd_abstract_eval(
        ShapedArray(x.shape, x.dtype), full_matrices=full_matrices, compute_uv=compute_uv
    )
    if 0 in x.shape[-2:]:
        return (
            [np.zeros(a.shape, a.dtype) for a in avals]
            if not full_matrices
            else [
                np.zeros(avals[0].shape, avals[0].dtype),
                *(
                    np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), a.shape).copy()
                    for a in avals[1:]
                ),
            ]
        )
    if not compute_uv:
        return [np.ascontiguousarray(np.linalg.svd(x, compute_uv=False), avals[0].dtype)]
    u, s, vh = np.linalg.svd(x, full_matrices=full_matrices)
    return [
        np.ascontiguousarray(s, avals[0].dtype),
        np.ascontiguousarray(u, x.dtype),
        np.ascontiguousarray(vh, x.dtype),
    ]


def _svd_jvp(primals, tangents, *, full_matrices, compute_uv):
    (a,), (da,) = primals, tangents
    outs = svd_p.bind(a, full_matrices=full_matrices, compute_uv=compute_uv)
    if type(da) is ad.Zero:
        return outs, [ad.Zero.of_value(o) for o in outs]
    if compute_uv and full_matrices:
        m, n = get_aval(a).shape[-2:]
        if m != n:
            raise NotImplementedError(
                "svd: the derivative of u and vh with full_matrices=True is not defined for "
                f"non-square matrices ({m}x{n}); use full_matrices=False"
            )
    s, u, vt = svd_p.bind(a, full_matrices=False, compute_uv=True)
    aval = get_aval(a)
    dtype = aval.dtype
    nd = aval.ndim
    m, n = aval.shape[-2:]
    k = min(m, n)
    ut, v = _H(u), _H(vt)
    ds_mat = _mm(_mm(ut, da), v)
    ds = _real(_diag(ds_mat))
    if not compute_uv:
        return outs, [ds]
    sc = lax.convert_element_type(s, dtype)
    s_row = lax.expand_dims(sc, (nd - 2,))  # (..., 1, k)
    s_col = lax.expand_dims(sc, (nd - 1,))  # (..., k, 1)
    eye = _eye(k, k, dtype)
    one = np.ones((), dtype)[()]
    zero = np.zeros((), dtype)[()]
    s_diffs = lax.mul(lax.add(s_row, s_col), lax.sub(s_row, s_col))
    fmat = lax.sub(lax.div(one, lax.add(s_diffs, eye)), eye)
    dss = lax.mul(s_row, ds_mat)
    sds = lax.mul(s_col, ds_mat)
    s_is_zero = lax.eq(sc, zero)
    s_inv = lax.select(
        s_is_zero,
        lax.full(get_aval(sc).shape, zero, dtype),
        lax.div(one, lax.select(s_is_zero, lax.full(get_aval(sc).shape, one, dtype), sc)),
    )
    s_inv_mat = lax.mul(lax.expand_dims(s_inv, (nd - 2,)), eye)
    half = np.array(0.5, dtype)[()]
    dudv_diag = lax.mul(lax.mul(lax.sub(ds_mat, _H(ds_mat)), half), s_inv_mat)
    du = _mm(u, lax.add(lax.mul(fmat, lax.add(dss, _H(dss))), dudv_diag))
    dv = _mm(v, lax.mul(fmat, lax.add(sds, _H(sds))))
    if m > n:
        dav = _mm(da, v)
        du = lax.add(du, lax.div(lax.sub(dav, _mm(u, _mm(ut, dav))), s_row))
    if n > m:
        dahu = _mm(_H(da), u)
        dv = lax.add(dv, lax.div(lax.sub(dahu, _mm(v, _mm(vt, dahu))), s_row))
    return outs, [ds, du, _H(dv)]


ad.primitive_jvps[svd_p] = _svd_jvp


def _svd_batch(args, dims, **params):
    (x,) = _batch_front(args, dims)
    outs = svd_p.bind(x, **params)
    return outs, [0] * len(outs)


batching.primitive_batchers[svd_p] = _svd_batch
