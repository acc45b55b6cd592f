"""Spellings of models that bench/formulations/ does not time, each against a plain expert NumPy
reference: the check, in the suite's harness, that the rules tuned on the suite carry to code
they were not tuned on (MSE, L1, tanh, softsign, ELU). Its figures are not the suite's: the
losses' small calls take 4-10 us by hand, where bpc's fixed costs a call (argument checks, the
cache, the gradients' NamedTuple) are 1-2 us. docs/performance.md's notes quote its runs.

    python bench/held_out.py [--repeats 5] [--only softsign] [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
from formulations.chains import _activation, _loss
from formulations.suite import run_suite, summary, table
from run import run_case


def mse(x, y):
    """loss = mean((x - y)**2); dx = 2 (x - y) / n, in the difference's array."""
    n = x.shape[0]
    d = x - y
    loss = np.dot(d, d) / n
    d *= 2 / n
    return loss, d


def l1(x, y):
    """loss = mean(|x - y|) as the dot of the sign with the difference; dx = sign(x - y) / n."""
    n = x.shape[0]
    d = x - y
    s = np.sign(d)
    loss = np.dot(s, d) / n
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
