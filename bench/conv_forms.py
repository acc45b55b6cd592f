"""The NumPy forms of a conv layer's and of max pooling's value and gradients, timed against each
other: the hand-written reference of bench/conv_cases.py (and the code bpc emits) is the fastest
of them.

    python bench/conv_forms.py [--repeats 9] [--smoke]

Each form computes the forward and the gradients (dx, dw, db for the conv; dx for pooling, to
the first maximum of each window) from the same inputs; all are checked against the first
before anything is timed. Prints the median time of each form over interleaved repeats and its
median per-repeat ratio to the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from conv_cases import conv_backward, conv_forward, pool_backward, pool_forward
from numpy.lib.stride_tricks import sliding_window_view

# ---------------------------------------------------------------------------------------------
# conv layer forms: (x, w, b, G) -> (dx, dw, db)


def _conv_reference(s, p):
    def run(x, w, b, G):
        y, cols = conv_forward(x, w, b, s, p)
        return conv_backward(G, x, w, cols, s, p)

    return run


def _view(x, w, s, p):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    return xp, sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]


def _col2im(xp, dcols, s, p, H, W):
    """dcols [N, C, OH, OW, KH, KW] overlap-added onto the padded image, cropped."""
    dxp = np.zeros_like(xp)
    OH, OW, KH, KW = dcols.shape[2:]
    for i in range(KH):
        for j in range(KW):
            dxp[:, :, i : i + s * OH : s, j : j + s * OW : s] += dcols[..., i, j]
    return dxp[:, :, p : p + H, p : p + W]


def _conv_einsum(s, p):
    """einsum with optimize=True on the window view, for the forward and for dW (each copies
    the view again); dx through the [N, C, OH, OW, KH, KW] columns."""

    def run(x, w, b, G):
        xp, v = _view(x, w, s, p)
        y = np.einsum("nchwij,fcij->nfhw", v, w, optimize=True) + b[:, None, None]  # noqa: F841
        dw = np.einsum("nfhw,nchwij->fcij", G, v, optimize=True)
        dcols = np.einsum("nfhw,fcij->nchwij", G, w, optimize=True)
        return _col2im(xp, dcols, s, p, *x.shape[2:]), dw, G.sum(axis=(0, 2, 3))

    return run


def _conv_tensordot(s, p):
    """np.tensordot on the window view (each call reshapes, so copies, it)."""

    def run(x, w, b, G):
        xp, v = _view(x, w, s, p)
        y = np.tensordot(v, w, axes=([1, 4, 5], [1, 2, 3])) + b  # noqa: F841 - [N, OH, OW, F]
        dw = np.tensordot(G, v, axes=([0, 2, 3], [0, 2, 3]))
        dcols = np.tensordot(G, w, axes=([1], [0])).transpose(0, 3, 1, 2, 4, 5)
        return _col2im(xp, dcols, s, p, *x.shape[2:]), dw, G.sum(axis=(0, 2, 3))

    return run


def _conv_per_offset(s, p):
    """The reference's forward and dW; dx one product per kernel offset, without columns."""

    def run(x, w, b, G):
        y, cols = conv_forward(x, w, b, s, p)
        N, C, H, W = x.shape
        F, _, KH, KW = w.shape
        OH, OW = G.shape[2:]
        rows = G.transpose(1, 0, 2, 3).reshape(F, -1)
        dw = (rows @ cols.T).reshape(w.shape)
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
        for i in range(KH):
            for j in range(KW):
                part = np.einsum("nfhw,fc->nchw", G, w[:, :, i, j], optimize=True)
                dxp[:, :, i : i + s * OH : s, j : j + s * OW : s] += part
        return dxp[:, :, p : p + H, p : p + W], dw, G.sum(axis=(0, 2, 3))

    return run


def conv_forms(size):
    N, C, H, W, F, K, s, p = size
    rng = np.random.default_rng(0)
    OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    args = (
        rng.standard_normal((N, C, H, W)),
        rng.standard_normal((F, C, K, K)),
        rng.standard_normal(F),
        rng.standard_normal((N, F, OH, OW)),
    )
    forms = {
        "im2col columns + one GEMM, kept for dW (reference, bpc)": _conv_reference(s, p),
        "einsum(optimize=True) on the window view": _conv_einsum(s, p),
        "tensordot on the window view": _conv_tensordot(s, p),
        "dx one product per kernel offset": _conv_per_offset(s, p),
    }
    return f"conv layer {N}x{C}x{H}x{W}, {F} {K}x{K}, s{s} p{p}", forms, args


# ---------------------------------------------------------------------------------------------
# max pooling forms: (x, G) -> dx


def _pool_reference(k, s):
    def run(x, G):
        return pool_backward(G, x, pool_forward(x, k, s), k, s)

    return run


def _pool_reshape(x, G):
    """CS231n's max_pool_forward_reshape and its backward (2x2 windows that tile), with the
    gradient kept to the first maximum of each window."""
    N, C, H, W = x.shape
    xr = x.reshape(N, C, H // 2, 2, W // 2, 2)
    y = xr.max(axis=3).max(axis=4)
    hit = xr == y[:, :, :, None, :, None]
    flat = hit.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2, 4)
    first = (np.cumsum(flat, axis=-1) == 1) & flat
    first = first.reshape(N, C, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return (first * G[:, :, :, None, :, None]).reshape(x.shape)


def _pool_argmax(k, s):
    """The windows copied to [..., OH, OW, K*K]: argmax, then the gradient put at it and
    overlap-added back."""

    def run(x, G):
        v = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        flat = v.reshape(*v.shape[:4], k * k)
        at = flat.argmax(axis=-1)[..., None]
        y = np.take_along_axis(flat, at, -1)  # noqa: F841 - the forward
        d = np.zeros(flat.shape)
        np.put_along_axis(d, at, G[..., None], -1)
        d = d.reshape(v.shape)
        dx = np.zeros_like(x)
        OH, OW = G.shape[2:]
        for i in range(k):
            for j in range(k):
                dx[:, :, i : i + s * OH : s, j : j + s * OW : s] += d[..., i, j]
        return dx

    return run


def pool_forms(size):
    N, C, H, W, k, s = size
    rng = np.random.default_rng(1)
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    args = (rng.standard_normal((N, C, H, W)), rng.standard_normal((N, C, OH, OW)))
    forms = {
        "a maximum per kernel offset (reference, bpc)": _pool_reference(k, s),
        "window view copied, argmax": _pool_argmax(k, s),
    }
    if k == s == 2 and H % 2 == W % 2 == 0:
        forms["reshape (CS231n), max over the window axes"] = _pool_reshape
    return f"max pooling {N}x{C}x{H}x{W}, {k}x{k} s{s}", forms, args


# ---------------------------------------------------------------------------------------------


def compare(title, forms, args, repeats: int) -> str:
    fns = list(forms.values())
    reference = fns[0](*args)
    for name, fn in forms.items():
        for got, want in zip(fn(*args), reference):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    number = max(1, int(0.05 / max(_time(fns[0], args, 1), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(repeats):
        for name, fn in forms.items():
            times[name].append(_time(fn, args, number))
    first = times[next(iter(forms))]
    lines = [f"| {title} | median | / reference |", "|---|---|---|"]
    for name, ts in times.items():
        ratio = statistics.median(t / r for t, r in zip(ts, first))
        lines.append(f"| {name} | {statistics.median(ts) * 1e3:.2f} ms | {ratio:.2f} |")
    return "\n".join(lines)


def _time(fn, args, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return (time.perf_counter() - start) / number


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repeats")
    args = parser.parse_args(argv)
    if args.smoke:
        cases = [conv_forms((2, 3, 7, 6, 4, 3, 2, 1)), pool_forms((2, 3, 6, 8, 2, 2))]
        cases.append(pool_forms((2, 3, 7, 6, 3, 2)))
    else:
        cases = [
            conv_forms((50, 3, 32, 32, 32, 3, 1, 1)),
            conv_forms((8, 64, 56, 56, 64, 3, 1, 1)),
            conv_forms((50, 3, 32, 32, 32, 3, 2, 1)),
            pool_forms((50, 32, 32, 32, 2, 2)),
            pool_forms((8, 64, 56, 56, 3, 2)),
        ]
    for title, forms, inputs in cases:
        print(compare(title, forms, inputs, 2 if args.smoke else args.repeats), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
