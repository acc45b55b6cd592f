"""Linear algebra: matrix products, transposes and einsum."""

from __future__ import annotations

import re

from ..dims import Dim, product, show_shape
from ..expr import ALL, NONE, Attr, BinOp, Lit, Subscript, Tuple, array, method
from ..ir import REQUIRED, Node, ShapeError, Type, make
from . import (
    broadcast,
    linear,
    multilinear,
    no_flops,
    promote,
    register,
    size,
)
from .reduce import expand_back

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
            f"dimension {ka} does not match {kb}",
            mismatch=(1, b.ndim - 2 if b.ndim > 1 else 0, ka),
        )
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    rows = a.shape[-2:-1]
    cols = b.shape[-1:] if b.ndim > 1 else ()
    return Type(promote(a, b), batch + rows + cols)


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


register(
    "matmul",
    _matmul_type,
    lambda at, a, b: BinOp("@", a, b),
    _matmul_adjoint,
    jvp=multilinear,
    doc="a @ b, as np.matmul",
    flops=lambda y, a, b: 2 * size(y) * a.shape[-1],  # a multiply and an add per term
    promotes=True,
)


def _outer_type(a: Type, b: Type) -> Type:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError("outer: operands must be vectors")
    return Type(promote(a, b), a.shape + b.shape)


register(
    "outer",
    _outer_type,
    # a BLAS product of a column and a row: faster than np.outer or broadcasting (which multiply
    # on one core), and np.matmul, at every size measured (bench/outer.py)
    lambda at, a, b: array("dot", Subscript(a, (ALL, NONE)), Subscript(b, (NONE, ALL))),
    lambda g, y, a, b: (g @ b, g.T @ a),
    jvp=multilinear,
    math=lambda at, a, b: BinOp("@", a, Attr(b, "T")),  # a b^T
    doc="the outer product of two vectors",
    flops=lambda y, a, b: size(y),
    promotes=True,
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


def _transpose_emit(at, x, *, axes):
    if not axes:  # a 0-d value, maybe a Python number: nothing to permute
        return x
    if axes == tuple(reversed(range(len(axes)))):
        return Attr(x, "T")
    n = len(axes)
    if axes == tuple(range(n - 2)) + (n - 1, n - 2):
        return array("swapaxes", x, Lit(-1), Lit(-2))
    return array("transpose", x, Tuple(tuple(map(Lit, axes))))


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
    jvp=linear(),
    doc="permute axes (all of them reversed by default, like .T)",
    call=("x", "axes"),
    flops=no_flops,
    view=True,
    axes=None,
)


# ---------------------------------------------------------------------------------------------
# einsum


_SPEC = re.compile(r"[A-Za-z,]*->[A-Za-z]*")


def split_spec(spec: str) -> tuple[list[str], str]:
    """`"ij,jk->ik"` as (["ij", "jk"], "ik"), for a spec the shape rule has checked."""
    lhs, out = spec.split("->")
    return lhs.split(","), out


def _einsum_type(*xs: Type, spec):
    """Check the spec against the operands: letters only, an explicit output, one letter per
    axis, one dimension per letter; and give the result's type."""
    if not isinstance(spec, str):
        raise ShapeError('einsum: the spec must be a string, such as "ij,jk->ik"')
    text = "".join(spec.split())  # NumPy allows spaces
    shown = f'"{spec}"'
    if "..." in text:
        raise ShapeError(f"einsum: {shown}: '...' is not supported; name every axis with a letter")
    if text.count("->") != 1:
        raise ShapeError(
            f"einsum: {shown} needs exactly one '->' followed by the output's letters, "
            'as in "ij,jk->ik"'
        )
    ins, out = split_spec(text)
    for term in ins + [out]:
        for c in term:
            if not ("a" <= c <= "z" or "A" <= c <= "Z"):
                raise ShapeError(
                    f"einsum: {shown}: unexpected {c!r}; subscripts are letters, "
                    "operands are separated by ','"
                )
    if len(ins) != len(xs):
        raise ShapeError(f"einsum: {shown} describes {len(ins)} operand(s) but {len(xs)} are given")
    dims: dict[str, tuple[Dim, int]] = {}
    for i, (term, x) in enumerate(zip(ins, xs), 1):
        if x.static:
            raise ShapeError(
                f"einsum: operand {i} is a plain number; einsum takes arrays (multiply the "
                "result by the number instead)"
            )
        if len(term) != x.ndim:
            raise ShapeError(
                f"einsum: operand {i} is {x.ndim}-d, {show_shape(x.shape)}, but its subscripts "
                f"'{term}' name {len(term)} axes"
            )
        for c in term:
            if term.count(c) > 1:
                raise ShapeError(
                    f"einsum: operand {i} repeats the letter '{c}' in '{term}' (a diagonal); "
                    "this is not supported"
                )
        for c, d in zip(term, x.shape):
            if c in dims and dims[c][0] != d:
                first, j = dims[c]
                raise ShapeError(
                    f"einsum: letter '{c}' is dimension {first} in operand {j} but {d} in "
                    f"operand {i}"
                )
            dims.setdefault(c, (d, i))
    for c in out:
        if c not in dims:
            raise ShapeError(f"einsum: {shown}: the output's letter '{c}' is in no operand")
        if out.count(c) > 1:
            raise ShapeError(f"einsum: {shown}: the output's letter '{c}' appears twice")
    shape = tuple(dims[c][0] for c in out)
    return Type(promote(*xs), shape), {"spec": text}


def _einsum_emit(at, *xs, spec):
    """`np.einsum`, with the 0-d operands as factors in front: np.einsum makes a Python number a
    float64 array, while `s * ...` keeps float32 float32."""
    assert _SPEC.fullmatch(spec), spec  # checked by the shape rule: nothing else reaches here
    ins, out = split_spec(spec)
    scalars = [x for term, x in zip(ins, xs) if not term]
    arrays = [(term, x) for term, x in zip(ins, xs) if term]
    if arrays:
        spec = ",".join(term for term, _ in arrays) + "->" + out
        # optimize=True contracts pairwise with BLAS (tensordot): many times faster for products.
        fast = {"optimize": Lit(True)} if len(arrays) > 1 else {}
        call = array("einsum", Lit(spec), *(x for _, x in arrays), **fast)
        if not scalars:
            return call
        scalars.append(call)
    product = scalars[0]
    for x in scalars[1:]:
        product = BinOp("*", product, x)
    return product


def _einsum_adjoint(g, y, *xs, spec):
    """Operand i's gradient is the einsum of g and the other operands into i's subscripts. A
    letter that only operand i has was summed out of it alone: the gradient is constant along
    it, so it is computed without that axis and broadcast back."""
    ins, out = split_spec(spec)
    grads = []
    for i, x in enumerate(xs):
        others = [(t, o) for j, (t, o) in enumerate(zip(ins, xs)) if j != i]
        present = set(out).union(*(t for t, _ in others))
        kept = "".join(c for c in ins[i] if c in present)
        grad = _contract([(out, g)] + others, kept)
        if kept != ins[i]:
            shape = tuple(d if c in present else Dim.of(1) for c, d in zip(ins[i], x.shape))
            grad = make("broadcast_to", make("reshape", grad, shape=shape), shape=x.shape)
        grads.append(grad)
    return tuple(grads)


def _contract(terms: list[tuple[str, Node]], out: str) -> Node:
    """einsum of `terms` into `out`, with 0-d terms as factors and a permutation as a
    transpose."""
    scalars = [x for t, x in terms if not t]
    terms = [(t, x) for t, x in terms if t]
    if not terms:
        result = None
    elif len(terms) == 1 and sorted(terms[0][0]) == sorted(out):
        term, x = terms[0]
        result = x if term == out else make("transpose", x, axes=tuple(term.index(c) for c in out))
    else:
        spec = ",".join(t for t, _ in terms) + "->" + out
        result = make("einsum", *(x for _, x in terms), spec=spec)
    for s in scalars:
        result = s if result is None else s * result
    return result


def _einsum_flops(y, *xs, spec):
    """The arrays contracted pairwise, left to right (np.einsum's optimize=True may find a
    cheaper order): 2 per element of the letters a pair spans, as for matmul; one array alone
    costs its size when it sums an axis out, nothing when it only permutes; and each 0-d
    factor one multiply per result element."""
    ins, out = split_spec(spec)
    sizes = {c: d for term, x in zip(ins, xs) for c, d in zip(term, x.shape)}
    terms = [t for t in ins if t]
    factors = len(ins) - len(terms)
    total = Dim.of(0)
    if len(terms) == 1 and set(terms[0]) != set(out):
        total = size(xs[ins.index(terms[0])])
    acc = terms[0] if terms else ""
    for i, term in enumerate(terms[1:], 2):
        span = sorted(set(acc) | set(term))
        total += 2 * product(sizes[c] for c in span)
        needed = set(out).union(*terms[i:])
        acc = "".join(c for c in span if c in needed)
    return total + (factors if terms else max(factors - 1, 0)) * size(y)


register(
    "einsum",
    _einsum_type,
    _einsum_emit,
    _einsum_adjoint,
    jvp=multilinear,
    doc='Einstein summation with an explicit output, np.einsum("ij,jk->ik", a, b)',
    call=("spec", "*operands"),
    flops=_einsum_flops,
    fresh=False,  # np.einsum may return a view of an operand ("ij->ji")
    promotes=True,
    spec=REQUIRED,
)


def _vdot_type(a: Type, b: Type) -> Type:
    if a.shape != b.shape:
        raise ShapeError(
            f"vdot: operands must have one shape, got {show_shape(a.shape)} and {show_shape(b.shape)}"
        )
    return Type(promote(a, b), ())


def _vdot_emit(at, a, b):
    if at.node.args[0].ndim == 1:  # (the method: 0.2-0.4 us a call less than np.dot or `@`)
        return method(a, "dot", b)
    return array("vdot", a, b)


register(
    "vdot",
    _vdot_type,
    _vdot_emit,
    lambda g, y, a, b: (g * b, g * a),
    jvp=multilinear,
    doc="sum(a * b) over every axis, without the temporary product (the optimizer's form of it)",
    flops=lambda y, a, b: 2 * size(a),
)


def _sumprod_type(a: Type, b: Type, *, axis):
    if a.shape != b.shape:
        raise ShapeError(
            f"sumprod: operands must have one shape, got {show_shape(a.shape)} and "
            f"{show_shape(b.shape)}"
        )
    if not axis or len(axis) >= a.ndim or any(not 0 <= i < a.ndim for i in axis):
        raise ShapeError(f"sumprod: axes {axis} must be some, not all, of {a.ndim}")
    return Type(promote(a, b), tuple(d for i, d in enumerate(a.shape) if i not in axis))


def _sumprod_emit(at, a, b, *, axis):
    """`np.einsum("ij,ij->j", a, b)`: NumPy's einsum sums the products without making them
    (0.6x the time of `(a * b).sum(axis=0)` at 64 x 128 and 1024 x 1024, float64 and float32;
    `python bench/kernels.py --only "ij,ij->j"`). No `optimize=`: there is no pair to order."""
    letters = "ijklmnopqrs"[: at.node.args[0].ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axis)
    return array("einsum", Lit(f"{letters},{letters}->{kept}"), a, b)


register(
    "sumprod",
    _sumprod_type,
    _sumprod_emit,
    lambda g, y, a, b, *, axis: (
        expand_back(g, a, axis, False) * b,
        expand_back(g, a, axis, False) * a,
    ),
    jvp=multilinear,
    doc="sum(a * b, axis) over some of the axes of two arrays of one shape, without the "
    'temporary product (np.einsum("ij,ij->j", a, b); the optimizer\'s form of it)',
    flops=lambda y, a, b, **attrs: 2 * size(a),
    promotes=True,
    axis=REQUIRED,
)


def _vecdot_type(a: Type, b: Type) -> Type:
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-1]:
        raise ShapeError(
            f"vecdot: operands must share their last axis, got {show_shape(a.shape)} and "
            f"{show_shape(b.shape)}"
        )
    return Type(promote(a, b), broadcast(a.shape[:-1], b.shape[:-1]))


register(
    "vecdot",
    _vecdot_type,
    lambda at, a, b: array("vecdot", a, b),
    lambda g, y, a, b: (unsqueeze(g, -1) * b, unsqueeze(g, -1) * a),
    jvp=multilinear,
    doc="sum(a * b, axis=-1), the leading axes broadcast, without the temporary product "
    '(np.vecdot; the optimizer\'s form of einsum("ij,ij->i", a, b))',
    flops=lambda y, a, b: 2 * size(y) * a.shape[-1],
    promotes=True,
)
