"""Train the three-layer convnet of examples/convnet.bp on scikit-learn's 8x8 handwritten digits.

Each digit is a 1 x 8 x 8 image. The loss and its gradients come from the module bpc compiles from
convnet.bp (compiled here, in a temporary directory); this script only draws minibatches and takes
Adam steps, written in NumPy. The data set ships inside scikit-learn
(`pip install -e ".[examples]"`), so nothing is downloaded.

    python examples/train_digits_cnn.py [--epochs 20] [--filters 32] [--filter-size 3] [--lr 0.002] ...
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import bpc

SOURCE = Path(__file__).resolve().parent / "convnet.bp"


def load_digits(test_size: float, seed: int):
    """A stratified held-out split as [N, 1, 8, 8] images; pixels standardized with the training
    split's mean and standard deviation (one of each for all pixels, as for photographs)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    mean, std = X_train.mean(), X_train.std()
    X_train, X_test = (((X - mean) / std).astype(np.float32) for X in (X_train, X_test))
    return X_train, X_test, y_train, y_test


class Adam:
    """Adam (Kingma and Ba, 2015) as CS231n's optim.adam writes it, on a list of arrays in place."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        lr = self.lr * (1 - b2**self.t) ** 0.5 / (1 - b1**self.t)  # bias corrections
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * m / (np.sqrt(v) + self.eps)


def train(
    epochs=20,
    filters=32,
    filter_size=3,
    hidden=64,
    lr=2e-3,
    batch=32,
    reg=1e-3,
    decay=0.9,
    test_size=0.25,
    seed=0,
    log=print,
) -> float:
    """Train with Adam on minibatches and return the held-out accuracy after the last epoch."""
    start = time.perf_counter()
    X_train, X_test, y_train, y_test = load_digits(test_size, seed)
    N, C, H, W = X_train.shape
    K = int(y_train.max()) + 1
    log(
        f"{N} training and {len(y_test)} held-out digits, {C} x {H} x {W} images, {K} classes "
        f"(loaded in {time.perf_counter() - start:.2f} s)"
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        net = bpc.load(SOURCE, cache=cache)
    log(
        f"compiled {SOURCE.name} with bpc in {time.perf_counter() - t:.2f} s; "
        f"{filters} filters of {filter_size} x {filter_size}, {hidden} hidden units"
    )
    rng = np.random.default_rng(seed)
    D = filters * (H // 2) * (W // 2)  # the pooled maps, flattened

    def he(*shape, fan_in):
        return (rng.normal(size=shape) * np.sqrt(2 / fan_in)).astype(np.float32)

    params = [
        he(filters, C, filter_size, filter_size, fan_in=C * filter_size**2),
        np.zeros(filters, np.float32),
        he(D, hidden, fan_in=D),
        np.zeros(hidden, np.float32),
        (rng.normal(size=(hidden, K)) * np.sqrt(1 / hidden)).astype(np.float32),  # no ReLU after
        np.zeros(K, np.float32),
    ]
    adam = Adam(params, lr)

    def accuracy(X, y):
        return float(np.mean(np.argmax(net.convnet_scores(X, *params), axis=1) == y))

    for epoch in range(1, epochs + 1):
        order = rng.permutation(N)
        losses = []
        for i in range(0, N, batch):
            idx = order[i : i + batch]
            loss, grads = net.convnet_grad(X_train[idx], y_train[idx], *params, reg)
            adam.step(grads)
            losses.append(float(loss))
        adam.lr *= decay
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
    parser.add_argument("--filters", type=int, default=32, help="filters of the conv layer")
    parser.add_argument("--filter-size", type=int, default=3, help="their height and width, odd")
    parser.add_argument("--hidden", type=int, default=64, help="units of the hidden affine layer")
    parser.add_argument("--lr", type=float, default=2e-3, help="initial Adam learning rate")
    parser.add_argument("--decay", type=float, default=0.9, help="learning rate decay per epoch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reg", type=float, default=1e-3, help="L2 regularization strength")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    acc = train(
        args.epochs,
        args.filters,
        args.filter_size,
        args.hidden,
        args.lr,
        args.batch,
        args.reg,
        args.decay,
        seed=args.seed,
    )
    print(f"held-out accuracy {acc:.4f} after {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
