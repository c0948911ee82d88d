"""Turn a plan into readable Python source: one function per jaxpr, for ``numba.njit``.

The source is plain Python over NumPy, written to a file and compiled by ``compile.py``.
Each equation gets a comment in the jaxpr's own names above the code that computes it. A
loop nest becomes nested ``for`` loops over its (collapsed) domain; single-use scalar values
are inlined into their consumer as nested expressions; values that depend only on outer
loop indices are computed in the outer loop.
Lines are built as a list with ``INDENT``/``DEDENT`` tokens (PyTensor's
``build_source_code``), and every identifier comes from one name generator. A very long
function body is split into chunk functions called in sequence (``_FunctionBuilder.split``:
numba's compile time is superlinear in a function's length).
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad.backend import passes
from funcgrad.backend.numba import lowering, sizes
from funcgrad.backend.numba.plan import LoopNest, Member, Opaque, Plan, make_plan
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
    module = _Module()
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


class _Module:
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
        builder = _FunctionBuilder(self, plan, fname, entry, table)
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


def literal(val: Any, dtype: np.dtype) -> str:
    """A typed constant: ``np.float32(2.0)``, ``np.int32(-3)``, ``True``."""
    dtype = np.dtype(dtype)
    val = np.asarray(val, dtype)[()]
    if dtype.kind == "b":
        return "True" if val else "False"
    if dtype.kind == "f":
        f = float(val)
        if np.isnan(f):
            text = "np.nan"
        elif np.isinf(f):
            text = "np.inf" if f > 0 else "-np.inf"
        else:
            text = repr(f)
        return f"np.{sizes.dtype_name(dtype)}({text})"
    if dtype.kind in "iu":
        return f"np.{sizes.dtype_name(dtype)}({int(val)})"
    if dtype.kind == "c":
        return f"np.{sizes.dtype_name(dtype)}({complex(val)!r})"
    raise LoweringError(f"numba backend: no literal of dtype {dtype}")


def fill_lines(name: str, shape: tuple[int, ...], dtype: np.dtype, value: str, fresh) -> list[str]:
    """``name = a new array of shape filled with value`` as plain lines (``np.full`` is an
    overload numba compiles on first use in every process; a loop is not)."""
    lines = [f"{name} = np.empty({shape_expr(shape)}, {dtype_expr(dtype)})"]
    if not shape:
        return lines + [f"{name}[()] = {value}"]
    size = sizes.prod(shape)
    flat, i = fresh(name + "_f"), fresh("q")
    return lines + [
        f"{flat} = {name}.reshape(({size},))",
        f"for {i} in range({size}): {flat}[{i}] = {value}",
    ]


def dtype_expr(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "np.bool_"
    if sizes.dtype_name(dtype) not in lowering.SUPPORTED_DTYPES:
        raise LoweringError(
            f"numba backend: dtype {dtype.name} is not supported in kernels; convert to "
            "float32/float64 or an integer type first"
        )
    return f"np.{sizes.dtype_name(dtype)}"


def shape_expr(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(map(str, shape)) + ")"


class ExprCtx:
    """What an elementwise rule sees: operand/result types, params, helpers.

    ``exact``: emit libm calls (the rerun of a nest whose guard fired); ``guard(cond)``
    registers a condition under which the nest must rerun with ``exact`` set.
    """

    __slots__ = (
        "in_avals",
        "out_aval",
        "params",
        "exact",
        "guards",
        "literals",
        "calls",
        "_module",
    )

    def __init__(
        self, module: _Module, in_avals, out_aval, params, exact: bool = False, literals=None
    ) -> None:
        self._module = module
        self.in_avals = in_avals
        self.out_aval = out_aval
        self.params = params
        self.exact = exact
        self.guards: list[str] = []
        # Per operand: its value when it is a jaxpr literal, else None (rules decide on
        # values, never on the text of an operand).
        self.literals = literals or [None] * len(in_avals)
        self.calls = False  # the expression calls a helper or a math-library function

    def helper(self, name: str) -> str:
        self._module.helpers.add(name)
        self.calls = True
        return name

    def mathlib(self, name: str) -> str:
        self._module.mathlib.add(name)
        if name.endswith(("_f32", "_f64")):  # a function, not a constant
            self.calls = True
        return name

    def guard(self, cond: str) -> None:
        self.guards.append(cond)

    def lit(self, val: Any, dtype: Any = None) -> str:
        return literal(val, self.out_aval.dtype if dtype is None else dtype)

    def cast(self, expr: str, dtype: Any) -> str:
        return lowering.cast(expr, np.dtype(dtype))


class _Node:
    """A scalar value in a nest: a literal, a loop index, an array read or a member result."""

    __slots__ = ("kind", "expr", "depth", "uses", "consumer_depth", "local", "nesting", "cheap")

    def __init__(self, kind: str, expr: str, depth: int) -> None:
        self.kind = kind
        self.expr = expr
        self.depth = depth
        self.uses = 0
        self.consumer_depth = 0
        self.local: str | None = None
        self.nesting = 0  # member results inlined into ``expr`` along its deepest path
        # ``expr`` uses only reads, indices, literals and arithmetic (no local of the main
        # loop, no helper or math-library call): cheap to recompute in a guard loop.
        self.cheap = kind in ("lit", "idx", "read")


#: A member expression that inlines more than this many member results along one path is
#: bound to a local instead: Python's parser refuses ~200 nested parentheses, and a long
#: chain (``for _ in range(1000): x = x + 1.0``) must still compile.
MAX_INLINE_NESTING = 32


#: Arrays of the entry function from this size (bytes), results and temporaries alike, are
#: parameters the caller allocates from ``buffers.pool``: fresh pages from numba's allocator
#: cost more than the arithmetic of a fused kernel (10M float32 writes: 13 ms into
#: numba-allocated memory, 3.5 ms into NumPy's huge pages, less into recycled memory,
#: measured on the development machine).
CALLER_ALLOC_MIN_BYTES = 1 << 22


#: A function body of more than ``SPLIT_MIN_LINES`` code lines is split into chunk
#: functions of about ``CHUNK_LINES`` each (``_FunctionBuilder.split``).
SPLIT_MIN_LINES = 500
CHUNK_LINES = 250


def _code_lines(items: list) -> int:
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


def _render(items: list) -> str:
    return "".join(line + "\n" for line, _ in _indented(items))


def _names(items: list) -> tuple[list[str], set[str]]:
    """The names statements ``items`` assign (in order of first assignment) and read."""
    stores: dict[str, None] = {}
    loads: set[str] = set()
    for node in ast.walk(ast.parse(_render(items))):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                stores[node.id] = None
            else:
                loads.add(node.id)
    return list(stores), loads


class _FunctionBuilder:
    def __init__(
        self,
        module: _Module,
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
                if isinstance(step, LoopNest):
                    self.loop_nest(step)
                else:
                    with _blame(step.eqn):
                        self.opaque(step)
            bounds.append(len(self.lines))
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
        if any(isinstance(it, tuple) and "prange(" in it[0] for it in lines):
            return lines  # sub-functions compile without numba's parallel pipeline
        # Each step's lines (depth 0 relative to the body) and the names it stores and loads.
        segs = [lines[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        ret = lines[bounds[-1] : -1]  # the return statement (the last item is DEDENT)
        groups: list[list[list]] = [[]]
        size = 0
        for seg in segs:
            n = _code_lines(seg)
            if groups[-1] and size + n > CHUNK_LINES:
                groups.append([])
                size = 0
            groups[-1].append(seg)
            size += n
        if len(groups) < 2:
            return lines
        names = [_names(sum(g, [])) for g in groups]
        _, ret_loads = _names(ret)
        defined = list(params) + [sym for sym, _, _ in self.table.symbols]
        body: list = [INDENT] + lines[1 : bounds[0]]  # the size symbols
        chunks = []
        for k, (group, (stores, loads)) in enumerate(zip(groups, names, strict=True)):
            later = set(ret_loads).union(*(ld for _, ld in names[k + 1 :]))
            ins = [n for n in defined if n in loads]
            outs = [n for n in stores if n in later]
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
            defined += [n for n in stores if n not in defined]
        self.module.functions += chunks[::-1]  # the module writes its functions in reverse
        return body + ret + [DEDENT]

    def empty(self, name: str, shape: tuple[int, ...], dtype: Any) -> str:
        """An expression for a new array ``name`` that the function fills: a parameter the
        caller allocates when the entry function needs a large one, else ``np.empty``."""
        aval = ShapedArray(tuple(shape), np.dtype(dtype))
        if self.entry and aval.size * aval.dtype.itemsize >= CALLER_ALLOC_MIN_BYTES:
            param = self.fresh(name + "_buf")
            self.buffers.append((param, aval))
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
        _NestEmitter(self, nest).emit()


class OpaqueCtx:
    """What an opaque rule sees: operand/result names and a way to emit lines."""

    def __init__(self, fb: _FunctionBuilder, eqn: Eqn) -> None:
        self._fb = fb
        self.eqn = eqn
        self.in_avals = [x.aval for x in eqn.inputs]
        self.out_avals = [v.aval for v in eqn.outvars]
        self.outs = [fb.name(v) for v in eqn.outvars]

    def empty(self, out: str, shape: tuple[int, ...], dtype: Any) -> None:
        """Allocate result array ``out`` (at the rule's top level, before any loop: a large
        one may be a caller-allocated parameter, see ``_FunctionBuilder.empty``)."""
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


@contextmanager
def _blame(eqn: Eqn | None) -> Iterator[None]:
    """Re-raise any failure while lowering ``eqn`` as a LoweringError that names it."""
    try:
        yield
    except LoweringError as e:
        if str(e).startswith("numba backend could not lower") or eqn is None:
            raise
        raise lowering_error(eqn, str(e).removeprefix("numba backend: ")) from None
    except Exception as e:  # noqa: BLE001 - a rule that cannot handle these operands
        raise lowering_error(eqn, f"{type(e).__name__}: {e}") from None


def lowering_error(eqn: Eqn | None, reason: str) -> LoweringError:
    if eqn is None:
        return LoweringError(f"numba backend: {reason}")
    ins = ", ".join(sizes.concrete(x.aval) for x in eqn.inputs) or "no operands"
    outs = ", ".join(sizes.concrete(v.aval) for v in eqn.outvars)
    return LoweringError(
        f"numba backend could not lower '{eqn.primitive.name}' ({ins} -> {outs}): {reason}"
    )


# ----------------------------------------------------------------------------------------
# Loop nests


class _NestEmitter:
    """Emits one loop nest: collapse axes, place values at their loop depth, write."""

    def __init__(self, fb: _FunctionBuilder, nest: LoopNest, exact: bool = False) -> None:
        self.fb = fb
        self.nest = nest
        self.plan = fb.plan
        self.exact = exact
        self.flag: str | None = None  # counts arguments a guarded rule cannot take
        self.pre_flag: str | None = None  # the same, checked in loops before the nest
        self.raxes = set(nest.reduce_axes or ())
        self.views: dict[tuple[str, tuple[int, ...]], str] = {}
        self.prelude: list[str] = []

    # -- axis collapsing: adjacent axes that every access walks contiguously become one
    def _accesses(self) -> list[tuple[tuple[int, ...], tuple]]:
        D = self.nest.shape
        acc = []
        for m in self.nest.members:
            for r in m.reads:
                if r.kind == "array":
                    acc.append((r.atom.aval.shape, r.amap))
                elif r.kind == "index":
                    acc.append(((D[r.axis],), ((r.axis, 0, 1),)))
            if m.kind == "reduce":
                acc.append((m.out.aval.shape, self._kept_map()))
        return acc

    def _kept_map(self) -> tuple:
        return tuple((d, 0, 1) for d in range(len(self.nest.shape)) if d not in self.raxes)

    def _mergeable(self, i: int, accesses) -> bool:
        D = self.nest.shape
        if (i in self.raxes) != (i + 1 in self.raxes):
            return False
        for shape, amap in accesses:
            pi = [k for k, e in enumerate(amap) if not isinstance(e, int) and e[0] == i]
            pj = [k for k, e in enumerate(amap) if not isinstance(e, int) and e[0] == i + 1]
            if not pi and not pj:
                continue
            if len(pi) != 1 or len(pj) != 1:
                return False
            ki, kj = pi[0], pj[0]
            if kj <= ki or amap[ki] != (i, 0, 1) or amap[kj] != (i + 1, 0, 1):
                return False
            if shape[ki] != D[i] or shape[kj] != D[i + 1]:
                return False
            if any(shape[k] != 1 for k in range(ki + 1, kj)):
                return False
        return True

    def _collapse(self) -> None:
        D = self.nest.shape
        accesses = self._accesses()
        groups: list[list[int]] = []
        for d in range(len(D)):
            if groups and self._mergeable(d - 1, accesses):
                groups[-1].append(d)
            else:
                groups.append([d])
        self.groups = groups
        self.group_of = {d: g for g, axes in enumerate(groups) for d in axes}
        self.sizes = [sizes.prod([D[d] for d in axes]) for axes in groups]

    def _remap(self, shape: tuple[int, ...], amap) -> tuple[tuple[int, ...], list]:
        """An access in collapsed axes: the array's new shape and its index entries."""
        new_shape: list[int] = []
        idx: list[Any] = []
        k = 0
        while k < len(amap):
            e = amap[k]
            if isinstance(e, int):
                new_shape.append(shape[k])
                idx.append(e)
                k += 1
                continue
            d, s, t = e
            g = self.group_of[d]
            axes = self.groups[g]
            if len(axes) > 1:  # a merged run: consume its entries (and unit axes between)
                new_shape.append(self.sizes[g])
                idx.append((g, 0, 1))
                while isinstance(amap[k], int) or amap[k][0] != axes[-1]:
                    k += 1
            else:
                new_shape.append(shape[k])
                idx.append((g, s, t))
            k += 1
        return tuple(new_shape), idx

    def _access(self, name: str, shape: tuple[int, ...], amap) -> str:
        """``name[...]`` for one access, through a reshaped view when axes merged."""
        new_shape, idx = self._remap(shape, amap)
        if new_shape != shape:
            key = (name, new_shape)
            view = self.views.get(key)
            if view is None:
                view = self.views[key] = self.fb.fresh(name + "_r")
                self.prelude.append(f"{view} = {name}.reshape({shape_expr(new_shape)})")
            name = view
        return f"{name}[{self._index(idx)}]"

    def _index(self, idx: list) -> str:
        parts = []
        for e in idx:
            if isinstance(e, int):
                parts.append(str(e))
                continue
            g, s, t = e
            i = self.ivars[g]
            if t == 1:
                parts.append(i if s == 0 else f"{s} + {i}")
            elif t == -1:
                parts.append(f"{s} - {i}")
            else:
                parts.append(f"{s} + {t} * {i}" if s else f"{t} * {i}")
        return ", ".join(parts) if parts else "()"

    @staticmethod
    def _depth(amap, group_of) -> int:
        return max((group_of[e[0]] + 1 for e in amap if not isinstance(e, int)), default=0)

    # -- emission
    def emit(self) -> None:
        fb, nest, plan = self.fb, self.nest, self.plan
        self._collapse()
        ngroups = full = len(self.groups)
        self.ivars = [fb.fresh("i") for _ in range(ngroups)]
        rgroups = sorted({self.group_of[d] for d in self.raxes})
        nkept = ngroups - len(rgroups)
        # Reductions over trailing axes keep scalar accumulators ("inner" mode); others
        # accumulate into the output array while walking the domain in memory order.
        self.inner_mode = bool(rgroups) and rgroups == list(range(nkept, ngroups))
        allocs: list[tuple[str, Eqn | None]] = []
        at: list[list[tuple[str, Eqn | None]]] = [[] for _ in range(ngroups + 1)]
        inits: list[str] = []
        finals: list[str] = []
        nodes: dict[Any, _Node] = {}
        members: list[tuple[Member, list[_Node], _Node | None]] = []
        pre_guards: list[tuple[int, str, Eqn | None]] = []  # (depth, condition, eqn)

        # Pass 1: a node per distinct operand and per member; depths and use counts.
        def operand(r) -> _Node:
            if r.kind == "lit":
                return _Node("lit", fb.literal(r.atom), 0)
            if r.kind == "scalar":
                return nodes[("val", r.atom)]
            if r.kind == "index":
                g = self.group_of[r.axis]
                return _Node("idx", self.ivars[g], g + 1)
            expr = self._access(fb.name(r.atom), r.atom.aval.shape, r.amap)
            key = ("read", expr)
            if key not in nodes:
                nodes[key] = _Node("read", expr, self._depth(r.amap, self.group_of))
            return nodes[key]

        for m in nest.members:
            args = [operand(r) for r in m.reads]
            node = None
            if m.kind == "map":
                node = nodes[("val", m.out)] = _Node(
                    "val", "", max((a.depth for a in args), default=0)
                )
                if m.out in plan.materialized:
                    node.uses += 1
                    node.consumer_depth = full
                consumer = node.depth
            else:
                consumer = full
            # An atomic rule repeats its operands: count it as two uses (a local).
            rule = (
                lowering.REDUCTIONS[m.name]
                if m.kind == "reduce"
                else (lowering.ELEMENTWISE.get(m.name))
            )
            weight = 2 if getattr(rule, "atomic", False) else 1
            for a in args:
                a.uses += weight
                a.consumer_depth = max(a.consumer_depth, consumer)
            members.append((m, args, node))

        def ref(a: _Node) -> str:
            """``a`` at its consumer: inlined, or a local computed at ``a``'s own depth."""
            if a.local is not None:
                return a.local
            if a.kind in ("lit", "idx") or (
                a.consumer_depth == a.depth
                and (a.kind == "read" or a.uses == 1)
                and a.nesting < MAX_INLINE_NESTING
            ):
                return a.expr
            a.local = fb.fresh("t")
            at[a.depth].append((f"{a.local} = {a.expr}", None))
            return a.local

        # Pass 2: expressions, then writes and accumulations at full depth.
        eqn0 = next((m.eqn for m in nest.members if m.eqn is not None), None)
        for m, args, node in members:
            with _blame(m.eqn):
                if m.kind == "reduce":
                    self._reduction(m, ref(args[0]), allocs, at, inits, finals)
                    continue
                in_avals = [None if r.kind == "index" else r.atom.aval for r in m.reads]
                refs = [ref(a) for a in args]
                node.nesting = 1 + max(
                    (a.nesting for a, r in zip(args, refs, strict=True) if r is a.expr),
                    default=0,
                )
                node.expr, guards, calls = self._member_expr(m, in_avals, refs)
                node.cheap = not calls and all(
                    a.cheap and r is a.expr for a, r in zip(args, refs, strict=True)
                )
                if guards:
                    # Check the operands in a separate, simple loop before the nest when they
                    # are cheap to recompute there (plain reads, or arithmetic on them): a
                    # reduction inside the main loop stops LLVM from vectorizing it.
                    _, pre, _ = self._member_expr(m, in_avals, [a.expr for a in args])
                    if all(a.cheap for a in args):
                        depth = max((a.depth for a in args), default=0)
                        self.pre_flag = self.pre_flag or fb.fresh("big")
                        for cond in pre:
                            pre_guards.append((depth, cond, m.eqn))
                        guards = []
                for cond in guards:
                    self.flag = self.flag or fb.fresh("big")
                    at[node.depth].append((f"{self.flag} += {cond}", m.eqn))
                if m.out in plan.materialized:
                    out = fb.name(m.out)
                    aval = m.out.aval
                    if self.exact:  # the rare libm rerun allocates afresh
                        alloc = f"np.empty({shape_expr(aval.shape)}, {dtype_expr(aval.dtype)})"
                    else:
                        alloc = fb.empty(out, aval.shape, aval.dtype)
                    allocs.append((f"{out} = {alloc}", m.eqn))
                    ident = tuple((d, 0, 1) for d in range(aval.ndim))
                    write = f"{self._access(out, aval.shape, ident)} = {ref(node)}"
                    at[full].append((write, m.eqn))

        for m in nest.members:
            if m.eqn is not None:
                fb.comment(m.eqn)
            else:
                fb.emit(f"# {fb.module.namer.atom(m.out)} = copy (a view, materialized)")
        for line, eqn in allocs:
            fb.emit(line, eqn)
        for line in self.prelude:
            fb.emit(line, eqn0)
        parallel = self._parallel(nkept)

        def level(L: int) -> None:
            for line, eqn in at[L]:
                fb.emit(line, eqn or eqn0)
            if L == ngroups:
                return
            if self.inner_mode and L == nkept:
                for line in inits:
                    fb.emit(line, eqn0)
            if self.sizes[L] == 1 and not (parallel and L == 0):
                fb.emit(f"{self.ivars[L]} = 0", eqn0)  # a size-1 axis needs no loop
                level(L + 1)
            else:
                loop = "prange" if parallel and L == 0 else "range"
                fb.emit(f"for {self.ivars[L]} in {loop}({self.sizes[L]}):", eqn0)
                with fb.indent():
                    level(L + 1)
            if self.inner_mode and L == nkept:
                for line in finals:
                    fb.emit(line, eqn0)

        if self.pre_flag:
            self._guard_loops(pre_guards, parallel, eqn0)
        if self.flag:
            fb.emit(f"{self.flag} = 0")
        if not self.inner_mode:
            for line in inits:
                fb.emit(line, eqn0)
        level(0)
        if not self.inner_mode:
            for line in finals:
                fb.emit(line, eqn0)
        flags = " or ".join(f for f in (self.pre_flag, self.flag) if f)
        if flags:
            fb.emit(f"if {flags}:  # an argument beyond the polynomials' range: use libm")
            with fb.indent():
                _NestEmitter(fb, nest, exact=True).emit()

    def _guard_loops(self, guards: list, parallel: bool, eqn0: Eqn | None) -> None:
        """Count the guard conditions over their operands' index space, before the nest.

        Serial loops OR an int32 flag (LLVM vectorizes that well); a threaded outer loop
        uses numba's ``+=`` reduction instead.
        """
        fb, flag = self.fb, self.pre_flag
        depth = max(d for d, _, _ in guards)
        fb.emit(f"{flag} = 0" if parallel else f"{flag} = np.int32(0)", eqn0)

        def level(L: int) -> None:
            for d, cond, eqn in guards:
                if d == L:
                    line = f"{flag} += {cond}" if parallel else f"{flag} |= np.int32({cond})"
                    fb.emit(line, eqn or eqn0)
            if L == depth:
                return
            if self.sizes[L] == 1 and not (parallel and L == 0):
                fb.emit(f"{self.ivars[L]} = 0", eqn0)
                level(L + 1)
            else:
                loop = "prange" if parallel and L == 0 else "range"
                fb.emit(f"for {self.ivars[L]} in {loop}({self.sizes[L]}):", eqn0)
                with fb.indent():
                    level(L + 1)

        level(0)

    def _member_expr(self, m: Member, in_avals, args: list[str]) -> tuple[str, list[str], bool]:
        """The member's scalar expression, the guard conditions its rule registered, and
        whether it calls a helper or math-library function."""
        if m.name == "copy":
            return args[0], [], False
        rule = lowering.iota_rule if m.name == "iota" else lowering.ELEMENTWISE.get(m.name)
        if rule is None:
            raise lowering_error(m.eqn, "no lowering rule for this primitive")
        literals = [r.atom.val if r.kind == "lit" else None for r in m.reads]
        ctx = ExprCtx(self.fb.module, in_avals, m.out.aval, m.params, self.exact, literals)
        return rule(ctx, *args), ctx.guards, ctx.calls

    def _parallel(self, nkept: int) -> bool:
        """Threads on the outermost loop when it is independent and the work is large."""
        threshold = lowering.parallel_threshold()
        if threshold is None or not self.sizes or self.sizes[0] < 2:
            return False
        if self.raxes and not (self.inner_mode and nkept >= 1):
            return False
        work = int(np.prod([int(n) for n in self.sizes], dtype=np.int64))
        if work < threshold:
            return False
        self.fb.module.parallel = True
        self.fb.module.specialize(
            f"threaded loop nests (>= FUNCGRAD_PARALLEL_MIN_WORK = {threshold} elements)",
            f"{work} elements",
        )
        return True

    def _reduction(self, m: Member, val: str, allocs, at, inits, finals) -> None:
        fb = self.fb
        out = fb.name(m.out)
        aval = m.out.aval
        red = lowering.REDUCTIONS[m.name]
        acc_dtype = red.acc_dtype(aval.dtype)
        ident = literal(red.identity(acc_dtype), acc_dtype)
        if acc_dtype != aval.dtype:
            val = lowering.cast(val, acc_dtype)
        ctx = ExprCtx(fb.module, [aval, aval], aval, {})
        full = len(self.groups)
        if self.inner_mode:
            acc = fb.fresh("acc")
            allocs.append(
                (f"{out} = np.empty({shape_expr(aval.shape)}, {dtype_expr(aval.dtype)})", m.eqn)
            )
            inits.append(f"{acc} = {ident}")
            at[full].append((f"{acc} = {red.combine(ctx, acc, val)}", m.eqn))
            final = acc if acc_dtype == aval.dtype else lowering.cast(acc, aval.dtype)
            finals.append(f"{self._access(out, aval.shape, self._kept_map())} = {final}")
            return
        target = out if acc_dtype == aval.dtype else fb.fresh(out + "_acc")
        for line in fill_lines(target, aval.shape, acc_dtype, ident, fb.fresh):
            allocs.append((line, m.eqn))
        cell = self._access(target, aval.shape, self._kept_map())
        at[full].append((f"{cell} = {red.combine(ctx, cell, val)}", m.eqn))
        if target != out:
            finals.append(f"{out} = {target}.astype({dtype_expr(aval.dtype)})")
