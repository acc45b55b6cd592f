"""`bpc explain`: the derivation, statement by statement, as the lecture note teaches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def explain(*args):
    return subprocess.run(
        [sys.executable, "-m", "bpc", "explain", *map(str, args)], capture_output=True, text=True
    )


def test_the_seed_derivation():
    run = explain(ROOT / "examples" / "seed.bp")
    assert run.returncode == 0, run.stderr
    lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
    at = lines.index("f = sum(q * q) (line 5)")
    assert lines[at + 1 : at + 3] == ["upstream df/df = 1 []", "gives df/dq = 2 q [n]"]
    at = lines.index("q = W @ x (line 4)")
    assert lines[at + 1 : at + 4] == [
        "upstream df/dq = dq [n]",
        "gives df/dW = dq x^T [n, m]",
        "df/dx = W^T dq [m]",
    ]
    assert lines[-1] == "The gradients: dW [n, m], dx [m]."


def test_fn_statements_and_graph_selection():
    run = explain(ROOT / "examples" / "mlp.bp", "--graph", "mlp")
    assert run.returncode == 0, run.stderr
    assert "out = x @ w + b    (line 4, in fn affine)" in run.stdout
    assert "upstream  dloss/derr = derr                  [N, K]" in run.stdout
    assert "upstream  dloss/daffine_out = daffine_out    [N, H]" in run.stdout
    run = explain(ROOT / "examples" / "mlp.bp", "--graph", "nope")
    assert run.returncode == 1 and "no graph named 'nope'" in run.stderr


def test_errors_are_diagnostics(tmp_path):
    bad = tmp_path / "bad.bp"
    bad.write_text("graph g(x: [n]) -> y {\n    y = sum(xx)\n}\n")
    run = explain(bad)
    assert run.returncode == 1 and "bad.bp:2:13: error: unknown name 'xx'" in run.stderr
    assert "Traceback" not in run.stderr


def test_erf_reads_as_erf():
    """The module computes erf with a helper of its own, `_erf`; the notation says erf."""
    from bpc.dims import Dim
    from bpc.expr import Name
    from bpc.ir import OPS, Node, Type, make
    from bpc.ops import At, Facts
    from bpc.printer import MathPrinter, NumPyPrinter

    x = Node("param", (), (("name", "x"),), Type("float", (Dim.of("n"),)))
    at = At(make("erf", x), Facts("g", None, frozenset({x}), frozenset()))
    assert NumPyPrinter().text(OPS["erf"].emit(at, Name("x"))) == "_erf(x)"
    assert MathPrinter().text(OPS["erf"].math(at, Name("x"))) == "erf(x)"
