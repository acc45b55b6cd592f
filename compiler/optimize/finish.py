"""The last passes: a quotient by a square made in one division (`quotients_by_squares`), an
array divided by a number multiplied by its reciprocal instead
(`quotients_by_numbers_as_products`), the kernels `bpc compile --fast-math` allows
(`fast_math`), each output and each gradient made the caller's to keep (`finish_outputs`,
`finish_gradients`), and the cache chosen, what the backward reads of the forward
(`select_cache`); and which outputs share a cache entry's memory, so that `g_forward` hands them
over read-only (`cached_outputs`).
"""

from __future__ import annotations

from dataclasses import replace

from ..dims import Dim, nonnegative, product
from ..ir import (
    OPS,
    Graph,
    Node,
    at,
    const,
    is_view,
    make,
    reachable,
    rewrite,
    schedule,
    smaller,
    view_base,
    with_args,
)
from ..ops.elementwise import constant_value, never_zero
from .products import _users


def fast_math(graph: Graph) -> Graph:
    """tanh -> fast_tanh, 2 / (1 + exp(-2x)) - 1, where asked (`bpc compile --fast-math`): within
    2 ulp of 1 rather than of the value, in about half the time of np.tanh in float64 on a CPU
    without AVX-512 (NumPy vectorizes its exp there, not its tanh). The expert's RNN and LSTM
    take tanh so (bench/rnn_cases.py); the gradient, 1 - y * y, is tanh's."""

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n.op != "tanh":
            return with_args(n, args)
        with at(n.loc):
            return make("fast_tanh", *args, hint=n.hint)

    return rewrite(graph, step) if any(n.op == "tanh" for n in graph.nodes) else graph


def quotients_by_squares(graph: Graph) -> Graph:
    """a / t / t -> a / (t * t) for an array t of at least 1 (`1 + abs(x)`, the softsign's,
    whose gradient is `dout / t / t`), where nothing else reads a / t: one division where there
    were two, and the square made in t's array (`t *= t`, `np.divide(dout, t, out=t)`, as an
    expert writes it), where the two quotients made an array of their own (1.25-1.48x the
    expert's time, 1.5x the memory). t * t never underflows; it overflows where t passes the
    square root of the dtype's largest number (1.3e154 in float64, 1.8e19 in float32), where
    NumPy warns of it and the quotient is 0: the value is below |a| times the smallest normal
    number there."""
    users = _users(graph)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        old, n = n, with_args(n, args)
        if n.op != "div" or n.dtype != "float" or n.args[0].op != "div":
            return n
        (a, inner), t = n.args[0].args, n.args[1]
        if inner is not t or users[old.args[0]] != [old] or not _at_least_one(t):
            return n
        with at(n.loc):
            m = make("div", a, make("mul", t, t), hint=n.hint)
        return m if m.type == n.type else n

    return rewrite(graph, step) if any(n.op == "div" for n in graph.nodes) else graph


def _at_least_one(t: Node) -> bool:
    """Whether every element of array t is at least 1 (or nan): a number of at least 1 plus a
    value that is never negative."""
    if t.op != "add" or not t.ndim:
        return False
    for c, v in (t.args, t.args[::-1]):
        value = constant_value(c)
        if value is not None and not isinstance(value, bool) and value >= 1:
            return v.op in ("abs", "exp", "sqrt", "relu")
    return False


# The constants of a divisor whose reciprocal is taken: within these, the reciprocal is a normal
# number in float32 as in float64, so that the product by it is the quotient within an ulp
_RECIPROCAL_RANGE = (1e-30, 1e30)


def _reciprocal_is_finite(d: Node) -> bool:
    """Whether number d is nonzero for every size (`never_zero`, the division's own test: a
    constant, `max(n, 1)`, negations and products of those) with each of its constants within
    `_RECIPROCAL_RANGE`. A plain size may be 0, where Python raises ZeroDivisionError on
    `1 / n` (and `x / n` of an empty x is empty, no error)."""
    low, high = _RECIPROCAL_RANGE
    constants = [a.attr("value") for a in reachable([d]) if a.op == "const"]
    return never_zero(d) and all(
        not isinstance(c, bool) and low <= abs(c) <= high for c in constants
    )


def _guarded(d: Node, shape) -> Node:
    """Divisor d with each size in it that is an axis of `shape` read as `max(size, 1)`, through
    products and negations (`2 * N` -> `2 * max(N, 1)`): where such a size is 0 the array is
    empty, and any factor will do."""
    if d.op == "dim" and d.attr("dim") in shape:
        return make("maximum", d, 1)
    if d.op in ("neg", "mul") and not never_zero(d):
        return with_args(d, tuple(_guarded(a, shape) for a in d.args))
    return d


def _number(n: Node) -> bool:
    """Whether `n` is a number known before the call (a constant, a size), not a boolean."""
    return n.type.static and not n.ndim and n.dtype != "bool"


def _scaling(n: Node | None) -> bool:
    """Whether `n` is a float product of a value and a number (not the caller's use, None)."""
    return n is not None and n.op == "mul" and n.dtype == "float" and any(map(_number, n.args))


def quotients_by_numbers_as_products(graph: Graph) -> Graph:
    """X / d -> X * (1 / d) for a float array X and a number d whose reciprocal is finite for
    every size (`_reciprocal_is_finite`) once each size in it that is an axis of X is read as
    `max(N, 1)` (`_guarded`: `dscores / N` becomes `dscores * (1 / max(N, 1))`); and c * (X *
    (1 / d)) -> X * (c / d) for a number c, where every reader of the quotient is such a product
    (`x / N * 3`, one pass where there were two; a mean square error's `2 * q` and `-2 * q`, two
    passes where there were three). NumPy divides an array by a number in about 1.7 times the
    time it multiplies it in float64 (3.2 against 1.9 us at 8192 elements, 280 against 190 us
    at 10**6), and in about 1.3 times at 8192 in float32; the reciprocal is one Python
    division. The product is within an ulp of the quotient (two roundings where there was one),
    as an expert's `dz *= 1 / n` is. Arrays smaller than a parameter, or with an axis of 1
    (batchnorm's `dbeta / N`, a statistic kept as `[N, 1]`), keep their quotient: nothing to
    gain, and it reads as written. After the simplifier, whose `times_a_reciprocal` writes the
    other way round (its rules on numbers read quotients)."""

    params = [p for p in graph.inputs if p.dtype == "float" and not p.type.static]
    users = _users(graph)
    made: dict[Node, tuple[Node, Node]] = {}  # a product made here -> (X, its divisor d)

    def over(x: Node, c: Node, d: Node, like: Node) -> Node:
        """x * (c / d), c / d one number: a constant divisor's reciprocal folded (with c, where
        c is a constant too), another's `c / d` left to Python."""
        with at(like.loc):
            if d.op != "const":
                factor = make("div", c, d)
            elif c.op == "const":
                factor = const(c.attr("value") * (1 / d.attr("value")))
            else:
                factor = make("mul", c, const(1 / d.attr("value")))
            return make("mul", x, factor, hint=like.hint)

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n.op == "mul" and n.dtype == "float":  # c * (X * (1 / d)) -> X * (c / d)
            for (c, q), old in ((args, n.args[1]), (args[::-1], n.args[0])):
                if q in made and _number(c) and all(map(_scaling, users[old])):
                    m = over(made[q][0], c, made[q][1], n)
                    if m.type == n.type:
                        return m
        n = with_args(n, args)
        if n.op != "div" or n.dtype != "float" or n.type.static or not n.ndim:
            return n
        x, d = n.args
        if x.dtype != "float" or x.shape != n.shape or not d.type.static or d.ndim:
            return n
        if Dim.of(1) in n.shape or any(smaller(n, p) for p in params):
            return n
        with at(n.loc):
            d = _guarded(d, x.shape)
        if not _reciprocal_is_finite(d):
            return n
        m = over(x, const(1.0), d, n)
        if m.type != n.type:
            return n
        made[m] = (x, d)
        return m

    return rewrite(graph, step) if any(n.op == "div" for n in graph.nodes) else graph


def finish_gradients(graph: Graph, *, cache_reused: bool) -> Graph:
    """Each gradient becomes a fresh, writable array of its parameter's shape and dtype: a
    broadcast or a plain number is filled into `full_like(param)`, and a value that the caller
    or the cache also holds is copied. A gradient -(X / s), s a 0-d value, becomes X / (-s), and
    -(s * X) becomes X * (-s) (`_sign_on_the_scalar`)."""
    params = {n.attr("name"): n for n in graph.inputs}
    forward = graph.forward
    # The graph's float dtype: a float array parameter's, or the first float scalar's. A `[]`
    # parameter's gradient takes it, whatever number the caller passed (a Python int included).
    floats = [n for n in graph.inputs if n.dtype == "float"]
    dtype_of = [next((n for n in floats if n.ndim), floats[0])] if floats else []
    grads, used = [], set()
    for name, g in zip(graph.wrt, graph.grads):
        p = params[name]
        g = _sign_on_the_scalar(g)
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


def _sign_on_the_scalar(g: Node) -> Node:
    """-(X / s) -> X / (-s) and -(s * X) -> X * (-s) for a 0-d s: the sign costs no pass of its
    own over X, and X's array can take the result (the mean's `dmu = t; dmu /= -n`, and a
    Gaussian likelihood's `dmu = r; dmu *= -t` for `t = dout / n`, where `-(t * r)` made a
    temporary and then the gradient). Only on a gradient: inside an expression, `a - X / s`
    (the subtraction that `subtract_negation` makes of `a + -(X / s)`) is the better form."""
    if g.op != "neg" or g.args[0].op not in ("div", "mul") or g.dtype != "float":
        return g
    x, s = g.args[0].args
    if g.args[0].op == "mul" and x.ndim == 0:
        x, s = s, x
    if g.args[0].op == "mul" and (x.type.static or OPS[x.op].read_only):
        return g  # (`-(s * ones(m))`: filled into a new array as it is)
    if s.ndim == 0 and x.type == g.type:
        with at(g.loc):
            return replace(make(g.args[0].op, x, make("neg", s)), hint=g.hint)
    return g


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
    `W[i]`), or an earlier output's, or may be a read-only view (a broadcast: the tangent of
    `x + b` along `b` alone, `bpc.forward`), becomes a copy. The output's name goes with it."""
    params, seen, wraps = set(graph.inputs), set(), []
    for o in graph.outputs:
        bases = _bases(o)
        shared = bases & (params | seen) or any(OPS[b.op].read_only for b in bases)
        wraps.append("scalar" if _numbers_only(o) else "copy" if shared else None)
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


def _from_sizes(n: Node) -> bool:
    """An array made from sizes and constants alone (`zeros((N, H))`): cheaper made again than
    kept."""
    return (
        bool(n.ndim)
        and not OPS[n.op].leaf
        and n.op != "result"
        and all(a.op in ("const", "dim") for a in n.args)
    )


def _made_again(graph: Graph) -> Graph:
    """The backward makes its own copy of each forward array made from sizes alone that it
    reads (the zeros a loop's carried gradient starts from, say), rather than caching it."""
    forward = graph.forward

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n not in forward:  # (a copy per reader: a loop's carried values each own theirs)
            args = tuple(replace(a) if a in forward and _from_sizes(a) else a for a in args)
        return with_args(n, args)

    if not any(
        _from_sizes(a) for b in graph.nodes if b not in forward for a in b.args if a in forward
    ):
        return graph
    return rewrite(graph, step)


def select_cache(graph: Graph) -> Graph:
    """The cache is exactly what the backward reads from the forward: parameters and forward
    values that some backward node takes as an argument, and the dimension sizes it uses. An
    array made from sizes alone is made again rather than kept (`_made_again`); a part of the
    backward that reads no upstream gradient is computed by the forward where the cache is then
    smaller (`_hoisted`, named by `_factor_names`)."""
    graph = _made_again(graph)
    early = _hoisted(graph, graph.forward)
    names = _factor_names(graph, graph.forward, early)
    if names:
        graph = rewrite(
            graph,
            lambda n, args: (
                replace(n, args=args, hint=names[n]) if n in names else with_args(n, args)
            ),
        )
        early = _hoisted(graph, graph.forward)
    forward = graph.forward | early
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


def _factor_names(graph: Graph, forward: frozenset[Node], early: set[Node]) -> dict[Node, str]:
    """A name for each value the forward computes for the cache that has none, from the
    gradient that reads it: `dscores = dout / max(N, 1) * dscores_factor`, `dx = dx_factor *
    dout`."""
    readers: dict[Node, set[str | None]] = {}
    for b in graph.nodes:
        if b not in forward and b not in early:
            for a in b.args:
                readers.setdefault(a, set()).add(b.hint)
    return {
        a: f"{next(iter(readers[a]))}_factor"
        for a in early
        if a.hint is None and a in readers and len(readers[a]) == 1 and None not in readers[a]
    }


def _hoisted(graph: Graph, forward: frozenset[Node]) -> set[Node]:
    """Backward values that read no upstream gradient and that the forward computes instead,
    where the cache then holds fewer bytes: Mish's `tanh(softplus(x)) + x * (1 - t**2) *
    sigmoid(x)`, made of `exp(x)` and `t = tanh(softplus(x))`, is one array to keep where they
    are two, and the backward is `dx = dout * it`. The forward does the work the backward would
    have done (no more in all), and the forward alone (`g`) does none of it. Each value the
    backward reads of this part (with what it is made of) is tried in turn, then all of them
    together; a choice is kept where the kept bytes are smaller for every size. Not in graphs
    with loops, nor where a gradient reads no upstream gradient (it could be a view of a kept
    array)."""
    if not graph.douts or any(n.op == "loop" for n in graph.nodes):
        return set()
    late = set(graph.douts)
    for n in graph.nodes:
        if n not in forward and any(a in late for a in n.args):
            late.add(n)
    early = [n for n in graph.nodes if n not in forward and n not in late]
    if not early or any(g in early for g in graph.grads if g not in forward):
        return set()
    movable = set(early)
    read_late = {a for n in graph.nodes if n in late for a in n.args}
    frontier = [n for n in early if n in read_late]
    free = set(graph.outputs)

    def kept(hoisted: set[Node]) -> Dim:
        held = {
            a
            for b in graph.nodes
            if b not in forward and b not in hoisted
            for a in b.args
            if (a in forward or a in hoisted) and a.op not in ("const", "dim")
        }
        total = Dim.of(0)
        for a in held:
            if view_base(a).op != "param" and a not in free:
                total = total + product(a.shape) * (1 if a.dtype == "bool" else 8)
        return total

    def made_of(roots: list[Node]) -> set[Node]:
        return {n for n in reachable(roots) if n in movable}

    chosen: set[Node] = set()
    best = kept(chosen)
    for part in [made_of([f]) for f in frontier] + [made_of(frontier)]:
        trial = chosen | part
        size = kept(trial)
        gain = best - size
        if nonnegative(gain) and not (gain.is_const and gain.value == 0):
            chosen, best = trial, size
    return chosen


def cached_outputs(graph: Graph) -> set[Node]:
    """The outputs (arrays) whose memory a cache entry shares: `g_forward` hands them to the
    caller read-only (`_frozen`), since writing into one (a residual `out += x`) would change
    the gradients the backward computes from the cache."""
    held = set().union(*(_bases(c) for c in graph.cache))
    return {o for o in graph.outputs if o.ndim and _bases(o) & held}
