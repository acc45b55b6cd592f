"""Elementwise chains over about 1e6 elements: SiLU, Mish and leaky ReLU activations (value and
gradient given the upstream gradient), and three losses over `[n]` vectors, the Gaussian negative
log-likelihood of a regression that predicts its own variance, the binary cross-entropy of logits
and the Huber loss.

As in activations.py, the references use exp-based sigmoids, fold every constant into one step,
and write in place into at most three large arrays; a loss's sums are dots (BLAS, as methods:
`d.dot(w)` takes 0.2-0.4 us a call less than `np.dot(d, w)` or `d @ w` here) or reductions of
arrays the gradient needs anyway.
"""

from __future__ import annotations

import numpy as np

from .activations import x_sigmoid
from .suite import Formulation, Model


def mish(x, dout):
    """out = x tanh(softplus(x)). With s = sigmoid(-x) = 1 / (1 + exp(x)), tanh(softplus(x)) is
    (1 - s^2) / (1 + s^2) = 2 r - 1 for r = 1 / (1 + s^2), and 1 - tanh^2 = 4 r (1 - r):
    dx = dout (2 r - 1 + 4 x r (1 - r) (1 - s)). One exp, no log, no tanh."""
    s = np.exp(x)
    s += 1
    np.divide(1, s, out=s)
    r = s * s
    r += 1
    np.divide(1, r, out=r)
    out = r * 2
    out -= 1
    out *= x
    s *= -4
    s += 4
    s *= x
    s *= r  # 4 x r (1 - s)
    r -= 1
    s *= r  # -4 x r (1 - r) (1 - s)
    r += r
    r -= s
    r += 1  # 2 r - 1 + 4 x r (1 - r) (1 - s)
    r *= dout
    return out, r


def leaky_relu(x, dout, slope=0.01):
    """out = x s and dx = dout s for the factor s = where(x > 0, 1, slope), made once from the
    mask in the arguments' dtype, then worked in for dx. np.where(x > 0, x, slope * x) and
    np.maximum(x, slope * x) take 3 to 6 times as long (a where picks element by element, and
    the gradient of either needs a mask or a where of its own)."""
    s = np.multiply(x > 0, 1 - slope, dtype=x.dtype)
    s += slope
    out = x * s
    s *= dout
    return out, s


def leaky_relu_ties_split(x, dout, slope=0.01):
    """max(x, slope x): the factor s is 1 where x > 0 and slope where x < 0 as above, and at x =
    0, where the maximum's two sides tie, each takes half of the gradient (torch.maximum's
    rule): s = (1 + slope) / 2 there. (sign(x) + 1) b + slope for b = (1 - slope) / 2, exact at
    1 and at slope; two masks, (x > 0) + (x >= 0) in bytes, take as long, and a where of three
    numbers three times as long."""
    s = np.sign(x)
    s += 1
    s *= (1 - slope) / 2
    s += slope
    out = x * s
    s *= dout
    return out, s


def gaussian_nll(x, mu, logvar):
    """loss = mean(0.5 (logvar + (x - mu)^2 exp(-logvar))); dmu, dlogvar."""
    n = x.shape[0]
    d = x - mu
    w = np.negative(logvar)
    np.exp(w, out=w)
    w *= d  # r = (x - mu) exp(-logvar)
    loss = (logvar.sum() + d.dot(w)) * (0.5 / n)
    d *= w
    d *= -0.5 / n
    d += 0.5 / n  # dlogvar
    w *= -1 / n  # dmu
    return loss, w, d


def huber(x, y):
    """loss = mean(huber(x - y)), delta 1: 0.5 d**2 where |d| <= 1, |d| - 0.5 elsewhere; dx =
    clip(d, -1, 1) / n. With c = clip(d, -1, 1) the loss is c (d - c / 2) elementwise, summed
    as two dots, c . d - (c . c) / 2: no np.where (which a mask of random signs slows down
    tenfold), and c is the gradient."""
    n = x.shape[0]
    d = x - y
    c = np.clip(d, -1, 1)
    loss = (c.dot(d) - 0.5 * c.dot(c)) / n
    c *= 1 / n
    return loss, c


def bce_logits(z, y):
    """loss = mean(max(z, 0) - z y + log1p(exp(-|z|))); dz = (sigmoid(z) - y) / n. The sum of
    max(z, 0) is half the sums of z and |z|; sigmoid(z) is 0.5 + copysign(1 / (1 + e) - 0.5, z)
    for e = exp(-|z|). In float32, log1p(e) is log(1 + e) (an absolute error of an ulp, all a
    mean needs): NumPy's float32 log1p is 4 times slower than its log."""
    n = z.shape[0]
    a = np.abs(z)
    total = 0.5 * (z.sum() + a.sum()) - z.dot(y)
    np.negative(a, out=a)
    np.exp(a, out=a)
    dz = a + 1
    if z.dtype == np.float32:
        np.log(dz, out=a)
    else:
        np.log1p(a, out=a)
    loss = (total + a.sum()) / n
    np.divide(1, dz, out=dz)  # sigmoid(|z|)
    dz -= 0.5
    np.copysign(dz, z, out=dz)
    dz += 0.5
    dz -= y
    dz /= n
    return loss, dz


def _activation_inputs(size, rng):
    N, D = size
    return rng.standard_normal((N, D)) * 3, rng.standard_normal((N, D))


def _activation(name: str, graph: str, reference, formulations: list[tuple[str, str]]) -> Model:
    return Model(
        name=name,
        graph=graph,
        reference=reference,
        inputs=_activation_inputs,
        dims=lambda size: dict(zip("ND", size)),
        sizes=[(64, 128), (1000, 1000)],
        smoke_sizes=[(3, 4)],
        wrt=(0,),
        formulations=[
            Formulation(label, f"graph {graph}(x: [N, D]) -> out {{\n    {body}\n}}\n")
            for label, body in formulations
        ],
    )


SILU = _activation(
    "SiLU",
    "silu",
    x_sigmoid(1.0),
    [
        ("x * sigmoid(x)", "out = x * sigmoid(x)"),
        ("x / (1 + exp(-x))", "out = x / (1 + exp(-x))"),
        ("x * 0.5 * (1 + tanh(x / 2))", "out = x * 0.5 * (1 + tanh(x / 2))"),
        ("x * (0.5 + 0.5 * tanh(0.5 * x))", "out = x * (0.5 + 0.5 * tanh(0.5 * x))"),
        ("x - x * sigmoid(-x)", "out = x - x * sigmoid(-x)"),
    ],
)

MISH = _activation(
    "Mish",
    "mish",
    mish,
    [
        ("x * tanh(softplus(x))", "out = x * tanh(softplus(x))"),
        ("x * tanh(log(1 + exp(x)))", "out = x * tanh(log(1 + exp(x)))"),
    ],
)


LEAKY_RELU = _activation(
    "leaky ReLU, where",
    "leaky",
    leaky_relu,
    [
        ("where(x > 0, x, 0.01 * x)", "out = where(x > 0, x, 0.01 * x)"),
        ("where(x < 0, x * 0.01, x)", "out = where(x < 0, x * 0.01, x)"),
        ("x * where(x > 0, 1, 0.01)", "out = x * where(x > 0, 1, 0.01)"),
    ],
)

# Written with a maximum, a leaky ReLU's gradient at 0 is the maximum's, which splits a tie:
# another function than the where's at that one point, and one that costs an expert two float
# passes more (its reference, `leaky_relu_ties_split`)
LEAKY_RELU_MAX = _activation(
    "leaky ReLU, maximum",
    "leaky",
    leaky_relu_ties_split,
    [
        ("maximum(x, 0.01 * x)", "out = maximum(x, 0.01 * x)"),
        ("maximum(0.01 * x, x)", "out = maximum(0.01 * x, x)"),
        ("relu(x) - 0.01 * relu(-x)", "out = relu(x) - 0.01 * relu(-x)"),
        ("maximum(x, 0) + 0.01 * minimum(x, 0)", "out = maximum(x, 0) + 0.01 * minimum(x, 0)"),
    ],
)


def _loss(name, graph, sig, reference, inputs, wrt, formulations) -> Model:
    return Model(
        name=name,
        graph=graph,
        reference=reference,
        inputs=inputs,
        dims=lambda n: {"n": n},
        sizes=[8192, 1_000_000],
        smoke_sizes=[7],
        wrt=wrt,
        vjp=False,
        describe=lambda n: f"n = {n}",
        formulations=[
            Formulation(label, f"graph {graph}{sig} {{\n{body.strip(chr(10))}\n}}\n")
            for label, body in formulations
        ],
    )


GAUSSIAN_NLL = _loss(
    "Gaussian NLL",
    "nll",
    "(x: [n], mu: [n], logvar: [n]) -> loss wrt mu, logvar",
    gaussian_nll,
    lambda n, rng: (
        rng.standard_normal(n),
        rng.standard_normal(n),
        0.5 * rng.standard_normal(n),
    ),
    (1, 2),
    [
        (
            "(x - mu)**2 / exp(logvar)",
            "    loss = mean(0.5 * (logvar + (x - mu)**2 / exp(logvar)))",
        ),
        (
            "(x - mu) * (x - mu) * exp(-logvar)",
            """
    d = x - mu
    loss = 0.5 * mean(logvar + d * d * exp(-logvar))
""",
        ),
        (
            "var = exp(logvar), 0.5 in each term",
            """
    var = exp(logvar)
    loss = mean(0.5 * logvar + 0.5 * (x - mu) ** 2 / var)
""",
        ),
        (
            "0.5 * log(var) + 0.5 * (x - mu)**2 / var",
            """
    var = exp(logvar)
    loss = mean(0.5 * log(var) + 0.5 * (x - mu) ** 2 / var)
""",
        ),
        (
            "logvar / 2 + (x - mu)**2 / (2 * exp(logvar))",
            "    loss = mean(logvar / 2 + (x - mu)**2 / (2 * exp(logvar)))",
        ),
        (
            "0.5 in each term, (x - mu)**2 * exp(-logvar)",
            "    loss = mean(0.5 * logvar + 0.5 * (x - mu)**2 * exp(-logvar))",
        ),
        (
            "inv = exp(-logvar) named, mean(...) / 2",
            """    inv = exp(-logvar)
    loss = mean(logvar + (x - mu) * (x - mu) * inv) / 2""",
        ),
    ],
)

BCE = _loss(
    "binary cross-entropy of logits",
    "bce",
    "(z: [n], y: [n]) -> loss wrt z",
    bce_logits,
    lambda n, rng: (rng.standard_normal(n) * 3, (rng.random(n) < 0.5) * 1.0),
    (0,),
    [
        ("softplus(z) - y * z", "    loss = mean(softplus(z) - y * z)"),
        (
            "maximum(z, 0) - z * y + log1p(exp(-abs(z)))",
            "    loss = mean(maximum(z, 0) - z * y + log1p(exp(-abs(z))))",
        ),
        (
            "-(y log(sigmoid(z)) + (1 - y) log(1 - sigmoid(z)))",
            """
    p = sigmoid(z)
    loss = -mean(y * log(p) + (1 - y) * log(1 - p))
""",
        ),
        ("softplus(-z) + (1 - y) * z", "    loss = mean(softplus(-z) + (1 - y) * z)"),
        ("log(1 + exp(-z)) + z - y * z", "    loss = mean(log(1 + exp(-z)) + z - y * z)"),
        (
            "-y log(sigmoid(z)) - (1 - y) log(sigmoid(-z))",
            "    loss = mean(-y * log(sigmoid(z)) - (1 - y) * log(sigmoid(-z)))",
        ),
        (
            "-(y log(p) + (1 - y) log1p(-p))",
            """
    p = sigmoid(z)
    loss = -mean(y * log(p) + (1 - y) * log1p(-p))
""",
        ),
        ("mean(softplus(z)) - mean(y * z)", "    loss = mean(softplus(z)) - mean(y * z)"),
    ],
)

HUBER = _loss(
    "Huber loss",
    "huber",
    "(x: [n], y: [n]) -> loss wrt x",
    huber,
    lambda n, rng: (rng.standard_normal(n) * 2, rng.standard_normal(n)),
    (0,),
    [
        (
            "where(abs(d) <= 1, 0.5 * d * d, abs(d) - 0.5)",
            """
    d = x - y
    loss = mean(where(abs(d) <= 1, 0.5 * d * d, abs(d) - 0.5))
""",
        ),
        (
            "inline, abs(x - y) < 1, 0.5 * (x - y)**2",
            "    loss = mean(where(abs(x - y) < 1, 0.5 * (x - y)**2, abs(x - y) - 0.5))",
        ),
        (
            "where(abs(d) > 1, abs(d) - 0.5, d**2 / 2)",
            """
    d = x - y
    loss = mean(where(abs(d) > 1, abs(d) - 0.5, d**2 / 2))
""",
        ),
        ("huber(x - y)", "    loss = mean(huber(x - y))"),
        (
            "c = clip(d, -1, 1), c * (d - 0.5 * c)",
            """
    d = x - y
    c = clip(d, -1, 1)
    loss = mean(c * (d - 0.5 * c))
""",
        ),
        (
            "TensorFlow's, 0.5 * m**2 + (a - m), m = minimum(abs(d), 1)",
            """
    a = abs(x - y)
    m = minimum(a, 1)
    loss = mean(0.5 * m**2 + (a - m))
""",
        ),
    ],
)
