"""Draw docs/img/notebook.svg, the README's picture of bpc in a notebook, from a real run.

    python docs/img/notebook_svg.py

runs examples/notebooks/train_two_layer.ipynb on an IPython kernel (nbclient, kernel `python3`)
and draws the cells tagged `readme-picture` as Jupyter shows them: the `In [n]:` prompt, the
source highlighted by Pygments in a grey box, and what the cell printed below it. Nothing is
typed in by hand: the text in the picture is the notebook's source and the kernel's output
(tests/test_notebook.py checks that the picture still shows what the notebook prints).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebooks" / "train_two_layer.ipynb"
PICTURE = ROOT / "docs" / "img" / "notebook.svg"
TAG = "readme-picture"

FONT = 13  # px, monospace
CHAR = 8.0  # px: the advance of a monospace character at 13 px (7.8), with some to spare
LINE = 18  # px between baselines
MARGIN = 6  # px left of the prompt
PROMPT = MARGIN + 9 * CHAR  # where the source box starts, right of `In [10]: `
PAD = 8  # px inside the source box
GAP = 14  # px between one cell and the next


def execute(path: Path = NOTEBOOK):
    """The notebook at `path`, run top to bottom on a `python3` kernel."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}
    return nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources=resources
    ).execute()


def _lexer(source: str):
    """Python's lexer, with IPython's magics; a `%%bpc` cell's body is bp, highlighted by the
    `bpc` lexer where one is installed and shown plain otherwise."""
    from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    if not source.startswith("%%bpc"):
        return PythonLexer()
    try:
        return get_lexer_by_name("bpc")
    except ClassNotFound:
        return TextLexer()


def highlighted(source: str) -> list[list[tuple[str, str | None]]]:
    """The source's lines, each a list of (text, colour or None) pieces; a line that starts with
    `%` (a magic) is coloured as a whole, as Jupyter colours it."""
    from pygments import lex
    from pygments.styles import get_style_by_name

    style = get_style_by_name("default")
    magic, body = ("", source) if not source.startswith("%") else source.partition("\n")[::2]
    lines: list[list[tuple[str, str | None]]] = [[(magic, "#aa22ff")]] if magic else []
    if magic and not body:
        return lines
    line: list[tuple[str, str | None]] = []
    for token, text in lex(body, _lexer(source)):
        colour = style.style_for_token(token)["color"]
        for i, piece in enumerate(text.split("\n")):
            if i:
                lines.append(line)
                line = []
            if piece:
                line.append((piece, f"#{colour}" if colour else None))
    if line:
        lines.append(line)
    return lines


def printed(cell) -> str:
    """What the cell printed."""
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def _text(x: float, y: float, pieces: list[tuple[str, str | None]], colour: str) -> str:
    spans = "".join(f'<tspan fill="{c}">{escape(t)}</tspan>' if c else escape(t) for t, c in pieces)
    return f'<text x="{x:.1f}" y="{y}" fill="{colour}">{spans}</text>'


def render(cells) -> str:
    """The cells and their printed output as an SVG picture."""
    blocks = [(cell.execution_count, highlighted(cell.source), printed(cell)) for cell in cells]
    widest = max(
        max((sum(len(t) for t, _ in line) for line in source), default=0) for _, source, _ in blocks
    )
    widest = max([widest] + [len(line) for *_, out in blocks for line in out.splitlines()])
    width = PROMPT + 2 * PAD + widest * CHAR + MARGIN
    parts, y = [], GAP
    for count, source, out in blocks:
        height = len(source) * LINE + 2 * PAD
        parts.append(
            f'<rect x="{PROMPT:.1f}" y="{y}" width="{width - PROMPT - MARGIN:.1f}" height="{height}" '
            'rx="2" fill="#f7f7f7" stroke="#cfcfcf"/>'
        )
        parts.append(_text(MARGIN, y + PAD + FONT, [(f"In [{count}]:", None)], "#303f9f"))
        for i, line in enumerate(source):
            parts.append(_text(PROMPT + PAD, y + PAD + FONT + i * LINE, line, "#000000"))
        y += height + 6
        for line in out.splitlines():
            parts.append(_text(PROMPT + PAD, y + FONT, [(line, None)], "#000000"))
            y += LINE
        y += GAP
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{y}" '
        f'viewBox="0 0 {width:.0f} {y}" xml:space="preserve" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">'
    )
    background = '<rect width="100%" height="100%" fill="#ffffff"/>'
    return "\n".join([head, background, *parts, "</svg>"]) + "\n"


def picture_cells(nb) -> list:
    return [c for c in nb.cells if TAG in c.metadata.get("tags", [])]


def main() -> None:
    PICTURE.write_text(render(picture_cells(execute())))
    print(f"wrote {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
