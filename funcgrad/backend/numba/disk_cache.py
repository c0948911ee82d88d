"""The on-disk kernel cache: a private folder of verified entries, bounded in size.

Security model. A cache entry is code that funcgrad runs: the kernel's Python source and
the compiled machine code numba stores for it (a pickle, which can run anything when
loaded). So:

- Where: ``FUNCGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/funcgrad/kernels``, else
  ``~/.cache/funcgrad/kernels``. There is no other location: when that folder is unusable
  (cannot be created, or fails the checks below) jit runs uncached (kernels compiled in
  memory, nothing read from or written to disk) after one warning. Nothing is ever written
  to, or imported from, the shared temporary directory.
- Who may write it: only the user running funcgrad. The folder is created with mode 0700,
  and before first use in a process it must be a folder owned by the current uid that is
  writable by neither group nor others; a symlink to it must be owned by the current uid
  too; no folder above it may be writable by everyone without the sticky bit (``/tmp``
  itself is fine). A folder that fails is refused, never "fixed". Files are created 0600.
  Where there is no POSIX file ownership to check (Windows), the disk cache is off.
- What is verified, before anything is executed or unpickled: the entry's key is the
  SHA-256 of funcgrad's backend fingerprint (funcgrad, numba and Python versions, helper
  sources) and the kernel source. The source funcgrad executes is the text it just
  generated in memory (or, in the detached compile a program hands its unfinished kernels
  to at exit, the text that program generated, read from a job file in ``pending/`` of
  this folder and compiled only if it hashes to the key the job names: ``exit_compile.py``);
  the ``k_<key>.py`` file is a readable copy (for tracebacks and error messages), compared
  byte for byte with that text. Compiled code lives in
  ``k_<key>.<target>.nbc`` files that start with a header naming the full key, the numba
  signature and target CPU they were compiled for, and the SHA-256 and length of the
  pickled payload that follows; the payload is unpickled only if all of them match. Every
  read checks the bytes it read itself (no window between the check and the use). A
  mismatch, a truncated or unreadable file, or a payload numba cannot rebuild is a cache
  miss: a warning names the file, the entry is deleted and the kernel is compiled again.
  numba's own cache files (``__pycache__/*.nbi``/``*.nbc``) are not used for kernels.
- Not defended against: anything running as the same user (or root), which can edit the
  folder and recompute the hashes as easily as funcgrad (the hashes detect damage and
  stale or foreign entries; they are not signatures); a folder above the cache that is
  writable by a group the user is in. numba's own cache of funcgrad's library functions
  (``mathlib``, the random kernels; next to the installed package, or ``NUMBA_CACHE_DIR``)
  is numba's and is trusted like the installed package.

Robustness: a write that fails (full disk, read-only folder, quota) leaves no temporary
file behind and degrades to an in-memory kernel with one warning per process; writes are
atomic (temporary file, then rename), so readers see whole files or none.

Size: the folder holds at most ``FUNCGRAD_CACHE_MAX_MB`` megabytes (default 1024; ``0``
turns the disk cache off). It is checked after the first compiled-code write of a process
and every :data:`TRIM_EVERY` such writes after; when over the limit, whole entries are
deleted, least recently used first (a load refreshes an entry's modification time), down
to 90% of it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import stat
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from funcgrad.backend.numba.buffers import env_number


class KernelCacheWarning(UserWarning):
    """The disk kernel cache was refused, damaged or could not be written (jit still works)."""


#: Writes between two size checks of the cache folder.
TRIM_EVERY = 64
_MAGIC = b"funcgrad-kernel-cache 1\n"
_STALE_TMP_S = 3600.0  # a temporary file this old belongs to a killed process

_lock = threading.RLock()
_folders: dict[str, Path | None] = {}
_warned: set[str] = set()
_writes = 0


def cache_dir() -> Path:
    """The configured cache folder (``FUNCGRAD_CACHE_DIR``, else the XDG cache folder)."""
    env = os.environ.get("FUNCGRAD_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "funcgrad" / "kernels"


def max_bytes() -> int:
    """``FUNCGRAD_CACHE_MAX_MB`` in bytes (0: no disk cache)."""
    mb = env_number("FUNCGRAD_CACHE_MAX_MB", 1024.0, "0 turns the disk kernel cache off")
    return int(mb * (1 << 20))


def _warn(once_key: str | None, msg: str) -> None:
    if once_key is not None:
        if once_key in _warned:
            return
        _warned.add(once_key)
    warnings.warn(f"funcgrad kernel cache: {msg}", KernelCacheWarning, stacklevel=3)


def folder() -> Path | None:
    """The checked private cache folder, or None (disk cache off, or folder refused).

    Decided once per process and path, with a warning when refused."""
    path = cache_dir()
    name = str(path)
    if name in _folders:
        return _folders[name]
    with _lock:
        if name not in _folders:
            _folders[name] = _open_folder(path)
        return _folders[name]


def _open_folder(path: Path) -> Path | None:
    if max_bytes() == 0:
        return None
    if not hasattr(os, "getuid"):  # no POSIX ownership to check (Windows): stay uncached
        _warn("platform", "no POSIX file ownership on this platform; kernels are not cached")
        return None
    try:
        if not os.path.lexists(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
        reason = unsafe_reason(path)
    except OSError as e:
        reason = f"cannot be created or inspected ({e.strerror or e})"
    if reason is not None:
        _warn(
            f"refused:{path}",
            f"not using {path}: it {reason}. Kernels are compiled in memory only. "
            "Fix: point FUNCGRAD_CACHE_DIR at a folder only you can write (chmod 700), "
            "or remove this one so funcgrad creates it.",
        )
        return None
    return path


def unsafe_reason(path: Path) -> str | None:
    """Why ``path`` must not hold cache entries (None: a private folder of this user)."""
    uid = os.getuid()
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid != uid:
            return f"is a symlink owned by uid {st.st_uid}, not by you (uid {uid})"
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o022:
        who = "group and others" if st.st_mode & 0o022 == 0o022 else "group"
        who = "others" if st.st_mode & 0o022 == 0o002 else who
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    real = Path(os.path.realpath(path))
    for parent in real.parents:
        pst = os.stat(parent)
        if pst.st_mode & 0o002 and not pst.st_mode & stat.S_ISVTX:
            return f"is inside {parent}, which everyone may write (no sticky bit)"
    return None


def read_file(path: Path) -> bytes | None:
    """The bytes of a regular file, or None if it is missing or not a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)  # no symlink followed; a FIFO does not block
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read()


def _fill(f: Any, data: bytes) -> None:
    f.write(data)


def write_file(path: Path, data: bytes, *, counted: bool = False) -> bool:
    """Write ``path`` atomically (mode 0600); on failure warn once, leave nothing, False.

    ``counted`` writes (compiled code) trigger the size check, the first one in a process
    and every :data:`TRIM_EVERY` after."""
    global _writes
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            _fill(f, data)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        _warn(
            "write",
            f"cannot write {path.parent} ({e.strerror or e}); kernels that are not cached "
            "yet are compiled in memory only"
            + (" (the disk is full: free space or set FUNCGRAD_CACHE_MAX_MB)" if full else ""),
        )
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    if counted:
        _writes += 1
        if _writes % TRIM_EVERY == 1:
            trim(path.parent)
    return True


class Entry:
    """One kernel's files in the cache folder: ``k_<key>.py`` and ``k_<key>.<target>.nbc``."""

    def __init__(self, root: Path, key: str, text: str) -> None:
        self.root = root
        self.key = key
        self.text = text
        self.stem = f"k_{key[:40]}"
        self.py = root / f"{self.stem}.py"

    def source_path(self) -> Path | None:
        """The verified readable copy of the source (written if missing), or None."""
        data = self.text.encode()
        existing = read_file(self.py)
        if existing == data:
            return self.py
        if existing is not None or os.path.lexists(self.py):
            self.discard(f"{self.py.name} does not match the source of its key")
        return self.py if write_file(self.py, data) else None

    def discard(self, why: str) -> None:
        """Warn about a damaged or foreign entry and delete all its files."""
        _warn(None, f"{why}; discarded {self.stem} (it is compiled again, never executed)")
        for p in self.root.glob(f"{self.stem}.*"):
            try:
                p.unlink()
            except OSError:
                pass

    def data_path(self, target: str) -> Path:
        return self.root / f"{self.stem}.{target[:16]}.nbc"


def _target_digest(py_func: Any, sig: Any, codegen: Any) -> str:
    """What numba keys its own cache index on: the signature, the target CPU and features,
    and the function's bytecode."""
    h = hashlib.sha256(repr((str(sig), codegen.magic_tuple())).encode())
    h.update(py_func.__code__.co_code)
    return h.hexdigest()


class NumbaCache:
    """numba's per-dispatcher cache interface (``load_overload``/``save_overload``), on one
    verified :class:`Entry`: numba never opens a cache file itself."""

    def __init__(self, entry: Entry, py_func: Any) -> None:
        self.entry = entry
        self.py_func = py_func

    @property
    def cache_path(self) -> str:
        return str(self.entry.root)

    # numba's cache protocol also has these switches; this cache is always on and writes
    # each entry atomically as it is saved, so they have nothing to do.
    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        from numba.core.compiler import CompileResult

        target_context.refresh()
        target = _target_digest(self.py_func, sig, target_context.codegen())
        path = self.entry.data_path(target)
        blob = read_file(path)
        if blob is None:
            return None
        payload, why = self._verify(blob, target)
        if payload is None:
            self.entry.discard(f"{path.name} {why}")
            return None
        try:
            cres = CompileResult._rebuild(target_context, *pickle.loads(payload))
        except Exception as e:  # noqa: BLE001 - verified but unusable: recompile
            self.entry.discard(f"{path.name} could not be loaded ({type(e).__name__}: {e})")
            return None
        try:
            os.utime(path)  # most recently used: trimmed last
        except OSError:
            pass
        return cres

    def _verify(self, blob: bytes, target: str) -> tuple[bytes | None, str]:
        import numba

        if not blob.startswith(_MAGIC):
            return None, "has no funcgrad cache header (truncated or foreign)"
        end = blob.find(b"\n", len(_MAGIC))
        try:
            head = json.loads(blob[len(_MAGIC) : end]) if end > 0 else None
        except ValueError:
            head = None
        if not isinstance(head, dict):
            return None, "has a damaged header"
        payload = blob[end + 1 :]
        checks = (
            (head.get("key") == self.entry.key, "was stored under another key"),
            (head.get("target") == target, "was compiled for another signature or CPU"),
            (head.get("numba") == numba.__version__, "was written by another numba version"),
            (head.get("size") == len(payload), "is truncated or has extra bytes"),
            (head.get("sha256") == hashlib.sha256(payload).hexdigest(), "is damaged (digest)"),
        )
        for ok, why in checks:
            if not ok:
                return None, why
        return payload, ""

    def save_overload(self, sig: Any, cres: Any) -> None:
        import numba
        from numba.core.serialize import dumps

        if any(not x.can_cache for x in cres.lifted) or cres.library.has_dynamic_globals:
            return  # numba cannot serialize it: the kernel stays in memory
        if self.py_func.__closure__ is not None:
            return
        target = _target_digest(self.py_func, sig, cres.codegen)
        try:
            payload = dumps(cres._reduce())
        except Exception as e:  # noqa: BLE001 - not serializable: stays in memory
            _warn(f"reduce:{self.entry.stem}", f"cannot serialize {self.entry.stem}: {e}")
            return
        head = {
            "key": self.entry.key,
            "target": target,
            "numba": numba.__version__,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        header = _MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n"
        write_file(self.entry.data_path(target), header + payload, counted=True)


def trim(root: Path, limit: int | None = None) -> None:
    """Delete least recently used entries whole until the folder is under ``limit`` bytes
    (default ``FUNCGRAD_CACHE_MAX_MB``), and temporary files left by killed processes."""
    limit = max_bytes() if limit is None else limit
    entries: dict[str, list[Any]] = {}  # stem -> [bytes, newest mtime, paths]
    now = time.time()
    try:
        scan = list(os.scandir(root))
    except OSError:
        return
    for de in scan:
        name = de.name
        try:
            st = de.stat(follow_symlinks=False)
        except OSError:
            continue
        if name.startswith(".k_") and name.endswith(".tmp"):
            if now - st.st_mtime > _STALE_TMP_S:
                _unlink(de.path)
            continue
        if not name.startswith("k_") or len(name) < 43:
            continue
        e = entries.setdefault(name[:42], [0, 0.0, []])
        e[0] += st.st_size
        e[1] = max(e[1], st.st_mtime)
        e[2].append(de.path)
    _drop_legacy(root)
    total = sum(e[0] for e in entries.values())
    if total <= limit:
        return
    for size, _, paths in sorted(entries.values(), key=lambda e: e[1]):
        if total <= 0.9 * limit:
            break
        for p in paths:
            _unlink(p)
        total -= size


def _drop_legacy(root: Path) -> None:
    """Delete numba cache files of kernels from funcgrad versions before verified entries
    (``__pycache__/k_*``): they are never read."""
    try:
        with os.scandir(root / "__pycache__") as it:
            for de in it:
                if de.name.startswith("k_"):
                    _unlink(de.path)
    except OSError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def reset_for_tests() -> None:
    """Forget folder decisions and warnings (tests change ``FUNCGRAD_CACHE_DIR``)."""
    global _writes
    with _lock:
        _folders.clear()
        _warned.clear()
        _writes = 0


__all__ = ["KernelCacheWarning", "cache_dir", "folder", "Entry", "NumbaCache", "trim"]
