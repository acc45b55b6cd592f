"""A Pygments lexer for bp, registered under the alias `bpc` (Pygments' own `bp` is Android.bp).

Installed with `pip install 'bpc[highlight]'`; Pygments finds it through the `pygments.lexers`
entry point, so `pygmentize -l bpc model.bp`, Sphinx and MkDocs (a ```bpc fence) use it. The
compiler never imports this module: Pygments stays optional.

The token classes follow grammar/bp.lark: the keywords `graph`, `fn`, `wrt`, `true`, `false`,
and `for` and `in` where they make a loop's header (`for t in range(T) {`; elsewhere they are
names, as the grammar has them); the built-in functions of the op registry (`bpc.build.BUILTINS`,
read when the first text is lexed), `range`, and the registry's constants (`inf`, `pi`); the
dtypes `int` and `bool`; dimension expressions inside a parameter's type (`x: int[N, 4*H]`);
numbers, einsum specs (strings), operators, punctuation and comments.
editors/bp.tmLanguage.json gives editors the same classes.
"""

from __future__ import annotations

import functools

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["BpLexer"]

NAME = r"[A-Za-z_][A-Za-z_0-9]*"
# grammar/bp.lark's FLOAT and INT
FLOAT = r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+"
INT = r"[0-9]+"
DTYPES = ("int", "bool")


@functools.cache
def _registry() -> tuple[frozenset[str], frozenset[str]]:
    """The built-in functions and constants of the language, read from the op registry when
    the first text is lexed: Pygments imports this module to look up any lexer by file name,
    and that should not load the compiler."""
    from .build import BUILTINS
    from .ops import CONSTANTS

    return frozenset(BUILTINS) | {"range"}, frozenset(CONSTANTS)  # range: a loop's, not an op


def _name(lexer, match):
    """A name: a built-in function, a constant (`inf`, `pi`), or a name of the program."""
    name = match.group()
    builtins, constants = _registry()
    kind = Name.Builtin if name in builtins else Name.Builtin.Pseudo if name in constants else Name
    yield match.start(), kind, name


def _called(lexer, match):
    """A name that is called: a built-in function or a `fn` of the program."""
    name = match.group()
    yield match.start(), Name.Builtin if name in _registry()[0] else Name.Function, name


class BpLexer(RegexLexer):
    """bp, the language of bpc (`.bp` files)."""

    name = "bp (bpc)"
    aliases = ["bpc"]
    filenames = ["*.bp"]
    mimetypes = ["text/x-bpc"]

    tokens = {
        "common": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
        ],
        "root": [
            include("common"),
            (rf"(graph|fn)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(graph|fn)\b", Keyword.Declaration),
            (r"wrt\b", Keyword),
            # a loop's header, `for t in range(T)`: the name after `for` is its variable
            (
                rf"(for)([ \t]+)({NAME})(?:([ \t]+)(in)\b)?",
                bygroups(Keyword, Whitespace, Name, Whitespace, Keyword),
            ),
            (r"(true|false)\b", Keyword.Constant),
            # a parameter's type: `x: [N, D]`, `y: int[N]`; an index `x[a:b]` has no `: [`
            (
                rf"(:)(\s*)(?:({'|'.join(DTYPES)})(\s*))?(\[)",
                bygroups(Punctuation, Whitespace, Keyword.Type, Whitespace, Punctuation),
                "dims",
            ),
            (words(DTYPES, suffix=r"\b"), Keyword.Type),
            (rf"{NAME}(?=\s*\()", _called),
            (rf"(\.)({NAME})", bygroups(Punctuation, Name.Attribute)),
            (NAME, _name),
            (FLOAT, Number.Float),
            (INT, Number.Integer),
            (r'"[^"\\\n]*"', String.Double),
            (r"->", Punctuation),
            (r"//|\*\*|<=|>=|==|!=|[-+*/@<>=]", Operator),
            (r"[()\[\],:.{}]", Punctuation),
        ],
        # inside a type's brackets: an integer polynomial in dimension names (`[D, 4*H]`)
        "dims": [
            include("common"),
            (NAME, Name.Variable),
            (INT, Number.Integer),
            (r"//|[-+*/]", Operator),
            (r"[(),]", Punctuation),
            (r"\]", Punctuation, "#pop"),
        ],
    }
