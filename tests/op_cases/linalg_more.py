"""Cases for vdot, vecdot and sumprod, the optimizer's contractions for sum(a * b) over all axes,
the last, or others (einsum("ij,ij->i"), "ij,ij->j"), built as IR (tests/op_cases/einsum.py has the einsums that become vecdot), and written in bp.
"""

from __future__ import annotations

from bpc.ir import make
from tests.op_cases import IR, Case


def _vecdot(a, b):
    return make("vecdot", a, b)


def exp(x):
    return make("exp", x)


CASES: dict[str, list[Case]] = {
    "vdot": [
        IR("vdot(a, b) [n]", [("a", ("n",)), ("b", ("n",))], lambda a, b: make("vdot", a, b)),
        IR(
            "vdot(a, exp(b)) [n, m]",
            [("a", ("n", "m")), ("b", ("n", "m"))],
            lambda a, b: make("vdot", a, make("exp", b)),
        ),
        IR(
            "vdot(a, a) * vdot(a, b) [B, n, m]",
            [("a", ("B", "n", "m")), ("b", ("B", "n", "m"))],
            lambda a, b: make("vdot", a, a) * make("vdot", a, b),
        ),
    ],
    "vecdot": [
        IR("vecdot(a, b) [n, m]", [("a", ("n", "m")), ("b", ("n", "m"))], _vecdot),
        IR(
            "vecdot(a, b) [B, n, m] and [n, m]",
            [("a", ("B", "n", "m")), ("b", ("n", "m"))],
            _vecdot,
        ),
        IR("vecdot(a, exp(a)) [n]", [("a", ("n",))], lambda a: make("vecdot", a, exp(a))),
    ],
    "sumprod": [
        IR(
            "sumprod(a, b, axis=(0,)) [n, m]",
            [("a", ("n", "m")), ("b", ("n", "m"))],
            lambda a, b: make("sumprod", a, b, axis=(0,)),
        ),
        IR(
            "sumprod(a, exp(b), axis=(0, 2)) [B, n, m]",
            [("a", ("B", "n", "m")), ("b", ("B", "n", "m"))],
            lambda a, b: make("sumprod", a, exp(b), axis=(0, 2)),
        ),
        IR(
            "sumprod(a, a, axis=(1,)) [n, m, k]",
            [("a", ("n", "m", "k"))],
            lambda a: make("sumprod", a, a, axis=(1,)),
        ),
    ],
}
