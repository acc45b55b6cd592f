"""A loop's stack written over the array whose slots the loop reads (`stacks_in_read_arrays`).

An RNN's forward reads `xwx[:, t]` (the hoisted `x @ Wx + b`) at step t and writes `hs[:, t]`:
step t reads slot t before it writes slot t, and no step reads another's, so `hs` can be `xwx`
itself, as an expert computes `x @ Wx + b` into the array that becomes `hs`. One [N, T, H] array
fewer (its page faults on every call) and no `np.zeros` for `hs`.

Its backward writes `dxwx[:, t] = dh * (1 - h * h)` with `h = hs[:, t]`: the factor `1 - h * h`
depends on step t's slots alone, so it is computed for all steps before the loop, `1 - hs * hs`,
into the array that becomes `dxwx`; the loop multiplies its slot by `dh`, as CS231n's
`rnn_backward` does with its `da`. Hoisting the factor alone would make an array more; here it
takes the place of the stack's `np.zeros`, so it is done only where it does.

Measured on the shared 2-core machine (float64, NumPy's OpenBLAS, interleaved medians), at (N,
T, D, H) = (32, 50, 64, 128) and (128, 100, 128, 256): the RNN's forward went from 1.25-1.45x
the hand-written one's time to 1.11-1.22x, its backward from 1.02-1.16x to 0.98-1.01x.

The conditions: the stack starts as zeros the loop writes whole (a slot at `t` of every step,
`range(0, T)` over the stack's own axis, forward or reversed); the array read (or the factor)
has the stack's type, is a new array that nothing but this loop reads, and the body reads it
only at slot `t` of that axis. The lowering then writes the stack in that array without a copy
(`lower._owned`, which asks `ops.loop.writes_over_reads` again of the loop as it is then).
"""

from __future__ import annotations

from ..dims import Dim
from ..ir import (
    OPS,
    Graph,
    Node,
    Region,
    is_view,
    make,
    region_param,
    rewrite,
    with_args,
)
from ..ops.loop import counts, reads_own_slots, width, writes_over_reads
from .hoist import rebuilt


def stacks_in_read_arrays(graph: Graph) -> Graph:
    """Each stack a loop writes whole started as an array whose slots only that loop reads, one
    step its own slot: the array it reads (`hs` starts as `xwx`), or a factor of the written
    value computed for all steps before the loop (`dxwx` starts as `1 - hs * hs`)."""
    if not any(n.op == "loop" for n in graph.nodes):
        return graph
    readers: dict[Node, int] = {}
    for n in graph.nodes:
        for a in n.args:
            readers[a] = readers.get(a, 0) + 1
    for n in graph.outputs + graph.grads:
        readers[n] = readers.get(n, 0) + 1
    return rewrite(graph, lambda n, args: _restacked(with_args(n, args), readers))


def _restacked(loop: Node, readers: dict[Node, int]) -> Node:
    if loop.op != "loop" or loop.attr("start") != Dim.of(0):
        return loop
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    params = body.params
    t = params[0]
    nk = len(kinds)
    inits, outer = list(loop.args[:nk]), list(loop.args[nk:])
    outer_params = list(params[1 + carried :])
    uses = _uses(body)
    taken: set[Node] = set()  # (an outer array is one stack's)
    results = list(body.results)
    r = carried
    for j, kind in enumerate(kinds):
        if kind[0] == "carry":
            continue
        value, span = results[r], width(kind)
        r += span
        if not _written_whole(kind, inits[j], results[r - span + 1 : r], t, kw):
            continue
        axis = kind[1][0]
        stack = inits[j]
        found = None
        factor = _factor(body, value, t, axis, set(outer_params), uses)
        full = factor and _for_all_steps(factor, t, dict(zip(outer_params, outer)))
        if full is not None and _same_type(full, stack):
            q = region_param(stack.hint or "stack", t.attr("region"), len(params), full.type)
            slot = make("select", q, t, axis=axis, hint=factor.hint)
            results = list(rebuilt(Region(params, tuple(results)), {factor: slot}))
            body = Region(params[: 1 + carried] + tuple(outer_params) + (q,), tuple(results))
            outer_params.append(q)
            outer.append(full)
            params = body.params
            uses = _uses(body)
            found = len(outer) - 1
        else:
            found = next(
                (
                    k
                    for k, (q, a) in enumerate(zip(outer_params, outer))
                    if a not in taken
                    and _sole_reader(a, loop, readers)
                    and _same_type(a, stack)
                    and reads_own_slots(body, q, axis)
                ),
                None,
            )
        if found is None:
            continue
        taken.add(outer[found])
        inits[j] = outer[found]
        kinds = kinds[:j] + (kind[:2] + ("set",),) + kinds[j + 1 :]  # (no longer into zeros)
    if inits == list(loop.args[:nk]) and len(outer) == len(loop.args) - nk:
        return loop
    body = Region(params[: 1 + carried] + tuple(outer_params), tuple(results))
    new = make(
        "loop",
        *inits,
        *outer,
        hint=loop.hint,
        body=body,
        kinds=kinds,
        **{k: v for k, v in kw.items() if k not in ("body", "kinds")},
    )
    changed = [j for j in range(nk) if inits[j] is not loop.args[j]]
    if not all(writes_over_reads(new, j, inits[j]) for j in changed):
        return loop  # (a carried value is a view of a slot it reads: the lowering would copy)
    return new


def _written_whole(kind: tuple, init: Node, positions, t: Node, kw: dict) -> bool:
    """A stack of zeros of which every step writes (or adds to: into zeros, the same) the slot at
    `t`, and the steps are all the positions along its axis."""
    return (
        kind[0] == "slot"
        and len(kind[1]) == 1
        and len(positions) == 1
        and positions[0] is t
        and init.op == "zeros"
        and init.shape[kind[1][0]] == kw["stop"]
    )


def _sole_reader(a: Node, loop: Node, readers: dict[Node, int]) -> bool:
    """A new array this loop alone reads, once (as a value from outside); or a view of one
    that only the view reads (`(x_rows @ Wx).reshape(...)`)."""
    if readers.get(a, 0) != 1 or loop.args.count(a) != 1:
        return False
    while is_view(a) and not OPS[a.op].read_only:
        a = a.args[0]
        if readers.get(a, 0) != 1:
            return False
    op = OPS[a.op]
    return op.fresh and not op.leaf and not is_view(a) and a.op not in ("loop", "result")


def _same_type(a: Node, b: Node) -> bool:
    return (a.dtype, a.shape) == (b.dtype, b.shape) and a.dtype == "float"


def _uses(body: Region) -> dict[Node, int]:
    uses: dict[Node, int] = {}
    for n in body.nodes:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    for n in body.results:
        uses[n] = uses.get(n, 0) + 1
    return uses


def _factor(body: Region, value: Node, t: Node, axis: int, outer: set[Node], uses) -> Node | None:
    """An operand of the written elementwise `value`, of its shape, read by it alone, that is
    computed elementwise from slots at `t` along `axis` of values from outside (and from numbers
    and values from outside that broadcast against the slot's axes after `axis`)."""
    if not OPS[value.op].elementwise or value.op in ("select", "if_else"):
        return None
    for f in value.args:
        if (
            f.shape == value.shape
            and f.dtype == "float"
            and uses.get(f, 0) == 1
            and f.op not in ("select", "param")
            and _of_slots(f, t, axis, outer)
        ):
            return f
    return None


def _of_slots(n: Node, t: Node, axis: int, outer: set[Node]) -> bool:
    """Whether `n` is computed elementwise from slots at `t` of outer values, with at least one
    slot among them."""
    slots = False
    stack = [n]
    while stack:
        m = stack.pop()
        if m.op == "select" and m.args[1] is t and m.attr("axis") == axis and m.args[0] in outer:
            slots = True
        elif m.op == "const" or (m in outer and m.ndim <= n.ndim - axis):
            pass
        elif OPS[m.op].elementwise and m.op not in ("select", "if_else") and m.args:
            stack.extend(m.args)
        else:
            return False
    return slots


def _for_all_steps(n: Node, t: Node, outside: dict[Node, Node]) -> Node:
    """`n` (see `_of_slots`) computed for all steps at once, outside the loop: each slot
    `q[:, t]` read as the whole of `q`'s value from outside. Its nodes are new, made by the
    optimizer with no source position: `bpc explain` tells the array as the loop's start
    (`dxwx = 1 - hs * hs`), not as a line of the statement it came from."""
    if n.op == "select" and n.args[1] is t:
        return outside[n.args[0]]
    if n in outside or not n.args:
        return outside.get(n, n)
    return make(n.op, *(_for_all_steps(a, t, outside) for a in n.args), hint=n.hint, **n.kw)
