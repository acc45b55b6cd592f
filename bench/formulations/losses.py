"""The two-layer net of CS231n assignment 1 (affine - ReLU - affine - softmax cross-entropy, with
L2 regularization), its loss written in the ways people write a softmax cross-entropy.

The reference is bench/cases.py's hand-written TwoLayerNet.loss: in-place updates, a log-softmax
shifted by the row maximum, the probabilities computed in the scores' own array, and the
ReLU's gradient as a mask multiplied in place.
"""

from __future__ import annotations

import numpy as np
from cases import two_layer_by_hand

from .suite import Formulation, Model


def two_layer(X, y, W1, b1, W2, b2, reg):
    """loss, dW1, db1, dW2, db2: CS231n's code, as bench/cases.py writes it."""
    return two_layer_by_hand(np, X, y, W1, b1, W2, b2, reg)


def _inputs(size, rng):
    N, D, H, C = size
    return (
        rng.standard_normal((N, D)),
        rng.integers(0, C, N),
        rng.standard_normal((D, H)) * np.sqrt(2 / D),
        0.01 * rng.standard_normal(H),
        rng.standard_normal((H, C)) * np.sqrt(2 / H),
        0.01 * rng.standard_normal(C),
        1e-3,
    )


SIG = (
    "(X: [N, D], y: int[N], W1: [D, H], b1: [H], W2: [H, C], b2: [C], reg: [])"
    " -> loss wrt W1, b1, W2, b2"
)


def _net(body: str) -> str:
    return f"graph two_layer{SIG} {{\n{body.strip(chr(10))}\n}}\n"


TWO_LAYER = Model(
    name="two-layer net loss",
    graph="two_layer",
    reference=two_layer,
    inputs=_inputs,
    dims=lambda size: dict(zip("NDHC", size)),
    sizes=[(64, 784, 128, 10), (512, 784, 512, 10)],
    smoke_sizes=[(4, 6, 5, 3)],
    wrt=(2, 3, 4, 5),
    vjp=False,
    describe=lambda size: ", ".join(map(str, size)),
    formulations=[
        Formulation(
            "mean(cross_entropy(scores, y))",
            _net("""
    h = relu(X @ W1 + b1)
    scores = h @ W2 + b2
    loss = mean(cross_entropy(scores, y)) + 0.5 * reg * (sum(W1 * W1) + sum(W2 * W2))
"""),
        ),
        Formulation(
            "-mean(take_along(log_softmax(scores), y))",
            _net("""
    h = relu(X @ W1 + b1)
    scores = h @ W2 + b2
    data_loss = -mean(take_along(log_softmax(scores, axis=1), y))
    loss = data_loss + 0.5 * reg * (sum(W1 ** 2) + sum(W2 ** 2))
"""),
        ),
        Formulation(
            "softmax written out, -log(take_along(p, y))",
            _net("""
    h = maximum(X @ W1 + b1, 0)
    scores = h @ W2 + b2
    e = exp(scores - max(scores, axis=1, keepdims=true))
    p = e / sum(e, axis=1, keepdims=true)
    loss = mean(-log(take_along(p, y))) + 0.5 * reg * sum(W1 * W1) + 0.5 * reg * sum(W2 * W2)
"""),
        ),
        Formulation(
            "logsumexp(scores) - take_along(scores, y)",
            _net("""
    h = relu(X @ W1 + b1)
    scores = h @ W2 + b2
    loss = mean(logsumexp(scores, axis=1) - take_along(scores, y))
    loss = loss + reg * 0.5 * (sum(W1 * W1) + sum(W2 * W2))
"""),
        ),
        Formulation(
            "one_hot(y, C) * log_softmax(scores)",
            _net("""
    hidden = relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    data_loss = -sum(one_hot(y, C) * log_softmax(scores, axis=-1)) / N
    loss = data_loss + 0.5 * reg * (sum(W1 * W1) + sum(W2 * W2))
"""),
        ),
        Formulation(
            "where(a > 0, a, 0), sum(cross_entropy) / N",
            _net("""
    a = X @ W1 + b1
    h = where(a > 0, a, 0)
    scores = h @ W2 + b2
    loss = sum(cross_entropy(scores, y)) / N + reg * (sum(W1 ** 2) + sum(W2 ** 2)) / 2
"""),
        ),
        Formulation(
            "logsumexp written out, max without keepdims",
            _net("""
    s = relu(X @ W1 + b1) @ W2 + b2
    m = max(s, axis=1)
    lse = log(sum(exp(s - reshape(m, (N, 1))), axis=1)) + m
    loss = mean(lse - take_along(s, y)) + 0.5 * reg * (sum(W1 * W1) + sum(W2 * W2))
"""),
        ),
    ],
)
