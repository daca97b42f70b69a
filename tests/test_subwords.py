"""Subword units (zoo.tasks.subwords): the merge learner, greedy longest match in Python and in the graph."""

import random

import numpy as np
import pytest
import tensorflow as tf

from zoo.tasks import subwords as sw

COUNTS = {"low": 5, "lower": 2, "newest": 6, "widest": 3, "wider": 2}


def test_learner_merges_the_most_frequent_pair_first_and_is_deterministic():
    pieces = sw.learn_subwords(COUNTS, 40, min_count=1)
    characters = [p for p in pieces if len(p.replace(sw.CONTINUATION, "")) == 1]
    assert pieces[: len(characters)] == characters  # characters first
    merged = pieces[len(characters):]
    # "##e ##s" and "##s ##t" both occur 9 times (newest 6 + widest 3): the tie goes to the
    # alphabetically first pair, then "##es ##t" (9) is the most frequent pair.
    assert merged[:2] == ["##es", "##est"]
    assert sw.learn_subwords(COUNTS, 40, min_count=1) == pieces
    assert len(sw.learn_subwords(COUNTS, 12, min_count=1)) == 12


def test_every_word_is_cut_into_pieces_that_join_back():
    pieces = sw.learn_subwords(COUNTS, 30, min_count=1)
    for word, cut in zip(COUNTS, sw.segment_words(COUNTS, pieces)):
        assert all(p in pieces for p in cut)
        assert sw.join_pieces(cut) == [word]
    assert sw.segment_words(["lowest"], pieces + ["low", "##est"]) == [["low", "##est"]]
    # a character no piece covers is [UNK] on its own; the rest is still cut
    assert sw.segment_words(["lqw"], ["l", "##w"]) == [["l", sw.UNKNOWN_PIECE, "##w"]]


def test_join_pieces_starts_a_word_at_every_piece_without_the_prefix():
    assert sw.join_pieces(["dr", "##achen", "reiter", "##s"]) == ["drachen", "reiters"]
    assert sw.join_pieces(["##x", "y"]) == ["x", "y"]


def test_bad_size_is_a_clear_error():
    with pytest.raises(ValueError, match="size must be >= 1"):
        sw.learn_subwords(COUNTS, 0)


def test_the_graph_cuts_words_as_python_does():
    rng = random.Random(0)
    alphabet = "abcdeäöüßxyz"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(300)]
    counts = {w: rng.randint(1, 9) for w in words}
    pieces = sw.learn_subwords(counts, 120, min_count=1)
    pieces = [p for p in pieces if "z" not in p]  # some characters without a piece: [UNK]
    layer = sw.SubwordSegmenter(pieces)
    rows = [rng.sample(words, 5) + [""] * rng.randint(0, 2) for _ in range(40)]
    rows.append(["q" * 30, "a" * (sw.MAX_WORD_CHARACTERS + 3), "", "", "", "", ""])  # long words are cut
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    out = layer(tf.constant(rows)).numpy()
    for row, got in zip(rows, out):
        expected = [p for cut in sw.segment_words([w for w in row if w], pieces) for p in cut]
        assert [g.decode() for g in got if g] == expected
    # an all-padding batch still gives one column
    assert layer(tf.constant([["", ""]])).shape == (1, 1)


def test_segmenter_saves_and_loads_in_a_model(tmp_path):
    import keras

    pieces = sw.learn_subwords(COUNTS, 30, min_count=1)
    words = keras.Input(shape=(None,), dtype="string")
    model = keras.Model(words, sw.SubwordSegmenter(pieces, max_pieces=4)(words))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    sample = tf.constant([["newest", "lower", "widest", "low", "wider"]])
    np.testing.assert_array_equal(loaded(sample).numpy(), model(sample).numpy())
    assert loaded(sample).shape[1] == 4  # max_pieces cuts the row
