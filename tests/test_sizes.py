"""Code arranged for the sizes the user expects (`bpc compile --dim NAME=SIZE`): a product scales
whichever of its operands, or its result, has the fewest elements at those sizes. The function is
the same (checked against the autograd oracle), it takes arrays of any size, and at the sizes given
it does no more floating-point work than the code compiled without them, and less where the
scale moves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpc import compile_source
from bpc.check import make_inputs
from bpc.emit import emit
from bpc.pipeline import compile_graphs
from bpc.stats import evaluate, stats_source
from tests import oracle
from tests.support import load, rel_error

ROOT = Path(__file__).resolve().parent.parent
ATTENTION = """
graph attention(q: [S, d], k: [T, d], v: [T, m]) -> out {
    weights = softmax(q @ k.T / sqrt(d), axis=-1)
    out = weights @ v
}
"""

# (source, sizes at which a scale moves to a smaller array, sizes at which it stays)
CASES = [
    (ATTENTION, {"S": 40, "T": 40, "d": 4, "m": 4}, {"S": 3, "T": 2, "d": 30, "m": 3}),
    (
        "graph f(x: [N, D], W: [D, H]) -> y { y = x @ W / sqrt(D) }",
        {"N": 60, "D": 5, "H": 6},
        {"N": 3, "D": 40, "H": 2},
    ),
    (
        "graph f(x: [N, D], W: [H, D]) -> y { y = 2 * (x @ W.T) }",
        {"N": 60, "D": 5, "H": 6},
        {"N": 2, "D": 40, "H": 3},
    ),
    (
        "graph f(x: [N, D], W: [D, H]) -> y { y = (x @ W) * 0.5 }",
        {"N": 5, "D": 4, "H": 60},
        {"N": 2, "D": 40, "H": 3},
    ),
    (
        "graph f(a: [N, K], b: [K, M], c: [M, P]) -> y { y = (a @ b / 3) @ c }",
        {"N": 30, "K": 2, "M": 30, "P": 2},
        {"N": 2, "K": 30, "M": 2, "P": 30},
    ),
    (
        "graph f(a: [B, N, K], b: [B, K, M]) -> y { y = a @ b / 4 }",
        {"B": 2, "N": 20, "K": 3, "M": 20},
        {"B": 2, "N": 2, "K": 20, "M": 2},
    ),
    (
        "graph f(A: [N, K], x: [K]) -> y { y = A @ x / 2 }",
        {"N": 30, "K": 3},
        {"N": 3, "K": 30},
    ),
    (
        "graph f(a: [N, K], b: [K, M]) -> y { y = (a / 2) @ (b / 3) }",
        {"N": 30, "K": 30, "M": 2},
        {"N": 2, "K": 2, "M": 2},
    ),
    (
        "graph f(A: [N, K], B: [K, M]) -> y { y = sum(exp(A @ B / 10)) }",
        {"N": 30, "K": 3, "M": 30},
        {"N": 3, "K": 30, "M": 3},
    ),
]
IDS = [
    "attention",
    "right",
    "mul-transposed",
    "times-constant",
    "chain",
    "batched",
    "vector",
    "both-scaled",
    "loss",
]


def _code(source: str, sizes: dict | None = None) -> str:
    """The module's code, compiled for `sizes`, without the docstring that names them."""
    return emit(compile_graphs(source, sizes=sizes), "f.bp")


def _flops(source: str, sizes: dict | None, at: dict) -> int:
    """Forward and backward flops of the code compiled for `sizes`, evaluated at `at`."""
    (stats,) = stats_source(source, sizes=sizes)
    return sum(evaluate(p.flops, at).value for p in (stats.forward, stats.backward))


def _check_against_oracle(source: str, sizes: dict, at: dict, seed: int):
    """The module compiled for `sizes`, run at `at`: value and VJP match the oracle."""
    module = load(source, sizes=sizes)
    (graph,) = oracle.typed_graphs(source)
    rng = np.random.default_rng(seed)
    args = make_inputs(graph, at, np.float64, rng)
    inputs = {p.name: a for p, a in zip(graph.params, args)}
    name = graph.name
    out, cache = getattr(module, f"{name}_forward")(*args)
    expected = oracle.oracle_forward(source, name, inputs)
    assert rel_error(out, expected) < 1e-12
    several = len(graph.outputs) > 1
    douts = tuple(rng.standard_normal(np.shape(o)) for o in (out if several else [out]))
    dout = douts if several else douts[0]
    grads = getattr(module, f"{name}_backward")(dout, cache)
    for wrt, want in oracle.oracle_grads(source, name, inputs, dout).items():
        assert rel_error(getattr(grads, wrt), want) < 1e-10, wrt


@pytest.mark.parametrize("source, moves, stays", CASES, ids=IDS)
def test_the_function_is_the_same_at_any_size(source, moves, stays):
    for seed, sizes in enumerate((moves, stays)):
        for at in (sizes, moves, stays):  # compiled for one set of sizes, run at every set
            _check_against_oracle(source, sizes, at, seed)


@pytest.mark.parametrize("source, moves, stays", CASES, ids=IDS)
def test_less_work_where_the_scale_moves_and_never_more(source, moves, stays):
    assert _flops(source, moves, moves) < _flops(source, None, moves)
    assert _flops(source, stays, stays) <= _flops(source, None, stays)


@pytest.mark.parametrize("source, moves, stays", CASES, ids=IDS)
def test_without_sizes_or_with_unknown_ones_nothing_moves(source, moves, stays):
    plain = _code(source)
    partial = dict(list(moves.items())[:1])  # one size is not enough to compare costs
    assert _code(source, partial) == plain
    assert _code(source, {"unrelated": 7}) == plain


@pytest.mark.parametrize(
    "source",
    [
        # the gradient of s reads the unscaled product
        "graph f(x: [N, D], W: [D, H], s: []) -> y { y = x @ W / s }",
        # the unscaled product is used twice
        "graph f(x: [N, D], W: [D, H]) -> y { p = x @ W\n y = p / 2 + p }",
        # the product is the output
        "graph f(x: [N, D], W: [D, H]) -> (y, z) { y = x @ W\n z = y / 2 }",
    ],
)
def test_a_scale_stays_where_moving_it_would_cost_more(source):
    sizes = {"N": 60, "D": 5, "H": 6}
    assert _code(source, sizes) == _code(source)
    _check_against_oracle(source, sizes, sizes, 0)


def test_attention_scales_q_and_reuses_it_as_the_hand_written_code_does():
    text = load(ATTENTION, sizes={"S": 512, "T": 512, "d": 64, "m": 64}).__source__
    forward = text[text.index("def attention_forward") : text.index("def attention_backward")]
    backward = text[text.index("def attention_backward") :]
    assert "q_scaled = q / t\n" in forward
    assert "@ k.T / t" not in forward  # the [S, T] scores are not scaled
    assert "dk = t_2.T @ q_scaled\n" in backward  # the forward's scaled q, not a new scaling
    assert "dq = t_2 @ k\n    dq /= t\n" in backward  # [S, d], where the scores' gradient is [S, T]
    assert "Arranged to be fastest for S = 512, T = 512, d = 64, m = 64;" in text


def test_cli_compiles_for_the_sizes_given(tmp_path):
    src = tmp_path / "attention.bp"
    src.write_text(ATTENTION)
    dims = ["--dim", "S=512", "--dim", "T=512", "--dim", "d=64", "--dim", "m=64"]
    run = subprocess.run(
        [sys.executable, "-m", "bpc", "compile", str(src), "-o", "-", "--stats", *dims],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "q_scaled = q / t" in run.stdout
    assert run.stdout == compile_source(
        ATTENTION, "attention.bp", sizes={"S": 512, "T": 512, "d": 64, "m": 64}
    )
    plain = subprocess.run(
        [sys.executable, "-m", "bpc", "stats", str(src), *dims], capture_output=True, text=True
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout in run.stderr  # --stats reports the code it wrote
