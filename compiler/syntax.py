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
    """`name = value`, or `a, b = f(...)`: several names for the outputs of a `fn`."""

    loc: Loc
    targets: tuple[str, ...]
    value: Expr
    target_locs: tuple[Loc, ...]


@dataclass(frozen=True)
class SlotWrite:
    """`ys[:, t] = value`: one slot of an array made before the loop, written by an iteration."""

    loc: Loc
    target: str
    subscripts: tuple[Expr, ...]
    value: Expr

    @property
    def targets(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class For:
    """`for var in range(...) { body }`: `bounds` are the range's arguments (one or two)."""

    loc: Loc
    var: str
    var_loc: Loc
    range_name: str
    range_loc: Loc
    bounds: tuple[Expr, ...]
    body: tuple[Statement, ...]
    end: Loc  # the closing brace

    @property
    def targets(self) -> tuple[str, ...]:
        return ()


Statement = Assign | SlotWrite | For


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
    body: tuple[Statement, ...]
    end: Loc  # the closing brace


@dataclass(frozen=True)
class Module:
    definitions: tuple[Definition, ...]


def statements(body) -> list:
    """The statements of a body, those of its loops' bodies after each loop, in source order."""
    out = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, For):
            out.extend(statements(stmt.body))
    return out


def assigned(body, nested_slots: bool = False) -> list[str]:
    """The names a body assigns, its loops' bodies included, in order of first assignment;
    with `nested_slots`, also the arrays whose slots its nested loops write (which change in
    the body, as a whole)."""
    out: dict[str, None] = {}
    for stmt in body:
        if isinstance(stmt, Assign):
            out.update(dict.fromkeys(stmt.targets))
        elif isinstance(stmt, For):
            out.update(dict.fromkeys(assigned(stmt.body)))
            if nested_slots:
                out.update(
                    dict.fromkeys(
                        w.target for w in statements(stmt.body) if isinstance(w, SlotWrite)
                    )
                )
    return list(out)


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
        for stmt in statements(d.body):
            if isinstance(stmt, For):
                continue
            stack = [(stmt.value, 1)]
            while stack:
                e, k = stack.pop()
                if k > depth:
                    depth, where = k, stmt.value.loc
                stack.extend((part, k + 1) for part in _parts(e))
    return depth, where


# How tightly each operator binds, as in docs/language.md's precedence table: a part that binds
# more loosely than its place needs is shown in parentheses.
_LEVEL = {
    **dict.fromkeys(("lt", "le", "gt", "ge", "eq", "ne"), 1),
    **dict.fromkeys(("add", "sub"), 2),
    **dict.fromkeys(("mul", "div", "floordiv", "matmul"), 3),
    "neg": 4,
    "pow": 5,
}
_SPELLING = {
    "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "add": "+",
    "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "matmul": "@", "pow": "**",
}  # fmt: skip


def show(e: Expr, level: int = 0) -> str:
    """`e` written as bp source, in a place that needs an operator binding at least as tightly
    as `level` (0: any): for messages that suggest what to write instead."""
    own = 6  # atoms and postfix forms
    match e:
        case Binary(op="pow"):
            own, text = 5, f"{show(e.left, 6)} ** {show(e.right, 4)}"
        case Binary(op=op):
            own = _LEVEL[op]
            left = own + 1 if own == 1 else own  # left-associative, but comparisons do not chain
            text = f"{show(e.left, left)} {_SPELLING[op]} {show(e.right, own + 1)}"
        case Unary():
            own, text = 4, f"-{show(e.operand, 4)}"
        case Name(id=name):
            text = name
        case Number(value=v) | Bool(value=v):
            text = ("true" if v else "false") if isinstance(v, bool) else repr(v)
        case String(value=v):
            text = f'"{v}"'
        case Tuple(items=items):
            inner = ", ".join(show(i) for i in items)
            text = f"({inner},)" if len(items) == 1 else f"({inner})"
        case Call(func=f, args=args, kwargs=kwargs):
            parts = [show(a) for a in args] + [f"{k.name}={show(k.value)}" for k in kwargs]
            text = f"{show(f, 6)}({', '.join(parts)})"
        case Index(value=v, subscripts=subs):
            text = f"{show(v, 6)}[{', '.join(show(i) for i in subs)}]"
        case Slice(start=a, stop=b, step=c):
            text = ":".join("" if x is None else show(x) for x in (a, b))
            text += "" if c is None else f":{show(c)}"
        case Attribute(value=v, attr=attr):
            text = f"{show(v, 6)}.{attr}"
        case _:  # pragma: no cover - every expression is one of the above
            raise TypeError(type(e).__name__)
    return f"({text})" if own < level else text
