"""Oracle rules for log1p, abs, sign, sin, cos, softplus, maximum, minimum, where and clip, each
from its textbook definition (not the NumPy function the compiler emits)."""

from __future__ import annotations

import autograd.numpy as anp


def _maximum(a, b):
    return (a + b + anp.abs(a - b)) / 2


def _minimum(a, b):
    return (a + b - anp.abs(a - b)) / 2


def _where(mask, a, b):
    chosen = anp.asarray(mask, dtype=float)
    return chosen * a + (1.0 - chosen) * b


def _clip(x, lo, hi):
    return _minimum(_maximum(x, lo), hi)


RULES = {
    "log1p": lambda node, args, sizes: anp.log(1.0 + args[0]),
    "abs": lambda node, args, sizes: anp.sqrt(args[0] * args[0]),
    "sign": lambda node, args, sizes: anp.sign(args[0]),
    "sin": lambda node, args, sizes: anp.sin(args[0]),
    "cos": lambda node, args, sizes: anp.cos(args[0]),
    "softplus": lambda node, args, sizes: anp.log(1.0 + anp.exp(args[0])),
    "maximum": lambda node, args, sizes: _maximum(*args),
    "minimum": lambda node, args, sizes: _minimum(*args),
    "where": lambda node, args, sizes: _where(*args),
    "clip": lambda node, args, sizes: _clip(*args),
}
