"""The worked example of the lecture note: q = W x, f = ||q||^2, df/dW = 2 q x^T, df/dx = 2 W^T q."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support import load

ROOT = Path(__file__).resolve().parent.parent
W = np.array([[0.1, 0.5], [-0.3, 0.8]])
x = np.array([0.2, 0.4])


def seed_module():
    return load((ROOT / "examples" / "seed.bp").read_text())


def test_the_lecture_numbers_exactly():
    f, grads = seed_module().seed_grad(W, x)
    assert abs(f - 0.116) < 1e-12
    np.testing.assert_allclose(grads.W, [[0.088, 0.176], [0.104, 0.208]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads.x, [-0.112, 0.636], rtol=0, atol=1e-12)


def test_the_hand_derivation_on_random_inputs():
    rng = np.random.default_rng(0)
    W, x = rng.normal(size=(5, 3)), rng.normal(size=3)
    q = W @ x
    f, grads = seed_module().seed_grad(W, x)
    np.testing.assert_allclose(f, q @ q, rtol=1e-14)
    np.testing.assert_allclose(grads.W, 2 * np.outer(q, x), rtol=1e-14)
    np.testing.assert_allclose(grads.x, 2 * W.T @ q, rtol=1e-14)


def test_the_backward_reads_like_the_derivation():
    text = (ROOT / "generated" / "seed.py").read_text()
    backward = text[text.index("def seed_backward") : text.index("def seed_grad")]
    body = [line.strip() for line in backward.splitlines()[2:] if line.strip()]
    assert body == [
        "W, x, q = _cached(cache, SeedCache)",  # the cache of this graph, of this module
        'dout = _dout("seed", dout, (), W.dtype)',  # dout checked like an argument
        "# f = sum(q * q)",
        "dq = 2 * dout * q",
        "# q = W @ x",
        "dW = np.dot(dq[:, None], x[None, :])",  # the column dq times the row x^T
        "dx = W.T @ dq",
        "return SeedGrads(dW, dx)",
    ]


def test_the_readme_commands(tmp_path):
    """`bpc compile examples/seed.bp` writes examples/seed.py, which imports and runs."""
    src = tmp_path / "seed.bp"
    src.write_text((ROOT / "examples" / "seed.bp").read_text())
    subprocess.run([sys.executable, "-m", "bpc", "compile", str(src)], check=True)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import seed, numpy as np; W = np.array([[0.1, 0.5], [-0.3, 0.8]]); "
            "x = np.array([0.2, 0.4]); print(seed.seed_grad(W, x))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0.116" in run.stdout and "0.088, 0.176" in run.stdout and "-0.112,  0.636" in run.stdout
