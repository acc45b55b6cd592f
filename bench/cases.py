"""The benchmark models: for each, the bp source, a hand-written expert NumPy version (CS231n
style with in-place updates: the reference = 1.00) of the gradient and of the forward alone, and
the same computation in HIPS autograd, PyTorch eager and JAX jit when they are installed.

A case gives `inputs(size)`, `systems(size)` (name -> function of the inputs returning the
gradients, or the value and the gradients, all systems alike), `forwards(size)` (`hand` and `bpc`
forward-only functions of `forward_args(inputs)`) and `cache_bytes(size, inputs)`. A function may
carry a `prepare(args)` attribute that converts the inputs once, outside the timed calls (JAX's
device arrays).
"""

from __future__ import annotations

import importlib.util
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import bpc
from bpc.loader import module_from_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def available() -> list[str]:
    out = []
    for name in ("autograd", "torch", "jax"):
        if _has(name):
            module = __import__(name)
            version = getattr(module, "__version__", None)
            if version is None:
                from importlib.metadata import version as dist_version

                version = dist_version(name)
            out.append(f"{name} {version}")
    return out


def _has(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def compile_module(
    source: str,
    name: str,
    sizes: dict | None = None,
    checks: bool = True,
    consume_cache: bool = False,
    fast_math: bool = False,
) -> types.ModuleType:
    orders = {"consume_cache": consume_cache, "fast_math": fast_math}
    text = bpc.compile_source(source, f"{name}.bp", sizes=sizes, checks=checks, **orders)
    return module_from_text(text, name)


def _cache_nbytes(cache) -> int:
    """Bytes of the distinct arrays a cache keeps alive (a view counts as the array it views)."""
    kept = {}
    for v in cache:
        if isinstance(v, np.ndarray):
            while isinstance(v.base, np.ndarray):
                v = v.base
            kept[id(v)] = v.nbytes
    return sum(kept.values())


def _torch_saved_bytes(fn, *tensors) -> int:
    """Bytes of the distinct storages PyTorch's autograd saves for the backward of `fn`."""
    import torch

    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*tensors)
    return sum(kept.values())


def _torch_leaves(*arrays):
    import torch

    return [torch.from_numpy(a).requires_grad_() for a in arrays]


def _jax(fn, argnums: tuple[int, ...], value: bool):
    """`fn`'s gradient (with its value first when `value`), jitted; the inputs are made device
    arrays once, outside the timing, and each call waits for its results."""
    import jax

    jax.config.update("jax_enable_x64", True)
    grad = jax.jit((jax.value_and_grad if value else jax.grad)(fn, argnums=argnums))

    def run(*args):
        out = jax.block_until_ready(grad(*args))
        return (out[0], *out[1]) if value else tuple(out)

    def prepare(args):
        return tuple(jax.device_put(a) if isinstance(a, np.ndarray) else a for a in args)

    run.prepare = prepare
    return run


def _autograd(fn, argnums: tuple[int, ...], value: bool):
    import autograd

    grad = (autograd.value_and_grad if value else autograd.grad)(fn, argnum=argnums)
    if not value:
        return grad

    def run(*args):
        f, g = grad(*args)
        return (f, *g)

    return run


_MODULES: dict[tuple, types.ModuleType] = {}


@dataclass
class Case:
    name: str
    sizes: list
    smoke_sizes: list

    def describe(self, size) -> str:
        return " x ".join(map(str, size)) if isinstance(size, tuple) else f"n = {size}"

    def module(self, size, checks: bool = True, fast_math: bool = False) -> types.ModuleType:
        """The generated module, compiled for this size as `bpc compile --dim` does (JAX's jit,
        too, compiles for the shapes it is given); the same module serves every call. Without
        `checks`, as `bpc compile --no-checks` compiles it; with `fast_math`, as `bpc compile
        --fast-math` does. `dims` comes first: a case whose source depends on the size (a conv
        layer's stride) sets it there."""
        dims = self.dims(size)
        key = (self.name, self.source, tuple(sorted(dims.items())), checks, fast_math)
        if key not in _MODULES:
            name = f"bench_{len(_MODULES)}"
            _MODULES[key] = compile_module(self.source, name, dims, checks, fast_math=fast_math)
        return _MODULES[key]

    def forwards_beside(self, size, hand) -> dict:
        """The hand-written forward `hand` beside the generated forward-only function of the
        case's graph, as compiled and with --no-checks."""
        return {
            "hand": hand,
            "bpc": getattr(self.module(size), self.graph),
            "unchecked": getattr(self.module(size, checks=False), self.graph),
        }

    def forward_args(self, args: tuple) -> tuple:
        return args


class VJPCase(Case):
    """A vector-Jacobian product: the last input is the upstream gradient, which the forward
    alone does not take."""

    def forward_args(self, args: tuple) -> tuple:
        return args[:-1]

    def vjp(self, size, fast_math: bool = False):
        """The generated forward then backward of the case's graph, taking the inputs and the
        upstream gradient as the other systems do (compiled with --fast-math, where asked)."""
        module = self.module(size, fast_math=fast_math)
        forward = getattr(module, f"{self.graph}_forward")
        backward = getattr(module, f"{self.graph}_backward")

        def ours(*args):
            out, cache = forward(*self.forward_args(args))
            return tuple(backward(args[-1], cache))

        return ours

    def torch_vjp(self, *args):
        """PyTorch eager: `torch_forward` on leaf tensors, then its backward from the upstream
        gradient."""
        import torch

        leaves = _torch_leaves(*self.forward_args(args))
        self.torch_forward(*leaves).backward(torch.from_numpy(args[-1]))
        return tuple(a.grad.numpy() for a in leaves)

    def cache_bytes(self, size, args):
        inputs = self.forward_args(args)
        forward = getattr(self.module(size), f"{self.graph}_forward")
        out = {"bpc": _cache_nbytes(forward(*inputs)[1])}
        if _has("torch"):
            out["torch"] = _torch_saved_bytes(self.torch_forward, *_torch_leaves(*inputs))
        return out


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
        self.source, self.graph = SEED, "seed"

    def dims(self, n):
        return {"n": n}

    def inputs(self, n):
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, n)), rng.standard_normal(n)

    def systems(self, n):
        m = self.module(n)

        def hand(W, x):
            q = W @ x
            dq = 2 * q
            return q.dot(q), np.outer(dq, x), W.T @ dq

        def ours(W, x):
            f, grads = m.seed_grad(W, x)
            return (f, *grads)

        out = {"hand": hand, "bpc": ours}
        if _has("autograd"):
            import autograd.numpy as anp

            out["autograd"] = _autograd(lambda W, x: anp.sum(anp.dot(W, x) ** 2), (0, 1), True)
        if _has("torch"):

            def t(W, x):
                W, x = _torch_leaves(W, x)
                f = ((W @ x) ** 2).sum()
                f.backward()
                return f.detach().numpy(), W.grad.numpy(), x.grad.numpy()

            out["torch"] = t
        if _has("jax"):
            import jax.numpy as jnp

            out["jax"] = _jax(lambda W, x: jnp.sum((W @ x) ** 2), (0, 1), True)
        return out

    def forwards(self, n):
        def hand(W, x):
            q = W @ x
            return q.dot(q)

        return self.forwards_beside(n, hand)

    def cache_bytes(self, n, args):
        out = {"bpc": _cache_nbytes(self.module(n).seed_forward(*args)[1])}
        if _has("torch"):
            out["torch"] = _torch_saved_bytes(
                lambda W, x: ((W @ x) ** 2).sum(), *_torch_leaves(*args)
            )
        return out


# ---------------------------------------------------------------------------------------------
# The two-layer net of CS231n assignment 1: affine - relu - affine - softmax cross-entropy, + L2


class TwoLayer(Case):
    def __init__(self):
        super().__init__(
            "two-layer net, softmax CE + L2",
            [(64, 784, 128, 10), (512, 784, 512, 10)],
            [(4, 6, 5, 3)],
        )
        self.source, self.graph = (EXAMPLES / "two_layer.bp").read_text(), "two_layer"

    def dims(self, size):
        return dict(zip("NDHC", size))

    def describe(self, size) -> str:
        return ", ".join(map(str, size))

    def inputs(self, size):
        N, D, H, C = size
        rng = np.random.default_rng(2)
        return (
            rng.standard_normal((N, D)),  # standardized pixels
            rng.integers(0, C, N),
            rng.standard_normal((D, H)) * np.sqrt(2 / D),  # He initialization
            0.01 * rng.standard_normal(H),
            rng.standard_normal((H, C)) * np.sqrt(2 / H),
            0.01 * rng.standard_normal(C),
            1e-3,
        )

    def systems(self, size):
        m = self.module(size)

        def hand(X, y, W1, b1, W2, b2, reg):
            return two_layer_by_hand(np, X, y, W1, b1, W2, b2, reg)

        def ours(X, y, W1, b1, W2, b2, reg):
            loss, grads = m.two_layer_grad(X, y, W1, b1, W2, b2, reg)
            return (loss, *grads)

        out = {"hand": hand, "bpc": ours}
        params = (2, 3, 4, 5)
        if _has("autograd"):
            import autograd.numpy as anp
            from autograd.scipy.special import logsumexp

            def f(X, y, W1, b1, W2, b2, reg):
                h = anp.maximum(anp.dot(X, W1) + b1, 0)
                s = anp.dot(h, W2) + b2
                log_probs = s - logsumexp(s, axis=1, keepdims=True)
                l2 = anp.sum(W1 * W1) + anp.sum(W2 * W2)
                return -anp.mean(log_probs[anp.arange(X.shape[0]), y]) + 0.5 * reg * l2

            out["autograd"] = _autograd(f, params, True)
        if _has("torch"):
            import torch

            def t(X, y, W1, b1, W2, b2, reg):
                ps = _torch_leaves(W1, b1, W2, b2)
                loss = _two_layer_torch(torch.from_numpy(X), torch.from_numpy(y), *ps, reg)
                loss.backward()
                return (loss.detach().numpy(), *(p.grad.numpy() for p in ps))

            out["torch"] = t
        if _has("jax"):
            import jax
            import jax.numpy as jnp

            def j(X, y, W1, b1, W2, b2, reg):
                s = jax.nn.relu(X @ W1 + b1) @ W2 + b2
                log_probs = jax.nn.log_softmax(s, axis=1)
                ce = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
                return ce + 0.5 * reg * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

            out["jax"] = _jax(j, params, True)
        return out

    def forwards(self, size):
        def hand(X, y, W1, b1, W2, b2, reg):
            h = X @ W1
            h += b1
            np.maximum(h, 0, out=h)
            scores = h @ W2
            scores += b2
            scores -= scores.max(axis=1, keepdims=True)
            correct = scores[np.arange(X.shape[0]), y]
            sums = np.exp(scores, out=scores).sum(axis=1)
            return np.mean(np.log(sums) - correct) + 0.5 * reg * (np.vdot(W1, W1) + np.vdot(W2, W2))

        return self.forwards_beside(size, hand)

    def cache_bytes(self, size, args):
        out = {"bpc": _cache_nbytes(self.module(size).two_layer_forward(*args)[1])}
        if _has("torch"):
            import torch

            X, y, W1, b1, W2, b2, reg = args
            out["torch"] = _torch_saved_bytes(
                lambda *ps: _two_layer_torch(torch.from_numpy(X), torch.from_numpy(y), *ps, reg),
                *_torch_leaves(W1, b1, W2, b2),
            )
        return out


def two_layer_by_hand(xp, X, y, W1, b1, W2, b2, reg):
    """CS231n's TwoLayerNet.loss, with in-place updates and a stable log-softmax, in the
    library `xp` (NumPy here; bench/targets.py runs the same code on CuPy)."""
    N = X.shape[0]
    rows = xp.arange(N)
    h = X @ W1
    h += b1
    xp.maximum(h, 0, out=h)
    scores = h @ W2
    scores += b2
    scores -= scores.max(axis=1, keepdims=True)
    correct = scores[rows, y]
    probs = xp.exp(scores, out=scores)
    sums = probs.sum(axis=1)
    loss = xp.mean(xp.log(sums) - correct) + 0.5 * reg * (xp.vdot(W1, W1) + xp.vdot(W2, W2))
    probs /= sums[:, None]
    dscores = probs
    dscores[rows, y] -= 1
    dscores /= N
    dW2 = h.T @ dscores
    dW2 += reg * W2
    db2 = dscores.sum(axis=0)
    dh = dscores @ W2.T
    dh *= h > 0
    dW1 = X.T @ dh
    dW1 += reg * W1
    db1 = dh.sum(axis=0)
    return loss, dW1, db1, dW2, db2


def _two_layer_torch(X, y, W1, b1, W2, b2, reg):
    import torch
    import torch.nn.functional as F

    scores = torch.relu(X @ W1 + b1) @ W2 + b2
    return F.cross_entropy(scores, y) + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum())


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


def _batchnorm_ref(np_, x, gamma, beta):
    mu = np_.mean(x, axis=0)
    xc = x - mu
    var = np_.mean(xc * xc, axis=0)
    return gamma * (xc / np_.sqrt(var + 1e-5)) + beta


class BatchNorm(VJPCase):
    def __init__(self):
        super().__init__("batchnorm, VJP", [(64, 128), (1024, 1024)], [(4, 3)])
        self.source, self.graph, self.torch_forward = BATCHNORM, "batchnorm", _batchnorm_torch

    def dims(self, size):
        return dict(zip("ND", size))

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

        out = {"hand": hand, "bpc": self.vjp(size)}
        if _has("autograd"):
            import autograd.numpy as anp

            out["autograd"] = _autograd(
                lambda x, g, b, d: anp.sum(_batchnorm_ref(anp, x, g, b) * d), (0, 1, 2), False
            )
        if _has("torch"):
            out["torch"] = self.torch_vjp
        if _has("jax"):
            import jax.numpy as jnp

            out["jax"] = _jax(
                lambda x, a, b, d: jnp.sum(_batchnorm_ref(jnp, x, a, b) * d), (0, 1, 2), False
            )
        return out

    def forwards(self, size):
        def hand(x, gamma, beta):
            mu = x.mean(axis=0)
            xc = x - mu
            var = (xc * xc).mean(axis=0)
            xc *= gamma / np.sqrt(var + 1e-5)
            xc += beta
            return xc

        return self.forwards_beside(size, hand)


def _batchnorm_torch(x, g, b):
    import torch

    return _batchnorm_ref(torch, x, g, b)  # torch.mean takes `axis` as well as `dim`


# ---------------------------------------------------------------------------------------------
# Scaled dot-product attention, one head: a vector-Jacobian product with an upstream gradient G,
# that is, the gradients of sum(softmax(q k^T / sqrt(d)) v * G)


class Attention(VJPCase):
    def __init__(self):
        super().__init__("attention, VJP", [(32, 16), (512, 64)], [(4, 3)])
        self.source, self.graph = (EXAMPLES / "attention.bp").read_text(), "attention"
        self.torch_forward = _attention_torch

    def dims(self, size):
        S, d = size  # T = S keys and values, m = d value features
        return {"S": S, "T": S, "d": d, "m": d}

    def describe(self, size) -> str:
        return "S x d = {} x {}".format(*size)

    def inputs(self, size):
        S, d = size  # T = S keys and values, m = d value features
        rng = np.random.default_rng(3)
        return tuple(rng.standard_normal((S, d)) for _ in range(4))  # q, k, v, G

    def systems(self, size):
        def hand(q, k, v, G):
            scale = 1.0 / np.sqrt(q.shape[1])
            qs = q * scale  # scale the smaller [S, d] operand, not the [S, T] scores
            p = qs @ k.T
            p -= p.max(axis=1, keepdims=True)
            np.exp(p, out=p)
            p /= p.sum(axis=1, keepdims=True)
            out = p @ v
            dv = p.T @ G
            dp = G @ v.T
            # softmax backward: ds = p * (dp - rowsum(p * dp)), and rowsum(p * dp) = rowsum(G * out)
            dp -= np.einsum("ij,ij->i", G, out)[:, None]
            dp *= p
            dq = dp @ k
            dq *= scale
            dk = dp.T @ qs
            return dq, dk, dv

        out = {"hand": hand, "bpc": self.vjp(size)}
        if _has("autograd"):
            import autograd.numpy as anp

            def f(q, k, v, G):
                s = anp.dot(q, k.T) / np.sqrt(q.shape[1])
                e = anp.exp(s - anp.max(s, axis=1, keepdims=True))
                return anp.sum(anp.dot(e / anp.sum(e, axis=1, keepdims=True), v) * G)

            out["autograd"] = _autograd(f, (0, 1, 2), False)
        if _has("torch"):
            out["torch"] = self.torch_vjp
        if _has("jax"):
            import jax
            import jax.numpy as jnp

            def j(q, k, v, G):
                p = jax.nn.softmax(q @ k.T / jnp.sqrt(q.shape[1]), axis=-1)
                return jnp.sum((p @ v) * G)

            out["jax"] = _jax(j, (0, 1, 2), False)
        return out

    def forwards(self, size):
        def hand(q, k, v):
            p = (q * (1.0 / np.sqrt(q.shape[1]))) @ k.T
            p -= p.max(axis=1, keepdims=True)
            np.exp(p, out=p)
            p /= p.sum(axis=1, keepdims=True)
            return p @ v

        return self.forwards_beside(size, hand)


def _attention_torch(q, k, v):
    import torch

    return torch.softmax(q @ k.T / q.shape[1] ** 0.5, dim=-1) @ v


CASES = [Seed(), TwoLayer(), BatchNorm(), Attention()]


def report(table: str, machine: str, command: str) -> str:
    return f"""# Performance

Measured by `python bench/run.py{(" " + command) if command else ""}` on: {machine}.

Times are medians of interleaved repeats; each ratio is the median of per-repeat ratios against
hand-written NumPy in the same repeat (below 1.00 is faster than the hand-written code).
bpc's modules are compiled for each case's sizes (`bpc compile --dim`), as JAX's jit compiles for
the shapes it is given; of these models, only attention's code differs from the code compiled
without them. "fwd" is the generated forward-only function over a hand-written forward, and
"--no-checks" the same compiled without argument checks; "peak" is
tracemalloc's peak for one call of the generated code over the hand-written one; "cache" is the
bytes of the distinct arrays `g_forward` keeps over those of the tensors PyTorch's autograd saves
for the same model (both count the inputs they keep).

{table}
"""
