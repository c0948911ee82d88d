"""Compile generated sources with numba: the lazy import, the one ``njit`` wrapper, caches.

- numba is imported on the first compile, never at ``import funcgrad``.
- :func:`njit` is the only place that decides compiler flags: ``error_model="numpy"``
  (float division by zero gives inf/nan, as NumPy, instead of raising), FMA contraction
  only (``fastmath={"contract"}``: no flag that changes NaN/inf semantics), ``nogil``.
- Memory cache: one :class:`Kernel` per cache key, least recently used evicted past
  ``FUNCGRAD_KERNEL_CACHE_SIZE`` kernels (default 256).
- Disk cache (``disk_cache.py``, which states its security model): the generated source
  is executed from memory in a fresh module, registered in ``sys.modules`` while it compiles
  (numba rebuilds a cached kernel's environment by module name) and removed again if the
  compile does not complete; the entry function's dispatcher gets a verified cache object
  in place of numba's stock file cache. A second process with the same program compiles nothing.
- The key is the SHA-256 of the generated source (which embeds the jaxpr text, the dtypes
  and ranks, and the size-dependent plan decisions, but not the sizes themselves: kernels
  are shape-generic, see ``sizes.py``) plus the funcgrad, numba and Python versions and the
  helper sources.

``FUNCGRAD_CACHE_DIR`` picks the folder (default: ``$XDG_CACHE_HOME/funcgrad/kernels`` or
``~/.cache/funcgrad/kernels``) and ``FUNCGRAD_CACHE_MAX_MB`` its size;
``FUNCGRAD_NUM_THREADS`` turns ``prange`` threads on and sets their count (see
``lowering.parallel_threshold``); on AVX-512 machines kernels use 512-bit vectors unless
``FUNCGRAD_VECTOR_WIDTH=256`` (see :func:`_prefer_wide_vectors`).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import os
import re
import sys
import threading
import time
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

from funcgrad.backend.numba import buffers, disk_cache
from funcgrad.backend.numba.syntax import lowering_error
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


def njit(fn: Any, *, parallel: bool = False, cache: bool = False) -> Any:
    """The one njit wrapper: every kernel, sub-function and helper compiles through here.

    Kernels are cached by ``disk_cache.NumbaCache``, never by numba's stock file cache
    (``cache=True``), which would load unverified pickles."""
    return numba_module().njit(cache=cache, parallel=parallel, **FLAGS)(fn)


cache_dir = disk_cache.cache_dir


_fingerprint: str | None = None


#: Modules outside the backend whose functions compiled kernels call (object-mode call-outs).
_CALLOUT_MODULES = ("funcgrad.debug", "funcgrad.distributed", "funcgrad.lax.fft")


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
        # Every backend module (helpers, math library, random kernels, the rules whose
        # call-outs a kernel references by name), and the modules those call-outs live in:
        # a kernel that calls into Python (object mode) pickles references to them.
        backend = Path(helpers.__file__).parent
        for path in sorted(backend.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        for mod in _CALLOUT_MODULES:
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

    __slots__ = ("key", "source", "dispatcher", "fn", "path", "compile_s", "from_disk", "module")

    def __init__(
        self,
        key: str,
        source: Any,
        dispatcher: Any,
        path: Path | None,
        compile_s: float,
        from_disk: bool,
        module: types.ModuleType,
    ) -> None:
        self.key = key
        self.source = source
        self.dispatcher = dispatcher
        self.fn = buffers.with_buffers(dispatcher, source.buffers)
        self.path = path  # the readable source in the disk cache (None: uncached)
        self.compile_s = compile_s
        self.from_disk = from_disk
        self.module = module

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def kernel_cache_size() -> int:
    """``FUNCGRAD_KERNEL_CACHE_SIZE``: kernels kept in this process's table (default 256)."""
    n = buffers.env_number(
        "FUNCGRAD_KERNEL_CACHE_SIZE", 256, "0 keeps none (each lowering compiles or loads again)"
    )
    if n != int(n):
        raise ValueError(
            f"FUNCGRAD_KERNEL_CACHE_SIZE={os.environ['FUNCGRAD_KERNEL_CACHE_SIZE']!r} is not a "
            "whole number of kernels; set it to an integer such as 256"
        )
    return int(n)


# The memory cache: key -> Kernel, least recently used first. Bounded because each kernel
# holds about a megabyte (machine code, numba's type data, the module): jitted functions
# keep their own kernels alive, so eviction only drops this table's reference (and the
# module's sys.modules entry) and a live jitted function keeps working.
_kernels: OrderedDict[str, Kernel] = OrderedDict()
_helpers: dict[str, Any] = {}


def _remember(kernel: Kernel, limit: int) -> None:
    _kernels[kernel.key] = kernel
    while len(_kernels) > limit:
        _, old = _kernels.popitem(last=False)
        if sys.modules.get(old.module.__name__) is old.module:
            del sys.modules[old.module.__name__]


def _helper(name: str) -> Any:
    fn = _helpers.get(name)
    if fn is None:
        from funcgrad.backend.numba import helpers

        build = getattr(helpers, f"_numba_{name}", None)
        fn = build() if build is not None else getattr(helpers, name)
        if not hasattr(fn, "py_func") and not helpers.is_plain(name):
            # plain Python: compile it; dispatchers (and object-mode call-outs) are kept
            fn = njit(fn, cache=False)
        _helpers[name] = fn
    return fn


def array_type(aval: Any) -> Any:
    nb = numba_module()
    return nb.types.Array(nb.from_dtype(aval.dtype), aval.ndim, "C")


def cached_kernel(key: str) -> Kernel | None:
    """The kernel this process's memory cache holds under ``key``, or None: a dict lookup
    that imports nothing (the interpreter tier asks before any compile)."""
    kernel = _kernels.get(key)
    if kernel is not None:
        try:
            _kernels.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile: the kernel still works
            pass
    return kernel


def compile_source(source: Any, in_avals: list[Any]) -> Kernel:
    """The kernel for ``source`` (a ``codegen.Source``), compiled or loaded once.

    Thread-safe (one compile at a time; a memory hit takes no lock) and interruption-safe:
    until the kernel is complete nothing is registered (module, table entry), so a
    compile stopped by any exception, KeyboardInterrupt included, leaves nothing behind
    and the next call starts afresh."""
    key = cache_key(source.text)
    kernel = cached_kernel(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            limit = kernel_cache_size()  # a bad setting fails before any work
            kernel = _build(key, source, in_avals)
            _remember(kernel, limit)
        return kernel


def _build(key: str, source: Any, in_avals: list[Any]) -> Kernel:
    t0 = time.perf_counter()
    root = disk_cache.folder()
    entry = disk_cache.Entry(root, key, source.text) if root is not None else None
    path = entry.source_path() if entry is not None else None
    filename = str(path) if path is not None else f"<funcgrad kernel k_{key[:40]}>"
    modname = f"funcgrad_kernel_{key[:40]}"
    mod = None
    try:
        mod = _module(modname, source.text, filename)
        # numba rebuilds a cached kernel's environment by importing its module by name.
        sys.modules[modname] = mod
        _bind(mod, source)
        fn = njit(getattr(mod, source.entry), parallel=source.parallel, cache=False)
        if entry is not None and path is not None:
            fn._cache = disk_cache.NumbaCache(entry, fn.py_func)
        fn.compile(tuple(array_type(a) for a in [*in_avals, *source.buffers]))
        fn.disable_compile()  # other layouts are converted by the caller instead
    except BaseException as e:
        if mod is not None and sys.modules.get(modname) is mod:
            del sys.modules[modname]
        if isinstance(e, Exception):  # any numba failure becomes a LoweringError
            raise _lowering_error(source, filename, e, in_avals) from None
        raise
    from_disk = sum(fn.stats.cache_hits.values()) > 0
    return Kernel(key, source, fn, path, time.perf_counter() - t0, from_disk, mod)


def _module(name: str, text: str, filename: str) -> types.ModuleType:
    """A fresh module executing ``text``: the generated source in memory, never a file."""
    mod = types.ModuleType(name)
    mod.__file__ = filename
    exec(builtins.compile(text, filename, "exec"), mod.__dict__)
    return mod


def _bind(mod: types.ModuleType, source: Any) -> None:
    """Point the module's helper names at compiled helpers and jit its sub-functions."""
    for name in source.helpers:
        setattr(mod, name, _helper(name))
    for fname in source.functions:
        if fname != source.entry:
            setattr(mod, fname, njit(getattr(mod, fname), cache=False))


def _lowering_error(source: Any, filename: str, e: Exception, in_avals: list[Any]) -> LoweringError:
    """Name the equation numba failed on: compile each equation alone to find it (only on
    this error path), else map numba's line number back through the source."""
    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    reason = _first_line(msg)
    culprit = _probe(source)
    if culprit is not None:
        eqn, why = culprit
        return lowering_error(eqn, f"numba failed: {why}")
    name = re.escape(os.path.basename(filename))
    lines = [int(a or b) for a, b in re.findall(rf'{name}", line (\d+)|{name} \((\d+)\)', msg)]
    for n in lines:
        eqn = source.line_eqns.get(n)
        if eqn is not None:
            err = lowering_error(eqn, f"numba failed: {reason}")
            return LoweringError(f"{err} (kernel source: {filename}, line {n})")
    prims = sorted({eqn.primitive.name for eqn in source.line_eqns.values()})
    return LoweringError(
        f"numba backend could not compile kernel {source.entry} (primitives: "
        f"{', '.join(prims) or 'none'}): {reason} (kernel source: {filename})"
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
            # In memory only, uncached: nothing written to or imported from any folder.
            mod = _module("funcgrad_probe", sub.text, "<funcgrad probe>")
            _bind(mod, sub)
            njit(getattr(mod, sub.entry), cache=False).compile(
                tuple(array_type(v.aval) for v in ins)
            )
        except Exception as e:  # noqa: BLE001
            return eqn, _first_line(re.sub(r"\x1b\[[0-9;]*m", "", str(e)))
    return None


def _first_line(msg: str) -> str:
    """The informative line of a numba error (not its pipeline banner or locations)."""
    for line in msg.splitlines():
        line = line.strip()
        if line and not line.startswith(("File ", "During:", "^", "Failed in ", "<source")):
            return line[:300]
    return msg.strip().splitlines()[0][:300] if msg.strip() else type(msg).__name__
