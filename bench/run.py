"""Benchmarks: generated code against hand-written NumPy, HIPS autograd, PyTorch eager and JAX jit.

    python bench/run.py                 # the full table, written to docs/performance.md
    python bench/run.py --smoke         # tiny sizes, a few repeats: checks that everything runs
    python bench/run.py --repeats 3 --budget 0.02 --write /tmp/perf.md   # a quick look
    python bench/run.py --formulations-only   # natural formulations against tuned references
                                              # (bench/formulations/), float64 and float32

    pip install -e '.[bench]'           # autograd and JAX (CPU); PyTorch is optional, add it with
    pip install torch --index-url https://download.pytorch.org/whl/cpu

A system that is not installed is left out (its column shows "-"); so is bpc on a model it
cannot compile yet (bench/rnn_cases.py: the RNN and the LSTM wait for loops). PyTorch's fused
nn.RNN and nn.LSTM have a column of their own, "torch fused", which the other models leave empty.

Each case computes a value and its gradients (or a vector-Jacobian product). Every system's
results are checked against the hand-written reference, in float64, before anything is timed;
each function is then called twice more, so that JAX's compilation (float64, jitted) is not timed.
Timings are medians of interleaved repeats (each repeat runs every system once, in turn, each for
about `--budget` seconds after a `--pause` that lets the previous system's spinning threads go
to sleep), and ratios are taken per repeat against the hand-written NumPy, then
their median is reported; a shared, noisy machine moves all systems of one repeat together, so
per-repeat ratios are steadier than ratios of medians. The generated forward-only function is
timed the same way against a hand-written forward, with and without (`--no-checks`) its argument
checks. bpc's modules are compiled for each case's sizes (`--dim`). Peak memory is tracemalloc's peak for one
call; cache bytes are the distinct arrays `g_forward` keeps (PyTorch's: the storages autograd
saves, through saved_tensors_hooks).

The argument checks alone, per call, against the generic check modules had before dimension
expressions: `python bench/checks.py` (bench/compile_time.py times the compiler, bench/outer.py
the NumPy forms of an outer product).
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
import conv_cases  # noqa: E402  (bench/conv_cases.py)
import formulations  # noqa: E402  (bench/formulations/)
import rnn_cases  # noqa: E402  (bench/rnn_cases.py)

import bpc  # noqa: E402

RIVALS = ("autograd", "torch", "torch fused", "jax")
TARGETS = {"median": 1.00, "max": 1.15, "fwd": 1.05}


@dataclass
class Result:
    name: str
    size: str
    times: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    cache_bytes: dict[str, int] = field(default_factory=dict)

    def ratio(self, system: str) -> float | None:
        return statistics.median(self.ratios[system]) if system in self.ratios else None

    def fastest_rival(self) -> tuple[str, float] | None:
        rivals = [(s, self.ratio(s)) for s in RIVALS if s in self.ratios]
        return min(rivals, key=lambda r: r[1]) if rivals else None


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


def _check(case, label, fns, args, rtol=1e-6, atol=1e-9, dtype=np.float64):
    """Every function of `fns` gives what fns["hand"] gives, as arrays of `dtype`."""
    expected = [np.asarray(e) for e in _results(fns["hand"](*args["hand"]))]
    for name, fn in fns.items():
        got = [np.asarray(g) for g in _results(fn(*args[name]))]
        assert len(got) == len(expected), f"{case.name} {label}: {name} gives {len(got)} results"
        for i, (e, g) in enumerate(zip(expected, got)):
            assert g.dtype == dtype, f"{case.name} {label}: {name} result {i} is {g.dtype}"
            np.testing.assert_allclose(
                g, e, rtol=rtol, atol=atol, err_msg=f"{case.name} {label}: {name}, result {i}"
            )


def _results(value) -> tuple:
    """A function's results, flat: a tuple among them (a generated module's gradients) is read
    as its items."""
    if not isinstance(value, (tuple, list)):
        return (value,)
    return tuple(r for v in value for r in (v if isinstance(v, tuple) else (v,)))


def run_case(case, size, repeats: int, budget: float, pause: float = 0.0) -> Result:
    """A case without forward-only functions (`forwards` empty) times its systems alone; one with
    a `dtype` and a `tolerance` (bench/formulations/) is checked in that dtype, to that tolerance.
    Peak memory is measured for `hand` and every system whose name starts with `bpc`."""
    inputs = case.inputs(size)
    grads = case.systems(size)
    forwards = case.forwards(size)
    fns = {**grads, **{f"{name}_fwd": fn for name, fn in forwards.items()}}
    args = {}
    for name, fn in fns.items():
        raw = case.forward_args(inputs) if name.endswith("_fwd") else inputs
        args[name] = fn.prepare(raw) if hasattr(fn, "prepare") else raw
    tolerance = getattr(case, "tolerance", {})
    _check(case, "gradients", grads, args, dtype=getattr(case, "dtype", np.float64), **tolerance)
    if forwards:
        _check(case, "forward", forwards, {name: args[f"{name}_fwd"] for name in forwards})
    # Calls per timing, so that one timing of each system lasts about `budget` seconds.
    number = {}
    for name, fn in fns.items():
        _time_once(fn, args[name], 2)  # warm: JAX has compiled, caches are filled
        number[name] = max(1, int(budget / max(_time_once(fn, args[name], 1), 1e-7)))
    result = Result(case.name, case.describe(size))
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(pause)  # the previous system's thread pools stop spinning
            result.times.setdefault(name, []).append(_time_once(fn, args[name], number[name]))
        t = {name: times[-1] for name, times in result.times.items()}
        for name in grads:
            result.ratios.setdefault(name, []).append(t[name] / t["hand"])
        if not forwards:
            continue
        for name in ("bpc_fwd", "unchecked_fwd"):
            if name in t:  # not where bpc cannot compile the model
                result.ratios.setdefault(name, []).append(t[name] / t["hand_fwd"])
        result.ratios.setdefault("hand_bwd", []).append(t["hand"] / t["hand_fwd"])
    for name in grads:
        if name == "hand" or name.startswith("bpc"):
            result.peak[name] = _peak(fns[name], args[name])
    result.cache_bytes = case.cache_bytes(size, inputs)
    return result


def _fmt_time(t: float) -> str:
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


HEAD = [
    "model",
    "size",
    "hand NumPy",
    "bpc",
    "bpc --fast-math",
    *RIVALS,
    "bpc <= fastest rival",
    "hand fwd",
    "bpc fwd / hand fwd",
    "same, --no-checks",
    "hand fwd+bwd / fwd",
    "peak bpc / hand",
    "cache bpc / torch",
]


def row(r: Result) -> str:
    cells = [r.name, r.size, _fmt_time(statistics.median(r.times["hand"]))]
    for s in ("bpc", "bpc --fast-math", *RIVALS):
        cells.append(f"{r.ratio(s):.2f}x" if s in r.ratios else "-")
    fastest = r.fastest_rival()
    if fastest is None or "bpc" not in r.ratios:
        cells.append("-")
    else:
        cells.append(f"{'yes' if r.ratio('bpc') <= fastest[1] else 'no'} ({fastest[0]})")
    cells.append(_fmt_time(statistics.median(r.times["hand_fwd"])))
    for s in ("bpc_fwd", "unchecked_fwd"):
        cells.append(f"{r.ratio(s):.2f}x" if s in r.ratios else "-")
    cells.append(f"{r.ratio('hand_bwd'):.1f}")
    cells.append(f"{r.peak['bpc'] / max(r.peak['hand'], 1):.2f}" if "bpc" in r.peak else "-")
    cb = r.cache_bytes
    if "bpc" not in cb:
        cells.append(f"- / {_fmt_bytes(cb['torch'])}" if cb.get("torch") else "-")
    elif cb.get("torch"):
        cells.append(f"{cb['bpc'] / cb['torch']:.2f} ({_fmt_bytes(cb['bpc'])})")
    else:
        cells.append(f"{_fmt_bytes(cb.get('bpc', 0))} / -")
    return "| " + " | ".join(cells) + " |"


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    return "\n".join(lines + [row(r) for r in results])


def summary(results: list[Result]) -> str:
    """The targets of the issue, case by case and across the cases bpc compiles."""
    without = [r for r in results if "bpc" not in r.ratios]
    results = [r for r in results if "bpc" in r.ratios]
    if not results:
        return "- bpc compiles none of these models yet"
    bpc_ratios = [r.ratio("bpc") for r in results]
    fwd = [r.ratio("bpc_fwd") for r in results]
    unchecked = [r.ratio("unchecked_fwd") for r in results]
    lines = [
        f"- bpc over hand NumPy across the {len(results)} cases: median "
        f"{statistics.median(bpc_ratios):.2f}x, max {max(bpc_ratios):.2f}x "
        f"(targets: median at most {TARGETS['median']:.2f}, none above {TARGETS['max']:.2f}); "
        f"{sum(x > TARGETS['max'] for x in bpc_ratios)} above {TARGETS['max']:.2f}",
        *_fast_math_line(results),
        f"- bpc forward alone over the hand-written forward: median {statistics.median(fwd):.2f}x, "
        f"max {max(fwd):.2f}x (target: at most {TARGETS['fwd']:.2f} each); "
        f"{sum(x > TARGETS['fwd'] for x in fwd)} above {TARGETS['fwd']:.2f}",
        f"- the same, compiled with --no-checks (no argument checks): median "
        f"{statistics.median(unchecked):.2f}x, max {max(unchecked):.2f}x; "
        f"{sum(x > TARGETS['fwd'] for x in unchecked)} above {TARGETS['fwd']:.2f}",
    ]
    compared = [r for r in results if r.fastest_rival()]
    if compared:
        lost = [
            f"{r.name} {r.size} ({r.fastest_rival()[0]})"
            for r in compared
            if r.ratio("bpc") > r.fastest_rival()[1]
        ]
        lines.append(
            f"- bpc at most the fastest of {', '.join(s for s in RIVALS)}: "
            f"{len(compared) - len(lost)} of {len(compared)} cases"
            + (f"; slower on {', '.join(lost)}" if lost else "")
        )
    cached = [r for r in results if r.cache_bytes.get("torch")]
    if cached:
        over = sum(r.cache_bytes["bpc"] > r.cache_bytes["torch"] for r in cached)
        lines.append(
            f"- cache at most PyTorch's saved tensors: {len(cached) - over} of {len(cached)}"
        )
    over = sum(r.peak["bpc"] > r.peak["hand"] for r in results)
    lines.append(
        f"- peak memory at most the hand-written code's: {len(results) - over} of {len(results)}"
    )
    if without:
        names = ", ".join(f"{r.name} {r.size}" for r in without)
        lines.append(f"- not compiled by bpc yet, left out above: {names}")
    return "\n".join(lines)


def _fast_math_line(results: list[Result]) -> list[str]:
    """The same for the modules compiled with --fast-math, where a case times them."""
    fast = [r.ratio("bpc --fast-math") for r in results if "bpc --fast-math" in r.ratios]
    if not fast:
        return []
    return [
        f"- compiled with --fast-math (tanh as 2 / (1 + exp(-2x)) - 1, as the hand-written code "
        f"takes it), over hand NumPy across the {len(fast)} cases: median "
        f"{statistics.median(fast):.2f}x, max {max(fast):.2f}x; "
        f"{sum(x > TARGETS['max'] for x in fast)} above {TARGETS['max']:.2f}"
    ]


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
    parser.add_argument(
        "--pause",
        type=float,
        default=0.1,
        help="seconds of rest before each timing (0 in --smoke): OpenBLAS, PyTorch and XLA "
        "threads keep spinning for a while after a call and would slow the next system",
    )
    parser.add_argument(
        "--only",
        help="run the cases whose name contains this, ignoring case (the page is not written)",
    )
    parser.add_argument(
        "--formulations",
        action="store_true",
        help="then the natural formulations of bench/formulations/ against their tuned "
        "references, in float64 and float32",
    )
    parser.add_argument(
        "--formulations-only",
        action="store_true",
        help="the formulations alone; the page's other tables stay as they are",
    )
    parser.add_argument("--write", default=str(HERE.parent / "docs" / "performance.md"))
    args = parser.parse_args(argv)
    results = []
    if not args.formulations_only:
        print("| " + " | ".join(HEAD) + " |", flush=True)
    every = cases.CASES + conv_cases.CASES + rnn_cases.CASES
    for case in [] if args.formulations_only else every:
        if args.only and args.only.lower() not in case.name.lower():
            continue
        for size in case.smoke_sizes if args.smoke else case.sizes:
            results.append(
                run_case(
                    case,
                    size,
                    3 if args.smoke else args.repeats,
                    0.002 if args.smoke else args.budget,
                    0.0 if args.smoke else args.pause,
                )
            )
            print(row(results[-1]), flush=True)
    if results:
        text = table(results) + "\n\n" + summary(results)
        print()
        print(text)
    records = []
    if args.formulations or args.formulations_only:
        print(
            "\n| model | size | dtype | hand | bpc / hand, formulation by formulation |", flush=True
        )
        records = formulations.run_suite(
            formulations.MODELS,
            run_case,
            args.smoke,
            3 if args.smoke else args.repeats,
            0.002 if args.smoke else args.budget,
            0.0 if args.smoke else args.pause,
            args.only,
        )
        print()
        print(formulations.table(records) + "\n\n" + formulations.summary(records))
    if args.smoke:
        return 0
    if args.only:  # (a table of some cases would drop the page's rows for the others)
        print("\n--only: the page is left as it is; copy the rows above into it by hand")
        return 0
    path = Path(args.write)
    command = " ".join(sys.argv[1:])
    head = cases.report(text, machine(), command) if results else None
    forms = formulations.section(records, command, machine()) if records else None
    path.write_text(updated_page(path.read_text() if path.exists() else "", head, forms))
    print(f"\nwritten to {args.write}")
    return 0


def updated_page(old: str, head: str | None, forms: str | None) -> str:
    """The page with its main tables (`head`) and its formulations section (`forms`) replaced
    where they were run again; its hand-written "## Notes" section stays as it is."""
    notes = old[old.index("\n## Notes") :] if "\n## Notes" in old else ""
    rest = old[: len(old) - len(notes)]
    old_forms = rest[rest.index("\n## Formulations") :] if "\n## Formulations" in rest else ""
    old_head = rest[: len(rest) - len(old_forms)]
    return (
        (head if head is not None else old_head)
        + (forms if forms is not None else old_forms)
        + notes
    )


if __name__ == "__main__":
    sys.exit(main())
