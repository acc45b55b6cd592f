"""The IR itself: the forward/backward split a compiled graph records."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpc.ir import reachable
from bpc.pipeline import compile_graphs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bp"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_forward_is_the_parameters_and_what_the_outputs_read(path: Path):
    for c in compile_graphs(path.read_text()):
        for g in filter(None, (c.pair, c.grad)):
            assert g.forward == reachable(g.outputs) | set(g.inputs)
            assert g.forward is g.forward  # computed once
            # the forward never reads the backward
            assert all(a in g.forward for n in g.forward for a in n.args)
            assert set(g.cache) <= g.forward
