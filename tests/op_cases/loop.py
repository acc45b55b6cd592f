"""Cases for loops (`for t in range(...)`), the positions they read (`select`) and the
gradients of those (`put`): recurrent networks over whole sequences, as CS231n writes them,
and the forms a loop body may take: a carried number, arrays carried and swapped, slot
writes backwards in time, nested loops, fn calls with several outputs, the loop variable
as a value."""

from __future__ import annotations

from tests.op_cases import C, Case

RNN = "x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]"
LSTM = "x: [N, T, D], h0: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H]"


def rnn(T: int) -> Case:
    return C(
        RNN,
        "out = zeros((N, T, H))",
        "h = h0",
        "for t in range(T) {",
        "    h = tanh(x[:, t] @ Wx + h @ Wh + b)",
        "    out[:, t] = h",
        "}",
        sizes={"T": T, "D": 3},
    )


def lstm(T: int) -> Case:
    return C(
        LSTM,
        "out = zeros((N, T, H))",
        "h = h0",
        "c = zeros((N, H))",
        "for t in range(T) {",
        "    a = x[:, t] @ Wx + h @ Wh + b",
        "    i = sigmoid(a[:, 0:H])",
        "    f = sigmoid(a[:, H:2*H])",
        "    o = sigmoid(a[:, 2*H:3*H])",
        "    g = tanh(a[:, 3*H:4*H])",
        "    c = f * c + i * g",
        "    h = o * tanh(c)",
        "    out[:, t] = h",
        "}",
        sizes={"T": T, "D": 3, "H": 2},
    )


CASES: dict[str, list[Case]] = {
    "loop": [
        rnn(1),
        rnn(3),
        lstm(1),
        lstm(3),
        # a GRU
        C(
            "x: [N, T, D], h0: [N, H], Wz: [D, H], Uz: [H, H], Wr: [D, H], Ur: [H, H], "
            "Wn: [D, H], Un: [H, H]",
            "out = zeros((N, T, H))",
            "h = h0",
            "for t in range(T) {",
            "    xt = x[:, t]",
            "    z = sigmoid(xt @ Wz + h @ Uz)",
            "    r = sigmoid(xt @ Wr + h @ Ur)",
            "    n = tanh(xt @ Wn + (r * h) @ Un)",
            "    h = (1 - z) * n + z * h",
            "    out[:, t] = h",
            "}",
            sizes={"T": 3, "D": 3},
        ),
        # bidirectional: the second loop reads and writes backwards in time
        C(
            "x: [N, T, D], Wf: [D, H], Uf: [H, H], Wb: [D, H], Ub: [H, H]",
            "hf = zeros((N, H))",
            "hb = zeros((N, H))",
            "fw = zeros((N, T, H))",
            "bw = zeros((N, T, H))",
            "for t in range(T) {",
            "    hf = tanh(x[:, t] @ Wf + hf @ Uf)",
            "    fw[:, t] = hf",
            "}",
            "for t in range(T) {",
            "    hb = tanh(x[:, T - 1 - t] @ Wb + hb @ Ub)",
            "    bw[:, T - 1 - t] = hb",
            "}",
            "out = concat((fw, bw), axis=2)",
            sizes={"T": 3, "D": 3},
        ),
        # a sequence loss built from a carried number, which starts as the integer 0
        C(
            "x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], Wy: [H, V], y: int[N, T]",
            "h = h0",
            "out = 0",
            "for t in range(T) {",
            "    h = tanh(x[:, t] @ Wx + h @ Wh)",
            "    out = out + sum(cross_entropy(h @ Wy, y[:, t])) / N",
            "}",
            ints="y:V",
            sizes={"T": 3, "D": 3, "V": 5},
        ),
        # nested loops: a carried value of the inner loop starts from the outer loop's
        C(
            "x: [N, T, D], W: [D, D]",
            "out = 0.0",
            "for i in range(T) {",
            "    v = x[:, i]",
            "    for j in range(2) {",
            "        v = tanh(v @ W)",
            "    }",
            "    out = out + sum(v * v)",
            "}",
            sizes={"T": 2, "D": 3},
        ),
        # nested loops writing one array's slots: carried through the outer loop
        C(
            "x: [A, B]",
            "out = zeros((A, B))",
            "for i in range(A) {",
            "    for j in range(B) {",
            "        out[i, j] = x[i, j] * x[i, j] + i",
            "    }",
            "}",
            sizes={"A": 2, "B": 3},
        ),
        # a start other than 0, and two positions read in one step
        C(
            "x: [N, T]",
            "out = zeros((N, T - 1))",
            "for t in range(1, T) {",
            "    out[:, t - 1] = x[:, t] * x[:, t - 1]",
            "}",
            sizes={"T": 4},
        ),
        # the array before the loop keeps the slots the loop does not write
        C(
            "x: [N, T]",
            "out = 2 * x",
            "for t in range(1, T) {",
            "    out[:, t] = sin(x[:, t])",
            "}",
            sizes={"T": 3},
        ),
        # carried arrays swapped, and the loop variable as a value
        C(
            "a0: [n], b0: [n], x: [T, n]",
            "a = a0",
            "b = b0",
            "for t in range(T) {",
            "    c = a",
            "    a = b * x[t]",
            "    b = c + t * x[t]",
            "}",
            "out = a * b",
            sizes={"T": 3},
        ),
    ],
    "select": [
        C(
            "x: [T, n]",
            "out = zeros((n,))",
            "for t in range(T) {",
            "    out = out + x[t] * x[t]",
            "}",
            sizes={"T": 3},
        ),
        C(
            "x: [N, T]",
            "out = 0.0",
            "for t in range(T) {",
            "    out = out + sum(exp(x[:, T - 1 - t]))",
            "}",
            sizes={"T": 3},
        ),
        C(
            "x: [N, T, D]",
            "out = zeros((N, D))",
            "for t in range(T) {",
            "    out = out + x[:, t, :] * t",
            "}",
            sizes={"T": 2, "D": 3},
        ),
    ],
    "put": [
        # the position of a value the body computes: put back at that position
        C(
            "x: [N, T]",
            "out = 0.0",
            "for t in range(T) {",
            "    out = out + sum(exp(2 * x)[:, t])",
            "}",
            sizes={"T": 3},
        ),
        C(
            "x: [T, n]",
            "out = zeros((n,))",
            "for t in range(T) {",
            "    out = out + tanh(x * 3)[t]",
            "}",
            sizes={"T": 2},
        ),
        C(
            "x: [N, T]",
            "out = 0.0",
            "for t in range(1, T) {",
            "    out = out + sum((x * x)[:, t - 1])",
            "}",
            sizes={"T": 3},
        ),
    ],
}

EXEMPT = {
    "result": "IR only: how a loop's results are read; every loop case above reads them",
    "if_else": "IR only: in a loop's backward, a carried value before a step (`hs[:, t - 1] if "
    "t > 0 else h0`); every RNN case above differentiates through it",
    "empty": "IR only: the stacks a loop fills for its backward; the LSTM and GRU cases above "
    "fill them",
    "shifted": "IR only: made by the optimizer after differentiation, for a backward loop's "
    "`dWh` as one product (`products_after_loops`); every RNN case above computes it so, and "
    "tests/test_rewrites.py tests it at T = 0, 1 and 3",
}
