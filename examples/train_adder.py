"""Teach an LSTM to add: two random binary numbers are read bit by bit, lowest bit first, and
the network writes their sum bit by bit. Each bit of the sum depends on a carry from the bits
before, which the network must learn to keep in its state.

The loss and its gradients come from the module bpc compiles from examples/sequence.bp: a loop
over the bits, differentiated at compile time into a loop over the bits in reverse; this script
only makes the data and takes Adam steps. One module trains on sequences of 8 bits and is
tested on sequences of 16: the loop runs over whatever length it is given.

    python examples/train_adder.py [--steps 600] [--hidden 16] [--bits 8] [--test-bits 16] ...
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import bpc

SOURCE = Path(__file__).resolve().parent / "sequence.bp"


def numbers(rng, count: int, bits: int):
    """`count` pairs of numbers below 2**(bits - 1) as bit sequences, lowest bit first
    ([count, bits, 2] floats), and the bits of their sums ([count, bits] integers)."""
    a, b = rng.integers(0, 2 ** (bits - 1), size=(2, count))
    powers = 2 ** np.arange(bits)
    x = np.stack([(a[:, None] // powers) % 2, (b[:, None] // powers) % 2], axis=2)
    y = ((a + b)[:, None] // powers) % 2
    return x.astype(np.float64), y


def accuracy(net, params, x, y) -> float:
    """The fraction of sums that are right in every bit."""
    scores = net.adder_scores(x, *params)
    return float(np.mean(np.all(scores.argmax(axis=2) == y, axis=1)))


def train(steps=600, hidden=16, bits=8, test_bits=16, batch=64, lr=0.03, seed=0, log=print):
    """Adam on fresh batches; returns the held-out accuracy on sums of `test_bits` bits."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        net = bpc.load(SOURCE, cache=cache)
    log(f"compiled {SOURCE.name} with bpc in {time.perf_counter() - start:.2f} s")
    rng = np.random.default_rng(seed)
    H = hidden
    params = [
        rng.normal(size=(2, 4 * H)) * 0.5,
        rng.normal(size=(H, 4 * H)) / np.sqrt(H),
        np.zeros(4 * H),
        rng.normal(size=(H, 2)) / np.sqrt(H),
        np.zeros(2),
    ]
    params[2][H : 2 * H] = 1.0  # forget gates open at first
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = numbers(rng, batch, bits)
        loss, grads = net.adder_loss_grad(x, y, *params)
        for p, g, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * g
            m[1] = 0.999 * m[1] + 0.001 * g * g
            p -= lr * (m[0] / (1 - 0.9**step)) / (np.sqrt(m[1] / (1 - 0.999**step)) + 1e-8)
        if step % (steps // 4) == 0 or step == steps:
            log(f"step {step:4d}/{steps}  loss {float(loss):.4f}")
    x, y = numbers(np.random.default_rng(seed + 1), 1000, test_bits)
    held_out = accuracy(net, params, x, y)
    log(
        f"held-out accuracy {held_out:.4f} on 1000 sums of {test_bits}-bit numbers "
        f"(trained on {bits} bits) in {time.perf_counter() - start:.1f} s"
    )
    return held_out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--test-bits", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train(args.steps, args.hidden, args.bits, args.test_bits, args.batch, args.lr, args.seed)


if __name__ == "__main__":
    main()
