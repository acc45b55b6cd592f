"""Linear algebra: matrix products and transposes."""

from __future__ import annotations

from ..dims import Dim, show_shape
from ..ir import Node, ShapeError, Type, make
from . import (
    ATOM,
    MUL,
    Code,
    broadcast,
    emit_call,
    promote,
    register,
)

# ---------------------------------------------------------------------------------------------
# Linear algebra


def _matmul_type(a: Type, b: Type) -> Type:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: operands must have at least one dimension; use * for scalars")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ShapeError(
            f"matmul: shapes {show_shape(a.shape)} and {show_shape(b.shape)} do not line up: "
            f"dimension {ka} does not match {kb}"
        )
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    rows = a.shape[-2:-1]
    cols = b.shape[-1:] if b.ndim > 1 else ()
    return Type(promote(a, b), batch + rows + cols)


def _matmul_emit(ctx, a, b):
    return Code(f"{a.at(MUL)} @ {b.at(MUL + 1)}", MUL)


def unsqueeze(x: Node, axis: int) -> Node:
    """`x` with a new axis of size 1 at `axis` (negative counts from the end)."""
    shape = list(x.shape)
    shape.insert(axis if axis >= 0 else len(shape) + axis + 1, Dim.of(1))
    return make("reshape", x, shape=tuple(shape))


def squeeze_last(x: Node) -> Node:
    return make("reshape", x, shape=x.shape[:-1])


def _matmul_adjoint(g, y, a, b):
    """Each operand's gradient is the upstream gradient times the other operand, transposed;
    a 1-D operand is a row (left) or a column (right) vector."""
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if b.ndim == 1:  # y[..., n] = a[..., n, k] @ b[k]
        da = make("outer", g, b) if a.ndim == 2 else unsqueeze(g, -1) * b
        db = a.T @ g if a.ndim == 2 else squeeze_last(a.mT @ unsqueeze(g, -1))
        return da, db
    if a.ndim == 1:  # y[..., m] = a[k] @ b[..., k, m]
        da = b @ g if b.ndim == 2 else squeeze_last(b @ unsqueeze(g, -1))
        db = make("outer", a, g) if b.ndim == 2 else unsqueeze(a, -1) * unsqueeze(g, -2)
        return da, db
    return g @ b.mT, a.mT @ g


register("matmul", _matmul_type, _matmul_emit, _matmul_adjoint, doc="a @ b, as np.matmul")


def _outer_type(a: Type, b: Type) -> Type:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError("outer: operands must be vectors")
    return Type(promote(a, b), a.shape + b.shape)


register(
    "outer",
    _outer_type,
    lambda ctx, a, b: emit_call("np.outer", a.text, b.text),
    lambda g, y, a, b: (g @ b, g.T @ a),
    doc="the outer product of two vectors",
)


def _transpose_type(x: Type, *, axes):
    if axes is not None and not (
        isinstance(axes, tuple)
        and all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    ):
        raise ShapeError("transpose: axes must be a tuple of integers")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim if x.ndim else a for a in axes) != list(range(x.ndim)) or any(
        not -x.ndim <= a < x.ndim for a in axes
    ):
        raise ShapeError(
            f"transpose: axes {axes} are not a permutation of a {x.ndim}-d value's axes"
        )
    axes = tuple(a % x.ndim for a in axes)
    return Type(x.dtype, tuple(x.shape[a] for a in axes), x.static), {"axes": axes}


def _transpose_emit(ctx, x, *, axes):
    if axes == tuple(reversed(range(len(axes)))):
        return Code(f"{x.at(ATOM)}.T")
    n = len(axes)
    if axes == tuple(range(n - 2)) + (n - 1, n - 2):
        return emit_call("np.swapaxes", x.text, "-1", "-2")
    return emit_call("np.transpose", x.text, repr(axes))


def _inverse(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


register(
    "transpose",
    _transpose_type,
    _transpose_emit,
    lambda g, y, x, *, axes: (make("transpose", g, axes=_inverse(axes)),),
    doc="permute axes (all of them reversed by default, like .T)",
    call=("x", "axes"),
    axes=None,
)
