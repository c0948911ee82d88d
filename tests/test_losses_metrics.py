"""funcgrad.losses and funcgrad.metrics against NumPy formulas (float64 references),
closed-form gradients, and the shape/dtype conventions. Eager only."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import losses, metrics


def rng(seed=0):
    return np.random.default_rng(seed)


def np_log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def test_regression_losses_match_numpy():
    p = rng(1).normal(size=(6, 2)).astype(np.float32)
    t = rng(2).normal(size=(6, 2)).astype(np.float32)
    e = p.astype(np.float64) - t
    for fn, ref in [
        (losses.mse, e**2),
        (losses.mae, np.abs(e)),
        (losses.huber, np.where(np.abs(e) <= 1, 0.5 * e**2, np.abs(e) - 0.5)),
    ]:
        out = fn(p, t)
        assert np.asarray(out).dtype == np.float32 and np.ndim(out) == 0
        np.testing.assert_allclose(out, ref.mean(), rtol=1e-6)
        np.testing.assert_allclose(fn(p, t, reduction="sum"), ref.sum(), rtol=1e-6)
        np.testing.assert_allclose(fn(p, t, reduction="none"), ref, rtol=1e-6, atol=1e-7)
    d = 0.3
    ref = np.where(np.abs(e) <= d, 0.5 * e**2, d * (np.abs(e) - 0.5 * d))
    np.testing.assert_allclose(losses.huber(p, t, delta=d), ref.mean(), rtol=1e-6)
    assert losses.mean_squared_error is losses.mse
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(p, t, reduction="avg")


def test_shape_rule_trailing_one_and_mismatch():
    p = np.arange(4, dtype=np.float32).reshape(4, 1)
    t = np.array([0, 1, 2, 4])  # ints: cast to the predictions' dtype
    # (N, 1) against (N,) compares example by example, not (N, N) broadcasting
    assert float(losses.mse(p, t)) == pytest.approx(0.25)
    assert float(losses.mse(t.astype(np.float32), p)) == pytest.approx(0.25)
    assert np.asarray(losses.mse(p, t)).dtype == np.float32
    assert float(losses.mse(p, 1.0)) == pytest.approx(np.mean((np.arange(4) - 1.0) ** 2))
    with pytest.raises(ValueError, match=r"f32\[4,1\].*different shapes"):
        losses.mse(p, np.zeros(3))


def test_binary_cross_entropies():
    z = np.array([-30.0, -2.0, 0.0, 0.5, 3.0, 40.0], np.float32)
    y = np.array([1, 0, 1, 1, 0, 0], np.float32)
    z64 = z.astype(np.float64)
    # stable reference: log(1 + exp(z)) - y z
    ref = np.logaddexp(0, z64) - y * z64
    out = losses.sigmoid_binary_cross_entropy(z, y, reduction="none")
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    # gradient: (sigmoid(z) - y) / N
    g = fg.grad(lambda z: losses.sigmoid_binary_cross_entropy(z, y))(z)
    np.testing.assert_allclose(g, (1 / (1 + np.exp(-z64)) - y) / 6, rtol=1e-5, atol=1e-8)
    # from probabilities, away from the clipping
    p = 1 / (1 + np.exp(-z64[1:5]))
    ref = -(y[1:5] * np.log(p) + (1 - y[1:5]) * np.log(1 - p))
    np.testing.assert_allclose(
        losses.binary_cross_entropy(p.astype(np.float32), y[1:5]), ref.mean(), rtol=1e-5
    )
    # probabilities of exactly 0 and 1 are clipped: finite loss
    assert np.isfinite(losses.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1, 0])))


def test_softmax_cross_entropies():
    z = (rng(3).normal(size=(5, 4)) * 10).astype(np.float32)
    z[0, 0] = 500.0  # large logits stay finite
    labels = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4, dtype=np.float32)[labels]
    ref = -(np_log_softmax(z) * onehot).sum(-1)
    a = losses.softmax_cross_entropy(z, onehot, reduction="none")
    b = losses.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none")
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, ref, rtol=1e-5, atol=1e-5)
    assert np.asarray(losses.softmax_cross_entropy(z, onehot)).dtype == np.float32
    # gradient: (softmax - onehot) / N
    g = fg.grad(lambda z: losses.softmax_cross_entropy_with_integer_labels(z, labels))(z)
    np.testing.assert_allclose(g, (np.exp(np_log_softmax(z)) - onehot) / 5, atol=1e-6)
    # soft labels
    soft = np.full((5, 4), 0.25, np.float32)
    np.testing.assert_allclose(
        losses.softmax_cross_entropy(z, soft), -(np_log_softmax(z) * 0.25).sum(-1).mean(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="integer_labels"):
        losses.softmax_cross_entropy(z, labels)
    with pytest.raises(ValueError, match="one-hot"):
        losses.softmax_cross_entropy_with_integer_labels(z, onehot)
    with pytest.raises(TypeError, match="integers"):
        losses.softmax_cross_entropy_with_integer_labels(z, labels.astype(np.float32))


def test_accuracy():
    logits = np.array(
        [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]], np.float32
    )
    labels = np.array([0, 1, 1, 2])
    assert float(metrics.accuracy(logits, labels)) == 0.5
    probs = np.exp(np_log_softmax(logits))
    assert float(metrics.accuracy(probs, labels)) == 0.5
    assert float(metrics.accuracy(logits, np.eye(3)[labels])) == 0.5
    with pytest.raises(ValueError, match="binary_accuracy"):
        metrics.accuracy(logits[:, :1], labels)
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy(logits, labels[:3])


def test_binary_accuracy_and_regression_metrics():
    probs = np.array([[0.9], [0.2], [0.6], [0.4]], np.float32)
    y = np.array([1, 0, 0, 0])
    assert float(metrics.binary_accuracy(probs, y)) == 0.75
    logits = np.log(probs / (1 - probs))
    assert float(metrics.binary_accuracy(logits, y, threshold=0.0)) == 0.75
    p = rng(4).normal(size=20)
    t = p + rng(5).normal(size=20) * 0.3
    np.testing.assert_allclose(metrics.mse(p, t), np.mean((p - t) ** 2))
    np.testing.assert_allclose(metrics.rmse(p, t), np.sqrt(np.mean((p - t) ** 2)))
    np.testing.assert_allclose(metrics.mae(p, t), np.mean(np.abs(p - t)))
    # r2: 1 - SS_res / SS_tot, predictions first
    r2 = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
    np.testing.assert_allclose(metrics.r2_score(p, t), r2, rtol=1e-12)
    assert float(metrics.r2_score(t, t)) == 1.0
    np.testing.assert_allclose(metrics.r2_score(np.full(20, t.mean()), t), 0.0, atol=1e-12)
