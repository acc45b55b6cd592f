"""Elementwise operations: arithmetic, comparisons and functions of one value."""

from __future__ import annotations

from ..ir import Node, Type, make
from . import (
    ADD,
    CMP,
    MUL,
    POW,
    UNARY,
    Code,
    broadcast,
    emit_call,
    promote,
    register,
)

# ---------------------------------------------------------------------------------------------
# Elementwise operations


def _elementwise_type(*types: Type, dtype: str | None = None) -> Type:
    shape = broadcast(*(t.shape for t in types))
    return Type(dtype or promote(*types), shape, all(t.static for t in types))


def unary(name, fn, adjoint, *, math_fn=None, doc=""):
    """An elementwise function of one float argument. `fn` is a NumPy function's name, or a
    function from the argument's Code to the result's; `math_fn` emits it on plain numbers."""

    def emit(ctx, x):
        if x.type.static and math_fn:
            return emit_call(math_fn, x.text)
        return emit_call(fn, x.text) if isinstance(fn, str) else fn(x)

    register(
        name,
        lambda x: Type("float", x.shape, x.static),
        emit,
        adjoint,
        elementwise=True,
        doc=doc,
        call=("x",),
    )


def binary(name, symbol, prec, adjoint, *, dtype=None, right_assoc=False, doc=""):
    """An elementwise infix operator with NumPy broadcasting."""

    def emit(ctx, a, b):
        if right_assoc:  # `x ** -y` is fine in Python: a unary operand binds tightly enough
            left, right = a.at(prec + 1), b.at(UNARY)
        elif prec == CMP:  # Python chains comparisons: `a < b == c` is not `(a < b) == c`
            left, right = a.at(prec + 1), b.at(prec + 1)
        else:
            left, right = a.at(prec), b.at(prec + 1)
        return Code(f"{left} {symbol} {right}", prec)

    register(
        name,
        lambda a, b: _elementwise_type(a, b, dtype=dtype),
        emit,
        adjoint,
        elementwise=True,
        doc=doc,
    )


def gt(a, b) -> Node:
    return make("gt", a, b)


# The rules: g is the upstream gradient, y the result.
unary("exp", "np.exp", lambda g, y, x: (g * y,), math_fn="math.exp", doc="e**x")
unary("log", "np.log", lambda g, y, x: (g / x,), math_fn="math.log", doc="natural logarithm")
unary("sqrt", "np.sqrt", lambda g, y, x: (g / (2 * y),), math_fn="math.sqrt", doc="square root")
unary("tanh", "np.tanh", lambda g, y, x: (g * (1 - y * y),), math_fn="math.tanh", doc="tanh")
# 1 / (1 + exp(-x)) overflows for large -x; the tanh form is exact and never does.
unary(
    "sigmoid",
    lambda x: Code(f"0.5 * np.tanh(0.5 * {x.at(MUL + 1)}) + 0.5", ADD),
    lambda g, y, x: (g * y * (1 - y),),
    doc="logistic",
)
unary(
    "relu",
    lambda x: emit_call("np.maximum", x.text, "0"),
    lambda g, y, x: (g * gt(y, 0),),
    doc="max(x, 0)",
)


def _neg_emit(ctx, x):
    return Code(f"-{x.at(UNARY)}", UNARY)


register(
    "neg",
    lambda x: Type(x.dtype if x.dtype != "bool" else "int", x.shape, x.static),
    _neg_emit,
    lambda g, y, x: (-g,),
    elementwise=True,
    doc="-x",
)

binary("add", "+", ADD, lambda g, y, a, b: (g, g), doc="a + b")
binary("sub", "-", ADD, lambda g, y, a, b: (g, -g), doc="a - b")
binary("mul", "*", MUL, lambda g, y, a, b: (g * b, g * a), doc="a * b")
binary("div", "/", MUL, lambda g, y, a, b: (g / b, -g * y / b), dtype="float", doc="a / b")
binary(
    "pow",
    "**",
    POW,
    lambda g, y, a, b: (g * b * a ** (b - 1), g * y * make("log", a)),
    right_assoc=True,
    doc="a ** b",
)
for _name, _symbol in [
    ("lt", "<"),
    ("le", "<="),
    ("gt", ">"),
    ("ge", ">="),
    ("eq", "=="),
    ("ne", "!="),
]:
    binary(_name, _symbol, CMP, None, dtype="bool", doc=f"a {_symbol} b, a mask")
