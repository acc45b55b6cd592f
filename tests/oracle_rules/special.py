"""Oracle rules for erf, gelu, mish and elu, from their definitions: erf is scipy's (through
autograd, which knows its derivative), gelu is x Phi(x) with Phi(x) = (1 + erf(x / sqrt(2))) /
2, or PyTorch's tanh form (with the coefficients of its argument as written, where a rewrite
kept them), mish x tanh(softplus(x)), elu x where x > 0 and exp(x) - 1 elsewhere (written
with exp(min(x, 0)), whose unused branch autograd differentiates without overflowing), and
huber 0.5 x**2 where |x| <= delta and delta (|x| - delta / 2) elsewhere, as a where."""

from __future__ import annotations

import math

import autograd.numpy as anp
from autograd.scipy.special import erf


def _gelu(node, args, sizes):
    (x,) = args
    if node.attr("approximate") == "tanh" and "coefficients" in node.kw:
        a, b = node.kw["coefficients"]  # (the tanh form as written with rounded constants)
        return 0.5 * x * (1.0 + anp.tanh((a * x + b * x**3) / 2))
    if node.attr("approximate") == "tanh":
        return 0.5 * x * (1.0 + anp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return x * (1.0 + erf(x / math.sqrt(2.0))) / 2.0


def _mish(node, args, sizes):
    (x,) = args
    return x * anp.tanh(anp.logaddexp(0.0, x))


def _elu(node, args, sizes):
    (x,) = args
    return anp.where(x > 0, x, anp.exp(anp.minimum(x, 0.0)) - 1.0)


def _huber(node, args, sizes):
    (x,) = args
    delta = node.attr("delta")
    return anp.where(anp.abs(x) <= delta, 0.5 * x * x, delta * (anp.abs(x) - 0.5 * delta))


RULES = {
    "elu": _elu,
    "erf": lambda node, args, sizes: erf(args[0]),
    "gelu": _gelu,
    "huber": _huber,
    "mish": _mish,
}
