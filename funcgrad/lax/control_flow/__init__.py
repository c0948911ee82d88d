"""Control flow as primitives that carry jaxprs: ``cond`` (``cond``/``switch``), ``while``
(``while_loop``, ``fori_loop`` with traced bounds) and ``scan`` (``scan``, ``fori_loop``
with concrete bounds), each with abstract eval, impl, jvp, partial evaluation, transpose
and batching rules. One module per primitive; ``common`` holds the shared machinery. The
decisions each makes are in its module docstring."""

from funcgrad.lax.control_flow.cond import cond as cond
from funcgrad.lax.control_flow.cond import cond_p as cond_p
from funcgrad.lax.control_flow.cond import switch as switch
from funcgrad.lax.control_flow.scan import scan as scan
from funcgrad.lax.control_flow.scan import scan_p as scan_p
from funcgrad.lax.control_flow.while_loop import fori_loop as fori_loop
from funcgrad.lax.control_flow.while_loop import while_loop as while_loop
from funcgrad.lax.control_flow.while_loop import while_p as while_p
