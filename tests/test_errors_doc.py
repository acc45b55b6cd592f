"""docs/errors.md: each example, compiled, prints exactly what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "errors.md").read_text()
EXAMPLES = re.findall(
    r"^## (.*?)\n.*?^```bpc\n(.*?)^```\n\n```console\n\$ (.*?)\n(.*?)^```$", DOC, re.S | re.M
)


def test_the_page_has_its_examples():
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize("title, source, command, expected", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example(tmp_path, title, source, command, expected):
    (tmp_path / "model.bp").write_text(source)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    run = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.stderr == expected
    assert run.returncode == (0 if ": error: " not in expected else 1)
    assert (tmp_path / "model.py").exists() == (run.returncode == 0)
