"""The NumPy forms the references of bench/formulations/ were chosen among, timed against each
other: each model's reference (first) beside other expert ways of writing it.

    python bench/formulations/kernels.py [--repeats 9] [--smoke] [--only NAME]

Every form computes the model's value and gradients from the same inputs and is checked against
the reference before anything is timed; prints, for float64 and float32 at the model's large
size (`--small`: its small size), the median time of each form over interleaved repeats and its median per-repeat ratio to
the reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, when run as a script

from formulations import MODELS  # noqa: E402
from formulations.activations import C, K, gelu_tanh, softplus, x_sigmoid  # noqa: E402
from formulations.attention import attention  # noqa: E402
from formulations.chains import bce_logits, gaussian_nll, mish  # noqa: E402
from formulations.normalization import EPS, batchnorm, layernorm  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Other forms, model by model: (x, ..., dout) -> (value, *gradients), as the reference


def _sigmoid_tanh(z):
    """0.5 tanh(z / 2) + 0.5 in place: the sigmoid bpc emits."""
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


def gelu_tanh_tanh(x, dout):
    """With tanh itself: t = tanh(u), out = 0.5 x (1 + t), dx = dout (0.5 (1 + t) +
    0.5 x (1 - t^2) u')."""
    a = x * x
    t = a * (C * K)
    t += C
    t *= x
    np.tanh(t, out=t)
    out = t + 1
    out *= x
    out *= 0.5
    a *= 1.5 * C * K
    a += 0.5 * C
    a *= x  # 0.5 x u'
    dx = t * t
    np.subtract(1, dx, out=dx)
    dx *= a
    t *= 0.5
    dx += t
    dx += 0.5
    dx *= dout
    return out, dx


def gelu_tanh_plain(x, dout):
    """The textbook NumPy, a new array per operation."""
    u = C * (x + K * x**3)
    t = np.tanh(u)
    out = 0.5 * x * (1 + t)
    dx = dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * K * x * x))
    return out, dx


def x_sigmoid_tanh(a):
    def form(x, dout):
        p = _sigmoid_tanh(x * a)
        out = x * p
        dx = p * -a
        dx += a
        dx *= out
        dx += p
        dx *= dout
        return out, dx

    return form


def softplus_log1p(x, dout):
    """NumPy's log1p, and the sigmoid as exp(x - out)."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    out = np.maximum(x, 0)
    np.log1p(e, out=e)
    out += e
    dx = np.subtract(x, out, out=e)
    np.exp(dx, out=dx)
    dx *= dout
    return out, dx


def softplus_logaddexp(x, dout):
    """np.logaddexp(0, x) and the tanh sigmoid: what `softplus(x)` is emitted as."""
    out = np.logaddexp(0, x)
    dx = _sigmoid_tanh(x.copy())
    dx *= dout
    return out, dx


def mish_tanh(x, dout):
    """tanh of a stable softplus (log1p), sigmoid through tanh."""
    sp, _ = softplus_log1p(x, x)
    t = np.tanh(sp, out=sp)
    out = x * t
    dx = t * t
    np.subtract(1, dx, out=dx)
    dx *= x
    dx *= _sigmoid_tanh(x.copy())
    dx += t
    dx *= dout
    return out, dx


def batchnorm_cs231n(x, gamma, beta, dout):
    """CS231n's batchnorm_backward_alt with its forward, as bench/cases.py writes it."""
    N = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    invstd = 1.0 / np.sqrt(var + EPS)
    xhat = xc * invstd
    out = gamma * xhat + beta
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * invstd / N) * (N * dout - dbeta - xhat * dgamma)
    return out, dx, dgamma, dbeta


def layernorm_plain(x, gamma, beta, dout):
    D = x.shape[1]
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=1, keepdims=True)
    invstd = 1.0 / np.sqrt(var + EPS)
    xhat = xc * invstd
    out = gamma * xhat + beta
    dxhat = dout * gamma
    dx = (
        invstd
        / D
        * (D * dxhat - dxhat.sum(1, keepdims=True) - xhat * (dxhat * xhat).sum(1, keepdims=True))
    )
    return out, dx, (dout * xhat).sum(0), dout.sum(0)


def attention_einsum(q, k, v, dout):
    """The reference with the softmax backward's row dots through einsum."""
    scale = q.shape[1] ** -0.5
    qs = q * scale
    p = qs @ k.T
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    out = p @ v
    dv = p.T @ dout
    dp = dout @ v.T
    dp -= np.einsum("ij,ij->i", dout, out)[:, None]
    dp *= p
    dq = dp @ k
    dq *= scale
    return out, dq, dp.T @ qs, dv


def gaussian_nll_plain(x, mu, logvar):
    n = x.shape[0]
    d = x - mu
    w = np.exp(-logvar)
    loss = np.mean(0.5 * (logvar + d * d * w))
    return loss, -d * w / n, 0.5 * (1 - d * d * w) / n


def bce_log1p(z, y):
    """log1p, and the sigmoid selected by np.where."""
    n = z.shape[0]
    e = np.exp(-np.abs(z))
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(e))
    r = 1 / (1 + e)
    dz = np.where(z >= 0, r, e * r)
    dz -= y
    dz /= n
    return loss, dz


def _models():
    by_name = {m.name: m for m in MODELS}
    return [
        (by_name["batchnorm"], {"reference": batchnorm, "CS231n alt": batchnorm_cs231n}),
        (by_name["layernorm"], {"reference": layernorm, "new arrays": layernorm_plain}),
        (
            by_name["attention"],
            {"reference (np.vecdot)": attention, "row dots by einsum": attention_einsum},
        ),
        (
            by_name["GELU, tanh form"],
            {
                "reference (exp sigmoid)": gelu_tanh,
                "np.tanh, in place": gelu_tanh_tanh,
                "new arrays": gelu_tanh_plain,
            },
        ),
        (
            by_name["GELU, sigmoid form"],
            {"reference (exp sigmoid)": x_sigmoid(1.702), "tanh sigmoid": x_sigmoid_tanh(1.702)},
        ),
        (
            by_name["softplus"],
            {
                "reference (float32: log, Goldberg's correction)": softplus,
                "np.log1p in both dtypes": softplus_log1p,
                "np.logaddexp, tanh sigmoid": softplus_logaddexp,
            },
        ),
        (by_name["Mish"], {"reference (one exp)": mish, "softplus, np.tanh": mish_tanh}),
        (by_name["Gaussian NLL"], {"reference": gaussian_nll, "new arrays": gaussian_nll_plain}),
        (
            by_name["binary cross-entropy of logits"],
            {"reference": bce_logits, "np.log1p, np.where": bce_log1p},
        ),
    ]


def _time(fn, args, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return (time.perf_counter() - start) / number


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--budget", type=float, default=0.1, help="seconds per timing")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 short repeats")
    parser.add_argument("--small", action="store_true", help="the models' small sizes")
    parser.add_argument("--only", help="the models whose name contains this")
    args = parser.parse_args(argv)
    if args.smoke:
        args.budget = 0.002
    print("| model | size | dtype | form | time | over the reference |")
    print("|---|---|---|---|---|---|")
    for model, forms in _models():
        if args.only and args.only not in model.name:
            continue
        size = model.smoke_sizes[0] if args.smoke else model.sizes[0 if args.small else -1]
        for dtype in (np.float64, np.float32):
            inputs = model.cast(model.inputs(size, np.random.default_rng(0)), dtype)
            want = forms[next(iter(forms))](*inputs)
            rtol = 1e-8 if dtype == np.float64 else 1e-4
            for name, form in forms.items():
                for g, w in zip(form(*inputs), want):
                    scale = max(float(np.max(np.abs(w))), 1e-300)
                    err = float(np.max(np.abs(np.asarray(g) - w))) / scale
                    assert err < rtol, f"{model.name}, {name}: {err:.1e}"
            number = {
                name: max(1, int(args.budget / max(_time(form, inputs, 1), 1e-7)))
                for name, form in forms.items()
            }
            times = {name: [] for name in forms}
            for _ in range(2 if args.smoke else args.repeats):
                for name, form in forms.items():
                    times[name].append(_time(form, inputs, number[name]))
            first = times[next(iter(forms))]
            for name, ts in times.items():
                ratio = statistics.median(t / r for t, r in zip(ts, first))
                median = statistics.median(ts)
                shown = f"{median * 1e6:.1f} us" if median < 1e-3 else f"{median * 1e3:.2f} ms"
                print(
                    f"| {model.name} | {model.describe(size)} | {np.dtype(dtype).name} | {name} | "
                    f"{shown} | {ratio:.2f}x |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
