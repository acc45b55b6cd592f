"""bpc's pre-commit hooks (.pre-commit-hooks.yaml), run by pre-commit itself in a new git repository.

The hooks' repository is this working tree, committed as it is into a temporary repository so that
`rev:` names it; pre-commit clones it and installs bpc from it into a virtual environment of its
own (from PyPI, as it would for a user), then runs `bpc fmt` and `bpc compile --check` on the
`.bp` files it is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UGLY = "graph g(x:[n])->y{\n  y=sum(x*x)  # the square\n}\n"
PRETTY = "graph g(x: [n]) -> y {\n    y = sum(x * x)  # the square\n}\n"
BROKEN = "graph g(x: [n], y: [m]) -> z {\n    z = sum(x + y)\n}\n"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(
        os.environ,
        PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("cache")),  # hook environments of this test
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.org",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.org",
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, env):
    """A new git repository whose .pre-commit-config.yaml takes both hooks from a commit of
    this working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode:
        pytest.skip("the hooks' repository is made from a git checkout of bpc")
    hooks = tmp_path_factory.mktemp("bpc")
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():  # (not a file deleted but not yet committed)
            (hooks / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, hooks / name)
    git("init", "-q", cwd=hooks)
    git("add", "-A", cwd=hooks)
    git("-c", "commit.gpgsign=false", "commit", "-qm", "bpc", "--no-verify", cwd=hooks)
    rev = git("rev-parse", "HEAD", cwd=hooks).stdout.strip()
    work = tmp_path_factory.mktemp("project")
    git("init", "-q", cwd=work)
    (work / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n"
        "      - id: bpc-fmt\n      - id: bpc-compile-check\n"
    )
    git("add", ".pre-commit-config.yaml", cwd=work)
    return work


def pre_commit(hook: str, *files: str, cwd: Path, env) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pre_commit", "run", hook, "--files", *files]
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return run


def test_bpc_fmt_fixes_the_file_then_passes(project, env):
    (project / "model.bp").write_text(UGLY)
    git("add", "model.bp", cwd=project)
    run = pre_commit("bpc-fmt", "model.bp", cwd=project, env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "files were modified by this hook" in run.stdout
    assert (project / "model.bp").read_text() == PRETTY
    run = pre_commit("bpc-fmt", "model.bp", cwd=project, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Passed" in run.stdout


def test_bpc_compile_check_reports_errors_and_stale_modules(project, env):
    (project / "broken.bp").write_text(BROKEN)
    (project / "model.bp").write_text(PRETTY)
    bpc = [sys.executable, "-m", "bpc", "compile", "model.bp"]
    subprocess.run(bpc, cwd=project, check=True)
    git("add", "broken.bp", "model.bp", "model.py", cwd=project)
    run = pre_commit("bpc-compile-check", "broken.bp", "model.bp", cwd=project, env=env)
    assert run.returncode == 1
    assert "broken.bp:2:13: error: cannot broadcast shapes [n], [m]" in run.stdout
    assert "        z = sum(x + y)\n                ^" in run.stdout
    assert "model.bp" not in run.stdout.replace("broken.bp", "")
    assert pre_commit("bpc-compile-check", "model.bp", cwd=project, env=env).returncode == 0
    (project / "model.bp").write_text(PRETTY.replace("x * x", "x * x * x"))
    run = pre_commit("bpc-compile-check", "model.bp", cwd=project, env=env)
    assert run.returncode == 1 and "model.py is stale or edited" in run.stdout
