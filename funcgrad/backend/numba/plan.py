"""Group a jaxpr's equations into fused loop nests: the first stage of the numba backend.

The plan is a list of *steps* in program order. A :class:`LoopNest` is one loop nest over a
*domain* (a shape): its members are elementwise equations (``map``) computed as scalars at
each index, and reductions (``reduce``) that accumulate over some axes of the domain. A
:class:`Opaque` step is an equation lowered by its own rule (``dot_general`` as a BLAS call,
``sort``, ``gather``, control flow...). Index-remapping equations (``broadcast_in_dim``,
``transpose``, ``slice``, ``rev``, ``squeeze``, ``expand_dims`` and unit-axis ``reshape``)
are not steps at all: they become :class:`View`s, affine index maps that the readers of the
value compose into their own array reads, so ``x.T * y[::-1]`` reads ``x`` and ``y`` in place.

Fusion rules (greedy, in equation order):

- A map member joins a nest with its domain when each operand is a literal, a scalar that
  nest computes at the same index, or an array that is complete before the nest runs.
  Values of one nest used only at the same index in that nest stay scalars: no temporaries.
- A reduction joins the nest of its producers (their domain is its operand's shape) when
  the nest reduces the same axes (or nothing yet), so ``sum(exp(x - m))`` is one loop.
- A value is *materialized* (given an array) when something reads it at another index:
  a later nest (through broadcasting or a view), an opaque step, or the outputs.

The plan holds no source text; ``codegen.py`` turns it into Python for numba.
"""

from __future__ import annotations

import enum
from typing import Any

from funcgrad.backend.numba import lowering
from funcgrad.ir import Eqn, Jaxpr, Literal, Var

# An access map says how an array is indexed from a loop domain: one entry per array axis,
# either an int (a constant index) or ``(d, start, step)``: index ``start + step * i_d``.
Entry = int | tuple[int, int, int]
AccessMap = tuple[Entry, ...]


def broadcast_map(shape: tuple[int, ...], domain: tuple[int, ...]) -> AccessMap:
    """NumPy broadcasting of an array of ``shape`` over ``domain`` (right-aligned)."""
    lead = len(domain) - len(shape)
    out: list[Entry] = []
    for k, n in enumerate(shape):
        d = lead + k
        out.append(0 if n == 1 else (d, 0, 1))
    return tuple(out)


def compose(view: AccessMap, outer: AccessMap) -> AccessMap:
    """The base-array map of reading a view (``view``: base axes from view axes) through
    ``outer`` (view axes from domain axes)."""
    out: list[Entry] = []
    for e in view:
        if isinstance(e, int):
            out.append(e)
            continue
        j, s, t = e
        o = outer[j]
        if isinstance(o, int):
            out.append(s + t * o)
        else:
            d, s2, t2 = o
            out.append((d, s + t * s2, t * t2))
    return tuple(out)


class View:
    """A value that is an index remapping of ``base`` (a Var with an array, or a Literal)."""

    __slots__ = ("base", "amap")

    def __init__(self, base: Var | Literal, amap: AccessMap) -> None:
        self.base = base
        self.amap = amap


class ReadKind(enum.Enum):
    """What a member's operand is."""

    LITERAL = "literal"  # a jaxpr Literal
    SCALAR = "scalar"  # a value the same nest computes at the same index
    ARRAY = "array"  # an array element, ``atom`` read through ``amap``
    INDEX = "index"  # the loop index of domain axis ``axis`` (for ``iota``)


class MemberKind(enum.Enum):
    """What a nest member computes at each index of the domain."""

    MAP = "map"  # an elementwise value
    REDUCE = "reduce"  # an accumulation over the nest's reduce axes


class Read:
    """One operand of a member (see :class:`ReadKind`)."""

    __slots__ = ("kind", "atom", "amap", "axis")

    def __init__(
        self, kind: ReadKind, atom: Any = None, amap: AccessMap = (), axis: int = -1
    ) -> None:
        self.kind = kind
        self.atom = atom
        self.amap = amap
        self.axis = axis

    def __repr__(self) -> str:
        return f"Read({self.kind.value}, {self.atom!r}, {self.amap})"


class Member:
    """An equation computed inside a nest (see :class:`MemberKind`)."""

    __slots__ = ("kind", "eqn", "out", "reads", "name", "params")

    def __init__(
        self,
        kind: MemberKind,
        eqn: Eqn | None,
        out: Var,
        reads: list[Read],
        name: str,
        params: dict,
    ) -> None:
        self.kind = kind
        self.eqn = eqn
        self.out = out
        self.reads = reads
        self.name = name
        self.params = params


class LoopNest:
    """One loop nest over ``shape``; ``reduce_axes`` are the axes its reductions sum over."""

    __slots__ = ("pos", "shape", "reduce_axes", "members")

    def __init__(self, pos: int, shape: tuple[int, ...]) -> None:
        self.pos = pos
        self.shape = shape
        self.reduce_axes: tuple[int, ...] | None = None
        self.members: list[Member] = []

    def __repr__(self) -> str:
        names = " ".join(m.name for m in self.members)
        return f"LoopNest(shape={self.shape}, reduce_axes={self.reduce_axes}, [{names}])"


class Opaque:
    """An equation lowered by its own rule (BLAS call, sort, control flow...)."""

    __slots__ = ("pos", "eqn")

    def __init__(self, pos: int, eqn: Eqn) -> None:
        self.pos = pos
        self.eqn = eqn

    def __repr__(self) -> str:
        return f"Opaque({self.eqn.primitive.name})"


Step = LoopNest | Opaque


class Plan:
    """The steps of one kernel and which values get arrays."""

    def __init__(self, jaxpr: Jaxpr) -> None:
        self.jaxpr = jaxpr
        self.steps: list[Step] = []
        self.views: dict[Var, View] = {}
        self.step_of: dict[Var, Step] = {}  # producer of each computed value
        self.inner: dict[Var, LoopNest] = {}  # map values computed as scalars in a nest
        self.scalar_uses: dict[Var, int] = {}
        self.uses: dict[Var, int] = {}
        self.materialized: set[Var] = set()

    # -- figures the tests and the compile log read
    @property
    def loop_nests(self) -> list[LoopNest]:
        return [s for s in self.steps if isinstance(s, LoopNest)]

    @property
    def temporaries(self) -> list[Var]:
        """Arrays the kernel allocates that are neither outputs nor opaque results."""
        outs = {v for v in self.jaxpr.outvars if isinstance(v, Var)}
        return [
            v
            for v in self.materialized
            if v not in outs and isinstance(self.step_of.get(v), LoopNest)
        ]

    def summary(self) -> str:
        return (
            f"{len(self.loop_nests)} loop nests, "
            f"{sum(isinstance(s, Opaque) for s in self.steps)} opaque steps, "
            f"{len(self.temporaries)} temporaries"
        )

    def __repr__(self) -> str:
        return "Plan(\n  " + "\n  ".join(map(repr, self.steps)) + "\n)"


def make_plan(jaxpr: Jaxpr) -> Plan:
    """Plan ``jaxpr`` (no constvars, no call equations: see ``passes.prepare``)."""
    return _Planner(jaxpr).run()


class _Planner:
    def __init__(self, jaxpr: Jaxpr) -> None:
        self.plan = Plan(jaxpr)
        uses = self.plan.uses
        for eqn in jaxpr.eqns:
            for x in eqn.inputs:
                if type(x) is Var:
                    uses[x] = uses.get(x, 0) + 1
        for x in jaxpr.outvars:
            if type(x) is Var:
                uses[x] = uses.get(x, 0) + 1

    def run(self) -> Plan:
        plan = self.plan
        for eqn in plan.jaxpr.eqns:
            name = eqn.primitive.name
            view_map = lowering.view_map(eqn)
            if view_map is not None:
                self._add_view(eqn.outvars[0], eqn.inputs[0], view_map)
            elif name in lowering.ELEMENTWISE or name == "iota":
                self._add_member(MemberKind.MAP, eqn, eqn.outvars[0], eqn.outvars[0].aval.shape, ())
            elif name in lowering.REDUCTIONS and eqn.params["axes"]:
                shape = eqn.inputs[0].aval.shape
                axes = tuple(sorted(eqn.params["axes"]))
                self._add_member(MemberKind.REDUCE, eqn, eqn.outvars[0], shape, axes)
            elif name in lowering.REDUCTIONS:  # no axes: a copy
                self._add_copy(eqn.outvars[0], eqn.inputs[0], eqn)
            else:
                self._add_opaque(eqn)
        new_outvars = []
        for x in plan.jaxpr.outvars:
            if type(x) is Var and x in plan.views:
                x = self._materialize_view(x)
            new_outvars.append(x)
        plan.jaxpr = Jaxpr([], plan.jaxpr.invars, plan.jaxpr.eqns, new_outvars)
        self._finish()
        return plan

    # -- views
    def _add_view(self, out: Var, src: Any, amap: AccessMap) -> None:
        views = self.plan.views
        if type(src) is Var and src in views:
            inner = views[src]
            self.plan.views[out] = View(inner.base, compose(inner.amap, amap))
        else:
            self.plan.views[out] = View(src, amap)

    def _materialize_view(self, v: Var) -> Var:
        """Give view ``v`` an array by a copy member; returns the Var that holds it."""
        view = self.plan.views.pop(v)
        # Re-read the base through the view map; the member's domain is v's shape.
        identity = tuple((d, 0, 1) for d in range(v.aval.ndim))
        read = (
            self._array_read(view.base, compose(view.amap, identity))
            if type(view.base) is Var
            else Read(ReadKind.LITERAL, view.base)
        )
        self._place(MemberKind.MAP, None, v, v.aval.shape, (), [read], "copy", {})
        return v

    # -- members
    def _array_read(self, var: Var, amap: AccessMap) -> Read:
        return Read(ReadKind.ARRAY, var, amap)

    def _read(self, atom: Any, domain: tuple[int, ...]) -> Read:
        if type(atom) is Literal:
            return Read(ReadKind.LITERAL, atom)
        view = self.plan.views.get(atom)
        amap = broadcast_map(atom.aval.shape, domain)
        if view is not None:
            if type(view.base) is Literal:
                return Read(ReadKind.LITERAL, view.base)
            return Read(ReadKind.ARRAY, view.base, compose(view.amap, amap))
        if atom in self.plan.inner and atom.aval.shape == domain:
            return Read(ReadKind.SCALAR, atom)
        return Read(ReadKind.ARRAY, atom, amap)

    def _add_member(
        self, kind: MemberKind, eqn: Eqn, out: Var, domain: tuple[int, ...], raxes: tuple[int, ...]
    ) -> None:
        name = eqn.primitive.name
        if name == "iota":
            reads = [Read(ReadKind.INDEX, axis=eqn.params["dimension"])]
        else:
            reads = [self._read(x, domain) for x in eqn.inputs]
        self._place(kind, eqn, out, domain, raxes, reads, name, eqn.params)

    def _add_copy(self, out: Var, src: Any, eqn: Eqn) -> None:
        reads = [self._read(src, out.aval.shape)]
        self._place(MemberKind.MAP, eqn, out, out.aval.shape, (), reads, "copy", {})

    def _pos(self, v: Var) -> int:
        step = self.plan.step_of.get(v)
        return -1 if step is None else step.pos

    def _after(self, reads: list[Read]) -> int:
        """The position of the last step producing an array that ``reads`` read."""
        return max((self._pos(r.atom) for r in reads if r.kind is ReadKind.ARRAY), default=-1)

    def _fits(self, nest: LoopNest, kind: MemberKind, domain, raxes) -> bool:
        if nest.shape != domain:
            return False
        return kind is MemberKind.MAP or nest.reduce_axes is None or nest.reduce_axes == raxes

    def _place(
        self,
        kind: MemberKind,
        eqn: Eqn | None,
        out: Var,
        domain: tuple[int, ...],
        raxes: tuple[int, ...],
        reads: list[Read],
        name: str,
        params: dict,
    ) -> None:
        plan = self.plan
        scalars = [r.atom for r in reads if r.kind is ReadKind.SCALAR]
        nests = {id(plan.inner[v]): plan.inner[v] for v in scalars}
        chosen = None
        if len(nests) == 1:
            (nest,) = nests.values()
            min_pos = self._after(reads)
            if self._fits(nest, kind, domain, raxes) and nest.pos > min_pos:
                chosen = nest
        if chosen is None:
            # Scalars of other nests are read back from their arrays instead.
            for r in reads:
                if r.kind is ReadKind.SCALAR:
                    r.kind, r.amap = ReadKind.ARRAY, broadcast_map(r.atom.aval.shape, domain)
            min_pos = self._after(reads)
            for step in reversed(plan.steps):
                if step.pos <= min_pos:
                    break
                if isinstance(step, LoopNest) and self._fits(step, kind, domain, raxes):
                    chosen = step
                    break
        if chosen is None:
            chosen = LoopNest(len(plan.steps), domain)
            plan.steps.append(chosen)
        if kind is MemberKind.REDUCE:
            chosen.reduce_axes = raxes
        chosen.members.append(Member(kind, eqn, out, reads, name, params))
        plan.step_of[out] = chosen
        if kind is MemberKind.MAP:
            plan.inner[out] = chosen
        for r in reads:
            if r.kind is ReadKind.SCALAR:
                plan.scalar_uses[r.atom] = plan.scalar_uses.get(r.atom, 0) + 1

    # -- opaque steps
    def _add_opaque(self, eqn: Eqn) -> None:
        plan = self.plan
        inputs = []
        for x in eqn.inputs:
            if type(x) is Var and x in plan.views:
                view = plan.views[x]
                if type(view.base) is Literal and not x.aval.shape:
                    x = view.base
                else:
                    # The view may feed several opaque steps: materialize it once.
                    x = self._materialize_view(x)
            inputs.append(x)
        if inputs != eqn.inputs:
            eqn = eqn.replace(inputs=inputs)
        step = Opaque(len(plan.steps), eqn)
        plan.steps.append(step)
        for v in eqn.outvars:
            plan.step_of[v] = step

    def _finish(self) -> None:
        plan = self.plan
        # Views read by array reads were counted as uses of the view's var, not its base:
        # every array read of a computed value needs that value's array.
        for step in plan.steps:
            if isinstance(step, LoopNest):
                for m in step.members:
                    for r in m.reads:
                        if r.kind is ReadKind.ARRAY:
                            plan.materialized.add(r.atom)
                    if m.kind is MemberKind.REDUCE:
                        plan.materialized.add(m.out)
                    elif plan.uses.get(m.out, 0) > plan.scalar_uses.get(m.out, 0):
                        # Used elsewhere (opaque step, output, another nest): needs an array.
                        plan.materialized.add(m.out)
            else:
                plan.materialized.update(step.eqn.outvars)
                for x in step.eqn.inputs:
                    if type(x) is Var:
                        plan.materialized.add(x)
        for x in plan.jaxpr.outvars:
            if type(x) is Var:
                plan.materialized.add(x)
