"""funcgrad.train: fit / evaluate / predict and History.

References: linear regression against the closed-form least-squares solution
(``np.linalg.lstsq``); logistic regression against a hand-written NumPy full-batch gradient
descent; the seed model (Dense(10, relu) -> Dense(1), Adam, MSE) trained under ``jit``
against the same run done eagerly, and to a low loss. Only that test compiles (one numba
kernel for the training step; cached on disk across runs).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import losses, metrics, nn, optim, train

KEY = fg.random.key(0)


def regression_data(n=96, seed=0):
    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.7 + 0.05 * r.normal(size=n)).astype(np.float32)
    return x, y


def test_linear_regression_reaches_least_squares():
    x, y = regression_data()
    model = nn.Dense(1)
    params = model.init(KEY, x[:1])
    params, hist = train.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.sgd(0.3, 0.9),
        epochs=60,
        batch_size=32,
        jit=False,
        verbose=0,
    )
    design = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    np.testing.assert_allclose(params["kernel"][:, 0], coef[:3], atol=2e-2)
    np.testing.assert_allclose(params["bias"], coef[3:], atol=2e-2)
    assert params["kernel"].dtype == np.float32
    assert hist.history["loss"][-1] < 0.01 and len(hist.history["loss"]) == 60
    assert hist.epoch == list(range(1, 61))


def test_logistic_regression_matches_numpy_gradient_descent():
    r = np.random.default_rng(1)
    x = r.normal(size=(80, 2)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * r.normal(size=80) > 0).astype(np.float32)
    model = nn.Dense(1, kernel_init=nn.initializers.zeros)
    params = model.init(KEY, x)
    params, hist = train.fit(
        model,
        params,
        x,
        y,
        loss="sigmoid_binary_cross_entropy",
        metrics=["accuracy"],
        optimizer=optim.sgd(0.5),
        epochs=40,
        batch_size=80,
        shuffle=False,
        jit=False,
        verbose=0,
    )
    # NumPy: full-batch gradient descent on the mean logistic loss
    w, b = np.zeros(2), 0.0
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for _ in range(40):
        p = 1 / (1 + np.exp(-(x64 @ w + b)))
        w -= 0.5 * x64.T @ (p - y64) / 80
        b -= 0.5 * np.mean(p - y64)
    np.testing.assert_allclose(params["kernel"][:, 0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params["bias"], [b], rtol=1e-4, atol=1e-5)
    # "accuracy" with a logits loss is binary accuracy at threshold 0 (of the predictions
    # made before each step, so of the parameters after 39 steps here)
    assert hist.history["accuracy"][-1] > 0.85
    logits = x64 @ (w + 0.5 * x64.T @ (p - y64) / 80) + b + 0.5 * np.mean(p - y64)
    assert hist.history["accuracy"][-1] == pytest.approx(np.mean((logits > 0) == (y64 > 0.5)))


def test_seed_model_jitted_matches_eager_and_fits():
    x, y = regression_data(128, seed=2)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    model = nn.Sequential([nn.Dense(10), nn.relu, nn.Dense(1)])
    params0 = model.init(KEY, x[:1])
    kw = dict(loss="mse", optimizer=optim.adam(1e-2), batch_size=32, verbose=0)
    p_eager, h_eager = train.fit(model, params0, x, y, epochs=3, jit=False, **kw)
    p_jit, h_jit = train.fit(model, params0, x, y, epochs=3, jit=True, **kw)
    np.testing.assert_allclose(h_jit.history["loss"], h_eager.history["loss"], rtol=1e-4)
    for a, b in zip(
        fg.tree_util.tree_leaves(p_jit), fg.tree_util.tree_leaves(p_eager), strict=True
    ):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # keep training (same compiled step: the shapes do not change) to a low loss
    params, hist = train.fit(
        model,
        p_jit,
        x,
        y,
        epochs=150,
        jit=True,
        opt_state=h_jit.opt_state,
        key=fg.random.key(1),
        **kw,
    )
    assert hist.history["loss"][-1] < 0.02
    assert float(losses.mse(model.apply(params, x), y)) < 0.02


def test_loss_function_form_with_aux_and_key():
    x, y = regression_data(50, seed=3)
    seen_keys = []

    def loss_fn(params, xb, yb, key):
        if key is not None:  # evaluation passes no key
            seen_keys.append(tuple(np.asarray(key).tolist()))
        pred = xb @ params["w"] + params["b"]
        value = fg.numpy.mean((pred - yb) ** 2)
        return value, {"mae": metrics.mae(pred, yb)}

    params = {"w": np.zeros(3, np.float32), "b": np.zeros((), np.float32)}
    params, hist = train.fit(
        loss_fn,
        params,
        x,
        y,
        optimizer=optim.adam(0.05),
        epochs=30,
        batch_size=16,
        has_aux=True,
        validation_data=(x, y),
        jit=False,
        verbose=0,
    )
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert hist.history["val_loss"][-1] < hist.history["val_loss"][0] / 10
    assert len(seen_keys) == 30 * 4 and len(set(seen_keys)) == len(seen_keys)  # fresh per step
    res = train.evaluate(loss_fn, params, x, y, has_aux=True)
    assert res["loss"] == pytest.approx(hist.history["val_loss"][-1], rel=1e-6)


def test_batches_cover_every_example_with_one_shape():
    x = np.arange(10, dtype=np.float32)[:, None]
    batches = []

    def loss_fn(params, xb):
        batches.append(np.asarray(xb)[:, 0].astype(int).tolist())
        return fg.numpy.sum(params["a"] * xb)

    train.fit(
        loss_fn,
        {"a": np.float32(1.0)},
        x,
        optimizer=optim.sgd(0.0),
        epochs=2,
        batch_size=4,
        jit=False,
        verbose=0,
    )
    assert [len(b) for b in batches] == [4] * 6
    for epoch in (batches[:3], batches[3:]):
        flat = sum(epoch, [])
        assert set(flat) == set(range(10))  # everything once, 2 filled up from the start
    assert batches[:3] != batches[3:]  # reshuffled


def test_stateful_model_dropout_batchnorm():
    r = np.random.default_rng(4)
    x = r.normal(size=(64, 5)).astype(np.float32) * 3 + 2
    labels = (x[:, 0] > 2).astype(np.int32)
    model = nn.Sequential(
        [nn.Dense(16), nn.BatchNorm(momentum=0.5), nn.relu, nn.Dropout(0.1), nn.Dense(2)]
    )
    params = model.init(KEY, x[:1])
    params, hist = train.fit(
        model,
        params,
        x,
        labels,
        loss="softmax_cross_entropy_with_integer_labels",
        metrics=["accuracy"],
        optimizer=optim.adam(1e-2),
        epochs=15,
        batch_size=16,
        validation_data=(x, labels),
        jit=False,
        verbose=0,
    )
    state = hist.state
    assert state[1]["mean"].shape == (16,) and np.any(state[1]["mean"] != 0)
    assert hist.history["val_accuracy"][-1] > 0.8
    res = train.evaluate(
        model,
        params,
        x,
        labels,
        loss="softmax_cross_entropy_with_integer_labels",
        metrics=["accuracy"],
        state=state,
    )
    assert res["accuracy"] == pytest.approx(hist.history["val_accuracy"][-1])
    out = train.predict(model, params, x, state=state, batch_size=20)
    assert out.shape == (64, 2)
    np.testing.assert_allclose(
        out, model.apply_with_state(params, state, x)[0], rtol=1e-5, atol=1e-6
    )


def test_evaluate_batches_weighted_and_predict():
    x, y = regression_data(50, seed=5)
    model = nn.Dense(1)
    params = model.init(KEY, x)
    whole = train.evaluate(model, params, x, y, loss="mse", metrics=["mae", metrics.mse])
    batched = train.evaluate(
        model, params, x, y, loss="mse", metrics=["mae", metrics.mse], batch_size=16
    )
    assert set(whole) == {"loss", "mae", "mse"}
    for k in whole:
        assert batched[k] == pytest.approx(whole[k], rel=1e-5)
    np.testing.assert_allclose(
        whole["loss"], np.mean((x @ params["kernel"][:, 0] + params["bias"][0] - y) ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        train.predict(model, params, x, batch_size=7), model.apply(params, x), rtol=1e-6
    )


def test_progress_output_and_history(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain-print path
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y = regression_data(20, seed=6)
    model = nn.Dense(1)
    params = model.init(KEY, x)
    _, hist = train.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.sgd(0.1),
        epochs=20,
        batch_size=10,
        jit=False,
        verbose=1,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Epoch  1/20") and lines[-1].startswith("Epoch 20/20")
    assert 3 <= len(lines) <= 12 and "loss: " in lines[0]
    train.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.sgd(0.1),
        epochs=3,
        batch_size=10,
        jit=False,
        verbose=2,
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    train.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.sgd(0.1),
        epochs=3,
        batch_size=10,
        jit=False,
        verbose=0,
    )
    assert capsys.readouterr().out == ""
    assert "20 epochs" in repr(hist)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot()


def test_fit_errors():
    x, y = regression_data(20)
    model = nn.Dense(1)
    params = model.init(KEY, x)
    opt = optim.sgd(0.1)
    with pytest.raises(ValueError, match="first"):
        train.fit(model, params, x, y[:10], loss="mse", optimizer=opt, jit=False, verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        train.fit(model, params, x, y, loss="l3", optimizer=opt, jit=False, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        train.fit(
            model, params, x, y, loss="mse", metrics=["f1"], optimizer=opt, jit=False, verbose=0
        )
    with pytest.raises(ValueError, match="metrics need predictions"):
        train.fit(lambda p, a, b: 0.0, params, x, y, metrics=["mae"], optimizer=opt, verbose=0)
    with pytest.raises(TypeError, match="optimizer"):
        train.fit(model, params, x, y, loss="mse", optimizer="adam", verbose=0)
    with pytest.raises(ValueError, match=r"exactly two arrays \(x, y\)"):
        train.fit(model, params, x, loss="mse", optimizer=opt, verbose=0)
