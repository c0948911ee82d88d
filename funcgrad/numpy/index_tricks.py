"""``r_`` and ``c_``: NumPy's concatenation by indexing (``fnp.r_[1:4, 0, x]``).

Slices become ``arange`` (or ``linspace`` for a complex step: ``0:1:5j``); their bounds
must be concrete. Other entries may be traced. A leading string directive sets the axis,
the minimum rank and where 1-D entries go (``'0,2,-1'``), as NumPy's; the matrix
directives ``'r'``/``'c'`` are not supported (``np.matrix`` is not part of the API).
"""

from __future__ import annotations

from typing import Any

from funcgrad.numpy import creation, util
from funcgrad.numpy.shape import concatenate, reshape, swapaxes, transpose
from funcgrad.numpy.util import shape_of, to_operand

__all__ = ["c_", "r_"]


def _ndmin(x: Any, ndmin: int, trans1d: int) -> Any:
    """``x`` with at least ``ndmin`` axes, its own axes placed as NumPy's ``trans1d``
    rule says (``-1``: last)."""

    nd = len(shape_of(x))
    if nd >= ndmin:
        return x
    x = reshape(x, (1,) * (ndmin - nd) + tuple(shape_of(x)))
    if trans1d != -1:
        k2 = ndmin - nd
        k1 = trans1d if trans1d >= 0 else trans1d + k2 + 1
        axes = list(range(ndmin))
        x = transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])
    return x


class _Concatenator:
    def __init__(self, axis: int, ndmin: int, trans1d: int, name: str) -> None:
        self.axis, self.ndmin, self.trans1d, self.name = axis, ndmin, trans1d, name

    def __getitem__(self, key: Any) -> Any:

        if not isinstance(key, tuple):
            key = (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        objs: list[Any] = []
        kinds: list[Any] = []
        for k, item in enumerate(key):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError(f"fnp.{self.name}: special directives must be the first entry")
                if item in ("r", "c"):
                    raise ValueError(
                        f"fnp.{self.name}: the matrix directives 'r' and 'c' are not "
                        "supported (funcgrad has no np.matrix)"
                    )
                try:
                    parts = [int(p) for p in item.split(",")]
                except ValueError:
                    raise ValueError(
                        f"fnp.{self.name}: unknown directive {item!r}; give 'axis' or "
                        "'axis,ndmin[,trans1d]'"
                    ) from None
                axis = parts[0]
                if len(parts) > 1:
                    ndmin = parts[1]
                if len(parts) > 2:
                    trans1d = parts[2]
                continue
            if isinstance(item, slice):
                start = 0 if item.start is None else item.start
                step = 1 if item.step is None else item.step
                if isinstance(step, complex):
                    obj = creation.linspace(start, item.stop, int(abs(step)))
                else:
                    obj = creation.arange(start, item.stop, step)
                if ndmin > 1:
                    obj = _ndmin(obj, ndmin, -1)
                    if trans1d != -1:
                        obj = swapaxes(obj, -1, trans1d)
                kinds.append(util.dtype_of(obj))
            elif type(item) in (int, float, complex, bool):
                obj = to_operand(item, f"fnp.{self.name}")
                kinds.append(item)
            else:
                obj = to_operand(item, f"fnp.{self.name}")
                if len(shape_of(obj)) < ndmin:
                    obj = _ndmin(obj, ndmin, trans1d)
                kinds.append(util.dtype_of(obj))
            objs.append(obj)
        if not objs:
            return creation.array([])
        dtype = util.result_type(f"fnp.{self.name}", *kinds)
        objs = [_ndmin(util.convert(o, dtype), max(ndmin, 1), -1) for o in objs]
        return concatenate(objs, axis=axis)

    def __len__(self) -> int:
        return 0


r_ = _Concatenator(0, 1, -1, "r_")
c_ = _Concatenator(-1, 2, 0, "c_")
