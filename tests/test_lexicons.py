"""External word lexicons (zoo.data.lexicons) and the tagger's character reader trained on them."""

import gzip
import json
import zipfile

import numpy as np
import pytest

from zoo.data import lexicons
from tagging_helpers import train_tiny_tagger


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory):
    """A wheel-shaped zip holding the two members the module reads, with a few entries each."""
    path = tmp_path_factory.mktemp("lexicons") / "spacy_lookups_data-0-py3-none-any.whl"
    members = {
        lexicons.LEXICONS["en"][0]: {"the": 11, "cat": 601, "dog": 601, "qzx": 0, "": 3},
        lexicons.LEXICONS["pt"][0]: {"falou": "falar", "casa": "casa", "Casas": "casa", "vazio": ""},
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, table in members.items():
            archive.writestr(member, gzip.compress(json.dumps(table).encode("utf-8")))
    return path


def test_english_classes_are_clusters_and_unclustered_words_are_left_out(fake_wheel):
    assert lexicons.word_classes("en", wheel=fake_wheel) == {"the": "c11", "cat": "c601", "dog": "c601"}


def test_portuguese_classes_are_the_lemma_ending_and_whether_the_form_is_its_lemma(fake_wheel):
    assert lexicons.word_classes("pt", wheel=fake_wheel) == {"falou": "ar~", "casa": "sa=", "Casas": "sa~"}
    assert lexicons.lemma_class("Casa", "casa") == "sa="
    with pytest.raises(ValueError, match="empty lemma"):
        lexicons.lemma_class("x", "")
    with pytest.raises(ValueError, match="no lexicon for 'de'"):
        lexicons.word_classes("de", wheel=fake_wheel)


def test_lexicon_sample_caps_each_class_and_is_seeded():
    from zoo.tasks import tagging

    classes = {f"v{i}": "ar~" for i in range(50)} | {"casa": "sa=", "mesa": "sa="}
    words, ids, names = tagging.lexicon_sample(classes, per_class=10, seed=3)
    assert names == ["ar~", "sa="] and len(words) == 12 and len(set(words)) == 12
    assert np.bincount(ids).tolist() == [10, 2]
    assert all(classes[w] == names[i] for w, i in zip(words, ids))
    again = tagging.lexicon_sample(classes, per_class=10, seed=3)
    assert again[0] == words and np.array_equal(again[1], ids)
    assert tagging.lexicon_sample(classes, per_class=10, seed=4)[0] != words


def test_pretraining_teaches_the_taggers_own_character_reader_and_nothing_else():
    from zoo.tasks import tagging

    model, split, _ = train_tiny_tagger(epochs=1)
    reader = model.get_layer("character_encoder")
    before = [w.copy() for w in reader.get_weights()]
    words_before = model.get_layer("word_embedding").get_weights()[0].copy()
    lexicon = {w: ("ed" if w.endswith("ed") else "s" if w.endswith("s") else "other")
               for w in ["walked", "jumped", "talked", "cats", "dogs", "runs", "tree", "blue", "fast", "played"]}
    info = tagging.pretrain_character_reader(model, lexicon, epochs=2, batch_size=4, seed=0, verbose=0)
    assert info["words"] == 10 and info["classes"] == 3 and info["epochs"] == 2 and 0 <= info["accuracy"] <= 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, reader.get_weights()))
    np.testing.assert_array_equal(model.get_layer("word_embedding").get_weights()[0], words_before)
    assert len(tagging.predict(model, split.words[:2])) == 2  # still the tagger, same inputs and outputs
    with pytest.raises(ValueError, match="word_classes is empty"):
        tagging.pretrain_character_reader(model, {}, epochs=1)
    words_only = tagging.build_model(split.words, tagging.tag_vocabularies(split), units=4, word_dim=4,
                                     characters=False)
    with pytest.raises(ValueError, match="characters=True"):
        tagging.pretrain_character_reader(words_only, lexicon, epochs=1)


@pytest.mark.slow
def test_real_lexicons_have_the_documented_sizes():
    english, portuguese = lexicons.word_classes("en"), lexicons.word_classes("pt")
    assert (len(english), len(set(english.values()))) == (190129, 999)
    assert (len(portuguese), len(set(portuguese.values()))) == (824767, 379)
    assert portuguese["falou"] == "ar~"
