"""Atomic file replacement that behaves like a careful editor.

``atomic_write(path, write)`` writes into a private temporary file next to the *target*
(a symlink's final target, so the link itself survives), gives it the target's permission
bits (a 0600 file stays 0600; a new file gets ``0666 & ~umask``), fsyncs it and moves it
into place with ``os.replace``. A crash leaves either the old or the new file, never half
of one. Temporaries carry the writer's pid; ones whose writer is gone (a killed save) are
removed by the next save of the same target.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "resolve_target"]


def resolve_target(path: str | os.PathLike) -> str:
    """The file a write to ``path`` should replace: symlinks followed to their target
    (also a dangling one, which the write then creates)."""
    return os.path.realpath(os.fspath(path))


def _temp_prefix(target: str) -> str:
    return f".{os.path.basename(target)}.tmp-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (or we cannot tell): leave it alone
    return True


def _clean_stale(folder: str, target: str) -> None:
    """Remove temporaries of ``target`` left by saves whose process is gone."""
    prefix = _temp_prefix(target)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_part = name[len(prefix) :].split("-", 1)[0]
        if not pid_part.isdigit() or _pid_alive(int(pid_part)):
            continue
        full = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` (through symlinks) by what ``write(file)`` writes, atomically."""
    target = resolve_target(path)
    folder = os.path.dirname(target)
    _clean_stale(folder, target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{_temp_prefix(target)}{os.getpid()}-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
