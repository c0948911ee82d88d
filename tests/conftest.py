"""Test-wide settings: deterministic hypothesis profile and a shared on-disk kernel cache."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

settings.register_profile("funcgrad", max_examples=60, deadline=None, derandomize=True)
settings.load_profile("funcgrad")

# Compiled numba kernels are shared across test processes and runs.
os.environ.setdefault(
    "FUNCGRAD_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".funcgrad_cache")
)

# Most tests exist to test kernels: jit compiles synchronously (and raises LoweringError)
# unless a test opts into background compilation (tests/test_tiers.py does, explicitly).
os.environ.setdefault("FUNCGRAD_JIT_COMPILE", "sync")

# A test process that exits with background compiles pending abandons them: no detached
# compile process outlives the test run (tests that check the hand-off set it themselves).
os.environ.setdefault("FUNCGRAD_JIT_AT_EXIT", "drop")
