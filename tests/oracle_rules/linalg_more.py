"""Oracle rule for vdot: the sum of the elementwise product."""

import autograd.numpy as anp

RULES = {"vdot": lambda node, args, sizes: anp.sum(args[0] * args[1])}
