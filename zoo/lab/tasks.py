"""Synthetic sequence tasks of the lab, drawn from a NumPy generator (seeded: same draws, same data).

* `adding_problem` (Hochreiter & Schmidhuber 1997; Le et al. 2015): two
  channels, random values in [0, 1) and a marker that is 1 at exactly two
  steps, one in each half of the sequence; the target is the sum of the two
  marked values. Always answering 1 scores a mean squared error of
  Var(u1 + u2) = 2/12 = 0.167 (`ADDING_BASELINE_MSE`); remembering only one
  of the two values scores 1/12 = 0.083.
* `copy_memory` (Arjovsky et al. 2016): a few symbols, a long stretch of
  blanks, a delimiter; the model must output blanks until the delimiter and
  then the symbols in order. Guessing scores 1/categories on the symbols.
* `echo_stream`: a stream of random bits whose target at step t is the bit
  of step t - lag, for truncated backpropagation through time.
* `parity_prefixes`: random bits with the running parity as target at every
  step, for generalisation beyond the training lengths.
"""

from __future__ import annotations

import numpy as np

#: Test MSE of always answering 1 on the adding problem (Le et al. 2015 call success "well below" it).
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(rng, batch, length):
    """`(x, y)`: x `(batch, length, 2)` float32 (values, markers), y `(batch, 1)` the marked sum."""
    if length < 2:
        raise ValueError(f"length must be at least 2; received length={length!r}")
    values = rng.uniform(0.0, 1.0, size=(batch, length))
    half = length // 2
    rows = np.arange(batch)
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, length, size=batch)
    markers = np.zeros((batch, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values[rows, first] + values[rows, second])[:, None].astype("float32")
    return x, y


def copy_memory(rng, batch, delay, symbols=5, categories=8):
    """`(x, y)` of the copy-memory task, as in Arjovsky et al. (2016) with `symbols` to copy.

    Tokens: 0 blank, 1..categories the symbols, categories + 1 the delimiter.
    A sequence has `delay + 2 * symbols` steps: the symbols, `delay - 1`
    blanks, the delimiter, then `symbols` blanks during which the targets are
    the symbols in order (blank targets everywhere else). x is one-hot
    `(batch, steps, categories + 2)` float32; y holds the target tokens
    `(batch, steps)` as int32.
    """
    if delay < 1:
        raise ValueError(f"delay must be at least 1; received delay={delay!r}")
    steps = delay + 2 * symbols
    payload = rng.integers(1, categories + 1, size=(batch, symbols))
    tokens = np.zeros((batch, steps), dtype="int32")
    tokens[:, :symbols] = payload
    tokens[:, symbols + delay - 1] = categories + 1
    targets = np.zeros((batch, steps), dtype="int32")
    targets[:, -symbols:] = payload
    x = np.eye(categories + 2, dtype="float32")[tokens]
    return x, targets


def echo_stream(rng, rows, steps, lag):
    """`(x, y, weights)`: bits x `(rows, steps, 1)`, y the bit `lag` steps earlier, weight 0 before it exists."""
    bits = rng.integers(0, 2, size=(rows, steps)).astype("float32")
    targets = np.zeros_like(bits)
    targets[:, lag:] = bits[:, :-lag] if lag else bits
    weights = np.ones_like(bits)
    weights[:, :lag] = 0.0
    return bits[..., None], targets, weights


def parity_prefixes(rng, batch, length):
    """`(x, y)`: one-hot bits x `(batch, length, 2)`, y `(batch, length)` the parity of x[:, :t+1]."""
    bits = rng.integers(0, 2, size=(batch, length))
    parity = np.cumsum(bits, axis=1) % 2
    x = np.eye(2, dtype="float32")[bits]
    return x, parity.astype("float32")
