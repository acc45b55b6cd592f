"""The emission data (`bpc.expr`) and its printers: an operation's code is data until the printer
writes it, and only the NumPy printer knows NumPy's namespace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bpc.dims import Dim
from bpc.expr import (
    ALL,
    NONE,
    Attr,
    AugAssign,
    BinOp,
    Call,
    Cond,
    Eval,
    Lit,
    Name,
    Size,
    Slice,
    Subscript,
    Tuple,
    Unary,
    array,
    helper,
    math_call,
    method,
)
from bpc.printer import MathPrinter, NumPyPrinter

ROOT = Path(__file__).resolve().parent.parent
x, y, z = Name("x"), Name("y"), Name("z")
N = Size(Dim.of("N"))


@pytest.mark.parametrize(
    "expr, text",
    [
        (BinOp("*", BinOp("+", x, y), z), "(x + y) * z"),
        (BinOp("-", x, BinOp("-", y, z)), "x - (y - z)"),
        (BinOp("-", BinOp("-", x, y), z), "x - y - z"),
        (BinOp("**", x, Lit(2)), "x**2"),
        (BinOp("**", BinOp("+", x, Lit(1)), Lit(2)), "(x + 1) ** 2"),
        (BinOp("**", x, Lit(-1)), "x**-1"),
        (BinOp("**", Lit(-1), x), "(-1) ** x"),
        (BinOp("<", BinOp("<", x, y), z), "(x < y) < z"),
        (Unary("-", BinOp("*", x, y)), "-(x * y)"),
        (Attr(BinOp("+", x, y), "T"), "(x + y).T"),
        (method(x, "sum", axis=Lit(0), keepdims=Lit(True)), "x.sum(axis=0, keepdims=True)"),
        (array("exp", x), "np.exp(x)"),
        (math_call("tanh", x), "math.tanh(x)"),
        (helper("_labels", x), "_labels(x)"),
        (Subscript(x, (ALL, NONE)), "x[:, None]"),
        (Subscript(x, (Slice(N, Size(2 * Dim.of("N"))),)), "x[N : 2 * N]"),
        (Subscript(x, (Slice(Lit(1), Lit(-1)),)), "x[1:-1]"),
        (Tuple((N,)), "(N,)"),
        (Tuple(()), "()"),
        (Cond(x, BinOp(">", y, Lit(0)), z), "x if y > 0 else z"),
        (Lit(float("inf")), "np.inf"),
        (BinOp("**", Lit(float("-inf")), x), "(-np.inf) ** x"),
        (BinOp("-", x, Lit(float("-inf"))), "x - -np.inf"),
        (Lit(float("nan")), "np.nan"),
        (Lit('a "b"'), '"a \\"b\\""'),
        (BinOp("%", x, Size(2 * Dim.of("N"))), "x % (2 * N)"),
    ],
)
def test_numpy_printer(expr, text):
    assert NumPyPrinter({"N": "N"}).text(expr) == text


def test_a_ufunc_call_takes_out_as_data():
    """The lowering writes `np.exp(t, out=t)` by adding a keyword to the call, not by editing
    text; `plain` says whether the other operands print without parentheses."""
    printer = NumPyPrinter()
    call = array("maximum", x, Lit(0), ufunc=True)
    step = Eval(Call(call.fn, call.args, (("out", x),), call.ufunc))
    assert printer.statement(step) == "np.maximum(x, 0, out=x)"
    assert printer.plain(BinOp("+", y, Subscript(z, (ALL, NONE))))
    assert not printer.plain(BinOp("*", BinOp("+", y, z), z))
    assert not printer.plain(array("exp", y))
    assert printer.statement(AugAssign("p", "-", BinOp("*", y, z))) == "p -= y * z"


def test_math_notation():
    """`bpc explain` reads the same data: no namespace, products by juxtaposition, `^T`."""
    math = MathPrinter({"n": "n"})
    assert math.text(BinOp("@", x, Attr(y, "T"))) == "x y^T"
    assert math.text(BinOp("@", Attr(x, "T"), y)) == "x^T y"
    assert math.text(BinOp("*", Lit(2), x)) == "2 x"
    assert math.text(array("exp", x)) == "exp(x)"
    assert math.text(Size(3 * Dim.of("n"))) == "3 n"


def _strings(path: Path):
    """The string constants of a module that are not documentation: docstrings, and an
    operation's `doc=` (which may say which NumPy function it computes)."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    docs |= {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "doc"
        for part in ast.walk(node.value)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value


def test_only_the_numpy_printer_knows_numpys_namespace():
    found = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "compiler").rglob("*.py")
        if any("np." in s for s in _strings(path))
    }
    assert found == {"compiler/printer.py", "compiler/arrayapi.py"}  # (the two printers)


def test_without_checks_a_size_is_bound_only_where_the_code_reads_it():
    """`T` is not bound for `k.T`, nor `k` for the einsum spec "ij,k->ik": what a statement
    reads is data, not the words of its text."""
    from bpc import compile_source

    text = (ROOT / "examples" / "attention.bp").read_text()
    module = compile_source(text, "attention.bp", checks=False)
    assert "T = k.shape[0]" not in module
    assert "d = q.shape[1]" in module  # read: t = float(np.sqrt(d))
    source = 'graph f(a: [n, m], b: [k]) -> out {\n    out = einsum("ij,k->ik", a, b)\n}\n'
    assert "k = b.shape[0]" not in compile_source(source, checks=False)
