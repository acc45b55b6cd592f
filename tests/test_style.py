"""The code base is black- and ruff-clean (both configured in pyproject.toml)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_black_check():
    run = subprocess.run(
        [sys.executable, "-m", "black", "--check", "--quiet", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr


def test_ruff_check():
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


MAX_FUNCTION_LINES = 80


def test_no_function_in_the_compiler_is_longer_than_80_lines():
    """A function that does not fit on a screen does several things: give each a name."""
    long = []
    for path in sorted((ROOT / "compiler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_helper_templates_are_black_at_the_generated_modules_line_length():
    """A helper's template is copied into generated modules as it is: black must leave it so
    (88 columns), whether or not a golden file happens to use it."""
    import black

    from bpc.emit import _environment
    from bpc.printer import HELPERS

    for template in HELPERS.values():
        text = _environment().get_template(template).render()  # (erf.py.j2 has blocks)
        assert black.format_str(text, mode=black.Mode()) == text, template
