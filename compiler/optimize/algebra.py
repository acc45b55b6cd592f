"""The local rewrites, each a `@rule` (or a `@canonical` rewrite) of one node stated in its
docstring: constants folded, arithmetic identities, products and quotients, sums, transposes,
reshapes and broadcasts, negations moved outward, composite operations expanded.

They register in the order they are written here, which is the order the simplifier tries them on
a node (the first that applies wins): moving one may change the generated code.
"""

from __future__ import annotations

import math

from ..dims import Dim, product
from ..ir import OPS, Node, ShapeError, const, make
from ..ops.elementwise import _halved_ties, constant_value
from ..ops.linalg import split_spec
from .fixpoint import _existing, _read_once
from .rules import _is_const, _product, _same_type, canonical, rule


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


@rule("vecdot", "vdot")
def dot_computed_the_other_way(n: Node) -> Node | None:
    """vecdot(b, a) -> vecdot(a, b) where the graph computes that already, and vdot likewise:
    the same sums of the same products, in the same order (a cosine similarity's gradient read
    `np.vecdot(b, a)` again over two [N, D] arrays, where the forward had `np.vecdot(a, b)`)."""
    a, b = n.args
    m = None if a is b else _existing(n.op, b, a, **n.kw)
    return m if m is not None and m.type == n.type else None


@rule("add", "sub")
def scatter_added(n: Node) -> Node | None:
    """a + scatter_along(idx, g) -> add_along(a, idx, g), a - scatter_along(idx, g) ->
    add_along(a, idx, -g) and scatter_along(idx, g) - a -> add_along(-a, idx, g), for a float
    array a of the sum's shape: take_along's gradient added to another (an SVM loss's
    `dscores`, CS231n's `dscores[rows, y] -= count`, a log-softmax's `g - softmax * sum(g)`)
    writes one element per index into a's array, where the scatter made a mask and a product
    of a's size and the sum added them (three passes over [N, C])."""
    for a, s in [n.args, n.args[::-1]]:
        if s.op == "scatter_along" and a.shape == n.shape and a.dtype == "float":
            if not a.type.static:
                idx, g = s.args
                if n.op == "add":
                    out = make("add_along", a, idx, g)
                elif s is n.args[1]:
                    out = make("add_along", a, idx, make("neg", g))
                else:
                    out = make("add_along", make("neg", a), idx, g)
                return out if out.type == n.type else None
    return None


@rule("sum")
def sum_of_a_scatter(n: Node) -> Node | None:
    """sum(scatter_along(idx, g), axis=-1) -> g, kept as [..., 1] with keepdims: each row of a
    scatter holds its one value of g and zeros (a log-softmax's gradient `g - softmax * sum(g)`
    where g is take_along's: a negative log-likelihood written as `-take_along(log_softmax(s),
    y)`)."""
    s = n.args[0]
    if s.op != "scatter_along" or n.attr("axis") != (s.ndim - 1,):
        return None
    g = s.args[1]
    out = make("reshape", g, shape=n.shape) if n.attr("keepdims") else g
    return out if _same_type(out, n) else None


@rule("ties_halved")
def ties_halved_of_a_number(n: Node) -> Node | None:
    """ties_halved(g, a, b) -> g * (a > b) + 0.5 * g * (a == b) where g is no longer an array
    of the result's shape (a loss's `1 / n`, which the simplifier made of g_grad's upstream
    gradient 1): `_ties_halved` gives its result g's dtype, and a Python number times a mask
    is float64 in NumPy, whatever a's dtype. A number times a mask is a value the lowering
    gives the graph's float dtype. Against the number 0 (`maximum(t, 0)`, an SVM's margins),
    the two masks are one sign: g / 2 * (sign(t) + 1), and g / 2 * (1 - sign(t)) for 0's
    gradient against t: one float array where there were two masks and three floats (an
    input nan gives a nan, where the masks gave 0)."""
    g, a, b = n.args
    if g.shape == n.shape and g.ndim and not g.type.static:
        return None
    for zero, t in ((b, a), (a, b)):
        if _is_const(zero, 0) and t.shape == n.shape and t.dtype == "float":
            sign = make("sign", t)
            side = make("add", sign, 1) if zero is b else make("sub", 1, sign)
            out = make("mul", make("mul", 0.5, g), side)
            return out if _same_type(out, n) else None
    return _halved_ties(g, n, a, b)


def _masked(w: Node) -> int | None:
    """For w = where(m, a, b), the operand (1 or 2) that is not the number 0 where the other is
    (a gradient of where: `where(m, g, 0)`, `where(m, 0, g)`); None otherwise."""
    if w.op != "where":
        return None
    if _is_const(w.args[2], 0) and not _is_const(w.args[1], 0):
        return 1
    if _is_const(w.args[1], 0) and not _is_const(w.args[2], 0):
        return 2
    return None


@rule("mul")
def product_into_where(n: Node) -> Node | None:
    """where(m, 0, g) * f -> where(m, 0, g * f), and where(m, g, 0) * f likewise: the chain
    rule through a branch of a `where` (an ELU's `where(x > 0, x, exp(x) - 1)`). The same
    passes, and the masked-off elements stay 0 where f is inf (0 * inf would make them nan: an
    exp that overflows in the branch not taken). Only where the branch or f has the product's
    shape: a number times a number in a branch stays outside (`0.5 * where(m, 0, dout / N)`,
    whose `where` a product may share)."""
    for w, i, f in _wheres_times(n):
        if n.shape in (w.args[i].shape, f.shape):
            args = list(w.args)
            args[i] = make("mul", w.args[i], f)
            out = make("where", *args)
            return out if _same_type(out, n) else None
    return None


def _wheres_times(t: Node):
    """(w, i, f) for each way t is w * f of floats, w a `where` whose operand i is not the
    number 0 and the other is (`_masked`); f may also be a whole number (the 2 of a square's
    gradient, `2 * where(m, d, 0)`)."""
    if t.op == "mul" and t.dtype == "float":
        for w, f in (t.args, t.args[::-1]):
            i = _masked(w)
            if i is not None and (f.dtype == "float" or (f.dtype == "int" and f.type.static)):
                yield w, i, f


@rule("add")
def complementary_wheres(n: Node) -> Node | None:
    """where(m, a, 0) + where(m, 0, b) -> where(m, a, b), either term maybe times a value f
    (`where(m, 0, b) * f`, its branch then b * f): the gradient of a value that both branches
    of a `where` read (`where(x > 0, x, 0.01 * x)`), one `where` where there were two and
    their sum."""
    terms = [_masked_term(t) for t in n.args]
    if None in terms or terms[0][0] is not terms[1][0] or terms[0][1] == terms[1][1]:
        return None
    (mask, i, a), (_, _, b) = terms
    out = make("where", mask, *((a, b) if i == 1 else (b, a)))
    return out if _same_type(out, n) else None


def _masked_term(t: Node) -> tuple[Node, int, Node] | None:
    """(m, i, v) for t = where(m, ...) whose operand i is v and the other 0 (`_masked`), or
    such a `where` times f, v then the branch times f."""
    i = _masked(t)
    if i is not None:
        return t.args[0], i, t.args[i]
    for w, i, f in _wheres_times(t):
        return w.args[0], i, make("mul", w.args[i], f)
    return None


@canonical
def where_of_equal_branches(n: Node) -> Node | None:
    """where(m, a, a) -> a, where a has the result's type: the branches of a stable form
    written out, once each is recognized (`where(x > 0, x + log1p(exp(-x)), log1p(exp(x)))`
    is softplus(x) on both sides). Before differentiation: as written, each branch's gradient
    would be masked, and the two added."""
    if n.op != "where":
        return None
    _, a, b = n.args
    return a if a is b and _same_type(a, n) and a.type.static == n.type.static else None


def _number_times(x: Node) -> tuple[int | float, Node]:
    """(c, z) for x = c * z or z * c with a number c (-z: c = -1), else (1, x)."""
    if x.op == "neg":
        return -1, x.args[0]
    if x.op == "mul":
        for c, z in (x.args, x.args[::-1]):
            value = constant_value(c)
            if value is not None and not isinstance(value, bool) and not c.ndim:
                return value, z
    return 1, x


@canonical
def number_factor_out_of_where(n: Node) -> Node | None:
    """where(m, a * z, b * z) -> z * where(m, a, b) for numbers a and b, either maybe 1 (a
    leaky ReLU, `where(x > 0, x, 0.01 * x)`, is x * where(x > 0, 1, 0.01)). The same values (z
    * 1 is z, z * b is b * z) and gradient (z's is the upstream gradient times the factor
    where(m, a, b), at the mask's edge too), where the gradient `where(m, g, 0.01 * g)` took
    two passes and the factor's product takes one; a where of two numbers is emitted as
    arithmetic on the mask (`_where_as_arithmetic`), which a mask of random signs does not
    slow down as it does NumPy's where, tenfold."""
    if n.op != "where" or n.dtype != "float":
        return None
    (a, z), (b, w) = _number_times(n.args[1]), _number_times(n.args[2])
    if z is not w or a == b or z.shape != n.shape or z.dtype != "float" or z.type.static:
        return None
    out = make("mul", z, make("where", n.args[0], a, b))
    return out if _same_type(out, n) else None


@rule("div")
@canonical
def quotient_of_a_scaled_product(n: Node) -> Node | None:
    """(c1 * a) / c2 -> (c1 / c2) * a for numbers c1 and c2, c1 anywhere in a product (`x *
    (2 * s) / 2`, a sigmoid written with tanh and halved, is `x * s`); a product without a
    number is left divided. Before differentiation too, so that the gradient is the simpler
    product's."""
    if n.op != "div" or not _is_const(n.args[1]) or n.args[0].op != "mul" or n.dtype != "float":
        return None
    c2 = n.args[1]
    factors = _factors(n.args[0])
    k = next((i for i, f in enumerate(factors) if _is_const(f)), None)
    if k is None or isinstance(c2.attr("value"), bool) or not c2.attr("value"):
        return None
    c1 = factors[k].attr("value")
    if isinstance(c1, bool):
        return None
    rest = _product(factors[:k] + factors[k + 1 :])
    m = make("mul", c1 / c2.attr("value"), rest)
    return m if _same_type(m, n) else None


@rule("mul", "div", "pow")
def multiply_by_one(n: Node) -> Node | None:
    """x * 1 -> x, 1 * x -> x, x / 1 -> x, x ** 1 -> x, and a power 0 is a one too:
    x * y ** 0 -> x where x has the product's shape (NumPy's y ** 0 is 1 even at nan and inf).
    The second derivative of `e ** 2` is `2 * e ** 0` times its seed."""
    if n.op in ("mul", "div", "pow"):
        a, b = n.args
        if _is_one(b) and _same_type(a, n):
            return a
        if n.op == "mul" and _is_one(a) and _same_type(b, n):
            return b
    return None


def _is_one(n: Node) -> bool:
    return _is_const(n, 1) or (n.op == "pow" and _is_const(n.args[1], 0))


@rule("pow")
def powers_as_products(n: Node) -> Node | None:
    """x ** 2 -> x * x, x ** 3 -> x * x * x, x ** 4 -> (x * x) * (x * x), x ** 0.5 -> sqrt(x),
    x ** 1.5 -> x * sqrt(x), x ** -e -> 1 / x ** e, for exponents that are multiples of 1/2 up
    to 4, on float arrays. np.power takes 15-44 ms per 1e6 float64 elements and 7-22 ms in
    float32 on this project's 2-core machine, the products and square roots 0.4-6 ms and
    0.2-1 ms (`python bench/kernels.py --only x**`; docs/performance.md, "Kernels"). Applied
    after differentiation, so the backward of `x ** 3` is `3 * g * (x * x)`, which shares the
    forward's square."""
    a, b = n.args
    if a.dtype != "float" or a.type.static or not _is_const(b) or isinstance(b.attr("value"), bool):
        return None
    e = b.attr("value")
    if not math.isfinite(e) or e in (0, 1) or abs(e) > 4 or (2 * e) % 1:
        return None
    whole, half = divmod(abs(e), 1)
    square = make("mul", a, a)
    powers = {0: None, 1: a, 2: square, 3: make("mul", square, a), 4: make("mul", square, square)}
    out = powers[int(whole)]
    if half:
        root = make("sqrt", a)
        out = root if out is None else make("mul", out, root)
    return make("div", 1, out) if e < 0 else out


@canonical
def repeated_factors_as_powers(n: Node) -> Node | None:
    """x * x * x -> x ** 3 (and x ** 2 * x, a * x * b * x * x -> a * b * x ** 3), for a float
    array x of the product's shape, the third and fourth powers: differentiated as a power,
    whose adjoint is `3 * g * x ** 2` in one term, where the product rule gives one term per
    factor (`0.1 * x * x * x` had two, `0.2 * g * x * x` and `0.1 * g * x * x`, each a pass).
    After differentiation `powers_as_products` writes the powers as products again. A square
    stays a product: its product rule, `g * x + g * x`, is `2 * g * x` already."""
    if n.op != "mul" or n.dtype != "float" or n.type.static:
        return None
    factors = _factors(n)
    powers: dict[Node, float] = {}
    of: dict[Node, list[int]] = {}  # a base -> the factors that are powers of it
    for i, f in enumerate(factors):
        base, k = f, 1
        if f.op == "pow" and _is_const(f.args[1]) and not isinstance(f.args[1].attr("value"), bool):
            base, k = f.args[0], f.args[1].attr("value")
        if base.shape == n.shape and base.dtype == "float" and not base.type.static:
            powers[base] = powers.get(base, 0) + k
            of.setdefault(base, []).append(i)
    base = next((b for b in powers if len(of[b]) > 1 and 3 <= powers[b] <= 4), None)
    if base is None or powers[base] % 1:
        return None
    rest = [f for i, f in enumerate(factors) if i not in of[base]]  # (x ** y stays a factor)
    power = make("pow", base, int(powers[base]))
    out = make("mul", _product(rest), power) if rest else power
    return out if _same_type(out, n) else None


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
@canonical
def double_negation(n: Node) -> Node | None:
    """-(-x) -> x. Before differentiation too, where a rule wrote one of the negations:
    `-log(sigmoid(x)) + x` is `softplus(-x) + x` (`log_of_sigmoid`), then softplus(x)."""
    if n.op == "neg" and n.args[0].op == "neg":
        return n.args[0].args[0]
    return None


@rule("sum")
def sum_of_relu_of_negation(n: Node) -> Node | None:
    """sum(relu(-z)) -> -sum(minimum(z, 0)): the same value (after differentiation, which chose
    the gradient), and -z need not be an array of its own (the softplus of -z in a binary
    cross-entropy's loss, once `split_sums` sums its terms one by one)."""
    r = n.args[0]
    if r.op == "relu" and r.args[0].op == "neg" and r.args[0].args[0].type == r.type:
        return make("neg", make("sum", make("minimum", r.args[0].args[0], 0), **n.kw))
    return None


@rule("abs")
def abs_of_negation(n: Node) -> Node | None:
    """|-x| -> |x| (the softplus of -x and of x then share one exp(-|x|))."""
    return make("abs", n.args[0].args[0]) if n.args[0].op == "neg" else None


@rule("mul")
def times_its_sign(n: Node) -> Node | None:
    """u * sign(u) -> |u|, (u / t) * sign(u) -> |u| / t and |u| * sign(u) -> u, either order:
    the same values (sign is -1, 0 or 1, and nan for nan). The softsign's gradient, where
    `x / (1 + |x|)`'s quotient rule multiplies `x / t` by abs's gradient sign(x), is then
    `1 - |x| / t` over t, which `complement_of_a_ratio` makes 1 / t."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for s, f in (n.args, n.args[::-1]):
        if s.op != "sign":
            continue
        u = s.args[0]
        if f is u:
            out = make("abs", u)
        elif f.op == "abs" and f.args[0] is u:
            out = u
        elif f.op == "div" and f.args[0] is u:
            out = make("div", make("abs", u), f.args[1])
        else:
            continue
        return out if _same_type(out, n) else None
    return None


@rule("sub")
def complement_of_a_ratio(n: Node) -> Node | None:
    """1 - a / (1 + a) -> 1 / (1 + a), the sum either way round: the same value, without the
    cancellation where a / (1 + a) is near 1 (1 - |x| / (1 + |x|), the softsign's gradient,
    kept none of its digits there). (For another number c, c - a / (c + a) is not c / (c + a).)"""
    if n.op != "sub" or n.dtype != "float" or not _is_const(n.args[0], 1):
        return None
    one, q = n.args
    if q.op != "div" or q.args[1].op != "add":
        return None
    a, total = q.args
    for number, other in (total.args, total.args[::-1]):
        if other is a and _is_const(number, 1):
            out = make("div", one, total)
            return out if _same_type(out, n) else None
    return None


@canonical
def abs_written_as_maximum(n: Node) -> Node | None:
    """maximum(x, -x) -> |x| and minimum(x, -x) -> -|x|, either order: the same values, and the
    same gradient (at x = 0 the maximum's tie sends half to each side, 0 in all, abs's sign);
    one pass where the maximum's gradient made a mask for each side (a softplus written with
    `exp(-maximum(x, -x))` kept 2.4-4.1x the expert's peak memory)."""
    if n.op not in ("maximum", "minimum") or n.dtype != "float":
        return None
    a, b = n.args
    for x, m in ((a, b), (b, a)):
        opposite = m.op == "neg" and m.args[0] is x
        if x.op == m.op == "sub" and m.args[0] is x.args[1] and m.args[1] is x.args[0]:
            opposite = True  # (y - p is -(p - y), exactly: an L1 loss's `maximum(p - y, y - p)`)
        if opposite and x.type == n.type:
            return make("abs", x) if n.op == "maximum" else make("neg", make("abs", x))
    return None


@canonical
def extremum_of_a_multiple(n: Node) -> Node | None:
    """maximum(z, c * z) -> z * ((sign(z) + 1) * b + c) for a number 0 < c < 1, b = (1 - c) /
    2, and minimum(z, c * z) -> z * ((1 - sign(z)) * b + c): a leaky ReLU written `maximum(x,
    0.01 * x)`, either order. The factor is 1 where z > 0 (2 b + c is 1 exactly, which the rule
    checks) and c where z < 0 (for the minimum, the other way round), and b + c = (1 + c) / 2 at
    z = 0, where the maximum's tie sends half of the gradient to each side: the same values and
    gradient, which is the upstream gradient times the factor, one pass where the maximum's
    made a mask for each side (`_ties_halved`, four passes each)."""
    if n.op not in ("maximum", "minimum") or n.dtype != "float":
        return None
    for z, m in (n.args, n.args[::-1]):
        c, w = _number_times(m)
        if w is not z or z.type != n.type or not 0 < c < 1:
            continue
        b = (1 - c) / 2
        if 2 * b + c != 1:
            return None
        sign = make("sign", z)
        side = make("add", sign, 1) if n.op == "maximum" else make("sub", 1, sign)
        out = make("mul", z, make("add", make("mul", side, b), c))
        return out if out.type == n.type else None
    return None


_FLIPPED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


@rule(*_FLIPPED)
def comparison_of_negation(n: Node) -> Node | None:
    """-x >= c -> x <= -c for a number c, and likewise each comparison, either side: the mask of
    a softplus of -z (`softplus_gradient_from_e`'s `-z >= 0`) is read from z, and -z need not be
    made for it (for nan both are false)."""
    a, b = n.args
    if a.op == "neg" and _is_const(b):
        return make(_FLIPPED[n.op], a.args[0], 0 - b.attr("value"))  # (0, not -0.0)
    if b.op == "neg" and _is_const(a):
        return make(_FLIPPED[n.op], 0 - a.attr("value"), b.args[0])
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


@rule("add", "sub")
def add_to_itself(n: Node) -> Node | None:
    """g + g -> 2 * g, and -g - g -> -2 * g (two negated contributions of one gradient, as a
    second derivative of `1 - h * h` gives them)."""
    a, b = n.args if n.op in ("add", "sub") else (None, None)
    if n.op == "add" and a is b:
        return make("mul", 2, a)
    if n.op == "sub" and a.op == "neg" and a.args[0] is b:
        return make("mul", -2, b)
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
    c2 * b), so that `2 * ((0.5 * v) * X)` is `v * X`; and (c1 * a) * (c2 * b) -> (c1 * c2) *
    (a * b) (`0.5 * x * (2 * s)`, GELU's tanh form written out, is `x * s`)."""
    if n.op == "mul" and all(_scaled(f) for f in n.args):
        (c1, a), (c2, b) = (f.args for f in n.args)
        product_ = make("mul", a, b)
        if product_.dtype != "float":  # (two masks: the number times them would be int64)
            return None
        return make("mul", c1.attr("value") * c2.attr("value"), product_)
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


def _scaled(f: Node) -> bool:
    """Whether f is c * x, a number times a value."""
    return f.op == "mul" and _is_const(f.args[0]) and not _is_const(f.args[1])


@rule("div")
def constant_out_of_a_quotient(n: Node) -> Node | None:
    """(c * a) / b -> c * (a / b) for a number c and `a` of the quotient's shape (the same work),
    so that constants meet and cancel: `2 * (0.5 * g / t / N)` -> `g / t / N`; the number may
    lead a product, `(c * a * d) / b` -> `c * (a * d / b)` (`0.5 * d * d / var`, whose sum is
    then `0.5 * vdot(d, d / var)`)."""
    if n.op != "div" or n.args[0].op != "mul" or n.dtype != "float":
        return None
    factors = _factors(n.args[0])
    if len(factors) < 2 or not _is_const(factors[0]):
        return None
    a = _product(factors[1:])
    if a.shape == n.shape and not a.type.static:
        return make("mul", factors[0], make("div", a, n.args[1]))
    return None


@rule("div")
def constant_out_of_a_divisor(n: Node) -> Node | None:
    """a / (c * b) -> (a / b) / c for a number c and b of the quotient's shape (the same work,
    and the same two roundings): `(x - mu)**2 / (2 * exp(logvar))` makes no array for `2 *
    exp(logvar)`, and its gradient with respect to logvar is the quotient's own, `-(a / b) /
    c`, where the chain rule through the product gave `a / (c b)^2 * c * b`."""
    if n.op != "div" or n.args[1].op != "mul" or n.dtype != "float":
        return None
    c, b = n.args[1].args
    if not _is_const(c):
        c, b = b, c
    if not _is_const(c) or isinstance(c.attr("value"), bool) or not c.attr("value"):
        return None
    if b.shape != n.shape or b.dtype != "float":  # (`x / (2 * v)` for a small v: 2 * v first)
        return None
    m = make("div", make("div", n.args[0], b), c)
    return m if m.type == n.type else None


@rule("div")
def quotient_by_numbers(n: Node) -> Node | None:
    """(X / a) / b -> X / (a * b) for an array X and numbers a and b (constants, sizes, 0-d
    values): one pass over X where there were two, the numbers multiplied first (the gradient
    of `(x - mu)**2 / (2 * exp(logvar))`, `t / 2 / max(n, 1)` once `constant_out_of_a_divisor`
    has taken the 2 out). `small_operands_first` does this for small arrays and leaves numbers
    to the rules on constants, none of which combined two divisors; this is that case for
    numbers alone, the one form of the four where no constant rule fights it."""
    if n.op != "div" or n.dtype != "float" or n.args[0].op != "div" or n.args[1].ndim:
        return None
    (x, a), b = n.args[0].args, n.args[1]
    if a.ndim or x.shape != n.shape or x.ndim == 0:
        return None
    m = make("div", x, make("mul", a, b))
    return m if m.type == n.type else None


@rule("mul")
def times_a_reciprocal(n: Node) -> Node | None:
    """(1 / t) * g -> g / t and g * (1 / t) -> g / t, when the reciprocal is as large as the
    product: one operation instead of two where `1 / t` is not needed elsewhere, and as many
    where it is (batchnorm's forward alone scales by `gamma / t`); or when `1 / t` is a plain
    number, a size (`1.0 / N` of a carried loss's gradient, `g / N`)."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for r, g in (n.args, n.args[::-1]):
        if r.op == "div" and _is_const(r.args[0], 1) and (r.shape == n.shape or r.type.static):
            return make("div", g, r.args[1])
    return None


@rule("mul")
def quotient_times_divisor(n: Node) -> Node | None:
    """(x / a) * a -> x and a * (x / a) -> x, where x has the product's type: the chain rule
    through a quotient and then the function it divides by (`-g * y / t * t` for y = u / t,
    t = exp(v): a Gaussian negative log-likelihood's gradient). Where a is 0 or inf the product
    is nan; x is its limit."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for q, a in (n.args, n.args[::-1]):
        if q.op == "div" and q.args[1] is a and q.args[0].type == n.type:
            return q.args[0]
    return None


@rule("mul")
def constant_leftmost(n: Node) -> Node | None:
    """c * (a * b) -> c * a * b, the way a derivation is written (`2 * dout * q`), for a float
    a: a number times a mask first would be an int64 array, which makes float32 float64."""
    if n.op == "mul" and _is_const(n.args[0]) and n.args[1].op == "mul":
        a, b = n.args[1].args
        if not _is_const(a) and a.op != "mul" and a.dtype == "float":  # (one level)
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


@rule("mul")
def small_numerator_out(n: Node) -> Node | None:
    """Y * (c * (s / X)) -> (c * s) * (Y / X), for arrays X and Y of the product's shape and
    numbers or small arrays c and s: the small factors are multiplied first and the large
    arrays meet in one quotient, two passes where there were three (a Gaussian negative
    log-likelihood's `dmu = -2 * (0.5 / n / exp(logvar)) * (x - mu)`)."""
    if n.dtype != "float" or n.ndim == 0:
        return None
    factors = _factors(n)
    for i, q in enumerate(factors):
        if q.op != "div" or q.args[1].shape != n.shape or q.args[0].ndim >= n.ndim:
            continue
        rest = factors[:i] + factors[i + 1 :]
        large = [f for f in rest if f.shape == n.shape]
        small = [f for f in rest if f.shape != n.shape] + [q.args[0]]
        if not large or any(f.dtype != "float" and not _is_const(f) for f in small):
            continue
        m = make("mul", _product(small), make("div", _product(large), q.args[1]))
        return m if m.type == n.type else None
    return None


@canonical
def outer_factors_apart(n: Node) -> Node | None:
    """X * (g / s) -> g * (X / s) and X * (g * s) -> g * (X * s), for an array X of the
    product's shape and arrays g and s that broadcast to it from fewer elements, and whose
    quotient or product does not (a layernorm's `(x - mu) * (gamma / sd)`, [D] over [N, 1]):
    the outer array g / s is never made, and each of the two passes walks X, as in the
    canonical spelling `gamma * (x - mu) / sd`. As written, the forward made and cached an
    [N, D] array for `gamma / sd`, which the backward read: 2.0x the expert's peak memory and
    1.5x the time at 1024 x 1024. Where something else reads g / s, it stays."""
    if n.op != "mul" or n.dtype != "float" or n.ndim == 0:
        return None
    for x, q in (n.args, n.args[::-1]):
        if q.op not in ("mul", "div") or x.shape != q.shape or q.shape != n.shape:
            continue
        g, s = q.args
        if _smaller(g, n) and _smaller(s, n) and q.dtype == "float" and _read_once(q):
            m = make("mul", g, make(q.op, x, s))
            return m if m.type == n.type else None
    return None


def _smaller(s: Node, n: Node) -> bool:
    """s is an array (no plain number) that broadcasts to n's shape from fewer elements: an axis
    that n has is missing from s, or has size 1 in s where n's has another size."""
    if s.type.static or s.ndim > n.ndim:
        return False
    padded = (Dim.of(1),) * (n.ndim - s.ndim) + s.shape
    return any(d == Dim.of(1) != nd for d, nd in zip(padded, n.shape))


def _regrouped(op: str, inner: Node, u: Node, n: Node) -> Node | None:
    """op(inner, u), inner a product or quotient of X, of n's shape, and a small s, with the
    small operands combined first; or None."""
    if inner.op not in ("mul", "div"):
        return None
    pairs = [inner.args, inner.args[::-1]] if inner.op == "mul" else [inner.args]
    for x, s in pairs:
        if x.shape != n.shape or x.dtype != "float" or not _smaller(s, n):
            continue
        if inner.op == "div":  # (X / s) * u -> (u / s) * X; (X / s) / u -> X / (s * u)
            small = make("div", u, s) if op == "mul" else make("mul", s, u)
        else:  # (X * s) * u -> (s * u) * X; (X * s) / u -> (s / u) * X
            small = make(op, s, u)
        if small.dtype != "float" or not _smaller(small, n):
            continue
        return make("div", x, small) if op == inner.op == "div" else make("mul", small, x)
    return None


@rule("mul", "div")
def small_operands_first(n: Node) -> Node | None:
    """(X * s) / u -> (s / u) * X, (X / s) * u -> (u / s) * X, (X * s) * u -> (s * u) * X and
    (X / s) / u -> X / (s * u), with either order of a product, for an array X of the result's
    shape and arrays s and u that broadcast to it from fewer elements (a batchnorm's gamma and
    standard deviation, [D] or [1, D] against [N, D]) and do so together: the small arrays are
    combined first, and X is walked once instead of twice (`gamma * xc / t` is `gamma / t`
    times xc). Plain numbers are left to the rules on constants (`quotient_by_numbers` takes
    `(X / a) / b` for numbers a and b)."""
    if n.dtype != "float":
        return None
    outer = [(n.args[0], n.args[1])] if n.op == "div" else [n.args, n.args[::-1]]
    for inner, u in outer:
        if _smaller(u, n):
            m = _regrouped(n.op, inner, u, n)
            if m is not None:
                return m
    return None


@canonical
def normalized_first(n: Node) -> Node | None:
    """(s * X) / u -> s * (X / u), for an array X of the quotient's shape and small arrays s and
    u that broadcast along different axes, so that they do not combine into a small one (a
    layernorm's `gamma * xc / sqrt(var + eps)`, gamma [D] and the root [N, 1]): the same two
    passes, and the backward reads the normalized `xc / u` (an expert's `xhat`, which
    `read_normalized` can then keep alone) where it read `gamma * xc`, a second large array.
    Likewise (s * X) * u -> s * (X * u), the root's reciprocal a factor (`gamma * (x - m) *
    (v + eps) ** -0.5`), for u a statistic kept along an axis (`[N, 1]`) and s none (else the
    rule would take the two back and forth)."""
    if n.op not in ("div", "mul") or n.dtype != "float":
        return None
    pairs = (n.args,) if n.op == "div" else (n.args, n.args[::-1])
    for inner, u in pairs:
        if inner.op != "mul" or not _smaller(u, n) or u.dtype != "float":
            continue
        if n.op == "mul" and Dim.of(1) not in u.shape:
            continue
        for s, x in (inner.args, inner.args[::-1]):
            if x.shape == n.shape and x.dtype == "float" and _smaller(s, n) and s.dtype == "float":
                if n.op == "mul" and Dim.of(1) in s.shape:
                    continue
                if not _smaller(make(n.op, s, u), n):
                    return make("mul", s, make(n.op, x, u))
    return None


def _factors(n: Node, inside=lambda a: True) -> list[Node]:
    """The factors of a tree of full-shape products, left to right; an inner product is read
    through where `inside` says so."""
    if n.op != "mul" or n.dtype != "float":
        return [n]
    through = [_factors(a, inside) if a.shape == n.shape and inside(a) else [a] for a in n.args]
    return [f for fs in through for f in fs]


@rule("sum", "mean")
def sum_of_scaled(n: Node) -> Node | None:
    """sum(X * Y * v, axes) -> v * sum(X * Y, axes) when v is the same all along the summed
    leading axes (a scalar, or a vector along the last axis summed over the rows), for products
    of three factors or more, nested ones included: the product with v is taken on the small
    result, and batchnorm's sum(dout * xhat) = invstd * sum(dout * xc) shares its sum with
    sum(dout * gamma * xc). For sum(X * v), the product may be needed anyway (a gradient,
    dscores): it moves only where sum(X) is computed anyway (over any axes), and shares it;
    a number c always moves, sum(c * X) -> c * sum(X) and mean(c * X) -> c * mean(X)
    (`mean(0.5 * logvar + ...)` term by term), since c * X costs a pass over X where
    c * sum(X) costs one multiplication."""
    x, axes = n.args[0], n.attr("axis")
    if x.op != "mul" or n.dtype != "float":
        return None
    factors = _factors(x)
    if len(factors) == 2:
        c, big = factors
        if _is_const(c) and big.shape == x.shape and big.dtype == "float":
            return make("mul", c, make(n.op, big, **n.kw))  # (a number: nothing to share)
        return _scaled_sum_shared(n, factors) if n.op == "sum" else None
    if n.op == "mean":
        return None
    if n.attr("keepdims") or axes != tuple(range(len(axes))):
        return None
    # float factors only: a mask or a number alone outside would make an int64 array
    small = [f for f in factors if f.ndim <= x.ndim - len(axes) and f.dtype == "float"]
    rest = [f for f in factors if f not in small]
    if not small or not rest:
        return None
    rest = _product(rest)
    if rest.dtype != "float":  # the sum of a mask would be an int64 count
        return None
    return make("mul", _product(small), make("sum", rest, axis=axes))


def _scaled_sum_shared(n: Node, factors: list[Node]) -> Node | None:
    """sum(v * X, axes) -> v * sum(X, axes) where the graph computes sum(X, axes) already."""
    x, axes, keep = n.args[0], n.attr("axis"), n.attr("keepdims")
    for v, big in (factors, factors[::-1]):
        if v.dtype != "float" or big.shape != x.shape or not _constant_along(v, x, axes):
            continue
        total = _existing("sum", big, axis=axes, keepdims=keep)
        if total is not None:
            m = make("mul", _without_summed(v, x, axes, keep), total)
            return m if m.type == n.type else None
    return None


def _without_summed(v: Node, x: Node, axes: tuple[int, ...], keepdims: bool) -> Node:
    """`v`, the same all along `axes` of `x`, shaped to line up with x summed over them."""
    lead = x.ndim - v.ndim
    squeezed = tuple(v.shape[i - lead] for i in range(lead, x.ndim) if i not in axes)
    return v if keepdims or squeezed == v.shape else make("reshape", v, shape=squeezed)


@rule("sum")
def sum_of_quotient(n: Node) -> Node | None:
    """sum(X / v, axes) -> sum(X, axes) / v when v is the same all along the summed axes: the
    division is taken on the small result, and X / v need not be kept for its sum (layernorm's
    gradient sums `dxhat / std` over the features, and then works in that array in place)."""
    x, axes = n.args[0], n.attr("axis")
    if x.op != "div" or x.dtype != "float" or x.args[0].shape != x.shape:
        return None
    num, v = x.args
    if (v.dtype != "float" and not _is_const(v)) or not _constant_along(v, x, axes):
        return None  # (a number of any kind: `sum(logvar / 2)` is `sum(logvar) / 2`)
    keep = n.attr("keepdims")
    m = make("div", make("sum", num, axis=axes, keepdims=keep), _without_summed(v, x, axes, keep))
    return m if m.type == n.type else None


@rule("sumprod", "vecdot")
def contraction_of_scaled(n: Node) -> Node | None:
    """sumprod(X / v, Y, axes) -> sumprod(X, Y, axes) / v, and likewise X * v and vecdot, when
    v is the same all along the summed axes: the scale is taken on the small result, and X / v
    need not be made (batchnorm's dgamma from `xhat = xc / std`, `np.einsum("ij,ij->j", dout,
    xc) / std`, which shares the sum its dx needs)."""
    a, b = n.args
    x = a if a.shape == b.shape else None
    if x is None or n.dtype != "float":
        return None
    axes = n.attr("axis") if n.op == "sumprod" else (x.ndim - 1,)
    for i, s in enumerate(n.args):
        if s.op not in ("mul", "div") or s.dtype != "float":
            continue
        for big, v in (s.args, s.args[::-1]) if s.op == "mul" else (s.args,):
            if big.shape == s.shape and v.dtype == "float" and _constant_along(v, s, axes):
                args = (big, n.args[1]) if i == 0 else (n.args[0], big)
                dot = make(n.op, *args, **dict(n.attrs))
                m = make(s.op, dot, _without_summed(v, s, axes, False))
                return m if m.type == n.type else None
    return None


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
    """transpose(transpose(x, p), q) -> transpose(x, p[q]); an identity permutation -> x;
    transpose(outer(a, b)) -> outer(b, a)."""
    if n.op != "transpose":
        return None
    axes, x = n.attr("axes"), n.args[0]
    if x.op == "transpose":
        inner = x.attr("axes")
        axes, x = tuple(inner[a] for a in axes), x.args[0]
    if axes == tuple(range(len(axes))):
        return x
    if x.op == "outer":  # (a b^T)^T -> b a^T, as a second derivative gives it
        return make("outer", x.args[1], x.args[0])
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


@rule("sum", "mean")
def sum_of_product(n: Node) -> Node | None:
    """sum(a * b) -> vdot(a, b) over every axis of equal shapes: a contraction, no temporary;
    mean(a * b) -> vdot(a, b) / their count."""
    if n.ndim == 0 and n.args[0].op == "mul" and n.args[0].ndim:
        a, b = n.args[0].args
        if _square(b) and not _square(a):
            a, b = b, a
        if _square(a) and not _square(b) and a.shape == b.shape:
            a, b = a.args[0], make("mul", a.args[0], b)
        if a.shape == b.shape == n.args[0].shape and a.dtype == b.dtype == "float":
            dot = make("vdot", a, b)
            return dot if n.op == "sum" else over_count(dot, a.shape)
    return None


@rule("vdot")
def dot_of_a_difference(n: Node) -> Node | None:
    """vdot(c - y, z) -> c * sum(z) - vdot(y, z), and likewise c + y and either operand, for a
    number c: no array holds c - y (a binary cross-entropy's `sum((1 - y) * z)`)."""
    for d, z in (n.args, n.args[::-1]):
        if d.op in ("add", "sub") and _is_const(d.args[0]) and d.args[1].shape == z.shape:
            c, y = d.args
            if y.dtype == z.dtype == "float":
                total = make("mul", c, make("sum", z, axis=tuple(range(z.ndim))))
                return make(d.op, total, make("vdot", y, z))
    return None


@rule("vdot")
def dot_with_a_difference_of_itself(n: Node) -> Node | None:
    """vdot(z, a - c * z) -> vdot(z, a) - c * vdot(z, z) for a number c, and a + c * z, either
    operand of the dot: two dots, where the difference was a pass and an array as large (the
    Huber loss summed, `c * (d - 0.5 * c)` for c the clipped d)."""
    for z, d in (n.args, n.args[::-1]):
        if d.op not in ("add", "sub") or d.type != z.type or d.args[0].type != z.type:
            continue
        c, w = _number_times(d.args[1])
        if w is z and d.args[1] is not z:
            out = make(d.op, make("vdot", z, d.args[0]), make("mul", c, make("vdot", z, z)))
            return out if _same_type(out, n) else None
    return None


@rule("vdot", "vecdot")
def number_out_of_a_dot(n: Node) -> Node | None:
    """vdot(c * a, b) -> c * vdot(a, b) for a number c (-a too), in either operand, and vecdot:
    the number scales the one result (or the row of results) where it took a pass over the
    operand and an array as large (a mean square error written `2 * mean(0.5 * (y - x)**2)`
    made `0.5 * t` to take its dot with t: 2.4x the reference at 10**6, twice its memory;
    then `2 * (0.5 * ...)` cancels). As `sum_of_scaled` takes a number out of a sum."""
    for i, f in enumerate(n.args):
        c, a = _number_times(f)
        if a is not f and a.type == f.type:
            args = n.args[:i] + (a,) + n.args[i + 1 :]
            out = make("mul", c, make(n.op, *args, **n.kw))
            return out if _same_type(out, n) else None
    return None


def _square(n: Node) -> bool:
    """Whether n is c * c for an array c of n's shape."""
    return n.op == "mul" and n.args[0] is n.args[1] and n.args[0].shape == n.shape


def _constant_along(f: Node, x: Node, axes: tuple[int, ...]) -> bool:
    """Whether `f`, broadcast against `x` (aligned on the right), is the same all along `axes`."""
    lead = x.ndim - f.ndim
    return all(i < lead or f.shape[i - lead] == Dim.of(1) for i in axes)


def over_count(total: Node, dims) -> Node:
    """A sum made a mean: `total / count` for the count of `dims` (what `mean_of` reads back)."""
    return make("div", total, make("dim", dim=product(dims)))


def mean_of(n: Node) -> tuple[Node, tuple, bool] | None:
    """(x, axes, keepdims) for `n = mean(x, axes)`, or `sum(x, axes) / their count`."""
    if n.op == "div" and n.args[1].op == "dim" and n.args[0].op == "sum":
        total = n.args[0]
        x, axes = total.args[0], total.attr("axis")
        if n.args[1].attr("dim") == product(x.shape[i] for i in axes):
            return x, axes, total.attr("keepdims")
    if n.op == "mean":
        return n.args[0], n.attr("axis"), n.attr("keepdims")
    return None


def _mean_over(m: Node, x: Node, axes: tuple[int, ...]) -> bool:
    """Whether `m`, broadcast against `x`, is x's mean over `axes`: mean(x, axes), or sum(x,
    axes) / their count, with the axes kept, reshaped back, or gone from the front of x."""
    kept = tuple(Dim.of(1) if i in axes else d for i, d in enumerate(x.shape))
    reshaped = m.op == "reshape" and m.shape == kept
    found = mean_of(m.args[0] if reshaped else m)
    if found is None or found[0] is not x or set(found[1]) != set(axes):
        return False
    if reshaped:
        return not found[2]
    return found[2] or axes == tuple(range(len(axes)))


def _sums_to_zero(t: Node, axes: tuple[int, ...]) -> bool:
    """Whether `t` sums to zero along `axes`: a deviation from the mean over them (`x - mu`),
    negated, or times or over a factor that is the same all along them."""
    if t.op == "neg":
        return _sums_to_zero(t.args[0], axes)
    if t.op == "sub":
        a, b = t.args
        return (a.shape == t.shape and _mean_over(b, a, axes)) or (
            b.shape == t.shape and _mean_over(a, b, axes)
        )
    if t.op in ("mul", "div"):
        a, b = t.args
        if b.shape == t.shape and t.op == "mul":
            a, b = b, a
        return a.shape == t.shape and _constant_along(b, t, axes) and _sums_to_zero(a, axes)
    return False


def _signed_terms(n: Node, sign: int = 1) -> list[tuple[int, Node]]:
    """The terms of a tree of full-shape additions, subtractions and negations, with signs."""
    if n.op in ("add", "sub") and n.args[0].shape == n.args[1].shape == n.shape:
        other = sign if n.op == "add" else -sign
        return _signed_terms(n.args[0], sign) + _signed_terms(n.args[1], other)
    if n.op == "neg":
        return _signed_terms(n.args[0], -sign)
    return [(sign, n)]


def _from_signed_terms(terms: list[tuple[int, Node]]) -> Node:
    """The sum of signed terms, in their order: `a - b + c`."""
    first_sign, total = terms[0]
    if first_sign < 0:
        total = make("neg", total)
    for sign, t in terms[1:]:
        total = make("add" if sign > 0 else "sub", total, t)
    return total


@rule("sum")
def sum_of_deviations(n: Node) -> Node | None:
    """sum(p - c * (x - mean(x, axes)), axes) -> sum(p, axes), c the same all along the axes:
    deviations from a mean sum to zero. Batchnorm's and layernorm's gradients take the sum of
    `dxc` over the mean's axes, and `dxc` has a term in `xc`: the sum needs a pass over `dxc`
    that this saves (and `sum_of_scaled` then finds sum(p) computed already, `dbeta`)."""
    x, axes = n.args[0], n.attr("axis")
    if x.op not in ("add", "sub", "neg") or x.dtype != "float":
        return None
    terms = _signed_terms(x)
    kept = [(sign, t) for sign, t in terms if not _sums_to_zero(t, axes)]
    if len(kept) == len(terms) or not kept:
        return None
    total = _from_signed_terms(kept)
    if total.shape != x.shape:
        total = make("broadcast_to", total, shape=x.shape)
    return make("sum", total, axis=axes, keepdims=n.attr("keepdims"))


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


@rule("neg")
def negation_into_a_constant(n: Node) -> Node | None:
    """-(c * a * b) -> (-c) * a * b (and with quotients on the way), for a number c that
    multiplies the product's leftmost factor, and -(a * s) -> a * (-s), -(s * a) -> (-s) * a
    for a number s the code computes (`1 / N`), down the product's left factors (a hinge
    loss's -((0.5 / N) * m * y) is (-0.5 / N) * m * y): the sign costs no pass of its own over
    the product's array (`dmu = -(2 * r * d)` of a Gaussian likelihood is `-2 * r * d`). A
    divisor keeps its sign (`-(y / N)`, for `(a - y) / N` to collect)."""
    negated = _with_negated_constant(n.args[0])
    return negated if negated is not None and _same_type(negated, n) else None


def _with_negated_constant(x: Node, nested: bool = False) -> Node | None:
    """x with the sign in one of its numbers; a computed number on the left (`(0.5 / N) * m`)
    only `nested`, under a factor more: `-((0.5 / N) * m)` alone is more often shared as it
    is (`t *= 0.5 / N`, then both `t` and `-(t @ ones)` read it), which the sign would split."""
    if x.op != "mul" and x.op != "div":
        return None
    first = x.args[0]
    if x.op == "mul" and first.op == "const" and not isinstance(first.attr("value"), bool):
        if first.attr("value") == 1:  # (-1 * y: negation_outward's -y again)
            return None
        return make("mul", const(-first.attr("value")), x.args[1])
    last = x.args[1]
    if x.op == "mul" and _negated_computed(last) is not None:  # (`m * (1 / N)`)
        return make("mul", first, _negated_computed(last))
    if x.op == "mul" and nested and _negated_computed(first) is not None:  # (`(0.5 / N) * m`)
        return make("mul", _negated_computed(first), last)
    inner = _with_negated_constant(first, nested=x.op == "mul")
    return None if inner is None else make(x.op, inner, x.args[1])


def _negated_computed(s: Node) -> Node | None:
    """-s for a float number s that the code computes from constants and sizes (`0.5 /
    max(N, 1)`, not a constant itself); None for any other s."""
    if s.op == "const" or not (s.type.static and not s.ndim and s.dtype == "float"):
        return None
    return _negated_number(s)


def _negated_number(s: Node) -> Node | None:
    """-s for a number s the code computes, as a number: -c for a constant c, (-c) / m for c /
    m (the gradient's `-1.0 / N`); None for any other."""
    top = s.args[0] if s.op == "div" else s
    if top.op != "const" or isinstance(top.attr("value"), bool):
        return None
    negated = const(-top.attr("value"))
    return negated if s.op == "const" else make("div", negated, s.args[1])


@rule("add", "sub")
def add_twice(n: Node) -> Node | None:
    """(a + b) + b -> a + 2 * b, (a - b) - b -> a - 2 * b."""
    if n.op in ("add", "sub") and n.args[0].op == n.op and n.args[0].args[1] is n.args[1]:
        return make(n.op, n.args[0].args[0], make("mul", 2, n.args[1]))
    return None


@rule("add", "sub")
def common_factor(n: Node) -> Node | None:
    """f * q + f * r -> f * (q + r) (and -), for a factor f of the sum's full shape that both
    products have: two passes over the large arrays where there were three, and one product
    array fewer (the backward of an activation, `dout * s + dout * x * s * (1 - s)`). Only a
    full-shape f pays; the products of the rest keep their factors' order."""
    if n.dtype != "float" or n.ndim == 0:
        return None
    a, b = n.args
    if a.op != "mul" or b.op != "mul" or a.shape != n.shape or b.shape != n.shape:
        return None
    fa, fb = _factors(a), _factors(b)
    shared = [i for i, f in enumerate(fa) if f.shape == n.shape and any(f is g for g in fb)]
    if not shared:
        return None
    common = fa[shared[0]]
    j = next(j for j, g in enumerate(fb) if g is common)
    rest_a, rest_b = fa[: shared[0]] + fa[shared[0] + 1 :], fb[:j] + fb[j + 1 :]
    q, r = (_product(fs) for fs in (rest_a, rest_b))
    if q.dtype != "float" or r.dtype != "float":  # (masks and counts: an int64 array in the
        return None  # sum would make float32 float64)
    m = make("mul", common, make(n.op, q, r))
    return m if m.type == n.type else None


def horner_form(n: Node) -> Node | None:
    """c * (x + k * x * x * x) -> x * (c + (c * k) * (x * x)), for any product k * y that has
    the term x among its factors (x of the product's full shape, c and k numbers); and
    c * (k0 + k1 * y) -> (c k0) + (c k1) * y: the numbers of a product go into the
    coefficients of its one sum, not into the array, and a polynomial is in Horner's form
    (GELU's tanh form `2 * sqrt(2 / pi) * (x + 0.044715 * x**3)`: four passes over x's shape
    where it took five). Not a rule of the simplifier: before the forward and the backward are
    simplified together, the backward would share the form's parts and keep them
    (`products.horner`, a pass after it, applies it)."""
    if n.op != "mul" or n.dtype != "float":
        return None
    factors = _factors(n)
    numbers = [f.attr("value") for f in factors if _is_const(f)]
    sums = [f for f in factors if f.op == "add" and f.shape == n.shape]
    if not numbers or len(sums) != 1:
        return None
    found = _horner(sums[0], math.prod(numbers))
    if found is None:
        return None
    rest = [f for f in factors if not _is_const(f) and f is not sums[0]]
    m = _product([*rest, *found])
    return m if m.type == n.type else None


def _horner(total: Node, c: float) -> list[Node] | None:
    """c * total as factors, the number in the coefficients: [x, c + (c k) * y] for
    total = x + k * x * y, [(c k0) + (c k1) * y] for total = k0 + k1 * y; None otherwise."""
    for x, ky in (total.args, reversed(total.args)):
        scaled = _one_number(ky)
        if scaled is None:
            continue
        k, ys = scaled
        if _is_const(x):
            return [make("add", c * x.attr("value"), make("mul", c * k, _product(ys)))]
        i = next((i for i, f in enumerate(ys) if f is x), None)
        if i is not None and len(ys) > 1 and x.shape == total.shape:
            return [x, make("add", c, make("mul", c * k, _product(ys[:i] + ys[i + 1 :])))]
    return None


def _one_number(p: Node) -> tuple[float, list[Node]] | None:
    """(k, the other factors) for a product p with one number k among its factors."""
    factors = _factors(p) if p.op == "mul" else []
    numbers = [f for f in factors if _is_const(f)]
    if len(numbers) != 1 or len(factors) < 2:
        return None
    return numbers[0].attr("value"), [f for f in factors if f is not numbers[0]]


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


@rule(where=lambda op: op.expand is not None)
def expand_composite(n: Node) -> Node | None:
    """logsumexp(x) -> log(sum(exp(x - m))) + m with m = max(x), and likewise every composite
    operation (softmax, log_softmax, cross_entropy) -> the operations it is made of
    (`OpDef.expand`)."""
    expand = OPS[n.op].expand
    return expand(*n.args, **n.kw) if expand else None


def _minus_abs(x: Node) -> bool:
    """x is -|y|: exp(x) is at most 1, it never overflows."""
    return x.op == "neg" and x.args[0].op == "abs"


@canonical
def softplus_of_exp(n: Node) -> Node | None:
    """log1p(exp(x)) -> softplus(x), log(1 + exp(x)) -> softplus(x): exp(x) overflows for
    x > 709 (88 in float32); softplus never does, nor does its gradient sigmoid(x). An exp that
    cannot overflow, exp(-|y|), is left alone (`softplus_written_out` may take the whole sum),
    and log(1 + exp(-|y|)) -> log1p(exp(-|y|)), which is as fast and exact for large |y|."""
    if n.op == "log1p" and n.args[0].op == "exp" and not _minus_abs(n.args[0].args[0]):
        return make("softplus", n.args[0].args[0])
    if n.op == "log" and n.args[0].op == "add":
        a, b = n.args[0].args
        for one, e in ((a, b), (b, a)):
            if _is_const(one, 1) and e.op == "exp" and e.shape == n.shape:
                stable = _minus_abs(e.args[0])
                return make("log1p", e) if stable else make("softplus", e.args[0])
    return None


def _positive_part_of(n: Node) -> Node | None:
    """x for relu(x), maximum(x, 0) and maximum(0, x); else None."""
    if n.op == "relu":
        return n.args[0]
    if n.op == "maximum":
        for x, zero in (n.args, n.args[::-1]):
            if _is_const(zero, 0) and x.shape == n.shape:
                return x
    return None


@canonical
def softplus_written_out(n: Node) -> Node | None:
    """relu(x) + log1p(exp(-|x|)) -> softplus(x), with maximum(x, 0) or maximum(0, x) for relu(x),
    the terms in either order and anywhere in a sum (`maximum(z, 0) - z * y + log1p(exp(-abs(z)))`,
    a cross-entropy of logits): the stable form written by hand is compiled as softplus, whose
    backward is sigmoid(x), from the forward's exp(-|x|), rather than the gradients of maximum
    (with its tie at 0) and of abs."""
    if n.op not in ("add", "sub"):
        return None
    terms = _signed_terms(n)
    for i, x in _positive_parts(terms, n):
        for j, (other, rest) in enumerate(terms):
            if other < 0 or rest.op != "log1p" or rest.args[0].op != "exp":
                continue
            inner = rest.args[0].args[0]
            if _minus_abs(inner) and inner.args[0].args[0] is x:
                return _merged(terms, i, j, make("softplus", x))
    return None


def _positive_parts(terms: list[tuple[int, Node]], n: Node):
    """(i, x) for each term i of a sum n's signed terms that is +relu(x), maximum(x, 0) or
    maximum(0, x), x of the sum's shape: where a function written as its parts starts."""
    for i, (sign, part) in enumerate(terms):
        x = _positive_part_of(part)
        if x is not None and sign > 0 and x.shape == n.shape:
            yield i, x


def _merged(terms: list[tuple[int, Node]], i: int, j: int, whole: Node) -> Node:
    """The sum of the signed terms with terms i and j, the parts of `whole`, written as it,
    where the first of the two stood."""
    first, second = sorted((i, j))
    kept = terms[:first] + [(1, whole)] + terms[first + 1 :]
    return _from_signed_terms(kept[:second] + kept[second + 1 :])


@canonical
def log_of_exp(n: Node) -> Node | None:
    """log(exp(x)) -> x: a Gaussian likelihood written with `var = exp(logvar)` and
    `log(var)`. As written, exp overflows above 709 (88 in float32) and the log is then inf;
    and its gradient, exp(x) / exp(x), costs a pass and an array for a 1."""
    if n.op == "log" and n.args[0].op == "exp" and n.args[0].args[0].type == n.type:
        return n.args[0].args[0]
    return None


@canonical
def log_of_sigmoid(n: Node) -> Node | None:
    """log(sigmoid(x)) -> -softplus(-x), and log(1 - sigmoid(x)) and log1p(-sigmoid(x)) ->
    -softplus(x): a binary cross-entropy written with probabilities. The logs of the
    probabilities are -inf (and their gradients nan) where the sigmoid rounds to 0 or 1, beyond
    |x| = 37 in float64 and 17 in float32; softplus is finite for every x, and both terms share
    one exp(-|x|)."""
    if n.op == "log1p" and n.args[0].op == "neg" and n.args[0].args[0].op == "sigmoid":
        x = n.args[0].args[0].args[0]
        return make("neg", make("softplus", x)) if x.shape == n.shape else None
    if n.op != "log" or n.dtype != "float":
        return None
    p = n.args[0]
    if p.op == "sigmoid" and p.shape == n.shape:
        return make("neg", make("softplus", _negated(p.args[0])))
    if p.op == "sub" and _is_const(p.args[0], 1) and p.args[1].op == "sigmoid":
        x = p.args[1].args[0]
        if x.shape == n.shape:
            return make("neg", make("softplus", x))
    return None


@canonical
def term_and_its_multiple(n: Node) -> Node | None:
    """a + a * t -> a * (1 + t), either order, a the same value in both terms and of the sum's
    shape: GELU's tanh form written out, `0.5 * x + 0.5 * x * tanh(u)`, is then `0.5 * x * (1 +
    tanh(u))`, which `one_plus_tanh` makes a sigmoid, and GELU's code follows. Two passes where
    there were two (a product and a sum), and one gradient path through a where there were
    two."""
    if n.op != "add" or n.dtype != "float":
        return None
    for a, q in (n.args, n.args[::-1]):
        if q.op == "mul" and a.shape == n.shape and a.op != "const":
            for f, t in (q.args, q.args[::-1]):
                if f is a and t.dtype == "float":
                    one_plus = make("add", 1, t)  # (offered to one_plus_tanh here: the
                    # simplifier offers the rules the product, not its new factor)
                    m = make("mul", a, one_plus_tanh(one_plus) or one_plus)
                    return m if m.type == n.type else None
    return None


@canonical
def one_plus_tanh(n: Node) -> Node | None:
    """1 + tanh(u) -> 2 * sigmoid(2 * u), and 1 - tanh(u) -> 2 * sigmoid(-2 * u): GELU's tanh
    form written out. The same function, computed with one exp where NumPy's tanh costs
    several in float64, and without the cancellation of 1 + tanh(u) where tanh(u) is near -1;
    its backward, 4 s (1 - s), is sigmoid's. Likewise c + c * tanh(u) -> 2c * sigmoid(2 * u)
    for a number c (`0.5 + 0.5 * tanh(x / 2)`, a sigmoid written with tanh)."""
    if n.op not in ("add", "sub") or n.dtype != "float":
        return None
    a, b = n.args
    pairs = ((a, b, 2.0), (b, a, 2.0)) if n.op == "add" else ((a, b, -2.0),)
    for one, t, k in pairs:
        scale = 1.0
        if t.op == "mul" and _is_const(t.args[0]) and t.args[1].op == "tanh":
            scale, t = t.args[0].attr("value"), t.args[1]  # (c + c * tanh(u): c times it)
            if isinstance(scale, bool) or not scale:
                continue
        if _is_const(one, scale) and t.op == "tanh" and t.shape == n.shape:
            out = make("mul", 2.0 * scale, make("sigmoid", _times(k, t.args[0])))
            return out if out.type == n.type else None
    return None


@canonical
def complement_of_sigmoid(n: Node) -> Node | None:
    """1 - sigmoid(u) -> sigmoid(-u), and a - a * sigmoid(u) -> a * sigmoid(-u): the logistic
    function's symmetry, with -(-z) as z and -(c * z) as (-c) * z. A pass fewer, and no
    cancellation where sigmoid(u) is near 1 (1 - s there keeps none of its digits); the
    backward is sigmoid's own. SiLU written `x - x * sigmoid(-x)` is `x * sigmoid(x)`, and
    `x * (1 - 1 / (1 + exp(1.702 * x)))` is GELU's sigmoid form. A sigmoid that another value
    reads too (a GRU's gate z, in `(1 - z) * n + z * h`) stays: it would be computed twice."""
    if n.op != "sub" or n.dtype != "float":
        return None
    a, b = n.args
    if _is_const(a, 1) and b.op == "sigmoid" and _read_once(b):
        out = make("sigmoid", _negated(b.args[0]))
    elif b.op == "mul" and a in b.args:
        s = b.args[1] if b.args[0] is a else b.args[0]
        if s.op != "sigmoid" or not _read_once(s):
            return None
        out = make("mul", a, make("sigmoid", _negated(s.args[0])))
    else:
        return None
    return out if out.type == n.type else None


def _times(k: float, u: Node) -> Node:
    """k * u, with u = x / c as (k / c) * x for c a power of two (`tanh(x / 2)` of a SiLU
    written with tanh: `sigmoid(x)`, not `sigmoid(2 * (x / 2))`): x / c is then exact (but for
    subnormal numbers), and both round k * x / c once; u = c * x as x where c * k is 1 (tanh's
    `2 * sigmoid(2 * x) - 1` is tanh(x), not tanh(0.5 * (2 * x))), and u = -x as (-k) * x."""
    if u.op == "div" and _is_const(u.args[1]) and u.args[0].dtype == "float":
        c = u.args[1].attr("value")
        if not isinstance(c, bool) and c and math.frexp(abs(c))[0] == 0.5:
            return u.args[0] if k / c == 1 else make("mul", k / c, u.args[0])
    c = constant_value(u.args[0]) if u.op == "mul" else None
    if isinstance(c, int | float) and not isinstance(c, bool) and c * k == 1:
        return u.args[1]
    if u.op == "neg":
        return u.args[0] if k == -1 else make("mul", -k, u.args[0])
    return make("mul", k, u)


@canonical
def binary_cross_entropy_written_out(n: Node) -> Node | None:
    """y * softplus(-z) + (1 - y) * softplus(z) -> softplus(z) - y * z, and with both softpluses
    negated (the logs of sigmoid(z) and 1 - sigmoid(z), as `log_of_sigmoid` writes them), its
    negation: since softplus(-z) = softplus(z) - z, for any y. A binary cross-entropy written
    with probabilities then costs one softplus and a product, its gradient sigmoid(z) - y,
    where as written it takes two softpluses and their two backwards. The terms may be
    subtracted and their signs anywhere (`-y * log(sigmoid(z)) - (1 - y) * log(sigmoid(-z))`)."""
    if n.op not in ("add", "sub") or n.dtype != "float":
        return None
    terms = [_softplus_term(n.args[0]), _softplus_term(n.args[1], 1 if n.op == "add" else -1)]
    if None in terms or terms[0][1] != terms[1][1]:
        return None
    for (y, _, u), (rest, sign, z) in (terms, terms[::-1]):
        if (
            rest.op == "sub"
            and _is_const(rest.args[0], 1)
            and rest.args[1] is y
            and u.op == "neg"
            and u.args[0] is z
        ):
            out = make("sub", make("softplus", z), make("mul", y, z))
            out = out if sign > 0 else make("neg", out)
            return out if out.type == n.type else None
    return None


@canonical
def softplus_of_negation_plus(n: Node) -> Node | None:
    """softplus(-z) + z -> softplus(z), and softplus(-z) + (1 - y) * z -> softplus(z) - y * z
    (PyTorch's form of a binary cross-entropy of logits, `(1 - y) z + log(1 + exp(-z))`), the
    terms and factors in either order: softplus(-z) = softplus(z) - z. Its gradient is then
    sigmoid(z) - y, from the forward's exp, where as written it is 1 - y - sigmoid(-z), a
    pass and an array more. z - (-softplus(-z)) too: `x - log(sigmoid(x))`, once
    `log_of_sigmoid` has written the log."""
    if n.op == "sub" and n.args[1].op == "neg" and n.args[1].args[0].op == "softplus":
        n = make("add", n.args[0], n.args[1].args[0])
    if n.op != "add" or n.dtype != "float":
        return None
    for s, t in (n.args, n.args[::-1]):
        if s.op != "softplus" or s.args[0].op != "neg":
            continue
        z = s.args[0].args[0]
        if t is z:
            out = make("softplus", z)
            return out if out.type == n.type else None
        if t.op == "mul":
            for c, f in (t.args, t.args[::-1]):
                if f is z and c.op == "sub" and _is_const(c.args[0], 1):
                    out = make("sub", make("softplus", z), make("mul", c.args[1], z))
                    return out if out.type == n.type else None
    return None


def _softplus_term(t: Node, sign: int = 1) -> tuple[Node, int, Node] | None:
    """(c, 1, u) for t = c * softplus(u), (c, -1, u) for c * -softplus(u), with a negation of
    the term or of c counted in the sign (`-y * -softplus(-z)` is (y, 1, -z)); else None."""
    if t.op == "neg":
        return _softplus_term(t.args[0], -sign)
    if t.op != "mul":
        return None
    for c, s in (t.args, t.args[::-1]):
        k = sign * (-1 if s.op == "neg" else 1) * (-1 if c.op == "neg" else 1)
        s = s.args[0] if s.op == "neg" else s
        c = c.args[0] if c.op == "neg" else c
        if s.op == "softplus" and s.shape == t.shape:
            return c, k, s.args[0]
    return None


def _negated(w: Node) -> Node:
    """-w, as z for w = -z and as (-c) * z for w = c * z with a number c."""
    if w.op == "neg":
        return w.args[0]
    if w.op == "mul":
        c = constant_value(w.args[0])
        if c is not None and not isinstance(c, bool):
            return make("mul", -c, w.args[1])
    return make("neg", w)


def _opposite(a: Node, b: Node) -> bool:
    """Whether b is -a as written: -a, or a = -b, or c * z and (-c) * z for a number c."""
    (c, z), (d, w) = _number_times(a), _number_times(b)
    return z is w and c == -d != 0


def _one_and_exp(n: Node, op: str) -> tuple[Node, bool] | None:
    """For n = 1 op exp(w) or exp(w) op 1 (op `add` or `sub`), the exp of n's shape: (exp(w),
    whether the 1 comes first); the first way round that is one, as written."""
    if n.op != op:
        return None
    for i, (one, e) in enumerate((n.args, n.args[::-1])):
        if _is_const(one, 1) and e.op == "exp" and e.shape == n.shape:
            return e, i == 0
    return None


@canonical
def tanh_written_out(n: Node) -> Node | None:
    """tanh written with exponentials or a sigmoid -> tanh: (exp(u) - exp(-u)) / (exp(u) +
    exp(-u)) -> tanh(u); (exp(w) - 1) / (exp(w) + 1) -> tanh(w / 2) and (1 - exp(w)) / (1 +
    exp(w)) -> tanh(-w / 2); 2 * sigmoid(v) - 1 -> tanh(v / 2) (which `2 / (1 + exp(-2 * u)) -
    1` is, by `sigmoid_written_out`), a halved `2 * u` being u. The same function: the
    exponentials overflow beyond |u| = 355 (44 in float32), where the quotient is nan and tanh
    is 1 or -1, and `2 * sigmoid(v) - 1` loses the digits of a small v to the subtraction.
    NumPy's tanh takes about an exp's time, where the quotient takes two exps and a division,
    and its backward is 1 - y * y. Before `sigmoid_written_out`, which would take the
    quotient's denominator for a sigmoid's. A quotient whose numerator is a product with such a
    difference among its factors is the rest of the product times the tanh (Mish written `x *
    (exp(sp) - exp(-sp)) / (exp(sp) + exp(-sp))`)."""
    if n.dtype != "float":
        return None
    m = None
    if n.op == "sub" and _is_const(n.args[1], 1) and n.args[0].op == "mul":
        for c, sig in (n.args[0].args, n.args[0].args[::-1]):
            if _is_const(c, 2) and sig.op == "sigmoid":
                m = make("tanh", _times(0.5, sig.args[0]))
    elif n.op == "div":
        factors = _factors(n.args[0])
        for i, top in enumerate(factors):
            t = _tanh_quotient(top, n.args[1])
            if t is not None:
                rest = factors[:i] + factors[i + 1 :]
                m = make("mul", _product(rest), t) if rest else t
                break
    return m if m is not None and m.type == n.type else None


def _tanh_quotient(num: Node, den: Node) -> Node | None:
    """tanh(u) for num / den one of `tanh_written_out`'s quotients, else None."""
    top, bottom = _one_and_exp(num, "sub"), _one_and_exp(den, "add")
    if top is not None and bottom is not None and top[0] is bottom[0]:
        return make("tanh", _times(-0.5 if top[1] else 0.5, top[0].args[0]))
    if num.op == "sub" and den.op == "add" and all(a.op == "exp" for a in num.args):
        e, f = num.args
        if set(den.args) == {e, f} and _opposite(e.args[0], f.args[0]):
            return make("tanh", e.args[0])
    return None


@canonical
def sigmoid_written_out(n: Node) -> Node | None:
    """a / (1 + exp(w)) -> a * sigmoid(-w), and 1 / (1 + exp(w)) -> sigmoid(-w), with -(-z) as z
    and -(c * z) as (-c) * z: exp(w) overflows for w > 709 (88 in float32), with NumPy's
    warning, and the gradient of the quotient is then nan; sigmoid never overflows, and its
    backward is y * (1 - y). An exp(w) that the numerator multiplies by is the sigmoid's own:
    a * exp(w) / (1 + exp(w)) -> a * sigmoid(w), and exp(w) / (1 + exp(w)) -> sigmoid(w)."""
    found = _one_and_exp(n.args[1], "add") if n.op == "div" and n.dtype == "float" else None
    if found is None:
        return None
    a, e = n.args[0], found[0]
    factors = _factors(a)
    if any(f is e for f in factors):
        i = next(i for i, f in enumerate(factors) if f is e)
        rest, s = factors[:i] + factors[i + 1 :], make("sigmoid", e.args[0])
        m = make("mul", _product(rest), s) if rest else s
        return m if m.type == n.type else None
    s = make("sigmoid", _negated(e.args[0]))
    if _is_const(a, 1) and s.type == n.type:
        return s
    m = make("mul", a, s)
    return m if m.type == n.type else None


def _permuted(x: Node, term: str, order: str) -> Node:
    """x, whose axes are the letters of `term`, with its axes in the order of `order`."""
    axes = tuple(term.index(c) for c in order)
    return x if axes == tuple(range(len(axes))) else make("transpose", x, axes=axes)


def _reshaped(x: Node, shape: tuple[Dim, ...], hint: str | None = None) -> Node:
    return x if x.shape == shape else make("reshape", x, shape=shape, hint=hint)


def _as_matrix(x: Node, term: str, order: str, shape: tuple[Dim, ...]) -> Node:
    """x with its axes in `order`, reshaped to `shape` (`query_mat`, for a product)."""
    hint = f"{x.hint}_mat" if x.hint else None
    return _reshaped(_permuted(x, term, order), shape, hint)


def _summed_alone(term: str, x: Node, keep: str) -> tuple[str, Node]:
    """An operand with the letters that nothing else needs (`keep`: the output's and the other
    operand's) summed out first."""
    axes = tuple(i for i, c in enumerate(term) if c not in keep)
    if not axes:
        return term, x
    return "".join(c for c in term if c in keep), make("sum", x, axis=axes, keepdims=False)


def _matmul_of(a: Node, ta: str, b: Node, tb: str, out: str) -> Node:
    """The einsum of two operands that share a contracted letter and have a letter of their own:
    a batched matrix product, each group of letters (batch, a's, contracted, b's) merged into
    one axis where it has several, and the result's axes put in the output's order. An operand
    without letters of its own is a vector where there is no batch axis (`W @ x`)."""
    batch = [c for c in out if c in ta and c in tb]
    left = [c for c in out if c in ta and c not in tb]
    right = [c for c in out if c in tb and c not in ta]
    summed = [c for c in ta if c in tb and c not in out]
    dims = {c: d for t, x in ((ta, a), (tb, b)) for c, d in zip(t, x.shape)}

    def merged(letters) -> tuple[Dim, ...]:
        return (product(dims[c] for c in letters),) if len(letters) != 1 else (dims[letters[0]],)

    lead = tuple(dims[c] for c in batch)
    k = merged(summed)
    rows = merged(left) if left or batch else ()
    cols = merged(right) if right or batch else ()
    a2 = _as_matrix(a, ta, "".join(batch + left + summed), lead + rows + k)
    b2 = _as_matrix(b, tb, "".join(batch + summed + right), lead + k + cols)
    p = make("matmul", a2, b2)
    p = _reshaped(p, lead + tuple(dims[c] for c in left + right))
    return _permuted(p, "".join(batch + left + right), out)


def _product_of(a: Node, ta: str, b: Node, tb: str, out: str) -> Node:
    """The einsum of two operands that share no letter to sum: an outer product of vectors, or
    each operand's axes put in the output's order, with size-1 axes for the other's letters,
    and a broadcast product; with shared letters and none of their own, vdot(a, b), or the dot
    products of rows, vecdot(a, b), where some letters are kept (np.vecdot: 0.5-0.6 ms for 1000
    x 1000 in float64, where (a * b).sum(axis=1) takes 1.4-2.4 ms and np.einsum 0.7-1.0 ms), or
    of columns, sumprod(a, b) (np.einsum: vecdot of the transposes copies them, 10-50x slower)."""
    summed = [c for c in ta if c in tb and c not in out]
    if not summed:
        if len(ta) == len(tb) == 1 and len(out) == 2 and set(out) == set(ta + tb):
            return make("outer", a, b) if out == ta + tb else make("outer", b, a)
        spread = []
        for t, x in ((ta, a), (tb, b)):
            order = "".join(c for c in out if c in t)
            dims = dict(zip(t, x.shape))
            x = _permuted(x, t, order)
            if t:  # (size-1 axes in front are NumPy's broadcasting anyway)
                x = _reshaped(x, tuple(dims.get(c, Dim.of(1)) for c in out[out.index(order[0]) :]))
            spread.append(x)
        return make("mul", *spread)
    batch = "".join(c for c in out if c in ta)
    if not batch:
        return make("vdot", a, _permuted(b, tb, ta))
    axes = tuple(i for i, c in enumerate(ta) if c in summed)
    if ta == tb and a.shape == b.shape and axes != tuple(range(len(ta) - len(axes), len(ta))):
        # summed along leading axes: np.einsum, where vecdot would take transposed copies
        kept = "".join(c for c in ta if c not in summed)
        return _permuted(make("sumprod", a, b, axis=axes), kept, out)
    order = batch + "".join(summed)
    rows = [_permuted(x, t, order) for t, x in ((ta, a), (tb, b))]
    if len(summed) > 1:
        shape = rows[0].shape[: len(batch)] + (product(rows[0].shape[len(batch) :]),)
        rows = [_reshaped(r, shape) for r in rows]
    return _permuted(make("vecdot", *rows), batch, out)


@canonical
def einsum_as_products(n: Node) -> Node | None:
    """einsum of one or two float arrays -> the matrix products, transposes, reshapes, sums and
    broadcast products it stands for: "ij,jk->ik" is a @ b, "bqd,bkd->bqk" is q @ k.mT
    (swapped axes, a view), "ij,ij->i" is vecdot(a, b), "ij,ij->" vdot(a, b), "i,j->ij"
    outer(a, b), "ij->ji" a transpose; a letter of one operand alone is summed out of it first.
    np.einsum(..., optimize=True) costs 20-110 us a call at 32 x 16, where `@` costs 2.4-14 us
    (`python bench/kernels.py --only einsum`; docs/performance.md, "Kernels"); and the adjoints
    are then those of matmul, transpose and sum. Three operands or more stay an einsum
    (np.einsum finds the order)."""
    if n.op != "einsum" or len(n.args) > 2 or any(a.dtype != "float" for a in n.args):
        return None
    ins, out = split_spec(n.attr("spec"))
    if len(ins) == 1:
        term, x = _summed_alone(ins[0], n.args[0], out)
        m = _permuted(x, term, out)
        return None if m is n.args[0] else m  # ("ij->ij" stays: a rewrite makes a new node)
    (ta, a), (tb, b) = (_summed_alone(t, x, out + o) for t, x, o in zip(ins, n.args, ins[::-1]))
    shared = [c for c in ta if c in tb and c not in out]
    own = [c for c in out if (c in ta) != (c in tb)]
    m = _matmul_of(a, ta, b, tb, out) if shared and own else _product_of(a, ta, b, tb, out)
    return m if m.type == n.type else None
