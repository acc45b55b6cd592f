"""`pytest --update-golden` rewrites the golden files and generated/ instead of comparing.

Every graph the tests compile goes through `bpc.verify.compile_graphs`, which checks the IR after
each stage of the pipeline (`bpc.verify.verify`); `pytest --no-verify` compiles without the checks.
The number of graphs verified is printed at the end of the run.
"""

import functools
import sys

import pytest

import bpc.check
import bpc.explain
import bpc.pipeline
import bpc.stats
from bpc import verify


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.py and generated/*.py from their sources instead of comparing",
    )
    parser.addoption(
        "--no-verify",
        action="store_true",
        help="compile without checking the IR after every stage (bpc.verify)",
    )


def pytest_configure(config):
    """Before the test modules are imported (some bind `compile_graphs` by name): every module of
    bpc that calls the pipeline's `compile_graphs` calls the verifying one instead."""
    if config.getoption("--no-verify"):
        return
    original = bpc.pipeline.compile_graphs

    @functools.wraps(original)
    def compile_graphs(text, warnings=None, sizes=None, **orders):
        return verify.compile_graphs(text, warnings, sizes, **orders)

    for name, module in list(sys.modules.items()):
        if name.startswith("bpc.") and getattr(module, "compile_graphs", None) is original:
            module.compile_graphs = compile_graphs


def pytest_terminal_summary(terminalreporter):
    if verify.COUNTS:
        counts = verify.COUNTS
        terminalreporter.write_line(
            f"bpc.verify: {counts['infer_shapes']} typed graphs ({counts['build_ir']} built from "
            f"source) verified after every stage, {sum(counts.values())} checks"
        )


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")
