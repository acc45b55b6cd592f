"""The convolutional benchmark models (issue 13): a conv layer, max pooling and CS231n's
three-layer convnet, each against hand-written expert NumPy, PyTorch eager (F.conv2d, oneDNN)
and JAX jit (lax.conv_general_dilated). HIPS autograd has no convolution of its own: its column
stays empty.

The hand-written code is the fastest NumPy we could write, chosen among the forms that
bench/conv_forms.py times against each other: im2col through a window view copied once into
[C*K*K, N*OH*OW] columns and one BLAS product (CS231n's conv_forward_im2col, with the columns
kept for dW), col2im as one strided addition per kernel offset; pooling as one elementwise
maximum per kernel offset, its gradient routed to the first maximum offset by offset.
"""

from __future__ import annotations

import numpy as np
from cases import (
    EXAMPLES,
    Case,
    VJPCase,
    _cache_nbytes,
    _has,
    _jax,
    _torch_leaves,
    _torch_saved_bytes,
)
from numpy.lib.stride_tricks import sliding_window_view

# ---------------------------------------------------------------------------------------------
# The hand-written layers


def conv_forward(x, w, b, stride, pad):
    """y [N, F, OH, OW] and the columns [C*K*K, N*OH*OW] that dW reads again."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    view = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride]
    OH, OW = view.shape[2:4]
    cols = view.transpose(1, 4, 5, 0, 2, 3).reshape(C * KH * KW, -1)
    y = (w.reshape(F, -1) @ cols).reshape(F, N, OH, OW)
    y += b[:, None, None, None]
    return y.transpose(1, 0, 2, 3), cols


def conv_backward(dy, x, w, cols, stride, pad, dx=True):
    """dx (unless not wanted: the input layer's), dw, db."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    db = dy.sum(axis=(0, 2, 3))
    dy_rows = dy.transpose(1, 0, 2, 3).reshape(F, -1)
    dw = (dy_rows @ cols.T).reshape(w.shape)
    if not dx:
        return None, dw, db
    dcols = (w.reshape(F, -1).T @ dy_rows).reshape(C, KH, KW, N, OH, OW)
    dxp = np.zeros((C, N, H + 2 * pad, W + 2 * pad), x.dtype)  # col2im, channels first
    for i in range(KH):
        for j in range(KW):
            dxp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride] += dcols[:, i, j]
    return dxp[:, :, pad : pad + H, pad : pad + W].transpose(1, 0, 2, 3), dw, db


def _offsets(k, s, oh, ow):
    for i in range(k):
        for j in range(k):
            yield (..., slice(i, i + s * oh, s), slice(j, j + s * ow, s))


def pool_forward(x, k, s):
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    at = list(_offsets(k, s, oh, ow))
    y = x[at[0]].copy()
    for a in at[1:]:
        np.maximum(y, x[a], out=y)
    return y


def pool_backward(dy, x, y, k, s):
    """dy to the first maximum of each window, in row-major order."""
    dx = np.zeros_like(x)
    free, hit = np.ones(y.shape, bool), np.empty(y.shape, bool)
    for a in _offsets(k, s, *y.shape[2:]):
        np.equal(x[a], y, out=hit)
        hit &= free
        free ^= hit
        if s >= k:
            np.multiply(hit, dy, out=dx[a])
        else:
            dx[a] += hit * dy
    return dx


# ---------------------------------------------------------------------------------------------
# The rivals' layers


def _torch_conv(stride, pad):
    def f(x, w, b):
        import torch.nn.functional as F

        return F.conv2d(x, w, b, stride=stride, padding=pad)

    return f


def _jax_conv(x, w, b, stride, pad):
    from jax import lax

    y = lax.conv_general_dilated(
        x, w, (stride, stride), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return y + b[:, None, None]


def _jax_pool(x, k, s):
    import jax.numpy as jnp
    from jax import lax

    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), "VALID")


# ---------------------------------------------------------------------------------------------
# One conv layer: the gradients of sum(conv2d(x, w, b) * G)


class ConvLayer(VJPCase):
    def __init__(self):
        super().__init__(
            "conv layer, VJP",
            [
                (50, 3, 32, 32, 32, 3, 1, 1),
                (8, 64, 56, 56, 64, 3, 1, 1),
                (50, 3, 32, 32, 32, 3, 2, 1),
            ],
            [(2, 3, 7, 6, 4, 3, 2, 1)],
        )
        self.graph = "conv"

    def describe(self, size) -> str:
        N, C, H, W, F, K, s, p = size
        return f"{N}x{C}x{H}x{W}, {F} {K}x{K}, s{s} p{p}"

    def dims(self, size):
        N, C, H, W, F, K, s, p = size
        self.source = (
            f"graph conv(x: [N, C, H, W], w: [F, C, K, K], b: [F]) -> y {{\n"
            f"    y = conv2d(x, w, b, stride={s}, pad={p})\n}}\n"
        )
        return dict(zip("NCHWFK", size))

    def inputs(self, size):
        N, C, H, W, F, K, s, p = size
        rng = np.random.default_rng(5)
        OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
        return (
            rng.standard_normal((N, C, H, W)),
            rng.standard_normal((F, C, K, K)) * np.sqrt(2 / (C * K * K)),
            0.01 * rng.standard_normal(F),
            rng.standard_normal((N, F, OH, OW)),
        )

    def systems(self, size):
        s, p = size[6:]

        def hand(x, w, b, G):
            y, cols = conv_forward(x, w, b, s, p)  # noqa: F841 - the forward is part of the work
            return conv_backward(G, x, w, cols, s, p)

        out = {"hand": hand, "bpc": self.vjp(size)}
        self.torch_forward = _torch_conv(s, p)
        if _has("torch"):
            out["torch"] = self.torch_vjp
        if _has("jax"):
            import jax.numpy as jnp

            out["jax"] = _jax(
                lambda x, w, b, G: jnp.sum(_jax_conv(x, w, b, s, p) * G), (0, 1, 2), False
            )
        return out

    def forwards(self, size):
        s, p = size[6:]
        return self.forwards_beside(size, lambda x, w, b: conv_forward(x, w, b, s, p)[0])

    def cache_bytes(self, size, args):
        self.torch_forward = _torch_conv(*size[6:])
        return super().cache_bytes(size, args)


# ---------------------------------------------------------------------------------------------
# Max pooling: the gradient of sum(max_pool2d(x) * G)


class MaxPool(VJPCase):
    def __init__(self):
        super().__init__(
            "max pooling, VJP",
            [(50, 32, 32, 32, 2, 2), (8, 64, 56, 56, 3, 2)],
            [(2, 3, 7, 6, 2, 2)],
        )
        self.graph = "pool"

    def describe(self, size) -> str:
        N, C, H, W, k, s = size
        return f"{N}x{C}x{H}x{W}, {k}x{k} s{s}"

    def dims(self, size):
        N, C, H, W, k, s = size
        self.source = (
            f"graph pool(x: [N, C, H, W]) -> y {{\n"
            f"    y = max_pool2d(x, size={k}, stride={s})\n}}\n"
        )
        return dict(zip("NCHW", size))

    def inputs(self, size):
        N, C, H, W, k, s = size
        rng = np.random.default_rng(6)
        OH, OW = (H - k) // s + 1, (W - k) // s + 1
        return rng.standard_normal((N, C, H, W)), rng.standard_normal((N, C, OH, OW))

    def systems(self, size):
        k, s = size[4:]

        def hand(x, G):
            y = pool_forward(x, k, s)
            return (pool_backward(G, x, y, k, s),)

        out = {"hand": hand, "bpc": self.vjp(size)}
        self.torch_forward = _torch_pool(k, s)
        if _has("torch"):
            out["torch"] = self.torch_vjp
        if _has("jax"):
            import jax.numpy as jnp

            out["jax"] = _jax(lambda x, G: jnp.sum(_jax_pool(x, k, s) * G), (0,), False)
        return out

    def forwards(self, size):
        k, s = size[4:]
        return self.forwards_beside(size, lambda x: pool_forward(x, k, s))

    def cache_bytes(self, size, args):
        self.torch_forward = _torch_pool(*size[4:])
        return super().cache_bytes(size, args)


def _torch_pool(k, s):
    def f(x):
        import torch.nn.functional as F

        return F.max_pool2d(x, k, s)

    return f


# ---------------------------------------------------------------------------------------------
# CS231n's ThreeLayerConvNet: conv - relu - 2x2 max pool - affine - relu - affine - softmax,
# with L2 regularization; the loss and the gradients of the six parameters


class ConvNet(Case):
    def __init__(self):
        super().__init__(
            "three-layer convnet",
            [(64, 3, 32, 32, 32, 1, 100, 10), (64, 3, 32, 32, 32, 3, 100, 10)],
            [(3, 2, 8, 8, 4, 1, 5, 3)],
        )
        self.source, self.graph = (EXAMPLES / "convnet.bp").read_text(), "convnet"

    def dims(self, size):
        return dict(zip("NCHWFRMK", size))  # filters of 2*R + 1, padding R

    def describe(self, size) -> str:
        N, C, H, W, F, R, D, M = size
        return f"{N}x{C}x{H}x{W}, {F} {2 * R + 1}x{2 * R + 1}, {D}, {M}"

    def inputs(self, size):
        N, C, H, W, F, R, D, M = size
        K = 2 * R + 1
        rng = np.random.default_rng(7)
        flat = F * (H // 2) * (W // 2)
        return (
            rng.standard_normal((N, C, H, W)),
            rng.integers(0, M, N),
            rng.standard_normal((F, C, K, K)) * np.sqrt(2 / (C * K * K)),
            np.zeros(F),
            rng.standard_normal((flat, D)) * np.sqrt(2 / flat),
            np.zeros(D),
            rng.standard_normal((D, M)) * np.sqrt(2 / D),
            np.zeros(M),
            1e-3,
        )

    def systems(self, size):
        m = self.module(size)
        pad = size[5]  # examples/convnet.bp: filters of 2*R + 1, padding R

        def hand(X, y, W1, b1, W2, b2, W3, b3, reg):
            N = X.shape[0]
            rows = np.arange(N)
            c, cols = conv_forward(X, W1, b1, 1, pad)
            r = np.maximum(c, 0)
            p = pool_forward(r, 2, 2)
            flat = p.reshape(N, -1)
            h = flat @ W2
            h += b2
            np.maximum(h, 0, out=h)
            scores = h @ W3
            scores += b3
            scores -= scores.max(axis=1, keepdims=True)
            correct = scores[rows, y]
            probs = np.exp(scores, out=scores)
            sums = probs.sum(axis=1)
            l2 = np.vdot(W1, W1) + np.vdot(W2, W2) + np.vdot(W3, W3)
            loss = np.mean(np.log(sums) - correct) + 0.5 * reg * l2
            probs /= sums[:, None]
            dscores = probs
            dscores[rows, y] -= 1
            dscores /= N
            dW3 = h.T @ dscores
            dW3 += reg * W3
            db3 = dscores.sum(axis=0)
            dh = dscores @ W3.T
            dh *= h > 0
            dW2 = flat.T @ dh
            dW2 += reg * W2
            db2 = dh.sum(axis=0)
            dp = (dh @ W2.T).reshape(p.shape)
            dr = pool_backward(dp, r, p, 2, 2)
            dr *= r > 0
            _, dW1, db1 = conv_backward(dr, X, W1, cols, 1, pad, dx=False)
            dW1 += reg * W1
            return loss, dW1, db1, dW2, db2, dW3, db3

        def ours(*args):
            loss, grads = m.convnet_grad(*args)
            return (loss, *grads)

        out = {"hand": hand, "bpc": ours}
        params = (2, 3, 4, 5, 6, 7)
        if _has("torch"):
            import torch

            def t(X, y, W1, b1, W2, b2, W3, b3, reg):
                ps = _torch_leaves(W1, b1, W2, b2, W3, b3)
                loss = _convnet_torch(torch.from_numpy(X), torch.from_numpy(y), *ps, reg, pad)
                loss.backward()
                return (loss.detach().numpy(), *(q.grad.numpy() for q in ps))

            out["torch"] = t
        if _has("jax"):
            import jax
            import jax.numpy as jnp

            def j(X, y, W1, b1, W2, b2, W3, b3, reg):
                r = jax.nn.relu(_jax_conv(X, W1, b1, 1, pad))
                h = jax.nn.relu(_jax_pool(r, 2, 2).reshape(X.shape[0], -1) @ W2 + b2)
                log_probs = jax.nn.log_softmax(h @ W3 + b3, axis=1)
                ce = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
                l2 = jnp.sum(W1 * W1) + jnp.sum(W2 * W2) + jnp.sum(W3 * W3)
                return ce + 0.5 * reg * l2

            out["jax"] = _jax(j, params, True)
        return out

    def forwards(self, size):
        pad = size[5]

        def hand(X, y, W1, b1, W2, b2, W3, b3, reg):
            c, _ = conv_forward(X, W1, b1, 1, pad)
            p = pool_forward(np.maximum(c, 0), 2, 2)
            h = p.reshape(X.shape[0], -1) @ W2
            h += b2
            np.maximum(h, 0, out=h)
            scores = h @ W3
            scores += b3
            scores -= scores.max(axis=1, keepdims=True)
            correct = scores[np.arange(X.shape[0]), y]
            sums = np.exp(scores, out=scores).sum(axis=1)
            l2 = np.vdot(W1, W1) + np.vdot(W2, W2) + np.vdot(W3, W3)
            return np.mean(np.log(sums) - correct) + 0.5 * reg * l2

        return self.forwards_beside(size, hand)

    def cache_bytes(self, size, args):
        out = {"bpc": _cache_nbytes(self.module(size).convnet_forward(*args)[1])}
        if _has("torch"):
            import torch

            X, y, *ps, reg = args
            pad = size[5]
            out["torch"] = _torch_saved_bytes(
                lambda *qs: _convnet_torch(torch.from_numpy(X), torch.from_numpy(y), *qs, reg, pad),
                *_torch_leaves(*ps),
            )
        return out


def _convnet_torch(X, y, W1, b1, W2, b2, W3, b3, reg, pad):
    import torch
    import torch.nn.functional as F

    r = torch.relu(F.conv2d(X, W1, b1, padding=pad))
    h = torch.relu(F.max_pool2d(r, 2, 2).reshape(X.shape[0], -1) @ W2 + b2)
    l2 = (W1 * W1).sum() + (W2 * W2).sum() + (W3 * W3).sum()
    return F.cross_entropy(h @ W3 + b3, y) + 0.5 * reg * l2


CASES = [ConvLayer(), MaxPool(), ConvNet()]
