"""Small helpers shared across funcgrad: list splitting, axis checks, hashable callables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def split_list(lst: Sequence, ns: Sequence[int]) -> list[list]:
    """Split ``lst`` into pieces of lengths ``ns`` plus the remainder."""
    lst = list(lst)
    out = []
    for n in ns:
        out.append(lst[:n])
        lst = lst[n:]
    out.append(lst)
    return out


def canonicalize_axis(axis: int, ndim: int, op: str = "operation") -> int:
    """Turn a possibly negative axis into a non-negative one, with a clear error."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of bounds for an array of rank {ndim}")
    return axis + ndim if axis < 0 else axis


class HashableFunction:
    """Wrap a callable so it can be a primitive parameter (hashes by identity)."""

    __slots__ = ("f",)

    def __init__(self, f: Callable) -> None:
        self.f = f

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.f(*args, **kwargs)

    def __repr__(self) -> str:
        return getattr(self.f, "__name__", repr(self.f))
