"""The registry of local rewrites, and the helpers the rewrites share.

`@rule` registers a rewrite of one node in `RULES`; the simplifier (`fixpoint.py`) tries them in
the order they registered, offering a node only the rules of its operation (`_rules_for`).
`@canonical` registers in `CANONICAL` a rewrite applied before differentiation (`canonicalize`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..ir import OPS, Node, OpDef, make

Rule = Callable[[Node], Node | None]
RULES: list[Rule] = []


def rule(*ops: str, where: Callable[[OpDef], bool] | None = None):
    """Register a rewrite; `@rule("mul", "div")` says it only ever matches those operations (the
    simplifier then tries it on those alone), `@rule(where=lambda op: op.fold is not None)` that
    it matches the operations whose definition says so, a bare `@rule` that it may match any."""

    def register(fn: Rule) -> Rule:
        fn.ops = frozenset(ops) if ops else None
        fn.where = where
        RULES.append(fn)
        _rules_for.cache_clear()
        return fn

    if len(ops) == 1 and callable(ops[0]):
        fn, ops = ops[0], ()
        return register(fn)
    return register


@functools.cache
def _rules_for(op: str) -> tuple[Rule, ...]:
    def matches(r: Rule) -> bool:
        if r.where is not None:
            return r.where(OPS[op])
        return r.ops is None or op in r.ops

    return tuple(r for r in RULES if matches(r))


CANONICAL: list[Rule] = []


def canonical(fn: Rule) -> Rule:
    """A rewrite applied before differentiation, because it changes which adjoints are used."""
    CANONICAL.append(fn)
    return fn


def _is_const(n: Node, value=None) -> bool:
    return n.op == "const" and (value is None or n.attr("value") == value)


def _product(factors) -> Node:
    """The product of the factors, left to right: `(a * b) * c`."""
    return functools.reduce(lambda a, b: make("mul", a, b), factors)


def _same_type(a: Node, b: Node) -> bool:
    return a.type.shape == b.type.shape and a.type.dtype == b.type.dtype
