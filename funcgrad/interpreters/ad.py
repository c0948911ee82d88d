"""Automatic differentiation: forward mode, linearize, and transposition (reverse mode).

Forward mode is the JVP interpreter: each primitive has one jvp rule in
:data:`primitive_jvps`. Reverse mode is *linearize followed by transposition*, as in JAX:

1. ``linearize_flat`` runs the JVP interpreter on top of partial evaluation
   (``partial_eval.PartialEvalTrace``) with known primals and unknown tangents. Primal
   operations run immediately (on NumPy values when no ``jit``/``vmap`` is active, so
   Python control flow such as ``if x > 0:`` works under ``grad``); tangent operations
   are recorded as a *linear jaxpr* whose constants are the residuals.
2. :func:`backward_pass` walks that jaxpr backwards, calling each linear primitive's rule in
   :data:`primitive_transposes` with the cotangent of its output and :class:`UndefPrimal`
   for its linear inputs, and accumulating the cotangents of each variable.

Because both steps call ``bind``, they compose with every other interpreter:
``make_jaxpr(grad(f))`` is a plain jaxpr with the forward equations followed by the
backward ones, and ``grad(grad(f))``, ``jacfwd(jacrev(f))``, ``vmap(grad(f))`` work.

Rule signatures:
- ``primitive_jvps[p](primals, tangents, **params) -> (primal_out, tangent_out)``; a tangent
  may be a symbolic :class:`Zero`. Most rules are built with :func:`defjvp`.
- ``primitive_transposes[p](ct, *args, **params) -> list`` with one cotangent (or ``None``
  for "no contribution") per argument; the linear arguments arrive as :class:`UndefPrimal`.
  ``ct`` is never a symbolic zero (equations whose outputs all have zero cotangents are
  skipped; for multiple-result primitives missing cotangents are instantiated).

Decisions (where funcgrad chooses):

- **Symbolic zeros.** A tangent or cotangent that is known to be zero is :class:`Zero` and
  costs nothing: unused inputs, constant branches and integer-valued paths do no work in
  either pass, and ``grad`` returns real zeros only at the end.
- **Zero cotangents absorb inf and NaN (NaN-safe ``where``).** The transposes of ``mul``
  and ``div`` use :func:`zero_absorbing_mul` / :func:`zero_absorbing_div`: where the
  incoming cotangent is exactly 0 the result is 0 even if the other factor is inf or NaN.
  ``select_n`` routes exact zeros to the branch it did not take, so the infinite
  derivative of an untaken branch (``sqrt`` at 0, ``sin(x) / x`` at 0) no longer poisons
  the gradient: ``grad(lambda x: fnp.where(x > 0, fnp.sqrt(x), 0.0))(0.0) == 0.0`` with no
  "double where" trick. The price is that a genuinely zero cotangent times an infinite
  partial derivative gives 0 rather than NaN (the "strong zero" convention). Forward mode
  needs no special case: ``select_n`` picks the finite tangent. When the values are
  concrete NumPy arrays the check runs in NumPy (one ``isnan`` scan of the product); under
  ``jit``/``make_jaxpr`` it is an ``eq``/``select_n`` pair next to the product, and it is
  left out when a concrete operand proves it unnecessary (a nonzero cotangent, or a finite
  factor).
- **Dtypes.** A tangent or cotangent has its primal's dtype; gradients of float32 inputs
  are float32.
- **Eager speed: cached linearizations.** Under eager ``grad`` (concrete values, no
  jit/vmap around) a primitive's jvp rule is traced once per (primitive, parameters, input
  shapes and dtypes, nonzero tangents) and split by partial evaluation into a known program
  (primal output and residuals) and a linear one; later calls run the known program on
  NumPy values and append the linear equations to the tape. Transposes of concrete
  equations are replayed the same way. The tape and the results are exactly what the rules
  produce; the rules just do not re-run their Python each time. Primitives carrying jaxprs
  or functions, rules that need concrete values, and everything under jit/vmap or nested
  transformations take the plain path (see ``_linearize_by_template``). Cached programs
  replay as generated straight-line Python functions (``_Program._compile``).
- **Eager speed: the tape.** ``grad``/``value_and_grad``/``vjp``/``jacrev`` with concrete
  inputs and no transformation around them do not build a linear jaxpr at all: they record
  an autograd-style tape (``interpreters/tape.py``) whose nodes replay the same templates
  forward and their transposes backward. Same rules, same values; everything else (and
  ``make_jaxpr(grad(f))``) uses linearize + transpose as above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import Primitive, ShapedArray, Trace, Tracer, get_aval, shaped_aval
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var, eval_jaxpr

primitive_jvps: dict[Primitive, Callable] = {}
primitive_transposes: dict[Primitive, Callable] = {}

_lax_module: list[Any] = []


def _lax() -> Any:
    """funcgrad.lax, imported on first use (it imports this module)."""
    if not _lax_module:
        from funcgrad import lax

        _lax_module.append(lax)
    return _lax_module[0]


def _shaped(x: Any) -> ShapedArray:
    """The ShapedArray of ``x`` (cheap for NumPy values: no ConcreteArray)."""
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return ShapedArray(x.shape, x.dtype)
    return shaped_aval(x)


class Zero:
    """A symbolic zero tangent/cotangent: costs nothing until something needs its value."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval if type(aval) is ShapedArray else aval.strip()

    @classmethod
    def of_value(cls, x: Any) -> Zero:
        """The zero tangent of the value ``x`` (the hot path of ``JVPTrace.pure``)."""
        z = object.__new__(cls)
        if type(x) is np.ndarray or isinstance(x, np.generic):
            z.aval = ShapedArray(x.shape, x.dtype)
        else:
            z.aval = shaped_aval(x)
        return z

    def __repr__(self) -> str:
        return f"Zero({self.aval.str_short()})"

    @staticmethod
    def from_value(x: Any) -> Zero:
        return Zero(_shaped(x))


class UndefPrimal:
    """Marks a linear input of a transpose rule: its value is what we solve for."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval if type(aval) is ShapedArray else aval.strip()

    def __repr__(self) -> str:
        return f"UndefPrimal({self.aval.str_short()})"


def is_undefined_primal(x: Any) -> bool:
    return type(x) is UndefPrimal


def zeros_like_aval(aval: ShapedArray) -> Any:
    if core._eager_only[0]:
        return np.zeros(aval.shape, aval.dtype)
    return _lax().full(aval.shape, 0, aval.dtype)


def instantiate_zeros(t: Any) -> Any:
    return zeros_like_aval(t.aval) if type(t) is Zero else t


def add_tangents(x: Any, y: Any) -> Any:
    if type(x) is Zero:
        return y
    if type(y) is Zero:
        return x
    return _lax().add(x, y)


# ----------------------------------------------------------------------------------------
# Zero-absorbing products (the NaN-safe ``where`` decision, see the module docstring)


def _has_zero(x: Any) -> bool:
    return not np.all(np.asarray(x) != 0)


def _all_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(x)))


def _absorbing_np(np_op: Callable, ct: Any, y: Any) -> Any:
    """The zero-absorbing product of NumPy values: the product, then a select only if it
    produced a NaN. One reduction finds out: a sum is NaN when a term is NaN (or when it
    meets both infinities, and then the select is merely unnecessary)."""
    out = np_op(ct, y)  # FP warnings are filtered for funcgrad's modules (lax/_base.py)
    if out.dtype.kind in "fc" and np.isnan(np.add.reduce(out, axis=None)):
        out = np.where(np.asarray(ct) == 0, np.zeros((), out.dtype), out)
    return out


def _absorbing_mul_np(ct: Any, y: Any) -> Any:
    return _absorbing_np(np.multiply, ct, y)


def _absorbing_div_np(ct: Any, y: Any) -> Any:
    return _absorbing_np(np.true_divide, ct, y)


def _absorbing(op: Callable, np_op: Callable, ct: Any, y: Any) -> Any:
    ct_traced = isinstance(ct, Tracer)
    y_traced = isinstance(y, Tracer)
    if not ct_traced and not y_traced:
        return _absorbing_np(np_op, ct, y)
    if not ct_traced and not _has_zero(ct):
        return op(ct, y)
    if not y_traced and _all_finite(y):
        return op(ct, y)
    lax = _lax()
    out = op(ct, y)
    zero = np.zeros((), get_aval(out).dtype)[()]
    return lax.select_n(lax.eq(ct, zero), out, zero)


def zero_absorbing_mul(ct: Any, y: Any) -> Any:
    """``ct * y``, but 0 wherever ``ct == 0`` (even where ``y`` is inf or NaN).

    For the transposes of ``mul`` (and any rule that scales a cotangent by a residual): a
    zero cotangent means "this path does not matter", so it must not turn into NaN.
    """
    return _absorbing(_lax().mul, np.multiply, ct, y)


def zero_absorbing_div(ct: Any, y: Any) -> Any:
    """``ct / y``, but 0 wherever ``ct == 0`` (even where ``y`` is 0, inf or NaN)."""
    return _absorbing(_lax().div, np.true_divide, ct, y)


# ----------------------------------------------------------------------------------------
# Rule builders


def defjvp(primitive: Primitive, *jvprules: Callable | None) -> None:
    """One rule per input: ``rule(g, *primals, **params)`` is that input's contribution.

    ``None`` marks an input with no derivative (an integer index, say). Zero tangents are
    skipped and the contributions summed, as JAX's ``ad.defjvp``.
    """

    def jvp(primals, tangents, **params):
        val_out = primitive.bind(*primals, **params)
        tangent_out: Any = None
        for rule, t in zip(jvprules, tangents, strict=False):
            if rule is not None and type(t) is not Zero:
                contribution = rule(t, *primals, **params)
                tangent_out = (
                    contribution if tangent_out is None else add_tangents(tangent_out, contribution)
                )
        if tangent_out is None:
            tangent_out = Zero.of_value(val_out)
        return val_out, tangent_out

    primitive_jvps[primitive] = jvp


def defjvp2(primitive: Primitive, *jvprules: Callable | None) -> None:
    """Like :func:`defjvp`, but each rule also sees the output: ``rule(g, ans, *primals)``."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        tangent_out: Any = None
        for rule, t in zip(jvprules, tangents, strict=False):
            if rule is not None and type(t) is not Zero:
                contribution = rule(t, ans, *primals, **params)
                tangent_out = (
                    contribution if tangent_out is None else add_tangents(tangent_out, contribution)
                )
        if tangent_out is None:
            tangent_out = Zero.of_value(ans)
        return ans, tangent_out

    primitive_jvps[primitive] = jvp


def defjvp_zero(primitive: Primitive) -> None:
    """The derivative is zero everywhere it exists (``floor``, ``sign``, comparisons)."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        if primitive.multiple_results:
            return ans, [Zero.of_value(a) for a in ans]
        return ans, Zero.of_value(ans)

    primitive_jvps[primitive] = jvp


def deflinear(primitive: Primitive, transpose_rule: Callable) -> None:
    """A primitive linear in all its inputs: its jvp is itself applied to the tangents."""

    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        t_out = primitive.bind(*map(instantiate_zeros, tangents), **params)
        return ans, t_out

    primitive_jvps[primitive] = jvp
    primitive_transposes[primitive] = transpose_rule


# ----------------------------------------------------------------------------------------
# The JVP interpreter


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent", "_aval")

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any) -> None:
        self._trace = trace
        self.primal = primal
        self.tangent = tangent
        self._aval = None

    @property
    def aval(self) -> ShapedArray:
        # A ConcreteArray when the primal is concrete (Python control flow works on it).
        aval = self._aval
        if aval is None:
            aval = self._aval = get_aval(self.primal)
        return aval

    # shape and dtype without building a ConcreteArray (they are read on every operation)
    @property
    def shape(self) -> tuple[int, ...]:
        try:
            return self.primal.shape
        except AttributeError:
            return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        try:
            return self.primal.dtype
        except AttributeError:
            return self.aval.dtype

    def full_lower(self) -> Any:
        if type(self.tangent) is Zero:
            return core.full_lower(self.primal)
        return self

    def _provenance(self) -> str | None:
        p = self.primal
        return p._provenance() if isinstance(p, Tracer) else None


class JVPTrace(Trace):
    __slots__ = ()

    def pure(self, val: Any) -> JVPTracer:
        return JVPTracer(self, val, Zero.of_value(val))

    lift = pure

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> Any:
        primals = []
        tangents = []
        all_zero = True
        for t in tracers:
            primals.append(t.primal)
            tangent = t.tangent
            tangents.append(tangent)
            if all_zero and type(tangent) is not Zero:
                all_zero = False
        if all_zero:
            # No tangent flows through: run the primitive on the primals alone. The outputs
            # are not JVP tracers, so ``bind`` hands them back unboxed.
            return primitive.bind(*primals, **params)
        if _eager_linearize(primals, tangents):
            out = _linearize_by_template(self, primitive, primals, tangents, params)
            if out is not None:
                return out
        rule = primitive_jvps.get(primitive)
        if rule is None:
            raise NotImplementedError(
                f"Differentiation rule for '{primitive.name}' not implemented"
            )
        primal_out, tangent_out = rule(primals, tangents, **params)
        if primitive.multiple_results:
            return [JVPTracer(self, x, t) for x, t in zip(primal_out, tangent_out, strict=False)]
        return JVPTracer(self, primal_out, tangent_out)


# -- Eager linearize by cached templates.
#
# Under eager ``grad`` (concrete primals, tangents recorded by partial evaluation) running a
# jvp rule costs far more than the NumPy work it does: the rule's lax calls, their binds,
# one recorded equation per tangent operation. But the rule does the same thing every time
# for a given primitive, parameters, input types and set of nonzero tangents. So the first
# time, the rule is traced into a jaxpr and split by partial evaluation into a *known* part
# (primal outputs and residuals, from the primals) and an *unknown*, linear part (from the
# residuals and tangents). Afterwards each call evaluates the known part on the concrete
# primals and appends copies of the linear part's equations to the tape: the same jaxpr
# the rule itself would record, without re-running it. The backward pass does the same for
# transpose rules applied to concrete values. Primitives that carry jaxprs or functions
# (custom rules, calls, control flow), rules that cannot be traced abstractly, and anything
# under jit/vmap or a nested transformation always run their rule.

_TEMPLATE_CACHE_SIZE = 4096
_NO_TEMPLATE: Any = object()  # cached "this rule cannot be traced abstractly"
_MAX_TEMPLATE_CONST = 1024  # elements
#: Templates by a flat key, built inline on the hot paths (here and in ``tape.py``): the
#: primitive; per operand its shape, dtype and whether its tangent is nonzero; then, if
#: there are parameters, ``tuple(params.items())``.
_templates: dict[tuple, Any] = {}
_first_order: dict[Primitive, bool] = {}


def _eager_linearize(primals: list, tangents: list) -> bool:
    """Concrete primals and tangents that are unknowns of one partial evaluation."""
    for p in primals:
        if type(p) is not np.ndarray and not isinstance(p, np.generic):
            return False
    trace = None
    for t in tangents:
        if type(t) is Zero:
            continue
        if type(t) is not pe.PartialEvalTracer or t.var is None:
            return False
        if trace is None:
            trace = t._trace
        elif t._trace is not trace:
            return False
    return True


def _is_first_order(primitive: Primitive, params: dict) -> bool:
    ok = _first_order.get(primitive)
    if ok is None:
        from funcgrad.util import HashableFunction

        ok = not primitive.multiple_results and not any(
            isinstance(v, (ClosedJaxpr, Jaxpr, HashableFunction)) or callable(v)
            for v in params.values()
        )
        _first_order[primitive] = ok
    return ok


class _Program:
    """A jaxpr flattened for fast replay: every value lives in a numbered slot.

    With ``as_atoms`` the literals are kept as Literal atoms (for copying equations onto a
    tape); otherwise as their values (for evaluation).
    """

    __slots__ = ("prefill", "consts", "in_slots", "steps", "out_slots", "run")

    def __init__(self, jaxpr: Jaxpr, consts: Sequence[Any], as_atoms: bool) -> None:
        slot: dict[Var, int] = {}
        prefill: list[Any] = []

        def new_slot(value: Any = None) -> int:
            prefill.append(value)
            return len(prefill) - 1

        def read(x: Any) -> int:
            if type(x) is Literal:
                return new_slot(x if as_atoms else x.val)
            return slot[x]

        for v in jaxpr.constvars:
            slot[v] = new_slot()
        self.in_slots = []
        for v in jaxpr.invars:
            slot[v] = new_slot()
            self.in_slots.append(slot[v])
        self.steps = []
        for eqn in jaxpr.eqns:
            idxs = [read(x) for x in eqn.inputs]
            outs = [new_slot() for _ in eqn.outvars]
            slot.update(zip(eqn.outvars, outs, strict=True))
            self.steps.append(
                (eqn.primitive, idxs, eqn.params, [v.aval for v in eqn.outvars], outs)
            )
        self.out_slots = [read(x) for x in jaxpr.outvars]
        self.prefill = prefill
        self.consts = list(consts)
        if any(np.size(c) > _MAX_TEMPLATE_CONST for c in self.consts):
            # A cached program must not keep big arrays alive: run the rule instead.
            raise ValueError("template constant too large")
        self.run = None if as_atoms else self._compile()

    def _fuse_absorbing(self) -> list[tuple]:
        """The steps, with each zero-absorbing product fused into one call.

        A transpose traced with abstract values writes ``ct * y`` as ``mul``, ``eq ct 0``,
        ``select_n`` (see :func:`_absorbing`); on NumPy values :func:`_absorbing_np` gives
        the same values (up to the sign of zeros) for about half the cost: a product and a
        NaN check, with the select only when a NaN appeared.
        """
        steps = list(self.steps)
        uses: dict[int, int] = {}
        for _, idxs, _, _, _ in steps:
            for i in idxs:
                uses[i] = uses.get(i, 0) + 1
        for i in self.out_slots:
            uses[i] = uses.get(i, 0) + 1

        def is_zero(i: int) -> bool:
            v = self.prefill[i]
            return i >= len(self.consts) and isinstance(v, np.generic) and v == 0

        fused = {"mul": _absorbing_mul_np, "div": _absorbing_div_np}
        out: list[tuple] = []
        k = 0
        while k < len(steps):
            if k + 2 < len(steps):
                (p0, i0, q0, _, o0), (p1, i1, q1, _, o1), (p2, i2, q2, a2, o2) = steps[k : k + 3]
                if (
                    p0.name in fused
                    and p1.name == "eq"
                    and p2.name == "select_n"
                    and not (q0 or q1 or q2)
                    and i1[0] == i0[0]
                    and is_zero(i1[1])
                    and i2[:2] == [o1[0], o0[0]]
                    and is_zero(i2[2])
                    and uses[o0[0]] == 1
                    and uses[o1[0]] == 1
                ):
                    out.append((fused[p0.name], i0, {}, a2, o2))
                    k += 3
                    continue
            out.append(steps[k])
            k += 1
        return out

    def _compile(self) -> Callable[..., list]:
        """The program as one Python function of its inputs calling the impls directly.

        Replay is the per-operation cost of eager ``grad``; a generated straight-line
        function costs a fraction of interpreting the steps. The types were checked when
        the program was traced, so it calls ``Primitive.unchecked_impl``.
        """
        # Named as this module, so that funcgrad's filter of NumPy's FP warnings applies.
        env: dict[str, Any] = {"__name__": __name__}
        for i, c in enumerate(self.consts):
            env[f"v{i}"] = c
        for i, v in enumerate(self.prefill):
            if i >= len(self.consts) and v is not None:
                env[f"v{i}"] = v  # a literal
        lines = [f"def run({''.join(f'v{i}, ' for i in self.in_slots)}):"]
        for k, (prim, idxs, params, _, outs) in enumerate(self._fuse_absorbing()):
            env[f"f{k}"] = prim if callable(prim) else (prim.unchecked_impl or prim.impl)
            args = "".join(f"v{i}, " for i in idxs)
            if params:
                env[f"p{k}"] = params
                args += f"**p{k}"
            if getattr(prim, "multiple_results", False):
                lines.append(f"    {''.join(f'v{i}, ' for i in outs)}= f{k}({args})")
            else:
                lines.append(f"    v{outs[0]} = f{k}({args})")
        lines.append(f"    return [{', '.join(f'v{i}' for i in self.out_slots)}]")
        code = compile("\n".join(lines), "<funcgrad replay>", "exec")
        exec(code, env)  # noqa: S102 - our own source, built above
        return env["run"]


class _Template:
    """The linearization of one primitive application (see above)."""

    __slots__ = (
        "known",
        "unknown",
        "unknown_jaxpr",
        "num_res",
        "tangent_kind",
        "out_aval",
        "identity",
        "vjp",
    )

    def __init__(self, known, unknown, unknown_jaxpr, num_res, tangent_kind, out_aval):
        self.known = known  # _Program: primals -> (primal out, [known tangent,] residuals)
        self.unknown = unknown  # _Program: residuals, tangents -> tangent out (atoms)
        self.unknown_jaxpr = unknown_jaxpr  # the same as a ClosedJaxpr
        self.num_res = num_res
        self.tangent_kind = tangent_kind  # "zero", "known" or "unknown"
        self.out_aval = out_aval
        # The output tangent is the one input tangent itself (``x + constant``).
        jaxpr = unknown_jaxpr.jaxpr
        self.identity = (
            tangent_kind == "unknown"
            and not jaxpr.eqns
            and len(jaxpr.invars) == 1
            and jaxpr.outvars[0] is jaxpr.invars[0]
        )
        self.vjp = None  # its transpose, built on first use by the eager tape (tape.py)


def _build_template(primitive, params, avals, nonzeros) -> _Template:
    invars = [Var(a) for a in avals]
    out_aval = primitive.abstract_eval(*avals, **params).strip()
    outvar = Var(out_aval)
    jaxpr = Jaxpr([], invars, [Eqn(primitive, invars, params, [outvar])], [outvar])
    jvp_closed, (out_nz,) = jvp_jaxpr(ClosedJaxpr(jaxpr, []), nonzeros, instantiate=False)
    unknowns = [False] * len(avals) + [True] * sum(nonzeros)
    known, unknown, out_uk, num_res = pe.partial_eval_jaxpr(jvp_closed, unknowns)
    if out_uk[0]:
        raise AssertionError(f"{primitive}: the primal output depends on a tangent")
    kind = "zero" if not out_nz else ("unknown" if out_uk[1] else "known")
    return _Template(
        _Program(known.jaxpr, known.consts, as_atoms=False),
        _Program(unknown.jaxpr, unknown.consts, as_atoms=True),
        unknown,
        num_res,
        kind,
        out_aval,
    )


def _get_template(
    key: tuple, primitive: Primitive, params: dict, primals: Sequence[Any], nonzeros: Sequence[bool]
) -> Any:
    """Build and cache the template for ``key`` (``_NO_TEMPLATE`` when the rule cannot be
    traced abstractly)."""
    avals = [ShapedArray(p.shape, p.dtype) for p in primals]
    try:
        template = _build_template(primitive, params, avals, list(nonzeros))
    except Exception:  # noqa: BLE001 - e.g. a rule that needs concrete values
        template = _NO_TEMPLATE
    if len(_templates) >= _TEMPLATE_CACHE_SIZE:
        _templates.clear()
    _templates[key] = template
    return template


def _run_known(prog: _Program, args: list) -> list:
    """Evaluate the known part on concrete values: straight to the impls, unless a staging
    trace must see the operations (``make_jaxpr``/``jit`` around an eager value)."""
    staging = core.dynamic_trace is not None
    if not staging:
        return prog.run(*args)
    vals = list(prog.prefill)
    for i, c in enumerate(prog.consts):
        vals[i] = c
    for i, a in zip(prog.in_slots, args, strict=True):
        vals[i] = a
    for prim, idxs, params, _, outs in prog.steps:
        ins = [vals[i] for i in idxs]
        out = prim.bind(*ins, **params) if staging else prim.impl(*ins, **params)
        if prim.multiple_results:
            for i, o in zip(outs, out, strict=True):
                vals[i] = o
        else:
            vals[outs[0]] = out
    return [vals[i] for i in prog.out_slots]


def _linearize_by_template(
    trace: JVPTrace, primitive: Primitive, primals: list, tangents: list, params: dict
) -> Any:
    if not _is_first_order(primitive, params):
        return None
    key: list[Any] = [primitive]
    for p, t in zip(primals, tangents, strict=True):
        key += (p.shape, p.dtype, type(t) is not Zero)
    if params:
        key.append(tuple(params.items()))
    try:
        key_t = tuple(key)
        template = _templates.get(key_t)
    except TypeError:  # an unhashable parameter: run the rule
        return None
    if template is None:
        nonzeros = [type(t) is not Zero for t in tangents]
        template = _get_template(key_t, primitive, params, primals, nonzeros)
    if template is _NO_TEMPLATE:
        return None
    outs = _run_known(template.known, primals)
    primal_out = outs[0]
    kind = template.tangent_kind
    if kind == "zero":
        return JVPTracer(trace, primal_out, Zero(template.out_aval))
    if kind == "known":
        return JVPTracer(trace, primal_out, outs[1])
    # Append the linear equations to the tape, with the residuals as its constants.
    prog = template.unknown
    atoms = list(prog.prefill)
    pe_trace = None
    for t in tangents:
        if type(t) is not Zero:
            pe_trace = t._trace
            break
    builder = pe_trace.main.global_data
    const_atom = builder.const_atom
    for i, c in enumerate(prog.consts):
        atoms[i] = const_atom(c)
    in_slots = prog.in_slots
    num_res = template.num_res
    for i, r in zip(in_slots[:num_res], outs[1:], strict=True):
        atoms[i] = const_atom(r)
    k = num_res
    for t in tangents:
        if type(t) is not Zero:
            atoms[in_slots[k]] = t.var
            k += 1
    eqns = builder.eqns
    for prim, idxs, eqn_params, out_avals, out_slots in prog.steps:
        outvars = [Var(a) for a in out_avals]
        for i, v in zip(out_slots, outvars, strict=True):
            atoms[i] = v
        eqns.append(Eqn(prim, [atoms[i] for i in idxs], eqn_params, outvars))
    atom = atoms[prog.out_slots[0]]
    if type(atom) is not Var:  # a literal tangent: known after all
        return JVPTracer(trace, primal_out, atom.val)
    return JVPTracer(trace, primal_out, pe.PartialEvalTracer(pe_trace, None, atom))


class _TransposeTemplate:
    __slots__ = ("prog", "pattern")

    def __init__(self, prog: _Program, pattern: list[int]) -> None:
        self.prog = prog
        self.pattern = pattern  # per input: 1 a computed cotangent, 0 none (None/Zero)


def _build_transpose_template(primitive, params, ct_aval, in_specs) -> _TransposeTemplate:
    res_avals = [a for undefined, a in in_specs if not undefined]
    pattern: list[int] = []

    def fun(ct: Any, *res: Any) -> list[Any]:
        it = iter(res)
        args = [UndefPrimal(a) if undefined else next(it) for undefined, a in in_specs]
        cts = primitive_transposes[primitive](ct, *args, **params)
        pattern.extend(int(c is not None and type(c) is not Zero) for c in cts)
        return [c for c in cts if c is not None and type(c) is not Zero]

    closed = pe.trace_to_jaxpr(fun, [ct_aval, *res_avals])
    return _TransposeTemplate(_Program(closed.jaxpr, closed.consts, as_atoms=False), pattern)


def _transpose_by_template(primitive: Primitive, params: dict, ct: Any, invals: list) -> Any:
    """The transpose rule's result for concrete ``ct`` and residuals, from a cached
    program (None when not applicable)."""
    if type(ct) is not np.ndarray and not isinstance(ct, np.generic):
        return None
    if primitive.name in _EAGER_TRANSPOSES or not _is_first_order(primitive, params):
        return None
    specs = []
    residuals = []
    for x in invals:
        if type(x) is UndefPrimal:
            specs.append((True, x.aval.shape, x.aval.dtype))
        elif type(x) is np.ndarray or isinstance(x, np.generic):
            specs.append((False, x.shape, x.dtype))
            residuals.append(x)
        else:
            return None
    try:
        key = (primitive, tuple(params.items()), ct.shape, ct.dtype, tuple(specs))
        template = _transpose_templates.get(key)
    except TypeError:
        return None
    if template is None:
        in_specs = [(u, ShapedArray(shape, dtype)) for u, shape, dtype in specs]
        try:
            template = _build_transpose_template(
                primitive, params, ShapedArray(ct.shape, ct.dtype), in_specs
            )
        except Exception:  # noqa: BLE001 - e.g. a rule that needs concrete values
            template = _NO_TEMPLATE
        if len(_transpose_templates) >= _TEMPLATE_CACHE_SIZE:
            _transpose_templates.clear()
        _transpose_templates[key] = template
    if template is _NO_TEMPLATE:
        return None
    outs = iter(_run_known(template.prog, [ct, *residuals]))
    return [next(outs) if computed else None for computed in template.pattern]


_transpose_templates: dict[tuple, _TransposeTemplate] = {}
#: Transposes that stay eager: the zero-absorbing products look at the concrete values (one
#: multiply and a NaN scan), which beats replaying their traced eq/select_n form.
_EAGER_TRANSPOSES = frozenset({"mul", "div"})


def jvp_flat(fun: Callable, primals: list, tangents: list) -> tuple[list, list]:
    """Forward mode on flat lists: ``(fun(*primals), J @ tangents)``; tangents may be Zero."""
    with core.new_main(JVPTrace) as main:
        trace = main.trace
        tracers_in = [JVPTracer(trace, x, t) for x, t in zip(primals, tangents, strict=False)]
        outs = fun(*tracers_in)
        tracers_out = [core.full_raise(trace, x) for x in outs]
        primals_out = [t.primal for t in tracers_out]
        tangents_out = [t.tangent for t in tracers_out]
    return primals_out, tangents_out


def _primal_part(x: Any, main: core.MainTrace) -> Any:
    """The primal of ``x`` if it is a JVP tracer of ``main`` (``has_aux`` outputs)."""
    if isinstance(x, JVPTracer) and x._trace.main is main:
        return x.primal
    return x


# ----------------------------------------------------------------------------------------
# Linearize: jvp + partial evaluation


class LinearFun:
    """The linear part of ``fun`` at a point: a jaxpr from input to output tangents.

    ``jaxpr`` maps the input tangents (one per primal input) to the output tangents that
    are not symbolically zero (``out_nonzero``); ``consts`` are its residuals.
    """

    __slots__ = ("jaxpr", "consts", "in_avals", "out_avals", "out_nonzero")

    def __init__(
        self,
        jaxpr: Jaxpr,
        consts: list[Any],
        in_avals: list[ShapedArray],
        out_avals: list[ShapedArray],
        out_nonzero: list[bool],
    ) -> None:
        self.jaxpr = jaxpr
        self.consts = consts
        self.in_avals = in_avals
        self.out_avals = out_avals
        self.out_nonzero = out_nonzero

    def jvp(self, tangents: Sequence[Any]) -> list[Any]:
        """Push input tangents forward: the output tangents (zeros where symbolic)."""
        outs = iter(eval_jaxpr(self.jaxpr, self.consts, *tangents))
        return [
            next(outs) if nz else zeros_like_aval(a)
            for a, nz in zip(self.out_avals, self.out_nonzero, strict=False)
        ]

    def transpose(self, cts: Sequence[Any]) -> list[Any]:
        """Pull output cotangents back: one cotangent per input (Zero where none flows)."""
        cts_nonzero = [ct for ct, nz in zip(cts, self.out_nonzero, strict=True) if nz]
        args = [UndefPrimal(a) for a in self.in_avals]
        return backward_pass(self.jaxpr, self.consts, args, cts_nonzero, all_linear=True)


def linearize_flat(
    fun: Callable, primals: Sequence[Any], has_aux: bool = False
) -> tuple[list[Any], LinearFun, list[Any]]:
    """``(fun(*primals), linear part of fun at primals, aux)`` on flat lists.

    With ``has_aux``, ``fun`` returns ``(outputs, aux)`` (two flat lists); aux values are
    returned as they are, without derivatives.
    """
    builder = pe.PEBuilder()
    with core.new_main(pe.PartialEvalTrace, builder) as pe_main:
        pe_trace = pe_main.trace
        in_avals = [_shaped(p) for p in primals]
        tangents_in = [pe_trace.new_arg(a) for a in in_avals]
        with core.new_main(JVPTrace) as main:
            trace = main.trace
            tracers_in = [
                JVPTracer(trace, x, t) for x, t in zip(primals, tangents_in, strict=False)
            ]
            result = fun(*tracers_in)
            outs, aux = result if has_aux else (result, ())
            tracers_out = [core.full_raise(trace, x) for x in outs]
            primals_out = [t.primal for t in tracers_out]
            tangents_out = [t.tangent for t in tracers_out]
            aux = [_primal_part(x, main) for x in aux]
        out_nonzero = [type(t) is not Zero for t in tangents_out]
        jaxpr, consts = builder.build(
            [t.var for t in tangents_in],
            [t for t, nz in zip(tangents_out, out_nonzero, strict=False) if nz],
            dce=False,
        )
    out_avals = [_shaped(p) for p in primals_out]
    return primals_out, LinearFun(jaxpr, consts, in_avals, out_avals, out_nonzero), aux


# ----------------------------------------------------------------------------------------
# Transposition


def backward_pass(
    jaxpr: Jaxpr,
    consts: Sequence[Any],
    args: Sequence[Any],
    cts_out: Sequence[Any],
    all_linear: bool = False,
) -> list[Any]:
    """Transpose ``jaxpr`` with respect to its :class:`UndefPrimal` arguments.

    ``args`` has one entry per invar: an :class:`UndefPrimal` for a linear input, the value
    for a non-linear one. ``cts_out`` has one cotangent (or :class:`Zero`/None) per output.
    Equations none of whose inputs are linear (residual computations, e.g. recomputed by
    ``checkpoint``) are evaluated forward first (``all_linear`` promises there are none, as
    in the jaxprs ``linearize`` builds); the linear ones are then transposed in reverse
    order, skipping those whose outputs carry no cotangent. Returns one cotangent per
    invar: a :class:`Zero` for linear inputs nothing flowed to, None for the others.
    """
    # A variable is linear exactly when it has no primal value.
    primal_env: dict[Var, Any] = dict(zip(jaxpr.constvars, consts, strict=False))
    for v, a in zip(jaxpr.invars, args, strict=True):
        if type(a) is not UndefPrimal:
            primal_env[v] = a

    if all_linear:
        linear_eqns = jaxpr.eqns
    else:
        linear_eqns = []
        for eqn in jaxpr.eqns:
            if any(type(x) is Var and x not in primal_env for x in eqn.inputs):
                linear_eqns.append(eqn)
                continue
            ins = [x.val if type(x) is Literal else primal_env[x] for x in eqn.inputs]
            outs = eqn.primitive.bind(*ins, **eqn.params)
            if eqn.primitive.multiple_results:
                primal_env.update(zip(eqn.outvars, outs, strict=False))
            else:
                primal_env[eqn.outvars[0]] = outs

    add = _lax().add
    ct_env: dict[Var, Any] = {}
    for v, ct in zip(jaxpr.outvars, cts_out, strict=True):
        if ct is None or type(ct) is Zero or type(v) is not Var or v in primal_env:
            continue
        old = ct_env.get(v)
        ct_env[v] = ct if old is None else add(old, ct)

    for eqn in reversed(linear_eqns):
        prim = eqn.primitive
        outvars = eqn.outvars
        if prim.multiple_results:
            cts = [ct_env.pop(v, None) for v in outvars]
            if all(c is None for c in cts):
                continue
            ct: Any = [
                zeros_like_aval(v.aval) if c is None else c
                for c, v in zip(cts, outvars, strict=False)
            ]
        else:
            ct = ct_env.pop(outvars[0], None)
            if ct is None:
                continue
        invals = []
        for x in eqn.inputs:
            if type(x) is Literal:
                invals.append(x.val)
            else:
                val = primal_env.get(x, _UNDEF)
                invals.append(UndefPrimal(x.aval) if val is _UNDEF else val)
        rule = primitive_transposes.get(prim)
        if rule is None:
            raise NotImplementedError(
                f"Transpose rule (for reverse-mode differentiation) for '{prim.name}' not "
                "implemented"
            )
        cts_in = None
        if not prim.multiple_results:
            cts_in = _transpose_by_template(prim, eqn.params, ct, invals)
        if cts_in is None:
            cts_in = rule(ct, *invals, **eqn.params)
        for x, c in zip(eqn.inputs, cts_in, strict=True):
            if c is None or type(c) is Zero or type(x) is not Var or x in primal_env:
                continue
            old = ct_env.get(x)
            ct_env[x] = c if old is None else add(old, c)

    return [
        ct_env.get(v, Zero(v.aval)) if type(a) is UndefPrimal else None
        for v, a in zip(jaxpr.invars, args, strict=False)
    ]


_UNDEF = object()


# ----------------------------------------------------------------------------------------
# Jaxpr-to-jaxpr transformations (for primitives that carry jaxprs: checkpoint, calls)


def jvp_jaxpr(
    closed: ClosedJaxpr, nonzeros: Sequence[bool], instantiate: bool | Sequence[bool]
) -> tuple[ClosedJaxpr, list[bool]]:
    """The JVP of ``closed`` as a jaxpr.

    The result takes the primals followed by the tangents of the inputs marked in
    ``nonzeros``, and returns the primal outputs followed by the output tangents that are
    not symbolically zero (or that ``instantiate`` asks for); the second result says which.
    """
    n_out = len(closed.jaxpr.outvars)
    if isinstance(instantiate, bool):
        instantiate = [instantiate] * n_out
    in_avals = closed.in_avals
    tangent_avals = [a for a, nz in zip(in_avals, nonzeros, strict=True) if nz]
    out_nz_box: list[list[bool]] = []

    def fun(*args: Any) -> list[Any]:
        primals = args[: len(in_avals)]
        it = iter(args[len(in_avals) :])
        tangents = [next(it) if nz else Zero(a) for a, nz in zip(in_avals, nonzeros, strict=False)]
        outs, touts = jvp_flat(
            lambda *xs: eval_jaxpr(closed.jaxpr, closed.consts, *xs), list(primals), tangents
        )
        out_nz = [type(t) is not Zero or inst for t, inst in zip(touts, instantiate, strict=False)]
        out_nz_box.append(out_nz)
        return outs + [instantiate_zeros(t) for t, nz in zip(touts, out_nz, strict=False) if nz]

    jaxpr = pe.trace_to_jaxpr(fun, list(in_avals) + tangent_avals)
    return jaxpr, out_nz_box[0]


def transpose_jaxpr(closed: ClosedJaxpr, linear: Sequence[bool]) -> ClosedJaxpr:
    """The transpose of ``closed`` with respect to the inputs marked ``linear``.

    The result takes the non-linear inputs followed by one cotangent per output, and
    returns one cotangent per linear input (instantiated zeros where none flows). Its
    equations include the forward (non-linear) part that the transposition needs, e.g. the
    recomputation inside ``checkpoint``.
    """
    in_avals = closed.in_avals
    res_avals = [a for a, lin in zip(in_avals, linear, strict=True) if not lin]
    ct_avals = closed.out_avals

    def fun(*args: Any) -> list[Any]:
        res, cts = args[: len(res_avals)], args[len(res_avals) :]
        it = iter(res)
        full = [
            UndefPrimal(a) if lin else next(it) for a, lin in zip(in_avals, linear, strict=False)
        ]
        cts_in = backward_pass(closed.jaxpr, closed.consts, full, list(cts))
        return [instantiate_zeros(c) for c, lin in zip(cts_in, linear, strict=False) if lin]

    return pe.trace_to_jaxpr(fun, res_avals + list(ct_avals))
