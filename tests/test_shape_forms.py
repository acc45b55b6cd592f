"""Shapes as people write them (issue 12): each form of parameter type, slice, stride and reshape
that depends on the sizes, compiled and checked against the autograd oracle (tests/oracle.py) and
central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from tests import oracle
from tests.support import load, numeric_grad, rel_error

FORMS = {
    "lstm weights as CS231n declares them": (
        "graph g(x: [N, D], h: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> loss {\n"
        "    a = x @ Wx + h @ Wh + b\n"
        "    gates = sigmoid(a[:, 0:3*H])\n"
        "    loss = sum(gates[:, 0:H] * tanh(a[:, 3*H:4*H]))\n"
        "}\n",
        {"N": 3, "D": 4, "H": 2},
    ),
    "a weight for a concatenation": (
        "graph g(a: [N, P], b: [N, Q], W: [P + Q, K]) -> loss {\n"
        "    loss = sum(tanh(concat(a, b, axis=1) @ W))\n"
        "}\n",
        {"N": 2, "P": 3, "Q": 2, "K": 4},
    ),
    "a weight for a flattened input": (
        "graph g(x: [N, C, H, W], w: [C*H*W, K]) -> loss {\n"
        "    loss = sum(tanh(reshape(x, (N, C*H*W)) @ w))\n"
        "}\n",
        {"N": 2, "C": 2, "H": 3, "W": 2, "K": 3},
    ),
    "2x2 pooling by reshape": (
        "graph g(x: [N, C, 2*Hp, 2*Wp]) -> loss {\n"
        "    p = max(reshape(x, (N, C, Hp, 2, Wp, 2)), axis=(3, 5))\n"
        "    loss = sum(p * p)\n"
        "}\n",
        {"N": 2, "C": 2, "Hp": 2, "Wp": 3},
    ),
    "pooling by halves of a named size": (
        "graph g(x: [N, H, W]) -> loss {\n"
        "    loss = sum(mean(reshape(x, (N, H / 2, 2, W / 2, 2)), axis=(2, 4)) ** 2)\n"
        "}\n",
        {"N": 2, "H": 4, "W": 6},
    ),
    "group norm's C / G": (
        "graph g(x: [N, C, L], G: [K]) -> loss {\n"
        "    y = reshape(x, (N, K, C / K, L))\n"
        "    mu = mean(y, axis=(2, 3), keepdims=true)\n"
        "    loss = sum(((y - mu) ** 2) * sum(G))\n"
        "}\n",
        {"N": 2, "C": 6, "L": 2, "K": 3},
    ),
    "one less": (
        "graph g(x: [n], d: [n - 1]) -> loss {\n"
        "    loss = sum((x[1:] - x[:-1] - d) ** 2)\n"
        "}\n",
        {"n": 5},
    ),
    "a slice bounded by a size that may not fit": (
        "graph g(x: [T], w: [3]) -> loss {\n    loss = sum(tanh(x[1:4] * w))\n}\n",
        {"T": 6},
    ),
    "a slice by another dimension": (
        "graph g(a: [N, G], h: [H]) -> loss {\n    loss = sum(tanh(a[:, 0:H] * h))\n}\n",
        {"N": 2, "G": 5, "H": 3},
    ),
    "every other element": (
        "graph g(x: [n], y: [(n + 1)//2]) -> loss {\n    loss = sum(tanh(x[::2] * y))\n}\n",
        {"n": 7},
    ),
    "floor division of sizes in a body": (
        "graph g(x: [n]) -> loss {\n"
        "    h = reshape(x[::2], ((n + 1) // 2, 1))\n"
        "    loss = sum(tanh(x[n // 2:])) * (n // 2) + sum(h * h)\n"
        "}\n",
        {"n": 7},
    ),
    "every third element, backwards": (
        "graph g(x: [n, m]) -> loss {\n    loss = sum(exp(x[::-3, 1::2]))\n}\n",
        {"n": 7, "m": 5},
    ),
}


def _inputs(src: str, sizes: dict[str, int], rng) -> dict[str, np.ndarray]:
    graph = oracle.typed_graph(src)
    return {
        p.name: rng.normal(size=tuple(int(d.evaluate(sizes)) for d in p.dims)) for p in graph.params
    }


@pytest.mark.parametrize("name", FORMS)
def test_a_form_matches_the_oracle_and_finite_differences(name):
    src, sizes = FORMS[name]
    inputs = _inputs(src, sizes, np.random.default_rng(len(name)))
    args = list(inputs.values())
    m = load(src)
    value, grads = m.g_grad(*args)
    assert abs(value - oracle.oracle_forward(src, "g", inputs)) < 1e-10
    for p, want in oracle.oracle_grads(src, "g", inputs, 1.0).items():
        got = getattr(grads, p)
        assert got.shape == inputs[p].shape
        assert rel_error(got, want) < 1e-9, p
    for i, p in enumerate(inputs):
        assert rel_error(getattr(grads, p), numeric_grad(m.g, list(args), i)) < 1e-6, p


def test_bool_masks_are_parameters():
    src = "graph g(x: [n], keep: bool[n], p: []) -> loss {\n"
    src += "    loss = sum(where(keep, x / p, 0) ** 2)\n}\n"
    m = load(src)
    x, keep = np.array([1.0, 2.0, 3.0]), np.array([True, False, True])
    value, grads = m.g_grad(x, keep, 0.5)
    assert value == pytest.approx(4 * (1 + 9))
    np.testing.assert_allclose(grads.x, [8 * 1, 0, 8 * 3])
    assert m.g(x, np.ones(3, bool), 1.0) == pytest.approx(14)
    with pytest.raises(ValueError, match="keep must hold booleans, got int64"):
        m.g(x, np.ones(3, np.int64), 1.0)
