"""Neural-network operations: softmax, log_softmax, cross_entropy, one_hot."""

from __future__ import annotations
