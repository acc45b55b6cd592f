"""Cases for the arrays made from sizes (zeros, ones, full, arange) and the triangles (tril,
triu): nothing flows into the arrays, so each case differentiates a value they meet; a causal
mask (`where(tril(ones((T, T))) > 0, s, -inf)`) under a softmax, as attention writes it."""

from __future__ import annotations

from tests.op_cases import C, Case

CAUSAL = "softmax(where(tril(ones((T, T))) > 0, s, -inf))"

CASES: dict[str, list[Case]] = {
    "zeros": [
        C("x: [n, m]", "out = x + zeros((n, m))"),
        C("x: [n, m]", "out = x * zeros((m,)) + x ** 2"),
        C("x: [n, m]", "z = zeros((n, 1))", "out = sum((x + z) * exp(z))"),
        C("x: [B, n, m]", "out = x + zeros(())"),
    ],
    "ones": [
        C("x: [n, m]", "out = x * ones((n, m))"),
        C("x: [n, m]", "out = sum(x @ ones((m, n)))"),
        C("x: [n]", "out = ones(n) * x"),
        C("s: []", "out = s * ones((2, 3))"),
    ],
    "full": [
        C("x: [n, m]", "out = x * full((n, m), 0.5)"),
        C("x: [n, m]", "out = x + full((m,), pi)"),
        C("x: [n, m]", "out = sum(x * full((n, 1), n - 1))"),
        C(
            "x: [T, T]",
            "out = softmax(where(tril(ones((T, T))) > 0, x, full((T, T), -inf)))",
            sizes={"T": 4},
        ),
    ],
    "arange": [
        C("x: [n, m]", "out = x * arange(m)"),
        C("x: [n, m]", "out = sum(x * arange(m) * arange(m))"),
        C("x: [k, m]", "out = x[:, 1:] + arange(m - 1)"),
        C("x: [n]", "out = take(x, arange(n)) * 2"),
    ],
    "tril": [
        C("x: [n, n]", "out = tril(x)"),
        C("x: [B, n, m]", "out = tril(x, k=1) * x"),
        C("x: [n, m]", "out = sum(tril(exp(x), -1))"),
        C("x: [n, m]", "out = tril(x, k=m - 1) + tril(x, -n)"),
        C("q: [T, d], kk: [T, d]", "s = q @ kk.T", f"out = {CAUSAL}", sizes={"T": 4, "d": 3}),
    ],
    "triu": [
        C("x: [n, n]", "out = triu(x)"),
        C("x: [B, n, m]", "out = triu(x, k=-1) ** 2"),
        C("x: [n, m], y: [m, n]", "out = sum(triu(x @ y, 1) * (x @ y))"),
    ],
}
