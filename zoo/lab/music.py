"""Experiment 5: Chung et al. (2014) reproduced on our data: polyphonic music with tanh RNN, GRU and LSTM.

The claim. Chung, Gulcehre, Cho and Bengio (2014), "Empirical evaluation of
gated recurrent neural networks on sequence modeling", compared the three
cells at about equal parameter counts (about 20k: tanh 100 units, GRU 46,
LSTM 36) on polyphonic music. On the JSB Chorales their test negative
log-likelihood per frame was tanh 9.10, GRU 8.54, LSTM 8.67: the gated
units beat the tanh RNN and the GRU did at least as well as the LSTM. This
is also the evidence usually given for "GRUs are cheaper than LSTMs while
maintaining performance".

The experiment. The piano roll of `zoo.lab.pianoroll` (the Bach chorales of
music21's corpus, one frame per quarter note, 88 keys, split by chorale).
Each model reads frame t and gives 88 independent probabilities for the keys
of frame t + 1 (one recurrent layer with the paper's unit counts and a
sigmoid output layer whose bias starts at each key's training log-odds, so
every model starts from the key frequencies); the loss is the negative log-likelihood of the next
frame, summed over the keys, per frame (nats). Adam, whole chorales in
batches, 3 seeds; the test NLL is read at the epoch of the best validation
NLL. Ours is a rebuilt set (different files, voices, quantisation and split
from Boulanger-Lewandowski's), so compare the ordering and the gaps with the
paper's, not the values. A baseline that ignores the past (each key on with
its training frequency) shows what the models learn from context.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.lab import common, pianoroll
from zoo.lab.common import CELL_COLORS, CELL_NAMES, CELLS, check

NAME = "music"
TITLE = "Chung et al. 2014 on a rebuilt JSB-style piano roll"
CLAIM = ("On polyphonic music at about equal parameter counts, the gated units beat the tanh RNN and the "
         "GRU does at least as well as the LSTM (Chung et al. 2014, JSB Chorales test NLL: tanh 9.10, "
         "GRU 8.54, LSTM 8.67).")
SIDE_CLAIM = "GRUs are cheaper than LSTMs while maintaining performance (here: the performance half)."
PAPER_NLL = {"rnn": 9.10, "gru": 8.54, "lstm": 8.67}
PAPER_UNITS = {"rnn": 100, "gru": 46, "lstm": 36}

SIZES = {
    "smoke": {"limit": 8, "units": {"rnn": 6, "gru": 4, "lstm": 3}, "epochs": 2, "batch": 4,
              "seeds": [0, 1]},
    "full": {"limit": None, "units": PAPER_UNITS, "epochs": 80, "batch": 8, "seeds": [0, 1, 2]},
}
LEARNING_RATE = 3e-3


def padded(rolls):
    """`(x, y, weights)`: inputs frames 0..n-2, targets frames 1..n-1, zero-padded to the longest."""
    longest = max(len(r) for r in rolls) - 1
    x = np.zeros((len(rolls), longest, pianoroll.KEYS), "float32")
    y = np.zeros_like(x)
    weights = np.zeros((len(rolls), longest), "float32")
    for row, roll in enumerate(rolls):
        n = len(roll) - 1
        x[row, :n], y[row, :n], weights[row, :n] = roll[:-1], roll[1:], 1.0
    return x, y, weights


def nll_per_frame(y_true, logits, weights):
    """Negative log-likelihood of the next frame (88 Bernoullis, summed over keys), per real frame."""
    import tensorflow as tf

    per_key = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    per_frame = tf.reduce_sum(per_key, axis=-1)
    return tf.reduce_sum(per_frame * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def key_log_odds(train):
    """Log-odds of each key being on in a training frame: the output bias every model starts from."""
    p = np.clip(np.concatenate(train).mean(axis=0), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p)).astype("float32")


def trainer(cell, units, output_bias):
    import keras
    import tensorflow as tf

    keys = pianoroll.KEYS

    def build():
        return keras.Sequential([
            keras.Input((None, keys)),
            common.recurrent_layer(cell, units, return_sequences=True),
            keras.layers.Dense(keys, bias_initializer=keras.initializers.Constant(output_bias)),
        ])

    return common.Trainer(
        build, nll_per_frame, lambda: keras.optimizers.Adam(learning_rate=LEARNING_RATE, global_clipnorm=1.0),
        tf.TensorSpec([None, None, keys], tf.float32), tf.TensorSpec([None, None, keys], tf.float32),
        weights_spec=tf.TensorSpec([None, None], tf.float32))


def train_one(model, parts, size, seed):
    """Epochs over the training chorales; the test NLL at the best validation epoch."""
    model.reset(seed)
    rng = np.random.default_rng(seed)
    validation, test = padded(parts["validation"]), padded(parts["test"])
    train = parts["train"]
    best = (float("inf"), None, 0)
    curve = []
    for epoch in range(1, size["epochs"] + 1):
        order = rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), size["batch"]):
            loss, _ = model.train_step(*padded([train[i] for i in order[start:start + size["batch"]]]))
            losses.append(loss)
        valid, _ = model.evaluate(*validation)
        curve.append([epoch, common.rounded(np.mean(losses)), common.rounded(valid)])
        if valid < best[0]:
            best = (valid, model.model.get_weights(), epoch)
    if best[1] is not None:  # else every epoch's validation NLL was NaN: the last weights are tested
        model.model.set_weights(best[1])
    test_nll, _ = model.evaluate(*test)
    return {"test_nll": common.rounded(test_nll), "validation_nll": common.rounded(best[0]),
            "best_epoch": best[2], "curve": curve}


def marginal_baseline(parts):
    """NLL per frame of predicting each key on with its training frequency, whatever came before."""
    frames = np.concatenate(parts["train"])
    p = np.clip(frames.mean(axis=0), 1e-4, 1 - 1e-4)
    targets = np.concatenate([r[1:] for r in parts["test"]])
    return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).sum(axis=1).mean())


def plot(results, size, baseline, path):
    figure, axes = common.new_figure(columns=2)
    for cell in CELLS:
        for index, seed in enumerate(size["seeds"]):
            curve = np.array(results[cell]["runs"][str(seed)]["curve"])
            axes[0, 0].plot(curve[:, 0], curve[:, 2], color=CELL_COLORS[cell], alpha=0.7,
                            label=f"{CELL_NAMES[cell]} ({results[cell]['parameters']} parameters)"
                            if index == 0 else None)
    axes[0, 0].axhline(baseline, color="gray", linestyle=":", label="key frequencies only")
    axes[0, 0].set_xlabel("epoch")
    axes[0, 0].set_ylabel("validation NLL per frame (nats)")
    axes[0, 0].set_title(f"learning curves ({len(size['seeds'])} seeds each)")
    positions = np.arange(len(CELLS))
    ours = [results[c]["mean_test_nll"] for c in CELLS]
    spread = [results[c]["std_test_nll"] for c in CELLS]
    axes[0, 1].bar(positions - 0.2, ours, width=0.4, yerr=spread, label="ours (rebuilt set)",
                   color=[CELL_COLORS[c] for c in CELLS])
    axes[0, 1].bar(positions + 0.2, [PAPER_NLL[c] for c in CELLS], width=0.4, color="lightgray",
                   label="Chung et al. 2014 (JSB)")
    axes[0, 1].set_xticks(positions, [CELL_NAMES[c] for c in CELLS])
    axes[0, 1].set_ylabel("test NLL per frame (nats)")
    axes[0, 1].set_title("test NLL: compare the ordering and the gaps")
    return common.finish_figure(figure, axes[0], path)


def run(scale="full", out_dir=None):
    size, started = common.start(scale, SIZES)
    data = pianoroll.load(size["limit"])
    parts = pianoroll.split(data)
    facts = pianoroll.describe(data, parts)
    baseline = marginal_baseline(parts)
    output_bias = key_log_odds(parts["train"])
    common.log(f"{NAME}: {facts['chorales']} chorales ({data['source']}, {data['seconds']:.1f} s), "
               f"frames per split {facts['frames_per_split']}")
    results = {}
    for cell in CELLS:
        units = size["units"][cell]
        model = common.cached_trainer((NAME, cell, units, output_bias.tobytes()),
                                      lambda: trainer(cell, units, output_bias))
        runs = {str(seed): train_one(model, parts, size, seed) for seed in size["seeds"]}
        values = [r["test_nll"] for r in runs.values()]
        results[cell] = {"units": size["units"][cell], "parameters": model.parameters, "runs": runs,
                         "mean_test_nll": common.rounded(np.mean(values)),
                         "std_test_nll": common.rounded(np.std(values))}
        common.log(f"{NAME}: {cell}: test NLL {values}")
    figure_name = plot(results, size, baseline, os.path.join(out_dir, f"{NAME}.png")) if out_dir else None

    mean = {c: results[c]["mean_test_nll"] for c in CELLS}
    std = {c: results[c]["std_test_nll"] for c in CELLS}

    def beats(a, b):
        spread = max(std[a], std[b])
        return check(f"{CELL_NAMES[a]} beats {CELL_NAMES[b]} by more than the seed spread",
                     common.clearly_below(mean[a], mean[b], spread),
                     f"mean test NLL {mean[a]:.3f} vs {mean[b]:.3f} (larger std {spread:.3f}); paper "
                     f"{PAPER_NLL[a]:.2f} vs {PAPER_NLL[b]:.2f}")

    checks = [beats("gru", "rnn"), beats("lstm", "rnn"),
              check("GRU does at least as well as LSTM (mean test NLL not higher)", mean["gru"] <= mean["lstm"],
                    f"GRU {mean['gru']:.3f}, LSTM {mean['lstm']:.3f}; paper 8.54 vs 8.67")]
    side = [check("GRU's test NLL is within the seed spread of LSTM's, or lower",
                  mean["gru"] <= mean["lstm"] + max(std["gru"], std["lstm"]),
                  f"GRU {mean['gru']:.3f} ± {std['gru']:.3f}, LSTM {mean['lstm']:.3f} ± {std['lstm']:.3f} "
                  f"at {results['gru']['parameters']} vs {results['lstm']['parameters']} parameters")]
    rows = [[CELL_NAMES[c], results[c]["units"], results[c]["parameters"], mean[c], std[c],
             PAPER_NLL[c]] for c in CELLS]
    rows.append(["key frequencies only (no model)", None, pianoroll.KEYS, common.rounded(baseline), None, None])
    caveat = (f"A rebuilt set ({facts['chorales']} chorales of music21's corpus, four voices sampled at each "
              f"quarter note, in their written keys; {facts['frames_per_split']['train']} training frames), "
              f"not the JSB file; {size['epochs']} epochs of Adam (learning rate {LEARNING_RATE:g}) and "
              f"{len(size['seeds'])} seeds instead of the paper's RMSProp with weight noise and long training.")
    result = {
        "number": 5,
        "title": TITLE,
        "setup": (f"Next-frame prediction on the piano roll (88 keys, {pianoroll.FRAMES_PER_QUARTER} frame per "
                  f"quarter note; chorales split {facts['chorales_per_split']}), one recurrent layer (units "
                  f"{size['units']}) and a sigmoid output (bias initialised to the keys' training log-odds); "
                  f"NLL per frame summed over keys; Adam (learning rate {LEARNING_RATE:g}), batches of "
                  f"{size['batch']} chorales, {size['epochs']} epochs, test NLL at the best validation epoch, "
                  f"seeds {size['seeds']}."),
        "settings": {**size, "learning_rate": LEARNING_RATE, "data": facts},
        "claims": [common.claim(CLAIM, checks, caveat), common.claim(SIDE_CLAIM, side, caveat)],
        "table": {"columns": ["cell", "units", "parameters", "mean test NLL", "std over seeds",
                              "paper (JSB)"],
                  "rows": rows},
        "results": {"cells": results, "key_frequency_baseline_nll": common.rounded(baseline)},
        "notes": [f"The piano roll was {'read from the cache' if data['source'] == 'cache' else 'parsed'} "
                  f"in {data['seconds']:.1f} s (included in the time below); {facts['skipped']} file(s) without "
                  f"four voices skipped, {facts['duplicates']} duplicate(s) dropped; "
                  f"{facts['mean_keys_on']:.2f} keys on per frame on average."],
        "timings": {"piano_roll": {"source": data["source"], "seconds": data["seconds"]}},
    }
    return common.finish(result, name=NAME, scale=scale, started=started, figure=figure_name)
