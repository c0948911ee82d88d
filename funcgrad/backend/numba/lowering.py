"""Lowering rules of the numba backend, keyed by primitive *name*.

Four tables, one per way a primitive can be lowered (``funcgrad.lax`` never imports this):

- :data:`ELEMENTWISE`: ``rule(ctx, *operand_exprs) -> expr``, a scalar expression computed
  inside a fused loop nest (``ctx`` is a ``nest.ExprCtx``: operand/result avals, params).
- :data:`VIEWS`: ``rule(in_aval, out_aval, **params) -> access map | None``, equations that
  only remap indices; readers compose the map into their own reads (``plan.py``).
- :data:`REDUCTIONS`: identity, combine and accumulator dtype of a reduction that fuses with
  its producers.
- :data:`OPAQUE`: ``rule(ctx, *operands, **params)`` emits statements that assign
  ``ctx.outs`` (``ctx`` is a ``codegen.OpaqueCtx``): BLAS calls, sorts, scans, slices.

The registry test requires every primitive in ``funcgrad.core.primitives`` to appear in
one of the tables (see :func:`has_lowering`). Results keep their dtypes exactly: integer
expressions narrower than 64 bits are cast back (numba computes them in int64), float32
stays float32, and literals are typed (``np.float32(2.0)``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad.backend.numba.sizes import dtype_name
from funcgrad.ir import CALL_PRIMITIVES

SUPPORTED_DTYPES = frozenset(
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]
)


def cast(expr: str, dtype: np.dtype) -> str:
    """``expr`` converted to ``dtype`` (nonzero -> True for bool, NumPy's astype)."""
    if dtype.kind == "b":
        return f"({expr} != 0)"
    return f"np.{dtype_name(dtype)}({expr})"


def _int_fix(ctx: Any, expr: str) -> str:
    """numba computes narrow integers in int64: cast the result back (wraps like NumPy)."""
    dt = ctx.out_aval.dtype
    if dt.kind in "iu" and dt.itemsize < 8:
        return cast(expr, dt)
    return expr


def parallel_threshold() -> int | None:
    """Loop-nest size (elements) from which a nest runs its outer loop under ``prange``;
    None: never.

    Threads are opt-in: ``FUNCGRAD_NUM_THREADS=N`` (N >= 2, or ``auto`` for numba's
    default count) turns them on for nests of at least ``FUNCGRAD_PARALLEL_MIN_WORK``
    elements (default :data:`PARALLEL_MIN_WORK`). Measured with
    ``benchmarks/calibrate_backend.py`` on the shared 2-core development machine, waking
    numba's OpenMP pool cost about 5 ms per call and threads never paid off up to 16M
    elements, so serial kernels are the safe default; on a dedicated multi-core machine
    run the calibration and set the two variables.
    """
    threads = os.environ.get("FUNCGRAD_NUM_THREADS", "").strip().lower()
    if threads in ("", "0", "1") or (os.cpu_count() or 1) <= 1:
        return None
    return int(os.environ.get("FUNCGRAD_PARALLEL_MIN_WORK", PARALLEL_MIN_WORK))


#: Default of ``FUNCGRAD_PARALLEL_MIN_WORK`` (elements of a loop nest).
PARALLEL_MIN_WORK = 1 << 20


# ----------------------------------------------------------------------------------------
# Elementwise

ELEMENTWISE: dict[str, Callable[..., str]] = {}


def _expr(name: str, template: str, int_fix: bool = True) -> None:
    """A rule from a template over ``{0}``, ``{1}``...: ``_expr("add", "({0} + {1})")``."""

    def rule(ctx: Any, *args: str) -> str:
        expr = template.format(*args)
        return _int_fix(ctx, expr) if int_fix else expr

    ELEMENTWISE[name] = rule


def _float_fn(name: str, fn: str) -> None:
    _expr(name, f"{fn}({{0}})", int_fix=False)


for _name, _fn in [
    ("exp2", "np.exp2"),
    ("sqrt", "np.sqrt"),
    ("tan", "np.tan"),
    ("asin", "np.arcsin"),
    ("acos", "np.arccos"),
    ("atan", "np.arctan"),
    ("sinh", "np.sinh"),
    ("cosh", "np.cosh"),
    ("asinh", "np.arcsinh"),
    ("acosh", "np.arccosh"),
    ("atanh", "np.arctanh"),
    ("floor", "np.floor"),
    ("ceil", "np.ceil"),
    ("is_finite", "np.isfinite"),
]:
    _float_fn(_name, _fn)


#: Use the vectorizable polynomial math of ``mathlib.py`` (``FUNCGRAD_MATHLIB=0``: libm).
USE_MATHLIB = os.environ.get("FUNCGRAD_MATHLIB", "1") != "0"


def _mathlib(name: str, libm: Callable[[Any, str], str], guard: bool = False) -> None:
    """``name`` through ``mathlib.<name>_f32/_f64`` (branch-free, LLVM vectorizes it).

    numba's ``np.exp`` & co. are scalar libm calls that stop a loop from vectorizing. The
    mathlib's sin/cos return NaN above ``SINCOS_MAX``; with ``guard`` the nest counts such
    arguments and, if there are any, runs again with libm (``ctx.exact``), so results
    never depend on the argument range.
    """

    def rule(ctx: Any, x: str) -> str:
        dt = ctx.out_aval.dtype
        if ctx.exact or not USE_MATHLIB or dt.name not in ("float32", "float64"):
            return libm(ctx, x)
        suffix = "f32" if dt.itemsize == 4 else "f64"
        if guard:
            limit = ctx.mathlib(f"SINCOS_MAX_{suffix.upper()}")
            ctx.guard(f"np.abs({x}) > {limit}")
        return f"{ctx.mathlib(f'{name}_{suffix}')}({x})"

    ELEMENTWISE[name] = rule


_mathlib("exp", lambda ctx, x: f"np.exp({x})")
_mathlib("expm1", lambda ctx, x: f"np.expm1({x})")
_mathlib("log", lambda ctx, x: f"np.log({x})")
_mathlib("log1p", lambda ctx, x: f"np.log1p({x})")
_mathlib("tanh", lambda ctx, x: f"np.tanh({x})")
_mathlib("sin", lambda ctx, x: f"np.sin({x})", guard=True)
_mathlib("cos", lambda ctx, x: f"np.cos({x})", guard=True)
_mathlib("logistic", lambda ctx, x: f"{ctx.helper('fg_logistic')}({x}, {ctx.lit(1)})")
_mathlib("erf", lambda ctx, x: ctx.cast(f"{ctx.helper('fg_erf')}({x})", ctx.out_aval.dtype))

_expr("neg", "(-{0})")
_expr("abs", "np.abs({0})")
_expr("add", "({0} + {1})")
_expr("sub", "({0} - {1})")
_expr("mul", "({0} * {1})")
_expr("atan2", "np.arctan2({0}, {1})", int_fix=False)
_expr("pow", "np.power({0}, {1})", int_fix=False)
_expr("nextafter", "np.nextafter({0}, {1})", int_fix=False)
for _name, _op in [
    ("eq", "=="),
    ("ne", "!="),
    ("lt", "<"),
    ("le", "<="),
    ("gt", ">"),
    ("ge", ">="),
]:
    _expr(_name, f"({{0}} {_op} {{1}})", int_fix=False)
_expr("stop_gradient", "{0}", int_fix=False)
_expr("and", "({0} & {1})")
_expr("or", "({0} | {1})")
_expr("xor", "({0} ^ {1})")


def _one(ctx: Any) -> str:
    return ctx.lit(1)


def _rule(name: str, atomic: bool = False) -> Callable[[Callable], Callable]:
    """Register an elementwise rule; ``atomic`` rules use an operand more than once, so the
    nest hands them names or array reads (never a nested expression to recompute)."""

    def register(fn: Callable) -> Callable:
        fn.atomic = atomic
        ELEMENTWISE[name] = fn
        return fn

    return register


def max_expr(x: str, y: str, dtype: np.dtype) -> str:
    """``np.maximum`` of two atomic operands as an expression (NaN if either is NaN)."""
    if dtype.kind in "fc":
        return f"({x} if ({x} > {y} or {x} != {x}) else {y})"
    return f"({x} if {x} > {y} else {y})"


def min_expr(x: str, y: str, dtype: np.dtype) -> str:
    if dtype.kind in "fc":
        return f"({x} if ({x} < {y} or {x} != {x}) else {y})"
    return f"({x} if {x} < {y} else {y})"


@_rule("not")
def _not(ctx, x):
    if ctx.out_aval.dtype.kind == "b":
        return f"(not {x})"
    return _int_fix(ctx, f"(~{x})")


@_rule("sign")
def _sign(ctx, x):
    return _int_fix(ctx, f"{ctx.helper('fg_sign')}({x}, {ctx.lit(1)}, {ctx.lit(0)})")


@_rule("round")
def _round(ctx, x):
    if ctx.params["rounding_method"] == 1:
        return f"np.rint({x})"
    return f"{ctx.helper('fg_round_away')}({x}, {ctx.lit(0.5)}, {ctx.lit(1)})"


@_rule("rsqrt")
def _rsqrt(ctx, x):
    return f"({_one(ctx)} / np.sqrt({x}))"


@_rule("cbrt")
def _cbrt(ctx, x):
    return ctx.cast(f"{ctx.helper('fg_cbrt')}({x})", ctx.out_aval.dtype)


@_rule("square", atomic=True)
def _square(ctx, x):
    return _int_fix(ctx, f"({x} * {x})")


@_rule("erf_inv")
def _erf_inv(ctx, x):
    return ctx.cast(f"{ctx.helper('fg_erf_inv')}({x})", ctx.out_aval.dtype)


@_rule("integer_pow", atomic=True)
def _integer_pow(ctx, x):
    y = ctx.params["y"]
    n = abs(y)
    if n == 0:
        p = _one(ctx)
    elif n <= 4:  # as products (no helper to compile): at most 1 ulp from np.power
        p = "(" + " * ".join([x] * n) + ")"
    else:
        p = f"{ctx.helper('fg_ipow')}({x}, {n}, {_one(ctx)})"
    return f"({_one(ctx)} / {p})" if y < 0 else _int_fix(ctx, p)


@_rule("div", atomic=True)
def _div(ctx, x, y):
    """Integer ``div`` truncates toward zero and gives 0 for ``x / 0`` (lax.div), computed
    in integers: Python's floor ``//`` plus one where the quotient is negative and inexact.
    ``y == -1`` is a negation (``INT_MIN // -1`` traps in hardware; negation wraps)."""
    dt = ctx.out_aval.dtype
    if dt.kind not in "iu":
        return f"({x} / {y})"
    zero = ctx.lit(0)
    if dt.kind == "u":
        return _int_fix(ctx, f"({zero} if {y} == 0 else {x} // {y})")
    inexact = f"(({x} % {y} != 0) and (({x} < 0) != ({y} < 0)))"
    q = f"({x} // {y} + {inexact})"
    return _int_fix(ctx, f"({zero} if {y} == 0 else ((-{x}) if {y} == -1 else {q}))")


@_rule("rem", atomic=True)
def _rem(ctx, x, y):
    """Integer ``rem`` has the sign of ``x`` (C's ``%``) and gives 0 for ``x % 0``: Python's
    floor ``%`` minus ``y`` where the signs differ; in integers (exact for 64 bits)."""
    dt = ctx.out_aval.dtype
    if dt.kind not in "iu":
        return f"np.fmod({x}, {y})"
    zero = ctx.lit(0)
    if dt.kind == "u":
        return _int_fix(ctx, f"({zero} if {y} == 0 else {x} % {y})")
    r = f"({x} % {y})"
    fix = f"({r} - {y} if ({r} != 0 and ({r} < 0) != ({x} < 0)) else {r})"
    return _int_fix(ctx, f"({zero} if ({y} == 0 or {y} == -1) else {fix})")


@_rule("max", atomic=True)
def _max(ctx, x, y):
    return max_expr(x, y, ctx.out_aval.dtype)


@_rule("min", atomic=True)
def _min(ctx, x, y):
    return min_expr(x, y, ctx.out_aval.dtype)


@_rule("clamp")
def _clamp(ctx, lo, x, hi):
    return f"{ctx.helper('fg_min')}({ctx.helper('fg_max')}({x}, {lo}), {hi})"


@_rule("convert_element_type")
def _convert(ctx, x):
    src, dst = ctx.in_avals[0].dtype, ctx.out_aval.dtype
    if src.kind == "c" and dst.kind != "c":
        x = f"{x}.real"
    if dst.kind == "b":
        return f"({x} != 0)"
    return f"np.{dtype_name(dst)}({x})"


@_rule("select_n", atomic=True)
def _select_n(ctx, which, *cases):
    if len(cases) == 1:
        return cases[0]
    if ctx.in_avals[0].dtype.kind == "b":
        return f"({cases[1]} if {which} else {cases[0]})"
    expr = cases[-1]
    for i in range(len(cases) - 2, -1, -1):
        expr = f"({cases[i]} if {which} <= {i} else {expr})"
    return expr


def _bits(ctx: Any) -> int:
    return ctx.out_aval.dtype.itemsize * 8


def _shift_in_range(ctx: Any, y: str) -> bool:
    """Whether the shift amount is a literal in ``[0, bits)``: then the plain operator is
    exact and vectorizes (the helpers branch on out-of-range amounts)."""
    val = ctx.literals[1]
    return val is not None and 0 <= int(val) < _bits(ctx)


@_rule("shift_left")
def _shift_left(ctx, x, y):
    if _shift_in_range(ctx, y):
        return _int_fix(ctx, f"({x} << {y})")
    return _int_fix(ctx, f"{ctx.helper('fg_shift_left')}({x}, {y}, {_bits(ctx)})")


@_rule("shift_right_arithmetic")
def _shift_right_arithmetic(ctx, x, y):
    if _shift_in_range(ctx, y):
        return _int_fix(ctx, f"({x} >> {y})")
    return _int_fix(ctx, f"{ctx.helper('fg_shift_right_arithmetic')}({x}, {y}, {_bits(ctx)})")


def _unsigned(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{dtype.itemsize}")


@_rule("shift_right_logical")
def _shift_right_logical(ctx, x, y):
    dt = ctx.out_aval.dtype
    u = cast(x, _unsigned(dt))
    if _shift_in_range(ctx, y):
        return cast(f"({u} >> {cast(y, _unsigned(dt))})", dt)
    return cast(f"{ctx.helper('fg_shift_right_logical')}({u}, {y}, {_bits(ctx)})", dt)


@_rule("population_count")
def _population_count(ctx, x):
    dt = ctx.out_aval.dtype
    u = _unsigned(dt)
    return cast(f"{ctx.helper('fg_popcount')}({cast(x, u)}, {ctx.lit(1, u)})", dt)


def iota_rule(ctx: Any, index: str) -> str:
    """``iota``: the loop index along its ``dimension`` (read as an ``index`` operand)."""
    return cast(index, ctx.out_aval.dtype)


# ----------------------------------------------------------------------------------------
# Views: index remappings, composed into their readers (see plan.py for access maps)

VIEWS: dict[str, Callable[..., Any]] = {}


def view_map(eqn: Any) -> Any:
    """The access map of a view equation (base axes from output axes), or None."""
    rule = VIEWS.get(eqn.primitive.name)
    if rule is None:
        return None
    return rule(eqn.inputs[0].aval, eqn.outvars[0].aval, **eqn.params)


def _view(name: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        VIEWS[name] = fn
        return fn

    return register


@_view("broadcast_in_dim")
def _broadcast_in_dim_view(x, out, *, shape, broadcast_dimensions, **_):
    return tuple(
        0 if x.shape[k] == 1 and shape[d] != 1 else (d, 0, 1)
        for k, d in enumerate(broadcast_dimensions)
    )


@_view("transpose")
def _transpose_view(x, out, *, permutation):
    inv = [0] * len(permutation)
    for i, p in enumerate(permutation):
        inv[p] = i
    return tuple((inv[k], 0, 1) for k in range(x.ndim))


def _unit_reshape(in_shape, out_shape):
    """Map for a reshape that only inserts or removes size-1 axes, else None."""
    if [d for d in in_shape if d != 1] != [d for d in out_shape if d != 1]:
        return None
    targets = [j for j, d in enumerate(out_shape) if d != 1]
    it = iter(targets)
    return tuple(0 if d == 1 else (next(it), 0, 1) for d in in_shape)


@_view("reshape")
def _reshape_view(x, out, *, new_sizes, **_):
    return _unit_reshape(x.shape, out.shape)


@_view("squeeze")
def _squeeze_view(x, out, *, dimensions):
    return _unit_reshape(x.shape, out.shape)


@_view("expand_dims")
def _expand_dims_view(x, out, *, dimensions):
    return _unit_reshape(x.shape, out.shape)


@_view("slice")
def _slice_view(x, out, *, start_indices, limit_indices, strides):
    strides = strides or (1,) * x.ndim
    return tuple(
        (k, int(s), int(t)) for k, (s, t) in enumerate(zip(start_indices, strides, strict=True))
    )


@_view("rev")
def _rev_view(x, out, *, dimensions):
    return tuple((k, n - 1, -1) if k in dimensions else (k, 0, 1) for k, n in enumerate(x.shape))


# ----------------------------------------------------------------------------------------
# Reductions that fuse with their producers


class Reduction:
    """``identity(dtype)``, ``combine(ctx, acc, value) -> expr``, accumulator dtype."""

    def __init__(
        self, identity: Callable, combine: Callable, atomic: bool = False, wide: bool = False
    ) -> None:
        self.identity = identity
        self.combine = combine
        self.atomic = atomic  # combine repeats the value: it must be a name or a read
        self.wide = wide

    def acc_dtype(self, dtype: np.dtype) -> np.dtype:
        # float32 sums and products accumulate in float64 (the result is float32).
        if self.wide and dtype == np.float32:
            return np.dtype(np.float64)
        return dtype


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return np.inf
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).max


def _all_ones(dtype: np.dtype) -> Any:
    return True if dtype.kind == "b" else np.array(-1).astype(dtype)[()]


REDUCTIONS: dict[str, Reduction] = {
    "reduce_sum": Reduction(lambda dt: 0, lambda c, a, v: f"{a} + {v}", wide=True),
    "reduce_prod": Reduction(lambda dt: 1, lambda c, a, v: f"{a} * {v}", wide=True),
    "reduce_max": Reduction(_lowest, lambda c, a, v: max_expr(a, v, c.out_aval.dtype), True),
    "reduce_min": Reduction(_highest, lambda c, a, v: min_expr(a, v, c.out_aval.dtype), True),
    "reduce_and": Reduction(_all_ones, lambda c, a, v: f"{a} & {v}"),
    "reduce_or": Reduction(lambda dt: 0, lambda c, a, v: f"{a} | {v}"),
    "reduce_xor": Reduction(lambda dt: 0, lambda c, a, v: f"{a} ^ {v}"),
}


# ----------------------------------------------------------------------------------------
# Opaque steps: their own statements

OPAQUE: dict[str, Callable[..., None]] = {}


def opaque(name: str, returns_view: bool = False) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        fn.returns_view = returns_view
        OPAQUE[name] = fn
        return fn

    return register


class LoweringKind(enum.Enum):
    """How a primitive is lowered."""

    INLINED = "inlined"  # a call: its body is spliced into the caller (``passes.py``)
    VIEW = "view"  # an index map its readers compose into their reads
    ELEMENTWISE = "elementwise"  # a scalar expression in a loop nest
    REDUCTION = "reduction"  # an accumulation in a loop nest
    OPAQUE = "opaque"  # a step of its own, written by its rule


def lowering_kind(name: str) -> LoweringKind | None:
    """How primitive ``name`` is lowered, or None when the backend cannot lower it."""
    if name in CALL_PRIMITIVES:
        return LoweringKind.INLINED
    if name in VIEWS:
        return LoweringKind.VIEW
    if name in ELEMENTWISE or name == "iota":
        return LoweringKind.ELEMENTWISE
    if name in REDUCTIONS:
        return LoweringKind.REDUCTION
    if name in OPAQUE:
        return LoweringKind.OPAQUE
    return None


def __getattr__(name: str) -> Any:
    # ``LOWERINGS``: primitive name -> lowering kind, for every primitive that has one
    # (computed on access, after every rule module has registered).
    if name == "LOWERINGS":
        from funcgrad import core

        return {n: k for n in core.primitives if (k := lowering_kind(n)) is not None}
    raise AttributeError(name)


def has_lowering(name: str) -> bool:
    """Whether the numba backend can lower primitive ``name`` (the registry test's check)."""
    return lowering_kind(name) is not None


# The opaque rules live in their own modules (imported for their registrations).
from funcgrad.backend.numba import collective_rules as _collective_rules  # noqa: E402, F401
from funcgrad.backend.numba import complex_rules as _complex_rules  # noqa: E402, F401
from funcgrad.backend.numba import control_flow_rules as _control_flow_rules  # noqa: E402, F401
from funcgrad.backend.numba import debug_rules as _debug_rules  # noqa: E402, F401
from funcgrad.backend.numba import fft_rules as _fft_rules  # noqa: E402, F401
from funcgrad.backend.numba import linalg_rules as _linalg_rules  # noqa: E402, F401
from funcgrad.backend.numba import opaque_rules as _opaque_rules  # noqa: E402, F401
