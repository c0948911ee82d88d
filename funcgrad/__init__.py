"""funcgrad: JAX-like composable transformations (grad, vmap, jit) on NumPy and numba."""

from funcgrad import errors as errors
from funcgrad import lax as lax
from funcgrad import numpy as numpy
from funcgrad import tree_util as tree_util
from funcgrad.api import make_jaxpr as make_jaxpr
from funcgrad.api import vmap as vmap

__version__ = "0.1.0"
