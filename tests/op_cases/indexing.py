"""Cases for indexing and slicing, take, take_along, concat, stack, and the scatters that are
their adjoints (pad, also a built-in; scatter_add and scatter_along, built as IR). Gathers draw
their indices from small ranges, so repeated indices are the rule: `take` of 12 indices below 3
repeats some."""

from __future__ import annotations

from dataclasses import replace

from bpc.diagnostics import Loc
from bpc.dims import Dim
from bpc.ir import Graph, Node, Param, Type, make, schedule, untyped
from tests.op_cases import IR, C, Case, _sum

CASES: dict[str, list[Case]] = {
    "index": [
        C("x: [n, m]", "out = x[1]"),
        C("x: [n, m]", "out = x[:, 0]"),
        C("x: [B, n, m]", "out = x[B - 1]"),
        C("x: [n, m]", "out = x[-1, 1:] * x[0, :m - 1]"),
        # The gates of an LSTM: four slices of one array, their gradients added up.
        C(
            "a4: [N, 4, H]",
            "a = reshape(a4, (N, 4*H))",
            "i = sigmoid(a[:, :H])",
            "f = sigmoid(a[:, H:2*H])",
            "o = sigmoid(a[:, 2*H:3*H])",
            "g = tanh(a[:, 3*H:])",
            "out = o * tanh(f * i + g)",
        ),
        C("x: [T, n]", "out = x[1:] - x[:T - 1]", sizes={"T": 4}),
        C("x: [n, 4], b: [4]", "out = (x + b)[1:, :2] * b[-2:]"),
        C("x: [n, m]", "out = x[1, -2] * x"),
        C("x: [B, n, m]", "out = sum(x[:, 1] ** 2)"),
        # Steps: positive, negative, strided with a remainder, on constant and symbolic sizes.
        C("x: [5, m]", "out = x[::2]"),
        C("x: [n, 7]", "out = x[:, 5:0:-2] * x[:, 1:4]"),
        C("x: [n, m]", "out = x[::-1, ::-1] + x"),
        C("x: [5, m]", "out = x[1:4:2, -1]"),
        C("x: [n, 3]", "y = reshape(x, (3*n,))", "out = y[::3] * y[2::3]"),
        C("x: [n, 5]", "out = x[:, 3::-2]"),
        C("x: [n, m]", "out = x[:, m - 1:0:-1] * x[:, 1:]"),
    ],
    "take": [
        C("W: [n, m], idx: int[B, C]", "out = take(W, idx)", ints="idx:n"),
        C("W: [n, m], idx: int[k]", "e = take(W, idx)", "out = sum(e * e)", ints="idx:n"),
        C("x: [B, n, m], idx: int[k]", "out = take(x, idx, axis=1)", ints="idx:n"),
        C("x: [B, n, m], idx: int[C, k]", "out = take(x, idx, axis=1)", ints="idx:n"),
        C("x: [B, n, m], idx: int[C]", "out = take(x, idx, axis=-1)", ints="idx:m"),
        C("v: [n], idx: int[B, k]", "out = take(v, idx) * 2", ints="idx:n"),
        C("W: [n, m], i: int[]", "out = take(W, i)", ints="i:n"),
        C("W: [n, m], idx: int[k], b: [m]", "out = take(W + b, idx) * b", ints="idx:n"),
        C("W: [n, m], idx: int[k]", "out = take(W, idx) + take(W, 2 - idx)", ints="idx:n"),
        C("v: [n], i: int[]", "out = take(v, i) * v", ints="i:n"),
    ],
    "take_along": [
        C("x: [N, C], y: int[N]", "out = take_along(x, y)", ints="y:C"),
        C("x: [B, n, m], y: int[B, n]", "out = sum(take_along(x, y) ** 2)", ints="y:m"),
        C("x: [m], i: int[]", "out = take_along(x, i) * x", ints="i:m"),
        C("x: [N, C], y: int[N], b: [C]", "out = take_along(exp(x + b), y)", ints="y:C"),
        C("x: [N, C], y: int[N]", "out = mean(take_along(x, y))", ints="y:C"),
    ],
    "concat": [
        C("a: [n, m], b: [k, m]", "out = concat(a, b)"),
        C("a: [n, m], b: [n, k]", "out = concat(a, b * 2, a, axis=1)"),
        C("a: [B, n, m], b: [B, n, 1]", "out = sum(concat(a, exp(b), axis=-1) ** 2)"),
        C("a: [n]", "out = concat(a)"),
        C("a: [n, m], s: []", "out = concat(a * s, a, axis=0)"),
        C("a: [n, m], b: [m]", "out = concat(a + b, a - b)[n:, :]"),
        C("a: [n, m], b: [n, k]", "out = concat((a, b), axis=1)"),  # NumPy's tuple
    ],
    "stack": [
        C("a: [n, m], b: [n, m]", "out = stack((a, b))"),
        C("a: [n, m], b: [n, m]", "out = stack((a, b * 2, a), axis=1)"),
        C("a: [n, m], b: [m]", "out = stack(a + b, a - b, axis=-1)"),
        C("s: [], t: []", "out = stack((s, t * s, 2.0))"),
        C("a: [n], b: [n]", "out = sum(stack((exp(a), b), axis=0) ** 2)"),
        C("a: [n, m]", "out = stack((a,), axis=2)"),
    ],
}


# ---------------------------------------------------------------------------------------------
# The scatters, built as IR (with integer parameters, which tests.op_cases.IR does not make)


def _ir_with_ints(label: str, params: list[tuple[str, str, tuple]], body, ints: str) -> Case:
    """An IR case whose parameters are (name, "float" or "int", dims); `ints` as for `C`."""

    def build() -> Graph:
        loc = Loc(1, 1)
        decls, inputs = [], []
        for i, (name, dtype, dims) in enumerate(params):
            decls.append(Param(name, dtype, dims, loc))
            node = untyped("param", hint=name, name=name, index=i)
            shape = tuple(Dim.of(d) for d in dims)
            inputs.append(replace(node, type=Type(dtype, shape), loc=loc))
        out = replace(body(*inputs), hint="out")
        return Graph(
            name="f",
            loc=loc,
            params=tuple(decls),
            inputs=tuple(inputs),
            output_names=("out",),
            outputs=(out,),
            wrt=tuple(name for name, dtype, _ in params if dtype == "float"),
            nodes=schedule(inputs, (out, *inputs)),
            source="",
        )

    bounds = tuple(
        (n, int(b) if b.isdigit() else b) for n, b in (i.split(":") for i in ints.split())
    )
    return Case(build=build, label=label, ints=bounds)


def _scatter_add(like: Node, idx: Node, g: Node) -> Node:
    return make("scatter_add", like, idx, g)


CASES["scatter_add"] = [
    _ir_with_ints(
        "scatter_add(like [n, m], idx [B, C], g [B, C, m])",
        [
            ("like", "float", ("n", "m")),
            ("idx", "int", ("B", "C")),
            ("g", "float", ("B", "C", "m")),
        ],
        _scatter_add,
        "idx:n",
    ),
    _ir_with_ints(
        "sum(scatter_add(like [n], idx [k], g [k]) ** 2)",
        [("like", "float", ("n",)), ("idx", "int", ("k",)), ("g", "float", ("k",))],
        lambda like, idx, g: _sum(_scatter_add(like, idx, g) ** 2),
        "idx:n",
    ),
    _ir_with_ints(
        "scatter_add(like [n, B, m], idx [], exp(g [B, m])) * like",
        [("like", "float", ("n", "B", "m")), ("idx", "int", ()), ("g", "float", ("B", "m"))],
        lambda like, idx, g: _scatter_add(like, idx, make("exp", g)) * like,
        "idx:n",
    ),
    _ir_with_ints(
        "scatter_add(like [n], idx [], g [])",
        [("like", "float", ("n",)), ("idx", "int", ()), ("g", "float", ())],
        _scatter_add,
        "idx:n",
    ),
]

CASES["scatter_along"] = [
    _ir_with_ints(
        "scatter_along(idx [n], g [n], size=4)",
        [("idx", "int", ("n",)), ("g", "float", ("n",))],
        lambda idx, g: make("scatter_along", idx, g, size=4),
        "idx:4",
    ),
    _ir_with_ints(
        "sum(scatter_along(idx [B, n], g [B, n], size=m) * w [m])",
        [("idx", "int", ("B", "n")), ("g", "float", ("B", "n")), ("w", "float", ("m",))],
        lambda idx, g, w: _sum(make("scatter_along", idx, g, size=w.shape[0]) * w),
        "idx:m",
    ),
    _ir_with_ints(
        "scatter_along(idx [], g [] * g, size=5)",
        [("idx", "int", ()), ("g", "float", ())],
        lambda idx, g: make("scatter_along", idx, g * g, size=5),
        "idx:5",
    ),
]


def _pad_to(y: Node, before: str) -> Node:
    return make("pad", y, widths=((Dim.of(before), 0),))


CASES["pad"] = [
    C("x: [n, m]", "out = pad(x, ((0, 0), (1, 1)))"),
    C("x: [n, m]", "out = pad(exp(x), ((1, n), (m, 0))) * 2"),
    C("x: [n]", "out = sum(pad(x, ((2, 3),)) ** 2)"),
    C("x: [T, m]", "out = x - pad(x, ((1, 0), (0, 0)))[:T]", sizes={"T": 4}),  # x[t] - x[t - 1]
    IR(
        "pad(x [n, m], ((1, 2), (0, 3)))",
        [("x", ("n", "m"))],
        lambda x: make("pad", x, widths=((1, 2), (0, 3))),
    ),
    IR(
        "sum(pad(x [n], ((0, k),)) * pad(y [k], ((n, 0),)))",
        [("x", ("n",)), ("y", ("k",))],
        lambda x, y: _sum(make("pad", x, widths=((0, Dim.of("k")),)) * _pad_to(y, "n")),
    ),
    IR(
        "pad(exp(x [B, n, m]), ((0, 0), (n, 1), (0, 0)))",
        [("x", ("B", "n", "m"))],
        lambda x: make("pad", make("exp", x), widths=((0, 0), (Dim.of("n"), 1), (0, 0))),
    ),
    IR(
        "pad(x [n, m], ((0, 0), (0, 0))) * 2",
        [("x", ("n", "m"))],
        lambda x: make("pad", x, widths=((0, 0), (0, 0))) * 2,
    ),
]
