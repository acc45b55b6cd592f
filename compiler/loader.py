"""`bpc.load("model.bp")`: compile and import in one step, cached on disk.

The compiled module is kept under a name made from a hash of the source text and the compiler's
version, so an edit or an upgrade recompiles, and two processes compiling the same file at once
both end with the same complete file (each writes a temporary file and renames it into place).

A cache entry is the module's text after one header line that records a hash of that text:

    # bpc cache entry sha256=<64 hex digits of the SHA-256 of the bytes after this line>

An entry that does not match its header (truncated, emptied, overwritten, or written by a bpc
without the header) is compiled again and rewritten. Where the cache cannot be written (a
read-only directory, a full disk), the module is compiled in memory, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from . import __version__
from .files import cache_dir, read_entry, write_entry
from .pipeline import compile_source


def load(
    path: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    jvp: bool = False,
    hvp: bool = False,
    target: str = "numpy",
    consume_cache: bool = False,
    fast_math: bool = False,
) -> ModuleType:
    """Compile the bp file at `path` (or reuse its cached module) and import it. With `jvp`,
    the module also has `g_jvp` for each graph; with `hvp`, `g_hvp` (as `bpc compile --jvp
    --hvp` writes them); `target` as in `bpc compile --target` (`array-api`: functions for the
    arrays of any array-API library); `consume_cache` as `bpc compile --consume-cache` (each
    forward's cache serves one backward, which may work in its arrays); `fast_math` as `bpc
    compile --fast-math` (tanh within 2 ulp of 1, in about half the time)."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    orders = {"jvp": jvp, "hvp": hvp, "consume_cache": consume_cache, "fast_math": fast_math}
    asked = "".join(f"{name}\0" for name, on in orders.items() if on)  # (none: the plain key)
    asked += f"{target}\0" if target != "numpy" else ""  # (a numpy module keeps its old key)
    key = f"bpc {__version__}\0{path.name}\0{asked}{source}"
    key = hashlib.sha256(key.encode()).hexdigest()[:20]
    directory = Path(cache) if cache is not None else cache_dir()
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    file = directory / f"{stem}_{key}.py"
    name = f"bpc_loaded_{stem}_{key}"
    entry = _verified(file)
    if entry is None:
        entry = compile_source(source, path.name, target=target, **orders)
        try:
            write_entry(file, entry.encode("utf-8"))
        except OSError as e:
            warnings.warn(
                f"bpc.load: cannot write the cache entry {e.filename or file} "
                f"({e.strerror or e}); {path.name} was compiled in memory",
                stacklevel=2,
            )
            return sys.modules.get(name) or module_from_text(entry, name)
    if name in sys.modules:  # imported before, from this cache or another
        return sys.modules[name]
    try:
        # a blank line for the entry's header line: tracebacks give the file's line numbers
        return _execute("\n" + entry, name, str(file), __file__=str(file))
    except BaseException:
        # the next load compiles it again, whatever was wrong with the entry
        with contextlib.suppress(OSError):
            file.unlink()
        raise


def _verified(target: Path) -> str | None:
    """The module in the cache entry at `target` when the entry matches its header
    (`bpc.files.read_entry`), else None (also when it is missing, unreadable or not UTF-8)."""
    data = read_entry(target)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _execute(text: str, name: str, filename: str, **attributes) -> ModuleType:
    """Run `text` as the module `name` with `attributes` set. It is registered in `sys.modules`,
    where the gradient NamedTuples look their module up, and removed from it again if its code
    raises, so that a failed import is never handed out. Tracebacks name `filename`."""
    module = ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    try:
        exec(compile(text, filename, "exec"), module.__dict__)
    except BaseException:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        raise
    return module


def module_from_text(text: str, name: str) -> ModuleType:
    """Import the text of a generated module as the module `name`, without touching the disk;
    its text stays in `__source__`. The module is registered in `sys.modules` (not when its code
    raises: see `_execute`)."""
    return _execute(text, name, f"<{name}>", __source__=text)
