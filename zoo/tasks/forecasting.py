"""Time-series forecasting: a history in, a multi-horizon forecast with an interval out.

One global model serves many series (as DeepAR and ES-RNN do): the scaling
that makes series of any size comparable lives inside the model, so the Keras
model and the serving SavedModel both take raw values.

    history [batch, time, features] (NaN = missing or padding)
      → Scaling layer (per series or fixed)  ─ features, location, scale
      → core: zoo GRU/LSTM over the last `context` steps → Dense(horizon × quantiles)
      → Unscaling → quantiles [batch, horizon, 3] in the history's units

Two scalings:

* ``"log-level"`` (positive series of any size, e.g. M1): each value becomes
  ``log(x / level)`` with ``level`` the series' last observed value, and the
  forecast is ``level · exp(output)``. A series' own size never reaches the
  network.
* ``"standard"`` (a multivariate series with fixed units, e.g. weather): each
  feature is standardised with the training mean and deviation, and the
  forecast of the target feature is ``mean + std · output``.

Both add an "observed" flag per step, so missing values and left padding are
inputs the network sees, not zeros it mistakes for data.

The network outputs three quantiles (0.1, 0.5, 0.9) at every horizon, trained
with the pinball loss, in order by construction (the outer two are the median
minus or plus a softplus). The median is the point forecast; the 0.1-0.9
band is an 80% prediction interval, and the card reports how often it covers.
"""

from zoo import _backend  # noqa: F401

import math

import numpy as np

from zoo.data.timeseries import LICENSES as DATA_LICENSES

TASK = "forecasting"
IO_TYPE = "many-to-many (history → multi-horizon forecast)"
QUANTILES = (0.1, 0.5, 0.9)
SCALINGS = ("log-level", "standard")

#: log(x / level) is clipped to this range (a factor of e^6 ≈ 400 either way).
LOG_CLIP = 6.0


# --------------------------------------------------------------------------
# Layers (registered so `zoo.load` rebuilds them)
# --------------------------------------------------------------------------


def _register_layers():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="zoo", name="ForecastScaling")
    class ForecastScaling(keras.layers.Layer):
        """Raw history [batch, time, features] → (network features, location, scale).

        `scaling="log-level"`: univariate positive series; location = last
        observed value, features = [log(x / location), observed].
        `scaling="standard"`: features standardised with fixed `mean`/`std`
        (set from training data), plus one observed flag per feature;
        location/scale are the target feature's mean and std.
        """

        def __init__(self, scaling="log-level", mean=None, std=None, target_index=0, **kwargs):
            super().__init__(**kwargs)
            if scaling not in SCALINGS:
                raise ValueError(f"scaling must be one of {SCALINGS}, received {scaling!r}")
            self.scaling = scaling
            self.mean = None if mean is None else [float(v) for v in mean]
            self.std = None if std is None else [float(v) for v in std]
            self.target_index = int(target_index)
            if scaling == "standard" and (self.mean is None or self.std is None):
                raise ValueError("scaling='standard' needs the training mean and std of each feature")

        def call(self, history):
            history = ops.cast(history, "float32")
            observed = ops.logical_not(ops.isnan(history))
            flags = ops.cast(observed, "float32")
            if self.scaling == "log-level":
                values = history[..., 0]
                seen = observed[..., 0]
                steps = ops.shape(values)[1]
                # index of the last observed step (0 when none is: the level is then 1)
                positions = ops.cast(ops.arange(steps), "float32")[None, :]
                last = ops.max(ops.where(seen, positions, -1.0), axis=1)
                last_index = ops.cast(ops.maximum(last, 0.0), "int32")
                level = ops.take_along_axis(ops.where(seen, values, 1.0), last_index[:, None], axis=1)
                level = ops.maximum(level, 1e-6)  # the API refuses values <= 0 before they get here
                ratio = ops.log(ops.maximum(ops.where(seen, values, 1.0), 1e-6) / level)
                ratio = ops.clip(ratio, -LOG_CLIP, LOG_CLIP)
                features = ops.stack([ops.where(seen, ratio, 0.0), flags[..., 0]], axis=-1)
                return features, level, ops.ones_like(level)
            mean = ops.convert_to_tensor(np.asarray(self.mean, np.float32))
            std = ops.convert_to_tensor(np.asarray(self.std, np.float32))
            standard = ops.where(observed, (history - mean) / std, 0.0)
            features = ops.concatenate([standard, flags], axis=-1)
            batch = ops.shape(history)[0]
            location = ops.ones((batch, 1)) * self.mean[self.target_index]
            scale = ops.ones((batch, 1)) * self.std[self.target_index]
            return features, location, scale

        def compute_output_spec(self, history):
            features = history.shape[-1] * 2 if self.scaling == "standard" else 2
            spec = keras.KerasTensor((history.shape[0], history.shape[1], features), "float32")
            # two distinct tensors: the functional graph tells outputs apart by identity
            location = keras.KerasTensor((history.shape[0], 1), "float32")
            scale = keras.KerasTensor((history.shape[0], 1), "float32")
            return spec, location, scale

        def get_config(self):
            return {**super().get_config(), "scaling": self.scaling, "mean": self.mean,
                    "std": self.std, "target_index": self.target_index}

    @keras.saving.register_keras_serializable(package="zoo", name="ForecastUnscaling")
    class ForecastUnscaling(keras.layers.Layer):
        """Network output [batch, horizon, quantiles] → the history's units."""

        def __init__(self, scaling="log-level", **kwargs):
            super().__init__(**kwargs)
            self.scaling = scaling

        def call(self, outputs, location, scale):
            if self.scaling == "log-level":
                return location[:, :, None] * ops.exp(ops.clip(outputs, -LOG_CLIP, LOG_CLIP))
            return location[:, :, None] + scale[:, :, None] * outputs

        def get_config(self):
            return {**super().get_config(), "scaling": self.scaling}

    @keras.saving.register_keras_serializable(package="zoo", name="OrderedQuantiles")
    class OrderedQuantiles(keras.layers.Layer):
        """[batch, horizon, 3] raw → (median − softplus(a), median, median + softplus(b))."""

        def call(self, raw):
            median = raw[..., 1]
            lower = median - ops.softplus(raw[..., 0])
            upper = median + ops.softplus(raw[..., 2])
            return ops.stack([lower, median, upper], axis=-1)

    return ForecastScaling, ForecastUnscaling, OrderedQuantiles


def custom_layers():
    import keras

    found = [keras.saving.get_registered_object(f"zoo>{name}")
             for name in ("ForecastScaling", "ForecastUnscaling", "OrderedQuantiles")]
    return tuple(found) if all(found) else _register_layers()


def register_custom_objects():
    custom_layers()
    pinball_loss()


def pinball_loss():
    """The pinball (quantile) loss over the last axis, for quantiles `QUANTILES`."""
    import keras
    from keras import ops

    found = keras.saving.get_registered_object("zoo>pinball_loss")
    if found:
        return found

    @keras.saving.register_keras_serializable(package="zoo", name="pinball_loss")
    def pinball(y_true, y_pred):
        levels = ops.convert_to_tensor(np.asarray(QUANTILES, np.float32))
        error = ops.expand_dims(ops.cast(y_true, "float32"), -1) - y_pred
        return ops.mean(ops.maximum(levels * error, (levels - 1.0) * error), axis=(-2, -1))

    return pinball


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


def build_model(*, context, horizon, features=1, scaling="log-level", mean=None, std=None,
                target_index=0, cell="gru", units=64, layers=1, dropout=0.1, seed=0):
    """The forecaster: `(model, core)`, sharing weights.

    `model` takes raw histories [batch, context, features] and returns
    quantiles [batch, horizon, 3] in the history's units; `core` takes the
    scaled features and returns the quantiles in scaled units (what the
    recipe trains, with targets scaled by `scale_targets`).
    """
    import keras

    from zoo import layers as zoo_layers

    Scaling, Unscaling, Ordered = custom_layers()
    feature_count = 2 if scaling == "log-level" else 2 * features
    scaled = keras.Input((context, feature_count), name="scaled_history")
    x = scaled
    for depth in range(layers):
        last = depth == layers - 1
        x = zoo_layers.sequence_layer_class(cell)(
            units, return_sequences=not last, name=f"{cell}_{depth + 1}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + depth),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 100 + depth),
        )(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    raw = keras.layers.Dense(horizon * len(QUANTILES), name="quantile_head",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 200))(x)
    raw = keras.layers.Reshape((horizon, len(QUANTILES)), name="per_horizon")(raw)
    quantiles = Ordered(name="ordered_quantiles")(raw)
    core = keras.Model(scaled, quantiles, name="forecast_core")

    history = keras.Input((context, features), name="history")
    scaler = Scaling(scaling=scaling, mean=mean, std=std, target_index=target_index, name="scaling")
    network_input, location, scale = scaler(history)
    forecast = Unscaling(scaling=scaling, name="unscaling")(core(network_input), location, scale)
    model = keras.Model(history, forecast, name="forecaster")
    return model, core


def scale_for_training(model, histories, targets):
    """Network inputs and scaled targets for `core`, computed by the model's own scaling layer."""
    scaler = _scaling_layer(model)
    features, location, scale = scaler(np.asarray(histories, np.float32))
    features, location, scale = (np.asarray(v) for v in (features, location, scale))
    targets = np.asarray(targets, np.float64)
    if scaler.scaling == "log-level":
        scaled = np.log(np.maximum(targets, 1e-6) / location)
        scaled = np.clip(scaled, -LOG_CLIP, LOG_CLIP)
    else:
        scaled = (targets - location) / scale
    return features, scaled.astype(np.float32)


# --------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------


def left_pad(values, context):
    """The last `context` rows of `values` [time, features], NaN-padded on the left."""
    values = np.asarray(values, np.float32)
    if values.ndim == 1:
        values = values[:, None]
    out = np.full((context, values.shape[1]), np.nan, np.float32)
    tail = values[-context:]
    out[context - len(tail):] = tail
    return out


def windows(series_list, *, context, horizon, first_end, last_end, target_index=0, min_history=3):
    """Training windows: for each series and each end `e` with `first_end(s) <= e <= last_end(s)`
    (ends may be negative: counted from the series' length), the history `s[:e]` (last `context`
    steps, left-padded) and the target `s[e:e+horizon, target_index]`.

    `first_end`/`last_end` are ints or functions of the series length.
    """
    histories, targets, owners = [], [], []
    for number, series in enumerate(series_list):
        series = np.asarray(series, np.float64)
        if series.ndim == 1:
            series = series[:, None]
        n = len(series)
        lo = first_end(n) if callable(first_end) else first_end
        hi = last_end(n) if callable(last_end) else last_end
        lo, hi = (v if v >= 0 else n + v for v in (lo, hi))
        for end in range(max(lo, min_history), min(hi, n - horizon) + 1):
            histories.append(left_pad(series[:end], context))
            targets.append(series[end:end + horizon, target_index])
            owners.append(number)
    features = series_list[0].shape[1] if np.ndim(series_list[0]) == 2 else 1
    if not histories:
        return (np.zeros((0, context, features), np.float32), np.zeros((0, horizon)),
                np.zeros((0,), np.int64))
    return np.stack(histories), np.stack(targets), np.asarray(owners, np.int64)


# --------------------------------------------------------------------------
# Metrics (as the M competitions define them)
# --------------------------------------------------------------------------


def smape(actual, forecast):
    """Symmetric MAPE in percent (M4): mean of 200·|y − f| / (|y| + |f|)."""
    actual, forecast = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denominator > 0, 2.0 * np.abs(actual - forecast) / np.where(denominator > 0, denominator, 1), 0.0)
    return 100.0 * float(np.mean(ratio))


def mase(insample, actual, forecast, season=1):
    """Mean absolute scaled error: MAE over the in-sample MAE of the seasonal naive forecast."""
    insample = np.asarray(insample, np.float64)
    if len(insample) <= season:
        raise ValueError(f"MASE needs more than {season} in-sample points, got {len(insample)}")
    scale = np.mean(np.abs(insample[season:] - insample[:-season]))
    if scale == 0:
        raise ValueError("MASE is undefined for a constant in-sample series")
    return float(np.mean(np.abs(np.asarray(actual, np.float64) - np.asarray(forecast, np.float64))) / scale)


def owa(smape_value, mase_value, naive2_smape, naive2_mase):
    """The M4 overall weighted average, relative to Naive 2 (1.0 = as good as Naive 2)."""
    return 0.5 * (smape_value / naive2_smape + mase_value / naive2_mase)


def interval_coverage(actual, lower, upper):
    actual = np.asarray(actual, np.float64)
    return float(np.mean((actual >= np.asarray(lower)) & (actual <= np.asarray(upper))))


def competition_scores(trains, tests, forecasts, lower=None, upper=None):
    """Mean sMAPE and MASE over series (the M-competition averages), and coverage of an interval."""
    smapes = [smape(y, f) for y, f in zip(tests, forecasts)]
    mases = [mase(x, y, f) for x, y, f in zip(trains, tests, forecasts)]
    scores = {"smape": round(float(np.mean(smapes)), 4), "mase": round(float(np.mean(mases)), 4),
              "series": len(smapes)}
    if lower is not None:
        scores["coverage_80"] = round(interval_coverage(np.concatenate(tests), np.concatenate(lower),
                                                        np.concatenate(upper)), 4)
    return scores


def error_scores(actual, forecast, lower=None, upper=None):
    """MAE and RMSE over all points, MAE per horizon step ([origins, horizon] arrays)."""
    actual, forecast = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    error = forecast - actual
    scores = {"mae": round(float(np.mean(np.abs(error))), 4),
              "rmse": round(float(np.sqrt(np.mean(error ** 2))), 4),
              "mae_per_step": [round(float(v), 4) for v in np.mean(np.abs(error), axis=0)],
              "origins": int(actual.shape[0])}
    if lower is not None:
        scores["coverage_80"] = round(interval_coverage(actual, lower, upper), 4)
    return scores


# --------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------


def predict_quantiles(model, histories, batch_size=512):
    """Quantiles [n, horizon, 3] for histories [n, context, features] (already windowed)."""
    histories = np.asarray(histories, np.float32)
    outputs = [np.asarray(model(histories[i:i + batch_size], training=False))
               for i in range(0, len(histories), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(model.outputs[0].shape[1:]))


def ensemble(quantile_sets):
    """The members' quantiles averaged (each [n, horizon, 3])."""
    return np.mean(np.stack(quantile_sets), axis=0)


def check_history(values, *, features, scaling, minimum=2, name="history"):
    """A history as float32 [time, features], or a ValueError that names the problem.

    NaN marks a missing value: the model sees it as missing (an observed flag
    of 0), so gaps need no filling. An all-missing history, one shorter than
    `minimum` observed steps, the wrong number of features, and (for the
    log-level scaling) a value <= 0 are errors.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be [time] or [time, features], got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if array.shape[1] != features:
        raise ValueError(f"{name} has {array.shape[1]} feature(s) per step; the model takes {features}")
    if np.isinf(array).any():
        raise ValueError(f"{name} holds an infinite value")
    observed = ~np.isnan(array).all(axis=1)
    if observed.sum() < minimum:
        raise ValueError(f"{name} has {int(observed.sum())} observed step(s); at least {minimum} are needed")
    if scaling == "log-level" and np.nanmin(array) <= 0:
        raise ValueError(f"{name} holds a value <= 0 ({np.nanmin(array):g}); this model forecasts "
                         f"positive series (it works on log(value / last value))")
    return array.astype(np.float32)


def forecast(model_or_serving, histories, horizon=None):
    """Forecasts for raw histories of any length (a list of [time] or [time, features] arrays).

    Returns `{"median", "lower", "upper"}`, each [n, horizon] (float64): the
    0.5 quantile and the 0.1-0.9 interval. `horizon` ≤ the model's keeps the
    first steps.
    """
    settings = serving_settings(model_or_serving)
    if horizon is not None:
        if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"horizon must be a positive whole number, got {horizon!r}")
        if horizon > settings["horizon"]:
            raise ValueError(f"this model forecasts at most {settings['horizon']} steps ahead; "
                             f"asked for {horizon}")
    checked = [check_history(h, features=settings["features"], scaling=settings["scaling"],
                             name=f"history {i}") for i, h in enumerate(histories)]
    if not checked:
        raise ValueError("no history to forecast from")
    batch = np.stack([left_pad(h, settings["context"]) for h in checked])
    if hasattr(model_or_serving, "signatures"):
        import tensorflow as tf

        out = model_or_serving.signatures["serving_default"](history=tf.constant(batch))
        quantiles = np.stack([np.asarray(out[k]) for k in ("lower", "forecast", "upper")], axis=-1)
    else:
        quantiles = predict_quantiles(model_or_serving, batch)
    quantiles = quantiles[:, : horizon or settings["horizon"]].astype(np.float64)
    return {"lower": quantiles[..., 0], "median": quantiles[..., 1], "upper": quantiles[..., 2]}


def serving_settings(model_or_serving):
    if hasattr(model_or_serving, "signatures"):
        return {k: (v.numpy().decode() if v.dtype.name == "string" else int(v.numpy()))
                for k, v in model_or_serving.signatures["settings"]().items()}
    return model_settings(model_or_serving)


# --------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------


def write_serving(model, path):
    """SavedModel: `serving_default(history [batch, time, features] float32, NaN = missing)` →
    `forecast` (median), `lower`, `upper` [batch, horizon]; `settings()` → context, horizon,
    features, scaling. Histories of any length: the last `context` steps are used, shorter
    ones are NaN-padded on the left.
    """
    import keras
    import tensorflow as tf

    settings = model_settings(model)
    context, features = settings["context"], settings["features"]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(history):
        history = tf.cast(history, tf.float32)
        tail = history[:, -context:, :]
        missing = context - tf.shape(tail)[1]
        padding = tf.fill([tf.shape(tail)[0], missing, features], float("nan"))
        window = tf.concat([padding, tail], axis=1)
        window = tf.ensure_shape(window, [None, context, features])
        quantiles = model(window, training=False)
        return {"lower": quantiles[..., 0], "forecast": quantiles[..., 1], "upper": quantiles[..., 2]}

    def describe():
        return {"context": tf.constant(context), "horizon": tf.constant(settings["horizon"]),
                "features": tf.constant(features), "scaling": tf.constant(settings["scaling"])}

    archive.add_endpoint(
        name="serving_default", fn=serve,
        input_signature=[tf.TensorSpec(shape=(None, None, features), dtype=tf.float32, name="history")],
    )
    archive.add_endpoint(name="settings", fn=describe, input_signature=[])
    archive.write_out(str(path), verbose=False)


def serving_examples_for(features, scaling, length=12):
    rng = np.random.default_rng(0)
    if scaling == "log-level":
        history = (100 * np.exp(np.cumsum(rng.normal(0.05, 0.1, length)))).reshape(length, 1)
    else:
        history = rng.normal(10, 3, (length, features))
    return {"serving_default": {"history": history[None].astype(np.float32).tolist()},
            "settings": {}}


# --------------------------------------------------------------------------
# Reading histories from files
# --------------------------------------------------------------------------


TIME_COLUMN_NAMES = ("", "date", "time", "timestamp", "datetime", "ds", "year", "month", "day",
                     "week", "period", "index", "t", "step")


def read_history_csv(path, features=None, calendar=False):
    """A history from a CSV file: rows are time steps, numeric columns are features.

    A header row is allowed. A first column that is not numeric (dates,
    labels), or whose header names a time index (`TIME_COLUMN_NAMES`: date,
    year, time, ...), is dropped; empty cells and `NA`/`NaN`/`?` are missing
    values (NaN), which the model sees as missing.

    `calendar=True` (models whose card says `"calendar": true`): the first
    column must hold dates, and the two day-of-year columns the model takes
    (`calendar_features`) are appended from them.
    """
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path}: the file is empty")

    def number(cell):
        cell = cell.strip()
        if cell in ("", "NA", "NaN", "nan", "?"):
            return math.nan
        return float(cell)

    def numeric(row):
        try:
            [number(c) for c in row]
            return True
        except ValueError:
            return False

    header = None
    if not numeric(rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise ValueError(f"{path}: a header but no values")
    # a first column of dates, or one headed as a time index, is not a feature
    drop_first = len(rows[0]) > 1 and (
        not all(numeric(r[:1]) for r in rows)
        or (header is not None and header[0].strip().lower() in TIME_COLUMN_NAMES))
    values = []
    for number_, row in enumerate(rows, 1):
        cells = row[1:] if drop_first else row
        try:
            values.append([number(c) for c in cells])
        except ValueError:
            raise ValueError(f"{path}: row {number_} holds a value that is not a number: {row}") from None
    widths = {len(v) for v in values}
    if len(widths) != 1:
        raise ValueError(f"{path}: rows have different numbers of columns {sorted(widths)}")
    array = np.asarray(values, np.float64)
    if calendar:
        if not drop_first:
            raise ValueError(f"{path}: this model needs a first column of dates (YYYY-MM-DD): it "
                             f"takes the day of the year as input")
        dates = parse_dates([row[0] for row in rows], where=str(path))
        array = np.column_stack([array, calendar_features(dates)])
    if features is not None and array.shape[1] != features:
        raise ValueError(f"{path}: {array.shape[1]} numeric column(s); the model takes {features}")
    return array


def plot_forecast(history, result, path, title="", actual=None):
    """History, median forecast and the 80% interval of one series (and what happened, if known), to a PNG."""
    from zoo.figures import new_figure, write_png

    history = np.asarray(history, np.float64)
    if history.ndim == 2:
        history = history[:, 0]
    steps = np.arange(len(history))
    ahead = np.arange(len(history), len(history) + len(result["median"]))
    figure = new_figure(7, 3.5)
    axis = figure.subplots()
    axis.plot(steps, history, color="black", label="history")
    axis.plot(ahead, result["median"], color="tab:blue", marker="o", label="forecast (median)")
    axis.fill_between(ahead, result["lower"], result["upper"], color="tab:blue", alpha=0.25,
                      label="80% interval (0.1-0.9)")
    if actual is not None:
        axis.plot(ahead, np.asarray(actual, np.float64)[: len(ahead)], color="tab:red", marker="x",
                  linestyle="--", label="what happened")
    axis.set_xlabel("step")
    axis.set_title(title)
    axis.legend(loc="best")
    return write_png(figure, path, dpi=110)


# --------------------------------------------------------------------------
# The data sets, split as the recipe and `zoo verify` use them
# --------------------------------------------------------------------------

#: Per data set: horizon, default context, scaling, target column, seasonal period for MASE.
PROBLEMS = {
    "m1": {"horizon": 6, "context": 20, "scaling": "log-level", "features": 1, "target_index": 0,
           "season": 1, "calendar": False, "columns": ["value"], "units": 64, "description": "M1 competition, 181 yearly series; the last 6 years of "
                                       "each are the test, as in the competition"},
    "seattle-weather": {"horizon": 7, "context": 56, "scaling": "standard", "features": 6,
                        "target_index": 1, "season": 365, "calendar": True, "units": 16,
                        "columns": ["precipitation", "temp_max", "temp_min", "wind",
                                    "sin(day of year)", "cos(day of year)"],
                        "description": "Seattle daily weather (precipitation, max/min temperature, "
                                       "wind) 2012-2015; forecast the daily maximum temperature "
                                       "7 days ahead from every day of 2015 (train 2012-2013, "
                                       "validation 2014, test 2015); the day of the year enters as "
                                       "two more columns (sin, cos)"},
}

WEATHER_YEAR_STARTS = {2013: 366, 2014: 731, 2015: 1096}  # day indices of 1 January


def calendar_features(dates):
    """sin and cos of the day of the year (one full turn per 365.25 days): [len(dates), 2].

    The weather model takes them as two more columns of its history, so it knows
    the season as an ARIMA with Fourier terms does.
    """
    days = np.asarray([d.timetuple().tm_yday for d in dates], np.float64)
    angle = 2 * np.pi * days / 365.25
    return np.column_stack([np.sin(angle), np.cos(angle)])


def parse_dates(texts, where="dates"):
    """`datetime.date`s from ISO (2015-01-31) or slashed (2015/01/31) dates, or a ValueError naming the bad one."""
    import datetime

    dates = []
    for number, text in enumerate(texts, 1):
        cleaned = str(text).strip().replace("/", "-")[:10]
        try:
            dates.append(datetime.date.fromisoformat(cleaned))
        except ValueError:
            raise ValueError(f"{where}: row {number}: {text!r} is not a date (YYYY-MM-DD)") from None
    return dates


def load_problem(name, max_series=None):
    """`{"series": [arrays [time, features]], "splits": {...}, **PROBLEMS[name]}`.

    `splits` maps "selection_train", "validation", "refit_train" and "test" to
    `(histories, targets, owners)` windows: selection and validation choose the
    epochs, the model is then refitted on "refit_train" (everything before the
    test), and "test" is looked at once.
    """
    from zoo.data import timeseries

    if name not in PROBLEMS:
        raise ValueError(f"unknown forecasting data set {name!r}; known: {', '.join(PROBLEMS)}")
    spec = dict(PROBLEMS[name])
    H, C = spec["horizon"], spec["context"]
    if name == "m1":
        raw, horizon = timeseries.load_m1_yearly()
        assert horizon == H
        raw = raw[:max_series] if max_series else raw
        series = [s.values[:, None] for s in raw]
        trains = [s[:-H] for s in series]
        splits = {
            "selection_train": windows(trains, context=C, horizon=H, first_end=3, last_end=lambda m: m - 2 * H),
            "validation": windows(trains, context=C, horizon=H, first_end=lambda m: m - H, last_end=lambda m: m - H),
            "refit_train": windows(trains, context=C, horizon=H, first_end=3, last_end=lambda m: m - H),
            "test": windows(series, context=C, horizon=H, first_end=lambda n: n - H, last_end=lambda n: n - H),
        }
        spec.update(series=series, names=[s.name for s in raw], insample=[t[:, 0] for t in trains],
                    splits=splits)
        return spec
    dates, values = timeseries.load_seattle_weather()
    values = np.column_stack([values, calendar_features(dates)])
    T = spec["target_index"]
    v, t = WEATHER_YEAR_STARTS[2014], WEATHER_YEAR_STARTS[2015]
    splits = {
        "selection_train": windows([values[:v]], context=C, horizon=H, first_end=28, last_end=v, target_index=T),
        "validation": windows([values[:t]], context=C, horizon=H, first_end=v, last_end=t, target_index=T),
        "refit_train": windows([values[:t]], context=C, horizon=H, first_end=28, last_end=t, target_index=T),
        "test": windows([values], context=C, horizon=H, first_end=t, last_end=len(values), target_index=T),
    }
    spec.update(series=[values], dates=dates, splits=splits)
    return spec


# --------------------------------------------------------------------------
# Baselines (statsmodels, the field's own library), on the same test points
# --------------------------------------------------------------------------


def _statsmodels():
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        raise ImportError("the forecasting baselines need statsmodels: pip install 'zoo[timeseries]'") from None


def univariate_baselines(insample, horizon, season=1):
    """Forecasts of one series from its in-sample values by naive, SES, Holt, damped Holt and Theta."""
    import warnings

    _statsmodels()
    from statsmodels.tsa.forecasting.theta import ThetaModel
    from statsmodels.tsa.holtwinters import Holt, SimpleExpSmoothing

    y = np.asarray(insample, np.float64)
    out = {"naive": np.repeat(y[-1], horizon)}
    if season > 1 and len(y) >= season:
        out["seasonal_naive"] = np.asarray([y[len(y) - season + (h % season)] for h in range(horizon)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["ses"] = np.asarray(SimpleExpSmoothing(y, initialization_method="estimated").fit().forecast(horizon))
        out["holt"] = np.asarray(Holt(y, initialization_method="estimated").fit().forecast(horizon))
        out["damped_holt"] = np.asarray(Holt(y, damped_trend=True, initialization_method="estimated")
                                        .fit().forecast(horizon))
        out["theta"] = np.asarray(ThetaModel(y, period=1, deseasonalize=False).fit().forecast(horizon))
    return out


BASELINE_DESCRIPTIONS = {
    "naive": "last observed value (for yearly data also the M4 'Naive 2': no seasonality to remove)",
    "seasonal_naive": "the value one season (365 days) before the target day",
    "ses": "statsmodels SimpleExpSmoothing (estimated initial level)",
    "holt": "statsmodels Holt linear trend (estimated)",
    "damped_holt": "statsmodels Holt with damped trend (ETS(A,Ad,N))",
    "theta": "statsmodels ThetaModel (the M3 winner; no deseasonalisation)",
    "climatology": "mean of the same calendar day (±3 days) over the training years",
    "arima_fourier": "statsmodels SARIMAX ARIMA(2,0,1) with 3 annual Fourier pairs as regressors, "
                     "fitted on the years before the scored one, state updated through it without refitting",
}


def m1_baselines(problem):
    """Every baseline on the M1 test (the last 6 years), scored like the model."""
    H = problem["horizon"]
    forecasts = {}
    for insample in problem["insample"]:
        for name, values in univariate_baselines(insample, H).items():
            forecasts.setdefault(name, []).append(values)
    tests = [s[-H:, 0] for s in problem["series"]]
    scores = {name: competition_scores(problem["insample"], tests, f) for name, f in forecasts.items()}
    naive2 = scores["naive"]
    for entry in scores.values():
        entry["owa"] = round(owa(entry["smape"], entry["mase"], naive2["smape"], naive2["mase"]), 4)
    return scores


def weather_baselines(problem, window_days=365, year=2015):
    """Every baseline from every origin of `year` (2015: the test; 2014: the validation), fitted on
    what came before it, for the weather problem's target (daily max temperature)."""
    import warnings

    _statsmodels()
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    H, target = problem["horizon"], problem["target_index"]
    values = problem["series"][0][:, target]
    dates = problem["dates"]
    start = WEATHER_YEAR_STARTS[year]
    end = WEATHER_YEAR_STARTS.get(year + 1, len(values))
    values = values[:end]
    origins = list(range(start, end - H + 1))
    actual = np.stack([values[o:o + H] for o in origins])
    forecasts = {}
    for origin in origins:
        for name, f in univariate_baselines(values[origin - window_days:origin], H, season=365).items():
            forecasts.setdefault(name, []).append(f)
    # climatology: same calendar day (±3) in the years before `year`
    day_of_year = np.asarray([d.timetuple().tm_yday for d in dates])
    past = np.arange(start)
    forecasts["climatology"] = [
        [values[past[np.abs(((day_of_year[past] - day_of_year[o + h] + 183) % 366) - 183) <= 3]].mean()
         for h in range(H)] for o in origins]
    # ARIMA with annual Fourier terms, fitted once before the test year
    t = np.arange(len(values))
    fourier = np.column_stack([f(2 * np.pi * k * t / 365.25) for k in (1, 2, 3) for f in (np.sin, np.cos)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = SARIMAX(values[:start], exog=fourier[:start], order=(2, 0, 1), trend="c").fit(disp=False)
        extended = fitted.append(values[start:], exog=fourier[start:end], refit=False)
        arima = []
        for origin in origins:
            # the model's state after `origin` observations, forecast H steps ahead
            prediction = extended.get_prediction(start=origin, end=origin + H - 1, dynamic=0,
                                                 exog=None)
            arima.append(np.asarray(prediction.predicted_mean)[:H])
    forecasts["arima_fourier"] = arima
    return {name: error_scores(actual, np.asarray(f, np.float64)) for name, f in forecasts.items()}


SCALING_TEXT = {
    "log-level": "log(x / last observed value) + observed flag",
    "standard": "per-feature standardisation (training mean/std) + observed flags",
}

SOURCES = {
    "m1": {"package": "aeon==1.6.0 (wheel, sha256 d0522708…)",
           "file": "aeon/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf",
           "license": DATA_LICENSES["m1"]},
    "seattle-weather": {"package": "vega_datasets==0.9.0 (wheel, sha256 3d7c6391…)",
                        "file": "vega_datasets/_data/seattle-weather.csv",
                        "license": DATA_LICENSES["seattle-weather"]},
}


def as_dataset(inputs, targets, batch_size, shuffle=False, seed=None):
    """A batched `tf.data.Dataset` of (scaled history, scaled target) pairs."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(inputs, np.float32), np.asarray(targets, np.float32)))
    if shuffle and len(inputs) > 1:
        ds = ds.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def standard_scaling(problem):
    """Feature mean/std from the selection-train windows' span (never from validation or test)."""
    histories = problem["splits"]["selection_train"][0]
    values = histories.reshape(-1, histories.shape[-1])
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    return {"mean": [float(v) for v in mean], "std": [float(v) if v > 0 else 1.0 for v in std]}


def ensemble_model(members):
    """One Keras model averaging the quantiles of `members` (forecasters with the same input)."""
    import keras

    if len(members) == 1:
        return members[0]
    history = keras.Input(members[0].inputs[0].shape[1:], name="history")
    outputs = []
    for number, member in enumerate(members):
        # each member keeps its own scaling/core/unscaling layers (renamed to stay unique)
        member.name = f"member_{number + 1}"
        outputs.append(member(history))
    mean = keras.layers.Average(name="ensemble_mean")(outputs)
    model = keras.Model(history, mean, name="forecaster_ensemble")
    return model


def _scaling_layer(model):
    for layer in model.layers:
        if layer.name == "scaling":
            return layer
        if isinstance(getattr(layer, "layers", None), list):
            found = _scaling_layer(layer)
            if found is not None:
                return found
    return None


def model_settings(model):
    """context, horizon, features and scaling of a forecaster (read from its layers)."""
    context, features = model.inputs[0].shape[1], model.inputs[0].shape[2]
    horizon = model.outputs[0].shape[1]
    return {"context": int(context), "horizon": int(horizon), "features": int(features),
            "scaling": _scaling_layer(model).scaling}


def evaluate(model, problem, splits=("validation", "test")):
    """The model's scores on the problem's validation and test windows (M1: sMAPE/MASE; else MAE)."""
    results = {}
    for split in splits:
        histories, targets, owners = problem["splits"][split]
        quantiles = predict_quantiles(model, histories)
        lower, median, upper = quantiles[..., 0], quantiles[..., 1], quantiles[..., 2]
        if problem["scaling"] == "log-level":
            insample = [np.asarray(problem["insample"][o]) for o in owners]
            if split == "validation":  # MASE scaled by the values before the validation horizon
                insample = [x[:-problem["horizon"]] for x in insample]
            results[split] = competition_scores(insample, list(targets), list(median),
                                                list(lower), list(upper))
        else:
            results[split] = error_scores(targets, median, lower, upper)
    return results


def compare_with_baselines(test, baselines, data):
    """Which baselines the model beats on the test, on the data set's headline metrics."""
    keys = ("smape", "mase", "owa") if data == "m1" else ("mae", "rmse")
    out = {}
    for name, scores in baselines.items():
        out[name] = {k: ("better" if test[k] < scores[k] else "worse" if test[k] > scores[k] else "level")
                     for k in keys if k in test and k in scores}
    return out


def verdict(comparison):
    """One sentence, from `compare_with_baselines`: which baselines the model beats and where it loses."""
    beaten = [name for name, keys in comparison.items() if keys and all(v == "better" for v in keys.values())]
    losses = {name: [k for k, v in keys.items() if v != "better"] for name, keys in comparison.items()}
    losses = {name: keys for name, keys in losses.items() if keys}
    text = "Beats " + (", ".join(beaten) if beaten else "no baseline") + " on every metric"
    if losses:
        text += "; does not beat " + "; ".join(f"{name} on {', '.join(keys)}" for name, keys in losses.items())
    return text + "."


def format_table(metrics, baselines, data):
    keys = ("smape", "mase", "owa") if data == "m1" else ("mae", "rmse")
    lines = [f"{'method':<16}" + "".join(f"{k:>10}" for k in keys)]
    rows = [("zoo ensemble", metrics["test"])] + sorted(baselines.items(), key=lambda kv: kv[1][keys[-1]])
    for name, scores in rows:
        lines.append(f"{name:<16}" + "".join(f"{scores.get(k, float('nan')):>10.4f}" for k in keys))
    return "\n".join(lines)


def heldout_yearly_evaluation(model, first_origin=20, every=1, baselines=True):
    """Zero-shot on yearly series from outside M1 (`zoo.data.timeseries.load_heldout_yearly`).

    From every `every`-th origin with at least `first_origin` years behind it
    and a full horizon ahead, the model and the univariate baselines forecast; sMAPE and
    MASE are averaged over origins within each series, then over series, and
    OWA is taken relative to the naive forecast.
    """
    from zoo.data import timeseries

    settings = model_settings(model)
    H, C = settings["horizon"], settings["context"]
    per_method = {}
    names = []
    for name, values in timeseries.load_heldout_yearly():
        names.append(name)
        origins = list(range(first_origin, len(values) - H + 1, every))
        histories = np.stack([left_pad(values[:o], C) for o in origins])
        quantiles = predict_quantiles(model, histories)
        actual = [values[o:o + H] for o in origins]
        insample = [values[:o] for o in origins]
        methods = {"zoo ensemble": list(quantiles[..., 1])}
        if baselines:
            for origin in origins:
                for method, f in univariate_baselines(values[:origin], H).items():
                    methods.setdefault(method, []).append(f)
        for method, forecasts in methods.items():
            scores = competition_scores(insample, actual, forecasts)
            per_method.setdefault(method, []).append((scores["smape"], scores["mase"]))
    table = {}
    for method, rows in per_method.items():
        rows = np.asarray(rows)
        table[method] = {"smape": round(float(rows[:, 0].mean()), 4), "mase": round(float(rows[:, 1].mean()), 4)}
    if "naive" in table:
        for entry in table.values():
            entry["owa"] = round(owa(entry["smape"], entry["mase"], table["naive"]["smape"],
                                     table["naive"]["mase"]), 4)
    return {"series": names, "first_origin": first_origin, "every": every, "scores": table}


# --------------------------------------------------------------------------
# `zoo verify` and `zoo forecast`
# --------------------------------------------------------------------------


def remeasure(model, card):
    """Re-measure the card's test scores (and the held-out yearly scores) from scratch."""
    problem = load_problem(card["dataset"]["name"], max_series=card["dataset"].get("max_series"))
    measured = evaluate(model, problem, splits=("test",))
    if problem["scaling"] == "log-level":
        H = problem["horizon"]
        tests = [s[-H:, 0] for s in problem["series"]]
        naive = competition_scores(problem["insample"], tests, [np.repeat(x[-1], H) for x in problem["insample"]])
        measured["test"]["owa"] = round(owa(measured["test"]["smape"], measured["test"]["mase"],
                                            naive["smape"], naive["mase"]), 4)
        if "heldout_yearly" in card.get("metrics", {}):
            recorded = card["metrics"]["heldout_yearly"]
            heldout = heldout_yearly_evaluation(model, first_origin=recorded["first_origin"],
                                                every=recorded.get("every", 1), baselines=False)
            ours = heldout["scores"]["zoo ensemble"]
            measured["heldout_yearly"] = {"scores": {"zoo ensemble": {"smape": ours["smape"], "mase": ours["mase"]}}}
    return measured


def serving_examples():
    return serving_examples_for(1, "log-level")


def serving_examples_for_card(card):
    """Valid inputs for a given forecasting model (its number of features and scaling)."""
    problem = PROBLEMS[card["dataset"]["name"]]
    return serving_examples_for(problem["features"], problem["scaling"])


def forecast_cli(name, path, horizon=None, plot=None):
    """`zoo forecast NAME history.csv`: one line per step ahead (step, median, lower, upper)."""
    from pathlib import Path

    from zoo import hub

    serving = hub.load_serving(name)
    settings = serving_settings(serving)
    dataset = hub.info(name).get("dataset", {})
    history = read_history_csv(path, features=settings["features"], calendar=bool(dataset.get("calendar")))
    result = forecast(serving, [history], horizon=horizon)
    result = {k: v[0] for k, v in result.items()}
    print("step\tforecast\tlower_0.1\tupper_0.9")
    for step in range(len(result["median"])):
        print(f"+{step + 1}\t{result['median'][step]:.6g}\t{result['lower'][step]:.6g}\t{result['upper'][step]:.6g}")
    if plot:
        plot_forecast(history[:, dataset.get("target_index", 0)], result, plot, title=f"{name}: {Path(path).name}")
        print(f"plot written to {plot}")
    return 0
