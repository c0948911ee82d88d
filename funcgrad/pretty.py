"""The jaxpr printer, in JAX's text form.

``{ lambda ; a:f32[3]. let b:f32[3] = sin a; c:f32[3] = mul b 2.0:f32[] in (c,) }`` when it
fits in ``width`` columns, else one equation per line. Variables are named a, b, ..., z,
ba, bb, ... in order of binding, shared across nested jaxprs as JAX does. Parameters print
sorted as ``prim[k=v ...]``; primitives may add their own rules to ``pp_param_rules``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var

#: Per-parameter-name formatting overrides: ``name -> fn(value, namer) -> str``.
pp_param_rules: dict[str, Callable[[Any, Namer], str]] = {}


def _alphabetic(n: int) -> str:
    s = ""
    while True:
        n, r = divmod(n, 26)
        s = chr(ord("a") + r) + s
        if n == 0:
            return s


class Namer:
    """Gives each Var a short name the first time it is printed."""

    def __init__(self) -> None:
        self.names: dict[Var, str] = {}

    def bind(self, v: Var) -> str:
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = _alphabetic(len(self.names))
        return name

    def atom(self, x: Any) -> str:
        if isinstance(x, Literal):
            return f"{_literal_text(x.val)}:{x.aval.str_short()}"
        return self.bind(x)

    def binder(self, v: Var) -> str:
        return f"{self.bind(v)}:{v.aval.str_short()}"


def _literal_text(val: Any) -> str:
    val = np.asarray(val)
    if val.dtype.kind == "b":
        return str(bool(val))
    return str(val[()])


def _param_text(value: Any, namer: Namer, width: int, indent: int) -> str:
    if isinstance(value, (Jaxpr, ClosedJaxpr)):
        jaxpr = value.jaxpr if isinstance(value, ClosedJaxpr) else value
        return _pp_jaxpr(jaxpr, namer, width, indent)
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(v, (Jaxpr, ClosedJaxpr)) for v in value)
    ):
        inner = [_param_text(v, namer, width, indent + 2) for v in value]
        return "(\n" + "\n".join(" " * (indent + 2) + s for s in inner) + "\n" + " " * indent + ")"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value) if not isinstance(value, str) else value


def pp_eqn(eqn: Eqn, namer: Namer | None = None, width: int = 80, indent: int = 0) -> str:
    """``c:f32[3] = mul b 2.0:f32[]``; params go one per line (as JAX prints them) when the
    equation does not fit in ``width`` or a param (a sub-jaxpr) spans lines."""
    namer = namer or Namer()
    ins = " ".join(namer.atom(x) for x in eqn.inputs)
    # Outputs are named before the variables of sub-jaxprs in the params, as in JAX.
    outs = " ".join(namer.binder(v) for v in eqn.outvars)
    lhs = f"{outs} = " if outs else ""
    tail = f" {ins}" if ins else ""
    params = ""
    if eqn.params:
        items = []
        for k in sorted(eqn.params):
            rule = pp_param_rules.get(k)
            v = eqn.params[k]
            text = rule(v, namer) if rule else _param_text(v, namer, width, indent + 2)
            items.append(f"{k}={text}")
        params = "[" + " ".join(items) + "]"
        line = f"{lhs}{eqn.primitive.name}{params}{tail}"
        if "\n" in line or indent + len(line) > width:
            pad = " " * (indent + 2)
            params = "[\n" + "\n".join(pad + item for item in items) + "\n" + " " * indent + "]"
    return f"{lhs}{eqn.primitive.name}{params}{tail}"


def _pp_jaxpr(jaxpr: Jaxpr, namer: Namer, width: int, indent: int) -> str:
    consts = " ".join(namer.binder(v) for v in jaxpr.constvars)
    invars = " ".join(namer.binder(v) for v in jaxpr.invars)
    head = f"{{ lambda {consts}; {invars}. let" if consts else f"{{ lambda ; {invars}. let"
    eqns = [pp_eqn(e, namer, width, indent + 4) for e in jaxpr.eqns]
    outs = ", ".join(namer.atom(x) for x in jaxpr.outvars)
    tail = f"in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}"
    one_line = f"{head} {'; '.join(eqns)} {tail}"
    if indent + len(one_line) <= width and "\n" not in one_line:
        return one_line
    pad = " " * (indent + 4)
    body = "\n".join(pad + e for e in eqns)
    return f"{head}\n{body}\n{' ' * (indent + 2)}{tail}"


def pp_jaxpr(jaxpr: Jaxpr, width: int = 80) -> str:
    """The text form of a jaxpr, exactly as JAX prints it."""
    return _pp_jaxpr(jaxpr, Namer(), width, 0)
