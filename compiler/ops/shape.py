"""Shapes: reshape and broadcast_to."""

from __future__ import annotations

from ..dims import Dim, product, show_shape
from ..expr import Lit, Tuple, array, method
from ..expr import shape as shape_of
from ..ir import REQUIRED, ShapeError, Type, make
from . import (
    broadcast,
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
    if not at.node.args[0].ndim:  # maybe a Python number (no `.reshape`), into size-1 axes
        return number_filled(at, x, shape)
    rest = _rest(at.node.args[0].shape, shape)
    sizes = shape_of(shape).items
    if rest is not None:
        sizes = sizes[:rest] + (Lit(-1),) + sizes[rest + 1 :]
    return method(x, "reshape", Tuple(sizes))


def _rest(old, new) -> int | None:
    """The axis of `new` an expert writes -1: one that merges several axes of `old` (a
    flattening, `.reshape(C * K * K, -1)`), the longest to write of them; None when no axis
    merges others."""
    merged, i = [], 0
    for axis, d in enumerate(new):
        j, have = i, Dim.of(1)
        while j < len(old) and (j == i or have != d):
            have, j = have * old[j], j + 1
        if have != d:
            return None  # not a grouping of consecutive axes
        if j - i > 1 and not d.is_const:
            merged.append(axis)
        i = j
    if i != len(old) or not merged:
        return None
    return max(merged, key=lambda a: (len(str(new[a])), a))


register(
    "reshape",
    _reshape_type,
    _reshape_emit,
    lambda g, y, x, *, shape: (make("reshape", g, shape=x.shape),),
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
    doc="a read-only view of x broadcast to a shape",
    flops=no_flops,
    view=True,
    read_only=True,
)
