"""NumPy names added with the linear-algebra work (``r_``, ``c_``, ``gradient``,
``partition``/``argpartition``, casting scalar types) and regressions found by autograd's
test suite (``linspace`` with one sample, ``logaddexp`` curvature at a tie, ``einsum`` with
an empty batch axis). References: NumPy, closed forms, finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from tests.helpers import check_grads

RNG = np.random.default_rng(0)


# -- regressions


@pytest.mark.parametrize("endpoint", [True, False])
def test_linspace_one_sample_under_transformations(endpoint):
    def f(x):
        return fnp.linspace(x, 2.0, 1, endpoint=endpoint)

    want = np.linspace(1.0, 2.0, 1, endpoint=endpoint)
    np.testing.assert_array_equal(f(1.0), want)
    np.testing.assert_array_equal(fg.jit(f)(1.0), want)
    out, vjp = fg.vjp(f, 1.0)
    np.testing.assert_array_equal(out, want)
    assert vjp(np.ones(1))[0] == 1.0


def test_logaddexp_second_derivative_at_a_tie():
    # d2/dx2 log(e^x + e^c) = s (1 - s), s = e^x / (e^x + e^c): 1/4 at x = c; base 2: ln2 / 4.
    d2 = fg.grad(fg.grad(lambda x: fnp.logaddexp(x, 0.4)))(0.4)
    np.testing.assert_allclose(d2, 0.25, rtol=1e-12)
    d2 = fg.grad(fg.grad(lambda x: fnp.logaddexp2(x, 0.4)))(0.4)
    np.testing.assert_allclose(d2, math.log(2) / 4, rtol=1e-12)
    x = RNG.standard_normal(5)
    check_grads(lambda a, b: fnp.logaddexp(a, b), (x, x[::-1].copy()), order=2)
    check_grads(lambda a, b: fnp.logaddexp2(a, b), (x, x[::-1].copy()), order=2)


def test_logaddexp_infinities():
    a = np.array([1.0, np.inf, -np.inf, -np.inf])
    b = np.array([np.inf, np.inf, -np.inf, 2.0])
    np.testing.assert_array_equal(fnp.logaddexp(a, b), np.logaddexp(a, b))
    g = fg.grad(lambda x: fnp.sum(fnp.logaddexp(x, np.inf)))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])
    g = fg.grad(lambda x: fnp.sum(fnp.logaddexp(x, -np.inf)))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [1.0, 1.0])


def test_einsum_empty_batch_axis():
    a, b = np.ones((0, 2, 3)), np.ones((0, 3, 4))
    want = np.einsum("bij,bjk->bik", a, b)
    assert fnp.einsum("bij,bjk->bik", a, b).shape == want.shape == (0, 2, 4)
    assert fg.jit(lambda x, y: fnp.einsum("bij,bjk->bik", x, y))(a, b).shape == (0, 2, 4)
    one = np.ones((1, 2, 3))
    assert fnp.einsum("bij,bjk->bik", one, b).shape == np.einsum("bij,bjk->bik", one, b).shape


SCALAR_NAMES = [
    "bool_", "float16", "float32", "float64", "double", "single", "half", "int8", "int16",
    "int32", "int64", "int_", "intp", "uint8", "uint16", "uint32", "uint64", "uint",
    "complex64", "complex128",
]  # fmt: skip


@pytest.mark.parametrize("name", SCALAR_NAMES)
def test_scalar_types_cast_traced_values(name):
    t = getattr(fnp, name)
    np_t = getattr(np, name)
    x = np.array([1.7, -0.2, 3.0])
    want = np_t(x) if np.dtype(np_t).kind != "u" else np.abs(x).astype(np_t)
    arg = x if np.dtype(np_t).kind != "u" else np.abs(x)
    np.testing.assert_array_equal(fg.vmap(t)(arg), want)
    assert np.asarray(fg.vmap(t)(arg)).dtype == np.dtype(np_t)
    if np.dtype(np_t) != np.float16:  # kernels have no float16
        np.testing.assert_array_equal(fg.jit(t)(arg), want)
        assert np.asarray(fg.jit(t)(arg)).dtype == np.dtype(np_t)
    # Concretely, the NumPy scalar type itself; as a dtype, the NumPy type.
    assert type(t(1)) is np_t and t == np_t and np.dtype(t) == np.dtype(np_t)
    assert isinstance(np_t(1), t) and {np_t: 1}[t] == 1
    assert fnp.zeros(2, t).dtype == np.dtype(np_t)


def test_float_scalar_type_under_grad():
    g = fg.grad(lambda x: fnp.float64(x) * 3.0)(2.0)
    assert g == 3.0
    assert fg.grad(lambda x: fnp.float32(x) * 3.0)(np.float32(2.0)).dtype == np.float32


# -- r_, c_


X = np.array([3.0, 1.0, 2.0])
CONCAT_CASES = [
    ("r_", (slice(1, 4), 0, X)),
    ("r_", (slice(0, 1, 5j),)),
    ("r_", ("0,2", [1, 2], [3, 4])),
    ("r_", ("-1,2,0", [1, 2], [3, 4])),
    ("r_", ("1", np.ones((2, 2)), np.zeros((2, 1)))),
    ("r_", (np.int32(2), [1.5])),
    ("c_", (np.ones(2), np.zeros(2))),
    ("c_", (np.array([[1, 2, 3]]), 0, 0, np.array([[4, 5, 6]]))),
    ("c_", (slice(0, 3), X)),
]


@pytest.mark.parametrize("name,key", CONCAT_CASES)
def test_concatenators_match_numpy(name, key):
    got = getattr(fnp, name)[key]
    want = getattr(np, name)[key]
    assert np.asarray(got).dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_concatenators_trace():
    out = fg.jit(lambda a: fnp.r_[a, 1.0, a])(X)
    np.testing.assert_array_equal(out, np.r_[X, 1.0, X])
    g = fg.grad(lambda a: fnp.sum(fnp.c_[a, 2 * a] ** 2))(X)
    np.testing.assert_allclose(g, 10 * X)
    with pytest.raises(ValueError, match="fnp.r_: the matrix directives"):
        fnp.r_["r", [1, 2]]


# -- gradient

F = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
XS = np.array([0.0, 1.0, 1.5, 3.5, 4.0, 6.0])


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("spacing", [(), (2.0,), (XS,)], ids=["unit", "scalar", "coords"])
def test_gradient_matches_numpy(spacing, edge_order):
    np.testing.assert_allclose(
        fnp.gradient(F, *spacing, edge_order=edge_order),
        np.gradient(F, *spacing, edge_order=edge_order),
        rtol=1e-12,
    )


def test_gradient_axes_and_derivatives():
    g = RNG.standard_normal((4, 5))
    for got, want in zip(fnp.gradient(g, 2.0, XS[:5]), np.gradient(g, 2.0, XS[:5]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(fnp.gradient(g, axis=1), np.gradient(g, axis=1), rtol=1e-12)
    np.testing.assert_allclose(fnp.gradient(np.arange(5) ** 2), np.gradient(np.arange(5) ** 2))
    check_grads(lambda f, x: fnp.gradient(f, x, edge_order=2), (F, XS), order=2)
    np.testing.assert_allclose(fg.jit(lambda f: fnp.gradient(f, XS))(F), np.gradient(F, XS))
    with pytest.raises(ValueError, match="fnp.gradient: shape of the array too small"):
        fnp.gradient(np.ones(2), edge_order=2)


# -- partition


@pytest.mark.parametrize("kth", [0, 3, -1, [1, 4]])
def test_partition_contract(kth):
    a = RNG.standard_normal((3, 7))
    p = np.asarray(fnp.partition(a, kth, axis=1))
    ip = np.asarray(fnp.argpartition(a, kth, axis=1))
    want = np.partition(a, kth, axis=1)
    np.testing.assert_array_equal(np.take_along_axis(a, ip, axis=1), p)
    for k in np.atleast_1d(kth) % a.shape[1]:
        np.testing.assert_array_equal(p[:, k], want[:, k])
        assert (p[:, :k] <= p[:, k : k + 1]).all() and (p[:, k:] >= p[:, k : k + 1]).all()
    with pytest.raises(ValueError, match="fnp.partition: kth=9 out of bounds"):
        fnp.partition(a, 9, axis=1)
