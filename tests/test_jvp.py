"""Forward mode (`bpc.forward.jvp`): every operation's JVP rule, and the JVP graphs built from them.

A JVP graph takes the graph's inputs and one tangent per `wrt` parameter, and gives the
outputs and their tangents, J v. It is evaluated by the oracle (`tests/oracle.py`, NumPy), and
checked in float64:

- on every case of the op-case table (`tests/op_cases/`, the adjoint harness's: several shapes,
  broadcasting included) and a few IR-only cases here, against central finite differences of
  the oracle's forward value along the tangents; optimized (`bpc.optimize`), against itself;
- on every graph of examples/, against the VJP by the dot-product identity <J v, u> = <v, J^T u>,
  J^T u computed by `differentiate` and evaluated by the oracle;
- on random graphs (tests/test_random_graphs.py's generator), against finite differences;
- on the seed, against its closed form; on loops, its structure: one loop that carries the
  tangents beside the values;
- emitted (`g_jvp`) for every example, against the oracle, float32 kept;
- over reverse mode: the JVP of the gradient of every scalar example is H v, loops included.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given, settings

import bpc.ops  # noqa: F401 - fills the registry
from bpc.autodiff import differentiate
from bpc.dims import Dim
from bpc.emit import Compiled, emit
from bpc.forward import jvp
from bpc.hvp import first_gradients
from bpc.ir import OPS, Graph, make, reachable
from bpc.loader import module_from_text
from bpc.ops import no_tangent
from bpc.optimize import canonicalize, optimize
from bpc.verify import show, verify
from tests import oracle, test_examples
from tests import test_random_graphs as random_graphs
from tests.op_cases import CASES, IR, Case, _dims, _sum
from tests.support import rel_error
from tests.test_ops import make_inputs

FD_TOL = 1e-6  # J v against central differences along v, relative to the largest value
EPS = 1e-6  # the step of the central differences
OPT_TOL = 1e-10  # the optimized JVP graph against the JVP graph as built
DOT_TOL = 1e-9  # <J v, u> against <v, J^T u>
RANDOM_GRAPHS = 200
HVP_TOL = 1e-6  # H v against central differences of the gradient (a step of 1e-5)
ROOT = test_examples.ROOT

# ---------------------------------------------------------------------------------------------
# Evaluating a JVP graph


def jvp_graph(graph: Graph) -> Graph:
    """The JVP graph of a typed graph, as `compile_typed` would hand it to forward mode,
    checked by the stage verifier."""
    return verified(jvp(canonicalize(graph)), "canonicalize")


def verified(j: Graph, stage: str) -> Graph:
    """`j` checked by `bpc.verify` as a graph leaving `stage`."""
    return verify(j, stage)


def optimize_jvp(j: Graph) -> Graph:
    """The JVP graph optimized as `compile_typed` optimizes a graph, checked after each stage."""
    return optimize(j, cache_reused=False, check=verified)


def tangents_in(graph: Graph, inputs: dict, seed: str) -> dict[str, np.ndarray]:
    """A random tangent for each `wrt` parameter, by parameter name."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    return {name: rng.standard_normal(np.shape(inputs[name])) for name in graph.wrt}


def check_jvp(graph: Graph, inputs: dict, seed: str, optimized: bool = True) -> None:
    """The JVP graph's tangents against finite differences; its outputs and, optimized, its
    tangents against the graph as built."""
    j = jvp_graph(graph)
    dots = tangents_in(graph, inputs, seed)
    values, tangents = oracle.evaluate_jvp(graph, j, inputs, dots)
    for out, value, tangent, want in zip(
        graph.outputs, values, tangents, oracle.numeric_jvp(graph, inputs, dots, EPS)
    ):
        assert np.shape(tangent) == np.shape(value)
        if out.dtype != "float":  # a mask or a count: no tangent
            assert not np.any(tangent)
            continue
        assert rel_error(tangent, want) < FD_TOL, (rel_error(tangent, want), show(out))
    if optimized:
        o = optimize_jvp(j)
        got_values, got_tangents = oracle.evaluate_jvp(graph, o, inputs, dots)
        for have, want in zip(got_values + got_tangents, values + tangents):
            assert rel_error(have, want) < OPT_TOL


# ---------------------------------------------------------------------------------------------
# The registry: every rule on the op cases


def _case_graph(case: Case) -> Graph:
    return oracle.typed_graph(case.source) if case.source is not None else case.build()


def _image(x):
    return make("reshape", x, shape=_dims("N", "C", "H", "W"))


# IR-only operations with a JVP rule that no forward graph of the op cases holds: the window
# view and its overlap-add (conv2d and the pools are written with them after differentiation),
# max pooling's routing and picking (its gradient, and the gradient's gradient), put (a loop's
# gradient of a position read), add_along (take_along's gradient added to another) and if_else
# (a loop's backward). Tangents of x move no maximum:
# the inputs are drawn far from ties.
MORE: dict[str, list[Case]] = {
    "windows": [
        IR(
            "sum(windows(x) ** 2)",
            [("x", ("N", "C", "H", "W"))],
            lambda x: _sum(make("windows", x, size=(2, 3), stride=(1, 2)) ** 2),
        ),
        IR(
            "windows(x [H, W]) * 3",
            [("x", ("H", "W"))],
            lambda x: make("windows", x, size=(2, 2), stride=(2, 1)) * 3,
        ),
    ],
    "window_add": [
        IR(
            "window_add(g * g)",
            [("g", ("N", "C", 2, 3, 2, 2))],
            lambda g: make("window_add", g * g, shape=_dims(3, 4), stride=(1, 1)),
        ),
    ],
    "max_pool_route": [
        IR(
            "max_pool_route(x, max_pool2d(x), g * max_pool2d(x))",
            [("x", ("N", "C", 4, 4)), ("g", ("N", "C", 2, 2))],
            lambda x, g: make(
                "max_pool_route",
                x,
                make("max_pool2d", x, size=(2, 2), stride=(2, 2)),
                g * make("max_pool2d", x, size=(2, 2), stride=(2, 2)),
                size=(2, 2),
                stride=(2, 2),
            ),
        ),
    ],
    "max_pool_pick": [
        IR(
            "max_pool_pick(x, max_pool2d(x), d * d)",
            [("x", ("N", "C", 4, 5)), ("d", ("N", "C", 4, 5))],
            lambda x, d: make(
                "max_pool_pick",
                x,
                make("max_pool2d", x, size=(2, 2), stride=(1, 2)),
                d * d,
                size=(2, 2),
                stride=(1, 2),
            ),
        ),
    ],
    "put": [
        IR(
            "put(exp(g), 1) * x",
            [("g", ("n",)), ("x", ("n", "m"))],
            lambda g, x: make("put", make("exp", g), make("dim", dim=Dim.of(1)), axis=1, size="m")
            * x,
        ),
    ],
    "fast_tanh": [
        IR(
            "fast_tanh(x * y) * x",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: make("fast_tanh", x * y) * x,
        ),
    ],
    "ties_halved": [
        IR(
            "ties_halved(x * y, x, y) * x",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: make("ties_halved", x * y, x, y) * x,
        ),
    ],
    "add_along": [
        IR(
            "add_along(x * x, 1, sum(y)) * x",
            [("x", ("m",)), ("y", ("n",))],
            lambda x, y: make("add_along", x * x, 1, _sum(y)) * x,
        ),
    ],
    "sigmoid_of_minus": [
        IR(
            "sigmoid_of_minus(x * y) * x",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: make("sigmoid_of_minus", x * y) * x,
        ),
    ],
    "if_else": [
        IR(
            "if_else(sum(a) > 0, a * a, b)",
            [("a", ("n",)), ("b", ("n",))],
            lambda a, b: make("if_else", make("gt", _sum(a), 0), a * a, b),
        ),
    ],
}

REGISTRY_CASES = [
    pytest.param(case, id=f"{op}-{i}")
    for op, cases in sorted({**CASES, **MORE}.items())
    for i, case in enumerate(cases)
]


def test_every_op_with_an_adjoint_has_a_jvp_rule():
    missing = sorted(name for name, op in OPS.items() if op.adjoint is not None and op.jvp is None)
    assert not missing, f"operations with an adjoint and no JVP rule: {missing}"


@pytest.mark.parametrize(
    "op", sorted(name for name, op in OPS.items() if op.jvp not in (None, no_tangent))
)
def test_every_jvp_rule_that_makes_a_tangent_has_cases(op):
    """(A rule that makes none, `no_tangent`, says the derivative is zero: a comparison, a
    count, a fill, integers.)"""
    assert op in CASES or op in MORE, op


@pytest.mark.parametrize("case", REGISTRY_CASES)
def test_jvp_matches_finite_differences(case):
    graph = _case_graph(case)
    check_jvp(graph, make_inputs(case, graph), case.key)


# ---------------------------------------------------------------------------------------------
# The examples: the JVP is the VJP's transpose


def _example_inputs(path, d) -> dict:
    return {p.name: a for p, a in zip(d.params, test_examples.inputs(d))}


@pytest.mark.parametrize("path, d", test_examples.GRAPHS, ids=test_examples.IDS)
def test_jvp_is_the_transpose_of_the_vjp(path, d):
    """<J v, u> = <v, J^T u> for random v and u, J^T u by `differentiate`; and J v the same
    optimized."""
    graph = oracle.typed_graph(path.read_text(), d.name)
    inputs = _example_inputs(path, d)
    dots = tangents_in(graph, inputs, f"{path.name}:{d.name}")
    j = jvp_graph(graph)
    _, tangents = oracle.evaluate_jvp(graph, j, inputs, dots)
    _, again = oracle.evaluate_jvp(graph, optimize_jvp(j), inputs, dots)
    assert all(rel_error(a, t) < OPT_TOL for a, t in zip(again, tangents))
    rng = np.random.default_rng(1)
    us = [rng.standard_normal(np.shape(t)) for t in tangents]
    backward = differentiate(canonicalize(graph))
    grads = oracle.evaluate(replace(backward, outputs=backward.grads), inputs, douts=us)
    floats = [out.dtype == "float" for out in graph.outputs]
    left = [np.sum(t * u) for t, u, f in zip(tangents, us, floats) if f]
    right = [np.sum(dots[name] * g) for name, g in zip(graph.wrt, grads)]
    scale = max(1.0, sum(map(abs, left)), sum(map(abs, right)))
    assert abs(sum(left) - sum(right)) < DOT_TOL * scale, (sum(left), sum(right))


# ---------------------------------------------------------------------------------------------
# Random graphs


@settings(max_examples=RANDOM_GRAPHS, **random_graphs.COMMON)
@given(random_graphs.programs())
def test_jvp_of_random_graphs(prog):
    graph = oracle.typed_graph(prog.source)
    inputs = prog.inputs()
    if not graph.wrt:
        event("no float parameters")
        return
    if random_graphs.kink_margin(graph, inputs) <= random_graphs.FD_MARGIN:
        event("near a kink: not checked")
        return
    with np.errstate(all="ignore"):
        check_jvp(graph, inputs, prog.source, optimized=False)


# ---------------------------------------------------------------------------------------------
# The JVP graph itself


SEED = (ROOT / "examples" / "seed.bp").read_text()


def test_the_seed():
    """f = sum(q * q) with q = W @ x: the tangent is 2 q . (dW x + W dx)."""
    graph = oracle.typed_graph(SEED)
    rng = np.random.default_rng(0)
    inputs = {"W": rng.standard_normal((3, 4)), "x": rng.standard_normal(4)}
    dots = {"W": rng.standard_normal((3, 4)), "x": rng.standard_normal(4)}
    j = jvp_graph(graph)
    assert j.output_names == ("f", "f_dot")
    assert [n.attr("name") for n in j.inputs] == ["W", "x", "W_dot", "x_dot"]
    assert [n.attr("index") for n in j.inputs] == [0, 1, 2, 3]
    assert [p.name for p in j.params] == ["W", "x", "W_dot", "x_dot"]
    assert [n.type for n in j.inputs[2:]] == [n.type for n in j.inputs[:2]]
    assert (j.wrt, j.grads, j.douts) == ((), (), ())
    (f,), (f_dot,) = oracle.evaluate_jvp(graph, j, inputs, dots)
    q = inputs["W"] @ inputs["x"]
    assert np.isclose(f, q @ q)
    assert np.isclose(f_dot, 2 * q @ (dots["W"] @ inputs["x"] + inputs["W"] @ dots["x"]))


def test_names_taken_get_a_number():
    """A tangent's name that a parameter, an output or a dimension has is numbered."""
    src = "graph f(x: [x_dot], x_dot: [x_dot], y_dot: []) -> (y, y_dot_1) wrt x, y_dot {\n"
    src += "    y = x * y_dot\n    y_dot_1 = 2 * x\n}\n"
    j = jvp_graph(oracle.typed_graph(src))
    assert [n.attr("name") for n in j.inputs[3:]] == ["x_dot_1", "y_dot_dot"]
    assert j.output_names == ("y", "y_dot_1", "y_dot_2", "y_dot_1_dot")
    j = jvp_graph(oracle.typed_graph("graph f(x: [x_dot]) -> y {\n    y = 2 * x\n}\n"))
    assert [n.attr("name") for n in j.inputs] == ["x", "x_dot_1"]


def test_an_output_no_tangent_reaches_gets_zeros_of_its_type():
    src = "graph f(x: [n], c: [n]) -> (y, z, mask) wrt x {\n"
    src += "    y = x * c\n    z = exp(c)\n    mask = c > 0\n}\n"
    graph = oracle.typed_graph(src)
    j = jvp_graph(graph)
    y_dot, z_dot, mask_dot = j.outputs[3:]
    assert y_dot.op == "mul"
    assert (z_dot.op, z_dot.type) == ("full_like", graph.outputs[1].type)
    assert (mask_dot.op, mask_dot.type) == ("full_like", graph.outputs[2].type)
    inputs = {"x": np.arange(3.0), "c": np.array([1.0, -2.0, 3.0])}
    _, tangents = oracle.evaluate_jvp(graph, j, inputs, {"x": np.ones(3)})
    np.testing.assert_array_equal(tangents[0], inputs["c"])
    np.testing.assert_array_equal(tangents[1], np.zeros(3))
    assert not np.any(tangents[2])


def test_a_broadcast_argument_has_a_broadcast_tangent():
    """... which, as an output, the optimizer copies (`finish_outputs`): a broadcast is a
    read-only view."""
    graph = oracle.typed_graph("graph f(x: [n, m], b: [m]) -> y wrt b {\n    y = x + b\n}\n")
    j = jvp_graph(graph)
    assert show(j.outputs[1]) == "broadcast_to(b_dot, shape=(n, m))"
    assert show(optimize_jvp(j).outputs[1]) == "copy(broadcast_to(b_dot, shape=(n, m)))"
    f, _ = _emitted(graph, "broadcast")
    _, y_dot = f(np.zeros((2, 3)), np.zeros(3), np.ones(3))
    assert y_dot.flags.writeable and y_dot.shape == (2, 3)


def test_like_terms_are_collected():
    """y = x * x: the optimized tangent is 2 x t, not t x + x t."""
    j = optimize_jvp(jvp_graph(oracle.typed_graph("graph f(x: [n]) -> y {\n    y = x * x\n}\n")))
    y_dot = j.outputs[1]
    ops = sorted(n.op for n in reachable([y_dot]) if n.op not in ("param", "const"))
    assert ops == ["mul", "mul"], show(y_dot)
    assert show(y_dot) in (
        "mul(mul(2, x), x_dot)",
        "mul(mul(2, x_dot), x)",
        "mul(2, mul(x, x_dot))",
        "mul(2, mul(x_dot, x))",
    ), show(y_dot)


def test_the_jvp_of_a_loop_is_one_loop_carrying_the_tangents():
    """rnn: one loop, whose body carries h and its tangent and writes hs and its tangent; its
    params are the loop variable, the carried values, their tangents, the loop-invariant
    values, theirs."""
    graph = canonicalize(oracle.typed_graph((ROOT / "examples" / "rnn.bp").read_text(), "rnn"))
    (loop,) = [n for n in graph.nodes if n.op == "loop"]
    (new,) = [n for n in jvp(graph).nodes if n.op == "loop"]
    assert new.attr("kinds") == (
        ("carry",),
        ("carry",),
        ("slot", (1,), "set"),
        ("slot", (1,), "set"),
    )
    t, h, *outer = [p.attr("name") for p in loop.attr("body").params]
    names = [p.attr("name") for p in new.attr("body").params]
    assert names == [t, h, f"{h}_dot", *outer, *(f"{name}_dot" for name in outer)]


# ---------------------------------------------------------------------------------------------
# Emitted: the JVP graph is a plain graph (parameters in, arrays out), which the emitter takes as
# it is; its dtypes are decided there


def _emitted(graph: Graph, name: str):
    """`g_jvp` as the emitter writes it (`Compiled.jvp`, the JVP graph optimized), as a
    function returning the outputs and then their tangents; and the JVP graph."""
    canonical = canonicalize(graph)
    pair = optimize(differentiate(canonical), cache_reused=True)
    j = jvp(canonical)
    plain = optimize(replace(j, name=f"{graph.name}_jvp"), cache_reused=False, check=verified)
    text = emit([Compiled(pair, None, plain)], f"{name}.bp")
    g_jvp = getattr(module_from_text(text, f"bpc_test_jvp_{name}"), f"{graph.name}_jvp")
    if len(graph.outputs) == 1:
        return g_jvp, j
    return (lambda *args: tuple(x for part in g_jvp(*args) for x in part)), j


@pytest.mark.parametrize("path, d", test_examples.GRAPHS, ids=test_examples.IDS)
def test_emitted_jvp_graphs_run_and_keep_float32(path, d):
    """The emitted JVP graph's values and tangents are the oracle's in float64, fresh writable
    arrays; float32 inputs and tangents give float32 tangents."""
    graph = oracle.typed_graph(path.read_text(), d.name)
    f, j = _emitted(graph, f"{path.stem}_{d.name}")
    inputs = _example_inputs(path, d)
    dots = tangents_in(graph, inputs, d.name)
    got = f(*inputs.values(), *dots.values())
    got = got if isinstance(got, tuple) else (got,)
    values, tangents = oracle.evaluate_jvp(graph, j, inputs, dots)
    for have, want in zip(got, values + tangents):
        assert rel_error(have, want) < OPT_TOL
    arrays = [x for x in got if isinstance(x, np.ndarray) and x.ndim]
    for i, x in enumerate(arrays):  # the caller's to keep: fresh, writable arrays
        assert x.flags.writeable
        others = [*inputs.values(), *dots.values(), *arrays[:i]]
        assert not any(np.shares_memory(x, y) for y in others if isinstance(y, np.ndarray))
    single = {k: np.float32(v) if isinstance(v, float) else v for k, v in inputs.items()}
    single = {
        k: v.astype(np.float32) if getattr(v, "dtype", None) == np.float64 else v
        for k, v in single.items()
    }
    got = f(*single.values(), *(v.astype(np.float32) for v in dots.values()))
    got = got if isinstance(got, tuple) else (got,)
    for out, tangent in zip(graph.outputs, got[len(graph.outputs) :]):
        if out.dtype == "float":
            assert np.asarray(tangent).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Forward over reverse: the JVP of the gradient is the Hessian times the tangents, H v


def check_hvp(graph: Graph, inputs: dict, seed: str) -> None:
    """The JVP of `g_grad`'s graph (the gradient, the upstream gradient 1) along v against
    central differences of the gradient along v: H v."""
    first = first_gradients(differentiate(canonicalize(graph)))
    v = tangents_in(graph, inputs, f"hvp {seed}")
    _, hv = oracle.evaluate_jvp(first, verified(jvp(first), "canonicalize"), inputs, v)
    for have, want in zip(hv, oracle.numeric_jvp(first, inputs, v, eps=1e-5)):
        assert rel_error(have, want) < HVP_TOL


def _scalar(graph: Graph) -> bool:
    return len(graph.outputs) == 1 and not graph.outputs[0].ndim and bool(graph.wrt)


SCALAR_EXAMPLES = [
    pytest.param(path, d, id=f"{path.name}::{d.name}")
    for path, d in test_examples.GRAPHS
    if _scalar(oracle.typed_graph(path.read_text(), d.name))
]
SCALAR_CASES = [p for p in REGISTRY_CASES if _scalar(_case_graph(p.values[0]))]


@pytest.mark.parametrize("path, d", SCALAR_EXAMPLES)
def test_the_jvp_of_the_gradient_is_a_hessian_vector_product(path, d):
    """Every rule applies to the backward's operations too (scatters, the max pool's routing, a
    loop's backward loop reading its forward's stacks): the JVP of `g_grad`'s graph is H v,
    loops included (the LSTM of `captioning_loss` and `adder_loss`)."""
    graph = oracle.typed_graph(path.read_text(), d.name)
    check_hvp(graph, _example_inputs(path, d), d.name)


@pytest.mark.parametrize("case", SCALAR_CASES)
def test_the_jvp_of_each_adjoint(case):
    """The op cases with one scalar output, forward over reverse: each adjoint's operations'
    JVP rules (`scatter_add`, `put`, `window_add`, `max_pool_route`, ...)."""
    graph = _case_graph(case)
    check_hvp(graph, make_inputs(case, graph), case.key)


def test_load_and_compile_with_jvp_define_g_jvp(tmp_path):
    """`bpc.load(path, jvp=True)` and `bpc compile --jvp` give `g_jvp(*args, *tangents)`:
    `(out, out_dot)`, and `((o1, o2), (t1, t2))` with several outputs."""
    import subprocess
    import sys

    import bpc

    seed = ROOT / "examples" / "seed.bp"
    module = bpc.load(seed, cache=tmp_path, jvp=True)
    rng = np.random.default_rng(4)
    W, x, W_dot, x_dot = (rng.standard_normal(s) for s in ((3, 4), 4, (3, 4), 4))
    f, f_dot = module.seed_jvp(W, x, W_dot, x_dot)
    q = W @ x
    assert np.isclose(f, q @ q) and np.isclose(f_dot, 2 * q @ (W_dot @ x + W @ x_dot))
    source = tmp_path / "two.bp"
    source.write_text("graph two(x: [n]) -> (a, b) {\n    a = x * x\n    b = sum(x)\n}\n")
    run = subprocess.run(
        [sys.executable, "-m", "bpc", "compile", "--jvp", str(source)], capture_output=True
    )
    assert run.returncode == 0, run.stderr
    two = bpc.loader.module_from_text((tmp_path / "two.py").read_text(), "bpc_test_two_jvp")
    (a, b), (a_dot, b_dot) = two.two_jvp(np.arange(3.0), np.ones(3))
    np.testing.assert_allclose(a_dot, 2 * np.arange(3.0))
    assert b_dot == 3.0
    with pytest.raises(ValueError, match="two_jvp: x_dot has shape"):
        two.two_jvp(np.arange(3.0), np.ones(4))
