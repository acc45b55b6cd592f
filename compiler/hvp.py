"""Second order: Hessian-vector products, and the functions of vectors that carry them.

A Hessian-vector product of a graph with one scalar output is the gradient, with respect to the
`wrt` parameters, of `<grad f, v>`: reverse over reverse. The graph differentiated with the
upstream gradient 1 (`g_grad`'s graph) has the first gradients as outputs; differentiating it
again with the vectors `v` as its upstream gradients gives `H v`, one array per parameter. The
second backward reads the first's values as the first read the forward's, and the optimizer
prunes the first gradients themselves, which `H v` does not read. The Hessian is never formed:
the cost is that of about two gradients (docs/performance.md has the figures).

What this makes, and what `forward.jvp` makes, is a *plain* graph: parameters in (the graph's,
then one vector per `wrt` parameter), arrays out, no backward; `emit` writes it as one
function with its own argument checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .autodiff import differentiate
from .diagnostics import error
from .ir import Graph, Node, Param, rewrite, schedule, with_args
from .optimize import seed_ones


def fresh_names(graph: Graph, names: Sequence[str]) -> list[str]:
    """`names`, each made distinct from the graph's parameters, dimensions and outputs and from
    one another by `_1`, `_2` ... (`v_W` where a parameter is called `v_W` becomes `v_W_1`)."""
    taken = {p.name for p in graph.params} | set(graph.output_names)
    taken |= {s for p in graph.params for d in p.dims for s in d.symbols}
    out = []
    for name in names:
        fresh, i = name, 0
        while fresh in taken:
            i += 1
            fresh = f"{name}_{i}"
        taken.add(fresh)
        out.append(fresh)
    return out


def like_params(graph: Graph, names: Sequence[str]) -> tuple[list[Param], list[Node]]:
    """One new float parameter per `wrt` parameter, shaped like it, named `names`: its
    declaration (for the argument checks) and its leaf. Their indices continue the graph's, so
    no new leaf is one of the graph's."""
    by_name = {p.name: (p, n) for p, n in zip(graph.params, graph.inputs)}
    params, leaves = [], []
    for i, (wrt, name) in enumerate(zip(graph.wrt, names)):
        p, n = by_name[wrt]
        index = len(graph.params) + i
        attrs = (("index", index), ("name", name))
        params.append(Param(name, "float", p.dims, p.loc))
        leaves.append(Node("param", (), attrs, n.type, name, n.loc))
    return params, leaves


def first_gradients(full: Graph) -> Graph:
    """The graph whose outputs are the first gradients (`g_grad`'s, named `dW` for `W`)."""
    ones = seed_ones(full)
    names = tuple(f"d{w}" for w in ones.wrt)
    return replace(ones, outputs=ones.grads, output_names=names, grads=())


def block(full: Graph, name: str) -> Graph:
    """One parameter's block of the Hessian, H_pp v_p (for `bpc explain --hvp`): its first
    gradient differentiated again with respect to it alone, `v_p` the one upstream gradient."""
    first = first_gradients(full)
    i = first.wrt.index(name)
    one = replace(first, outputs=(first.outputs[i],), output_names=(f"d{name}",), wrt=(name,))
    return differentiate(one)


def hvp(full: Graph) -> Graph:
    """The plain graph of `g_hvp`, from the differentiated graph `full` (one scalar output):
    the graph's parameters and one vector per `wrt` parameter in, `H v` out, one per `wrt`
    parameter, named like the gradients (`dW` for `W`)."""
    for n in full.nodes:
        if n.op == "loop":  # (its backward loop's reads of the forward are not differentiated)
            raise error(n.loc, "bpc does not make Hessian-vector products through loops yet")
    first = first_gradients(full)
    twice = differentiate(first)
    params, vectors = like_params(full, fresh_names(full, [f"v_{w}" for w in full.wrt]))
    by_dout = dict(zip(twice.douts, vectors))
    plain = rewrite(twice, lambda n, args: by_dout.get(n) or with_args(n, args))
    inputs = plain.inputs + tuple(vectors)
    return replace(
        plain,
        nodes=schedule(plain.nodes, plain.grads + inputs),  # (not the first gradients)
        params=full.params + tuple(params),
        inputs=inputs,
        outputs=plain.grads,
        output_names=first.output_names,
        wrt=(),
        grads=(),
        douts=(),
    )
