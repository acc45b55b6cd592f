"""Elementwise operations: arithmetic, comparisons and functions of one value."""

from __future__ import annotations

import math
import operator
import struct

from ..expr import (
    LOCAL,
    BinOp,
    Cond,
    Lit,
    Ref,
    Unary,
    array,
    builtin,
    helper,
    math_call,
    method,
)
from ..ir import OPS, Node, ShapeError, Type, make
from . import (
    broadcast,
    diagonal,
    no_tangent,
    number_call,
    promote,
    python_numbers,
    register,
    size,
)
from .reduce import composite

# ---------------------------------------------------------------------------------------------
# Elementwise operations


def _elementwise_type(*types: Type, dtype: str | None = None) -> Type:
    shape = broadcast(*(t.shape for t in types))
    return Type(dtype or promote(*types), shape, all(t.static for t in types))


def unary(
    name,
    fn,
    adjoint,
    *,
    math_fn=None,
    doc="",
    flops=None,
    ufunc=False,
    fold=None,
    reads=None,
    kernel=None,
    math_of_size=None,
    call=("x",),
):
    """An elementwise function of one float argument. `fn` is the name of a function of the
    array namespace (`"exp"`, a ufunc of x when `ufunc`), or a function from the argument's
    expression to the result's. On a number that may be Python's (a size, a constant, a `[]`
    parameter) the result stays a Python number rather than a float64 NumPy scalar, which would
    make float32 arrays float64: `math_fn` (likewise, a name of Python's `math`) emits it for a
    function that `math` computes for every float, and the others are NumPy's function on the
    number, `float(np.sqrt(d))`, which gives nan or inf (and NumPy's warning) where `math` would
    raise. `ufunc` and `fold` are `OpDef`'s; `reads`, where given, is how a call reads in the
    lecture note's notation (`OpDef.math`), the name of the function. `kernel(arg)`, where
    given, may return another such function for an argument node whose range allows a faster
    kernel than `fn`'s. `math_of_size`, where given, names the function of `math` for an
    argument that is a size, which is never negative (`math.sqrt(d)`: 0.06 us, where
    `float(np.sqrt(d))` takes 1.4 us). `call` is None for a function the language does not
    spell. Its JVP is read off its adjoint (`diagonal`)."""

    def emit(at, x):
        if python_numbers(at) and math_of_size and at.node.args[0].op == "dim":
            return math_call(math_of_size, x)
        if python_numbers(at) and math_fn:
            return math_call(math_fn, x) if isinstance(math_fn, str) else math_fn(x)
        if python_numbers(at) and isinstance(fn, str):
            return number_call(at, fn, x)
        chosen = (kernel and kernel(at.node.args[0])) or fn
        return array(chosen, x, ufunc=ufunc) if isinstance(chosen, str) else chosen(x)

    register(
        name,
        lambda x: Type("float", x.shape, x.static),
        emit,
        adjoint,
        jvp=diagonal(adjoint),
        elementwise=True,
        doc=doc,
        call=call,
        flops=flops,
        ufunc=ufunc,
        fold=fold,
        math=reads and (lambda at, x: builtin(reads, x)),
    )


def binary(
    name,
    symbol,
    adjoint,
    *,
    dtype=None,
    numbers=None,
    check=None,
    counts=False,
    doc="",
    fold=None,
    augmented=False,
    commutes=False,
    jvp=None,
    masks=None,
):
    """An elementwise infix operator with NumPy broadcasting. `numbers(at, a, b)`, when given,
    emits it on operands that may all be Python numbers, where Python's operator would raise (it
    returns None where it would not). `fold` is its value on numbers; with `augmented` it works
    in place as `a symbol= b` (in either operand's array when it `commutes`). An operator that
    `counts` (+, -) takes masks as the integers 0 and 1, as Python takes True and False: NumPy
    would give `or` for `mask + mask` and raise for `mask - mask`; `masks` is the operator that
    writes it on two masks (`&` for `*`). Its JVP is `jvp`, by default read off its adjoint
    (`diagonal`)."""

    def emit(at, a, b):
        if numbers and python_numbers(at):
            code = numbers(at, a, b)
            if code is not None:
                return code
        both_masks = all(arg.type.dtype == "bool" for arg in at.node.args)
        if counts and both_masks:
            # (a mask beside a number is fine; two masks are NumPy's `or` and an error)
            a, b = (_counted(x, arg.type) for x, arg in zip((a, b), at.node.args))
        return BinOp(masks if masks and both_masks else symbol, a, b)

    def infer(a, b):
        both_masks = counts and a.dtype == b.dtype == "bool"
        return _elementwise_type(a, b, dtype="int" if both_masks else dtype)

    register(
        name,
        infer,
        emit,
        adjoint,
        jvp=jvp or diagonal(adjoint),
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
unary("exp", "exp", lambda g, y, x: (g * y,), doc="e**x", ufunc=True, fold=math.exp)
unary("log", "log", lambda g, y, x: (g / x,), doc="natural logarithm", ufunc=True, fold=math.log)
unary(
    "sqrt",
    "sqrt",
    lambda g, y, x: (0.5 * g / y,),
    doc="square root",
    ufunc=True,
    fold=math.sqrt,
    math_of_size="sqrt",
)
unary(
    "tanh",
    "tanh",
    lambda g, y, x: (g * (1 - y * y),),
    math_fn="tanh",
    doc="tanh",
    ufunc=True,
    fold=math.tanh,
)

# tanh as 2 / (1 + exp(-2x)) - 1 (`_fast_tanh`, templates/fast_tanh.py.j2): not the language's,
# made by `bpc compile --fast-math` (`optimize.finish.fast_math`) in place of every tanh. About
# half the time of np.tanh in float64 on a CPU without AVX-512, within 2 ulp of 1 (an absolute
# error: near 0 not within a few ulp of the value, as np.tanh is). Its gradient is tanh's.
unary(
    "fast_tanh",
    lambda x: helper("_fast_tanh", x, ufunc=True),
    lambda g, y, x: (g * (1 - y * y),),
    math_fn="tanh",
    doc="tanh(x) as 2 / (1 + exp(-2x)) - 1, within 2 ulp of 1 (`bpc compile --fast-math`)",
    flops=lambda y, x: 5 * size(y),
    ufunc=True,
    call=None,
)

# ---------------------------------------------------------------------------------------------
# The logistic function, and softplus: a composite, written after differentiation with
# exp(-|x|), which never overflows, and shared with its gradient, the logistic function


def _exp_of_minus_abs(x: Node) -> Node:
    """exp(-|x|), at most 1: the one transcendental of softplus and of its gradient."""
    return make("exp", make("neg", make("abs", x)), hint="e")


def _sigmoid_number(x):
    """The logistic function of a number, through exp(-|x|), which never overflows; a Python
    float (a NumPy number's `x >= 0` is NumPy's bool, and the quotient a float64 NumPy number)."""
    e = math_call("exp", Unary("-", builtin("abs", x)))
    quotient = BinOp("/", builtin("max", e, BinOp(">=", x, Lit(0))), BinOp("+", Lit(1), e))
    return builtin("float", quotient)


def _sigmoid_adjoint(g, y, x):
    return (g * y * (1 - y),)


# `_sigmoid(x)` (templates/sigmoid.py.j2) is 1 / (1 + exp(-x)) in one array, four passes and one
# new array; where x is below -709.8 (-88.7 in float32) exp(-x) overflows to inf and the value is
# 0, within the smallest normal number of the true one, and that overflow is not warned of. On
# the project's 2-core machine (`python bench/kernels.py --only sigmoid`, docs/performance.md,
# "Kernels") that is faster than raising x to log of the smallest normal number first (a fifth
# pass), than the maximum(e, x >= 0) / (1 + e) form of exp(-|x|), seven passes and a mask, and
# than the tanh form `0.5 * np.tanh(0.5 * x) + 0.5` (np.tanh is not vectorized in float64 there,
# and the tanh form gives 0 below x = -37).
unary(
    "sigmoid",
    lambda x: helper("_sigmoid", x, ufunc=True),
    _sigmoid_adjoint,
    math_fn=_sigmoid_number,
    doc="logistic, 1 / (1 + exp(-x)), computed without a warning where exp(-x) overflows",
    flops=lambda y, x: 4 * size(y),
    ufunc=True,
)

# sigmoid(-x), 1 / (1 + exp(x)): not the language's, made by the optimizer
# (`optimize.products.sigmoid_of_minus`) for a sigmoid whose argument is a negation or a
# product by a number, so that `_sigmoid` does not negate it again (`sigmoid(1.702 * x)` is
# `_sigmoid(-1.702 * x, minus=True)`, one pass fewer).
unary(
    "sigmoid_of_minus",
    lambda x: helper("_sigmoid", x, ufunc=True, minus=Lit(True)),
    lambda g, y, x: (-(g * y * (1 - y)),),
    math_fn=lambda x: _sigmoid_number(Unary("-", x)),
    doc="the logistic function of -x, 1 / (1 + exp(x)), computed without a warning where "
    "exp(x) overflows",
    flops=lambda y, x: 4 * size(y),
    ufunc=True,
    call=None,
)


unary(
    "relu",
    lambda x: array("maximum", x, Lit(0), ufunc=True),
    lambda g, y, x: (g * gt(y, 0),),
    math_fn=lambda x: builtin("max", x, Lit(0)),
    doc="max(x, 0)",
    ufunc=True,
)


def _log1p_kernel(x: Node):
    """`_log1p_unit` (templates/log1p_unit.py.j2) for log1p(exp(-|a|)), softplus's, whose
    argument is in [0, 1]: np.log1p in float64; in float32, np.log corrected by the rounding
    error of 1 + x, which NumPy vectorizes where its float32 log1p is not, at half the time
    (`python bench/kernels.py --only softplus`, docs/performance.md, "Kernels")."""
    if x.op == "exp" and x.args[0].op == "neg" and x.args[0].args[0].op == "abs":
        return lambda e: helper("_log1p_unit", e, ufunc=True)
    return None


unary(
    "log1p",
    "log1p",
    lambda g, y, x: (g / (1 + x),),
    doc="log(1 + x), accurate for small x",
    ufunc=True,
    kernel=_log1p_kernel,
)
unary("sin", "sin", lambda g, y, x: (g * make("cos", x),), doc="sine", ufunc=True)
unary("cos", "cos", lambda g, y, x: (-g * make("sin", x),), doc="cosine", ufunc=True)


def _softplus_expand(x: Node) -> Node:
    """relu(x) + log1p(exp(-|x|)), which never overflows. On the project's 2-core machine
    (`python bench/kernels.py`, 1e6 elements, docs/performance.md, "Kernels") it takes
    0.78-0.92x the time of `np.logaddexp(0, x)` in float64 and 0.56-0.67x in float32. Its
    log1p is emitted as `_log1p_unit` (`_log1p_kernel`): log1p(e)
    written with np.log, which NumPy vectorizes, corrected by the rounding error of 1 + e, is 2x
    faster in float32 but 1.5x slower in float64, so the helper chooses by the dtype."""
    return make("relu", x) + make("log1p", _exp_of_minus_abs(x))


def _softplus_adjoint(g, y, x):
    """g * sigmoid(x) as exp(x - y), y = softplus(x), as an expert writes it: x - y <= 0, so
    the exp never overflows, and the rounding of x - y, half an ulp of x, is the relative
    error it gives (17 ulp at most in float64, near x = -32; 5 in float32;
    tests/test_stability.py). Three passes and one new array from the forward's output, where
    maximum(e, x >= 0) / (1 + e) from the forward's e = exp(-|x|) took five, a mask and two;
    and the forward need not keep e, so its log1p works in e's array."""
    return (g * make("exp", x - y),)


composite(
    "softplus",
    lambda x: Type("float", x.shape, x.static),
    _softplus_expand,
    _softplus_adjoint,
    jvp=diagonal(_softplus_adjoint),
    elementwise=True,
    doc="log(1 + exp(x)), computed as relu(x) + log1p(exp(-|x|)): finite for any x",
    call=("x",),
)


# NumPy has no erf: the module defines `_erf` (templates/erf.py.j2), polynomials evaluated
# over the whole array, within about 2 ulp in float64. Its derivative is 2/sqrt(pi) exp(-x**2).
unary(
    "erf",
    lambda x: helper("_erf", x),
    lambda g, y, x: (g * (2 / math.sqrt(math.pi)) * make("exp", -(x * x)),),
    math_fn="erf",
    doc="the error function, 2/sqrt(pi) times the integral of exp(-t**2) from 0 to x",
    # a polynomial of degree 12 to 15 in a variable of x (two operations a degree), and an exp
    # and a few operations more for |x| >= 1
    flops=lambda y, x: 36 * size(y),
    fold=math.erf,
    reads="erf",
)


def sign(x) -> Node:
    return make("sign", x)


def _abs_adjoint(g, y, x):
    return (g * sign(x),)


register(
    "abs",
    lambda x: Type("int" if x.dtype == "int" else "float", x.shape, x.static),
    # Python's abs keeps a Python number one (np.abs(-1.5) is a float64 NumPy number)
    lambda at, x: builtin("abs", x) if python_numbers(at) else array("abs", x, ufunc=True),
    _abs_adjoint,
    jvp=diagonal(_abs_adjoint),
    elementwise=True,
    doc="|x|; its gradient is sign(x), 0 at 0 (as in PyTorch)",
    call=("x",),
    ufunc=True,
)


def _sign_emit(at, x):
    """NumPy's sign; on a Python number (a constant, a size) `(x > 0) - (x < 0)`, and on a 0-d
    value that may be one, `float(np.sign(x))`, kept a Python number."""
    if at.node.args[0].type.static:
        return BinOp("-", BinOp(">", x, Lit(0)), BinOp("<", x, Lit(0)))
    if python_numbers(at) and at.node.dtype == "float":
        return number_call(at, "sign", x)
    return array("sign", x)


register(
    "sign",
    lambda x: Type(x.dtype, x.shape, x.static),
    _sign_emit,
    lambda g, y, x: (None,),  # piecewise constant: its derivative is 0 wherever it has one
    jvp=no_tangent,
    elementwise=True,
    doc="-1, 0 or 1: the gradient of abs",
)


def _neg_emit(at, x):
    t = at.node.args[0].type
    if t.dtype == "bool" and not t.static:  # NumPy does not negate a mask
        return Unary("-", method(x, "astype", Ref(LOCAL, "int")))
    return Unary("-", x)


def _neg_adjoint(g, y, x):
    return (-g,)


register(
    "neg",
    lambda x: Type(x.dtype if x.dtype != "bool" else "int", x.shape, x.static),
    _neg_emit,
    _neg_adjoint,
    jvp=diagonal(_neg_adjoint),
    elementwise=True,
    scales=-1,
    doc="-x",
    fold=operator.neg,
)


def _counted(x, t: Type):
    """A mask array as integers (`m.astype(int)`); a plain boolean as it is."""
    return method(x, "astype", Ref(LOCAL, "int")) if t.dtype == "bool" and not t.static else x


binary(
    "add",
    "+",
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
    lambda g, y, a, b: (g, -g),
    doc="a - b",
    fold=operator.sub,
    augmented=True,
    counts=True,
)
binary(
    "mul",
    "*",
    lambda g, y, a, b: (g * b, g * a),
    doc="a * b",
    fold=operator.mul,
    augmented=True,
    commutes=True,
    masks="&",  # (NumPy's product of two masks is their `and`: `&` says so)
)


def never_zero(n: Node) -> bool:
    """A nonzero constant, the larger of a value and a positive constant (`max(N, 1)`), or a
    negation or a product of those (`-max(N, 1)`, `2 * max(N, 1)`)."""
    if n.op == "const":
        return n.attr("value") != 0
    if n.op in ("neg", "mul"):
        return all(never_zero(a) for a in n.args)
    return n.op == "maximum" and any(a.op == "const" and a.attr("value") > 0 for a in n.args)


def _div_numbers(at, a, b):
    """Python raises ZeroDivisionError on `s / N` for N = 0 (a sum over an empty batch divided
    by its size): NumPy's division, unless the divisor cannot be 0."""
    return None if never_zero(at.node.args[1]) else number_call(at, "divide", a, b)


def _pow_numbers(at, a, b):
    """Python raises on `0.0 ** -1` (ZeroDivisionError) and `1e200 ** 2` (OverflowError), and
    `(-8.0) ** (1 / 3)` is complex: NumPy's power, for floats (integers are exact in Python)."""
    return number_call(at, "power", a, b) if at.node.dtype == "float" else None


binary(
    "div",
    "/",
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


# How many levels of operations `constant_value` reads: a number written as an expression is a few
# levels deep, and the bound keeps a question about a large graph's value from walking the graph.
CONSTANT_DEPTH = 12


def constant_value(n: Node, depth: int = 0) -> int | float | bool | None:
    """The value of a node made of literals alone (`-1` is `neg(1)`, `sqrt(2 / pi)`), or None.
    It stops at the first operand that is no number, and reads `CONSTANT_DEPTH` levels at most
    (a shared value below would otherwise be read once for every path to it)."""
    if n.op == "const":
        return n.attr("value")
    fold = OPS[n.op].fold
    if not n.args or fold is None or depth >= CONSTANT_DEPTH:
        return None
    values = []
    for a in n.args:
        value = constant_value(a, depth + 1)
        if value is None:
            return None
        values.append(value)
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
    _pow_adjoint,
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
        None,
        jvp=no_tangent,  # a mask
        dtype="bool",
        doc=f"a {_symbol} b, a mask",
        fold=getattr(operator, _name),
    )


# ---------------------------------------------------------------------------------------------
# Choosing between values: maximum, minimum, where, clip


# g * (a > b) + g / 2 * (a == b): maximum's gradient for a, made by its adjoint (and by
# minimum's, the operands swapped) where g is an array of the result's shape. `_ties_halved`
# (templates/ties_halved.py.j2) computes it in four passes and no float array but the result,
# in g's own where the backward may work in it: a two-layer net's `maximum(X @ W1 + b1, 0)` kept
# the products' six passes and an array of its own beside g and the pre-activation.
register(
    "ties_halved",
    lambda g, a, b: _elementwise_type(g, a, b, dtype="float"),
    lambda at, g, a, b: helper("_ties_halved", g, a, b, ufunc=True),
    lambda d, y, g, a, b: (_halved_ties(d, y, a, b), None, None),
    jvp=lambda t, y, g, a, b: None if t[0] is None else _halved_ties(t[0], y, a, b),
    elementwise=True,
    doc="g where a > b, g / 2 where a == b, 0 elsewhere: maximum(a, b)'s gradient for a",
    flops=lambda y, g, a, b: 4 * size(y),  # (two comparisons and two products)
    ufunc=True,
)


def _halved_ties(g: Node, y: Node, a: Node, b: Node) -> Node:
    """g where a > b, g / 2 where a == b, 0 elsewhere, of y's shape: `ties_halved` where g is an
    array of y's shape (whose array gives the dtype), else the two products."""
    if g.shape == y.shape and g.ndim and not g.type.static:
        return make("ties_halved", g, a, b)
    return g * gt(a, b) + 0.5 * g * make("eq", a, b)


def _extremum(name, fn, python_fn, doc):
    """maximum or minimum."""

    def emit(at, a, b):
        if all(x.type.static for x in at.node.args):
            return builtin(python_fn, a, b)
        return array(fn, a, b, ufunc=True)

    def adjoint(g, y, a, b):
        first, second = (a, b) if name == "maximum" else (b, a)  # (minimum's: where b > a)
        return _halved_ties(g, y, first, second), _halved_ties(g, y, second, first)

    register(
        name,
        lambda a, b: _elementwise_type(a, b),
        emit,
        adjoint,
        jvp=diagonal(adjoint),
        elementwise=True,
        doc=doc,
        call=("a", "b"),
        ufunc=True,
    )


_TIES = (
    "The gradient goes to the operand that is the result; where a == b each gets half of it, as "
    "torch.maximum and torch.minimum do."
)
_extremum("maximum", "maximum", "max", f"the larger of a and b, elementwise. {_TIES}")
_extremum("minimum", "minimum", "min", f"the smaller of a and b, elementwise. {_TIES}")


def _where_type(mask: Type, a: Type, b: Type) -> Type:
    if mask.dtype != "bool":
        raise ShapeError(
            f"where: the mask must be boolean, a comparison such as x > 0; got the {mask.dtype} "
            f"value {mask}"
        )
    shape = broadcast(mask.shape, a.shape, b.shape)
    return Type(promote(a, b), shape, mask.static and a.static and b.static)


def _where_emit(at, mask, a, b):
    if python_numbers(at):  # np.where would make a float64 array of Python numbers
        return Cond(a, mask, b)
    numbers = _two_numbers(at.node)
    if numbers is not None and not at.facts.functional:
        return _where_as_arithmetic(mask, *numbers)
    if numbers is not None and at.dtype is not None and at.node.dtype == "float":
        # (PyTorch's where of two Python floats is float32: one of them given the dtype)
        a = array("asarray", a, dtype=at.dtype)
    return array("where", mask, a, b)


def _two_numbers(n: Node) -> tuple[int | float, int | float, bool] | None:
    """where(m, a, b)'s two branches, where both are finite numbers (not booleans) and the mask
    an array, and b + (a - b) is a exactly (`_exact`): (a, b, False); where instead a + (b - a)
    is b, (b, a, True), the mask to be inverted (`where(x < 0, 0.01, 1)`: 1 + (0.01 - 1) is not
    0.01, 0.01 + (1 - 0.01) is 1); else None."""
    if n.args[0].type.static or not n.args[0].ndim:
        return None
    values = [constant_value(x) for x in n.args[1:]]
    if any(v is None or isinstance(v, bool) or not math.isfinite(v) for v in values):
        return None
    a, b = values
    if _exact(a, b):
        return a, b, False
    return (b, a, True) if _exact(b, a) else None


def _exact(a: float, b: float) -> bool:
    """Whether b + (a - b) is a, in float64 and in float32 (`np.multiply(a - b, m,
    dtype=x.dtype) + b` rounds a - b and b to x's dtype, then adds in it)."""
    f32 = lambda v: struct.unpack("f", struct.pack("f", v))[0]  # noqa: E731
    return b + (a - b) == a and f32(f32(a - b) + f32(b)) == f32(a)


def _where_as_arithmetic(mask, a, b, inverted):
    """where(m, a, b) of two numbers as `(a - b) * m + b` (`a * m` for b = 0 and a > 0, whose
    zeros are +0.0 as where's are), and `inverted`, where(~m, a, b). NumPy's where picks
    element by element with a branch, which a mask of random signs mispredicts: 4.9 ms over
    10**6 float64s, where the product and the sum take 0.5 ms together (and `~m`, a pass over
    bytes, 0.05 ms). The same values: m is 0 or 1, and b + (a - b) is a (`_two_numbers`); an
    inverted mask is exact for nan too, where a flipped comparison (`x >= 0` for `~(x < 0)`)
    is not. NumPy's target alone: the array-API libraries make a Python float times a mask of
    their default float dtype (PyTorch's float32), and keep their `where`, one of whose
    numbers is given the graph's dtype."""
    if inverted:
        mask = Unary("~", mask)
    if b == 0 and a > 0:
        return BinOp("*", Lit(a), mask)
    return BinOp("+", BinOp("*", Lit(a - b), mask), Lit(b))


register(
    "where",
    _where_type,
    _where_emit,
    lambda g, y, mask, a, b: (None, make("where", mask, g, 0), make("where", mask, 0, g)),
    jvp=lambda t, y, mask, a, b: (
        None if t[1] is None and t[2] is None else make("where", mask, t[1] or 0, t[2] or 0)
    ),
    elementwise=True,
    doc="a where mask holds, b elsewhere (all three broadcast); the mask is not differentiated",
    call=("mask", "a", "b"),
)


def _clip_emit(at, x, lo, hi):
    if all(a.type.static for a in at.node.args):
        return builtin("min", builtin("max", x, lo), hi)
    if python_numbers(at) and at.node.dtype == "float":  # (np.clip of one is a float64)
        return number_call(at, "clip", x, lo, hi)
    if not at.node.args[0].ndim and at.node.ndim:
        # a number clipped to arrays: np.clip makes it an array first, and a Python 0 (`max(s,
        # 0)` of a negative s) an int64 one, whose result is float64 with float32 bounds
        return array("minimum", array("maximum", x, lo), hi)
    return array("clip", x, lo, hi)


def _clip_adjoint(g, y, x, lo, hi):
    """clip(x, lo, hi) is min(max(x, lo), hi), as in NumPy and PyTorch: hi wins where lo > hi.
    On the boundaries (x == lo or x == hi) the gradient goes to x, as torch.clamp does. Two
    masks are combined before they meet g (`g * (a & b)`: one float pass, not two)."""
    return (
        g * (make("ge", x, lo) * make("le", x, hi)),
        g * (make("lt", x, lo) * make("le", lo, hi)),
        g * gt(make("maximum", x, lo), hi),
    )


register(
    "clip",
    lambda x, lo, hi: _elementwise_type(x, lo, hi),
    _clip_emit,
    _clip_adjoint,
    jvp=diagonal(_clip_adjoint),
    elementwise=True,
    doc="x limited to [lo, hi] (numbers or tensors, broadcast); the gradient reaches x where "
    "lo <= x <= hi, boundaries included, as with torch.clamp",
    call=("x", "lo", "hi"),
)
