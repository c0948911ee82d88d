"""Large kernel arrays: allocated by the caller, and recycled once nothing refers to them.

A fresh 40 MB array costs more than the arithmetic of the fused kernel that fills it: the
pages are new to the process (mapped, zeroed and faulted in by the OS, then written from
DRAM), while recycled memory is already mapped and often still in the CPU's cache. Measured
on the development machine, ``sin(x)*exp(-x*x)+tanh(x)`` on 10M float32 values took 21 ms
into a fresh array and 12 ms into a recycled one; a jitted ``random.uniform`` of 10M values,
whose kernel has four such arrays (counters, two Threefry words, the result), 86 ms with
numba-allocated ones. So the entry function of a kernel takes its large arrays, results and
temporaries alike (``codegen.CALLER_ALLOC_MIN_BYTES`` and up), as parameters, and
:class:`OutputPool` supplies them, as a caching allocator does (PyTorch's CUDA allocator;
XLA plans one temporary buffer per executable in the same spirit).

How recycling stays safe: the pool keeps each block (an ndarray it allocated) and hands out
a *view* of it. Every array derived from that view (the kernel's result, slices, reshapes,
``np.asarray``) keeps the block alive through ``.base``, so a block whose only references
are the pool's own is unreachable from user code and can be handed out again. Results are
therefore views (``result.base`` is the pool's block; ``result.flags.owndata`` is False)
but never alias an input or another live result; a temporary's block is free again as soon
as the call returns.

The pool holds at most ``FUNCGRAD_OUTPUT_POOL_MB`` megabytes of blocks (default 256;
``0`` turns recycling off: plain ``np.empty``; anything but a finite number >= 0 is a
ValueError naming the variable), and at most :data:`BLOCKS_PER_SHAPE` per
shape and dtype; past either bound, arrays are plain fresh ones. Whether a block is free
is read from ``sys.getrefcount``, whose count for a given code path differs between
CPython versions: the baseline is measured at import (:func:`_calibrate`), and an
interpreter where it cannot be measured gets no recycling rather than a wrong answer.
:func:`clear` drops the pool's blocks.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np

#: Free-or-busy blocks kept per (shape, dtype): a loop that feeds a result back in
#: (``y = f(y)``) needs two; a few more cover results kept for a step or two.
BLOCKS_PER_SHAPE = 4


def _find_free(blocks: list[np.ndarray], free_refs: int) -> np.ndarray | None:
    """The first block whose only references are the pool's (list, loop, call)."""
    for block in blocks:
        if sys.getrefcount(block) <= free_refs:
            return block
    return None


def _calibrate() -> int | None:
    """The reference count :func:`_find_free` sees for a block only the pool holds.

    Measured at import on the interpreter that runs, not assumed: how many references a
    loop variable and a call argument add differs between CPython versions. None if the
    interpreter does not count references so that one more user reference shows (then
    the pool never recycles)."""
    if not hasattr(sys, "getrefcount"):
        return None
    probe = [np.empty(1)]
    for refs in range(1, 16):
        if _find_free(probe, refs) is not None:
            break
    else:
        return None
    held = probe[0].view()  # a user-visible view holds the block through ``.base``
    busy = _find_free(probe, refs) is None
    del held
    return refs if busy and _find_free(probe, refs) is not None else None


_FREE_REFS = _calibrate()


class OutputPool:
    """Blocks keyed by (shape, dtype), reused when no user-visible array refers to them."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.held = 0
        self._blocks: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialized array for a kernel to fill: a view of a free block if any."""
        key = (shape, dtype)
        with self._lock:
            blocks = self._blocks.get(key)
            if blocks is None:
                blocks = self._blocks[key] = []
            block = _find_free(blocks, _FREE_REFS) if _FREE_REFS is not None else None
            if block is not None:
                return block.view()
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if (
                _FREE_REFS is None
                or len(blocks) >= BLOCKS_PER_SHAPE
                or self.held + nbytes > self.budget
            ):
                return np.empty(shape, dtype)
            block = np.empty(shape, dtype)
            blocks.append(block)
            self.held += nbytes
            return block.view()

    def clear(self) -> None:
        """Drop the free blocks (busy ones are dropped from the pool, not freed)."""
        with self._lock:
            self._blocks.clear()
            self.held = 0


def env_number(name: str, default: float, zero: str) -> float:
    """A finite number >= 0 from environment variable ``name`` (``default`` if unset or
    empty); anything else is a ValueError naming the variable (a setting silently ignored
    is worse than one refused). ``zero`` says what 0 means."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{name}={raw!r} is not valid: expected a finite number >= 0 (default {default:g}; "
            f"{zero}). Fix: set {name} to such a number, or unset it"
        )
    return value


def _budget() -> int:
    """``FUNCGRAD_OUTPUT_POOL_MB`` in bytes."""
    mb = env_number("FUNCGRAD_OUTPUT_POOL_MB", 256, "0 turns output recycling off")
    return int(mb * (1 << 20))


pool = OutputPool(_budget())


def clear() -> None:
    """Release the pool's free output blocks (their memory returns to the system)."""
    pool.clear()


def with_buffers(dispatcher: Any, avals: list[Any]) -> Any:
    """``dispatcher`` with its trailing buffer parameters supplied from the pool."""
    if not avals:
        return dispatcher
    specs = [(tuple(a.shape), np.dtype(a.dtype)) for a in avals]
    empty = pool.empty
    if len(specs) == 1:
        ((shape, dtype),) = specs

        def call(*args: Any) -> Any:
            return dispatcher(*args, empty(shape, dtype))

        return call

    def call_many(*args: Any) -> Any:
        return dispatcher(*args, *[empty(s, d) for s, d in specs])

    return call_many
