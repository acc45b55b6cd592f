"""Golden files: the emitted code of each source, byte for byte.

`tests/golden/NAME.bp` compiles to `tests/golden/NAME.py`, and `examples/NAME.bp` to
`generated/NAME.py`. Refresh both after an intended change with `pytest --update-golden`. A golden
source's first line may ask for flags: `# bpc compile --hvp`.
"""

from __future__ import annotations

import difflib
import textwrap
from pathlib import Path

import black
import pytest

from bpc import compile_source, emit

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(p, p.with_suffix(".py")) for p in sorted((ROOT / "tests" / "golden").glob("*.bp"))] + [
    (p, ROOT / "generated" / (p.stem + ".py")) for p in sorted((ROOT / "examples").glob("*.bp"))
]


@pytest.mark.parametrize(
    "source, expected", PAIRS, ids=[str(s.relative_to(ROOT)) for s, _ in PAIRS]
)
def test_emitted_code_matches_golden_file(source: Path, expected: Path, update_golden: bool):
    text = source.read_text()
    _compare(compile_source(text, source.name, **flags(text)), expected, update_golden)


# The array-api target's modules of a few sources (bpc compile --target array-api).
XP_PAIRS = [
    (source, ROOT / "tests" / "golden" / "array_api" / (source.stem + ".py"))
    for source in [
        ROOT / "tests" / "golden" / f"{name}.bp" for name in ("features", "loops", "conv")
    ]
    + [ROOT / "examples" / f"{name}.bp" for name in ("two_layer", "attention", "normalization")]
]


@pytest.mark.parametrize(
    "source, expected", XP_PAIRS, ids=[str(s.relative_to(ROOT)) for s, _ in XP_PAIRS]
)
def test_array_api_code_matches_golden_file(source: Path, expected: Path, update_golden: bool):
    actual = compile_source(source.read_text(), source.name, target="array-api")
    _compare(actual, expected, update_golden)


def _compare(actual: str, expected: Path, update_golden: bool) -> None:
    if update_golden:
        expected.parent.mkdir(exist_ok=True)
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


def flags(text: str) -> dict[str, bool]:
    """The flags a golden source asks for on its first line, `# bpc compile --jvp --hvp`."""
    first = text.splitlines()[0] if text else ""
    if not first.startswith("# bpc compile"):
        return {}
    return {flag.removeprefix("--"): True for flag in first.split()[3:]}


def test_every_generated_module_has_its_example():
    sources = {p.stem for p in (ROOT / "examples").glob("*.bp")}
    modules = {p.stem for p in (ROOT / "generated").glob("*.py")}
    assert modules == sources, "generated/ must hold exactly the compiled examples/"


def test_compiling_twice_gives_identical_bytes():
    for source, _ in PAIRS:
        text = source.read_text()
        kw = flags(text)
        assert compile_source(text, source.name, **kw) == compile_source(text, source.name, **kw)


@pytest.mark.parametrize("count", [1, 2, 5, 12, 15, 16, 19, 40])
@pytest.mark.parametrize("width", [2, 4, 9])
def test_long_tuples_are_broken_the_way_black_breaks_them(count, width):
    """The cache's tuples are written in black's layout by the emitter itself (black takes
    seconds on a tuple of thousands of names)."""
    names = [f"n{i:0{width}d}" for i in range(count)]
    unpacked = [emit._unpack(names, source) for source in ("cache", "_cached(cache, FCache)")]
    for line in (emit._pack("cache", names), *unpacked):
        text = "def f(cache):\n" + textwrap.indent(line, "    ") + "\n"
        assert black.format_str(text, mode=black.Mode()) == text
