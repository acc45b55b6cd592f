"""Scaled dot-product attention, one head: out = softmax(q k^T / sqrt(d)) v and the gradients of
sum(out * dout).

The reference is bench/cases.py's hand-written attention: the scale applied to `q` (`[S, d]`)
rather than to the scores (`[S, T]`) and reused for `dk`, the softmax computed in the scores'
own array, and the softmax backward's row sums `rowsum(p * dp)` taken as `rowsum(dout * out)`
over `[S, m]`, a row dot (`np.vecdot`).
"""

from __future__ import annotations

import numpy as np

from .suite import Formulation, Model


def attention(q, k, v, dout):
    """out, dq, dk, dv."""
    scale = q.shape[1] ** -0.5  # a Python float: float32 stays float32
    qs = q * scale
    p = qs @ k.T
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    out = p @ v
    dv = p.T @ dout
    dp = dout @ v.T
    dp -= np.vecdot(dout, out)[:, None]
    dp *= p
    dq = dp @ k
    dq *= scale
    dk = dp.T @ qs
    return out, dq, dk, dv


def _inputs(size, rng):
    S, d = size
    return tuple(rng.standard_normal((S, d)) for _ in range(4))  # q, k, v, dout


SIG = "(q: [S, d], k: [T, d], v: [T, m]) -> out"


def _graph(body: str) -> str:
    return f"graph attention{SIG} {{\n{body.strip(chr(10))}\n}}\n"


ATTENTION = Model(
    name="attention",
    graph="attention",
    reference=attention,
    inputs=_inputs,
    dims=lambda size: {"S": size[0], "T": size[0], "d": size[1], "m": size[1]},
    sizes=[(32, 16), (512, 64)],
    smoke_sizes=[(4, 3)],
    wrt=(0, 1, 2),
    describe=lambda size: "S x d = {} x {}".format(*size),
    formulations=[
        Formulation(
            "softmax(q @ k.T / sqrt(d)) @ v",
            _graph("""
    weights = softmax(q @ k.T / sqrt(d), axis=-1)
    out = weights @ v
"""),
        ),
        Formulation(
            "softmax written out",
            _graph("""
    s = q @ k.T / sqrt(d)
    e = exp(s - max(s, axis=-1, keepdims=true))
    p = e / sum(e, axis=-1, keepdims=true)
    out = p @ v
"""),
        ),
        Formulation(
            "einsum, softmax()",
            _graph("""
    scores = einsum("sd,td->st", q, k) / sqrt(d)
    weights = softmax(scores, axis=-1)
    out = einsum("st,tm->sm", weights, v)
"""),
        ),
        Formulation(
            "einsum, softmax written out",
            _graph("""
    s = einsum("sd,td->st", q, k) * d ** -0.5
    e = exp(s - max(s, axis=1, keepdims=true))
    out = einsum("st,tm->sm", e / sum(e, axis=1, keepdims=true), v)
"""),
        ),
        Formulation(
            "q scaled first, transpose(k)",
            _graph("""
    p = softmax((q / sqrt(d)) @ transpose(k), axis=1)
    out = p @ v
"""),
        ),
        Formulation(
            "exp(s - logsumexp(s))",
            _graph("""
    s = q @ k.T / sqrt(d)
    p = exp(s - logsumexp(s, axis=-1, keepdims=true))
    out = p @ v
"""),
        ),
        Formulation(
            "e * (1 / sum(e)), d ** -0.5",
            _graph("""
    s = (q @ transpose(k)) * d ** -0.5
    e = exp(s - max(s, axis=-1, keepdims=true))
    out = (e * (1 / sum(e, axis=-1, keepdims=true))) @ v
"""),
        ),
        Formulation(
            "(e @ v) / sum(e), normalized after the product",
            _graph("""
    s = q @ k.T / sqrt(d)
    e = exp(s - max(s, axis=-1, keepdims=true))
    out = (e @ v) / sum(e, axis=-1, keepdims=true)
"""),
        ),
        Formulation(
            "exp(s - logsumexp(s)), the scores written twice",
            _graph("""
    w = exp(q @ k.T / sqrt(d) - logsumexp(q @ k.T / sqrt(d), axis=-1, keepdims=true))
    out = w @ v
"""),
        ),
    ],
)
