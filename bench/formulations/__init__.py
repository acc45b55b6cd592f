"""Natural formulations of the benchmark models against one tuned expert NumPy reference each
(issue 15): the code bpc makes should be as fast however a model is written.

    python bench/run.py --formulations-only        # this suite alone, written to docs/performance.md
    python bench/run.py --formulations             # the main tables, then this suite
    python bench/run.py --smoke --formulations-only   # tiny sizes: checks that everything runs

Each model (normalization.py, losses.py, attention.py, activations.py, chains.py) is a `Model`:
its reference, its inputs, its sizes (a small and a large one) and its `Formulation`s, bp
sources written the ways users write the model. Every formulation is checked against the
reference in float64 and in float32 before it is timed (tests/test_formulations.py checks each
reference against central finite differences), then timed with bench/run.py's `run_case`,
interleaved with the reference and the model's other formulations. suite.py holds the harness
and the report; kernels.py times the NumPy kernels the references were chosen among.
"""

from __future__ import annotations

from .activations import GELU_SIGMOID, GELU_TANH, SOFTPLUS
from .attention import ATTENTION
from .chains import BCE, GAUSSIAN_NLL, HUBER, LEAKY_RELU, LEAKY_RELU_MAX, MISH, SILU
from .losses import TWO_LAYER
from .normalization import BATCHNORM, LAYERNORM
from .suite import (
    TARGETS,
    Formulation,
    Model,
    Record,
    generated,
    run_suite,
    section,
    summary,
    table,
)

MODELS = [
    BATCHNORM,
    LAYERNORM,
    TWO_LAYER,
    ATTENTION,
    GELU_TANH,
    GELU_SIGMOID,
    SOFTPLUS,
    SILU,
    MISH,
    LEAKY_RELU,
    LEAKY_RELU_MAX,
    GAUSSIAN_NLL,
    BCE,
    HUBER,
]

__all__ = [
    "MODELS",
    "TARGETS",
    "Formulation",
    "Model",
    "Record",
    "generated",
    "run_suite",
    "section",
    "summary",
    "table",
]
