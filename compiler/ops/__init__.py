"""The operations: for each, its shape rule, its NumPy emission and its adjoint, side by side.

Adding an operation means adding one entry to the registry, in the module of its family; the test
suite is parametrized over `OPS` and checks every adjoint against finite differences and autograd.
Adjoints return one gradient per argument and may leave a gradient in the result's broadcast shape:
autodiff reduces it to the argument's shape.

This module holds what every family shares: emitted `Code` with its precedence, `register`, and
the shape helpers (broadcasting, axes).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

from ..dims import Dim, Shape, product, show_shape
from ..ir import OPS, Node, OpDef, ShapeError, Type

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


def register(
    name,
    infer,
    emit,
    adjoint=None,
    *,
    elementwise=False,
    doc="",
    call=None,
    flops=None,
    view=False,
    check=None,
    read_only=False,
    leaf=False,
    fresh=None,
    augmented=None,
    commutes=False,
    ufunc=False,
    fold=None,
    expand=None,
    promotes=None,
    **static,
):
    """Add an operation; `call` and `static` say how the language spells it, `flops` how many
    floating-point operations it does (see `OpDef`; one per result element when elementwise),
    `view` whether its result may be a view of its first argument, `check` what its operands'
    types cannot say; the other facts are `OpDef`'s. A leaf is no new array, and an elementwise
    operation computes in its operands' promoted dtype, unless told otherwise."""
    if flops is None and elementwise:
        flops = per_element
    OPS[name] = OpDef(
        name,
        infer,
        emit,
        adjoint,
        elementwise,
        doc,
        call,
        tuple(static.items()),
        flops=flops,
        view=view,
        check=check,
        read_only=read_only,
        leaf=leaf,
        fresh=not leaf if fresh is None else fresh,
        augmented=augmented,
        commutes=commutes,
        ufunc=ufunc,
        fold=fold,
        expand=expand,
        promotes=elementwise if promotes is None else promotes,
    )


# ---------------------------------------------------------------------------------------------
# Floating-point operations (`OpDef.flops`): estimates in the dimension names, for `bpc stats`


def size(t: Type) -> Dim:
    """The number of elements of a value of type `t`."""
    return product(t.shape)


def per_element(y: Type, *args: Type, **attrs) -> Dim:
    """One operation per element of the result: elementwise operations, comparisons."""
    return size(y)


def no_flops(y: Type, *args: Type, **attrs) -> Dim:
    """Views, copies, gathers, fills and conversions: memory traffic, no arithmetic."""
    return Dim.of(0)


def flops_of(node: Node) -> Dim:
    """The floating-point operations of one node; arithmetic on plain Python numbers (sizes,
    constants) is no NumPy operation and counts nothing."""
    if node.type.static:
        return Dim.of(0)
    return OPS[node.op].flops(node.type, *(a.type for a in node.args), **node.kw)


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


def promote(*types: Type, floating=False) -> str:
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


def shape_text(ctx, shape: Shape) -> str:
    items = [ctx.dim(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


_SIMPLE = re.compile(r"-?(\w+(\.\w+)*|(\d+\.?\d*|\.\d+)(e[-+]?\d+)?)")


def simple_operand(text: str) -> bool:
    """A name, an attribute of one, or a number, maybe negated: what black calls a simple operand
    (it writes `x**2` and `x[a:b]` for those, `(x + 1) ** 2` and `x[a + 1 :]` for the others)."""
    return _SIMPLE.fullmatch(text) is not None


def emit_call(fn: str, *parts: str) -> Code:
    return Code(f"{fn}({', '.join(parts)})")


def python_numbers(ctx) -> bool:
    """Whether every operand of the node being emitted may be a Python number when the module
    runs: a constant, a size, or a 0-d value made of `[]` parameters and douts alone, which the
    caller may pass as Python numbers. Python's arithmetic and `math` on them raise
    (ZeroDivisionError, "math domain error") where NumPy gives inf or nan and a warning."""
    strong = getattr(ctx, "strong", ())
    return all(a.ndim == 0 and (a.type.static or a not in strong) for a in ctx.node.args)


def number_call(ctx, fn: str, *args: Code) -> Code:
    """`float(np.fn(args))`: NumPy's function on numbers that may be Python's, for NumPy's answer
    (`float(np.sqrt(-1.0))` is nan, with NumPy's warning), kept a Python float, which takes the
    dtype of the arrays it meets (a NumPy float64 would make float32 arrays float64). A value that
    the emitter gives the graph's float dtype anyway is left a NumPy number."""
    call = emit_call(fn, *(a.text for a in args))
    if ctx.node in getattr(ctx, "born_weak", ()) and getattr(ctx, "dtype_of", None):
        return call
    return emit_call("float", call.text)


def number_filled(ctx, x: Code, shape: Shape) -> Code:
    """A 0-d value, maybe a Python number, as an array of a shape of size-1 axes."""
    return emit_call("np.full", shape_text(ctx, shape), x.text)


# Every built-in function of the language (docs/language.md); a call to one that no registered
# operation spells yet gets a clean "not supported yet" diagnostic.
LANGUAGE_BUILTINS = frozenset(
    "exp log log1p sqrt abs sin cos tanh sigmoid relu softplus maximum minimum where clip "
    "einsum transpose sum mean max min logsumexp softmax log_softmax cross_entropy one_hot "
    "reshape take take_along concat".split()
)


# The families register their operations on import.
for _family in ("leaves", "elementwise", "linalg", "shape", "reduce", "nn", "index"):
    importlib.import_module(f"{__name__}.{_family}")

SPELLED = frozenset(name for name, op in OPS.items() if op.call)
PLANNED = LANGUAGE_BUILTINS - SPELLED
