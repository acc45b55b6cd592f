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
import sys
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

import bpc.ops  # noqa: F401 - fills the registry
from bpc.autodiff import differentiate
from bpc.diagnostics import Loc
from bpc.dims import Dim
from bpc.emit import Compiled, emit
from bpc.ir import OPS, Graph, Node, Param, Type, make, schedule, untyped
from bpc.optimize import optimize, seed_ones
from tests import oracle
from tests.support import load, numeric_grad, rel_error

# Different dimensions get different sizes, so a transposition bug shows up as a shape error.
SIZES = {"n": 3, "m": 4, "k": 5, "B": 2, "C": 6, "N": 2, "H": 4, "W": 5}

FD_TOL = 1e-6  # gradients vs central finite differences, float64
AUTOGRAD_TOL = 1e-9  # gradients vs autograd on the oracle, float64
FORWARD_TOL = 1e-12  # forward values vs the oracle, float64
F32_RTOL = 1e-3  # float32 results vs float64 results


# ---------------------------------------------------------------------------------------------
# The table

CHECKS = {
    "forward": "the forward value matches the oracle's",
    "fd": "the gradients match central finite differences",
    "autograd": "the gradients match autograd on the oracle",
    "pair": "g_forward + g_backward(1.0) agrees with g_grad",
    "shapes": "each gradient has its parameter's shape and dtype",
    "fresh": "each gradient is a fresh, writable array sharing no memory",
    "float32": "float32 inputs give float32 outputs and gradients",
}


@dataclass(frozen=True)
class Case:
    """One graph `f` with output `out`: bp source, or a builder of hand-made IR."""

    source: str | None = None
    build: Callable[[], Graph] | None = field(default=None, compare=False)
    label: str = ""
    positive: tuple[str, ...] = ()  # parameters drawn from [0.5, 2]
    away: tuple[str, ...] = ()  # parameters drawn with 0.5 <= |x| <= 1.5 (kinks at 0)
    sizes: tuple[tuple[str, int], ...] = ()  # overrides of SIZES
    # Known compiler bugs: (check, reason) pairs, the reason starting with "BUG:"; the checks
    # are the keys of CHECKS below.
    xfail: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.source if self.source is not None else f"<ir {self.label}>"

    def __repr__(self) -> str:
        return self.label or self.source.strip().splitlines()[-2].strip()


def C(sig: str, *lines: str, wrt: str = "", positive: str = "", away: str = "", xfail=None):
    """A case from a signature and body lines: `graph f(sig) -> out [wrt ...] { lines }`.
    `xfail` maps checks (or a tuple of checks) to the compiler bug that makes them fail."""
    head = f"graph f({sig}) -> out" + (f" wrt {wrt}" if wrt else "")
    body = "".join(f"    {line}\n" for line in lines)
    return Case(
        source=f"{head} {{\n{body}}}\n",
        positive=tuple(positive.split()),
        away=tuple(away.split()),
        xfail=_xfail(xfail),
    )


def _xfail(spec: dict | None) -> tuple[tuple[str, str], ...]:
    out = []
    for checks, reason in (spec or {}).items():
        for check in (checks,) if isinstance(checks, str) else checks:
            assert check in CHECKS, check
            out.append((check, reason))
    return tuple(out)


def _ir_graph(params: list[tuple[str, tuple]], body: Callable[..., Node]) -> Graph:
    """A typed forward graph `f`, built by hand the way `bpc.build` builds one from source."""
    loc = Loc(1, 1)
    decls, inputs = [], []
    for i, (name, dims) in enumerate(params):
        decls.append(Param(name, "float", dims, loc))
        shape = tuple(Dim.of(d) for d in dims)
        node = untyped("param", hint=name, name=name, index=i)
        inputs.append(replace(node, type=Type("float", shape), loc=loc))
    out = body(*inputs)
    out = replace(out, hint="out")
    return Graph(
        name="f",
        loc=loc,
        params=tuple(decls),
        inputs=tuple(inputs),
        output_names=("out",),
        outputs=(out,),
        wrt=tuple(name for name, _ in params),
        nodes=schedule(inputs, (out, *inputs)),
        source="",
    )


def IR(label: str, params: list[tuple[str, tuple]], body: Callable[..., Node], xfail=None) -> Case:
    return Case(build=lambda: _ir_graph(params, body), label=label, xfail=_xfail(xfail))


def _dims(*names: str) -> tuple[Dim, ...]:
    return tuple(Dim.of(d) for d in names)


def _sum(x: Node, **kw) -> Node:
    return make("sum", x, **kw)


CASES: dict[str, list[Case]] = {
    "add": [
        C("x: [n, m], y: [n, m]", "out = x + y"),
        C("x: [n, m], b: [m]", "out = sum(tanh(x + b))"),
        C("x: [n, m], s: []", "out = (x + s + 1.5) * x"),
        C("x: [1, m], y: [n, 1]", "out = x + y"),
        C("x: [B, 1, m], y: [n, 1]", "out = sum((x + y) * (x + y))"),
        C("x: [n, m]", "out = x + x + n"),
        # Was a bug: g_grad built db from np.broadcast_to(1.0, (n, m)), float64 for float32 x.
        C("x: [n, m], b: [m]", "out = sum(x + b)"),
    ],
    "sub": [
        C("x: [n, m], y: [n, m]", "out = x - y"),
        C("x: [n, m], b: [n, 1]", "out = sum(exp(x - b))"),
        C("x: [m], y: [n, m]", "out = x - y"),
        C("x: [n, m], s: []", "out = 1 - (s - x) * x"),
        C("x: [B, n, 1], y: [1, m]", "out = x - y - x"),
    ],
    "mul": [
        C("x: [n, m], y: [n, m]", "out = x * y"),
        C("x: [n, m], s: []", "out = sum(x * s * x)"),
        C("x: [1, m], y: [n, 1]", "out = x * y"),
        C("x: [m], y: [B, n, m]", "out = sum(x * y * 3)"),
        C("x: [n, m]", "out = x * x * x"),
        # Was a bug: the dimension n, a value in the backward pass, was not in the cache.
        C("x: [n, m]", "out = sum(x * n * x)"),
    ],
    "div": [
        C("x: [n, m], y: [n, m]", "out = x / y", positive="y"),
        C("x: [n, m], s: []", "out = sum(x / s)", positive="s"),
        C("x: [n, m]", "out = 1 / x", positive="x"),
        C("x: [n, m], y: [m]", "out = sum(y / (x * x + 1))"),
        C("x: [n, m], y: [n, 1]", "out = x / sqrt(m) / y", positive="y"),
        C("x: [B, n, m], y: [m]", "out = y / x / x", away="x"),
    ],
    "pow": [
        C("x: [n, m]", "out = x ** 2"),
        C("x: [n, m]", "out = sum(x ** 0.5)", positive="x"),
        C("x: [n, m]", "out = x ** -1", positive="x"),
        C("x: [n, m], b: [m]", "out = sum((x + b) ** 3)"),
        C("a: [n, m], b: [m]", "out = exp(a) ** b"),
        C("x: [n, m], s: []", "out = sum(x ** s)", positive="x"),
        C("x: [n, m]", "out = 2 ** x"),
        C("x: [n, m], s: []", "out = x ** 2 ** s", positive="x"),
        C("x: [n], y: [n]", "out = -x ** 2 + y"),
        C("a: [1, m], b: [n, 1]", "out = a ** b", positive="a"),
        C("s: [], x: [n]", "out = s ** x", positive="s"),
    ],
    "neg": [
        C("x: [n, m]", "out = -x"),
        C("x: [n, m], b: [m]", "out = sum(-(x * b))"),
        C("x: [n, m]", "out = - -x * x"),
        C("x: [n, m], s: []", "out = -s - x"),
        C("x: [n, m]", "out = x * -2 - -1 + -x ** -2", away="x"),
    ],
    "exp": [
        C("x: [n, m]", "out = exp(x)"),
        C("x: [n, m], b: [m]", "out = sum(exp(x * b))"),
        C("x: [B, n, m]", "out = exp(-x) * x"),
        C("s: []", "out = exp(s * s)"),
    ],
    "log": [
        C("x: [n, m]", "out = log(x)", positive="x"),
        C("x: [n, m]", "out = sum(log(exp(x) + 1))"),
        C("x: [n, m], s: []", "out = log(x * s)", positive="x s"),
        C("x: [m], y: [n, m]", "out = sum(log(x * x + y * y + 1))"),
    ],
    "sqrt": [
        C("x: [n, m]", "out = sqrt(x)", positive="x"),
        C("x: [n, m], b: [m]", "out = sum(sqrt(x * x + b * b + 1))"),
        C("x: [B, n, m]", "out = sqrt(exp(x)) * x"),
        C("q: [n, k], kk: [m, k]", "out = q @ kk.T / sqrt(k)"),
    ],
    "tanh": [
        C("x: [n, m]", "out = tanh(x)"),
        C("x: [n, k], w: [k, m]", "out = sum(tanh(x @ w))"),
        C("x: [n, m], b: [n, 1]", "out = tanh(x + b) * x"),
    ],
    "sigmoid": [
        C("x: [n, m]", "out = sigmoid(x)"),
        C("x: [n, m], y: [n, m]", "out = sigmoid(x) * y"),
        C("x: [B, n, m]", "s = sigmoid(x)", "out = sum(s * s)"),
        # An inlined operand and an inlined sigmoid need parentheses (a bug, fixed).
        C("x: [n, m], b: [m]", "out = sum(sigmoid(x + b))"),
        C("x: [n, m], y: [m]", "out = sum(sigmoid(x) * 2 + y)", wrt="y"),
        C("x: [n, m], b: [m]", "out = sigmoid(-x * b) * 3"),
    ],
    "relu": [
        C("x: [n, m]", "out = relu(x)", away="x"),
        C("x: [n, m], w: [m]", "out = sum(relu(x) * w)", away="x"),
        C("x: [n, m], s: []", "out = relu(x * s) + relu(-x)", away="x", positive="s"),
        C("x: [B, n, m]", "r = relu(x)", "out = sum(r * r)", away="x"),
    ],
    "matmul": [
        C("a: [n, k], b: [k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [k, m]", "out = a @ b"),
        C("a: [B, 1, n, k], b: [C, k, m]", "out = a @ b"),
        C("a: [k], b: [B, k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [k]", "out = a @ b"),
        C("a: [k], b: [k]", "out = a @ b"),
        C("a: [n, k], b: [k]", "out = a @ b"),
        C("a: [k], b: [k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [B, k, m]", "out = sum((a @ b) * (a @ b))"),
        C("a: [n, k], b: [B, k, m]", "out = a @ b"),
        C("a: [k], b: [B, C, k, m]", "out = a @ b"),
        C("a: [B, C, n, k], b: [k]", "out = a @ b"),
        C("x: [n, k]", "out = x @ x.T"),
        C("W: [n, m], x: [m]", "q = W @ x", "out = sum(q * q)"),
        C("a: [B, n, k], b: [1, k, m]", "out = a @ b"),
        C("a: [1, n, k], b: [B, k, m], c: [m]", "out = sum((a @ b) * c)"),
    ],
    "transpose": [
        C("x: [n, m]", "out = transpose(x)"),
        C("x: [B, n, m]", "out = transpose(x, (1, 0, 2))"),
        C("x: [B, n, m]", "out = transpose(x, (2, 0, 1))"),
        C("x: [B, n, m]", "out = x.T"),
        C("x: [n, m], y: [m, n]", "out = sum(x.T * y)"),
        C("x: [B, n, m]", "out = transpose(x, (-1, 0, -2))"),
        C("x: [B, C, n, m]", "out = transpose(x, (3, 1, 0, 2)) * 2"),
        C("x: [n, m], y: [m]", "out = transpose(x + y).T"),
        C("x: [B, n, m], y: [B, m, n]", "out = sum(transpose(x, (0, 2, 1)) * exp(y))"),
    ],
    "reshape": [
        C("x: [N, C, H]", "out = reshape(x, (N, C*H))"),
        C("x: [n, m]", "out = reshape(x, (m, n))"),
        C("x: [n, m]", "v = reshape(x, (n*m,))", "out = sum(v * v)"),
        C("x: [12]", "out = reshape(x, (3, 4))"),
        C("x: [n, m], b: [m]", "out = reshape(x + b, (1, n, m, 1))"),
        C("x: [N, C, H]", "out = reshape(x, (C*H*N))"),
        C("s: []", "out = reshape(s, (1, 1)) * s"),
        C("x: [N, C, H], w: [H, k]", "out = reshape(reshape(x, (N*C, H)) @ w, (N, C*k))"),
    ],
    "sum": [
        C("x: [n, m]", "out = sum(x)"),
        C("x: [n, m]", "out = sum(x * x, axis=0)"),
        C("x: [B, n, m]", "out = sum(x, axis=-1)"),
        C("x: [B, n, m]", "out = sum(x * x, axis=(0, 2))"),
        C("x: [B, n, m]", "out = sum(x, axis=1, keepdims=true) * x"),
        C("x: [B, n, m]", "out = sum(exp(x), axis=(-1, 0), keepdims=true)"),
        C("x: [n, m]", "out = sum(x, keepdims=true)"),
        C("s: []", "out = sum(s * s)"),
        C("x: [B, n, m]", "out = sum(x, axis=()) * x"),
        C("x: [B, n, m]", "out = sum(x * x, axis=(0, 1, 2))"),
    ],
    "mean": [
        C("x: [n, m]", "out = mean(x * x)"),
        C("x: [n, m]", "out = mean(x, axis=0)"),
        C("x: [B, n, m]", "out = mean(x * x, axis=-2)"),
        C("x: [B, n, m]", "out = mean(x, axis=(0, 2))"),
        C("x: [B, n, m]", "out = x - mean(x, axis=-1, keepdims=true)"),
        C("x: [B, n, m]", "out = mean(exp(x), axis=(2, 0), keepdims=true)"),
        C("x: [n, m]", "out = mean(x, keepdims=true) * x"),
        C("x: [3, m], y: [m]", "out = mean(x * y, axis=0)"),
    ],
    # Comparisons are masks, not differentiated; as a factor they stop the gradient.
    "gt": [
        C("x: [n, m]", "out = x * (x > 0)", away="x"),
        C("x: [n, m], y: [m]", "out = sum(x * (x > y) * y)"),
    ],
    "le": [C("x: [n, m], s: []", "out = (x <= s) * x * s")],
    # Operations the language cannot spell, built as IR.
    "outer": [
        IR("outer(a, b)", [("a", ("n",)), ("b", ("m",))], lambda a, b: make("outer", a, b)),
        IR(
            "sum(outer(a, b) * W)",
            [("a", ("n",)), ("b", ("m",)), ("W", ("n", "m"))],
            lambda a, b, w: _sum(make("outer", a, b) * w),
        ),
        IR(
            "outer(a, exp(a))",
            [("a", ("n",))],
            lambda a: make("outer", a, make("exp", a)),
        ),
        IR(
            "sum(outer(a, b) ** 2)",
            [("a", ("k",)), ("b", ("n",))],
            lambda a, b: _sum(make("outer", a, b) ** 2),
        ),
    ],
    "broadcast_to": [
        IR(
            "broadcast_to(x [m], [n, m]) * y",
            [("x", ("m",)), ("y", ("n", "m"))],
            lambda x, y: make("broadcast_to", x, shape=_dims("n", "m")) * y,
        ),
        IR(
            "sum(broadcast_to(x [1, m], [n, m]) * y)",
            [("x", (1, "m")), ("y", ("n", "m"))],
            lambda x, y: _sum(make("broadcast_to", x, shape=_dims("n", "m")) * y),
        ),
        IR(
            "broadcast_to(s [], [n, m]) * s - y",
            [("s", ()), ("y", ("n", "m"))],
            lambda s, y: make("broadcast_to", s, shape=_dims("n", "m")) * s - y,
        ),
        IR(
            "exp(broadcast_to(x [n, 1], [B, n, m])) + y",
            [("x", ("n", 1)), ("y", ("B", "n", "m"))],
            lambda x, y: make("exp", make("broadcast_to", x, shape=_dims("B", "n", "m"))) + y,
        ),
    ],
    "full_like": [
        IR(
            "full_like(like [n, m], v [])",
            [("like", ("n", "m")), ("v", ())],
            lambda like, v: make("full_like", like, v),
        ),
        IR(
            "sum(full_like(like [n, m], v [m]) * like)",
            [("like", ("n", "m")), ("v", ("m",))],
            lambda like, v: _sum(make("full_like", like, v) * like),
        ),
        IR(
            "full_like(like [B, n, m], v [n, 1] * v)",
            [("like", ("B", "n", "m")), ("v", ("n", 1))],
            lambda like, v: make("full_like", like, v * v),
        ),
    ],
    "copy": [
        IR("copy(x)", [("x", ("n", "m"))], lambda x: make("copy", x)),
        IR(
            "sum(copy(x * y) * x)",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: _sum(make("copy", x * y) * x),
        ),
        IR("copy(exp(s))", [("s", ())], lambda s: make("copy", make("exp", s))),
    ],
}

EXEMPT = {
    "param": "a leaf (a graph parameter): no adjoint; every case has parameters",
    "dout": "a leaf (an upstream gradient), made by autodiff; every non-scalar case feeds one",
    "const": "a leaf (a literal): no adjoint; used throughout, e.g. x ** 2, 1 - x, 2 ** x",
    "dim": "a leaf (a dimension size): no adjoint; used in x * n, x / sqrt(m), reshape sizes",
    **{
        op: "a comparison gives a boolean mask and is not differentiated; its forward values are "
        "checked in test_comparison_forward_values and masks appear in the gt/le cases"
        for op in ("lt", "le", "gt", "ge", "eq", "ne")
    },
}


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
    name = f"bpc_test_ops_ir_{next(_count)}"
    module = types.ModuleType(name)
    module.__dict__["__source__"] = text
    sys.modules[name] = module
    exec(compile(text, f"<{name}>", "exec"), module.__dict__)
    return module


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
    for p in graph.params:
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in p.dims)
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


def test_cases_use_their_op():
    """Each case's typed forward graph contains the op it is listed under."""
    for op, cases in CASES.items():
        for case in cases:
            graph = built(case).graph if case.source is None else oracle.typed_graph(case.source)
            assert op in {n.op for n in graph.nodes}, (op, case)


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
