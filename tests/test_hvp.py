"""Second order: `g_hvp`, Hessian-vector products by reverse over reverse (`bpc.hvp`).

Every op's adjoint differentiated again: each case of the op table (tests/op_cases/) is made
scalar, `s = sum(out * u)` with a fixed random `u`, compiled with its HVPs, and `H v` checked
against central finite differences of the compiled gradient, `(g(x + e v) - g(x - e v)) / 2e`,
in float64. Then the lecture note's example against its hand formula `2 W^T W v`, the examples,
float32, the emitted code, and the argument checks.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings

from bpc.emit import emit
from bpc.ir import Param, make, schedule
from bpc.loader import module_from_text
from bpc.pipeline import compile_source
from bpc.verify import compile_typed
from tests import oracle
from tests import test_random_graphs as random_graphs
from tests.op_cases import CASES
from tests.support import rel_error
from tests.test_ops import SIZES, make_inputs

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-5
FD_TOL = 1e-6
_count = itertools.count()


def _scalar(graph):
    """`s = sum(out * u)`: the case's graph made scalar, `u` a parameter it does not
    differentiate; the first output only, for a graph with several."""
    out = graph.outputs[0]
    loc = graph.loc
    u = replace(
        make("param", name="u_out", index=len(graph.params), type=out.type),
        hint="u_out",
        loc=loc,
    )
    s = replace(make("sum", make("mul", out, u)), hint="s")
    decl = Param("u_out", "float", tuple(out.shape), loc)
    inputs = graph.inputs + (u,)
    return replace(
        graph,
        params=graph.params + (decl,),
        inputs=inputs,
        outputs=(s,),
        output_names=("s",),
        nodes=schedule(graph.nodes + (u,), (s, *inputs)),
    )


def _grad_along(grad, graph, inputs: dict, vectors: list, step: float):
    """The gradients `grad` (a module's `g_grad`) gives at the inputs moved by `step` times the
    vectors along the `wrt` parameters."""
    moved = dict(inputs)
    for w, v in zip(graph.wrt, vectors):
        moved[w] = inputs[w] + step * v
    return grad(*moved.values())[1]


def _second_order_cases():
    params = []
    for op, cases in CASES.items():
        for i, case in enumerate(cases):
            params.append(pytest.param(op, case, id=f"{op}-{i}"))
    return params


def _hvp_module(case):
    graph = case.build() if case.source is None else oracle.typed_graph(case.source)
    floats = [p for p in graph.params if p.dtype == "float" and p.name in graph.wrt]
    if not floats or graph.outputs[0].type.dtype != "float":
        pytest.skip("no float parameter to differentiate, or an integer output")
    scalar = _scalar(graph)
    compiled = compile_typed(scalar, hvp=True)
    text = emit([compiled], "case.bp")
    return module_from_text(text, f"bpc_test_hvp_{next(_count)}"), scalar


@pytest.mark.parametrize("op, case", _second_order_cases())
def test_every_adjoint_differentiated_again_matches_finite_differences_of_the_gradient(op, case):
    module, graph = _hvp_module(case)
    inputs = make_inputs(case, graph)
    rng = np.random.default_rng(7)
    sizes = {**SIZES, **dict(case.sizes)}
    u_shape = tuple(int(d.evaluate(sizes)) for d in graph.params[-1].dims)
    inputs["u_out"] = rng.standard_normal(u_shape)
    vectors = [rng.standard_normal(np.shape(inputs[w])) for w in graph.wrt]
    hv = module.f_hvp(*inputs.values(), *vectors)

    up, down = (_grad_along(module.f_grad, graph, inputs, vectors, e) for e in (EPS, -EPS))
    for i, w in enumerate(graph.wrt):
        want = (np.asarray(up[i]) - np.asarray(down[i])) / (2 * EPS)
        assert np.shape(hv[i]) == np.shape(inputs[w]), w
        assert rel_error(hv[i], want) < FD_TOL, (w, rel_error(hv[i], want))


# ---------------------------------------------------------------------------------------------
# The lecture note's example, the examples, float32, the code and the checks


def test_the_seeds_hvp_is_2_WtW_v(tmp_path):
    """f = ||W x||^2: H v in x is 2 W^T W v (and in W, 2 (W v_x) x^T + 2 q v_x^T + 2 (v_W x) x^T)."""
    import bpc

    module = bpc.load(ROOT / "examples" / "seed.bp", cache=tmp_path, hvp=True)
    rng = np.random.default_rng(0)
    W, x, vW, vx = (rng.standard_normal(s) for s in ((3, 4), 4, (3, 4), 4))
    q = W @ x
    hv = module.seed_hvp(W, x, np.zeros_like(W), vx)
    np.testing.assert_allclose(hv.x, 2 * W.T @ W @ vx, rtol=1e-12)
    np.testing.assert_allclose(hv.W, 2 * np.outer(W @ vx, x) + 2 * np.outer(q, vx), rtol=1e-12)
    hv = module.seed_hvp(W, x, vW, vx)
    want_x = 2 * W.T @ W @ vx + 2 * vW.T @ q + 2 * W.T @ (vW @ x)
    np.testing.assert_allclose(hv.x, want_x, rtol=1e-12)
    assert hv._fields == ("W", "x")
    assert not hasattr(bpc.load(ROOT / "examples" / "seed.bp", cache=tmp_path), "seed_hvp")


def _scalar_graphs():
    """The examples' graphs with one scalar output."""
    for path in sorted((ROOT / "examples").glob("*.bp")):
        for g in oracle.typed_graphs(path.read_text()):
            if len(g.outputs) == 1 and g.outputs[0].ndim == 0:
                yield pytest.param(path, g, id=f"{path.stem}.{g.name}")


def _inputs(graph, rng, dtype=np.float64):
    sizes = {
        d: 3 + i
        for i, d in enumerate(sorted({s for p in graph.params for x in p.dims for s in x.symbols}))
    }
    out = {}
    for p in graph.params:
        shape = tuple(int(d.evaluate(sizes)) for d in p.dims)
        if p.dtype == "int":
            out[p.name] = rng.integers(0, 2, shape)
        else:
            out[p.name] = np.asarray(rng.uniform(0.5, 1.5, shape), dtype)
    return out


@pytest.mark.parametrize("path, graph", list(_scalar_graphs()))
def test_the_examples_hvps_match_finite_differences_of_their_gradients(path, graph):
    module = module_from_text(
        compile_source(path.read_text(), path.name, hvp=True), f"bpc_test_hvp_{next(_count)}"
    )
    rng = np.random.default_rng(3)
    inputs = _inputs(graph, rng)
    vectors = [rng.standard_normal(np.shape(inputs[w])) for w in graph.wrt]
    hv = getattr(module, f"{graph.name}_hvp")(*inputs.values(), *vectors)
    grad = getattr(module, f"{graph.name}_grad")

    up, down = (_grad_along(grad, graph, inputs, vectors, e) for e in (EPS, -EPS))
    for i, w in enumerate(graph.wrt):
        want = (np.asarray(up[i]) - np.asarray(down[i])) / (2 * EPS)
        assert rel_error(hv[i], want) < 1e-5, w

    inputs32 = {
        k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in inputs.items()
    }
    hv32 = getattr(module, f"{graph.name}_hvp")(
        *inputs32.values(), *(v.astype(np.float32) for v in vectors)
    )
    for i, w in enumerate(graph.wrt):
        assert hv32[i].dtype == np.float32, w
        assert rel_error(hv32[i], hv[i]) < 1e-3, w


def test_each_graph_gets_the_cheaper_method_and_loops_forward_over_reverse():
    """Both methods are built where both can be, and the one with fewer flops at the expected
    sizes is kept; a graph with a loop has forward over reverse alone."""
    from bpc.autodiff import differentiate
    from bpc.hvp import candidates, cheaper, flops
    from bpc.optimize import canonicalize, optimize

    for path, name, methods in [
        ("seed.bp", "seed", 2),
        ("two_layer.bp", "two_layer", 2),
        ("rnn.bp", "captioning_loss", 1),
    ]:
        graph = oracle.typed_graph((ROOT / "examples" / path).read_text(), name)
        made = [
            (how, optimize(g, cache_reused=False))
            for how, g in candidates(differentiate(canonicalize(graph)))
        ]
        assert len(made) == methods
        assert made[-1][0] == "forward over reverse"
        kept = cheaper(made, {})
        assert flops(kept, {}) == min(flops(g, {}) for _, g in made)


def test_the_vectors_are_checked_like_arguments():
    module = load_hvp(SEED)
    W, x = np.ones((3, 4)), np.ones(4)
    with pytest.raises(ValueError, match="seed_hvp: v_x has shape"):
        module.seed_hvp(W, x, np.ones((3, 4)), np.ones(5))
    with pytest.raises(ValueError, match="v_W"):
        module.seed_hvp(W, x, np.ones((4, 3)), np.ones(4))


def test_graphs_without_one_scalar_output_get_no_hvp():
    module = load_hvp("graph g(x: [n]) -> y { y = x * x }\n" + SEED)
    assert hasattr(module, "seed_hvp") and not hasattr(module, "g_hvp")


def test_vector_names_never_shadow_parameters_or_dimensions():
    module = load_hvp("graph g(x: [v_x], v_x_1: [v_x]) -> y { y = sum(x * x * v_x_1) }")
    x, w, v = np.ones(3), np.full(3, 2.0), np.arange(3.0)
    hv = module.g_hvp(x, w, v, np.zeros(3))
    np.testing.assert_allclose(hv.x, 2 * w * v)  # H in x is diag(2 v_x_1)


SEED = (ROOT / "examples" / "seed.bp").read_text()


def load_hvp(source: str):
    return module_from_text(
        compile_source(source, "m.bp", hvp=True), f"bpc_test_hvp_{next(_count)}"
    )


# ---------------------------------------------------------------------------------------------
# Random graphs (tests/test_random_graphs.py's programs)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_graphs.programs())
def test_random_graphs_hvps_match_finite_differences_of_their_gradients(prog):
    graph = oracle.typed_graph(prog.source)
    if not graph.wrt:
        event("no float parameters")
        return
    inputs = prog.inputs()
    if random_graphs.kink_margin(graph, inputs) <= random_graphs.FD_MARGIN:
        event("near a kink")
        return
    module = load_hvp(prog.source)
    rng = np.random.default_rng(5)
    vectors = [rng.standard_normal(np.shape(inputs[w])) for w in graph.wrt]
    hv = module.f_hvp(*inputs.values(), *vectors)

    up, down, wide_up, wide_down = (
        _grad_along(module.f_grad, graph, inputs, vectors, e) for e in (1e-5, -1e-5, 4e-5, -4e-5)
    )
    for i, w in enumerate(graph.wrt):
        assert np.shape(hv[i]) == np.shape(inputs[w]) and np.all(np.isfinite(hv[i])), w
        want = (np.asarray(up[i]) - np.asarray(down[i])) / 2e-5
        wide = (np.asarray(wide_up[i]) - np.asarray(wide_down[i])) / 8e-5
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        if rel_error(want, wide) > 1e-4:  # the gradient is not smooth along v after all
            event("finite differences skipped: not smooth along v")
            return
        assert rel_error(hv[i], want) < 1e-4, (w, rel_error(hv[i], want), scale)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.bp")), ids=lambda p: p.stem)
def test_second_order_code_collects_like_terms(path):
    """The emitted JVPs and HVPs read like first-order code: no `-t - t`, no `t + t`, no power
    0, no transposed outer product, no outer product summed with another of the same row."""
    text = compile_source(path.read_text(), path.name, jvp=True, hvp=True)
    assert not re.search(r"-(\w+) - \1\b", text)
    assert not re.search(r"(?<![\w.])(\w+) \+ \1\b", text)
    assert "** 0" not in text and "**0" not in text
    assert not re.search(r"np\.dot\([^\n]*\)\.T\b", text)
