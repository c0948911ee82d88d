"""Turn a plan into readable Python source: one function per jaxpr, for ``numba.njit``.

The source is plain Python over NumPy, written to a file and compiled by ``compile.py``.
Each equation gets a comment in the jaxpr's own names above the code that computes it. A
loop nest becomes nested ``for`` loops over its (collapsed) domain; single-use scalar values
are inlined into their consumer as nested expressions; values that depend only on outer
loop indices are computed in the outer loop.
Lines are built as a list with ``INDENT``/``DEDENT`` tokens (PyTensor's
``build_source_code``), and every identifier comes from one name generator. Loop nests are
written by ``nest.py``; opaque steps by their rules through :class:`OpaqueCtx`. While a step
is written, the function-level names it reads and defines are recorded (never recovered
from the text), so a very long function body can be split into chunk functions called in
sequence (``FunctionBuilder.split``: numba's compile time is superlinear in a function's
length).
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad.backend import passes
from funcgrad.backend.numba import lowering, sizes
from funcgrad.backend.numba.nest import NestEmitter
from funcgrad.backend.numba.plan import LoopNest, Opaque, Plan, make_plan
from funcgrad.backend.numba.syntax import (
    blame,
    dtype_expr,
    fill_lines,
    literal,
    lowering_error,
    shape_expr,
)
from funcgrad.core import ShapedArray
from funcgrad.errors import LoweringError
from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from funcgrad.pretty import Namer

INDENT, DEDENT = object(), object()

# Names the generated code uses itself; jaxpr names that collide get a trailing "_".
_RESERVED = frozenset(
    {"np", "math", "prange", "range", "len", "min", "max", "abs", "int", "float", "bool"}
)


class Source:
    """The generated module: its text, its functions, and what each line computes."""

    def __init__(
        self,
        text: str,
        entry: str,
        functions: list[str],
        parallel: bool,
        line_eqns: dict[int, Eqn],
        plans: list[Plan],
        helpers: list[str],
        buffers: list[Any],
        specialized_on: list[str] | None = None,
    ) -> None:
        self.text = text
        self.entry = entry
        self.functions = functions
        self.parallel = parallel
        self.line_eqns = line_eqns
        self.plans = plans
        self.helpers = helpers
        # Avals of the entry's trailing parameters: large arrays (results and temporaries)
        # the caller allocates (``buffers.py``).
        self.buffers = buffers
        # Why this source depends on sizes beyond ranks (BLAS cut-over, buffers, threads):
        # other sizes on the same side of each decision regenerate the same source.
        self.specialized_on = specialized_on or []

    @property
    def plan(self) -> Plan:
        """The plan of the entry function."""
        return self.plans[0]


def generate(jaxpr: Jaxpr, name: str = "kernel") -> Source:
    """Source for ``jaxpr`` (no constvars, no calls; see ``passes.prepare``)."""
    module = Module()
    jaxpr, table = sizes.symbolize(jaxpr)
    # Name every variable in program order first (as the jaxpr printer would), so the
    # code's names follow the jaxpr's text: a, b, c...
    for v in jaxpr.invars:
        module.namer.bind(v)
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            module.namer.bind(v)
    entry = module.function(jaxpr, _py_name(name) or "kernel", entry=True, table=table)
    return module.finish(entry)


def _py_name(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not s or s[0].isdigit():
        s = "k_" + s
    return s


class Module:
    """The generated module being written: its functions, the helpers they import, and the
    decisions taken on sizes."""

    def __init__(self) -> None:
        self.namer = Namer()
        self.functions: list[tuple[str, list]] = []
        self.fnames: set[str] = set()
        self.helpers: set[str] = set()
        self.mathlib: set[str] = set()
        self.parallel = False
        self.plans: list[Plan] = []
        self.subs: dict[int, str] = {}
        self.buffers: list[Any] = []
        self.decisions: dict[str, list[str]] = {}

    def specialize(self, kind: str, detail: str) -> None:
        """Record a decision taken on a size's value (shown by the compile log)."""
        details = self.decisions.setdefault(kind, [])
        if detail not in details:
            details.append(detail)

    @property
    def specialized_on(self) -> list[str]:
        """One line per kind of size-dependent decision, with its first instances."""
        out = []
        for kind, details in self.decisions.items():
            more = f"; and {len(details) - 2} more" if len(details) > 2 else ""
            out.append(f"{kind}: {'; '.join(details[:2])}{more}")
        return out

    def fresh_fname(self, base: str) -> str:
        name, i = base, 0
        while name in self.fnames:
            i += 1
            name = f"{base}_{i}"
        self.fnames.add(name)
        return name

    def function(
        self, jaxpr: Jaxpr, base: str, entry: bool = False, table: sizes.Sizes | None = None
    ) -> str:
        fname = self.fresh_fname(base)
        if table is None:
            jaxpr, table = sizes.symbolize(jaxpr)
        if table.small:
            self.specialize(
                f"input sizes below {sizes.SMALL_SIZE} compiled in (short loops)",
                ", ".join(map(str, sorted(table.small))),
            )
        plan = make_plan(jaxpr)
        self.plans.append(plan)
        builder = FunctionBuilder(self, plan, fname, entry, table)
        lines = builder.build()
        self.functions.append((fname, lines))
        if entry:
            self.buffers = [
                ShapedArray(sizes.plain(aval.shape), aval.dtype) for _, aval in builder.buffers
            ]
        return fname

    def subfunction(self, closed: ClosedJaxpr, base: str) -> str:
        """A function for a sub-jaxpr (control flow body); returns its name."""
        key = id(closed)
        if key in self.subs:
            return self.subs[key]
        jaxpr, consts = passes.prepare(closed)
        if consts:
            raise LoweringError(
                f"numba backend: a {base} body closes over {len(consts)} array constant(s); "
                "pass them as operands of the control-flow primitive"
            )
        fname = self.function(jaxpr, base)
        self.subs[key] = fname
        return fname

    def finish(self, entry: str) -> Source:
        head = ["# Generated by funcgrad's numba backend; comments show the jaxpr's equations."]
        if sizes.SHAPE_GENERIC:
            head.append("# Sizes are read from the inputs' shapes (N0, ...): other sizes reuse it.")
        if self.buffers:
            # The caller allocates these (buffers.py): their sizes key the kernel.
            shapes = ", ".join(a.str_short() for a in self.buffers)
            head.append(f"# caller-allocated results and temporaries: {shapes}")
        head += ["import numpy as np"]
        if self.parallel:
            head.append("from numba import prange")
        if self.helpers:
            names = ", ".join(sorted(self.helpers))
            head.append(f"from funcgrad.backend.numba.helpers import {names}")
        if self.mathlib:
            names = ", ".join(sorted(self.mathlib))
            head.append(f"from funcgrad.backend.numba.mathlib import {names}")
        out: list[str] = []
        line_eqns: dict[int, Eqn] = {}
        for line in head:
            out.append(line)
        # Sub-functions first, so each name exists before the entry uses it.
        for _fname, lines in self.functions[::-1]:
            out += ["", ""]
            for text_line, eqn in _indented(lines):
                out.append(text_line)
                if eqn is not None:
                    line_eqns[len(out)] = eqn
        src = "\n".join(out) + "\n"
        return Source(
            src,
            entry,
            [f for f, _ in self.functions],
            self.parallel,
            line_eqns,
            self.plans,
            sorted(self.helpers),
            self.buffers,
            self.specialized_on,
        )


#: Arrays of the entry function from this size (bytes), results and temporaries alike, are
#: parameters the caller allocates from ``buffers.pool``: fresh pages from numba's allocator
#: cost more than the arithmetic of a fused kernel (10M float32 writes: 13 ms into
#: numba-allocated memory, 3.5 ms into NumPy's huge pages, less into recycled memory,
#: measured on the development machine).
CALLER_ALLOC_MIN_BYTES = 1 << 22


#: A function body of more than ``SPLIT_MIN_LINES`` code lines is split into chunk
#: functions of about ``CHUNK_LINES`` each (``FunctionBuilder.split``).
SPLIT_MIN_LINES = 500
CHUNK_LINES = 250


def _code_lines(items: list) -> int:
    """How many lines of ``items`` are code (comments and indentation tokens are not)."""
    return sum(1 for it in items if isinstance(it, tuple) and not it[0].startswith("#"))


def _indented(items: list) -> Iterator[tuple[str, Eqn | None]]:
    """``(line, eqn)`` items with their ``INDENT``/``DEDENT`` tokens applied."""
    depth = 0
    for it in items:
        if it is INDENT:
            depth += 1
        elif it is DEDENT:
            depth -= 1
        else:
            yield "    " * depth + it[0], it[1]


class StepNames:
    """The function-level names one step reads and defines (in order), recorded while the
    step is written: what a chunk function must take and return (``FunctionBuilder.split``).
    Names local to the step (loop indices, temporaries, views) are not recorded."""

    __slots__ = ("reads", "defines")

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.defines: list[str] = []


class FunctionBuilder:
    """Writes one function: its parameters, each step of its plan, its return."""

    def __init__(
        self,
        module: Module,
        plan: Plan,
        fname: str,
        entry: bool = False,
        table: sizes.Sizes | None = None,
    ) -> None:
        self.module = module
        self.plan = plan
        self.fname = fname
        self.table = table or sizes.Sizes()
        # Only the entry's arrays may live in caller-allocated buffers (a sub-function's
        # may be allocated once per loop iteration).
        self.entry = entry
        self.buffers: list[tuple[str, Any]] = []
        self.lines: list[Any] = []
        self.used_names: set[str] = set()
        self.names: dict[Var, str] = {}
        self.alias: dict[Var, Var] = {}  # opaque view results -> the array they view
        self.used_names.update(name for name, _, _ in self.table.symbols)
        self.step_names: list[StepNames] = []  # per step, then the return statement
        self.parallel = False  # a loop of this function runs under ``prange``

    # -- what each step reads and defines, recorded as it is written
    def reads(self, name: str) -> None:
        """The step being written reads function-level name ``name``."""
        self.step_names[-1].reads.add(name)

    def defines(self, name: str) -> None:
        """The step being written assigns function-level name ``name``."""
        defines = self.step_names[-1].defines
        if name not in defines:
            defines.append(name)

    def uses_prange(self) -> None:
        self.parallel = self.module.parallel = True

    # -- names
    def name(self, v: Var) -> str:
        n = self.names.get(v)
        if n is None:
            base = self.module.namer.bind(v)
            if keyword.iskeyword(base) or base in _RESERVED:
                base += "_"
            n = self.names[v] = base
            self.used_names.add(n)
        return n

    def fresh(self, base: str) -> str:
        i = 0
        while f"{base}{i}" in self.used_names:
            i += 1
        n = f"{base}{i}"
        self.used_names.add(n)
        return n

    def atom(self, x: Any) -> str:
        """An operand as an expression: a name, or a typed literal."""
        if type(x) is Literal:
            return self.literal(x)
        return self.name(x)

    def literal(self, x: Literal) -> str:
        """A jaxpr literal: from a size when it is one (a mean's divisor), else its value."""
        form = self.table.literal_form(x.val, x.aval.dtype)
        return form if form is not None else literal(x.val, x.aval.dtype)

    # -- lines
    def emit(self, line: str, eqn: Eqn | None = None) -> None:
        self.lines.append((line, eqn))

    def comment(self, eqn: Eqn | None) -> None:
        if eqn is not None:
            self.emit("# " + eqn_comment(eqn, self.module.namer, self.table))

    @contextmanager
    def indent(self) -> Iterator[None]:
        self.lines.append(INDENT)
        try:
            yield
        finally:
            self.lines.append(DEDENT)

    # -- the function
    def build(self) -> list:
        jaxpr = self.plan.jaxpr
        params = [self.name(v) for v in jaxpr.invars]
        bounds = []  # where each step's lines start in self.lines
        with self.indent():
            # The parameters' types (dtype, rank: what numba's signature holds) are part of
            # the text that keys the kernel.
            binders = " ".join(_binder(self.module.namer, v) for v in jaxpr.invars)
            self.emit(f"# ({binders or 'no parameters'})")
            for sym, k, axis in self.table.symbols:
                self.emit(f"{sym} = {params[k]}.shape[{axis}]")
            for step in self.plan.steps:
                bounds.append(len(self.lines))
                self.step_names.append(StepNames())
                if isinstance(step, LoopNest):
                    self.loop_nest(step)
                else:
                    with blame(step.eqn):
                        self.opaque(step)
            bounds.append(len(self.lines))
            self.step_names.append(StepNames())
            self.emit_return(jaxpr)
        params += [name for name, _ in self.buffers]
        body = self.lines
        if _code_lines(body) > SPLIT_MIN_LINES:
            body = self.split(params, bounds)
        return [(f"def {self.fname}({', '.join(params)}):", None)] + body

    # -- splitting a long function into chunk functions
    def split(self, params: list[str], bounds: list[int]) -> list:
        """The body as calls of chunk functions of about ``CHUNK_LINES`` lines each (steps
        kept whole), which the module gets as functions of their own; returns the new body.

        numba's compile time grows faster than linearly with a function's length (LLVM's
        SROA and other function passes over one function with thousands of allocas): a chain
        of 120 fused nests (2,200 lines) compiled in 43 s as one function, 20 s split. The
        split is not free: numba links each chunk's module into its caller and optimizes
        and emits it again there, so below ``SPLIT_MIN_LINES`` (measured: ~400 code lines
        neutral, a 425-line CNN train step 1 s slower, 600 lines 20% faster) functions stay
        whole. A chunk takes the arrays it reads that earlier code defined and returns those
        that later code reads; functions using ``prange`` are not split.
        """
        lines = self.lines
        if self.parallel:
            return lines  # sub-functions compile without numba's parallel pipeline
        # Each step's lines (depth 0 relative to the body), grouped into chunks.
        segs = [lines[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        ret = lines[bounds[-1] : -1]  # the return statement (the last item is DEDENT)
        *step_names, ret_names = self.step_names
        groups: list[list[list]] = [[]]
        group_names: list[list[StepNames]] = [[]]
        size = 0
        for seg, seg_names in zip(segs, step_names, strict=True):
            n = _code_lines(seg)
            if groups[-1] and size + n > CHUNK_LINES:
                groups.append([])
                group_names.append([])
                size = 0
            groups[-1].append(seg)
            group_names[-1].append(seg_names)
            size += n
        if len(groups) < 2:
            return lines
        loads = [set().union(*(sn.reads for sn in g)) for g in group_names]
        stores = [[n for sn in g for n in sn.defines] for g in group_names]
        # Every chunk takes the size symbols (any shape it writes may use them).
        symbols = [sym for sym, _, _ in self.table.symbols]
        defined = list(params)
        body: list = [INDENT] + lines[1 : bounds[0]]  # the size symbols
        chunks = []
        for k, group in enumerate(groups):
            later = ret_names.reads.union(*loads[k + 1 :])
            ins = [n for n in defined if n in loads[k]] + symbols
            outs = [n for n in stores[k] if n in later]
            fname = self.module.fresh_fname(f"{self.fname}_part{k + 1}")
            first = next((it[1] for it in sum(group, []) if isinstance(it, tuple) and it[1]), None)
            chunk = [(f"def {fname}({', '.join(ins)}):", None), INDENT]
            chunk += [it for seg in group for it in seg]
            if outs:
                chunk.append((f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})", None))
            chunk.append(DEDENT)
            chunks.append((fname, chunk))
            call = f"{fname}({', '.join(ins)})"
            targets = ", ".join(outs) + ("," if len(outs) == 1 else "")
            body.append((f"{targets} = {call}" if outs else call, first))
            defined += [n for n in stores[k] if n not in defined]
        self.module.functions += chunks[::-1]  # the module writes its functions in reverse
        return body + ret + [DEDENT]

    def empty(self, name: str, shape: tuple[int, ...], dtype: Any) -> str:
        """An expression for a new array ``name`` that the function fills: a parameter the
        caller allocates when the entry function needs a large one, else ``np.empty``."""
        aval = ShapedArray(tuple(shape), np.dtype(dtype))
        if self.entry and aval.size * aval.dtype.itemsize >= CALLER_ALLOC_MIN_BYTES:
            param = self.fresh(name + "_buf")
            self.buffers.append((param, aval))
            self.reads(param)
            self.module.specialize(
                f"allocated by the caller (>= {CALLER_ALLOC_MIN_BYTES >> 20} MiB; the shapes "
                "key the kernel)",
                f"{name} {sizes.concrete(aval)}",
            )
            return param
        return f"np.empty({shape_expr(aval.shape)}, {dtype_expr(aval.dtype)})"

    def emit_return(self, jaxpr: Jaxpr) -> None:
        outs = []
        seen: set[Var] = set()
        inputs = set(jaxpr.invars)
        for x in jaxpr.outvars:
            if type(x) is Literal:
                name = self.fresh("lit")
                for line in fill_lines(name, (), x.aval.dtype, self.literal(x), self.fresh):
                    self.emit(line)
                outs.append(name)
                continue
            root = self.alias.get(x, x)
            name = self.name(x)
            self.reads(name)
            # Results never alias an input or each other (fresh, writable arrays).
            if root in inputs or root in seen:
                name = f"{name}.copy()"
            seen.add(root)
            outs.append(name)
        if len(outs) == 1:
            self.emit(f"return {outs[0]}")
        else:
            self.emit("return (" + ", ".join(outs) + ")")

    # -- opaque steps
    def opaque(self, step: Opaque) -> None:
        eqn = step.eqn
        rule = lowering.OPAQUE.get(eqn.primitive.name)
        if rule is None:
            raise lowering_error(eqn, "no lowering rule for this primitive")
        self.comment(eqn)
        start = len(self.lines)
        for x in eqn.inputs:
            if type(x) is Var:
                self.reads(self.name(x))
        for v in eqn.outvars:
            self.defines(self.name(v))
        rule(OpaqueCtx(self, eqn), *eqn.inputs, **eqn.params)
        # Map every generated line to the equation, for error messages.
        for i in range(start, len(self.lines)):
            item = self.lines[i]
            if isinstance(item, tuple) and item[1] is None:
                self.lines[i] = (item[0], eqn)
        if getattr(rule, "returns_view", False) and type(eqn.inputs[0]) is Var:
            src = eqn.inputs[0]
            self.alias[eqn.outvars[0]] = self.alias.get(src, src)

    # -- loop nests
    def loop_nest(self, nest: LoopNest) -> None:
        NestEmitter(self, nest).emit()


class OpaqueCtx:
    """What an opaque rule sees: operand/result names and a way to emit lines."""

    def __init__(self, fb: FunctionBuilder, eqn: Eqn) -> None:
        self._fb = fb
        self.eqn = eqn
        self.in_avals = [x.aval for x in eqn.inputs]
        self.out_avals = [v.aval for v in eqn.outvars]
        self.outs = [fb.name(v) for v in eqn.outvars]

    def empty(self, out: str, shape: tuple[int, ...], dtype: Any) -> None:
        """Allocate result array ``out`` (at the rule's top level, before any loop: a large
        one may be a caller-allocated parameter, see ``FunctionBuilder.empty``)."""
        self.emit(f"{out} = {self._fb.empty(out, shape, dtype)}")

    def arg(self, x: Any) -> str:
        """An operand as an array name (a literal is bound to a new 0-d array first)."""
        if type(x) is Literal:
            name = self.fresh("lit")
            self.fill(name, (), x.aval.dtype, self._fb.literal(x))
            return name
        return self._fb.name(x)

    def fill(self, name: str, shape: tuple[int, ...], dtype: Any, value: str) -> None:
        """Emit ``name = np.full(shape, value, dtype)`` (as a loop)."""
        for line in fill_lines(name, tuple(shape), np.dtype(dtype), value, self.fresh):
            self.emit(line)

    def scalar(self, x: Any) -> str:
        """A 0-d operand as a scalar expression."""
        if type(x) is Literal:
            return self._fb.literal(x)
        assert x.aval.ndim == 0, x.aval
        return f"{self._fb.name(x)}[()]"

    def emit(self, line: str) -> None:
        self._fb.emit(line)

    def indent(self):
        return self._fb.indent()

    def push(self) -> None:
        self._fb.lines.append(INDENT)

    def pop(self) -> None:
        self._fb.lines.append(DEDENT)

    def fresh(self, base: str) -> str:
        return self._fb.fresh(base)

    def helper(self, name: str) -> str:
        self._fb.module.helpers.add(name)
        return name

    def subfunction(self, closed: ClosedJaxpr, base: str) -> str:
        return self._fb.module.subfunction(closed, base)

    def specialize(self, kind: str, detail: str) -> None:
        """Record a decision taken on a size's value (``Source.specialized_on``)."""
        self._fb.module.specialize(kind, detail)

    dtype = staticmethod(dtype_expr)
    shape = staticmethod(shape_expr)
    lit = staticmethod(literal)


def _binder(namer: Namer, v: Var) -> str:
    return f"{namer.bind(v)}:{sizes.aval_text(v.aval)}"


def eqn_comment(eqn: Eqn, namer: Namer, table: sizes.Sizes | None = None) -> str:
    """``c:f32[N0] = mul b 2.0:f32[]``, with sub-jaxprs elided; sizes (also literals and
    shape params equal to one) written as the code computes them."""

    def atom(x: Any) -> str:
        if type(x) is not Literal:
            return namer.bind(x)
        form = table.comment_literal(x.val, x.aval.dtype) if table is not None else None
        if form is None:
            val = np.asarray(x.val)[()]
            form = str(bool(val)) if val.dtype.kind == "b" else str(val)
        return f"{form}:{sizes.aval_text(x.aval)}"

    ins = " ".join(atom(x) for x in eqn.inputs)
    items = []
    for k in sorted(eqn.params):
        v = eqn.params[k]
        if table is not None and k in sizes.SHAPE_PARAMS:
            v = table.param_form(v)
        if isinstance(v, (Jaxpr, ClosedJaxpr)) or (
            isinstance(v, tuple) and v and isinstance(v[0], (Jaxpr, ClosedJaxpr))
        ):
            text = "{...}"
        elif isinstance(v, np.dtype):
            text = v.name
        else:
            text = repr(v)
        items.append(f"{k}={text}")
    params = "[" + " ".join(items) + "]" if items else ""
    outs = " ".join(_binder(namer, v) for v in eqn.outvars)
    return f"{outs} = {eqn.primitive.name}{params} {ins}".rstrip()
