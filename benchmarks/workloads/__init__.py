"""Benchmark workloads: each module defines ``WORKLOADS: list[Workload]``.

A workload's ``setup(quick)`` returns ``{implementation name: zero-argument callable}``;
every callable computes the same result (a pytree of arrays or tensors). Peers that are not
installed are simply left out (use :func:`optional_import`). The reference implementation
(``numpy`` unless said otherwise) is what the others are checked against.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The peers a workload may compare against, when installed.
PEERS = ("jax", "torch", "autograd")


@dataclass
class Workload:
    name: str
    description: str
    setup: Callable[[bool], dict[str, Callable[[], Any]]]
    reference: str = "numpy"
    rtol: float = 1e-4
    atol: float = 1e-5
    peers: tuple[str, ...] = field(default=PEERS)


def optional_import(name: str) -> Any:
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken optional peer is just absent
        return None


def to_numpy_tree(x: Any) -> list[np.ndarray]:
    """Flatten nested tuples/lists/dicts (sorted keys) of arrays/tensors to NumPy leaves."""
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in to_numpy_tree(x[k])]
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in to_numpy_tree(item)]
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    return [np.asarray(x)]
