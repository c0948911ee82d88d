"""funcgrad.nn: initializers, convolution/pooling, layers.

References: initializer statistics against their closed-form variances and bounds;
convolution against a direct NumPy loop (one ``einsum`` per output pixel) and
``lax.conv_general_dilated`` layouts against transposes of that; pooling against NumPy loops;
layers against NumPy expressions of their formulas (``x @ W + b``, batch/layer
normalisation, ``np.add.at`` for the embedding gradient); gradients against central finite
differences (``tests.helpers.check_grads``). Everything runs eagerly (no compiles).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax, nn
from funcgrad.nn import initializers as init
from tests.helpers import check_grads

KEY = fg.random.key(0)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------
# Initializers


@pytest.mark.parametrize(
    "make,scale,mode,dist",
    [
        (init.glorot_uniform, 1.0, "fan_avg", "uniform"),
        (init.glorot_normal, 1.0, "fan_avg", "truncated_normal"),
        (init.lecun_uniform, 1.0, "fan_in", "uniform"),
        (init.lecun_normal, 1.0, "fan_in", "truncated_normal"),
        (init.he_uniform, 2.0, "fan_in", "uniform"),
        (init.he_normal, 2.0, "fan_in", "truncated_normal"),
    ],
)
def test_variance_scaling_statistics(make, scale, mode, dist):
    shape = (3, 3, 40, 60)  # HWIO: fan_in = 9 * 40, fan_out = 9 * 60
    w = make()(KEY, shape)
    assert w.shape == shape and w.dtype == np.float32
    fan_in, fan_out = 9 * 40, 9 * 60
    n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    var = scale / n
    # 21,600 samples: the sample variance is within ~3% (5 standard errors)
    assert abs(w.var() / var - 1) < 0.05
    assert abs(w.mean()) < 5 * np.sqrt(var / w.size)
    if dist == "uniform":
        limit = np.sqrt(3 * var)
        assert np.all(np.abs(w) <= limit) and np.abs(w).max() > 0.99 * limit
    else:
        stddev = np.sqrt(var) / 0.87962566103423978
        assert np.all(np.abs(w) < 2 * stddev * (1 + 1e-6))


def test_initializer_basics():
    assert init.zeros(KEY, (2, 3)).tolist() == [[0.0] * 3] * 2
    assert init.ones(KEY, (2,), np.float64).dtype == np.float64
    np.testing.assert_array_equal(init.constant(1.5)(KEY, (2, 2)), np.full((2, 2), 1.5, np.float32))
    w = init.normal(0.5)(KEY, (200, 100))
    assert w.dtype == np.float32 and abs(w.std() / 0.5 - 1) < 0.03
    u = init.uniform(2.0)(KEY, (1000,))
    assert u.min() >= 0 and u.max() < 2.0 and u.max() > 1.9
    t = init.truncated_normal(1.0)(KEY, (1000,))
    assert np.all(np.abs(t) < 2)
    # same key, same values; another key, other values; float64 on request
    a, b = init.he_normal()(KEY, (4, 5)), init.he_normal()(KEY, (4, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, init.he_normal()(fg.random.key(1), (4, 5)))
    assert init.glorot_uniform()(KEY, (4, 5), np.float64).dtype == np.float64
    assert init.glorot_uniform(dtype=np.float64)(KEY, (4, 5)).dtype == np.float64


def test_initializer_errors():
    with pytest.raises(ValueError, match="rank >= 2"):
        init.glorot_uniform()(KEY, (5,))
    with pytest.raises(TypeError, match="float dtype"):
        init.normal()(KEY, (2,), np.int32)
    with pytest.raises(ValueError, match="mode"):
        init.variance_scaling(1.0, "fan_sum", "normal")


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 3, 2, 5)])
def test_orthogonal(shape):
    w = init.orthogonal(scale=2.0)(KEY, shape)
    assert w.shape == shape and w.dtype == np.float32
    m = w.reshape(-1, shape[-1]) / 2.0
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


# ----------------------------------------------------------------------------------------
# Convolution and pooling against NumPy loops


def conv_ref(x, w, strides=(1, 1), pads=((0, 0), (0, 0)), dil=(1, 1), lhs_dil=(1, 1)):
    """NHWC x HWIO -> NHWC, by a loop over output pixels."""
    n, h, wd, c = x.shape
    if lhs_dil != (1, 1):
        xd = np.zeros((n, (h - 1) * lhs_dil[0] + 1, (wd - 1) * lhs_dil[1] + 1, c), x.dtype)
        xd[:, :: lhs_dil[0], :: lhs_dil[1]] = x
        x = xd
    xp = np.pad(x.astype(np.float64), ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    kh, kw, _, o = w.shape
    eh, ew = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    ho = (xp.shape[1] - eh) // strides[0] + 1
    wo = (xp.shape[2] - ew) // strides[1] + 1
    out = np.zeros((n, ho, wo, o))
    for i in range(ho):
        for j in range(wo):
            r, s = i * strides[0], j * strides[1]
            patch = xp[:, r : r + eh : dil[0], s : s + ew : dil[1], :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def pool_ref(x, window, strides, pads, op, fill):
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    ho = (xp.shape[1] - window[0]) // strides[0] + 1
    wo = (xp.shape[2] - window[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    for i in range(ho):
        for j in range(wo):
            r, s = i * strides[0], j * strides[1]
            out[:, i, j] = op(xp[:, r : r + window[0], s : s + window[1]], axis=(1, 2))
    return out


@pytest.mark.parametrize(
    "strides,padding,dil",
    [
        ((1, 1), "VALID", (1, 1)),
        ((2, 1), "SAME", (1, 1)),
        ((2, 3), "VALID", (1, 1)),
        ((1, 1), "SAME", (2, 1)),
        ((1, 2), ((1, 2), (0, 1)), (1, 1)),
    ],
)
def test_conv2d_matches_numpy_loop(strides, padding, dil):
    x = rng(1).normal(size=(2, 7, 8, 3)).astype(np.float32)
    w = rng(2).normal(size=(3, 2, 3, 4)).astype(np.float32)
    y = nn.conv2d(x, w, strides, padding, kernel_dilation=dil)
    eff = ((3 - 1) * dil[0] + 1, (2 - 1) * dil[1] + 1)
    if isinstance(padding, str):
        # SAME: output size ceil(in / stride), the odd pad element at the end (as JAX/TF)
        pads = []
        for n, k, s in zip((7, 8), eff, strides, strict=True):
            total = max((-(-n // s) - 1) * s + k - n, 0) if padding == "SAME" else 0
            pads.append((total // 2, total - total // 2))
    else:
        pads = padding
    ref = conv_ref(x, w, strides, pads, dil)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    if padding == "SAME":
        assert y.shape[1:3] == (-(-7 // strides[0]), -(-8 // strides[1]))


def test_conv_general_dilated_layouts_groups_and_lhs_dilation():
    x = rng(3).normal(size=(2, 6, 5, 4)).astype(np.float32)  # NHWC
    w = rng(4).normal(size=(3, 3, 4, 6)).astype(np.float32)  # HWIO
    ref = conv_ref(x, w, (1, 2), ((1, 1), (0, 0)))
    # default NCHW / OIHW / NCHW
    y = lax.conv_general_dilated(
        x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), (1, 2), ((1, 1), (0, 0))
    )
    np.testing.assert_allclose(y.transpose(0, 2, 3, 1), ref, rtol=1e-5, atol=1e-5)
    # string specs, with an output layout that differs from the input's
    y = lax.conv_general_dilated(
        x, w, (1, 2), ((1, 1), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NCHW")
    )
    np.testing.assert_allclose(y.transpose(0, 2, 3, 1), ref, rtol=1e-5, atol=1e-5)
    # feature groups: each half of the inputs feeds its half of the outputs
    wg = rng(5).normal(size=(3, 3, 2, 6)).astype(np.float32)
    y = lax.conv_general_dilated(
        x, wg, (1, 1), "VALID", feature_group_count=2, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    ref_g = np.concatenate(
        [conv_ref(x[..., :2], wg[..., :3]), conv_ref(x[..., 2:], wg[..., 3:])], axis=-1
    )
    np.testing.assert_allclose(y, ref_g, rtol=1e-5, atol=1e-5)
    # lhs_dilation (a transposed convolution)
    y = lax.conv_general_dilated(
        x,
        w,
        (1, 1),
        ((2, 2), (2, 2)),
        lhs_dilation=(2, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    ref_t = conv_ref(x, w, pads=((2, 2), (2, 2)), lhs_dil=(2, 2))
    np.testing.assert_allclose(y, ref_t, rtol=1e-5, atol=1e-5)
    # 1-d convolution (NWC)
    y1 = lax.conv_general_dilated(
        x[:, 0], w[0], (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
    )
    np.testing.assert_allclose(
        y1, conv_ref(x[:, :1], w[:1], pads=((0, 0), (1, 1)))[:, 0], rtol=1e-5, atol=1e-5
    )


def test_conv_errors():
    x = np.zeros((1, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match="features"):
        lax.conv_general_dilated(
            x,
            np.zeros((3, 3, 2, 4), np.float32),
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
    with pytest.raises(TypeError, match="one dtype"):
        lax.conv_general_dilated(
            x, np.zeros((3, 3, 3, 4)), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    with pytest.raises(ValueError, match="window must fit"):
        nn.conv2d(x, np.zeros((7, 7, 3, 1), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        nn.conv2d(x[0], np.zeros((3, 3, 3, 1), np.float32))


def test_conv_gradients_and_vmap():
    x = rng(6).normal(size=(1, 4, 5, 2))
    w = rng(7).normal(size=(2, 3, 2, 3))
    f = lambda x, w: nn.conv2d(x, w, strides=(2, 1), padding="SAME")
    check_grads(f, (x, w), order=1, modes=("rev",))
    check_grads(lambda x: nn.max_pool(x, (2, 2), padding="SAME"), (x,), order=1, modes=("rev",))
    check_grads(lambda x: nn.avg_pool(x, (2, 3), strides=1), (x,), order=1, modes=("rev",))
    # vmap over examples equals the batched convolution
    xb = rng(8).normal(size=(3, 5, 5, 2)).astype(np.float32)
    wf = w.astype(np.float32)
    per_example = fg.vmap(lambda xi: nn.conv2d(xi[None], wf)[0])(xb)
    np.testing.assert_allclose(per_example, nn.conv2d(xb, wf), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "window,strides,padding",
    [((2, 2), None, "VALID"), ((3, 2), (2, 1), "SAME"), ((2, 2), (1, 1), ((1, 0), (0, 1)))],
)
def test_pooling_matches_numpy_loop(window, strides, padding):
    x = rng(9).normal(size=(2, 5, 6, 3)).astype(np.float32)
    s = window if strides is None else strides
    if padding == "SAME":
        pads = []
        for n, k, st in zip((5, 6), window, s, strict=True):
            total = max((-(-n // st) - 1) * st + k - n, 0)
            pads.append((total // 2, total - total // 2))
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = list(padding)
    np.testing.assert_array_equal(
        nn.max_pool(x, window, strides, padding), pool_ref(x, window, s, pads, np.max, -np.inf)
    )
    total = pool_ref(x, window, s, pads, np.sum, 0.0)
    np.testing.assert_allclose(
        nn.avg_pool(x, window, strides, padding), total / np.prod(window), rtol=1e-6, atol=1e-6
    )
    counts = pool_ref(np.ones_like(x), window, s, pads, np.sum, 0.0)
    np.testing.assert_allclose(
        nn.avg_pool(x, window, strides, padding, count_include_pad=False),
        total / counts,
        rtol=1e-6,
        atol=1e-6,
    )


def test_reduce_window_general():
    x = rng(10).normal(size=(6, 7)).astype(np.float32)
    # window 3x2 with window dilation (2, 1), strides (1, 2), sum
    y = lax.reduce_window(x, 0.0, lax.add, (3, 2), (1, 2), "VALID", window_dilation=(2, 1))
    ref = np.array([[x[i : i + 5 : 2, j : j + 2].sum() for j in range(0, 6, 2)] for i in range(2)])
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    # base dilation inserts init values between elements
    y = lax.reduce_window(x, -np.inf, lax.max, (2, 1), (1, 1), "VALID", base_dilation=(2, 1))
    assert y.shape == (10, 7)
    np.testing.assert_array_equal(y[::2], x[:-1])


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_reduce_window_tiling_windows(dtype):
    # strides == window, no padding: the reshape + reduction path, ragged edges dropped
    x = (rng(12).normal(size=(2, 7, 9, 3)) * 10).astype(dtype)
    view = x[:, :6, :8].reshape(2, 3, 2, 4, 2, 3)
    win, st = (1, 2, 2, 1), (1, 2, 2, 1)
    lo = -np.inf if dtype == np.float32 else np.iinfo(dtype).min
    hi = np.inf if dtype == np.float32 else np.iinfo(dtype).max
    np.testing.assert_array_equal(
        lax.reduce_window(x, lo, lax.max, win, st, "VALID"), view.max((2, 4))
    )
    np.testing.assert_array_equal(
        lax.reduce_window(x, hi, lax.min, win, st, "VALID"), view.min((2, 4))
    )
    np.testing.assert_allclose(
        lax.reduce_window(x, 0, lax.add, win, st, "VALID"), view.sum((2, 4)), rtol=1e-6
    )
    # an init that is not the identity still takes part, as in the generic loop
    np.testing.assert_array_equal(
        lax.reduce_window(x, dtype(3), lax.max, win, st, "VALID"),
        np.maximum(view.max((2, 4)), 3),
    )
    if dtype == np.float32:
        # the gradient of a max shares ties equally, like the chained maxima it replaces
        t = np.zeros((1, 2, 2, 1), np.float32)
        t[0, 0, :, 0] = 1.0  # two tied maxima in the one window
        g = fg.grad(lambda t: nn.max_pool(t, (2, 2)).sum())(t)
        np.testing.assert_allclose(g[0, :, :, 0], [[0.5, 0.5], [0.0, 0.0]])
        check_grads(lambda x: nn.max_pool(x, (2, 2)), (x.astype(np.float64),), order=1)


# ----------------------------------------------------------------------------------------
# Layers


def test_dense_matches_numpy_and_defaults():
    x = rng(11).normal(size=(5, 3)).astype(np.float32)
    layer = nn.Dense(4)
    p = layer.init(KEY, x)
    assert p["kernel"].shape == (3, 4) and p["bias"].shape == (4,)
    assert p["kernel"].dtype == np.float32 and not p["bias"].any()
    p = {"kernel": p["kernel"], "bias": rng(12).normal(size=4).astype(np.float32)}
    y = layer.apply(p, x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x @ p["kernel"] + p["bias"], rtol=1e-6)
    # any leading axes; integer inputs are cast to the parameters' dtype
    x3 = rng(13).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(p, x3), x3 @ p["kernel"] + p["bias"], rtol=1e-6)
    assert layer.apply(p, np.ones((2, 3), np.int32)).dtype == np.float32
    no_bias = nn.Dense(2, use_bias=False)
    assert list(no_bias.init(KEY, x)) == ["kernel"]
    with pytest.raises(ValueError, match="3 features|takes 3"):
        layer.apply(p, np.ones((2, 5), np.float32))


def test_conv2d_layer_and_pool_layers():
    x = rng(14).normal(size=(2, 8, 8, 3)).astype(np.float32)
    layer = nn.Conv2D(5, kernel_size=3, strides=2, padding="SAME")
    p = layer.init(KEY, x)
    assert p["kernel"].shape == (3, 3, 3, 5) and p["bias"].shape == (5,)
    y = layer.apply(p, x)
    ref = conv_ref(x, p["kernel"], (2, 2), ((0, 1), (0, 1))) + p["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert nn.MaxPool2D(2).apply({}, y).shape == (2, 2, 2, 5)
    assert nn.AvgPool2D(2, strides=1).apply({}, y).shape == (2, 3, 3, 5)
    assert nn.Flatten().apply({}, y).shape == (2, 80)
    with pytest.raises(ValueError, match="NHWC"):
        layer.init(KEY, x[0])


def test_dropout():
    x = np.ones((200, 50), np.float32)
    d = nn.Dropout(0.25)
    same = d.apply({}, x)  # inference: identity, as a fresh array
    np.testing.assert_array_equal(same, x)
    assert not np.shares_memory(same, x)
    y = d.apply({}, x, key=KEY, train=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(y, d.apply({}, x, key=KEY, train=True))  # same key
    assert not np.array_equal(y, d.apply({}, x, key=fg.random.key(1), train=True))
    assert not nn.Dropout(1.0).apply({}, x, key=KEY, train=True).any()
    with pytest.raises(ValueError, match="needs a random key"):
        d.apply({}, x, train=True)
    with pytest.raises(ValueError, match="rate"):
        nn.Dropout(1.5)


def test_batchnorm_train_eval_and_running_stats():
    x = (3 + 2 * rng(15).normal(size=(64, 4, 4, 3))).astype(np.float32)
    bn = nn.BatchNorm(momentum=0.9)
    params, state = bn.init_with_state(KEY, x)
    params = {
        "scale": np.array([1.0, 2.0, 0.5], np.float32),
        "bias": np.array([0.0, 1.0, -1.0], np.float32),
    }
    y, new_state = bn.apply_with_state(params, state, x, train=True)
    mean = x.astype(np.float64).mean(axis=(0, 1, 2))
    var = x.astype(np.float64).var(axis=(0, 1, 2))
    ref = (x - mean) / np.sqrt(var + 1e-5) * params["scale"] + params["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new_state["mean"], 0.9 * 0 + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new_state["var"], 0.9 * 1 + 0.1 * var, rtol=1e-5)
    assert new_state["mean"].dtype == np.float32
    # inference uses the running statistics
    y_eval, same = bn.apply_with_state(params, new_state, x)
    ref_eval = (x - new_state["mean"]) / np.sqrt(new_state["var"] + 1e-5) * params[
        "scale"
    ] + params["bias"]
    np.testing.assert_allclose(y_eval, ref_eval, rtol=1e-4, atol=1e-4)
    assert same is new_state
    # apply without state: training works (batch statistics), inference needs the state
    np.testing.assert_allclose(bn.apply(params, x, train=True), y, rtol=1e-6)
    with pytest.raises(ValueError, match="init_with_state"):
        bn.apply(params, x)
    # the running statistics do not take part in the gradient
    g = fg.grad(lambda p: bn.apply_with_state(p, state, x, train=True)[0].sum())(params)
    assert set(g) == {"scale", "bias"}
    check_grads(
        lambda x: nn.BatchNorm().apply({"scale": np.ones(3), "bias": np.zeros(3)}, x, train=True),
        (rng(16).normal(size=(5, 3)),),
        order=1,
        modes=("rev",),
    )


def test_layernorm():
    x = rng(17).normal(size=(4, 6)).astype(np.float32) * 3 + 1
    ln = nn.LayerNorm()
    p = ln.init(KEY, x)
    p = {"scale": np.linspace(0.5, 2, 6).astype(np.float32), "bias": np.ones(6, np.float32)}
    mean = x.mean(-1, keepdims=True)
    ref = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * p["scale"] + p["bias"]
    np.testing.assert_allclose(ln.apply(p, x), ref, rtol=1e-5, atol=1e-5)


def test_embedding_lookup_and_gradient():
    emb = nn.Embedding(10, 3)
    ids = np.array([[1, 4, 1], [9, 0, 4]])
    p = emb.init(KEY, ids)
    assert p["embedding"].shape == (10, 3) and p["embedding"].dtype == np.float32
    np.testing.assert_array_equal(emb.apply(p, ids), p["embedding"][ids])
    ct = rng(18).normal(size=(2, 3, 3)).astype(np.float32)
    g = fg.grad(lambda p: (emb.apply(p, ids) * ct).sum())(p)["embedding"]
    ref = np.zeros((10, 3), np.float32)
    np.add.at(ref, ids, ct)
    np.testing.assert_allclose(g, ref, rtol=1e-6)
    with pytest.raises(TypeError, match="integers"):
        emb.apply(p, ids.astype(np.float32))


def test_sequential_seed_model():
    x = rng(19).normal(size=(8, 3)).astype(np.float32)
    model = nn.Sequential([nn.Dense(10), nn.relu, nn.Dense(1)])
    params = model.init(KEY, x[:1])
    assert isinstance(params, list) and params[1] == {}
    assert params[0]["kernel"].shape == (3, 10) and params[2]["kernel"].shape == (10, 1)
    h = np.maximum(x @ params[0]["kernel"] + params[0]["bias"], 0)
    np.testing.assert_allclose(
        model.apply(params, x), h @ params[2]["kernel"] + params[2]["bias"], rtol=1e-5, atol=1e-6
    )
    # a configuration, not a container of arrays: hashable, no pytree leaves
    assert fg.tree_util.tree_leaves(model) == [] and hash(model) == hash(
        nn.Sequential([nn.Dense(10), nn.relu, nn.Dense(1)])
    )
    assert repr(model) == "Sequential([Dense(10), relu, Dense(1)])"
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.layers = ()
    # gradients against finite differences, in float64
    model64 = nn.Sequential(
        [nn.Dense(4, param_dtype=np.float64), fg.numpy.tanh, nn.Dense(1, param_dtype=np.float64)]
    )
    p64 = model64.init(KEY, x.astype(np.float64))
    check_grads(
        lambda p: ((model64.apply(p, x.astype(np.float64)) - 1.0) ** 2).mean(),
        (p64,),
        order=1,
        modes=("rev",),
    )


def test_sequential_cnn_with_state_keys_and_functions():
    x = rng(20).normal(size=(4, 8, 8, 1)).astype(np.float32)
    model = nn.Sequential(
        [
            nn.Conv2D(4, 3, padding="SAME"),
            nn.BatchNorm(),
            nn.relu,
            nn.MaxPool2D(2),
            nn.Dropout(0.5),
            nn.Flatten(),
            lambda h: h * 2.0,
            nn.Dense(3),
        ]
    )
    params, state = model.init_with_state(KEY, x)
    assert [bool(s) for s in state] == [False, True] + [False] * 6
    assert params[7]["kernel"].shape == (64, 3)
    y, new_state = model.apply_with_state(params, state, x, key=KEY, train=True)
    assert y.shape == (4, 3) and y.dtype == np.float32
    assert not np.allclose(new_state[1]["mean"], state[1]["mean"])
    # dropout is on in training only, and driven by the key
    y2, _ = model.apply_with_state(params, state, x, key=fg.random.key(5), train=True)
    assert not np.allclose(y, y2)
    e1, _ = model.apply_with_state(params, new_state, x)
    e2, _ = model.apply_with_state(params, new_state, x)
    np.testing.assert_array_equal(e1, e2)
    with pytest.raises(ValueError, match="entries for 8 layers"):
        model.apply(params[:3], x, train=True)


def test_custom_module_subclass():
    class Scale(nn.Module):
        factor: float = 2.0

        def init(self, key, x):
            return {"w": np.full(x.shape[-1], self.factor, np.float32)}

        def apply(self, params, x, *, key=None, train=False):
            return x * params["w"]

    layer = Scale(3.0)
    assert dataclasses.is_dataclass(layer) and repr(layer) == "Scale(factor=3.0)"
    model = nn.Sequential([layer, nn.Dense(2)])
    p = model.init(KEY, np.ones((1, 4), np.float32))
    np.testing.assert_array_equal(p[0]["w"], np.full(4, 3.0, np.float32))
    assert model.apply(p, np.ones((5, 4), np.float32)).shape == (5, 2)

    class Nothing(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="neither init"):
        Nothing().init(KEY, np.ones(3))


def test_layers_compose_with_transformations():
    x = rng(21).normal(size=(6, 3)).astype(np.float32)
    y = rng(22).normal(size=(6, 1)).astype(np.float32)
    model = nn.Sequential([nn.Dense(5), nn.gelu, nn.Dense(1)])
    params = model.init(KEY, x)
    # the model is a leafless pytree: it can be an ordinary argument of a transformation
    closed = fg.make_jaxpr(lambda m, p, x: m.apply(p, x))(model, params, x)
    assert closed.out_avals[0].str_short() == "f32[6,1]"
    # per-example gradients with vmap agree with a loop over examples
    loss = lambda p, xi, yi: ((model.apply(p, xi) - yi) ** 2).sum()
    per_example = fg.vmap(fg.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    for i in range(6):
        gi = fg.grad(loss)(params, x[i], y[i])
        np.testing.assert_allclose(
            per_example[0]["kernel"][i], gi[0]["kernel"], rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("module", ["funcgrad.lax", "funcgrad.nn.layers", "funcgrad.train"])
def test_fresh_imports_have_no_cycle(module):
    # funcgrad.lax and funcgrad.nn.conv both export conv_general_dilated and reduce_window
    code = f"import {module}; import funcgrad.lax as l; l.conv_general_dilated; l.reduce_window"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
