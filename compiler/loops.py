"""Reverse mode through a loop, at compile time: the backward of a loop is a loop.

For `for t in range(T) { body }`, the backward runs `for t in reversed(range(T))` over the
body's backward (`loop_vjp`):

- each carried value's gradient is carried back (`dh`, `dc`): it starts as the gradient of the
  carried value after the loop, and ends as the gradient of its value before the loop;
- each loop-invariant value's gradient is a sum over the iterations (`dWh += ...`), except
  where the body reads it slot by slot (`x[:, t]`): then each iteration adds its slot's
  gradient (`dx[:, t] += ...`), rather than adding a whole array of zeros with one slot filled;
- each written array's gradient is read slot by slot (`dhs[:, t]`).

What the backward body reads of the forward body's values (its residuals) comes, in order of
preference, from: the backward's own loop variable and loop-invariant values; values computed
from the loop variable by indexing and integer arithmetic alone (views and positions: free to
compute again); an array the forward loop writes anyway (`hs[:, t]` is the new `h`, `hs[:, t - 1]`
or `h0` its value before the step); an elementwise function of one value read so (`tanh(c)` of a
kept cell state: one pass over a step's values, as cheap as reading a stored copy back, and one
array fewer in the cache); and otherwise a stack that the forward loop fills, one slot per step
(`[T, ...]`), which the forward keeps in its cache. Anything else that costs arithmetic (a
product, a gate) is stored rather than computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .autodiff import backprop, spread
from .dims import Dim
from .ir import (
    OPS,
    Node,
    Region,
    Type,
    at,
    frontier,
    make,
    reachable,
    region_param,
    result,
    schedule,
)
from .ops.loop import counts, width


def _dim(d: Dim) -> Node:
    return Node("dim", (), (("dim", d),), Type("int", (), True))


@dataclass
class _Backward:
    """The backward loop being built: its region's params (the loop variable, the carried
    gradients, then the values it reads from outside, each bound to an outside node), the
    forward body's values it reads, mapped to its own nodes, and the stacks the forward loop
    must fill."""

    loop: Node
    region: str
    number: int
    t: Node
    carried: list[Node] = field(default_factory=list)
    outer: dict[Node, Node] = field(default_factory=dict)  # an outside node -> its param
    mapping: dict[Node, Node] = field(default_factory=dict)  # a forward body node -> its own
    stacks: list[tuple[Node, Node]] = field(default_factory=list)  # (value, position) to keep
    stacked: list[Node] = field(default_factory=list)  # the forward loop's new results
    zeros: int = 0  # how many arrays of zeros its results start from

    @property
    def kw(self) -> dict:
        return self.loop.kw

    def param_for(self, outside: Node, hint: str | None = None) -> Node:
        """The backward body's param bound to `outside`, a value computed outside the loop."""
        if outside not in self.outer:
            index = 1 + len(self.carried) + len(self.outer)
            name = hint or outside.hint or "v"
            self.outer[outside] = region_param(name, self.region, index, outside.type)
        return self.outer[outside]


def loop_vjp(g: tuple, loop: Node, active_args: list[bool], number: int):
    """The gradients of a loop's arguments, given those of its results (`g`, None where a
    result has none), as results of a backward loop; and the loop that replaces `loop` in the
    forward, which also fills the stacks the backward reads (None where it needs none)."""
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    nk = len(kinds)
    inits = loop.args[:nk]
    params = body.params
    t, cparams, oparams = params[0], params[1 : 1 + carried], params[1 + carried :]
    region = f"{t.attr('region')}/d{number}"
    active = _active_body(body, carried, active_args[:carried], active_args[nk:])
    b = _Backward(loop, region, number, region_param(t.hint or "t", region, 0, t.type))

    # the seeds: the carried gradients (params of the backward body), and each written slot's
    # gradient, read slot by slot from the written array's gradient
    seeds: dict[Node, Node] = {}
    for p, r in zip(cparams, body.results[:carried]):
        if p in active:
            dp = region_param("d" + (p.hint or "h"), region, 1 + len(b.carried), p.type)
            b.carried.append(dp)
            _seed(seeds, r, dp)
    slot_results = _slots(body, kinds, carried)
    for j, axes, value, positions in slot_results:
        if g[j] is not None and value in active:
            gs = b.param_for(g[j], "d" + (inits[j].hint or "ys"))
            _seed(seeds, value, _at(gs, axes, positions))
    sliced = {p for p, a in zip(oparams, active_args[nk:]) if a}
    grads, _, replaced, slots = backprop(body.nodes, seeds, active, number, sliced)
    names = {g: "d" + n.hint for n, g in grads.items() if n.hint and n.op not in ("const", "dim")}

    out_kinds, out_inits, out_results, targets = _backward_results(
        b, g, active, grads, slots, sliced, slot_results, active_args
    )
    if not out_kinds:
        return [None] * len(loop.args), None

    with at(None):  # (what the backward reads has no forward line of its own)
        _residuals(b, body, kinds, replaced, out_results, carried)
    backward_results = _rebuild(b, body, replaced, out_results, names)
    forward = _forward(loop, b, replaced)
    outside = list(b.outer)
    if forward is not None:  # (what the backward reads of the loop, it reads of its replacement)
        outside = [replace(o, args=(forward,)) if o.args[:1] == (loop,) else o for o in outside]
    bparams = (b.t, *b.carried, *b.outer.values())
    bbody = Region(bparams, backward_results)
    backward = make(
        "loop",
        *out_inits,
        *outside,
        body=bbody,
        kinds=tuple(out_kinds),
        start=kw["start"],
        stop=kw["stop"],
        reverse=True,
    )
    contributions: list[Node | None] = [None] * len(loop.args)
    for i, target in enumerate(targets):
        r = result(backward, i)
        contributions[target] = r if contributions[target] is None else contributions[target] + r
    return contributions, forward


def _backward_results(b: _Backward, g, active, grads, slots, sliced, slot_results, active_args):
    """The backward loop's results, each as what it is for the loop's arguments: its kinds,
    the values they start from, the body's results and the argument each is the gradient of."""
    loop = b.loop
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    nk = len(kinds)
    outer = loop.args[nk:]
    cparams, oparams = body.params[1 : 1 + carried], body.params[1 + carried :]
    out_kinds, out_inits, out_results, targets = [], [], [], []
    for j, p in enumerate(cparams):
        if p not in active:
            continue
        out_kinds.append(("carry",))
        out_inits.append(g[j] if g[j] is not None else _zeros(b, p.shape))
        out_results.append(grads.get(p) or make("zeros", shape=p.shape))
        targets.append(j)
    for i, (p, a) in enumerate(zip(oparams, outer)):
        if p not in sliced:
            continue
        if p in grads:
            out_kinds.append(("sum",))
            out_inits.append(_zeros(b, a.shape))
            out_results.append(grads[p])
            targets.append(nk + i)
        for s, gs in slots.items():
            if s.args[0] is p:
                axis = s.attr("axis")
                out_kinds.append(("slot", (axis,), "add"))
                out_inits.append(_zeros(b, a.shape))
                out_results += [gs, s.args[1]]
                targets.append(nk + i)
    for j, axes, value, positions in slot_results:
        if active_args[j] and g[j] is not None:  # the array before the loop: its unwritten slots
            out_kinds.append(("slot", axes, "set"))
            out_inits.append(g[j])
            out_results += [make("zeros", shape=value.shape), *positions]
            targets.append(j)
    return out_kinds, out_inits, out_results, targets


def _zeros(b: _Backward, shape) -> Node:
    """Zeros for one of the backward loop's results to start from: an array of its own."""
    b.zeros += 1
    return make("zeros", shape=shape, of=(b.region, b.zeros))


def _seed(seeds: dict[Node, Node], x: Node, g: Node) -> None:
    seeds[x] = seeds[x] + g if x in seeds else g


def _slots(body: Region, kinds: tuple, carried: int) -> list[tuple[int, tuple, Node, tuple]]:
    """Each written array's (loop argument index, axes, value, positions)."""
    out, r = [], carried
    for j, kind in enumerate(kinds):
        if kind[0] == "slot":
            out.append((j, kind[1], body.results[r], body.results[r + 1 : r + width(kind)]))
        if kind[0] != "carry":
            r += width(kind)
    return out


def _at(array: Node, axes: tuple[int, ...], positions) -> Node:
    """The slot of `array` at `positions` along `axes` (in increasing order)."""
    for axis, position in sorted(zip(axes, positions), reverse=True):
        array = make("select", array, position, axis=axis)
    return array


def _active_body(body: Region, carried: int, carried_active, outer_active) -> set[Node]:
    """The body's values that depend on an active argument: a carried value is active where
    its value before the loop is, or where an iteration makes it depend on an active value."""
    params = body.params
    start = {p for p, a in zip(params[1 + carried :], outer_active) if a}
    start |= {p for p, a in zip(params[1 : 1 + carried], carried_active) if a}
    while True:
        active = spread(start, [n for n in body.nodes if n not in params])
        more = {
            p
            for p, r in zip(params[1 : 1 + carried], body.results[:carried])
            if r in active and p.type.dtype == "float"
        }
        if more <= start:
            return active
        start |= more


def _forward_nodes(body: Region, replaced: dict[Node, Node]) -> set[Node]:
    """The forward body's values, loops replaced by their stacking versions included."""
    fwd = set(body.nodes) | set(replaced.values())
    return fwd


def _is_forward(n: Node, fwd: set[Node], new_loops: set[Node]) -> bool:
    """Whether `n` is the forward body's: one of its nodes, or a result of one of its loops
    (read by the backward of a nested loop, perhaps of the loop replacing it)."""
    return n in fwd or (n.op == "result" and (n.args[0] in fwd or n.args[0] in new_loops))


def _residuals(b: _Backward, body, kinds, replaced, results, carried: int) -> None:
    """Map each forward body value the backward results read to the backward body's own node."""
    fwd = _forward_nodes(body, replaced)
    new_loops = set(replaced.values())
    residuals, seen = frontier(results, lambda n: not _is_forward(n, fwd, new_loops))
    for r in sorted(residuals, key=_order(body)):
        _read(b, body, kinds, carried, r, fwd | {x for x in seen if x.op == "result"})


def _order(body: Region):
    position = {n: i for i, n in enumerate(body.nodes)}
    return lambda n: position.get(n, len(position))


def _read(b: _Backward, body: Region, kinds, carried: int, r: Node, fwd) -> Node:
    """The backward body's node for the forward body's value `r`."""
    if r in b.mapping:
        return b.mapping[r]
    params = body.params
    nk = len(kinds)
    loop = b.loop
    if r is params[0]:
        m = b.t
    elif r in params[1 + carried :]:
        i = params.index(r) - 1 - carried
        m = b.param_for(loop.args[nk + i], r.hint)
    elif _free(r, params, carried):
        m = _recompute(b, body, kinds, carried, r, fwd)
    elif (slot := _written(body, kinds, carried, r)) is not None:
        j, axes, positions = slot
        final = b.param_for(result(loop, j), loop.args[j].hint)
        m = _at(final, axes, [_read(b, body, kinds, carried, p, fwd) for p in positions])
    elif (prev := _previous(b, body, kinds, carried, r, fwd)) is not None:
        m = prev
    elif _of_one_kept(b, r):
        m = replace(r, args=tuple(b.mapping.get(a, a) for a in r.args))
    else:
        m = _stack(b, r)
    if m.op not in ("param", "const", "dim") and m.hint is None and m.op != r.op:
        m = replace(m, hint=_hint(r))
    b.mapping[r] = m
    return m


def _of_one_kept(b: _Backward, r: Node) -> bool:
    """Whether `r` is an elementwise function of one value the backward reads already (and of
    constants): `tanh(c)` where the cell states are kept. It is computed again, one pass over
    a step's values, rather than stored, T of them: the recomputation costs what reading a
    stored copy back costs, and the cache keeps one array fewer (`lstm`: the cell states,
    not also their tanh)."""
    values = [a for a in r.args if a.op not in ("const", "dim")]
    return (
        OPS[r.op].elementwise
        and r.dtype == "float"
        and len(values) == 1
        and values[0] in b.mapping
        and values[0].shape == r.shape
    )


def _free(r: Node, params, carried: int) -> bool:
    """Whether `r` is computed from the loop variable and loop-invariant values by indexing
    and integer arithmetic alone (a view, a position): free to compute again."""
    from .ops import flops_of

    stack, seen = [r], set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "param":
            if n in params[1 : 1 + carried]:
                return False
            continue
        if n.op in ("const", "dim"):
            continue
        if n.op in ("loop", "result") or flops_of(n) != Dim.of(0) and n.dtype == "float":
            return False
        if not (
            n.op in ("select", "index", "transpose", "reshape")
            or n.dtype != "float"
            or (n.op == "cast" and n.ndim == 0)  # (a position as a number)
        ):
            return False
        stack.extend(n.args)
    return True


def _recompute(b: _Backward, body, kinds, carried, r: Node, fwd) -> Node:
    args = tuple(
        _read(b, body, kinds, carried, a, fwd) if a.op not in ("const", "dim") else a
        for a in r.args
    )
    return replace(r, args=args)


def _written(body: Region, kinds, carried: int, r: Node):
    """(loop argument index, axes, positions) of a written array whose slot holds `r` after
    its iteration, where every iteration writes a slot of its own."""
    for j, axes, value, positions in _slots(body, kinds, carried):
        if value is r and kinds[j][2] == "set":
            if any(distinct(p, body.params[0]) for p in positions):
                return j, axes, positions
    return None


def distinct(position: Node, t: Node) -> bool:
    """Whether `position` is the loop variable `t` plus or minus sizes (or sizes minus it), or
    times a nonzero integer: each iteration's slot is its own."""
    if position is t:
        return True
    if position.op in ("add", "sub"):
        a, c = position.args
        return (distinct(a, t) and t not in reachable([c])) or (
            distinct(c, t) and t not in reachable([a])
        )
    if position.op == "neg":
        return distinct(position.args[0], t)
    if position.op == "mul":  # (k * t for a nonzero integer k)
        a, c = position.args
        return any(
            k.op == "const" and k.attr("value") and distinct(x, t) for x, k in ((a, c), (c, a))
        )
    return False


def _previous(b: _Backward, body: Region, kinds, carried: int, r: Node, fwd) -> Node | None:
    """A carried value before an iteration, read where the forward keeps its value after the
    iteration before, which it keeps anyway (a written array, `hs`; or a stack): `hs[:, t - 1]
    if t > 0 else h0`. None where its new value is not kept so."""
    params = body.params
    if r not in params[1 : 1 + carried]:
        return None
    j = params.index(r) - 1
    new = body.results[j]
    if new.op in ("param", "const", "dim") or _free(new, params, carried):
        return None
    later = _read(b, body, kinds, carried, new, fwd)
    if later.op != "select" or not _reads_kept(later):
        return None
    slot = replace(_shifted(later, b.t, make("sub", b.t, 1)), hint=None)  # (read only if t > 0)
    before = b.param_for(b.loop.args[j], b.loop.args[j].hint)
    first = make("gt", b.t, _dim(b.kw["start"]))
    return make("if_else", first, slot, before, hint="prev_" + _hint(r))


def _reads_kept(n: Node) -> bool:
    """Whether `n` is a slot of an array the backward reads from outside (selects down to a
    param)."""
    while n.op == "select":
        n = n.args[0]
    return n.op == "param"


def _shifted(n: Node, t: Node, earlier: Node) -> Node:
    """Position `n` (a function of the loop variable `t`) at the iteration before."""
    if n is t:
        return earlier
    if not n.args:
        return n
    args = tuple(_shifted(a, t, earlier) for a in n.args)
    return n if args == n.args else replace(n, args=args)


def _stack(b: _Backward, r: Node) -> Node:
    """A stack the forward loop fills with `r`, one slot per step, and its slot in the backward."""
    start, stop = b.kw["start"], b.kw["stop"]
    offset = (lambda t: t) if start == Dim.of(0) else (lambda t: make("sub", t, _dim(start)))
    b.stacks.append((r, offset(b.loop.attr("body").params[0])))
    place = (b.region, len(b.stacks))  # (stacks of one shape are arrays of their own)
    init = make("empty", shape=(stop - start, *r.shape), dtype=r.dtype, of=place)
    index = len(b.loop.attr("kinds")) + len(b.stacks) - 1
    b.stacked.append(init)
    steps = Node("result", (b.loop,), (("index", index),), init.type, _hint(r) + "_steps")
    param = b.param_for(steps, steps.hint)
    return make("select", param, offset(b.t), axis=0)


def _hint(r: Node) -> str:
    """A name for a stack of `r`: its own, or its operation's on its operand's (`tanh_c`)."""
    if r.hint:
        return r.hint
    named = [a.hint for a in r.args if a.hint]
    return r.op + ("_" + named[0] if named else "")


def _rebuild(b: _Backward, body: Region, replaced, results: list[Node], names) -> tuple:
    """The backward results with the forward body's values replaced by the backward's own,
    and each gradient named after its value (`names`: `dc` for `c`) where it has no name."""
    mapping = dict(b.mapping)
    fwd = _forward_nodes(body, replaced)
    new_loops = set(replaced.values())
    order = schedule((), results)
    for n in order:
        if n in mapping or _is_forward(n, fwd, new_loops):
            continue
        args = tuple(mapping.get(a, a) for a in n.args)
        hint = n.hint or (names.get(n) if n.op not in ("param", "const", "dim") else None)
        mapping[n] = n if args == n.args and hint == n.hint else replace(n, args=args, hint=hint)
    return tuple(mapping.get(r, r) for r in results)


def _forward(loop: Node, b: _Backward, replaced: dict[Node, Node]) -> Node | None:
    """The forward loop that also fills the stacks, with nested loops that do the same."""
    if not b.stacks and not replaced:
        return None
    kw = loop.kw
    body = kw["body"]
    mapping: dict[Node, Node] = {}
    for n in body.nodes:
        src = replaced.get(n, n)
        args = tuple(mapping.get(a, a) for a in src.args)
        mapping[n] = src if args == src.args else replace(src, args=args)
    results = [mapping.get(r, r) for r in body.results]
    for value, position in b.stacks:
        results += [mapping.get(value, value), position]
    kinds = kw["kinds"] + (("slot", (0,), "set"),) * len(b.stacks)
    nk = len(kw["kinds"])
    args = loop.args[:nk] + tuple(b.stacked) + loop.args[nk:]
    attrs = {k: v for k, v in kw.items() if k not in ("body", "kinds")}
    new = make(
        "loop",
        *args,
        hint=loop.hint,
        body=Region(body.params, tuple(results)),
        kinds=kinds,
        **attrs,
    )
    return new
