"""The layers in examples/: every graph of every file, checked against finite differences.

Each graph is compiled, run forward on random float64 inputs, and its backward pass (for a random
upstream gradient `dout`, one per output) is compared with central differences of
`sum(out * dout)`. Inputs are drawn from the parameter declarations; the tables below say only
what the declarations cannot: the range of each integer parameter, a few fixed values, sizes.
"""

from __future__ import annotations

import doctest
import functools
import re
from pathlib import Path

import numpy as np
import pytest

from bpc.build import build_ir
from bpc.parse import parse
from bpc.signature import order
from tests import test_conv_layers
from tests.support import load, numeric_grad, rel_error

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "examples").glob("*.bp"))

# Integer parameters, per graph: values are drawn from range(bound); a bound may be a dimension.
INTS = {
    "softmax_loss": {"y": "C"},
    "svm_loss": {"y": "C"},
    "two_layer": {"y": "C"},
    "convnet": {"y": "K"},
    "word_embedding": {"x": "V"},
    "temporal_softmax_loss": {"y": "V", "mask": 2},
    "captioning_loss": {"captions": "V"},
    "adder_loss": {"y": 2},
}
# Parameters not drawn from a normal distribution: a value, or a function of (rng, shape).
VALUES = {
    "dropout": {"p": 0.7, "mask": lambda rng, shape: (rng.random(shape) < 0.7) * 1.0},
    "mlp": {"reg": 0.1},
    "two_layer": {"reg": 0.1},
    "convnet": {"reg": 0.1},
    "multihead_attention": {"mask": lambda rng, shape: np.tril(np.ones(shape, dtype=np.int64))},
}
# Dimension sizes, per graph; other dimensions get distinct small sizes in order of appearance.
SIZES: dict[str, dict[str, int]] = {
    # filters of 2*R + 1: 3 x 3 (a 15 x 15 filter on a 5 x 2 image would be legal, but slow)
    "conv_relu_pool": {"R": 1},
    "convnet": {"R": 1},
    "convnet_scores": {"R": 1},
}
DEFAULT_SIZES = (3, 4, 5, 2, 6, 7, 8, 9)


def _graphs():
    for path in SOURCES:
        for g in build_ir(parse(path.read_text())):
            yield path, g


GRAPHS = list(_graphs())
IDS = [f"{path.name}::{d.name}" for path, d in GRAPHS]


@functools.cache
def compiled(path: Path):
    return load(path.read_text(), f"bpc_example_{path.stem}")


def dimension_sizes(d) -> dict[str, int]:
    sizes = dict(SIZES.get(d.name, {}))
    numbers = {k.value for p in d.params for k in p.dims if k.is_const}
    free = iter(s for s in DEFAULT_SIZES if s not in set(sizes.values()) | numbers)
    for dim in order(d.params):
        sizes.setdefault(dim, next(free))
    return sizes


def inputs(d, seed: int = 0) -> list:
    """Random arguments for graph `d`, in declaration order."""
    rng = np.random.default_rng(seed)
    sizes = dimension_sizes(d)
    args = []
    for p in d.params:
        shape = tuple(int(k.evaluate(sizes)) for k in p.dims)
        if p.name in VALUES.get(d.name, {}):
            value = VALUES[d.name][p.name]
            args.append(value(rng, shape) if callable(value) else value)
        elif p.dtype == "int":
            bound = INTS.get(d.name, {}).get(p.name)
            assert bound is not None, f"say in INTS which values {d.name}'s {p.name} takes"
            args.append(rng.integers(0, sizes.get(bound, bound), size=shape))
        elif shape:
            args.append(rng.normal(size=shape))
        else:
            args.append(float(rng.normal()))
    return args


def test_every_example_file_has_a_graph():
    assert {path for path, _ in GRAPHS} == set(SOURCES)


@pytest.mark.parametrize("path, d", GRAPHS, ids=IDS)
def test_backward_matches_finite_differences(path: Path, d):
    module = compiled(path)
    forward = getattr(module, f"{d.name}_forward")
    backward = getattr(module, f"{d.name}_backward")
    args = inputs(d)
    outs, cache = forward(*args)
    outs = outs if len(d.outputs) > 1 else (outs,)
    rng = np.random.default_rng(1)
    douts = tuple(rng.normal(size=np.shape(o)) for o in outs)
    grads = backward(douts if len(d.outputs) > 1 else douts[0], cache)
    assert grads._fields, f"{d.name} differentiates nothing"

    def objective(*a):
        values = forward(*a)[0]
        values = values if len(d.outputs) > 1 else (values,)
        return sum(float(np.sum(v * g)) for v, g in zip(values, douts))

    names = [p.name for p in d.params]
    for name, grad in zip(grads._fields, grads):
        i = names.index(name)
        expected = numeric_grad(objective, args, i)
        assert grad.shape == np.shape(args[i])
        assert rel_error(grad, expected) < 1e-6, f"d{name} of {d.name}"


@pytest.mark.parametrize("path, d", GRAPHS, ids=IDS)
def test_the_entry_points_agree(path: Path, d):
    """`g` gives what `g_forward` gives; `g_grad`, where there is one, what forward+backward give."""
    module = compiled(path)
    args = inputs(d, seed=2)
    outs, cache = getattr(module, f"{d.name}_forward")(*args)
    plain = getattr(module, d.name)(*args)
    if len(d.outputs) == 1:
        outs, plain = (outs,), (plain,)
    for a, b in zip(outs, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    if hasattr(module, f"{d.name}_grad"):
        value, grads = getattr(module, f"{d.name}_grad")(*args)
        expected = getattr(module, f"{d.name}_backward")(1.0, cache)
        np.testing.assert_array_equal(value, outs[0])
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path, d", GRAPHS, ids=IDS)
def test_float32_stays_float32(path: Path, d):
    module = compiled(path)
    args = [
        a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
        for a in inputs(d, seed=3)
    ]
    outs, cache = getattr(module, f"{d.name}_forward")(*args)
    outs = outs if len(d.outputs) > 1 else (outs,)
    assert all(np.asarray(o).dtype == np.float32 for o in outs if np.asarray(o).dtype.kind == "f")
    douts = tuple(np.ones_like(o) for o in outs)
    grads = getattr(module, f"{d.name}_backward")(douts if len(d.outputs) > 1 else douts[0], cache)
    for name, g in zip(grads._fields, grads):
        arg = args[[p.name for p in d.params].index(name)]
        if isinstance(arg, np.ndarray):
            assert g.dtype == np.float32, f"d{name} of {d.name} is {g.dtype}"


# ---------------------------------------------------------------------------------------------
# The forward passes are the layers they claim to be: each against a NumPy reference written as
# CS231n's solutions write it (loops over heads, fancy indexing, -inf masking).


def _softmax(s, axis=-1):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _svm_loss(x, y):
    N = len(y)
    margins = np.maximum(0, x - x[np.arange(N), y][:, None] + 1.0)
    margins[np.arange(N), y] = 0
    return margins.sum() / N


def _softmax_loss(x, y):
    return -np.mean(np.log(_softmax(x)[np.arange(len(y)), y]))


def _two_layer_scores(X, W1, b1, W2, b2):
    return np.maximum(X @ W1 + b1, 0) @ W2 + b2


def _batchnorm(x, gamma, beta):
    return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5) * gamma + beta


def _layernorm(x, gamma, beta):
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta


def _lstm_step(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    sigmoid = 1 / (1 + np.exp(-a[:, : 3 * H]))
    i, f, o = sigmoid[:, :H], sigmoid[:, H : 2 * H], sigmoid[:, 2 * H :]
    next_c = f * prev_c + i * np.tanh(a[:, 3 * H :])
    return o * np.tanh(next_c), next_c


def _temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    probs = _softmax(x.reshape(N * T, V))
    return -np.sum(mask.ravel() * np.log(probs[np.arange(N * T), y.ravel()])) / N


def _rnn(x, h0, Wx, Wh, b):
    hs, h = [], h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
        hs.append(h)
    return np.stack(hs, axis=1) if hs else np.zeros((*x.shape[:2], h0.shape[1]))


def _lstm(x, h0, Wx, Wh, b):
    hs, h, c = [], h0, np.zeros_like(h0)
    for t in range(x.shape[1]):
        h, c = _lstm_step(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs, axis=1) if hs else np.zeros((*x.shape[:2], h0.shape[1]))


def _adder_states(x, Wx, Wh, b):
    N, T, _ = x.shape
    H = Wh.shape[0]
    h, c, hs = np.zeros((N, H)), np.zeros((N, H)), []
    for t in range(T):
        h, c = _lstm_step(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs, axis=1) if hs else np.zeros((N, T, H))


def _adder_loss(x, y, Wx, Wh, b, Wy, by):
    scores = _adder_states(x, Wx, Wh, b) @ Wy + by
    N, T, _ = scores.shape
    return _temporal_softmax_loss(scores, y, np.ones((N, T))) / T


def _captioning_loss(features, captions, W_proj, b_proj, W_embed, Wx, Wh, b, W_vocab, b_vocab):
    """CS231n's CaptioningRNN.loss, with the NULL token 0."""
    captions_in, captions_out = captions[:, :-1], captions[:, 1:]
    hs = _rnn(W_embed[captions_in], features @ W_proj + b_proj, Wx, Wh, b)
    scores = REFERENCES["temporal_affine"](hs, W_vocab, b_vocab)
    return _temporal_softmax_loss(scores, captions_out, captions_out != 0)


def _multihead_attention(query, key, value, Wq, bq, Wk, bk, Wv, bv, Wo, bo, mask):
    out = np.zeros(query.shape) + bo
    for h in range(Wq.shape[1]):
        q, k = query @ Wq[:, h] + bq[h], key @ Wk[:, h] + bk[h]
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(Wq.shape[2])
        scores[:, mask == 0] = -np.inf
        out += _softmax(scores) @ (value @ Wv[:, h] + bv[h]) @ Wo[h]
    return out


REFERENCES = {
    "seed": lambda W, x: np.sum((W @ x) ** 2),
    "mlp": lambda X, Y, W1, b1, W2, b2, reg: 0.5
    * np.mean(np.sum((np.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2, axis=1))
    + 0.5 * reg * (np.sum(W1**2) + np.sum(W2**2)),
    "affine": lambda x, w, b: x @ w + b,
    "relu": lambda x: np.maximum(x, 0),
    "affine_relu": lambda x, w, b: np.maximum(x @ w + b, 0),
    "dropout": lambda x, mask, p: x * mask / p,
    "softmax_loss": _softmax_loss,
    "svm_loss": _svm_loss,
    "two_layer": lambda X, y, W1, b1, W2, b2, reg: _softmax_loss(
        _two_layer_scores(X, W1, b1, W2, b2), y
    )
    + 0.5 * reg * (np.sum(W1**2) + np.sum(W2**2)),
    "two_layer_scores": _two_layer_scores,
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "rnn_step": lambda x, prev_h, Wx, Wh, b: np.tanh(x @ Wx + prev_h @ Wh + b),
    "lstm_step": _lstm_step,
    "word_embedding": lambda x, W: W[x],
    "temporal_affine": lambda x, w, b: (x.reshape(-1, w.shape[0]) @ w + b).reshape(
        *x.shape[:2], -1
    ),
    "temporal_softmax_loss": _temporal_softmax_loss,
    "rnn": _rnn,
    "lstm": _lstm,
    "captioning_loss": _captioning_loss,
    "adder_scores": lambda x, Wx, Wh, b, Wy, by: _adder_states(x, Wx, Wh, b) @ Wy + by,
    "adder_loss": _adder_loss,
    "attention": lambda q, k, v: _softmax(q @ k.T / np.sqrt(q.shape[1])) @ v,
    "multihead_attention": _multihead_attention,
    **test_conv_layers.REFERENCES,  # the convolutional layers, with loops as CS231n's naive ones
}


def test_every_graph_has_a_reference():
    assert set(REFERENCES) == {d.name for _, d in GRAPHS}


@pytest.mark.parametrize("path, d", GRAPHS, ids=IDS)
def test_forward_matches_the_reference(path: Path, d):
    args = inputs(d, seed=6)
    got = getattr(compiled(path), d.name)(*args)
    want = REFERENCES[d.name](*args)
    for g, w in zip(*((got, want) if len(d.outputs) > 1 else ((got,), (want,))), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Batch normalization: the backward bpc derives against the compact hand formula.


def batchnorm_by_hand(dout, gamma, invstd, xhat):
    """CS231n's compact batchnorm backward: (dx, dgamma, dbeta)."""
    N = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dx = gamma * invstd / N * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def test_batchnorm_backward_matches_the_hand_formula():
    module = compiled(ROOT / "examples" / "normalization.bp")
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 3.0, size=(16, 5))
    gamma, beta, dout = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(16, 5))
    out, cache = module.batchnorm_forward(x, gamma, beta)
    invstd = 1 / np.sqrt(x.var(axis=0) + 1e-5)
    xhat = (x - x.mean(axis=0)) * invstd
    np.testing.assert_allclose(out, gamma * xhat + beta, rtol=1e-12)
    for got, want in zip(
        module.batchnorm_backward(dout, cache), batchnorm_by_hand(dout, gamma, invstd, xhat)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


class Counting(np.ndarray):
    """An array that logs every NumPy ufunc call it takes part in (`np.sum` is `np.add.reduce`)."""

    log: list[tuple[str, int]] = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        def plain(v):
            return v.view(np.ndarray) if isinstance(v, Counting) else v

        if "out" in kwargs:
            kwargs["out"] = tuple(plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*map(plain, inputs), **kwargs)
        sizes = [np.size(v) for v in (*inputs, result) if isinstance(v, np.ndarray)]
        name = ufunc.__name__ + ("" if method == "__call__" else "." + method)
        Counting.log.append((name, max(sizes)))
        return np.asarray(result).view(Counting)


def count_ops(fn, *args) -> tuple[int, int, int]:
    """Run fn and count its NumPy operations: (all, those on an N x D array, reductions)."""
    Counting.log = []
    fn(*(a.view(Counting) if isinstance(a, np.ndarray) else a for a in args))
    log, full = Counting.log, max(size for _, size in Counting.log)
    return len(log), sum(size == full for _, size in log), sum(".reduce" in n for n, _ in log)


def batchnorm_op_table() -> str:
    module = compiled(ROOT / "examples" / "normalization.bp")
    rng = np.random.default_rng(5)
    x, gamma, beta = rng.normal(size=(64, 32)), rng.normal(size=32), rng.normal(size=32)
    dout = rng.normal(size=(64, 32))
    _, cache = module.batchnorm_forward(x, gamma, beta)
    cache = type(cache)(c.view(Counting) if isinstance(c, np.ndarray) else c for c in cache)
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    invstd = 1 / np.sqrt(x.var(axis=0) + 1e-5)
    rows = [
        ("`batchnorm_backward` (bpc)", count_ops(module.batchnorm_backward, dout, cache)),
        ("hand formula", count_ops(batchnorm_by_hand, dout, gamma, invstd, xhat)),
    ]
    lines = ["| backward | NumPy operations | on N x D arrays | reductions |", "|---|---|---|---|"]
    lines += [f"| {name} | {a} | {b} | {c} |" for name, (a, b, c) in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# docs/layers.md shows the real thing.

DOC = (ROOT / "docs" / "layers.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", DOC, re.S | re.M)


def test_the_docs_show_every_graph_of_every_example_file_but_the_older_two():
    shown = {
        m.group(1)
        for lang, body in BLOCKS
        if lang == "bpc"
        for m in re.finditer(r"^graph (\w+)", body, re.M)
    }
    assert shown == {d.name for _, d in GRAPHS} - {"seed", "mlp"}


def test_the_docs_quote_the_sources_and_the_emitted_code():
    sources = [p.read_text() for p in SOURCES]
    modules = [p.read_text() for p in sorted((ROOT / "generated").glob("*.py"))]
    modules.append(Path(__file__).read_text())
    for lang, body in BLOCKS:
        if lang == "bpc":
            assert any(body in text for text in sources), body
        if lang == "python":
            assert any(body in text for text in modules), body


def test_the_docs_session_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("BPC_CACHE_DIR", str(tmp_path))
    parser, runner, globs = doctest.DocTestParser(), doctest.DocTestRunner(), {}
    for i, (lang, body) in enumerate(BLOCKS):
        if lang == "pycon":
            test = parser.get_doctest(body, globs, f"pycon{i}", "layers.md", 0)
            runner.run(test, clear_globs=False)
            globs = test.globs
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_the_batchnorm_op_counts_in_the_docs_are_current():
    table = batchnorm_op_table()
    assert (
        table in (ROOT / "docs" / "layers.md").read_text()
    ), f"docs/layers.md should show\n{table}"


if __name__ == "__main__":  # python -m tests.test_examples prints the table for docs/layers.md
    print(batchnorm_op_table(), end="")
