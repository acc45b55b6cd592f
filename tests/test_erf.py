"""`_erf`, the vectorized error function the generated modules define (templates/erf.py.j2),
against scipy.special.erf: within a few ulp in float64 over the whole line, tiny and huge
arguments, negative ones, signed zeros, inf and nan; float32 stays float32; and a compiled
module that calls erf on numbers and arrays gets the same values."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import special

from bpc.emit import _environment
from tests import erf_fit
from tests.support import load

EPS = np.finfo(np.float64).eps


def _template() -> str:
    """The helper's text as a module holds it (the template rendered: its blocks are the parts
    that the array-api target's erf_xp.py.j2 replaces)."""
    return _environment().get_template("erf.py.j2").render()


def _helper():
    namespace = {"np": np}
    exec(_template(), namespace)  # the helper's text, as a module defines it
    return namespace["_erf"]


_erf = _helper()


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    """The largest error, in units of float64's epsilon relative to the true value (to the
    smallest normal number for subnormal values)."""
    scale = np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - want) / scale) / EPS)


@pytest.mark.parametrize(
    "x",
    [
        np.linspace(-30.0, 30.0, 600_001),
        np.geomspace(1e-300, 30.0, 100_001),
        -np.geomspace(1e-300, 30.0, 100_001),
        np.linspace(0.9, 1.1, 20_001),  # around the pieces' edges
        np.linspace(1.9, 2.1, 20_001),
        np.linspace(3.9, 4.1, 20_001),
        np.linspace(5.8, 6.2, 20_001),
        np.random.default_rng(0).standard_normal(100_000) * 3,
    ],
    ids=["wide", "positive", "negative", "edge 1", "edge 2", "edge 4", "edge 6", "normal"],
)
def test_float64_within_a_few_ulp_of_scipy(x):
    got = _erf(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    assert _ulps(got, special.erf(x)) <= 3.0  # scipy's own error is about 1 ulp


def test_odd_and_saturating():
    x = np.geomspace(1e-10, 30.0, 10_001)
    np.testing.assert_array_equal(_erf(-x), -_erf(x))
    assert np.all(_erf(np.linspace(6.0, 1e300, 1001)) == 1.0)
    assert np.all(np.abs(_erf(x)) <= 1.0)
    assert np.all(np.diff(_erf(np.linspace(-7, 7, 100_001))) >= 0)  # monotone


def test_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, np.finfo(float).max])
    got = _erf(x)
    np.testing.assert_array_equal(got[:4], [0.0, -0.0, 1.0, -1.0])
    assert math.copysign(1.0, got[1]) == -1.0  # erf(-0.0) is -0.0
    assert np.isnan(got[4])
    assert got[5] == special.erf(5e-324) and got[6] == -got[5] and got[7] == 1.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (underflow is fine)
        _erf(x)  # no warning on any of them


def test_dtypes_and_shapes():
    x32 = np.linspace(-5, 5, 10_001, dtype=np.float32)
    got = _erf(x32)
    assert got.dtype == np.float32
    want = special.erf(x32.astype(np.float64)).astype(np.float32)
    assert np.max(np.abs(got - want)) == 0.0  # computed in float64, then rounded once
    assert _erf(np.arange(-3, 4)).dtype == np.float64  # integers give float64, as np.exp does
    assert _erf(np.float32(0.5)).dtype == np.float32
    zero_d = _erf(np.array(0.5))
    assert np.ndim(zero_d) == 0 and zero_d == special.erf(0.5)
    assert _erf(np.ones((2, 0, 3))).shape == (2, 0, 3)
    assert _erf(np.array([[0.5, -2.5]]).T).shape == (2, 1)


def test_a_compiled_module_computes_erf_on_arrays_and_numbers():
    module = load(
        "graph f(x: [n], s: []) -> (y, z, w) {\n"
        "    y = erf(x)\n"
        "    z = erf(s)\n"
        "    w = erf(n / 2)\n"
        "}\n"
    )
    x = np.linspace(-4, 4, 101)
    y, z, w = module.f(x, 0.3)
    np.testing.assert_allclose(y, special.erf(x), rtol=4 * EPS, atol=0)
    assert z == math.erf(0.3) and w == math.erf(101 / 2)
    y32, _, _ = module.f(x.astype(np.float32), 0.3)
    assert y32.dtype == np.float32


_NUMBER = re.compile(r"-?\d+\.\d*(?:e-?\d+)?")


def test_the_template_holds_the_derived_coefficients():
    """`python -m tests.erf_fit` derives the coefficients again (about a second): the template
    holds them in the layout it prints, each within 4 ulp of the derived one. (The fits solve
    least-squares problems through the machine's BLAS, whose kernels differ by CPU: on a CPU
    with AVX-512 one coefficient of 60 came out an ulp away.)"""
    derived = erf_fit.template_text()
    template = _template()
    pattern = re.escape(_NUMBER.sub("#", derived)).replace("\\#", "#").replace("#", _NUMBER.pattern)
    found = re.search(pattern, template)
    assert found is not None, "the template's coefficients are not laid out as erf_fit prints them"
    held = np.array([float(c) for c in _NUMBER.findall(found.group(0))])
    want = np.array([float(c) for c in _NUMBER.findall(derived)])
    assert held.size == want.size == 60
    np.testing.assert_array_max_ulp(held, want, maxulp=4)
