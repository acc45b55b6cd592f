"""Cases for softmax, log_softmax, cross_entropy and one_hot: single and batched examples,
classes on the last or another axis, labels as int parameters."""

from __future__ import annotations

from tests.op_cases import C, Case

CASES: dict[str, list[Case]] = {
    "softmax": [
        C("x: [n, m]", "out = softmax(x)"),
        C("x: [n, m]", "out = softmax(x, axis=0)"),
        C("x: [B, n, m], w: [m]", "out = sum(softmax(x * w) * w)"),
        C("x: [B, n, m]", "out = softmax(x, axis=1) * x"),
        C("x: [m]", "out = softmax(x)"),
        C("x: [n, m], b: [n, 1]", "p = softmax(x + b)", "out = sum(p * log(p))"),
    ],
    "log_softmax": [
        C("x: [n, m]", "out = log_softmax(x)"),
        C("x: [n, m]", "out = log_softmax(x, axis=0)"),
        C("x: [B, n, m], w: [m]", "out = sum(log_softmax(x * w) * w)"),
        C("x: [B, n, m]", "out = log_softmax(x, axis=-2) * x"),
        C("x: [m]", "out = log_softmax(x * 20)"),
    ],
    "cross_entropy": [
        C("x: [n, C], y: int[n]", "out = cross_entropy(x, y)", ints="y:C"),
        C("x: [n, C], y: int[n]", "out = mean(cross_entropy(x, y))", ints="y:C"),
        C("x: [B, n, C], y: int[B, n]", "out = cross_entropy(x, y)", ints="y:C"),
        C("x: [C], y: int[]", "out = cross_entropy(x, y)", ints="y:C"),
        C(
            "h: [n, k], w: [k, C], b: [C], y: int[n]",
            "out = sum(cross_entropy(h @ w + b, y))",
            ints="y:C",
        ),
        C("x: [n, C], y: int[n], s: []", "out = cross_entropy(x * s, y) * s", ints="y:C"),
        # The loss and the probabilities together share the shifted logits.
        C(
            "x: [n, C], y: int[n]",
            "out = mean(cross_entropy(x, y)) + sum(softmax(x) * x)",
            ints="y:C",
        ),
    ],
    "one_hot": [
        C("x: [n, C], y: int[n]", "out = one_hot(y, C) * x", ints="y:C"),
        C("x: [B, n, 4], y: int[B, n]", "out = sum(one_hot(y, 4) * exp(x))", ints="y:4"),
        C("x: [C], y: int[]", "out = sum(one_hot(y, C) * x)", ints="y:C"),
        C("x: [n, C], y: int[n]", "out = sum((x - one_hot(y, C)) ** 2)", ints="y:C"),
    ],
}

EXEMPT = {
    "check_labels": "integers, never differentiated: cross_entropy's labels, checked at run time; "
    "every cross_entropy case runs it, and tests/regressions/test_op_findings.py checks its error",
}
