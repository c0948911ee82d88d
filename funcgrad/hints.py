"""Hints appended to the errors newcomers meet first.

Three mistakes account for most first-hour errors: a shape computed from a traced value
under ``jit`` (it has no value yet: make it a static argument), a Python list passed where an
array was meant (transformations see a list as a container of separate scalars), and
``vmap`` over an argument that has no axis to map. The functions here only build the hint
text; the code that raises decides when to add it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["list_arguments", "traced_shape_hint", "vmap_axis_hint"]


def _contains_tracer(x: Any) -> bool:
    from funcgrad.core import Tracer

    if isinstance(x, Tracer):
        return True
    return isinstance(x, list | tuple) and any(_contains_tracer(e) for e in x)


def traced_shape_hint(shape: Any) -> str:
    """For a shape argument that holds traced values: what to do instead (or "")."""
    if not _contains_tracer(shape):
        return ""
    return (
        ". The shape depends on a traced value: under jit the arguments are abstract (only "
        "their shapes and dtypes are known), so their values cannot size an array. Pass the "
        "size as a static argument (fg.jit(f, static_argnums=...) or static_argnames=...), or "
        "derive it from an array's .shape, which is known while tracing"
    )


def _is_number_list(x: Any) -> bool:
    if not isinstance(x, list | tuple) or not x or hasattr(type(x), "_fields"):
        return False
    return all(
        isinstance(e, bool | int | float | complex | np.number) or _is_number_list(e) for e in x
    )


def _list_argument_names(fun: Callable, args: tuple) -> list[str]:
    try:
        names = list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        names = []
    out = []
    for i, a in enumerate(args):
        if _is_number_list(a):
            out.append(names[i] if i < len(names) else f"argument {i}")
    return out


def list_hint(what: str, fun: Callable, args: tuple) -> str:
    """For arguments that are Python lists of numbers: pass an array (or "")."""
    names = _list_argument_names(fun, args)
    if not names:
        return ""
    which = ", ".join(repr(n) for n in names)
    return (
        f"\nhint: {what} got {which} as a Python list. Transformations treat a list as a "
        "container of separate scalars (a pytree), not as an array; pass an array instead: "
        "np.array([...]) or fnp.asarray([...])"
    )


@contextmanager
def list_arguments(what: str, fun: Callable, args: tuple) -> Iterator[None]:
    """Add :func:`list_hint` to a TypeError raised inside (e.g. ``list ** 2``)."""
    try:
        yield
    except TypeError as e:
        hint = list_hint(what, fun, args)
        if hint and e.args and isinstance(e.args[0], str) and hint not in e.args[0]:
            e.args = (e.args[0] + hint, *e.args[1:])
        raise


def vmap_axis_hint(fun: Callable, args: tuple, shape: tuple[int, ...], path: str) -> str:
    """For an argument ``vmap`` cannot map: a list to turn into an array, or a scalar to
    leave unmapped."""
    hint = list_hint("vmap", fun, args)
    if hint:
        return hint
    if shape == ():
        return (
            f"\nhint: {path} is a scalar: it has no axis to map over. To use the same value "
            "for every example, give it in_axes=None, e.g. vmap(f, in_axes=(None, 0))"
        )
    return ""
