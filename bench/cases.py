"""The benchmark models: for each, the bp source, a hand-written expert NumPy version (CS231n
style, the reference = 1.00), and the same computation in autograd, PyTorch and JAX."""

from __future__ import annotations

import importlib.util
import types
from dataclasses import dataclass

import numpy as np

import bpc


def available() -> list[str]:
    out = []
    for name in ("autograd", "torch", "jax"):
        if importlib.util.find_spec(name):
            module = __import__(name)
            out.append(f"{name} {getattr(module, '__version__', '?')}")
    return out


def _has(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def compile_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    import sys

    sys.modules[name] = module
    exec(compile(bpc.compile_source(source, f"{name}.bp"), f"<{name}>", "exec"), module.__dict__)
    return module


def _torch_saved_bytes(fn, *tensors) -> int:
    import torch

    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*tensors)
    return total


def _cache_nbytes(cache) -> int:
    return sum(np.asarray(v).nbytes for v in cache if isinstance(v, np.ndarray))


@dataclass
class Case:
    name: str
    sizes: list
    smoke_sizes: list

    def describe(self, size) -> str:
        return " x ".join(map(str, size)) if isinstance(size, tuple) else f"n = {size}"


# ---------------------------------------------------------------------------------------------
# f = sum((W @ x) ** 2): the lecture note's example


SEED = """
graph seed(W: [n, n], x: [n]) -> f {
    q = W @ x
    f = sum(q * q)
}
"""


class Seed(Case):
    def __init__(self):
        super().__init__("f = sum((W @ x)**2)", [64, 1024], [8])
        self.module = compile_module(SEED, "bench_seed")

    def inputs(self, n):
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, n)), rng.standard_normal(n)

    def systems(self, n):
        m = self.module

        def hand(W, x):
            q = W @ x
            return 2 * np.outer(q, x), 2 * (W.T @ q)

        def ours(W, x):
            return tuple(m.seed_grad(W, x)[1])

        out = {"hand": hand, "bpc": ours}
        if _has("autograd"):
            import autograd
            import autograd.numpy as anp

            g = autograd.grad(lambda W, x: anp.sum(anp.dot(W, x) ** 2), argnum=(0, 1))
            out["autograd"] = g
        if _has("torch"):
            import torch

            def t(W, x):
                W = torch.from_numpy(W).requires_grad_()
                x = torch.from_numpy(x).requires_grad_()
                f = ((W @ x) ** 2).sum()
                f.backward()
                return W.grad.numpy(), x.grad.numpy()

            out["torch"] = t
        if _has("jax"):
            import jax
            import jax.numpy as jnp

            jax.config.update("jax_enable_x64", True)
            g = jax.jit(jax.grad(lambda W, x: jnp.sum((W @ x) ** 2), argnums=(0, 1)))

            def j(W, x):
                return tuple(np.asarray(a) for a in jax.block_until_ready(g(W, x)))

            out["jax"] = j
        return out

    def cache_bytes(self, n, args):
        out = {"bpc": _cache_nbytes(self.module.seed_forward(*args)[1])}
        if _has("torch"):
            import torch

            W, x = (torch.from_numpy(a).requires_grad_() for a in args)
            out["torch"] = _torch_saved_bytes(lambda W, x: ((W @ x) ** 2).sum(), W, x)
        return out


# ---------------------------------------------------------------------------------------------
# Batch normalization, training mode: a vector-Jacobian product with an upstream gradient G


BATCHNORM = """
graph batchnorm(x: [N, D], gamma: [D], beta: [D]) -> out {
    mu = mean(x, axis=0)
    xc = x - mu
    var = mean(xc * xc, axis=0)
    invstd = 1 / sqrt(var + 1e-5)
    xhat = xc * invstd
    out = gamma * xhat + beta
}
"""


class BatchNorm(Case):
    def __init__(self):
        super().__init__("batchnorm, VJP", [(64, 128), (1024, 1024)], [(4, 3)])
        self.module = compile_module(BATCHNORM, "bench_batchnorm")

    def inputs(self, size):
        rng = np.random.default_rng(1)
        N, D = size
        return (
            rng.standard_normal((N, D)),
            rng.standard_normal(D),
            rng.standard_normal(D),
            rng.standard_normal((N, D)),
        )

    def systems(self, size):
        m = self.module

        def hand(x, gamma, beta, dout):
            # CS231n's batchnorm_backward_alt, forward included.
            N = x.shape[0]
            mu = x.mean(axis=0)
            xc = x - mu
            var = (xc * xc).mean(axis=0)
            invstd = 1.0 / np.sqrt(var + 1e-5)
            xhat = xc * invstd
            out = gamma * xhat + beta  # noqa: F841 - the forward is part of the work
            dbeta = dout.sum(axis=0)
            dgamma = (dout * xhat).sum(axis=0)
            dx = (gamma * invstd / N) * (N * dout - dbeta - xhat * dgamma)
            return dx, dgamma, dbeta

        def ours(x, gamma, beta, dout):
            out, cache = m.batchnorm_forward(x, gamma, beta)
            return tuple(m.batchnorm_backward(dout, cache))

        def ref(np_, x, gamma, beta):
            mu = np_.mean(x, axis=0)
            xc = x - mu
            var = np_.mean(xc * xc, axis=0)
            return gamma * (xc / np_.sqrt(var + 1e-5)) + beta

        out = {"hand": hand, "bpc": ours}
        if _has("autograd"):
            import autograd
            import autograd.numpy as anp

            vjp = autograd.grad(lambda x, g, b, d: anp.sum(ref(anp, x, g, b) * d), argnum=(0, 1, 2))
            out["autograd"] = vjp
        if _has("torch"):
            import torch

            def t(x, gamma, beta, dout):
                ts = [torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta)]
                y = ref(torch, *ts)
                y.backward(torch.from_numpy(dout))
                return tuple(a.grad.numpy() for a in ts)

            out["torch"] = t
        if _has("jax"):
            import jax
            import jax.numpy as jnp

            jax.config.update("jax_enable_x64", True)
            g = jax.jit(
                jax.grad(lambda x, a, b, d: jnp.sum(ref(jnp, x, a, b) * d), argnums=(0, 1, 2))
            )

            def j(x, gamma, beta, dout):
                return tuple(np.asarray(a) for a in jax.block_until_ready(g(x, gamma, beta, dout)))

            out["jax"] = j
        return out

    def cache_bytes(self, size, args):
        x, gamma, beta, _ = args
        out = {"bpc": _cache_nbytes(self.module.batchnorm_forward(x, gamma, beta)[1])}
        if _has("torch"):
            import torch

            def run(x, g, b):
                mu = torch.mean(x, dim=0)
                xc = x - mu
                var = torch.mean(xc * xc, dim=0)
                return g * (xc / torch.sqrt(var + 1e-5)) + b

            ts = [torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta)]
            out["torch"] = _torch_saved_bytes(run, *ts)
        return out


CASES = [Seed(), BatchNorm()]


def report(table: str, machine: str, command: str) -> str:
    return f"""# Performance

Measured by `python bench/run.py{(" " + command) if command else ""}` on: {machine}.

Times are medians of interleaved repeats; each ratio is the median of per-repeat ratios against
hand-written NumPy in the same repeat (below 1.00 is faster than the hand-written code).
"peak" is tracemalloc's peak for one call of the generated code over the hand-written one;
"cache" is the bytes `g_forward` keeps over what PyTorch's autograd saves for the same model.

{table}
"""
