"""Oracle rules for indexing, take, take_along, concat, stack and the scatters, from their
definitions: the scatters sum one-hot products (no np.add.at, no bincount), pad joins blocks of
zeros, stack joins the arrays given a new axis each."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from bpc.dims import Dim


def _int(d, sizes) -> int:
    return Dim.of(d).subs({s: Dim.of(v) for s, v in sizes.items()}).value


def _index(node, args, sizes):
    (x,) = args
    key = []
    for item in node.attr("index"):
        if item is None:
            key.append(None)
        elif isinstance(item, tuple):
            start, stop, step = item
            key.append(slice(_int(start, sizes), None if stop is None else _int(stop, sizes), step))
        else:
            key.append(_int(item, sizes))
    return x[tuple(key)]


def _pad(node, args, sizes):
    (x,) = args
    for axis, (before, after) in enumerate(node.attr("widths")):
        shape = list(anp.shape(x))
        blocks = []
        for width in (_int(before, sizes), None, _int(after, sizes)):
            if width is None:
                blocks.append(x)
            elif width:
                blocks.append(np.zeros(shape[:axis] + [width] + shape[axis + 1 :]))
        x = anp.concatenate(blocks, axis=axis)
    return x


def _one_hot(idx, size: int):
    return (np.asarray(idx)[..., None] == np.arange(size)).astype(float)


def _take(node, args, sizes):
    x, idx = args
    return x[(slice(None),) * node.attr("axis") + (np.asarray(idx),)]


def _take_along(node, args, sizes):
    x, idx = args
    idx = np.asarray(idx)
    return x[tuple(np.indices(idx.shape)) + (idx,)]  # x[i, j, idx[i, j]]


def _scatter_add(node, args, sizes):
    like, idx, g = args
    m = np.ndim(idx)
    onehot = _one_hot(idx, np.shape(like)[0])  # idx.shape + (rows,)
    return anp.tensordot(onehot, g, axes=(list(range(m)), list(range(m))))


def _scatter_along(node, args, sizes):
    idx, g = args
    return _one_hot(idx, _int(node.attr("size"), sizes)) * anp.expand_dims(g, -1)


def _add_along(node, args, sizes):
    a, idx, g = args
    return a + _one_hot(idx, np.shape(a)[-1]) * anp.expand_dims(g, -1)


RULES = {
    "add_along": _add_along,
    "index": _index,
    "pad": _pad,
    "take": _take,
    "take_along": _take_along,
    "scatter_add": _scatter_add,
    "scatter_along": _scatter_along,
    "concat": lambda node, args, sizes: anp.concatenate(args, axis=node.attr("axis")),
    # each array given a new axis of size 1, then joined along it
    "stack": lambda node, args, sizes: anp.concatenate(
        [anp.expand_dims(x, node.attr("axis")) for x in args], axis=node.attr("axis")
    ),
}
