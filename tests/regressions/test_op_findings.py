"""The findings of the audit of the operations (issue 10), one test or more each, with the
neighbours of each finding that had the same bug. Gradients are checked against central finite
differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import load, numeric_grad, rel_error


def _check_grads(module, args: list, name: str = "f", wrt: list[int] | None = None) -> None:
    """The fused gradient of a scalar graph against finite differences of its forward pass."""
    value, grads = getattr(module, f"{name}_grad")(*args)
    f = getattr(module, name)
    assert rel_error(value, f(*args)) < 1e-12
    for i, grad in zip(wrt if wrt is not None else range(len(args)), grads):
        assert rel_error(grad, numeric_grad(f, args, i)) < 1e-6, (i, grad)


# ---------------------------------------------------------------------------------------------
# 1. take with a 0-d index is NumPy's basic indexing, a view: nothing may be written into it


TAKE_ROWS = "graph f(W: [n, d], i: int[]) -> out {\n    out = take(W, i) - take(W, 2 - i)\n}\n"


@pytest.mark.parametrize("i", [0, np.int64(0), np.array(1)])
def test_take_with_a_0d_index_leaves_the_callers_array_alone(i):
    m = load(TAKE_ROWS)
    W = np.arange(12.0).reshape(3, 4)
    kept = W.copy()
    for fn in (m.f, lambda *a: m.f_forward(*a)[0]):
        out = fn(W, i)
        np.testing.assert_array_equal(W, kept)
        np.testing.assert_array_equal(out, kept[int(i)] - kept[2 - int(i)])


@pytest.mark.parametrize(
    "body",
    [
        # the forward worked out exp(h) in h's array, a view of W, which the backward reads
        "h = take(W, i)\n    out = sum(exp(h) * 2) + sum(W * W)",
        "h = take(W, i, axis=1)\n    out = sum(exp(h) * 2) + sum(W * W)",
        "h = take(W, i)\n    g = take(W, 0)\n    out = sum(tanh(h + g) * h) + sum(W * W)",
    ],
)
def test_gradients_through_a_take_with_a_0d_index(body):
    m = load(f"graph f(W: [n, d], i: int[]) -> out wrt W {{\n    {body}\n}}\n")
    W = np.random.default_rng(0).normal(size=(3, 4))
    kept = W.copy()
    for i in (0, np.int64(2), -1):
        m.f(W, i)
        m.f_forward(W, i)
        np.testing.assert_array_equal(W, kept)
        value, (dW,) = m.f_grad(W, i)
        np.testing.assert_array_equal(W, kept)
        assert rel_error(dW, numeric_grad(m.f, [W, i], 0)) < 1e-6
