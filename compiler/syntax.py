"""The abstract syntax of a `.bp` file: frozen dataclasses built by the parser, positions kept."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .diagnostics import Loc


@dataclass(frozen=True)
class Expr:
    loc: Loc


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Number(Expr):
    value: int | float


@dataclass(frozen=True)
class Bool(Expr):
    value: bool


@dataclass(frozen=True)
class String(Expr):
    value: str


@dataclass(frozen=True)
class Tuple(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "neg"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # add sub mul div matmul pow lt le gt ge eq ne
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Keyword:
    loc: Loc
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Slice(Expr):
    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass(frozen=True)
class Index(Expr):
    value: Expr
    subscripts: tuple[Expr, ...]


@dataclass(frozen=True)
class Attribute(Expr):
    value: Expr
    attr: str


@dataclass(frozen=True)
class Assign:
    loc: Loc
    target: str
    value: Expr


@dataclass(frozen=True)
class Param:
    loc: Loc
    name: str
    dtype: str  # "float", "int" or "bool"
    dims: tuple[Expr, ...]  # dimension expressions: names, integers, + - * / //
    dim_locs: tuple[Loc, ...]


@dataclass(frozen=True)
class Definition:
    loc: Loc
    kind: str  # "graph" or "fn"
    name: str
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    outputs_loc: Loc
    wrt: tuple[tuple[str, Loc], ...] | None
    body: tuple[Assign, ...]
    end: Loc  # the closing brace


@dataclass(frozen=True)
class Module:
    definitions: tuple[Definition, ...]


def _parts(e: Expr):
    """The expressions directly inside `e`."""
    for f in fields(e):
        value = getattr(e, f.name)
        for part in value if isinstance(value, tuple) else (value,):
            part = part.value if isinstance(part, Keyword) else part
            if isinstance(part, Expr):
                yield part


def deepest(module: Module) -> tuple[int, Loc | None]:
    """How deeply the most nested statement of `module` nests its expression, and where that
    statement's expression starts; measured without recursion, for a program too deep for it."""
    depth, where = 0, None
    for d in module.definitions:
        for stmt in d.body:
            stack = [(stmt.value, 1)]
            while stack:
                e, k = stack.pop()
                if k > depth:
                    depth, where = k, stmt.value.loc
                stack.extend((part, k + 1) for part in _parts(e))
    return depth, where
