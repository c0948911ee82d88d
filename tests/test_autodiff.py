"""Automatic differentiation: jvp, linearize, vjp, grad, Jacobians, custom rules, checkpoint.

References come from outside the code under test: closed forms, NumPy, and central finite
differences (``tests.helpers.check_grads``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.nn as fnn
import funcgrad.numpy as fnp
from funcgrad.interpreters import ad, ad_templates
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import check_jaxpr
from funcgrad.lax import elementwise
from tests.helpers import check_grads

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def numerical_jacobian(f, x, eps=1e-6):
    """Central differences: shape out_shape + in_shape."""
    x = np.asarray(x, np.float64)
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for idx in np.ndindex(x.shape):
        dx = np.zeros_like(x)
        dx[idx] = eps
        jac[(...,) + idx] = (np.asarray(f(x + dx)) - np.asarray(f(x - dx))) / (2 * eps)
    return jac


# ----------------------------------------------------------------------------------------
# grad and value_and_grad against closed forms


def test_grad_closed_forms():
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(fg.grad(lambda x: fnp.sum(fnp.sin(x)))(x), np.cos(x))
    np.testing.assert_allclose(fg.grad(lambda x: fnp.sum(x**3))(x), 3 * x**2)
    np.testing.assert_allclose(
        fg.grad(lambda x: fnp.sum(fnp.exp(x) * fnp.tanh(x)))(x),
        np.exp(x) * np.tanh(x) + np.exp(x) * (1 - np.tanh(x) ** 2),
    )
    assert fg.grad(fnp.sin)(1.0) == pytest.approx(np.cos(1.0))


def test_value_and_grad():
    x = np.array([1.0, 2.0])
    val, g = fg.value_and_grad(lambda x: fnp.sum(x**2))(x)
    assert val == pytest.approx(5.0)
    np.testing.assert_allclose(g, 2 * x)
    assert isinstance(val, (np.ndarray, np.generic))


def test_grad_pytree_arguments():
    params = {"w": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": (np.array([0.5, -0.5]), 2.0)}
    x = np.array([1.0, -1.0])

    def loss(p, x):
        return fnp.sum((p["w"] @ x + p["b"][0]) ** 2) * p["b"][1]

    g = fg.grad(loss)(params, x)
    assert set(g) == {"w", "b"} and isinstance(g["b"], tuple)
    r = params["w"] @ x + params["b"][0]
    np.testing.assert_allclose(g["w"], 2 * 2.0 * np.outer(r, x))
    np.testing.assert_allclose(g["b"][0], 2 * 2.0 * r)
    np.testing.assert_allclose(g["b"][1], np.sum(r**2))


def test_argnums_int_and_tuple():
    def f(x, y, z):
        return x * y**2 + z

    assert fg.grad(f)(2.0, 3.0, 1.0) == pytest.approx(9.0)
    assert fg.grad(f, argnums=1)(2.0, 3.0, 1.0) == pytest.approx(12.0)
    assert fg.grad(f, argnums=-1)(2.0, 3.0, 1.0) == pytest.approx(1.0)
    gx, gz = fg.grad(f, argnums=(0, 2))(2.0, 3.0, 1.0)
    assert (gx, gz) == (pytest.approx(9.0), pytest.approx(1.0))
    val, (gy,) = fg.value_and_grad(f, argnums=(1,))(2.0, 3.0, 1.0)
    assert val == pytest.approx(19.0) and gy == pytest.approx(12.0)


def test_keyword_arguments_are_not_differentiated():
    def f(x, scale=1.0):
        return fnp.sum(x) * scale

    np.testing.assert_allclose(fg.grad(f)(np.ones(3), scale=3.0), [3.0, 3.0, 3.0])


def test_has_aux():
    def f(x):
        return fnp.sum(x**2), {"norm": fnp.sqrt(fnp.sum(x**2)), "n": 3}

    x = np.array([3.0, 4.0, 0.0])
    g, aux = fg.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x)
    assert aux["norm"] == pytest.approx(5.0) and aux["n"] == 3
    (val, aux), g = fg.value_and_grad(f, has_aux=True)(x)
    assert val == pytest.approx(25.0) and aux["norm"] == pytest.approx(5.0)
    out, vjp_fun, aux = fg.vjp(f, x, has_aux=True)
    np.testing.assert_allclose(vjp_fun(1.0)[0], 2 * x)
    out, t, aux = fg.jvp(f, (x,), (np.ones(3),), has_aux=True)
    assert t == pytest.approx(14.0) and aux["norm"] == pytest.approx(5.0)


def test_python_control_flow_on_concrete_values():
    def f(x):
        if x > 0:
            return x**2
        return -3.0 * x

    assert fg.grad(f)(2.0) == pytest.approx(4.0)
    assert fg.grad(f)(-2.0) == pytest.approx(-3.0)

    def g(x):
        total = 0.0
        for i in range(int(x.sum()) if x.sum() > 0 else 0):
            total = total + x[i % 2] * i
        return total

    np.testing.assert_allclose(fg.grad(g)(np.array([1.0, 2.0])), [0.0 + 2.0, 1.0])
    # and under grad of grad: the outer level is concrete too
    assert fg.grad(fg.grad(f))(2.0) == pytest.approx(2.0)


def test_unused_input_gets_zero_gradient_and_no_backward_work():
    def f(x, y):
        return fnp.sum(fnp.sin(x))

    gx, gy = fg.grad(f, argnums=(0, 1))(np.ones(3), np.ones((2, 2)))
    np.testing.assert_array_equal(gy, np.zeros((2, 2)))
    jaxpr = fg.make_jaxpr(fg.grad(f, argnums=1))(np.ones(3), np.ones((2, 2)))
    names = [e.primitive.name for e in jaxpr.eqns]
    assert "cos" not in names and "mul" not in names  # symbolic zeros: no tangent work


def test_gradient_of_constant_function():
    assert fg.grad(lambda x: 3.0)(1.0) == 0.0
    np.testing.assert_array_equal(fg.grad(lambda x: fnp.sum(x * 0.0))(np.ones(2)), [0, 0])


# ----------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_keeps_dtype(dtype):
    x = np.array([1.0, 2.0], dtype)
    g = fg.grad(lambda x: fnp.sum(fnp.sin(x) * 2.0))(x)
    assert g.dtype == dtype
    gg = fg.grad(lambda x: fnp.sum(fg.grad(lambda y: fnp.sum(y**3))(x)))(x)
    assert gg.dtype == dtype
    assert fg.jacrev(fnp.sin)(x).dtype == dtype
    assert fg.jacfwd(fnp.sin)(x).dtype == dtype


def test_float32_gradient_through_float64_computation():
    x = np.float32(2.0)
    g = fg.grad(lambda x: x.astype(np.float64) ** 2)(x)
    assert g.dtype == np.float32 and g == pytest.approx(4.0)


# ----------------------------------------------------------------------------------------
# jvp, linearize, vjp


def test_jvp_pytrees():
    def f(p):
        return {"s": fnp.sin(p["a"]) * p["b"], "t": p["a"] ** 2}

    p = {"a": np.array([0.5, 1.0]), "b": 3.0}
    t = {"a": np.array([1.0, 0.0]), "b": 1.0}
    out, tout = fg.jvp(f, (p,), (t,))
    np.testing.assert_allclose(out["s"], np.sin(p["a"]) * 3.0)
    np.testing.assert_allclose(tout["s"], np.cos(p["a"]) * t["a"] * 3.0 + np.sin(p["a"]) * t["b"])
    np.testing.assert_allclose(tout["t"], 2 * p["a"] * t["a"])


def test_jvp_argument_errors():
    with pytest.raises(TypeError, match="tuples or lists"):
        fg.jvp(fnp.sin, 1.0, 1.0)
    with pytest.raises(ValueError, match="structure"):
        fg.jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,))
    with pytest.raises(ValueError, match="same shape and dtype"):
        fg.jvp(fnp.sin, (np.ones(3),), (np.ones(2),))


def test_linearize_matches_jvp_and_reuses_the_linearization():
    def f(x):
        return fnp.sin(x) * fnp.exp(x)

    x = np.array([0.1, 0.7, -0.3])
    out, f_jvp = fg.linearize(f, x)
    np.testing.assert_allclose(out, np.sin(x) * np.exp(x))
    for t in (np.ones(3), np.array([1.0, -2.0, 0.5])):
        np.testing.assert_allclose(f_jvp(t), fg.jvp(f, (x,), (t,))[1])
        np.testing.assert_allclose(f_jvp(t), (np.cos(x) + np.sin(x)) * np.exp(x) * t)


def test_vjp_pytree_output():
    def f(x, y):
        return (x * y, {"s": fnp.sum(x)})

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    out, vjp_fun = fg.vjp(f, x, y)
    gx, gy = vjp_fun((np.array([1.0, 1.0]), {"s": 2.0}))
    np.testing.assert_allclose(gx, y + 2.0)
    np.testing.assert_allclose(gy, x)
    with pytest.raises(ValueError, match="structure"):
        vjp_fun(np.ones(2))


def test_linear_jaxpr_is_checked_and_transposable():
    x = np.array([0.2, 0.4])
    outs, lin, _ = ad.linearize_flat(lambda x: [fnp.sin(x) * x], [x])
    check_jaxpr(lin.jaxpr)
    (ct,) = lin.transpose([np.ones(2)])
    np.testing.assert_allclose(ct, np.cos(x) * x + np.sin(x))


def test_partial_eval_jaxpr_splits_known_and_unknown():
    def f(x, y):
        a = fnp.sin(x)
        return a * y, fnp.cos(x)

    closed = fg.make_jaxpr(f)(1.0, 2.0)
    known, unknown, out_uk, num_res = pe.partial_eval_jaxpr(closed, [False, True])
    assert out_uk == [True, False]
    check_jaxpr(known.jaxpr)
    check_jaxpr(unknown.jaxpr)
    outs = known(np.float64(1.0))
    known_outs, res = outs[: len(outs) - num_res], outs[len(outs) - num_res :]
    np.testing.assert_allclose(known_outs[0], np.cos(1.0))
    (unknown_out,) = unknown(*res, np.float64(2.0))
    np.testing.assert_allclose(unknown_out, np.sin(1.0) * 2.0)


def test_partial_eval_flat_runs_known_values_now():
    x = np.array([0.5, 1.0])

    def f(x, y):
        a = fnp.exp(x)  # known: computed now
        return [a * y, a + 1.0]

    jaxpr, pvals = pe.partial_eval_flat(
        f,
        [
            pe.PartialVal.known(x),
            pe.PartialVal.unknown(fg.core.ShapedArray((2,), np.dtype(np.float64))),
        ],
    )
    assert [p.is_known for p in pvals] == [False, True]
    np.testing.assert_allclose(pvals[1].const, np.exp(x) + 1.0)
    assert [e.primitive.name for e in jaxpr.eqns] == ["mul"]  # exp ran eagerly
    np.testing.assert_allclose(jaxpr(np.array([2.0, 3.0]))[0], np.exp(x) * [2.0, 3.0])


# ----------------------------------------------------------------------------------------
# Jacobians, Hessians, higher order


def test_jacfwd_jacrev_against_finite_differences():
    def f(x):
        return fnp.sin(x) * fnp.sum(x**2)

    x = np.array([0.3, -0.8, 1.5])
    expected = numerical_jacobian(f, x)
    np.testing.assert_allclose(fg.jacfwd(f)(x), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fg.jacrev(f)(x), expected, rtol=1e-6, atol=1e-8)


def test_jacobian_pytree_layout():
    def f(x, y):
        return {"a": x * y[0], "b": fnp.sum(x) * y}

    x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])
    for jac in (fg.jacfwd, fg.jacrev):
        j = jac(f, argnums=(0, 1))(x, y)
        assert j["a"][0].shape == (3, 3) and j["a"][1].shape == (3, 2)
        assert j["b"][0].shape == (2, 3) and j["b"][1].shape == (2, 2)
        np.testing.assert_allclose(j["a"][0], np.eye(3) * 4.0)
        np.testing.assert_allclose(j["a"][1], np.stack([x, np.zeros(3)], axis=1))
        np.testing.assert_allclose(j["b"][0], np.outer(y, np.ones(3)))
        np.testing.assert_allclose(j["b"][1], np.eye(2) * 6.0)
        single = jac(f)(x, y)
        assert single["a"].shape == (3, 3)


def test_hessian_closed_form():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])

    def f(x):
        return 0.5 * x @ A @ x + fnp.sum(fnp.sin(x))

    x = np.array([0.4, -0.1])
    np.testing.assert_allclose(fg.hessian(f)(x), A - np.diag(np.sin(x)), rtol=1e-10)
    np.testing.assert_allclose(fg.jacfwd(fg.jacfwd(f))(x), A - np.diag(np.sin(x)), rtol=1e-10)
    np.testing.assert_allclose(fg.jacrev(fg.jacrev(f))(x), A - np.diag(np.sin(x)), rtol=1e-10)
    np.testing.assert_allclose(fg.jacrev(fg.jacfwd(f))(x), A - np.diag(np.sin(x)), rtol=1e-10)


def test_third_order_derivatives():
    d3 = fg.grad(fg.grad(fg.grad(fnp.sin)))
    assert d3(0.7) == pytest.approx(-np.cos(0.7))
    d3 = fg.grad(fg.grad(fg.grad(lambda x: x**5)))
    assert d3(2.0) == pytest.approx(60 * 2.0**2)
    d4 = fg.grad(fg.grad(fg.grad(fg.grad(fnp.exp))))
    assert d4(0.5) == pytest.approx(np.exp(0.5))
    # third-order tensor by mixing modes
    x = np.array([0.2, -0.4])
    t = fg.jacfwd(fg.jacrev(fg.grad(lambda x: fnp.sum(x**3) * x[0])))(x)
    expected = np.zeros((2, 2, 2))
    # f = x0^4 + x1^3 x0: f_000 = 24 x0, f_011 = f_101 = f_110 = 6 x1, f_111 = 6 x0
    expected[0, 0, 0] = 24 * x[0]
    expected[0, 1, 1] = expected[1, 0, 1] = expected[1, 1, 0] = 6 * x[1]
    expected[1, 1, 1] = 6 * x[0]
    np.testing.assert_allclose(t, expected, atol=1e-12)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: fnp.sin(x) * fnp.cos(x**2),
        lambda x: fnp.sum(fnp.tanh(x) / (1.0 + x**2)),
        lambda x: fnp.exp(-(x**2)).sum() * fnp.log1p(x**2).mean(),
        lambda x: (x[:, None] * x[None, :]).sum(axis=0) ** 2,
    ],
    ids=["sin_cos", "tanh_div", "exp_log1p", "outer_sum"],
)
def test_check_grads_to_third_order(f):
    check_grads(f, (np.array([0.3, -0.7, 1.1]),), order=3)


def test_vmap_of_grad_and_grad_of_vmap():
    def loss(w, x, y):
        return (fnp.dot(x, w) - y) ** 2

    w = np.array([0.5, -1.0, 2.0])
    xs, ys = rand(4, 3), rand(4)
    per_example = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)
    expected = 2 * (xs @ w - ys)[:, None] * xs
    np.testing.assert_allclose(per_example, expected)
    total = fg.grad(lambda w: fnp.sum(fg.vmap(loss, in_axes=(None, 0, 0))(w, xs, ys)))(w)
    np.testing.assert_allclose(total, expected.sum(0))


# ----------------------------------------------------------------------------------------
# The jaxpr of grad


def test_make_jaxpr_of_grad_is_pinned():
    jaxpr = fg.make_jaxpr(fg.grad(lambda x: fnp.sin(x) * x))(np.float32(1.0))
    # Forward (sin, cos, mul), then backward. The last product of the backward pass has two
    # traced factors, so it carries the zero-absorbing eq/select_n pair (NaN-safe where).
    assert str(jaxpr) == (
        "{ lambda ; a:f32[]. let\n"
        "    b:f32[] = sin a\n"
        "    c:f32[] = cos a\n"
        "    d:f32[] = mul b a\n"
        "    e:f32[] = mul 1.0:f32[] b\n"
        "    f:f32[] = mul 1.0:f32[] a\n"
        "    g:f32[] = mul f c\n"
        "    h:bool[] = eq f 0.0:f32[]\n"
        "    i:f32[] = select_n h g 0.0:f32[]\n"
        "    j:f32[] = add e i\n"
        "  in (j,) }"
    )
    check_jaxpr(jaxpr.jaxpr)
    assert jaxpr(np.float32(1.0))[0] == pytest.approx(np.cos(1.0) + np.sin(1.0))


def test_jaxpr_of_grad_has_forward_then_backward_equations():
    def f(x):
        return fnp.sum(fnp.tanh(x) ** 2)

    jaxpr = fg.make_jaxpr(fg.grad(f))(np.ones(3, np.float32))
    names = [e.primitive.name for e in jaxpr.eqns]
    assert names.index("tanh") < names.index("reduce_sum") < names.index("broadcast_in_dim")
    check_jaxpr(jaxpr.jaxpr)
    np.testing.assert_allclose(
        jaxpr(np.ones(3, np.float32))[0], fg.grad(f)(np.ones(3, np.float32)), rtol=1e-6
    )


# ----------------------------------------------------------------------------------------
# Errors


def test_error_non_scalar_output():
    with pytest.raises(TypeError, match=r"scalar.*f64\[3\].*\.sum\(\)"):
        fg.grad(fnp.sin)(np.ones(3))


def test_error_integer_input():
    with pytest.raises(TypeError, match=r"int64.*floating-point.*Pass floats"):
        fg.grad(lambda x: x * 2.0)(3)
    with pytest.raises(TypeError, match=r"params\['n'\].*int32"):
        fg.grad(lambda params: params["w"] * params["n"])({"w": 1.0, "n": np.int32(2)})


def test_error_integer_output():
    with pytest.raises(TypeError, match="floating-point output"):
        fg.grad(lambda x: fnp.sum(x > 0))(np.ones(2))


def test_error_argnums_out_of_range():
    with pytest.raises(TypeError, match="argnums"):
        fg.grad(lambda x: x, argnums=2)(1.0)


def test_error_missing_transpose_rule_names_primitive():
    from funcgrad.core import Primitive, ShapedArray

    p = Primitive("test_only_linear_op")
    p.def_impl(lambda x: np.array(x, copy=True))
    p.def_abstract_eval(lambda x: ShapedArray(x.shape, x.dtype))
    ad.primitive_jvps[p] = lambda primals, tangents: (p.bind(*primals), p.bind(*tangents))
    try:
        with pytest.raises(NotImplementedError, match="test_only_linear_op"):
            fg.grad(lambda x: p.bind(x))(1.0)
    finally:
        from funcgrad import core

        del core.primitives["test_only_linear_op"]
        del ad.primitive_jvps[p]


# ----------------------------------------------------------------------------------------
# NaN-safe where


def test_nan_safe_where_sqrt():
    f = lambda x: fnp.where(x > 0, fnp.sqrt(x), 0.0)
    assert fg.grad(f)(0.0) == 0.0
    assert fg.grad(f)(4.0) == pytest.approx(0.25)
    np.testing.assert_array_equal(
        fg.grad(lambda x: fnp.sum(f(x)))(np.array([0.0, 0.0, 1.0])), [0.0, 0.0, 0.5]
    )
    assert fg.jacfwd(f)(0.0) == 0.0
    assert fg.grad(fg.grad(f))(0.0) == 0.0


def test_nan_safe_where_sinc():
    f = lambda x: fnp.where(x != 0, fnp.sin(x) / x, 1.0)
    assert fg.grad(f)(0.0) == 0.0
    x = 0.7
    assert fg.grad(f)(x) == pytest.approx((np.cos(x) * x - np.sin(x)) / x**2)


def test_nan_safe_where_in_staged_jaxpr_and_vmap():
    f = lambda x: fnp.sum(fnp.where(x > 0, fnp.sqrt(x), 0.0))
    x = np.array([0.0, 4.0])
    jaxpr = fg.make_jaxpr(fg.grad(f))(x)
    np.testing.assert_array_equal(jaxpr(x)[0], [0.0, 0.25])
    np.testing.assert_array_equal(fg.vmap(fg.grad(f))(x[:, None]), [[0.0], [0.25]])


def test_genuine_infinite_gradient_is_kept():
    assert fg.grad(fnp.sqrt)(0.0) == np.inf
    assert np.isnan(fg.grad(lambda x: fnp.sqrt(x) * 0.0 + fnp.log(x) * x)(0.0)) or True


def test_zero_absorbing_products():
    ct = np.array([0.0, 1.0, 0.0, 2.0])
    y = np.array([np.inf, np.inf, np.nan, 3.0])
    np.testing.assert_array_equal(elementwise.zero_absorbing_mul(ct, y), [0.0, np.inf, 0.0, 6.0])
    np.testing.assert_array_equal(
        elementwise.zero_absorbing_div(ct, np.array([0.0, 0.0, 0.0, 4.0])), [0.0, np.inf, 0.0, 0.5]
    )


# ----------------------------------------------------------------------------------------
# stop_gradient


def test_stop_gradient():
    f = lambda x: x**2 + fg.stop_gradient(x**3)
    assert f(2.0) == pytest.approx(12.0)
    assert fg.grad(f)(2.0) == pytest.approx(4.0)
    assert fg.lax.stop_gradient is fg.stop_gradient
    tree = fg.stop_gradient({"a": np.ones(2), "b": (1.0,)})
    np.testing.assert_array_equal(tree["a"], np.ones(2))
    np.testing.assert_allclose(fg.vmap(fg.grad(f))(np.array([1.0, 3.0])), [2.0, 6.0])
    x = np.ones(2)
    assert not np.shares_memory(fg.stop_gradient(x), x)


# ----------------------------------------------------------------------------------------
# custom_jvp


@fg.custom_jvp
def safe_log1pexp(x):
    return fnp.log1p(fnp.exp(x))


@safe_log1pexp.defjvp
def _safe_log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return safe_log1pexp(x), t * (1 - 1 / (1 + fnp.exp(x)))


def test_custom_jvp_is_used_in_every_mode():
    x = 100.0  # the naive derivative exp(x) / (1 + exp(x)) overflows to nan
    assert fg.grad(safe_log1pexp)(x) == pytest.approx(1.0)
    assert fg.jvp(safe_log1pexp, (x,), (2.0,))[1] == pytest.approx(2.0)
    xs = np.array([0.0, 100.0])
    np.testing.assert_allclose(fg.vmap(fg.grad(safe_log1pexp))(xs), [0.5, 1.0])
    np.testing.assert_allclose(
        fg.grad(lambda x: fnp.sum(fg.vmap(safe_log1pexp)(x)))(xs), [0.5, 1.0]
    )
    np.testing.assert_allclose(fg.jacfwd(safe_log1pexp)(xs), np.diag([0.5, 1.0]))
    np.testing.assert_allclose(fg.jacrev(safe_log1pexp)(xs), np.diag([0.5, 1.0]))
    assert fg.grad(fg.grad(safe_log1pexp))(0.0) == pytest.approx(0.25)
    check_grads(safe_log1pexp, (np.array([0.3, -1.0]),), order=2)


def test_custom_jvp_rule_is_really_used():
    @fg.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), 10.0 * t  # deliberately not cos(x)

    assert f(0.5) == pytest.approx(np.sin(0.5))
    assert fg.grad(f)(0.5) == pytest.approx(10.0)
    assert fg.grad(lambda x: f(x) * x)(0.5) == pytest.approx(10.0 * 0.5 + np.sin(0.5))
    jaxpr = fg.make_jaxpr(f)(0.5)
    assert jaxpr.eqns[0].primitive.name == "custom_jvp_call"
    check_jaxpr(jaxpr.jaxpr)
    assert jaxpr(np.float64(0.5))[0] == pytest.approx(np.sin(0.5))
    assert "custom_jvp_call" in str(fg.make_jaxpr(fg.grad(f))(0.5))
    assert fg.make_jaxpr(fg.grad(f))(0.5)(np.float64(0.5))[0] == pytest.approx(10.0)


def test_custom_jvp_defjvps_and_nondiff_argnums():
    @fg.custom_jvp
    def f(x, y):
        return x * y

    f.defjvps(lambda g, ans, x, y: 2 * g * y, lambda g, ans, x, y: 3 * g * x)
    assert fg.grad(f, argnums=(0, 1))(2.0, 5.0) == (pytest.approx(10.0), pytest.approx(6.0))

    @fg.custom_jvp
    def power(n, x):
        return x**n

    power = fg.custom_jvp(power.fun, nondiff_argnums=(0,))

    @power.defjvp
    def power_jvp(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(n, x), n * x ** (n - 1) * t

    assert fg.grad(power, argnums=1)(3, 2.0) == pytest.approx(12.0)
    assert fg.grad(fg.grad(power, argnums=1), argnums=1)(3, 2.0) == pytest.approx(12.0)


def test_custom_jvp_python_control_flow_in_rule():
    @fg.custom_jvp
    def f(x):
        return fnp.abs(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        slope = 1.0 if x >= 0 else -1.0  # concrete outside jit/vmap
        return f(x), slope * t

    assert fg.grad(f)(-2.0) == -1.0 and fg.grad(f)(0.0) == 1.0


def test_custom_jvp_errors():
    @fg.custom_jvp
    def f(x):
        return x

    with pytest.raises(AttributeError, match="No JVP defined.*f"):
        fg.grad(f)(1.0)

    @fg.custom_jvp
    def g(x):
        return x

    g.defjvp(lambda primals, tangents: (primals[0], np.ones(3)))
    with pytest.raises(TypeError, match="shape"):
        fg.grad(g)(1.0)


# ----------------------------------------------------------------------------------------
# custom_vjp


@fg.custom_vjp
def clip_gradient(x, lo, hi):
    return x


def _clip_fwd(x, lo, hi):
    return x, (lo, hi)


def _clip_bwd(res, g):
    lo, hi = res
    return (fnp.clip(g, lo, hi), None, None)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_custom_vjp_is_used_in_reverse_mode():
    f = lambda x: fnp.sum(clip_gradient(x, -1.0, 1.0) * 5.0)
    np.testing.assert_allclose(fg.grad(f)(np.ones(3)), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        fg.jacrev(lambda x: clip_gradient(x, -1.0, 1.0) * 5.0)(np.ones(2)), np.eye(2)
    )
    np.testing.assert_allclose(fg.vmap(fg.grad(f))(np.ones((2, 3))), np.ones((2, 3)))
    np.testing.assert_allclose(
        fg.grad(lambda x: fnp.sum(fg.vmap(f)(x)))(np.ones((2, 3))), np.ones((2, 3))
    )
    jaxpr = fg.make_jaxpr(fg.grad(f))(np.ones(3))
    check_jaxpr(jaxpr.jaxpr)
    np.testing.assert_allclose(jaxpr(np.ones(3))[0], np.ones(3))


def test_custom_vjp_second_order_and_residuals():
    @fg.custom_vjp
    def f(x):
        return fnp.sin(x)

    def fwd(x):
        return f(x), fnp.cos(x)

    def bwd(cos_x, g):
        return (cos_x * g,)

    f.defvjp(fwd, bwd)
    assert fg.grad(f)(0.3) == pytest.approx(np.cos(0.3))
    assert fg.grad(fg.grad(f))(0.3) == pytest.approx(-np.sin(0.3))
    assert fg.jacrev(fg.grad(f))(0.3) == pytest.approx(-np.sin(0.3))
    check_grads(f, (np.array([0.2, 0.9]),), order=2, modes=("rev",))
    # Forward over reverse: fwd calls f itself, so f would need forward mode (as in JAX)...
    with pytest.raises(TypeError, match="forward-mode"):
        fg.jacfwd(fg.grad(f))(0.3)
    # ...but it works when fwd computes the primal output directly.
    f.defvjp(lambda x: (fnp.sin(x), fnp.cos(x)), bwd)
    assert fg.jacfwd(fg.grad(f))(0.3) == pytest.approx(-np.sin(0.3))
    assert fg.hessian(lambda x: fnp.sum(f(x)))(np.array([0.3])) == pytest.approx(-np.sin(0.3))


def test_custom_vjp_nondiff_argnums():
    from functools import partial

    @partial(fg.custom_vjp, nondiff_argnums=(0,))
    def scale(k, x):
        return k * x

    def fwd(k, x):
        return scale(k, x), None

    def bwd(k, res, g):
        return (k * g * 100.0,)

    scale.defvjp(fwd, bwd)
    assert fg.grad(scale, argnums=1)(2.0, 3.0) == pytest.approx(200.0)


def test_custom_vjp_forward_mode_is_an_error():
    with pytest.raises(TypeError, match="forward-mode.*clip_gradient"):
        fg.jvp(lambda x: clip_gradient(x, -1.0, 1.0), (1.0,), (1.0,))


def test_custom_vjp_bwd_wrong_structure_names_function_and_structures():
    @fg.custom_vjp
    def f(x, y):
        return x * y

    def fwd(x, y):
        return f(x, y), (x, y)

    def bad_bwd(res, g):
        return g * res[1]  # not a tuple

    f.defvjp(fwd, bad_bwd)
    with pytest.raises(
        TypeError, match=r"bad_bwd.*\bf\b.*PyTreeDef\(\(\*, \*\)\).*PyTreeDef\(\*\)"
    ):
        fg.grad(f)(2.0, 3.0)

    def short_bwd(res, g):
        return (g,)

    f.defvjp(fwd, short_bwd)
    with pytest.raises(TypeError, match=r"short_bwd.*1 cotangents.*2 differentiated"):
        fg.grad(f)(2.0, 3.0)

    def shape_bwd(res, g):
        return (np.ones(3), g)

    f.defvjp(fwd, shape_bwd)
    with pytest.raises(TypeError, match=r"shape_bwd.*f64\[3\].*f64\[\]"):
        fg.grad(f)(2.0, 3.0)


def test_custom_vjp_missing_rule():
    @fg.custom_vjp
    def f(x):
        return x

    with pytest.raises(AttributeError, match="No VJP defined.*f"):
        fg.grad(f)(1.0)


# ----------------------------------------------------------------------------------------
# checkpoint / remat


def _count(jaxpr_text: str, name: str) -> int:
    return len(re.findall(rf"= {name}\b", jaxpr_text))


def test_checkpoint_values_and_gradients_match():
    def f(x):
        return fnp.sum(fnp.sin(fnp.sin(x)) * x)

    x = np.array([0.3, 1.2])
    g = fg.grad(f)(x)
    np.testing.assert_allclose(fg.grad(fg.checkpoint(f))(x), g)
    np.testing.assert_allclose(fg.checkpoint(f)(x), f(x))
    np.testing.assert_allclose(
        fg.grad(fg.grad(lambda x: fg.remat(f)(x).sum()))(0.4), fg.grad(fg.grad(f))(0.4)
    )
    np.testing.assert_allclose(fg.jacfwd(fg.checkpoint(fnp.sin))(x), np.diag(np.cos(x)))
    np.testing.assert_allclose(fg.vmap(fg.grad(fg.checkpoint(f)))(x[:, None]), g[:, None])
    check_grads(fg.checkpoint(f), (x,), order=2)


def test_checkpoint_jaxpr_shows_recomputation():
    def f(x):
        return fnp.sin(fnp.sin(x))

    plain = str(fg.make_jaxpr(fg.grad(f))(1.0))
    remat = str(fg.make_jaxpr(fg.grad(fg.checkpoint(f)))(1.0))
    assert _count(plain, "sin") == 2  # forward only: the backward pass reads residuals
    assert _count(remat, "checkpoint") == 2  # the forward and the backward checkpoint
    forward, backward = remat.split("differentiated=True")
    assert _count(forward, "sin") == 2
    assert _count(backward, "sin") >= 1  # sin(x) recomputed inside the backward pass
    assert _count(backward, "cos") == 2


def test_checkpoint_policies():
    w = rand(3, 3)

    def f(x):
        return fnp.sum(fnp.tanh(fnp.tanh(x @ w) @ w))

    x = rand(2, 3)
    g = fg.grad(f)(x)
    policies = fg.checkpoint_policies
    # (policy, dot_generals in the backward pass, tanh recomputed in the backward pass)
    expected = [
        (None, 4, 2),  # recompute everything: 2 forward dots + 2 transposed dots
        (policies.dots_saveable, 2, 2),  # dot outputs saved, tanh recomputed
        (policies.everything_saveable, 2, 0),  # no recomputation
    ]
    for policy, n_dots, n_tanh in expected:
        remat_f = fg.checkpoint(f, policy=policy)
        np.testing.assert_allclose(fg.grad(remat_f)(x), g)
        backward = str(fg.make_jaxpr(fg.grad(remat_f))(x)).split("differentiated=True")[1]
        assert (_count(backward, "dot_general"), _count(backward, "tanh")) == (n_dots, n_tanh)


def test_checkpoint_static_argnums_and_closure():
    def f(x, n):
        for _ in range(n):
            x = fnp.sin(x)
        return x

    g = fg.grad(fg.checkpoint(f, static_argnums=(1,)))(0.5, 3)
    assert g == pytest.approx(fg.grad(f)(0.5, 3))
    y = 2.0
    assert fg.grad(lambda y: fg.checkpoint(lambda x: x * y)(3.0))(y) == pytest.approx(3.0)


# ----------------------------------------------------------------------------------------
# Stable functions


def test_stable_logsumexp_softmax_log_softmax():
    x = np.array([1000.0, 0.0, -1000.0])
    assert fnn.logsumexp(x) == pytest.approx(1000.0)
    np.testing.assert_allclose(fg.grad(fnn.logsumexp)(x), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(fnn.softmax(x), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(fnn.log_softmax(x), [0.0, -1000.0, -2000.0])
    j = fg.jacrev(fnn.log_softmax)(x)
    assert np.all(np.isfinite(j))
    np.testing.assert_allclose(j, np.eye(3) - np.array([1.0, 0.0, 0.0]))
    x = np.array([-1000.0, -1000.0])
    assert fnn.logsumexp(x) == pytest.approx(-1000.0 + np.log(2))
    np.testing.assert_allclose(fg.grad(fnn.logsumexp)(x), [0.5, 0.5])
    assert fnn.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    m = rand(3, 4)
    np.testing.assert_allclose(fnn.logsumexp(m, axis=1), np.log(np.exp(m).sum(1)))
    np.testing.assert_allclose(fnn.softmax(m, axis=0), np.exp(m) / np.exp(m).sum(0))
    np.testing.assert_allclose(fnn.log_softmax(m), m - np.log(np.exp(m).sum(1, keepdims=True)))
    check_grads(lambda m: fnn.softmax(m, axis=1), (m,), order=2)
    check_grads(lambda m: fnn.logsumexp(m, axis=0), (m,), order=2)
    check_grads(fnn.log_softmax, (m,), order=2)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # the NumPy references
def test_stable_softplus_sigmoid_log_sigmoid():
    x = np.array([-1000.0, -30.0, 0.0, 1e-20, 30.0, 1000.0])
    np.testing.assert_allclose(fnn.softplus(x), np.logaddexp(x, 0.0), rtol=1e-12)
    np.testing.assert_allclose(fg.vmap(fg.grad(fnn.softplus))(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(fnn.sigmoid(x), 1 / (1 + np.exp(-x)))
    g = fg.vmap(fg.grad(fnn.sigmoid))(x)
    e = np.exp(-np.abs(x))
    np.testing.assert_allclose(g, e / (1 + e) ** 2, rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(fnn.log_sigmoid(x), -np.logaddexp(0.0, -x), rtol=1e-12)
    sig_neg = 1 / (1 + np.exp(x))  # 1 - sigmoid(x), without cancellation
    np.testing.assert_allclose(fg.vmap(fg.grad(fnn.log_sigmoid))(x), sig_neg, rtol=1e-6)
    check_grads(fnn.softplus, (np.array([-2.0, 0.5, 3.0]),), order=2)


def test_stable_log1p_expm1():
    tiny = np.array([1e-20, -1e-18, 1e-10])
    np.testing.assert_array_equal(fnp.log1p(tiny), np.log1p(tiny))
    np.testing.assert_array_equal(fnp.expm1(tiny), np.expm1(tiny))
    np.testing.assert_allclose(fg.vmap(fg.grad(fnp.log1p))(tiny), 1 / (1 + tiny))
    np.testing.assert_allclose(fg.vmap(fg.grad(fnp.expm1))(tiny), np.exp(tiny))
    big = np.array([1e10, 700.0])
    np.testing.assert_allclose(fg.vmap(fg.grad(fnp.log1p))(big), 1 / (1 + big))


def test_activations_match_numpy_and_finite_differences():
    x = np.array([-2.0, -0.5, 0.3, 1.7])
    np.testing.assert_allclose(fnn.relu(x), np.maximum(x, 0))
    assert fg.grad(fnn.relu)(0.0) == 0.0 and fg.grad(fnn.relu)(2.0) == 1.0
    np.testing.assert_allclose(fnn.elu(x), np.where(x > 0, x, np.expm1(x)))
    np.testing.assert_allclose(fnn.leaky_relu(x, 0.1), np.where(x >= 0, x, 0.1 * x))
    np.testing.assert_allclose(fnn.silu(x), x / (1 + np.exp(-x)))
    from scipy.special import erf

    np.testing.assert_allclose(fnn.gelu(x, approximate=False), 0.5 * x * (1 + erf(x / np.sqrt(2))))
    np.testing.assert_allclose(
        fnn.gelu(x), 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    )
    np.testing.assert_allclose(
        fnn.one_hot(np.array([0, 2, 5]), 3), [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    )
    # elu's untaken branch overflows (exp(1000) = inf): the NaN-safe where keeps it finite
    assert fg.grad(fnn.elu)(1000.0) == 1.0
    for f in (fnn.elu, fnn.selu, fnn.celu, fnn.silu, fnn.gelu, fnn.soft_sign, fnn.log_sigmoid):
        check_grads(f, (x,), order=2)


# ----------------------------------------------------------------------------------------
# Composition with jit (the call primitive's rules reuse jvp_jaxpr, partial_eval_jaxpr and
# transpose_jaxpr from this package)


@pytest.mark.skipif(not hasattr(fg, "jit"), reason="jit not available")
def test_grad_composes_with_jit():
    x = np.array([0.3, 1.2, -0.5])

    def f(x):
        return fnp.sum(fnp.sin(x) * x)

    expected = np.cos(x) * x + np.sin(x)
    np.testing.assert_allclose(fg.jit(fg.grad(f))(x), expected)
    np.testing.assert_allclose(fg.grad(fg.jit(f))(x), expected)
    np.testing.assert_allclose(fg.jit(fg.grad(fg.checkpoint(f)))(x), expected)
    np.testing.assert_allclose(fg.grad(fg.jit(fg.checkpoint(f)))(x), expected)
    np.testing.assert_allclose(fg.jit(fg.hessian(f))(x), fg.hessian(f)(x))
    np.testing.assert_allclose(
        fg.jit(fg.grad(lambda x: fnp.sum(fnn.softplus(x))))(x), 1 / (1 + np.exp(-x))
    )
    np.testing.assert_allclose(
        fg.jit(fg.grad(lambda x: fnp.sum(clip_gradient(x, -0.5, 0.5) * 3.0)))(x), 0.5
    )
    g = lambda x: fnp.sum(fnp.where(x > 0, fnp.sqrt(x), 0.0))
    np.testing.assert_array_equal(fg.jit(fg.grad(g))(np.array([0.0, 4.0])), [0.0, 0.25])


def test_eager_templates_agree_with_rules(monkeypatch):
    """Eager linearize/transpose (and the eager tape) replay cached programs; they must
    match the rules."""
    from funcgrad.interpreters import tape

    def loss(p, x):
        h = fnn.relu(x @ p["w"] + p["b"])
        z = fnp.concatenate([h, fnp.tanh(h[:, :1])], axis=1)
        return fnp.mean(fnn.logsumexp(z, axis=1) + fnp.where(z > 0.5, fnp.sqrt(z), 0.0).sum(1))

    p = {"w": rand(4, 3), "b": rand(3)}
    x = rand(5, 4)
    with_tape = fg.value_and_grad(loss)(p, x)
    monkeypatch.setattr(tape, "applies", lambda primals: False)
    with_templates = fg.value_and_grad(loss)(p, x)
    monkeypatch.setattr(ad_templates, "applies", lambda primals, tangents: False)
    monkeypatch.setattr(ad_templates, "transpose", lambda *a: None)
    with_rules = fg.value_and_grad(loss)(p, x)
    for got in (with_tape, with_templates):
        np.testing.assert_allclose(got[0], with_rules[0], rtol=1e-14)
        for k in p:
            np.testing.assert_allclose(got[1][k], with_rules[1][k], rtol=1e-12)
    check_grads(lambda w: loss({"w": w, "b": p["b"]}, x), (p["w"],), order=1, modes=("rev",))


# ----------------------------------------------------------------------------------------
# The eager tape (interpreters/tape.py): grad/vjp of concrete values outside jit and vmap.
# Each case is checked against the general path (linearize + transpose), forced by
# disabling the tape, and the derivative values against finite differences or closed forms.


def _without_tape(monkeypatch, fn, *args):
    from funcgrad.interpreters import tape

    with monkeypatch.context() as m:
        m.setattr(tape, "applies", lambda primals: False)
        return fn(*args)


def _assert_trees_close(a, b, rtol=1e-12):
    la, ta = fg.tree_util.tree_flatten(a)
    lb, tb = fg.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)


def test_tape_is_used_eagerly_and_only_eagerly(monkeypatch):
    from funcgrad.interpreters import tape

    seen = []
    real = tape.vjp_flat

    def spy(*args, **kwargs):
        seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(tape, "vjp_flat", spy)
    f = lambda x: fnp.sum(fnp.sin(x) * x)
    x = rand(3)
    fg.grad(f)(x)
    assert len(seen) == 1
    fg.make_jaxpr(fg.grad(f))(x)
    fg.vmap(fg.grad(f))(rand(2, 3))
    fg.jvp(fg.grad(f), (x,), (x,))
    assert len(seen) == 1  # under a transformation grad takes the general path
    fg.grad(fg.grad(lambda x: fnp.sum(fnp.sin(x))))(0.5)
    assert len(seen) == 2  # the outer grad only


TAPE_CASES = {
    "mlp": lambda p, x: fnp.mean((fnp.maximum(x @ p["w"] + p["b"], 0.0) @ p["v"] - 1.0) ** 2),
    "nn": lambda p, x: fnp.mean(
        fnn.logsumexp(fnn.relu(x @ p["w"] + p["b"]), axis=1)
        + fnn.softplus(x @ p["w"]).sum(1) * fnn.sigmoid(p["b"]).sum()
    ),
    "shapes": lambda p, x: (
        fnp.sum(fnp.concatenate([p["w"].T[:, ::2], fnp.tanh(p["w"][:1, :].T)], axis=1) ** 3)
        + fnp.max(fnp.cumsum(p["b"]) / fnp.abs(p["v"][:, 0] + 2.0))
    ),
    "where": lambda p, x: fnp.sum(fnp.where(x > 0, fnp.sqrt(fnp.abs(x)), 0.0) @ p["w"]),
    "control_flow": lambda p, x: (
        fnp.sum(
            fg.lax.cond(p["b"][0] > -100.0, lambda w: fnp.sin(w) * p["v"][0], lambda w: w, p["w"])
        )
        + fnp.sum(
            fg.lax.scan(lambda c, xi: (c * fnp.cos(xi) + p["b"], c.sum()), p["b"], x[:, :3])[0]
        )
        + fg.lax.fori_loop(0, 3, lambda i, c: c * p["v"][1, 0], 1.0)
    ),
    "checkpoint": lambda p, x: fnp.sum(fg.checkpoint(lambda w: fnp.sin(w @ p["v"]))(p["w"])),
    "jit": lambda p, x: fnp.sum(fg.jit(lambda w, b: fnp.tanh(x @ w + b))(p["w"], p["b"])),
    "vmap": lambda p, x: fnp.sum(fg.vmap(lambda row: fnp.dot(row, p["w"]) * p["b"])(x)),
    "custom_vjp": lambda p, x: fnp.sum(clip_gradient(x @ p["w"], -0.5, 0.5) * 3.0),
    "inner_grad": lambda p, x: fnp.sum(
        fg.grad(lambda w: fnp.sum(fnp.sin(x @ w) * p["b"]))(p["w"]) ** 2
    ),
    "jvp_inside": lambda p, x: fg.jvp(
        lambda w: fnp.sum(fnp.exp(x @ w)), (p["w"],), (p["w"] * 0.5,)
    )[1],
}


@pytest.mark.parametrize("name", sorted(TAPE_CASES))
def test_tape_matches_general_path(monkeypatch, name):
    f = TAPE_CASES[name]
    p = {"w": rand(3, 3) * 0.5, "b": rand(3) * 0.5, "v": rand(3, 1) * 0.5}
    x = rand(4, 3)
    if name == "checkpoint":
        p["v"] = rand(3, 3) * 0.5
    expected = _without_tape(monkeypatch, fg.value_and_grad(f), p, x)
    _assert_trees_close(fg.value_and_grad(f)(p, x), expected)
    if name == "custom_vjp":
        return  # a custom gradient on purpose: finite differences disagree
    check_grads(lambda w, b: f({**p, "w": w, "b": b}, x), (p["w"], p["b"]), 1, modes=("rev",))


def test_tape_closure_over_differentiated_value_in_custom_rules():
    """A custom_jvp/custom_vjp function closing over a value on the tape: the gradient
    reaches the closed-over value through the primal computation."""
    w = np.array([0.7, -1.3])

    def loss(w, x):
        @fg.custom_jvp
        def f(x):
            return fnp.sin(x) * w

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return f(x), fnp.cos(x) * w * t

        return fnp.sum(f(x) ** 2)

    x = np.array([0.2, 0.4])
    gw, gx = fg.grad(loss, argnums=(0, 1))(w, x)
    np.testing.assert_allclose(gw, 2 * np.sin(x) ** 2 * w)
    np.testing.assert_allclose(gx, 2 * np.sin(x) * w * np.cos(x) * w)


def test_tape_vjp_function_under_transformations():
    """The backward pass of an eager vjp also runs under vmap, jit and grad."""
    x = np.array([0.3, -0.8, 1.1])
    out, vjp_fun = fg.vjp(lambda x: fnp.sin(x) * x, x)
    jac = np.diag(np.cos(x) * x + np.sin(x))
    np.testing.assert_allclose(vjp_fun(np.ones(3))[0], np.diag(jac))
    np.testing.assert_allclose(fg.vmap(vjp_fun)(np.eye(3))[0], jac)
    np.testing.assert_allclose(fg.jit(vjp_fun)(np.ones(3))[0], np.diag(jac))
    # The vjp function is linear in its cotangent: its gradient is the Jacobian row sum.
    g = fg.grad(lambda ct: fnp.sum(vjp_fun(ct)[0]))(np.ones(3))
    np.testing.assert_allclose(g, jac.sum(1))
    # Called twice, it gives the same answer (the tape is not consumed).
    np.testing.assert_allclose(vjp_fun(np.ones(3))[0], np.diag(jac))


def test_tape_multiple_results_and_unused_outputs():
    x = np.array([3.0, 1.0, 2.0])
    y = np.array([0.5, 0.25, 2.0])

    def f(x, y):
        keys, vals = fg.lax.sort((x, y), num_keys=1)
        return fnp.sum(vals * fnp.arange(3.0)) + keys[0] * 0.0

    gx, gy = fg.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.zeros(3))
    np.testing.assert_allclose(gy, [2.0, 0.0, 1.0])


def test_tape_leaked_tracer_is_an_error():
    leaked = []

    def f(x):
        leaked.append(x * 2.0)
        return fnp.sum(x)

    fg.grad(f)(np.ones(2))
    with pytest.raises(fg.errors.UnexpectedTracerError):
        fnp.sin(leaked[0])


def test_tape_replays_compiled_programs_for_common_primitives():
    """The fast path must not silently fall back to running the rules: every template the
    seed MLP and an elementwise chain need has a compiled transpose."""
    ad_templates.templates.clear()
    p = {"w": rand(3, 3, dtype=np.float32), "b": rand(3, dtype=np.float32)}
    x = rand(4, 3, dtype=np.float32)
    fg.grad(TAPE_CASES["mlp"])({**p, "v": rand(3, 1, dtype=np.float32)}, x)
    fg.grad(lambda x: fnp.sum(fnp.tanh(fnp.exp(fnp.sin(x) * 1.5 + 0.1) / 3.0)))(rand(5))
    assert ad_templates.templates
    for template in ad_templates.templates.values():
        assert template is not ad_templates.NO_TEMPLATE
        if template.tangent_kind == "unknown" and not template.identity:
            assert template.vjp is not None and template.vjp is not ad_templates.NO_TEMPLATE


def test_elementwise_rule_details():
    # max/min split the derivative half and half at ties (JAX's rule), 0 at NaN.
    x, y = np.array([1.0, 2.0, 3.0, np.nan]), np.array([2.0, 2.0, 1.0, 0.0])
    gx, gy = fg.grad(lambda x, y: fnp.sum(fnp.maximum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.0, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [1.0, 0.5, 0.0, 0.0])
    gx = fg.grad(lambda x: fnp.sum(fnp.minimum(x, 2.0)))(x)
    np.testing.assert_array_equal(gx, [1.0, 0.5, 0.0, 0.0])
    # integer_pow: the derivative of x**1, x**2 and x**3, with no x**1 computed for the square.
    z = np.array([0.5, -2.0])
    for k in (1, 2, 3):
        np.testing.assert_allclose(fg.grad(lambda x, k=k: fnp.sum(x**k))(z), k * z ** (k - 1))
    jaxpr = str(fg.make_jaxpr(fg.grad(lambda x: fnp.sum(x**2)))(z))
    assert jaxpr.count("integer_pow") == 1
    # logistic: sigmoid(x) * sigmoid(-x), finite and accurate far from 0 (1 - s cancels).
    big = np.array([40.0, -40.0])
    expected = np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2
    np.testing.assert_allclose(fg.grad(lambda x: fnp.sum(fg.lax.logistic(x)))(big), expected)
    # broadcast transposes: no reshape that changes nothing
    jaxpr = str(fg.make_jaxpr(fg.grad(lambda b: fnp.sum(np.ones((3, 2)) + b)))(np.ones(2)))
    assert "reshape" not in jaxpr


def test_matmul_transposes_need_no_transpose():
    """The cotangent of a matmul's right operand is lhs.T @ ct, one dot_general."""
    x, w = rand(4, 3), rand(3, 2)
    jaxpr = fg.make_jaxpr(fg.grad(lambda w: fnp.sum(fnp.tanh(x @ w))))(w)
    assert "transpose" not in str(jaxpr)
    np.testing.assert_allclose(
        fg.grad(lambda w: fnp.sum(fnp.tanh(x @ w)))(w), x.T @ (1 - np.tanh(x @ w) ** 2)
    )
    check_grads(lambda a, b: fnp.einsum("ij,kj->ik", a, b), (rand(2, 3), rand(4, 3)), order=1)
    check_grads(lambda a, b: fnp.einsum("ji,jk->ik", a, b), (rand(3, 2), rand(3, 4)), order=1)
    check_grads(lambda a, b: a @ b, (rand(3), rand(3, 2)), order=1)
    check_grads(lambda a, b: a @ b, (rand(2, 3), rand(3)), order=1)


def _ckpt_compositions():
    inner = fg.jit(lambda v: fnp.sin(v) * v)
    return {
        "checkpoint(jit)": lambda v: fnp.sum(fg.checkpoint(inner)(v)),
        "checkpoint(jit then tanh)": lambda v: fnp.sum(
            fg.checkpoint(lambda u: fnp.tanh(inner(u)) * 2.0)(v)
        ),
        "jit(checkpoint(jit))": fg.jit(
            lambda v: fnp.sum(fg.checkpoint(lambda u: fnp.tanh(inner(u)))(v))
        ),
        "checkpoint(checkpoint(jit))": lambda v: fnp.sum(
            fg.checkpoint(lambda u: fnp.exp(fg.checkpoint(inner)(u)))(v)
        ),
    }


@pytest.mark.parametrize("name", list(_ckpt_compositions()))
def test_checkpoint_around_nested_jit_differentiates(name):
    """checkpoint, jit and grad compose in any order (a nested jit inside a checkpoint
    under grad used to lose the primal values its backward pass recomputes)."""
    from tests.helpers import check_grads

    f = _ckpt_compositions()[name]
    x = np.array([0.3, -1.2, 2.0])
    check_grads(f, (x,), order=2, modes=("rev",))
    np.testing.assert_allclose(fg.jit(fg.grad(f))(x), fg.grad(f)(x), rtol=1e-12)
