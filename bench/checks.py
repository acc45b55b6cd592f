"""The cost of the argument checks: the generated per-graph `_g_sizes` against the generic
`_shapes(spec, *args)` that generated modules called before dimension expressions (issue 12).

    python bench/checks.py              # the table (about half a minute)
    python bench/checks.py --smoke      # a few repeats: checks that it runs

For each signature it times, per call, with the same arrays every call (the cached path, what
every call after the first costs: a key of classes, shapes and dtypes looked up in a dict) and
with the cache emptied before each call (the first-call path: every argument, axis and
condition checked). Times are medians of interleaved repeats; each ratio is the median of the
per-repeat ratios new / old, so below 1.00 is faster than before.

The old helper is copied below as it was (see `git show 3ee470b^:templates/runtime.py.j2`). It
parsed a signature string with a regex (once per string), and knew names and numbers only: the
LSTM's `Wx: [D, 4*H]` is given to it as `[D, G]`, a name of its own, as it had to be written then.
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bpc import compile_source
from bpc.loader import module_from_text

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# The reference: templates/runtime.py.j2 at 3ee470b^ (before issue 12), unchanged but for the
# black layout of this file.


@functools.cache
def _signature(spec):
    """A graph's declared parameters: (name, kind, dims), a dim an int or a dimension name;
    and the dimensions its slices need to be at least 1, with where they are sliced."""
    spec, *needs = spec.split("\n")
    params = []
    for name, kind, dims in re.findall(r"(\w+): (int)?\[([^\]]*)\]", spec):
        dims = [d.strip() for d in dims.split(",") if d.strip()]
        dims = tuple(int(d) if d.isdigit() else d for d in dims)
        params.append((name, "int" if kind else "float", dims))
    needs = [need.split(" ", 1) for need in needs]
    return spec.split("(", 1)[0], tuple(params), tuple(needs)


# (spec, class, shape and dtype of each argument) -> the sizes: arguments seen before
_checked = {}


def _shapes(spec, *args):
    """Check the arguments against the graph's declared shapes and dtypes; return the sizes of
    its dimensions, in order of first appearance. Arguments like ones seen before pass at once.
    """
    # a Python number has no shape or dtype: its class is all that is checked
    key = [(a.__class__, getattr(a, "shape", 0), getattr(a, "dtype", 0)) for a in args]
    key = (spec, *key)
    sizes = _checked.get(key)
    if sizes is None:
        sizes = _check(spec, args)
        if len(_checked) > 1000:
            _checked.clear()
        _checked[key] = sizes
    return sizes


def _check(spec, args):  # noqa: C901 - as it was
    graph, params, needs = _signature(spec)
    sizes, source, dtype = {}, {}, None
    for (name, kind, dims), value in zip(params, args):
        if isinstance(value, np.matrix | np.ma.MaskedArray):
            # `*` of two matrices is a matrix product; a masked array's sums skip elements
            raise ValueError(
                f"{graph}: {name} must be a plain NumPy array, got {type(value).__name__}"
            )
        if isinstance(value, (np.ndarray, np.generic)):
            shape, found = value.shape, value.dtype
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            # a Python number: weakly typed, it takes the arrays' dtype
            if kind == "int" and not isinstance(value, int):
                raise ValueError(f"{graph}: {name} must hold integers, got a float")
            shape, found = (), None
        else:
            kind_of = type(value).__name__
            raise ValueError(f"{graph}: {name} must be a NumPy array, got {kind_of}")
        if len(shape) != len(dims):
            declared = "[" + ", ".join(map(str, dims)) + "]"
            raise ValueError(
                f"{graph}: {name} must be {len(dims)}-d, shaped {declared}; got shape {shape}"
            )
        if kind == "int" and found is not None and found.kind not in "iu":
            raise ValueError(f"{graph}: {name} must hold integers, got {found}")
        if kind == "float" and found is not None:
            if found.kind != "f":
                raise ValueError(f"{graph}: {name} must hold floats, got {found}")
            if shape:
                if dtype is None:
                    dtype = (name, found)
                elif found != dtype[1]:
                    raise ValueError(
                        f"{graph}: {name} is {found} but {dtype[0]} is {dtype[1]}; "
                        "pass float arrays of one dtype"
                    )
        for axis, (dim, size) in enumerate(zip(dims, shape)):
            if dim.__class__ is int:
                if size != dim:
                    declared = "[" + ", ".join(map(str, dims)) + "]"
                    raise ValueError(
                        f"{graph}: {name} must be shaped {declared}; axis {axis} is {size}, "
                        f"not {dim}"
                    )
            elif dim in sizes:
                if sizes[dim] != size:
                    raise ValueError(
                        f"{graph}: {name} has shape {shape}, but its axis {axis} is dimension "
                        f"{dim}, which is {sizes[dim]} in {source[dim]}"
                    )
            else:
                sizes[dim] = size
                source[dim] = name
    for dim, where in needs:
        if sizes[dim] < 1:
            raise ValueError(f"{graph}: {where} needs {dim} >= 1, but {dim} is {sizes[dim]}")
    return tuple(sizes.values())


# ---------------------------------------------------------------------------------------------
# The signatures timed: the graph compiled now, the spec the old helper was given, the arrays

SEED = (ROOT / "examples" / "seed.bp").read_text()
LSTM = """graph lstm(x: [N, D], h: [N, H], c: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> y {
    y = sum(x @ Wx + h @ Wh + b) + sum(c)
}
"""
LSTM_SPEC = "lstm(x: [N, D], h: [N, H], c: [N, H], Wx: [D, G], Wh: [H, G], b: [G])"
ATTENTION = """graph attention(q: [S, d], k: [T, d], v: [T, m]) -> y {
    y = sum(softmax(q @ k.T, axis=1) @ v)
}
"""
ATTENTION_SPEC = "attention(q: [S, d], k: [T, d], v: [T, m])"


def signatures(rng):
    """(label, graph name, bp source, old spec, arguments) for each signature timed."""
    n, N, D, H, S, d = 64, 32, 128, 128, 128, 64
    return [
        ("seed, W [n, n], x [n]", "seed", SEED, "seed(W: [n, m], x: [m])", (
            rng.standard_normal((n, n)), rng.standard_normal(n)),
         "n = 64"),
        ("lstm, 6 params, Wx [D, 4*H]", "lstm", LSTM, LSTM_SPEC, (
            rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
            rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)),
            rng.standard_normal(4 * H)),
         "N = 32, D = H = 128"),
        ("attention, q [S, d], k [T, d], v [T, m]", "attention", ATTENTION, ATTENTION_SPEC, (
            rng.standard_normal((S, d)), rng.standard_normal((S, d)),
            rng.standard_normal((S, d))),
         "S = T = 128, d = m = 64"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Timing


def _per_call(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _calls(module, name: str, spec: str, args: tuple) -> dict:
    """The four ways timed, as functions of no arguments."""
    sizes, check = getattr(module, f"_{name}_sizes"), getattr(module, f"_{name}_check")
    seen = module._seen
    assert check(*args) == sizes(*args) and _check(spec, args)  # both take these arguments

    def new_first():
        seen.clear()
        return sizes(*args)

    def old_first():
        _checked.clear()
        return _shapes(spec, *args)

    return {
        "new cached": lambda: sizes(*args),
        "old cached": lambda: _shapes(spec, *args),
        "new first": new_first,
        "old first": old_first,
    }


def measure(calls: dict, repeats: int, budget: float) -> dict[str, list[float]]:
    """Per-call times of each way, `repeats` interleaved rounds of about `budget` seconds each."""
    number = {k: max(1, int(budget / max(_per_call(f, 200), 1e-9))) for k, f in calls.items()}
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            times[k].append(_per_call(f, number[k]))
    return times


def _ratio(times, new: str, old: str) -> float:
    return statistics.median(a / b for a, b in zip(times[new], times[old]))


def _us(ts: list[float]) -> str:
    return f"{statistics.median(ts) * 1e6:.2f} us"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="3 short repeats")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timing")
    args = parser.parse_args(argv)
    repeats, budget = (3, 0.002) if args.smoke else (args.repeats, args.budget)
    print(
        "| signature | sizes | cached: _g_sizes | old _shapes | new / old "
        "| first call: _g_sizes | old _shapes | new / old |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, name, source, spec, arrays, sizes in signatures(np.random.default_rng(0)):
        module = module_from_text(compile_source(source, f"{name}.bp"), f"bpc_bench_{name}")
        times = measure(_calls(module, name, spec, arrays), repeats, budget)
        print(
            f"| {label} | {sizes} | {_us(times['new cached'])} | {_us(times['old cached'])} "
            f"| {_ratio(times, 'new cached', 'old cached'):.2f}x | {_us(times['new first'])} "
            f"| {_us(times['old first'])} | {_ratio(times, 'new first', 'old first'):.2f}x |"
        )
    print(f"\n{repeats} interleaved repeats of about {budget} s each; medians")
    return 0


if __name__ == "__main__":
    sys.exit(main())
