"""Stage 3: type every node. Symbolic dimensions are unified, broadcasting checked, and a static
mismatch is a compile error at the line that caused it. A `fn`'s dimensions are bound per call
site, so after this pass no `bind` node and no `fn`-local dimension remains."""

from __future__ import annotations

from dataclasses import replace

from .diagnostics import error
from .dims import Dim, show_shape
from .ir import OPS, Graph, Node, ShapeError, at, make


def _subs(value, mapping: dict[str, Dim]):
    if isinstance(value, Dim):
        return value.subs(mapping)
    if isinstance(value, tuple):
        return tuple(_subs(v, mapping) for v in value)
    return value


def _bind(node: Node, arg: Node, mapping: dict[str, Dim]) -> None:
    """Unify a `fn` parameter's declared shape with its argument's, binding the `fn`'s dimensions."""
    kw = node.kw
    declared, fn, param = kw["shape"], kw["fn"], kw["param"]
    where = f"argument '{param}' of fn '{fn}'"
    if kw["dtype"] == "int" and arg.dtype == "float":
        raise ShapeError(f"{where} must be an integer value, got a float one")
    if arg.ndim != len(declared):
        local = {s: Dim.of(s.split(".", 1)[1].split("#")[0]) for d in declared for s in d.symbols}
        raise ShapeError(
            f"{where} is declared {show_shape(tuple(d.subs(local) for d in declared))} "
            f"({len(declared)}-d) "
            f"but the value passed is {show_shape(arg.shape)} ({arg.ndim}-d)"
        )
    for want, have in zip(declared, arg.shape):
        if want.is_const:
            if want != have:
                raise ShapeError(f"{where}: dimension {want} does not match {have}")
            continue
        (sym,) = want.symbols
        if sym in mapping and mapping[sym] != have:
            local = sym.split(".", 1)[1].split("#")[0]
            raise ShapeError(
                f"{where} has shape {show_shape(arg.shape)}, but fn '{fn}' already bound its "
                f"dimension {local} to {mapping[sym]}"
            )
        mapping[sym] = have


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
    for n in graph.nodes:
        args = tuple(mapping[a] for a in n.args)
        try:
            if n.op == "bind":
                _bind(n, args[0], dims)
                mapping[n] = args[0]
                continue
            if n.type is not None and n.op != "dim":
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
            raise error(n.loc, str(e)) from None
        mapping[n] = m
        nodes.append(m)
    return replace(
        graph,
        nodes=tuple(nodes),
        inputs=tuple(mapping[n] for n in graph.inputs),
        outputs=tuple(mapping[n] for n in graph.outputs),
    )
