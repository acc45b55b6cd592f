"""bpc: a backpropagation compiler. `compile_source(text)` turns bp source into a NumPy module;
`load(path)` compiles a .bp file and imports it, cached on disk."""

__version__ = "0.1.0"

__all__ = ["compile_source", "load", "__version__"]


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
