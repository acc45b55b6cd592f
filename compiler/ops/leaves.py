"""Leaves: parameters, upstream gradients, constants and dimension sizes."""

from __future__ import annotations

from ..expr import Lit, Size
from ..ir import Type
from . import no_flops, no_tangent, register

# ---------------------------------------------------------------------------------------------
# Leaves: parameters, upstream gradients, constants and dimension sizes


def _leaf_type(*, type, **_):
    return type


def _named(at, **_):
    raise AssertionError("a parameter or an upstream gradient always has a name of its own")


register(
    "param",
    _leaf_type,
    _named,
    doc="a graph parameter",
    flops=no_flops,
    leaf=True,
)
register(
    "dout",
    _leaf_type,
    _named,
    doc="an upstream gradient",
    flops=no_flops,
    leaf=True,
)


register(
    "const",
    lambda **kw: Type(_const_dtype(kw["value"]), (), True),
    lambda at, *, value: Lit(value),
    doc="a literal",
    flops=no_flops,
    leaf=True,
)


def _const_dtype(value) -> str:
    return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"


register(
    "dim",
    lambda *, dim: Type("int", (), True),
    lambda at, *, dim: Size(dim),
    doc="the size of a dimension",
    flops=no_flops,
    leaf=True,
)


register(
    "cast",
    lambda x: Type("float", x.shape, x.static),
    lambda at, x: x,  # the lowering gives a float array made from integers the graph's dtype
    lambda g, y, x: (None,),
    jvp=no_tangent,  # (integers)
    elementwise=True,
    doc="integers as floats of the graph's float dtype",
    flops=no_flops,  # a conversion
)
