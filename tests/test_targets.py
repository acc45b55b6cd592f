"""The array-api target (`bpc compile --target array-api`) on every library it serves.

Every case of the op table (tests/op_cases/) is compiled for the array-api target and run on
NumPy, PyTorch CPU tensors, Dask arrays, JAX arrays eagerly and under `jax.jit` (of `g`,
`g_grad`, `g_forward` and `g_backward`; on JAX's default device, a GPU where JAX has one), and
CuPy arrays on a GPU: its forward value and its gradients (`g_grad` for a scalar output,
`g_forward` + `g_backward` otherwise) must be arrays of the library they were given, and agree with the numpy target's (which tests/test_ops.py checks against the oracle and
finite differences). The loop models of tests/test_loops.py and tests/golden/loops.bp run the
same way at T = 0, 1 and 3. A library that is not installed skips its tests, saying so.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import types
from pathlib import Path

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError
from bpc.emit import Compiled, emit
from bpc.loader import module_from_text
from tests.op_cases import CASES, Case
from tests.support import rel_error
from tests.test_ops import built, compiled_grads, make_dout, make_inputs

ROOT = Path(__file__).resolve().parent.parent
TARGET = "array-api"
TOL = 1e-9  # float64, against the numpy target's results
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


def _torch_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip(
            "no GPU that PyTorch can use: the array-api target's PyTorch CUDA checks need one"
        )

    def back(x):  # (a result must stay on the GPU)
        assert x.device.type == "cuda", f"a result on {x.device}"
        return x.cpu().numpy()

    return lambda x: torch.asarray(x, device="cuda"), back, torch.Tensor


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # (the cases compare float64 results)
    import jax.numpy as jnp

    return jnp.asarray, np.asarray, jax.Array


def _dask():
    import dask
    import dask.array as da

    dask.config.set(scheduler="synchronous")  # (the cluster has a test of its own, below)

    def chunked(x):  # two chunks along the first axis, the batch's
        x = np.asarray(x)
        return da.from_array(
            x, chunks=(max(1, (x.shape[0] + 1) // 2), *x.shape[1:]) if x.ndim else ()
        )

    return chunked, lambda x: np.asarray(x.compute()), da.Array


def _cupy():
    import cupy

    if not _gpus(cupy):
        pytest.skip("no GPU that CuPy can use: the array-api target's CuPy checks need one")
    return cupy.asarray, cupy.asnumpy, cupy.ndarray


def _gpus(cupy) -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


LIBRARIES = {
    "numpy": (_numpy, "numpy"),
    "dask": (_dask, "dask"),
    "torch": (_torch, "torch"),
    "jax": (_jax, "jax"),
    "jax-jit": (_jax, "jax"),
    "cupy": (_cupy, "cupy"),
    "torch-cuda": (_torch_cuda, "torch"),
}


# What Dask cannot do of the op cases (its own limits, not the target's).
DASK_LIMITS = {
    "reshape-1": "Dask reshapes only where chunks merge or split existing axes evenly",
    "reshape-7": "Dask reshapes only where chunks merge or split existing axes evenly",
    "take-0": "Dask indexes with a 1-d array of integers only (this index is 2-d)",
    "take-3": "Dask indexes with a 1-d array of integers only (this index is 2-d)",
    "take-5": "Dask indexes with a 1-d array of integers only (this index is 2-d)",
    "scatter_add-0": "Dask indexes with a 1-d array of integers only (this index is 2-d)",
}


def _cases():
    for op, cases in CASES.items():
        for i, case in enumerate(cases):
            yield pytest.param(case, id=f"{op}-{i}")


def _params():
    """Each case on each library; xfail (strict) where Dask cannot run it."""
    for case in _cases():
        for library in LIBRARIES:
            case_id = case.id
            marks = []
            if library == "dask" and case_id in DASK_LIMITS:
                marks = [pytest.mark.xfail(strict=True, reason=DASK_LIMITS[case_id])]
            yield pytest.param(*case.values, library, id=f"{case_id}-{library}", marks=marks)


def _library(name: str):
    make, module = LIBRARIES[name]
    if not installed(module):
        pytest.skip(f"{module} is not installed: the {name} checks of the array-api target need it")
    if not installed("array_api_compat"):
        pytest.skip("array_api_compat is not installed: the array-api target needs it")
    return make()


@pytest.mark.parametrize("case, library", list(_params()))
def test_op_case_on_library(case: Case, library: str):
    to, back, array_type = _library(library)
    module = xp_module(case)
    assert not isinstance(module, CompileError), f"the array-api target refused it: {module}"
    reference = built(case)
    inputs = make_inputs(case, reference.graph)
    dout = make_dout(case, reference, inputs)
    want_out = reference.f(*inputs.values())
    want = compiled_grads(reference, inputs, dout)
    args = {k: to(v) for k, v in inputs.items()}
    before = {k: np.array(v, copy=True) for k, v in inputs.items()}
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
        forward, backward = _pair(module, name, library)
        _, cache = forward(*args.values())
        douts = tuple(to(d) for d in dout) if isinstance(dout, tuple) else to(dout)
        dout_before = [np.array(back(d), copy=True) for d in _tuple(douts)]
        grads = backward(douts, cache)
        assert all(np.array_equal(back(d), b) for d, b in zip(_tuple(douts), dout_before))
    for k, v in args.items():  # (the module writes into no array of the caller's)
        assert np.array_equal(back(v), before[k], equal_nan=True), f"{k} was written"
    for k in reference.graph.wrt:
        got = getattr(grads, k)
        assert isinstance(got, array_type), f"d{k} is a {type(got).__name__}"
        assert tuple(got.shape) == np.shape(inputs[k]), k
        assert rel_error(back(got), want[k]) < TOL, k


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _pair(module, name: str, library: str):
    """`g_forward` and `g_backward`, each under `jax.jit` for the library "jax-jit" (the cache
    is a pytree to JAX)."""
    pair = getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward")
    if library == "jax-jit":
        import jax

        return tuple(map(jax.jit, pair))
    return pair


# ---------------------------------------------------------------------------------------------
# Loops: recurrent networks, nested loops, loops that run one step or none


def _loop_models():
    """The loops of tests/test_loops.py and tests/golden/loops.bp, each with its arguments'
    shapes at a sequence length T."""
    from tests.test_loops import MODELS

    golden = (ROOT / "tests" / "golden" / "loops.bp").read_text()
    more = {
        "grid": lambda T: [(T, 3), (3,)],
        "swap": lambda T: [(4,), (4,), (T, 4)],
        "differences": lambda T: [(2, T)],
        "gru": lambda T: [(2, T, 3), (2, 4)] + [(3, 4), (4, 4)] * 3,
    }
    models = {name: (source, shapes) for name, (source, shapes) in MODELS.items()}
    models |= {f"golden-{name}": (golden, shapes) for name, shapes in more.items()}
    return models


LOOP_MODELS = _loop_models()
_loop_modules: dict = {}


def _loop_pair(key: str):
    """The numpy target's module and the array-api target's, compiled once."""
    if key not in _loop_modules:
        source = LOOP_MODELS[key][0]
        _loop_modules[key] = tuple(
            module_from_text(compile_source(source, target=t), f"bpc_t_{next(_count)}")
            for t in ("numpy", TARGET)
        )
    return _loop_modules[key]


# What Dask cannot do of the loops (its own limit, not the target's).
DASK_EMPTY = "Dask cannot reshape an array of size 0 whose axes merge (x.reshape((N * T, D)))"
DASK_LOOP_LIMITS = {(key, 0): DASK_EMPTY for key in ("rnn", "lstm", "gru", "golden-gru")}
DASK_LOOP_LIMITS |= {("birnn", 0): DASK_EMPTY, ("seq_loss", 0): DASK_EMPTY}


def _loop_params():
    for key in sorted(LOOP_MODELS):
        for T in (0, 1, 3):
            for library in LIBRARIES:
                limit = DASK_LOOP_LIMITS.get((key, T)) if library == "dask" else None
                marks = [pytest.mark.xfail(strict=True, reason=limit)] if limit else []
                yield pytest.param(key, T, library, id=f"{key}-{T}-{library}", marks=marks)


@pytest.mark.parametrize("key, T, library", list(_loop_params()))
def test_loops_on_library(key: str, T: int, library: str):
    """A loop model's output and gradients from `g_forward` and `g_backward` (each under
    `jax.jit` for "jax-jit") and, for a scalar output, `g_grad`, against the numpy target's; a
    length the numpy target refuses (T = 0 where an axis would be T - 1) is refused with its
    message."""
    to, back, array_type = _library(library)
    reference, module = _loop_pair(key)
    name = key.removeprefix("golden-")
    rng = np.random.default_rng(T)
    args = [rng.standard_normal(s) * 0.6 for s in LOOP_MODELS[key][1](T)]
    if name == "seq_loss":
        args.append(rng.integers(0, 5, (2, T)))
    forward, backward = _pair(module, name, library)
    try:
        want_out, cache = getattr(reference, f"{name}_forward")(*args)
    except ValueError as e:
        with pytest.raises(ValueError, match=re.escape(str(e))):
            forward(*map(to, args))
        return
    dout = tuple(rng.standard_normal(np.shape(o)) for o in _tuple(want_out))
    dout = dout if isinstance(want_out, tuple) else dout[0]
    want = getattr(reference, f"{name}_backward")(dout, cache)
    before = [np.array(a, copy=True) for a in (*args, *_tuple(dout))]
    out, cache = forward(*map(to, args))
    grads = backward(tuple(map(to, dout)) if isinstance(dout, tuple) else to(dout), cache)
    if not isinstance(want_out, tuple) and np.ndim(want_out) == 0:  # (and its g_grad)
        grad = getattr(module, f"{name}_grad")
        value, more = (jax_jit(grad) if library == "jax-jit" else grad)(*map(to, args))
        want_value, want_more = getattr(reference, f"{name}_grad")(*args)
        out, grads = (out, value), (*grads, *more)
        want_out, want = (want_out, want_value), (*want, *want_more)
    # (the module writes into no array of the caller's: NumPy's and PyTorch's share their memory)
    assert all(map(np.array_equal, (*args, *_tuple(dout)), before))
    for got, wanted in zip(_tuple(out), _tuple(want_out)):
        assert isinstance(got, array_type), f"the forward returned a {type(got).__name__}"
        assert rel_error(back(got), wanted) < TOL
    assert len(grads) == len(want)
    for got, wanted in zip(grads, want):
        assert isinstance(got, array_type), f"a gradient is a {type(got).__name__}"
        assert tuple(got.shape) == np.shape(wanted)
        assert rel_error(back(got), wanted) < TOL


def jax_jit(f):
    import jax

    return jax.jit(f)


# Each (positions, axes) a loop's steps may write at, in the order of the steps: every slot in
# order, backwards, some of them, apart, one slot twice, counted from the end, along a second
# axis at a fixed first, on two axes at once, none.
SLOT_WRITES = [
    ([0, 1, 2, 3, 4], (1,)),
    ([4, 3, 2, 1, 0], (1,)),
    ([1, 2, 3], (1,)),
    ([0, 2, 4], (1,)),
    ([1, 3, 1], (1,)),
    ([-1, -2], (1,)),
    ([(2, 0), (2, 1), (2, 2)], (0, 1)),
    ([(0, 1), (1, 2), (3, 0)], (0, 1)),
    ([], (1,)),
]


@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "dask", "cupy", "torch-cuda"])
def test_slots_does_what_the_writes_in_place_do(library: str, add: bool):
    """`_slots`, the helper that writes a loop's slots after it, gives what writing (or adding)
    each value into a copy of the array step by step gives, and leaves the array as it was."""
    from bpc.emit import _environment

    to, back, array_type = _library(library)
    namespace = {"array_api_compat": __import__("array_api_compat")}
    for template in ("xp.py.j2", "slots_xp.py.j2"):
        exec(_environment().get_template(template).render(), namespace)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 5, 3))
    for positions, axes in SLOT_WRITES:
        shape = tuple(n for i, n in enumerate(a.shape) if i not in axes)
        values = [rng.standard_normal(shape) for _ in positions]
        want = a.copy()
        for p, v in zip(positions, values):
            where = (slice(None),) * (axes[0]) + (p if isinstance(p, tuple) else (p,))
            want[where] = want[where] + v if add else v
        before = to(a)
        got = namespace["_slots"](
            before, [(p, to(v)) for p, v in zip(positions, values)], axes, add
        )
        assert isinstance(got, array_type)
        assert rel_error(back(got), want) < TOL, (positions, axes)
        assert rel_error(back(before), a) == 0, "the array before the loop was written"


@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "dask", "cupy", "torch-cuda"])
def test_times_above_is_the_product_with_the_mask(library: str, own: bool):
    """`_times_above(g, a, c, own)`, what the target writes for `g * (a > c)` (a ReLU's
    gradient; PyTorch's own kernel for it there), gives the product with the mask: with a
    broadcast mask and one of another dtype too (the product then), and on a PyTorch tensor
    that records its gradient; g's own array is written only where `own`."""
    from bpc.emit import _environment

    to, back, array_type = _library(library)
    namespace = {"array_api_compat": __import__("array_api_compat")}
    for template in ("xp.py.j2", "times_above_xp.py.j2"):
        exec(_environment().get_template(template).render(), namespace)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((5, 4))
    for a, c in [(rng.standard_normal((5, 4)), 0), (rng.standard_normal(4), 0.5)]:
        a[0, ...] = c  # (a tie: not above)
        for a_of in (a, a.astype(np.float32)):
            held = to(g.copy())
            got = namespace["_times_above"](held, to(a_of), c, own)
            assert isinstance(got, array_type)
            assert rel_error(back(got), g * (a_of > c)) == 0, (a.shape, a_of.dtype, c)
            if not own:
                assert rel_error(back(held), g) == 0, "g's array was written"
    if library in ("torch", "torch-cuda"):
        leaf = to(g.copy()).requires_grad_()
        got = namespace["_times_above"](leaf * 1, to(a), 0.5, own)
        got.sum().backward()
        assert rel_error(back(leaf.grad), (a > 0.5) + 0.0 * g) == 0


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "dask", "cupy", "torch-cuda"])
def test_maximum_of_a_number_is_the_standards(library: str):
    """`_maximum(x, c)`, what the target writes for `maximum(x, c)` of a number c (PyTorch's
    clamp_min there), gives the standard's maximum, NaN included, and leaves x as it was."""
    from bpc.emit import _environment

    to, back, array_type = _library(library)
    namespace = {"array_api_compat": __import__("array_api_compat")}
    for template in ("xp.py.j2", "maximum_xp.py.j2"):
        exec(_environment().get_template(template).render(), namespace)
    x = np.array([[-1.5, 0.0, 2.0], [np.nan, -0.0, 0.25]])
    for c in (0, 0.5, -1):
        held = to(x.copy())
        got = namespace["_maximum"](held, c)
        assert isinstance(got, array_type)
        np.testing.assert_array_equal(back(got), np.maximum(x, c))
        np.testing.assert_array_equal(back(held), x)
    ints = np.array([-2, 3])
    np.testing.assert_array_equal(back(namespace["_maximum"](to(ints), 0)), [0, 3])


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "dask", "cupy", "torch-cuda"])
def test_frozen_hands_over_an_output_that_writing_into_cannot_change(library: str):
    """`_frozen`, what `g_forward` returns an output the cache holds through: read-only on
    NumPy, a copy where arrays can be written but not made read-only (PyTorch, CuPy), the array
    itself where no one writes into arrays (JAX, Dask). Writing into what the caller gets then
    leaves the cache's array as it was."""
    from bpc.emit import _environment

    to, back, array_type = _library(library)
    namespace = {"array_api_compat": __import__("array_api_compat")}
    for template in ("xp.py.j2", "frozen_xp.py.j2"):
        exec(_environment().get_template(template).render(), namespace)
    a = np.arange(6.0).reshape(2, 3)
    held = to(a)
    got = namespace["_frozen"](held)
    assert isinstance(got, array_type) and rel_error(back(got), a) == 0
    if library == "numpy":
        assert got is held and not got.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            got += 1
    elif library in ("torch", "torch-cuda", "cupy"):
        got += 1
        assert rel_error(back(held), a) == 0, "writing into the output changed the cache's array"
    else:
        assert got is held


def test_the_cache_is_a_pytree_whose_numbers_stay_python_numbers():
    """`jax.jit` of `g_forward` returns the graph's cache class, its arrays JAX arrays and its
    numbers (the size T, the host's `sqrt(d)`) Python numbers, as eagerly: so `jax.jit` of
    `g_backward` can make arrays of those sizes; and the gradients agree with eager ones."""
    to, _, array_type = _library("jax")
    import jax

    source = """
graph scaled(Q: [T, d], K: [T, d]) -> a {
    a = tanh(Q @ K.T / sqrt(d))
}
"""
    module = module_from_text(compile_source(source, target=TARGET), f"bpc_t_{next(_count)}")
    rng = np.random.default_rng(0)
    Q, K = to(rng.standard_normal((3, 4))), to(rng.standard_normal((3, 4)))
    out, cache = module.scaled_forward(Q, K)
    jit_out, jit_cache = jax.jit(module.scaled_forward)(Q, K)
    assert type(jit_cache) is type(cache) is module.ScaledCache
    assert [type(v) for v in jit_cache if not isinstance(v, array_type)] == [
        type(v) for v in cache if not isinstance(v, array_type)
    ]
    assert any(type(v) is float for v in cache) and any(type(v) is int for v in cache)
    dout = to(rng.standard_normal((3, 3)))
    want = module.scaled_backward(dout, cache)
    for got, wanted in zip(jax.jit(module.scaled_backward)(dout, jit_cache), want):
        assert rel_error(np.asarray(got), np.asarray(wanted)) < TOL
    assert rel_error(np.asarray(jit_out), np.asarray(out)) < TOL


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


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "cupy", "torch-cuda"])
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
    """No `out=` and no slot store in a graph's functions (the goldens' sources, and the loops
    and convolutions of tests/golden/), and an augmented assignment (`t += b`, which JAX and
    Dask rebind) only of a name assigned before in its own block (the function's, or a loop
    body's: a value of that step), never of a parameter: nothing writes into an array of the
    caller's, nor into one a library cannot write, nor into a value an earlier step made."""
    import ast

    from tests.test_golden import XP_PAIRS

    def block(statements, params):
        assigned = set()
        for statement in statements:
            if isinstance(statement, ast.Assign):
                assigned |= {t.id for t in statement.targets if isinstance(t, ast.Name)}
            if isinstance(statement, ast.AugAssign):
                name = statement.target.id
                assert name in assigned and name not in params, ast.unparse(statement)
            if isinstance(statement, ast.For):
                block(statement.body, params)

    loops_and_convolutions = [ROOT / "tests" / "golden" / f"{n}.bp" for n in ("loops", "conv")]
    for source in [s for s, _ in XP_PAIRS] + loops_and_convolutions:
        tree = ast.parse(compile_source(source.read_text(), source.name, target=TARGET))
        functions = [f for f in tree.body if isinstance(f, ast.FunctionDef)]
        graph_functions = [f for f in functions if not f.name.startswith("_")]
        assert graph_functions
        for f in graph_functions:
            block(f.body, {a.arg for a in f.args.args})
        for node in (n for f in graph_functions for n in ast.walk(f)):
            if isinstance(node, ast.Call):
                assert all(k.arg != "out" for k in node.keywords), ast.unparse(node)
            if isinstance(node, ast.Assign):
                assert not isinstance(node.targets[0], ast.Subscript), ast.unparse(node)


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


# ---------------------------------------------------------------------------------------------
# Dask on a cluster of worker processes


def _cluster():
    if not (installed("dask") and installed("distributed")):
        pytest.skip("dask[array,distributed] is not installed: the Dask cluster test needs it")
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, Client(cluster)


def test_dask_cluster_gradient_of_two_million_rows(tmp_path):
    """The two-layer net's mean loss over 2,000,000 rows made on the cluster (`da.random`,
    chunked along the batch): its gradients from the array-api module's `two_layer_grad` on
    Dask arrays, computed by two worker processes, agree with the numpy module's, run chunk by
    chunk here and weighted by the chunks' rows: the test's process only ever holds one chunk,
    and the cluster sends it the gradients alone."""
    import dask
    import dask.array as da

    from bpc import load

    source = ROOT / "examples" / "two_layer.bp"
    module = load(source, cache=tmp_path, target=TARGET)
    reference = load(source, cache=tmp_path)
    N, D, H, C, chunk, reg = 2_000_000, 8, 16, 5, 500_000, 1e-3
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s) * 0.3 for s in ((D, H), (H,), (H, C), (C,))]
    cluster, client = _cluster()
    with cluster, client:
        X = da.random.default_rng(1).standard_normal((N, D), chunks=(chunk, D))
        y = da.random.default_rng(2).integers(0, C, N, chunks=chunk)
        value, grads = module.two_layer_grad(X, y, *map(da.from_array, weights), reg)
        assert isinstance(value, da.Array) and all(isinstance(g, da.Array) for g in grads)
        value, *grads = dask.compute(value, *grads)
        want_value, want = 0.0, [np.zeros_like(w) for w in weights]
        for i in range(X.numblocks[0]):
            # (made again here, in this process, one chunk at a time)
            Xi, yi = dask.compute(X.blocks[i], y.blocks[i], scheduler="synchronous")
            loss, chunk_grads = reference.two_layer_grad(Xi, yi, *weights, 0.0)
            share = len(Xi) / N
            want_value += share * loss
            want = [w + share * g for w, g in zip(want, chunk_grads)]
    W1, _, W2, _ = weights
    want_value += 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    want[0], want[2] = want[0] + reg * W1, want[2] + reg * W2
    assert rel_error(value, want_value) < 1e-10
    for got, wanted in zip(grads, want):
        assert rel_error(got, wanted) < 1e-10


def test_train_dask_example_runs_briefly(capsys):
    if not (installed("dask") and installed("distributed")):
        pytest.skip("dask[array,distributed] is not installed: examples/train_dask.py needs it")
    spec = importlib.util.spec_from_file_location("train_dask", ROOT / "examples" / "train_dask.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    loss = example.main(["--rows", "20000", "--chunk", "5000", "--epochs", "2", "--hidden", "8"])
    out = capsys.readouterr().out
    assert "dashboard: http" in out and "2/2 epochs" in out
    assert np.isfinite(loss)


def test_cupy_on_a_gpu(tmp_path):
    """The two-layer net's gradients on CuPy arrays, on a GPU, in float32 and float64, agree
    with NumPy's (every op case and loop model runs on CuPy too, above)."""
    to, back, array_type = _library("cupy")
    from bpc import load

    source = ROOT / "examples" / "two_layer.bp"
    module, reference = load(source, cache=tmp_path, target=TARGET), load(source, cache=tmp_path)
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        args = [rng.standard_normal((64, 8)).astype(dtype), rng.integers(0, 5, 64)]
        args += [rng.standard_normal(s).astype(dtype) for s in ((8, 16), (16,), (16, 5), (5,))]
        value, grads = module.two_layer_grad(*map(to, args), 1e-3)
        want_value, want = reference.two_layer_grad(*args, 1e-3)
        assert isinstance(value, array_type) and all(isinstance(g, array_type) for g in grads)
        assert value.dtype == dtype and all(g.dtype == dtype for g in grads)
        assert rel_error(back(value), want_value) < tol
        for got, wanted in zip(grads, want):
            assert rel_error(back(got), wanted) < tol


def test_the_docs_show_the_module_the_target_writes():
    """docs/targets.md's ```python blocks are excerpts of examples/two_layer.bp or
    examples/rnn.bp compiled for the array-api target."""
    doc = (ROOT / "docs" / "targets.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", doc, re.S | re.M)
    modules = [
        compile_source((ROOT / "examples" / f"{name}.bp").read_text(), target=TARGET)
        for name in ("two_layer", "rnn")
    ]
    assert len(blocks) >= 2
    for block in blocks:
        assert any(block in module for module in modules), block


def test_bench_targets_smoke():
    """bench/targets.py runs (tiny sizes, one Dask worker): every row it can make is made."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "targets.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "| NumPy | array-api module | numpy target |" in run.stdout
    assert "| NumPy, a loop (rnn.bp," in run.stdout
    if installed("jax"):
        assert "| JAX (float32, CPU) |" in run.stdout or "| JAX (float32, GPU) |" in run.stdout
