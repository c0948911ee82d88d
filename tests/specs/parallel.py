"""Spec cases for the collectives (funcgrad/lax/parallel.py) over the process axis.

The test process is a world of one process (no MPI launcher), where the collectives have
closed forms: a sum, maximum or minimum over one instance is the value itself, a gather
stacks one block, the process index is 0. Their semantics over several instances are
checked against NumPy under ``vmap(axis_name=...)`` in ``tests/test_collectives.py`` and
across MPI processes in ``tests/test_distributed.py``.
"""

from __future__ import annotations

import numpy as np

from funcgrad.lax.parallel import ProcessAxis
from tests.specs import FLOATS, INTS, NUMBERS, Case, normal

AXIS = {"axis_name": ProcessAxis("processes")}


def _one(shape):
    return lambda rng, dt: (normal(rng, shape, dt),)


def _identity(x, **_):
    return np.array(x, copy=True)


def _gather(x, *, axis, tiled, **_):
    return np.array(x, copy=True) if tiled else np.expand_dims(x, axis)


CASES = [
    Case("psum", _one((3, 4)), _identity, AXIS, dtypes=NUMBERS, linear=((0,),)),
    Case("psum", _one(()), _identity, AXIS, name="scalar", linear=((0,),)),
    Case("pmax", _one((2, 3)), _identity, AXIS, dtypes=NUMBERS),
    Case("pmin", _one((5,)), _identity, AXIS, dtypes=NUMBERS),
    Case(
        "all_gather",
        _one((2, 3)),
        _gather,
        dict(AXIS, axis=1, tiled=False, axis_size=1),
        dtypes=FLOATS + INTS,
        linear=((0,),),
    ),
    Case(
        "all_gather",
        _one((2, 3)),
        _gather,
        dict(AXIS, axis=0, tiled=True, axis_size=1),
        name="tiled",
        linear=((0,),),
    ),
    Case(
        "axis_index",
        lambda rng, dt: (),
        lambda **_: np.asarray(0, np.int32),
        AXIS,
        dtypes=(np.int32,),
        diff=(),
        batch=False,
    ),
]
