"""Cases for erf and gelu (exact and in the tanh form), on arrays, numbers and `[]` parameters;
erf far out in its tails too, where it is +-1 in float64."""

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
}
