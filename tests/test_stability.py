"""Numerical stability, ties and type errors of the elementwise, reduction and neural-network
operations, checked on the code bpc generates.

- Stability: softmax, log_softmax, logsumexp and cross_entropy shift by the maximum; sigmoid and
  softplus stay finite with no floating-point warning for |x| up to 1e4, in float64 and float32;
  cross_entropy on logits scaled by 1000 has finite, correct gradients.
- Ties: maximum and minimum split the gradient in half, max and min (reductions) share it evenly
  among the tied elements, clip passes it on its boundaries; the expected gradients are computed
  by hand from PyTorch's documented rules, and compared with PyTorch itself when it is installed.
- Types: integers and masks are never differentiated; one where a float is required (or a float
  where a mask or labels are) is a compile error at its line.
"""

from __future__ import annotations

import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError
from bpc.loader import module_from_text
from tests.support import load

# ---------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def no_fp_warnings():
    """Overflow, invalid operations and division by zero raise (underflow to 0 is fine), and any
    RuntimeWarning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            yield


def graph(sig: str, *lines: str, out: str = "out") -> str:
    body = "".join(f"    {line}\n" for line in lines)
    return f"graph f({sig}) -> {out} {{\n{body}}}\n"


def backward_text(source: str) -> str:
    text = compile_source(source, "f.bp")
    return text[text.index("def f_backward") : text.index("def f_grad")]


def forward_text(source: str) -> str:
    text = compile_source(source, "f.bp")
    return text[text.index("def f_forward") : text.index("def f_backward")]


def stable_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """A reference written independently of bpc (through scipy when it is there)."""
    special = pytest.importorskip("scipy.special")
    return x - special.logsumexp(x, axis=axis, keepdims=True)


RNG = np.random.default_rng(20261126)
BIG = [1e2, 1e3, 1e4]


# ---------------------------------------------------------------------------------------------
# Shifted by the maximum


SHIFTED = {
    "softmax": graph("x: [N, C]", "out = softmax(x)"),
    "log_softmax": graph("x: [N, C]", "out = log_softmax(x)"),
    "logsumexp": graph("x: [N, C]", "out = logsumexp(x, axis=1)"),
    "cross_entropy": graph("x: [N, C], y: int[N]", "out = mean(cross_entropy(x, y))"),
}


@pytest.mark.parametrize("op", sorted(SHIFTED))
def test_the_generated_code_shifts_by_the_maximum(op):
    """exp is applied to the logits minus their maximum only, never to the logits (and, for
    cross-entropy's gradient, which the forward computes for its cache, to the log-probabilities
    made from them, which are at most 0)."""
    text = forward_text(SHIFTED[op])
    shifted = re.search(r"(\w+) = x - (x\.max\(axis=1, keepdims=True\)|x_max)\n", text)
    assert shifted, text
    exps = [args.split(",")[0] for args in re.findall(r"np\.exp\(([^)]*)\)", text)]
    logs = re.findall(rf"(\w+) = {shifted[1]}\n +\1 -= np\.log\(", text)
    assert exps and set(exps) - set(logs) == {shifted[1]}, text


@pytest.mark.parametrize("scale", BIG)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_family_of_large_logits(scale, dtype):
    x = (RNG.standard_normal((4, 5)) * scale).astype(dtype)
    want = stable_log_softmax(x.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    dout = RNG.standard_normal((4, 5)).astype(dtype)
    with no_fp_warnings():
        softmax, log_softmax, logsumexp = (load(SHIFTED[f]) for f in list(SHIFTED)[:3])
        p, cache = softmax.f_forward(x)
        dp = softmax.f_backward(dout, cache).x
        lp, cache = log_softmax.f_forward(x)
        dlp = log_softmax.f_backward(dout, cache).x
        lse, cache = logsumexp.f_forward(x)
        dlse = logsumexp.f_backward(np.ones(4, dtype), cache).x
    for value in (p, dp, lp, dlp, lse, dlse):
        assert value.dtype == dtype and np.all(np.isfinite(value))
    probs = np.exp(want)
    np.testing.assert_allclose(p, probs, rtol=tol, atol=tol)
    np.testing.assert_allclose(lp, want, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(lse, (x - want)[:, 0], rtol=tol)
    np.testing.assert_allclose(dlse, probs, atol=tol)
    s = np.sum(dout * probs, axis=1, keepdims=True)
    np.testing.assert_allclose(dp, probs * (dout - s), atol=tol * 10)
    np.testing.assert_allclose(dlp, dout - probs * dout.sum(1, keepdims=True), atol=tol * 10)


@pytest.mark.parametrize("scale", BIG)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_of_large_logits(scale, dtype):
    n, classes = 6, 4
    x = (RNG.standard_normal((n, classes)) * scale).astype(dtype)
    y = RNG.integers(0, classes, n)
    module = load(SHIFTED["cross_entropy"])
    with no_fp_warnings():
        loss, grads = module.f_grad(x, y)
    log_probs = stable_log_softmax(x.astype(np.float64))
    want_loss = -np.mean(log_probs[np.arange(n), y])
    want_dx = (np.exp(log_probs) - np.eye(classes)[y]) / n
    assert np.isfinite(loss) and np.all(np.isfinite(grads.x))
    assert np.asarray(loss).dtype == dtype and grads.x.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(loss, want_loss, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(grads.x, want_dx, atol=tol)


def test_cross_entropy_gradient_against_finite_differences_at_scale_1000():
    """Central differences of the loss itself (not of a reference formula), in float64: with
    logits this large the loss is nearly piecewise linear, which the gradient must follow."""
    x = RNG.standard_normal((3, 5)) * 1000
    y = np.array([0, 3, 4])
    module = load(SHIFTED["cross_entropy"])
    with no_fp_warnings():
        _, grads = module.f_grad(x, y)
        eps = 1e-3
        fd = np.zeros_like(x)
        for i in np.ndindex(*x.shape):
            up, down = x.copy(), x.copy()
            up[i] += eps
            down[i] -= eps
            fd[i] = (module.f(up, y) - module.f(down, y)) / (2 * eps)
    np.testing.assert_allclose(grads.x, fd, atol=1e-6)


def test_cross_entropy_backward_is_softmax_minus_one_hot():
    """The classic rule, read off the generated code: the probabilities recomputed from the
    log-probabilities in their own array, minus the labels' one-hot mask, by the forward for
    its cache (it reads no upstream gradient, and is one array where the log-probabilities and
    the mask were two); the backward scales it."""
    forward = forward_text(SHIFTED["cross_entropy"])
    assert re.search(
        r"probs = np\.exp\(log_probs, out=log_probs\)\n"
        r" +dx_factor = probs\n +dx_factor -= one_hot\n",
        forward,
    ), forward
    assert forward.count("np.exp(") == 2  # (the one of the log-sum-exp, then this one)
    text = backward_text(SHIFTED["cross_entropy"])
    # (max(N, 1): the gradient of a mean over an empty batch is empty, where dout / 0 would raise)
    assert re.search(r"dx = dout / max\(N, 1\) \* dx_factor\n", text), text
    assert text.count("np.") == 0  # nothing else to compute: no max, no sum, no second exp


# ---------------------------------------------------------------------------------------------
# sigmoid, softplus and log1p(exp(x)) for |x| up to 1e4

EXTREME = np.array([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4])


def _exact_softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _exact_sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "op, value, slope",
    [("softplus", _exact_softplus, _exact_sigmoid), ("sigmoid", _exact_sigmoid, None)],
)
def test_no_overflow_for_large_inputs(op, value, slope, dtype):
    x = EXTREME.astype(dtype)
    module = load(graph("x: [n]", f"out = sum({op}(x))"))
    with no_fp_warnings():
        total, grads = module.f_grad(x)
        each = load(graph("x: [n]", f"out = {op}(x)")).f(x)
    assert np.all(np.isfinite(each)) and np.isfinite(total) and np.all(np.isfinite(grads.x))
    assert each.dtype == dtype and grads.x.dtype == dtype
    with np.errstate(under="ignore"):
        want = value(EXTREME)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(each, want, rtol=tol, atol=tol)
    if slope is not None:
        np.testing.assert_allclose(grads.x, slope(EXTREME), rtol=tol, atol=tol)
    else:
        np.testing.assert_allclose(grads.x, want * (1 - want), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mish_for_large_inputs_and_nan(dtype):
    """Mish clips x to 20 before its one exp (`np.minimum`): finite for |x| up to 1e4, and a nan
    comes out as nan, value and gradient."""
    x = EXTREME.astype(dtype)
    module = load(graph("x: [n]", "out = sum(mish(x))"))
    with no_fp_warnings():
        total, grads = module.f_grad(x)
        each = load(graph("x: [n]", "out = mish(x)")).f(x)
    t = np.tanh(_exact_softplus(EXTREME))
    slope = t + EXTREME * (1 - t * t) * _exact_sigmoid(EXTREME)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(each, EXTREME * t, rtol=tol, atol=tol)
    np.testing.assert_allclose(grads.x, slope, rtol=tol, atol=tol)
    assert np.isfinite(total) and each.dtype == grads.x.dtype == dtype
    with np.errstate(invalid="ignore"):
        _, grads = module.f_grad(np.array([np.nan, 1.0], dtype))
    assert np.isnan(grads.x[0]) and np.isfinite(grads.x[1])
    assert np.isnan(load(graph("x: [n]", "out = mish(x)")).f(np.array([np.nan], dtype))[0])


def test_softplus_is_computed_without_exp_of_x():
    """relu(x) + log1p(exp(-|x|)) (np.logaddexp(0, x) is slower, bench/kernels.py). Where only
    sums read it (a loss), its gradient, the sigmoid, comes from the same exp(-|x|), kept in
    the cache (`softplus_gradient_from_e`); where its value is an array anyway (an output), as
    exp(x - softplus(x)) from that value, whose exponent is never positive, and the forward's
    log1p works in the array of exp(-|x|)."""
    source = graph("x: [n]", "out = sum(softplus(x))")
    forward = forward_text(source)
    assert "e = np.abs(x)\n    np.negative(e, out=e)\n    np.exp(e, out=e)\n" in forward
    assert "_log1p_unit(e)" in forward
    assert "logaddexp" not in forward and "np.exp(x)" not in forward
    backward = backward_text(source)
    assert backward.count("np.exp(") == 0 and "np.tanh(" not in backward
    text = compile_source(graph("x: [n]", "out = softplus(x)"), "f.bp")
    forward, backward = text.split("def f_backward")
    assert "_log1p_unit(e, out=e)\n" in forward and "cache = FCache((x, out, n))" in forward
    assert "dx = x - out\n    np.exp(dx, out=dx)\n" in backward


@pytest.mark.parametrize("dtype, low", [(np.float64, -740.0), (np.float32, -87.0)])
def test_softplus_gradient_is_the_sigmoid_to_a_few_ulp(dtype, low):
    """exp(x - softplus(x)) is sigmoid(x) relative to its value, over the whole range where
    that value is a normal number: the exponent's rounding is half an ulp of x, which the exp
    turns into a relative error of that size (17 ulp at most in float64, near x = -32, where
    softplus(x) is just above that half ulp; 5 in float32)."""
    x = np.linspace(low, 40.0, 200_001).astype(dtype)
    module = load(graph("x: [n]", "out = softplus(x)"))
    with no_fp_warnings():
        _, cache = module.f_forward(x)
        grads = module.f_backward(np.ones_like(x), cache)
    want = _exact_sigmoid(x.astype(np.float64))
    error = np.abs(grads.x.astype(np.float64) - want) / want / np.finfo(dtype).eps
    assert grads.x.dtype == dtype and error.max() <= (24 if dtype == np.float64 else 8)


SOFTPLUS_SPELLINGS = [
    "log1p(exp(x))",
    "log(1 + exp(x))",
    "log(exp(x) + 1)",
    "maximum(x, 0) + log1p(exp(-abs(x)))",
    "log1p(exp(-abs(x))) + relu(x)",
    "maximum(0, x) + log(1 + exp(-abs(x)))",
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spelling", SOFTPLUS_SPELLINGS)
def test_softplus_written_by_hand_is_stable(spelling, dtype):
    """The optimizer's canonical rewrites to softplus(x), before differentiation: the forward and
    the backward of the stable form are used."""
    x = EXTREME.astype(dtype)
    module = load(graph("x: [n]", f"out = sum({spelling})"))
    with no_fp_warnings():
        total, grads = module.f_grad(x)
        _, cache = module.f_forward(x)
        backward = module.f_backward(dtype(1.0), cache)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    with np.errstate(under="ignore"):
        np.testing.assert_allclose(total, np.sum(_exact_softplus(EXTREME)), rtol=tol)
        for g in (grads.x, backward.x):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, _exact_sigmoid(EXTREME), rtol=tol, atol=tol)


@pytest.mark.parametrize("spelling", SOFTPLUS_SPELLINGS[3:])
def test_stable_softplus_written_out_is_softplus(spelling):
    """Every spelling compiles to the same code as softplus(x): no gradient of maximum (its tie
    at 0) or of abs is left."""

    def code(source: str) -> list[str]:
        lines = compile_source(source, "f.bp").splitlines()
        return [line for line in lines if not line.strip().startswith("#")]

    written = code(graph("x: [n]", f"out = sum({spelling})"))
    assert written == code(graph("x: [n]", "out = sum(softplus(x))"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_written_by_hand_is_stable(dtype):
    """`1 / (1 + exp(-x))` overflows in exp for x < -709 (-88 in float32), and so does the
    sigmoid form of GELU, `x / (1 + exp(-1.702 * x))`: both are compiled with sigmoid."""
    x = EXTREME.astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    source = graph("x: [n]", "out = sum(1 / (1 + exp(-x)))")
    gelu = graph("x: [n]", "out = sum(x / (1 + exp(-1.702 * x)))")
    with no_fp_warnings():
        total, grads = load(source).f_grad(x)
        gelu_total, gelu_grads = load(gelu).f_grad(x)
    with np.errstate(under="ignore", over="ignore"):
        s, s17 = _exact_sigmoid(EXTREME), _exact_sigmoid(1.702 * EXTREME)
        np.testing.assert_allclose(total, np.sum(s), rtol=tol)
        np.testing.assert_allclose(grads.x, s * (1 - s), rtol=tol, atol=tol)
        np.testing.assert_allclose(gelu_total, np.sum(EXTREME * s17), rtol=tol)
        slope = s17 + 1.702 * EXTREME * s17 * (1 - s17)
        np.testing.assert_allclose(gelu_grads.x, slope, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_sigmoid_helper_in_place_on_numbers_and_on_integers(dtype):
    """The module's `_sigmoid`: into `out` (the planner's in-place form), on a NumPy number, on
    integers, and to within 2 ulp of the value wherever it is a normal number, with no warning;
    where the value is below the smallest normal number, within it (0 where exp(-x) overflows)."""
    helper = load(graph("x: [n]", "out = sum(sigmoid(x))"))._sigmoid
    x = EXTREME.astype(dtype)
    with no_fp_warnings():
        out = np.empty_like(x)
        got = helper(x, out=out)
        number = helper(dtype(-3.0))
        ints = helper(np.array([-2, 0, 5]))
    assert got is out and got.dtype == dtype
    assert isinstance(number, np.floating) and number.dtype == dtype
    assert ints.dtype == np.float64
    with np.errstate(under="ignore", over="ignore"):
        exact = _exact_sigmoid(EXTREME)
    info = np.finfo(dtype)
    normal = exact >= info.tiny
    np.testing.assert_allclose(got[normal], exact[normal], rtol=2 * info.eps, atol=0)
    assert (~normal).any()
    assert np.all((got[~normal] >= 0) & (got[~normal] <= info.tiny))
    np.testing.assert_allclose(number, _exact_sigmoid(np.array([-3.0]))[0], rtol=2 * info.eps)
    np.testing.assert_allclose(ints, _exact_sigmoid(np.array([-2.0, 0.0, 5.0])), rtol=1e-15)


@pytest.mark.parametrize("fast_math", [False, True], ids=["sigmoid", "fast tanh"])
def test_overflow_is_ignored_in_the_helpers_alone_and_in_every_thread(fast_math):
    """`_sigmoid` and `_fast_tanh` run in a copy of a context where NumPy ignores overflow
    (templates/overflow_ignored.py.j2): under a caller's `over="raise"` they still give 0 and -1
    where exp overflows, the caller's state holds again after the call (an overflow of its own
    raises), and eight threads calling the module at once all get the value (a context that one
    thread has entered cannot be entered by another: each call runs in its own copy)."""
    op, want = ("tanh", np.tanh) if fast_math else ("sigmoid", _exact_sigmoid)
    eps = np.finfo(np.float64).eps  # (fast tanh: within 2 ulp of 1; sigmoid: of the value)
    tol = {"rtol": 0, "atol": 2 * eps} if fast_math else {"rtol": 2 * eps, "atol": 1e-300}
    source = graph("x: [n]", f"out = {op}(x)")
    module = module_from_text(compile_source(source, "f.bp", fast_math=fast_math), "f")
    assert ("_fast_tanh(" if fast_math else "_sigmoid(") in module.__source__
    x = np.array([-1e4, -800.0, -1.0, 0.0, 2.0, 800.0])
    with np.errstate(over="raise", under="ignore"):
        np.testing.assert_allclose(module.f(x), want(x), **tol)
        with pytest.raises(FloatingPointError):
            np.exp(x)
    many = np.random.default_rng(0).standard_normal((8, 20000)) * 300

    def each(row):
        return [module.f(row) for _ in range(20)][-1]

    with np.errstate(under="ignore"), ThreadPoolExecutor(8) as pool:
        results = list(pool.map(each, many))
        for row, got in zip(many, results):
            np.testing.assert_allclose(got, want(row), **tol)


@pytest.mark.parametrize("vectorized", [False, True], ids=["corrected log", "np.log1p"])
def test_the_log1p_helper_of_softplus(vectorized):
    """The module's `_log1p_unit`, log(1 + e) for softplus's e = exp(-|x|) in [0, 1]: np.log1p
    itself in float64 and on a number, and in float32 where NumPy vectorizes its log1p (the
    module asks at import, `_LOG1P_F32_VECTORIZED`; both answers are tried here); otherwise in
    float32 the corrected np.log, within 4 ulp of the float64 value from 0 and subnormal numbers
    up to 1, the same into `out`, `out` being the argument's own array or another, and the same
    in blocks (beyond 65536 elements) as whole."""
    module = load(graph("x: [n]", "out = sum(softplus(x))"))
    module._LOG1P_F32_VECTORIZED = vectorized
    helper = module._log1p_unit
    rng = np.random.default_rng(0)
    e = np.concatenate([rng.uniform(0, 1, 100_000), np.exp(-rng.uniform(0, 104, 100_000))])
    e = np.concatenate([e, 10.0 ** -np.arange(0, 46, 0.01), [0.0, 1e-45, 1.0]])
    np.testing.assert_array_equal(helper(e), np.log1p(e))
    assert helper(np.float32(0.5)) == np.log1p(np.float32(0.5))
    x = e.astype(np.float32)
    want = np.log1p(x.astype(np.float64))
    with no_fp_warnings():
        got = helper(x)
        into = np.empty_like(x)
        same = x.copy()
        assert helper(x, out=into) is into and helper(same, out=same) is same
    assert got.dtype == np.float32
    if vectorized:
        np.testing.assert_array_equal(got, np.log1p(x))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - want) / ulp) <= 4
    np.testing.assert_array_equal(into, got)
    np.testing.assert_array_equal(same, got)
    # beyond 65536 elements in blocks; whole at or below it and for a strided view: the same
    assert x.size > 65536 and x[::3].size > 65536
    with no_fp_warnings():
        np.testing.assert_array_equal(helper(x[:1000]), got[:1000])
        np.testing.assert_array_equal(helper(x[::3]), got[::3])
        np.testing.assert_array_equal(
            helper(x[: 65536 * 2].reshape(2, -1)).ravel(), got[: 65536 * 2]
        )


def test_a_module_asks_numpy_whether_its_float32_log1p_is_vectorized():
    """`_vectorized(ufunc, types)`, which `_LOG1P_F32_VECTORIZED` is at import: NumPy's own
    answer (`numpy.lib.introspect.opt_func_info`, a dispatched kernel rather than the baseline
    one), and False for a loop NumPy does not list rather than an error."""
    from numpy.lib.introspect import opt_func_info

    module = load(graph("x: [n]", "out = sum(softplus(x))"))
    current = opt_func_info("^log1p$")["log1p"]["ff"]["current"]
    assert module._LOG1P_F32_VECTORIZED is (not current.startswith("baseline"))
    assert module._vectorized("log1p", "ff") is module._LOG1P_F32_VECTORIZED
    assert module._vectorized("no_such_ufunc", "ff") is False
    assert module._vectorized("log1p", "qq") is False


def test_a_number_times_a_mask_keeps_float32():
    """tests/regressions/number_times_mask_float32.bp: every gradient of f_grad and f_backward
    is float32 for float32 inputs (a number times a mask first made an int64 array, and the
    gradient float64)."""
    from pathlib import Path

    from bpc.check import make_inputs
    from tests.oracle import typed_graph

    path = Path(__file__).parent / "regressions" / "number_times_mask_float32.bp"
    text = path.read_text()
    module = load(text)
    args = make_inputs(
        typed_graph(text), {"n": 3, "m": 4, "k": 2}, np.float32, np.random.default_rng(0)
    )
    _, grads = module.f_grad(*args)
    _, cache = module.f_forward(*args)
    for g in (*grads, *module.f_backward(np.float32(1.0), cache)):
        assert g.dtype == np.float32


def test_clip_of_a_python_number_keeps_the_float32_of_the_arrays():
    """`clip` of a value made of `[]` parameters alone, which may be a Python float: np.clip of
    one is a NumPy float64, which made a float32 graph's output float64 (found by
    tests/test_random_graphs.py); it is kept a Python float, as the other functions of numbers."""
    module = load(
        "graph f(x: [m], s: []) -> out {\n"
        "    c = clip(erf(s - s), -0.5, 0.5)\n"
        "    out = sum(x * x) + c * c\n"
        "}\n"
    )
    value, grads = module.f_grad(np.ones(3, np.float32), np.float32(0.3))
    assert value.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


# ---------------------------------------------------------------------------------------------
# Ties, by PyTorch's rules


def grads_of(source: str, inputs: dict, dout) -> dict:
    module = load(source)
    _, cache = module.f_forward(*inputs.values())
    return module.f_backward(dout, cache)._asdict()


TIES = {
    # maximum/minimum: torch.maximum(a, b) gives each operand grad / 2 where a == b.
    "maximum": (
        graph("a: [n], b: [n]", "out = maximum(a, b)"),
        {"a": [1.0, 2.0, 3.0, -1.0], "b": [1.0, 0.0, 3.0, 5.0]},
        [1.0, 2.0, 3.0, 4.0],
        {"a": [0.5, 2.0, 1.5, 0.0], "b": [0.5, 0.0, 1.5, 4.0]},
    ),
    # the gradient a product makes, halved in its own array (`_ties_halved(..., out=t)`)
    "maximum times c": (
        graph("a: [n], b: [n], c: [n]", "out = maximum(a, b) * c"),
        {"a": [1.0, 2.0, 3.0, -1.0], "b": [1.0, 0.0, 3.0, 5.0], "c": [2.0, 2.0, 2.0, 2.0]},
        [1.0, 2.0, 3.0, 4.0],
        {"a": [1.0, 4.0, 3.0, 0.0], "b": [1.0, 0.0, 3.0, 8.0], "c": [1.0, 4.0, 9.0, 20.0]},
    ),
    "minimum": (
        graph("a: [n], b: [n]", "out = minimum(a, b)"),
        {"a": [1.0, 2.0, 3.0, -1.0], "b": [1.0, 0.0, 3.0, 5.0]},
        [1.0, 2.0, 3.0, 4.0],
        {"a": [0.5, 0.0, 1.5, 4.0], "b": [0.5, 2.0, 1.5, 0.0]},
    ),
    "maximum with a number": (
        graph("x: [n]", "out = maximum(x, 0)"),
        {"x": [-1.0, 0.0, 2.0]},
        [1.0, 1.0, 1.0],
        {"x": [0.0, 0.5, 1.0]},
    ),
    # max/min over axes: torch.amax/amin share the gradient evenly among tied elements.
    "max over an axis": (
        graph("x: [n, m]", "out = max(x, axis=1)"),
        {"x": [[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]},
        [1.0, 2.0],
        {"x": [[0.0, 0.5, 0.5], [2.0, 0.0, 0.0]]},
    ),
    "min over an axis, kept": (
        graph("x: [n, m]", "out = min(x, axis=0, keepdims=true)"),
        {"x": [[1.0, 0.0, 3.0], [1.0, 2.0, 3.0]]},
        [[3.0, 1.0, 2.0]],
        {"x": [[1.5, 1.0, 1.0], [1.5, 0.0, 1.0]]},
    ),
    "max of everything": (
        graph("x: [n, m]", "out = max(x)"),
        {"x": [[1.0, 3.0, 3.0], [2.0, 0.0, 3.0]]},
        1.0,
        {"x": [[0.0, 1 / 3, 1 / 3], [0.0, 0.0, 1 / 3]]},
    ),
    # clip: torch.clamp passes the gradient to x on the boundaries, inclusive.
    "clip on its boundaries": (
        graph("x: [n]", "out = clip(x, -1, 1)"),
        {"x": [-1.0, 0.5, 1.0, 2.0, -3.0]},
        [1.0, 1.0, 1.0, 1.0, 1.0],
        {"x": [1.0, 1.0, 1.0, 0.0, 0.0]},
    ),
    # where lo > hi the result is hi, which gets the gradient (np.clip, torch.clamp).
    "clip with lo above hi": (
        graph("x: [n], lo: [n], hi: [n]", "out = clip(x, lo, hi)"),
        {"x": [0.0, 1.0, 5.0], "lo": [2.0, 2.0, 2.0], "hi": [1.0, 1.0, 1.0]},
        [1.0, 1.0, 1.0],
        {"x": [0.0, 0.0, 0.0], "lo": [0.0, 0.0, 0.0], "hi": [1.0, 1.0, 1.0]},
    ),
    "clip with tensor bounds": (
        graph("x: [n], lo: [n], hi: [n]", "out = clip(x, lo, hi)"),
        {"x": [-2.0, 0.0, 3.0, 1.0], "lo": [-1.0, 0.0, 0.0, 0.0], "hi": [1.0, 1.0, 1.0, 1.0]},
        [1.0, 2.0, 3.0, 4.0],
        {"x": [0.0, 2.0, 0.0, 4.0], "lo": [1.0, 0.0, 0.0, 0.0], "hi": [0.0, 0.0, 3.0, 0.0]},
    ),
    # abs: torch's gradient is sign(x), 0 at 0.
    "abs at 0": (
        graph("x: [n]", "out = abs(x)"),
        {"x": [-2.0, 0.0, 3.0]},
        [1.0, 1.0, 1.0],
        {"x": [-1.0, 0.0, 1.0]},
    ),
}


@pytest.mark.parametrize("name", sorted(TIES))
def test_ties_follow_pytorch(name):
    source, inputs, dout, want = TIES[name]
    inputs = {k: np.array(v) for k, v in inputs.items()}
    grads = grads_of(source, inputs, np.array(dout) if np.ndim(dout) else dout)
    for k, v in want.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-15, err_msg=k)


def _torch_value(torch, name, t):
    """The same computations in PyTorch, by name."""
    return {
        "maximum": lambda: torch.maximum(t["a"], t["b"]),
        "maximum times c": lambda: torch.maximum(t["a"], t["b"]) * t["c"],
        "minimum": lambda: torch.minimum(t["a"], t["b"]),
        "maximum with a number": lambda: torch.maximum(t["x"], torch.zeros_like(t["x"])),
        "max over an axis": lambda: torch.amax(t["x"], dim=1),
        "min over an axis, kept": lambda: torch.amin(t["x"], dim=0, keepdim=True),
        "max of everything": lambda: torch.max(t["x"]),
        "clip on its boundaries": lambda: torch.clamp(t["x"], -1, 1),
        "clip with lo above hi": lambda: torch.clamp(t["x"], t["lo"], t["hi"]),
        "clip with tensor bounds": lambda: torch.clamp(t["x"], t["lo"], t["hi"]),
        "abs at 0": lambda: torch.abs(t["x"]),
    }[name]()


@pytest.mark.parametrize("name", sorted(TIES))
def test_tie_expectations_are_pytorchs(name):
    """The hand-computed expectations above are what PyTorch computes (when it is installed)."""
    torch = pytest.importorskip("torch")
    _, inputs, dout, want = TIES[name]
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in inputs.items()}
    out = _torch_value(torch, name, t)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    for k, v in want.items():
        np.testing.assert_allclose(t[k].grad.numpy(), v, rtol=1e-15, err_msg=k)


# ---------------------------------------------------------------------------------------------
# Integers and masks where floats are required, and the other way round

TYPE_ERRORS = {
    "labels and logits swapped": (
        "x: [N, C], y: int[N]",
        "loss = mean(cross_entropy(y, x))",
        "cross_entropy: logits (the first argument) must hold floats, but it is the int value "
        "int[N]",
    ),
    "float labels": (
        "x: [N, C], y: [N]",
        "loss = mean(cross_entropy(x, y))",
        "cross_entropy: labels must be integers (an int[...] parameter), but it is the float "
        "value [N]",
    ),
    "labels of the wrong shape": (
        "x: [N, C], y: int[C]",
        "loss = mean(cross_entropy(x, y))",
        "cross_entropy: labels [C] must have the shape of the logits [N, C] without their last "
        "(class) axis, [N]",
    ),
    "a float mask": (
        "x: [N, C]",
        "loss = sum(where(x, x, 0))",
        "where: the mask must be boolean, a comparison such as x > 0; got the float value [N, C]",
    ),
    "softmax of labels": (
        "x: [N, C], y: int[N]",
        "loss = sum(softmax(y) * x)",
        "softmax: x must hold floats, but it is the int value int[N]",
    ),
    "log_softmax of a mask": (
        "x: [N, C]",
        "loss = sum(log_softmax(x > 0))",
        "log_softmax: x must hold floats, but it is the bool value bool[N, C]",
    ),
    "logsumexp of labels": (
        "x: [N, C], y: int[N]",
        "loss = sum(x) + logsumexp(y)",
        "logsumexp: x must hold floats, but it is the int value int[N]",
    ),
    "one_hot of floats": (
        "x: [N, C]",
        "loss = sum(one_hot(x, C))",
        "one_hot: labels must be integers (an int[...] parameter), but it is the float value "
        "[N, C]",
    ),
    "one_hot without classes": (
        "x: [N, C], y: int[N]",
        "loss = sum(one_hot(y, 0) * x)",
        "one_hot: the number of classes must be positive, not 0",
    ),
}


@pytest.mark.parametrize("name", sorted(TYPE_ERRORS))
def test_type_errors_at_their_line(name):
    sig, line, message = TYPE_ERRORS[name]
    source = f"graph f({sig}) -> loss {{\n    h = 1\n    {line}\n}}\n"
    with pytest.raises(CompileError) as info:
        compile_source(source, "f.bp")
    (diag,) = info.value.diagnostics
    assert diag.message == message
    assert diag.loc.line == 3
