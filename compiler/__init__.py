"""bpc: a backpropagation compiler. `compile_source(text)` turns bp source into a NumPy module."""

from .pipeline import compile_source

__version__ = "0.1.0"
__all__ = ["compile_source", "__version__"]
