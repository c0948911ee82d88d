"""Emit one loop nest of the plan as Python loops: the hot loops of every kernel.

A :class:`NestEmitter` works in passes over the nest's members:

1. *collapse*: adjacent domain axes that every access walks contiguously become one loop
   (through reshaped views of the arrays);
2. *nodes*: one :class:`Node` per distinct operand and per member, with the loop depth it
   depends on and how often (and how deep) it is used;
3. *expressions*: each member's scalar expression from its lowering rule, operands inlined
   when used once at their own depth and bound to locals otherwise (hoisted to the
   outermost loop they depend on); writes of materialized values, reduction updates and
   the guards of polynomial approximations are placed at their depths;
4. *write*: comments, allocations, the guard pre-loops, then the loops themselves
   (``prange`` on the outermost one when it is large and independent) with every line
   at its depth, and the exact (libm) rerun of the nest when a guard fired.

The emitter records what its function needs to know while it writes: the arrays it reads
and defines (``FunctionBuilder.reads``/``defines``) and whether it used ``prange``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import numpy as np

from funcgrad.backend.numba import lowering, sizes
from funcgrad.backend.numba.plan import LoopNest, Member, MemberKind, Read, ReadKind
from funcgrad.backend.numba.syntax import (
    blame,
    dtype_expr,
    fill_lines,
    literal,
    lowering_error,
    shape_expr,
)
from funcgrad.ir import Eqn

if TYPE_CHECKING:
    from funcgrad.backend.numba.codegen import FunctionBuilder, Module

#: A member expression that inlines more than this many member results along one path is
#: bound to a local instead: Python's parser refuses ~200 nested parentheses, and a long
#: chain (``for _ in range(1000): x = x + 1.0``) must still compile.
MAX_INLINE_NESTING = 32


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
        self, module: Module, in_avals, out_aval, params, exact: bool = False, literals=None
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


class NodeKind(enum.Enum):
    LITERAL = "literal"
    INDEX = "index"  # a loop index
    READ = "read"  # an array element
    VALUE = "value"  # a member's result


class Node:
    """A scalar value in a nest and what its placement needs: the loop depth it depends on
    (``depth``), the deepest loop that uses it, its use count, and once placed, the local
    it is bound to (if any)."""

    __slots__ = ("kind", "expr", "depth", "uses", "consumer_depth", "local", "nesting", "cheap")

    def __init__(self, kind: NodeKind, expr: str, depth: int) -> None:
        self.kind = kind
        self.expr = expr
        self.depth = depth
        self.uses = 0
        self.consumer_depth = 0
        self.local: str | None = None
        self.nesting = 0  # member results inlined into ``expr`` along its deepest path
        # ``expr`` uses only reads, indices, literals and arithmetic (no local of the main
        # loop, no helper or math-library call): cheap to recompute in a guard loop.
        self.cheap = kind is not NodeKind.VALUE


Lines = list[tuple[str, Eqn | None]]


class NestEmitter:
    """Emits one loop nest into ``fb`` (see the module docstring for the passes)."""

    def __init__(self, fb: FunctionBuilder, nest: LoopNest, exact: bool = False) -> None:
        self.fb = fb
        self.nest = nest
        self.plan = fb.plan
        self.exact = exact
        self.flag: str | None = None  # counts arguments a guarded rule cannot take
        self.pre_flag: str | None = None  # the same, checked in loops before the nest
        self.raxes = set(nest.reduce_axes or ())
        self.views: dict[tuple[str, tuple[int, ...]], str] = {}
        self.prelude: list[str] = []
        # The first equation of the nest: loop lines are attributed to it in errors.
        self.eqn0 = next((m.eqn for m in nest.members if m.eqn is not None), None)
        # Filled by the passes.
        self.groups: list[list[int]] = []
        self.group_of: dict[int, int] = {}
        self.sizes: list[Any] = []
        self.ivars: list[str] = []
        self.nkept = 0
        self.inner_mode = False
        self.parallel = False
        self.nodes: dict[Any, Node] = {}
        self.members: list[tuple[Member, list[Node], Node | None]] = []
        self.allocs: Lines = []
        self.at: list[Lines] = []  # lines at each loop depth (0: before the loops)
        self.inits: list[str] = []  # accumulator initializations
        self.finals: list[str] = []  # accumulator write-backs
        self.pre_guards: list[tuple[int, str, Eqn | None]] = []  # (depth, condition, eqn)

    def emit(self) -> None:
        self._collapse()
        self._layout()
        self._nodes()
        self._expressions()
        self._write()

    # -- pass 1: axis collapsing
    def _accesses(self) -> list[tuple[tuple[int, ...], tuple]]:
        D = self.nest.shape
        acc = []
        for m in self.nest.members:
            for r in m.reads:
                if r.kind is ReadKind.ARRAY:
                    acc.append((r.atom.aval.shape, r.amap))
                elif r.kind is ReadKind.INDEX:
                    acc.append(((D[r.axis],), ((r.axis, 0, 1),)))
            if m.kind is MemberKind.REDUCE:
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

    def _layout(self) -> None:
        """Loop indices, and where reductions accumulate: reductions over trailing axes
        keep scalar accumulators ("inner" mode); others accumulate into the output array
        while walking the domain in memory order."""
        ngroups = len(self.groups)
        self.ivars = [self.fb.fresh("i") for _ in range(ngroups)]
        rgroups = sorted({self.group_of[d] for d in self.raxes})
        self.nkept = ngroups - len(rgroups)
        self.inner_mode = bool(rgroups) and rgroups == list(range(self.nkept, ngroups))
        self.at = [[] for _ in range(ngroups + 1)]

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

    def _depth(self, amap) -> int:
        """The loop depth an access depends on (1 + its innermost loop group)."""
        return max((self.group_of[e[0]] + 1 for e in amap if not isinstance(e, int)), default=0)

    # -- pass 2: a node per distinct operand and per member; depths and use counts
    def _nodes(self) -> None:
        full = len(self.groups)
        for m in self.nest.members:
            args = [self._operand(r) for r in m.reads]
            node = None
            if m.kind is MemberKind.MAP:
                depth = max((a.depth for a in args), default=0)
                node = self.nodes[("val", m.out)] = Node(NodeKind.VALUE, "", depth)
                if m.out in self.plan.materialized:
                    node.uses += 1
                    node.consumer_depth = full
                consumer = node.depth
                rule: Any = lowering.ELEMENTWISE.get(m.name)
            else:
                consumer = full
                rule = lowering.REDUCTIONS[m.name]
            # An atomic rule repeats its operands: count it as two uses (a local).
            weight = 2 if getattr(rule, "atomic", False) else 1
            for a in args:
                a.uses += weight
                a.consumer_depth = max(a.consumer_depth, consumer)
            self.members.append((m, args, node))

    def _operand(self, r: Read) -> Node:
        if r.kind is ReadKind.LITERAL:
            return Node(NodeKind.LITERAL, self.fb.literal(r.atom), 0)
        if r.kind is ReadKind.SCALAR:
            return self.nodes[("val", r.atom)]
        if r.kind is ReadKind.INDEX:
            g = self.group_of[r.axis]
            return Node(NodeKind.INDEX, self.ivars[g], g + 1)
        name = self.fb.name(r.atom)
        self.fb.reads(name)
        expr = self._access(name, r.atom.aval.shape, r.amap)
        key = ("read", expr)
        if key not in self.nodes:
            self.nodes[key] = Node(NodeKind.READ, expr, self._depth(r.amap))
        return self.nodes[key]

    # -- pass 3: expressions, then writes and accumulations at full depth
    def _expressions(self) -> None:
        for m, args, node in self.members:
            with blame(m.eqn):
                if m.kind is MemberKind.REDUCE:
                    self._reduction(m, self._ref(args[0]))
                else:
                    assert node is not None
                    self._map(m, args, node)

    def _ref(self, a: Node) -> str:
        """``a`` at its consumer: inlined, or a local computed at ``a``'s own depth."""
        if a.local is not None:
            return a.local
        if a.kind in (NodeKind.LITERAL, NodeKind.INDEX) or (
            a.consumer_depth == a.depth
            and (a.kind is NodeKind.READ or a.uses == 1)
            and a.nesting < MAX_INLINE_NESTING
        ):
            return a.expr
        a.local = self.fb.fresh("t")
        self.at[a.depth].append((f"{a.local} = {a.expr}", None))
        return a.local

    def _map(self, m: Member, args: list[Node], node: Node) -> None:
        fb = self.fb
        in_avals = [None if r.kind is ReadKind.INDEX else r.atom.aval for r in m.reads]
        refs = [self._ref(a) for a in args]
        inlined = [r is a.expr for a, r in zip(args, refs, strict=True)]
        node.nesting = 1 + max(
            (a.nesting for a, inl in zip(args, inlined, strict=True) if inl), default=0
        )
        node.expr, guards, calls = self._member_expr(m, in_avals, refs)
        node.cheap = not calls and all(
            a.cheap and inl for a, inl in zip(args, inlined, strict=True)
        )
        if guards and all(a.cheap for a in args):
            # Check the operands in a separate, simple loop before the nest when they are
            # cheap to recompute there (plain reads, or arithmetic on them): a reduction
            # inside the main loop stops LLVM from vectorizing it.
            _, pre, _ = self._member_expr(m, in_avals, [a.expr for a in args])
            depth = max((a.depth for a in args), default=0)
            self.pre_flag = self.pre_flag or fb.fresh("big")
            self.pre_guards += [(depth, cond, m.eqn) for cond in pre]
            guards = []
        for cond in guards:
            self.flag = self.flag or fb.fresh("big")
            self.at[node.depth].append((f"{self.flag} += {cond}", m.eqn))
        if m.out in self.plan.materialized:
            out = fb.name(m.out)
            fb.defines(out)
            aval = m.out.aval
            if self.exact:  # the rare libm rerun allocates afresh
                alloc = f"np.empty({shape_expr(aval.shape)}, {dtype_expr(aval.dtype)})"
            else:
                alloc = fb.empty(out, aval.shape, aval.dtype)
            self.allocs.append((f"{out} = {alloc}", m.eqn))
            ident = tuple((d, 0, 1) for d in range(aval.ndim))
            write = f"{self._access(out, aval.shape, ident)} = {self._ref(node)}"
            self.at[len(self.groups)].append((write, m.eqn))

    def _member_expr(self, m: Member, in_avals, args: list[str]) -> tuple[str, list[str], bool]:
        """The member's scalar expression, the guard conditions its rule registered, and
        whether it calls a helper or math-library function."""
        if m.name == "copy":
            return args[0], [], False
        rule = lowering.iota_rule if m.name == "iota" else lowering.ELEMENTWISE.get(m.name)
        if rule is None:
            raise lowering_error(m.eqn, "no lowering rule for this primitive")
        literals = [r.atom.val if r.kind is ReadKind.LITERAL else None for r in m.reads]
        ctx = ExprCtx(self.fb.module, in_avals, m.out.aval, m.params, self.exact, literals)
        return rule(ctx, *args), ctx.guards, ctx.calls

    def _reduction(self, m: Member, val: str) -> None:
        fb = self.fb
        out = fb.name(m.out)
        fb.defines(out)
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
            alloc = f"np.empty({shape_expr(aval.shape)}, {dtype_expr(aval.dtype)})"
            self.allocs.append((f"{out} = {alloc}", m.eqn))
            self.inits.append(f"{acc} = {ident}")
            self.at[full].append((f"{acc} = {red.combine(ctx, acc, val)}", m.eqn))
            final = acc if acc_dtype == aval.dtype else lowering.cast(acc, aval.dtype)
            self.finals.append(f"{self._access(out, aval.shape, self._kept_map())} = {final}")
            return
        target = out if acc_dtype == aval.dtype else fb.fresh(out + "_acc")
        for line in fill_lines(target, aval.shape, acc_dtype, ident, fb.fresh):
            self.allocs.append((line, m.eqn))
        cell = self._access(target, aval.shape, self._kept_map())
        self.at[full].append((f"{cell} = {red.combine(ctx, cell, val)}", m.eqn))
        if target != out:
            self.finals.append(f"{out} = {target}.astype({dtype_expr(aval.dtype)})")

    # -- pass 4: the lines
    def _write(self) -> None:
        fb, eqn0 = self.fb, self.eqn0
        for m in self.nest.members:
            if m.eqn is not None:
                fb.comment(m.eqn)
            else:
                fb.emit(f"# {fb.module.namer.atom(m.out)} = copy (a view, materialized)")
        for line, eqn in self.allocs:
            fb.emit(line, eqn)
        for line in self.prelude:
            fb.emit(line, eqn0)
        self.parallel = self._parallel()
        if self.pre_flag:
            self._guard_loops()
        if self.flag:
            fb.emit(f"{self.flag} = 0")
        if not self.inner_mode:
            for line in self.inits:
                fb.emit(line, eqn0)

        def enter(L: int) -> None:
            for line, eqn in self.at[L]:
                fb.emit(line, eqn or eqn0)
            if self.inner_mode and L == self.nkept:
                for line in self.inits:
                    fb.emit(line, eqn0)

        def leave(L: int) -> None:
            if self.inner_mode and L == self.nkept:
                for line in self.finals:
                    fb.emit(line, eqn0)

        self._loops(len(self.groups), enter, leave)
        if not self.inner_mode:
            for line in self.finals:
                fb.emit(line, eqn0)
        flags = " or ".join(f for f in (self.pre_flag, self.flag) if f)
        if flags:
            fb.emit(f"if {flags}:  # an argument beyond the polynomials' range: use libm")
            with fb.indent():
                NestEmitter(fb, self.nest, exact=True).emit()

    def _loops(self, depth: int, enter, leave=None) -> None:
        """The loops of groups ``0 .. depth-1``; ``enter(L)``/``leave(L)`` write the lines
        before and after the loop of group ``L`` (``enter(depth)``: the innermost body)."""
        fb = self.fb

        def level(L: int) -> None:
            enter(L)
            if L == depth:
                return
            if self.sizes[L] == 1 and not (self.parallel and L == 0):
                fb.emit(f"{self.ivars[L]} = 0", self.eqn0)  # a size-1 axis needs no loop
                level(L + 1)
            else:
                loop = "prange" if self.parallel and L == 0 else "range"
                fb.emit(f"for {self.ivars[L]} in {loop}({self.sizes[L]}):", self.eqn0)
                with fb.indent():
                    level(L + 1)
            if leave is not None:
                leave(L)

        level(0)

    def _guard_loops(self) -> None:
        """Count the guard conditions over their operands' index space, before the nest.

        Serial loops OR an int32 flag (LLVM vectorizes that well); a threaded outer loop
        uses numba's ``+=`` reduction instead.
        """
        fb, flag, parallel = self.fb, self.pre_flag, self.parallel
        fb.emit(f"{flag} = 0" if parallel else f"{flag} = np.int32(0)", self.eqn0)

        def enter(L: int) -> None:
            for d, cond, eqn in self.pre_guards:
                if d == L:
                    line = f"{flag} += {cond}" if parallel else f"{flag} |= np.int32({cond})"
                    fb.emit(line, eqn or self.eqn0)

        self._loops(max(d for d, _, _ in self.pre_guards), enter)

    def _parallel(self) -> bool:
        """Threads on the outermost loop when it is independent and the work is large."""
        threshold = lowering.parallel_threshold()
        if threshold is None or not self.sizes or self.sizes[0] < 2:
            return False
        if self.raxes and not (self.inner_mode and self.nkept >= 1):
            return False
        work = int(np.prod([int(n) for n in self.sizes], dtype=np.int64))
        if work < threshold:
            return False
        self.fb.uses_prange()
        self.fb.module.specialize(
            f"threaded loop nests (>= FUNCGRAD_PARALLEL_MIN_WORK = {threshold} elements)",
            f"{work} elements",
        )
        return True
