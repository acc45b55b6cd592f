"""`bpc stats`: operation counts, flops and cache bytes, checked against hand counts and against
what the generated code really keeps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpc.check import make_inputs
from bpc.dims import Dim
from bpc.emit import emit
from bpc.ir import OPS, Type
from bpc.loader import module_from_text
from bpc.ops import flops_of
from bpc.pipeline import compile_graphs
from bpc.stats import evaluate, formula, report, stats_source
from tests import oracle, test_loops
from tests.op_cases import CASES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bp"))
LOOPS = ["RNN", "LSTM", "GRU", "BIRNN", "SEQ_LOSS", "NESTED"]  # (sources in tests/test_loops.py)


def bpc(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "bpc", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def poly(text: str) -> Dim:
    """A Dim from a formula such as `2*n*m + n + 1`."""
    names = {c: Dim.of(c) for c in text.replace("*", " ").replace("+", " ").split() if c.isalpha()}
    return eval(text, {}, names) if names else Dim.of(eval(text))


def only(path: Path, graph: str | None = None):
    (stats,) = stats_source(path.read_text(), graph)
    return stats


# ---------------------------------------------------------------------------------------------
# Every operation says what it costs


def test_every_registered_op_has_a_flops_rule():
    missing = [name for name, op in OPS.items() if op.flops is None]
    assert missing == [], f"operations without a flops rule: {missing}"


def test_elementwise_ops_default_to_one_flop_per_result_element():
    x, b = Type("float", (Dim.of("n"), Dim.of("m"))), Type("float", (Dim.of("m"),))
    assert OPS["add"].flops(x, x, b) == poly("n*m")
    assert OPS["exp"].flops(x, x) == poly("n*m")
    # a composite counts its expansion: relu(x) + log1p(e), e = exp(-|x|)
    assert OPS["softplus"].flops(x, x) == poly("6*n*m")
    # `_sigmoid`: a negation, exp, + 1 and a reciprocal
    assert OPS["sigmoid"].flops(x, x) == poly("4*n*m")


def test_flops_rules_of_the_structured_ops():
    n, k, m, b = (Dim.of(s) for s in "nkmb")
    t = lambda *shape: Type("float", shape)  # noqa: E731
    assert OPS["matmul"].flops(t(n, m), t(n, k), t(k, m)) == 2 * n * k * m
    assert OPS["matmul"].flops(t(b, n, m), t(b, n, k), t(k, m)) == 2 * b * n * k * m
    assert OPS["matmul"].flops(t(n), t(n, k), t(k)) == 2 * n * k
    assert OPS["matmul"].flops(t(), t(k), t(k)) == 2 * k
    assert OPS["vdot"].flops(t(), t(n, k), t(n, k)) == 2 * n * k
    assert OPS["outer"].flops(t(n, m), t(n), t(m)) == n * m
    einsum = OPS["einsum"].flops
    assert einsum(t(n, m), t(n, k), t(k, m), spec="nk,km->nm") == 2 * n * k * m
    assert einsum(t(m, n), t(n, m), spec="nm->mn") == Dim.of(0)  # a permutation
    assert einsum(t(n), t(n, m), spec="nm->n") == n * m  # a reduction
    # pairwise, left to right: (nk,km->nm) then (nm,mb->nb)
    assert einsum(t(n, b), t(n, k), t(k, m), t(m, b), spec="nk,km,mb->nb") == 2 * n * k * m + (
        2 * n * m * b
    )
    assert einsum(t(n, m), t(), t(n, m), spec=",nm->nm") == n * m  # a 0-d factor
    assert OPS["sum"].flops(t(n), t(n, m), axis=(1,), keepdims=False) == n * m
    for view in ("transpose", "reshape", "broadcast_to", "index"):
        assert OPS[view].flops(t(m, n), t(n, m), axes=(1, 0)) == Dim.of(0)


def test_composites_cost_what_their_expansions_do():
    n, c = Dim.of("n"), Dim.of("c")
    x = Type("float", (n, c))
    # max, subtract, exp, sum, divide: five per element
    assert OPS["softmax"].flops(x, x, axis=(1,)) == 5 * n * c
    # max, subtract, exp, sum, log (per row), subtract
    assert OPS["log_softmax"].flops(x, x, axis=(1,)) == 5 * n * c + n
    # log_softmax, the labels' range check, the one-hot comparison, the product, the sum, the
    # negation
    ce = OPS["cross_entropy"].flops(Type("float", (n,)), x, Type("int", (n,)))
    assert ce == 8 * n * c + 2 * n + (2 * n + 3)


def _case_graphs():
    for cases in CASES.values():
        for case in cases:
            if case.source is not None:
                yield oracle.typed_graph(case.source)  # with the composites and language ops
                for c in compile_graphs(case.source):  # with the IR-only ops of the backward
                    yield c.pair
                    if c.grad is not None:
                        yield c.grad


def test_every_flops_rule_runs_on_the_op_cases_and_counts_no_negative_work():
    seen = set()
    for graph in _case_graphs():
        for n in graph.nodes:
            flops = flops_of(n)
            assert isinstance(flops, Dim), n
            value = evaluate(flops, {s: 3 for s in flops.symbols})
            assert value.is_const and value.value >= 0, (n, flops)
            seen.add(n.op)
    assert len(seen) > 0.9 * len(OPS), sorted(set(OPS) - seen)


# ---------------------------------------------------------------------------------------------
# Hand counts


def test_seed_by_hand():
    """forward: q = W @ x (2*n*m), f = q @ q (2*n);
    backward: dq = 2 * dout * q (1 + n), dW = np.outer(dq, x) (n*m), dx = W.T @ dq (a view and
    2*n*m); g_grad: q, f, dq = 2 * q (n), dW, dx."""
    s = only(ROOT / "examples" / "seed.bp")
    assert (s.forward.ops, s.forward.views, s.forward.flops) == (2, 0, poly("2*n*m + 2*n"))
    assert (s.backward.ops, s.backward.views) == (4, 1)
    assert s.backward.flops == poly("3*n*m + n + 1")
    assert (s.grad.ops, s.grad.views, s.grad.flops) == (5, 1, poly("5*n*m + 3*n"))
    assert [(k.name, k.type, k.param) for k in s.cache] == [
        ("W", "[n, m]", True),
        ("x", "[m]", True),
        ("q", "[n]", False),
    ]
    assert s.cache_bytes == poly("8*n*m + 8*n + 8*m")
    assert s.cache_dims == ()


def test_two_layer_by_hand():
    """The forward, as emitted:
        affine_out = X @ W1 + b1                       matmul, add: 2*N*D*H + N*H
        h = np.maximum(affine_out, 0)                  N*H
        scores = h @ W2 + b2                           2*N*H*C + N*C
        t = 0.5 * reg * (np.vdot(W1, W1) + np.vdot(W2, W2))   2*D*H + 2*H*C + 3
        labels = _labels(y, C, ...)                    2*N + 3 (a range check; y itself)
        one_hot = labels[:, None] == np.arange(C)      N*C
        shifted = scores - np.max(scores, ...)         2*N*C
        log_probs = shifted - np.log(np.sum(np.exp(shifted), ...))   3*N*C + N
        loss = t - np.mean(np.sum(one_hot * log_probs, axis=1))      2*N*C + N + 2
        dscores_factor = np.exp(log_probs) - one_hot   2*N*C (the gradient's, for the cache)
    23 operations and a view. The backward's products: dh = dscores @ W2.T, dW2 = h.T @ dscores and
    dW1 = X.T @ daffine_out, with a transpose each (the rest of it changes as the optimizer
    learns; the numeric count below checks all of it)."""
    s = only(ROOT / "examples" / "two_layer.bp", "two_layer")
    assert (s.forward.ops, s.forward.views) == (23, 1)
    assert s.forward.flops == poly("2*N*D*H + 2*N*H*C + 2*N*H + 11*N*C + 2*D*H + 2*H*C + 4*N + 8")
    assert s.backward.views == 3
    top = Dim(tuple(t for t in s.backward.flops.terms if len(t[0]) == 3))
    assert top == poly("2*N*D*H + 4*N*H*C")
    assert [k.name for k in s.cache if k.param] == ["X", "W1", "W2", "reg"]
    assert all(not k.param for k in s.cache if k.name in ("h", "dscores_factor"))
    sizes = {"N": 64, "D": 784, "H": 128, "C": 10}
    assert evaluate(s.forward.flops, sizes).value == 13_234_437 + 2 * 64 + 3 + 2 * 64 * 10


def test_rnn_by_hand():
    """The forward, as emitted:
        x_rows = x.reshape((N * T, D))         a view
        hs = (x_rows @ Wx).reshape(...)        2*N*T*D*H, and a view (hs is made over it)
        hs += b                                N*T*H (the bias added once, for all steps)
        for t in range(T):                     each of T iterations:
            h = h @ Wh; h += hs[:, t]              2*N*H*H, a view, N*H
            np.tanh(h, out=h)                      N*H
            hs[:, t] = h                           a store
    The backward: dh = np.zeros(...) (an operation, no flops); dxwx = hs * hs, then
    np.subtract(1, dxwx, out=dxwx) (2*N*T*H, tanh's local derivative of every step); each of
    T iterations:
        dh_1 = dh + dout[:, t]                 a view, N*H
        t_1 = dh_1; t_1 *= dxwx[:, t]          a view, N*H
        dh = t_1 @ Wh.T                        a view, 2*N*H*H
        dxwx[:, t] = t_1                       a store
    and after the loop prev_hs = _shifted(h0, hs, 1) (a copy, no flops), dWh =
    prev_hs.reshape(...).T @ t_2 (2*N*T*H*H), db = dxwx.sum(axis=(0, 1)) (N*T*H), and dx_rows
    = t_2 @ Wx.T, dWx = x_rows.T @ t_2 (2*N*T*D*H each) with six views (reshapes and
    transposes). The cache: hs (computed) and h0, Wx, Wh, x_rows (a view of x)."""
    (s,) = stats_source(test_loops.RNN)
    (loop,) = s.forward.loops
    assert (s.forward.ops, s.forward.views, loop.var, loop.trips) == (2, 2, "t", Dim.of("T"))
    assert (loop.each.ops, loop.each.views, loop.each.flops) == (3, 1, poly("2*N*H*H + 2*N*H"))
    assert s.forward.flops == poly("2*N*T*D*H + 2*N*T*H*H + 3*N*T*H")
    (back,) = s.backward.loops
    assert back.reverse and (s.backward.ops, s.backward.views) == (8, 6)
    assert (back.each.ops, back.each.views) == (3, 3)
    assert back.each.flops == poly("2*N*H*H + 2*N*H")
    assert s.backward.flops == poly("4*N*T*D*H + 4*N*T*H*H + 5*N*T*H")
    assert [(k.name, k.param) for k in s.cache] == [
        ("h0", True),
        ("Wx", True),
        ("Wh", True),
        ("x_rows", True),
        ("hs", False),
    ]
    assert s.cache_bytes == poly("8*N*T*D + 8*N*T*H + 8*N*H + 8*D*H + 8*H*H")


def test_the_stacks_a_loop_keeps_are_cached_values():
    """The LSTM's backward reads five values of each step that no array holds (the four gates
    and the cell state; tanh of the cell state it computes again): the forward fills a
    [T, N, H] stack of each, and the cache keeps them."""
    (s,) = stats_source(test_loops.LSTM)
    stacks = [k for k in s.cache if k.name.endswith("_steps")]
    assert len(stacks) == 5 and all(k.type == "[T, N, H]" and not k.param for k in stacks)
    assert s.cache_bytes == poly("8*N*T*D + 48*N*T*H + 8*N*H + 32*D*H + 32*H*H")


RNN_REPORT = """\
rnn  (N=32, T=50, D=64, H=128)
                      numpy ops  views  at these sizes  formula
  forward                     2      2      79.3 Mflop  2*N*T*D*H + 2*N*T*H**2 + 3*N*T*H
    loop over t               3      1      1.06 Mflop  2*N*H**2 + 2*N*H per iteration, T iterations
"""


def test_the_report_counts_a_loop_per_iteration(tmp_path):
    path = tmp_path / "rnn.bp"
    path.write_text(test_loops.RNN)
    run = bpc("stats", path, *("--dim N=32 --dim T=50 --dim D=64 --dim H=128".split()))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(RNN_REPORT)
    lines = run.stdout.splitlines()
    assert lines[4].split()[:2] == ["backward", "8"]
    assert lines[5].split()[:6] == ["loop", "back", "over", "t", "3", "3"]
    assert lines[5].endswith("  2*N*H**2 + 2*N*H per iteration, T iterations")
    # nested loops: one row each, under the loop they are in
    path.write_text(test_loops.NESTED)
    lines = bpc("stats", path).stdout.splitlines()
    assert lines[3].startswith("    loop over i ") and lines[4].startswith("      loop over j ")
    assert lines[4].endswith(" per iteration, 2 iterations")


def test_float32_halves_the_float_bytes_only():
    (s,) = stats_source((ROOT / "examples" / "two_layer.bp").read_text(), "two_layer", "float32")
    # (one float [N, C] array, the gradient's `probs - one_hot`: no boolean mask beside it)
    assert s.cache_bytes == poly("4*N*D + 4*N*H + 4*N*C + 4*D*H + 4*H*C + 4")


# ---------------------------------------------------------------------------------------------
# The formulas against what the generated code really does and keeps


class Counting(np.ndarray):
    """An array that counts the floating-point work NumPy does on it, by the same conventions as
    the flops rules but independently of them: a ufunc call one per result element (a matrix
    product 2*m*k*n, np.vecdot likewise), a reduction one per element reduced, np.add.at one
    per value added, np.vdot, `a.dot(b)` of vectors and the einsum of a sum of products
    (`"ij,ij->j"`) two per element,
    np.where one per result element. Results stay `Counting`, 0-d ones
    included, so that the work on them counts too."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, Counting) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(
                o.view(np.ndarray) if isinstance(o, Counting) else o for o in kwargs["out"]
            )
        if isinstance(kwargs.get("where"), Counting):  # (a mask: the call counts in full)
            kwargs["where"] = kwargs["where"].view(np.ndarray)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if method == "__call__" and ufunc in (np.matmul, np.vecdot):
            Counting.flops += 2 * np.size(result) * np.shape(plain[0])[-1]
        elif method == "__call__":
            Counting.flops += np.size(result)
        elif method == "reduce":
            Counting.flops += np.size(plain[0])
        elif method == "at":
            Counting.flops += np.size(plain[2])
        else:
            raise AssertionError(f"uncounted: {ufunc.__name__}.{method}")
        return _counting(result)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.einsum:  # only the sums of products bpc writes (`"ij,ij->j"`) are counted
            spec, a, b = args
            terms, _ = spec.split("->")
            assert terms.split(",") == [terms.split(",")[0]] * 2, "einsum hides its work"
        result = super().__array_function__(func, types, args, kwargs)
        if func is np.vdot or func is np.einsum:
            Counting.flops += 2 * np.size(args[-1])
        elif func is np.dot:  # a column times a row, an outer product: one multiply each
            assert np.shape(args[0])[-1] == 1, "np.dot is only emitted for outer products"
            Counting.flops += np.size(result)
        elif func is np.where:
            Counting.flops += np.size(result)
        return _counting(result)

    def dot(self, other):
        """`a.dot(b)` of two vectors, as bpc writes a vdot of them: a method, which NumPy
        dispatches to neither hook; two per element, as np.vdot."""
        assert self.ndim == 1, "the method is only emitted for vectors"
        Counting.flops += 2 * self.size
        return _counting(self.view(np.ndarray).dot(np.asarray(other).view(np.ndarray)))


def _counting(x):
    if isinstance(x, tuple):
        return tuple(_counting(v) for v in x)
    if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, Counting):
        return np.asarray(x).view(Counting)
    return x


def _counted(fn, *args) -> tuple[int, object]:
    Counting.flops = 0
    result = fn(*args)
    return Counting.flops, result


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_flops_are_what_numpy_counts(path, monkeypatch):
    if re.search(r"^\s*for \w+ in range", path.read_text(), re.M):  # (a loop's sums add into
        # arrays the code makes)
        for make in ("zeros", "empty"):
            plain = getattr(np, make)
            monkeypatch.setattr(np, make, lambda *a, _f=plain, **k: _f(*a, **k).view(Counting))
    _check_flops(path.read_text(), f"bpc_stats_flops_{path.stem}")


@pytest.mark.parametrize("name", LOOPS)
def test_flops_of_loops_are_what_numpy_counts(name, monkeypatch):
    """The body's work once per iteration, and the additions of its sums (`dWh += ...`); the
    arrays the code makes itself (`np.zeros`, the stacks `np.empty`) count their work too."""
    for make in ("zeros", "empty"):
        plain = getattr(np, make)
        monkeypatch.setattr(np, make, lambda *a, _f=plain, **k: _f(*a, **k).view(Counting))
    _check_flops(getattr(test_loops, name), f"bpc_stats_flops_loop_{name}")


def _check_flops(text: str, module_name: str) -> None:
    compiled = compile_graphs(text)
    module = module_from_text(emit(compiled, "model.bp"), module_name)
    checked = 0
    for stats, c in zip(stats_source(text), compiled):
        g = c.pair
        if any(n.op == "einsum" for n in g.nodes):
            continue  # np.einsum works in C, or through matmul: no fair count
        names = sorted({s for p in g.params for d in p.dims for s in d.symbols})
        sizes = {name: 2 + i % 4 for i, name in enumerate(names)}
        rng = np.random.default_rng(0)
        args = [_counting(a) for a in make_inputs(g, sizes, np.float64, rng)]
        fn = getattr(module, g.name + "_forward")
        flops, (outs, cache) = _counted(fn, *args)
        assert flops == evaluate(stats.forward.flops, sizes).value, f"{g.name}_forward"
        douts = [_counting(np.ones(np.shape(o))) for o in (outs if len(g.outputs) > 1 else [outs])]
        dout = tuple(douts) if len(douts) > 1 else douts[0]
        flops, _ = _counted(getattr(module, g.name + "_backward"), dout, cache)
        assert flops == evaluate(stats.backward.flops, sizes).value, f"{g.name}_backward"
        if c.grad is not None:
            flops, _ = _counted(getattr(module, g.name + "_grad"), *args)
            assert flops == evaluate(stats.grad.flops, sizes).value, f"{g.name}_grad"
        checked += 1
    assert checked


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cache_bytes_are_what_the_forward_keeps(path, dtype):
    _check_cache(path.read_text(), dtype, f"bpc_stats_{path.stem}")


@pytest.mark.parametrize("name", LOOPS)
def test_cache_bytes_of_loops_are_what_the_forward_keeps(name):
    """The stacks a loop fills for its backward (`c_steps`, [T, N, H]) are cached values."""
    _check_cache(getattr(test_loops, name), "float64", f"bpc_stats_loop_{name}")


def _check_cache(text: str, dtype: str, module_name: str) -> None:
    compiled = compile_graphs(text)
    module = module_from_text(emit(compiled, "model.bp"), module_name)
    for stats, c in zip(stats_source(text, dtype=dtype), compiled):
        g = c.pair
        names = sorted({s for p in g.params for d in p.dims for s in d.symbols})
        sizes = {name: 2 + i % 4 for i, name in enumerate(names)}
        args = make_inputs(g, sizes, np.dtype(dtype), np.random.default_rng(0))
        _, cache = getattr(module, g.name + "_forward")(*args)
        assert len(cache) == len(stats.cache) + len(stats.cache_dims), g.name
        arrays = {}  # a view counts as the array it views, once
        for v in cache:
            if isinstance(v, (np.ndarray, np.generic)):
                while isinstance(getattr(v, "base", None), np.ndarray):
                    v = v.base
                arrays[id(v)] = v.nbytes
        real = sum(arrays.values())
        assert evaluate(stats.cache_bytes, sizes).value == real, g.name


# ---------------------------------------------------------------------------------------------
# Formulas and the report


def test_formulas_read_like_math():
    n, d, t = Dim.of("N"), Dim.of("D"), Dim.of("T")
    assert formula(2 * n * d + n * t * t + 3, ("N", "T", "D")) == "N*T**2 + 2*N*D + 3"
    assert formula(Dim.of(0)) == "0"
    assert formula(n - 1) == "N - 1"
    assert formula(1 - n) == "-N + 1"


def test_report_with_some_sizes_substitutes_them():
    s = only(ROOT / "examples" / "seed.bp")
    text = report(s, {"n": 10})
    assert text.splitlines()[0] == "seed  (n=10; not given: m)"
    assert "20*m + 20" in text  # the forward: 2*n*m + 2*n
    assert "Mflop" not in text and "flop" not in text


SEED_REPORT = """\
seed  (n=3, m=4)
            numpy ops  views  at these sizes  formula
  forward           2      0         30 flop  2*n*m + 2*n
  backward          4      1         40 flop  3*n*m + n + 1
  grad              5      1         69 flop  5*n*m + 3*n
  cache      3 values                  152 B  8*(n*m + n + m) bytes (float64)
            computed: q [n]  (24 B)
            referenced: W [n, m], x [m]  (128 B, the caller's arrays)
"""


def test_cli_prints_the_report():
    run = bpc("stats", "examples/seed.bp", "--dim", "n=3", "--dim", "m=4")
    assert run.returncode == 0, run.stderr
    assert run.stdout == SEED_REPORT


def test_cli_formulas_without_sizes_and_one_graph():
    run = bpc("stats", "examples/two_layer.bp", "--graph", "two_layer_scores")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "two_layer_scores  [N, D, H, C]"
    assert lines[2].split()[:3] == ["forward", "5", "0"]
    assert lines[2].endswith("  2*N*D*H + 2*N*H*C + 2*N*H + N*C")
    assert "two_layer " not in run.stdout


def test_cli_errors(tmp_path):
    bad = tmp_path / "bad.bp"
    bad.write_text("graph f(x: [n]) -> y {\n    y = x @ x @ x\n}\n")
    run = bpc("stats", bad)
    assert run.returncode == 1 and run.stdout == ""
    assert f"{bad}:2:" in run.stderr and "error:" in run.stderr

    run = bpc("stats", "examples/two_layer.bp", "--dim", "Q=3", "--dim", "N=2")
    assert run.returncode == 2
    assert "no graph has a dimension named Q; the dimensions are N, D, H, C" in run.stderr

    run = bpc("stats", "examples/seed.bp", "--dim", "k=3")
    assert run.returncode == 2 and "seed has no dimension k; its dimensions are n, m" in run.stderr

    run = bpc("stats", "examples/seed.bp", "--dim", "n=0")
    assert run.returncode == 2 and "positive size" in run.stderr

    run = bpc("stats", "examples/seed.bp", "--graph", "nope")
    assert run.returncode == 1 and "no graph named 'nope'; the file has seed" in run.stderr

    run = bpc("stats", tmp_path / "missing.bp")
    assert run.returncode == 1 and "cannot read" in run.stderr


def test_compile_stats_go_to_stderr(tmp_path):
    run = bpc("compile", "examples/seed.bp", "-o", "-", "--stats", "--dim", "n=3", "--dim", "m=4")
    assert run.returncode == 0, run.stderr
    sized = bpc("compile", "examples/seed.bp", "-o", "-", "--dim", "n=3", "--dim", "m=4")
    assert run.stdout == sized.stdout and sized.stderr == ""
    assert run.stderr == SEED_REPORT
    # the sizes arrange the code (nothing changes for the seed), and its docstring names them
    assert "Arranged to be fastest for n = 3, m = 4; it takes arrays of any size." in run.stdout
    plain = bpc("compile", "examples/seed.bp", "-o", "-").stdout
    assert plain.replace("\n\nArranged", "") == plain
    assert (
        run.stdout.replace(
            "\n\nArranged to be fastest for n = 3, m = 4; it takes arrays of any size.\n", ""
        )
        == plain
    )

    for stats in ([], ["--stats"]):  # a size for no dimension: a usage error, nothing written
        run = bpc("compile", "examples/seed.bp", "-o", tmp_path / "seed.py", *stats, "--dim", "q=3")
        assert run.returncode == 2 and "seed has no dimension q" in run.stderr
        assert not (tmp_path / "seed.py").exists()
