"""Control flow: cond, switch, while_loop, fori_loop and scan under eager evaluation, jit,
grad (against finite differences), vmap (against a Python loop), and nested.

References are Python loops and branches over NumPy, or central finite differences; never
the code under test. numba compiles are slow: the jit tests share a few kernels (one
function exercising several primitives at once), and tests/conftest.py keeps compiled
kernels on disk across runs.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.ir import check_jaxpr
from funcgrad.lax.control_flow import cond_p, scan_p, while_p
from tests.helpers import check_grads

RNG = np.random.default_rng(0)


def _prims(closed) -> list[str]:
    """Primitive names of a jaxpr's top-level equations."""
    return [e.primitive.name for e in closed.jaxpr.eqns]


def _assert_tree_close(actual, expected, rtol=1e-10, atol=1e-12):
    a_leaves, a_tree = fg.tree_util.tree_flatten(actual)
    e_leaves, e_tree = fg.tree_util.tree_flatten(expected)
    assert a_tree == e_tree, f"{a_tree} != {e_tree}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


# ========================================================================================
# Eager semantics (against Python control flow)


def test_cond_picks_a_branch_and_keeps_types():
    x = np.arange(3, dtype=np.float32)
    out = lax.cond(True, lambda a: fnp.sin(a), lambda a: fnp.cos(a), x)
    np.testing.assert_allclose(out, np.sin(x), rtol=1e-6)
    assert out.dtype == np.float32
    out = lax.cond(np.int32(0), lambda a: fnp.sin(a), lambda a: fnp.cos(a), x)
    np.testing.assert_allclose(out, np.cos(x), rtol=1e-6)
    # pytrees in and out, several operands, and no operands at all
    tree = lax.cond(
        False,
        lambda d, s: {"a": d["x"] * s, "b": (s, s)},
        lambda d, s: {"a": d["x"] - s, "b": (-s, s * 2)},
        {"x": x},
        np.float32(2),
    )
    _assert_tree_close(tree, {"a": x - 2, "b": (np.float32(-2), np.float32(4))})
    assert lax.cond(True, lambda: 1.0, lambda: 2.0) == 1.0


def test_cond_weak_python_scalar_takes_the_other_branch_dtype():
    x = np.ones(2, np.float32)
    out = lax.cond(False, lambda a: a, lambda a: fnp.zeros_like(a) + 0.0, x)
    assert out.dtype == np.float32
    out = lax.cond(False, lambda a: a.sum(), lambda a: 0.0, x)
    assert np.asarray(out).dtype == np.float32 and out == 0


def test_switch_clamps_the_index():
    branches = [lambda a: a + 1, lambda a: a * 10, lambda a: -a]
    for i, expected in [(-5, 3.0), (0, 3.0), (1, 20.0), (2, -2.0), (7, -2.0)]:
        assert lax.switch(i, branches, 2.0) == expected
    assert lax.switch(3, [lambda a: a * 3], 2.0) == 6.0


def test_while_loop_pytree_carry_and_zero_iterations():
    def body(c):
        i, (x, y) = c
        return i + 1, (x * 2, y + x)

    i, (x, y) = lax.while_loop(lambda c: c[0] < 5, body, (0, (1.0, 0.0)))
    ref_i, ref_x, ref_y = 0, 1.0, 0.0
    while ref_i < 5:
        ref_i, ref_x, ref_y = ref_i + 1, ref_x * 2, ref_y + ref_x
    assert (i, x, y) == (ref_i, ref_x, ref_y)
    init = np.arange(3.0)
    out = lax.while_loop(lambda c: c.sum() < 0, lambda c: c + 1, init)
    np.testing.assert_array_equal(out, init)
    assert not np.shares_memory(out, init)


def test_fori_loop_concrete_bounds_is_a_scan_and_traced_bounds_a_while():
    def body(i, x):
        return x * 0.5 + i

    ref = 3.0
    for i in range(2, 7):
        ref = ref * 0.5 + i
    assert lax.fori_loop(2, 7, body, 3.0) == ref
    assert lax.fori_loop(7, 2, body, 3.0) == 3.0  # empty range
    assert "scan" in _prims(fg.make_jaxpr(lambda x: lax.fori_loop(2, 7, body, x))(3.0))
    traced = fg.make_jaxpr(lambda n, x: lax.fori_loop(2, n, body, x))(7, 3.0)
    assert "while" in _prims(traced)
    assert traced(np.int64(7), np.float64(3.0))[0] == ref
    # an integer init whose body makes it a float takes the float dtype (weak typing)
    assert lax.fori_loop(0, 3, lambda i, x: x + 0.5, 0) == 1.5


def _python_scan(f, init, xs, length=None, reverse=False):
    leaves, tree = fg.tree_util.tree_flatten(xs)
    n = length if not leaves else len(leaves[0])
    order = range(n - 1, -1, -1) if reverse else range(n)
    carry, ys = init, [None] * n
    for i in order:
        x = fg.tree_util.tree_unflatten(tree, [leaf[i] for leaf in leaves]) if leaves else None
        carry, ys[i] = f(carry, x)
    stacked = fg.tree_util.tree_map(lambda *y: np.stack(y), *ys) if n else None
    return carry, stacked


def _scan_body(carry, x):
    h, count = carry
    h = np.tanh(h * 0.9 + x["u"]) if isinstance(h, np.ndarray) else fnp.tanh(h * 0.9 + x["u"])
    return (h, count + 1), {"h": h, "v": x["v"] * 2.0}


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_pytrees_and_reverse_match_a_python_loop(reverse):
    xs = {"u": RNG.standard_normal((5, 3)), "v": RNG.standard_normal(5)}
    init = (np.zeros(3), np.int64(0))
    out = lax.scan(_scan_body, init, xs, reverse=reverse)
    ref = _python_scan(_scan_body, init, xs, reverse=reverse)
    _assert_tree_close(out, ref)


def test_scan_without_xs_and_with_empty_outputs():
    carry, ys = lax.scan(lambda c, _: (c * 2, c), 1.0, None, length=4)
    assert carry == 16.0
    np.testing.assert_array_equal(ys, [1.0, 2.0, 4.0, 8.0])
    carry, ys = lax.scan(lambda c, x: (c + x, None), 0.0, np.arange(4.0))
    assert carry == 6.0 and ys is None
    init = np.ones(2)
    carry, ys = lax.scan(lambda c, x: (c + x, x * 2), init, np.zeros((0, 2)))
    np.testing.assert_array_equal(carry, init)
    assert ys.shape == (0, 2) and not np.shares_memory(carry, init)


def test_results_never_alias_inputs():
    x = np.arange(3.0)
    for out in [
        lax.cond(True, lambda a: a, lambda a: a, x),
        lax.scan(lambda c, _: (c, None), x, None, length=3)[0],
        lax.scan(lambda c, xi: (xi, None), x, np.ones((2, 3)))[0],
        lax.fori_loop(0, 0, lambda i, a: a, x),
    ]:
        assert not np.shares_memory(out, x)


# ========================================================================================
# The jaxprs: JAX's text form, types check


def test_printed_forms():
    x32 = np.ones(3, np.float32)
    text = str(fg.make_jaxpr(lambda p, x: lax.cond(p, fnp.sin, fnp.cos, x))(True, x32))
    assert text == (
        "{ lambda ; a:bool[] b:f32[3]. let\n"
        "    c:i32[] = convert_element_type[new_dtype=int32] a\n"
        "    d:f32[3] = cond[\n"
        "      branches=(\n"
        "        { lambda ; e:f32[3]. let f:f32[3] = cos e in (f,) }\n"
        "        { lambda ; g:f32[3]. let h:f32[3] = sin g in (h,) }\n"
        "      )\n"
        "    ] c b\n"
        "  in (d,) }"
    )
    text = str(
        fg.make_jaxpr(lambda xs: lax.scan(lambda c, x: (c + x, c * x), 0.0, xs))(
            np.ones(5, np.float32)
        )
    )
    assert "b:f64[] c:f64[5] = scan[\n      jaxpr={ lambda ; d:f64[] e:f32[]. let" in text
    for param in [
        "length=5",
        "linear=(False, False)",
        "num_carry=1",
        "num_consts=0",
        "reverse=False",
        "unroll=1",
    ]:
        assert f"\n      {param}\n" in text
    text = str(
        fg.make_jaxpr(lambda y: lax.while_loop(lambda c: c < 9.0, lambda c: c * y, 1.0))(2.0)
    )
    for param in ["body_jaxpr={", "body_nconsts=1", "cond_jaxpr={", "cond_nconsts=0"]:
        assert param in text


def test_closed_over_values_become_operands_and_jaxprs_typecheck():
    table = np.arange(6.0).reshape(2, 3)

    def f(x):
        def body(c, i):
            return c + fnp.asarray(table)[i] * x, None

        c, _ = lax.scan(body, fnp.zeros(3), np.array([0, 1, 1]))
        return lax.cond(c.sum() > 0, lambda: c * 2, lambda: c)

    closed = fg.make_jaxpr(f)(1.5)
    check_jaxpr(closed.jaxpr)
    scan_eqn = next(e for e in closed.jaxpr.eqns if e.primitive is scan_p)
    assert not scan_eqn.params["jaxpr"].consts
    assert scan_eqn.params["num_consts"] == 2  # the table and x
    np.testing.assert_allclose(closed(np.float64(1.5))[0], f(1.5))
    np.testing.assert_allclose(f(1.5), 2 * 1.5 * (table[0] + 2 * table[1]))


# ========================================================================================
# Errors


def test_cond_branch_mismatch_names_both_structures_shapes_and_dtypes():
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError) as e:
        lax.cond(True, lambda a: (a, a), lambda a: a, x)
    msg = str(e.value)
    assert "PyTreeDef((*, *))" in msg and "PyTreeDef(*)" in msg and "f32[3]" in msg
    with pytest.raises(TypeError, match=r"f32\[3\] but the output of true_fun has f64\[3\]"):
        lax.cond(True, lambda a: a.astype(np.float64), lambda a: a, x)
    with pytest.raises(TypeError, match=r"shapes differ"):
        lax.cond(True, lambda a: a[:2], lambda a: a, x)
    with pytest.raises(TypeError, match=r"switch: .*branches\[2\]"):
        lax.switch(0, [lambda a: a, lambda a: a, lambda a: a.sum()], x)
    with pytest.raises(TypeError, match="predicate must be a scalar"):
        lax.cond(np.array([True, False]), lambda: 1.0, lambda: 2.0)
    with pytest.raises(TypeError, match="bool or integer"):
        lax.cond(1.5, lambda: 1.0, lambda: 2.0)
    with pytest.raises(TypeError, match="must be an integer"):
        lax.switch(1.0, [lambda: 1.0, lambda: 2.0])


def test_loop_carry_mismatch_errors():
    with pytest.raises(TypeError) as e:
        lax.scan(lambda c, x: (c.astype(np.float32), x), np.zeros(2), np.ones(3))
    msg = str(e.value)
    assert "scan" in msg and "f64[2]" in msg and "f32[2]" in msg and "dtypes differ" in msg
    with pytest.raises(TypeError, match=r"(?s)structures differ.*PyTreeDef\(\(\*, \*\)\)"):
        lax.scan(lambda c, x: ((c, c), x), 0.0, np.ones(3))
    with pytest.raises(TypeError, match="must return a pair"):
        lax.scan(lambda c, x: c, 0.0, np.ones(3))
    with pytest.raises(TypeError, match=r"(?s)while_loop: .*f64\[\].*f64\[2\]"):
        lax.while_loop(lambda c: c < 1, lambda c: fnp.stack([c, c]), 0.0)
    with pytest.raises(TypeError, match="cond_fun must return a bool scalar"):
        lax.while_loop(lambda c: c, lambda c: c + 1, 0.0)
    with pytest.raises(TypeError, match=r"(?s)fori_loop: .*i.astype\(val.dtype\)"):
        lax.fori_loop(0, 3, lambda i, x: x + i, np.float32(0))


def test_scan_length_errors():
    with pytest.raises(
        ValueError, match=r"(?s)same leading axis size.*xs\[0\]: f64\[3\].*f64\[4\]"
    ):
        lax.scan(lambda c, x: (c, None), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="`length` is 5"):
        lax.scan(lambda c, x: (c, None), 0.0, np.ones(3), length=5)
    with pytest.raises(ValueError, match="give `length`"):
        lax.scan(lambda c, x: (c, None), 0.0, None)
    with pytest.raises(ValueError, match="leading axis to scan over"):
        lax.scan(lambda c, x: (c, None), 0.0, np.float64(1.0))


def test_reverse_mode_through_while_loop_is_refused_clearly():
    def f(x):
        return lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x), (0, 1.0))[1]

    with pytest.raises(ValueError, match=r"(?s)while_loop.*lax\.scan.*fori_loop"):
        fg.grad(f)(1.5)

    def g(x, n):  # traced bounds: a while_loop
        return lax.fori_loop(0, n, lambda i, c: c * x, 1.0)

    with pytest.raises(ValueError, match="fori_loop with traced bounds"):
        fg.make_jaxpr(fg.grad(g))(1.5, 3)
    # forward mode and linearize work
    _, t = fg.jvp(f, (1.5,), (1.0,))
    np.testing.assert_allclose(t, 3 * 1.5**2)
    _, f_jvp = fg.linearize(f, 1.5)
    np.testing.assert_allclose(f_jvp(1.0), 3 * 1.5**2)


# ========================================================================================
# Derivatives against finite differences


def _cond_fun(x, y):
    return lax.cond(x.sum() > y, lambda a, b: fnp.sin(a) * b, lambda a, b: a * a - b, x, y)


def _switch_fun(x):
    branches = [lambda a: fnp.exp(a), lambda a: fnp.sin(a) * a, lambda a: a**3]
    return lax.switch((x[0] > 0).astype(np.int32) + (x[1] > 0).astype(np.int32), branches, x)


def _scan_fun(w, h0, xs):
    def cell(h, x):
        h = fnp.tanh(h @ w + x)
        return h, (h**2).sum()

    h, ys = lax.scan(cell, h0, xs)
    return h.sum() + ys.sum()


def _fori_fun(x):
    return lax.fori_loop(1, 4, lambda i, c: fnp.sin(c) * x + i, x)


def _while_fun(x):
    return lax.while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, fnp.sin(c[1]) * x), (0, x))[1]


W = RNG.standard_normal((3, 3)) * 0.5
H0 = RNG.standard_normal(3)
XS = RNG.standard_normal((5, 3))


@pytest.mark.parametrize("args", [(np.array([0.3, 0.4]), 0.1), (np.array([0.3, -0.4]), 0.1)])
def test_cond_derivatives(args):
    check_grads(_cond_fun, args, order=2)


@pytest.mark.parametrize("x", [[-0.5, -0.2], [0.5, -0.2], [0.5, 0.2]])
def test_switch_derivatives(x):
    check_grads(_switch_fun, (np.array(x),), order=2)


def test_scan_derivatives():
    check_grads(_scan_fun, (W, H0, XS), order=2)
    check_grads(
        lambda xs: lax.scan(lambda c, x: (c * x, c), 1.0, xs, reverse=True)[1],
        (np.array([0.5, 2.0, -1.5]),),
        order=1,
    )


def test_fori_and_while_derivatives():
    check_grads(_fori_fun, (0.7,), order=2)
    check_grads(_while_fun, (0.7,), order=2, modes=("fwd",))


def test_reverse_mode_with_traced_index_and_bounds():
    """Under make_jaxpr the cond index is traced: the general partial evaluation and
    transpose rules run (eager grad inlines the taken branch instead)."""
    x, y = np.array([0.3, -0.4]), np.float64(0.1)
    grad_cond = fg.grad(lambda x, y: _cond_fun(x, y).sum())
    closed = fg.make_jaxpr(grad_cond)(x, y)
    check_jaxpr(closed.jaxpr)
    assert _prims(closed).count("cond") == 2  # the known cond and the transposed one
    np.testing.assert_allclose(closed(x, y)[0], grad_cond(x, y))
    np.testing.assert_allclose(closed(-x, y)[0], grad_cond(-x, y))
    grad_switch = fg.grad(lambda x: _switch_fun(x).sum())
    closed = fg.make_jaxpr(grad_switch)(np.array([0.5, -0.2]))
    for x in ([-0.5, -0.2], [0.5, -0.2], [0.5, 0.2]):
        np.testing.assert_allclose(closed(np.array(x))[0], grad_switch(np.array(x)))


def test_grad_of_closed_over_tracers():
    def f(w):
        # the body closes over w, a tracer of grad
        c, ys = lax.scan(lambda c, x: (c * w + x, c * w), 1.0, np.arange(3.0))
        return c + ys.sum() + lax.cond(w > 0, lambda: w**2, lambda: -w)

    check_grads(f, (0.7,), order=2)
    check_grads(f, (-0.7,), order=1)


def test_scan_residuals_loop_invariant_once_and_xs_reused():
    """The linearized scan stacks no copy of a closed-over matrix or of xs."""
    closed = fg.make_jaxpr(fg.grad(_scan_fun))(W, H0, XS)
    scans = [e for e in closed.jaxpr.eqns if e.primitive is scan_p]
    assert len(scans) == 2
    forward_outs = [v.aval.shape for v in scans[0].outvars]
    assert (5, 3, 3) not in forward_outs  # w is not stacked per step
    # Per-step residuals: tanh', the derivative of h**2, and the carry input h (h @ w needs
    # h for the cotangent of w). Nothing else is stacked, and xs is not copied.
    stacked = [s for s in forward_outs[2:] if s[:1] == (5,)]
    assert stacked == [(5, 3)] * 3


def test_checkpoint_inside_scan_body_saves_only_inputs():
    def make(remat):
        def cell(h, x):
            a = fnp.tanh(h @ W + x)
            b = fnp.sin(a) * fnp.cos(a)
            return b, b.sum()

        cell = fg.checkpoint(cell) if remat else cell
        return lambda h0, xs: (lambda out: out[0].sum() + out[1].sum())(lax.scan(cell, h0, xs))

    plain, remat = make(False), make(True)
    _assert_tree_close(fg.grad(remat)(H0, XS), fg.grad(plain)(H0, XS))
    check_grads(remat, (H0, XS), order=1)

    def stacked(f):
        closed = fg.make_jaxpr(fg.grad(f))(H0, XS)
        scan = next(e for e in closed.jaxpr.eqns if e.primitive is scan_p)
        return [v for v in scan.outvars[2:] if v.aval.shape == XS.shape]

    assert len(stacked(remat)) == 1 < len(stacked(plain))


# ========================================================================================
# vmap against Python loops


def _loop(f, *args, in_axes):
    n = next(np.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None)
    outs = []
    for b in range(n):
        ex = [
            a if ax is None else np.take(a, b, axis=ax) for a, ax in zip(args, in_axes, strict=True)
        ]
        outs.append(f(*ex))
    return fg.tree_util.tree_map(lambda *o: np.stack(o), *outs)


@pytest.mark.parametrize(
    "in_axes", [(0, None), (None, 0), (0, 0), (1, 0)], ids=["x", "y", "both", "axis1"]
)
def test_vmap_cond(in_axes):
    x = RNG.standard_normal((4, 2)) if in_axes[0] != 1 else RNG.standard_normal((2, 4))
    y = np.array([0.1, -5.0, 5.0, 0.0]) if in_axes[1] is not None else 0.1
    _assert_tree_close(fg.vmap(_cond_fun, in_axes)(x, y), _loop(_cond_fun, x, y, in_axes=in_axes))


def test_vmap_switch_with_batched_index_runs_all_branches_and_selects():
    xs = np.array([[-0.5, -0.2], [0.5, -0.2], [0.5, 0.2], [-0.1, 0.3]])
    _assert_tree_close(fg.vmap(_switch_fun)(xs), _loop(_switch_fun, xs, in_axes=(0,)))
    closed = fg.make_jaxpr(fg.vmap(_switch_fun))(xs)
    assert "cond" not in _prims(closed) and "select_n" in _prims(closed)


def test_vmap_while_with_batched_predicate_masks_finished_members():
    def f(n, x):
        return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * x), (0, 1.0))

    n = np.array([0, 3, 1, 5])
    x = np.array([2.0, 1.5, -1.0, 0.5])
    _assert_tree_close(fg.vmap(f)(n, x), _loop(f, n, x, in_axes=(0, 0)))
    _assert_tree_close(fg.vmap(f, (None, 0))(3, x), _loop(f, 3, x, in_axes=(None, 0)))
    _assert_tree_close(fg.vmap(_while_fun)(x), _loop(_while_fun, x, in_axes=(0,)))


@pytest.mark.parametrize("in_axes", [(None, None, 0), (None, 0, None), (0, None, None), (2, 0, 1)])
def test_vmap_scan(in_axes):
    args = [W, H0, XS]
    args = [
        a if ax is None else np.stack([a * (1 + 0.1 * k) for k in range(3)], ax)
        for a, ax in zip(args, in_axes, strict=True)
    ]
    _assert_tree_close(fg.vmap(_scan_fun, in_axes)(*args), _loop(_scan_fun, *args, in_axes=in_axes))


def test_vmap_of_grad_and_grad_of_vmap():
    xs = np.array([0.3, 0.7, -0.4])
    _assert_tree_close(fg.vmap(fg.grad(_fori_fun))(xs), _loop(fg.grad(_fori_fun), xs, in_axes=(0,)))
    g = fg.grad(lambda w: fg.vmap(_scan_fun, (None, 0, None))(w, np.stack([H0, -H0]), XS).sum())
    expected = fg.grad(_scan_fun)(W, H0, XS) + fg.grad(_scan_fun)(W, -H0, XS)
    _assert_tree_close(g(W), expected, rtol=1e-9)


# ========================================================================================
# Nested control flow: a scan inside a cond inside a fori_loop


def _nested(x, flags):
    def outer(i, carry):
        def inner_scan(c):
            c2, ys = lax.scan(lambda h, f: (fnp.sin(h) * x + f, h * f), c, flags)
            return c2 + ys.sum()

        return lax.cond(fnp.asarray(flags)[i % 3] > 0, inner_scan, lambda c: c * x, carry)

    return lax.fori_loop(0, 4, outer, x)


def _nested_python(x, flags):
    carry = x
    for i in range(4):
        if flags[i % 3] > 0:
            c = carry
            ys = []
            for f in flags:
                ys.append(c * f)
                c = np.sin(c) * x + f
            carry = c + sum(ys)
        else:
            carry = carry * x
    return carry


def test_nested_control_flow():
    flags = np.array([1.0, -1.0, 0.5])
    np.testing.assert_allclose(_nested(0.6, flags), _nested_python(0.6, flags))
    check_grads(_nested, (0.6, flags), order=2)
    xs = np.array([0.6, -0.3, 0.9])
    _assert_tree_close(
        fg.vmap(_nested, (0, None))(xs, flags), np.array([_nested_python(x, flags) for x in xs])
    )


# ========================================================================================
# jit: one kernel per test exercises several primitives (numba compiles are slow)


def _all_primitives(x, n, xs):
    a = lax.cond(x.sum() > 0, lambda v: v * 2.0, lambda v: -v, x)
    b = lax.switch(n, [lambda v: v + 1.0, lambda v: v * v, lambda v: fnp.sin(v)], x)
    i, c = lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, s[1] * 1.5), (0, x))
    d = lax.fori_loop(0, n, lambda k, v: v + k, x)  # traced bounds: a while_loop
    carry, ys = lax.scan(
        lambda h, r: (fnp.tanh(h + r), {"h": h, "s": r.sum()}), x, xs, reverse=True
    )
    e, _ = lax.scan(lambda h, _: (h * 0.5, None), x, None, length=0)
    # edge cases: branches returning literals, a scan without carry, bool ys
    f = lax.cond(n > 1, lambda: 1.0, lambda: 2.0)
    _, g = lax.scan(lambda c, r: (c, (r > 0, r * 2.0)), (), xs)
    return a, b, (i, c), d, carry, ys, e, f, g


def test_jit_matches_eager_for_every_primitive():
    jf = fg.jit(_all_primitives)
    x = np.array([0.5, -0.25, 1.0])
    xs = RNG.standard_normal((4, 3))
    for n in (np.int64(2), np.int64(0), np.int64(5)):
        out = jf(x, n, xs)
        _assert_tree_close(out, _all_primitives(x, n, xs), rtol=1e-12)
        for leaf in fg.tree_util.tree_leaves(out):
            assert not np.shares_memory(leaf, x)
    _assert_tree_close(jf(-x, np.int64(1), xs), _all_primitives(-x, np.int64(1), xs))
    text = jf.lower(x, np.int64(2), xs).as_text()
    assert "def scan_body" in text and "def while_body" in text and "def cond_branch0" in text


def _grad_target(w, h0, xs):
    return (
        _scan_fun(w, h0, xs)
        + _cond_fun(h0, 0.1).sum()
        + _fori_fun(h0.sum())
        + _switch_fun(h0).sum()
    )


def test_jit_of_grad_and_grad_of_jit():
    g_eager = fg.grad(_grad_target, (0, 1))(W, H0, XS)
    g_jit = fg.jit(fg.grad(_grad_target, (0, 1)))
    _assert_tree_close(g_jit(W, H0, XS), g_eager, rtol=1e-9)
    _assert_tree_close(g_jit(W, -H0, XS), fg.grad(_grad_target, (0, 1))(W, -H0, XS), rtol=1e-9)

    def small(w, h0):
        return _scan_fun(w, h0, XS) + _cond_fun(h0, 0.1).sum()

    # grad of jit: the jit's partial evaluation splits the scan and the cond inside it
    _assert_tree_close(fg.grad(fg.jit(small))(W, H0), fg.grad(small)(W, H0), rtol=1e-9)
    hs = np.stack([H0, -H0, 0.5 * H0])
    _assert_tree_close(
        fg.vmap(fg.jit(small), (None, 0))(W, hs), _loop(small, W, hs, in_axes=(None, 0)), rtol=1e-9
    )


def test_jit_of_vmap_nested_and_batched_while():
    def f(x, n):
        flags = np.array([1.0, -1.0, 0.5])
        m = lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] + x), (0, 0.0))[1]
        return _nested(x, flags) + m

    xs = np.array([0.6, -0.3, 0.9])
    ns = np.array([1, 4, 0])
    expected = [
        _nested_python(x, np.array([1.0, -1.0, 0.5])) + n * x for x, n in zip(xs, ns, strict=True)
    ]
    np.testing.assert_allclose(fg.jit(fg.vmap(f))(xs, ns), expected, rtol=1e-12)


def test_long_scan_compiles_once_into_a_loop():
    def f(h, xs):
        return lax.scan(lambda c, x: (fnp.tanh(c * 0.5 + x), c.sum()), h, xs)

    h = np.zeros(4)
    short = fg.jit(f).lower(h, np.ones((20, 4))).as_text()
    xs = RNG.standard_normal((2000, 4))
    jf = fg.jit(f)
    long_text = jf.lower(h, xs).as_text()
    # The source does not grow with the trip count: one loop calling one body function.
    assert len(long_text.splitlines()) == len(short.splitlines())
    assert long_text == short  # shape-generic: the trip count is read from xs' shape
    t0 = time.perf_counter()
    out = jf(h, xs)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jf(h, xs)
    second = time.perf_counter() - t0
    _assert_tree_close(out, f(h, xs), rtol=1e-12)
    assert first < 120 and second < 1.0, (first, second)  # generous sanity bounds only


def test_primitives_are_registered():
    for p in (cond_p, while_p, scan_p):
        assert p.multiple_results
    from funcgrad.backend.numba import lowering

    assert all(lowering.has_lowering(n) for n in ("cond", "while", "scan"))
