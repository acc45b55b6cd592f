"""Elementwise activations over a `[N, D]` array, value and gradient given the upstream gradient
`dout`: GELU's tanh approximation, GELU's sigmoid approximation and softplus.

The references use the fastest stable NumPy kernels we measured (bench/formulations/kernels.py
times them): a sigmoid is `1 / (1 + exp(-z))`, which is 2 to 3 times faster than
`0.5 * tanh(0.5 * z) + 0.5` in float64 and exact in the limits (`exp` overflows to inf, NumPy
warns, and `1 / (1 + inf)` is 0); `0.5 * (1 + tanh(u))` is `sigmoid(2 u)`. Every step writes in
place into one of at most three `[N, D]` arrays: the value, the gradient, one scratch array.
"""

from __future__ import annotations

import numpy as np

from .suite import Formulation, Model

C = float(np.sqrt(2 / np.pi))
K = 0.044715


def gelu_tanh(x, dout):
    """out = 0.5 x (1 + tanh(u)) = x p with u = C (x + K x^3) and p = sigmoid(2 u);
    dx = dout (p + 2 x u' p (1 - p)), u' = C (1 + 3 K x^2)."""
    a = x * x
    p = a * (-2 * C * K)
    p -= 2 * C
    p *= x  # -2u
    np.exp(p, out=p)
    p += 1
    np.divide(1, p, out=p)
    out = x * p
    a *= 6 * C * K
    a += 2 * C
    a *= x  # 2 x u'
    a *= p
    q = np.subtract(1, p, out=p)  # 1 - p, in p's array
    a *= q
    a -= q
    a += 1  # 2 x u' p (1 - p) + p
    a *= dout
    return out, a


def x_sigmoid(a):
    """The reference of x * sigmoid(a x): out = x p, p = sigmoid(a x); dx = dout (p + a out (1 - p))."""

    def reference(x, dout):
        p = x * -a
        np.exp(p, out=p)
        p += 1
        np.divide(1, p, out=p)
        out = x * p
        dx = p * -a
        dx += a
        dx *= out
        dx += p
        dx *= dout
        return out, dx

    reference.__name__ = reference.__qualname__ = f"x_sigmoid_{a}"
    return reference


def _log1p_f32_vectorized() -> bool:
    """Whether NumPy's float32 log1p runs a vectorized kernel on this CPU (its AVX-512 one), as
    `numpy.lib.introspect` tells."""
    try:
        from numpy.lib.introspect import opt_func_info

        target = opt_func_info("^log1p$")["log1p"]["ff"]["current"]
    except (ImportError, AttributeError, KeyError, TypeError):
        return False
    return not target.startswith("baseline")


LOG1P_F32_VECTORIZED = _log1p_f32_vectorized()


def softplus(x, dout):
    """out = max(x, 0) + log1p(exp(-|x|)); dx = dout sigmoid(x) = dout exp(x - out).
    In float32 on a CPU where NumPy's float32 log1p is a scalar loop (no AVX-512), 2 to 4 times
    slower than its log, log1p(e) is log(u) - ((u - 1) - e) / u for u = 1 + e rounded
    (Goldberg's correction, within an ulp or two). Elsewhere np.log1p is the faster."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    if x.dtype == np.float32 and not LOG1P_F32_VECTORIZED:
        u = e + 1
        out = u - 1
        out -= e
        out /= u  # the rounding error of u, over u
        np.log(u, out=u)
        u -= out  # log1p(e)
        np.maximum(x, 0, out=out)
        out += u
    else:
        out = np.maximum(x, 0)
        out += np.log1p(e, out=e)
    dx = np.subtract(x, out, out=e)
    np.exp(dx, out=dx)
    dx *= dout
    return out, dx


def _inputs(size, rng):
    N, D = size
    return rng.standard_normal((N, D)) * 3, rng.standard_normal((N, D))


def _gelu_inputs(size, rng):
    """Pre-activations of unit scale: far enough from exp's overflow in float32 (x < -9)."""
    N, D = size
    return rng.standard_normal((N, D)), rng.standard_normal((N, D))


SIZES = {"sizes": [(64, 128), (1000, 1000)], "smoke_sizes": [(3, 4)]}
SIG = "(x: [N, D]) -> out"


def _model(
    name: str, graph: str, reference, formulations: list[tuple[str, str]], inputs=_inputs
) -> Model:
    return Model(
        name=name,
        graph=graph,
        reference=reference,
        inputs=inputs,
        dims=lambda size: dict(zip("ND", size)),
        wrt=(0,),
        formulations=[
            Formulation(label, f"graph {graph}{SIG} {{\n{body.strip(chr(10))}\n}}\n")
            for label, body in formulations
        ],
        **SIZES,
    )


GELU_TANH = _model(
    "GELU, tanh form",
    "gelu",
    gelu_tanh,
    [
        ('gelu(x, approximate="tanh")', '    out = gelu(x, approximate="tanh")'),
        (
            "tanh, x**3",
            "    out = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))",
        ),
        (
            "tanh, x*x*x",
            "    out = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x * x * x)))",
        ),
        (
            "inner named, constant written out",
            """
    inner = 0.7978845608028654 * (x + 0.044715 * x ** 3)
    out = 0.5 * x * (1 + tanh(inner))
""",
        ),
        (
            "x * sigmoid(2 * inner)",
            "    out = x * sigmoid(2 * sqrt(2 / pi) * (x + 0.044715 * x ** 3))",
        ),
        (
            "Megatron's, 0.79788456 * x * (1 + 0.044715 * x * x)",
            "    out = x * 0.5 * (1.0 + tanh(0.79788456 * x * (1.0 + 0.044715 * x * x)))",
        ),
        (
            "Hugging Face's FastGELU, 0.7978845608",
            "    out = 0.5 * x * (1.0 + tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))",
        ),
    ],
    _gelu_inputs,
)

GELU_SIGMOID = _model(
    "GELU, sigmoid form",
    "gelu",
    x_sigmoid(1.702),
    [
        ("x * sigmoid(1.702 * x)", "    out = x * sigmoid(1.702 * x)"),
        ("x / (1 + exp(-1.702 * x))", "    out = x / (1 + exp(-1.702 * x))"),
        (
            "x * exp(1.702 * x) / (1 + exp(1.702 * x))",
            "    out = x * exp(1.702 * x) / (1 + exp(1.702 * x))",
        ),
        ("x * (1 + tanh(0.851 * x)) / 2", "    out = x * (1 + tanh(0.851 * x)) / 2"),
        (
            "x * (1 - 1 / (1 + exp(1.702 * x)))",
            "    out = x * (1 - 1 / (1 + exp(1.702 * x)))",
        ),
    ],
    _gelu_inputs,
)

SOFTPLUS = _model(
    "softplus",
    "softplus",
    softplus,
    [
        ("softplus(x)", "    out = softplus(x)"),
        ("log(1 + exp(x))", "    out = log(1 + exp(x))"),
        ("log1p(exp(x))", "    out = log1p(exp(x))"),
        ("maximum(x, 0) + log1p(exp(-abs(x)))", "    out = maximum(x, 0) + log1p(exp(-abs(x)))"),
        (
            "where(x > 0, x + log1p(exp(-x)), log1p(exp(x)))",
            "    out = where(x > 0, x + log1p(exp(-x)), log1p(exp(x)))",
        ),
        (
            "PyTorch's cut at 20, where(x > 20, x, log1p(exp(x)))",
            "    out = where(x > 20, x, log1p(exp(x)))",
        ),
    ],
)
