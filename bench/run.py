"""Benchmarks: generated code against hand-written NumPy, HIPS autograd, PyTorch eager and JAX jit.

    python bench/run.py                 # the full table, written to docs/performance.md
    python bench/run.py --smoke         # tiny sizes, a few repeats: checks that everything runs

Each case computes a value and its gradients (or a vector-Jacobian product). Every system's
gradients are checked against the hand-written reference before anything is timed. Timings are
medians of interleaved repeats (each repeat runs every system once, in turn), and ratios are
taken per repeat against the hand-written NumPy, then their median is reported; a shared, noisy
machine moves all systems of one repeat together, so per-repeat ratios are steadier than ratios
of medians. Peak memory is tracemalloc's peak for one call; cache bytes are what `g_forward`
keeps (PyTorch's: the tensors autograd saves, through saved_tensors_hooks).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402  (bench/cases.py)

import bpc  # noqa: E402


@dataclass
class Result:
    name: str
    size: str
    times: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    cache_bytes: dict[str, int] = field(default_factory=dict)


def _time_once(fn, args, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return (time.perf_counter() - start) / number


def _peak(fn, args) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _check(case, systems, args, rtol=1e-6):
    expected = systems["hand"](*args)
    for name, fn in systems.items():
        got = fn(*args)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(
                np.asarray(g), np.asarray(e), rtol=rtol, atol=1e-9, err_msg=f"{case.name}: {name}"
            )


def run_case(case, size, repeats: int, budget: float) -> Result:
    args = case.inputs(size)
    systems = case.systems(size)
    _check(case, systems, args)
    # Calls per timing so that one timing lasts about `budget` seconds for the slowest system.
    slowest = max(_time_once(fn, args, 1) for fn in systems.values())
    number = max(1, int(budget / max(slowest, 1e-7)))
    result = Result(case.name, case.describe(size))
    for name in systems:
        result.times[name] = []
    for _ in range(repeats):
        for name, fn in systems.items():
            result.times[name].append(_time_once(fn, args, number))
        for name in systems:
            result.ratios.setdefault(name, []).append(
                result.times[name][-1] / result.times["hand"][-1]
            )
    for name in ("hand", "bpc"):
        result.peak[name] = _peak(systems[name], args)
    result.cache_bytes = case.cache_bytes(size, args)
    return result


def _fmt_time(t: float) -> str:
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def table(results: list[Result]) -> str:
    systems = [
        s
        for s in ("bpc", "bpc_fwd", "autograd", "torch", "jax")
        if any(s in r.times for r in results)
    ]
    head = (
        "| model | size | hand NumPy | "
        + " | ".join(systems)
        + " | peak bpc / hand | cache bpc / torch |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        cells = [r.name, r.size, _fmt_time(statistics.median(r.times["hand"]))]
        for s in systems:
            cells.append(f"{statistics.median(r.ratios[s]):.2f}x" if s in r.ratios else "-")
        cells.append(f"{r.peak['bpc'] / max(r.peak['hand'], 1):.2f}")
        cb = r.cache_bytes
        cells.append(
            f"{cb['bpc'] / cb['torch']:.2f}" if cb.get("torch") else f"{cb.get('bpc', 0)} B / -"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    import numpy

    cfg = ""
    try:
        info = numpy.show_config(mode="dicts")
        blas = info.get("Build Dependencies", {}).get("blas", {})
        cfg = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy
        pass
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), "
        f"Python {platform.python_version()}, NumPy {numpy.__version__} ({cfg}), "
        f"bpc {bpc.__version__}; {', '.join(cases.available())}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, 3 repeats, nothing written"
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timing")
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--write", default=str(HERE.parent / "docs" / "performance.md"))
    args = parser.parse_args(argv)
    results = []
    for case in cases.CASES:
        if args.only and args.only not in case.name:
            continue
        for size in case.smoke_sizes if args.smoke else case.sizes:
            results.append(
                run_case(
                    case,
                    size,
                    3 if args.smoke else args.repeats,
                    0.002 if args.smoke else args.budget,
                )
            )
            print(table(results[-1:]).splitlines()[-1], flush=True)
    text = table(results)
    print()
    print(text)
    if not args.smoke:
        Path(args.write).write_text(cases.report(text, machine(), " ".join(sys.argv[1:])))
        print(f"\nwritten to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
