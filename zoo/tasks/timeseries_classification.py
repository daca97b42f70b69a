"""Many-to-one time-series classification: a raw (multivariate, variable-length) series in, a class out.

The model takes the raw series, padded to a common length, and the true
length of each; everything else happens inside it, so the Keras model and
the serving SavedModel take the same raw input:

    series [batch, time, features], lengths [batch]
      → SeriesScaling (NaN/padding → 0, per-channel scaling: z-normalisation of each series,
                       or the training set's mean/sd per channel, or both side by side)
      → SeriesAugmentation (optional, training only: window slicing, magnitude scaling, jitter)
      ├→ FCN branch: 3 × (Conv1D → BatchNorm → ReLU → zero the padding) → masked mean over time
      └→ recurrent branch: mean-pool by `pool` steps → Bidirectional(zoo GRU | LSTM | SimpleRNN)
                           (masked) → masked mean over time
      → concatenate → Dropout → Dense(softmax)

Every operation after the scaling sees padded steps as zeros and every
pooling over time is masked, so a series gives the same prediction whatever
it is padded to (the convolutions' "same" padding sees zeros beyond the end
either way; the recurrent layers skip masked steps). This is the LSTM-FCN
layout of Karim et al. (2017) with the convolutions shrunk to tens of
thousands of parameters and the LSTM made bidirectional and masked.
`ensemble_model` wraps several such models (one per seed) into one Keras
model that averages their class probabilities.

Baselines are the archive's classical ones: 1-NN with Euclidean distance
(numpy; a variable-length set is linearly resampled to the longest training
length first) and 1-NN with full-window DTW (aeon's `dtw_pairwise_distance`,
which handles unequal lengths natively and is DTW-dependent on multivariate
series).

Missing values (NaN) in a series are filled by linear interpolation along
time within each feature (constant extrapolation at the ends); a feature that
is missing at every step is an error.
"""

from zoo import _backend  # noqa: F401

import csv
import io
import math
from pathlib import Path

import keras
import numpy as np

TASK = "timeseries-classification"
IO_TYPE = "many-to-one"

#: The six sets this task measures (the UCR/UEA archive, as shipped in the aeon 1.6.0 wheel).
DATASETS = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "OSULeaf", "JapaneseVowels", "BasicMotions")

#: Published test errors of 1-NN with Euclidean distance and with full-window DTW
#: (UCR archive 2018 table, Dau et al. 2019; UEA multivariate archive, Bagnall et al. 2018).
PUBLISHED_1NN_ERRORS = {
    "GunPoint": {"euclidean": 0.087, "dtw": 0.093},
    "ItalyPowerDemand": {"euclidean": 0.045, "dtw": 0.050},
    "ArrowHead": {"euclidean": 0.200, "dtw": 0.297},
    "OSULeaf": {"euclidean": 0.479, "dtw": 0.409},
}

#: Published test accuracies (Fawaz et al. 2019 review, mean over runs, for FCN, ResNet and
#: TWIESN; Fawaz et al. 2020 for InceptionTime). None: not reported for that set.
ANCHORS = {
    "GunPoint": {"FCN": 1.000, "ResNet": 0.991, "TWIESN": 0.961, "InceptionTime": 1.000},
    "ItalyPowerDemand": {"FCN": 0.961, "ResNet": 0.963, "TWIESN": 0.880, "InceptionTime": 0.965},
    "ArrowHead": {"FCN": 0.843, "ResNet": 0.845, "TWIESN": 0.659, "InceptionTime": 0.846},
    "OSULeaf": {"FCN": 0.977, "ResNet": 0.979, "TWIESN": 0.595, "InceptionTime": 0.942},
    "JapaneseVowels": {"FCN": 0.993, "ResNet": 0.992, "TWIESN": 0.965, "InceptionTime": 0.992},
    "BasicMotions": {"FCN": None, "ResNet": None, "TWIESN": None, "InceptionTime": 1.000},
}
ANCHOR_SOURCES = ("Fawaz et al. (2019), 'Deep learning for time series classification: a review' "
                  "(FCN, ResNet, TWIESN); Fawaz et al. (2020), 'InceptionTime' (InceptionTime)")


def _require_aeon():
    try:
        import aeon  # noqa: F401
    except ImportError:
        raise ImportError("the 1-NN DTW baseline needs aeon: pip install 'zoo[timeseries]'") from None


# --------------------------------------------------------------------------
# Series handling: missing values, padding, reading files
# --------------------------------------------------------------------------


def fill_missing(series, where="series"):
    """`series` [time, features] as float32 with NaNs filled by linear interpolation along time.

    Ends are extended with the nearest observed value. A feature with no
    observed value at all raises `ValueError`.
    """
    values = np.asarray(series, np.float32)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{where}: a series must be 2-D [time, features], received shape {values.shape}")
    missing = ~np.isfinite(values)
    if not missing.any():
        return values
    values = values.copy()
    steps = np.arange(values.shape[0])
    for feature in range(values.shape[1]):
        gaps = missing[:, feature]
        if not gaps.any():
            continue
        if gaps.all():
            raise ValueError(f"{where}: feature {feature + 1} has no values (all missing or not finite)")
        values[gaps, feature] = np.interp(steps[gaps], steps[~gaps], values[~gaps, feature])
    return values


def check_series(series_list, features=None, min_length=2):
    """The series as float32 [time, features] arrays, missing values filled, or `ValueError`.

    Args:
        series_list: Arrays [time, features] (or [time] for one feature).
        features: The number of features the model expects (None: any, but all equal).
        min_length: Fewest time steps a series may have.
    """
    checked = []
    if len(series_list) == 0:
        raise ValueError("no series given")
    for index, series in enumerate(series_list):
        where = f"series {index + 1}"
        values = np.asarray(series, np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ValueError(f"{where}: a series must be 2-D [time, features], received shape {values.shape}")
        if values.shape[0] < min_length:
            raise ValueError(f"{where}: has {values.shape[0]} time step(s); at least {min_length} are needed")
        expected = features if features is not None else (checked[0].shape[1] if checked else None)
        if expected is not None and values.shape[1] != expected:
            raise ValueError(f"{where}: has {values.shape[1]} feature(s), the model expects {expected}")
        checked.append(fill_missing(values, where))
    return checked


def pad_series(series_list, length=None):
    """(`series` float32 [n, length, features] zero-padded at the end, `lengths` int32 [n])."""
    lengths = np.asarray([len(s) for s in series_list], np.int32)
    length = int(max(lengths.max(), 1) if length is None else length)
    features = series_list[0].shape[1]
    out = np.zeros((len(series_list), length, features), np.float32)
    for i, s in enumerate(series_list):
        out[i, : len(s)] = s
    return out, lengths


def read_series_file(path, features=None):
    """The series in a file: a list of float32 [time, features] arrays, missing values filled.

    - CSV (any extension but `.ts`): one series; rows are time steps, columns
      features, comma-separated; a first row that is not numeric is a header.
      Empty cells, `?`, `NA` and `NaN` are missing values.
    - `.ts` (UCR/UEA archive format): every case of the file (labels, if any, ignored).

    Raises `ValueError` naming the problem: an empty file, a non-numeric cell,
    rows of different widths, a wrong number of features (`features`), a
    series shorter than 2 steps, a feature missing at every step.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    if path.suffix.lower() == ".ts":
        from zoo.data.timeseries import parse_ts

        series = parse_ts(text, str(path)).series
    else:
        series = [_parse_csv(text, path)]
    try:
        return check_series(series, features=features)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


_MISSING = {"", "?", "na", "nan", "null", "none"}


def _cell(token, where):
    token = token.strip()
    if token.lower() in _MISSING:
        return math.nan
    try:
        return float(token)
    except ValueError:
        raise ValueError(f"{where}: {token[:40]!r} is not a number") from None


def _parse_csv(text, path):
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    try:
        [_cell(c, "") for c in rows[0]]
    except ValueError:
        rows = rows[1:]  # a header row
        if not rows:
            raise ValueError(f"{path}: the file has a header but no data rows")
    width = len(rows[0])
    values = []
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"{path}: data row {number} has {len(row)} columns, the first has {width}")
        values.append([_cell(c, f"{path}, data row {number}") for c in row])
    return np.asarray(values, np.float32)


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def _step_mask(lengths, steps):
    """Float mask [batch, steps] of the valid (unpadded) steps."""
    positions = keras.ops.arange(steps, dtype="int32")[None, :]
    return keras.ops.cast(positions < keras.ops.cast(lengths, "int32")[:, None], "float32")


@keras.saving.register_keras_serializable(package="zoo_tsc")
class SeriesScaling(keras.layers.Layer):
    """Scale raw series inside the model; padded and missing steps become exactly 0.

    `mode`: "series" (z-normalise each series, per feature, over its valid
    steps), "global" (subtract the training set's per-feature mean, divide by
    its sd: weights set with `set_statistics`), or "both" (the two side by
    side: 2 × features channels out).
    """

    def __init__(self, mode="series", epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("series", "global", "both"):
            raise ValueError(f"mode must be 'series', 'global' or 'both', received {mode!r}")
        self.mode = mode
        self.epsilon = epsilon

    def build(self, input_shape):
        features = input_shape[0][-1]
        self.mean = self.add_weight(shape=(features,), initializer="zeros", trainable=False, name="mean")
        self.sd = self.add_weight(shape=(features,), initializer="ones", trainable=False, name="sd")

    def set_statistics(self, mean, sd):
        self.mean.assign(np.asarray(mean, np.float32))
        self.sd.assign(np.maximum(np.asarray(sd, np.float32), self.epsilon))

    def call(self, inputs):
        series, lengths = inputs
        ops = keras.ops
        mask = _step_mask(lengths, ops.shape(series)[1])[:, :, None]
        valid = ops.logical_and(mask > 0, ops.logical_not(ops.isnan(series)))
        series = ops.where(valid, series, 0.0)
        outputs = []
        if self.mode in ("series", "both"):
            count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
            mean = ops.sum(series, axis=1, keepdims=True) / count
            variance = ops.sum(ops.square(series - mean) * mask, axis=1, keepdims=True) / count
            outputs.append((series - mean) / ops.sqrt(variance + self.epsilon) * mask)
        if self.mode in ("global", "both"):
            outputs.append((series - self.mean) / self.sd * mask)
        return outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape[0])
        if self.mode == "both" and shape[-1] is not None:
            shape[-1] *= 2
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo_tsc")
class ZeroPadding(keras.layers.Layer):
    """`x` [batch, time, channels] with the steps at or beyond `lengths` set to 0."""

    def call(self, inputs):
        x, lengths = inputs
        return x * _step_mask(lengths, keras.ops.shape(x)[1])[:, :, None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="zoo_tsc")
class MaskedMean(keras.layers.Layer):
    """Mean over the valid steps of `x` [batch, time, channels] → [batch, channels]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the lengths say which steps count; no mask goes further

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs, mask=None):
        x, lengths = inputs
        mask = _step_mask(lengths, keras.ops.shape(x)[1])[:, :, None]
        return keras.ops.sum(x * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])


@keras.saving.register_keras_serializable(package="zoo_tsc")
class StepMask(keras.layers.Layer):
    """Boolean mask [batch, time] of the valid steps of `x` given `lengths` (for the recurrent layers)."""

    def call(self, inputs):
        x, lengths = inputs
        return _step_mask(lengths, keras.ops.shape(x)[1]) > 0

    def compute_output_shape(self, input_shape):
        return input_shape[0][:2]


@keras.saving.register_keras_serializable(package="zoo_tsc")
class TimePooling(keras.layers.Layer):
    """Mean over blocks of `pool` steps (the series padded with zeros to a multiple of `pool`).

    Returns the pooled series and the pooled lengths ceil(length / pool): the
    last, partial block averages valid steps with zeros, the same zeros
    whatever the series is padded to.
    """

    def __init__(self, pool=1, **kwargs):
        super().__init__(**kwargs)
        self.pool = int(pool)

    def call(self, inputs):
        x, lengths = inputs
        ops = keras.ops
        lengths = ops.cast(lengths, "int32")
        if self.pool == 1:
            return x, lengths
        steps = ops.shape(x)[1]
        blocks = (steps + self.pool - 1) // self.pool
        x = ops.pad(x, [[0, 0], [0, blocks * self.pool - steps], [0, 0]])
        x = ops.reshape(x, (-1, blocks, self.pool, ops.shape(x)[2]))
        return ops.mean(x, axis=2), (lengths + self.pool - 1) // self.pool

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        steps = None if shape[1] is None else -(-shape[1] // self.pool)
        return (shape[0], steps, shape[2]), (shape[0],)

    def get_config(self):
        return {**super().get_config(), "pool": self.pool}


@keras.saving.register_keras_serializable(package="zoo_tsc")
class SeriesAugmentation(keras.layers.Layer):
    """Training-only augmentation of scaled series; the identity at inference.

    While training, each series is cropped to a random window (window
    slicing: a random `crop` fraction at most is cut, split at random between
    the start and the end), multiplied per feature by a random factor
    N(1, `scale`) (magnitude scaling) and given Gaussian noise of sd `noise`
    (jitter); padding stays exactly 0. Returns (series, lengths): the crop
    shortens the lengths, which every later layer reads.
    """

    def __init__(self, crop=0.1, scale=0.1, noise=0.05, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.crop = float(crop)
        self.scale = float(scale)
        self.noise = float(noise)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        x, lengths = inputs
        ops = keras.ops
        lengths = ops.cast(lengths, "int32")
        if not training:
            return x, lengths
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        if self.crop > 0:
            cut_fraction = keras.random.uniform((batch,), 0.0, self.crop, seed=self.seed_generator)
            cut = ops.cast(ops.floor(cut_fraction * ops.cast(lengths, "float32")), "int32")
            cut = ops.minimum(cut, ops.maximum(lengths - 2, 0))
            start = ops.cast(ops.floor(keras.random.uniform((batch,), seed=self.seed_generator)
                                       * ops.cast(cut + 1, "float32")), "int32")
            start = ops.minimum(start, cut)
            index = ops.minimum(ops.arange(steps, dtype="int32")[None, :] + start[:, None], steps - 1)
            x = ops.take_along_axis(x, ops.broadcast_to(index[:, :, None], ops.shape(x)), axis=1)
            lengths = lengths - cut
        if self.scale > 0:
            x = x * (1.0 + self.scale * keras.random.normal((batch, 1, ops.shape(x)[2]), seed=self.seed_generator))
        if self.noise > 0:
            x = x + self.noise * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        return x * _step_mask(lengths, steps)[:, :, None], lengths

    def compute_output_shape(self, input_shape):
        return input_shape[0], input_shape[1]

    def get_config(self):
        return {**super().get_config(), "crop": self.crop, "scale": self.scale, "noise": self.noise,
                "seed": self.seed}


def register_custom_objects():
    """The custom layers are registered when this module is imported (`hub.load` calls this)."""
    return (SeriesScaling, SeriesAugmentation, ZeroPadding, MaskedMean, StepMask, TimePooling)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def feature_statistics(series_list):
    """Per-feature mean and sd over every step of every series (NaNs ignored)."""
    stacked = np.concatenate([np.asarray(s, np.float64) for s in series_list], axis=0)
    mean = np.nanmean(stacked, axis=0)
    sd = np.nanstd(stacked, axis=0)
    return mean.astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32)


def default_pool(min_length, target_steps=64):
    """Steps per recurrent time block: the recurrent branch sees about `target_steps` steps."""
    return max(1, int(math.ceil(min_length / target_steps)))


def default_scaling(features):
    """Z-normalise each series of a univariate set (shape is what matters in the UCR sets); scale
    multivariate ones with the training set's statistics (the level of each channel carries information)."""
    return "series" if features == 1 else "global"


def build_model(train_series, class_names, cell="gru", units=32, filters=(32, 64, 32),
                kernels=(8, 5, 3), pool=None, scaling="auto", dropout=0.2, recurrent=True,
                convolutional=True, augment=None, name=None):
    """The classifier for series like `train_series` (a list of [time, features] arrays).

    `augment`: None, or a dict of `SeriesAugmentation` arguments (crop, scale,
    noise, seed): training-only augmentation after the scaling.
    """
    from zoo import layers

    if not (recurrent or convolutional):
        raise ValueError("the model needs at least one branch (recurrent or convolutional)")
    features = int(train_series[0].shape[1])
    if scaling == "auto":
        scaling = default_scaling(features)
    if pool is None:
        pool = default_pool(min(len(s) for s in train_series))
    series = keras.Input(shape=(None, features), dtype="float32", name="series")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    scaler = SeriesScaling(scaling, name="scaling")
    x = scaler([series, lengths])
    scaler.set_statistics(*feature_statistics(train_series))
    inputs = {"series": series, "lengths": lengths}
    if augment:
        x, lengths = SeriesAugmentation(**augment, name="augmentation")([x, lengths])
    summaries = []
    if convolutional:
        h = x
        for i, (count, width) in enumerate(zip(filters, kernels), 1):
            h = keras.layers.Conv1D(count, width, padding="same", name=f"conv{i}")(h)
            h = keras.layers.BatchNormalization(momentum=0.9, name=f"conv{i}_norm")(h)
            h = keras.layers.Activation("relu", name=f"conv{i}_relu")(h)
            h = ZeroPadding(name=f"conv{i}_zero_padding")([h, lengths])
        summaries.append(MaskedMean(name="conv_mean")([h, lengths]))
    if recurrent:
        pooled, pooled_lengths = TimePooling(pool, name="time_pooling")([x, lengths])
        mask = StepMask(name="step_mask")([pooled, pooled_lengths])
        reader = keras.layers.Bidirectional(
            layers.sequence_layer_class(cell)(units, return_sequences=True), name=f"bi{cell}")
        h = reader(pooled, mask=mask)
        summaries.append(MaskedMean(name="recurrent_mean")([h, pooled_lengths]))
    h = summaries[0] if len(summaries) == 1 else keras.layers.Concatenate(name="summary")(summaries)
    h = keras.layers.Dropout(dropout, name="dropout")(h)
    probabilities = keras.layers.Dense(len(class_names), activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, probabilities,
                        name=name or f"tsc_{'fcn_' if convolutional else ''}{'bi' + cell if recurrent else ''}")
    model.class_names = list(class_names)
    return model


def describe_architecture(model, cell, units, filters, kernels, pool, scaling, dropout,
                          recurrent=True, convolutional=True):
    from zoo import layers

    branches = []
    if convolutional:
        convs = " → ".join(f"Conv1D({f}, {k}) → BN → ReLU" for f, k in zip(filters, kernels))
        branches.append(f"[{convs} → masked mean]")
    if recurrent:
        branches.append(f"[mean-pool {pool} steps → Bidirectional(zoo.layers."
                        f"{layers.sequence_layer_class(cell).__name__}({units}), masked) → masked mean]")
    return (f"series + lengths → SeriesScaling({scaling}) → " + " ‖ ".join(branches)
            + f" → concatenate → Dropout({dropout}) → Dense(softmax)")


# --------------------------------------------------------------------------
# Data for training and evaluation
# --------------------------------------------------------------------------


def stratified_split(labels, fraction, seed):
    """Indices (train, validation): `fraction` of each class (at least 1 of any class with 2+ members)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in sorted(set(labels.tolist())):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = int(round(fraction * len(members)))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        validation += members[:count].tolist()
        train += members[count:].tolist()
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(validation, np.int64))


def as_dataset(series_list, labels, batch_size, shuffle=False, seed=None, min_batches=1):
    """A tf.data pipeline of ({"series", "lengths"}, label) batches (zero-padded to the longest series).

    `min_batches`: pass over the data as many times as needed for at least
    this many batches per epoch (tiny training sets: a few optimizer steps per
    pass are too few for early stopping and BatchNorm statistics).
    """
    import tensorflow as tf

    padded, lengths = pad_series(series_list)
    data = tf.data.Dataset.from_tensor_slices(
        ({"series": padded, "lengths": lengths}, np.asarray(labels, np.int64)))
    if shuffle:
        data = data.shuffle(len(series_list), seed=seed, reshuffle_each_iteration=True)
    passes = max(1, math.ceil(min_batches * batch_size / max(len(series_list), 1)))
    if passes > 1:
        data = data.repeat(passes)
    return data.batch(batch_size).prefetch(2)


def predict_probabilities(model, series_list, batch_size=256):
    """Class probabilities [n, classes] of a Keras model (or any callable taking the input dict)."""
    import tensorflow as tf

    outputs = []
    for start in range(0, len(series_list), batch_size):
        padded, lengths = pad_series(series_list[start : start + batch_size])
        result = model({"series": tf.constant(padded), "lengths": tf.constant(lengths)}, training=False)
        outputs.append(np.asarray(result, np.float64))
    return np.concatenate(outputs) if outputs else np.zeros((0, 0))


def metrics_from_probabilities(probabilities, label_ids):
    label_ids = np.asarray(label_ids, np.int64)
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1.0)
    predicted = np.argmax(p, axis=1)
    return {
        "accuracy": round(float(np.mean(predicted == label_ids)), 6),
        "log_loss": round(float(-np.mean(np.log(p[np.arange(len(label_ids)), label_ids]))), 6),
        "examples": int(len(label_ids)),
    }


def evaluate(model, split):
    """Accuracy, log loss and count of `model` on a `LabelledSeries` split."""
    series = check_series(split.series, min_length=1)
    return metrics_from_probabilities(predict_probabilities(model, series), split.label_ids())


# --------------------------------------------------------------------------
# Baselines: 1-NN Euclidean and 1-NN DTW
# --------------------------------------------------------------------------


def resample(series, length):
    """`series` [time, features] linearly resampled to `length` steps."""
    series = np.asarray(series, np.float64)
    if len(series) == length:
        return series
    old = np.linspace(0.0, 1.0, len(series))
    new = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, series[:, f]) for f in range(series.shape[1])], axis=1)


def one_nn_euclidean(train, test):
    """1-NN Euclidean test accuracy/error; unequal lengths are resampled to the longest training length."""
    train_series = check_series(train.series, min_length=1)
    test_series = check_series(test.series, min_length=1)
    length = max(len(s) for s in train_series)
    equal = len({len(s) for s in train_series + test_series}) == 1
    a = np.stack([resample(s, length).ravel() for s in train_series])
    b = np.stack([resample(s, length).ravel() for s in test_series])
    distances = (b * b).sum(1)[:, None] - 2.0 * b @ a.T + (a * a).sum(1)[None, :]
    return _nearest_neighbour_result(
        "1-NN Euclidean", distances, train, test,
        "equal lengths" if equal else
        f"every series linearly resampled to {length} steps (the longest training series)")


def _nearest_neighbour_result(name, distances, train, test, length_handling):
    """Accuracy and error of predicting each test series' class as its nearest training series'."""
    predicted = train.label_ids()[np.argmin(distances, axis=1)]
    accuracy = float(np.mean(predicted == test.label_ids()))
    return {"name": name, "accuracy": round(accuracy, 6), "error": round(1.0 - accuracy, 6),
            "length_handling": length_handling}


def one_nn_dtw(train, test, n_jobs=1):
    """1-NN full-window DTW test accuracy/error (aeon; unequal lengths handled natively)."""
    _require_aeon()
    from aeon.distances import dtw_pairwise_distance

    train_series = [np.ascontiguousarray(s.T, np.float64) for s in check_series(train.series, min_length=1)]
    test_series = [np.ascontiguousarray(s.T, np.float64) for s in check_series(test.series, min_length=1)]
    if len({s.shape[1] for s in train_series + test_series}) == 1:
        train_series, test_series = np.stack(train_series), np.stack(test_series)
    distances = dtw_pairwise_distance(test_series, train_series, window=None, n_jobs=n_jobs)
    return _nearest_neighbour_result(
        "1-NN DTW (full window)", distances, train, test,
        "native (DTW aligns series of any lengths; multivariate: dependent DTW)")


# --------------------------------------------------------------------------
# Serving, prediction, verification
# --------------------------------------------------------------------------


def input_features(model):
    """The number of features per step a Keras model of this task takes."""
    for tensor in model.inputs:
        if tensor.name.startswith("series"):
            return int(tensor.shape[-1])
    raise ValueError(f"model {model.name!r} has no 'series' input")


def class_names_of(model, card=None):
    names = getattr(model, "class_names", None)
    if names is None and card is not None:
        names = card["dataset"]["class_names"]
    if names is None:
        raise ValueError("the class names are unknown: pass the model card")
    return list(names)


def write_serving(model, path, class_names=None):
    """SavedModel whose `serving_default` takes `series` float32 [batch, time, features] (zero-padded)
    and `lengths` int32 [batch] → {"probabilities" [batch, classes], "class_ids", "class_names"}."""
    import tensorflow as tf

    names = tf.constant(class_names_of(model) if class_names is None else list(class_names))
    features = input_features(model)
    archive = keras.export.ExportArchive()
    archive.track(model)

    classes = int(names.shape[0])

    def serve(series, lengths):
        # An empty batch has a defined, empty answer (the convolutions' bias add would fail on it).
        probabilities = tf.cond(
            tf.shape(series)[0] > 0,
            lambda: tf.cast(model({"series": series, "lengths": lengths}, training=False), tf.float32),
            lambda: tf.zeros([0, classes], tf.float32))
        ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_ids": ids, "class_names": tf.gather(names, ids)}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec(shape=(None, None, features), dtype=tf.float32, name="series"),
                         tf.TensorSpec(shape=(None,), dtype=tf.int32, name="lengths")],
    )
    archive.write_out(str(path), verbose=False)


def serving_examples():
    """Small valid inputs for the serving signature (a shipped model has 12 features: JapaneseVowels).

    Two series of 9 and 6 steps, zero-padded to 9; the padding must not matter.
    """
    rng = np.random.default_rng(0)
    series = rng.normal(size=(2, 9, SERVING_EXAMPLE_FEATURES)).round(3)
    series[1, 6:] = 0.0
    return {"serving_default": {"series": series.tolist(), "lengths": [9, 6]}}


#: Feature count of `serving_examples` (the shipped JapaneseVowels model's).
SERVING_EXAMPLE_FEATURES = 12


def classify_series(model_or_serving, series_list, class_names=None, batch_size=256):
    """Classify raw series with a Keras model or a loaded serving SavedModel.

    Args:
        model_or_serving: A Keras model from `zoo.load` / `build_model`, or the
            result of `tf.saved_model.load` (its `serving_default` is used).
        series_list: Arrays [time, features] (or [time] for one feature);
            missing values are filled by linear interpolation.
        class_names: The class names (default: the model's, or the SavedModel's output).

    Returns:
        (predicted class names, probabilities [n, classes]).

    Raises:
        ValueError: no series, a series with the wrong number of features, fewer
            than 2 steps, or a feature with no values.
    """
    import tensorflow as tf

    serving = getattr(model_or_serving, "signatures", None)
    if serving is not None and not isinstance(model_or_serving, keras.Model):
        function = serving["serving_default"]
        features = function.structured_input_signature[1]["series"].shape[-1]
    else:
        function = None
        features = input_features(model_or_serving)
    checked = check_series(series_list, features=features)
    names, probabilities = [], []
    for start in range(0, len(checked), batch_size):
        padded, lengths = pad_series(checked[start : start + batch_size])
        if function is not None:
            out = function(series=tf.constant(padded), lengths=tf.constant(lengths))
            probabilities.append(out["probabilities"].numpy())
            names += [n.decode("utf-8") for n in out["class_names"].numpy()]
        else:
            p = np.asarray(model_or_serving({"series": tf.constant(padded), "lengths": tf.constant(lengths)},
                                            training=False))
            probabilities.append(p)
            known = class_names if class_names is not None else class_names_of(model_or_serving)
            names += [known[i] for i in np.argmax(p, axis=1)]
    return names, np.concatenate(probabilities).astype(np.float32)


def load_dataset(card_dataset):
    """The UCR/UEA splits a card's `dataset` entry names (a shipped name or the path it was read from)."""
    from zoo.data.timeseries import load_ucr

    return load_ucr(card_dataset.get("path") or card_dataset["name"])


def _subset(split, indices):
    return type(split)([split.series[i] for i in indices], [split.labels[i] for i in indices],
                       split.class_names, split.name)


def remeasure(model, card):
    """Re-measure the card's test (and validation) metrics of the shipped model (`zoo verify`)."""
    splits = load_dataset(card["dataset"])
    limit = card["dataset"].get("max_examples_per_split")
    if limit:
        splits = {k: _subset(s, range(min(limit, len(s)))) for k, s in splits.items()}
    model.class_names = card["dataset"]["class_names"]
    measured = {"test": evaluate(model, splits["test"])}
    validation = card["dataset"].get("validation_indices")
    if validation is not None and "validation" in card.get("metrics", {}):
        measured["validation"] = evaluate(model, _subset(splits["train"], validation))
    return measured


def format_prediction(source, name, probabilities):
    return f"{name}\t{float(np.max(probabilities)):.4f}\t{source}"


def ensemble_model(members, class_names, name="tsc_ensemble"):
    """One Keras model averaging the class probabilities of `members` (same inputs, same classes)."""
    series = keras.Input(shape=(None, input_features(members[0])), dtype="float32", name="series")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    inputs = {"series": series, "lengths": lengths}
    outputs = [member(inputs) for member in members]
    probabilities = keras.layers.Average(name="probabilities")(outputs) if len(outputs) > 1 else outputs[0]
    model = keras.Model(inputs, probabilities, name=name)
    model.class_names = list(class_names)
    return model
