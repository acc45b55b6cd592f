"""Oracle rules for erf, from its definition: scipy's (through autograd, which knows its
derivative)."""

from __future__ import annotations

from autograd.scipy.special import erf

RULES = {
    "erf": lambda node, args, sizes: erf(args[0]),
}
