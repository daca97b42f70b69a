"""Experiment 2: do simple RNNs fail on long-term dependencies that LSTM and GRU learn?

The claim. A tanh RNN's gradient fades geometrically with distance (see
experiment 1), so it cannot learn to keep information over many steps; the
gated cells can. A second, softer claim: LSTMs "generally perform better on
tasks that require precise control over memory" than GRUs.

The experiment. Two classic tasks whose answer depends on inputs far back:

* the adding problem (Hochreiter & Schmidhuber 1997, as in Le et al. 2015):
  solved when the test MSE is below `ADDING_SOLVED` (a third of the 0.167 of
  always answering 1, and below the 0.083 of remembering only one of the
  two numbers);
* the copy-memory task (Arjovsky et al. 2016, with fewer symbols to fit our
  budget): solved when at least `COPY_SOLVED` of the copied symbols are
  right (guessing gets 1/8).

For every delay T, cell and seed the model (one recurrent layer and a linear
output, the same hidden size for every cell) trains with Adam for at most
the same number of steps, evaluated on a fixed test set every few steps and
stopped once solved. Delays are tried from short to long, and a seed that
fails at one delay is not tried at longer ones (it counts as failed there:
every longer delay contains the shorter problem's difficulty). A cell
solves a delay when most of its seeds do; we report the largest such delay
and the learning curves.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.lab import common, tasks
from zoo.lab.common import CELL_COLORS, CELL_NAMES, CELLS, check

NAME = "long-term"
TITLE = "Long-term dependencies: the adding and copy-memory problems"
CLAIM = "Simple RNNs fail on long-term dependencies that LSTM and GRU learn."
SIDE_CLAIM = "LSTMs generally perform better than GRUs on tasks that require precise control over memory."

SIZES = {
    "smoke": {"lengths": [4, 8], "seeds": [0, 1], "units": 6, "batch": 4, "max_steps": 2,
              "eval_every": 2, "test_size": 8, "symbols": 2},
    "full": {"lengths": [10, 25, 50, 100, 200, 400], "seeds": [0, 1, 2], "units": 32, "batch": 32,
             "max_steps": 2000, "eval_every": 100, "test_size": 256, "symbols": 3},
}
ADDING_SOLVED = tasks.ADDING_BASELINE_MSE / 3
COPY_SOLVED = 0.9
CATEGORIES = 8
#: Adam's learning rate per task (the same for every cell; the copy task learns slowly at 2e-3).
LEARNING_RATES = {"adding": 2e-3, "copy": 5e-3}


def adding_trainer(cell, units):
    import keras
    import tensorflow as tf

    def build():
        return keras.Sequential([keras.Input((None, 2)), common.recurrent_layer(cell, units),
                                 keras.layers.Dense(1)])

    return common.Trainer(
        build, common.mean_squared_error,
        lambda: keras.optimizers.Adam(learning_rate=LEARNING_RATES["adding"], global_clipnorm=1.0),
        tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None, 1], tf.float32))


def copy_trainer(cell, units):
    import keras
    import tensorflow as tf

    def build():
        return keras.Sequential([keras.Input((None, CATEGORIES + 2)),
                                 common.recurrent_layer(cell, units, return_sequences=True),
                                 keras.layers.Dense(CATEGORIES + 1)])

    return common.Trainer(
        build, common.sparse_cross_entropy,
        lambda: keras.optimizers.Adam(learning_rate=LEARNING_RATES["copy"], global_clipnorm=1.0),
        tf.TensorSpec([None, None, CATEGORIES + 2], tf.float32), tf.TensorSpec([None, None], tf.int32),
        weights_spec=tf.TensorSpec([None, None], tf.float32))


class Task:
    """Batches, the test metric and the success rule of one task."""

    def __init__(self, name, size):
        self.name = name
        self.size = size

    def batch(self, rng, count, length):
        """Adding: `(x, y)`. Copy: `(x, y, weights)`, the loss counting the answer steps only."""
        if self.name == "adding":
            return tasks.adding_problem(rng, count, length)
        x, y = tasks.copy_memory(rng, count, length, symbols=self.size["symbols"], categories=CATEGORIES)
        weights = np.zeros(y.shape, "float32")
        weights[:, -self.size["symbols"]:] = 1.0
        return x, y, weights

    def metric(self, trainer, test):
        """Adding: test MSE. Copy: share of the copied symbols predicted right."""
        loss, output = trainer.evaluate(*test)
        if self.name == "adding":
            return loss
        symbols = self.size["symbols"]
        predicted = output[:, -symbols:].argmax(axis=-1)
        return float(np.mean(predicted == test[1][:, -symbols:]))

    def solved(self, value):
        return value < ADDING_SOLVED if self.name == "adding" else value >= COPY_SOLVED


def train_one(trainer, task, length, seed):
    """Train from the seed's start weights until solved or out of steps; returns the run's record."""
    size = task.size
    trainer.reset(seed)
    rng = np.random.default_rng([seed, length])
    test = task.batch(np.random.default_rng([10_000 + seed, length]), size["test_size"], length)
    curve = []
    for step in range(1, size["max_steps"] + 1):
        trainer.train_step(*task.batch(rng, size["batch"], length))
        if step % size["eval_every"] == 0 or step == size["max_steps"]:
            value = task.metric(trainer, test)
            curve.append([step, common.rounded(value)])
            if not np.isfinite(value) or task.solved(value):
                break
    final = curve[-1][1]
    solved = bool(np.isfinite(final) and task.solved(final))
    return {"solved": solved, "steps": curve[-1][0], "final": final, "curve": curve}


def largest_solved(runs, lengths, seeds):
    """Largest length most seeds solved (0 if none); `runs[length][seed]` is a record or None."""
    best = 0
    for length in lengths:
        solved = sum(1 for s in seeds if runs[str(length)][str(s)] and runs[str(length)][str(s)]["solved"])
        if 2 * solved > len(seeds):
            best = length
    return best


def median_steps(runs, length, seeds):
    steps = [runs[str(length)][str(s)]["steps"] for s in seeds
             if runs[str(length)][str(s)] and runs[str(length)][str(s)]["solved"]]
    return float(np.median(steps)) if steps else None


def run_task(task_name, size):
    task = Task(task_name, size)
    make = adding_trainer if task_name == "adding" else copy_trainer
    results = {}
    for cell in CELLS:
        trainer = common.cached_trainer((NAME, task_name, cell, size["units"]),
                                        lambda: make(cell, size["units"]))
        runs = {str(length): {} for length in size["lengths"]}
        for seed in size["seeds"]:
            failed_at = None
            for length in size["lengths"]:
                if failed_at is not None:
                    runs[str(length)][str(seed)] = None  # not tried: failed at a shorter delay
                    continue
                record = train_one(trainer, task, length, seed)
                runs[str(length)][str(seed)] = record
                common.log(f"{NAME}: {task_name} {cell} T={length} seed={seed}: "
                           f"{'solved' if record['solved'] else 'failed'} at step {record['steps']} "
                           f"({record['final']:.4g})")
                if not record["solved"]:
                    failed_at = length
        results[cell] = {
            "runs": runs,
            "largest_solved": largest_solved(runs, size["lengths"], size["seeds"]),
            "parameters": trainer.parameters,
        }
    return results


def compare_lstm_gru(entry):
    """Whether the LSTM did better than the GRU: a longer delay, or the same one in fewer steps."""
    lstm, gru = entry["lstm"]["largest_solved"], entry["gru"]["largest_solved"]
    if lstm != gru or lstm == 0:
        return lstm > gru, f"largest delay solved: LSTM {lstm}, GRU {gru}"
    steps_lstm = entry["lstm"]["median_steps_at_largest"]
    steps_gru = entry["gru"]["median_steps_at_largest"]
    return steps_lstm < steps_gru, (f"both solve T={lstm}; median steps to solve it: LSTM {steps_lstm:g}, "
                                    f"GRU {steps_gru:g}")


def tried_by_every_cell(task_results, lengths, seeds):
    """The longest delay at which every cell has at least one run (the ladder stops at failures)."""
    tried = [t for t in lengths
             if all(any(task_results[c]["runs"][str(t)][str(s)] for s in seeds) for c in CELLS)]
    return tried[-1] if tried else lengths[0]


def plot(results, size, path):
    figure, axes = common.new_figure(columns=2, rows=2)
    seeds, lengths = size["seeds"], size["lengths"]
    positions = np.arange(len(lengths))
    width = 0.8 / len(CELLS)
    for row, task_name in enumerate(("adding", "copy")):
        shown = tried_by_every_cell(results[task_name], lengths, seeds)
        for index, cell in enumerate(CELLS):
            runs = results[task_name][cell]["runs"]
            solved = [sum(1 for s in seeds if runs[str(t)][str(s)] and runs[str(t)][str(s)]["solved"])
                      for t in lengths]
            axes[row, 0].bar(positions + (index - 1) * width, solved, width=width, color=CELL_COLORS[cell],
                             label=CELL_NAMES[cell])
            for s in seeds:
                record = runs[str(shown)][str(s)]
                if record:
                    steps, values = zip(*record["curve"])
                    axes[row, 1].plot(steps, values, color=CELL_COLORS[cell], alpha=0.7,
                                      label=CELL_NAMES[cell] if s == seeds[0] else None)
        axes[row, 0].set_xticks(positions, [str(t) for t in lengths])
        axes[row, 0].set_yticks(range(len(seeds) + 1))
        axes[row, 0].set_xlabel("delay T")
        axes[row, 0].set_ylabel(f"seeds that solved it (of {len(seeds)})")
        axes[row, 0].set_title(f"{task_name}: solved within {size['max_steps']} steps")
        axes[row, 1].set_xlabel("training step")
        if task_name == "adding":
            axes[row, 1].set_yscale("log")
            axes[row, 1].axhline(tasks.ADDING_BASELINE_MSE, color="gray", linestyle=":", label="answer 1")
            axes[row, 1].axhline(ADDING_SOLVED, color="black", linestyle="--", label="solved")
            axes[row, 1].set_ylabel("test MSE")
        else:
            axes[row, 1].axhline(1 / CATEGORIES, color="gray", linestyle=":", label="guessing")
            axes[row, 1].axhline(COPY_SOLVED, color="black", linestyle="--", label="solved")
            axes[row, 1].set_ylim(0, 1.02)
            axes[row, 1].set_ylabel("copied symbols right")
        axes[row, 1].set_title(f"{task_name}: learning curves at T={shown}")
    return common.finish_figure(figure, axes.ravel(), path)


def run(scale="full", out_dir=None):
    size, started = common.start(scale, SIZES)
    results = {task_name: run_task(task_name, size) for task_name in ("adding", "copy")}
    for entry in results.values():
        for cell in CELLS:
            best = entry[cell]["largest_solved"]
            entry[cell]["median_steps_at_largest"] = (
                median_steps(entry[cell]["runs"], best, size["seeds"]) if best else None)

    figure_name = plot(results, size, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None
    rows = []
    for task_name in ("adding", "copy"):
        for cell in CELLS:
            entry = results[task_name][cell]
            solved_per_length = []
            for length in size["lengths"]:
                records = [entry["runs"][str(length)][str(s)] for s in size["seeds"]]
                solved_per_length.append(
                    f"{sum(1 for r in records if r and r['solved'])}/{len(records)}")
            rows.append([task_name, CELL_NAMES[cell], entry["parameters"], entry["largest_solved"],
                         entry["median_steps_at_largest"], " ".join(solved_per_length)])

    def beats_rnn(task_name, cell):
        ours, rnn = results[task_name][cell]["largest_solved"], results[task_name]["rnn"]["largest_solved"]
        return check(f"{task_name}: {CELL_NAMES[cell]} solves a longer delay than SimpleRNN",
                     ours > rnn, f"largest delay solved: {CELL_NAMES[cell]} {ours}, SimpleRNN {rnn}")

    checks = [beats_rnn(t, c) for t in ("adding", "copy") for c in ("lstm", "gru")]
    side_checks = []
    for task_name in ("copy", "adding"):
        passed, detail = compare_lstm_gru(results[task_name])
        side_checks.append(check(f"{task_name}: LSTM does better than GRU", passed, detail))
    budget = (f"Each run has at most {size['max_steps']} Adam steps of batch {size['batch']} "
              f"(learning rate {LEARNING_RATES['adding']:g} for adding, {LEARNING_RATES['copy']:g} for copy; "
              f"global clipnorm 1) and {size['units']} units; the papers trained for up to hundreds of "
              f"thousands of steps, so a delay not solved here may be solved with more steps. The copy "
              f"task copies {size['symbols']} symbols (Arjovsky et al.: 10) and its loss counts the answer "
              f"steps only (theirs: every step).")
    result = {
        "number": 2,
        "title": TITLE,
        "setup": (f"Adding problem and copy-memory task for T in {size['lengths']}, cells SimpleRNN, "
                  f"GRU and LSTM with {size['units']} units, seeds {size['seeds']}, at most "
                  f"{size['max_steps']} steps of batch {size['batch']} each (stopped when solved; "
                  f"test set of {size['test_size']} every {size['eval_every']} steps; Adam, learning rate "
                  f"{LEARNING_RATES['adding']:g} for adding and {LEARNING_RATES['copy']:g} for copy, whose "
                  f"loss counts the answer steps only). Solved: adding "
                  f"test MSE < {ADDING_SOLVED:.3f} (always answering 1: 0.167); copy: at least "
                  f"{COPY_SOLVED:.0%} of the {size['symbols']} symbols right (guessing: "
                  f"{1 / CATEGORIES:.3f}). A seed that fails at a delay is not tried at longer ones; a "
                  f"cell solves a delay when most seeds do."),
        "settings": {**size, "learning_rates": LEARNING_RATES, "adding_solved_below": ADDING_SOLVED,
                     "copy_solved_at": COPY_SOLVED, "categories": CATEGORIES},
        "claims": [common.claim(CLAIM, checks, budget), common.claim(SIDE_CLAIM, side_checks, budget)],
        "table": {"columns": ["task", "cell", "parameters", "largest T solved (0: none)",
                              "median steps at that T", f"seeds solved at T = {size['lengths']}"],
                  "rows": rows},
        "results": results,
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
