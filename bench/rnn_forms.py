"""The NumPy forms of a tanh RNN's and of an LSTM's value and VJP over a sequence, timed against
each other: the hand-written reference of bench/rnn_cases.py is the fastest of them where the
benchmark runs (BLAS's default threads), or tied with the fastest.

    python bench/rnn_forms.py [--repeats 9] [--smoke] [--only rnn|lstm] [--small]
    OPENBLAS_NUM_THREADS=1 python bench/rnn_forms.py --cpu-time   # on a busy machine

Each form computes hs and the gradients dx, dh0, dWx, dWh, db from the same inputs and upstream
gradient; all are checked against the first before anything is timed. Prints the median time of
each form over interleaved repeats (each in its own order) and its median per-repeat ratio to
the reference.

The forms: the reference (rnn_cases.rnn_forward and rnn_backward, lstm_forward and
lstm_backward), then the same with one choice changed: np.tanh (and, for the LSTM, the logistic
function as 0.5 * tanh(a / 2) + 0.5, the form bpc emits) instead of the forms through exp; the
local derivatives of the nonlinearities taken step by step in the loop, or for all steps before
it; tanh(c) computed again in the backward instead of kept; dWh added up step by step instead of
one product after the loop; the RNN time-major inside (x and hs copied between [N, T, .] and
[T, N, .]); and CS231n's step functions called in a loop (x[:, t] @ Wx in every step, and dx, dWx,
db step by step too).

Figures: `OPENBLAS_NUM_THREADS=1 python bench/rnn_forms.py --cpu-time --repeats 15` on a shared
2-core AMD EPYC VM (AVX2, no AVX-512; NumPy 2.4.6, OpenBLAS 0.3.31), while other work kept its load
near 4: there the wall clock moved tenfold from run to run, and the CPU time of a form by about
10%, so ratios less than 5% apart are ties. The reference's CPU time, then each form's ratio to it:

| tanh RNN | 32, 50, 64, 128 | 128, 100, 128, 256 |
|---|---|---|
| reference | 17.7 ms | 280 ms |
| np.tanh | 1.04 | 1.04 |
| 1 - h**2 step by step | 1.05 | 1.00 |
| dWh step by step | 0.86 | 1.03 |
| time-major inside | 1.01 | 1.01 |
| CS231n's step functions in a loop | 0.95 | 1.01 |

| LSTM | 32, 50, 64, 128 | 128, 100, 128, 256 |
|---|---|---|
| reference | 63.3 ms | 1346 ms |
| np.tanh, sigmoid as 0.5 tanh(a/2) + 0.5 (bpc's forms) | 1.08 | 1.12 |
| np.tanh, sigmoid through exp | 1.03 | 1.04 |
| local derivatives of all steps before the loop | 0.99 | 1.11 |
| tanh(c) again in the backward | 1.04 | 1.03 |
| dWh step by step | 1.07 | 1.05 |
| CS231n's step functions in a loop | 1.09 | 1.04 |

dWh step by step wins on the small RNN with one BLAS thread on busy cores (0.86 to 0.99 over
five runs: its small products stay in cache), but with the default two threads on quieter cores
(load about 1, wall clock, an earlier draft of these forms) the one product after the loop was
ahead by 10 to 50% (by 18% on the LSTM), and that is the benchmark's setting. Also from that
draft: tanh through exp made the RNN's forward alone 9% faster (40 interleaved repeats); CS231n's
step functions were 14 to 37% slower than the reference and time-major 3 to 22% slower.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
from rnn_cases import CASES, lstm_hand, rnn_hand, sigmoid, tanh

# ---------------------------------------------------------------------------------------------
# tanh RNN forms: (x, h0, Wx, Wh, b, dhs) -> (hs, dx, dh0, dWx, dWh, db)


def _rnn(tanh=tanh, local_first=True, dWh_per_step=False):
    """The reference, with one of its choices changed."""

    def run(x, h0, Wx, Wh, b, dhs):
        N, T, D = x.shape
        H = h0.shape[1]
        hs = (x.reshape(N * T, D) @ Wx).reshape(N, T, H)
        hs += b
        h, hWh = h0, np.empty_like(h0)
        with np.errstate(over="ignore"):
            for t in range(T):
                ht = hs[:, t]
                ht += np.matmul(h, Wh, out=hWh)
                h = tanh(ht, out=ht)
        if local_first:
            da = np.multiply(hs, hs)
            np.subtract(1.0, da, out=da)
        else:
            da = np.empty_like(hs)
        dh = np.zeros_like(h0)
        dWh = np.zeros_like(Wh)
        for t in range(T - 1, -1, -1):
            dh += dhs[:, t]
            dt = da[:, t]
            if local_first:
                dt *= dh
            else:
                np.multiply(hs[:, t], hs[:, t], out=dt)
                np.subtract(1.0, dt, out=dt)
                dt *= dh
            if dWh_per_step:
                dWh += (hs[:, t - 1] if t else h0).T @ dt
            np.matmul(dt, Wh.T, out=dh)
        rows = da.reshape(N * T, H)
        if not dWh_per_step:
            hprev = np.empty_like(hs)
            hprev[:, 0] = h0
            hprev[:, 1:] = hs[:, :-1]
            dWh = hprev.reshape(N * T, H).T @ rows
        dx = (rows @ Wx.T).reshape(N, T, D)
        return hs, dx, dh, x.reshape(N * T, D).T @ rows, dWh, rows.sum(axis=0)

    return run


def _rnn_time_major(x, h0, Wx, Wh, b, dhs):
    """[T, N, .] inside: h[t - 1] and h[t] are then slices of one contiguous array."""
    N, T, D = x.shape
    H = h0.shape[1]
    xt = x.transpose(1, 0, 2).reshape(T * N, D)  # a copy
    hb = np.empty((T + 1, N, H))  # h0, then hs
    hb[0] = h0
    hb[1:] = (xt @ Wx).reshape(T, N, H)
    hb[1:] += b
    with np.errstate(over="ignore"):
        for t in range(1, T + 1):
            hb[t] += hb[t - 1] @ Wh
            tanh(hb[t], out=hb[t])
    da = np.multiply(hb[1:], hb[1:])
    np.subtract(1.0, da, out=da)
    dh = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t]
        da[t] *= dh
        np.matmul(da[t], Wh.T, out=dh)
    rows = da.reshape(T * N, H)
    dWh = hb[:-1].reshape(T * N, H).T @ rows
    dx = (rows @ Wx.T).reshape(T, N, D).transpose(1, 0, 2).copy()
    hs = hb[1:].transpose(1, 0, 2).copy()
    return hs, dx, dh, xt.T @ rows, dWh, rows.sum(axis=0)


def _rnn_cs231n(x, h0, Wx, Wh, b, dhs):
    """CS231n's rnn_step_forward and rnn_step_backward, called step by step."""
    N, T, D = x.shape
    H = h0.shape[1]
    hs = np.empty((N, T, H))
    h = h0
    for t in range(T):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + b)
        hs[:, t] = h
    dx = np.empty_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        h = hs[:, t]
        da = (dhs[:, t] + dh) * (1 - h * h)
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh += (hs[:, t - 1] if t else h0).T @ da
        db += da.sum(axis=0)
        dh = da @ Wh.T
    return hs, dx, dh, dWx, dWh, db


def rnn_forms(size):
    forms = {
        "reference: x @ Wx before the loop, tanh through exp, dx dWx dWh db after it": rnn_hand,
        "np.tanh": _rnn(tanh=np.tanh),
        "1 - h**2 step by step": _rnn(local_first=False),
        "dWh step by step": _rnn(dWh_per_step=True),
        "time-major inside": _rnn_time_major,
        "CS231n's step functions in a loop": _rnn_cs231n,
    }
    return f"tanh RNN, N, T, D, H = {', '.join(map(str, size))}", forms


# ---------------------------------------------------------------------------------------------
# LSTM forms


def _np_tanh(a, out):
    return np.tanh(a, out=out)


def _half_tanh(a):
    """0.5 * tanh(a / 2) + 0.5, in place."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _lstm(tanh=tanh, sigmoid=sigmoid, local_first=False, keep_tc=True, dWh_per_step=False):
    """The reference, with one of its choices changed."""

    def run(x, h0, Wx, Wh, b, dhs):
        N, T, D = x.shape
        H = h0.shape[1]
        gates = (x.reshape(N * T, D) @ Wx).reshape(N, T, 4 * H)
        gates += b
        hs, cs, tcs = np.empty((N, T, H)), np.empty((N, T, H)), np.empty((N, T, H))
        h, c = h0, np.zeros((N, H))
        hWh, ig = np.empty((N, 4 * H)), np.empty((N, H))
        with np.errstate(over="ignore"):
            for t in range(T):
                a = gates[:, t]
                a += np.matmul(h, Wh, out=hWh)
                sigmoid(a[:, : 3 * H])
                i, f, o, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
                tanh(g, out=g)
                ct = cs[:, t]
                np.multiply(f, c, out=ct)
                ct += np.multiply(i, g, out=ig)
                h = np.multiply(o, tanh(ct, out=tcs[:, t]), out=hs[:, t])
                c = ct
        if not keep_tc:
            tcs = None  # as if only c were kept
        if local_first:
            da = np.subtract(1.0, gates)  # s (1 - s) and 1 - g**2 for every step
            da[..., : 3 * H] *= gates[..., : 3 * H]
            np.multiply(gates[..., 3 * H :], gates[..., 3 * H :], out=da[..., 3 * H :])
            np.subtract(1.0, da[..., 3 * H :], out=da[..., 3 * H :])
        else:
            da = np.empty_like(gates)
        dh, dc, dWh = np.zeros_like(h0), np.zeros_like(h0), np.zeros_like(Wh)
        tmp, tc, ds, up = np.empty_like(h0), np.empty_like(h0), np.empty((N, 3 * H)), None
        if local_first:
            up = np.empty((N, 4 * H))  # the gradients of the gates, multiplied into da
        for t in range(T - 1, -1, -1):
            gt, dt = gates[:, t], da[:, t]
            i, f, o, g = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
            to = up if local_first else dt
            di, df, do, dg = to[:, :H], to[:, H : 2 * H], to[:, 2 * H : 3 * H], to[:, 3 * H :]
            if keep_tc:
                tc = tcs[:, t]
            else:
                with np.errstate(over="ignore"):
                    tanh(cs[:, t], out=tc)
            dh += dhs[:, t]
            np.multiply(dh, tc, out=do)
            np.multiply(tc, tc, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            np.multiply(dc, g, out=di)
            if t:
                np.multiply(dc, cs[:, t - 1], out=df)
            else:
                df.fill(0.0)
            np.multiply(dc, i, out=dg)
            dc *= f
            if local_first:
                dt *= up
            else:
                s = gt[:, : 3 * H]
                np.subtract(1.0, s, out=ds)
                ds *= s
                dt[:, : 3 * H] *= ds
                np.multiply(g, g, out=tmp)
                np.subtract(1.0, tmp, out=tmp)
                dg *= tmp
            if dWh_per_step:
                dWh += (hs[:, t - 1] if t else h0).T @ dt
            np.matmul(dt, Wh.T, out=dh)
        rows = da.reshape(N * T, 4 * H)
        if not dWh_per_step:
            hprev = np.empty_like(hs)
            hprev[:, 0] = h0
            hprev[:, 1:] = hs[:, :-1]
            dWh = hprev.reshape(N * T, H).T @ rows
        dx = (rows @ Wx.T).reshape(N, T, D)
        return hs, dx, dh, x.reshape(N * T, D).T @ rows, dWh, rows.sum(axis=0)

    return run


def _logistic(a):
    return 1 / (1 + np.exp(-a))


def _lstm_cs231n(x, h0, Wx, Wh, b, dhs):
    """CS231n's lstm_step_forward and lstm_step_backward, called step by step."""
    N, T, D = x.shape
    H = h0.shape[1]
    h, c = h0, np.zeros_like(h0)
    hs, steps = np.empty((N, T, H)), []
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = _logistic(a[:, :H]), _logistic(a[:, H : 2 * H]), _logistic(a[:, 2 * H : 3 * H])
        g = np.tanh(a[:, 3 * H :])
        steps.append((h, c, i, f, o, g))
        c = f * c + i * g
        h = o * np.tanh(c)
        hs[:, t] = h
    dx = np.empty_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh, dc = np.zeros_like(h0), np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        hprev, cprev, i, f, o, g = steps[t]
        tc = np.tanh(f * cprev + i * g)
        dht = dhs[:, t] + dh
        dc = dc + dht * o * (1 - tc * tc)
        da = np.hstack(
            [
                dc * g * i * (1 - i),
                dc * cprev * f * (1 - f),
                dht * tc * o * (1 - o),
                dc * i * (1 - g * g),
            ]
        )
        dc = dc * f
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh += hprev.T @ da
        db += da.sum(axis=0)
        dh = da @ Wh.T
    return hs, dx, dh, dWx, dWh, db


def lstm_forms(size):
    forms = {
        "reference: x @ Wx before the loop, tanh and sigmoid through exp, tanh(c) kept": lstm_hand,
        "np.tanh, sigmoid as 0.5 tanh(a/2) + 0.5 (bpc's forms)": _lstm(_np_tanh, _half_tanh),
        "np.tanh, sigmoid through exp": _lstm(tanh=_np_tanh),
        "local derivatives of all steps before the loop": _lstm(local_first=True),
        "tanh(c) again in the backward": _lstm(keep_tc=False),
        "dWh step by step": _lstm(dWh_per_step=True),
        "CS231n's step functions in a loop": _lstm_cs231n,
    }
    return f"LSTM, N, T, D, H = {', '.join(map(str, size))}", forms


# ---------------------------------------------------------------------------------------------


def compare(title, forms, args, repeats: int, clock=time.perf_counter) -> str:
    fns = list(forms.values())
    reference = fns[0](*args)
    for name, fn in forms.items():
        for got, want in zip(fn(*args), reference, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    number = max(1, int(0.05 / max(_time(fns[0], args, 1, clock), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in forms}
    names = list(forms)
    for r in range(repeats):
        # in a new order each repeat: a form can pay for the memory the one before it left (after
        # CS231n's LSTM step functions, the kernel's time alone adds half to the next form's)
        random.Random(r).shuffle(names)
        for name in names:
            times[name].append(_time(forms[name], args, number, clock))
    first = times[next(iter(forms))]
    lines = [f"| {title} | median | / reference |", "|---|---|---|"]
    for name, ts in times.items():
        ratio = statistics.median(t / r for t, r in zip(ts, first))
        lines.append(f"| {name} | {statistics.median(ts) * 1e3:.2f} ms | {ratio:.2f} |")
    return "\n".join(lines)


def _time(fn, args, number: int, clock=time.perf_counter) -> float:
    start = clock()
    for _ in range(number):
        fn(*args)
    return (clock() - start) / number


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repeats")
    parser.add_argument("--only", choices=("rnn", "lstm"), help="one model's forms")
    parser.add_argument("--small", action="store_true", help="the smaller benchmark size alone")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process's CPU time, not the wall clock: steadier where other work shares "
        "the cores, if BLAS runs one thread (OPENBLAS_NUM_THREADS=1; its idle threads spin)",
    )
    args = parser.parse_args(argv)
    sizes = [(3, 4, 5, 6)] if args.smoke else [(32, 50, 64, 128), (128, 100, 128, 256)]
    if args.small:
        sizes = sizes[:1]
    for model, forms_of, case in zip(("rnn", "lstm"), (rnn_forms, lstm_forms), CASES):
        if args.only and args.only != model:
            continue
        for size in sizes:
            title, forms = forms_of(size)
            inputs = case.inputs(size)  # the benchmark's
            repeats = 2 if args.smoke else args.repeats
            clock = time.process_time if args.cpu_time else time.perf_counter
            print(compare(title, forms, inputs, repeats, clock), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
