"""What keeps `bpc compile` fast, checked without timing anything (bench/compile_time.py times
it): the heavy libraries are imported only by what needs them, and the parser's tables come
from a cache on disk that is never wrong (a changed grammar, a corrupt or unwritable cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import lark
import pytest

import bpc
import bpc.files
import bpc.parse
from bpc.parse import _cache_file, _parser, parse

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "examples").glob("*.bp")) + sorted(
    (ROOT / "tests" / "golden").glob("*.bp")
)
GRAMMAR = resources.files("bpc.grammar").joinpath("bp.lark").read_text()


def _imported_after(code: str, cache: Path) -> set[str]:
    """Which of black, lark and jinja2 a fresh process has imported after running `code`."""
    check = f"{code}\nimport sys\nprint(*sorted({{'black', 'lark', 'jinja2'}} & set(sys.modules)))"
    env = {**os.environ, "BPC_CACHE_DIR": str(cache)}
    run = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    return set(run.stdout.split())


def test_importing_the_command_line_loads_no_heavy_library(tmp_path):
    assert _imported_after("import bpc.cli", tmp_path) == set()


def test_formatting_needs_lark_alone(tmp_path):
    code = (
        f"import bpc.cli\nbpc.cli.main(['fmt', '--check', {str(ROOT / 'examples' / 'seed.bp')!r}])"
    )
    assert _imported_after(code, tmp_path) == {"lark"}


def test_black_is_imported_only_for_a_line_too_long(tmp_path):
    """The seed's lines all fit once its argument key is exploded by the emitter; a call with
    arguments too long for a line needs black."""
    compile_seed = (
        "import bpc.cli\n"
        f"bpc.cli.main(['compile', {str(ROOT / 'examples' / 'seed.bp')!r}, "
        f"'-o', {str(tmp_path / 'seed.py')!r}])"
    )
    assert _imported_after(compile_seed, tmp_path) == {"lark", "jinja2"}
    assert (tmp_path / "seed.py").read_text() == (ROOT / "generated" / "seed.py").read_text()
    mlp = (ROOT / "examples" / "mlp.bp").read_text()
    code = f"import bpc\nbpc.compile_source({mlp!r}, 'mlp.bp')"
    assert _imported_after(code, tmp_path) == {"lark", "jinja2", "black"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and a parser that `_parser` builds or loads anew."""
    monkeypatch.setenv("BPC_CACHE_DIR", str(tmp_path / "cache"))
    _parser.cache_clear()
    yield tmp_path / "cache"
    _parser.cache_clear()


class _Unbuildable(lark.Lark):
    """A Lark whose tables cannot be built, only loaded (`Lark.load` does not call __init__)."""

    def __init__(self, *args, **kwargs):
        raise AssertionError("the parser was built, not loaded from the cache")


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "parser").iterdir())


def test_the_parser_is_loaded_from_the_cache(cache, monkeypatch):
    built = _parser()
    (entry,) = _entries(cache)
    assert entry == _cache_file(GRAMMAR)
    _parser.cache_clear()
    monkeypatch.setattr(bpc.parse, "Lark", _Unbuildable)
    loaded = _parser()
    assert loaded is not built
    for source in SOURCES:
        text = source.read_text()
        assert parse(text) == bpc.parse._ToSyntax().transform(built.parse(text)), source.name
        # bpc fmt reads the tokens, comments included
        assert list(loaded.lex(text, dont_ignore=True)) == list(built.lex(text, dont_ignore=True))


def test_a_changed_grammar_lark_or_python_is_another_entry(monkeypatch):
    here = _cache_file(GRAMMAR)
    assert _cache_file(GRAMMAR + "\n// one more line\n") != here
    monkeypatch.setattr(lark, "__version__", "0.0.1")
    assert _cache_file(GRAMMAR) != here
    monkeypatch.undo()
    monkeypatch.setattr(sys, "version", "3.99.0")
    assert _cache_file(GRAMMAR) != here


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"",  # emptied
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # one bit flipped
        lambda data: b"# bpc cache entry sha256=" + b"0" * 64 + b"\n" + data.partition(b"\n")[2],
    ],
    ids=["truncated", "empty", "flipped", "wrong-hash"],
)
def test_a_damaged_entry_is_rebuilt_and_rewritten(cache, damage):
    _parser()
    (entry,) = _entries(cache)
    entry.write_bytes(damage(entry.read_bytes()))
    assert bpc.parse._cached(entry) is None
    _parser.cache_clear()
    text = (ROOT / "examples" / "seed.bp").read_text()
    assert parse(text).definitions  # parsed by a parser built anew
    assert isinstance(bpc.parse._cached(entry), lark.Lark)  # rewritten whole


def test_an_entry_that_matches_its_hash_but_does_not_load_is_rebuilt(cache):
    """An entry whose hash is right but whose pickle Lark cannot read (another Lark's format)."""
    _parser()
    (entry,) = _entries(cache)
    bpc.files.write_entry(entry, b"not a pickle")
    assert bpc.parse._cached(entry) is None
    _parser.cache_clear()
    assert parse("graph f(x: [N]) -> y wrt x {\n    y = sum(x * x)\n}\n").definitions
    assert isinstance(bpc.parse._cached(entry), lark.Lark)  # rewritten whole


def test_an_unusable_cache_directory_builds_the_parser_in_memory(tmp_path, monkeypatch):
    """The cache directory is a file (what a read-only home gives too: mkdir fails), or there is
    no home to put it in."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BPC_CACHE_DIR", str(blocker))
    _parser.cache_clear()
    try:
        assert parse((ROOT / "examples" / "seed.bp").read_text()).definitions
        assert blocker.read_text() == ""

        def no_home():
            raise RuntimeError("Could not determine home directory.")

        monkeypatch.setattr(bpc.parse, "cache_dir", no_home)
        _parser.cache_clear()
        assert _cache_file(GRAMMAR) is None
        assert parse((ROOT / "examples" / "seed.bp").read_text()).definitions
    finally:
        _parser.cache_clear()


def test_an_unwritable_cache_directory_builds_the_parser_in_memory(cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bpc.files, "write_atomic", refuse)
    assert parse((ROOT / "examples" / "seed.bp").read_text()).definitions
    assert not (cache / "parser").exists() or _entries(cache) == []


def test_processes_filling_the_cache_at_once_leave_one_whole_entry(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, "BPC_CACHE_DIR": str(cache)}
    source = str(ROOT / "examples" / "seed.bp")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bpc", "compile", source, "-o", str(tmp_path / f"{i}.py")],
            env=env,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    (entry,) = _entries(cache)  # and no temporary file left beside it
    monkeypatch.setenv("BPC_CACHE_DIR", str(cache))
    assert entry == _cache_file(GRAMMAR)
    assert isinstance(bpc.parse._cached(entry), lark.Lark)


@pytest.mark.parametrize("count", [2, 3, 7])
@pytest.mark.parametrize("width", [1, 12, 55, 56])  # 55: a 79-character item, the most that fits
def test_the_argument_key_is_laid_out_as_black_lays_it_out(count, width):
    """The emitter explodes `key = (...)` of a checked function itself, one item a line, where
    each item fits on a line of its own (with a 56-letter name, `getattr(name, "shape", None)`
    does not, and black breaks it); the module is black's either way."""
    import black

    names = [f"{'p' * (width - 1)}{chr(97 + i)}" for i in range(count)]
    params = ", ".join(f"{n}: [N]" for n in names)
    total = " + ".join(f"sum({n} * {n})" for n in names)
    text = f"graph f({params}) -> y wrt {', '.join(names)} {{\n    y = {total}\n}}\n"
    module = bpc.compile_source(text, "f.bp")
    assert black.format_str(module, mode=black.Mode()) == module


def test_the_process_benchmark_runs(capsys):
    """bench/compile_time.py --processes-only: its tables, not its numbers."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import compile_time
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert compile_time.main(["--processes-only", "--cli-repeats", "1"]) == 0
    out = capsys.readouterr().out
    for command in ("python -c pass", "import bpc.cli", "import bpc.pipeline"):
        assert f"| `{command}` | " in out
    assert "| `bpc compile examples/seed.bp` | " in out
    assert "| bpc.expr | " in out and "| lark | " in out and "load average" in out
    assert "| operations (IR) |" not in out  # the graphs of growing size are left out


def test_the_templates_are_compiled_once_and_kept(cache, monkeypatch):
    """The second environment renders from the cache without compiling; a damaged entry is
    compiled again; a template whose text changed is never rendered from its old code."""
    import jinja2

    from bpc import emit

    module = (ROOT / "generated" / "seed.py").read_text()
    emit._environment.cache_clear()
    try:
        seed = (ROOT / "examples" / "seed.bp").read_text()
        assert bpc.compile_source(seed, "seed.bp") == module
        entries = sorted((cache / "templates").rglob("*.cache"))
        assert len(entries) == 2  # module.py.j2 and runtime.py.j2
        emit._environment.cache_clear()
        with monkeypatch.context() as m:
            m.setattr(jinja2.Environment, "compile", _not_compiled)
            assert bpc.compile_source(seed, "seed.bp") == module
        for entry in entries:
            entry.write_bytes(entry.read_bytes()[:-10])
        emit._environment.cache_clear()
        assert bpc.compile_source(seed, "seed.bp") == module
        assert all(bpc.files.read_entry(e) is not None for e in entries)  # rewritten whole
    finally:
        emit._environment.cache_clear()
    templates = emit._template_cache(jinja2)
    for text in ("one {{ x }}", "two {{ x }}"):
        env = jinja2.Environment(loader=jinja2.DictLoader({"t": text}), bytecode_cache=templates)
        assert env.get_template("t").render(x=1) == text.replace("{{ x }}", "1")


def _not_compiled(*args, **kwargs):
    raise AssertionError("a template was compiled, not loaded from the cache")


def test_an_unwritable_cache_compiles_the_templates_each_time(tmp_path, monkeypatch):
    from bpc import emit

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BPC_CACHE_DIR", str(blocker))
    emit._environment.cache_clear()
    try:
        seed = (ROOT / "examples" / "seed.bp").read_text()
        assert bpc.compile_source(seed, "seed.bp") == (ROOT / "generated" / "seed.py").read_text()
    finally:
        emit._environment.cache_clear()
