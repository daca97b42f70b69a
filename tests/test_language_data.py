"""Language-model data: Mikolov's PTB token counts, Shakespeare split by whole works."""

import pytest

from zoo.data import language


@pytest.fixture(scope="module", autouse=True)
def _read_brown_once(brown_read_once):
    """Brown is parsed once per test process (see conftest.brown_read_once)."""


def test_ptb_has_the_standard_token_counts_and_vocabulary():
    splits = language.load_ptb()
    assert {k: len(v) for k, v in splits.items()} == {"train": 929589, "validation": 73760, "test": 82430}
    assert len(set(splits["train"])) == 10000 and "<unk>" in splits["train"]
    assert set(splits["test"]) <= set(splits["train"])


def test_ptb_lines_become_words_and_eos():
    assert language.ptb_tokens(" a b \n\n c \n") == ["a", "b", "<eos>", "c", "<eos>"]


def test_shakespeare_splits_by_whole_plays_and_keeps_the_poems_in_training():
    works = language.shakespeare_works()
    assert len(works) == 42 and sum(len(t) for t in works.values()) == pytest.approx(5.06e6, rel=0.01)
    splits = language.load_shakespeare(seed=1337)
    names = [set(s) for s in splits.values()]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert set(language.POEMS) <= names[0]
    assert len(splits["validation"]) == 3 and len(splits["test"]) == 3
    with pytest.raises(ValueError, match="must leave plays to train on"):
        language.load_shakespeare(validation_plays=20, test_plays=20, works=works)


def test_brown_text_is_running_text_for_the_character_model():
    assert language.brown_plain_text([["He", "said", ",", "``", "Go", "(", "now", ")", "!", "''"], ["Yes", "."]]) == (
        'He said, "Go (now)!"\nYes.\n')


def test_the_out_of_domain_sample_is_one_document_per_brown_genre():
    from zoo.data.tagging import TaggedSentences

    corpus = TaggedSentences([["a"], ["b"], ["c"], ["d"]], {"brown": [["X"]] * 4}, ["ca01", "ca01", "ca02", "cb01"],
                             ["news", "news", "news", "editorial"])
    assert language.brown_sample(corpus) == [["a"], ["b"], ["d"]]
    sample = language.brown_sample()
    assert len(sample) == 1811 and sum(len(s) for s in sample) == 35002
