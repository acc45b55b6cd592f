"""Colour on a terminal: when to use it, and the ANSI styles of `bpc explain`'s roles.

Colour is added at output time only, to text that is complete without it: removing the escape
codes gives back the plain text, byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TextIO

MODES = ("auto", "always", "never")

# ANSI SGR parameters by role (`bpc.explain.Span`); a role not listed stays plain
STYLES = {
    "heading": "1",  # bold
    "statement": "1;34",  # bold blue: the forward line, as written
    "where": "2",  # dim
    "label": "36",  # cyan
    "gradient": "32",  # green
    "shape": "33",  # yellow
}
RESET = "\x1b[0m"


def use_color(mode: str, stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to colour what goes to `stream`: `always`, `never`, or (`auto`) when it is a
    terminal, unless NO_COLOR is set to anything non-empty (https://no-color.org) or the
    terminal is `dumb`. An explicit `--color always` wins over NO_COLOR, as no-color.org asks."""
    if mode not in MODES:
        raise ValueError(f"colour mode {mode!r} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode == "always"
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(spans: Iterable[tuple[str, str]], color: bool) -> str:
    """The text of `(role, text)` spans, each role in its style when `color` is true."""
    return "".join(_styled(role, text) if color else text for role, text in spans)


def _styled(role: str, text: str) -> str:
    style = STYLES.get(role)
    if style is None or not text:
        return text
    return f"\x1b[{style}m{text}{RESET}"
