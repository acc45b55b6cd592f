"""The simplifier: the rules of `RULES` applied bottom-up with hash-consing until nothing changes
(`simplify`); what makes two nodes the same value (`_key`); a rule's question whether the graph
being simplified computes a value already (`_existing`); and the `CANONICAL` rewrites, applied
before differentiation (`canonicalize`), with their question whether one value alone reads a
value (`_read_once`).
"""

from __future__ import annotations

import contextvars
from dataclasses import replace

from ..ir import Graph, Node, Region, ShapeError, at, attrs_key, make, rewrite, with_args
from .rules import CANONICAL, _rules_for


def canonicalize(graph: Graph) -> Graph:
    """The typed forward graph with the `CANONICAL` rewrites applied bottom-up (in loop bodies
    too): stable forms of unstable expressions, chosen before differentiation so that their
    adjoints are the ones used; then loop-invariant products out of loops (`hoist.py`). A value
    written twice (`s - max(s)` in a softmax written out) becomes one node, so that a rule sees
    it once."""

    from .hoist import hoist_products  # (hoist.py registers a canonical rule itself)

    interned: dict[tuple, Node] = {}  # (a value written twice is one node: rules match by it)

    def intern(n: Node) -> Node:
        """n's representative, the parts a rewrite made new interned too (`x - mu` in the
        variance `variance_from_moments` writes is the `x - mu` the graph has)."""
        if n.op in ("param", "dout") or (not n.args and n.op not in ("const", "dim")):
            return n  # (a number or a size written twice is one node: `exp(1.702 * x)` twice
            # is one exp, `q @ k.T / sqrt(d)` twice one quotient)
        if n.dtype == "int" and not n.shape and any(a.op == "dim" for a in n.args):
            return n  # (an index from a size, `T - 1 - t`: each statement keeps its own, so
            # that the comments and `bpc explain` show each statement's backward under it)
        key = _key(n)
        found = interned.get(key)
        if found is not None:
            return found
        args = tuple(intern(a) for a in n.args)
        if any(a is not b for a, b in zip(args, n.args)):
            n = with_args(n, args)
            key = _key(n)
        return interned.setdefault(key, n)

    read: dict[Node, int] = {}  # a source value -> how many values read it (an output: one more)
    for a in [a for n in graph.nodes for a in set(n.args)] + list(graph.outputs):
        read[a] = read.get(a, 0) + 1
    readers: dict[Node, int] = {}  # the same, of the values the rewrites made: `_read_once`

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        source, n = n, with_args(n, args)
        if n.op == "loop":
            return in_body(n, canonicalize)
        for _ in range(AGAIN):  # (a rewrite's result is offered to the rules again)
            for r in CANONICAL:
                with at(n.loc):
                    m = r(n)
                if m is not None:  # (a value that has a name keeps it: a parameter stays)
                    n = m if m.hint or not n.hint else replace(m, hint=n.hint)
                    break
            else:
                break
        n = intern(n)
        readers[n] = readers.get(n, 0) + read.get(source, 0)
        return n

    token = _READERS.set(readers)
    try:
        return hoist_products(rewrite(graph, step))
    finally:
        _READERS.reset(token)


# How many times `canonicalize` offers a value the rules, each rewrite's result again: `x * (1 +
# tanh(u)) / 2` is `1.0 * (x * sigmoid(2u))` by one rule, then GELU's composite by another.
AGAIN = 4

# How many values of the graph being canonicalized read each value: what `_read_once` asks.
_READERS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("readers", default=None)


def _read_once(n: Node) -> bool:
    """Whether one value alone of the graph being canonicalized reads n (so that a rewrite of
    that value may compute n otherwise without computing it twice); outside of `canonicalize`
    (a rule tried on its own), True."""
    readers = _READERS.get()
    return readers is None or readers.get(n, 0) <= 1


def _key(n: Node) -> tuple:
    """What makes two nodes the same value: the operation, the arguments, the attributes by
    value (`canonical`: `1`, `1.0` and `True` differ, a region compares by its structure) and
    the type. The arguments compare by identity, which is enough because the simplifier interns
    bottom-up: a node's arguments have been replaced by their representatives before its own
    key is taken, so equal arguments are the same node already."""
    return (n.op, n.args, attrs_key(n.attrs), n.type)


# The nodes of the graph being simplified, by key: what a rule may ask `_existing` about.
_SEEN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("seen", default=None)


def _existing(op: str, *args: Node, **attrs) -> Node | None:
    """op(*args) if the graph being simplified computes it already, else None: for rewrites that
    pay only when they can share a value."""
    seen = _SEEN.get()
    if seen is None:
        return None
    try:
        return seen.get(_key(make(op, *args, **attrs)))
    except ShapeError:
        return None


class _Simplifier:
    """Rewrites one node to a fixpoint, after the new nodes a rewrite made, and hash-conses."""

    def __init__(self):
        self.seen: dict = {}
        self.done: set[Node] = set()

    def __call__(self, n: Node) -> Node:
        if n in self.done:
            return n
        args = tuple(self(a) for a in n.args)  # a rewrite's fresh arguments come first
        n = with_args(n, args)
        if n.op == "loop":
            n = in_body(n, simplify)
        if n.op not in ("param", "dout"):
            with at(n.loc):
                for r in _rules_for(n.op):
                    m = r(n)
                    if m is not None:
                        if m.hint is None and n.hint and m.op not in ("const", "param", "dim"):
                            m = replace(m, hint=n.hint)
                        return self(m)
        n = self.seen.setdefault(_key(n), n)
        self.done.add(n)
        return n


def _simplify_pass(graph: Graph) -> tuple[Graph, bool]:
    """One bottom-up sweep of the rewrites with hash-consing; says whether anything changed."""
    simplify_node = _Simplifier()
    changed = False
    token = _SEEN.set(simplify_node.seen)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        nonlocal changed
        m = simplify_node(with_args(n, args))
        changed |= m is not n
        return m

    try:
        return rewrite(graph, step), changed
    finally:
        _SEEN.reset(token)


def body_graph(body: Region) -> Graph:
    """A loop's body as a graph of its own, its params the inputs and its results the outputs."""
    return Graph("", None, (), body.params, (), body.results, (), body.nodes)


def in_body(n: Node, run) -> Node:
    """Loop `n` with `run` (a pass, graph to graph) applied to its body; `n` itself where the
    pass changed nothing or would change a result's type (a loop's results keep theirs)."""
    body = n.attr("body")
    done = run(body_graph(body))
    if any((a.dtype, a.shape) != (b.dtype, b.shape) for a, b in zip(done.outputs, body.results)):
        return n
    new = Region(body.params, done.outputs)
    if new == body:
        return n
    return replace(n, attrs=tuple((k, new if k == "body" else v) for k, v in n.attrs))


def in_bodies(graph: Graph, run) -> Graph:
    """`graph` with `run` applied to the body of each of its loops (and theirs)."""
    if not any(n.op == "loop" for n in graph.nodes):
        return graph
    return rewrite(
        graph,
        lambda n, args: in_body(with_args(n, args), run) if n.op == "loop" else with_args(n, args),
    )


def simplify(graph: Graph) -> Graph:
    """Apply the rewrites and share common subexpressions, until nothing changes."""
    for _ in range(20):
        graph, changed = _simplify_pass(graph)
        if not changed:
            break
    return graph
