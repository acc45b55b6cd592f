"""Cases for vdot, the optimizer's contraction for sum(a * b): built as IR, and written in bp."""

from __future__ import annotations

from bpc.ir import make
from tests.op_cases import IR, Case

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
}
