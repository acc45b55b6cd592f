"""Helpers shared by the tests: compile bp source and import the module it becomes."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

from bpc import compile_source
from bpc.diagnostics import CompileError, render
from bpc.loader import module_from_text

_count = itertools.count()


def load(source: str, name: str | None = None, sizes: dict | None = None) -> types.ModuleType:
    """Compile `source` (for the expected `sizes`, when given) and import the generated module
    (without touching the disk)."""
    name = name or f"bpc_test_module_{next(_count)}"
    return module_from_text(compile_source(source, f"{name}.bp", sizes=sizes), name)


def numeric_grad(f, args: list[np.ndarray], i: int, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar function f(*args) with respect to args[i], in float64."""
    x = np.array(args[i], dtype=np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f(*args[:i], x.copy(), *args[i + 1 :])
        flat[k] = old - eps
        down = f(*args[:i], x.copy(), *args[i + 1 :])
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad


def rel_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def assert_error_at(sig: str, stmt: str, under_caret: str, message: str) -> None:
    """`graph g(sig) -> y { stmt }` is a compile error whose message contains `message`, on line
    2, with the caret under `under_caret`."""
    source = f"graph g({sig}) -> y {{\n    {stmt}\n}}\n"
    with pytest.raises(CompileError) as e:
        compile_source(source, "model.bp")
    first, shown, caret = render(e.value.diagnostics[0], "model.bp", source).splitlines()
    assert first.startswith("model.bp:2:"), first
    assert message in first, first
    col = int(first.split(":")[2])
    assert shown[4 + col - 1 :].startswith(under_caret), (first, shown)
    assert caret == " " * (4 + col - 1) + "^"
