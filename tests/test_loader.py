"""`bpc.load`: compile and import, cached by source and compiler version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpc
import bpc.loader

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "examples" / "seed.bp").read_text()


@pytest.fixture(autouse=True)
def _fresh_modules():
    """Each test starts, as a new process would, with no module bpc.load imported before."""

    def forget():
        for name in [n for n in sys.modules if n.startswith("bpc_loaded_")]:
            del sys.modules[name]

    forget()
    yield
    forget()


def test_load_compiles_imports_and_caches(tmp_path, monkeypatch):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    m = bpc.load(src, cache=cache)
    f, grads = m.seed_grad(np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4]))
    assert abs(f - 0.116) < 1e-12
    files = list(cache.glob("*.py"))
    assert len(files) == 1

    calls = []
    monkeypatch.setattr(bpc.loader, "compile_source", lambda *a, **kw: calls.append(a) or "")
    assert bpc.load(src, cache=cache) is m and calls == [], "a cached module is not recompiled"


def test_an_edit_or_a_new_compiler_version_recompiles(tmp_path, monkeypatch):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    bpc.load(src, cache=cache)
    src.write_text(SEED.replace("sum(q * q)", "sum(q * q) * 2"))
    m = bpc.load(src, cache=cache)
    assert abs(m.seed(np.eye(2), np.ones(2)) - 4.0) < 1e-12
    monkeypatch.setattr(bpc.loader, "__version__", "9.9.9")
    bpc.load(src, cache=cache)
    assert len(list(cache.glob("*.py"))) == 3


def test_two_processes_compiling_at_once(tmp_path):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    code = (
        "import sys, bpc, numpy as np; "
        f"m = bpc.load({str(src)!r}, cache={str(cache)!r}); "
        "print(m.seed(np.eye(2), np.ones(2)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == ["2.0"] * 4
    assert len(list(cache.glob("*.py"))) == 1 and not list(cache.glob(".*"))


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BPC_CACHE_DIR", str(tmp_path / "x"))
    assert bpc.loader.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("BPC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "y"))
    assert bpc.loader.cache_dir() == tmp_path / "y" / "bpc"


# Audit of issue 10: corrupt entries, failed imports, unwritable caches, file modes.


def _forget(module):
    """Drop a loaded module from sys.modules, as a new process would start without it."""
    sys.modules.pop(module.__name__, None)


def _entry(cache):
    (entry,) = cache.glob("*.py")
    return entry


def _works(m):
    f, grads = m.seed_grad(np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4]))
    return abs(f - 0.116) < 1e-12


def test_a_cache_entry_records_a_hash_of_its_module(tmp_path):
    import hashlib

    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    m = bpc.load(src, cache=tmp_path / "cache")
    head, rest = _entry(tmp_path / "cache").read_bytes().split(b"\n", 1)
    assert head == b"# bpc cache entry sha256=" + hashlib.sha256(rest).hexdigest().encode()
    assert rest.decode() == bpc.compile_source(SEED, "seed.bp")
    _forget(m)


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    m = bpc.load(src, cache=cache)
    entry = _entry(cache)
    good = entry.read_bytes()
    damages = {
        "truncated": good[: len(good) // 2],
        "cut after the header": good[: good.index(b"\n") + 1],
        "empty": b"",
        "garbage": b"\x00\xff garbage ( ]\n" * 50,
        "one byte changed": good.replace(b"2 * dout * q", b"3 * dout * q"),
        "no header": good.split(b"\n", 1)[1],
    }
    for what, damaged in damages.items():
        _forget(m)
        entry.write_bytes(damaged)
        m = bpc.load(src, cache=cache)
        assert _works(m), what
        assert entry.read_bytes() == good, f"{what}: the entry is rewritten"
    _forget(m)


def test_a_failed_import_is_not_kept_in_sys_modules(tmp_path, monkeypatch):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    real = bpc.loader.compile_source
    monkeypatch.setattr(
        bpc.loader, "compile_source", lambda *a, **kw: "raise RuntimeError('boom')\n"
    )
    before = set(sys.modules)
    with pytest.raises(RuntimeError, match="boom"):
        bpc.load(src, cache=cache)
    assert set(sys.modules) == before, "the broken module is not handed out again"
    assert list(cache.glob("*.py")) == [], "nor is the entry it came from"
    monkeypatch.setattr(bpc.loader, "compile_source", real)
    m = bpc.load(src, cache=cache)
    assert _works(m)
    _forget(m)

    with pytest.raises(ZeroDivisionError):
        bpc.loader.module_from_text("x = 1 / 0\n", "bpc_test_loader_broken")
    assert "bpc_test_loader_broken" not in sys.modules


def test_an_unwritable_cache_compiles_in_memory_with_a_warning(tmp_path, monkeypatch):
    """Two unwritable caches. One under a regular file, which the OS refuses to make a
    directory of even for root. One a chmod 0o555 directory: that stops a normal user, but the
    tests may run as root, whom it does not stop (os.access says so); then creating a file in
    it is made to fail as it would for a normal user, with EACCES."""
    import errno

    import bpc.files

    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    (tmp_path / "a_file").write_text("")
    under_a_file = tmp_path / "a_file" / "cache"
    with pytest.warns(UserWarning, match=r"bpc.load: cannot write the cache entry .*a_file"):
        m = bpc.load(src, cache=under_a_file)
    assert _works(m)
    _forget(m)

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root
        real_open = os.open

        def refuse(path, flags, mode=0o777, **kwargs):
            if Path(path).parent == read_only and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return real_open(path, flags, mode, **kwargs)

        monkeypatch.setattr(bpc.files.os, "open", refuse)
    with pytest.warns(UserWarning, match=f"cannot write the cache entry {read_only}/seed_"):
        m = bpc.load(src, cache=read_only)
    assert _works(m)
    assert list(read_only.iterdir()) == [], "no entry and no temporary file"
    _forget(m)
    read_only.chmod(0o755)


def test_cache_entries_get_the_mode_of_a_plain_write(tmp_path):
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        cache = tmp_path / f"cache{umask:03o}"
        old = os.umask(umask)
        try:
            m = bpc.load(src, cache=cache)
        finally:
            os.umask(old)
        assert _entry(cache).stat().st_mode & 0o777 == mode
        _forget(m)


def test_a_failed_cache_write_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    import bpc.files

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    monkeypatch.setattr(bpc.files.os, "write", full_disk)
    with pytest.warns(UserWarning, match="No space left on device"):
        m = bpc.load(src, cache=cache)
    assert _works(m) and list(cache.iterdir()) == []
    _forget(m)


def test_a_module_that_uses_up_its_cache_is_an_entry_of_its_own(tmp_path):
    """`bpc.load(..., consume_cache=True)` is `bpc compile --consume-cache`: a module of its own
    in the cache, whose backward refuses a cache that a backward used up."""
    src = tmp_path / "seed.bp"
    src.write_text(SEED)
    cache = tmp_path / "cache"
    plain, once = bpc.load(src, cache=cache), bpc.load(src, cache=cache, consume_cache=True)
    assert plain is not once and len(list(cache.glob("*.py"))) == 2
    W, x = np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4])
    f, c = once.seed_forward(W, x)
    grads = once.seed_backward(1.0, c)
    np.testing.assert_allclose(grads.W, plain.seed_grad(W, x)[1].W, rtol=1e-14)
    with pytest.raises(ValueError, match="used up by an earlier backward"):
        once.seed_backward(1.0, c)
