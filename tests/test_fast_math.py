"""`bpc compile --fast-math`: tanh computed as 2 / (1 + exp(-2x)) - 1 (`_fast_tanh`), within
2 ulp of 1 rather than of the value, in about half the time of np.tanh in float64; nothing else
changes."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bpc import compile_source
from bpc.loader import load as load_file
from bpc.loader import module_from_text
from tests.support import numeric_grad

ROOT = Path(__file__).resolve().parent.parent
TANH = "graph f(x: [n]) -> y {\n    y = tanh(x)\n}\n"


def _module(source: str, name: str, **orders):
    return module_from_text(compile_source(source, f"{name}.bp", **orders), name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_tanh_is_within_two_ulp_of_one(dtype):
    """Against tanh in long double, on a grid over [-30, 30] and down to 1e-30 either side of 0:
    the absolute error is at most 2 ulp of 1 (1.5 measured), where np.tanh's is half an ulp; the
    value keeps its dtype; far out, where exp(-2x) overflows, the value is -1 with no warning,
    and inf, -inf and nan come out as tanh's."""
    module = _module(TANH, f"bpc_fast_tanh_{np.dtype(dtype).name}", fast_math=True)
    assert "_fast_tanh(" in module.__source__ and "np.tanh(" not in module.__source__
    tiny = np.geomspace(1e-30, 30, 20001)
    x = np.concatenate([np.linspace(-30, 30, 200001), tiny, -tiny]).astype(dtype)
    y = module.f(x)
    assert y.dtype == dtype
    error = np.abs(y.astype(np.longdouble) - np.tanh(x.astype(np.longdouble)))
    assert error.max() <= 2 * np.finfo(dtype).eps
    far = np.array([-1000.0, -400.0, -50.0, 0.0, 400.0, np.inf, -np.inf, np.nan], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(module.f(far), np.tanh(far))


def test_fast_math_gradients():
    """The gradient is tanh's, 1 - y * y from the forward's y: the RNN of examples/rnn.bp with
    --fast-math, against central differences and against the module compiled without it."""
    source = (ROOT / "examples" / "rnn.bp").read_text()
    fast = _module(source, "bpc_fast_math_rnn", fast_math=True)
    plain = _module(source, "bpc_plain_rnn")
    assert "_fast_tanh(h, out=h)" in fast.__source__
    rng = np.random.default_rng(5)
    N, T, D, H = 2, 3, 4, 5
    args = [
        rng.standard_normal((N, T, D)),
        rng.standard_normal((N, H)),
        rng.standard_normal((D, H)) * 0.5,
        rng.standard_normal((H, H)) * 0.5,
        rng.standard_normal(H),
    ]
    dhs = rng.standard_normal((N, T, H))
    hs, cache = fast.rnn_forward(*args)
    grads = fast.rnn_backward(dhs, cache)
    hs_plain, cache_plain = plain.rnn_forward(*args)
    np.testing.assert_allclose(hs, hs_plain, rtol=0, atol=1e-15)
    for g, want in zip(grads, plain.rnn_backward(dhs, cache_plain)):
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-13)
    for i, g in enumerate(grads):
        numeric = numeric_grad(lambda *a: np.sum(fast.rnn(*a) * dhs), args, i)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_fast_math_changes_tanh_alone():
    """A model without tanh compiles to the same module with --fast-math; a number's tanh (a
    `[]` parameter) is math.tanh's, as without it."""
    for example in ("two_layer.bp", "seed.bp", "normalization.bp"):
        source = (ROOT / "examples" / example).read_text()
        assert compile_source(source, example, fast_math=True) == compile_source(source, example)
    number = "graph f(s: [], x: [n]) -> y {\n    y = tanh(s) * x\n}\n"
    module = _module(number, "bpc_fast_math_number", fast_math=True)
    assert "math.tanh(s)" in module.__source__
    np.testing.assert_allclose(module.f(0.3, np.ones(2)), np.tanh(0.3) * np.ones(2), rtol=1e-15)


def test_fast_math_is_for_the_numpy_target(tmp_path):
    """`bpc compile --fast-math` writes `_fast_tanh`; with the array-API target it is a usage
    error that writes nothing (and `compile_source` a ValueError); `bpc.load` keeps a module
    compiled with it apart from one compiled without."""
    src = tmp_path / "rnn.bp"
    src.write_text((ROOT / "examples" / "rnn.bp").read_text())
    run = subprocess.run(
        [sys.executable, "-m", "bpc", "compile", str(src), "--fast-math"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "_fast_tanh(" in (tmp_path / "rnn.py").read_text()
    (tmp_path / "rnn.py").unlink()
    run = subprocess.run(
        [sys.executable, "-m", "bpc", "compile", str(src), "--fast-math", "--target", "array-api"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--fast-math is for --target numpy" in run.stderr
    assert not (tmp_path / "rnn.py").exists()
    with pytest.raises(ValueError, match="fast_math is for the numpy target"):
        compile_source(TANH, target="array-api", fast_math=True)
    fast = load_file(src, cache=tmp_path / "cache", fast_math=True)
    plain = load_file(src, cache=tmp_path / "cache")
    assert "_fast_tanh(" in Path(fast.__file__).read_text()
    assert "_fast_tanh(" not in Path(plain.__file__).read_text()
