"""Composites written out, recognized before differentiation: softmax (normalized before or after
a product by the weights), log-softmax, logsumexp, relu as a `where`, a softplus cut off to x
(PyTorch's threshold), Mish, GELU's tanh form, the Huber loss, and a variance from its moments.

A user who writes `e = exp(s - max(s)); p = e / sum(e)` means `softmax(s)`. Differentiated as
written, the max-shift gets a backward of its own (`s == max(s)`, a division by the tie count)
whose contribution is zero, since softmax is invariant to a shift: a dead gradient path, and
arrays that the composite's textbook backward, `p * (g - sum(p * g))`, never makes. Recognized,
it is compiled as the composite (which `cross_entropy` and `log_softmax` already are), with that
backward. The shift may be left out (`exp(s) / sum(exp(s))`): the composite is the same function,
and it shifts, so it never overflows where the written form would.

Each rule matches over the axes the reduction names, with `keepdims=true` where the result
broadcasts back against `s` (as the written forms need). They are `@canonical`: applied before
differentiation, because they change which adjoints are used.
"""

from __future__ import annotations

import math

from ..dims import Dim
from ..ir import Node, make
from ..ops.elementwise import constant_value
from ..ops.nn import KAPPA, SQRT_2_OVER_PI
from .algebra import (
    _from_signed_terms,
    _mean_over,
    _merged,
    _positive_part_of,
    _positive_parts,
    _signed_terms,
    mean_of,
)
from .fixpoint import _read_once
from .rules import canonical


def _unshifted(u: Node, axis) -> Node:
    """`s` for `u = s - max(s, axis, keepdims=true)` over `axis`, else `u` itself."""
    if u.op == "sub":
        s, m = u.args
        if m.op == "max" and m.args[0] is s and m.attr("axis") == axis and m.attr("keepdims"):
            return s
    return u


def _summed_exp(n: Node) -> tuple[Node, tuple] | None:
    """(u, axis) for `n = sum(exp(u), axis, keepdims=true)`, else None."""
    found = _sum_of_exp(n)
    return found[:2] if found is not None and found[2] else None


def _sum_of_exp(n: Node) -> tuple[Node, tuple, bool] | None:
    """(u, axis, keepdims) for `n = sum(exp(u), axis, keepdims)`, else None."""
    if n.op == "sum" and n.args[0].op == "exp":
        return n.args[0].args[0], n.attr("axis"), n.attr("keepdims")
    return None


def _quotient(n: Node) -> tuple[Node, Node] | None:
    """(a, b) for `n = a / b`, `a * (1 / b)` or `(1 / b) * a`, else None."""
    if n.op == "div":
        return n.args
    if n.op == "mul":
        for r, a in (n.args, n.args[::-1]):
            if r.op == "div" and constant_value(r.args[0]) == 1:
                return a, r.args[1]
    return None


@canonical
def softmax_written_out(n: Node) -> Node | None:
    """exp(s - max(s)) / sum(exp(s - max(s))) -> softmax(s), over the sum's axes, the shift
    optional, and the quotient written `e * (1 / sum(e))` too: the max-shift's dead backward
    path is not built."""
    quotient = _quotient(n)
    if quotient is None or quotient[0].op != "exp" or n.dtype != "float":
        return None
    e, total = quotient
    found = _summed_exp(total)
    if found is None or found[0] is not e.args[0]:
        return None
    u, axis = found
    s = _unshifted(u, axis)
    return make("softmax", s, axis=axis) if s.type == n.type else None


@canonical
def softmax_normalized_after_product(n: Node) -> Node | None:
    """(exp(s - max(s)) @ v) / sum(exp(s - max(s)), axis=-1) -> softmax(s) @ v, the sum over the
    axis the product contracts, keeping it, the shift optional: attention's weights normalized
    after the product, as flash attention does. Row i of the product is divided by row i's
    sum, as each weight of row i would be, so the value is the same; compiled as the softmax,
    the shift's dead backward path (the maxima's mask, a division by the tie count) is not
    built, and the weights' backward is softmax's textbook one."""
    quotient = _quotient(n)
    if quotient is None or n.dtype != "float":
        return None
    product, total = quotient
    if product.op != "matmul" or product.args[0].op != "exp":
        return None
    e, w = product.args
    found = _summed_exp(total)
    if found is None or found[0] is not e.args[0] or found[1] != (e.ndim - 1,):
        return None
    u, axis = found
    m = make("matmul", make("softmax", _unshifted(u, axis), axis=axis), w)
    return m if m.type == n.type else None


@canonical
def log_softmax_written_out(n: Node) -> Node | None:
    """(s - max(s)) - log(sum(exp(s - max(s)))) -> log_softmax(s), the shift optional."""
    if n.op != "sub" or n.dtype != "float":
        return None
    u, log = n.args
    if log.op == "logsumexp" and log.attr("keepdims") and log.args[0] is u:
        found = u, log.attr("axis")  # (s - log(sum(exp(s))), its log recognized first)
    else:
        found = _summed_exp(log.args[0]) if log.op == "log" else None
    if found is None or found[0] is not u:
        return None
    s = _unshifted(u, found[1])
    return make("log_softmax", s, axis=found[1]) if s.type == n.type else None


# where(x > 0, x, 0) and its mirrored spellings: the mask and where the zero goes
_RELU_MASKS = {("gt", 0, 1): 1, ("lt", 1, 0): 1, ("le", 0, 1): 2, ("ge", 1, 0): 2}


@canonical
def relu_written_as_where(n: Node) -> Node | None:
    """where(x > 0, x, 0) -> relu(x), and `where(x <= 0, 0, x)` (or with `0 < x`, `0 >= x`):
    the same gradient, `x > 0` (0 at x = 0, as relu's), and np.maximum in place of np.where,
    which is about 10 times slower on a mask of random signs (1.0 ms against 0.09 ms over
    512 x 512 floats): np.where branches on every element. A nan gives nan, as relu's does,
    where np.where would give 0."""
    if n.op != "where" or n.dtype != "float":
        return None
    mask, a, b = n.args
    if mask.op not in ("gt", "lt", "le", "ge"):
        return None
    for (op, i, j), kept in _RELU_MASKS.items():
        x = mask.args[i]
        if mask.op == op and constant_value(mask.args[j]) == 0 and n.args[kept] is x:
            if constant_value(n.args[3 - kept]) == 0 and x.type == n.type:
                return make("relu", x)
    return None


@canonical
def softplus_cut_off(n: Node) -> Node | None:
    """where(x > c, x, softplus(x)) -> softplus(x) for a cut c of 20 or more (PyTorch's
    nn.Softplus cuts off at 20), with the mask read the ways `relu_written_as_where` reads it:
    the cut keeps an overflowing exp(x) out of log1p(exp(x)), and bpc's softplus never
    overflows. Above c it is x + log1p(exp(-x)), within log1p(exp(-20)) = 2.1e-9 of x (one part
    in 10^10 in float64, less than an ulp in float32). As written, the forward kept the mask
    and the softplus apart, and the gradient exp(x - softplus(x)) made three more arrays."""
    if n.op != "where" or n.dtype != "float" or n.args[0].op not in ("gt", "lt", "le", "ge"):
        return None
    mask = n.args[0]
    for (op, i, j), kept in _RELU_MASKS.items():
        x, cut = mask.args[i], _number(mask.args[j]) if mask.op == op else None
        if cut is None or cut < 20 or n.args[kept] is not x:
            continue
        s = n.args[3 - kept]
        if s.op == "softplus" and s.args[0] is x and s.type == n.type:
            return s
    return None


@canonical
def mish_written_out(n: Node) -> Node | None:
    """x * tanh(softplus(x)) -> mish(x), the factors in either order (softplus written out is
    recognized first): one exp, and its own backward, where as written it is an exp, a log1p, a
    tanh and their three backwards."""
    if n.op != "mul" or n.dtype != "float":
        return None
    for x, t in (n.args, n.args[::-1]):
        if t.op == "tanh" and t.args[0].op == "softplus" and t.args[0].args[0] is x:
            out = make("mish", x)
            return out if out.type == n.type else None
    return None


def _is_zero(n: Node) -> bool:
    value = constant_value(n)
    return value == 0 and not isinstance(value, bool)


@canonical
def elu_written_out(n: Node) -> Node | None:
    """where(x > 0, x, exp(x) - 1) -> elu(x), the mask also `x >= 0` (at 0 both branches are 0,
    and their derivatives 1), either side written first (`x <= 0` with the branches the other
    way round), and exp(min(x, 0)) for exp(x): the same values, and the composite's backward,
    one product, where as written the value and the gradient are each an `np.where`, which a
    mask of random signs slows down tenfold, and exp(x) overflows for a large x."""
    if n.op != "where" or n.dtype != "float":
        return None
    mask, a, b = n.args
    if mask.op not in ("gt", "ge", "lt", "le"):
        return None
    x, zero = mask.args
    above = mask.op in ("gt", "ge")  # (x > 0 or x >= 0, where x is written first)
    if _is_zero(x):
        x, zero, above = zero, x, not above
    if not above:
        a, b = b, a
    if not _is_zero(zero) or a is not x:
        return None
    if b.op != "sub" or constant_value(b.args[1]) != 1 or b.args[0].op != "exp":
        return None
    e = b.args[0].args[0]
    if e is not x and not (e.op == "minimum" and e.args[0] is x and _is_zero(e.args[1])):
        return None
    out = make("elu", x)
    return out if out.type == n.type else None


def _negative_part(t: Node) -> tuple[Node, float] | None:
    """(x, k) for a term k * minimum(x, 0): minimum(x, 0) or minimum(0, x) (k = 1), relu(-x)
    and maximum(-x, 0) (k = -1), either times a number (`0.01 * relu(-x)`); else None."""
    k = 1.0
    if t.op == "mul":
        for c, f in (t.args, t.args[::-1]):
            value = _number(c)
            if value is not None and f.dtype == "float":
                k, t = float(value), f
                break
        else:
            return None
    x = _minimum_with_zero(t)
    if x is not None:
        return x, k
    minus = _positive_part_of(t)
    if minus is not None and minus.op == "neg":
        return minus.args[0], -k
    return None


@canonical
def leaky_relu_written_as_parts(n: Node) -> Node | None:
    """relu(x) + c * minimum(x, 0) -> maximum(x, c * x) for a number 0 < c < 1, and relu(x) -
    c * relu(-x), with maximum(x, 0) for relu(x), the terms in either order and anywhere in a
    sum: a leaky ReLU written as its two parts is one, which `extremum_of_a_multiple` makes
    one product, where as written each part and each part's gradient was an array. The same
    values; at x = 0, where the parts' gradients are 0 and c / 2, the gradient is the
    maximum's, (1 + c) / 2, what central differences there give."""
    if n.op not in ("add", "sub") or n.dtype != "float":
        return None
    terms = _signed_terms(n)
    for i, x in _positive_parts(terms, n):
        for j, (other, rest) in enumerate(terms):
            negative = _negative_part(rest) if j != i else None
            if negative is None or negative[0] is not x or not 0 < other * negative[1] < 1:
                continue
            out = _merged(terms, i, j, make("maximum", x, make("mul", other * negative[1], x)))
            return out if out.type == n.type else None
    return None


@canonical
def elu_written_as_parts(n: Node) -> Node | None:
    """relu(x) + minimum(exp(x) - 1, 0) -> elu(x), and relu(x) + exp(minimum(x, 0)) - 1, with
    maximum(x, 0) for relu(x) and the terms in any order: an ELU written as its parts, which
    as written took an array and a gradient for each part (and the second rounds x + 1 - 1
    for a small positive x, where elu(x) is x)."""
    if n.op not in ("add", "sub") or n.dtype != "float":
        return None
    less_one = n.op == "sub" and _number(n.args[1]) == 1  # (`relu(x) + exp(min(x, 0)) - 1`)
    terms = _signed_terms(n.args[0] if less_one else n)
    for i, x in _positive_parts(terms, n):
        rest = terms[:i] + terms[i + 1 :]
        for j, (other, t) in enumerate(rest):
            if other < 0:
                continue
            if less_one:
                found = t.op == "exp" and _minimum_with_zero(t.args[0]) is x
            else:
                found = _minimum_with_zero(t) is not None and any(
                    _exp_minus_one_of(e) is x for e in t.args
                )
                found = found or _minimum_with_zero(_exp_minus_one_of(t)) is x
            if found:
                out = _from_signed_terms([(1, make("elu", x))] + rest[:j] + rest[j + 1 :])
                return out if out.type == n.type else None
    return None


def _minimum_with_zero(e: Node | None) -> Node | None:
    """x for minimum(x, 0) or minimum(0, x), else None."""
    if e is None or e.op != "minimum":
        return None
    for x, zero in (e.args, e.args[::-1]):
        if _is_zero(zero):
            return x
    return None


def _exp_minus_one_of(e: Node) -> Node | None:
    """x for exp(x) - 1, else None."""
    if e is not None and e.op == "sub" and _number(e.args[1]) == 1 and e.args[0].op == "exp":
        return e.args[0].args[0]
    return None


@canonical
def gelu_tanh_written_out(n: Node) -> Node | None:
    """x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x**3)) -> gelu(x, approximate="tanh"), with the
    numbers anywhere in the products and the cube as `x**3` or `x * x * x` (PyTorch's
    `0.5 * x * (1 + tanh(u))` is this sigmoid once `one_plus_tanh` has written it so): the
    composite's backward (`ops/nn.py`), whose one new array the written form's product rule
    does not find. Coefficients that are GELU's to within rounding (1e-12) give the composite;
    those within `ROUNDED` of them (a constant written to fewer digits) give the composite
    with the coefficients as written (`coefficients`), the same function as written; a
    polynomial of other numbers is another function, and is left as written. The product may
    be divided by a number (`x * (1 + tanh(u)) / 2`)."""
    if n.dtype != "float":
        return None
    product, scale = n, 1.0
    if n.op == "div":
        divisor = _number(n.args[1])
        if not divisor:
            return None
        product, scale = n.args[0], 1.0 / divisor
    if product.op != "mul":
        return None
    found = _all_factors(product, [])
    if found is None:
        return None
    factors = []
    for f in found:
        value = _number(f)
        if value is None:
            factors.append(f)
        else:
            scale *= value
    if len(factors) != 2 or not math.isclose(scale, 1.0, rel_tol=1e-12):
        return None
    for x, s in (factors, factors[::-1]):
        if s.op != "sigmoid" or x.ndim == 0 or x.shape != n.shape:
            continue
        found = _polynomial(s.args[0], x)
        if found is None or set(found) - {1, 3} or not found.get(1) or not found.get(3):
            continue
        linear, cubic = found[1], found[3]
        for tolerance, written in ((1e-12, None), (ROUNDED, (linear, cubic))):
            if math.isclose(linear, 2 * SQRT_2_OVER_PI, rel_tol=tolerance) and math.isclose(
                cubic / linear, KAPPA, rel_tol=tolerance
            ):
                out = make("gelu", x, approximate="tanh", coefficients=written)
                return out if out.type == n.type else None
    return None


# GELU's tanh form as its writers round its constants (`0.7978845608` in Hugging Face's
# FastGELU, `0.79788456` in Megatron's): within this, the composite with the written numbers
ROUNDED = 1e-6


# How deep the GELU rule reads a product or a polynomial: the written forms are a few levels
# deep, and a bound keeps the rule from walking a large graph (whose shared values a walk
# without one would visit once per path).
DEPTH = 8


@canonical
def huber_written_out(n: Node) -> Node | None:
    """where(abs(d) <= delta, p * d**2, q * abs(d) + r) -> k * huber(d, delta), k = q / delta,
    where the branches are k times Huber's, p = k / 2 and r = -k delta**2 / 2 (`0.5 * d * d` and
    `abs(d) - 0.5` for delta 1; PyTorch's smooth L1, `0.5 * d**2 / beta` and `abs(d) - 0.5 *
    beta`), the branches written as any polynomials in d and abs(d) that `_polynomial` reads;
    `<` as well as `<=`, and the mask the other way round (`abs(d) > delta`, the branches
    swapped): at |d| = delta the two branches agree, in value and in slope. The composite's
    clip serves the value and the gradient, where as written each was an np.where of two
    arrays (2 to 6 times the time of the expert's code)."""
    if n.op != "where" or n.dtype != "float" or n.args[0].op not in ("le", "lt", "ge", "gt"):
        return None
    mask, inside, outside = n.args
    a, bound = mask.args
    below = mask.op in ("le", "lt")
    if a.op != "abs":
        a, bound, below = bound, a, not below
    delta = _number(bound)
    if a.op != "abs" or delta is None or not 0 < delta < math.inf:
        return None
    if not below:
        inside, outside = outside, inside
    d = a.args[0]
    square, line = _polynomial(inside, d), _polynomial(outside, a)
    if not square or not line or set(square) != {2} or set(line) - {0, 1} or 1 not in line:
        return None
    k = line[1] / delta
    close = lambda u, v: math.isclose(u, v, rel_tol=1e-12)  # noqa: E731
    if not close(square[2], k / 2) or not close(line.get(0, 0.0), -k * delta * delta / 2):
        return None
    return _huber_times(k, d, delta, n)


def _huber_times(k: float, d: Node, delta: float, n: Node) -> Node | None:
    """k * huber(d, delta) in n's place, where it has n's type."""
    out = make("huber", d, delta=delta)
    out = out if k == 1 else make("mul", k, out)
    return out if out.type == n.type else None


def _all_factors(n: Node, out: list[Node], depth: int = 0) -> list[Node] | None:
    """The factors of a tree of products, numbers and small factors included; None where there
    are more than a few. (algebra's `_factors`, bounded: a canonical rule is offered every node,
    and reading a long chain of products whole at each of its nodes is quadratic.)"""
    if n.op != "mul":
        out.append(n)
        return out if len(out) <= DEPTH else None
    if depth > DEPTH:
        return None
    for a in n.args:
        if _all_factors(a, out, depth + 1) is None:
            return None
    return out


def _number(n: Node) -> float | None:
    """The value of literal numbers and arithmetic on them (`sqrt(2 / pi)`), or None."""
    value = constant_value(n)
    return None if isinstance(value, bool | complex) else value


def _polynomial(n: Node, x: Node) -> dict[int, float] | None:
    """n as a polynomial in x, {power: coefficient} with the zero ones left out, where it is
    one: sums, differences, products and whole powers of x and numbers, a few levels deep."""
    found = _monomials(n, (x,))
    return None if found is None else {k[0]: c for k, c in found.items()}


def _monomials(n: Node, xs: tuple[Node, ...], depth: int = 0) -> dict[tuple, float] | None:
    """n as a polynomial in the values xs, {powers of each: coefficient} with the zero ones left
    out, where it is one (as `_polynomial`)."""
    if depth > DEPTH:
        return None
    value = _number(n)
    if value is not None:
        return {(0,) * len(xs): float(value)} if value else {}
    if any(n is x for x in xs):
        return {tuple(int(n is x) for x in xs): 1.0}
    if n.op == "neg":
        inner = _monomials(n.args[0], xs, depth + 1)
        return None if inner is None else {k: -c for k, c in inner.items()}
    if n.op in ("add", "sub", "mul"):
        a, b = (_monomials(m, xs, depth + 1) for m in n.args)
        if a is None or b is None:
            return None
        if n.op == "mul":
            terms = [
                (tuple(map(sum, zip(i, j))), c * d) for i, c in a.items() for j, d in b.items()
            ]
        else:
            sign = 1.0 if n.op == "add" else -1.0
            terms = [*a.items(), *((j, sign * d) for j, d in b.items())]
        return _collected(terms)
    if n.op == "div":
        a, b = _monomials(n.args[0], xs, depth + 1), _number(n.args[1])
        if a is None or not b:
            return None
        return {k: c / b for k, c in a.items()}
    if n.op == "pow":
        k = _number(n.args[1])
        if k not in (2, 3, 4):
            return None
        base = _monomials(n.args[0], xs, depth + 1)
        if base is None or len(base) != 1:
            return None
        ((powers, c),) = base.items()
        return {tuple(int(k) * p for p in powers): c**k}
    return None


def _collected(terms) -> dict:
    """Terms (key, coefficient) with like keys added, the zero ones left out."""
    out: dict = {}
    for k, c in terms:
        out[k] = out.get(k, 0.0) + c
    return {k: c for k, c in out.items() if c}


def _substituted(p: dict[tuple, float], value) -> dict[int, float]:
    """A polynomial in (b, f) with b replaced: by f itself (`value` None), or by a number; a
    polynomial in f."""
    if value is None:
        return _collected((i + j, c) for (i, j), c in p.items())
    return _collected((j, c * value**i) for (i, j), c in p.items())


def _bounds_in(n: Node, out: list[Node], depth: int = 0) -> list[Node]:
    """The clips and minimums that n computes with through sums, products, negations, quotients
    and powers, a few levels deep."""
    if n.op in ("clip", "minimum"):
        if not any(n is m for m in out):
            out.append(n)
    elif n.op in ("add", "sub", "mul", "neg", "div", "pow") and depth <= DEPTH:
        for a in n.args:
            _bounds_in(a, out, depth + 1)
    return out


def _bounded(b: Node) -> tuple[Node, Node, float, list[float]] | None:
    """For b = clip(d, -delta, delta): (d, d, delta, the values b takes where it is not d,
    [delta, -delta]); for b = minimum(abs(d), delta): (abs(d), d, delta, [delta]); else None."""
    if b.op == "clip":
        lo, hi = _number(b.args[1]), _number(b.args[2])
        if hi is not None and lo == -hi and 0 < hi < math.inf:
            return b.args[0], b.args[0], hi, [hi, -hi]
    if b.op == "minimum":
        for f, bound in (b.args, b.args[::-1]):
            delta = _number(bound)
            if f.op == "abs" and delta is not None and 0 < delta < math.inf:
                return f, f.args[0], delta, [delta]
    return None


@canonical
def huber_by_clipping(n: Node) -> Node | None:
    """k * huber(d, delta) written with the clipped residual: `c * (d - 0.5 * c)` or `c * d -
    c**2 / 2` for c = clip(d, -delta, delta), or TensorFlow's `0.5 * m**2 + delta * (a - m)`
    for a = abs(d) and m = minimum(a, delta); any polynomial in the two that is k times Huber's
    loss both where the bound does not bind (c is d, m is a: k d**2 / 2) and where it does (c
    is +-delta, m is delta: k (delta |d| - delta**2 / 2)). As written, each value and its
    gradient were arrays of their own (2 to 2.7 times the expert's time, 1.4 times the
    memory); the composite's one clip serves both."""
    if n.op not in ("add", "sub", "mul") or n.dtype != "float" or n.ndim == 0:
        return None
    for b in _bounds_in(n, []):
        bounded = _bounded(b)
        p = None if bounded is None else _monomials(n, (b, bounded[0]))
        if not p:
            continue
        _, d, delta, sides = bounded
        inside = _substituted(p, None)
        if inside.keys() != {2}:
            continue
        k = 2 * inside[2]
        close = lambda u, v: math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-300)  # noqa: E731
        for side in sides:
            line = _substituted(p, side)
            if line.keys() - {0, 1} or not close(line.get(1, 0.0), k * side):
                break
            if not close(line.get(0, 0.0), -k * delta * delta / 2):
                break
        else:
            return _huber_times(k, d, delta, n)
    return None


@canonical
def exp_of_log_softmax(n: Node) -> Node | None:
    """exp(log_softmax(s)) -> softmax(s): the probabilities written as the exponential of the
    log-probabilities (`exp(s - logsumexp(s))`, its inside recognized first). One pass over s
    and its textbook backward, where the written form takes the log-probabilities' exp and
    backward through the logsumexp."""
    if n.op != "exp" or n.args[0].op != "log_softmax":
        return None
    s = n.args[0].args[0]
    return make("softmax", s, axis=n.args[0].attr("axis"))


@canonical
def log_of_softmax(n: Node) -> Node | None:
    """log(softmax(s)) -> log_softmax(s): the same values where no probability rounds to 0, and
    finite where one does (a confident wrong class: the written form's loss is inf, its
    gradient nan); the backward is log_softmax's, `g - softmax(s) * sum(g)`, with no division
    by the probabilities."""
    if n.op != "log" or n.args[0].op != "softmax":
        return None
    s = n.args[0].args[0]
    return make("log_softmax", s, axis=n.args[0].attr("axis"))


@canonical
def log_of_picked_softmax(n: Node) -> Node | None:
    """log(take_along(softmax(s), y)) -> take_along(log_softmax(s), y), where the softmax is read
    there alone: a cross-entropy written with the probabilities, `-log(take_along(p, y))`. The
    log of each picked probability is the pick of the log-probabilities; finite where the
    probability rounds to 0 (the written form's loss is inf there, its gradient nan), and
    the backward is log_softmax's, with no division by the picked probabilities."""
    if n.op != "log" or n.args[0].op != "take_along":
        return None
    p, labels = n.args[0].args
    if p.op != "softmax" or not _read_once(p):
        return None
    m = make("take_along", make("log_softmax", p.args[0], axis=p.attr("axis")), labels)
    return m if m.type == n.type else None


@canonical
def logsumexp_written_out(n: Node) -> Node | None:
    """m + log(sum(exp(s - m))) with m = max(s) -> logsumexp(s), over the same axes, keeping
    them or not (where not, the shift is m reshaped to keep them: `max(s, axis=1)` and
    `reshape(m, (N, 1))`, a logsumexp written out without keepdims); and log(sum(exp(s)))
    likewise. The max-shift's backward, a mask of the maxima that adds up to 0, is not built."""
    if n.op == "log":
        found = _sum_of_exp(n.args[0])
        if found is None or found[0].op == "sub":
            return None
        s, axis, keepdims = found
        return make("logsumexp", s, axis=axis, keepdims=keepdims)
    if n.op != "add" or n.dtype != "float":
        return None
    for m, log in (n.args, n.args[::-1]):
        if log.op != "log" or m.op != "max":
            continue
        found = _sum_of_exp(log.args[0])
        if found is None or found[1:] != (m.attr("axis"), m.attr("keepdims")):
            continue
        u = found[0]
        if u.op == "sub" and u.args[0] is m.args[0] and _kept(u.args[1], m):
            out = make("logsumexp", m.args[0], axis=found[1], keepdims=found[2])
            return out if out.type == n.type else None
    return None


def _kept(shift: Node, m: Node) -> bool:
    """Whether `shift` is the reduction m with its axes kept: m itself, where it keeps them, or
    m reshaped to the shape of its argument with 1 on each of them."""
    if shift is m:
        return m.attr("keepdims")
    if shift.op != "reshape" or shift.args[0] is not m or m.attr("keepdims"):
        return False
    axes, x = m.attr("axis"), m.args[0]
    return shift.shape == tuple(Dim.of(1) if i in axes else d for i, d in enumerate(x.shape))


def _squared(n: Node) -> Node | None:
    """a for `n = a * a` or `a ** 2`, else None."""
    if n.op == "mul" and n.args[0] is n.args[1]:
        return n.args[0]
    if n.op == "pow" and n.args[1].op == "const" and n.args[1].attr("value") == 2:
        return n.args[0]
    return None


@canonical
def variance_from_moments(n: Node) -> Node | None:
    """mean(x * x) - mu * mu -> mean((x - mu) * (x - mu)), mu = mean(x) over the same axes:
    a variance in the two-pass form. Equal in exact arithmetic; the written form cancels where
    the mean is large against the spread (its float32 variance can come out negative), and its
    gradient runs through x and mu apart, where the two-pass form's runs through the deviation
    `x - mu`, which a normalization's forward makes anyway: its textbook backward follows, and
    the cache keeps one array of that shape, not two."""
    if n.op != "sub" or n.dtype != "float":
        return None
    moment, square = n.args
    found = mean_of(moment)
    if found is None or square.shape != moment.shape or moment.shape != n.shape:
        return None
    xx, axes, keepdims = found
    x, mu = _squared(xx), _squared(square)
    if x is None or mu is None or x.dtype != "float" or not _mean_over(mu, x, axes):
        return None
    d = make("sub", x, mu)
    return make("mean", make("mul", d, d), axis=axes, keepdims=keepdims)
