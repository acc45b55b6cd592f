"""The order of the lines: a reduction of an array before the elementwise line that could work
in that array (`reductions_first`), and a gradient that scales an array after the array's last
other reader (`scalings_last`); and, once the cache is chosen, an output after the gradient
values the forward computes for it (`outputs_after_hoisted`).

Layernorm's backward, written with `rstd`, reads `dxhat` twice: `dxhat * rstd`, a new array of
the full shape, and the row dot `vecdot(dxhat, xhat)`, a column. In the order the gradient was
built the product comes first, so it cannot work in `dxhat`'s array (the row dot reads that array
later) and makes one of its own. An expert takes the row dot first; the product is then the
array's last reader and works in it: `dxhat *= rstd`. That is what this pass does: a value smaller
than an array it reads (a sum, a row dot, a matrix-vector product) that comes after an
elementwise line of that array's shape reading it, in the same pass, is placed before that line,
with the small values it reads that were placed after it. Nothing else moves. The lowering then
gives such a reduction a line of its own there (`lower._reduced_before`), so that it is not
written inline in a later line.
"""

from __future__ import annotations

from dataclasses import replace

from ..dims import Dim
from ..ir import OPS, Graph, Node, is_view, smaller

# Nodes that are never lines of their own.
LEAVES = frozenset({"const", "dim", "param", "dout"})


def reductions_first(graph: Graph) -> Graph:
    """The graph with each reduction of an array placed before the first elementwise line of
    the array's shape that reads the array after it would have (see the module's docstring).
    Where each goes is found in the graph's own order, and the nodes are placed in one sweep."""
    nodes = graph.nodes
    at = {n: i for i, n in enumerate(nodes)}
    forward = graph.forward
    users = _readers(nodes)
    ahead: dict[int, list[set[Node]]] = {}  # a position -> what is placed before its node
    for r in nodes:
        if not _reduction(r):
            continue
        side = r in forward
        before = [
            at[e]
            for a in r.args
            if a.op not in LEAVES and (a in forward) == side and a.ndim > 0
            for e in users[a]
            if e is not r and at[e] < at[r] and (e in forward) == side and _works_in(e, a)
        ]
        lifted = _lifted(r, min(before), at) if before else None
        if lifted is not None:
            ahead.setdefault(min(before), []).append(lifted)
    if not ahead:
        return graph
    order: list[Node] = []
    placed: set[Node] = set()
    for i, n in enumerate(nodes):
        for lifted in ahead.get(i, ()):
            order += [m for m in sorted(lifted, key=at.__getitem__) if m not in placed]
            placed |= lifted
        if n not in placed:
            order.append(n)
            placed.add(n)
    return replace(graph, nodes=tuple(order))


def scalings_last(graph: Graph) -> Graph:
    """The graph with each gradient that scales an array of its shape (`dmu = t_1 * c`, c a
    number or a smaller array) placed after the last line that reads that array: the gradient
    is then the array's last reader and may be worked out in it (`dmu = t_1; dmu *= c`) where
    it made an array of its own. A Gaussian likelihood written with `inv = exp(-logvar)` builds
    the mean's gradient before the log-variance's, which reads `t_1` too. Only a gradient that
    nothing else reads moves, and nothing with it."""
    nodes = graph.nodes
    at = {n: i for i, n in enumerate(nodes)}
    forward, users = graph.forward, _readers(nodes)
    after: dict[Node, list[Node]] = {}  # a line -> the gradients placed right after it
    for g in dict.fromkeys(graph.grads):
        if users[g] or g in forward or not OPS[g.op].elementwise:
            continue
        scaled = [a for a in g.args if a.op not in LEAVES and _works_in(g, a)]
        if len(scaled) != 1 or not all(a in scaled or smaller(a, g) for a in g.args):
            continue
        readers = [_line_of(e, users) for e in users[scaled[0]] if e is not g]
        last = max(readers, key=at.__getitem__, default=g)
        if at[last] > at[g] and g not in readers:
            after.setdefault(last, []).append(g)
    if not after:
        return graph
    moved = {g for gs in after.values() for g in gs}
    order: list[Node] = []
    for n in nodes:
        if n not in moved:
            order.append(n)
            order += after.get(n, [])
    return replace(graph, nodes=tuple(order))


def outputs_after_hoisted(graph: Graph) -> Graph:
    """The graph with each output that the forward's other lines do not read, and that could be
    worked out in an array its hoisted values (`Graph.hoisted`) read, placed after the last of
    them: Mish's `out = x * t` after `t_1 += t` then works in the array of `t`, where before it
    it made one of its own."""
    hoisted = graph.hoisted
    if not hoisted:
        return graph
    nodes = graph.nodes
    at = {n: i for i, n in enumerate(nodes)}
    users = _readers(nodes)
    last = max(at[n] for n in hoisted)
    moved = [
        o
        for o in dict.fromkeys(graph.outputs)
        if at[o] < last
        and not any(u in graph.forward for u in users[o])
        and any(
            _works_in(o, a) and a.op not in LEAVES and any(u in hoisted for u in users[a])
            for a in o.args
        )
    ]
    if not moved:
        return graph
    order = [n for n in nodes if n not in moved]
    at_last = order.index(nodes[last]) + 1
    return replace(graph, nodes=tuple(order[:at_last] + moved + order[at_last:]))


def _readers(nodes: tuple[Node, ...]) -> dict[Node, list[Node]]:
    """Each node's readers, in the graph's order (one entry for a reader that reads it twice)."""
    users: dict[Node, list[Node]] = {n: [] for n in nodes}
    for n in nodes:
        for a in dict.fromkeys(n.args):
            users[a].append(n)
    return users


def _line_of(e: Node, users: dict[Node, list[Node]]) -> Node:
    """The line that reads what e reads: e's, or where e is read once (a factor of a product,
    written inline), its reader's line."""
    while len(users[e]) == 1:
        e = users[e][0]
    return e


def _reduction(n: Node) -> bool:
    """A value smaller than an array it reads: a sum, a row dot, a matrix-vector product."""
    if n.op in LEAVES or n.op in ("loop", "result") or is_view(n) or OPS[n.op].elementwise:
        return False
    return any(smaller(n, a) for a in n.args)


def _works_in(e: Node, a: Node) -> bool:
    """Whether line e could be worked out in a's array: elementwise, of a's shape and dtype."""
    return OPS[e.op].elementwise and e.shape == a.shape and e.dtype == a.dtype


def _lifted(r: Node, first: int, at: dict[Node, int]) -> set[Node] | None:
    """r and the values it reads that are placed at `first` or after: what moves before the
    node at `first`. None where one of them is no small value (an array of the full shape, a
    loop), which stays."""
    lifted: set[Node] = set()
    stack = [r]
    while stack:
        n = stack.pop()
        if n in lifted or at[n] < first:
            continue
        if n.op in LEAVES:  # (a number or parameter placed late moves with what reads it)
            lifted.add(n)
            continue
        if n is not r and (n.op in ("loop", "result") or not _no_larger(n, r)):
            return None
        lifted.add(n)
        stack.extend(n.args)
    return lifted


def _no_larger(n: Node, r: Node) -> bool:
    """Whether n is no larger than the reduction r: a value r's line may read early."""
    return n.ndim <= r.ndim or Dim.of(1) in n.shape
