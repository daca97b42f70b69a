"""Forecasting: the .tsf reader, the competition metrics, the scaling inside the model, the
API's answers to bad input, and a smoke run of the recipe through verify, serving and the CLI."""

import math

import numpy as np
import pytest

from zoo.data import timeseries
from zoo.tasks import forecasting

# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

TSF = """# a comment
@relation tiny
@attribute series_name string
@attribute start_timestamp date
@frequency yearly
@horizon 2
@data
A:1970-01-01 00-00-00:1,2,3,4
B:1980-01-01 00-00-00:5,?,7
"""


def test_parse_tsf_reads_names_starts_and_missing_values():
    series, header = timeseries.parse_tsf(TSF)
    assert [s.name for s in series] == ["A", "B"]
    assert series[0].start == "1970-01-01 00-00-00"
    np.testing.assert_array_equal(series[0].values, [1, 2, 3, 4])
    assert math.isnan(series[1].values[1])
    assert header["horizon"] == "2"


@pytest.mark.parametrize("text, problem", [
    ("@relation x\n@attribute series_name string\n@data\n", "no series"),
    ("@relation x\n@attribute series_name string\n@data\nA:1,x\n", "not a number"),
    ("A:1,2\n", "header line"),
])
def test_parse_tsf_names_the_problem(text, problem):
    with pytest.raises(timeseries.TimeSeriesFormatError, match=problem):
        timeseries.parse_tsf(text, "tiny.tsf")


def test_m1_yearly_is_the_competition_set():
    series, horizon = timeseries.load_m1_yearly()
    assert len(series) == 181 and horizon == 6
    lengths = [len(s.values) for s in series]
    assert min(lengths) == 15 and max(lengths) == 58
    assert all(np.all(s.values > 0) for s in series)


def test_seattle_weather_is_four_whole_years():
    dates, values = timeseries.load_seattle_weather()
    assert len(dates) == 1461 and values.shape == (1461, 4)
    assert str(dates[0]) == "2012-01-01" and str(dates[-1]) == "2015-12-31"


# --------------------------------------------------------------------------
# Metrics (hand-computed values)
# --------------------------------------------------------------------------


def test_smape_mase_owa_by_hand():
    actual, forecast = [100.0, 200.0], [110.0, 180.0]
    # 200 * (10/210 + 20/380) / 2
    assert forecasting.smape(actual, forecast) == pytest.approx(100 * (10 / 210 + 20 / 380))
    # in-sample naive MAE: mean(|2-1|, |4-2|) = 1.5; forecast MAE = 15
    assert forecasting.mase([1.0, 2.0, 4.0], actual, forecast) == pytest.approx(10.0)
    assert forecasting.owa(10.0, 2.0, 20.0, 4.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="constant"):
        forecasting.mase([3.0, 3.0, 3.0], actual, forecast)


def test_error_scores_and_coverage():
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    scores = forecasting.error_scores(actual, actual + [[1.0, -1.0], [0.0, 2.0]],
                                      lower=actual - 1, upper=actual + [[1, 1], [-0.5, 1]])
    assert scores["mae"] == pytest.approx(1.0)
    assert scores["rmse"] == pytest.approx(math.sqrt(1.5), abs=1e-4)
    assert scores["mae_per_step"] == [0.5, 1.5]
    assert scores["coverage_80"] == 0.75


def test_windows_pad_on_the_left_and_stop_before_the_horizon():
    series = [np.arange(1, 11, dtype=float)[:, None]]
    histories, targets, owners = forecasting.windows(series, context=4, horizon=2, first_end=3,
                                                     last_end=lambda n: n)
    assert len(histories) == 6  # ends 3..8
    assert np.isnan(histories[0, 0, 0]) and list(histories[0, 1:, 0]) == [1, 2, 3]
    np.testing.assert_array_equal(targets[-1], [9, 10])
    assert set(owners) == {0}


# --------------------------------------------------------------------------
# The model: scaling inside it
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def m1_model():
    model, core = forecasting.build_model(context=8, horizon=3, units=8, seed=0)
    return model


def test_log_level_model_is_scale_free(m1_model):
    history = np.array([[np.nan, np.nan, 3.0, 4.0, 5.0, 5.5, 7.0, 8.0]], np.float32)[..., None]
    small = np.asarray(m1_model(history))
    large = np.asarray(m1_model(history * 1000.0))
    np.testing.assert_allclose(large, small * 1000.0, rtol=1e-5)
    assert np.all(small[..., 0] <= small[..., 1]) and np.all(small[..., 1] <= small[..., 2])


def test_log_level_uses_the_last_observed_value(m1_model):
    scaler = forecasting._scaling_layer(m1_model)
    history = np.array([[1.0, 2.0, np.nan, 4.0, 6.0, np.nan, np.nan, np.nan]], np.float32)[..., None]
    features, level, _ = scaler(history)
    assert float(np.asarray(level)[0, 0]) == 6.0
    features = np.asarray(features)[0]
    np.testing.assert_array_equal(features[:, 1], [1, 1, 0, 1, 1, 0, 0, 0])
    assert features[0, 0] == pytest.approx(math.log(1 / 6))


def test_scaled_targets_invert_the_unscaling(m1_model):
    histories = np.abs(np.random.default_rng(0).normal(10, 2, (4, 8, 1))).astype(np.float32)
    targets = np.abs(np.random.default_rng(1).normal(10, 2, (4, 3)))
    _, scaled = forecasting.scale_for_training(m1_model, histories, targets)
    level = histories[:, -1, 0]
    np.testing.assert_allclose(level[:, None] * np.exp(scaled), targets, rtol=1e-5)


def test_standard_scaling_model_round_trips_through_keras_saving(tmp_path):
    import keras

    model, _ = forecasting.build_model(context=6, horizon=2, features=3, scaling="standard",
                                       mean=[1.0, 2.0, 3.0], std=[1.0, 2.0, 0.5], target_index=1, units=4)
    history = np.random.default_rng(0).normal(2, 1, (2, 6, 3)).astype(np.float32)
    history[0, 2, 1] = np.nan
    path = tmp_path / "m.keras"
    model.save(path)
    forecasting.register_custom_objects()
    import zoo.layers  # noqa: F401  (registers the recurrent layers)

    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(history)), np.asarray(model(history)), rtol=1e-6)
    assert forecasting.model_settings(loaded) == {"context": 6, "horizon": 2, "features": 3,
                                                  "scaling": "standard"}


# --------------------------------------------------------------------------
# Bad input, at the API boundary
# --------------------------------------------------------------------------


@pytest.mark.parametrize("history, problem", [
    ([], "empty"),
    ([np.nan, np.nan, np.nan], "observed"),
    ([5.0], "observed"),
    ([1.0, -2.0, 3.0], "<= 0"),
    ([[1.0, 2.0], [3.0, 4.0]], "feature"),
    ([1.0, np.inf, 3.0], "infinite"),
])
def test_forecast_refuses_bad_histories(m1_model, history, problem):
    with pytest.raises(ValueError, match=problem):
        forecasting.forecast(m1_model, [history])


def test_forecast_handles_gaps_long_and_short_histories(m1_model):
    result = forecasting.forecast(m1_model, [[1.0, 2.0], np.arange(1, 40.0), [1.0, np.nan, 3.0, 4.0]],
                                  horizon=2)
    assert result["median"].shape == (3, 2)
    assert np.all(np.isfinite(result["median"]))
    # a long history: only its last `context` steps matter
    np.testing.assert_allclose(forecasting.forecast(m1_model, [np.arange(32, 40.0)])["median"],
                               forecasting.forecast(m1_model, [np.arange(1, 40.0)])["median"])
    with pytest.raises(ValueError, match="at most 3 steps"):
        forecasting.forecast(m1_model, [[1.0, 2.0]], horizon=4)


def test_read_history_csv(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("year,sales\n2001,10\n2002,\n2003,12.5\n")
    values = forecasting.read_history_csv(path, features=1)
    assert values.shape == (3, 1) and np.isnan(values[1, 0]) and values[2, 0] == 12.5
    path.write_text("1\n2\n3\n")
    assert forecasting.read_history_csv(path).shape == (3, 1)
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        forecasting.read_history_csv(path)
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="2 numeric column"):
        forecasting.read_history_csv(path, features=1)
    path.write_text("1\nabc\n")
    with pytest.raises(ValueError, match="not a number"):
        forecasting.read_history_csv(path)


# --------------------------------------------------------------------------
# The recipe, end to end (small): card, verify, serving, CLI
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_hub(tmp_path_factory):
    """A small model trained by the recipe into its own hub directory (named by path below)."""
    from recipe_helpers import train_smoke_model

    root = tmp_path_factory.mktemp("hub")
    card = train_smoke_model("forecasting", ["--epochs", "2", "--members", "2", "--units", "8",
                                             "--max-series", "10", "--heldout-every", "60"],
                             "forecasting-smoke", root)
    return root, card


def test_smoke_card_has_baselines_heldout_and_intervals(smoke_hub):
    _, card = smoke_hub
    assert card["task"] == "forecasting"
    test = card["metrics"]["test"]
    assert test["series"] == 10 and 0.0 <= test["coverage_80"] <= 1.0
    for name in ("naive", "ses", "holt", "damped_holt", "theta"):
        assert name in card["baselines"] and "owa" in card["baselines"][name]
    assert card["baselines"]["naive"]["owa"] == 1.0
    heldout = card["metrics"]["heldout_yearly"]
    assert "lynx" in heldout["series"] and "zoo ensemble" in heldout["scores"]
    assert len(card["training"]["members"]) == 2


def test_smoke_model_verifies_and_serves(smoke_hub, capsys):
    from serving_helpers import check_session_loader
    from zoo import cli, hub

    root, card = smoke_hub
    assert cli.main(["verify", str(root / "forecasting-smoke")]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out
    serving = hub.load_serving(str(root / "forecasting-smoke"))
    model = hub.load(str(root / "forecasting-smoke"))
    histories = [np.arange(1, 30.0) ** 1.1, [5.0, 6.0, 7.0]]
    direct = forecasting.forecast(model, histories)
    served = forecasting.forecast(serving, histories)
    for key in ("median", "lower", "upper"):
        np.testing.assert_allclose(served[key], direct[key], rtol=1e-5)
    check_session_loader(str(root / "forecasting-smoke"))


def test_zoo_forecast_command(smoke_hub, tmp_path, capsys):
    from zoo import cli

    root, _ = smoke_hub
    history = tmp_path / "sales.csv"
    history.write_text("year,sales\n" + "".join(f"{2000 + i},{100 + 7 * i}\n" for i in range(12)))
    plot = tmp_path / "sales.png"
    assert cli.main(["forecast", str(root / "forecasting-smoke"), str(history), "--horizon", "3",
                     "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("step") and [line.split("\t")[0] for line in lines[1:4]] == ["+1", "+2", "+3"]
    assert plot.stat().st_size > 1000
    history.write_text("year,sales\n2000,5\n2001,-3\n")
    assert cli.main(["forecast", str(root / "forecasting-smoke"), str(history)]) == 2
    assert "<= 0" in capsys.readouterr().err
    assert cli.main(["forecast", str(root / "forecasting-smoke"), str(history), "--horizon", "0"]) == 2


# --------------------------------------------------------------------------
# The shipped models: their cards re-measure, and they meet the floors
# --------------------------------------------------------------------------

SHIPPED_M1 = "forecasting-gru-m1"
SHIPPED_WEATHER = "forecasting-gru-seattle-weather"


def _shipped(name):
    from zoo import hub

    return pytest.mark.skipif(name not in hub.list_models(), reason=f"{name} is not in saved_models/")


@_shipped(SHIPPED_M1)
def test_shipped_m1_model_verifies_and_meets_the_floors(capsys):
    from zoo import cli, hub

    assert cli.main(["verify", SHIPPED_M1]) == 0
    card = hub.info(SHIPPED_M1)
    test, baselines = card["metrics"]["test"], card["baselines"]
    for floor in ("naive", "ses"):  # the floors: beat naive and SES on MASE and sMAPE
        assert test["mase"] < baselines[floor]["mase"] and test["smape"] < baselines[floor]["smape"]
    assert test["series"] == 181
    assert card["metrics"]["heldout_yearly"]["scores"]["zoo ensemble"]["owa"] > 0


@_shipped(SHIPPED_WEATHER)
def test_shipped_weather_model_verifies_and_beats_every_baseline_on_mae(capsys):
    from zoo import cli, hub

    assert cli.main(["verify", SHIPPED_WEATHER]) == 0
    card = hub.info(SHIPPED_WEATHER)
    assert set(card["baselines"]) >= {"naive", "seasonal_naive", "ses", "holt", "theta", "arima_fourier",
                                      "climatology"}
    for name, scores in card["baselines"].items():
        assert card["metrics"]["test"]["mae"] < scores["mae"], name


def test_read_history_csv_with_calendar_columns(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text("date,precipitation,temp_max,temp_min,wind\n"
                    "2015-03-01,0.0,12.0,3.0,2.0\n2015/03/02,1.5,11.0,4.0,3.5\n")
    values = forecasting.read_history_csv(path, features=6, calendar=True)
    assert values.shape == (2, 6)
    day = 31 + 28 + 1
    assert values[0, 4] == pytest.approx(math.sin(2 * math.pi * day / 365.25))
    path.write_text("precipitation,temp_max,temp_min,wind\n0.0,12.0,3.0,2.0\n")
    with pytest.raises(ValueError, match="dates"):
        forecasting.read_history_csv(path, features=6, calendar=True)
    path.write_text("date,a,b,c,d\n2015-13-01,0,1,2,3\n")
    with pytest.raises(ValueError, match="not a date"):
        forecasting.read_history_csv(path, features=6, calendar=True)


def test_a_constant_history_has_a_defined_forecast(m1_model):
    result = forecasting.forecast(m1_model, [[5.0] * 6])
    assert np.all(np.isfinite(result["median"])) and np.all(result["lower"] <= result["upper"])
