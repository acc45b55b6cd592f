"""Stage 5: optimize forward and backward together.

Small named rewrites, each stated in its docstring, are applied bottom-up until nothing changes;
common subexpressions are shared, and whatever the outputs and gradients do not need is dropped.
A last step makes every gradient a fresh array of exactly its parameter's shape and dtype.

A module per part, each saying in its docstring what it owns:

- `rules.py`: the registry (`@rule`, `RULES`, `@canonical`, `CANONICAL`) and the rules' helpers;
- `algebra.py`: the local rewrites, registered in the order the simplifier tries them;
- `fixpoint.py`: the simplifier (to a fixpoint, with hash-consing), `_existing`, `canonicalize`;
- `products.py`: the whole-graph passes around products and sums, `sigmoid_of_minus`,
  `transpose_products`, `softplus_gradient_from_e`, `split_sums`, `abs_sums_as_dots`, `contract_sums`, `factor_scales`, `place_scales`, `read_normalized` and `sums_as_products`;
- `hoist.py`: products out of loops and after them (`hoist_products`, `products_after_loops`);
- `stacks.py`: a loop's stack written over the array whose slots it reads;
- `tidy.py`: loops tidied as a whole (`tidy_loops`);
- `finish.py`: `quotients_by_squares`, `quotients_by_numbers_as_products`, `fast_math`,
  `finish_outputs`, `finish_gradients` and `select_cache`;
- here: `optimize` and the order of its stages, `Check`, `seed_ones`.

Every rule, canonical rewrite and pass is an attribute of this package by its name
(`tests/test_rewrites.py` looks each one up so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..ir import Graph, Node, at, const, make, rewrite
from .algebra import (
    abs_of_negation,
    abs_written_as_maximum,
    add_to_itself,
    add_twice,
    add_zero,
    binary_cross_entropy_written_out,
    broadcast_implicitly,
    collapse_reshapes,
    combine_constant_factors,
    common_factor,
    comparison_of_negation,
    complement_of_a_ratio,
    complement_of_sigmoid,
    complementary_wheres,
    compose_transposes,
    constant_first,
    constant_leftmost,
    constant_out_of_a_divisor,
    constant_out_of_a_quotient,
    contraction_of_scaled,
    dot_computed_the_other_way,
    dot_of_a_difference,
    dot_with_a_difference_of_itself,
    double_negation,
    einsum_as_products,
    expand_composite,
    extremum_of_a_multiple,
    fold_constants,
    log_of_exp,
    log_of_sigmoid,
    multiply_by_one,
    negation_into_a_constant,
    negation_outward,
    normalized_first,
    number_factor_out_of_where,
    number_out_of_a_dot,
    one_plus_tanh,
    outer_factors_apart,
    pads_tile_an_axis,
    powers_as_products,
    product_into_where,
    quotient_by_numbers,
    quotient_of_a_scaled_product,
    quotient_times_divisor,
    repeated_factors_as_powers,
    reshape_of_broadcast_scalar,
    row_sum_through_a_product,
    scatter_added,
    sigmoid_written_out,
    small_factors_first,
    small_numerator_out,
    small_operands_first,
    softplus_of_exp,
    softplus_of_negation_plus,
    softplus_written_out,
    subtract_negation,
    sum_of_a_scatter,
    sum_of_broadcast_scalar,
    sum_of_deviations,
    sum_of_product,
    sum_of_quotient,
    sum_of_relu_of_negation,
    sum_of_scaled,
    tanh_written_out,
    term_and_its_multiple,
    ties_halved_of_a_number,
    times_a_reciprocal,
    times_its_sign,
    useless_broadcast,
    where_of_a_constant_mask,
    where_of_equal_branches,
)
from .finish import (
    fast_math,
    finish_gradients,
    finish_outputs,
    quotients_by_numbers_as_products,
    quotients_by_squares,
    select_cache,
)
from .fixpoint import _SEEN, _existing, _key, canonicalize, in_bodies, simplify
from .hoist import hoist_products, one_product, products_after_loops
from .order import outputs_after_hoisted, reductions_first, scalings_last
from .products import (
    abs_sums_as_dots,
    compound_first,
    contract_sums,
    factor_scales,
    horner,
    place_scales,
    read_normalized,
    read_outputs,
    share_products,
    sigmoid_of_minus,
    softplus_gradient_from_e,
    split_sums,
    sums_as_products,
    transpose_products,
)
from .recognize import (
    elu_written_as_parts,
    elu_written_out,
    exp_of_log_softmax,
    gelu_tanh_written_out,
    huber_by_clipping,
    huber_written_out,
    leaky_relu_written_as_parts,
    log_of_picked_softmax,
    log_of_softmax,
    log_softmax_written_out,
    logsumexp_written_out,
    mish_written_out,
    relu_written_as_where,
    softmax_normalized_after_product,
    softmax_written_out,
    softplus_cut_off,
    variance_from_moments,
)
from .rules import CANONICAL, RULES, Rule, canonical, rule
from .stacks import stacks_in_read_arrays
from .tidy import tidy_loops

# What `from bpc.optimize import ...` offers: the stages, the registry, every rewrite by its name,
# and the engine's key and table, which tests/test_rewrites.py and tests/test_ir.py use.
__all__ = [
    "optimize",
    "Check",
    "unchecked",
    "seed_ones",
    "simplify",
    "canonicalize",
    "sigmoid_of_minus",
    "transpose_products",
    "horner",
    "softplus_gradient_from_e",
    "abs_sums_as_dots",
    "split_sums",
    "sums_as_products",
    "contract_sums",
    "factor_scales",
    "place_scales",
    "read_normalized",
    "read_outputs",
    "share_products",
    "compound_first",
    "reductions_first",
    "outputs_after_hoisted",
    "scalings_last",
    "fast_math",
    "quotients_by_numbers_as_products",
    "quotients_by_squares",
    "finish_outputs",
    "finish_gradients",
    "select_cache",
    "tidy_loops",
    "hoist_products",
    "one_product",
    "products_after_loops",
    "stacks_in_read_arrays",
    "Rule",
    "rule",
    "RULES",
    "canonical",
    "CANONICAL",
    "_key",
    "_SEEN",
    "_existing",
    # the rewrites (algebra.py)
    "abs_of_negation",
    "abs_written_as_maximum",
    "add_to_itself",
    "add_twice",
    "add_zero",
    "broadcast_implicitly",
    "collapse_reshapes",
    "combine_constant_factors",
    "comparison_of_negation",
    "common_factor",
    "complementary_wheres",
    "complement_of_sigmoid",
    "compose_transposes",
    "contraction_of_scaled",
    "constant_first",
    "constant_leftmost",
    "constant_out_of_a_divisor",
    "quotient_by_numbers",
    "outer_factors_apart",
    "constant_out_of_a_quotient",
    "dot_of_a_difference",
    "dot_with_a_difference_of_itself",
    "number_out_of_a_dot",
    "complement_of_a_ratio",
    "double_negation",
    "einsum_as_products",
    "expand_composite",
    "log_of_exp",
    "log_of_sigmoid",
    "binary_cross_entropy_written_out",
    "one_plus_tanh",
    "fold_constants",
    "multiply_by_one",
    "negation_into_a_constant",
    "negation_outward",
    "normalized_first",
    "pads_tile_an_axis",
    "powers_as_products",
    "product_into_where",
    "quotient_of_a_scaled_product",
    "quotient_times_divisor",
    "sum_of_relu_of_negation",
    "repeated_factors_as_powers",
    "reshape_of_broadcast_scalar",
    "row_sum_through_a_product",
    "sigmoid_written_out",
    "scatter_added",
    "sum_of_a_scatter",
    "term_and_its_multiple",
    "dot_computed_the_other_way",
    "extremum_of_a_multiple",
    "number_factor_out_of_where",
    "tanh_written_out",
    "times_its_sign",
    "ties_halved_of_a_number",
    "softmax_written_out",
    "softmax_normalized_after_product",
    "variance_from_moments",
    "log_softmax_written_out",
    "log_of_picked_softmax",
    "log_of_softmax",
    "exp_of_log_softmax",
    "huber_by_clipping",
    "huber_written_out",
    "mish_written_out",
    "elu_written_as_parts",
    "elu_written_out",
    "leaky_relu_written_as_parts",
    "relu_written_as_where",
    "softplus_cut_off",
    "gelu_tanh_written_out",
    "logsumexp_written_out",
    "small_factors_first",
    "small_numerator_out",
    "small_operands_first",
    "softplus_of_exp",
    "softplus_of_negation_plus",
    "softplus_written_out",
    "subtract_negation",
    "sum_of_broadcast_scalar",
    "sum_of_deviations",
    "sum_of_product",
    "sum_of_quotient",
    "sum_of_scaled",
    "times_a_reciprocal",
    "useless_broadcast",
    "where_of_a_constant_mask",
    "where_of_equal_branches",
]


def optimize(
    graph: Graph,
    *,
    cache_reused: bool = True,
    sizes: dict[str, int] | None = None,
    check: Check | None = None,
    prefix: str = "",
    fast: bool = False,
    numpy_kernels: bool = True,
) -> Graph:
    """Simplify, share and prune; make the gradients safe to hand to the caller; choose the cache.
    `sizes` are the dimension sizes the user expects, for rewrites whose gain depends on them.
    With `fast`, the kernels `bpc compile --fast-math` allows (`fast_math`); with
    `numpy_kernels`, those NumPy runs fastest at the sizes (`sums_as_products`). `check(graph,
    stage)` sees the graph after each pass (`bpc.verify`, in the tests)."""
    check = check or unchecked
    graph = check(simplify(graph), prefix + "simplify")
    if any(n.op == "loop" for n in graph.nodes):
        graph = check(simplify(_everywhere(graph, tidy_loops)), prefix + "tidy_loops")
        graph = _everywhere(_everywhere(graph, products_after_loops), tidy_loops)
        graph = check(simplify(graph), prefix + "products_after_loops")
        graph = simplify(_everywhere(graph, stacks_in_read_arrays))
        graph = check(graph, prefix + "stacks_in_read_arrays")
    graph = check(_everywhere(graph, transpose_products), prefix + "transpose_products")
    graph = check(_everywhere(graph, horner), prefix + "horner")
    graph = check(_everywhere(graph, softplus_gradient_from_e), prefix + "softplus_gradient_from_e")
    graph = check(_everywhere(graph, split_sums), prefix + "split_sums")
    graph = check(_everywhere(graph, abs_sums_as_dots), prefix + "abs_sums_as_dots")
    graph = check(_everywhere(graph, contract_sums), prefix + "contract_sums")
    graph = check(_everywhere(graph, factor_scales), prefix + "factor_scales")
    graph = check(_everywhere(graph, place_scales, sizes), prefix + "place_scales")
    graph = check(_everywhere(graph, read_normalized), prefix + "read_normalized")
    graph = check(_everywhere(graph, read_outputs), prefix + "read_outputs")
    graph = check(_everywhere(graph, sigmoid_of_minus), prefix + "sigmoid_of_minus")
    graph = check(_everywhere(graph, share_products), prefix + "share_products")
    graph = check(_everywhere(graph, compound_first), prefix + "compound_first")
    graph = check(reductions_first(graph), prefix + "reductions_first")
    graph = check(scalings_last(graph), prefix + "scalings_last")
    graph = check(_everywhere(graph, quotients_by_squares), prefix + "quotients_by_squares")
    graph = _everywhere(graph, quotients_by_numbers_as_products)
    graph = check(graph, prefix + "quotients_by_numbers_as_products")
    if numpy_kernels:
        graph = _everywhere(graph, sums_as_products, sizes)
        graph = check(graph, prefix + "sums_as_products")
    if fast:
        graph = check(_everywhere(graph, fast_math), prefix + "fast_math")
    graph = check(finish_outputs(graph), prefix + "finish_outputs")
    graph = check(finish_gradients(graph, cache_reused=cache_reused), prefix + "finish_gradients")
    graph = check(select_cache(graph), prefix + "select_cache")
    return check(outputs_after_hoisted(graph), prefix + "outputs_after_hoisted")


def _everywhere(graph: Graph, run, *args) -> Graph:
    """A whole-graph pass on the graph and on the body of each of its loops."""

    def each(g: Graph) -> Graph:
        return in_bodies(run(g, *args), each)

    return each(graph)


# A check of the graph after a stage: `check(graph, "simplify")` returns the graph or raises.
Check = Callable[[Graph, str], Graph]


def unchecked(graph: Graph, stage: str) -> Graph:
    return graph


def seed_ones(graph: Graph) -> Graph:
    """The graph with every upstream gradient set to 1: the backward of `g_grad`. Nodes that
    depended on it are typed again, since a plain number is weakly typed where dout was not."""
    ones = {d: const(1.0) for d in graph.douts}

    def step(n: Node, args: tuple[Node, ...]) -> Node:
        if n in ones:
            return ones[n]
        if args == n.args:
            return n
        with at(n.loc):
            return make(n.op, *args, hint=n.hint, **n.kw)

    # with no douts kept, the 1.0 that replaced an upstream gradient nothing reads is dropped
    return rewrite(replace(graph, douts=()), step)
