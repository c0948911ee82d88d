"""Tiered jit: the NumPy interpreter tier, background compilation, tier switches, and
closed-over constants of every array layout.

Every other test file runs jit with ``FUNCGRAD_JIT_COMPILE=sync`` (tests/conftest.py) so that
it tests kernels; the tests here opt into background compilation explicitly.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import core, lax
from funcgrad.backend.numba import lower, lowering
from funcgrad.interpreters import tiers
from funcgrad.interpreters.jit import Executable
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from tests import specs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def background(monkeypatch):
    """Background compilation, and a kernel table of its own (so kernels other tests built
    are not found in memory and the interpreter tier really runs)."""
    monkeypatch.setenv("FUNCGRAD_JIT_COMPILE", "background")
    monkeypatch.setattr(tiers, "_keys", OrderedDict())
    yield
    tiers.wait_for_compiles(120)


@pytest.fixture
def held(monkeypatch):
    """Background compilation whose jobs wait in ``held`` until the test releases them."""
    monkeypatch.setenv("FUNCGRAD_JIT_COMPILE", "background")
    monkeypatch.setattr(tiers, "_keys", OrderedDict())
    queued: list = []
    real = tiers.submit
    monkeypatch.setattr(tiers, "submit", lambda *a: queued.append(a))

    def release() -> None:
        for a in queued:
            real(*a)
        queued.clear()
        assert tiers.wait_for_compiles(300)

    yield release
    release()


# ----------------------------------------------------------------------------------------
# Every primitive through both tiers (registry-driven, one case and dtype per primitive)

HIGHER_ORDER = {
    "jit",
    "custom_jvp_call",
    "custom_vjp_call",
    "custom_lin",
    "checkpoint",
    "remat",
    "cond",
    "while",
    "scan",
}


def _one_case_per_primitive() -> dict[str, list]:
    by_family: dict[str, list] = {}
    seen: set[str] = set()
    for info in pkgutil.iter_modules(specs.__path__):
        mod = importlib.import_module(f"tests.specs.{info.name}")
        for case in getattr(mod, "CASES", []):
            if case.prim in seen or case.prim in HIGHER_ORDER:
                continue
            seen.add(case.prim)
            by_family.setdefault(info.name, []).append(case)
    return by_family


FAMILIES = _one_case_per_primitive()


def test_every_primitive_is_covered():
    covered = {c.prim for cases in FAMILIES.values() for c in cases}
    missing = sorted(set(core.primitives) - covered - HIGHER_ORDER)
    assert not missing, f"primitives without a tier test case: {missing}"


def _tol(dtype):
    dtype = np.dtype(dtype)
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_interpreter_tier_matches_kernel_tier(family):
    cases = FAMILIES[family]
    dtypes = [np.dtype(c.dtypes[0]) for c in cases]
    operands = [
        tuple(c.make(np.random.default_rng(0), d)) for c, d in zip(cases, dtypes, strict=True)
    ]
    flat = [x for args in operands for x in args]
    counts = [len(a) for a in operands]
    n_outs: list[int] = []

    def all_cases(*xs):
        outs, i = [], 0
        n_outs.clear()
        for c, d, n in zip(cases, dtypes, counts, strict=True):
            prim = core.primitives[c.prim]
            o = prim.bind(*xs[i : i + n], **c.get_params(d))
            o = list(o) if prim.multiple_results else [o]
            n_outs.append(len(o))
            outs += o
            i += n
        return outs

    closed = trace_to_jaxpr(all_cases, [core.shaped_aval(x) for x in flat])
    lowered = lower(closed, "tiers")
    interp = Executable.interpreted(closed, "tiers").call_flat(flat)
    kernel = Executable(lowered, lowered.compile()).call_flat(flat)
    i = 0
    for c, d, args, n in zip(cases, dtypes, operands, n_outs, strict=True):
        ref = c.ref(*args, **c.get_params(d))
        ref = list(ref) if isinstance(ref, (list, tuple)) else [ref]
        for j in range(n):
            a, k = interp[i + j], kernel[i + j]
            assert isinstance(a, np.ndarray), (c.id, type(a))
            assert a.shape == k.shape and a.dtype == k.dtype, (c.id, a.shape, k.shape, a.dtype)
            if a.dtype.kind in "fc":
                np.testing.assert_allclose(a, k, equal_nan=True, **_tol(a.dtype), err_msg=c.id)
                r = np.asarray(ref[j])
                if r.shape == a.shape:  # the spec's own NumPy reference
                    rt = c.rtol if c.rtol is not None else _tol(a.dtype)["rtol"] * 10
                    at = c.atol if c.atol is not None else _tol(a.dtype)["atol"] * 10
                    np.testing.assert_allclose(a, r, rtol=rt, atol=at, equal_nan=True, err_msg=c.id)
            else:
                np.testing.assert_array_equal(a, k, err_msg=c.id)
        i += n


def _control_flow(w, xs, flag):
    def body(h, x):
        h = fnp.tanh(w * h + x)
        return h, h * 2.0

    h, ys = lax.scan(body, 0.0, xs)
    z = lax.cond(flag > 0, lambda v: v * 3.0, lambda v: v - 1.0, h)
    n = lax.fori_loop(0, 5, lambda i, c: c * 1.5, z)  # concrete bounds: a scan
    inner = fg.jit(lambda a: fnp.sin(a) ** 2)
    cp = fg.checkpoint(lambda a: fnp.exp(-a * a))
    return fnp.sum(ys) + n + fnp.sum(inner(xs)) + fnp.sum(cp(xs))


def _with_while(w, xs, flag):
    n = lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5), (0, w))
    return _control_flow(w, xs, flag) + n[1]


def test_higher_order_primitives_on_both_tiers(held):
    xs = np.linspace(-1, 1, 7)
    expected = _with_while(0.5, xs, 1.0)  # eager NumPy
    g_expected = fg.grad(_control_flow)(0.5, xs, 1.0)
    f = fg.jit(_with_while)
    g = fg.jit(fg.grad(_control_flow))
    on_interp = f(0.5, xs, 1.0), g(0.5, xs, 1.0)
    assert f.tier() == g.tier() == "interpreter"
    held()
    on_kernel = f(0.5, xs, 1.0), g(0.5, xs, 1.0)
    assert f.tier() == g.tier() == "kernel"
    for got in (on_interp, on_kernel):
        np.testing.assert_allclose(got[0], expected, rtol=1e-12)
        np.testing.assert_allclose(got[1], g_expected, rtol=1e-10)
        assert got[0].dtype == np.float64 and got[0].shape == ()


def test_interpreter_results_are_fresh_and_inputs_untouched(held):
    a = np.arange(4.0)
    before = a.copy()
    outs = fg.jit(lambda x: (x, x, x.reshape(2, 2), x + 0.0))(a)
    assert fg.jit(lambda x: x)(a) is not a
    for o in outs:
        assert not np.shares_memory(o, a)
    assert not np.shares_memory(outs[0], outs[1])
    np.testing.assert_array_equal(a, before)


def test_weak_scalar_dtype_on_interpreter(held):
    x = np.ones(3, np.float32)
    out = fg.jit(lambda x, s: x * s)(x, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x * np.float32(2.0))


# ----------------------------------------------------------------------------------------
# Tier switches


def _seed_problem():
    rng = np.random.default_rng(0)
    params = {
        "w1": (rng.standard_normal((10, 10)) / np.sqrt(10)).astype(np.float32),
        "b1": np.zeros(10, np.float32),
        "w2": (rng.standard_normal((10, 1)) / np.sqrt(10)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (x[:, :1] * 0.5 - x[:, 1:2]).astype(np.float32)
    opt = fg.optim.adam(1e-2)

    def loss(p, x, y):
        h = fnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        return fnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    def step(p, s, x, y):
        v, g = fg.value_and_grad(loss)(p, x, y)
        u, s = opt.update(g, s, p)
        return fg.optim.apply_updates(p, u), s, v

    return params, x, y, opt, step


def _train(step, params, opt, x, y, n, switch_at=None, release=None):
    s = opt.init(params)
    tiers_seen = []
    for i in range(n):
        if i == switch_at:
            release()
        params, s, v = step(params, s, x, y)
        tiers_seen.append(step.tier())
    return params, tiers_seen


def test_tier_switch_mid_training_matches_sync(held):
    params, x, y, opt, step = _seed_problem()
    tiered, seen = _train(fg.jit(step), params, opt, x, y, 40, switch_at=15, release=held)
    assert seen[:15] == ["interpreter"] * 15 and seen[15:] == ["kernel"] * 25
    sync_params, _ = _train(fg.jit(step, compile="sync"), params, opt, x, y, 40)
    s, eager = opt.init(params), params
    for _ in range(40):
        eager, s, _ = step(eager, s, x, y)  # eager NumPy, no jit
    for k in params:
        np.testing.assert_allclose(tiered[k], sync_params[k], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tiered[k], eager[k], rtol=1e-4, atol=1e-5)


def test_background_switches_without_waiting(background):
    f = fg.jit(lambda x: fnp.cumsum(fnp.sin(x) * 3.0) + 1.0)
    x = np.linspace(0, 1, 11)
    expected = np.cumsum(np.sin(x) * 3.0) + 1.0
    np.testing.assert_allclose(f(x), expected, rtol=1e-12)
    assert f.wait(300)
    assert f.tier() == "kernel"
    np.testing.assert_allclose(f(x), expected, rtol=1e-12)


def test_sync_mode_raises_and_background_warns_once(monkeypatch, background):
    monkeypatch.setitem(lowering.ELEMENTWISE, "sin", lambda ctx, x: f"np.not_a_function({x})")
    x = np.linspace(0, 1, 3, dtype=np.float32)
    with pytest.raises(fg.errors.LoweringError, match="'sin'"):
        fg.jit(lambda x: fnp.sin(x) + 1.0, compile="sync")(x)
    f = fg.jit(lambda x: fnp.sin(x) + 2.0)
    expected = np.sin(x) + np.float32(2.0)
    np.testing.assert_allclose(f(x), expected, rtol=1e-6)
    assert f.wait(300)
    with pytest.warns(RuntimeWarning, match=r"jit\(<lambda>\).*'sin' \(f32\[3\]"):
        out = f(x)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(f(x), expected, rtol=1e-6)  # no second warning
    assert f.tier() == "interpreter"


def test_env_var_selects_mode(monkeypatch):
    monkeypatch.setenv("FUNCGRAD_JIT_COMPILE", "bogus")
    with pytest.raises(ValueError, match="FUNCGRAD_JIT_COMPILE"):
        fg.jit(lambda x: x + 1.0)(np.ones(2))
    with pytest.raises(ValueError, match="compile="):
        fg.jit(lambda x: x, compile="later")


def test_log_compiles_shows_tier_switches(held, monkeypatch, caplog):
    from funcgrad.interpreters import jit as jit_mod

    monkeypatch.setattr(jit_mod.config, "log_compiles", True)
    f = fg.jit(lambda x: fnp.exp(x) - 0.5)
    with caplog.at_level("INFO", logger="funcgrad.jit"):
        f(np.ones(4))
        held()
    text = caplog.text
    assert "running on the interpreter while the kernel compiles" in text
    assert "kernel ready after" in text and "switching" in text


# ----------------------------------------------------------------------------------------
# Concurrency, other processes, exit


def test_threads_call_during_compile(background):
    f = fg.jit(lambda x, y: fnp.tanh(x @ y) * 2.0 + fnp.sum(y))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((5, 4)) for _ in range(8)]
    y = rng.standard_normal((4, 3))
    results: dict[int, list] = {}
    errors: list = []

    def worker(i):
        try:
            results[i] = [f(xs[i], y) for _ in range(30)]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert f.wait(300)
    for i in range(8):
        expected = np.tanh(xs[i] @ y) * 2.0 + y.sum()
        for r in results[i]:
            np.testing.assert_allclose(r, expected, rtol=1e-10)
        np.testing.assert_allclose(f(xs[i], y), expected, rtol=1e-10)
    assert len(f._cache) == 1


_CHILD = textwrap.dedent(
    """
    import json, sys, numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    from funcgrad.backend.numba import compile as c
    f = fg.jit(lambda x: fnp.sum(fnp.cos(x) * fnp.exp(-x)))
    x = np.linspace(0, 2, 9)
    first = float(f(x))
    mode = sys.argv[1]
    if mode == "exit":
        sys.exit(0)   # leaves while the worker compiles
    f.wait()
    print(json.dumps({"first": first, "after": float(f(x)), "tier": f.tier(),
                      "from_disk": [k.from_disk for k in c._kernels.values()]}))
    """
)


def _child(tmp_path, *args, at_exit="wait", exit_after="0"):
    env = dict(
        os.environ,
        FUNCGRAD_CACHE_DIR=str(tmp_path / "cache"),
        FUNCGRAD_JIT_COMPILE="background",
        FUNCGRAD_JIT_AT_EXIT=at_exit,
        FUNCGRAD_JIT_EXIT_WAIT_AFTER=exit_after,  # "0": act however short the run was
    )
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _expected():
    x = np.linspace(0, 2, 9)
    return float(np.sum(np.cos(x) * np.exp(-x)))


def test_two_processes_compile_into_one_cache(tmp_path):
    procs = [_child(tmp_path, "wait") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        r = json.loads(out.strip().splitlines()[-1])
        assert r["tier"] == "kernel"
        assert r["first"] == pytest.approx(_expected(), rel=1e-12)
        assert r["after"] == pytest.approx(_expected(), rel=1e-12)
    third = _child(tmp_path, "wait")
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["from_disk"] == [True] and r["after"] == pytest.approx(_expected(), rel=1e-12)


def test_exit_during_compile_does_not_hang_or_corrupt(tmp_path):
    p = _child(tmp_path, "exit", at_exit="drop")  # abandon the compile at exit
    out, err = p.communicate(timeout=120)  # a hang would time out
    assert p.returncode == 0, err[-2000:]
    q = _child(tmp_path, "wait")
    out, err = q.communicate(timeout=600)
    assert q.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["tier"] == "kernel" and r["after"] == pytest.approx(_expected(), rel=1e-12)


def test_exit_finishes_the_compile_for_the_next_run(tmp_path):
    p = _child(tmp_path, "exit")  # FUNCGRAD_JIT_AT_EXIT=wait: the compile finishes at exit
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert "finishing 1 kernel compile" in err
    q = _child(tmp_path, "wait")
    out, err = q.communicate(timeout=600)
    assert q.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["from_disk"] == [True] and r["after"] == pytest.approx(_expected(), rel=1e-12)


def test_exit_hands_the_compile_to_a_detached_process(tmp_path):
    import re
    import time

    from funcgrad.backend.numba import exit_compile

    p = _child(tmp_path, "exit", at_exit="detach")  # the default
    out, err = p.communicate(timeout=120)  # exits without waiting for the compile
    assert p.returncode == 0, err[-2000:]
    assert "compiling 1 kernel(s) for the next run in the background" in err
    pid = int(re.search(r"process (\d+)", err).group(1))
    deadline = time.monotonic() + 600
    while exit_compile.pending_jobs(tmp_path / "cache") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not exit_compile.pending_jobs(tmp_path / "cache")
    try:  # the detached process is done (or a zombie of an exited parent)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    q = _child(tmp_path, "wait")
    out, err = q.communicate(timeout=600)
    assert q.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["from_disk"] == [True] and r["after"] == pytest.approx(_expected(), rel=1e-12)
    # A run that ends while it loads a cached kernel hands nothing off.
    again = _child(tmp_path, "exit", at_exit="detach")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    assert "in the background" not in err and not exit_compile.pending_jobs(tmp_path / "cache")


def test_exit_compile_runs_only_verified_jobs_of_its_folder(tmp_path, monkeypatch):
    from funcgrad.backend.numba import compile as c
    from funcgrad.backend.numba import disk_cache, exit_compile

    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(tmp_path / "cache"))
    disk_cache.reset_for_tests()
    root = disk_cache.folder()
    folder = root / exit_compile.JOBS_FOLDER
    folder.mkdir(mode=0o700)
    text = "import numpy as np\n\n\ndef k(a):\n    return a + np.float64(1.0)\n"
    job = {
        "key": c.cache_key(text),
        "text": text,
        "entry": "k",
        "functions": ["k"],
        "helpers": [],
        "parallel": False,
        "buffers": [],
        "in_avals": [["float64", [3]]],
    }
    foreign = dict(job, text=text.replace("1.0", "2.0"))  # key of another source
    bad = [{"key": 1}, "not a job", dict(job, in_avals=[["float64", [-1]]])]
    path = folder / "1-1.json"
    path.write_text(json.dumps([foreign, *bad, job]))
    assert exit_compile.run(path) == 1  # only the verified, well-formed job
    assert not path.exists()
    assert (root / f"k_{job['key'][:40]}.py").read_text() == text
    outside = tmp_path / "job.json"
    outside.write_text(json.dumps([job]))
    assert exit_compile.run(outside) == 0  # never a job outside the private folder
    assert outside.exists()
    not_json = folder / "2-2.json"
    not_json.write_text("{")
    assert exit_compile.run(not_json) == 0 and not not_json.exists()


def test_processes_exiting_together_hand_a_kernel_off_once(tmp_path, monkeypatch):
    import subprocess as sp

    from funcgrad.backend.numba import disk_cache, exit_compile

    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(tmp_path / "cache"))
    disk_cache.reset_for_tests()
    started = []

    class FakePopen:  # records the detached process instead of starting it
        def __init__(self, args, **kwargs):
            started.append(args)
            self.pid = 4242

    monkeypatch.setattr(sp, "Popen", FakePopen)
    x = np.linspace(0.0, 1.0, 7)
    lowering = fg.jit(lambda x: fnp.sin(x) * 3.0).lower(x).lowering
    assert exit_compile.hand_off([lowering]) == (4242, 1)
    assert exit_compile.hand_off([lowering]) is None  # already claimed: one compile
    (job,) = exit_compile.pending_jobs()
    assert started == [[sys.executable, "-m", "funcgrad.backend.numba.exit_compile", str(job)]]
    assert exit_compile.run(job) == 1 and not exit_compile.pending_jobs()
    assert exit_compile.hand_off([lowering]) is None  # in the disk cache now


def test_short_run_exits_without_waiting(tmp_path):
    p = _child(tmp_path, "exit", at_exit="detach", exit_after="1000")  # far longer than it ran
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    assert "finishing" not in err and "in the background" not in err


def test_killed_compile_leaves_a_usable_cache(tmp_path):
    import time

    p = _child(tmp_path, "wait")
    time.sleep(1.5)  # mid-compile (or before it: either way the cache must stay usable)
    p.kill()
    p.communicate(timeout=60)
    q = _child(tmp_path, "wait")
    out, err = q.communicate(timeout=600)
    assert q.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["tier"] == "kernel" and r["after"] == pytest.approx(_expected(), rel=1e-12)


# ----------------------------------------------------------------------------------------
# Closed-over constants of every layout (sync: these reach the kernel)


def _layouts(tmp_path):
    base = np.arange(48.0).reshape(6, 8) / 7.0
    ro = base.copy()
    ro.setflags(write=False)
    path = tmp_path / "w.npy"
    np.save(path, base)
    mm = np.load(path, mmap_mode="r")
    win = np.lib.stride_tricks.as_strided(
        np.arange(20.0), shape=(6, 8), strides=(8 * 2, 8), writeable=False
    )
    return {
        "fortran": np.asfortranarray(base),
        "reversed": base[::-1],
        "strided": np.arange(96.0).reshape(6, 16)[:, ::2],
        "broadcast": np.broadcast_to(np.arange(8.0), (6, 8)),
        "readonly": ro,
        "memmap": mm,
        "as_strided": win,
        "byteswapped": base.astype(">f8"),
    }


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_closure_constants_of_every_layout(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("FUNCGRAD_JIT_COMPILE", mode)
    x = np.linspace(-1, 1, 8 * 3).reshape(3, 8)
    for name, W in _layouts(tmp_path).items():
        Wn = np.array(W, dtype=np.float64)  # the same values, as NumPy computes with them
        before = Wn.copy()

        def f(x, W=W):
            return fnp.tanh(W @ x.T) + W[0, 1]

        def loss(x, W=W):
            return fnp.sum(fnp.tanh(x @ W.T) ** 2)

        expected = np.tanh(Wn @ x.T) + Wn[0, 1]
        t = np.tanh(x @ Wn.T)
        expected_grad = (2 * t * (1 - t**2)) @ Wn
        jf, jg, gj = fg.jit(f), fg.jit(fg.grad(loss)), fg.grad(fg.jit(loss))
        jt = fg.jit(lambda x, W=W: W.T @ (W @ x.T))
        for _ in range(2 if mode == "background" else 1):  # interpreter, then kernel
            np.testing.assert_allclose(jf(x), expected, rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(jg(x), expected_grad, rtol=1e-9, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(gj(x), expected_grad, rtol=1e-9, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(jt(x), Wn.T @ (Wn @ x.T), rtol=1e-12, err_msg=name)
            tiers.wait_for_compiles(300)
        assert jf.tier() == "kernel" and jt.tier() == "kernel"
        np.testing.assert_array_equal(np.asarray(W, np.float64), before)  # not mutated


# ----------------------------------------------------------------------------------------
# What the user sees in fit


def test_fit_says_it_compiles_in_the_background(held, capsys):
    params, x, y, _, _ = _seed_problem()

    def loss_fn(p, x, y):
        h = fnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        return fnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    trained, history = fg.train.fit(
        loss_fn, params, x, y, optimizer=fg.optim.sgd(0.05), epochs=3, batch_size=16, verbose=2
    )
    out = capsys.readouterr().out
    assert "compiling the training step in the background" in out
    assert "cached on disk for the next run" in out
    assert out.count("Epoch") == 3 and "eta" in out
    # trained on the interpreter tier: the loss went down as with the kernel
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_eta_leaves_out_epochs_before_the_kernel():
    from funcgrad.train import _Progress

    p = _Progress(epochs=10, verbose=0)
    p.update(1, 30.0, {}, steady=False)  # compile / interpreter epoch
    assert p.eta(1) == "~4m30s"  # nothing steady yet: marked approximate
    p.update(2, 2.0, {}, steady=True)
    p.update(3, 4.0, {}, steady=True)
    assert p.eta(3) == "21s"  # 7 epochs left x mean(2, 4) s
    assert p.eta(10) == ""


def _chain(x):
    return fnp.sum(fnp.sin(x) * fnp.exp(-x) + x**2)


COMPOSITIONS = {
    "grad_jit": (lambda: fg.grad(fg.jit(_chain)), lambda: fg.grad(_chain)),
    "jit_grad": (lambda: fg.jit(fg.grad(_chain)), lambda: fg.grad(_chain)),
    "jit_grad_jit": (lambda: fg.jit(fg.grad(fg.jit(_chain))), lambda: fg.grad(_chain)),
    "vmap_jit": (lambda: fg.vmap(fg.jit(fg.grad(_chain))), lambda: fg.vmap(fg.grad(_chain))),
    "jit_vmap": (lambda: fg.jit(fg.vmap(fg.grad(_chain))), lambda: fg.vmap(fg.grad(_chain))),
    "jit_jit": (lambda: fg.jit(fg.jit(_chain)), lambda: _chain),
}


@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_compositions_on_both_tiers(held, name):
    make, ref = COMPOSITIONS[name]
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    f, expected = make(), ref()(x)  # eager reference
    first = f(x)
    held()
    second = f(x)
    for got in (first, second):
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


_NUMBA_THREAD = textwrap.dedent(
    """
    import sys, threading, json
    seen = []

    class Spy:
        def find_spec(self, name, path=None, target=None):
            if name == "numba" and not seen:
                seen.append(threading.current_thread().name)
            return None

    sys.meta_path.insert(0, Spy())
    import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    f = fg.jit(lambda x: fnp.sum(fnp.cos(x) * fnp.exp(-x)))
    x = np.linspace(0, 2, 9)
    first = float(f(x))
    f.wait()
    print(json.dumps({"first": first, "importer": seen, "tier": f.tier()}))
    """
)


def test_numba_is_imported_off_the_calling_thread(tmp_path):
    env = dict(
        os.environ,
        FUNCGRAD_CACHE_DIR=str(tmp_path / "cache"),
        FUNCGRAD_JIT_COMPILE="background",
    )
    out = subprocess.run(
        [sys.executable, "-c", _NUMBA_THREAD],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["importer"] == ["funcgrad-jit-compiler"] and r["tier"] == "kernel"
    assert r["first"] == pytest.approx(_expected(), rel=1e-12)


def test_several_functions_queue_one_worker(background):
    fs = [
        fg.jit(lambda x: fnp.sin(x) + 1.0),
        fg.jit(lambda x: fnp.cos(x) * 2.0),
        fg.jit(lambda x: fnp.tanh(x) - x),
    ]
    refs = [lambda x: np.sin(x) + 1.0, lambda x: np.cos(x) * 2.0, lambda x: np.tanh(x) - x]
    x = np.linspace(-2, 2, 7)
    for f, r in zip(fs, refs, strict=True):
        np.testing.assert_allclose(f(x), r(x), rtol=1e-12)
    workers = [t for t in threading.enumerate() if t.name == "funcgrad-jit-compiler"]
    assert len(workers) == 1  # one compile at a time
    assert tiers.wait_for_compiles(600) and tiers.pending() == 0
    for f, r in zip(fs, refs, strict=True):
        assert f.tier() == "kernel"
        np.testing.assert_allclose(f(x), r(x), rtol=1e-12)
