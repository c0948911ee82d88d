"""Spec cases for the decompositions of funcgrad/lax/linalg.py.

References: SciPy's LAPACK wrappers called per matrix (``scipy.linalg.cholesky``,
``solve_triangular``, ``lu_factor``) and NumPy's ``linalg`` (``qr``, ``eigh``, ``svd``), so
the impls' batching, masking and layout are checked against an independent formulation.
Operands are well conditioned (diagonally boosted, spread spectra) so that finite
differences are meaningful and LAPACK's sign conventions do not flip under perturbation.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from tests.specs import Case


def _per_matrix(fn, *arrays):
    batch = arrays[0].shape[:-2]
    outs = [fn(*(a[idx] for a in arrays)) for idx in np.ndindex(*batch)]
    return [
        np.stack([o[k] for o in outs]).reshape(batch + np.shape(outs[0][k]))
        for k in range(len(outs[0]))
    ]


def _spd(rng, shape, dtype):
    a = rng.standard_normal(shape)
    n = shape[-1]
    spd = a @ np.swapaxes(a, -1, -2) / n + np.eye(n)
    # A random upper triangle: the primitive reads the lower one only.
    noise = np.triu(rng.standard_normal(shape), 1)
    return ((np.tril(spd) + noise).astype(dtype),)


def _cholesky_ref(x):
    def one(a):
        sym = np.tril(a) + np.tril(a, -1).T
        return (scipy.linalg.cholesky(sym.astype(np.float64), lower=True).astype(a.dtype),)

    return _per_matrix(one, x)[0]


def _tri_operands(shape_a, shape_b):
    def make(rng, dtype):
        a = rng.standard_normal(shape_a) + 3 * np.eye(shape_a[-1])
        b = rng.standard_normal(shape_b)
        return a.astype(dtype), b.astype(dtype)

    return make


def _tri_ref(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    def one(a2, b2):
        t = np.tril(a2) if lower else np.triu(a2)
        if unit_diagonal:
            t = t - np.diag(np.diag(t)) + np.eye(len(t))
        op = t.T if transpose_a else t
        x = np.linalg.solve(op, b2) if left_side else np.linalg.solve(op.T, b2.T).T
        return (x.astype(b2.dtype),)

    return _per_matrix(one, a.astype(np.float64), b.astype(np.float64))[0].astype(b.dtype)


def _tri(name, shape_a, shape_b, **flags):
    params = dict(
        left_side=False, lower=False, transpose_a=False, conjugate_a=False, unit_diagonal=False
    )
    params.update(flags)
    return Case(
        "triangular_solve",
        _tri_operands(shape_a, shape_b),
        _tri_ref,
        params,
        linear=((1,),),
        name=name,
        rtol=1e-4,
        atol=1e-5,
    )


def _lu_ref(x):
    def one(a):
        lu_, piv = scipy.linalg.lu_factor(a.astype(np.float64))
        perm = np.arange(a.shape[0])
        for i, p in enumerate(piv):
            perm[[i, p]] = perm[[p, i]]
        return lu_.astype(a.dtype), piv.astype(np.int32), perm.astype(np.int32)

    return _per_matrix(one, x)


def _normal(shape, spread=False):
    def make(rng, dtype):
        a = rng.standard_normal(shape)
        if spread:  # well separated singular values / eigenvalues
            k = min(shape[-2:])
            d = np.diag(np.arange(1, k + 1) * 1.5)
            u = np.linalg.qr(rng.standard_normal(shape[:-2] + (shape[-2], k)))[0]
            v = np.linalg.qr(rng.standard_normal(shape[:-2] + (shape[-1], k)))[0]
            a = u @ d @ np.swapaxes(v, -1, -2)
        return (a.astype(dtype),)

    return make


def _sym(shape, lower=True):
    def make(rng, dtype):
        n = shape[-1]
        q = np.linalg.qr(rng.standard_normal(shape))[0]
        w = np.arange(1, n + 1) * 1.3 - 2.0
        a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
        if lower:
            return ((np.tril(a) + np.triu(rng.standard_normal(shape), 1)).astype(dtype),)
        return ((np.triu(a) + np.tril(rng.standard_normal(shape), -1)).astype(dtype),)

    return make


def _qr_ref(x, *, full_matrices):
    def one(a):
        q, r = scipy.linalg.qr(a, mode="full" if full_matrices else "economic")
        return q, r

    return _per_matrix(one, x)


def _eigh_ref(x, *, lower):
    # In the operand's dtype: eigenvector signs are LAPACK's per-precision convention.
    t = np.tril(x) if lower else np.triu(x)
    sym = t + np.swapaxes(np.tril(x, -1) if lower else np.triu(x, 1), -1, -2)
    w, v = np.linalg.eigh(sym)
    return [v, w]


def _svd_ref(x, *, full_matrices, compute_uv):
    def one(a):
        # In the operand's dtype: singular vector signs are LAPACK's per-precision choice.
        u, s, vh = scipy.linalg.svd(a, full_matrices=full_matrices, lapack_driver="gesdd")
        if not compute_uv:
            return (s.astype(a.dtype),)
        return s.astype(a.dtype), u.astype(a.dtype), vh.astype(a.dtype)

    return _per_matrix(one, x)


_TOL = dict(rtol=1e-4, atol=1e-5)

CASES = [
    Case("cholesky", lambda rng, dt: _spd(rng, (4, 4), dt), _cholesky_ref, name="4x4", **_TOL),
    Case(
        "cholesky", lambda rng, dt: _spd(rng, (2, 3, 3), dt), _cholesky_ref, name="batched", **_TOL
    ),
    _tri("right_upper", (3, 3), (2, 3)),
    _tri("left_lower", (4, 4), (4, 2), left_side=True, lower=True),
    _tri("left_upper_T", (3, 3), (3, 2), left_side=True, transpose_a=True),
    _tri("right_lower_unit_T", (3, 3), (4, 3), lower=True, unit_diagonal=True, transpose_a=True),
    _tri("batched", (2, 3, 3), (2, 3, 2), left_side=True, lower=True),
    Case("lu", _normal((4, 4)), _lu_ref, name="4x4", **_TOL),
    Case("lu", _normal((3, 5)), _lu_ref, name="wide", **_TOL),
    Case("lu", _normal((5, 3)), _lu_ref, name="tall", **_TOL),
    Case("lu", _normal((2, 3, 3)), _lu_ref, name="batched", **_TOL),
    Case("qr", _normal((4, 4)), _qr_ref, dict(full_matrices=True), name="square", **_TOL),
    Case("qr", _normal((5, 3)), _qr_ref, dict(full_matrices=False), name="tall", **_TOL),
    Case("qr", _normal((2, 4, 3)), _qr_ref, dict(full_matrices=False), name="batched", **_TOL),
    Case(
        "qr",
        _normal((3, 5)),
        _qr_ref,
        dict(full_matrices=False),
        name="wide",
        diff=(),
        **_TOL,
    ),
    Case("eigh", _sym((4, 4)), _eigh_ref, dict(lower=True), name="lower", **_TOL),
    Case(
        "eigh",
        _sym((2, 3, 3), lower=False),
        _eigh_ref,
        dict(lower=False),
        name="upper_batched",
        **_TOL,
    ),
    Case(
        "svd",
        _normal((4, 3), True),
        _svd_ref,
        dict(full_matrices=False, compute_uv=True),
        name="tall",
        **_TOL,
    ),
    Case(
        "svd",
        _normal((3, 5), True),
        _svd_ref,
        dict(full_matrices=False, compute_uv=True),
        name="wide",
        **_TOL,
    ),
    Case(
        "svd",
        _normal((2, 3, 3), True),
        _svd_ref,
        dict(full_matrices=True, compute_uv=True),
        name="square_batched",
        **_TOL,
    ),
    Case(
        "svd",
        _normal((4, 2), True),
        _svd_ref,
        dict(full_matrices=False, compute_uv=False),
        name="values",
        **_TOL,
    ),
]
