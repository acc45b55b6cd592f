"""`bpc explain`: the backward pass told the way the lecture note teaches it.

For each forward statement, from the output back to the inputs: the upstream gradient (the
output's gradient with respect to the statement's result), and the gradients it gives the
statement's inputs, each with its expression and its shape; a gradient always has its
variable's shape.
"""

from __future__ import annotations

from .emit import backward_steps
from .pipeline import compile_graphs
from .printer import MathPrinter

INTRO = (
    "Backpropagation walks the graph from the output back to the inputs. At each statement, the\n"
    "upstream gradient (of {out} with respect to the statement's result) times the statement's\n"
    "local Jacobian gives the gradients of its inputs; a gradient has its variable's shape."
)


Span = tuple[str, str]
"""A piece of the derivation's text and its role: "heading" (the graph's signature), "statement"
(a forward statement), "where" (its line), "label" (upstream, gives), "gradient", "shape", or ""
for plain prose. The text is the pieces joined; a terminal may colour each role (`bpc.color`)."""


def explain_source(text: str, graph: str | None = None) -> str:
    """The derivation of every graph in `text` (or only `graph`), as text."""
    return "".join(piece for _, piece in explain_spans(text, graph))


def explain_spans(text: str, graph: str | None = None) -> list[Span]:
    """The derivation of every graph in `text` (or only `graph`), as pieces with their roles."""
    spans: list[Span] = []
    compiled = compile_graphs(text)
    names = [c.pair.name for c in compiled]
    if graph is not None and graph not in names:
        raise KeyError(f"no graph named '{graph}'; the file has {', '.join(names) or 'none'}")
    for c in compiled:
        if graph is not None and c.pair.name != graph:
            continue
        if spans:
            spans.append(("", "\n\n"))
        spans += _explain(c)
    spans.append(("", "\n"))
    return spans


def _padded(role: str, text: str, width: int) -> list[Span]:
    """`text` in its role, then the spaces that left-align it in `width` columns."""
    return [(role, text), ("", " " * (width - len(text)))]


def _upstream(step, defined: dict):
    """The gradient an earlier statement handed to this one: the first value with a line of
    its own that this statement's lines read (through the expressions written inline)."""
    mine = {node for _, _, node in step.lines}
    stack = [a for _, _, node in step.lines for a in node.args][::-1]
    seen = set()
    while stack:
        n = stack.pop()
        if n in seen or n in mine:
            continue
        seen.add(n)
        if n in defined:
            return n
        stack.extend(reversed(n.args))
    return None


def _explain(c) -> list[Span]:
    g = c.grad or c.pair
    out = g.output_names[0] if len(g.output_names) == 1 else "the outputs"
    params = ", ".join(f"{p.name} {n.type}" for p, n in zip(g.params, g.inputs))
    outs = ", ".join(f"{name} {n.type}" for name, n in zip(g.output_names, g.outputs))
    spans = [
        ("heading", f"graph {g.name}({params}) -> {outs}"),
        ("", f"\n\n{INTRO.format(out=out)}"),
    ]
    values = {n.hint: n for n in g.nodes if n.hint and n.op != "dout"}
    width = 34

    def grad_name(name: str) -> str:
        if len(g.output_names) == 1 and name.startswith("d") and name[1:] in values:
            return f"d{out}/d{name[1:]}"
        return name

    def gradient(label: str, text: str, shape) -> list[Span]:
        return [
            ("", "\n    "),
            *_padded("label", label, 9),
            ("", " "),
            *_padded("gradient", text, width),
            ("", " "),
            ("shape", str(shape)),
        ]

    defined: dict = {}  # backward values with a line of their own, and their names
    for step in backward_steps(g):
        math = MathPrinter(step.sizes)
        spans += [
            ("", "\n\n"),
            ("statement", step.statement),
            ("", "    "),
            ("where", f"(line {step.line}{f', in fn {step.fn}' if step.fn else ''})"),
        ]
        upstream = _upstream(step, defined)
        if upstream is None:
            target = step.statement.split("=", 1)[0].strip()
            text, shape = f"d{out}/d{target} = {'1' if c.grad is not None else 'dout'}", ""
            if len(g.output_names) > 1:  # one upstream gradient per output: dout_next_h
                text = f"d{target} = dout_{target}"
            if target in g.output_names:
                shape = g.outputs[g.output_names.index(target)].type
        else:
            text, shape = f"{grad_name(defined[upstream])} = {defined[upstream]}", upstream.type
        spans += gradient("upstream", text, shape)
        for i, (name, expr, node) in enumerate(step.lines):
            spans += gradient(
                "gives" if i == 0 else "", f"{grad_name(name)} = {math.text(expr)}", node.type
            )
            defined[node] = name
    grads = ", ".join(f"d{name} {n.type}" for name, n in zip(g.wrt, g.grads))
    spans.append(("", f"\n\nThe gradients: {grads or 'none'}."))
    return spans
