"""Forward mode at compile time: the JVP graph, values and tangents in one forward sweep.

`jvp(graph)` takes a typed graph (after `canonicalize`, where `differentiate` would take it)
and gives each `wrt` parameter a tangent input (`W_dot`) and each output its tangent
(`y_dot`): the directional derivative of the output along the tangents, J v. Walking the
nodes in order, each operation's JVP rule (`OpDef.jvp`, beside its adjoint) turns its
arguments' tangents into its result's. A value that no tangent reaches has none (a zero
tangent, never built), and a rule may leave a tangent in a shape that broadcasts to its
result's: `fit` broadcasts it, as `autodiff.unbroadcast` undoes broadcasting in reverse mode.

The JVP of a loop is one loop (`loop_jvp`) whose body is the body's JVP: the tangents of the
carried values are carried beside them, the tangents of the written arrays are written slot by
slot at the same positions, and the tangents of the sums are summed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .ir import OPS, Graph, Node, Param, Region, at, make, region_param, result, schedule
from .loops import _active_body
from .ops.loop import counts, width

DOT = "dot"  # a tangent's name: its value's and this (`W_dot`, `q_dot`)


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


def jvp(graph: Graph, tangent_names: Sequence[str] | None = None) -> Graph:
    """The plain graph of `g_jvp` (parameters in, arrays out, no backward, as `hvp.hvp`
    makes): the graph's parameters, then one tangent per `wrt` parameter, in `wrt` order, of
    its parameter's type (`<name>_dot`); the outputs, then each output's tangent
    (`<output>_dot`; zeros of the output's type where no `wrt` parameter reaches it). A name
    that a parameter, an output or a dimension has is numbered (`x_dot_1`). It has no `wrt`, no
    gradients and no upstream gradients. `tangent_names` name the tangents otherwise (the
    vectors `v_W` of `g_hvp`, forward over reverse)."""
    wanted = list(tangent_names or [f"{name}_{DOT}" for name in graph.wrt])
    names = fresh_names(graph, wanted + [f"{name}_{DOT}" for name in graph.output_names])
    params, leaves = like_params(graph, names[: len(graph.wrt)])
    by_name = {n.attr("name"): n for n in graph.inputs}
    seeds = {by_name[name]: leaf for name, leaf in zip(graph.wrt, leaves)}
    values, tangents, order = sweep(graph.nodes, seeds)
    outputs = tuple(values[o] for o in graph.outputs)
    dots = []
    for out, new in zip(graph.outputs, outputs):
        with at(out.loc):
            dots.append(tangents.get(out) or make("full_like", new, 0))
    inputs = tuple(values[n] for n in graph.inputs) + tuple(leaves)
    return replace(
        graph,
        nodes=schedule(order, outputs + tuple(dots) + inputs),
        params=graph.params + tuple(params),
        inputs=inputs,
        outputs=outputs + tuple(dots),
        output_names=graph.output_names + tuple(names[len(graph.wrt) :]),
        wrt=(),
        grads=(),
        douts=(),
        cache=(),
    )


def sweep(nodes, seeds: dict[Node, Node], values: dict[Node, Node] | None = None):
    """Forward mode over `nodes` (in a topological order) from `seeds` (a value -> its
    tangent): each node's value, rebuilt where its arguments changed (a loop replaced by its
    JVP; a body's params by new ones, which `values` maps them to), each node's tangent where
    it has one, and the values and tangents in the order made, each value before its tangent."""
    values = dict(values or {})
    tangents = dict(seeds)
    order: list[Node] = []
    loops: dict[Node, tuple] = {}
    for n in nodes:
        if n in values:
            continue
        args = tuple(values.get(a, a) for a in n.args)
        ts = [tangents.get(a) for a in n.args]
        if n.op == "loop" and any(t is not None for t in ts):
            with at(n.loc):
                loops[n] = loop_jvp(n, args, ts)
            values[n] = loops[n][0]
        elif n.op == "result" and n.args[0] in loops:
            new, index, dots = loops[n.args[0]]
            values[n] = replace(n, args=(new,), attrs=(("index", index[n.attr("index")]),))
            t = dots[n.attr("index")]
            if t is not None and t.args[:1] == (new,) and n.hint:  # (a result of the new loop)
                t = replace(t, hint=f"{n.hint}_{DOT}")
            tangents[n] = t
        else:
            values[n] = n if args == n.args else replace(n, args=args)
            tangents[n] = tangents.get(n) or _tangent(n, values[n], ts)
        order.append(values[n])
        if tangents.get(n) is None:
            tangents.pop(n, None)
        else:
            order.append(tangents[n])
    return values, tangents, order


def _tangent(n: Node, y: Node, ts: list[Node | None]) -> Node | None:
    """The tangent of `n` (its value `y`) by its operation's JVP rule, in the result's shape,
    named after the value (`q_dot`) where the rule made it; None where it is zero."""
    if y.dtype != "float" or all(t is None for t in ts) or OPS[n.op].leaf:
        return None
    with at(n.loc):
        t = OPS[n.op].jvp(tuple(ts), y, *y.args, **y.kw)
        if t is None:
            return None
        t = fit(t, y)
    if t.hint is None and n.hint and not any(t is d for d in ts):
        t = replace(t, hint=f"{n.hint}_{DOT}")
    return t


def fit(t: Node, y: Node) -> Node:
    """A tangent in the shape of its value `y`, broadcast where a rule left it in a shape that
    broadcasts to it (`t_b` of `a + b` for a `b` broadcast against `a`)."""
    if t.shape == y.shape:
        return t
    return make("broadcast_to", t, shape=y.shape)


def loop_jvp(loop: Node, args: tuple[Node, ...], tangents: list[Node | None]):
    """A loop's JVP: the loop that computes its results and their tangents, given its new
    arguments and their tangents (None for none). Returns that loop, the index of each of the
    old loop's results among its results, and each result's tangent (None for none).

    The body's params, in order: the loop variable, the carried values, the carried tangents,
    the loop-invariant values, their tangents; its results: the carried values, the carried
    tangents, the written arrays' slots and the sums, their tangents."""
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    nk = len(kinds)
    t, cparams, oparams = body.params[0], body.params[1 : 1 + carried], body.params[1 + carried :]
    region = f"{t.attr('region')}/jvp"
    active = _active_body(
        body,
        carried,
        [d is not None for d in tangents[:carried]],
        [d is not None for d in tangents[nk:]],
    )
    params: list[Node] = []

    def param(p: Node, suffix: str = "") -> Node:
        params.append(region_param(p.attr("name") + suffix, region, len(params), p.type, p.loc))
        return params[-1]

    values = {p: param(p) for p in (t, *cparams)}
    seeds = {p: param(p, f"_{DOT}") for p in cparams if p in active}
    values.update({p: param(p) for p in oparams})
    seeds.update({p: param(p, f"_{DOT}") for p, d in zip(oparams, tangents[nk:]) if d is not None})
    values, dots, _ = sweep(body.nodes, seeds, values)
    outer_dots = [d for d in tangents[nk:] if d is not None]
    new_body = _Body(tuple(params), [values.get(r, r) for r in body.results])
    _tangent_results(new_body, loop, args, tangents, seeds, values, dots, region)
    return new_body.loop(loop, args, outer_dots)


@dataclass
class _Body:
    """A loop's JVP being built: its body's params and the old results (`values`), and the
    tangent results, the carried ones apart (`carry_*`) from the written arrays and sums
    (`rest_*`): each one's kind, the value it starts from and its body results; `dot_of`
    says, for each of the old loop's results, its tangent: its index among the tangent
    results (`("carry", k)` or `("rest", k)`), a value from outside (a tangent that the loop
    leaves as it is), or None."""

    params: tuple[Node, ...]
    values: list[Node]
    carry_inits: list[Node] = field(default_factory=list)
    carry_results: list[Node] = field(default_factory=list)
    rest_kinds: list[tuple] = field(default_factory=list)
    rest_inits: list[Node] = field(default_factory=list)
    rest_results: list[Node] = field(default_factory=list)
    dot_of: list[tuple[str, int] | Node | None] = field(default_factory=list)

    def loop(self, old: Node, args, outer_dots) -> tuple[Node, list[int], list[Node | None]]:
        """The loop, from the old loop `old`'s new arguments `args` and the tangents of its
        loop-invariant values; the index of each old result; each old result's tangent."""
        kw = old.kw
        kinds = kw["kinds"]
        carried, _ = counts(kinds)
        nk, nc = len(kinds), len(self.carry_inits)
        new = make(
            "loop",
            *args[:carried],
            *self.carry_inits,
            *args[carried:nk],
            *self.rest_inits,
            *args[nk:],
            *outer_dots,
            hint=old.hint,
            body=Region(
                self.params,
                (
                    *self.values[:carried],
                    *self.carry_results,
                    *self.values[carried:],
                    *self.rest_results,
                ),
            ),
            kinds=kinds[:carried] + (("carry",),) * nc + kinds[carried:] + tuple(self.rest_kinds),
            **{k: v for k, v in kw.items() if k not in ("body", "kinds")},
        )
        index = [j if j < carried else j + nc for j in range(nk)]
        start = {"carry": carried, "rest": nk + nc}
        dots = [result(new, start[d[0]] + d[1]) if isinstance(d, tuple) else d for d in self.dot_of]
        return new, index, dots


def _tangent_results(b: _Body, loop, args, tangents, seeds, values, dots, region) -> None:
    """The tangent results of a loop's JVP (see `_Body`): a carried value's tangent where it
    has a tangent param; a written array's or a sum's where its value has one, or where its
    array before the loop has one and each iteration writes over a slot of it (zeros then)."""
    kinds = loop.attr("kinds")
    body = loop.attr("body")
    carried, _ = counts(kinds)
    zeros = itertools.count()

    def start(j: int) -> Node:  # a tangent to start from: zeros of an array of its own
        return tangents[j] or make("zeros", shape=args[j].shape, of=(region, next(zeros)))

    for j, p in enumerate(body.params[1 : 1 + carried]):
        b.dot_of.append(None if p not in seeds else ("carry", len(b.carry_inits)))
        if p in seeds:
            b.carry_inits.append(start(j))
            b.carry_results.append(dots.get(body.results[j]) or make("zeros", shape=p.shape))
    r = carried
    for j, kind in enumerate(kinds[carried:], carried):
        value, positions = body.results[r], body.results[r + 1 : r + width(kind)]
        r += width(kind)
        overwritten = tangents[j] is not None and kind[0] == "slot" and kind[2] == "set"
        if value not in dots and not overwritten:
            b.dot_of.append(tangents[j])  # (what it adds has no tangent: its own stays)
            continue
        b.dot_of.append(("rest", len(b.rest_inits)))
        b.rest_kinds.append(kind)
        b.rest_inits.append(start(j))
        dot = dots.get(value) or make("zeros", shape=value.shape)
        b.rest_results.extend([dot, *(values.get(q, q) for q in positions)])
