"""Shapes: reshape and broadcast_to."""

from __future__ import annotations

import functools

from ..dims import Dim, product, show_shape
from ..expr import BinOp, Size, Tuple, array, method
from ..expr import shape as shape_of
from ..ir import REQUIRED, ShapeError, Type, make
from . import (
    broadcast,
    last_axis_dropped,
    linear,
    new_last_axis,
    no_flops,
    number_filled,
    register,
)

# ---------------------------------------------------------------------------------------------
# Shapes


def _reshape_type(x: Type, *, shape):
    shape = shape if isinstance(shape, tuple) else (shape,)
    if any(isinstance(d, bool) or not isinstance(d, (int, Dim)) for d in shape):
        raise ShapeError("reshape: sizes must be integers or dimensions")
    shape = tuple(Dim.of(d) for d in shape)
    if any(d.is_const and d.value < 0 for d in shape):
        raise ShapeError("reshape: sizes must not be negative")
    have, want = product(x.shape), product(shape)
    if have.is_const and want.is_const and have != want:
        raise ShapeError(
            f"reshape: cannot reshape {show_shape(x.shape)} ({have} elements) into "
            f"{show_shape(shape)} ({want} elements)"
        )
    if have != want and not (have.is_const or want.is_const) and have.symbols == want.symbols:
        raise ShapeError(
            f"reshape: {show_shape(x.shape)} has {have} elements but {show_shape(shape)} has {want}"
        )
    if have != want:
        # equal for some sizes only (mean(x) into (m, n) when m*n == 1): NumPy would raise when
        # the sizes differ, and the gradient's reshape back would raise when they do not
        raise ShapeError(
            f"reshape: {show_shape(x.shape)} has {_elements(have)} and {show_shape(shape)} has "
            f"{_elements(want)}, the same only where {want} == {have}; a reshape must keep the "
            "number of elements whatever the sizes are"
        )
    return Type(x.dtype, shape, x.static and not shape), {"shape": shape}


def _elements(d: Dim) -> str:
    return "1 element" if d == Dim.of(1) else f"{d} elements"


def _reshape_emit(at, x, *, shape):
    """`x.reshape((N, C))`; a last axis of size 1 added or removed as an expert indexes it,
    `x[:, None]` and `x[:, 0]` (a view either way, and no tuple of sizes to build: 0.08 against
    0.14 us a call)."""
    old = at.node.args[0].shape
    if not old:  # maybe a Python number (no `.reshape`), into size-1 axes
        return number_filled(at, x, shape)
    one = Dim.of(1)
    if shape == (*old, one):
        return new_last_axis(x, len(old))
    if len(old) > 1 and old == (*shape, one):
        return last_axis_dropped(x, len(shape))
    return method(x, "reshape", Tuple(_sizes(old, shape)))


def _sizes(old, new) -> tuple:
    """`new`'s sizes; an axis that merges consecutive axes of `old` is written as the product
    of their sizes in order, `N * (H - K + 3) * (W - K + 3)`, not multiplied out."""
    out, i = [], 0
    for d in new:
        j, have = i, Dim.of(1)
        while j < len(old) and (j == i or have != d):
            have, j = have * old[j], j + 1
        if have != d:
            return tuple(Size(d) for d in new)  # not a grouping of consecutive axes
        factors = [f for f in old[i:j] if not f.is_const]
        number = product(f for f in old[i:j] if f.is_const)
        if len(factors) > 1:  # in the order of the axes: `N * H * W`, `9 * C * (K - 1)`
            sizes = ([Size(number)] if number != Dim.of(1) else []) + list(map(Size, factors))
            out.append(functools.reduce(lambda a, b: BinOp("*", a, b), sizes))
        else:
            out.append(Size(d))
        i = j
    return tuple(out)


register(
    "reshape",
    _reshape_type,
    _reshape_emit,
    lambda g, y, x, *, shape: (make("reshape", g, shape=x.shape),),
    jvp=linear(),
    doc="the same elements in a new shape",
    call=("x", "shape"),
    flops=no_flops,
    view=True,
    shape=REQUIRED,
)


def _broadcast_to_type(x: Type, *, shape):
    shape = tuple(Dim.of(d) for d in shape)
    if broadcast(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast {show_shape(x.shape)} to {show_shape(shape)}")
    return Type(x.dtype, shape), {"shape": shape}


register(
    "broadcast_to",
    _broadcast_to_type,
    lambda at, x, *, shape: array("broadcast_to", x, shape_of(shape)),
    lambda g, y, x, *, shape: (g,),
    jvp=linear(),
    doc="a read-only view of x broadcast to a shape",
    flops=no_flops,
    view=True,
    read_only=True,
)
