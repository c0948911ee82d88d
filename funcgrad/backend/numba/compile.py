"""Compile generated sources with numba: the lazy import, the one ``njit`` wrapper, caches.

- numba is imported on the first compile, never at ``import funcgrad``.
- :func:`njit` is the only place that decides compiler flags: ``error_model="numpy"``
  (float division by zero gives inf/nan, as NumPy, instead of raising), FMA contraction
  only (``fastmath={"contract"}``: no flag that changes NaN/inf semantics), ``nogil``.
- Memory cache: one :class:`Kernel` per cache key per process.
- Disk cache: the source is written once to ``<cache>/<key>.py`` (never rewritten: numba
  stamps its index with the file's mtime and size), imported under a module name
  registered in ``sys.modules`` (numba's cache loader needs an importable module), and
  compiled with ``njit(cache=True)``; numba's stock locator then keeps the machine code in
  ``<cache>/__pycache__``. A second process with the same program compiles nothing.
- The key is the SHA-256 of the generated source (which embeds the jaxpr text and every
  shape and dtype) plus the funcgrad, numba and Python versions and the helper sources.

``FUNCGRAD_CACHE_DIR`` picks the folder (default: ``$XDG_CACHE_HOME/funcgrad/kernels`` or
``~/.cache/funcgrad/kernels``); ``FUNCGRAD_NUM_THREADS`` turns ``prange`` threads on and
sets their count (see ``lowering.parallel_threshold``); on AVX-512 machines kernels use
512-bit vectors unless ``FUNCGRAD_VECTOR_WIDTH=256`` (see :func:`_prefer_wide_vectors`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from funcgrad.backend.numba import buffers
from funcgrad.errors import LoweringError

_numba: Any = None
_lock = threading.RLock()


def numba_module() -> Any:
    """``import numba`` on first use (it takes a few hundred ms), and apply settings."""
    global _numba
    if _numba is None:
        import numba

        _prefer_wide_vectors(numba)
        threads = os.environ.get("FUNCGRAD_NUM_THREADS", "").strip().lower()
        if threads.isdigit() and int(threads) >= 2:
            numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        _numba = numba
    return _numba


def _prefer_wide_vectors(numba: Any) -> None:
    """Let LLVM use 512-bit vectors on AVX-512 machines (``FUNCGRAD_VECTOR_WIDTH=256`` opts
    out).

    LLVM's tuning for Intel cores with AVX-512 prefers 256-bit vectors (older parts lowered
    their clock on 512-bit instructions). funcgrad's kernels are long arithmetic loops over
    the polynomial math library, where 512-bit lanes measured 1.3-2x faster per function
    and 1.8x on a fused ``sin(x)*exp(-x*x)+tanh(x)`` (``benchmarks/mathlib_bench.py``).
    numba has one CPU feature string per process, read when its CPU target is first
    created, so this applies only when nothing compiled with numba before funcgrad's first
    kernel and the user set neither ``NUMBA_CPU_NAME`` nor ``NUMBA_CPU_FEATURES``. It changes
    the vector width only: elementwise results are identical either way (other numba code
    with ``fastmath`` reductions may round differently, as with any vector width).
    """
    cfg = numba.config
    if os.environ.get("FUNCGRAD_VECTOR_WIDTH", "").strip() == "256":
        return
    if cfg.CPU_NAME is not None or cfg.CPU_FEATURES is not None:
        return
    from numba.core import registry

    if "_toplevel_target_context" in vars(registry.cpu_target):
        return  # numba already compiled something: keep the process consistent
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        cfg.CPU_FEATURES = features + ",-prefer-256-bit"


FLAGS: dict[str, Any] = {
    "error_model": "numpy",
    "fastmath": {"contract"},
    "nogil": True,
    "boundscheck": False,
}


def njit(fn: Any, *, parallel: bool = False, cache: bool = True) -> Any:
    """The one njit wrapper: every kernel, sub-function and helper compiles through here."""
    return numba_module().njit(cache=cache, parallel=parallel, **FLAGS)(fn)


def cache_dir() -> Path:
    env = os.environ.get("FUNCGRAD_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "funcgrad" / "kernels"


_fingerprint: str | None = None


def _backend_fingerprint() -> str:
    """Versions and the sources kernels call into (a change there must miss the cache)."""
    global _fingerprint
    if _fingerprint is None:
        import funcgrad
        from funcgrad.backend.numba import helpers

        h = hashlib.sha256()
        h.update(f"funcgrad {funcgrad.__version__}\n".encode())
        h.update(f"numba {numba_module().__version__}\n".encode())
        h.update(f"python {sys.version_info[:3]}\n".encode())
        h.update(repr(sorted(FLAGS.items(), key=str)).encode())
        h.update(Path(helpers.__file__).read_bytes())
        for mod in ("funcgrad.backend.numba.random_kernels", "funcgrad.backend.numba.mathlib"):
            spec = importlib.util.find_spec(mod)  # read, not imported
            if spec is not None and spec.origin:
                h.update(Path(spec.origin).read_bytes())
        _fingerprint = h.hexdigest()
    return _fingerprint


def cache_key(text: str) -> str:
    h = hashlib.sha256(_backend_fingerprint().encode())
    h.update(text.encode())
    return h.hexdigest()


class Kernel:
    """A compiled kernel: ``kernel(*arrays)`` returns one array or a tuple of arrays.

    ``dispatcher`` is numba's compiled function; ``fn`` is what callers call: the dispatcher
    itself, or a wrapper that appends the source's caller-allocated outputs to the
    arguments (``buffers.py``).
    """

    __slots__ = ("key", "source", "dispatcher", "fn", "path", "compile_s", "from_disk")

    def __init__(
        self, key: str, source: Any, dispatcher: Any, path: Path, compile_s: float, from_disk: bool
    ) -> None:
        self.key = key
        self.source = source
        self.dispatcher = dispatcher
        self.fn = buffers.with_buffers(dispatcher, source.buffers)
        self.path = path
        self.compile_s = compile_s
        self.from_disk = from_disk

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


_kernels: dict[str, Kernel] = {}
_helpers: dict[str, Any] = {}


def _write_once(path: Path, text: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)  # atomic, and fails if another process got there first
    except FileExistsError:
        pass
    except OSError:  # no hard links on this filesystem
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _source_path(key: str, text: str) -> Path:
    """Write the kernel source once into the cache folder (or, if that folder cannot be
    written, a per-user temporary one) and return its path."""
    name = f"k_{key[:40]}.py"
    try:
        path = cache_dir() / name
        _write_once(path, text)
    except OSError:
        import tempfile

        user = getattr(os, "getuid", lambda: 0)()
        path = Path(tempfile.gettempdir()) / f"funcgrad-kernels-{user}" / name
        _write_once(path, text)
    return path


def _import(modname: str, path: Path) -> Any:
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def _helper(name: str) -> Any:
    fn = _helpers.get(name)
    if fn is None:
        from funcgrad.backend.numba import helpers

        build = getattr(helpers, f"_numba_{name}", None)
        fn = build() if build is not None else getattr(helpers, name)
        if not hasattr(fn, "py_func"):  # plain Python: compile it; dispatchers are kept
            fn = njit(fn, cache=False)
        _helpers[name] = fn
    return fn


def array_type(aval: Any) -> Any:
    nb = numba_module()
    return nb.types.Array(nb.from_dtype(aval.dtype), aval.ndim, "C")


def compile_source(source: Any, in_avals: list[Any]) -> Kernel:
    """The kernel for ``source`` (a ``codegen.Source``), compiled or loaded once."""
    key = cache_key(source.text)
    kernel = _kernels.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is not None:
            return kernel
        t0 = time.perf_counter()
        path = _source_path(key, source.text)
        try:
            mod = _import(f"funcgrad_kernel_{key[:40]}", path)
            for name in source.helpers:
                setattr(mod, name, _helper(name))
            for fname in source.functions:
                if fname != source.entry:
                    setattr(mod, fname, njit(getattr(mod, fname), cache=False))
            fn = njit(getattr(mod, source.entry), parallel=source.parallel)
            fn.compile(tuple(array_type(a) for a in [*in_avals, *source.buffers]))
        except Exception as e:  # noqa: BLE001 - any numba failure becomes a LoweringError
            raise _lowering_error(source, path, e, in_avals) from None
        fn.disable_compile()  # other layouts are converted by the caller instead
        from_disk = sum(fn.stats.cache_hits.values()) > 0
        kernel = Kernel(key, source, fn, path, time.perf_counter() - t0, from_disk)
        _kernels[key] = kernel
        return kernel


def _lowering_error(source: Any, path: Path, e: Exception, in_avals: list[Any]) -> LoweringError:
    """Name the equation numba failed on: compile each equation alone to find it (only on
    this error path), else map numba's line number back through the source."""
    from funcgrad.backend.numba.codegen import lowering_error

    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    reason = _first_line(msg)
    culprit = _probe(source)
    if culprit is not None:
        eqn, why = culprit
        return lowering_error(eqn, f"numba failed: {why}")
    name = re.escape(path.name)
    lines = [int(a or b) for a, b in re.findall(rf'{name}", line (\d+)|{name} \((\d+)\)', msg)]
    for n in lines:
        eqn = source.line_eqns.get(n)
        if eqn is not None:
            err = lowering_error(eqn, f"numba failed: {reason}")
            return LoweringError(f"{err} (kernel source: {path}, line {n})")
    prims = sorted({eqn.primitive.name for eqn in source.line_eqns.values()})
    return LoweringError(
        f"numba backend could not compile kernel {source.entry} (primitives: "
        f"{', '.join(prims) or 'none'}): {reason} (kernel source: {path})"
    )


_PROBE_LIMIT = 64


def _probe(source: Any) -> tuple[Any, str] | None:
    """The first equation of the failing kernel that fails to compile on its own."""
    from funcgrad.backend.numba import codegen
    from funcgrad.ir import Jaxpr, Var

    eqns = source.plan.jaxpr.eqns
    if len(eqns) <= 1 or len(eqns) > _PROBE_LIMIT:
        return None
    for eqn in eqns:
        ins = list(dict.fromkeys(x for x in eqn.inputs if type(x) is Var))
        one = Jaxpr([], ins, [eqn], list(eqn.outvars))
        try:
            sub = codegen.generate(one, "probe")
            key = cache_key(sub.text)
            mod = _import(f"funcgrad_probe_{key[:40]}", _probe_file(sub.text, key))
            for name in sub.helpers:
                setattr(mod, name, _helper(name))
            for fname in sub.functions:
                if fname != sub.entry:
                    setattr(mod, fname, njit(getattr(mod, fname), cache=False))
            njit(getattr(mod, sub.entry), cache=False).compile(
                tuple(array_type(v.aval) for v in ins)
            )
        except Exception as e:  # noqa: BLE001
            return eqn, _first_line(re.sub(r"\x1b\[[0-9;]*m", "", str(e)))
    return None


def _probe_file(text: str, key: str) -> Path:
    import tempfile

    path = Path(tempfile.gettempdir()) / f"funcgrad_probe_{key[:40]}.py"
    _write_once(path, text)
    return path


def _first_line(msg: str) -> str:
    """The informative line of a numba error (not its pipeline banner or locations)."""
    for line in msg.splitlines():
        line = line.strip()
        if line and not line.startswith(("File ", "During:", "^", "Failed in ", "<source")):
            return line[:300]
    return msg.strip().splitlines()[0][:300] if msg.strip() else type(msg).__name__
