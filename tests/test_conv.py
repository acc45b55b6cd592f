"""conv2d and pooling beyond the op cases (tests/op_cases/conv.py, which check every case
against finite differences in float64, autograd on tests/oracle_rules/conv.py, and float32):
max pooling's gradient on ties, the emitted form, and the conditions on sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpc import compile_source
from tests.support import load, numeric_grad, rel_error

ROOT = Path(__file__).resolve().parent.parent
CONV = """graph f(x: [N, C, H, W], w: [F, C, KH, KW], b: [F]) -> out wrt x, w, b {
    out = conv2d(x, w, b, stride=2, pad=1)
}
"""
POOL = """graph f(x: [N, C, H, W]) -> out wrt x {
    out = max_pool2d(x, size=SIZE, stride=STRIDE)
}
"""


def _naive_conv(x, w, b, s, p):
    """CS231n's conv_forward_naive."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, _, h, wd = xp.shape
    f, _, kh, kw = w.shape
    out = np.zeros((n, f, (h - kh) // s + 1, (wd - kw) // s + 1), x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = xp[:, None, :, i * s : i * s + kh, j * s : j * s + kw]
            out[:, :, i, j] = (patch * w[None]).sum(axis=(2, 3, 4)) + b
    return out


def _naive_max_pool_grad(x, g, k, s):
    """CS231n's max_pool_backward_naive: each window's gradient to its first maximum; k and s
    are integers or (h, w) pairs."""
    (kh, kw), (sh, sw) = (k if isinstance(k, tuple) else (k, k)), (
        s if isinstance(s, tuple) else (s, s)
    )
    dx = np.zeros_like(x)
    for idx in np.ndindex(*g.shape):
        n, c, i, j = idx
        window = x[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw]
        a, b = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, i * sh + a, j * sw + b] += g[idx]
    return dx


@pytest.mark.parametrize("shape", [(1, 1, 7, 5), (2, 3, 6, 9)])
def test_conv_against_the_naive_loop(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape)
    w = rng.normal(size=(4, shape[1], 3, 2))
    b = rng.normal(size=4)
    m = load(CONV)
    np.testing.assert_allclose(m.f(x, w, b), _naive_conv(x, w, b, 2, 1), rtol=1e-12)
    out, cache = m.f_forward(x, w, b)
    g = rng.normal(size=out.shape)
    for i, d in enumerate(m.f_backward(g, cache)):
        fd = numeric_grad(lambda *a: float((_naive_conv(*a, 2, 1) * g).sum()), [x, w, b], i)
        assert rel_error(d, fd) < 1e-6


def test_conv_float32_stays_float32():
    rng = np.random.default_rng(2)
    x, w, b = (rng.normal(size=s).astype(np.float32) for s in ((2, 3, 5, 5), (2, 3, 3, 3), (2,)))
    m = load(CONV)
    out, cache = m.f_forward(x, w, b)
    grads = m.f_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and all(d.dtype == np.float32 for d in grads)


@pytest.mark.parametrize("k, s", [(2, 2), (3, 2), (2, 1)])
def test_max_pool_gradient_goes_to_the_first_maximum(k, s):
    """Ties everywhere (integers in 0..2): the gradient goes to the first maximum in row-major
    order, as in PyTorch, never shared."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 2, 7, 6)).astype(np.float64)
    m = load(POOL.replace("SIZE", str(k)).replace("STRIDE", str(s)))
    out, cache = m.f_forward(x)
    g = rng.normal(size=out.shape)
    (dx,) = m.f_backward(g, cache)
    np.testing.assert_allclose(dx, _naive_max_pool_grad(x, g, k, s), rtol=1e-12)


@pytest.mark.parametrize("k, s", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 2))])
def test_max_pool_route_and_pick_are_transposes(k, s):
    """<route(g), d> == <g, pick(d)> for the two helpers of max pooling's first and second
    derivatives, on ties everywhere: pick reads exactly where route writes."""
    m = {"np": np}
    for name in ("max_pool", "max_pool_route", "max_pool_pick"):
        exec((ROOT / "templates" / f"{name}.py.j2").read_text(), m)  # plain Python, no Jinja
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, size=(2, 3, 7, 8)).astype(np.float64)
    y = m["_max_pool"](x, k, s)
    g, d = rng.normal(size=y.shape), rng.normal(size=x.shape)
    routed, picked = m["_max_pool_route"](x, y, g, k, s), m["_max_pool_pick"](x, y, d, k, s)
    np.testing.assert_allclose(routed, _naive_max_pool_grad(x, g, k, s), rtol=1e-12)
    assert np.isclose(np.vdot(routed, d), np.vdot(g, picked), rtol=1e-12)


def test_the_emitted_code_is_a_window_view_and_one_product():
    text = compile_source(CONV, "conv.bp")
    assert "np.lib.stride_tricks.sliding_window_view(" in text
    functions = text.split("\ndef f(", 1)[1]
    forward = functions.split("\ndef f_forward(", 1)[1].split("\ndef ", 1)[0]
    assert forward.count(" @ ") == 1, "one BLAS product: the filters against the columns"
    assert "cols = " in forward and ".reshape((C * KH * KW, N * " in forward
    assert "for " not in functions, "no Python loop but the overlap-add helper's"


def test_max_pooling_is_emitted_as_its_helpers():
    text = compile_source(POOL.replace("SIZE", "2").replace("STRIDE", "2"), "pool.bp")
    functions = text.split("\ndef f(", 1)[1]
    assert "_max_pool(x, (2, 2), (2, 2))" in functions
    assert "_max_pool_route(x, " in functions
    assert "for " not in functions, "no Python loop but the helpers' over kernel offsets"


def test_an_image_smaller_than_the_kernel_is_refused_at_the_call():
    m = load(CONV)
    x, w, b = np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), np.zeros(1)
    with pytest.raises(ValueError):
        m.f(x, w, b)


SAME = """graph f(x: [N, C, H, W], w: [F, C, K, K], b: [F]) -> y wrt x, w, b {
    y = sum(conv2d(x, w, b, pad=(K - 1) // 2) ** 2)
}
"""


@pytest.mark.parametrize("k", [1, 3, 5])
def test_pad_may_be_a_dimension_expression(k):
    """`pad=(K - 1) // 2` keeps the image's size for odd K (CS231n's convnet), whatever K is."""
    m = load(SAME)
    rng = np.random.default_rng(k)
    x, w, b = rng.normal(size=(2, 2, 6, 5)), rng.normal(size=(3, 2, k, k)), rng.normal(size=3)
    same = load(SAME.replace("sum(", "(").replace(") ** 2", ")"))
    assert same.f(x, w, b).shape == (2, 3, 6, 5)
    _, grads = m.f_grad(x, w, b)
    for i, g in enumerate(grads):
        assert rel_error(g, numeric_grad(m.f, [x, w, b], i)) < 1e-6


def test_a_negative_pad_expression_is_refused_at_the_call():
    m = load(SAME.replace("(K - 1) // 2", "K - 3"))
    with pytest.raises(ValueError, match="pad"):
        m.f(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 1, 1)), np.zeros(1))
