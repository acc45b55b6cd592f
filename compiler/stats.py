"""`bpc stats`: what the generated code costs, read off the optimized IR before it runs.

Per graph: the NumPy operations of the forward and of the backward pass (and of the fused
`g_grad`), an estimate of their floating-point operations, and the bytes the forward keeps in
`cache` for the backward, each as a formula in the dimension names (a `Dim`) and evaluated for
the sizes given.

What counts:

- an operation is a node of the optimized IR that the emitted module computes, whether it has a
  line of its own or is written inline; parameters, upstream gradients, constants, dimension
  sizes and arithmetic on plain Python numbers are not operations. Views (transpose, reshape,
  broadcast_to, basic indexing) are counted apart: NumPy makes them without touching the data.
- flops come from each operation's own rule (`OpDef.flops`, beside its shape rule): one per
  result element for elementwise operations and comparisons (a transcendental function counts
  one), `2*m*k*n` for a matrix product, the input's size for a reduction (a mean also divides
  each result), nothing for views, copies and gathers.
- a loop's body is counted per iteration, in a row of its own under its function's (and a
  loop nested in it under its row): its operations and views, and its flops, which count
  in its function's times the trip count. The Python integer arithmetic of positions and
  conditions (`t - 1`, `t > 0`) and the choice `hs[:, t - 1] if t > 0 else h0` are no
  operations; the addition of each sum (`dWh += ...`) is one, of its size; a slot's store
  (`hs[:, t] = h`) is none.
- cache bytes are elements times their size: 8 for a float (4 with float32), 8 for an integer,
  1 for a boolean mask; a parameter in the cache is a reference to the caller's array, counted
  in full (as PyTorch's saved tensors are) and marked; a dimension size or a plain number in
  the cache is a Python number and counts nothing. The stacks a loop fills for its backward
  (`c_steps`, `[T, N, H]`) are cached values like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from . import signature
from .dims import Dim, product
from .emit import Compiled, cache_entries, cached_sizes
from .ir import OPS, Graph, Node, is_view, view_base
from .loops import distinct
from .ops import flops_of
from .ops.loop import counts, width
from .pipeline import compile_graphs

ITEMSIZE = {"float64": 8, "float32": 4}


@dataclass(frozen=True)
class Part:
    """The operations of one generated function: how many, how many of them are views, and their
    floating-point operations; those of its loops' bodies are counted per iteration, in `loops`
    (and their flops, times the trip count, in `flops`)."""

    ops: int
    views: int
    flops: Dim
    loops: tuple[LoopPart, ...] = ()


@dataclass(frozen=True)
class LoopPart:
    """One loop, `for var in range(...)`: `trips` iterations, each doing what `each` counts (the
    operations of its body, and the addition of each sum, `dWh += ...`; those of a loop nested
    in it apart, in `each.loops`)."""

    var: str
    trips: Dim
    each: Part
    reverse: bool = False  # a backward's loop, `for t in reversed(range(T))`


@dataclass(frozen=True)
class Kept:
    """One value in the cache: its name in the generated code, its type, its elements and the
    bytes of each (0 for a plain Python number)."""

    name: str
    type: str
    elements: Dim
    itemsize: int
    param: bool  # a reference to the caller's array, or a view of it
    views: str | None = None  # the name of another cache entry whose array this one views

    @property
    def bytes(self) -> Dim:
        return Dim.of(0) if self.views else self.itemsize * self.elements

    def __str__(self) -> str:
        return f"{self.name} {self.type}" + (f" (a view of {self.views})" if self.views else "")


@dataclass(frozen=True)
class GraphStats:
    name: str
    dims: tuple[str, ...]  # the dimension names, in the order the parameters declare them
    forward: Part
    backward: Part
    grad: Part | None  # the fused g_grad of a graph with one scalar output
    cache: tuple[Kept, ...]
    cache_dims: tuple[str, ...]  # sizes the backward reads, kept as Python ints

    @property
    def cache_bytes(self) -> Dim:
        return sum((k.bytes for k in self.cache), Dim.of(0))


def _part(nodes: Iterable[Node], plain: frozenset[Node] = frozenset()) -> Part:
    """The operations among `nodes` (a graph's, or a loop body's, whose `plain` values are
    Python numbers: its loop variable and the integer arithmetic on it, `t - 1`, `t > 0`)."""
    ops, loops, flops = [], [], Dim.of(0)
    for n in nodes:
        if OPS[n.op].leaf or n.type.static or n in plain or n.op in ("result", "if_else"):
            continue  # (`if_else` chooses one of two arrays: `hs[:, t - 1] if t > 0 else h0`)
        if n.op == "loop":
            loop = _loop_part(n)
            loops.append(loop)
            flops += loop.each.flops * loop.trips
            continue
        ops.append(n)
    views = [n for n in ops if is_view(n) and not any(a.type.static for a in n.args)]
    flops += sum((flops_of(n) for n in ops), Dim.of(0))
    return Part(len(ops) - len(views), len(views), flops, tuple(loops))


def _loop_part(n: Node) -> LoopPart:
    """What one iteration of loop `n` does: its body's operations, and an addition per element
    for each sum (`dWh += ...`) and each slot added to (`dx[:, t] += ...`, unless each
    iteration's is the first write to its slot, into zeros: `dx[:, t] = ...`)."""
    kw = n.kw
    body, kinds = kw["body"], kw["kinds"]
    t = body.params[0]
    plain = {t}
    for m in body.nodes:  # (Python integers: positions and conditions, `t - 1`, `t > 0`)
        if m.args and m.ndim == 0 and m.dtype != "float":
            if all(a in plain or a.type.static for a in m.args):
                plain.add(m)
    each = _part(body.nodes, frozenset(plain))
    r = counts(kinds)[0]
    for kind, init in zip(kinds, n.args):
        if kind[0] == "carry":
            continue
        positions = body.results[r + 1 : r + width(kind)]
        added = kind[0] == "sum" or kind[2] == "add"
        if added and not (init.op == "zeros" and any(distinct(p, t) for p in positions)):
            size = product(body.results[r].shape)
            each = replace(each, ops=each.ops + 1, flops=each.flops + size)
        r += width(kind)
    trips = kw["stop"] - kw["start"]
    return LoopPart(t.attr("name") or "t", trips, each, bool(kw.get("reverse")))


def _refers_to_param(n: Node) -> bool:
    """A parameter, or a view of one: the cache holds a reference, not a copy."""
    return view_base(n).op == "param"


def _viewed(n: Node, names: dict[Node, str]) -> str | None:
    """The name of another cache entry whose array n is a view of (a flattened pooled image
    kept beside the image): its bytes are counted once."""
    while is_view(n):
        n = n.args[0]
        if n in names:
            return names[n]
    return None


def graph_stats(
    c: Compiled, dtype: str = "float64", compiled: Sequence[Compiled] = ()
) -> GraphStats:
    """The costs of one compiled graph, in the module compiled from `compiled` (by default from
    `c` alone; it decides the names); `dtype` is the float dtype the cache bytes assume."""
    g = c.pair
    forward = g.forward
    grad = None
    if c.grad is not None:
        grad = _part(c.grad.nodes)
    itemsize = {"float": ITEMSIZE[dtype], "int": 8, "bool": 1}
    kept = []
    entries = cache_entries(list(compiled or [c]), c)
    names = {n: name for name, n in entries}
    for name, n in entries:
        views = _viewed(n, names)
        param = _refers_to_param(n)
        base = view_base(n) if param else n  # (a view of a parameter keeps all of it alive)
        elements = Dim.of(0) if n.type.static else product(base.shape)
        kept.append(Kept(name, str(n.type), elements, itemsize[n.dtype], param, views))
    return GraphStats(
        g.name,
        _dim_names(g),
        _part(n for n in g.nodes if n in forward),
        _part(n for n in g.nodes if n not in forward),
        grad,
        tuple(kept),
        tuple(cached_sizes(list(compiled or [c]), c)),
    )


def _dim_names(g: Graph) -> tuple[str, ...]:
    return tuple(signature.order(g.params))


def stats_source(
    text: str,
    graph: str | None = None,
    dtype: str = "float64",
    sizes: dict[str, int] | None = None,
) -> list[GraphStats]:
    """The costs of every graph in `text` (or of `graph` alone), compiled for `sizes` as `bpc
    compile --dim` does; raises CompileError on bad input and KeyError for a graph the text does
    not define."""
    return select(compile_graphs(text, sizes=sizes), graph, dtype)


def select(compiled: list[Compiled], graph: str | None, dtype: str) -> list[GraphStats]:
    names = [c.pair.name for c in compiled]
    if graph is not None and graph not in names:
        raise KeyError(f"no graph named '{graph}'; the file has {', '.join(names) or 'none'}")
    return [
        graph_stats(c, dtype, compiled) for c in compiled if graph is None or c.pair.name == graph
    ]


def unknown_dims(stats: Sequence[GraphStats], sizes: dict[str, int]) -> str | None:
    """A message naming the sizes given for dimensions that no graph has, or None."""
    known = list(dict.fromkeys(d for s in stats for d in s.dims))
    unknown = [d for d in sizes if d not in known]
    if not unknown:
        return None
    which = ", ".join(unknown)
    plural = "s" * (len(unknown) > 1)
    if len(stats) == 1:
        where, whose = f"{stats[0].name} has no dimension{plural} {which}", "its"
    else:
        where, whose = f"no graph has a dimension{plural} named {which}", "the"
    have = f"{whose} dimensions are {', '.join(known)}" if known else "there are no named ones"
    return f"--dim: {where}; {have}"


# ---------------------------------------------------------------------------------------------
# Formulas and numbers


def formula(d: Dim, order: Sequence[str] = ()) -> str:
    """`d` as people write it: the factors of a term in `order` (the declaration order), powers
    as `T**2`, the highest degrees first: `2*N*D*H + 2*N*H*C + N*C`."""
    if not d.terms:
        return "0"
    rank = {s: i for i, s in enumerate(order)}

    def ranked(m):
        return sorted(m, key=lambda s: (rank.get(s, len(rank)), str(s)))  # a FloorDiv too

    def monomial(m) -> list[str]:
        out = []
        for s in dict.fromkeys(ranked(m)):
            k = m.count(s)
            out.append(str(s) if k == 1 else f"{s}**{k}")
        return out

    terms = sorted(
        d.terms,
        key=lambda t: (-len(t[0]), [(rank.get(s, len(rank)), str(s)) for s in ranked(t[0])]),
    )
    parts = []
    for m, c in terms:
        factors = monomial(m)
        if abs(c) != 1 or not factors:
            factors.insert(0, str(abs(c)))
        parts.append(("- " if c < 0 else "+ ") + "*".join(factors))
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def evaluate(d: Dim, sizes: dict[str, int]) -> Dim:
    """`d` with the given sizes substituted: a constant when every size it needs is given."""
    return d.subs({s: Dim.of(v) for s, v in sizes.items()})


def _scaled(v: int, base: int, units: Sequence[str]) -> str:
    x, unit = float(v), units[0]
    for u in units[1:]:
        if abs(x) < base:
            break
        x, unit = x / base, u
    if unit == units[0]:
        return f"{v} {unit}"
    return f"{f'{x:#.3g}'.rstrip('.')} {unit}"


def count_text(v: int) -> str:
    """A number of flops with three significant digits: `13.0 Mflop`."""
    return _scaled(v, 1000, ("flop", "kflop", "Mflop", "Gflop", "Tflop", "Pflop"))


def bytes_text(v: int) -> str:
    """A number of bytes in binary units: `1.23 MiB`."""
    return _scaled(v, 1024, ("B", "KiB", "MiB", "GiB", "TiB"))


# ---------------------------------------------------------------------------------------------
# The report


def bytes_formula(kept: Iterable[Kept], order: Sequence[str] = ()) -> str:
    """Bytes grouped by element size: `8*(N*D + N*H) + N*C`."""
    groups: dict[int, Dim] = {}
    constant = 0  # elements whose number is known, as bytes
    for k in kept:
        if k.views:  # (counted with the array it views)
            continue
        if k.elements.is_const:
            constant += k.itemsize * k.elements.value
        else:
            groups[k.itemsize] = groups.get(k.itemsize, Dim.of(0)) + k.elements
    parts = []
    for itemsize, elements in sorted(groups.items(), reverse=True):
        if len(elements.terms) == 1:
            parts.append(formula(itemsize * elements, order))
        else:
            text = formula(elements, order)
            parts.append(text if itemsize == 1 else f"{itemsize}*({text})")
    if constant or not parts:
        parts.append(str(constant))
    return " + ".join(parts)


def report(stats: GraphStats, sizes: dict[str, int] | None = None, dtype: str = "float64") -> str:
    """The table of one graph. With every size given, the costs are evaluated; with some, the
    formulas have those substituted; with none, they are the formulas alone."""
    sizes = {d: v for d, v in (sizes or {}).items() if d in stats.dims}
    missing = [d for d in stats.dims if d not in sizes]
    given = ", ".join(f"{d}={sizes[d]}" for d in stats.dims if d in sizes)
    if not stats.dims:
        head = stats.name
    elif not sizes:
        head = f"{stats.name}  [{', '.join(stats.dims)}]"
    elif missing:
        head = f"{stats.name}  ({given}; not given: {', '.join(missing)})"
    else:
        head = f"{stats.name}  ({given})"

    def shown(d: Dim) -> str:  # a formula, with the sizes substituted when some are missing
        return formula(evaluate(d, sizes) if missing else d, stats.dims)

    def kept_bytes(kept: Sequence[Kept]) -> str:
        if missing:
            return bytes_formula(
                [replace(k, elements=evaluate(k.elements, sizes)) for k in kept], stats.dims
            )
        return bytes_formula(kept, stats.dims)

    def flops_row(label: str, part: Part, note: str = ""):
        value = "" if missing else count_text(evaluate(part.flops, sizes).value)
        return (label, str(part.ops), str(part.views), value, shown(part.flops) + note)

    def loop_rows(part: Part, depth: int):  # (per iteration: a loop's rows under its part's)
        for loop in part.loops:
            note = f" per iteration, {shown(loop.trips)} iterations"
            label = f"{'  ' * depth}loop {'back ' * loop.reverse}over {loop.var}"
            yield flops_row(label, loop.each, note)
            yield from loop_rows(loop.each, depth + 1)

    rows = [("", "numpy ops", "views", "at these sizes", "formula")]
    parts = [("forward", stats.forward), ("backward", stats.backward), ("grad", stats.grad)]
    for label, part in parts:
        if part is not None:
            rows.append(flops_row(label, part))
            rows += loop_rows(part, 1)
    n = len(stats.cache)
    value = "" if missing else bytes_text(evaluate(stats.cache_bytes, sizes).value)
    text = f"{kept_bytes(stats.cache)} bytes ({dtype})"
    rows.append(("cache", f"{n} value{'s' * (n != 1)}", "", value, text))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2])]
        if not missing:
            cells.append(r[3].rjust(widths[3]))
        lines.append(("  " + "  ".join(cells) + "  " + r[4]).rstrip())

    def amount(kept: list[Kept]) -> str:
        if missing:
            return f"{kept_bytes(kept)} bytes"
        return bytes_text(evaluate(sum((k.bytes for k in kept), Dim.of(0)), sizes).value)

    computed = [k for k in stats.cache if not k.param]
    referenced = [k for k in stats.cache if k.param]
    indent = " " * (2 + widths[0] + 2)
    if computed or stats.cache_dims:
        text = "computed: " + (", ".join(map(str, computed)) or "nothing")
        if computed:
            text += f"  ({amount(computed)})"
        if stats.cache_dims:
            what = "size" if len(stats.cache_dims) == 1 else "sizes"
            text += f"; the {what} {', '.join(stats.cache_dims)}"
        lines.append(indent + text)
    if referenced:
        names = ", ".join(map(str, referenced))
        lines.append(f"{indent}referenced: {names}  ({amount(referenced)}, the caller's arrays)")
    return "\n".join(lines)


def stats_text(
    stats: Sequence[GraphStats], sizes: dict[str, int] | None = None, dtype: str = "float64"
) -> str:
    """The reports of `stats`, one table per graph."""
    return "\n\n".join(report(s, sizes, dtype) for s in stats) + "\n"
