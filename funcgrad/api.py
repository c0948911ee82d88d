"""The public transformations: each flattens pytrees, calls a ``*_flat`` core, unflattens."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from funcgrad import tree_util
from funcgrad.api_util import arg_names, flatten_fun
from funcgrad.core import shaped_aval
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from funcgrad.ir import ClosedJaxpr


def _split_static(args: tuple, static_argnums: Sequence[int]) -> tuple[tuple, Callable]:
    """Separate static arguments (closed over) from the traced ones."""
    static = {i % len(args) if args else i for i in static_argnums}
    dyn = tuple(a for i, a in enumerate(args) if i not in static)

    def rebuild(dyn_args: Sequence[Any]) -> list[Any]:
        it = iter(dyn_args)
        return [args[i] if i in static else next(it) for i in range(len(args))]

    return dyn, rebuild


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = ()) -> Callable[..., ClosedJaxpr]:
    """Trace ``fun`` and return its jaxpr; ``str()`` of the result prints JAX's text form.

    >>> make_jaxpr(lambda x: fnp.sin(x) * 2.0)(np.ones(3, np.float32))
    { lambda ; a:f32[3]. let b:f32[3] = sin a; c:f32[3] = mul b 2.0:f32[] in (c,) }
    """
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)

    @functools.wraps(fun)
    def make(*args: Any, **kwargs: Any) -> ClosedJaxpr:
        dyn, rebuild = _split_static(args, static_argnums)
        flat_args, in_tree = tree_util.tree_flatten((dyn, kwargs))

        def with_statics(*dyn_args: Any, **kw: Any) -> Any:
            return fun(*rebuild(dyn_args), **kw)

        flat_fun, _ = flatten_fun(with_statics, in_tree)
        names = arg_names(fun, dyn, kwargs) if not static_argnums else None
        return trace_to_jaxpr(flat_fun, [shaped_aval(x) for x in flat_args], names)

    return make
