"""Leaves: parameters, upstream gradients, constants and dimension sizes."""

from __future__ import annotations

import math

from ..dims import Dim
from ..ir import Type
from . import (
    ADD,
    ATOM,
    MUL,
    UNARY,
    Code,
    no_flops,
    register,
)

# ---------------------------------------------------------------------------------------------
# Leaves: parameters, upstream gradients, constants and dimension sizes


def _leaf_type(*, type, **_):
    return type


register(
    "param",
    _leaf_type,
    lambda ctx, **_: Code(ctx.name_of(ctx.node)),
    doc="a graph parameter",
    flops=no_flops,
    leaf=True,
)
register(
    "dout",
    _leaf_type,
    lambda ctx, **_: Code(ctx.name_of(ctx.node)),
    doc="an upstream gradient",
    flops=no_flops,
    leaf=True,
)


def _const_emit(ctx, *, value):
    text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = f"float({str(value)!r})"
    return Code(text, UNARY if text.startswith("-") else ATOM)


register(
    "const",
    lambda **kw: Type(_const_dtype(kw["value"]), (), True),
    _const_emit,
    doc="a literal",
    flops=no_flops,
    leaf=True,
)


def _const_dtype(value) -> str:
    return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"


def _dim_emit(ctx, *, dim: Dim):
    text = ctx.dim(dim)
    return Code(text, ADD if dim.is_sum else MUL if dim.is_product else ATOM)


register(
    "dim",
    lambda *, dim: Type("int", (), True),
    _dim_emit,
    doc="the size of a dimension",
    flops=no_flops,
    leaf=True,
)


register(
    "cast",
    lambda x: Type("float", x.shape, x.static),
    lambda ctx, x: x,  # the emitter gives a float array made from integers the graph's dtype
    lambda g, y, x: (None,),
    elementwise=True,
    doc="integers as floats of the graph's float dtype",
    flops=no_flops,  # a conversion
)
