"""The hand-written RNN and LSTM of bench/rnn_cases.py, the reference of their benchmark, are
right: their value is the bp source's loop written plainly in NumPy, their gradients are central
finite differences of sum(hs * dhs), and the rivals (HIPS autograd, PyTorch eager and fused, JAX),
the forms of bench/rnn_forms.py and, once it compiles loops, bpc agree with them. float64, at
N, T, D, H = 2, 3, 4, 5. Nothing here is timed."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import rnn_cases  # noqa: E402  (bench/rnn_cases.py)
import rnn_forms  # noqa: E402  (bench/rnn_forms.py)

SIZE = (2, 3, 4, 5)
CASES = {"rnn": rnn_cases.CASES[0], "lstm": rnn_cases.CASES[1]}


def _plain(model, x, h0, Wx, Wh, b):
    """The bp source's loop in plain NumPy, np.tanh and all."""
    if model == "rnn":
        return rnn_cases.rnn_loop(np, x, h0, Wx, Wh, b)
    return rnn_cases.lstm_loop(np, lambda a: 1 / (1 + np.exp(-a)), x, h0, Wx, Wh, b)


def _assert_same(got, want, what):
    assert len(got) == len(want) == 6, what  # hs, dx, dh0, dWx, dWh, db
    for k, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g)
        assert g.dtype == np.float64 and g.shape == w.shape, f"{what}, result {k}"
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=f"{what}, result {k}")


@pytest.mark.parametrize("model", CASES)
def test_hand_value_is_the_plain_loop(model):
    case = CASES[model]
    args = case.inputs(SIZE)
    want = _plain(model, *args[:-1])
    np.testing.assert_allclose(case.hand(*args)[0], want, rtol=1e-12, atol=1e-14)
    # the forward alone (the LSTM's keeps no cache)
    np.testing.assert_allclose(case.hand_forward(*args[:-1])[0], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("model", CASES)
def test_hand_gradients_are_finite_differences(model):
    case = CASES[model]
    *inputs, dhs = case.inputs(SIZE)
    grads = case.hand(*inputs, dhs)[1:]

    def f():
        return np.vdot(case.hand_forward(*inputs)[0], dhs)

    eps = 1e-6
    for name, a, g in zip(("x", "h0", "Wx", "Wh", "b"), inputs, grads, strict=True):
        numeric = np.empty_like(a)
        for k in np.ndindex(a.shape):
            keep = a[k]
            a[k] = keep + eps
            up = f()
            a[k] = keep - eps
            numeric[k] = (up - f()) / (2 * eps)
            a[k] = keep
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=f"{model}: d{name}")


@pytest.mark.parametrize("system", ["autograd", "torch", "torch fused", "jax"])
@pytest.mark.parametrize("model", CASES)
def test_rival_agrees_with_hand(model, system):
    module = system.split()[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    case = CASES[model]
    args = case.inputs(SIZE)
    fn = case.rival(system, SIZE)
    got = fn(*(fn.prepare(args) if hasattr(fn, "prepare") else args))
    _assert_same(got, case.hand(*args), f"{model}: {system}")


@pytest.mark.parametrize("model", CASES)
def test_forms_agree_with_hand(model):
    case = CASES[model]
    args = case.inputs(SIZE)
    want = case.hand(*args)
    _, forms = (rnn_forms.rnn_forms if model == "rnn" else rnn_forms.lstm_forms)(SIZE)
    for name, form in forms.items():
        _assert_same(form(*args), want, f"{model}: {name}")


@pytest.mark.parametrize("model", CASES)
def test_bpc_is_left_out_until_it_compiles_the_loop(model):
    case = CASES[model]
    systems = case.systems(SIZE)
    if case.compiled(SIZE) is None:
        assert "bpc" not in systems and set(case.forwards(SIZE)) == {"hand"}
        pytest.skip("bpc cannot compile loops yet")
    args = case.inputs(SIZE)
    _assert_same(systems["bpc"](*args), case.hand(*args), f"{model}: bpc")
    forward = case.forwards(SIZE)["bpc"]
    np.testing.assert_allclose(forward(*args[:-1]), case.hand(*args)[0], rtol=1e-9, atol=1e-12)
