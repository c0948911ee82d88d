"""funcgrad.lax: the primitives' own functions, under JAX's ``lax`` names."""

from funcgrad.lax.elementwise import add as add
from funcgrad.lax.elementwise import cos as cos
from funcgrad.lax.elementwise import exp as exp
from funcgrad.lax.elementwise import mul as mul
from funcgrad.lax.elementwise import neg as neg
from funcgrad.lax.elementwise import sin as sin
from funcgrad.lax.elementwise import sub as sub
from funcgrad.lax.reductions import reduce_sum as reduce_sum
from funcgrad.lax.shape import broadcast_in_dim as broadcast_in_dim
from funcgrad.lax.shape import broadcast_to as broadcast_to
from funcgrad.lax.shape import full as full
from funcgrad.lax.shape import reshape as reshape
from funcgrad.lax.shape import transpose as transpose
