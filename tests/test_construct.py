"""The built-ins that make arrays and the constants: zeros, ones, full, arange, tril, triu,
stack, pad, gelu and erf against NumPy and PyTorch's formulas, `inf` and `pi` (and a value or a
dimension of their name shadowing them), a causal mask, float32, the generated code's form, and
compile-time errors at the line and column of the mistake."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import bpc
from tests.support import assert_error_at, load, numeric_grad, rel_error


def _graph(sig: str, *lines: str, out: str = "y") -> str:
    body = "".join(f"    {line}\n" for line in lines)
    return f"graph f({sig}) -> {out} {{\n{body}}}\n"


# ---------------------------------------------------------------------------------------------
# Values against NumPy

X = np.arange(12.0).reshape(3, 4) / 7 - 0.5

VALUES = [
    ("zeros((n, m)) + x", lambda x: np.zeros((3, 4)) + x),
    ("ones(m) * x", lambda x: np.ones(4) * x),
    ("x * ones(())", lambda x: x * np.ones(())),
    ("full((n, 1), 0.25) + x", lambda x: np.full((3, 1), 0.25) + x),
    ("full((m,), n) * x", lambda x: np.full((4,), 3.0) * x),  # a size: floats all the same
    ("full((n, m), -pi) * x", lambda x: np.full((3, 4), -np.pi) * x),
    ("x * arange(m)", lambda x: x * np.arange(4)),
    ("x[:, :m - 1] * arange(m - 1)", lambda x: x[:, :3] * np.arange(3)),
    ("tril(x)", np.tril),
    ("triu(x)", np.triu),
    ("tril(x, -1)", lambda x: np.tril(x, -1)),
    ("triu(x, k=2)", lambda x: np.triu(x, k=2)),
    ("tril(x, k=m - 2)", lambda x: np.tril(x, k=2)),
    ("stack((x, 2 * x))", lambda x: np.stack((x, 2 * x))),
    ("stack((x, 2 * x), axis=1)", lambda x: np.stack((x, 2 * x), axis=1)),
    ("stack(x, x, x, axis=-1)", lambda x: np.stack((x, x, x), axis=-1)),
    ("stack((x,), axis=2)", lambda x: np.stack((x,), axis=2)),
    ("pad(x, ((0, 0), (1, 2)))", lambda x: np.pad(x, ((0, 0), (1, 2)))),
    ("pad(x, ((n, 1), (0, m)))", lambda x: np.pad(x, ((3, 1), (0, 4)))),
    ("erf(x)", special.erf),
    ("gelu(x)", lambda x: x * 0.5 * (1 + special.erf(x / math.sqrt(2)))),
    (
        'gelu(x, approximate="tanh")',
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    ),
    ("x * pi + sqrt(2 / pi)", lambda x: x * np.pi + np.sqrt(2 / np.pi)),
    ("where(x > 0, x, -inf)", lambda x: np.where(x > 0, x, -np.inf)),
    ("minimum(x, inf) + maximum(x, -inf)", lambda x: 2 * x),
]


@pytest.mark.parametrize("expr, numpy", VALUES, ids=[e for e, _ in VALUES])
def test_values_are_numpys(expr, numpy):
    module = load(_graph("x: [n, m]", f"y = {expr}"))
    got = module.f(X)
    np.testing.assert_allclose(got, numpy(X), rtol=1e-15, atol=1e-15)
    got32 = module.f(X.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, numpy(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("expr, numpy", VALUES, ids=[e for e, _ in VALUES])
def test_gradients_match_finite_differences(expr, numpy):
    if "inf" in expr and "where" in expr:
        expr = f"exp({expr})"  # a finite value for finite differences
    module = load(_graph("x: [n, m], w: []", f"y = sum(({expr}) * w)"))
    args = [X, np.asarray(1.5)]
    _, grads = module.f_grad(*args)
    for i, name in enumerate(("x", "w")):
        want = numeric_grad(lambda *a: float(module.f(*a)), args, i)
        assert rel_error(getattr(grads, name), want) < 1e-7, name


def test_arange_is_integers_and_full_of_an_integer_is_floats():
    module = load(_graph("k: int[n]", "a = arange(n)", "b = full((n,), 2)", out="(a, b)"))
    a, b = module.f(np.array([4, 5, 6]))
    assert a.dtype.kind == "i" and a.tolist() == [0, 1, 2]
    assert b.dtype == np.float64 and b.tolist() == [2.0, 2.0, 2.0]


def test_stack_of_numbers_keeps_the_graphs_dtype():
    module = load(_graph("s: [], x: [m]", "y = stack((s, 2 * s, 1.5)) * sum(x)"))
    y = module.f(np.float32(2.0), np.ones(3, np.float32))
    assert y.dtype == np.float32 and y.tolist() == [6.0, 12.0, 4.5]
    y = module.f(2.0, np.ones(3))
    assert y.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# A causal mask, as attention writes it


CAUSAL = """graph causal(q: [T, d], k: [T, d], v: [T, d]) -> out {
    s = q @ k.T / sqrt(d)
    p = softmax(where(tril(ones((T, T))) > 0, s, -inf))
    out = p @ v
}
"""


def test_a_causal_mask():
    module = load(CAUSAL)
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((5, 3)) for _ in range(3))
    s = q @ k.T / np.sqrt(3)
    s[np.triu_indices(5, 1)] = -np.inf
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert rel_error(module.causal(q, k, v), p @ v) < 1e-15
    dout = rng.standard_normal((5, 3))
    _, cache = module.causal_forward(q, k, v)
    grads = module.causal_backward(dout, cache)
    for i, name in enumerate("qkv"):
        want = numeric_grad(lambda *a: float(np.sum(module.causal(*a) * dout)), [q, k, v], i)
        assert rel_error(getattr(grads, name), want) < 1e-8, name
    # the first row sees only itself: nothing flows to later keys and values
    first = np.zeros((5, 3))
    first[0] = 1.0
    grads = module.causal_backward(first, cache)
    assert not grads.k[1:].any() and not grads.v[1:].any()


def test_the_generated_code_reads_like_numpy():
    text = bpc.compile_source(CAUSAL, "causal.bp")
    assert "np.tril(np.ones((T, T), dtype=q.dtype)) > 0" in text
    assert "np.where(" in text and "-np.inf" in text
    text = bpc.compile_source(
        _graph("a: [n, m], b: [n, m]", "y = stack((a, pad(b, ((0, 0), (1, 0)))[:, :m]), axis=1)")
    )
    assert "np.stack([a, np.pad(b, ((0, 0), (1, 0)))[:, :-1]], axis=1)" in text
    text = bpc.compile_source(_graph("x: [n]", "y = gelu(x)"))
    assert "def _erf(x):" in text and "_erf(0.7071067811865476 * x)" in text
    assert "import math" not in text  # the helper needs NumPy alone


# ---------------------------------------------------------------------------------------------
# Constants and what shadows them


def test_constants_are_numbers():
    module = load(_graph("x: [n]", "y = x * 0 + pi", "z = exp(-inf) + x * 0", out="(y, z)"))
    y, z = module.f(np.ones(2))
    assert y.tolist() == [math.pi, math.pi] and z.tolist() == [0.0, 0.0]


def test_a_parameter_value_or_dimension_shadows_a_constant():
    module = load(_graph("x: [n], pi: []", "y = x * pi"))
    assert module.f(np.ones(2), 2.0).tolist() == [2.0, 2.0]
    module = load(_graph("x: [n]", "inf = x + 1", "y = inf * 2"))
    assert module.f(np.ones(2)).tolist() == [4.0, 4.0]
    module = load(_graph("x: [pi]", "y = x * pi"))  # the dimension's size
    assert module.f(np.ones(3)).tolist() == [3.0, 3.0, 3.0]
    module = load(
        "fn scaled(a: [k], pi: []) -> out {\n    out = a * pi\n}\n"
        + _graph("x: [n]", "y = scaled(x, 2.0) * pi")
    )
    assert rel_error(module.f(np.ones(2)), [2 * math.pi] * 2) == 0.0


# ---------------------------------------------------------------------------------------------
# Errors at the mistake

ERRORS = {
    "zeros of a value": ("x: [n]", "y = zeros(x)", "x", "shape must be known at compile time"),
    "zeros negative": ("x: [n]", "y = zeros((n, -2))", "zeros", "must not be negative, and -2"),
    "zeros float size": ("x: [n]", "y = ones((n, 2.5))", "2.5", "known at compile time"),
    "full of a value": ("x: [n], s: []", "y = full((n,), s)", "full", "full: the value must be"),
    "full of a mask": ("x: [n]", "y = full((n,), true)", "full", "not the bool value"),
    "arange negative": ("x: [n]", "y = arange(n - 2 * n)", "arange", "must not be negative"),
    "tril of a vector": ("x: [n]", "y = tril(x)", "tril", "tril: x must have two axes at least"),
    "triu k": ("x: [n, m]", "y = triu(x, k=true)", "triu", "k must be an integer"),
    "stack shapes": ("a: [n], b: [m]", "y = stack((a, b))", "stack", "one shape; got [n], [m]"),
    "stack axis": ("a: [n]", "y = stack((a, a), axis=2)", "stack", "axis 2 is out of range"),
    "stack nothing": ("a: [n]", "y = stack(())", "stack", "needs at least one of 'arrays'"),
    "stack axis position": ("a: [n]", "y = stack((a, a), 1)", "1", "as in stack((a, b), axis=1)"),
    "stack axis number": ("a: [n]", "y = stack(a, a, 1)", "stack", "give the axis by keyword"),
    "pad pairs": ("x: [n, m]", "y = pad(x, (1, 1))", "pad", "as in pad(x, ((0, 0), (1, 1)))"),
    "pad one axis": ("x: [n]", "y = pad(x, 1)", "pad", "as in pad(x, ((1, 1),))"),
    "pad negative": ("x: [n]", "y = pad(x, ((0, -1),))", "pad", "widths must not be negative"),
    "gelu form": ("x: [n]", 'y = gelu(x, approximate="erf")', "gelu", 'not "erf"'),
    "gelu form type": ("x: [n]", "y = gelu(x, approximate=1)", "1", 'be "none" or "tanh"'),
    "huber delta": ("x: [n]", "y = huber(x, delta=-1.5)", "huber", "positive number, not -1.5"),
    "huber zero": ("x: [n]", "y = huber(x, 0)", "huber", "a positive number, not 0"),
    "huber value": ("x: [n], d: []", "y = huber(x, delta=d)", "d", "delta must be a number"),
    "string elsewhere": ("x: [n]", 'y = sum(x, axis="i")', '"i"', "gelu's approximate="),
    "unknown constant": ("x: [n]", "y = x * pii", "pii", "did you mean 'pi'?"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_point_at_the_mistake(name):
    assert_error_at(*ERRORS[name])
