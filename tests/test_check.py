"""`bpc check`: gradients against finite differences from the command line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

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


def test_emit_tests_writes_checks_that_pass_beside_the_module(tmp_path):
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
