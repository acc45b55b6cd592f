"""The NumPy forms of an outer product into a new array, timed: the gradient of W in
`f = sum((W @ x)**2)` is one, and at n = 1024 it is most of the seed's backward.

    python bench/outer.py [--n 1024] [--repeats 15]

Prints the median time of each form over interleaved repeats. OpenBLAS's threads matter only to
the BLAS forms; run it with OPENBLAS_NUM_THREADS=1 to see them on one core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def forms(n: int) -> dict:
    rng = np.random.default_rng(0)
    q, x = rng.standard_normal(n), rng.standard_normal(n)
    column, row = q[:, None].copy(), x[None, :].copy()
    return {
        "q[:, None] * x": lambda: q[:, None] * x,
        "np.outer(q, x)": lambda: np.outer(q, x),
        "np.dot(column, row) (BLAS, bpc)": lambda: np.dot(column, row),
        "column @ row": lambda: column @ row,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    fns = forms(args.n)
    reference = next(iter(fns.values()))()
    for fn in fns.values():
        np.testing.assert_allclose(fn(), reference, rtol=1e-12)
    number = max(1, int(0.05 / max(_time(next(iter(fns.values())), 1), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            times[name].append(_time(fn, number))
    print(f"| outer product, n = {args.n} | median of {args.repeats} |")
    print("|---|---|")
    for name, ts in times.items():
        print(f"| `{name}` | {statistics.median(ts) * 1e3:.2f} ms |")
    return 0


def _time(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


if __name__ == "__main__":
    raise SystemExit(main())
