"""Backends that compile jaxprs. ``funcgrad.backend.numba`` is the one funcgrad ships.

Nothing here imports a compiler at ``import funcgrad``: numba is imported on the first
compile (``funcgrad.backend.numba.compile``).
"""
