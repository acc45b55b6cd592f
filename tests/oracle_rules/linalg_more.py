"""Oracle rules for vdot, vecdot and sumprod: the sum of the elementwise product, over every axis,
the last, or the node's axes."""

import autograd.numpy as anp

RULES = {
    "vdot": lambda node, args, sizes: anp.sum(args[0] * args[1]),
    "vecdot": lambda node, args, sizes: anp.sum(args[0] * args[1], axis=-1),
    "sumprod": lambda node, args, sizes: anp.sum(args[0] * args[1], axis=node.attr("axis")),
}
