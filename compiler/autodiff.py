"""Stage 4: reverse mode at compile time. The backward pass is built as ordinary IR.

Walking the forward nodes in reverse, each op's adjoint rule turns the upstream gradient of its
result into one gradient per argument; fan-out is summed, broadcasting is undone by `unbroadcast`,
and only values that depend on a `wrt` parameter are differentiated.
"""

from __future__ import annotations

from dataclasses import replace

from .dims import Dim
from .ir import OPS, Graph, Node, Type, at, make, schedule
from .ops.loop import results_of


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


def spread(active: set[Node], nodes) -> set[Node]:
    """`active` and the float values (and loops) among `nodes` that depend on one of them."""
    active = set(active)
    for n in nodes:
        if n.type.dtype in ("float", "tuple") and any(a in active for a in n.args):
            active.add(n)
    return active


def backprop(nodes, seeds: dict[Node, Node], active: set[Node], number: int, sliced=frozenset()):
    """Reverse mode over `nodes` (in a topological order) from `seeds` (a value -> the gradient
    flowing into it): the gradient of every active value that the seeds reach, the nodes made,
    the loops replaced by loops that also keep what their backward reads, and, for each
    `select` of a value in `sliced` (a loop body's outer value read slot by slot), the gradient
    of that slot, kept apart rather than put back into a whole array."""
    grads: dict[Node, Node] = {}
    created: list[Node] = []
    replaced: dict[Node, Node] = {}
    slots: dict[Node, Node] = {}

    def accumulate(x: Node, g: Node) -> None:
        grads[x] = grads[x] + g if x in grads else g
        created.append(grads[x])

    for x, g in seeds.items():
        accumulate(x, g)
    for n in reversed(nodes):
        if n.op == "loop":
            if n in active:
                _through_loop(n, nodes, grads, active, number, replaced, accumulate)
            continue
        if n not in grads or OPS[n.op].leaf or n.op == "result":
            continue
        if n.op == "select" and n.args[0] in sliced:
            slots[n] = grads[n]
            continue
        rule = OPS[n.op].adjoint
        with at(n.loc):
            contributions = rule(grads[n], n, *n.args, **n.kw)
            assert len(contributions) == len(n.args), f"adjoint of {n.op} returned a wrong arity"
            for a, ga in zip(n.args, contributions):
                if ga is not None and a in active:
                    accumulate(a, unbroadcast(ga, a.shape))
    return grads, created, replaced, slots


def _through_loop(n, nodes, grads, active, number, replaced, accumulate) -> None:
    """A loop's gradients: its results' gradients in, one per argument out (`loops.py`)."""
    from .loops import loop_vjp  # (loops.py differentiates a body with `backprop`)

    results = results_of(n, nodes)
    g = tuple(grads.get(results[i]) if i in results else None for i in range(len(n.attr("kinds"))))
    if all(x is None for x in g):
        return
    with at(n.loc):
        contributions, replacement = loop_vjp(g, n, [a in active for a in n.args], number)
    if replacement is not None:
        replaced[n] = replacement
    for a, ga in zip(n.args, contributions):
        if ga is not None and a in active:
            accumulate(a, ga)


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
    active = spread(set(wrt), graph.nodes)

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
    seeds: dict[Node, Node] = {}
    for out, dout in zip(graph.outputs, douts):  # (one value output twice gets both douts)
        if out in active:
            seeds[out] = seeds[out] + dout if out in seeds else dout
    grads, created, replaced, _ = backprop(graph.nodes, seeds, active, number)

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
    roots = graph.outputs + tuple(results) + graph.douts + douts + graph.inputs
    for n in schedule(graph.nodes + tuple(created) + tuple(results), roots):
        if n in renamed:  # (a loop's replacement, placed where the loop was)
            continue
        source = replaced.get(n, n)  # a loop keeps what its backward reads (`loops.py`)
        args = tuple(renamed.get(a, a) for a in source.args)
        hint = source.hint or names.get(n)
        m = (
            source
            if args == source.args and hint == source.hint
            else replace(source, args=args, hint=hint)
        )
        renamed[n] = renamed[source] = m
        order.append(m)
    if replaced:  # (the loop's new arguments were placed after it)
        order = list(schedule(order, tuple(renamed.get(r, r) for r in roots)))
    return replace(
        graph,
        nodes=tuple(order),
        douts=tuple(renamed.get(d, d) for d in graph.douts + douts),
        grads=tuple(renamed.get(r, r) for r in results),
        inputs=tuple(renamed.get(n, n) for n in graph.inputs),
        outputs=tuple(renamed.get(n, n) for n in graph.outputs),
    )
