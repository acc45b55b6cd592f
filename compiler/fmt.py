"""`bpc fmt`: bp source in, the same program in its canonical layout out, every comment kept.

The layout is written from the syntax tree (`bpc.parse`); what the tree does not hold is read from
the tokens of the text: the comments (the grammar ignores them), how each number is spelled (`1e-5`
stays `1e-5`), which parameters share a line and whether the list ends with a comma. docs/tools.md
states the style. In short:

- one blank line between definitions; blank lines inside a body kept, at most one in a row;
- four spaces of indentation, four more in a loop's body: `for t in range(T) {` on one line,
  its statements below it, its `}` at the indentation of the `for`;
- parentheses only where precedence needs them;
- every binary operator between spaces, except `*`, `/` and `//` in arithmetic on sizes alone
  (integers and dimension names), which is written the way types write it: `[F, C, 2*R + 1]`,
  `reshape(x, (N, C*H*W))`, `a[:, H:2*H]`;
- a header on one line when it fits in `LINE_LENGTH` and its parameter list has no trailing comma;
  otherwise one line of parameters for each line they were on (the grouping is the author's), each
  line filled to the limit, the list ending with a comma;
- a statement too long for a line is broken at the brackets that end it, or else put in
  parentheses and broken before its operators, as black breaks Python;
- a comment on a line of its own stays before what follows it, re-indented; a comment after code
  stays after that code, at its column where the code leaves room. A comment inside a statement's
  or a header's brackets keeps that statement or header as it was written.

`format_source` checks its own work: its result must parse to the source's syntax tree (positions
aside: every statement, the loops' bodies and bounds and the slot writes' subscripts included), or
it raises `FormatError` rather than return a program that means something else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lark import Token

from . import syntax as s
from .diagnostics import CompileError, Loc, error, source_lines
from .parse import _parser, parse

LINE_LENGTH = 100  # black's limit in this project's pyproject.toml
INDENT = "    "

# How tightly each operator binds, and how it is spelled: the table `syntax.show` writes messages
# with. A part that binds more loosely than its place needs is written in parentheses.
_LEVEL, _SPELLING = s._LEVEL, s._SPELLING
_NEG, _ATOM = _LEVEL["neg"], 6  # unary minus; names, literals and postfix forms
_TIGHT = frozenset(("mul", "div", "floordiv"))  # without spaces in size arithmetic: `2*R + 1`
_HOLE = "\0"  # stands for the part of an expression a line is broken in


class FormatError(Exception):
    """The formatted text would not mean what the source means: a bug in the formatter."""


def format_source(text: str) -> str:
    """`text` in the canonical layout. Raises CompileError for a syntax error or an expression
    nested too deeply for Python's stack, FormatError where the result would not parse to the
    same program."""
    module = parse(text)
    try:
        tokens = list(_parser().lex(text, dont_ignore=True))
        frames, end = _skeleton(tokens, module)
        numbers = {(t.line, t.column): str(t) for t in tokens if t.type in ("INT", "FLOAT")}
        lines = _Writer(text, tokens, numbers).module(frames, end)
        result = "".join(line + "\n" for line in lines)
        if text.split("\n", 1)[0].endswith("\r"):  # written with the line ends it was read with
            result = result.replace("\n", "\r\n")
        _check_same(module, result)
    except RecursionError:
        depth, where = s.deepest(module)
        message = "too deeply to format; give some of its parts names of their own"
        raise error(where, f"this expression nests {depth} levels deep, {message}") from None
    return result


def _check_same(module: s.Module, result: str) -> None:
    try:
        again = parse(result)
    except CompileError as e:  # the formatter wrote something that does not parse
        raise FormatError(f"the formatted text does not parse: {e}") from None
    if _plain(again) != _plain(module):
        raise FormatError("the formatted text parses to a different program")


def _plain(x):
    """A syntax tree as nested tuples without its positions, for comparing two trees."""
    if isinstance(x, Loc):
        return None
    if dataclasses.is_dataclass(x):
        return (type(x).__name__, *(_plain(getattr(x, f.name)) for f in dataclasses.fields(x)))
    if isinstance(x, tuple):
        return tuple(_plain(i) for i in x)
    if isinstance(x, int | float):  # 1 == 1.0, but `1` and `1.0` are different programs
        return type(x).__name__, x
    return x


# ---------------------------------------------------------------------------------------------
# The text's structure: runs of tokens laid out as a whole, and the comments around them


@dataclass
class _Comment:
    text: str  # from `#`, without the line end
    line: int
    col: int  # of the `#`, from 1


@dataclass
class _Unit:
    """Tokens the layout places as a whole: a definition's `graph name(`, one parameter with its
    comma, `) -> outputs wrt ... {`, one statement, or a closing brace; by index in the tokens."""

    first: int
    last: int
    leading: list[_Comment] = field(default_factory=list)  # on lines of their own, before it
    trailing: _Comment | None = None  # after its last token, on that line
    inside: bool = False  # a comment between its tokens: it is kept as written


@dataclass
class _Loop:
    """A `for` statement: its header `for t in range(T) {`, the units of its body, its `}`."""

    head: _Unit
    body: list[_Unit | _Loop]
    close: _Unit


@dataclass
class _Frame:
    """One definition: its syntax and the units of its text."""

    definition: s.Definition
    open: _Unit
    params: list[_Unit]
    trailing_comma: bool
    tail: _Unit
    body: list[_Unit | _Loop]
    close: _Unit

    def header(self) -> list[_Unit]:
        return [self.open, *self.params, self.tail]


def _is_code(t: Token) -> bool:
    return t.type != "COMMENT" and bool(t.strip())


def _skeleton(tokens: list[Token], module: s.Module) -> tuple[list[_Frame], list[_Comment]]:
    """The units of each definition, with every comment given to the unit it belongs to; and the
    comments after the last definition."""
    scan = _Scan(tokens)
    frames = [scan.definition(d) for d in module.definitions]
    if scan.next_code() is not None:  # pragma: no cover - the parser read the same tokens
        raise FormatError("text after the last definition")
    units = [u for f in frames for u in (*f.header(), *_units(f.body), f.close)]
    owner = {i: u for u in units for i in range(u.first, u.last + 1) if _is_code(tokens[i])}
    end: list[_Comment] = []
    code_before = None  # the index of the last code token so far
    for i, t in enumerate(tokens):
        if _is_code(t):
            code_before = i
        elif t.type == "COMMENT":
            _place(_Comment(t.rstrip(), t.line, t.column), i, code_before, tokens, owner, end)
    return frames, end


def _units(body: list[_Unit | _Loop]) -> list[_Unit]:
    """The units of a body, those of its loops included."""
    out = []
    for u in body:
        out += [u.head, *_units(u.body), u.close] if isinstance(u, _Loop) else [u]
    return out


def _place(c: _Comment, at: int, code_before, tokens, owner, end: list[_Comment]) -> None:
    """Give the comment at token `at` to its unit: as its trailing comment, after code on the
    same line; as a leading one, on a line of its own before the unit; else it is inside."""
    if code_before is not None and tokens[code_before].line == c.line:
        unit = owner[code_before]
        if tokens[unit.last].line == c.line:
            unit.trailing = c
        else:
            unit.inside = True
        return
    after = next((i for i in range(at + 1, len(tokens)) if _is_code(tokens[i])), None)
    if after is None:
        end.append(c)
    elif owner[after].first == after:
        owner[after].leading.append(c)
    else:
        owner[after].inside = True


class _Scan:
    """Walks the code tokens and newlines, finding where each unit starts and ends."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.at = [i for i, t in enumerate(tokens) if _is_code(t) or t.type == "_NL"]
        self.k = 0  # position in `at`

    def type(self, k: int) -> str:
        return self.tokens[self.at[k]].type

    def next_code(self) -> int | None:
        """Skip newlines; the position of the next code token, or None at the end."""
        while self.k < len(self.at) and self.type(self.k) == "_NL":
            self.k += 1
        return self.k if self.k < len(self.at) else None

    def last_code(self, k: int) -> int:
        """The token index of the last code token before position k."""
        while self.type(k - 1) == "_NL":
            k -= 1
        return self.at[k - 1]

    def definition(self, d: s.Definition) -> _Frame:
        start = self.next_code()
        keyword = self.tokens[self.at[start]]
        if (keyword.line, keyword.column) != (d.loc.line, d.loc.col):  # pragma: no cover
            raise FormatError(f"lost track of the definition of {d.name}")
        self.k = start + 3  # after `graph name (`
        open_ = _Unit(self.at[start], self.at[start + 2])
        params, trailing_comma = self.params()
        rpar = self.k
        while self.type(self.k) != "LBRACE":
            self.k += 1
        tail = _Unit(self.at[rpar], self.at[self.k])
        self.k += 1
        body, close = self.block(d.body)
        if len(params) != len(d.params):  # pragma: no cover
            raise FormatError(f"lost track of the parameters of {d.name}")
        return _Frame(d, open_, params, trailing_comma, tail, body, close)

    def block(self, stmts) -> tuple[list[_Unit | _Loop], _Unit]:
        """The units of the statements `stmts` after a `{`, and the `}` that ends them."""
        body: list[_Unit | _Loop] = []
        for stmt in stmts:
            start = self.tokens[self.at[self.next_code()]]
            if (start.line, start.column) != (stmt.loc.line, stmt.loc.col):  # pragma: no cover
                raise FormatError(f"lost track of the statement at line {stmt.loc.line}")
            body.append(self.loop(stmt) if isinstance(stmt, s.For) else self.statement())
        if self.type(self.next_code()) != "RBRACE":  # pragma: no cover
            raise FormatError("lost track of the statements of a block")
        close = _Unit(self.at[self.k], self.at[self.k])
        self.k += 1
        return body, close

    def loop(self, stmt: s.For) -> _Loop:
        """`for t in range(T) {`, the body, and its `}`."""
        first = self.at[self.k]
        while self.type(self.k) != "LBRACE":
            self.k += 1
        head = _Unit(first, self.at[self.k])
        self.k += 1
        body, close = self.block(stmt.body)
        return _Loop(head, body, close)

    def params(self) -> tuple[list[_Unit], bool]:
        """The parameters up to the `)` of the header, each with its comma; and whether the last
        one has a comma."""
        units, depth, first = [], 0, None
        while True:
            kind = self.type(self.k)
            if kind == "RPAR" and depth == 0:
                break
            if kind != "_NL":
                first = self.at[self.k] if first is None else first
                depth += kind in ("LPAR", "LSQB")
                depth -= kind in ("RPAR", "RSQB")
                if kind == "COMMA" and depth == 0:
                    units.append(_Unit(first, self.at[self.k]))
                    first = None
            self.k += 1
        if first is not None:
            units.append(_Unit(first, self.last_code(self.k)))
        return units, first is None and bool(units)

    def statement(self) -> _Unit:
        """One statement: up to a newline outside brackets, or the block's `}`."""
        first, depth = self.at[self.k], 0
        while True:
            kind = self.type(self.k)
            if depth == 0 and kind in ("_NL", "RBRACE"):
                return _Unit(first, self.last_code(self.k))
            depth += kind in ("LPAR", "LSQB")
            depth -= kind in ("RPAR", "RSQB")
            self.k += 1


# ---------------------------------------------------------------------------------------------
# Writing the lines


class _Writer:
    """The formatted lines of one text."""

    def __init__(self, text: str, tokens: list[Token], numbers: dict[tuple[int, int], str]):
        self.text, self.tokens, self.numbers = text, tokens, numbers
        self.lines: list[str] = []
        self.last = 0  # the source line of what was written last

    def module(self, frames: list[_Frame], end: list[_Comment]) -> list[str]:
        for f in frames:
            self.definition(f)
        for c in end:
            self.comment(c, "", "keep")
        return self.lines

    # One thing at a time, with the blank line before it that `blank` asks for: "always" one
    # (between definitions), "keep" the source's (at most one), or "never".

    def put(self, lines: list[str], first: int, last: int, blank: str) -> None:
        if self.lines and (blank == "always" or (blank == "keep" and first - self.last > 1)):
            self.lines.append("")
        self.lines.extend(lines)
        self.last = last

    def comment(self, c: _Comment, indent: str, blank: str) -> None:
        self.put([indent + c.text], c.line, c.line, blank)

    def as_written(self, first: _Unit, last: _Unit, indent: str) -> list[str]:
        """The source text from `first` to `last`, its first line at `indent` and the lines it
        continues onto as they were (without trailing blanks)."""
        start, stop = self.tokens[first.first].start_pos, self.tokens[last.last].end_pos
        lines = [line.rstrip() for line in source_lines(self.text[start:stop])]
        return [indent + lines[0], *lines[1:]]

    def definition(self, f: _Frame) -> None:
        d = f.definition
        for k, c in enumerate(f.open.leading):  # the definition's comments, before it
            self.comment(c, "", "keep" if k else "always")
        blank = "keep" if f.open.leading else "always"
        if any(u.inside for u in f.header()):
            lines = self.as_written(f.open, f.tail, "")
            self.put(self.ending(lines, f.tail), d.loc.line, self.line(f.tail.last), blank)
        else:
            self.header(f, _Printer(self.numbers, None), blank)
        self.block(f.body, d.body, f.close, _Printer(self.numbers, _dimensions(d)), "")

    def block(self, units, stmts, close: _Unit, printer: _Printer, outer: str) -> None:
        """The statements of a body, a level deeper than `outer`, and the `}` that ends it; no
        blank line after the `{` or before the `}`."""
        indent = outer + INDENT
        for k, (u, stmt) in enumerate(zip(units, stmts, strict=True)):
            head = u.head if isinstance(u, _Loop) else u
            for c in head.leading:
                self.comment(c, indent, "keep" if k or c is not head.leading[0] else "never")
            first = "keep" if k or head.leading else "never"
            if head.inside:  # a comment between its tokens
                lines = self.as_written(head, head, indent)
            elif isinstance(u, _Loop):
                lines = printer.loop(stmt, indent)
            else:
                lines = printer.statement(stmt, indent)
            self.put(self.ending(lines, head), self.line(head.first), self.line(head.last), first)
            if isinstance(u, _Loop):
                self.block(u.body, stmt.body, u.close, printer, indent)
        for k, c in enumerate(close.leading):  # after the last statement
            self.comment(c, indent, "keep" if k or units else "never")
        end = self.line(close.last)
        self.put(self.ending([outer + "}"], close), end, end, "never")

    def header(self, f: _Frame, printer: _Printer, blank: str) -> None:
        """`graph name(params) -> outputs wrt names {` on one line, or its parameters on lines
        of their own, grouped as in the source."""
        d = f.definition
        head = f"{d.kind} {d.name}("
        outputs = d.outputs[0] if len(d.outputs) == 1 else f"({', '.join(d.outputs)})"
        wrt = f" wrt {', '.join(name for name, _ in d.wrt)}" if d.wrt else ""
        tail = f") -> {outputs}{wrt} {{"
        params = [printer.param(p) for p in d.params]
        flat = head + ", ".join(params) + tail
        commented = f.open.trailing or f.tail.leading
        commented = commented or any(u.leading or u.trailing for u in f.params)
        if len(flat) <= LINE_LENGTH and not f.trailing_comma and not commented:
            self.put(self.ending([flat], f.tail), d.loc.line, self.line(f.tail.last), blank)
            return
        self.put(self.ending([head], f.open), d.loc.line, d.loc.line, blank)
        for group in _groups(f.params, params, self.tokens):
            units, texts = zip(*group, strict=True)
            for c in units[0].leading:
                self.comment(c, INDENT, "never")
            lines = self.ending(_fill(texts), units[-1])
            self.put(lines, self.line(units[0].first), self.line(units[-1].last), "never")
        for c in f.tail.leading:
            self.comment(c, INDENT, "never")
        lines = self.ending([tail], f.tail)
        self.put(lines, self.line(f.tail.first), self.line(f.tail.last), "never")

    def line(self, token: int) -> int:
        return self.tokens[token].line

    @staticmethod
    def ending(lines: list[str], u: _Unit) -> list[str]:
        """`lines` with `u`'s trailing comment after the last one."""
        return [*lines[:-1], _trailing(lines[-1], u.trailing)]


def _groups(units: list[_Unit], params: list[str], tokens: list[Token]):
    """The parameters as (unit, text) in groups: one for each source line they start on."""
    groups: list[list[tuple[_Unit, str]]] = []
    line = None
    for u, text in zip(units, params, strict=True):
        if tokens[u.first].line != line:
            groups.append([])
        groups[-1].append((u, text))
        line = tokens[u.last].line
    return groups


def _fill(texts) -> list[str]:
    """Parameters on as few lines as the line length allows, each followed by a comma."""
    lines = [INDENT]
    for text in texts:
        line = lines[-1] + ("" if lines[-1] == INDENT else " ") + text + ","
        if lines[-1] != INDENT and len(line) > LINE_LENGTH:
            lines.append(INDENT + text + ",")
        else:
            lines[-1] = line
    return lines


def _trailing(line: str, c: _Comment | None) -> str:
    """`line` with the comment after it at its column, where the line leaves two spaces."""
    if c is None:
        return line
    return line + " " * max(c.col - 1 - len(line), 2) + c.text


def _dimensions(d: s.Definition) -> frozenset[str]:
    """The names that stand for sizes in `d`'s body: those its parameters' types declare, unless
    a parameter or a statement takes the name."""
    names, stack = set(), [e for p in d.params for e in p.dims]
    while stack:
        e = stack.pop()
        if isinstance(e, s.Name):
            names.add(e.id)
        elif isinstance(e, s.Binary):
            stack += [e.left, e.right]
        elif isinstance(e, s.Unary):
            stack.append(e.operand)
    loops = [stmt.var for stmt in s.statements(d.body) if isinstance(stmt, s.For)]
    taken = {p.name for p in d.params} | set(s.assigned(d.body)) | set(loops)
    return frozenset(names - taken)


# ---------------------------------------------------------------------------------------------
# Expressions


class _Printer:
    """Expressions as text, and statements as lines; `sizes`: the names that are sizes (None:
    every name, as in a type)."""

    def __init__(self, numbers: dict[tuple[int, int], str], sizes: frozenset[str] | None):
        self.numbers, self.sizes = numbers, sizes

    def param(self, p: s.Param) -> str:
        dtype = "" if p.dtype == "float" else p.dtype
        return f"{p.name}: {dtype}[{', '.join(self.text(d) for d in p.dims)}]"

    def statement(self, stmt: s.Assign | s.SlotWrite, indent: str) -> list[str]:
        """An assignment or a slot write, its first line at `indent`."""
        if isinstance(stmt, s.SlotWrite):
            target = f"{stmt.target}[{', '.join(self.text(i) for i in stmt.subscripts)}]"
        else:
            target = ", ".join(stmt.targets)
        return self.lines(f"{indent}{target} = ", stmt.value, 0, "", indent, inside=False)

    def loop(self, stmt: s.For, indent: str) -> list[str]:
        """A loop's header, `for t in range(T) {`, on one line at `indent`."""
        bounds = ", ".join(self.text(b) for b in stmt.bounds)
        return [f"{indent}for {stmt.var} in {stmt.range_name}({bounds}) {{"]

    def is_size(self, e: s.Expr) -> bool:
        """Whether `e` is arithmetic on sizes alone: integers and dimension names."""
        match e:
            case s.Name(id=name):
                return self.sizes is None or name in self.sizes
            case s.Number(value=v):
                return isinstance(v, int)
            case s.Unary(operand=v):
                return self.is_size(v)
            case s.Binary(op=op) if op in ("add", "sub", *_TIGHT):
                return self.is_size(e.left) and self.is_size(e.right)
        return False

    def text(self, e: s.Expr, level: int = 0, hole: s.Expr | None = None) -> str:
        """`e` on one line, in a place that needs an operator binding at least as tightly as
        `level`; `hole` (a part of `e`) is written as _HOLE."""
        if e is hole:
            return _HOLE

        def t(part, part_level=0):
            return self.text(part, part_level, hole)

        match e:
            case s.Binary(op="pow"):
                text = f"{t(e.left, _ATOM)} ** {t(e.right, _NEG)}"
            case s.Binary(op=op):
                own = _LEVEL[op]
                left = own + 1 if own == 1 else own  # comparisons do not chain
                tight = op in _TIGHT and self.is_size(e)
                sep = _SPELLING[op] if tight else f" {_SPELLING[op]} "
                text = f"{t(e.left, left)}{sep}{t(e.right, own + 1)}"
            case s.Unary():
                text = f"-{t(e.operand, _NEG)}"
            case s.Name(id=name):
                text = name
            case s.Number():
                text = self.numbers.get((e.loc.line, e.loc.col)) or repr(e.value)
            case s.Bool(value=v):
                text = "true" if v else "false"
            case s.String(value=v):
                text = f'"{v}"'
            case s.Tuple(items=items):
                inner = ", ".join(t(i) for i in items)
                text = f"({inner},)" if len(items) == 1 else f"({inner})"
            case s.Call(func=f):
                text = f"{t(f, _ATOM)}({', '.join(p + t(x, c) for p, x, c in _items(e))})"
            case s.Index(value=v, subscripts=subs):
                text = f"{t(v, _ATOM)}[{', '.join(t(i) for i in subs)}]"
            case s.Slice(start=a, stop=b, step=c):
                text = ":".join("" if x is None else t(x) for x in (a, b))
                text += "" if c is None else f":{t(c)}"
            case s.Attribute(value=v, attr=attr):
                value = t(v, _ATOM)
                if isinstance(v, s.Number) and value.isdigit():  # `(1).T`: `1.T` reads as `1.` T
                    value = f"({value})"
                text = f"{value}.{attr}"
            case _:  # pragma: no cover - every expression is one of the above
                raise TypeError(type(e).__name__)
        return f"({text})" if _own(e) < level else text

    # Breaking a line that is too long, as black breaks Python: at the brackets that end it
    # (`y = f(` / the arguments / `)`), else before the operators of its loosest level, in
    # parentheses where none are (a newline ends a statement outside brackets).

    def lines(self, prefix: str, e: s.Expr, level: int, suffix: str, indent: str, inside: bool):
        """`e` after `prefix` and before `suffix`, on lines at `indent`; `inside` brackets."""
        flat = prefix + self.text(e, level) + suffix
        if len(flat) <= LINE_LENGTH:
            return [flat]
        chain = self.chain(e, level)
        if inside and len(chain) > 1:
            return self.chain_lines(prefix, chain, suffix, indent)
        broken = self.bracket_lines(prefix, e, level, suffix, indent, top=not inside)
        if broken:
            return broken
        if len(chain) > 1:
            inner = indent + INDENT
            body = self.lines(inner, e, 0, "", inner, inside=True)
            return [prefix + "(", *body, indent + ")" + suffix]
        return [flat]

    def chain(self, e: s.Expr, level: int) -> list[tuple[str, s.Expr, int]]:
        """The operands of `e`'s loosest operators, each with the operator before it ("" for the
        first) and the level its place needs: `a + b - c` gives a, + b, - c."""
        if not isinstance(e, s.Binary) or _own(e) < level:
            return [("", e, level)]
        if e.op == "pow":  # right-associative
            items, node = [], e
            while isinstance(node, s.Binary) and node.op == "pow":
                items.append(("**" if items else "", node.left, _ATOM))
                node = node.right
            return [*items, ("**", node, _NEG)]
        own, items, node = _LEVEL[e.op], [], e
        while isinstance(node, s.Binary) and _LEVEL[node.op] == own:
            items.append((_SPELLING[node.op], node.right, own + 1))
            node = node.left
            if own == 1:  # a comparison's left operand is another operand, not a link
                break
        return [("", node, own + 1 if own == 1 else own), *reversed(items)]

    def chain_lines(self, prefix, chain, suffix, indent) -> list[str]:
        lines = []
        for k, (op, part, level) in enumerate(chain):
            start = prefix if k == 0 else f"{indent}{op} "
            end = suffix if k == len(chain) - 1 else ""
            lines += self.lines(start, part, level, end, indent, inside=True)
        return lines

    def bracket_lines(self, prefix, e, level, suffix, indent, top: bool) -> list[str] | None:
        """`e` broken at the brackets that end it, or None where none do (or, at the top of a
        statement, where it has more than one loosest operator: those break it better)."""
        if top and len(self.chain(e, level)) > 2:
            return None
        found = _last_bracket(e, level)
        if found is None:
            return None
        node, place = found
        # (only brackets and attributes follow the hole, no string that could hold a NUL)
        before, after = self.text(e, level, hole=node).rsplit(_HOLE, 1)
        if _own(node) < place:  # parentheses
            head, items, close = "(", [("", node, 0)], ")"
        elif isinstance(node, s.Call):
            head, items, close = self.text(node.func, _ATOM) + "(", _items(node), ")"
        elif isinstance(node, s.Index):
            head, items, close = self.text(node.value, _ATOM) + "[", _subscripts(node), "]"
        else:
            head, items, close = "(", [("", i, 0) for i in node.items], ")"
        first = prefix + before + head
        if not items or (top and len(first) > LINE_LENGTH):
            return None
        inner = indent + INDENT
        one = inner + ", ".join(p + self.text(x, c) for p, x, c in items)
        one += "," if isinstance(node, s.Tuple) and len(items) == 1 else ""
        if _own(node) < place:
            body = self.lines(inner, node, 0, "", inner, inside=True)
        elif len(one) <= LINE_LENGTH:
            body = [one]
        else:
            body = [ln for p, x, c in items for ln in self.lines(inner + p, x, c, ",", inner, True)]
        return [first, *body, indent + close + after + suffix]


def _own(e: s.Expr) -> int:
    """How tightly `e`'s own operator binds."""
    return _LEVEL[e.op] if isinstance(e, s.Binary | s.Unary) else _ATOM


def _items(call: s.Call) -> list[tuple[str, s.Expr, int]]:
    """A call's arguments as (what comes before the value, value, level)."""
    return [("", a, 0) for a in call.args] + [(f"{k.name}=", k.value, 0) for k in call.kwargs]


def _subscripts(index: s.Index) -> list[tuple[str, s.Expr, int]]:
    return [("", i, 0) for i in index.subscripts]


def _last_bracket(e: s.Expr, level: int) -> tuple[s.Expr, int] | None:
    """The bracketed part that ends `e` (a call, an index, a tuple or a part in parentheses),
    with only attributes after it, and the level of its place; None where there is none."""
    node, place = e, level
    while not (_own(node) < place or isinstance(node, s.Call | s.Index | s.Tuple)):
        match node:
            case s.Attribute(value=v):
                node, place = v, _ATOM
            case s.Unary(operand=v) | s.Binary(op="pow", right=v):
                node, place = v, _NEG
            case s.Binary(op=op, right=v):
                node, place = v, _LEVEL[op] + 1
            case _:
                return None
    return node, place
