"""Golden files: the emitted code of each source, byte for byte.

`tests/golden/NAME.bp` compiles to `tests/golden/NAME.py`, and `examples/NAME.bp` to
`generated/NAME.py`. Refresh both after an intended change with `pytest --update-golden`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from bpc import compile_source

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(p, p.with_suffix(".py")) for p in sorted((ROOT / "tests" / "golden").glob("*.bp"))] + [
    (p, ROOT / "generated" / (p.stem + ".py")) for p in sorted((ROOT / "examples").glob("*.bp"))
]


@pytest.mark.parametrize(
    "source, expected", PAIRS, ids=[str(s.relative_to(ROOT)) for s, _ in PAIRS]
)
def test_emitted_code_matches_golden_file(source: Path, expected: Path, update_golden: bool):
    actual = compile_source(source.read_text(), source.name)
    if update_golden:
        expected.write_text(actual)
        return
    assert expected.exists(), f"{expected} is missing; run pytest --update-golden"
    wanted = expected.read_text()
    if actual != wanted:
        diff = "".join(
            difflib.unified_diff(
                wanted.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(expected.relative_to(ROOT)),
                tofile="emitted now",
            )
        )
        pytest.fail(f"emitted code differs from {expected.name} (pytest --update-golden):\n{diff}")


def test_every_generated_module_has_its_example():
    sources = {p.stem for p in (ROOT / "examples").glob("*.bp")}
    modules = {p.stem for p in (ROOT / "generated").glob("*.py")}
    assert modules == sources, "generated/ must hold exactly the compiled examples/"


def test_compiling_twice_gives_identical_bytes():
    for source, _ in PAIRS:
        text = source.read_text()
        assert compile_source(text, source.name) == compile_source(text, source.name)
