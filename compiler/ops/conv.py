"""Convolution and pooling over the last two axes of [N, C, H, W] images: conv2d, max_pool2d,
avg_pool2d, and the window view they are made of.

A window view (`windows`) is NumPy's `sliding_window_view` over the last two axes, strided by
indexing: [..., H, W] -> [..., OH, OW, KH, KW] with OH = (H - KH)//stride + 1, a read-only view
of its argument and no copy (`view=True, read_only=True`: every pass reads that off the op).
Its adjoint is the overlap-add `window_add`, one step per kernel offset (a loop over KH x KW,
never over pixels), and the adjoint of that is the window view again.

conv2d and the pools are composites: autodiff uses their textbook adjoints, then the optimizer
writes them with the operations they are made of (np.pad, the window view, one einsum with
optimize=True, which contracts with BLAS), so the forward and the backward share the padded
window view (dW reads it from the cache).
"""

from __future__ import annotations

from .. import conditions
from ..dims import Dim
from ..expr import ALL, ELLIPSIS, Lit, Slice, Subscript, Tuple, array, helper
from ..expr import shape as shape_of
from ..ir import REQUIRED, ShapeError, Type, make
from . import no_flops, register, size
from .index import full, pad
from .reduce import composite, require_float


def _pair(name: str, what: str, v, least: int) -> tuple[int, int]:
    """An integer or an (h, w) pair of integers, each at least `least`."""
    pair = v if isinstance(v, tuple) else (v, v)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, int) for p in pair):
        raise ShapeError(f"{name}: {what} must be an integer or a pair (h, w) of integers")
    if any(p < least for p in pair):
        raise ShapeError(f"{name}: {what} must be at least {least}, not {v}")
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
    doc="overlap-add: each window added back where it was read, the adjoint of windows",
    flops=lambda y, g, **attrs: size(g),
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
    stride, pad = _pair("conv2d", "stride", stride, 1), _pair("conv2d", "pad", pad, 0)
    (h, wd), (kh, kw) = x.shape[2:], w.shape[2:]
    shape = (
        _out("conv2d", h + 2 * pad[0], kh, stride[0], "padded height"),
        _out("conv2d", wd + 2 * pad[1], kw, stride[1], "padded width"),
    )
    return Type("float", (x.shape[0], w.shape[0]) + shape), {"stride": stride, "pad": pad}


def _columns(x, w, stride, pad):
    """The padded image's windows under the filters: [N, C, OH, OW, KH, KW], a view."""
    if pad != (0, 0):
        x = pad_images(x, pad)
    return windows(x, w.shape[2:], stride)


def pad_images(x, p):
    return pad(x, {2: (Dim.of(p[0]), Dim.of(p[0])), 3: (Dim.of(p[1]), Dim.of(p[1]))})


def _bias(b):
    """b[:, None, None], to add to [N, F, OH, OW]."""
    return make("index", b, index=(full(b.shape[0]), None, None))


def _conv_expand(x, w, *b, stride, pad):
    y = make("einsum", _columns(x, w, stride, pad), w, spec="nchwij,fcij->nfhw")
    return y + _bias(b[0]) if b else y


def _conv_adjoint(g, y, x, w, *b, stride, pad):
    """dW: the windows against g; db: g summed; dx: g through the filters, overlap-added back
    onto the padded image, whose inside is x's gradient."""
    cols = _columns(x, w, stride, pad)
    dw = make("einsum", g, cols, spec="nfhw,nchwij->fcij")
    dcols = make("einsum", g, w, spec="nfhw,fcij->nchwij")
    dx = make("window_add", dcols, shape=_padded(x, pad), stride=stride)
    if pad != (0, 0):
        (n, c, h, wd), (ph, pw) = x.shape, pad
        dx = make(
            "index", dx, index=(full(n), full(c), (Dim.of(ph), ph + h, 1), (Dim.of(pw), pw + wd, 1))
        )
    db = (make("sum", g, axis=(0, 2, 3)),) if b else ()
    return (dx, dw, *db)


def _padded(x, pad):
    return (x.shape[2] + 2 * pad[0], x.shape[3] + 2 * pad[1])


composite(
    "conv2d",
    _conv_type,
    _conv_expand,
    _conv_adjoint,
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


def _window_axes(x) -> tuple[int, int]:
    return (x.ndim, x.ndim + 1)  # the window view's last two axes


def _first_max_type(v: Type, g: Type):
    if v.shape[:-2] != g.shape:
        raise ShapeError(f"first_max: g {g} must have the shape of v {v} without its last two axes")
    return Type(g.dtype, v.shape), {}


def _first_max_adjoint(dz, z, v, g):
    """z is g at one position of each window: g's gradient reads dz there."""
    ones = make("ones", shape=g.shape)
    return (None, make("sum", dz * make("first_max", v, ones), axis=_window_axes(g)))


register(
    "first_max",
    _first_max_type,
    lambda at, v, g: helper("_first_max", v, g),
    _first_max_adjoint,
    doc="g at the first maximum of each window of v (row-major), zeros elsewhere",
    flops=lambda y, v, g, **attrs: size(v),
)


def _max_pool_expand(x, *, size, stride):
    return make("max", windows(x, size, stride), axis=_window_axes(x))


def _max_pool_adjoint(g, y, x, *, size, stride):
    """The gradient goes to the first maximum of each window (as PyTorch), then back onto x."""
    picked = make("first_max", windows(x, size, stride), g)
    return (make("window_add", picked, shape=x.shape[-2:], stride=stride),)


composite(
    "max_pool2d",
    _pool_type("max_pool2d"),
    _max_pool_expand,
    _max_pool_adjoint,
    doc="max_pool2d(x, size=2, stride=2): the maximum of each window of the last two axes; the "
    "gradient goes to the first maximum in row-major order (PyTorch's F.max_pool2d)",
    call=("x", "size", "stride"),
    size=2,
    stride=2,
)


def _avg_pool_expand(x, *, size, stride):
    return make("mean", windows(x, size, stride), axis=_window_axes(x))


def _avg_pool_adjoint(g, y, x, *, size, stride):
    """Each element of a window gets g / (KH * KW)."""
    v = windows(x, size, stride)
    share = make("reshape", g / (size[0] * size[1]), shape=g.shape + (Dim.of(1), Dim.of(1)))
    spread = make("broadcast_to", share, shape=v.shape)
    return (make("window_add", spread, shape=x.shape[-2:], stride=stride),)


composite(
    "avg_pool2d",
    _pool_type("avg_pool2d"),
    _avg_pool_expand,
    _avg_pool_adjoint,
    doc="avg_pool2d(x, size=2, stride=2): the mean of each window of the last two axes "
    "(PyTorch's F.avg_pool2d, no padding)",
    call=("x", "size", "stride"),
    size=2,
    stride=2,
)
