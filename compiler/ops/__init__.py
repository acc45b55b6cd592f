"""The operations: for each, its shape rule, its emission, its adjoint and its JVP, side by side.

Adding an operation means adding one entry to the registry, in the module of its family; the test
suite is parametrized over `OPS` and checks every adjoint against finite differences and autograd.
Adjoints return one gradient per argument and may leave a gradient in the result's broadcast shape:
autodiff reduces it to the argument's shape. An emission returns data (`bpc.expr`): a call of a
function of the array namespace, an operator, a method; the printer writes it as NumPy.

This module holds what every family shares: `register`, what an emission may know besides its
operands (`At`), the shape helpers (broadcasting, axes), and the shapes JVP rules share (`linear`,
`multilinear`, `joined`, `diagonal`, `no_tangent`).
"""

from __future__ import annotations

import importlib
import math

from ..dims import Dim, Shape, product, show_shape
from ..expr import ALL, ELLIPSIS, NONE, Attr, Call, Expr, Lit, Subscript, array, builtin
from ..expr import shape as shape_of
from ..ir import OPS, Node, OpDef, ShapeError, Type, make


class At:
    """What an operation's emission may know besides its operands' expressions: the typed node
    it emits (`node`, whose `args` give the operands' types), the graph's name, the expression
    of the graph's float dtype where the code knows it (`dtype`, else None), and which values
    may be Python numbers when the module runs (see `python_numbers`)."""

    __slots__ = ("node", "facts")

    def __init__(self, node: Node, facts: Facts):
        self.node = node
        self.facts = facts

    @property
    def graph(self) -> str:
        return self.facts.graph

    @property
    def dtype(self) -> Expr | None:
        return self.facts.dtype

    @property
    def retyped(self) -> bool:
        """Whether the lowering gives this float, made of numbers and masks alone, the graph's
        float dtype (NumPy would make it float64); an operation that is `own_dtype` gives it
        that dtype (`dtype`) itself."""
        return self.node in self.facts.born_weak


class Facts:
    """What the lowering knows of one function's values (see `At`): the values whose float
    dtype comes from the caller's arrays (`strong`), the floats made of numbers alone that it
    converts to the graph's dtype (`born_weak`), that dtype's expression, and whether the code
    is the array-API target's (`functional`), whose libraries make a Python float times a mask
    of their default float dtype (PyTorch's float32) where NumPy makes it float64."""

    __slots__ = ("graph", "dtype", "strong", "born_weak", "functional")

    def __init__(self, graph: str, dtype: Expr | None, strong, born_weak, functional=False):
        self.graph = graph
        self.dtype = dtype
        self.strong = strong
        self.born_weak = born_weak
        self.functional = functional


def register(
    name,
    infer,
    emit,
    adjoint=None,
    *,
    jvp=None,
    elementwise=False,
    doc="",
    call=None,
    flops=None,
    view=False,
    check=None,
    read_only=False,
    leaf=False,
    fresh=None,
    augmented=None,
    commutes=False,
    ufunc=False,
    scales=None,
    fold=None,
    expand=None,
    promotes=None,
    own_dtype=False,
    math=None,
    **static,
):
    """Add an operation; `call` and `static` say how the language spells it, `flops` how many
    floating-point operations it does (see `OpDef`; one per result element when elementwise),
    `view` whether its result may be a view of its first argument, `check` what its operands'
    types cannot say; `jvp` is forward mode's rule, beside the adjoint; the other facts are
    `OpDef`'s. A leaf is no new array, and an elementwise
    operation computes in its operands' promoted dtype, unless told otherwise."""
    if flops is None and elementwise:
        flops = per_element
    OPS[name] = OpDef(
        name,
        infer,
        emit,
        adjoint,
        elementwise,
        doc,
        call,
        tuple(static.items()),
        flops=flops,
        view=view,
        check=check,
        read_only=read_only,
        leaf=leaf,
        fresh=not leaf if fresh is None else fresh,
        augmented=augmented,
        commutes=commutes,
        ufunc=ufunc,
        scales=scales,
        fold=fold,
        expand=expand,
        promotes=elementwise if promotes is None else promotes,
        own_dtype=own_dtype,
        math=math,
        jvp=jvp,
    )


# ---------------------------------------------------------------------------------------------
# The shapes JVP rules share (`OpDef.jvp`): `tangents` is aligned with the arguments, None for a
# zero tangent; a rule returns the result's tangent, None for zero


def total(terms) -> Node | None:
    """The sum of the terms that are not None (None when none is)."""
    out = None
    for term in terms:
        if term is not None:
            out = term if out is None else out + term
    return out


def linear(position: int = 0):
    """The JVP of an operation linear in its argument at `position`, the others fixed and not
    differentiated (indices, positions, a shape to fill): the operation on that tangent.
    `sum(t)`, `t.T`, `t[idx]`, `pad(t)`, `scatter_add(like, idx, t)`."""

    def jvp(tangents, y, *args, **attrs):
        t = tangents[position]
        if t is None:
            return None
        return make(y.op, *args[:position], t, *args[position + 1 :], **attrs)

    return jvp


def multilinear(tangents, y, *args, **attrs):
    """The JVP of an operation linear in each argument apart (a product: matmul, einsum): the
    sum over the arguments of the operation with that one argument replaced by its tangent,
    `dA @ B + A @ dB`."""
    return total(
        make(y.op, *args[:i], t, *args[i + 1 :], **attrs) if t is not None else None
        for i, t in enumerate(tangents)
    )


def joined(tangents, y, *args, **attrs):
    """The JVP of an operation linear in all its arguments together (concat, stack): the
    operation on the tangents, zeros for the arguments without one."""
    if all(t is None for t in tangents):
        return None
    parts = [make("zeros", shape=a.shape) if t is None else t for t, a in zip(tangents, args)]
    return make(y.op, *parts, **attrs)


def diagonal(adjoint):
    """The JVP of an elementwise operation, read off its adjoint: its Jacobian is diagonal, so
    it is its own transpose, and the adjoint applied to one argument's tangent gives that
    argument's part of the result's tangent (`exp`: g * y becomes t * y; `mul`: t_a * b +
    a * t_b). The adjoint is the one rule to get right; this is not a second copy of it."""

    def jvp(tangents, y, *args, **attrs):
        return total(
            adjoint(t, y, *args, **attrs)[i] if t is not None else None
            for i, t in enumerate(tangents)
        )

    return jvp


def no_tangent(tangents, y, *args, **attrs) -> None:
    """The JVP of an operation whose derivative is zero wherever it has one (a comparison,
    `sign`, a count, a fill): no tangent."""
    return None


# ---------------------------------------------------------------------------------------------
# Floating-point operations (`OpDef.flops`): estimates in the dimension names, for `bpc stats`


def size(t: Type) -> Dim:
    """The number of elements of a value of type `t`."""
    return product(t.shape)


def per_element(y: Type, *args: Type, **attrs) -> Dim:
    """One operation per element of the result: elementwise operations, comparisons."""
    return size(y)


def no_flops(y: Type, *args: Type, **attrs) -> Dim:
    """Views, copies, gathers, fills and conversions: memory traffic, no arithmetic."""
    return Dim.of(0)


def flops_of(node: Node) -> Dim:
    """The floating-point operations of one node; arithmetic on plain Python numbers (sizes,
    constants) is no NumPy operation and counts nothing."""
    if node.type.static:
        return Dim.of(0)
    return OPS[node.op].flops(node.type, *(a.type for a in node.args), **node.kw)


# ---------------------------------------------------------------------------------------------
# Shape helpers


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting over symbolic shapes; distinct dimension names never broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dim = Dim.of(1)
        for j, s in enumerate(shapes):
            d = s[i - ndim + len(s)] if i - ndim + len(s) >= 0 else Dim.of(1)
            if d == dim or d == Dim.of(1):
                continue
            if dim == Dim.of(1):
                dim = d
                continue
            raise ShapeError(
                f"cannot broadcast shapes {', '.join(show_shape(s) for s in shapes)}: "
                f"dimension {dim} does not match {d}",
                mismatch=(j, i - ndim + len(s), dim),
            )
        out.append(dim)
    return tuple(out)


def promote(*types: Type, floating=False) -> str:
    kinds = {t.dtype for t in types}
    if floating or "float" in kinds:
        return "float"
    return "int" if "int" in kinds else "bool"


def normalize_axes(axis, ndim: int, what: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; `None` means all of them."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise ShapeError(f"{what}: axis must be an integer or a tuple of integers")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{what}: axis {a} is out of range for a {ndim}-d value")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis")
    return tuple(sorted(out))


def python_numbers(at: At) -> bool:
    """Whether every operand of the node being emitted may be a Python number when the module
    runs: a constant, a size, or a 0-d value made of `[]` parameters and douts alone, which the
    caller may pass as Python numbers. Python's arithmetic and `math` on them raise
    (ZeroDivisionError, "math domain error") where NumPy gives inf or nan and a warning."""
    strong = at.facts.strong
    return all(a.ndim == 0 and (a.type.static or a not in strong) for a in at.node.args)


def number_call(at: At, fn: str, *args: Expr) -> Call:
    """`float(np.fn(args))`: NumPy's function on numbers that may be Python's, for NumPy's answer
    (`float(np.sqrt(-1.0))` is nan, with NumPy's warning), kept a Python float, which takes the
    dtype of the arrays it meets (a NumPy float64 would make float32 arrays float64). A value that
    the lowering gives the graph's float dtype anyway is left a NumPy number."""
    call = array(fn, *args)
    if at.retyped and at.dtype is not None:
        return call
    return builtin("float", call)


def number_filled(at: At, x: Expr, dims: Shape) -> Call:
    """A 0-d value, maybe a Python number, as an array of a shape of size-1 axes."""
    return array("full", shape_of(dims), x)


def dtype_of(x: Expr, ndim: int) -> Expr:
    """The float dtype of a value: `x.dtype` for an array; for a 0-d float, which may be a
    Python int, the dtype it has promoted with a float, `np.result_type(x, 1.0)`."""
    return Attr(x, "dtype") if ndim else array("result_type", x, Lit(1.0))


def new_last_axis(x: Expr, ndim: int) -> Subscript:
    """`x[:, None]`, or `x[..., None]` for a value of more than one axis."""
    return Subscript(x, (ALL if ndim == 1 else ELLIPSIS, NONE))


def last_axis_dropped(x: Expr, ndim: int) -> Subscript:
    """`x[:, 0]`, or `x[..., 0]`, for a value of `ndim` + 1 axes whose last has size 1."""
    return Subscript(x, (ALL if ndim == 1 else ELLIPSIS, Lit(0)))


# Every built-in function of the language (docs/language.md); a call to one that no registered
# operation spells yet gets a clean "not supported yet" diagnostic.
LANGUAGE_BUILTINS = frozenset(
    "exp log log1p sqrt abs sin cos tanh sigmoid relu softplus erf gelu mish maximum minimum where "
    "clip einsum transpose sum mean max min logsumexp softmax log_softmax cross_entropy one_hot "
    "reshape take take_along concat stack pad zeros ones full arange tril triu conv2d max_pool2d avg_pool2d".split()
)

# The constants of the language: plain numbers, which a value or a dimension of the same name
# shadows (`where(mask, x, -inf)`, `sqrt(2 / pi)`).
CONSTANTS = {"inf": math.inf, "pi": math.pi}


# The families register their operations on import.
for _family in (
    "leaves",
    "elementwise",
    "linalg",
    "shape",
    "reduce",
    "nn",
    "index",
    "construct",
    "conv",
    "loop",
):
    importlib.import_module(f"{__name__}.{_family}")

SPELLED = frozenset(name for name, op in OPS.items() if op.call)
PLANNED = LANGUAGE_BUILTINS - SPELLED
