"""Stage 2: syntax tree -> IR. Names are resolved, `fn` calls inlined, built-in calls lowered.

Each `graph` becomes one `Graph` whose nodes are still untyped: the shape pass types them. A call
to a `fn` binds each argument through a `bind` node that carries the `fn`'s declared shape in
fresh dimension symbols, so the shape pass can unify the `fn`'s dimensions per call site.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field, replace

from . import syntax as s
from .diagnostics import CompileError, Diagnostic, Loc, error
from .dims import Dim
from .ir import OPS, REQUIRED, Graph, Node, Param, Type, at, const, reachable, untyped
from .ops import CONSTANTS, PLANNED, SPELLED

BUILTINS = SPELLED | PLANNED

# Static parameters that take a string literal, and what they expect: nothing else takes one.
STRING_PARAMS = {"spec": 'a string, such as "ij,jk->ik"', "approximate": '"none" or "tanh"'}
STRINGS_ELSEWHERE = "a string can only be an einsum spec or gelu's approximate="

_fresh = itertools.count(1)


@dataclass
class _Scope:
    """What names mean inside one graph or one inlined `fn` call."""

    fn: str | None  # the fn being inlined, None in a graph body
    vars: dict[str, Node]
    dims: dict[str, Dim]
    depth: int = 0
    stack: tuple[str, ...] = ()


class _Poisoned(Exception):
    """A statement used a value whose own statement failed: its error is already reported."""


POISON = object()  # the value of a name whose statement failed


@dataclass
class _Builder:
    module: dict[str, s.Definition]
    nodes: list[Node] = field(default_factory=list)
    hints: dict[Node, tuple[int, str]] = field(default_factory=dict)
    errors: list = field(default_factory=list)  # diagnostics of failed statements
    statements: list = field(default_factory=list)  # (statement, value) at graph level

    def node(self, op: str, *args: Node, **attrs) -> Node:
        n = untyped(op, *args, **attrs)
        self.nodes.append(n)
        return n

    def leaf(self, n: Node) -> Node:
        self.nodes.append(n)
        return n

    def name(self, n: Node, hint: str, depth: int) -> None:
        """Remember a source name for a value; names from outer scopes win over a `fn`'s own."""
        if n.op in ("param", "const", "dim", "bind"):
            return
        if n not in self.hints or depth < self.hints[n][0]:
            self.hints[n] = (depth, hint)

    # -- statements -----------------------------------------------------------------------

    def body(self, d: s.Definition, scope: _Scope) -> tuple[Node, ...]:
        for stmt in d.body:
            try:
                value = self.expr(stmt.value, scope)
                if not isinstance(value, Node):
                    raise error(
                        self.loc(stmt.value.loc, scope),
                        "a tuple is not a value; give one expression",
                    )
            except (CompileError, _Poisoned) as e:
                if scope.fn is not None:  # inside an inlined fn: the call site reports it
                    raise
                if isinstance(e, CompileError):
                    self.errors.extend(e.diagnostics)
                scope.vars[stmt.target] = POISON  # later uses of it are not errors of their own
                continue
            # A fn's own names are prefixed by the fn, so `out` in `affine` reads `affine_out`.
            self.name(value, f"{scope.fn}_{stmt.target}" if scope.fn else stmt.target, scope.depth)
            scope.vars[stmt.target] = value
            if scope.fn is None:
                self.statements.append((stmt, value))
        outputs = []
        for out in d.outputs:
            if scope.vars.get(out) is POISON:
                raise _Poisoned()
            if out not in scope.vars:
                raise error(
                    self.loc(d.outputs_loc, scope),
                    f"output '{out}' is never assigned in {d.kind} '{d.name}'{_suggest(out, scope.vars)}",
                )
            outputs.append(scope.vars[out])
        return tuple(outputs)

    def loc(self, loc: Loc, scope: _Scope) -> Loc:
        return Loc(loc.line, loc.col, scope.fn) if scope.fn else loc

    # -- expressions ----------------------------------------------------------------------

    def expr(self, e: s.Expr, scope: _Scope):
        with at(self.loc(e.loc, scope)):
            return self._expr(e, scope)

    def _expr(self, e: s.Expr, scope: _Scope):
        here = self.loc(e.loc, scope)
        match e:
            case s.Name(id=name):
                if name in scope.vars:
                    if scope.vars[name] is POISON:
                        raise _Poisoned()
                    return scope.vars[name]
                if name in scope.dims:
                    return self.leaf(self._dim_node(scope.dims[name]))
                if name in CONSTANTS:  # (a value or a dimension of that name shadows it)
                    return self.leaf(const(CONSTANTS[name]))
                known = {**scope.vars, **scope.dims, **CONSTANTS}
                raise error(here, f"unknown name '{name}'{_suggest(name, known)}")
            case s.Number(value=v) | s.Bool(value=v):
                return self.leaf(const(v))
            case s.String():
                raise error(here, STRINGS_ELSEWHERE)
            case s.Tuple(items=items):
                return tuple(self.expr(i, scope) for i in items)
            case s.Unary(operand=x):
                return self.node("neg", self.value(x, scope))
            case s.Binary(op=op, left=a, right=b):
                return self.node(op, self.value(a, scope), self.value(b, scope))
            case s.Attribute(value=x, attr="T"):
                return self.node("transpose", self.value(x, scope), axes=None)
            case s.Attribute(attr=attr):
                raise error(here, f"unknown attribute '.{attr}'; the only one is '.T'")
            case s.Index():
                return self.index(e, scope)
            case s.Call():
                return self.call(e, scope)
        raise error(here, "unsupported expression")  # pragma: no cover

    def value(self, e: s.Expr, scope: _Scope) -> Node:
        v = self.expr(e, scope)
        if not isinstance(v, Node):
            raise error(self.loc(e.loc, scope), "a tuple is not a value here")
        return v

    def _dim_node(self, dim: Dim) -> Node:
        return Node("dim", (), (("dim", dim),), Type("int", (), True), loc=None)

    def static(self, e: s.Expr, scope: _Scope, what: str):
        """A compile-time argument: an integer, a dimension expression, a boolean or a tuple;
        a string only for the parameters of `STRING_PARAMS` (an einsum spec, gelu's form)."""
        here = self.loc(e.loc, scope)
        if what in STRING_PARAMS:
            if not isinstance(e, s.String):
                raise error(here, f"{what} must be {STRING_PARAMS[what]}")
            return e.value
        match e:
            case s.String():
                raise error(here, STRINGS_ELSEWHERE)
            case s.Number(value=int(v)):
                return v
            case s.Bool(value=v):
                return v
            case s.Unary(operand=x):
                v = self.static(x, scope, what)
                if isinstance(v, (int, Dim)) and not isinstance(v, bool):
                    return -v
            case s.Tuple(items=items):
                return tuple(self.static(i, scope, what) for i in items)
            case s.Name(id=name) if name in scope.dims:
                return scope.dims[name]
            case s.Binary(op=("add" | "sub" | "mul") as op, left=a, right=b):
                x, y = self.static(a, scope, what), self.static(b, scope, what)
                if isinstance(x, (int, Dim)) and isinstance(y, (int, Dim)):
                    x, y = Dim.of(x), Dim.of(y)
                    return x + y if op == "add" else x - y if op == "sub" else x * y
        raise error(here, f"{what} must be known at compile time (integers and dimension names)")

    def index(self, e: s.Index, scope: _Scope) -> Node:
        """`x[...]`: each subscript an integer or a slice with compile-time bounds; the shape rule
        of `index` (ops/index.py) checks them against the shape."""
        items = []
        for sub in e.subscripts:
            if isinstance(sub, s.Slice):
                start, stop = (self.bound(b, scope, "a slice bound") for b in (sub.start, sub.stop))
                step = self.bound(sub.step, scope, "a slice step")
                if step is not None and not (step.is_const and step.value):
                    raise error(
                        self.loc(sub.step.loc, scope), "a slice step must be a nonzero integer"
                    )
                items.append((start, stop, None if step is None else step.value))
            else:
                if isinstance(sub, s.Name) and sub.id in scope.vars:
                    x = e.value.id if isinstance(e.value, s.Name) else "x"
                    raise error(
                        self.loc(sub.loc, scope),
                        f"an index must be known at compile time, and '{sub.id}' is a value; "
                        f"gather by an integer array with take({x}, {sub.id}, axis=...)",
                    )
                items.append(self.bound(sub, scope, "an index"))
        return self.node("index", self.value(e.value, scope), index=tuple(items))

    def bound(self, e: s.Expr | None, scope: _Scope, what: str) -> Dim | None:
        """An index or a slice bound: an integer or a dimension expression."""
        if e is None:
            return None
        here = self.loc(e.loc, scope)
        if isinstance(e, s.Bool) or (isinstance(e, s.Number) and isinstance(e.value, float)):
            raise error(here, f"{what} must be an integer or a dimension expression")
        v = self.static(e, scope, what)
        if not isinstance(v, (int, Dim)) or isinstance(v, bool):
            raise error(here, f"{what} must be an integer or a dimension expression")
        return Dim.of(v)

    def call(self, e: s.Call, scope: _Scope) -> Node:
        here = self.loc(e.loc, scope)
        if not isinstance(e.func, s.Name):
            raise error(here, "only named functions can be called")
        name = e.func.id
        if name in self.module and self.module[name].kind == "fn":
            return self.inline(self.module[name], e, scope)
        if name in self.module and name not in BUILTINS:  # a graph may share a built-in's name
            raise error(here, f"'{name}' is a graph; only fn definitions can be called")
        if name not in BUILTINS:
            known = set(BUILTINS) | {n for n, d in self.module.items() if d.kind == "fn"}
            raise error(here, f"unknown function '{name}'{_suggest(name, known)}")
        if name in PLANNED:
            raise error(here, f"'{name}' is not supported yet")
        op = OPS[name]
        values = self.arguments(e, scope, op.call, dict(op.static))
        static = dict(op.static)
        args, attrs = [], {}
        for param, arg in zip(op.call, values):
            if param.startswith("*"):
                args.extend(self.value(a, scope) for a in arg)
            elif param not in static:
                args.append(self.value(arg, scope))
            elif arg is not None:
                attrs[param] = self.static(arg, scope, param)
            else:
                attrs[param] = static[param]
        return self.node(name, *args, **attrs)

    def arguments(self, e: s.Call, scope: _Scope, names: tuple[str, ...], defaults: dict):
        """Match a call's arguments to a built-in's parameters; missing optional ones are None.

        A parameter written `*name` (`call=("*arrays", "axis")`) is variadic, as in Python: it
        collects the remaining positional arguments, all tensors, as a tuple (at least one), and
        the parameters after it can only be given by keyword. They may come as one tuple too,
        as NumPy takes them: `stack((a, b), axis=1)` is `stack(a, b, axis=1)`."""
        fname = e.func.id
        star = next((i for i, n in enumerate(names) if n.startswith("*")), None)
        if star is not None:
            bound = dict(zip(names[:star], e.args[:star]))
            rest = tuple(e.args[star:])
            if len(rest) == 1 and isinstance(rest[0], s.Tuple):  # NumPy's `stack((a, b))`
                rest = rest[0].items
            elif rest and isinstance(rest[0], s.Tuple):
                example = f", as in {fname}((a, b), axis=1)" if "axis" in names else ""
                raise error(
                    self.loc(rest[1].loc, scope),
                    f"{fname}() takes its arrays in one tuple or one by one, and nothing after "
                    f"them by position{example}",
                )
            bound[names[star]] = rest
            if not rest:
                raise error(
                    self.loc(e.loc, scope), f"{fname}() needs at least one of '{names[star][1:]}'"
                )
        elif len(e.args) > len(names):
            raise error(
                self.loc(e.args[len(names)].loc, scope),
                f"{fname}() takes at most {len(names)} argument(s)",
            )
        else:
            bound = dict(zip(names, e.args))
        keywords = [n for n in names if not n.startswith("*")]
        for kw in e.kwargs:
            if kw.name not in keywords:
                raise error(
                    self.loc(kw.loc, scope),
                    f"{fname}() has no argument '{kw.name}'{_suggest(kw.name, keywords)}",
                )
            if kw.name in bound:
                raise error(self.loc(kw.loc, scope), f"{fname}() got '{kw.name}' twice")
            bound[kw.name] = kw.value
        for n in names:
            if n not in bound and defaults.get(n, REQUIRED) is REQUIRED:
                raise error(self.loc(e.loc, scope), f"{fname}() needs the argument '{n}'")
        return [bound.get(n) for n in names]

    def inline(self, d: s.Definition, e: s.Call, scope: _Scope) -> Node:
        here = self.loc(e.loc, scope)
        if d.name in scope.stack:
            raise error(
                here,
                f"fn '{d.name}' calls itself (through {' -> '.join(scope.stack)}); recursion is not allowed",
            )
        if e.kwargs:
            raise error(
                self.loc(e.kwargs[0].loc, scope), f"fn '{d.name}' takes its arguments by position"
            )
        if len(e.args) != len(d.params):
            raise error(here, f"fn '{d.name}' takes {len(d.params)} argument(s), got {len(e.args)}")
        k = next(_fresh)
        dims = {
            name: Dim.of(f"{d.name}.{name}#{k}")
            for p in d.params
            for name in p.dims
            if isinstance(name, str)
        }
        inner = _Scope(d.name, {}, dims, scope.depth + 1, scope.stack + (d.name,))
        for p, arg in zip(d.params, e.args):
            value = self.value(arg, scope)
            with at(self.loc(arg.loc, scope)):
                inner.vars[p.name] = self.node(
                    "bind",
                    value,
                    shape=tuple(Dim.of(x) if isinstance(x, int) else dims[x] for x in p.dims),
                    dtype=p.dtype,
                    param=p.name,
                    fn=d.name,
                )
        out, *more = self.body(d, inner)
        if more:
            raise error(
                here, f"fn '{d.name}' returns {len(d.outputs)} values; a call must return one"
            )
        return out


def _unused(d: s.Definition, b: _Builder, inputs, outputs) -> list[Diagnostic]:
    """Warnings for statements whose value no output uses, and for unused parameters."""
    live = reachable(outputs)
    found = [
        Diagnostic(stmt.loc, f"'{stmt.target}' is assigned but no output uses it", "warning")
        for stmt, value in b.statements
        if value not in live
    ]
    found += [
        Diagnostic(p.loc, f"parameter '{p.name}' is not used by any output", "warning")
        for p, n in zip(d.params, inputs)
        if n not in live
    ]
    return found


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_definition(d: s.Definition) -> None:
    seen: dict[str, Loc] = {}
    for p in d.params:
        if p.name in seen:
            raise error(p.loc, f"parameter '{p.name}' is declared twice")
        seen[p.name] = p.loc
    if len(set(d.outputs)) != len(d.outputs):
        raise error(d.outputs_loc, "an output is named twice")


def build_ir(
    module: s.Module, source: str = "", warnings: list | None = None, errors: list | None = None
) -> list[Graph]:
    """Resolve names and inline `fn`s; one untyped `Graph` per `graph` definition. Errors in
    independent statements and graphs are all reported: raised together, or appended to
    `errors` (and the graphs that built returned); warnings are appended to `warnings`."""
    defs: dict[str, s.Definition] = {}
    for d in module.definitions:
        if d.name in defs:
            raise error(d.loc, f"'{d.name}' is defined twice")
        _check_definition(d)
        defs[d.name] = d
    graphs, failed = [], []
    for d in module.definitions:
        if d.kind == "graph":
            try:
                graphs.append(_build_graph(d, defs, source, warnings))
            except CompileError as e:  # the other graphs still get their errors reported
                failed.extend(e.diagnostics)
    if failed and errors is None:
        raise CompileError(failed)
    if errors is not None:
        errors.extend(failed)
    return graphs


def _build_graph(d: s.Definition, defs, source: str, warnings: list | None) -> Graph:
    b = _Builder(defs)
    dims = {x: Dim.of(x) for p in d.params for x in p.dims if isinstance(x, str)}
    scope = _Scope(None, {}, dims)
    params, inputs = [], []
    for i, p in enumerate(d.params):
        param = Param(p.name, p.dtype, p.dims, p.loc)
        shape = tuple(Dim.of(x) for x in p.dims)
        with at(p.loc):
            n = b.leaf(
                replace(
                    untyped("param", hint=p.name, name=p.name, index=i), type=Type(p.dtype, shape)
                )
            )
        params.append(param)
        inputs.append(n)
        scope.vars[p.name] = n
    try:
        outputs = b.body(d, scope)
    except _Poisoned:
        outputs = None  # an output depends on a failed statement, whose error is reported
    if b.errors or outputs is None:
        raise CompileError(b.errors)
    if warnings is not None:
        warnings.extend(_unused(d, b, inputs, outputs))

    floats = [p.name for p in d.params if p.dtype == "float"]
    if d.wrt is None:
        wrt = tuple(floats)
    else:
        wrt = []
        for name, loc in d.wrt:
            if name in wrt:
                raise error(loc, f"'{name}' is listed twice after wrt")
            if name not in {p.name for p in d.params}:
                known = [p.name for p in d.params]
                raise error(
                    loc,
                    f"wrt: '{name}' is not a parameter of graph '{d.name}'{_suggest(name, known)}",
                )
            if name not in floats:
                raise error(
                    loc, f"wrt: '{name}' is an integer parameter and cannot be differentiated"
                )
            wrt.append(name)
        wrt = tuple(wrt)

    # Give each value its source name, now that every statement has been seen.
    mapping: dict[Node, Node] = {}
    nodes = []
    for n in b.nodes:
        args = tuple(mapping[a] for a in n.args)
        hint = b.hints.get(n, (0, n.hint))[1]
        m = n if args == n.args and hint == n.hint else replace(n, args=args, hint=hint)
        mapping[n] = m
        nodes.append(m)
    if len(set(d.outputs)) != len(d.outputs):  # pragma: no cover - checked above
        raise CompileError([])
    return Graph(
        name=d.name,
        loc=d.loc,
        params=tuple(params),
        inputs=tuple(mapping[n] for n in inputs),
        output_names=d.outputs,
        outputs=tuple(mapping[n] for n in outputs),
        wrt=wrt,
        nodes=tuple(nodes),
        source=source,
    )
