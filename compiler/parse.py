"""Stage 1: text -> syntax tree. A Lark LALR parser over `grammar/bp.lark`, positions kept."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import sys
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.visitors import Transformer_NonRecursive

from . import hints
from . import syntax as s
from .diagnostics import Loc, error
from .files import cache_dir, read_entry, write_entry

_COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}

# How the parser's terminal names read in a message.
_READABLE = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "_NL": "a newline",
    "$END": "the end of the file",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "AT": "'@'",
    "DOUBLESTAR": "'**'",
    "DOT": "'.'",
    "COMP_OP": "a comparison",
    "DTYPE_KW": "'int' or 'bool'",
    "FLOORDIV": "'//'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "GRAPH": "'graph'",
    "FN": "'fn'",
    "WRT": "'wrt'",
    "__ANON_0": "'->'",
    "MORETHAN": "'>'",
}


class _DropBracketedNewlines:
    """Post-lexer: a newline inside (), [] or {}-free brackets does not end a statement."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(depth - 1, 0)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


_OPTIONS = {"parser": "lalr", "propagate_positions": True}


@functools.cache
def _parser() -> Lark:
    """The parser of grammar/bp.lark. Building its LALR tables takes a tenth of a second or more,
    so they are kept on disk (`_cache_file`) and read back by later processes in milliseconds;
    where the cache cannot be read or written, the parser is built in memory."""
    grammar = resources.files("bpc.grammar").joinpath("bp.lark").read_text()
    file = _cache_file(grammar)
    parser = _cached(file) if file is not None else None
    if parser is None:
        parser = Lark(grammar, **_OPTIONS, postlex=_DropBracketedNewlines())
        if file is not None:
            _store(parser, file)
    return parser


def _cache_file(grammar: str) -> Path | None:
    """Where the parser of `grammar` is cached: under a hash of everything the tables depend on
    (the grammar's text, the options, Lark's and Python's versions), so that an edit of the
    grammar or an upgrade builds them anew. None when there is no cache directory (no home)."""
    key = "\0".join(
        [
            lark.__version__,
            sys.version,
            repr(_OPTIONS),
            f"{_DropBracketedNewlines.__module__}.{_DropBracketedNewlines.__qualname__}",
            grammar,
        ]
    )
    try:
        directory = cache_dir()
    except (OSError, RuntimeError):  # Path.home(): no $HOME and no password entry
        return None
    return directory / "parser" / f"bp-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pickle"


def _cached(file: Path) -> Lark | None:
    """The parser cached in `file`, or None when there is none that loads: missing, damaged
    (`read_entry` checks its hash) or written by another Lark."""
    data = read_entry(file)
    if data is None:
        return None
    try:
        return Lark.load(io.BytesIO(data))
    except Exception:  # (a format another Lark wrote, say): the parser is built anew
        return None


def _store(parser: Lark, file: Path) -> None:
    """Cache `parser` in `file` (whole or not at all: processes writing at once leave one
    complete entry), if the cache directory can be written."""
    buffer = io.BytesIO()
    parser.save(buffer)  # its tables and options, the post-lexer pickled by its class's name
    with contextlib.suppress(OSError):  # a read-only home, a full disk: nothing is cached
        write_entry(file, buffer.getvalue())


def _loc(x) -> Loc:
    return Loc(x.line, x.column) if isinstance(x, Token) else Loc(x.line, x.column)


@v_args(meta=True)
class _ToSyntax(Transformer_NonRecursive):  # (a deep expression must not exhaust the stack here)
    def start(self, meta, items):
        return s.Module(tuple(items))

    def _definition(self, kind, meta, items):
        name, params, outputs = items[0], items[1] or (), items[2]
        wrt = items[3] if kind == "graph" else None
        body, end = items[-1]
        return s.Definition(
            Loc(meta.line, meta.column),
            kind,
            str(name),
            tuple(params),
            outputs[0],
            outputs[1],
            wrt,
            body,
            end,
        )

    def graph_def(self, meta, items):
        return self._definition("graph", meta, items)

    def fn_def(self, meta, items):
        return self._definition("fn", meta, items)

    def params(self, meta, items):
        return tuple(p for p in items if p is not None)

    def param(self, meta, items):
        name, (dtype, dims) = items
        return s.Param(
            _loc(name),
            str(name),
            dtype,
            tuple(dims),
            tuple(d.loc for d in dims),
        )

    def type(self, meta, items):
        kind = items[0] if items and isinstance(items[0], Token) else None
        dtype = str(kind) if kind is not None and kind.type == "DTYPE_KW" else "float"
        return dtype, [d for d in items[1:] if d is not None]

    def floordiv(self, meta, items):
        left, _, right = items
        return s.Binary(Loc(meta.line, meta.column), "floordiv", left, right)

    def outputs(self, meta, items):
        names = tuple(str(t) for t in items if t is not None)
        return names, Loc(meta.line, meta.column)

    def wrt(self, meta, items):
        return tuple((str(t), _loc(t)) for t in items)

    def block(self, meta, items):
        return tuple(i for i in items if i is not None), Loc(meta.end_line, meta.end_column - 1)

    def stmt(self, meta, items):
        *targets, value = items
        locs = tuple(_loc(t) for t in targets)
        return s.Assign(locs[0], tuple(str(t) for t in targets), value, locs)

    def slot_stmt(self, meta, items):
        target, subs, value = items
        return s.SlotWrite(_loc(target), str(target), subs, value)

    def for_stmt(self, meta, items):
        _, var, _, fn, args, (body, end) = items
        return s.For(
            _loc(items[0]), str(var), _loc(var), str(fn), _loc(fn), tuple(args or ()), body, end
        )

    def _binary(op):
        def rule(self, meta, items):
            left, right = items
            return s.Binary(Loc(meta.line, meta.column), op, left, right)

        return rule

    add, sub, mul, div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
    matmul, pow = _binary("matmul"), _binary("pow")

    def compare(self, meta, items):
        left, op, right = items
        return s.Binary(_loc(op), _COMPARE[str(op)], left, right)

    def neg(self, meta, items):
        return s.Unary(Loc(meta.line, meta.column), "neg", items[0])

    def call(self, meta, items):
        func, args = items
        args = args or []
        pos = tuple(a for a in args if not isinstance(a, s.Keyword))
        kw = tuple(a for a in args if isinstance(a, s.Keyword))
        return s.Call(func.loc, func, pos, kw)

    def args(self, meta, items):
        return [a for a in items if a is not None]

    def kwarg(self, meta, items):
        name, value = items
        return s.Keyword(_loc(name), str(name), value)

    def index(self, meta, items):
        value, subs = items
        return s.Index(value.loc, value, subs)

    def subscripts(self, meta, items):
        return tuple(i for i in items if i is not None)

    def slice(self, meta, items):
        start, stop, step = (list(items) + [None, None, None])[:3]
        return s.Slice(Loc(meta.line, meta.column) if not meta.empty else None, start, stop, step)

    def attribute(self, meta, items):
        value, name = items
        return s.Attribute(_loc(name), value, str(name))

    def name(self, meta, items):
        return s.Name(_loc(items[0]), str(items[0]))

    def int(self, meta, items):
        return s.Number(_loc(items[0]), int(items[0]))

    def float(self, meta, items):
        return s.Number(_loc(items[0]), float(items[0]))

    def true(self, meta, items):
        return s.Bool(_loc(items[0]), True)

    def false(self, meta, items):
        return s.Bool(_loc(items[0]), False)

    def string(self, meta, items):
        return s.String(_loc(items[0]), str(items[0])[1:-1])

    def tuple(self, meta, items):
        return s.Tuple(Loc(meta.line, meta.column), tuple(i for i in items if i is not None))


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    return f"'{tok}'"


def _expected(names) -> str:
    readable = sorted({_READABLE.get(n, f"'{n.lower()}'") for n in names})
    if len(readable) > 6:
        return ""
    return ", expected " + (readable[0] if len(readable) == 1 else "one of " + ", ".join(readable))


def parse(text: str) -> s.Module:
    """Parse bp source text into a syntax tree; a syntax error is a CompileError at its position."""
    try:
        tree = _parser().parse(text)
    except UnexpectedToken as e:
        if e.line > 0 and e.token.type != "$END" and (hint := _hint(text, e.token)):
            raise error(*hint) from None
        raise error(
            Loc(e.line, e.column) if e.line > 0 else _end(text),
            f"unexpected {_describe(e.token)}{_expected(e.expected)}",
        ) from None
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch in hints.OPERATORS:
            raise error(Loc(e.line, e.column), hints.OPERATORS[ch]) from None
        raise error(Loc(e.line, e.column), f"unexpected character {ch!r}") from None
    except UnexpectedEOF as e:
        raise error(_end(text), f"unexpected end of file{_expected(e.expected)}") from None
    except UnexpectedInput as e:  # pragma: no cover - the three above are all LALR raises
        raise error(Loc(e.line, e.column), "syntax error") from None
    return _ToSyntax().transform(tree)


_WORD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)[ \t]*$")
_FIRST_WORD = re.compile(r"[ \t]*([A-Za-z_][A-Za-z_0-9]*)(?![ \t]*[=,])")


def _hint(text: str, tok: Token) -> tuple[Loc, str] | None:
    """For a syntax error at `tok` that is Python bp does not have (hints.py), where to report
    it and what to say: the token is such a word or `//`, or follows such a word on its line,
    or its line starts with a Python statement's word and the token is outside brackets and
    before any `{` (`for t in range(T):`)."""
    pos, line = tok.start_pos, tok.line
    start = text.rfind("\n", 0, pos) + 1

    def at(offset: int) -> Loc:
        return Loc(line, offset - start + 1)

    if tok.type == "NAME" and str(tok) in hints.WORDS:
        return at(pos), hints.WORDS[str(tok)]
    if str(tok) == "//" or (str(tok) == "/" and text[pos - 1 : pos] == "/"):
        return at(pos - 1 if str(tok) == "/" else pos), hints.OPERATORS["//"]
    before = _WORD_BEFORE.search(text, start, pos)
    if before and before[1] in hints.WORDS:
        return at(before.start(1)), hints.WORDS[before[1]]
    first = _FIRST_WORD.match(text, start, pos)
    if first and first[1] in hints.STATEMENTS and _outside(text[start:pos]):
        return at(first.start(1)), hints.WORDS[first[1]]
    return None


def _outside(before: str) -> bool:
    """Whether an error after `before` (its line up to it) is outside brackets and before any
    `{`: in a loop's header, not in its bounds' expressions or in a body on the same line."""
    return "{" not in before and all(before.count(a) == before.count(b) for a, b in ("()", "[]"))


def _end(text: str) -> Loc:
    lines = text.splitlines() or [""]
    return Loc(len(lines), len(lines[-1]) + 1)
