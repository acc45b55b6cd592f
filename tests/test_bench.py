"""The benchmarks keep working: a tiny smoke run of bench/run.py (it checks every system's
gradients and forward values first) and of bench/compile_time.py. Nothing here times anything
against a target: the benchmarks are run by hand."""

import subprocess
import sys
from pathlib import Path

import numpy as np

import bpc
from bpc.loader import module_from_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import cases  # noqa: E402  (bench/cases.py)
import checks  # noqa: E402  (bench/checks.py)
import compile_time  # noqa: E402  (bench/compile_time.py)
import conv_cases  # noqa: E402  (bench/conv_cases.py)
import conv_forms  # noqa: E402  (bench/conv_forms.py)
import hvp  # noqa: E402  (bench/hvp.py)
import kernels  # noqa: E402  (bench/kernels.py)
import rnn_cases  # noqa: E402  (bench/rnn_cases.py)
import run as bench_run  # noqa: E402  (bench/run.py)


def test_bench_smoke():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "| model | size | hand NumPy | bpc |" in run.stdout
    assert "| bpc fwd / hand fwd |" in run.stdout
    every = cases.CASES + conv_cases.CASES + rnn_cases.CASES
    for case in every:
        assert f"| {case.name} |" in run.stdout, case.name
    assert f"across the {len(every)} cases: median" in run.stdout
    assert "bpc forward alone over the hand-written forward: median" in run.stdout


def test_compile_time_smoke(capsys):
    assert compile_time.main(["--ops", "30", "60", "--repeats", "1", "--cli-repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "`bpc compile examples/seed.bp` as a whole process:" in out
    assert "| operations (IR) | source statements | compile time | per 1000 operations |" in out
    assert "over" in out and "the time" in out  # 60 is twice 30: the doubling line


def test_generated_graph_is_real_work():
    """The compile-time graphs have the size asked for and compile to a gradient that runs."""
    text = compile_time.source(compile_time.blocks_for(100))
    assert abs(compile_time.count_ops(text) - 100) <= 15
    module = module_from_text(bpc.compile_source(text, "deep.bp"), "bpc_bench_deep")
    rng = np.random.default_rng(0)
    N, D, C = 5, 4, 3
    args = [rng.standard_normal((N, D)), rng.integers(0, C, N), rng.standard_normal((D, C))]
    for _ in range(compile_time.WEIGHTS):
        args += [
            rng.standard_normal((D, D)) / 2,
            rng.standard_normal(D),
            rng.standard_normal((D, D)) / 2,
        ]
        args.append(rng.standard_normal(D))
    loss, grads = module.deep_grad(*args)
    assert np.isfinite(loss)
    assert len(grads) == 1 + 4 * compile_time.WEIGHTS
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in grads)


def test_checks_bench_smoke(capsys):
    assert checks.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| signature | sizes | cached: _g_sizes | old _shapes | new / old |" in out
    for row in ("| seed, W [n, n], x [n] | n = 64 |", "| lstm, ", "| attention, "):
        assert row in out


def test_hvp_bench_smoke(capsys):
    """bench/hvp.py checks every system's H v against the hand-written one before timing."""
    assert hvp.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| model | sizes | hand | bpc | jax | torch | bpc / hand | bpc / JAX |" in out
    for name in ("| logistic regression + L2 |", "| two-layer net, softmax CE + L2 |"):
        assert name in out


def test_conv_forms_smoke(capsys):
    """The forms the hand-written conv and pooling were chosen among compute the same thing."""
    assert conv_forms.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| im2col columns + one GEMM, kept for dW (reference, bpc) |" in out
    assert "| a maximum per kernel offset (reference, bpc) |" in out


def test_kernels_smoke(capsys):
    """Every family of bench/kernels.py runs, and each kernel bpc emits (marked "(bpc") is stable
    and accurate relative to the value on extreme inputs in both dtypes."""
    assert kernels.main(["--smoke"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    for family in kernels.FAMILIES:
        chosen = [row for row in rows if row.startswith(f"| {family} |") and "(bpc" in row]
        assert len(chosen) == 1, family
        assert "unstable" not in chosen[0] and "small values lost" not in chosen[0], chosen[0]


def test_a_run_replaces_only_the_tables_it_ran():
    """bench/run.py writes the main tables, the formulations section, or both, and keeps the
    page's hand-written notes; `--only` (some cases) writes nothing, since its table would drop
    the other cases' rows."""
    old = "# Performance\nmain table\n\n## Formulations\nforms table\n\n## Notes\nby hand\n"
    assert bench_run.updated_page(old, "# Performance\nnew main\n", None) == (
        "# Performance\nnew main\n\n## Formulations\nforms table\n\n## Notes\nby hand\n"
    )
    assert bench_run.updated_page(old, None, "\n## Formulations\nnew forms\n") == (
        "# Performance\nmain table\n\n## Formulations\nnew forms\n\n## Notes\nby hand\n"
    )
    assert bench_run.updated_page("", "# P\n", None) == "# P\n"
    page = ROOT / "docs" / "performance.md"
    before = page.read_text()
    assert bench_run.main(["--only", "no such case", "--repeats", "1"]) == 0
    assert page.read_text() == before
