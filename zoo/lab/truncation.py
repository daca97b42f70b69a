"""Experiment 4: truncated backpropagation through time learns a dependency only when it covers it.

The claim. Long streams (a corpus for a language model, a long series) are
trained in chunks of k steps with a *stateful* recurrent layer: the state is
carried from one chunk into the next, but the gradient stops at the chunk
boundary. So the forward pass can carry information for any distance, while
learning *to* carry it needs a chunk that holds both the input and the
output that depends on it: a dependency spanning d steps (input at step
t - d + 1, output at step t) is learned only when k >= d.

The experiment. An echo stream: random bits, and at every step the target
is the bit d - 1 steps earlier. A stateful LSTM (Keras's `stateful=True`
with a fixed batch of parallel streams, `reset_state()` between streams:
the machinery a stateful language model uses) reads the training streams
in consecutive chunks of k steps, one update per chunk, for truncation
lengths on both sides of d. Every k gets the same number of updates (so
longer chunks read more of the stream). The test stream is read in one
pass after `reset_state()`; a run solves the task when at least
`SOLVED` of its bits are right (guessing: 0.5).
"""

from __future__ import annotations

import os

import numpy as np

from zoo.lab import common, tasks
from zoo.lab.common import check

NAME = "truncation"
TITLE = "Truncated BPTT with stateful training"
CLAIM = ("With truncated backpropagation through time (chunks of k steps, state carried between them), "
         "a dependency spanning d steps is learned only when k ≥ d.")

SIZES = {
    "smoke": {"span": 3, "truncations": [2, 4], "units": 8, "streams": 8, "updates": 10,
              "test_frames": 20, "seeds": [0]},
    "full": {"span": 10, "truncations": [2, 5, 9, 10, 20, 40], "units": 32, "streams": 32,
             "updates": 4000, "test_frames": 1000, "seeds": [0, 1, 2]},
}
SOLVED = 0.95
LEARNING_RATE = 3e-3


def trainer(size):
    import keras
    import tensorflow as tf

    streams = size["streams"]

    def build():
        return keras.Sequential([
            keras.Input(batch_shape=(streams, None, 1)),
            common.recurrent_layer("lstm", size["units"], return_sequences=True, stateful=True),
            keras.layers.Dense(1),
        ])

    def loss(y_true, logits, weights):
        return common.binary_cross_entropy(y_true, logits[..., 0], weights)

    return common.Trainer(
        build, loss, lambda: keras.optimizers.Adam(learning_rate=LEARNING_RATE, global_clipnorm=1.0),
        tf.TensorSpec([streams, None, 1], tf.float32), tf.TensorSpec([streams, None], tf.float32),
        weights_spec=tf.TensorSpec([streams, None], tf.float32))


def train_one(model, size, truncation, seed):
    """Train on consecutive chunks of `truncation` steps; returns accuracy and the loss curve."""
    lag = size["span"] - 1
    model.reset(seed)
    x, y, w = tasks.echo_stream(np.random.default_rng([seed, truncation]), size["streams"],
                                size["updates"] * truncation, lag)
    losses = []
    for update in range(size["updates"]):
        chunk = slice(update * truncation, (update + 1) * truncation)
        loss, _ = model.train_step(x[:, chunk], y[:, chunk], w[:, chunk])
        losses.append(loss)
    test_x, test_y, test_w = tasks.echo_stream(np.random.default_rng(10_000 + seed), size["streams"],
                                               size["test_frames"], lag)
    model.model.layers[0].reset_state()
    _, logits = model.evaluate(test_x, test_y, test_w)
    right = ((logits[..., 0] > 0) == (test_y > 0.5)) * test_w
    accuracy = float(right.sum() / test_w.sum())
    windows = np.array_split(np.array(losses), min(10, len(losses)))
    return {"accuracy": common.rounded(accuracy), "solved": accuracy >= SOLVED, "updates": len(losses),
            "loss_curve": [common.rounded(float(np.mean(part))) for part in windows]}


def plot(results, size, path):
    figure, axes = common.new_figure(columns=2)
    truncations = size["truncations"]
    for seed in size["seeds"]:
        accuracy = [results[str(k)]["runs"][str(seed)]["accuracy"] for k in truncations]
        axes[0, 0].plot(truncations, accuracy, marker="o", alpha=0.6, label=f"seed {seed}")
    axes[0, 0].axvline(size["span"], color="black", linestyle="--", label=f"k = d = {size['span']}")
    axes[0, 0].axhline(SOLVED, color="gray", linestyle=":", label="solved")
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_xlabel("truncation length k")
    axes[0, 0].set_ylabel("test bits right")
    axes[0, 0].set_title(f"echo of the bit d-1 = {size['span'] - 1} steps back")
    for k in truncations:
        curve = results[str(k)]["runs"][str(size["seeds"][0])]["loss_curve"]
        axes[0, 1].plot(np.linspace(0, 1, len(curve)), curve, marker=".", label=f"k={k}")
    axes[0, 1].set_xlabel("share of the training stream read")
    axes[0, 1].set_ylabel("training cross-entropy (nats)")
    axes[0, 1].set_title(f"learning curves, seed {size['seeds'][0]}")
    return common.finish_figure(figure, axes[0], path)


def run(scale="full", out_dir=None):
    size, started = common.start(scale, SIZES)
    model = common.cached_trainer((NAME, size["streams"], size["units"]), lambda: trainer(size))
    results = {}
    for k in size["truncations"]:
        runs = {str(seed): train_one(model, size, k, seed) for seed in size["seeds"]}
        solved = sum(r["solved"] for r in runs.values())
        results[str(k)] = {"runs": runs, "solved": 2 * solved > len(runs),
                           "mean_accuracy": common.rounded(np.mean([r["accuracy"] for r in runs.values()]))}
        common.log(f"{NAME}: k={k}: accuracy {[r['accuracy'] for r in runs.values()]}")
    figure_name = plot(results, size, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    span = size["span"]
    covering = [k for k in size["truncations"] if k >= span]
    short = [k for k in size["truncations"] if k < span]

    def describe(ks):
        return ", ".join(f"k={k}: {results[str(k)]['mean_accuracy']:.3f}" for k in ks) or "none tried"

    checks = [
        check(f"every k ≥ d = {span} solves the echo (most seeds ≥ {SOLVED:.0%} right)",
              bool(covering) and all(results[str(k)]["solved"] for k in covering),
              f"mean accuracy {describe(covering)}"),
        check(f"no k < d = {span} solves it", bool(short) and not any(results[str(k)]["solved"] for k in short),
              f"mean accuracy {describe(short)}"),
    ]
    rows = [[k, "yes" if k >= span else "no", results[str(k)]["mean_accuracy"],
             f"{sum(r['solved'] for r in results[str(k)]['runs'].values())}/{len(size['seeds'])}",
             k * size["updates"]] for k in size["truncations"]]
    caveat = (f"One task (echo at span d={span}), one cell (LSTM, {size['units']} units), "
              f"{size['updates']} updates per run on {size['streams']} parallel streams. With k = d only one "
              f"output per chunk sees its input inside the chunk, so k = d learns slowest.")
    result = {
        "number": 4,
        "title": TITLE,
        "setup": (f"Echo stream (target at step t = input bit at t − {span - 1}, so the dependency spans "
                  f"d = {span} steps); stateful LSTM ({size['units']} units), {size['streams']} parallel "
                  f"streams read in consecutive chunks of k steps, one Adam update (learning rate "
                  f"{LEARNING_RATE:g}) per chunk, {size['updates']} updates for every k (k × {size['updates']} "
                  f"frames); k in {size['truncations']}; seeds "
                  f"{size['seeds']}; tested on a fresh stream of {size['test_frames']} frames in one pass. "
                  f"Solved: at least {SOLVED:.0%} of the test bits right."),
        "settings": {**size, "solved_at": SOLVED, "learning_rate": LEARNING_RATE, "cell": "lstm"},
        "claims": [common.claim(CLAIM, checks, caveat)],
        "table": {"columns": ["truncation k", "k ≥ d", "mean test accuracy", "seeds solved",
                              "frames read per stream"],
                  "rows": rows},
        "results": results,
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
