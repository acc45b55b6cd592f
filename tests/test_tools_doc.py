"""docs/tools.md shows real output: its `$ bpc ...` blocks print what the page shows."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_console_blocks():
    doc = (ROOT / "docs" / "tools.md").read_text()
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    blocks = re.findall(r"^```\n\$ (.*?)\n(.*?)^```$", doc, re.S | re.M)
    assert len(blocks) == 3
    for command, expected in blocks:
        run = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)

        # Finite-difference errors vary in their last digits with the BLAS: compare the rest.
        def norm(s):
            return re.sub(r"\d\.\d\de-\d\d", "X.XXe-XX", s)

        assert norm(run.stdout) == norm(expected), command
