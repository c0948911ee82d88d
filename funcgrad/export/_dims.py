"""Symbolic dimensions: affine integer expressions of named sizes (``b``, ``2*b + 1``).

``symbolic_shape("b, 784")`` gives ``(b, 784)`` with ``b`` a :class:`Dim`. Dims with the same
name are the same size. Exported functions generalize every size that follows the symbols
to such an expression and instantiate it with the concrete sizes when called.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Dim", "symbolic_shape"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Dim:
    """``sum(coef * symbol) + const`` with integer coefficients."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: dict[str, int] | None = None, const: int = 0) -> None:
        self.terms = {k: int(v) for k, v in sorted((terms or {}).items()) if v}
        self.const = int(const)

    @classmethod
    def symbol(cls, name: str) -> Dim:
        if not _NAME.match(name):
            raise ValueError(f"symbolic_shape: {name!r} is not a valid dimension name")
        return cls({name: 1})

    @property
    def symbols(self) -> set[str]:
        return set(self.terms)

    def evaluate(self, env: dict[str, int]) -> int:
        missing = self.symbols - set(env)
        if missing:
            raise ValueError(f"no value for the symbolic dimension(s) {sorted(missing)}")
        return self.const + sum(c * env[s] for s, c in self.terms.items())

    def to_json(self) -> dict:
        return {"$dim": [[s, c] for s, c in self.terms.items()], "c": self.const}

    @classmethod
    def from_json(cls, d: Any) -> Dim:
        terms = d.get("$dim") if isinstance(d, dict) else None
        const = d.get("c", 0) if isinstance(d, dict) else None
        ok = isinstance(terms, list) and isinstance(const, int) and not isinstance(const, bool)
        out = {}
        for t in terms if ok else ():
            if not (
                isinstance(t, list)
                and len(t) == 2
                and isinstance(t[0], str)
                and _NAME.match(t[0])
                and isinstance(t[1], int)
                and not isinstance(t[1], bool)
            ):
                ok = False
                break
            out[t[0]] = t[1]
        if not ok:
            raise ValueError(f"bad symbolic dimension {d!r:.80}")
        return cls(out, const)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return not self.terms and self.const == other
        return isinstance(other, Dim) and (self.terms, self.const) == (other.terms, other.const)

    def __hash__(self) -> int:
        return hash((tuple(self.terms.items()), self.const))

    def __str__(self) -> str:
        parts = []
        for s, c in self.terms.items():
            term = s if abs(c) == 1 else f"{abs(c)}*{s}"
            parts.append(
                ("- " if c < 0 else "+ ") + term if parts else ("-" if c < 0 else "") + term
            )
        if self.const or not parts:
            sign = "-" if self.const < 0 else "+"
            parts.append(f"{sign} {abs(self.const)}" if parts else str(self.const))
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Dim({self})"

    # arithmetic with ints, so ``b * 2 + 1`` can be written in a shape
    def __add__(self, other: Any) -> Dim:
        o = other if isinstance(other, Dim) else Dim({}, other)
        terms = dict(self.terms)
        for s, c in o.terms.items():
            terms[s] = terms.get(s, 0) + c
        return Dim(terms, self.const + o.const)

    __radd__ = __add__

    def __mul__(self, k: Any) -> Dim:
        if not isinstance(k, int):
            return NotImplemented
        return Dim({s: c * k for s, c in self.terms.items()}, self.const * k)

    __rmul__ = __mul__

    def __neg__(self) -> Dim:
        return self * -1

    def __sub__(self, other: Any) -> Dim:
        return self + (-other)

    def __rsub__(self, other: Any) -> Dim:
        return (-self) + other


_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*|\d+)\s*")


def _parse_dim(text: str) -> int | Dim:
    text = text.strip()
    if not text:
        raise ValueError("symbolic_shape: an empty dimension")
    pos, acc, first = 0, Dim(), True
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos or (not first and not m.group(1)):
            raise ValueError(
                f"symbolic_shape: cannot parse the dimension {text!r}; use names, integers, "
                "'+', '-' and 'k*name' (e.g. 'b', '2*b + 1')"
            )
        sign = -1 if m.group(1) == "-" else 1
        coef = int(m.group(2)) if m.group(2) else 1
        atom = m.group(3)
        if atom.isdigit():
            if m.group(2):
                raise ValueError(f"symbolic_shape: write {text!r} as a single integer")
            acc = acc + sign * int(atom)
        else:
            acc = acc + Dim.symbol(atom) * (sign * coef)
        pos, first = m.end(), False
    return acc.const if not acc.terms else acc


def symbolic_shape(spec: str) -> tuple[int | Dim, ...]:
    """``"b, 784"`` -> ``(b, 784)``: a shape whose named dimensions are symbolic (as
    ``jax.export.symbolic_shape``); dimensions are affine in the names (``"2*b, n + 1"``)."""
    if not isinstance(spec, str):
        raise TypeError(f"symbolic_shape: expected a string like 'b, 784', got {spec!r}")
    text = spec.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    if not text.strip():
        return ()
    parts = [p for p in text.split(",")]
    if parts and not parts[-1].strip():
        parts = parts[:-1]
    return tuple(_parse_dim(p) for p in parts)
