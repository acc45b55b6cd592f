"""Dimension expressions in parameter types, the dimension algebra, and the conditions on sizes
that the generated functions check on entry (`bpc.signature`, `bpc.conditions`)."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpc.check import check_source
from bpc.conditions import Condition, met
from bpc.diagnostics import CompileError
from bpc.dims import Dim, nonnegative
from bpc.ir import ShapeError
from bpc.loader import module_from_text
from bpc.lower import RESERVED
from bpc.pipeline import compile_source
from tests.support import load

H, n = Dim.of("H"), Dim.of("n")


def test_canonical_forms():
    assert 2 * H - H == H
    assert (4 * H).exact_div(4) == H
    assert (H + 2 * 1 - 3).floor_div(1) + 1 == H
    assert Dim.of("G") * Dim.of("C").exact_div("G") == Dim.of("C")
    assert (2 * n + 1).floor_div(2) == n
    assert str((n + 1).floor_div(2)) == "(n + 1)//2"
    assert H.exact_div(2).render() == "H // 2"


def test_a_type_binds_a_dimension_from_a_multiple():
    m = load("graph g(x: [N, D], Wx: [D, 4*H]) -> y {\n    y = sum(x @ Wx)\n}\n")
    x, W = np.ones((2, 3)), np.ones((3, 20))
    assert m.g(x, W) == 2 * 3 * 20
    with pytest.raises(ValueError, match=r"g: Wx has shape \(3, 22\), but its axis 1 is 4\*H"):
        m.g(x, np.ones((3, 22)))


def test_a_sum_of_names_types_a_concatenation():
    src = "graph g(a: [N, P], b: [N, Q], W: [P + Q, K]) -> y {\n"
    src += "    y = sum(concat(a, b, axis=1) @ W)\n}\n"
    m = load(src)
    a, b, W = np.ones((2, 3)), np.ones((2, 4)), np.ones((7, 5))
    assert m.g(a, b, W) == 2 * 7 * 5
    with pytest.raises(ValueError, match=r"W has shape \(6, 5\), but its axis 0 is P \+ Q"):
        m.g(a, b, np.ones((6, 5)))


def test_a_dimension_no_axis_says_is_a_compile_error():
    with pytest.raises(CompileError, match="cannot tell H, W from the arguments' shapes"):
        load("graph g(x: [H*W]) -> y {\n    y = sum(x)\n}\n")


def test_a_slice_that_may_not_fit_is_checked_at_call_time():
    m = load("graph pick(x: [T]) -> y {\n    y = sum(x[1:3])\n}\n", "pick_module")
    assert m.pick(np.arange(4.0)) == 3.0
    with pytest.raises(ValueError, match=r"pick: x\[1:3\] \(.*:2\) needs T >= 3, but T is 2"):
        m.pick(np.arange(2.0))


def test_a_slice_bounded_by_another_dimension():
    m = load("graph g(a: [N, G], h: [H]) -> y {\n    y = sum(a[:, 0:H]) + sum(h)\n}\n")
    assert m.g(np.ones((2, 5)), np.ones(3)) == 2 * 3 + 3
    with pytest.raises(ValueError, match=r"needs H <= G, but H is 6 and G is 5"):
        m.g(np.ones((2, 5)), np.ones(6))


POOL = """graph pool(x: [N, C, H, W]) -> y {
    y = sum(max(reshape(x, (N, C, H / 2, 2, W / 2, 2)), axis=(3, 5)))
}
"""


def test_a_reshape_by_halves_needs_even_sizes():
    m = load(POOL)
    x = np.arange(2 * 3 * 4 * 6, dtype=float).reshape(2, 3, 4, 6)
    want = x.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)).sum()
    assert m.pool(x) == want
    with pytest.raises(ValueError, match=r"needs H to be a multiple of 2, but H is 5"):
        m.pool(np.ones((2, 3, 5, 6)))


def test_no_checks_drops_the_conditions():
    src = "graph pick(x: [T]) -> y {\n    y = sum(x[1:3])\n}\n"
    assert "needs T >= 3" in compile_source(src, "m.bp")
    text = compile_source(src, "m.bp", checks=False)
    assert "needs T" not in text
    assert module_from_text(text, "bpc_unchecked_pick").pick(np.arange(4.0)) == 3.0


def test_a_condition_implied_by_another_is_checked_once():
    src = "graph g(x: [T]) -> y {\n    y = sum(x[1:]) + sum(x[1:3]) + sum(x[2:])\n}\n"
    text = compile_source(src, "m.bp")
    assert text.count("raise _unmet(") == 1
    with pytest.raises(ValueError, match=r"needs T >= 3, but T is 2"):
        load(src).g(np.ones(2))


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 9),
    start=st.none() | st.integers(-4, 6),
    stop=st.none() | st.integers(-4, 6),
    step=st.sampled_from([None, 1, 2, 3, -1, -2]),
)
def test_slices_match_numpy_or_raise(size, start, stop, step):
    """A slice that bpc compiles gives NumPy's values for every size where its conditions hold,
    and raises where NumPy's slice would not be what bpc computed."""
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    try:
        m = load(f"graph g(x: [n]) -> y {{\n    y = x[{text}] * 1.0\n}}\n")
    except CompileError:
        return  # out of range for every size
    except ShapeError:  # (test_dims.test_a_reversed_slice_that_fits_only_where_empty_compiles)
        assert step is not None and step < 0
        return
    x = np.arange(float(size))
    try:
        got = m.g(x)
    except ValueError as e:
        assert "needs" in str(e)
        return
    np.testing.assert_array_equal(got, x[slice(start, stop, step)])


def test_a_negated_floor_division_renders_as_python_reads_it():
    """`-(a // 2)` as `-a // 2` would floor -a: -1 for a = 1, where the dimension is 0."""
    a = Dim.of("a")
    d = -a.floor_div(2)
    assert d.render() == "-(a // 2)" and str(d) == "-(a//2)"
    assert eval(d.render(), {}, {"a": 1}) == d.evaluate({"a": 1}) == 0
    assert (3 - a.floor_div(2)).render() == "-(a // 2) + 3"
    assert (a - a.floor_div(2)).render() == "a - a // 2"


def test_a_type_with_a_negated_floor_division_checks_its_axis():
    m = load("graph g(x: [N], y: [5 - (N + 1) // 2]) -> z {\n    z = sum(x) + sum(y)\n}\n")
    assert m.g(np.ones(2), np.ones(4)) == 6  # 5 - 3 // 2 = 4 (-(3) // 2 + 5 would be 3)


def test_the_sign_of_a_floor_of_a_quotient_of_names():
    """`(C/G)//2`: the prover shifts C and G, and 1/(G + 1) is no polynomial; it says it cannot
    tell, where it raised ValueError and the compiler crashed on `x[1:]` of a `[(C / G) // 2]`."""
    C, G = Dim.of("C"), Dim.of("G")
    assert not nonnegative(C.exact_div(G).floor_div(2) - 1)
    m = load("graph g(s: [G], c: [C], x: [(C / G) // 2]) -> y {\n    y = sum(x[1:])\n}\n")
    assert m.g(np.ones(3), np.ones(6), np.ones(1)) == 0


def test_bpc_check_picks_sizes_for_an_exact_division():
    """`met` divided two ints (a float, with no denominator): bpc check crashed on every graph
    with a reshape by halves."""
    (row,) = check_source(POOL)
    assert row.ok, row
    half = Condition(H, "multiple", Dim.of(2), "H / 2")
    assert met([half], {"H": 4}) and not met([half], {"H": 5})
    by_g = Condition(Dim.of("C"), "multiple", Dim.of("G"), "C / G")
    assert met([by_g], {"C": 6, "G": 3}) and not met([by_g], {"C": 6, "G": 0})


GROUPS = "graph g(x: [N, C], s: [G]) -> y {\n    y = sum(reshape(x, (N, C / G, G))) + sum(s)\n}\n"


def test_a_division_by_a_size_of_0_is_a_condition_not_a_zero_division():
    m = load(GROUPS)
    assert m.g(np.ones((2, 6)), np.ones(3)) == 15
    for x in (np.ones((2, 6)), np.ones((2, 0))):
        with pytest.raises(ValueError, match=r"g: C / G \(.*:2\) needs G >= 1, but G is 0$"):
            m.g(x, np.ones(0))


def test_a_type_divided_by_a_size_is_checked_where_it_divides():
    """The division's conditions come before the axis that `C // G` checks: C = 7, G = 3 is
    not `C/G, which is 2`, and G = 0 is no ZeroDivisionError."""
    m = load("graph g(s: [G], c: [C], x: [C / G]) -> y {\n    y = sum(x) + sum(s) + sum(c)\n}\n")
    assert m.g(np.ones(3), np.ones(6), np.ones(2)) == 11
    with pytest.raises(ValueError, match=r"needs C to be a multiple of G, but C is 7 and G is 3"):
        m.g(np.ones(3), np.ones(7), np.ones(2))
    with pytest.raises(ValueError, match=r"needs G >= 1, but G is 0"):
        m.g(np.ones(0), np.ones(0), np.ones(2))


def test_a_size_or_parameter_named_like_the_remainder_is_not_overwritten():
    """`4*H` was solved with `H, H_rem = divmod(x_0, 4)`, which overwrote a size named H_rem
    (a good call failed: `needs H <= H_rem, but H is 2 and H_rem is 0`) or a parameter named
    H_rem (whose `.shape` the next message read)."""
    m = load("graph g(x: [4*H], y: [H_rem]) -> z {\n    z = sum(x) * sum(y) + sum(y[0:H])\n}\n")
    assert m.g(np.ones(8), np.ones(5)) == 42
    m = load("graph g(H_rem: [4*H], y: [H]) -> z {\n    z = sum(H_rem) * sum(y)\n}\n")
    assert m.g(np.ones(8), np.ones(2)) == 16
    with pytest.raises(ValueError, match=r"y has shape \(3,\), but its axis 0 is dimension H, wh"):
        m.g(np.ones(8), np.ones(3))
    with pytest.raises(ValueError, match=r"H_rem has shape \(9,\), but its axis 0 is 4\*H, and no"):
        m.g(np.ones(9), np.ones(3))


def test_every_name_the_runtime_defines_is_reserved():
    """A graph named like a helper of the runtime would replace it in the module: a graph named
    _check_dout made every backward call the graph's forward with the wrong arguments."""
    from bpc.arrayapi import ArrayApiPrinter
    from bpc.emit import _environment

    for template, reserved in [
        ("runtime.py.j2", RESERVED),
        ("runtime_xp.py.j2", RESERVED | ArrayApiPrinter.reserved),  # (--target array-api)
    ]:
        text = _environment().get_template(template).render()  # (runtime.py.j2 has blocks)
        defined = set()
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        assert defined and defined <= reserved, sorted(defined - reserved)
    m = load("graph _check_dout(x: [n]) -> y {\n    y = sum(x * x)\n}\n")
    _, cache = m._check_dout_forward(np.ones(2))
    assert m._check_dout_backward(1.0, cache).x.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "left, op, right, text",
    [
        (Dim.of("T") - 3, ">=", Dim.of(0), "T >= 3"),  # x[-3] on [T]
        (Dim.of(3), "<=", Dim.of("T"), "T >= 3"),
        (Dim.of("X") + 2, ">=", Dim.of(3), "X >= 1"),
        (2 * Dim.of("X"), "<=", 3 * Dim.of("X") - 2, "X >= 2"),
        (1 - Dim.of("X"), ">=", Dim.of(0), "X <= 1"),
        (H, "<=", Dim.of("G"), "H <= G"),
        (H + 1, "<=", Dim.of("G"), "H + 1 <= G"),
    ],
)
def test_a_condition_reads_with_the_sizes_on_one_side(left, op, right, text):
    assert Condition(left, op, right, "").text == text


# ---------------------------------------------------------------------------------------------
# The messages of the argument checks, one of each


def _message(m, *args) -> str:
    with pytest.raises(ValueError) as e:
        m.g(*args)
    return str(e.value)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix's own)
def test_the_messages_of_an_arguments_class_axes_and_elements():
    m = load(
        "graph g(x: [N, 3], k: int[N], b: bool[N], s: [], t: bool[]) -> y {\n"
        "    y = sum(where(b, x[:, 0], 0.0) * k) * s * where(t, 1.0, 2.0)\n}\n"
    )
    x, k, b = np.ones((2, 3)), np.arange(2), np.ones(2, bool)
    assert m.g(x, k, b, 2.0, True) == 2.0
    assert m.g(x, k, b, 2, np.bool_(False)) == 4.0  # a Python int for a float, a NumPy bool
    assert m.g(x, k, b, np.float64(2.0), np.array(True)) == 2.0
    want = [
        ((x.tolist(), k, b, 2.0, True), "g: x must be a NumPy array, got list"),
        ((np.matrix(x), k, b, 2.0, True), "g: x must be a plain NumPy array, got matrix"),
        ((x, k, b, None, True), "g: s must be a number or a NumPy array, got NoneType"),
        ((x[0], k, b, 2.0, True), "g: x must be 2-d, shaped [N, 3]; got shape (3,)"),
        ((x, k, b, 2.0, np.ones(2, bool)), "g: t must be 0-d, shaped bool[]; got shape (2,)"),
        ((x, k, b, "2", True), "g: s must be a number or a NumPy array, got str"),
        ((x, k, b, True, True), "g: s must hold floats, got a bool"),
        ((x, k, b, np.int64(2), True), "g: s must hold floats, got int64"),
        ((x, k * 1.0, b, 2.0, True), "g: k must hold integers, got float64"),
        ((x, k, b * 1, 2.0, True), "g: b must hold booleans, got int64"),
        ((x, k, b, 2.0, 1), "g: t must hold booleans, got an int"),
        ((x, k, b, 2.0, 1.0), "g: t must hold booleans, got a float"),
        ((x, k, b, 2.0, np.int8(1)), "g: t must hold booleans, got int8"),
        ((np.ones((2, 4)), k, b, 2.0, True), "g: x must be shaped [N, 3]; axis 1 is 4, not 3"),
    ]
    for args, message in want:
        assert _message(m, *args) == message
    m = load("graph g(i: int[], x: [n]) -> y {\n    y = sum(x) * i\n}\n")
    assert m.g(2, np.ones(2)) == m.g(np.int8(2), np.ones(2)) == 4.0
    assert _message(m, 2.0, np.ones(2)) == "g: i must hold integers, got a float"
    assert _message(m, True, np.ones(2)) == "g: i must hold integers, got a bool"


def test_the_message_of_float_arrays_of_two_dtypes():
    m = load("graph g(x: [n], w: [n], s: []) -> y {\n    y = sum(x * w) * s\n}\n")
    x, w = np.ones(2), np.ones(2, np.float32)
    assert m.g(x, x, np.float32(2.0)) == 4.0  # a 0-d array takes the others' dtype
    assert _message(m, x, w, 2.0) == (
        "g: w is float32 but x is float64; pass float arrays of one dtype"
    )


def test_the_messages_of_the_conditions():
    def first(body: str, *args, params="x: [T]") -> str:
        m = load(f"graph g({params}) -> y {{\n    y = {body}\n}}\n", "cond")
        return _message(m, *args).replace("cond.bp", "m.bp")

    x1, x2, x3 = np.ones(1), np.ones(2), np.ones(3)
    assert first("sum(x[2:])", x1) == "g: x[2:] (m.bp:2) needs T >= 2, but T is 1"
    assert first("sum(x[:3])", x1) == "g: x[:3] (m.bp:2) needs T >= 3, but T is 1"
    assert first("sum(x[3:0:-1])", x3) == "g: x[3:0:-1] (m.bp:2) needs T >= 4, but T is 3"
    assert first("sum(x[:-4:-1])", x2) == "g: x[:-4:-1] (m.bp:2) needs T >= 4, but T is 2"
    assert first("x[2]", x2) == "g: x[2] (m.bp:2) needs T >= 3, but T is 2"
    assert first("x[-3]", x2) == "g: x[-3] (m.bp:2) needs T >= 3, but T is 2"
    assert first("x[T - 3]", x2) == "g: x[T - 3] (m.bp:2) needs T >= 3, but T is 2"
    assert first("x[-X] * 1.0", x2, params="x: [X + 2]") == (
        "g: x[-X] (m.bp:2) needs X >= 1, but X is 0"
    )
    assert first("sum(reshape(x, (N, H / 2, 2)))", np.ones((2, 3)), params="x: [N, H]") == (
        "g: H / 2 (m.bp:2) needs H to be a multiple of 2, but H is 3"
    )
    groups = load(GROUPS, "cond")
    assert _message(groups, np.ones((2, 6)), np.ones(4)).replace("cond.bp", "m.bp") == (
        "g: C / G (m.bp:2) needs C to be a multiple of G, but C is 6 and G is 4"
    )
    m = load(
        "fn f(a: [2*K]) -> b {\n    b = a * 2.0\n}\ngraph g(x: [D]) -> y {\n    y = sum(f(x))\n}\n"
    )
    assert m.g(np.ones(4)) == 8.0
    assert _message(m, x3).startswith(
        "g: argument 'a' of fn 'f', declared [2*K] (bpc_test_module_"
    ) and _message(m, x3).endswith(".bp:5) needs D to be a multiple of 2, but D is 3")


def test_the_messages_of_a_type_with_an_expression():
    m = load("graph g(x: [H + 2], w: [2*H, 3*K + 1]) -> y {\n    y = sum(x) + sum(w)\n}\n")
    assert m.g(np.ones(3), np.ones((2, 4))) == 11.0
    assert _message(m, np.ones(1), np.ones((2, 4))) == (
        "g: x has shape (1,), but its axis 0 is H + 2, and no whole H >= 0 makes it 1"
    )
    assert _message(m, np.ones(3), np.ones((3, 4))) == (
        "g: w has shape (3, 4), but its axis 0 is 2*H, which is 2 with H = 1 from x"
    )
    assert _message(m, np.ones(3), np.ones((2, 3))) == (
        "g: w has shape (2, 3), but its axis 1 is 3*K + 1, and no whole K >= 0 makes it 3"
    )
    m = load("graph g(a: [X], b: [X + Y]) -> z {\n    z = sum(a) + sum(b)\n}\n")
    assert _message(m, np.ones(3), np.ones(2)) == (
        "g: b has shape (2,), but its axis 0 is X + Y, and with X = 3 from a, no whole Y >= 0 "
        "makes it 2"
    )
    m = load("graph g(x: [n], y: [n - 1]) -> z {\n    z = sum(x) + sum(y)\n}\n")
    assert _message(m, np.ones(3), np.ones(3)) == (
        "g: y has shape (3,), but its axis 0 is n - 1, which is 2 with n = 3 from x"
    )
    assert _message(m, np.ones(0), np.ones(0)) == (
        "g: y has shape (0,), but its axis 0 is n - 1, which is -1 with n = 0 from x"
    )


def test_a_condition_is_checked_as_its_message_reads_it():
    """`if T < 3:` for `needs T >= 3` (was `if T - 3 < 0:`, the sides as the rule of x[-3]
    wrote them)."""
    text = compile_source("graph g(x: [T]) -> y {\n    y = sum(x[1:]) + x[-3]\n}\n", "m.bp")
    assert '    if T < 3:\n        raise _unmet("g: x[-3] (m.bp:2) needs T >= 3"' in text
    text = compile_source(
        "graph g(a: [N, G], h: [H]) -> y {\n    y = sum(a[:, :H]) + sum(h)\n}\n", "m.bp"
    )
    assert "    if H > G:\n" in text


def test_a_type_floor_divided_by_a_size_checks_it_is_at_least_1():
    m = load("graph g(s: [G], c: [C], x: [C // G]) -> y {\n    y = sum(x) + sum(s) + sum(c)\n}\n")
    assert m.g(np.ones(3), np.ones(7), np.ones(2)) == 12
    with pytest.raises(ValueError, match=r"^g: x: \[C//G\] needs G >= 1, but G is 0$"):
        m.g(np.ones(0), np.ones(7), np.ones(2))  # (was ZeroDivisionError)


def test_a_condition_the_signature_implies_is_not_checked():
    """`w: [n - 1]` makes n at least 1 on every call: `x[1:]` needs nothing more."""
    alone = compile_source("graph g(x: [n]) -> y {\n    y = sum(x[1:])\n}\n", "m.bp")
    assert alone.count("raise _unmet(") == 1
    src = "graph g(x: [n], w: [n - 1]) -> y {\n    y = sum(x[1:] * w)\n}\n"
    assert compile_source(src, "m.bp").count("raise _unmet(") == 0
    m = load(src)
    assert m.g(np.arange(3.0), np.ones(2)) == 3.0
    with pytest.raises(ValueError, match="w has shape"):
        m.g(np.ones(0), np.ones(0))
