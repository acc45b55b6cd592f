"""examples/train_adder.py, in a short run: the compiled LSTM learns to add binary numbers, and
what it learned on 8-bit numbers holds on 16-bit ones (the loop runs over any length)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train_adder():
    spec = importlib.util.spec_from_file_location(
        "train_adder", ROOT / "examples" / "train_adder.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_are_sums_lowest_bit_first():
    x, y = train_adder().numbers(np.random.default_rng(0), 5, 6)
    powers = 2 ** np.arange(6)
    a, b, total = (x[:, :, 0] @ powers), (x[:, :, 1] @ powers), (y @ powers)
    assert np.array_equal(a + b, total) and x.shape == (5, 6, 2)


def test_a_short_run_learns_to_add():
    lines = []
    accuracy = train_adder().train(steps=300, log=lines.append)
    assert lines[-1].startswith("held-out accuracy")
    assert accuracy >= 0.95


def test_the_command_line(capsys):
    train_adder().main(["--steps", "8", "--hidden", "4", "--test-bits", "4"])
    out = capsys.readouterr().out
    assert "step    8/8" in out and out.splitlines()[-1].startswith("held-out accuracy")
