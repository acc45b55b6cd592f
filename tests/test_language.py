"""The language contract, checked on the values and gradients of compiled modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpc.check import check_source
from tests.support import load, numeric_grad, rel_error

rng = np.random.default_rng(1)


def check_grads(module, name, args, wrt_index, tol=1e-6):
    """g_grad against central differences, and forward+backward against g_grad."""
    f = getattr(module, name)
    value, grads = getattr(module, name + "_grad")(*args)
    np.testing.assert_allclose(value, f(*args), rtol=1e-12)
    out, cache = getattr(module, name + "_forward")(*args)
    again = getattr(module, name + "_backward")(1.0, cache)
    for i, g in zip(wrt_index, grads):
        assert g.shape == np.shape(args[i]) and g.dtype == np.result_type(args[i])
        assert rel_error(g, numeric_grad(f, list(args), i)) < tol
    for a, b in zip(grads, again):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    return value, grads


def test_fn_is_inlined_with_dimensions_unified_per_call_site():
    m = load("""
fn affine(x: [N, D], w: [D, M], b: [M]) -> out {
    out = x @ w + b
}
fn layer(x: [N, D], w: [D, M], b: [M]) -> h {
    h = tanh(affine(x, w, b))   # fn calling fn
}
graph net(X: [N, D], W1: [D, H], b1: [H], W2: [H, C], b2: [C]) -> loss {
    loss = sum(affine(layer(X, W1, b1), W2, b2) ** 2)
}
""")
    X, W1, b1, W2, b2 = (rng.normal(size=s) for s in [(4, 3), (3, 5), (5,), (5, 2), (2,)])
    value, _ = check_grads(m, "net", [X, W1, b1, W2, b2], range(5))
    np.testing.assert_allclose(value, np.sum((np.tanh(X @ W1 + b1) @ W2 + b2) ** 2))


def test_rebinding_comments_and_line_continuation():
    m = load("""# a comment line

graph g(x: [n]) -> y {   # trailing comment
    h = x * 2
    h = h + 1            # the later binding wins
    y = sum(h * (h +
                 x))     # a newline inside parentheses continues the statement
}
""")
    x = rng.normal(size=5)
    value, _ = check_grads(m, "g", [x], [0])
    h = 2 * x + 1
    np.testing.assert_allclose(value, np.sum(h * (h + x)))


def test_several_outputs_forward_and_backward():
    m = load("""
graph two(a: [n, m], b: [m]) -> (s, t) {
    s = a @ b
    t = sum(exp(a) * s[:, ] , axis=0)
}
""".replace("s[:, ]", "reshape(s, (n, 1))"))
    a, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    (s, t), cache = m.two_forward(a, b)
    np.testing.assert_allclose(s, a @ b)
    np.testing.assert_allclose(t, np.sum(np.exp(a) * (a @ b)[:, None], axis=0))
    ds, dt = rng.normal(size=3), rng.normal(size=4)
    grads = m.two_backward((ds, dt), cache)

    def scalar(a, b):
        s, t = m.two(a, b)
        return np.sum(s * ds) + np.sum(t * dt)

    assert rel_error(grads.a, numeric_grad(scalar, [a, b], 0)) < 1e-6
    assert rel_error(grads.b, numeric_grad(scalar, [a, b], 1)) < 1e-6
    assert not hasattr(m, "two_grad"), "g_grad exists only for one scalar output"


def test_wrt_limits_what_is_computed():
    m = load("""
graph g(X: [N, D], W: [D, H], b: [H]) -> loss wrt b, W {
    loss = sum(tanh(X @ W + b))
}
""")
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    value, grads = m.g_grad(X, W, b)
    assert grads._fields == ("b", "W")
    assert "dX" not in m.__source__ and "@ W.T" not in m.__source__
    assert rel_error(grads.W, numeric_grad(m.g, [X, W, b], 1)) < 1e-6
    assert rel_error(grads.b, numeric_grad(m.g, [X, W, b], 2)) < 1e-6


def test_dimension_names_in_expressions_and_masks():
    m = load("""
graph attn(Q: [T, d], K: [T, d]) -> z {
    a = Q @ K.T / sqrt(d)
    z = sum(a * (a > 0)) / T + mean(Q) * d
}
""")
    Q, K = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    value, _ = check_grads(m, "attn", [Q, K], [0, 1])
    a = Q @ K.T / 2.0
    np.testing.assert_allclose(value, np.sum(a * (a > 0)) / 3 + np.mean(Q) * 4)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("-x**2", lambda x: -(x**2)),
        ("x - x * 2 - 1", lambda x: x - x * 2 - 1),
        ("x / 2 * 3", lambda x: x / 2 * 3),
        ("2 ** x ** 2", lambda x: 2 ** (x**2)),
        ("-(x + 1) ** -2", lambda x: -((x + 1) ** -2)),
        ("x ** 2 ** 0.5", lambda x: x ** (2**0.5)),
        ("1e-3 * x + .5 - 3.", lambda x: 1e-3 * x + 0.5 - 3.0),
        ("x * (x < 1) + x * (x >= 1) * 2", lambda x: x * (x < 1) + x * (x >= 1) * 2),
    ],
)
def test_precedence_and_literals(expr, expected):
    m = load(f"graph g(x: [n]) -> y {{\n    y = sum({expr})\n}}\n")
    x = rng.uniform(0.5, 2.0, size=4)
    np.testing.assert_allclose(m.g(x), np.sum(expected(x)), rtol=1e-13)
    check_grads(m, "g", [x], [0])


def test_run_time_checks_name_the_parameter_and_dimension():
    m = load("graph g(W: [n, m], x: [m], k: [3]) -> f {\n    f = sum(W @ x) + sum(k)\n}\n")
    W, x, k = np.ones((2, 4)), np.ones(4), np.ones(3)
    assert m.g(W, x, k) == 8 + 3
    with pytest.raises(
        ValueError, match=r"x has shape \(5,\), but its axis 0 is dimension m, which is 4 in W"
    ):
        m.g(W, np.ones(5), k)
    with pytest.raises(ValueError, match=r"x must be 1-d, shaped \[m\]; got shape \(4, 1\)"):
        m.g(W, np.ones((4, 1)), k)
    with pytest.raises(ValueError, match=r"k must be shaped \[3\]; axis 0 is 2, not 3"):
        m.g(W, x, np.ones(2))
    with pytest.raises(ValueError, match="W must hold floats, got int64"):
        m.g(np.ones((2, 4), dtype=np.int64), x, k)
    with pytest.raises(ValueError, match="x is float32 but W is float64"):
        m.g(W, x.astype(np.float32), k)


def test_integer_parameters_are_checked_and_not_differentiated():
    m = load("graph g(x: [n], y: int[n]) -> f {\n    f = sum(x * y)\n}\n")
    x, y = rng.normal(size=3), np.array([1, 2, 3])
    value, grads = m.g_grad(x, y)
    assert grads._fields == ("x",)
    np.testing.assert_allclose(grads.x, y)
    with pytest.raises(ValueError, match="y must hold integers"):
        m.g(x, y.astype(float))


def test_float32_stays_float32():
    m = load("""
graph g(W: [n, m], x: [m], b: [n], s: []) -> f {
    f = mean(sigmoid(W @ x + b) ** 2) * s + sqrt(m) * sum(x)
}
""")
    W, x, b = (rng.normal(size=s).astype(np.float32) for s in [(3, 4), (4,), (3,)])
    value, grads = m.g_grad(W, x, b, 0.5)
    assert value.dtype == np.float32
    assert [g.dtype for g in grads[:3]] == [np.float32] * 3
    out, cache = m.g_forward(W, x, b, 0.5)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in m.g_backward(np.float32(1), cache)[:3])


def test_gradients_are_fresh_arrays_and_inputs_are_untouched():
    m = load("graph g(W: [n], x: [n]) -> f {\n    f = sum(W * x) + sum(W)\n}\n")
    W, x = rng.normal(size=3), rng.normal(size=3)
    W0, x0 = W.copy(), x.copy()
    _, grads = m.g_grad(W, x)
    assert grads.x is not W and not np.shares_memory(grads.x, W)
    grads.W[:] = 0  # a gradient can be updated in place
    grads.x[:] = 0
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(x, x0)
    out, cache = m.g_forward(W, x)
    first = m.g_backward(1.0, cache)
    first.W[:] = 7
    second = m.g_backward(1.0, cache)
    np.testing.assert_allclose(second.W, x + 1)


def test_a_parameter_that_does_not_reach_the_output_gets_zeros():
    m = load("graph g(a: [n], b: [n, 2]) -> f {\n    f = sum(a * a)\n}\n")
    a, b = rng.normal(size=3), rng.normal(size=(3, 2))
    _, grads = m.g_grad(a, b)
    np.testing.assert_array_equal(grads.b, np.zeros((3, 2)))
    assert grads.b.flags.writeable


def test_scalar_only_graph_and_python_numbers():
    m = load("graph g(a: [], b: []) -> f {\n    f = a * b + a ** 2\n}\n")
    value, grads = m.g_grad(2.0, 3.0)
    assert value == 10.0 and grads.a == 7.0 and grads.b == 2.0
    assert np.shape(grads.a) == ()


def test_backward_of_an_unused_parameter_is_zeros():
    m = load("graph unused(x: [n], w: [n]) -> z {\n    z = sum(x)\n}\n")
    x, w = rng.normal(size=3), rng.normal(size=3)
    grads = m.unused_backward(1.0, m.unused_forward(x, w)[1])
    np.testing.assert_array_equal(grads.w, np.zeros(3))
    np.testing.assert_array_equal(grads.x, np.ones(3))


def test_float32_survives_masks_and_the_unit_seed():
    m = load("graph masked(x: [n], s: []) -> y {\n    y = sum(x * (x > 0)) * s\n}\n")
    x = rng.normal(size=5).astype(np.float32)
    value, grads = m.masked_grad(x, 2.0)
    assert value.dtype == np.float32 and grads.x.dtype == np.float32
    np.testing.assert_allclose(grads.x, 2.0 * (x > 0))


def test_scalar_parameter_gradients_are_writable_arrays():
    m = load("graph sc(x: [n], s: []) -> y {\n    y = sum(x) * s\n}\n")
    _, grads = m.sc_grad(np.ones(3), 2.0)
    assert isinstance(grads.s, np.ndarray) and grads.s.shape == () and grads.s.flags.writeable
    assert grads.s == 3.0


def test_lists_are_refused_with_a_value_error():
    m = load("graph sc(x: [n], s: []) -> y {\n    y = sum(x) * s\n}\n")
    with pytest.raises(ValueError, match="x must be a NumPy array, got list"):
        m.sc([1.0, 2.0], 2.0)


def test_fn_rank_errors_use_the_fn_dimension_names():
    from bpc.diagnostics import CompileError

    with pytest.raises(CompileError, match=r"argument 'x' of fn 'sq' is declared \[n\] \(1-d\)"):
        load(
            "fn sq(x: [n]) -> y {\n    y = x * x\n}\ngraph g(a: [p, q]) -> z {\n    z = sum(sq(a))\n}\n"
        )


def test_any_identifier_works_as_a_name():
    """Python keywords and builtins, and names the generated code uses itself, are fine in bp."""
    m = load("""
graph lambda(print: [np, cache], dout: [cache], None: [], __import__: [np], _x: []) -> self {
    self = sum(print @ dout * None) + sum(__import__ * __import__) * _x
}
graph np(cache: [math]) -> dout {
    dout = sum(cache * math)
}
""")
    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=2)
    value, grads = m.lambda_grad(a, b, 2.0, c, 3.0)
    np.testing.assert_allclose(value, np.sum(a @ b * 2.0) + np.sum(c * c) * 3.0)
    assert grads._fields == ("print", "dout_", "None_", "import__", "x")
    np.testing.assert_allclose(grads.import__, 2 * c * 3.0)
    value, grads = m.np_grad(np.ones(4))
    assert value == 16.0 and grads.cache_.tolist() == [4.0] * 4


def test_a_graph_may_be_named_like_a_built_in():
    m = load("graph relu(x: [n]) -> out {\n    out = sum(relu(x))\n}\n")
    assert m.relu(np.array([-1.0, 2.0])) == 2.0


def test_integer_arrays_in_float_arithmetic_keep_float32():
    m = load("graph g(x: [n], k: int[n]) -> y {\n    y = sum(x * k + k)\n}\n")
    x, k = np.ones(3, np.float32), np.arange(3)
    value, grads = m.g_grad(x, k)
    assert value.dtype == grads.x.dtype == m.g(x, k).dtype == np.float32
    assert value == 6.0 and grads.x.tolist() == [0.0, 1.0, 2.0]
    assert m.g(x.astype(np.float64), k).dtype == np.float64


def test_integer_arrays_in_products_and_joins_keep_float32():
    m = load(
        "graph f(x: [n, k], K: int[k, m]) -> out {\n    out = sum(x @ K) + sum(concat(x, K.T, axis=0))\n}\n"
    )
    value, grads = m.f_grad(np.ones((2, 3), np.float32), np.ones((3, 4), int))
    assert value.dtype == grads.x.dtype == np.float32
    assert value == 2 * 3 * 4 + 6 + 12


def test_a_number_clipped_to_float32_arrays_keeps_float32():
    """clip(relu(s), lo, 2) of a negative s clips a Python 0 (`max(s, 0)`) to the bounds:
    np.clip would make it an int64 array first, and the result float64 (found by
    test_random_graphs); np.maximum and np.minimum take the number's weak type."""
    m = load("graph f(s: [], lo: [n]) -> out {\n    out = sum(clip(relu(s), lo, 2) ** 2)\n}\n")
    lo = np.array([-1.0, 0.5, 3.0], np.float32)
    for s in (np.float32(-0.5), np.float32(1.5), -0.5):
        value, grads = m.f_grad(s, lo)
        assert value.dtype == grads.lo.dtype == m.f(s, lo).dtype == np.float32, s
        clipped = np.minimum(np.maximum(max(float(s), 0.0), lo.astype(np.float64)), 2)
        np.testing.assert_allclose(value, np.sum(clipped**2), rtol=1e-6)


def test_gradients_of_broadcast_views_are_writable():
    m = load("graph f(x: [n, m]) -> w {\n    w = sum(x.T) + sum(reshape(x, (m, n)).T)\n}\n")
    _, cache = m.f_forward(np.ones((2, 3)))
    grad = m.f_backward(2.0, cache).x
    assert grad.flags.writeable and grad.tolist() == [[4.0] * 3] * 2


@pytest.mark.parametrize(
    "source, shapes",
    [
        # a gradient that folds to a plain number and is then reshaped or given an axis
        ("f(s: [1], y: [m]) -> out {\n    out = sum(s + y) + sum(s * y)", [(1,), (4,)]),
        ("f(s: [1, 1, 1], y: [k, m, n]) -> out {\n    out = sum(s + y)", [(1, 1, 1), (2, 3, 4)]),
        ("f(x: [k]) -> out {\n    out = sum(x[0] + x)", [(3,)]),
        # a non-smooth operation on a 0-d value: `1.0 * (t > 0)` is an np.float64, cast back
        ("f(x: [m, k]) -> out {\n    out = relu(sum(x)) + sum(x * x)", [(4, 2)]),
        ("f(x: [m, k]) -> out {\n    out = clip(sum(x), -1, 1) + sum(x * x)", [(4, 2)]),
        ("f(x: [m, k]) -> out {\n    out = abs(sum(x)) * sum(x * x)", [(4, 2)]),
    ],
)
def test_gradients_of_size_one_and_0d_corners_keep_shape_and_float32(source, shapes):
    m = load(f"graph {source}\n}}\n")
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.01, 0.1, s) for s in shapes]
    _, grads = m.f_grad(*args)
    for i, grad in enumerate(grads):
        assert rel_error(grad, numeric_grad(m.f, args, i)) < 1e-6
    value32, grads32 = m.f_grad(*[a.astype(np.float32) for a in args])
    assert np.asarray(value32).dtype == np.float32
    assert [(g.shape, g.dtype) for g in grads32] == [(s, np.float32) for s in shapes]


@pytest.mark.parametrize("reduction", ["sum", "mean", "max", "min", "logsumexp"])
def test_a_reduction_of_a_python_number_keeps_it_one(reduction):
    """Found by the random graphs: `max(log(p))` of a `[]` parameter was `np.max` of a Python
    float, a float64 NumPy number, which made the values of a float32 graph float64."""
    m = load(f"graph f(p: [], x: [m]) -> out {{\n    out = sum(x * {reduction}(log(p)))\n}}\n")
    for p in (np.float32(1.5), 1.5):
        value, grads = m.f_grad(p, np.ones(3, np.float32))
        assert np.asarray(value).dtype == np.asarray(grads.x).dtype == np.float32
        assert np.asarray(m.f(p, np.ones(3, np.float32))).dtype == np.float32
        assert rel_error(value, 3 * np.log(1.5)) < 1e-6


def test_abs_and_sign_of_a_python_number_keep_it_one():
    """Found by the long random-graph run: `abs(log(p))` of a `[]` parameter was `np.abs` of a
    Python float, a float64 NumPy number (and its gradient's `np.sign` too)."""
    m = load("graph f(p: [], x: [m]) -> out {\n    out = sum(x * abs(log(p)))\n}\n")
    for p in (np.float32(0.5), 0.5):
        value, grads = m.f_grad(p, np.ones(3, np.float32))
        assert np.asarray(value).dtype == np.asarray(grads.x).dtype == np.float32
        _, cache = m.f_forward(p, np.ones(3, np.float32))
        assert np.asarray(m.f_backward(1.0, cache).p).dtype == np.float32
        assert rel_error(value, -3 * np.log(0.5)) < 1e-6
        assert rel_error(grads.p, -3 / 0.5) < 1e-6


def test_scalar_only_graphs_take_the_dtype_of_their_first_float_scalar():
    m = load(
        "graph f(i: int[], x0: []) -> out {\n    v = one_hot(i, 3) + x0\n    out = sum(v * v)\n}\n"
    )
    for label, x0, dtype in [(np.int64(1), np.float32(0.5), np.float32), (1, 0.5, np.float64)]:
        value, grads = m.f_grad(label, x0)
        assert np.asarray(value).dtype == np.asarray(grads.x0).dtype == dtype
        assert value == 0.25 * 2 + 1.5**2 and grads.x0 == 2 * (0.5 * 2 + 1.5)


def test_integer_scalars_take_python_ints_but_not_floats():
    m = load("graph f(i: int[], x: [k]) -> out {\n    out = sum(x * i)\n}\n")
    assert m.f(2, np.ones(3)) == 6.0
    with pytest.raises(ValueError, match="i must hold integers, got a float"):
        m.f(2.0, np.ones(3))
    with pytest.raises(ValueError, match="i must hold integers, got a bool"):
        m.f(True, np.ones(3))


def test_argument_checks_remember_only_what_passed():
    """`_shapes` remembers the arguments' classes, shapes and dtypes that passed; a call that
    differs in any of them is checked again."""
    m = load("graph f(W: [n, m], x: [m], s: []) -> out {\n    out = sum(W @ x) * s\n}\n")
    W, x = np.ones((2, 3)), np.ones(3)
    for _ in range(2):
        assert m.f(W, x, 2.0) == 12.0
        assert m.f(W, x, np.float64(2.0)) == 12.0
        with pytest.raises(ValueError, match="x has shape"):
            m.f(W, np.ones(4), 2.0)
        with pytest.raises(ValueError, match="is float32 but W is float64"):
            m.f(W, x.astype(np.float32), 2.0)
        with pytest.raises(ValueError, match="s must be a number or a NumPy array, got list"):
            m.f(W, x, [2.0])
        with pytest.raises(ValueError, match="x must hold floats"):
            m.f(W, np.ones(3, int), 2.0)


REGRESSIONS = sorted((Path(__file__).parent / "regressions").glob("*.bp"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_graphs_that_once_got_wrong_gradients(path):
    """Graphs the long random-graph runs found, kept with the bug each comment names."""
    for seed in range(3):
        rows = check_source(path.read_text(), seed=seed)
        assert rows and all(row.ok for row in rows), rows
