"""Compile time: the whole `bpc compile` process on a small file, and in-process compilation of
generated graphs of growing size (is any pass quadratic?).

    python bench/compile_time.py                       # 1,250 to 10,000 operations
    python bench/compile_time.py --ops 500 1000        # other sizes

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


def cli_time(repeats: int = 5, path: Path = ROOT / "examples" / "seed.bp") -> float:
    """Median wall time of `bpc compile <path> -o <tmp>` as a whole process."""
    bpc_exe = Path(sys.executable).with_name("bpc")
    command = [str(bpc_exe)] if bpc_exe.exists() else [sys.executable, "-m", "bpc.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seed.py"

        def run():
            subprocess.run(
                [*command, "compile", str(path), "-o", str(out)], check=True, capture_output=True
            )
            out.unlink()  # so that the next run writes it anew

        return median_time(run, repeats)


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


def table(cli_seconds: float | None, rows: list[dict], cli_repeats: int = 5) -> str:
    lines = []
    if cli_seconds is not None:
        lines.append(
            f"`bpc compile examples/seed.bp` as a whole process: {cli_seconds:.3f} s "
            f"(median of {cli_repeats}; target at most 0.5 s)"
        )
        lines.append("")
    lines += [
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
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process timing")
    args = parser.parse_args(argv)
    cli_seconds = None if args.no_cli else cli_time(args.cli_repeats)
    rows = measure(args.ops, args.repeats)
    print(table(cli_seconds, rows, args.cli_repeats))
    print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, bpc {bpc.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
