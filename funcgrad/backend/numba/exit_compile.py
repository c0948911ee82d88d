"""Finish the kernels a process leaves uncompiled in a detached process, after it exits.

A program shorter than its kernels' compile ends on the interpreter tier with compiles
still queued. Waiting for them at exit would make the user wait for a compile after their
program is done; dropping them would make the next run cold again. Instead, at exit
(``tiers.py``) each pending kernel is written as a *job* file into the private cache
folder and a detached, low-priority ``python -m funcgrad.backend.numba.exit_compile
JOB...`` compiles them into the disk cache while the user goes on; the next run loads them.

A job holds the source text funcgrad generated, the names and flags the compile needs, and
the argument types. Its trust is that of a compiled-code entry of the same folder (see
``disk_cache.py``): it is read only from ``<cache>/pending/`` in a private folder of this
user, and its source is compiled only if its key (SHA-256 of the backend fingerprint and
the text) matches the one the job records, so a job from another funcgrad or numba version
is ignored. A job file is deleted when its kernel is done; ``pending_jobs()`` lists the
ones still running (benchmarks wait on it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from funcgrad.backend.numba import compile, disk_cache
from funcgrad.core import ShapedArray

JOBS_FOLDER = "pending"


def _jobs_folder(root: Path) -> Path | None:
    folder = root / JOBS_FOLDER
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if disk_cache.unsafe_reason(folder) is not None:
            return None
    except OSError:
        return None
    return folder


#: A job file older than this is from a compile process that was killed: it is ignored
#: and deleted by the next hand-off.
STALE_JOB_S = 3600.0


def pending_jobs(root: Path | None = None) -> list[Path]:
    """Job files of detached compiles that have not finished (in this cache folder)."""
    root = root if root is not None else disk_cache.folder()
    if root is None:
        return []
    return [p for p in sorted((root / JOBS_FOLDER).glob("*.json")) if not _stale(p)]


def _stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= STALE_JOB_S
    except OSError:
        return True  # gone meanwhile


def _aval_json(aval: Any) -> list:
    return [np.dtype(aval.dtype).name, [int(n) for n in aval.shape]]


def hand_off(lowerings: list[Any]) -> tuple[int, int] | None:
    """Compile ``lowerings`` (``backend.numba.Lowering``s) into the disk cache in a detached
    process; returns its pid and how many kernels it compiles, or None when there is no
    disk cache to fill or nothing missing from it.

    One job file per kernel, ``pending/k_<key>.json``, claimed exclusively: processes that
    exit together with the same kernel pending (MPI ranks, a pool's workers) hand it off
    once."""
    root = disk_cache.folder()
    if root is None or not lowerings:
        return None
    folder = _jobs_folder(root)
    if folder is None:
        return None
    for path in folder.glob("*.json"):
        if _stale(path):
            path.unlink(missing_ok=True)
    paths = []
    for lowering in lowerings:
        source = lowering.source
        key = compile.cache_key(source.text)
        if any(root.glob(f"k_{key[:40]}.*.nbc")):
            continue  # compiled by an earlier run: this one ended while loading it
        job = {
            "key": key,
            "text": source.text,
            "entry": source.entry,
            "functions": list(source.functions),
            "helpers": list(source.helpers),
            "parallel": bool(source.parallel),
            "buffers": [_aval_json(a) for a in source.buffers],
            "in_avals": [_aval_json(a) for a in lowering.jaxpr.in_avals],
        }
        path = folder / f"k_{key[:40]}.json"
        if _claim(path, json.dumps([job]).encode()):
            paths.append(path)
    if not paths:
        return None
    detach: dict[str, Any] = (
        {"start_new_session": True}
        if os.name == "posix"
        else {"creationflags": getattr(subprocess, "DETACHED_PROCESS", 0)}
    )
    # The same funcgrad as this process's, however it was found (an installed package, or
    # a folder its script put on sys.path).
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "funcgrad.backend.numba.exit_compile", *map(str, paths)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env=env,
            **detach,
        )
    except OSError:
        for path in paths:
            path.unlink(missing_ok=True)
        return None
    return proc.pid, len(paths)


def _claim(path: Path, data: bytes) -> bool:
    """Create job file ``path`` holding ``data``, whole and only if it does not exist."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if not disk_cache.write_file(tmp, data):
        return False
    try:
        os.link(tmp, path)  # atomic, and fails if another process claimed it first
        return True
    except OSError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


class _Source:
    """What ``compile.compile_source`` reads of a ``codegen.Source``, rebuilt from a job."""

    def __init__(self, job: dict) -> None:
        self.text: str = job["text"]
        self.entry: str = job["entry"]
        self.functions: list[str] = job["functions"]
        self.helpers: list[str] = job["helpers"]
        self.parallel: bool = job["parallel"]
        self.buffers = [_aval(a) for a in job["buffers"]]
        self.line_eqns: dict = {}  # error messages name no equations here
        self.plans: list = []


def _aval(a: Any) -> ShapedArray:
    dtype, shape = a
    if not isinstance(dtype, str) or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"bad argument type {a!r:.80}")
    return ShapedArray(tuple(shape), np.dtype(dtype))


def _valid(job: Any) -> bool:
    names = ("key", "text", "entry")
    lists = ("functions", "helpers", "buffers", "in_avals")
    return (
        isinstance(job, dict)
        and all(isinstance(job.get(k), str) for k in names)
        and all(isinstance(job.get(k), list) for k in lists)
        and all(isinstance(n, str) for n in job["functions"] + job["helpers"])
        and isinstance(job.get("parallel"), bool)
    )


def run(path: Path) -> int:
    """Compile the kernels of job file ``path`` into the disk cache; returns how many were
    compiled or already there. Jobs outside this user's private cache folder, malformed
    ones and sources whose key does not match are skipped; the file is deleted."""
    root = disk_cache.folder()
    if root is None or path.parent != root / JOBS_FOLDER:
        return 0
    done = 0
    try:
        data = disk_cache.read_file(path)
        jobs = json.loads(data) if data is not None else []
        for job in jobs if isinstance(jobs, list) else []:
            if not _valid(job) or compile.cache_key(job["text"]) != job["key"]:
                continue
            try:
                compile.compile_source(_Source(job), [_aval(a) for a in job["in_avals"]])
                done += 1
            except Exception:  # noqa: BLE001 - the next run compiles it and reports why
                continue
    except ValueError:  # not JSON
        pass
    finally:
        path.unlink(missing_ok=True)
    return done


def main(argv: list[str]) -> int:
    if hasattr(os, "nice"):
        try:
            os.nice(10)  # after the user's own work
        except OSError:
            pass
    for arg in argv:
        run(Path(arg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
