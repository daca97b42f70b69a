"""Experiment 6: is the GRU cheaper than the LSTM, and by how much?

The claim. A GRU has three gate blocks where an LSTM has four and no
separate cell state, so at the same hidden size it has 3/4 of the LSTM's
weights and should need less time and memory per step. Whether that holds
in wall-clock time depends on the implementation: our GRU (reset gate
before the recurrent product, as our documents write it) needs two
recurrent products per step, one after the other, where the LSTM needs one.

The experiment. For each cell, on the native CPU kernels of the fused path:
the parameter count, the median time of a training step (forward, backward
and an Adam update) and of a forward pass, both timed in rounds that visit
the cells in turn so that a slow spell of the machine hits them alike, and
the memory the recurrence keeps for backpropagation (the sizes of what the
forward kernel returns for the backward pass, read from the traced graph).
Once at the same hidden size, once at about the same parameter count (the
LSTM's at that size).
"""

from __future__ import annotations

import os
import time

import numpy as np

from zoo.lab import common
from zoo.lab.common import CELL_COLORS, CELL_NAMES, CELLS, check

NAME = "cost"
TITLE = "Cost per cell at equal units and equal parameters"
CLAIM = "GRUs are cheaper than LSTMs (fewer parameters, less time and memory per step)."

SIZES = {
    "smoke": {"units": 8, "batch": 4, "length": 10, "features": 4, "rounds": 3, "warmup": 1},
    "full": {"units": 128, "batch": 64, "length": 100, "features": 32, "rounds": 40, "warmup": 3},
}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def recurrent_parameters(cell, units, features):
    """Weights of one recurrent layer: gates * (inputs * units + units * units + units)."""
    return GATES[cell] * (features * units + units * units + units)


def units_for_parameters(cell, target, features):
    """The hidden size whose parameter count is closest to `target`."""
    candidates = range(1, 8 * int(np.sqrt(target)) + 2)
    return min(candidates, key=lambda units: abs(recurrent_parameters(cell, units, features) - target))


def build(cell, units, size):
    import keras

    return keras.Sequential([keras.Input((size["length"], size["features"]), batch_size=size["batch"]),
                             common.recurrent_layer(cell, units), keras.layers.Dense(1)])


def step_functions(model):
    """Traced training step and forward pass of `model` (static shapes), and the training graph."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def forward(x):
        return model(x, training=False)

    return train, forward


def kept_for_backward(train, x, y):
    """Bytes the native forward kernel returns for the backward pass (states and saved gate values)."""
    graph = train.get_concrete_function(x, y).graph
    total = 0
    found = False
    for operation in graph.get_operations():
        if operation.type == "ZooRecurrenceForward":
            found = True
            for output in (operation.outputs[0], operation.outputs[3]):  # h_seq, saved
                total += 4 * int(output.shape.num_elements())
    return total if found else None


def measure(configurations, size, seed=0):
    """Parameters, memory and median step times of `configurations`: {label: (cell, units)}."""
    common.seed_everything(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size["batch"], size["length"], size["features"])).astype("float32")
    y = rng.normal(size=(size["batch"], 1)).astype("float32")
    prepared = {}
    for label, (cell, units) in configurations.items():
        model = build(cell, units, size)
        train, forward = step_functions(model)
        for _ in range(size["warmup"]):
            train(x, y)
            forward(x)
        prepared[label] = {
            "cell": cell, "units": units,
            "parameters": common.parameter_count(model.layers[0]),
            "backward_memory_bytes": kept_for_backward(train, x, y),
            "train": train, "forward": forward,
        }
    times = {label: {"train": [], "forward": []} for label in configurations}
    for _ in range(size["rounds"]):
        for label, entry in prepared.items():
            start = time.perf_counter()
            entry["train"](x, y).numpy()
            times[label]["train"].append(time.perf_counter() - start)
            start = time.perf_counter()
            entry["forward"](x).numpy()
            times[label]["forward"].append(time.perf_counter() - start)
    measured, timings = {}, {}
    for label, entry in prepared.items():
        measured[label] = {k: entry[k] for k in ("cell", "units", "parameters", "backward_memory_bytes")}
        timings[label] = {f"{kind}_step_ms": common.rounded(1000 * float(np.median(times[label][kind])), 4)
                          for kind in ("train", "forward")}
    return measured, timings


def plot(measured, timings, path):
    figure, axes = common.new_figure(columns=3, width=4.0)
    for column, (group, title) in enumerate((("equal_units", "same units"),
                                             ("equal_parameters", "same parameters"))):
        labels = list(measured[group])
        positions = np.arange(len(labels))
        train = [timings[group][label]["train_step_ms"] for label in labels]
        forward = [timings[group][label]["forward_step_ms"] for label in labels]
        colors = [CELL_COLORS[measured[group][label]["cell"]] for label in labels]
        axes[0, column].bar(positions - 0.2, train, width=0.4, color=colors, label="training step")
        axes[0, column].bar(positions + 0.2, forward, width=0.4, color=colors, alpha=0.4, label="forward")
        axes[0, column].set_xticks(positions, [f"{CELL_NAMES[measured[group][l]['cell']].split()[0]}\n"
                                               f"{measured[group][l]['units']} units" for l in labels])
        axes[0, column].set_ylabel("milliseconds (median)")
        axes[0, column].set_title(f"time per step, {title}")
        axes[0, column].legend(fontsize=7)
    labels = list(measured["equal_units"])
    memory = [(measured["equal_units"][l]["backward_memory_bytes"] or 0) / 2**20 for l in labels]
    axes[0, 2].bar(np.arange(len(labels)), memory,
                   color=[CELL_COLORS[measured["equal_units"][l]["cell"]] for l in labels])
    axes[0, 2].set_xticks(np.arange(len(labels)), [CELL_NAMES[measured["equal_units"][l]["cell"]].split()[0]
                                                   for l in labels])
    axes[0, 2].set_ylabel("MiB kept for the backward pass")
    axes[0, 2].set_title("memory, same units")
    for axis in axes[0]:
        axis.grid(alpha=0.3, axis="y")
    return common.save_figure(figure, path)


def run(scale="full", out_dir=None):
    from zoo.layers import native

    size, started = common.start(scale, SIZES)
    units, features = size["units"], size["features"]
    target = recurrent_parameters("lstm", units, features)
    equal_units = {cell: (cell, units) for cell in CELLS}
    equal_parameters = {cell: (cell, units_for_parameters(cell, target, features)) for cell in CELLS}
    measured, timings = {}, {}
    for group, configurations in (("equal_units", equal_units), ("equal_parameters", equal_parameters)):
        measured[group], timings[group] = measure(configurations, size)
        common.log(f"{NAME}: {group}: {timings[group]}")
    figure_name = plot(measured, timings, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    same = measured["equal_units"]
    t_same, t_params = timings["equal_units"], timings["equal_parameters"]
    ratio = {group: {kind: common.rounded(timings[group]["gru"][f"{kind}_step_ms"]
                                          / timings[group]["lstm"][f"{kind}_step_ms"], 3)
                     for kind in ("train", "forward")} for group in timings}
    memory_ratio = (common.rounded(same["gru"]["backward_memory_bytes"] / same["lstm"]["backward_memory_bytes"], 3)
                    if same["lstm"]["backward_memory_bytes"] else None)
    checks = [
        check(f"{units} units: GRU has fewer parameters than LSTM",
              same["gru"]["parameters"] < same["lstm"]["parameters"],
              f"{same['gru']['parameters']} vs {same['lstm']['parameters']}"),
        check(f"{units} units: GRU keeps less memory for backpropagation",
              memory_ratio is not None and memory_ratio < 1,
              f"GRU/LSTM {memory_ratio}" if memory_ratio is not None else
              "not measured (the native kernels are not in use)"),
        check(f"{units} units: GRU's training step is faster",
              ratio["equal_units"]["train"] < 1,
              f"GRU {t_same['gru']['train_step_ms']:.2f} ms vs LSTM {t_same['lstm']['train_step_ms']:.2f} ms "
              f"(ratio {ratio['equal_units']['train']:.2f})"),
        check(f"about {target} parameters: GRU's training step is faster",
              ratio["equal_parameters"]["train"] < 1,
              f"GRU ({equal_parameters['gru'][1]} units) {t_params['gru']['train_step_ms']:.2f} ms vs LSTM "
              f"{t_params['lstm']['train_step_ms']:.2f} ms (ratio {ratio['equal_parameters']['train']:.2f})"),
    ]
    rows = []
    for group, title in (("equal_units", "same units"), ("equal_parameters", "same parameters")):
        for cell in CELLS:
            entry = measured[group][cell]
            memory = entry["backward_memory_bytes"]
            rows.append([title, CELL_NAMES[cell], entry["units"], entry["parameters"],
                         timings[group][cell]["train_step_ms"], timings[group][cell]["forward_step_ms"],
                         None if memory is None else common.rounded(memory / 2**20, 4)])
    caveat = (f"Wall-clock times of one machine (its CPU is below), batch {size['batch']}, {size['length']} "
              f"steps, {features} input features; other sizes, kernels (graph kernels, cuDNN on a GPU) or "
              f"a GRU with the reset gate after the product change the ratios. Memory counts the "
              f"recurrence's own saved tensors, not TensorFlow's other buffers.")
    result = {
        "number": 6,
        "title": TITLE,
        "setup": (f"One recurrent layer and a linear output, batch {size['batch']} × {size['length']} steps × "
                  f"{features} features, native kernels ({native.unavailable_reason() or 'in use'}); median "
                  f"of {size['rounds']} interleaved rounds after {size['warmup']} warm-up steps; at {units} units "
                  f"and at about the LSTM's {target} recurrent parameters "
                  f"(units {', '.join(f'{c} {u}' for c, (_, u) in equal_parameters.items())})."),
        "settings": size,
        "claims": [common.claim(CLAIM, checks, caveat)],
        "table": {"columns": ["comparison", "cell", "units", "parameters", "training step (ms)",
                              "forward (ms)", "kept for backward (MiB)"],
                  "rows": rows},
        "notes": [f"GRU / LSTM: training step time {ratio['equal_units']['train']:.2f} and forward time "
                  f"{ratio['equal_units']['forward']:.2f} at {units} units, {ratio['equal_parameters']['train']:.2f} "
                  f"and {ratio['equal_parameters']['forward']:.2f} at about {target} parameters; parameters "
                  f"{same['gru']['parameters'] / same['lstm']['parameters']:.2f} and memory kept for "
                  f"backpropagation {memory_ratio} at {units} units."],
        "results": {"measured": measured, "gru_over_lstm_memory": memory_ratio},
        "timings": {"steps": timings, "gru_over_lstm_time": ratio},
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
