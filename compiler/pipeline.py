"""The pipeline, stage by stage: parse -> build IR -> infer shapes -> differentiate -> optimize -> emit."""

from __future__ import annotations

import contextlib
import gc
from dataclasses import replace

from . import hvp as second_order
from .autodiff import differentiate
from .build import build_ir
from .diagnostics import CompileError, Diagnostic, error
from .emit import Compiled, emit
from .forward import jvp as forward_mode
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
    jvp: bool = False,
    hvp: bool = False,
    fast_math: bool = False,
    numpy_kernels: bool = True,
) -> list[Compiled]:
    """Every graph in `text` through all stages but emission. The errors of independent
    statements and graphs are reported together; warnings are appended to `warnings`. `sizes`
    are the dimension sizes the user expects: where the cheaper form of a computation depends on
    them, the optimizer chooses it for those sizes. `check(graph, stage)` sees each graph after
    each stage (`bpc.verify`, in the tests). With `jvp` and `hvp`, each graph also gets its
    Jacobian-vector and Hessian-vector products (see `compile_typed`); with `fast_math`, the
    kernels `bpc compile --fast-math` allows; with `numpy_kernels`, the NumPy target's."""
    try:
        orders = {"jvp": jvp, "hvp": hvp, "fast_math": fast_math, "numpy_kernels": numpy_kernels}
        return _compile_graphs(text, warnings, sizes, check or unchecked, **orders)
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
    text: str,
    warnings: list[Diagnostic] | None,
    sizes: dict[str, int] | None,
    check: Check,
    **orders: bool,
) -> list[Compiled]:
    typed = typed_graphs(text, warnings, check)
    return [compile_typed(graph, sizes, check=check, **orders) for graph in typed]


def typed_graphs(
    text: str, warnings: list[Diagnostic] | None = None, check: Check = unchecked
) -> list[Graph]:
    """Every graph in `text` built and typed (the stages before differentiation)."""
    typed, errors = [], []
    for graph in build_ir(parse(text), text, warnings, errors):
        check(graph, "build_ir")
        try:
            typed.append(check(infer_shapes(graph), "infer_shapes"))
        except CompileError as e:  # one graph's shape error does not hide another's
            errors.extend(e.diagnostics)
    if errors:
        raise CompileError(errors)
    return typed


def compile_typed(
    graph: Graph,
    sizes: dict[str, int] | None = None,
    *,
    check: Check | None = None,
    jvp: bool = False,
    hvp: bool = False,
    fast_math: bool = False,
    numpy_kernels: bool = True,
) -> Compiled:
    """The stages after the shape pass, on one typed graph: the forward and backward pair and,
    for one scalar output, the fused value and gradient; with `jvp`, the Jacobian-vector
    products; with `hvp`, for one scalar output, the Hessian-vector products. With `fast_math`,
    the kernels `bpc compile --fast-math` allows (`optimize.fast_math`); with `numpy_kernels`,
    those chosen for NumPy at the expected sizes (`optimize.sums_as_products`)."""
    check = check or unchecked
    kernels = {"fast": fast_math, "numpy_kernels": numpy_kernels}
    canonical = check(canonicalize(graph), "canonicalize")
    full = check(differentiate(canonical), "differentiate")
    pair = optimize(full, cache_reused=True, sizes=sizes, check=check, **kernels)

    def plain(g: Graph, kind: str) -> Graph:
        g = check(replace(g, name=f"{graph.name}_{kind}"), f"g_{kind}/seed_ones")
        prefix = f"g_{kind}/"
        return optimize(g, cache_reused=False, sizes=sizes, check=check, prefix=prefix, **kernels)

    tangents = plain(forward_mode(canonical), "jvp") if jvp else None
    if len(graph.outputs) != 1 or graph.outputs[0].ndim:  # (no gradient, no Hessian)
        return Compiled(pair, None, tangents)
    ones = check(seed_ones(full), "g_grad/seed_ones")
    grad = optimize(ones, cache_reused=False, sizes=sizes, check=check, prefix="g_grad/", **kernels)
    if not hvp:
        return Compiled(pair, grad, tangents)
    made = [(how, plain(g, "hvp")) for how, g in second_order.candidates(full)]
    return Compiled(pair, grad, tangents, second_order.cheaper(made, sizes))


def compile_source(
    text: str,
    filename: str = "<string>",
    *,
    checks: bool = True,
    warnings: list[Diagnostic] | None = None,
    sizes: dict[str, int] | None = None,
    jvp: bool = False,
    hvp: bool = False,
    target: str = "numpy",
    consume_cache: bool = False,
    fast_math: bool = False,
) -> str:
    """Compile bp source text to the text of a Python module; raises CompileError on bad input.
    With `checks=False` the module does not check its arguments' shapes and dtypes; warnings
    (unused values and parameters) are appended to `warnings` when a list is given. With
    `sizes` (dimension name -> expected size) the code is arranged to be fastest at those
    sizes; it still takes arrays of any size. With `jvp`, the module also defines `g_jvp` for each
    graph; with `hvp`, `g_hvp` for each graph with one scalar output. `target` names the code's
    target (`bpc.targets`): `numpy`, or `array-api` for the arrays of any array-API library.
    With `consume_cache` (numpy target), each forward's cache serves one backward, which takes
    its values out and may work in its arrays: a lower peak memory, as PyTorch's backward frees
    its saved tensors; a second backward with the same cache raises ValueError. With
    `fast_math` (numpy target), tanh is computed within 2 ulp of 1 rather than of the value, in
    about half the time (`optimize.fast_math`)."""
    if fast_math and target != "numpy":
        raise ValueError(f"fast_math is for the numpy target, not {target}")
    try:
        with _collector_paused():
            orders = {"jvp": jvp, "hvp": hvp, "fast_math": fast_math}
            orders["numpy_kernels"] = target == "numpy"
            compiled = compile_graphs(text, warnings, sizes, **orders)
            return emit(
                compiled,
                filename,
                checks=checks,
                sizes=sizes,
                target=target,
                consume_cache=consume_cache,
            )
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
