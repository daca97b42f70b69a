"""What every lab experiment shares: scales, seeds, verdicts, results on disk, figures, training.

An experiment is a function `run(scale)` that returns a *result*: a plain dict
(JSON-serialisable) holding the claim, the settings, the measured numbers, a
table, a few *checks* and the verdict computed from them. `save_result`
writes it as JSON next to the experiment's figure; `zoo.lab.report` renders
the page from those files alone.

The verdict rule is the same everywhere: an experiment turns its claim into a
few checks, each a comparison of measured numbers that the claim predicts;
the claim **holds** when every check passes, holds **partly** when some do,
and **does not hold here** when none does.

Training goes through `Trainer`: one model, one optimizer and one traced
training step per architecture, reset to the weights a fresh seeded build
would have before every run. The traced step takes sequences of any length,
so a sweep over lengths and seeds traces once; the numbers are the same as
those of a fresh model built after `seed_everything(seed)`.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from zoo import _backend  # noqa: F401  (sets the Keras backend before import)

#: The sizes an experiment runs at: "smoke" takes seconds (tests), "full" is the real measurement.
SCALES = ("smoke", "full")

HOLDS, PARTLY, DOES_NOT_HOLD = "holds", "partly", "does not hold here"
VERDICTS = (HOLDS, PARTLY, DOES_NOT_HOLD)
VERDICT_RULE = ("holds when every check passes, partly when some do, "
                "does not hold here when none does")

#: The cells, by the short names of `zoo.layers.sequence_layer_class`, and how the page names them.
CELLS = ("rnn", "gru", "lstm")
CELL_NAMES = {"rnn": "SimpleRNN (tanh)", "gru": "GRU", "lstm": "LSTM"}
CELL_COLORS = {"rnn": "tab:red", "gru": "tab:green", "lstm": "tab:blue"}


def check_scale(scale):
    """`scale` itself, or a ValueError naming the accepted ones."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return scale


def seed_everything(seed):
    """Seed Python, NumPy, TensorFlow and Keras (see `zoo.training.seed_everything`)."""
    from zoo.training import seed_everything as seed_all

    seed_all(int(seed))


# -- checks and verdicts -------------------------------------------------------------


def check(name, passed, detail):
    """One comparison the claim predicts: what is compared, whether it came out so, the numbers."""
    return {"check": name, "passed": bool(passed), "detail": detail}


def verdict(checks):
    """The verdict of `VERDICT_RULE` for a list of `check` dicts."""
    if not checks:
        raise ValueError("checks: an experiment needs at least one check to reach a verdict")
    passed = sum(1 for c in checks if c["passed"])
    if passed == len(checks):
        return HOLDS
    return PARTLY if passed else DOES_NOT_HOLD


def clearly_below(a, b, spread):
    """`a < b` by more than `spread` (e.g. the larger standard deviation over seeds)."""
    return bool(a < b - spread)


# -- results on disk -----------------------------------------------------------------


def environment():
    """The machine and the library versions a result was measured with (recorded in each JSON)."""
    import keras
    import tensorflow as tf

    from zoo.layers import native
    from zoo.training import hardware_description

    return {
        "hardware": hardware_description(),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
        "recurrence_kernels": "native" if native.unavailable_reason() is None else "graph",
    }


def finite_numbers(value):
    """Every number in a nested result (for the tests: all of them must be finite)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from finite_numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from finite_numbers(item)


def to_builtin(value, replaced=None, path="result"):
    """NumPy scalars and arrays as plain Python values (json.dumps writes them then).

    JSON has no NaN or infinity: such a value becomes None, and its path
    (e.g. `result.results.none.median_final_test_mse`) is appended to
    `replaced` when a list is given.
    """
    if isinstance(value, dict):
        return {str(k): to_builtin(v, replaced, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v, replaced, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist(), replaced, path)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isfinite(value):
            return value
        if replaced is not None:
            replaced.append(path)
        return None
    return value


def rounded(value, digits=6):
    """A float kept to `digits` significant digits (tables and JSON stay readable)."""
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return float(f"{value:.{digits}g}")


def save_result(result, out_dir):
    """Write `result` as `<out_dir>/<experiment>.json` (atomically); returns the path."""
    from zoo.data.cache import atomic_write_text

    path = Path(out_dir) / f"{result['experiment']}.json"
    text = json.dumps(to_builtin(result), indent=1, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def load_result(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def command_line(name, scale):
    return f"python -m zoo.lab {name} --scale {scale}"


def claim(text, checks, caveat):
    """A claim, the checks that test it, its verdict, and what limits the test here (`caveat`)."""
    return {"claim": text, "checks": list(checks), "verdict": verdict(checks), "caveat": caveat}


def finish(result, *, name, scale, started, figure):
    """Add what every result carries: verdict rule, command, machine, versions, seconds.

    `result` holds `title`, `setup` (the experiment in words, with its
    settings), `claims` (from `claim`), `table` (`columns` and `rows`),
    `results` (every measured number), optionally `timings`.
    """
    result = dict(result)
    result["experiment"] = name
    result["scale"] = scale
    result["verdict_rule"] = VERDICT_RULE
    result["figure"] = figure
    result["command"] = command_line(name, scale)
    result.update(environment())
    result["seconds"] = round(time.perf_counter() - started, 2)
    replaced = []
    result = to_builtin(result, replaced)
    result["non_finite"] = replaced  # where a NaN or infinity was written as null (e.g. a diverged run)
    return result


# -- figures -------------------------------------------------------------------------


def new_figure(columns=1, rows=1, width=5.0, height=3.6):
    """A matplotlib figure on the Agg canvas (no pyplot state, no display) and its axes grid."""
    from zoo.figures import new_figure

    figure = new_figure(width * columns, height * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def finish_figure(figure, axes, path):
    """Grid and legend on each of `axes`, then `save_figure`."""
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return save_figure(figure, path)


def start(scale, sizes):
    """(the settings of `scale` in `sizes`, the start time): how every experiment's `run` begins."""
    return sizes[check_scale(scale)], time.perf_counter()


def save_figure(figure, path):
    """Write `figure` as a PNG, atomically; returns the file name."""
    from zoo.figures import write_png

    write_png(figure, path, dpi=90, metadata={"Software": None})
    return Path(path).name


# -- models and training -------------------------------------------------------------


def recurrent_layer(cell, units, **options):
    """A zoo sequence layer (`rnn`, `gru` or `lstm`) with `units` and Keras-style options."""
    from zoo.layers import sequence_layer_class

    return sequence_layer_class(cell)(units, **options)


def parameter_count(model):
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))


def orthogonal(gain):
    import keras

    return keras.initializers.Orthogonal(gain=float(gain))


class Trainer:
    """One model, its optimizer and a traced training step, reused across seeds and lengths.

    Args:
        build_model: `() -> keras.Model`; called after seeding, it gives the
            weights a run starts from.
        loss: `(y_true, y_pred, weights) -> scalar tensor`; `weights` is the
            batch's weight tensor, or None.
        optimizer: `() -> keras.optimizers.Optimizer`.
        x_spec, y_spec: `tf.TensorSpec`s of a batch (None for the length axis
            lets one trace serve every length).
        weights_spec: the `tf.TensorSpec` of a third array of loss weights
            that batches come with, or None (no weights).
    """

    def __init__(self, build_model, loss, optimizer, x_spec, y_spec, weights_spec=None):
        import tensorflow as tf

        self.build_model = build_model
        self.loss = loss
        self.model = build_model()
        self.optimizer = optimizer()
        self.optimizer.build(self.model.trainable_variables)
        self._fresh_optimizer = [v.numpy() for v in self.optimizer.variables]
        specs = [x_spec, y_spec] + ([weights_spec] if weights_spec is not None else [])
        self._train = tf.function(self._train_step, input_signature=specs)
        self._evaluate = tf.function(self._loss_and_output, input_signature=specs)
        self._predict = tf.function(lambda x: self.model(x, training=False), input_signature=[x_spec])

    @property
    def parameters(self):
        return parameter_count(self.model)

    def reset(self, seed):
        """Start weights of a fresh build seeded with `seed`; a fresh optimizer state."""
        seed_everything(seed)
        self.model.set_weights(self.build_model().get_weights())
        for variable, value in zip(self.optimizer.variables, self._fresh_optimizer):
            variable.assign(value)
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def _loss_and_output(self, x, y, weights=None):
        output = self.model(x, training=False)
        return self.loss(y, output, weights), output

    def _train_step(self, x, y, weights=None):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            output = self.model(x, training=True)
            loss = self.loss(y, output, weights)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        norm = tf.linalg.global_norm(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return loss, norm

    def train_step(self, *batch):
        """One update; returns `(loss, gradient norm before any clipping)` as floats."""
        loss, norm = self._train(*batch)
        return float(loss), float(norm)

    def evaluate(self, *batch):
        """`(loss, outputs as NumPy)` without updating anything."""
        loss, output = self._evaluate(*batch)
        return float(loss), output.numpy()

    def predict(self, x):
        return self._predict(x).numpy()


_TRAINERS = {}


def cached_trainer(key, make):
    """The `Trainer` made by `make()` for `key`, made once per process.

    Tracing the training step is most of the time of a small run, so an
    experiment run twice in one process (the tests do) traces once. Every
    run starts with `Trainer.reset(seed)`, so the numbers do not depend on
    whether the trainer was cached. `key` must name everything `make` builds
    from (experiment, task, cell, sizes).
    """
    if key not in _TRAINERS:
        _TRAINERS[key] = make()
    return _TRAINERS[key]


def mean_squared_error(y_true, y_pred, weights=None):
    import tensorflow as tf

    return tf.reduce_mean(tf.square(y_pred - y_true))


def sparse_cross_entropy(y_true, logits, weights=None):
    """Mean cross-entropy of integer targets `(batch, steps)` under `logits` `(batch, steps, classes)`."""
    import tensorflow as tf

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y_true, tf.int32), logits=logits)
    if weights is None:
        return tf.reduce_mean(losses)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def binary_cross_entropy(y_true, logits, weights=None):
    """Mean binary cross-entropy of 0/1 targets under `logits` (same shape), optionally weighted."""
    import tensorflow as tf

    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    if weights is None:
        return tf.reduce_mean(losses)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def log(message):
    """Progress lines on stderr (the result itself goes to JSON)."""
    print(f"[lab] {message}", file=sys.stderr, flush=True)
