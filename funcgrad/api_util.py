"""Helpers shared by the public transformations: flattening functions, argument names."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from funcgrad import tree_util
from funcgrad.tree_util import PyTreeDef


class Store:
    """A box set once after tracing: how a flat function hands back its output treedef."""

    __slots__ = ("val",)

    def __init__(self) -> None:
        self.val: Any = None

    def set(self, val: Any) -> None:
        self.val = val


def flatten_fun(fun: Callable, in_tree: PyTreeDef) -> tuple[Callable, Store]:
    """``fun`` over pytrees -> a function over flat leaves that returns flat leaves."""
    store = Store()

    def flat_fun(*args_flat: Any) -> list[Any]:
        args, kwargs = tree_util.tree_unflatten(in_tree, args_flat)
        out = fun(*args, **kwargs)
        out_flat, out_tree = tree_util.tree_flatten(out)
        store.set(out_tree)
        return out_flat

    return flat_fun, store


def arg_names(fun: Callable, args: Sequence[Any], kwargs: dict | None = None) -> list[str]:
    """A readable name per flat leaf of ``(args, kwargs)``, e.g. ``params['w']``."""
    kwargs = kwargs or {}
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i, a in enumerate(args):
        if i < len(params) and params[i].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            base = params[i].name
        elif params and params[-1].kind == inspect.Parameter.VAR_POSITIONAL:
            base = f"{params[-1].name}[{i}]"
        else:
            base = f"args[{i}]"
        names.extend(base + tree_util.keystr(p) for p, _ in _paths(a))
    for k in sorted(kwargs):
        names.extend(k + tree_util.keystr(p) for p, _ in _paths(kwargs[k]))
    return names


def _paths(tree: Any) -> list:
    return tree_util.tree_flatten_with_path(tree)[0]


def fun_name(fun: Callable) -> str:
    return getattr(fun, "__name__", None) or type(fun).__name__
