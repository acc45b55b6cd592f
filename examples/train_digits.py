"""Train the two-layer net of examples/two_layer.bp on scikit-learn's 8x8 handwritten digits.

The loss and its gradients come from the module bpc compiles from two_layer.bp (compiled here, in
a temporary directory); this script only draws minibatches and takes SGD steps. The data set ships
inside scikit-learn (`pip install -e ".[examples]"`), so nothing is downloaded.

    python examples/train_digits.py [--epochs 20] [--hidden 64] [--lr 0.2] [--batch 32] ...
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import bpc

SOURCE = Path(__file__).resolve().parent / "two_layer.bp"


def load_digits(test_size: float, seed: int):
    """A stratified held-out split; pixels standardized with the training split's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1.0  # some pixels are always 0
    X_train, X_test = (((X - mean) / std).astype(np.float32) for X in (X_train, X_test))
    return X_train, X_test, y_train, y_test


def train(
    epochs=20, hidden=64, lr=0.2, batch=32, reg=1e-4, decay=0.9, test_size=0.25, seed=0, log=print
) -> float:
    """Train with minibatch SGD and return the held-out accuracy after the last epoch."""
    start = time.perf_counter()
    X_train, X_test, y_train, y_test = load_digits(test_size, seed)
    N, D = X_train.shape
    C = int(y_train.max()) + 1
    log(
        f"{N} training and {len(y_test)} held-out digits, {D} pixels, {C} classes "
        f"(loaded in {time.perf_counter() - start:.2f} s)"
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        net = bpc.load(SOURCE, cache=cache)
    log(
        f"compiled {SOURCE.name} with bpc in {time.perf_counter() - t:.2f} s; {hidden} hidden units"
    )
    rng = np.random.default_rng(seed)
    params = [
        (rng.normal(size=(D, hidden)) * np.sqrt(2 / D)).astype(np.float32),  # He initialization
        np.zeros(hidden, np.float32),
        (rng.normal(size=(hidden, C)) * np.sqrt(1 / hidden)).astype(np.float32),
        np.zeros(C, np.float32),
    ]

    def accuracy(X, y):
        return float(np.mean(np.argmax(net.two_layer_scores(X, *params), axis=1) == y))

    for epoch in range(1, epochs + 1):
        order = rng.permutation(N)
        losses = []
        for i in range(0, N, batch):
            idx = order[i : i + batch]
            loss, grads = net.two_layer_grad(X_train[idx], y_train[idx], *params, reg)
            for p, g in zip(params, grads):
                p -= lr * g
            losses.append(float(loss))
        lr *= decay
        held_out = accuracy(X_test, y_test)
        log(
            f"epoch {epoch:2d}/{epochs}  loss {np.mean(losses):.4f}  "
            f"train acc {accuracy(X_train, y_train):.4f}  held-out acc {held_out:.4f}  "
            f"({time.perf_counter() - start:.2f} s)"
        )
    return held_out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.2, help="initial learning rate")
    parser.add_argument("--decay", type=float, default=0.9, help="learning rate decay per epoch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reg", type=float, default=1e-4, help="L2 regularization strength")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    acc = train(args.epochs, args.hidden, args.lr, args.batch, args.reg, args.decay, seed=args.seed)
    print(f"held-out accuracy {acc:.4f} after {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
