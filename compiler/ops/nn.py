"""Neural-network operations: softmax, log_softmax, cross_entropy, one_hot, gelu.

softmax, log_softmax, cross_entropy and gelu are composites (see `reduce.composite`): autodiff
uses their textbook adjoints (`softmax - one_hot` for cross_entropy), and the optimizer then
writes them with `max`, `exp`, `sum` and `log`, shifted by the maximum so that exp never
overflows (gelu with `erf`, or `tanh`).
"""

from __future__ import annotations

import math

from ..dims import Dim, show_shape
from ..expr import LOCAL, BinOp, Lit, Ref, Size, array, helper
from ..expr import method as method_call
from ..ir import REQUIRED, Node, ShapeError, Type, make
from . import (
    diagonal,
    new_last_axis,
    no_tangent,
    normalize_axes,
    per_element,
    register,
    size,
)
from .linalg import unsqueeze
from .reduce import composite, require_float, shift_by_max

# ---------------------------------------------------------------------------------------------
# Softmax and log-softmax


def _softmax_type(name):
    def infer(x: Type, *, axis=-1):
        require_float(name, "x", x)
        return Type("float", x.shape), {"axis": normalize_axes(axis, x.ndim, name)}

    return infer


def _softmax_expand(x, *, axis):
    e = make("exp", shift_by_max(x, axis), hint="exps")
    return e / make("sum", e, axis=axis, keepdims=True)


def _log_softmax_expand(x, *, axis):
    shifted = shift_by_max(x, axis)
    return shifted - make("log", make("sum", make("exp", shifted), axis=axis, keepdims=True))


def _sum_kept(x: Node, axis) -> Node:
    return make("sum", x, axis=axis, keepdims=True)


def _through_softmax(v: Node, y: Node, axis) -> Node:
    """The softmax's Jacobian diag(y) - y y^T, symmetric, times `v`: its adjoint and its JVP."""
    return y * (v - _sum_kept(v * y, axis))


composite(
    "softmax",
    _softmax_type("softmax"),
    _softmax_expand,
    lambda g, y, x, *, axis: (_through_softmax(g, y, axis),),
    jvp=lambda t, y, x, *, axis: _through_softmax(t[0], y, axis),
    doc="exp(x) / sum(exp(x)) over an axis (the last by default), shifted by the maximum",
    call=("x", "axis"),
    axis=-1,
)
composite(
    "log_softmax",
    _softmax_type("log_softmax"),
    _log_softmax_expand,
    lambda g, y, x, *, axis: (g - make("exp", y) * _sum_kept(g, axis),),
    jvp=lambda t, y, x, *, axis: t[0] - _sum_kept(make("exp", y) * t[0], axis),
    doc="x - logsumexp(x) over an axis (the last by default), shifted by the maximum",
    call=("x", "axis"),
    axis=-1,
)


# ---------------------------------------------------------------------------------------------
# Labels: one_hot and cross_entropy


def _require_labels(name: str, labels: Type) -> None:
    if labels.dtype != "int":
        raise ShapeError(
            f"{name}: labels must be integers (an int[...] parameter), "
            f"but it is the {labels.dtype} value {labels}"
        )


def _one_hot_type(labels: Type, *, C, dtype="float"):
    _require_labels("one_hot", labels)
    if isinstance(C, bool) or not isinstance(C, (int, Dim)):
        raise ShapeError("one_hot: the number of classes C must be an integer or a dimension")
    C = Dim.of(C)
    if C.is_const and C.value < 1:
        raise ShapeError(f"one_hot: the number of classes must be positive, not {C}")
    return Type(dtype, labels.shape + (C,)), {"C": C, "dtype": dtype}


def _one_hot_emit(at, labels, *, C, dtype):
    classes = array("arange", Size(C))
    ndim = at.node.args[0].ndim
    if ndim == 0:
        mask = BinOp("==", classes, labels)
    else:
        mask = BinOp("==", new_last_axis(labels, ndim), classes)
    # A float result made from integers takes the graph's float dtype: the lowering appends
    # `.astype(x.dtype)` where it knows that dtype (`at.dtype`); elsewhere the floats are float64.
    if dtype == "float" and at.dtype is None:
        return method_call(mask, "astype", Ref(LOCAL, "float"))
    return mask


register(
    "one_hot",
    _one_hot_type,
    _one_hot_emit,
    lambda g, y, labels, *, C, dtype: (None,),
    jvp=no_tangent,
    doc="one_hot(labels, C): 1.0 at each label's class on a new last axis of size C, 0.0 "
    "elsewhere (a label outside 0..C-1 gives a row of zeros); not differentiated",
    call=("labels", "C"),
    flops=per_element,  # a comparison per element
    C=REQUIRED,
)


def one_hot_mask(labels: Node, C: Dim) -> Node:
    """The one-hot encoding as a boolean mask: it keeps a float operand's dtype in arithmetic."""
    return make("one_hot", labels, C=C, dtype="bool", hint="one_hot")


def _check_labels_type(labels: Type, *, C, what):
    _require_labels(what, labels)
    return Type(labels.dtype, labels.shape), {"C": Dim.of(C), "what": what}


def _check_labels_emit(at, labels, *, C, what):
    """A helper of the module (`templates/labels.py.j2`): the labels themselves, once checked."""
    return helper("_labels", labels, Size(C), Lit(f"{at.graph}: {what}"))


register(
    "check_labels",
    _check_labels_type,
    _check_labels_emit,
    lambda g, y, labels, *, C, what: (None,),
    jvp=no_tangent,
    doc="the labels, checked at run time to be classes 0 to C - 1: a ValueError naming the graph "
    "and the operation `what` otherwise",
    # as emitted: the least and the greatest label, and 0 <= least <= greatest < C (comparisons,
    # like one_hot's, count as operations)
    flops=lambda y, labels, **attrs: 2 * size(labels) + 3,
    view=True,  # the labels themselves
)


def class_labels(labels: Node, C: Dim, what: str) -> Node:
    return make("check_labels", labels, C=C, what=what, hint="labels")


def _cross_entropy_type(logits: Type, labels: Type):
    require_float("cross_entropy", "logits (the first argument)", logits)
    _require_labels("cross_entropy", labels)
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: logits need a class axis, the last one")
    if logits.shape[-1] == Dim.of(0):  # (a label could name no class)
        raise ShapeError(
            f"cross_entropy: the logits {show_shape(logits.shape)} have no class: their last "
            "axis has size 0"
        )
    if labels.shape != logits.shape[:-1]:
        raise ShapeError(
            f"cross_entropy: labels {show_shape(labels.shape)} must have the shape of the logits "
            f"{show_shape(logits.shape)} without their last (class) axis, "
            f"{show_shape(logits.shape[:-1])}"
        )
    return Type("float", logits.shape[:-1])


def _labels_one_hot(logits, labels) -> Node:
    """The labels' one-hot mask; a label outside 0..C-1 is a ValueError when the graph runs, as
    in PyTorch, rather than a loss of 0 whose gradient would be the softmax."""
    C = logits.shape[-1]
    return one_hot_mask(class_labels(labels, C, "cross_entropy"), C)


def _cross_entropy_expand(logits, labels):
    log_probs = make("log_softmax", logits, axis=-1, hint="log_probs")
    picked = _labels_one_hot(logits, labels) * log_probs
    return -make("sum", picked, axis=-1)


def _dlogits(logits, labels) -> Node:
    """The loss's gradient with respect to each example's logits, softmax(logits) -
    one_hot(labels), the softmax recomputed from the log-probabilities that the forward keeps."""
    probs = make("exp", make("log_softmax", logits, axis=-1, hint="log_probs"), hint="probs")
    return probs - _labels_one_hot(logits, labels)


def _cross_entropy_adjoint(g, y, logits, labels):
    """The classic rule: (softmax(logits) - one_hot(labels)) times the upstream gradient."""
    return unsqueeze(g, -1) * _dlogits(logits, labels), None


def _cross_entropy_jvp(t, y, logits, labels):
    """Each example's gradient against its logits' tangent (labels have none)."""
    return make("sum", _dlogits(logits, labels) * t[0], axis=-1)


composite(
    "cross_entropy",
    _cross_entropy_type,
    _cross_entropy_expand,
    _cross_entropy_adjoint,
    jvp=_cross_entropy_jvp,
    doc="cross_entropy(logits, labels): -log(softmax(logits)[label]) for each example, the "
    "classes on the last axis; integer labels shaped like the logits without that axis, each "
    "one of the classes 0 to C - 1 (checked when the graph runs)",
    call=("logits", "labels"),
)


# ---------------------------------------------------------------------------------------------
# GELU, as PyTorch computes it: x Phi(x), Phi the standard normal distribution function, exactly
# (`approximate="none"`, PyTorch's default) or in the tanh form (`approximate="tanh"`)

SQRT_HALF = math.sqrt(0.5)
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
KAPPA = 0.044715  # the tanh form's cubic term


def _gelu_type(x: Type, *, approximate="none", coefficients=None):
    if approximate not in ("none", "tanh"):
        raise ShapeError(f'gelu: approximate must be "none" or "tanh", not "{approximate}"')
    attrs = {"approximate": approximate}
    if coefficients is not None:  # (not the language's: `gelu_tanh_written_out` sets them)
        if approximate != "tanh" or len(coefficients) != 2:
            raise ShapeError("gelu: coefficients are the tanh form's (linear, cubic)")
        attrs["coefficients"] = tuple(float(c) for c in coefficients)
    return Type("float", x.shape, x.static), attrs


def _tanh_half(x: Node, coefficients=None) -> Node:
    """(1 + tanh(u)) / 2 = sigmoid(2 u) for u = sqrt(2/pi) (x + 0.044715 x**3): the tanh form's
    Phi(x). As a sigmoid, it costs one exp (NumPy's tanh is several times an exp in float64)
    and never cancels where tanh(u) is near -1. With `coefficients` (a, b), 2 u is a x + b x**3
    (the tanh form with the constants its writer rounded: `0.7978845608`)."""
    if coefficients is None:
        return make("sigmoid", 2 * SQRT_2_OVER_PI * (x + KAPPA * x**3))
    a, b = coefficients
    return make("sigmoid", a * (x + (b / a) * x**3))


def _gelu_expand(x, *, approximate, coefficients=None):
    """x * 0.5 * (1 + erf(x / sqrt(2))), as PyTorch writes it; or its tanh form, PyTorch's
    0.5 * x * (1 + tanh(u)), as x * sigmoid(2 u)."""
    if approximate == "tanh":
        return x * _tanh_half(x, coefficients)
    return x * 0.5 * (1 + make("erf", x * SQRT_HALF))


def _gelu_adjoint(g, y, x, *, approximate, coefficients=None):
    """Phi(x) + x phi(x), phi the standard normal density exp(-x**2 / 2) / sqrt(2 pi); in the tanh
    form, the derivative of x s with s = sigmoid(2 u), s + w (1 - s) for w = x s 2 u' (the
    numbers of 2 u' = 2 sqrt(2/pi) (1 + 3 * 0.044715 x**2) multiplied into its coefficients),
    written (w - 1) (1 - s) + 1: so `1 - s` is worked out in the sigmoid's own array and the
    gradient needs one new array, as the expert's and PyTorch's (whose `1 + tanh(u)` cancels
    the same way). Its error is a few ulp of 1 wherever x is; far below 0, where the gradient
    is tiny, that is not a few ulp of the gradient."""
    if approximate == "tanh":
        s = _tanh_half(x, coefficients)
        if coefficients is None:
            du2 = 2 * SQRT_2_OVER_PI + (6 * KAPPA * SQRT_2_OVER_PI) * x * x
        else:
            du2 = coefficients[0] + (3 * coefficients[1]) * x * x
        return (g * ((x * s * du2 - 1) * (1 - s) + 1),)
    cdf = 0.5 * (1 + make("erf", x * SQRT_HALF))
    pdf = make("exp", -0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return (g * (cdf + x * pdf),)


composite(
    "gelu",
    _gelu_type,
    _gelu_expand,
    _gelu_adjoint,
    jvp=diagonal(_gelu_adjoint),
    doc="x Phi(x), Phi the standard normal distribution function: x * 0.5 * (1 + erf(x / "
    "sqrt(2))), PyTorch's default; with approximate=\"tanh\", PyTorch's tanh form 0.5 * x * "
    "(1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))",
    call=("x", "approximate"),
    approximate="none",
)


# Mish, x * tanh(softplus(x)) (Misra, 2019)


def _mish_factor(x: Node) -> tuple[Node, Node]:
    """e = exp(min(x, 20)) and t = tanh(softplus(x)) = q / (q + 2) with q = e (e + 2): with
    e = exp(x), tanh(log(1 + e)) = ((1 + e)**2 - 1) / ((1 + e)**2 + 1) exactly. Above 20, t
    rounds to 1 in float64 and float32 alike, and the clip keeps q finite in both (`np.minimum`,
    which passes nan on, takes 0.4x to 0.9x the time of `np.where(x < 20, x, 20)` from 64 x 128
    to 1000 x 1000); far below 0, t is about e, to a few ulp (nothing cancels). One exp, where
    tanh and softplus take an exp, a log1p and a tanh (NumPy's tanh is several exps in
    float64)."""
    e = make("exp", make("minimum", x, 20.0))
    q = e * (e + 2)
    return e, q / (q + 2)


def _mish_expand(x):
    return x * _mish_factor(x)[1]


def _mish_adjoint(g, y, x):
    """t + x t', t = tanh(softplus(x)), t' = (1 - t**2) sigmoid(x) = e (e + 1) (1 - t)**2 (since
    1 - t = 2 / (q + 2)): the forward's e and t, three products more."""
    e, t = _mish_factor(x)
    u = 1 - t
    return (g * (t + x * e * (e + 1) * u * u),)


# ELU, x where x > 0 and exp(x) - 1 elsewhere (Clevert et al., 2015), its alpha 1


def _elu_exp(x: Node) -> Node:
    """exp(min(x, 0)): exp(x) where x <= 0 and 1 where x > 0, ELU's derivative everywhere (at 0
    as well, where both sides' is 1); it never overflows."""
    return make("exp", make("minimum", x, 0.0))


def _elu_expand(x):
    """max(exp(min(x, 0)) - 1, x): where x > 0, the larger of 1 - 1 = 0 and x; where x <= 0,
    exp(x) - 1, which is at least x (exp(x) >= 1 + x), but where the exp's rounding takes it
    below x (|x| < 1.1e-8: by less than 6e-17), where it is x, nearer the true value. The
    values of `where(x > 0, x, exp(x) - 1)` so, with no `np.where` (which a mask of random
    signs slows down tenfold), no exp of a large x, and one new array beside the exp's: `out =
    t - 1; np.maximum(out, x, out=out)`."""
    return make("maximum", _elu_exp(x) - 1, x)


def _elu_adjoint(g, y, x):
    """g * exp(min(x, 0)): one product, the exp the forward computed."""
    return (g * _elu_exp(x),)


def _activation(name: str, expand, adjoint, doc: str) -> None:
    """A one-argument elementwise composite of floats (an activation written with others):
    the input's shape, forward mode the adjoint's diagonal."""
    composite(
        name,
        lambda x: (Type("float", x.shape, x.static), {}),
        expand,
        adjoint,
        jvp=diagonal(adjoint),
        elementwise=True,
        doc=doc,
        call=("x",),
    )


_activation(
    "elu",
    _elu_expand,
    _elu_adjoint,
    "x where x > 0, exp(x) - 1 elsewhere (ELU, its alpha 1); `where(x > 0, x, exp(x) - 1)` "
    "written out is compiled as it",
)
_activation(
    "mish",
    _mish_expand,
    _mish_adjoint,
    "x * tanh(softplus(x)) (Mish); `x * tanh(softplus(x))` and `x * tanh(log(1 + exp(x)))` "
    "written out are compiled as it",
)


# The Huber loss, elementwise (Huber, 1964): 0.5 x**2 where |x| <= delta, delta (|x| - delta / 2)
# elsewhere; PyTorch's HuberLoss with reduction="none" (its SmoothL1Loss is it over its beta)


def _huber_type(x: Type, *, delta=1.0):
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < math.inf:
        raise ShapeError(f"huber: delta must be a positive number, not {delta!r}")
    return Type("float", x.shape, x.static), {"delta": float(delta)}


def _huber_clipped(x: Node, delta: float) -> Node:
    """clip(x, -delta, delta): the loss's derivative everywhere (at |x| = delta both sides'
    is +-delta)."""
    return make("clip", x, -delta, delta)


def _huber_expand(x, *, delta):
    """c * (x - 0.5 * c) for c = clip(x, -delta, delta): where |x| <= delta, x * (0.5 * x),
    rounded as `0.5 * x * x` is (x - 0.5 x is exact); elsewhere delta * (|x| - 0.5 delta).
    No np.where, which a mask of random signs slows down tenfold, and c is the gradient."""
    c = _huber_clipped(x, delta)
    return c * (x - 0.5 * c)


def _huber_adjoint(g, y, x, *, delta):
    """g * clip(x, -delta, delta): one product, with the clip the forward made."""
    return (g * _huber_clipped(x, delta),)


composite(
    "huber",
    _huber_type,
    _huber_expand,
    _huber_adjoint,
    jvp=diagonal(_huber_adjoint),
    elementwise=True,
    doc="0.5 * x**2 where |x| <= delta, delta * (|x| - 0.5 * delta) elsewhere (the Huber loss "
    "of a residual x, elementwise; delta 1 by default); its gradient is clip(x, -delta, delta)",
    call=("x", "delta"),
    delta=1.0,
)
