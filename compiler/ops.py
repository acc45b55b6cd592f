"""The operations: for each, its shape rule, its NumPy emission and its adjoint, side by side.

Adding an operation means adding one entry here; the test suite is parametrized over `OPS` and
checks every adjoint against finite differences. Adjoints return one gradient per argument and may
leave a gradient in the result's broadcast shape: autodiff reduces it to the argument's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dims import Dim, Shape, product, show_shape
from .ir import OPS, REQUIRED, Node, OpDef, ShapeError, Type, make

# Python operator precedence, for emitting the fewest parentheses.
CMP, ADD, MUL, UNARY, POW, ATOM = 5, 10, 11, 12, 13, 14


@dataclass(frozen=True)
class Code:
    """Emitted Python for a value: its text, its precedence, and the value's type."""

    text: str
    prec: int = ATOM
    type: Type | None = None

    def at(self, prec: int) -> str:
        """The text, parenthesized if it binds more loosely than `prec` needs."""
        return self.text if self.prec >= prec else f"({self.text})"


def register(name, infer, emit, adjoint=None, *, elementwise=False, doc="", call=None, **static):
    """Add an operation; `call` and `static` say how the language spells it (see `OpDef`)."""
    OPS[name] = OpDef(name, infer, emit, adjoint, elementwise, doc, call, tuple(static.items()))


# ---------------------------------------------------------------------------------------------
# Shape helpers


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting over symbolic shapes; distinct dimension names never broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dim = Dim.of(1)
        for s in shapes:
            d = s[i - ndim + len(s)] if i - ndim + len(s) >= 0 else Dim.of(1)
            if d == dim or d == Dim.of(1):
                continue
            if dim == Dim.of(1):
                dim = d
                continue
            raise ShapeError(
                f"cannot broadcast shapes {', '.join(show_shape(s) for s in shapes)}: "
                f"dimension {dim} does not match {d}"
            )
        out.append(dim)
    return tuple(out)


def _promote(*types: Type, floating=False) -> str:
    kinds = {t.dtype for t in types}
    if floating or "float" in kinds:
        return "float"
    return "int" if "int" in kinds else "bool"


def normalize_axes(axis, ndim: int, what: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; `None` means all of them."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise ShapeError(f"{what}: axis must be an integer or a tuple of integers")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{what}: axis {a} is out of range for a {ndim}-d value")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis")
    return tuple(sorted(out))


def _shape_text(ctx, shape: Shape) -> str:
    items = [ctx.dim(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _call(fn: str, *parts: str) -> Code:
    return Code(f"{fn}({', '.join(parts)})")


# ---------------------------------------------------------------------------------------------
# Leaves: parameters, upstream gradients, constants and dimension sizes


def _leaf_type(*, type, **_):
    return type


register("param", _leaf_type, lambda ctx, **_: Code(ctx.name_of(ctx.node)), doc="a graph parameter")
register(
    "dout", _leaf_type, lambda ctx, **_: Code(ctx.name_of(ctx.node)), doc="an upstream gradient"
)


def _const_emit(ctx, *, value):
    text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = f"float({str(value)!r})"
    return Code(text, UNARY if text.startswith("-") else ATOM)


register(
    "const", lambda **kw: Type(_const_dtype(kw["value"]), (), True), _const_emit, doc="a literal"
)


def _const_dtype(value) -> str:
    return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"


def _dim_emit(ctx, *, dim: Dim):
    text = ctx.dim(dim)
    return Code(text, ADD if dim.is_sum else MUL if dim.is_product else ATOM)


register("dim", lambda *, dim: Type("int", (), True), _dim_emit, doc="the size of a dimension")


# ---------------------------------------------------------------------------------------------
# Elementwise operations


def _elementwise_type(*types: Type, dtype: str | None = None) -> Type:
    shape = broadcast(*(t.shape for t in types))
    return Type(dtype or _promote(*types), shape, all(t.static for t in types))


def unary(name, fn, adjoint, *, math_fn=None, doc=""):
    """An elementwise function of one float argument. `fn` is a NumPy function's name, or a
    function from the argument's Code to the result's; `math_fn` emits it on plain numbers."""

    def emit(ctx, x):
        if x.type.static and math_fn:
            return _call(math_fn, x.text)
        return _call(fn, x.text) if isinstance(fn, str) else fn(x)

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
    lambda x: _call("np.maximum", x.text, "0"),
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


# ---------------------------------------------------------------------------------------------
# Linear algebra


def _matmul_type(a: Type, b: Type) -> Type:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: operands must have at least one dimension; use * for scalars")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ShapeError(
            f"matmul: shapes {show_shape(a.shape)} and {show_shape(b.shape)} do not line up: "
            f"dimension {ka} does not match {kb}"
        )
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    rows = a.shape[-2:-1]
    cols = b.shape[-1:] if b.ndim > 1 else ()
    return Type(_promote(a, b), batch + rows + cols)


def _matmul_emit(ctx, a, b):
    return Code(f"{a.at(MUL)} @ {b.at(MUL + 1)}", MUL)


def unsqueeze(x: Node, axis: int) -> Node:
    """`x` with a new axis of size 1 at `axis` (negative counts from the end)."""
    shape = list(x.shape)
    shape.insert(axis if axis >= 0 else len(shape) + axis + 1, Dim.of(1))
    return make("reshape", x, shape=tuple(shape))


def squeeze_last(x: Node) -> Node:
    return make("reshape", x, shape=x.shape[:-1])


def _matmul_adjoint(g, y, a, b):
    """Each operand's gradient is the upstream gradient times the other operand, transposed;
    a 1-D operand is a row (left) or a column (right) vector."""
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if b.ndim == 1:  # y[..., n] = a[..., n, k] @ b[k]
        da = make("outer", g, b) if a.ndim == 2 else unsqueeze(g, -1) * b
        db = a.T @ g if a.ndim == 2 else squeeze_last(a.mT @ unsqueeze(g, -1))
        return da, db
    if a.ndim == 1:  # y[..., m] = a[k] @ b[..., k, m]
        da = b @ g if b.ndim == 2 else squeeze_last(b @ unsqueeze(g, -1))
        db = make("outer", a, g) if b.ndim == 2 else unsqueeze(a, -1) * unsqueeze(g, -2)
        return da, db
    return g @ b.mT, a.mT @ g


register("matmul", _matmul_type, _matmul_emit, _matmul_adjoint, doc="a @ b, as np.matmul")


def _outer_type(a: Type, b: Type) -> Type:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError("outer: operands must be vectors")
    return Type(_promote(a, b), a.shape + b.shape)


register(
    "outer",
    _outer_type,
    lambda ctx, a, b: _call("np.outer", a.text, b.text),
    lambda g, y, a, b: (g @ b, g.T @ a),
    doc="the outer product of two vectors",
)


def _transpose_type(x: Type, *, axes):
    if axes is not None and not (
        isinstance(axes, tuple)
        and all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    ):
        raise ShapeError("transpose: axes must be a tuple of integers")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim if x.ndim else a for a in axes) != list(range(x.ndim)) or any(
        not -x.ndim <= a < x.ndim for a in axes
    ):
        raise ShapeError(
            f"transpose: axes {axes} are not a permutation of a {x.ndim}-d value's axes"
        )
    axes = tuple(a % x.ndim for a in axes)
    return Type(x.dtype, tuple(x.shape[a] for a in axes), x.static), {"axes": axes}


def _transpose_emit(ctx, x, *, axes):
    if axes == tuple(reversed(range(len(axes)))):
        return Code(f"{x.at(ATOM)}.T")
    n = len(axes)
    if axes == tuple(range(n - 2)) + (n - 1, n - 2):
        return _call("np.swapaxes", x.text, "-1", "-2")
    return _call("np.transpose", x.text, repr(axes))


def _inverse(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


register(
    "transpose",
    _transpose_type,
    _transpose_emit,
    lambda g, y, x, *, axes: (make("transpose", g, axes=_inverse(axes)),),
    doc="permute axes (all of them reversed by default, like .T)",
    call=("x", "axes"),
    axes=None,
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
    return Type(x.dtype, shape, x.static), {"shape": shape}


def _reshape_emit(ctx, x, *, shape):
    return Code(f"{x.at(ATOM)}.reshape({_shape_text(ctx, shape)})")


register(
    "reshape",
    _reshape_type,
    _reshape_emit,
    lambda g, y, x, *, shape: (make("reshape", g, shape=x.shape),),
    doc="the same elements in a new shape",
    call=("x", "shape"),
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
    lambda ctx, x, *, shape: _call("np.broadcast_to", x.text, _shape_text(ctx, shape)),
    lambda g, y, x, *, shape: (g,),
    doc="a read-only view of x broadcast to a shape",
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
        return _call(fn, *parts)

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
    lambda ctx, like, value: _call("np.full_like", like.text, value.text),
    lambda g, y, like, value: (None, g),
    doc="an array shaped and typed like `like`, filled with `value` (broadcast)",
)
register(
    "copy",
    lambda x: x,
    lambda ctx, x: _call("np.copy", x.text),
    lambda g, y, x: (g,),
    doc="a fresh copy",
)


# Built-ins of the language that are not implemented yet: a call gives a clean diagnostic.
PLANNED = frozenset(
    "log1p abs sin cos softplus maximum minimum where clip einsum max min logsumexp softmax "
    "log_softmax cross_entropy one_hot take take_along concat".split()
)
