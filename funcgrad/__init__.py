"""funcgrad: JAX-like composable transformations (grad, vmap, jit) on NumPy and numba.

The transformations and ``lax`` load with the package; the libraries built on them
(``numpy``, ``nn``, ``random``, ``optim``, ``train``, ...) load on first attribute access
(``fg.numpy``) or import, so ``import funcgrad.lax`` does not pull them in.
"""

from __future__ import annotations

import importlib
from typing import Any

from funcgrad import debug as debug
from funcgrad import errors as errors
from funcgrad import lax as lax
from funcgrad import tree_util as tree_util
from funcgrad.abstract import ShapeDtypeStruct as ShapeDtypeStruct
from funcgrad.abstract import eval_shape as eval_shape
from funcgrad.ad_checkpoint import checkpoint as checkpoint
from funcgrad.ad_checkpoint import checkpoint_policies as checkpoint_policies
from funcgrad.ad_checkpoint import remat as remat
from funcgrad.api import block_until_ready as block_until_ready
from funcgrad.api import grad as grad
from funcgrad.api import hessian as hessian
from funcgrad.api import jacfwd as jacfwd
from funcgrad.api import jacrev as jacrev
from funcgrad.api import jit as jit
from funcgrad.api import jvp as jvp
from funcgrad.api import linearize as linearize
from funcgrad.api import make_jaxpr as make_jaxpr
from funcgrad.api import value_and_grad as value_and_grad
from funcgrad.api import vjp as vjp
from funcgrad.api import vmap as vmap
from funcgrad.custom_derivatives import custom_jvp as custom_jvp
from funcgrad.custom_derivatives import custom_vjp as custom_vjp
from funcgrad.lax.stop_gradient import stop_gradient as stop_gradient

#: The one place the version is written: pyproject.toml reads it (``dynamic``), and the
#: kernel cache fingerprint includes it.
__version__ = "0.1.0"

#: Subpackages loaded on first use (PEP 562).
_LAZY_SUBMODULES = frozenset(
    {
        "distributed",
        "export",
        "losses",
        "metrics",
        "nn",
        "numpy",
        "optim",
        "random",
        "scipy",
        "serialization",
        "train",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"funcgrad.{name}")
    raise AttributeError(f"module 'funcgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES)
