"""examples/train_digits_cnn.py, in a short run: the compiled three-layer convnet learns the
digits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent


def train_digits_cnn():
    spec = importlib.util.spec_from_file_location(
        "train_digits_cnn", ROOT / "examples" / "train_digits_cnn.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_short_run_learns_the_digits():
    lines = []
    accuracy = train_digits_cnn().train(epochs=3, log=lines.append)
    assert len(lines) == 2 + 3 and lines[-1].startswith("epoch  3/3")
    assert accuracy >= 0.9  # chance is 0.1


def test_the_command_line(capsys):
    train_digits_cnn().main(
        ["--epochs", "1", "--filters", "4", "--filter-size", "5", "--hidden", "16"]
    )
    out = capsys.readouterr().out
    assert "4 filters of 5 x 5" in out and "epoch  1/1" in out
    assert out.splitlines()[-1].startswith("held-out accuracy 0.")
