"""Oracle rules for loops: a `loop` node run iteration by iteration, its body evaluated by the
oracle's own evaluator; a written slot updated without writing into any array (autograd
cannot differentiate an assignment), by concatenating the parts around it."""

from __future__ import annotations

import autograd.numpy as anp


def _dim(d, sizes) -> int:
    from tests.oracle import dim_value

    return dim_value(d, sizes)


def _written(array, axes, positions, value, add: bool):
    """`array` with the slot at `positions` along `axes` replaced by `value` (or `value` added
    to it)."""
    if len(axes) > 1:  # the first position's slice, written at the others
        part = array[(slice(None),) * axes[0] + (positions[0],)]
        inner = _written(part, [a - 1 for a in axes[1:]], positions[1:], value, add)
        return _written(array, axes[:1], positions[:1], inner, False)
    axis, i = axes[0], positions[0]
    n = anp.shape(array)[axis]
    i = i % n if -n <= i < n else i
    if not 0 <= i < n:
        raise IndexError(f"oracle: slot {i} of an axis of {n}")
    index = (slice(None),) * axis
    old = array[index + (i,)]
    new = anp.expand_dims(old + value if add else value + 0 * old, axis)
    parts = [array[index + (slice(0, i),)], new, array[index + (slice(i + 1, n),)]]
    return anp.concatenate(parts, axis=axis)


def _loop(n, args, sizes):
    from tests.oracle import _apply

    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried = sum(k[0] == "carry" for k in kinds)
    state = list(args[: len(kinds)])
    outer = list(args[len(kinds) :])
    steps = range(_dim(kw["start"], sizes), _dim(kw["stop"], sizes))
    for t in reversed(steps) if kw.get("reverse") else steps:
        env = dict(zip(body.params, [t, *state[:carried], *outer]))
        for m in body.nodes:
            if m not in env:
                env[m] = _apply(m, [env[a] for a in m.args], sizes)
        results = [env[r] for r in body.results]
        state[:carried], r = results[:carried], carried
        for j, kind in enumerate(kinds[carried:], carried):
            if kind[0] == "slot":
                axes, value = kind[1], results[r]
                positions = [int(p) for p in results[r + 1 : r + 1 + len(axes)]]
                state[j] = _written(state[j], axes, positions, value, kind[2] == "add")
                r += 1 + len(axes)
            else:
                state[j] = state[j] + results[r]
                r += 1
    return tuple(state)


def _select(n, args, sizes):
    x, i = args
    return x[(slice(None),) * n.attr("axis") + (int(i),)]


def _shifted(n, args, sizes):
    """`first`, then `steps` but its last, along the axis: concatenated, then cut to length."""
    first, steps = args
    axis = n.attr("axis")
    lead = (slice(None),) * axis
    joined = anp.concatenate([anp.expand_dims(first, axis), steps], axis=axis)
    return joined[lead + (slice(0, anp.shape(steps)[axis]),)]


RULES = {
    "shifted": _shifted,
    "loop": _loop,
    "result": lambda n, args, sizes: args[0][n.attr("index")],
    "select": _select,
    "if_else": lambda n, args, sizes: args[1] if args[0] else args[2],
    "empty": lambda n, args, sizes: anp.zeros(tuple(_dim(d, sizes) for d in n.attr("shape"))),
    "put": lambda n, args, sizes: _written(
        anp.zeros(
            anp.shape(args[0])[: n.attr("axis")]
            + (_dim(n.attr("size"), sizes),)
            + anp.shape(args[0])[n.attr("axis") :]
        ),
        (n.attr("axis"),),
        (int(args[1]),),
        args[0],
        False,
    ),
}
