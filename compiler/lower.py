"""Stage 6a: lowering, one generated function's nodes -> statements (`expr.Stmt`), as data.

This module owns a function's names (`Namer`), which values get a line of their own and which
are written inline in the line that uses them (`Lowering.own_line`), each line's expression (an
operation's emission, `OpDef.emit`, on its operands' expressions), the parts of a long line that
get a line of their own, and the comment that ties a block of the backward pass to the forward
line it differentiates. Where a line works in the array of another value is planned by
`inplace.py`; the printer (`printer.py`) writes the statements. `backward_steps` gives `bpc
explain` the backward lines in the notation of the lecture note.
"""

from __future__ import annotations

import functools
import keyword
from dataclasses import dataclass, field, replace

from . import inplace, signature
from .diagnostics import source_lines
from .dims import Dim
from .expr import (
    ALL,
    ARRAY,
    Assign,
    AugAssign,
    BinOp,
    Call,
    Comment,
    Eval,
    Expr,
    For,
    Lit,
    Name,
    Ref,
    Size,
    Stmt,
    Store,
    Subscript,
    Tuple,
    array,
    builtin,
    helper,
    method,
)
from .expr import List as ListExpr
from .ir import OPS, Graph, Node, is_view, smaller
from .ops import At, Facts, dtype_of
from .ops.loop import counts, results_of, width, writes_over_reads
from .printer import HELPERS, NumPyPrinter

MAX_INLINE_DEPTH = 6  # a value nested deeper gets a line of its own
# NumPy's ufunc of each arithmetic operator, which takes the dtype of its result (`dtype=`)
UFUNCS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}

# Names the generated code uses for itself: a value never takes one.
RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | NumPyPrinter.reserved
    | {
        "re",
        "functools",
        "NamedTuple",
        "dout",
        "cache",
        "getattr",  # (the argument checks call it)
        "_seen",
        "_remember",
        "_array",
        "_floats",
        "_mismatch",
        "_shaped",
        "_unsolved",
        "_unmet",
        "_cached",
        "_dout",
        "_douts",
        "_dout_checked",
        "_check_dout",
        "_Cache",
        "_OnceCache",  # (used_up.py.j2's)
        "_log1p_corrected",  # (log1p_unit.py.j2's, as the next two)
        "_vectorized",
        "_LOG1P_F32_VECTORIZED",
        "_sigmoid_kernel",  # (sigmoid.py.j2's, and fast_tanh.py.j2's next)
        "_fast_tanh_kernel",
    }
    | set(HELPERS)
)


@dataclass
class Namer:
    """Python identifiers for values, unique within one graph's functions."""

    taken: set[str]
    names: dict[object, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # the next suffix to try, per base

    def get(self, key, hint: str) -> str:
        if key not in self.names:
            base = hint if hint.isidentifier() else "t"
            base = base if base not in RESERVED and not keyword.iskeyword(base) else base + "_"
            name, k = base, self.counters.get(base, 1)
            while name in self.taken or name in RESERVED:
                name, k = f"{base}_{k}", k + 1
            self.counters[base] = k
            self.taken.add(name)
            self.names[key] = name
        return self.names[key]


@dataclass(frozen=True)
class Values:
    """What every function of one graph knows of its values. Float values whose dtype comes
    from the caller's float arrays (or from an array dout) are `strong`; 0-d values made from
    0-d parameters and douts (plain numbers, or NumPy scalars) follow whatever the caller
    passed. A float value made from constants, dimensions, integers and masks alone would be
    float64 in NumPy: it is `born_weak`, and takes the graph's dtype. `uses` counts the
    values' uses."""

    strong: frozenset[Node]
    born_weak: frozenset[Node]
    uses: dict[Node, int]

    @staticmethod
    def of(graph: Graph, strong_leaves=frozenset()) -> Values:
        """`strong_leaves`: a loop body's 0-d params that stand for strong values outside."""
        strong: set[Node] = set()
        born_weak: set[Node] = set()
        plain: set[Node] = set()
        for n in graph.nodes:
            t = n.type
            if n.op == "loop":  # (its results are as strong as what it starts from)
                (strong if not strong.isdisjoint(n.args) else plain).add(n)
                continue
            if t.dtype != "float" or t.static or n.op == "full_like":
                continue
            if n.op in ("param", "dout"):
                (strong if t.shape or n in strong_leaves else plain).add(n)
            elif n.op == "result":
                (strong if n.args[0] in strong else plain).add(n)
            elif not strong.isdisjoint(n.args):
                strong.add(n)
            elif not t.shape and not plain.isdisjoint(n.args):
                plain.add(n)
            else:
                born_weak.add(n)
                strong.add(n)
        uses: dict[Node, int] = {}
        for n in graph.nodes:
            for a in n.args:
                uses[a] = uses.get(a, 0) + 1
        return Values(frozenset(strong), frozenset(born_weak), uses)


def _reduced_before(graph: Graph, own_line: set[Node], keep: set[Node]) -> set[Node]:
    """The reductions that get a line of their own where the schedule placed them
    (`optimize.order`): a value smaller than an array it reads, read once, by a line that comes
    after another reader of that array. Written inline in its user's line it would read the
    array after that reader, which could then not work in it (`dx -= t.sum(axis=1)` after `t /=
    s` is not possible; `t_6 = t.sum(axis=1)` first makes it so). Only an array that the
    function may write counts: no parameter, upstream gradient, value it keeps, nor (for a
    backward line) the forward's."""
    at = {n: i for i, n in enumerate(graph.nodes)}
    forward = graph.forward
    readers: dict[Node, list[Node]] = {}
    for n in graph.nodes:
        for a in dict.fromkeys(n.args):
            readers.setdefault(a, []).append(n)

    def line(n: Node) -> Node:  # (the line a value read once is written in)
        while n not in own_line and len(readers.get(n, ())) == 1:
            n = readers[n][0]
        return n

    def reduced(n: Node, a: Node) -> bool:  # (n smaller than a, which n may be worked in)
        if a.op in ("param", "dout") or a in keep or (a in forward and n not in forward):
            return False
        return smaller(n, a)

    found = set()
    for n in graph.nodes:
        if n in own_line or len(readers.get(n, ())) != 1 or n.op in ("loop", "result"):
            continue
        written = at[line(n)]
        for a in n.args:
            if reduced(n, a) and any(at[n] < at[r] < written for r in readers[a] if r is not n):
                found.add(n)
    return found


class Lowering:
    """Writes the body statements of one generated function from a scheduled list of nodes."""

    def __init__(
        self,
        graph: Graph,
        namer: Namer,
        dims: dict[str, str],
        keep: set[Node],
        values: Values | None = None,
        printer: type[NumPyPrinter] = NumPyPrinter,
    ):
        self.graph = graph
        self.namer = namer
        self.printer = printer(dims)
        values = values or Values.of(graph)
        self.strong, self.born_weak = values.strong, values.born_weak
        self.dtype_of = dtype_source(graph.inputs, namer)
        self.uses = uses = values.uses
        self.own_line: set[Node] = set()
        depth: dict[Node, int] = {}
        for n in graph.nodes:
            op = n.op
            if op == "const" or op == "dim":
                continue
            d = 1 + max([depth.get(a, 0) for a in n.args]) if n.args else 1
            if _position_arithmetic(n) and n not in keep:  # (`hs[:, t - 1] if t > 0 else h0`)
                depth[n] = d
                continue
            if (
                op == "param"
                or op == "dout"
                or op == "result"
                or n.hint
                or uses.get(n, 0) != 1
                or n in keep
                or d > MAX_INLINE_DEPTH
            ):
                self.own_line.add(n)
                d = 0
            depth[n] = d
        for n in graph.nodes:  # a loop is statements of its own, and it names its arguments
            if n.op == "loop":
                self.own_line.add(n)
                self.own_line.update(a for a in n.args if a.op not in ("const", "dim"))
        self.own_line |= _reduced_before(graph, self.own_line, keep)
        self.keep = keep
        self.spent: frozenset[Node] = frozenset()  # cache entries the backward uses up (`plan`)
        self.loop_names: dict[Node, list[str]] = {}  # (`name_loop`)
        self.depth = 0  # how many loops this function's lines are inside
        self.whole: set[Node] = set()  # values written in one statement, never in place
        self.in_place: dict[Node, Node] = {}  # a line that writes into its operand's array
        self.beside: dict[Node, dict] = {}  # and its operands worked out in others' (`_beside`)
        self.slots: dict[Node, Subscript] = {}  # a loop body's value made in its slot (`_in_slot`)
        self.in_slot: set[Node] = set()  # those that were: no slot write after the body
        self._names: dict[str, Name] = {}  # (one expression for each name)

    @property
    def dtype_of(self) -> Expr | None:
        """Where the code finds the graph's float dtype (`x.dtype`), None where it cannot."""
        return self.facts.dtype

    @dtype_of.setter
    def dtype_of(self, dtype: Expr | None) -> None:
        functional = self.printer.functional
        self.facts = Facts(self.graph.name, dtype, self.strong, self.born_weak, functional)

    def name_of(self, n: Node) -> str:
        """n's Python name, given the first time it is asked for."""
        name = self.namer.names.get(n)
        if name is None:
            name = self.namer.get(n, n.hint or ("dout" if n.op == "dout" else "t"))
        return name

    def code(self, n: Node, notation: bool = False, bound: dict[Node, str] | None = None) -> Expr:
        """n's value: its name where it has a line of its own (or where `bound` names the
        array that holds it), else its expression."""
        if bound and n in bound:
            return Name(bound[n])
        if n in self.own_line:
            name = self.name_of(n)
            e = self._names.get(name)
            if e is None:
                e = self._names[name] = Name(name)
            return e
        return self.expression(n, notation, bound)

    def expression(
        self, n: Node, notation: bool = False, bound: dict[Node, str] | None = None
    ) -> Expr:
        """n's own expression, where n has a line of its own too; in the notation of the
        lecture note (`OpDef.math`) with `notation`."""
        args = [self.operand(n, a, self.code(a, notation, bound)) for a in n.args]
        op = OPS[n.op]
        emit = op.math if notation and op.math else op.emit
        e = emit(At(n, self.facts), *args, **n.kw)
        dtype = self.facts.dtype
        if dtype is not None and n in self.born_weak and not op.own_dtype:
            # Plain numbers and masks alone make float64: give the result the graph's float dtype.
            if not n.ndim:
                return method(dtype, "type", e)
            if e.__class__ is BinOp and e.op in UFUNCS and not self.printer.functional:
                return _made_in(e, dtype)
            if n.op == "broadcast_to" and not self.printer.functional:
                # a number (or mask) everywhere: `np.full` makes it in the dtype in one step,
                # where a broadcast's `astype` copy took 4.4x as long (2.9 us at 64 elements)
                return array("full", e.args[1], e.args[0], dtype=dtype)
            return method(e, "astype", dtype)
        return e

    def operand(self, n: Node, a: Node, e: Expr) -> Expr:
        """e, the code of n's operand a, cast to the graph's float dtype where a is a mask that
        the target's library may refuse there: the array API leaves a mask in arithmetic
        undefined, and every library adds and multiplies one, but PyTorch refuses `x - mask`."""
        op = OPS[n.op]
        if (
            self.printer.functional
            and a.dtype == "bool"
            and op.augmented
            and not op.commutes
            and n.dtype == "float"
            and self.facts.dtype
        ):
            return method(e, "astype", self.facts.dtype)
        return e

    def define(self, n: Node) -> list[tuple[Node, Assign]]:
        """`name = expression` for n, after the lines of the parts of the expression that get a
        line of their own so that no line is longer than black's limit (as an expert would
        name a part rather than wrap an expression over several lines)."""
        out = []
        while True:
            line = Assign(self.name_of(n), self.expression(n))
            self.own_line.add(n)
            inline = [a for a in n.args if a not in self.own_line and a.op not in ("const", "dim")]
            if self.printer.fits(line) or not inline:
                return out + [(n, s) for s in _numbers_added_in_place(line)]
            widest = max(inline, key=lambda a: len(self.printer.text(self.code(a))))
            summed = self._accumulate(widest)  # (`t = w @ cols`, `t += b`)
            if summed:
                self.own_line.add(widest)
                out += [(widest, s) for s in summed]
            else:
                out += self.define(widest)

    def lines(self, nodes, comments: bool) -> list[Stmt]:
        """The statements of the values among `nodes` that have a line of their own, in order:
        worked in place where planned, accumulated where a sum can be, else assigned; with
        `comments`, each block under the forward line it comes from."""
        out, last = [], None
        for n in nodes:
            if n not in self.own_line or n.op in ("param", "dout", "result"):
                continue
            where = (n.loc.line, n.loc.fn) if n.loc else None
            if comments and where and where != last:
                out.append(Comment(source_line(self.graph.source, *where)))
                last = where
            if n.op == "loop":
                out += loop_lines(self, n, comments)
                continue
            if n in self.whole:  # (in one line, or worked out in a new array: `_rebinds_safely`)
                planned = inplace.steps(self, n) if n in self.in_place else None
                made = planned or [s for _, s in self.define(n)]
            else:
                steps = inplace.steps(self, n) if n in self.in_place else None
                made = steps or self._accumulate(n) or [s for _, s in self.define(n)]
            out += self._in_slot(n, made) if n in self.slots else made
        return out

    def _in_slot(self, n: Node, made: list[Stmt]) -> list[Stmt]:
        """A loop body's value made in the slot it is written to, where its line's first
        statement takes `out=`: `h = np.tanh(c, out=hs[:, t])`, `c = np.multiply(f, c,
        out=cs[t])` then `c += i * g`, as an expert fills a stack; the slot write after the
        body is then left out. (The body never reads such a stack: `_slot_targets`.)"""
        slot = self.slots[n]
        name = self.name_of(n)
        k = next((i for i, s in enumerate(made) if name in s.targets()), None)
        if k is None or not isinstance(made[k], Assign) or made[k].target != name:
            return made
        value = made[k].value
        if isinstance(value, BinOp) and value.op in UFUNCS:
            value = array(UFUNCS[value.op], value.left, value.right, ufunc=True)
        elif not (isinstance(value, Call) and value.ufunc):
            return made
        if any(key == "out" for key, _ in value.kwargs):
            return made
        self.in_slot.add(n)
        value = Call(value.fn, value.args, value.kwargs + (("out", slot),), True)
        return [*made[:k], Assign(name, value), *made[k + 1 :]]

    def _accumulate(self, n: Node) -> list[Stmt] | None:
        """n's sum accumulated in the array of a term (`inplace.accumulate`)."""
        return inplace.accumulate(self, n)

    def reads(self, n: Node) -> set[Node]:
        """The named values that n's line reads."""
        found, stack = set(), list(n.args)
        while stack:
            a = stack.pop()
            if a in self.own_line:
                found.add(a)
            else:
                stack.extend(a.args)
        return found

    def plan(self, nodes) -> None:
        """Before writing the lines of `nodes`: which of them work in the array of a value they
        read for the last time (`inplace.plan`); and the variables of its loops' results."""
        for n in nodes:
            if n.op == "loop":
                name_loop(self, n)
        inplace.plan(self, nodes)


def name_loop(fn: Lowering, n: Node) -> list[str]:
    """The variable of each of a loop's results, chosen before any line is written: a carried
    value's is its name in the body (`h`, `dh`) unless it is an output's; a written array or
    a sum takes the name of its result, and where the loop works in the array it starts from
    (a new array nothing else reads, `hs = np.zeros(...)`), that array takes the name too."""
    if n in fn.loop_names:
        return fn.loop_names[n]
    kw = n.kw
    kinds, params = kw["kinds"], kw["body"].params
    results = results_of(n, fn.graph.nodes)
    namer, names = fn.namer, []
    for j, (kind, init) in enumerate(zip(kinds, n.args)):
        res = results.get(j)
        if res is not None and res in namer.names:
            name = namer.names[res]
        elif kind[0] == "carry":
            name = namer.get(("loop", n, j), params[1 + j].hint or "v")
        else:
            name = namer.get(("loop", n, j), (res.hint if res is not None else None) or "acc")
        if res is not None:
            namer.names[res] = name
        if _owned(fn, init, n, j) and init not in namer.names:
            namer.names[init] = name
        names.append(name)
    namer.get(("loop variable", fn.depth), params[0].hint or "t")  # (first, so `t` is its)
    fn.loop_names[n] = names
    return names


def _position_arithmetic(n: Node) -> bool:
    """Integer arithmetic on a loop variable (`t - 1`, `t > 0`): written where it is used,
    however often, as an expert writes positions."""
    return (
        n.ndim == 0
        and n.dtype in ("int", "bool")
        and not n.type.static
        and OPS[n.op].elementwise
        and all(a.ndim == 0 and a.dtype == "int" for a in n.args)
    )


def loop_lines(fn: Lowering, n: Node, comments: bool) -> list[Stmt]:
    """A loop as an expert writes it: each carried value bound to its name before the loop
    (`h = h0`), each written array made (or copied) before it, then `for t in range(T):` with
    the body's lines, its slot writes (`hs[:, t] = h`) and sums (`dWh += ...`), and the carried
    values' new values under their own names. Each name of the body is unique in the function:
    the body's params are named by the values they are bound to."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    inits, outer = n.args[: len(kinds)], n.args[len(kinds) :]
    namer, lines = fn.namer, []
    params = body.params
    names = name_loop(fn, n)
    for j, (kind, init, name) in enumerate(zip(kinds, inits, names)):
        start = fn.code(init)
        if kind[0] == "carry" and init.type.static and params[1 + j].dtype == "float":
            # a number: of the graph's float dtype, as the carried value is after a step
            # (`loss = x.dtype.type(0)`, which stays a NumPy number when the loop runs no step)
            if fn.dtype_of is not None:
                start = method(fn.dtype_of, "type", start)
        if start != Name(name):
            lines.append(Assign(name, start if kind[0] == "carry" else method(start, "copy")))
    for p, name in zip(params[1 : 1 + carried], names):
        namer.names[p] = name
    for p, a in zip(params[1 + carried :], outer):
        namer.names[p] = fn.name_of(a)
    depth = fn.depth
    var = namer.get(("loop variable", depth), params[0].hint or "t")
    namer.names[params[0]] = var
    graph = _body_graph(fn.graph, body)
    sub = Lowering(
        graph,
        namer,
        fn.printer.sizes,
        set(body.results),
        _body_values(fn, n, graph),
        type(fn.printer),
    )
    sub.dtype_of = fn.dtype_of
    sub.depth = depth + 1
    sums = _inline_sums(sub, body, kinds, carried)
    nexts = _carry_names(sub, body, carried, names)
    sub.plan(body.nodes)
    if not fn.printer.functional:
        sub.slots = _slot_targets(fn, sub, n, names)
    inner = sub.lines(body.nodes, comments)
    after: list[Stmt] = []
    r = carried
    for j, (kind, name) in enumerate(zip(kinds[carried:], names[carried:]), carried):
        value = body.results[r]
        value = sub.expression(value) if value in sums else sub.code(value)
        if kind[0] == "slot":
            positions = dict(zip(kind[1], body.results[r + 1 : r + width(kind)]))
            if body.results[r] in sub.in_slot and sub.slots[body.results[r]].obj == Name(name):
                r += width(kind)
                continue  # (made in its slot)
            add = kind[2] == "add" and not _first_write(fn, inits[j], positions, params[0])
            write = _collected if fn.printer.functional else _stored
            inner.append(write(sub, name, positions, value, add, lines, after))
            r += width(kind)
        elif fn.printer.functional:  # (`dWx = dWx + ...`: the sum's array is never written)
            inner.append(Assign(name, BinOp("+", Name(name), value)))
            r += 1
        else:
            inner.append(AugAssign(name, "+", value))
            r += 1
    moved = [
        (name, sub.code(v)) for name, v in zip(names, body.results[:carried]) if v not in nexts
    ]
    moved = [(name, v) for name, v in moved if v != Name(name)]
    if len(moved) == 1:
        inner.append(Assign(*moved[0]))
    elif moved:
        inner.append(Assign(tuple(m for m, _ in moved), Tuple(tuple(v for _, v in moved))))
    sizes = [Size(d) for d in (kw["start"], kw["stop"])]
    over = builtin("range", *(sizes if kw["start"] != Dim.of(0) else sizes[1:]))
    if kw.get("reverse"):
        over = builtin("reversed", over)
    return lines + [For(var, over, tuple(inner))] + after


def _slot_targets(fn: Lowering, sub: Lowering, n: Node, names: list[str]) -> dict[Node, Subscript]:
    """The values of loop n's body that can be made in the slot they are written to (see
    `Lowering._in_slot`): a new float array the body makes, written to one slot at the loop
    variable (set, or added to zeros of the loop's own once), and read by no other write or
    sum of the loop. Not into a stack made over an array the body reads (`hs` over `xwx`,
    `optimize/stacks.py`): a line after the value's may still read the slot's old value."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    t = body.params[0]
    written = body.results[carried:]
    out: dict[Node, Subscript] = {}
    r = carried
    for j, kind in enumerate(kinds):
        if kind[0] == "carry":
            continue
        v, at = body.results[r], body.results[r + 1 : r + width(kind)]
        r += width(kind)
        if kind[0] != "slot" or list(at) != [t] * len(at):
            continue
        positions = dict(zip(kind[1], at))
        if kind[2] == "add" and not _first_write(fn, n.args[j], positions, t):
            continue
        if writes_over_reads(n, j, n.args[j]) != 0:  # (the body reads the stack: `hs` over `xwx`)
            continue
        if (
            v.op in ("param", "result", "loop")
            or is_view(v)
            or not OPS[v.op].fresh
            or OPS[v.op].leaf
            or v.dtype != "float"
            or not v.ndim
            or v in sub.born_weak
            or written.count(v) != 1
        ):
            continue
        items = [sub.code(t) if a in positions else ALL for a in range(max(positions) + 1)]
        out[v] = Subscript(Name(names[j]), tuple(items))
    return out


# The ufunc of an arithmetic operator, for a value made in its slot: `np.multiply(f, c, out=...)`.
UFUNCS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


def _made_in(e: BinOp, dtype: Expr) -> Expr:
    """Operations `e` on masks and numbers alone, made in the graph's float `dtype`: the first
    of them as a ufunc call in it, `np.divide(t > 0, N, dtype=x.dtype)`, which makes no float64
    array and no copy (in float32 a cast takes 1.9 ms at 10**6), and those that follow it with a
    number, `np.multiply(0.99, x > 0, dtype=x.dtype) + 0.01`, in that array's dtype (where
    `np.add(0.99 * (x > 0), 0.01, dtype=...)` made a float64 array, then another); a line of
    its own adds the number in place (`_numbers_added_in_place`)."""
    if e.left.__class__ is BinOp and e.left.op in UFUNCS and e.right.__class__ is Lit:
        return BinOp(e.op, _made_in(e.left, dtype), e.right)
    return array(UFUNCS[e.op], e.left, e.right, dtype=dtype)


def _numbers_added_in_place(line: Assign) -> list[Stmt]:
    """`t = np.multiply(0.99, x > 0, dtype=x.dtype) + 0.01` (`_made_in`) as `t =
    np.multiply(0.99, x > 0, dtype=x.dtype)` then `t += 0.01`, as an expert writes it: NumPy
    adds a Python number to a temporary in the temporary's memory in float64 alone (0.76
    against 0.62 ms at 10**6 float32s, and an array more); else the line as it is."""
    steps, e = [], line.value
    while e.__class__ is BinOp and e.op in UFUNCS and e.right.__class__ is Lit:
        steps.append(AugAssign(line.target, e.op, e.right))
        e = e.left
    made = (
        e.__class__ is Call
        and e.fn.__class__ is Ref
        and e.fn.module == ARRAY
        and e.fn.name in UFUNCS.values()
        and any(key == "dtype" for key, _ in e.kwargs)
    )
    if not steps or not made or not isinstance(line.target, str):
        return [line]
    return [Assign(line.target, e), *reversed(steps)]


def _stored(sub: Lowering, name: str, positions: dict, value: Expr, add: bool, *_) -> Stmt:
    """A slot write in the array itself: `hs[:, t] = h`, `dx[:, t] += ...`."""
    items = [sub.code(positions[a]) if a in positions else ALL for a in range(max(positions) + 1)]
    return Store(Subscript(Name(name), tuple(items)), value, "+" if add else "")


def _collected(
    sub: Lowering, name: str, positions: dict, value: Expr, add: bool, before: list, after: list
) -> Stmt:
    """A slot write of functional code: the iteration's position and value appended to a list
    (`hs_slots.append((t, h))`, made empty before the loop), and after the loop the array with
    every slot written at once (`hs = _slots(hs, hs_slots, (1,))`: stacked where the positions
    run in order, its value before the loop where the loop ran no step)."""
    slots = sub.namer.get(("slots", name), name + "_slots")
    at = [sub.code(positions[a]) for a in sorted(positions)]
    where = at[0] if len(at) == 1 else Tuple(tuple(at))
    before.append(Assign(slots, ListExpr(())))
    axes = Tuple(tuple(Lit(a) for a in sorted(positions)))
    written = helper("_slots", Name(name), Name(slots), axes, *([Lit(True)] if add else []))
    after.append(Assign(name, written))
    return Eval(method(Name(slots), "append", Tuple((where, value))))


def _body_values(fn: Lowering, n: Node, graph: Graph) -> Values:
    """What a loop body knows of its values: a param is strong (its dtype the caller's) where
    the value it is bound to is, a carried one also where an iteration makes it so."""
    body = n.attr("body")
    kinds = n.attr("kinds")
    carried, _ = counts(kinds)
    params = body.params
    leaves = {p for p, a in zip(params[1 + carried :], n.args[len(kinds) :]) if a in fn.strong}
    leaves |= {p for p, a in zip(params[1 : 1 + carried], n.args) if a in fn.strong}
    while True:
        values = Values.of(graph, frozenset(leaves))
        more = {
            p
            for p, r in zip(params[1 : 1 + carried], body.results)
            if r in values.strong and p not in leaves
        }
        if not more:
            return values
        leaves |= more


def _inline_sums(sub: Lowering, body, kinds, carried: int) -> set[Node]:
    """The values a sum or a slot addition adds that nothing else in the body reads: written
    in the augmented assignment itself (`dWx += x[:, t].T @ da`). What they read is then
    never worked in place, since their line comes last."""
    added, r = [], carried
    for kind in kinds[carried:]:
        if kind[0] == "sum" or kind[2] == "add":
            added.append(body.results[r])
        r += width(kind)
    others = [x for x in body.results if x not in added]
    inline = {
        v
        for v in added
        if v.op not in ("param", "loop", "result")
        and sub.uses.get(v, 0) == 0
        and added.count(v) == 1
        and v not in others
    }
    sub.own_line -= inline
    read, stack = set(), list(inline)
    while stack:  # (what their expressions read; a loop's arguments are read before it)
        m = stack.pop()
        if m not in read:
            read.add(m)
            stack.extend(m.args if m.op != "result" else ())
    sub.keep |= read
    return inline


def _first_write(fn: Lowering, init: Node, positions: dict, t: Node) -> bool:
    """Whether each iteration's addition to a slot is the first to it, into zeros the loop owns:
    `dx[:, t] = ...` then does what `+=` would."""
    from .loops import distinct

    return (
        init.op == "zeros" and _owned(fn, init) and any(distinct(p, t) for p in positions.values())
    )


def _owned(fn: Lowering, init: Node, loop: Node | None = None, j: int = 0) -> bool:
    """Whether a loop may write into the array of `init`, its written array's value before the
    loop: a new array this function made, which nothing else reads or keeps; but the loop
    itself where it reads `init` only at each step's own slot (`ops.loop.writes_over_reads`:
    `hs` written over `xwx`, `optimize/stacks.py`)."""
    also = writes_over_reads(loop, j, init) if loop is not None else 0
    if also is None or fn.uses.get(init, 0) != 1 + also or init in fn.keep:
        return False
    while also and is_view(init) and not OPS[init.op].read_only:  # ((x_rows @ Wx).reshape(...))
        init = init.args[0]
        if fn.uses.get(init, 0) != 1 or init in fn.keep:
            return False
    return (
        OPS[init.op].fresh
        and not is_view(init)
        and not OPS[init.op].leaf
        and init.op not in ("loop", "result")
    )


def _body_graph(graph: Graph, body) -> Graph:
    """A loop body as a graph of its own, for its lowering."""
    return Graph(
        name=graph.name,
        loc=graph.loc,
        params=(),
        inputs=body.params,
        output_names=(),
        outputs=body.results,
        wrt=(),
        nodes=body.nodes,
        source=graph.source,
    )


def _carry_names(sub: Lowering, body, carried: int, names: list[str]) -> set[Node]:
    """The carried values' new values that take the carried name itself (`h = np.tanh(...)`):
    those after whose line nothing reads the old value. The others are moved at the end."""
    params = body.params[1 : 1 + carried]
    lines = [m for m in body.nodes if m in sub.own_line and m.op not in ("param", "result")]
    position = {m: i for i, m in enumerate(lines)}
    tail = list(body.results[carried:])  # (the slot writes and sums come after every line)
    tail += [r for r in body.results[:carried] if r.op == "param"]  # (moved at the end)
    done: set[Node] = set()
    for p, v, name in zip(params, body.results[:carried], names):
        if v not in position or v in done or v in sub.namer.names:
            continue
        later = lines[position[v] + 1 :]
        read_later = any(p in sub.reads(m) for m in later) or any(
            p is x or (x not in sub.own_line and p in sub.reads(x)) for x in tail
        )
        if not read_later:  # (its own line reads the old value: one statement, `h = ... h`)
            sub.namer.names[v] = name
            sub.whole.add(v)
            done.add(v)
    return done


@dataclass(frozen=True)
class Line:
    """One backward line of `bpc explain`: `target op expr`, where `op` is `=`, or `+=` for a
    loop's sum; `index` is a written slot's position (`dx[:, t] = ...`); `node` the value;
    `plain` where the target is an array that holds no gradient yet (a stack that starts as a
    local derivative, `dxwx = 1 - hs * hs`)."""

    target: str
    expr: Expr
    node: Node
    op: str = "="
    index: tuple[Expr, ...] | None = None
    plain: bool = False


@dataclass(frozen=True)
class Step:
    """The backward lines that come from one forward statement, in the notation of the lecture
    note, and the names of the sizes the expressions use."""

    line: int
    fn: str | None
    statement: str
    lines: tuple[Line, ...]
    sizes: dict[str, str] = field(default_factory=dict, compare=False)
    reads: tuple[Line, ...] = ()  # lines of no statement that its lines read (`h = hs[:, t]`)


@dataclass(frozen=True)
class LoopStep:
    """The backward of a forward loop (`statement`, `for t in range(T)`, at `line`, None where
    no node kept the line): the loop `for var in over:` (`reversed(range(T))`); the lines of no
    statement before it that it reads (`reads`, in a body); the gradients it starts from
    (`starts`: `dh = 0`, the carried gradients, sums and written arrays); what each iteration
    does before any line of a statement (`first`: the gradient of the slot written added to
    the carried one, `dh_1 = dh + dout[:, t]`; values read back from the cache); the steps of
    its body, statement by statement in the order it runs them (a loop nested in it a step of
    its own); the lines that end an iteration (`ends`: carried gradients moved to their
    names, sums and slot writes told with no statement); and the lines after the loop that
    come from no statement (`after`: the gradients of a product the optimizer took out of the
    loop). `binds` pairs each body param with the outside value it stands for."""

    line: int | None
    fn: str | None
    statement: str
    var: str
    over: Expr
    starts: tuple[Line, ...]
    first: tuple[Line, ...]
    steps: tuple[Step | LoopStep, ...]
    ends: tuple[Line, ...]
    after: tuple[Line, ...] = ()
    binds: tuple[tuple[Node, Node], ...] = ()
    sizes: dict[str, str] = field(default_factory=dict, compare=False)
    reads: tuple[Line, ...] = ()  # lines of no statement before the loop that it reads


def backward_steps(graph: Graph) -> list[Step | LoopStep]:
    """The backward pass of a differentiated, optimized graph, as the emitter writes it, grouped
    by the forward statement each line comes from (for `bpc explain`); a backward loop is a
    step of its own, with the steps of its body."""
    namer = Namer(set())
    for n in graph.inputs:
        namer.names[n] = namer.get(("param", n.attr("name")), n.attr("name"))
    dims = {d: namer.get(("dim", d), d) for d in signature.order(graph.params)}
    for n in graph.douts:
        namer.names[n] = "dout" if len(graph.douts) == 1 else namer.get(n, n.hint)
    fn = Lowering(graph, namer, dims, set(graph.outputs) | set(graph.grads))
    forward = graph.forward - graph.hoisted  # (told as the backward's: a gradient's factor)
    steps = _steps(fn, [n for n in graph.nodes if n not in forward], dims, body=False)[1]
    return _forward_gradients(fn, graph, forward, steps, dims)


def _forward_gradients(fn: Lowering, graph: Graph, forward, steps: list, dims) -> list:
    """`steps` with each gradient that is a value the forward computes (`exp(x)` of `sum(exp(x))`,
    an ELU's `exp(min(x, 0))`), which no backward line makes, told by the statement that
    computes it, as its expression: `dy/dx = exp(x)`."""
    for name, g in zip(graph.wrt, graph.grads):
        if g not in forward or g.op in ("param", "dout") or g.loc is None:
            continue
        line = Line(f"d{name}", fn.expression(g, notation=True), g)
        key = (g.loc.line, g.loc.fn)
        at = next((i for i, s in enumerate(steps) if (s.line, s.fn) == key), None)
        if at is None or not isinstance(steps[at], Step):
            text = source_line(graph.source, key[0], None)
            later = [i for i, s in enumerate(steps) if s.line is not None and s.line < key[0]]
            steps.insert(later[0] if later else len(steps), Step(*key, text, (line,), dims))
        else:
            steps[at] = replace(steps[at], lines=steps[at].lines + (line,))
    return steps


def _steps(fn: Lowering, nodes, dims: dict[str, str], body: bool):
    """The lines of `nodes` that have a line of their own, grouped into steps by the forward
    statement each comes from, and a step for each loop; a loop's starting zeros are told with
    the loop. A line of no statement (a value read back from the cache, its position, or one
    the optimizer made) goes after a loop with the loop's `after`; in a loop body, before any
    step, with what each iteration does `first` (returned first), and after one, with the
    `reads` of the step after it (or of the last, at the end); elsewhere it is left out."""
    for n in nodes:
        if n.op == "loop":
            name_loop(fn, n)  # (before any line, as the module names them)
    starts = {a for n in nodes if n.op == "loop" for a in n.args[: len(n.attr("kinds"))]}
    first: tuple[Line, ...] = ()
    pending: tuple[Line, ...] = ()  # (lines of no statement, for the next step's reads)
    steps: list[Step | LoopStep] = []
    for n in nodes:
        if n not in fn.own_line or n.op in ("param", "dout", "result"):
            continue
        if n in starts and n.op == "zeros":
            continue  # (told as the loop's start, `dWh = 0`)
        if n.op == "loop":
            steps.append(replace(_loop_step(fn, n, dims), reads=pending))
            pending = ()
            continue
        last = steps[-1] if steps else None
        if n.loc is None and not (body or isinstance(last, LoopStep)):
            continue  # (as a graph's explanation always has)
        lines = tuple(
            Line(line.target, fn.expression(m, notation=True), m)
            for m, line in fn.define(n)
            if isinstance(line, Assign)
        )
        if n.loc is None:
            if isinstance(last, LoopStep) and not body:
                steps[-1] = replace(last, after=last.after + lines)
            elif last is None:
                first += lines
            else:
                pending += lines
            continue
        key = (n.loc.line, n.loc.fn)
        if not isinstance(last, Step) or (last.line, last.fn) != key:
            steps.append(Step(*key, source_line(fn.graph.source, key[0], None), (), dims))
        steps[-1] = _told(steps[-1], pending, lines)
        pending = ()
    if pending:
        steps[-1] = _told(steps[-1], pending, ())
    return first, _merged(fn, steps) if body else steps


def is_read(n: Node) -> bool:
    """Whether a backward line of no statement reads what the forward left (a value from the
    cache, its value before the step) or works out where (`t - 1`), rather than computing a
    gradient: a view, a choice of two values, or an integer or boolean."""
    return is_view(n) or n.op == "if_else" or n.dtype != "float"


def _told(step: Step | LoopStep, pending: tuple[Line, ...], lines: tuple[Line, ...]):
    """`step` with `lines` told after its own, and `pending`, lines of no statement before
    them: its reads, and the others (the slot's gradient added to a carried one) first."""
    if isinstance(step, LoopStep):  # (after a loop nested in a body: with what follows it)
        return replace(step, after=step.after + pending + lines)
    reads = tuple(line for line in pending if is_read(line.node))
    more = tuple(line for line in pending if not is_read(line.node))
    return replace(step, reads=step.reads + reads, lines=step.lines + more + lines)


def _merged(fn: Lowering, steps: list) -> list:
    """A loop body's steps, each told with an earlier step of its statement where it can move
    there (`_earlier`): the schedule interleaves a body's statements more than a graph's."""
    out: list = []
    for s in steps:
        i = _earlier(fn, out, s) if isinstance(s, Step) else None
        if i is None:
            out.append(s)
        else:
            out[i] = replace(out[i], reads=out[i].reads + s.reads, lines=out[i].lines + s.lines)
    return out


def _earlier(fn: Lowering, out: list, s: Step) -> int | None:
    """The last step of `out` with the statement of `s` such that no step after it tells a
    value that `s` reads, or reads a name that `s` assigns (a carried gradient's), if any."""
    own = s.reads + s.lines
    needs = {m for line in own for m in fn.reads(line.node)}
    assigns = {line.target for line in own}
    for i in reversed(range(len(out))):
        e = out[i]
        if not isinstance(e, Step):
            return None
        if (e.line, e.fn) == (s.line, s.fn):
            return i
        lines = e.reads + e.lines
        if needs & {line.node for line in lines}:
            return None
        if assigns & {fn.namer.names.get(m) for line in lines for m in fn.reads(line.node)}:
            return None
    return None


def _loop_step(fn: Lowering, n: Node, dims: dict[str, str]) -> LoopStep:
    """A backward loop as `bpc explain` tells it (`LoopStep`), named as the module names it:
    `loop_lines` writes it first, and a lowering of its body like the one it makes gives the
    notation of each line."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    params, inits, outer = body.params, n.args[: len(kinds)], n.args[len(kinds) :]
    loop = loop_lines(fn, n, comments=False)[-1]  # (names every value as the module does)
    names = name_loop(fn, n)
    sub = Lowering(_body_graph(fn.graph, body), fn.namer, fn.printer.sizes, set(body.results))
    sub.dtype_of = fn.dtype_of
    sub.depth = fn.depth + 1
    sums = _inline_sums(sub, body, kinds, carried)
    first, steps = _steps(sub, body.nodes, dims, body=True)
    starts, ends = [], []
    for j, (init, name) in enumerate(zip(inits, names)):
        value = Lit(0) if init.op == "zeros" else fn.code(init, notation=True)
        if value == Name(name) and j >= carried:  # (a stack over an array, `optimize/stacks.py`)
            value = fn.expression(init, notation=True)
            starts.append(Line(name, value, init, plain=True))  # (`dxwx = 1 - hs * hs`)
        elif value != Name(name):  # (the carried gradient's param, with the body's shape)
            starts.append(Line(name, value, params[1 + j] if j < carried else init))
    r = carried
    for j, (kind, name) in enumerate(zip(kinds[carried:], names[carried:]), carried):
        value = body.results[r]
        expr = sub.expression(value, True) if value in sums else sub.code(value, True)
        line = Line(name, expr, value, "+=")
        if kind[0] == "slot":
            at = dict(zip(kind[1], body.results[r + 1 : r + width(kind)]))
            index = tuple(sub.code(at[a], True) if a in at else ALL for a in range(max(at) + 1))
            add = kind[2] == "add" and not _first_write(fn, inits[j], at, params[0])
            line = replace(line, op="+=" if add else "=", index=index)
        _attach(sub, steps, ends, line, dims)
        r += width(kind)
    for name, v in zip(names, body.results[:carried]):
        if sub.code(v, True) != Name(name):
            ends.append(Line(name, sub.code(v, True), v))
    line, where, statement = _loop_statement(fn.graph, n)
    binds = tuple(zip(params[1:], (*inits[:carried], *outer)))
    return LoopStep(
        *(line, where, statement, loop.var, loop.over, tuple(starts), first, tuple(steps)),
        tuple(ends),
        binds=binds,
        sizes=dims,
    )


def _attach(sub: Lowering, steps: list, ends: list[Line], line: Line, dims) -> None:
    """A loop's sum or slot write, told with the step of the line of its value (`dWh += ...`
    under the statement that gives Wh its gradient) where that step tells all it reads, else
    with the lines that end each iteration."""
    v = line.node
    needs = sub.reads(v) | ({v} if v in sub.own_line else set())
    told = [{m.node for m in s.reads + s.lines} if isinstance(s, Step) else set() for s in steps]
    last = max((i for i, nodes in enumerate(told) if needs & nodes), default=-1)
    mine = [i for i, nodes in enumerate(told) if v in nodes]
    if not mine and v.loc is not None and v.op not in ("param", "result"):
        key = (v.loc.line, v.loc.fn)
        mine = [i for i, s in enumerate(steps) if isinstance(s, Step) and (s.line, s.fn) == key]
        if not mine and last == -1:
            statement = source_line(sub.graph.source, key[0], None)
            steps.append(Step(*key, statement, (), dims))
            mine = [len(steps) - 1]
    if mine and mine[-1] >= last:
        steps[mine[-1]] = replace(steps[mine[-1]], lines=steps[mine[-1]].lines + (line,))
    else:
        ends.append(line)


def _loop_statement(graph: Graph, n: Node) -> tuple[int | None, str | None, str]:
    """The line, fn and text of the `for` statement that a loop comes from (the backward loop
    of region `1/d1` from the forward loop of region `1`): the loop's own line, or its forward
    loop's, or that of the forward loop's results (the optimizer rebuilds a loop without a
    line); failing those, the statement as its attributes write it."""
    region = n.attr("body").params[0].attr("region") or ""
    regions = {region, region.rsplit("/d", 1)[0]}
    found = None
    for m in all_nodes(graph.nodes):
        loop = m.args[0] if m.op == "result" else m
        if loop.op == "loop" and loop.attr("body").params[0].attr("region") in regions:
            if m.loc is not None and (found is None or m is loop):
                found = m.loc
    if found is not None:
        text = source_line(graph.source, found.line, None).removesuffix("{").strip()
        if text.startswith("for "):
            return found.line, found.fn, text
    var = n.attr("body").params[0].hint or "t"
    start, stop = n.attr("start"), n.attr("stop")
    bounds = f"{stop}" if start == Dim.of(0) else f"{start}, {stop}"
    return None, None, f"for {var} in range({bounds})"


def all_nodes(nodes):
    """`nodes` and the nodes of the loop bodies among them, nested ones too."""
    for n in nodes:
        yield n
        if n.op == "loop":
            yield from all_nodes(n.attr("body").nodes)


def dtype_holder(values) -> Node | None:
    """The value whose dtype is the graph's float dtype: the first float array among `values`
    (parameters, or what the cache holds); failing that, the first 0-d float parameter."""
    arrays = [n for n in values if n.dtype == "float" and n.ndim]
    scalars = [n for n in values if n.dtype == "float" and n.op == "param"]
    return (arrays or scalars or [None])[0]


def dtype_source(values, namer: Namer) -> Expr | None:
    """Where generated code finds the graph's float dtype (see `dtype_holder`)."""
    n = dtype_holder(values)
    return None if n is None else dtype_of(Name(namer.names[n]), n.ndim)


@functools.lru_cache(maxsize=4)
def _lines(source: str) -> list[str]:
    return source_lines(source)


def source_line(source: str, line: int, fn: str | None) -> str:
    """The statement on `line`, with the lines it continues onto inside brackets."""
    lines = _lines(source)
    parts, depth, i = [], 0, line - 1
    while 0 <= i < len(lines):
        code = lines[i].split("#", 1)[0].strip()
        parts.append(code)
        depth += sum(code.count(c) for c in "([") - sum(code.count(c) for c in ")]")
        if depth <= 0:
            break
        i += 1
    text = " ".join(p for p in parts if p) or "?"
    return f"{text}  (in fn {fn})" if fn else text
