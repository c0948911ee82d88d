"""funcgrad.serialization: safetensors checkpoints, old npz checkpoints, atomic writes.

References: round trips compared leaf by leaf with the originals (values, dtypes, container
types); files are cross-checked with the safetensors package's own (Rust) reader and writer;
version-1 files are written here the way funcgrad 0.1 wrote them (np.savez + a JSON entry)."""

from __future__ import annotations

import collections
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import nn, optim
from funcgrad import numpy as fnp
from funcgrad.serialization import load_params, save_params

safetensors = pytest.importorskip("safetensors")
import safetensors.numpy as stnp  # noqa: E402

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
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), (a.dtype, b.dtype)
        # bit-exact (NaNs included)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    else:
        assert a == b


ALL_DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]


def _sample(dtype, shape, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def test_params_round_trip_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    params = model.init(KEY, np.ones((1, 3), np.float32))
    tree = {
        "params": params,
        "opt_state": optim.adam(1e-3).init(params),
        "misc": (None, 3, 2.5, True, "mlp", np.float32(1.25), np.int64(7)),
        "dtypes": {np.dtype(d).name: _sample(d, (2, 3), rng) for d in ALL_DTYPES},
        "edge": [np.zeros((0, 4)), np.array(3.0, np.float16), np.asfortranarray(np.ones((3, 2)))],
        "big_endian": np.arange(5, dtype=">i4"),
        7: {"nested": {"deeper": np.ones((2, 2), np.uint8)}},
    }
    path = tmp_path / "ckpt.safetensors"
    save_params(path, tree)
    loaded = load_params(path)
    expect = dict(tree, big_endian=np.arange(5, dtype=np.int32))  # stored little-endian
    assert_same_tree(expect, loaded)
    assert type(loaded["opt_state"][0]) is optim.ScaleByAdamState
    x = np.ones((5, 3), np.float32)
    np.testing.assert_array_equal(model.apply(loaded["params"], x), model.apply(params, x))
    for leaf in fg.tree_util.tree_leaves(loaded):
        if isinstance(leaf, np.ndarray):
            assert leaf.flags.writeable  # fresh arrays, not views of a mapping
    # no extension is added; str paths work too
    save_params(str(tmp_path / "plain"), {"a": np.ones(2)})
    assert os.path.exists(tmp_path / "plain")


def test_ml_dtypes_are_saved_faithfully(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    vals = np.array([0.1, -2.5, 3.0, 1e-3], np.float32)
    tree = {
        name: vals.astype(getattr(ml_dtypes, name))
        for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz")
        if hasattr(ml_dtypes, name)
    }
    tree["int4"] = np.array([-8, 0, 7], ml_dtypes.int4)
    tree["scalar_bf16"] = ml_dtypes.bfloat16(1.5)
    save_params(tmp_path / "ml", tree)
    back = load_params(tmp_path / "ml")
    for k, v in tree.items():
        assert back[k].dtype == np.asarray(v).dtype, k
        np.testing.assert_array_equal(
            np.asarray(back[k]).astype(np.float32), np.asarray(v).astype(np.float32)
        )
    # the reference reader sees the format's own dtype names for the native ones
    raw = dict(safetensors.deserialize((tmp_path / "ml").read_bytes()))
    assert raw["bfloat16"]["dtype"] == "BF16" and raw["float8_e4m3fn"]["dtype"] == "F8_E4M3"
    bits = np.frombuffer(bytes(raw["bfloat16"]["data"]), np.uint16)
    np.testing.assert_array_equal(bits, tree["bfloat16"].view(np.uint16))


def test_files_interoperate_with_the_safetensors_package(tmp_path):
    rng = np.random.default_rng(1)
    tree = {
        "params": {"dense_0": {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": np.zeros(4)}},
        "layers": [np.arange(3, dtype=np.int16), {"slash/key": np.ones(2, np.uint8)}],
        "flag": np.array([True, False]),
    }
    path = tmp_path / "model.safetensors"
    save_params(path, tree)
    theirs = stnp.load_file(path)
    assert set(theirs) == {
        "params/dense_0/w",
        "params/dense_0/b",
        "layers/0",
        "layers/1/slash%2Fkey",
        "flag",
    }
    np.testing.assert_array_equal(theirs["params/dense_0/w"], tree["params"]["dense_0"]["w"])
    np.testing.assert_array_equal(theirs["layers/0"], tree["layers"][0])
    assert theirs["flag"].dtype == bool
    # and the reverse: a file written by safetensors loads as {name: array}
    written = {"emb.weight": rng.normal(size=(5, 2)).astype(np.float16), "step": np.array(3)}
    stnp.save_file(written, tmp_path / "theirs.safetensors", metadata={"author": "x"})
    mine = load_params(tmp_path / "theirs.safetensors")
    assert set(mine) == set(written)
    for k in written:
        assert mine[k].dtype == written[k].dtype
        np.testing.assert_array_equal(mine[k], written[k])


def test_load_like_names_the_first_difference(tmp_path):
    params = {
        "dense": {"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)},
        "n": [1, 2],
    }
    save_params(tmp_path / "p", params)
    assert_same_tree(load_params(tmp_path / "p", like=params), params)
    spec = fg.tree_util.tree_map(
        lambda a: fg.ShapeDtypeStruct(a.shape, a.dtype) if hasattr(a, "shape") else a, params
    )
    load_params(tmp_path / "p", like=spec)  # ShapeDtypeStructs work as a template
    cases = [
        (
            {
                "dense": {"w": np.ones((4, 4), np.float32), "b": np.zeros(4, np.float32)},
                "n": [1, 2],
            },
            r"\['dense'\]\['w'\]: the file has f32\[3,4\], the template f32\[4,4\]",
        ),
        (
            {"dense": {"w": np.ones((3, 4)), "b": np.zeros(4, np.float32)}, "n": [1, 2]},
            r"\['dense'\]\['w'\]: the file has f32\[3,4\], the template f64\[3,4\]",
        ),
        (
            {"dense": {"w": np.ones((3, 4), np.float32)}, "n": [1, 2]},
            r"\['dense'\]\['b'\]: in the file but not in the template",
        ),
        (
            {"dense": params["dense"], "n": [1, 2], "extra": np.ones(1)},
            r"\['extra'\]: missing from the file",
        ),
        (
            {"dense": params["dense"], "n": (1, 2)},
            r"\['n'\]: the file has a list, the template a tuple",
        ),
        ({"dense": params["dense"], "n": [1, 2, 3]}, r"\['n'\]: the file has 2 items"),
    ]
    for like, msg in cases:
        with pytest.raises(ValueError, match=msg):
            load_params(tmp_path / "p", like=like)


def _save_v1(path, tree_json, arrays):
    """A checkpoint exactly as funcgrad 0.1 wrote it."""
    header = {"format": "funcgrad.params", "version": 1, "tree": tree_json}
    entries = {"__funcgrad__": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for i, a in enumerate(arrays):
        entries[f"a{i}"] = a
    np.savez(path, allow_pickle=False, **entries)


def test_version_1_npz_checkpoints_still_load(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    tree = {
        "t": "dict",
        "keys": [["str", "params"], ["int", 3], ["str", "state"]],
        "c": [
            {"t": "list", "c": [{"t": "array", "i": 0, "scalar": False}, {"t": "none"}]},
            {"t": "array", "i": 1, "scalar": True},
            {
                "t": "namedtuple",
                "name": "ScaleByAdamState",
                "module": "funcgrad.optim",
                "fields": ["count", "mu", "nu"],
                "c": [{"t": "array", "i": 2}, {"t": "py", "v": 1.5}, {"t": "tuple", "c": []}],
            },
        ],
    }
    path = tmp_path / "old.npz"
    _save_v1(path, tree, [w, np.float64(2.5), np.asfortranarray(np.ones((2, 3)))])
    back = load_params(path)
    np.testing.assert_array_equal(back["params"][0], w)
    assert back["params"][1] is None and back[3] == 2.5 and isinstance(back[3], np.float64)
    assert type(back["state"]) is optim.ScaleByAdamState and back["state"].mu == 1.5
    np.testing.assert_array_equal(back["state"].count, np.ones((2, 3)))


def test_unknown_namedtuple_comes_back_as_plain_namedtuple(tmp_path):
    Point = collections.namedtuple("Point", ["x", "y"])
    save_params(tmp_path / "p", Point(np.ones(2), np.zeros(1)))
    p = load_params(tmp_path / "p")
    assert p._fields == ("x", "y") and type(p).__name__ == "Point"
    np.testing.assert_array_equal(p.x, np.ones(2))


def test_load_runs_no_code(tmp_path):
    # A v1 file naming a class of a module that is not loaded: nothing is imported.
    tree = {
        "t": "namedtuple",
        "module": "evil_module_for_test",
        "name": "system",
        "fields": ["a"],
        "c": [{"t": "py", "v": "echo hi"}],
    }
    _save_v1(tmp_path / "crafted.npz", tree, [])
    out = load_params(tmp_path / "crafted.npz")
    assert "evil_module_for_test" not in sys.modules
    assert out == ("echo hi",) and type(out).__name__ == "system"
    # a pickled object array is refused before anything is unpickled
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
    for bad in (np.array(["a", "b"]), np.ones(2, np.longdouble), np.zeros(2, "V3")):
        if bad.dtype == np.float64:
            continue  # platforms where long double is double
        with pytest.raises(TypeError, match="cannot store"):
            save_params(tmp_path / "x", {"w": bad})
    assert not os.listdir(tmp_path)  # failed saves leave nothing behind
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a funcgrad file"):
        load_params(tmp_path / "other.npz")
    np.save(tmp_path / "single.npy", np.ones(2))
    with pytest.raises(ValueError, match=r"single\.npy.*single \.npy array"):
        load_params(tmp_path / "single.npy")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_params(tmp_path / "empty")
    (tmp_path / "text").write_text("hello, not a checkpoint")
    with pytest.raises(ValueError, match="'.*text' is not a valid file"):
        load_params(tmp_path / "text")
    save_params(tmp_path / "p", {"a": np.ones(2)})
    with pytest.raises(ValueError, match="expected 'funcgrad.exported'"):
        fg.export.load_exported(tmp_path / "p")


def test_save_is_atomic(tmp_path, monkeypatch):
    from funcgrad import _safetensors

    path = tmp_path / "ckpt"
    save_params(path, {"w": np.ones(3)})

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_safetensors, "write_file", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_params(path, {"w": np.zeros(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_params(path)["w"], np.ones(3))  # old file intact
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary left


def test_save_keeps_symlinks_and_modes(tmp_path):
    real = tmp_path / "store" / "model.safetensors"
    real.parent.mkdir()
    save_params(real, {"w": np.ones(2)})
    os.chmod(real, 0o600)
    link = tmp_path / "latest"
    link.symlink_to(real)
    save_params(link, {"w": np.full(2, 7.0)})
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link survives
    np.testing.assert_array_equal(load_params(real)["w"], [7.0, 7.0])  # written through it
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600  # the target keeps its mode
    # a new file gets the umask's mode, as open() would give it
    old = os.umask(0o027)
    try:
        save_params(tmp_path / "new", {"w": np.ones(1)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o640


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    path = work / "ckpt"
    # a save killed mid-write (SIGKILL: no cleanup runs) leaves a full-size temporary
    code = (
        "import os, signal, numpy as np\n"
        "from funcgrad import _safetensors\n"
        "from funcgrad.serialization import save_params\n"
        "real = _safetensors.write_file\n"
        "def write_then_die(f, *a):\n"
        "    real(f, *a); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "_safetensors.write_file = write_then_die\n"
        f"save_params({str(path)!r}, {{'w': np.ones(100000)}})\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(fg.__file__)))
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, FUNCGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    stale = [n for n in os.listdir(work) if n.startswith(".ckpt.tmp-")]
    assert len(stale) == 1 and os.path.getsize(work / stale[0]) > 800000
    # a temporary of a live writer (this process's parent) is left alone, and so are
    # other files' temporaries
    live = work / f".ckpt.tmp-{os.getppid()}-abcd"
    live.write_bytes(b"in progress")
    (work / ".other.tmp-1-x").write_bytes(b"another file's")
    save_params(path, {"w": np.zeros(2)})
    assert sorted(os.listdir(work)) == sorted(["ckpt", live.name, ".other.tmp-1-x"])
    np.testing.assert_array_equal(load_params(path)["w"], np.zeros(2))
