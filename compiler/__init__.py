"""bpc: a backpropagation compiler. `compile_source(text)` turns bp source into a NumPy module;
`load(path)` compiles a .bp file and imports it, cached on disk."""

__version__ = "0.1.0"

from .loader import load  # noqa: E402 - both need __version__
from .pipeline import compile_source  # noqa: E402

__all__ = ["compile_source", "load", "load_ipython_extension", "__version__"]


def load_ipython_extension(ipython) -> None:
    """`%load_ext bpc` in IPython or Jupyter: the `%%bpc` cell magic and `%bpc_show` (see
    `bpc.magic`). IPython is imported here, not by `import bpc`."""
    from .magic import load_ipython_extension

    load_ipython_extension(ipython)
