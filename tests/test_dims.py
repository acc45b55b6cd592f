"""Property tests of dimension expressions (issue 12): the algebra of `bpc.dims` against integer
arithmetic, its sign prover against sampled sizes, and the call-time conditions that slices,
indices and reshapes record against what NumPy itself needs, size by size."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bpc.build import build_ir
from bpc.diagnostics import CompileError
from bpc.dims import Dim, negative, nonnegative
from bpc.parse import parse
from bpc.pipeline import compile_graphs
from bpc.shapes import infer_shapes
from tests.support import load

NAMES = ("a", "b", "c")

# ---------------------------------------------------------------------------------------------
# Random dimension expressions, as trees: ("name", "a"), ("int", 3), ("add" | "sub" | "mul", l, r),
# ("div" | "floordiv", e, 3 | "b"): an exact division (valid where it divides) or a floor one.


def _trees(names=NAMES, low: int = -3, high: int = 6):
    leaves = st.sampled_from(names).map(lambda n: ("name", n))
    leaves |= st.integers(low, high).map(lambda k: ("int", k))
    divisors = st.integers(1, 6) | st.sampled_from(names)

    def extend(inner):
        return st.tuples(st.sampled_from(["add", "sub", "mul"]), inner, inner) | st.tuples(
            st.sampled_from(["div", "floordiv"]), inner, divisors
        )

    return st.recursive(leaves, extend, max_leaves=7)


def to_dim(t) -> Dim:
    op = t[0]
    if op in ("name", "int"):
        return Dim.of(t[1])
    left = to_dim(t[1])
    if op == "div":
        return left.exact_div(t[2])
    if op == "floordiv":
        return left.floor_div(t[2])
    right = to_dim(t[2])
    return left + right if op == "add" else left - right if op == "sub" else left * right


def reference(t, sizes: dict[str, int]) -> tuple[Fraction, bool]:
    """The tree's value in exact rational arithmetic, and whether every exact division in it
    divided. Raises ZeroDivisionError for a division by a name of size 0."""
    op = t[0]
    if op == "name":
        return Fraction(sizes[t[1]]), True
    if op == "int":
        return Fraction(t[1]), True
    left, exact = reference(t[1], sizes)
    if op in ("div", "floordiv"):
        k = t[2] if isinstance(t[2], int) else sizes[t[2]]
        if k == 0:
            raise ZeroDivisionError
        if op == "floordiv":
            return Fraction(left // k), exact
        return left / k, exact and (left / k).denominator == 1
    right, exact_right = reference(t[2], sizes)
    value = left + right if op == "add" else left - right if op == "sub" else left * right
    return value, exact and exact_right


def _size_sets(symbols, low: int, high: int):
    """Every assignment of sizes low..high to the symbols (at most 3 of them)."""
    symbols = sorted(symbols)
    for values in itertools.product(range(low, high + 1), repeat=len(symbols)):
        yield dict(zip(symbols, values))


def _all_sizes(low: int = 0, high: int = 5):
    return _size_sets(NAMES, low, high)


@settings(max_examples=300, deadline=None)
@given(tree=_trees())
def test_dim_arithmetic_agrees_with_rational_arithmetic(tree):
    """`Dim`'s normal form evaluates to the tree's value at every size, and its Python text (the
    generated code's) to the same whole number where every exact division divides."""
    d = to_dim(tree)
    text = d.render()
    for sizes in _all_sizes():
        try:
            want, exact = reference(tree, sizes)
        except ZeroDivisionError:
            continue
        assert d.evaluate(sizes) == want, (str(d), sizes)
        if exact:
            assert want.denominator == 1
            assert eval(text, {"__builtins__": {}}, dict(sizes)) == want, (text, sizes)


@settings(max_examples=300, deadline=None)
@given(
    first=_trees(("a", "b"), 0, 2),
    second=_trees(("a", "b"), 0, 2),
)
def test_equal_normal_forms_evaluate_equal(first, second):
    """Two dimensions are equal exactly when their difference is 0, and equal ones have one value
    at every size (so `==` on dimensions, which the shape rules use, never says so wrongly)."""
    d1, d2 = to_dim(first), to_dim(second)
    assert (d1 == d2) == (d1 - d2 == Dim.of(0))
    if d1 != d2:
        return
    event("equal normal forms")
    assert hash(d1) == hash(d2) and str(d1) == str(d2)
    for sizes in _size_sets(("a", "b"), 1, 7):
        assert d1.evaluate(sizes) == d2.evaluate(sizes), (str(d1), sizes)


@settings(max_examples=200, deadline=None)
@given(tree=_trees(), k=st.integers(1, 5), name=st.sampled_from(NAMES))
def test_identities_give_one_normal_form(tree, k, name):
    """What the shape rules rely on to see that two writings are one dimension."""
    d = to_dim(tree)
    assert d + d == 2 * d
    assert d - d == Dim.of(0)
    assert (d * k).exact_div(k) == d
    assert (d * name).exact_div(name) == d
    assert d + Dim.of(name) - name == d
    if d.integral:
        assert (d * k).floor_div(k) == d
        assert (d * k + (k - 1)).floor_div(k) == d


@settings(max_examples=400, deadline=None)
@given(
    tree=_trees(),
    shift=st.integers(-12, 12),
    lower=st.dictionaries(st.sampled_from(NAMES), st.integers(0, 4), max_size=2),
    default=st.integers(0, 2),
)
def test_the_sign_prover_is_sound(tree, shift, lower, default):
    """`nonnegative(d)` and `negative(d)` never claim what some size at least its bound
    contradicts."""
    d = to_dim(tree) + shift
    claims = [(f, ok) for f, ok in ((nonnegative, lambda v: v >= 0), (negative, lambda v: v < 0))]
    claimed = [(f.__name__, ok) for f, ok in claims if f(d, dict(lower), default)]
    for name, _ in claimed:
        event(f"{name} claimed")
    if not claimed:
        return
    for sizes in _all_sizes(0, 6):
        if any(sizes[s] < lower.get(s, default) for s in NAMES):
            continue
        try:
            value = d.evaluate(sizes)
        except ZeroDivisionError:
            continue
        for name, ok in claimed:
            assert ok(value), f"{name}({d}) with lower={lower}, default={default}: {sizes}"


# ---------------------------------------------------------------------------------------------
# Slices, indices and reshapes against NumPy: every condition bpc checks at call time is one
# that NumPy needs to give what bpc computed, and where bpc checks nothing, NumPy gives it.

AXES = ("X", "2*X", "X + 1", "X - 1", "2*X + 1", "3*X - 2")
BOUNDS = ("X", "X - 1", "X + 1", "2*X", "-X", "1 - X", "X / 2", "2*X - 3")
SIZES = range(0, 13)


def _value(text: str | None, X: int):
    """A bound's value at size X: an int, None for none, or a Fraction where it is no whole
    number (NumPy cannot take it)."""
    if text is None:
        return None
    v = eval(text, {"__builtins__": {}}, {"X": Fraction(X)})
    return int(v) if v.denominator == 1 else v


def _typed(src: str):
    """The typed graph, before any rewrite: its `index` node says which positions bpc means."""
    (graph,) = build_ir(parse(src), src)
    return infer_shapes(graph)


def _types(src: str) -> bool:
    try:
        _typed(src)
        return True
    except CompileError:
        return False


def _empty_backwards(index) -> bool:
    """A slice with a negative step whose length is at most 0 for every size (`x[0:-1:-1]`)."""
    (item,) = index.attr("index")
    return isinstance(item, tuple) and item[2] < 0 and nonnegative(-index.shape[0])


def _compiled(src: str):
    """The generated module and the shape of the graph's output, or None for a compile error."""
    try:
        (c,) = compile_graphs(src)
        return load(src), c.pair.outputs[0].shape
    except CompileError:
        return None


def _numpy(f):
    try:
        return f()
    except (IndexError, TypeError, ValueError):
        return None


def _meant(item, length, axis: Dim, size: int, sizes: dict) -> list[int] | None:
    """The positions an index or slice of the typed graph means at these sizes, or None where
    they are not on the axis. A slice means its bounds to be on the axis too, as the language
    says (docs/language.md, "a slice must fit its axis"), and its gradient relies on it: it is
    the upstream gradient padded by the bounds. (So `x[:-3:3]` on an axis of 1, empty as NumPy's
    is, needs the axis to be at least 3: a gradient padded by (0, 1 - (1 - 3)) has 3 elements.)"""
    if not isinstance(item, tuple):
        p = item.evaluate(sizes)
        return [int(p)] if p.denominator == 1 and 0 <= p < size else None
    # (a reversed slice from the last element, `x[::-1]`, fits an empty axis too; one from a
    # start that is -1 only at some size, `x[X - 1::-1]` on [2*X] at X = 0, does not)
    from_last = item[0] == axis - 1
    first, end, step = (v.evaluate(sizes) if isinstance(v, Dim) else v for v in item)
    n = length.evaluate(sizes)
    if any(v.denominator != 1 for v in (first, n) + ((end,) if end is not None else ())):
        return None
    if step > 0:
        on_axis = 0 <= first <= end <= size
    else:
        on_axis = (from_last or 0 <= first < size) and (end is None or 0 <= end <= first)
    if n < 0 or not on_axis:
        return None
    return [int(first) + k * step for k in range(int(n))]


def _from_end(text: str | None) -> bool:
    """Whether a bound counts from the end: when it is negative at every size X >= 1 (`-1`,
    `-X`). One whose sign changes with the size (`1 - X`) is a position from the start."""
    return text is not None and all(_value(text, X) < 0 for X in range(1, 13))


def _fits(size: int, start, stop, step, ends=(False, False)) -> bool:
    """Whether a slice takes exactly the elements its bounds name, none clipped away (the
    meaning bpc gives a slice: it never shortens one); `ends` says which bound counts from
    the end."""
    if any(isinstance(v, Fraction) for v in (start, stop)):
        return False
    step = step or 1
    start, stop = (v + size if end and v is not None else v for v, end in zip((start, stop), ends))
    if step > 0:
        first = 0 if start is None else start
        end = size if stop is None else stop
        return 0 <= first <= end <= size
    first = size - 1 if start is None else start
    end = -1 if stop is None else stop
    in_range = start is None or 0 <= first < size
    return in_range and (stop is None or end >= 0) and end <= first


def _against_numpy(src: str, axis: str, access, numpy, fits, sizes=SIZES) -> None:
    """Compile the graph `y = access * 1.0` of `x: [axis]`, and at each size compare it with
    `numpy(x, X)` (None where NumPy raises). A compile error must be right: `fits(size, X)` false
    at every size X >= 1."""
    index = next((n for n in _typed(src).nodes if n.op == "index"), None) if _types(src) else None
    if index is not None and _empty_backwards(index):
        event("known bug: a reversed slice that fits only where it is empty")
        return  # (test_a_reversed_slice_that_fits_only_where_empty_compiles)
    compiled = _compiled(src)
    if compiled is None:
        event("compile error")
        for X in range(1, 13):
            size = _value(axis, X)
            assert size < 0 or not fits(size, X), f"{access} refused, but fits at X = {X}"
        return
    m, shape = compiled
    (item,) = index.attr("index")
    length = index.shape[0] if index.shape else None
    for X in sizes:
        size = _value(axis, X)
        if size < 0:
            continue
        x = np.arange(1.0, size + 1)
        want = numpy(x, X)
        try:
            got = m.g(x)
        except ValueError as e:
            assert "needs" in str(e), str(e)
            event("a condition raised")
            meant = _meant(item, length, index.args[0].shape[0], size, {"X": X})
            assert (
                meant is None or want is None or not np.array_equal(want, x[meant])
            ), f"{access} at X = {X}: bpc raised ({e}), but NumPy gives what bpc means"
            continue
        assert want is not None, f"{access} at X = {X}: NumPy raises, bpc gave {got}"
        np.testing.assert_array_equal(got, want, err_msg=f"{access} at X = {X}")
        assert np.shape(got) == tuple(d.evaluate({"X": X}) for d in shape)


_bound = st.none() | st.integers(-5, 6) | st.sampled_from(BOUNDS)


@settings(max_examples=300, deadline=None)
@given(
    axis=st.sampled_from(AXES),
    start=_bound,
    stop=_bound,
    step=st.sampled_from([None, 1, 2, 3, -1, -2]),
)
def test_slices_on_expression_types_match_numpy(axis, start, stop, step):
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    src = f"graph g(x: [{axis}]) -> y {{\n    y = x[{text}] * 1.0\n}}\n"

    def numpy(x, X):
        bounds = [_value(None if v is None else str(v), X) for v in (start, stop)]
        if any(isinstance(v, Fraction) for v in bounds):
            return None
        return x[slice(*bounds, step)]

    def fits(size, X):
        texts = [None if v is None else str(v) for v in (start, stop)]
        bounds = [_value(t, X) for t in texts]
        return _fits(size, *bounds, step, [_from_end(t) for t in texts])

    # `-X` counts from the end for X >= 1, but at X = 0 NumPy reads it as the start (see
    # test_a_bound_counted_from_the_end_needs_its_size_at_least_1)
    sizes = SIZES[1:] if "-X" in (start, stop) else SIZES
    _against_numpy(src, axis, f"x[{text}] on [{axis}]", numpy, fits, sizes)


@settings(max_examples=150, deadline=None)
@given(axis=st.sampled_from(AXES), index=st.integers(-6, 6) | st.sampled_from(BOUNDS))
def test_indices_on_expression_types_match_numpy(axis, index):
    src = f"graph g(x: [{axis}]) -> y {{\n    y = x[{index}] * 1.0\n}}\n"

    def numpy(x, X):
        i = _value(str(index), X)
        return None if isinstance(i, Fraction) else _numpy(lambda: x[i])

    def fits(size, X):
        i = _value(str(index), X)
        i = i + size if _from_end(str(index)) else i
        return not isinstance(i, Fraction) and 0 <= i < size

    _against_numpy(src, axis, f"x[{index}] on [{axis}]", numpy, fits)


REWRITTEN = ("H", "2*H", "H + 1", "4*H", "H - 1")
FACTORS = ("N", "H", "2", "3", "H / 2", "N*H / 2", "H / 3", "H / G", "G", "H + 1", "N*H")


def _reshape_targets(axis: str):
    """Reshapes of `x: [N, axis]` that keep its elements, and random ones."""
    k = st.integers(2, 4)
    kept = st.one_of(
        k.map(lambda k: f"(N, ({axis}) / {k}, {k})"),
        k.map(lambda k: f"(N * ({axis}) / {k}, {k})"),
        k.map(lambda k: f"({k}, N * ({axis}) / {k})"),
        st.just(f"(N, ({axis}) / G, G)"),
        st.just(f"(({axis}) * N,)"),
    )
    drawn = st.lists(st.sampled_from(FACTORS), min_size=1, max_size=3).map(
        lambda fs: "(" + ", ".join(fs) + ("," if len(fs) == 1 else "") + ")"
    )
    return kept | drawn


def _shape_at(text: str, sizes: dict):
    """A shape's value at these sizes, or None where an axis is no whole number >= 0."""
    try:
        values = eval(text, {"__builtins__": {}}, {k: Fraction(v) for k, v in sizes.items()})
    except ZeroDivisionError:
        return None
    if any(v.denominator != 1 or v < 0 for v in values):
        return None
    return tuple(int(v) for v in values)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), axis=st.sampled_from(REWRITTEN))
def test_reshapes_with_exact_division_match_numpy(data, axis):
    """`reshape(x, (N, H / 2, 2))` and the like: where bpc raises, NumPy cannot give the shape
    bpc computed; where it does not, NumPy's reshape is bpc's."""
    target = data.draw(_reshape_targets(axis), label="target")
    src = f"graph g(x: [N, {axis}], s: [G]) -> y {{\n    y = reshape(x, {target}) * 1.0\n}}\n"
    compiled = _compiled(src)
    every = [dict(N=N, H=H, G=G) for N, H, G in itertools.product(range(7), range(13), range(4))]
    if compiled is None:  # right where the numbers of elements differ at some sizes: a
        event("compile error")  # reshape keeps them whatever the sizes are (docs/language.md)
        counts = set()
        for sizes in every:
            shape, to = _shape_at(f"(N, {axis})", sizes), _shape_at(target, sizes)
            if min(sizes.values()) >= 1 and shape is not None and to is not None:
                counts.add(math.prod(shape) == math.prod(to))
        assert counts != {True}, f"reshape to {target} refused, but it fits at every size"
        return
    m, out_shape = compiled
    for sizes in every:
        shape = _shape_at(f"(N, {axis})", sizes)
        if shape is None:
            continue
        x = np.arange(1.0, math.prod(shape) + 1).reshape(shape)
        try:
            meant = tuple(Fraction(d.evaluate(sizes)) for d in out_shape)
        except ZeroDivisionError:  # (H / G at G = 0)
            meant = (Fraction(1, 2),)
        whole = all(v.denominator == 1 and v >= 0 for v in meant)
        try:
            got = m.g(x, np.ones(sizes["G"]))
        except ValueError as e:
            assert "needs" in str(e), str(e)
            event("a condition raised")
            assert not whole or math.prod(meant) != x.size, f"{target}, {sizes}: bpc raised {e}"
            continue
        assert whole and got.shape == tuple(int(v) for v in meant), (target, sizes)
        np.testing.assert_array_equal(got, x.reshape(got.shape))


def test_a_reversed_slice_that_fits_only_where_empty_compiles():
    load("graph g(x: [T]) -> y {\n    y = sum(x[0:-1:-1])\n}\n")


def test_a_bound_counted_from_the_end_needs_its_size_at_least_1():
    m = load("graph g(x: [X + 1]) -> y {\n    y = x[:-X] * 1.0\n}\n")
    assert m.g(np.arange(3.0)).tolist() == [0.0]  # X = 2
    with pytest.raises(ValueError, match="needs X >= 1, but X is 0"):
        m.g(np.arange(1.0))


# ---------------------------------------------------------------------------------------------
# Parameter types with expressions: bound from good shapes, and a bad one named with its axis


def _axis_expr():
    linear = st.tuples(st.integers(1, 3), st.sampled_from("XY"), st.integers(-2, 3)).map(
        lambda t: (f"{t[0]}*{t[1]}" if t[0] != 1 else t[1])
        + (f" + {t[2]}" if t[2] > 0 else "")
        + (f" - {-t[2]}" if t[2] < 0 else "")
    )
    return linear | st.sampled_from(["X + Y", "2*X + Y", "X*Y", "3", "X//2", "(X + 1)//Y"])


def _consistent(params, shapes, declared, limit=12):
    """Every (X, Y) up to `limit` that gives these shapes (0 for a size not declared)."""
    out = []
    X_, Y_ = (range(limit + 1) if s in declared else [0] for s in "XY")
    for X, Y in itertools.product(X_, Y_):
        want = [_shape_at("(" + ", ".join(p) + ",)", {"X": X, "Y": Y}) for p in params]
        if want == [tuple(s) for s in shapes]:
            out.append((X, Y))
    return out


@settings(max_examples=200, deadline=None)
@given(
    types=st.lists(st.lists(_axis_expr(), min_size=1, max_size=2), min_size=1, max_size=3),
    sizes=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    delta=st.sampled_from([-2, -1, 1, 2, 3]),
    data=st.data(),
)
def test_parameter_types_bind_good_shapes_and_name_a_bad_axis(types, sizes, delta, data):
    """Parameters typed with expressions in X and Y (with `y: [Y]` and `z: [X]` among them or
    not): shapes made from sizes give those sizes; a shape no sizes make is a ValueError naming
    the parameter, its axis and its expression, or, where that axis bound a size that another
    parameter then contradicts, naming it as where the size came from."""
    params = types + data.draw(st.sampled_from([[], [["Y"]], [["X"]], [["Y"], ["X"]]]))
    params = data.draw(st.permutations(params), label="parameters")
    names = [f"p{i}" for i in range(len(params))]
    decl = ", ".join(f"{n}: [{', '.join(t)}]" for n, t in zip(names, params))
    body = " + ".join(f"sum({n})" for n in names) + " + X * 1000.0 + Y * 100000.0"
    declared = {s for t in params for d in t for s in "XY" if s in d}
    X, Y = (v if s in declared else 0 for s, v in zip("XY", sizes))
    body = body.replace(" + X * 1000.0" * ("X" not in declared), "")
    body = body.replace(" + Y * 100000.0" * ("Y" not in declared), "")
    try:
        m = load(f"graph g({decl}) -> out {{\n    out = {body}\n}}\n")
    except CompileError as e:
        assert "cannot tell" in str(e), str(e)
        event("a size no axis says")
        return
    shapes = [_shape_at("(" + ", ".join(p) + ",)", {"X": X, "Y": Y}) for p in params]
    if any(s is None for s in shapes):
        return
    args = [np.ones(s) for s in shapes]
    total = sum(a.size for a in args)
    assert m.g(*args) == total + X * 1000 + Y * 100000
    i = data.draw(st.integers(0, len(params) - 1), label="parameter")
    axis = data.draw(st.integers(0, len(params[i]) - 1), label="axis")
    bad = list(shapes[i])
    bad[axis] += delta
    if bad[axis] < 0:
        return
    shapes[i] = tuple(bad)
    args[i] = np.ones(shapes[i])
    fits = _consistent(params, shapes, declared)
    if fits:  # the shapes of other sizes
        event("other sizes")
        assert len(set(fits)) == 1 or "X*Y" in str(params), fits
        try:
            value = m.g(*args)
        except ValueError as e:
            raise AssertionError(f"sizes {fits} make these shapes, but: {e}") from None
        assert any(value == sum(a.size for a in args) + X * 1000 + Y * 100000 for X, Y in fits)
        return
    with pytest.raises(ValueError) as e:
        m.g(*args)
    message = str(e.value)
    if re.match(r"g: p\d+: \[.*\] needs Y >= 1, but Y is 0$", message):
        event("a divisor of 0")
        return
    named = re.match(
        r"g: p(\d+) has shape .*, but its axis (\d+) is (?:dimension )?(.*?),", message
    )
    named = named or re.match(r"g: p(\d+) must be shaped .*; axis (\d+) is \d+, not (.*)", message)
    assert named, message
    j, k = int(named[1]), int(named[2])
    assert named[3] == params[j][k], message
    if (j, k) == (i, axis):
        event("named")
    else:  # it bound a size that a later axis contradicts: that axis is named, and where
        event("named as the source of a size")  # the sizes it is checked against come from
        assert re.search(r"(\bin|\bfrom) p\d", message), message
