"""Tiered execution for ``jit``: run a staged jaxpr on NumPy while numba compiles its kernel.

A jitted function's first call with a new signature traces and generates the kernel source
on the calling thread (milliseconds). If the kernel for that source is already in memory it
runs at once. Otherwise the call runs the jaxpr on the *interpreter tier* (:class:`Program`:
the primitives' NumPy implementations, with the equations flattened once into a list of
``(impl, params, input slots, output slots)``) while a background worker compiles the
kernel, or loads it from the disk cache; numba is imported by that worker, never on the
calling thread. When the kernel is ready the worker switches the signature's call to it, so
the next call runs the kernel and the steady-state dispatch path is untouched.

Why a worker thread, not a compile-server process (``benchmarks/tier_worker.py``, seed train
step, empty cache, the 2-core development box under load): the thread had the kernel
running 24.0 s after the first call, the server 29.6 s (1.23x later: a second interpreter,
``import funcgrad``/``numba`` and a trace before its compile, then a disk load here); while
compiling, the interpreter tier took 866 us per step beside the thread and 922 us beside the
server (398 us alone): numba's Python-heavy typing holds the GIL, but on two busy cores a
second process takes the same CPU away. A thread also needs no IPC and shares the in-memory
kernel table.

One worker compiles one kernel at a time, in submission order (on two cores parallel
numba compiles only fight each other). A kernel that fails to compile leaves its signature
on the interpreter tier with one warning naming the primitive and shapes. The worker is a
daemon thread: exiting the interpreter during a compile does not wait for it, and the disk
cache writes are atomic (``compile.py``), so an interrupted compile leaves no half entry.

A program can end before its kernels are compiled. At exit, if it ran at least
``FUNCGRAD_JIT_EXIT_WAIT_AFTER`` seconds (default 0.5) on the interpreter tier, the kernels
still queued or compiling are handed, with a one-line notice, to a detached low-priority
process that compiles them into the disk cache (``backend/numba/exit_compile.py``): the
program exits at once and its next run starts compiled. ``FUNCGRAD_JIT_AT_EXIT=wait``
waits for them in-process instead (at most ``FUNCGRAD_JIT_EXIT_WAIT`` seconds, default 60),
``drop`` abandons them. The daemon worker itself is abandoned at exit (the disk cache only
ever holds complete entries). Measured on the seed ``fit`` (100 epochs, 2.2 s on the
interpreter tier): waiting at exit made that process 3-4 s longer; detached, it exits at
once and the next run is as warm.

``FUNCGRAD_JIT_COMPILE=sync`` (or ``jit(f, compile="sync")``) restores blocking compiles:
the first call waits for the kernel and a ``LoweringError`` is raised. ``wait_for_compiles()``
blocks until every queued kernel is ready (benchmarks, tests, and users who want the kernel
tier before timing).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad.ir import Jaxpr, Literal

log = logging.getLogger("funcgrad.jit")

MODES = ("background", "sync")


def default_mode() -> str:
    """The compile mode of ``jit`` functions that do not pass ``compile=``."""
    mode = os.environ.get("FUNCGRAD_JIT_COMPILE", "").strip().lower() or "background"
    if mode not in MODES:
        raise ValueError(
            f"FUNCGRAD_JIT_COMPILE={mode!r}: expected 'background' (run on NumPy while the "
            "kernel compiles) or 'sync' (block on the compile, as before)"
        )
    return mode


# ----------------------------------------------------------------------------------------
# The interpreter tier


class Program:
    """A jaxpr flattened for fast interpretation: ``program(*args)`` returns what the kernel
    would (one array, or a tuple of arrays for several outputs).

    Slots number the variables (literals are constants); the steps are generated into one
    straight-line Python function calling each primitive's NumPy impl.
    Nested ``jit`` equations are inlined (their kernels are not needed here: the enclosing
    kernel inlines them too). Each step deletes the values it used last, so temporaries die
    as early as under eager execution. Results are fresh arrays of the traced dtypes, never
    an input or a view of one.
    """

    __slots__ = (
        "n_in",
        "steps",
        "template",
        "out_slots",
        "out_dtypes",
        "in_dtypes",
        "name",
        "body",
    )

    def __init__(self, jaxpr: Jaxpr, name: str = "f") -> None:
        from funcgrad.interpreters.jit import jit_p

        self.name = name
        slots: dict[Any, int] = {}
        template: list[Any] = []

        def new_slot(value: Any = None) -> int:
            template.append(value)
            return len(template) - 1

        for v in jaxpr.invars:
            slots[v] = new_slot()
        self.n_in = len(jaxpr.invars)
        self.in_dtypes = [v.aval.dtype for v in jaxpr.invars]
        raw_steps: list[list[Any]] = []

        def atom(x: Any, env: dict) -> int:
            if type(x) is Literal:
                return new_slot(x.val)
            return env[x]

        def emit(j: Jaxpr, env: dict) -> None:
            for eqn in j.eqns:
                ins = [atom(x, env) for x in eqn.inputs]
                if eqn.primitive is jit_p:
                    inner = eqn.params["jaxpr"].jaxpr
                    sub = dict(zip(inner.invars, ins, strict=True))
                    emit(inner, sub)
                    for v, o in zip(eqn.outvars, inner.outvars, strict=True):
                        env[v] = atom(o, sub)
                    continue
                prim = eqn.primitive
                impl = prim.unchecked_impl
                if impl is None:
                    impl = prim.impl
                if impl is None:
                    raise NotImplementedError(f"primitive {prim.name} has no NumPy impl")
                outs = [new_slot() for _ in eqn.outvars]
                for v, o in zip(eqn.outvars, outs, strict=True):
                    env[v] = o
                raw_steps.append(
                    [impl, eqn.params, tuple(ins), outs if prim.multiple_results else outs[0]]
                )

        env = dict(slots)
        emit(jaxpr, env)
        self.out_slots = [atom(o, env) for o in jaxpr.outvars]
        self.out_dtypes = [o.aval.dtype for o in jaxpr.outvars]
        # Liveness: after its last use, a temporary slot is deleted.
        last: dict[int, int] = {}
        for i, (_, _, ins, _) in enumerate(raw_steps):
            for s in ins:
                last[s] = i
        keep = set(self.out_slots)
        frees: list[list[int]] = [[] for _ in raw_steps]
        for s, i in last.items():
            if s not in keep and template[s] is None:
                frees[i].append(s)
        self.steps = [
            (impl, params, ins, outs, tuple(f))
            for (impl, params, ins, outs), f in zip(raw_steps, frees, strict=True)
        ]
        self.template = template
        self.body = self._generate()

    def _generate(self) -> Callable[[Sequence[Any]], tuple]:
        """The steps as one straight-line Python function (locals, no environment list):
        measured ~1.3x less overhead per equation than a loop over the steps."""
        glob: dict[str, Any] = {}
        lines = ["def body(args):"]
        if self.n_in:
            lines.append("    " + "".join(f"s{i}, " for i in range(self.n_in)) + "= args")

        def ref(slot: int) -> str:
            if self.template[slot] is not None:
                glob[f"c{slot}"] = self.template[slot]
                return f"c{slot}"
            return f"s{slot}"

        for k, (impl, params, ins, outs, free) in enumerate(self.steps):
            glob[f"f{k}"] = functools.partial(impl, **params) if params else impl
            call = f"f{k}({', '.join(ref(i) for i in ins)})"
            if type(outs) is int:
                lines.append(f"    s{outs} = {call}")
            elif not outs:  # an effect with no results (debug_callback)
                lines.append(f"    {call}")
            else:
                lines.append(f"    {''.join(f's{o}, ' for o in outs)}= {call}")
            if free:
                lines.append(f"    del {', '.join(f's{i}' for i in free)}")
        outs = "".join(f"{ref(s)}, " for s in self.out_slots)
        lines.append(f"    return ({outs})")
        exec(compile("\n".join(lines), f"<funcgrad interpreter tier of {self.name}>", "exec"), glob)
        return glob["body"]

    def run(self, args: Sequence[Any]) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return self._run(args)
        finally:
            _interp_s[0] += time.perf_counter() - t0

    def _run(self, args: Sequence[Any]) -> list[Any]:
        values = self.body(args)
        results = []
        seen: set[int] = set()
        for x, slot, dt in zip(values, self.out_slots, self.out_dtypes, strict=True):
            if type(x) is not np.ndarray or x.dtype != dt:
                x = np.asarray(x, dtype=dt)
            # Fresh, C-contiguous, not an input: as a kernel's results are.
            if (
                slot < self.n_in
                or x.base is not None
                or id(x) in seen
                or not x.flags.c_contiguous
                or not x.flags.writeable
                or self.template[slot] is not None
            ):
                x = np.array(x, order="C")
            seen.add(id(x))
            results.append(x)
        return results

    def __call__(self, *args: Any) -> Any:
        """Kernel-compatible call: arguments of the traced dtypes (else TypeError, which
        sends the dispatch fast paths to the general path, as numba's dispatcher does)."""
        for x, dt in zip(args, self.in_dtypes, strict=True):
            if type(x) is not np.ndarray or x.dtype != dt:
                raise TypeError(f"jit({self.name}): interpreter tier got another dtype")
        out = self.run(args)
        return out[0] if len(out) == 1 else tuple(out)


# ----------------------------------------------------------------------------------------
# The background compiler


class Job:
    """One background build: generate the source of ``closed`` (unless ``lowering`` came
    with it), then find its kernel in memory, load it from disk or compile it."""

    __slots__ = (
        "closed",
        "name",
        "lowering",
        "kernel",
        "reused",
        "error",
        "on_done",
        "submitted",
        "ready_s",
    )

    def __init__(
        self, closed: Any, name: str, lowering: Any, on_done: Callable[[Job], None]
    ) -> None:
        self.closed = closed
        self.name = name
        self.lowering = lowering
        self.on_done = on_done
        self.kernel: Any = None
        self.reused = False  # the kernel was in memory already (another signature's)
        self.error: BaseException | None = None
        self.submitted = time.perf_counter()
        self.ready_s = 0.0

    def lowered(self) -> Any:
        """The job's lowering, generating the source first if the caller did not (pure
        Python: numba is not imported)."""
        if self.lowering is None:
            from funcgrad.backend.numba import lower

            self.lowering = lower(self.closed, self.name)
        return self.lowering


_lock = threading.Lock()
# Source text -> the key its kernel has in the backend's memory cache, most recently used
# last. The key needs numba's version (the cache fingerprint), which the calling thread must
# not import, so the text is looked up here; the kernel itself stays in the backend's table
# (bounded there: an evicted kernel is simply looked up, or built, again).
_keys: OrderedDict[str, str] = OrderedDict()
MAX_KEYS = 4096
_table_lock = threading.Lock()
_queue: deque[Job] = deque()
_wake = threading.Condition(_lock)
_idle = threading.Condition(_lock)
_worker: threading.Thread | None = None
_pending = 0
_building: Job | None = None  # the job the worker is on


def kernel_for(text: str) -> Any:
    """The kernel already built for this source, or None (dict lookups, no numba)."""
    key = _keys.get(text)
    if key is None:
        return None
    from funcgrad.backend.numba.compile import cached_kernel

    return cached_kernel(key)


def remember(text: str, kernel: Any) -> None:
    """Record a built kernel's key (by the worker, or a sync compile) for later lookups."""
    with _table_lock:
        _keys[text] = kernel.key
        _keys.move_to_end(text)
        while len(_keys) > MAX_KEYS:
            _keys.popitem(last=False)


def program_for(closed: Any, name: str) -> Program:
    """The interpreter tier of a (constant-free) closed jaxpr, as traced."""
    return Program(closed.jaxpr, name)


def warn_once_then(call: Callable[..., Any], name: str, error: BaseException) -> Callable:
    """``call``, warning (on the caller's thread) at its first use that the kernel failed."""
    warned = [False]

    def first(*args: Any) -> Any:
        if not warned[0]:
            warned[0] = True
            warn_failure(name, error)
        return call(*args)

    return first


def submit(closed: Any, name: str, lowering: Any, on_done: Callable[[Job], None]) -> Job:
    """Build the kernel of ``closed`` on the background worker (in submission order, one at
    a time) and call ``on_done(job)`` there when it is ready or failed."""
    global _worker, _pending
    job = Job(closed, name, lowering, on_done)
    with _lock:
        _queue.append(job)
        _pending += 1
        if _worker is None or not _worker.is_alive():
            worker = threading.Thread(target=_work, name="funcgrad-jit-compiler", daemon=True)
            try:
                worker.start()
            except RuntimeError:  # interpreter shutting down: stay on the interpreter tier
                _queue.remove(job)
                _pending -= 1
                return job
            _worker = worker
        _wake.notify()
    return job


def _build(job: Job) -> None:
    lowering = job.lowered()
    text = lowering.source.text
    kernel = kernel_for(text)
    job.reused = kernel is not None
    if kernel is None:
        kernel = lowering.compile()  # compile.py: memory, then disk, then numba
        remember(text, kernel)
    job.kernel = kernel


# While the worker builds, the interpreter's thread is made to hand over the GIL every
# 0.2 ms instead of CPython's 5 ms. numba's import and compile release the GIL constantly
# (file reads, every llvmlite call through ctypes), and each time the busy calling thread
# took it back for a whole switch interval: measured on the seed train step, a 0.4 s disk
# load took over 2 s next to a running interpreter tier (numba's import alone: 2.3 s instead
# of 0.2 s); at 0.2 ms the two threads share the time (import 0.4 s) and the interpreter
# keeps about half of it. The process's own setting is restored when the queue is empty.
_FAST_SWITCH_S = 2e-4
_saved_switch: list[float] = []


def _speed_up_switching() -> None:
    if not _saved_switch:
        _saved_switch.append(sys.getswitchinterval())
        sys.setswitchinterval(min(_saved_switch[0], _FAST_SWITCH_S))


def _restore_switching() -> None:
    if _saved_switch:
        sys.setswitchinterval(_saved_switch.pop())


def _work() -> None:
    global _pending, _building
    while True:
        with _lock:
            while not _queue:
                _wake.wait()
            job = _building = _queue.popleft()
            _speed_up_switching()
        try:
            _build(job)
        except BaseException as e:  # noqa: BLE001 - reported to the calls that wait on it
            job.error = e
        job.ready_s = time.perf_counter() - job.submitted
        try:
            job.on_done(job)
        except Exception:
            log.exception("funcgrad: tier switch failed")
        with _lock:
            _building = None
            _pending -= 1
            if not _queue:
                _restore_switching()
            _idle.notify_all()


# Seconds this process spent running jaxprs on the interpreter tier (approximate).
_interp_s = [0.0]


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        return default


AT_EXIT_MODES = ("detach", "wait", "drop")


def _at_exit_mode() -> str:
    mode = os.environ.get("FUNCGRAD_JIT_AT_EXIT", "").strip().lower() or "detach"
    if mode not in AT_EXIT_MODES:
        return "detach"  # at exit, a bad setting is not worth an error
    if os.environ.get("FUNCGRAD_JIT_EXIT_WAIT", "").strip() in ("0", "0.0"):
        return "drop"  # the older way to say it
    return mode


def _unfinished() -> list[Any]:
    """The lowerings of the kernels still queued or compiling (generating the source of
    those that have none yet: pure Python, no numba)."""
    with _lock:
        jobs = list(_queue)
        if _building is not None and _building.kernel is None:
            jobs.insert(0, _building)
    out = []
    for job in jobs:
        try:
            out.append(job.lowered())
        except Exception:  # noqa: BLE001 - it would fail in the next run too
            continue
    return out


def _finish_at_exit() -> None:
    """At interpreter exit, hand the kernels still queued or compiling to a detached
    process that compiles them into the disk cache (``exit_compile.py``), so the next run
    starts compiled and this one exits at once. Only if this process spent at least
    ``FUNCGRAD_JIT_EXIT_WAIT_AFTER`` seconds (default 0.5) on the interpreter tier: a run
    that long would have gained from the kernels; shorter ones leave nothing behind.
    ``FUNCGRAD_JIT_AT_EXIT=wait`` waits here instead (at most ``FUNCGRAD_JIT_EXIT_WAIT``
    seconds, default 60, interruptible), ``drop`` abandons them."""
    if not _pending:
        return
    mode = _at_exit_mode()
    if mode == "drop" or _interp_s[0] < _env_seconds("FUNCGRAD_JIT_EXIT_WAIT_AFTER", 0.5):
        return
    if mode == "wait":
        limit = _env_seconds("FUNCGRAD_JIT_EXIT_WAIT", 60.0)
        print(
            f"funcgrad: finishing {_pending} kernel compile(s) so the next run starts "
            f"compiled (at most {limit:.0f} s; Ctrl-C or FUNCGRAD_JIT_AT_EXIT=drop skips)",
            file=sys.stderr,
            flush=True,
        )
        try:
            wait_for_compiles(limit)
        except KeyboardInterrupt:
            pass
        return
    from funcgrad.backend.numba import exit_compile

    lowerings = _unfinished()
    handed = exit_compile.hand_off(lowerings) if lowerings else None
    if handed is not None:
        pid, n = handed
        print(
            f"funcgrad: compiling {n} kernel(s) for the next run in the background "
            f"(process {pid}; FUNCGRAD_JIT_AT_EXIT=drop skips)",
            file=sys.stderr,
            flush=True,
        )


atexit.register(_finish_at_exit)


def _after_fork_in_child() -> None:
    """A forked child has no worker thread: start afresh (its queued jobs are dropped, so
    their functions stay on the interpreter tier, correct and slower)."""
    global _lock, _wake, _idle, _table_lock, _worker, _pending, _queue
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _idle = threading.Condition(_lock)
    _table_lock = threading.Lock()
    _queue = deque()
    _worker = None
    _pending = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def pending() -> int:
    """How many kernels are queued or compiling."""
    return _pending


def wait_for_compiles(timeout: float | None = None) -> bool:
    """Block until every kernel queued for background compilation is ready (or failed);
    False if ``timeout`` seconds passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _lock:
        while _pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            _idle.wait(left)
    return True


_warned: set[str] = set()


def warn_failure(name: str, error: BaseException) -> None:
    """Report a background compile failure once per function and message."""
    msg = (
        f"jit({name}): the kernel failed to compile, so this function keeps running on the "
        f"NumPy interpreter tier (correct, slower): {error}. "
        "With FUNCGRAD_JIT_COMPILE=sync (or jit(f, compile='sync')) this error is raised."
    )
    if msg in _warned:
        return
    _warned.add(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=4)


def log_switch(name: str, event: str, seconds: float = 0.0) -> None:
    """``FUNCGRAD_LOG_COMPILES=1`` lines for tier changes."""
    from funcgrad.interpreters.jit import ensure_log_handler

    ensure_log_handler()
    if event == "interpreting":
        log.info("jit(%s): running on the interpreter while the kernel compiles", name)
    elif event == "ready":
        log.info("jit(%s): kernel ready after %.2f s, switching", name, seconds)
    else:
        log.info("jit(%s): kernel failed after %.2f s, staying on the interpreter", name, seconds)
