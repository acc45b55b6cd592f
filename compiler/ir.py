"""The intermediate representation: a small, typed, immutable graph of tensor operations.

A `Node` is one operation applied to other nodes. Nodes are frozen and compared by identity, so a
graph is a DAG that passes rebuild rather than mutate. The backward pass is ordinary IR made of the
same operations, which is what lets the optimizer run over it and autodiff run over it again.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .diagnostics import Loc
from .dims import Dim, Shape, show_shape


@dataclass(frozen=True)
class Type:
    """What a value is: `float`, `int` or `bool` elements, a symbolic shape, and whether it is a
    plain Python number known from constants and dimensions alone (weakly typed, like `2` or `d`).
    """

    dtype: str
    shape: Shape
    static: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        prefix = "" if self.dtype == "float" else self.dtype
        return prefix + show_shape(self.shape)


@dataclass(frozen=True)
class TupleType:
    """The type of a node with several results (a loop's carried values and stacked outputs).
    Each result is read by a node of its own, `result(node, i)`, as JAX reads a tuple's
    elements, so every other node keeps one `Type` and no pass needs to know."""

    items: tuple[Type, ...]

    # (so that a pass asking every node whether it is a float array passes this one by)
    dtype = "tuple"
    shape = ()
    static = False
    ndim = 0

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.items)) + ")"


class ShapeError(Exception):
    """Raised by a shape rule; the pass that called it adds the source location. `mismatch`,
    when given, is `(operand, axis, dim)`: that operand's axis would have to be `dim`, which lets
    the pass say how to declare a parameter that was probably meant to fit."""

    def __init__(self, message: str, mismatch: tuple | None = None):
        super().__init__(message)
        self.mismatch = mismatch


Attrs = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, eq=False)
class Node:
    """One operation. `attrs` are static arguments (axes, shapes, constants), kept sorted by name."""

    op: str
    args: tuple[Node, ...]
    attrs: Attrs = ()
    type: Type | TupleType | None = None  # a TupleType for a node with several results
    hint: str | None = None  # a name for the value, from the source or from autodiff (`dW`)
    loc: Loc | None = None

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.attrs)

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        attrs = "".join(f", {k}={v!r}" for k, v in self.attrs)
        hint = f" {self.hint!r}" if self.hint else ""
        return f"<{self.op}{attrs} {self.type}{hint}>"

    # Arithmetic builds IR, so adjoint rules read like the math they implement.
    def __add__(self, other):
        return make("add", self, other)

    def __radd__(self, other):
        return make("add", other, self)

    def __sub__(self, other):
        return make("sub", self, other)

    def __rsub__(self, other):
        return make("sub", other, self)

    def __mul__(self, other):
        return make("mul", self, other)

    def __rmul__(self, other):
        return make("mul", other, self)

    def __truediv__(self, other):
        return make("div", self, other)

    def __rtruediv__(self, other):
        return make("div", other, self)

    def __matmul__(self, other):
        return make("matmul", self, other)

    def __pow__(self, other):
        return make("pow", self, other)

    def __neg__(self):
        return make("neg", self)

    @property
    def T(self) -> Node:  # noqa: N802 - NumPy's name
        return make("transpose", self, axes=tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Node:  # noqa: N802 - NumPy's name
        axes = list(range(self.ndim))
        axes[-2:] = axes[-1], axes[-2]
        return make("transpose", self, axes=tuple(axes))


@dataclass(frozen=True)
class OpDef:
    """Everything about one operation, side by side: its shape rule, its NumPy emission, its
    adjoint and its JVP.

    - `infer(*arg_types, **attrs)` returns the result `Type`, or `(Type, attrs)` when it normalizes
      the attributes (negative axes, say); it raises `ShapeError` on a mismatch.
    - `emit(at, *args, **attrs)` returns the operation's code as data (an `expr.Expr`: a call of
      a function of the array namespace, an operator, a method call, ...) on its arguments'
      expressions; `at` (`ops.At`) gives the typed node and what the lowering knows of its
      function. The printer writes it as NumPy.
    - `math(at, *args, **attrs)`, when given, is how the operation reads in the notation of the
      lecture note (`bpc explain`), where that is not its emission read in math notation: the
      outer product of `dq` and `x`, `np.dot(dq[:, None], x[None, :])`, reads `dq x^T`.
    - `adjoint(g, out, *args, **attrs)` returns one gradient (a Node, or None) per argument, built
      from the same operations; a gradient may keep `out`'s broadcast shape, autodiff reduces it.
    - `jvp(tangents, y, *args, **attrs)`, forward mode's rule beside the adjoint: the tangent
      of the result `y` from the tangents of the arguments (`tangents`, aligned with `args`,
      None for a zero tangent: a constant, an integer, a value no `wrt` parameter reaches), as
      IR built with `make`; None where it is zero. It may leave the tangent in a shape that
      broadcasts to the result's: `bpc.forward` broadcasts it. An operation whose derivative
      is zero (a comparison, `sign`, `one_hot`) says so with a rule that returns None.
    - `call` is how the language spells a call, when it does: the parameters in positional order;
      those in `static` are compile-time attributes (with their defaults, `REQUIRED` for none),
      the others are tensor arguments.
    - `flops(result_type, *arg_types, **attrs)` estimates the floating-point operations of the
      emitted code as a `Dim` in the dimension names (`bpc stats`); an elementwise operation's
      default is one per element of its result.
    - `check(node)`, when given, checks what the operands' types cannot say (the value of a
      constant operand) on the typed node, raising `ShapeError`; the shape pass calls it.
    - `view` says whether the NumPy result may be a view of the first argument (basic indexing,
      a reshape): True, or a function of the typed node where it depends on the operands (`W[i]`
      is a view for a 0-d index `i`, a new array for an array of indices). Passes that write into
      arrays or hand them out follow views to the array they share (`is_view`).
    - `read_only`: the result is the first argument broadcast to the result's shape, a view that
      NumPy does not let anyone write (`np.broadcast_to`): a gradient that is one is filled in.
    - `leaf`: no operation at all, a value the code starts from (a parameter, an upstream
      gradient, a constant, a size); a leaf is no new array either.
    - `fresh`: the NumPy result is a new array this operation made, never its operands' memory
      (False for leaves and einsum, which may return a view of an operand; views are `view`).
    - `augmented`: the operator of its augmented assignment (`+` for add: `a += b` works in the
      array of `a`); with `commutes`, in the array of either argument.
    - `ufunc`: its NumPy form takes `out=` for its first argument, so it may work in that
      argument's array: a ufunc (`np.exp(a, out=a)`), or a helper of the argument's shape
      (`_add_along(a, idx, g, out=a)`).
    - `scales`: the number it multiplies its one argument by, so that it may work in that
      argument's array as `a *= scales` (neg: `a *= -1`, in NumPy `np.negative(a, out=a)`).
    - `fold(*values)`: its value on Python numbers, for constant folding (None: never folded).
    - `expand(*args, **attrs)`: a composite's expansion into the operations it is made of, which
      the optimizer writes in its place after differentiation.
    - `promotes`: NumPy computes it in the promoted dtype of all its operands' values (float64
      for an integer array with float32 ones): elementwise operations and products.
    - `own_dtype`: its emission gives a float result made of numbers alone (which NumPy would
      make float64) the graph's float dtype itself, where the code knows it (`at.dtype`):
      `np.zeros((N, H), dtype=x.dtype)`, where the lowering would otherwise append
      `.astype(x.dtype)`.
    """

    name: str
    infer: Callable[..., Any]
    emit: Callable[..., Any]
    adjoint: Callable[..., tuple] | None = None
    elementwise: bool = False
    doc: str = ""
    call: tuple[str, ...] | None = None
    static: tuple[tuple[str, Any], ...] = ()
    flops: Callable[..., Dim] | None = None
    view: bool | Callable[[Node], bool] = False
    check: Callable[[Node], None] | None = None
    read_only: bool = False
    leaf: bool = False
    fresh: bool = True
    augmented: str | None = None
    commutes: bool = False
    ufunc: bool = False
    scales: float | None = None
    fold: Callable[..., Any] | None = None
    expand: Callable[..., Node] | None = None
    promotes: bool = False
    own_dtype: bool = False
    math: Callable[..., Any] | None = None
    jvp: Callable[..., Node | None] | None = None


REQUIRED = object()  # a static call parameter without a default


OPS: dict[str, OpDef] = {}


def is_view(n: Node) -> bool:
    """Whether n's NumPy result may be a view of its first argument (see `OpDef.view`)."""
    view = OPS[n.op].view
    return view(n) if callable(view) else view


def view_base(n: Node) -> Node:
    """The value whose array n is, through views (n itself where it is no view)."""
    while is_view(n):
        n = n.args[0]
    return n


def smaller(n: Node, a: Node) -> bool:
    """Whether value n is smaller than its argument a: fewer axes, or as many with one of them
    1 where a's shape differs (a sum, a row dot, a statistic kept as `[N, 1]`)."""
    return a.ndim > n.ndim or (a.ndim == n.ndim and a.shape != n.shape and Dim.of(1) in n.shape)


_loc: contextvars.ContextVar[Loc | None] = contextvars.ContextVar("loc", default=None)


def here() -> Loc | None:
    """The source position of the nodes being made (see `at`)."""
    return _loc.get()


@contextlib.contextmanager
def at(loc: Loc | None):
    """Nodes made inside this block carry `loc`: a backward node points at its forward line."""
    token = _loc.set(loc)
    try:
        yield
    finally:
        _loc.reset(token)


def const(value: int | float | bool) -> Node:
    dtype = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"
    return Node("const", (), (("value", value),), Type(dtype, (), static=True), loc=_loc.get())


def as_node(x: Node | int | float | bool) -> Node:
    return x if isinstance(x, Node) else const(x)


def make(op: str, *args: Node | int | float, hint: str | None = None, **attrs: Any) -> Node:
    """Apply `op` to typed arguments: its shape rule gives the result's type."""
    args = tuple(as_node(a) for a in args)
    result = OPS[op].infer(*(a.type for a in args), **attrs)
    if isinstance(result, tuple):
        result, attrs = result
    return Node(op, args, tuple(sorted(attrs.items())), result, hint, _loc.get())


def untyped(op: str, *args: Node, hint: str | None = None, **attrs: Any) -> Node:
    """A node whose type the shape pass will infer (used while building IR from syntax)."""
    return Node(op, args, tuple(sorted(attrs.items())), None, hint, _loc.get())


def result(node: Node, index: int) -> Node:
    """The `index`-th result of a node with several (its type a `TupleType`)."""
    return Node("result", (node,), (("index", index),), node.type.items[index], loc=_loc.get())


@dataclass(frozen=True, eq=False)
class Region:
    """A graph inside a node's attributes, such as a loop's body: `params` are its own leaves,
    bound in order to values that the node holding it supplies, and `results` what it computes
    from them. A region is closed: its nodes read its params and constants only, never a node
    outside it, so the passes over the enclosing graph (`schedule`, `rewrite`) see the node
    that holds it as one node like any other. Two regions are equal when their structures are
    (`key`), whoever built them, which is how hash-consing compares the nodes that hold them."""

    params: tuple[Node, ...]
    results: tuple[Node, ...]

    def __post_init__(self):
        free = [n for n in self.nodes if n.op in ("param", "dout") and n not in self.params]
        if free:
            raise ValueError(f"a region reads {free[0]!r} from outside: pass it as a param")

    @functools.cached_property
    def nodes(self) -> tuple[Node, ...]:
        """The region's nodes in a topological order, its params first."""
        return schedule(self.params, self.params + self.results)

    @functools.cached_property
    def key(self) -> tuple:
        """The structure: each node as (op, the positions of its arguments, its attributes, its
        type), in `nodes` order, then the positions of the results. Nodes are named by position
        rather than identity, so regions built apart but alike have equal keys."""
        position = {n: i for i, n in enumerate(self.nodes)}
        body = tuple(
            (n.op, tuple(position[a] for a in n.args), attrs_key(n.attrs), n.type)
            for n in self.nodes
        )
        return body, tuple(position[r] for r in self.results)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def canonical(value: Any) -> Hashable:
    """A hashable form of an attribute's value, equal exactly when the values are the same
    value. Python's `==` says that `1 == 1.0 == True` and `0.0 == -0.0`, but a constant folded
    from one would not stand for another (in NumPy, `1 / -0.0` is `-inf`), so the kind and the
    exact bits of a number are part of its form (`float.hex`, under which nan equals nan).
    Tuples compare item by item, `Dim`s and `Type`s by value, a `Region` by its structure; any
    other value is refused rather than compared by something that is not its value (`repr`,
    `id`)."""
    if value is None or isinstance(value, (str, Dim, Type, TupleType, Region)):
        return value  # (none of these is a tuple, the form of everything below)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, tuple):
        return ("tuple", *map(canonical, value))
    raise TypeError(f"no canonical form for an attribute of type {type(value).__name__}")


def attrs_key(attrs: Attrs) -> tuple:
    """`attrs` in their canonical form (`canonical`), for hash-consing."""
    return tuple((k, canonical(v)) for k, v in attrs)


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str  # "float", "int" or "bool"
    dims: tuple[Dim, ...]  # as declared
    loc: Loc

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(Dim.of(d) for d in self.dims))


@dataclass(frozen=True)
class Graph:
    """One `graph` definition. `nodes` lists every node in a topological order; after autodiff,
    `douts` are the upstream-gradient inputs, aligned with `outputs` (a graph differentiated
    twice keeps the first differentiation's before them), and `grads` the gradients, aligned
    with `wrt`; after optimization, `cache` is what the forward keeps for the backward."""

    name: str
    loc: Loc
    params: tuple[Param, ...]
    inputs: tuple[Node, ...]
    output_names: tuple[str, ...]
    outputs: tuple[Node, ...]
    wrt: tuple[str, ...]
    nodes: tuple[Node, ...]
    douts: tuple[Node, ...] = ()
    grads: tuple[Node, ...] = ()
    cache: tuple[Node, ...] = ()  # forward values the backward reads, chosen by `select_cache`
    cache_dims: frozenset[str] = frozenset()  # dimension sizes the backward reads
    conditions: tuple = ()  # the `bpc.conditions.Condition`s its sizes must meet at call time
    source: str = field(default="", repr=False)

    @property
    def roots(self) -> tuple[Node, ...]:
        return self.outputs + self.grads

    @functools.cached_property
    def forward(self) -> frozenset[Node]:
        """The forward pass: the parameters, every node the outputs depend on, and what the
        cache is made of (`hoisted`). Every other node is the backward's. A value both passes
        read (a constant, the `x` that `dW` reads) is the forward's, which is what makes it
        something the backward may take from the cache. The split is defined by reachability
        rather than stored per node, so no rewrite can leave it stale: optimize, emit, stats,
        draw and explain all read it here. (Computed once per graph; `dataclasses.replace` makes
        a new graph, which computes its own.)"""
        return self._needed | self.hoisted

    @functools.cached_property
    def hoisted(self) -> frozenset[Node]:
        """Backward values that read no upstream gradient and that the forward computes for the
        cache, where that keeps fewer bytes (`select_cache`): needed by no output, so the
        forward alone (`g`) leaves them out."""
        return frozenset(reachable(self.cache)) - self._needed

    @functools.cached_property
    def _needed(self) -> frozenset[Node]:
        """The parameters and every node the outputs depend on."""
        needed = reachable(self.outputs).union(self.inputs)
        # a forward loop's results are the forward's, those that only the backward reads too
        # (the stacks of the values its backward reads, `loops.py`)
        needed.update(n for n in self.nodes if n.op == "result" and n.args[0] in needed)
        return frozenset(needed)


def reachable(roots: Iterable[Node]) -> set[Node]:
    """The nodes that `roots` depend on, the roots included."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.args)
    return seen


def region_param(name: str, region: str, index: int, type: Type | None, loc=None) -> Node:
    """A param of a region (a loop body): its position among the region's params, a name for
    the code, and the region it belongs to, so that no param of one region is another's."""
    attrs = (("index", index), ("name", name), ("region", region))
    return Node("param", (), attrs, type, name, loc)


def frontier(roots: Iterable[Node], inside: Callable[[Node], bool]) -> tuple[list[Node], set]:
    """Walking from `roots` through the nodes `inside` accepts, the first nodes it does not
    (constants and sizes left out), in the order they are found; and every node seen. What a
    loop body reads from outside it (`build.py`), and what a loop's backward reads of its
    forward (`loops.py`)."""
    found: dict[Node, None] = {}
    stack, seen = list(roots), set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if inside(n):
            stack.extend(n.args)
        elif n.op not in ("const", "dim"):
            found[n] = None
    return list(found), seen


def schedule(preferred: Iterable[Node], roots: Iterable[Node]) -> tuple[Node, ...]:
    """The nodes reachable from `roots`, in a topological order that follows `preferred` where the
    dependencies allow (so rebuilt graphs keep their reading order)."""
    roots = list(roots)
    live: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n not in live:
            live.add(n)
            stack.extend(n.args)
    order: list[Node] = []
    placed: set[Node] = set()

    def place(node: Node) -> None:
        work = [(node, False)]
        while work:
            n, expanded = work.pop()
            if n in placed:
                continue
            if expanded:
                placed.add(n)
                order.append(n)
                continue
            work.append((n, True))
            work.extend((a, False) for a in reversed(n.args) if a not in placed)

    for n in preferred:
        if n in live:
            place(n)
    for r in roots:
        place(r)
    return tuple(order)


def rewrite(graph: Graph, fn: Callable[[Node, tuple[Node, ...]], Node]) -> Graph:
    """Rebuild `graph` bottom-up: `fn(node, new_args)` returns the node's replacement. Nodes that
    nothing reachable from the outputs and gradients uses are dropped."""
    mapping: dict[Node, Node] = {}
    order = []
    for n in graph.nodes:
        m = fn(n, tuple(mapping.get(a, a) for a in n.args))
        mapping[n] = m
        order.append(m)

    def get(n: Node) -> Node:
        return mapping.get(n, n)

    outputs = tuple(get(n) for n in graph.outputs)
    grads = tuple(get(n) for n in graph.grads)
    keep = tuple(get(n) for n in graph.inputs + graph.douts)
    nodes = schedule(order, outputs + grads + keep)
    return replace(
        graph,
        nodes=nodes,
        cache=(),
        outputs=outputs,
        grads=grads,
        inputs=tuple(get(n) for n in graph.inputs),
        douts=tuple(get(n) for n in graph.douts),
    )


def with_args(node: Node, args: tuple[Node, ...]) -> Node:
    """`node` with new arguments (the identity when nothing changed). Where an argument's type
    changed, the node's type is its shape rule's again: a rewrite that made an array sum the
    plain number `1.0 * m` makes the values computed from it plain numbers too."""
    if args == node.args:
        return node
    if all(a.type == b.type for a, b in zip(args, node.args)):
        return replace(node, args=args)
    result = OPS[node.op].infer(*(a.type for a in args), **node.kw)
    return replace(node, args=args, type=result[0] if isinstance(result, tuple) else result)


__all__ = [
    "Dim",
    "Graph",
    "Node",
    "OpDef",
    "OPS",
    "Param",
    "Region",
    "ShapeError",
    "TupleType",
    "Type",
    "at",
    "attrs_key",
    "canonical",
    "is_view",
    "make",
    "result",
]
