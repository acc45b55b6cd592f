"""docs/tools.md shows real output: its `$ bpc ...` blocks print what the page shows."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def norm(s: str) -> str:
    """Finite-difference errors vary in their last digits with the BLAS: compare the rest."""
    return re.sub(r"\d\.\d\de-\d\d", "X.XXe-XX", s)


def _env() -> dict:
    return dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])


def test_console_blocks():
    doc = (ROOT / "docs" / "tools.md").read_text()
    blocks = re.findall(r"^```\n\$ (.*?)\n(.*?)^```$", doc, re.S | re.M)
    assert len(blocks) == 5
    for command, expected in blocks:
        run = subprocess.run(
            command, shell=True, cwd=ROOT, env=_env(), capture_output=True, text=True
        )
        assert norm(run.stdout) == norm(expected), command


def test_sessions_with_their_own_files(tmp_path):
    """The `text` blocks that start with a command: in one directory, in order, a file shown
    (`$ cat rnn.bp`) is written there, and each `bpc` command prints what the block shows (a
    later block may use an earlier block's file)."""
    doc = (ROOT / "docs" / "tools.md").read_text()
    sessions = re.findall(r"^```text\n(\$ .*?)^```$", doc, re.S | re.M)
    assert len(sessions) >= 3
    for session in sessions:
        parts = re.split(r"^\$ (.*)\n", session, flags=re.M)[1:]
        for command, text in zip(parts[::2], parts[1::2]):
            if command.startswith("cat "):
                (tmp_path / command[4:]).write_text(text)
                continue
            run = subprocess.run(
                command, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True
            )
            assert norm(run.stdout) == norm(text), command
