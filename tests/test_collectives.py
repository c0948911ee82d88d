"""Collectives over named vmap axes (funcgrad/lax/parallel.py), against NumPy and loops.

References: NumPy reductions over the mapped axis, a Python loop over the instances, closed
forms for the JAX conventions of the derivatives (psum's transpose is psum), and central
finite differences. The process-axis path (MPI) is in ``tests/test_distributed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import distributed, lax

RNG = np.random.default_rng(0)
XS = RNG.standard_normal((5, 3))


def _fd_grad(f, x, eps=1e-6):
    """Central finite differences of a scalar function of one array."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        g[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


# ----------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("transform", ["eager", "jit_outside", "jit_inside"])
def test_reductions_match_numpy(transform):
    def f(x):
        return lax.psum(x, "i"), lax.pmean(x, "i"), lax.pmax(x, "i"), lax.pmin(x, "i")

    if transform == "jit_inside":
        mapped = fg.vmap(fg.jit(f), axis_name="i")
    else:
        mapped = fg.vmap(f, axis_name="i")
        if transform == "jit_outside":
            mapped = fg.jit(mapped)
    s, m, hi, lo = mapped(XS)
    n = XS.shape[0]
    for got, ref in [
        (s, XS.sum(0)),
        (m, XS.mean(0)),
        (hi, XS.max(0)),
        (lo, XS.min(0)),
    ]:
        assert got.shape == XS.shape
        np.testing.assert_allclose(got, np.broadcast_to(ref, (n, 3)), rtol=1e-12)


def test_matches_python_loop_with_in_axes_and_pytrees():
    """``x - pmean(x)`` and a softmax over the mapped axis, instance by instance."""

    def f(tree, scale):
        x = tree["x"]
        centered = x - lax.pmean(x, "b")
        e = fnp.exp(x * scale)
        return {"c": centered, "p": e / lax.psum(e, "b")}

    xs = RNG.standard_normal((3, 4))  # mapped along axis 1
    out = fg.vmap(f, in_axes=({"x": 1}, None), axis_name="b")({"x": xs}, 0.5)
    for i in range(4):
        col = xs[:, i]
        np.testing.assert_allclose(out["c"][i], col - xs.mean(1), rtol=1e-12)
        e_all = np.exp(xs * 0.5)
        np.testing.assert_allclose(out["p"][i], e_all[:, i] / e_all.sum(1), rtol=1e-12)


@pytest.mark.parametrize("axis,tiled", [(0, False), (1, False), (-1, False), (0, True), (1, True)])
def test_all_gather_matches_numpy(axis, tiled):
    xs = RNG.standard_normal((4, 2, 3))
    out = fg.vmap(lambda x: lax.all_gather(x, "i", axis=axis, tiled=tiled), axis_name="i")(xs)
    if tiled:
        ref = np.concatenate(list(xs), axis=axis)
    else:
        ref = np.stack(list(xs), axis=axis)
    assert out.shape == (4, *ref.shape)
    for i in range(4):
        np.testing.assert_array_equal(out[i], ref)


@pytest.mark.parametrize("axis,tiled", [(0, False), (1, False), (-1, False), (0, True), (1, True)])
def test_all_gather_over_a_tuple_of_axes_is_row_major(axis, tiled):
    # Instances (i, j) of vmap axes ("a", "b") are gathered in the order axis_index numbers
    # them: i * 3 + j. The reference is a Python loop over the instances.
    xs = RNG.standard_normal((2, 3, 4, 5))
    inner = lambda x: lax.all_gather(x, ("a", "b"), axis=axis, tiled=tiled)
    out = fg.vmap(fg.vmap(inner, axis_name="b"), axis_name="a")(xs)
    blocks = [xs[i, j] for i in range(2) for j in range(3)]
    ref = np.concatenate(blocks, axis=axis) if tiled else np.stack(blocks, axis=axis)
    assert out.shape == (2, 3, *ref.shape)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out[i, j], ref)
    index = lambda x: lax.all_gather(lax.axis_index(("a", "b")), ("a", "b"))
    order = fg.vmap(fg.vmap(index, axis_name="b"), axis_name="a")(xs)
    np.testing.assert_array_equal(order[1, 2], np.arange(6))
    # The transpose sums every instance's cotangent for this instance's block.
    loss = lambda x: fnp.sum(lax.all_gather(x, ("a", "b"), axis=axis, tiled=tiled) ** 2)
    g = fg.jit(fg.vmap(fg.vmap(fg.grad(loss), axis_name="b"), axis_name="a"))(xs)
    np.testing.assert_allclose(g, 6 * 2 * xs, rtol=1e-12)


def test_axis_index_and_unbatched_operands():
    n = XS.shape[0]
    c = np.array([1.0, 2.0, 3.0])
    idx, size, csum, cg = fg.vmap(
        lambda x: (
            lax.axis_index("i"),
            lax.psum(1, "i"),
            lax.psum(c, "i"),  # c does not depend on the mapped input
            lax.all_gather(c, "i"),
        ),
        axis_name="i",
    )(XS)
    np.testing.assert_array_equal(idx, np.arange(n, dtype=np.int32))
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(size, np.full(n, n))
    np.testing.assert_allclose(csum, np.broadcast_to(n * c, (n, 3)))
    np.testing.assert_array_equal(cg, np.broadcast_to(c, (n, n, 3)))


def test_nested_named_axes():
    xs = RNG.standard_normal((3, 4, 2))

    def inner(x):
        return (
            lax.psum(x, "j"),
            lax.psum(x, "i"),
            lax.psum(x, ("i", "j")),
            lax.axis_index(("i", "j")),
        )

    sj, si, sij, idx = fg.vmap(fg.vmap(inner, axis_name="j"), axis_name="i")(xs)
    np.testing.assert_allclose(sj, np.broadcast_to(xs.sum(1, keepdims=True), xs.shape))
    np.testing.assert_allclose(si, np.broadcast_to(xs.sum(0, keepdims=True), xs.shape))
    np.testing.assert_allclose(sij, np.broadcast_to(xs.sum((0, 1), keepdims=True), xs.shape))
    np.testing.assert_array_equal(idx, np.arange(12).reshape(3, 4))


def test_collectives_inside_control_flow():
    def f(x):
        def body(carry, _):
            return carry / lax.psum(fnp.abs(carry), "i"), lax.pmax(carry, "i")

        carry, ys = lax.scan(body, x, None, length=2)
        return lax.cond(x[0] > 0, lambda v: lax.pmean(v, "i"), lambda v: v * 0.0, carry), ys

    out, ys = fg.jit(fg.vmap(f, axis_name="i"))(XS)
    # Reference: the same steps on the whole batch with NumPy.
    c = XS.copy()
    ref_ys = []
    for _ in range(2):
        ref_ys.append(np.broadcast_to(c.max(0), c.shape))
        c = c / np.abs(c).sum(0)
    ref = np.where(XS[:, :1] > 0, np.broadcast_to(c.mean(0), c.shape), 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    np.testing.assert_allclose(ys, np.stack(ref_ys, axis=1), rtol=1e-12)


# ----------------------------------------------------------------------------------------
# Derivatives


def _normalized_loss(xs):
    def f(x):
        return fnp.sum((x / lax.psum(fnp.abs(x), "i")) ** 2) + fnp.sum(lax.pmax(x, "i") * x)

    return fnp.sum(fg.vmap(f, axis_name="i")(xs))


def _normalized_loss_np(xs):
    x = xs / np.abs(xs).sum(0)
    return np.sum(x**2) + np.sum(xs.max(0) * xs)


@pytest.mark.parametrize("jit", [False, True])
def test_grad_outside_vmap_matches_finite_differences(jit):
    g = (fg.jit if jit else (lambda f: f))(fg.grad(_normalized_loss))(XS)
    np.testing.assert_allclose(g, _fd_grad(_normalized_loss_np, XS), rtol=1e-6, atol=1e-8)


def test_gather_grad_matches_finite_differences():
    w = RNG.standard_normal((5, 5, 3))

    def loss(xs):
        gathered = fg.vmap(lambda x: lax.all_gather(x, "i"), axis_name="i")(xs)  # (5, 5, 3)
        return fnp.sum(fnp.sin(gathered) * w)

    ref = _fd_grad(lambda xs: np.sum(np.sin(np.broadcast_to(xs, (5, 5, 3))) * w), XS)
    np.testing.assert_allclose(fg.grad(loss)(XS), ref, rtol=1e-6, atol=1e-8)


def test_grad_inside_vmap_follows_psum_transpose():
    """vmap(grad) with a psum inside: each instance's cotangent is the psum of all (JAX)."""
    n = XS.shape[0]
    g = fg.vmap(fg.grad(lambda x: fnp.sum(lax.psum(x, "i") ** 2)), axis_name="i")(XS)
    np.testing.assert_allclose(g, np.broadcast_to(n * 2 * XS.sum(0), XS.shape), rtol=1e-12)
    # pmean of per-instance gradients (the data-parallel pattern) is the mean gradient.
    g = fg.vmap(lambda x: lax.pmean(fg.grad(lambda v: fnp.sum(v**3))(x), "i"), axis_name="i")(XS)
    np.testing.assert_allclose(g, np.broadcast_to((3 * XS**2).mean(0), XS.shape), rtol=1e-12)
    # all_gather's transpose sums every instance's cotangent for this instance's block.
    g = fg.vmap(fg.grad(lambda x: fnp.sum(lax.all_gather(x, "i") ** 3)), axis_name="i")(XS)
    np.testing.assert_allclose(g, n * 3 * XS**2, rtol=1e-12)


def test_jvp_of_pmax_and_pmin_match_finite_differences():
    t = RNG.standard_normal(XS.shape)
    for coll, np_fn in [(lax.pmax, np.max), (lax.pmin, np.min)]:
        f = fg.vmap(lambda x, c=coll: c(fnp.sin(x), "i"), axis_name="i")
        _, tan = fg.jvp(f, (XS,), (t,))
        eps = 1e-6
        fd = (np_fn(np.sin(XS + eps * t), 0) - np_fn(np.sin(XS - eps * t), 0)) / (2 * eps)
        np.testing.assert_allclose(tan, np.broadcast_to(fd, XS.shape), rtol=1e-6, atol=1e-9)


def test_data_parallel_gradient_equals_full_batch_gradient():
    """pmean of per-shard gradients == the gradient of the mean loss over all shards."""
    w = RNG.standard_normal((3,))
    shards_x = RNG.standard_normal((4, 6, 3))
    shards_y = RNG.standard_normal((4, 6))

    def loss(w, x, y):
        return fnp.mean((x @ w - y) ** 2)

    def shard_grad(w, x, y):
        return lax.pmean(fg.grad(loss)(w, x, y), "data")

    g = fg.jit(fg.vmap(shard_grad, in_axes=(None, 0, 0), axis_name="data"))(w, shards_x, shards_y)
    x_all, y_all = shards_x.reshape(-1, 3), shards_y.reshape(-1)
    ref = 2 * x_all.T @ (x_all @ w - y_all) / len(y_all)
    np.testing.assert_allclose(g, np.broadcast_to(ref, (4, 3)), rtol=1e-10)


# ----------------------------------------------------------------------------------------
# Errors


def test_unbound_axis_name_is_a_clear_error():
    with pytest.raises(NameError, match=r"unbound axis name: 'k'.*vmap\(f, axis_name='k'\)"):
        fg.vmap(lambda x: lax.psum(x, "k"), axis_name="i")(XS)
    with pytest.raises(NameError, match="unbound axis name"):
        fg.jit(lambda x: lax.axis_index("i"))(XS)
    with pytest.raises(NameError, match="unbound axis name"):
        lax.pmean(XS, "i")


def test_bad_operands_are_clear_errors():
    with pytest.raises(TypeError, match="pmax: expected a floating.*bool"):
        fg.vmap(lambda x: lax.pmax(x > 0, "i"), axis_name="i")(XS)
    with pytest.raises(ValueError, match="all_gather: axis=3 is out of range"):
        fg.vmap(lambda x: lax.all_gather(x, "i", axis=3), axis_name="i")(XS)
    with pytest.raises(TypeError, match="axis_name must be hashable"):
        fg.vmap(lambda x: x, axis_name=["i"])


def test_inputs_not_mutated_and_results_fresh():
    xs = XS.copy()
    out = fg.vmap(lambda x: lax.pmax(x, "i"), axis_name="i")(xs)
    out += 1.0
    np.testing.assert_array_equal(xs, XS)
    y = distributed.allreduce(xs)
    assert not np.shares_memory(y, xs)
    np.testing.assert_array_equal(y, XS)  # a world of one process


def test_same_jit_under_two_axis_names():
    """A jitted function batched under one name, then under another, is batched afresh."""
    f = fg.jit(lambda x: lax.psum(x, "i"))
    a = fg.vmap(f, axis_name="i")(XS)
    b = fg.vmap(lambda r: fg.vmap(f, axis_name="j")(r), axis_name="i")(XS[None])
    np.testing.assert_allclose(a, np.broadcast_to(XS.sum(0), XS.shape))
    np.testing.assert_allclose(b[0], np.broadcast_to(XS, XS.shape))
