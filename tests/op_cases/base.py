"""Cases for the first operations: arithmetic, elementwise functions, matmul, transpose, reshape,
reductions, and the IR-only operations that autodiff and the optimizer make."""

from __future__ import annotations

from bpc.ir import make
from tests.op_cases import IR, C, Case, _dims, _sum

CASES: dict[str, list[Case]] = {
    "add": [
        C("x: [n, m], y: [n, m]", "out = x + y"),
        C("x: [n, m], b: [m]", "out = sum(tanh(x + b))"),
        C("x: [n, m], s: []", "out = (x + s + 1.5) * x"),
        C("x: [1, m], y: [n, 1]", "out = x + y"),
        C("x: [B, 1, m], y: [n, 1]", "out = sum((x + y) * (x + y))"),
        C("x: [n, m]", "out = x + x + n"),
        # Was a bug: g_grad built db from np.broadcast_to(1.0, (n, m)), float64 for float32 x.
        C("x: [n, m], b: [m]", "out = sum(x + b)"),
    ],
    "sub": [
        C("x: [n, m], y: [n, m]", "out = x - y"),
        C("x: [n, m], b: [n, 1]", "out = sum(exp(x - b))"),
        C("x: [m], y: [n, m]", "out = x - y"),
        C("x: [n, m], s: []", "out = 1 - (s - x) * x"),
        C("x: [B, n, 1], y: [1, m]", "out = x - y - x"),
    ],
    "mul": [
        C("x: [n, m], y: [n, m]", "out = x * y"),
        C("x: [n, m], s: []", "out = sum(x * s * x)"),
        C("x: [1, m], y: [n, 1]", "out = x * y"),
        C("x: [m], y: [B, n, m]", "out = sum(x * y * 3)"),
        C("x: [n, m]", "out = x * x * x"),
        # Was a bug: the dimension n, a value in the backward pass, was not in the cache.
        C("x: [n, m]", "out = sum(x * n * x)"),
    ],
    "div": [
        C("x: [n, m], y: [n, m]", "out = x / y", positive="y"),
        C("x: [n, m], s: []", "out = sum(x / s)", positive="s"),
        C("x: [n, m]", "out = 1 / x", positive="x"),
        C("x: [n, m], y: [m]", "out = sum(y / (x * x + 1))"),
        C("x: [n, m], y: [n, 1]", "out = x / sqrt(m) / y", positive="y"),
        C("x: [B, n, m], y: [m]", "out = y / x / x", away="x"),
    ],
    "pow": [
        C("x: [n, m]", "out = x ** 2"),
        C("x: [n, m]", "out = sum(x ** 0.5)", positive="x"),
        C("x: [n, m]", "out = x ** -1", positive="x"),
        C("x: [n, m], b: [m]", "out = sum((x + b) ** 3)"),
        C("a: [n, m], b: [m]", "out = exp(a) ** b"),
        C("x: [n, m], s: []", "out = sum(x ** s)", positive="x"),
        C("x: [n, m]", "out = 2 ** x"),
        C("x: [n, m], s: []", "out = x ** 2 ** s", positive="x"),
        C("x: [n], y: [n]", "out = -x ** 2 + y"),
        C("a: [1, m], b: [n, 1]", "out = a ** b", positive="a"),
        C("s: [], x: [n]", "out = s ** x", positive="s"),
    ],
    "neg": [
        C("x: [n, m]", "out = -x"),
        C("x: [n, m], b: [m]", "out = sum(-(x * b))"),
        C("x: [n, m]", "out = - -x * x"),
        C("x: [n, m], s: []", "out = -s - x"),
        C("x: [n, m]", "out = x * -2 - -1 + -x ** -2", away="x"),
    ],
    "exp": [
        C("x: [n, m]", "out = exp(x)"),
        C("x: [n, m], b: [m]", "out = sum(exp(x * b))"),
        C("x: [B, n, m]", "out = exp(-x) * x"),
        C("s: []", "out = exp(s * s)"),
    ],
    "log": [
        C("x: [n, m]", "out = log(x)", positive="x"),
        C("x: [n, m]", "out = sum(log(exp(x) + 1))"),
        C("x: [n, m], s: []", "out = log(x * s)", positive="x s"),
        C("x: [m], y: [n, m]", "out = sum(log(x * x + y * y + 1))"),
    ],
    "sqrt": [
        C("x: [n, m]", "out = sqrt(x)", positive="x"),
        C("x: [n, m], b: [m]", "out = sum(sqrt(x * x + b * b + 1))"),
        C("x: [B, n, m]", "out = sqrt(exp(x)) * x"),
        C("q: [n, k], kk: [m, k]", "out = q @ kk.T / sqrt(k)"),
    ],
    "tanh": [
        C("x: [n, m]", "out = tanh(x)"),
        C("x: [n, k], w: [k, m]", "out = sum(tanh(x @ w))"),
        C("x: [n, m], b: [n, 1]", "out = tanh(x + b) * x"),
    ],
    "sigmoid": [
        C("x: [n, m]", "out = sigmoid(x)"),
        C("x: [n, m], y: [n, m]", "out = sigmoid(x) * y"),
        C("x: [B, n, m]", "s = sigmoid(x)", "out = sum(s * s)"),
        # An inlined operand and an inlined sigmoid need parentheses (a bug, fixed).
        C("x: [n, m], b: [m]", "out = sum(sigmoid(x + b))"),
        C("x: [n, m], y: [m]", "out = sum(sigmoid(x) * 2 + y)", wrt="y"),
        C("x: [n, m], b: [m]", "out = sigmoid(-x * b) * 3"),
        # sigmoid_of_minus: a negation, a product by a number, a polynomial, a number
        C("x: [n, m]", "out = sum(sigmoid(-x))"),
        C("x: [n, m]", "out = x * sigmoid(1.702 * x)"),
        C("x: [n, m]", "out = x * sigmoid(x * (1.6 + 0.07 * x * x))"),
        C("x: [n, m], s: []", "out = x * sigmoid(-2 * s)"),
    ],
    "relu": [
        C("x: [n, m]", "out = relu(x)", away="x"),
        C("x: [n, m], w: [m]", "out = sum(relu(x) * w)", away="x"),
        C("x: [n, m], s: []", "out = relu(x * s) + relu(-x)", away="x", positive="s"),
        C("x: [B, n, m]", "r = relu(x)", "out = sum(r * r)", away="x"),
    ],
    "matmul": [
        C("a: [n, k], b: [k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [k, m]", "out = a @ b"),
        C("a: [B, 1, n, k], b: [C, k, m]", "out = a @ b"),
        C("a: [k], b: [B, k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [k]", "out = a @ b"),
        C("a: [k], b: [k]", "out = a @ b"),
        C("a: [n, k], b: [k]", "out = a @ b"),
        C("a: [k], b: [k, m]", "out = a @ b"),
        C("a: [B, n, k], b: [B, k, m]", "out = sum((a @ b) * (a @ b))"),
        C("a: [n, k], b: [B, k, m]", "out = a @ b"),
        C("a: [k], b: [B, C, k, m]", "out = a @ b"),
        C("a: [B, C, n, k], b: [k]", "out = a @ b"),
        C("x: [n, k]", "out = x @ x.T"),
        C("W: [n, m], x: [m]", "q = W @ x", "out = sum(q * q)"),
        C("a: [B, n, k], b: [1, k, m]", "out = a @ b"),
        C("a: [1, n, k], b: [B, k, m], c: [m]", "out = sum((a @ b) * c)"),
    ],
    "transpose": [
        C("x: [n, m]", "out = transpose(x)"),
        C("x: [B, n, m]", "out = transpose(x, (1, 0, 2))"),
        C("x: [B, n, m]", "out = transpose(x, (2, 0, 1))"),
        C("x: [B, n, m]", "out = x.T"),
        C("x: [n, m], y: [m, n]", "out = sum(x.T * y)"),
        C("x: [B, n, m]", "out = transpose(x, (-1, 0, -2))"),
        C("x: [B, C, n, m]", "out = transpose(x, (3, 1, 0, 2)) * 2"),
        C("x: [n, m], y: [m]", "out = transpose(x + y).T"),
        C("x: [B, n, m], y: [B, m, n]", "out = sum(transpose(x, (0, 2, 1)) * exp(y))"),
    ],
    "reshape": [
        C("x: [N, C, H]", "out = reshape(x, (N, C*H))"),
        C("x: [n, m]", "out = reshape(x, (m, n))"),
        C("x: [n, m]", "v = reshape(x, (n*m,))", "out = sum(v * v)"),
        C("x: [12]", "out = reshape(x, (3, 4))"),
        C("x: [n, m], b: [m]", "out = reshape(x + b, (1, n, m, 1))"),
        C("x: [N, C, H]", "out = reshape(x, (C*H*N))"),
        C("s: []", "out = reshape(s, (1, 1)) * s"),
        C("x: [N, C, H], w: [H, k]", "out = reshape(reshape(x, (N*C, H)) @ w, (N, C*k))"),
    ],
    "sum": [
        C("x: [n, m]", "out = sum(x)"),
        C("x: [n, m]", "out = sum(x * x, axis=0)"),
        C("x: [B, n, m]", "out = sum(x, axis=-1)"),
        C("x: [B, n, m]", "out = sum(x * x, axis=(0, 2))"),
        C("x: [B, n, m]", "out = sum(x, axis=1, keepdims=true) * x"),
        C("x: [B, n, m]", "out = sum(exp(x), axis=(-1, 0), keepdims=true)"),
        C("x: [n, m]", "out = sum(x, keepdims=true)"),
        C("s: []", "out = sum(s * s)"),
        C("x: [B, n, m]", "out = sum(x, axis=()) * x"),
        C("x: [B, n, m]", "out = sum(x * x, axis=(0, 1, 2))"),
    ],
    "mean": [
        C("x: [n, m]", "out = mean(x * x)"),
        C("x: [n, m]", "out = mean(x, axis=0)"),
        C("x: [B, n, m]", "out = mean(x * x, axis=-2)"),
        C("x: [B, n, m]", "out = mean(x, axis=(0, 2))"),
        C("x: [B, n, m]", "out = x - mean(x, axis=-1, keepdims=true)"),
        C("x: [B, n, m]", "out = mean(exp(x), axis=(2, 0), keepdims=true)"),
        C("x: [n, m]", "out = mean(x, keepdims=true) * x"),
        C("x: [3, m], y: [m]", "out = mean(x * y, axis=0)"),
    ],
    # Comparisons are masks, not differentiated; as a factor they stop the gradient.
    "gt": [
        C("x: [n, m]", "out = x * (x > 0)", away="x"),
        C("x: [n, m], y: [m]", "out = sum(x * (x > y) * y)"),
    ],
    "le": [C("x: [n, m], s: []", "out = (x <= s) * x * s")],
    # Operations the language cannot spell, built as IR.
    "outer": [
        IR("outer(a, b)", [("a", ("n",)), ("b", ("m",))], lambda a, b: make("outer", a, b)),
        IR(
            "sum(outer(a, b) * W)",
            [("a", ("n",)), ("b", ("m",)), ("W", ("n", "m"))],
            lambda a, b, w: _sum(make("outer", a, b) * w),
        ),
        IR(
            "outer(a, exp(a))",
            [("a", ("n",))],
            lambda a: make("outer", a, make("exp", a)),
        ),
        IR(
            "sum(outer(a, b) ** 2)",
            [("a", ("k",)), ("b", ("n",))],
            lambda a, b: _sum(make("outer", a, b) ** 2),
        ),
    ],
    "broadcast_to": [
        IR(
            "broadcast_to(x [m], [n, m]) * y",
            [("x", ("m",)), ("y", ("n", "m"))],
            lambda x, y: make("broadcast_to", x, shape=_dims("n", "m")) * y,
        ),
        IR(
            "sum(broadcast_to(x [1, m], [n, m]) * y)",
            [("x", (1, "m")), ("y", ("n", "m"))],
            lambda x, y: _sum(make("broadcast_to", x, shape=_dims("n", "m")) * y),
        ),
        IR(
            "broadcast_to(s [], [n, m]) * s - y",
            [("s", ()), ("y", ("n", "m"))],
            lambda s, y: make("broadcast_to", s, shape=_dims("n", "m")) * s - y,
        ),
        IR(
            "exp(broadcast_to(x [n, 1], [B, n, m])) + y",
            [("x", ("n", 1)), ("y", ("B", "n", "m"))],
            lambda x, y: make("exp", make("broadcast_to", x, shape=_dims("B", "n", "m"))) + y,
        ),
    ],
    "full_like": [
        IR(
            "full_like(like [n, m], v [])",
            [("like", ("n", "m")), ("v", ())],
            lambda like, v: make("full_like", like, v),
        ),
        IR(
            "sum(full_like(like [n, m], v [m]) * like)",
            [("like", ("n", "m")), ("v", ("m",))],
            lambda like, v: _sum(make("full_like", like, v) * like),
        ),
        IR(
            "full_like(like [B, n, m], v [n, 1] * v)",
            [("like", ("B", "n", "m")), ("v", ("n", 1))],
            lambda like, v: make("full_like", like, v * v),
        ),
    ],
    "copy": [
        IR("copy(x)", [("x", ("n", "m"))], lambda x: make("copy", x)),
        IR(
            "sum(copy(x * y) * x)",
            [("x", ("n", "m")), ("y", ("m",))],
            lambda x, y: _sum(make("copy", x * y) * x),
        ),
        IR("copy(exp(s))", [("s", ())], lambda s: make("copy", make("exp", s))),
        # a copy of a parameter, worked on in place where the numpy target copies: never the
        # parameter's own array on a target that omits the copy
        IR(
            "copy(x) * w + w",
            [("x", ("n", "m")), ("w", ("n", "m"))],
            lambda x, w: make("copy", x) * w + w,
        ),
    ],
    # an output made of numbers alone, as a NumPy number of the graph's dtype
    "scalar": [
        IR("scalar(s * s)", [("s", ())], lambda s: make("scalar", s * s)),
        IR(
            "scalar(exp(s)) * x",
            [("s", ()), ("x", ("n",))],
            lambda s, x: make("scalar", make("exp", s)) * x,
        ),
        IR(
            "sum(x) * scalar(s / 2 + 1)",
            [("x", ("n", "m")), ("s", ())],
            lambda x, s: _sum(x) * make("scalar", s / 2 + 1),
        ),
    ],
}

EXEMPT = {
    "cast": "integers are never differentiated; the cast is inserted by the shape pass where an "
    "integer array meets float arithmetic, and tests/test_language.py checks its values and that "
    "float32 stays float32 through it",
    "param": "a leaf (a graph parameter): no adjoint; every case has parameters",
    "dout": "a leaf (an upstream gradient), made by autodiff; every non-scalar case feeds one",
    "const": "a leaf (a literal): no adjoint; used throughout, e.g. x ** 2, 1 - x, 2 ** x",
    "dim": "a leaf (a dimension size): no adjoint; used in x * n, x / sqrt(m), reshape sizes",
    "fast_tanh": "made only by `bpc compile --fast-math` (`fast_math`) in place of tanh; "
    "tests/test_fast_math.py checks its values in float64 and float32 and an RNN's gradients "
    "through it",
    "ties_halved": "made only by maximum's and minimum's adjoints, where the upstream gradient is "
    "an array of the result's shape; their cases run through it, tests/test_stability.py's ties "
    "check it on exact ties, and tests/test_jvp.py its JVP",
    "add_along": "made only by the optimizer (`scatter_added`) from take_along's adjoint added "
    "to another gradient; the take_along cases whose value another term reads too, "
    "tests/test_rewrites.py's compiled SVM loss and the examples' svm_loss run through it",
    "sigmoid_of_minus": "made only by the optimizer (`sigmoid_of_minus`) from a sigmoid whose "
    "argument takes a sign without a pass; the sigmoid cases with -x, 1.702 * x, a polynomial "
    "and a number run through it",
    **{
        op: "a comparison gives a boolean mask and is not differentiated; its forward values are "
        "checked in test_comparison_forward_values and masks appear in the gt/le cases"
        for op in ("lt", "le", "gt", "ge", "eq", "ne")
    },
}
