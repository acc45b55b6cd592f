"""Bad input gets `file:line:col: error: message`, the source line and a caret, exit status 1,
and never a Python traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

SEED = """graph seed(W: [n, m], x: [m]) -> f {
    q = W @ x
    f = sum(q * q)
}
"""

CASES = {
    "syntax error": (
        SEED.replace("q = W @ x", "q = W @ * x"),
        "2:13: error: unexpected '*'",
        "*",
    ),
    "unknown name": (
        SEED.replace("W @ x", "W @ xs"),
        "2:13: error: unknown name 'xs'; did you mean 'x'?",
        "xs",
    ),
    "unknown function": (
        SEED.replace("sum(", "summ("),
        "3:9: error: unknown function 'summ'; did you mean 'sum'?",
        "summ",
    ),
    "static shape mismatch": (
        SEED.replace("x: [m]", "x: [k]"),
        "2:9: error: matmul: shapes [n, m] and [k] do not line up: dimension m does not match k",
        "W @ x",
    ),
    "bad wrt": (
        SEED.replace("-> f {", "-> f wrt W, z {"),
        "1:43: error: wrt: 'z' is not a parameter of graph 'seed'",
        "z",
    ),
    "integer wrt": (
        SEED.replace("x: [m]", "x: [m], y: int[n]").replace("-> f {", "-> f wrt y {"),
        "error: wrt: 'y' is an integer parameter and cannot be differentiated",
        "",
    ),
    "broadcast mismatch": (
        SEED.replace("sum(q * q)", "sum(q * x)"),
        "3:13: error: cannot broadcast shapes [n], [m]: dimension n does not match m",
        "",
    ),
    "fn dimension conflict": (
        "fn f(a: [k], b: [k]) -> c {\n    c = a * b\n}\n"
        "graph g(x: [n], y: [m]) -> z {\n    z = sum(f(x, y))\n}\n",
        "5:18: error: argument 'b' of fn 'f' has shape [m], but fn 'f' already bound its dimension k to n",
        "y",
    ),
    "unassigned output": (SEED.replace("-> f", "-> g"), "error: output 'g' is never assigned", ""),
    "recursion": (
        "fn f(a: [k]) -> c {\n    c = f(a)\n}\ngraph g(x: [n]) -> z {\n    z = sum(f(x))\n}\n",
        "2:9: error: fn 'f' calls itself",
        "",
    ),
    "unclosed brace": (SEED.rstrip("}\n"), "error: unexpected end of file", ""),
    "stray character": (
        SEED.replace("q * q", "q $ q"),
        "3:15: error: unexpected character '$'",
        "",
    ),
    "reshape size": (
        "graph g(x: [2, 3]) -> y {\n    y = sum(reshape(x, (4, 2)))\n}\n",
        "error: reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)",
        "",
    ),
}


def run_bpc(tmp_path, source: str):
    path = tmp_path / "model.bp"
    path.write_text(source)
    return (
        subprocess.run(
            [sys.executable, "-m", "bpc", "compile", str(path)], capture_output=True, text=True
        ),
        path,
    )


@pytest.mark.parametrize("name", CASES)
def test_error_has_location_line_and_caret(tmp_path, name):
    source, message, under_caret = CASES[name]
    run, path = run_bpc(tmp_path, source)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    first, shown, caret = run.stderr.splitlines()[:3]
    assert first.startswith(f"{path}:"), run.stderr
    assert message in first, run.stderr
    line, col = (int(v) for v in first[len(str(path)) + 1 :].split(":")[:2])
    assert shown == "    " + source.splitlines()[line - 1]
    assert caret == " " * (4 + col - 1) + "^"
    assert shown[4 + col - 1 :].startswith(under_caret), run.stderr
    assert not path.with_suffix(".py").exists(), "a failed compile must not write a module"


def test_invalid_utf8_is_a_clean_error(tmp_path):
    path = tmp_path / "model.bp"
    path.write_bytes(b"graph g(x: [n]) -> y {\n    y = \xff\n}\n")
    run = subprocess.run(
        [sys.executable, "-m", "bpc", "compile", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 1 and "not valid UTF-8" in run.stderr and "Traceback" not in run.stderr


def test_deep_nesting_is_a_clean_error(tmp_path):
    source = "graph g(x: [n]) -> y {\n    y = sum(" + "(" * 3000 + "x" + ")" * 3000 + ")\n}\n"
    run, _ = run_bpc(tmp_path, source)
    assert "Traceback" not in run.stderr
    assert run.returncode in (0, 1)


def test_a_planned_built_in_is_not_supported_yet(monkeypatch):
    """A built-in of the language that no operation spells yet gets a clean diagnostic."""
    import bpc.build
    from bpc import compile_source
    from bpc.diagnostics import CompileError, render

    monkeypatch.setattr(bpc.build, "PLANNED", bpc.build.PLANNED | {"cumsum"})
    monkeypatch.setattr(bpc.build, "BUILTINS", bpc.build.BUILTINS | {"cumsum"})
    source = SEED.replace("sum(q * q)", "sum(cumsum(q))")
    with pytest.raises(CompileError) as e:
        compile_source(source)
    text = render(e.value.diagnostics[0], "model.bp", source)
    assert text.startswith("model.bp:3:13: error: 'cumsum' is not supported yet")


def test_independent_errors_are_reported_together(tmp_path):
    source = (
        "graph g(x: [n], w: [n]) -> y {\n"
        "    t = x * 2\n"
        "    y = sum(xx)\n"
        "    z = summ(x)\n"
        "    u = sum(z) + 1\n"  # uses a failed value: no error of its own
        "}\n"
        "graph h(a: [n], b: [m]) -> c {\n"
        "    c = sum(a * b)\n"
        "}\n"
    )
    run, path = run_bpc(tmp_path, source)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert [e.split(":")[1:3] for e in errors] == [["3", "13"], ["4", "9"], ["8", "13"]]
    assert "unknown name 'xx'" in errors[0] and "unknown function 'summ'" in errors[1]
    assert "cannot broadcast" in errors[2]


def test_warnings_do_not_fail_the_compile(tmp_path):
    source = "graph k(a: [n], b: [n]) -> c {\n    u = a * 3\n    c = sum(a)\n}\n"
    run, path = run_bpc(tmp_path, source)
    assert run.returncode == 0 and path.with_suffix(".py").exists()
    assert f"{path}:2:5: warning: 'u' is assigned but no output uses it" in run.stderr
    assert f"{path}:1:17: warning: parameter 'b' is not used by any output" in run.stderr
