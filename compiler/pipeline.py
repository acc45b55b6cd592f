"""The pipeline, stage by stage: parse -> build IR -> infer shapes -> differentiate -> optimize -> emit."""

from __future__ import annotations

from .autodiff import differentiate
from .build import build_ir
from .diagnostics import error
from .emit import Compiled, emit
from .optimize import canonicalize, optimize, seed_ones
from .parse import parse
from .shapes import infer_shapes


def compile_graphs(text: str) -> list[Compiled]:
    """Every graph in `text` through all stages but emission."""
    out = []
    for graph in build_ir(parse(text), text):
        typed = infer_shapes(graph)
        full = differentiate(canonicalize(typed))
        pair = optimize(full, cache_reused=True)
        scalar = len(typed.outputs) == 1 and typed.outputs[0].ndim == 0
        grad = optimize(seed_ones(full), cache_reused=False) if scalar else None
        out.append(Compiled(pair, grad))
    return out


def compile_source(text: str, filename: str = "<string>", *, checks: bool = True) -> str:
    """Compile bp source text to the text of a Python module; raises CompileError on bad input.
    With `checks=False` the module does not check its arguments' shapes and dtypes."""
    try:
        return emit(compile_graphs(text), filename, checks=checks)
    except RecursionError:
        raise error(None, "the program is nested too deeply to compile") from None
