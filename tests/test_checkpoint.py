"""train.fit(checkpoint_dir=...): periodic checkpoints, a bounded number kept, and resume.

Reference: the same fit run without interruption; a resumed run must end with bit-identical
parameters, optimizer state and history."""

from __future__ import annotations

import os

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import nn, optim

KEY = fg.random.key(0)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)
    return x, y


def _setup():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dropout(0.2), nn.Dense(1)])
    x, y = _data()
    return model, model.init(KEY, x[:1]), x, y


def _fit(model, params, x, y, **kw):
    return fg.train.fit(
        model,
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.adam(1e-2),
        batch_size=16,
        key=fg.random.key(7),
        verbose=0,
        **kw,
    )


def _assert_trees_equal(a, b):
    la, lb = fg.tree_util.tree_leaves(a), fg.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_checkpoints_every_n_epochs_keep_k(tmp_path):
    model, params, x, y = _setup()
    _fit(
        model,
        params,
        x,
        y,
        epochs=7,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        keep_checkpoints=2,
    )
    # saved after epochs 2, 4, 6 and the last (7); the two newest stay
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000006.safetensors", "ckpt-000007.safetensors"]
    ckpt = fg.serialization.load_params(tmp_path / "ckpt-000007.safetensors")
    assert ckpt["epoch"] == 7 and len(ckpt["history"]["loss"]) == 7
    with pytest.raises(ValueError, match="checkpoint_every"):
        _fit(model, params, x, y, epochs=1, checkpoint_dir=tmp_path, checkpoint_every=0)


def test_resume_equals_uninterrupted(tmp_path):
    model, params, x, y = _setup()
    ref_params, ref_hist = _fit(model, params, x, y, epochs=5, validation_data=(x, y))
    # interrupted after 2 epochs, then the same call again with epochs=5
    ckdir = tmp_path / "run"
    _fit(model, params, x, y, epochs=2, validation_data=(x, y), checkpoint_dir=ckdir)
    got_params, got_hist = _fit(
        model, params, x, y, epochs=5, validation_data=(x, y), checkpoint_dir=ckdir
    )
    _assert_trees_equal(got_params, ref_params)
    _assert_trees_equal(got_hist.opt_state, ref_hist.opt_state)
    assert got_hist.history == ref_hist.history and got_hist.epoch == [1, 2, 3, 4, 5]
    # a finished run resumes to the same end without training more
    again, hist = _fit(model, params, x, y, epochs=5, validation_data=(x, y), checkpoint_dir=ckdir)
    _assert_trees_equal(again, ref_params)
    assert hist.history == ref_hist.history


def test_resume_after_a_crash_mid_epoch(tmp_path):
    x, y = _data()
    w0 = {"w": np.zeros((3, 1), np.float32), "b": np.zeros(1, np.float32)}
    calls = [0]

    def loss_fn(p, xb, yb):
        calls[0] += 1
        if calls[0] == crash_at[0]:
            raise KeyboardInterrupt("simulated kill")
        return fg.numpy.mean((xb @ p["w"] + p["b"] - yb) ** 2)

    def fit(**kw):
        return fg.train.fit(
            loss_fn,
            w0,
            x,
            y,
            optimizer=optim.sgd(0.05),
            epochs=4,
            batch_size=8,
            jit=False,
            verbose=0,
            key=fg.random.key(3),
            **kw,
        )

    crash_at = [-1]
    ref, ref_hist = fit()
    calls[0], crash_at[0] = 0, 13  # in epoch 3 (5 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(checkpoint_dir=tmp_path)
    assert sorted(os.listdir(tmp_path))[-1] == "ckpt-000002.safetensors"
    crash_at[0] = -1
    got, hist = fit(checkpoint_dir=tmp_path)
    _assert_trees_equal(got, ref)
    assert hist.history == ref_hist.history
    # a damaged newest checkpoint is skipped with a warning, the previous one is used
    with open(tmp_path / "ckpt-000004.safetensors", "r+b") as f:
        f.truncate(50)
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        got2, _ = fit(checkpoint_dir=tmp_path)
    _assert_trees_equal(got2, ref)
    # a checkpoint of another model is refused, naming where it differs
    with pytest.raises(ValueError, match=r"params differ at \['w'\]"):
        fg.train.fit(
            loss_fn,
            {"w": np.zeros((2, 1), np.float32), "b": np.zeros(1, np.float32)},
            x[:, :2],
            y,
            optimizer=optim.sgd(0.05),
            epochs=5,
            jit=False,
            verbose=0,
            checkpoint_dir=tmp_path,
        )
