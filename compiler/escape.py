"""The one place where text from the user's files becomes part of a generated module.

File names, graph names and source lines reach the emitted text in three forms: a string literal
(`"seed(W: [n, m], x: [m])"`), a comment (`# q = W @ x`) and a docstring. Each goes through its
function here, which writes any text, hostile or not, so that it stays inside its literal,
comment or docstring: no character of it can end the string, start a new line of code, or make
the module fail to import. tests/test_escape.py throws hostile text at both.
"""

from __future__ import annotations

_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(c: str) -> str:
    if c in _SHORT:
        return _SHORT[c]
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _inner(text: str) -> str:
    """`text` with every backslash, double quote and unprintable character written as the
    escape Python reads back as that character (a lone surrogate too)."""
    if text.isprintable() and "\\" not in text and '"' not in text:
        return text
    return "".join(map(_escaped, text))


def comment(text: str) -> str:
    """`text` for a one-line comment: each unprintable character (a newline, a carriage return,
    a form feed) written as its escape, so that nothing of it reaches the next line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def literal(text: str) -> str:
    """A Python string literal, in double quotes as black writes it, whose value is `text`."""
    return f'"{_inner(text)}"'


def docstring(text: str) -> str:
    """`text` inside a docstring: printable, on one line, with no backslash or quote that could
    end the docstring; what was escaped reads as its escape."""
    return _inner(text)
