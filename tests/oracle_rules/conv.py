"""Oracle rules for conv2d and pooling, from their definitions: a sum over the kernel offsets
(i, j) of the zero-padded image shifted by (i, j) and read every stride-th pixel, times the
filters' taps at (i, j); a pool takes the maximum or the mean of the same shifted images. No
window view, no overlap-add: autograd differentiates the shifts."""

from __future__ import annotations

import autograd.numpy as anp

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
    (sh, sw), (ph, pw) = node.attr("stride"), node.attr("pad")
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


RULES = {"conv2d": _conv2d, "max_pool2d": _pool(anp.max), "avg_pool2d": _pool(anp.mean)}
