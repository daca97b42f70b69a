"""LiteRT / ONNX export (`zoo.export_formats`, `zoo export --format`).

The round trips write the export of a shipped hub model, then run the written
files with their own runtime (ai-edge-litert, onnxruntime) against the hub's
SavedModel on inputs the export itself did not check. They skip, saying which
packages to install, when a runtime is missing (`pip install -e ".[export]"`).
"""

import json

import numpy as np
import pytest

from zoo import cli, export_formats, hub
from zoo.tasks import TASK_MODULES

SENTIMENT = "sentiment-bilstm-mr"
MUSIC = "music-lstm-chorales"

#: Sentences the export's own check does not use: case, punctuation inside words, tabs, a
#: non-breaking space (not a split), non-ASCII capitals (kept: "CLICHÉS" is not "clichés", which is in
#: the vocabulary), unknown words, repeated bigrams, more than 64 words.
UNSEEN_TEXTS = [
    "An ASTONISHING, heart-breaking piece of cinema.",
    "it's\tnot great ,  it's not\nterrible either",
    "Zyzzyva qwertyuiop flibbertigibbet",
    "ÀLA carte\u00a0CAFÉ film: clichés \u2013 CLICHÉS, film film",  # A-Z only are lower-cased
    "so so so so good good",
    "bad " * 70,
    "!!!",
]


def _runtime_skip(fmt):
    missing = export_formats.missing_runtime(fmt)
    return pytest.mark.skipif(missing is not None, reason=missing or "")


def _hub_model(name):
    if name not in hub.list_models():
        pytest.skip(f"{name} is not in the hub ({hub.models_dir()})")
    return name


# -- the table ----------------------------------------------------------------------


def test_table_covers_every_task_and_format_with_a_reason():
    for task in TASK_MODULES:
        for fmt in export_formats.FORMATS:
            support = export_formats.format_support(task, fmt)
            if fmt == "savedmodel":
                assert support.supported
            elif support.supported:
                assert support.exports and support.why, (task, fmt)  # what is exported, what is not
            else:
                assert not support.exports and support.why, (task, fmt)
        json.dumps(export_formats.card_entry(task))  # a card can hold it
    assert export_formats.supported_formats("sentiment") == ["savedmodel", "tflite", "onnx"]
    assert export_formats.supported_formats("translation") == ["savedmodel"]
    assert export_formats.supported_formats("a-future-task") == ["savedmodel"]


def test_unsupported_and_unknown_formats_say_why():
    with pytest.raises(ValueError, match=r"translation-x \(translation\) cannot be exported as onnx: "
                                         r"the source tokenizer.*supported formats: savedmodel"):
        export_formats.check_exportable("translation", "onnx", "translation-x")
    with pytest.raises(ValueError, match=r"format must be one of savedmodel, tflite, onnx, received 'pb'"):
        export_formats.format_support("sentiment", "pb")


def test_within_tolerance_rejects_nan_large_differences_and_mismatches():
    assert export_formats.within_tolerance({"max_abs_difference_x": 1e-6, "tokens_equal": True})
    assert not export_formats.within_tolerance({"max_abs_difference_x": float("nan")})
    assert not export_formats.within_tolerance({"max_abs_difference_x": 1e-3})
    assert not export_formats.within_tolerance({"max_abs_difference_x": 0.0, "tokens_equal": False})


def test_missing_runtime_names_the_packages(monkeypatch, tmp_path, capsys):
    _hub_model(SENTIMENT)
    monkeypatch.setitem(export_formats.RUNTIME_MODULES, "onnx", {"zoo_no_such_module": "no-such-runtime"})
    assert "pip install no-such-runtime" in export_formats.missing_runtime("onnx")
    with pytest.raises(export_formats.RuntimeMissingError, match="no-such-runtime"):
        export_formats.load_runner(tmp_path, "onnx")
    assert cli.main(["export", SENTIMENT, str(tmp_path / "out"), "--format", "onnx"]) == 1
    assert "needs no-such-runtime" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_format_the_table_rules_out(monkeypatch, tmp_path, capsys):
    _hub_model(MUSIC)
    blocked = export_formats.FormatSupport(False, "", "the test says no")
    monkeypatch.setitem(export_formats.SUPPORT, "music", dict(export_formats.SUPPORT["music"], tflite=blocked))
    assert cli.main(["export", MUSIC, str(tmp_path / "out"), "--format", "tflite"]) == 2
    err = capsys.readouterr().err
    assert "cannot be exported as tflite: the test says no" in err and "supported formats: savedmodel, onnx" in err
    assert not (tmp_path / "out").exists()


# -- the sentiment input contract ------------------------------------------------------


def test_sentiment_features_match_the_models_own_vectorization():
    import tensorflow as tf

    model = hub.load(_hub_model(SENTIMENT), compile=False)
    words = [str(w) for w in model.get_layer("word_ids").get_vocabulary()]
    ngrams = [str(w) for w in model.get_layer("ngram_tfidf").get_vocabulary()]
    features = export_formats.sentiment_features(UNSEEN_TEXTS, words, ngrams)
    expected_ids = model.get_layer("word_ids")(tf.constant(UNSEEN_TEXTS)).numpy()
    np.testing.assert_array_equal(features["word_ids"], expected_ids)
    tfidf = model.get_layer("ngram_tfidf")(tf.constant(UNSEEN_TEXTS)).numpy()
    idf = np.asarray(model.get_layer("ngram_tfidf")._lookup_layer.idf_weights_const)
    np.testing.assert_allclose(features["ngram_counts"] * idf, tfidf, rtol=1e-6, atol=1e-6)
    assert features["ngram_counts"][4].sum() == 6 + 5  # six words, five adjacent pairs


# -- round trips with each runtime -------------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param("tflite", marks=_runtime_skip("tflite")),
                                 pytest.param("onnx", marks=_runtime_skip("onnx"))])
def test_sentiment_export_matches_the_savedmodel(fmt, tmp_path, capfd):
    import tensorflow as tf

    name = _hub_model(SENTIMENT)
    target = tmp_path / "deploy"
    assert cli.main(["export", name, str(target), "--format", fmt]) == 0
    captured = capfd.readouterr()
    assert f"exported {name} as {fmt}" in captured.out
    other = {"tflite": ".onnx", "onnx": ".tflite"}[fmt]
    assert other not in captured.out  # the message names this format's file, not the other's
    assert "NoneType" not in captured.err and "Issue encountered" not in captured.err
    contract = json.loads((target / export_formats.CONTRACT_FILE).read_text())
    assert contract["compared_with_savedmodel"]["max_abs_difference_probability"] <= export_formats.TOLERANCE
    features = export_formats.sentiment_features(
        UNSEEN_TEXTS, export_formats.read_vocabulary(target / "word_vocabulary.txt"),
        export_formats.read_vocabulary(target / "ngram_vocabulary.txt"))
    exported = export_formats.load_runner(target, fmt).run("classify", **features)["probability"]
    serving = hub.load_serving(name)
    expected = serving.signatures["serving_default"](texts=tf.constant(UNSEEN_TEXTS))["probability"].numpy()
    np.testing.assert_allclose(np.asarray(exported).reshape(-1), expected, atol=1e-5)
    assert len(set(np.round(expected, 3))) > 3  # the inputs do not all give one answer


@pytest.mark.parametrize("fmt", [pytest.param("tflite", marks=_runtime_skip("tflite")),
                                 pytest.param("onnx", marks=_runtime_skip("onnx"))])
def test_music_export_reproduces_greedy_generation(fmt, tmp_path):
    import tensorflow as tf

    from zoo import music

    name = _hub_model(MUSIC)
    target, measured = export_formats.export(name, tmp_path / "deploy", fmt)
    assert measured["greedy_tokens_equal"] is True
    keys = ["G major", "E minor", "C# minor"]
    assert (target / "keys.txt").read_text().splitlines()[music.key_index("E minor")] == "E minor"
    state_names = json.loads((target / export_formats.CONTRACT_FILE).read_text())["state_names"]
    serving = hub.load_serving(name)
    runner = export_formats.load_runner(target, fmt)
    for num_events, min_events in ((40, 40), (40, 0)):  # 0: the model may end a melody (EOS, then PAD)
        expected = serving.signatures["generate"](
            keys=tf.constant(keys), num_events=tf.constant(num_events), temperature=tf.constant(0.0),
            seed=tf.constant(3, tf.int64), min_events=tf.constant(min_events))["tokens"].numpy()
        greedy = export_formats.greedy_melodies(runner, [music.key_index(k) for k in keys], num_events,
                                                min_events=min_events, state_names=state_names)
        np.testing.assert_array_equal(greedy, expected)
    assert len({tuple(row) for row in expected}) == len(keys)  # different keys, different melodies
