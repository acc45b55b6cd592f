"""Hessian-vector products: bpc's `g_hvp` against hand-written NumPy, JAX and PyTorch.

    python bench/hvp.py                  # the table (docs/performance.md, "Hessian-vector products")
    python bench/hvp.py --smoke          # tiny sizes, a few repeats: checks that everything runs

Two models: L2-regularized logistic regression at (N, D) = (1000, 500), whose hand formula is
`X^T (s (1 - s) * (X v)) / N + reg v`, and the two-layer net of bench/cases.py, whose hand
HVP is Pearlmutter's R-pass written out (the forward's and the gradient's directional
derivatives along v, line by line). The rivals: JAX, `jvp` of `grad` under `jit` (forward over
reverse); PyTorch, `torch.func.jvp` of `torch.func.grad`. A system that is not installed is left
out. Every system's products are checked against the hand-written ones before anything is timed.
Timings are interleaved repeats; ratios are taken per repeat against the hand-written NumPy and
their median reported (a shared machine moves all systems of one repeat together).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402  (bench/cases.py: available(), machine facts)
from run import machine  # noqa: E402

import bpc  # noqa: E402
from bpc.loader import module_from_text  # noqa: E402

TARGETS = {"hand": 1.10, "jax": 1.5}

LOGISTIC = """
graph logistic(X: [N, D], y: [N], w: [D], reg: []) -> loss wrt w {
    z = X @ w
    loss = mean(softplus(z) - y * z) + 0.5 * reg * sum(w * w)
}
"""


def _module(source: str, name: str, sizes: dict):
    text = bpc.compile_source(source, f"{name}.bp", sizes=sizes, hvp=True)
    return module_from_text(text, f"bench_hvp_{name}")


def _sigmoid(z):
    return np.exp(-np.logaddexp(0, -z))


class Logistic:
    name = "logistic regression + L2"

    def __init__(self, smoke: bool):
        self.size = (20, 7) if smoke else (1000, 500)

    def describe(self) -> str:
        return "N, D = " + ", ".join(map(str, self.size))

    def inputs(self):
        N, D = self.size
        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, D)) / np.sqrt(D)
        y = (rng.random(N) < 0.5).astype(np.float64)
        return (X, y, rng.standard_normal(D), 1e-2), (rng.standard_normal(D),)

    def systems(self):
        N, D = self.size
        m = _module(LOGISTIC, "logistic", {"N": N, "D": D})

        def hand(X, y, w, reg, v):
            s = _sigmoid(X @ w)
            return (X.T @ (s * (1 - s) * (X @ v) / X.shape[0]) + reg * v,)

        out = {"hand": hand, "bpc": lambda *a: tuple(m.logistic_hvp(*a))}
        if cases._has("jax"):
            out["jax"] = _jax_logistic()
        if cases._has("torch"):
            out["torch"] = _torch_logistic()
        return out


def _jax_logistic():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def loss(w, X, y, reg):
        z = X @ w
        return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * reg * jnp.sum(w * w)

    @jax.jit
    def hvp(X, y, w, reg, v):
        return jax.jvp(lambda w: jax.grad(loss)(w, X, y, reg), (w,), (v,))[1]

    def run(X, y, w, reg, v):
        return (hvp(X, y, w, reg, v).block_until_ready(),)

    run.prepare = lambda args: tuple(jnp.asarray(a) for a in args)
    return run


def _torch_logistic():
    import torch
    from torch.func import grad, jvp

    def loss(w, X, y, reg):
        z = X @ w
        return torch.mean(torch.nn.functional.softplus(z) - y * z) + 0.5 * reg * torch.sum(w * w)

    def run(X, y, w, reg, v):
        with torch.no_grad():
            out = jvp(lambda w: grad(loss)(w, X, y, reg), (w,), (v,))[1]
        return (out.numpy(),)

    run.prepare = lambda args: tuple(
        torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args
    )
    return run


class TwoLayer:
    name = "two-layer net, softmax CE + L2"

    def __init__(self, smoke: bool):
        self.size = (4, 6, 5, 3) if smoke else (64, 784, 128, 10)

    def describe(self) -> str:
        return "N, D, H, C = " + ", ".join(map(str, self.size))

    def inputs(self):
        N, D, H, C = self.size
        rng = np.random.default_rng(2)
        params = (
            rng.standard_normal((N, D)),
            rng.integers(0, C, N),
            rng.standard_normal((D, H)) * np.sqrt(2 / D),
            0.01 * rng.standard_normal(H),
            rng.standard_normal((H, C)) * np.sqrt(2 / H),
            0.01 * rng.standard_normal(C),
            1e-3,
        )
        vectors = (
            rng.standard_normal((D, H)),
            rng.standard_normal(H),
            rng.standard_normal((H, C)),
            rng.standard_normal(C),
        )
        return params, vectors

    def systems(self):
        N, D, H, C = self.size
        source = (HERE.parent / "examples" / "two_layer.bp").read_text()
        m = _module(source, "two_layer", dict(zip("NDHC", self.size)))
        out = {"hand": _hand_two_layer, "bpc": lambda *a: tuple(m.two_layer_hvp(*a))}
        if cases._has("jax"):
            out["jax"] = _jax_two_layer()
        if cases._has("torch"):
            out["torch"] = _torch_two_layer()
        return out


def _hand_two_layer(X, y, W1, b1, W2, b2, reg, vW1, vb1, vW2, vb2):
    """Pearlmutter's R-pass: the directional derivative along v of the forward and then of
    CS231n's backward, line by line."""
    N = X.shape[0]
    a1 = X @ W1
    a1 += b1
    active = a1 > 0
    h = a1 * active
    s = h @ W2
    s += b2
    s -= s.max(axis=1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=1, keepdims=True)
    ds = p.copy()
    ds[np.arange(N), y] -= 1
    ds /= N
    Rh = X @ vW1
    Rh += vb1
    Rh *= active
    Rs = Rh @ W2
    Rs += h @ vW2
    Rs += vb2
    Rds = p * (Rs - (p * Rs).sum(axis=1, keepdims=True))
    Rds /= N
    RdW2 = Rh.T @ ds
    RdW2 += h.T @ Rds
    RdW2 += reg * vW2
    Rdb2 = Rds.sum(axis=0)
    Rda1 = Rds @ W2.T
    Rda1 += ds @ vW2.T
    Rda1 *= active
    RdW1 = X.T @ Rda1
    RdW1 += reg * vW1
    return RdW1, Rda1.sum(axis=0), RdW2, Rdb2


def _jax_two_layer():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def loss(params, X, y, reg):
        W1, b1, W2, b2 = params
        h = jnp.maximum(X @ W1 + b1, 0)
        scores = h @ W2 + b2
        logp = jax.nn.log_softmax(scores, axis=1)
        data = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return data + 0.5 * reg * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    @jax.jit
    def hvp(X, y, W1, b1, W2, b2, reg, vW1, vb1, vW2, vb2):
        params, vectors = (W1, b1, W2, b2), (vW1, vb1, vW2, vb2)
        return jax.jvp(lambda ps: jax.grad(loss)(ps, X, y, reg), (params,), (vectors,))[1]

    def run(*args):
        return tuple(a.block_until_ready() for a in hvp(*args))

    run.prepare = lambda args: tuple(jnp.asarray(a) for a in args)
    return run


def _torch_two_layer():
    import torch
    from torch.func import grad, jvp

    def loss(params, X, y, reg):
        W1, b1, W2, b2 = params
        h = torch.relu(X @ W1 + b1)
        scores = h @ W2 + b2
        data = torch.nn.functional.cross_entropy(scores, y)
        return data + 0.5 * reg * (torch.sum(W1 * W1) + torch.sum(W2 * W2))

    def run(X, y, W1, b1, W2, b2, reg, vW1, vb1, vW2, vb2):
        params, vectors = (W1, b1, W2, b2), (vW1, vb1, vW2, vb2)
        with torch.no_grad():
            out = jvp(lambda ps: grad(loss)(ps, X, y, reg), (params,), (vectors,))[1]
        return tuple(t.numpy() for t in out)

    run.prepare = lambda args: tuple(
        torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args
    )
    return run


def _time(fn, args, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return (time.perf_counter() - start) / number


def run_case(case, repeats: int, budget: float, pause: float) -> dict:
    """Times (medians) and per-repeat ratios against `hand` (their medians), after checking
    every system against `hand`."""
    params, vectors = case.inputs()
    raw = params + vectors
    fns = case.systems()
    args = {name: fn.prepare(raw) if hasattr(fn, "prepare") else raw for name, fn in fns.items()}
    want = fns["hand"](*raw)
    for name, fn in fns.items():
        got = fn(*args[name])
        for i, (g, e) in enumerate(zip(got, want)):
            g = np.asarray(g)
            assert g.shape == e.shape, f"{case.name}: {name} product {i} is shaped {g.shape}"
            np.testing.assert_allclose(g, e, rtol=1e-7, atol=1e-10, err_msg=f"{name}, {i}")
    number = {}
    for name, fn in fns.items():
        _time(fn, args[name], 2)  # (JAX compiles)
        number[name] = max(1, int(budget / max(_time(fn, args[name], 1), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    ratios: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(pause)  # the previous system's thread pools stop spinning
            times[name].append(_time(fn, args[name], number[name]))
        for name in fns:
            ratios[name].append(times[name][-1] / times["hand"][-1])
    return {
        "name": case.name,
        "size": case.describe(),
        "time": {name: statistics.median(t) for name, t in times.items()},
        "ratio": {name: statistics.median(r) for name, r in ratios.items()},
        "vs_jax": statistics.median(
            b / j for b, j in zip(times["bpc"], times.get("jax", times["bpc"]))
        ),
    }


def table(results: list[dict]) -> str:
    systems = ("hand", "bpc", "jax", "torch")
    head = "| model | sizes | " + " | ".join(systems) + " | bpc / hand | bpc / JAX |"
    lines = [head, "|" + "---|" * (len(systems) + 4)]
    for r in results:
        cells = []
        for s in systems:
            t = r["time"].get(s)
            cells.append("-" if t is None else f"{t * 1e3:.3f} ms ({r['ratio'][s]:.2f}x)")
        vs_jax = f"{r['vs_jax']:.2f}" if "jax" in r["time"] else "-"
        row = f"| {r['name']} | {r['size']} | " + " | ".join(cells)
        lines.append(row + f" | {r['ratio']['bpc']:.2f} | {vs_jax} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=0.1, help="seconds per timing")
    parser.add_argument(
        "--pause", type=float, default=0.2, help="seconds of sleep before each timing"
    )
    args = parser.parse_args(argv)
    repeats, budget = (2, 0.002) if args.smoke else (args.repeats, args.budget)
    pause = 0.0 if args.smoke else args.pause
    results = [run_case(c(args.smoke), repeats, budget, pause) for c in (Logistic, TwoLayer)]
    print(f"Machine: {machine()}\n")
    print(table(results))
    worst = max(r["ratio"]["bpc"] for r in results)
    jax = [r["vs_jax"] for r in results if "jax" in r["time"]]
    print(
        f"\nbpc / hand: worst {worst:.2f} (target at most {TARGETS['hand']:.2f}); "
        + (f"bpc / JAX: worst {max(jax):.2f} (target at most {TARGETS['jax']:.2f})" if jax else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
