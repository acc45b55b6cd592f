"""Stage 4: reverse mode at compile time. The backward pass is built as ordinary IR.

Walking the forward nodes in reverse, each op's adjoint rule turns the upstream gradient of its
result into one gradient per argument; fan-out is summed, broadcasting is undone by `unbroadcast`,
and only values that depend on a `wrt` parameter are differentiated.
"""

from __future__ import annotations

from dataclasses import replace

from .dims import Dim
from .ir import OPS, Graph, Node, Type, at, make, schedule


def unbroadcast(g: Node, shape: tuple[Dim, ...]) -> Node:
    """Sum `g` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == Dim.of(1) and g.shape[lead + i] != d
    )
    summed = make("sum", g, axis=axes, keepdims=False) if axes else g
    return summed if summed.shape == shape else make("reshape", summed, shape=shape)


def differentiate(graph: Graph) -> Graph:
    """Add upstream-gradient inputs (`douts`) and the gradients of the `wrt` parameters.

    The graph may be differentiated already (a VJP of a VJP: its outputs the first gradients):
    its douts are then inputs like its parameters, kept before the new ones, which are aligned
    with its outputs. Each dout is a leaf of its own: its `differentiation` attribute numbers
    the differentiations of the graph (one more than the highest among the douts it holds),
    and `index` its output, so hash-consing never merges the douts of two differentiations,
    and compiling twice numbers them alike."""
    by_name = {n.attr("name"): n for n in graph.inputs}
    earlier = [n.attr("differentiation") for n in graph.nodes + graph.douts if n.op == "dout"]
    number = max(earlier, default=0) + 1
    wrt = [by_name[name] for name in graph.wrt]
    active = set(wrt)
    for n in graph.nodes:
        if n.type.dtype == "float" and any(a in active for a in n.args):
            active.add(n)

    single = len(graph.outputs) == 1
    douts = tuple(
        Node(
            "dout",
            (),
            (("differentiation", number), ("index", i), ("type", Type("float", out.shape))),
            Type("float", out.shape),
            "dout" if single else f"dout_{name}",
        )
        for i, (name, out) in enumerate(zip(graph.output_names, graph.outputs))
    )
    grads: dict[Node, Node] = {}
    created: list[Node] = []

    def accumulate(x: Node, g: Node) -> None:
        grads[x] = grads[x] + g if x in grads else g
        created.append(grads[x])

    for out, dout in zip(graph.outputs, douts):
        if out in active:
            accumulate(out, dout)
    for n in reversed(graph.nodes):
        if n not in grads or OPS[n.op].leaf:
            continue
        rule = OPS[n.op].adjoint
        with at(n.loc):
            contributions = rule(grads[n], n, *n.args, **n.kw)
            assert len(contributions) == len(n.args), f"adjoint of {n.op} returned a wrong arity"
            for a, ga in zip(n.args, contributions):
                if ga is not None and a in active:
                    accumulate(a, unbroadcast(ga, a.shape))

    results = []
    for p in wrt:
        with at(p.loc):
            results.append(grads.get(p) or make("full_like", p, 0))

    # Name each gradient after its value (`dq` for `q`), the latest forward value first.
    names: dict[Node, str] = {}
    for n in reversed(graph.nodes):
        if n in grads and n.hint and n.op not in ("const", "dim"):
            names.setdefault(grads[n], "d" + n.hint)
    renamed: dict[Node, Node] = {}
    order = []
    for n in schedule(
        graph.nodes + tuple(created) + tuple(results),
        graph.outputs + tuple(results) + graph.douts + douts + graph.inputs,
    ):
        args = tuple(renamed.get(a, a) for a in n.args)
        hint = n.hint or names.get(n)
        m = n if args == n.args and hint == n.hint else replace(n, args=args, hint=hint)
        renamed[n] = m
        order.append(m)
    return replace(
        graph,
        nodes=tuple(order),
        douts=tuple(renamed.get(d, d) for d in graph.douts + douts),
        grads=tuple(renamed.get(r, r) for r in results),
        inputs=tuple(renamed.get(n, n) for n in graph.inputs),
        outputs=tuple(renamed.get(n, n) for n in graph.outputs),
    )
