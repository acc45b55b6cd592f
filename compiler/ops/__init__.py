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
from dataclasses import dataclass

from ..dims import Dim, Shape, show_shape
from ..ir import OPS, OpDef, ShapeError, Type

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


def emit_call(fn: str, *parts: str) -> Code:
    return Code(f"{fn}({', '.join(parts)})")


def number_filled(ctx, x: Code, shape: Shape) -> Code:
    """A plain Python number as an array of a shape (numbers have no `.reshape` or `[None]`)."""
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
