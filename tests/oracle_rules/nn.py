"""Oracle rules for softmax, log_softmax, cross_entropy and one_hot, from their textbook
definitions: softmax is exp(x) / sum(exp(x)), unshifted, and cross_entropy is -log of the label's
softmax probability."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from bpc.dims import Dim


def _softmax(x, axis):
    e = anp.exp(x)
    return e / anp.sum(e, axis=axis, keepdims=True)


def _one_hot(labels, classes: int, dtype=float):
    return np.eye(classes, dtype=dtype)[np.asarray(labels)]


def _cross_entropy(node, args, sizes):
    logits, labels = args
    probs = _softmax(logits, -1)
    classes = np.shape(logits)[-1]
    return -anp.log(anp.sum(probs * _one_hot(labels, classes), axis=-1))


def _one_hot_rule(node, args, sizes):
    classes = node.attr("C").subs({s: Dim.of(v) for s, v in sizes.items()}).value
    dtype = bool if node.attr("dtype") == "bool" else float
    return _one_hot(args[0], classes, dtype)


RULES = {
    "softmax": lambda node, args, sizes: _softmax(args[0], node.attr("axis")),
    "log_softmax": lambda node, args, sizes: anp.log(_softmax(args[0], node.attr("axis"))),
    "cross_entropy": _cross_entropy,
    "one_hot": _one_hot_rule,
    "check_labels": lambda node, args, sizes: args[0],  # (the labels, once checked)
}
