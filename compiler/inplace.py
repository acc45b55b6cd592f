"""Stage 6b: arrays reused the way an expert reuses them, planned on the IR and written as data.

This module owns which line of a generated function works in the array of another value, and
the statements that do it. A sum takes over the new array of one of its terms (`dW = X.T @ dh`
then `dW += reg * W`: `accumulate`). An elementwise line on one of the largest arrays writes into
the array of a value it reads for the last time, down its expression if need be (`dp -= rowsum;
dp *= p`, `np.exp(p, out=p)`: `plan`, then `steps`). Never into a parameter, the upstream
gradient, a cache entry, an output or a gradient, nor into an array that a view still read later
shares. What an operation can do in place is on its definition (`OpDef.augmented`, `commutes`,
`ufunc`, `scales`, `fresh`, `view`); whether its emitted call takes `out=` is on its expression
(`Call.ufunc`). A functional target (the array-api one) gets the `+=` forms alone, which NumPy,
CuPy and PyTorch do in place and JAX and Dask, whose arrays are immutable, rebind; and there an
operation of the printer's `aliases` (a copy, which that target omits) makes no new array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dims import Dim
from .expr import Assign, AugAssign, Call, Eval, Lit, Name, Stmt, array
from .ir import OPS, Node, is_view

if TYPE_CHECKING:
    from .lower import Lowering


def plan(fn: Lowering, nodes) -> None:
    """Before writing one function's lines: where an elementwise line may write into the array
    of a value it reads for the last time (`p -= m`, `np.exp(p, out=p)`), as an expert reuses a
    buffer; `fn.in_place` gets the value and the operations on the way down to it. Such a value
    is one this function made, a new array (no view, parameter, cache entry, output or gradient,
    and no array that one of those or a view read later shares), of the result's shape and float
    dtype."""
    lines = [n for n in nodes if n in fn.own_line and n.op not in ("param", "dout")]
    made = set(lines) | fn.spent  # (a used-up cache's arrays are the backward's: `spendable`)
    last: dict[Node, Node] = {}  # a value -> the last line that reads its array
    for n in lines:
        for a in _values_read(fn, n, itself=False):
            last[a] = n
    # an array that a cache entry, an output or a gradient may share is never written
    kept = {b for k in fn.keep for b in _shared(fn, k)}
    chains: dict[Node, list[Node]] = {}  # the first value of each shared array -> the values
    root: dict[Node, Node] = {}
    # only the largest arrays are worth it: a bias-sized vector keeps its one-line form
    widest = max((m.ndim for m in lines if not is_view(m)), default=0)  # (not a window view)
    for n in lines:
        if not _in_its_operand(n) or n.dtype != "float" or n.ndim < max(widest, 1):
            continue
        if n in fn.born_weak or Dim.of(1) in n.shape:  # (a keepdims statistic: small)
            continue
        # (a carried value is never worked out in a named value's array: `_rebinds_safely`)
        reusable = (lambda a, level: False) if n in fn.whole else _Reusable(fn, n, made, last, kept)
        found = _spine(fn, n, reusable)
        if n in fn.whole:  # (never accumulated: in one line, or planned here)
            if found is None or not _rebinds_safely(fn, n, *found):
                continue
        beside = {} if found is None else _beside(fn, n, *found, reusable)
        accumulated = found is not None and found[0] not in made and _terms(fn, n) is not None
        if n not in fn.whole and accumulated and not beside:
            continue  # (a sum in a new array: `accumulate` adds term by term into it)
        if found is not None:
            fn.in_place[n] = found
            fn.beside[n] = beside
            a = found[0]
            if a not in made:  # (a temporary: the chain starts at n)
                continue
            root[n] = root.get(a, a)
            chains.setdefault(root[n], [root[n]]).append(n)
    _name_chains(fn, chains)


def _in_its_operand(n: Node) -> bool:
    """An elementwise line, or one that takes `out=` for a first operand of its shape (a
    take_along's adjoint added to a gradient, `_add_along(t, y, g, out=t)`)."""
    op = OPS[n.op]
    return op.elementwise or (op.ufunc and n.args[0].shape == n.shape)


def spendable(fn: Lowering, cached: list[Node], outputs: list[Node]) -> frozenset[Node]:
    """The cache entries that a backward which uses up its cache (`--consume-cache`) may work
    in once it has read them for the last time, as an expert's backward writes `dx` into the
    forward's `xhat`: new arrays the forward made, which no output, parameter or other entry
    shares (an output the caller holds, a view of a parameter or of another entry's array)."""
    new = {
        c
        for c in cached
        if c.op not in ("param", "dout", "const", "dim")
        and c.dtype == "float"
        and c.ndim
        and c not in outputs
        and not is_view(c)
        and _new_array(fn, c)
    }
    for k in [*outputs, *cached]:
        new -= _shared(fn, k) - {k}
    return frozenset(new)


class _Reusable:
    """Whether line n may work in the array of value a, an operand of `level` on its way down."""

    def __init__(self, fn: Lowering, n: Node, made: set[Node], last: dict, kept: set[Node]):
        self.fn, self.n, self.made, self.last, self.kept = fn, n, made, last, kept

    def __call__(self, a: Node, level: Node) -> bool:
        n = self.n
        return (
            a in self.made
            and self.last.get(a) is n
            and a not in self.kept
            and self.new(a)
            and a.shape == n.shape
            and a.dtype == "float"
            and _writable_form(self.fn, level, a)
        )

    def new(self, a: Node) -> bool:
        """A new array, or a writable view of one that only the view reads: a base with a line
        of its own must be one this function made, read once and kept nowhere."""
        fn = self.fn
        return _new_array(
            fn, a, lambda b: b in self.made and b not in self.kept and fn.uses.get(b, 0) == 1
        )


def _spine(fn: Lowering, n: Node, reusable: _Reusable) -> tuple[Node, list[Node]] | None:
    """Down the line's expression, `(a - s) * w / t`, to a value read for the last time: each
    operation on the way is then done in that value's array, bottom up, as long as the
    operands above the bottom do not read it. Where none is found, a new array that no name
    holds is the bottom, as an expert writes it (a large temporary costs page faults on every
    call): a product on the way (`out = x @ w`, then `out += b`), or else the deepest
    operation (`t = x * x`, then `t *= x`, ... for `c * (x + k * (x * x * x))`). Of the ways
    down, the one that makes the fewest new arrays (`dw -= s; dw *= w`, not `w *= dw - s`),
    then the one that works the fewest operands beside it in arrays of their own (`_beside`),
    then the first value found down the first operands. The value and the operations, or
    None."""
    ways = [_first_spine(fn, n, reusable), *_bottoms(fn, n, reusable, [n])]
    ways.append(_first_spine(fn, n, lambda a, level: False))
    ways = [w for w in ways if w is not None]
    return min(ways, key=lambda w: _cost(fn, n, *w, reusable), default=None)


def _cost(fn: Lowering, n: Node, a: Node, spine: list[Node], reusable) -> tuple[int, int]:
    """How many new arrays of line n's shape its expression makes, worked out in a's array
    down `spine` (those of the operands beside the way down that are not worked out in the
    array of a value, `_beside`, and a's own if it has no name); then how many operands are
    worked out so, each a line more."""
    beside = [o for level in spine for o in level.args if o is not a and o not in spine]
    in_place = _beside(fn, n, a, spine, reusable)
    return sum(_arrays(fn, n, o) for o in [a, *beside] if o not in in_place), len(in_place)


def _beside(
    fn: Lowering, n: Node, a: Node, spine: list[Node], reusable, taken=None, after=()
) -> dict:
    """The operands beside the way down to a that are worked out, when their step comes, in the
    array of a value they read for the last time, which nothing evaluated after reads: in
    `np.maximum(dz, e, out=dz)`, `e += 1`, `dz /= e`, the 1 + e of `maximum(z >= 0, e) /
    (1 + e)`; and so on down such an operand's own way (a Mish's `t_2 *= t_2`, `t_2 *= x`,
    `t_2 *= e`, `e += 1`, `t_2 *= e`, with `after` the operands read once it is done). Each
    operand -> the value and the operations down to it."""
    out: dict[Node, tuple[Node, list[Node]]] = {}
    taken = {a} if taken is None else taken
    levels = list(reversed(spine))  # (bottom up: the order of the steps)
    for i, level in enumerate(levels):
        if not OPS[level.op].augmented:
            continue
        for o in level.args:
            if o is a or o in spine or o in fn.own_line or o in fn.born_weak:
                continue
            if not OPS[o.op].elementwise or o.dtype != "float" or o.shape != n.shape:
                continue
            later = [x for up in levels[i + 1 :] for x in up.args if x not in spine]
            later += after
            for a2, down in _bottoms(fn, o, reusable, [o]):
                if a2 not in taken and all(a2 not in _values_read(fn, x) for x in later):
                    out[o] = a2, down
                    taken.add(a2)
                    out.update(_beside(fn, n, a2, down, reusable, taken, later))
                    break
    return out


def _arrays(fn: Lowering, n: Node, v: Node) -> int:
    """How many new arrays of line n's shape v's expression makes where it is written inline."""
    if v in fn.own_line or v.op in ("const", "dim"):
        return 0
    own = v.shape == n.shape and v.dtype == "float" and OPS[v.op].fresh and not is_view(v)
    return int(own) + sum(_arrays(fn, n, a) for a in v.args)


def _first_spine(fn: Lowering, n: Node, reusable) -> tuple[Node, list[Node]] | None:
    """`_spine` down the first operand that can be worked out in place, at each level: the
    first value found, else a new array at the bottom."""
    spine, level = [n], n
    while level is not None:
        a = next((a for a in level.args if reusable(a, level)), None)
        if a is not None:
            above = [o for m in spine[:-1] for o in m.args if o not in spine]
            if all(a not in _values_read(fn, o) for o in above):
                return a, spine
        made = [a for a in level.args if not OPS[a.op].elementwise and _temporary(fn, n, a)]
        made = [a for a in made if _writable_form(fn, level, a)]
        if made:
            return made[0], spine
        below = _spine_step(fn, n, level)
        if below is None and level is not n and _temporary(fn, n, level):
            return level, spine[:-1]
        level = below
        spine.append(level)
    return None


def _bottoms(fn: Lowering, n: Node, reusable: _Reusable, spine: list[Node]):
    """Each value that line n can be worked out in, with the operations down to it, shallower
    ones first: an operand of the lowest operation that no operand above reads."""
    level = spine[-1]
    above = [o for m in spine[:-1] for o in m.args if o not in spine]
    for a in level.args:
        if reusable(a, level) and all(a not in _values_read(fn, o) for o in above):
            yield a, spine
    for c in _spine_steps(fn, n, level):
        yield from _bottoms(fn, n, reusable, [*spine, c])


def _rebinds_safely(fn: Lowering, n: Node, a: Node, spine: list[Node]) -> bool:
    """Whether a loop's carried value (`h = np.tanh(xw[:, t] + h @ Wh)`, which takes the name
    of the value it replaces) can be worked out in a new array of its own: `h = h @ Wh`, then
    `h += xw[:, t]`, `np.tanh(h, out=h)`. Its first statement may read the old value; the
    later ones must not, for they would read the new one under its name."""
    if a in fn.own_line:  # (a named value's array: the carried value stays one line)
        return False
    name = fn.namer.names.get(n)
    above = [o for m in spine for o in m.args if o not in spine and o is not a]
    reads = {x for o in above for x in _values_read(fn, o)} | set(above)
    return name is not None and all(fn.namer.names.get(x) != name for x in reads)


def _temporary(fn: Lowering, n: Node, a: Node) -> bool:
    """Whether `a`, written inline in line n, is a new float array of n's shape that nothing
    else reads."""
    return (
        a not in fn.own_line
        and a.shape == n.shape
        and a.dtype == "float"
        and fn.uses.get(a, 0) == 1
        and a not in fn.born_weak
        and _new_array(fn, a)
        and not is_view(a)
    )


def _spine_step(fn: Lowering, n: Node, level: Node) -> Node | None:
    """An operand of `level` written inline that can be worked out in place too."""
    return next(iter(_spine_steps(fn, n, level)), None)


def _spine_steps(fn: Lowering, n: Node, level: Node) -> list[Node]:
    """The operands of `level` written inline that can be worked out in place too."""
    return [
        c
        for c in level.args
        if c not in fn.own_line
        and c.op not in ("const", "dim")
        and OPS[c.op].elementwise
        and c.dtype == "float"
        and c.shape == n.shape
        and c not in fn.born_weak
        and _writable_form(fn, level, c)
    ]


def _name_chains(fn: Lowering, chains: dict[Node, list[Node]]) -> None:
    """A value without a name of its own goes by the name of the array it was worked out in,
    unless that array's name says something else (`var`, not its square root): then the value
    takes the array under a name of its own (`t = var`, `t += 1e-05`)."""

    def named(m: Node) -> bool:
        return bool(m.hint) or m in fn.namer.names

    for chain in chains.values():
        for below, m in zip(chain, chain[1:]):
            if not named(m) and not named(below):
                fn.namer.names[m] = fn.name_of(below)


# The ufunc of a difference or a quotient, for `np.subtract(b, a, out=a)`: b - a into a's array.
REVERSED = {"-": "subtract", "/": "divide"}


def _writable_form(fn: Lowering, n: Node, a: Node) -> bool:
    """Whether n can be written into a: `a op= b`, `np.subtract(b, a, out=a)` for b - a where
    b makes no array of its own (a name, a number), a ufunc of a with `out=a` (the last two
    not in a functional target's code), or `a *= -1` for -a."""
    op = OPS[n.op]
    if op.scales is not None:  # (`a *= -1`)
        return n.dtype == "float"
    if op.augmented:
        if op.commutes or n.args[0] is a:
            return True
        b = n.args[0]
        named = b.ndim == 0 or b in fn.own_line or b.op in ("param", "dout", "const", "dim")
        return op.augmented in REVERSED and n.args[1] is a and named and not fn.printer.functional
    return op.ufunc and n.args[0] is a and not fn.printer.functional


def _values_read(fn: Lowering, o: Node, itself: bool = True) -> set[Node]:
    """The named values whose arrays o's expression reads (o's own, if it is named and
    `itself`), through views too: reading `dv = np.broadcast_to(t, ...)` reads t's array."""
    named = {o} if itself and o in fn.own_line else fn.reads(o)
    return {b for v in named for b in _shared(fn, v)}


def _shared(fn: Lowering, v: Node) -> set[Node]:
    """The named values among v and those whose arrays v may be a view of."""
    out = {v} if v in fn.own_line else set()
    if is_view(v):
        out |= _shared(fn, v.args[0])
    elif not OPS[v.op].fresh or v.op in fn.printer.aliases:  # (einsum) may return an operand
        for a in v.args:
            out |= _shared(fn, a)
    return out


# ---------------------------------------------------------------------------------------------
# The statements


def steps(fn: Lowering, n: Node) -> list[Stmt] | None:
    """n's line, planned in place, as updates of one array, bottom up; None where a step has no
    such form or does not fit a line. The values worked out on the way are then the array's.
    (Where it gives None, n no longer goes by the name of the array it was planned in: its
    line makes a new array.)"""
    made = _steps(fn, n)
    a = fn.in_place[n][0]
    if made is None and a is not n and fn.namer.names.get(n) == fn.namer.names.get(a):
        del fn.namer.names[n]
    return made


def _steps(fn: Lowering, n: Node) -> list[Stmt] | None:
    a, spine = fn.in_place[n]
    done: dict[Node, str] = {}  # the steps done: their values are the array `name`
    if a not in fn.own_line:  # a temporary at the bottom: `t = x * x`, under n's name
        name = fn.name_of(n)
        lines, done[a] = [Assign(name, fn.code(a))], name
        if not fn.printer.fits(lines[0]):
            return None
    else:
        name, lines = fn.name_of(a), []
    if a in fn.own_line and fn.name_of(n) != name:  # the array takes n's name first
        bottom = spine[-1]
        if not OPS[bottom.op].augmented and OPS[bottom.op].scales is None:  # `np.exp(t, out=t)`
            # (the first statement: its operands are evaluated before it writes into `name`)
            step = _step(fn, bottom, a, name, first=not lines)
            if step is None or len(spine) == 1:
                return [Assign(fn.name_of(n), step.value)] if step else None
            lines.append(Assign(fn.name_of(n), step.value))
            a, spine, done[bottom] = bottom, spine[:-1], fn.name_of(n)
        else:
            lines.append(Assign(fn.name_of(n), Name(name)))
        name = fn.name_of(n)
    more = _updates(fn, n, a, spine, name, done)
    if more is None:
        return None
    for m in done:
        fn.namer.names[m] = name
        fn.own_line.add(m)
    return lines + more


def _updates(fn: Lowering, n: Node, a: Node, spine, name: str, done: dict) -> list[Stmt] | None:
    """The operations of `spine` done bottom up in the array `name`, which holds a's value
    (`done` gets the values of the steps done); an operand that would make new arrays of line
    n's shape on its way is worked out in an array of its own first (`_worked_out`). None where
    a step has no such form or does not fit a line."""
    lines, below, operands = [], a, {}
    for level in reversed(spine):
        if below is not a:
            done[below] = name
        if OPS[level.op].augmented:
            other = level.args[1] if level.args[0] is below else level.args[0]
            if other in fn.beside.get(n, {}):  # (in the array of a value read for the last time)
                a2, down = fn.beside[n][other]
                more = _updates(fn, n, a2, down, fn.name_of(a2), {**done, **operands})
                if more is None:
                    return None
                lines += more
                operands[other] = fn.name_of(a2)
            lines += _worked_out(fn, n, other, {**done, **operands}, operands)
        step = _step(fn, level, below, name, {**done, **operands})
        if step is None or not fn.printer.fits(step):
            return None
        lines.append(step)
        below = level
    return lines


def _worked_out(fn: Lowering, n: Node, v: Node, bound: dict, operands: dict) -> list[Stmt]:
    """The lines that work out operand v, written inline, in one new array of its own, where
    its expression would make three or more (`0.8 * (1 + k * (x * x))`, four, as `t = x * x;
    t *= k; t += 1; t *= 0.8`); none where it makes fewer, for which a line more is not worth
    an array. `operands` then names v's array."""
    if v in bound or not OPS[v.op].elementwise or not _temporary(fn, n, v):
        return []
    found = _spine(fn, v, lambda a, level: False)
    if found is None or len(found[1]) < 2:
        return []
    name = fn.name_of(v)
    lines = _chain(fn, n, *found, name, bound)
    if lines is None or not fn.printer.fits(lines[0]):
        return []
    operands[v] = name
    return lines


def _chain(fn: Lowering, n: Node, a: Node, spine, name: str, bound: dict) -> list[Stmt] | None:
    """`name = a`, a new array, then the operations of `spine` done in it (`_updates`); None
    where a step has no such form."""
    more = _updates(fn, n, a, spine, name, {**bound, a: name})
    return None if more is None else [Assign(name, fn.code(a, bound=bound)), *more]


def _step(
    fn: Lowering, n: Node, a: Node, name: str, done: dict | None = None, first: bool = False
) -> Stmt | None:
    """n worked out in the array `name` holds, where a's value is (`done` names the values of
    the steps before): `name op= other`, or a ufunc of a with `out=name`, whose other operands
    are names and numbers unless it is the `first` statement of the line (`ds = _add_along(t,
    y, -(t @ ones), out=t)`: they are evaluated before it writes); None where n's code has no
    such form."""
    augmented = OPS[n.op].augmented
    if OPS[n.op].scales is not None and n.dtype == "float":  # (-a: `a *= -1`)
        if OPS[n.op].scales == -1 and not fn.printer.functional:
            # (np.negative takes 0.2-0.3 us a call less than a product by the Python -1)
            return Eval(array("negative", Name(name), out=Name(name)))
        return AugAssign(name, "*", Lit(OPS[n.op].scales))
    if augmented and (OPS[n.op].commutes or n.args[0] is a):
        other = n.args[1] if n.args[0] is a else n.args[0]
        return AugAssign(name, augmented, fn.operand(n, other, fn.code(other, bound=done)))
    if augmented:  # b - a, a's value in `name`: np.subtract(b, name, out=name)
        b = fn.operand(n, n.args[0], fn.code(n.args[0], bound=done))
        call = array(REVERSED[augmented], b, Name(name), ufunc=True)
        return Eval(Call(call.fn, call.args, (("out", Name(name)),), True))
    e = fn.expression(n, bound=done)
    operand = Name(done[a] if done and a in done else fn.name_of(a))
    if not (
        isinstance(e, Call)
        and e.ufunc  # (not on plain numbers: `math.exp(t)`)
        and e.args[0] == operand
        and (first or all(map(fn.printer.plain, e.parts()[2:])))
    ):
        return None
    return Eval(Call(e.fn, e.args, e.kwargs + (("out", Name(name)),), e.ufunc))


def accumulate(fn: Lowering, n: Node) -> list[Stmt] | None:
    """A sum written the way an expert accumulates one: `y = a @ b` then `y += c`, so that the
    sum takes over the new array of one term instead of allocating its own (fresh large arrays
    cost page faults too). The first term is worked out in that array, and a term that would
    make several large temporaries in one of its own (`_worked_out`). None where that does
    not apply."""
    found = _terms(fn, n)
    if found is None:
        return None
    node, terms = found
    name = fn.name_of(n)
    lines = _worked_in(fn, n, node, name)
    for level, other in reversed(terms):
        operands: dict[Node, str] = {}
        lines += _worked_out(fn, n, other, {}, operands)
        code = fn.code(other, bound=operands)
        lines.append(AugAssign(name, OPS[level.op].augmented, fn.operand(level, other, code)))
    return lines if all(map(fn.printer.fits, lines)) else None


def _terms(fn: Lowering, n: Node) -> tuple[Node, list[tuple[Node, Node]]] | None:
    """The sum n as the term whose new array it takes over, and the terms it then adds (or
    subtracts) level by level; None where no term can be taken over."""
    if not _sum(n) or not n.ndim or n.dtype != "float" or n in fn.born_weak:
        return None
    terms, node = [], n
    while _sum(node) and (node is n or node not in fn.own_line):
        base, other = node.args
        if node.op == "add" and _takes_over(fn, other, n):
            # the second term instead where only it can take over, or it is a product of
            # matrices (`dW = X.T @ dh` then `dW += reg * W`, as CS231n writes it)
            if not _takes_over(fn, base, n) or (other.op == "matmul" != base.op):
                base, other = other, base
        if not _takes_over(fn, base, n):
            break
        terms.append((node, other))
        node = base
    if not terms or not _takes_over(fn, node, n):
        return None
    return node, terms


def _worked_in(fn: Lowering, n: Node, v: Node, name: str) -> list[Stmt]:
    """`name = v`, v worked out in that new array where its expression would make several
    large temporaries (`t = x * x`, `t *= k`, ...)."""
    found = _spine(fn, v, lambda a, level: False) if OPS[v.op].elementwise else None
    lines = _chain(fn, n, *found, name, {}) if found and _temporary(fn, n, v) else None
    return lines or [Assign(name, fn.code(v))]


def _sum(n: Node) -> bool:
    """A sum or a difference of two terms, which `a += b` and `a -= b` can accumulate."""
    return OPS[n.op].augmented in ("+", "-")


def _takes_over(fn: Lowering, a: Node, n: Node) -> bool:
    """Whether the sum n may write into a's array: a new array of n's shape and dtype that n
    alone uses (written inline), not a view of another."""
    return a not in fn.own_line and a.shape == n.shape and a.dtype == n.dtype and _new_array(fn, a)


def _new_array(fn: Lowering, a: Node, writable=lambda b: False) -> bool:
    """A new array, or a writable view of one (`np.transpose(w @ cols)`, not a window view)
    that only the view reads: a base written inline, or one with a line of its own that
    `writable` allows. A float made from masks and numbers alone (`born_weak`) is one where
    the code makes it in the graph's float dtype (`Lowering.expression`), not where it could
    be NumPy's float64 in a float32 function."""
    while is_view(a) and not OPS[a.op].read_only:
        b = a.args[0]
        if a in fn.born_weak or (b in fn.own_line and not writable(b)):
            return False
        a = b
    return (
        OPS[a.op].fresh
        and a.op not in fn.printer.aliases
        and not is_view(a)
        and (a not in fn.born_weak or fn.facts.dtype is not None)
    )
