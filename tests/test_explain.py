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


def test_each_output_has_its_own_upstream_gradient():
    run = explain(ROOT / "examples" / "rnn.bp", "--graph", "lstm_step")
    assert run.returncode == 0, run.stderr
    assert "upstream  dnext_h = dout_next_h              [N, H]" in run.stdout
    assert "dthe outputs" not in run.stdout


def test_errors_are_diagnostics(tmp_path):
    bad = tmp_path / "bad.bp"
    bad.write_text("graph g(x: [n]) -> y {\n    y = sum(xx)\n}\n")
    run = explain(bad)
    assert run.returncode == 1 and "bad.bp:2:13: error: unknown name 'xx'" in run.stderr
    assert "Traceback" not in run.stderr


NEW_OPS = """graph act(x: [N, H], w: [H]) -> loss {
    h = gelu(x) + erf(x) * w
    s = stack((h, tanh(x)), axis=1)
    p = pad(s, ((0, 0), (0, 0), (1, 1)))
    loss = sum(tril(p[:, 0, :]) * triu(p[:, 1, :], k=1) * full((N, H + 2), pi))
}
"""


def test_the_array_built_ins_read_like_their_numpy(tmp_path):
    path = tmp_path / "act.bp"
    path.write_text(NEW_OPS)
    run = explain(path)
    assert run.returncode == 0, run.stderr
    lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
    at = lines.index("p = pad(s, ((0, 0), (0, 0), (1, 1))) (line 4)")
    assert lines[at + 2] == "gives dloss/ds = dp[:, :, 1:-1] [N, 2, H]"
    at = lines.index("s = stack((h, tanh(x)), axis=1) (line 3)")
    assert lines[at + 2] == "gives dloss/dh = ds[:, 0] [N, H]"
    # erf's derivative, 2/sqrt(pi) exp(-x**2), read in the notation of the lecture note
    assert "1.1283791670955126 w * dh * exp(-(x * x))" in run.stdout
    assert "np." not in run.stdout and "_erf" not in run.stdout


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
