"""Exporting functions, as ``jax.export``, to funcgrad's own format, to ONNX, and to a server.

>>> exp = fg.export.export(fg.jit(predict))(
...     fg.ShapeDtypeStruct(fg.export.symbolic_shape("b, 784"), np.float32))
>>> blob = exp.serialize()                      # versioned, pickle-free bytes
>>> fg.export.deserialize(blob).call(x)        # any batch size, in any process

- :func:`export` traces a function to an :class:`Exported` (inputs/outputs trees and types,
  symbolic dimensions allowed); :meth:`Exported.serialize` / :func:`deserialize` (and
  :func:`save_exported` / :func:`load_exported` for files) move it between processes.
- :func:`to_onnx` writes an ONNX model (needs the ``onnx`` extra).
- ``python -m funcgrad serve MODEL`` serves an exported function over HTTP
  (:mod:`funcgrad.export.server`).
"""

from __future__ import annotations

from typing import Any

from funcgrad.export._dims import Dim as Dim
from funcgrad.export._dims import symbolic_shape as symbolic_shape
from funcgrad.export._exported import Exported as Exported
from funcgrad.export._exported import ExportError as ExportError
from funcgrad.export._exported import deserialize as deserialize
from funcgrad.export._exported import export as export
from funcgrad.export._exported import load_exported as load_exported
from funcgrad.export._exported import save_exported as save_exported

__all__ = [
    "Dim",
    "ExportError",
    "Exported",
    "deserialize",
    "export",
    "load_exported",
    "save_exported",
    "symbolic_shape",
    "to_onnx",
]


def to_onnx(fun: Any, *example_args: Any, **kwargs: Any) -> Any:
    """See :func:`funcgrad.export.onnx.to_onnx` (imported lazily: needs ``onnx``)."""
    from funcgrad.export.onnx import to_onnx as impl

    return impl(fun, *example_args, **kwargs)
