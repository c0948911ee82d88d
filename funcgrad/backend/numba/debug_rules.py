"""Lowering of ``debug_callback`` (``funcgrad.debug``): a call from the kernel into Python.

The kernel calls the helper ``fg_debug_callback(id, (operands...))``; compiled, the helper
is a small njit function whose body runs in ``numba.objmode`` (the interpreter) and hands
the operand arrays and the callback's number to ``funcgrad.debug.invoke_callback``, which looks the
Python function up and calls it with copies. So the values printed are the kernel's own, at
that point of the computation, and the kernel carries on afterwards. The helper is built
once per process like the BLAS helpers (``_numba_<name>`` in ``helpers``), and it is added
to that module here so that generated sources import it by the usual line.
"""

from __future__ import annotations

from funcgrad.backend.numba import helpers
from funcgrad.backend.numba.lowering import opaque
from funcgrad.debug import invoke_callback


def fg_debug_callback(cb_id, arrays):
    """Plain Python (kernel sources run without numba too)."""
    invoke_callback(cb_id, arrays)


def _numba_fg_debug_callback():
    import numba

    @numba.njit(cache=False)
    def fg_debug_callback(cb_id, arrays):
        with numba.objmode():
            invoke_callback(cb_id, arrays)

    return fg_debug_callback


# Generated sources import helpers from ``funcgrad.backend.numba.helpers`` by name.
helpers.register("fg_debug_callback", fg_debug_callback, _numba_fg_debug_callback)


@opaque("debug_callback")
def _debug_callback(ctx, *operands, callback):
    fn = ctx.helper("fg_debug_callback")
    names = [ctx.arg(x) for x in operands]
    arrays = f"({', '.join(names)},)" if names else "()"
    ctx.emit(f"{fn}({int(callback.id)}, {arrays})")
