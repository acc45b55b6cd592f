"""Indexing and gathering: basic indexing and slicing, take, take_along, concat, stack, and the
scatters that are their adjoints (pad, scatter_add, scatter_along).

Indexing. `x[...]` is the op `index`, whose `index` attribute holds one item per subscript:

- an integer index: a `Dim`, a position counted from the start (`x[t]`, `x[T - 1]`);
- a slice: a tuple `(start, stop, step)` of positions and an integer step;
- `None`: a new axis of size 1 (IR only; the language has no spelling for it).

The language's bounds are compile-time integers and dimension expressions. The shape rule turns
them into positions (`-1` on an axis of size `T` is `T - 1`, an omitted bound the axis' end) and
keeps one item per axis, so the same positions describe the value everywhere after. An index or
bound out of range whatever the sizes are (each at least 1: `x[3]` on `[3]`, `x[T]` on `[T]`,
`x[:, T:2*T]` on `[N, T]`) is a compile error. Where it depends on the sizes (`x[1:3]` on `[T]`
needs `T >= 3`, `x[:, :H]` on `[N, G]` needs `H <= G`, `x[5]` on `[n]` needs `n > 5`) the
condition is recorded (`bpc.conditions`) and the generated functions check it on entry: NumPy
would shorten a slice silently, and its shape would not be the one bpc computed. A strided
slice of an axis of `n` has `(n + k - 1)//k` elements.

Adjoints scatter: indexing's is `pad` (zeros around the upstream gradient, `np.pad`), `take`'s is
`scatter_add` (repeated indices add up), `take_along`'s is `scatter_along`; and each scatter's
adjoint is the gather it undoes, so gradients of gradients work too.

Variadic calls. `concat(a, b, ..., axis=0)`, `stack(a, b, ..., axis=0)` and `einsum(spec, a, b,
...)` take any number of arrays: a parameter of `call` written with a leading `*` (`call=
("*arrays", "axis")`) collects the remaining positional arguments, all of them tensors, or the
items of one tuple, as NumPy takes them (`stack((a, b), axis=1)`), and the parameters after it
are keyword-only, as in Python (see `bpc.build`).
"""

from __future__ import annotations

from .. import conditions
from ..dims import Dim, negative, nonnegative, product, show_shape
from ..expr import (
    ALL,
    ELLIPSIS,
    NONE,
    Attr,
    BinOp,
    Lit,
    Size,
    Slice,
    Subscript,
    Tuple,
    array,
    helper,
)
from ..expr import List as ListExpr
from ..expr import shape as shape_of
from ..ir import REQUIRED, Node, ShapeError, Type, make
from . import (
    joined,
    last_axis_dropped,
    linear,
    new_last_axis,
    no_flops,
    normalize_axes,
    number_filled,
    promote,
    register,
    size,
)

# ---------------------------------------------------------------------------------------------
# Positions: what can be said at compile time about a dimension expression's sign


def ceil_div(d: Dim, k: int) -> Dim:
    """`ceil(d / k)` for a positive integer `k`."""
    return (d + (k - 1)).floor_div(k)


def _is_int(v) -> bool:
    return isinstance(v, (int, Dim)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------
# Basic indexing and slicing


def _position(i, size: Dim, what: str) -> Dim:
    """An index or bound as a position from the start: a negative one counts from the end."""
    if not _is_int(i):
        raise ShapeError(f"{what} must be an integer or a dimension expression")
    i = Dim.of(i)
    if not negative(i):
        return i
    if not negative(i, default=0):  # `-X` counts from the end only while X >= 1 (x[:-0] is empty)
        wrong = f"{what} {i} is 0 for every size"
        conditions.require(i, "<", Dim.of(0), f"the bound {i} counted from the end", wrong)
    if negative(size + i):  # (`-X` on an axis of size X - 1: before the start at every size)
        raise ShapeError(f"{what} {i} is out of range on an axis of size {size} for every size")
    return size + i


def _normalize_item(item, size: Dim, axis: int):
    """One subscript as a position or a normalized slice; out-of-range bounds are errors."""
    where = f"on axis {axis} (size {size})"
    if not isinstance(item, tuple):
        p = _position(item, size, "an index")
        wrong = f"index {item} is out of range {where}"
        conditions.require(p, ">=", Dim.of(0), f"the index {item}", wrong)
        conditions.require(p, "<", size, f"the index {item}", wrong)
        return p
    if len(item) != 3:
        raise ShapeError("a slice has a start, a stop and a step")
    start, stop, step = item
    step = 1 if step is None else step
    if isinstance(step, Dim) and step.is_const:
        step = step.value
    if not isinstance(step, int) or isinstance(step, bool) or step == 0:
        raise ShapeError("a slice step must be a nonzero integer")
    text = _slice_text(start, stop, step)

    def require(left: Dim, op: str, right: Dim, wrong: str) -> None:
        """`left op right`, recorded for the call when it depends on the sizes; an error when it
        fails for every size."""
        conditions.require(left, op, right, f"the slice {text}", wrong)

    if step > 0:
        first = Dim.of(0) if start is None else _position(start, size, "a slice bound")
        end = size if stop is None else _position(stop, size, "a slice bound")
        require(first, ">=", Dim.of(0), f"slice start {start} is out of range {where}")
        require(end, "<=", size, f"slice stop {stop} is out of range {where}")
        require(first, "<=", end, f"slice {text} {where} stops before it starts")
    else:
        first = size - 1 if start is None else _position(start, size, "a slice bound")
        end = None if stop is None else _position(stop, size, "a slice bound")
        if first != size - 1:  # from the last element is fine, even on an empty axis
            wrong = f"slice start {start} is out of range {where}"
            require(first, ">=", Dim.of(0), wrong)
            require(first, "<", size, wrong)
        if end is not None:
            require(end, ">=", Dim.of(0), f"slice stop {stop} is out of range {where}")
            require(end, "<=", first, f"slice {text} {where} stops before it starts")
    return (first, end, step)


def _paren(d: Dim) -> str:
    return f"({d})" if d.is_sum else str(d)


def _slice_text(start, stop, step) -> str:
    parts = ["" if start is None else str(start), "" if stop is None else str(stop)]
    return ":".join(parts + ([str(step)] if step != 1 else []))


def slice_length(item) -> Dim:
    first, end, step = item
    if step > 0:
        return ceil_div(end - first, step)
    return ceil_div(first - (Dim.of(-1) if end is None else end), -step)


def full(size: Dim) -> tuple:
    """The slice `:` over an axis of this size."""
    return (Dim.of(0), size, 1)


def _index_type(x: Type, *, index):
    if not isinstance(index, tuple):
        raise ShapeError("an index must be a tuple of subscripts")
    used = sum(item is not None for item in index)
    if used > x.ndim:
        raise ShapeError(
            f"too many indices: {show_shape(x.shape)} is {x.ndim}-d but {used} are given"
        )
    items, shape, axis = [], [], 0
    for item in index + tuple(full(d) for d in x.shape[used:]):
        if item is None:
            items.append(None)
            shape.append(Dim.of(1))
            continue
        item = _normalize_item(item, x.shape[axis], axis)
        items.append(item)
        if isinstance(item, tuple):
            shape.append(slice_length(item))
        axis += 1
    # a plain number stays one only while it has no axes
    return Type(x.dtype, tuple(shape), x.static and not shape), {"index": tuple(items)}


def _position_expr(p: Dim, size: Dim):
    """A position as an expert writes it: `2`, `-1` for `T - 1` on an axis of size `T`, `H`."""
    if p.is_const:
        return Lit(p.value)
    if (size - p).is_const and (size - p).value > 0:
        return Lit(-(size - p).value)
    return Size(p)


def _item(item, size: Dim | None):
    if item is None:
        return NONE
    if not isinstance(item, tuple):
        return _position_expr(item, size)
    first, end, step = item
    if step > 0:
        start = None if first == Dim.of(0) else _position_expr(first, size)
        stop = None if end == size else _position_expr(end, size)
    else:
        start = None if first == size - 1 else _position_expr(first, size)
        stop = None if end is None else _position_expr(end, size)
    return Slice(start, stop, None if step == 1 else Lit(step))


def _index_emit(at, x, *, index):
    x_type = at.node.args[0].type
    if not x_type.ndim:  # maybe a Python number (no `[None]`), given new axes of size 1
        return number_filled(at, x, at.node.shape)
    sizes = iter(x_type.shape)
    items = [_item(item, None if item is None else next(sizes)) for item in index]
    while items and items[-1] == ALL:
        items.pop()
    return Subscript(x, tuple(items) or (ALL,))


def _index_adjoint(g, y, x, *, index):
    """Zeros of x's shape with g where x[index] was. One index op on g puts back the axes an
    integer index removed (`g[None]`), reverses what a negative step reversed and, for a step
    k > 1, adds an axis that is padded with k - 1 zeros and merged, so that the values land k
    apart; then `pad` puts zeros around."""
    zero = (Dim.of(0), Dim.of(0))
    expand, spread, merged, trim, widths = [], [], [], [], []
    axis = 0  # x's axis
    for item in index:
        if item is None:  # a new axis of size 1: drop it again
            expand.append(Dim.of(0))
            continue
        size = x.shape[axis]
        axis += 1
        if not isinstance(item, tuple):
            expand.append(None)
            spread.append(zero)
            merged.append(Dim.of(1))
            trim.append(full(Dim.of(1)))
            widths.append((item, size - item - 1))
            continue
        start, _, step = item
        n, k = slice_length(item), abs(step)
        empty = n == Dim.of(0) or nonnegative(-n)  # (where it fits): a zero gradient
        if empty:
            first, span = Dim.of(0), n
        else:
            first = start if step > 0 else start - (n - 1) * k
            span = n if k == 1 or n == Dim.of(1) else n * k
        expand.append((n - 1, None, -1) if step < 0 and not empty else full(n))
        spread.append(zero)
        if span != n:  # n values k apart
            expand.append(None)
            spread.append((Dim.of(0), Dim.of(k - 1)))
            if not nonnegative(size - first - span):  # the last k - 1 zeros may not fit
                span = (n - 1) * k + 1
        merged.append(n * k if n != span else n)
        trim.append((Dim.of(0), span, 1))
        widths.append((first, size - first - span))
    if any(not isinstance(e, tuple) or e[2] < 0 for e in expand):
        g = make("index", g, index=tuple(expand))
    if any(w != zero for w in spread):
        g = make("pad", g, widths=tuple(spread))
        g = make("reshape", g, shape=tuple(merged))
        if tuple(merged) != tuple(end for _, end, _ in trim):
            g = make("index", g, index=tuple(trim))
    if any(w != zero for w in widths):
        g = make("pad", g, widths=tuple(widths))
    return (g,)


register(
    "index",
    _index_type,
    _index_emit,
    _index_adjoint,
    jvp=linear(),
    doc="basic indexing and slicing with static bounds: x[t], x[:, 0], a[:, H:2*H], x[::-1]",
    flops=no_flops,
    view=True,
)


# ---------------------------------------------------------------------------------------------
# pad: zeros around an array, the adjoint of indexing


def pad(x: Node, widths: dict[int, tuple[Dim, Dim]]) -> Node:
    """`x` with zeros before and after some of its axes: `{axis: (before, after)}`."""
    zero = (Dim.of(0), Dim.of(0))
    return make("pad", x, widths=tuple(widths.get(a, zero) for a in range(x.ndim)))


def _pad_type(x: Type, *, widths):
    if x.ndim == 0:
        raise ShapeError("pad: cannot pad a scalar")
    pairs = isinstance(widths, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and all(map(_is_int, p)) for p in widths
    )
    if not pairs or len(widths) != x.ndim:
        example = ", ".join(["(0, 0)"] * (x.ndim - 1) + ["(1, 1)"])
        raise ShapeError(
            f"pad: the widths are one pair (before, after) of integers or dimensions for each "
            f"axis of the {x.ndim}-d value {x}, as in pad(x, ({example}{',' * (x.ndim == 1)}))"
        )
    widths = tuple((Dim.of(b), Dim.of(a)) for b, a in widths)
    if any(negative(w) for pair in widths for w in pair):
        raise ShapeError("pad: widths must not be negative")
    shape = tuple(d + b + a for d, (b, a) in zip(x.shape, widths))
    return Type(x.dtype, shape), {"widths": widths}


def _pad_emit(at, x, *, widths):
    pairs = [shape_of(pair) for pair in widths]
    return array("pad", x, pairs[0] if len(pairs) == 1 else Tuple(tuple(pairs)))


register(
    "pad",
    _pad_type,
    _pad_emit,
    lambda g, y, x, *, widths: (
        make("index", g, index=tuple((b, b + d, 1) for d, (b, _) in zip(x.shape, widths))),
    ),
    jvp=linear(),
    doc="pad(x, ((before, after), ...)): zeros before and after each axis (np.pad), the widths "
    "integers or dimension expressions; the adjoint of indexing",
    call=("x", "widths"),
    flops=no_flops,
    widths=REQUIRED,
)


# ---------------------------------------------------------------------------------------------
# take and its adjoint, scatter_add


def _int_indices(idx: Type, what: str) -> None:
    if idx.dtype != "int":
        kind = "a boolean mask" if idx.dtype == "bool" else "a float value"
        raise ShapeError(f"{what}: the indices must be integers; got {kind} {idx}")


def _take_type(x: Type, idx: Type, *, axis):
    _int_indices(idx, "take")
    if x.ndim == 0:
        raise ShapeError("take: cannot take from a scalar")
    if isinstance(axis, tuple) or axis is None:
        raise ShapeError("take: axis must be an integer")
    (axis,) = normalize_axes(axis, x.ndim, "take")
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1 :]
    return Type(x.dtype, shape), {"axis": axis}


def _take_emit(at, x, idx, *, axis):
    ndim = at.node.args[0].ndim
    if axis == 0:
        items = [idx]
    elif ndim - 1 - axis < axis:
        items = [ELLIPSIS, idx] + [ALL] * (ndim - 1 - axis)
    else:
        items = [ALL] * axis + [idx]
    return Subscript(x, tuple(items))


def _take_adjoint(g, y, x, idx, *, axis):
    """Rows of g added into zeros at the rows idx names, with the indexed axis moved first."""
    if axis == 0:
        return make("scatter_add", x, idx, g), None
    m = idx.ndim
    rest = tuple(range(axis)) + tuple(range(axis + m, g.ndim))
    gt = make("transpose", g, axes=tuple(range(axis, axis + m)) + rest)
    shape = x.shape[axis : axis + 1] + x.shape[:axis] + x.shape[axis + 1 :]
    dx = make("scatter_add", x, idx, gt, shape=shape)
    back = tuple(range(1, axis + 1)) + (0,) + tuple(range(axis + 1, x.ndim))
    return make("transpose", dx, axes=back), None


register(
    "take",
    _take_type,
    _take_emit,
    _take_adjoint,
    jvp=linear(),
    doc="gather along an axis by an integer array (an embedding lookup): x[idx] for axis 0",
    call=("x", "idx", "axis"),
    flops=no_flops,
    # x[i] with a 0-d i is NumPy's basic indexing: a view of x (a new array for an array of
    # indices; a number for a vector x)
    view=lambda n: n.args[1].ndim == 0 and n.args[0].ndim > 1,
    axis=0,
)


def _scatter_add_type(like: Type, idx: Type, g: Type, *, shape=None):
    _int_indices(idx, "scatter_add")
    shape = like.shape if shape is None else tuple(Dim.of(d) for d in shape)
    if not shape:
        raise ShapeError("scatter_add: cannot scatter into a scalar")
    want = idx.shape + shape[1:]
    if g.shape != want:
        raise ShapeError(
            f"scatter_add: the values are {show_shape(g.shape)}, not {show_shape(want)}"
        )
    return Type(promote(like, g), shape), {"shape": shape}


def _scatter_add_emit(at, like, idx, g, *, shape):
    """A helper of the module (`templates/scatter_add.py.j2`): np.add.at into zeros, so that
    repeated indices add up and negative ones count from the end, as in the forward."""
    return helper("_scatter_add", shape_of(shape), Attr(like, "dtype"), idx, g)


register(
    "scatter_add",
    _scatter_add_type,
    _scatter_add_emit,
    lambda g, y, like, idx, values, *, shape: (None, None, make("take", g, idx, axis=0)),
    jvp=linear(2),
    doc="zeros of `shape` (by default like's) and like's dtype, with each values[i] added at "
    "row idx[i] (repeats add up); the adjoint of take",
    flops=lambda y, like, idx, values, *, shape: size(values),  # one add per value
)


# ---------------------------------------------------------------------------------------------
# take_along and its adjoint, scatter_along


def _take_along_type(x: Type, idx: Type):
    _int_indices(idx, "take_along")
    if x.ndim == 0:
        raise ShapeError("take_along: cannot take from a scalar")
    if idx.shape != x.shape[:-1]:
        raise ShapeError(
            f"take_along: the indices are {show_shape(idx.shape)} but must be shaped like "
            f"{show_shape(x.shape)} without its last axis, {show_shape(x.shape[:-1])}"
        )
    return Type(x.dtype, idx.shape)


def _take_along_emit(at, x, idx):
    """`x[idx]` for one index; `x[np.arange(N), idx]` for a row of them, where
    np.take_along_axis (a Python function building the index) takes 3 times as long at 64 rows
    (the array API has no such indexing: its libraries take np.take_along_axis's form)."""
    ndim = at.node.args[1].ndim
    if ndim == 0:
        return Subscript(x, (idx,))
    if ndim == 1 and not at.facts.functional:
        return Subscript(x, (array("arange", Size(at.node.args[1].shape[0])), idx))
    axis = Lit(1 if ndim == 1 else -1)
    call = array("take_along_axis", x, new_last_axis(idx, ndim), axis=axis)
    return last_axis_dropped(call, ndim)


register(
    "take_along",
    _take_along_type,
    _take_along_emit,
    lambda g, y, x, idx: (make("scatter_along", idx, g, size=x.shape[-1]), None),
    jvp=linear(),
    doc="x[..., idx[...]]: one element of each row of the last axis, which it removes; a "
    "negative index counts from the end (np.take_along_axis), in the gradient too",
    call=("x", "idx"),
    flops=no_flops,
)


def _scatter_along_type(idx: Type, g: Type, *, size):
    _int_indices(idx, "scatter_along")
    if g.shape != idx.shape:
        raise ShapeError(
            f"scatter_along: the values are {show_shape(g.shape)}, not {show_shape(idx.shape)}"
        )
    return Type(promote(g, floating=True), idx.shape + (Dim.of(size),)), {"size": Dim.of(size)}


def _scatter_along_emit(at, idx, g, *, size):
    """`(idx[:, None] % C == np.arange(C)) * g[:, None]`: a negative index counts from the end,
    as in take_along's np.take_along_axis (one % on the indices, not on the result)."""
    classes = array("arange", Size(size))
    ndim = at.node.args[0].ndim
    if ndim:
        idx, g = new_last_axis(idx, ndim), new_last_axis(g, ndim)
    return BinOp("*", BinOp("==", BinOp("%", idx, Size(size)), classes), g)


register(
    "scatter_along",
    _scatter_along_type,
    _scatter_along_emit,
    lambda g, y, idx, values, *, size: (None, make("take_along", g, idx)),
    jvp=linear(1),
    doc="zeros with a last axis of `size`, holding values[...] at idx[...]; "
    "the adjoint of take_along",
    # as emitted: (idx % C == ..) * g, a % per index and a comparison and a product per element
    flops=lambda y, idx, values, *, size: 2 * product(y.shape) + product(idx.shape),
)


# take_along's adjoint added to a value: a write of one element per index, where the sum of the
# scatter makes a mask and a product of the value's size (CS231n's `dscores[rows, y] -= ...`)


def _add_along_type(a: Type, idx: Type, g: Type):
    _int_indices(idx, "add_along")
    if g.shape != idx.shape or a.shape[:-1] != idx.shape or a.dtype != "float":
        raise ShapeError(
            f"add_along: {show_shape(a.shape)} floats plus {show_shape(g.shape)} values at "
            f"indices {show_shape(idx.shape)}"
        )
    return Type(promote(a, g, floating=True), a.shape)


def _add_along_jvp(t, y, a, idx, g):
    scattered = None if t[2] is None else make("scatter_along", idx, t[2], size=a.shape[-1])
    if t[0] is None:
        return scattered
    return t[0] if scattered is None else make("add", t[0], scattered)


register(
    "add_along",
    _add_along_type,
    # (`out=` a: the array of a value read for the last time, as a ufunc's `out=`)
    lambda at, a, idx, g: helper("_add_along", a, idx, g, ufunc=True),
    lambda gy, y, a, idx, g: (gy, None, make("take_along", gy, idx)),
    jvp=_add_along_jvp,
    ufunc=True,
    doc="a plus g[...] at idx[...] along the last axis: take_along's adjoint added to a "
    "gradient (`a + scatter_along(idx, g)`)",
    flops=lambda y, a, idx, g: product(idx.shape),
)


# ---------------------------------------------------------------------------------------------
# concat


def _joined(name: str, xs: tuple[Type, ...], axis, numbers: bool = True, why: str = "") -> None:
    """What concat and stack ask of their arguments: some arrays, an integer axis, and (where
    `numbers`) no number where an array was meant (a positional axis, `concat(a, b, 1)`)."""
    if not xs:
        raise ShapeError(f"{name}: needs at least one array")
    if isinstance(axis, tuple) or axis is None:
        raise ShapeError(f"{name}: axis must be an integer")
    for i, x in enumerate(xs if numbers else (), 1):
        if x.static and x.ndim == 0:
            raise ShapeError(
                f"{name}: argument {i} is a number, not an array{why}; give the axis by "
                f"keyword, as in {name}((a, b), axis=1)"
            )


def _concat_type(*xs: Type, axis):
    _joined("concat", xs, axis)
    first = xs[0]
    if any(x.ndim == 0 for x in xs):
        raise ShapeError("concat: cannot join scalars; every array needs at least one axis")
    if any(x.ndim != first.ndim for x in xs):
        raise ShapeError(
            "concat: the arrays must have the same number of axes; got "
            + ", ".join(show_shape(x.shape) for x in xs)
        )
    (axis,) = normalize_axes(axis, first.ndim, "concat")
    for x in xs[1:]:
        for a, (d, e) in enumerate(zip(first.shape, x.shape)):
            if a != axis and d != e:
                raise ShapeError(
                    f"concat: shapes {show_shape(first.shape)} and {show_shape(x.shape)} "
                    f"differ in axis {a} ({d} and {e}); only axis {axis} may differ"
                )
    total = sum((x.shape[axis] for x in xs), Dim.of(0))
    shape = first.shape[:axis] + (total,) + first.shape[axis + 1 :]
    return Type(promote(*xs), shape), {"axis": axis}


def _concat_emit(at, *xs, axis):
    return array("concatenate", ListExpr(xs), **({"axis": Lit(axis)} if axis else {}))


def _concat_adjoint(g, y, *xs, axis):
    """Each array's gradient is its own slice of g."""
    grads, start = [], Dim.of(0)
    lead = tuple(full(d) for d in g.shape[:axis])
    for x in xs:
        end = start + x.shape[axis]
        grads.append(make("index", g, index=lead + ((start, end, 1),)))
        start = end
    return tuple(grads)


register(
    "concat",
    _concat_type,
    _concat_emit,
    _concat_adjoint,
    jvp=joined,
    doc="join arrays along an existing axis (np.concatenate)",
    call=("*arrays", "axis"),
    flops=no_flops,
    promotes=True,
    axis=0,
)


# ---------------------------------------------------------------------------------------------
# stack


def _stack_type(*xs: Type, axis):
    differ = bool(xs) and any(x.shape != xs[0].shape for x in xs)
    _joined("stack", xs, axis, numbers=differ, why=" of the others' shape")
    first = xs[0]
    if any(x.shape != first.shape for x in xs):
        raise ShapeError(
            "stack: the arrays must have one shape; got "
            + ", ".join(show_shape(x.shape) for x in xs)
        )
    (axis,) = normalize_axes(axis, first.ndim + 1, "stack")
    shape = first.shape[:axis] + (Dim.of(len(xs)),) + first.shape[axis:]
    return Type(promote(*xs), shape), {"axis": axis}


def _stack_emit(at, *xs, axis):
    """np.stack([a, b], axis=1). 0-d operands may be Python numbers, which np.stack makes float64
    arrays: a float result then takes the graph's float dtype (`dtype=x.dtype`), as does one
    the lowering would convert."""
    kw = {"axis": Lit(axis)} if axis else {}
    numbers = any(a.ndim == 0 for a in at.node.args)
    if at.node.dtype == "float" and at.dtype is not None and (numbers or at.retyped):
        kw["dtype"] = at.dtype
    return array("stack", ListExpr(xs), **kw)


def _stack_adjoint(g, y, *xs, axis):
    """Each array's gradient is its own position along the new axis of g."""
    lead = tuple(full(d) for d in g.shape[:axis])
    return tuple(make("index", g, index=lead + (Dim.of(i),)) for i in range(len(xs)))


register(
    "stack",
    _stack_type,
    _stack_emit,
    _stack_adjoint,
    jvp=joined,
    doc="join arrays of one shape along a new axis (np.stack)",
    call=("*arrays", "axis"),
    flops=no_flops,
    promotes=True,
    own_dtype=True,
    axis=0,
)
