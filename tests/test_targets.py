"""The array-api target (`bpc compile --target array-api`) on every library it serves.

Every case of the op table (tests/op_cases/) is compiled for the array-api target and run on
NumPy, PyTorch CPU tensors, JAX arrays eagerly and under `jax.jit` of the generated `g_grad`:
its forward value and its gradients (`g_grad` for a scalar output, `g_forward` + `g_backward`
otherwise) must be arrays of the library they were given, and agree with the numpy target's
(which tests/test_ops.py checks against the oracle and finite differences). A case the target
refuses (a loop, a convolution's windows or pooling) must be refused with its compile error.
A library that is not installed skips its tests, saying so.
"""

from __future__ import annotations

import importlib.util
import itertools
import types

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError
from bpc.emit import Compiled, emit
from bpc.loader import module_from_text
from tests import oracle
from tests.op_cases import CASES, Case
from tests.support import rel_error
from tests.test_ops import _ops, built, compiled_grads, make_dout, make_inputs

TARGET = "array-api"
TOL = 1e-9  # float64, against the numpy target's results
# What the target refuses, by the operation that needs it (see bpc.arrayapi.refuse).
REFUSED = {
    "loop": "loops",
    "put": "loops",
    "windows": "np.lib.stride_tricks.sliding_window_view",
    "window_add": "the helper _window_add",
    "conv2d": "np.lib.stride_tricks.sliding_window_view",
    "max_pool2d": "the helper _max_pool",
    "max_pool_route": "the helper _max_pool",
    "max_pool_pick": "the helper _max_pool",
    "avg_pool2d": "the helper _avg_pool",
}
_count = itertools.count()
_modules: dict[str, types.ModuleType | CompileError] = {}


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def xp_module(case: Case) -> types.ModuleType | CompileError:
    """The case compiled for the array-api target (once), or the compile error it raised."""
    if case.key not in _modules:
        name = f"bpc_test_targets_{next(_count)}"
        try:
            if case.source is not None:
                text = compile_source(case.source, f"{name}.bp", target=TARGET)
            else:
                text = emit([_compiled(built(case).graph)], "x.bp", target=TARGET)
            _modules[case.key] = module_from_text(text, name)
        except CompileError as e:
            _modules[case.key] = e
    return _modules[case.key]


def _compiled(typed) -> Compiled:
    from bpc.autodiff import differentiate
    from bpc.optimize import optimize, seed_ones

    full = differentiate(typed)
    scalar = len(typed.outputs) == 1 and typed.outputs[0].ndim == 0
    grad = optimize(seed_ones(full), cache_reused=False) if scalar else None
    return Compiled(optimize(full, cache_reused=True), grad)


# ---------------------------------------------------------------------------------------------
# The libraries: how to make an array of one from a NumPy array, and how to read one back


def _numpy():
    return np.asarray, np.asarray, (np.ndarray, np.generic)  # (a 0-d result: a NumPy number)


def _torch():
    import torch

    return torch.asarray, lambda x: x.numpy(), torch.Tensor


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # (the cases compare float64 results)
    import jax.numpy as jnp

    return jnp.asarray, np.asarray, jax.Array


LIBRARIES = {
    "numpy": (_numpy, "numpy"),
    "torch": (_torch, "torch"),
    "jax": (_jax, "jax"),
    "jax-jit": (_jax, "jax"),
}


def _cases():
    for op, cases in CASES.items():
        for i, case in enumerate(cases):
            yield pytest.param(case, id=f"{op}-{i}")


def _library(name: str):
    make, module = LIBRARIES[name]
    if not installed(module):
        pytest.skip(f"{module} is not installed: the {name} checks of the array-api target need it")
    if not installed("array_api_compat"):
        pytest.skip("array_api_compat is not installed: the array-api target needs it")
    return make()


@pytest.mark.parametrize("library", list(LIBRARIES))
@pytest.mark.parametrize("case", list(_cases()))
def test_op_case_on_library(case: Case, library: str):
    to, back, array_type = _library(library)
    module = xp_module(case)
    ops = (
        _ops(oracle.typed_graph(case.source).nodes)
        if case.source
        else _ops(built(case).graph.nodes)
    )
    if isinstance(module, CompileError):
        reasons = {REFUSED[op] for op in ops if op in REFUSED}
        assert reasons, f"the array-api target refused a case it should compile: {module}"
        assert "does not support" in str(module) and "--target numpy" in str(module)
        return
    reference = built(case)
    inputs = make_inputs(case, reference.graph)
    dout = make_dout(case, reference, inputs)
    want_out = reference.f(*inputs.values())
    want = compiled_grads(reference, inputs, dout)
    args = {k: to(v) for k, v in inputs.items()}
    name = reference.graph.name
    f = getattr(module, name)
    if library == "jax-jit":
        import jax

        f = jax.jit(f)
    out = f(*args.values())
    for got, wanted in zip(_tuple(out), _tuple(want_out)):
        assert isinstance(got, array_type), f"the forward returned a {type(got).__name__}"
        assert rel_error(back(got), wanted) < TOL
    if reference.scalar:
        grad = getattr(module, f"{name}_grad")
        grad = jax.jit(grad) if library == "jax-jit" else grad
        value, grads = grad(*args.values())
        assert rel_error(back(value), want_out) < TOL
    else:
        _, cache = getattr(module, f"{name}_forward")(*args.values())
        douts = tuple(to(d) for d in dout) if isinstance(dout, tuple) else to(dout)
        grads = getattr(module, f"{name}_backward")(douts, cache)
    for k in reference.graph.wrt:
        got = getattr(grads, k)
        assert isinstance(got, array_type), f"d{k} is a {type(got).__name__}"
        assert tuple(got.shape) == np.shape(inputs[k]), k
        assert rel_error(back(got), want[k]) < TOL, k


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


# ---------------------------------------------------------------------------------------------
# The argument checks, the command line, bpc.load, what is refused


CHECKED = """
graph f(x: [n, m], w: [m], y: int[n], s: []) -> out {
    out = mean(cross_entropy(x * w + s, y))
}
"""


def _bad_calls(rng):
    """Arguments that the checks refuse, each a list of NumPy arrays (or numbers)."""
    x, w, y = rng.standard_normal((3, 4)), rng.standard_normal(4), np.array([0, 3, 1])
    return [
        [x[0], w, y, 0.5],  # x 1-d
        [x, w[:3], y, 0.5],  # m mismatch
        [x, w, y[:2], 0.5],  # n mismatch
        [x, w, y.astype(np.float64), 0.5],  # y floats
        [x.astype(np.int64), w, y, 0.5],  # x integers
        [x, w.astype(np.float32), y, 0.5],  # dtypes mixed
        [x, w, np.array([0, 4, 1]), 0.5],  # a label out of range
        [x, w, y, "s"],  # not a number
    ]


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_argument_checks_say_what_the_numpy_targets_say(library):
    to, _, _ = _library(library)
    rng = np.random.default_rng(0)
    numpy_module = module_from_text(compile_source(CHECKED), f"bpc_test_targets_{next(_count)}")
    xp_text = compile_source(CHECKED, target=TARGET)
    module = module_from_text(xp_text, f"bpc_test_targets_{next(_count)}")
    for args in _bad_calls(rng):
        with pytest.raises(ValueError) as want:
            numpy_module.f_grad(*args)
        with pytest.raises(ValueError) as got:
            module.f_grad(*(to(a) if isinstance(a, np.ndarray) else a for a in args))
        said, wanted = str(got.value), str(want.value)
        if "must be" in wanted and "got str" in wanted:  # (the class that each wants, named)
            wanted = wanted.replace("a number or a NumPy array", "a number or an array")
        assert said == wanted


def test_numpy_results_of_the_two_targets_agree_with_python_numbers():
    rng = np.random.default_rng(1)
    args = [rng.standard_normal((3, 4)), rng.standard_normal(4), np.array([0, 3, 1]), 0.5]
    numpy_module = module_from_text(compile_source(CHECKED), f"bpc_test_targets_{next(_count)}")
    module = module_from_text(compile_source(CHECKED, target=TARGET), f"bpc_t_{next(_count)}")
    want_value, want = numpy_module.f_grad(*args)
    value, grads = module.f_grad(*args)
    assert rel_error(value, want_value) < TOL
    for a, b in zip(grads, want):
        assert rel_error(a, b) < TOL
    _, cache = module.f_forward(*args)
    for a, b in zip(module.f_backward(1.0, cache), want):  # (dout a Python number)
        assert rel_error(a, b) < TOL


def test_the_code_is_functional():
    """No augmented assignment, no `out=`, no slot store in a graph's functions: nothing
    writes into an array."""
    import ast

    from tests.test_golden import XP_PAIRS

    for source, _ in XP_PAIRS:
        tree = ast.parse(compile_source(source.read_text(), source.name, target=TARGET))
        functions = [f for f in tree.body if isinstance(f, ast.FunctionDef)]
        graph_functions = [f for f in functions if not f.name.startswith("_")]
        assert graph_functions
        for node in (n for f in graph_functions for n in ast.walk(f)):
            assert not isinstance(node, ast.AugAssign), (source.name, ast.unparse(node))
            if isinstance(node, ast.Call):
                assert all(k.arg != "out" for k in node.keywords), ast.unparse(node)
            if isinstance(node, ast.Assign):
                assert not isinstance(node.targets[0], ast.Subscript), ast.unparse(node)


def test_loops_are_refused_with_a_compile_error():
    source = """
graph f(x: [N, T, D], h0: [N, D]) -> hs {
    hs = zeros((N, T, D))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] + h)
        hs[:, t] = h
    }
}
"""
    compile_source(source)  # (the numpy target compiles it)
    with pytest.raises(CompileError, match="does not support loops") as e:
        compile_source(source, target=TARGET)
    assert e.value.diagnostics[0].loc is not None


def test_command_line_and_load_take_the_target(tmp_path, capsys):
    from bpc import load
    from bpc.cli import main

    source = tmp_path / "model.bp"
    source.write_text(CHECKED)
    assert main(["compile", "--target", "array-api", str(source), "-o", "-"]) == 0
    assert "import array_api_compat" in capsys.readouterr().out
    assert main(["compile", str(source), "-o", "-"]) == 0
    assert "array_api_compat" not in capsys.readouterr().out  # (the default: numpy)
    module = load(source, cache=tmp_path / "cache", target=TARGET)
    numpy_module = load(source, cache=tmp_path / "cache")
    assert module is not numpy_module
    args = [np.ones((3, 4)), np.ones(4), np.array([0, 1, 2]), 0.5]
    assert rel_error(module.f_grad(*args)[0], numpy_module.f_grad(*args)[0]) < TOL
    assert len(list((tmp_path / "cache").glob("*.py"))) == 2
    with pytest.raises(SystemExit):
        main(["compile", "--target", "nothing", str(source)])


def test_helper_templates_of_the_target_are_black():
    """What the target's helpers and checks copy into a module is black at 88 columns."""
    import black

    from bpc.arrayapi import ArrayApiPrinter
    from bpc.emit import _environment

    for template in [*ArrayApiPrinter.helpers.values(), ArrayApiPrinter.runtime]:
        text = _environment().get_template(template).render()
        assert black.format_str(text, mode=black.Mode()) == text, template
