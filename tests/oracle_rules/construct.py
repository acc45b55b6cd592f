"""Oracle rules for zeros, ones, full, arange, tril and triu, from their definitions: tril and
triu keep the elements whose column minus row is at most (at least) k, by a mask of positions."""

from __future__ import annotations

import numpy as np

from bpc.dims import Dim


def _int(d, sizes) -> int:
    return Dim.of(d).subs({s: Dim.of(v) for s, v in sizes.items()}).value


def _shape(node, sizes) -> tuple[int, ...]:
    return tuple(_int(d, sizes) for d in node.attr("shape"))


def _triangle(lower: bool):
    def rule(node, args, sizes):
        (x,) = args
        rows, cols = np.shape(x)[-2:]
        offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]  # column - row
        k = _int(node.attr("k"), sizes)
        return x * (offset <= k if lower else offset >= k)

    return rule


RULES = {
    "zeros": lambda node, args, sizes: np.zeros(_shape(node, sizes)),
    "ones": lambda node, args, sizes: np.ones(_shape(node, sizes)),
    "full": lambda node, args, sizes: np.ones(_shape(node, sizes)) * float(args[0]),
    "arange": lambda node, args, sizes: np.array(range(_int(node.attr("n"), sizes))),
    "tril": _triangle(lower=True),
    "triu": _triangle(lower=False),
}
