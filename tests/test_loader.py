"""`bpc.load`: compile and import, cached by source and compiler version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import bpc
import bpc.loader

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "examples" / "seed.bp").read_text()


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
    monkeypatch.setattr(bpc.loader, "compile_source", lambda *a: calls.append(a) or "")
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
