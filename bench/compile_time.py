"""Compile time: the whole `bpc compile` process on a small file, and in-process compilation of
generated graphs of growing size (is any pass quadratic?).

    python bench/compile_time.py                       # 1,250 to 10,000 operations
    python bench/compile_time.py --ops 500 1000        # other sizes
    python bench/compile_time.py --processes-only      # the whole-process table alone (seconds)

The whole-process table times fresh processes, the median and the fastest of `--cli-repeats`:
the interpreter alone (`python -c pass`), `import bpc.cli` (the command line, which imports the
compiler only when it compiles), `import bpc.pipeline` (the compiler), and `python -m bpc compile
examples/seed.bp -o TMP`. One process runs first, untimed, with bytecode writing on: it writes
bpc's `.pyc` files and fills the cache of the parser's tables and the compiled templates
(`$BPC_CACHE_DIR`), as any first run does. Below it, the modules that take longest to import in
that compile (`python -X importtime`, self time, medians), and the machine: CPUs and load
average (a shared machine's other work moves every number).

The generated graph is a deep, unrolled network: `blocks` repetitions of a block that mixes
matrix products, broadcast biases, relu / tanh / exp, a softmax, a reshape round trip, reductions
and products, with four weight sets shared by every block (as in an unrolled recurrent net, so
the gradients accumulate over all blocks), ending in a cross-entropy plus an L2 loss. Autodiff
and the optimizer have real work: every block is differentiated, and the backward reads
forward values.

"Operations" are the IR nodes of the built forward graph other than leaves (parameters,
constants, dimension sizes), as `build_ir` and `infer_shapes` produce them: one per operation
the source spells, after `fn` inlining and the lowering of built-ins. The table also gives the
source statements, and all timings are medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bpc
from bpc.build import build_ir
from bpc.diagnostics import CompileError
from bpc.parse import parse
from bpc.shapes import infer_shapes

ROOT = Path(__file__).resolve().parent.parent
LEAVES = {"param", "dout", "const", "dim"}
WEIGHTS = 4  # weight sets shared by every block
SIZES = [1250, 2500, 5000, 10000]


def block(i: int) -> list[str]:
    """The statements of block i: h{i} from h{i-1}."""
    w, v = i % WEIGHTS, (i + 1) % WEIGHTS
    p = f"h{i - 1}"
    return [
        f"a{i} = {p} @ W{w} + b{w}",
        f"r{i} = relu(a{i}) - 0.5 * tanh({p} @ V{v})",
        f"s{i} = softmax(r{i} * g{w}, axis=-1)",
        f"u{i} = reshape(s{i} * a{i}, (N*D,))",
        f"e{i} = reshape(exp(-0.1 * u{i} * u{i}), (N, D))",
        f"h{i} = 0.5 * {p} + e{i} * tanh(a{i}) - mean(r{i}, axis=0, keepdims=true)",
    ]


def source(blocks: int) -> str:
    """A graph of `blocks` blocks ending in a scalar loss, differentiated w.r.t. every weight."""
    weights = [f"W{j}: [D, D], b{j}: [D], V{j}: [D, D], g{j}: [D]" for j in range(WEIGHTS)]
    wrt = [f"W{j}, b{j}, V{j}, g{j}" for j in range(WEIGHTS)]
    lines = [
        f"graph deep(X: [N, D], y: int[N], Wc: [D, C], {', '.join(weights)}) -> loss "
        f"wrt Wc, {', '.join(wrt)} {{",
        "    h0 = X",
    ]
    for i in range(1, blocks + 1):
        lines += [f"    {s}" for s in block(i)]
    lines += [
        f"    loss = mean(cross_entropy(h{blocks} @ Wc, y)) + 1e-3 * sum(Wc * Wc)",
        "}",
    ]
    return "\n".join(lines) + "\n"


def count_ops(text: str) -> int:
    """Operations of the forward graph: its IR nodes other than leaves."""
    errors: list = []
    graphs = build_ir(parse(text), text, [], errors)
    if errors:
        raise CompileError(errors)
    (graph,) = graphs
    return sum(1 for n in infer_shapes(graph).nodes if n.op not in LEAVES)


def statements(text: str) -> int:
    return text.count("\n") - 2  # all lines but the header and the closing brace


def blocks_for(ops: int) -> int:
    """The number of blocks whose graph has about `ops` operations."""
    one, two = count_ops(source(1)), count_ops(source(2))
    per_block = two - one
    return max(1, round((ops - (one - per_block)) / per_block))


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SEED = ROOT / "examples" / "seed.bp"
CLI_TARGET = 0.25  # seconds for `bpc compile examples/seed.bp`, a whole process (issue 15)


def _processes(tmp: Path) -> dict[str, list[str]]:
    """The commands of the whole-process table, by the name the table gives them."""
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "import bpc.cli": [python, "-c", "import bpc.cli"],
        "import bpc.pipeline": [python, "-c", "import bpc.pipeline"],
        "bpc compile examples/seed.bp": [python, "-m", "bpc", "compile", str(SEED), "-o"]
        + [str(tmp / "seed.py")],
    }


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=ROOT)


def process_times(repeats: int = 11) -> dict[str, list[float]]:
    """Wall times of `repeats` fresh processes of each command, after one untimed compile that
    writes bpc's bytecode and fills its cache. The commands take turns, so that a change in the
    machine's load falls on all of them."""
    with tempfile.TemporaryDirectory() as tmp:
        commands = _processes(Path(tmp))
        warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        _run(commands["bpc compile examples/seed.bp"], warm)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                _run(command)
                times[name].append(time.perf_counter() - start)
    return times


def import_times(repeats: int = 5) -> dict[str, float]:
    """Seconds each module takes to import itself (not what it imports) while `python -m bpc
    compile examples/seed.bp` runs, medians of `repeats` runs of `python -X importtime`."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        command = _processes(Path(tmp))["bpc compile examples/seed.bp"]
        for _ in range(repeats):
            log = _run([command[0], "-X", "importtime", *command[1:]]).stderr
            for line in log.splitlines():
                fields = line.removeprefix("import time:").split("|")
                if len(fields) == 3 and fields[0].strip().isdigit():
                    times.setdefault(fields[2].strip(), []).append(int(fields[0]) / 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def import_table(times: dict[str, float], top: int = 12) -> str:
    """The modules of bpc that take longest to import, and the other packages summed."""
    groups: dict[str, float] = {}
    for name, seconds in times.items():
        key = name if name.startswith("bpc") else name.split(".")[0]
        groups[key] = groups.get(key, 0.0) + seconds
    lines = [
        f"Import time while compiling the seed (`python -X importtime`, self time, medians; "
        f"all modules {sum(times.values()) * 1000:.0f} ms, bpc's own "
        f"{sum(s for n, s in times.items() if n.startswith('bpc')) * 1000:.0f} ms):",
        "",
        "| module (bpc) or package | import time |",
        "|---|---|",
    ]
    for name, seconds in sorted(groups.items(), key=lambda g: -g[1])[:top]:
        lines.append(f"| {name} | {seconds * 1000:.1f} ms |")
    return "\n".join(lines)


def process_table(times: dict[str, list[float]]) -> str:
    """The medians, and the fastest run: on a busy machine, the closest to the time alone."""
    seed = times["bpc compile examples/seed.bp"]
    lines = [
        f"`bpc compile examples/seed.bp` as a whole process: {statistics.median(seed):.3f} s "
        f"(median of {len(seed)}, fastest {min(seed):.3f} s; target at most {CLI_TARGET} s)",
        "",
        "| fresh process | wall time (median) | fastest |",
        "|---|---|---|",
    ]
    for name, t in times.items():
        lines.append(f"| `{name}` | {statistics.median(t):.3f} s | {min(t):.3f} s |")
    return "\n".join(lines)


def machine() -> str:
    """CPUs, Python, the load average, and whether bytecode writing is turned off."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    bytecode = (
        ", PYTHONDONTWRITEBYTECODE set (the untimed first run writes bpc's .pyc all the same)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else ""
    )
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, bpc {bpc.__version__}, "
        f"load average {load} (1, 5, 15 min){bytecode}"
    )


def measure(sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    bpc.compile_source(source(1), "deep.bp")  # warm up: the grammar is loaded once
    for target in sizes:
        text = source(blocks_for(target))
        ops = count_ops(text)
        seconds = median_time(lambda text=text: bpc.compile_source(text, "deep.bp"), repeats)
        rows.append(
            {
                "target": target,
                "ops": ops,
                "statements": statements(text),
                "seconds": seconds,
                "per_1000": seconds / ops * 1000,
            }
        )
        print(
            f"  {ops} ops, {rows[-1]['statements']} statements: {seconds:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| operations (IR) | source statements | compile time | per 1000 operations |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['ops']:,} | {r['statements']:,} | {r['seconds']:.2f} s | "
            f"{r['per_1000']:.3f} s |"
        )
    by_target = {r["target"]: r for r in rows}
    for small, big in zip(sorted(by_target), sorted(by_target)[1:]):
        if big == 2 * small:
            a, b = by_target[small], by_target[big]
            # Normalized by the actual operation counts, which are only about double.
            ratio = (b["seconds"] / a["seconds"]) * (a["ops"] / b["ops"]) * 2
            lines.append("")
            lines.append(
                f"{b['ops']:,} over {a['ops']:,} operations: {b['seconds'] / a['seconds']:.2f}x "
                f"the time ({ratio:.2f}x for exactly twice the operations; target at most 2.2x)"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, nargs="+", default=SIZES, help="graph sizes")
    parser.add_argument("--repeats", type=int, default=3, help="compilations per size")
    parser.add_argument("--cli-repeats", type=int, default=11, help="processes per command")
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process timings")
    parser.add_argument(
        "--processes-only", action="store_true", help="only the whole-process timings"
    )
    args = parser.parse_args(argv)
    print(machine())
    if not args.no_cli:
        print()
        print(process_table(process_times(args.cli_repeats)))
        print()
        print(import_table(import_times(min(args.cli_repeats, 5))))
    if not args.processes_only:
        rows = measure(args.ops, args.repeats)
        print()
        print(table(rows))
    print(f"\n{machine()}")  # again: the load may have changed meanwhile
    return 0


if __name__ == "__main__":
    sys.exit(main())
