"""funcgrad.keras: Keras programs run with only the import changed; references are NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import keras, nn, optim


def _linear_problem(n=4000, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (x @ rng.uniform(-1, 1, size=n_features) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


def test_seed_keras_snippet_runs_and_learns(capsys):
    x, y = _linear_problem()
    n_features = x.shape[1]
    # The seed's Keras program, only the import changed.
    model = keras.Sequential(
        [
            keras.layers.Dense(10, activation="relu", input_shape=(n_features,)),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2, verbose=0)
    loss, mae = model.evaluate(x, y)
    pred = model.predict(x)
    model.summary()
    out = capsys.readouterr().out

    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert len(history.history["loss"]) == 10 and history.epoch == list(range(10))
    assert history.history["loss"][-1] < 0.2 * np.var(y)  # learnt well beyond the mean
    assert pred.shape == (x.shape[0], 1) and pred.dtype == np.float32
    np.testing.assert_allclose(loss, np.mean((pred[:, 0] - y) ** 2), rtol=1e-4)
    np.testing.assert_allclose(mae, np.mean(np.abs(pred[:, 0] - y)), rtol=1e-4)
    # summary: Keras's table with the parameter counts (5*10 + 10, 10*1 + 1)
    assert "dense (Dense)" in out and "dense_1 (Dense)" in out
    assert "(None, 10)" in out and "(None, 1)" in out
    assert "Total params: 71" in out and "Trainable params: 71" in out


def test_validation_split_takes_the_last_examples():
    x, y = _linear_problem(n=200)
    model = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mean_squared_error",
                  metrics=["mean_absolute_error"])  # fmt: skip
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    pred = model.predict(x[150:], verbose=0)[:, 0]
    np.testing.assert_allclose(history.history["val_loss"][-1], np.mean((pred - y[150:]) ** 2),
                               rtol=1e-4)  # fmt: skip
    np.testing.assert_allclose(
        history.history["val_mean_absolute_error"][-1], np.mean(np.abs(pred - y[150:])), rtol=1e-4
    )


def test_keras_defaults():
    adam = keras.optimizers.Adam()
    assert adam.learning_rate == 1e-3 and adam.beta_1 == 0.9 and adam.beta_2 == 0.999
    assert keras.optimizers.SGD().learning_rate == 0.01
    assert keras.optimizers.RMSprop().learning_rate == 1e-3
    # Adam's first step moves every weight by the learning rate (sign of the gradient).
    params = {"w": np.array([1.0, -2.0], np.float32)}
    for opt in (optim.adam(), keras.optimizers.get("adam")):
        updates, _ = opt.update({"w": np.array([0.3, -5.0], np.float32)}, opt.init(params))
        np.testing.assert_allclose(updates["w"], [-1e-3, 1e-3], rtol=1e-3)


def test_classification_with_softmax_and_accuracy():
    rng = np.random.default_rng(1)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]], np.float32)
    labels = rng.integers(0, 3, size=600)
    x = (centers[labels] + 0.5 * rng.normal(size=(600, 2))).astype(np.float32)
    model = keras.Sequential(
        [keras.Input(shape=(2,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    model.fit(x, labels, epochs=15, verbose=0)
    loss, acc = model.evaluate(x, labels, verbose=0)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    ref_loss = -np.mean(np.log(np.clip(probs[np.arange(600), labels], 1e-7, 1)))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    np.testing.assert_allclose(acc, np.mean(probs.argmax(1) == labels), rtol=1e-6)
    assert acc > 0.95
    # one-hot labels and categorical_crossentropy give the same loss
    onehot = keras.utils.to_categorical(labels, 3)
    np.testing.assert_allclose(
        keras.losses.categorical_crossentropy(onehot, probs),
        keras.losses.sparse_categorical_crossentropy(labels, probs),
        rtol=1e-5,
    )


def test_early_stopping_and_checkpoint(tmp_path):
    x, y = _linear_problem(n=128)
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(5,))])
    model.compile(optimizer="sgd", loss="mse")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e9, patience=1)
    path = tmp_path / "best.keras"
    ckpt = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    seen = []
    log = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    history = model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[stop, ckpt, log],
                        verbose=0)  # fmt: skip
    # The first epoch sets the best value; no later one improves by 1e9; patience 1.
    assert history.epoch == [0, 1] == seen and model.stop_training
    restored = keras.models.load_model(path)
    assert restored.count_params() == 6


def test_save_and_load_model(tmp_path):
    x, y = _linear_problem(n=64)
    model = keras.Sequential(
        [keras.layers.Dense(8, activation="relu", input_shape=(5,)), keras.layers.Dropout(0.1),
         keras.layers.Dense(1)]
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mae", metrics=["mse"])
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    back = keras.models.load_model(path)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in model.layers]
    assert back.layers[0].activation == "relu"
    assert back.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    weights = model.get_weights()
    back.set_weights([w * 0 for w in weights])
    assert not back.predict(x, verbose=0).any()
    with pytest.raises(TypeError, match="save_weights"):
        keras.Sequential([keras.layers.Dense(1, activation=lambda v: v, input_shape=(5,))]).save(
            tmp_path / "f.keras"
        )


def test_conv_model_summary(capsys):
    model = keras.Sequential(
        [
            keras.layers.Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1)),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert "(None, 6, 6, 4)" in out and "(None, 3, 3, 4)" in out and "(None, 36)" in out
    assert f"Total params: {3 * 3 * 1 * 4 + 4 + 36 * 10 + 10}" in out
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_names_are_explained():
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        keras.layers.Dense(3, activation="rleu")
    model = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(loss="mean_squared_eror")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(loss="mse", metrics=["maee"])
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(RuntimeError, match="compiled first"):
        model.fit(np.ones((4, 2)), np.ones(4), verbose=0)


# ---- nn: Keras and PyTorch habits


def test_nn_dense_activation_and_input_shape():
    layer = nn.Dense(4, activation="relu", input_shape=(3,))
    params = layer.init(fg.random.key(0))  # no example needed
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    ref = np.maximum(x @ params["kernel"] + params["bias"], 0)
    np.testing.assert_allclose(layer.apply(params, x), ref, rtol=1e-6)
    assert repr(layer) == "Dense(4, activation='relu', input_shape=(3,))"
    sig = nn.Dense(2, activation=nn.sigmoid)
    p = sig.init(fg.random.key(1), x)
    np.testing.assert_allclose(sig.apply(p, x), 1 / (1 + np.exp(-(x @ p["kernel"]))), rtol=1e-5)


def test_nn_sequential_varargs_and_linear():
    a, b = nn.Linear(3, 8), nn.Linear(8, 2, bias=False)
    m1 = nn.Sequential(a, nn.relu, b)
    m2 = nn.Sequential([a, nn.relu, b])
    assert m1 == m2 and hash(m1) == hash(m2)
    params = m1.init(fg.random.key(0))  # Linear knows its input size
    assert params[0]["kernel"].shape == (3, 8) and "bias" not in params[2]
    x = np.ones((4, 3), np.float32)
    ref = np.maximum(x @ params[0]["kernel"] + params[0]["bias"], 0) @ params[2]["kernel"]
    np.testing.assert_allclose(m1.apply(params, x), ref, rtol=1e-5)
    # a module is a leafless pytree: it survives flatten/unflatten and is a static argument
    leaves, treedef = fg.tree_util.tree_flatten(m1)
    assert leaves == [] and fg.tree_util.tree_unflatten(treedef, []) == m1
    assert repr(b) == "Linear(8, 2, bias=False)"
    with pytest.raises(ValueError, match="must have 3 features"):
        a.apply(params[0], np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="input_shape"):
        nn.Sequential(nn.Dense(2)).init(fg.random.key(0))


def test_param_table():
    model = nn.Sequential(nn.Linear(3, 4), nn.relu, nn.Linear(4, 1))
    table = nn.param_table(model.init(fg.random.key(0)))
    text = str(table)
    assert "[0]['kernel']" in text and "(3, 4)" in text and "float32" in text
    assert table.total == 3 * 4 + 4 + 4 + 1
    assert "<table>" in table._repr_html_()


def test_binary_accuracy_batchnorm_dropout(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(256, 4)) * 3 + 1).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.float32)
    model = keras.Sequential(
        [
            keras.layers.Dense(16, activation="relu", input_shape=(4,)),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"], jit_compile=False)  # fmt: skip
    history = model.fit(x, y, epochs=8, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(acc, np.mean((p > 0.5) == (y > 0.5)), rtol=1e-6)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(loss, -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)),
                               rtol=1e-4)  # fmt: skip
    # running statistics moved away from their initial values, and are saved with the model
    assert not np.allclose(model.state[1]["mean"], 0)
    model.save(tmp_path / "bn.keras")
    back = keras.models.load_model(tmp_path / "bn.keras")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    model.summary()
    out = capsys.readouterr().out
    assert "Non-trainable params: 32" in out and "Total params: 161" in out
