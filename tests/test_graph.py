"""`bpc graph`: the computational graph as DOT text, or as a picture through Graphviz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.bp"


def graph(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bpc", "graph", *map(str, args)], capture_output=True, env=env
    )


def test_dot_text_tells_forward_from_backward_with_shapes_on_edges(tmp_path):
    run = graph(SEED)
    assert run.returncode == 0
    dot = run.stdout.decode()
    assert dot.startswith("digraph bpc {") and 'label="graph seed"' in dot
    assert '"q\\nmatmul"' in dot and "#dbe9f6" in dot  # a forward node
    assert '"dW\\nouter"' in dot and "#fde3cf" in dot  # a backward node
    assert 'label="[n, m]"' in dot  # W's shape on its edges
    assert graph(SEED, "-o", tmp_path / "seed.dot").returncode == 0
    assert (tmp_path / "seed.dot").read_text() == dot


def test_pictures_through_graphviz_or_a_clear_message(tmp_path):
    target = tmp_path / "seed.svg"
    if shutil.which("dot"):
        run = graph(SEED, "-o", target)
        assert run.returncode == 0, run.stderr
        assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
    env = dict(os.environ, PATH=str(tmp_path))  # no Graphviz here
    run = graph(SEED, "-o", tmp_path / "none.png", env=env)
    assert run.returncode == 1
    assert b"needs Graphviz's `dot`" in run.stderr and b"-o graph.dot" in run.stderr
    assert not (tmp_path / "none.png").exists()


def test_bad_output_kind_is_a_usage_error(tmp_path):
    assert graph(SEED, "-o", tmp_path / "x.txt").returncode == 2
