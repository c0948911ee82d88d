"""Shape-generic kernels: sizes rendered as expressions of the inputs' shapes.

A kernel's source names every size it uses by how the kernel computes it at run time
(``N0 = x.shape[0]``, ``(N0 * 784)``) rather than by its value, so a new batch size
regenerates the *same* source and reuses the compiled kernel (``compile.compile_source``
keys kernels by the source text). No symbolic shape tracing is needed: every size is
rendered from its concrete value, and a value only gets a symbolic form that evaluates to
that value for the signature being compiled. So two signatures share a kernel exactly when
their regenerated sources are identical, and the shared kernel is correct for both (each
source is correct for its own signature, and they are the same program). A coincidence
(a feature count equal to the batch size) only changes the source: a new compile, never a
wrong result.

How sizes get their forms (:func:`symbolize`, per generated function):

- each input axis of size >= 2 whose value has no symbol yet gets one, ``N<k>``, defined at
  the top of the function from that input's ``.shape``;
- an equation's result axes take the form of an operand axis of equal value (first
  operand, first axis), else of a run of adjacent operand axes whose product it is
  (a flatten), else any symbol of that value, else stay literal;
- arithmetic on sizes in the rules (``n - 1``, products, ``//``) keeps the form (:class:`Dim`
  is an ``int`` that carries its expression), and a jaxpr literal equal to a size or to its
  reciprocal (the ``32.0`` and ``0.03125`` of a mean over 32 rows) is written from the size.

Sizes 0 and 1 always stay literal: they change the plan (empty loops, broadcasting).
Decisions taken on a size's value (BLAS from ``DOT_BLAS_MIN``, caller-allocated buffers,
threads) make the source differ across the cut-over; each is recorded as a reason in
``Source.specialized_on`` for the compile log.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from funcgrad import dtypes
from funcgrad.core import ShapedArray
from funcgrad.ir import Eqn, Jaxpr, Var


class Dim(int):
    """A size: its value (an ``int``, for every decision) and the expression that computes
    it in the kernel (what ``str``/f-strings render)."""

    expr: str

    def __new__(cls, value: int, expr: str) -> Dim:
        obj = int.__new__(cls, value)
        obj.expr = expr
        return obj

    def __str__(self) -> str:
        return self.expr

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.expr if not spec else format(int(self), spec)

    def __reduce__(self) -> Any:
        return (int, (int(self),))

    # Arithmetic keeps the expression; anything else falls back to a plain int (a literal).
    def __add__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        if o == 0 and not isinstance(o, Dim):
            return self
        if not isinstance(o, Dim) and o < 0:
            return Dim(int(self) + int(o), f"({self.expr} - {-int(o)})")
        return Dim(int(self) + int(o), f"({self.expr} + {o})")

    def __radd__(self, o: Any) -> Any:
        return self.__add__(o)

    def __sub__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        if o == 0 and not isinstance(o, Dim):
            return self
        return Dim(int(self) - int(o), f"({self.expr} - {o})")

    def __rsub__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        return Dim(int(o) - int(self), f"({o} - {self.expr})")

    def __mul__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        if not isinstance(o, Dim):
            if o == 1:
                return self
            if o == 0:
                return 0
        return Dim(int(self) * int(o), f"({self.expr} * {o})")

    def __rmul__(self, o: Any) -> Any:
        return self.__mul__(o)

    def __floordiv__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        if o == 1 and not isinstance(o, Dim):
            return self
        return Dim(int(self) // int(o), f"({self.expr} // {o})")

    def __rfloordiv__(self, o: Any) -> Any:
        if type(o) is bool or not isinstance(o, int):
            return NotImplemented
        return Dim(int(o) // int(self), f"({o} // {self.expr})")

    def __neg__(self) -> Any:
        return Dim(-int(self), f"(-{self.expr})")


@functools.cache
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: NumPy computes it on every access, and code generation asks
    thousands of times per kernel (a third of the time of a new batch size's lowering)."""
    return np.dtype(dtype).name


@functools.cache
def _short_name(dtype: np.dtype) -> str:
    return dtypes.short_name(dtype)


def aval_text(aval: Any) -> str:
    """``f32[N0,10]``: an aval as the jaxpr printer writes it (sizes in their forms)."""
    return f"{_short_name(aval.dtype)}[{','.join(map(str, aval.shape))}]"


def prod(xs: Any) -> int:
    """The product of sizes, keeping their expressions (``np.prod`` would drop them)."""
    n: Any = 1
    for x in xs:
        n = n * x
    return n


def plain(shape: tuple) -> tuple[int, ...]:
    """A shape of plain ints (for the caller's buffers, messages)."""
    return tuple(int(d) for d in shape)


def concrete(aval: Any) -> str:
    """``f32[32,10]``: an aval with its sizes' values (for messages and reasons)."""
    return ShapedArray(plain(aval.shape), aval.dtype).str_short()


class Sizes:
    """The size symbols of one generated function and every size form it has made."""

    def __init__(self) -> None:
        self.symbols: list[tuple[str, int, int]] = []  # (name, input index, axis)
        self.by_value: dict[int, Dim] = {}
        self.small: set[int] = set()  # input sizes compiled in (below SMALL_SIZE)

    def _note(self, d: Dim) -> Dim:
        self.by_value.setdefault(int(d), d)
        return d

    def note_products(self) -> None:
        """Products of each symbol with one or two other input sizes (symbols, or sizes
        compiled in): the element counts that reductions over several axes divide by (a
        mean over batch x features)."""
        syms = [b for b in self.by_value.values() if b.expr.isidentifier()]
        others: list[Any] = [*syms, *sorted(self.small)]
        for d in syms:
            for i, a in enumerate(others):
                if a is d:
                    continue
                self._note(prod([d, a]))  # type: ignore[arg-type]
                for b in others[i + 1 :]:
                    if b is not d:
                        self._note(prod([d, a, b]))  # type: ignore[arg-type]

    def input_shape(self, k: int, shape: tuple[int, ...]) -> tuple:
        out: list[Any] = []
        for axis, n in enumerate(shape):
            n = int(n)
            if n < SMALL_SIZE:
                # Sizes 0 and 1 change the plan (empty loops, broadcasting); loops shorter
                # than a vector or two run fastest with a constant trip count (LLVM unrolls
                # them: a symbolic 10-wide inner loop made per-example gradients 2x slower).
                if n >= 2:
                    self.small.add(n)
                out.append(n)
                continue
            d = self.by_value.get(n)
            if d is None or not d.expr.isidentifier():
                # An input axis is named by a symbol of its own, never by a product of
                # others that happens to be equal (another batch size would not be).
                name = f"N{len(self.symbols)}"
                self.symbols.append((name, k, axis))
                d = Dim(n, name)
                self.by_value[n] = d
            out.append(d)
        # Products of adjacent input axes (a flatten of batch and features).
        for i in range(len(out)):
            for j in range(i + 2, len(out) + 1):
                run = out[i:j]
                if all(isinstance(d, Dim) for d in run):
                    self._note(prod(run))  # type: ignore[arg-type]  # a product of Dims is a Dim
        return tuple(out)

    def result_shape(self, shape: tuple[int, ...], operands: list[tuple]) -> tuple:
        out: list[Any] = []
        for n in shape:
            n = int(n)
            out.append(n if n < 2 else self._match(n, operands))
        return tuple(out)

    def _match(self, n: int, operands: list[tuple]) -> Any:
        for shape in operands:
            for d in shape:
                if isinstance(d, Dim) and d == n:
                    return d
        for shape in operands:
            for i in range(len(shape)):
                p: Any = 1
                for j in range(i, len(shape)):
                    p = p * shape[j]
                    if p > n:
                        break
                    if j > i and p == n and isinstance(p, Dim):
                        return self._note(p)
        return self.by_value.get(n, n)

    # -- literals
    def literal_form(self, val: Any, dtype: np.dtype) -> str | None:
        """The expression of a literal computed from a size (a mean's ``32.0`` or
        ``0.03125``), or None when it is no size's value."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "iuf" or not self.by_value:
            return None
        v = np.asarray(val, dtype)[()]
        if dtype.kind == "f":
            f = float(v)
            if not np.isfinite(f) or f == 0:
                return None
            if f.is_integer() and f >= 2:
                d = self.by_value.get(int(f))
                if d is not None and dtype.type(int(d)) == v:
                    return f"np.{dtype_name(dtype)}({d})"
            if 0 < f < 1:
                for d in self.by_value.values():
                    if dtype.type(1.0 / int(d)) == v:
                        return f"np.{dtype_name(dtype)}(1.0 / {d})"
            return None
        i = int(v)
        if i >= 2 and i in self.by_value:
            return f"np.{dtype_name(dtype)}({self.by_value[i]})"
        return None

    def comment_literal(self, val: Any, dtype: np.dtype) -> str | None:
        """A literal in an equation comment, written from its size as the code is."""
        form = self.literal_form(val, dtype)
        if form is None:
            return None
        return form.split("(", 1)[1][:-1]

    def param_form(self, v: Any) -> Any:
        """A shape-like param with its sizes written symbolically (comments only)."""
        if isinstance(v, tuple):
            return tuple(self.param_form(x) for x in v)
        if type(v) is int and v >= 2 and v in self.by_value:
            return self.by_value[v]
        return v


#: Params that hold sizes (written symbolically in equation comments).
SHAPE_PARAMS = frozenset({"shape", "new_sizes", "length", "limit_indices", "sizes"})


#: Input sizes below this are compiled in (with 0 and 1, which change the plan): a loop of
#: fewer than 16 iterations gains from a constant trip count, and a kernel specialized on
#: them is shared by every size from 16 on.
SMALL_SIZE = 16

#: ``FUNCGRAD_SHAPE_GENERIC=0`` writes every size as its value (one kernel per shape, as
#: before shape-generic kernels): for comparisons and as a way out.
SHAPE_GENERIC = os.environ.get("FUNCGRAD_SHAPE_GENERIC", "1").strip() != "0"


def symbolize(jaxpr: Jaxpr) -> tuple[Jaxpr, Sizes]:
    """A copy of ``jaxpr`` whose avals' sizes are :class:`Dim`s where they have a form."""
    sizes = Sizes()
    if not SHAPE_GENERIC:
        return jaxpr, sizes
    env: dict[Var, Var] = {}

    def new_var(v: Var, shape: tuple) -> Var:
        a = v.aval
        nv = Var(ShapedArray(shape, a.dtype, getattr(a, "weak_type", False)))
        env[v] = nv
        return nv

    invars = [new_var(v, sizes.input_shape(k, v.aval.shape)) for k, v in enumerate(jaxpr.invars)]
    sizes.note_products()

    def read(x: Any) -> Any:
        return env.get(x, x) if type(x) is Var else x

    eqns = []
    for eqn in jaxpr.eqns:
        ins = [read(x) for x in eqn.inputs]
        operands = [x.aval.shape for x in ins if type(x) is Var]
        outs = [new_var(v, sizes.result_shape(v.aval.shape, operands)) for v in eqn.outvars]
        eqns.append(Eqn(eqn.primitive, ins, eqn.params, outs))
    outvars = [read(x) for x in jaxpr.outvars]
    return Jaxpr(list(jaxpr.constvars), invars, eqns, outvars), sizes
