"""Lowering of the control-flow primitives ``cond``, ``while`` and ``scan``.

Each sub-jaxpr becomes its own function in the kernel's module (``ctx.subfunction``:
planned and fused like any jaxpr, compiled by numba together with the kernel), and the
branch or loop itself is plain Python control flow inside the kernel. So a 10,000-step
``scan`` is one compiled ``for`` loop calling the compiled body: compile time does not grow
with the trip count, and nothing returns to Python between steps.

Conventions (those of every opaque rule): operands and results are arrays (0-d arrays for
scalars). A body function returns fresh arrays (the codegen copies any output that is one
of its inputs), so carries pass from step to step without copies; each step's ``y`` is
written into a preallocated ``(length, ...)`` array; a loop that may run zero times copies
its initial carry, so results never alias the kernel's inputs. ``scan``'s ``unroll`` is
ignored (numba/LLVM unrolls small bodies itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from funcgrad.backend.numba.lowering import opaque
from funcgrad.backend.numba.sizes import prod
from funcgrad.ir import Literal


def _names(ctx: Any, operands: Sequence[Any]) -> list[str]:
    """One name per operand (literals are bound once, before any loop)."""
    names = []
    for x in operands:
        if type(x) is Literal:
            name = ctx.fresh("k")
            ctx.emit(f"{name} = {ctx.arg(x)}")
            names.append(name)
        else:
            names.append(ctx.arg(x))
    return names


def _call(ctx: Any, fname: str, args: Sequence[str], targets: Sequence[str]) -> None:
    """``targets = fname(*args)`` (one target: the single result; none: no call)."""
    if not targets:
        return
    call = f"{fname}({', '.join(args)})"
    ctx.emit(f"{', '.join(targets)} = {call}")


@opaque("cond")
def _cond(ctx, index, *operands, branches):
    args = _names(ctx, operands)
    fnames = [ctx.subfunction(b, f"cond_branch{k}") for k, b in enumerate(branches)]
    if len(fnames) == 1:
        _call(ctx, fnames[0], args, ctx.outs)
        return
    idx = ctx.fresh("idx")
    ctx.emit(f"{idx} = {ctx.scalar(index)}")
    last = len(fnames) - 1
    for k, fname in enumerate(fnames):
        if k == 0:
            ctx.emit(f"if {idx} <= 0:")
        elif k == last:
            ctx.emit("else:")
        else:
            ctx.emit(f"elif {idx} == {k}:")
        with ctx.indent():
            _call(ctx, fname, args, ctx.outs)


@opaque("while")
def _while(ctx, *operands, cond_jaxpr, cond_nconsts, body_jaxpr, body_nconsts):
    args = _names(ctx, operands)
    cc, bc, init = (
        args[:cond_nconsts],
        args[cond_nconsts : cond_nconsts + body_nconsts],
        args[cond_nconsts + body_nconsts :],
    )
    cond_f = ctx.subfunction(cond_jaxpr, "while_cond")
    body_f = ctx.subfunction(body_jaxpr, "while_body")
    carry = [ctx.fresh("c") for _ in init]
    for c, x in zip(carry, init, strict=True):
        ctx.emit(f"{c} = {x}.copy()")  # the loop may run zero times
    ctx.emit(f"while {cond_f}({', '.join(cc + carry)})[()]:")
    with ctx.indent():
        if carry:
            _call(ctx, body_f, bc + carry, carry)
        else:
            ctx.emit("pass")
    for out, c in zip(ctx.outs, carry, strict=True):
        ctx.emit(f"{out} = {c}")


@opaque("scan")
def _scan(ctx, *operands, jaxpr, length, reverse, linear, unroll, num_consts, num_carry):
    args = _names(ctx, operands)
    consts, init, xs = (
        args[:num_consts],
        args[num_consts : num_consts + num_carry],
        args[num_consts + num_carry :],
    )
    x_avals = ctx.in_avals[num_consts + num_carry :]
    y_outs = ctx.outs[num_carry:]
    y_avals = ctx.out_avals[num_carry:]
    # The trip count as the stacked operands' leading size: read from their shapes when
    # it is one of the kernel's size symbols (a new sequence length reuses the kernel).
    stacked = [a.shape[0] for a in [*x_avals, *y_avals] if a.ndim]
    if stacked and stacked[0] == length:
        length = stacked[0]
    for y, a in zip(y_outs, y_avals, strict=True):
        ctx.empty(y, a.shape, a.dtype)
    if length == 0 or not jaxpr.jaxpr.outvars:
        for out, c in zip(ctx.outs[:num_carry], init, strict=True):
            ctx.emit(f"{out} = {c}.copy()")
        return
    body_f = ctx.subfunction(jaxpr, "scan_body")
    carry = [ctx.fresh("c") for _ in init]
    for c, x in zip(carry, init, strict=True):
        ctx.emit(f"{c} = {x}")
    flat = {}  # each stacked output as (length, elements per step)
    for y, a in zip(y_outs, y_avals, strict=True):
        if a.ndim > 1:
            flat[y] = ctx.fresh(y + "_r")
            ctx.emit(f"{flat[y]} = {y}.reshape(({length}, {prod(a.shape[1:])}))")
    step = ctx.fresh("step")
    ctx.emit(f"for {step} in range({length}):")
    with ctx.indent():
        i = step
        if reverse:
            i = ctx.fresh("i")
            ctx.emit(f"{i} = {length - 1} - {step}")
        slices = [
            f"{x}[{i}]" if a.ndim > 1 else f"{x}[{i}:{i} + 1].reshape(())"
            for x, a in zip(xs, x_avals, strict=True)
        ]
        ys = [ctx.fresh("y") for _ in y_outs]
        _call(ctx, body_f, consts + carry + slices, carry + ys)
        for out, y, a in zip(y_outs, ys, y_avals, strict=True):
            if a.ndim == 1:
                ctx.emit(f"{out}[{i}] = {y}[()]")
                continue
            # A copy loop, not ``out[i] = y``: numba's array assignment through a partial
            # index compiles for seconds on first use (broadcasting, error paths).
            size = prod(a.shape[1:])
            yf, j = ctx.fresh("yf"), ctx.fresh("j")
            ctx.emit(f"{yf} = {y}.reshape(({size},))")
            ctx.emit(f"for {j} in range({size}):")
            with ctx.indent():
                ctx.emit(f"{flat[out]}[{i}, {j}] = {yf}[{j}]")
    for out, c in zip(ctx.outs[:num_carry], carry, strict=True):
        ctx.emit(f"{out} = {c}")
