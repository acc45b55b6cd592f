"""Highlighting bp: the Pygments lexer (`bpc.highlight`, alias `bpc`), the TextMate grammar for
editors (editors/bp.tmLanguage.json, run by a port of VS Code's engine on Oniguruma), and the
colours of `bpc explain` on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import markdown
import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String

from bpc import cli
from bpc.build import BUILTINS
from bpc.color import use_color
from bpc.highlight import BpLexer
from bpc.ops import CONSTANTS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GRAMMAR = ROOT / "editors" / "bp.tmLanguage.json"
VSCODE = ROOT / "editors" / "vscode"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)  # as tests/test_docs.py reads them


def _files() -> list[Path]:
    return sorted(
        [*(ROOT / "examples").glob("*.bp"), *(ROOT / "tests" / "golden").glob("*.bp")]
        + [*(ROOT / "tests" / "regressions").glob("*.bp")]
    )


def _doc_blocks() -> dict[str, str]:
    """Every ```bpc block of the docs and the README, by file and line."""
    blocks = {}
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == "bpc":
                line = text.count("\n", 0, m.start()) + 1
                blocks[f"{doc.relative_to(ROOT)}:{line}"] = m.group(2)
    return blocks


# A loop, nested loops and slot writes; `for` and `in` are keywords in a loop's header only
LOOP_SAMPLE = """\
graph rnn(x: [N, T, D], h0: [N, H], Wx: [D, H], in: [H]) -> (hs, y) {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {  # over time
        h = tanh(x[:, t] @ Wx + in)
        hs[:, T - 1 - t] = h
        for	k in range(1, 2*T) {
            h = h * 0.5
        }
    }
    y = sum(hs) + sum(h) * in
}
"""

SOURCES = {str(p.relative_to(ROOT)): p.read_text() for p in _files()} | _doc_blocks()
SOURCES["LOOP_SAMPLE"] = LOOP_SAMPLE


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in BpLexer().get_tokens(text) if v.strip()]


# ---------------------------------------------------------------------------------------------
# The Pygments lexer


@pytest.mark.parametrize("name", SOURCES)
def test_no_error_tokens(name):
    errors = [(t, v) for t, v in BpLexer().get_tokens(SOURCES[name]) if t in Error]
    assert errors == []


def test_the_sources_include_the_examples_and_the_docs():
    assert {"examples/seed.bp", "tests/golden/features.bp"} <= set(SOURCES)
    by_doc = {name.split(":")[0] for name in SOURCES}
    assert {"docs/language.md", "docs/errors.md", "docs/layers.md", "README.md"} <= by_doc


SAMPLE = """\
# a comment
fn affine(x: [N, D], w: [D, 4*H]) -> out {
    out = x @ w
}

graph g(x: [N, D], y: int[N], w: [D, 4*H], m: bool[N // 2,
                                                    K]) -> loss wrt w {
    s = einsum("nd,dh->nh", x, w) ** 2  # squared
    loss = mean(cross_entropy(affine(x, w), y)) + 1e-3 * sum(w.T) + inf * 0.5
    summary = where(true, s[0, 1:], -1)
}
"""


def test_token_classes():
    tokens = _tokens(SAMPLE)
    expected = [
        (Comment.Single, "# a comment"),
        (Comment.Single, "# squared"),
        (Keyword.Declaration, "fn"),
        (Keyword.Declaration, "graph"),
        (Name.Function, "affine"),
        (Name.Function, "g"),
        (Keyword, "wrt"),
        (Keyword.Constant, "true"),
        (Keyword.Type, "int"),
        (Keyword.Type, "bool"),
        (Name.Variable, "N"),
        (Name.Variable, "H"),
        (Name.Variable, "K"),  # a type over two lines
        (Name.Builtin, "einsum"),
        (Name.Builtin, "cross_entropy"),
        (Name.Builtin, "where"),
        (Name.Builtin.Pseudo, "inf"),
        (Name.Attribute, "T"),
        (Name, "summary"),  # not `sum` and `mary`
        (Name, "loss"),
        (String.Double, '"nd,dh->nh"'),
        (Number.Integer, "4"),
        (Number.Float, "1e-3"),
        (Number.Float, "0.5"),
        (Operator, "@"),
        (Operator, "**"),
        (Operator, "//"),
        (Punctuation, "->"),
        (Punctuation, "["),
    ]
    assert [e for e in expected if e not in tokens] == []
    assert (Punctuation, ":") in tokens and (Name.Variable, "s") not in tokens  # s[0, 1:] indexes


def test_loops():
    tokens = _tokens(LOOP_SAMPLE)
    assert tokens.count((Keyword, "for")) == 2 and tokens.count((Keyword, "in")) == 2
    assert tokens.count((Name, "in")) == 3, "a parameter named in is a name"
    assert tokens.count((Name.Builtin, "range")) == 2
    assert [(Keyword, "for"), (Name, "t"), (Keyword, "in"), (Name.Builtin, "range")] == tokens[
        tokens.index((Keyword, "for")) :
    ][:4]
    # elsewhere `for` is a name, as the grammar has it (`y = for + 1`, not `for = ...`)
    assert (Name, "for") in _tokens("y = for + 1")
    assert (Name, "format") in _tokens("for t in range(T) {\n    y = format\n}")


def test_every_builtin_of_the_registry_is_a_builtin():
    for name in sorted(BUILTINS):
        assert (Name.Builtin, name) in _tokens(f"y = {name}(x)"), name
    for name in CONSTANTS:
        assert (Name.Builtin.Pseudo, name) in _tokens(f"y = {name}"), name


def test_pygments_finds_the_lexer_through_the_entry_point():
    (point,) = [e for e in entry_points(group="pygments.lexers") if e.name == "bpc"]
    assert point.value == "bpc.highlight:BpLexer"
    assert type(get_lexer_by_name("bpc")) is BpLexer
    assert type(get_lexer_for_filename("model.bp")) is BpLexer
    # every bp block of the docs is fenced with the alias, which MkDocs and Sphinx look up
    for doc in DOCS:
        fences = {lang for lang, _ in FENCE.findall(doc.read_text())}
        assert "bp" not in fences, f"{doc.name}: fence bp code as ```bpc (```bp is Android.bp)"


def test_a_markdown_build_highlights_the_bp_blocks():
    """Python-Markdown, as MkDocs runs it, asks Pygments for each block's lexer by its name."""
    total = 0
    for doc in DOCS:
        html = markdown.markdown(
            doc.read_text(),
            extensions=["fenced_code", "codehilite"],
            extension_configs={"codehilite": {"guess_lang": False}},
        )
        blocks = [body for lang, body in FENCE.findall(doc.read_text()) if lang == "bpc"]
        graphs = sum(_tokens(body).count((Keyword.Declaration, "graph")) for body in blocks)
        assert html.count('<span class="kd">graph</span>') == graphs, doc.name
        total += graphs
    assert total > 50


def test_pygmentize(tmp_path):
    run = subprocess.run(
        [BIN / "pygmentize", "-l", "bpc", "-f", "html", ROOT / "examples" / "seed.bp"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert '<span class="kd">graph</span>' in run.stdout
    assert '<span class="nb">sum</span>' in run.stdout
    assert '<span class="c1"># The worked example' in run.stdout
    (tmp_path / "model.bp").write_text(SAMPLE)
    run = subprocess.run([BIN / "pygmentize", "-N", tmp_path / "model.bp"], capture_output=True)
    assert run.stdout.decode().strip() == "bpc"


def test_pygments_can_import_the_lexer_without_loading_the_compiler():
    """Pygments imports every plugin to find a lexer by file name, for any file."""
    code = (
        "import sys\n"
        "from pygments.lexers import get_lexer_for_filename\n"
        "get_lexer_for_filename('x.py')\n"
        "assert 'bpc.highlight' in sys.modules\n"
        "assert not {'bpc.build', 'bpc.pipeline', 'numpy'} & set(sys.modules), 'loaded'\n"
        "from pygments.token import Name\n"
        "from bpc.highlight import BpLexer\n"
        "assert (Name.Builtin, 'sum') in BpLexer().get_tokens('y = sum(x)')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_compiler_does_not_import_pygments():
    code = (
        "import sys, bpc, bpc.cli\n"
        "bpc.compile_source(open(sys.argv[1]).read())\n"
        "assert bpc.cli.main(['explain', '--color', 'always', sys.argv[1]]) == 0\n"
        "assert not [m for m in sys.modules if m.startswith('pygments')], 'pygments imported'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, ROOT / "examples" / "seed.bp"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------------------------------------
# The TextMate grammar, run by textmate-grammar-python (vscode-textmate's algorithm, Oniguruma)

# A token's kind, to compare the two: Pygments' token types, and TextMate's scopes
PYGMENTS_KINDS = [
    (Comment, "comment"),
    (Keyword.Type, "dtype"),
    (Keyword.Constant, "constant"),
    (Keyword, "keyword"),
    (Name.Builtin.Pseudo, "builtin constant"),
    (Name.Builtin, "builtin"),
    (Name.Function, "function"),
    (Name.Variable, "dimension"),
    (Name.Attribute, "attribute"),
    (Name, "name"),
    (Number, "number"),
    (String, "string"),
    (Operator, "operator"),
    (Punctuation, "punctuation"),
]
TEXTMATE_KINDS = [
    ("comment.", "comment"),
    ("storage.type.", "dtype"),
    ("constant.language.", "constant"),
    ("keyword.operator.", "operator"),
    ("keyword.", "keyword"),
    ("support.constant.", "builtin constant"),
    ("support.function.", "builtin"),
    ("entity.name.function.", "function"),
    ("variable.other.dimension.", "dimension"),
    ("variable.other.property.", "attribute"),
    ("variable.other.", "name"),
    ("constant.numeric.", "number"),
    ("string.", "string"),
    ("punctuation.", "punctuation"),
]


@pytest.fixture(scope="module")
def textmate(tmp_path_factory):
    """The grammar's parser. The library makes a `.textmate_cache` folder where it is imported,
    so it is imported in a temporary one."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("textmate"))
    try:
        from textmate_grammar.parsers.base import LanguageParser
    finally:
        os.chdir(here)
    return LanguageParser(json.loads(GRAMMAR.read_text()))


def _pygments_kinds(text: str) -> dict[tuple[int, int], str]:
    """The kind of each character that is not white space, by (line, column)."""
    kinds = {}
    for index, ttype, value in BpLexer(stripnl=False).get_tokens_unprocessed(text):
        if value.isspace():
            continue
        kind = next(k for t, k in PYGMENTS_KINDS if ttype in t)
        for i, ch in enumerate(value, index):
            if not ch.isspace():
                line = text.count("\n", 0, i)
                kinds[line, i - (text.rfind("\n", 0, i) + 1)] = kind
    return kinds


def _textmate_kinds(textmate, text: str) -> dict[tuple[int, int], str | None]:
    """The kind of each character that is not white space, None where no rule matched it."""
    kinds = {}
    for (line, col), value, scopes in textmate.parse_string(text).flatten():
        kind = None
        for scope in reversed(scopes):
            kind = next((k for prefix, k in TEXTMATE_KINDS if scope.startswith(prefix)), None)
            if kind:
                break
        for i, ch in enumerate(value, col):
            if not ch.isspace():
                kinds[line, i] = kind
    return kinds


@pytest.mark.parametrize("name", SOURCES)
def test_textmate_grammar_agrees_with_the_lexer(textmate, name):
    text = SOURCES[name]
    got = _textmate_kinds(textmate, text)
    lines = text.splitlines()
    assert [f"{p}: {lines[p[0]][p[1]]!r}" for p, kind in got.items() if kind is None] == []
    want = _pygments_kinds(text)
    assert got.keys() == want.keys()
    differ = [(p, lines[p[0]], want[p], got[p]) for p in want if want[p] != got[p]]
    assert differ == []


def test_textmate_sample(textmate):
    kinds = _textmate_kinds(textmate, SAMPLE)
    assert kinds == _pygments_kinds(SAMPLE)
    assert {"comment", "keyword", "builtin", "dtype", "number", "string", "operator"} <= set(
        kinds.values()
    )


def _alternatives(pattern: str) -> set[str]:
    return set(re.fullmatch(r"\\b\(\?:(.*)\)\\b", pattern).group(1).split("|"))


def test_textmate_builtins_are_the_registry_s():
    repository = json.loads(GRAMMAR.read_text())["repository"]
    builtins = _alternatives(repository["builtin"]["match"])
    assert builtins == set(BUILTINS), "update the builtin rule of editors/bp.tmLanguage.json"
    (constants,) = [p for p in repository["constant"]["patterns"] if "support" in p["name"]]
    assert _alternatives(constants["match"]) == set(CONSTANTS)


def test_vscode_extension():
    package = json.loads((VSCODE / "package.json").read_text())
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["extensions"] == [".bp"] and grammar["language"] == language["id"]
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text())["scopeName"] == "source.bpc"
    copy = VSCODE / grammar["path"]
    assert copy.read_text() == GRAMMAR.read_text(), f"copy {GRAMMAR.name} to {copy.parent}"
    config = json.loads((VSCODE / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#"


# ---------------------------------------------------------------------------------------------
# `bpc explain --color`

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
SEED = str(ROOT / "examples" / "seed.bp")


def _explain(capsys, *args: str) -> str:
    """What `bpc explain` prints on standard output when it is not a terminal (captured)."""
    assert cli.main(["explain", SEED, *args]) == 0
    return capsys.readouterr().out


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        out += chunk
    return out


def _explain_on_a_terminal(monkeypatch, *args: str) -> str:
    """What `bpc explain` prints when its standard output is a terminal (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    with open(follower, "w") as terminal, monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", terminal)
        assert cli.main(["explain", SEED, *args]) == 0
    try:
        return _read_all(leader).decode()
    finally:
        os.close(leader)


def test_explain_is_plain_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = _explain(capsys)
    assert "upstream" in out and "\x1b" not in out


def test_explain_colours_on_request_and_the_colours_are_all_it_adds(capsys, monkeypatch):
    plain = _explain(capsys)
    for no_color in ("", "1"):  # an explicit --color always wins over NO_COLOR
        monkeypatch.setenv("NO_COLOR", no_color)
        coloured = _explain(capsys, "--color", "always")
        assert "\x1b[" in coloured
        assert ESCAPE.sub("", coloured) == plain
    assert "\x1b" not in _explain(capsys, "--color", "never")


@pytest.mark.parametrize(
    "env, args, coloured",
    [
        ({}, (), True),
        ({"NO_COLOR": ""}, (), True),  # empty: as if not set
        ({"NO_COLOR": "1"}, (), False),
        ({"TERM": "dumb"}, (), False),
        ({}, ("--color", "never"), False),
    ],
)
def test_explain_on_a_terminal(monkeypatch, env, args, coloured):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ("\x1b[" in _explain_on_a_terminal(monkeypatch, *args)) == coloured


def test_bpc_explain_colours_a_terminal():
    """The command itself, its standard output a pseudo-terminal."""
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen(
        [BIN / "bpc", "explain", SEED],
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**environ, "TERM": "xterm"},
    )
    os.close(follower)
    out = _read_all(leader).decode()
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert "\x1b[32mdf/dq = 2 q\x1b[0m" in out


class _Stream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_use_color():
    tty, pipe = _Stream(True), _Stream(False)
    assert use_color("auto", tty, {}) and not use_color("auto", pipe, {})
    assert not use_color("auto", tty, {"NO_COLOR": "0"})
    assert use_color("always", pipe, {"NO_COLOR": "1"}) and not use_color("never", tty, {})
    assert not use_color("auto", object(), {})  # a stream that cannot tell
    with pytest.raises(ValueError):
        use_color("sometimes", tty, {})
