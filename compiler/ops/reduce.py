"""Reductions over axes, and the operations that make gradients safe to hand out."""

from __future__ import annotations

from ..dims import Dim, product
from ..ir import Node, ShapeError, Type, make
from . import (
    emit_call,
    normalize_axes,
    register,
)

# ---------------------------------------------------------------------------------------------
# Reductions


def _reduce_type(name):
    def infer(x: Type, *, axis=None, keepdims=False):
        axes = normalize_axes(axis, x.ndim, name)
        if not isinstance(keepdims, bool):
            raise ShapeError(f"{name}: keepdims must be true or false")
        shape = tuple(
            Dim.of(1) if i in axes else d
            for i, d in enumerate(x.shape)
            if keepdims or i not in axes
        )
        dtype = "float" if name == "mean" else x.dtype
        return Type(dtype, shape), {"axis": axes, "keepdims": keepdims}

    return infer


def _reduce_emit(fn):
    def emit(ctx, x, *, axis, keepdims):
        parts = [x.text]
        if axis != tuple(range(x.type.ndim)) or keepdims:
            parts.append(f"axis={axis[0] if len(axis) == 1 else axis}")
        if keepdims:
            parts.append("keepdims=True")
        return emit_call(fn, *parts)

    return emit


def expand_back(g: Node, x: Node, axis, keepdims) -> Node:
    """The upstream gradient of a reduction, broadcast back over the reduced axes of `x`."""
    if not keepdims and axis and g.ndim:
        g = make(
            "reshape", g, shape=tuple(Dim.of(1) if i in axis else d for i, d in enumerate(x.shape))
        )
    return make("broadcast_to", g, shape=x.shape)


register(
    "sum",
    _reduce_type("sum"),
    _reduce_emit("np.sum"),
    lambda g, y, x, *, axis, keepdims: (expand_back(g, x, axis, keepdims),),
    doc="sum over axes",
    call=("x", "axis", "keepdims"),
    axis=None,
    keepdims=False,
)
register(
    "mean",
    _reduce_type("mean"),
    _reduce_emit("np.mean"),
    lambda g, y, x, *, axis, keepdims: (
        expand_back(g / make("dim", dim=product(x.shape[i] for i in axis)), x, axis, keepdims),
    ),
    doc="mean over axes",
    call=("x", "axis", "keepdims"),
    axis=None,
    keepdims=False,
)


# ---------------------------------------------------------------------------------------------
# Gradient outputs: a caller's gradient is a fresh, writable array of its parameter's shape and dtype


register(
    "full_like",
    lambda like, value: Type(like.dtype, like.shape),
    lambda ctx, like, value: emit_call("np.full_like", like.text, value.text),
    lambda g, y, like, value: (None, g),
    doc="an array shaped and typed like `like`, filled with `value` (broadcast)",
)
register(
    "copy",
    lambda x: x,
    lambda ctx, x: emit_call("np.copy", x.text),
    lambda g, y, x: (g,),
    doc="a fresh copy",
)
