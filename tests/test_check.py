"""`bpc check`: gradients against finite differences from the command line."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bpc.ops  # noqa: F401 - fills the registry
from bpc import cli
from bpc.check import check_source
from bpc.ir import OPS

ROOT = Path(__file__).resolve().parent.parent


def test_examples_pass(tmp_path):
    for path in [ROOT / "examples" / "seed.bp", ROOT / "tests" / "golden" / "features.bp"]:
        run = subprocess.run(
            [sys.executable, "-m", "bpc", "check", str(path)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "FAIL" not in run.stdout and " ok" in run.stdout


def test_dims_dtype_and_graph_options():
    rows = check_source(
        (ROOT / "tests" / "golden" / "features.bp").read_text(),
        graph="scaled",
        dims={"T": 5, "d": 7},
        dtype="float32",
        seed=3,
    )
    assert [r.gradient for r in rows] == ["dQ", "dK"] and all(r.ok for r in rows)
    assert rows[0].shape == "[T, d]"


def test_a_wrong_adjoint_is_caught(monkeypatch, capsys):
    wrong = dataclasses.replace(OPS["tanh"], adjoint=lambda g, y, x: (g * (1 + y * y),))
    monkeypatch.setitem(OPS, "tanh", wrong)
    status = cli.main(["check", str(ROOT / "examples" / "mlp.bp")])
    out = capsys.readouterr()
    assert status == 1
    assert "FAIL" in out.out and "gradients differ from finite differences" in out.err


def test_usage_and_input_errors(tmp_path, capsys):
    bad = tmp_path / "bad.bp"
    bad.write_text("graph g(x: [n]) -> y {\n    y = sum(xx)\n}\n")
    assert cli.main(["check", str(bad)]) == 1
    assert "bad.bp:2:13: error: unknown name 'xx'" in capsys.readouterr().err
    assert cli.main(["check", str(ROOT / "examples" / "seed.bp"), "--graph", "nope"]) == 1
    try:
        cli.main(["check", str(ROOT / "examples" / "seed.bp"), "--dim", "n=zero"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("a bad --dim is a usage error")


@pytest.mark.parametrize("options", [[], ["--consume-cache"]], ids=["", "consume-cache"])
def test_emit_tests_writes_checks_that_pass_beside_the_module(tmp_path, options):
    """The checks pass beside the module, compiled with `--consume-cache` too (they run the
    forward anew for each backward)."""
    out = tmp_path / "out"
    for name in ("seed", "mlp"):
        (tmp_path / f"{name}.bp").write_text((ROOT / "examples" / f"{name}.bp").read_text())
    (tmp_path / "features.bp").write_text((ROOT / "tests" / "golden" / "features.bp").read_text())
    sources = [tmp_path / f"{n}.bp" for n in ("seed", "mlp", "features")]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpc",
            "compile",
            "--emit-tests",
            *options,
            "--out-dir",
            str(out),
            *map(str, sources),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.glob("test_*.py")) == [
        "test_features.py",
        "test_mlp.py",
        "test_seed.py",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)],
        capture_output=True,
        text=True,
        cwd=out,
    )
    assert run.returncode == 0, run.stdout
    assert "5 passed" in run.stdout  # seed, mlp, and features' three graphs


CANNOT_RUN = """graph g(x: [n]) -> y {
    y = x[40] * 2
}
graph h(x: [n]) -> y {
    y = sum(x * x)
}
"""


def test_a_graph_that_cannot_run_at_its_sizes_is_one_line_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "index.bp"
    path.write_text(CANNOT_RUN)
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[2].startswith("g  ") and lines[2].endswith(
        "no small sizes meet n >= 41; give sizes with --dim"
    )
    assert lines[3].startswith("h                dx") and lines[3].endswith("  ok")
    assert out.err == "1 of 2 graphs could not run at the sizes checked\n"
    assert cli.main(["check", str(path), "--dim", "n=41"]) == 0
    assert "could not run" not in capsys.readouterr().out


def test_check_picks_sizes_that_meet_the_conditions(tmp_path, capsys):
    path = tmp_path / "index.bp"
    path.write_text(CANNOT_RUN.replace("x[40]", "x[5]"))
    assert cli.main(["check", str(path)]) == 0
    assert "could not run" not in capsys.readouterr().out


def test_the_sizes_named_are_the_ones_used():
    (row,) = check_source(
        "graph g(x: [n, m], w: [m]) -> y {\n    y = sum(x[7] * w)\n}\n", dims={"m": 4, "n": 3}
    )
    assert not row.ok and row.note.startswith("no small sizes with m=4, n=3 meet n >= 8")


ZERO = """graph g(x: [n], w: [n]) -> y {
    y = sum(relu(x - 100)) + sum(w)
}
graph h(x: [n], t: []) -> y {
    y = sum(x * (x > t))
}
"""


def test_a_gradient_zero_everywhere_tested_is_not_ok(tmp_path, capsys):
    rows = check_source(ZERO)
    assert [(r.gradient, r.ok, r.result) for r in rows] == [
        ("dx", True, "not tested: identically zero at these sizes"),
        ("dw", True, "ok"),
        ("dx", True, "ok"),
        ("dt", True, "not tested: identically zero at these sizes"),
    ]
    path = tmp_path / "zero.bp"
    path.write_text(ZERO)
    assert cli.main(["check", str(path)]) == 0  # nothing disagrees: a warning, not a failure
    out = capsys.readouterr()
    assert out.out.count("not tested: identically zero at these sizes") == 2
    assert out.err == (
        "2 of 4 gradients are zero at every point tested and so were not tested; other sizes "
        "or inputs (--dim, --seed) may test them\n"
    )


def test_a_wrong_zero_adjoint_still_fails(monkeypatch):
    """A gradient that is zero where finite differences are not is a failure, not untested."""
    wrong = dataclasses.replace(OPS["tanh"], adjoint=lambda g, y, x: (g * 0,))
    monkeypatch.setitem(OPS, "tanh", wrong)
    (row,) = check_source("graph g(x: [n]) -> y {\n    y = sum(tanh(x))\n}\n")
    assert not row.ok and row.result == "FAIL"


def test_the_example_in_tools_md_prints_what_it_shows(tmp_path, capsys):
    doc = (ROOT / "docs" / "tools.md").read_text()
    example = re.search(r"\$ cat gates.bp\n(.*?)\$ bpc check gates.bp\n(.*?)```", doc, re.S)
    stderr = re.search(r"and on standard error:\n\n```text\n(.*?)```", doc, re.S)
    (tmp_path / "gates.bp").write_text(example[1])
    assert cli.main(["check", str(tmp_path / "gates.bp")]) == 1
    out = capsys.readouterr()

    def norm(s):  # finite-difference errors vary in their last digits with the BLAS
        return re.sub(r"\d\.\d\de-\d\d", "X.XXe-XX", s)

    assert norm(out.out) == norm(example[2]) and out.err == stderr[1]


def test_hessian_vector_products_are_checked_and_a_wrong_one_fails(capsys):
    """`bpc check --hvp`: each H v against central differences of the gradient."""
    import types

    from bpc.check import _check_hvp
    from bpc.loader import module_from_text
    from bpc.pipeline import compile_graphs, compile_source

    path = ROOT / "examples" / "seed.bp"
    assert cli.main(["check", "--hvp", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"seed +Hv\(W\) +\[n, m\] .* ok", out)
    assert re.search(r"seed +Hv\(x\) +\[m\] .* ok", out)
    module = module_from_text(compile_source(path.read_text(), "seed.bp", hvp=True), "bpc_chk")
    (c,) = compile_graphs(path.read_text(), hvp=True)

    def twice(*args):
        return type(module.seed_hvp(*args))(*(2 * h for h in module.seed_hvp(*args)))

    wrong = types.SimpleNamespace(seed_grad=module.seed_grad, seed_hvp=twice)
    rows = _check_hvp(wrong, c.pair, {"n": 3, "m": 4}, "float64", 0)
    assert [r.result for r in rows] == ["FAIL", "FAIL"]
