"""The whole-graph passes around products and sums, which need every use of a value and so
cannot be local rules: `transpose_products` writes (a @ b).T as b.T @ a.T when nothing else
uses a @ b, `horner` writes a polynomial times a number in Horner's form, the number in its
coefficients, `softplus_gradient_from_e` takes softplus's gradient from its exp(-|x|) when
nothing but sums reads the softplus, `split_sums` sums the terms of a sum one by one when
nothing else reads their sum, `contract_sums` writes sum(a * b, axes) as a contraction when
nothing else uses a * b, `factor_scales` takes a factor that the large terms of a sum share
out of them, `place_scales` moves a scale by a number to the smallest array around a product,
at the sizes the user expects, `read_normalized` has the backward read x as q * u where the
forward makes q = x / u, `read_outputs` has a product of the backward take an output for the
factors it has, `share_products` has a product take another that has some of its factors for
them, `compound_first` puts first the factor of a product that makes an array of its own, and
`sums_as_products` writes a sum over one axis of a matrix as a product with ones, at the sizes
the user expects; with their helpers (`_users`, `_Scales`, the options of each move).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from ..dims import Dim, product
from ..ir import OPS, Graph, Node, at, const, is_view, make, reachable, rewrite, with_args
from .algebra import (
    _constant_along,
    _factors,
    _from_signed_terms,
    _smaller,
    horner_form,
    over_count,
)
from .fixpoint import _key, simplify
from .rules import _is_const, _product


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
        dot = over_count(dot, [x.shape[i] for i in axes])
    return dot


def horner(graph: Graph) -> Graph:
    """`algebra.horner_form` on each product that no product reads (the whole of a chain):
    c * (x + k * x * x * x) -> x * (c + (c k) * (x * x)), the numbers in the coefficients. After
    the simplifier, which would have the backward share the parts of the new form and keep
    them; the forms are new nodes that no other value reads."""
    users = _users(graph)
    chosen = {
        n
        for n in graph.nodes
        if n.op == "mul"
        and not any(u is not None and u.op == "mul" and u.shape == n.shape for u in users[n])
        and horner_form(n) is not None
    }

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n in chosen:
            with at(n.loc):
                form = horner_form(m)
            if form is not None:
                return replace(form, hint=n.hint)
        return m

    return _shared_values(rewrite(graph, step)) if chosen else graph


def _shared_values(graph: Graph) -> Graph:
    """The graph with each value one node (a number or a product that a new form has too)."""
    known: dict = {}
    return rewrite(graph, lambda n, args: _interned(with_args(n, args), known))


def sigmoid_of_minus(graph: Graph) -> Graph:
    """sigmoid(w) -> sigmoid_of_minus(-w) where -w costs no pass of its own: w = -z (-w is z),
    w = c * z for a number c ((-c) * z), and a polynomial in Horner's form, whose numbers take
    the sign (each node but z read by nothing else). `_sigmoid` negates its argument in a pass
    of its own; the sigmoid form of GELU, `sigmoid(1.702 * x)`, is then `t = -1.702 * x` and
    `_sigmoid(t, out=t, minus=True)`, the expert's `exp(x * -a)`, and the tanh form's
    polynomial `((-0.0714 * x) * x - 1.596) * x`: one pass of the ten or so that such an
    activation's value and gradient make. The local rules take a sign the same way
    (`algebra._negated`, `_with_negated_constant`), but they cannot see who else reads a node;
    a node rebuilt here must be read by nothing else, or the old one would stay, a pass more."""
    users = _users(graph)

    def minus(w: Node, v: Node, reader: Node) -> Node | None:
        """-v made without a pass, for v the rewritten w, which `reader` alone reads; or None."""
        if v.op == "neg":
            return v.args[0]
        if users[w] != [reader] or v.op not in ("mul", "add"):
            return None
        for i in (1, 0) if _is_const(v.args[1]) else (0, 1):
            f = v.args[i]
            number = _is_const(f) and f.dtype != "bool"
            if number and v.op == "mul":  # -(c * z) = (-c) * z
                return _with_arg(v, i, -f.attr("value"))
            if number:  # -(p + c) = (-p) - c
                p = minus(w.args[1 - i], v.args[1 - i], w)
                return None if p is None else make("sub", p, f)
            q = minus(w.args[i], f, w) if v.op == "mul" else None
            if q is not None:  # -(q * z) = (-q) * z
                return _with_arg(v, i, q)
        return None

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n.op != "sigmoid":
            return m
        with at(n.loc):
            w = minus(n.args[0], args[0], n)
            out = m if w is None else make("sigmoid_of_minus", w)
        return out if out.type == m.type else m

    return rewrite(graph, step)


def _with_arg(n: Node, i: int, a: Node | float) -> Node:
    """n's operation on its arguments with the i-th one `a`."""
    return make(n.op, *(a if k == i else b for k, b in enumerate(n.args)))


def softplus_gradient_from_e(graph: Graph) -> Graph:
    """exp(x - s) -> maximum(x >= 0, e) / (1 + e) for s = relu(x) + log1p(e), e = exp(-|x|):
    softplus(x) and the sigmoid of its gradient (`ops/elementwise.py`'s `_softplus_adjoint`),
    where nothing but sums reads s. The sigmoid then comes from the exp the forward takes
    already, and no array need hold s, whose sums `split_sums` takes term by term (a binary
    cross-entropy's loss: one exp where there were two, 0.83x the time of `g_grad` at 1e6 in
    float64). Where s is an array anyway (an output, or read elementwise), exp(x - s) stays,
    which keeps s alone for the backward, and the forward's log1p may work in e's array. The
    mask is made a float array of e's dtype first, and the maximum worked out in it
    (`dz = (z >= 0).astype(e.dtype)`, `np.maximum(dz, e, out=dz)`): NumPy's maximum of a float
    and a boolean array converts the booleans through a buffer of 8192 elements, an array
    more at the sizes of a minibatch, and is no faster."""
    users = _users(graph)
    chosen = set()
    for n in graph.nodes:
        s = _softplus_parts(n)
        if s is not None and _only_summed(s, users, n.args[0]):
            chosen.add(n)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in chosen:
            return m
        x, _, e = _softplus_parts_of(m)
        with at(n.loc):
            mask = make("ge", x, 0)
            if e.ndim:  # (a number's mask stays a bool: a Python float has no dtype)
                mask = make("cast_like", mask, e)
            return make("maximum", mask, e) / (1 + e)

    return simplify(rewrite(graph, step)) if chosen else graph


def abs_sums_as_dots(graph: Graph) -> Graph:
    """sum(abs(t)) -> vdot(sign(t), t) over every axis (a mean, divided by the count), where the
    graph takes sign(t) anyway (the gradient of abs: an L1 loss's, a lasso penalty's) and
    nothing else reads abs(t): the forward makes the sign that the backward reads and takes
    its dot with t, as an expert writes `s = np.sign(d); loss = s @ d`, where the forward made
    abs(t) for its sum and the backward the sign (four passes over the large arrays where there
    were five: 1.12-1.21x the expert's code). sign(t) * t is |t| exactly; the dot adds in
    another order."""
    users = _users(graph)
    signed = {n.args[0] for n in graph.nodes if n.op == "sign"}
    chosen = {
        n
        for n in graph.nodes
        if n.op in ("sum", "mean")
        and not n.ndim
        and n.args[0].op == "abs"
        and n.args[0].args[0] in signed
        and users[n.args[0]] == [n]
        and n.args[0].dtype == "float"
    }

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in chosen:
            return m
        t = m.args[0].args[0]
        with at(n.loc):
            out = make("vdot", make("sign", t), t)
            if n.op == "mean":
                out = over_count(out, t.shape)
        return out if out.type == m.type else m

    return _shared_values(rewrite(graph, step)) if chosen else graph


def _only_summed(v: Node, users, but: Node | None = None) -> bool:
    """Whether every use of v but `but` is a sum or a mean, or an addition (subtraction,
    negation) of which that is true: the terms `split_sums` sums one by one."""
    return all(
        u is but
        or (u is not None and (u.op in ("sum", "mean") or _summed(u) and _only_summed(u, users)))
        for u in users[v]
    )


def _softplus_parts(n: Node) -> Node | None:
    """s, where n is exp(x - s) for s = relu(x) + log1p(exp(-|x|)) (in either order)."""
    return None if _softplus_parts_of(n) is None else n.args[0].args[1]


def _softplus_parts_of(n: Node) -> tuple[Node, Node, Node] | None:
    """(x, s, e) where n is exp(x - s), s = relu(x) + log1p(e), e = exp(-|x|); for x = -z,
    |x| may be |z| (`abs_of_negation`: a binary cross-entropy written `softplus(-z) + (1 - y) z`).
    """
    if n.op != "exp" or n.args[0].op != "sub" or n.args[0].args[1].op != "add":
        return None
    x, s = n.args[0].args
    same = (x, x.args[0]) if x.op == "neg" else (x,)
    for relu, log1p in (s.args, reversed(s.args)):
        e = log1p.args[0] if log1p.op == "log1p" else None
        if relu.op == "relu" and relu.args[0] is x and e is not None and e.op == "exp":
            inner = e.args[0]
            if inner.op == "neg" and inner.args[0].op == "abs" and inner.args[0].args[0] in same:
                return x, s, e
    return None


def split_sums(graph: Graph) -> Graph:
    """sum(a + c * b - d, axes) -> sum(a, axes) + c * sum(b, axes) - sum(d, axes), and likewise
    for a sum scaled by a number (`0.5 * (logvar + r)`) and for a mean (the sums over the
    count), when the terms have the sum's shape and nothing else reads the additions (an
    addition that something else reads is a term): each term is summed where it is, and no
    array holds the sum of the terms (a Gaussian negative
    log-likelihood's or a binary cross-entropy's loss; `sum(y * z)` then becomes a dot). k terms
    take k reductions where they took k - 1 elementwise passes, each making an array, and one
    reduction; a mean takes one division, not k (`np.mean` takes 7.6 us on 8192 float32
    numbers, `.sum()` 3.2 us and an addition 1.6 us)."""
    users = _users(graph)
    split = {n for n in graph.nodes if _splittable(n, users)}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in split:
            return m
        x = m.args[0]
        scale, inner = _scaled_sum(x)
        terms = _own_terms(_scaled_sum(n.args[0])[1], inner, users)
        with at(n.loc):
            total = _from_signed_terms([(sign, make("sum", t, **n.kw)) for sign, t in terms])
            if n.op == "mean":  # (one division: NumPy's mean costs 2x a sum's time at 8192)
                count = product(inner.shape[i] for i in n.attr("axis"))
                total = make("div", total, make("dim", dim=count))
            if scale is x.args[0]:
                total = make("mul", scale, total)
            elif scale is not None:  # (S * s, S / s)
                total = make(x.op, total, scale)
        return replace(total, hint=n.hint) if total.type == n.type else m

    return simplify(rewrite(graph, step)) if split else graph


def _scaled_sum(x: Node) -> tuple[Node | None, Node]:
    """(s, S) for x = s * S, S * s or S / s with a number s (a 0-d value); (None, x) otherwise."""
    if x.op in ("mul", "div") and x.dtype == "float":
        a, b = x.args
        if b.ndim == 0 and a.shape == x.shape:
            return b, a
        if x.op == "mul" and a.ndim == 0 and b.shape == x.shape:
            return a, b
    return None, x


def _splittable(n: Node, users) -> bool:
    """Whether `split_sums` sums the terms of the sum or mean `n` one by one."""
    if n.op not in ("sum", "mean") or n.dtype != "float" or users[n.args[0]] != [n]:
        return False
    scale, x = _scaled_sum(n.args[0])
    if not _summed(x) or (scale is not None and users[x] != [n.args[0]]):
        return False
    terms = _own_terms(x, x, users)
    return len(terms) > 1 and all(t.shape == x.shape and t.dtype == "float" for _, t in terms)


def _own_terms(n: Node, m: Node, users, sign: int = 1) -> list[tuple[int, Node]]:
    """The terms of the tree of additions n with their signs, read in its rewritten form m: an
    inner addition that something else reads is a term (computed anyway)."""
    out = []
    signs = [-sign] if n.op == "neg" else [sign, sign if n.op == "add" else -sign]
    for a, b, s in zip(n.args, m.args, signs):
        if _summed(a) and users[a] == [n]:
            out += _own_terms(a, b, users, s)
        else:
            out.append((s, b))
    return out


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


def factor_scales(graph: Graph) -> Graph:
    """f * X - f * c * Y - f * m -> f * (X - c * Y - m), for the factor f that the most large
    terms of a sum share (two at least), read through the products and quotients of their
    parts (`gamma * p / t / t` has `gamma / t` in it); a term without f stays outside. f may be
    smaller than the sum (a batchnorm's `gamma / t`, [D] against [N, D]) or as large (GELU's
    `x * s * (1 - s)`, which two of the three terms of its gradient have). The passes over the
    large arrays are as many or fewer, and two or more large products share one new array where
    each made its own (batchnorm's backward: one new [N, D] array where there were two, as
    CS231n's `batchnorm_backward_alt` writes it). A part of a large term that something else
    reads is not read through, and such a term stays as it is: it is computed anyway."""
    users = _users(graph)
    shared = {n for n in graph.nodes if len(users[n]) > 1}
    roots = {  # (whole sums, whose inner sums nothing else reads)
        n
        for n in graph.nodes
        if _summed(n)
        and not any(_summed(u) for u in users[n] if u)
        and not any(p in shared for p in _interior(n) if p is not n)
    }

    changed, original = [], {}  # (a rebuilt node -> the node of `graph` it stands for)

    def through(part: Node) -> bool:  # (a product that only this sum reads)
        return original.get(part, part) not in shared and part.op in ("mul", "div")

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        original[m] = n
        if n in roots:
            kept = {a for a, b in zip(_terms(m), _terms(n)) if b[1] in shared}
            with at(n.loc):
                factored = _factored(m, kept, through)
            if factored is not None:
                changed.append(n)
                return replace(factored, hint=n.hint)
        return m

    out = rewrite(graph, step)
    return simplify(out) if changed else graph


def _summed(n: Node | None) -> bool:
    return n is not None and n.op in ("add", "sub", "neg") and n.dtype == "float" and n.ndim > 0


def _terms(n: Node, sign: int = 1) -> list[tuple[int, Node]]:
    """The terms of a tree of float additions, subtractions and negations, with their signs; a
    term may be smaller than the sum, which it broadcasts to (where `algebra._signed_terms`
    reads only terms of the sum's shape)."""
    if _summed(n):
        if n.op == "neg":
            return _terms(n.args[0], -sign)
        return _terms(n.args[0], sign) + _terms(n.args[1], sign if n.op == "add" else -sign)
    return [(sign, n)]


def _interior(n: Node) -> list[Node]:
    """The additions, subtractions and negations of the tree `_terms` reads."""
    return [n] + [i for a in n.args for i in _interior(a)] if _summed(n) else []


def _factored(n: Node, kept: set, through) -> Node | None:
    """`factor_scales` on the sum `n`: the factor that the most of its large terms share (two
    at least) taken out of them and of the other terms that have it too, or None where that
    does not save an array. The terms in `kept` (sign and term) stay as they are; `through`
    says which large parts of a term may be read through."""
    terms = _terms(n)
    raw = [_powers(t, n.shape, through) for _, t in terms]
    powers, signs = list(raw), [sign for sign, _ in terms]
    for i, q in enumerate(raw):  # (a factor -1, `-1.0 / n * y`'s, is the term's sign)
        minus = [f for f, p in q.items() if p == 1 and f.op == "const" and f.attr("value") == -1]
        if minus:
            powers[i], signs[i] = {f: p for f, p in q.items() if f is not minus[0]}, -signs[i]
    large = [q for st, q in zip(terms, powers) if st[1].shape == n.shape and st not in kept]
    # the factor that most large terms have, and what those terms share with it
    counts: dict[tuple[Node, int], int] = {}
    for q in large:
        for f, p in q.items():
            if p and _factorable(f):
                counts[f, p > 0] = counts.get((f, p > 0), 0) + 1
    if not counts or max(counts.values()) < 2:
        return None
    f, up = max(counts, key=counts.get)
    having = [q for q in large if q.get(f, 0) and (q[f] > 0) == up]
    common = {}
    for g in having[0]:
        ps = [q.get(g, 0) for q in having]
        if all(p > 0 for p in ps) or all(p < 0 for p in ps):
            common[g] = min(ps, key=abs)
    inside, outside, after = [], [], []  # (`after`: the powers of the terms once f is out)
    for (sign, t), q, signed, as_is in zip(terms, powers, signs, raw):
        if (sign, t) in kept and t.shape == n.shape:
            outside.append((sign, t))
            after.append(as_is)
        elif all(q.get(f, 0) * p > 0 and abs(q[f]) >= abs(p) for f, p in common.items()):
            q = {f: p - common.get(f, 0) for f, p in q.items()}
            inside.append((signed, _from_powers(q, n.shape)))
            after.append(q)
        else:
            outside.append((sign, t))
            after.append(as_is)
    if any(r.dtype != "float" for _, r in inside):  # (a mask alone in the sum: int64)
        return None
    if _scaled(after, n) >= _scaled(raw, n):
        return None  # (each scaled large term but one makes an array; taking f out adds a pass)
    factored = make("mul", _from_powers(common, n.shape), _from_signed_terms(inside))
    m = _from_signed_terms([(1, factored)] + outside)
    return m if m.type == n.type else None


def _factorable(f: Node) -> bool:
    """Whether `factor_scales` may take f out: a float array, or a plain number worked out from
    the sizes (a mean's `max(n, 1)`, which `g_grad` divides by where its upstream gradient is
    1); not a constant, which the rules on constants place, nor a mask."""
    if f.type.static:
        return f.op != "const" and f.dtype in ("int", "float")
    return f.dtype == "float"


def _scaled(powers: list[dict[Node, int]], n: Node) -> int:
    """How many of the terms (as `_powers`) are large arrays multiplied or divided by something:
    more than one large factor, or a large one and another."""
    large = [q for q in powers if any(f.shape == n.shape and p for f, p in q.items())]
    return sum(sum(abs(p) for p in q.values()) > 1 for q in large)


def _powers(n: Node, shape: tuple[Dim, ...] | None, through=None) -> dict[Node, int]:
    """A chain of float products and quotients as its factors with their powers (`gamma * p / t
    / t`: gamma 1, p 1, t -2), read through a reshape that only adds or drops leading axes of
    size 1; below the top, a part of the large `shape` is one factor (with None, none is),
    unless `through(part)` says it may be read through too."""
    out: dict[Node, int] = {}
    for f, p in _factors_of(n, shape, through or (lambda m: False)):
        out[f] = out.get(f, 0) + p
    return out


def _factors_of(
    n: Node, shape, through, top: bool = True, read: set[Node] | None = None
) -> list[tuple[Node, int]]:
    """`_powers`'s factors, one (factor, 1 or -1) per occurrence; the nodes read through go
    into `read`, where given."""
    if (not top and n.shape == shape and not through(n)) or n.dtype != "float":
        return [(n, 1)]
    if n.op == "reshape" and _squeezed(n.shape) == _squeezed(n.args[0].shape):
        if read is not None:
            read.add(n)
        return _factors_of(n.args[0], shape, through, False, read)  # ((1, D) for [D])
    if n.op not in ("mul", "div"):
        return [(n, 1)]
    if read is not None:
        read.add(n)
    sign = 1 if n.op == "mul" else -1
    below = _factors_of(n.args[1], shape, through, False, read)
    above = _factors_of(n.args[0], shape, through, False, read)
    return above + [(f, sign * p) for f, p in below]


def _squeezed(shape: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """A shape without its leading axes of size 1."""
    k = 0
    while k < len(shape) and shape[k] == Dim.of(1):
        k += 1
    return shape[k:]


def _from_powers(powers: dict[Node, int], shape: tuple[Dim, ...] | None) -> Node:
    """The product of the factors with positive powers over those with negative powers: the
    numbers multiplied into one, first, then the parts smaller than `shape` (`dgamma / t / N *
    xc`), so that a large array is walked once; 1 where there are none. Arrays of masks or
    integers come last, after a float: a number times a mask is an int64 array, which would
    make a float32 product float64."""
    number = math.prod(f.attr("value") ** p for f, p in powers.items() if _multiplier(f, p))
    value = None if number == 1 else const(number)
    for large, mask in ((False, False), (True, False), (False, True), (True, True)):
        for f, p in powers.items():
            if (f.shape == shape) != large or _multiplier(f, p) or _mask(f) != mask:
                continue
            for _ in range(abs(p)):
                if p > 0:
                    value = f if value is None else make("mul", value, f)
                else:
                    value = make("div", const(1.0) if value is None else value, f)
    return const(1.0) if value is None else value


def _mask(f: Node) -> bool:
    """An array of booleans or integers (a size, a number, stays where it is)."""
    return f.dtype != "float" and f.ndim > 0


def _multiplier(f: Node, p: int) -> bool:
    """A number that multiplies (a quotient by a number stays one: 1 / 3 is not exact)."""
    return p > 0 and f.op == "const" and not isinstance(f.attr("value"), bool)


def compound_first(graph: Graph) -> Graph:
    """x * s * (1 - s) -> (1 - s) * x * s: in a product of three arrays or more (or two and a
    number), a factor that is an elementwise expression nothing else reads goes first (after
    the numbers), so that the product is worked out in that factor's new array (`dx = 1 - s`,
    `dx *= x`, `dx *= s`) where a new array for `x * s` and another for `1 - s` were made (a
    GELU's gradient); where it is a factor twice, both go first (`dx *= dx`). Where another
    such expression goes first, one that is a factor of the chain plus, minus or times a
    number goes last: in a Mish's `(1 - t) * (1 - t) * x * e * (e + 1)`, `e + 1` may then
    take e's array (`e += 1`) once the product has read e. The factors are the same; only the
    order of the multiplications changes."""
    users = _users(graph)
    reordered = {}
    for n in graph.nodes:
        inner = [u for u in users[n] if u is not None and _chained(u, n, users)]
        if n.op == "mul" and n.dtype == "float" and n.ndim and not inner:
            factors = _chain_factors(n, users)
            numbers = [f for f in factors if _is_const(f)]  # (first still: `2 * dout * q`)
            rest = [f for f in factors if not _is_const(f)]
            chain = _chain_nodes(n, users)
            own = [f for f in rest if _compound(f, users, chain)]
            last = [f for f in own if _shifted_factor(f, rest)]
            first = [f for f in own if f not in last][:1]
            if not first:  # (then the product is worked out in the one expression's array)
                first, last = own[:1], []
            order = first * rest.count(first[0]) if first else []  # (each time it is a factor)
            order += [f for f in rest if f not in first and f not in last] + last
            if order != rest and len(rest) + bool(numbers) > 2:
                number = [const(math.prod(f.attr("value") for f in numbers))] if numbers else []
                reordered[n] = number + order

    rebuilt: dict[Node, Node] = {}  # (a node of `graph` -> its replacement)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n in reordered:
            with at(n.loc):
                product = _product(rebuilt.get(f, f) for f in reordered[n])
            if product.type == m.type:
                m = replace(product, hint=n.hint)
        rebuilt[n] = m
        return m

    return rewrite(graph, step) if reordered else graph


def read_outputs(graph: Graph) -> Graph:
    """x * s * (1 - s) * c -> out * (1 - s) * c where the forward's output is out = x * s: a
    product of the backward that has all the factors of an output (read through the inner
    products, `1.702 * x` included) takes the output, which the caller holds anyway, for them:
    one pass fewer (a GELU's gradient, `s + x * s * (1 - s) * u'`), and a value that only that
    product read (`1.702 * x`) is no longer kept for the backward, so the forward works out the
    sigmoid in its array. The factors are the same; only how they are grouped changes."""
    users = _users(graph)
    outputs = [o for o in graph.outputs if o.op == "mul" and o.dtype == "float" and o.ndim]
    regrouped = {}
    for n in graph.nodes:
        inner = [u for u in users[n] if u is not None and _chained(u, n, users)]
        if n.op != "mul" or n.dtype != "float" or n in graph.forward or inner:
            continue
        for o in outputs:
            rest = _without(_factors(n), _factors(o))
            if o.shape == n.shape and rest:
                numbers = [f.attr("value") for f in rest if _is_const(f)]
                number = [const(math.prod(numbers))] if numbers else []
                regrouped[n] = number + [o] + [f for f in rest if not _is_const(f)]
                break

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n in regrouped:
            with at(n.loc):
                product = _product(regrouped[n])
            if product.type == m.type:
                return replace(product, hint=n.hint)
        return m

    return rewrite(graph, step) if regrouped else graph


def share_products(graph: Graph) -> Graph:
    """(d * d) / e -> d * q where the graph computes q = d / e as well: a product or quotient
    of large arrays that has all the factors of another one, with their powers, takes that one
    for them (a Gaussian negative log-likelihood's `(x - mu)**2 / exp(logvar)`, which the loss
    and the gradient of the log-variance read, and `(x - mu) / exp(logvar)`, the mean's
    gradient: one quotient where there were two, and neither `d * d` nor `exp(logvar)` is kept
    apart, so the forward works them out in two arrays, as an expert does). The other one must
    not be computed from it, and has no numbers among its factors; a backward product takes a
    forward one where the cache keeps that one already, or may keep it in place of one of its
    factors (`_kept_instead`). Again where that changed something, up to 4 times: a part that
    another takes may be regrouped itself later in the same pass, which leaves its old form to
    the other alone, read through the next time (a Gaussian's `e / n * d`, which the
    log-variance's gradient takes before the mean's gradient, which read it too, takes `d * e`
    in it)."""
    for _ in range(4):
        shared = _share_products_once(graph)
        if shared is graph:
            break
        graph = shared
    return graph


def _share_products_once(graph: Graph) -> Graph:
    users = _users(graph)

    def through(m: Node) -> bool:  # (an inner product that only its chain reads)
        # (a forward value the user named stays one; a gradient's name, `dinv`, is bpc's)
        named = m.hint and m in graph.forward
        return m.op in ("mul", "div") and len(users[m]) == 1 and not named

    parts = [n for n in graph.nodes if n.op in ("mul", "div") and n.dtype == "float" and n.ndim]
    powers = {n: _powers(n, n.shape, through) for n in parts}
    # each part with two factors or more, under the factor of it that the fewest parts have
    count: dict[Node, int] = {}
    for q in parts:
        for f in powers[q]:
            count[f] = count.get(f, 0) + 1
    having: dict[Node, list[int]] = {}
    for i, q in enumerate(parts):
        if sum(map(abs, powers[q].values())) >= 2:
            having.setdefault(min(powers[q], key=count.get), []).append(i)
    order = {n: i for i, n in enumerate(graph.nodes)}
    known: dict[Node, bool] = {}
    containing: dict[Node, list[int]] = {}  # a factor -> the parts that have it
    for i, q in enumerate(parts):
        for f in powers[q]:
            containing.setdefault(f, []).append(i)

    def instead(q: Node) -> bool:  # (`_kept_instead`, once for each q)
        if q not in known:
            known[q] = _kept_instead(graph, users, q, parts, powers, containing, through)
        return known[q]

    regrouped = {}
    for n in parts:
        if any(u is not None and through(n) and u.op in ("mul", "div") for u in users[n]):
            continue  # (inside a chain: the chain is regrouped as a whole)
        found = _shares(graph, users, n, parts, powers, having, order, instead)
        if found is not None:
            regrouped[n] = found

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in regrouped:
            return m
        q, rest = regrouped[n]
        with at(n.loc):
            if any(map(_mask, rest)) and not any(f.dtype == "float" and f.ndim for f in rest):
                # (masks and numbers alone would be an int64 array, which makes float32
                # float64: q is the float they multiply first, `(2 * q) * m`)
                product = _from_powers({**rest, q: rest.get(q, 0) + 1}, n.shape)
            else:
                product = make("mul", q, _from_powers(rest, n.shape))
        return replace(product, hint=n.hint) if product.type == m.type else m

    if not regrouped:
        return graph
    done = {}  # (q as rewritten: `step` sees each node once, its arguments first)

    def rebuilt(n: Node, args: tuple[Node, ...]) -> Node:
        if n in regrouped:
            q, rest = regrouped[n]
            regrouped[n] = done.get(q, q), {done.get(f, f): p for f, p in rest.items()}
        done[n] = step(n, args)
        return done[n]

    return _shared_values(rewrite(graph, rebuilt))


def _shares(graph: Graph, users, n: Node, parts, powers, having, order, instead) -> tuple | None:
    """(q, the rest of n's factors) for the part q with the most factors that n has all of
    (the first of them in the graph's order), or None."""
    found = []
    for i in sorted(i for f in powers[n] for i in having.get(f, ())):
        q = parts[i]
        rest = _less(powers[n], powers[q]) if q is not n and q.shape == n.shape else None
        if rest is not None:
            found.append((sum(map(abs, powers[q].values())), -i, q, rest))
    for _, _, q, rest in sorted(found, key=lambda f: f[:2], reverse=True):
        if _depends(n, q, order) or _depends(q, n, order):
            continue
        if _kept_no_longer(graph, users, n, q, powers[q]) or instead(q):
            return q, rest
    return None


def _kept_instead(graph: Graph, users, q: Node, parts, powers, containing, through) -> bool:
    """Whether q, a forward value, may be kept for the backward in place of one of its factors,
    an array the forward made: every backward reader of that factor is in the chain of a
    backward product that has all of q's factors, each of which takes q for them (the Gaussian
    NLL's `r = d * exp(-logvar)`, which the loss's dot reads: the gradients `-2 c r` and
    `c d r` read r, and the cache keeps `d` and `r`, where it kept `d` and `exp(-logvar)` and
    the backward made `d * d`)."""
    forward = graph.forward
    if q not in forward:
        return False
    near = {i for f in powers[q] for i in containing.get(f, ())}  # (parts with a factor of q)
    takers = [parts[i] for i in sorted(near) if parts[i] not in forward and parts[i] is not q]
    takers = [m for m in takers if _less(powers[m], powers[q]) is not None]
    inside = {c for m in takers for c in _chain(m, through)}
    for f in powers[q]:
        if f.op in ("param", "const", "dim") or f.shape != q.shape or is_view(f):
            continue  # (only an array the forward made is one the cache need not keep)
        readers = [u for u in users[f] if u is not None and u not in forward]
        if readers and all(u in inside for u in readers):
            return True
    return False


def _chain(n: Node, through) -> set[Node]:
    """The products, quotients and reshapes of n's chain that `_powers` reads through."""
    read: set[Node] = set()
    _factors_of(n, n.shape, through, read=read)
    return read


def _depends(a: Node, b: Node, order: dict) -> bool:
    """Whether a is computed from b: a search down from a that stops below b in the graph's
    order, which a value's arguments come before."""
    stop, seen, stack = order[b], set(), [a]
    while stack:
        m = stack.pop()
        if m is b:
            return True
        if m not in seen and order.get(m, -1) > stop:
            seen.add(m)
            stack.extend(m.args)
    return False


def _kept_no_longer(graph: Graph, users, n: Node, q: Node, factors: dict) -> bool:
    """Whether n may take q without the cache keeping more: both in the same pass; or n in the
    forward and q in the backward, which then takes q from the cache for the arrays q is made
    of, which nothing else reads; or q, a forward value, read by the backward already."""
    forward = graph.forward
    if (n in forward) == (q in forward):
        return True
    if n in forward:
        mine = reachable([n, q])
        return all(u in mine for f in factors for u in users[f])
    return any(u is not None and u not in forward for u in users[q])


def _less(big: dict[Node, int], small: dict[Node, int]) -> dict[Node, int] | None:
    """big's factors less small's, where small has two at least (with their powers), no
    number, and none that big lacks or has with the other sign or to a smaller power."""
    if sum(map(abs, small.values())) < 2 or any(f.op == "const" for f in small):
        return None
    rest = dict(big)
    for f, p in small.items():
        q = rest.get(f, 0)
        if q * p <= 0 or abs(q) < abs(p):
            return None
        rest[f] = q - p
    rest = {f: p for f, p in rest.items() if p}
    return rest or None


def _without(factors: list[Node], taken: list[Node]) -> list[Node] | None:
    """factors less each of `taken` once (by identity), or None where one of them is missing."""
    rest = list(factors)
    for t in taken:
        i = next((i for i, f in enumerate(rest) if f is t), None)
        if i is None:
            return None
        del rest[i]
    return rest


def _chained(u: Node, n: Node, users) -> bool:
    """Whether n is an inner product of the product chain u: a full-shape float product that u
    alone reads, without a name of its own."""
    return (
        u.op == n.op == "mul"
        and u.shape == n.shape
        and u.dtype == "float"
        and users[n] == [u]
        and not n.hint  # (a value with a name of its own, `di = dc * g`, stays one)
    )


def _chain_factors(n: Node, users) -> list[Node]:
    """The factors of the product chain n, left to right (`_chained`'s inner products read
    through)."""
    return _factors(n, lambda a: _inner(a, users))


def _inner(a: Node, users) -> bool:
    """Whether a chain reads through its operand a: one reader, no name of its own."""
    return len(users[a]) == 1 and not a.hint


def _shifted_factor(f: Node, factors: list[Node]) -> bool:
    """Whether f is another factor of its chain plus, minus or times a number (a Mish's `e *
    (e + 1)`): worked out last, it may take that factor's array (`e += 1`) once the factor
    is read for the last time (by `_beside`, in lowering)."""
    if f.op not in ("add", "sub", "mul", "div") or len(f.args) != 2:
        return False
    a, b = f.args
    other = b if _is_const(a) else a if _is_const(b) else None
    return other is not None and other in factors and other.op not in ("param", "dout")


def _chain_nodes(n: Node, users) -> set[Node]:
    """The products of the product chain n: n and the inner products `_chain_factors` reads
    through."""
    inner = [a for a in n.args if a.op == "mul" and a.dtype == "float" and a.shape == n.shape]
    return {n}.union(*(_chain_nodes(a, users) for a in inner if _inner(a, users)))


def _compound(f: Node, users, chain: set[Node]) -> bool:
    """An elementwise expression that only the products of its chain read, of their shape:
    worked out in a new array of its own."""
    return (
        bool(f.args)
        and OPS[f.op].elementwise
        and f.op not in ("param", "dout", "const", "dim")
        and f.dtype == "float"
        and all(u in chain for u in users[f])
        and f.shape == next(iter(chain)).shape
    )


def read_normalized(graph: Graph) -> Graph:
    """The backward reads x as q * u where the forward makes q = x / u (or x as q / r, for q =
    x * r), x an array of q's shape and u small and positive (a layernorm's `xhat = xc /
    sqrt(var + eps)`, u [N, 1] against [N, D]), and the backward reads both x and q: a
    contraction with x is the contraction with q times u (`vecdot(dxhat, xc)` is
    `vecdot(dxhat, xhat) * t`), a product with x the product with q times u, the small
    factors cancelled. The cache keeps one large array where it kept two, and the forward
    works q out in x's array, as an expert's layernorm keeps `xhat` alone. Only where each
    read of x in the backward is such a one. u is the square root of a sum with a positive
    number, r one over it: never 0, so x is q * u to a rounding (but where x overflows, u is
    inf and q * u is nan). No simplification follows: the rules would read q * u as x again."""
    forward, users = graph.forward, _users(graph)
    found = {}
    for q in graph.nodes:
        x_u = _normalizing(q) if q in forward else None
        if x_u and x_u[0] in forward and _read_back(q, users, forward):
            found.setdefault(x_u[0], (q, x_u[1]))
    subs = {}
    for x, (q, powers) in found.items():
        readers = _read_back(x, users, forward)
        if readers and None not in users[x] and all(_rewritable(b, x, powers) for b in readers):
            subs[x] = {q: 1, **powers}
    if not subs:
        return graph
    known = {_key(n): n for n in graph.nodes}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n in forward or (args == n.args and not any(a in subs for a in args)):
            return m
        with at(n.loc):
            out = _read_through(m, subs, known)
        if out is not m and n.hint and _key(out) not in known:
            out = replace(out, hint=n.hint)
        return _interned(out, known)

    return rewrite(graph, step)


def _read_back(n: Node, users, forward) -> list[Node]:
    """The backward's nodes that take n as an argument."""
    return [b for b in users[n] if b is not None and b not in forward]


def _normalizing(q: Node) -> tuple[Node, dict[Node, int]] | None:
    """(x, the small factors with their powers that make x from q) where q is x / u or x * r,
    u positive (`_positive`), r one over such a u."""
    if q.op not in ("mul", "div") or q.dtype != "float" or q.ndim == 0:
        return None
    pairs = [q.args] if q.op == "div" else [q.args, q.args[::-1]]
    for x, s in pairs:
        if x.shape != q.shape or x.dtype != "float" or not _smaller(s, q):
            continue
        if q.op == "div" and _positive(s):
            return x, {s: 1}
        if q.op == "mul" and s.op == "div" and _is_const(s.args[0]) and _positive(s.args[1]):
            if s.args[0].attr("value") > 0:
                return x, {s: -1}
    return None


def _positive(u: Node) -> bool:
    """u is at least a positive number: the square root of, or a sum of, a positive number and
    a sum of squares (a variance plus eps), reshaped or not (`reshape(std, (N, 1))`)."""
    if u.op in ("sqrt", "reshape"):
        return _positive(u.args[0])
    if u.op == "add":
        a, b = u.args
        return (_is_const(a) and a.attr("value") > 0 and _squares(b)) or (
            _is_const(b) and b.attr("value") > 0 and _squares(a)
        )
    return False


def _squares(n: Node) -> bool:
    """n is a sum of squares, or a mean of them (never negative)."""
    if n.op in ("vecdot", "sumprod", "vdot", "mul"):
        return n.args[0] is n.args[1]
    if n.op in ("reshape", "sum", "mean"):
        return _squares(n.args[0])
    if n.op == "div":
        d = n.args[1]
        return _squares(n.args[0]) and (d.op == "dim" or (_is_const(d) and d.attr("value") > 0))
    return False


def _contracted(b: Node) -> tuple[int, ...] | None:
    """The axes of its operands that a contraction sums over (vecdot: the last; sumprod: its
    own), or None for another operation."""
    if b.op == "vecdot" and b.args[0].shape == b.args[1].shape:
        return (b.args[0].ndim - 1,)
    return b.attr("axis") if b.op == "sumprod" else None


def _rewritable(b: Node, x: Node, powers: dict[Node, int]) -> bool:
    """Whether `_read_through` can read x as q times `powers` in b: a contraction along which
    the factors are constant, or a product or quotient of x's shape whose other factors are
    small."""
    axes = _contracted(b)
    if axes is not None:
        return all(_constant_along(f, x, axes) for f in powers)
    if b.op not in ("mul", "div") or b.shape != x.shape:
        return False
    powers = _powers(b, b.shape)  # (x its one large factor: q * u then walks one array too)
    return x in powers and all(f is x or f.shape != b.shape for f in powers)


def _read_through(m: Node, subs: dict[Node, dict[Node, int]], known: dict) -> Node:
    """m with each x of `subs` read as its q times its factors, and the small factors of a
    product or quotient chain that meet cancelled; m itself where nothing changes, or where
    that would change its type (then x stays read, and cached)."""
    axes = _contracted(m)
    if axes is not None and any(a in subs for a in m.args):
        scale: dict[Node, int] = {}
        args = []
        for a in m.args:
            q, *factors = subs.get(a, {a: 1}).items()
            args.append(q[0])
            for f, p in factors:
                f = _kept(f, a, axes, m, known)
                scale[f] = scale.get(f, 0) + p
        product = _interned(make(m.op, *args, **m.kw), known)
        out = _from_powers({product: 1, **scale}, None)
        return out if out.type == m.type else m
    if m.op not in ("mul", "div"):
        return m
    stop = m.shape if m.shape in {x.shape for x in subs} else None
    factors = _factors_of(m, stop, lambda part: False)
    powers: dict[Node, int] = {}
    for f, p in factors:
        for g, r in subs.get(f, {f: 1}).items():
            powers[g] = powers.get(g, 0) + p * r
    if not any(f in subs for f, _ in factors) and sum(map(abs, powers.values())) == len(factors):
        return m  # (nothing read through, nothing cancelled)
    out = _from_powers(powers, stop)
    return out if out.type == m.type else m  # (a cancelled factor that set the shape)


def _kept(f: Node, x: Node, axes: tuple[int, ...], m: Node, known: dict) -> Node:
    """Factor f of x (aligned on the right), constant along the summed `axes`, shaped to
    broadcast against the contraction m's result: those axes dropped (`t` [N, 1] -> [N])."""
    padded = (Dim.of(1),) * (x.ndim - f.ndim) + f.shape
    shape = _squeezed(tuple(d for i, d in enumerate(padded) if i not in axes))
    if shape == _squeezed(f.shape) and len(f.shape) <= m.ndim:
        return f
    return _interned(make("reshape", f, shape=shape), known)


def _interned(n: Node, known: dict) -> Node:
    """The graph's node of n's value if it has one (`t.reshape((N,))` made once), else n."""
    return known.setdefault(_key(n), n)


# The most elements of a matrix whose sums over one axis stay sums: at 32 x 32 a sum and a
# product with ones take about as long (`python bench/kernels.py --only "sum(x"`).
SUMS_UP_TO = 1024

# The fewest elements of an array whose sum over every axis is np.einsum's: at 4096 the two
# take about as long, and at 10**6 np.einsum("i->", x) takes 0.3-0.5x the time of x.sum().
WHOLE_SUMS_FROM = 8192


def sums_as_products(graph: Graph, sizes: dict[str, int] | None) -> Graph:
    """sum(x, axis=1) -> x @ ones(D), and sum(x, axis=0) -> ones(N) @ x, for a float matrix x
    (a mean: over the count; kept axes: reshaped back): BLAS's matrix-vector product takes
    0.1-0.6x the time of NumPy's sum along the rows of a matrix of 10**3 elements or more, in
    float64 and float32, and 0.1-0.8x down its columns; its rounding is the sum's within a
    factor of two (along rows; down columns, where NumPy adds row by row, smaller). And the sum
    of every element of a float array of 8192 or more, `np.einsum("i->", x)`: NumPy's
    pairwise sum takes 2-3x its time at 10**6 elements (a loss's sums), and its rounding is
    within a few ulp of the sum's in float32. Only at the sizes the user expects (`bpc compile
    --dim`), as `place_scales`: without them the code says `x.sum(axis=0)`, which reads best;
    an array too small to gain keeps its sum there too, and so does one whose size those do
    not tell. One vector of ones serves every sum of its length."""
    if not sizes:
        return graph

    def elements(x: Node) -> int:
        count = _elements(x, sizes)
        return 0 if count is None else count

    def summed(n: Node) -> bool:
        if n.op not in ("sum", "mean") or n.dtype != "float" or not n.args[0].ndim:
            return False
        x, axes = n.args[0], n.attr("axis")
        if len(axes) == x.ndim:
            return elements(x) >= WHOLE_SUMS_FROM
        return x.ndim == 2 and len(axes) == 1 and elements(x) > SUMS_UP_TO

    chosen = {n for n in graph.nodes if summed(n)}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        m = with_args(n, args)
        if n not in chosen:
            return m
        x, axes = m.args[0], n.attr("axis")
        with at(n.loc):
            if len(axes) == x.ndim:
                total = make("einsum", x, spec="ijklmnop"[: x.ndim] + "->")
                count = product(x.shape)
            else:
                ones = make("ones", shape=(x.shape[axes[0]],))
                total = make("matmul", x, ones) if axes == (1,) else make("matmul", ones, x)
                count = x.shape[axes[0]]
            if n.attr("keepdims"):
                total = make("reshape", total, shape=n.shape)
            if n.op == "mean":
                total = make("div", total, make("dim", dim=count))
        return replace(total, hint=n.hint)

    return _shared_values(rewrite(graph, step)) if chosen else graph
