"""The convolutional layers of examples/conv_layers.bp and the three-layer convnet of
examples/convnet.bp against CS231n's definitions, at several shapes (non-square images, odd
sizes that the pooling rounds down, N = 1).

Each forward pass is compared with a NumPy reference written as CS231n's naive solutions are
(loops over pixels, windows and groups); each backward pass, for a random upstream gradient, with
central finite differences of that reference in float64, and with HIPS autograd on the layer
written again in `autograd.numpy` (a convolution as a sum of shifted slices, pooling by reshape).
float32 inputs give float32 outputs and gradients.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from bpc.build import build_ir
from bpc.parse import parse
from tests.support import load, numeric_grad, rel_error

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-5
GROUPS = 2  # the number of groups written into examples/conv_layers.bp's spatial_groupnorm


@functools.cache
def module(name: str):
    return load((ROOT / "examples" / f"{name}.bp").read_text(), f"bpc_test_{name}")


# ---------------------------------------------------------------------------------------------
# NumPy references, from CS231n's definitions.


def batchnorm_ref(x, gamma, beta):
    """CS231n's batchnorm_forward in training mode, on x: [M, D]."""
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    return gamma * (x - mu) / np.sqrt(var + EPS) + beta


def spatial_batchnorm_ref(x, gamma, beta):
    """CS231n's spatial_batchnorm_forward: the channels last, every pixel of every image a row of
    an [N*H*W, C] batch for batchnorm_forward, and back."""
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(N * H * W, C)
    return batchnorm_ref(rows, gamma, beta).reshape(N, H, W, C).transpose(0, 3, 1, 2)


def spatial_groupnorm_ref(x, gamma, beta, G=GROUPS):
    """CS231n's spatial_groupnorm_forward: each example's channels in G groups, each group
    normalized over its channels and pixels, by a loop over examples and groups."""
    N, C, H, W = x.shape
    D = C // G
    xhat = np.empty_like(x)
    for n in range(N):
        for g in range(G):
            block = x[n, g * D : (g + 1) * D]
            xhat[n, g * D : (g + 1) * D] = (block - block.mean()) / np.sqrt(block.var() + EPS)
    return gamma * xhat + beta


def conv_ref(x, w, b, stride, pad):
    """CS231n's conv_forward_naive: a loop over the output pixels."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, _, Hp, Wp = xp.shape
    F, _, KH, KW = w.shape
    out = np.zeros((N, F, (Hp - KH) // stride + 1, (Wp - KW) // stride + 1), x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = xp[:, :, i * stride : i * stride + KH, j * stride : j * stride + KW]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def max_pool_ref(x, size=2, stride=2):
    """CS231n's max_pool_forward_naive: a loop over the output pixels."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, (H - size) // stride + 1, (W - size) // stride + 1), x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def conv_relu_pool_ref(x, w, b):
    """CS231n's conv_relu_pool_forward with the conv_param of ThreeLayerConvNet, {stride: 1,
    pad: (filter_size - 1) // 2}, and 2x2 pooling."""
    pad = (w.shape[2] - 1) // 2
    return max_pool_ref(np.maximum(conv_ref(x, w, b, stride=1, pad=pad), 0))


def softmax_loss_ref(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean()


def convnet_scores_ref(X, W1, b1, W2, b2, W3, b3):
    """ThreeLayerConvNet.loss(X) of CS231n: the class scores."""
    h1 = conv_relu_pool_ref(X, W1, b1)
    h2 = np.maximum(h1.reshape(len(X), -1) @ W2 + b2, 0)
    return h2 @ W3 + b3


def convnet_ref(X, y, W1, b1, W2, b2, W3, b3, reg):
    """ThreeLayerConvNet.loss(X, y) of CS231n: the softmax loss plus 0.5 * reg * sum(W**2)."""
    scores = convnet_scores_ref(X, W1, b1, W2, b2, W3, b3)
    return softmax_loss_ref(scores, y) + 0.5 * reg * sum(np.sum(W * W) for W in (W1, W2, W3))


REFERENCES = {
    "spatial_batchnorm": spatial_batchnorm_ref,
    "spatial_groupnorm": spatial_groupnorm_ref,
    "conv_relu_pool": conv_relu_pool_ref,
    "convnet": convnet_ref,
    "convnet_scores": convnet_scores_ref,
}


# ---------------------------------------------------------------------------------------------
# The same layers in autograd.numpy, for autograd to differentiate.


def _ag_normalize(x, axis):
    mu = anp.mean(x, axis=axis, keepdims=True)
    var = anp.mean((x - mu) ** 2, axis=axis, keepdims=True)
    return (x - mu) / anp.sqrt(var + EPS)


def ag_spatial_batchnorm(x, gamma, beta):
    return gamma[:, None, None] * _ag_normalize(x, (0, 2, 3)) + beta[:, None, None]


def ag_spatial_groupnorm(x, gamma, beta):
    N, C, H, W = x.shape
    xhat = _ag_normalize(anp.reshape(x, (N, GROUPS, C // GROUPS, H, W)), (2, 3, 4))
    return gamma * anp.reshape(xhat, (N, C, H, W)) + beta


def ag_conv(x, w, b):
    """A K x K convolution (K odd), stride 1, pad (K - 1) / 2 = R: the sum over the kernel
    offsets (i, j) of the padded image shifted by (i, j), times the filters' taps there."""
    N, C, H, W = x.shape
    K = w.shape[2]
    R = (K - 1) // 2
    if R:
        rows, cols = anp.zeros((N, C, R, W)), anp.zeros((N, C, H + 2 * R, R))
        x = anp.concatenate([rows, x, rows], axis=2)
        x = anp.concatenate([cols, x, cols], axis=3)
    out = 0.0
    for i in range(K):
        for j in range(K):
            shifted = x[:, :, i : i + H, j : j + W]
            out = out + anp.einsum("nchw,fc->nfhw", shifted, w[:, :, i, j])
    return out + b[None, :, None, None]


def ag_max_pool(x):
    """2x2 max pooling, stride 2: the last row and column of an odd size dropped, then by reshape."""
    N, C, H, W = x.shape
    x = x[:, :, : H // 2 * 2, : W // 2 * 2]
    return anp.max(anp.reshape(x, (N, C, H // 2, 2, W // 2, 2)), axis=(3, 5))


def ag_conv_relu_pool(x, w, b):
    return ag_max_pool(anp.maximum(ag_conv(x, w, b), 0))


def ag_convnet_scores(X, W1, b1, W2, b2, W3, b3):
    h1 = ag_conv_relu_pool(X, W1, b1)
    h2 = anp.maximum(anp.dot(anp.reshape(h1, (X.shape[0], -1)), W2) + b2, 0)
    return anp.dot(h2, W3) + b3


def ag_convnet(X, y, W1, b1, W2, b2, W3, b3, reg):
    scores = ag_convnet_scores(X, W1, b1, W2, b2, W3, b3)
    shifted = scores - anp.max(scores, axis=1, keepdims=True)
    log_probs = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    data_loss = -anp.mean(log_probs[np.arange(len(y)), y])
    return data_loss + 0.5 * reg * (anp.sum(W1 * W1) + anp.sum(W2 * W2) + anp.sum(W3 * W3))


AUTOGRAD = {
    "spatial_batchnorm": ag_spatial_batchnorm,
    "spatial_groupnorm": ag_spatial_groupnorm,
    "conv_relu_pool": ag_conv_relu_pool,
    "convnet": ag_convnet,
    "convnet_scores": ag_convnet_scores,
}


# ---------------------------------------------------------------------------------------------
# The cases: (file, graph, arguments), drawn at several shapes.


def _normal(rng, *shape):
    return rng.normal(size=shape)


def batchnorm_args(rng, N, C, H, W):
    return [rng.normal(1.5, 2.0, size=(N, C, H, W)), _normal(rng, C), _normal(rng, C)]


def groupnorm_args(rng, N, C, H, W):
    x = rng.normal(-1.0, 3.0, size=(N, C, H, W))
    return [x, _normal(rng, 1, C, 1, 1), _normal(rng, 1, C, 1, 1)]


def conv_relu_pool_args(rng, N, C, H, W, F, S):
    return [_normal(rng, N, C, H, W), _normal(rng, F, C, S, S) / S, _normal(rng, F)]


def convnet_weights(rng, C, H, W, F, S, M, K):
    """The weights for F filters of S x S, M hidden units and K classes."""
    D = F * (H // 2) * (W // 2)
    return [
        _normal(rng, F, C, S, S) / S,
        _normal(rng, F) * 0.1,
        _normal(rng, D, M) / np.sqrt(D),
        _normal(rng, M) * 0.1,
        _normal(rng, M, K) / np.sqrt(M),
        _normal(rng, K) * 0.1,
    ]


def convnet_args(rng, N, C, H, W, F, S, M, K):
    X, y = _normal(rng, N, C, H, W), rng.integers(0, K, size=N)
    return [X, y, *convnet_weights(rng, C, H, W, F, S, M, K), 0.3]


def convnet_scores_args(rng, N, C, H, W, F, S, M, K):
    return [_normal(rng, N, C, H, W), *convnet_weights(rng, C, H, W, F, S, M, K)]


CASES = [
    ("conv_layers", "spatial_batchnorm", batchnorm_args, (2, 3, 4, 5)),
    ("conv_layers", "spatial_batchnorm", batchnorm_args, (1, 2, 3, 7)),
    ("conv_layers", "spatial_batchnorm", batchnorm_args, (4, 1, 2, 2)),
    ("conv_layers", "spatial_groupnorm", groupnorm_args, (2, 4, 3, 5)),
    ("conv_layers", "spatial_groupnorm", groupnorm_args, (1, 6, 2, 3)),
    ("conv_layers", "spatial_groupnorm", groupnorm_args, (3, 2, 5, 1)),
    ("conv_layers", "conv_relu_pool", conv_relu_pool_args, (2, 3, 6, 5, 4, 3)),
    ("conv_layers", "conv_relu_pool", conv_relu_pool_args, (1, 1, 8, 8, 2, 5)),
    ("conv_layers", "conv_relu_pool", conv_relu_pool_args, (3, 2, 3, 7, 3, 1)),
    ("convnet", "convnet", convnet_args, (2, 1, 8, 8, 3, 3, 5, 4)),
    ("convnet", "convnet", convnet_args, (1, 2, 6, 4, 2, 5, 3, 3)),
    ("convnet", "convnet", convnet_args, (3, 3, 5, 7, 2, 1, 4, 5)),
    ("convnet", "convnet_scores", convnet_scores_args, (2, 1, 8, 8, 3, 3, 5, 4)),
    ("convnet", "convnet_scores", convnet_scores_args, (1, 2, 5, 4, 2, 5, 3, 3)),
]
IDS = [f"{graph}-{'x'.join(map(str, sizes))}" for _, graph, _, sizes in CASES]


def _case(file, graph, make, sizes, seed=0):
    args = make(np.random.default_rng(seed), *sizes)
    forward = getattr(module(file), f"{graph}_forward")
    backward = getattr(module(file), f"{graph}_backward")
    return args, forward, backward


def _upstream(out, seed=1):
    return 1.0 if np.ndim(out) == 0 else np.random.default_rng(seed).normal(size=np.shape(out))


def _float_args(args):
    """The indices of the float array arguments (labels and reg are not differentiated)."""
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


def test_every_graph_is_checked():
    graphs = {
        g.name
        for file in ("conv_layers", "convnet")
        for g in build_ir(parse((ROOT / "examples" / f"{file}.bp").read_text()))
    }
    assert graphs == set(REFERENCES)
    assert {graph for _, graph, _, _ in CASES} == set(REFERENCES) == set(AUTOGRAD)


@pytest.mark.parametrize("file, graph, make, sizes", CASES, ids=IDS)
def test_forward_matches_the_cs231n_reference(file, graph, make, sizes):
    args, forward, _ = _case(file, graph, make, sizes)
    out, _ = forward(*args)
    want = REFERENCES[graph](*args)
    assert np.shape(out) == np.shape(want)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("file, graph, make, sizes", CASES, ids=IDS)
def test_backward_matches_finite_differences_of_the_reference(file, graph, make, sizes):
    args, forward, backward = _case(file, graph, make, sizes)
    out, cache = forward(*args)
    dout = _upstream(out)
    grads = backward(dout, cache)
    reference = REFERENCES[graph]

    def objective(*a):
        return float(np.sum(reference(*a) * dout))

    names = list(inspect.signature(forward).parameters)
    for name, grad in zip(grads._fields, grads):
        i = names.index(name)
        assert grad.shape == args[i].shape
        assert rel_error(grad, numeric_grad(objective, args, i)) < 1e-6, f"d{name} of {graph}"


@pytest.mark.parametrize("file, graph, make, sizes", CASES, ids=IDS)
def test_backward_matches_autograd(file, graph, make, sizes):
    args, forward, backward = _case(file, graph, make, sizes, seed=2)
    out, cache = forward(*args)
    dout = _upstream(out, seed=3)
    grads = backward(dout, cache)
    layer = AUTOGRAD[graph]
    np.testing.assert_allclose(layer(*args), out, rtol=1e-10, atol=1e-12)
    names = list(inspect.signature(forward).parameters)
    for name, grad in zip(grads._fields, grads):
        i = names.index(name)

        def objective(v, i=i):
            return anp.sum(layer(*args[:i], v, *args[i + 1 :]) * dout)

        want = autograd.grad(objective)(args[i])
        assert rel_error(grad, want) < 1e-10, f"d{name} of {graph}"


@pytest.mark.parametrize("file, graph, make, sizes", CASES, ids=IDS)
def test_float32_stays_float32(file, graph, make, sizes):
    args64, forward, backward = _case(file, graph, make, sizes, seed=4)
    args = [a.astype(np.float32) if i in _float_args(args64) else a for i, a in enumerate(args64)]
    out, cache = forward(*args)
    assert np.asarray(out).dtype == np.float32
    grads = backward(np.ones_like(out), cache)
    for name, g in zip(grads._fields, grads):
        assert g.dtype == np.float32, f"d{name} of {graph} is {g.dtype}"
    want = REFERENCES[graph](*args64)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# What CS231n derives by hand, and what the layers refuse.


def test_spatial_batchnorm_backward_is_batchnorm_backward_on_the_pixels():
    """CS231n's spatial_batchnorm_backward: the compact batchnorm backward on the [N*H*W, C]
    rows of pixels, transposed back."""
    rng = np.random.default_rng(5)
    N, C, H, W = 3, 4, 5, 2
    x, gamma, beta = batchnorm_args(rng, N, C, H, W)
    dout = rng.normal(size=(N, C, H, W))
    out, cache = module("conv_layers").spatial_batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = module("conv_layers").spatial_batchnorm_backward(dout, cache)

    def rows(a):
        return a.transpose(0, 2, 3, 1).reshape(N * H * W, C)

    invstd = 1 / np.sqrt(rows(x).var(axis=0) + EPS)
    xhat = (rows(x) - rows(x).mean(axis=0)) * invstd
    M = N * H * W
    want_dbeta, want_dgamma = rows(dout).sum(axis=0), (rows(dout) * xhat).sum(axis=0)
    want_dx = gamma * invstd / M * (M * rows(dout) - want_dbeta - xhat * want_dgamma)
    np.testing.assert_allclose(dbeta, want_dbeta, rtol=1e-10)
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-10)
    np.testing.assert_allclose(rows(dx), want_dx, rtol=1e-8, atol=1e-12)


def test_group_norm_needs_channels_in_whole_groups():
    x, gamma, beta = groupnorm_args(np.random.default_rng(6), 2, 3, 2, 2)
    with pytest.raises(ValueError, match="needs C to be a multiple of 2, but C is 3"):
        module("conv_layers").spatial_groupnorm(x, gamma, beta)


def test_the_convnet_refuses_a_w2_that_does_not_fit_the_pooled_maps():
    X, y, W1, b1, W2, b2, W3, b3, reg = convnet_args(
        np.random.default_rng(7), 2, 1, 8, 8, 3, 3, 5, 4
    )
    with pytest.raises(ValueError, match=r"W2 has shape \(40, 5\).*F\*\(H//2\)\*\(W//2\)"):
        module("convnet").convnet(X, y, W1, b1, W2[:40], b2, W3, b3, reg)


def test_the_convnet_loss_is_about_log_k_at_small_weights():
    """CS231n's sanity check: with tiny weights and no regularization the loss is log(K)."""
    rng = np.random.default_rng(8)
    N, C, H, W, F, S, M, K = 8, 1, 8, 8, 4, 3, 6, 10
    X, y = rng.normal(size=(N, C, H, W)), rng.integers(0, K, size=N)
    weights = [w * 1e-3 for w in convnet_weights(rng, C, H, W, F, S, M, K)]
    loss, grads = module("convnet").convnet_grad(X, y, *weights, 0.0)
    assert abs(loss - np.log(K)) < 1e-3
    loss_reg, _ = module("convnet").convnet_grad(X, y, *weights, 1.0)
    assert loss_reg > loss
