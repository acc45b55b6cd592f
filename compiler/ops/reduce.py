"""Reductions over axes, and the operations that make gradients safe to hand out.

`logsumexp` is a composite: an operation with its own shape rule and adjoint that the optimizer
rewrites, after differentiation, into the operations it is made of (`OpDef.expand`, see
`composite`).
"""

from __future__ import annotations

from ..dims import Dim, product
from ..expr import Attr, BinOp, Lit, Size, Tuple, array, builtin, method
from ..ir import Node, ShapeError, Type, make, reachable
from . import (
    dtype_of,
    flops_of,
    linear,
    no_flops,
    no_tangent,
    normalize_axes,
    number_call,
    python_numbers,
    register,
    size,
)

# ---------------------------------------------------------------------------------------------
# Reductions


def reduced_shape(x: Type, axes, keepdims) -> tuple[Dim, ...]:
    return tuple(
        Dim.of(1) if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes
    )


def _reduce_type(name, *, dtype=None, floats_only=False):
    """The shape rule of a reduction; `dtype` is the result's, `x`'s own when None (a sum of a
    mask counts, so it is an integer)."""

    def infer(x: Type, *, axis=None, keepdims=False):
        axes = normalize_axes(axis, x.ndim, name)
        if not isinstance(keepdims, bool):
            raise ShapeError(f"{name}: keepdims must be true or false")
        if floats_only:
            require_float(name, "x", x)
        kind = dtype or ("int" if name == "sum" and x.dtype == "bool" else x.dtype)
        return Type(kind, reduced_shape(x, axes, keepdims)), {"axis": axes, "keepdims": keepdims}

    return infer


def require_float(name: str, param: str, t: Type) -> None:
    """Integers and masks are never differentiated: where a float is required, they are an error."""
    if t.dtype != "float":
        raise ShapeError(f"{name}: {param} must hold floats, but it is the {t.dtype} value {t}")


def _reduce_emit(name):
    """`x.sum(axis=0)`: the array method, which skips the dispatch `np.sum(x, ...)` goes through
    (about 1.7 us a call, as much as the work on a small array); `np.sum(t)` for a 0-d value,
    which may be a Python number, and then kept one: `float(np.max(t))` (`np.max(1.5)` is a
    float64 NumPy number, which would make float32 arrays float64)."""

    def emit(at, x, *, axis, keepdims):
        ndim = at.node.args[0].ndim
        if not ndim and python_numbers(at):  # (keepdims keeps no axis of a 0-d value)
            dtype = at.node.dtype
            call = array(name, x)
            return number_call(at, name, x) if dtype == "float" else builtin(dtype, call)
        kwargs = {}
        if axis != tuple(range(ndim)) or keepdims:
            kwargs["axis"] = Lit(axis[0]) if len(axis) == 1 else Tuple(tuple(map(Lit, axis)))
        if keepdims:
            kwargs["keepdims"] = Lit(True)
        if not ndim:
            return array(name, x, **kwargs)
        return method(x, name, **kwargs)

    return emit


def expand_back(g: Node, x: Node, axis, keepdims) -> Node:
    """The upstream gradient of a reduction, broadcast back over the reduced axes of `x`."""
    if not keepdims and axis and g.ndim:
        g = make(
            "reshape", g, shape=tuple(Dim.of(1) if i in axis else d for i, d in enumerate(x.shape))
        )
    return make("broadcast_to", g, shape=x.shape)


def _input_size(y: Type, x: Type, **attrs) -> Dim:
    """A reduction: one operation per element reduced."""
    return size(x)


register(
    "sum",
    _reduce_type("sum"),
    _reduce_emit("sum"),
    lambda g, y, x, *, axis, keepdims: (expand_back(g, x, axis, keepdims),),
    jvp=linear(),
    doc="sum over axes",
    call=("x", "axis", "keepdims"),
    flops=_input_size,
    axis=None,
    keepdims=False,
)


def _mean_adjoint(g, y, x, *, axis, keepdims):
    """g / n spread over the n elements averaged. A mean over no element is nan (NumPy's, with
    its warning), and its gradient is spread over no element: g / max(n, 1) then gives what
    PyTorch gives, an empty gradient and zeros beyond it, where g / 0 would raise in Python or
    make the gradients of what the mean depends on 0 * inf = nan."""
    n = product(x.shape[i] for i in axis)
    count = make("dim", dim=n)
    if not (n.is_const and n.value > 0):
        count = make("maximum", count, 1)
    return (expand_back(g / count, x, axis, keepdims),)


def _mean_emit(at, x, *, axis, keepdims):
    """The sum over the count, `x.sum(axis=0) / N`: what `np.mean` computes, after Python code
    of its own that takes as long as the sum of 64 x 128 numbers (11 us against 6 us); for a
    0-d value, `np.mean(t)`, as `_reduce_emit` writes it."""
    x_type = at.node.args[0]
    if not x_type.ndim:
        return _reduce_emit("mean")(at, x, axis=axis, keepdims=keepdims)
    total = _reduce_emit("sum")(at, x, axis=axis, keepdims=keepdims)
    return BinOp("/", total, Size(product(x_type.shape[i] for i in axis)))


register(
    "mean",
    _reduce_type("mean", dtype="float"),
    _mean_emit,
    _mean_adjoint,
    jvp=linear(),
    doc="mean over axes",
    call=("x", "axis", "keepdims"),
    flops=lambda y, x, **attrs: size(x) + size(y),  # the sum, then a division per result
    axis=None,
    keepdims=False,
)


def _winners_share(name: str, y: Node, x: Node, axis, keepdims) -> Node:
    """Each element's share of the result of a max or min: 1 / count on the elements equal to
    it (tied elements share evenly, as torch.amax and torch.amin, and torch.max and torch.min
    without a dim, do), 0 elsewhere. The mask over a float count keeps x's dtype."""
    winners = make("eq", x, expand_back(y, x, axis, keepdims), hint=f"is_{name}")
    count = make("cast_like", make("sum", winners, axis=axis, keepdims=True), x)
    return winners / count


def _extremum_adjoint(name):
    def adjoint(g, y, x, *, axis, keepdims):
        """The gradient goes to the elements equal to the result, shared between ties."""
        if not axis:
            return (g,)
        return (expand_back(g, x, axis, keepdims) * _winners_share(name, y, x, axis, keepdims),)

    return adjoint


def _extremum_jvp(name):
    def jvp(t, y, x, *, axis, keepdims):
        """The tangents of the elements equal to the result, averaged over ties."""
        if not axis:
            return t[0]
        share = _winners_share(name, y, x, axis, keepdims)
        return make("sum", t[0] * share, axis=axis, keepdims=keepdims)

    return jvp


for _name in ("max", "min"):
    register(
        _name,
        _reduce_type(_name),
        _reduce_emit(_name),
        _extremum_adjoint(_name),
        jvp=_extremum_jvp(_name),
        doc=f"{_name}imum over axes; tied elements share the gradient evenly (as torch.a{_name})",
        call=("x", "axis", "keepdims"),
        flops=_input_size,
        axis=None,
        keepdims=False,
    )


# ---------------------------------------------------------------------------------------------
# Composite operations: written with other operations after differentiation


def composite(name, infer, expand, adjoint, *, jvp, doc, call, elementwise=False, **static):
    """Register an operation made of others. Autodiff and forward mode see it whole and use
    `adjoint` and `jvp` (the compact textbook rules); then the optimizer replaces it by `expand(*args, **attrs)`, built
    from the operations it is made of, so the emitted code is theirs and the forward and the
    backward share its parts (an expansion's common subexpressions are merged). Its flops are
    those of its expansion; `elementwise` is `OpDef`'s."""

    def emit(at, *args, **attrs):
        raise AssertionError(f"{name} is written with other operations by the optimizer")

    def flops(y, *xs, **attrs):
        out = expand(*(Node("param", (), (), x) for x in xs), **attrs)
        return sum((flops_of(n) for n in reachable([out])), Dim.of(0))

    register(
        name,
        infer,
        emit,
        adjoint,
        jvp=jvp,
        elementwise=elementwise,
        doc=doc,
        call=call,
        flops=flops,
        expand=expand,
        **static,
    )


def shift_by_max(x: Node, axis, largest: Node | None = None) -> Node:
    """x minus its maximum over `axis`: exp of it is at most 1, so it never overflows."""
    largest = largest or make("max", x, axis=axis, keepdims=True)
    return make("sub", x, largest, hint="shifted")


def _logsumexp_expand(x, *, axis, keepdims):
    largest = make(
        "max", x, axis=axis, keepdims=True, hint=f"{x.hint}_max" if x.hint else "largest"
    )
    exps = make("exp", shift_by_max(x, axis, largest), hint="exps")
    total = make("sum", exps, axis=axis, keepdims=True, hint="sum_exps")
    out = make("log", total) + largest
    return out if keepdims else make("reshape", out, shape=reduced_shape(x.type, axis, False))


composite(
    "logsumexp",
    _reduce_type("logsumexp", dtype="float", floats_only=True),
    _logsumexp_expand,
    lambda g, y, x, *, axis, keepdims: (
        expand_back(g, x, axis, keepdims) * make("softmax", x, axis=axis),
    ),
    jvp=lambda t, y, x, *, axis, keepdims: make(
        "sum", t[0] * make("softmax", x, axis=axis), axis=axis, keepdims=keepdims
    ),
    doc="log(sum(exp(x))) over axes, shifted by the maximum so that exp never overflows",
    call=("x", "axis", "keepdims"),
    axis=None,
    keepdims=False,
)


# ---------------------------------------------------------------------------------------------
# Gradient outputs: a caller's gradient is a fresh, writable array of its parameter's shape and dtype


def _full_like_type(like: Type, value: Type, *dtype_like: Type) -> Type:
    if dtype_like and (len(dtype_like) > 1 or dtype_like[0].dtype != "float"):
        raise ShapeError("full_like: the dtype comes from one float value")
    return Type(like.dtype, like.shape)


def _full_like_emit(at, like, value, *dtype_like):
    if not dtype_like:
        return array("full_like", like, value)
    return array("full_like", like, value, dtype=dtype_of(dtype_like[0], at.node.args[2].ndim))


register(
    "full_like",
    _full_like_type,
    _full_like_emit,
    lambda g, y, like, value, *dtype_like: (None, g, *(None for _ in dtype_like)),
    jvp=linear(1),
    doc="an array shaped and typed like `like`, filled with `value` (broadcast); with a third "
    "operand, of its float dtype instead (the gradient of a `[]` parameter, which the caller may "
    "pass as a Python int, is of the graph's float dtype)",
    flops=no_flops,
)


def _copy_emit(at, x):
    # the method skips np.copy's dispatch; a 0-d value may be a Python number, without one
    return method(x, "copy") if at.node.args[0].ndim else array("copy", x)


register(
    "copy",
    lambda x: Type(x.dtype, x.shape),
    _copy_emit,
    lambda g, y, x: (g,),
    jvp=linear(),
    doc="a fresh copy",
    flops=no_flops,
)


def _scalar_emit(at, x):
    """`x.dtype.type(2.5)` for a float, the graph's float dtype as the lowering knows it
    (`at.dtype`), which writes that conversion itself where it makes a float of numbers alone
    (`at.retyped`); `np.float64(2.5)` in a graph without float parameters; `np.int_(n)`,
    `np.bool_(b)`."""
    node = at.node
    if node.dtype != "float":
        return array("int_" if node.dtype == "int" else "bool_", x)
    if at.dtype is None:
        return array("float64", x)
    if at.retyped:
        return x
    return method(at.dtype, "type", x)


register(
    "scalar",
    lambda x: Type(x.dtype, ()),
    _scalar_emit,
    lambda g, y, x: (g,),
    jvp=linear(),
    doc="a 0-d output made of numbers alone (constants, sizes, `[]` parameters, which the caller "
    "may pass as Python numbers), as a NumPy number: a float of the graph's float dtype",
    flops=no_flops,
)
register(
    "cast_like",
    lambda x, like: Type(like.dtype, x.shape),
    lambda at, x, like: method(x, "astype", Attr(like, "dtype")),
    lambda g, y, x, like: (None, None),
    jvp=no_tangent,  # (a count)
    doc="x converted to like's dtype: counts made floats of the dtype of the values counted",
    flops=no_flops,
)
