"""The coefficients of `_erf`, the helper of the generated modules (templates/erf.py.j2), derived.

`python -m tests.erf_fit` prints them the way the template writes them, and tests/test_erf.py
checks that the template holds what this derives. NumPy has no erf, and Python's `math.erf`, one
number at a time, is slow; `_erf` evaluates polynomials over the whole array, in float64:

- |x| < 1: erf(x) = x * P(2 x**2 - 1), P fitted to erf(a) / a;
- 1 <= |x| < 6, on the pieces [1, 2), [2, 4) and [4, 6): erf(x) = 1 - exp(-x**2) * Q((|x| - mid)
  / half), Q fitted to erfcx(a) = exp(a**2) * erfc(a), which is smooth and slowly varying there;
  erf's error is erfc's relative error times erfc, which is small, so the pieces further out need
  fewer terms;
- from |x| = 6 on, erf(x) rounds to +-1 (1 - erf(6) is 2.2e-17, below half an ulp of 1).

Each polynomial is fitted at Chebyshev points against erf computed to 70 digits with the
standard library's `decimal`, by the series erf(a) = 2/sqrt(pi) exp(-a**2) sum((2 a**2)**n a /
(1*3*...*(2n+1))), whose terms are all positive (nothing cancels). The float64 coefficients are
then refined: the residual, computed in decimal too, is fitted again and added, until what is left
is the rounding of the coefficients themselves. The result is within about 2 ulp of erf in
float64 (tests/test_erf.py measures it against scipy.special.erf).
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

DIGITS = 70
# (lo, hi, degree): the small piece is a polynomial in 2 a**2 - 1, the others in (a - mid) / half
SMALL = (0.0, 1.0, 12)
TAIL = ((1.0, 2.0, 14), (2.0, 4.0, 15), (4.0, 6.0, 9))
POINTS = 400  # Chebyshev points per fit


@functools.cache
def _pi() -> Decimal:
    """pi to DIGITS digits (Gauss-Legendre)."""
    with localcontext() as ctx:
        ctx.prec = DIGITS + 10
        a, b, t, p = Decimal(1), 1 / Decimal(2).sqrt(), Decimal(1) / 4, Decimal(1)
        for _ in range(10):
            a, b, t, p = (a + b) / 2, (a * b).sqrt(), t - p * ((a - b) / 2) ** 2, 2 * p
        return (a + b) ** 2 / (4 * t)


def erf(a: Decimal) -> Decimal:
    """erf(a) for a >= 0, to about DIGITS digits."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        term = total = a
        n, eps = 0, Decimal(10) ** -(DIGITS + 2)
        while term > eps * total:
            n += 1
            term = term * 2 * a * a / (2 * n + 1)
            total += term
        return 2 / _pi().sqrt() * (-a * a).exp() * total


def _erf_over_a(t: Decimal) -> Decimal:
    """erf(a) / a at a = sqrt((t + 1) / 2): the small piece's function of its variable."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        a = ((t + 1) / 2).sqrt()
        return 2 / _pi().sqrt() if a == 0 else erf(a) / a


def _erfcx(a: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = DIGITS
        return (a * a).exp() * (1 - erf(a))


def _polyval(coefs, s: Decimal) -> Decimal:
    """The polynomial with float coefficients (highest degree first) at s, in decimal."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        p = Decimal(0)
        for c in coefs:
            p = p * s + Decimal(c)
        return p


def fit(f, degree: int, rounds: int = 3) -> list[float]:
    """Coefficients (highest degree first) of a polynomial in s on [-1, 1] close to f(s)."""
    k = np.arange(POINTS)
    s = np.cos(np.pi * (k + 0.5) / POINTS)
    exact = [f(Decimal(v)) for v in s]

    def fitted(values) -> np.ndarray:
        series = Chebyshev.fit(s, np.array(values, dtype=np.float64), degree, domain=[-1, 1])
        return series.convert(kind=Polynomial).coef[::-1]

    coefs = fitted([float(v) for v in exact])
    for _ in range(rounds):
        residual = [float(e - _polyval(coefs, Decimal(v))) for e, v in zip(exact, s)]
        coefs = coefs + fitted(residual)
    return [float(c) for c in coefs]


def pieces() -> tuple[list[float], list[tuple[float, float, list[float]]]]:
    """The small piece's coefficients, and (lo, hi, coefficients) for each piece of the tail."""
    small = fit(_erf_over_a, SMALL[2])
    tail = []
    for lo, hi, degree in TAIL:
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        at = lambda s, mid=Decimal(mid), half=Decimal(half): _erfcx(mid + half * s)  # noqa: E731
        tail.append((lo, hi, fit(at, degree)))
    return small, tail


def template_text() -> str:
    """The two tuples of coefficients as templates/erf.py.j2 writes them (black's layout)."""
    small, tail = pieces()
    lines = ["    small = ("] + [f"        {c!r}," for c in small] + ["    )", "    tail = ("]
    for lo, hi, coefs in tail:
        lines += [f"        (\n            {lo!r},\n            {hi!r},\n            ("]
        lines += [f"                {c!r}," for c in coefs]
        lines += ["            ),", "        ),"]
    return "\n".join(lines + ["    )"]) + "\n"


if __name__ == "__main__":
    print(template_text(), end="")
