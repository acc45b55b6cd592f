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
