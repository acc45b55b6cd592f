"""`bpc explain`: the derivation, statement by statement, as the lecture note teaches it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_the_seeds_second_order_derivation():
    """`bpc explain --hvp`: each parameter's block of H v, line by line and in full; for the
    lecture note's example H v in x is 2 W^T W v."""
    run = explain(ROOT / "examples" / "seed.bp", "--hvp", "--color", "never")
    assert run.returncode == 0, run.stderr
    lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
    assert lines[0] == "graph seed(W [n, m], x [m]) -> f []: H v"
    at = lines.index("H_xx v_x, the block of x:")
    assert lines[at + 1 : at + 5] == [
        "ddq = W v_x [n]",
        "dq = 2 ddq [n]",
        "dx = W^T dq [m]",
        "in full H_xx v_x = W^T (2 (W v_x))",
    ]
    assert "in full H_WW v_W = 2 (v_W x) x^T" in lines


def test_the_second_order_derivation_of_a_long_product_names_it(tmp_path):
    source = tmp_path / "m.bp"
    source.write_text(
        "graph g(x: [n]) -> y { y = sum(x) }\n"  # (no curvature: H v is zero)
        "graph logistic(X: [N, D], y: [N], w: [D], reg: []) -> loss wrt w {\n"
        "    z = X @ w\n"
        "    loss = mean(softplus(z) - y * z) + 0.5 * reg * sum(w * w)\n"
        "}\n"
        "graph scores(x: [n]) -> s { s = x * x }\n"
    )
    run = explain(source, "--hvp", "--color", "never")
    assert run.returncode == 0, run.stderr
    lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
    assert "so H_ww v_w = dw" in lines and "in full H_xx v_x = full_like(x, 0)" in lines
    assert not any("scores" in line for line in lines)  # (no scalar output, no H v)


def test_a_gradient_factor_the_forward_computes_is_told_as_the_backward(tmp_path):
    """Mish's gradient factor reads no upstream gradient, so the forward computes it for the
    cache (`select_cache`); the derivation still tells it, under the statement it comes from."""
    path = tmp_path / "mish.bp"
    path.write_text("graph mish(x: [N, D]) -> out {\n    out = x * tanh(softplus(x))\n}\n")
    run = explain(path)
    assert run.returncode == 0, run.stderr
    lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
    at = lines.index("out = x * tanh(softplus(x)) (line 2)")
    assert lines[at + 1] == "upstream dout/dout = dout [N, D]"
    assert lines[at + 3].startswith("dx_factor = ") and "x" in lines[at + 3], lines
    assert lines[at + 4] == "dout/dx = dout * dx_factor [N, D]", lines


def test_a_gradient_the_forward_computes_is_told_by_its_statement(tmp_path):
    """A gradient that is a value of the forward (`exp(x)` of `sum(exp(x))`; an ELU's `exp(min(x,
    0))`) has no backward line of its own; the derivation tells it, as its expression, under
    the statement that computes it, as it told the where's gradient of the ELU written out."""
    for body, want in (
        ("y = sum(exp(x))", "dy/dx = exp(x) [n]"),
        ("h = where(x > 0, x, exp(x) - 1)\n    y = sum(h)", "dy/dx = exp(minimum(x, 0.0)) [n]"),
    ):
        path = tmp_path / "f.bp"
        path.write_text(f"graph f(x: [n]) -> y {{\n    {body}\n}}\n")
        run = explain(path)
        assert run.returncode == 0, run.stderr
        lines = [" ".join(line.split()) for line in run.stdout.splitlines()]
        at = lines.index(f"{body.splitlines()[0]} (line 2)")
        assert lines[at + 2] == f"gives {want}", lines


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
    # erf's derivative, 2/sqrt(pi) exp(-x**2), read in the notation of the lecture note (dh
    # is taken out of the sum of the two terms, `factor_scales`; x * x, which GELU's density
    # exp(-x**2 / 2) reads too, is named once, `share_products`)
    assert "t_6 = x * x [N, H]" in lines
    assert "1.1283791670955126 w * exp(-t_6)" in run.stdout
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


RNN = """graph rnn(x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] @ Wx + h @ Wh + b)
        hs[:, t] = h
    }
}
"""


def _explained(tmp_path, source: str) -> list[str]:
    path = tmp_path / "model.bp"
    path.write_text(source)
    run = explain(path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run.stdout.splitlines()


def test_a_loop_is_told_as_its_backward_loop(tmp_path):
    """The backward loop under the forward `for`: its reversed header, the gradients it starts
    from, each step's first lines, the body's statement with its lines indented under it
    (the slot written `[:, t]`, the carried gradient), and what comes after: dWh, one product
    of all steps (a sum `+=` that stays in a loop is told in the next test). The stack of the
    steps' gradients starts as tanh's local derivative of every step, which each step
    multiplies by its upstream gradient (`optimize/stacks.py`)."""
    lines = _explained(tmp_path, RNN)
    at = lines.index("for t in range(T)    (line 4)")
    squeezed = [" ".join(line.split()) for line in lines]
    assert squeezed[at + 1 : at + 6] == [
        "backward for t in reversed(range(T)):",
        "starts dhs/dh = 0 [N, H]",
        "dxwx = 1 - hs * hs [N, T, H]",  # (tanh's local derivative at every step, then dxwx)
        "each step dh_1 = dh + dout[:, t] [N, H]",
        "",
    ]
    body = lines.index("    h = tanh(x[:, t] @ Wx + h @ Wh + b)    (line 5)")
    assert body > at
    assert squeezed[body + 1 : body + 6] == [
        "upstream dh_1 = dh_1 [N, H]",
        "gives t_1 = dh_1 * dxwx[:, t] [N, H]",
        "dhs/dh = t_1 Wh^T [N, H]",
        "dhs/dxwx[:, t] = t_1 [N, H]",
        "",
    ]
    assert lines[body + 1].startswith("        upstream")  # (indented under the loop)
    # the product with Wx and the bias, taken out of the loop by the optimizer, are
    # differentiated after it
    after = squeezed.index("after prev_hs = _shifted(h0, hs, 1) [N, T, H]")
    assert squeezed[after + 1 : after + 7] == [
        "t_2 = dxwx.reshape((N * T, H)) [N*T, H]",
        "dhs/dWh = prev_hs.reshape((N * T, H))^T t_2 [H, H]",
        "dhs/db = dxwx.sum(axis=(0, 1)) [H]",
        "dhs/dx_rows = t_2 Wx^T [N*T, D]",
        "dhs/dWx = x_rows^T t_2 [D, H]",
        "dhs/dx = dx_rows.reshape((N, T, D)) [N, T, D]",
    ]
    assert lines[-1] == "The gradients: dx [N, T, D], dh0 [N, H], dWx [D, H], dWh [H, H], db [H]."
    assert not any(line != line.rstrip() for line in lines)


NESTED = """graph nested(x: [N, T, D], W: [D, D]) -> s {
    s = 0.0
    for i in range(T) {
        v = x[:, i]
        for j in range(2) {
            v = tanh(v @ W + j)
        }
        s = s + sum(v * v)
    }
}
"""


def test_nested_loops_nest(tmp_path):
    lines = _explained(tmp_path, NESTED)
    outer = lines.index("for i in range(T)    (line 3)")
    inner = lines.index("    for j in range(2)    (line 5)")
    body = lines.index("        v = tanh(v @ W + j)    (line 6)")
    assert outer < inner < body
    assert lines[outer + 1].split() == ["backward", "for", "i", "in", "reversed(range(T)):"]
    assert lines[inner + 1].split() == ["backward", "for", "j", "in", "reversed(range(2)):"]
    squeezed = [" ".join(line.split()) for line in lines]
    assert "ds/ds = 1" in squeezed[lines.index("    s = s + sum(v * v)    (line 8)") + 1]
    assert "dW_1 += prev_v^T t [D, D]" in squeezed[body:]
    # the inner loop's results, at the end of each outer step
    then = squeezed.index("then ds/dx[:, i] = dv [N, D]")
    assert squeezed[then + 1] == "ds/dW += dW_1 [D, D]" and then > body
    # the forward's x[:, i], computed again where the inner loop reads it: no gradient
    at = lines.index("    v = x[:, i]    (line 4)")
    assert "computes v_1 = x[:, i] [N, D]" in squeezed[at + 1 : at + 3]


@pytest.mark.parametrize("name", ["LSTM", "GRU", "BIRNN", "SEQ_LOSS", "NESTED"])
def test_every_recurrent_model_tells_each_line_once_after_what_it_reads(tmp_path, name):
    """The recurrent models of tests/test_loops.py: no value told twice, and no line before the
    lines of the values it reads (the body's statements, grouped, keep their order)."""
    from bpc.lower import LoopStep, backward_steps
    from bpc.pipeline import compile_graphs
    from tests import test_loops

    source = getattr(test_loops, name)
    (c,) = compile_graphs(source)
    told: list = []

    def walk(steps):
        for s in steps:
            if isinstance(s, LoopStep):
                told.extend(s.reads + s.starts + s.first)
                walk(s.steps)
                told.extend(s.ends + s.after)
            else:
                told.extend(s.reads + s.lines)

    steps = backward_steps(c.grad or c.pair)
    assert any(isinstance(s, LoopStep) for s in steps)
    walk(steps)
    values = [line.node for line in told if line.op == "=" and line.index is None]
    assert len(values) == len(set(values)), "a value told twice"

    assigned: set[str] = set()
    checked = 0
    targets = {line.target for line in told}
    for line in _explained(tmp_path, source):
        told_line = re.fullmatch(
            r"\s+(?:\w+(?: step)?\s+)?(\S+) \+?= (.*?)\s+(?:int|bool)?\[.*\]", line
        )
        if told_line is None:  # (a statement, the loop's header, prose)
            continue
        target = told_line[1].split("[")[0].split("/")[-1]
        read = set(re.findall(r"[A-Za-z_]\w*", told_line[2])) & targets
        assert read <= assigned | {target}, (line, read - assigned)
        assigned.add(target)
        checked += 1
    assert checked >= len(values)
