"""bpc: a backpropagation compiler. `compile_source(text)` turns bp source into a NumPy module;
`load(path)` compiles a .bp file and imports it, cached on disk."""

__version__ = "0.1.0"

__all__ = ["compile_source", "load", "load_ipython_extension", "__version__"]


def __getattr__(name: str):
    # imported on first use, so that `import bpc.highlight` (which Pygments does for every lookup
    # of a lexer by file name) does not load the compiler's pipeline
    if name == "load":
        from .loader import load as value
    elif name == "compile_source":
        from .pipeline import compile_source as value
    else:
        raise AttributeError(f"module 'bpc' has no attribute {name!r}")
    globals()[name] = value
    return value


def load_ipython_extension(ipython) -> None:
    """`%load_ext bpc` in IPython or Jupyter: the `%%bpc` cell magic and `%bpc_show` (see
    `bpc.magic`). IPython is imported here, not by `import bpc`."""
    from .magic import load_ipython_extension

    load_ipython_extension(ipython)
