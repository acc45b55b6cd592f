"""Oracle rules for conv2d and pooling, from their definitions: a sum over the kernel offsets
(i, j) of the zero-padded image shifted by (i, j) and read every stride-th pixel, times the
filters' taps at (i, j); a pool takes the maximum or the mean of the same shifted images. No
window view, no overlap-add: autograd differentiates the shifts."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from bpc.dims import Dim


def _int(d, sizes) -> int:
    return Dim.of(d).subs({s: Dim.of(v) for s, v in sizes.items()}).value


def _padded(x, ph, pw):
    n, c, h, w = x.shape
    if ph:
        z = anp.zeros((n, c, ph, w))
        x = anp.concatenate([z, x, z], axis=2)
    if pw:
        z = anp.zeros((n, c, x.shape[2], pw))
        x = anp.concatenate([z, x, z], axis=3)
    return x


def _shifts(x, kh, kw, sh, sw):
    """(i, j, x shifted by (i, j) and strided): one image per kernel offset."""
    h, w = x.shape[2:]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]


def _conv2d(node, args, sizes):
    x, w, *b = args
    sh, sw = node.attr("stride")
    ph, pw = (_int(p, sizes) for p in node.attr("pad"))  # (a pad may be a dimension expression)
    kh, kw = w.shape[2:]
    out = 0.0
    for i, j, xs in _shifts(_padded(x, ph, pw), kh, kw, sh, sw):
        # out[n, f, y, x] += sum_c xs[n, c, y, x] * w[f, c, i, j]
        out = out + anp.sum(xs[:, None] * w[None, :, :, i, j][..., None, None], axis=2)
    return out + b[0][None, :, None, None] if b else out


def _pool(reduce):
    def rule(node, args, sizes):
        (x,) = args
        lead = x.shape[:-2]
        x4 = anp.reshape(x, (-1, 1) + x.shape[-2:])
        (kh, kw), (sh, sw) = node.attr("size"), node.attr("stride")
        shifted = anp.stack([xs for _, _, xs in _shifts(x4, kh, kw, sh, sw)])
        out = reduce(shifted, axis=0)
        return anp.reshape(out, lead + out.shape[-2:])

    return rule


# The window view and the max pool's routing, which the optimized graphs and the gradients are
# made of: from their definitions, offset by offset (plain NumPy; nothing differentiates them).


def _windows(x, size, stride):
    """[..., H, W] -> [..., OH, OW, KH, KW]: out[..., y, x, i, j] = x[..., y*sh + i, x*sw + j]."""
    (kh, kw), (sh, sw) = size, stride
    h, w = x.shape[-2:]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    taps = [
        [x[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] for j in range(kw)]
        for i in range(kh)
    ]
    return np.stack([np.stack(row, axis=-1) for row in taps], axis=-2)


def _window_add(g, shape, stride):
    """Each window of g added back where it was read: the transpose of `_windows`."""
    (oh, ow, kh, kw), (sh, sw) = g.shape[-4:], stride
    out = np.zeros(g.shape[:-4] + tuple(shape))
    for i in range(kh):
        for j in range(kw):
            out[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] += g[..., i, j]
    return out


def _first_maximum(x, size, stride):
    """A mask of the windows of x: 1 at the first maximum of each window (row-major), else 0."""
    v = _windows(x, size, stride)
    flat = v.reshape(v.shape[:-2] + (-1,))
    return (np.arange(flat.shape[-1]) == np.argmax(flat, axis=-1)[..., None]).reshape(v.shape)


def _route(node, args, sizes):
    x, y, g = args
    size, stride = node.attr("size"), node.attr("stride")
    mask = _first_maximum(x, size, stride)
    return _window_add(mask * np.asarray(g)[..., None, None], x.shape[-2:], stride)


def _pick(node, args, sizes):
    x, y, d = args
    size, stride = node.attr("size"), node.attr("stride")
    return np.sum(_first_maximum(x, size, stride) * _windows(d, size, stride), axis=(-2, -1))


RULES = {
    "conv2d": _conv2d,
    "max_pool2d": _pool(anp.max),
    "avg_pool2d": _pool(anp.mean),
    "windows": lambda node, args, sizes: _windows(
        args[0], [_int(d, sizes) for d in node.attr("size")], node.attr("stride")
    ),
    "window_add": lambda node, args, sizes: _window_add(
        args[0], [_int(d, sizes) for d in node.attr("shape")], node.attr("stride")
    ),
    "max_pool_route": _route,
    "max_pool_pick": _pick,
}
