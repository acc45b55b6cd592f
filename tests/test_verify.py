"""The stage verifier (`bpc.verify`): every graph of the examples, the golden file, the regressions
and the op-case table passes it after every stage; `bpc.verify.compile_graphs` gives exactly the
graphs of `bpc.pipeline.compile_graphs`; and graphs broken on purpose (a wrong type, a dangling
argument, a forward node reading the backward, a backward value in the cache, ...) raise a
`VerifyError` that names the stage, the node and the invariant.

The rest of the suite compiles through the verifier too (tests/conftest.py)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import pytest

import bpc.pipeline
from bpc import verify as V
from bpc.dims import Dim
from bpc.ir import Graph, Node, Type, make, reachable, rewrite
from bpc.verify import VerifyError, show, show_graph, verify
from tests.op_cases import CASES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [
        *ROOT.glob("examples/*.bp"),
        *ROOT.glob("tests/golden/*.bp"),
        *ROOT.glob("tests/regressions/*.bp"),
    ]
)
# The pipeline itself, not the verifying wrapper tests/conftest.py puts in its place.
PIPELINE = inspect.unwrap(bpc.pipeline.compile_graphs)

LAYER = """\
graph f(x: [n, m], w: [m], b: []) -> out {
    h = x * w + b
    out = sum(h * h)
}
"""


def stages(source: str, sizes: dict | None = None) -> dict[str, Graph]:
    """The graph of `source` as it leaves each stage, verified."""
    seen: dict[str, Graph] = {}

    def check(graph: Graph, stage: str) -> Graph:
        seen[stage] = verify(graph, stage)
        return graph

    V.compile_graphs(source, sizes=sizes, check=check)
    return seen


def _same(compiled_a, compiled_b) -> None:
    assert len(compiled_a) == len(compiled_b)
    for a, b in zip(compiled_a, compiled_b):
        assert show_graph(a.pair) == show_graph(b.pair)
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            assert show_graph(a.grad) == show_graph(b.grad)


# ---------------------------------------------------------------------------------------------
# Every graph of the repository's sources and of the op-case table passes


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sources_verify_after_every_stage_and_match_the_pipeline(path):
    text = path.read_text()
    before = V.COUNTS.copy()
    verified = V.compile_graphs(text)
    counts = V.COUNTS - before
    assert counts["select_cache"] == counts["infer_shapes"] == counts["build_ir"] > 0
    _same(verified, PIPELINE(text))


def test_sizes_move_scales_the_same_way_verified():
    """With sizes, `place_scales` moves scales (attention): the verified pipeline still agrees."""
    text = (ROOT / "examples/attention.bp").read_text()
    sizes = {"S": 512, "T": 512, "d": 64, "m": 64}
    _same(V.compile_graphs(text, sizes=sizes), PIPELINE(text, sizes=sizes))
    single = text[text.index("graph attention(") : text.index("# Multi-head")]
    seen = stages(single, sizes)
    assert show_graph(seen["transpose_products"]) != show_graph(seen["place_scales"])


def _case_params():
    return [
        pytest.param(case, id=f"{op}-{i}")
        for op, cases in CASES.items()
        for i, case in enumerate(cases)
    ]


@pytest.mark.parametrize("case", _case_params())
def test_op_cases_verify_after_every_stage(case):
    if case.source is not None:
        V.compile_graphs(case.source)
    else:  # hand-built typed IR: it enters where the shape pass would hand it over
        V.compile_typed(verify(case.build(), "infer_shapes"))


def test_the_suite_compiles_through_the_verifier(request):
    if request.config.getoption("--no-verify"):
        pytest.skip("--no-verify")
    assert bpc.pipeline.compile_graphs is not PIPELINE
    before = V.COUNTS.copy()
    bpc.compile_source(LAYER)
    # (the loops' stages run on graphs with loops only; LAYER has none; `fast_math` where asked)
    loops_only = ("tidy_loops", "products_after_loops", "stacks_in_read_arrays")
    stages = [s for s in V.STAGES if s not in loops_only and s != "fast_math"]
    assert V.COUNTS - before == {stage: 1 for stage in stages if stage != "seed_ones"} | {
        f"g_grad/{stage}": 1 for stage in stages[4:]
    }


def test_an_unused_parameter_stays_in_the_nodes():
    """Regression: `differentiate` dropped a parameter that nothing reads and that is not in `wrt`
    from `graph.nodes`, while it stayed in `graph.inputs`."""
    graph = stages("graph f(x: [n], y: [n], i: int[n]) -> out wrt x { out = sum(x) }\n")[
        "differentiate"
    ]
    assert [n.attr("name") for n in graph.inputs if n in graph.nodes] == ["x", "y", "i"]


def test_a_rewrite_that_makes_a_value_static_types_its_users_again():
    """sum_of_broadcast_scalar makes sum(broadcast_to(1.0)) the plain number 1.0 * m; the nodes
    built on it are typed again (ir.with_args), not left float[] where their rule says static."""
    stages("graph f(x: [m], s: []) -> out {\n    out = sum(x + s) + sum(x - s)\n}\n")


def test_seed_ones_leaves_no_dead_node():
    graph = stages("graph f(x: [n], i: int[n]) -> out { out = sum(i) }\n")["g_grad/seed_ones"]
    live = reachable(graph.outputs + graph.grads + graph.inputs)
    assert [show(n) for n in graph.nodes if n not in live] == []


# ---------------------------------------------------------------------------------------------
# Broken graphs are caught, with the stage, the node and the invariant


def _node(graph: Graph, hint: str) -> Node:
    (n,) = [n for n in graph.nodes if n.hint == hint]
    return n


def _raw(n: Node, args: tuple[Node, ...]) -> Node:
    """n with new arguments and its old type, right or not (with_args would type it again)."""
    return n if args == n.args else replace(n, args=args)


def _substitute(graph: Graph, old: Node, new: Node) -> Graph:
    """`graph` with `new` in place of `old`, its users rebuilt to read it."""
    return rewrite(graph, lambda n, args: new if n is old else _raw(n, args))


def test_a_wrong_type_is_caught():
    graph = stages(LAYER)["simplify"]
    h = _node(graph, "h")
    broken = _substitute(graph, h, replace(h, type=Type("float", (Dim.of("n"),))))
    with pytest.raises(VerifyError) as e:
        verify(broken, "simplify")
    assert str(e.value) == (
        "after simplify, graph 'f': add node 'h' float[n] at line 2:9: "
        "has type float[n], but its shape rule gives float[n, m]"
    )
    assert e.value.stage == "simplify" and e.value.node.hint == "h"


def test_arguments_that_no_longer_fit_the_shape_rule_are_caught():
    graph = stages(LAYER)["infer_shapes"]
    h = _node(graph, "h")
    x, w = graph.inputs[:2]
    broken = _substitute(graph, h, replace(h, args=(w, x.T)))  # [m] + [m, n]
    with pytest.raises(
        VerifyError, match=r"after infer_shapes, .*add node 'h' .*shape rule refuses"
    ):
        verify(broken, "infer_shapes")


def test_attributes_out_of_normal_form_are_caught():
    graph = stages(LAYER)["infer_shapes"]
    out = graph.outputs[0]
    broken = _substitute(graph, out, replace(out, attrs=(("axis", (-2, -1)), ("keepdims", False))))
    with pytest.raises(VerifyError, match=r"sum node 'out' .*normalizes them to"):
        verify(broken, "infer_shapes")


def test_a_dangling_argument_is_caught():
    graph = stages(LAYER)["infer_shapes"]
    out = graph.outputs[0]
    stray = make("exp", out.args[0])
    bad = replace(out, args=(stray,))
    broken = replace(
        graph, nodes=tuple(bad if n is out else n for n in graph.nodes), outputs=(bad,)
    )
    with pytest.raises(VerifyError) as e:
        verify(broken, "infer_shapes")
    assert "sum node 'out' float[] at line 3:11: reads exp node float[n, m]" in str(e.value)
    assert str(e.value).endswith("which is not in the graph's nodes (dangling)")


def test_a_dangling_output_is_caught():
    graph = stages(LAYER)["infer_shapes"]
    stray = make("sum", graph.inputs[0], axis=(0, 1), keepdims=False)
    with pytest.raises(VerifyError, match="is one of the graph's outputs but not in its nodes"):
        verify(replace(graph, outputs=(stray,)), "infer_shapes")


def test_nodes_out_of_order_or_twice_are_caught():
    graph = stages(LAYER)["canonicalize"]
    with pytest.raises(VerifyError, match="which comes after it in the graph's nodes"):
        verify(replace(graph, nodes=graph.nodes[::-1]), "canonicalize")
    with pytest.raises(VerifyError, match=r"is listed twice in the graph's nodes \(at 0 and"):
        verify(replace(graph, nodes=graph.nodes + graph.nodes[:1]), "canonicalize")


def test_a_forward_node_reading_the_backward_is_caught():
    graph = stages(LAYER)["differentiate"]
    h, (dout,) = _node(graph, "h"), graph.douts
    broken = _substitute(graph, h, _raw(h, (h.args[0], dout)))  # x * w + dout
    with pytest.raises(VerifyError) as e:
        verify(broken, "differentiate")
    assert str(e.value) == (
        "after differentiate, graph 'f': add node 'h' float[n, m] at line 2:9: "
        "is a forward node but reads the backward's dout node 'dout' float[]"
    )


def test_a_backward_value_in_the_cache_is_caught():
    graph = stages(LAYER)["select_cache"]
    dx = graph.grads[0]
    with pytest.raises(VerifyError) as e:
        verify(replace(graph, cache=graph.cache + (dx,)), "select_cache")
    assert str(e.value) == (
        "after select_cache, graph 'f': mul node 'dx' float[n, m] at line 2:9: "
        "is in the cache but is not a forward value: it reads an upstream gradient"
    )


def test_a_backward_read_around_the_cache_is_caught():
    graph = stages(LAYER)["select_cache"]
    with pytest.raises(
        VerifyError, match="is a backward node and reads the forward's .* not cached"
    ):
        verify(replace(graph, cache=graph.cache[1:]), "select_cache")
    verify(replace(graph, cache=graph.cache[1:]), "finish_gradients")  # not chosen yet


def test_a_gradient_of_the_wrong_type_is_caught():
    graph = stages(LAYER)["select_cache"]
    dx, dw, db = graph.grads
    with pytest.raises(VerifyError, match="is the gradient of 'w' float.m. but has another shape"):
        verify(replace(graph, grads=(dx, dx, db)), "select_cache")
    # Finished, a gradient is exactly of its parameter's type: not a plain number.
    two = next(n for n in graph.nodes if n.op == "const")
    fields = dict(grads=(dx, dw, two))
    with pytest.raises(VerifyError, match="is the finished gradient of 'b' but not of its type"):
        verify(replace(graph, **fields), "finish_gradients")


def test_an_upstream_gradient_of_the_wrong_shape_is_caught():
    graph = stages(LAYER)["differentiate"]
    (dout,) = graph.douts
    bad = replace(dout, type=Type("float", (Dim.of("n"),)))
    broken = _substitute(graph, dout, bad)
    with pytest.raises(VerifyError, match="is the upstream gradient of sum node 'out'"):
        verify(replace(broken, douts=(bad,)), "differentiate")


def test_a_dead_node_is_caught():
    graph = stages(LAYER)["differentiate"]
    stray = make("exp", graph.inputs[0])
    broken = replace(graph, nodes=graph.nodes + (stray,))
    with pytest.raises(VerifyError, match=r"exp node float\[n, m\]: is dead: no output or grad"):
        verify(broken, "differentiate")
    typed = stages(LAYER)["infer_shapes"]
    unused = make("exp", typed.inputs[0])
    verify(replace(typed, nodes=typed.nodes + (unused,)), "infer_shapes")  # (a warning, not a bug)


def test_a_value_computed_twice_after_simplify_is_caught():
    graph = stages(LAYER)["simplify"]
    h = _node(graph, "h")
    again = replace(h, hint=None)
    out = graph.outputs[0]
    broken = _substitute(graph, out, _raw(out, (h, again)))  # vdot(h, h') for vdot(h, h)
    with pytest.raises(VerifyError, match="add node float.n, m. .*computes what add node 'h'"):
        verify(broken, "simplify")
    verify(broken, "finish_gradients")  # a gradient may be a second, fresh copy


def test_stages_are_named():
    graph = stages(LAYER)["select_cache"]
    assert verify(graph, "g_grad/select_cache") is graph
    with pytest.raises(ValueError, match="unknown stage 'optimise'"):
        verify(graph, "optimise")


# ---------------------------------------------------------------------------------------------
# show


def test_show_prints_a_node_as_an_expression():
    graph = stages(LAYER)["select_cache"]
    assert show(graph.outputs[0]) == "vdot(add(mul(x, w), b), add(mul(x, w), b))"
    assert show(graph.grads[1]) == "mul(mul(2, dout), sumprod(add(mul(x, w), b), x, axis=(0,)))"
    x = graph.inputs[0]
    assert (
        show(make("reshape", x, shape=(Dim.of("n") * Dim.of("m"),))) == "reshape(x, shape=(m*n,))"
    )
