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
  and ``div`` use ``zero_absorbing_mul`` / ``zero_absorbing_div`` (defined beside them in
  ``funcgrad/lax/elementwise.py``): where the
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
  equations are replayed the same way. The results are exactly what the rules produce;
  the rules just do not re-run their Python each time. That machinery is its own module,
  ``ad_templates.py``; this one only asks it first (``JVPTrace.process_primitive``,
  :func:`backward_pass`).
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
from funcgrad.interpreters import ad_templates
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Jaxpr, Literal, Var, eval_jaxpr

primitive_jvps: dict[Primitive, Callable] = {}
primitive_transposes: dict[Primitive, Callable] = {}

_lax_module: list[Any] = []


def _lax() -> Any:
    """funcgrad.lax, imported on first use (it imports this module)."""
    if not _lax_module:
        from funcgrad import lax

        _lax_module.append(lax)
    return _lax_module[0]


class Zero:
    """A symbolic zero tangent/cotangent: costs nothing until something needs its value."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray) -> None:
        self.aval = aval if type(aval) is ShapedArray else aval.strip()

    @classmethod
    def of_value(cls, x: Any) -> Zero:
        """The zero tangent of the value ``x`` (the hot path of ``JVPTrace.pure``)."""
        z = object.__new__(cls)
        z.aval = shaped_aval(x)
        return z

    def __repr__(self) -> str:
        return f"Zero({self.aval.str_short()})"

    from_value = of_value


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
    if core.is_eager():
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
# Rule builders


def defjvp(primitive: Primitive, *jvprules: Callable | None) -> None:
    """One rule per input: ``rule(g, *primals, **params)`` is that input's contribution.

    ``None`` marks an input with no derivative (an integer index, say). Zero tangents are
    skipped and the contributions summed, as JAX's ``ad.defjvp``.
    """
    primitive_jvps[primitive] = _standard_jvp(primitive, jvprules, with_output=False)


def defjvp2(primitive: Primitive, *jvprules: Callable | None) -> None:
    """Like :func:`defjvp`, but each rule also sees the output: ``rule(g, ans, *primals)``."""
    primitive_jvps[primitive] = _standard_jvp(primitive, jvprules, with_output=True)


def _standard_jvp(primitive: Primitive, jvprules: Sequence[Callable | None], with_output: bool):
    def jvp(primals, tangents, **params):
        ans = primitive.bind(*primals, **params)
        lead = (ans, *primals) if with_output else primals
        tangent_out: Any = None
        for rule, t in zip(jvprules, tangents, strict=False):
            if rule is not None and type(t) is not Zero:
                contribution = rule(t, *lead, **params)
                tangent_out = (
                    contribution if tangent_out is None else add_tangents(tangent_out, contribution)
                )
        if tangent_out is None:
            tangent_out = Zero.of_value(ans)
        return ans, tangent_out

    return jvp


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
        self._aval: ShapedArray | None = None

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
        if ad_templates.applies(primals, tangents):
            # Eager grad: the rule's cached linearization (ad_templates.py).
            out = ad_templates.linearize(primitive, params, primals, tangents)
            if out is not None:
                return JVPTracer(self, *out)
        rule = primitive_jvps.get(primitive)
        if rule is None:
            raise NotImplementedError(
                f"Differentiation rule for '{primitive.name}' not implemented"
            )
        primal_out, tangent_out = rule(primals, tangents, **params)
        if primitive.multiple_results:
            return [JVPTracer(self, x, t) for x, t in zip(primal_out, tangent_out, strict=True)]
        return JVPTracer(self, primal_out, tangent_out)


def jvp_flat(fun: Callable, primals: list, tangents: list) -> tuple[list, list]:
    """Forward mode on flat lists: ``(fun(*primals), J @ tangents)``; tangents may be Zero."""
    with core.new_main(JVPTrace) as main:
        trace = main.trace
        tracers_in = [JVPTracer(trace, x, t) for x, t in zip(primals, tangents, strict=True)]
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
            for a, nz in zip(self.out_avals, self.out_nonzero, strict=True)
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
        in_avals = [shaped_aval(p) for p in primals]
        tangents_in = [pe_trace.new_arg(a) for a in in_avals]
        with core.new_main(JVPTrace) as main:
            trace = main.trace
            tracers_in = [JVPTracer(trace, x, t) for x, t in zip(primals, tangents_in, strict=True)]
            result = fun(*tracers_in)
            outs, aux = result if has_aux else (result, ())
            tracers_out = [core.full_raise(trace, x) for x in outs]
            primals_out = [t.primal for t in tracers_out]
            tangents_out = [t.tangent for t in tracers_out]
            aux = [_primal_part(x, main) for x in aux]
        out_nonzero = [type(t) is not Zero for t in tangents_out]
        jaxpr, consts = builder.build(
            [t.var for t in tangents_in],
            [t for t, nz in zip(tangents_out, out_nonzero, strict=True) if nz],
            dce=False,
        )
    out_avals = [shaped_aval(p) for p in primals_out]
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
    primal_env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
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
                primal_env.update(zip(eqn.outvars, outs, strict=True))
            else:
                primal_env[eqn.outvars[0]] = outs

    add = _lax().add
    ct_env: dict[Any, Any] = {}
    for outvar, ct_out in zip(jaxpr.outvars, cts_out, strict=True):
        if ct_out is None or type(ct_out) is Zero:
            continue
        if type(outvar) is not Var or outvar in primal_env:
            continue
        old = ct_env.get(outvar)
        ct_env[outvar] = ct_out if old is None else add(old, ct_out)

    for eqn in reversed(linear_eqns):
        prim = eqn.primitive
        outvars = eqn.outvars
        if prim.multiple_results:
            cts = [ct_env.pop(v, None) for v in outvars]
            if all(c is None for c in cts):
                continue
            ct: Any = [
                zeros_like_aval(v.aval) if c is None else c
                for c, v in zip(cts, outvars, strict=True)
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
            cts_in = ad_templates.transpose(prim, eqn.params, ct, invals)
        if cts_in is None:
            cts_in = rule(ct, *invals, **eqn.params)
        for x, c in zip(eqn.inputs, cts_in, strict=True):
            if c is None or type(c) is Zero or type(x) is not Var or x in primal_env:
                continue
            old = ct_env.get(x)
            ct_env[x] = c if old is None else add(old, c)

    return [
        ct_env.get(v, Zero(v.aval)) if type(a) is UndefPrimal else None
        for v, a in zip(jaxpr.invars, args, strict=True)
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
        tangents = [next(it) if nz else Zero(a) for a, nz in zip(in_avals, nonzeros, strict=True)]
        outs, touts = jvp_flat(
            lambda *xs: eval_jaxpr(closed.jaxpr, closed.consts, *xs), list(primals), tangents
        )
        out_nz = [type(t) is not Zero or inst for t, inst in zip(touts, instantiate, strict=True)]
        out_nz_box.append(out_nz)
        return outs + [instantiate_zeros(t) for t, nz in zip(touts, out_nz, strict=True) if nz]

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
            UndefPrimal(a) if lin else next(it) for a, lin in zip(in_avals, linear, strict=True)
        ]
        cts_in = backward_pass(closed.jaxpr, closed.consts, full, list(cts))
        return [instantiate_zeros(c) for c, lin in zip(cts_in, linear, strict=True) if lin]

    return pe.trace_to_jaxpr(fun, res_avals + list(ct_avals))
