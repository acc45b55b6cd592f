"""Spellings of models that bench/formulations/ does not time, each against a plain expert NumPy
reference: the check, in the suite's harness, that the rules tuned on the suite carry to code
they were not tuned on (MSE, L1, tanh, softsign, ELU; then RMSNorm, CS231n's multiclass SVM
loss, log-sigmoid, sigmoid, hardtanh, L2 normalization and the hinge loss, written after the
first ones were met). Its figures are not the suite's: the losses' small calls take 4-10 us by
hand, where bpc's fixed costs a call (argument checks, the cache, the gradients' NamedTuple)
are 1-2 us. docs/performance.md's notes quote its runs.

    python bench/held_out.py [--repeats 5] [--only softsign] [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
from formulations.chains import _activation, _loss
from formulations.suite import Formulation, Model, run_suite, summary, table
from run import run_case


def mse(x, y):
    """loss = mean((x - y)**2); dx = 2 (x - y) / n, in the difference's array."""
    n = x.shape[0]
    d = x - y
    loss = d.dot(d) / n
    d *= 2 / n
    return loss, d


def l1(x, y):
    """loss = mean(|x - y|) as the dot of the sign with the difference; dx = sign(x - y) / n."""
    n = x.shape[0]
    d = x - y
    s = np.sign(d)
    loss = s.dot(d) / n
    s *= 1 / n
    return loss, s


def tanh(x, dout):
    """out = tanh(x); dx = dout (1 - out**2)."""
    out = np.tanh(x)
    dx = out * out
    np.subtract(1, dx, out=dx)
    dx *= dout
    return out, dx


def softsign(x, dout):
    """out = x / t for t = 1 + |x|; dx = dout / t**2, t squared in its array."""
    t = np.abs(x)
    t += 1
    out = x / t
    np.multiply(t, t, out=t)
    np.divide(dout, t, out=t)
    return out, t


def elu(x, dout):
    """out = x where x > 0, expm1(x) elsewhere; dx = dout exp(min(x, 0)), from e = expm1."""
    e = np.minimum(x, 0)
    np.expm1(e, out=e)
    out = np.maximum(x, e)  # (x > 0: x, which is above e; else e, which is at least x)
    e += 1
    e *= dout
    return out, e


def rmsnorm(x, g, dout, eps=1e-6):
    """out = g x r for r = 1 / sqrt(mean(x^2) + eps) along rows; dx = r (dxhat - xhat
    mean(dxhat xhat)) for dxhat = dout g and xhat = x r, worked out in dxhat's array."""
    r = 1 / np.sqrt(np.vecdot(x, x) / x.shape[-1] + eps)
    xhat = x * r[:, None]
    out = xhat * g
    dg = np.einsum("ij,ij->j", dout, xhat)
    dx = dout * g
    xhat *= (np.vecdot(dx, xhat) / x.shape[-1])[:, None]
    dx -= xhat
    dx *= r[:, None]
    return out, dx, dg


def svm(s, y):
    """CS231n's multiclass SVM loss, the margins max(0, s - s_y + 1) but the labels' own, summed
    over the batch's mean; ds: 1 / N at each positive margin, minus their count at the label."""
    N = s.shape[0]
    rows = np.arange(N)
    m = s - s[rows, y][:, None]
    m += 1
    np.maximum(m, 0, out=m)
    m[rows, y] = 0
    loss = m.sum() / N
    ds = (m > 0).astype(s.dtype)
    ds[rows, y] = -ds.sum(axis=1)
    ds /= N
    return loss, ds


def log_sigmoid(x, dout):
    """out = min(x, 0) - log1p(e) for e = exp(-|x|); dx = dout sigmoid(-x), which is 0.5 -
    copysign(1 / (1 + e) - 0.5, x)."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    out = np.log1p(e)
    np.subtract(np.minimum(x, 0), out, out=out)
    e += 1
    np.divide(1, e, out=e)
    e -= 0.5
    np.copysign(e, x, out=e)
    np.subtract(0.5, e, out=e)
    e *= dout
    return out, e


def sigmoid(x, dout):
    """out = 1 / (1 + exp(-x)); dx = dout out (1 - out)."""
    out = np.negative(x)
    np.exp(out, out=out)
    out += 1
    np.divide(1, out, out=out)
    dx = 1 - out
    dx *= out
    dx *= dout
    return out, dx


def hardtanh(x, dout):
    """out = clip(x, -1, 1); dx = dout where -1 <= x <= 1 (torch.clamp's gradient on the
    bounds), the mask made once in bytes."""
    return np.clip(x, -1, 1), dout * ((x >= -1) & (x <= 1))


def hardtanh_ties_halved(x, dout):
    """min(max(x, -1), 1): clip's value, and the gradient of a minimum and a maximum, which
    split a tie (torch.maximum's rule): half of dout where x is -1 or 1. The mask of clip,
    then the ties halved where there are any."""
    dx = dout * ((x >= -1) & (x <= 1))
    ties = np.abs(x) == 1
    if ties.any():
        dx[ties] *= 0.5
    return np.clip(x, -1, 1), dx


def l2_normalize(x, dout):
    """out = x / |x| along rows; dx = (dout - out rowsum(dout out)) / |x|."""
    r = 1 / np.sqrt(np.vecdot(x, x))
    out = x * r[:, None]
    dx = out * np.vecdot(dout, out)[:, None]
    np.subtract(dout, dx, out=dx)
    dx *= r[:, None]
    return out, dx


def hinge(z, y):
    """loss = mean(max(0, 1 - y z)) for labels y of +-1, the dot of the margins with their mask
    (faster than a maximum then a sum, but at 10**6 in float64); dz = -y / n where the margin
    is positive."""
    n = z.shape[0]
    m = z * y
    np.subtract(1, m, out=m)
    mask = m > 0
    loss = m.dot(mask) / n
    dz = np.multiply(y, mask, dtype=z.dtype)
    dz *= -1 / n
    return loss, dz


def _pair(n, rng):
    return rng.standard_normal(n), rng.standard_normal(n)


def _scalar_loss(name, graph, reference, formulations):
    return _loss(
        name, graph, "(x: [n], y: [n]) -> loss wrt x", reference, _pair, (0,), formulations
    )


MODELS = [
    _scalar_loss(
        "MSE",
        "mse",
        mse,
        [
            ("mean((x - y)**2)", "    loss = mean((x - y)**2)"),
            ("sum((x - y) * (x - y)) / n", "    d = x - y\n    loss = sum(d * d) / n"),
            ("2 * mean(0.5 * (y - x)**2)", "    loss = 2 * mean(0.5 * (y - x)**2)"),
        ],
    ),
    _scalar_loss(
        "L1",
        "l1",
        l1,
        [
            ("mean(abs(x - y))", "    loss = mean(abs(x - y))"),
            ("sum(abs(y - x)) / n", "    loss = sum(abs(y - x)) / n"),
        ],
    ),
    _activation(
        "tanh",
        "act",
        tanh,
        [
            ("tanh(x)", "out = tanh(x)"),
            ("2 * sigmoid(2 * x) - 1", "out = 2 * sigmoid(2 * x) - 1"),
            ("(exp(2x) - 1) / (exp(2x) + 1)", "out = (exp(2 * x) - 1) / (exp(2 * x) + 1)"),
        ],
    ),
    _activation(
        "softsign",
        "act",
        softsign,
        [
            ("x / (1 + abs(x))", "out = x / (1 + abs(x))"),
            ("x / (abs(x) + 1)", "out = x / (abs(x) + 1)"),
        ],
    ),
    _activation(
        "ELU",
        "act",
        elu,
        [
            ("elu(x)", "out = elu(x)"),
            ("where(x > 0, x, exp(x) - 1)", "out = where(x > 0, x, exp(x) - 1)"),
            (
                "maximum(x, 0) + minimum(exp(x) - 1, 0)",
                "out = maximum(x, 0) + minimum(exp(x) - 1, 0)",
            ),
        ],
    ),
]


def _rms_inputs(size, rng):
    N, D = size
    return (
        rng.standard_normal((N, D)),
        1 + 0.1 * rng.standard_normal(D),
        rng.standard_normal((N, D)),
    )


def _rows(graph: str, sig: str, body: str) -> str:
    return f"graph {graph}{sig} {{\n{body.strip(chr(10))}\n}}\n"


RMS_SIG = "(x: [N, D], g: [D]) -> out"
SVM_SIG = "(s: [N, C], y: int[N]) -> loss wrt s"
L2_SIG = "(x: [N, D]) -> out"

MODELS += [
    Model(
        name="RMSNorm",
        graph="rms",
        reference=rmsnorm,
        inputs=_rms_inputs,
        dims=lambda size: dict(zip("ND", size)),
        sizes=[(64, 128), (1024, 1024)],
        smoke_sizes=[(3, 4)],
        wrt=(0, 1),
        formulations=[
            Formulation(label, _rows("rms", RMS_SIG, body))
            for label, body in [
                (
                    "x / sqrt(mean(x*x) + eps) * g",
                    "    out = x / sqrt(mean(x * x, axis=-1, keepdims=true) + 1e-6) * g",
                ),
                (
                    "g * x * (mean(x**2) + eps) ** -0.5",
                    "    out = g * x * (mean(x**2, axis=-1, keepdims=true) + 1e-6) ** -0.5",
                ),
                (
                    "rms named, g * (x / rms)",
                    "    rms = sqrt(mean(x**2, axis=-1, keepdims=true) + 1e-6)\n"
                    "    out = g * (x / rms)",
                ),
                (
                    "no keepdims, sum / D",
                    "    ms = sum(x * x, axis=1) / D + 1e-6\n"
                    "    out = x / reshape(sqrt(ms), (N, 1)) * g",
                ),
            ]
        ],
    ),
    Model(
        name="multiclass SVM",
        graph="svm",
        reference=svm,
        inputs=lambda size, rng: (rng.standard_normal(size), rng.integers(0, size[1], size[0])),
        dims=lambda size: dict(zip("NC", size)),
        sizes=[(64, 10), (4096, 100)],
        smoke_sizes=[(3, 4)],
        wrt=(0,),
        vjp=False,
        formulations=[
            Formulation(label, _rows("svm", SVM_SIG, body))
            for label, body in [
                (
                    "sum(maximum(0, s - correct + 1)) - N",
                    "    correct = reshape(take_along(s, y), (N, 1))\n"
                    "    loss = (sum(maximum(0, s - correct + 1)) - N) / N",
                ),
                (
                    "margins times 1 - one_hot(y, C)",
                    "    correct = reshape(take_along(s, y), (N, 1))\n"
                    "    m = maximum(0, s - correct + 1) * (1 - one_hot(y, C))\n"
                    "    loss = sum(m) / N",
                ),
                (
                    "mean of row sums minus 1",
                    "    m = maximum(s - reshape(take_along(s, y), (N, 1)) + 1, 0)\n"
                    "    loss = mean(sum(m, axis=1) - 1)",
                ),
            ]
        ],
    ),
    _activation(
        "log-sigmoid",
        "act",
        log_sigmoid,
        [
            ("log(sigmoid(x))", "out = log(sigmoid(x))"),
            ("-softplus(-x)", "out = -softplus(-x)"),
            ("x - softplus(x)", "out = x - softplus(x)"),
            ("-log(1 + exp(-x))", "out = -log(1 + exp(-x))"),
        ],
    ),
    _activation(
        "sigmoid",
        "act",
        sigmoid,
        [
            ("sigmoid(x)", "out = sigmoid(x)"),
            ("1 / (1 + exp(-x))", "out = 1 / (1 + exp(-x))"),
            ("exp(x) / (1 + exp(x))", "out = exp(x) / (1 + exp(x))"),
            ("0.5 * tanh(0.5 * x) + 0.5", "out = 0.5 * tanh(0.5 * x) + 0.5"),
        ],
    ),
    _activation("hardtanh", "act", hardtanh, [("clip(x, -1, 1)", "out = clip(x, -1, 1)")]),
    _activation(
        "hardtanh, minimum and maximum",
        "act",
        hardtanh_ties_halved,
        [
            ("minimum(maximum(x, -1), 1)", "out = minimum(maximum(x, -1), 1)"),
            ("maximum(minimum(x, 1), -1)", "out = maximum(minimum(x, 1), -1)"),
        ],
    ),
    Model(
        name="L2 normalize",
        graph="l2",
        reference=l2_normalize,
        inputs=lambda size, rng: (rng.standard_normal(size), rng.standard_normal(size)),
        dims=lambda size: dict(zip("ND", size)),
        sizes=[(64, 128), (1000, 1000)],
        smoke_sizes=[(3, 4)],
        wrt=(0,),
        formulations=[
            Formulation(label, _rows("l2", L2_SIG, body))
            for label, body in [
                ("x / sqrt(sum(x*x))", "    out = x / sqrt(sum(x * x, axis=1, keepdims=true))"),
                (
                    "x * sum(x**2) ** -0.5",
                    "    out = x * sum(x**2, axis=-1, keepdims=true) ** -0.5",
                ),
                (
                    "norm named",
                    "    norm = sqrt(sum(x * x, axis=-1, keepdims=true))\n    out = x / norm",
                ),
            ]
        ],
    ),
    _loss(
        "hinge",
        "hinge",
        "(z: [n], y: [n]) -> loss wrt z",
        hinge,
        lambda n, rng: (rng.standard_normal(n), np.sign(rng.standard_normal(n))),
        (0,),
        [
            ("mean(maximum(0, 1 - y * z))", "    loss = mean(maximum(0, 1 - y * z))"),
            ("mean(relu(1 - y * z))", "    loss = mean(relu(1 - y * z))"),
            ("sum(maximum(1 - z * y, 0)) / n", "    loss = sum(maximum(1 - z * y, 0)) / n"),
        ],
    ),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timing")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds of rest per timing")
    parser.add_argument("--only", help="the models whose name contains this, ignoring case")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 3 repeats")
    args = parser.parse_args(argv)
    repeats, budget, pause = (
        (3, 0.002, 0.0) if args.smoke else (args.repeats, args.budget, args.pause)
    )
    records = run_suite(MODELS, run_case, args.smoke, repeats, budget, pause, args.only)
    print()
    print(table(records) + "\n\n" + summary(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
