"""What is true of an operation lives on its definition (`OpDef`), and the facts agree with
one another: the passes read them instead of keeping lists of operation names."""

from __future__ import annotations

import math

import pytest

import bpc.ops  # noqa: F401 - fills the registry
from bpc.ir import OPS

NAMES = sorted(OPS)


@pytest.mark.parametrize("name", NAMES)
def test_facts_agree(name):
    op = OPS[name]
    if op.leaf:
        assert not op.fresh and op.adjoint is None and not op.elementwise
    if op.read_only:
        assert op.view is True, "a read-only result is a view"
    if op.augmented or op.ufunc:
        assert op.fresh, "only new arrays are worked in place"
        assert op.elementwise or not op.augmented, "`a op= b` is elementwise"
        assert not (op.augmented and op.ufunc)
    if op.commutes:
        assert op.augmented
    if op.elementwise:
        assert op.promotes
    if op.expand is not None:
        assert op.adjoint is not None, "autodiff sees a composite whole"
    if op.own_dtype:
        assert op.fresh and not op.view, "it makes its array itself"


def test_in_place_forms():
    assert {n: op.augmented for n, op in OPS.items() if op.augmented} == {
        "add": "+",
        "sub": "-",
        "mul": "*",
        "div": "/",
    }
    assert {n for n, op in OPS.items() if op.commutes} == {"add", "mul"}
    assert {"exp", "log", "sqrt", "tanh", "relu", "maximum"} <= {
        n for n, op in OPS.items() if op.ufunc
    }
    assert not OPS["softplus"].ufunc, "a composite: its expansion's operations work in place"
    # (a helper that takes `out=` for its first operand, of the result's shape)
    assert {n for n, op in OPS.items() if op.ufunc and not op.elementwise} == {"add_along"}


def test_folds_compute_what_the_operations_do():
    assert OPS["add"].fold(2, 3) == 5 and OPS["div"].fold(1, 4) == 0.25
    assert OPS["neg"].fold(2) == -2 and OPS["lt"].fold(1, 2) is True
    assert OPS["exp"].fold(0.0) == 1.0 and OPS["tanh"].fold(0.5) == math.tanh(0.5)
    assert OPS["sigmoid"].fold is None  # a composite: its expansion's operations fold
    assert OPS["erf"].fold(0.5) == math.erf(0.5)


def test_composites_expand():
    assert {n for n, op in OPS.items() if op.expand} == {
        "logsumexp",
        "softmax",
        "log_softmax",
        "cross_entropy",
        "gelu",
        "mish",
        "elu",
        "huber",
        "conv2d",
        "softplus",
    }


def test_own_dtypes():
    """The operations that make float arrays of the graph's dtype themselves."""
    assert {n for n, op in OPS.items() if op.own_dtype} == {
        "zeros",
        "ones",
        "full",
        "stack",
        "empty",
    }


def test_window_views():
    """The strided window view is a read-only view of its argument (np.lib.stride_tricks
    .sliding_window_view); the in-place planner and the optimizer read that off the op."""
    op = OPS["windows"]
    assert op.view and op.read_only
