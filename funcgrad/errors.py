"""funcgrad's exception types: errors are part of the API, so each one says what to do."""

from __future__ import annotations


class FuncgradError(Exception):
    """Base class of funcgrad's own errors."""


class ConcretizationTypeError(FuncgradError, TypeError):
    """A traced value met Python code that needs a concrete value (``bool``, ``if``, ``int``...).

    Under ``jit`` and ``vmap`` values are abstract: only their shape and dtype are known
    while tracing. Use ``funcgrad.lax.cond``/``while_loop`` for value-dependent control
    flow, or mark the argument static with ``static_argnums``.
    """


class UnexpectedTracerError(FuncgradError, RuntimeError):
    """A tracer escaped the transformation that created it (stored in a global, say)."""


class TracerArrayConversionError(FuncgradError, TypeError):
    """A traced value was handed to NumPy (``np.asarray(tracer)``) inside a transformation."""


class TracerIntegerConversionError(ConcretizationTypeError):
    """A traced value was used where Python needs an ``int`` (indexing a list, ``range``)."""


class LoweringError(FuncgradError, RuntimeError):
    """The numba backend could not compile a primitive; names the primitive, shapes, dtypes."""
