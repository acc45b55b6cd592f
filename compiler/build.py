"""Stage 2: syntax tree -> IR. Names are resolved, `fn` calls inlined, built-in calls lowered.

Each `graph` becomes one `Graph` whose nodes are still untyped: the shape pass types them. A call
to a `fn` binds each argument through a `bind` node that carries the `fn`'s declared shape in
fresh dimension symbols, so the shape pass can unify the `fn`'s dimensions per call site.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field, replace

from . import hints
from . import syntax as s
from .conditions import Recorder, recording, require_multiple
from .diagnostics import CompileError, Diagnostic, Loc, error
from .dims import Dim
from .ir import (
    OPS,
    REQUIRED,
    Graph,
    Node,
    Param,
    Region,
    ShapeError,
    Type,
    at,
    const,
    frontier,
    reachable,
    region_param,
    untyped,
)
from .ir import here as current_loc
from .loops import distinct
from .ops import CONSTANTS, PLANNED, SPELLED
from .signature import check_plan

BUILTINS = SPELLED | PLANNED

# Static parameters that take a string literal, and what they expect: nothing else takes one.
STRING_PARAMS = {"spec": 'a string, such as "ij,jk->ik"', "approximate": '"none" or "tanh"'}
STRINGS_ELSEWHERE = "a string can only be an einsum spec or gelu's approximate="
# the parameters that take a number written in the source, float or integer (huber's delta)
NUMBER_PARAMS = {"delta": "a number, such as 1.0"}

_fresh = itertools.count(1)


@dataclass
class _Scope:
    """What names mean inside one graph or one inlined `fn` call."""

    fn: str | None  # the fn being inlined, None in a graph body
    vars: dict[str, Node]
    dims: dict[str, Dim]
    depth: int = 0
    stack: tuple[str, ...] = ()
    loop: str | None = None  # the region of the innermost loop whose body this is
    loop_vars: frozenset[str] = frozenset()  # the loop variables in scope
    loop_var: str | None = None  # the innermost loop's
    locals: dict[str, Loc] = field(default_factory=dict)  # a loop body's names -> the loop


class _Poisoned(Exception):
    """A statement used a value whose own statement failed: its error is already reported."""


POISON = object()  # the value of a name whose statement failed


@dataclass
class _Builder:
    module: dict[str, s.Definition]
    nodes: list[Node] = field(default_factory=list)
    hints: dict[Node, tuple[int, str]] = field(default_factory=dict)
    errors: list = field(default_factory=list)  # diagnostics of failed statements
    statements: list = field(default_factory=list)  # (name, loc, value) at graph level
    recorder: Recorder = field(default_factory=Recorder)  # conditions of divisions of sizes
    regions: itertools.count = field(default_factory=lambda: itertools.count(1))

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
        self.block(d.body, scope)
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

    def block(self, body, scope: _Scope, slots: dict | None = None) -> None:
        """Bind the names of a body's statements in `scope`; a statement that fails has its
        error reported (or raised, inside an inlined fn) and its names poisoned. A loop body's
        slot writes are gathered in `slots`, by array."""
        for stmt in body:
            try:
                if isinstance(stmt, s.For):
                    self.loop(stmt, scope)
                    continue
                if isinstance(stmt, s.SlotWrite):
                    self.slot_write(stmt, scope, slots)
                    continue
                values = self.statement(stmt, scope)
            except (CompileError, _Poisoned) as e:
                if scope.fn is not None:  # inside an inlined fn: the call site reports it
                    raise
                if isinstance(e, CompileError):
                    self.errors.extend(e.diagnostics)
                for target in _poisoned_by(stmt, scope):  # later uses are not errors of their own
                    scope.vars[target] = POISON
                continue
            for target, loc, value in zip(stmt.targets, stmt.target_locs, values):
                # A fn's own names are prefixed by the fn, so `out` in `affine` reads `affine_out`.
                self.name(value, f"{scope.fn}_{target}" if scope.fn else target, scope.depth)
                scope.vars[target] = value
                if scope.fn is None and scope.loop is None:
                    self.statements.append((target, loc, value))

    def statement(self, stmt: s.Assign, scope: _Scope) -> tuple[Node, ...]:
        """The values a statement binds, one per name on its left: several only for a call of
        a `fn` with that many outputs."""
        e, n = stmt.value, len(stmt.targets)
        here = self.loc(e.loc, scope)
        name = e.func.id if isinstance(e, s.Call) and isinstance(e.func, s.Name) else None
        d = self.module.get(name)
        d = d if d is not None and d.kind == "fn" else None
        if d is not None and len(d.outputs) != n and (n > 1 or len(d.outputs) > 1):
            hint = f"; assign them to names: {_multiple(d, e)}" if n == 1 else ""
            raise error(
                here,
                f"fn '{d.name}' returns {_count(len(d.outputs), 'value')}, "
                f"but {_count(n, 'name')} {'is' if n == 1 else 'are'} assigned{hint}",
            )
        if n == 1:
            value = self.expr(e, scope)
            if not isinstance(value, Node):
                raise error(here, "a tuple is not a value; give one expression")
            return (value,)
        for i, target in enumerate(stmt.targets):
            if target in stmt.targets[:i]:
                raise error(
                    self.loc(stmt.target_locs[i], scope),
                    f"'{target}' is assigned twice in one statement",
                )
        if d is None:
            raise error(here, self._one_value(e, n, scope))
        with at(here):
            return self.inline(d, e, scope)

    def _one_value(self, e: s.Expr, n: int, scope: _Scope) -> str:
        """Why `e`, which is not a call of a `fn`, cannot be assigned to `n` names."""
        if isinstance(e, s.Tuple):
            return "a tuple cannot be unpacked; assign each name in a statement of its own"
        if isinstance(e, s.Call) and isinstance(e.func, s.Name) and e.func.id not in BUILTINS:
            self.expr(e, scope)  # an unknown function, or a graph: its own error
        what = f"'{e.func.id}' returns" if isinstance(e, s.Call) else "an expression gives"
        return (
            f"{what} one value, but {n} names are assigned; only a call of a fn with "
            f"{n} outputs can be assigned to {n} names"
        )

    # -- loops --------------------------------------------------------------------------

    def loop(self, stmt: s.For, scope: _Scope) -> None:
        """A `for` loop: one `loop` node whose body is a closed region. A name defined before
        the loop and assigned in its body is carried; a slot write writes one slot of an array
        made before the loop; every other name the body assigns is local to it."""
        start, stop = self.range(stmt, scope)
        if stmt.var in scope.vars or stmt.var in scope.dims:
            what = "a value" if stmt.var in scope.vars else "a dimension"
            raise error(
                self.loc(stmt.var_loc, scope),
                f"the loop variable '{stmt.var}' would hide {what} of that name; name it "
                "something else",
            )
        region = str(next(self.regions))
        carried = [n for n in s.assigned(stmt.body, nested_slots=True) if n in scope.vars]
        for name in carried:
            if scope.vars[name] is POISON:
                raise _Poisoned()
        t = self.region_param(stmt.var, region, 0, Type("int", ()))
        params = [self.region_param(n, region, i + 1) for i, n in enumerate(carried)]
        inner = replace(
            scope,
            vars={**scope.vars, stmt.var: t, **dict(zip(carried, params))},
            loop=region,
            loop_vars=scope.loop_vars | {stmt.var},
            loop_var=stmt.var,
            locals={},
        )
        slots: dict[str, tuple] = {}
        saved, self.nodes, errors = self.nodes, [], len(self.errors)
        try:
            self.block(stmt.body, inner, slots)
        finally:
            body, self.nodes = self.nodes, saved
        here = self.loc(stmt.loc, scope)
        for name in inner.vars.keys() - scope.vars.keys() - {stmt.var}:
            scope.locals[name] = here
        scope.locals.update({k: v for k, v in inner.locals.items() if k not in scope.vars})
        if len(self.errors) > errors or any(inner.vars[n] is POISON for n in carried):
            raise _Poisoned()  # (the body's errors are reported: the loop's names are poisoned)
        results = [inner.vars[n] for n in carried]
        for _, value, positions, _ in slots.values():
            results += [value, *positions]
        kinds = [("carry",)] * len(carried) + [("slot", a, "set") for a, *_ in slots.values()]
        written = tuple((w.line, w.col, w.fn) for *_, w in slots.values())
        free, region_body = self.close(body, [t, *params], results, region)
        inits = [scope.vars[n] for n in carried] + [scope.vars[n] for n in slots]
        with at(here):
            node = self.node(
                "loop",
                *inits,
                *free,
                body=region_body,
                kinds=tuple(kinds),
                start=start,
                stop=stop,
                written=written,
            )
            for i, name in enumerate(carried + list(slots)):
                value = scope.vars[name] = self.node("result", node, index=i)
                self.name(value, f"{scope.fn}_{name}" if scope.fn else name, scope.depth)

    def range(self, stmt: s.For, scope: _Scope) -> tuple[Dim, Dim]:
        here = self.loc(stmt.range_loc, scope)
        if stmt.range_name != "range":
            raise error(here, f"a loop runs over range(...), not over '{stmt.range_name}'")
        if not 1 <= len(stmt.bounds) <= 2:
            raise error(
                here,
                "range() takes a stop, or a start and a stop; to run backwards in time, index "
                "with T - 1 - t",
            )
        bounds = [self.bound(b, scope, "a loop bound") for b in stmt.bounds]
        return (Dim.of(0), bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])

    def region_param(self, name: str, region: str, index: int, type: Type | None = None) -> Node:
        """A param of a loop body: the loop variable, a carried value or an outer value."""
        return region_param(name, region, index, type, current_loc())

    def close(self, body: list[Node], params: list[Node], results: list[Node], region: str):
        """The body as a closed region: each value it reads from outside the loop becomes a
        param of its own (after `params`), and those values are the loop's outer arguments.
        The body's nodes take their source names here."""
        inside = set(body) | set(params)
        free, _ = frontier(results, inside.__contains__)
        outer = sorted(free, key=_first_seen(self.nodes, set(free)))
        mapping = {
            n: self.region_param(
                self.hints.get(n, (0, n.hint))[1] or "v", region, len(params) + i, n.type
            )
            for i, n in enumerate(outer)
        }
        for n in body:
            args = tuple(mapping.get(a, a) for a in n.args)
            hint = self.hints.get(n, (0, n.hint))[1]
            mapping[n] = (
                n if args == n.args and hint == n.hint else replace(n, args=args, hint=hint)
            )
        region_params = tuple(params) + tuple(mapping[n] for n in outer)
        return outer, Region(region_params, tuple(mapping.get(r, r) for r in results))

    def slot_write(self, stmt: s.SlotWrite, scope: _Scope, slots: dict | None) -> None:
        """`ys[:, t] = value` in a loop body: ':' on every axis but one, and on that one a
        position that depends on the loop variable."""
        here = self.loc(stmt.loc, scope)
        example = f"{stmt.target}[:, t] = ..."
        if slots is None:
            raise error(
                here,
                f"only a loop writes slots of an array ({example}); elsewhere give the new "
                "value a name of its own",
            )
        if stmt.target not in scope.vars:
            raise error(
                here, f"unknown name '{stmt.target}': make the array before the loop, with zeros"
            )
        if stmt.target in slots:
            raise error(here, f"'{stmt.target}' has a slot written twice in one iteration")
        axes = tuple(i for i, sub in enumerate(stmt.subscripts) if not _full_slice(sub))
        if not axes or any(isinstance(stmt.subscripts[i], s.Slice) for i in axes):
            raise error(
                here,
                f"a slot write takes ':' on every axis but those it writes at one position: "
                f"{example}",
            )
        subs = [stmt.subscripts[i] for i in axes]
        if not any(_mentions(sub, {scope.loop_var}) for sub in subs):
            raise error(
                self.loc(subs[-1].loc, scope),
                f"the position of a slot write must depend on the loop variable "
                f"'{scope.loop_var}', or every iteration would write the same slot",
            )
        positions = tuple(self.value(sub, scope) for sub in subs)
        if not any(distinct(p, scope.vars[scope.loop_var]) for p in positions):
            raise error(
                self.loc(subs[-1].loc, scope),
                f"bpc cannot tell that each iteration writes a slot of its own here; write the "
                f"position as {scope.loop_var} plus or minus sizes ({scope.loop_var}, "
                f"T - 1 - {scope.loop_var}, 2 * {scope.loop_var} + 1)",
            )
        slots[stmt.target] = (axes, self.value(stmt.value, scope), positions, here)

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
                if name in hints.CONSTANTS:
                    raise error(here, hints.CONSTANTS[name])
                if name in scope.locals:
                    line = scope.locals[name].line
                    raise error(
                        here,
                        f"'{name}' is local to the loop on line {line}; to use it after the "
                        f"loop, assign it a value before the loop too (it is then carried)",
                    )
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
            case s.Binary(op="floordiv"):
                # sizes only: `n // 2` is a size, as in a shape; values have no floor division
                size = self.static(e, scope, "'//' divides sizes only: each operand")
                return self.leaf(self._dim_node(Dim.of(size)))
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
        a string only for the parameters of `STRING_PARAMS` (an einsum spec, gelu's form), a
        number written in the source for those of `NUMBER_PARAMS` (huber's delta)."""
        here = self.loc(e.loc, scope)
        if what in STRING_PARAMS:
            if not isinstance(e, s.String):
                raise error(here, f"{what} must be {STRING_PARAMS[what]}")
            return e.value
        if what in NUMBER_PARAMS:
            match e:
                case s.Number(value=v) if not isinstance(v, bool):
                    return v
                case s.Unary(op="neg", operand=s.Number(value=v)) if not isinstance(v, bool):
                    return -v
            raise error(here, f"{what} must be {NUMBER_PARAMS[what]}")
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
            case s.Name(id=name) if name in hints.CONSTANTS:
                raise error(here, hints.CONSTANTS[name])
            case s.Binary(op=("add" | "sub" | "mul" | "div" | "floordiv") as op, left=a, right=b):
                x, y = self.static(a, scope, what), self.static(b, scope, what)
                if isinstance(x, (int, Dim)) and isinstance(y, (int, Dim)):
                    return self.arith(op, Dim.of(x), Dim.of(y), here)
        raise error(here, f"{what} must be known at compile time (integers and dimension names)")

    def arith(self, op: str, x: Dim, y: Dim, here: Loc) -> Dim:
        """`x op y` on dimensions; an exact division records that it must divide."""
        if op in ("add", "sub", "mul"):
            return x + y if op == "add" else x - y if op == "sub" else x * y
        if not y.terms:
            raise error(here, f"{x} / {y}: division by zero")
        if op == "floordiv":
            if y.is_const and y.value < 0:
                raise error(here, f"{x} // {y}: the divisor of a size must be positive")
            return x.floor_div(y)
        try:
            quotient = x.exact_div(y)
        except ValueError:
            raise error(
                here, f"{x} / ({y}): a size can be divided by a number or a dimension name only"
            ) from None
        wrong = f"{x} / {y} is not a whole number"
        with recording(self.recorder), at(here):
            try:
                require_multiple(x, y, f"{x} / {y}", wrong)
            except ShapeError as e:
                raise error(here, str(e)) from None
        return quotient

    def index(self, e: s.Index, scope: _Scope) -> Node:
        """`x[...]`: each subscript an integer or a slice with compile-time bounds; the shape rule
        of `index` (ops/index.py) checks them against the shape."""
        items, positions = [], []
        for sub in e.subscripts:
            if not isinstance(sub, s.Slice) and _mentions(sub, scope.loop_vars):
                # a position known when the code runs: `x[:, t]`, `x[:, T - 1 - t]`
                axis = len(items) - sum(not isinstance(i, tuple) for i in items)
                positions.append((axis, self.value(sub, scope)))
                items.append((None, None, None))
                continue
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
        x = self.value(e.value, scope)
        if not positions or any(i != (None, None, None) for i in items):
            x = self.node("index", x, index=tuple(items))
        for axis, position in reversed(positions):
            x = self.node("select", x, position, axis=axis)
        return x

    def bound(self, e: s.Expr | None, scope: _Scope, what: str) -> Dim | None:
        """An index or a slice bound: an integer or a dimension expression."""
        if e is None:
            return None
        here = self.loc(e.loc, scope)
        if _mentions(e, scope.loop_vars):
            hint = (
                "a loop's bounds are dimension expressions, the same for every iteration of "
                "the loops around it"
                if what == "a loop bound"
                else "read one position at a time (x[:, t])"
            )
            raise error(
                here,
                f"{what} must be known at compile time, and a loop variable is known only when "
                f"the code runs; {hint}",
            )
        if isinstance(e, s.Bool) or (isinstance(e, s.Number) and isinstance(e.value, float)):
            raise error(here, f"{what} must be an integer or a dimension expression")
        v = self.static(e, scope, what)
        if not isinstance(v, (int, Dim)) or isinstance(v, bool):
            raise error(here, f"{what} must be an integer or a dimension expression")
        return Dim.of(v)

    def call(self, e: s.Call, scope: _Scope) -> Node:
        here = self.loc(e.loc, scope)
        if isinstance(e.func, s.Attribute):
            raise error(here, self.method(e, scope))
        if not isinstance(e.func, s.Name):
            raise error(here, "only named functions can be called")
        name = e.func.id
        if name in self.module and self.module[name].kind == "fn":
            d = self.module[name]
            if len(d.outputs) != 1:
                raise error(
                    here,
                    f"fn '{name}' returns {len(d.outputs)} values, so it cannot be part of an "
                    f"expression; assign them to names first: {_multiple(d, e)}",
                )
            (out,) = self.inline(d, e, scope)
            return out
        if name in self.module and name not in BUILTINS:  # a graph may share a built-in's name
            raise error(here, f"'{name}' is a graph; only fn definitions can be called")
        if name not in BUILTINS:
            if name in hints.WORDS:  # `not(x > 0)`, `if(...)`
                raise error(here, hints.WORDS[name])
            hint = _suggest(name, self.functions(), "; it is neither a built-in nor a fn")
            raise error(here, f"unknown function '{name}'{hint}")
        if name in PLANNED:
            raise error(here, f"'{name}' is not supported yet")
        op = OPS[name]
        values = self.arguments(e, scope, op.call, dict(op.static))
        static = dict(op.static)
        args, attrs = [], {}
        for param, arg in zip(op.call, values):
            if param.startswith("*"):
                args.extend(self.value(a, scope) for a in arg)
            elif param.endswith("?"):  # an optional array: `conv2d(x, w)` or `conv2d(x, w, b)`
                if arg is not None:
                    args.append(self.value(arg, scope))
            elif param not in static:
                args.append(self.value(arg, scope))
            elif arg is not None:
                attrs[param] = self.static(arg, scope, param)
            else:
                attrs[param] = static[param]
        return self.node(name, *args, **attrs)

    def functions(self) -> set[str]:
        """The names a call may use: the built-ins and the module's `fn`s."""
        return set(BUILTINS) | {n for n, d in self.module.items() if d.kind == "fn"}

    def method(self, e: s.Call, scope: _Scope) -> str:
        """Why `x.sum(axis=1)` or `np.exp(x)` is not bp, and what to write instead: bp has no
        methods and no modules, only functions (and the attribute `.T`)."""
        value, name = e.func.value, e.func.attr
        if name == "T":
            return f"'.T' is not a function; write {s.show(e.func)}"
        function = s.Name(e.func.loc, name)
        if isinstance(value, s.Name) and value.id not in scope.vars and value.id not in scope.dims:
            if name not in self.functions():  # `torch.foo(x)`
                return f"unknown function '{value.id}.{name}'; bp has no modules"
            call = replace(e, func=function, kwargs=_bp_keywords(e.kwargs))
            return f"the built-ins are called without a module: write {s.show(call)}"
        if name not in self.functions():
            return f"unknown method '.{name}'; bp has no methods, only functions and '.T'"
        args, slots = e.args, self.slots(name)
        if slots and len(args) > slots:  # `x.reshape(N, 4)`, as NumPy takes it: one tuple
            args = (*args[: slots - 1], s.Tuple(args[slots - 1].loc, args[slots - 1 :]))
        call = s.Call(e.loc, function, (value, *args), _bp_keywords(e.kwargs))
        return f"bp has no methods; write {s.show(call)}"

    def slots(self, name: str) -> int | None:
        """How many arguments a call of `name` takes after its first; None for any number."""
        if name in self.module and self.module[name].kind == "fn":
            return len(self.module[name].params) - 1
        call = OPS[name].call if name in OPS else ()
        return None if not call or any(p.startswith("*") for p in call) else len(call) - 1

    def arguments(self, e: s.Call, scope: _Scope, names: tuple[str, ...], defaults: dict):
        """Match a call's arguments to a built-in's parameters; missing optional ones are None.

        A parameter written `*name` (`call=("*arrays", "axis")`) is variadic, as in Python: it
        collects the remaining positional arguments, all tensors, as a tuple (at least one), and
        the parameters after it can only be given by keyword. They may come as one tuple too,
        as NumPy takes them: `stack((a, b), axis=1)` is `stack(a, b, axis=1)`. A parameter
        written `name?` (`call=("x", "w", "b?", "stride")`) is an optional array."""
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
        keywords = [n.rstrip("?") for n in names if not n.startswith("*")]
        bound = {n.rstrip("?"): v for n, v in bound.items()}
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
            if n not in bound and not n.endswith("?") and defaults.get(n, REQUIRED) is REQUIRED:
                raise error(self.loc(e.loc, scope), f"{fname}() needs the argument '{n}'")
        return [bound.get(n.rstrip("?")) for n in names]

    def inline(self, d: s.Definition, e: s.Call, scope: _Scope) -> tuple[Node, ...]:
        """The outputs of a call of `d`, its body built in a scope of its own."""
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
        dims = {name: Dim.of(f"{d.name}.{name}#{k}") for name in declared_names(d.params)}
        inner = _Scope(d.name, {}, dims, scope.depth + 1, scope.stack + (d.name,))
        for p, arg in zip(d.params, e.args):
            value = self.value(arg, scope)
            with at(self.loc(arg.loc, scope)):
                inner.vars[p.name] = self.node(
                    "bind",
                    value,
                    shape=self.declared(p, inner),
                    dtype=p.dtype,
                    param=p.name,
                    fn=d.name,
                )
        return self.body(d, inner)

    def declared(self, p: s.Param, scope: _Scope) -> tuple[Dim, ...]:
        """A parameter's declared shape, each dimension expression evaluated."""
        return tuple(Dim.of(self.static(e, scope, "a dimension")) for e in p.dims)


def _poisoned_by(stmt, scope: _Scope) -> list[str]:
    """The names a failed statement leaves without a value: its targets; for a loop, the
    names it carries and the arrays it writes."""
    if isinstance(stmt, s.For):
        return [n for n in s.assigned(stmt.body, nested_slots=True) if n in scope.vars] + [
            w.target for w in stmt.body if isinstance(w, s.SlotWrite) and w.target in scope.vars
        ]
    return list(stmt.targets)


def _full_slice(e: s.Expr) -> bool:
    return isinstance(e, s.Slice) and e.start is None and e.stop is None and e.step is None


def _mentions(e: s.Expr, names) -> bool:
    """Whether expression `e` reads one of `names`."""
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, s.Name) and x.id in names:
            return True
        stack.extend(s._parts(x))
    return False


def _first_seen(nodes: list[Node], among) -> callable:
    order = {n: i for i, n in enumerate(nodes) if n in among}
    return lambda n: order.get(n, -1)


def declared_names(params) -> list[str]:
    """The dimension names that parameters' types declare, in order of first appearance."""
    out: dict[str, None] = {}

    def walk(e: s.Expr) -> None:
        match e:
            case s.Name(id=name):
                out.setdefault(name)
            case s.Binary(left=a, right=b):
                walk(a)
                walk(b)
            case s.Unary(operand=a):
                walk(a)

    for p in params:
        for e in p.dims:
            walk(e)
    return list(out)


def _unused(d: s.Definition, b: _Builder, inputs, outputs) -> list[Diagnostic]:
    """Warnings for statements whose value no output uses, and for unused parameters."""
    live = reachable(outputs)
    found = [
        Diagnostic(loc, f"'{target}' is assigned but no output uses it", "warning")
        for target, loc, value in b.statements
        if value not in live
    ]
    found += [
        Diagnostic(p.loc, f"parameter '{p.name}' is not used by any output", "warning")
        for p, n in zip(d.params, inputs)
        if n not in live
    ]
    return found


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _multiple(d: s.Definition, call: s.Call) -> str:
    """A statement that assigns the outputs of a call of `d`, named as in `d`."""
    return f"{', '.join(d.outputs)} = {s.show(call)}"


def _bp_keywords(kwargs: tuple[s.Keyword, ...]) -> tuple[s.Keyword, ...]:
    """Keyword arguments as bp spells them, for a hint: `True` as `true`, `axis=None` left out."""
    out = []
    for kw in kwargs:
        value = kw.value
        if isinstance(value, s.Name) and value.id in ("True", "False"):
            value = s.Bool(value.loc, value.id == "True")
        if not (isinstance(value, s.Name) and value.id == "None"):
            out.append(replace(kw, value=value))
    return tuple(out)


def _suggest(name: str, known, otherwise: str = "") -> str:
    """`; did you mean 'K'?` for the known name closest to `name`, if one is close enough that
    the suggestion is likely what was meant; else `otherwise`."""
    close = [k for k in sorted(known) if _close(name, k)]
    if not close:
        return otherwise
    best = max(
        close,
        key=lambda k: (k.lower() == name.lower(), difflib.SequenceMatcher(None, name, k).ratio()),
    )
    return f"; did you mean '{best}'?"


def _close(a: str, b: str) -> bool:
    """The same but for case, one edit apart (not two one-letter names), or alike by difflib's
    ratio: `sofmax` and `softmax`, `xs` and `x`, but not `stack` and `take`."""
    if a.lower() == b.lower():
        return True
    if max(len(a), len(b)) >= 2 and _one_edit(a, b):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def _one_edit(a: str, b: str) -> bool:
    """Whether one insertion, deletion or replacement (or none) turns `a` into `b`."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    return a[i + (len(a) == len(b)) :] == b[i + 1 :]


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
    dims = {x: Dim.of(x) for x in declared_names(d.params)}
    scope = _Scope(None, {}, dims)
    params, inputs = [], []
    for i, p in enumerate(d.params):
        shape = b.declared(p, scope)
        param = Param(p.name, p.dtype, shape, p.loc)
        with at(p.loc):
            n = b.leaf(
                replace(
                    untyped("param", hint=p.name, name=p.name, index=i), type=Type(p.dtype, shape)
                )
            )
        params.append(param)
        inputs.append(n)
        scope.vars[p.name] = n
    check_plan(tuple(params))
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
        conditions=tuple(b.recorder.conditions),
    )
