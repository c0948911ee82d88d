"""funcgrad: JAX-like composable transformations (grad, vmap, jit) on NumPy and numba."""

from funcgrad import errors as errors
from funcgrad import lax as lax
from funcgrad import losses as losses
from funcgrad import metrics as metrics
from funcgrad import nn as nn
from funcgrad import numpy as numpy
from funcgrad import optim as optim
from funcgrad import random as random
from funcgrad import scipy as scipy
from funcgrad import serialization as serialization
from funcgrad import train as train
from funcgrad import tree_util as tree_util
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
from funcgrad.lax.ad_util import stop_gradient as stop_gradient

__version__ = "0.1.0"
