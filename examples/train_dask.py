"""Train the two-layer net of examples/two_layer.bp data-parallel on a Dask cluster.

The module comes from `bpc.load(..., target="array-api")`: its `two_layer_grad` takes Dask arrays
and returns Dask arrays, a graph of work that the cluster runs chunk by chunk, rows split across
the workers, only the small gradients coming back. The rows are made on the cluster
(`dask.array.random`): a synthetic task whose class is the largest of C random projections of
the features. Each epoch takes one SGD step per batch of chunks. By default a LocalCluster with
worker processes runs here; `--scheduler ADDRESS` uses a real cluster (docs/targets.md).

    python examples/train_dask.py [--rows 1000000] [--epochs 5] [--workers 2] [--scheduler ADDR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bpc

SOURCE = Path(__file__).resolve().parent / "two_layer.bp"


def synthetic(rows: int, features: int, classes: int, chunk: int, seed: int):
    """Rows drawn on the cluster, chunked along the batch: X, and y = argmax(X @ P)."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk, features))
    projection = np.random.default_rng(seed).standard_normal((features, classes))
    y = da.argmax(X @ projection, axis=1)
    return X, y


def progress(epoch: int, epochs: int, loss: float, seconds: float, width: int = 30) -> str:
    """`[#####.....] 2/5 epochs  loss 0.8123  (3.1 s)`: a progress bar over the epochs."""
    done = width * epoch // epochs
    return f"[{'#' * done}{'.' * (width - done)}] {epoch}/{epochs} epochs  loss {loss:.4f}  ({seconds:.1f} s)"


def train(client, args, log=print) -> float:
    """Minibatch SGD, a batch being `--batch-chunks` chunks of rows; the last loss."""
    import dask
    import dask.array as da

    with tempfile.TemporaryDirectory() as cache:
        net = bpc.load(SOURCE, cache=cache, target="array-api")
    X, y = synthetic(args.rows, args.features, args.classes, args.chunk, args.seed)
    X, y = client.persist([X, y])  # made once, kept on the workers
    rng = np.random.default_rng(args.seed)
    D, H, C = args.features, args.hidden, args.classes
    params = [
        rng.normal(size=(D, H)) * np.sqrt(2 / D),
        np.zeros(H),
        rng.normal(size=(H, C)) * np.sqrt(1 / H),
        np.zeros(C),
    ]
    blocks = X.numblocks[0]
    start, loss = time.perf_counter(), float("nan")
    for epoch in range(1, args.epochs + 1):
        for first in range(0, blocks, args.batch_chunks):
            part = slice(first, min(first + args.batch_chunks, blocks))
            weights = [da.from_array(p) for p in params]  # (one chunk each, sent to the workers)
            value, grads = net.two_layer_grad(X.blocks[part], y.blocks[part], *weights, args.reg)
            value, *grads = dask.compute(value, *grads)
            for p, g in zip(params, grads):
                p -= args.lr * g
            loss = float(value)
        log(progress(epoch, args.epochs, loss, time.perf_counter() - start))
    return loss


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--batch-chunks", type=int, default=2, help="chunks per SGD step")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--reg", type=float, default=1e-4, help="L2 regularization strength")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="the LocalCluster's processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="a running cluster's scheduler")
    args = parser.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        print(f"dashboard: {client.dashboard_link}")
        workers = len(client.scheduler_info()["workers"])
        print(f"{args.rows} rows in chunks of {args.chunk} on {workers} workers")
        loss = train(client, args)
        print(f"loss {loss:.4f} after {args.epochs} epochs")
        return loss
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(0 if np.isfinite(main()) else 1)
