"""funcgrad.export.to_onnx: ONNX models run by onnxruntime against funcgrad itself.

References: the same function evaluated by funcgrad (eager); onnxruntime must agree within
1e-5 at the example batch size and at other batch sizes (dynamic batch)."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax, nn
from funcgrad import numpy as fnp
from funcgrad.export import to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

KEY = fg.random.key(0)


def _run(model, *args):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(a) for i, a in zip(sess.get_inputs(), args, strict=True)}
    return sess.run(None, feeds)


def _check(fn, example_args, batches, make, tol=1e-5):
    model = to_onnx(fn, *example_args)
    for b in batches:
        args = make(b)
        want = fn(*args)
        want = want if isinstance(want, tuple | list) else (want,)
        got = _run(model, *args)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            w = np.asarray(w)
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    return model


def test_mlp_matches_funcgrad(tmp_path):
    rng = np.random.default_rng(0)
    mlp = nn.Sequential([nn.Dense(32), nn.relu, nn.Dense(16), nn.gelu, nn.Dense(3), nn.softmax])
    x = rng.normal(size=(4, 10)).astype(np.float32)
    params = mlp.init(KEY, x)
    fn = fg.jit(lambda x: mlp.apply(params, x))
    model = _check(fn, (x,), (4, 1, 9), lambda b: (rng.normal(size=(b, 10)).astype(np.float32),))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 10
    # written atomically to a path, and the file is a valid model
    to_onnx(fn, x, path=tmp_path / "mlp.onnx")
    onnx.checker.check_model(str(tmp_path / "mlp.onnx"))


def test_cnn_matches_funcgrad():
    rng = np.random.default_rng(1)
    cnn = nn.Sequential(
        [
            nn.Conv2D(8, (3, 3), padding="SAME"),
            nn.relu,
            nn.MaxPool2D((2, 2)),
            nn.Conv2D(4, (3, 3), strides=(2, 2)),
            nn.elu,
            nn.AvgPool2D((1, 1)),
            nn.Flatten(),
            nn.Dense(5),
            nn.log_softmax,
        ]
    )
    x = rng.normal(size=(2, 12, 12, 3)).astype(np.float32)
    params = cnn.init(KEY, x)
    _check(
        lambda x: cnn.apply(params, x),
        (x,),
        (2, 5),
        lambda b: (rng.normal(size=(b, 12, 12, 3)).astype(np.float32),),
    )


def test_embedding_model_matches_funcgrad():
    rng = np.random.default_rng(2)
    model = nn.Sequential([nn.Embedding(50, 8), nn.LayerNorm(), nn.Dense(8), nn.silu])
    ids = rng.integers(0, 50, size=(3, 7)).astype(np.int32)
    params = model.init(KEY, ids)

    def fn(ids):
        h = model.apply(params, ids)  # (b, 7, 8)
        return fnp.mean(h, axis=1), fnp.argmax(h.sum(-1), axis=-1)

    _check(fn, (ids,), (3, 1, 11), lambda b: (rng.integers(0, 50, size=(b, 7)).astype(np.int32),))


def test_primitive_coverage():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    table = rng.normal(size=(5, 3)).astype(np.float32)

    def fn(x, i):
        a = fnp.exp(-fnp.abs(x)) + fnp.log1p(x * x) + fnp.sqrt(fnp.abs(x)) - fnp.expm1(x / 4)
        a = fnp.where(x > 0, a, fnp.sin(x) * fnp.cos(x)) + lax.rsqrt(x * x + 1.0)
        b = fnp.concatenate([a, a[:, ::-1], a[:, 1:3]], axis=1)  # slices, rev, concat
        c = fnp.pad(b, ((0, 0), (1, 2)))
        d = (x @ w).T  # (6, b)
        e = fnp.einsum("bi,bj->bij", x, x).sum(axis=(1, 2))  # batched dot_general
        f = fnp.take(table, i, axis=0).max(-1) + fnp.arange(x.shape[0]).astype(np.float32)
        g = fnp.clip(x, -0.5, 0.5) ** 3 + fnp.maximum(x, 0.1) + fnp.floor(x) * fnp.round(x)
        h = fnp.cumsum(x, axis=1) + fnp.tanh(x) + nn.sigmoid(x) + nn.softplus(x)
        k = (x.max(0) - x.min(0)) / fnp.mean(x, axis=0)  # reductions over the batch axis
        flags = fnp.logical_and(x > -1, x != 0).any(axis=1)
        return c, d, e + f, g + h, k, flags, x.reshape(-1, 2).astype(np.int32)

    x = rng.normal(size=(4, 4)).astype(np.float32)
    i = np.array([0, 4, 2, 1], np.int32)

    def make(b):
        return (
            rng.normal(size=(b, 4)).astype(np.float32),
            rng.integers(0, 5, size=b).astype(np.int32),
        )

    _check(fn, (x, i), (4, 7), make)


ACTIVATIONS = [
    "relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "softplus",
    "soft_sign", "log_sigmoid", "hard_tanh", "sigmoid", "softmax", "log_softmax", "logsumexp",
    "standardize",
]  # fmt: skip


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_nn_activations(name):
    rng = np.random.default_rng(4)
    fn = getattr(nn, name)
    _check(fn, (rng.normal(size=(3, 6)).astype(np.float32),), (3, 8),
           lambda b: (3 * rng.normal(size=(b, 6)).astype(np.float32),))  # fmt: skip


LOSSES = [
    ("mse", "float"), ("mae", "float"), ("huber", "float"), ("softmax_cross_entropy", "probs"),
    ("sigmoid_binary_cross_entropy", "binary"), ("binary_cross_entropy", "unit"),
    ("softmax_cross_entropy_with_integer_labels", "labels"),
]  # fmt: skip


@pytest.mark.parametrize("name,target", LOSSES)
def test_losses(name, target):
    rng = np.random.default_rng(5)
    fn = getattr(fg.losses, name)

    def make(b):
        x = rng.normal(size=(b, 6)).astype(np.float32)
        if target == "labels":
            return x, rng.integers(0, 6, size=b).astype(np.int32)
        if target == "probs":
            return x, nn.softmax(rng.normal(size=(b, 6)).astype(np.float32))
        if target == "binary":
            return x, (rng.random((b, 6)) > 0.5).astype(np.float32)
        if target == "unit":
            return nn.sigmoid(x), (rng.random((b, 6)) > 0.5).astype(np.float32)
        return x, rng.normal(size=(b, 6)).astype(np.float32)

    _check(fn, make(4), (4, 9), make)


def test_static_batch_and_unsupported_primitives():
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    model = to_onnx(lambda x: x.reshape(-1) * 2.0, x, dynamic_batch=False)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    np.testing.assert_allclose(_run(model, x)[0], x.reshape(-1) * 2.0)
    with pytest.raises(fg.export.ExportError, match="dynamic_batch=False"):
        to_onnx(lambda x: x[: x.shape[0] // 2], x)
    with pytest.raises(NotImplementedError, match="'sort'"):
        to_onnx(lambda x: fnp.sort(x, axis=1), x)
    with pytest.raises(NotImplementedError, match="'scan'"):
        to_onnx(lambda x: lax.fori_loop(0, 3, lambda i, c: c * 2.0, x), x)
