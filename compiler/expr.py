"""The emission data: generated code as frozen dataclasses, before it is any text.

An operation's emission (`OpDef.emit`) returns an `Expr`: a call of a function of the array
namespace (`Call(Ref(ARRAY, "exp"), (x,))`), an operator (`BinOp("@", a, b)`), a method call, a
subscript, a literal, a name. The lowering (`lower.py`) puts expressions into `Stmt`s (an
assignment, an augmented assignment, a call that writes into an array), deciding names, buffers
and in-place steps as data; a printer (`printer.py`) writes them for one target (NumPy's `np.`)
or in the math notation of `bpc explain`. Nothing reads generated text back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .dims import Dim

# The namespaces a `Ref` names a function of; the printer says how each is written.
ARRAY = "array"  # the array library: `np` for NumPy
MATH = "math"  # Python's math module
CONTEXTVARS = "contextvars"  # Python's contextvars module (a helper's template imports it)
HELPER = "helper"  # a function the module defines from a template (`_scatter_add`)
LOCAL = ""  # a Python built-in, or a name the module defines (`_shapes`, `FGrads`)


class Expr:
    """An expression of generated code."""

    __slots__ = ()

    def parts(self) -> tuple[Expr, ...]:
        """The expressions directly inside this one."""
        return ()


@dataclass(frozen=True, slots=True)
class Name(Expr):
    """A variable of the generated function."""

    id: str


@dataclass(frozen=True, slots=True)
class Ref(Expr):
    """A function or a constant of a namespace: `Ref(ARRAY, "exp")` is NumPy's `np.exp`."""

    module: str
    name: str


@dataclass(frozen=True, slots=True)
class Lit(Expr):
    """A Python literal: a number, a boolean, a string, `None` (a new axis in a subscript) or
    `...` (`Ellipsis`)."""

    value: object


@dataclass(frozen=True, slots=True)
class Size(Expr):
    """A dimension expression (`N`, `C*H*W`, `T - 1`), written in the function's size names."""

    dim: Dim


@dataclass(frozen=True, slots=True)
class Attr(Expr):
    """`obj.name`: an attribute (`x.T`, `x.dtype`), or a method when called."""

    obj: Expr
    name: str

    def parts(self) -> tuple[Expr, ...]:
        return (self.obj,)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """`fn(*args, **kwargs)`. `ufunc`: a ufunc of its first argument, which takes `out=` and
    may then write its result into that argument's array (`np.exp(x, out=x)`)."""

    fn: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    ufunc: bool = False

    def parts(self) -> tuple[Expr, ...]:
        return (self.fn, *self.args, *(v for _, v in self.kwargs))


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    """`left op right` for a Python operator (`+`, `@`, `**`, `<`, `%`, ...)."""

    op: str
    left: Expr
    right: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """`-operand`."""

    op: str
    operand: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Slice(Expr):
    """`start:stop:step` inside a subscript; None for a bound left out."""

    start: Expr | None = None
    stop: Expr | None = None
    step: Expr | None = None

    def parts(self) -> tuple[Expr, ...]:
        return tuple(p for p in (self.start, self.stop, self.step) if p is not None)


@dataclass(frozen=True, slots=True)
class Subscript(Expr):
    """`obj[items]`: each item an expression, a `Slice`, `Lit(None)` or `Lit(...)`."""

    obj: Expr
    items: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return (self.obj, *self.items)


@dataclass(frozen=True, slots=True)
class Tuple(Expr):
    """`(a, b)`; `(a,)` for one item, `()` for none."""

    items: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class List(Expr):
    """`[a, b]`."""

    items: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class Cond(Expr):
    """`body if test else orelse`."""

    body: Expr
    test: Expr
    orelse: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.body, self.test, self.orelse)


# ---------------------------------------------------------------------------------------------
# Building expressions


NONE = Lit(None)  # a new axis of size 1 in a subscript
ALL = Slice()  # `:`
ELLIPSIS = Lit(...)


def array(name: str, *args: Expr, ufunc: bool = False, **kwargs: Expr) -> Call:
    """A function of the array namespace: `array("exp", x)` is NumPy's `np.exp(x)`."""
    return Call(Ref(ARRAY, name), args, tuple(kwargs.items()), ufunc)


def math_call(name: str, *args: Expr) -> Call:
    """A function of Python's math module, for Python numbers: `math.tanh(x)`."""
    return Call(Ref(MATH, name), args)


def builtin(name: str, *args: Expr, **kwargs: Expr) -> Call:
    """A Python built-in or a function the module defines: `max(x, 0)`, `_shapes(...)`."""
    return Call(Ref(LOCAL, name), args, tuple(kwargs.items()))


def helper(name: str, *args: Expr, ufunc: bool = False, **kwargs: Expr) -> Call:
    """A function the module defines from a template when its code calls it (`_labels`); with
    `ufunc`, one that takes `out=` for its first argument, as a ufunc does (`_sigmoid`)."""
    return Call(Ref(HELPER, name), args, tuple(kwargs.items()), ufunc)


def method(obj: Expr, name: str, *args: Expr, **kwargs: Expr) -> Call:
    """`obj.name(*args, **kwargs)`: `method(x, "sum", axis=Lit(0))`."""
    return Call(Attr(obj, name), args, tuple(kwargs.items()))


def shape(dims) -> Tuple:
    """A shape as a tuple of sizes: `(N, D)`."""
    return Tuple(tuple(Size(d) for d in dims))


def walk(e: Expr) -> Iterator[Expr]:
    """`e` and every expression inside it."""
    stack = [e]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(e.parts())


# ---------------------------------------------------------------------------------------------
# Statements


class Stmt:
    """A statement of a generated function's body."""

    __slots__ = ()

    def exprs(self) -> tuple[Expr, ...]:
        """The expressions the statement evaluates."""
        return ()

    def targets(self) -> tuple[str, ...]:
        """The names it assigns."""
        return ()


@dataclass(frozen=True, slots=True)
class Assign(Stmt):
    """`target = value`; a tuple of names unpacks (`N, D = _shapes(...)`)."""

    target: str | tuple[str, ...]
    value: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (self.value,)

    def targets(self) -> tuple[str, ...]:
        return self.target if isinstance(self.target, tuple) else (self.target,)


@dataclass(frozen=True, slots=True)
class AugAssign(Stmt):
    """`target op= value`: work done in the array `target` names."""

    target: str
    op: str
    value: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (Name(self.target), self.value)

    def targets(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Eval(Stmt):
    """An expression evaluated for what it does: `np.exp(t, out=t)`, `_cached(cache, C)`."""

    value: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (self.value,)


@dataclass(frozen=True, slots=True)
class Bind(Stmt):
    """`target = param.shape[axis]`: a size bound from an argument, unchecked."""

    target: str
    param: str
    axis: int

    def exprs(self) -> tuple[Expr, ...]:
        return (Subscript(Attr(Name(self.param), "shape"), (Lit(self.axis),)),)

    def targets(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Unpack(Stmt):
    """`a, b, ... = value`, broken over lines the way black breaks a long one."""

    names: tuple[str, ...]
    value: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (self.value,)

    def targets(self) -> tuple[str, ...]:
        return self.names


@dataclass(frozen=True, slots=True)
class Pack(Stmt):
    """`target = (a, b, ...)`, or `target = Cls(a, b, ...)`, exploded one name a line the way
    black writes one too long for a line."""

    target: str
    names: tuple[str, ...]
    cls: str | None = None

    def exprs(self) -> tuple[Expr, ...]:
        return tuple(Name(n) for n in self.names)

    def targets(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Return(Stmt):
    """`return a, b`."""

    values: tuple[Expr, ...]

    def exprs(self) -> tuple[Expr, ...]:
        return self.values


@dataclass(frozen=True, slots=True)
class Field(Stmt):
    """`name: type`, a field of a class (a NamedTuple's)."""

    name: str
    type: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (self.type,)


@dataclass(frozen=True, slots=True)
class Check(Stmt):
    """`if test: raise error`: a check of the arguments."""

    test: Expr
    error: Expr

    def exprs(self) -> tuple[Expr, ...]:
        return (self.test, self.error)


@dataclass(frozen=True, slots=True)
class Store(Stmt):
    """`target[items] = value`, or with `op` (`+`) `target[items] += value`: a slot of an array
    written or added to (`hs[:, t] = h`, `dx[:, t] += dx_t`)."""

    target: Subscript
    value: Expr
    op: str = ""

    def exprs(self) -> tuple[Expr, ...]:
        return (self.target, self.value)


@dataclass(frozen=True, slots=True)
class For(Stmt):
    """`for var in over:` and the statements of its body."""

    var: str
    over: Expr  # `range(T)`, `reversed(range(T))`
    body: tuple[Stmt, ...]

    def exprs(self) -> tuple[Expr, ...]:
        return (self.over, *(e for s in self.body for e in s.exprs()))

    def targets(self) -> tuple[str, ...]:
        return (self.var, *(t for s in self.body for t in s.targets()))


@dataclass(frozen=True, slots=True)
class Comment(Stmt):
    """`# text`: the forward line that the backward lines after it differentiate."""

    text: str


def reads(s: Stmt, sizes: Mapping[str, str]) -> set[str]:
    """The variables statement `s` reads; `sizes` names the variable of each dimension."""
    out: set[str] = set()
    for x in s.exprs():
        for e in walk(x):
            if e.__class__ is Name:
                out.add(e.id)
            elif e.__class__ is Size:
                out.update(sizes[d] for d in e.dim.symbols)
    return out
