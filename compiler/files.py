"""Writing files whole or not at all, with the mode a plain `open(path, "w")` gives a new file.

Each text goes to a temporary file beside its target (`.NAME.RANDOM.tmp`), which is renamed over
the target once it is complete: a reader sees the old file or the new one, never half of one, and
two processes writing the same text both end with that text. The temporary file is created with
mode 0o666, from which the system takes the umask (and a directory's default ACL) as it does for
any new file, so a module is as readable as the other files its user writes: 0o644 under the
usual umask 0o022, 0o600 under 0o077. A replaced file gets that same mode, not the old file's:
the rename puts a new file in its place. On every way out short of the process being killed
(an error, Ctrl-C, or SIGTERM, which the command line turns into an exit), the temporary files
are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path


def cache_dir() -> Path:
    """Where bpc keeps what it can rebuild (`bpc.load`'s modules, the parser's tables):
    `$BPC_CACHE_DIR`, else `$XDG_CACHE_HOME/bpc`, else `~/.cache/bpc`."""
    if os.environ.get("BPC_CACHE_DIR"):
        return Path(os.environ["BPC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bpc"


_ENTRY = b"# bpc cache entry sha256="  # then the SHA-256 of the bytes after this line


def write_entry(target: Path, data: bytes) -> None:
    """Write a cache entry: a line holding the SHA-256 of `data`, then `data`, whole or not at all
    (`write_atomic`), in a directory made if missing. Raises OSError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, _ENTRY + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


def read_entry(target: Path) -> bytes | None:
    """The data of the cache entry at `target`, or None when it is missing, cannot be read or
    does not match the hash on its first line (truncated, emptied, overwritten)."""
    try:
        head, _, data = target.read_bytes().partition(b"\n")
    except OSError:
        return None
    return data if head == _ENTRY + hashlib.sha256(data).hexdigest().encode() else None


def write_atomic(target: Path, text: str | bytes, mode: int | None = None) -> None:
    """Write `text` (in UTF-8 if a str) to `target`, whole or not at all; raises OSError."""
    write_all_atomic([(target, text)], mode)


def write_all_atomic(files: list[tuple[Path, str | bytes]], mode: int | None = None) -> None:
    """Write each text to its target: first all of them to temporary files, then each renamed
    into place, so that a failure while writing (a full disk, a directory that refuses new
    files) leaves every target as it was. Raises OSError naming the target, or
    UnicodeEncodeError, before anything is written, for a text with a lone surrogate. With a
    `mode`, the files get it instead of a new file's (`bpc fmt` keeps a source's mode)."""
    contents = [(t, text.encode("utf-8") if isinstance(text, str) else text) for t, text in files]
    pending: list[str] = []  # temporary files not yet renamed into place
    try:
        for target, data in contents:
            with _naming(target):
                pending.append(_temporary(target, data, mode))
        for target, _ in contents:
            with _naming(target):
                os.replace(pending[0], target)
            pending.pop(0)
    finally:
        for tmp in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def _naming(target: Path):
    """An OSError raised inside names `target`, not the temporary file it happened to."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(target)) from e


def _temporary(target: Path, data: bytes, mode: int | None = None) -> str:
    """A new temporary file beside `target` holding `data`; it is removed if writing fails."""
    for _ in range(100):
        tmp = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            # O_EXCL: never write through a file or link someone else put at this name
            # and with a mode given, private until it has that mode: nobody opens it before
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600
            )
        except FileExistsError:
            continue
        try:
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")
