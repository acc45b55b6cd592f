"""`bpc check`: every graph's gradients against central finite differences, on random inputs.

For a graph with one scalar output, each gradient from `g_grad` is compared with central
differences of the forward pass; for other graphs, the dot-product test compares
`<dout, J v>` (from central differences of the forward along a random direction `v`) with
`<J^T dout, v>` (from `g_backward`). Integer inputs are drawn below the bound their uses need:
class labels below the class dimension, indices below the gathered axis. A gradient that agrees
only because it is zero everywhere tested is reported as not tested, and a graph that raises at
the sizes checked as one row saying so.

With `jvp`, each output's tangent from `g_jvp` (`Jv(out)`) is compared with central
differences of the forward along the tangents, and `<J v, u>` with `<v, J^T u>` from
`g_backward` (`<Jv,u>`); with `hvp`, each Hessian-vector product from `g_hvp` (`Hv(W)`) with
central differences of the gradient `g_grad` along the vectors.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np

from .conditions import default_sizes
from .dims import Dim
from .emit import emit
from .ir import Graph
from .loader import module_from_text
from .pipeline import compile_graphs
from .signature import order

# For an integer argument of these operations, the exclusive upper bound of its values, from
# the node: (op, argument position) -> function of the node giving a Dim.
INDEX_BOUNDS = {
    ("cross_entropy", 1): lambda n: n.args[0].shape[-1],
    ("take", 1): lambda n: n.args[0].shape[n.attr("axis", 0)],
    ("take_along", 1): lambda n: n.args[0].shape[-1],
    ("one_hot", 0): lambda n: Dim.of(n.attr("C")),
}


ZERO = "not tested: identically zero at these sizes"


@dataclass(frozen=True)
class Row:
    """One gradient's check, or a graph that could not run (`gradient` empty, `note` why).

    `ok` is whether it agrees with finite differences; `note`, when set, is the result to show
    instead of ok or FAIL: `ZERO` for a gradient that agrees only because it and its estimate
    are zero (the check tested nothing), or why the graph could not run."""

    graph: str
    gradient: str
    shape: str
    error: float
    ok: bool
    note: str = ""

    @property
    def result(self) -> str:
        return self.note or ("ok" if self.ok else "FAIL")


def _bounds(graph: Graph) -> dict[str, Dim]:
    """The bound each integer parameter's uses need (the smallest, when several)."""
    out: dict[str, Dim] = {}
    for n in graph.nodes:
        for i, a in enumerate(n.args):
            rule = INDEX_BOUNDS.get((n.op, i))
            if rule and a.op == "param":
                bound = rule(n)
                name = a.attr("name")
                if name not in out or (
                    bound.is_const and out[name].is_const and bound.value < out[name].value
                ):
                    out[name] = bound
    return out


def _value(d: Dim, sizes: dict[str, int]) -> int:
    return d.subs({s: Dim.of(v) for s, v in sizes.items()}).value


def make_inputs(graph: Graph, sizes: dict[str, int], dtype, rng) -> list:
    bounds = _bounds(graph)
    args = []
    for p in graph.params:
        shape = tuple(int(d.evaluate(sizes)) for d in p.dims)
        if p.dtype == "int":
            high = _value(bounds[p.name], sizes) if p.name in bounds else 2
            args.append(rng.integers(0, max(high, 1), shape))
        else:
            args.append(rng.uniform(0.5, 1.5, shape).astype(dtype))
    return args


def check_source(
    text: str,
    *,
    graph: str | None = None,
    dims: dict[str, int] | None = None,
    dtype=np.float64,
    seed: int = 0,
    jvp: bool = False,
    hvp: bool = False,
) -> list[Row]:
    """Rows of the worst relative error per gradient of every graph (or of `graph`), for the
    code compiled as `bpc compile --dim` compiles it for `dims`, and checked at these sizes
    (the others 2 to 5). A graph that raises at them (`x[5]` on `[n]` with `n = 2`) gives one
    row saying so, and the other graphs are still checked."""
    compiled = compile_graphs(text, sizes=dims, jvp=jvp, hvp=hvp)
    module = module_from_text(emit(compiled, "check.bp"), "bpc_check_module")
    rows = []
    for c in compiled:
        g = c.pair
        if graph is not None and g.name != graph:
            continue
        names = order(g.params)
        try:
            sizes = default_sizes(g, dims or {})
        except ValueError as e:
            rows.append(Row(g.name, "", "", float("nan"), False, f"{e}; give sizes with --dim"))
            continue
        try:
            rows += _check_graph(module, g, sizes, dtype, seed)
            if c.jvp is not None:
                rows += _check_jvp(module, g, sizes, dtype, seed)
            if c.hvp is not None:
                rows += _check_hvp(module, g, sizes, dtype, seed)
        except Exception as e:  # the user's graph at these sizes, not bpc: report, go on
            rows.append(Row(g.name, "", "", float("nan"), False, _not_run(e, names, sizes)))
    if graph is not None and not rows and graph not in {c.pair.name for c in compiled}:
        raise KeyError(f"no graph named '{graph}'")
    return rows


def _check_graph(module, g: Graph, sizes: dict[str, int], dtype, seed: int) -> list[Row]:
    """The rows of one graph's gradients, on random inputs of these sizes."""
    eps, tol = _tolerances(dtype)
    rng = np.random.default_rng(seed)
    args = make_inputs(g, sizes, dtype, rng)
    fn = getattr(module, _attr(module, g.name))
    forward = getattr(module, _attr(module, g.name + "_forward"))
    backward = getattr(module, _attr(module, g.name + "_backward"))
    outs, cache = forward(*args)
    outs = outs if len(g.outputs) > 1 else (outs,)
    douts = [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]
    grads = backward(tuple(douts) if len(douts) > 1 else douts[0], cache)
    # a scalar output's `g_grad` too: the upstream gradient 1, its own fused code
    fused = None
    if len(g.outputs) == 1 and not g.outputs[0].ndim:
        _, fused = getattr(module, _attr(module, g.name + "_grad"))(*args)
    index = {p.name: i for i, p in enumerate(g.params)}
    rows = []
    for k, (name, grad) in enumerate(zip(g.wrt, grads)):
        i = index[name]
        worst = 0.0
        for _ in range(3):  # three random directions; the worst counts
            v = rng.standard_normal(np.shape(args[i]))
            checks = [(douts, grad)] + ([] if fused is None else [([1.0], fused[k])])
            for ds, gr in checks:
                numeric = _directional(fn, args, i, v, ds, dtype, eps)
                analytic = float(np.sum(np.asarray(gr, np.float64) * v))
                error = abs(numeric - analytic) / max(1.0, abs(numeric), abs(analytic))
                worst = max(worst, error)
        shape = "[" + ", ".join(str(d) for d in g.inputs[i].shape) + "]"
        # A zero gradient whose estimates are zero too agrees, but tests nothing.
        zero = worst < tol and not np.any(grad)
        rows.append(Row(g.name, "d" + name, shape, worst, worst < tol, ZERO if zero else ""))
    return rows


def _tolerances(dtype) -> tuple[float, float]:
    """The finite-difference step and the relative error allowed, for the dtype checked."""
    return (1e-6, 1e-5) if np.dtype(dtype) == np.float64 else (1e-2, 5e-2)


def _moved(args: list, wrt: list[int], vectors: list, step: float, dtype) -> list:
    """The arguments moved by `step` times the vectors along the `wrt` arguments."""
    moved = list(args)
    for i, v in zip(wrt, vectors):
        moved[i] = (np.asarray(args[i], dtype=np.float64) + step * v).astype(dtype)
    return moved


def _row(g: Graph, name: str, shape, got, want, tol: float) -> Row:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    error = float(np.max(np.abs(got - want), initial=0.0)) / scale
    zero = error < tol and not np.any(got)
    text = "[" + ", ".join(str(d) for d in shape) + "]"
    return Row(g.name, name, text, error, error < tol, ZERO if zero else "")


def _directions(g: Graph, args: list, rng) -> tuple[list[int], list]:
    index = {p.name: i for i, p in enumerate(g.params)}
    wrt = [index[name] for name in g.wrt]
    return wrt, [rng.standard_normal(np.shape(args[i])) for i in wrt]


def _check_jvp(module, g: Graph, sizes: dict[str, int], dtype, seed: int) -> list[Row]:
    """`g_jvp`'s tangents against central differences of the forward along the tangents, and
    the dot-product identity `<J v, u> = <v, J^T u>` with `g_backward`."""
    eps, tol = _tolerances(dtype)
    rng = np.random.default_rng(seed + 1)
    args = make_inputs(g, sizes, dtype, rng)
    wrt, vectors = _directions(g, args, rng)
    tangents = [v.astype(dtype) for v in vectors]
    outs, touts = getattr(module, _attr(module, g.name + "_jvp"))(*args, *tangents)
    single = len(g.outputs) == 1
    outs, touts = ((outs,), (touts,)) if single else (outs, touts)
    fn = getattr(module, _attr(module, g.name))

    def forward(step: float):
        out = fn(*_moved(args, wrt, vectors, step, dtype))
        return (out,) if single else out

    up, down = forward(eps), forward(-eps)
    rows = []
    for name, n, t, a, b in zip(g.output_names, g.outputs, touts, up, down):
        want = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) / (2 * eps)
        rows.append(_row(g, f"Jv({name})", n.shape, t, want, tol))
    douts = [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]
    _, cache = getattr(module, _attr(module, g.name + "_forward"))(*args)
    grads = getattr(module, _attr(module, g.name + "_backward"))(
        douts[0] if single else tuple(douts), cache
    )
    left = sum(float(np.sum(np.asarray(t, np.float64) * u)) for t, u in zip(touts, douts))
    right = sum(float(np.sum(np.asarray(d, np.float64) * v)) for d, v in zip(grads, vectors))
    return rows + [_row(g, "<Jv,u>", (), left, right, tol)]


def _check_hvp(module, g: Graph, sizes: dict[str, int], dtype, seed: int) -> list[Row]:
    """`g_hvp` against central differences of the gradient (`g_grad`) along the vectors."""
    eps, tol = _tolerances(dtype)
    eps = eps * 10 if np.dtype(dtype) == np.float64 else eps  # (a gradient is noisier)
    rng = np.random.default_rng(seed + 2)
    args = make_inputs(g, sizes, dtype, rng)
    wrt, vectors = _directions(g, args, rng)
    products = getattr(module, _attr(module, g.name + "_hvp"))(
        *args, *(v.astype(dtype) for v in vectors)
    )
    grad = getattr(module, _attr(module, g.name + "_grad"))
    _, up = grad(*_moved(args, wrt, vectors, eps, dtype))
    _, down = grad(*_moved(args, wrt, vectors, -eps, dtype))
    rows = []
    for k, (name, i) in enumerate(zip(g.wrt, wrt)):
        want = (np.asarray(up[k], np.float64) - np.asarray(down[k], np.float64)) / (2 * eps)
        rows.append(_row(g, f"Hv({name})", g.inputs[i].shape, products[k], want, tol))
    return rows


def _not_run(e: Exception, names: list[str], sizes: dict[str, int]) -> str:
    """Why a graph could not run at `sizes`, on one line, and what to try."""
    what = f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e) else type(e).__name__
    if not names:
        return f"could not run ({what})"
    at = ", ".join(f"{n}={sizes[n]}" for n in names)
    return f"could not run at {at} ({what}); give other sizes with --dim NAME=VALUE"


def _directional(fn, args, i, v, douts, dtype, eps) -> float:
    """<dout, J v> by central differences of the forward along `v` in argument `i`."""

    def along(step: float) -> float:
        out = fn(*_moved(args, [i], [v], step, dtype))
        out = out if len(douts) > 1 else (out,)
        return sum(float(np.sum(np.asarray(o, np.float64) * d)) for o, d in zip(out, douts))

    return (along(eps) - along(-eps)) / (2 * eps)


def emit_tests(
    text: str, module_file: str, source_name: str, dims: dict[str, int] | None = None
) -> str:
    """A standalone pytest file (NumPy and pytest only) that checks the gradients of the module
    compiled from `text`, which is to be written to the file named `module_file` beside it. Any
    file name works: the checks import the module by its path, named by a string literal."""
    from .emit import HEADER, _environment, _python_name
    from .escape import comment, docstring, literal

    graphs = {}
    for c in compile_graphs(text):
        g = c.pair
        sizes = default_sizes(g, dims or {})
        bounds = _bounds(g)
        params = [
            (
                p.name,
                p.dtype,
                tuple(int(d.evaluate(sizes)) for d in p.dims),
                _value(bounds[p.name], sizes) if p.name in bounds else 2,
            )
            for p in g.params
        ]
        functions = tuple(_python_name(g.name + s) for s in ("", "_forward", "_backward"))
        graphs[g.name] = (functions, params, list(g.wrt), len(g.outputs))
    rendered = (
        _environment()
        .get_template("checks.py.j2")
        .render(
            header=HEADER.format(source=comment(source_name)),
            module_doc=docstring(module_file),
            module_literal=literal(module_file),
            graphs=repr(graphs),
        )
    )
    import black

    return black.format_str(rendered, mode=black.Mode())


def _attr(module: types.ModuleType, name: str) -> str:
    return name if hasattr(module, name) else name + "_"


def table(rows: list[Row]) -> str:
    head = f"{'graph':<16} {'gradient':<12} {'shape':<14} {'worst rel. error':>16}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r.gradient:  # a graph that could not run
            lines.append(f"{r.graph:<16} {r.note}")
        else:
            lines.append(
                f"{r.graph:<16} {r.gradient:<12} {r.shape:<14} {r.error:>16.2e}  {r.result}"
            )
    return "\n".join(lines)
