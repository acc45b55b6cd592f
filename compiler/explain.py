"""`bpc explain`: the backward pass told the way the lecture note teaches it.

For each forward statement, from the output back to the inputs: the upstream gradient (the
output's gradient with respect to the statement's result), and the gradients it gives the
statement's inputs, each with its expression and its shape; a gradient always has its
variable's shape.

A loop's backward is a loop that runs the other way (`for t in reversed(range(T)):`), told under
the forward loop's `for` statement: the gradients it starts from, what each step does first, the
steps of its body statement by statement (indented under it), the values a step reads back from
the cache (`reads`), and what comes after the loop. A gradient summed over the steps is
`dWh += ...`, a slot's `dx[:, t] = ...`.
"""

from __future__ import annotations

from . import signature
from .autodiff import differentiate
from .emit import backward_steps
from .expr import Name, Subscript
from .hvp import block
from .ir import Graph, reachable
from .lower import LoopStep, Lowering, Namer, all_nodes, is_read
from .optimize import canonicalize, optimize
from .pipeline import compile_graphs, typed_graphs
from .printer import MathPrinter

INTRO = (
    "Backpropagation walks the graph from the output back to the inputs. At each statement, the\n"
    "upstream gradient (of {out} with respect to the statement's result) times the statement's\n"
    "local Jacobian gives the gradients of its inputs; a gradient has its variable's shape."
)
LOOPS = (
    "A loop's backward runs the other way. Each step starts from the gradients that the step\n"
    "after it handed back (the carried ones), and the gradients of a value every step reads\n"
    "add up over the steps (+=)."
)


Span = tuple[str, str]
"""A piece of the derivation's text and its role: "heading" (the graph's signature), "statement"
(a forward statement), "where" (its line), "label" (upstream, gives), "gradient", "shape", or ""
for plain prose. The text is the pieces joined; a terminal may colour each role (`bpc.color`)."""


SECOND = (
    "H v is the gradient of <grad {out}, v>: the backward pass differentiated again (reverse\n"
    "over reverse), the vectors v its upstream gradients; for a graph with a loop, the\n"
    "gradient's derivative along v (forward over reverse). Each parameter's block H_pp v_p is\n"
    "told alone (the other vectors zero); g_hvp adds up the blocks, H v in p being the sum\n"
    "over q of H_pq v_q."
)


def explain_source(text: str, graph: str | None = None, *, hvp: bool = False) -> str:
    """The derivation of every graph in `text` (or only `graph`), as text."""
    return "".join(piece for _, piece in explain_spans(text, graph, hvp=hvp))


def explain_spans(text: str, graph: str | None = None, *, hvp: bool = False) -> list[Span]:
    """The derivation of every graph in `text` (or only `graph`), as pieces with their roles;
    with `hvp`, the second-order derivation of each graph with one scalar output."""
    spans: list[Span] = []
    compiled = compile_graphs(text, hvp=hvp)
    typed = {g.name: g for g in typed_graphs(text)} if hvp else {}
    names = [c.pair.name for c in compiled]
    if graph is not None and graph not in names:
        raise KeyError(f"no graph named '{graph}'; the file has {', '.join(names) or 'none'}")
    for c in compiled:
        if graph is not None and c.pair.name != graph:
            continue
        if hvp and c.hvp is None:
            continue  # (no scalar output)
        if spans:
            spans.append(("", "\n\n"))
        spans += _explain_hvp(c, typed[c.pair.name]) if hvp else _explain(c)
    spans.append(("", "\n"))
    return spans


def _padded(role: str, text: str, width: int) -> list[Span]:
    """`text` in its role, then the spaces that left-align it in `width` columns."""
    return [(role, text), ("", " " * (width - len(text)))]


def _upstream(step, defined: dict):
    """The gradient an earlier statement handed to this one: the first value with a line of
    its own that this statement's lines read (through the expressions written inline)."""
    mine = {line.node for line in step.lines}
    stack = [a for line in step.lines for a in line.node.args][::-1]
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


class _Teller:
    """Tells one graph's backward steps, a loop's with the steps of its body indented under it;
    `defined` holds the backward values told so far, by name."""

    width = 34  # (the column of the shapes, after the label's)

    def __init__(self, c):
        self.g = g = c.grad or c.pair
        self.fused = c.grad is not None
        self.out = g.output_names[0] if len(g.output_names) == 1 else "the outputs"
        self.values = {n.hint: n for n in all_nodes(g.nodes) if n.hint and n.op != "dout"}
        self.defined: dict = {}

    def grad_name(self, name: str) -> str:
        if len(self.g.output_names) == 1 and name.startswith("d") and name[1:] in self.values:
            return f"d{self.out}/d{name[1:]}"
        return name

    def gradient(self, indent: str, label: str, text: str, shape) -> list[Span]:
        return [
            ("", f"\n{indent}    "),
            *_padded("label", label, 9),
            ("", " "),
            *_padded("gradient", text, self.width),
            ("", " "),
            ("shape", str(shape)),
        ]

    def lines(
        self, indent: str, label: str, lines, math: MathPrinter, reads: bool = False
    ) -> list[Span]:
        """`lines` under one label: `dout/dW = ...`, `dWh += ...`, `dx[:, t] = ...`. With
        `reads`, lines of no statement: a value read back from the cache, or its position,
        is no statement's upstream gradient."""
        spans = []
        for i, line in enumerate(lines):
            target = line.target if line.plain else self.grad_name(line.target)
            if line.index is not None:
                target = math.text(Subscript(Name(target), line.index))
            text = f"{target} {line.op} {math.text(line.expr)}"
            spans += self.gradient(indent, label if i == 0 else "", text, line.node.type)
            n = line.node
            if reads and is_read(n):
                continue
            if line.op == "=" and line.index is None:
                self.defined.setdefault(n, line.target)
        return spans

    def step(self, step, indent: str = "") -> list[Span]:
        if isinstance(step, LoopStep):
            return self.loop(step, indent)
        spans = [
            ("", f"\n\n{indent}"),
            ("statement", step.statement),
            ("", "    "),
            ("where", f"(line {step.line}{f', in fn {step.fn}' if step.fn else ''})"),
        ]
        upstream = _upstream(step, self.defined)
        math = MathPrinter(step.sizes)
        target = step.statement.split("=", 1)[0].strip()
        gradients = [x for x in step.lines if x.target[:1] == "d" and x.target[1:] in self.values]
        if upstream is None and target not in self.g.output_names and not gradients:
            # (no gradient: a forward value computed again, where keeping it costs more)
            spans += self.lines(indent, "reads", step.reads, math, reads=True)
            return spans + self.lines(indent, "computes", step.lines, math)
        if upstream is None:
            text, shape = f"d{self.out}/d{target} = {'1' if self.fused else 'dout'}", ""
            if len(self.g.output_names) > 1:  # one upstream gradient per output: dout_next_h
                text = f"d{target} = dout_{target}"
            if target in self.g.output_names:
                shape = self.g.outputs[self.g.output_names.index(target)].type
        else:
            name = self.defined[upstream]
            text, shape = f"{self.grad_name(name)} = {name}", upstream.type
        spans += self.gradient(indent, "upstream", text, shape)
        spans += self.lines(indent, "reads", step.reads, math, reads=True)
        return spans + self.lines(indent, "gives", step.lines, math)

    def loop(self, step: LoopStep, indent: str) -> list[Span]:
        """A loop: the backward loop's header, the gradients it starts from, what each
        iteration does first, its body's steps indented under it, what ends an iteration,
        and what follows the loop."""
        math = MathPrinter(step.sizes)
        spans = [("", f"\n\n{indent}"), ("statement", step.statement)]
        if step.line is not None:
            where = f"(line {step.line}{f', in fn {step.fn}' if step.fn else ''})"
            spans += [("", "    "), ("where", where)]
        header = f"for {step.var} in {math.text(step.over)}:"
        spans += [("", f"\n{indent}    "), *_padded("label", "backward", 9), ("", " ")]
        spans.append(("gradient", header))
        spans += self.lines(indent, "reads", step.reads, math, reads=True)
        spans += self.lines(indent, "starts", step.starts, math)
        for p, outside in step.binds:  # (a body's param is the value it is bound to)
            if outside in self.defined:
                self.defined.setdefault(p, self.defined[outside])
        spans += self.lines(indent, "each step", step.first, math, reads=True)
        for s in step.steps:
            spans += self.step(s, indent + "    ")
        if step.ends:
            spans += [("", "\n")] + self.lines(indent, "then", step.ends, math)
        if step.after:
            spans += [("", "\n")] + self.lines(indent, "after", step.after, math)
        return spans


def _explain(c) -> list[Span]:
    teller = _Teller(c)
    g = teller.g
    params = ", ".join(f"{p.name} {n.type}" for p, n in zip(g.params, g.inputs))
    outs = ", ".join(f"{name} {n.type}" for name, n in zip(g.output_names, g.outputs))
    spans = [
        ("heading", f"graph {g.name}({params}) -> {outs}"),
        ("", f"\n\n{INTRO.format(out=teller.out)}"),
    ]
    if any(n.op == "loop" for n in g.nodes):
        spans.append(("", f"\n{LOOPS}"))
    for step in backward_steps(g):
        spans += teller.step(step)
    grads = ", ".join(f"d{name} {n.type}" for name, n in zip(g.wrt, g.grads))
    spans.append(("", f"\n\nThe gradients: {grads or 'none'}."))
    return spans


def _explain_hvp(c, typed: Graph) -> list[Span]:
    """The second-order derivation: for each `wrt` parameter p, the lines of H_pp v_p in the
    notation of the lecture note, and the whole product in one line where it is short."""
    g = c.grad
    out = g.output_names[0]
    params = ", ".join(f"{p.name} {n.type}" for p, n in zip(g.params, g.inputs))
    spans = [
        ("heading", f"graph {g.name}({params}) -> {out} {g.outputs[0].type}: H v"),
        ("", f"\n\n{SECOND.format(out=out)}"),
    ]
    full = differentiate(canonicalize(typed))
    for name in g.wrt:
        twice = optimize(block(full, name), cache_reused=False)
        block_name = f"H_{name}{name}" if len(name) == 1 else f"H[{name}, {name}]"
        product = f"{block_name} v_{name}"
        spans += [("", "\n\n"), ("statement", f"{product}, the block of {name}:")]
        if any(n.op == "loop" for n in twice.nodes):  # (told as g_hvp's code, not here)
            text = f"{product} = the loops of {g.name}_hvp (bpc compile --hvp)"
            spans += _Teller.gradient(_Teller, "", "so", text, "")
            continue
        lines, last, whole = _block_lines(twice)
        for target, text, type in lines:
            spans += _Teller.gradient(_Teller, "", "", f"{target} = {text}", type)
        label, text = ("in full", whole) if len(whole) <= 60 else ("so", last)
        spans += _Teller.gradient(_Teller, "", label, f"{product} = {text}", "")
    return spans


def _block_lines(g: Graph) -> tuple[list, str, str]:
    """A block's lines, `(name, expression, type)`, as the module would compute it, the name of
    its product, and its product written as one expression."""
    namer = Namer(set())
    for n in g.inputs:
        namer.names[n] = n.attr("name")
    dims = {d: d for d in signature.order(g.params)}
    math = MathPrinter(dims)
    product = g.outputs[0]
    fn = Lowering(g, namer, dims, {product})
    needed = reachable((product,))
    nodes = [n for n in g.nodes if n in needed]
    fn.plan(nodes)
    lines = [
        (line.target, math.text(fn.expression(m, notation=True)), m.type)
        for n in nodes
        if n in fn.own_line and n.op != "param"
        for m, line in fn.define(n)
    ]
    last = fn.name_of(product)
    fn.own_line = set(g.inputs)
    return lines, last, math.text(fn.expression(product, notation=True))
