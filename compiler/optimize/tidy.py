"""Loops tidied as a whole (`tidy_loops`): what a loop carries without changing is no longer
carried, and what no one reads of a loop is no longer computed.

- A carried value that an iteration leaves as it is (the gradient of a carried `loss`, which
  is 1 at every step) is read from outside the loop instead, and the loop's result is its
  value before the loop.
- A result that nothing reads is dropped with what only it needs: a sum or a written array
  nobody reads, a carried value that nothing reads after the loop and no iteration reads
  either, and each value from outside that the body no longer reads.

These need the loop's readers, so this is a pass over the whole graph rather than a rule of
the simplifier; it runs on loop bodies too. `outputs_alone` runs it on the forward pass alone
(the emitter's `g`), whose loops then fill no stack that only the backward reads.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node, Region, make, reachable, region_param, rewrite, with_args
from ..ops.loop import counts, width
from .fixpoint import in_bodies


def outputs_alone(graph: Graph) -> Graph:
    """The forward pass alone, for the function that returns the outputs and keeps no cache:
    no gradients, and no loop result that only the backward reads (the stacks a forward loop
    fills for it, `c_steps`), in nested loops too."""
    alone = rewrite(replace(graph, grads=(), douts=()), lambda n, args: with_args(n, args))

    def each(g: Graph) -> Graph:
        return in_bodies(tidy_loops(g), each)

    return each(alone) if any(n.op == "loop" for n in alone.nodes) else alone


def tidy_loops(graph: Graph) -> Graph:
    """Invariant carried values read from outside, and unread results dropped (see above)."""
    loops = [n for n in graph.nodes if n.op == "loop"]
    if not loops:
        return graph
    read = {(n.args[0], n.attr("index")) for n in graph.nodes if n.op == "result"}
    done: dict[Node, tuple[Node, dict[int, int | Node]]] = {}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n.op == "loop":
            kept = {j for j in range(len(n.attr("kinds"))) if (n, j) in read}
            new, where = _tidied(with_args(n, args), kept)
            done[n] = (new, where)
            return new
        if n.op == "result" and n.args[0] in done:
            new, where = done[n.args[0]]
            target = where[n.attr("index")]
            if isinstance(target, Node):
                return target
            return replace(n, args=(new,), attrs=(("index", target),), type=new.type.items[target])
        return with_args(n, args)

    return rewrite(graph, step)


def _tidied(n: Node, read: set[int]) -> tuple[Node, dict]:
    """Loop n without invariant carries and unread results; and where each old result went:
    its new index, or the node that replaces it (an invariant carry's value before the loop)."""
    kw = n.kw
    body, kinds = kw["body"], list(kw["kinds"])
    carried, _ = counts(kinds)
    nk = len(kinds)
    params = list(body.params)
    inits, outer = list(n.args[:nk]), list(n.args[nk:])
    results = list(body.results)
    where: dict[int, int | Node] = {}
    # invariant carries: read their value before the loop from outside
    substitute: dict[Node, Node] = {}
    for j in range(carried):
        p = params[1 + j]
        if results[j] is p:
            where[j] = inits[j]
            if inits[j].op in ("const", "dim"):
                substitute[p] = inits[j]
            else:
                index = len(params) + len(substitute)  # (now an outer value's param)
                substitute[p] = region_param(p.attr("name"), p.attr("region"), index, p.type)
    if not substitute and all(j in read for j in range(nk)):
        return n, {j: j for j in range(nk)}
    results = _substituted(body, substitute)
    # which results to keep: those read, and the carries that a kept result needs
    keep = {j for j in range(nk) if j in read and j not in where}
    spans = _spans(kinds, carried)
    while True:
        needed = reachable([results[i] for j in keep for i in spans[j]])
        more = {j for j in range(carried) if j not in where and params[1 + j] in needed}
        if more <= keep:
            break
        keep |= more
    order = sorted(keep)
    new_kinds = tuple(kinds[j] for j in order)
    new_results = tuple(results[i] for j in order for i in spans[j])
    new_carried = [params[1 + j] for j in order if j < carried]
    extra = [
        (q, inits[j]) for j, (p, q) in _invariants(substitute, params, inits) if q.op == "param"
    ]
    live = reachable(new_results)
    outer_params = [(p, a) for p, a in zip(params[1 + carried :], outer) if p in live]
    outer_params += [(q, a) for q, a in extra if q in live]
    new_params = (params[0], *new_carried, *(p for p, _ in outer_params))
    new = make(
        "loop",
        *(inits[j] for j in order),
        *(a for _, a in outer_params),
        hint=n.hint,
        body=Region(new_params, new_results),
        kinds=new_kinds,
        **{k: v for k, v in kw.items() if k not in ("body", "kinds")},
    )
    for i, j in enumerate(order):
        where[j] = i
    return new, where


def _invariants(substitute, params, inits):
    for j, p in enumerate(params[1:]):
        if p in substitute:
            yield j, (p, substitute[p])


def _spans(kinds, carried: int) -> list[list[int]]:
    """The body results of each of a loop's results."""
    spans, r = [], carried
    for j, kind in enumerate(kinds):
        if kind[0] == "carry":
            spans.append([j])
            continue
        spans.append(list(range(r, r + width(kind))))
        r += width(kind)
    return spans


def _substituted(body: Region, substitute: dict[Node, Node]) -> list[Node]:
    """The body's results with `substitute`'s params replaced."""
    if not substitute:
        return list(body.results)
    mapping = dict(substitute)
    for m in body.nodes:
        if m in mapping:
            continue
        args = tuple(mapping.get(a, a) for a in m.args)
        mapping[m] = m if args == m.args else with_args(m, args)
    return [mapping.get(r, r) for r in body.results]
