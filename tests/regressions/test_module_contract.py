"""Issue 10's findings about the generated module's names and checks: graphs whose generated
names collide, graphs named after built-ins, np.matrix arguments, `dout` and `cache` that
g_backward took without a look."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError
from tests.support import load

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix

LOSS = "graph {name}(x: [n]) -> y {{\n    y = sum(x * x)\n}}\n"


@pytest.mark.parametrize(
    "first, second, name",
    [
        ("g", "g_forward", "g_forward"),
        ("g", "g_backward", "g_backward"),
        ("g", "g_grad", "g_grad"),
        ("a_b", "aB", "ABGrads"),
        ("seed", "SeedGrads", "SeedGrads"),
        ("seed", "SeedCache", "SeedCache"),
        ("_", "__", "Grads"),
        ("lambda", "lambda_", "lambda_"),
    ],
)
def test_graphs_whose_names_would_collide_are_refused(first, second, name):
    source = LOSS.format(name=first) + LOSS.format(name=second)
    with pytest.raises(CompileError) as e:
        compile_source(source, "m.bp")
    (d,) = e.value.diagnostics
    assert (d.loc.line, d.loc.col) == (4, 1)
    assert d.message == (
        f"graph {second} would define {name}, which graph {first} defines too; rename one of them"
    )


def test_a_graph_and_its_grads_class_never_collide_without_checks():
    """Without checks there is no cache class, so `SeedCache` is a graph name like any other."""
    source = LOSS.format(name="seed") + LOSS.format(name="SeedCache")
    text = compile_source(source, "m.bp", checks=False)
    assert "def SeedCache(x):" in text


SHADOWED = ["len", "zip", "int", "tuple", "getattr", "isinstance", "enumerate", "float"]
SHADOWED += ["__builtins__", "__name__", "__import__", "type", "ValueError", "sum", "print"]


@pytest.mark.parametrize("name", SHADOWED)
def test_a_graph_named_after_a_builtin_is_defined_with_an_underscore(name):
    """The module's own checks call `len`, `zip` and `isinstance`: a graph named `len` broke
    every call. Like a keyword (`lambda_`), it is defined as `len_`; the rest keep their names."""
    assert hasattr(builtins, name) or name == "__builtins__"
    module = load(LOSS.format(name=name) + LOSS.format(name="other"))
    x = np.arange(3.0)
    assert getattr(module, name + "_")(x) == 5.0
    value, grads = getattr(module, name + "_grad")(x)
    assert value == 5.0 and np.array_equal(grads.x, 2 * x)
    out, cache = getattr(module, name + "_forward")(x)
    assert np.array_equal(getattr(module, name + "_backward")(1.0, cache).x, 2 * x)
    assert module.other(x) == 5.0 and module.other_grad(x)[0] == 5.0
    assert getattr(module, name, None) is not getattr(module, name + "_")


@pytest.mark.parametrize("name", ["np", "math", "re", "functools", "NamedTuple", "_seen", "_array"])
def test_a_graph_named_like_what_the_module_uses_is_renamed(name):
    module = load(LOSS.format(name=name))
    assert getattr(module, name + "_")(np.ones(2)) == 2.0


MATMUL = "graph f(a: [n, n], b: [n, n]) -> y {\n    y = sum(a * b * a)\n}\n"


@pytest.mark.parametrize("kind", [np.matrix, np.ma.masked_array])
def test_matrix_and_masked_arguments_are_refused(kind):
    """`*` of two np.matrix is a matrix product, and a masked array's sum skips elements: the
    result would be silently wrong. A subclass that computes like ndarray (memmap) passes."""
    module = load(MATMUL)
    a = np.arange(4.0).reshape(2, 2)
    with pytest.raises(ValueError, match=f"f: a must be a plain NumPy array, got {kind.__name__}"):
        module.f(kind(a), a)
    with pytest.raises(ValueError, match="f: b must be a plain NumPy array"):
        module.f_grad(a, kind(a))
    assert module.f(a.view(np.memmap), a) == module.f(a, a) == np.sum(a * a * a)


SHAPED = "graph f(x: [n, m], s: []) -> (y, z) {\n    y = x * s\n    z = sum(x * x)\n}\n"


def test_dout_is_checked_like_an_argument():
    module = load(SHAPED)
    x = np.ones((2, 3))
    (y, z), cache = module.f_forward(x, 2.0)
    ok = (np.ones((2, 3)), 1.0)
    assert np.array_equal(module.f_backward(ok, cache).x, 2 + 2 * x)
    assert np.array_equal(module.f_backward(list(ok), cache).x, 2 + 2 * x)
    bad = {
        "f: dout must be a tuple of 2 upstream gradients, one per output": np.ones((2, 2, 3)),
        "f: dout must be shaped (2, 3), like the output; got (3, 2)": (np.ones((3, 2)), 1.0),
        "f: dout must be shaped (), like the output; got (1,)": (np.ones((2, 3)), np.ones(1)),
        "f: dout must be a NumPy array shaped (2, 3), got list": ([[1.0] * 3] * 2, 1.0),
        "f: dout must be a NumPy array shaped (2, 3), got float": (1.0, 1.0),
        "f: dout must hold floats, got int64": (np.ones((2, 3), int), 1.0),
        "f: dout is float32, but the forward ran in float64": (np.ones((2, 3), np.float32), 1.0),
        "f: dout must be a plain NumPy array, got matrix": (np.matrix(np.ones((2, 3))), 1.0),
        "f: dout must be a NumPy array shaped (), got str": (np.ones((2, 3)), "1"),
        "f: dout must be a NumPy array shaped (), got bool": (np.ones((2, 3)), True),
    }
    for message, dout in bad.items():
        with pytest.raises(ValueError) as e:
            module.f_backward(dout, cache)
        assert str(e.value) == message


def test_a_number_dout_gives_array_gradients_of_the_forward_dtype():
    """A Python float for a 0-d output's dout once gave a Python float gradient."""
    module = load("graph f(a: [], x: [n]) -> y {\n    y = 3 * a + sum(x)\n}\n")
    for dtype in (np.float64, np.float32):
        _, cache = module.f_forward(2.0, np.ones(3, dtype))
        for dout in (1.0, 1, np.float64(1.0), np.array(1.0)):
            grads = module.f_backward(dout, cache)
            assert isinstance(grads.a, np.generic | np.ndarray) and grads.a == 3
            assert grads.x.dtype == dtype
    only_scalars = load("graph f(a: []) -> y {\n    y = 3 * a\n}\n")
    _, cache = only_scalars.f_forward(2.0)
    assert only_scalars.f_backward(1.0, cache).a.dtype == np.float64


@pytest.mark.parametrize(
    "source",
    [
        "graph f(x: [n], s: []) -> y wrt x {\n    y = x * s\n}\n",
        "graph f(x: [n], m: bool[n], p: []) -> y wrt x {\n    y = where(m, x / p, 0)\n}\n",
    ],
)
def test_a_backward_that_needs_only_a_scalar_knows_the_arrays_dtype(source):
    """The backward once took the graph's float dtype from the one value its cache held, a 0-d
    parameter passed as a Python float, and refused a float32 dout as not float64."""
    module = load(source)
    x = np.ones(3, np.float32)
    args = (x, 0.5) if "bool" not in source else (x, np.array([True, False, True]), 0.5)
    y, cache = module.f_forward(*args)
    assert y.dtype == np.float32
    assert module.f_backward(np.ones(3, np.float32), cache).x.dtype == np.float32
    with pytest.raises(ValueError, match="dout is float64, but the forward ran in float32"):
        module.f_backward(np.ones(3), cache)


def test_a_cache_from_another_graph_or_module_is_refused():
    source = LOSS.format(name="f") + LOSS.format(name="g")
    module, again = load(source), load(source)
    x = np.ones(3)
    _, cache = module.f_forward(x)
    assert np.array_equal(module.f_backward(1.0, cache).x, 2 * x)
    for backward, what in (
        (module.g_backward, "GCache"),
        (again.f_backward, "FCache"),
    ):
        with pytest.raises(ValueError, match=f"cache must be the {what} that the forward"):
            backward(1.0, cache)
    with pytest.raises(ValueError, match="got tuple"):
        module.f_backward(1.0, tuple(cache))


def test_without_checks_the_cache_is_a_plain_tuple():
    text = compile_source(LOSS.format(name="f"), "m.bp", checks=False)
    assert "cache = (x,)" in text and "x, = cache" not in text and "_dout" not in text
