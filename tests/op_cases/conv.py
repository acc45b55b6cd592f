"""Cases for conv2d, max_pool2d and avg_pool2d: non-square images and kernels, stride 2 over
odd sizes, padding, 1x1 kernels, one channel, one image, and windows that do not tile the
image; with and without a bias, and under other operations."""

from __future__ import annotations

from tests.op_cases import C, Case

IMG = "x: [N, C, H, W], w: [F, C, KH, KW]"

CASES: dict[str, list[Case]] = {
    "conv2d": [
        C(
            IMG,
            "out = conv2d(x, w)",
            sizes={"N": 2, "C": 3, "H": 5, "W": 6, "F": 4, "KH": 3, "KW": 2},
        ),
        C(
            IMG + ", b: [F]",
            "out = conv2d(x, w, b, stride=2)",
            sizes={"N": 2, "C": 2, "H": 7, "W": 9, "F": 3, "KH": 3, "KW": 3},
        ),
        C(
            IMG + ", b: [F]",
            "out = conv2d(x, w, b, stride=(2, 1), pad=(1, 2))",
            sizes={"N": 1, "C": 1, "H": 6, "W": 5, "F": 2, "KH": 2, "KW": 3},
        ),
        C(
            "x: [N, C, H, W], w: [F, C, 1, 1], b: [F]",
            "out = conv2d(x, w, b)",
            sizes={"N": 2, "C": 3, "H": 4, "W": 3, "F": 2},
        ),
        C(
            IMG,
            "out = sum(tanh(conv2d(x, w, stride=3, pad=1)) ** 2)",
            sizes={"N": 2, "C": 1, "H": 8, "W": 7, "F": 2, "KH": 2, "KW": 4},
        ),
        C(
            IMG + ", v: [G, F, 2, 2]",
            "h = conv2d(x, w, pad=1)",
            "out = conv2d(h * h, v, stride=2)",
            sizes={"N": 1, "C": 2, "H": 5, "W": 6, "F": 3, "KH": 3, "KW": 3, "G": 2},
        ),
    ],
    "max_pool2d": [
        C("x: [N, C, H, W]", "out = max_pool2d(x)", sizes={"N": 2, "C": 3, "H": 4, "W": 6}),
        C(
            "x: [N, C, H, W]",
            "out = max_pool2d(x, size=3, stride=2)",
            sizes={"N": 1, "C": 2, "H": 7, "W": 8},
        ),
        C(
            "x: [N, C, H, W]",
            "out = sum(max_pool2d(x, size=(2, 3), stride=(1, 2)) ** 2)",
            sizes={"N": 2, "C": 1, "H": 5, "W": 7},
        ),
        C(
            IMG,
            "out = max_pool2d(relu(conv2d(x, w, pad=1)))",
            sizes={"N": 2, "C": 1, "H": 6, "W": 5, "F": 2, "KH": 3, "KW": 3},
        ),
    ],
    "avg_pool2d": [
        C("x: [N, C, H, W]", "out = avg_pool2d(x)", sizes={"N": 2, "C": 3, "H": 4, "W": 6}),
        C(
            "x: [N, C, H, W]",
            "out = avg_pool2d(x, size=3, stride=2)",
            sizes={"N": 1, "C": 2, "H": 7, "W": 8},
        ),
        C(
            "x: [N, C, H, W]",
            "out = sum(avg_pool2d(x * x, size=(3, 2), stride=(2, 1)))",
            sizes={"N": 1, "C": 1, "H": 6, "W": 5},
        ),
    ],
}

EXEMPT = {
    "windows": "IR only, no spelling: the expansion of every conv2d and pool case above is made of it",
    "window_add": "IR only: the adjoint of the window view, in every conv2d and pool case's gradient",
    "max_pool_route": "IR only: max_pool2d's adjoint, in every max_pool2d case's gradient",
    "max_pool_pick": "IR only: max_pool_route's adjoint (second order); tests/test_conv.py checks "
    "that the two are transposes",
}
