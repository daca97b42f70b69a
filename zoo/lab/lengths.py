"""Experiment 7: do RNNs generalise beyond the sequence lengths they were trained on?

The claim. Recurrent networks "memorise sequences extremely well, but don't
generalise well": they fit what they were trained on, yet a rule learned on
short sequences is not the rule itself, and it breaks on longer ones (the
state drifts into regions training never visited).

The experiment. The running parity of a bit string (the target at every
step is the parity of the bits so far) is computed exactly by a two-state
automaton, so a network that learned the rule would be right at any length.
Each cell trains on a fixed set of bit strings of length `TRAIN_LENGTH`
(every step supervised), then reads fresh strings of the training length
and of 2, 4 and 8 times it; we report the accuracy of its answer at the
last step (guessing: 0.5) and the accuracy at every position of the longest
strings, averaged over seeds.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.lab import common, tasks
from zoo.lab.common import CELL_COLORS, CELL_NAMES, CELLS, check

NAME = "lengths"
TITLE = "Generalisation beyond the training lengths (running parity)"
CLAIM = "RNNs memorise sequences extremely well, but don't generalise well (here: to longer sequences)."

TRAIN_LENGTH = 20
SIZES = {
    "smoke": {"test_lengths": [20, 40], "units": 8, "batch": 8, "train_set": 16, "steps": 4,
              "test_size": 16, "seeds": [0, 1]},
    "full": {"test_lengths": [20, 40, 80, 160], "units": 32, "batch": 64, "train_set": 1024, "steps": 1500,
             "test_size": 512, "seeds": [0, 1, 2]},
}
#: Accuracy that counts as fitting the training set, and the drop that counts as not generalising.
FITS, DROP = 0.95, 0.05
LEARNING_RATE = 3e-3


def trainer(cell, units):
    import keras
    import tensorflow as tf

    def build():
        return keras.Sequential([keras.Input((None, 2)),
                                 common.recurrent_layer(cell, units, return_sequences=True),
                                 keras.layers.Dense(1)])

    def loss(y_true, logits, weights=None):
        return common.binary_cross_entropy(y_true, logits[..., 0])

    return common.Trainer(
        build, loss, lambda: keras.optimizers.Adam(learning_rate=LEARNING_RATE, global_clipnorm=1.0),
        tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None, None], tf.float32))


def accuracy_per_position(model, x, y):
    predicted = model.predict(x)[..., 0] > 0
    return (predicted == (y > 0.5)).mean(axis=0)


def train_one(model, size, seed):
    model.reset(seed)
    rng = np.random.default_rng(seed)
    train_x, train_y = tasks.parity_prefixes(rng, size["train_set"], TRAIN_LENGTH)
    for step in range(size["steps"]):
        rows = rng.integers(0, size["train_set"], size=size["batch"])
        model.train_step(train_x[rows], train_y[rows])
    record = {"train_last_step_accuracy": common.rounded(accuracy_per_position(model, train_x, train_y)[-1]),
              "last_step_accuracy": {}}
    for length in size["test_lengths"]:
        x, y = tasks.parity_prefixes(np.random.default_rng([10_000 + seed, length]), size["test_size"], length)
        per_position = accuracy_per_position(model, x, y)
        record["last_step_accuracy"][str(length)] = common.rounded(per_position[-1])
        if length == size["test_lengths"][-1]:
            record["per_position"] = [common.rounded(v, 4) for v in per_position]
    return record


def plot(results, size, path):
    figure, axes = common.new_figure(columns=2)
    lengths = size["test_lengths"]
    for cell in CELLS:
        entry = results[cell]
        axes[0, 0].errorbar(lengths, [entry["mean"][str(n)] for n in lengths],
                            yerr=[entry["std"][str(n)] for n in lengths], marker="o",
                            color=CELL_COLORS[cell], label=CELL_NAMES[cell], capsize=3)
        curve = np.mean([run["per_position"] for run in entry["runs"].values()], axis=0)
        axes[0, 1].plot(np.arange(1, len(curve) + 1), curve, color=CELL_COLORS[cell], label=CELL_NAMES[cell])
    axes[0, 0].set_xscale("log", base=2)
    axes[0, 0].set_xticks(lengths, [str(n) for n in lengths])
    axes[0, 0].minorticks_off()
    axes[0, 0].set_xlabel("test length")
    axes[0, 0].set_ylabel("parity right at the last step")
    axes[0, 0].set_title(f"trained on length {TRAIN_LENGTH} (fresh strings)")
    axes[0, 1].axvline(TRAIN_LENGTH, color="black", linestyle="--", label="training length")
    axes[0, 1].set_xlabel("position in the string")
    axes[0, 1].set_ylabel("running parity right (mean over seeds)")
    axes[0, 1].set_title(f"strings of length {lengths[-1]}")
    for axis in axes[0]:
        axis.axhline(0.5, color="gray", linestyle=":")
        axis.set_ylim(0.4, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return common.save_figure(figure, path)


def run(scale="full", out_dir=None):
    size, started = common.start(scale, SIZES)
    results = {}
    for cell in CELLS:
        model = common.cached_trainer((NAME, cell, size["units"]), lambda: trainer(cell, size["units"]))
        runs = {str(seed): train_one(model, size, seed) for seed in size["seeds"]}
        by_length = {str(n): [r["last_step_accuracy"][str(n)] for r in runs.values()] for n in size["test_lengths"]}
        results[cell] = {
            "runs": runs,
            "train_accuracy": common.rounded(np.mean([r["train_last_step_accuracy"] for r in runs.values()])),
            "mean": {n: common.rounded(np.mean(v)) for n, v in by_length.items()},
            "std": {n: common.rounded(np.std(v)) for n, v in by_length.items()},
        }
        common.log(f"{NAME}: {cell}: train {results[cell]['train_accuracy']}, test {results[cell]['mean']}")
    figure_name = plot(results, size, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    longest = str(size["test_lengths"][-1])
    trained = str(TRAIN_LENGTH)
    checks = [check(f"every cell fits its training strings (last-step accuracy ≥ {FITS:.0%})",
                    all(results[c]["train_accuracy"] >= FITS for c in CELLS),
                    ", ".join(f"{CELL_NAMES[c]} {results[c]['train_accuracy']:.3f}" for c in CELLS))]
    for cell in CELLS:
        mean = results[cell]["mean"]
        checks.append(check(
            f"{CELL_NAMES[cell]}: accuracy at length {longest} is at least {DROP:g} below that at the "
            f"training length {trained}", mean[longest] < mean[trained] - DROP,
            f"{mean[trained]:.3f} at {trained}, {mean[longest]:.3f} at {longest}"))
    rows = [[CELL_NAMES[c], results[c]["train_accuracy"]]
            + [results[c]["mean"][str(n)] for n in size["test_lengths"]] for c in CELLS]
    caveat = (f"One task (running parity), {size['units']} units, {size['steps']} Adam steps of batch "
              f"{size['batch']} on {size['train_set']} strings; a network that learns the exact automaton "
              f"would generalise, so the outcome depends on the task, the budget and the seed.")
    result = {
        "number": 7,
        "title": TITLE,
        "setup": (f"Running parity of random bits; {size['train_set']} training strings of length {TRAIN_LENGTH}, "
                  f"every step supervised; {size['units']} units; {size['steps']} Adam steps (learning rate "
                  f"{LEARNING_RATE:g}) of batch {size['batch']}; seeds {size['seeds']}; tested on "
                  f"{size['test_size']} fresh strings of each length {size['test_lengths']} (last-step "
                  f"accuracy; guessing 0.5)."),
        "settings": {**size, "train_length": TRAIN_LENGTH, "learning_rate": LEARNING_RATE, "fits": FITS,
                     "drop": DROP},
        "claims": [common.claim(CLAIM, checks, caveat)],
        "table": {"columns": ["cell", "training strings"] + [f"length {n}" for n in size["test_lengths"]],
                  "rows": rows},
        "results": results,
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
