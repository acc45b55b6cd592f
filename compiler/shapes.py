"""Stage 3: type every node. Symbolic dimensions are unified, broadcasting checked, and a static
mismatch is a compile error at the line that caused it. A `fn`'s dimensions are bound per call
site, so after this pass no `bind` node and no `fn`-local dimension remains."""

from __future__ import annotations

from dataclasses import replace

from .conditions import Recorder, recording, require_multiple
from .diagnostics import Loc, error
from .dims import Dim, nonnegative, show_shape
from .ir import OPS, Graph, Node, Region, ShapeError, Type, at, make
from .signature import declared


def _subs(value, mapping: dict[str, Dim]):
    if isinstance(value, Dim):
        return value.subs(mapping)
    if isinstance(value, tuple):
        return tuple(_subs(v, mapping) for v in value)
    return value


def _local(d: Dim) -> Dim:
    """A `fn`'s dimension as its source writes it (`H`, not `cell.H#3`)."""
    return d.subs({s: Dim.of(s.split(".", 1)[1].split("#")[0]) for s in d.symbols if "#" in s})


def _declared(shape) -> str:
    return show_shape(tuple(_local(d) for d in shape))


def _bind(node: Node, arg: Node, mapping: dict[str, Dim]) -> None:
    """Unify a `fn` parameter's declared shape with its argument's, binding the `fn`'s dimensions:
    a dimension is bound where it is the one unknown of a linear expression (`4*H` on an axis
    of `4*K` gives `H = K`), and every other is checked."""
    kw = node.kw
    declared, fn, param = kw["shape"], kw["fn"], kw["param"]
    where = f"argument '{param}' of fn '{fn}'"
    if kw["dtype"] == "int" and arg.dtype == "float":
        raise ShapeError(f"{where} must be an integer value, got a float one")
    if arg.ndim != len(declared):
        raise ShapeError(
            f"{where} is declared {show_shape(tuple(_local(d) for d in declared))} "
            f"({len(declared)}-d) "
            f"but the value passed is {show_shape(arg.shape)} ({arg.ndim}-d)"
        )
    pending = list(zip(declared, arg.shape))
    while pending:
        left = []
        for declared_dim, have in pending:
            want = declared_dim.subs(mapping)
            unknown = [s for s in want.symbols if "#" in s]
            if not unknown:
                if want != have:
                    raise ShapeError(_mismatch(where, fn, arg, declared_dim, want, have))
                continue
            solved = solve(want, have, unknown, f"{where}, declared {_declared(declared)}")
            if solved is None:
                left.append((declared_dim, have))
                continue
            mapping[unknown[0]] = solved
        if len(left) == len(pending):
            names = sorted(
                {
                    str(_local(Dim.of(s)))
                    for w, _ in left
                    for s in w.subs(mapping).symbols
                    if "#" in s
                }
            )
            raise ShapeError(
                f"{where}: cannot tell {', '.join(names)} from the shape "
                f"{show_shape(arg.shape)} passed; declare {'it' if len(names) == 1 else 'them'} "
                "on its own axis too"
            )
        pending = left


def solve(want: Dim, have: Dim, unknown: list[str], what: str) -> Dim | None:
    """The value of the one unknown of `want == have` when `want` is linear in it, else None;
    where it must divide, the condition says that `what` needs it."""
    if len(unknown) != 1:
        return None
    (x,) = unknown
    coef = dict(want.terms).get((x,))
    rest = want - Dim.of(x) * coef if coef is not None else None
    if rest is None or x in rest.symbols:
        return None
    value = (have - rest).exact_div(coef)
    if not value.integral:
        wrong = f"{_local(Dim.of(x))} = ({have - rest})/{coef} is not a whole number"
        require_multiple(have - rest, Dim.of(coef), what, wrong)
    return value


def _mismatch(where: str, fn: str, arg: Node, declared: Dim, want: Dim, have: Dim) -> str:
    if declared.is_const:
        return f"{where}: dimension {want} does not match {have}"
    local = _local(declared)
    if len(declared.terms) == 1 and declared.terms[0] == ((next(iter(declared.symbols)),), 1):
        return (
            f"{where} has shape {show_shape(arg.shape)}, but fn '{fn}' already bound its "
            f"dimension {local} to {want}"
        )
    return (
        f"{where} has shape {show_shape(arg.shape)}, but its dimension {local} is {want} by "
        f"the sizes fn '{fn}' bound"
    )


def _meant(graph: Graph, args: tuple[Node, ...], e: ShapeError) -> str:
    """How to declare the parameter that was probably meant to fit: distinct names are distinct
    dimensions, however their sizes turn out."""
    if e.mismatch is None:
        return ""
    operand, axis, want = e.mismatch
    if operand >= len(args) or args[operand].op != "param" or args[operand].attr("region"):
        return ""
    name = args[operand].attr("name")
    p = next(p for p in graph.params if p.name == name)
    meant = replace(p, dims=tuple(want if i == axis else d for i, d in enumerate(p.dims)))
    return f"; if they are meant to be one size, declare {name}: {declared(meant)}"


def _int_array(n: Node) -> bool:
    return n.dtype == "int" and not n.type.static


def _mixes_int_arrays(n: Node) -> bool:
    """Float arithmetic on an integer array: NumPy would compute it in float64 whatever the
    float operands' dtype, so the integers are cast to the graph's float dtype first."""
    return (
        OPS[n.op].promotes
        and n.dtype == "float"
        and any(_int_array(a) for a in n.args)
        and any(a.dtype == "float" and not a.type.static for a in n.args)
    )


def infer_shapes(graph: Graph) -> Graph:
    """Give every node its type; report the first static shape error at its source location."""
    mapping: dict[Node, Node] = {}
    dims: dict[str, Dim] = {}
    nodes = []
    declared = [d for p in graph.params for d in p.dims]
    recorder = Recorder(tuple(d for d in declared if not nonnegative(d, default=0)))
    recorder.conditions = list(graph.conditions)
    with recording(recorder):
        _type_nodes(graph, mapping, dims, nodes)
    return replace(
        graph,
        nodes=tuple(nodes),
        inputs=tuple(mapping[n] for n in graph.inputs),
        outputs=tuple(mapping[n] for n in graph.outputs),
        conditions=tuple(
            replace(c, left=c.left.subs(dims), right=c.right.subs(dims)) for c in recorder.final()
        ),
    )


def _type_nodes(graph: Graph, mapping: dict, dims: dict, nodes: list, body=None) -> None:
    """Type `body` (a loop body's nodes; the graph's by default) in order, appending the typed
    nodes to `nodes`."""
    for n in graph.nodes if body is None else body:
        args = tuple(mapping[a] for a in n.args)
        try:
            if n.op == "bind":
                with at(n.loc):  # (a condition it records points at the call)
                    _bind(n, args[0], dims)
                mapping[n] = args[0]
                continue
            if n.op == "loop" and n.type is None:
                with at(n.loc):
                    m = _type_loop(graph, n, args, dims)
            elif n.type is not None and n.op != "dim":
                m = n
            else:
                attrs = {k: _subs(v, dims) for k, v in n.attrs}
                with at(n.loc):
                    m = make(n.op, *args, hint=n.hint, **attrs)
                    if OPS[m.op].check:
                        OPS[m.op].check(m)
                    if _mixes_int_arrays(m):
                        casts = {a: make("cast", a) for a in args if _int_array(a)}
                        nodes.extend(casts.values())
                        args = tuple(casts.get(a, a) for a in args)
                        m = make(n.op, *args, hint=n.hint, **attrs)
        except ShapeError as e:
            raise error(n.loc, str(e) + _meant(graph, args, e)) from None
        mapping[n] = m
        nodes.append(m)


def _type_loop(graph: Graph, n: Node, args: tuple[Node, ...], dims: dict) -> Node:
    """A loop typed: its body typed with the loop variable an integer, each carried value of
    its type before the loop and each outer value of its own type. A carried value whose type
    an iteration changes is an error at the statement that changes it, but an integer that
    becomes a float, as `loss = 0` does in `loss = loss + ...`, is carried as a float."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    carried = sum(k[0] == "carry" for k in kinds)
    inits, outer = args[: len(kinds)], args[len(kinds) :]
    types = [Type("int", ())]
    types += [Type(a.dtype, a.shape) for a in inits[:carried]]
    types += [a.type for a in outer]
    for _ in range(2):
        params = tuple(replace(p, type=t) for p, t in zip(body.params, types))
        mapping = dict(zip(body.params, params))
        nodes: list[Node] = []
        _type_nodes(graph, mapping, dims, nodes, [m for m in body.nodes if m not in mapping])
        results = tuple(mapping[r] for r in body.results)
        changed = _carried_changes(params[1 : 1 + carried], results[:carried], inits)
        if changed is None:
            break
        i, value = changed
        types[1 + i] = Type("float", types[1 + i].shape)
    else:  # pragma: no cover - a float carried value does not change type twice
        raise AssertionError("a carried value changed its type twice")
    r, written = carried, kw.get("written", ())
    for k, (kind, init) in enumerate(zip(kinds[carried:], inits[carried:])):
        where = Loc(*written[k]) if k < len(written) else n.loc
        _check_slot(init, kind[1], results[r], results[r + 1 : r + 1 + len(kind[1])], where)
        r += 1 + len(kind[1])
    attrs = {k: _subs(v, dims) for k, v in n.attrs if k not in ("body",)}
    return make("loop", *args, hint=n.hint, body=Region(params, results), **attrs)


def _carried_changes(params, results, inits):
    """The first carried value whose type an iteration changes: (its position, its value at the
    end of an iteration) where it may become a float, else an error at the statement."""
    for i, (p, r, init) in enumerate(zip(params, results, inits)):
        if (r.dtype, r.shape) == (p.dtype, p.shape):
            continue
        name = p.attr("name")
        if r.shape == p.shape and p.dtype == "int" and r.dtype == "float" and init.type.static:
            return i, r
        raise error(
            r.loc,
            f"'{name}' is carried from one iteration to the next, so it must keep its type: it "
            f"is {Type(p.dtype, p.shape)} before the loop and {Type(r.dtype, r.shape)} after "
            "this statement",
        )
    return None


def _check_slot(array: Node, axes: tuple[int, ...], value: Node, positions, where) -> None:
    """A slot write's value fits its slot, and each position is an integer."""
    slot = tuple(d for i, d in enumerate(array.shape) if i not in axes)
    for position in positions:
        if position.dtype != "int" or position.ndim:
            raise error(where, f"a slot's position is one integer, not {position.type}")
    if array.dtype != "float" and value.dtype == "float":
        raise error(where, f"a float value cannot be written into an {array.dtype} array")
    if value.shape != slot:
        raise error(
            where,
            f"the slot written has shape {show_shape(slot)} (one position on axis "
            f"{', '.join(map(str, axes))} of an array of shape {show_shape(array.shape)}), but "
            f"the value written is {show_shape(value.shape)}",
        )
