"""The arguments' checks of a graph, planned at compile time and emitted as its own functions.

A parameter's type holds dimension expressions (`Wx: [D, 4*H]`, `W: [P + Q, K]`). The plan
binds each dimension name from the first axis that can say it: a bare name, or an expression
linear in one unknown with a whole coefficient (`4*H` on an axis of 20 gives `H = 5`; 22 is an
error naming the parameter, the axis and the expression); every other axis is checked against
the names bound so far. A name no axis can say (`[H*W]` alone) is a compile error.

The plan becomes two functions of the generated module (`emit.py` puts them beside the graph's):
`_g_check(...)`, which checks every argument and the graph's call-time conditions
(`bpc.conditions`) and returns the sizes, and `_g_sizes(...)`, which remembers the classes,
shapes and dtypes that passed, so that a call like an earlier one costs a dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conditions import Condition
from .diagnostics import error, source_span
from .dims import Dim, FloorDiv, nonnegative
from .expr import (
    Assign,
    Attr,
    Bind,
    BinOp,
    Check,
    Eval,
    Expr,
    Lit,
    Name,
    Return,
    Size,
    Stmt,
    Subscript,
    Tuple,
    builtin,
)
from .ir import Graph, Param


@dataclass(frozen=True)
class Axis:
    """One axis of one parameter: it binds `binds` (`dim == coef * binds + rest`), or is checked
    against the names bound before it (`binds` None)."""

    param: int
    axis: int
    dim: Dim
    binds: str | None = None
    coef: int = 1
    rest: Dim = Dim(())


def plan(params: tuple[Param, ...]) -> tuple[Axis, ...]:
    """The axes in the order the check visits them: each parameter's in turn, an axis that can
    be neither bound nor checked yet left for a later round. Raises ValueError naming the
    dimensions that no axis can say."""
    bound: set[str] = set()
    pending = [(i, a, d) for i, p in enumerate(params) for a, d in enumerate(p.dims)]
    steps: list[Axis] = []
    while pending:
        left = []
        for i, a, d in pending:
            step = _step(i, a, d, bound)
            if step is None:
                left.append((i, a, d))
                continue
            steps.append(step)
            if step.binds is not None:
                bound.add(step.binds)
        if len(left) == len(pending):
            unknown = sorted({s for _, _, d in left for s in d.symbols} - bound)
            raise ValueError(unknown)
        pending = left
    return tuple(steps)


def _step(i: int, a: int, d: Dim, bound: set[str]) -> Axis | None:
    unknown = sorted(d.symbols - bound)
    if not unknown:
        return Axis(i, a, d)
    if len(unknown) != 1 or not d.integral:
        return None
    (x,) = unknown
    coef = dict(d.terms).get((x,))
    rest = d - Dim.of(x) * coef if coef is not None else None
    if rest is None or x in rest.symbols or coef <= 0:
        return None
    return Axis(i, a, d, x, coef, rest)


def check_plan(params: tuple[Param, ...]) -> None:
    """A compile error at the first parameter with a dimension that no axis can say."""
    try:
        plan(params)
    except ValueError as e:
        (unknown,) = e.args
        first = next(p for p in params if any(set(unknown) & d.symbols for d in p.dims))
        raise error(
            first.loc,
            f"cannot tell {', '.join(unknown)} from the arguments' shapes ({first.name}: "
            f"{declared(first)}): declare {'it' if len(unknown) == 1 else 'each'} alone on an "
            "axis of some parameter, or as a whole multiple of it plus known sizes (4*H, P + Q)",
        ) from None


def order(params: tuple[Param, ...]) -> list[str]:
    """The dimension names in the order the check binds them."""
    return [s.binds for s in plan(params) if s.binds is not None]


# ---------------------------------------------------------------------------------------------
# The generated functions


def declared(p: Param) -> str:
    """A parameter's type as the source writes it: `[N, 4*H]`, `int[N]`."""
    kind = "" if p.dtype == "float" else p.dtype
    return f"{kind}[{', '.join(str(d) for d in p.dims)}]"


def check_body(
    g: Graph, params: list[str], dims: dict[str, str], taken: set[str], source_name: str
) -> list[Stmt]:
    """The body of `_g_check`: each argument's class, axes and element kind, one float dtype,
    each size bound or checked, then the conditions; it returns the sizes."""
    graph = Lit(g.name)
    axes = _axis_names(g, params, dims, taken)
    body: list[Stmt] = []
    for i, (p, name) in enumerate(zip(g.params, params)):
        kind, ndim = Lit(p.dtype), Lit(len(p.dims))
        call = builtin("_array", graph, Lit(p.name), Name(name), kind, ndim, Lit(declared(p)))
        targets = tuple(axes[i, a] for a in range(len(p.dims)))
        body.append(Assign(targets, call) if targets else Eval(call))
    floats = [(p, n) for p, n in zip(g.params, params) if p.dtype == "float" and p.dims]
    if len(floats) > 1:
        pairs = [Tuple((Lit(p.name), Name(n))) for p, n in floats]
        body.append(Eval(builtin("_floats", graph, *pairs)))
    where: dict[str, str] = {}
    pending, guarded = list(g.conditions), set()
    for step in plan(g.params):
        body += _divisor_checks(g, step, guarded)
        body += _axis_check(g, step, params, axes, dims, where)
        # an exact division's condition as soon as its sizes are bound: an axis checked against
        # `C/G` is computed (`C // G`) only where G divides C
        for c in [c for c in pending if c.op == "multiple" and set(c.symbols) <= set(where)]:
            body += _condition_check(g, c, source_name)
            pending.remove(c)
    for c in pending:
        body += _condition_check(g, c, source_name)
    sizes = tuple(Name(v) for v in dims.values())
    body.append(Return(sizes if len(sizes) > 1 else (Tuple(sizes),)))
    return body


def _axis_names(g: Graph, params: list[str], dims: dict[str, str], taken: set[str]):
    """The variable that holds each axis' size: the dimension's own where the axis binds it
    alone, else `x_1` (axis 1 of x)."""
    names: dict[tuple[int, int], str] = {}
    used = set(taken) | set(params) | set(dims.values())
    for step in plan(g.params):
        if step.binds is not None and step.coef == 1 and not step.rest.terms:
            names[step.param, step.axis] = dims[step.binds]
            continue
        base = f"{params[step.param].rstrip('_')}_{step.axis}"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[step.param, step.axis] = name
    return names


def _axis_check(g: Graph, step: Axis, params, axes, dims, where: dict[str, str]) -> list[Stmt]:
    """The check of one axis against the sizes bound before it, or the binding of its name."""
    p = g.params[step.param]
    size = Name(axes[step.param, step.axis])
    shape = Attr(Name(params[step.param]), "shape")
    args = (Lit(g.name), Lit(p.name), shape, Lit(step.axis), Lit(str(step.dim)))
    if step.binds is None and step.dim.is_const:
        error = builtin(
            "_shaped",
            Lit(g.name),
            Lit(p.name),
            Lit(declared(p)),
            Lit(step.axis),
            size,
            Size(step.dim),
        )
        return [Check(BinOp("!=", size, Size(step.dim)), error)]
    if step.binds is None:
        known = []  # the sizes it reads, and where each came from
        for s in sorted(step.dim.symbols):
            known += [Lit(s), Size(Dim.of(s)), Lit(where[s])]
        error = builtin("_mismatch", *args, Size(step.dim), *known)
        return [Check(BinOp("!=", size, Size(step.dim)), error)]
    where[step.binds] = p.name
    if step.coef == 1 and not step.rest.terms:
        return []
    target = dims[step.binds]
    value = _minus(size, step.rest)
    known = []  # the sizes it is solved with, and where each came from
    for s in sorted(step.rest.symbols):
        known += [Lit(s), Size(Dim.of(s)), Lit(where[s])]
    error = builtin("_unsolved", *args, Lit(step.binds), *known)
    may_be_negative = not nonnegative(-step.rest, default=0)
    if step.coef == 1:
        if not may_be_negative:
            return [Assign(target, value)]
        return [Assign(target, value), Check(BinOp("<", Name(target), Lit(0)), error)]
    # (no variable for the remainder: it could take the name of a parameter or a size, H_rem)
    bad: Expr = BinOp("%", value, Lit(step.coef))
    if may_be_negative:
        bad = BinOp("or", bad, BinOp("<", value, Lit(0)))
    return [Check(bad, error), Assign(target, BinOp("//", value, Lit(step.coef)))]


def _divisor_checks(g: Graph, step: Axis, guarded: set[Dim]) -> list[Stmt]:
    """Before an axis that floor-divides by a size (`x: [C//G]`), a check that the size is at
    least 1: `C // G` at G = 0 would raise ZeroDivisionError. Once for each divisor."""
    p, out = g.params[step.param], []
    for den in sorted(_floor_divisors(step.dim) - guarded, key=str):
        guarded.add(den)
        need = f"{g.name}: {p.name}: {declared(p)} needs {den} >= 1"
        out.append(Check(BinOp("<", Size(den), Lit(1)), _unmet(need, sorted(den.symbols))))
    return out


def _floor_divisors(d: Dim) -> set[Dim]:
    """The divisors of `d`'s floor divisions that are sizes, not numbers (G of `C//G`)."""
    out = set()
    for m, _ in d.terms:
        for a in m:
            if isinstance(a, FloorDiv):
                out |= _floor_divisors(a.num) | _floor_divisors(a.den)
                out |= set() if a.den.is_const else {a.den}
    return out


def _minus(size: Expr, rest: Dim) -> Expr:
    """`size - rest`, written `size + 1` for a rest of -1."""
    if not rest.terms:
        return size
    if all(c < 0 for _, c in rest.terms):
        return BinOp("+", size, Size(-rest))
    return BinOp("-", size, Size(rest))


def _condition_check(g: Graph, c: Condition, source_name: str) -> list[Stmt]:
    """The check of one condition; a division by a size (`C / G`) first checks it is not 0."""
    what = source_span(g.source, c.loc) if c.loc is not None else None
    place = f" ({source_name}:{c.loc.line})" if c.loc is not None else ""
    need = f"{g.name}: {what or c.what}{place} needs "
    if c.op != "multiple":
        left, op, right = c.shown  # (`if N < 2:` for `needs N >= 2`)
        test = BinOp("<" if op == ">=" else ">", Size(left), Size(right))
        return [Check(test, _unmet(need + c.text, c.symbols))]
    out = []
    if not c.right.is_const:
        divisor = BinOp("<", Size(c.right), Lit(1))
        out.append(Check(divisor, _unmet(f"{need}{c.right} >= 1", sorted(c.right.symbols))))
    test = BinOp("%", Size(c.left), Size(c.right))
    return out + [Check(test, _unmet(need + c.text, c.symbols))]


def _unmet(need: str, symbols) -> Expr:
    values = []
    for s in symbols:
        values += [Lit(s), Size(Dim.of(s))]
    return builtin("_unmet", Lit(need), *values)


def unchecked_bindings(g: Graph, params: list[str], dims: dict[str, str]) -> list[Stmt]:
    """Without checks: each size from the first axis that binds it (`H = Wx.shape[1] // 4`)."""
    out: list[Stmt] = []
    for step in plan(g.params):
        if step.binds is None:
            continue
        target, name = dims[step.binds], params[step.param]
        if step.coef == 1 and not step.rest.terms:
            out.append(Bind(target, name, step.axis))
            continue
        value = _minus(Subscript(Attr(Name(name), "shape"), (Lit(step.axis),)), step.rest)
        if step.coef != 1:
            value = BinOp("//", value, Lit(step.coef))
        out.append(Assign(target, value))
    return out


__all__ = ["Axis", "check_body", "check_plan", "declared", "order", "plan", "unchecked_bindings"]
