"""Source locations and compile errors, rendered as `file:line:col: error: message` with a caret."""

from __future__ import annotations

from dataclasses import dataclass


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
    if diag.loc is None:
        return f"{filename}: {diag.severity}: {diag.message}"
    line, col = diag.loc.line, diag.loc.col
    head = f"{filename}:{line}:{col}: {diag.severity}: {diag.message}"
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return head
    text = lines[line - 1]
    # Keep tabs under tabs so the caret lines up whatever the terminal's tab width.
    pad = "".join(c if c == "\t" else " " for c in text[: col - 1])
    return f"{head}\n    {text}\n    {pad}^"
