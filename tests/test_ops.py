"""Every operation's adjoint, checked on several shapes against finite differences and autograd.

`CASES` maps each op of the registry to bp graphs that use it, with inputs of several shapes
(broadcasting against scalars, size-1 axes and missing leading axes; batched matmul with
broadcast batch dimensions; reductions over int, negative and tuple axes, with keepdims). Ops
that the language cannot spell are built as IR by hand and go through the same later stages.
For every case, in float64: the gradients against central finite differences and against
autograd run on an independent evaluator of the forward IR (`tests/oracle.py`), forward +
backward against the fused `_grad`, the gradients' shapes and dtypes; and float32 in, float32
out. A test over the registry makes sure no op is left without cases.
"""

from __future__ import annotations

import itertools
import types
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

import bpc.ops  # noqa: F401 - fills the registry
from bpc.autodiff import differentiate
from bpc.emit import Compiled, emit
from bpc.ir import OPS, Graph
from bpc.loader import module_from_text
from bpc.optimize import canonicalize, optimize, seed_ones
from tests import oracle
from tests.op_cases import CASES, CHECKS, EXEMPT, Case
from tests.support import load, numeric_grad, rel_error

# Different dimensions get different sizes, so a transposition bug shows up as a shape error.
SIZES = {"n": 3, "m": 4, "k": 5, "B": 2, "C": 6, "N": 2, "H": 4, "W": 5}

FD_TOL = 1e-6  # gradients vs central finite differences, float64
AUTOGRAD_TOL = 1e-9  # gradients vs autograd on the oracle, float64
FORWARD_TOL = 1e-12  # forward values vs the oracle, float64
F32_RTOL = 1e-3  # float32 results vs float64 results


# ---------------------------------------------------------------------------------------------
# Compiling and running a case


@dataclass
class Built:
    module: types.ModuleType
    graph: Graph  # the typed forward graph, what the oracle evaluates

    @property
    def f(self):
        return getattr(self.module, self.graph.name)

    @property
    def scalar(self) -> bool:
        return len(self.graph.outputs) == 1 and self.graph.outputs[0].ndim == 0


_built: dict[str, Built] = {}
_count = itertools.count()


def _load_text(text: str) -> types.ModuleType:
    return module_from_text(text, f"bpc_test_ops_ir_{next(_count)}")


def _compile_ir(typed: Graph) -> types.ModuleType:
    """The later stages of bpc.pipeline on a hand-built typed graph."""
    full = differentiate(typed)
    pair = optimize(full, cache_reused=True)
    scalar = len(typed.outputs) == 1 and typed.outputs[0].ndim == 0
    grad = optimize(seed_ones(full), cache_reused=False) if scalar else None
    return _load_text(emit([Compiled(pair, grad)], "x.bp"))


def built(case: Case) -> Built:
    """Compile a case once (the cache is keyed by its source)."""
    if case.key not in _built:
        if case.source is not None:
            _built[case.key] = Built(load(case.source), oracle.typed_graph(case.source))
        else:
            graph = case.build()
            _built[case.key] = Built(_compile_ir(graph), graph)
    return _built[case.key]


def _rng(case: Case, salt: str = "") -> np.random.Generator:
    return np.random.default_rng(zlib.crc32((case.key + salt).encode()))


def make_inputs(case: Case, graph: Graph, dtype=np.float64) -> dict[str, np.ndarray]:
    """Random inputs for the graph's parameters, by name; 0-d arrays for `[]` parameters."""
    rng = _rng(case)
    sizes = {**SIZES, **dict(case.sizes)}
    inputs = {}
    bounds = dict(case.ints)
    for p in graph.params:
        shape = tuple(int(d.evaluate(sizes)) for d in p.dims)
        if p.dtype == "int":
            bound = bounds.get(p.name, 2)
            inputs[p.name] = rng.integers(0, sizes.get(bound, bound), shape)
            continue
        if p.name in case.positive:
            x = rng.uniform(0.5, 2.0, shape)
        elif p.name in case.away:
            x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        else:
            x = rng.standard_normal(shape)
        inputs[p.name] = np.asarray(x, dtype=dtype)
    return inputs


def make_dout(case: Case, b: Built, inputs, dtype=np.float64, salt: str = "dout"):
    """1.0 for a scalar output; random upstream gradients of the output's shape otherwise."""
    if b.scalar:
        return 1.0
    shape = np.shape(b.f(*inputs.values()))
    return np.asarray(_rng(case, salt).standard_normal(shape), dtype=dtype)


def vjp(b: Built, inputs, dout) -> dict[str, np.ndarray]:
    """The compiled gradients of sum(out * dout), by name, through g_forward + g_backward."""
    f = b.graph.name
    _, cache = getattr(b.module, f"{f}_forward")(*inputs.values())
    grads = getattr(b.module, f"{f}_backward")(dout, cache)
    assert grads._fields == b.graph.wrt
    return grads._asdict()


def compiled_grads(b: Built, inputs, dout) -> dict[str, np.ndarray]:
    """`g_grad` for a scalar output, forward + backward otherwise."""
    if b.scalar:
        _, grads = getattr(b.module, f"{b.graph.name}_grad")(*inputs.values())
        assert grads._fields == b.graph.wrt
        return grads._asdict()
    return vjp(b, inputs, dout)


def cases_for(check: str) -> list:
    """Every case of the table, marked xfail (strict) where a known bug breaks `check`."""
    assert check in CHECKS
    params = []
    for op, cases in CASES.items():
        for i, case in enumerate(cases):
            reasons = [reason for c, reason in case.xfail if c == check]
            marks = [pytest.mark.xfail(strict=True, reason=r) for r in reasons[:1]]
            params.append(pytest.param(case, id=f"{op}-{i}", marks=marks))
    return params


# ---------------------------------------------------------------------------------------------
# The checks


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_cases_or_a_reason(op):
    assert (
        op in EXEMPT or len(CASES.get(op, [])) >= 3
    ), f"op {op!r} needs at least three cases in CASES, or an entry in EXEMPT with a reason"


def test_table_names_only_registered_ops():
    assert set(CASES) <= set(OPS)
    assert set(EXEMPT) <= set(OPS)
    assert all(reason.strip() for reason in EXEMPT.values())


def _ops(nodes) -> set[str]:
    """The operations of `nodes` and of the loop bodies among them."""
    out = set()
    for n in nodes:
        out.add(n.op)
        if n.op == "loop":
            out |= _ops(n.attr("body").nodes)
    return out


def test_cases_use_their_op():
    """Each case's typed forward graph contains the op it is listed under (in a loop body,
    perhaps), or its backward does (`put`, the gradient of a position read in a loop)."""
    for op, cases in CASES.items():
        for case in cases:
            graph = built(case).graph if case.source is None else oracle.typed_graph(case.source)
            found = _ops(graph.nodes)
            if op not in found:
                found |= _ops(differentiate(canonicalize(graph)).nodes)
            assert op in found, (op, case)


@pytest.mark.parametrize("case", cases_for("forward"))
def test_forward_matches_oracle(case):
    b = built(case)
    inputs = make_inputs(case, b.graph)
    out = b.f(*inputs.values())
    want = oracle.forward(b.graph, inputs)
    assert np.shape(out) == np.shape(want)
    assert np.asarray(out).dtype == np.float64
    assert rel_error(out, want) < FORWARD_TOL


@pytest.mark.parametrize("case", cases_for("fd"))
def test_gradients_match_finite_differences(case):
    b = built(case)
    inputs = make_inputs(case, b.graph)
    dout = make_dout(case, b, inputs)
    grads = compiled_grads(b, inputs, dout)
    names = list(inputs)

    def objective(*args):
        return float(np.sum(b.f(*args) * dout))

    for name in b.graph.wrt:
        want = numeric_grad(objective, list(inputs.values()), names.index(name))
        assert rel_error(grads[name], want) < FD_TOL, name


@pytest.mark.parametrize("case", cases_for("autograd"))
def test_gradients_match_autograd(case):
    b = built(case)
    inputs = make_inputs(case, b.graph)
    dout = make_dout(case, b, inputs)
    grads = compiled_grads(b, inputs, dout)
    want = oracle.graph_grads(b.graph, inputs, dout)
    for name in b.graph.wrt:
        assert rel_error(grads[name], want[name]) < AUTOGRAD_TOL, name
    if not b.scalar:  # the VJP against autograd with a second, different dout
        dout2 = make_dout(case, b, inputs, salt="second dout")
        grads = vjp(b, inputs, dout2)
        want = oracle.graph_grads(b.graph, inputs, dout2)
        for name in b.graph.wrt:
            assert rel_error(grads[name], want[name]) < AUTOGRAD_TOL, name


@pytest.mark.parametrize("case", cases_for("pair"))
def test_forward_backward_agrees_with_grad(case):
    b = built(case)
    name = b.graph.name
    inputs = make_inputs(case, b.graph)
    if not b.scalar:
        assert not hasattr(b.module, f"{name}_grad")
        return
    value, grads = getattr(b.module, f"{name}_grad")(*inputs.values())
    out, cache = getattr(b.module, f"{name}_forward")(*inputs.values())
    assert rel_error(value, out) == 0.0
    assert rel_error(value, b.f(*inputs.values())) == 0.0
    pair = getattr(b.module, f"{name}_backward")(1.0, cache)
    assert type(pair) is type(grads)
    for field_name in b.graph.wrt:
        assert rel_error(getattr(pair, field_name), getattr(grads, field_name)) < 1e-12


def _check_grads(grads: dict, inputs: dict, dtype, what: str) -> None:
    assert set(grads) <= set(inputs)
    for name, g in grads.items():
        p = inputs[name]
        assert np.shape(g) == p.shape, f"{what}: d{name} has shape {np.shape(g)}, not {p.shape}"
        assert np.asarray(g).dtype == dtype, f"{what}: d{name} is {np.asarray(g).dtype}"


def _check_fresh(grads: dict, others: list, what: str) -> None:
    arrays = [(k, g) for k, g in grads.items() if np.ndim(g)]
    for name, g in arrays:
        assert isinstance(g, np.ndarray), f"{what}: d{name} is a {type(g).__name__}"
        assert g.flags.writeable, f"{what}: d{name} is read-only"
        for other_name, other in others:
            assert not np.shares_memory(
                g, other
            ), f"{what}: d{name} shares memory with {other_name}"
    for (k1, g1), (k2, g2) in itertools.combinations(arrays, 2):
        assert not np.shares_memory(g1, g2), f"{what}: d{k1} and d{k2} share memory"


@pytest.mark.parametrize("case", cases_for("shapes"))
def test_gradient_shapes_and_dtypes(case):
    """Each gradient has exactly its parameter's shape and dtype, from both entry points."""
    b = built(case)
    inputs = make_inputs(case, b.graph)
    dout = make_dout(case, b, inputs)
    _check_grads(vjp(b, inputs, dout), inputs, np.float64, "backward")
    if b.scalar:
        _, grads = getattr(b.module, f"{b.graph.name}_grad")(*inputs.values())
        _check_grads(grads._asdict(), inputs, np.float64, "grad")


@pytest.mark.parametrize("case", cases_for("fresh"))
def test_gradients_are_fresh_arrays(case):
    """A gradient is the caller's to keep and to write to: it is writable and shares memory with
    no input, no upstream gradient, no output and no other gradient."""
    b = built(case)
    inputs = make_inputs(case, b.graph)
    dout = make_dout(case, b, inputs)
    out, cache = getattr(b.module, f"{b.graph.name}_forward")(*inputs.values())
    grads = getattr(b.module, f"{b.graph.name}_backward")(dout, cache)._asdict()
    _check_fresh(grads, [*inputs.items(), ("out", out), ("dout", dout)], "backward")
    if b.scalar:
        value, grads = getattr(b.module, f"{b.graph.name}_grad")(*inputs.values())
        _check_fresh(grads._asdict(), [*inputs.items(), ("out", value)], "grad")


@pytest.mark.parametrize("case", cases_for("float32"))
def test_float32_stays_float32(case):
    b = built(case)
    inputs64 = make_inputs(case, b.graph)
    inputs32 = make_inputs(case, b.graph, np.float32)
    dout64 = make_dout(case, b, inputs64)
    dout32 = dout64 if b.scalar else dout64.astype(np.float32)

    out32, out64 = b.f(*inputs32.values()), b.f(*inputs64.values())
    assert np.asarray(out32).dtype == np.float32
    scale = max(1.0, float(np.max(np.abs(out64))))
    np.testing.assert_allclose(out32, out64, rtol=F32_RTOL, atol=F32_RTOL * scale)

    results = [("backward", vjp(b, inputs32, dout32), vjp(b, inputs64, dout64))]
    if b.scalar:
        results.append(("grad", compiled_grads(b, inputs32, 1.0), compiled_grads(b, inputs64, 1.0)))
        value32, _ = getattr(b.module, f"{b.graph.name}_grad")(*inputs32.values())
        assert np.asarray(value32).dtype == np.float32
    for what, grads32, grads64 in results:
        _check_grads(grads32, inputs32, np.float32, f"{what} float32")
        for name in b.graph.wrt:
            g64 = grads64[name]
            scale = max(1.0, float(np.max(np.abs(g64), initial=0.0)))
            np.testing.assert_allclose(
                grads32[name], g64, rtol=F32_RTOL, atol=F32_RTOL * scale, err_msg=name
            )


COMPARISONS = """
graph f(x: [n, m], y: [m], s: []) -> (a, b, c, d, e, g, h) {
    a = x < y
    b = x <= s
    c = y > x
    d = x >= 0
    e = x == y
    g = x != s
    h = y * 2 > x + n
}
"""


def test_comparison_forward_values():
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, (3, 4)).astype(np.float64)  # integers, so == and != see ties
    y = rng.integers(-2, 3, (4,)).astype(np.float64)
    s = np.asarray(1.0)
    module = load(COMPARISONS)
    got = module.f(x, y, s)
    want = (x < y, x <= s, y > x, x >= 0, x == y, x != s, y * 2 > x + 3)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.bool_
        np.testing.assert_array_equal(g, w)
    graph = oracle.typed_graph(COMPARISONS)
    for g, w in zip(oracle.forward(graph, {"x": x, "y": y, "s": s}), want):
        np.testing.assert_array_equal(g, w)
    assert {n.op for n in graph.nodes} >= {"lt", "le", "gt", "ge", "eq", "ne"}


def test_compared_masks_are_not_chained():
    """A comparison of two comparisons keeps its parentheses: `(x < y) == (y > x)` compares
    masks elementwise, while Python reads `x < y == (y > x)` as a chain (this was a bug)."""
    x = np.array([[1.0, -1.0], [0.5, 2.0]])
    y = np.array([0.0, 1.0])
    src = "graph f(x: [n, m], y: [m]) -> out {\n    out = (x < y) == (y > x)\n}\n"
    np.testing.assert_array_equal(load(src).f(x, y), (x < y) == (y > x))


SEVERAL = """
graph f(x: [n, m], y: [m]) -> (a, b) {
    a = x * y
    b = sum(exp(x) * y)
}
"""


def test_several_outputs_against_autograd():
    """With several outputs, dout is a tuple and the gradients add up over the outputs."""
    rng = np.random.default_rng(7)
    inputs = {"x": rng.standard_normal((3, 4)), "y": rng.standard_normal(4)}
    dout = (rng.standard_normal((3, 4)), np.asarray(0.7))
    module = load(SEVERAL)
    (a, b), cache = module.f_forward(*inputs.values())
    graph = oracle.typed_graph(SEVERAL)
    want_a, want_b = oracle.forward(graph, inputs)
    assert rel_error(a, want_a) < FORWARD_TOL and rel_error(b, want_b) < FORWARD_TOL
    grads = module.f_backward(dout, cache)
    want = oracle.graph_grads(graph, inputs, dout)
    for name in ("x", "y"):
        assert rel_error(getattr(grads, name), want[name]) < AUTOGRAD_TOL, name
        assert np.shape(getattr(grads, name)) == inputs[name].shape


def test_two_outputs_that_are_one_value_get_both_upstream_gradients():
    """`a = x * x` and `b = x * x` are one node: its gradient is the sum of both douts, not the
    last one's (a silent wrong gradient once; in second order, the HVP of two parameters whose
    gradients are one value lost a vector)."""
    module = load("graph g(x: [n]) -> (a, b) {\n    a = x * x\n    b = x * x\n}\n")
    x = np.arange(3.0)
    _, cache = module.g_forward(x)
    (dx,) = module.g_backward((np.ones(3), 2 * np.ones(3)), cache)
    np.testing.assert_allclose(dx, 3 * 2 * x)
