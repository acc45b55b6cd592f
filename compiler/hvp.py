"""Second order: Hessian-vector products, `g_hvp`, two ways, and the cheaper one kept.

`H v` of a graph with one scalar output is the derivative along `v` of its gradient. bpc builds
it both ways from `g_grad`'s graph (the graph differentiated with the upstream gradient 1,
whose outputs are then the first gradients, `first_gradients`):

- *reverse over reverse* (`reverse_over_reverse`): the gradient graph differentiated again with
  the vectors as its upstream gradients: the second backward reads the first's values as the
  first read the forward's;
- *forward over reverse* (`forward_over_reverse`): the gradient graph's JVP along the vectors
  (`forward.jvp`), one sweep of values and tangents through the forward and the backward.

Each is optimized like any graph, the first gradients pruned where `H v` does not read them,
and `cheaper` keeps the one with fewer floating-point operations at the sizes the user expects
(`--dim`; 64 for a dimension not given), reverse over reverse on a tie. A loop's backward is
differentiated forward only (its second reverse is not built), so a graph with a loop gets
forward over reverse. Neither forms the Hessian: each costs a few gradients.

What this makes, and what `forward.jvp` makes, is a *plain* graph: parameters in (the graph's,
then one vector per `wrt` parameter, `v_W` for `W`), arrays out, no backward; `emit` writes it
as one function with its own argument checks.
"""

from __future__ import annotations

from dataclasses import replace

from .autodiff import differentiate
from .dims import Dim
from .forward import fresh_names, jvp, like_params
from .ir import Graph, rewrite, schedule, with_args
from .ops import flops_of
from .optimize import seed_ones

DEFAULT_SIZE = 64  # a dimension's size for the cost, where `--dim` does not give it


def first_gradients(full: Graph) -> Graph:
    """The graph whose outputs are the first gradients (`g_grad`'s, named `dW` for `W`)."""
    ones = seed_ones(full)
    names = tuple(f"d{w}" for w in ones.wrt)
    return replace(ones, outputs=ones.grads, output_names=names, grads=())


def candidates(full: Graph) -> list[tuple[str, Graph]]:
    """The plain graphs of `g_hvp` that bpc can build for the differentiated graph `full`, by
    method: reverse over reverse first, where the graph has no loop."""
    out = []
    if not any(n.op == "loop" for n in full.nodes):
        out.append(("reverse over reverse", reverse_over_reverse(full)))
    return out + [("forward over reverse", forward_over_reverse(full))]


def cheaper(optimized: list[tuple[str, Graph]], sizes: dict[str, int] | None) -> Graph:
    """The optimized plain graph with the fewest floating-point operations at `sizes`."""
    return min(optimized, key=lambda m: flops(m[1], sizes or {}))[1]


def flops(g: Graph, sizes: dict[str, int]) -> int:
    """A graph's floating-point operations (a loop's: its body's times its trip count) at
    `sizes`, each dimension not given `DEFAULT_SIZE`."""
    total = sum((flops_of(n) for n in g.nodes), Dim.of(0))
    return int(total.evaluate({s: sizes.get(s, DEFAULT_SIZE) for s in total.symbols}))


def vectors(full: Graph):
    """The declarations and leaves of the vectors, one per `wrt` parameter (`v_W`)."""
    return like_params(full, fresh_names(full, [f"v_{w}" for w in full.wrt]))


def reverse_over_reverse(full: Graph) -> Graph:
    """`H v` as the gradient of `<grad f, v>`: the first gradients differentiated again, the
    vectors their upstream gradients."""
    first = first_gradients(full)
    twice = differentiate(first)
    params, leaves = vectors(full)
    by_dout = dict(zip(twice.douts, leaves))
    plain = rewrite(twice, lambda n, args: by_dout.get(n) or with_args(n, args))
    inputs = plain.inputs + tuple(leaves)
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


def forward_over_reverse(full: Graph) -> Graph:
    """`H v` as the JVP of the gradient along `v`: the first gradients' tangents."""
    first = first_gradients(full)
    names = [p.name for p in vectors(full)[0]]
    tangents = jvp(first, names)
    k = len(first.outputs)
    outputs = tangents.outputs[k:]
    return replace(
        tangents,
        nodes=schedule(tangents.nodes, outputs + tangents.inputs),
        outputs=outputs,
        output_names=first.output_names,
    )


def block(full: Graph, name: str) -> Graph:
    """One parameter's block of the Hessian, H_pp v_p (for `bpc explain --hvp`), as a plain
    graph: `v_p` in, `H_pp v_p` out, the derivative of the parameter's own gradient along it
    alone, made as `g_hvp` would be (reverse over reverse, or forward over reverse for a
    graph with a loop)."""
    i = full.wrt.index(name)
    return candidates(replace(full, wrt=(name,), grads=(full.grads[i],)))[0][1]
