"""What people bring from Python and NumPy that bp does not have, and what to write instead.

The parser reads these when a syntax error is at such a word or operator, just after one, or on a
line that starts with one, outside brackets and before any `{` (`for t in range(T):`); the IR
builder when such a word is called (`not(x > 0)`) or such a constant named (`keepdims=True`).
Each hint is worded here once. `for` is bp's too: a loop written as Python writes it gets its
hint, a loop written as bp writes it gets none.
"""

from __future__ import annotations

# For a loop written as Python writes it: `for t in range(T):`, `for x in xs {`, `while ...`.
LOOPS = (
    "a loop runs over a range, its body in braces: for t in range(T) { ... }; "
    "to go through an array, index it with t: xs[t]"
)
_FN = "define a fn: fn f(x: [n]) -> y { y = ... }"
_IMPORT = "the built-ins need no import and are called without a module: exp(x)"
_IF = "choose elementwise with where(mask, a, b)"

# A Python word -> what to write instead.
WORDS = {
    "for": LOOPS,
    "while": f"'while' is not in the language; {LOOPS}",
    "if": f"'if' is not in the language; {_IF}",
    "else": f"'else' is not in the language; {_IF}",
    "and": "'and' is not in the language; for masks write (a > 0) * (b > 0), true where both are",
    "or": "'or' is not in the language; for masks write maximum(a > 0, b > 0), true where either is",
    "not": "'not' is not in the language; compare the other way: x <= 0 rather than not x > 0",
    "lambda": f"'lambda' is not in the language; {_FN}",
    "def": f"'def' is not in the language; {_FN}",
    "return": "'return' is not in the language; a fn names its outputs after '->' and assigns "
    "them: fn f(x: [n]) -> y { y = ... }",
    "import": f"'import' is not in the language; {_IMPORT}",
    "from": f"'from' is not in the language; {_IMPORT}",
}

# The words that begin a Python statement: a syntax error anywhere on a line that starts with one
# (not as a name assigned to, `if = ...`) gets its hint.
STATEMENTS = frozenset({"for", "while", "if", "def", "return", "import", "from"})

# A Python operator -> what to write instead.
OPERATORS = {
    "//": "'//' is not in the language; '/' divides, always giving floats",
    "%": "'%' (the remainder) is not in the language",
}

# A Python constant, used as a name -> what to write instead.
CONSTANTS = {
    "True": "'True' is written 'true' in bp",
    "False": "'False' is written 'false' in bp",
    "None": "'None' is not in the language; leave the argument out for its default",
}
