"""funcgrad.numpy.linalg and funcgrad.scipy.linalg against NumPy/SciPy, finite differences,
Python loops (vmap) and eager mode (jit); a Gaussian-process likelihood and its gradient
against the closed form; a least-squares fit through ``lstsq``.

The primitives' own rules are checked by the registry test (``tests/specs/linalg.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

import funcgrad as fg
import funcgrad.numpy as fnp
import funcgrad.scipy.linalg as fsla
from tests.helpers import check_grads

RNG = np.random.default_rng(0)


def _spd(shape, rng=RNG):
    a = rng.standard_normal(shape)
    return a @ np.swapaxes(a, -1, -2) / shape[-1] + np.eye(shape[-1])


def _sym_spread(n, rng=RNG):
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (q * (np.arange(n) * 1.5 - 2.0)) @ q.T


def _wellcond(shape, rng=RNG):
    return rng.standard_normal(shape) + 2 * np.eye(shape[-1])


A = _wellcond((4, 4))
AB = _wellcond((2, 3, 3))
B = RNG.standard_normal((4, 2))
V = RNG.standard_normal(4)
SPD = _spd((4, 4))
SPDB = _spd((2, 3, 3))
TALL = RNG.standard_normal((6, 3))
WIDE = RNG.standard_normal((3, 5))


# ----------------------------------------------------------------------------------------
# values against NumPy / SciPy

VALUE_CASES = {
    "solve": (lambda a, b: fnp.linalg.solve(a, b), np.linalg.solve, (A, B)),
    "solve_vec": (lambda a, b: fnp.linalg.solve(a, b), np.linalg.solve, (A, V)),
    "solve_bcast": (
        lambda a, b: fnp.linalg.solve(a, b),
        np.linalg.solve,
        (AB, RNG.standard_normal((3, 2))),
    ),
    "inv": (fnp.linalg.inv, np.linalg.inv, (AB,)),
    "det": (fnp.linalg.det, np.linalg.det, (AB,)),
    "det_int": (fnp.linalg.det, np.linalg.det, (np.array([[2, 1], [1, 3]]),)),
    "slogdet": (
        lambda a: tuple(fnp.linalg.slogdet(a)),
        lambda a: tuple(np.linalg.slogdet(a)),
        (AB,),
    ),
    "cholesky": (fnp.linalg.cholesky, np.linalg.cholesky, (SPDB,)),
    "cholesky_upper": (
        lambda a: fnp.linalg.cholesky(a, upper=True),
        lambda a: np.linalg.cholesky(a, upper=True),
        (SPD,),
    ),
    "eigvalsh": (fnp.linalg.eigvalsh, np.linalg.eigvalsh, (SPDB,)),
    "svdvals": (
        lambda a: fnp.linalg.svd(a, compute_uv=False),
        lambda a: np.linalg.svd(a, compute_uv=False),
        (RNG.standard_normal((2, 4, 3)),),
    ),
    "lstsq": (
        lambda a, b: tuple(fnp.linalg.lstsq(a, b)),
        lambda a, b: tuple(np.linalg.lstsq(a, b)),
        (TALL, RNG.standard_normal((6, 2))),
    ),
    "lstsq_wide": (
        lambda a, b: tuple(fnp.linalg.lstsq(a, b)[::2]),
        lambda a, b: tuple(np.linalg.lstsq(a, b)[::2]),
        (WIDE, RNG.standard_normal(3)),
    ),
    "pinv": (fnp.linalg.pinv, np.linalg.pinv, (TALL,)),
    "pinv_deficient": (
        fnp.linalg.pinv,
        np.linalg.pinv,
        (np.outer(np.arange(1.0, 5), np.arange(1.0, 4)),),
    ),
    "matrix_rank": (
        fnp.linalg.matrix_rank,
        np.linalg.matrix_rank,
        (np.outer(np.arange(1.0, 5), np.arange(1.0, 4)),),
    ),
    "matrix_power3": (
        lambda a: fnp.linalg.matrix_power(a, 3),
        lambda a: np.linalg.matrix_power(a, 3),
        (AB,),
    ),
    "matrix_power_neg": (
        lambda a: fnp.linalg.matrix_power(a, -2),
        lambda a: np.linalg.matrix_power(a, -2),
        (A,),
    ),
    "matrix_power0": (
        lambda a: fnp.linalg.matrix_power(a, 0),
        lambda a: np.linalg.matrix_power(a, 0),
        (A,),
    ),
    "multi_dot": (
        lambda *xs: fnp.linalg.multi_dot(xs),
        lambda *xs: np.linalg.multi_dot(xs),
        (
            RNG.standard_normal(3),
            RNG.standard_normal((3, 5)),
            RNG.standard_normal((5, 2)),
            RNG.standard_normal((2, 4)),
        ),
    ),
    "tensorinv": (
        lambda a: fnp.linalg.tensorinv(a, 2),
        lambda a: np.linalg.tensorinv(a, 2),
        (_wellcond((6, 6)).reshape(2, 3, 6),),
    ),
    "tensorsolve": (
        fnp.linalg.tensorsolve,
        np.linalg.tensorsolve,
        (_wellcond((6, 6)).reshape(2, 3, 6), RNG.standard_normal((2, 3))),
    ),
    "cho_solve": (
        lambda a, b: fsla.cho_solve(fsla.cho_factor(a), b),
        lambda a, b: sla.cho_solve(sla.cho_factor(a), b),
        (SPD, B),
    ),
    "cho_solve_lower_vec": (
        lambda a, b: fsla.cho_solve(fsla.cho_factor(a, lower=True), b),
        lambda a, b: sla.cho_solve(sla.cho_factor(a, lower=True), b),
        (SPD, V),
    ),
    "solve_triangular_T": (
        lambda a, b: fsla.solve_triangular(a, b, trans="T", lower=True),
        lambda a, b: sla.solve_triangular(a, b, trans="T", lower=True),
        (A, B),
    ),
    "solve_triangular_unit": (
        lambda a, b: fsla.solve_triangular(a, b, unit_diagonal=True),
        lambda a, b: sla.solve_triangular(a, b, unit_diagonal=True),
        (A, V),
    ),
    "lu_solve_T": (
        lambda a, b: fsla.lu_solve(fsla.lu_factor(a), b, trans=1),
        lambda a, b: sla.lu_solve(sla.lu_factor(a), b, trans=1),
        (A, B),
    ),
}
for _ord in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf):
    VALUE_CASES[f"norm_{_ord}"] = (
        lambda a, o=_ord: fnp.linalg.norm(a, o),
        lambda a, o=_ord: np.linalg.norm(a, o),
        (TALL,),
    )
for _ord in (None, 1, -1, 2, -2, np.inf, "fro"):
    VALUE_CASES[f"cond_{_ord}"] = (
        lambda a, o=_ord: fnp.linalg.cond(a, o),
        lambda a, o=_ord: np.linalg.cond(a, o),
        (A,),
    )
VALUE_CASES["norm_nuc_batched_axis"] = (
    lambda a: fnp.linalg.norm(a, "nuc", axis=(0, 2)),
    lambda a: np.linalg.norm(a, "nuc", axis=(0, 2)),
    (RNG.standard_normal((3, 2, 4)),),
)


def _close(got, want, rtol=1e-9, atol=1e-10):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_values_match_numpy(name):
    f, ref, args = VALUE_CASES[name]
    copies = [np.array(a, copy=True) for a in args]
    _close(f(*args), ref(*copies))
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_decompositions_reconstruct():
    x = RNG.standard_normal((2, 5, 3))
    u, s, vh = fnp.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose((u * s[..., None, :]) @ vh, x, atol=1e-12)
    u, s, vh = fnp.linalg.svd(x)
    assert u.shape == (2, 5, 5) and vh.shape == (2, 3, 3)
    np.testing.assert_allclose(
        u @ np.swapaxes(u, -1, -2), np.broadcast_to(np.eye(5), u.shape), atol=1e-12
    )
    for mode in ("reduced", "complete"):
        q, r = fnp.linalg.qr(x, mode=mode)
        q2, r2 = np.linalg.qr(x, mode=mode)
        np.testing.assert_allclose(q, q2, atol=1e-12)
        np.testing.assert_allclose(r, r2, atol=1e-12)
    np.testing.assert_allclose(fnp.linalg.qr(x, mode="r"), np.linalg.qr(x, mode="r"), atol=1e-12)
    w, v = fnp.linalg.eigh(SPDB)
    np.testing.assert_allclose((v * w[..., None, :]) @ np.swapaxes(v, -1, -2), SPDB, atol=1e-12)
    lu, piv, perm = fg.lax.linalg.lu(TALL)
    k = 3
    low = np.tril(lu[:, :k], -1) + np.eye(6, k)
    np.testing.assert_allclose(TALL[perm], low @ np.triu(lu[:k]), atol=1e-12)
    np.testing.assert_array_equal(piv, sla.lu_factor(TALL)[1])


def test_failures_are_values():
    bad = -np.eye(3)
    assert np.isnan(fnp.linalg.cholesky(bad)).all()
    both = np.stack([bad, np.eye(3)])
    out = fnp.linalg.cholesky(both)
    assert np.isnan(out[0]).all() and np.allclose(out[1], np.eye(3))
    jit_out = fg.jit(fnp.linalg.cholesky)(both)
    assert np.isnan(jit_out[0]).all() and np.allclose(jit_out[1], np.eye(3))
    assert fnp.linalg.det(np.ones((3, 3))) == 0
    assert np.isinf(fnp.linalg.slogdet(np.ones((3, 3)))[1])


def test_errors_name_the_operation():
    with pytest.raises(ValueError, match="fnp.linalg.inv.*square"):
        fnp.linalg.inv(np.ones((2, 3)))
    with pytest.raises(ValueError, match="fnp.linalg.det.*two-dimensional"):
        fnp.linalg.det(np.ones(3))
    with pytest.raises(ValueError, match="fnp.linalg.solve.*match"):
        fnp.linalg.solve(np.eye(3), np.ones(4))
    with pytest.raises(TypeError, match="cholesky.*floating"):
        fg.lax.linalg.cholesky(np.eye(3, dtype=np.int32))
    with pytest.raises(ValueError, match="triangular_solve.*do not match"):
        fg.lax.linalg.triangular_solve(np.eye(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match="qr: mode"):
        fnp.linalg.qr(np.eye(3), mode="raw")
    with pytest.raises(NotImplementedError, match="qr: the derivative needs"):
        fg.jvp(lambda x: fnp.linalg.qr(x, mode="complete")[0], (TALL,), (TALL,))


# ----------------------------------------------------------------------------------------
# derivatives against finite differences (forward and reverse, second order where cheap)

GRAD_CASES = {
    "solve": (lambda a, b: fnp.linalg.solve(a, b), (A, B), 2),
    "solve_vec_batched": (lambda a, b: fnp.linalg.solve(a, b), (AB, RNG.standard_normal(3)), 1),
    "inv": (fnp.linalg.inv, (A,), 2),
    "det": (fnp.linalg.det, (AB,), 2),
    "slogdet": (lambda a: fnp.linalg.slogdet(a)[1], (A,), 2),
    "cholesky": (fnp.linalg.cholesky, (SPDB,), 2),
    "eigh": (lambda a: tuple(fnp.linalg.eigh(a)), (_sym_spread(4),), 1),
    "eigvalsh": (fnp.linalg.eigvalsh, (_sym_spread(4),), 2),
    "svd_tall": (lambda a: tuple(fnp.linalg.svd(a, full_matrices=False)), (TALL,), 1),
    "svd_wide": (lambda a: tuple(fnp.linalg.svd(a, full_matrices=False)), (WIDE,), 1),
    "svdvals": (lambda a: fnp.linalg.svd(a, compute_uv=False), (TALL,), 2),
    "qr": (lambda a: tuple(fnp.linalg.qr(a)), (TALL,), 1),
    "lstsq": (lambda a, b: fnp.linalg.lstsq(a, b)[0], (TALL, RNG.standard_normal(6)), 1),
    "pinv": (fnp.linalg.pinv, (TALL,), 1),
    "norm_2": (lambda a: fnp.linalg.norm(a, 2), (TALL,), 2),
    "norm_nuc": (lambda a: fnp.linalg.norm(a, "nuc"), (TALL,), 1),
    "cond": (fnp.linalg.cond, (A,), 1),
    "matrix_power": (lambda a: fnp.linalg.matrix_power(a, -3), (A,), 1),
    "multi_dot": (
        lambda a, b, c: fnp.linalg.multi_dot([a, b, c]),
        (TALL, WIDE, RNG.standard_normal(5)),
        1,
    ),
    "cho_solve": (
        lambda a, b: fsla.cho_solve(fsla.cho_factor(a), b),
        (SPD, B),
        2,
    ),
    "solve_triangular": (
        lambda a, b: fsla.solve_triangular(a, b, lower=True, trans=1),
        (A, B),
        2,
    ),
    "lu": (lambda a: fg.lax.linalg.lu(a)[0], (TALL,), 1),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_derivatives_match_finite_differences(name):
    f, args, order = GRAD_CASES[name]
    check_grads(f, args, order=order, modes=("fwd", "rev"), rtol=1e-5)


def test_pinv_derivative_at_rank_deficient_matrix():
    """The closed form holds along directions that keep the rank (here: rank one)."""
    u, v = np.arange(1.0, 5), np.array([1.0, -2.0, 0.5])
    du, dv = RNG.standard_normal(4), RNG.standard_normal(3)

    def along(t):
        return fnp.linalg.pinv(fnp.outer(u + t * du, v + t * dv))

    eps = 1e-6
    fd = (
        np.linalg.pinv(np.outer(u + eps * du, v + eps * dv))
        - np.linalg.pinv(np.outer(u - eps * du, v - eps * dv))
    ) / (2 * eps)
    _, tangent = fg.jvp(along, (0.0,), (1.0,))
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-7)


def test_degenerate_eigenvalues():
    """Eigenvalue derivatives stay finite at repeated eigenvalues (the trace's gradient is
    the identity); eigenvector derivatives are not defined there (inf/nan, as JAX's)."""
    g = fg.grad(lambda a: fnp.sum(fnp.linalg.eigvalsh(a)))(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)
    weights = np.arange(9.0).reshape(3, 3)
    gv = fg.grad(lambda a: fnp.sum(fnp.linalg.eigh(a)[1] * weights))(np.eye(3))
    assert not np.isfinite(gv).all()


# ----------------------------------------------------------------------------------------
# vmap against a Python loop, jit against eager


VMAP_CASES = ["solve", "inv", "det", "slogdet", "cholesky", "eigvalsh", "svdvals", "pinv"]


@pytest.mark.parametrize("name", VMAP_CASES)
def test_vmap_matches_loop(name):
    f, _, args = VALUE_CASES[name]
    batched = tuple(
        np.stack([a + 0.01 * i * np.eye(*a.shape[-2:]) if a.ndim >= 2 else a for i in range(3)])
        for a in args
    )
    out = fg.vmap(f)(*batched)
    loop = [f(*(b[i] for b in batched)) for i in range(3)]
    if isinstance(out, tuple):
        for k, o in enumerate(out):
            np.testing.assert_allclose(
                o, np.stack([np.asarray(r[k]) for r in loop]), rtol=1e-10, atol=1e-12
            )
    else:
        np.testing.assert_allclose(out, np.stack(loop), rtol=1e-10, atol=1e-12)


def _many(a, spd, tall, b):
    """Most of the API in one function, so jit compiles one kernel for all of it."""
    la = fnp.linalg
    return (
        la.solve(a, b),
        la.inv(a),
        la.det(a),
        la.slogdet(a)[1],
        la.cholesky(spd),
        la.eigh(spd)[0],
        la.eigh(spd)[1],
        la.svd(tall, full_matrices=False)[1],
        la.svd(tall)[0],
        la.qr(tall)[1],
        la.qr(tall, mode="complete")[0],
        la.lstsq(tall, tall[:, 0])[0],
        la.pinv(tall),
        la.norm(tall, "nuc"),
        la.cond(a),
        fsla.cho_solve(fsla.cho_factor(spd), b),
        fsla.solve_triangular(a, b, trans=1),
    )


def test_jit_matches_eager():
    args = (A, SPD, TALL, B)
    eager = _many(*args)
    compiled = fg.jit(_many)(*args)
    for e, c in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(c, e, rtol=1e-9, atol=1e-10)
    g = fg.jit(
        fg.grad(
            lambda a, spd: fnp.sum(fnp.linalg.solve(a, spd)) + fnp.linalg.slogdet(spd)[1],
            argnums=(0, 1),
        )
    )
    ge = fg.grad(
        lambda a, spd: fnp.sum(fnp.linalg.solve(a, spd)) + fnp.linalg.slogdet(spd)[1],
        argnums=(0, 1),
    )
    for x, y in zip(g(A, SPD), ge(A, SPD), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-10)


def test_float32_stays_float32():
    a32 = A.astype(np.float32)
    for out in (
        fnp.linalg.inv(a32),
        fnp.linalg.det(a32),
        fnp.linalg.svd(a32)[1],
        fnp.linalg.eigh(SPD.astype(np.float32))[0],
    ):
        assert np.asarray(out).dtype == np.float32
    np.testing.assert_allclose(fnp.linalg.inv(a32), np.linalg.inv(A), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------
# Applications with closed forms


def _gp_kernel(x, log_ell, log_sf2, log_sn2, xp):
    d2 = (x[:, None] - x[None, :]) ** 2
    return xp.exp(log_sf2) * xp.exp(-0.5 * d2 / xp.exp(2 * log_ell)) + xp.exp(log_sn2) * xp.eye(
        x.shape[0]
    ), d2


def test_gaussian_process_log_likelihood_and_gradient():
    rng = np.random.default_rng(3)
    n = 12
    x = np.sort(rng.uniform(-3, 3, n))
    y = np.sin(x) + 0.1 * rng.standard_normal(n)
    theta = np.array([0.1, -0.2, np.log(0.05)])

    def loglik(theta):
        k, _ = _gp_kernel(x, theta[0], theta[1], theta[2], fnp)
        c = fsla.cho_factor(k, lower=True)
        alpha = fsla.cho_solve(c, y)
        logdet = 2 * fnp.sum(fnp.log(fnp.diagonal(c[0])))
        return -0.5 * fnp.dot(y, alpha) - 0.5 * logdet - 0.5 * n * np.log(2 * np.pi)

    # Closed form (NumPy): value and d/dtheta = 0.5 tr((alpha alpha^T - K^-1) dK/dtheta).
    k, d2 = _gp_kernel(x, *theta, np)
    kinv = np.linalg.inv(k)
    alpha = kinv @ y
    value = -0.5 * y @ alpha - 0.5 * np.linalg.slogdet(k)[1] - 0.5 * n * np.log(2 * np.pi)
    ell2 = np.exp(2 * theta[0])
    kse = np.exp(theta[1]) * np.exp(-0.5 * d2 / ell2)
    dks = [kse * d2 / ell2, kse, np.exp(theta[2]) * np.eye(n)]
    inner = np.outer(alpha, alpha) - kinv
    grad = np.array([0.5 * np.trace(inner @ dk) for dk in dks])

    np.testing.assert_allclose(loglik(theta), value, rtol=1e-10)
    np.testing.assert_allclose(fg.grad(loglik)(theta), grad, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fg.jit(fg.grad(loglik))(theta), grad, rtol=1e-8, atol=1e-10)

    # The same through fnp.linalg.slogdet and solve.
    def loglik2(theta):
        k, _ = _gp_kernel(x, theta[0], theta[1], theta[2], fnp)
        return (
            -0.5 * fnp.dot(y, fnp.linalg.solve(k, y))
            - 0.5 * fnp.linalg.slogdet(k)[1]
            - 0.5 * n * np.log(2 * np.pi)
        )

    np.testing.assert_allclose(fg.grad(loglik2)(theta), grad, rtol=1e-8, atol=1e-10)


def test_least_squares_fit():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, 40)
    design = np.stack([np.ones_like(x), x, x**2], axis=1)
    w_true = np.array([0.5, -1.0, 2.0])
    y = design @ w_true + 0.01 * rng.standard_normal(40)
    w, resid, rank, s = fnp.linalg.lstsq(design, y)
    w_np, resid_np, rank_np, s_np = np.linalg.lstsq(design, y)
    np.testing.assert_allclose(w, w_np, rtol=1e-10)
    np.testing.assert_allclose(resid, resid_np, rtol=1e-8)
    assert int(rank) == rank_np == 3
    np.testing.assert_allclose(w, w_true, atol=0.02)

    # The normal equations' solution and its derivative with respect to the data.
    def fit(y):
        return fnp.linalg.lstsq(design, y)[0]

    jac = fg.jacfwd(fit)(y)
    np.testing.assert_allclose(jac, np.linalg.pinv(design), rtol=1e-8, atol=1e-12)


def test_complex_matrices():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)) + 3 * np.eye(3)
    b = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    h = a @ a.conj().T
    la = fnp.linalg
    cases = [
        (la.solve, np.linalg.solve, (a, b)),
        (la.inv, np.linalg.inv, (a,)),
        (la.det, np.linalg.det, (a,)),
        (lambda x: tuple(la.slogdet(x)), lambda x: tuple(np.linalg.slogdet(x)), (a,)),
        (la.cholesky, np.linalg.cholesky, (h,)),
        (la.eigvalsh, np.linalg.eigvalsh, (h,)),
        (lambda x: la.svd(x, compute_uv=False), lambda x: np.linalg.svd(x, compute_uv=False), (a,)),
        (lambda x: la.norm(x, "nuc"), lambda x: np.linalg.norm(x, "nuc"), (a,)),
    ]
    for f, ref, args in cases:
        _close(f(*args), ref(*args))
        _close(fg.jit(f)(*args), ref(*args))
    # JAX's convention: the gradient of the (real) trace of a Hermitian matrix is I.
    g = fg.grad(lambda x: fnp.sum(la.eigvalsh(x)))(h)
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)
    check_grads(lambda x, y: la.solve(x, y), (a, b), order=1)
    check_grads(lambda x: fnp.real(la.det(x)), (a,), order=1)
