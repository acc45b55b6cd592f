"""The findings of the audit of the operations (issue 10), one test or more each, with the
neighbours of each finding that had the same bug. Gradients are checked against central finite
differences in float64."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError, render
from tests.support import load, numeric_grad, rel_error


def _check_grads(module, args: list, name: str = "f", wrt: list[int] | None = None) -> None:
    """The fused gradient of a scalar graph against finite differences of its forward pass."""
    value, grads = getattr(module, f"{name}_grad")(*args)
    f = getattr(module, name)
    assert rel_error(value, f(*args)) < 1e-12
    for i, grad in zip(wrt if wrt is not None else range(len(args)), grads):
        assert rel_error(grad, numeric_grad(f, args, i)) < 1e-6, (i, grad)


# ---------------------------------------------------------------------------------------------
# 1. take with a 0-d index is NumPy's basic indexing, a view: nothing may be written into it


TAKE_ROWS = "graph f(W: [n, d], i: int[]) -> out {\n    out = take(W, i) - take(W, 2 - i)\n}\n"


@pytest.mark.parametrize("i", [0, np.int64(0), np.array(1)])
def test_take_with_a_0d_index_leaves_the_callers_array_alone(i):
    m = load(TAKE_ROWS)
    W = np.arange(12.0).reshape(3, 4)
    kept = W.copy()
    for fn in (m.f, lambda *a: m.f_forward(*a)[0]):
        out = fn(W, i)
        np.testing.assert_array_equal(W, kept)
        np.testing.assert_array_equal(out, kept[int(i)] - kept[2 - int(i)])


@pytest.mark.parametrize(
    "body",
    [
        # the forward worked out exp(h) in h's array, a view of W, which the backward reads
        "h = take(W, i)\n    out = sum(exp(h) * 2) + sum(W * W)",
        "h = take(W, i, axis=1)\n    out = sum(exp(h) * 2) + sum(W * W)",
        "h = take(W, i)\n    g = take(W, 0)\n    out = sum(tanh(h + g) * h) + sum(W * W)",
    ],
)
def test_gradients_through_a_take_with_a_0d_index(body):
    m = load(f"graph f(W: [n, d], i: int[]) -> out wrt W {{\n    {body}\n}}\n")
    W = np.random.default_rng(0).normal(size=(3, 4))
    kept = W.copy()
    for i in (0, np.int64(2), -1):
        m.f(W, i)
        m.f_forward(W, i)
        np.testing.assert_array_equal(W, kept)
        value, (dW,) = m.f_grad(W, i)
        np.testing.assert_array_equal(W, kept)
        assert rel_error(dW, numeric_grad(m.f, [W, i], 0)) < 1e-6


# ---------------------------------------------------------------------------------------------
# 2. A Python int for a float `[]` parameter: its gradient is of the graph's float dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("s", [2, 2.0, np.float64(2.0), np.float32(2.0)])
def test_the_gradient_of_a_scalar_parameter_is_of_the_graphs_float_dtype(s, dtype):
    m = load("graph f(x: [n], s: []) -> y {\n    y = sum(x * s * s)\n}\n")
    x = np.array([0.5, 0.25, 1.0], dtype)
    value, grads = m.f_grad(x, s)
    _, cache = m.f_forward(x, s)
    for ds in (grads.s, m.f_backward(1.0, cache).s):
        assert ds.shape == () and ds.dtype == dtype
        assert ds == 2 * 2 * 1.75


def test_a_python_int_for_the_only_float_parameter_counts_as_a_float():
    """A graph of scalars takes its float dtype from its first float scalar: for a Python int,
    float64, as for a Python float (it was int64, which truncated `i / 2` and the gradient)."""
    m = load("graph f(i: int[], x0: []) -> out {\n    v = i / 2 + x0\n    out = v * v\n}\n")
    for x0 in (1, 1.0):
        value, grads = m.f_grad(1, x0)
        assert value == 2.25 and grads.x0 == 3.0 and grads.x0.dtype == np.float64
    value, grads = m.f_grad(1, np.float32(1))
    assert grads.x0.dtype == np.float32
    _check_grads(m, [1, 0.75], wrt=[1])


def test_an_unused_scalar_parameter_gets_a_float_zero():
    """Autodiff's zero for a parameter nothing uses was an int for a Python int, and filled twice:
    np.full_like(s, np.full_like(s, 0))."""
    source = "graph f(x: [n], s: []) -> y {\n    y = sum(x * x)\n}\n"
    _, grads = load(source).f_grad(np.ones(2, np.float32), 3)
    assert grads.s == 0 and grads.s.dtype == np.float32
    assert "ds = np.full_like(s, 0, dtype=x.dtype)" in compile_source(source)


# ---------------------------------------------------------------------------------------------
# 3. take_along with a negative index: the gradient goes where the forward picked, as take's


@pytest.mark.parametrize(
    "params, body, shapes",
    [
        ("x: [n, c], j: int[n]", "out = sum(take_along(x, j) * take_along(x, j))", [(2, 3), (2,)]),
        ("x: [c], j: int[]", "out = take_along(x, j) ** 2", [(3,), ()]),
        ("x: [b, n, c], j: int[b, n]", "out = sum(exp(take_along(x, j)))", [(2, 2, 3), (2, 2)]),
        ("x: [n, c], j: int[n]", "out = sum(take(x, j, axis=0) ** 2)", [(3, 2), (3,)]),
        (
            "x: [n, c, h], j: int[n]",
            "out = sum(take_along(reshape(x, (n, c*h)), j) ** 2)",
            [(2, 2, 2), (2,)],
        ),
    ],
)
def test_negative_gather_indices_wrap_in_the_gradient_too(params, body, shapes):
    m = load(f"graph f({params}) -> out {{\n    {body}\n}}\n")
    rng = np.random.default_rng(1)
    x = rng.normal(size=shapes[0])
    for j in (-1, -2, 1):
        _check_grads(m, [x, np.full(shapes[1], j)], wrt=[0])


# ---------------------------------------------------------------------------------------------
# 4. cross_entropy with a label outside 0..C-1 is an error when the graph runs (the loss was 0
#    and the gradient the softmax)

LOSS = "graph loss(x: [N, C], y: int[N]) -> l {\n    l = mean(cross_entropy(x, y))\n}\n"


@pytest.mark.parametrize("labels, bad", [([0, 3], 3), ([-1, 0], -1), ([7, 9], 7)])
def test_a_label_outside_the_classes_is_a_value_error(labels, bad):
    m = load(LOSS)
    x, y = np.zeros((2, 3)), np.array(labels)
    message = f"loss: cross_entropy: label {bad} is not one of the 3 classes 0 to 2"
    for fn in (m.loss, m.loss_forward, m.loss_grad):
        with pytest.raises(ValueError, match=message):
            fn(x, y)


def test_labels_in_range_and_a_single_example():
    m = load("graph loss(x: [C], y: int[]) -> l {\n    l = cross_entropy(x, y)\n}\n")
    x = np.array([0.5, -1.0, 2.0])
    _check_grads(m, [x, 2], name="loss", wrt=[0])
    with pytest.raises(ValueError, match="label 3 is not one of the 3 classes"):
        m.loss(x, 3)
    _check_grads(
        load(LOSS),
        [np.random.default_rng(2).normal(size=(4, 3)), np.array([0, 2, 1, 2])],
        name="loss",
        wrt=[0],
    )


# ---------------------------------------------------------------------------------------------
# 5. a ** b at a == 0: d/db is 0 (log(0) * 0 was nan), and d/da at b == 0 is 0 (0 * inf was nan)


def test_the_gradients_of_a_power_at_zero_are_those_of_pytorch():
    m = load("graph f(a: [n], b: [n]) -> y {\n    y = sum(a ** b)\n}\n")
    a, b = np.array([0.0, 0.0, 2.0, 1.5]), np.array([0.0, 2.0, 3.0, 0.0])
    with np.errstate(all="raise"):
        value, grads = m.f_grad(a, b)
    assert value == 1 + 0 + 8 + 1
    np.testing.assert_allclose(grads.a, [0.0, 0.0, 12.0, 0.0])
    np.testing.assert_allclose(grads.b, [0.0, 0.0, 8 * np.log(2.0), np.log(1.5)])


@pytest.mark.parametrize(
    "body", ["y = sum(a ** b)", "y = sum(a ** b * b)", "y = sum((a * a) ** b + 2 ** a)"]
)
def test_the_gradients_of_a_power_at_zero_are_finite_and_silent(body):
    m = load(f"graph f(a: [n], b: [n]) -> y {{\n    {body}\n}}\n")
    with np.errstate(all="raise"):
        value, grads = m.f_grad(np.array([0.0, 0.0, 2.0, 1.5]), np.array([0.0, 2.0, 3.0, 0.0]))
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)
    # where finite differences can tell: in b at a == 0 for b > 0, in both for a > 0
    a, b = np.array([0.0, 0.5, 2.0, 1.5]), np.array([2.5, 0.0, 3.0, -1.5])
    _, grads = m.f_grad(a, b)
    assert rel_error(grads.b, numeric_grad(m.f, [a, b], 1)) < 1e-6
    _check_grads(m, [a + 0.25, b])


def test_the_gradient_of_a_power_at_zero_with_a_scalar_exponent():
    m = load("graph f(a: [n], p: []) -> y {\n    y = sum(a ** p)\n}\n")
    with np.errstate(all="raise"):
        value, grads = m.f_grad(np.array([0.0, 2.0]), 0.0)
    assert value == 2.0 and grads.a.tolist() == [0.0, 0.0] and grads.p == np.log(2.0)


# ---------------------------------------------------------------------------------------------
# 6. An empty batch: a mean over no element is nan, its gradient is empty (there was a
#    ZeroDivisionError in 1.0 / N); a sum divided by N (the SVM loss, the temporal softmax loss)
#    divides as NumPy does


@pytest.mark.parametrize(
    "body",
    [
        "l = mean(cross_entropy(x, y))",
        "l = mean(x * x)",
        "l = mean(sum(x, axis=1) * x[:, 0])",
        "l = sum(mean(x @ W, axis=0))",
        "l = mean(x * x * w) + sum(w * w)",
        "l = sum(cross_entropy(x, y)) / N",
        "l = sum(where(one_hot(y, C) > 0, 0, maximum(0, x - 1))) / N",
    ],
)
def test_an_empty_batch_gives_nan_and_an_empty_gradient(body):
    m = load(
        f"graph f(x: [N, C], y: int[N], W: [C, C], w: [C]) -> l wrt x, W, w {{\n    {body}\n}}\n"
    )
    x, y, W, w = np.zeros((0, 3)), np.zeros(0, int), np.ones((3, 3)), np.ones(3)
    with pytest.warns(RuntimeWarning):  # NumPy's, for a mean or a division by N = 0
        value, grads = m.f_grad(x, y, W, w)
        out, cache = m.f_forward(x, y, W, w)
        backwards = [m.f_backward(1.0, cache), m.f_backward(np.float64(1.0), cache)]
    assert np.isnan(value) and np.isnan(out)
    for backward in (grads, *backwards):
        assert backward.x.shape == (0, 3)
        # what the batch is computed from gets nothing through the mean
        if "mean" in body:
            assert (backward.W == 0).all() and (backward.w == 2 * w * ("w * w" in body)).all()


def test_a_mean_over_an_empty_batch_in_float32():
    m = load("graph f(x: [N, C], y: int[N]) -> l {\n    l = mean(cross_entropy(x, y))\n}\n")
    with pytest.warns(RuntimeWarning):
        value, grads = m.f_grad(np.zeros((0, 3), np.float32), np.zeros(0, int))
    assert np.isnan(value) and grads.x.shape == (0, 3) and grads.x.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# 7. A reshape whose element counts are equal only for some sizes is a compile error (the forward
#    ran for any sizes and the backward raised)


def _error(source: str) -> str:
    with pytest.raises(CompileError) as e:
        compile_source(source, "f.bp")
    (d,) = e.value.diagnostics
    return render(d, "f.bp", source)


@pytest.mark.parametrize(
    "params, call, caret, condition",
    [
        ("x: [n], y: [m, k]", "reshape(mean(x), (m, k))", 9, "k*m == 1"),
        ("x: [N, C, H]", "reshape(x, (N, C*C))", 9, "C*C*N == C*H*N"),
        ("x: [n]", "reshape(x, (2, 3))", 9, "6 == n"),
        ("x: [n, m]", "reshape(x, (n, n))", 9, "n*n == m*n"),
        ("x: [n], y: [m]", "sum(reshape(x * 2, (m,)) * y)", 13, "m == n"),
    ],
)
def test_a_reshape_must_keep_its_size_whatever_the_sizes(params, call, caret, condition):
    text = _error(f"graph f({params}) -> z {{\n    z = {call}\n}}\n")
    assert text.startswith(f"f.bp:2:{caret}: error: reshape: ")
    assert f"the same only where {condition}; a reshape must keep the number of elements" in text
    assert text.endswith("\n" + " " * (4 + caret - 1) + "^")


def test_reshapes_that_keep_their_size_still_compile():
    m = load("graph f(x: [N, C, H]) -> z {\n    z = sum(reshape(x, (C*H, N)) ** 2)\n}\n")
    _check_grads(m, [np.random.default_rng(3).normal(size=(2, 3, 2))])


# ---------------------------------------------------------------------------------------------
# 8. Integers to a negative integer power: a compile error, as NumPy raises for them


@pytest.mark.parametrize(
    "params, expr, caret, written",
    [
        ("k: int[n]", "k ** -1", 9, "int[n] ** -1"),
        ("k: int[n]", "k ** (0 - 2)", 9, "int[n] ** -2"),
        ("x: [n]", "sum(x) * n ** -1", 18, "int[] ** -1"),
        ("x: [n]", "sum(x) * 2 ** -1", 18, "int[] ** -1"),
        ("x: [n], k: int[n]", "sum(x * (k > 0) ** -3)", 17, "bool[n] ** -3"),
    ],
)
def test_integers_to_a_negative_power_are_a_compile_error(params, expr, caret, written):
    text = _error(f"graph f({params}) -> y {{\n    y = {expr}\n}}\n")
    value = written.rsplit(" ", 1)[1]
    assert text.startswith(
        f"f.bp:2:{caret}: error: integers to negative integer powers are not allowed, as in "
        f"NumPy ({written}); write ** {float(value)} for a float result"
    ), text


def test_integers_to_float_or_positive_powers_compile():
    m = load("graph f(k: int[n], x: [n]) -> y {\n    y = sum(x * k ** -1.0 + x * k ** 2)\n}\n")
    k, x = np.array([1, 2, 4]), np.array([0.5, 1.0, 2.0])
    assert m.f(k, x) == sum(x / k + x * k**2)
    _check_grads(m, [k, x], wrt=[1])


# ---------------------------------------------------------------------------------------------
# 9. Numbers made of constants and sizes compute as NumPy does (math raised "math domain error")


@pytest.mark.parametrize(
    "expr, n, expected, warning",
    [
        ("sqrt(2 - n)", 3, np.nan, "invalid value"),
        ("sqrt(2 - n)", 1, 1.0, None),
        ("log(n - 1)", 1, -np.inf, "divide by zero"),
        ("log1p(-n - 1)", 1, np.nan, "invalid value"),
        ("sin(1e400)", 1, np.nan, "invalid value"),
        ("cos(1e400)", 1, np.nan, "invalid value"),
        ("exp(1000 * n)", 1, np.inf, "overflow"),
        ("tanh(1e400) + sigmoid(-1e400) + softplus(-1e400) + relu(-n)", 1, 1.0, None),
        ("1 / (n - 1)", 1, np.inf, "divide by zero"),
        ("(n - 1.0) ** -1", 1, np.inf, "divide by zero"),
        ("(1.0 - n) ** 0.5", 2, np.nan, "invalid value"),
        ("0.0 ** -1", 1, np.inf, "divide by zero"),
        ("sqrt(n) * sqrt(n)", 4, 4.0, None),
    ],
)
def test_numbers_compute_as_numpy_does(expr, n, expected, warning):
    m = load(f"graph f(x: [n]) -> y {{\n    y = sum(x) * ({expr})\n}}\n")
    x = np.ones(n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = m.f(x)
        _, grads = m.f_grad(x)
    np.testing.assert_equal(value, n * expected)
    np.testing.assert_equal(grads.x, np.full(n, expected))
    messages = " ".join(str(w.message) for w in caught)
    assert (warning or "nothing") in (messages or "nothing"), messages


def test_numbers_stay_python_numbers_for_float32():
    m = load("graph f(Q: [T, d], K: [T, d]) -> s {\n    s = sum(Q @ K.T / sqrt(d))\n}\n")
    Q = np.ones((2, 4), np.float32)
    value, grads = m.f_grad(Q, Q)
    assert value == 8.0 and value.dtype == grads.Q.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# 10. An output that is a constant or a size (NameError at every call), or made of `[]`
#     parameters alone, is a NumPy number: a float of the graph's float dtype


@pytest.mark.parametrize(
    "params, body, args, expected, dtype",
    [
        ("x: [n]", "y = 2.5", [np.ones(3)], 2.5, np.float64),
        ("x: [n]", "y = 2.5", [np.ones(3, np.float32)], 2.5, np.float32),
        ("x: [n]", "y = n", [np.ones(3)], 3, np.int_),
        ("x: [n]", "y = n > 2", [np.ones(3)], True, np.bool_),
        ("x: [n], s: []", "y = s * s", [np.ones(3, np.float32), 3], 9.0, np.float32),
        ("s: []", "y = s * s", [3], 9.0, np.float64),
        ("s: []", "y = s", [np.float32(1.5)], 1.5, np.float32),
        ("k: int[n]", "y = n * 0.5", [np.ones(4, int)], 2.0, np.float64),
    ],
)
def test_an_output_made_of_numbers_is_a_numpy_number(params, body, args, expected, dtype):
    m = load(f"graph f({params}) -> y {{\n    {body}\n}}\n")
    for y in (m.f(*args), m.f_forward(*args)[0], m.f_grad(*args)[0]):
        assert y == expected and type(y) is dtype


def test_outputs_made_of_numbers_and_their_gradients():
    m = load("graph f(x: [n], s: []) -> (y, z, w) {\n    y = 1.5\n    z = n\n    w = s * 2\n}\n")
    (y, z, w), cache = m.f_forward(np.ones(2), 3)
    assert (y, z, w) == (1.5, 2, 6.0)
    grads = m.f_backward((1.0, 1.0, 1.0), cache)
    assert grads.x.tolist() == [0.0, 0.0] and grads.s == 2.0 and grads.s.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# 11. An output is never the caller's array: an input returned as it is, or a view of one, is
#     copied (the caller writing into it wrote into their input, and into the cache)


@pytest.mark.parametrize(
    "params, body",
    [
        ("x: [n, m]", "y = x"),
        ("x: [n, m]", "y = x.T"),
        ("x: [n, m]", "y = reshape(x, (m, n))"),
        ("x: [n, m]", "y = x[0]"),
        ("x: [n, m], i: int[]", "y = take(x, i)"),
        ("x: [n, m]", 'y = einsum("ij->ji", x)'),
        ("x: [n, m], k: int[n]", "y = k"),
    ],
)
def test_an_output_never_shares_an_inputs_array(params, body):
    m = load(
        f"graph f({params}) -> y {{\n    {body}\n    z = sum(x * x)\n}}\n".replace(
            "-> y", "-> (y, z)"
        )
    )
    x = np.arange(6.0).reshape(2, 3)
    args = (
        [x] + ([0] if "i: int" in params else []) + ([np.arange(2)] if "k: int" in params else [])
    )
    kept = [np.array(a, copy=True) for a in args]
    for y, _ in (m.f(*args), m.f_forward(*args)[0]):
        assert not any(np.shares_memory(y, a) for a in args)
        y[...] = -1
        for a, k in zip(args, kept):
            np.testing.assert_array_equal(a, k)
    (y, z), cache = m.f_forward(*args)
    y[...] = -1
    grads = m.f_backward((np.ones(np.shape(y)), 1.0), cache)
    np.testing.assert_array_equal(
        grads.x - 2 * x, m.f_backward((np.ones(np.shape(y)), 0.0), cache).x
    )


def test_two_outputs_never_share_an_array():
    m = load(
        "graph f(x: [n]) -> (y, z, w) {\n    y = x * 2\n    z = y\n    w = reshape(y, (1, n))\n}\n"
    )
    y, z, w = m.f(np.ones(3))
    assert not np.shares_memory(y, z) and not np.shares_memory(y, w)
    assert not np.shares_memory(z, w)


def test_a_scalar_parameter_through_a_function_keeps_float32():
    """exp(s), tanh(s) of a `[]` parameter passed as a Python float were float64 NumPy scalars,
    which made the float32 arrays they met float64."""
    m = load("graph f(x: [n], s: []) -> y {\n    y = sum(x * exp(s)) + sum(x * tanh(s))\n}\n")
    x = np.ones(3, np.float32)
    value, grads = m.f_grad(x, 0.5)
    assert value.dtype == grads.x.dtype == grads.s.dtype == np.float32
    _check_grads(m, [np.ones(3), 0.5])


# ---------------------------------------------------------------------------------------------
# 12. Diagnostics instead of crashes: an expression nested too deeply (a lark VisitError around
#     a RecursionError), a cross_entropy without classes (an internal ShapeError)

DEEP = "graph f(x: [n]) -> y {\n y = " + "sum(tanh(" * 1000 + "x" + "))" * 1000 + "\n}"


def test_an_expression_nested_too_deeply_is_a_diagnostic():
    text = _error(DEEP)
    assert text.startswith(
        "f.bp:2:6: error: this expression nests 2001 levels deep, too deeply to compile; give "
        "some of its parts names of their own\n"
    )
    assert text.endswith("\n         ^")


def test_an_expression_nested_too_deeply_on_the_command_line(tmp_path):
    (tmp_path / "deep.bp").write_text(DEEP)
    for command in (["compile", "deep.bp"], ["explain", "deep.bp"]):
        run = subprocess.run(
            [sys.executable, "-m", "bpc", *command], cwd=tmp_path, capture_output=True, text=True
        )
        assert run.returncode == 1 and "Traceback" not in run.stderr
        assert run.stderr.startswith("deep.bp:2:6: error: this expression nests 2001 levels deep")
    assert not (tmp_path / "deep.py").exists()


def test_an_expression_nested_a_hundred_deep_compiles():
    m = load("graph f(x: [n]) -> y {\n    y = sum(" + "tanh(" * 100 + "x" + ")" * 100 + ")\n}\n")
    _check_grads(m, [np.array([0.5, -0.25])])


@pytest.mark.parametrize(
    "source",
    [
        "graph f(x: [n, 0], y: int[n]) -> out { out = mean(cross_entropy(x, y)) }",
        "graph f(x: [n, 0], y: int[n]) -> out {\n    out = mean(cross_entropy(x, y))\n}\n",
        "graph f(x: [0], y: int[]) -> out {\n    out = cross_entropy(x, y)\n}\n",
    ],
)
def test_cross_entropy_without_classes_is_a_diagnostic(source):
    text = _error(source)
    assert "error: cross_entropy: the logits [" in text
    assert "have no class: their last axis has size 0" in text and text.endswith("^")
