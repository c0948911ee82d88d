"""Small list helpers shared by the interpreters (as in Autodidax and JAX's ``util``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def safe_map(f: Callable, *args: Sequence) -> list:
    """``map`` that insists on equal lengths, so a mismatched list is a loud bug."""
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise AssertionError(f"safe_map: length mismatch {[len(a) for a in args]}")
    return list(map(f, *args))


def safe_zip(*args: Sequence) -> list:
    """``zip`` that insists on equal lengths."""
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise AssertionError(f"safe_zip: length mismatch {[len(a) for a in args]}")
    return list(zip(*args, strict=True))


def unzip2(pairs: Iterable) -> tuple[list, list]:
    xs, ys = [], []
    for x, y in pairs:
        xs.append(x)
        ys.append(y)
    return xs, ys


def split_list(lst: Sequence, ns: Sequence[int]) -> list[list]:
    """Split ``lst`` into pieces of lengths ``ns`` plus the remainder."""
    lst = list(lst)
    out = []
    for n in ns:
        out.append(lst[:n])
        lst = lst[n:]
    out.append(lst)
    return out


def partition_list(bs: Sequence[bool], lst: Sequence) -> tuple[list, list]:
    """Split ``lst`` by the booleans ``bs``: (those with False, those with True)."""
    lists: tuple[list, list] = ([], [])
    for b, x in safe_zip(bs, lst):
        lists[b].append(x)
    return lists


def merge_lists(bs: Sequence[bool], l0: Sequence, l1: Sequence) -> list:
    """Inverse of :func:`partition_list`."""
    i0, i1 = iter(l0), iter(l1)
    out = [next(i1) if b else next(i0) for b in bs]
    sentinel = object()
    assert next(i0, sentinel) is sentinel and next(i1, sentinel) is sentinel
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
