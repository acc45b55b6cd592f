"""Source locations and compile errors, rendered as `file:line:col: error: message` with a caret."""

from __future__ import annotations

from dataclasses import dataclass

from .escape import comment


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column), and the `fn` it was inlined from."""

    line: int
    col: int
    fn: str | None = None


@dataclass(frozen=True)
class Diagnostic:
    loc: Loc | None
    message: str
    severity: str = "error"


class CompileError(Exception):
    """One or more diagnostics that stop compilation."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("; ".join(d.message for d in self.diagnostics))


def error(loc: Loc | None, message: str) -> CompileError:
    return CompileError(Diagnostic(loc, message))


def render(diag: Diagnostic, filename: str, source: str) -> str:
    """`file:line:col: error: message`, then the source line and a caret under the column."""
    filename, message = comment(filename), comment(diag.message)  # (quoting the source's text)
    if diag.loc is None:
        return f"{filename}: {diag.severity}: {message}"
    line, col = diag.loc.line, diag.loc.col
    head = f"{filename}:{line}:{col}: {diag.severity}: {message}"
    lines = source_lines(source)
    if not 1 <= line <= len(lines):
        return head
    # What cannot be shown (an escape sequence for the terminal, a form feed) is shown escaped;
    # tabs stay under tabs so the caret lines up whatever the terminal's tab width.
    shown = ["\t" if c == "\t" else comment(c) for c in lines[line - 1]]
    pad = "".join("\t" if c == "\t" else " " * len(c) for c in shown[: col - 1])
    return f"{head}\n    {''.join(shown)}\n    {pad}^"


def source_lines(source: str) -> list[str]:
    """The source's lines as the parser counts them: a line ends at a newline (`\\r\\n` too),
    not at the other characters `str.splitlines` ends lines at (a form feed, U+2028)."""
    return [line.removesuffix("\r") for line in source.split("\n")]


def source_span(source: str, loc: Loc) -> str | None:
    """The source text of the expression at `loc` as far as its first bracket closes (`x[1:3]`,
    `reshape(x, (N, H / 2))`), on one line; None when it is not there."""
    lines = source_lines(source)
    if not 0 < loc.line <= len(lines):
        return None
    text = lines[loc.line - 1][loc.col - 1 :]
    depth, opened = 0, False
    for i, ch in enumerate(text):
        if ch in "([":
            depth, opened = depth + 1, True
        elif ch in ")]":
            depth -= 1
            if depth == 0 and opened:
                return text[: i + 1]
        elif not opened and not (ch.isalnum() or ch in "_ ."):
            return None
    return None
