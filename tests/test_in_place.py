"""The generated code reuses arrays it made (`p -= m`, `np.exp(p, out=p)`, `dW += reg * W`), and
never writes into anything else: the caller's arguments, the upstream gradient, or the cache, which
the caller may pass to the backward pass again; and the outputs are the caller's to change, which
changes no gradient. Every graph of the examples, the golden file and the regression graphs is run
with arrays that are checked afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpc.check import _attr, check_source, make_inputs
from bpc.conditions import default_sizes, met
from bpc.emit import emit
from bpc.loader import module_from_text
from bpc.pipeline import compile_graphs

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [
        *ROOT.glob("examples/*.bp"),
        *ROOT.glob("tests/golden/*.bp"),
        *ROOT.glob("tests/regressions/*.bp"),
    ]
)


def _graphs(**options):
    for path in SOURCES:
        compiled = compile_graphs(path.read_text())
        text = emit(compiled, path.name, **options)
        module = module_from_text(text, f"bpc_in_place_{path.stem}_{len(options)}")
        for c in compiled:
            yield pytest.param(module, c.pair, path, id=f"{path.stem}.{c.pair.name}")


def _copies(values) -> list:
    return [np.array(v, copy=True) for v in values]


def _same(before, after, what: str) -> None:
    for i, (b, a) in enumerate(zip(before, after)):
        np.testing.assert_array_equal(np.asarray(a), b, err_msg=f"{what} {i} was written")


def _arguments(graph, rng):
    names = sorted({s for p in graph.params for d in p.dims for s in d.symbols})
    sizes = {d: 3 + i for i, d in enumerate(names)}
    if not met(graph.conditions, sizes):  # group norm's C / 2 needs an even C
        sizes = default_sizes(graph, {})
    return make_inputs(graph, sizes, np.float64, rng)


def _douts(graph, outs, rng):
    outs = outs if len(graph.outputs) > 1 else (outs,)
    douts = [rng.standard_normal(np.shape(o)) for o in outs]
    return outs, douts, tuple(douts) if len(douts) > 1 else douts[0]


def _pair(module, graph):
    forward = getattr(module, _attr(module, graph.name + "_forward"))
    return forward, getattr(module, _attr(module, graph.name + "_backward"))


@pytest.mark.parametrize("module, graph, path", list(_graphs()))
def test_arguments_douts_and_cache_are_never_written(module, graph, path):
    rng = np.random.default_rng(0)
    args = _arguments(graph, rng)
    kept = _copies(args)
    forward, backward = _pair(module, graph)
    outs, cache = forward(*args)
    _same(kept, args, "argument")
    outs, douts, dout = _douts(graph, outs, rng)
    kept_douts, kept_cache = _copies(douts), _copies(cache)
    first = _copies(backward(dout, cache))
    _same(kept_douts, douts, "upstream gradient")
    _same(kept_cache, cache, "cache entry")
    _same(first, backward(dout, cache), "gradient of a second backward pass")
    for o in outs:  # an output is the caller's to change (a residual `out += x`), or one
        if isinstance(o, np.ndarray) and o.ndim:  # the cache holds, read-only (`_frozen`)
            if o.flags.writeable:
                o[...] = 7
            else:
                with pytest.raises(ValueError, match="read-only"):
                    o += 7
    _same(first, backward(dout, cache), "gradient after the caller wrote into an output")
    if len(graph.outputs) == 1 and graph.outputs[0].ndim == 0:
        grad = getattr(module, _attr(module, graph.name + "_grad"))
        grad(*args)
        _same(kept, args, "argument")
    # and what the backward reads from the cache is what the forward put there: a cached value
    # written over later in the forward would show as a wrong gradient
    rows = check_source(path.read_text(), graph=graph.name)
    assert all(row.ok for row in rows), rows


# each graph's module as compiled by default, by source and graph
DEFAULT = {(p.values[2], p.values[1].name): p.values[0] for p in _graphs()}


@pytest.mark.parametrize("module, graph, path", list(_graphs(consume_cache=True)))
def test_a_backward_that_uses_up_its_cache(module, graph, path):
    """Compiled with `consume_cache` (`bpc compile --consume-cache`), a backward takes the
    values out of its cache and may work in the arrays the forward made for it: its gradients
    are those of the module that keeps its cache, the arguments, the upstream gradient and an
    output the cache holds are never written, and a second backward with the same cache is
    refused, never answered from arrays the first one wrote into."""
    rng = np.random.default_rng(0)
    args = _arguments(graph, rng)
    kept = _copies(args)
    outs, cache = _pair(module, graph)[0](*args)
    outs, douts, dout = _douts(graph, outs, rng)
    kept_douts, kept_outs = _copies(douts), _copies(outs)
    default_forward, default_backward = _pair(DEFAULT[path, graph.name], graph)
    want = default_backward(dout, default_forward(*args)[1])
    grads = _pair(module, graph)[1](dout, cache)
    for name, g, w in zip(graph.wrt, grads, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
    _same(kept, args, "argument")
    _same(kept_douts, douts, "upstream gradient")
    _same(kept_outs, outs, "output")
    if len(cache):
        assert len(cache) == 0  # (the values are out: the cache no longer keeps them alive)
        with pytest.raises(ValueError, match="used up by an earlier backward"):
            _pair(module, graph)[1](dout, cache)


def test_a_used_up_cache_gives_dx_the_array_of_xhat():
    """Batch normalization as CS231n's `batchnorm_backward_alt` writes it into its cache: `dx`
    in the array of the centred `x` that the forward made, one new array fewer; with or without
    the argument checks, and never in the array of a parameter. The array-API target, whose
    code is functional, does not take the option."""
    from bpc import compile_source

    source = (ROOT / "examples" / "normalization.bp").read_text()
    for checks in (True, False):
        text = compile_source(source, "n.bp", checks=checks, consume_cache=True)
        backward = text[text.index("def batchnorm_backward") : text.index("def layernorm")]
        assert "_used_up(" in backward and "    dx = xc\n" in backward
        forward = text[text.index("def batchnorm_forward") : text.index("def batchnorm_backward")]
        assert "cache = BatchnormCache(" in forward if checks else "cache = _OnceCache(" in forward
    with pytest.raises(ValueError, match="numpy target"):
        compile_source(source, "n.bp", target="array-api", consume_cache=True)


def test_gelu_tanh_backward_makes_one_new_array():
    """GELU's tanh form, `s + w (1 - s)` written `(w - 1) (1 - s) + 1`: a backward that uses up
    its cache works `1 - s` out in the sigmoid's array and makes one new array, the gradient,
    as the expert's code does; the forward makes two (the sigmoid and the output). The
    gradient is within a few ulp of 1 of the derivative worked out in long double, at every x."""
    import tracemalloc

    from bpc import compile_source

    source = 'graph g(x: [N, D]) -> out {\n    out = gelu(x, approximate="tanh")\n}\n'
    module = module_from_text(
        compile_source(source, "g.bp", consume_cache=True), "bpc_in_place_gelu_once"
    )
    x = np.linspace(-12, 12, 200 * 200).reshape(200, 200)
    dout = np.ones_like(x)
    size = x.nbytes
    module.g_backward(dout, module.g_forward(x)[1])  # (a first call checks its arguments)
    tracemalloc.start()
    try:
        _, cache = module.g_forward(x)
        forward, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        (dx,) = module.g_backward(dout, cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 2 * size <= forward < 2.1 * size  # (the sigmoid and the output)
    assert peak - forward < 1.1 * size  # (dx alone)
    xl = x.astype(np.longdouble)
    c = np.sqrt(np.longdouble(2) / np.pi)
    s = 1 / (1 + np.exp(-2 * c * (xl + np.longdouble(0.044715) * xl**3)))
    exact = s + xl * s * (1 - s) * 2 * c * (1 + 3 * np.longdouble(0.044715) * xl * xl)
    assert np.max(np.abs(dx - exact)) < 64 * np.finfo(np.float64).eps


def test_mish_keeps_one_array_and_works_in_three():
    """Mish, `x * tanh(softplus(x))`: its gradient `t + x * (1 - t)^2 * e * (1 + e)` (t the
    tanh, e = exp(x)) reads no upstream gradient, so the forward computes it for the cache
    (`select_cache`), one array where `e` and `t` were two, and the output comes after it and
    works in the array of `t` (`outputs_after_hoisted`). A forward and a backward then work in
    three arrays of x's size, as the expert's do (bench/formulations/chains.py), where they
    took four; a backward that uses up its cache makes no new array; the forward alone
    computes none of the gradient; the gradients are the finite differences'."""
    import tracemalloc

    from bpc import compile_source

    source = "graph f(x: [N, D]) -> out {\n    out = x * tanh(softplus(x))\n}\n"
    x = np.linspace(-30, 30, 200 * 200).reshape(200, 200)
    dout = np.ones_like(x)
    for consume, arrays in ((False, 3.1), (True, 0.1)):
        text = compile_source(source, "f.bp", consume_cache=consume)
        module = module_from_text(text, f"bpc_in_place_mish_{consume}")
        alone = text[text.index("def f(") : text.index("def f_forward")]
        assert "1 - t" not in alone and "+= 1" not in alone, alone
        out, cache = module.f_forward(x)  # (a first call checks its arguments)
        assert [a.shape for a in cache if isinstance(a, np.ndarray)] == [x.shape]
        module.f_backward(dout, cache)
        del out, cache
        if consume:  # (the backward alone)
            _, cache = module.f_forward(x)
        tracemalloc.start()
        try:
            if not consume:
                out, cache = module.f_forward(x)
            (dx,) = module.f_backward(dout, cache)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < arrays * x.nbytes, peak / x.nbytes
        h = 1e-6
        numeric = (module.f(x + h) - module.f(x - h)) / (2 * h)
        np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(
    "body",
    [
        "loss = mean(0.5 * logvar + 0.5 * (x - mu)**2 * exp(-logvar))",
        "inv = exp(-logvar)\n    loss = mean(logvar + (x - mu) * (x - mu) * inv) / 2",
    ],
)
def test_a_gaussian_likelihood_works_in_two_arrays(body: str):
    """Two spellings of a Gaussian negative log-likelihood that kept a third array of the
    length of x: `share_products` went over the graph once, which left the log-variance's
    gradient reading `exp(-logvar)` beside `(x - mu) * exp(-logvar)`; and a gradient of a named
    value (`dinv`) was not read through. `g_grad` now works in two arrays, as the expert does
    (bench/formulations/losses.py), and its gradients are the finite differences'."""
    import tracemalloc

    from bpc import compile_source

    source = f"graph f(x: [n], mu: [n], logvar: [n]) -> loss wrt mu, logvar {{\n    {body}\n}}\n"
    module = module_from_text(compile_source(source, "f.bp"), "bpc_in_place_gaussian")
    rng = np.random.default_rng(0)
    x, mu, logvar = rng.standard_normal((3, 100_000))
    module.f_grad(x, mu, logvar)  # (a first call checks its arguments)
    tracemalloc.start()
    try:
        module.f_grad(x, mu, logvar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2.1 * x.nbytes, peak / x.nbytes  # (dmu and dlogvar alone)
    h, small = 1e-6, [a[:20] for a in (x, mu, logvar)]
    _, grads = module.f_grad(*small)
    for arg, value in zip((1, 2), grads):
        numeric = np.empty_like(value)
        for i in range(20):
            args = [a.copy() for a in small]
            args[arg][i] += h
            up = module.f(*args)
            args[arg][i] -= 2 * h
            numeric[i] = (up - module.f(*args)) / (2 * h)
        np.testing.assert_allclose(value, numeric, rtol=1e-6, atol=1e-10)


def test_a_negation_is_worked_out_in_place():
    """A negation on the way down is a step in place like the others, `np.negative(a, out=a)`
    (0.2-0.3 us a call less than `a *= -1` at 8192 elements): a Gaussian likelihood's `dmu =
    -(t_3 / t)` is worked out in the array of `t`, which its used-up cache frees
    (`np.divide(t_3, dmu, out=dmu)`, `np.negative(dmu, out=dmu)`), and `-abs(z)` in one new
    array. The values are those of the expression as written."""
    from bpc import compile_source

    source = "graph f(x: [n], mu: [n], logvar: [n]) -> loss wrt mu, logvar {\n"
    source += "    loss = mean(0.5 * logvar + 0.5 * ((x - mu) / exp(0.5 * logvar))**2)\n}\n"
    text = compile_source(source, "f.bp", consume_cache=True)
    backward = text.split("def f_backward")[1].split("def f_grad")[0]
    negated = "    np.divide(t_3, dmu, out=dmu)\n    np.negative(dmu, out=dmu)\n"
    assert "    dmu = t\n" + negated in backward
    module = module_from_text(text, "bpc_in_place_negation")
    rng = np.random.default_rng(2)
    x, mu, logvar = rng.standard_normal(50), rng.standard_normal(50), rng.standard_normal(50)
    _, cache = module.f_forward(x, mu, logvar)
    dmu, dlogvar = module.f_backward(1.0, cache)
    r = (x - mu) * np.exp(-0.5 * logvar)
    np.testing.assert_allclose(dmu, -r * np.exp(-0.5 * logvar) / 50, rtol=1e-13)
    np.testing.assert_allclose(dlogvar, (0.5 - 0.5 * r * r) / 50, rtol=1e-12, atol=1e-16)
    softplus = "graph g(z: [n]) -> y {\n    y = sum(softplus(z))\n}\n"
    assert "    e = np.abs(z)\n    np.negative(e, out=e)\n" in compile_source(softplus, "g.bp")
    # a gradient that is a named value negated takes its array (`dx0 = dv0`, then negated in it;
    # the random graphs once found it written `dx0 = -1`)
    loop = "graph h(x0: [m], x1: []) -> out {\n    v0 = 2 - x0\n    v1 = v0 * ones((m,))\n"
    loop += "    for t in range(1) {\n        v1 = tanh(v1 * 0.5 + x1)\n    }\n"
    loop += "    out = sum(v1 * v1)\n}\n"
    text = compile_source(loop, "h.bp")
    assert "    dx0 = dv0\n    np.negative(dx0, out=dx0)\n" in text
    module = module_from_text(text, "bpc_in_place_negated_gradient")
    x0, x1 = rng.standard_normal(4), 0.3
    _, cache = module.h_forward(x0, x1)
    dx0, _ = module.h_backward(1.0, cache)
    v1 = np.tanh((2 - x0) * 0.5 + x1)
    np.testing.assert_allclose(dx0, -2 * v1 * (1 - v1 * v1) * 0.5, rtol=1e-13)


def test_a_temporary_is_worked_out_in_place():
    """A line over the largest arrays that reads no value for the last time is worked out in a
    new array of its own, as an expert writes it: from a product (`out = x @ w`, then `out +=
    b`), or else from its deepest operation (`t = x * x`, `t *= k`, ...): one new array where
    each operation made one. The values are those of the line as written."""
    from bpc import compile_source

    affine = "graph f(x: [N, D], w: [D, M], b: [M]) -> out {\n    out = relu(x @ w + b)\n}\n"
    text = compile_source(affine, "f.bp")
    assert "    out = x @ w\n    out += b\n    np.maximum(out, 0, out=out)\n" in text
    gelu = 'graph g(x: [N, D]) -> out {\n    out = gelu(x, approximate="tanh")\n}\n'
    text = compile_source(gelu, "g.bp")
    forward = text[text.index("def g_forward") : text.index("def g_backward")]
    assert "    t = x * x\n    t *= -0.07135481627260025\n    t -= 1.5957691216057308\n" in forward
    module = module_from_text(text, "bpc_in_place_gelu")
    x = np.random.default_rng(0).standard_normal((5, 7))
    copy = x.copy()
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    np.testing.assert_allclose(module.g(x), 0.5 * x * (1 + np.tanh(u)), rtol=1e-14)
    np.testing.assert_array_equal(x, copy)


def test_the_way_down_that_makes_the_fewest_arrays():
    """Of the values a line may be worked out in, the one whose way down makes the fewest new
    arrays: tanh's backward `dh * (1 - h * h)` in `g_grad`, where `h` and `dh` are both read
    for the last time, is worked out in `h`'s array with no temporary, not in `dh`'s with
    `1 - h * h` made beside it; attention's `weights * (dweights - rowdot)` in the array of
    `dweights` when the backward may use up `weights` as well; and a binary cross-entropy's
    `maximum(z >= 0, e) / (1 + e)` in the new array of the mask made floats (no boolean
    array converted through a buffer as large), its `1 + e` in the array of `e` (`e += 1`,
    `dz /= e`)."""
    from bpc import compile_source

    text = compile_source((ROOT / "examples" / "mlp.bp").read_text(), "mlp.bp")
    grad = text[text.index("def mlp_grad") :]
    t = "daffine_out"
    assert f"    {t} = h\n    {t} *= h\n    np.subtract(1, {t}, out={t})\n    {t} *= dh\n" in grad
    source = (ROOT / "examples" / "attention.bp").read_text()
    text = compile_source(source, "attention.bp", consume_cache=True)
    backward = text[text.index("def attention_backward") :]
    assert "    t_2 = dweights\n    t_2 -= " in backward and "    t_2 *= weights\n" in backward
    source = "graph f(z: [n], y: [n]) -> loss {\n    loss = mean(softplus(z) - y * z)\n}\n"
    grad = compile_source(source, "f.bp").split("def f_grad")[1]
    mask = "    dz = (z >= 0).astype(e.dtype)\n    np.maximum(dz, e, out=dz)\n"
    assert mask + "    e += 1\n    dz /= e\n" in grad


def test_a_binary_cross_entropy_backward_makes_one_array():
    """The binary cross-entropy's backward, its cache used up, makes the gradient and the mask
    `z >= 0` alone: at 8192 elements NumPy's maximum of a float and a boolean array would
    convert the booleans through a buffer the size of the gradient (twice the memory)."""
    import tracemalloc

    from bpc import compile_source

    source = "graph f(z: [n], y: [n]) -> loss wrt z {\n    loss = mean(softplus(z) - y * z)\n}\n"
    module = module_from_text(
        compile_source(source, "f.bp", consume_cache=True), "bpc_in_place_bce_once"
    )
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal(8192) * 3, (rng.random(8192) < 0.5) * 1.0
    module.f_backward(1.0, module.f_forward(z, y)[1])  # (a first call checks its arguments)
    _, cache = module.f_forward(z, y)
    tracemalloc.start()
    try:
        (dz,) = module.f_backward(1.0, cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.2 * z.nbytes  # (dz, and the mask: an eighth of it)
    e = np.exp(-np.abs(z))
    np.testing.assert_allclose(dz, (np.where(z >= 0, 1, e) / (1 + e) - y) / 8192, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_leaky_relu_works_in_its_factor(dtype):
    """A leaky ReLU written with where: the factor where(x > 0, 1, 0.01), made from the mask in
    the arguments' dtype (`t = np.multiply(0.99, x > 0, dtype=x.dtype)`, then `t += 0.01`: no
    float64 array on the way, and no second array in float32, whose temporaries NumPy does
    not reuse), is the one array the pair makes besides the output: the backward, its cache
    used up, works the gradient out in it."""
    import tracemalloc

    from bpc import compile_source

    source = "graph f(x: [n]) -> out {\n    out = where(x > 0, x, 0.01 * x)\n}\n"
    text = compile_source(source, "f.bp", consume_cache=True)
    assert "t = np.multiply(0.99, x > 0, dtype=x.dtype)\n    t += 0.01\n" in text
    module = module_from_text(text, "bpc_in_place_leaky_once")
    rng = np.random.default_rng(0)
    x, dout = (rng.standard_normal(2**17).astype(dtype) for _ in range(2))
    module.f_backward(dout, module.f_forward(x)[1])  # (a first call checks its arguments)
    tracemalloc.start()
    try:
        out, cache = module.f_forward(x)
        (dx,) = module.f_backward(dout, cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2.2 * x.nbytes  # (out and the factor, then dx in the factor; the mask)
    assert out.dtype == dx.dtype == dtype
    factor = np.where(x > 0, 1, dtype(0.01)).astype(dtype)
    np.testing.assert_array_equal(out, x * factor)
    np.testing.assert_array_equal(dx, dout * factor)


def test_a_clip_multiplies_its_gradient_by_one_mask():
    """clip's gradient is g where lo <= x <= hi: the two masks are combined first (`&`, passes
    over bytes), so that g meets one mask, where `g * (x >= lo) * (x <= hi)` made two float
    passes, each converting a mask (4 us each at 64 x 128 float64, half the backward). The
    boundaries keep their gradient, as torch.clamp's do; nan has none."""
    from bpc import compile_source

    source = "graph f(x: [n]) -> out {\n    out = clip(x, -1, 1)\n}\n"
    text = compile_source(source, "f.bp")
    assert "dx = dout * ((x >= -1) & (x <= 1))\n" in text
    module = module_from_text(text, "bpc_in_place_clip_mask")
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 1.5, np.nan])
    dout = np.arange(1.0, 8.0)
    out, cache = module.f_forward(x)
    (dx,) = module.f_backward(dout, cache)
    np.testing.assert_array_equal(out, np.clip(x, -1, 1))
    np.testing.assert_array_equal(dx, [0, 2, 3, 4, 5, 0, 0])


def test_a_multiclass_svm_loss_scatters_into_its_gradient():
    """CS231n's SVM loss: the gradient's row sums are scattered to the labels in the gradient's
    own array (`_add_along(t, y, ..., out=t)`), read there for the last time, where a copy made
    a fourth array of the scores' size at the peak (beside the margins before and after the
    maximum, which the function holds to its end under their names)."""
    import tracemalloc

    from bpc import compile_source

    source = """graph f(s: [N, C], y: int[N]) -> loss wrt s {
    m = maximum(0, s - reshape(take_along(s, y), (N, 1)) + 1)
    loss = (sum(m) - N) / N
}
"""
    text = compile_source(source, "f.bp")
    assert ", out=t" in text.split("def f_grad")[1]
    module = module_from_text(text, "bpc_in_place_svm")
    rng = np.random.default_rng(0)
    s, y = rng.standard_normal((500, 100)), rng.integers(-100, 100, 500)
    module.f_grad(s, y)  # (a first call checks its arguments)
    tracemalloc.start()
    try:
        loss, (ds,) = module.f_grad(s, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3.2 * s.nbytes  # (t, m and the gradient; no copy of the gradient)
    rows = np.arange(500)
    margins = np.maximum(0, s - s[rows, y][:, None] + 1)
    np.testing.assert_allclose(loss, (margins.sum() - 500) / 500, rtol=1e-12)
    want = (margins > 0) / 500.0
    want[rows, y] -= want.sum(axis=1)
    np.testing.assert_allclose(ds, want, rtol=1e-12, atol=1e-15)


def test_a_loop_fills_its_stacks_in_place():
    """A value a loop body writes to a slot is made in that slot (`out=`), the slot write left
    out: a carried cell state whose first statement reads the old one (`c =
    np.multiply(f, c, out=cs[t])`, then `c += ...`), and `h = np.tanh(c, out=hs[:, t])`, which
    the next step reads. A stack made over the array whose slots the steps read (`hs` over
    `x @ W`, `optimize/stacks.py`) is still written after the step, which reads its slot first.
    The values are those of the loop as written, and no argument is written."""
    from bpc import compile_source

    cell = """graph cells(x: [N, T, H], f: [N, T, H], c0: [N, H]) -> (hs, cs) {
    hs = zeros((N, T, H))
    cs = zeros((T, N, H))
    c = c0
    for t in range(T) {
        c = f[:, t] * c + x[:, t]
        hs[:, t] = tanh(c)
        cs[t] = c
    }
}
"""
    text = compile_source(cell, "cells.bp")
    forward = text[text.index("def cells(") : text.index("def cells_forward")]
    loop = forward[forward.index("    for t in range(T):") :]
    assert "        c = np.multiply(f[:, t], c, out=" in loop  # (cs's array, `acc[t]`)
    assert "        c += x[:, t]\n" in loop and "np.tanh(c, out=hs[:, t])" in loop
    assert "] = " not in loop  # (no slot write after the step)
    module = module_from_text(text, "bpc_in_place_cells")
    rng = np.random.default_rng(3)
    x, f, c0 = (rng.standard_normal(s) for s in ((2, 4, 3), (2, 4, 3), (2, 3)))
    before = _copies((x, f, c0))
    hs, cs = module.cells(x, f, c0)
    c, want_hs, want_cs = c0, np.zeros((2, 4, 3)), np.zeros((4, 2, 3))
    for t in range(4):
        c = f[:, t] * c + x[:, t]
        want_hs[:, t], want_cs[t] = np.tanh(c), c
    np.testing.assert_allclose(hs, want_hs, rtol=1e-15)
    np.testing.assert_allclose(cs, want_cs, rtol=1e-15)
    _same(before, (x, f, c0), "argument")

    rnn = """graph rnn(x: [N, T, D], h0: [N, H], W: [D, H], U: [H, H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] @ W + h @ U)
        hs[:, t] = h
    }
}
"""
    text = compile_source(rnn, "rnn.bp")
    forward = text[text.index("def rnn(") : text.index("def rnn_forward")]
    assert "hs = (x_rows @ W).reshape((N, T, H))" in forward and "np.zeros" not in forward
    assert "h += hs[:, t]" in forward and "hs[:, t] = h" in forward
    module = module_from_text(text, "bpc_in_place_rnn")
    x, h0, W, U = (rng.standard_normal(s) for s in ((2, 5, 3), (2, 4), (3, 4), (4, 4)))
    h, want = h0, np.zeros((2, 5, 4))
    for t in range(5):
        h = want[:, t] = np.tanh(x[:, t] @ W + h @ U)
    np.testing.assert_allclose(module.rnn(x, h0, W, U), want, rtol=1e-14)
