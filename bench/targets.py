"""The array-api target against its rivals on each library, on the two-layer net's gradient.

    python bench/targets.py              # the table (docs/targets.md holds one)
    python bench/targets.py --smoke      # tiny sizes, one Dask worker: checks that all runs

Rows, each a median of interleaved repeats, and the ratio (the median of per-repeat ratios)
of the array-api module to its rival, with the target the issue set:

- NumPy: `two_layer_grad` of the array-api module on NumPy arrays, against the numpy target's
  (target <= 1.3x); and a loop, examples/rnn.bp's forward and backward (no target set);
- JAX: `jax.jit` of the array-api module's `two_layer_grad`, against
  `jax.jit(jax.value_and_grad(loss))` of the same model written in jax.numpy (target <= 1.2x);
- PyTorch: the array-api module on CPU tensors, against PyTorch autograd, eager (<= 1.0x);
- Dask: strong scaling of the array-api module's gradient over N rows on a LocalCluster of 1,
  2 and 4 worker processes (one thread each), the rows made and kept on the cluster;
- on a GPU, where CuPy finds one: the array-api module on CuPy arrays against the same
  expert code as the NumPy benchmarks' (bench/cases.py's `two_layer_by_hand`) run on CuPy,
  in float32 and float64; on CUDA tensors against PyTorch autograd on the GPU; and JAX's
  rows again, JAX on its GPU; each at the table's size and a larger one.

Every system's loss is checked against the numpy target's before anything is timed. A library
that is not installed is left out of the table.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import bpc

try:
    from bench.cases import two_layer_by_hand
except ImportError:  # (run as a script: bench/ is on the path, not the project's root)
    from cases import two_layer_by_hand

SOURCE = Path(__file__).resolve().parent.parent / "examples" / "two_layer.bp"


def _median_call(fn, budget: float) -> float:
    """Seconds per call of fn(), over about `budget` seconds."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


def compare(ours, theirs, repeats: int, budget: float) -> tuple[float, float, float]:
    """The medians of our time and theirs, and the median of the per-repeat ratios."""
    times = [(_median_call(ours, budget), _median_call(theirs, budget)) for _ in range(repeats)]
    return (
        statistics.median(t for t, _ in times),
        statistics.median(t for _, t in times),
        statistics.median(a / b for a, b in times),
    )


def data(N: int, D: int, H: int, C: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    weights = [rng.standard_normal(s) * 0.1 for s in ((D, H), (H,), (H, C), (C,))]
    return X, y, weights


def numpy_row(modules, args, repeats, budget):
    xp_module, np_module = modules
    return compare(
        lambda: xp_module.two_layer_grad(*args),
        lambda: np_module.two_layer_grad(*args),
        repeats,
        budget,
    )


def jax_row(modules, args, repeats, budget):
    import jax
    import jax.numpy as jnp

    xp_module, np_module = modules
    X, y, *weights, reg = args

    def loss(X, y, W1, b1, W2, b2, reg):
        h = jnp.maximum(X @ W1 + b1, 0)
        logp = jax.nn.log_softmax(h @ W2 + b2, axis=1)
        data = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return data + 0.5 * reg * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    theirs = jax.jit(jax.value_and_grad(loss, argnums=(2, 3, 4, 5)))
    ours = jax.jit(xp_module.two_layer_grad)
    jargs = [jnp.asarray(a, dtype=jnp.float32 if a.dtype.kind == "f" else None) for a in args[:-1]]
    want = float(np_module.two_layer_grad(*args)[0])
    tol = 1e-2 if jax.default_backend() == "gpu" else 1e-3  # (TF32 matrix products on a GPU)
    for fn in (ours, theirs):
        value = float(jax.block_until_ready(fn(*jargs, reg))[0])
        assert abs(value - want) < tol * max(1.0, abs(want)), (value, want)
    return compare(
        lambda: jax.block_until_ready(ours(*jargs, reg)),
        lambda: jax.block_until_ready(theirs(*jargs, reg)),
        repeats,
        budget,
    )


def torch_row(modules, args, repeats, budget, device="cpu", dtype=np.float64):
    import torch

    xp_module, np_module = modules
    X, y, *weights, reg = args
    X, *weights = (torch.asarray(a.astype(dtype), device=device) for a in (X, *weights))
    y = torch.asarray(y, device=device)
    leaves = [w.clone().requires_grad_() for w in weights]
    wait = torch.cuda.synchronize if device == "cuda" else lambda: None

    def autograd():
        W1, b1, W2, b2 = leaves
        h = torch.relu(X @ W1 + b1)
        logp = torch.log_softmax(h @ W2 + b2, dim=1)
        loss = -logp.gather(1, y[:, None]).mean() + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum())
        out = loss, torch.autograd.grad(loss, leaves)
        wait()
        return out

    def ours():
        out = xp_module.two_layer_grad(X, y, *weights, reg)
        wait()
        return out

    want = float(np_module.two_layer_grad(*args)[0])
    tol = 1e-9 if dtype == np.float64 else 1e-4
    for value in (ours()[0], autograd()[0]):
        value = float(value.detach())
        assert abs(value - want) < tol * max(1.0, abs(want)), (value, want)
    return compare(ours, autograd, repeats, budget)


def rnn_row(sizes, repeats, budget):
    """A loop: examples/rnn.bp's `rnn_forward` and `rnn_backward` on NumPy, the array-api
    module (slots collected, stacked after the loop) against the numpy target's (slots
    written in place)."""
    N, T, D, H = sizes
    source = SOURCE.parent / "rnn.bp"
    with tempfile.TemporaryDirectory() as cache:
        xp_module = bpc.load(source, cache=cache, target="array-api")
        np_module = bpc.load(source, cache=cache)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) * 0.3 for s in ((N, T, D), (N, H), (D, H), (H, H), (H,))]
    dout = rng.standard_normal((N, T, H))

    def run(module):
        return module.rnn_backward(dout, module.rnn_forward(*args)[1])

    for got, want in zip(run(xp_module), run(np_module)):
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12)
    return compare(lambda: run(xp_module), lambda: run(np_module), repeats, budget)


def dask_rows(xp_module, N, D, H, C, workers, repeats):
    """Seconds for the gradient over N rows (persisted on the cluster), by number of workers."""
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    chunk = max(1, N // 16)
    _, _, weights = data(1, D, H, C)
    out = {}
    for n in workers:
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            X = da.random.default_rng(1).standard_normal((N, D), chunks=(chunk, D))
            y = da.random.default_rng(2).integers(0, C, N, chunks=chunk)
            X, y = client.persist([X, y])
            dask.compute(X.sum(), y.sum())  # (made before the timing)
            ws = [da.from_array(w) for w in weights]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                value, grads = xp_module.two_layer_grad(X, y, *ws, 1e-3)
                dask.compute(value, *grads)
                times.append(time.perf_counter() - start)
            out[n] = statistics.median(times)
    return out


def _cupy():
    """CuPy, where it is installed and finds a GPU; else None."""
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() else None
    except Exception:  # (not installed, or no driver or device)
        return None


def cupy_row(modules, args, repeats, budget, dtype):
    """The array-api module on CuPy arrays against CS231n's expert code run on CuPy; each call
    waits for the GPU to finish."""
    cp = _cupy()
    xp_module, np_module = modules
    X, y, *weights, reg = args
    on_gpu = [cp.asarray(X, dtype=dtype), cp.asarray(y), *(cp.asarray(w, dtype) for w in weights)]
    want = float(np_module.two_layer_grad(*args)[0])
    tol = 1e-9 if dtype == np.float64 else 1e-4

    def ours():
        out = xp_module.two_layer_grad(*on_gpu, reg)
        cp.cuda.get_current_stream().synchronize()
        return out

    def theirs():
        out = two_layer_by_hand(cp, *on_gpu, reg)
        cp.cuda.get_current_stream().synchronize()
        return out

    for value in (ours()[0], theirs()[0]):
        assert abs(float(value) - want) < tol * max(1.0, abs(want)), (float(value), want)
    return compare(ours, theirs, repeats, budget)


def gpu_name() -> str:
    cp = _cupy()
    if cp is not None:
        return cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    import torch

    return torch.cuda.get_device_name(0)


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, bpc {bpc.__version__}"
    )


def _versions() -> str:
    found = []
    for name in ("torch", "jax", "dask", "array_api_compat", "cupy"):
        try:
            found.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return ", ".join(found)


def _torch_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _jax_device() -> str:
    try:
        import jax

        return "GPU" if jax.default_backend() == "gpu" else "CPU"
    except ImportError:
        return "CPU"


def _print_row(lead, library, rival, module, timings, tail=(), digits=2):
    """A row of a table: `lead` cells, the library, what of ours ran, the rival, the two times
    (ms, to `digits`), the ratio, then `tail` cells."""
    ours, theirs, ratio = timings
    label = "jit(array-api module)" if module == "jax" else "array-api module"
    times = [f"{t * 1e3:.{digits}f} ms" for t in (ours, theirs)]
    cells = [*lead, library, label, rival, *times, f"{ratio:.2f}x", *tail]
    print("| " + " | ".join(cells) + " |")


def gpu_rows(modules, smoke: bool, repeats: int, budget: float) -> None:
    """CuPy against expert CuPy, and JAX on the GPU, at the table's size and a larger one."""
    sizes = [(64, 8, 16, 5)] if smoke else [(4096, 256, 256, 10), (65536, 1024, 1024, 10)]
    print(f"\nOn the GPU ({gpu_name()}):\n")
    print("| size N, D, H, C | library | array-api target | rival | time | rival's time | ratio |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        X, y, weights = data(*size)
        call = [X, y, *weights, 1e-3]
        rows_of = []
        for dtype in (np.float32, np.float64) if _cupy() is not None else ():
            row = functools.partial(cupy_row, dtype=dtype)
            rows_of.append((f"CuPy ({np.dtype(dtype).name})", "expert CuPy", row, "cupy"))
        for dtype in (np.float32, np.float64) if _torch_gpu() else ():
            row = functools.partial(torch_row, device="cuda", dtype=dtype)
            rows_of.append(
                (f"PyTorch CUDA ({np.dtype(dtype).name})", "autograd, eager", row, "torch")
            )
        if _jax_device() == "GPU":
            rows_of.append(("JAX (float32)", "jit(value_and_grad)", jax_row, "jax"))
        for library, rival, row, module in rows_of:
            timings = row(modules, call, repeats, budget)
            _print_row([", ".join(map(str, size))], library, rival, module, timings, digits=3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one Dask worker")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--rows", type=int, default=2_000_000, help="Dask's rows")
    parser.add_argument("--workers", default="1,2,4", help="Dask's numbers of workers")
    args = parser.parse_args(argv)
    N, D, H, C = (64, 8, 16, 5) if args.smoke else (4096, 256, 256, 10)
    repeats, budget = (1, 0.01) if args.smoke else (args.repeats, args.budget)
    workers = tuple(int(n) for n in args.workers.split(","))
    rows, workers = (20_000, (1,)) if args.smoke else (args.rows, workers)
    with tempfile.TemporaryDirectory() as cache:
        modules = bpc.load(SOURCE, cache=cache, target="array-api"), bpc.load(SOURCE, cache=cache)
    X, y, weights = data(N, D, H, C)
    call = [X, y, *weights, 1e-3]
    print(f"two_layer_grad, N={N} D={D} H={H} C={C}; {machine()}; {_versions()}\n")
    print("| library | array-api target | rival | time | rival's time | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    rows_of = [
        ("NumPy", "numpy target", numpy_row, "numpy", "<= 1.3x"),
        (f"JAX (float32, {_jax_device()})", "jit(value_and_grad)", jax_row, "jax", "<= 1.2x"),
        ("PyTorch CPU", "autograd, eager", torch_row, "torch", "<= 1.0x"),
    ]
    for library, rival, row, module, target in rows_of:
        try:
            __import__(module)
        except ImportError:
            continue
        _print_row([], library, rival, module, row(modules, call, repeats, budget), [target])
    if _cupy() is not None or _torch_gpu():
        gpu_rows(modules, args.smoke, repeats, budget)
    rnn = (2, 3, 4, 5) if args.smoke else (32, 50, 64, 128)
    loop = f"NumPy, a loop (rnn.bp, N, T, D, H = {', '.join(map(str, rnn))})"
    _print_row([], loop, "numpy target", "numpy", rnn_row(rnn, repeats, budget), ["none set"])
    try:
        import distributed  # noqa: F401
    except ImportError:
        return 0
    seconds = dask_rows(modules[0], rows, 16, 32, C, workers, max(1, min(repeats, 3)))
    print(f"\nDask strong scaling, N={rows} rows (D=16, H=32), {os.cpu_count()} CPUs here:\n")
    print("| workers | time | speed-up |")
    print("|---|---|---|")
    for n, t in seconds.items():
        print(f"| {n} | {t:.2f} s | {seconds[workers[0]] / t:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
