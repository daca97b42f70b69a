"""Experiment 3: does gradient clipping tame exploding gradients?

The claim (Pascanu et al. 2013). When the recurrent Jacobians stretch
vectors, the gradient of a long sequence can be orders of magnitude larger
than usual; one such step throws the weights far away and training diverges.
Rescaling the gradient when its norm exceeds a threshold keeps the
direction and bounds the step, so training survives the explosions.

The experiment. A tanh SimpleRNN set up to explode: recurrent weights
orthogonal scaled by `GAIN` (every step stretches by up to that factor),
long sequences of the adding problem, plain SGD with momentum (Adam would
normalise the step size itself and hide the effect). The same seeds train
without clipping, with Keras's `clipnorm` (each weight's gradient clipped
separately) and with `global_clipnorm` (all gradients together), threshold
1. A run *diverges* when its training loss becomes infinite or NaN, or its
final test loss is more than `BLOW_UP` times its initial one. We report the
share of diverged runs, the final test MSE, and the largest gradient norm
seen before clipping.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.lab import common, tasks
from zoo.lab.common import check

NAME = "clipping"
TITLE = "Gradient clipping on an exploding SimpleRNN"
CLAIM = "Clipping the gradient norm tames exploding gradients (Pascanu et al. 2013)."

SIZES = {
    "smoke": {"length": 12, "units": 8, "batch": 8, "steps": 5, "seeds": [0, 1], "test_size": 16},
    "full": {"length": 100, "units": 32, "batch": 32, "steps": 400, "seeds": list(range(10)),
             "test_size": 256},
}
GAIN = 3.0
LEARNING_RATE = 0.1
MOMENTUM = 0.9
THRESHOLD = 1.0
BLOW_UP = 10.0
SETTINGS = ("none", "clipnorm", "global_clipnorm")


def trainer(setting, units):
    import keras
    import tensorflow as tf

    def build():
        return keras.Sequential([
            keras.Input((None, 2)),
            common.recurrent_layer("rnn", units, recurrent_initializer=common.orthogonal(GAIN)),
            keras.layers.Dense(1),
        ])

    clip = {} if setting == "none" else {setting: THRESHOLD}
    return common.Trainer(
        build, common.mean_squared_error,
        lambda: keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM, **clip),
        tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None, 1], tf.float32))


def train_one(model, size, seed):
    model.reset(seed)
    rng = np.random.default_rng(seed)
    test = tasks.adding_problem(np.random.default_rng(10_000 + seed), size["test_size"], size["length"])
    initial, _ = model.evaluate(*test)
    losses, largest_norm = [], 0.0
    for _ in range(size["steps"]):
        loss, norm = model.train_step(*tasks.adding_problem(rng, size["batch"], size["length"]))
        losses.append(common.rounded(loss))
        largest_norm = max(largest_norm, norm) if np.isfinite(norm) else float("inf")
        if not np.isfinite(loss):
            break
    final = model.evaluate(*test)[0] if np.isfinite(losses[-1]) else float("inf")
    diverged = (not np.isfinite(losses[-1])) or (not np.isfinite(final)) or final > BLOW_UP * initial
    return {"initial_test_mse": common.rounded(initial),
            "final_test_mse": common.rounded(final) if np.isfinite(final) else None,
            "diverged": bool(diverged), "steps_run": len(losses),
            "largest_gradient_norm": common.rounded(largest_norm) if np.isfinite(largest_norm) else None,
            "losses": [v if np.isfinite(v) else None for v in losses]}


def median_final(runs):
    """Median final test MSE, a diverged-to-infinity run counting as infinite."""
    values = [r["final_test_mse"] if r["final_test_mse"] is not None else float("inf") for r in runs]
    return float(np.median(values))


def plot(results, size, path):
    figure, axes = common.new_figure(columns=2)
    colors = {"none": "tab:red", "clipnorm": "tab:blue", "global_clipnorm": "tab:green"}
    for setting in SETTINGS:
        for index, record in enumerate(results[setting]["runs"]):
            losses = [np.nan if v is None else v for v in record["losses"]]
            axes[0, 0].plot(range(1, len(losses) + 1), losses, color=colors[setting], alpha=0.5,
                            label=setting if index == 0 else None)
            if record["steps_run"] < size["steps"]:
                axes[0, 0].plot([record["steps_run"]], [axes[0, 0].get_ylim()[1]], marker="x",
                                color=colors[setting])
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_xlabel("training step")
    axes[0, 0].set_ylabel("training MSE (x: became infinite)")
    axes[0, 0].set_title(f"SimpleRNN, recurrent gain {GAIN:g}, T={size['length']}, SGD lr {LEARNING_RATE:g}")
    shares = [results[s]["diverged_share"] for s in SETTINGS]
    axes[0, 1].bar(SETTINGS, shares, color=[colors[s] for s in SETTINGS])
    axes[0, 1].set_ylim(0, 1)
    axes[0, 1].set_ylabel("share of runs that diverged")
    axes[0, 1].set_title(f"{len(size['seeds'])} seeds each")
    for axis in axes[0]:
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return common.save_figure(figure, path)


def run(scale="full", out_dir=None):
    size, started = common.start(scale, SIZES)
    results = {}
    for setting in SETTINGS:
        model = common.cached_trainer((NAME, setting, size["units"]), lambda: trainer(setting, size["units"]))
        runs = [train_one(model, size, seed) for seed in size["seeds"]]
        results[setting] = {
            "runs": runs,
            "diverged_share": sum(r["diverged"] for r in runs) / len(runs),
            "median_final_test_mse": median_final(runs),
        }
        common.log(f"{NAME}: {setting}: diverged {results[setting]['diverged_share']:.2f}, "
                   f"median final MSE {results[setting]['median_final_test_mse']:.4g}")
    figure_name = plot(results, size, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    none = results["none"]
    checks = [check("Without clipping, some runs of this setup diverge (the gradients explode)",
                    none["diverged_share"] > 0, f"diverged: {none['diverged_share']:.0%}")]
    for setting in ("clipnorm", "global_clipnorm"):
        ours = results[setting]
        checks.append(check(
            f"{setting}={THRESHOLD:g}: fewer runs diverge and the median final loss is lower than "
            f"without clipping",
            ours["diverged_share"] < none["diverged_share"]
            and ours["median_final_test_mse"] < none["median_final_test_mse"],
            f"diverged {ours['diverged_share']:.0%} vs {none['diverged_share']:.0%}; median final test "
            f"MSE {ours['median_final_test_mse']:.4g} vs {none['median_final_test_mse']:.4g}"))
    rows = []
    for setting in SETTINGS:
        entry = results[setting]
        norms = [r["largest_gradient_norm"] for r in entry["runs"]]
        finite = [n for n in norms if n is not None]
        rows.append([setting, f"{sum(r['diverged'] for r in entry['runs'])}/{len(entry['runs'])}",
                     entry["median_final_test_mse"], max(finite) if finite else None])
    caveat = (f"One exploding configuration (gain {GAIN:g}, T={size['length']}, SGD lr "
              f"{LEARNING_RATE:g} with momentum {MOMENTUM:g}, {size['steps']} steps); a smaller gain "
              f"or learning rate explodes less, and Adam's normalised steps explode less.")
    result = {
        "number": 3,
        "title": TITLE,
        "setup": (f"SimpleRNN ({size['units']} tanh units, recurrent weights orthogonal × {GAIN:g}) on the "
                  f"adding problem with T={size['length']}, SGD (learning rate {LEARNING_RATE:g}, momentum "
                  f"{MOMENTUM:g}), {size['steps']} steps of batch {size['batch']}, seeds {size['seeds']}: "
                  f"no clipping, clipnorm={THRESHOLD:g}, global_clipnorm={THRESHOLD:g}. Diverged: "
                  f"non-finite training loss, or final test MSE above {BLOW_UP:g}× the initial one."),
        "settings": {**size, "gain": GAIN, "learning_rate": LEARNING_RATE, "momentum": MOMENTUM,
                     "threshold": THRESHOLD, "blow_up": BLOW_UP},
        "claims": [common.claim(CLAIM, checks, caveat)],
        "table": {"columns": ["clipping", "diverged runs", "median final test MSE",
                              "largest gradient norm before clipping"],
                  "rows": rows},
        "results": results,
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
