"""The array-API target: the emission data as code for any library of the array API standard.

`ArrayApiPrinter` writes the same statements as `NumPyPrinter`, in the namespace `xp` that
`array_api_compat.array_namespace` finds for each call's arguments (NumPy, PyTorch, JAX, Dask,
CuPy), so that a function returns arrays of the library it was given. Its code is functional
(`functional`): no `out=`, no store into a slot; the lowering's only updates are `t += b` of an
array the function made, which NumPy, CuPy and PyTorch do in place and JAX and Dask rebind, so
`jax.jit` can trace it. What NumPy spells otherwise is translated here, as data, before it is
printed: `np.concatenate` is `xp.concat`, a method `x.sum(axis=1)` the function
`xp.sum(x, axis=1)`, `np.pad` a helper of the module; what the standard lacks is a helper with
a fallback per library (`templates/*_xp.py.j2`): the windows of a convolution (`_windows`, for
NumPy's sliding_window_view), pooling, and the slot writes of a loop, which the lowering
collects in a list and writes after the loop (`_slots`). A ReLU and its gradient, `maximum(x,
0)` and `g * (a > 0)`, go through helpers that take PyTorch's own kernels for them, where the
standard's forms are slower there (`_maximum`, `_times_above`). Arithmetic on Python numbers
(sizes) stays NumPy's, on the host.
"""

from __future__ import annotations

from .diagnostics import CompileError, Diagnostic
from .expr import (
    ARRAY,
    HELPER,
    LOCAL,
    MATH,
    Assign,
    Attr,
    AugAssign,
    BinOp,
    Call,
    Expr,
    Lit,
    Name,
    Ref,
    Slice,
    Stmt,
    Subscript,
    array,
    helper,
    reads,
)
from .printer import ATOM, NumPyPrinter

HOST = "host"  # NumPy, for Python numbers only (`float(np.sqrt(n))` of a size n)

# NumPy's functions that the standard names otherwise.
RENAMED = {"concatenate": "concat", "transpose": "permute_dims"}
# NumPy's scalar types, as the standard's dtypes.
SCALARS = {"int_": "int64", "bool_": "bool", "float64": "float64"}
# Array methods that are functions of the namespace in the standard.
METHODS = frozenset({"sum", "mean", "max", "min", "reshape", "astype"})
# NumPy's functions that the standard lacks: a helper of the module.
HELPED = {"pad": "_pad", "take_along_axis": "_take_along_axis", "einsum": "_einsum"}
# The helpers of the target, by name: each template dispatches on the library where it must.
HELPERS = {
    "_xp": "xp.py.j2",
    "_frozen": "frozen_xp.py.j2",
    "_scatter_add": "scatter_add_xp.py.j2",
    "_labels": "labels_xp.py.j2",
    "_erf": "erf_xp.py.j2",
    "_sigmoid": "sigmoid_xp.py.j2",
    "_pad": "pad_xp.py.j2",
    "_take_along_axis": "take_along_xp.py.j2",
    "_einsum": "einsum_xp.py.j2",
    "_slots": "slots_xp.py.j2",
    "_put": "put_xp.py.j2",
    "_shifted": "shifted_xp.py.j2",
    "_log1p_unit": "log1p_unit_xp.py.j2",
    "_ties_halved": "ties_halved_xp.py.j2",
    "_add_along": "add_along_xp.py.j2",
    "_windows": "windows_xp.py.j2",
    "_window_add": "window_add_xp.py.j2",
    "_max_pool": "max_pool_xp.py.j2",
    "_max_pool_route": "max_pool_route_xp.py.j2",
    "_max_pool_pick": "max_pool_pick_xp.py.j2",
    "_avg_pool": "avg_pool_xp.py.j2",
    "_times_above": "times_above_xp.py.j2",
    "_maximum": "maximum_xp.py.j2",
}


class ArrayApiPrinter(NumPyPrinter):
    """Python text for the emission data, in the namespace `xp` of the arguments' library."""

    namespaces = {**NumPyPrinter.namespaces, ARRAY: "xp.", HOST: "np."}
    array_import = "import array_api_compat"
    reserved = frozenset({"xp", "np", "math", "array_api_compat", "Any"})
    reserved |= frozenset({"_kind", "_name", "_is_array", "_Pytree", "_pytrees"})  # (runtime_xp's)
    reserved |= frozenset({*HELPERS, "_OnDevice"})  # (xp.py.j2's class)
    functional = True
    aliases = frozenset({"copy", "pad"})  # (a copy is moot; `_pad` of no width returns x)
    helpers = HELPERS
    helper_needs: dict = {}  # (its `_sigmoid` cannot overflow)
    runtime = "runtime_xp.py.j2"
    cache_base = "_Pytree"  # (a cache that `jax.jit` takes and returns: runtime_xp.py.j2)

    @classmethod
    def imports(cls, namespaces: set[str]) -> list[str]:
        host = ["import numpy as np"] if HOST in namespaces else []
        return (["import math"] if MATH in namespaces else []) + [
            "from typing import Any, NamedTuple",
            "",
            cls.array_import,
            *host,
        ]

    @classmethod
    def entry(cls, params: list[str], scalars: list[str], dtype) -> list[Stmt]:
        """`xp = _xp(X, W, ...)`, the namespace of the arguments' library; and each 0-d float
        argument, which may be a Python number, an array of the graph's float dtype."""
        lines: list[Stmt] = [Assign("xp", helper("_xp", *map(Name, params)))]
        dtype = {"dtype": dtype} if dtype is not None else {}
        lines += [Assign(s, array("asarray", Name(s), **dtype)) for s in scalars]
        return lines

    @classmethod
    def hand_over(cls, name: str) -> tuple[list[Stmt], Expr]:
        """An output that the cache holds too, as `_frozen` hands it over: read-only, a copy or
        itself, by library (frozen_xp.py.j2)."""
        return [], helper("_frozen", Name(name))

    def tidy(self, body: list[Stmt]) -> list[Stmt]:
        """`body` without its line `xp = _xp(...)` where no other line names `xp`."""
        rest = [s for s in body if not (s.__class__ is Assign and s.target == "xp")]
        used = any(
            any(r.module == ARRAY for r in self.printed(s)[1]) or "xp" in reads(s, self.sizes)
            for s in rest
        )
        return body if used else rest

    def _ref(self, e: Ref) -> str:
        if e == Ref(ARRAY, "ndarray"):  # (a gradient's type: an array of any library)
            return "Any"
        if e.module in (HOST, ARRAY):
            self._refs.append(e)
        elif e.module == HELPER and e.name not in self.helpers:
            raise unsupported(f"the helper {e.name}")
        return super()._ref(e)

    def _call(self, e: Call) -> str:
        s = standard(e)
        return super()._call(s) if s.__class__ is Call else self.text(s)

    def prec(self, e: Expr) -> int:
        if e.__class__ is Call:  # (an operator, `a * b`, may stand in the place of a call)
            s = standard(e)
            return ATOM if s.__class__ is Call else super().prec(s)
        if e.__class__ is BinOp and times_above(e) is not None:
            return ATOM
        return super().prec(e)

    def _statement(self, s: Stmt) -> str:
        if s.__class__ is AugAssign and s.op == "*" and _above(s.value):
            # `g *= a > c`: in g's array, where the library can (`_times_above`)
            s = Assign(
                s.target, helper("_times_above", Name(s.target), *s.value.parts(), Lit(True))
            )
        return super()._statement(s)

    def _binop(self, e: BinOp) -> str:
        masked = times_above(e)
        return super()._binop(e) if masked is None else self.text(masked)

    def _attr(self, e: Attr) -> str:
        if e.name == "shape":  # (a tuple, as NumPy's: torch.Size prints otherwise)
            return f"tuple({super()._attr(e)})"
        return super()._attr(e)

    def _subscript(self, e: Subscript) -> str:
        if e.obj.__class__ is Attr and e.obj.name == "shape":  # `x.shape[0]`
            return f"{NumPyPrinter._attr(self, e.obj)}[{', '.join(self.text(i) for i in e.items)}]"
        flipped = forward_steps(e)
        return self.text(flipped) if flipped is not None else super()._subscript(e)


def standard(e: Call) -> Expr:
    """A call of NumPy's namespace, or of an array's method, as the standard spells it (a call
    that becomes another call, `np.copy(np.transpose(x))`, is translated again)."""
    s = _standard(e)
    while s.__class__ is Call and s != e:
        e, s = s, _standard(s)
    return s


def _standard(e: Call) -> Expr:
    fn = e.fn
    if fn.__class__ is Ref and fn.module == LOCAL and fn.name in ("float", "int", "bool"):
        inner = e.args[0] if len(e.args) == 1 else None
        if inner.__class__ is Call and inner.fn.__class__ is Ref and inner.fn.module == ARRAY:
            # a Python number's function: NumPy's, on the host (`float(np.sqrt(n))`)
            return Call(fn, (Call(Ref(HOST, inner.fn.name), inner.args, inner.kwargs),))
        return e
    if fn.__class__ is Attr and fn.name == "astype" and _is(fn.obj, "broadcast_to"):
        # a number everywhere, of a float dtype (the standard's broadcast_to takes arrays)
        value, shape = fn.obj.args
        return array("full", shape, value, dtype=_dtype(e.args[0]))
    if fn.__class__ is Attr and fn.name in METHODS:
        args = [_dtype(a) for a in e.args] if fn.name == "astype" else list(e.args)
        return Call(Ref(ARRAY, fn.name), (fn.obj, *args), e.kwargs)
    if fn.__class__ is Attr and fn.name == "dot":  # (of two vectors: the standard's matmul)
        return BinOp("@", fn.obj, *e.args)
    if fn.__class__ is Attr and fn.name == "copy":  # (no array is written: a copy is moot)
        return fn.obj
    if fn.__class__ is Attr and fn.name == "type":  # `x.dtype.type(2.5)`
        return array("asarray", *e.args, dtype=fn.obj)
    if fn.__class__ is not Ref or fn.module != ARRAY:
        return e
    return _array_call(fn.name, e)


def _array_call(name: str, e: Call) -> Expr:
    args, kwargs = e.args, e.kwargs
    if name in RENAMED:
        return Call(Ref(ARRAY, RENAMED[name]), args, kwargs)
    if name in SCALARS:
        return array("asarray", *args, dtype=Ref(ARRAY, SCALARS[name]))
    if name in HELPED:
        # (np.einsum's `optimize=` is NumPy's: each library contracts in its own way)
        return Call(Ref(HELPER, HELPED[name]), args, kwargs if name != "einsum" else ())
    if name in ("full", "full_like"):
        return _full(name, args, dict(kwargs))
    if name == "stack" and kwargs and kwargs[-1][0] == "dtype":  # (np.stack's dtype=)
        items = tuple(array("asarray", x, dtype=kwargs[-1][1]) for x in args[0].items)
        return Call(e.fn, (args[0].__class__(items),), kwargs[:-1])
    if name == "swapaxes":  # (the emission swaps the last two axes only)
        return array("matrix_transpose", args[0])
    if name == "copy":
        return args[0]
    if name == "maximum" and args[1].__class__ is Lit and not kwargs:  # (a ReLU)
        return helper("_maximum", *args)
    if name == "vdot":  # sum(a * b) over every axis
        return array("sum", BinOp("*", *args))
    if name == "dot":  # a column times a row: an outer product
        return BinOp("*", *args)
    if name == "lib.stride_tricks.sliding_window_view":  # (over the last two axes)
        return helper("_windows", *args[:2])
    if "." in name:
        raise unsupported(f"np.{name}")
    return e


def _above(e: Expr) -> bool:
    """Whether `e` is `a > c` of a number c: the mask of a ReLU's gradient."""
    return e.__class__ is BinOp and e.op == ">" and e.right.__class__ is Lit


def times_above(e: BinOp) -> Call | None:
    """`g * (a > c)`, c a number, as `_times_above(g, a, c, False)`: PyTorch multiplies by a
    boolean mask only after copying it into the other operand's dtype, where its ReLU's
    gradient does the same in one pass (templates/times_above_xp.py.j2); None for any other
    `e`."""
    if e.op != "*":
        return None
    for g, mask in ((e.left, e.right), (e.right, e.left)):
        if _above(mask):
            return helper("_times_above", g, *mask.parts(), Lit(False))
    return None


def forward_steps(e: Subscript) -> Expr | None:
    """`x[:, 5:0:-2]` as `xp.flip(x[:, 1:6:2], axis=1)`: the standard allows a negative step,
    PyTorch does not. For a step of numbers from a number, or a whole axis reversed; None where
    `e` has no negative step (or one of another form, left to the library)."""
    for i, item in enumerate(e.items):
        if item.__class__ is not Slice or not _negative_number(item.step):
            continue
        kept = [x for x in e.items[:i] if x.__class__ is Slice or x == Lit(None)]
        if any(x == Lit(...) for x in e.items[:i]):
            return None
        start, stop, step = item.start, item.stop, -item.step.value
        if start is None and step == 1 and (stop is None or _number(stop)):
            forward = Slice(None if stop is None else Lit(stop.value + 1))
        elif _number(start) and (stop is None or _number(stop)):
            low = -1 if stop is None else stop.value
            first = start.value - step * ((start.value - low - 1) // step)
            forward = Slice(Lit(first), Lit(start.value + 1), Lit(step) if step != 1 else None)
        else:
            return None
        items = (*e.items[:i], forward, *e.items[i + 1 :])
        sliced = e.obj if all(x == Slice() for x in items) else Subscript(e.obj, items)
        return array("flip", sliced, axis=Lit(len(kept)))
    return None


def _negative_number(e: Expr | None) -> bool:
    return e.__class__ is Lit and isinstance(e.value, int) and e.value < 0


def _number(e: Expr | None) -> bool:
    return e.__class__ is Lit and isinstance(e.value, int) and e.value >= 0


def _is(e: Expr, name: str) -> bool:
    """Whether `e` calls NumPy's function `name`."""
    return e.__class__ is Call and e.fn == Ref(ARRAY, name)


def _full(name: str, args, kwargs: dict) -> Expr:
    """np.full and np.full_like of a value that may be an array, which broadcasts (the
    standard's take a Python number): zeros plus the value, or the value broadcast."""
    if name == "full_like" and args[1].__class__ is not Lit:
        return BinOp("+", array("zeros_like", *args[:1], **kwargs), args[1])
    if name == "full_like":
        return Call(Ref(ARRAY, name), args, tuple(kwargs.items()))
    shape, value = args
    if value.__class__ is Lit:
        return array("full", shape, value, **kwargs)
    if kwargs:
        return BinOp("+", array("zeros", shape, **kwargs), value)
    return array("broadcast_to", array("asarray", value), shape)


def _dtype(e: Expr) -> Expr:
    """A dtype argument: Python's `int` is the standard's `xp.int64`."""
    if e.__class__ is Ref and e.module == LOCAL and e.name in ("int", "float", "bool"):
        return Ref(ARRAY, {"int": "int64", "float": "float64", "bool": "bool"}[e.name])
    return e


def unsupported(what: str) -> CompileError:
    """The error for emission data that the target cannot write: a function of NumPy alone,
    or a helper it has no form of (an operation added to the registry with a NumPy helper
    and no `templates/*_xp.py.j2` form yet)."""
    return CompileError(
        Diagnostic(
            None,
            f"the array-api target does not support {what}; compile this graph with "
            "--target numpy",
        )
    )
