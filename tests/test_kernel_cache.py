"""The kernel cache (``funcgrad/backend/numba/{compile,disk_cache,buffers}.py``): entries are
verified before anything in them runs, damaged or foreign ones are recompiled, unsafe
folders are refused, write failures degrade to in-memory kernels, both caches are bounded,
and an interrupted compile leaves nothing half-done.

Cache tests run in subprocesses with their own ``FUNCGRAD_CACHE_DIR`` (a fresh process is
what reads a cache written by another); reference values come from NumPy.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad.backend.numba import buffers, disk_cache
from funcgrad.backend.numba import compile as c

# Five kernels of the same shape (sizes nearly equal), each checked against NumPy.
_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, warnings
    import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    from funcgrad.backend.numba import compile as c, disk_cache

    CONSTS = [1.5, 2.5, 3.5, 4.5, 5.5]
    which = [int(i) for i in sys.argv[1].split(",")]
    x = np.linspace(-1.0, 1.0, 7)
    res = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", disk_cache.KernelCacheWarning)
        for i in which:
            k = CONSTS[i]
            before = set(c._kernels)
            y = fg.jit(lambda x: fnp.sin(x) * k + fnp.exp(x * k))(x)
            new = [key for key in c._kernels if key not in before]
            res.append({
                "ok": bool(np.allclose(y, np.sin(x) * k + np.exp(x * k), rtol=1e-12)),
                "stems": ["k_" + key[:40] for key in new],
                "from_disk": [c._kernels[key].from_disk for key in new],
            })
    msgs = [str(w.message) for w in caught if issubclass(w.category, disk_cache.KernelCacheWarning)]
    print(json.dumps({"res": res, "warnings": msgs}))
    """
)


def _run(cache: Path | str, which: str = "0,1,2,3", *, extra: dict | None = None, script=_SCRIPT):
    env = {**os.environ, "FUNCGRAD_CACHE_DIR": str(cache), **(extra or {})}
    proc = subprocess.run(
        [sys.executable, "-c", script, which, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in out.get("res", []):
        assert r["ok"], out
        assert len(r["stems"]) == 1, out  # one kernel per function
    return out


def _stems(out: dict) -> list[str]:
    return [r["stems"][0] for r in out["res"]]


def _nbc(cache: Path, stem: str) -> Path:
    (path,) = cache.glob(f"{stem}.*.nbc")
    return path


def _leftovers(folder: Path) -> list[str]:
    """Temporary or empty files a failed write would have left."""
    return sorted(
        p.name
        for p in folder.rglob("*")
        if p.is_file() and (".tmp" in p.name or not p.stat().st_size)
    )


# ----------------------------------------------------------------------------------------
# Item 4/5: entries are verified before they run; damage is a miss, never a failure


def test_edited_source_is_not_executed(tmp_path):
    cache = tmp_path / "cache"
    first = _run(cache, "0,1")
    assert not any(r["from_disk"][0] for r in first["res"]) and not first["warnings"]
    stem0, stem1 = _stems(first)
    py = cache / f"{stem0}.py"
    original = py.read_text()
    marker = tmp_path / "executed"
    # Planted code and a changed constant: either would show if the file were run.
    py.write_text(f"open({str(marker)!r}, 'w').close()\n" + original.replace("np.float64", "2.0*"))
    second = _run(cache, "0,1")
    assert not marker.exists()
    assert [r["from_disk"][0] for r in second["res"]] == [False, True]
    (warning,) = second["warnings"]
    assert f"{stem0}.py does not match" in warning and "never executed" in warning
    assert py.read_text() == original  # the entry was rewritten from the generated source
    third = _run(cache, "0,1")
    assert [r["from_disk"][0] for r in third["res"]] == [True, True] and not third["warnings"]


def test_damaged_entries_are_recompiled(tmp_path):
    cache = tmp_path / "cache"
    stems = _stems(_run(cache, "0,1,2,3,4"))
    nbcs = [_nbc(cache, s) for s in stems]
    foreign = nbcs[0].read_bytes()
    # 0: truncated .py; 1: truncated .nbc; 2: 16 flipped bytes in the compiled code;
    # 3: .nbc cut inside its header; 4: another kernel's (valid) .nbc under this name.
    py0 = cache / f"{stems[0]}.py"
    py0.write_bytes(py0.read_bytes()[: py0.stat().st_size // 2])
    nbcs[1].write_bytes(nbcs[1].read_bytes()[: nbcs[1].stat().st_size // 2])
    data = bytearray(nbcs[2].read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    nbcs[2].write_bytes(bytes(data))
    nbcs[3].write_bytes(nbcs[3].read_bytes()[:20])
    nbcs[4].write_bytes(foreign)
    second = _run(cache, "0,1,2,3,4")
    assert [r["from_disk"][0] for r in second["res"]] == [False] * 5
    text = "\n".join(second["warnings"])
    assert len(second["warnings"]) == 5, text
    assert f"{stems[0]}.py does not match" in text
    assert f"{nbcs[1].name} is truncated" in text
    assert f"{nbcs[2].name} is damaged" in text
    assert f"{nbcs[3].name} has no funcgrad cache header" in text
    assert f"{nbcs[4].name} was stored under another key" in text
    third = _run(cache, "0,1,2,3,4")
    assert all(r["from_disk"][0] for r in third["res"]) and not third["warnings"]


# ----------------------------------------------------------------------------------------
# Item 4: only a private folder of this user is used; no shared fallback

_FOLDERS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, warnings
    import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    from funcgrad.backend.numba import compile as c, disk_cache, lowering
    from funcgrad.errors import LoweringError

    x = np.linspace(-1.0, 1.0, 7)
    out = {}
    for folder in sys.argv[1].split(os.pathsep):
        os.environ["FUNCGRAD_CACHE_DIR"] = folder
        c._kernels.clear()  # force a disk lookup for each folder
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", disk_cache.KernelCacheWarning)
            y = fg.jit(lambda x: fnp.sin(x) * 1.5 + fnp.exp(x * 1.5))(x)
        (kernel,) = c._kernels.values()
        out[folder] = {
            "ok": bool(np.allclose(y, np.sin(x) * 1.5 + np.exp(x * 1.5), rtol=1e-12)),
            "from_disk": kernel.from_disk,
            "path": str(kernel.path),
            "warnings": [str(w.message) for w in caught],
        }
    # A numba failure probes each equation alone: in memory, never in the temp folder.
    os.environ["FUNCGRAD_CACHE_DIR"] = os.environ["PROBE_CACHE"]
    lowering.ELEMENTWISE["sin"] = lambda ctx, x: f"np.not_a_function({x})"
    try:
        fg.jit(lambda x: fnp.sin(x) * 3.0 + 1.0)(x)
    except LoweringError as e:
        out["lowering_error"] = str(e)
    print(json.dumps(out))
    """
)


def test_unsafe_folders_are_refused_and_jit_runs_uncached(tmp_path):
    good = tmp_path / "good"
    _run(good, "0")  # a valid entry, to plant in the folders that must be refused
    planted = [p for p in good.iterdir()]
    folders: dict[str, str] = {}  # folder -> what the refusal says

    def plant(folder: Path) -> Path:
        folder.mkdir(parents=True)
        for p in planted:
            shutil.copy(p, folder / p.name)
        return folder

    open_mode = plant(tmp_path / "mode777")
    open_mode.chmod(0o777)
    folders[str(open_mode)] = "is writable by group and others (mode 777)"
    shared_parent = tmp_path / "shared"
    shared_parent.mkdir()
    shared_parent.chmod(0o777)  # world-writable, no sticky bit
    folders[str(plant(shared_parent / "cache"))] = "which everyone may write"
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    folders[str(not_a_folder / "cache")] = "cannot be created"
    if os.getuid() == 0:  # root can hand files to another uid (nobody: 65534)
        foreign = plant(tmp_path / "foreign")
        for p in [foreign, *foreign.iterdir()]:
            os.chown(p, 65534, 65534)
        foreign.chmod(0o700)
        folders[str(foreign)] = "is owned by uid 65534"
        link = tmp_path / "link"
        link.symlink_to(good)
        os.lchown(link, 65534, 65534)
        folders[str(link)] = "is a symlink owned by uid 65534"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    before = {f: sorted(os.listdir(f)) if os.path.isdir(f) else None for f in folders}
    env = {"TMPDIR": str(tmpdir), "PROBE_CACHE": str(tmp_path / "probe")}
    out = _run(good, os.pathsep.join(folders), extra=env, script=_FOLDERS_SCRIPT)
    for folder, why in folders.items():
        got = out[folder]
        assert got["ok"] and not got["from_disk"] and got["path"] == "None", (folder, got)
        (warning,) = got["warnings"]
        assert f"not using {folder}" in warning and why in warning, warning
        assert "FUNCGRAD_CACHE_DIR" in warning  # says how to fix it
        if before[folder] is not None:
            assert sorted(os.listdir(folder)) == before[folder]  # nothing read or written
    assert "'sin'" in out["lowering_error"]
    assert [p.suffix for p in (tmp_path / "probe").iterdir()] == [".py"]  # the failing kernel
    assert os.listdir(tmpdir) == []  # no fallback folder, no probe files
    assert (good.stat().st_mode & 0o777) == 0o700


def test_created_folder_is_private(tmp_path, monkeypatch):
    cache = tmp_path / "new" / "cache"
    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(cache))
    try:
        assert disk_cache.folder() == cache
    finally:
        disk_cache.reset_for_tests()
    assert cache.stat().st_mode & 0o777 == 0o700


# ----------------------------------------------------------------------------------------
# Item 6: a full disk degrades to in-memory kernels with one warning, leaving no files

# The compiled code (not the small source copy) meets a full disk, half written.
_ENOSPC_SCRIPT = (
    textwrap.dedent(
        """
        import errno
        from funcgrad.backend.numba import disk_cache
        real_fill = disk_cache._fill
        def _fill(f, data):
            if not data.startswith(b"funcgrad-kernel-cache"):
                return real_fill(f, data)
            f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        disk_cache._fill = _fill
        """
    )
    + _SCRIPT
)


def _check_full_disk(out: dict, folder: Path) -> None:
    assert not any(r["from_disk"][0] for r in out["res"])
    (warning,) = out["warnings"]  # one warning for all kernels
    assert "No space left on device" in warning and "in memory only" in warning
    assert _leftovers(folder) == []


def test_disk_full_patched_writer(tmp_path):
    cache = tmp_path / "cache"
    out = _run(cache, "0,1,2", script=_ENOSPC_SCRIPT)
    _check_full_disk(out, cache)
    assert sorted(p.suffix for p in cache.iterdir()) == [".py"] * 3


def test_disk_full_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as f:  # fill it up
            try:
                while True:
                    f.write(b"x" * 1024)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        out = _run(mnt, "0,1,2")
        _check_full_disk(out, mnt)
        assert [p.name for p in mnt.iterdir()] == ["filler"]
        filler.unlink()  # space again: the next process caches normally
        _run(mnt, "0")
        assert _run(mnt, "0")["res"][0]["from_disk"] == [True]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# ----------------------------------------------------------------------------------------
# Item 8: both caches are bounded

_LRU_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    from funcgrad.backend.numba import compile as c

    x = np.linspace(-1.0, 1.0, 7)
    consts = [1.5, 2.5, 3.5, 4.5, 5.5]
    fs = [fg.jit(lambda x, k=k: fnp.sin(x) * k + fnp.exp(x * k)) for k in consts]
    keys = []
    for f in fs:
        before = set(c._kernels)
        f(x)
        keys += [k for k in c._kernels if k not in before]
    want = [np.sin(x) * k + np.exp(x * k) for k in consts]
    again = [bool(np.allclose(f(x), w, rtol=1e-12)) for f, w in zip(fs, want)]
    fresh = fg.jit(lambda x: fnp.sin(x) * 1.5 + fnp.exp(x * 1.5))(x)  # evicted: built again
    mods = sorted(m for m in sys.modules if m.startswith("funcgrad_kernel_"))
    print(json.dumps({
        "keys": keys, "table": list(c._kernels), "mods": mods, "again": again,
        "fresh": bool(np.allclose(fresh, want[0], rtol=1e-12)),
    }))
    """
)


def test_memory_cache_is_an_lru(tmp_path):
    out = _run(tmp_path / "c", "", extra={"FUNCGRAD_KERNEL_CACHE_SIZE": "2"}, script=_LRU_SCRIPT)
    keys = out["keys"]
    assert len(keys) == 5 and all(out["again"]) and out["fresh"]
    assert out["table"] == [keys[4], keys[0]]  # the two most recently used
    assert out["mods"] == sorted(f"funcgrad_kernel_{k[:40]}" for k in out["table"])


def test_kernel_cache_size_must_be_a_count(monkeypatch):
    for bad in ["abc", "nan", "-1", "2.5", "inf"]:
        monkeypatch.setenv("FUNCGRAD_KERNEL_CACHE_SIZE", bad)
        with pytest.raises(ValueError, match="FUNCGRAD_KERNEL_CACHE_SIZE"):
            c.kernel_cache_size()
    monkeypatch.setenv("FUNCGRAD_KERNEL_CACHE_SIZE", "7")
    assert c.kernel_cache_size() == 7
    monkeypatch.delenv("FUNCGRAD_KERNEL_CACHE_SIZE")
    assert c.kernel_cache_size() == 256


def test_disk_cache_is_bounded_lru(tmp_path):
    cache = tmp_path / "cache"
    stems = _stems(_run(cache, "0,1,2,3"))

    def size(stem):
        return sum(p.stat().st_size for p in cache.glob(f"{stem}.*"))

    sizes = {s: size(s) for s in stems}
    now = time.time()
    for age, stem in zip([500, 400, 300, 200], stems, strict=True):  # 0 oldest ... 3 newest
        for p in cache.glob(f"{stem}.*"):
            os.utime(p, (now - age, now - age))
    limit = 3 * max(sizes.values())
    # Load 0 (now the most recent), compile 4: over the limit, the oldest go whole.
    out = _run(cache, "0,4", extra={"FUNCGRAD_CACHE_MAX_MB": str(limit / (1 << 20))})
    assert out["res"][0]["from_disk"] == [True]
    new = out["res"][1]["stems"][0]
    sizes[new] = size(new)
    order = [stems[1], stems[2], stems[3], stems[0], new]  # least recently used first
    total, expect = sum(sizes.values()), list(order)
    while total > 0.9 * limit:
        total -= sizes[expect.pop(0)]
    left = {p.name.split(".")[0] for p in cache.iterdir()}
    assert left == set(expect) and {stems[0], new} <= left and stems[1] not in left
    for stem in left:  # entries stay whole
        assert (cache / f"{stem}.py").exists() and len(list(cache.glob(f"{stem}.*.nbc"))) == 1
    assert sum(p.stat().st_size for p in cache.iterdir()) <= limit


def test_disk_cache_size_setting(monkeypatch):
    for bad in ["abc", "nan", "inf", "-3"]:
        monkeypatch.setenv("FUNCGRAD_CACHE_MAX_MB", bad)
        with pytest.raises(ValueError, match="FUNCGRAD_CACHE_MAX_MB"):
            disk_cache.max_bytes()
    monkeypatch.setenv("FUNCGRAD_CACHE_MAX_MB", "0.5")
    assert disk_cache.max_bytes() == 1 << 19
    monkeypatch.delenv("FUNCGRAD_CACHE_MAX_MB")
    assert disk_cache.max_bytes() == 1024 << 20


# ----------------------------------------------------------------------------------------
# Item 2: an interrupted compile leaves nothing half-done


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(cache))
    yield cache
    disk_cache.reset_for_tests()


def _interrupt_once(monkeypatch, owner, name):
    real = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return calls


def _assert_nothing_half_done(cache: Path, key: str) -> None:
    assert key not in c._kernels
    assert f"funcgrad_kernel_{key[:40]}" not in sys.modules
    assert _leftovers(cache) == []


@pytest.mark.parametrize("where", ["numba compile", "cache write", "cache load"])
def test_interrupted_compile_retries_cleanly(private_cache, monkeypatch, where):
    import numba.core.compiler
    import numba.core.dispatcher

    const = {"numba compile": 1.0625, "cache write": 1.1875, "cache load": 1.3125}[where]
    x = np.linspace(-1.0, 1.0, 9)
    want = np.cos(x) * const - x

    def fun(x):
        return fnp.cos(x) * const - x

    key = c.cache_key(fg.jit(fun).lower(x).as_text())
    if where == "cache load":  # a valid entry on disk, not in memory
        np.testing.assert_allclose(fg.jit(fun)(x), want, rtol=1e-12)
        del sys.modules[c._kernels.pop(key).module.__name__]
        owner, name = numba.core.compiler.CompileResult, "_rebuild"
    elif where == "cache write":
        owner, name = disk_cache, "_fill"
    else:
        owner, name = numba.core.dispatcher.Dispatcher, "compile"
    calls = _interrupt_once(monkeypatch, owner, name)
    f = fg.jit(fun)
    with pytest.raises(KeyboardInterrupt):
        f(x)
    assert calls
    _assert_nothing_half_done(private_cache, key)
    np.testing.assert_allclose(f(x), want, rtol=1e-12)  # the same jitted function
    np.testing.assert_allclose(fg.jit(fun)(x), want, rtol=1e-12)
    kernel = c._kernels[key]
    assert kernel.from_disk == (where == "cache load")
    assert sys.modules[kernel.module.__name__] is kernel.module
    assert len(list(private_cache.glob(f"k_{kernel.key[:40]}.*.nbc"))) == 1


# ----------------------------------------------------------------------------------------
# Item 9c: the output pool's settings and its reference-count test


def test_output_pool_setting_is_checked(monkeypatch):
    for bad in ["nan", "inf", "-3", "abc", "1e400"]:
        monkeypatch.setenv("FUNCGRAD_OUTPUT_POOL_MB", bad)
        with pytest.raises(ValueError, match=r"FUNCGRAD_OUTPUT_POOL_MB='.*' is not valid"):
            buffers._budget()
    for good, want in [("0", 0), ("1.5", 3 << 19), (" 8 ", 8 << 20), ("", 256 << 20)]:
        monkeypatch.setenv("FUNCGRAD_OUTPUT_POOL_MB", good)
        assert buffers._budget() == want


_POOL_CHECK = textwrap.dedent(
    """
    import numpy as np
    from funcgrad.backend.numba import buffers

    assert buffers._FREE_REFS is not None and buffers._FREE_REFS == buffers._calibrate()
    pool = buffers.OutputPool(1 << 20)
    shape, dt = (16,), np.dtype(np.float64)
    a = pool.empty(shape, dt)
    a[:] = 1.0
    b = pool.empty(shape, dt)  # a is alive: another block
    assert not np.shares_memory(a, b)
    part = a[3:]  # a slice keeps a's block busy
    del a
    c = pool.empty(shape, dt)
    assert not np.shares_memory(part, c) and not np.shares_memory(b, c)
    held = [np.asarray(c)]
    del c
    d = pool.empty(shape, dt)
    assert not np.shares_memory(held[0], d)
    del part, held
    e = pool.empty(shape, dt)  # a's block is free again: recycled
    assert np.shares_memory(e, pool._blocks[(shape, dt)][0])
    print("ok")
    """
)


def test_output_pool_recycles_only_unreferenced_blocks():
    proc = subprocess.run(
        [sys.executable, "-c", _POOL_CHECK], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


_OTHER_PYTHONS = [p for p in os.environ.get("FUNCGRAD_TEST_PYTHONS", "").split(os.pathsep) if p]


@pytest.mark.skipif(not _OTHER_PYTHONS, reason="FUNCGRAD_TEST_PYTHONS names no interpreter")
@pytest.mark.parametrize("python", _OTHER_PYTHONS)
def test_output_pool_on_other_pythons(python):
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run(
        [python, "-c", _POOL_CHECK],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_concurrent_compiles_share_one_kernel_per_key(private_cache):
    # The background compile worker and the main thread may ask for the same kernels.
    from concurrent.futures import ThreadPoolExecutor

    x = np.linspace(-1.0, 1.0, 11)
    consts = [0.40625, 0.53125, 0.65625]
    lowered = [fg.jit(lambda x, k=k: fnp.tanh(x) * k - fnp.sin(x)).lower(x) for k in consts]
    with ThreadPoolExecutor(6) as pool:
        kernels = list(pool.map(lambda i: lowered[i % 3].lowering.compile(), range(18)))
    for i, k in enumerate(consts):
        mine = {id(kernels[j]) for j in range(i, 18, 3)}
        assert len(mine) == 1  # compiled once, shared
        out = kernels[i](x)
        out = out[0] if isinstance(out, tuple) else out
        np.testing.assert_allclose(out, np.tanh(x) * k - np.sin(x), rtol=1e-12)
