"""Stage 5: optimize forward and backward together.

Small named rewrites, each stated in its docstring, are applied bottom-up until nothing changes;
common subexpressions are shared, and whatever the outputs and gradients do not need is dropped.
A last step makes every gradient a fresh array of exactly its parameter's shape and dtype.
"""

from __future__ import annotations

import contextvars
import functools
import math
from collections.abc import Callable
from dataclasses import replace

from .dims import Dim, product
from .ir import (
    OPS,
    Graph,
    Node,
    OpDef,
    ShapeError,
    at,
    attrs_key,
    const,
    is_view,
    make,
    reachable,
    rewrite,
    schedule,
    with_args,
)

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


def _is_const(n: Node, value=None) -> bool:
    return n.op == "const" and (value is None or n.attr("value") == value)


def _same_type(a: Node, b: Node) -> bool:
    return a.type.shape == b.type.shape and a.type.dtype == b.type.dtype


@rule(where=lambda op: op.fold is not None)
def fold_constants(n: Node) -> Node | None:
    """op(c1, c2) -> c, for arithmetic on literal numbers (`OpDef.fold`)."""
    fold = OPS[n.op].fold
    if fold is not None and n.args and all(_is_const(a) for a in n.args):
        try:
            value = fold(*(a.attr("value") for a in n.args))
        except (ArithmeticError, ValueError):
            return None
        if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
            return None
        if n.op == "div" or n.type.dtype == "float":
            value = float(value)
        return const(value)
    return None


@rule("where")
def where_of_a_constant_mask(n: Node) -> Node | None:
    """where(true, a, b) -> a and where(false, a, b) -> b, where that operand has the result's
    type (`a ** b`'s gradient masks b == 0, which folds for a number b)."""
    mask, a, b = n.args
    if _is_const(mask):
        chosen = a if mask.attr("value") else b
        if _same_type(chosen, n) and chosen.type.static == n.type.static:
            return chosen
    return None


@rule("mul", "div", "pow")
def multiply_by_one(n: Node) -> Node | None:
    """x * 1 -> x, 1 * x -> x, x / 1 -> x, x ** 1 -> x."""
    if n.op in ("mul", "div", "pow"):
        a, b = n.args
        if _is_const(b, 1) and _same_type(a, n):
            return a
        if n.op == "mul" and _is_const(a, 1) and _same_type(b, n):
            return b
    return None


@rule("add", "sub")
def add_zero(n: Node) -> Node | None:
    """x + 0 -> x, 0 + x -> x, x - 0 -> x, 0 - x -> -x."""
    if n.op in ("add", "sub"):
        a, b = n.args
        if _is_const(b, 0) and _same_type(a, n):
            return a
        if _is_const(a, 0) and b.shape == n.shape:
            return b if n.op == "add" and _same_type(b, n) else make("neg", b)
    return None


@rule("neg")
def double_negation(n: Node) -> Node | None:
    """-(-x) -> x."""
    if n.op == "neg" and n.args[0].op == "neg":
        return n.args[0].args[0]
    return None


@rule("add", "sub")
def subtract_negation(n: Node) -> Node | None:
    """a + (-b) -> a - b, (-a) + b -> b - a, a - (-b) -> a + b."""
    if n.op in ("add", "sub"):
        a, b = n.args
        if b.op == "neg":
            return make("sub" if n.op == "add" else "add", a, b.args[0])
        if n.op == "add" and a.op == "neg":
            return make("sub", b, a.args[0])
    return None


@rule("add")
def add_to_itself(n: Node) -> Node | None:
    """g + g -> 2 * g."""
    if n.op == "add" and n.args[0] is n.args[1]:
        return make("mul", 2, n.args[0])
    return None


@rule("mul")
def constant_first(n: Node) -> Node | None:
    """x * c -> c * x, so that equal products look alike and read like math (`2 * x`)."""
    if n.op == "mul" and _is_const(n.args[1]) and not _is_const(n.args[0]):
        return make("mul", n.args[1], n.args[0])
    return None


@rule("mul")
def combine_constant_factors(n: Node) -> Node | None:
    """c1 * (c2 * x) -> (c1 * c2) * x, and c1 * ((c2 * a) * b) -> (c1 * c2) * (a * b) (or with
    c2 * b), so that `2 * ((0.5 * v) * X)` is `v * X`."""
    if n.op != "mul" or not _is_const(n.args[0]) or n.args[1].op != "mul":
        return None
    c1, (a, b) = n.args[0].attr("value"), n.args[1].args
    if _is_const(a):
        return make("mul", c1 * a.attr("value"), b)
    for i, f in enumerate((a, b)):
        if f.op == "mul" and _is_const(f.args[0]) and not _is_const(f.args[1]):
            rest = (f.args[1], b) if i == 0 else (a, f.args[1])
            return make("mul", c1 * f.args[0].attr("value"), make("mul", *rest))
    return None


@rule("div")
def constant_out_of_a_quotient(n: Node) -> Node | None:
    """(c * a) / b -> c * (a / b) for a number c and `a` of the quotient's shape (the same work),
    so that constants meet and cancel: `2 * (0.5 * g / t / N)` -> `g / t / N`."""
    if n.op == "div" and n.args[0].op == "mul" and _is_const(n.args[0].args[0]):
        c, a = n.args[0].args
        if a.shape == n.shape and not a.type.static and n.dtype == "float":
            return make("mul", c, make("div", a, n.args[1]))
    return None


@rule("mul")
def times_a_reciprocal(n: Node) -> Node | None:
    """(1 / t) * g -> g / t and g * (1 / t) -> g / t, when the reciprocal is as large as the
    product: one operation instead of two where `1 / t` is not needed elsewhere, and as many
    where it is (batchnorm's forward alone scales by `gamma / t`)."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for r, g in (n.args, n.args[::-1]):
        if r.op == "div" and _is_const(r.args[0], 1) and r.shape == n.shape and not r.type.static:
            return make("div", g, r.args[1])
    return None


@rule("mul")
def constant_leftmost(n: Node) -> Node | None:
    """c * (a * b) -> c * a * b, the way a derivation is written (`2 * dout * q`)."""
    if n.op == "mul" and _is_const(n.args[0]) and n.args[1].op == "mul":
        a, b = n.args[1].args
        if not _is_const(a) and a.op != "mul":  # one level: a long product keeps its shape
            return make("mul", make("mul", n.args[0], a), b)
    return None


@rule("mul")
def small_factors_first(n: Node) -> Node | None:
    """s * (t * X) -> (s * t) * X, and likewise (X * s) * t, for an array X of the product's
    shape and factors s, t with fewer axes (scalars, a vector along the last axis): the small
    factors are multiplied first, and X is walked once instead of twice."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for i, (big, small) in enumerate((n.args[::-1], n.args)):
        if big.op != "mul" or small.ndim >= n.ndim:
            continue
        for x, s in (big.args, big.args[::-1]):
            if s.ndim < n.ndim and x.shape == n.shape:
                factor = make("mul", *((small, s) if i else (s, small)))
                if factor.dtype == "float":  # (masks alone would make an int64 array)
                    return make("mul", factor, x)
    return None


def _factors(n: Node) -> list[Node]:
    """The factors of a tree of full-shape products, left to right."""
    if n.op != "mul" or n.dtype != "float":
        return [n]
    return [f for a in n.args for f in (_factors(a) if a.shape == n.shape else [a])]


@rule("sum")
def sum_of_scaled(n: Node) -> Node | None:
    """sum(X * Y * v, axes) -> v * sum(X * Y, axes) when v is the same all along the summed
    leading axes (a scalar, or a vector along the last axis summed over the rows), for products
    of three factors or more, nested ones included: the product with v is taken on the small
    result, and batchnorm's sum(dout * xhat) = invstd * sum(dout * xc) shares its sum with
    sum(dout * gamma * xc)."""
    if n.op != "sum" or n.attr("keepdims") or n.args[0].op != "mul" or n.dtype != "float":
        return None
    x, axes = n.args[0], n.attr("axis")
    if axes != tuple(range(len(axes))):
        return None
    factors = _factors(x)
    if len(factors) < 3:  # sum(v * X): the product may be needed anyway (a gradient, dscores)
        return None
    # float factors only: a mask or a number alone outside would make an int64 array
    small = [f for f in factors if f.ndim <= x.ndim - len(axes) and f.dtype == "float"]
    rest = [f for f in factors if f not in small]
    if not small or not rest:
        return None
    rest = functools.reduce(lambda a, b: make("mul", a, b), rest)
    if rest.dtype != "float":  # the sum of a mask would be an int64 count
        return None
    return make(
        "mul", functools.reduce(lambda a, b: make("mul", a, b), small), make("sum", rest, axis=axes)
    )


@rule("sum")
def row_sum_through_a_product(n: Node) -> Node | None:
    """sum((A @ B.T) * C, axis=-1) -> sum(A * (C @ B), axis=-1) when C @ B is computed anyway:
    attention's softmax backward takes the row sums of dout * out, [S, m], instead of those of
    dweights * weights, [S, T] (both are sum over t and m of A[s, m] B[t, m] C[s, t])."""
    x = n.args[0]
    if x.op != "mul" or x.ndim != 2 or n.attr("axis") != (1,) or x.dtype != "float":
        return None
    for p, c in (x.args, x.args[::-1]):
        if p.op != "matmul" or p.shape != x.shape or c.shape != x.shape:
            continue
        a, bt = p.args
        if bt.op == "transpose" and bt.attr("axes") == (1, 0) and a.ndim == 2:
            cb = _existing("matmul", c, bt.args[0])
            if cb is not None:
                product = make("mul", a, cb)
                return make("sum", product, axis=(1,), keepdims=n.attr("keepdims"))
    return None


@rule("transpose")
def compose_transposes(n: Node) -> Node | None:
    """transpose(transpose(x, p), q) -> transpose(x, p[q]); an identity permutation -> x."""
    if n.op != "transpose":
        return None
    axes, x = n.attr("axes"), n.args[0]
    if x.op == "transpose":
        inner = x.attr("axes")
        axes, x = tuple(inner[a] for a in axes), x.args[0]
    if axes == tuple(range(len(axes))):
        return x
    return make("transpose", x, axes=axes) if x is not n.args[0] else None


@rule("reshape")
def collapse_reshapes(n: Node) -> Node | None:
    """reshape(reshape(x)) -> reshape(x); a reshape to the same shape -> x."""
    if n.op != "reshape":
        return None
    x = n.args[0]
    while x.op == "reshape":
        x = x.args[0]
    if x.shape == n.shape:
        return x
    return make("reshape", x, shape=n.shape) if x is not n.args[0] else None


@rule
def broadcast_implicitly(n: Node) -> Node | None:
    """f(broadcast_to(y), z) -> f(y, z) for elementwise f, when NumPy's broadcasting gives the
    same result shape anyway (likewise for a reshape that only adds leading size-1 axes);
    otherwise f(broadcast_to(y), c) -> broadcast_to(f(y, c)), so the broadcast moves outward
    until an operand of full shape absorbs it and f runs on the small value."""
    if not OPS[n.op].elementwise:
        return None
    args = list(n.args)
    for i, a in enumerate(args):
        if a.op == "broadcast_to" or _leading_ones(a):
            trial = args[:i] + [a.args[0]] + args[i + 1 :]
            try:
                candidate = make(n.op, *trial)
            except ShapeError:
                continue
            if candidate.shape == n.shape:
                return candidate
            if a.op == "broadcast_to":
                return make("broadcast_to", candidate, shape=n.shape)
    return None


@rule("sum")
def sum_of_broadcast_scalar(n: Node) -> Node | None:
    """sum(broadcast_to(s, shape), axes) -> broadcast_to(s * count, reduced shape), for a scalar s."""
    if n.op == "sum" and n.args[0].op == "broadcast_to" and n.args[0].args[0].ndim == 0:
        b = n.args[0]
        count = product(b.shape[a] for a in n.attr("axis"))
        total = make("mul", b.args[0], make("dim", dim=count)) if count != Dim.of(1) else b.args[0]
        return make("broadcast_to", total, shape=n.shape) if n.ndim else total
    return None


@rule("reshape", "transpose")
def reshape_of_broadcast_scalar(n: Node) -> Node | None:
    """reshape(broadcast_to(s, shape), new) -> broadcast_to(s, new), for a scalar s (and the
    same for a transpose)."""
    if (
        n.op in ("reshape", "transpose")
        and n.args[0].op == "broadcast_to"
        and n.args[0].args[0].ndim == 0
    ):
        return make("broadcast_to", n.args[0].args[0], shape=n.shape)
    return None


def _sum_terms(n: Node) -> list[Node]:
    """The terms of a tree of additions."""
    terms, stack = [], [n]
    while stack:
        m = stack.pop()
        if m.op == "add" and m.args[0].shape == m.shape == m.args[1].shape:
            stack += [m.args[1], m.args[0]]
        else:
            terms.append(m)
    return terms


@rule("add")
def pads_tile_an_axis(n: Node) -> Node | None:
    """pad(a, (0, k)) + pad(b, (j, 0)) + ... -> concat(a, b, ...) when the padded blocks tile one
    axis exactly (LSTM gates sliced from one array): one copy instead of pads and adds."""
    if n.op != "add" or not all(a.op in ("add", "pad") for a in n.args):
        return None  # (a quick test first: this rule sees every add of a long sum)
    terms = _sum_terms(n)
    if len(terms) < 2 or any(t.op != "pad" or t.shape != n.shape for t in terms):
        return None
    zero = (Dim.of(0), Dim.of(0))
    axes = {a for t in terms for a, w in enumerate(t.attr("widths")) if w != zero}
    if len(axes) != 1:
        return None
    (axis,) = axes
    start, order = Dim.of(0), []
    remaining = list(terms)
    while remaining:
        nxt = next((t for t in remaining if t.attr("widths")[axis][0] == start), None)
        if nxt is None:
            return None
        order.append(nxt)
        remaining.remove(nxt)
        start = start + nxt.args[0].shape[axis]
    if order[-1].attr("widths")[axis][1] != Dim.of(0):
        return None
    return make("concat", *(t.args[0] for t in order), axis=axis)


@rule("sum")
def sum_of_product(n: Node) -> Node | None:
    """sum(a * b) -> vdot(a, b) over every axis of equal shapes: a contraction, no temporary."""
    if n.op == "sum" and n.ndim == 0 and n.args[0].op == "mul" and n.args[0].ndim:
        a, b = n.args[0].args
        if a.shape == b.shape == n.args[0].shape and a.dtype == b.dtype == "float":
            return make("vdot", a, b)
    return None


@rule("sum", "mean", "reshape", "transpose", "mul", "div")
def negation_outward(n: Node) -> Node | None:
    """(-a) * b -> -(a * b), a * (-b) -> -(a * b), (-a) / b -> -(a / b), -1 * x -> -x, and
    sum(-x) -> -sum(x) (likewise mean, reshape, transpose): the negation on the smaller value."""
    if n.op in ("sum", "mean", "reshape", "transpose") and n.args[0].op == "neg":
        return make("neg", make(n.op, n.args[0].args[0], **n.kw))
    if n.op in ("mul", "div"):
        a, b = n.args
        if a.op == "neg":
            return make("neg", make(n.op, a.args[0], b))
        if n.op == "mul" and b.op == "neg":
            return make("neg", make("mul", a, b.args[0]))
        if n.op == "mul" and _is_const(a, -1) and _same_type(b, n):
            return make("neg", b)
    return None


def _elements(n: Node, sizes: dict[str, int]) -> int | None:
    """How many elements `n` has at the given sizes; None when one of them was not given."""
    d = product(n.shape).subs({s: Dim.of(v) for s, v in sizes.items()})
    return d.value if d.is_const else None


def _scaling(n: Node) -> tuple[Node, Node] | None:
    """(x, s) when `n` is a float array x scaled by a plain number s known from constants and
    dimensions alone (`s * x`, `x * s`, `x / s`); a scale that depends on a parameter is left
    where it is, since its gradient needs the unscaled value."""
    if n.dtype != "float" or n.ndim == 0 or n.op not in ("mul", "div"):
        return None
    a, b = n.args
    if b.type.static and b.ndim == 0 and not a.type.static:
        return a, b
    if n.op == "mul" and a.type.static and a.ndim == 0 and not b.type.static:
        return b, a
    return None


def _scaled_like(n: Node, x: Node) -> tuple[Node, Node]:
    """(the scaling, `x` scaled) the way `n` scales its array, with the same number multiplied or
    divided; beneath a transpose, so that `(q / s).T` shares the `q / s` the graph has."""
    if x.op == "transpose":
        scaling, inner = _scaled_like(n, x.args[0])
        return scaling, make("transpose", inner, **x.kw)
    s = _scaling(n)[1]
    hint = f"{x.hint}_scaled" if x.hint else None
    scaling = make("div", x, s, hint=hint) if n.op == "div" else make("mul", s, x, hint=hint)
    return scaling, scaling


def _users(graph: Graph) -> dict[Node, list[Node | None]]:
    """The nodes that take each node of `graph` as an argument, and None for the caller's use of
    an output or a gradient."""
    users: dict[Node, list[Node | None]] = {n: [] for n in graph.nodes}
    for n in graph.nodes:
        for a in dict.fromkeys(n.args):
            users[a].append(n)
    for n in graph.outputs + graph.grads:
        users[n].append(None)
    return users


def transpose_products(graph: Graph) -> Graph:
    """(a @ b).T -> b.T @ a.T for matrices, when nothing else uses a @ b: the product comes out
    in row-major order (a gradient `dk = dscores.T @ q`, not a transposed view), at no cost,
    since a transpose of an operand is a free view. A product used elsewhere too stays, and its
    transpose is a view of it: computing it again would double the work. The graph is then
    simplified again (`b.T` may be a transpose of a transpose)."""
    users = _users(graph)
    single = {
        n
        for n in graph.nodes
        if n.op == "transpose" and n.ndim == 2 and n.args[0].op == "matmul"
        if users[n.args[0]] == [n] and all(x.ndim == 2 for x in n.args[0].args)
    }

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in single:
            return m
        a, b = m.args[0].args
        with at(n.loc):
            return make("matmul", b.T, a.T, hint=n.hint)

    return simplify(rewrite(graph, step)) if single else graph


class _Scales:
    """Where a graph scales arrays by plain numbers around matrix products, and what moving each
    scale would cost, at the sizes the user expects."""

    def __init__(self, graph: Graph, sizes: dict[str, int]):
        self.sizes = sizes
        self.known = {_key(n) for n in graph.nodes}
        self.users = _users(graph)

    def elements(self, n: Node) -> int | None:
        return _elements(n, self.sizes)

    def cost(self, scaling: Node) -> int:
        """Elements to scale: none when the graph computes this scaling already."""
        return 0 if _key(scaling) in self.known else self.elements(scaling)

    def cheapest(self, options: list[tuple[Node, Node]]) -> tuple[int, int]:
        """Of (scaling, the result with it), the cost and index of the cheapest (the first on a
        tie)."""
        costs = [self.cost(scaling) for scaling, _ in options]
        return min(costs), costs.index(min(costs))


def _operand_options(n: Node) -> list[tuple[Node, Node]]:
    """For `n`, a product A @ B scaled: (scaling, replacement) with A scaled, then with B."""
    a, b = _scaling(n)[0].args
    (sa, a_scaled), (sb, b_scaled) = _scaled_like(n, a), _scaled_like(n, b)
    return [(sa, make("matmul", a_scaled, b)), (sb, make("matmul", a, b_scaled))]


def _product_options(p: Node, i: int) -> list[tuple[Node, Node]]:
    """For `p`, a product whose operand `i` is a scaled X (or its transpose): (scaling,
    replacement) with the product scaled, then with its other operand scaled."""
    arg, other = p.args[i], p.args[1 - i]
    x = arg.args[0] if arg.op == "transpose" else arg
    inner = _scaling(x)[0]
    inner = make("transpose", inner, **arg.kw) if arg is not x else inner
    in_order = slice(None, None, 1 - 2 * i)  # the operands in p's order
    on_result = _scaled_like(x, make("matmul", *(inner, other)[in_order]))[1]
    so, other_scaled = _scaled_like(x, other)
    return [(on_result, on_result), (so, make("matmul", *(inner, other_scaled)[in_order]))]


def _move(graph: Graph, moves: dict[Node, tuple[Callable, tuple, int]]) -> Graph:
    """`graph` with each node of `moves` replaced by option `k` of `options(node, *extra)`, built
    from the node's rebuilt arguments."""

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        move = moves.get(n)
        n = with_args(n, args)
        if move is None:
            return n
        options, extra, k = move
        return replace(options(n, *extra)[k][1], hint=n.hint)

    return rewrite(graph, step) if moves else graph


def _scale_operands(graph: Graph, sizes: dict[str, int]) -> Graph:
    """(A @ B) / s -> (A / s) @ B or A @ (B / s), and likewise s * (A @ B), when the product is
    used only here and the operand has fewer elements (attention's scores `q @ k.T / sqrt(d)`
    scale q, [S, d], instead of the scores, [S, T])."""
    scales = _Scales(graph, sizes)
    moves = {}
    for n in graph.nodes:
        scaled = _scaling(n)
        if scaled is None or scaled[0].op != "matmul" or scales.users[scaled[0]] != [n]:
            continue
        if None in map(scales.elements, (n, *scaled[0].args)):
            continue
        if any(a.dtype != "float" for a in scaled[0].args):
            continue
        cost, k = scales.cheapest(_operand_options(n))
        if cost < scales.elements(n):
            moves[n] = (_operand_options, (), k)
    return _move(graph, moves)


def _uses_in_products(x: Node, scales: _Scales) -> list[tuple[Node, int]] | None:
    """(product, position) for every use of `x`, directly or through a transpose, when all of
    them are matrix products that take it once; else None."""
    uses = []
    for u in scales.users[x]:
        arg = u if u is not None and u.op == "transpose" else x
        for p in scales.users[u] if arg is u else [u]:
            if p is None or p.op != "matmul" or p.args.count(arg) != 1:
                return None
            uses.append((p, p.args.index(arg)))
    return uses


def _scale_products(graph: Graph, sizes: dict[str, int]) -> Graph:
    """(X / s) @ B -> (X @ B) / s or X @ (B / s), and likewise with X transposed or on the right,
    when every use of X / s is such a product and the scalings that replace it have fewer
    elements in all (attention's backward scales dq and takes the scaled q of the forward for
    dk, instead of scaling the [S, T] gradient of the scores)."""
    scales = _Scales(graph, sizes)
    moves = {}
    for x in graph.nodes:
        if _scaling(x) is None or scales.elements(x) is None:
            continue
        uses = _uses_in_products(x, scales)
        if not uses or len({p for p, _ in uses}) < len(uses) or any(p in moves for p, _ in uses):
            continue  # (a product that takes two scaled operands moves one scale, once)
        if any(None in map(scales.elements, p.args + (p,)) for p, _ in uses):
            continue
        chosen = {p: (i, *scales.cheapest(_product_options(p, i))) for p, i in uses}
        if sum(cost for _, cost, _ in chosen.values()) < scales.elements(x):
            moves.update({p: (_product_options, (i,), k) for p, (i, _, k) in chosen.items()})
    return _move(graph, moves)


def place_scales(graph: Graph, sizes: dict[str, int] | None) -> Graph:
    """Scales by plain numbers around matrix products move to the smallest array they can, at the
    sizes the user expects (`bpc compile --dim`); without sizes, nothing moves. First onto an
    operand, then off a large operand onto the products, so that the backward can reuse what
    the forward scaled."""
    if not sizes:
        return graph
    graph = simplify(_scale_operands(graph, sizes))
    return simplify(_scale_products(graph, sizes))


@rule("add", "sub")
def add_twice(n: Node) -> Node | None:
    """(a + b) + b -> a + 2 * b, (a - b) - b -> a - 2 * b."""
    if n.op in ("add", "sub") and n.args[0].op == n.op and n.args[0].args[1] is n.args[1]:
        return make(n.op, n.args[0].args[0], make("mul", 2, n.args[1]))
    return None


def _leading_ones(n: Node) -> bool:
    """A reshape that only puts size-1 axes in front, which NumPy's broadcasting does anyway."""
    if n.op != "reshape":
        return False
    x = n.args[0]
    k = n.ndim - x.ndim
    return k >= 0 and n.shape[k:] == x.shape and all(d.is_const for d in n.shape[:k])


@rule("broadcast_to", "sum")
def useless_broadcast(n: Node) -> Node | None:
    """broadcast_to(x, shape of x) -> x; a sum over no axes -> x."""
    if n.op in ("broadcast_to", "sum") and _same_type(n.args[0], n):
        if n.op == "broadcast_to" or not n.attr("axis"):
            return n.args[0]
    return None


CANONICAL: list[Rule] = []


@rule(where=lambda op: op.expand is not None)
def expand_composite(n: Node) -> Node | None:
    """logsumexp(x) -> log(sum(exp(x - m))) + m with m = max(x), and likewise every composite
    operation (softmax, log_softmax, cross_entropy) -> the operations it is made of
    (`OpDef.expand`)."""
    expand = OPS[n.op].expand
    return expand(*n.args, **n.kw) if expand else None


def canonical(fn: Rule) -> Rule:
    """A rewrite applied before differentiation, because it changes which adjoints are used."""
    CANONICAL.append(fn)
    return fn


@canonical
def softplus_of_exp(n: Node) -> Node | None:
    """log1p(exp(x)) -> softplus(x), log(1 + exp(x)) -> softplus(x): exp(x) overflows for
    x > 709 (88 in float32); softplus never does, nor does its gradient sigmoid(x)."""
    if n.op == "log1p" and n.args[0].op == "exp":
        return make("softplus", n.args[0].args[0])
    if n.op == "log" and n.args[0].op == "add":
        a, b = n.args[0].args
        for one, e in ((a, b), (b, a)):
            if _is_const(one, 1) and e.op == "exp" and e.shape == n.shape:
                return make("softplus", e.args[0])
    return None


def canonicalize(graph: Graph) -> Graph:
    """The typed forward graph with the `CANONICAL` rewrites applied bottom-up: stable forms of
    unstable expressions, chosen before differentiation so that their adjoints are the ones used."""

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        n = with_args(n, args)
        for r in CANONICAL:
            with at(n.loc):
                m = r(n)
            if m is not None:
                return replace(m, hint=m.hint or n.hint)
        return n

    return rewrite(graph, step)


def _key(n: Node) -> tuple:
    """What makes two nodes the same value: the operation, the arguments, the attributes by
    value (`canonical`: `1`, `1.0` and `True` differ, a region compares by its structure) and
    the type. The arguments compare by identity, which is enough because the simplifier interns
    bottom-up: a node's arguments have been replaced by their representatives before its own
    key is taken, so equal arguments are the same node already."""
    return (n.op, n.args, attrs_key(n.attrs), n.type)


# The nodes of the graph being simplified, by key: what a rule may ask `_existing` about.
_SEEN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("seen", default=None)


def _existing(op: str, *args: Node, **attrs) -> Node | None:
    """op(*args) if the graph being simplified computes it already, else None: for rewrites that
    pay only when they can share a value."""
    seen = _SEEN.get()
    if seen is None:
        return None
    try:
        return seen.get(_key(make(op, *args, **attrs)))
    except ShapeError:
        return None


class _Simplifier:
    """Rewrites one node to a fixpoint, after the new nodes a rewrite made, and hash-conses."""

    def __init__(self):
        self.seen: dict = {}
        self.done: set[Node] = set()

    def __call__(self, n: Node) -> Node:
        if n in self.done:
            return n
        args = tuple(self(a) for a in n.args)  # a rewrite's fresh arguments come first
        n = with_args(n, args)
        if n.op not in ("param", "dout"):
            with at(n.loc):
                for r in _rules_for(n.op):
                    m = r(n)
                    if m is not None:
                        if m.hint is None and n.hint and m.op not in ("const", "param", "dim"):
                            m = replace(m, hint=n.hint)
                        return self(m)
        n = self.seen.setdefault(_key(n), n)
        self.done.add(n)
        return n


def _simplify_pass(graph: Graph) -> tuple[Graph, bool]:
    """One bottom-up sweep of the rewrites with hash-consing; says whether anything changed."""
    simplify_node = _Simplifier()
    changed = False
    token = _SEEN.set(simplify_node.seen)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        nonlocal changed
        m = simplify_node(with_args(n, args))
        changed |= m is not n
        return m

    try:
        return rewrite(graph, step), changed
    finally:
        _SEEN.reset(token)


def simplify(graph: Graph) -> Graph:
    """Apply the rewrites and share common subexpressions, until nothing changes."""
    for _ in range(20):
        graph, changed = _simplify_pass(graph)
        if not changed:
            break
    return graph


def finish_gradients(graph: Graph, *, cache_reused: bool) -> Graph:
    """Each gradient becomes a fresh, writable array of its parameter's shape and dtype: a
    broadcast or a plain number is filled into `full_like(param)`, and a value that the caller
    or the cache also holds is copied."""
    params = {n.attr("name"): n for n in graph.inputs}
    forward = graph.forward
    # The graph's float dtype: a float array parameter's, or the first float scalar's. A `[]`
    # parameter's gradient takes it, whatever number the caller passed (a Python int included).
    floats = [n for n in graph.inputs if n.dtype == "float"]
    dtype_of = [next((n for n in floats if n.ndim), floats[0])] if floats else []
    grads, used = [], set()
    for name, g in zip(graph.wrt, graph.grads):
        p = params[name]
        views = [g]
        while is_view(views[-1]):  # a view shares its base's memory
            views.append(views[-1].args[0])
        base = views[-1]
        fill = [p, *(dtype_of if p.ndim == 0 else [])]
        with at(None if g.op in ("param", "dout") else g.loc):
            if OPS[g.op].read_only or (g.op == "full_like" and p.ndim == 0):
                # (a broadcast, or autodiff's zeros for an unused parameter: filled once)
                g = make(
                    "full_like",
                    fill[0],
                    g.args[1 if g.op == "full_like" else 0],
                    *fill[1:],
                    hint="d" + name,
                )
                base = g
            elif (
                g.type.static
                or g.shape != p.shape
                or p.ndim == 0
                or any(OPS[v.op].read_only for v in views)
            ):
                # a view of a broadcast is read-only: filling it in copies the values out
                g = make("full_like", fill[0], g, *fill[1:], hint="d" + name)
                base = g
            elif (
                base.op in ("param", "dout")
                or base in graph.outputs
                or base in used
                or (cache_reused and base in forward)
            ):
                g = make("copy", g, hint="d" + name)
                base = g
        used.add(base)
        grads.append(g)
    return rewrite(
        replace(graph, grads=tuple(grads)),
        with_args,
    )


def _dim_symbols(n: Node) -> set[str]:
    """The dimension names in a node's attributes, nested tuples included (slice bounds)."""
    out: set[str] = set()
    stack = [v for _, v in n.attrs]
    while stack:
        v = stack.pop()
        if isinstance(v, tuple):
            stack.extend(v)
        elif isinstance(v, Dim):
            out |= v.symbols
    return out


def _numbers_only(n: Node) -> bool:
    """A 0-d value made of no array: constants, sizes and `[]` parameters, maybe Python numbers."""
    return all(m.ndim == 0 for m in reachable([n]))


def _bases(n: Node) -> set[Node]:
    """n and the values whose arrays n may share: through views, and einsum's operands."""
    out, stack = set(), [n]
    while stack:
        m = stack.pop()
        if m not in out:
            out.add(m)
            stack.extend(m.args[:1] if is_view(m) else () if OPS[m.op].fresh else m.args)
    return out


def finish_outputs(graph: Graph) -> Graph:
    """Each output is the caller's to keep and to change. One made of numbers alone (a constant,
    a size, arithmetic on `[]` parameters, which may be Python numbers) becomes a NumPy number of
    the graph's float dtype (`scalar`); one that may share a parameter's array (`y = x`, `x.T`,
    `W[i]`), or an earlier output's, becomes a copy. The output's name goes with it."""
    params, seen, wraps = set(graph.inputs), set(), []
    for o in graph.outputs:
        bases = _bases(o)
        wraps.append("scalar" if _numbers_only(o) else "copy" if bases & (params | seen) else None)
        seen |= bases
    if not any(wraps):
        return graph
    # (a value also returned as it is keeps its name)
    wrapped = {o for o, w in zip(graph.outputs, wraps) if w and o.args} - {
        o for o, w in zip(graph.outputs, wraps) if not w
    }

    def unnamed(n: Node, args: tuple[Node, ...]) -> Node:
        return replace(n, args=args, hint=None) if n in wrapped else with_args(n, args)

    graph = rewrite(graph, unnamed)
    outputs = []
    for o, name, w in zip(graph.outputs, graph.output_names, wraps):
        with at(o.loc):
            outputs.append(make(w, o, hint=name) if w else o)
    keep = tuple(outputs) + graph.grads + graph.inputs + graph.douts
    return replace(graph, outputs=tuple(outputs), nodes=schedule(graph.nodes, keep))


def select_cache(graph: Graph) -> Graph:
    """The cache is exactly what the backward reads from the forward: parameters and forward
    values that some backward node takes as an argument, and the dimension sizes it uses."""
    forward = graph.forward
    read: set[Node] = set()
    dims: set[str] = set()
    for b in graph.nodes:
        if b not in forward:
            read.update(b.args)
            dims |= _dim_symbols(b)
            for a in b.args:
                dims |= _dim_symbols(a) if a.op == "dim" else set()
    cache = [n for n in graph.nodes if n in forward and n in read and n.op not in ("const", "dim")]
    return replace(graph, cache=tuple(cache), cache_dims=frozenset(dims))


def optimize(
    graph: Graph,
    *,
    cache_reused: bool = True,
    sizes: dict[str, int] | None = None,
    check: Check | None = None,
    prefix: str = "",
) -> Graph:
    """Simplify, share and prune; make the gradients safe to hand to the caller; choose the cache.
    `sizes` are the dimension sizes the user expects, for rewrites whose gain depends on them.
    `check(graph, stage)` sees the graph after each pass (`bpc.verify`, in the tests)."""
    check = check or unchecked
    graph = check(simplify(graph), prefix + "simplify")
    graph = check(transpose_products(graph), prefix + "transpose_products")
    graph = check(place_scales(graph, sizes), prefix + "place_scales")
    graph = check(finish_outputs(graph), prefix + "finish_outputs")
    graph = check(finish_gradients(graph, cache_reused=cache_reused), prefix + "finish_gradients")
    return check(select_cache(graph), prefix + "select_cache")


# A check of the graph after a stage: `check(graph, "simplify")` returns the graph or raises.
Check = Callable[[Graph, str], Graph]


def unchecked(graph: Graph, stage: str) -> Graph:
    return graph


def seed_ones(graph: Graph) -> Graph:
    """The graph with every upstream gradient set to 1: the backward of `g_grad`. Nodes that
    depended on it are typed again, since a plain number is weakly typed where dout was not."""
    ones = {d: const(1.0) for d in graph.douts}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n in ones:
            return ones[n]
        if args == n.args:
            return n
        with at(n.loc):
            return make(n.op, *args, hint=n.hint, **n.kw)

    return replace(rewrite(graph, step), douts=())
