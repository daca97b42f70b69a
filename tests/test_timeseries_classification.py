"""Time-series classification: .ts parsing, 1-NN baselines, masking, serving, bad input, recipe smoke run."""

import json

import numpy as np
import pytest

from zoo import cli, hub
from zoo.data.timeseries import load_ucr
from zoo.tasks import timeseries_classification as tsc
from recipe_helpers import load_recipe, smoke_hub_fixtures

SMOKE = "tsc-smoke"
SMOKE_OPTIONS = ["--dataset", "JapaneseVowels", "--epochs", "1", "--seeds", "2", "--max-examples", "40",
                 "--units", "4", "--filters", "4", "--min-batches", "2"]

TS_HEADER = """# a tiny multivariate, variable-length set
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


# a hub directory holding one JapaneseVowels model from a seconds-long recipe run
smoke_hub, use_hub = smoke_hub_fixtures("timeseries_classification", SMOKE_OPTIONS, SMOKE)


# -- data and baselines ---------------------------------------------------------------


def test_load_ucr_reads_a_tiny_ts_pair(tmp_path):
    (tmp_path / "Tiny_TRAIN.ts").write_text(
        TS_HEADER + "1,2,3:4,5,6:up\n1,?,3,4:0,0,0,0:down\n")
    (tmp_path / "Tiny_TEST.ts").write_text(TS_HEADER + "3,2:1,1:down\n")
    splits = load_ucr(str(tmp_path / "Tiny_TRAIN.ts"))
    train, test = splits["train"], splits["test"]
    assert train.class_names == ["up", "down"] and train.dims == 2
    assert [s.shape for s in train.series] == [(3, 2), (4, 2)]
    np.testing.assert_array_equal(train.series[0], [[1, 4], [2, 5], [3, 6]])
    assert np.isnan(train.series[1][1, 0])
    assert list(train.label_ids()) == [0, 1] and list(test.label_ids()) == [1]
    filled = tsc.check_series(train.series)
    assert filled[1][1, 0] == pytest.approx(2.0)  # linear interpolation between 1 and 3


@pytest.mark.parametrize("name", ["GunPoint", "ItalyPowerDemand"])
def test_one_nn_euclidean_reproduces_the_published_error(name):
    splits = load_ucr(name)
    result = tsc.one_nn_euclidean(splits["train"], splits["test"])
    assert round(result["error"], 3) == tsc.PUBLISHED_1NN_ERRORS[name]["euclidean"]


def test_one_nn_dtw_handles_unequal_lengths():
    pytest.importorskip("aeon")
    splits = load_ucr("JapaneseVowels")
    train = type(splits["train"])(splits["train"].series[::10], splits["train"].labels[::10],
                                  splits["train"].class_names)
    test = type(splits["test"])(splits["test"].series[:30], splits["test"].labels[:30],
                                splits["test"].class_names)
    assert len({len(s) for s in train.series + test.series}) > 1
    dtw = tsc.one_nn_dtw(train, test)
    euclidean = tsc.one_nn_euclidean(train, test)
    assert 0.0 <= dtw["accuracy"] <= 1.0 and "native" in dtw["length_handling"]
    assert "resampled" in euclidean["length_handling"]


def test_stratified_split_keeps_every_class_and_is_seeded():
    labels = np.repeat(np.arange(3), [10, 5, 2])
    fit, validation = tsc.stratified_split(labels, 0.2, seed=1)
    assert sorted(set(labels[validation])) == [0, 1, 2]
    assert len(np.intersect1d(fit, validation)) == 0 and len(fit) + len(validation) == len(labels)
    again = tsc.stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(validation, again[1])


# -- the model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def vowels():
    return load_ucr("JapaneseVowels")


def test_model_trains_and_padding_does_not_change_predictions(vowels):
    import keras

    train = vowels["train"]
    series = train.series[::15]
    model = tsc.build_model(series, train.class_names, units=4, filters=(4, 8, 4))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    history = model.fit(tsc.as_dataset(series, train.label_ids()[::15], 8, shuffle=True, seed=0),
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    short = tsc.check_series(series[:4])
    assert len({len(s) for s in short}) > 1
    tight, lengths = tsc.pad_series(short)
    loose, _ = tsc.pad_series(short, length=tight.shape[1] + 13)
    loose[:, tight.shape[1]:] = np.nan  # garbage beyond each length must not matter either
    loose[0, lengths[0]:] = 7.0
    a = np.asarray(model({"series": tight, "lengths": lengths}, training=False))
    b = np.asarray(model({"series": loose, "lengths": lengths}, training=False))
    np.testing.assert_allclose(a, b, atol=1e-5)
    one = np.asarray(model({"series": tight[:1, : lengths[0]], "lengths": lengths[:1]}, training=False))
    np.testing.assert_allclose(one, a[:1], atol=1e-5)


def test_augmentation_only_while_training(vowels):
    import keras

    layer = tsc.SeriesAugmentation(crop=0.5, scale=0.1, noise=0.05, seed=3)
    series, lengths = tsc.pad_series(tsc.check_series(vowels["train"].series[:6]))
    inputs = [keras.ops.convert_to_tensor(series), keras.ops.convert_to_tensor(lengths)]
    same, same_lengths = layer(inputs, training=False)
    np.testing.assert_array_equal(np.asarray(same), series)
    np.testing.assert_array_equal(np.asarray(same_lengths), lengths)
    changed, shorter = (np.asarray(t) for t in layer(inputs, training=True))
    assert np.all(shorter <= lengths) and np.all(shorter >= lengths // 2) and np.any(shorter < lengths)
    for row, length in zip(changed, shorter):
        assert not row[length:].any()  # padding stays exactly 0
    assert not np.allclose(changed, series)


def test_series_scaling_is_inside_the_model(vowels):
    train = vowels["train"]
    model = tsc.build_model(train.series[:20], train.class_names, units=4, filters=(4, 8, 4),
                            scaling="both")
    mean, sd = tsc.feature_statistics(train.series[:20])
    layer = model.get_layer("scaling")
    np.testing.assert_allclose(np.asarray(layer.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.sd), sd, rtol=1e-6)


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("text,message", [
    ("", "the file is empty"),
    ("\n \n", "the file is empty"),
    ("a,b\n", "header but no data rows"),
    ("1,2\n3,4\n", "has 2 feature(s), the model expects 3"),
    ("1,2,3\n", "has 1 time step(s); at least 2 are needed"),
    ("1,2,3\n4,x,6\n", "'x' is not a number"),
    ("1,2,3\n4,5\n", "data row 2 has 2 columns, the first has 3"),
    ("1,,3\n4,?,6\n", "feature 2 has no values"),
])
def test_series_file_errors(tmp_path, text, message):
    path = tmp_path / "series.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        tsc.read_series_file(path, features=3)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_series_file_header_and_missing_values(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("x,y\n1,10\n,NaN\n3,30\n4,\n")
    [series] = tsc.read_series_file(path, features=2)
    np.testing.assert_allclose(series, [[1, 10], [2, 20], [3, 30], [4, 30]])
    ts = tmp_path / "cases.ts"
    ts.write_text(TS_HEADER + "1,2,3:4,5,6:up\n1,2:3,4:down\n")
    assert [s.shape for s in tsc.read_series_file(ts, features=2)] == [(3, 2), (2, 2)]


def test_classify_series_errors(smoke_hub):
    model = hub.load(smoke_hub[0] / SMOKE)
    with pytest.raises(ValueError, match="no series"):
        tsc.classify_series(model, [])
    with pytest.raises(ValueError, match="has 3 feature"):
        tsc.classify_series(model, [np.zeros((5, 3))])
    with pytest.raises(ValueError, match="at least 2"):
        tsc.classify_series(model, [np.zeros((1, 12))])


# -- the recipe, the hub, serving ------------------------------------------------------


def test_recipe_writes_a_card_that_verify_reproduces(use_hub, capsys):
    root, card = use_hub
    on_disk = json.loads((root / SMOKE / "card.json").read_text())
    for key in ("task", "io", "description", "architecture", "parameters", "dataset", "metrics",
                "baselines", "anchors", "results", "where_it_loses", "training", "command", "license",
                "files"):
        assert key in on_disk, key
    assert on_disk["task"] == "timeseries-classification" and on_disk["io"] == "many-to-one"
    assert on_disk["metrics"]["test"]["examples"] == 40
    assert on_disk["exported_model"].startswith("ensemble") and len(on_disk["seeds"]["test_accuracy_per_seed"]) == 2
    assert hub.load(SMOKE).get_layer("probabilities").__class__.__name__ == "Average"
    assert on_disk["training"]["seconds"] > 0 and on_disk["training"]["hardware"]["cpu_count"]
    row = on_disk["results"]["table"][0]
    assert row["command"].startswith("python recipes/timeseries_classification.py --dataset JapaneseVowels")
    assert "1-NN DTW (full window)" in on_disk["baselines"]
    assert (root / SMOKE / "results.md").exists()
    model = hub.load(SMOKE)
    measured = tsc.remeasure(model, on_disk)
    assert measured["test"] == on_disk["metrics"]["test"]
    assert cli.main(["verify", SMOKE]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_serving_signature_equals_the_keras_model(use_hub, vowels):
    import tensorflow as tf

    model = hub.load(SMOKE)
    serving = hub.load_serving(SMOKE)
    series = tsc.check_series(vowels["test"].series[:5])
    padded, lengths = tsc.pad_series(series)
    keras_out = np.asarray(model({"series": padded, "lengths": lengths}, training=False))
    served = serving.signatures["serving_default"](series=tf.constant(padded), lengths=tf.constant(lengths))
    np.testing.assert_allclose(served["probabilities"].numpy(), keras_out, atol=1e-5)
    np.testing.assert_array_equal(served["class_ids"].numpy(), keras_out.argmax(1))
    names, probabilities = tsc.classify_series(serving, series)
    card = hub.info(SMOKE)
    assert names == [card["dataset"]["class_names"][i] for i in keras_out.argmax(1)]
    np.testing.assert_allclose(probabilities, keras_out, atol=1e-5)
    names_keras, _ = tsc.classify_series(model, series, class_names=card["dataset"]["class_names"])
    assert names_keras == names


def test_serving_runs_under_the_tf1_session_loader(use_hub):
    from serving_helpers import check_session_loader

    check_session_loader(SMOKE)


def test_recipe_rejects_bad_settings(capsys):
    recipe = load_recipe("timeseries_classification")
    for argv, message in ((["--cell", "transformer"], "--cell must be one of"),
                          (["--validation-fraction", "1.5"], "--validation-fraction must be in (0, 1)"),
                          (["--dataset", "all", "--ship", "Nope"], "--ship must be one of"),
                          (["--no-recurrent", "--no-convolutional"], "leave no model")):
        with pytest.raises(SystemExit) as raised:
            recipe.parse_args(argv)
        assert raised.value.code == 2
        assert message in capsys.readouterr().err


# -- the shipped model --------------------------------------------------------------

SHIPPED = "timeseries-classification-japanesevowels"
shipped = pytest.mark.skipif(not (hub.models_dir() / SHIPPED / "card.json").exists(),
                             reason="the shipped model has not been trained yet")


@shipped
@pytest.mark.slow
def test_shipped_model_verifies(monkeypatch):
    monkeypatch.delenv("ZOO_MODELS_DIR", raising=False)
    assert cli.main(["verify", SHIPPED]) == 0
    card = hub.info(SHIPPED)
    assert card["metrics"]["test"]["examples"] == 370
    assert len(card["results"]["table"]) == 6
