"""What people write from Python and NumPy gets a message saying what to write in bp instead."""

from __future__ import annotations

import pytest

from bpc import compile_source
from bpc.build import _close
from bpc.diagnostics import CompileError, render
from bpc.parse import parse
from bpc.syntax import show

GRAPH = """fn affine(x: [N, D], w: [D, M], b: [M]) -> out {
    out = x @ w + b
}
graph g(x: [N, D], w: [D, M], b: [M]) -> y {
    STATEMENT
}
"""


def first_error(source: str) -> tuple[str, str]:
    """The first diagnostic's first line, and the text from its caret on."""
    with pytest.raises(CompileError) as e:
        compile_source(source, "m.bp")
    first, shown, caret = render(e.value.diagnostics[0], "m.bp", source).splitlines()
    return first, shown[caret.index("^") :]


def in_graph(statement: str) -> tuple[str, str]:
    return first_error(GRAPH.replace("STATEMENT", statement))


# statement -> (the message at line 5, its column, the text at the caret)
CASES = {
    # methods, and NumPy's module prefix
    "y = x.sum(axis=1)": ("bp has no methods; write sum(x, axis=1)", 11, "sum("),
    "y = x.mean()": ("bp has no methods; write mean(x)", 11, "mean"),
    "y = sum(x.reshape(N * D, 1))": (
        "bp has no methods; write reshape(x, (N * D, 1))",
        15,
        "reshape",
    ),
    "y = (x @ w).max(axis=0, keepdims=True)": (
        "bp has no methods; write max(x @ w, axis=0, keepdims=true)",
        17,
        "max",
    ),
    "y = sum(x.affine(w, b))": ("bp has no methods; write affine(x, w, b)", 15, "affine"),
    "y = np.exp(x)": ("the built-ins are called without a module: write exp(x)", 12, "exp"),
    "y = torch.blorp(x)": ("unknown function 'torch.blorp'; bp has no modules", 15, "blorp"),
    "y = x.T()": ("'.T' is not a function; write x.T", 11, "T()"),
    "y = x.frobnicate()": (
        "unknown method '.frobnicate'; bp has no methods, only functions and '.T'",
        11,
        "frobnicate",
    ),
    "y = x.shape": ("unknown attribute '.shape'; the only one is '.T'", 11, "shape"),
    # Python's constants
    "y = sum(x, axis=0, keepdims=True)": ("'True' is written 'true' in bp", 33, "True"),
    "y = sum(x, axis=0, keepdims=False)": ("'False' is written 'false' in bp", 33, "False"),
    "y = sum(x, axis=None)": (
        "'None' is not in the language; leave the argument out for its default",
        21,
        "None",
    ),
    "y = x * True": ("'True' is written 'true' in bp", 13, "True"),
    # names close to no built-in, and names close to one
    "y = blorp2d(x, w)": ("unknown function 'blorp2d'; it is neither a built-in nor a fn", 9, "b"),
    "y = lstm(x)": ("unknown function 'lstm'; it is neither a built-in nor a fn", 9, "lstm"),
    "y = blorp(x)": ("unknown function 'blorp'; it is neither a built-in nor a fn", 9, "b"),
    "y = sofmax(x)": ("unknown function 'sofmax'; did you mean 'softmax'?", 9, "sofmax"),
    "y = tanhh(x)": ("unknown function 'tanhh'; did you mean 'tanh'?", 9, "tanhh"),
    "y = affin(x, w, b)": ("unknown function 'affin'; did you mean 'affine'?", 9, "affin"),
    "y = X @ w": ("unknown name 'X'; did you mean 'x'?", 9, "X"),
    # loops written as Python writes them, and Python's statements
    "for t in range(N):": (
        "a loop runs over a range, its body in braces: for t in range(T) { ... }; "
        "to go through an array, index it with t: xs[t]",
        5,
        "for t",
    ),
    "for v in x {": ("a loop runs over a range, its body in braces: for t in", 5, "for v"),
    "for v in x:": ("a loop runs over a range, its body in braces: for t in", 5, "for v"),
    "for i, v in enumerate(x) {": ("a loop runs over a range, its body in braces", 5, "for i"),
    "for (t in range(N)) {": ("a loop runs over a range, its body in braces", 5, "for ("),
    "for t in range(N)": ("a loop runs over a range, its body in braces", 5, "for t"),
    "for = x": ("a loop runs over a range, its body in braces", 5, "for ="),
    "while N > 1 {": (
        "'while' is not in the language; a loop runs over a range, its body in braces: "
        "for t in range(T) { ... }; to go through an array, index it with t: xs[t]",
        5,
        "while",
    ),
    "while true:": ("'while' is not in the language; a loop runs over a range", 5, "while"),
    "if N > 1:": (
        "'if' is not in the language; choose elementwise with where(mask, a, b)",
        5,
        "if",
    ),
    "if (N > 1) {": ("'if' is not in the language; choose elementwise", 5, "if"),
    "return x": (
        "'return' is not in the language; a fn names its outputs after '->' and assigns them: "
        "fn f(x: [n]) -> y { y = ... }",
        5,
        "return",
    ),
    "import numpy as np": (
        "'import' is not in the language; the built-ins need no import and are called "
        "without a module: exp(x)",
        5,
        "import",
    ),
    "from numpy import exp": ("'from' is not in the language; the built-ins need no", 5, "from"),
    "def f(x):": (
        "'def' is not in the language; define a fn: fn f(x: [n]) -> y { y = ... }",
        5,
        "def",
    ),
    # Python's operators and expressions
    "y = x // 2": ("'//' divides sizes only: each operand must be known at compile time", 9, "x"),
    "y = x % 2": ("'%' (the remainder) is not in the language", 11, "%"),
    "y = where(x > 0 and x < 1, x, 0)": (
        "'and' is not in the language; for masks write (a > 0) * (b > 0), true where both are",
        21,
        "and",
    ),
    "y = where(x > 0 or x < -1, x, 0)": (
        "'or' is not in the language; for masks write maximum(a > 0, b > 0), true where either is",
        21,
        "or",
    ),
    "y = where(not x > 0, x, 0)": (
        "'not' is not in the language; compare the other way: x <= 0 rather than not x > 0",
        15,
        "not",
    ),
    "y = where(not(x > 0), x, 0)": ("'not' is not in the language; compare the", 15, "not"),
    "y = x if N > 1 else w": (
        "'if' is not in the language; choose elementwise with where(mask, a, b)",
        11,
        "if",
    ),
    "y = lambda v: v * 2": (
        "'lambda' is not in the language; define a fn: fn f(x: [n]) -> y { y = ... }",
        9,
        "lambda",
    ),
}


@pytest.mark.parametrize("statement", CASES)
def test_a_python_habit_gets_a_hint(statement):
    message, col, under_caret = CASES[statement]
    first, at_caret = in_graph(statement)
    assert first.startswith(f"m.bp:5:{col}: error: {message}"), first
    assert at_caret.startswith(under_caret)


def test_whole_messages_are_one_line_and_exact():
    """The cases above that give a prefix: their whole message, once."""
    first, _ = in_graph("for v in x:")
    assert first.endswith(
        "for t in range(T) { ... }; to go through an array, index it with t: xs[t]"
    )
    first, _ = in_graph("if (N > 1) {")
    assert first.endswith("choose elementwise with where(mask, a, b)")


def test_a_python_word_at_the_top_of_a_file():
    first, at_caret = first_error("import numpy as np\n" + GRAPH.replace("STATEMENT", "y = x"))
    assert first.startswith("m.bp:1:1: error: 'import' is not in the language")
    first, _ = first_error("def f(x):\n    return x\n")
    assert first == (
        "m.bp:1:1: error: 'def' is not in the language; define a fn: fn f(x: [n]) -> y { y = ... }"
    )


def test_a_name_that_is_a_python_word_is_still_a_name():
    """`while`, `if` and `None` are names in bp, and so are `for` and `in` where no statement
    starts with them (a statement that starts with `for` is a loop): the hints are only for
    what does not compile."""
    source = "graph g(x: [n], None: [n], for: [n], in: [n]) -> y {\n"
    source += "    while = x * None\n    in = for + while\n    y = sum(in)\n}\n"
    compile_source(source)
    first, _ = in_graph("while = x * * 2")
    assert first.startswith("m.bp:5:17: error: unexpected '*'")


@pytest.mark.parametrize(
    "statement, where, message",
    [
        ("for t in range(N - ) {\n    }", "5:24", "unexpected ')'"),
        ("for t in range(N { y = x }", "5:22", "unexpected '{'"),
        ("for t in range(N) { y = x + }", "5:33", "unexpected '}'"),
        ("for t in range(N) {\n        y = x +\n    }", "6:16", "unexpected end of line"),
    ],
)
def test_a_loop_written_as_bp_writes_it_gets_no_hint(statement, where, message):
    """A syntax error in a loop's bounds or in its body is an ordinary one, even on the line of
    the `for`: the hint is for the header's own words (`:` for `{`, `in x` for `in range(N)`)."""
    first, _ = in_graph(statement)
    assert first.startswith(f"m.bp:{where}: error: {message}")
    assert "a loop runs over a range" not in first


def test_a_loop_as_bp_writes_it_compiles():
    source = GRAPH.replace("STATEMENT", "y = x\n    for t in range(N) {\n        y = y * 2\n    }")
    compile_source(source)


@pytest.mark.parametrize(
    "typed, known",
    [("sofmax", "softmax"), ("tanhh", "tanh"), ("summ", "sum"), ("xs", "x"), ("W", "w")]
    + [("axes", "axis"), ("logsoftmax", "log_softmax"), ("one_hott", "one_hot")],
)
def test_close_names(typed, known):
    assert _close(typed, known) and _close(known, typed)


@pytest.mark.parametrize(
    "typed, known",
    [("stack", "take"), ("conv2d", "concat"), ("lstm", "sum"), ("y", "x"), ("blorp", "log")]
    + [("gelu", "relu_"), ("zeros", "where")],
)
def test_names_that_are_not_close(typed, known):
    assert not _close(typed, known) and not _close(known, typed)


@pytest.mark.parametrize(
    "text",
    [
        "a - (b - c)",
        "(a - b) - c",
        "-x ** 2",
        "(-x) ** 2",
        "x ** 2 ** 0.5",
        "(x ** 2) ** 0.5",
        "(a < b) == (c > d)",
        "a + b < c * d",
        "(a + b).T @ -c",
        'sum(einsum("ij->j", x), axis=(0, 1), keepdims=true)[:, 1:, ::-1]',
        "x[i:j:2, 0] / 1e-05",
        "f((a,), ())",
    ],
)
def test_show_writes_an_expression_back_as_it_parses(text):
    def expression(source):
        return parse(f"graph g() -> y {{\n    y = {source}\n}}\n").definitions[0].body[0].value

    def shape(e):  # the tree without positions
        if isinstance(e, tuple):
            return tuple(shape(i) for i in e)
        if hasattr(e, "__dataclass_fields__"):
            fields = e.__dataclass_fields__
            return (type(e).__name__, *(shape(getattr(e, f)) for f in fields if f != "loc"))
        return e

    shown = show(expression(text))
    assert shape(expression(shown)) == shape(expression(text))
    assert shown == " ".join(text.replace("(a - b) - c", "a - b - c").split())
