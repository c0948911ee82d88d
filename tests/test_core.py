"""The core: tracing, the jaxpr IR and its printer, checking, DCE, tracer behaviour, errors."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import core, errors, lax
from funcgrad.ir import (
    ClosedJaxpr,
    Eqn,
    Jaxpr,
    JaxprTypeError,
    Var,
    check_jaxpr,
    dce_jaxpr,
    eval_jaxpr,
)

F32_3 = np.ones(3, np.float32)


# -- the printer, pinned to JAX's text form


def test_print_sin_mul():
    text = str(fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(F32_3))
    assert text == (
        "{ lambda ; a:f32[3]. let b:f32[3] = sin a; c:f32[3] = mul b 2.0:f32[] in (c,) }"
    )


def test_print_constvars_and_multiple_outputs():
    table = np.arange(3.0, dtype=np.float32)

    def f(x, y):
        return x + table, y

    text = str(fg.make_jaxpr(f)(F32_3, np.int32(1)))
    assert text == ("{ lambda a:f32[3]; b:f32[3] c:i32[]. let d:f32[3] = add b a in (d, c) }")


def test_print_multiline_when_long():
    def f(x):
        return fnp.exp(fnp.sin(x) * 2.0 + 1.0) - x

    text = str(fg.make_jaxpr(f)(np.ones((4, 5))))
    assert text == (
        "{ lambda ; a:f64[4,5]. let\n"
        "    b:f64[4,5] = sin a\n"
        "    c:f64[4,5] = mul b 2.0:f64[]\n"
        "    d:f64[4,5] = add c 1.0:f64[]\n"
        "    e:f64[4,5] = exp d\n"
        "    f:f64[4,5] = sub e a\n"
        "  in (f,) }"
    )


def test_print_params_sorted():
    text = str(fg.make_jaxpr(lambda x: lax.reduce_sum(x, (0,)))(np.ones((2, 3), np.float32)))
    assert text == "{ lambda ; a:f32[2,3]. let b:f32[3] = reduce_sum[axes=(0,)] a in (b,) }"


def test_print_int_and_bool_literals():
    text = str(fg.make_jaxpr(lambda x: x * 3)(np.ones(2, np.int32)))
    assert text == "{ lambda ; a:i32[2]. let b:i32[2] = mul a 3:i32[] in (b,) }"


def test_variable_names_continue_past_z():
    def f(x):
        for _ in range(30):
            x = fnp.sin(x)
        return x

    text = str(fg.make_jaxpr(f)(np.float32(1.0)))
    assert "ba:f32[] = sin z" in text and "be:f32[] = sin bd" in text


# -- IR: eval, check, DCE


def test_eval_jaxpr_matches_eager():
    def f(x, y):
        return fnp.sin(x) * y + 1.0

    x, y = np.linspace(0, 1, 5), np.float64(3.0)
    closed = fg.make_jaxpr(f)(x, y)
    (out,) = eval_jaxpr(closed.jaxpr, closed.consts, x, y)
    np.testing.assert_allclose(out, np.sin(x) * 3.0 + 1.0)
    np.testing.assert_allclose(closed(x, y)[0], np.sin(x) * 3.0 + 1.0)


def test_check_jaxpr_accepts_traced_and_rejects_bad_types():
    closed = fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(F32_3)
    check_jaxpr(closed.jaxpr)
    eqn = closed.jaxpr.eqns[0]
    bad_out = Var(core.ShapedArray((4,), np.float32))
    bad = Jaxpr([], closed.jaxpr.invars, [eqn.replace(outvars=[bad_out])], [bad_out])
    with pytest.raises(JaxprTypeError, match="sin: binder of type f32\\[4\\]"):
        check_jaxpr(bad)
    unbound = Var(core.ShapedArray((3,), np.float32))
    bad2 = Jaxpr([], [], [Eqn(eqn.primitive, [unbound], {}, [Var(unbound.aval)])], [])
    with pytest.raises(JaxprTypeError, match="used before it is bound"):
        check_jaxpr(bad2)


def test_dce_drops_unused_equations_and_inputs():
    def f(x, y):
        _unused = fnp.exp(y)
        return fnp.sin(x)

    closed = fg.make_jaxpr(f)(F32_3, F32_3)
    assert [e.primitive.name for e in closed.jaxpr.eqns] == ["exp", "sin"]
    new, used = dce_jaxpr(closed.jaxpr)
    assert [e.primitive.name for e in new.eqns] == ["sin"]
    assert used == [True, False]
    check_jaxpr(new)


def test_make_jaxpr_static_argnums():
    closed = fg.make_jaxpr(lambda x, n: x * n, static_argnums=1)(F32_3, 3)
    assert isinstance(closed, ClosedJaxpr)
    assert str(closed) == "{ lambda ; a:f32[3]. let b:f32[3] = mul a 3.0:f32[] in (b,) }"


def test_make_jaxpr_pytree_args():
    closed = fg.make_jaxpr(lambda p: p["w"] * p["b"])({"w": F32_3, "b": np.float32(2)})
    assert [str(a.str_short()) for a in closed.in_avals] == ["f32[]", "f32[3]"]


# -- tracers behave like arrays


def test_tracer_array_attributes_and_methods():
    seen = {}

    def f(x):
        seen.update(shape=x.shape, dtype=x.dtype, ndim=x.ndim, size=x.size, len=len(x))
        return x.T.reshape(-1).sum() + x.mean() + x.max() + x.astype(np.float32).sum()

    x = np.arange(6.0).reshape(2, 3)
    fg.make_jaxpr(f)(x)
    assert seen == {"shape": (2, 3), "dtype": np.float64, "ndim": 2, "size": 6, "len": 2}
    (out,) = fg.make_jaxpr(f)(x)(x)
    assert np.isclose(out, 15 + 2.5 + 5 + 15)


def test_numpy_array_on_the_left_defers_to_tracer():
    a = np.arange(3.0)

    def f(x):
        return a + x, a * x, a - x, a / (x + 1), a @ x, a > x

    closed = fg.make_jaxpr(f)(np.ones(3))
    outs = closed(np.ones(3))
    np.testing.assert_allclose(outs[0], a + 1)
    np.testing.assert_allclose(outs[2], a - 1)
    np.testing.assert_allclose(outs[4], a.sum())
    np.testing.assert_array_equal(outs[5], a > 1)


def test_numpy_ufunc_on_tracer_dispatches_to_funcgrad():
    closed = fg.make_jaxpr(lambda x: np.sin(x))(F32_3)
    assert [e.primitive.name for e in closed.jaxpr.eqns] == ["sin"]


def test_iteration_over_leading_axis():
    closed = fg.make_jaxpr(lambda x: [r.sum() for r in x])(np.ones((3, 2)))
    assert len(closed.out_avals) == 3


# -- errors


def test_concretization_error_names_argument_and_fix():
    def f(x, y):
        if x > 0:
            return x
        return y

    with pytest.raises(errors.ConcretizationTypeError) as e:
        fg.make_jaxpr(f)(1.0, 2.0)
    msg = str(e.value)
    assert "the traced argument x" in msg
    assert "lax.cond" in msg and "static_argnums" in msg


def test_concretization_error_for_int_and_float():
    with pytest.raises(errors.ConcretizationTypeError, match="int\\(\\)"):
        fg.make_jaxpr(lambda x: int(x))(1.0)
    with pytest.raises(errors.ConcretizationTypeError, match="float\\(\\)"):
        fg.make_jaxpr(lambda x: float(x))(1.0)


def test_indexing_numpy_array_with_tracer_is_explained():
    table = np.arange(5.0)
    # NumPy converts a scalar index via __array__ or __index__: either way the fix is named.
    with pytest.raises(TypeError, match="fnp.asarray\\(table\\)\\[i\\]"):
        fg.make_jaxpr(lambda i: table[i])(np.int32(1))
    with pytest.raises(errors.TracerArrayConversionError, match="fnp.take"):
        fg.make_jaxpr(lambda i: table[i])(np.array([1, 2]))


def test_fnp_asarray_table_indexed_by_tracer():
    table = np.arange(5.0) * 10
    closed = fg.make_jaxpr(lambda i: fnp.asarray(table)[i])(np.int32(1))
    assert closed(np.int32(3))[0] == 30.0


def test_leaked_tracer_raises_unexpected_tracer_error():
    leaked = []

    def f(x):
        leaked.append(x)
        return x

    fg.make_jaxpr(f)(1.0)
    with pytest.raises(errors.UnexpectedTracerError, match="escaped"):
        fnp.sin(leaked[0])
    with pytest.raises(errors.UnexpectedTracerError):
        fg.make_jaxpr(lambda y: y + leaked[0])(1.0)


def test_abstract_eval_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3,\), \(4,\) do not broadcast"):
        lax.add(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="add"):
        fg.make_jaxpr(lambda x, y: lax.add(x, y))(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match=r"add: operands must have one dtype.*f32\[3\], f64\[3\]"):
        fg.make_jaxpr(lambda x, y: lax.add(x, y))(F32_3, np.ones(3))
    with pytest.raises(TypeError, match=r"sin: expected a floating or complex operand"):
        fg.make_jaxpr(lambda x: lax.sin(x))(np.ones(3, np.int32))


def test_eager_ops_return_numpy_and_do_not_mutate():
    x = np.arange(4.0)
    x0 = x.copy()
    out = fnp.reshape(x, (2, 2))
    assert isinstance(out, np.ndarray)
    out[0, 0] = 100.0
    np.testing.assert_array_equal(x, x0)


def test_every_primitive_is_registered_once():
    assert len(set(core.primitives)) == len(core.primitives)
    with pytest.raises(ValueError, match="already exists"):
        core.Primitive("sin")


def test_lax_round_defaults_to_half_away_from_zero_as_jax():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], np.float32)
    np.testing.assert_array_equal(lax.round(x), [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), np.round(x))
    # funcgrad.numpy.round stays NumPy's half-to-even, eagerly and under jit.
    np.testing.assert_array_equal(fnp.round(x), np.round(x))
    np.testing.assert_array_equal(fg.jit(lambda v: lax.round(v))(x), lax.round(x))
