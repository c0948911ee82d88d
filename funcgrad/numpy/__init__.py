"""funcgrad.numpy: the NumPy API over arrays and traced values (``import funcgrad.numpy as fnp``).

Each function is a thin layer over ``funcgrad.lax`` primitives, with NumPy's names,
signatures, broadcasting and (NEP 50) dtype promotion, eagerly and under every
transformation alike. Eagerly the results are fresh NumPy arrays or NumPy scalars; inside
``jit``/``grad``/``vmap`` they are traced values. The decisions are documented in the
module docstrings: ``util`` (conversion, promotion, freshness), ``ufuncs``, ``reductions``,
``shape``, ``creation``, ``indexing``, ``products``, ``sorting``, ``linalg``.
"""

import numpy as _np

from funcgrad.numpy import fft as fft
from funcgrad.numpy import linalg as linalg
from funcgrad.numpy.creation import arange as arange
from funcgrad.numpy.creation import array as array
from funcgrad.numpy.creation import asanyarray as asanyarray
from funcgrad.numpy.creation import asarray as asarray
from funcgrad.numpy.creation import ascontiguousarray as ascontiguousarray
from funcgrad.numpy.creation import copy as copy
from funcgrad.numpy.creation import empty as empty
from funcgrad.numpy.creation import empty_like as empty_like
from funcgrad.numpy.creation import eye as eye
from funcgrad.numpy.creation import full as full
from funcgrad.numpy.creation import full_like as full_like
from funcgrad.numpy.creation import identity as identity
from funcgrad.numpy.creation import indices as indices
from funcgrad.numpy.creation import ix_ as ix_
from funcgrad.numpy.creation import linspace as linspace
from funcgrad.numpy.creation import logspace as logspace
from funcgrad.numpy.creation import meshgrid as meshgrid
from funcgrad.numpy.creation import ones as ones
from funcgrad.numpy.creation import ones_like as ones_like
from funcgrad.numpy.creation import tri as tri
from funcgrad.numpy.creation import tril as tril
from funcgrad.numpy.creation import tril_indices as tril_indices
from funcgrad.numpy.creation import triu as triu
from funcgrad.numpy.creation import triu_indices as triu_indices
from funcgrad.numpy.creation import zeros as zeros
from funcgrad.numpy.creation import zeros_like as zeros_like
from funcgrad.numpy.gradient import gradient as gradient
from funcgrad.numpy.index_tricks import c_ as c_
from funcgrad.numpy.index_tricks import r_ as r_
from funcgrad.numpy.indexing import NonConcreteBooleanIndexError as NonConcreteBooleanIndexError
from funcgrad.numpy.indexing import argwhere as argwhere
from funcgrad.numpy.indexing import at as at
from funcgrad.numpy.indexing import flatnonzero as flatnonzero
from funcgrad.numpy.indexing import getitem as _getitem  # noqa: F401 - Tracer.__getitem__ calls it
from funcgrad.numpy.indexing import isin as isin
from funcgrad.numpy.indexing import nonzero as nonzero
from funcgrad.numpy.indexing import take as take
from funcgrad.numpy.indexing import take_along_axis as take_along_axis
from funcgrad.numpy.indexing import unravel_index as unravel_index
from funcgrad.numpy.products import dot as dot
from funcgrad.numpy.products import einsum as einsum
from funcgrad.numpy.products import inner as inner
from funcgrad.numpy.products import matmul as matmul
from funcgrad.numpy.products import outer as outer
from funcgrad.numpy.products import tensordot as tensordot
from funcgrad.numpy.products import vdot as vdot
from funcgrad.numpy.products import vecdot as vecdot
from funcgrad.numpy.reductions import all as all
from funcgrad.numpy.reductions import amax as amax
from funcgrad.numpy.reductions import amin as amin
from funcgrad.numpy.reductions import any as any
from funcgrad.numpy.reductions import argmax as argmax
from funcgrad.numpy.reductions import argmin as argmin
from funcgrad.numpy.reductions import average as average
from funcgrad.numpy.reductions import bincount as bincount
from funcgrad.numpy.reductions import count_nonzero as count_nonzero
from funcgrad.numpy.reductions import cumprod as cumprod
from funcgrad.numpy.reductions import cumproduct as cumproduct
from funcgrad.numpy.reductions import cumsum as cumsum
from funcgrad.numpy.reductions import cumulative_prod as cumulative_prod
from funcgrad.numpy.reductions import cumulative_sum as cumulative_sum
from funcgrad.numpy.reductions import max as max
from funcgrad.numpy.reductions import mean as mean
from funcgrad.numpy.reductions import median as median
from funcgrad.numpy.reductions import min as min
from funcgrad.numpy.reductions import nanargmax as nanargmax
from funcgrad.numpy.reductions import nanargmin as nanargmin
from funcgrad.numpy.reductions import nancumprod as nancumprod
from funcgrad.numpy.reductions import nancumsum as nancumsum
from funcgrad.numpy.reductions import nanmax as nanmax
from funcgrad.numpy.reductions import nanmean as nanmean
from funcgrad.numpy.reductions import nanmin as nanmin
from funcgrad.numpy.reductions import nanprod as nanprod
from funcgrad.numpy.reductions import nanstd as nanstd
from funcgrad.numpy.reductions import nansum as nansum
from funcgrad.numpy.reductions import nanvar as nanvar
from funcgrad.numpy.reductions import percentile as percentile
from funcgrad.numpy.reductions import prod as prod
from funcgrad.numpy.reductions import product as product
from funcgrad.numpy.reductions import ptp as ptp
from funcgrad.numpy.reductions import quantile as quantile
from funcgrad.numpy.reductions import std as std
from funcgrad.numpy.reductions import sum as sum
from funcgrad.numpy.reductions import var as var
from funcgrad.numpy.shape import append as append
from funcgrad.numpy.shape import array_split as array_split
from funcgrad.numpy.shape import astype as astype
from funcgrad.numpy.shape import atleast_1d as atleast_1d
from funcgrad.numpy.shape import atleast_2d as atleast_2d
from funcgrad.numpy.shape import atleast_3d as atleast_3d
from funcgrad.numpy.shape import broadcast_arrays as broadcast_arrays
from funcgrad.numpy.shape import broadcast_shapes as broadcast_shapes
from funcgrad.numpy.shape import broadcast_to as broadcast_to
from funcgrad.numpy.shape import column_stack as column_stack
from funcgrad.numpy.shape import concat as concat
from funcgrad.numpy.shape import concatenate as concatenate
from funcgrad.numpy.shape import cross as cross
from funcgrad.numpy.shape import diag as diag
from funcgrad.numpy.shape import diagonal as diagonal
from funcgrad.numpy.shape import diff as diff
from funcgrad.numpy.shape import dsplit as dsplit
from funcgrad.numpy.shape import dstack as dstack
from funcgrad.numpy.shape import expand_dims as expand_dims
from funcgrad.numpy.shape import flip as flip
from funcgrad.numpy.shape import fliplr as fliplr
from funcgrad.numpy.shape import flipud as flipud
from funcgrad.numpy.shape import hsplit as hsplit
from funcgrad.numpy.shape import hstack as hstack
from funcgrad.numpy.shape import kron as kron
from funcgrad.numpy.shape import matrix_transpose as matrix_transpose
from funcgrad.numpy.shape import moveaxis as moveaxis
from funcgrad.numpy.shape import ndim as ndim
from funcgrad.numpy.shape import pad as pad
from funcgrad.numpy.shape import permute_dims as permute_dims
from funcgrad.numpy.shape import ravel as ravel
from funcgrad.numpy.shape import repeat as repeat
from funcgrad.numpy.shape import reshape as reshape
from funcgrad.numpy.shape import roll as roll
from funcgrad.numpy.shape import rollaxis as rollaxis
from funcgrad.numpy.shape import rot90 as rot90
from funcgrad.numpy.shape import row_stack as row_stack
from funcgrad.numpy.shape import shape as shape
from funcgrad.numpy.shape import size as size
from funcgrad.numpy.shape import split as split
from funcgrad.numpy.shape import squeeze as squeeze
from funcgrad.numpy.shape import stack as stack
from funcgrad.numpy.shape import swapaxes as swapaxes
from funcgrad.numpy.shape import tile as tile
from funcgrad.numpy.shape import trace as trace
from funcgrad.numpy.shape import transpose as transpose
from funcgrad.numpy.shape import unstack as unstack
from funcgrad.numpy.shape import vsplit as vsplit
from funcgrad.numpy.shape import vstack as vstack
from funcgrad.numpy.sorting import argpartition as argpartition
from funcgrad.numpy.sorting import argsort as argsort
from funcgrad.numpy.sorting import interp as interp
from funcgrad.numpy.sorting import partition as partition
from funcgrad.numpy.sorting import searchsorted as searchsorted
from funcgrad.numpy.sorting import sort as sort
from funcgrad.numpy.sorting import unique as unique
from funcgrad.numpy.ufuncs import abs as abs
from funcgrad.numpy.ufuncs import absolute as absolute
from funcgrad.numpy.ufuncs import acos as acos
from funcgrad.numpy.ufuncs import acosh as acosh
from funcgrad.numpy.ufuncs import add as add
from funcgrad.numpy.ufuncs import allclose as allclose
from funcgrad.numpy.ufuncs import angle as angle
from funcgrad.numpy.ufuncs import arccos as arccos
from funcgrad.numpy.ufuncs import arccosh as arccosh
from funcgrad.numpy.ufuncs import arcsin as arcsin
from funcgrad.numpy.ufuncs import arcsinh as arcsinh
from funcgrad.numpy.ufuncs import arctan as arctan
from funcgrad.numpy.ufuncs import arctan2 as arctan2
from funcgrad.numpy.ufuncs import arctanh as arctanh
from funcgrad.numpy.ufuncs import around as around
from funcgrad.numpy.ufuncs import array_equal as array_equal
from funcgrad.numpy.ufuncs import array_equiv as array_equiv
from funcgrad.numpy.ufuncs import asin as asin
from funcgrad.numpy.ufuncs import asinh as asinh
from funcgrad.numpy.ufuncs import atan as atan
from funcgrad.numpy.ufuncs import atan2 as atan2
from funcgrad.numpy.ufuncs import atanh as atanh
from funcgrad.numpy.ufuncs import bitwise_and as bitwise_and
from funcgrad.numpy.ufuncs import bitwise_invert as bitwise_invert
from funcgrad.numpy.ufuncs import bitwise_left_shift as bitwise_left_shift
from funcgrad.numpy.ufuncs import bitwise_not as bitwise_not
from funcgrad.numpy.ufuncs import bitwise_or as bitwise_or
from funcgrad.numpy.ufuncs import bitwise_right_shift as bitwise_right_shift
from funcgrad.numpy.ufuncs import bitwise_xor as bitwise_xor
from funcgrad.numpy.ufuncs import cbrt as cbrt
from funcgrad.numpy.ufuncs import ceil as ceil
from funcgrad.numpy.ufuncs import clip as clip
from funcgrad.numpy.ufuncs import conj as conj
from funcgrad.numpy.ufuncs import conjugate as conjugate
from funcgrad.numpy.ufuncs import copysign as copysign
from funcgrad.numpy.ufuncs import cos as cos
from funcgrad.numpy.ufuncs import cosh as cosh
from funcgrad.numpy.ufuncs import deg2rad as deg2rad
from funcgrad.numpy.ufuncs import degrees as degrees
from funcgrad.numpy.ufuncs import divide as divide
from funcgrad.numpy.ufuncs import divmod as divmod
from funcgrad.numpy.ufuncs import equal as equal
from funcgrad.numpy.ufuncs import exp as exp
from funcgrad.numpy.ufuncs import exp2 as exp2
from funcgrad.numpy.ufuncs import expm1 as expm1
from funcgrad.numpy.ufuncs import fabs as fabs
from funcgrad.numpy.ufuncs import fix as fix
from funcgrad.numpy.ufuncs import float_power as float_power
from funcgrad.numpy.ufuncs import floor as floor
from funcgrad.numpy.ufuncs import floor_divide as floor_divide
from funcgrad.numpy.ufuncs import fmax as fmax
from funcgrad.numpy.ufuncs import fmin as fmin
from funcgrad.numpy.ufuncs import fmod as fmod
from funcgrad.numpy.ufuncs import greater as greater
from funcgrad.numpy.ufuncs import greater_equal as greater_equal
from funcgrad.numpy.ufuncs import heaviside as heaviside
from funcgrad.numpy.ufuncs import hypot as hypot
from funcgrad.numpy.ufuncs import imag as imag
from funcgrad.numpy.ufuncs import invert as invert
from funcgrad.numpy.ufuncs import isclose as isclose
from funcgrad.numpy.ufuncs import iscomplex as iscomplex
from funcgrad.numpy.ufuncs import isfinite as isfinite
from funcgrad.numpy.ufuncs import isinf as isinf
from funcgrad.numpy.ufuncs import isnan as isnan
from funcgrad.numpy.ufuncs import isneginf as isneginf
from funcgrad.numpy.ufuncs import isposinf as isposinf
from funcgrad.numpy.ufuncs import isreal as isreal
from funcgrad.numpy.ufuncs import left_shift as left_shift
from funcgrad.numpy.ufuncs import less as less
from funcgrad.numpy.ufuncs import less_equal as less_equal
from funcgrad.numpy.ufuncs import log as log
from funcgrad.numpy.ufuncs import log1p as log1p
from funcgrad.numpy.ufuncs import log2 as log2
from funcgrad.numpy.ufuncs import log10 as log10
from funcgrad.numpy.ufuncs import logaddexp as logaddexp
from funcgrad.numpy.ufuncs import logaddexp2 as logaddexp2
from funcgrad.numpy.ufuncs import logical_and as logical_and
from funcgrad.numpy.ufuncs import logical_not as logical_not
from funcgrad.numpy.ufuncs import logical_or as logical_or
from funcgrad.numpy.ufuncs import logical_xor as logical_xor
from funcgrad.numpy.ufuncs import maximum as maximum
from funcgrad.numpy.ufuncs import minimum as minimum
from funcgrad.numpy.ufuncs import mod as mod
from funcgrad.numpy.ufuncs import multiply as multiply
from funcgrad.numpy.ufuncs import nan_to_num as nan_to_num
from funcgrad.numpy.ufuncs import negative as negative
from funcgrad.numpy.ufuncs import nextafter as nextafter
from funcgrad.numpy.ufuncs import not_equal as not_equal
from funcgrad.numpy.ufuncs import positive as positive
from funcgrad.numpy.ufuncs import pow as pow
from funcgrad.numpy.ufuncs import power as power
from funcgrad.numpy.ufuncs import rad2deg as rad2deg
from funcgrad.numpy.ufuncs import radians as radians
from funcgrad.numpy.ufuncs import real as real
from funcgrad.numpy.ufuncs import real_if_close as real_if_close
from funcgrad.numpy.ufuncs import reciprocal as reciprocal
from funcgrad.numpy.ufuncs import remainder as remainder
from funcgrad.numpy.ufuncs import right_shift as right_shift
from funcgrad.numpy.ufuncs import rint as rint
from funcgrad.numpy.ufuncs import round as round
from funcgrad.numpy.ufuncs import select as select
from funcgrad.numpy.ufuncs import sign as sign
from funcgrad.numpy.ufuncs import signbit as signbit
from funcgrad.numpy.ufuncs import sin as sin
from funcgrad.numpy.ufuncs import sinc as sinc
from funcgrad.numpy.ufuncs import sinh as sinh
from funcgrad.numpy.ufuncs import sqrt as sqrt
from funcgrad.numpy.ufuncs import square as square
from funcgrad.numpy.ufuncs import subtract as subtract
from funcgrad.numpy.ufuncs import tan as tan
from funcgrad.numpy.ufuncs import tanh as tanh
from funcgrad.numpy.ufuncs import true_divide as true_divide
from funcgrad.numpy.ufuncs import trunc as trunc
from funcgrad.numpy.ufuncs import where as where

# -- constants
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
euler_gamma = _np.euler_gamma
newaxis = None

# -- dtypes and dtype utilities (NumPy's own objects)
from numpy import can_cast as can_cast  # noqa: E402
from numpy import complexfloating as complexfloating  # noqa: E402
from numpy import dtype as dtype  # noqa: E402
from numpy import finfo as finfo  # noqa: E402
from numpy import floating as floating  # noqa: E402
from numpy import generic as generic  # noqa: E402
from numpy import iinfo as iinfo  # noqa: E402
from numpy import inexact as inexact  # noqa: E402
from numpy import integer as integer  # noqa: E402
from numpy import issubdtype as issubdtype  # noqa: E402
from numpy import ndarray as ndarray  # noqa: E402
from numpy import number as number  # noqa: E402
from numpy import promote_types as promote_types  # noqa: E402
from numpy import signedinteger as signedinteger  # noqa: E402
from numpy import unsignedinteger as unsignedinteger  # noqa: E402

# Concrete scalar types cast traced values too (``fnp.int64(tracer)``, as ``jnp.int64``).
from funcgrad.numpy.scalar_types import scalar_type as _scalar_type  # noqa: E402

bool = _scalar_type(_np.bool_, "bool")
bool_ = _scalar_type(_np.bool_, "bool_")
complex64 = _scalar_type(_np.complex64)
complex128 = _scalar_type(_np.complex128)
double = _scalar_type(_np.double)
float16 = _scalar_type(_np.float16)
float32 = _scalar_type(_np.float32)
float64 = _scalar_type(_np.float64)
half = _scalar_type(_np.half)
int8 = _scalar_type(_np.int8)
int16 = _scalar_type(_np.int16)
int32 = _scalar_type(_np.int32)
int64 = _scalar_type(_np.int64)
int_ = _scalar_type(_np.int_)
intp = _scalar_type(_np.intp)
single = _scalar_type(_np.single)
uint = _scalar_type(_np.uint)
uint8 = _scalar_type(_np.uint8)
uint16 = _scalar_type(_np.uint16)
uint32 = _scalar_type(_np.uint32)
uint64 = _scalar_type(_np.uint64)
float_ = float64
complex_ = complex128


def result_type(*arrays_and_dtypes):
    """NumPy 2's result dtype (NEP 50; works on traced values too)."""
    from funcgrad.core import Tracer as _Tracer

    return _np.result_type(*(a.dtype if isinstance(a, _Tracer) else a for a in arrays_and_dtypes))


def isscalar(element):
    """Whether ``element`` is a scalar (a Python or NumPy number, not an array)."""
    return _np.isscalar(element)


def iscomplexobj(x):
    """Whether ``x`` has a complex dtype."""
    from funcgrad.dtypes import dtype_of as _dtype_of

    return _dtype_of(x).kind == "c"
