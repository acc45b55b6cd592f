"""Cases for erf, gelu (exact and in the tanh form), mish, elu and huber, on arrays, numbers and
`[]` parameters; erf far out in its tails too, where it is +-1 in float64, mish beyond its clip,
and huber on both sides of its delta."""

from __future__ import annotations

from tests.op_cases import C, Case

CASES: dict[str, list[Case]] = {
    "erf": [
        C("x: [n, m]", "out = erf(x)"),
        C("x: [n, m], b: [m]", "out = sum(erf(x * b) * x)"),
        C("x: [B, n, m], s: []", "out = erf(x + s) * erf(s)"),
        C("s: []", "out = erf(s * s) + erf(2.5)"),
        C("x: [n, m]", "out = erf(3 * x) ** 2 + erf(x * 20)"),
    ],
    "gelu": [
        C("x: [n, m]", "out = gelu(x)"),
        C("x: [n, m], b: [m]", "out = sum(gelu(x + b) * x)"),
        C("x: [n, m]", 'out = gelu(x, approximate="tanh")'),
        C("x: [B, n, m], w: [m, k]", 'out = gelu(x @ w, approximate="none") * 2'),
        C("s: [], x: [n]", 'out = gelu(s) * x + gelu(x * 4, approximate="tanh")'),
    ],
    "elu": [
        C("x: [n, m]", "out = elu(x)"),
        C("x: [n, m], b: [m]", "out = sum(elu(x * b) * x)"),
        C("s: [], x: [n]", "out = elu(s) * x + elu(x * 300)"),  # (far out: exp(300 x) overflows)
        C("x: [B, n, m], w: [m, k]", "out = elu(x @ w) * 2"),
        C("x: [n]", "out = where(x > 0, x, exp(x) - 1)"),  # (written out: elu_written_out)
    ],
    "mish": [
        C("x: [n, m]", "out = mish(x)"),
        C("x: [n, m], b: [m]", "out = sum(mish(x * b) * x)"),
        C("s: [], x: [n]", "out = mish(s) * x + mish(x * 8)"),  # (beyond the clip at 20 too)
        C("x: [B, n, m], w: [m, k]", "out = mish(x @ w) * 2"),
        C("x: [n]", "out = x * tanh(softplus(x))"),  # (written out: mish_written_out)
        C("x: [n]", "out = tanh(log(1 + exp(x))) * x"),
    ],
    "huber": [
        C("x: [n, m]", "out = huber(x * 3)"),
        C("x: [n, m], b: [m]", "out = sum(huber(x - b, delta=0.5) * x)"),
        C("s: [], x: [n]", "out = huber(s) * x + huber(x * 4, 2.0)"),
        C("x: [B, n, m], w: [m, k]", "out = huber(x @ w, delta=1.5) * 2"),
        # (written out: huber_written_out; PyTorch's smooth L1, beta 0.5)
        C(
            "x: [n], y: [n]",
            "out = mean(where(abs(x - y) <= 1, 0.5 * (x - y)**2, abs(x - y) - 0.5))",
        ),
        C("x: [n]", "out = where(abs(3 * x) < 0.5, (3 * x)**2, abs(3 * x) - 0.25)"),
    ],
}
