"""The recurrent benchmark models (issue 14): a tanh RNN and an LSTM run over a whole sequence.
Each case is a vector-Jacobian product: the value hs [N, T, H] and the gradients of sum(hs * dhs)
with respect to x, h0, Wx, Wh and b, for an upstream gradient dhs. The systems: hand-written
expert NumPy (CS231n's rnn_forward and rnn_backward, lstm_forward and lstm_backward: the
reference), bpc, HIPS autograd, PyTorch eager (the cell in a Python loop, as the bp source writes
it), PyTorch's fused torch.nn.RNN and torch.nn.LSTM ("torch fused") and JAX jit (lax.scan).

Until bpc compiles `for`, its columns show "-": `compiled` returns None where the compiler
refuses the source.

The hand-written code is the fastest NumPy we could write, chosen among the forms that
bench/rnn_forms.py times against each other (its docstring has the figures):

- the input projection x[:, t] @ Wx + b of every step is one [N*T, D] @ [D, G] product before the
  loop, computed into the array that becomes hs (the RNN) or the gates (the LSTM), so that a step
  adds h @ Wh (into a buffer) and applies its nonlinearities in place;
- tanh is 2 / (1 + exp(-2a)) - 1 and the logistic function 1 / (1 + exp(-a)): on a CPU without
  AVX-512, NumPy's float64 exp is vectorized and its tanh is not, and the first takes 0.6 of the
  time of np.tanh, within 4e-16 of it (exp overflows to inf for very negative a, giving exactly
  -1 and 0, so the overflow warning is silenced). On a CPU with AVX-512 np.tanh may win again;
- the backward stacks the gradients of every step's pre-activations, so that dx, dWx, dWh and db
  are single products (or a sum) after the loop; only dh @ Wh.T stays in it (with one BLAS thread
  on busy cores, adding dWh up step by step can be faster on the small RNN: see rnn_forms.py).
  For the RNN the local derivatives 1 - h**2 of all steps are taken before the loop, in two
  passes;
- the cache is the inputs and hs, and for the LSTM the gates (after their nonlinearities), the
  cell states and their tanh.
"""

from __future__ import annotations

import numpy as np
from cases import VJPCase, _has, _torch_leaves, _torch_saved_bytes

from bpc.diagnostics import CompileError

# ---------------------------------------------------------------------------------------------
# The hand-written layers


def tanh(a, out):
    """tanh(a) into `out` (which may be `a`), through exp: see the module's docstring."""
    np.multiply(a, -2.0, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(2.0, out, out=out)
    out -= 1.0
    return out


def sigmoid(a):
    """1 / (1 + exp(-a)), in place."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    return np.reciprocal(a, out=a)


def rnn_forward(x, h0, Wx, Wh, b):
    """hs [N, T, H] and the cache: the inputs and hs itself."""
    N, T, D = x.shape
    hs = (x.reshape(N * T, D) @ Wx).reshape(N, T, -1)  # every step's x[:, t] @ Wx at once
    hs += b
    h, hWh = h0, np.empty_like(h0)
    with np.errstate(over="ignore"):
        for t in range(T):
            ht = hs[:, t]
            ht += np.matmul(h, Wh, out=hWh)
            h = tanh(ht, out=ht)
    return hs, (x, h0, Wx, Wh, hs)


def rnn_backward(dhs, cache):
    """dx, dh0, dWx, dWh, db."""
    x, h0, Wx, Wh, hs = cache
    N, T, D = x.shape
    H = h0.shape[1]
    da = np.multiply(hs, hs)  # becomes the gradient of every step's pre-activation
    np.subtract(1.0, da, out=da)
    dh = np.zeros_like(h0)  # of h[:, t] through step t + 1
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t]
        dt = da[:, t]
        dt *= dh
        np.matmul(dt, Wh.T, out=dh)
    rows = da.reshape(N * T, H)
    hprev = np.empty_like(hs)  # h[:, t - 1] beside da[:, t]
    hprev[:, 0] = h0
    hprev[:, 1:] = hs[:, :-1]
    dWh = hprev.reshape(N * T, H).T @ rows
    dx = (rows @ Wx.T).reshape(N, T, D)
    dWx = x.reshape(N * T, D).T @ rows
    return dx, dh, dWx, dWh, rows.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b, keep=True):
    """hs [N, T, H] and the cache: the inputs, hs, the gates i, f, o, g [N, T, 4H] after their
    nonlinearities, the cell states c and tanh(c) [N, T, H]. Without `keep` (the forward alone),
    one cell state is updated in place and the cache is None."""
    N, T, D = x.shape
    H = h0.shape[1]
    gates = (x.reshape(N * T, D) @ Wx).reshape(N, T, 4 * H)  # every step's x[:, t] @ Wx
    gates += b
    hs = np.empty((N, T, H))
    h, c = h0, np.zeros((N, H))
    hWh, ig, tc = np.empty((N, 4 * H)), np.empty((N, H)), np.empty((N, H))
    if keep:
        cs, tcs = np.empty((N, T, H)), np.empty((N, T, H))
    with np.errstate(over="ignore"):
        for t in range(T):
            a = gates[:, t]
            a += np.matmul(h, Wh, out=hWh)
            sigmoid(a[:, : 3 * H])  # i, f, o side by side
            i, f, o, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            tanh(g, out=g)
            ct = cs[:, t] if keep else c
            np.multiply(f, c, out=ct)
            ct += np.multiply(i, g, out=ig)
            h = np.multiply(o, tanh(ct, out=tcs[:, t] if keep else tc), out=hs[:, t])
            c = ct
    return hs, ((x, h0, Wx, Wh, hs, gates, cs, tcs) if keep else None)


def lstm_backward(dhs, cache):
    """dx, dh0, dWx, dWh, db."""
    x, h0, Wx, Wh, hs, gates, cs, tcs = cache
    N, T, D = x.shape
    H = h0.shape[1]
    da = np.empty_like(gates)  # the gradient of every step's pre-activation
    dh, dc = np.zeros_like(h0), np.zeros_like(h0)  # of h[:, t] and c[:, t] through step t + 1
    tmp, ds = np.empty_like(h0), np.empty((N, 3 * H))
    for t in range(T - 1, -1, -1):
        gt, dt, tc = gates[:, t], da[:, t], tcs[:, t]
        i, f, o, g = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
        di, df, do, dg = dt[:, :H], dt[:, H : 2 * H], dt[:, 2 * H : 3 * H], dt[:, 3 * H :]
        dh += dhs[:, t]
        # h = o * tanh(c)
        np.multiply(dh, tc, out=do)
        np.multiply(tc, tc, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        # c = f * c_prev + i * g
        np.multiply(dc, g, out=di)
        if t:
            np.multiply(dc, cs[:, t - 1], out=df)
        else:
            df.fill(0.0)  # c_prev is zeros
        np.multiply(dc, i, out=dg)
        dc *= f
        # through the nonlinearities: s (1 - s) for i, f, o; 1 - g**2 for g
        s = gt[:, : 3 * H]
        np.subtract(1.0, s, out=ds)
        ds *= s
        dt[:, : 3 * H] *= ds
        np.multiply(g, g, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        dg *= tmp
        np.matmul(dt, Wh.T, out=dh)
    rows = da.reshape(N * T, 4 * H)
    hprev = np.empty_like(hs)  # h[:, t - 1] beside da[:, t]
    hprev[:, 0] = h0
    hprev[:, 1:] = hs[:, :-1]
    dWh = hprev.reshape(N * T, H).T @ rows
    dx = (rows @ Wx.T).reshape(N, T, D)
    dWx = x.reshape(N * T, D).T @ rows
    return dx, dh, dWx, dWh, rows.sum(axis=0)


def rnn_hand(x, h0, Wx, Wh, b, dhs):
    """hs, dx, dh0, dWx, dWh, db."""
    hs, cache = rnn_forward(x, h0, Wx, Wh, b)
    return (hs, *rnn_backward(dhs, cache))


def lstm_hand(x, h0, Wx, Wh, b, dhs):
    """hs, dx, dh0, dWx, dWh, db."""
    hs, cache = lstm_forward(x, h0, Wx, Wh, b)
    return (hs, *lstm_backward(dhs, cache))


# ---------------------------------------------------------------------------------------------
# The rivals: the bp source's loop in autograd.numpy and PyTorch, a lax.scan in JAX, and
# PyTorch's fused layers


def rnn_loop(xp, x, h0, Wx, Wh, b):
    """hs, a step at a time, in a NumPy-like module `xp` (autograd.numpy, torch)."""
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = xp.tanh(x[:, t] @ Wx + h @ Wh + b)
        hs.append(h)
    return xp.stack(hs, axis=1)


def lstm_loop(xp, logistic, x, h0, Wx, Wh, b):
    """hs, a step at a time, in a NumPy-like module `xp` with its logistic function."""
    H = h0.shape[1]
    h, c, hs = h0, 0.0 * h0, []  # 0 * h0: zeros in any of the modules
    for t in range(x.shape[1]):
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = logistic(a[:, :H]), logistic(a[:, H : 2 * H]), logistic(a[:, 2 * H : 3 * H])
        c = f * c + i * xp.tanh(a[:, 3 * H :])
        h = o * xp.tanh(c)
        hs.append(h)
    return xp.stack(hs, axis=1)


def _autograd_rnn(x, h0, Wx, Wh, b):
    import autograd.numpy as anp

    return rnn_loop(anp, x, h0, Wx, Wh, b)


def _autograd_lstm(x, h0, Wx, Wh, b):
    import autograd.numpy as anp

    return lstm_loop(anp, lambda a: 1 / (1 + anp.exp(-a)), x, h0, Wx, Wh, b)


def _torch_rnn(x, h0, Wx, Wh, b):
    import torch

    return rnn_loop(torch, x, h0, Wx, Wh, b)


def _torch_lstm(x, h0, Wx, Wh, b):
    import torch

    return lstm_loop(torch, torch.sigmoid, x, h0, Wx, Wh, b)


def _jax_rnn(x, h0, Wx, Wh, b):
    import jax.numpy as jnp
    from jax import lax

    def step(h, xt):
        h = jnp.tanh(xt @ Wx + h @ Wh + b)
        return h, h

    return jnp.swapaxes(lax.scan(step, h0, jnp.swapaxes(x, 0, 1))[1], 0, 1)


def _jax_lstm(x, h0, Wx, Wh, b):
    import jax
    import jax.numpy as jnp
    from jax import lax

    H = h0.shape[1]

    def step(hc, xt):
        h, c = hc
        a = xt @ Wx + h @ Wh + b
        i, f, o = (jax.nn.sigmoid(a[:, k * H : (k + 1) * H]) for k in range(3))
        c = f * c + i * jnp.tanh(a[:, 3 * H :])
        h = o * jnp.tanh(c)
        return (h, c), h

    hs = lax.scan(step, (h0, jnp.zeros_like(h0)), jnp.swapaxes(x, 0, 1))[1]
    return jnp.swapaxes(hs, 0, 1)


def autograd_vjp(f):
    """hs and its VJP through autograd's make_vjp: (x, h0, Wx, Wh, b, dhs) -> hs, dx, ..., db."""
    from autograd import make_vjp

    vjp = make_vjp(f, argnum=(0, 1, 2, 3, 4))

    def run(*args):
        pullback, hs = vjp(*args[:-1])
        return (hs, *pullback(args[-1]))

    return run


def jax_vjp(f):
    """hs and its VJP, jitted (float64); the inputs are made device arrays once, outside the
    timing, and each call waits for its results."""
    import jax

    jax.config.update("jax_enable_x64", True)

    @jax.jit
    def value_vjp(*args):
        hs, pullback = jax.vjp(f, *args[:-1])
        return (hs, *pullback(args[-1]))

    def run(*args):
        return jax.block_until_ready(value_vjp(*args))

    run.prepare = lambda args: tuple(jax.device_put(a) for a in args)
    return run


def torch_vjp(f):
    """hs and its VJP in PyTorch eager, `f` called on leaf tensors."""

    def run(*args):
        import torch

        leaves = _torch_leaves(*args[:-1])
        hs = f(*leaves)
        hs.backward(torch.from_numpy(args[-1]))
        return (hs.detach().numpy(), *(a.grad.numpy() for a in leaves))

    return run


def torch_fused(lstm: bool, D: int, H: int):
    """hs and its VJP through torch.nn.LSTM or torch.nn.RNN (tanh), batch first. `prepare` copies
    the weights in once, outside the timing, in PyTorch's layout: weight_ih [G, D] = Wx.T,
    weight_hh [G, H] = Wh.T, bias_ih = b and bias_hh = 0, with the LSTM's gate columns reordered
    from i, f, o, g to PyTorch's i, f, g, o; the gradients are mapped back the same way."""
    import torch
    from torch.func import functional_call

    if lstm:
        layer = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
        order = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # ours -> PyTorch's
    else:
        layer = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
        order = np.arange(H)
    back = np.argsort(order)  # PyTorch's -> ours

    def prepare(args):
        x, h0, Wx, Wh, b, dhs = args
        return tuple(
            torch.from_numpy(np.ascontiguousarray(a))
            for a in (x, h0[None], Wx[:, order].T, Wh[:, order].T, b[order], 0 * b, dhs)
        )

    def run(x, h0, w_ih, w_hh, b_ih, b_hh, dhs):
        x, h0, w_ih, w_hh, b_ih = (a.detach().requires_grad_() for a in (x, h0, w_ih, w_hh, b_ih))
        weights = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih}
        weights["bias_hh_l0"] = b_hh
        hs, _ = functional_call(layer, weights, (x, (h0, torch.zeros_like(h0)) if lstm else h0))
        hs.backward(dhs)
        return (
            hs.detach().numpy(),
            x.grad.numpy(),
            h0.grad[0].numpy(),
            w_ih.grad.numpy().T[:, back],
            w_hh.grad.numpy().T[:, back],
            b_ih.grad.numpy()[back],
        )

    run.prepare = prepare
    return run


# ---------------------------------------------------------------------------------------------
# The cases

RNN = """
graph rnn(x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] @ Wx + h @ Wh + b)
        hs[:, t] = h
    }
}
"""

LSTM = """
graph lstm(x: [N, T, D], h0: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    c = zeros((N, H))
    for t in range(T) {
        a = x[:, t] @ Wx + h @ Wh + b
        i = sigmoid(a[:, 0:H])
        f = sigmoid(a[:, H:2*H])
        o = sigmoid(a[:, 2*H:3*H])
        g = tanh(a[:, 3*H:4*H])
        c = f * c + i * g
        h = o * tanh(c)
        hs[:, t] = h
    }
}
"""


class Recurrent(VJPCase):
    """A recurrent layer over a sequence: sizes (N, T, D, H); the inputs x, h0, Wx, Wh, b and
    the upstream gradient dhs; every system returns hs, dx, dh0, dWx, dWh, db."""

    def __init__(self, name, graph, source, gates, hand, forward, rivals):
        super().__init__(name, [(32, 50, 64, 128), (128, 100, 128, 256)], [(3, 4, 5, 6)])
        self.graph, self.source, self.gates = graph, source, gates  # G = gates * H columns
        self.hand, self.hand_forward = hand, forward
        self.autograd_f, self.torch_forward, self.jax_f = rivals

    def dims(self, size):
        return dict(zip("NTDH", size))

    def describe(self, size) -> str:
        return "N, T, D, H = {}, {}, {}, {}".format(*size)

    def compiled(self, size):
        """The generated module, or None while bpc cannot compile the source."""
        try:
            return self.module(size)
        except CompileError:
            return None

    def vjp(self, size, fast_math: bool = False):
        """The generated forward then backward: hs, then the gradients."""
        module = self.module(size, fast_math=fast_math)
        forward = getattr(module, f"{self.graph}_forward")
        backward = getattr(module, f"{self.graph}_backward")

        def ours(x, h0, Wx, Wh, b, dhs):
            hs, cache = forward(x, h0, Wx, Wh, b)
            return (hs, *backward(dhs, cache))

        return ours

    def inputs(self, size):
        N, T, D, H = size
        G = self.gates * H
        rng = np.random.default_rng(8)
        return (
            rng.standard_normal((N, T, D)),
            0.5 * rng.standard_normal((N, H)),
            rng.standard_normal((D, G)) / np.sqrt(D),
            rng.standard_normal((H, G)) / np.sqrt(H),
            0.1 * rng.standard_normal(G),
            rng.standard_normal((N, T, H)),
        )

    def rival(self, name, size):
        """One of the rivals: autograd, torch, torch fused or jax."""
        if name == "autograd":
            return autograd_vjp(self.autograd_f)
        if name == "torch":
            return torch_vjp(self.torch_forward)
        if name == "torch fused":
            return torch_fused(self.gates == 4, *size[2:])
        return jax_vjp(self.jax_f)

    def systems(self, size):
        out = {"hand": self.hand}
        if self.compiled(size) is not None:
            out["bpc"] = self.vjp(size)
            out["bpc --fast-math"] = self.vjp(size, fast_math=True)  # (tanh as the hand's)
        for name in ("autograd", "torch", "torch fused", "jax"):
            if _has(name.split()[0]):
                out[name] = self.rival(name, size)
        return out

    def forwards(self, size):
        def hand(x, h0, Wx, Wh, b):
            return self.hand_forward(x, h0, Wx, Wh, b)[0]

        if self.compiled(size) is None:
            return {"hand": hand}
        return self.forwards_beside(size, hand)

    def cache_bytes(self, size, args):
        if self.compiled(size) is not None:
            return super().cache_bytes(size, args)
        if _has("torch"):
            inputs = _torch_leaves(*self.forward_args(args))
            return {"torch": _torch_saved_bytes(self.torch_forward, *inputs)}
        return {}


def _lstm_value(x, h0, Wx, Wh, b):
    return lstm_forward(x, h0, Wx, Wh, b, keep=False)


CASES = [
    Recurrent(
        "tanh RNN, VJP",
        "rnn",
        RNN,
        1,
        rnn_hand,
        rnn_forward,
        (_autograd_rnn, _torch_rnn, _jax_rnn),
    ),
    Recurrent(
        "LSTM RNN, VJP",
        "lstm",
        LSTM,
        4,
        lstm_hand,
        _lstm_value,
        (_autograd_lstm, _torch_lstm, _jax_lstm),
    ),
]
