"""The core: abstract values, primitives, the interpreter stack, and tracers.

The design follows JAX's Autodidax. A :class:`Primitive` is a named operation;
``prim.bind(*args, **params)`` hands it to the innermost active interpreter (a
:class:`Trace`). Interpreters sit on a stack of levels: eval (run NumPy) at the bottom,
then one level per active transformation (jvp, batching, staging into a jaxpr). Nesting
the levels is how ``grad(vmap(jit(f)))`` composes. Array data goes to ``bind`` by position,
metadata by keyword (hashable), so tracers can only appear among the positional arguments.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad import dtypes
from funcgrad.errors import (
    ConcretizationTypeError,
    TracerArrayConversionError,
    TracerIntegerConversionError,
    UnexpectedTracerError,
)

# ----------------------------------------------------------------------------------------
# Abstract values


class ShapedArray:
    """An array known only by its shape and dtype: what a traced value is while tracing."""

    __slots__ = ("shape", "dtype", "weak_type")
    array_abstraction_level = 1

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, weak_type: bool = False) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        # Weak: the value of a Python scalar, which promotes like one (NEP 50).
        self.weak_type = weak_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def str_short(self) -> str:
        """``f32[3,4]``: the type as the jaxpr printer writes it."""
        return f"{dtypes.short_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    def strip(self) -> ShapedArray:
        """This aval without a concrete value."""
        return self

    def strip_weak(self) -> ShapedArray:
        """This aval without a concrete value or weakness (as a loop carry or branch output)."""
        return ShapedArray(self.shape, self.dtype)

    def update(self, shape: tuple[int, ...] | None = None, dtype: Any = None) -> ShapedArray:
        return ShapedArray(
            self.shape if shape is None else shape,
            self.dtype if dtype is None else dtype,
            self.weak_type and dtype is None,
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ShapedArray)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.weak_type == other.weak_type
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.weak_type))

    def __repr__(self) -> str:
        return f"ShapedArray({self.str_short()})"

    # Python needs a concrete value for these; only ConcreteArray has one.
    def _concrete(self, tracer: Tracer, context: str) -> Any:
        raise concretization_error(tracer, context)


class ConcreteArray(ShapedArray):
    """A ShapedArray that also knows its value: what ``grad`` sees outside ``jit``/``vmap``.

    It is what lets Python control flow (``if x > 0:``) work under eager ``grad``.
    """

    __slots__ = ("val",)
    array_abstraction_level = 0

    def __init__(self, val: Any, weak_type: bool = False) -> None:
        self.val = val
        self.weak_type = weak_type
        if type(val) is np.ndarray or isinstance(val, np.generic):
            self.shape = val.shape  # fast path: get_aval runs on every eager rule
            self.dtype = val.dtype
        else:
            self.shape = np.shape(val)
            self.dtype = dtypes.dtype_of(val)

    def strip(self) -> ShapedArray:
        return ShapedArray(self.shape, self.dtype, self.weak_type)

    def _concrete(self, tracer: Tracer, context: str) -> Any:
        return self.val


def get_aval(x: Any) -> ShapedArray:
    """The abstract value of a tracer or a concrete array-like."""
    if isinstance(x, Tracer):
        return x.aval
    if isinstance(x, (np.ndarray, np.generic)):
        return ConcreteArray(x)
    if dtypes.is_python_scalar(x):
        return ConcreteArray(np.asarray(x, dtypes.dtype_of(x)), weak_type=True)
    try:
        arr = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{type(x).__name__} is not a valid funcgrad array type: {e}") from e
    if arr.dtype == object:
        raise TypeError(
            f"{type(x).__name__} is not a valid funcgrad array type "
            "(it converts to a NumPy array of dtype object)"
        )
    return ConcreteArray(arr)


def shaped_aval(x: Any) -> ShapedArray:
    """The abstract value of ``x`` with any concrete value dropped."""
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return ShapedArray(x.shape, x.dtype)
    return get_aval(x).strip()


def as_array(x: Any) -> Any:
    """A pytree leaf as an array: tracers and NumPy values as they are, Python numbers with
    funcgrad's dtypes (``float`` -> float64, ``int`` -> int64), anything else through NumPy
    (a clear TypeError for what is not array-like). The one conversion of leaves that the
    transformations, control flow and custom rules apply."""
    if isinstance(x, Tracer) or isinstance(x, np.ndarray | np.generic):
        return x
    if dtypes.is_python_scalar(x):
        return np.asarray(x, dtypes.dtype_of(x))
    return get_aval(x).val  # type: ignore[attr-defined]  # a ConcreteArray


# ----------------------------------------------------------------------------------------
# Primitives

#: Every primitive ever created, by name: the registry the rule-coverage tests walk.
primitives: dict[str, Primitive] = {}


class Primitive:
    """A named operation. ``bind`` dispatches it to the innermost active interpreter."""

    __slots__ = (
        "name",
        "multiple_results",
        "impl",
        "unchecked_impl",
        "abstract_eval",
        "__weakref__",
    )

    def __init__(self, name: str, *, multiple_results: bool = False) -> None:
        if name in primitives:
            raise ValueError(f"a primitive named {name!r} already exists")
        self.name = name
        self.multiple_results = multiple_results
        # None until registered; typed as set, since every primitive registers both.
        self.impl: Callable = None  # type: ignore[assignment]
        #: The impl without its input validation, for callers that already checked the
        #: types (programs replayed by eager ``grad``); ``impl`` unless set after ``def_impl``.
        self.unchecked_impl: Callable = None  # type: ignore[assignment]
        self.abstract_eval: Callable = None  # type: ignore[assignment]
        primitives[name] = self

    def __repr__(self) -> str:
        return self.name

    def def_impl(self, impl: Callable) -> Callable:
        """Register the NumPy implementation (eager mode, and the reference for tests)."""
        self.impl = self.unchecked_impl = impl
        return impl

    def def_abstract_eval(self, rule: Callable) -> Callable:
        """Register the shape/dtype rule ``rule(*avals, **params) -> aval(s)``."""
        self.abstract_eval = rule
        return rule

    def bind(self, *args: Any, **params: Any) -> Any:
        if _eager_only[0]:
            # Fast path: no transformation is active, so run NumPy directly.
            for a in args:
                if isinstance(a, Tracer):
                    raise _leaked_tracer_error(a, self)
            try:
                return self.impl(*args, **params)
            except Exception as e:
                # Prefer the primitive's own, clearer error for bad input.
                self.abstract_eval(*map(shaped_aval, args), **params)
                raise e
        trace = find_top_trace(args)
        if type(trace) is EvalTrace:
            # Only concrete values (e.g. primal operations under eager grad): run NumPy.
            try:
                return self.impl(*args, **params)
            except Exception as e:
                self.abstract_eval(*map(shaped_aval, args), **params)
                raise e
        if trace.raw_args:
            # The eager reverse-mode tape unboxes its own tracers and boxes its own results.
            return trace.process_primitive(self, args, params)  # type: ignore[arg-type]
        tracers = [full_raise(trace, a) for a in args]
        outs = trace.process_primitive(self, tracers, params)
        if self.multiple_results:
            return [full_lower(o) for o in outs]
        return full_lower(outs)


# ----------------------------------------------------------------------------------------
# The interpreter stack


class MainTrace:
    """One level of the interpreter stack; ``global_data`` is the transformation's state."""

    __slots__ = ("level", "trace_type", "global_data", "alive", "trace")

    def __init__(self, level: int, trace_type: type, global_data: Any) -> None:
        self.level = level
        self.trace_type = trace_type
        self.global_data = global_data
        self.alive = True
        self.trace = trace_type(self)

    def __repr__(self) -> str:
        return f"MainTrace({self.level}, {self.trace_type.__name__})"


class Trace:
    """An interpreter: how to box values (``pure``/``lift``) and run a primitive."""

    __slots__ = ("main",)
    #: True when ``process_primitive`` takes ``bind``'s operands as they are (no
    #: ``full_raise``) and returns final values (no ``full_lower``).
    raw_args = False

    def __init__(self, main: MainTrace) -> None:
        self.main = main

    def pure(self, val: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.pure")

    def lift(self, val: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.lift")

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.process_primitive")


class EvalTrace(Trace):
    """The bottom interpreter: run each primitive's NumPy implementation."""

    __slots__ = ()

    def pure(self, val: Any) -> Any:
        return val

    lift = pure

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        return primitive.impl(*tracers, **params)


class _TraceState(threading.local):
    """The interpreter stack of one thread: each thread traces on its own, as in JAX."""

    def __init__(self) -> None:
        self.stack: list[MainTrace] = [MainTrace(0, EvalTrace, None)]
        #: The staging interpreter that sees every bind, even of constants (``jit``), or None.
        self.dynamic: MainTrace | None = None


_state = _TraceState()
# A process-wide hint read by the hot paths (``bind``, jit dispatch): True while no thread
# has a transformation active, so the calling thread certainly has none either. While some
# thread traces it is False everywhere, and callers fall back to the exact per-thread test
# (:func:`is_eager`); a thread that is not tracing then still finds its own eval trace.
_eager_only = [True]
_active_lock = threading.Lock()
_active = [0]  # transformations active across all threads
# Staging traces (``new_dynamic``) active across all threads: while 0, ``find_top_trace``
# need not read the calling thread's (thread-local, so slower to read) dynamic trace.
_staging = [0]


def is_eager() -> bool:
    """True when no transformation is active in the calling thread: ``bind`` runs NumPy."""
    if _eager_only[0]:
        return True
    s = _state
    return len(s.stack) == 1 and s.dynamic is None


def trace_stack() -> list[MainTrace]:
    """The calling thread's interpreter stack (bottom: the eval trace)."""
    return _state.stack


def dynamic_trace() -> MainTrace | None:
    """The calling thread's staging trace that sees every bind (``jit``), or None."""
    return _state.dynamic


def _enter(staging: bool = False) -> None:
    with _active_lock:
        _active[0] += 1
        _eager_only[0] = False
        _staging[0] += staging


def _exit(staging: bool = False) -> None:
    with _active_lock:
        _active[0] -= 1
        _eager_only[0] = _active[0] == 0
        _staging[0] -= staging


@contextmanager
def new_main(trace_type: type, global_data: Any = None) -> Iterator[MainTrace]:
    """Push a new interpreter level for the duration of a transformation."""
    stack = _state.stack
    main = MainTrace(len(stack), trace_type, global_data)
    stack.append(main)
    _enter()
    try:
        yield main
    finally:
        stack.pop()
        main.alive = False
        # Break the main <-> trace reference cycle, so that the transformation's state
        # (global_data: a tape, a jaxpr builder) is freed by reference counting on exit
        # rather than by a later garbage collection.
        main.trace = None
        _exit()


@contextmanager
def new_dynamic(main: MainTrace) -> Iterator[None]:
    """Make ``main`` see every ``bind`` (as staging for ``jit`` must), until exit."""
    state = _state
    _enter(staging=True)  # counted before the thread's binds can see it
    prev, state.dynamic = state.dynamic, main
    try:
        yield
    finally:
        state.dynamic = prev
        _exit(staging=True)


def find_top_trace(xs: Sequence[Any]) -> Trace:
    """The trace of the highest level among ``xs`` (and the dynamic trace)."""
    # Each read of the thread-local state costs as much as a dict lookup, and this runs on
    # every bind under a transformation (each op of eager grad): the state is read only
    # when some thread stages, or when no operand is a tracer.
    top = None
    for x in xs:
        if isinstance(x, Tracer):
            main = x._trace.main
            if not main.alive:
                raise _leaked_tracer_error(x, None)
            if top is None or main.level > top.level:
                top = main
    if _staging[0]:
        dyn = _state.dynamic
        if dyn is not None and (top is None or dyn.level > top.level):
            top = dyn
    if top is None:
        return _state.stack[0].trace
    return top.trace


def current_trace() -> Trace:
    """The innermost active interpreter (what ``fnp.asarray`` lifts constants into)."""
    state = _state
    top = state.stack[-1]
    dyn = state.dynamic
    if dyn is not None and dyn.level > top.level:
        top = dyn
    return top.trace


def full_raise(trace: Trace, val: Any) -> Any:
    """Box ``val`` as a tracer of ``trace`` (constants via ``pure``, lower tracers via ``lift``)."""
    if not isinstance(val, Tracer):
        return trace.pure(val)
    main = val._trace.main
    if main is trace.main:
        return val
    if main.level < trace.main.level:
        return trace.lift(val)
    raise _leaked_tracer_error(val, None)


def full_lower(val: Any) -> Any:
    """Unbox a tracer that carries no transformation payload (e.g. a zero-tangent JVP)."""
    if isinstance(val, Tracer):
        return val.full_lower()
    return val


def _leaked_tracer_error(tracer: Tracer, primitive: Primitive | None) -> UnexpectedTracerError:
    where = f" (passed to {primitive.name})" if primitive is not None else ""
    return UnexpectedTracerError(
        f"Encountered an unexpected tracer{where}: {tracer!r}. A value traced by a "
        "transformation (jit, grad, vmap, ...) escaped it, for example by being stored in a "
        "global, a class attribute or a closure that outlived the call. Return traced values "
        "from the transformed function instead of storing them."
    )


# ----------------------------------------------------------------------------------------
# Tracers


_fnp_module: list[Any] = []


def _fnp() -> Any:
    """funcgrad.numpy, imported on first use (it imports this module); every tracer
    operator goes through here, so the module is kept rather than re-imported."""
    if not _fnp_module:
        from funcgrad import numpy as fnp

        _fnp_module.append(fnp)
    return _fnp_module[0]


def concretization_error(tracer: Tracer, context: str) -> ConcretizationTypeError:
    """The error for Python code that needs the value of a traced array."""
    origin = tracer._provenance()
    origin_text = f" It depends on {origin}." if origin else ""
    cls = TracerIntegerConversionError if context in ("int", "index") else ConcretizationTypeError
    hint = ""
    if context == "index":
        hint = (
            " If you are indexing a NumPy array or a Python list with a traced index, convert "
            "the table first: `fnp.asarray(table)[i]` or `fnp.take(table, i)`."
        )
    return cls(
        f"Abstract tracer value encountered where a concrete value is expected: "
        f"{context}() of {tracer.aval.str_short()}.{origin_text} Under jit and vmap values "
        "are abstract (only shape and dtype are known), so Python control flow on them "
        "(`if`, `while`, `bool()`, `int()`, `float()`) cannot work. Use funcgrad.lax.cond, "
        "funcgrad.lax.while_loop or funcgrad.numpy.where for value-dependent logic, or mark "
        f"the argument static with jit's `static_argnums`/`static_argnames`.{hint}"
    )


class Tracer:
    """A traced value: the payload of one transformation plus array behaviour via its aval."""

    __slots__ = ("_trace",)
    _trace: Trace
    __array_priority__ = 1000
    #: Whether this value promotes like a Python scalar (only staged values can be weak).
    _weak = False

    @property
    def aval(self) -> ShapedArray:
        raise NotImplementedError(f"{type(self).__name__}.aval")

    def full_lower(self) -> Any:
        return self

    def _provenance(self) -> str | None:
        """Which function argument this value came from, for error messages."""
        return None

    # -- array attributes
    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)
    T = property(lambda self: _fnp().transpose(self))
    mT = property(lambda self: _fnp().swapaxes(self, -1, -2))

    @property
    def at(self) -> Any:
        return _fnp().at(self)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        if not self.shape:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    # -- Python needs concrete values here
    def __bool__(self) -> bool:
        return bool(self.aval._concrete(self, "bool"))

    def __int__(self) -> int:
        return int(self.aval._concrete(self, "int"))

    def __float__(self) -> float:
        return float(self.aval._concrete(self, "float"))

    def __complex__(self) -> complex:
        return complex(self.aval._concrete(self, "complex"))

    def __index__(self) -> int:
        val = self.aval._concrete(self, "index")
        return operator.index(val.item() if hasattr(val, "item") else val)

    def item(self) -> Any:
        val = self.aval._concrete(self, "item")
        return np.asarray(val).item()

    def tolist(self) -> Any:
        return np.asarray(self.aval._concrete(self, "tolist")).tolist()

    __hash__ = None  # type: ignore[assignment]  # arrays are unhashable

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TracerArrayConversionError(
            f"A traced array ({self.aval.str_short()}) was converted to a NumPy array. Inside "
            "jit, grad and vmap, use funcgrad.numpy (`import funcgrad.numpy as fnp`) instead "
            "of numpy on traced values. If you are indexing a NumPy array with a traced index, "
            "write `fnp.asarray(table)[i]` or `fnp.take(table, i)`."
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        # np.sin(tracer) and ndarray + tracer land here: run funcgrad's version instead.
        fn = getattr(_fnp(), ufunc.__name__, None) if method == "__call__" else None
        if fn is None or kwargs.get("out") is not None:
            return NotImplemented
        return fn(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        fn = getattr(_fnp(), func.__name__, None)
        if fn is None:
            raise TypeError(
                f"numpy.{func.__name__} does not accept traced values; funcgrad.numpy has no "
                f"{func.__name__} either. Express it with funcgrad.numpy functions."
            )
        return fn(*args, **kwargs)

    # -- operators: all go through funcgrad.numpy for NumPy's broadcasting and promotion
    def __neg__(self):
        return _fnp().negative(self)

    def __pos__(self):
        return _fnp().positive(self)

    def __abs__(self):
        return _fnp().abs(self)

    def __invert__(self):
        return _fnp().invert(self)

    def __add__(self, o):
        return _fnp().add(self, o)

    def __radd__(self, o):
        return _fnp().add(o, self)

    def __sub__(self, o):
        return _fnp().subtract(self, o)

    def __rsub__(self, o):
        return _fnp().subtract(o, self)

    def __mul__(self, o):
        return _fnp().multiply(self, o)

    def __rmul__(self, o):
        return _fnp().multiply(o, self)

    def __truediv__(self, o):
        return _fnp().true_divide(self, o)

    def __rtruediv__(self, o):
        return _fnp().true_divide(o, self)

    def __floordiv__(self, o):
        return _fnp().floor_divide(self, o)

    def __rfloordiv__(self, o):
        return _fnp().floor_divide(o, self)

    def __mod__(self, o):
        return _fnp().remainder(self, o)

    def __rmod__(self, o):
        return _fnp().remainder(o, self)

    def __divmod__(self, o):
        return _fnp().divmod(self, o)

    def __rdivmod__(self, o):
        return _fnp().divmod(o, self)

    def __pow__(self, o):
        return _fnp().power(self, o)

    def __rpow__(self, o):
        return _fnp().power(o, self)

    def __matmul__(self, o):
        return _fnp().matmul(self, o)

    def __rmatmul__(self, o):
        return _fnp().matmul(o, self)

    def __and__(self, o):
        return _fnp().bitwise_and(self, o)

    def __rand__(self, o):
        return _fnp().bitwise_and(o, self)

    def __or__(self, o):
        return _fnp().bitwise_or(self, o)

    def __ror__(self, o):
        return _fnp().bitwise_or(o, self)

    def __xor__(self, o):
        return _fnp().bitwise_xor(self, o)

    def __rxor__(self, o):
        return _fnp().bitwise_xor(o, self)

    def __lshift__(self, o):
        return _fnp().left_shift(self, o)

    def __rlshift__(self, o):
        return _fnp().left_shift(o, self)

    def __rshift__(self, o):
        return _fnp().right_shift(self, o)

    def __rrshift__(self, o):
        return _fnp().right_shift(o, self)

    def __lt__(self, o):
        return _fnp().less(self, o)

    def __le__(self, o):
        return _fnp().less_equal(self, o)

    def __gt__(self, o):
        return _fnp().greater(self, o)

    def __ge__(self, o):
        return _fnp().greater_equal(self, o)

    def __eq__(self, o):  # type: ignore[override]
        return _fnp().equal(self, o)

    def __ne__(self, o):  # type: ignore[override]
        return _fnp().not_equal(self, o)

    def __getitem__(self, idx):
        return _fnp()._getitem(self, idx)

    def __setitem__(self, idx, val):
        raise TypeError(
            "funcgrad arrays are immutable under transformations: instead of "
            "`x[idx] = y`, write `x = x.at[idx].set(y)`."
        )

    # -- array methods (NumPy's), all thin calls into funcgrad.numpy
    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return _fnp().reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return _fnp().transpose(self, axes or None)

    def astype(self, dtype, copy=True):
        return _fnp().astype(self, dtype)

    def ravel(self, order="C"):
        return _fnp().ravel(self, order=order)

    def flatten(self, order="C"):
        return _fnp().ravel(self, order=order)

    def squeeze(self, axis=None):
        return _fnp().squeeze(self, axis)

    def swapaxes(self, a, b):
        return _fnp().swapaxes(self, a, b)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _fnp().sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _fnp().prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _fnp().mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _fnp().var(self, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _fnp().std(self, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False, **kw):
        return _fnp().max(self, axis=axis, out=out, keepdims=keepdims, **kw)

    def min(self, axis=None, out=None, keepdims=False, **kw):
        return _fnp().min(self, axis=axis, out=out, keepdims=keepdims, **kw)

    def all(self, axis=None, out=None, keepdims=False):
        return _fnp().all(self, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return _fnp().any(self, axis=axis, out=out, keepdims=keepdims)

    def argmax(self, axis=None, out=None, keepdims=False):
        return _fnp().argmax(self, axis=axis, out=out, keepdims=keepdims)

    def argmin(self, axis=None, out=None, keepdims=False):
        return _fnp().argmin(self, axis=axis, out=out, keepdims=keepdims)

    def cumsum(self, axis=None, dtype=None, out=None):
        return _fnp().cumsum(self, axis=axis, dtype=dtype, out=out)

    def cumprod(self, axis=None, dtype=None, out=None):
        return _fnp().cumprod(self, axis=axis, dtype=dtype, out=out)

    def clip(self, min=None, max=None):
        return _fnp().clip(self, min, max)

    def round(self, decimals=0):
        return _fnp().round(self, decimals)

    def dot(self, other):
        return _fnp().dot(self, other)

    def conj(self):
        return _fnp().conj(self)

    def conjugate(self):
        return _fnp().conj(self)

    @property
    def real(self):
        return _fnp().real(self)

    @property
    def imag(self):
        return _fnp().imag(self)

    def sort(self, axis=-1):
        return _fnp().sort(self, axis=axis)

    def argsort(self, axis=-1):
        return _fnp().argsort(self, axis=axis)

    def take(self, indices, axis=None):
        return _fnp().take(self, indices, axis=axis)

    def nonzero(self):
        return _fnp().nonzero(self)

    def copy(self):
        return self

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.aval.str_short()}>"
