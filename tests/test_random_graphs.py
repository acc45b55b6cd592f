"""Random well-shaped bp graphs drawn from the op registry, compiled and gradient-checked.

A graph is 2 to 30 statements `vI = CALL`, each one call of a registered operation written the
way the language spells it (`exp(x)`, `a @ b`, `sum(x, axis=-1, keepdims=true)`, `x.T`), on
parameters, earlier values, numbers and dimension names; its output `out` adds `sum(v * v)` over
the values that nothing else uses. `RULES` says, for each operation, how to draw a well-shaped
call: which operands fit (shapes that broadcast or line up for `@`, values inside the function's
domain) and the interval the result lies in, so that `log` and `sqrt` see positive values, a
divisor stays away from zero and `exp` never overflows. Values are at most 3-d: `conv2d` and the
pools read a 4-d [N, C, H, W] image made inside their call (a value reshaped or broadcast to 4-d,
or a 4-d parameter) and bring their result back to 3-d or less. An operation the language spells
(a registry entry with `call`, or an operator of the grammar) needs a rule or a reason in
`EXCLUDED`: a new operation cannot be skipped silently.

Each graph is compiled by `bpc.compile_source` (as `bpc compile` writes it, formatting included) and
checked in float64: `f_grad` against `f_forward` + `f_backward(1.0)`; each gradient's shape and
dtype, and a fresh, writable array; the inputs untouched; the value and the gradients against
autograd run on the independent oracle evaluator (`tests/oracle.py`); the gradients against
central finite differences (`tests/support.py`); and float32 in, float32 out. A non-smooth
operation declares a `kink`: how far its operands are from the points where it is not
differentiable (`relu` at 0, a comparison where its operands are equal). Finite differences are
skipped for a graph that comes within `FD_MARGIN` of a kink, the autograd comparison within
`TIE_MARGIN` (the two sides may break a near-tie differently); an exact tie is one by
construction and is checked. Hypothesis counts the skipped graphs as events
(`--hypothesis-show-statistics`).

On a failure hypothesis shrinks the graph and prints its bp source. `pytest -m slow` runs the long
version (see docs/testing.md).
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import math
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import black
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import bpc.emit
import bpc.ops  # noqa: F401 - fills the registry
from bpc.dims import Dim, product
from bpc.ir import OPS
from bpc.loader import module_from_text
from bpc.parse import _COMPARE
from bpc.pipeline import compile_graphs
from bpc.stats import evaluate, select
from tests import oracle
from tests.support import load, numeric_grad, rel_error

# Distinct sizes, so that a transposed or misplaced gradient is a shape error.
SIZES = {"n": 3, "m": 4, "k": 2}

CI_EXAMPLES = 200  # graphs per CI run
SLOW_EXAMPLES = int(os.environ.get("BPC_SLOW_GRAPHS", "5000"))  # graphs in `pytest -m slow`

FD_TOL = 1e-5  # gradients vs central finite differences, relative to the largest gradient
FD_ROUNDING = 1e-9  # plus this times |f|: f(x + eps) - f(x - eps) loses ~ulp(f) / eps
AUTOGRAD_TOL = 1e-8  # gradients vs autograd on the oracle
FORWARD_TOL = 1e-10  # the value vs the oracle's
PAIR_TOL = 1e-12  # f_grad vs f_forward + f_backward
FD_MARGIN = 1e-3  # finite differences need every kinked operand at least this far from its kink
TIE_MARGIN = 1e-7  # closer than this, the compiler and autograd may break a tie differently

CAP = 50.0  # a value that may exceed this in magnitude is only summed into the output
SQUARED = 10.0  # the output adds `sum(v * v)` for values up to this magnitude, `sum(v)` beyond
MAX_RANK, MAX_SIZE = 3, 64  # the largest value drawn

REAL, POSITIVE = (-1.0, 1.0), (0.5, 2.0)  # the ranges parameters are drawn from


# ---------------------------------------------------------------------------------------------
# Shapes and values


@functools.cache
def size(d: Dim) -> int:
    return d.subs({s: Dim.of(v) for s, v in SIZES.items()}).value


def numel(shape) -> int:
    return math.prod(size(d) for d in shape)


@functools.cache
def small(shape) -> bool:
    return len(shape) <= MAX_RANK and numel(shape) <= MAX_SIZE


@functools.cache
def plain(shape) -> bool:
    """A parameter's type takes names and integers only, not `n*m`."""
    return all(len(d.terms) <= 1 and not d.is_product and not d.is_sum for d in shape)


def dim_text(d: Dim) -> str:
    return f"({d})" if d.is_sum else str(d)


def shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def tuple_text(items) -> str:
    items = [str(i) for i in items]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def S(*dims) -> tuple[Dim, ...]:
    return tuple(Dim.of(d) for d in dims)


ONE = Dim.of(1)

# Shapes a new parameter may have, simplest first (hypothesis shrinks towards the front).
PARAM_SHAPES = [
    S(),
    S("m"),
    S("n", "m"),
    S("n"),
    S("k"),
    S("n", 1),
    S(1, "m"),
    S("m", "n"),
    S("n", "k"),
    S("k", "m"),
    S("m", "k"),
    S("k", "n", "m"),
    S("k", 1, "m"),
    S("k", "n", 1),
    S(1, "n", "m"),
]


@functools.cache
def broadcast(a, b):
    """NumPy broadcasting of symbolic shapes (distinct names never broadcast), or None."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else ONE
        y = b[-i] if i <= len(b) else ONE
        if x == y or y == ONE:
            out.append(x)
        elif x == ONE:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


@functools.cache
def matmul_shape(a, b):
    """The shape of `a @ b`, or None when they do not line up."""
    if not a or not b or a[-1] != (b[-2] if len(b) > 1 else b[0]):
        return None
    batch = broadcast(a[:-2], b[:-2])
    if batch is None:
        return None
    return batch + a[-2:-1] + (b[-1:] if len(b) > 1 else ())


@dataclass(frozen=True)
class Val:
    """An operand: how a call names it, its shape, and an interval its elements lie in."""

    text: str
    shape: tuple[Dim, ...]
    lo: float
    hi: float
    dtype: str = "float"  # float | bool | int
    static: bool = False  # a number or a dimension name, known at compile time
    domain: str = ""  # for a new parameter: "real" | "positive" | "int:BOUND"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def result(text, shape, lo, hi, dtype="float") -> Val:
    return Val(text, tuple(shape), float(lo), float(hi), dtype)


def hull(*xs) -> tuple[float, float]:
    return min(xs), max(xs)


def monotone(f, x: Val) -> tuple[float, float]:
    return hull(f(x.lo), f(x.hi))


def times(a: Val, b: Val) -> tuple[float, float]:
    return hull(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)


NUMBERS = [
    Val(t, (), float(t), float(t), static=True) for t in ("2", "0.5", "1.5", "3", "-1.5", "-0.5")
]
DIM_VALUES = [Val(name, (), v, v, "int", static=True) for name, v in SIZES.items()]


def ANY(v: Val) -> bool:  # noqa: N802 - a predicate constant
    return True


def positive(v: Val) -> bool:
    return v.lo >= 0.2


def away_from_zero(v: Val) -> bool:
    return v.lo >= 0.2 or v.hi <= -0.2


def bounded(limit: float) -> Callable[[Val], bool]:
    return lambda v: v.mag <= limit


def rank_at_least(r: int) -> Callable[[Val], bool]:
    return lambda v: v.ndim >= r


def both(*preds) -> Callable[[Val], bool]:
    return lambda v: all(p(v) for p in preds)


# ---------------------------------------------------------------------------------------------
# Drawing a graph


class Gen:
    """A graph being drawn: its parameters, its statements and the values they define."""

    def __init__(self, draw):
        self.draw = draw
        self.params: list[Val] = []
        self.pool: list[Val] = []  # parameters and statement values, in order
        self.lines: list[str] = []
        self.ops: list[str] = []
        self.used: set[str] = set()
        self.budget = 0  # how many statements the graph gets

    # Operands ---------------------------------------------------------------------------------

    def pick(
        self,
        ok: Callable[[Val], bool] = ANY,
        *,
        shapes=None,
        constants=False,
        dtype="float",
        exclude=(),
        optional=False,
    ) -> Val | None:
        """An operand that `ok` accepts: an earlier value, a new parameter (of one of `shapes`,
        or any of PARAM_SHAPES), or with `constants` a number or a dimension name. None when
        nothing fits and the operand is `optional`."""
        values = [  # the latest first, so graphs grow deep
            v
            for v in reversed(self.pool)
            if v.dtype == dtype and v.mag <= CAP and v.text not in exclude and ok(v)
        ]
        fresh = []
        if dtype == "float":
            shapes = [s for s in (shapes or PARAM_SHAPES) if plain(s) and small(s)]
            for s in dict.fromkeys(shapes):
                for domain, (lo, hi) in (("real", REAL), ("positive", POSITIVE)):
                    v = Val("", s, lo, hi, domain=domain)
                    if ok(v):
                        fresh.append(v)
                        break
        consts = []
        if constants:  # a dimension name is a value once a parameter's shape declares it
            dims = [v for v in DIM_VALUES if v.text in self.declared()]
            consts = [v for v in NUMBERS + dims if ok(v)]
        kinds = [k for k, c in (("value", values), ("param", fresh), ("const", consts)) if c]
        if not kinds and optional:
            return None
        assert kinds, "no operand fits; a rule must leave room for a new parameter"
        # Mostly earlier values; hypothesis shrinks towards the front of each list.
        weights = {"value": 6, "param": 2 if len(self.params) < 3 else 1, "const": 1}
        kind = self.choice([k for k in kinds for _ in range(weights[k])])
        if kind == "value":
            chosen = self.choice(values)
        elif kind == "const":
            return self.choice(consts)
        else:
            chosen = self.param(self.choice(fresh))
        self.used.add(chosen.text)
        return chosen

    def param(self, spec: Val) -> Val:
        """A new parameter; one of more than MAX_RANK axes (an image or filters of conv2d) is
        for the rule that asked for it (`tensor`), not for the pool."""
        prefix = {"real": "x", "positive": "p"}.get(spec.domain, "i")
        name = f"{prefix}{sum(p.text[0] == prefix for p in self.params)}"
        v = Val(name, spec.shape, spec.lo, spec.hi, spec.dtype, domain=spec.domain)
        self.params.append(v)
        if v.ndim <= MAX_RANK:
            self.pool.append(v)
        return v

    def tensor(self, shape) -> Val:
        """A float parameter of `shape` beyond MAX_RANK axes (conv2d's [N, C, H, W] image or its
        [F, C, KH, KW] filters): an earlier one of that shape, or new."""
        same = [p for p in self.params if p.dtype == "float" and p.shape == tuple(shape)]
        if same and self.flag():
            chosen = self.choice(same)
        else:
            chosen = self.param(Val("", tuple(shape), *REAL, domain="real"))
        self.used.add(chosen.text)
        return chosen

    def labels(self, shape, bound: int) -> Val:
        """An integer parameter of `shape` with elements in [0, bound): an earlier one or new."""
        domain = f"int:{bound}"
        same = [p for p in self.params if p.domain == domain and p.shape == tuple(shape)]
        if same and self.flag():
            chosen = self.choice(same)
        else:
            chosen = self.param(Val("", tuple(shape), 0, bound - 1, "int", domain=domain))
        self.used.add(chosen.text)
        return chosen

    def declared(self) -> list[str]:
        """The dimension names the parameters declare so far: the ones a call may use."""
        names = {s for p in self.params for d in p.shape for s in d.symbols}
        return [d for d in SIZES if d in names]

    def partner(self, a: Val, ok=ANY, *, constants=True, masks=False) -> Val:
        """A second operand that broadcasts with `a` to a small shape."""

        def fits(v: Val) -> bool:
            shape = broadcast(v.shape, a.shape)
            return shape is not None and small(shape) and v.text != a.text and ok(v)

        shapes = PARAM_SHAPES + [a.shape, a.shape[1:], tuple(ONE for _ in a.shape)]
        if masks and self.draw(st.integers(0, 3)) == 0:
            bools = [v for v in self.pool if v.dtype == "bool" and fits(v)]
            if bools:
                chosen = self.choice(bools)
                self.used.add(chosen.text)
                return chosen
        return self.pick(fits, shapes=shapes, constants=constants)

    def choice(self, options):
        """One of `options` (shrinking towards the first); `st.integers` strategies are cached,
        unlike `st.sampled_from` of a new list, which makes drawing several times faster."""
        return options[self.draw(st.integers(0, len(options) - 1))]

    def flag(self) -> bool:
        return self.draw(st.booleans())

    # Statements -------------------------------------------------------------------------------

    def statement(self, op: str) -> Val | None:
        """Draw a call of `op` into a new statement; None if the rule finds no room for one."""
        v = RULES[op].draw(self)
        if v is None:
            return None
        name = f"v{len(self.lines)}"
        # (a loop is several lines, each naming its value `<v>`)
        self.lines.append(v.text.replace("<v>", name) if "<v>" in v.text else f"{name} = {v.text}")
        self.ops.append(op)
        v = Val(name, v.shape, v.lo, v.hi, v.dtype)
        self.pool.append(v)
        return v

    def program(self) -> Program:
        ends = [
            v
            for v in self.pool
            if v.text.startswith("v") and v.dtype == "float" and v.text not in self.used
        ]
        if not ends:  # every statement feeds another, or is a mask: use the last float value
            ends = [next(v for v in reversed(self.pool) if v.dtype == "float")]
        # Squares of small values, large ones as they are: a large output drowns the finite
        # differences of the small terms in rounding error.
        out = " + ".join(
            f"sum({v.text} * {v.text})" if v.mag <= SQUARED else f"sum({v.text})" for v in ends
        )
        params = ", ".join(
            f"{p.text}: {'int' if p.dtype == 'int' else ''}{shape_text(p.shape)}"
            for p in self.params
        )
        body = "".join(f"    {line}\n" for line in [*self.lines, f"out = {out}"])
        source = f"graph f({params}) -> out {{\n{body}}}\n"
        specs = tuple((p.text, tuple(size(d) for d in p.shape), p.domain) for p in self.params)
        return Program(source, specs, tuple(self.ops))


@dataclass(frozen=True)
class Program:
    source: str
    params: tuple[tuple[str, tuple[int, ...], str], ...]  # name, shape, domain
    ops: tuple[str, ...]  # the operation of each statement

    def __repr__(self) -> str:
        return "\n" + self.source

    def _repr_pretty_(self, p, cycle) -> None:  # hypothesis prints the falsifying graph's source
        p.text(repr(self))

    def inputs(self, dtype=np.float64) -> dict[str, np.ndarray]:
        """Inputs in each parameter's range, the same for the same source."""
        rng = np.random.default_rng(zlib.crc32(self.source.encode()))
        out = {}
        for name, shape, domain in self.params:
            if domain.startswith("int:"):
                out[name] = rng.integers(0, int(domain[4:]), shape)
                continue
            lo, hi = POSITIVE if domain == "positive" else REAL
            out[name] = np.asarray(rng.uniform(lo, hi, shape), dtype=dtype)
        return out


# Hypothesis shrinks a failing graph's operations towards the front of the list: these first.
SIMPLEST = ("add", "mul", "sub")


@st.composite
def programs(draw, min_ops=2, max_ops=30, first: str | None = None) -> Program:
    """A random graph of `min_ops` to `max_ops` statements, each drawn by RULES; `first` forces
    the first statement's operation (or the first but what it needs)."""
    ops = sorted((op for op in RULES if op in OPS), key=lambda op: (op not in SIMPLEST, op))
    g = Gen(draw)
    g.budget = draw(st.integers(min_ops, max_ops))
    while len(g.lines) < g.budget:
        if first and first not in g.ops:
            if g.statement(first) is None:
                g.budget += 1  # room for what it needs first (`where` a mask)
        else:
            g.statement(g.choice(ops))
    return g.program()


# ---------------------------------------------------------------------------------------------
# The rules: how to draw a well-shaped call of each operation


@dataclass(frozen=True)
class Rule:
    """How to draw a call: `draw(gen)` returns the call's text, shape and interval (or None when
    there is no room for the call). A non-smooth operation has a `kink(node, args, value)`: the
    distances of its operands, element by element, from the points where it is not
    differentiable, on the values the oracle computes."""

    draw: Callable[[Gen], Val]
    kink: Callable | None = None


RULES: dict[str, Rule] = {}

# Spelled operations the generator leaves out, each with its reason.
EXCLUDED: dict[str, str] = {}


def rule(*names: str, kink=None):
    def register(draw):
        for name in names:
            RULES[name] = Rule(draw if len(names) == 1 else _bind(draw, name), kink)
        return draw

    return register


def _bind(draw, name):
    return lambda g: draw(g, name)


def unary(name: str, f, ok=ANY, kink=None):
    """An elementwise function of one argument, increasing or decreasing (its interval is its
    values at the ends); `ok` keeps its argument in the domain where it is smooth and small."""

    def draw(g: Gen) -> Val:
        x = g.pick(ok)
        return result(f"{name}({x.text})", x.shape, *monotone(f, x))

    RULES[name] = Rule(draw, kink)


def abs_distance(node, args, value):
    """Elementwise functions with a kink at 0: relu, abs."""
    return np.abs(args[0])


def gap(node, args, value):
    """Comparisons and maximum/minimum: how far apart the two operands are."""
    a, b = (np.asarray(x, dtype=np.float64) for x in args[:2])
    return np.abs(a - b)


def _sigmoid(x):
    return 0.5 * math.tanh(0.5 * x) + 0.5


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


unary("exp", math.exp, bounded(3))
unary("log", math.log, positive)
unary("sqrt", math.sqrt, positive)
unary("tanh", math.tanh)
unary("sigmoid", _sigmoid)
unary("relu", lambda x: max(x, 0.0), kink=abs_distance)
unary("log1p", math.log1p, lambda v: v.lo >= -0.8)
unary("softplus", _softplus)
unary("erf", math.erf)


def _gelu_value(x: float, tanh_form: bool) -> float:
    if tanh_form:
        return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


@rule("gelu")
def _gelu(g: Gen) -> Val:
    x = g.pick()
    form = g.choice(["", ', approximate="tanh"', ', approximate="none"'])
    ends = [_gelu_value(v, "tanh" in form) for v in (x.lo, x.hi)]
    if x.lo < -0.75 < x.hi:  # its minimum, about -0.17 at -0.75, lies inside
        ends.append(_gelu_value(-0.75, "tanh" in form) - 0.01)
    return result(f"gelu({x.text}{form})", x.shape, *hull(*ends))


def _mish_value(x: float) -> float:
    return x * math.tanh(_softplus(x))


@rule("elu")
def _elu(g: Gen) -> Val:
    x = g.pick()  # (increasing: its bounds are those of its argument's)
    ends = [v if v > 0 else math.expm1(v) for v in (x.lo, x.hi)]
    return result(f"elu({x.text})", x.shape, *hull(*ends))


@rule("mish")
def _mish(g: Gen) -> Val:
    x = g.pick()
    ends = [_mish_value(v) for v in (x.lo, x.hi)]
    if x.lo < -1.19 < x.hi:  # its minimum, about -0.309 at -1.19, lies inside
        ends.append(_mish_value(-1.19) - 0.01)
    return result(f"mish({x.text})", x.shape, *hull(*ends))


def _huber_value(x: float, delta: float) -> float:
    return 0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta)


@rule("huber")
def _huber(g: Gen) -> Val:
    x = g.pick()
    delta = g.choice([1.0, 0.5, 2.0])
    form = "" if delta == 1.0 else g.choice([f", {delta}", f", delta={delta}"])
    ends = [_huber_value(v, delta) for v in (x.lo, x.hi)]
    if x.lo < 0 < x.hi:  # its minimum, 0 at 0, lies inside
        ends.append(0.0)
    return result(f"huber({x.text}{form})", x.shape, *hull(*ends))


@rule("abs", kink=abs_distance)
def _abs(g: Gen) -> Val:
    x = g.pick()
    lo = 0.0 if x.lo <= 0 <= x.hi else min(abs(x.lo), abs(x.hi))
    return result(f"abs({x.text})", x.shape, lo, x.mag)


@rule("loop")
def _loop(g: Gen) -> Val:
    """A loop over `range(K)`, K a number or a dimension name, in one of three forms: a value
    carried through a squashing step (`v = tanh(v * 0.5 + b)`), the slots of an array written
    one by one from another's (`v[t] = sin(a[t] * c + t)`), or a sum carried over the steps
    with the loop variable as a value (`v = v + sin(a + t)`). Each form's interval holds
    whatever the trip count."""
    form = g.draw(st.integers(0, 2))
    if form == 1:
        a = g.pick(rank_at_least(1))
        size = a.shape[0]
        c = g.choice(NUMBERS[:4]).text
        lines = [
            f"<v> = zeros({tuple_text(a.shape)})",
            f"for t in range({dim_text(size)}) {{",
            f"    <v>[t] = sin({a.text}[t] * {c} + t)",
            "}",
        ]
        return result("\n    ".join(lines), a.shape, -1, 1)
    dims = [d for d in g.declared()]
    trips = ["1", "2", "3"] + dims
    count = g.choice(trips)
    trip = SIZES[count] if count in SIZES else int(count)
    if form == 0:
        a = g.pick(bounded(CAP))
        b = g.partner(a, bounded(CAP), constants=False)
        shape = broadcast(a.shape, b.shape)
        lines = [
            f"<v> = {a.text} * ones({tuple_text(shape)})",
            f"for t in range({count}) {{",
            f"    <v> = tanh(<v> * 0.5 + {b.text})",
            "}",
        ]
        return result("\n    ".join(lines), shape, min(-1, a.lo), max(1, a.hi))
    a = g.pick(bounded(CAP))
    lines = [
        f"<v> = zeros({tuple_text(a.shape)})",
        f"for t in range({count}) {{",
        f"    <v> = <v> + sin({a.text} + t)",
        "}",
    ]
    return result("\n    ".join(lines), a.shape, -trip, trip)


@rule("sin", "cos")
def _trig(g: Gen, name: str) -> Val:
    x = g.pick(bounded(10))
    return result(f"{name}({x.text})", x.shape, -1, 1)


@rule("neg")
def _neg(g: Gen) -> Val:
    x = g.pick()
    return result(f"-{x.text}", x.shape, -x.hi, -x.lo)


def binary(g: Gen, ok_left=ANY, ok_right=ANY, *, left_numbers=True, masks=False):
    """Two operands that broadcast together, either of them possibly a number or a dimension."""
    a = g.pick(ok_left)
    b = g.partner(a, ok_right, masks=masks)
    if left_numbers and b.static and b.lo > 0 and ok_left(b) and ok_right(a) and g.flag():
        a, b = b, a  # `2 - x`, `1.5 / x`
    return a, b, broadcast(a.shape, b.shape)


@rule("add")
def _add(g: Gen) -> Val:
    a, b, shape = binary(g)
    return result(f"{a.text} + {b.text}", shape, a.lo + b.lo, a.hi + b.hi)


@rule("sub")
def _sub(g: Gen) -> Val:
    a, b, shape = binary(g)
    return result(f"{a.text} - {b.text}", shape, a.lo - b.hi, a.hi - b.lo)


@rule("mul")
def _mul(g: Gen) -> Val:
    a, b, shape = binary(g, masks=True)  # `x * (x > 0)` style masks
    if b.dtype == "bool":
        return result(f"{a.text} * {b.text}", shape, min(a.lo, 0), max(a.hi, 0))
    return result(f"{a.text} * {b.text}", shape, *times(a, b))


@rule("div")
def _div(g: Gen) -> Val:
    a, b, shape = binary(g, ok_right=away_from_zero)
    return result(f"{a.text} / {b.text}", shape, *times(a, Val("", (), 1 / b.hi, 1 / b.lo)))


@rule("pow")
def _pow(g: Gen) -> Val:
    form = g.choice(["square", "cube", "root", "inverse", "tensor", "base"])
    if form in ("square", "cube"):
        x = g.pick(bounded(5))
        if form == "cube":
            return result(f"{x.text} ** 3", x.shape, x.lo**3, x.hi**3)
        lo = 0.0 if x.lo <= 0 <= x.hi else min(x.lo**2, x.hi**2)
        return result(f"{x.text} ** 2", x.shape, lo, x.mag**2)
    if form in ("root", "inverse"):
        x = g.pick(both(positive, bounded(10)))
        e = g.choice(["0.5", "-1", "1.5", "-0.5"] if form == "root" else ["-1", "-2"])
        return result(f"{x.text} ** {e}", x.shape, *monotone(lambda t: t ** float(e), x))
    if form == "tensor":  # `a ** b` with a tensor exponent: a positive base
        a = g.pick(both(positive, bounded(4)))
        b = g.partner(a, bounded(2), constants=False)
        lo, hi = hull(*(x**y for x in (a.lo, a.hi) for y in (b.lo, b.hi)))
        return result(f"{a.text} ** {b.text}", broadcast(a.shape, b.shape), lo, hi)
    base = g.choice(["2", "0.5"])  # `2 ** x`
    x = g.pick(bounded(4))
    return result(f"{base} ** {x.text}", x.shape, *monotone(lambda t: float(base) ** t, x))


@rule("lt", "le", "gt", "ge", "eq", "ne", kink=gap)
def _compare(g: Gen, name: str) -> Val:
    symbol = {op: s for s, op in _COMPARE.items()}[name]
    a, b, shape = binary(g)
    return result(f"{a.text} {symbol} {b.text}", shape, 0, 1, "bool")


@rule("matmul")
def _matmul(g: Gen) -> Val:
    on_left = g.flag()  # `a @ b` or `b @ a`

    def contracted(v: Val) -> Dim:
        return v.shape[-1] if on_left else v.shape[-2] if v.ndim > 1 else v.shape[0]

    # The contracted dimension is a plain one, so that a new parameter can match it.
    a = g.pick(lambda v: v.ndim >= 1 and plain((contracted(v),)))
    k = contracted(a)

    def fits(v: Val) -> bool:
        shape = matmul_shape(a.shape, v.shape) if on_left else matmul_shape(v.shape, a.shape)
        return shape is not None and small(shape)

    if on_left:  # b: [k], [k, d] or [B, k, d]
        shapes = [(k,)] + [(k, Dim.of(d)) for d in SIZES] + [(Dim.of("k"), k, Dim.of("m"))]
    else:  # b: [k], [d, k] or [B, d, k]
        shapes = [(k,)] + [(Dim.of(d), k) for d in SIZES] + [(Dim.of("k"), Dim.of("n"), k)]
    b = g.pick(fits, shapes=shapes, exclude=(a.text,) if g.flag() else ())
    left, right = (a, b) if on_left else (b, a)
    shape = matmul_shape(left.shape, right.shape)
    terms = size(k)
    lo, hi = times(left, right)
    return result(f"{left.text} @ {right.text}", shape, terms * lo, terms * hi)


def _axes(g: Gen, x: Val):
    """A reduction's axes and how the call spells them: all of them, one (maybe negative) or a
    tuple; keepdims or not; by keyword or by position."""
    form = g.choice(["all", "one", "tuple"]) if x.ndim else "all"
    if form == "all":
        axes, spelled = tuple(range(x.ndim)), None
    elif form == "one":
        axis = g.draw(st.integers(0, x.ndim - 1))
        axes, spelled = (axis,), str(axis - x.ndim if g.flag() else axis)
    else:
        chosen = g.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True))
        axes = tuple(sorted(chosen))
        spelled = tuple_text(a - x.ndim if g.flag() else a for a in chosen)
    keepdims = g.flag()
    shape = tuple(
        ONE if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes
    )
    args = []
    if g.flag() and spelled is not None:  # positionally: `sum(x, 1, true)`
        args.append(spelled)
        if keepdims:
            args.append("true")
    else:
        if spelled is not None:
            args.append(f"axis={spelled}")
        if keepdims or g.flag():
            args.append(f"keepdims={'true' if keepdims else 'false'}")
    count = math.prod(size(x.shape[i]) for i in axes)
    return args, shape, count


@rule("sum", "mean")
def _sum(g: Gen, name: str) -> Val:
    x = g.pick()
    args, shape, count = _axes(g, x)
    scale = count if name == "sum" else 1
    return result(f"{name}({', '.join([x.text, *args])})", shape, scale * x.lo, scale * x.hi)


@rule("transpose")
def _transpose(g: Gen) -> Val:
    x = g.pick()
    form = g.choice([".T", "transpose(x)", "axes"])
    if form == ".T":
        return result(f"{x.text}.T", x.shape[::-1], x.lo, x.hi)
    if form == "transpose(x)":
        return result(f"transpose({x.text})", x.shape[::-1], x.lo, x.hi)
    perm = g.draw(st.permutations(range(x.ndim)))
    spelled = tuple_text(a - x.ndim if g.flag() else a for a in perm)
    shape = tuple(x.shape[a] for a in perm)
    return result(f"transpose({x.text}, {spelled})", shape, x.lo, x.hi)


@rule("reshape")
def _reshape(g: Gen) -> Val:
    x = g.pick()
    s = x.shape
    dims = [d for d in s if d != ONE]
    options = [
        (product(s),),  # flatten: `(n*m,)`
        (ONE, *s),
        (*s, ONE),
        tuple(dims),  # drop the ones
        tuple(reversed(s)),  # the same elements, read as another shape
    ]
    if len(s) >= 2:
        options += [(*s[:-2], s[-2] * s[-1]), (s[0] * s[1], *s[2:])]
    options = [o for o in dict.fromkeys(options) if len(o) <= MAX_RANK]
    shape = g.choice(options)
    return result(f"reshape({x.text}, {tuple_text(dim_text(d) for d in shape)})", shape, x.lo, x.hi)


def _extremum_gap(node, args, value):
    """max and min over axes: how far the winner is from the runner-up."""
    x = np.asarray(args[0], dtype=np.float64)
    axes = node.attr("axis")
    rest = [a for a in range(x.ndim) if a not in axes]
    x = np.transpose(x, rest + list(axes)).reshape(*(x.shape[a] for a in rest), -1)
    if x.shape[-1] < 2:
        return np.array([])
    x = np.sort(x, axis=-1)
    return x[..., -1] - x[..., -2] if node.op == "max" else x[..., 1] - x[..., 0]


@rule("max", "min", kink=_extremum_gap)
def _extremum(g: Gen, name: str) -> Val:
    x = g.pick()
    args, shape, _ = _axes(g, x)
    return result(f"{name}({', '.join([x.text, *args])})", shape, x.lo, x.hi)


@rule("logsumexp")
def _logsumexp(g: Gen) -> Val:
    x = g.pick()
    args, shape, count = _axes(g, x)
    return result(f"logsumexp({', '.join([x.text, *args])})", shape, x.lo, x.hi + math.log(count))


@rule("softmax", "log_softmax")
def _softmax(g: Gen, name: str) -> Val:
    x = g.pick(rank_at_least(1))
    axis = g.draw(st.integers(0, x.ndim - 1))
    spelled = str(axis - x.ndim if g.flag() else axis)
    form = g.choice(["default", "keyword", "positional"]) if axis == x.ndim - 1 else "keyword"
    args = {"default": [], "keyword": [f"axis={spelled}"], "positional": [spelled]}[form]
    text = f"{name}({', '.join([x.text, *args])})"
    if name == "softmax":
        return result(text, x.shape, 0, 1)
    return result(text, x.shape, x.lo - x.hi - math.log(size(x.shape[axis])), 0)


@rule("maximum", "minimum", kink=gap)
def _maximum(g: Gen, name: str) -> Val:
    a, b, shape = binary(g)
    f = max if name == "maximum" else min
    return result(f"{name}({a.text}, {b.text})", shape, f(a.lo, b.lo), f(a.hi, b.hi))


def _mask(g: Gen) -> Val:
    """A boolean mask: an earlier comparison, or a new one."""
    masks = [v for v in g.pool if v.dtype == "bool"]
    room = len(g.lines) + 2 <= g.budget
    if masks and (not room or g.flag()):
        chosen = g.choice(masks)
    elif room:
        chosen = g.statement(g.choice(["gt", "lt", "ge", "le", "ne", "eq"]))
    else:
        return None
    g.used.add(chosen.text)
    return chosen


@rule("where")
def _where(g: Gen) -> Val | None:
    mask = _mask(g)
    if mask is None:
        return None
    a = g.partner(mask, constants=False)
    b = g.partner(Val("", broadcast(mask.shape, a.shape), a.lo, a.hi))
    if g.flag():
        a, b = b, a
    shape = broadcast(mask.shape, broadcast(a.shape, b.shape))
    return result(f"where({mask.text}, {a.text}, {b.text})", shape, *hull(a.lo, a.hi, b.lo, b.hi))


def _clip_gap(node, args, value):
    """clip: how far x is from either bound, and the bounds from each other."""
    x, lo, hi = (np.asarray(a, dtype=np.float64) for a in args)
    return np.concatenate([np.abs(d).ravel() for d in (x - lo, x - hi, lo - hi)])


@rule("clip", kink=_clip_gap)
def _clip(g: Gen) -> Val:
    x = g.pick()
    form = g.choice(["numbers", "tensor lo", "tensor hi", "tensors"])
    if form == "numbers":
        lo, hi = (Val(t, (), float(t), float(t)) for t in g.choice([("-0.5", "0.5"), ("0", "1")]))
    elif form == "tensor lo":
        lo = g.partner(x, constants=False)
        hi = Val(str(math.floor(lo.hi) + 1), (), math.floor(lo.hi) + 1, math.floor(lo.hi) + 1)
    elif form == "tensor hi":
        hi = g.partner(x, constants=False)
        lo = Val(str(math.ceil(hi.lo) - 1), (), math.ceil(hi.lo) - 1, math.ceil(hi.lo) - 1)
    else:  # hi wins where lo > hi, as in NumPy
        lo = g.partner(x, constants=False)
        hi = g.partner(Val("", broadcast(x.shape, lo.shape), 0, 0), constants=False)
    shape = broadcast(broadcast(x.shape, lo.shape), hi.shape)
    low, high = min(max(x.lo, lo.lo), hi.lo), min(max(x.hi, lo.hi), hi.hi)
    return result(f"clip({x.text}, {lo.text}, {hi.text})", shape, low, high)


@rule("einsum")
def _einsum(g: Gen) -> Val:
    operands = [g.pick()]
    for _ in range(g.draw(st.integers(0, 2))):
        operands.append(g.pick())
    letters: dict[str, Dim] = {}
    terms = []
    for x in operands:
        term = ""
        for d in x.shape:
            reuse = [c for c, e in letters.items() if e == d and c not in term]
            if reuse and g.flag():
                c = g.choice(reuse)
            else:
                c = "abcdefghijklmnopqrstuvwxyz"[len(letters)]
                letters[c] = d
            term += c
        terms.append(term)
    out = "".join(g.draw(st.permutations(list(letters)))[: g.draw(st.integers(0, len(letters)))])
    if not small(tuple(letters[c] for c in out)):
        out = ""
    lo, hi = operands[0].lo, operands[0].hi
    for x in operands[1:]:
        lo, hi = times(Val("", (), lo, hi), x)
    count = math.prod(size(d) for c, d in letters.items() if c not in out)
    spec = ",".join(terms) + "->" + out
    text = f'einsum("{spec}", {", ".join(x.text for x in operands)})'
    return result(text, tuple(letters[c] for c in out), count * lo, count * hi)


@rule("concat")
def _concat(g: Gen) -> Val:
    a = g.pick(rank_at_least(1))
    axis = g.draw(st.integers(0, a.ndim - 1))
    arrays = [a]
    for _ in range(g.draw(st.integers(0, 2))):

        def fits(v: Val) -> bool:
            same = all(d == e for i, (d, e) in enumerate(zip(a.shape, v.shape)) if i != axis)
            return v.ndim == a.ndim and same

        shapes = [a.shape[:axis] + (Dim.of(d),) + a.shape[axis + 1 :] for d in [*SIZES, 1]]
        b = g.pick(fits, shapes=shapes, optional=True)
        if b is not None:
            arrays.append(b)
    total = sum((x.shape[axis] for x in arrays), Dim.of(0))
    shape = a.shape[:axis] + (total,) + a.shape[axis + 1 :]
    if not small(shape):
        arrays, shape = arrays[:1], a.shape
    spelled = axis - a.ndim if g.flag() else axis
    args = [x.text for x in arrays] + ([f"axis={spelled}"] if spelled or g.flag() else [])
    lo, hi = hull(*(x.lo for x in arrays), *(x.hi for x in arrays))
    return result(f"concat({', '.join(args)})", shape, lo, hi)


@rule("stack")
def _stack(g: Gen) -> Val:
    a = g.pick(lambda v: small(v.shape[:0] + (Dim.of(3),) + v.shape))
    arrays = [a]
    for _ in range(g.draw(st.integers(0, 2))):
        b = g.pick(lambda v: v.shape == a.shape, shapes=[a.shape], optional=True)
        if b is not None:
            arrays.append(b)
    axis = g.draw(st.integers(0, a.ndim))
    shape = a.shape[:axis] + (Dim.of(len(arrays)),) + a.shape[axis:]
    spelled = axis - a.ndim - 1 if g.flag() else axis
    items = [x.text for x in arrays]
    joined = tuple_text(items) if g.flag() else ", ".join(items)  # NumPy's tuple, or variadic
    args = [joined] + ([f"axis={spelled}"] if spelled or g.flag() else [])
    lo, hi = hull(*(x.lo for x in arrays), *(x.hi for x in arrays))
    return result(f"stack({', '.join(args)})", shape, lo, hi)


@rule("pad")
def _pad(g: Gen) -> Val:
    x = g.pick(rank_at_least(1))
    widths, shape = [], []
    for d in x.shape:
        before, after = g.choice([(0, 0), (1, 0), (0, 2), (1, 1)])
        widths.append(f"({before}, {after})")
        shape.append(d + before + after)
    if not small(tuple(shape)):
        widths, shape = ["(0, 0)"] * x.ndim, list(x.shape)
    spelled = "(" + ", ".join(widths) + ("," if x.ndim == 1 else "") + ")"
    return result(f"pad({x.text}, {spelled})", shape, *hull(x.lo, x.hi, 0))


@rule("tril", "triu")
def _triangle(g: Gen, name: str) -> Val:
    x = g.pick(rank_at_least(2))
    k = g.choice(["", "1", "-1", "k=2", f"k={dim_text(x.shape[-1])} - 1", "0"])
    args = [x.text] + ([k] if k else [])
    return result(f"{name}({', '.join(args)})", x.shape, *hull(x.lo, x.hi, 0))


@rule("zeros", "ones")
def _filled(g: Gen, name: str) -> Val:
    """`x + zeros(shape)`, `x * ones(shape)`: shape x's, or its trailing axes."""
    x = g.pick()
    shape = x.shape[g.draw(st.integers(0, x.ndim)) :]
    spelled = tuple_text(dim_text(d) for d in shape)
    if name == "zeros":
        return result(f"{x.text} + zeros({spelled})", x.shape, x.lo, x.hi)
    return result(f"{x.text} * ones({spelled})", x.shape, x.lo, x.hi)


@rule("full")
def _full(g: Gen) -> Val:
    x = g.pick()
    shape = x.shape[g.draw(st.integers(0, x.ndim)) :]
    value = g.choice(["0.5", "-1.5", "pi", "2"])
    c = math.pi if value == "pi" else float(value)
    spelled = tuple_text(dim_text(d) for d in shape)
    return result(f"{x.text} * full({spelled}, {value})", x.shape, *times(x, Val("", (), c, c)))


@rule("arange")
def _arange(g: Gen) -> Val:
    x = g.pick(rank_at_least(1))
    d = x.shape[-1]
    top = Val("", (), 0, size(d) - 1)
    return result(f"{x.text} * arange({dim_text(d)})", x.shape, *times(x, top))


def at_least_zero(d: Dim) -> bool:
    """`d >= 0` whatever the sizes (each at least 1), as bpc must know for a slice to fit: with
    every size written `1 + u`, no coefficient is negative."""
    shifted = d.subs({s: Dim.of(s) + 1 for s in d.symbols})
    return all(c >= 0 for _, c in shifted.terms)


def _subscript(g: Gen, d: Dim) -> tuple[str, Dim | None]:
    """One subscript for an axis of dimension `d`, and the axis it leaves (None: dropped). A
    slice must fit its axis whatever the sizes are: `1:` and `:-1` do on `[n]` but not on
    `[n - 1]`, `:2` does not on `[n]`; on `[n + k]`, `:n` and `n:` do."""
    options: list[tuple[str, Dim | None]] = [(":", d), ("0", None), ("-1", None), ("::-1", d)]
    if size(d) >= 2:
        options.append(("1", None))
        if not d.is_const:
            options.append((dim_text(d - 1), None))
        if at_least_zero(d - 1):
            options += [("1:", d - 1), (":-1", d - 1)]
        if at_least_zero(d - 2):
            options += [(":2", Dim.of(2)), ("-2:", Dim.of(2))]
    for name in sorted(d.symbols):
        rest = d - Dim.of(name)
        if rest.terms and at_least_zero(rest - 1):  # d = name + rest, rest >= 1
            options += [(f":{name}", Dim.of(name)), (f"{name}:", rest)]
    return g.choice(options)


@rule("index")
def _index(g: Gen) -> Val:
    x = g.pick(rank_at_least(1))
    subs = [_subscript(g, d) for d in x.shape[: g.draw(st.integers(1, x.ndim))]]
    shape = tuple(d for _, d in subs if d is not None) + x.shape[len(subs) :]
    return result(f"{x.text}[{', '.join(t for t, _ in subs)}]", shape, x.lo, x.hi)


def _leading_plain(v: Val) -> bool:
    return v.ndim >= 1 and plain(v.shape[:-1])


@rule("take")
def _take(g: Gen) -> Val:
    x = g.pick(rank_at_least(1))
    axis = g.draw(st.integers(0, x.ndim - 1))

    def fits(shape) -> bool:
        return small(x.shape[:axis] + shape + x.shape[axis + 1 :])

    idx = g.labels(g.choice([s for s in PARAM_SHAPES if fits(s)]), size(x.shape[axis]))
    form = g.choice(["keyword", "positional", "negative"]) if axis or g.flag() else "default"
    args = {
        "default": [],
        "keyword": [f"axis={axis}"],
        "positional": [str(axis)],
        "negative": [f"axis={axis - x.ndim}"],
    }[form]
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1 :]
    return result(f"take({', '.join([x.text, idx.text, *args])})", shape, x.lo, x.hi)


@rule("take_along")
def _take_along(g: Gen) -> Val:
    x = g.pick(_leading_plain)
    idx = g.labels(x.shape[:-1], size(x.shape[-1]))
    return result(f"take_along({x.text}, {idx.text})", idx.shape, x.lo, x.hi)


@rule("cross_entropy")
def _cross_entropy(g: Gen) -> Val:
    logits = g.pick(_leading_plain)
    labels = g.labels(logits.shape[:-1], size(logits.shape[-1]))
    spread = logits.hi - logits.lo + math.log(size(logits.shape[-1]))
    return result(f"cross_entropy({logits.text}, {labels.text})", labels.shape, 0, spread)


@rule("one_hot")
def _one_hot(g: Gen) -> Val:
    shape = g.choice([S(), S("n"), S("k"), S("n", "k")])
    names = set(g.declared()) | {s for d in shape for s in d.symbols}
    classes = g.choice(["3", *(d for d in SIZES if d in names)])
    dim = Dim.of(int(classes)) if classes.isdigit() else Dim.of(classes)
    labels = g.labels(shape, size(dim))
    return result(f"one_hot({labels.text}, {classes})", labels.shape + (dim,), 0, 1)


# Convolution and pooling. Values are at most MAX_RANK-d: a call reads a 4-d [N, C, H, W] image
# made inside it (a value reshaped or broadcast to 4-d, or a 4-d parameter) and reduces its 4-d
# result back (a sum, a mean or a reshape); a pool also runs on a value's last two axes as it is.


def _pair_text(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def _window_out(d: Dim, k: int, s: int) -> Dim:
    """The number of windows of size k, s apart, along an axis of d (as bpc types it)."""
    return (d - Dim.of(k)).floor_div(s) + 1


def _image(g: Gen, window, pad=(0, 0), *, channels=False) -> Val:
    """A 4-d [N, C, H, W] image whose padded H and W hold `window`: an earlier value (or a new
    parameter) reshaped to 4-d or broadcast against `ones`, or a 4-d parameter; with `channels`
    C is a plain dimension, one a parameter (conv2d's filters) can name."""

    def holds(d: Dim, axis: int) -> bool:
        return size(d) + 2 * pad[axis] >= window[axis]

    def four(v: Val) -> tuple[Dim, ...]:
        return (ONE,) * (4 - v.ndim) + v.shape

    form = g.choice(["reshape", "broadcast", "parameter"])
    if form == "parameter":  # N, C <= 2 and H, W <= 6: a few hundred finite differences at most
        sides = S("n", "m", "k", 5, 6)
        shape = (
            g.choice(S(1, "k")),
            g.choice(S(1, "k")),
            g.choice([d for d in sides if holds(d, 0)]),
            g.choice([d for d in sides if holds(d, 1)]),
        )
        return g.tensor(shape)
    if form == "reshape":  # `reshape(x, (1, 1, n, m))`, `(k, 1, n, m)` for a 3-d x

        def fits(v: Val) -> bool:
            shape = four(v)
            return (
                v.ndim >= 1
                and holds(shape[2], 0)
                and holds(shape[3], 1)
                and (not channels or plain(shape[1:2]))
            )

        x = g.pick(fits)
        shape = four(x)
        if x.ndim == 3 and g.flag():
            shape = (x.shape[0], ONE, *x.shape[1:])
        spelled = tuple_text(dim_text(d) for d in shape)
        return result(f"reshape({x.text}, {spelled})", shape, x.lo, x.hi)

    # `x * ones((k, 1, n, m))`: x's axes of 1 spread (windows of equal elements where H or W is)
    def options(v: Val, a: int) -> list[Dim]:
        """What axis `a` of 1 may spread to: a dimension the parameters declare (with v)."""
        names = set(g.declared()) | {s for d in v.shape for s in d.symbols}
        dims = S(1, *(d for d in SIZES if d in names))
        return [d for d in dims if size(d) <= 2] if a < 2 else [d for d in dims if holds(d, a - 2)]

    def spreads(v: Val) -> bool:
        shape = four(v)
        return (
            v.ndim <= 3
            and all(shape[a] != ONE or options(v, a) for a in range(4))
            and all(shape[a] == ONE or holds(shape[a], a - 2) for a in (2, 3))
            and (not channels or plain(shape[1:2]))
        )

    x = g.pick(spreads)
    shape = [g.choice(options(x, a)) if d == ONE else d for a, d in enumerate(four(x))]
    spelled = tuple_text(dim_text(d) for d in shape)
    return result(f"{x.text} * ones({spelled})", shape, x.lo, x.hi)


def _reduced(g: Gen, text: str, shape, lo: float, hi: float) -> Val:
    """A 4-d result brought back to a small value: summed or averaged over some of its axes,
    or reshaped with adjacent axes merged; summed whole when nothing else is small enough."""
    form = g.choice(["sum", "mean", "reshape"])
    if form == "reshape":
        options = [
            (shape[0] * shape[1], *shape[2:]),
            (*shape[:2], shape[2] * shape[3]),
            (shape[0], shape[1] * shape[2], shape[3]),
            (shape[0] * shape[1], shape[2] * shape[3]),
            (product(shape),),
        ]
        options = [o for o in options if small(o)]
        if options:
            merged = g.choice(options)
            spelled = tuple_text(dim_text(d) for d in merged)
            return result(f"reshape({text}, {spelled})", merged, lo, hi)
        form = "sum"
    subsets = [
        axes
        for r in range(1, 5)
        for axes in itertools.combinations(range(4), r)
        if small(tuple(d for i, d in enumerate(shape) if i not in axes))
    ]
    axes = g.choice(subsets)
    kept = tuple(d for i, d in enumerate(shape) if i not in axes)
    if len(axes) == 4 and g.flag():
        args = []
    elif len(axes) == 1:
        args = [f"axis={axes[0] - 4 if g.flag() else axes[0]}"]
    else:
        args = [f"axis={tuple_text(a - 4 if g.flag() else a for a in axes)}"]
    scale = math.prod(size(shape[a]) for a in axes) if form == "sum" else 1
    return result(f"{form}({', '.join([text, *args])})", kept, scale * lo, scale * hi)


CONV_STRIDES = [(1, 1), (2, 2), (1, 2), (2, 1)]
CONV_PADS = [(0, 0), (1, 1), (0, 1), (1, 0)]


@rule("conv2d")
def _conv2d(g: Gen) -> Val:
    kh, kw = g.draw(st.integers(1, 3)), g.draw(st.integers(1, 3))
    stride, pad = g.choice(CONV_STRIDES), g.choice(CONV_PADS)
    x = _image(g, (kh, kw), pad, channels=True)
    n, c, h, w = x.shape
    f = g.choice(S(1, "k", 2, "n"))
    filters = g.tensor((f, c, Dim.of(kh), Dim.of(kw)))
    b = g.pick(lambda v: v.shape == (f,), shapes=[(f,)]) if g.flag() else None
    args = [x.text, filters.text] + ([b.text] if b else [])
    if b is not None and g.flag():  # positionally: `conv2d(x, w, b, 2, 1)`
        args += [_pair_text(stride), _pair_text(pad)]
    else:
        if stride != (1, 1) or g.flag():
            args.append(f"stride={_pair_text(stride)}")
        if pad != (0, 0) or g.flag():
            args.append(f"pad={_pair_text(pad)}")
    # C*KH*KW products, some of them zeros of the padding, plus the bias
    lo, hi = times(x, filters)
    if pad != (0, 0):
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    terms = size(c) * kh * kw
    lo, hi = terms * lo + (b.lo if b else 0.0), terms * hi + (b.hi if b else 0.0)
    oh = _window_out(h + 2 * pad[0], kh, stride[0])
    ow = _window_out(w + 2 * pad[1], kw, stride[1])
    return _reduced(g, f"conv2d({', '.join(args)})", (n, f, oh, ow), lo, hi)


# The default window and stride (2, 2) first; windows that do not tile the image, and overlap.
POOL_WINDOWS = [(2, 2), (3, 3), (2, 3), (3, 2), (1, 2), (2, 1)]
POOL_STRIDES = [(2, 2), (1, 1), (1, 2), (2, 1)]


def _pool(g: Gen, name: str) -> Val:
    window, stride = g.choice(POOL_WINDOWS), g.choice(POOL_STRIDES)

    def holds(v: Val) -> bool:
        return v.ndim >= 2 and size(v.shape[-2]) >= window[0] and size(v.shape[-1]) >= window[1]

    on_value = g.flag()  # a value's last two axes as it is, or a 4-d image
    x = g.pick(holds) if on_value else _image(g, window)
    form = g.choice(["keyword", "positional"])
    if form == "positional":  # `max_pool2d(x, 3, 1)`, `max_pool2d(x, 2)`
        args = [_pair_text(window)] + ([_pair_text(stride)] if stride != (2, 2) or g.flag() else [])
    else:
        args = [f"size={_pair_text(window)}"] if window != (2, 2) or g.flag() else []
        args += [f"stride={_pair_text(stride)}"] if stride != (2, 2) or g.flag() else []
    text = f"{name}({', '.join([x.text, *args])})"
    shape = x.shape[:-2] + (
        _window_out(x.shape[-2], window[0], stride[0]),
        _window_out(x.shape[-1], window[1], stride[1]),
    )
    if on_value:
        return result(text, shape, x.lo, x.hi)
    return _reduced(g, text, shape, x.lo, x.hi)


def _pool_gap(node, args, value):
    """max_pool2d: how far each window's maximum is from its runner-up."""
    x = np.asarray(args[0], dtype=np.float64)
    (kh, kw), (sh, sw) = node.attr("size"), node.attr("stride")
    if kh * kw < 2:
        return np.array([])
    v = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    v = np.sort(v.reshape(*v.shape[:-2], kh * kw), axis=-1)
    return v[..., -1] - v[..., -2]


@rule("max_pool2d", kink=_pool_gap)
def _max_pool(g: Gen) -> Val:
    return _pool(g, "max_pool2d")


@rule("avg_pool2d")
def _avg_pool(g: Gen) -> Val:
    return _pool(g, "avg_pool2d")


# ---------------------------------------------------------------------------------------------
# The checks


def node_values(graph, inputs) -> dict:
    """Every node's value, by the oracle's evaluator (plain NumPy values, no autograd)."""
    sizes = oracle.bind_dims(graph, inputs)
    env = {}
    for n in graph.nodes:
        if n.op == "param":
            env[n] = inputs[n.attr("name")]
        else:
            env[n] = oracle._apply(n, [env[a] for a in n.args], sizes)
    return env


def kink_margin(graph, inputs) -> float:
    """How close the graph comes to a point where one of its operations is not smooth.

    An exact tie is left out: it is one by construction (`relu(x - x)`, `v == where(m, v, v)`,
    `clip(relu(x), 0, 1)`), it stays one when an input moves, and the two sides then agree."""
    env = node_values(graph, inputs)
    margin = math.inf
    for n in graph.nodes:
        r = RULES.get(n.op)
        if r is not None and r.kink is not None:
            distances = np.asarray(r.kink(n, [env[a] for a in n.args], env[n]), dtype=np.float64)
            margin = min(margin, float(np.min(distances[distances > 0], initial=math.inf)))
    return margin


def check_finite_differences(module, args: list, names: list[str], grads, value: float) -> None:
    """Each gradient against central finite differences of `f`, within FD_TOL plus what rounding
    costs at this |f|. On a mismatch the step is quadrupled: if the two estimates disagree with
    each other, `f` is not smooth around the point after all (`(x - y) + y <= x` is an exact
    tie here that rounding breaks one step away), and the graph is counted, not failed."""

    def objective(*xs):
        return float(module.f(*xs))

    rounding = FD_ROUNDING * abs(value)
    for name in names:
        if not hasattr(grads, name):
            continue
        have = getattr(grads, name)
        num = numeric_grad(objective, args, names.index(name))
        scale = max(1.0, float(np.max(np.abs(num), initial=0.0)))
        err = float(np.max(np.abs(have - num), initial=0.0))
        if err <= FD_TOL * scale + rounding:
            continue
        wide = numeric_grad(objective, args, names.index(name), eps=4e-6)
        if float(np.max(np.abs(wide - num), initial=0.0)) > FD_TOL * scale + rounding:
            event("finite differences skipped: not smooth around the point")
            return
        raise AssertionError(f"d{name} differs from finite differences by {err / scale:.3g}")


def check(prog: Program) -> None:
    module = load(prog.source)
    graph = oracle.typed_graph(prog.source)
    inputs = prog.inputs()
    args = list(inputs.values())
    wrt = [p.name for p in graph.params if p.dtype == "float"]
    assert list(graph.wrt) == wrt

    # f_grad against f_forward + f_backward; the gradients' shapes and dtypes; fresh arrays.
    originals = {name: x.copy() for name, x in inputs.items()}
    value, grads = module.f_grad(*args)
    out, cache = module.f_forward(*args)
    assert rel_error(value, out) == 0.0 and rel_error(value, module.f(*args)) == 0.0
    before = [np.array(c, copy=True) for c in cache]
    pair = module.f_backward(1.0, cache)
    for kept, c in zip(before, cache):  # the backward never writes into the cache
        np.testing.assert_array_equal(np.asarray(c), kept, err_msg="the cache was changed")
    assert grads._fields == pair._fields == tuple(wrt)
    for name in wrt:
        g, p = getattr(grads, name), getattr(pair, name)
        assert np.shape(g) == inputs[name].shape, f"d{name} has shape {np.shape(g)}"
        assert np.asarray(g).dtype == np.float64, f"d{name} is {np.asarray(g).dtype}"
        assert rel_error(g, p) < PAIR_TOL, f"d{name}: f_grad and f_backward disagree"
        assert np.all(np.isfinite(g)), f"d{name} is not finite"
    for entry, gradients in (("f_grad", grads), ("f_backward", pair)):
        arrays = [(name, g) for name, g in gradients._asdict().items() if np.ndim(g)]
        for name, g in arrays:
            assert g.flags.writeable, f"{entry}: d{name} is read-only"
            others = [*inputs.items(), *((f"d{n}", h) for n, h in arrays if n != name)]
            for other, x in others:
                assert not np.shares_memory(g, x), f"{entry}: d{name} shares memory with {other}"
    for name, x in inputs.items():
        np.testing.assert_array_equal(x, originals[name], err_msg=f"{name} was changed")

    # The value and the gradients against autograd on the oracle, unless two operands (nearly)
    # tie: `v == x` with v = logsumexp(x) over no axis holds here but not in the oracle.
    margin = kink_margin(graph, inputs)
    if margin > TIE_MARGIN:
        want = oracle.forward(graph, inputs)
        assert rel_error(value, want) < FORWARD_TOL, "the value differs from the oracle's"
    if not wrt:
        event("no float parameters")
        return
    if margin > TIE_MARGIN:
        with np.errstate(all="ignore"):
            want = oracle.graph_grads(graph, inputs, 1.0)
        if all(np.all(np.isfinite(w)) for w in want.values()):
            for name in wrt:
                err = rel_error(getattr(grads, name), want[name])
                assert err < AUTOGRAD_TOL, f"d{name} differs from autograd's by {err:.3g}"
        else:  # the oracle's abs is sqrt(x * x): its gradient at an exact 0 is nan
            event("autograd skipped: its gradient is not finite")
    else:
        event("autograd skipped: operands tie")

    # Against central finite differences, unless a kink is within reach of the step.
    if margin > FD_MARGIN:
        check_finite_differences(module, args, list(inputs), grads, float(value))
    else:
        event("finite differences skipped: near a kink")

    # float32 in, float32 out (scalar-only graphs too: their first float scalar sets the dtype)
    value32, grads32 = module.f_grad(*prog.inputs(np.float32).values())
    assert np.asarray(value32).dtype == np.float32, f"float32 inputs give {value32.dtype}"
    for name in wrt:
        got = np.asarray(getattr(grads32, name)).dtype
        assert got == np.float32, f"float32 inputs give a {got} d{name}"


# A graph whose output depends on no float parameter makes autograd warn; it is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input")

COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(max_examples=CI_EXAMPLES, **COMMON)
@given(programs())
def test_random_graphs(prog):
    check(prog)


@settings(max_examples=30, **COMMON)
@given(programs())
def test_emitted_modules_are_what_black_makes_of_them(prog):
    """The emitter writes black's style and asks black only to break long lines: the module is
    the same as black's formatting of the whole of it."""
    text = bpc.compile_source(prog.source)
    assert black.format_str(text, mode=black.Mode()) == text


@settings(max_examples=60, **COMMON)
@given(programs(), st.fixed_dictionaries({d: st.sampled_from([1, 3, 50, 400]) for d in SIZES}))
def test_code_compiled_for_expected_sizes(prog, expected):
    """Compiled for other expected sizes (`bpc compile --dim`), a graph is the same function,
    run here at SIZES, and at the sizes it was compiled for it does no more floating-point work
    than the code compiled without them (but for the kernels chosen for NumPy's speed there,
    `sums_as_products`: a sum as a matrix-vector product with ones is twice the flops of the
    sum, in a fraction of its time)."""
    plain, tuned = load(prog.source), load(prog.source, sizes=expected)
    if plain.__source__.split("\nimport", 1)[1] != tuned.__source__.split("\nimport", 1)[1]:
        event("compiled differently for the expected sizes")
    args = list(prog.inputs().values())
    value, grads = plain.f_grad(*args)
    tuned_value, tuned_grads = tuned.f_grad(*args)
    out, cache = tuned.f_forward(*args)
    assert rel_error(tuned_value, value) < PAIR_TOL and rel_error(out, value) < PAIR_TOL
    for name, g in grads._asdict().items():
        assert rel_error(getattr(tuned_grads, name), g) < 1e-10, f"d{name} (f_grad)"
        assert rel_error(getattr(tuned.f_backward(1.0, cache), name), g) < 1e-10, f"d{name}"

    def flops(sizes):
        compiled = compile_graphs(prog.source, sizes=sizes, numpy_kernels=False)
        (stats,) = select(compiled, None, "float64")
        parts = (stats.forward, stats.backward, stats.grad)
        return [evaluate(p.flops, expected).value for p in parts if p is not None]

    assert all(t <= p for t, p in zip(flops(expected), flops(None))), (flops(expected), flops(None))


_consumed = itertools.count()  # (module names)


@settings(max_examples=60, **COMMON)
@given(programs())
def test_a_backward_that_uses_up_its_cache(prog):
    """Compiled with `consume_cache` (`bpc compile --consume-cache`), whose backward may work in
    the arrays of its cache, a graph has the gradients of `f_grad`, writes into none of its
    arguments, and refuses a second backward with the same cache."""
    name = f"bpc_test_consume_{next(_consumed)}"
    text = bpc.compile_source(prog.source, f"{name}.bp", consume_cache=True)
    module = module_from_text(text, name)
    args = list(prog.inputs().values())
    kept = [np.array(a, copy=True) for a in args]
    value, grads = module.f_grad(*args)
    out, cache = module.f_forward(*args)
    used = module.f_backward(1.0, cache)
    for name, g in grads._asdict().items():
        assert rel_error(getattr(used, name), g) < PAIR_TOL, f"d{name}"
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)
    if len(cache):
        with pytest.raises(ValueError, match="used up"):
            module.f_backward(1.0, cache)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **COMMON)
@given(programs())
def test_random_graphs_long(prog):
    check(prog)


# ---------------------------------------------------------------------------------------------
# Every spelled operation has a rule


def spelled_ops() -> set[str]:
    """The operations the language can spell: calls (`OPS[name].call`), and the operators of the
    grammar (its rule aliases that name an operation, and the comparisons)."""
    grammar = "".join(
        f.read_text()
        for f in importlib.resources.files("bpc.grammar").iterdir()
        if f.name.endswith(".lark")
    )
    aliases = set(re.findall(r"->\s*(\w+)", grammar))
    infix = (aliases & set(OPS)) | set(_COMPARE.values())
    return {name for name, op in OPS.items() if op.call is not None} | infix


@pytest.mark.parametrize("op", sorted(spelled_ops()))
def test_every_spelled_op_has_a_rule_or_a_reason(op):
    assert (op in RULES) != (
        op in EXCLUDED
    ), f"op {op!r} needs a rule in tests/test_random_graphs.py RULES, or a reason in EXCLUDED"


def test_rules_name_known_ops():
    """A rule for an operation not registered yet must be one the language plans."""
    assert set(RULES) <= set(OPS) | bpc.ops.PLANNED, set(RULES) - set(OPS) - bpc.ops.PLANNED
    assert all(reason.strip() for reason in EXCLUDED.values())


@pytest.mark.parametrize("op", sorted(op for op in RULES if op in OPS))
@settings(max_examples=5, **COMMON)
@given(data=st.data())
def test_rule_draws_checked_graphs(op, data):
    """Each rule on its own, in a short graph that uses it."""
    prog = data.draw(programs(min_ops=1, max_ops=4, first=op))
    assert op in prog.ops
    check(prog)
