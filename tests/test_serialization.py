"""funcgrad.serialization: parameter files and exported functions, without pickle.

References: round trips compared leaf by leaf with the originals (values, dtypes, container
types); the files are read back with plain ``np.load(allow_pickle=False)``; exported
functions are compared with the original Python function (eager, and once compiled)."""

from __future__ import annotations

import collections
import json
import os
import sys

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax, nn, optim
from funcgrad import numpy as fnp
from funcgrad.serialization import (
    deserialize,
    export,
    load_exported,
    load_params,
    save_exported,
    save_params,
)

KEY = fg.random.key(0)


def assert_same_tree(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    elif isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_params_round_trip(tmp_path):
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    params = model.init(KEY, np.ones((1, 3), np.float32))
    tree = {
        "params": params,
        "opt_state": optim.adam(1e-3).init(params),
        "misc": (None, 3, 2.5, True, "mlp", np.float32(1.25), np.int64(7)),
        "arrays": [
            np.arange(6, dtype=np.int32).reshape(2, 3),
            np.array([True, False]),
            np.zeros((0, 4), np.float64),
            np.array(3.0, np.float16),
        ],
        7: {"nested": {"deeper": np.ones((2, 2), np.uint8)}},
    }
    path = tmp_path / "ckpt.npz"
    save_params(path, tree)
    loaded = load_params(path)
    assert_same_tree(tree, loaded)
    assert type(loaded["opt_state"][0]) is optim.ScaleByAdamState
    # loaded params work as they are
    x = np.ones((5, 3), np.float32)
    np.testing.assert_array_equal(model.apply(loaded["params"], x), model.apply(params, x))
    # a plain NumPy reader sees ordinary arrays and a JSON header: no pickle involved
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(bytes(z["__funcgrad__"]).decode())
        assert header["format"] == "funcgrad.params"
        assert all(z[name].dtype != object for name in z.files)
    # no extension is added; str paths work too
    save_params(str(tmp_path / "plain"), {"a": np.ones(2)})
    assert os.path.exists(tmp_path / "plain")


def test_unknown_namedtuple_comes_back_as_plain_namedtuple(tmp_path):
    Point = collections.namedtuple("Point", ["x", "y"])
    save_params(tmp_path / "p.npz", Point(np.ones(2), np.zeros(1)))
    p = load_params(tmp_path / "p.npz")
    assert p._fields == ("x", "y") and type(p).__name__ == "Point"
    np.testing.assert_array_equal(p.x, np.ones(2))


def test_load_runs_no_code(tmp_path):
    # A file naming a class of a module that is not loaded: nothing is imported, the
    # tuple comes back as a plain namedtuple.
    header = {
        "format": "funcgrad.params",
        "version": 1,
        "tree": {
            "t": "namedtuple",
            "module": "evil_module_for_test",
            "name": "system",
            "fields": ["a"],
            "c": [{"t": "py", "v": "echo hi"}],
        },
    }
    path = tmp_path / "crafted.npz"
    np.savez(path, __funcgrad__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    out = load_params(path)
    assert "evil_module_for_test" not in sys.modules
    assert out == ("echo hi",) and type(out).__name__ == "system"
    # a pickled object array in the file is refused by np.load(allow_pickle=False)
    bad = tmp_path / "pickled.npz"
    np.savez(
        bad,
        __funcgrad__=np.frombuffer(
            json.dumps(
                {"format": "funcgrad.params", "version": 1, "tree": {"t": "array", "i": 0}}
            ).encode(),
            np.uint8,
        ),
        a0=np.array([{"x": 1}], dtype=object),
    )
    with pytest.raises(ValueError, match="pickle"):
        load_params(bad)


def test_save_errors_and_bad_files(tmp_path):
    with pytest.raises(TypeError, match=r"\['a'\]\[1\]"):
        save_params(tmp_path / "x", {"a": [np.ones(1), object()]})
    with pytest.raises(TypeError, match="dtype object"):
        save_params(tmp_path / "x", np.array([None, 1], dtype=object))
    with pytest.raises(TypeError, match="keys must be str or int"):
        save_params(tmp_path / "x", {(1, 2): np.ones(1)})
    with pytest.raises(TypeError, match="traced"):
        fg.grad(lambda w: save_params(tmp_path / "x", w) or fnp.sum(w))(np.ones(2))
    assert not os.listdir(tmp_path)  # failed saves leave nothing behind
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a funcgrad file"):
        load_params(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a funcgrad file"):
        load_params(tmp_path / "text.npz")
    save_params(tmp_path / "p", {"a": np.ones(2)})
    with pytest.raises(ValueError, match="expected 'funcgrad.exported'"):
        load_exported(tmp_path / "p")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_params(path, {"w": np.ones(3)})

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_params(path, {"w": np.zeros(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_params(path)["w"], np.ones(3))  # old file intact
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary left


# ----------------------------------------------------------------------------------------
# Exported functions


def _mlp():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3), nn.softmax])
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    return model, model.init(KEY, x), x


def test_export_round_trip_and_call_jitted(tmp_path):
    model, params, x = _mlp()
    predict = fg.jit(lambda p, x: model.apply(p, x))
    exp = export(predict)(params, x)
    assert [a.str_short() for a in exp.out_avals] == ["f32[4,3]"]
    # custom_jvp (relu, softmax) and jit calls are inlined into plain primitives
    names = {e.primitive.name for e in exp.jaxpr.eqns}
    assert not names & {"jit", "custom_jvp_call"} and "dot_general" in names
    path = tmp_path / "model.fgx"
    save_exported(path, exp)
    back = load_exported(path)
    assert str(back.jaxpr) == str(exp.jaxpr) and repr(back) == repr(exp)
    ref = model.apply(params, x)
    np.testing.assert_allclose(back.call(params, x, jit=False), ref, rtol=1e-6)
    np.testing.assert_allclose(back.call(params, x), ref, rtol=1e-5, atol=1e-6)
    # params closed over become constants of the exported function
    exp2 = deserialize(export(lambda x: {"probs": model.apply(params, x)})(x).serialize())
    out = exp2.call(x, jit=False)
    assert list(out) == ["probs"]
    np.testing.assert_allclose(out["probs"], ref, rtol=1e-6)
    with pytest.raises(TypeError, match=r"f32\[4,5\]"):
        back.call(params, x[:2], jit=False)
    with pytest.raises(ValueError, match="structure"):
        back.call(x, jit=False)


def test_export_control_flow_and_indexing():
    def f(x, idx):
        def body(i, carry):
            return carry * 0.5 + fnp.sin(fnp.asarray(x)[i % 3])

        y = lax.fori_loop(0, 4, body, fnp.zeros_like(x[0]))
        z = lax.cond(y.sum() > 0, lambda v: v * 2.0, lambda v: v - 1.0, y)
        s, ys = lax.scan(lambda c, r: (c + r, c * r), fnp.zeros(2), x)
        return z + s + ys.sum(0) + x[idx].sum(0), nn.one_hot(idx, 3)

    x = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    idx = np.array([2, 0])
    exp = deserialize(export(f)(x, idx).serialize())
    got, want = exp.call(x, idx, jit=False), f(x, idx)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # an exported function differentiates through its primal operations
    g = fg.grad(lambda x: exp.call(x, idx, jit=False)[0].sum())(x)
    np.testing.assert_allclose(g, fg.grad(lambda x: f(x, idx)[0].sum())(x), rtol=1e-5)


def test_export_composite_window_ops():
    def f(x):
        return lax.reduce_window(x, 0.0, lax.add, (2,), (1,), "VALID")

    exp = export(f)(np.ones(4, np.float32))
    np.testing.assert_array_equal(exp.call(np.ones(4, np.float32), jit=False), [2, 2, 2])
