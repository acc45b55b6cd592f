"""Run what bpc compiles from mutated sources under hostile inputs, and count what goes wrong.

`check_source(text)` compiles one bp source (`compile_graphs`, then `emit`, as `compile_source`
does) and, when it compiles, imports the module (`bpc.loader.module_from_text`) and runs every
graph in each scenario that applies to it:

- `arrays`: float64 arrays drawn in the smooth domain (every dimension 2 to 4, values in
  [0.5, 1.5], or of either sign for odd seeds), integer arrays below the bound their uses need;
- `py_int`, `py_float`: a Python int (or float) where `[]` is declared, and a Python int where
  `int[]` is;
- `empty`: one dimension of size 0 (the others as in `arrays`);
- `zeros`: float values 0 (the first element of each array), 1 and 2 (and their negatives, for odd seeds), for graphs without an
  operation that has a kink (relu, abs, a comparison, max, ...);
- `negative`: integer parameters drawn from [-bound, -1] (they count from the end, as in NumPy);
- `out_of_range`: integer parameters with elements at `bound` or beyond, and below `-bound`;
- `strided`: the arrays of `arrays` as views with a negative stride (the same values);
- `matrix`: `np.matrix` for the 2-d float parameters (it must give what plain arrays give);
- `bad_dout`: the arrays of `arrays`, and `g_backward` given a `dout` with an extra axis, which
  must be refused with a clean error.

Every argument is read-only (`flags.writeable = False`, the upstream gradient too), so a write
into it raises; the arrays are also compared with copies afterwards. Each run calls `g`,
`g_forward`, `g_backward` (twice on one cache) and `g_grad` where the graph has it, and checks:

- no input or upstream gradient is written, no output or gradient shares memory with an input;
- `g` and `g_forward` give one value, `g_grad` agrees with `g_forward` + `g_backward(1.0)`, and
  the backward gives the same gradients twice;
- one gradient per `wrt` parameter, floats shaped like the argument;
- the gradients against central finite differences in float64 along one random direction
  (`<dout, J v>` against `<J^T dout, v>`); where they disagree, a step four times larger decides:
  if the two estimates disagree with each other the graph is not smooth there and the run is
  *skipped*, as it is when an output or an estimate is not finite. A gradient that is not
  finite where both estimates are, and agree, is a wrong gradient, unless a value the forward
  keeps for the backward is not finite either (`where(x > 0, log(x), 0)` at x < 0), or HIPS
  autograd on tests/oracle.py's evaluator gives a non-finite gradient too (`sqrt(x - x)`: the
  chain rule meets 0 * inf).

A run may instead end in a *clean error*, raised by its first call (`g`; once `g` has taken the
arguments, every other call must too), of the accepted set:

- `ValueError` or `IndexError` whose message starts with `"<graph>: "`: the generated module's
  own argument checks, which name the graph (and the parameter);
- NumPy's `IndexError: index I is out of bounds for axis A with size S`, for an integer index
  out of range (docs/language.md: "NumPy raises IndexError at run time if it does not fit");
- NumPy's `ValueError: cannot reshape array of size ...`, for a reshape whose element count
  only the run time can compare (docs/language.md, known gaps);
- NumPy's `ValueError: Integers to negative integer powers are not allowed.`, for `i ** j` of
  integer arrays where `j` holds a negative number (docs/language.md, known gaps).

Anything else a call raises is a *crash* (a compiler exception other than `CompileError`, a
module that does not import or warns while it is compiled (SyntaxWarning), NameError, TypeError, ZeroDivisionError, ...). A `ValueError` about
a read-only array is a write into an input.

Run as a script for the long run (`python tests/fuzz_run.py --help`); tests/test_fuzz.py runs a
short, deterministic version of the same checks.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import hashlib
import itertools
import math
import multiprocessing
import random
import re
import signal
import sys
import threading
import time
import traceback
import warnings
import zlib
from pathlib import Path

import numpy as np

from bpc.check import _bounds
from bpc.diagnostics import CompileError
from bpc.dims import Dim
from bpc.emit import emit
from bpc.loader import module_from_text
from bpc.pipeline import _collector_paused, compile_graphs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = [
    *sorted((ROOT / "examples").glob("*.bp")),
    *sorted((ROOT / "tests" / "golden").glob("*.bp")),
]
EXAMPLES = [p.read_text() for p in EXAMPLE_FILES]
TOKENS = (
    "graph fn wrt int true false -> ( ) [ ] { } , : = + - * / @ ** . .T < <= > >= == != # "
    "x y W b q n m N D 0 1 2 0.5 1e-5 1e999 99999999999999999999 sum mean exp log sqrt tanh "
    "sigmoid relu transpose reshape softmax cross_entropy einsum take concat where maximum "
    'axis keepdims "ij,jk->ik" "x" \n \t'
).split(" ") + ["\n", "    ", "\x00", "é", "∑"]
# Names the generated module uses itself, and Python's: a mutant may rename a graph, a
# parameter, a dimension or a value to one of them.
NAME_TOKENS = "np match _ len dout cache _shapes int float".split()

SIZES = (2, 3, 4)  # dimension sizes, distinct where a graph has up to three names
MAX_ELEMENTS = 20_000  # a graph with a larger value (a literal `[99999]`) is not run
EPS = 1e-6
FD_TOL = 1e-5  # relative to the larger of the two directional derivatives (at least 1)
FD_ROUNDING = 1e-9  # times sum |dout * out|: what rounding costs a difference quotient
PAIR_TOL = 1e-9  # g_grad against g_forward + g_backward(1.0); g against g_forward
TIMEOUT_S = 20.0  # per source

FAILURES = (
    "compiler crash",
    "import error",
    "crash",
    "wrong gradient",
    "input written",
    "aliasing",
    "inconsistent",
    "dout unchecked",
    "timeout",
)

EMPTY_REDUCTION = re.compile(r"^zero-size array to reduction operation \w+ which has no identity")
CLEAN_PREFIX = re.compile(r"^index -?\d+ is out of bounds for axis \d+ with size \d+")


class Timeout(BaseException):
    """Raised by the alarm when one source takes longer than TIMEOUT_S."""


@dataclasses.dataclass
class Failure:
    kind: str
    cause: str  # what groups failures: the kind, the scenario and the message without numbers
    source: str
    graph: str = ""
    scenario: str = ""
    detail: str = ""
    inputs: str = ""
    seed: int = 0

    def report(self) -> str:
        lines = [f"[{self.kind}] {self.detail}"]
        if self.graph:
            lines.append(f"graph {self.graph}, scenario {self.scenario}, seed {self.seed}")
        if self.inputs:
            lines.append(f"inputs: {self.inputs}")
        lines.append("source:")
        lines += ["    " + line for line in self.source.splitlines()]
        return "\n".join(lines)


@dataclasses.dataclass
class Result:
    """What one source gave: `outcome` is diagnostic | compiled | failed (compiled, and then a
    failure) | compiler crash | timeout; `runs` counts the
    graph runs by how they ended (checked, clean error, skipped: ..., or a failure's kind)."""

    outcome: str
    module_text: str = ""
    runs: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: list[Failure] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Mutants


def mutate(rng: random.Random, text: str, tokens=TOKENS + NAME_TOKENS) -> str:
    """What the `mutations()` strategy of tests/test_fuzz.py draws: one to four times, up to 12
    characters replaced by nothing or by a token."""
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        j = rng.randint(i, min(len(text), i + 12))
        text = text[:i] + rng.choice(["", *tokens]) + text[j:]
    return text


# Words and operators a rewrite swaps for another of their class.
CLASSES = [
    "exp log sqrt tanh sigmoid relu softplus abs sin cos log1p sign".split(),
    "sum mean max min logsumexp".split(),
    "softmax log_softmax".split(),
    "maximum minimum".split(),
    "take take_along".split(),
    "true false".split(),
]
BINARY = [" + ", " - ", " * ", " / ", " ** ", " @ "]
NUMBERS = ["0", "1", "2", "-1", "0.5", "1e-5", "3", "-2", "1e9"]
WRAPS = [f"{f}(%s)" for f in CLASSES[0]] + [
    "(%s * %s)",
    "-%s",
    "%s.T",
    "(%s - %s)",
    "sum(%s, axis=0, keepdims=true)",
    "mean(%s, axis=-1, keepdims=true)",
    "%s[0]",
    "%s[1:]",
    "%s[::-1]",
    "reshape(%s, (N, D))",
    "softmax(%s)",
    "(%s > 0)",
    "where(%s > 0, %s, 0)",
]
_NUMBER = re.compile(r"(?<![\w.])\d+(\.\d+)?(e[-+]?\d+)?(?![\w.])")
_NAME = re.compile(r"(?<![\w.\"])([A-Za-z_]\w*)(?![\w(\"=])")


def rewrite(rng: random.Random, text: str) -> str:
    """One to three changes to the code of statements (comments left alone), each keeping the
    source well formed more often than not: a function, reduction or operator swapped for another
    of its kind, a number for another, a name wrapped in a call (`exp(q)`, `q.T`, `q[1:]`)."""
    lines = text.split("\n")
    statements = [i for i, line in enumerate(lines) if " = " in line.split("#")[0]]
    if not statements:
        return mutate(rng, text)
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(statements)
        code, hash_, comment = lines[i].partition("#")
        target, eq, rhs = code.partition(" = ")
        choice = rng.random()
        if choice < 0.3:
            words = [w for cls in CLASSES for w in cls if re.search(rf"\b{w}\b", rhs)]
            if words:
                w = rng.choice(words)
                cls = next(c for c in CLASSES if w in c)
                rhs = re.sub(rf"\b{w}\b", rng.choice(cls), rhs, count=1)
        elif choice < 0.5:
            ops = [op for op in BINARY if op in rhs]
            if ops:
                rhs = rhs.replace(rng.choice(ops), rng.choice(BINARY), 1)
        elif choice < 0.65:
            found = list(_NUMBER.finditer(rhs))
            if found:
                m = rng.choice(found)
                rhs = rhs[: m.start()] + rng.choice(NUMBERS) + rhs[m.end() :]
        else:
            found = [m for m in _NAME.finditer(rhs) if m.group(1) not in ("axis", "keepdims")]
            if found:
                m = rng.choice(found)
                wrap = rng.choice(WRAPS)
                rhs = rhs[: m.start()] + wrap.replace("%s", m.group(1)) + rhs[m.end() :]
        lines[i] = target + eq + rhs + hash_ + comment
    return "\n".join(lines)


REWRITES = 0.25  # the share of mutants made by `rewrite`: they compile more, and more slowly


def mutant(seed: int, index: int, rewrites: float = REWRITES) -> str:
    """Mutant `index` of a run: a share `rewrites` from `rewrite`, the others from `mutate`."""
    rng = random.Random(f"{seed}:{index}")
    text = rng.choice(EXAMPLES)
    return rewrite(rng, text) if rng.random() < rewrites else mutate(rng, text)


_COMMENT = re.compile(r'("[^"\n]*")|#[^\n]*')


def code_key(text: str) -> bytes:
    """A digest of `text` without its comments and trailing spaces: two mutants with one key
    differ in comments only (a mutant that breaks the comment's `#` changes the key)."""
    code = _COMMENT.sub(lambda m: m.group(1) or "", text)
    code = "\n".join(line.rstrip() for line in code.split("\n"))
    return hashlib.blake2b(code.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ---------------------------------------------------------------------------------------------
# Inputs


def _frozen(x):
    if isinstance(x, np.ndarray):
        x.flags.writeable = False
    return x


def _strided(x):
    """`x` as a view with a negative stride on its last axis, two elements apart."""
    if not isinstance(x, np.ndarray) or not x.ndim or not x.size:
        return x
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    view = big[..., ::-2]
    view[...] = x
    return view


def _copy(x):
    return x.copy() if isinstance(x, np.ndarray) else x


@functools.cache
def _numel(shape, sizes: tuple) -> int:
    dims = {s: Dim.of(max(v, 1)) for s, v in sizes}
    n = 1
    for d in shape:
        v = d.subs(dims)
        n *= max(v.value, 0) if v.is_const else 1
    return n


def _too_large(c, sizes: dict[str, int]) -> bool:
    key = tuple(sizes.items())
    return any(_numel(shape, key) > MAX_ELEMENTS for shape in _shapes_of(c))


def _shapes_of(c) -> set:
    return {
        n.shape for graph in (c.pair, c.grad) if graph for n in graph.nodes if n.type is not None
    }


@dataclasses.dataclass
class Scenario:
    name: str
    args: list
    sizes: dict[str, int]

    def describe(self, params) -> str:
        parts = []
        for p, a in zip(params, self.args):
            if isinstance(a, np.matrix):
                parts.append(f"{p.name}: np.matrix {a.dtype}{list(a.shape)}")
            elif isinstance(a, np.ndarray):
                text = f"{p.name}: {a.dtype}{list(a.shape)}"
                if a.dtype.kind in "iu" or a.size == 0:
                    text += f" = {a.tolist()}"
                parts.append(text)
            else:
                parts.append(f"{p.name}: Python {type(a).__name__} {a!r}")
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"{', '.join(parts)} (sizes {sizes or 'none'}; read-only)"


def _sizes(g) -> dict[str, int]:
    names = list(dict.fromkeys(s for p in g.params for d in p.dims for s in sorted(d.symbols)))
    return {name: SIZES[i % len(SIZES)] for i, name in enumerate(names)}


def _bound(g, name: str, bounds, sizes) -> int:
    if name in bounds:
        v = bounds[name].subs({s: Dim.of(max(k, 1)) for s, k in sizes.items()})
        if v.is_const and v.value >= 1:
            return v.value
    return 2


# Operations not differentiable at some points (a comparison where its operands are equal, relu
# at 0): a graph with one of them gets no `zeros` scenario.
KINKED = {"relu", "abs", "sign", "clip", "max", "min", "maximum", "minimum"}
KINKED |= {"eq", "ne", "lt", "le", "gt", "ge"}


def scenarios(g, seed: int):
    """The scenarios that apply to graph `g` (its IR), with their arguments, seeded."""
    params = g.params
    bounds = _bounds(g)
    base_sizes = _sizes(g)

    def draw(name, sizes, ints=lambda bound: (0, bound), python=None):
        rng = np.random.default_rng([seed, zlib.crc32(f"{g.name}:{name}".encode())])
        args = []
        for p in params:
            shape = tuple(int(d.evaluate(sizes)) for d in p.dims)
            if p.dtype == "int":
                bound = _bound(g, p.name, bounds, sizes)
                x = rng.integers(*ints(bound), shape)
                if name == "out_of_range" and x.size:  # one element surely out of range
                    x.reshape(-1)[0] = bound if rng.random() < 0.5 else -bound - 1
                args.append(int(x) if python and not shape else x)
                continue
            x = rng.uniform(0.5, 1.5, shape)
            if seed % 2:
                x *= rng.choice([-1.0, 1.0], shape)
            if name == "zeros":  # where 0 ** 0, 0 * log(0) and the like lurk
                x = rng.integers(0, 3, shape) * np.sign(x)
                x.reshape(-1)[:1] = 0.0
            if python and not shape:
                x = int(rng.integers(1, 3)) if python is int else float(x)
            args.append(x)
        return Scenario(name, args, dict(sizes))

    yield draw("arrays", base_sizes)
    yield dataclasses.replace(draw("arrays", base_sizes), name="bad_dout")
    if any(not p.dims for p in params):
        yield draw("py_int", base_sizes, python=int)
        yield draw("py_float", base_sizes, python=float)
    if base_sizes:
        zero = list(base_sizes)[seed % len(base_sizes)]
        yield draw("empty", base_sizes | {zero: 0})
    if any(p.dtype == "int" for p in params):
        yield draw("negative", base_sizes, ints=lambda bound: (-bound, 0))
        yield draw("out_of_range", base_sizes, ints=lambda bound: (-bound - 2, bound + 2))
    forward = g.forward  # (the backward's own masks, `a == 0`, are no kink)
    if not any(n.op in KINKED for n in forward) and any(p.dtype == "float" for p in params):
        yield draw("zeros", base_sizes)
    if any(p.dims for p in params):
        s = draw("strided", base_sizes)
        s.args = [_strided(a) for a in s.args]
        yield s
    if any(p.dtype == "float" and len(p.dims) == 2 for p in params):
        s = draw("matrix", base_sizes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix's own
            s.args = [
                np.asmatrix(a) if p.dtype == "float" and len(p.dims) == 2 else a
                for p, a in zip(params, s.args)
            ]
        yield s


# ---------------------------------------------------------------------------------------------
# Finding a graph's functions


_ROLES = {
    "": lambda doc, g: f" = {g}(" in doc and "forward pass alone" in doc,
    "_forward": lambda doc, g: f" = {g}(" in doc and "and the cache" in doc,
    "_backward": lambda doc, g: doc.startswith(f"Gradients of {g} with respect"),
    "_grad": lambda doc, g: f" = {g}(" in doc and "and its gradients" in doc,
}


def functions(module, name: str) -> dict[str, object]:
    """Graph `name`'s functions in `module`, by role ("", "_forward", "_backward", "_grad"):
    the function called `name + role` (or with a `_` more, for a keyword or a reserved name) if
    its docstring says it is that graph's, else any function of the module whose docstring does.
    """
    found = {}
    for role, says in _ROLES.items():
        candidates = [name + role, name + role + "_"]
        candidates += [k for k in vars(module) if k not in candidates]
        for k in candidates:
            f = vars(module).get(k)
            doc = getattr(f, "__doc__", None) or ""
            if callable(f) and not isinstance(f, type) and says(doc, name):
                found[role] = f
                break
    return found


# ---------------------------------------------------------------------------------------------
# Running one graph


class _Failed(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class _Skip(Exception):
    pass


class _CleanError(Exception):
    """A call raised an error of the accepted set."""


def _clean(e: BaseException, graph: str, scenario: str = "") -> bool:
    if not isinstance(e, (ValueError, IndexError)):
        return False
    msg = str(e)
    if msg.startswith(f"{graph}: "):
        return True
    if isinstance(e, IndexError) and CLEAN_PREFIX.match(msg):
        return True
    if scenario == "empty" and EMPTY_REDUCTION.match(msg):
        return True
    if isinstance(e, ValueError) and msg == "Integers to negative integer powers are not allowed.":
        return True  # `i ** j` of integer arrays, as NumPy has it (docs/language.md, known gaps)
    return isinstance(e, ValueError) and msg.startswith("cannot reshape array of size")


def _where(e: BaseException) -> str:
    """The innermost frame of the traceback: the generated line that raised."""
    tb = traceback.extract_tb(e.__traceback__)
    if not tb:
        return ""
    f = tb[-1]
    return f" (at {Path(f.filename).name}:{f.lineno} {f.name}: {(f.line or '').strip()})"


_running = ["", ""]  # the graph and the scenario run_graph runs


def _call(fn, *args):
    """Call a generated function; an exception outside the accepted set becomes a failure."""
    try:
        return fn(*args)
    except (_Failed, Timeout, KeyboardInterrupt):
        raise
    except BaseException as e:
        if isinstance(e, ValueError) and "read-only" in str(e):
            raise _Failed("input written", f"{type(e).__name__}: {e}{_where(e)}") from None
        if _clean(e, *_running):
            raise _CleanError(f"{type(e).__name__}: {e}") from None
        raise _Failed("crash", f"{type(e).__name__}: {e}{_where(e)}") from None


def _same(a, b, tol: float) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if not a.size:
        return True
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    a, b = np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)
    scale = max(1.0, float(np.max(np.abs(b))))
    with np.errstate(all="ignore"):
        diff = float(np.max(np.abs(a - b))) if np.all(np.isfinite(a - b)) else 0.0
        infs = np.array_equal(a, b) or np.all(np.isfinite(a - b) | (a == b))
    return same_nan and bool(infs) and diff <= tol * scale


def _finite(x) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))
    except (TypeError, ValueError):
        return False


def _as_tuple(out, n: int) -> tuple:
    if n == 1:
        return (out,)
    if not isinstance(out, tuple) or len(out) != n:
        raise _Failed("inconsistent", f"{n} outputs expected, got {type(out).__name__}")
    return out


def _field_ok(field: str, param: str) -> bool:
    f, p = field.strip("_"), param.strip("_")
    return f == p or (not p and f == "grad")


def run_graph(module, c, scenario: Scenario, seed: int) -> str:
    """Run graph `c` (compiled) on the scenario's arguments; return how it ended (checked, clean
    error, skipped: ...) or raise _Failed."""
    g = c.pair
    fns = functions(module, g.name)
    roles = ("", "_forward", "_backward") + (("_grad",) if c.grad is not None else ())
    if not set(roles) <= set(fns):
        missing = ", ".join(g.name + r for r in roles if r not in fns)
        raise _Failed("crash", f"the module has no function {missing}")
    _running[:] = g.name, scenario.name
    names = [p.name for p in g.params]
    n_out = len(g.outputs)
    args = [_frozen(a) for a in scenario.args]
    originals = [_copy(a) for a in args]
    rng = np.random.default_rng([seed, zlib.crc32(f"{g.name}:{scenario.name}:d".encode())])
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if scenario.name == "bad_dout":
                return _bad_dout(fns, g, n_out, args)
            return _run(fns, g, names, n_out, args, originals, rng, scenario)
    except _Skip as s:
        return f"skipped: {s}"
    except _CleanError:
        _untouched(args, originals, names)
        return "clean error"


def _untouched(args, originals, names, dout=None, dout_copy=None):
    for name, a, o in zip(names, args, originals):
        if isinstance(a, np.ndarray) and not np.array_equal(a, o, equal_nan=True):
            raise _Failed("input written", f"{name} was changed")
    if dout is not None:
        for d, o in zip(dout, dout_copy):
            if not np.array_equal(d, o, equal_nan=True):
                raise _Failed("input written", "dout was changed")


def _run(fns, g, names, n_out, args, originals, rng, scenario) -> str:
    plain = _call(fns[""], *args)
    try:
        return _after_forward(fns, g, names, n_out, args, originals, rng, scenario, plain)
    except _CleanError as e:  # documented for bad arguments, which the forward took
        raise _Failed("inconsistent", f"{g.name} runs, then another call raises {e}") from None


def _after_forward(fns, g, names, n_out, args, originals, rng, scenario, plain) -> str:
    forward = _call(fns["_forward"], *args)
    if not isinstance(forward, tuple) or len(forward) != 2:
        raise _Failed(
            "inconsistent", f"{g.name}_forward gives {type(forward).__name__}, not a pair"
        )
    outs, cache = forward
    outs = _as_tuple(outs, n_out)
    for a, b in zip(_as_tuple(plain, n_out), outs):
        if not _same(a, b, PAIR_TOL):
            raise _Failed("inconsistent", f"{g.name} and {g.name}_forward give different values")
    arrays = [(n, a) for n, a in zip(names, args) if isinstance(a, np.ndarray)]
    for k, o in enumerate(outs):
        for name, a in arrays:
            if isinstance(o, np.ndarray) and np.shares_memory(o, a):
                raise _Failed("aliasing", f"output {k} shares memory with the argument {name}")
    if scenario.name in ("matrix", "strided"):  # they must give what plain arrays give
        base = _call(fns[""], *[_frozen(np.array(a)) for a in args])
        for a, b in zip(_as_tuple(base, n_out), outs):
            if not _same(b, a, PAIR_TOL) or isinstance(b, np.matrix):
                what = "np.matrix" if scenario.name == "matrix" else "strided"
                raise _Failed("wrong gradient", f"{what} arguments change the value")
    douts = tuple(_frozen(rng.standard_normal(np.shape(o))) for o in outs)
    dout_copy = [d.copy() for d in douts]
    dout = douts if n_out > 1 else douts[0]
    grads = _call(fns["_backward"], dout, cache)
    again = _call(fns["_backward"], dout, cache)
    _untouched(args, originals, names, douts, dout_copy)
    index = {p.name: i for i, p in enumerate(g.params)}
    wrt = [index[w] for w in g.wrt]
    if not isinstance(grads, tuple) or len(grads) != len(wrt):
        raise _Failed("inconsistent", f"{len(wrt)} gradients expected, got {grads!r:.200}")
    fields = getattr(grads, "_fields", None)
    for k, i in enumerate(wrt):
        gr, name = grads[k], names[i]
        if fields is not None and not _field_ok(fields[k], name):
            raise _Failed("inconsistent", f"gradient {k} is named {fields[k]}, not {name}")
        if np.shape(gr) != np.shape(args[i]):
            raise _Failed(
                "wrong gradient", f"d{name} has shape {np.shape(gr)}, not {np.shape(args[i])}"
            )
        kind = np.asarray(gr).dtype.kind
        if kind != "f":
            raise _Failed("wrong gradient", f"d{name} holds {np.asarray(gr).dtype}, not floats")
        if isinstance(gr, np.matrix):
            raise _Failed("wrong gradient", f"d{name} is an np.matrix")
        if not _same(gr, again[k], 0.0):
            raise _Failed("inconsistent", f"d{name} differs when g_backward runs again")
        if isinstance(gr, np.ndarray):
            for other, a in arrays:
                if np.shares_memory(gr, a):
                    raise _Failed("aliasing", f"d{name} shares memory with the argument {other}")
            for d in douts:
                if np.shares_memory(gr, d):
                    raise _Failed("aliasing", f"d{name} shares memory with dout")
    if "_grad" in fns:
        value, pair = _call(fns["_grad"], *args), _call(fns["_backward"], 1.0, cache)
        if not isinstance(value, tuple) or len(value) != 2:
            raise _Failed("inconsistent", f"{g.name}_grad gives {type(value).__name__}")
        value, fused = value
        if not _same(value, outs[0], PAIR_TOL):
            raise _Failed(
                "inconsistent", f"{g.name}_grad and {g.name}_forward give different values"
            )
        # (where the output is inf or nan, the two may order inf - inf differently)
        finite = all(_finite(o) for o in outs)
        if len(fused) != len(wrt) or not all(
            (_same(a, b, PAIR_TOL) or not finite) and np.shape(a) == np.shape(b)
            for a, b in zip(fused, pair)
        ):
            raise _Failed("inconsistent", f"{g.name}_grad and {g.name}_backward(1.0) disagree")
        _untouched(args, originals, names)
    if not wrt:
        return "checked (forward only)"
    if not all(_finite(o) for o in outs):
        raise _Skip("an output is not finite")
    # `where(x > 0, log(x), 0)` at x < 0: a NaN inside, a finite output, a NaN gradient
    nan_inside = not all(_finite(c) for c in cache if isinstance(c, (np.ndarray, np.generic)))
    _finite_differences(fns[""], g, names, wrt, args, douts, grads, rng, nan_inside)
    return "checked"


def _bad_dout(fns, g, n_out, args) -> str:
    """A dout with an extra axis must be refused with a clean error."""
    outs, cache = _call(fns["_forward"], *args)
    outs = _as_tuple(outs, n_out)
    bad = tuple(_frozen(np.ones(np.shape(o) + (2,))) for o in outs)
    try:
        fns["_backward"](bad if n_out > 1 else bad[0], cache)
    except (Timeout, KeyboardInterrupt):
        raise
    except BaseException as e:
        if _clean(e, g.name):
            return "clean error"
        detail = f"{type(e).__name__}: {e}"
        raise _Failed("dout unchecked", f"a dout with an extra axis gives {detail}") from None
    raise _Failed("dout unchecked", "a dout with an extra axis is accepted")


def _finite_differences(f, g, names, wrt, args, douts, grads, rng, nan_inside=False) -> None:
    directions = {}
    for i in wrt:
        a = args[i]
        directions[i] = (
            float(rng.standard_normal())
            if not isinstance(a, np.ndarray)
            else (rng.standard_normal(np.shape(a)))
        )

    def along(step, only=None):
        moved = list(args)
        for i, v in directions.items():
            if only is None or i == only:
                a = args[i]
                if isinstance(a, np.ndarray):
                    x = np.asarray(a, dtype=np.float64) + step * v
                    moved[i] = _frozen(np.asmatrix(x) if isinstance(a, np.matrix) else x)
                else:
                    moved[i] = float(a) + step * v
        out = _as_tuple(_call(f, *moved), len(douts))
        terms = [np.asarray(o, dtype=np.float64) * d for o, d in zip(out, douts)]
        return sum(float(np.sum(t)) for t in terms), sum(float(np.sum(np.abs(t))) for t in terms)

    def estimate(eps, only=None):
        (up, s1), (down, s2) = along(eps, only), along(-eps, only)
        return (up - down) / (2 * eps), FD_ROUNDING * max(s1, s2) / eps * EPS

    def analytic(only=None):
        total = 0.0
        for k, i in enumerate(wrt):
            if only is None or i == only:
                total += float(np.sum(np.asarray(grads[k], dtype=np.float64) * directions[i]))
        return total

    def verdict(only=None) -> str:
        """ok | skip: why | off"""
        num, rounding = estimate(EPS, only)
        if not math.isfinite(num):
            return "skip: a finite difference is not finite"
        have = analytic(only)
        if nan_inside and not math.isfinite(have):
            return "skip: a value inside the forward is not finite"
        if (
            not math.isfinite(have)
            and only is not None
            and not _autograd_finite(g, args, douts, only)
        ):
            # sqrt(x - x): the chain rule meets 0 * inf, here as in autograd
            return "skip: autograd's gradient is not finite either"
        tol = FD_TOL * max(1.0, abs(num), abs(have) if math.isfinite(have) else 0.0) + rounding
        if math.isfinite(have) and abs(have - num) <= tol:
            return "ok"
        wide, _ = estimate(4 * EPS, only)
        if not math.isfinite(wide) or abs(wide - num) > tol:
            return "skip: not smooth around the point"
        return (
            f"d{names[only]} ({have:.6g}, finite differences {num:.6g})"
            if only is not None
            else "off"
        )

    if verdict() == "ok":
        return
    # Each parameter's direction alone: which gradient is off, or which cannot be checked.
    each = [verdict(i) for i in wrt]
    off = [v for v in each if v != "ok" and not v.startswith("skip")]
    if off:
        kind = "wrong gradients" if all(_finite(gr) for gr in grads) else "a non-finite gradient"
        raise _Failed("wrong gradient", f"{kind} where f is smooth: {', '.join(off)}")
    skipped = [v for v in each if v.startswith("skip")]
    if skipped:
        raise _Skip(skipped[0][len("skip: ") :])
    raise _Skip("not smooth around the point")  # each alone agrees, together they do not


def _autograd_finite(g, args, douts, i) -> bool:
    """Whether HIPS autograd, on the independent evaluator of tests/oracle.py, gives a finite
    gradient for parameter `i` (True when it cannot tell: then a NaN gradient stays a failure)."""
    try:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests import oracle

        graph = oracle.typed_graph(g.source, g.name)
        inputs = {
            p.name: np.asarray(a, dtype=np.float64 if p.dtype == "float" else np.int64)
            for p, a in zip(g.params, args)
        }
        dout = douts if len(douts) > 1 else douts[0]
        grads = oracle.graph_grads(graph, inputs, dout)
    except Exception:
        return True
    return _finite(grads[g.params[i].name])


# ---------------------------------------------------------------------------------------------
# One source


_counter = itertools.count()


def _cause(kind: str, scenario: str, detail: str, graph: str, names) -> str:
    """What groups failures: the kind and the message, without numbers, shapes and names (and the
    scenario, for all but crashes and aliasing); an unchecked dout and a wrong gradient by kind
    and scenario alone."""
    if kind == "dout unchecked":
        return f"{kind} | {'accepted' if 'accepted' in detail else 'NumPy raised'}"
    if kind == "wrong gradient" and "where f is smooth" in detail:
        return f"{kind} | {scenario} | {detail.partition(' where')[0]}"
    text = detail
    for name in sorted({graph, *names} - {""}, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", "<name>", text)
    text = re.sub(r"\(at [^)]*\)+", "", text)
    text = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    text = re.sub(r"\((N, )*N?,?\)", "(shape)", text)
    if scenario == "matrix":  # one cause, many symptoms: group them by exception
        return f"{kind} | {scenario} | {text.partition(':')[0]}"
    where = "" if kind in ("crash", "aliasing") else f"{scenario} | "
    return f"{kind} | {where}{text.strip()[:160]}"


def compile_text(text: str, filename: str = "fuzz.bp"):
    """What `compile_source` does, keeping the IR: (compiled graphs, module text)."""
    try:
        with _collector_paused():
            compiled = compile_graphs(text)
            return compiled, emit(compiled, filename)
    except RecursionError:
        raise CompileError([]) from None


def check_source(
    text: str,
    seed: int = 0,
    filename: str = "fuzz.bp",
    timeout: float | None = TIMEOUT_S,
    only: frozenset[str] | None = None,
) -> Result:
    """Compile `text` and run each of its graphs in every scenario that applies (or in those
    named in `only`). The inputs depend on `seed` and the graph's code only."""
    with _alarm(timeout):
        try:
            return _check_source(text, seed, filename, only)
        except Timeout:
            return Result(
                "timeout",
                failures=[Failure("timeout", "timeout", text, detail="over the time limit")],
            )


def _check_source(text: str, seed: int, filename: str, only) -> Result:
    try:
        compiled, module_text = compile_text(text, filename)
    except CompileError:
        return Result("diagnostic")
    except Exception as e:
        detail = f"{type(e).__name__}: {e}{_where(e)}"
        kind = "compiler crash"
        return Result(
            "compiler crash",
            failures=[Failure(kind, _cause(kind, "", detail, "", []), text, detail=detail)],
        )
    result = Result("compiled", module_text)
    try:
        with warnings.catch_warnings():  # `y + 1[..., None]` compiles, with a SyntaxWarning
            warnings.simplefilter("error", SyntaxWarning)
            module = module_from_text(module_text, f"bpc_fuzz_{next(_counter)}")
    except (Timeout, KeyboardInterrupt):
        raise
    except BaseException as e:
        detail = f"{type(e).__name__}: {e}"
        result.failures.append(
            Failure("import error", _cause("import error", "", detail, "", []), text, detail=detail)
        )
        result.outcome = "failed"
        return result
    try:
        keys = graph_keys(module, compiled, module_text)
        for c, key in zip(compiled, keys):
            key += f"\n# scenarios: {sorted(only) if only else 'all'}, seed {seed}"
            g = c.pair
            names = [p.name for p in g.params]
            runs = _CACHE.get(key)
            if runs is None:
                runs = _CACHE[key] = list(_runs(module, c, seed ^ zlib.crc32(key.encode()), only))
                if len(_CACHE) > 20_000:
                    _CACHE.clear()
            else:
                result.runs["reused"] += len(runs)
            for scenario, outcome, failed, inputs in runs:
                result.runs[outcome] += 1
                if failed is not None:
                    cause = _cause(failed.kind, scenario, failed.detail, g.name, names)
                    result.failures.append(
                        Failure(
                            failed.kind, cause, text, g.name, scenario, failed.detail, inputs, seed
                        )
                    )
    finally:
        sys.modules.pop(module.__name__, None)
    if result.failures:
        result.outcome = "failed"
    return result


# What running a graph gave, by the graph's key (see graph_keys): mutants mostly leave all but one
# graph of an example as they were, and those are run once.
_CACHE: dict[str, list] = {}


def graph_keys(module, compiled, module_text: str) -> list[str]:
    """For each graph, the module's text less what the other graphs' functions and classes are
    (black puts two blank lines between top-level definitions): a graph whose key was seen
    before runs the same code on the same inputs."""
    chunks = module_text.split("\n\n\n")
    defined = [set(re.findall(r"^(?:def|class) (\w+)", chunk, re.M)) for chunk in chunks]
    owned = []
    for c in compiled:
        name = c.pair.name
        fnames = {getattr(f, "__name__", "") for f in functions(module, name).values()}
        owned.append(
            {
                i
                for i, (chunk, d) in enumerate(zip(chunks, defined))
                if d & fnames or (d and f"Gradients of {name} with" in chunk)
            }
        )
    keys = []
    for k in range(len(compiled)):
        others = set().union(*(o for j, o in enumerate(owned) if j != k))
        keys.append("\n\n\n".join(c for i, c in enumerate(chunks) if i not in others))
    return keys


def _runs(module, c, seed: int, only=None):
    """(scenario, outcome, _Failed or None, inputs) for each scenario of graph `c`."""
    g = c.pair
    drawn = scenarios(g, seed)
    while True:
        try:
            s = next(drawn, None)
        except (
            ValueError,
            MemoryError,
        ) as e:  # (more than 32 axes, say: NumPy makes no such array)
            yield "inputs", f"skipped: inputs cannot be made ({type(e).__name__})", None, ""
            return
        if s is None:
            return
        if only is not None and s.name not in only:
            continue
        if _too_large(c, s.sizes):
            yield s.name, "skipped: too large", None, ""
            continue
        try:
            yield s.name, run_graph(module, c, s, seed), None, ""
        except _Failed as f:
            yield s.name, f.kind, f, s.describe(g.params)


class _alarm:
    """Raise Timeout in the main thread after `seconds` (no limit elsewhere)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        self.on = bool(self.seconds) and threading.current_thread() is threading.main_thread()
        if self.on:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        if self.on:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)

    @staticmethod
    def _fire(*_):
        raise Timeout()


# ---------------------------------------------------------------------------------------------
# Shrinking a reproducer


def shrink(failure: Failure, budget_s: float = 20.0) -> Failure:
    """A shorter source with the same cause: chunks of lines removed while the cause stays."""
    deadline = time.monotonic() + budget_s
    best = failure

    def same(text):
        r = check_source(text, failure.seed)
        return next((f for f in r.failures if f.cause == failure.cause), None)

    lines = best.source.splitlines(keepends=True)
    chunk = max(1, len(lines) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(lines) and time.monotonic() < deadline:
            trial = lines[:i] + lines[i + chunk :]
            found = same("".join(trial)) if trial else None
            if found:
                lines, best, changed = trial, found, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return best


# ---------------------------------------------------------------------------------------------
# The long run


@dataclasses.dataclass
class Tally:
    sources: int = 0
    diagnostics: int = 0
    compiled: int = 0
    failed_sources: int = 0
    duplicates: int = 0  # sources whose code (comments aside) an earlier source had
    crashed: int = 0  # sources the compiler crashed on, whose module did not import, or timed out
    runs: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    causes: dict = dataclasses.field(default_factory=dict)  # cause -> [count, shortest Failure]

    def add(self, r: Result) -> None:
        self.sources += 1
        self.diagnostics += r.outcome == "diagnostic"
        self.compiled += r.outcome in ("compiled", "failed")
        self.failed_sources += bool(r.failures)
        self.crashed += r.outcome in ("compiler crash", "timeout") or any(
            f.kind == "import error" for f in r.failures
        )
        self.runs.update(r.runs)
        for f in r.failures:
            self.add_failure(f)

    def add_failure(self, f: Failure, count: int = 1) -> None:
        entry = self.causes.setdefault(f.cause, [0, f])
        entry[0] += count
        if len(f.source) < len(entry[1].source):
            entry[1] = f

    def merge(self, other: Tally) -> None:
        self.sources += other.sources
        self.diagnostics += other.diagnostics
        self.compiled += other.compiled
        self.failed_sources += other.failed_sources
        self.duplicates += other.duplicates
        self.crashed += other.crashed
        self.runs.update(other.runs)
        for count, f in other.causes.values():
            self.add_failure(f, count)

    def counts(self) -> dict[str, int]:
        ran = sum(v for k, v in self.runs.items() if k != "reused")
        skipped = sum(v for k, v in self.runs.items() if k.startswith("skipped"))
        return {
            "sources tried": self.sources,
            "same code as an earlier": self.duplicates,
            "clean diagnostics": self.diagnostics,
            "compiled": self.compiled,
            "graph runs": ran,
            "of which reused": self.runs["reused"],
            "checked": self.runs["checked"] + self.runs["checked (forward only)"],
            "clean errors": self.runs["clean error"],
            "skipped": skipped,
            "crashes": self.runs["crash"] + self.crashed,
            "wrong gradients": self.runs["wrong gradient"],
            "writes into inputs": self.runs["input written"],
            "aliasing": self.runs["aliasing"],
            "inconsistent": self.runs["inconsistent"],
            "dout unchecked": self.runs["dout unchecked"],
            "sources with a failure": self.failed_sources,
        }

    def summary(self, elapsed: float) -> str:
        lines = [f"{k:>24}: {v}" for k, v in self.counts().items()]
        for k, v in sorted(self.runs.items()):
            if k.startswith("skipped"):
                lines.append(f"{'':>26}{k}: {v}")
        rate = self.sources / elapsed if elapsed else 0.0
        lines.append(f"{'time':>24}: {elapsed:.1f} s ({rate:.1f} sources/s)")
        lines.append(f"{'failure causes':>24}: {len(self.causes)}")
        return "\n".join(lines)

    def reproducers(self) -> str:
        out = []
        ordered = sorted(self.causes.items(), key=lambda kv: (kv[1][1].kind, -kv[1][0]))
        for cause, (count, f) in ordered:
            out.append(f"=== {count} x {cause}\n{f.report()}\n")
        return "\n".join(out)


_SEEN: set[bytes] = set()  # the code keys this process has checked


def _work(job) -> Tally:
    seed, start, stop, rewrites = job
    tally = Tally()
    for i in range(start, stop):
        text = mutant(seed, i, rewrites)
        key = code_key(text)
        if key in _SEEN:
            tally.sources += 1
            tally.duplicates += 1
            continue
        _SEEN.add(key)
        tally.add(check_source(text, seed=seed))
    return tally


def _init_worker():
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit = 4 << 30  # no mutant gets to fill the shared machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run(
    mutants: int,
    seed: int = 0,
    jobs: int = 1,
    rewrites: float = REWRITES,
    chunk: int = 100,
    progress=None,
) -> Tally:
    """Check `mutants` mutated sources (the unmutated examples first) on `jobs` processes; a
    source whose code (comments aside) was checked before in the same process is counted, not
    checked again."""
    tally = Tally()
    for text in EXAMPLES:
        tally.add(check_source(text, seed=seed))
    work = [(seed, a, min(a + chunk, mutants), rewrites) for a in range(0, mutants, chunk)]
    if jobs <= 1:
        parts = map(_work, work)
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_init_worker)
        parts = pool.imap_unordered(_work, work)
    try:
        for part in parts:
            tally.merge(part)
            if progress:
                progress(tally)
    except KeyboardInterrupt:  # Ctrl-C: report what was checked so far
        print("interrupted", file=sys.stderr)
        if jobs > 1:
            pool.terminate()
    else:
        if jobs > 1:
            pool.close()
    if jobs > 1:
        pool.join()
    return tally


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Compile mutated bp sources and run every compiled graph under hostile inputs."
    )
    parser.add_argument("--mutants", type=int, default=5000, help="mutated sources (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--rewrites",
        type=float,
        default=REWRITES,
        help=f"the share of mutants that rewrite statements (default {REWRITES})",
    )
    parser.add_argument("--no-shrink", action="store_true", help="print reproducers unshrunk")
    parser.add_argument("--source", help="check this one bp file instead, and print each failure")
    args = parser.parse_args(argv)
    start = time.monotonic()
    if args.source:
        text = Path(args.source).read_text()
        r = check_source(text, seed=args.seed, timeout=None)
        print(f"{r.outcome}; runs: {dict(r.runs)}")
        for f in r.failures:
            print(f.report(), end="\n\n")
        return 1 if r.failures else 0

    last = [start]

    def progress(t: Tally):
        if time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print(f"... {t.sources} sources, {len(t.causes)} failure causes", file=sys.stderr)

    tally = run(args.mutants, args.seed, args.jobs, args.rewrites, progress=progress)
    elapsed = time.monotonic() - start
    if tally.causes and not args.no_shrink:  # a minute at most, shared by the causes
        for entry in tally.causes.values():
            entry[1] = shrink(entry[1], budget_s=min(10.0, 60.0 / len(tally.causes)))
    print(tally.reproducers())
    print(f"seed {args.seed}, {args.mutants} mutants + {len(EXAMPLES)} examples, {args.jobs} jobs")
    print(tally.summary(elapsed))
    return 1 if tally.causes else 0


if __name__ == "__main__":
    sys.exit(main())
