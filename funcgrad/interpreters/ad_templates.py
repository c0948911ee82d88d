"""Eager linearization by cached templates: the fast path of eager ``grad``.

Under eager ``grad`` (concrete primals, tangents recorded by partial evaluation) running a
jvp rule costs far more than the NumPy work it does: the rule's lax calls, their binds,
one recorded equation per tangent operation. But the rule does the same thing every time
for a given primitive, parameters, input types and set of nonzero tangents. So the first
time, the rule is traced into a jaxpr and split by partial evaluation into a *known* part
(primal outputs and residuals, from the primals) and an *unknown*, linear part (from the
residuals and tangents): a :class:`Template`. Afterwards each call evaluates the known part
on the concrete primals and appends copies of the linear part's equations to the tape: the
same jaxpr the rule itself would record, without re-running it. The backward pass does the
same for transpose rules applied to concrete values (:func:`transpose`), and the eager tape
(``tape.py``) replays both. Primitives that carry jaxprs or functions (custom rules, calls,
control flow), rules that cannot be traced abstractly, and anything under jit/vmap or a
nested transformation always run their rule.

Cached programs replay as generated straight-line Python functions (:meth:`Program.compile`)
calling the impls directly. Where a transpose wrote a zero-absorbing product (``mul``, then
``eq ct 0`` and ``select_n``; see ``zero_absorbing_mul`` in ``funcgrad/lax/elementwise.py``)
the replay calls the NumPy form that lax registered in :data:`eager_products` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcgrad import core
from funcgrad.core import Primitive, ShapedArray
from funcgrad.interpreters import ad
from funcgrad.interpreters import partial_eval as pe
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from funcgrad.util import HashableFunction

TEMPLATE_CACHE_SIZE = 4096
NO_TEMPLATE: Any = object()  # cached "this rule cannot be traced abstractly"
MAX_TEMPLATE_CONST = 1024  # elements

#: NumPy forms of the zero-absorbing products, by the name of the product's primitive
#: (``mul``, ``div``); registered by ``funcgrad/lax/elementwise.py`` next to the lax forms.
#: Replay fuses each traced product/``eq``/``select_n`` triple into one call, and the
#: transposes of these primitives stay eager (one product and a NaN scan beat replaying
#: the traced triple).
eager_products: dict[str, Callable[[Any, Any], Any]] = {}

#: The caches (each cleared when it reaches TEMPLATE_CACHE_SIZE entries).
templates: dict[tuple, Any] = {}
transpose_templates: dict[tuple, Any] = {}
_first_order: dict[Primitive, bool] = {}


def applies(primals: Sequence[Any], tangents: Sequence[Any]) -> bool:
    """Concrete primals and tangents that are unknowns of one partial evaluation."""
    for p in primals:
        if type(p) is not np.ndarray and not isinstance(p, np.generic):
            return False
    trace = None
    for t in tangents:
        if type(t) is ad.Zero:
            continue
        if type(t) is not pe.PartialEvalTracer or t.var is None:
            return False
        if trace is None:
            trace = t._trace
        elif t._trace is not trace:
            return False
    return True


def always_run_rules(primitive: Primitive) -> None:
    """Never template ``primitive``: its rules must bind (a collective reaches its named
    axis only through ``bind``, so a replayed impl would lose it)."""
    _first_order[primitive] = False


def is_first_order(primitive: Primitive, params: dict) -> bool:
    """One result and no jaxprs or functions among the parameters: a template can apply."""
    ok = _first_order.get(primitive)
    if ok is None:
        ok = not primitive.multiple_results and not any(
            isinstance(v, ClosedJaxpr | Jaxpr | HashableFunction) or callable(v)
            for v in params.values()
        )
        _first_order[primitive] = ok
    return ok


def _cache(cache: dict, key: tuple, value: Any) -> Any:
    if len(cache) >= TEMPLATE_CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


def lookup(
    primitive: Primitive, params: dict, vals: Sequence[Any], nonzeros: Sequence[bool]
) -> Template | None:
    """The template of ``primitive`` applied to NumPy ``vals`` with tangents where
    ``nonzeros`` says, built and cached on first use; None when no template applies (a
    higher-order primitive, an unhashable parameter, a rule that needs concrete values).

    The key: the primitive; per operand its shape, dtype and whether its tangent is
    nonzero; then, if there are parameters, ``tuple(params.items())``.
    """
    first = _first_order.get(primitive)  # inline: this runs once per eager op under grad
    if first is None:
        first = is_first_order(primitive, params)
    if not first:
        return None
    key: list[Any] = [primitive]
    try:
        # vals and nonzeros are built together by the caller: equal lengths.
        for v, nz in zip(vals, nonzeros, strict=False):
            key.append(v.shape)
            key.append(v.dtype)
            key.append(nz)
    except AttributeError:  # not a NumPy value (a direct bind with a Python scalar, say)
        return None
    return _find(key, primitive, params)


def lookup_boxed(
    primitive: Primitive, params: dict, args: Sequence[Any], box: type[Any]
) -> tuple[Template | None, list[Any], list[Any]]:
    """Unbox the operands of an eager op and find its template, in one pass over ``args``.

    ``args``: NumPy values, or instances of ``box`` (the eager tape's tracers) with a NumPy
    ``val`` and a ``ref``, None when the value carries no derivative. Returns ``(template,
    vals, refs)``: the template as :func:`lookup` finds it for ``vals`` with nonzero
    tangents where a ref is (None too when there is no ref: nothing to differentiate), the
    operands' NumPy values, and the refs that are not None in operand order.

    This runs once per operation of eager ``grad`` (the tape), where a second walk over the
    operands to build the key (as :func:`lookup` builds it) showed in the per-op time: the
    key is built in the loop that unboxes them.
    """
    vals: list[Any] = []
    refs: list[Any] = []
    first = _first_order.get(primitive)
    if first is None:
        first = is_first_order(primitive, params)
    if not first:
        for a in args:
            if type(a) is box:
                vals.append(a.val)
                if a.ref is not None:
                    refs.append(a.ref)
            else:
                vals.append(a)
        return None, vals, refs
    key: list[Any] = [primitive]
    try:
        for a in args:
            if type(a) is box:
                v = a.val
                ref = a.ref
                vals.append(v)
                key.append(v.shape)
                key.append(v.dtype)
                if ref is None:
                    key.append(False)
                else:
                    key.append(True)
                    refs.append(ref)
            else:
                vals.append(a)
                key.append(a.shape)
                key.append(a.dtype)
                key.append(False)
    except AttributeError:  # not a NumPy value (a direct bind with a Python scalar, say)
        vals = [a.val if type(a) is box else a for a in args]
        refs = [a.ref for a in args if type(a) is box and a.ref is not None]
        return None, vals, refs
    if not refs:
        return None, vals, refs
    return _find(key, primitive, params), vals, refs


def _find(key: list[Any], primitive: Primitive, params: dict) -> Template | None:
    """The cached template for ``key`` (the primitive, then per operand its shape, dtype and
    whether its tangent is nonzero), which gets the parameters appended; built from the key
    itself on a miss. None when no template applies."""
    end = len(key)  # the operands end here, before the parameters
    if params:
        key.append(tuple(params.items()))
    try:
        key_t = tuple(key)
        template = templates.get(key_t)
    except TypeError:  # an unhashable parameter: run the rule
        return None
    if template is None:
        avals = [ShapedArray(key[i], key[i + 1]) for i in range(1, end, 3)]
        nonzeros = key[3:end:3]
        try:
            template = build_template(primitive, params, avals, nonzeros)
        except Exception:  # noqa: BLE001 - e.g. a rule that needs concrete values
            template = NO_TEMPLATE
        _cache(templates, key_t, template)
    return None if template is NO_TEMPLATE else template


class Program:
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
        if any(np.size(c) > MAX_TEMPLATE_CONST for c in self.consts):
            # A cached program must not keep big arrays alive: run the rule instead.
            raise ValueError("template constant too large")
        # None for a program of atoms (copied onto a tape, never run)
        self.run: Callable[..., list] = None if as_atoms else self.compile()  # type: ignore[assignment]

    def _fuse_absorbing(self) -> list[tuple]:
        """The steps, with each zero-absorbing product fused into one call.

        A transpose traced with abstract values writes ``ct * y`` as ``mul``, ``eq ct 0``,
        ``select_n``; on NumPy values the registered :data:`eager_products` give the same
        values (up to the sign of zeros) for about half the cost: a product and a NaN
        check, with the select only when a NaN appeared.
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

        fused = eager_products
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

    def compile(self) -> Callable[..., list]:
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
        exec(code, env)
        return env["run"]


class Template:
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
        self.known = known  # Program: primals -> (primal out, [known tangent,] residuals)
        self.unknown = unknown  # Program: residuals, tangents -> tangent out (atoms)
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
        self.vjp: Any = None  # its transpose, built by :func:`template_vjp` on first use


def build_template(primitive, params, avals, nonzeros) -> Template:
    """Trace the jvp rule of ``primitive`` at ``avals`` and split it by partial evaluation."""
    invars = [Var(a) for a in avals]
    out_aval = primitive.abstract_eval(*avals, **params).strip()
    outvar = Var(out_aval)
    jaxpr = Jaxpr([], invars, [Eqn(primitive, invars, params, [outvar])], [outvar])
    jvp_closed, (out_nz,) = ad.jvp_jaxpr(ClosedJaxpr(jaxpr, []), nonzeros, instantiate=False)
    unknowns = [False] * len(avals) + [True] * sum(nonzeros)
    known, unknown, out_uk, num_res = pe.partial_eval_jaxpr(jvp_closed, unknowns)
    if out_uk[0]:
        raise AssertionError(f"{primitive}: the primal output depends on a tangent")
    kind = "zero" if not out_nz else ("unknown" if out_uk[1] else "known")
    return Template(
        Program(known.jaxpr, known.consts, as_atoms=False),
        Program(unknown.jaxpr, unknown.consts, as_atoms=True),
        unknown,
        num_res,
        kind,
        out_aval,
    )


def run_known(prog: Program, args: Sequence[Any]) -> list:
    """Evaluate a program on concrete values: straight to the impls, unless a staging trace
    must see the operations (``make_jaxpr``/``jit`` around an eager value)."""
    if core.dynamic_trace() is None:
        return prog.run(*args)
    vals = list(prog.prefill)
    for i, c in enumerate(prog.consts):
        vals[i] = c
    for i, a in zip(prog.in_slots, args, strict=True):
        vals[i] = a
    for prim, idxs, params, _, outs in prog.steps:
        out = prim.bind(*[vals[i] for i in idxs], **params)
        if prim.multiple_results:
            for i, o in zip(outs, out, strict=True):
                vals[i] = o
        else:
            vals[outs[0]] = out
    return [vals[i] for i in prog.out_slots]


def linearize(primitive: Primitive, params: dict, primals: list, tangents: list) -> Any:
    """``(primal_out, tangent_out)`` of ``primitive`` by its template, the linear equations
    appended to the partial evaluation the tangents belong to; None when no template
    applies (the caller runs the jvp rule). Call only where :func:`applies`."""
    nonzeros = [type(t) is not ad.Zero for t in tangents]
    template = lookup(primitive, params, primals, nonzeros)
    if template is None:
        return None
    outs = run_known(template.known, primals)
    primal_out = outs[0]
    kind = template.tangent_kind
    if kind == "zero":
        return primal_out, ad.Zero(template.out_aval)
    if kind == "known":
        return primal_out, outs[1]
    # Append the linear equations to the tape, with the residuals as its constants.
    prog = template.unknown
    atoms = list(prog.prefill)
    pe_trace = next(t._trace for t, nz in zip(tangents, nonzeros, strict=True) if nz)
    builder = pe_trace.main.global_data
    const_atom = builder.const_atom
    for i, c in enumerate(prog.consts):
        atoms[i] = const_atom(c)
    in_slots = prog.in_slots
    num_res = template.num_res
    for i, r in zip(in_slots[:num_res], outs[1:], strict=True):
        atoms[i] = const_atom(r)
    k = num_res
    for t, nz in zip(tangents, nonzeros, strict=True):
        if nz:
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
        return primal_out, atom.val
    return primal_out, pe.PartialEvalTracer(pe_trace, None, atom)


class TransposeTemplate:
    """A transpose rule traced for one primitive, parameters and operand types."""

    __slots__ = ("prog", "pattern")

    def __init__(self, prog: Program, pattern: list[int]) -> None:
        self.prog = prog
        self.pattern = pattern  # per input: 1 a computed cotangent, 0 none (None/Zero)


def build_transpose_template(primitive, params, ct_aval, in_specs) -> TransposeTemplate:
    res_avals = [a for undefined, a in in_specs if not undefined]
    pattern: list[int] = []

    def fun(ct: Any, *res: Any) -> list[Any]:
        it = iter(res)
        args = [ad.UndefPrimal(a) if undefined else next(it) for undefined, a in in_specs]
        cts = ad.primitive_transposes[primitive](ct, *args, **params)
        pattern.extend(int(c is not None and type(c) is not ad.Zero) for c in cts)
        return [c for c in cts if c is not None and type(c) is not ad.Zero]

    closed = pe.trace_to_jaxpr(fun, [ct_aval, *res_avals])
    return TransposeTemplate(Program(closed.jaxpr, closed.consts, as_atoms=False), pattern)


def transpose(primitive: Primitive, params: dict, ct: Any, invals: Sequence[Any]) -> Any:
    """The transpose rule's result for concrete ``ct`` and residuals, from a cached
    program (None when not applicable: the caller runs the rule)."""
    if type(ct) is not np.ndarray and not isinstance(ct, np.generic):
        return None
    if primitive.name in eager_products or not is_first_order(primitive, params):
        return None
    specs = []
    residuals = []
    for x in invals:
        if type(x) is ad.UndefPrimal:
            specs.append((True, x.aval.shape, x.aval.dtype))
        elif type(x) is np.ndarray or isinstance(x, np.generic):
            specs.append((False, x.shape, x.dtype))
            residuals.append(x)
        else:
            return None
    try:
        key = (primitive, tuple(params.items()), ct.shape, ct.dtype, tuple(specs))
        template = transpose_templates.get(key)
    except TypeError:
        return None
    if template is None:
        in_specs = [(u, ShapedArray(shape, dtype)) for u, shape, dtype in specs]
        try:
            template = build_transpose_template(
                primitive, params, ShapedArray(ct.shape, ct.dtype), in_specs
            )
        except Exception:  # noqa: BLE001 - e.g. a rule that needs concrete values
            template = NO_TEMPLATE
        _cache(transpose_templates, key, template)
    if template is NO_TEMPLATE:
        return None
    outs = iter(run_known(template.prog, [ct, *residuals]))
    return [next(outs) if computed else None for computed in template.pattern]


def template_vjp(template: Template) -> Any:
    """The transpose of a template's linear program as a replayable program: ``(run,
    pattern)`` where ``run(ct, *residuals)`` returns the cotangents of the differentiated
    inputs that receive one and ``pattern`` says which (None: all of them). Built once per
    template (kept in ``template.vjp``); ``NO_TEMPLATE`` when it cannot be traced
    abstractly."""
    if template.vjp is not None:
        return template.vjp
    closed = template.unknown_jaxpr
    jaxpr = closed.jaxpr
    num_res = template.num_res
    res_avals = [v.aval for v in jaxpr.invars[:num_res]]
    lin_avals = [v.aval for v in jaxpr.invars[num_res:]]
    pattern: list[bool] = []

    def fun(ct: Any, *res: Any) -> list[Any]:
        args = [*res, *(ad.UndefPrimal(a) for a in lin_avals)]
        cts = ad.backward_pass(jaxpr, closed.consts, args, [ct], all_linear=True)[num_res:]
        pattern[:] = [type(c) is not ad.Zero for c in cts]
        return [c for c in cts if type(c) is not ad.Zero]

    try:
        vjp_closed = pe.trace_to_jaxpr(fun, [jaxpr.outvars[0].aval, *res_avals])
        prog = Program(vjp_closed.jaxpr, vjp_closed.consts, as_atoms=False)
        template.vjp = (prog.run, None if all(pattern) else pattern)
    except Exception:  # noqa: BLE001 - e.g. a transpose rule that needs concrete values
        template.vjp = NO_TEMPLATE
    return template.vjp
