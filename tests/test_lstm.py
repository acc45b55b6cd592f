"""The LSTM of CS231n assignment 3 as people write it: the four gates' weights side by side,
`Wx: [D, 4*H]`, and the gates sliced out of `a = x @ Wx + prev_h @ Wh + b`.

`lstm_step` of examples/rnn.bp is compared, value and every gradient, with `lstm_step_forward` and
`lstm_step_backward` written by hand below the way CS231n's solutions write them, and with
central finite differences; a few time steps of a two-output `fn` (`h, c = lstm_cell(...)`) are
compared with CS231n's `lstm_forward`/`lstm_backward` loops over those hand-written steps.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.support import load, numeric_grad, rel_error

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(1, 1, 1), (2, 3, 1), (3, 4, 5), (4, 10, 7), (2, 3, 16), (0, 3, 2)]  # (N, D, H)


@pytest.fixture(scope="module")
def rnn():
    return load((ROOT / "examples" / "rnn.bp").read_text(), "bpc_lstm_rnn")


# ---------------------------------------------------------------------------------------------
# The reference, by hand, in float64.


def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step: (next_h, next_c, cache)."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """(dx, dprev_h, dprev_c, dWx, dWh, db) of one LSTM step, derived by hand."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    do = dnext_h * tanh_c
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    di, df, dg = dc * g, dc * prev_c, dc * i
    dprev_c = dc * f
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """The hidden states of every time step, [N, T, H], and the caches of the steps."""
    h, c, hs, caches = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def lstm_backward(dh, caches):
    """(dx, dh0, dc0, dWx, dWh, db) for the upstream gradient dh of every hidden state."""
    dxs, dprev_h, dprev_c = [], 0, 0
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t]
        )
        dxs.append(dx)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return np.stack(dxs[::-1], axis=1), dprev_h, dprev_c, dWx, dWh, db


def step_inputs(N, D, H, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(N, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    return [rng.normal(scale=0.8, size=s) for s in shapes]


# ---------------------------------------------------------------------------------------------
# One step: examples/rnn.bp's lstm_step.


@pytest.mark.parametrize("N, D, H", SIZES)
def test_lstm_step_matches_the_hand_written_step(rnn, N, D, H):
    args = step_inputs(N, D, H)
    (next_h, next_c), cache = rnn.lstm_step_forward(*args)
    want_h, want_c, by_hand = lstm_step_forward(*args)
    np.testing.assert_allclose(next_h, want_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(next_c, want_c, rtol=1e-12, atol=1e-14)

    rng = np.random.default_rng(1)
    dnext_h, dnext_c = rng.normal(size=(N, H)), rng.normal(size=(N, H))
    grads = rnn.lstm_step_backward((dnext_h, dnext_c), cache)
    assert grads._fields == ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    for name, got, want, arg in zip(
        grads._fields, grads, lstm_step_backward(dnext_h, dnext_c, by_hand), args, strict=True
    ):
        assert got.shape == arg.shape == want.shape, name
        assert got.dtype == np.float64, name
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"d{name}")


@pytest.mark.parametrize("N, D, H", [s for s in SIZES if 0 not in s][:4])
def test_lstm_step_gradients_match_finite_differences(rnn, N, D, H):
    args = step_inputs(N, D, H, seed=2)
    rng = np.random.default_rng(3)
    dnext_h, dnext_c = rng.normal(size=(N, H)), rng.normal(size=(N, H))

    def objective(*a):
        next_h, next_c = rnn.lstm_step(*a)
        return float(np.sum(next_h * dnext_h) + np.sum(next_c * dnext_c))

    _, cache = rnn.lstm_step_forward(*args)
    grads = rnn.lstm_step_backward((dnext_h, dnext_c), cache)
    for i, (name, got) in enumerate(zip(grads._fields, grads)):
        assert rel_error(got, numeric_grad(objective, args, i)) < 1e-8, f"d{name}"


@pytest.mark.parametrize(
    "which, shape, axis",
    [("Wx", (3, 4 * 5 + 2), 1), ("Wh", (5, 4 * 5 - 4), 1), ("b", (4 * 5 + 1,), 0)],
)
def test_weights_that_are_not_4h_wide_are_refused(rnn, which, shape, axis):
    args = step_inputs(2, 3, 5)
    names = ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]
    args[names.index(which)] = np.ones(shape)
    message = (
        rf"lstm_step: {which} has shape {re.escape(str(shape))}, "
        rf"but its axis {axis} is 4\*H, which is 20"
    )
    for entry in (rnn.lstm_step, rnn.lstm_step_forward):
        with pytest.raises(ValueError, match=message):
            entry(*args)


def test_the_hidden_size_is_read_off_prev_h(rnn):
    """H comes from prev_h: weights of an LSTM with another hidden size, each 4 of its H wide,
    are refused at the first of them."""
    x, prev_h, prev_c, Wx, Wh, b = step_inputs(2, 3, 5)
    message = r"Wx has shape \(3, 16\), but its axis 1 is 4\*H, which is 20 with H = 5 from prev_h"
    with pytest.raises(ValueError, match=message):
        rnn.lstm_step(x, prev_h, prev_c, Wx[:, :16], Wh[:4, :16], b[:16])


# ---------------------------------------------------------------------------------------------
# Three time steps of one cell, a fn with two outputs.

LSTM3 = """
fn lstm_cell(x: [N, D], h: [N, H], c: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> (next_h, next_c) {
    a = x @ Wx + h @ Wh + b
    i = sigmoid(a[:, 0:H])
    f = sigmoid(a[:, H:2*H])
    o = sigmoid(a[:, 2*H:3*H])
    g = tanh(a[:, 3*H:4*H])
    next_c = f * c + i * g
    next_h = o * tanh(next_c)
}

# CS231n's lstm_forward for T = 3: the hidden state of every step, [N, T, H].
graph lstm3(x: [N, 3, D], h0: [N, H], c0: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> h {
    h1, c = lstm_cell(x[:, 0], h0, c0, Wx, Wh, b)
    h2, c = lstm_cell(x[:, 1], h1, c, Wx, Wh, b)
    h3, c = lstm_cell(x[:, 2], h2, c, Wx, Wh, b)
    h = concat(reshape(h1, (N, 1, H)), reshape(h2, (N, 1, H)), reshape(h3, (N, 1, H)), axis=1)
}
"""


def sequence_inputs(N, D, H, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(N, 3, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    return [rng.normal(scale=0.8, size=s) for s in shapes]


@pytest.fixture(scope="module")
def lstm3():
    return load(LSTM3, "bpc_lstm3")


@pytest.mark.parametrize("N, D, H", [(2, 3, 4), (3, 1, 2), (1, 5, 3)])
def test_three_steps_match_the_hand_written_loops(lstm3, N, D, H):
    args = sequence_inputs(N, D, H)
    h, cache = lstm3.lstm3_forward(*args)
    want, caches = lstm_forward(*args)
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=1e-14)

    dh = np.random.default_rng(4).normal(size=h.shape)
    grads = lstm3.lstm3_backward(dh, cache)
    for name, got, want_grad in zip(grads._fields, grads, lstm_backward(dh, caches), strict=True):
        np.testing.assert_allclose(got, want_grad, rtol=1e-10, atol=1e-12, err_msg=f"d{name}")


def test_three_steps_match_finite_differences(lstm3):
    args = sequence_inputs(2, 3, 2, seed=5)
    dh = np.random.default_rng(6).normal(size=(2, 3, 2))
    _, cache = lstm3.lstm3_forward(*args)
    grads = lstm3.lstm3_backward(dh, cache)
    for i, (name, got) in enumerate(zip(grads._fields, grads)):
        expected = numeric_grad(lambda *a: float(np.sum(lstm3.lstm3(*a) * dh)), args, i)
        assert rel_error(got, expected) < 1e-8, f"d{name}"
