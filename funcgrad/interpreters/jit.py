"""``jit``: stage a function into a jaxpr once per input signature, run it as a numba kernel.

``jit_p`` is a call primitive carrying its jaxpr (``jaxpr``: a ClosedJaxpr with no
constants, the values the function closed over being leading operands; ``name``). Its
rules transform that jaxpr and bind ``jit`` again, so jit composes with every other
transformation in any order (Autodidax's ``xla_call_p``):

- impl: run the jaxpr's kernel (numba backend, cached on the jaxpr), or the interpreter
  tier while it compiles in the background (``tiers.py``);
- abstract eval: the jaxpr's output types; staging records one ``jit`` equation (the
  backend inlines nested calls before lowering, so ``jit(jit(f))`` is one kernel);
- jvp: ``jit`` of the JVP jaxpr; partial evaluation (reverse mode): ``jit`` of the known
  part now, one ``jit`` equation for the unknown part; transpose: ``jit`` of the transposed
  jaxpr. So ``grad(jit(f))`` runs two kernels (forward with residuals, backward);
- batching: ``jit`` of the batched jaxpr. Transformed jaxprs are memoized per jaxpr.

Tiers (``tiers.py``): a new signature is traced on the calling thread and runs at once on
the NumPy interpreter tier while a background thread builds its kernel; the worker then
swaps the entry's ``call`` to the kernel, so the fast paths below never check a tier.
``compile="sync"`` / ``FUNCGRAD_JIT_COMPILE=sync`` compile on the calling thread instead.
Closed-over constants are normalized once per traced signature to C-contiguous, writeable,
native arrays (any other layout would be refused by numba's frozen dispatcher).

The public :func:`jit` keeps one entry per (input tree, shapes, dtypes, static values). The
eager call path has two fast paths before the general one: plain array arguments (keyed by
their (shape, dtype)), and the pytree structure of the last general-path call, taken apart
by generated code that checks the structure as it goes (``_TreeDispatch``), looked up by the
leaves' shapes (numba's dispatcher checks dtypes and layouts), with outputs rebuilt by a
generated unflatten. Measured on a 100-leaf parameter dict: ~80 us per call, of which ~57 us
is numba's dispatcher (boxing 100 fresh output arrays, ~0.45 us each, and unboxing 100 inputs),
the floor of a kernel returning that many arrays. Any surprise (a leaf that is not an array
or scalar, a non-contiguous or read-only array, another structure) takes the general path.
``FUNCGRAD_LOG_COMPILES=1`` (or ``config.log_compiles = True``)
logs every compile with its reason and the time spent tracing, generating and compiling.

Python scalars passed to a jitted function reach the kernel as float64/int64/bool 0-d
arrays but are traced with a *weak* aval, so they promote like the Python scalar itself:
``jit(f)(x_f32, 2.0)`` stays float32, as the eager ``f`` does (``np.float64(2.0)`` is
strong and gives float64, as in NumPy). The cache keeps the two apart.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from funcgrad import core, tree_util
from funcgrad.api_util import arg_names, fun_name
from funcgrad.core import Primitive, ShapedArray, Tracer
from funcgrad.hints import list_arguments
from funcgrad.interpreters import ad, batching, tiers
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr

log = logging.getLogger("funcgrad.jit")


class _Config:
    """Runtime switches of jit (``funcgrad.interpreters.jit.config``)."""

    def __init__(self) -> None:
        self.log_compiles = os.environ.get("FUNCGRAD_LOG_COMPILES", "") not in ("", "0")


config = _Config()

# ----------------------------------------------------------------------------------------
# The primitive

jit_p = Primitive("jit", multiple_results=True)


@jit_p.def_abstract_eval
def _jit_abstract_eval(*avals, jaxpr, name):
    expected = jaxpr.in_avals
    if len(avals) != len(expected) or any(
        a.strip() != e.strip() for a, e in zip(avals, expected, strict=True)
    ):
        got = ", ".join(a.str_short() for a in avals)
        want = ", ".join(a.str_short() for a in expected)
        raise TypeError(f"jit({name}): called with ({got}) but its jaxpr takes ({want})")
    return list(jaxpr.out_avals)


@jit_p.def_impl
def _jit_impl(*args, jaxpr, name):
    return _executable(jaxpr, name).call_flat(args)


def bind_closed(closed: ClosedJaxpr, args: Sequence[Any], name: str) -> list[Any]:
    """``jit_p.bind`` of ``closed`` on ``args`` (its constants passed as leading operands)."""
    jaxpr, consts = _hoisted(closed)
    return jit_p.bind(*consts, *args, jaxpr=jaxpr, name=name)


def _memoize(fn: Callable) -> Callable:
    """Cache ``fn(closed, *key)`` per jaxpr object (weakly) and hashable ``key``."""
    cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(fn)
    def memo(closed: ClosedJaxpr, *key: Any) -> Any:
        per = cache.get(closed)
        if per is None:
            per = cache[closed] = {}
        if key not in per:
            per[key] = fn(closed, *key)
        return per[key]

    return memo


@_memoize
def _hoisted(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list[Any]]:
    return pe.hoist_consts(closed)


@_memoize
def _jvp_jaxpr(closed: ClosedJaxpr, nonzeros: tuple[bool, ...]):
    return ad.jvp_jaxpr(closed, nonzeros, instantiate=False)


def _jit_jvp(primals, tangents, *, jaxpr, name):
    nonzeros = tuple(type(t) is not ad.Zero for t in tangents)
    jvp_closed, out_nz = _jvp_jaxpr(jaxpr, nonzeros)
    nz_tangents = [t for t in tangents if type(t) is not ad.Zero]
    outs = bind_closed(jvp_closed, [*primals, *nz_tangents], f"jvp({name})")
    n = len(jaxpr.out_avals)
    it = iter(outs[n:])
    t_out = [next(it) if nz else ad.Zero(a) for a, nz in zip(jaxpr.out_avals, out_nz, strict=True)]
    return outs[:n], t_out


@_memoize
def _partial_eval_jaxpr(closed: ClosedJaxpr, unknowns: tuple[bool, ...]):
    return pe.partial_eval_jaxpr(closed, unknowns, instantiate=False)


def _jit_partial_eval(trace, tracers, *, jaxpr, name):
    unknowns = tuple(not t.is_known for t in tracers)
    known, unknown, out_unknowns, num_res = _partial_eval_jaxpr(jaxpr, unknowns)
    known_vals = [t.const for t in tracers if t.is_known]
    known_outs = bind_closed(known, known_vals, name) if known.jaxpr.outvars else []
    n_known = len(known_outs) - num_res
    residuals = known_outs[n_known:]
    unknown_outs: list[Any] = []
    if unknown.jaxpr.outvars:
        uj, uconsts = _hoisted(unknown)
        inputs = [*uconsts, *residuals, *(t for t in tracers if not t.is_known)]
        unknown_outs = trace.record(
            jit_p, inputs, dict(jaxpr=uj, name=f"{name}_linear"), uj.out_avals
        )
    it_k, it_u = iter(known_outs[:n_known]), iter(unknown_outs)
    return [next(it_u) if uk else next(it_k) for uk in out_unknowns]


@_memoize
def _transpose_jaxpr(closed: ClosedJaxpr, linear: tuple[bool, ...]):
    return ad.transpose_jaxpr(closed, linear)


def _jit_transpose(cts, *args, jaxpr, name):
    linear = tuple(ad.is_undefined_primal(a) for a in args)
    res = [a for a, lin in zip(args, linear, strict=True) if not lin]
    t_closed = _transpose_jaxpr(jaxpr, linear)
    cts = [ad.instantiate_zeros(c) for c in cts]
    outs = iter(bind_closed(t_closed, [*res, *cts], f"transpose({name})"))
    return [next(outs) if lin else None for lin in linear]


@_memoize
def _batch_jaxpr(closed: ClosedJaxpr, dims: tuple, size: int, axis_name: Any = None):
    # axis_name: part of the memo key (collectives inside batch differently per axis name).
    return batching.batch_jaxpr(closed, [d is not None for d in dims], size, True)[0]


def _jit_batch(args, dims, *, jaxpr, name):
    size = batching.axis_size_of(args, dims)
    args = [x if d is None else batching.moveaxis(x, d, 0) for x, d in zip(args, dims, strict=True)]
    front = tuple(None if d is None else 0 for d in dims)
    batched = _batch_jaxpr(jaxpr, front, size, batching.current_axis_name())
    outs = bind_closed(batched, args, f"vmap({name})")
    return outs, [0] * len(outs)


ad.primitive_jvps[jit_p] = _jit_jvp
ad.primitive_transposes[jit_p] = _jit_transpose
pe.custom_partial_eval_rules[jit_p] = _jit_partial_eval
batching.primitive_batchers[jit_p] = _jit_batch

# ----------------------------------------------------------------------------------------
# Executables: a lowered, compiled jaxpr bound to its constants


class Executable:
    """A compiled jaxpr: ``call_flat(args) -> list of outputs`` (fresh NumPy arrays).

    ``kernel`` is the numba kernel, or None on the interpreter tier (``program`` then runs
    the jaxpr on NumPy, with the same calling convention; see ``tiers.py``).
    """

    __slots__ = (
        "lowering",
        "kernel",
        "program",
        "call",
        "n_out",
        "in_avals",
        "reused",
        "__weakref__",
    )

    def __init__(self, lowering: Any, kernel: Any, reused: bool = False) -> None:
        self.lowering = lowering
        self.kernel = kernel
        #: The kernel was already in memory for this source (another signature's: a
        #: shape-generic kernel), so nothing compiled or loaded for this one.
        self.reused = reused
        self.program = None
        consts = lowering.consts = _normalized_consts(lowering.consts)
        fn = kernel.fn
        self.call = functools.partial(fn, *consts) if consts else fn
        self.n_out = len(lowering.jaxpr.outvars)
        self.in_avals = lowering.jaxpr.in_avals[len(consts) :]

    @classmethod
    def interpreted(cls, closed: ClosedJaxpr, name: str) -> Executable:
        """The interpreter tier of ``closed`` (constant-free), before any source exists."""
        self = cls.__new__(cls)
        self.lowering = self.kernel = None
        self.reused = False
        self.program = self.call = tiers.program_for(closed, name)
        self.n_out = len(closed.jaxpr.outvars)
        self.in_avals = closed.in_avals
        return self

    def call_flat(self, args: Sequence[Any]) -> list[Any]:
        args = [_kernel_arg(x, a) for x, a in zip(args, self.in_avals, strict=True)]
        out = self.call(*args)
        return [out] if self.n_out == 1 else list(out)


def _normalized_consts(consts: list[Any]) -> list[Any]:
    """Closed-over constants as kernels take them: C-contiguous, aligned, writeable, native
    ``np.ndarray`` copies of any other layout (Fortran order, reversed or strided views,
    ``broadcast_to`` views, read-only arrays and memmaps, ``as_strided`` windows), made
    once per traced signature rather than per call. numba's dispatcher is frozen to
    C-contiguous writeable arrays, so any other layout would be refused with a TypeError."""
    if all(_kernel_ready(c) for c in consts):
        return consts
    return [c if _kernel_ready(c) else _as_kernel_array(c) for c in consts]


def _kernel_ready(x: Any) -> bool:
    return (
        type(x) is np.ndarray
        and x.flags.c_contiguous
        and x.flags.aligned
        and x.flags.writeable
        and x.dtype.isnative
    )


def _as_kernel_array(x: Any) -> Any:
    if isinstance(x, Tracer):
        return x
    arr = np.asarray(x)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", subok=False)


def _kernel_arg(x: Any, aval: ShapedArray) -> np.ndarray:
    """``x`` as the kernel expects it: a C-contiguous, aligned, writeable, native array."""
    if (
        type(x) is np.ndarray
        and x.dtype == aval.dtype
        and x.flags.c_contiguous
        and x.flags.aligned
        and x.flags.writeable
        and x.dtype.isnative
    ):
        return x
    if isinstance(x, Tracer):
        raise core._leaked_tracer_error(x, jit_p)
    return np.array(x, dtype=aval.dtype.newbyteorder("="), order="C")


_executables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_executables_lock = threading.Lock()


def _lower(closed: ClosedJaxpr, name: str) -> Any:
    from funcgrad.backend.numba import lower

    return lower(closed, name)


def _compile_mode(mode: str | None) -> str:
    return mode if mode is not None else tiers.default_mode()


def _tiered(
    closed: ClosedJaxpr,
    name: str,
    mode: str,
    install: Callable[[Executable], None],
    lowering: Any = None,
) -> None:
    """Install the executable to run for ``closed`` (``install`` is called again at each
    tier switch).

    ``mode == "sync"``: the kernel, compiled here (errors raise). Background: if
    ``lowering`` is given (the source was generated here) and its kernel is in memory, that
    kernel at once; otherwise the interpreter tier now, while the worker generates the
    source (if not given: a function none of whose signatures runs a kernel yet skips it on
    the calling thread, where no kernel can be found anyway) and loads or compiles the
    kernel, then installs it. If that fails, the interpreter stays and warns once on its
    next call.
    """
    if mode == "sync":
        lowering = lowering if lowering is not None else _lower(closed, name)
        kernel = tiers.kernel_for(lowering.source.text)
        reused = kernel is not None
        if kernel is None:
            kernel = lowering.compile()
            tiers.remember(lowering.source.text, kernel)
        install(Executable(lowering, kernel, reused))
        return
    if lowering is not None:
        kernel = tiers.kernel_for(lowering.source.text)
        if kernel is not None:
            install(Executable(lowering, kernel, reused=True))
            return
    interp = Executable.interpreted(closed, name)
    install(interp)
    if config.log_compiles:
        tiers.log_switch(name, "interpreting")

    def done(job: tiers.Job) -> None:
        if job.error is not None:
            if config.log_compiles:
                tiers.log_switch(name, "failed", job.ready_s)
            interp.call = tiers.warn_once_then(interp.call, name, job.error)
            install(interp)
            return
        install(Executable(job.lowering, job.kernel, job.reused))
        if config.log_compiles:
            tiers.log_switch(name, "ready", job.ready_s)

    tiers.submit(closed, name, lowering, done)


def _executable(closed: ClosedJaxpr, name: str) -> Executable:
    """The executable of a transformed jaxpr (``jit_p``'s impl: grad/vmap of a jit)."""
    exe = _executables.get(closed)
    if exe is None:
        with _executables_lock:
            exe = _executables.get(closed)
            if exe is None:

                def install(new: Executable) -> None:
                    _executables[closed] = new
                    if config.log_compiles and new.kernel is not None:
                        _log_compile(name, "a transformed jaxpr (jvp/vjp/vmap of a jit)", 0.0, new)

                _tiered(closed, name, _compile_mode(None), install)
                exe = _executables[closed]
    return exe


# ----------------------------------------------------------------------------------------
# The public jit


class _Traced:
    """One traced signature: the jaxpr (constants hoisted) and the output tree."""

    __slots__ = ("jaxpr", "consts", "out_tree", "names")

    def __init__(
        self, jaxpr: ClosedJaxpr, consts: list[Any], out_tree: Any, names: list[str]
    ) -> None:
        self.jaxpr = jaxpr
        self.consts = consts
        self.out_tree = out_tree
        self.names = names


class _Entry:
    """What the eager call path needs for one signature.

    ``call`` runs the current tier: the interpreter until the background compiler installs
    the kernel (``set_exe``, an attribute store the next call sees), so the fast paths
    below never test which tier they run."""

    __slots__ = ("call", "post", "exe", "traced", "in_avals", "switched_at")

    def __init__(self, traced: _Traced, exe: Executable | None = None) -> None:
        self.traced = traced
        self.exe: Executable | None = None
        self.call: Any = None
        self.switched_at: float | None = None
        self.post: Any = None
        if exe is not None:
            self.set_exe(exe)

    def set_exe(self, exe: Executable) -> None:
        """Run ``exe`` from the next call on (the tier switch)."""
        traced = self.traced
        if self.exe is None:
            self.in_avals = exe.in_avals[len(traced.consts) :]
            self.post = self._post(traced, exe.n_out)
        elif exe.kernel is not None:
            self.switched_at = time.perf_counter()
        # Kernel operands: the backend's constants (bound in exe.call), the values the
        # function closed over, then the flat arguments.
        consts = traced.consts
        self.call = functools.partial(exe.call, *consts) if consts else exe.call
        self.exe = exe

    @staticmethod
    def _post(traced: _Traced, n: int) -> Any:
        # The output tree is rebuilt on every call: compile its unflatten now (the kernel
        # returns exactly ``n_out`` leaves, so tree_unflatten's checks are not needed).
        out_tree = traced.out_tree
        if n == 1 and tree_util.treedef_is_leaf(out_tree):
            return None
        if n == 1:
            unflatten = tree_util.unflattener(out_tree)
            return lambda out: unflatten((out,))
        return tree_util.unflattener(out_tree)


# The cache key of one leaf (measured cheaper than dtype.num or dtype.char for 100 leaves).
_sig = attrgetter("shape", "dtype")
_shape = attrgetter("shape")
_only_arrays = frozenset([np.ndarray]).issuperset


@functools.cache
def _flat_tree(n: int) -> Any:
    """The treedef of a tuple of ``n`` array leaves."""
    return tree_util.tree_structure((0,) * n)


_PY_SCALARS = (bool, int, float, complex)

# Leaf types the pytree fast path takes as they are: arrays, and scalars whose conversion is
# a plain ``np.asarray``. Anything else (tracers, lists, objects with ``__array__``) takes the
# general path, which converts it or raises.
_FAST_LEAF_TYPES = frozenset(
    [
        np.ndarray,
        *_PY_SCALARS,
        *(type(np.zeros((), t)[()]) for t in np.typecodes["All"] if t not in "OMmSUV"),
    ]
)
_only_fast_leaves = _FAST_LEAF_TYPES.issuperset
# Without Python scalars (weak), a leaf's key is its (shape, dtype) as a 0-d or n-d array.
_no_python_scalars = frozenset(_PY_SCALARS).isdisjoint


class _TreeDispatch:
    """The hot path for one input structure (tree, static values, kwarg names).

    ``flat(args, kwargs)`` is generated for that structure (``tree_util.leaves_getter`` plus
    the static-argument and kwarg checks of ``JitFunction._split``): it returns the leaves if
    the call has that structure, else None, and builds no treedef, so the cache lookup is by
    the leaves' signatures alone in ``table``.

    When no leaf is a Python scalar (arrays, and NumPy scalars as 0-d arrays: ``strong``),
    ``by_shape`` is tried instead, keyed by the shapes alone:
    numba's dispatcher (compilation disabled) already refuses an array of another dtype
    (byte order included), layout or writeability with a TypeError, which sends the call
    down the general path, so the dtypes need not be read and hashed here (a third of the
    lookup). Shapes that two entries share (same shapes, other dtypes) map to None, which
    means: look up the full signature in ``table``.
    """

    __slots__ = ("flat", "table", "by_shape")

    def __init__(self, flat: Callable[[tuple, dict], list[Any] | None]) -> None:
        self.flat = flat
        self.table: dict[tuple, _Entry] = {}
        self.by_shape: dict[tuple, _Entry | None] = {}

    def add(self, sig: tuple, entry: _Entry, strong: bool) -> None:
        self.table[sig] = entry
        if strong:
            shapes = tuple([s[0] for s in sig])
            prev = self.by_shape.get(shapes, entry)
            self.by_shape[shapes] = entry if prev is entry else None


def _sigs(raw: list[Any], leaves: list[Any]) -> tuple:
    """The cache key of canonical ``leaves``: a Python scalar's (weak) key has a third item."""
    return tuple(
        (*_sig(x), True) if type(r) in _PY_SCALARS else _sig(x)
        for r, x in zip(raw, leaves, strict=True)
    )


def _avals(raw: list[Any], leaves: list[Any]) -> tuple:
    """The avals to trace ``leaves`` with: weak for Python scalar arguments."""
    return tuple(
        core.ShapedArray(x.shape, x.dtype, True) if type(r) in _PY_SCALARS else core.shaped_aval(x)
        for r, x in zip(raw, leaves, strict=True)
    )


def _canonical(x: Any) -> Any:
    """A leaf as the kernel takes it (tracers pass through)."""
    if type(x) is np.ndarray:
        return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (np.generic, bool, int, float, complex)):
        return np.asarray(x)
    try:
        arr = np.asarray(x)
    except Exception as e:
        raise TypeError(f"jit: argument of type {type(x).__name__} is not an array: {e}") from e
    if arr.dtype == object:
        raise TypeError(
            f"jit: an argument of type {type(x).__name__} is not an array; pass arrays or "
            "numbers, or mark the argument static (static_argnums / static_argnames)"
        )
    return arr


# The static key of a call with keyword arguments to a function without static arguments.
_KWARGS = "keyword arguments"


class JitFunction:
    """The callable :func:`jit` returns; ``.lower(*args)`` exposes the generated source."""

    def __init__(
        self,
        fun: Callable,
        static_argnums: tuple[int, ...],
        static_argnames: tuple[str, ...],
        mode: str | None = None,
    ) -> None:
        functools.update_wrapper(self, fun)
        self._fun = fun
        self._mode = mode
        self._lock = threading.RLock()
        self._name = fun_name(fun)
        self._static_argnums, self._static_argnames = _resolve_statics(
            fun, static_argnums, static_argnames
        )
        self._simple = not self._static_argnums and not self._static_argnames
        self._cache: dict[Any, _Entry] = {}
        # The same entries keyed by the leaf signatures alone, for calls whose arguments
        # are all arrays (their tree is a flat tuple of leaves).
        self._flat: dict[tuple, _Entry] = {}
        self._traced: dict[Any, _Traced] = {}
        # Pytree calls: one _TreeDispatch per (static key, input tree) (None where no getter
        # can be generated), and the one the last general-path call used, tried first.
        self._dispatch: dict[tuple, _TreeDispatch | None] = {}
        self._last: _TreeDispatch | None = None

    def __repr__(self) -> str:
        return f"<jit of {self._name}>"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the kernels queued for this process's jitted functions are built
        (``tiers.wait_for_compiles``); False if ``timeout`` seconds passed first."""
        return tiers.wait_for_compiles(timeout)

    def tier(self) -> str:
        """``"kernel"`` when every signature called so far runs its compiled kernel,
        ``"interpreter"`` while one still runs on NumPy (compiling, or failed), ``"none"``
        before the first call."""
        entries = list(self._cache.values())
        if not entries:
            return "none"
        on_kernel = all(e.exe is not None and e.exe.kernel is not None for e in entries)
        return "kernel" if on_kernel else "interpreter"

    def switched_at(self) -> float | None:
        """``time.perf_counter()`` of the latest switch of a signature to its kernel (None
        if none switched while running: e.g. all kernels came from memory or sync mode)."""
        times = [e.switched_at for e in list(self._cache.values()) if e.switched_at is not None]
        return max(times) if times else None

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    # -- the hot path
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Fastest: every argument a plain array (no pytree to flatten).
        if not kwargs and _only_arrays(map(type, args)) and core._eager_only[0]:
            entry = self._flat.get(tuple(map(_sig, args)))
            if entry is not None:
                try:
                    out = entry.call(*args)
                except (TypeError, ValueError):  # non-contiguous, read-only, byte-swapped
                    return self._call(args, kwargs)
                post = entry.post
                return out if post is None else post(out)
        # Pytrees: the structure of the last general-path call, checked and taken apart by
        # generated code (see _TreeDispatch).
        d = self._last
        if d is not None and core._eager_only[0]:
            leaves = d.flat(args, kwargs)
            if leaves is not None:
                # One pass over the leaves' types: they must be leaves (the getter does not
                # check that) the kernel takes as they are, or scalars. Scalars become 0-d
                # arrays before the lookup: numba's own type-mismatch error is slow.
                if _only_arrays(map(type, leaves)):
                    entry = d.by_shape.get(tuple(map(_shape, leaves)))
                    if entry is None:
                        entry = d.table.get(tuple(map(_sig, leaves)))
                elif _only_fast_leaves(map(type, leaves)):
                    raw = leaves
                    leaves = [x if type(x) is np.ndarray else np.asarray(x) for x in raw]
                    if _no_python_scalars(map(type, raw)):  # NumPy scalars: strong, 0-d
                        entry = d.by_shape.get(tuple(map(_shape, leaves)))
                        if entry is None:
                            entry = d.table.get(tuple(map(_sig, leaves)))
                    else:
                        entry = d.table.get(_sigs(raw, leaves))
                else:
                    entry = None
                if entry is not None:
                    try:
                        out = entry.call(*leaves)
                    except (TypeError, ValueError):  # non-contiguous, read-only arrays
                        return self._call(args, kwargs)
                    post = entry.post
                    return out if post is None else post(out)
        return self._call(args, kwargs)

    # -- everything else
    def _split(self, args: tuple, kwargs: dict) -> tuple[tuple, dict, Any, Callable]:
        """Dynamic args and kwargs, a hashable key of the static ones, and a rebuilder."""
        if self._simple:
            # Keywords make the tree an (args, kwargs) pair, which a positional call could
            # mimic (``f((x,), {"b": y})`` vs ``f(x, b=y)``): the key tells them apart.
            return args, kwargs, (_KWARGS if kwargs else None), lambda a, k: (a, k)
        n = len(args)
        nums = {i + n if i < 0 else i for i in self._static_argnums}
        static_pos = {i: args[i] for i in sorted(nums) if i < n}
        static_kw = {k: v for k, v in kwargs.items() if k in self._static_argnames}
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_kw}
        key = (tuple(static_pos.items()), tuple(sorted(static_kw.items())))
        for where, v in [*static_pos.items(), *static_kw.items()]:
            try:
                hash(v)
            except TypeError:
                what = f"argument {where}" if isinstance(where, int) else f"argument {where!r}"
                raise ValueError(
                    f"jit({self._name}): static {what} has an unhashable value of type "
                    f"{type(v).__name__} ({_short(v)}); static arguments are compiled into "
                    "the kernel and must be hashable: pass a tuple instead of a list, a "
                    "frozen dataclass or namedtuple, or make it a traced (non-static) argument"
                ) from None

        def rebuild(dargs: tuple, dkwargs: dict) -> tuple[tuple, dict]:
            it = iter(dargs)
            full = tuple(static_pos[i] if i in static_pos else next(it) for i in range(n))
            return full, {**dkwargs, **static_kw}

        return dyn_args, dyn_kwargs, key, rebuild

    def _flatten(self, args: tuple, kwargs: dict):
        dyn_args, dyn_kwargs, static_key, rebuild = self._split(args, kwargs)
        tree = (dyn_args, dyn_kwargs) if dyn_kwargs or not self._simple else dyn_args
        leaves, in_tree = tree_util.tree_flatten(tree)
        raw = leaves
        leaves = [_canonical(x) for x in raw]
        return leaves, raw, in_tree, static_key, rebuild, dyn_args, dyn_kwargs

    def _call(self, args: tuple, kwargs: dict) -> Any:
        leaves, raw, in_tree, static_key, rebuild, dyn_args, dyn_kwargs = self._flatten(
            args, kwargs
        )
        if core.is_eager():
            key = (static_key, in_tree, _sigs(raw, leaves))
            entry = self._cache.get(key)
            if entry is None:
                entry = self._compile(key, leaves, raw, rebuild, dyn_args, dyn_kwargs)
            if _only_fast_leaves(map(type, raw)):
                self._remember(key, entry, args, kwargs, _no_python_scalars(map(type, raw)))
            out = entry.call(
                *[_kernel_arg(x, a) for x, a in zip(leaves, entry.in_avals, strict=True)]
            )
            return out if entry.post is None else entry.post(out)
        # Under a transformation: bind the jit primitive on the (traced) leaves.
        avals = _avals(raw, leaves)
        traced = self._trace((static_key, in_tree, avals), avals, rebuild, dyn_args, dyn_kwargs)
        outs = jit_p.bind(*traced.consts, *leaves, jaxpr=traced.jaxpr, name=self._name)
        return tree_util.tree_unflatten(traced.out_tree, outs)

    def _remember(self, key: tuple, entry: _Entry, args: tuple, kwargs: dict, strong: bool) -> None:
        """Make ``entry`` reachable from the pytree fast path, and its structure the one
        that path tries first."""
        static_key, in_tree, sig = key
        d = self._dispatch.get(key[:2], False)
        if d is False:
            flat = self._make_flat(in_tree, args, kwargs)
            d = self._dispatch[key[:2]] = None if flat is None else _TreeDispatch(flat)
        if d is not None:
            d.add(sig, entry, strong)
            self._last = d

    def _make_flat(self, in_tree: Any, args: tuple, kwargs: dict) -> Callable | None:
        """``flat(args, kwargs)`` for calls shaped like this one (see _TreeDispatch)."""
        if tree_util._classify(np.ndarray) is not None:
            return None  # arrays registered as pytree nodes: the leaf check would be wrong
        getter = tree_util.leaves_getter(in_tree)
        if getter is None:
            return None
        if self._simple:
            if kwargs:
                return lambda a, k: getter((a, k)) if k else None
            return lambda a, k: None if k else getter(a)
        # Static arguments: the same split as _split, for this number of positional
        # arguments and these keyword names; a static value matches if it is equal.
        n = len(args)
        nums = {i + n if i < 0 else i for i in self._static_argnums}
        static_pos = [(i, args[i]) for i in sorted(nums) if i < n]
        dyn_pos = [i for i in range(n) if i not in nums]
        names = self._static_argnames
        static_kw = [(k, v) for k, v in kwargs.items() if k in names]
        dyn_kw = [k for k in kwargs if k not in names]
        n_kw = len(kwargs)
        missing = object()

        def flat(a: tuple, k: dict) -> list[Any] | None:
            if len(a) != n or len(k) != n_kw:
                return None
            try:
                for i, v in static_pos:
                    x = a[i]
                    if x is not v and not x == v:
                        return None
                for name, v in static_kw:
                    x = k.get(name, missing)
                    if x is not v and not x == v:
                        return None
                tree = (tuple([a[i] for i in dyn_pos]), {name: k[name] for name in dyn_kw})
            except Exception:  # noqa: BLE001 - a missing kwarg, an odd __eq__: general path
                return None
            return getter(tree)

        return flat

    def _trace(
        self,
        key: Any,
        avals: Sequence[ShapedArray],
        rebuild: Callable,
        dyn_args: tuple,
        dyn_kwargs: dict,
    ) -> _Traced:
        traced = self._traced.get(key)
        if traced is not None:
            return traced
        in_tree = key[1]
        out_store: list[Any] = []
        fun = self._fun
        tree_is_pair = dyn_kwargs or not self._simple

        def flat_fun(*flat: Any) -> list[Any]:
            tree = tree_util.tree_unflatten(in_tree, flat)
            dargs, dkwargs = tree if tree_is_pair else (tree, {})
            full_args, full_kwargs = rebuild(dargs, dkwargs)
            out_flat, out_tree = tree_util.tree_flatten(fun(*full_args, **full_kwargs))
            out_store.append(out_tree)
            return out_flat

        names = self._arg_names(dyn_args, dyn_kwargs)
        with list_arguments("jit", self._fun, dyn_args):
            closed = pe.trace_to_jaxpr(flat_fun, list(avals), names)
        jaxpr, consts = pe.hoist_consts(closed)
        traced = _Traced(jaxpr, _normalized_consts(consts), out_store[0], names)
        # A function closing over values of an outer transformation (tracers) is traced
        # again next time: those values change from call to call.
        if not any(isinstance(c, Tracer) for c in consts):
            self._traced[key] = traced
        return traced

    def _arg_names(self, dyn_args: tuple, dyn_kwargs: dict) -> list[str] | None:
        try:
            if self._simple:
                return arg_names(self._fun, dyn_args, dyn_kwargs)
            return None
        except Exception:  # noqa: BLE001 - names are only for error messages
            return None

    def _compile(
        self,
        key: Any,
        leaves: list[Any],
        raw: list[Any],
        rebuild: Callable,
        dyn_args: tuple,
        dyn_kwargs: dict,
    ) -> _Entry:
        with self._lock:  # threads calling with one new signature trace and lower it once
            entry = self._cache.get(key)
            if entry is not None:
                return entry
            avals = _avals(raw, leaves)
            t0 = time.perf_counter()
            traced = self._trace(key[:2] + (avals,), avals, rebuild, dyn_args, dyn_kwargs)
            trace_s = time.perf_counter() - t0
            mode = _compile_mode(self._mode)
            # A later signature generates its source here when an earlier one runs a kernel:
            # a shape-generic kernel is then found in memory and runs at once. While no
            # kernel of this function is ready (the first is still compiling), the worker
            # generates it: this thread returns sooner, and the worker finds the kernel by
            # its source as soon as the first compile ends.
            lowering = (
                _lower(traced.jaxpr, self._name)
                if mode == "sync"
                or any(e.exe is not None and e.exe.kernel is not None for e in self._cache.values())
                else None
            )
            entry = _Entry(traced)
            reason = self._reason(key, avals, traced.names) if config.log_compiles else ""
            name = self._name

            def install(exe: Executable) -> None:
                entry.set_exe(exe)
                if config.log_compiles and exe.kernel is not None:
                    _log_compile(name, reason, trace_s, exe)

            _tiered(traced.jaxpr, name, mode, install, lowering)
            self._cache[key] = entry
            if key[0] is None and key[1] == _flat_tree(len(leaves)):
                self._flat[key[2]] = entry
            return entry

    def _reason(self, key: Any, avals: tuple, names: list[str] | None) -> str:
        """Why this signature compiles: what differs from the closest cached one."""
        if not self._cache:
            return "first call"
        static_key, in_tree, _ = key
        for (other_static, other_tree, _), entry in self._cache.items():
            if other_tree == in_tree and other_static == static_key:
                old = entry.in_avals
                diffs = [
                    f"{names[i] if names and i < len(names) else f'leaf {i}'}: "
                    f"{a0.str_short()} -> {a.str_short()}"
                    for i, (a, a0) in enumerate(zip(avals, old, strict=True))
                    if a != a0
                ]
                same_shapes = all(a.shape == a0.shape for a, a0 in zip(avals, old, strict=True))
                kind = "dtypes" if same_shapes else "shapes"
                return f"new {kind} ({'; '.join(diffs[:4])})"
        if any(k[1] == in_tree for k in self._cache):
            if static_key is _KWARGS or self._simple:
                return "arguments passed by keyword instead of position, or the reverse"
            return f"new static values {static_key}"
        return "new input tree structure"

    # -- inspection
    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """Trace and generate the kernel source for these arguments (nothing compiles)."""
        leaves, raw, in_tree, static_key, rebuild, dyn_args, dyn_kwargs = self._flatten(
            args, kwargs
        )
        avals = _avals(raw, leaves)
        traced = self._trace((static_key, in_tree, avals), avals, rebuild, dyn_args, dyn_kwargs)
        return Lowered(
            self,
            _lower(traced.jaxpr, self._name),
            traced,
            (static_key, in_tree, _sigs(raw, leaves)),
        )


class Lowered:
    """``jit(f).lower(*args)``: the jaxpr, the plan and the generated source."""

    def __init__(self, fun: JitFunction, lowering: Any, traced: _Traced, key: Any) -> None:
        self._fun = fun
        self.lowering = lowering
        self._traced = traced
        self._key = key

    @property
    def jaxpr(self) -> ClosedJaxpr:
        return self._traced.jaxpr

    @property
    def plan(self) -> Any:
        return self.lowering.plan

    def as_text(self) -> str:
        """The generated Python source of the kernel (what numba compiles)."""
        return self.lowering.as_text()

    def __repr__(self) -> str:
        return f"Lowered({self._fun._name}):\n{self.as_text()}"

    def _repr_html_(self) -> str:  # Jupyter: the generated source, highlighted
        from funcgrad.pretty import source_html

        return source_html(self.as_text())

    def compile(self) -> Compiled:
        """Compile the kernel now (blocking, whatever the compile mode)."""
        kernel = self.lowering.compile()
        tiers.remember(self.lowering.source.text, kernel)
        entry = _Entry(self._traced, Executable(self.lowering, kernel))
        self._fun._cache.setdefault(self._key, entry)
        return Compiled(self._fun, entry, self._key)


class Compiled:
    """A compiled jitted function for one signature; calls with other ones are refused."""

    def __init__(self, fun: JitFunction, entry: _Entry, key: Any) -> None:
        self._fun = fun
        self._entry = entry
        self._key = key

    def as_text(self) -> str:
        return self._entry.exe.lowering.as_text()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves, raw, in_tree, static_key, *_ = self._fun._flatten(args, kwargs)
        key = (static_key, in_tree, _sigs(raw, leaves))
        if key != self._key:
            raise TypeError(
                f"jit({self._fun._name}).lower(...).compile(): called with arguments of another "
                "structure, shape or dtype than it was lowered for; call the jitted function "
                "itself to compile for new arguments"
            )
        entry = self._entry
        out = entry.call(*[_kernel_arg(x, a) for x, a in zip(leaves, entry.in_avals, strict=True)])
        return out if entry.post is None else entry.post(out)


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _resolve_statics(fun: Callable, nums: tuple[int, ...], names: tuple[str, ...]):
    """Static positions and names, each completed from the other through the signature."""
    nums, names = set(nums), set(names)
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return tuple(sorted(nums)), tuple(sorted(names))
    positional = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    for i in list(nums):
        if -len(positional) <= i < len(positional):
            p = params[i % len(positional)]
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                names.add(p.name)
    for n in list(names):
        if n in positional:
            nums.add(positional.index(n))
    return tuple(sorted(nums)), tuple(sorted(names))


def jit(
    fun: Callable | None = None,
    *,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    compile: str | None = None,
    **kwargs: Any,
) -> Any:
    """Compile ``fun`` to a numba kernel per input signature (shapes, dtypes, pytree
    structure and static argument values); works as a decorator and composes with grad,
    vmap and itself in any order.

    ``static_argnums``/``static_argnames`` mark arguments that are compiled in (any
    hashable value: numbers, strings, tuples, functions); Python control flow may depend on
    them. ``jit(f).lower(*args).as_text()`` shows the generated source.

    ``compile="background"`` (the default, or ``FUNCGRAD_JIT_COMPILE``): a call never waits
    for numba; until a signature's kernel is built it runs on the NumPy interpreter tier
    (same shapes and dtypes, values to rounding). ``compile="sync"``: the first call waits
    for the kernel and compile errors raise (bitwise-reproducible runs, benchmarks).

    >>> f = jit(lambda x: fnp.sin(x) * 2.0)
    >>> f(np.ones(3, np.float32))
    array([1.682942, 1.682942, 1.682942], dtype=float32)
    """
    if kwargs:
        raise TypeError(f"jit: unexpected keyword arguments {sorted(kwargs)}")
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    static_argnums = tuple(int(i) for i in static_argnums)
    static_argnames = tuple(static_argnames)
    if compile is not None and compile not in tiers.MODES:
        raise ValueError(
            f"jit: compile={compile!r}; expected 'background' (run on NumPy while the kernel "
            "compiles) or 'sync' (wait for the kernel)"
        )
    if fun is None:
        return functools.partial(
            jit, static_argnums=static_argnums, static_argnames=static_argnames, compile=compile
        )
    if not callable(fun):
        raise TypeError(f"jit: expected a function, got {type(fun).__name__}")
    return JitFunction(fun, static_argnums, static_argnames, compile)


def ensure_log_handler() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("funcgrad: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _log_compile(name: str, reason: str, trace_s: float, exe: Executable) -> None:
    ensure_log_handler()
    k = exe.kernel
    plan = exe.lowering.plan
    if exe.reused:
        specialized = "; ".join(exe.lowering.specialized_on) or "nothing size-dependent"
        log.info(
            "jit(%s): kernel %s reused (%s): the kernel in memory for this source fits "
            "(shape-generic; specialized on: %s); trace %.1f ms, generate %.1f ms [%s]",
            name,
            k.key[:12],
            reason,
            specialized,
            trace_s * 1e3,
            exe.lowering.generate_s * 1e3,
            plan.summary(),
        )
        return
    how = "loaded from the disk cache" if k.from_disk else "compiled by numba"
    log.info(
        "jit(%s): kernel %s (%s); trace %.1f ms, generate %.1f ms, %s %.1f ms [%s]",
        name,
        k.key[:12],
        reason,
        trace_s * 1e3,
        exe.lowering.generate_s * 1e3,
        how,
        k.compile_s * 1e3,
        plan.summary(),
    )
