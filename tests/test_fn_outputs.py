"""Calls of a `fn` with several outputs: `h, c = lstm_cell(...)`, and the mistakes around them."""

from __future__ import annotations

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError, render
from tests import oracle
from tests.support import load, numeric_grad, rel_error

LSTM = """
fn lstm_cell(x: [N, D], h: [N, H], c: [N, H], Wx: [D, 4, H], Wh: [H, 4, H], b: [4, H]) -> (h2, c2) {
    a = x @ reshape(Wx, (D, 4*H)) + h @ reshape(Wh, (H, 4*H)) + reshape(b, (4*H,))
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2*H])
    o = sigmoid(a[:, 2*H:3*H])
    g = tanh(a[:, 3*H:])
    c2 = f * c + i * g
    h2 = o * tanh(c2)
}

graph lstm2(x1: [N, D], x2: [N, D], h: [N, H], c: [N, H], Wx: [D, 4, H], Wh: [H, 4, H], b: [4, H]) -> loss {
    h, c = lstm_cell(x1, h, c, Wx, Wh, b)
    h, c = lstm_cell(x2, h, c, Wx, Wh, b)
    loss = sum(h * h) + 0.5 * sum(c)
}
"""


def _lstm_inputs(rng):
    N, D, H = 3, 4, 2
    shapes = [(N, D), (N, D), (N, H), (N, H), (D, 4, H), (H, 4, H), (4, H)]
    return [rng.normal(scale=0.7, size=s) for s in shapes]


def _lstm_by_hand(x1, x2, h, c, Wx, Wh, b):
    """Two steps of the same cell, written in NumPy: what the compiled graph must compute."""
    D, _, H = Wx.shape
    for x in (x1, x2):
        a = x @ Wx.reshape(D, 4 * H) + h @ Wh.reshape(H, 4 * H) + b.reshape(4 * H)
        i, f, o = (1 / (1 + np.exp(-a[:, k * H : (k + 1) * H])) for k in range(3))
        c = f * c + i * np.tanh(a[:, 3 * H :])
        h = o * np.tanh(c)
    return np.sum(h * h) + 0.5 * np.sum(c)


def test_an_lstm_cell_called_twice_matches_finite_differences_and_autograd():
    m = load(LSTM)
    rng = np.random.default_rng(7)
    args = _lstm_inputs(rng)
    value, grads = m.lstm2_grad(*args)
    assert abs(value - _lstm_by_hand(*args)) < 1e-12
    for i, g in enumerate(grads):
        assert g.shape == args[i].shape
        assert rel_error(g, numeric_grad(m.lstm2, list(args), i)) < 1e-7, grads._fields[i]
    names = [p.name for p in oracle.typed_graph(LSTM).params]
    inputs = dict(zip(names, args))
    assert abs(oracle.oracle_forward(LSTM, "lstm2", inputs) - value) < 1e-12
    for name, want in oracle.oracle_grads(LSTM, "lstm2", inputs, 1.0).items():
        assert rel_error(getattr(grads, name), want) < 1e-10, name


def test_several_outputs_of_one_call_feed_several_graph_outputs():
    m = load("""
fn moments(x: [n]) -> (mu, var) {
    mu = mean(x)
    var = mean((x - mu) ** 2)
}
graph stats(x: [n]) -> (m, v) {
    m, v = moments(x)
}
graph scaled(x: [n], s: []) -> y {
    mu, var = moments(x * s)
    y = var / (mu * mu)
}
""")
    x = np.array([1.0, 2.0, 4.0, 9.0])
    np.testing.assert_allclose(m.stats(x), (x.mean(), x.var()))
    (mu, var), cache = m.stats_forward(x)
    grads = m.stats_backward((1.0, 0.0), cache)
    np.testing.assert_allclose(grads.x, np.full(4, 0.25))
    value, grads = m.scaled_grad(x, 3.0)
    np.testing.assert_allclose(value, x.var() / x.mean() ** 2)
    assert abs(float(grads.s)) < 1e-12  # the ratio does not depend on the scale
    assert rel_error(grads.x, numeric_grad(m.scaled, [x, 3.0], 0)) < 1e-7


def test_a_fn_with_several_outputs_may_call_one():
    m = load("""
fn split(x: [n]) -> (pos, neg) {
    pos = relu(x)
    neg = relu(-x)
}
fn norms(x: [n]) -> (p, q) {
    a, b = split(x)
    p = sum(a)
    q = sum(b * b)
}
graph g(x: [n]) -> y {
    p, q = norms(x)
    y = p - q
}
""")
    x = np.array([1.5, -2.0, 0.5])
    value, grads = m.g_grad(x)
    assert value == pytest.approx(2.0 - 4.0)
    np.testing.assert_allclose(grads.x, [1.0, 4.0, 1.0])


def test_an_unused_output_of_a_call_is_a_warning_at_its_name():
    warnings = []
    src = """fn two(x: [n]) -> (a, b) {
    a = x + 1
    b = x * 2
}
graph g(x: [n]) -> y {
    p, q = two(x)
    y = sum(p)
}
"""
    compile_source(src, "m.bp", warnings=warnings)
    assert [(w.loc.line, w.loc.col, w.message) for w in warnings] == [
        (6, 8, "'q' is assigned but no output uses it")
    ]


CELL = """fn cell(x: [n], h: [n]) -> (h2, c2) {
    h2 = x + h
    c2 = x * h
}
fn one(x: [n]) -> y {
    y = x * 2
}
graph other(x: [n]) -> y {
    y = sum(x)
}
graph g(x: [n], y: [n]) -> z {
    STATEMENT
    z = sum(p)
}
"""

MISTAKES = {
    "p, q, r = cell(x, y)": (
        "12:15: error: fn 'cell' returns 2 values, but 3 names are assigned",
        "cell(x, y)",
    ),
    "p, q = one(x)": ("12:12: error: fn 'one' returns 1 value, but 2 names are assigned", "one"),
    "p = cell(x, y)": (
        "12:9: error: fn 'cell' returns 2 values, but 1 name is assigned; "
        "assign them to names: h2, c2 = cell(x, y)",
        "cell",
    ),
    "p = sum(cell(x, y) + 1)": (
        "12:13: error: fn 'cell' returns 2 values, so it cannot be part of an expression; "
        "assign them to names first: h2, c2 = cell(x, y)",
        "cell",
    ),
    "p, q = sum(x, axis=0)": (
        "12:12: error: 'sum' returns one value, but 2 names are assigned; "
        "only a call of a fn with 2 outputs can be assigned to 2 names",
        "sum",
    ),
    "p, q = x * 2 + y": (
        "12:12: error: an expression gives one value, but 2 names are assigned; "
        "only a call of a fn with 2 outputs can be assigned to 2 names",
        "x * 2",
    ),
    "p, q = (x, y)": (
        "12:12: error: a tuple cannot be unpacked; assign each name in a statement of its own",
        "(x, y)",
    ),
    "p, p = cell(x, y)": ("12:8: error: 'p' is assigned twice in one statement", "p ="),
    "p, q = other(x)": (
        "12:12: error: 'other' is a graph; only fn definitions can be called",
        "other",
    ),
}


@pytest.mark.parametrize("statement", MISTAKES)
def test_assigning_the_wrong_number_of_names_is_an_error(statement):
    src = CELL.replace("STATEMENT", statement)
    message, under_caret = MISTAKES[statement]
    with pytest.raises(CompileError) as e:
        compile_source(src, "m.bp")
    (d,) = e.value.diagnostics  # `z = sum(p)` uses a failed value: no error of its own
    first, shown, caret = render(d, "m.bp", src).splitlines()
    assert first == f"m.bp:{message}"
    assert shown[caret.index("^") :].startswith(under_caret)


def test_names_are_rebound_in_order():
    """The arguments are read before the names are bound, as in a single assignment."""
    m = load("""
fn swap(a: [n], b: [n]) -> (b2, a2) {
    b2 = b
    a2 = a
}
graph g(x: [n], y: [n]) -> z {
    x, y = swap(x, y)
    x, y = swap(x, y * 2)
    z = sum(x * 10 + y)
}
""")
    x, y = np.array([1.0]), np.array([3.0])
    assert m.g(x, y) == pytest.approx(2 * 10 + 3)  # (1, 3) -> (3, 1) -> (2, 3)
