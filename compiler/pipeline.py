"""The pipeline, stage by stage: parse -> build IR -> infer shapes -> differentiate -> optimize -> emit."""

from __future__ import annotations

import contextlib
import gc

from .autodiff import differentiate
from .build import build_ir
from .diagnostics import CompileError, Diagnostic, error
from .emit import Compiled, emit
from .ir import Graph
from .optimize import Check, canonicalize, optimize, seed_ones, unchecked
from .parse import parse
from .shapes import infer_shapes
from .syntax import deepest


def compile_graphs(
    text: str,
    warnings: list[Diagnostic] | None = None,
    sizes: dict[str, int] | None = None,
    *,
    check: Check | None = None,
) -> list[Compiled]:
    """Every graph in `text` through all stages but emission. The errors of independent
    statements and graphs are reported together; warnings are appended to `warnings`. `sizes`
    are the dimension sizes the user expects: where the cheaper form of a computation depends on
    them, the optimizer chooses it for those sizes. `check(graph, stage)` sees each graph after
    each stage (`bpc.verify`, in the tests)."""
    try:
        return _compile_graphs(text, warnings, sizes, check or unchecked)
    except RecursionError:
        raise nested_too_deeply(text) from None


def nested_too_deeply(text: str) -> CompileError:
    """The error for a program whose nesting exhausted Python's stack while compiling: at the
    statement whose expression nests deepest (the parser itself does not recurse)."""
    depth, where = deepest(parse(text))
    if depth < 50:  # (not one expression: fn calls inlined into one another, say)
        return error(None, "the program is nested too deeply to compile")
    return error(
        where,
        f"this expression nests {depth} levels deep, too deeply to compile; give some of its "
        "parts names of their own",
    )


def _compile_graphs(
    text: str, warnings: list[Diagnostic] | None, sizes: dict[str, int] | None, check: Check
) -> list[Compiled]:
    typed, errors = [], []
    for graph in build_ir(parse(text), text, warnings, errors):
        check(graph, "build_ir")
        try:
            typed.append(check(infer_shapes(graph), "infer_shapes"))
        except CompileError as e:  # one graph's shape error does not hide another's
            errors.extend(e.diagnostics)
    if errors:
        raise CompileError(errors)
    return [compile_typed(graph, sizes, check=check) for graph in typed]


def compile_typed(
    graph: Graph, sizes: dict[str, int] | None = None, *, check: Check | None = None
) -> Compiled:
    """The stages after the shape pass, on one typed graph: the forward and backward pair and,
    for one scalar output, the fused value and gradient."""
    check = check or unchecked
    full = check(differentiate(check(canonicalize(graph), "canonicalize")), "differentiate")
    pair = optimize(full, cache_reused=True, sizes=sizes, check=check)
    if len(graph.outputs) != 1 or graph.outputs[0].ndim:
        return Compiled(pair, None)
    ones = check(seed_ones(full), "g_grad/seed_ones")
    return Compiled(
        pair, optimize(ones, cache_reused=False, sizes=sizes, check=check, prefix="g_grad/")
    )


def compile_source(
    text: str,
    filename: str = "<string>",
    *,
    checks: bool = True,
    warnings: list[Diagnostic] | None = None,
    sizes: dict[str, int] | None = None,
    target: str = "numpy",
) -> str:
    """Compile bp source text to the text of a Python module; raises CompileError on bad input.
    With `checks=False` the module does not check its arguments' shapes and dtypes; warnings
    (unused values and parameters) are appended to `warnings` when a list is given. With
    `sizes` (dimension name -> expected size) the code is arranged to be fastest at those
    sizes; it still takes arrays of any size. `target` names the code's target (`bpc.targets`):
    `numpy`, or `array-api` for the arrays of any array-API library."""
    try:
        with _collector_paused():
            graphs = compile_graphs(text, warnings, sizes)
            return emit(graphs, filename, checks=checks, sizes=sizes, target=target)
    except RecursionError:
        raise nested_too_deeply(text) from None


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused while compiling: the compiler makes many small
    objects and no cycles worth collecting, and the collector's passes over them took a tenth of
    the compile time of a 10,000-operation graph (`bench/compile_time.py`)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
