"""Cases for max, min and logsumexp. Random inputs have no ties; tests/test_stability.py checks
how tied elements share the gradient, and logsumexp far from 0."""

from __future__ import annotations

from tests.op_cases import C, Case


def _extremum_cases(op: str) -> list[Case]:
    return [
        C("x: [n, m]", f"out = {op}(x)"),
        C("x: [n, m]", f"out = {op}(x * x, axis=0)"),
        C("x: [B, n, m]", f"out = {op}(x, axis=-1)"),
        C("x: [B, n, m]", f"out = {op}(x, axis=(0, 2), keepdims=true) * x"),
        C("x: [B, n, m], y: [m]", f"out = sum({op}(x + y, axis=1))"),
        C("x: [B, n, m]", f"out = {op}(x, 1, true)"),
        C("s: []", f"out = {op}(s) * s"),
    ]


EXEMPT = {
    "cast_like": "made only by the adjoints of max and min (the tie count in the gradient's "
    "dtype); their cases run through it, float32 included",
}

CASES: dict[str, list[Case]] = {
    "max": _extremum_cases("max"),
    "min": _extremum_cases("min"),
    "logsumexp": [
        C("x: [n, m]", "out = logsumexp(x)"),
        C("x: [n, m]", "out = logsumexp(x, axis=1)"),
        C("x: [B, n, m]", "out = logsumexp(x, axis=(0, 2), keepdims=true) * x"),
        C("x: [B, n, m], b: [m]", "out = sum(logsumexp(x * b, axis=-1))"),
        C("x: [n, m]", "out = logsumexp(x * 50, axis=0)"),
        C("x: [n, m]", "out = x - logsumexp(x, axis=-1, keepdims=true)"),
    ],
}
