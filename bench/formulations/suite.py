"""What a model of the suite is, how its formulations are compiled and run, and the report.

A `Model` holds one tuned expert NumPy reference and several `Formulation`s: bp sources that
compute the same thing, written the way users write them. Each formulation's source defines a
graph named `model.graph` with the model's signature, so that all of them take the same inputs
and return the same value and gradients as the reference: `(value, *gradients)`.

For timing, `FormulationCase` presents one model at one dtype to bench/run.py's `run_case`:
its systems are `hand` (the reference) and one `bpc: NAME` per formulation, so that every
formulation of a model is interleaved with the others and with the reference in each repeat.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from cases import Case, compile_module

TARGETS = {"median": 1.05, "max": 1.25, "peak": 1.25}
DTYPES = (np.float64, np.float32)
# float32 results of two correct codes differ by their rounding: relative 1e-6 per operation,
# more where a gradient is a difference of nearly equal terms (batchnorm's dx)
TOLERANCE = {np.float64: {"rtol": 1e-6, "atol": 1e-9}, np.float32: {"rtol": 2e-3, "atol": 2e-3}}


@dataclass(frozen=True)
class Formulation:
    name: str  # how it is written, in a few words
    source: str


@dataclass
class Model:
    """`inputs(size, rng)` gives float64 arrays (integer labels stay integers, Python numbers stay
    numbers); `reference(*inputs)` gives `(value, *gradients)`, the gradients of the parameters
    at positions `wrt`, in that order. With `vjp`, the last input is the upstream gradient of
    the graph's output and the gradients are those of `sum(value * upstream)`."""

    name: str
    graph: str
    reference: Callable
    inputs: Callable
    dims: Callable
    sizes: list
    smoke_sizes: list
    wrt: tuple[int, ...]
    formulations: list[Formulation] = field(default_factory=list)
    vjp: bool = True
    describe: Callable = lambda size: " x ".join(map(str, size))

    def cast(self, inputs: tuple, dtype) -> tuple:
        """The float arrays of `inputs` in `dtype`; integers and Python numbers as they are."""
        return tuple(
            a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in inputs
        )


_MODULES: dict[tuple, object] = {}


def module(model: Model, formulation: Formulation, size):
    """The formulation compiled for the sizes of `size`, as `bpc compile --dim ...
    --consume-cache` does (each forward's cache serves the one backward that follows it, as in
    training, and that backward may work in its arrays, as the reference works in its own
    temporaries); one module per source and sizes."""
    dims = model.dims(size)
    key = (formulation.source, tuple(sorted(dims.items())))
    if key not in _MODULES:
        name = f"bench_form_{len(_MODULES)}"
        _MODULES[key] = compile_module(formulation.source, name, dims, consume_cache=True)
    return _MODULES[key]


def generated(model: Model, formulation: Formulation, size) -> Callable:
    """The generated code as a function of the model's inputs giving the value and the gradients
    (a value and a tuple of gradients; bench/run.py's check reads them flat): the forward then
    the backward from the upstream gradient for a `vjp` model, `g_grad` itself for a scalar one.
    Nothing is done around the generated functions but the two calls: the forward's arguments
    and the upstream gradient are split once, outside the timed calls (`prepare`)."""
    m = module(model, formulation, size)
    if not model.vjp:
        return getattr(m, f"{model.graph}_grad")
    forward = getattr(m, f"{model.graph}_forward")
    backward = getattr(m, f"{model.graph}_backward")

    def run(args, dout):
        out, cache = forward(*args)
        return out, backward(dout, cache)

    run.prepare = lambda inputs: (tuple(inputs[:-1]), inputs[-1])
    return run


class FormulationCase(Case):
    """One model at one dtype, for bench/run.py's `run_case`: `hand` and every formulation,
    checked against `hand` in this dtype, timed interleaved, with no forward-only functions."""

    def __init__(self, model: Model, dtype):
        super().__init__(model.name, model.sizes, model.smoke_sizes)
        self.model, self.dtype = model, np.dtype(dtype).type
        self.tolerance = TOLERANCE[self.dtype]

    def describe(self, size) -> str:
        return self.model.describe(size)

    def dims(self, size):
        return self.model.dims(size)

    def inputs(self, size):
        return self.model.cast(self.model.inputs(size, np.random.default_rng(0)), self.dtype)

    def systems(self, size):
        out = {"hand": self.model.reference}
        for f in self.model.formulations:
            out[f"bpc: {f.name}"] = generated(self.model, f, size)
        return out

    def forwards(self, size):
        return {}

    def cache_bytes(self, size, inputs):
        return {}


@dataclass
class Record:
    """One model at one size and dtype: bench/run.py's Result, with where it came from."""

    model: Model
    dtype: type
    size_index: int
    result: object  # run.Result

    def ratio(self, formulation: Formulation) -> float:
        return self.result.ratio(f"bpc: {formulation.name}")

    def peak(self, formulation: Formulation) -> float:
        peak = self.result.peak
        return peak[f"bpc: {formulation.name}"] / max(peak["hand"], 1)

    @property
    def column(self) -> str:
        """The size class (small, large; smoke for the tiny size) and the dtype."""
        label = "smoke" if self.size_index < 0 else ("small", "large")[self.size_index]
        return f"{label}, {np.dtype(self.dtype).name}"


def run_suite(
    models: list[Model], run_case, smoke: bool, repeats: int, budget: float, pause: float, only=None
) -> list[Record]:
    """Every model at each of its sizes in each dtype (`smoke`: its tiny size only), timed by
    `run_case`; prints one line per model, size and dtype as it goes, and returns the Records."""
    records = []
    for model in models:
        if only and only.lower() not in model.name.lower():
            continue
        sizes = [(-1, s) for s in model.smoke_sizes] if smoke else list(enumerate(model.sizes))
        for index, size in sizes:
            for dtype in DTYPES:
                case = FormulationCase(model, dtype)
                result = run_case(case, size, repeats, budget, pause)
                record = Record(model, dtype, index, result)
                records.append(record)
                ratios = [record.ratio(f) for f in model.formulations]
                print(
                    f"| {model.name} | {model.describe(size)} | {np.dtype(dtype).name} | "
                    f"{_fmt_time(statistics.median(result.times['hand']))} | "
                    + ", ".join(f"{r:.2f}x" for r in ratios)
                    + " |",
                    flush=True,
                )
    return records


# ---------------------------------------------------------------------------------------------
# The report


def _fmt_time(t: float) -> str:
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def _columns(records: list[Record]) -> list[str]:
    order = {}
    for r in sorted(records, key=lambda r: (DTYPES.index(r.dtype), r.size_index)):
        order.setdefault(r.column, None)
    return list(order)


def table(records: list[Record]) -> str:
    """One row per formulation: in each column (a size class and a dtype), bpc's time over the
    reference's and, in parentheses, its peak memory over the reference's."""
    columns = _columns(records)
    head = ["model", "formulation", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = []
    for r in records:
        if r.model not in models:
            models.append(r.model)
    for model in models:
        mine = {r.column: r for r in records if r.model is model}
        for f in model.formulations:
            cells = [model.name, f"`{f.name}`"]
            for c in columns:
                r = mine.get(c)
                cells.append(f"{r.ratio(f):.2f}x ({r.peak(f):.2f})" if r else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _judge(ratios: list[float], peaks: list[float]) -> str:
    median, over = statistics.median(ratios), sum(x > TARGETS["max"] for x in ratios)
    heavy = sum(p > TARGETS["peak"] for p in peaks)
    met = median <= TARGETS["median"] and not over and not heavy
    return (
        f"median {median:.2f}x, max {max(ratios):.2f}x, {over} of {len(ratios)} above "
        f"{TARGETS['max']:.2f}; peak memory max {max(peaks):.2f}x, {heavy} above "
        f"{TARGETS['peak']:.2f}: targets {'met' if met else 'missed'}"
    )


def summary(records: list[Record]) -> str:
    """Against the targets: per model, per column (size class and dtype), and overall."""
    lines = []
    models = []
    for r in records:
        if r.model not in models:
            models.append(r.model)
    for model in models:
        mine = [r for r in records if r.model is model]
        ratios = [r.ratio(f) for r in mine for f in model.formulations]
        peaks = [r.peak(f) for r in mine for f in model.formulations]
        hand = ", ".join(
            f"{_fmt_time(statistics.median(r.result.times['hand']))} at {r.result.size} "
            f"{np.dtype(r.dtype).name}"
            for r in mine
        )
        lines.append(
            f"- {model.name} ({len(model.formulations)} formulations; hand {hand}): "
            + _judge(ratios, peaks)
        )
    missed = []  # the columns whose median misses: the overall verdict is theirs too
    for column in _columns(records):
        mine = [r for r in records if r.column == column]
        ratios = [r.ratio(f) for r in mine for f in r.model.formulations]
        peaks = [r.peak(f) for r in mine for f in r.model.formulations]
        verdict = _judge(ratios, peaks)
        lines.append(f"- all models, {column}: " + verdict)
        if verdict.endswith("missed"):
            missed.append(column)
    ratios = [r.ratio(f) for r in records for f in r.model.formulations]
    peaks = [r.peak(f) for r in records for f in r.model.formulations]
    count = sum(len(m.formulations) for m in models)
    plural = "s" if len(models) != 1 else ""
    verdict = _judge(ratios, peaks)
    if missed:
        verdict = verdict.replace("targets met", "targets missed") + f" in {', '.join(missed)}"
    lines.append(
        f"- **overall**, {count} formulations of {len(models)} model{plural}, {len(ratios)} "
        f"measurements: " + verdict + f" (targets: median at most "
        f"{TARGETS['median']:.2f} at every size in both dtypes, none above {TARGETS['max']:.2f}, "
        f"peak memory at most {TARGETS['peak']:.2f}x)"
    )
    return "\n".join(lines)


def section(records: list[Record], command: str, machine: str) -> str:
    """The formulations section of docs/performance.md."""
    return f"""
## Formulations

Measured by `python bench/run.py{(" " + command) if command else ""}` on: {machine}. Each model of
bench/formulations/ has one tuned expert NumPy reference and several natural formulations in bp,
the ways users write it; each formulation is compiled for the sizes (`--dim`) with
`--consume-cache` (the forward's cache serves the one backward that follows), checked against the
reference in the same dtype, and timed interleaved with the reference and the model's other
formulations. Each cell is the median of per-repeat ratios of bpc's time (value and gradients)
over the reference's, and in parentheses tracemalloc's peak for one call over the reference's.

{table(records)}

{summary(records)}
"""
