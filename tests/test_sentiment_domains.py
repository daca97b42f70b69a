"""Sentiment across domains: the lexicon input, the snippet sets, the baselines, the recipe's settings."""

import json

import numpy as np
import pytest

from recipe_helpers import load_recipe
from zoo.data import vader_snippets
from zoo.settings import comma_list
from zoo.tasks import sentiment


def test_lexicon_vocabulary_standardizes_like_the_word_vectorizer():
    words, valences = sentiment.lexicon_vocabulary(
        {"Good": 2.0, "good": 3.0, "can't": -1.0, ":)": 2.0, "b-)": 1.0, "no way": -2.0, "bad": -2.5})
    # "can't" -> "cant"; ":)" strips to nothing; "b-)" -> "b"; "no way" holds a space; "Good"/"good" merge.
    assert words == ["b", "bad", "cant", "good"]
    np.testing.assert_allclose(valences, [1.0, -2.5, -1.0, 2.5])


def test_lexicon_feature_is_aligned_with_the_words_and_fixed():
    import keras
    import tensorflow as tf

    model = sentiment.build_model(["a good film", "a bad one"], cell="gru", units=4, embedding_dim=4,
                                  max_tokens=50, sequence_length=6, wide=False,
                                  lexicon={"good": 3.0, "bad": -2.0, "can't": -1.0, "superb": 4.0})
    valence = keras.Model(model.inputs, model.get_layer("lexicon_valence").output)
    # "superb" never occurs in training but keeps its valence; punctuation and case are ignored.
    out = valence(tf.constant(["Superb, GOOD film!", "I can't say"])).numpy()[..., 0]
    np.testing.assert_allclose(out, [[1.0, 0.75, 0, 0, 0, 0], [0, -0.25, 0, 0, 0, 0]])
    assert not model.get_layer("lexicon_valence").trainable


def test_comma_list_check():
    check = comma_list("mr", "clothing")
    assert check.test("mr") and check.test("mr,clothing") and check.test("clothing, mr")
    assert not check.test("mr,mr") and not check.test("mr,books") and not check.test("")
    assert comma_list("mr", empty=True).test("")


def test_tfidf_logistic_fits_soft_labels_and_scores():
    texts = ["good", "great fun", "bad", "awful mess"] * 5
    baseline = sentiment.TfidfLogistic.fit((texts, np.array([0.9, 0.8, 0.1, 0.2] * 5)))
    assert baseline.score(["good fun", "bad mess"], [1, 0]) == 1.0
    assert baseline.score([], []) is None


def test_snippet_parsing_and_errors():
    raw = b"1\t1.5\tFine.\r\n2\t-0.2\tMeh \xff.\r\n3\t0\tFlat.\r\n"
    texts, scores = vader_snippets.parse_ground_truth(raw, "x.txt", 3)
    assert texts == ["Fine.", "Meh \ufffd."] + ["Flat."] and list(scores) == [1.5, -0.2, 0.0]
    with pytest.raises(ValueError, match="expected 4 lines"):
        vader_snippets.parse_ground_truth(raw, "x.txt", 4)
    with pytest.raises(ValueError, match="line 1: expected 3 tab-separated"):
        vader_snippets.parse_ground_truth(b"1 1.5 Fine.\n", "x.txt", 1)
    with pytest.raises(ValueError, match="unknown snippet set 'books'.*tweets"):
        vader_snippets.load_snippets("books")


def test_lexicon_sum_baseline():
    lexicon = {"good": 2.0, "bad": -3.0}
    result = vader_snippets.lexicon_sum_baseline(["Good, good but bad.", "BAD", "nothing"], [1, 0, 0],
                                                 lexicon=lexicon)
    assert result["accuracy"] == 1.0  # 2 + 2 - 3 > 0; -3 <= 0; 0 <= 0


def test_recipe_settings_for_domains():
    recipe = load_recipe("sentiment")
    args = recipe.parse_args(["--data", "movie-reviews"])
    assert args.data == "mr" and args.name == "sentiment-bilstm-mr"
    args = recipe.parse_args(["--data", "mr,clothing", "--held-out", "clothing,tweets"])
    assert args.held_out == "tweets" and args.name == "sentiment-bilstm-mr-clothing"
    with pytest.raises(SystemExit):
        recipe.parse_args(["--data", "mr,imdb"])
    with pytest.raises(SystemExit):
        recipe.parse_args(["--data", "mr", "--leave-one-out"])
    with pytest.raises(SystemExit):
        recipe.parse_args(["--held-out", "books"])


def _tiny_model(**kwargs):
    texts = ["a good film", "a bad film", "great fun", "awful mess", "good fun", "bad mess"] * 4
    return texts, sentiment.build_model(texts, cell="gru", units=4, embedding_dim=4, max_tokens=50,
                                        sequence_length=5, wide=True, **kwargs)


def test_residual_views_train_one_path_against_given_logits():
    import keras
    import tensorflow as tf

    texts, model = _tiny_model(lexicon={"good": 3.0}, word_dropout=0.5)
    labels = np.array([1, 0, 1, 0, 1, 0] * 4, np.float32)
    for learner, other in (("recurrent", "ngram_logit"), ("ngram", "recurrent_logit")):
        view = sentiment.residual_model(model, learner=learner)
        offsets = np.linspace(-1, 1, len(texts)).astype(np.float32)
        batch = {"text": tf.constant(texts), "other_logit": tf.constant(offsets[:, None])}
        learner_logit = keras.Model(model.inputs, model.get_layer(f"{learner}_logit").output)
        expected = 1 / (1 + np.exp(-(learner_logit(tf.constant(texts)).numpy()[:, 0] + offsets)))
        np.testing.assert_allclose(view(batch).numpy()[:, 0], expected, rtol=1e-5)
        # Training the view changes the learner's weights in `model` and not the other path's.
        before = model.get_layer(other).get_weights()[0].copy()
        mine = model.get_layer(f"{learner}_logit").get_weights()[0].copy()
        view.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
        view.fit(sentiment.residual_dataset(texts, offsets, labels, 8), epochs=2, verbose=0)
        np.testing.assert_array_equal(model.get_layer(other).get_weights()[0], before)
        assert not np.allclose(model.get_layer(f"{learner}_logit").get_weights()[0], mine)
    with pytest.raises(ValueError, match="learner must be"):
        sentiment.residual_model(model, learner="both")


def test_out_of_fold_logits_come_from_models_that_did_not_see_the_text():
    texts, model = _tiny_model()
    labels = np.array([1, 0, 1, 0, 1, 0] * 4, np.float32)
    logits = sentiment.out_of_fold_ngram_logits(model, texts, labels, folds=3, epochs=3, batch_size=8,
                                                seed=0, l2=0.0)
    assert logits.shape == (len(texts),) and np.all(np.isfinite(logits))
    again = sentiment.out_of_fold_ngram_logits(model, texts, labels, folds=3, epochs=3, batch_size=8,
                                               seed=0, l2=0.0)
    np.testing.assert_allclose(logits, again, atol=1e-6)  # seeded: a resumed run gets the same
    # The model's own n-gram path was not trained by it.
    np.testing.assert_array_equal(model.get_layer("ngram_logit").get_weights()[1], [0.0])


def test_word_dropout_only_while_training_and_never_on_padding():
    import tensorflow as tf

    from zoo.layers import WordDropout

    layer = WordDropout(rate=0.5, seed=1)
    ids = tf.constant([[5, 6, 7, 8, 0, 0]] * 200, dtype=tf.int64)
    np.testing.assert_array_equal(layer(ids, training=False), ids)
    dropped = layer(ids, training=True).numpy()
    assert np.all(dropped[:, 4:] == 0) and set(np.unique(dropped[:, :4])) <= {1, 5, 6, 7, 8}
    assert 0.4 < np.mean(dropped[:, :4] == 1) < 0.6
    with pytest.raises(ValueError, match="rate must be in"):
        WordDropout(rate=1.0)


def test_subword_vectors_line_up_with_the_word_ids_and_average_a_words_hashed_ngrams():
    import keras
    import tensorflow as tf

    from zoo.layers import HashedSubwordEmbedding

    layer = HashedSubwordEmbedding(buckets=50, dim=3, sequence_length=4, max_grams=8)
    texts = tf.constant(["Great, fit!", "", "A b c d e f"])
    words = keras.layers.TextVectorization(output_sequence_length=4)
    words.adapt(["great fit a b c d e f"])
    ids, rows = words(texts).numpy(), layer.gram_ids(texts).numpy()
    np.testing.assert_array_equal(ids > 0, rows[:, :, 0] > 0)  # a word where TextVectorization has one
    # "<a>" holds one 3-gram; "<fit>" three 3-grams, two 4-grams and itself; "<great>" 12, cut to 8
    assert [int((rows[2, 0] > 0).sum()), int((rows[0, 1] > 0).sum()), int((rows[0, 0] > 0).sum())] == [1, 6, 8]
    expected = np.asarray(tf.strings.to_hash_bucket_fast(["<fi", "fit", "it>", "<fit", "fit>", "<fit>"], 50)) + 1
    assert sorted(rows[0, 1][rows[0, 1] > 0]) == sorted(expected)
    vectors = layer(texts).numpy()
    table = layer.table.numpy()
    np.testing.assert_allclose(vectors[0, 1], table[rows[0, 1][rows[0, 1] > 0]].mean(0), rtol=1e-6)
    assert not vectors[1].any() and not vectors[0, 2:].any()  # no word, no vector
    again = HashedSubwordEmbedding.from_config(layer.get_config())
    again.build(None)
    again.set_weights(layer.get_weights())
    np.testing.assert_allclose(again(tf.constant(["unwearable mouthfeel"])), layer(tf.constant(["unwearable mouthfeel"])))
    with pytest.raises(ValueError, match="max_n must be >= min_n"):
        HashedSubwordEmbedding(min_n=4, max_n=3)


@pytest.mark.slow  # three small trainings (12 s): make test-slow
def test_validation_only_reads_no_test_split_and_no_held_out_domain(tmp_path, monkeypatch):
    from zoo.data import reviews

    recipe = load_recipe("sentiment")
    read, load_domain = [], reviews.load_domain
    monkeypatch.setattr(reviews, "load_domain", lambda name, *a, **k: read.append(name) or load_domain(name, *a, **k))
    evaluated = []
    real_evaluate = sentiment.evaluate
    monkeypatch.setattr(sentiment, "evaluate", lambda model, texts, labels: evaluated.append(list(texts))
                        or real_evaluate(model, texts, labels))
    result = recipe.main(["--data", "mr,clothing", "--no-wide", "--validation-only", "--subword-dim", "4",
                          "--max-examples", "60", "--epochs", "1", "--units", "4", "--embedding-dim", "8",
                          "--max-tokens", "300", "--output-dir", str(tmp_path / "hub"), "--run-dir",
                          str(tmp_path / "run")])
    assert set(read) <= {"mr", "clothing"} and not (tmp_path / "hub").exists()  # no held-out domain, nothing exported
    assert set(result["left_out_validation"]) == {"mr", "clothing"}
    assert result["left_out_validation"]["mr"]["trained_on"] == ["clothing"]
    domains, _ = recipe.load_domains(recipe.parse_args(["--data", "mr,clothing", "--held-out", "",
                                                        "--max-examples", "60"]))
    validation = {tuple(texts) for split in domains.values() for texts in [split["validation"][0]]}
    tests = {t for split in domains.values() for t in split["test"][0]}
    assert all(not set(texts) & tests for texts in evaluated)  # no test text was scored
    assert evaluated[0] == recipe.pooled(domains, "validation")[0]  # the model trained on both domains
    assert {tuple(texts) for texts in evaluated[1:]} == validation
    assert json.loads((tmp_path / "run" / "validation.json").read_text())["settings"]["subword_dim"] == 4


@pytest.mark.parametrize("variant", [["--no-wide"],  # the shipped model's path
                                     pytest.param(["--first", "reader"], marks=pytest.mark.slow)])
def test_recipe_variants_score_every_path(variant, tmp_path):
    """--no-wide (the shipped model's) and --first reader: the paths that are not read out of the
    model are trained apart (the n-gram path; with --no-wide the reader with an n-gram path)."""
    card = load_recipe("sentiment").main(
        [*variant, "--held-out", "amazon-snippets", "--max-examples", "120", "--epochs", "1",
         "--wide-epochs", "1", "--ngram-folds", "2", "--units", "4", "--embedding-dim", "8",
         "--max-tokens", "500", "--output-dir", str(tmp_path / "hub"), "--run-dir", str(tmp_path / "run")])
    paths = {"ngram_path_only", "recurrent_path_only"} | ({"with_ngram_path"} if "--no-wide" in variant else set())
    for entry in card["metrics"]["domains"].values():
        assert paths <= set(entry)
    if "--no-wide" in variant:
        assert card["metrics"]["domains"]["mr"]["recurrent_path_only"] == card["metrics"]["domains"]["mr"]["model"]
