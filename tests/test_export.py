"""funcgrad.export: exported functions (as jax.export), symbolic dimensions, eval_shape.

References: exported functions are compared with the original Python function (eager and
compiled), at several batch sizes, also in a fresh process that never saw the source."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax, nn
from funcgrad import numpy as fnp
from funcgrad.export import (
    ExportError,
    deserialize,
    export,
    load_exported,
    save_exported,
    symbolic_shape,
)
from funcgrad.ir import subjaxprs

KEY = fg.random.key(0)


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


def _primitive_names(jaxpr):
    for e in jaxpr.eqns:
        yield e.primitive.name
        for sub in subjaxprs(e.params):
            yield from _primitive_names(sub)


def test_export_inlines_calls_nested_in_scan_and_cond():
    w = np.array([1.5, -2.0], np.float32)  # a constant of the jitted body
    step = fg.jit(lambda c, r: nn.relu(c * 0.5 + fnp.tanh(r * w)))
    double = fg.jit(lambda v: v * 2.0 + 1.0)

    def f(x):
        c, ys = lax.scan(lambda c, r: (step(c, r), c), fnp.zeros(2), x)
        return lax.cond(c.sum() > 0, double, lambda v: v - 1.0, c), ys

    def ref(x):
        c, ys = np.zeros(2, np.float32), []
        for r in x:
            ys.append(c)
            c = np.maximum(c * 0.5 + np.tanh(r * w), 0.0)
        return (c * 2.0 + 1.0 if c.sum() > 0 else c - 1.0), np.stack(ys)

    x = np.random.default_rng(2).normal(size=(5, 2)).astype(np.float32)
    calls = {"jit", "custom_jvp_call", "custom_vjp_call", "checkpoint"}
    traced = fg.make_jaxpr(f)(x)
    assert {e.primitive.name for e in traced.eqns} & calls == set()
    assert {"jit", "custom_jvp_call"} <= set(_primitive_names(traced.jaxpr))  # nested only
    exp = deserialize(export(f)(x).serialize())
    assert set(_primitive_names(exp.jaxpr)) & calls == set()
    for got, want in zip(exp.call(x, jit=False), ref(x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_export_composite_window_ops():
    def f(x):
        return lax.reduce_window(x, 0.0, lax.add, (2,), (1,), "VALID")

    exp = export(f)(np.ones(4, np.float32))
    np.testing.assert_array_equal(exp.call(np.ones(4, np.float32), jit=False), [2, 2, 2])


def test_serialization_module_keeps_the_old_names():
    from funcgrad import serialization

    assert serialization.export is export and serialization.deserialize is deserialize


def test_symbolic_shape_parsing():
    b, n = symbolic_shape("b, n")[0], symbolic_shape("n")[0]
    assert symbolic_shape("b, 784") == (b, 784)
    assert str(symbolic_shape("2*b + 1, n - 3")[0]) == "2*b + 1"
    assert symbolic_shape("(b, 3)") == (b, 3) and symbolic_shape("") == ()
    assert (b * 2 + n).evaluate({"b": 3, "n": 4}) == 10
    for bad in ("b c", "1b", "b*b", "b, , 3", "3*4"):
        with pytest.raises(ValueError, match="symbolic_shape"):
            symbolic_shape(bad)


def test_eval_shape():
    def f(x, y):
        return {"s": x @ y, "m": fnp.mean(x, axis=0)}, x.astype(np.int32)

    out = fg.eval_shape(f, fg.ShapeDtypeStruct((4, 3), np.float32), np.ones((3, 2), np.float32))
    want = f(np.ones((4, 3), np.float32), np.ones((3, 2), np.float32))
    assert out[0]["s"] == fg.ShapeDtypeStruct(want[0]["s"].shape, want[0]["s"].dtype)
    assert out[0]["m"].shape == (3,) and out[1].dtype == np.int32
    sym = fg.eval_shape(
        lambda x: x.reshape(-1), fg.ShapeDtypeStruct(symbolic_shape("b, 3"), np.float32)
    )
    assert str(sym.shape[0]) == "3*b"


def _predict_model():
    model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(3), nn.softmax])
    x = np.random.default_rng(0).normal(size=(4, 784)).astype(np.float32)
    return model, model.init(KEY, x)


def test_symbolic_batch_runs_for_any_batch():
    model, params = _predict_model()
    spec = fg.ShapeDtypeStruct(symbolic_shape("b, 784"), np.float32)
    exp = export(fg.jit(lambda x: model.apply(params, x)))(spec)
    assert repr(exp) == "Exported(<lambda>: (f32[b,784]) -> (f32[b,3]))"
    assert exp.symbols == ["b"] and str(exp.out_avals[0].shape[0]) == "b"
    back = deserialize(exp.serialize())
    for b in (1, 2, 5, 33):
        x = np.random.default_rng(b).normal(size=(b, 784)).astype(np.float32)
        ref = model.apply(params, x)
        np.testing.assert_allclose(back.call(x), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(back.call(x, jit=False), ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(
        TypeError, match=r"f32\[3,783\] but the function was exported for f32\[b,784\]"
    ):
        back.call(np.ones((3, 783), np.float32))
    with pytest.raises(TypeError, match=r"f64\[3,784\]"):
        back.call(np.ones((3, 784)))
    with pytest.raises(ValueError, match="symbolic dimension b must be a positive"):
        back.call(np.ones((0, 784), np.float32))


def test_symbolic_sizes_in_shapes_parameters_and_literals():
    def f(x, y):
        z = fnp.concatenate([x, x[:, :2]], axis=1)  # (n, 7): slices and concatenation
        flat = z.reshape(-1)  # (7n,)
        gram = x.T @ x / x.shape[0]  # a literal that follows n
        return flat[: x.shape[0]] * fnp.mean(y, axis=0) + fnp.arange(x.shape[0]), gram, y.sum(0)

    spec_x = fg.ShapeDtypeStruct(symbolic_shape("n, 5"), np.float64)
    spec_y = fg.ShapeDtypeStruct(symbolic_shape("m, n"), np.float64)
    exp = deserialize(export(f)(spec_x, spec_y).serialize())
    assert exp.symbols == ["m", "n"]
    for n, m in ((3, 2), (8, 13), (1, 1)):
        rng = np.random.default_rng(n)
        x, y = rng.normal(size=(n, 5)), rng.normal(size=(m, n))
        for got, want in zip(exp.call(x, y), f(x, y), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(TypeError, match=r"f64\[m,n\] \(with"):
        exp.call(np.ones((3, 5)), np.ones((2, 4)))  # n disagrees between the arguments


def test_size_dependent_structure_is_refused():
    spec = fg.ShapeDtypeStruct(symbolic_shape("n"), np.float32)
    with pytest.raises(ExportError, match="not an affine function"):
        export(lambda x: x[: x.shape[0] // 2])(spec)
    with pytest.raises(ExportError, match="structure depends on the value of the symbolic"):
        export(lambda x: sum(x[i] for i in range(x.shape[0])))(spec)
    with pytest.raises(ExportError, match="constant 0 of the function"):
        export(lambda x: x * np.arange(x.shape[0]) ** 2)(spec)

    def only_for_four(x):
        assert x.shape[0] == 4, "needs 4"
        return x

    with pytest.raises(ExportError, match="trial sizes n=17.*needs 4"):
        export(only_for_four)(spec)


def test_constants_built_from_a_symbolic_size_are_recomputed():
    # eager NumPy arrays made from x.shape (a ramp, a fill) become iota/broadcast equations
    def f(x, labels):
        rows = np.arange(x.shape[0])
        return x[rows, labels] + np.full(x.shape[0], 0.5, np.float32)

    spec = fg.ShapeDtypeStruct(symbolic_shape("n, 4"), np.float32)
    exp = deserialize(
        export(f)(spec, fg.ShapeDtypeStruct(symbolic_shape("n"), np.int32)).serialize()
    )
    for n in (1, 6):
        x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
        labels = (np.arange(n) % 4).astype(np.int32)
        np.testing.assert_allclose(exp.call(x, labels), x[np.arange(n), labels] + 0.5, rtol=1e-6)


def test_malformed_and_newer_blobs_are_clear_errors():
    exp = export(lambda x: fnp.sin(x) * 2.0)(np.ones(3, np.float32))
    blob = exp.serialize()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])

    def rebuild(mutate):
        h = json.loads(json.dumps(header))
        meta = h["__metadata__"]
        desc = json.loads(meta["exported"])
        mutate(meta, desc)
        meta["exported"] = json.dumps(desc)
        raw = json.dumps(h).encode()
        raw += b" " * (-len(raw) % 8)
        return struct.pack("<Q", len(raw)) + raw + blob[8 + n :]

    def newer(meta, desc):
        meta["export_version"] = "99"

    def unknown_prim(meta, desc):
        desc["jaxpr"]["closed_jaxpr"]["eqns"][0]["prim"] = "launch_missiles"

    def wrong_type(meta, desc):
        desc["jaxpr"]["closed_jaxpr"]["vars"][1][0] = [4]  # sin's result declared f32[4]

    def bad_var(meta, desc):
        desc["jaxpr"]["closed_jaxpr"]["eqns"][0]["in"] = [999]

    def object_dtype(meta, desc):
        desc["jaxpr"]["closed_jaxpr"]["vars"][0][1] = "object"

    cases = [
        (newer, "version 99.*upgrade funcgrad"),
        (unknown_prim, "primitive 'launch_missiles'"),
        (wrong_type, "does not type-check"),
        (bad_var, "bad variable 999"),
        (object_dtype, "bad dtype 'object'"),
    ]
    for mutate, msg in cases:
        with pytest.raises(ValueError, match=msg):
            deserialize(rebuild(mutate))
    with pytest.raises(ValueError, match="not a valid exported function"):
        deserialize(b"garbage" * 10)
    with pytest.raises(TypeError, match="expected bytes"):
        deserialize("a string")


def test_version_1_exported_blobs_still_load():
    import io

    exp = export(lambda x: {"y": fnp.tanh(x) + 1.0})(np.ones((2, 3), np.float32))
    arrays: list = []
    from funcgrad.export._codec import encode_value

    header = {
        "format": "funcgrad.exported",
        "version": 1,
        "name": "old",
        "in_tree": exp.in_tree,
        "out_tree": exp.out_tree,
        "jaxpr": encode_value(exp.jaxpr, arrays, "test"),
    }
    buf = io.BytesIO()
    np.savez(buf, __funcgrad__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    old = deserialize(buf.getvalue())
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(old.call(x)["y"], np.tanh(x) + 1.0, rtol=1e-6)


def test_exported_runs_in_a_fresh_process(tmp_path):
    """The subprocess never sees the model's source: only the file."""
    model, params = _predict_model()
    spec = fg.ShapeDtypeStruct(symbolic_shape("batch, 784"), np.float32)
    save_exported(tmp_path / "model.fgx", export(fg.jit(lambda x: model.apply(params, x)))(spec))
    xs = {b: np.random.default_rng(b).normal(size=(b, 784)).astype(np.float32) for b in (3, 10)}
    for b, x in xs.items():
        np.save(tmp_path / f"x{b}.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from funcgrad.export import load_exported
        exp = load_exported({str(tmp_path / "model.fgx")!r})
        for b in (3, 10):
            x = np.load({str(tmp_path)!r} + f"/x{{b}}.npy")
            np.save({str(tmp_path)!r} + f"/y{{b}}.npy", exp.call(x))
        print(exp)
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(fg.__file__)))
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=pythonpath)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "f32[batch,784]" in proc.stdout
    for b, x in xs.items():
        np.testing.assert_allclose(
            np.load(tmp_path / f"y{b}.npy"), model.apply(params, x), rtol=1e-5, atol=1e-6
        )
