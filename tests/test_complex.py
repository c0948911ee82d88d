"""Complex dtypes through eager mode, grad (JAX's convention), vmap and jit, and NumPy 2's
promotion rules. References: NumPy, closed forms worked out by hand, finite differences
(``tests/helpers.check_grads`` perturbs complex leaves and pairs complex values as
``Re(sum(a * b))``, under which JAX's transposes are adjoints)."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from tests.helpers import check_grads

RNG = np.random.default_rng(0)
Z = (RNG.standard_normal(4) + 1j * RNG.standard_normal(4)).astype(np.complex128)
W = (RNG.standard_normal(4) + 1j * RNG.standard_normal(4)).astype(np.complex128)


FUNCS = {
    "real": lambda z: fnp.real(z),
    "imag": lambda z: fnp.imag(z),
    "conj": lambda z: fnp.conj(z),
    "abs": lambda z: fnp.abs(z),
    "angle": lambda z: fnp.angle(z),
    "exp": lambda z: fnp.exp(z),
    "sin": lambda z: fnp.sin(z),
    "log": lambda z: fnp.log(z),
    "sqrt": lambda z: fnp.sqrt(z),
    "poly": lambda z: z * z * 3.0 - z / (z + 2.0),
    "mixed": lambda z: fnp.abs(z * fnp.conj(z) + 1j) * fnp.real(z),
    "matmul": lambda z: fnp.outer(z, fnp.conj(z)) @ z,
    "sum": lambda z: fnp.sum(z * z),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_values_match_numpy(name):
    f = FUNCS[name]
    want = {
        "real": np.real,
        "imag": np.imag,
        "conj": np.conj,
        "abs": np.abs,
        "angle": np.angle,
        "exp": np.exp,
        "sin": np.sin,
        "log": np.log,
        "sqrt": np.sqrt,
    }.get(name)
    got = f(Z)
    if want is not None:
        np.testing.assert_allclose(got, want(Z), rtol=1e-12)
        assert np.asarray(got).dtype == want(Z).dtype
    np.testing.assert_allclose(fg.jit(f)(Z), got, rtol=1e-12, atol=1e-14)
    z64 = Z.astype(np.complex64)
    assert np.asarray(fg.jit(f)(z64)).dtype == np.asarray(f(z64)).dtype


@pytest.mark.parametrize("name", list(FUNCS))
def test_derivatives_match_finite_differences(name):
    check_grads(FUNCS[name], (Z,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(FUNCS))
def test_vmap_matches_loop(name):
    f = FUNCS[name]
    batch = np.stack([Z, W, Z * 2])
    out = fg.vmap(f)(batch)
    np.testing.assert_allclose(out, np.stack([f(b) for b in batch]), rtol=1e-12, atol=1e-14)


def test_grad_convention_closed_forms():
    """JAX's convention: grad of real f(x + iy) is df/dx - i df/dy."""
    z = np.complex128(1.5 - 2.0j)
    # |z|^2 = x^2 + y^2: 2x - 2iy = 2 conj(z).
    np.testing.assert_allclose(fg.grad(lambda z: fnp.abs(z) ** 2)(z), 2 * np.conj(z))
    np.testing.assert_allclose(fg.grad(lambda z: fnp.real(z))(z), 1.0)
    np.testing.assert_allclose(fg.grad(lambda z: fnp.imag(z))(z), -1.0j)
    # |z| = r: (x - iy) / r.
    np.testing.assert_allclose(fg.grad(lambda z: fnp.abs(z))(z), np.conj(z) / abs(z))
    # angle = atan2(y, x): d/dx = -y/r^2, d/dy = x/r^2.
    r2 = abs(z) ** 2
    np.testing.assert_allclose(
        fg.grad(lambda z: fnp.angle(z))(z), -z.imag / r2 - 1j * z.real / r2, rtol=1e-12
    )
    # Re(w z) for a constant w: x Re(w) - y Im(w): Re(w) + i Im(w) = w.
    w = np.complex128(0.3 + 0.7j)
    np.testing.assert_allclose(fg.grad(lambda z: fnp.real(w * z))(z), w)
    # The gradient keeps the argument's dtype.
    assert fg.grad(lambda z: fnp.abs(z))(np.complex64(z)).dtype == np.complex64


def test_holomorphic_grad():
    z = np.complex128(0.5 + 1.25j)
    np.testing.assert_allclose(fg.grad(lambda z: z**3, holomorphic=True)(z), 3 * z**2)
    np.testing.assert_allclose(fg.grad(fnp.exp, holomorphic=True)(z), np.exp(z))
    np.testing.assert_allclose(fg.grad(fnp.sin, holomorphic=True)(z), np.cos(z))
    np.testing.assert_allclose(
        fg.jit(fg.grad(lambda z: fnp.log(z) * z, holomorphic=True))(z), np.log(z) + 1
    )
    with pytest.raises(TypeError, match="holomorphic=True"):
        fg.grad(fnp.sin)(z)
    with pytest.raises(TypeError, match="needs complex inputs"):
        fg.grad(fnp.sin, holomorphic=True)(1.0)


def test_holomorphic_jacobians_and_hessian():
    # Closed forms: f(z) = sin(z) * z elementwise, f'(z) = cos(z) z + sin(z) (diagonal).
    z = np.array([1 + 2j, 0.5 - 1j, -0.3 + 0.1j], np.complex128)
    f = lambda z: fnp.sin(z) * z
    want = np.diag(np.cos(z) * z + np.sin(z))
    for jac in (fg.jacfwd, fg.jacrev):
        got = jac(f, holomorphic=True)(z)
        assert got.dtype == np.complex128
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(fg.jit(fg.jacrev(f, holomorphic=True))(z), want, rtol=1e-12)
    # A dense Jacobian: f(z) = A @ z**2 has f'(z) = A diag(2z).
    a = np.array([[1, 2j, 0], [0.5, -1, 1j]], np.complex128)
    np.testing.assert_allclose(
        fg.jacfwd(lambda z: a @ z**2, holomorphic=True)(z), a * (2 * z)[None, :], rtol=1e-12
    )
    h = fg.hessian(lambda z: fnp.sum(z**3), holomorphic=True)(z)
    np.testing.assert_allclose(h, np.diag(6 * z), rtol=1e-12)
    # A real output of complex inputs: jacrev follows grad's convention (conj of df/dz x 2).
    np.testing.assert_allclose(fg.jacrev(lambda z: fnp.abs(z) ** 2)(z), np.diag(2 * np.conj(z)))


def test_complex_jacobians_need_holomorphic_as_in_jax():
    z = np.array([1 + 2j, 0.5 - 1j], np.complex64)
    f = lambda z: fnp.sin(z) * z
    with pytest.raises(TypeError, match=r"jacfwd\(<lambda>\) needs real inputs.*holomorphic=True"):
        fg.jacfwd(f)(z)
    with pytest.raises(TypeError, match=r"jacrev\(<lambda>\) needs real outputs.*vjp"):
        fg.jacrev(f)(z)
    with pytest.raises(TypeError, match="needs complex inputs.*float32"):
        fg.jacfwd(f, holomorphic=True)(z.real)
    with pytest.raises(TypeError, match="needs complex outputs.*float32"):
        fg.jacrev(lambda z: fnp.abs(z), holomorphic=True)(z)
    with pytest.raises(TypeError, match="needs complex outputs"):
        fg.jacfwd(lambda z: fnp.abs(z), holomorphic=True)(z)


def test_sort_orders_complex_like_numpy():
    # Real part first, then imaginary part; ties, NaNs and -0.0 included.
    z = np.array(
        [1 + 2j, 1 - 1j, -3 + 0j, 0.5 + 5j, np.nan + 0j, 1 - 1j, -0.0 + 2j, 0j], np.complex64
    )
    np.testing.assert_array_equal(fnp.sort(z), np.sort(z))
    np.testing.assert_array_equal(fnp.argsort(z), np.argsort(z, kind="stable"))
    np.testing.assert_array_equal(fg.jit(fnp.sort)(z), np.sort(z))
    np.testing.assert_array_equal(fg.jit(fnp.argsort)(z), np.argsort(z, kind="stable"))
    rows = np.stack([z, z[::-1], z * 1j])
    np.testing.assert_array_equal(fg.vmap(fnp.sort)(rows), np.sort(rows, axis=1))
    np.testing.assert_array_equal(fnp.sort(rows, axis=0), np.sort(rows, axis=0))
    # Splitting complex keys keeps num_keys checked against the operands given.
    for keys in (0, 3):
        with pytest.raises(ValueError, match=f"num_keys={keys} must be between 1"):
            lax.sort((z, z.real), num_keys=keys)
    # The sort's derivative permutes the cotangent (real inputs through a complex sort).
    x = np.array([3.0, 1.0, 2.0, 0.0])
    g = fg.grad(lambda x: fnp.sum(fnp.sort(x * (1 + 1j)).real * np.arange(4.0)))(x)
    np.testing.assert_array_equal(g, [3.0, 1.0, 2.0, 0.0])


def test_grad_through_jit_and_vmap():
    def loss(z):
        return fnp.sum(fnp.abs(fnp.exp(z) - 1.0) ** 2)

    g = fg.grad(loss)(Z)
    np.testing.assert_allclose(fg.jit(fg.grad(loss))(Z), g, rtol=1e-12)
    per = fg.vmap(fg.grad(lambda z: fnp.abs(fnp.exp(z) - 1.0) ** 2))(Z)
    np.testing.assert_allclose(per, g, rtol=1e-12)
    # Closed form: |e^z - 1|^2 = e^{2x} - 2 e^x cos y + 1.
    x, y = Z.real, Z.imag
    want = (2 * np.exp(2 * x) - 2 * np.exp(x) * np.cos(y)) - 1j * (2 * np.exp(x) * np.sin(y))
    np.testing.assert_allclose(g, want, rtol=1e-12)


def test_complex_from_parts_and_methods():
    x, y = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    np.testing.assert_array_equal(fg.lax.complex(x, y), x + 1j * y)
    assert fg.lax.complex(np.float32(1), np.float32(2)).dtype == np.complex64

    def f(z):
        return fnp.sum(z.real * z.imag + fnp.abs(z.conj()) + fnp.abs(z.conjugate()))

    np.testing.assert_allclose(f(Z), np.sum(Z.real * Z.imag + 2 * np.abs(Z)))
    np.testing.assert_allclose(fg.jit(f)(Z), f(Z))
    check_grads(f, (Z,), order=1)


def test_iscomplex_isreal_real_if_close():
    a = np.array([1 + 0j, 2 + 1e-20j, 1j])
    np.testing.assert_array_equal(fnp.iscomplex(a), np.iscomplex(a))
    np.testing.assert_array_equal(fnp.isreal(a), np.isreal(a))
    np.testing.assert_array_equal(fnp.iscomplex(np.ones(2)), np.iscomplex(np.ones(2)))
    np.testing.assert_array_equal(fg.jit(fnp.iscomplex)(a), np.iscomplex(a))
    close = np.array([1 + 1e-16j, 2 + 0j])
    assert fnp.real_if_close(close).dtype == np.real_if_close(close).dtype == np.float64
    assert fnp.real_if_close(a).dtype == np.complex128
    with pytest.raises(fg.errors.ConcretizationTypeError, match="real_if_close"):
        fg.jit(fnp.real_if_close)(a)


PROMOTION = [
    (np.complex64, np.float64),
    (np.complex64, np.float32),
    (np.complex64, np.complex128),
    (np.complex64, np.int64),
    (np.complex128, np.float32),
    (np.float16, np.complex64),
    (np.int8, np.complex64),
]


@pytest.mark.parametrize("a,b", PROMOTION)
def test_promotion_is_numpy2(a, b):
    x, y = np.ones(2, a), np.ones(2, b)
    assert fnp.add(x, y).dtype == np.add(x, y).dtype
    if np.float16 not in (a, b):  # kernels have no float16
        assert fg.jit(fnp.multiply)(x, y).dtype == np.multiply(x, y).dtype


def test_python_scalar_promotion():
    z64 = np.ones(2, np.complex64)
    assert (fnp.asarray(z64) * 2.0).dtype == (z64 * 2.0).dtype == np.complex64
    f32 = np.ones(2, np.float32)
    assert fnp.add(f32, 1j).dtype == np.add(f32, 1j).dtype == np.complex64
    assert fnp.abs(z64).dtype == np.float32


@pytest.mark.parametrize(
    "name", ["vdot", "sign", "var", "std", "isclose", "mean", "prod", "cumsum"]
)
def test_numpy_functions_on_complex(name):
    z = Z.copy()
    z[1] = 0
    args = (z, W) if name in ("vdot", "isclose") else (z,)
    got, want = getattr(fnp, name)(*args), getattr(np, name)(*args)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(fg.jit(getattr(fnp, name))(*args), want, rtol=1e-12)
    if name in ("var", "std", "vdot"):
        check_grads(lambda *a: fnp.real(getattr(fnp, name)(*a)), args, order=1)
