"""`bpc fmt`: the canonical layout of bp source (docs/tools.md), every comment kept.

On every example, golden and regression source: formatting is idempotent, keeps each comment, and
compiles to the same module. examples/ and the bp blocks of the docs are formatted, and stay so
with a loop program added (a scratch copy). Handwritten sources pin the layout (spacing,
parentheses, numbers, headers, long lines, comments, loops and slot writes). Hypothesis draws
random programs (tests/test_random_graphs.py's `programs`) and scrambles their spacing and line
breaks, a loop program's too, and strews comments through them; the formatted text compiles to the
same module as the program, is idempotent, keeps the comments, and without comments does not
depend on the spacing.
The command line: rewriting in place (mode kept, through a link), `--check`, `--diff`, standard
input, syntax errors, and a formatter bug caught before anything is written.
"""

from __future__ import annotations

import io
import re
import stat
import textwrap
import tokenize
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpc import compile_source
from bpc.cli import main
from bpc.diagnostics import CompileError
from bpc.fmt import LINE_LENGTH, FormatError, _Printer, format_source
from bpc.parse import _parser
from bpc.syntax import Assign, SlotWrite
from tests.test_random_graphs import programs

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [
        *ROOT.glob("examples/*.bp"),
        *ROOT.glob("tests/golden/*.bp"),
        *ROOT.glob("tests/regressions/*.bp"),
    ]
)
DOCS = [*sorted(ROOT.glob("docs/*.md")), ROOT / "README.md"]

# bp blocks of the docs that show a layout on purpose, and why
AS_SHOWN = {"# layer.bp: a comment runs to the end of the line": "shows the line breaks bp allows"}


def comments(text: str) -> list[str]:
    return [t.rstrip() for t in _parser().lex(text, dont_ignore=True) if t.type == "COMMENT"]


def same_module(a: str, b: str) -> bool:
    """Whether two bp sources compile to the same module, but for what the module quotes of its
    source: its comments (the forward statement each block of the backward pass comes from), and
    in a call-time condition's message the expression and its line (`x[n:] (f.bp:4) needs`);
    compared as Python tokens, since a message of another length can make black break its line
    (and add a trailing comma)."""

    def meaning(text):
        module = compile_source(text, "f.bp")
        tokens = []
        for t in tokenize.generate_tokens(io.StringIO(module).readline):
            if t.type in (tokenize.COMMENT, tokenize.NL):
                continue
            if t.string in (")", "]") and tokens[-1] == ",":
                tokens.pop()
            tokens.append(re.sub(r": [^\"]*? \(f\.bp:\d+\) needs ", ": ... needs ", t.string))
        return tokens

    return meaning(a) == meaning(b)


def fmt(text: str) -> str:
    return format_source(textwrap.dedent(text).lstrip("\n"))


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ---------------------------------------------------------------------------------------------
# The sources of the repository


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_idempotent_keeps_comments_and_meaning(path):
    text = path.read_text()
    once = format_source(text)
    assert format_source(once) == once
    assert comments(once) == comments(text)
    assert same_module(text, once)
    assert all(len(line) <= LINE_LENGTH for line in once.splitlines() if "#" not in line)


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/*.bp")), ids=lambda p: p.name)
def test_the_examples_are_formatted(path):
    text = path.read_text()
    assert format_source(text) == text, f"run bpc fmt {path.relative_to(ROOT)}"


def doc_blocks():
    for doc in DOCS:
        for body in re.findall(r"^```bpc?\n(.*?)^```$", doc.read_text(), re.S | re.M):
            yield doc.relative_to(ROOT), body


def test_the_docs_bp_blocks_are_formatted():
    checked = 0
    for doc, body in doc_blocks():
        if body.split("\n", 1)[0] in AS_SHOWN:
            continue
        try:
            formatted = format_source(body)
        except CompileError:  # docs/errors.md shows syntax errors too
            continue
        assert formatted == body, f"{doc}: a bp block is not formatted:\n{body}"
        checked += 1
    assert checked > 50


def test_the_docs_show_what_bpc_fmt_does():
    doc = (ROOT / "docs" / "tools.md").read_text()
    section = doc[doc.index("## `bpc fmt`") :]
    before, after = re.findall(r"^```(?:text|bpc?)\n(.*?)^```$", section, re.S | re.M)[:2]
    assert format_source(before) == after
    for layout in AS_SHOWN:
        assert any(body.startswith(layout) for _, body in doc_blocks()), "AS_SHOWN is stale"


# ---------------------------------------------------------------------------------------------
# The layout


def test_spacing():
    assert (
        fmt("""
        graph  g( x:[n,m] ,w :int[ 2 * n+1 ], b:bool[] )->( a,c )wrt x{
        a=x@x . T+-1
          c = sum( x[ :, 1 : 2 * m ] ,axis = -1,keepdims=true) / ( n * m )
        }
        """)
        == expect("""
        graph g(x: [n, m], w: int[2*n + 1], b: bool[]) -> (a, c) wrt x {
            a = x @ x.T + -1
            c = sum(x[:, 1:2*m], axis=-1, keepdims=true) / (n*m)
        }
        """)
    )


def test_size_arithmetic_is_written_as_types_write_it():
    """`*`, `/` and `//` close up in arithmetic on integers and dimension names only; not where
    a name is a parameter or a value, or a number is a float."""
    assert (
        fmt("""
        graph g(x: [N, C * H], s: []) -> y {
            h = reshape(x, (N, C, H // 2, 2)) * (N * C) / s
            y = sum(h[:, :, 0:H // 2 - 1, ::-1]) * 2 * 0.5 * s + N / 2 + 2.0 * N
        }
        """)
        == expect("""
        graph g(x: [N, C*H], s: []) -> y {
            h = reshape(x, (N, C, H//2, 2)) * (N*C) / s
            y = sum(h[:, :, 0:H//2 - 1, ::-1]) * 2 * 0.5 * s + N/2 + 2.0 * N
        }
        """)
    )


def test_parentheses_only_where_precedence_needs_them():
    assert (
        fmt("""
        graph g(a: [n], b: [n], c: [n]) -> y {
            y = ((a + b)) * (c) - (-(a ** 2)) ** 2 + (-a) ** 2 + (a ** b) ** c + a ** (b ** c)
            y = (a - (b - c)) + ((a - b) - c) + a / (b * c) + (a < b) * (b >= (a == c)) + -(-a)
            y = (1).T + (1.5).T + x[0][1:] + (a @ b).T + f(a)(b)
        }
        """)
        == expect("""
        graph g(a: [n], b: [n], c: [n]) -> y {
            y = (a + b) * c - (-a ** 2) ** 2 + (-a) ** 2 + (a ** b) ** c + a ** b ** c
            y = a - (b - c) + (a - b - c) + a / (b * c) + (a < b) * (b >= (a == c)) + --a
            y = (1).T + 1.5.T + x[0][1:] + (a @ b).T + f(a)(b)
        }
        """)
    )


def test_numbers_keep_their_spelling():
    source = "graph g(x: [n]) -> y {\n    y = x * 1e-5 + 1E3 + .5 + 1. + 007 + 1.50 + 2e+1\n}\n"
    assert format_source(source) == source


def test_headers():
    """One line where it fits; otherwise the parameters' lines of the source, refilled where
    too long; a trailing comma keeps the parameters on lines of their own."""
    assert (
        fmt("""
        graph short(x: [n],
                    w: [n]) -> y {
            y = sum(x * w)
        }
        graph long_enough_to_wrap(first_parameter: [N, D], second_parameter: [D, M], bias: [M], s: []) -> y {
            y = sum(first_parameter @ second_parameter + bias) * s
        }
        fn kept(x: [n],) -> y {
            y = x
        }
        graph grouped(
            X: [N, D], y: int[N],
            W1: [D, H], b1: [H], W2: [H, C], b2: [C], W3: [C, C], b3: [C], W4: [C, C], b4: [C], W5: [C, C], b5: [C],
            reg: []
        ) -> (loss, z) wrt W1, b1 {
            loss = sum(X) + reg
            z = y
        }
        graph none() -> y {
            y = 1
        }
        """)
        == expect("""
        graph short(x: [n], w: [n]) -> y {
            y = sum(x * w)
        }

        graph long_enough_to_wrap(
            first_parameter: [N, D], second_parameter: [D, M], bias: [M], s: [],
        ) -> y {
            y = sum(first_parameter @ second_parameter + bias) * s
        }

        fn kept(
            x: [n],
        ) -> y {
            y = x
        }

        graph grouped(
            X: [N, D], y: int[N],
            W1: [D, H], b1: [H], W2: [H, C], b2: [C], W3: [C, C], b3: [C], W4: [C, C], b4: [C], W5: [C, C],
            b5: [C],
            reg: [],
        ) -> (loss, z) wrt W1, b1 {
            loss = sum(X) + reg
            z = y
        }

        graph none() -> y {
            y = 1
        }
        """)
    )


def test_long_statements_break_as_black_breaks_python():
    """At the brackets that end the statement where its value has one operator at most;
    otherwise in parentheses, before each operator of the loosest level; arguments on one line
    where they fit, else one to a line."""
    args = ", ".join(f"argument_{i}" for i in range(7))
    long_sum = " + ".join(f"argument_{i}" for i in range(7))
    source = f"""
        graph g(x: [n]) -> y {{
            y = x + other(x, {args})
            y = some_function(x, {args}, axis=0) + 1
            y = x[{long_sum}, 0]
            y = a + b + c + function(argument_0, argument_1, argument_2, argument_3, argument_4, argument_5, x)
            y = ({long_sum}) ** 2
            y = -outer(inner(x, {args}), inner(x, {args})).T
        }}
        """
    assert fmt(source) == expect(f"""
        graph g(x: [n]) -> y {{
            y = x + other(
                x, {args}
            )
            y = (
                some_function(
                    x,
                    argument_0,
                    argument_1,
                    argument_2,
                    argument_3,
                    argument_4,
                    argument_5,
                    argument_6,
                    axis=0,
                )
                + 1
            )
            y = x[
                {long_sum}, 0
            ]
            y = (
                a
                + b
                + c
                + function(argument_0, argument_1, argument_2, argument_3, argument_4, argument_5, x)
            )
            y = (
                ({long_sum})
                ** 2
            )
            y = -outer(
                inner(
                    x, {args}
                ),
                inner(
                    x, {args}
                ),
            ).T
        }}
        """)


def test_comments_stay_where_they_are():
    source = expect("""
        # about the file

        # about g
        graph g(  # after the parenthesis
            # before x
            x: [n],  # after x
            y: [n], z: [n],   # after y and z
            # after the parameters
        ) -> out {  # after the brace
            # first
            a = x+y       # aligned
            b = a*z  # close



            # after blank lines
            out = sum(b)  # a comment pushed along by the code it follows
            # at the end of the body
        }  # after the closing brace
        # before h
        graph h(x: [n]) -> y {
            y = f(x,  # inside a statement: the statement is kept as written
                      1)
        }
        graph i(x: [n,  # inside a type: the header is kept as written
                    m], w: [n]) -> y {
            y = sum(x)
            # at the end of the body

        }
        graph j(x: [n],  # a comment after a parameter puts each line of them on its own
                w: [n]) -> y {
            y = sum(x)
        }
        # at the end
        """)
    assert format_source(source) == expect("""
        # about the file

        # about g
        graph g(  # after the parenthesis
            # before x
            x: [n],  # after x
            y: [n], z: [n],   # after y and z
            # after the parameters
        ) -> out {  # after the brace
            # first
            a = x + y     # aligned
            b = a * z  # close

            # after blank lines
            out = sum(b)  # a comment pushed along by the code it follows
            # at the end of the body
        }  # after the closing brace

        # before h
        graph h(x: [n]) -> y {
            y = f(x,  # inside a statement: the statement is kept as written
                      1)
        }

        graph i(x: [n,  # inside a type: the header is kept as written
                    m], w: [n]) -> y {
            y = sum(x)
            # at the end of the body
        }

        graph j(
            x: [n],      # a comment after a parameter puts each line of them on its own
            w: [n],
        ) -> y {
            y = sum(x)
        }
        # at the end
        """)


def test_comments_only_and_empty_files():
    assert format_source("") == ""
    assert format_source("\n\n") == ""
    assert format_source("# one\n\n\n# two  \n") == "# one\n\n# two\n"


def test_line_ends_are_kept():
    source = "graph g(x: [n]) -> y {  # c\r\n  y = x*x\r\n}\r\n"
    assert format_source(source) == "graph g(x: [n]) -> y {  # c\r\n    y = x * x\r\n}\r\n"


def test_a_syntax_error_is_the_usual_diagnostic():
    with pytest.raises(CompileError) as e:
        format_source("graph g(x: [n]) -> y {\n    y = x +\n}\n")
    assert e.value.diagnostics[0].loc.line == 2


def test_an_expression_too_deep_for_the_stack_is_a_diagnostic():
    with pytest.raises(CompileError, match="nests 3000 levels deep, too deeply to format"):
        format_source("graph g(x: [n]) -> y {\n    y = " + " + ".join(["x"] * 3000) + "\n}\n")


def test_messages_share_the_precedence_table_floor_division_included():
    """`syntax.show`, which writes the code a message suggests, reads the table bpc fmt does."""
    source = "fn f(a: [k]) -> (b, c) {\n    b = a\n    c = a\n}\n\n"
    source += "graph g(x: [n]) -> y {\n    y = sum(f(x[0:n//2]) + 1)\n}\n"
    with pytest.raises(CompileError, match=r"b, c = f\(x\[0:n // 2\]\)"):
        compile_source(source)


def test_a_result_that_would_change_the_program_is_refused(monkeypatch):
    monkeypatch.setattr("bpc.fmt._own", lambda e: 6)  # as if no operator needed parentheses
    with pytest.raises(FormatError, match="different program"):
        format_source("graph g(x: [n]) -> y {\n    y = (x + 1) * 2\n}\n")


# ---------------------------------------------------------------------------------------------
# Random programs


def scramble(draw, source: str, comment: bool) -> str:
    """`source` with other spacing: spaces between tokens, line breaks and indentation inside
    the brackets of statements, blank lines; with `comment`, comments after lines and on lines
    of their own (inside brackets too)."""
    out, depth, body, n = [], 0, False, 0
    for t in _parser().lex(source, dont_ignore=True):
        if t.type == "_NL":
            if comment and draw(st.booleans()):
                out.append(f"  # t{n}")
                n += 1
            out.append("\n" * draw(st.integers(1, 2 if comment else 1)))
            if comment and draw(st.booleans()):
                out.append(f"# o{n}\n")
                n += 1
            out.append(" " * draw(st.integers(0, 6)))
            continue
        if not t.strip():
            continue
        tight = t.type in ("LPAR", "RPAR", "LSQB", "RSQB", "COMMA") or (out and out[-1] in "([,")
        gap = draw(st.sampled_from(["", " ", "  "] if tight else [" ", "  "]))
        if body and depth and draw(st.integers(0, 5)) == 0:  # a line break inside brackets
            gap = (f"  # i{n}" if comment else "") + "\n" + " " * draw(st.integers(0, 12))
            n += comment
        out.append(gap if out and out[-1] != "\n" else "")
        out.append(str(t))
        depth += t.type in ("LPAR", "LSQB")
        depth -= t.type in ("RPAR", "RSQB")
        body = body or t.type == "LBRACE"
    return "".join(out).lstrip(" ")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_ops=12), st.data())
def test_random_programs(program, data):
    formatted = format_source(program.source)
    spaced = scramble(data.draw, program.source, comment=False)
    assert format_source(spaced) == formatted, "the layout does not depend on the spacing"
    commented = scramble(data.draw, program.source, comment=True)
    result = format_source(commented)
    assert format_source(result) == result
    assert comments(result) == comments(commented)
    assert same_module(program.source, result)


# ---------------------------------------------------------------------------------------------
# Loops and slot writes

# A loop program in the canonical layout, with comments everywhere a body has room for one: the
# recurrent layers of examples/rnn.bp written over whole sequences, as issue 14 writes them.
LOOPS = expect("""
    # Recurrent layers over whole sequences.
    fn lstm_loop_cell(
        x: [N, D], h: [N, H], c: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H],
    ) -> (h2, c2) {
        a = x @ Wx + h @ Wh + b
        c2 = sigmoid(a[:, H:2*H]) * c + sigmoid(a[:, 0:H]) * tanh(a[:, 3*H:4*H])
        h2 = sigmoid(a[:, 2*H:3*H]) * tanh(c2)
    }

    # A vanilla RNN, and a loss summed over time.
    graph rnn_loop(x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]) -> (hs, loss) {
        hs = zeros((N, T, H))
        h = h0
        loss = 0.0
        for t in range(T) {  # forward in time
            # one step
            h = tanh(x[:, t] @ Wx + h @ Wh + b)
            hs[:, t] = h  # the slot of step t

            loss = loss + sum(h * h)
            # after the last statement
        }  # after the loop
    }

    # An LSTM that runs backwards in time, a loop nested in another, and range(START, STOP).
    graph lstm_loop(
        x: [N, T, D], h0: [N, H], Wx: [D, 4*H], Wh: [H, 4*H], b: [4*H],
    ) -> (hs, total) wrt Wx, Wh, b {
        hs = zeros((N, T, H))
        h = h0
        c = zeros((N, H))
        for t in range(T) {
            h, c = lstm_loop_cell(x[:, T - 1 - t], h, c, Wx, Wh, b)
            hs[:, T - 1 - t] = h
        }
        total = 0.0
        for i in range(1, T) {
            for j in range(0, 2*H - 1) {
                # a sum over the steps before i
                total = total + sum(hs[:, i - 1, j])
            }
        }
    }
    """)


def test_loops_and_slot_writes():
    """`for t in range(T) {` on one line, its body four spaces deeper, its `}` under the `for`;
    a slot write spaced as a statement; size arithmetic in the bounds written as in types, the
    loop variable spaced as a value."""
    assert (
        fmt("""
        graph g(x: [N, T, D], h0: [N, D]) -> ys {
        ys=zeros((N,T,D))
        h=h0
        for   t   in range( 1 , 2 * T-1 ){
        h = h*x[ :,t-1 ]
                  ys[ :, 2*t ]=h+1
          for s in range(T) { ys[:, s] = ys[:, s] * 2
        }
                }
        }
        """)
        == expect("""
        graph g(x: [N, T, D], h0: [N, D]) -> ys {
            ys = zeros((N, T, D))
            h = h0
            for t in range(1, 2*T - 1) {
                h = h * x[:, t - 1]
                ys[:, 2 * t] = h + 1
                for s in range(T) {
                    ys[:, s] = ys[:, s] * 2
                }
            }
        }
        """)
    )


def test_a_loop_on_one_line_is_laid_out_as_any_other():
    source = "graph g(x: [n]) -> y {\n  y = x\n  for t in range(4) { y = y * x }\n}\n"
    assert format_source(source) == expect("""
        graph g(x: [n]) -> y {
            y = x
            for t in range(4) {
                y = y * x
            }
        }
        """)
    assert format_source("fn f(x: [n]) -> y {\n    for t in range(3) {}\n    y = x\n}\n") == (
        "fn f(x: [n]) -> y {\n    for t in range(3) {\n    }\n    y = x\n}\n"
    )


def test_comments_and_blank_lines_in_loop_bodies():
    """Comments before a statement, after one, after a loop's `{` and `}`, before its `}` and
    inside its header's brackets; blank lines kept at most one in a row, but none after `{` or
    before `}`."""
    source = expect("""
        graph g(x: [N, T], h0: [N]) -> h {
            h = h0
            # before the loop

            for t in range(T) {   # after the brace

                # first
                h = h + x[:, t]   # aligned
                for s in range(  # inside the header: it is kept as written
                         T) {
                    h = h*2  # close


                    # after blank lines
                    h = h - 1
                    # before the inner brace

                }  # after the inner brace
                # before the brace


            }
            # at the end
        }
        """)
    assert format_source(source) == expect("""
        graph g(x: [N, T], h0: [N]) -> h {
            h = h0
            # before the loop

            for t in range(T) {   # after the brace
                # first
                h = h + x[:, t]   # aligned
                for s in range(  # inside the header: it is kept as written
                         T) {
                    h = h * 2  # close

                    # after blank lines
                    h = h - 1
                    # before the inner brace
                }  # after the inner brace
                # before the brace
            }
            # at the end
        }
        """)


def test_long_statements_in_loop_bodies_break_with_the_extra_indentation():
    """Broken as at the top of a body, each line of the statement four spaces deeper per loop:
    arguments that fit on one line at one depth go one to a line at a deeper one."""
    args = ", ".join(f"argument_{i}" for i in range(7))
    long_sum = " + ".join(f"argument_{i}" for i in range(6))
    source = f"""
        graph g(x: [N, T]) -> ys {{
            for t in range(T) {{
                ys[:, t] = x[:, t] + other(x, {args})
                for s in range(T) {{
                    ys[:, t, s] = x[:, t] + other(x, {args})
                    ys[:, s, t] = a + b + c + function(argument_0, argument_1, argument_2, argument_3, x)
                    ys[:, s] = ({long_sum}) ** 2 + x
                }}
            }}
        }}
        """
    assert fmt(source) == expect(f"""
        graph g(x: [N, T]) -> ys {{
            for t in range(T) {{
                ys[:, t] = x[:, t] + other(
                    x, {args}
                )
                for s in range(T) {{
                    ys[:, t, s] = x[:, t] + other(
                        x,
                        argument_0,
                        argument_1,
                        argument_2,
                        argument_3,
                        argument_4,
                        argument_5,
                        argument_6,
                    )
                    ys[:, s, t] = a + b + c + function(argument_0, argument_1, argument_2, argument_3, x)
                    ys[:, s] = (
                        ({long_sum}) ** 2
                        + x
                    )
                }}
            }}
        }}
        """)
    assert max(len(line) for line in fmt(source).splitlines()) == LINE_LENGTH - 2


def test_a_loop_program_is_a_fixed_point_keeps_its_comments_and_compiles_the_same():
    assert format_source(LOOPS) == LOOPS
    ugly = re.sub(r"(?m)^( *)", lambda m: " " * (len(m[1]) // 2), LOOPS).replace(" = ", "=")
    assert ugly != LOOPS and format_source(ugly) == LOOPS
    assert comments(ugly) == comments(LOOPS)
    assert same_module(ugly, LOOPS)


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/*.bp")), ids=lambda p: p.name)
def test_the_examples_with_loops_added(path):
    """examples/ gains loops (issue 14): each example with the loop program after it is still
    formatted, and formatting keeps its comments and meaning (a scratch copy; examples/ is
    not changed here)."""
    text = path.read_text() + "\n" + LOOPS
    assert format_source(text) == text
    scrambled = re.sub(r"(?m)^    ", "  ", text)
    once = format_source(scrambled)
    assert once == text and format_source(once) == once
    assert comments(once) == comments(scrambled)
    if path.name == "rnn.bp":  # compiling each example twice is slow; one is enough here
        assert same_module(scrambled, once)


def test_the_tree_check_covers_loops(monkeypatch):
    """A formatter that changes a loop's bounds, or ends a loop before its body, is caught."""

    def other_bounds(self, stmt, indent):
        return [f"{indent}for {stmt.var} in range(2) {{"]

    monkeypatch.setattr("bpc.fmt._Printer.loop", other_bounds)
    with pytest.raises(FormatError, match="different program"):
        format_source(LOOPS)
    monkeypatch.setattr("bpc.fmt._Printer.loop", lambda self, stmt, indent: [indent + "}"])
    with pytest.raises(FormatError, match="does not parse"):
        format_source(LOOPS)


def test_the_tree_check_covers_slot_writes(monkeypatch):
    def statement(self, stmt, indent):
        if isinstance(stmt, SlotWrite):  # the subscripts dropped: `ys[:, t] = h` as `ys = h`
            stmt = Assign(stmt.loc, (stmt.target,), stmt.value, (stmt.loc,))
        return original(self, stmt, indent)

    original = _Printer.statement
    monkeypatch.setattr("bpc.fmt._Printer.statement", statement)
    with pytest.raises(FormatError, match="different program"):
        format_source(LOOPS)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_loop_programs_scrambled(data):
    """The layout of a loop program (without blank lines, which `scramble` does not keep) does
    not depend on its spacing; with comments strewn through it, formatting is idempotent and
    keeps them. Each definition is scrambled on its own: a header's line breaks are kept."""
    lines = [re.sub(r"  #.*", "", line) for line in LOOPS.splitlines()]
    source = "".join(line + "\n" for line in lines if line.strip()[:1] not in ("", "#"))
    definitions = re.split(r"(?m)^(?=fn |graph )", source)[1:]
    formatted = format_source(source)
    spaced = "\n".join(scramble(data.draw, d, comment=False) for d in definitions)
    assert format_source(spaced) == formatted
    commented = "\n".join(scramble(data.draw, d, comment=True) for d in definitions)
    result = format_source(commented)
    assert format_source(result) == result
    assert comments(result) == comments(commented)


# ---------------------------------------------------------------------------------------------
# The command line

UGLY = "graph g(x:[n])->y{\n  y=sum(x*x)  # the square\n}\n"
PRETTY = "graph g(x: [n]) -> y {\n    y = sum(x * x)  # the square\n}\n"


def test_fmt_rewrites_files_in_place_keeping_their_mode(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.bp", tmp_path / "pretty.bp"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    ugly.chmod(0o600)
    before = pretty.stat().st_mtime_ns
    assert main(["fmt", str(ugly), str(pretty)]) == 0
    assert ugly.read_text() == PRETTY and stat.S_IMODE(ugly.stat().st_mode) == 0o600
    assert pretty.stat().st_mtime_ns == before, "a formatted file is not written"
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pretty.bp", "ugly.bp"]


def test_fmt_writes_the_file_a_link_names(tmp_path):
    (tmp_path / "real.bp").write_text(UGLY)
    (tmp_path / "link.bp").symlink_to("real.bp")
    assert main(["fmt", str(tmp_path / "link.bp")]) == 0
    assert (tmp_path / "link.bp").is_symlink()
    assert (tmp_path / "real.bp").read_text() == PRETTY


def test_check_lists_the_files_it_would_change_and_writes_nothing(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.bp", tmp_path / "pretty.bp"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert main(["fmt", "--check", str(ugly), str(pretty)]) == 1
    assert capsys.readouterr() == ("", f"would reformat {ugly}\n")
    assert ugly.read_text() == UGLY
    assert main(["fmt", "--check", str(pretty)]) == 0
    assert capsys.readouterr() == ("", "")


def test_diff_prints_the_changes_and_writes_nothing(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.bp", tmp_path / "pretty.bp"
    ugly.write_text(UGLY.rstrip("\n"))
    pretty.write_text(PRETTY)
    assert main(["fmt", "--diff", str(ugly), str(pretty)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and ugly.read_text() == UGLY.rstrip("\n")
    assert out == (
        f"--- {ugly}\n+++ {ugly}\n@@ -1,3 +1,3 @@\n"
        "-graph g(x:[n])->y{\n-  y=sum(x*x)  # the square\n-}\n\\ No newline at end of file\n"
        "+graph g(x: [n]) -> y {\n+    y = sum(x * x)  # the square\n+}\n"
    )
    assert main(["fmt", "--diff", "--check", str(ugly)]) == 1


def test_standard_input_to_standard_output(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(UGLY.encode())))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr() == (PRETTY, "")


def test_a_file_with_a_syntax_error_is_reported_and_left_alone(tmp_path, capsys):
    bad, ugly = tmp_path / "bad.bp", tmp_path / "ugly.bp"
    bad.write_text("graph g(x: [n]) -> y {\n    y = x +\n}\n")
    ugly.write_text(UGLY)
    assert main(["fmt", str(bad), str(ugly), str(tmp_path / "missing.bp")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:12: error: unexpected end of line" in err
    assert "    y = x +\n" in err and "cannot read" in err and "Traceback" not in err
    assert bad.read_text() == "graph g(x: [n]) -> y {\n    y = x +\n}\n"
    assert ugly.read_text() == PRETTY, "the other files are formatted"


def test_a_formatter_bug_leaves_the_file_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bpc.fmt._own", lambda e: 6)
    src = tmp_path / "g.bp"
    src.write_text("graph g(x: [n]) -> y {\n    y = (x + 1) * 2\n}\n")
    assert main(["fmt", str(src)]) == 1
    assert "bpc fmt failed" in capsys.readouterr().err
    assert src.read_text() == "graph g(x: [n]) -> y {\n    y = (x + 1) * 2\n}\n"


def test_a_failed_write_is_an_error(tmp_path, capsys, monkeypatch):
    def full(files, mode):
        raise OSError(28, "No space left on device", str(files[0][0]))

    monkeypatch.setattr("bpc.cli.write_all_atomic", full)
    (tmp_path / "ugly.bp").write_text(UGLY)
    assert main(["fmt", str(tmp_path / "ugly.bp")]) == 1
    assert (
        capsys.readouterr().err
        == f"bpc: error: cannot write {tmp_path / 'ugly.bp'}: No space left on device\n"
    )
    assert (tmp_path / "ugly.bp").read_text() == UGLY
