"""Oracle rules for log1p, abs, sign, sin, cos, softplus, maximum, minimum, where and clip, from
their definitions: softplus as log(1 + exp(x)) (not logaddexp), where as a blend by the mask,
clip as min(max(x, lo), hi). maximum, minimum and abs are autograd's own (the formula
(a + b + |a - b|) / 2 rounds, and a value compared with an operand of maximum must stay exact)."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.tracer import Box


def _where(mask, a, b):
    chosen = anp.asarray(mask, dtype=float)
    return _part(chosen, a) + _part(1.0 - chosen, b)


def _part(chosen, x):
    """x where `chosen` is 1, 0 where it is 0: a product, but for a constant with infinities
    (the -inf of a causal mask), where 0 * inf would be nan."""
    if not isinstance(x, Box) and not np.all(np.isfinite(x)):  # (a constant)
        return anp.where(chosen > 0, x, 0.0)
    return chosen * x


def _clip(x, lo, hi):
    return anp.minimum(anp.maximum(x, lo), hi)


RULES = {
    "log1p": lambda node, args, sizes: anp.log1p(args[0]),
    "abs": lambda node, args, sizes: anp.abs(args[0]),
    "sign": lambda node, args, sizes: anp.sign(args[0]),
    "sin": lambda node, args, sizes: anp.sin(args[0]),
    "cos": lambda node, args, sizes: anp.cos(args[0]),
    "softplus": lambda node, args, sizes: anp.log(1.0 + anp.exp(args[0])),
    "maximum": lambda node, args, sizes: anp.maximum(*args),
    "minimum": lambda node, args, sizes: anp.minimum(*args),
    "where": lambda node, args, sizes: _where(*args),
    "clip": lambda node, args, sizes: _clip(*args),
}
