"""Spec case for ``debug_callback`` (funcgrad/debug.py): no outputs, only an effect.

The registry test checks that it has every rule and that impl, abstract eval and batching
agree on "no outputs"; what the callback receives (concrete values, eagerly and under
grad/vmap/jit) is checked in tests/test_debug.py. Its jvp runs the callback on the primals
and has no tangents, which finite differences cannot see, so ``diff=()``.
"""

from __future__ import annotations

from funcgrad.debug import _Callback
from tests.specs import ALL, Case, normal

SEEN: list = []
_RECORD = _Callback(lambda *a: SEEN.append(a), "record")


CASES = [
    Case(
        "debug_callback",
        lambda rng, dt: (normal(rng, (3, 2), dt), normal(rng, (), dt)),
        lambda *a, **p: [],
        params={"callback": _RECORD},
        dtypes=ALL,
        diff=(),
    ),
    Case(
        "debug_callback",
        lambda rng, dt: (normal(rng, (0, 2), dt),),
        lambda *a, **p: [],
        params={"callback": _RECORD},
        diff=(),
        name="size0",
    ),
]
