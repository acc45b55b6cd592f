"""Elementwise operations: arithmetic, comparisons and functions of one value."""

from __future__ import annotations

import math
import operator

from ..ir import OPS, Node, ShapeError, Type, make
from . import (
    ADD,
    ATOM,
    CMP,
    MUL,
    POW,
    UNARY,
    Code,
    broadcast,
    emit_call,
    number_call,
    promote,
    python_numbers,
    register,
    simple_operand,
    size,
)

COND = 1  # a conditional expression `a if c else b` binds more loosely than any operator

# ---------------------------------------------------------------------------------------------
# Elementwise operations


def _elementwise_type(*types: Type, dtype: str | None = None) -> Type:
    shape = broadcast(*(t.shape for t in types))
    return Type(dtype or promote(*types), shape, all(t.static for t in types))


def unary(name, fn, adjoint, *, math_fn=None, doc="", flops=None, ufunc=False, fold=None):
    """An elementwise function of one float argument. `fn` is a NumPy function's name, or a
    function from the argument's Code to the result's. On a number that may be Python's (a size,
    a constant, a `[]` parameter) the result stays a Python number rather than a float64 NumPy
    scalar, which would make float32 arrays float64: `math_fn` (likewise) emits it for a function
    that `math` computes for every float, and the others are NumPy's function on the number,
    `float(np.sqrt(d))`, which gives nan or inf (and NumPy's warning) where `math` would raise.
    `ufunc` and `fold` are `OpDef`'s."""

    def emit(ctx, x):
        if python_numbers(ctx) and math_fn:
            return emit_call(math_fn, x.text) if isinstance(math_fn, str) else math_fn(x)
        if python_numbers(ctx) and isinstance(fn, str):
            return number_call(ctx, fn, x)
        return emit_call(fn, x.text) if isinstance(fn, str) else fn(x)

    register(
        name,
        lambda x: Type("float", x.shape, x.static),
        emit,
        adjoint,
        elementwise=True,
        doc=doc,
        call=("x",),
        flops=flops,
        ufunc=ufunc,
        fold=fold,
    )


def binary(
    name,
    symbol,
    prec,
    adjoint,
    *,
    dtype=None,
    right_assoc=False,
    numbers=None,
    check=None,
    counts=False,
    doc="",
    fold=None,
    augmented=False,
    commutes=False,
):
    """An elementwise infix operator with NumPy broadcasting. `numbers(ctx, a, b)`, when given,
    emits it on operands that may all be Python numbers, where Python's operator would raise (it
    returns None where it would not). `fold` is its value on numbers; with `augmented` it works
    in place as `a symbol= b` (in either operand's array when it `commutes`). An operator that
    `counts` (+, -) takes masks as the integers 0 and 1, as Python takes True and False: NumPy
    would give `or` for `mask + mask` and raise for `mask - mask`."""

    def emit(ctx, a, b):
        if numbers and python_numbers(ctx):
            code = numbers(ctx, a, b)
            if code is not None:
                return code
        if counts and a.type.dtype == b.type.dtype == "bool":  # (a mask beside a number is fine)
            a, b = (_counted(x) for x in (a, b))
        if right_assoc:  # `x ** -y` is fine in Python: a unary operand binds tightly enough
            left, right = a.at(prec + 1), b.at(UNARY)
        elif prec == CMP:  # Python chains comparisons: `a < b == c` is not `(a < b) == c`
            left, right = a.at(prec + 1), b.at(prec + 1)
        else:
            left, right = a.at(prec), b.at(prec + 1)
        if symbol == "**" and simple_operand(left) and simple_operand(right):
            return Code(f"{left}**{right}", prec)  # black hugs a power of simple operands
        return Code(f"{left} {symbol} {right}", prec)

    def infer(a, b):
        both_masks = counts and a.dtype == b.dtype == "bool"
        return _elementwise_type(a, b, dtype="int" if both_masks else dtype)

    register(
        name,
        infer,
        emit,
        adjoint,
        elementwise=True,
        doc=doc,
        check=check,
        fold=fold,
        augmented=symbol if augmented else None,
        commutes=commutes,
    )


def gt(a, b) -> Node:
    return make("gt", a, b)


# The rules: g is the upstream gradient, y the result.
unary("exp", "np.exp", lambda g, y, x: (g * y,), doc="e**x", ufunc=True, fold=math.exp)
unary("log", "np.log", lambda g, y, x: (g / x,), doc="natural logarithm", ufunc=True, fold=math.log)
unary(
    "sqrt", "np.sqrt", lambda g, y, x: (0.5 * g / y,), doc="square root", ufunc=True, fold=math.sqrt
)
unary(
    "tanh",
    "np.tanh",
    lambda g, y, x: (g * (1 - y * y),),
    math_fn="math.tanh",
    doc="tanh",
    ufunc=True,
    fold=math.tanh,
)
# 1 / (1 + exp(-x)) overflows for large -x; the tanh form is exact and never does.
unary(
    "sigmoid",
    lambda x: Code(f"0.5 * np.tanh(0.5 * {x.at(MUL + 1)}) + 0.5", ADD),
    lambda g, y, x: (g * y * (1 - y),),
    math_fn=lambda x: Code(f"0.5 * math.tanh(0.5 * {x.at(MUL + 1)}) + 0.5", ADD),
    doc="logistic",
    flops=lambda y, x: 4 * size(y),  # a multiply, tanh, a multiply and an add per element
)
unary(
    "relu",
    lambda x: emit_call("np.maximum", x.text, "0"),
    lambda g, y, x: (g * gt(y, 0),),
    math_fn=lambda x: emit_call("max", x.text, "0"),
    doc="max(x, 0)",
    ufunc=True,
)
unary(
    "log1p",
    "np.log1p",
    lambda g, y, x: (g / (1 + x),),
    doc="log(1 + x), accurate for small x",
    ufunc=True,
)
unary("sin", "np.sin", lambda g, y, x: (g * make("cos", x),), doc="sine", ufunc=True)
unary("cos", "np.cos", lambda g, y, x: (-g * make("sin", x),), doc="cosine", ufunc=True)
# log(1 + exp(x)) overflows in exp for x > ~709 (~88 in float32); logaddexp(0, x) never does,
# and its gradient, the sigmoid, is computed in the tanh form.
unary(
    "softplus",
    lambda x: emit_call("np.logaddexp", "0", x.text),
    lambda g, y, x: (g * make("sigmoid", x),),
    math_fn=lambda x: Code(f"max({x.text}, 0) + math.log1p(math.exp(-abs({x.text})))", ADD),
    doc="log(1 + exp(x)), as np.logaddexp(0, x): finite for any x",
)


def sign(x) -> Node:
    return make("sign", x)


register(
    "abs",
    lambda x: Type("int" if x.dtype == "int" else "float", x.shape, x.static),
    lambda ctx, x: emit_call("abs" if x.type.static else "np.abs", x.text),
    lambda g, y, x: (g * sign(x),),
    elementwise=True,
    doc="|x|; its gradient is sign(x), 0 at 0 (as in PyTorch)",
    call=("x",),
    ufunc=True,
)
register(
    "sign",
    lambda x: Type(x.dtype, x.shape, x.static),
    lambda ctx, x: (
        Code(f"({x.at(CMP + 1)} > 0) - ({x.at(CMP + 1)} < 0)", ADD)
        if x.type.static
        else emit_call("np.sign", x.text)
    ),
    lambda g, y, x: (None,),  # piecewise constant: its derivative is 0 wherever it has one
    elementwise=True,
    doc="-1, 0 or 1: the gradient of abs",
)


def _neg_emit(ctx, x):
    if x.type.dtype == "bool" and not x.type.static:  # NumPy does not negate a mask
        return Code(f"-{x.at(ATOM)}.astype(int)", UNARY)
    return Code(f"-{x.at(UNARY)}", UNARY)


register(
    "neg",
    lambda x: Type(x.dtype if x.dtype != "bool" else "int", x.shape, x.static),
    _neg_emit,
    lambda g, y, x: (-g,),
    elementwise=True,
    doc="-x",
    fold=operator.neg,
)


def _counted(x: Code) -> Code:
    """A mask array as integers (`m.astype(int)`); anything else as it is."""
    if x.type.dtype == "bool" and not x.type.static:
        return Code(f"{x.at(ATOM)}.astype(int)", ATOM, x.type)
    return x


binary(
    "add",
    "+",
    ADD,
    lambda g, y, a, b: (g, g),
    doc="a + b",
    fold=operator.add,
    augmented=True,
    commutes=True,
    counts=True,
)
binary(
    "sub",
    "-",
    ADD,
    lambda g, y, a, b: (g, -g),
    doc="a - b",
    fold=operator.sub,
    augmented=True,
    counts=True,
)
binary(
    "mul",
    "*",
    MUL,
    lambda g, y, a, b: (g * b, g * a),
    doc="a * b",
    fold=operator.mul,
    augmented=True,
    commutes=True,
)


def _never_zero(n: Node) -> bool:
    """A nonzero constant, or the larger of a value and a positive constant (`max(N, 1)`)."""
    if n.op == "const":
        return n.attr("value") != 0
    return n.op == "maximum" and any(a.op == "const" and a.attr("value") > 0 for a in n.args)


def _div_numbers(ctx, a, b):
    """Python raises ZeroDivisionError on `s / N` for N = 0 (a sum over an empty batch divided
    by its size): NumPy's division, unless the divisor cannot be 0."""
    return None if _never_zero(ctx.node.args[1]) else number_call(ctx, "np.divide", a, b)


def _pow_numbers(ctx, a, b):
    """Python raises on `0.0 ** -1` (ZeroDivisionError) and `1e200 ** 2` (OverflowError), and
    `(-8.0) ** (1 / 3)` is complex: NumPy's power, for floats (integers are exact in Python)."""
    return number_call(ctx, "np.power", a, b) if ctx.node.dtype == "float" else None


binary(
    "div",
    "/",
    MUL,
    lambda g, y, a, b: (g / b, -g * y / b),
    dtype="float",
    numbers=_div_numbers,
    doc="a / b",
    fold=operator.truediv,
    augmented=True,
)


def _pow_adjoint(g, y, a, b):
    """b * a ** (b - 1) and a ** b * log(a), each 0 where its textbook form would be 0 * inf:
    at b == 0 (a ** 0 is 1 everywhere) and at a == 0 (a ** b * log(a) -> 0 for b > 0), as in
    PyTorch. The power and the logarithm get a harmless operand there, so no warning is raised;
    for a constant a or b the masks fold away."""
    where = lambda mask, a, b: make("where", mask, a, b)  # noqa: E731
    da = g * b * a ** where(make("eq", b, 0), 1, b - 1)
    db = g * y * make("log", where(make("eq", a, 0), 1, a))
    return da, db


def constant_value(n: Node) -> int | float | bool | None:
    """The value of a node made of literals alone (`-1` is `neg(1)`), or None."""
    if n.op == "const":
        return n.attr("value")
    values = [constant_value(a) for a in n.args]
    fold = OPS[n.op].fold
    if not n.args or any(v is None for v in values) or fold is None:
        return None
    try:
        return fold(*values)
    except (ArithmeticError, ValueError):
        return None


def _pow_check(n: Node) -> None:
    """NumPy raises on integers to negative integer powers (`k ** -1` on an int array) where
    Python would give a float: an error at compile time, as soon as the exponent is known."""
    a, b = n.args
    if a.dtype == "float" or b.dtype == "float":
        return
    value = constant_value(b)
    if value is not None and value < 0:
        raise ShapeError(
            f"integers to negative integer powers are not allowed, as in NumPy ({a.type} ** "
            f"{value}); write ** {float(value)} for a float result"
        )


binary(
    "pow",
    "**",
    POW,
    _pow_adjoint,
    right_assoc=True,
    numbers=_pow_numbers,
    check=_pow_check,
    doc="a ** b; integers to negative integer powers are an error, as in NumPy",
    fold=operator.pow,
)
for _name, _symbol in [
    ("lt", "<"),
    ("le", "<="),
    ("gt", ">"),
    ("ge", ">="),
    ("eq", "=="),
    ("ne", "!="),
]:
    binary(
        _name,
        _symbol,
        CMP,
        None,
        dtype="bool",
        doc=f"a {_symbol} b, a mask",
        fold=getattr(operator, _name),
    )


# ---------------------------------------------------------------------------------------------
# Choosing between values: maximum, minimum, where, clip


def _extremum(name, fn, builtin, wins, doc):
    """maximum or minimum; `wins(a, b)` is the mask where a alone is the result."""

    def emit(ctx, a, b):
        if a.type.static and b.type.static:
            return emit_call(builtin, a.text, b.text)
        return emit_call(fn, a.text, b.text)

    def adjoint(g, y, a, b):
        ties = make("eq", a, b)
        return g * wins(a, b) + 0.5 * g * ties, g * wins(b, a) + 0.5 * g * ties

    register(
        name,
        lambda a, b: _elementwise_type(a, b),
        emit,
        adjoint,
        elementwise=True,
        doc=doc,
        call=("a", "b"),
        ufunc=True,
    )


_TIES = (
    "The gradient goes to the operand that is the result; where a == b each gets half of it, as "
    "torch.maximum and torch.minimum do."
)
_extremum("maximum", "np.maximum", "max", gt, f"the larger of a and b, elementwise. {_TIES}")
_extremum(
    "minimum",
    "np.minimum",
    "min",
    lambda a, b: make("lt", a, b),
    f"the smaller of a and b, elementwise. {_TIES}",
)


def _where_type(mask: Type, a: Type, b: Type) -> Type:
    if mask.dtype != "bool":
        raise ShapeError(
            f"where: the mask must be boolean, a comparison such as x > 0; got the {mask.dtype} "
            f"value {mask}"
        )
    shape = broadcast(mask.shape, a.shape, b.shape)
    return Type(promote(a, b), shape, mask.static and a.static and b.static)


def _where_emit(ctx, mask, a, b):
    if python_numbers(ctx):  # np.where would make a float64 array of Python numbers
        return Code(f"{a.at(CMP)} if {mask.at(CMP)} else {b.at(CMP)}", COND)
    return emit_call("np.where", mask.text, a.text, b.text)


register(
    "where",
    _where_type,
    _where_emit,
    lambda g, y, mask, a, b: (None, make("where", mask, g, 0), make("where", mask, 0, g)),
    elementwise=True,
    doc="a where mask holds, b elsewhere (all three broadcast); the mask is not differentiated",
    call=("mask", "a", "b"),
)


def _clip_emit(ctx, x, lo, hi):
    if x.type.static and lo.type.static and hi.type.static:
        return emit_call("min", emit_call("max", x.text, lo.text).text, hi.text)
    return emit_call("np.clip", x.text, lo.text, hi.text)


def _clip_adjoint(g, y, x, lo, hi):
    """clip(x, lo, hi) is min(max(x, lo), hi), as in NumPy and PyTorch: hi wins where lo > hi.
    On the boundaries (x == lo or x == hi) the gradient goes to x, as torch.clamp does."""
    return (
        g * make("ge", x, lo) * make("le", x, hi),
        g * make("lt", x, lo) * make("le", lo, hi),
        g * gt(make("maximum", x, lo), hi),
    )


register(
    "clip",
    lambda x, lo, hi: _elementwise_type(x, lo, hi),
    _clip_emit,
    _clip_adjoint,
    elementwise=True,
    doc="x limited to [lo, hi] (numbers or tensors, broadcast); the gradient reaches x where "
    "lo <= x <= hi, boundaries included, as with torch.clamp",
    call=("x", "lo", "hi"),
)
