"""Experiment 1: do gradients vanish or explode in backpropagation through time?

The claim. Backpropagation through time multiplies the gradient by one step
Jacobian per step it travels back, so its size changes roughly geometrically
with the distance: it vanishes when the Jacobians shrink vectors and
explodes when they stretch them. For a tanh RNN the recurrent weights set
the scale (an orthogonal matrix scaled by g stretches by exactly g, and tanh
can only shrink); an LSTM's additive cell path, opened by a forget gate near
1, keeps the gradient alive, which is why a forget-gate bias of 1 is the
usual initialisation (Jozefowicz et al. 2015).

The experiment. Every cell reads random sequences of length T and is read
out as a scalar `l = w . h_T` (a fixed random unit vector w at
initialisation, the trained output layer after training). For distances
d = T - t we measure the norm of the gradient of l with respect to the whole
recurrent state s_t (h_t; h_t and c_t together for the LSTM), per example,
and report its geometric mean over the batch. The gradient is the layer's
own: s_t is fed as the initial state of a run over the last d steps and
differentiated by TensorFlow through the layer's fused path (native kernels
and, for one configuration per cell, the graph kernels too), every distance
in one masked batch; on one small case it is checked against the
hand-written BPTT of `zoo.reference`.

Settings: recurrent weights orthogonal scaled by g = 0.5, 1, 1.5; the LSTM
with forget-gate bias 0 and 1. After training: each cell (g = 1, forget bias
1) trained on the adding problem of the same length. The fitted decay rate
is the per-step factor exp(b) of a least-squares line log(norm) = a + b d.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from zoo.lab import common, tasks
from zoo.lab.common import CELL_COLORS, CELL_NAMES, CELLS, check

NAME = "gradients"
TITLE = "Vanishing and exploding gradients"
CLAIM = ("Gradients vanish or explode in backpropagation through time; gates, and a forget-gate "
         "bias of 1 for the LSTM, keep them alive over long distances.")

SIZES = {
    "smoke": {"units": 6, "length": 6, "batch": 3, "points": 4, "train_steps": 3},
    "full": {"units": 64, "length": 100, "batch": 32, "points": 20, "train_steps": 2000},
}
GAINS = (0.5, 1.0, 1.5)
#: Below this share of the one-step gradient after T steps, a gradient counts as vanished.
VANISHED = 1e-3
#: Smallest normal float32: norms are floored here before taking logs (float32 underflows below).
TINY = float(np.finfo(np.float32).tiny)


@contextlib.contextmanager
def recurrence_kernels(kind):
    """Run the fused path on the `native` or the `graph` kernels inside the block (eager calls)."""
    if kind not in ("native", "graph"):
        raise ValueError(f"unknown kernels {kind!r}; expected 'native' or 'graph'")
    saved = os.environ.get("ZOO_NATIVE_KERNELS")
    os.environ["ZOO_NATIVE_KERNELS"] = "1" if kind == "native" else "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["ZOO_NATIVE_KERNELS"]
        else:
            os.environ["ZOO_NATIVE_KERNELS"] = saved


def distances(length, points):
    """About `points` distances from 1 to `length`, evenly spaced, 1 and `length` included."""
    return sorted({1, length} | {int(round(v)) for v in np.linspace(1, length, points)})


def build_layer(cell, units, input_dim, gain=1.0, forget_bias=True, seed=0):
    """A zoo layer with `return_state=True`, built, recurrent weights orthogonal scaled by `gain`."""
    common.seed_everything(seed)
    options = {"return_state": True, "recurrent_initializer": common.orthogonal(gain)}
    if cell == "lstm":
        options["unit_forget_bias"] = bool(forget_bias)
    layer = common.recurrent_layer(cell, units, **options)
    layer.build((None, None, input_dim))
    return layer


def state_gradient_norms(layer, readout, x, steps_back):
    """`(len(steps_back), batch)` norms of d(readout . h_T)/d s_{T-d}, by the layer's own gradients.

    For a distance d the state s_t after the first t = T - d steps is fed as
    the initial state of a run over the remaining d steps, whose gradient
    TensorFlow takes; it equals the gradient the full sequence passes back
    to step t. All distances run in one batch: the sequences are repeated
    once per distance, and masks (a masked step keeps the state) limit the
    first call to the first t steps and the second to the last d.
    """
    import tensorflow as tf

    x = np.asarray(x, "float32")
    batch, length = x.shape[:2]
    tiled = tf.constant(np.tile(x, (len(steps_back), 1, 1)))
    starts = np.repeat([length - d for d in steps_back], batch)
    before = np.arange(length)[None, :] < starts[:, None]
    states = [tf.stop_gradient(s) for s in layer(tiled, mask=tf.constant(before))[1:]]
    readout = tf.constant(np.asarray(readout, "float32")[None, :])
    with tf.GradientTape() as tape:
        tape.watch(states)
        last = layer(tiled, mask=tf.constant(~before), initial_state=states)[1]
        value = tf.reduce_sum(last * readout)
    grads = tape.gradient(value, states)
    squared = sum(tf.reduce_sum(tf.square(g), axis=1) for g in grads)
    return np.sqrt(squared.numpy()).reshape(len(steps_back), batch)


def reference_state_gradient_norms(cell, weights, readout, x, steps_back):
    """The same norms as `state_gradient_norms`, from `zoo.reference` (float64 NumPy BPTT)."""
    from zoo import reference

    kernel, recurrent_kernel, bias = (np.asarray(w, "float64") for w in weights)
    x = np.asarray(x, "float64")
    batch, length = x.shape[:2]
    units = recurrent_kernel.shape[0]
    d_last = np.tile(np.asarray(readout, "float64")[None, :], (batch, 1))
    if cell == "rnn":
        outputs, _, _ = reference.simple_rnn_forward(x, None, kernel, recurrent_kernel, bias)
    elif cell == "gru":
        outputs, _, _ = reference.gru_forward(x, None, kernel, recurrent_kernel, bias)
    else:
        outputs, _, cache = reference.lstm_forward(x, None, None, kernel, recurrent_kernel, bias)
        cells = cache["cells"]
    zeros = np.zeros((batch, units))
    norms = []
    for d in steps_back:
        start = length - d
        h0 = zeros if start == 0 else outputs[:, start - 1]
        suffix = x[:, start:]
        if cell == "rnn":
            _, _, cache = reference.simple_rnn_forward(suffix, h0, kernel, recurrent_kernel, bias)
            grads = [reference.simple_rnn_backward(None, d_last, cache)["h0"]]
        elif cell == "gru":
            _, _, cache = reference.gru_forward(suffix, h0, kernel, recurrent_kernel, bias)
            grads = [reference.gru_backward(None, d_last, cache)["h0"]]
        else:
            c0 = zeros if start == 0 else cells[:, start - 1]
            _, _, cache = reference.lstm_forward(suffix, h0, c0, kernel, recurrent_kernel, bias)
            back = reference.lstm_backward(None, (d_last, None), cache)
            grads = [back["h0"], back["c0"]]
        norms.append(np.sqrt(sum((g ** 2).sum(axis=1) for g in grads)))
    return np.array(norms)


def layer_weights(layer):
    cell = layer.cell
    return cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()


def reference_agreement(seed=0, units=6, length=9, batch=3):
    """Largest relative difference between the layer's and `zoo.reference`'s norms, per cell."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, length, 2)).astype("float32")
    readout = rng.normal(size=units)
    steps_back = list(range(1, length + 1))
    errors = {}
    for cell in CELLS:
        layer = build_layer(cell, units, 2, gain=1.0, seed=seed)
        with recurrence_kernels("native"):
            ours = state_gradient_norms(layer, readout, x, steps_back)
        theirs = reference_state_gradient_norms(cell, layer_weights(layer), readout, x, steps_back)
        errors[cell] = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)))
    return errors


def decay_factor(steps_back, norms):
    """Per-step factor exp(b) of the least-squares line log(norm) = a + b * d (NaN norms left out)."""
    steps_back, norms = np.asarray(steps_back, float), np.asarray(norms, float)
    kept = np.isfinite(norms) & (norms > 0)
    if kept.sum() < 2:
        return float("nan")
    slope = np.polyfit(steps_back[kept], np.log(norms[kept]), 1)[0]
    return float(np.exp(slope))


def summarise(steps_back, per_example):
    """Geometric mean over the batch per distance, the fitted factor, and norm(T) / norm(1).

    Where some example's gradient fell below the smallest normal float32
    (`TINY`: float32 arithmetic flushes it towards zero), the distance counts
    as underflowed: its mean is left out of the curve (null in the JSON) and
    of the fit, and norm(T) / norm(1) is computed with the norm floored at
    `TINY` (an upper bound then).
    """
    underflow = (per_example < TINY).any(axis=1)
    curve = np.exp(np.mean(np.log(np.maximum(per_example, TINY)), axis=1))
    shown = np.where(underflow, np.nan, curve)
    return {
        "distances": list(steps_back),
        "norm": [common.rounded(v) for v in shown],
        "factor_per_step": common.rounded(decay_factor(steps_back, shown)),
        "ratio_far_near": common.rounded(curve[-1] / curve[0]),
        "underflow_from": int(np.asarray(steps_back)[underflow][0]) if underflow.any() else None,
    }


def train_on_adding(cell, size, seed):
    """A cell trained on the adding problem of the measured length; returns (layer, readout, test MSE)."""
    import keras
    import tensorflow as tf

    units, length = size["units"], size["length"]

    def build():
        return keras.Sequential([
            keras.Input((None, 2)),
            common.recurrent_layer(cell, units),
            keras.layers.Dense(1),
        ])

    trainer = common.cached_trainer((NAME, cell, units), lambda: common.Trainer(
        build, common.mean_squared_error,
        lambda: keras.optimizers.Adam(learning_rate=2e-3, global_clipnorm=1.0),
        tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None, 1], tf.float32)))
    trainer.reset(seed)
    rng = np.random.default_rng(seed)
    for _ in range(size["train_steps"]):
        trainer.train_step(*tasks.adding_problem(rng, size["batch"], length))
    test_x, test_y = tasks.adding_problem(np.random.default_rng(10_000 + seed), 256, length)
    mse, _ = trainer.evaluate(test_x, test_y)
    trained = trainer.model.layers[0]
    layer = build_layer(cell, units, 2, seed=seed)
    layer.set_weights(trained.get_weights())
    readout = trainer.model.layers[1].get_weights()[0][:, 0]
    return layer, readout, mse


def configurations():
    """(label, cell, gain, forget bias) at initialisation."""
    for cell in CELLS:
        for gain in GAINS:
            if cell == "lstm":
                for forget_bias in (0, 1):
                    yield f"lstm g={gain} fb={forget_bias}", cell, gain, forget_bias
            else:
                yield f"{cell} g={gain}", cell, gain, None


def display_name(entry):
    """"SimpleRNN g=0.5", "LSTM fb=1 g=1.0", ... for a configuration at initialisation."""
    name = CELL_NAMES[entry["cell"]].split()[0]
    if entry["cell"] == "lstm":
        name += f" fb={entry['forget_bias']}"
    return f"{name} g={entry['gain']}"


def run(scale="full", seed=0, out_dir=None):
    size, started = common.start(scale, SIZES)
    units, length, batch = size["units"], size["length"], size["batch"]
    steps_back = distances(length, size["points"])
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, length, 2)).astype("float32")
    readout = rng.normal(size=units)
    readout /= np.linalg.norm(readout)

    at_init, kernel_gap = {}, {}
    for label, cell, gain, forget_bias in configurations():
        layer = build_layer(cell, units, 2, gain=gain, forget_bias=bool(forget_bias), seed=seed)
        with recurrence_kernels("native"):
            native_norms = state_gradient_norms(layer, readout, x, steps_back)
        at_init[label] = {"cell": cell, "gain": gain, "forget_bias": forget_bias,
                          **summarise(steps_back, native_norms)}
        if gain == 1.0 and forget_bias in (None, 1):
            with recurrence_kernels("graph"):
                graph_norms = state_gradient_norms(layer, readout, x, steps_back)
            kernel_gap[cell] = common.rounded(np.max(
                np.abs(graph_norms - native_norms) / np.maximum(native_norms, TINY)))
        common.log(f"{NAME}: {label}: factor/step {at_init[label]['factor_per_step']:.4f}")

    trained = {}
    for cell in CELLS:
        layer, trained_readout, mse = train_on_adding(cell, size, seed)
        test_x, _ = tasks.adding_problem(np.random.default_rng(20_000 + seed), batch, length)
        with recurrence_kernels("native"):
            norms = state_gradient_norms(layer, trained_readout, test_x, steps_back)
        trained[cell] = {"adding_test_mse": common.rounded(mse), **summarise(steps_back, norms)}
        common.log(f"{NAME}: trained {cell}: test MSE {mse:.4f}, "
                   f"factor/step {trained[cell]['factor_per_step']:.4f}")

    reference_error = reference_agreement(seed)

    figure, axes = common.new_figure(columns=2)
    styles = {0.5: ":", 1.0: "-", 1.5: "--"}

    def curve(entry):
        return [np.nan if v is None else v for v in entry["norm"]]

    for entry in at_init.values():
        color = "tab:purple" if entry["forget_bias"] == 0 else CELL_COLORS[entry["cell"]]
        axes[0, 0].plot(steps_back, curve(entry), color=color, linestyle=styles[entry["gain"]],
                        label=display_name(entry))
    for cell, entry in trained.items():
        axes[0, 1].plot(steps_back, curve(entry), color=CELL_COLORS[cell], label=CELL_NAMES[cell])
    axes[0, 0].set_title(f"at initialisation (T={length}, {units} units)")
    axes[0, 1].set_title(f"after {size['train_steps']} steps on the adding problem")
    for axis in axes[0]:
        axis.set_yscale("log")
        axis.set_xlabel("distance T - t (steps back)")
        axis.set_ylabel("||dl / ds_t|| (geometric mean; gaps: float32 underflow)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    figure_name = common.save_figure(figure, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    table_rows = [
        [f"{display_name(e)}, at initialisation", e["factor_per_step"], e["ratio_far_near"], e["underflow_from"]]
        for e in at_init.values()
    ] + [
        [f"{CELL_NAMES[cell].split()[0]}, trained (adding test MSE {e['adding_test_mse']:.3f})",
         e["factor_per_step"], e["ratio_far_near"], e["underflow_from"]] for cell, e in trained.items()
    ]
    rnn_small, rnn_large = at_init["rnn g=0.5"], at_init["rnn g=1.5"]
    lstm_fb0, lstm_fb1 = at_init["lstm g=1.0 fb=0"], at_init["lstm g=1.0 fb=1"]
    rnn_t, gru_t, lstm_t = trained["rnn"], trained["gru"], trained["lstm"]
    checks = [
        check(f"SimpleRNN, g=0.5: the gradient {length} steps back is below {VANISHED:g} of the "
              f"one-step gradient (vanishes)", rnn_small["ratio_far_near"] < VANISHED,
              f"ratio {rnn_small['ratio_far_near']:.3g}, factor/step {rnn_small['factor_per_step']:.4f}"),
        check("SimpleRNN, g=1.5: the gradient grows with the distance (factor/step > 1: explodes)",
              rnn_large["factor_per_step"] > 1.0,
              f"factor/step {rnn_large['factor_per_step']:.4f}, ratio {rnn_large['ratio_far_near']:.3g}"),
        check("LSTM, g=1: a forget-gate bias of 1 keeps more gradient than a bias of 0",
              lstm_fb1["ratio_far_near"] > lstm_fb0["ratio_far_near"],
              f"ratio {lstm_fb1['ratio_far_near']:.3g} (bias 1) vs {lstm_fb0['ratio_far_near']:.3g} (bias 0)"),
        check("After training, LSTM and GRU keep more gradient over T steps than SimpleRNN",
              min(lstm_t["ratio_far_near"], gru_t["ratio_far_near"]) > rnn_t["ratio_far_near"],
              f"ratio LSTM {lstm_t['ratio_far_near']:.3g}, GRU {gru_t['ratio_far_near']:.3g}, "
              f"SimpleRNN {rnn_t['ratio_far_near']:.3g}"),
    ]
    caveat = (f"Measured at T={length} with {units} units on Gaussian inputs; 'after training' means "
              f"{size['train_steps']} Adam steps (batch {batch}) on the adding problem, which may or may "
              f"not have solved it (its test MSE is in the table; 0.167 is chance).")
    result = {
        "number": 1,
        "title": TITLE,
        "setup": (f"‖∂l/∂s_t‖ against the distance T − t for l = w·h_T, T={length}, {units} units, "
                  f"batch {batch} of Gaussian inputs (2 features); recurrent weights orthogonal × g; "
                  f"geometric mean over the batch; decay factor per step from a least-squares fit of "
                  f"log-norm on distance. Gradients of the layers' fused path (native kernels), "
                  f"compared with the graph kernels and with zoo.reference's hand-written BPTT."),
        "settings": {"seed": seed, **size, "gains": list(GAINS), "distances": steps_back},
        "claims": [common.claim(CLAIM, checks, caveat)],
        "table": {"columns": ["configuration", "factor per step", "norm(T) / norm(1)",
                              "float32 underflow from distance"],
                  "rows": table_rows},
        "notes": [
            "Layer gradients against zoo.reference's hand-written BPTT (one small case, float64 "
            "reference): largest relative error " + ", ".join(
                f"{CELL_NAMES[c]} {e:.1e}" for c, e in reference_error.items()) + ".",
            "Graph kernels against native kernels (g=1, every distance): largest relative difference "
            + ", ".join(f"{CELL_NAMES[c]} {e:.1e}" for c, e in kernel_gap.items()) + ".",
        ],
        "results": {"at_initialisation": at_init, "trained": trained,
                    "graph_vs_native_max_relative_difference": kernel_gap,
                    "reference_max_relative_error": reference_error},
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
