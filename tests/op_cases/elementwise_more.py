"""Cases for log1p, abs, sin, cos, softplus, maximum, minimum, where and clip (and sign, the
gradient of abs). Random inputs have no ties, so maximum, minimum and clip are checked away from
their kinks here; tests/test_stability.py checks the ties against PyTorch's rule."""

from __future__ import annotations

from bpc.ir import make
from tests.op_cases import IR, C, Case, _sum

CASES: dict[str, list[Case]] = {
    "log1p": [
        C("x: [n, m]", "out = log1p(x)", positive="x"),
        C("x: [n, m], b: [m]", "out = sum(log1p(x * x + b * b))"),
        C("x: [B, n, m], s: []", "out = log1p(exp(x) * s) * x", positive="s"),
        C("x: [n, 1], y: [m]", "out = log1p(x * x) * y"),
    ],
    "abs": [
        C("x: [n, m]", "out = abs(x)", away="x"),
        C("x: [n, m], b: [m]", "out = sum(abs(x) * b)", away="x"),
        C("x: [B, n, m], y: [n, 1]", "out = abs(x * y) + x", away="x y"),
        C("s: [], x: [n]", "out = sum(abs(s) * x)", away="s"),
    ],
    "sin": [
        C("x: [n, m]", "out = sin(x)"),
        C("x: [n, m], w: [m]", "out = sum(sin(x * w))"),
        C("x: [B, n, m], b: [n, 1]", "out = sin(x + b) * x"),
        C("s: [], x: [n]", "out = sin(s) * x"),
    ],
    "cos": [
        C("x: [n, m]", "out = cos(x)"),
        C("x: [n, m], w: [m]", "out = sum(cos(x * w))"),
        C("x: [B, n, m], b: [n, 1]", "out = cos(x + b) * sin(x)"),
        C("s: [], x: [n]", "out = cos(s) * x"),
    ],
    "softplus": [
        C("x: [n, m]", "out = softplus(x)"),
        C("x: [n, m], b: [m]", "out = sum(softplus(x * 3 + b))"),
        C("x: [B, n, m], y: [1, m]", "out = softplus(x - y) * y"),
        C("s: []", "out = softplus(s * s) + softplus(-s)"),
    ],
    "maximum": [
        C("a: [n, m], b: [n, m]", "out = maximum(a, b)"),
        C("x: [n, m]", "out = maximum(x, 0)", away="x"),
        C("a: [n, m], b: [m]", "out = sum(maximum(a, b) * a)"),
        C("a: [B, n, 1], b: [m]", "out = maximum(a, b)"),
        C("s: [], x: [n, m]", "out = maximum(0.5, x * s)"),
        C("a: [n, 1], b: [1, m]", "out = sum(maximum(a, b) ** 2)"),
        C("s: [], t: []", "out = maximum(s, t) * s"),
        # Was a bug: f_grad gave float32 inputs float64 gradients (a Python float, the upstream
        # gradient 1 / n, times the mask of `_ties_halved`).
        C("x: [n, m]", "out = sum(maximum(x, 0)) / n", away="x"),
        C("a: [n, m], b: [n, m]", "out = mean(maximum(a - b, b - a))"),
    ],
    "minimum": [
        C("a: [n, m], b: [n, m]", "out = minimum(a, b)"),
        C("x: [n, m]", "out = minimum(x, 0)", away="x"),
        C("a: [n, m], b: [m]", "out = sum(minimum(a, b) * a)"),
        C("a: [B, n, 1], b: [m]", "out = minimum(a, b)"),
        C("s: [], x: [n, m]", "out = minimum(x * s, -0.5)"),
        C("a: [n, 1], b: [1, m]", "out = sum(minimum(exp(a), b) ** 2)"),
        C("x: [n, m]", "out = mean(minimum(x, 0))", away="x"),
    ],
    "where": [
        C("x: [n, m]", "out = where(x > 0, x, 0.1 * x)", away="x"),
        C("x: [n, m], y: [m]", "out = where(x > y, x * y, exp(y))"),
        C("x: [B, n, m], a: [n, 1], b: []", "out = where(x > 0, a, b)"),
        C("x: [n, m], y: [n, m]", "out = sum(where(x < y, x, y) * x)"),
        C("c: [n, 1], a: [m], b: [n, m]", "out = where(c > 0, a, b) * b"),
        C("x: [n, m]", "out = where(x > 0, 1, 2) * x"),
        # Was a bug: f_backward(1.0, cache) gave float64 (a Python float dout times a mask).
        C("x: [n, m]", "out = sum(where(x > 0, x, 0))"),
    ],
    "clip": [
        C("x: [n, m]", "out = clip(x, -0.5, 0.5)"),
        C("x: [n, m], lo: [m]", "out = clip(x, lo, lo + 1)"),
        # Some random lo exceed hi: there the result is hi, which gets the gradient.
        C("x: [n, m], lo: [m], hi: [n, 1]", "out = clip(x, lo, hi)"),
        C("x: [B, n, m], s: []", "out = sum(clip(x * s, -1, 1) ** 2)"),
        C("x: [n, m], hi: []", "out = clip(x, 0, hi) * x"),
    ],
    # Made by the adjoint of abs; the language does not spell it.
    "sign": [
        IR("sign(x) * x", [("x", ("n", "m"))], lambda x: make("sign", x) * x),
        IR(
            "sum(sign(x) * y)",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: _sum(make("sign", x) * y),
        ),
        IR(
            "sign(x * y) * exp(y)",
            [("x", ("B", "n", "m")), ("y", ("n", 1))],
            lambda x, y: make("sign", x * y) * make("exp", y),
        ),
    ],
}
