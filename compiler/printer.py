"""The last step of emission: the emission data (`expr.py`) as text.

`NumPyPrinter` writes expressions and statements as NumPy code in black's layout: the fewest
parentheses, `x**2` for a power of simple operands, spaced slices, tuples and long statements
broken the way black breaks them (`blacken` asks black itself, once, for what is left). It is the
one place that knows NumPy's namespace is `np`. `MathPrinter` writes the same data in the
notation of the lecture note, for `bpc explain`: `dW = dq x^T`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .escape import comment, literal
from .expr import (
    ARRAY,
    CONTEXTVARS,
    HELPER,
    LOCAL,
    MATH,
    Assign,
    Attr,
    AugAssign,
    Bind,
    BinOp,
    Call,
    Check,
    Comment,
    Cond,
    Eval,
    Expr,
    Field,
    For,
    Lit,
    Name,
    Pack,
    Ref,
    Return,
    Size,
    Slice,
    Stmt,
    Store,
    Subscript,
    Tuple,
    Unary,
    Unpack,
    method,
)
from .expr import List as ListExpr

LINE_LENGTH = 88  # black's default: the generated modules are black-formatted
# The functions a module defines from a template when its code calls them (`expr.helper`).
HELPERS = {
    "_scatter_add": "scatter_add.py.j2",
    "_labels": "labels.py.j2",
    "_erf": "erf.py.j2",
    "_overflow_ignored": "overflow_ignored.py.j2",
    "_sigmoid": "sigmoid.py.j2",
    "_fast_tanh": "fast_tanh.py.j2",
    "_window_add": "window_add.py.j2",
    "_max_pool": "max_pool.py.j2",
    "_max_pool_route": "max_pool_route.py.j2",
    "_max_pool_pick": "max_pool_pick.py.j2",
    "_avg_pool": "avg_pool.py.j2",
    "_put": "put.py.j2",
    "_shifted": "shifted.py.j2",
    "_log1p_unit": "log1p_unit.py.j2",
    "_ties_halved": "ties_halved.py.j2",
    "_add_along": "add_along.py.j2",
    "_used_up": "used_up.py.j2",  # (and `_OnceCache`, the class of a cache it takes)
}
# What a helper's template names beyond NumPy and itself: the helpers it calls, and the modules
# of Python it imports. A module that calls the helper defines and imports these too.
HELPER_NEEDS = {
    "_sigmoid": (Ref(HELPER, "_overflow_ignored"),),
    "_fast_tanh": (Ref(HELPER, "_overflow_ignored"),),
    "_overflow_ignored": (Ref(CONTEXTVARS, "copy_context"),),
}
INDENT = 4  # a statement's indent in a function body

# Python's operator precedences, for the fewest parentheses.
COND, OR, CMP, AND, ADD, MUL, UNARY, POW, ATOM = 1, 3, 5, 7, 10, 11, 12, 13, 14
BINARY = {
    "or": OR,
    "&": AND,
    "//": MUL,
    "+": ADD,
    "-": ADD,
    "*": MUL,
    "/": MUL,
    "@": MUL,
    "%": MUL,
    "**": POW,
    **{op: CMP for op in ("<", "<=", ">", ">=", "==", "!=", "is")},
}


def _operand_precs(op: str) -> tuple[int, int]:
    """The precedences the left and the right operand of a binary operator need."""
    prec = BINARY[op]
    if op == "**":  # `x ** -y` is fine in Python: a unary operand binds tightly enough
        return prec + 1, UNARY
    if prec == CMP:  # Python chains comparisons: `a < b == c` is not `(a < b) == c`
        return prec + 1, prec + 1
    return prec, prec + 1


OPERANDS = {op: _operand_precs(op) for op in BINARY}
# The precedence of the expressions whose precedence does not depend on their contents.
_PREC = {cls: ATOM for cls in (Name, Ref, Attr, Call, Subscript, Slice, Tuple, ListExpr)}
_PREC |= {Unary: UNARY, Cond: COND}


class NumPyPrinter:
    """Python text for the emission data, with NumPy as the array namespace. `sizes` maps each
    dimension name to the variable that holds its size in the function being printed."""

    namespaces = {ARRAY: "np.", MATH: "math.", HELPER: "", LOCAL: ""}
    array_import = "import numpy as np"  # (`math` is imported where a module uses it)
    reserved = frozenset({"np", "math"})  # names the module's code may not take
    # What else is true of the target: its code may work in the arrays it makes (`+=`, `out=`;
    # a functional target's only with `+=`, which a library of immutable arrays rebinds), the
    # operations whose result may be an operand's own array there though NumPy's is new
    # (`OpDef.fresh`), the templates of its helpers and of its argument checks.
    functional = False
    aliases: frozenset[str] = frozenset()
    helpers = HELPERS
    helper_needs = HELPER_NEEDS
    runtime = "runtime.py.j2"
    cache_base = "_Cache"  # (the class of the runtime's that each graph's cache class extends)

    @classmethod
    def imports(cls, namespaces: set[str]) -> list[str]:
        """The module's imports, given the namespaces its code names."""
        python = [f"import {m}" for m in (CONTEXTVARS, MATH) if m in namespaces]
        return python + [
            "from typing import NamedTuple",
            "",
            cls.array_import,
        ]

    def tidy(self, body: list[Stmt]) -> list[Stmt]:
        """A function's body as the target writes it: as it is for NumPy."""
        return body

    @classmethod
    def entry(cls, params: list[str], scalars: list[str], dtype) -> list[Stmt]:
        """A function's first lines after its arguments are checked: nothing for NumPy (see
        `ArrayApiPrinter.entry`)."""
        return []

    @classmethod
    def hand_over(cls, name: str) -> tuple[list[Stmt], Expr]:
        """The lines before a forward returns an output that its cache holds too, and what it
        returns: the array, read-only (writing into it would change the gradients that the
        backward computes from the cache). Such an output is an array that the forward made
        (`finish.cached_outputs`): a method call rather than a helper's, which costs about
        0.5 us a call more, and `write` given by position, `setflags(False)`: NumPy parses a
        keyword in 0.2 us more a call (0.08 against 0.29 us here)."""
        return [Eval(method(Name(name), "setflags", Lit(False)))], Name(name)

    def __init__(self, sizes: Mapping[str, str] | None = None):
        self.sizes = sizes or {}
        self._printed: dict[int, tuple[Stmt, tuple[str, tuple[Ref, ...]]]] = {}
        self._refs: list[Ref] = []  # those named by the statement being printed
        self._text = {
            Name: lambda e: e.id,
            Ref: self._ref,
            Lit: self._lit,
            Size: self._size,
            Attr: self._attr,
            Call: self._call,
            BinOp: self._binop,
            Unary: lambda e: e.op + self.operand(e.operand, UNARY),
            Subscript: self._subscript,
            Slice: self._slice,
            Tuple: lambda e: _tuple([self.text(i) for i in e.items], parens=True),
            ListExpr: lambda e: "[" + ", ".join(self.text(i) for i in e.items) + "]",
            Cond: lambda e: " if ".join([self.operand(e.body, CMP), self.operand(e.test, CMP)])
            + " else "
            + self.operand(e.orelse, CMP),
        }

    # Expressions

    def text(self, e: Expr) -> str:
        return self._text[e.__class__](e)

    def prec(self, e: Expr) -> int:
        """How tightly the text of `e` binds: a part that binds more loosely than its place
        needs is parenthesized."""
        cls = e.__class__
        prec = _PREC.get(cls)
        if prec is not None:
            return prec
        if cls is BinOp:
            return BINARY[e.op]
        if cls is Lit:
            return UNARY if _negative(e.value) else ATOM
        return ADD if e.dim.is_sum else MUL if e.dim.is_product else ATOM  # a Size

    def operand(self, e: Expr, prec: int) -> str:
        """The text of `e` in a place that needs precedence `prec`, parenthesized if need be."""
        text = self._text[e.__class__](e)
        return text if self.prec(e) >= prec else f"({text})"

    def _binop(self, e: BinOp) -> str:
        lp, rp = OPERANDS[e.op]
        left, right = self.operand(e.left, lp), self.operand(e.right, rp)
        if e.op == "**" and self._hugs(e, lp, rp):
            return f"{left}**{right}"  # black hugs a power of simple operands
        return f"{left} {e.op} {right}"

    def _hugs(self, e: BinOp, lp: int, rp: int) -> bool:
        return (
            self.prec(e.left) >= lp
            and self.prec(e.right) >= rp
            and self.simple(e.left)
            and self.simple(e.right)
        )

    def simple(self, e: Expr) -> bool:
        """A name, an attribute of one, or a number, maybe negated: what black calls a simple
        operand (it writes `x**2` and `x[a:b]` for those, `(x + 1) ** 2` and `x[a + 1 :]` for
        the others)."""
        if e.__class__ is Unary:
            return e.op == "-" and self._unsigned_simple(e.operand)
        if e.__class__ is Lit and _number(e.value):
            return True
        if e.__class__ is Size:
            terms = e.dim.terms
            return len(terms) <= 1 and all(not m or (len(m) == 1 and abs(c) == 1) for m, c in terms)
        return self._unsigned_simple(e)

    def _unsigned_simple(self, e: Expr) -> bool:
        if e.__class__ is Attr:
            return e.obj.__class__ in (Name, Attr) and self._unsigned_simple(e.obj)
        if e.__class__ is Lit:
            value = e.value
            return value is None or isinstance(value, bool) or (_number(value) and value >= 0)
        return e.__class__ is Name

    def plain(self, e: Expr) -> bool:
        """Whether `e` is written without parentheses: no call, no tuple, no operand that needs
        them."""
        cls = e.__class__
        if cls in (Name, Ref, Size):
            return True
        if cls is Lit:
            return not isinstance(e.value, str)
        if cls in (Call, Tuple):
            return False
        if cls is Attr:
            return self.prec(e.obj) >= ATOM and self.plain(e.obj)
        if cls is BinOp:
            lp, rp = OPERANDS[e.op]
            return self._plain_operand(e.left, lp) and self._plain_operand(e.right, rp)
        if cls is Unary:
            return self._plain_operand(e.operand, UNARY)
        if cls is Subscript:
            return self._plain_operand(e.obj, ATOM) and all(map(self.plain, e.items))
        if cls is Cond:
            return all(self._plain_operand(p, CMP) for p in e.parts())
        return all(map(self.plain, e.parts()))  # a slice, a list

    def _plain_operand(self, e: Expr, prec: int) -> bool:
        return self.prec(e) >= prec and self.plain(e)

    def _size(self, e: Size) -> str:
        return e.dim.render(self.sizes.__getitem__)

    def _lit(self, e: Lit) -> str:
        value = e.value
        if value is ...:
            return "..."
        if isinstance(value, str):
            return literal(value)
        if isinstance(value, float) and not math.isfinite(value):  # `-np.inf`, `np.nan`
            name = self.namespaces[ARRAY] + ("nan" if math.isnan(value) else "inf")
            return "-" + name if value < 0 else name
        return repr(value)

    def _attr(self, e: Attr) -> str:
        return f"{self.operand(e.obj, ATOM)}.{e.name}"

    def _call(self, e: Call) -> str:
        parts = [self.text(a) for a in e.args] + [f"{k}={self.text(v)}" for k, v in e.kwargs]
        return f"{self.operand(e.fn, ATOM)}({', '.join(parts)})"

    def _subscript(self, e: Subscript) -> str:
        return f"{self.operand(e.obj, ATOM)}[{', '.join(self.text(i) for i in e.items)}]"

    def _slice(self, e: Slice) -> str:
        parts = [e.start, e.stop] + ([e.step] if e.step is not None else [])
        texts = ["" if p is None else self.text(p) for p in parts]
        if all(self.simple(p) for p in parts if p is not None):
            return ":".join(texts)
        # black spaces the colons of a slice with an expression in it, like a binary operator
        text = texts[0]
        for before, after in zip(texts, texts[1:]):
            text += (" :" if before else ":") + (" " + after if after else "")
        return text

    # Statements

    def statement(self, s: Stmt) -> str:
        """A statement of a function body, unindented; a multi-line one (a long tuple packed or
        unpacked) in black's layout."""
        return self.printed(s)[0]

    def printed(self, s: Stmt) -> tuple[str, tuple[Ref, ...]]:
        """The statement's text, and the functions of Python's math and of the module's helpers
        it calls (what the module imports or defines for it). A statement is printed once: the
        lowering asks whether a statement fits on a line, and the same statement is written
        later."""
        done = self._printed.get(id(s))
        if done is not None and done[0] is s:
            return done[1]
        refs = self._refs = []
        out = self._printed[id(s)] = s, (self._statement(s), tuple(refs))
        self._refs = []
        return out[1]

    def _ref(self, e: Ref) -> str:
        if e.module in (MATH, HELPER):
            self._refs.append(e)
        return self.namespaces[e.module] + e.name

    def _statement(self, s: Stmt) -> str:
        cls = s.__class__
        if cls is Assign:
            target = s.target if isinstance(s.target, str) else _tuple(list(s.target))
            return f"{target} = {self.text(s.value)}"
        if cls is AugAssign:
            return f"{s.target} {s.op}= {self.text(s.value)}"
        if cls is Eval:
            return self.text(s.value)
        if cls is Return:
            return "return " + ", ".join(self.text(v) for v in s.values)
        if cls is Bind:
            return f"{s.target} = {s.param}.shape[{s.axis}]"
        if cls is Unpack:
            return _unpack(list(s.names), self.text(s.value))
        if cls is Pack:
            return _pack(s.target, list(s.names), s.cls)
        if cls is Comment:
            return "# " + comment(s.text)
        if cls is Store:
            return f"{self.text(s.target)} {s.op}= {self.text(s.value)}"
        if cls is For:
            lines = [self._statement(b).replace("\n", "\n" + " " * INDENT) for b in s.body]
            inner = "".join(f"\n{' ' * INDENT}{line}" for line in lines or ["pass"])
            return f"for {s.var} in {self.text(s.over)}:{inner}"
        if cls is Check:
            return f"if {self.text(s.test)}:\n    raise {self.text(s.error)}"
        if cls is Field:
            return f"{s.name}: {self.text(s.type)}"
        raise TypeError(f"not a statement: {s!r}")

    def fits(self, s: Stmt) -> bool:
        """Whether the statement fits on a line of a function body."""
        return len(self.statement(s)) <= LINE_LENGTH - INDENT


class MathPrinter(NumPyPrinter):
    """The emission data in the notation of the lecture note, for `bpc explain`: no `np.`, a
    matrix product by juxtaposition (`W^T dq`), a transpose as `^T`, and a number times a value
    as `2 q`."""

    namespaces = {**NumPyPrinter.namespaces, ARRAY: ""}

    def _binop(self, e: BinOp) -> str:
        lp, rp = OPERANDS[e.op]
        if e.op == "@" or (e.op == "*" and e.left.__class__ is Lit and _number(e.left.value)):
            return f"{self.operand(e.left, lp)} {self.operand(e.right, rp)}"
        return super()._binop(e)

    def _size(self, e: Size) -> str:
        return e.dim.render(self.sizes.__getitem__, " ")

    def _attr(self, e: Attr) -> str:
        if e.name == "T":
            return f"{self.operand(e.obj, ATOM)}^T"
        return super()._attr(e)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _negative(value) -> bool:
    """A number whose text starts with a minus sign (`-1`, `-0.0`, `-np.inf`)."""
    if not _number(value):
        return False
    if isinstance(value, float):
        return not math.isnan(value) and math.copysign(1.0, value) < 0
    return value < 0


# ---------------------------------------------------------------------------------------------
# black's layout of what the printer writes on several lines


def _tuple(names: list[str], parens: bool = False) -> str:
    """Names as a tuple, written the way black writes one."""
    if len(names) == 1:
        return f"({names[0]},)"
    return f"({', '.join(names)})" if parens or not names else ", ".join(names)


def _pack(target: str, names: list[str], cls: str | None = None) -> str:
    """`target = (a, b, ...)`, or `target = Cls((a, b, ...))` (a cache class, made by tuple's or
    list's own constructor), in a function body, exploded one name a line the way black writes
    one too long for a line (black itself takes seconds on a tuple of thousands)."""
    values = _tuple(names, True)
    line = f"{target} = {cls}({values})" if cls else f"{target} = {values}"
    if len(line) + INDENT <= LINE_LENGTH:
        return line
    if cls is None:
        return f"{target} = (\n" + "".join(f"    {name},\n" for name in names) + ")"
    return f"{target} = {cls}(\n    (\n" + "".join(f"        {n},\n" for n in names) + "    )\n)"


def _unpack(names: list[str], source: str) -> str:
    """`a, b, ... = source` in a function body, broken the way black breaks it: a call's
    arguments on a line of their own where they and the names fit (`a, b = _cached(` ...)."""
    line = f"{_tuple(names)} = {source}"
    if len(line) + INDENT <= LINE_LENGTH:
        return line
    fn, bracket, rest = source.partition("(")
    arguments = rest[:-1]
    if (
        bracket
        and source.endswith(")")
        and len(f"{_tuple(names)} = {fn}(") + INDENT <= LINE_LENGTH
        and len(arguments) + 2 * INDENT <= LINE_LENGTH
    ):
        return f"{_tuple(names)} = {fn}(\n    {arguments}\n)"
    if len(f"{_tuple(names)} = (") + INDENT <= LINE_LENGTH:
        return f"{_tuple(names)} = (\n    {source}\n)"
    return "(\n" + "".join(f"    {name},\n" for name in names) + f") = {source}"


def blacken(statements: list[str]) -> list[list[str]]:
    """Statements of function bodies too long for a line, each as the lines black breaks it
    into (indented as in a function body), all in one call to black: black on a whole module
    takes about a millisecond a line, too slow for graphs of thousands of operations."""
    if not statements:
        return []
    import black  # here, not at the top: 0.1 s to import, which a module whose lines fit skips

    snippet = "def _():\n" + "".join("    " + s.replace("\n", "\n    ") + "\n" for s in statements)
    formatted = black.format_str(snippet, mode=black.Mode()).splitlines()[1:]
    # each statement starts at the body's indent; its other lines are indented deeper or close
    # a bracket
    out: list[list[str]] = []
    for part in formatted:
        if part[INDENT] not in " )]}":
            out.append([])
        out[-1].append(part)
    return out


def black_signature(line: str) -> str:
    """A `def` line too long for one line, as black breaks it (black needs a body to parse
    it)."""
    import black

    return black.format_str(line + "\n    pass", mode=black.Mode())[: -len("\n    pass\n")]
