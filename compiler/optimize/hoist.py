"""Products as BLAS likes them, before differentiation: loop-invariant products out of loops
(`hoist_products`), and a stack of rows times one matrix as one product (`one_product`).

An RNN's body computes `x[:, t] @ Wx` at every step: T small products, each a call into BLAS
with N rows. An expert computes `x @ Wx` for all t before the loop, one product with N * T rows,
and reads its slot `t` in the loop. Its backward then follows: the slots' gradients are
gathered in the loop (`dxw[:, t] = da`) and `dx`, `dWx` are two products after it, where CS231n
computes T of each. Both run before differentiation, so that the backward is derived from the
forward as it will run.

Measured on this shared 2-core machine (N, T, D, H = 128, 100, 128, 256, float64, NumPy's
OpenBLAS): T products of [N, D] @ [D, H] took 0.28 s, one [N * T, D] @ [D, H] product 0.04 s,
and `x @ Wx` on the [N, T, D] array itself, which np.matmul runs as N products of [T, D] @
[D, H], 0.10 s. So the hoisted product is always one product over flattened rows
(`one_product`), and is always faster than the loop's; no size makes keeping it in the loop
faster, so the choice does not depend on `--dim`.

After differentiation, `products_after_loops` does the same for the sums a backward loop adds up:
`dWh += prev_h.T @ da` at every step, where the loop writes `da` into a slot of a stack anyway
(`dxwx[:, t] = da`), is one product of all steps' rows after the loop, `prev_hs.T @ dxwx`, as
an expert writes it. Measured here (2 cores, float64, NumPy's OpenBLAS), the RNN's backward went
from 12.4 to 11.1 ms at (N, T, D, H) = (32, 50, 64, 128) and from 122 to 105 ms at (128, 100,
128, 256), for one copy of the states the steps start from (`_shifted`, one [N, T, H] array).
"""

from __future__ import annotations

from dataclasses import replace

from ..dims import Dim, product
from ..ir import Graph, Node, Region, make, region_param, result, rewrite, with_args
from ..ops.loop import counts, width
from .fixpoint import in_body
from .rules import canonical


@canonical
def one_product(n: Node) -> Node | None:
    """a @ W with a [..., K] of several leading axes and W [K, M] -> one product of a's rows,
    reshaped: `(a.reshape((P, K)) @ W).reshape(...)`. np.matmul runs a stack as one small
    product per matrix; one product of all the rows is 2.5x faster at (128 * 100, 128) @ (128,
    256), and its gradient with respect to W is one product too (`a_rows.T @ g_rows`), where
    the stack's is a product per matrix and a sum."""
    if n.op != "matmul":
        return None
    a, w = n.args
    if a.ndim < 3 or w.ndim != 2:
        return None
    return make("reshape", make("matmul", _as_rows(a, _rows(a)), w), shape=n.shape)


def _rows(a: Node) -> str | None:
    return a.hint + "_rows" if a.hint else None


def hoist_products(graph: Graph) -> Graph:
    """Each loop's products of a loop-invariant array's slot by a loop-invariant matrix
    (`x[:, t] @ Wx`) computed for all slots before the loop, the body reading the slot of the
    result (`xw[:, t]`); in nested loops too."""
    if not any(n.op == "loop" for n in graph.nodes):
        return graph

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        n = with_args(n, args)
        return _hoisted(in_body(n, hoist_products)) if n.op == "loop" else n

    return rewrite(graph, step)


def _hoisted(loop: Node) -> Node:
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    carried, _ = counts(kinds)
    params = body.params
    outer_params = params[1 + carried :]
    outside = dict(zip(outer_params, loop.args[len(kinds) :]))
    invariant = _invariant(body, set(outer_params))
    new_params, new_args, mapping = [], [], {}
    made: dict[tuple, Node] = {}
    for n in body.nodes:
        if n.op != "matmul" or n in mapping:
            continue
        s, w = n.args
        if s.op != "select" or s.args[0] not in outside or w not in invariant or w.ndim != 2:
            continue
        x, axis = s.args[0], s.attr("axis")
        if x.ndim < 2 or axis >= x.ndim - 1:  # (the product's own axis cannot be a slot)
            continue
        key = (x, axis, w)
        if key not in made:
            product_ = make("matmul", outside[x], _outside(w, outside))
            product_ = one_product(product_) or product_
            index = len(params) + len(new_params)
            name = (x.hint or "x") + (w.hint or "w").lower()
            q = region_param(name, params[0].attr("region"), index, product_.type)
            new_params.append(q)
            new_args.append(replace(product_, hint=name))
            made[key] = q
        mapping[n] = make("select", made[key], s.args[1], axis=axis, hint=n.hint)
    if not mapping:
        return loop
    _fold_biases(body, mapping, invariant, outside, made, new_params, new_args)
    results = rebuilt(body, mapping)
    return make(
        "loop",
        *loop.args,
        *new_args,
        hint=loop.hint,
        body=Region(params + tuple(new_params), results),
        **{k: v for k, v in kw.items() if k != "body"},
    )


def _fold_biases(body, mapping, invariant, outside, made, new_params, new_args) -> None:
    """A loop-invariant term added to a hoisted product's slot (`x[:, t] @ Wx + h @ Wh + b`)
    is added to the product before the loop, once for all steps, as an expert adds the bias
    into `x @ Wx`: where the slot is read by that sum alone, and the term broadcasts against
    the slot's trailing axes, as against the product's."""
    uses: dict[Node, int] = {}
    for n in body.nodes:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    slots = {n: mapping[n] for n in mapping if uses.get(n, 0) == 1}
    for n in body.nodes:
        if n.op != "add" or n.args[1] not in invariant or n.args[1].type.static:
            continue
        left, bias = n.args
        inner = left.args[0] if left.op == "add" and uses.get(left, 0) == 1 else left
        if inner not in slots or bias.ndim > inner.ndim - slots[inner].attr("axis"):
            continue
        q = slots[inner].args[0]
        k = new_params.index(q)
        product_ = replace(new_args[k], hint=None)
        new_args[k] = make("add", product_, _outside(bias, outside), hint=q.hint)
        del slots[inner]  # (one bias per product)
        if left is inner:  # slot + b -> the slot, which holds b
            mapping[n] = mapping[inner]
        else:  # (slot + m) + b -> slot + m
            m = [a for a in left.args if a is not inner][0]
            mapping[n] = make("add", mapping[inner], mapping.get(m, m), hint=n.hint)


def _invariant(body: Region, outer: set[Node]) -> set[Node]:
    """The body's values computed from loop-invariant values alone."""
    out = set(outer)
    for n in body.nodes:
        if n.op in ("const", "dim") or (n.args and all(a in out for a in n.args)):
            out.add(n)
    return out


def _outside(n: Node, outside: dict[Node, Node]) -> Node:
    """Loop-invariant body value `n` computed outside the loop."""
    if n in outside:
        return outside[n]
    if not n.args:
        return n
    args = tuple(_outside(a, outside) for a in n.args)
    return with_args(n, args)


def rebuilt(body: Region, mapping: dict[Node, Node]) -> tuple[Node, ...]:
    """The body's results with each node of `mapping` read as its value there, the nodes
    between rebuilt (`mapping` gets them too)."""
    for n in body.nodes:
        if n in mapping:
            continue
        args = tuple(mapping.get(a, a) for a in n.args)
        if args != n.args:
            mapping[n] = with_args(n, args)
    return tuple(mapping.get(r, r) for r in body.results)


def products_after_loops(graph: Graph) -> Graph:
    """Each loop's sum of per-step products `A.T @ B`, where the loop writes B into a slot of a
    stack anyway and A is a slot of a loop-invariant array (or a carried value before the step,
    `hs[:, t - 1] if t > 0 else h0`), computed after the loop as one product of all steps' rows:
    `rows(As).T @ rows(Bs)`, as an expert writes `dWh` after the loop. The loop's sum is then read by no one, and `tidy_loops` drops it.
    """
    loops = [n for n in graph.nodes if n.op == "loop"]
    if not loops:
        return graph
    readers = {(n.args[0], n.attr("index")): n for n in graph.nodes if n.op == "result"}
    after: dict[Node, Node] = {}
    for loop in loops:
        for j, value in _products_after(loop, readers):
            after[readers[loop, j]] = value
    if not after:
        return graph
    return rewrite(graph, lambda n, args: after.get(n) or with_args(n, args))


def _products_after(loop: Node, readers: dict) -> list[tuple[int, Node]]:
    """(index, value after the loop) of each of `loop`'s sums that is one product of rows."""
    kw = loop.kw
    body, kinds, stop = kw["body"], kw["kinds"], kw["stop"]
    if kw["start"] != Dim.of(0):
        return []
    carried, _ = counts(kinds)
    params = body.params
    t = params[0]
    outside = dict(zip(params[1 + carried :], loop.args[len(kinds) :]))
    slots: dict[Node, tuple[int, int]] = {}  # a value every step writes whole: its stack, axis
    sums: list[tuple[int, Node]] = []
    r = carried
    for j, kind in enumerate(kinds):
        if kind[0] == "sum" and (loop, j) in readers:
            sums.append((j, body.results[r]))
        elif kind[0] == "slot" and len(kind[1]) == 1 and body.results[r + 1] is t:
            stack = loop.args[j]
            if stack.shape[kind[1][0]] == stop and (kind[2] == "set" or stack.op == "zeros"):
                slots.setdefault(body.results[r], (j, kind[1][0]))
        if kind[0] != "carry":
            r += width(kind)
    out = []
    for j, term in sums:
        if term.op != "matmul" or term.args[0].op != "transpose" or term.args[1] not in slots:
            continue
        a, b = term.args[0].args[0], term.args[1]
        k, axis = slots[b]
        steps = readers.get((loop, k)) or result(loop, k)
        before = _steps_of(a, t, axis, outside)
        if (
            before is None
            or a.ndim != 2
            or b.ndim != 2
            or axis >= steps.ndim - 1
            or before.shape[:-1] != steps.shape[:-1]
        ):
            continue
        rows = make("transpose", _as_rows(before), axes=(1, 0))
        init = loop.args[j]
        if init.op == "zeros":
            out.append((j, make("matmul", rows, _as_rows(steps), hint=term.hint)))
        else:
            out.append(
                (j, make("add", init, make("matmul", rows, _as_rows(steps)), hint=term.hint))
            )
    return out


def _steps_of(a: Node, t: Node, axis: int, outside: dict[Node, Node]) -> Node | None:
    """The array of all steps' values of the body's `a`, outside the loop: `x` for `x[:, t]`,
    and the states the steps start from for `hs[:, t - 1] if t > 0 else h0`; None for others."""
    if a.op == "select" and a.args[1] is t and a.attr("axis") == axis and a.args[0] in outside:
        return outside[a.args[0]]
    if a.op != "if_else":
        return None
    cond, later, first = a.args
    if not (
        cond.op == "gt"
        and cond.args[0] is t
        and cond.args[1].op == "dim"
        and cond.args[1].attr("dim") == Dim.of(0)
        and later.op == "select"
        and later.attr("axis") == axis
        and later.args[0] in outside
        and first in outside
        and later.args[1].op == "sub"
        and later.args[1].args[0] is t
        and later.args[1].args[1].op == "const"
        and later.args[1].args[1].attr("value") == 1
    ):
        return None
    hint = (a.hint or "prev") + "s"  # (prev_hs)
    return make("shifted", outside[first], outside[later.args[0]], axis=axis, hint=hint)


def _as_rows(a: Node, hint: str | None = None) -> Node:
    """`a` as a matrix of rows: its last axis against all the others."""
    return make("reshape", a, shape=(product(a.shape[:-1]), a.shape[-1]), hint=hint)
