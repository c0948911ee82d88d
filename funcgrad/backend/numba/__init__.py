"""The numba backend: jaxpr -> fused loop plan -> Python source -> compiled kernel.

``lower(closed, name)`` runs the IR passes, plans and generates source (no numba import);
``Lowering.compile()`` compiles it (numba imported then) and caches it in memory and on disk.
Modules: ``plan.py`` (fusion), ``codegen.py`` (source), ``lowering.py`` and
``opaque_rules.py`` (per-primitive rules by name), ``helpers.py`` (scalar helpers the
kernels call), ``compile.py`` (numba, flags, caches).
"""

from __future__ import annotations

import time
from typing import Any

from funcgrad.backend import passes
from funcgrad.ir import ClosedJaxpr, Jaxpr


class Lowering:
    """A jaxpr lowered to source: ``as_text()`` shows it, ``compile()`` builds the kernel."""

    def __init__(
        self, closed: ClosedJaxpr, jaxpr: Jaxpr, consts: list[Any], source: Any, generate_s: float
    ) -> None:
        self.closed = closed
        self.jaxpr = jaxpr  # flat: consts are its leading invars
        self.consts = consts
        self.source = source
        self.generate_s = generate_s

    @property
    def plan(self) -> Any:
        return self.source.plan

    def as_text(self) -> str:
        return self.source.text

    def compile(self) -> Any:
        from funcgrad.backend.numba.compile import compile_source

        return compile_source(self.source, self.jaxpr.in_avals)


def lower(closed: ClosedJaxpr, name: str = "kernel") -> Lowering:
    """Inline calls, CSE, DCE, plan and generate source for ``closed``."""
    from funcgrad.backend.numba import codegen

    t0 = time.perf_counter()
    jaxpr, consts = passes.prepare(closed)
    source = codegen.generate(jaxpr, name)
    return Lowering(closed, jaxpr, consts, source, time.perf_counter() - t0)
