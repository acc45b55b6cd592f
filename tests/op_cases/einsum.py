"""Cases for einsum: products, batched products, transposes, reductions, outer products, three
operands, a letter summed out of one operand alone (its gradient broadcasts), an operand used
twice, a scalar operand, and spaces in the spec. Written in bp, one or two operands are
rewritten into matrix products before differentiation (`einsum_as_products`); the cases built
as IR keep the einsum, so that its own adjoint is checked on them too."""

from __future__ import annotations

from bpc.ir import make
from tests.op_cases import IR, C, Case


def _einsum(spec: str):
    return lambda *xs: make("einsum", *xs, spec=spec)


CASES: dict[str, list[Case]] = {
    "einsum": [
        C("a: [n, k], b: [k, m]", 'out = einsum("ij,jk->ik", a, b)'),
        C("a: [B, n, k], b: [B, m, k]", 'out = einsum("bik,bjk->bij", a, b)'),
        C("a: [n, m]", 'out = einsum("ij->ji", a)'),
        C("a: [n, m]", 'out = einsum("ij->", a * a)'),
        C("a: [n, m], b: [m]", 'out = einsum("ij,j->i", a, b)'),
        C("a: [n], b: [m]", 'out = einsum("i,j->ij", a, b)'),
        C("a: [n, m], b: [k]", 'out = einsum("ij,k->ik", a, b)'),
        C("a: [n, k], b: [k, m], c: [m, B]", 'out = einsum("ij,jk,kl->il", a, b, c)'),
        C("a: [n, m], b: [n, m]", 'out = einsum("ij,ij->", a, b)'),
        C(
            "q: [B, H, n, k], kk: [B, H, m, k]",
            'out = einsum("bhqd,bhkd->bhqk", q, kk) / sqrt(k)',
        ),
        C("a: [n, m]", 'out = einsum("ij,ij->i", a, a)'),
        C("a: [n, m], s: []", 'out = einsum(",ij->ji", s, a)'),
        C("a: [n, k], b: [k, m]", 'out = sum(einsum("ij, jk -> ik", a, b) ** 2)'),
        C("a: [B, n, m], b: [m]", 'out = einsum("bij->jb", a * b)'),
        C("a: [n, m], b: [m, k]", 'out = einsum("ij,jk->", exp(a), b)'),
        # rows of dot products, compiled as vecdot
        C("a: [B, n, m], b: [B, m, n]", 'out = einsum("bij,bji->bj", a, b)'),
        C("a: [B, n, m, k], b: [B, n, m, k]", 'out = einsum("bijk,bijk->bi", a, b)'),
        IR("einsum ij,jk->ik as IR", [("a", ("n", "k")), ("b", ("k", "m"))], _einsum("ij,jk->ik")),
        IR(
            "einsum bqd,bkd->bqk as IR",
            [("a", ("B", "n", "k")), ("b", ("B", "m", "k"))],
            _einsum("bqd,bkd->bqk"),
        ),
        IR("einsum ij,ij->i as IR", [("a", ("n", "m")), ("b", ("n", "m"))], _einsum("ij,ij->i")),
        IR("einsum i,j->ij as IR", [("a", ("n",)), ("b", ("m",))], _einsum("i,j->ij")),
        IR("einsum ij,k->ki as IR", [("a", ("n", "m")), ("b", ("k",))], _einsum("ij,k->ki")),
    ],
}
