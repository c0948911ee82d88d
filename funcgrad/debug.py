"""Printing and callbacks from inside transformed functions, as ``jax.debug``.

``print(x)`` inside ``jit`` shows a tracer (``StagingTracer<f32[3]>``): the function runs
once, on abstract values, to be traced. ``debug.print("x = {}", x)`` instead prints the
*concrete* values every time the function runs: eagerly, under ``grad`` (the primal
values), under ``vmap`` (once per example, in order) and under ``jit``, from inside the
compiled numba kernel.

How: one primitive, ``debug_callback``, with no outputs. Dead-code elimination keeps it
(it is listed in ``funcgrad.ir.effectful_primitives``), its JVP runs it on the primal values
and has no tangents, its batching rule calls the function once per example, and the numba
backend lowers it to a call that leaves the kernel for Python (``numba.objmode``) with the
operands, then continues. Formatting happens in Python at run time, so any
``str.format`` spec works: ``debug.print("loss {:.3f}", loss)``.
"""

from __future__ import annotations

import builtins
import itertools
import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import tree_util
from funcgrad.core import Primitive, Tracer
from funcgrad.interpreters import ad, batching
from funcgrad.ir import effectful_primitives

__all__ = ["callback", "print"]

debug_callback_p = Primitive("debug_callback", multiple_results=True)
effectful_primitives.add("debug_callback")

_ids = itertools.count(1)
#: Live callbacks by id: kernels call them by number (see ``invoke_callback``).
_REGISTRY: weakref.WeakValueDictionary[int, _Callback] = weakref.WeakValueDictionary()


class _Callback:
    """The ``callback`` parameter: a Python function of the operands' concrete values.

    Compared by identity (each ``debug.print`` call site traced is its own), named for the
    jaxpr printer, and registered under a number that kernels pass back to Python."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.__name__ = name
        self.id = next(_ids)
        _REGISTRY[self.id] = self

    def __call__(self, *arrays: Any) -> None:
        self.fn(*arrays)

    def __repr__(self) -> str:
        return self.__name__


class _PerExample(_Callback):
    """``callback`` under ``vmap``: operands come batched (axis 0) where ``batched`` says;
    the wrapped callback runs once per example, in order."""

    def __init__(self, inner: _Callback, batched: tuple[bool, ...], size: int) -> None:
        self.inner, self.batched, self.size = inner, batched, size
        super().__init__(self._run, inner.__name__)

    def _run(self, *arrays: Any) -> None:
        for i in range(self.size):
            self.inner(*[a[i] if b else a for a, b in zip(arrays, self.batched, strict=True)])


def invoke_callback(cb_id: int, arrays: tuple) -> None:
    """Called by compiled kernels (from object mode) with a callback's number."""
    fn = _REGISTRY.get(int(cb_id))
    if fn is None:  # the program that owned it is gone; nothing to call
        return
    fn(*[np.array(a) for a in arrays])  # copies: the kernel's buffers are reused


# -- the primitive


@debug_callback_p.def_abstract_eval
def _abstract_eval(*avals: Any, callback: _Callback) -> list:
    return []


@debug_callback_p.def_impl
def _impl(*args: Any, callback: _Callback) -> list:
    callback(*[np.array(a) for a in args])
    return []


def _jvp(primals: list, tangents: list, *, callback: _Callback) -> tuple[list, list]:
    debug_callback_p.bind(*primals, callback=callback)  # the primal values; no tangents
    return [], []


ad.primitive_jvps[debug_callback_p] = _jvp


def _batch(args: list, dims: list, *, callback: _Callback) -> tuple[list, list]:
    size = batching.axis_size_of(args, dims)
    args = [
        batching.bdim_at_front(x, d, size) if d is not None else x
        for x, d in zip(args, dims, strict=True)
    ]
    per_example = _PerExample(callback, tuple(d is not None for d in dims), size)
    debug_callback_p.bind(*args, callback=per_example)
    return [], []


batching.primitive_batchers[debug_callback_p] = _batch


# -- the public functions


def _is_operand(leaf: Any) -> bool:
    return isinstance(leaf, Tracer | np.ndarray | np.generic)


def callback(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``fn(*args, **kwargs)`` with concrete NumPy values whenever this runs (eagerly,
    under grad/vmap, or inside a jit kernel). ``args`` may be pytrees; non-array leaves
    (Python numbers, strings) are passed as they are. Returns None: ``fn``'s result is
    dropped, and it must not be used to change the computation."""
    if not callable(fn):
        raise TypeError(f"debug.callback: the first argument must be a function, got {fn!r}")
    leaves, treedef = tree_util.tree_flatten((args, kwargs))
    where = [i for i, leaf in enumerate(leaves) if _is_operand(leaf)]
    static = list(leaves)

    def run(*arrays: Any) -> None:
        full = list(static)
        for i, a in zip(where, arrays, strict=True):
            full[i] = a
        a, kw = tree_util.tree_unflatten(treedef, full)
        fn(*a, **kw)

    name = getattr(fn, "__name__", "callback")
    debug_callback_p.bind(*[leaves[i] for i in where], callback=_Callback(run, name))


def print(fmt: str, *args: Any, **kwargs: Any) -> None:
    """``print(fmt.format(*args, **kwargs))`` with the concrete values of traced arrays,
    every time the function runs (see the module docstring)."""
    if not isinstance(fmt, str):
        raise TypeError(
            f"debug.print: the first argument is a format string like 'x = {{}}', got {fmt!r}"
        )

    def show(*a: Any, **kw: Any) -> None:
        builtins.print(fmt.format(*a, **kw), file=sys.stdout, flush=True)

    show.__name__ = "print"
    callback(show, *args, **kwargs)
