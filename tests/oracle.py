"""An independent evaluator of the typed forward IR, written with `autograd.numpy`.

The compiler's gradients are checked against HIPS autograd run on this evaluator. Nothing here
uses the compiler's emitter or its adjoint rules: only the parser, the IR builder and the shape
pass, to get the typed forward graph. Each operation is written from its textbook definition
(sigmoid as 1 / (1 + exp(-x)), not the compiler's tanh form), so an emission or adjoint bug
cannot hide in both sides of a comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import autograd
import autograd.numpy as anp
import numpy as np

from bpc.build import build_ir
from bpc.dims import Dim
from bpc.ir import Graph, Node
from bpc.parse import parse
from bpc.shapes import infer_shapes
from tests.oracle_rules import RULES

_graph_cache: dict[str, list[Graph]] = {}


def typed_graphs(src: str) -> list[Graph]:
    """Every graph of `src`, typed by the shape pass (not differentiated, not optimized)."""
    if src not in _graph_cache:
        _graph_cache[src] = [infer_shapes(g) for g in build_ir(parse(src), src)]
    return _graph_cache[src]


def typed_graph(src: str, graph_name: str | None = None) -> Graph:
    """The typed forward graph named `graph_name` (the first graph when no name is given)."""
    graphs = typed_graphs(src)
    if graph_name is None:
        return graphs[0]
    for g in graphs:
        if g.name == graph_name:
            return g
    raise KeyError(f"no graph named {graph_name!r}; have {[g.name for g in graphs]}")


def bind_dims(graph: Graph, inputs: Mapping[str, object]) -> dict[str, int]:
    """Dimension sizes from the shapes of the inputs, checked for consistency: a name is read off
    an axis where it is the one unknown of the axis' expression (which the language makes
    linear), by evaluating the expression at 0 and 1; every axis is checked after."""
    sizes: dict[str, int] = {}
    axes = []
    for p in graph.params:
        shape = np.shape(inputs[p.name])
        if len(shape) != len(p.dims):
            raise ValueError(f"{p.name}: expected {len(p.dims)}-d input, got shape {shape}")
        axes += [(p.name, Dim.of(d), size) for d, size in zip(p.dims, shape)]
    progress = True
    while progress:
        progress = False
        for _, d, size in axes:
            unknown = d.symbols - set(sizes)
            if len(unknown) == 1:
                (x,) = unknown
                at0, at1 = (d.evaluate({**sizes, x: v}) for v in (0, 1))
                sizes[x] = int((size - at0) / (at1 - at0))
                progress = True
    for name, d, size in axes:
        if d.evaluate(sizes) != size:
            raise ValueError(f"{name}: an axis of size {size} is declared {d}")
    return sizes


def dim_value(d: Dim | int, sizes: Mapping[str, int]) -> int:
    """The integer value of a symbolic dimension under the bound sizes."""
    d = Dim.of(d)
    value = d.subs({s: Dim.of(v) for s, v in sizes.items()})
    if not value.is_const:
        raise ValueError(f"dimension {d} has unbound symbols {sorted(value.symbols)}")
    return value.value


def shape_value(shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(dim_value(d, sizes) for d in shape)


def _sigmoid(x):
    return 1.0 / (1.0 + anp.exp(-x))


def _relu(x):
    return anp.where(x > 0, x, 0.0)


def _full_like(like, value):
    # The result has `like`'s shape and dtype; only `value` is differentiated.
    return anp.zeros_like(like) + value


_ELEMENTWISE = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": anp.power,
    "neg": lambda x: -x,
    "exp": anp.exp,
    "log": anp.log,
    "sqrt": anp.sqrt,
    "tanh": anp.tanh,
    "fast_tanh": anp.tanh,
    "sigmoid": _sigmoid,
    "sigmoid_of_minus": lambda x: _sigmoid(-x),
    "ties_halved": lambda g, a, b: g * anp.greater(a, b) + 0.5 * g * anp.equal(a, b),
    "relu": _relu,
    "lt": anp.less,
    "le": anp.less_equal,
    "gt": anp.greater,
    "ge": anp.greater_equal,
    "eq": anp.equal,
    "ne": anp.not_equal,
    "matmul": anp.matmul,
    "outer": anp.outer,
    "full_like": _full_like,
    "copy": lambda x: x,
    "scalar": lambda x: x,
    "cast": lambda x: x * 1.0,
}


def _apply(n: Node, args: list, sizes: Mapping[str, int]):
    kw = n.kw
    if n.op in RULES:
        return RULES[n.op](n, args, sizes)
    if n.op in _ELEMENTWISE:
        return _ELEMENTWISE[n.op](*args)
    if n.op == "const":
        return kw["value"]
    if n.op == "dim":
        return dim_value(kw["dim"], sizes)
    (x,) = args
    if n.op == "transpose":
        return anp.transpose(x, kw["axes"])
    if n.op == "reshape":
        return anp.reshape(x, shape_value(kw["shape"], sizes))
    if n.op == "broadcast_to":
        # x broadcast against zeros: autograd reduces the gradient back to x's shape.
        return x + anp.zeros(shape_value(kw["shape"], sizes))
    if n.op in ("sum", "mean"):
        axis = kw.get("axis")
        fn = anp.sum if n.op == "sum" else anp.mean
        return fn(x, axis=axis, keepdims=kw.get("keepdims", False))
    raise NotImplementedError(f"oracle: no evaluation rule for op {n.op!r}")


def evaluate(
    graph: Graph,
    inputs: Mapping[str, object],
    *,
    check_shapes: bool = True,
    douts: Sequence[object] = (),
) -> list:
    """The values of the graph's outputs for `inputs` (a dict from parameter name to value).

    Values may be autograd boxes. With `check_shapes`, every node's value must have the shape
    the shape pass inferred for it, evaluated with the bound dimension sizes. A differentiated
    graph is evaluated too, given the values of its `douts` (in order), for the ops the
    evaluator knows; its gradients are then `evaluate(replace(graph, outputs=graph.grads), ...)`."""
    sizes = bind_dims(graph, inputs)
    env: dict[Node, object] = {}
    for n in graph.inputs:
        env[n] = inputs[n.attr("name")]
    assert len(douts) == len(graph.douts), "one value for each dout"
    env.update(zip(graph.douts, douts))
    for n in graph.nodes:
        if n in env:
            continue
        if n.op == "param":
            env[n] = inputs[n.attr("name")]
            continue
        value = _apply(n, [env[a] for a in n.args], sizes)
        if check_shapes and n.type.dtype != "tuple":  # (a loop's value: a tuple of results)
            want = shape_value(n.shape, sizes)
            have = tuple(anp.shape(value))
            if have != want:
                raise AssertionError(
                    f"oracle: {n.op} node {n.hint or ''} has shape {have}, "
                    f"but the shape pass says {want}"
                )
        env[n] = value
    return [env[o] for o in graph.outputs]


def forward(graph: Graph, inputs: Mapping[str, object]):
    """The output value, or a tuple of them when the graph has several."""
    outs = evaluate(graph, inputs)
    return outs[0] if len(outs) == 1 else tuple(outs)


def graph_grads(graph: Graph, inputs: Mapping[str, object], dout) -> dict[str, np.ndarray]:
    """Gradients of sum(out * dout) (summed over outputs, `dout` a tuple when there are several)
    with respect to the graph's `wrt` parameters, computed by autograd."""
    douts = tuple(dout) if len(graph.outputs) > 1 else (dout,)
    wrt = list(graph.wrt)
    fixed = {k: v for k, v in inputs.items() if k not in wrt}

    def objective(free):
        outs = evaluate(graph, {**fixed, **free}, check_shapes=False)
        total = 0.0
        for out, d in zip(outs, douts):
            if np.result_type(anp.asarray(getattr(out, "_value", out))).kind == "b":
                continue  # a boolean mask carries no gradient
            total = total + anp.sum(out * d)
        return total

    free = {k: np.asarray(inputs[k], dtype=np.float64) for k in wrt}
    grads = autograd.grad(objective)(free)
    return {k: np.asarray(grads[k], dtype=np.float64) for k in wrt}


def oracle_forward(src: str, graph_name: str | None, inputs: Mapping[str, object]):
    """The forward value of graph `graph_name` of `src`, evaluated by the oracle."""
    return forward(typed_graph(src, graph_name), inputs)


def oracle_grads(
    src: str, graph_name: str | None, inputs: Mapping[str, object], dout
) -> dict[str, np.ndarray]:
    """Gradients of sum(out * dout) with respect to the `wrt` parameters, by autograd."""
    return graph_grads(typed_graph(src, graph_name), inputs, dout)


# ---------------------------------------------------------------------------------------------
# Forward mode: a JVP graph (`bpc.forward.jvp`) evaluated here, and the reference it is checked
# against, central differences of the forward value along the tangents


def evaluate_jvp(graph: Graph, jvp_graph: Graph, inputs: Mapping[str, object], tangents) -> tuple:
    """The outputs of `graph` and their tangents: its JVP graph `jvp_graph` (made by
    `bpc.forward.jvp`, optimized or not) evaluated here, for `inputs` and `tangents` (a dict from
    each `wrt` parameter's name to its tangent). This evaluates the compiler's JVP rules; it is
    what is checked, not a reference (`numeric_jvp` is)."""
    fed = dict(inputs)
    for name, leaf in zip(graph.wrt, jvp_graph.inputs[len(graph.inputs) :]):
        fed[leaf.attr("name")] = tangents[name]
    values = evaluate(jvp_graph, fed)
    n = len(graph.outputs)
    return values[:n], values[n:]


def numeric_jvp(graph: Graph, inputs: Mapping[str, object], tangents, eps: float = 1e-6) -> list:
    """Central differences of each output of `graph` along `tangents` (a dict from parameter
    name to tangent): J v, numerically, in float64."""

    def moved(step: float) -> list:
        at = {k: v + step * tangents[k] if k in tangents else v for k, v in inputs.items()}
        return [np.asarray(v, dtype=np.float64) for v in evaluate(graph, at)]

    return [(up - down) / (2 * eps) for up, down in zip(moved(eps), moved(-eps))]
