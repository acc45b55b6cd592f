"""`bpc graph`: the computational graph in Graphviz's DOT language, forward and backward told apart.

Forward nodes are blue, backward nodes orange; parameters and upstream gradients are boxes;
each edge carries the shape of the value on it. A loop is a cluster, `for t in range(T)` (its
backward `for t in reversed(range(T))`), holding its body: the body's params are dashed boxes
(the loop variable, the carried values, the values it reads from outside), with an edge from
each value they are bound to; a dashed edge carries each carried value's new value back to its
param, and an edge from the body's value for each of the loop's results (carried, a slot
written, a sum) goes to the node that reads that result. Loops nested in a body are clusters in
its cluster. `dot` (Graphviz) turns the text into a picture.
"""

from __future__ import annotations

from .dims import Dim
from .emit import Compiled
from .ir import Node
from .ops.loop import counts, results_of, width

_FORWARD = 'style=filled, fillcolor="#dbe9f6", color="#2b6cb0"'
_BACKWARD = 'style=filled, fillcolor="#fde3cf", color="#c05621"'
_INPUT = 'shape=box, style="filled,bold", fillcolor="#e2e8f0"'
_BOUND = 'shape=box, style="filled,dashed", fillcolor="#edf2f7"'  # a loop body's param
_LOOP = {True: 'color="#2b6cb0"', False: 'color="#c05621"'}  # a loop's cluster, by pass
_HIDDEN = ("type", "body", "kinds", "of", "written")  # (told otherwise, or internal)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _value(v) -> str:
    """An attribute's value as the source writes it: `(N, T, H)`, not `(Dim(N), ...)`."""
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_value, v)) + ("," if len(v) == 1 else "") + ")"
    return repr(v) if isinstance(v, str) else str(v)


def _label(n: Node) -> str:
    if n.op == "param":
        return f"{n.attr('name')}\n{n.type}"
    if n.op == "dout":
        return f"{n.hint}\n{n.type}"
    if n.op == "const":
        return repr(n.attr("value"))
    if n.op == "dim":
        return str(n.attr("dim"))
    attrs = ", ".join(
        f"{k}={_value(v)}" for k, v in n.attrs if k not in _HIDDEN and v not in (None, False, ())
    )
    op = f"{n.op}({attrs})" if attrs else n.op
    return f"{n.hint}\n{op}" if n.hint else op


def loop_header(n: Node) -> str:
    """`for t in range(T)`, or `for t in reversed(range(T))` for a backward loop."""
    kw = n.kw
    var = kw["body"].params[0].attr("name") or "t"
    bounds = f"{kw['stop']}" if kw["start"] == Dim.of(0) else f"{kw['start']}, {kw['stop']}"
    over = f"reversed(range({bounds}))" if kw.get("reverse") else f"range({bounds})"
    return f"for {var} in {over}"


def _results(n: Node) -> list[tuple[Node, str]]:
    """Per result of loop `n`: the body's value for it, and what it is (`summed`, a slot)."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    out, r = [], carried
    for j, kind in enumerate(kinds):
        if kind[0] == "carry":
            out.append((body.results[j], ""))
            continue
        out.append((body.results[r], ", summed" if kind[0] == "sum" else ", a slot"))
        r += width(kind)
    return out


class _Dot:
    """The DOT text of some graphs. A node's id is unique over them all: a body's nodes are
    named by the loops they are inside too, so that a body two loops share is drawn twice."""

    def __init__(self):
        self.out = ["digraph bpc {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];']
        self.out.append('  edge [fontname="Helvetica", fontsize=9, color="#4a5568"];')
        self.ids: dict[tuple, str] = {}

    def id(self, scope: tuple, n: Node) -> str:
        key = (scope, n)
        if key not in self.ids:
            self.ids[key] = f"n{len(self.ids)}"
        return self.ids[key]

    def number(self, nodes, scope: tuple) -> None:
        """Ids in the order the nodes are drawn, a loop's body where the loop is."""
        for n in nodes:
            self.id(scope, n)
            if n.op == "loop":
                self.number(n.attr("body").nodes, scope + (n,))

    def graph(self, k: int, c: Compiled) -> None:
        g = c.pair
        forward = g.forward
        self.out.append(f"  subgraph cluster_{k} {{")
        self.out.append(f"    label={_quote('graph ' + g.name)}; fontname=Helvetica;")
        edges: list[str] = []
        self.number(g.nodes, (k,))
        marked = set(g.outputs) | set(g.grads)
        self.region(g.nodes, (k,), "    ", lambda n: n in forward, marked, edges)
        self.out += ["    " + e for e in edges]
        self.out.append("  }")

    def region(self, nodes, scope: tuple, indent: str, forward, marked: set, edges: list) -> None:
        """The nodes of a graph or a loop body, loops as clusters; their edges to `edges`."""
        for n in nodes:
            if n.op == "loop":
                self.loop(n, nodes, scope, indent, forward(n), edges)
                continue
            if n.op in ("param", "dout"):
                style = _BOUND if len(scope) > 1 else _INPUT
            elif n.op in ("const", "dim"):
                style = "shape=plaintext"
            else:
                style = _FORWARD if forward(n) else _BACKWARD
            extra = ", peripheries=2" if n in marked else ""
            self.out.append(
                f"{indent}{self.id(scope, n)} [label={_quote(_label(n))}, {style}{extra}];"
            )
        for n in nodes:
            if n.op != "loop":
                for a in n.args:
                    edges.append(self.edge(scope, a, n))

    def edge(self, scope: tuple, a: Node, n: Node) -> str:
        """The edge of argument `a` into `n`, from the body's value where `a` is a loop."""
        if a.op == "loop" and n.op == "result":
            value, what = _results(a)[n.attr("index")]
            source, label = self.id(scope + (a,), value), f"{value.type}{what}"
        else:
            source, label = self.id(scope, a), "" if a.op in ("const", "dim") else str(a.type)
        return f"{source} -> {self.id(scope, n)} [label={_quote(label)}];"

    def loop(self, n: Node, nodes, scope: tuple, indent: str, forward: bool, edges: list) -> None:
        """A loop among `nodes` as a cluster, with the edges from its arguments into its body's
        params, and from the arrays its slots are written into to the arrays written."""
        kw = n.kw
        body, kinds = kw["body"], kw["kinds"]
        carried, _ = counts(kinds)
        inner = scope + (n,)
        self.out.append(f"{indent}subgraph cluster_{self.id(scope, n)} {{")
        self.out.append(
            f"{indent}  label={_quote(loop_header(n))}; {_LOOP[forward]}; style=rounded;"
        )
        self.region(body.nodes, inner, indent + "  ", lambda m: forward, set(), edges)
        self.out.append(f"{indent}}}")
        params = body.params
        for a, p in zip(n.args[:carried] + n.args[len(kinds) :], params[1:]):
            edges.append(
                f"{self.id(scope, a)} -> {self.id(inner, p)} [label={_quote(str(a.type))}];"
            )
        for p, v in zip(params[1 : 1 + carried], body.results):
            edge = f"{self.id(inner, v)} -> {self.id(inner, p)}"
            edges.append(f'{edge} [label="next", style=dashed, constraint=false];')
        results = results_of(n, nodes)
        for j, a in enumerate(n.args[carried : len(kinds)], carried):
            if j in results:  # (the array a slot is written into, or the start of a sum)
                label = _quote(f"{a.type}, before the loop")
                edge = f"{self.id(scope, a)} -> {self.id(scope, results[j])}"
                edges.append(f"{edge} [label={label}, style=dashed];")


def to_dot(compiled: list[Compiled]) -> str:
    """One cluster per graph: its forward and backward passes, as DOT text."""
    dot = _Dot()
    for k, c in enumerate(compiled):
        dot.graph(k, c)
    dot.out.append("}")
    return "\n".join(dot.out) + "\n"
