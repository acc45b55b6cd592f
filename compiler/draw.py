"""`bpc graph`: the computational graph in Graphviz's DOT language, forward and backward told apart.

Forward nodes are blue, backward nodes orange; parameters and upstream gradients are boxes;
each edge carries the shape of the value on it. `dot` (Graphviz) turns the text into a picture.
"""

from __future__ import annotations

from .emit import Compiled
from .ir import Node

_FORWARD = 'style=filled, fillcolor="#dbe9f6", color="#2b6cb0"'
_BACKWARD = 'style=filled, fillcolor="#fde3cf", color="#c05621"'
_INPUT = 'shape=box, style="filled,bold", fillcolor="#e2e8f0"'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


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
        f"{k}={v}" for k, v in n.attrs if k not in ("type",) and v not in (None, False, ())
    )
    op = f"{n.op}({attrs})" if attrs else n.op
    return f"{n.hint}\n{op}" if n.hint else op


def to_dot(compiled: list[Compiled]) -> str:
    """One cluster per graph: its forward and backward passes, as DOT text."""
    out = ["digraph bpc {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];']
    out.append('  edge [fontname="Helvetica", fontsize=9, color="#4a5568"];')
    ids: dict[Node, str] = {}
    for k, c in enumerate(compiled):
        g = c.pair
        forward = g.forward
        out.append(f"  subgraph cluster_{k} {{")
        out.append(f"    label={_quote('graph ' + g.name)}; fontname=Helvetica;")
        for n in g.nodes:
            ids[n] = f"n{len(ids)}"
            if n.op in ("param", "dout"):
                style = _INPUT
            elif n.op in ("const", "dim"):
                style = "shape=plaintext"
            else:
                style = _FORWARD if n in forward else _BACKWARD
            extra = ", peripheries=2" if n in g.outputs or n in g.grads else ""
            out.append(f"    {ids[n]} [label={_quote(_label(n))}, {style}{extra}];")
        for n in g.nodes:
            for a in n.args:
                shape = "" if a.op in ("const", "dim") else str(a.type)
                out.append(f"    {ids[a]} -> {ids[n]} [label={_quote(shape)}];")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
