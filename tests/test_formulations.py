"""bench/formulations/ and bench/held_out.py: every formulation compiles and computes its model's
value and gradients, in float64 and in float32; every tuned reference is right (central finite
differences), leaves its inputs alone and keeps float32 float32; the suite and the held-out
models run through bench/run.py's run_case. Nothing here times anything against a target: the
benchmarks are run by hand."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import formulations  # noqa: E402  (bench/formulations/)
import held_out  # noqa: E402  (bench/held_out.py)
import run  # noqa: E402  (bench/run.py)
from formulations import MODELS, generated  # noqa: E402

FORMULATIONS = [(m, f) for m in MODELS for f in m.formulations]
# The suite's models and the held-out ones, whose references and spellings are checked alike
EVERY = MODELS + held_out.MODELS
CHECKED = [(m, f) for m in EVERY for f in m.formulations]


def _ids(pairs):
    return [f"{m.name}: {f.name}" for m, f in pairs]


def _inputs(model, dtype=np.float64):
    size = model.smoke_sizes[0]
    return size, model.cast(model.inputs(size, np.random.default_rng(1)), dtype)


def _rel_err(got, want) -> float:
    """The largest difference over the largest magnitude of `want`: a normwise relative error,
    which an element near zero does not inflate."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want), initial=0) / max(np.max(np.abs(want)), 1e-300))


def test_the_suite_covers_the_issue():
    """At least 25 formulations, and as many spellings of each model as issue 15 asks."""
    count = {m.name: len(m.formulations) for m in MODELS}
    assert sum(count.values()) >= 25
    assert count["batchnorm"] >= 4 and count["layernorm"] >= 4
    assert count["two-layer net loss"] >= 4 and count["attention"] >= 3
    assert count["softplus"] >= 3 and count["GELU, tanh form"] >= 2
    for m in MODELS:
        names = [f.name for f in m.formulations]
        assert len(set(names)) == len(names), m.name
        assert len({f.source for f in m.formulations}) == len(names), m.name


@pytest.mark.parametrize("model, formulation", CHECKED, ids=_ids(CHECKED))
def test_formulation_matches_its_reference(model, formulation):
    """Value and gradients as the reference's: within 1e-8 in float64; in float32, float32
    results within float32's rounding."""
    for dtype, tol in ((np.float64, 1e-8), (np.float32, 1e-4)):
        size, args = _inputs(model, dtype)
        want = model.reference(*args)
        run = generated(model, formulation, size)
        value, grads = run(*run.prepare(args)) if model.vjp else run(*args)
        got = (value, *grads)
        assert len(got) == len(want) == 1 + len(model.wrt)
        for i, (g, w) in enumerate(zip(got, want)):
            assert np.asarray(g).dtype == dtype, (dtype, i)
            assert np.shape(g) == np.shape(w), (dtype, i)
            assert _rel_err(g, w) < tol, (dtype, i, _rel_err(g, w))


@pytest.mark.parametrize("model", EVERY, ids=[m.name for m in EVERY])
def test_reference_matches_finite_differences(model):
    """Each gradient of the reference against central differences of its value (for a `vjp`
    model, of sum(value * upstream gradient)), element by element, in float64."""
    _, args = _inputs(model)
    value, *grads = model.reference(*args)

    def f(args):
        out = model.reference(*args)[0]
        return float(np.vdot(out, args[-1])) if model.vjp else float(out)

    h = 1e-6
    for position, grad in zip(model.wrt, grads):
        x = args[position]
        assert grad.shape == x.shape
        numeric = np.empty_like(x)
        for index in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[index] += h
            minus[index] -= h
            up = list(args)
            up[position] = plus
            down = list(args)
            down[position] = minus
            numeric[index] = (f(up) - f(down)) / (2 * h)
        assert _rel_err(grad, numeric) < 1e-6, (position, _rel_err(grad, numeric))


@pytest.mark.parametrize("model", EVERY, ids=[m.name for m in EVERY])
def test_reference_leaves_its_inputs_and_keeps_float32(model):
    """The references work in place, but never in their arguments; float32 in, float32 out."""
    for dtype in (np.float64, np.float32):
        _, args = _inputs(model, dtype)
        before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        results = model.reference(*args)
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b)
        assert all(np.asarray(r).dtype == dtype for r in results), model.name
        arrays = [r for r in results if isinstance(r, np.ndarray)]
        assert len({id(r) for r in arrays}) == len(arrays)  # no result is another's array


def test_suite_runs_through_run_case(capsys):
    """The smoke run: every model at its tiny size in both dtypes, checked and timed by
    bench/run.py's run_case, and the section written for docs/performance.md."""
    records = formulations.run_suite(MODELS, run.run_case, True, 1, 0.0005, 0.0)
    assert len(records) == 2 * len(MODELS)
    for r in records:
        assert r.result.peak.keys() == {"hand"} | {f"bpc: {f.name}" for f in r.model.formulations}
        assert all(r.ratio(f) > 0 for f in r.model.formulations)
    text = formulations.section(records, "--formulations-only", "this machine")
    assert text.startswith("\n## Formulations\n")
    assert "| model | formulation | smoke, float64 | smoke, float32 |" in text
    for m, f in FORMULATIONS:
        assert f"| {m.name} | `{f.name}` | " in text
    assert f"- **overall**, {len(FORMULATIONS)} formulations of {len(MODELS)} models" in text
    assert "- all models, smoke, float32: median" in text
    out = capsys.readouterr().out
    assert "| batchnorm | 5 x 3 | float32 |" in out


def test_held_out_models_run(capsys):
    """bench/held_out.py's smoke run: each held-out model at its tiny size in both dtypes,
    checked against its reference and timed, and its table printed."""
    assert held_out.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for m in held_out.MODELS:
        for f in m.formulations:
            assert f"| {m.name} | `{f.name}` | " in out
    assert "- all models, smoke, float32: median" in out


def test_kernel_forms_agree(capsys):
    """The forms each reference was chosen among (bench/formulations/kernels.py) compute what it
    computes."""
    from formulations import kernels

    assert kernels.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| softplus | 3 x 4 | float32 | np.logaddexp, tanh sigmoid |" in out
    assert "| batchnorm | 5 x 3 | float64 | reference |" in out
