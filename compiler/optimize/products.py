"""The whole-graph passes around products, which need every use of a value and so cannot be
local rules: `transpose_products` writes (a @ b).T as b.T @ a.T when nothing else uses a @ b,
`contract_sums` writes sum(a * b, axes) as a contraction when nothing else uses a * b, and
`place_scales` moves a scale by a number to the smallest array around a product, at the sizes
the user expects; with their helpers (`_users`, `_Scales`, the options of each move).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..dims import Dim, product
from ..ir import Graph, Node, at, make, rewrite, with_args
from .fixpoint import _key, simplify


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


def contract_sums(graph: Graph) -> Graph:
    """sum(a * b, axes) and mean(a * b, axes), for two float arrays of the product's shape, ->
    a contraction that makes no product array, when nothing else uses a * b: over the last axis
    vecdot(a, b) (np.vecdot), over others sumprod(a, b) (np.einsum("ij,ij->j")), kept axes
    reshaped back, a mean divided by its count. Each takes 0.4-0.8x the time of the product and
    its sum at 64 x 128 and 1024 x 1024 (`python bench/kernels.py --only "ij,ij"`) and saves an
    array: batchnorm's variance `mean(xc * xc, axis=0)` and its gradient's `sum(dout * xc,
    axis=0)`. A product used elsewhere too (a gradient that is also summed) stays, and its sum
    reads it once. (Over every axis, the rule `sum_of_product` makes vdot(a, b) regardless.)"""
    users = _users(graph)
    single = {n for n in graph.nodes if _contractible(n) and users[n.args[0]] == [n]}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in single:
            return m
        with at(n.loc):
            return replace(_contraction(m), hint=n.hint)

    return simplify(rewrite(graph, step)) if single else graph


def _contractible(n: Node) -> bool:
    """Whether `n` is a sum or mean of a product of two float arrays of its shape."""
    if n.op not in ("sum", "mean") or n.dtype != "float" or n.ndim == 0 or n.args[0].op != "mul":
        return False
    x = n.args[0]
    a, b = x.args
    return a.shape == b.shape == x.shape and a.dtype == b.dtype == "float"


def _contraction(n: Node) -> Node:
    """The contraction `contract_sums` writes for a `_contractible` node."""
    x, axes = n.args[0], n.attr("axis")
    a, b = x.args
    if len(axes) == x.ndim:  # (kept axes: the rule `sum_of_product` leaves those)
        dot = make("vdot", a, b)
    elif axes == (x.ndim - 1,):
        dot = make("vecdot", a, b)
    else:
        dot = make("sumprod", a, b, axis=axes)
    if n.attr("keepdims"):
        dot = make("reshape", dot, shape=n.shape)
    if n.op == "mean":
        dot = make("div", dot, make("dim", dim=product(x.shape[i] for i in axes)))
    return dot


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
