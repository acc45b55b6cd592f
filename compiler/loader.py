"""`bpc.load("model.bp")`: compile and import in one step, cached on disk.

The compiled module is kept under a name made from a hash of the source text and the compiler's
version, so an edit or an upgrade recompiles, and two processes compiling the same file at once
both end with the same complete file (each writes a temporary file and renames it into place).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from . import __version__
from .pipeline import compile_source


def cache_dir() -> Path:
    """`$BPC_CACHE_DIR`, else `$XDG_CACHE_HOME/bpc`, else `~/.cache/bpc`."""
    if os.environ.get("BPC_CACHE_DIR"):
        return Path(os.environ["BPC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bpc"


def load(path: str | os.PathLike, *, cache: str | os.PathLike | None = None) -> ModuleType:
    """Compile the bp file at `path` (or reuse its cached module) and import it."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    key = hashlib.sha256(f"bpc {__version__}\0{path.name}\0{source}".encode()).hexdigest()[:20]
    directory = Path(cache) if cache is not None else cache_dir()
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    target = directory / f"{stem}_{key}.py"
    if not target.exists():
        text = compile_source(source, path.name)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    name = f"bpc_loaded_{stem}_{key}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the gradient NamedTuples look their module up
    spec.loader.exec_module(module)
    return module


def module_from_text(text: str, name: str) -> ModuleType:
    """Import the text of a generated module as the module `name`, without touching the disk;
    its text stays in `__source__`. The module is registered in `sys.modules`, where the gradient
    NamedTuples look their module up."""
    module = ModuleType(name)
    module.__dict__["__source__"] = text
    sys.modules[name] = module
    exec(compile(text, f"<{name}>", "exec"), module.__dict__)
    return module
