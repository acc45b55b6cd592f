"""The NumPy kernels bpc may emit for cheap math, timed against one another in float64 and float32:
powers, softplus and its gradient, the sigmoid, a quotient by a number, two-operand einsum against
`@`, the sums of products that bpc contracts (`sum(a * b, axis=0)` as `np.einsum("ij,ij->j")`),
the sums over one axis of a matrix that it writes as products with ones (`x @ np.ones(D)`), and
the sums of every element that it writes as `np.einsum("i->", x)`.

    python bench/kernels.py [--n 1000000] [--repeats 15] [--smoke]

Each family's candidates compute one function; before anything is timed, each is checked on
ordinary and extreme inputs (|x| up to 1e4) against a float64 reference, with every floating-point
warning an error, so a form that overflows on the way (`1 / (1 + exp(-x))`) is marked unstable
and not chosen. Times are medians of interleaved repeats (every candidate of a family once per
repeat, in turn). On a shared machine the absolute figures drift between runs; read the ratios
within one family.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from formulations.activations import LOG1P_F32_VECTORIZED

Kernel = Callable[..., np.ndarray]


# The matrices whose sums over one axis are timed (`sums_as_products`): 32 x 32 is where a product
# with ones and the sum take about as long; short rows are where NumPy's sum is slowest.
SUMMED = ((32, 32), (64, 128), (1000, 1000), (10000, 10))
# The vectors whose sums of every element are timed: 4096 is where np.einsum and the sum take
# about as long.
WHOLE = (1024, 4096, 8192, 1_000_000)


# ---------------------------------------------------------------------------------------------
# The candidates, by family: name -> function of the arrays `inputs(family)` makes


def _softplus_inplace(x):
    t = np.abs(x)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    t += np.maximum(x, 0)
    return t


def _sigmoid_tanh_inplace(x):
    t = x * 0.5
    np.tanh(t, out=t)
    t *= 0.5
    t += 0.5
    return t


def _sigmoid_recip_inplace(x):
    t = np.negative(x)
    np.exp(t, out=t)
    t += 1
    np.reciprocal(t, out=t)
    return t


def _sigmoid_max_e(x):
    """From e = exp(-|x|): maximum(e, x >= 0) / (1 + e), in place: no np.where."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    t = np.maximum(e, x >= 0)
    e += 1
    t /= e
    return t


def _sigmoid_of_e(x):
    e = np.exp(-np.abs(x))
    return np.maximum(e, x >= 0) / (1 + e)


def _sigmoid_quiet(x, reciprocal=False):
    """1 / (1 + exp(-x)) in one array, exp's overflow (to inf, and the value 0) not warned of:
    bpc's `_sigmoid` (templates/sigmoid.py.j2); with `reciprocal`, the last pass
    np.reciprocal, as `_sigmoid` had it until 2026-12-01."""
    t = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1
    return np.reciprocal(t, out=t) if reciprocal else np.divide(1, t, out=t)


def _sigmoid_clipped(x):
    """1 / (1 + exp(-x)) in one array, x raised to log of the smallest normal number first, so
    that exp never overflows: bpc's `_sigmoid` until 2026-11-30, a pass more."""
    t = np.maximum(x, np.finfo(np.result_type(x, 1.0)).minexp * 0.6931471805599453)
    np.negative(t, out=t)
    np.exp(t, out=t)
    t += 1
    return np.reciprocal(t, out=t)


def _softplus_log_corrected(x):
    """max(x, 0) + log1p(e) with log1p(e) as log(u) - ((u - 1) - e) / u, u = 1 + e: np.log is
    vectorized where np.log1p is not; the correction restores log1p's accuracy."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    u = 1 + e
    t = u - 1
    t -= e
    t /= u
    np.log(u, out=u)
    u -= t
    u += np.maximum(x, 0)
    return u


def _softplus_by_dtype(x):
    """bpc's: np.log1p in float64, where it is the faster, and in float32 where NumPy
    vectorizes it (AVX-512); elsewhere in float32 the corrected np.log (`_log1p_unit`,
    templates/log1p_unit.py.j2, which asks `numpy.lib.introspect` as this does)."""
    if x.dtype == np.float32 and not LOG1P_F32_VECTORIZED:
        return _softplus_log_corrected(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _dsoftplus_max_e(x, e, y, g):
    """g * (maximum(e, x >= 0) / (1 + e)), reusing the forward's e = exp(-|x|): no np.where."""
    return g * (np.maximum(e, x >= 0) / (1 + e))


def _sigmoid_of_e(x):
    """From e = exp(-|x|): where(x >= 0, 1, e) / (1 + e)."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    t = np.where(x >= 0, 1.0, e).astype(x.dtype, copy=False)
    e += 1
    t /= e
    return t


def _dsoftplus_exp_xy(x, e, y, g):
    """g * exp(x - y), y = softplus(x): x - y <= 0, no overflow; from the forward's y alone."""
    t = x - y
    np.exp(t, out=t)
    t *= g
    return t


def _dsoftplus_tanh(x, e, y, g):
    """g * sigmoid(x), the sigmoid in the tanh form, in place."""
    t = _sigmoid_tanh_inplace(x)
    t *= g
    return t


def _dsoftplus_from_e(x, e, y, g):
    """g * where(x >= 0, 1, e) / (1 + e), reusing the forward's e = exp(-|x|)."""
    t = np.where(x >= 0, g, g * e)
    t /= 1 + e
    return t


def _dsoftplus_expm1(x, e, y, g):
    """g * -expm1(-y): sigmoid(x) = 1 - exp(-softplus(x)), from the forward's y alone."""
    t = np.negative(y)
    np.expm1(t, out=t)
    t *= g
    np.negative(t, out=t)
    return t


def _dsoftplus_exp(x, e, y, g):
    """g * (1 - exp(-y)), from y alone (less accurate than expm1 where y is tiny)."""
    t = np.negative(y)
    np.exp(t, out=t)
    np.subtract(1, t, out=t)
    t *= g
    return t


def _tanh_exp(x):
    """tanh through exp in float64: about twice as fast as np.tanh here (NumPy vectorizes exp,
    not float64 tanh), but its relative error grows for |x| below 1e-3 (1 - exp(-2x)
    cancels), so bpc keeps np.tanh."""
    if x.dtype != np.float64:
        return np.tanh(x)
    with np.errstate(over="ignore"):
        t = np.multiply(x, -2.0)
        np.exp(t, out=t)
        t += 1.0
        np.divide(2.0, t, out=t)
        t -= 1.0
    return t


def _two(spec):
    return lambda a, b: np.einsum(spec, a, b, optimize=True)


FAMILIES: dict[str, dict[str, Kernel]] = {
    "x**3": {
        "x**3 (np.power)": lambda x: x**3,
        "x * x * x (bpc)": lambda x: x * x * x,
    },
    "x**4": {
        "x**4 (np.power)": lambda x: x**4,
        "t = x * x; t * t (bpc)": lambda x: (lambda t: t * t)(x * x),
    },
    "x**1.5": {
        "x**1.5 (np.power)": lambda x: x**1.5,
        "x * np.sqrt(x) (bpc)": lambda x: x * np.sqrt(x),
    },
    "x**-0.5": {
        "x**-0.5 (np.power)": lambda x: x**-0.5,
        "1 / np.sqrt(x) (bpc)": lambda x: 1 / np.sqrt(x),
    },
    "x**2": {
        "x**2 (NumPy's np.square)": lambda x: x**2,
        "x * x (bpc)": lambda x: x * x,
    },
    "softplus": {
        "np.logaddexp(0, x)": lambda x: np.logaddexp(0, x),
        "np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))": lambda x: np.maximum(x, 0)
        + np.log1p(np.exp(-np.abs(x))),
        "the same in place (out=)": _softplus_inplace,
        "log1p(e) as log(u) - (u - 1 - e) / u, u = 1 + e, in place": _softplus_log_corrected,
        "np.log1p, or log(u) - (u - 1 - e) / u in float32 where log1p is not vectorized (bpc)": (
            _softplus_by_dtype
        ),
    },
    "g * sigmoid(x), softplus's gradient": {
        "tanh form of x, in place": _dsoftplus_tanh,
        "where(x >= 0, g, g * e) / (1 + e), e = exp(-|x|) cached": _dsoftplus_from_e,
        "g * (np.maximum(e, x >= 0) / (1 + e)), e cached": _dsoftplus_max_e,
        "g * np.exp(x - y), y = softplus(x) cached (bpc)": _dsoftplus_exp_xy,
        "-(g * np.expm1(-y)), y = softplus(x) cached": _dsoftplus_expm1,
        "g * (1 - np.exp(-y)), y cached": _dsoftplus_exp,
    },
    "sigmoid": {
        "0.5 * np.tanh(0.5 * x) + 0.5": lambda x: 0.5 * np.tanh(0.5 * x) + 0.5,
        "the tanh form in place (out=)": _sigmoid_tanh_inplace,
        "1 / (1 + np.exp(-x)) in place": _sigmoid_recip_inplace,
        "where(x >= 0, 1, e) / (1 + e), e = exp(-|x|)": _sigmoid_of_e,
        "np.maximum(e, x >= 0) / (1 + e), e = np.exp(-np.abs(x))": _sigmoid_of_e,
        "the maximum form in place (out=)": _sigmoid_max_e,
        "1 / (1 + exp(-x)), x clipped at log(tiny), in place": _sigmoid_clipped,
        "1 / (1 + exp(-x)) in place, overflow not warned of (bpc)": _sigmoid_quiet,
        "the same, its last pass np.reciprocal": lambda x: _sigmoid_quiet(x, reciprocal=True),
    },
    "x / n, a number (a mean's count)": {
        "x / 1000 (np.divide)": lambda x: x / 1000,
        "x * (1 / 1000) (bpc)": lambda x: x * (1 / 1000),
    },
    "x**-1": {
        "x**-1 (NumPy's np.reciprocal)": lambda x: x**-1,
        "1 / x (bpc)": lambda x: 1 / x,
    },
    "tanh": {
        "np.tanh (bpc)": np.tanh,
        "2 / (1 + np.exp(-2x)) - 1 in place, float64 (not emitted: small values lost)": _tanh_exp,
    },
    "einsum ij,jk->ik, 32 x 16 @ 16 x 32": {
        "np.einsum(optimize=True)": _two("ij,jk->ik"),
        "np.einsum": lambda a, b: np.einsum("ij,jk->ik", a, b),
        "a @ b (bpc)": lambda a, b: a @ b,
    },
    "einsum bqd,bkd->bqk, 4 x 32 x 16": {
        "np.einsum(optimize=True)": _two("bqd,bkd->bqk"),
        "np.einsum": lambda a, b: np.einsum("bqd,bkd->bqk", a, b),
        "a @ np.swapaxes(b, -1, -2) (bpc)": lambda a, b: a @ np.swapaxes(b, -1, -2),
    },
    "einsum ij,ij->i, 32 x 16": {
        "np.einsum(optimize=True)": _two("ij,ij->i"),
        "np.einsum": lambda a, b: np.einsum("ij,ij->i", a, b),
        "np.vecdot(a, b) (bpc)": lambda a, b: np.vecdot(a, b),
        "(a * b).sum(axis=1)": lambda a, b: (a * b).sum(axis=1),
        "(a[:, None, :] @ b[:, :, None])[:, 0, 0]": lambda a, b: (a[:, None, :] @ b[:, :, None])[
            :, 0, 0
        ],
    },
    "einsum ij,ij->i, 1000 x 1000": {
        "np.einsum(optimize=True)": _two("ij,ij->i"),
        "np.einsum": lambda a, b: np.einsum("ij,ij->i", a, b),
        "np.vecdot(a, b) (bpc)": lambda a, b: np.vecdot(a, b),
        "(a * b).sum(axis=1)": lambda a, b: (a * b).sum(axis=1),
    },
    "sum(a * b, axis=0), ij,ij->j, 64 x 128": {
        "(a * b).sum(axis=0)": lambda a, b: (a * b).sum(axis=0),
        'np.einsum("ij,ij->j", a, b) (bpc)': lambda a, b: np.einsum("ij,ij->j", a, b),
        "np.vecdot(a.T, b.T)": lambda a, b: np.vecdot(a.T, b.T),
    },
    "sum(a * b, axis=0), ij,ij->j, 1000 x 1000": {
        "(a * b).sum(axis=0)": lambda a, b: (a * b).sum(axis=0),
        'np.einsum("ij,ij->j", a, b) (bpc)': lambda a, b: np.einsum("ij,ij->j", a, b),
    },
    **{
        f"sum(x, axis={axis}), {rows} x {cols}": {
            f"x.sum(axis={axis})": lambda x, axis=axis: x.sum(axis=axis),
            (
                "x @ np.ones(cols) (bpc above 32 x 32)"
                if axis
                else "np.ones(rows) @ x (bpc above 32 x 32)"
            ): (
                (lambda x: x @ np.ones(x.shape[1], x.dtype))
                if axis
                else (lambda x: np.ones(x.shape[0], x.dtype) @ x)
            ),
            (
                'np.einsum("ij->i", x)' if axis else 'np.einsum("ij->j", x)'
            ): lambda x, axis=axis: np.einsum("ij->i" if axis else "ij->j", x),
        }
        for axis in (1, 0)
        for rows, cols in SUMMED
    },
    **{
        f"sum(x), {n}": {
            "x.sum()": lambda x: x.sum(),
            'np.einsum("i->", x) (bpc from 8192)': lambda x: np.einsum("i->", x),
        }
        for n in WHOLE
    },
    "einsum i,j->ij, 32 and 16": {
        "np.einsum(optimize=True)": _two("i,j->ij"),
        "np.einsum": lambda a, b: np.einsum("i,j->ij", a, b),
        "a[:, None] * b": lambda a, b: a[:, None] * b,
        "np.dot(a[:, None], b[None, :]) (bpc's outer)": lambda a, b: np.dot(a[:, None], b[None, :]),
    },
}


# ---------------------------------------------------------------------------------------------
# Inputs and the stability check


def _softplus64(x: np.ndarray) -> np.ndarray:
    return np.array([max(v, 0.0) + math.log1p(math.exp(-abs(v))) for v in x.astype(float)])


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    return np.array(
        [1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in x]
    )


def inputs(family: str, n: int, dtype, rng, extreme: bool = False) -> tuple[np.ndarray, ...]:
    """The arguments of a family's candidates: random values, or extreme ones with `extreme`."""
    if family.startswith("sum(x"):
        shape = tuple(int(d) for d in family.split(", ")[-1].split(" x "))
        return (rng.standard_normal(shape).astype(dtype),)
    if family.startswith(("einsum", "sum(a * b")):
        shapes = {
            "ij,jk": ((32, 16), (16, 32)),
            "bqd,bkd": ((4, 32, 16), (4, 32, 16)),
            "ij,ij->j": ((64, 128), (64, 128)),
            "ij,ij": ((32, 16), (32, 16)),
            "i,j->": ((32,), (16,)),
        }
        key = next(k for k in shapes if k in family)
        if "1000" in family:
            return tuple(rng.standard_normal((1000, 1000)).astype(dtype) for _ in range(2))
        return tuple(rng.standard_normal(s).astype(dtype) for s in shapes[key])
    if family.startswith("x**"):
        return (rng.uniform(0.5, 2.0, n).astype(dtype),)
    if extreme:
        big = [-1e4, -800.0, -100.0, -40.0, -1e-8, 0.0, 1e-8, 40.0, 100.0, 800.0, 1e4]
        x = np.array(big + list(np.linspace(-30, 30, 61)), dtype=dtype)
    else:
        x = (rng.standard_normal(n) * 4).astype(dtype)
    if family.startswith("g * sigmoid"):
        e = np.exp(-np.abs(x))
        y = np.maximum(x, 0) + np.log1p(e)
        return x, e, y, rng.standard_normal(x.shape).astype(dtype)
    return (x,)


def reference(family: str, args: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """The family's function in float64 from Python's math, or None (the first candidate's)."""
    if family == "softplus":
        return _softplus64(args[0])
    if family == "sigmoid":
        return _sigmoid64(args[0].astype(float))
    if family == "tanh":
        return np.array([math.tanh(v) for v in args[0].astype(float)])
    if family.startswith("g * sigmoid"):
        return _sigmoid64(args[0].astype(float)) * args[3]
    return None


def accuracy(family: str, fn: Kernel, dtype) -> tuple[float, float] | None:
    """The largest error of `fn` on extreme and random inputs, in units of the dtype's epsilon:
    relative to each value of the reference (where it is a normal number), and relative to the
    largest value (an array's), as (relative, absolute); None where a floating-point warning
    other than underflow is raised or a value is not finite."""
    rng = np.random.default_rng(1)
    info = np.finfo(dtype)
    rel = norm = 0.0
    for extreme in (True, False):
        args = inputs(family, 2000, dtype, rng, extreme)
        want = reference(family, args)
        if want is None:
            want = next(iter(FAMILIES[family].values()))(*(a.astype(float) for a in args))
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                got = fn(*args)
        except FloatingPointError:
            return None
        if got.dtype != dtype or not np.all(np.isfinite(got)):
            return None
        err = np.abs(got.astype(float) - want)
        normal = np.abs(want) >= info.tiny
        rel = max(rel, float(np.max(err[normal] / np.abs(want[normal]), initial=0.0)))
        norm = max(norm, float(np.max(err)) / max(float(np.max(np.abs(want))), info.tiny))
    if family.startswith(("einsum", "sum(")):  # (sums: an error relative to the largest)
        rel = norm
    return rel / float(info.eps), norm / float(info.eps)


def _time(fn: Kernel, args, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return (time.perf_counter() - start) / number


def measure(family: str, n: int, dtype, repeats: int) -> dict[str, float]:
    """The median time of each candidate of `family` over interleaved repeats."""
    fns = FAMILIES[family]
    args = inputs(family, n, dtype, np.random.default_rng(0))
    first = next(iter(fns.values()))
    number = max(1, int(0.02 / max(_time(first, args, 1), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_time(fn, args, number))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _shown(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def _error(e: tuple[float, float] | None) -> str:
    """The relative error, or the absolute one where small values are lost (a sigmoid that
    gives 0 for exp(-40))."""
    if e is None:
        return "unstable"
    rel, norm = e
    return f"{rel:.0f} eps" if rel < 1e3 else f"{norm:.0f} eps abs., small values lost"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="elements (elementwise kernels)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two repeats")
    parser.add_argument("--only", default="", help="the families whose name contains this")
    args = parser.parse_args(argv)
    n, repeats = (1000, 2) if args.smoke else (args.n, args.repeats)
    print(
        f"Kernels on {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; {n:,} elements; medians of {repeats} interleaved repeats."
    )
    print()
    print("| family | kernel | float64 | float32 | error f64 | error f32 |")
    print("|---|---|---|---|---|---|")
    for family, fns in FAMILIES.items():
        if args.only not in family:
            continue
        t64 = measure(family, n, np.float64, repeats)
        t32 = measure(family, n, np.float32, repeats)
        for name, fn in fns.items():
            e64, e32 = (accuracy(family, fn, d) for d in (np.float64, np.float32))
            row = [family, f"`{name}`", _shown(t64[name]), _shown(t32[name])]
            print("| " + " | ".join(row + [_error(e64), _error(e32)]) + " |")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
