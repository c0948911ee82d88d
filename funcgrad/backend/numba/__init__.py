"""The numba backend: jaxpr -> fused loop plan -> Python source -> compiled kernel.

``lower(closed, name)`` runs the IR passes, plans and generates source (no numba import);
``Lowering.compile()`` compiles it (numba imported then) and caches it in memory and on disk.

Modules, in pipeline order:

- ``funcgrad/backend/passes.py``: inline nested calls (``jit``, ``checkpoint``,
  ``custom_jvp_call``, ``custom_vjp_call``), CSE, fold ``transpose(dot_general)``, DCE.
- ``sizes.py``: sizes as expressions of the inputs' shapes (shape-generic kernels).
- ``plan.py``: fusion into loop nests (elementwise + reductions), views (index maps of
  broadcast/transpose/slice/rev/unit reshapes), opaque steps.
- ``codegen.py``: one Python function per jaxpr, comment per equation, long bodies split
  into chunk functions; ``nest.py`` writes each loop nest (axis collapsing, loop-invariant
  values hoisted, single-use values inlined); ``syntax.py`` the pieces both write (typed
  literals, dtype and shape expressions).
- ``lowering.py`` (elementwise, views, reductions) and ``opaque_rules.py`` (dot, sort,
  gather/scatter, cumulative, pad, ...): per-primitive rules keyed by primitive *name*;
  ``control_flow_rules.py`` adds cond/while/scan; ``helpers.py`` scalar helpers;
  ``mathlib.py`` the vectorizable polynomial math.
- ``compile.py``: the lazy numba import, the one ``njit`` wrapper, memory and disk caches;
  ``buffers.py``: caller-allocated large outputs and their pool.

Decisions (each explained where it is implemented):

- Kernels take C-contiguous, native-byte-order arrays with the exact traced dtypes; the
  caller converts anything else (``jit._kernel_arg``), and numba's dispatcher is frozen
  after the one explicit-signature compile. Sizes are read from the inputs' shapes
  (``sizes.py``), so signatures that differ only in sizes regenerate the same source and
  share the kernel; ``Lowering.specialized_on`` lists the decisions taken on sizes.
- Results are fresh arrays: an output that is an input (or another output) is copied.
- Arrays of 4 MiB and more (results and temporaries of the entry function) are parameters
  of the kernel, allocated by the caller from a pool that recycles blocks no live array
  refers to (``buffers.py``): fresh pages cost more than a fused kernel's arithmetic.
- sin/cos range checks run in a separate loop before the nest whenever their argument is
  cheap to recompute there (reads and arithmetic), so the main loop stays vectorizable.
- On AVX-512 machines LLVM may use 512-bit vectors (``compile._prefer_wide_vectors``).
- float32 stays float32 (typed literals, no float64 promotion); narrow integers are cast
  back after numba's int64 arithmetic; float32 sums and products accumulate in float64.
- Transcendentals use ``mathlib`` (vectorizable); sin/cos rerun a nest with libm if any
  argument lies beyond the polynomials' range, so results never depend on it.
- ``dot_general``: BLAS from ``M*N*K >= DOT_BLAS_MIN`` (4096, measured by
  ``benchmarks/calibrate_backend.py``), an inlined loop nest below (and for integers).
  BLAS is called through the ``fg_gemm``/``fg_gemv`` helpers (numba's ``numba_xxgemm``
  entry point, transposes as flags), not numba's ``np.dot`` overload, which costs ~0.3 s
  of compile time per call site.
- Threads (``prange``) are opt-in with ``FUNCGRAD_NUM_THREADS`` (see
  ``lowering.parallel_threshold`` for the measurement behind that default).
- numba calls whose ``@overload`` implementations are slow to compile on first use
  (``np.transpose(x, axes)``, ``np.full``, ``np.ascontiguousarray``) are avoided in
  generated code: explicit loops instead. So are slice and sub-array assignments
  (``out[:, a:b] = x``, ``out[i] = y``): 3 s of compile time on first use, ~0.2 s per
  further site (a small CNN train step: 19 s -> 10 s).
- Function bodies over ``codegen.SPLIT_MIN_LINES`` code lines are split into chunk
  functions: numba's compile time is superlinear in a function's length.
- Any failure becomes a ``LoweringError`` naming the primitive and its operand types
  (numba errors are attributed by compiling the kernel's equations one at a time).
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

    @property
    def specialized_on(self) -> list[str]:
        """Why this kernel depends on sizes beyond ranks and dtypes (BLAS cut-over,
        caller-allocated buffers, threads), for the compile log; empty: any sizes on the
        same side of every decision share it."""
        return self.source.specialized_on

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
