"""Batch normalization (training mode) and layer normalization (over the last axis): value and
gradients given the upstream gradient `dout`.

The references walk the `[N, D]` arrays as few times as we could make them: the centred `x` is
the only temporary, reused for the gradient of `x`; variances and column or row dots are
reductions without a product array (`einsum("ij,ij->j")` down columns, `np.vecdot` along rows,
`dout @ gamma` through BLAS); every constant is folded into the small `[D]` or `[N]` factors
before it touches a large array.
"""

from __future__ import annotations

import numpy as np

from .suite import Formulation, Model

EPS = 1e-5


def batchnorm(x, gamma, beta, dout):
    """out = gamma * (x - mu) / sqrt(var + eps) + beta, mu and var over the batch (axis 0);
    dx, dgamma, dbeta. 11 passes over [N, D], 2 new [N, D] arrays (out and dx)."""
    N = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.einsum("ij,ij->j", xc, xc)
    invstd = 1 / np.sqrt(var / N + EPS)
    scale = gamma * invstd
    out = xc * scale
    out += beta
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, xc) * invstd
    # dx = scale * (dout - dbeta / N - xhat * dgamma / N), xhat = xc * invstd, into xc
    xc *= (-invstd / N) * dgamma
    xc += dout
    xc -= dbeta / N
    xc *= scale
    return out, xc, dgamma, dbeta


def layernorm(x, gamma, beta, dout):
    """out = gamma * (x - mu) / sqrt(var + eps) + beta, mu and var over the features (the last
    axis); dx, dgamma, dbeta. 3 new [N, D] arrays (xhat, then dx in it; out; dout * gamma)."""
    D = x.shape[-1]
    xhat = x - x.mean(axis=-1, keepdims=True)
    invstd = 1 / np.sqrt(np.vecdot(xhat, xhat) / D + EPS)
    xhat *= invstd[:, None]
    out = xhat * gamma
    out += beta
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, xhat)
    # dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * gamma
    dxhat = dout * gamma
    s1 = (dout @ gamma) * (invstd / D)
    s2 = np.vecdot(dxhat, xhat) * (invstd / D)
    dxhat *= invstd[:, None]
    xhat *= s2[:, None]
    dxhat -= xhat
    dxhat -= s1[:, None]
    return out, dxhat, dgamma, dbeta


def _inputs(size, rng):
    N, D = size
    return (
        rng.standard_normal((N, D)) * 2 + 0.5,
        rng.standard_normal(D),
        rng.standard_normal(D),
        rng.standard_normal((N, D)),
    )


SIG = "(x: [N, D], gamma: [D], beta: [D]) -> out"

BATCHNORM = Model(
    name="batchnorm",
    graph="batchnorm",
    reference=batchnorm,
    inputs=_inputs,
    dims=lambda size: dict(zip("ND", size)),
    sizes=[(64, 128), (1024, 1024)],
    smoke_sizes=[(5, 3)],
    wrt=(0, 1, 2),
    formulations=[
        Formulation(
            "as in examples/normalization.bp",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    xc = x - mu
    var = mean(xc * xc, axis=0)
    invstd = 1 / sqrt(var + 1e-5)
    xhat = xc * invstd
    out = gamma * xhat + beta
}}
""",
        ),
        Formulation(
            "one line, (x - mu)**2",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    out = gamma * (x - mu) / sqrt(mean((x - mu)**2, axis=0) + 1e-5) + beta
}}
""",
        ),
        Formulation(
            "var = mean(x*x) - mu*mu",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    var = mean(x * x, axis=0) - mu * mu
    out = gamma * (x - mu) / sqrt(var + 1e-5) + beta
}}
""",
        ),
        Formulation(
            "var = mean((x-mu)*(x-mu)), xhat named",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    var = mean((x - mu) * (x - mu), axis=0)
    xhat = (x - mu) / sqrt(var + 1e-5)
    out = gamma * xhat + beta
}}
""",
        ),
        Formulation(
            "(var + eps) ** -0.5",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    xc = x - mu
    var = mean(xc ** 2, axis=0)
    out = xc * (var + 1e-5) ** -0.5 * gamma + beta
}}
""",
        ),
        Formulation(
            "std = (var + eps) ** 0.5",
            f"""
graph batchnorm{SIG} {{
    mu = mean(x, axis=0)
    std = (mean((x - mu) ** 2, axis=0) + 1e-5) ** 0.5
    xhat = (x - mu) / std
    out = gamma * xhat + beta
}}
""",
        ),
        Formulation(
            "sums over N, keepdims",
            f"""
graph batchnorm{SIG} {{
    mu = sum(x, axis=0, keepdims=true) / N
    xc = x - mu
    var = sum(xc * xc, axis=0, keepdims=true) / N
    out = gamma * (xc / sqrt(var + 1e-5)) + beta
}}
""",
        ),
    ],
)

LAYERNORM = Model(
    name="layernorm",
    graph="layernorm",
    reference=layernorm,
    inputs=_inputs,
    dims=lambda size: dict(zip("ND", size)),
    sizes=[(64, 128), (1024, 1024)],
    smoke_sizes=[(3, 5)],
    wrt=(0, 1, 2),
    formulations=[
        Formulation(
            "as in examples/normalization.bp",
            f"""
graph layernorm{SIG} {{
    mu = mean(x, axis=1, keepdims=true)
    xc = x - mu
    var = mean(xc * xc, axis=1, keepdims=true)
    xhat = xc / sqrt(var + 1e-5)
    out = gamma * xhat + beta
}}
""",
        ),
        Formulation(
            "one line, (x - mu)**2",
            f"""
graph layernorm{SIG} {{
    mu = mean(x, axis=-1, keepdims=true)
    out = gamma * (x - mu) / sqrt(mean((x - mu)**2, axis=-1, keepdims=true) + 1e-5) + beta
}}
""",
        ),
        Formulation(
            "var = mean(x*x) - mu*mu",
            f"""
graph layernorm{SIG} {{
    mu = mean(x, axis=-1, keepdims=true)
    var = mean(x * x, axis=-1, keepdims=true) - mu * mu
    out = gamma * (x - mu) / sqrt(var + 1e-5) + beta
}}
""",
        ),
        Formulation(
            "rstd = (var + eps) ** -0.5, xhat named",
            f"""
graph layernorm{SIG} {{
    mu = mean(x, axis=-1, keepdims=true)
    xc = x - mu
    rstd = (mean(xc * xc, axis=-1, keepdims=true) + 1e-5) ** -0.5
    xhat = xc * rstd
    out = xhat * gamma + beta
}}
""",
        ),
        Formulation(
            "no keepdims, reshape to [N, 1]",
            f"""
graph layernorm{SIG} {{
    mu = reshape(mean(x, axis=1), (N, 1))
    var = reshape(mean((x - mu) ** 2, axis=1), (N, 1))
    out = gamma * (x - mu) / sqrt(var + 1e-5) + beta
}}
""",
        ),
        Formulation(
            "sums over D",
            f"""
graph layernorm{SIG} {{
    mu = sum(x, axis=1, keepdims=true) / D
    xc = x - mu
    std = sqrt(sum(xc * xc, axis=1, keepdims=true) / D + 1e-5)
    out = gamma * (xc / std) + beta
}}
""",
        ),
        Formulation(
            "mean(x**2) - m**2, gamma * (x - m) * (v + eps) ** -0.5",
            f"""
graph layernorm{SIG} {{
    m = mean(x, axis=1, keepdims=true)
    v = mean(x ** 2, axis=1, keepdims=true) - m ** 2
    out = gamma * (x - m) * (v + 1e-5) ** -0.5 + beta
}}
""",
        ),
        Formulation(
            "gamma / sd first, (x - mu) * (gamma / sd)",
            f"""
graph layernorm{SIG} {{
    mu = mean(x, axis=1, keepdims=true)
    sd = sqrt(mean((x - mu) * (x - mu), axis=1, keepdims=true) + 1e-5)
    out = (x - mu) * (gamma / sd) + beta
}}
""",
        ),
    ],
)
