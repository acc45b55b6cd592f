"""The examples in the documentation are real: each is compiled, run, and compared with what it shows.

In docs/language.md, a ```bpc block starting with `# NAME.bp` is written to NAME.bp; a ```console
block's `$ command` lines run there and print exactly what follows them; a ```python block is an
excerpt of a module compiled from one of the bp blocks; ```pycon blocks run as doctests.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "language.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", DOC, re.S | re.M)
SOURCES = {re.match(r"# (\w+\.bp)", body).group(1): body for lang, body in BLOCKS if lang == "bpc"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    for name, body in SOURCES.items():
        (d / name).write_text(body)
    return d


def test_every_bp_block_is_named():
    assert len(SOURCES) == sum(1 for lang, _ in BLOCKS if lang == "bpc") > 10


def test_console_blocks_print_what_they_show(workdir):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    for lang, body in BLOCKS:
        if lang != "console":
            continue
        parts = re.split(r"^\$ (.*)\n", body, flags=re.M)
        for command, expected in zip(parts[1::2], parts[2::2]):
            run = subprocess.run(
                command, shell=True, cwd=workdir, env=env, capture_output=True, text=True
            )
            assert run.stdout + run.stderr == expected, command


def test_python_blocks_are_excerpts_of_compiled_modules():
    modules = []
    for name, body in SOURCES.items():
        try:
            modules.append(compile_source(body, name))
        except CompileError:
            pass
    for lang, body in BLOCKS:
        if lang == "python":
            assert any(body in m for m in modules), body


def test_pycon_sessions(workdir, monkeypatch):
    for name, body in SOURCES.items():
        try:
            (workdir / name.replace(".bp", ".py")).write_text(compile_source(body, name))
        except CompileError:
            pass
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    parser, runner, globs = doctest.DocTestParser(), doctest.DocTestRunner(), {}
    for i, (lang, body) in enumerate(BLOCKS):
        if lang == "pycon":
            test = parser.get_doctest(body, globs, f"pycon{i}", "language.md", 0)
            runner.run(test, clear_globs=False)
            globs = test.globs
    assert runner.summarize(verbose=False).failed == 0


def test_readme_shows_the_generated_seed_module():
    readme = (ROOT / "README.md").read_text()
    generated = (ROOT / "generated" / "seed.py").read_text()
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```$", readme, re.S | re.M):
        if lang == "python":
            assert body in generated, body
