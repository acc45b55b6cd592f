"""Convolution and pooling over the last two axes of [N, C, H, W] images: conv2d, max_pool2d,
avg_pool2d, and the window view conv2d is made of.

A window view (`windows`) is NumPy's `sliding_window_view` over the last two axes, strided by
indexing: [..., H, W] -> [..., OH, OW, KH, KW] with OH = (H - KH)//stride + 1, a read-only view
of its argument and no copy (`view=True, read_only=True`: every pass reads that off the op).
Its adjoint is the overlap-add `window_add`, one step per kernel offset (a loop over KH x KW,
never over pixels), and the adjoint of that is the window view again.

conv2d is a composite: autodiff uses its textbook adjoint, then the optimizer writes it as an
expert does (CS231n's im2col): np.pad, the window view, its copy as the [C*KH*KW, N*OH*OW]
columns, one BLAS product with the [F, C*KH*KW] filters, read back as [N, F, OH, OW] without a
copy; dW is the gradient against the same columns (cached), dx the filters against the
gradient, overlap-added (col2im).

The pools are helpers that step over the KH x KW kernel offsets with strided slices: an
elementwise maximum (or sum) per offset is ten times faster in NumPy than a reduction over
the window axes of a view or a reshape (bench/; docs/performance.md). Max pooling's gradient
goes to the first maximum of each window, in row-major order, as PyTorch's; its helpers
`max_pool_route` (the gradient) and `max_pool_pick` (its transpose, for second derivatives)
find it the same way, offset by offset.
"""

from __future__ import annotations

from .. import conditions
from ..dims import Dim
from ..expr import ALL, ELLIPSIS, Lit, Slice, Subscript, Tuple, array, helper
from ..expr import shape as shape_of
from ..ir import REQUIRED, ShapeError, Type, make
from . import linear, multilinear, no_flops, register
from . import size as size_of
from .index import full, pad
from .reduce import composite, require_float


def _pair(name: str, what: str, v, least: int, sizes: bool = False) -> tuple:
    """An integer or an (h, w) pair of integers, each at least `least`; with `sizes`, dimension
    expressions too (`pad=(K - 1) // 2`), checked on entry where they depend on the sizes."""
    pair = v if isinstance(v, tuple) else (v, v)
    kinds = (int, Dim) if sizes else int
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, kinds) for p in pair):
        also = " or dimension expressions" if sizes else ""
        raise ShapeError(f"{name}: {what} must be an integer or a pair (h, w) of integers{also}")
    pair = tuple(p.value if isinstance(p, Dim) and p.is_const else p for p in pair)
    for p in pair:
        if isinstance(p, int) and p < least:
            raise ShapeError(f"{name}: {what} must be at least {least}, not {v}")
        if isinstance(p, Dim):
            conditions.require(
                p,
                ">=",
                Dim.of(least),
                f"{name}: {what} {p} is at least {least}",
                f"{name}: {what} {p} is less than {least}",
            )
    return pair


def _out(name: str, n: Dim, k: Dim, s: int, axis: str) -> Dim:
    """(n - k)//s + 1 windows of size k, s apart, along an axis of n; it needs n >= k."""
    conditions.require(
        n,
        ">=",
        k,
        f"{name}: the {axis} {n} holds the window {k}",
        f"{name}: the {axis} {n} is " f"smaller than the window {k}",
    )
    return (n - k).floor_div(s) + 1


# ---------------------------------------------------------------------------------------------
# windows: the strided window view, and its adjoint window_add (overlap-add)


def windows(x, size, stride):
    return make("windows", x, size=tuple(size), stride=tuple(stride))


def _windows_type(x: Type, *, size, stride):
    if x.ndim < 2:
        raise ShapeError(f"windows: x needs two axes at least, not {x}")
    size = tuple(Dim.of(k) for k in size)
    (h, w), (kh, kw), (sh, sw) = x.shape[-2:], size, stride
    shape = (_out("windows", h, kh, sh, "height"), _out("windows", w, kw, sw, "width"))
    return Type(x.dtype, x.shape[:-2] + shape + size), {"size": size, "stride": tuple(stride)}


def _step(s: int) -> Slice:
    return ALL if s == 1 else Slice(None, None, Lit(s))


def _windows_emit(at, x, *, size, stride):
    """`np.lib.stride_tricks.sliding_window_view(x, (KH, KW), axis=(-2, -1))[..., ::s, ::s, :, :]`"""
    axes = Tuple((Lit(-2), Lit(-1)))
    view = array("lib.stride_tricks.sliding_window_view", x, shape_of(size), axis=axes)
    if stride == (1, 1):
        return view
    return Subscript(view, (ELLIPSIS, _step(stride[0]), _step(stride[1]), ALL, ALL))


register(
    "windows",
    _windows_type,
    _windows_emit,
    lambda g, y, x, *, size, stride: (make("window_add", g, shape=x.shape[-2:], stride=stride),),
    jvp=linear(),
    doc="the strided windows of the last two axes, a read-only view (sliding_window_view)",
    flops=no_flops,
    view=True,
    read_only=True,
    size=REQUIRED,
    stride=REQUIRED,
)


def _window_add_type(g: Type, *, shape, stride):
    if g.ndim < 4:
        raise ShapeError(f"window_add: g needs four axes at least, not {g}")
    shape = tuple(Dim.of(d) for d in shape)
    return Type(g.dtype, g.shape[:-4] + shape), {"shape": shape, "stride": tuple(stride)}


register(
    "window_add",
    _window_add_type,
    lambda at, g, *, shape, stride: helper(
        "_window_add", g, shape_of(shape), Tuple(tuple(Lit(s) for s in stride))
    ),
    lambda g, y, x, *, shape, stride: (windows(g, x.shape[-2:], stride),),
    jvp=linear(),
    doc="overlap-add: each window added back where it was read, the adjoint of windows",
    flops=lambda y, g, **attrs: size_of(g),
    shape=REQUIRED,
    stride=REQUIRED,
)


# ---------------------------------------------------------------------------------------------
# conv2d


def _conv_type(x: Type, w: Type, *b: Type, stride=1, pad=0):
    for param, t in (("x", x), ("w", w), *(("b", t) for t in b)):
        require_float("conv2d", param, t)
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(
            f"conv2d: x is [N, C, H, W] and w is [F, C, KH, KW], four axes each; got {x} and {w}"
        )
    if x.shape[1] != w.shape[1]:
        raise ShapeError(f"conv2d: x has {x.shape[1]} channels (axis 1) but w expects {w.shape[1]}")
    if b and b[0].shape != (w.shape[0],):
        raise ShapeError(f"conv2d: b is [F], one bias per filter, [{w.shape[0]}]; got {b[0]}")
    stride, pad = _pair("conv2d", "stride", stride, 1), _pair("conv2d", "pad", pad, 0, True)
    (h, wd), (kh, kw) = x.shape[2:], w.shape[2:]
    shape = (
        _out("conv2d", h + 2 * pad[0], kh, stride[0], "padded height"),
        _out("conv2d", wd + 2 * pad[1], kw, stride[1], "padded width"),
    )
    return Type("float", (x.shape[0], w.shape[0]) + shape), {"stride": stride, "pad": pad}


def _windows_of(x, w, stride, pad):
    """The padded image's windows under the filters: [N, C, OH, OW, KH, KW], a view."""
    if pad != (0, 0):
        x = pad_images(x, pad)
    return windows(x, w.shape[2:], stride)


def _columns(x, w, stride, pad):
    """im2col: the windows as a [C*KH*KW, N*OH*OW] matrix, one column per output pixel (a
    copy, the one the product needs; the backward reads it again for dW)."""
    v = _windows_of(x, w, stride, pad)
    n, c, oh, ow, kh, kw = v.shape
    rows = make("transpose", v, axes=(1, 4, 5, 0, 2, 3))
    return make("reshape", rows, shape=(c * kh * kw, n * oh * ow), hint="cols")


def _filters(w):
    """The filters as an [F, C*KH*KW] matrix."""
    f, c, kh, kw = w.shape
    return make("reshape", w, shape=(f, c * kh * kw), hint="w_rows")


def pad_images(x, p):
    return pad(x, {2: (Dim.of(p[0]), Dim.of(p[0])), 3: (Dim.of(p[1]), Dim.of(p[1]))})


def _by_filter(g):
    """[N, F, OH, OW] -> [F, N*OH*OW], the layout of the product's result."""
    n, f, oh, ow = g.shape
    g = make("transpose", g, axes=(1, 0, 2, 3))
    return make("reshape", g, shape=(f, n * oh * ow), hint="grad_rows")


def _conv_expand(x, w, *b, stride, pad):
    """One BLAS product of the filters with the columns: [F, N*OH*OW], plus the bias, read as
    [N, F, OH, OW] (a transposed view, no copy)."""
    n, _, oh, ow, _, _ = _windows_of(x, w, stride, pad).shape
    y = make("matmul", _filters(w), _columns(x, w, stride, pad))
    y = make("reshape", y, shape=(w.shape[0], n, oh, ow))
    if b:  # b[:, None, None, None], added while the filters are the first axis
        y = y + make("index", b[0], index=(full(b[0].shape[0]), None, None, None))
    return make("transpose", y, axes=(1, 0, 2, 3), hint="conv_out")


def _conv_adjoint(g, y, x, w, *b, stride, pad):
    """dW: g against the columns; db: g summed; dx: the filters against g, overlap-added back
    onto the padded image (col2im), whose inside is x's gradient."""
    cols, gf = _columns(x, w, stride, pad), _by_filter(g)
    dw = make("reshape", make("matmul", gf, make("transpose", cols, axes=(1, 0))), shape=w.shape)
    n, c, oh, ow, kh, kw = _windows_of(x, w, stride, pad).shape
    dcols = make("matmul", make("transpose", _filters(w), axes=(1, 0)), gf)
    dcols = make("reshape", dcols, shape=(c, kh, kw, n, oh, ow), hint="dcols")
    # col2im channels first, [C, N, ...], the layout the product gives: each offset's slice
    # of the columns is then contiguous (a quarter faster than adding into [N, C, ...])
    dcols = make("transpose", dcols, axes=(0, 3, 4, 5, 1, 2))
    dx = make("window_add", dcols, shape=_padded(x, pad), stride=stride)
    if pad != (0, 0):
        (n, c, h, wd), (ph, pw) = x.shape, pad
        dx = make(
            "index", dx, index=(full(c), full(n), (Dim.of(ph), ph + h, 1), (Dim.of(pw), pw + wd, 1))
        )
    dx = make("transpose", dx, axes=(1, 0, 2, 3))
    db = (make("sum", g, axis=(0, 2, 3)),) if b else ()
    return (dx, dw, *db)


def _conv_jvp(t, y, x, w, *b, stride, pad):
    """Bilinear in the image and the filters, and the bias added: dx * w + x * dw + db."""
    tx, tw, *tb = t
    products = multilinear((tx, tw), y, x, w, stride=stride, pad=pad)
    if tb and tb[0] is not None:  # db[:, None, None]
        db = make("index", tb[0], index=(full(w.shape[0]), None, None))
        products = db if products is None else products + db
    return products


def _padded(x, pad):
    return (x.shape[2] + 2 * pad[0], x.shape[3] + 2 * pad[1])


composite(
    "conv2d",
    _conv_type,
    _conv_expand,
    _conv_adjoint,
    jvp=_conv_jvp,
    doc="conv2d(x, w, b, stride=1, pad=0): cross-correlation of x [N, C, H, W] with filters "
    "w [F, C, KH, KW] with zero padding, plus b [F] if given (PyTorch's F.conv2d)",
    call=("x", "w", "b?", "stride", "pad"),
    stride=1,
    pad=0,
)


# ---------------------------------------------------------------------------------------------
# max_pool2d and avg_pool2d: the maximum or the mean of each window of the last two axes


def _pool_type(name):
    def infer(x: Type, *, size=2, stride=2):
        require_float(name, "x", x)
        if x.ndim < 2:
            raise ShapeError(f"{name}: x needs two axes at least ([N, C, H, W]), not {x}")
        size, stride = _pair(name, "size", size, 1), _pair(name, "stride", stride, 1)
        (h, w), (kh, kw), (sh, sw) = x.shape[-2:], size, stride
        shape = (_out(name, h, Dim.of(kh), sh, "height"), _out(name, w, Dim.of(kw), sw, "width"))
        return Type("float", x.shape[:-2] + shape), {"size": size, "stride": stride}

    return infer


def _pairs(size, stride) -> Tuple:
    return (Tuple(tuple(map(Lit, size))), Tuple(tuple(map(Lit, stride))))


def _max_pool_flops(y: Type, x: Type, *, size, stride) -> Dim:
    return size_of(y) * (size[0] * size[1] - 1)  # a maximum per offset but the first


def _avg_pool_flops(y: Type, x: Type, *, size, stride) -> Dim:
    return size_of(y) * (size[0] * size[1])  # an addition per offset but the first, a division


def _route_flops(z: Type, x: Type, y: Type, g: Type, *, size, stride) -> Dim:
    """Per offset: a comparison and a product (and an addition where windows overlap); the
    helper's updates of its own boolean masks are bookkeeping, not counted."""
    apart = stride[0] >= size[0] and stride[1] >= size[1]
    return size_of(y) * (size[0] * size[1] * (2 if apart else 3))


def _pick_flops(z: Type, x: Type, y: Type, d: Type, *, size, stride) -> Dim:
    return size_of(y) * (size[0] * size[1] * 3)  # a comparison, a product, an addition


def _max_pool_adjoint(g, y, x, *, size, stride):
    """The gradient goes to the first maximum of each window (as PyTorch)."""
    return (make("max_pool_route", x, y, g, size=size, stride=stride, hint="dpool"),)


register(
    "max_pool2d",
    _pool_type("max_pool2d"),
    lambda at, x, *, size, stride: helper("_max_pool", x, *_pairs(size, stride)),
    _max_pool_adjoint,
    jvp=lambda t, y, x, *, size, stride: make(
        "max_pool_pick", x, y, t[0], size=size, stride=stride
    ),
    doc="max_pool2d(x, size=2, stride=2): the maximum of each window of the last two axes; the "
    "gradient goes to the first maximum in row-major order (PyTorch's F.max_pool2d)",
    call=("x", "size", "stride"),
    flops=_max_pool_flops,
    size=2,
    stride=2,
)


def _route_type(x: Type, y: Type, g: Type, *, size, stride):
    if g.shape != y.shape:
        raise ShapeError(f"max_pool_route: g {g} must have the shape of the pooled y {y}")
    return Type(g.dtype, x.shape), {"size": tuple(size), "stride": tuple(stride)}


register(
    "max_pool_route",
    _route_type,
    lambda at, x, y, g, *, size, stride: helper("_max_pool_route", x, y, g, *_pairs(size, stride)),
    lambda d, z, x, y, g, *, size, stride: (
        None,
        None,
        make("max_pool_pick", x, y, d, size=size, stride=stride),
    ),
    jvp=linear(2),  # (the first maximum of each window moves with neither x nor y)
    doc="max pooling's gradient: g sent to the first maximum of each window of x",
    flops=_route_flops,
    size=REQUIRED,
    stride=REQUIRED,
)


def _pick_type(x: Type, y: Type, d: Type, *, size, stride):
    if d.shape != x.shape:
        raise ShapeError(f"max_pool_pick: d {d} must have the shape of the pooled x {x}")
    return Type(d.dtype, y.shape), {"size": tuple(size), "stride": tuple(stride)}


register(
    "max_pool_pick",
    _pick_type,
    lambda at, x, y, d, *, size, stride: helper("_max_pool_pick", x, y, d, *_pairs(size, stride)),
    lambda g, z, x, y, d, *, size, stride: (
        None,
        None,
        make("max_pool_route", x, y, g, size=size, stride=stride),
    ),
    jvp=linear(2),
    doc="d read at the first maximum of each window of x: the transpose of max_pool_route",
    flops=_pick_flops,
    size=REQUIRED,
    stride=REQUIRED,
)


def _avg_pool_adjoint(g, y, x, *, size, stride):
    """Each element of a window gets g / (KH * KW): the share, overlap-added back onto x."""
    v = windows(x, size, stride)
    share = make("reshape", g / (size[0] * size[1]), shape=g.shape + (Dim.of(1), Dim.of(1)))
    spread = make("broadcast_to", share, shape=v.shape)
    return (make("window_add", spread, shape=x.shape[-2:], stride=stride),)


register(
    "avg_pool2d",
    _pool_type("avg_pool2d"),
    lambda at, x, *, size, stride: helper("_avg_pool", x, *_pairs(size, stride)),
    _avg_pool_adjoint,
    jvp=linear(),
    doc="avg_pool2d(x, size=2, stride=2): the mean of each window of the last two axes "
    "(PyTorch's F.avg_pool2d, no padding)",
    call=("x", "size", "stride"),
    flops=_avg_pool_flops,
    size=2,
    stride=2,
)
