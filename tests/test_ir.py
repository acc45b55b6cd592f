"""The IR itself: the forward/backward split a compiled graph records, the identity of its
nodes (leaves of their own, structural hash-consing keys), regions and several results."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bpc.autodiff import differentiate
from bpc.dims import Dim
from bpc.ir import (
    OPS,
    Node,
    OpDef,
    Region,
    TupleType,
    Type,
    canonical,
    const,
    make,
    reachable,
    result,
    rewrite,
    schedule,
    with_args,
)
from bpc.optimize import _key, optimize, simplify
from bpc.pipeline import compile_graphs
from tests import oracle

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bp"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_forward_is_the_parameters_and_what_the_outputs_read(path: Path):
    for c in compile_graphs(path.read_text()):
        for g in filter(None, (c.pair, c.grad)):
            # (and the results of the forward's loops that only the backward reads: the stacks
            # a loop fills for its backward)
            results = {n for n in g.nodes if n.op == "result" and n.args[0] in reachable(g.outputs)}
            needed = reachable(g.outputs) | set(g.inputs) | results
            # and the gradient values it computes for the cache (`select_cache`), which read
            # no upstream gradient
            assert g.hoisted == reachable(g.cache) - needed
            assert g.forward == needed | g.hoisted
            assert not set(g.douts) & g.forward
            assert g.forward is g.forward  # computed once
            # the forward never reads the backward
            assert all(a in g.forward for n in g.forward for a in n.args)
            assert set(g.cache) <= g.forward


# ---------------------------------------------------------------------------------------------
# Identity: leaves of their own, structural hash-consing keys


def differentiated_twice(src: str):
    """A VJP of a VJP: the graph of `src` differentiated, then differentiated again with its
    gradients as the outputs."""
    first = differentiate(oracle.typed_graph(src))
    names = tuple("d" + name for name in first.wrt)
    return differentiate(replace(first, outputs=first.grads, output_names=names, grads=()))


def second_order(graph, inputs, douts):
    """The gradients of a twice-differentiated graph, by the oracle's evaluator."""
    return oracle.evaluate(replace(graph, outputs=graph.grads), inputs, douts=douts)


QUADRATIC = """
graph f(W: [m, n], x: [n]) -> y wrt x {
    y = sum((W @ x) ** 2)
}
"""

TANH = """
graph f(W: [n, n], x: [n]) -> y wrt x {
    y = tanh(W @ x)
}
"""


@pytest.mark.parametrize("stage", [lambda g: g, simplify, optimize])
def test_a_vjp_of_a_vjp_is_a_hessian_vector_product(stage):
    """The gradient with respect to x of <grad_x f, v>, with f = u * sum((W @ x)**2) for a
    seed u other than 1, is 2 u W^T W v."""
    rng = np.random.default_rng(0)
    W, x, v = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    u = 1.7
    g = stage(differentiated_twice(QUADRATIC))
    (hv,) = second_order(g, {"W": W, "x": x}, (u, v))
    assert np.allclose(hv, 2 * u * W.T @ W @ v)


@pytest.mark.parametrize("stage", [simplify, optimize])
def test_the_douts_of_two_differentiations_stay_apart(stage):
    """tanh(W @ x)'s dout u and the second differentiation's w have the same type: hash-consing
    keeps them apart, and the second-order gradient reads both."""
    twice = differentiated_twice(TANH)
    g = stage(twice)
    u, w = g.douts
    assert u is not w and u.type == w.type and {u, w} <= reachable(g.grads)
    rng = np.random.default_rng(1)
    W, x, *seeds = rng.standard_normal((4, 4)), *rng.standard_normal((3, 4))
    y = np.tanh(W @ x)
    (got,) = second_order(g, {"W": W, "x": x}, seeds)
    assert np.allclose(got, W.T @ ((W @ seeds[1]) * seeds[0] * -2 * y * (1 - y * y)))
    assert [(d.attr("differentiation"), d.attr("index")) for d in g.douts] == [(1, 0), (2, 0)]
    # and the same again: the numbering is the graph's, not a global counter's
    again = differentiated_twice(TANH)
    assert [d.attrs for d in again.douts] == [d.attrs for d in twice.douts]


def test_attributes_compare_by_value_and_kind():
    assert len({canonical(v) for v in (1, 1.0, True, 0.0, -0.0, 0, False)}) == 7
    assert canonical(float("nan")) == canonical(float("nan"))
    assert canonical((1, (2.0, None))) != canonical((1, (2, None)))
    assert canonical((Dim.of("n"), "n")) == canonical((Dim.of("n"), "n"))
    with pytest.raises(TypeError):
        canonical([1])
    # hash-consing: -0.0 is not 0.0, and 1.0 not 1 (NumPy's 1 / -0.0 is -inf)
    assert len({_key(const(c)) for c in (0.0, -0.0, 1, 1.0, True)}) == 5
    assert _key(const(2.5)) == _key(const(2.5))
    assert "@" not in repr(const(2.5))  # (no id in a node's repr)


# ---------------------------------------------------------------------------------------------
# Regions and nodes with several results


def _body(n: Dim, op: str) -> Region:
    """A loop body of two carried [n] values: (h * x, h op x)."""
    h, x = (Node("param", (), (("index", i),), Type("float", (n,))) for i in range(2))
    return Region((h, x), (h * x, make(op, h, x)))


def _loop(body: Region, *args: Node) -> Node:
    return Node("loop", args, (("body", body),), TupleType(tuple(r.type for r in body.results)))


@pytest.fixture
def loop_ops(monkeypatch):
    """Stand-ins for a loop and its `result` projections (nothing in the compiler has them)."""

    def unused(*_, **__):
        raise NotImplementedError

    monkeypatch.setitem(
        OPS,
        "loop",
        OpDef("loop", lambda *_, body: TupleType(tuple(r.type for r in body.results)), unused),
    )
    monkeypatch.setitem(OPS, "result", OpDef("result", lambda t, *, index: t.items[index], unused))


def test_regions_and_several_results_go_through_schedule_rewrite_and_hash_consing(loop_ops):
    g = oracle.typed_graph("graph f(h: [n], x: [n]) -> y {\n    y = h + x\n}\n")
    h, x = g.inputs
    n = h.shape[0]
    assert _body(n, "add") == _body(n, "add") != _body(n, "sub")  # by structure
    assert hash(_body(n, "add")) == hash(_body(n, "add"))
    a, b, c = (
        _loop(_body(n, "add"), h, x),
        _loop(_body(n, "add"), h, x),
        _loop(_body(n, "sub"), h, x),
    )
    out = result(a, 0) + result(b, 1) + result(c, 1)
    g = replace(g, outputs=(out,), nodes=schedule(g.nodes, (out,)))
    assert str(a.type) == "([n], [n])" and result(a, 1).type == Type("float", (n,))

    order = g.nodes
    assert all(order.index(arg) < order.index(m) for m in order for arg in m.args)
    assert {a, b, c} <= set(order)
    same = rewrite(g, lambda m, args: with_args(m, args))
    assert same.nodes == g.nodes

    merged = simplify(g)  # the two alike loops are one; the other stays
    loops = [m for m in merged.nodes if m.op == "loop"]
    assert len(loops) == 2
    assert sorted(m.attr("body").results[1].op for m in loops) == ["add", "sub"]
    results = [m for m in merged.nodes if m.op == "result"]
    read = sorted((m.args[0].attr("body").results[1].op, m.attr("index")) for m in results)
    assert read == [("add", 0), ("add", 1), ("sub", 1)]


def test_a_region_is_closed_and_compares_by_structure_nested_ones_too():
    g = oracle.typed_graph("graph f(h: [n], x: [n]) -> y {\n    y = h + x\n}\n")
    h, x = g.inputs
    p = Node("param", (), (("index", 0),), h.type)
    with pytest.raises(ValueError, match="from outside"):
        Region((p,), (p * x,))
    assert Region((p,), (p * 2.0,)) != Region((p,), (p * 2,))  # (constants by kind)

    def outer(op: str) -> Region:  # a loop whose body runs a loop
        q = Node("param", (), (("index", 0),), h.type)
        return Region((q,), (result(_loop(_body(h.shape[0], op), q, q), 1),))

    assert outer("add") == outer("add") != outer("sub")
