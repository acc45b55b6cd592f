"""The stage verifier: what must hold of a graph between any two stages of the pipeline.

`verify(graph, stage)` checks the invariants that every pass relies on and none re-checks:

- every node's type is what its operation's shape rule gives for its arguments' types (and its
  attributes are the rule's normal form), and after the shape pass every node has a type;
- nothing dangles: each node's arguments come before it in `graph.nodes`, no node is listed
  twice, and the inputs, outputs, upstream gradients, gradients and cache are all listed;
- the inputs are the declared parameters, and the upstream gradients are `dout` leaves of their
  outputs' shapes;
- the forward never reads the backward: nothing the outputs depend on reads an upstream gradient;
- the cache holds forward values only, and once it is chosen the backward reads the forward
  through it alone; each gradient has its parameter's shape (and, once the gradients are
  finished, exactly its parameter's type);
- from autodiff on, no node is dead (each is needed by an output, a gradient, or is an input or
  upstream gradient), and once simplified no value is computed twice (hash-consing).

It raises `VerifyError` naming the stage, the graph, the node (operation, type, source line) and
the broken invariant. `compile_graphs` is `bpc.pipeline.compile_graphs` stage by stage with a
check after each one, optimization's passes included; the test suite compiles through it
(tests/conftest.py). `show(node)` renders a node as text, `mul(2, x)`, and `show_graph(graph)`
a whole graph, for tests that compare IR.

Whether the emitted code writes into a view in place is a property of the emission plan, not of
the IR, and is left to the emitter's own tests (tests/test_in_place.py).
"""

from __future__ import annotations

import collections
import weakref

from .diagnostics import Diagnostic
from .dims import Dim, show_shape
from .emit import Compiled
from .ir import OPS, Graph, Node, ShapeError, Type, reachable
from .optimize import Check

# (bound here, before tests/conftest.py puts the verifying one in the pipeline's place)
from .pipeline import compile_graphs as _compile_graphs
from .pipeline import compile_typed as _compile_typed

# The stages after which a graph is checked, in pipeline order. The graph of `g_grad` goes
# through `seed_ones` and the optimization stages again; its stages are named `g_grad/simplify`;
# the plain graphs of `g_jvp` and `g_hvp` (no douts, like `seed_ones` leaves a graph) likewise.
STAGES = (
    "build_ir",
    "infer_shapes",
    "canonicalize",
    "differentiate",
    "seed_ones",
    "simplify",
    "tidy_loops",
    "products_after_loops",
    "stacks_in_read_arrays",
    "transpose_products",
    "horner",
    "softplus_gradient_from_e",
    "split_sums",
    "abs_sums_as_dots",
    "contract_sums",
    "factor_scales",
    "place_scales",
    "read_normalized",
    "read_outputs",
    "sigmoid_of_minus",
    "share_products",
    "compound_first",
    "reductions_first",
    "scalings_last",
    "quotients_by_squares",
    "quotients_by_numbers_as_products",
    "sums_as_products",
    "fast_math",
    "finish_outputs",
    "finish_gradients",
    "select_cache",
    "outputs_after_hoisted",
)

# How many graphs `verify` has passed, by stage (the test suite prints the total).
COUNTS: collections.Counter[str] = collections.Counter()

# Nodes whose type has been checked against their shape rule: a node and its arguments never
# change, so a node that several stages share is checked once.
_TYPE_CHECKED: weakref.WeakSet[Node] = weakref.WeakSet()


class VerifyError(AssertionError):
    """A broken invariant: the stage after which it was found, the graph, the node, what is wrong."""

    def __init__(self, stage: str, graph: Graph, node: Node | None, message: str):
        self.stage, self.graph, self.node, self.invariant = stage, graph, node, message
        where = f"after {stage}, graph '{graph.name}'"
        super().__init__(f"{where}: {describe(node)}: {message}" if node else f"{where}: {message}")


def describe(n: Node) -> str:
    """`mul node 'h' float[n, m] at line 3:9 (fn 'layer')`: what a message says about a node."""
    text = f"{n.op} node"
    if n.hint:
        text += f" '{n.hint}'"
    text += f" {show_type(n.type)}" if n.type is not None else " (untyped)"
    if n.loc is not None:
        text += f" at line {n.loc.line}:{n.loc.col}" + (f" (fn '{n.loc.fn}')" if n.loc.fn else "")
    return text


def _base(stage: str) -> str:
    base = stage.rsplit("/", 1)[-1]
    if base not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    return base


def verify(graph: Graph, stage: str) -> Graph:
    """Check `graph` as it leaves `stage` (one of `STAGES`, or `g_grad/` and one of them); return
    it unchanged, or raise `VerifyError` at the first broken invariant."""
    at = STAGES.index(_base(stage))

    def fail(node: Node | None, message: str):
        raise VerifyError(stage, graph, node, message)

    position = _check_order(graph, fail)
    _check_roots(graph, position, fail, after_autodiff=at >= STAGES.index("differentiate"))
    for n in graph.nodes:
        _check_type(n, fail, typed=at > 0)
        if n.op == "loop" and at > 0:
            _check_body(n, fail)
    _check_forward(graph, fail)
    _check_gradients(graph, fail, finished=at >= STAGES.index("finish_gradients"))
    _check_cache(graph, fail, chosen=at >= STAGES.index("select_cache"))
    if at >= STAGES.index("differentiate"):
        _check_live(graph, fail)
    if STAGES.index("simplify") <= at <= STAGES.index("place_scales"):
        _check_shared(graph, fail)
    COUNTS[stage] += 1
    return graph


def _check_order(graph: Graph, fail) -> dict[Node, int]:
    """No node twice, and each node's arguments listed before it."""
    position: dict[Node, int] = {}
    for i, n in enumerate(graph.nodes):
        if n in position:
            fail(n, f"is listed twice in the graph's nodes (at {position[n]} and {i})")
        for a in n.args:
            if a not in position:
                if a in graph.nodes[i:]:
                    fail(n, f"reads {describe(a)}, which comes after it in the graph's nodes")
                fail(n, f"reads {describe(a)}, which is not in the graph's nodes (dangling)")
        position[n] = i
    return position


def _check_roots(graph: Graph, position: dict[Node, int], fail, after_autodiff: bool) -> None:
    """Inputs, outputs, douts, gradients and cache are nodes of the graph; inputs and douts are the
    leaves they should be."""
    for field in ("inputs", "outputs", "douts", "grads", "cache"):
        for n in getattr(graph, field):
            if n not in position:
                fail(n, f"is one of the graph's {field} but not in its nodes (dangling)")
    if len(graph.inputs) != len(graph.params):
        fail(None, f"has {len(graph.inputs)} inputs for {len(graph.params)} parameters")
    for i, (n, p) in enumerate(zip(graph.inputs, graph.params)):
        want = Type(p.dtype, p.dims)
        if n.op != "param" or n.attr("name") != p.name or n.attr("index") != i:
            fail(n, f"is input {i} but not the param node of parameter '{p.name}'")
        if n.type != want:
            fail(n, f"is parameter '{p.name}', declared {show_type(want)}")
    if len(graph.outputs) != len(graph.output_names):
        fail(None, f"has {len(graph.outputs)} outputs for {len(graph.output_names)} output names")
    if graph.douts and len(graph.douts) != len(graph.outputs):
        fail(None, f"has {len(graph.douts)} upstream gradients for {len(graph.outputs)} outputs")
    for i, (d, out) in enumerate(zip(graph.douts, graph.outputs)):
        if d.op != "dout" or d.attr("index") != i:
            fail(d, f"is upstream gradient {i} but not a dout leaf with index {i}")
        if d.type != Type("float", out.shape):
            fail(
                d,
                f"is the upstream gradient of {describe(out)}, so of type float{show_shape(out.shape)}",
            )
    if after_autodiff and len(graph.grads) != len(graph.wrt):
        fail(None, f"has {len(graph.grads)} gradients for {len(graph.wrt)} wrt parameters")
    for n in graph.nodes:
        if n.op == "param" and n not in graph.inputs:
            fail(n, "is a parameter that is not one of the graph's inputs")
        if n.op == "dout" and n not in graph.douts:
            fail(n, "is an upstream gradient that is not one of the graph's douts")


def _check_type(n: Node, fail, typed: bool) -> None:
    """The node's type and attributes are what its shape rule gives for its arguments."""
    untyped = n.type is None or any(a.type is None for a in n.args)
    if not typed and (untyped or n.op not in OPS):
        return  # built but not yet typed: the shape pass checks it
    if n.op not in OPS:
        fail(n, f"has operation '{n.op}', which is not in the registry")
    if n.type is None:
        fail(n, "has no type after the shape pass")
    for a in n.args:
        if a.type is None:
            fail(n, f"reads {describe(a)}, which has no type")
    if n.op == "param" or n in _TYPE_CHECKED:
        return  # (a parameter's type is its declaration's, checked with the inputs)
    try:
        result = OPS[n.op].infer(*(a.type for a in n.args), **n.kw)
    except ShapeError as e:
        args = ", ".join(show_type(a.type) for a in n.args)
        fail(n, f"its shape rule refuses its arguments ({args}): {e}")
    except TypeError as e:  # a missing or unknown attribute
        fail(n, f"its attributes {n.kw} do not fit its shape rule: {e}")
    want, attrs = result if isinstance(result, tuple) else (result, n.kw)
    if n.type != want:
        fail(n, f"has type {show_type(n.type)}, but its shape rule gives {show_type(want)}")
    if tuple(sorted(attrs.items())) != n.attrs:
        fail(n, f"has attributes {n.kw}, but its shape rule normalizes them to {attrs}")
    _TYPE_CHECKED.add(n)


def _check_body(loop: Node, fail) -> None:
    """A loop's body: closed (it reads its params and constants only: `Region` checks that when
    it is made), each node typed by its shape rule, nested loops too; and its carried values
    of the same type before and after an iteration (the loop's shape rule checks that)."""
    body = loop.attr("body")
    for n in body.nodes:
        if n.op == "param" and n not in body.params:
            fail(loop, f"has a body that reads {describe(n)}, which is not one of its params")
        _check_type(n, fail, typed=True)
        if n.op == "loop":
            _check_body(n, fail)


def show_type(t: Type) -> str:
    """`float[n, m]`, `int[] (static)`: a type with its dtype always written."""
    return f"{t.dtype}{show_shape(t.shape)}" + (" (static)" if t.static else "")


def _check_forward(graph: Graph, fail) -> None:
    """Nothing the outputs or the cache depend on reads an upstream gradient: the forward runs
    without one."""
    backward: set[Node] = set()  # the dout leaves and what depends on them
    for n in graph.nodes:
        if n.op == "dout" or any(a in backward for a in n.args):
            backward.add(n)
    if not backward:
        return
    for n in graph.cache:
        if n in backward:
            fail(n, "is in the cache but is not a forward value: it reads an upstream gradient")
    forward = graph.forward
    for n in graph.nodes:
        if n in forward:
            for a in n.args:
                if a in backward:
                    fail(n, f"is a forward node but reads the backward's {describe(a)}")
    for n in graph.outputs:
        if n in backward:
            fail(n, "is an output of the forward but is an upstream gradient")


def _check_live(graph: Graph, fail) -> None:
    """Every node is needed: by an output, a gradient, or as an input or upstream gradient."""
    live = reachable(graph.outputs + graph.grads + graph.inputs + graph.douts)
    for n in graph.nodes:
        if n not in live:
            fail(n, "is dead: no output or gradient needs it")


def _check_shared(graph: Graph, fail) -> None:
    """Simplified, no value is computed twice: equal operations on the same arguments are one
    node (the optimizer's hash-consing)."""
    seen: dict = {}
    for n in graph.nodes:
        key = (n.op, tuple(map(id, n.args)), repr(n.attrs), n.type)
        if n.op != "param" and key in seen:
            fail(n, f"computes what {describe(seen[key])} computes already (not shared)")
        seen[key] = n


def _check_gradients(graph: Graph, fail, finished: bool) -> None:
    """Each gradient has its parameter's shape; finished, exactly its parameter's type."""
    params = {n.attr("name"): n for n in graph.inputs}
    for name, g in zip(graph.wrt, graph.grads):
        p = params.get(name)
        if p is None:
            fail(g, f"is the gradient of '{name}', which is not a parameter")
        if g.type.shape != p.type.shape:
            fail(g, f"is the gradient of '{name}' {show_type(p.type)} but has another shape")
        if finished and g.type != p.type:
            fail(g, f"is the finished gradient of '{name}' but not of its type {show_type(p.type)}")


def _check_cache(graph: Graph, fail, chosen: bool) -> None:
    """The cache holds forward values only, once each; chosen, it is all the backward reads."""
    forward = graph.forward
    seen: set[Node] = set()
    for n in graph.cache:
        if n not in forward:
            fail(n, "is in the cache but is not a forward value")
        if n in seen:
            fail(n, "is in the cache twice")
        seen.add(n)
    if not chosen:
        return
    for n in graph.nodes:
        if n in forward:
            continue
        for a in n.args:
            if a in forward and a not in seen and a.op not in ("const", "dim"):
                fail(n, f"is a backward node and reads the forward's {describe(a)}, not cached")


# ---------------------------------------------------------------------------------------------
# The pipeline, checked after every stage


def compile_graphs(
    text: str,
    warnings: list[Diagnostic] | None = None,
    sizes: dict[str, int] | None = None,
    *,
    check: Check = verify,
    **orders: bool,
) -> list[Compiled]:
    """`bpc.pipeline.compile_graphs` with `check(graph, stage)` after every stage (`orders`:
    `jvp`, `hvp`)."""
    return _compile_graphs(text, warnings, sizes, check=check, **orders)


def compile_typed(
    graph: Graph, sizes: dict[str, int] | None = None, *, check: Check = verify, **orders: bool
) -> Compiled:
    """The stages after the shape pass, on one typed graph, with `check(graph, stage)` after each
    (for graphs built as IR by hand)."""
    return _compile_typed(graph, sizes, check=check, **orders)


# ---------------------------------------------------------------------------------------------
# IR as text


def show(n: Node) -> str:
    """A node as an expression: `mul(2, x)`, `sum(x, axis=(0,), keepdims=False)`. Parameters and
    upstream gradients are their names, constants their values, dimension sizes their text."""
    if n.op == "param":
        return n.attr("name")
    if n.op == "dout":
        return n.hint or f"dout{n.attr('index')}"
    if n.op == "const":
        return repr(n.attr("value"))
    if n.op == "dim":
        return str(n.attr("dim"))
    parts = [show(a) for a in n.args] + [f"{k}={_value(v)}" for k, v in n.attrs]
    return f"{n.op}({', '.join(parts)})"


def _value(v) -> str:
    if isinstance(v, Dim):
        return str(v)
    if isinstance(v, tuple):
        inner = ", ".join(_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, Type):
        return show_type(v)
    return repr(v)


def show_graph(graph: Graph) -> str:
    """A graph as numbered lines, `%3 = mul(%1, %2) : float[n] 'h' @3:9`, then its roots."""
    number = {n: i for i, n in enumerate(graph.nodes)}

    def ref(n: Node) -> str:
        return f"%{number[n]}" if n in number else f"<dangling {n.op}>"

    lines = []
    for i, n in enumerate(graph.nodes):
        parts = [ref(a) for a in n.args] + [f"{k}={_value(v)}" for k, v in n.attrs]
        hint = f" '{n.hint}'" if n.hint else ""
        loc = f" @{n.loc.line}:{n.loc.col}" + (f"({n.loc.fn})" if n.loc.fn else "") if n.loc else ""
        typ = show_type(n.type) if n.type else "?"
        lines.append(f"%{i} = {n.op}({', '.join(parts)}) : {typ}{hint}{loc}")
    for field in ("inputs", "outputs", "douts", "grads", "cache"):
        lines.append(f"{field}: {', '.join(ref(n) for n in getattr(graph, field))}")
    lines.append(f"wrt: {', '.join(graph.wrt)}; cache_dims: {', '.join(sorted(graph.cache_dims))}")
    return "\n".join(lines)
