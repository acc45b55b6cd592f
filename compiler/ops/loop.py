"""Loops: `for t in range(...) { ... }` as one node whose body is a region (`ir.Region`).

A `loop` node runs its body once per value of the loop variable. What each of its results is,
in order, is in its `kinds` attribute:

- `("carry",)`: a value carried from one iteration to the next (`h`); the node's argument is
  its value before the loop, the body's param its value at the start of an iteration, the body's
  result its value at the end; the loop's result its value after the last iteration.
(`written` gives the source position of each slot write, for the shape pass's errors.)

- `("slot", axes, "set" | "add")`: an array of which each iteration writes (or adds to) one slot
  at a position along each of `axes` (`hs[:, t] = h`, `out[i, j] = v`); the argument is the
  array before the loop, the body gives the slot's value, then its position on each axis.
- `("sum",)`: a sum over the iterations (a gradient of a loop-invariant value, `dWh += ...`);
  the argument is its value before the loop, the body's result what one iteration adds.

The body's params are the loop variable, then one per carried value, then the loop-invariant
values it reads (`outer`): the node's arguments after the initial values, in order. Its results
are read by `result` nodes, one per result, so every other node keeps one type.

`select(x, i, axis)` is `x[:, i]` for an index `i` known only when the code runs (the loop
variable, or `T - 1 - t`); its adjoint puts the gradient back at that position (`put`).

Where the loops' other passes live: `build.py` turns the syntax into these nodes (the names a
body reassigns are carried), `shapes.py` types a body, `loops.py` differentiates a loop, and
`lower.py` writes it as a Python `for`.
"""

from __future__ import annotations

from ..dims import Dim
from ..expr import ALL, LOCAL, Cond, Lit, Ref, Subscript, array, helper
from ..expr import shape as shape_of
from ..ir import OPS, Node, ShapeError, TupleType, Type, is_view, make
from . import linear, no_flops, no_tangent, register


def _axis_in(t: Type, axis, what: str) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < t.ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for a value of shape {t}")
    return axis


def _position(i: Type, what: str) -> None:
    if i.dtype != "int" or i.ndim:
        raise ShapeError(f"{what}: a position is one integer, not a value of type {i}")


# ---------------------------------------------------------------------------------------------
# select: x[:, i] at a position known when the code runs


def _select_type(x: Type, i: Type, *, axis):
    _axis_in(x, axis, "an index")
    _position(i, "an index")
    return Type(x.dtype, x.shape[:axis] + x.shape[axis + 1 :])


def _select_emit(at, x, i, *, axis):
    return Subscript(x, (ALL,) * axis + (i,))


def _select_adjoint(g, y, x, i, *, axis):
    return make("put", g, i, axis=axis, size=x.shape[axis]), None


register(
    "select",
    _select_type,
    _select_emit,
    _select_adjoint,
    jvp=linear(),
    doc="x[:, t]: one position along an axis, the position known when the code runs",
    flops=no_flops,
    view=True,
)


def _put_type(g: Type, i: Type, *, axis, size):
    _position(i, "put")
    if not isinstance(axis, int) or not 0 <= axis <= g.ndim:
        raise ShapeError(f"put: axis {axis} is out of range for a value of shape {g}")
    return Type(g.dtype, g.shape[:axis] + (Dim.of(size),) + g.shape[axis:])


register(
    "put",
    _put_type,
    lambda at, g, i, *, axis, size: helper("_put", g, i, Lit(axis), shape_of((size,))),
    lambda dy, y, g, i, *, axis, size: (make("select", dy, i, axis=axis), None),
    jvp=linear(),
    doc="zeros with g at one position along an axis: the adjoint of select",
    flops=no_flops,
)


def _if_else_type(cond: Type, a: Type, b: Type):
    if cond.ndim or cond.dtype != "bool" or (a.dtype, a.shape) != (b.dtype, b.shape):
        raise ShapeError(f"if_else: a condition and two values of one type, not {cond}, {a}, {b}")
    return Type(a.dtype, a.shape)


def _if_else_jvp(t, y, cond, a, b):
    """The tangent of the value chosen, zeros for a value without one."""
    ta, tb = (make("zeros", shape=y.shape) if v is None else v for v in t[1:])
    return make("if_else", cond, ta, tb)


register(
    "if_else",
    _if_else_type,
    lambda at, cond, a, b: Cond(a, cond, b),
    jvp=_if_else_jvp,
    doc="a if cond else b, one of two values by a condition known when the code runs (a "
    "carried value before a step: the slot the step before wrote, or its value before the loop)",
    flops=no_flops,
    fresh=False,
)


def _shifted_type(first: Type, steps: Type, *, axis):
    _axis_in(steps, axis, "shifted")
    if (first.dtype, first.shape) != (steps.dtype, steps.shape[:axis] + steps.shape[axis + 1 :]):
        raise ShapeError(f"shifted: {first} is not one step of {steps} along axis {axis}")
    return Type(steps.dtype, steps.shape)


register(
    "shifted",
    _shifted_type,
    lambda at, first, steps, *, axis: helper("_shifted", first, steps, Lit(axis)),
    doc="each step's carried value before the step, along an axis: `first`, then `steps` but "
    "its last (`h0`, then `hs[:, :-1]`); made by the optimizer after differentiation, for one "
    "product over all steps (`optimize/hoist.py`, `products_after_loops`)",
    flops=no_flops,
)


def _empty_type(*, shape, dtype, of=None):
    return Type(dtype, tuple(Dim.of(d) for d in shape))


def _empty_emit(at, *, shape, dtype, of=None):
    if dtype != "float":
        return array("empty", shape_of(shape), dtype=Ref(LOCAL, dtype))
    return array("empty", shape_of(shape), **({"dtype": at.dtype} if at.dtype is not None else {}))


register(
    "empty",
    _empty_type,
    _empty_emit,
    lambda g, y, *, shape, dtype, of=None: (),
    jvp=no_tangent,
    doc="an array whose every element will be written (the per-step values a loop keeps; `of` "
    "tells the stacks of one loop apart)",
    flops=no_flops,
    own_dtype=True,
)


# ---------------------------------------------------------------------------------------------
# loop, and result: one of a node's several results


def width(kind: tuple) -> int:
    """How many body results a loop result of this kind has: a slot's value and positions."""
    return 1 + len(kind[1]) if kind[0] == "slot" else 1


def counts(kinds: tuple) -> tuple[int, int]:
    """How many carried values and body results a loop of these kinds has."""
    carried = sum(k[0] == "carry" for k in kinds)
    return carried, sum(map(width, kinds))


def _loop_type(*args: Type, body, kinds, start, stop, reverse=False, written=()):
    carried, results = counts(kinds)
    outer = len(body.params) - 1 - carried
    if outer < 0 or len(args) != len(kinds) + outer or len(body.results) != results:
        raise ShapeError("a loop's arguments, params and results do not match its kinds")
    items, r, c = [], 0, 1
    for kind, init in zip(kinds, args):
        value = body.results[r].type
        if kind[0] == "carry":
            param = body.params[c].type
            if value is not None and (value.dtype, value.shape) != (param.dtype, param.shape):
                raise ShapeError(f"a carried value is {param} before an iteration, {value} after")
            items.append(param)
            c += 1
        elif kind[0] == "slot":
            items.append(Type(init.dtype, init.shape))
        else:
            items.append(Type(init.dtype, init.shape))
        r += width(kind)
    return TupleType(tuple(items))


def _no_expression(at, *args, **attrs):
    raise AssertionError("a loop is written as statements by the lowering (lower.py)")


def _loop_adjoint(g, out, *args, **attrs):  # pragma: no cover - autodiff calls loop_vjp
    from ..loops import loop_vjp  # (loops.py builds IR with the ops registered here)

    return loop_vjp(g, out)


def _loop_jvp(t, out, *args, **attrs):  # pragma: no cover - forward.py calls loop_jvp
    raise AssertionError("a loop's JVP replaces the loop itself: bpc.forward.loop_jvp builds it")


def _loop_flops(y, *args, body, kinds, start, stop, reverse=False, written=()) -> Dim:
    """The body's flops, but Python's integer arithmetic on positions (`t - 1`), and the
    additions of sums and added slots (`dWh += ...`), per iteration, times the trip count.
    (bpc stats counts a loop's each part itself, per iteration, on the same terms.)"""
    from . import flops_of, size

    work = [n for n in body.nodes if not (n.ndim == 0 and n.dtype in ("int", "bool"))]
    per_iteration = sum((flops_of(n) for n in work), Dim.of(0))
    carried, _ = counts(kinds)
    r = carried
    for kind in kinds[carried:]:
        if kind[0] == "sum" or kind[2] == "add":
            per_iteration += size(body.results[r].type)
        r += width(kind)
    return per_iteration * (stop - start)


register(
    "loop",
    _loop_type,
    _no_expression,
    _loop_adjoint,
    jvp=_loop_jvp,
    doc="for t in range(start, stop): the body (a region) once per iteration",
    flops=_loop_flops,
)


def _result_type(t: TupleType, *, index):
    if not isinstance(t, TupleType) or not 0 <= index < len(t.items):
        raise ShapeError(f"no result {index} of a value of type {t}")
    return t.items[index]


register(
    "result",
    _result_type,
    _no_expression,
    lambda g, y, node, *, index: (None,),  # (autodiff gathers a loop's results itself)
    jvp=no_tangent,  # (and so does forward mode)
    doc="one of the results of a node with several (a loop's)",
    flops=no_flops,
    fresh=False,  # (a carried value may be the array it started from)
)


def results_of(node: Node, nodes) -> dict[int, Node]:
    """The `result` nodes among `nodes` that read `node`, by index."""
    return {n.attr("index"): n for n in nodes if n.op == "result" and n.args[0] is node}


def reads_own_slots(body, q: Node, axis: int) -> bool:
    """Whether a loop body reads its param `q` only at the slot of the loop variable along
    `axis` (`xwx[:, t]`), and reads it at all."""
    t = body.params[0]
    read = False
    for n in body.nodes:
        for a in n.args:
            if a is q:
                if not (n.op == "select" and n.args[1] is t and n.attr("axis") == axis):
                    return False
                read = True
    return read and q not in body.results


def writes_over_reads(loop: Node, j: int, init: Node) -> int | None:
    """How many times `loop` reads `init` from outside, where its written array j may be
    `init`'s array itself: each step writes the slot at the loop variable along one axis
    (`hs[:, t] = h`), and reads `init` only at that slot (`xwx[:, t]`), before the step's
    writes. None where it may not; 0 where the loop does not read `init` from outside."""
    kw = loop.kw
    body, kinds = kw["body"], kw["kinds"]
    kind = kinds[j]
    carried, _ = counts(kinds)
    nk = len(kinds)
    outer = [q for q, a in zip(body.params[1 + carried :], loop.args[nk:]) if a is init]
    if not outer:
        return 0
    r = carried + sum(width(k) for k in kinds[:j] if k[0] != "carry")
    if (
        kind[0] != "slot"
        or kind[2] != "set"
        or len(kind[1]) != 1
        or body.results[r + 1] is not body.params[0]
        or loop.args[:nk].count(init) != 1
        or not all(reads_own_slots(body, q, kind[1][0]) for q in outer)
        or any(_may_share(v, set(outer)) for v in body.results[:carried])
    ):
        return None
    return len(outer)


def _may_share(v: Node, params: set[Node]) -> bool:
    """Whether value `v` may be a view of (or be) one of `params`' arrays: a carried value that
    is a slot of the stack would see the step's write."""
    if v in params:
        return True
    if is_view(v) or not OPS[v.op].fresh or v.op in ("copy", "pad"):
        return any(_may_share(a, params) for a in v.args)
    return False


__all__ = ["OPS", "counts", "reads_own_slots", "results_of", "width", "writes_over_reads"]
