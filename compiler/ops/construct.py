"""Arrays made from sizes alone: zeros, ones, full and arange; and the triangles of a matrix, tril
and triu (a causal mask is `tril(ones((T, T))) > 0`).

zeros, ones and full are floats of the graph's float dtype (`own_dtype`: `np.zeros((N, H),
dtype=x.dtype)`), arange integers. Nothing flows into them: they depend on no value but full's
number, which is not differentiated.
"""

from __future__ import annotations

from .. import conditions
from ..dims import Dim
from ..expr import LOCAL, Lit, Ref, Size, array
from ..expr import shape as shape_of
from ..ir import REQUIRED, ShapeError, Type, make
from . import linear, no_flops, no_tangent, register
from .index import negative

# ---------------------------------------------------------------------------------------------
# zeros, ones, full, arange


def _size(name: str, d, what: str = "sizes") -> Dim:
    if isinstance(d, bool) or not isinstance(d, (int, Dim)):
        raise ShapeError(f"{name}: {what} must be integers or dimension expressions")
    d = Dim.of(d)
    if negative(d):
        raise ShapeError(f"{name}: {what} must not be negative, and {d} is")
    # one that is negative for some sizes only is checked when the code runs
    conditions.require(d, ">=", Dim.of(0), f"{name}'s size {d}", f"{name}: {d} is negative")
    return d


def _sizes(name: str, shape) -> tuple[Dim, ...]:
    """A shape given as a tuple of sizes (or one size), each an integer or a dimension."""
    return tuple(_size(name, d) for d in (shape if isinstance(shape, tuple) else (shape,)))


def _dtype(at) -> dict:
    """`dtype=x.dtype` where the lowering would otherwise convert the float64 result."""
    return {"dtype": at.dtype} if at.retyped and at.dtype is not None else {}


def _filled(name: str, *, doc: str) -> None:
    """zeros or ones: `np.zeros(shape, dtype=x.dtype)`. `of`, which the language does not
    spell, tells apart arrays made for different ends (each gradient a loop sums, `loops.py`),
    which would otherwise be one value."""

    def infer(*, shape, of=None):
        shape = _sizes(name, shape)
        return Type("float", shape), {"shape": shape, **({"of": of} if of is not None else {})}

    register(
        name,
        infer,
        lambda at, *, shape, of=None: array(name, shape_of(shape), **_dtype(at)),
        lambda g, y, *, shape, of=None: (),
        jvp=no_tangent,
        doc=doc,
        call=("shape",),
        flops=no_flops,  # a fill
        own_dtype=True,
        shape=REQUIRED,
    )


_filled("zeros", doc="zeros(shape): an array of zeros, floats of the graph's float dtype")
_filled("ones", doc="ones(shape): an array of ones, floats of the graph's float dtype")


def _full_type(value: Type, *, shape):
    if value.ndim or not value.static or value.dtype == "bool":
        raise ShapeError(
            f"full: the value must be a number known when compiling (a literal, a dimension, pi, "
            f"inf, or arithmetic on them), not the {value.dtype} value {value}; to fill with a "
            "value, multiply it by ones(shape)"
        )
    shape = _sizes("full", shape)
    return Type("float", shape), {"shape": shape}


def _full_emit(at, value, *, shape):
    dtype = _dtype(at)
    if not dtype and at.node.args[0].dtype != "float":  # np.full((n,), 1) would be integers
        dtype = {"dtype": Ref(LOCAL, "float")}
    return array("full", shape_of(shape), value, **dtype)


register(
    "full",
    _full_type,
    _full_emit,
    lambda g, y, value, *, shape: (None,),
    jvp=no_tangent,  # (a number known when compiling)
    doc="full(shape, value): an array of one number, floats of the graph's float dtype",
    call=("shape", "value"),
    flops=no_flops,
    own_dtype=True,
    shape=REQUIRED,
)


def _arange_type(*, n):
    n = _size("arange", n, "the number of integers")
    return Type("int", (n,)), {"n": n}


register(
    "arange",
    _arange_type,
    lambda at, *, n: array("arange", Size(n)),
    lambda g, y, *, n: (),
    jvp=no_tangent,
    doc="arange(n): the integers 0, 1, ..., n - 1 (np.arange)",
    call=("n",),
    flops=no_flops,
    n=REQUIRED,
)


# ---------------------------------------------------------------------------------------------
# tril, triu: the lower and the upper triangle of the last two axes, zeros elsewhere


def _triangle(name: str, *, doc: str) -> None:
    def infer(x: Type, *, k=0):
        if x.ndim < 2:
            raise ShapeError(f"{name}: x must have two axes at least (a matrix), not {x}")
        if isinstance(k, bool) or not isinstance(k, (int, Dim)):
            raise ShapeError(f"{name}: k must be an integer or a dimension expression")
        return Type(x.dtype, x.shape), {"k": Dim.of(k)}

    def emit(at, x, *, k):
        if k == Dim.of(0):
            return array(name, x)
        return array(name, x, k=Lit(k.value) if k.is_const else Size(k))

    register(
        name,
        infer,
        emit,
        lambda g, y, x, *, k: (make(name, g, k=k),),  # the same triangle of the gradient
        jvp=linear(),
        doc=doc,
        call=("x", "k"),
        flops=no_flops,  # a selection
        k=0,
    )


_triangle(
    "tril",
    doc="tril(x, k=0): the elements of x on and below the k-th diagonal of its last two axes, "
    "zeros above (np.tril)",
)
_triangle(
    "triu",
    doc="triu(x, k=0): the elements of x on and above the k-th diagonal of its last two axes, "
    "zeros below (np.triu)",
)
