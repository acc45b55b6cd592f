"""Indexing, slicing, take, take_along, concat and einsum: values against NumPy itself (the bp
subscripts are Python's, so NumPy evaluates the same text), gradients against finite
differences, and compile-time errors at the line and column of the mistake."""

from __future__ import annotations

import numpy as np
import pytest

import bpc
from tests.support import assert_error_at, load, numeric_grad, rel_error

SIZES = {"n": 3, "m": 4, "k": 5, "T": 4, "N": 2, "H": 3, "V": 6, "D": 3}


def _array(rng, dims, sizes=SIZES):
    return rng.standard_normal(tuple(d if isinstance(d, int) else sizes[d] for d in dims))


def _check_gradient(module, args, names, tol=1e-6):
    """g_grad of a scalar graph `f` against central differences, for every float argument."""
    value, grads = module.f_grad(*args)
    assert rel_error(value, module.f(*args)) == 0
    for i, name in enumerate(names):
        if np.asarray(args[i]).dtype.kind == "f":
            want = numeric_grad(lambda *a: float(module.f(*a)), list(args), i)
            assert rel_error(getattr(grads, name), want) < tol, name
    return value, grads


# ---------------------------------------------------------------------------------------------
# Basic indexing and slicing: the same subscripts, in bp and in NumPy

SUBSCRIPTS = [
    ("x: [n, m]", "x[0]"),
    ("x: [n, m]", "x[-1]"),
    ("x: [n, m]", "x[:, 0]"),
    ("x: [n, m]", "x[1, -2]"),
    ("x: [n, m]", "x[1:]"),
    ("x: [n, 4]", "x[:-1, 1:3]"),
    ("x: [3, m]", "x[-2:, :m - 1]"),
    ("x: [n, m]", "x[n - 1]"),
    ("x: [n, 4]", "x[:, ::2]"),
    ("x: [n, m]", "x[::-1]"),
    ("x: [n, 5]", "x[:, ::-2]"),
    ("x: [n, m]", "x[:, m - 1:0:-1]"),
    ("x: [n, 4]", "x[::-1, 3:0:-2]"),
    ("x: [n, 5]", "x[:, 1:4:2]"),
    ("x: [n, m]", "x[:, :]"),
    ("x: [T, N, H]", "x[T - 1]"),
    ("x: [T, N, H]", "x[1, :, H - 1:]"),
    ("x: [T, N, H]", "x[:, 0, -1]"),
    ("x: [T, N, H]", "x[1:T, -1]"),
    ("x: [9]", "x[2:8:3]"),
    ("x: [9]", "x[8:1:-3]"),
    ("x: [9]", "x[-3::-4]"),
    ("x: [6, N]", "x[::3]"),
]


@pytest.mark.parametrize("sig, expr", SUBSCRIPTS, ids=[e for _, e in SUBSCRIPTS])
def test_indexing_matches_numpy(sig, expr):
    """Forward value and gradient of `sum(w * x[...])`, against NumPy evaluating the same text."""
    module = load(
        f"graph f({sig}, w: []) -> out {{\n    y = {expr}\n    out = sum(w * y * y)\n}}\n"
    )
    rng = np.random.default_rng(abs(hash(expr)) % 2**32)
    dims = [d.strip() for d in sig.split("[")[1].rstrip("]").split(",")]
    x = _array(rng, [int(d) if d.isdigit() else d for d in dims])
    want = eval(expr, {}, {"x": x, **SIZES})  # the bp subscript is Python's subscript
    np.testing.assert_allclose(module.f(x, 1.0), np.sum(want * want), rtol=1e-13)
    _, grads = _check_gradient(module, [x, 0.7], ["x", "w"])
    expected = np.zeros_like(x)
    np.add.at(expected, (Ellipsis,), 0)  # zeros, then 2 * w * y where x[...] was
    view = eval(expr, {}, {"x": expected, **SIZES})
    if np.ndim(view):
        view[...] = 2 * 0.7 * want
    else:
        exec(f"{expr} = 2 * 0.7 * want", {}, {"x": expected, "want": want, **SIZES})
    np.testing.assert_allclose(grads.x, expected, rtol=1e-12, atol=1e-12)


def test_fan_out_of_lstm_gates_accumulates():
    """Four slices of one pre-activation, as in an LSTM step: each gradient lands in its block."""
    module = load("""
graph f(a4: [N, 4, H], c: [N, H]) -> out {
    a = reshape(a4, (N, 4*H))
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2*H])
    o = sigmoid(a[:, 2*H:3*H])
    g = tanh(a[:, 3*H:])
    out = sum(o * tanh(f * c + i * g))
}
""")
    rng = np.random.default_rng(0)
    a4, c = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3))
    value, grads = _check_gradient(module, [a4, c], ["a4", "c"])
    a = a4.reshape(2, 12)
    i, f, o = (1 / (1 + np.exp(-a[:, k * 3 : (k + 1) * 3])) for k in range(3))
    g = np.tanh(a[:, 9:])
    np.testing.assert_allclose(value, np.sum(o * np.tanh(f * c + i * g)), rtol=1e-12)


def test_slices_inside_a_fn_use_its_dimensions():
    module = load("""
fn last_two(x: [T, D]) -> y {
    y = x[T - 1:] * x[:1]
}
graph f(a: [n, m], b: [k, m]) -> out {
    out = sum(last_two(a)) + sum(last_two(b) ** 2)
}
""")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    value, _ = _check_gradient(module, [a, b], ["a", "b"])
    want = np.sum(a[-1:] * a[:1]) + np.sum((b[-1:] * b[:1]) ** 2)
    np.testing.assert_allclose(value, want, rtol=1e-12)


def test_emitted_indexing_reads_like_numpy():
    text = bpc.compile_source("""
graph f(x: [T, N, D], a4: [N, 4, H]) -> out {
    a = reshape(a4, (N, 4*H))
    out = sum(x[T - 1]) + sum(x[:, 0, 1:]) + sum(a[:, H:2*H] * a[:, 3*H:])
}
""")
    assert "x[-1]" in text and "x[:, 0, 1:]" in text
    assert "a[:, H : 2 * H]" in text and "a[:, 3 * H :]" in text
    assert "np.pad(" in text  # the gradient of a slice: zeros around it


# ---------------------------------------------------------------------------------------------
# take, take_along, concat


def test_take_adds_up_repeated_indices():
    module = load("""
graph f(W: [V, D], idx: int[N, T], w: [D]) -> out {
    out = sum(take(W, idx) * w)
}
""")
    rng = np.random.default_rng(2)
    W, w = rng.standard_normal((6, 3)), rng.standard_normal(3)
    idx = np.array([[0, 2, 2, 5], [2, 0, 0, 2]])
    value, grads = _check_gradient(module, [W, idx, w], ["W", "idx", "w"])
    np.testing.assert_allclose(value, np.sum(W[idx] * w), rtol=1e-12)
    want = np.zeros_like(W)
    np.add.at(want, idx, np.broadcast_to(w, idx.shape + (3,)))
    np.testing.assert_allclose(grads.W, want, rtol=1e-12)
    assert grads.W[2].tolist() == pytest.approx((4 * w).tolist())  # index 2 four times


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_along_any_axis_matches_np_take(axis):
    module = load(f"""
graph f(x: [N, T, D], idx: int[k, 2]) -> out {{
    y = take(x, idx, axis={axis})
    out = sum(y * y)
}}
""")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3))
    idx = rng.integers(0, 2, (5, 2))
    value, grads = _check_gradient(module, [x, idx], ["x", "idx"])
    np.testing.assert_allclose(value, np.sum(np.take(x, idx, axis=axis) ** 2), rtol=1e-12)


def test_take_along_picks_one_per_row():
    module = load("""
graph f(scores: [N, V], y: int[N]) -> out {
    out = sum(take_along(scores, y) ** 2)
}
""")
    # (a row of indices is NumPy's own indexing, `scores[np.arange(N), y]`: np.take_along_axis
    # builds that index in Python, 3 times as slow at 64 rows)
    assert "scores[np.arange(N), y]" in module.__source__
    assert "take_along_axis" not in module.__source__
    rng = np.random.default_rng(4)
    scores, y = rng.standard_normal((5, 6)), np.array([0, 5, -1, 2, -6])  # (-1 is 5, -6 is 0)
    value, grads = _check_gradient(module, [scores, y], ["scores", "y"])
    picked = np.take_along_axis(scores, y[:, None], axis=1)[:, 0]
    np.testing.assert_allclose(value, np.sum(picked**2), rtol=1e-12)
    want = np.zeros_like(scores)
    want[np.arange(5), y] = 2 * picked
    np.testing.assert_allclose(grads.scores, want, rtol=1e-12)
    with pytest.raises(IndexError):
        module.f(scores, np.array([0, 6, 1, 2, 3]))


def test_take_along_of_a_grid_of_indices_and_its_gradient_added():
    """Indices [N, T] into [N, T, V] (np.take_along_axis), and the SVM-like sum whose gradient
    adds take_along's into another (`_add_along` over np.indices), against NumPy's own."""
    module = load("""
graph f(s: [N, T, V], y: int[N, T]) -> out {
    m = relu(s - reshape(take_along(s, y), (N, T, 1)) + 1)
    out = sum(m * m)
}
""")
    assert "np.take_along_axis(" in module.__source__ and "_add_along(" in module.__source__
    rng = np.random.default_rng(6)
    s, y = rng.standard_normal((3, 4, 5)), rng.integers(-5, 5, (3, 4))
    value, _ = _check_gradient(module, [s, y], ["s", "y"])
    m = np.maximum(s - np.take_along_axis(s, y[..., None], axis=2) + 1, 0)
    np.testing.assert_allclose(value, np.sum(m * m), rtol=1e-12)


def test_concat_joins_and_splits_the_gradient():
    module = load("""
graph f(a: [N, H], b: [N, D]) -> out {
    c = concat(a, b * 2, a, axis=1)
    out = sum(c * c)
}
""")
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    value, grads = _check_gradient(module, [a, b], ["a", "b"])
    c = np.concatenate([a, 2 * b, a], axis=1)
    np.testing.assert_allclose(value, np.sum(c * c), rtol=1e-12)
    np.testing.assert_allclose(grads.a, 4 * a, rtol=1e-12)
    np.testing.assert_allclose(grads.b, 8 * b, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# einsum

EINSUMS = [
    ("ij,jk->ik", [("n", "k"), ("k", "m")]),
    ("bij,bjk->bik", [("N", "n", "k"), ("N", "k", "m")]),
    ("ij->ji", [("n", "m")]),
    ("ij->", [("n", "m")]),
    ("i,i->", [("n",), ("n",)]),
    ("i,j->ij", [("n",), ("m",)]),
    ("ij,k->ki", [("n", "m"), ("k",)]),
    ("ij,jk,kl->li", [("n", "m"), ("m", "k"), ("k", "N")]),
    ("bhqd,bhkd->bhqk", [("N", "H", "n", "k"), ("N", "H", "m", "k")]),
    (",ij->ij", [(), ("n", "m")]),
    ("Ab,bA->b", [("n", "m"), ("m", "n")]),
]


@pytest.mark.parametrize("spec, shapes", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_matches_numpy(spec, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    sig = ", ".join(f"{n}: [{', '.join(s)}]" for n, s in zip(names, shapes))
    module = load(
        f'graph f({sig}) -> out {{\n    y = einsum("{spec}", {", ".join(names)})\n'
        f"    out = sum(y * y)\n}}\n"
    )
    rng = np.random.default_rng(6)
    args = [_array(rng, s) for s in shapes]
    value, _ = _check_gradient(module, args, names)
    want = np.einsum(spec, *args)
    np.testing.assert_allclose(value, np.sum(want * want), rtol=1e-10)


def test_einsum_spec_is_normalized_before_it_is_emitted():
    text = bpc.compile_source(
        "graph f(a: [n, k], b: [k, m], c: [m, l]) -> out {\n"
        '    out = einsum(" ij , jk,kl->il ", a, b, c)\n}\n'
    )
    assert 'np.einsum("ij,jk,kl->il", a, b, c, optimize=True)' in text


def test_einsum_of_two_operands_is_a_matrix_product():
    """Rewritten before differentiation (`einsum_as_products`): `@` costs a few us a call where
    np.einsum(..., optimize=True) costs 20-50 us (bench/kernels.py)."""
    text = bpc.compile_source(
        'graph f(q: [B, S, d], k: [B, T, d]) -> out {\n    out = einsum("bqd,bkd->bqk", q, k)\n}\n'
    )
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "einsum" in line]
    assert "out = q @ np.swapaxes(k, -1, -2)" in text


def test_einsum_keeps_float32_with_a_python_scalar():
    module = load('graph f(s: [], a: [n, m]) -> out {\n    out = einsum(",ij->ji", s, a)\n}\n')
    a = np.ones((3, 4), np.float32)
    assert module.f(2.0, a).dtype == np.float32
    out, cache = module.f_forward(2.0, a)
    grads = module.f_backward(np.ones((4, 3), np.float32), cache)
    assert grads.a.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Compile-time errors, at the line and column of the mistake

ERRORS = {
    "index out of range": (
        "x: [3, m]",
        "y = x[3]",
        "x[3]",
        "index 3 is out of range on axis 0 (size 3)",
    ),
    "negative index out of range": ("x: [3, m]", "y = x[-4]", "x[-4]", "index -4 is out of range"),
    "index equal to the size": ("x: [T, m]", "y = x[T]", "x[T]", "index T is out of range"),
    "slice past the end": (
        "x: [n, 4]",
        "y = x[:, 1:5]",
        "x[:, 1:5]",
        "slice stop 5 is out of range on axis 1 (size 4)",
    ),
    "slice past a symbolic end": (
        "x: [n, T]",
        "y = x[:, T:2*T]",
        "x[:, T",
        "slice stop 2*T is out of range on axis 1 (size T)",
    ),
    "empty slice": (
        "x: [n, 4]",
        "y = x[:, 3:1]",
        "x[:, 3:1]",
        "slice 3:1 on axis 1 (size 4) stops before it starts",
    ),
    "zero step": ("x: [n]", "y = x[::0]", "0]", "a slice step must be a nonzero integer"),
    "symbolic step": ("x: [n]", "y = x[::n]", "n]", "a slice step must be a nonzero integer"),
    "too many indices": ("x: [n, m]", "y = x[0, 1, 2]", "x[0", "too many indices: [n, m] is 2-d"),
    "float index": ("x: [n]", "y = x[0.5]", "0.5", "an index must be an integer or a dimension"),
    "boolean index": (
        "x: [n]",
        "y = x[true]",
        "true",
        "an index must be an integer or a dimension",
    ),
    "index by a value": (
        "x: [n], i: int[]",
        "y = x[i]",
        "i]",
        "an index must be known at compile time, and 'i' is a value; gather by an integer "
        "array with take(x, i, axis=...)",
    ),
    "bound from a value": (
        "x: [n], s: []",
        "y = x[:s]",
        "s]",
        "a slice bound must be known at compile time",
    ),
    "take with float indices": (
        "x: [n, m], i: [k]",
        "y = take(x, i)",
        "take",
        "take: the indices must be integers; got a float value [k]",
    ),
    "take with a mask": (
        "x: [n, m]",
        "y = take(x, x > 0)",
        "take",
        "take: the indices must be integers; got a boolean mask",
    ),
    "take axis out of range": (
        "x: [n, m], i: int[k]",
        "y = take(x, i, axis=2)",
        "take",
        "take: axis 2 is out of range for a 2-d value",
    ),
    "take_along of the wrong rank": (
        "x: [n, m], i: int[n, m]",
        "y = take_along(x, i)",
        "take_along",
        "take_along: the indices are [n, m] but must be shaped like [n, m] without its last "
        "axis, [n]",
    ),
    "take_along with float indices": (
        "x: [n, m], i: [n]",
        "y = take_along(x, i)",
        "take_along",
        "take_along: the indices must be integers",
    ),
    "concat of mismatched shapes": (
        "a: [n, m], b: [k, n]",
        "y = concat(a, b, axis=1)",
        "concat",
        "concat: shapes [n, m] and [k, n] differ in axis 0 (n and k); only axis 1 may differ",
    ),
    "concat of different ranks": (
        "a: [n, m], b: [m]",
        "y = concat(a, b)",
        "concat",
        "concat: the arrays must have the same number of axes; got [n, m], [m]",
    ),
    "concat with a positional axis": (
        "a: [n, m], b: [n, m]",
        "y = concat(a, b, 1)",
        "concat",
        "concat: argument 3 is a number, not an array; give the axis by keyword",
    ),
    "concat of nothing": ("a: [n]", "y = concat(axis=0)", "concat", "concat() needs at least one"),
    "einsum without an output": (
        "a: [n, k], b: [k, m]",
        'y = einsum("ij,jk", a, b)',
        "einsum",
        "einsum: \"ij,jk\" needs exactly one '->' followed by the output's letters",
    ),
    "einsum with the wrong rank": (
        "a: [n, k], b: [k]",
        'y = einsum("ij,jk->ik", a, b)',
        "einsum",
        "einsum: operand 2 is 1-d, [k], but its subscripts 'jk' name 2 axes",
    ),
    "einsum with mismatched dimensions": (
        "a: [n, k], b: [m, n]",
        'y = einsum("ij,jk->ik", a, b)',
        "einsum",
        "einsum: letter 'j' is dimension k in operand 1 but m in operand 2",
    ),
    "einsum with a bad character": (
        "a: [n, k]",
        'y = einsum("i1->i", a)',
        "einsum",
        "einsum: \"i1->i\": unexpected '1'; subscripts are letters",
    ),
    "einsum injection": (
        "a: [n]",
        "y = einsum(\"i->i'); import os; ('\", a)",
        "einsum",
        'unexpected "\'"',
    ),
    "einsum output letter from nowhere": (
        "a: [n, k]",
        'y = einsum("ij->iz", a)',
        "einsum",
        "the output's letter 'z' is in no operand",
    ),
    "einsum repeated output letter": (
        "a: [n, k]",
        'y = einsum("ij->ii", a)',
        "einsum",
        "the output's letter 'i' appears twice",
    ),
    "einsum diagonal": (
        "a: [n, n]",
        'y = einsum("ii->i", a)',
        "einsum",
        "einsum: operand 1 repeats the letter 'i' in 'ii' (a diagonal); this is not supported",
    ),
    "einsum ellipsis": (
        "a: [n, k]",
        'y = einsum("...j->j", a)',
        "einsum",
        "'...' is not supported; name every axis with a letter",
    ),
    "einsum operand count": (
        "a: [n, k]",
        'y = einsum("ij,jk->ik", a)',
        "einsum",
        "describes 2 operand(s) but 1 are given",
    ),
    "einsum spec not a string": (
        "a: [n, k], b: [k, m]",
        "y = einsum(a, b)",
        "a, b",
        'spec must be a string, such as "ij,jk->ik"',
    ),
    "einsum of a number": (
        "a: [n, k]",
        'y = einsum(",ij->ij", 2, a)',
        "einsum",
        "einsum: operand 1 is a plain number; einsum takes arrays",
    ),
    "string elsewhere": ("x: [n]", 'y = sum(x, axis="i")', '"i"', "a string can only be an einsum"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_point_at_the_mistake(name):
    assert_error_at(*ERRORS[name])


def test_take_gradient_adds_repeated_and_negative_indices():
    import numpy as np

    from tests.support import load

    m = load("graph emb(W: [V, D], idx: int[N]) -> out {\n    out = sum(take(W, idx) * 2)\n}\n")
    W = np.zeros((4, 3), np.float32)
    _, grads = m.emb_grad(W, np.array([1, 1, -1, 3, 0]))
    assert grads.W.dtype == np.float32
    np.testing.assert_array_equal(grads.W[:, 0], [2.0, 4.0, 0.0, 4.0])
