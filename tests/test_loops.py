"""Loops (`for t in range(T) { ... }`): recurrent networks over whole sequences, against
CS231n's hand-written rnn/lstm forward and backward, HIPS autograd on the oracle and central
finite differences, at several sequence lengths including T = 1 (and T = 0); what the emitted
code looks like and keeps; and the diagnostics of bad loops. tests/op_cases/loop.py runs more
loops through the whole op harness."""

from __future__ import annotations

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError, render
from tests.oracle import oracle_grads
from tests.support import load, numeric_grad, rel_error

RNN = """
graph rnn(x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] @ Wx + h @ Wh + b)
        hs[:, t] = h
    }
}
"""

LSTM = """
fn lstm_cell(x: [N, D], h: [N, H], c: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> (h2, c2) {
    a = x @ Wx + h @ Wh + b
    i = sigmoid(a[:, 0:H])
    f = sigmoid(a[:, H:2*H])
    o = sigmoid(a[:, 2*H:3*H])
    g = tanh(a[:, 3*H:4*H])
    c2 = f * c + i * g
    h2 = o * tanh(c2)
}

graph lstm(x: [N, T, D], h0: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    c = zeros((N, H))
    for t in range(T) {
        h, c = lstm_cell(x[:, t], h, c, Wx, Wh, b)
        hs[:, t] = h
    }
}
"""

GRU = """
graph gru(x: [N, T, D], h0: [N, H], Wz: [D, H], Uz: [H, H], Wr: [D, H], Ur: [H, H],
          Wn: [D, H], Un: [H, H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        z = sigmoid(x[:, t] @ Wz + h @ Uz)
        r = sigmoid(x[:, t] @ Wr + h @ Ur)
        n = tanh(x[:, t] @ Wn + (r * h) @ Un)
        h = (1 - z) * n + z * h
        hs[:, t] = h
    }
}
"""

BIRNN = """
graph birnn(x: [N, T, D], Wf: [D, H], Uf: [H, H], Wb: [D, H], Ub: [H, H]) -> out {
    hf = zeros((N, H))
    hb = zeros((N, H))
    fw = zeros((N, T, H))
    bw = zeros((N, T, H))
    for t in range(T) {
        hf = tanh(x[:, t] @ Wf + hf @ Uf)
        fw[:, t] = hf
        hb = tanh(x[:, T - 1 - t] @ Wb + hb @ Ub)
        bw[:, T - 1 - t] = hb
    }
    out = concat((fw, bw), axis=2)
}
"""

SEQ_LOSS = """
graph seq_loss(
    x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], Wy: [H, V], y: int[N, T],
) -> loss {
    h = h0
    loss = 0
    for t in range(T) {
        h = tanh(x[:, t] @ Wx + h @ Wh)
        loss = loss + sum(cross_entropy(h @ Wy, y[:, t])) / N
    }
}
"""

NESTED = """
graph nested(x: [N, T, D], W: [D, D]) -> s {
    s = 0.0
    for i in range(T) {
        v = x[:, i]
        for j in range(2) {
            v = tanh(v @ W + j)
        }
        s = s + sum(v * v)
    }
}
"""

N, D, H, V = 2, 3, 4, 5

MODELS = {
    "rnn": (RNN, lambda T: [(N, T, D), (N, H), (D, H), (H, H), (H,)]),
    "lstm": (LSTM, lambda T: [(N, T, D), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]),
    "gru": (GRU, lambda T: [(N, T, D), (N, H)] + [(D, H), (H, H)] * 3),
    "birnn": (BIRNN, lambda T: [(N, T, D), (D, H), (H, H), (D, H), (H, H)]),
    "seq_loss": (SEQ_LOSS, lambda T: [(N, T, D), (N, H), (D, H), (H, H), (H, V)]),
    "nested": (NESTED, lambda T: [(N, T, D), (D, D)]),
}
_modules: dict = {}


def _module(name: str):
    if name not in _modules:
        _modules[name] = load(MODELS[name][0])
    return _modules[name]


def _inputs(name: str, T: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    args = [rng.standard_normal(s) * 0.6 for s in MODELS[name][1](T)]
    if name == "seq_loss":
        args.append(rng.integers(0, V, (N, T)))
    return args


def _names(name: str) -> list[str]:
    from tests.oracle import typed_graph

    return [p.name for p in typed_graph(MODELS[name][0], name).params]


@pytest.mark.parametrize("T", [1, 2, 4])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_loop_gradients_match_autograd_and_finite_differences(name, T):
    m = _module(name)
    args = _inputs(name, T)
    out, cache = getattr(m, f"{name}_forward")(*args)
    dout = np.random.default_rng(1).standard_normal(np.shape(out))
    grads = getattr(m, f"{name}_backward")(dout, cache)
    floats = [i for i, a in enumerate(args) if a.dtype.kind == "f"]
    assert len(grads) == len(floats)
    inputs = dict(zip(_names(name), args))
    oracle = oracle_grads(MODELS[name][0], name, inputs, dout)
    plain = getattr(m, name)

    def objective(*a):
        return float(np.sum(plain(*a) * dout))

    for g, i, p in zip(grads, floats, _names(name)):
        assert g.shape == args[i].shape
        assert rel_error(g, oracle[p]) < 1e-9, (p, "autograd")
        assert rel_error(g, numeric_grad(objective, args, i)) < 1e-6, (p, "finite differences")


def _rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.tanh(x @ Wx + prev_h @ Wh + b)


def _cs231n_rnn(x, h0, Wx, Wh, b, dhs):
    """CS231n's rnn_forward and rnn_backward, written out as the assignment does."""
    N, T, _ = x.shape
    hs, h = np.zeros((N, T, h0.shape[1])), h0
    for t in range(T):
        h = hs[:, t] = _rnn_step_forward(x[:, t], h, Wx, Wh, b)
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dprev = np.zeros_like(h0)
    for t in reversed(range(T)):
        prev = hs[:, t - 1] if t > 0 else h0
        da = (dhs[:, t] + dprev) * (1 - hs[:, t] ** 2)
        dx[:, t], dprev = da @ Wx.T, da @ Wh.T
        dWx += x[:, t].T @ da
        dWh += prev.T @ da
        db += da.sum(axis=0)
    return hs, (dx, dprev, dWx, dWh, db)


@pytest.mark.parametrize("T", [0, 1, 3, 6])
def test_rnn_matches_cs231n_rnn_forward_and_backward(T):
    m = _module("rnn")
    args = _inputs("rnn", T)
    dhs = np.random.default_rng(2).standard_normal((N, T, H))
    hs, cache = m.rnn_forward(*args)
    want, grads = _cs231n_rnn(*args, dhs)
    assert rel_error(hs, want) < 1e-12
    for have, expected in zip(m.rnn_backward(dhs, cache), grads):
        assert rel_error(have, expected) < 1e-12


def _nbytes(arrays) -> int:
    """The bytes of the distinct memory that `arrays` hold (a view counts as its base)."""
    bases = {}
    for a in arrays:
        if isinstance(a, np.ndarray):
            base = a
            while base.base is not None and isinstance(base.base, np.ndarray):
                base = base.base
            bases[id(base)] = base.nbytes
    return sum(bases.values())


def test_the_rnn_keeps_what_cs231n_keeps_and_reads_like_it():
    """The cache holds x, h0, the weights and hs, as CS231n's does (no per-step copies), and
    the code is a loop forward and a reversed loop backward, x @ Wx computed for all t at once,
    and dWh one product after the loop, of the states each step started from."""
    m = _module("rnn")
    args = _inputs("rnn", 5)
    _, cache = m.rnn_forward(*args)
    hs = m.rnn(*args)
    assert _nbytes(cache) <= _nbytes([*args, hs])
    text = compile_source(RNN, "rnn.bp")
    forward = text[text.index("def rnn_forward") : text.index("def rnn_backward")]
    backward = text[text.index("def rnn_backward") :]
    assert "for t in range(T):" in forward
    assert forward.index("@ Wx") < forward.index("for t in range(T):")  # hoisted
    assert "for t in reversed(range(T)):" in backward
    loop = "\n".join(line for line in backward.splitlines() if line.startswith(" " * 8))
    assert "dWh" not in loop and "hs[:, t - 1]" not in loop  # (T products of [H, N] @ [N, H])
    assert "prev_hs = _shifted(h0, hs, 1)" in backward
    assert "dWh = prev_hs.reshape((N * T, H)).T @ " in backward
    assert "_steps" not in text  # nothing stacked: hs is kept anyway


def test_the_lstm_backward_reads_like_cs231n():
    text = compile_source(LSTM, "lstm.bp")
    backward = text[text.index("def lstm_backward") :]
    assert "np.pad" not in backward  # the four gates' gradients are joined, not padded and added
    assert "np.concatenate" in backward
    assert "for t in reversed(range(T)):" in backward


def test_the_forward_alone_fills_no_stack_for_the_backward():
    """`lstm` (the forward pass alone) keeps no cache, so its loop fills none of the `[T, N,
    H]` stacks of gates and cell states that `lstm_forward` fills for the backward
    (`optimize.tidy.outputs_alone`); it computes the same hs, and the carried cell state is
    worked out in one new array (`c = f * c`, then `c += i * g`)."""
    text = compile_source(LSTM, "lstm.bp")
    alone = text[text.index("def lstm(") : text.index("def lstm_forward")]
    forward = text[text.index("def lstm_forward") : text.index("def lstm_backward")]
    assert "_steps" not in alone and forward.count("_steps = np.empty") == 5
    assert "        c += lstm_cell_i * lstm_cell_g\n" in alone
    for name in MODELS:
        m, args = _module(name), _inputs(name, 3)
        out = getattr(m, f"{name}_forward")(*args)[0]
        np.testing.assert_allclose(getattr(m, name)(*args), out, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loops_keep_the_float_dtype(dtype):
    for name in ("rnn", "lstm", "seq_loss"):
        m = _module(name)
        args = [a.astype(dtype) if a.dtype.kind == "f" else a for a in _inputs(name, 3)]
        out, cache = getattr(m, f"{name}_forward")(*args)
        assert np.asarray(out).dtype == dtype
        for g in getattr(m, f"{name}_backward")(np.ones_like(out), cache):
            assert g.dtype == dtype


def test_a_carried_number_that_starts_as_an_integer_is_a_float():
    m = _module("seq_loss")
    loss, grads = m.seq_loss_grad(*_inputs("seq_loss", 3))
    assert isinstance(float(loss), float) and np.isfinite(loss)
    assert rel_error(loss, m.seq_loss(*_inputs("seq_loss", 3))) < 1e-12


RNN_SIG = "x: [N, T], h0: [N, H]"
BAD = [
    # a carried value whose shape changes
    (
        ["h = h0", "for t in range(T) {", "    h = concat((h, h), axis=1)", "}", "y = h"],
        3,
        "concat",
        "'h' is carried from one iteration to the next, so it must keep its type",
    ),
    # a body-local name used after the loop
    (
        ["for t in range(T) {", "    a = x[:, t]", "}", "y = a"],
        4,
        "a",
        "'a' is local to the loop on line 2",
    ),
    # a slot write whose position does not depend on the loop variable
    (
        ["y = zeros((N, T))", "for t in range(T) {", "    y[:, 0] = x[:, t]", "}"],
        3,
        "0]",
        "must depend on the loop variable 't'",
    ),
    # a position bpc cannot tell is each iteration's own
    (
        ["y = zeros((N, T))", "for t in range(T) {", "    y[:, t * t] = x[:, t]", "}"],
        3,
        "t * t",
        "cannot tell that each iteration writes a slot of its own",
    ),
    # a slot write outside a loop
    (["y = zeros((N, T))", "y[:, 0] = x[:, 0]"], 2, "y[:, 0]", "only a loop writes slots"),
    # a slot that does not fit
    (
        ["y = zeros((N, T))", "for t in range(T) {", "    y[:, t] = x", "}"],
        3,
        "y[:, t]",
        "the slot written has shape [N]",
    ),
    (
        ["y = x", "for t in range(0, T, 2) {", "    y = y * 2", "}"],
        2,
        "range",
        "range() takes a stop, or a start and a stop",
    ),
    (["y = x", "for t in items(T) {", "    y = y * 2", "}"], 2, "items", "not over 'items'"),
    (["y = x", "for T in range(3) {", "    y = y * 2", "}"], 2, "T in", "would hide a dimension"),
]


@pytest.mark.parametrize("lines, line, under_caret, message", BAD)
def test_bad_loops_are_errors_at_their_line_with_a_caret(lines, line, under_caret, message):
    body = "".join(f"    {text}\n" for text in lines)
    source = f"graph g({RNN_SIG}) -> y {{\n{body}}}\n"
    with pytest.raises(CompileError) as e:
        compile_source(source, "model.bp")
    first, shown, caret = render(e.value.diagnostics[0], "model.bp", source).splitlines()[:3]
    assert first.startswith(f"model.bp:{line + 1}:"), first
    assert message in first, first
    col = int(first.split(":")[2])
    assert shown[4 + col - 1 :].startswith(under_caret), (first, shown)
    assert caret == " " * (4 + col - 1) + "^"
