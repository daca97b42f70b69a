"""The README's first examples, run on the shipped models: what a new user tries first must work."""

import pytest

from zoo import hub


def _serving(name):
    if name not in hub.list_models():
        pytest.skip(f"{name} is not in saved_models/")
    return hub.load_serving(name)


def test_translation_example_sentence():
    """`zoo translate translation-gru-de-en "Ich bin in zehn Minuten da."` (README, `make demo`)."""
    import tensorflow as tf

    serving = _serving("translation-gru-de-en")
    out = serving.signatures["serving_default"](texts=tf.constant(["Ich bin in zehn Minuten da."]))
    translation = out["translations"].numpy()[0].decode("utf-8").lower()
    assert "ten minutes" in translation and translation.count("minutes") == 1, translation
    assert translation.startswith(("i'll be", "i will be", "i am", "i'm", "i’ll be", "i’m")), translation


def test_sentiment_examples_on_movie_and_product_reviews():
    import numpy as np

    from zoo.tasks import sentiment

    name = "sentiment-bilstm-mr-clothing"
    serving = _serving(name)
    texts = ["a gorgeous, witty film", "a tedious mess",
             "The fabric is soft and the fit is perfect.", "Cheap material, it fell apart after one wash."]
    probabilities = sentiment.serve_predictions(serving, texts)
    np.testing.assert_array_equal(probabilities > 0.5, [True, False, True, False])
