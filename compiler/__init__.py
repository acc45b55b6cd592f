"""bpc: a backpropagation compiler. `compile_source(text)` turns bp source into a NumPy module;
`load(path)` compiles a .bp file and imports it, cached on disk."""

__version__ = "0.1.0"

from .loader import load  # noqa: E402 - both need __version__
from .pipeline import compile_source  # noqa: E402

__all__ = ["compile_source", "load", "__version__"]
