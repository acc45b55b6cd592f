"""`%load_ext bpc`: bp source in IPython and Jupyter cells.

`%%bpc` compiles the cell's bp source and binds each graph's functions (`g`, `g_forward`,
`g_backward` and, for a graph with one scalar output, `g_grad`) into the notebook's namespace.
Its flags are those of `bpc compile` that make sense in a notebook: `--dim N=64` (the sizes to
arrange the code for), `--no-checks`, `--fast-math` (tanh within 2 ulp of 1, in about half the
time), and `--jvp`/`--hvp` (also bind `g_jvp`/`g_hvp`). A mistake in the source shows as bpc's diagnostic
(`<cell>:3:9: error: ...`, the line and a caret), with lines counted as the notebook shows them
(the `%%bpc` line is line 1), instead of a traceback; the cell then binds nothing.

`%bpc_show g` displays the code generated for graph `g`, highlighted, and, when Graphviz's `dot`
is installed, the picture of its forward and backward graph (as `bpc graph` draws it).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from types import FunctionType, ModuleType

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import SVG, Code, display

from .diagnostics import CompileError, Diagnostic, render
from .draw import to_dot
from .emit import Compiled, _python_name, _top_level, emit
from .loader import module_from_text
from .pipeline import compile_graphs, nested_too_deeply
from .stats import select, unknown_dims

CELL = "<cell>"  # how diagnostics and the generated module name a cell
# the suffixes of a graph's functions
_FUNCTIONS = ("", "_forward", "_backward", "_grad", "_jvp", "_hvp")


class CellError(Exception):
    """A cell whose bp source does not compile. IPython shows an exception with
    `_render_traceback_` as the lines it returns: here bpc's diagnostics, not a traceback."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines

    def _render_traceback_(self) -> list[str]:
        return self.lines


@dataclass(frozen=True)
class CompiledCell:
    """A cell's graphs through the pipeline, and the text of the module generated from them
    (with or without the checks of its arguments)."""

    graphs: list[Compiled]
    text: str
    checks: bool


def cell_source(cell: str) -> str:
    """The cell's text with the `%%bpc` line's place kept, so that a diagnostic's line number is
    the one the notebook shows."""
    return "\n" + cell


def compile_cell(
    cell: str, *, checks: bool = True, sizes: dict[str, int] | None = None, **orders: bool
) -> tuple[CompiledCell, list[str]]:
    """Compile the body of a `%%bpc` cell, and render its warnings; raises CellError with the
    rendered diagnostics when the source has errors. `orders`: `jvp`, `hvp`, `fast_math`."""
    source = cell_source(cell)
    warnings: list[Diagnostic] = []
    try:
        try:
            graphs = compile_graphs(source, warnings, sizes, **orders)
            text = emit(graphs, CELL, checks=checks, sizes=sizes)
        except RecursionError:
            raise nested_too_deeply(source) from None
    except CompileError as e:
        raise CellError([render(d, CELL, source) for d in e.diagnostics]) from None
    compiled = CompiledCell(graphs, text, checks)
    return compiled, [render(w, CELL, source) for w in warnings]


def module_of(compiled: CompiledCell) -> ModuleType:
    """The cell's module, imported under a name made from a hash of its text: a cell run again
    gets the module it had, so values made by its first run still belong to it."""
    name = "bpc_cell_" + hashlib.sha256(compiled.text.encode()).hexdigest()[:16]
    return sys.modules.get(name) or module_from_text(compiled.text, name)


def functions(module: ModuleType, graph: str) -> dict[str, FunctionType]:
    """The functions the module defines for `graph`, by name: g, g_forward, g_backward, for a
    graph with one scalar output g_grad, and g_jvp and g_hvp where they were asked for."""
    names = [_python_name(graph + suffix) for suffix in _FUNCTIONS]
    return {name: getattr(module, name) for name in names if hasattr(module, name)}


def graph_code(compiled: CompiledCell, graph: str) -> str:
    """The code the module has for `graph`, in the module's order: its classes, the checks of
    its arguments and its functions."""
    names = set(_top_level(compiled.graphs, compiled.checks)[graph])
    defined = ast.parse(compiled.text).body
    return "\n\n\n".join(
        ast.get_source_segment(compiled.text, d)
        for d in defined
        if isinstance(d, ast.FunctionDef | ast.ClassDef) and d.name in names
    )


class NoPicture(Exception):
    """Why Graphviz drew no picture."""


def draw_svg(dot: str) -> str:
    """The SVG that Graphviz's `dot` draws from DOT text; raises NoPicture without it."""
    exe = shutil.which("dot")
    if exe is None:
        raise NoPicture(
            "No picture: drawing the graph needs Graphviz's `dot`, which is not installed "
            "(apt-get install graphviz, brew install graphviz, or conda install graphviz)."
        )
    run = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True)
    if run.returncode:
        raise NoPicture(f"No picture: Graphviz's `dot` failed: {run.stderr.strip()}")
    return run.stdout


def _size(item: str) -> tuple[str, int]:
    """`--dim NAME=SIZE`, as `bpc compile` takes it."""
    name, _, size = item.partition("=")
    if not name.isidentifier() or not size.isdigit() or int(size) < 1:
        raise argparse.ArgumentTypeError(
            f"--dim takes NAME=SIZE with a positive size, not {item!r}"
        )
    return name, int(size)


@magics_class
class BpcMagics(Magics):
    """`%%bpc` and `%bpc_show`; remembers the graphs each cell compiled, for `%bpc_show`."""

    def __init__(self, shell=None):
        super().__init__(shell)
        self.graphs: dict[str, tuple[CompiledCell, Compiled]] = {}

    @cell_magic
    @magic_arguments("%bpc")  # (the usage line adds one %)
    @argument(
        "--dim",
        action="append",
        default=[],
        type=_size,
        metavar="NAME=SIZE",
        help="a size you expect: the code is arranged to be fastest at these sizes (it takes "
        "arrays of any size)",
    )
    @argument(
        "--no-checks",
        action="store_true",
        help="functions that do not check their arguments' shapes and dtypes (faster calls)",
    )
    @argument(
        "--fast-math",
        action="store_true",
        help="tanh as 2 / (1 + exp(-2x)) - 1, within 2 ulp of 1 rather than of the value, in "
        "about half the time",
    )
    @argument("--jvp", action="store_true", help="also bind g_jvp: Jacobian-vector products")
    @argument("--hvp", action="store_true", help="also bind g_hvp: Hessian-vector products")
    def bpc(self, line: str, cell: str) -> None:
        """Compile the cell's bp source and bind each graph's functions (g, g_forward,
        g_backward, g_grad; g_jvp and g_hvp with --jvp and --hvp) in the namespace."""
        args = parse_argstring(self.bpc, line)
        sizes = dict(args.dim)
        orders = {"jvp": args.jvp, "hvp": args.hvp, "fast_math": args.fast_math}
        compiled, warnings = compile_cell(cell, checks=not args.no_checks, sizes=sizes, **orders)
        problem = unknown_dims(select(compiled.graphs, None, "float64"), sizes) if sizes else None
        if problem:
            raise UsageError(f"%%bpc {problem}")
        for warning in warnings:
            print(warning, file=sys.stderr)
        if not compiled.graphs:
            print(f"{CELL}: warning: the cell defines no graph", file=sys.stderr)
        module = module_of(compiled)
        for c in compiled.graphs:
            self.shell.push(functions(module, c.pair.name))
            self.graphs[c.pair.name] = (compiled, c)

    @line_magic
    def bpc_show(self, line: str) -> None:
        """%bpc_show GRAPH: the code generated for a graph compiled by %%bpc, highlighted, and
        its picture when Graphviz's dot is installed."""
        name = line.strip()
        if name not in self.graphs:
            known = ", ".join(self.graphs) or "none yet"
            what = f"no graph named {name!r} was compiled" if name else "usage: %bpc_show GRAPH"
            raise UsageError(f"%bpc_show: {what}; the graphs compiled by %%bpc: {known}")
        compiled, c = self.graphs[name]
        display(Code(graph_code(compiled, name), language="python"))
        try:
            display(SVG(draw_svg(to_dot([c]))))
        except NoPicture as e:
            print(e)


def load_ipython_extension(ipython) -> None:
    """`%load_ext bpc`: register `%%bpc` and `%bpc_show`."""
    ipython.register_magics(BpcMagics)
