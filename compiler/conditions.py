"""Conditions on sizes: what a graph needs of its sizes that bpc cannot prove at compile time.

A slice, an index, a step or a reshape whose validity depends on the sizes (`x[1:3]` on `[T]`
needs `T >= 3`; `reshape(x, (N, H / 2, 2))` needs `H` even) compiles; the condition is recorded
while the graph is built and typed, and the generated functions check it on entry
(`pick: x[1:3] (model.bp:4) needs T >= 3, but T is 2`). A condition that holds for every size
(each at least 0, with the facts already recorded) is dropped; one that fails for every size
(each at least 1) is a compile error; one that another implies is checked once.

Ops ask with `require(...)` and `require_multiple(...)` inside `recording(...)`; outside it (a
node re-made by a later stage), a condition that is neither provable nor refutable is assumed:
it was recorded when the graph was first typed.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from dataclasses import dataclass
from fractions import Fraction

from .diagnostics import Loc
from .dims import Dim, negative, nonnegative
from .ir import ShapeError, here


@dataclass(frozen=True)
class Condition:
    """`left >= right` (op ">="), `left <= right` (op "<="), or `left` a multiple of `right`
    (op "multiple"), needed by `what` at `loc`."""

    left: Dim
    op: str
    right: Dim
    what: str
    loc: Loc | None = None

    @property
    def excess(self) -> Dim:
        """What must be at least 0 (for an inequality)."""
        return self.left - self.right if self.op == ">=" else self.right - self.left

    @property
    def shown(self) -> tuple[Dim, str, Dim]:
        """An inequality as it is shown and checked: the sizes on one side and a number on the
        other where that is shorter (`T >= 3` for `T - 3 >= 0` and for `3 <= T`, `X >= 2` for
        `2*X <= 3*X - 2`), else as written (`H <= G`)."""
        d = self.excess  # d >= 0, as `more >= less` with positive coefficients on both sides
        more = Dim(tuple(t for t in d.terms if t[1] > 0))
        less = more - d
        written = len(self.left.terms) + len(self.right.terms)
        if self.left.is_const or self.right.is_const or len(d.terms) < written:
            return (less, "<=", more) if more.is_const else (more, ">=", less)
        return self.left, self.op, self.right

    @property
    def text(self) -> str:
        """`T >= 3`, `H <= G`, `H to be a multiple of 2`."""
        if self.op == "multiple":
            return f"{self.left} to be a multiple of {self.right}"
        left, op, right = self.shown
        return f"{left} {op} {right}"

    @property
    def symbols(self) -> tuple[str, ...]:
        """The dimension names the condition reads."""
        return tuple(dict.fromkeys(sorted(self.left.symbols) + sorted(self.right.symbols)))


class Recorder:
    """The conditions of one graph, in the order they are met, and what they let bpc prove."""

    def __init__(self, facts: tuple[Dim, ...] = ()) -> None:
        self.conditions: list[Condition] = []
        # what holds of every call without a check: each declared axis is a size, at least 0
        # (`w: [n - 1]` says n >= 1)
        self.facts = facts

    def _known(self) -> list[Dim]:
        """What is at least 0: the facts, and the inequalities recorded so far."""
        return list(self.facts) + [c.excess for c in self.conditions if c.op != "multiple"]

    def lower(self) -> dict[str, int]:
        """Lower bounds of single names that the facts and conditions give (`T >= 3`)."""
        out: dict[str, int] = {}
        for d in self._known():
            if len(d.symbols) != 1:
                continue
            (s,) = d.symbols
            coef = dict(d.terms).get((s,))
            if coef is not None and coef > 0 and len(d.terms) <= 2 and d.integral:
                const = dict(d.terms).get((), 0)
                out[s] = max(out.get(s, 0), -(const // coef))
        return out

    def proves(self, d: Dim) -> bool:
        """`d >= 0` for every size of 0 and more, given the conditions recorded so far."""
        lower = self.lower()
        if nonnegative(d, lower, default=0):
            return True
        return any(nonnegative(d - k, lower, default=0) for k in self._known())

    def add(self, c: Condition) -> None:
        if c not in self.conditions and not any(_same(c, o) for o in self.conditions):
            self.conditions.append(c)

    def final(self) -> tuple[Condition, ...]:
        """The conditions, without one that another implies."""
        kept = []
        for c in self.conditions:
            if c.op != "multiple" and any(
                o is not c and o.op != "multiple" and nonnegative(c.excess - o.excess, default=0)
                for o in self.conditions
            ):
                continue
            kept.append(c)
        return tuple(kept)


def _same(a: Condition, b: Condition) -> bool:
    if a.op == "multiple" or b.op == "multiple":
        return (a.op, a.left, a.right) == (b.op, b.left, b.right)
    return a.excess == b.excess


_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "conditions", default=None
)


@contextlib.contextmanager
def recording(recorder: Recorder):
    token = _recorder.set(recorder)
    try:
        yield recorder
    finally:
        _recorder.reset(token)


def require(left: Dim, op: str, right: Dim, what: str, wrong: str) -> None:
    """`left op right` (`op` one of `>=`, `<=`, `>`, `<`): proved, else a compile error
    (`wrong`) when it fails for every size of 1 and more, else recorded for the call."""
    left, right = Dim.of(left), Dim.of(right)
    if op in (">", "<"):  # whole numbers: a > b is a >= b + 1
        left, right, op = (left, right + 1, ">=") if op == ">" else (left + 1, right, "<=")
    excess = left - right if op == ">=" else right - left
    recorder = _recorder.get()
    lower = recorder.lower() if recorder else {}
    if nonnegative(excess, lower, default=0):
        return
    if negative(excess, {s: max(v, 1) for s, v in lower.items()}, default=1):
        raise ShapeError(wrong)  # (sizes of 1 and more: x[:, T:2*T] on [N, T] fits only T = 0)
    if recorder is None or recorder.proves(excess):
        return
    recorder.add(Condition(left, op, right, what, here()))


def require_multiple(left: Dim, right: Dim, what: str, wrong: str) -> None:
    """`left` a whole multiple of `right`: exact, else a compile error when both are numbers,
    else recorded for the call."""
    left, right = Dim.of(left), Dim.of(right)
    quotient = left.exact_div(right)
    if quotient.integral:
        return
    if left.is_const and right.is_const:
        raise ShapeError(wrong)
    recorder = _recorder.get()
    if recorder is not None:
        recorder.add(Condition(left, "multiple", right, what, here()))


def met(conditions, sizes: dict[str, int]) -> bool:
    """Whether these sizes meet every condition."""
    for c in conditions:
        left, right = c.left.evaluate(sizes), c.right.evaluate(sizes)
        if c.op == "multiple":
            ok = right != 0 and Fraction(left) % right == 0
        else:
            ok = left >= right if c.op == ">=" else left <= right
        if not ok:
            return False
    return True


def default_sizes(graph, given: dict[str, int], tries: int = 500) -> dict[str, int]:
    """Small sizes for the graph's dimensions (2, 3, 4, 5, ...) that meet its conditions and
    give every declared axis a whole size of at least 0; `given` sizes are kept. Raises
    ValueError naming the conditions when no sizes tried meet them."""
    from .signature import order  # (signature emits the conditions' checks)

    names = order(graph.params)
    free = [n for n in names if n not in given]
    first = {n: 2 + i % 4 for i, n in enumerate(sorted(free))}
    rng = random.Random(0)
    for attempt in range(tries):
        sizes = dict(given) | (
            first if attempt == 0 else {n: rng.choice(_CANDIDATES) for n in free}
        )
        if _fits(graph, sizes):
            return sizes
    unmet = "; ".join(c.text for c in graph.conditions) or "whole sizes of every axis"
    fixed = ", ".join(f"{k}={v}" for k, v in given.items())
    raise ValueError(f"no small sizes{' with ' + fixed if fixed else ''} meet {unmet}")


_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 16)


def _fits(graph, sizes: dict[str, int]) -> bool:
    for p in graph.params:
        for d in p.dims:
            v = d.evaluate(sizes)
            if v < 0 or (v.__class__ is not int and v.denominator != 1):
                return False
    return met(graph.conditions, sizes)
