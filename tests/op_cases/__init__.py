"""The op-case table of tests/test_ops.py, one module per family of operations.

Each module of this package defines `CASES` (op name -> list of cases) and may define `EXEMPT`
(op name -> why it has no cases); `CASES` and `EXEMPT` here merge them all, so a new family
file is picked up without touching anything else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bpc.diagnostics import Loc
from bpc.dims import Dim
from bpc.ir import Graph, Node, Param, Type, make, schedule, untyped

CHECKS = {
    "forward": "the forward value matches the oracle's",
    "fd": "the gradients match central finite differences",
    "autograd": "the gradients match autograd on the oracle",
    "pair": "g_forward + g_backward(1.0) agrees with g_grad",
    "shapes": "each gradient has its parameter's shape and dtype",
    "fresh": "each gradient is a fresh, writable array sharing no memory",
    "float32": "float32 inputs give float32 outputs and gradients",
}


@dataclass(frozen=True)
class Case:
    """One graph `f` with output `out`: bp source, or a builder of hand-made IR."""

    source: str | None = None
    build: Callable[[], Graph] | None = field(default=None, compare=False)
    label: str = ""
    positive: tuple[str, ...] = ()  # parameters drawn from [0.5, 2]
    away: tuple[str, ...] = ()  # parameters drawn with 0.5 <= |x| <= 1.5 (kinks at 0)
    sizes: tuple[tuple[str, int], ...] = ()  # overrides of SIZES
    ints: tuple[tuple[str, str | int], ...] = ()  # int parameters: (name, exclusive upper bound)
    # Known compiler bugs: (check, reason) pairs, the reason starting with "BUG:"; the checks
    # are the keys of CHECKS below.
    xfail: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.source if self.source is not None else f"<ir {self.label}>"

    def __repr__(self) -> str:
        return self.label or self.source.strip().splitlines()[-2].strip()


def C(
    sig: str,
    *lines: str,
    wrt: str = "",
    positive: str = "",
    away: str = "",
    ints: str = "",
    sizes: dict | None = None,
    xfail=None,
):
    """A case from a signature and body lines: `graph f(sig) -> out [wrt ...] { lines }`.
    `ints` gives integer parameters their range, `"y:C idx:5"` meaning 0 <= y < C, 0 <= idx < 5;
    `xfail` maps checks (or a tuple of checks) to the compiler bug that makes them fail."""
    head = f"graph f({sig}) -> out" + (f" wrt {wrt}" if wrt else "")
    body = "".join(f"    {line}\n" for line in lines)
    bounds = []
    for item in ints.split():
        name, bound = item.split(":")
        bounds.append((name, int(bound) if bound.isdigit() else bound))
    return Case(
        source=f"{head} {{\n{body}}}\n",
        positive=tuple(positive.split()),
        away=tuple(away.split()),
        ints=tuple(bounds),
        sizes=tuple((sizes or {}).items()),
        xfail=_xfail(xfail),
    )


def _xfail(spec: dict | None) -> tuple[tuple[str, str], ...]:
    out = []
    for checks, reason in (spec or {}).items():
        for check in (checks,) if isinstance(checks, str) else checks:
            assert check in CHECKS, check
            out.append((check, reason))
    return tuple(out)


def _ir_graph(params: list[tuple[str, tuple]], body: Callable[..., Node]) -> Graph:
    """A typed forward graph `f`, built by hand the way `bpc.build` builds one from source."""
    loc = Loc(1, 1)
    decls, inputs = [], []
    for i, (name, dims) in enumerate(params):
        decls.append(Param(name, "float", dims, loc))
        shape = tuple(Dim.of(d) for d in dims)
        node = untyped("param", hint=name, name=name, index=i)
        inputs.append(replace(node, type=Type("float", shape), loc=loc))
    out = body(*inputs)
    out = replace(out, hint="out")
    return Graph(
        name="f",
        loc=loc,
        params=tuple(decls),
        inputs=tuple(inputs),
        output_names=("out",),
        outputs=(out,),
        wrt=tuple(name for name, _ in params),
        nodes=schedule(inputs, (out, *inputs)),
        source="",
    )


def IR(label: str, params: list[tuple[str, tuple]], body: Callable[..., Node], xfail=None) -> Case:
    return Case(build=lambda: _ir_graph(params, body), label=label, xfail=_xfail(xfail))


def _dims(*names: str) -> tuple[Dim, ...]:
    return tuple(Dim.of(d) for d in names)


def _sum(x: Node, **kw) -> Node:
    return make("sum", x, **kw)


CASES: dict[str, list[Case]] = {}
EXEMPT: dict[str, str] = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _op, _cases in _module.CASES.items():
        CASES.setdefault(_op, []).extend(_cases)
    EXEMPT.update(getattr(_module, "EXEMPT", {}))
