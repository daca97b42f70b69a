"""The linear-chain CRF (zoo.tasks.crf) against brute force over every tag sequence of tiny inputs, and a
tagger that decodes with it."""

import itertools

import numpy as np
import pytest

from zoo.tasks import crf
from tagging_helpers import train_tiny_tagger

TAGS, TIME = 3, 4
LENGTHS = [4, 2, 1, 0]  # full, padded, one token, empty


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    emissions = rng.normal(size=(len(LENGTHS), TIME, TAGS)).astype("float32")
    parameters = [rng.normal(size=s).astype("float32") for s in ((TAGS, TAGS), (TAGS,), (TAGS,))]
    mask = np.array([[t < n for t in range(TIME)] for n in LENGTHS])
    return emissions, mask, parameters


def brute_force(emissions, transitions, start, end, n):
    """Every tag sequence of length n with its score."""
    sequences = list(itertools.product(range(TAGS), repeat=n))
    scores = np.array([start[y[0]] + end[y[-1]] + sum(emissions[t, y[t]] for t in range(n))
                       + sum(transitions[y[t - 1], y[t]] for t in range(1, n)) for y in sequences])
    return sequences, scores


def test_log_partition_viterbi_and_marginals_equal_brute_force(problem):
    emissions, mask, parameters = problem
    log_z = crf.log_partition(emissions, mask, *parameters).numpy()
    paths = crf.viterbi_decode(emissions, mask, *parameters).numpy()
    marginals = crf.marginals(emissions, mask, *parameters).numpy()
    for b, n in enumerate(LENGTHS):
        if n == 0:
            assert log_z[b] == 0 and not paths[b].any() and not marginals[b].any()
            continue
        sequences, scores = brute_force(emissions[b], *parameters, n)
        np.testing.assert_allclose(log_z[b], np.logaddexp.reduce(scores), rtol=1e-5)
        assert tuple(paths[b, :n]) == sequences[int(np.argmax(scores))] and not paths[b, n:].any()
        expected = np.zeros((n, TAGS))
        for y, p in zip(sequences, np.exp(scores - np.logaddexp.reduce(scores))):
            expected[np.arange(n), y] += p
        np.testing.assert_allclose(marginals[b, :n], expected, atol=1e-5)
        assert not marginals[b, n:].any()


@pytest.fixture(scope="module")
def graph_decode(problem):
    """Viterbi, log Z and marginals in one graph of any batch size and length (traced once)."""
    import tensorflow as tf

    _, _, parameters = problem

    @tf.function(input_signature=[tf.TensorSpec([None, None, TAGS]), tf.TensorSpec([None, None], tf.bool)])
    def decode(scores, present):
        return (crf.viterbi_decode(scores, present, *parameters), crf.log_partition(scores, present, *parameters),
                crf.marginals(scores, present, *parameters))

    return decode


@pytest.mark.parametrize("time", [0, 1, 2])
def test_short_and_empty_batches_decode_in_a_graph(problem, graph_decode, time):
    emissions, mask, parameters = problem
    paths, log_z, marginals = graph_decode(emissions[:, :time], mask[:, :time])
    assert paths.shape == mask[:, :time].shape and marginals.shape == emissions[:, :time].shape
    eager = crf.viterbi_decode(emissions[:, :time], mask[:, :time], *parameters)
    np.testing.assert_array_equal(paths, eager)
    np.testing.assert_allclose(log_z, crf.log_partition(emissions[:, :time], mask[:, :time], *parameters), rtol=1e-6)


def test_sequence_score_and_likelihood_equal_brute_force(problem):
    emissions, mask, parameters = problem
    rng = np.random.default_rng(1)
    tags = rng.integers(0, TAGS, size=mask.shape)
    scores = crf.sequence_score(emissions, tags, mask, *parameters).numpy()
    nll = crf.negative_log_likelihood(emissions, tags, mask, *parameters).numpy()
    for b, n in enumerate(LENGTHS[:3]):
        sequences, all_scores = brute_force(emissions[b], *parameters, n)
        mine = all_scores[sequences.index(tuple(tags[b, :n]))]
        np.testing.assert_allclose(scores[b], mine, rtol=1e-5)
        np.testing.assert_allclose(nll[b], np.logaddexp.reduce(all_scores) - mine, rtol=1e-5)


def test_the_loss_reads_sentence_ends_from_the_sample_weights(problem):
    import keras

    emissions, mask, parameters = problem
    layer = crf.ChainCRF(TAGS)
    layer.build((None, None, TAGS))
    for variable, value in zip(layer.parameters(), parameters):
        variable.assign(value)
    tags = np.zeros(mask.shape, "int32")
    loss = crf.CRFLoss(layer)(tags, emissions, mask.astype("float32"))
    expected = crf.negative_log_likelihood(emissions, tags, mask, *parameters).numpy().sum() / mask.sum()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert isinstance(crf.CRFLoss(layer), keras.losses.Loss)


@pytest.fixture(scope="module")
def crf_tagger():
    return train_tiny_tagger(epochs=15, learning_rate=2e-2, crf=True)


def test_a_crf_tagger_learns_and_decodes_with_viterbi(crf_tagger):
    from zoo.tasks import tagging

    model, split, losses = crf_tagger
    assert list(tagging.crf_layers(model)) == ["universal"] and losses[-1] < losses[0] / 2
    predicted = tagging.predict(model, split.words[:3])
    assert [p["universal"][0] for p in predicted] == split.tags["universal"][:3]
    assert all(0 < q <= 1 for p in predicted for q in p["universal"][1])


def test_padding_does_not_change_a_crf_taggers_tags(crf_tagger):
    import tensorflow as tf

    from zoo.tasks import tagging

    model, _, _ = crf_tagger
    batch = tagging.tag_scores(model, tf.constant([["The", "cat", "runs", "."], ["Dogs", "run", "", ""]]))
    alone = tagging.tag_scores(model, tf.constant([["Dogs", "run"]]))
    np.testing.assert_array_equal(batch["universal"][0][1, :2], alone["universal"][0][0])
    np.testing.assert_allclose(batch["universal"][1][1, :2], alone["universal"][1][0], atol=1e-5)


def test_a_crf_tagger_survives_saving_and_serving(crf_tagger, tmp_path):
    import keras
    import tensorflow as tf

    from zoo.tasks import tagging

    model, split, _ = crf_tagger
    model.save(tmp_path / "tagger.keras")
    loaded = keras.models.load_model(tmp_path / "tagger.keras", compile=False)
    words = tf.constant([["The", "dog", "runs", "."]])
    np.testing.assert_array_equal(tagging.tag_scores(loaded, words)["universal"][0],
                                  tagging.tag_scores(model, words)["universal"][0])
    tagging.write_serving(model, tmp_path / "serving")
    served = tf.saved_model.load(str(tmp_path / "serving")).signatures["tag"](tokens=words)
    assert [t.decode() for t in served["universal_tags"].numpy()[0]] == split.tags["universal"][0]
