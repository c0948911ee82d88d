"""vmap: in_axes/out_axes pytrees, nesting, composition with grad, batched primitives, errors.

References are Python loops over the batch (with NumPy or with funcgrad's own unbatched
function, whose correctness the registry test checks separately).
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp

RNG = np.random.default_rng(0)


def loop(f, in_axes, *args, out_axis=0):
    """The reference: call f per example and stack."""
    sizes = [np.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None]
    outs = []
    for i in range(sizes[0]):
        ex = [
            a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes, strict=True)
        ]
        outs.append(f(*ex))
    return np.stack(outs, axis=out_axis)


def eqn_names(closed):
    return [e.primitive.name for e in closed.jaxpr.eqns]


# -- in_axes / out_axes


@pytest.mark.parametrize("in_axes", [(0, 0), (1, 0), (-1, None), (None, 1), (0, -2)])
def test_in_axes_ints_and_none(in_axes):
    x = RNG.standard_normal((4, 3))
    y = RNG.standard_normal((3, 4))

    def f(a, b):
        return fnp.sin(a) * fnp.sum(b) + a

    # Arrange shapes so the mapped axes have size 4 or 3 consistently.
    xa = x if in_axes[0] in (0, None) else x.T
    if in_axes[0] == -1:
        xa = x.T
    yb = {0: y.T, 1: y, -2: y.T, None: y}[in_axes[1]]
    out = fg.vmap(f, in_axes=in_axes)(xa, yb)
    ref = loop(lambda a, b: np.sin(a) * np.sum(b) + a, in_axes, xa, yb)
    np.testing.assert_allclose(out, ref)


@pytest.mark.parametrize("out_axes", [0, 1, -1])
def test_out_axes(out_axes):
    x = RNG.standard_normal((5, 2, 3))
    out = fg.vmap(lambda a: a * 2.0, out_axes=out_axes)(x)
    ref = np.moveaxis(x * 2.0, 0, out_axes)
    np.testing.assert_allclose(out, ref)


def test_pytree_in_axes_and_out_axes():
    params = {"w": RNG.standard_normal((3, 2)), "b": RNG.standard_normal(2)}
    xs = RNG.standard_normal((6, 3))

    def f(p, x):
        y = x @ p["w"] + p["b"]
        return {"y": y, "norm": fnp.sum(y * y)}

    out = fg.vmap(f, in_axes=({"w": None, "b": None}, 0), out_axes={"y": 1, "norm": 0})(params, xs)
    ref_y = xs @ params["w"] + params["b"]
    np.testing.assert_allclose(out["y"], ref_y.T)
    np.testing.assert_allclose(out["norm"], np.sum(ref_y**2, axis=1))


def test_in_axes_prefix_none_for_whole_subtree():
    params = (RNG.standard_normal((3, 3)), RNG.standard_normal(3))
    xs = RNG.standard_normal((4, 3))
    out = fg.vmap(lambda p, x: p[0] @ x + p[1], in_axes=(None, 0))(params, xs)
    np.testing.assert_allclose(out, xs @ params[0].T + params[1])


def test_out_axes_none_for_unbatched_output():
    x = RNG.standard_normal((4, 3))
    c = np.arange(3.0)
    out, const = fg.vmap(lambda a: (a + 1.0, c * 2.0), out_axes=(0, None))(x)
    np.testing.assert_allclose(out, x + 1.0)
    np.testing.assert_allclose(const, c * 2.0)


def test_axis_size_without_mapped_inputs():
    out = fg.vmap(lambda: fnp.ones(3), in_axes=(), axis_size=5)()
    assert out.shape == (5, 3)
    out = fg.vmap(lambda c: c * 2.0, in_axes=None, axis_size=2)(np.float64(3.0))
    np.testing.assert_allclose(out, [6.0, 6.0])


def test_kwargs_are_mapped_over_axis_0():
    x = RNG.standard_normal((4, 3))
    out = fg.vmap(lambda a, scale: a * scale)(x, scale=np.arange(4.0))
    np.testing.assert_allclose(out, x * np.arange(4.0)[:, None])


# -- nesting and composition


def test_nested_vmap_pairwise_distances():
    xs = RNG.standard_normal((5, 3))
    ys = RNG.standard_normal((4, 3))

    def dist(a, b):
        return fnp.sqrt(fnp.sum((a - b) ** 2))

    pairwise = fg.vmap(fg.vmap(dist, in_axes=(None, 0)), in_axes=(0, None))
    out = pairwise(xs, ys)
    ref = np.sqrt(((xs[:, None, :] - ys[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(out, ref)


def test_per_example_gradients_match_loop_of_grad():
    w = RNG.standard_normal((3,))
    xs = RNG.standard_normal((8, 3))
    ys = RNG.standard_normal(8)

    def loss(w, x, y):
        return (fnp.tanh(fnp.dot(x, w)) - y) ** 2

    out = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)
    ref = np.stack([fg.grad(loss)(w, x, y) for x, y in zip(xs, ys, strict=True)])
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # and against the closed form
    z = xs @ w
    closed = (2 * (np.tanh(z) - ys) * (1 - np.tanh(z) ** 2))[:, None] * xs
    np.testing.assert_allclose(out, closed, rtol=1e-12)


def test_per_example_gradients_of_mlp_pytree():
    rng = np.random.default_rng(1)
    params = {
        "w1": rng.standard_normal((4, 5)).astype(np.float32),
        "b1": np.zeros(5, np.float32),
        "w2": rng.standard_normal((5, 1)).astype(np.float32),
    }
    xs = rng.standard_normal((6, 4)).astype(np.float32)
    ys = rng.standard_normal((6, 1)).astype(np.float32)

    def loss(p, x, y):
        h = fnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        return fnp.mean((h @ p["w2"] - y) ** 2)

    grads = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    for i in range(6):
        g = fg.grad(loss)(params, xs[i], ys[i])
        for k in params:
            assert grads[k].dtype == np.float32
            np.testing.assert_allclose(grads[k][i], g[k], rtol=1e-5, atol=1e-6)


def test_grad_of_vmap():
    xs = RNG.standard_normal(6)

    def f(x):
        return fnp.sum(fg.vmap(lambda a: fnp.sin(a) * a)(x))

    np.testing.assert_allclose(fg.grad(f)(xs), np.cos(xs) * xs + np.sin(xs))


def test_vmap_of_jacobian_and_hessian():
    xs = RNG.standard_normal((3, 2))

    def f(x):
        return fnp.sum(x**3)

    hess = fg.vmap(fg.hessian(f))(xs)
    ref = np.stack([np.diag(6 * x) for x in xs])
    np.testing.assert_allclose(hess, ref)


# -- batched primitives, not loops


def test_vmap_matmul_is_one_dot_general():
    a = RNG.standard_normal((7, 3, 4))
    b = RNG.standard_normal((7, 4, 2))
    closed = fg.make_jaxpr(fg.vmap(fnp.matmul))(a, b)
    assert eqn_names(closed).count("dot_general") == 1
    assert len(closed.jaxpr.eqns) == 1
    np.testing.assert_allclose(closed(a, b)[0], a @ b)


def test_vmap_matvec_with_unbatched_matrix_is_one_dot_general():
    w = RNG.standard_normal((3, 4))
    xs = RNG.standard_normal((10, 4))
    closed = fg.make_jaxpr(fg.vmap(lambda x: w @ x))(xs)
    assert eqn_names(closed).count("dot_general") == 1
    np.testing.assert_allclose(closed(xs)[0], xs @ w.T)


def test_vmap_indexing_is_one_gather():
    table = RNG.standard_normal((5, 3))
    idx = np.array([4, 0, 2, 2])
    closed = fg.make_jaxpr(fg.vmap(lambda i: fnp.asarray(table)[i]))(idx)
    assert eqn_names(closed).count("gather") == 1
    np.testing.assert_allclose(closed(idx)[0], table[idx])


def test_unbatched_operands_stay_unbatched():
    c = RNG.standard_normal(3)
    closed = fg.make_jaxpr(fg.vmap(lambda x: x * fnp.sin(c)))(RNG.standard_normal((4, 3)))
    assert "broadcast_in_dim" not in eqn_names(closed)


def test_nothing_batched_fast_path():
    closed = fg.make_jaxpr(fg.vmap(lambda x, c: x + fnp.exp(c), in_axes=(0, None)))(
        np.ones((4, 3)), np.ones(3)
    )
    # exp(c) does not depend on the mapped input: computed once, unbatched.
    exp_eqn = [e for e in closed.jaxpr.eqns if e.primitive.name == "exp"][0]
    assert exp_eqn.outvars[0].aval.shape == (3,)


# -- errors


def test_error_mismatched_sizes_names_each_argument():
    with pytest.raises(ValueError, match=r"xs has size 3.*ys has size 4"):
        fg.vmap(lambda xs, ys: xs + ys)(np.ones(3), np.ones(4))


def test_error_mismatched_sizes_names_pytree_paths():
    with pytest.raises(ValueError, match=r"p\['a'\] has size 2.*p\['b'\] has size 3"):
        fg.vmap(lambda p: p["a"])({"a": np.ones(2), "b": np.ones(3)})


def test_error_in_axes_tree_mismatch_names_path():
    with pytest.raises(ValueError, match=r"in_axes does not match.*\[1\]"):
        fg.vmap(lambda a, b: a, in_axes=(0, {"k": 0}))(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="tuple of length 1"):
        fg.vmap(lambda a, b: a, in_axes=(0,))(np.ones(2), np.ones(2))


def test_error_axis_out_of_range_names_argument_and_shape():
    with pytest.raises(ValueError, match=r"in_axes=2 is out of range for argument x of shape"):
        fg.vmap(lambda x: x, in_axes=2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="out of range"):
        fg.vmap(lambda x: x)(np.float64(1.0))


def test_error_no_mapped_argument():
    with pytest.raises(ValueError, match="axis_size"):
        fg.vmap(lambda x: x, in_axes=None)(np.ones(3))


def test_error_bad_in_axes_type():
    with pytest.raises(ValueError, match="in_axes"):
        fg.vmap(lambda x: x, in_axes="0")(np.ones(3))


def test_python_control_flow_on_batched_value_raises():
    def f(x):
        return x if x > 0 else -x

    with pytest.raises(fg.errors.ConcretizationTypeError):
        fg.vmap(f)(np.ones(3))


def test_unmapped_array_argument_behaves_like_a_traced_array():
    # Indexing an unbatched NumPy argument with a batched index works, as in JAX.
    x0 = np.arange(12.0).reshape(3, 4)
    idx = np.array([[2, 0, 1], [1, 1, 0]])
    out = fg.vmap(lambda i, x: x[:, fnp.asarray(i)], in_axes=(0, None))(idx, x0)
    np.testing.assert_array_equal(out, np.stack([x0[:, i] for i in idx]))
    out = fg.vmap(lambda i, x: x[i], in_axes=(0, None))(np.array([2, 0]), x0)
    np.testing.assert_array_equal(out, x0[[2, 0]])


def test_results_never_alias_inputs():
    x = np.ones(3)
    y = fg.vmap(lambda v: v)(x)
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(y, x)
    w = np.arange(2.0)
    r = fg.vmap(lambda v, w: w, in_axes=(0, None), out_axes=None)(x, w)
    assert not np.shares_memory(r, w)
    np.testing.assert_array_equal(r, w)
