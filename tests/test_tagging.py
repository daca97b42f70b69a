"""Part-of-speech tagging: data readers and tag mapping, tokeniser, model invariances, baselines,
serving, `zoo tag`, bad input, and a recipe smoke run that `zoo verify` reproduces."""

import json

import numpy as np
import pytest

from zoo import cli, hub
from zoo.data import tagging as data
from zoo.tasks import tagging, tagging_baselines as baselines
from recipe_helpers import smoke_hub_fixtures
from serving_helpers import assert_weights_saved_once, check_session_loader
from tagging_helpers import train_tiny_tagger

SMOKE = "tagging-smoke"
SMOKE_OPTIONS = ["--max-sentences", "120", "--epochs", "1", "--units", "8", "--char-units", "4",
                 "--word-dim", "8", "--char-dim", "4", "--crf-iterations", "5", "--heldout-genres", "humor",
                 "--suffix-length", "2", "--suffix-dim", "3", "--shape"]

smoke_hub, use_hub = smoke_hub_fixtures("tagging", SMOKE_OPTIONS, SMOKE)


@pytest.fixture(scope="module", autouse=True)
def _read_brown_once(brown_read_once):
    """Brown is parsed once per test process (see conftest.brown_read_once)."""


# -- the Brown-to-universal rule -------------------------------------------------------


@pytest.mark.parametrize("brown, universal", [
    ("NN", "NOUN"), ("NN-TL", "NOUN"), ("NP$", "NOUN"), ("NNS-HL", "NOUN"), ("NP-TL-HL", "NOUN"),
    ("PPS+BEZ", "PRON"), ("MD*", "VERB"), ("BEZ*", "VERB"), ("DOD*", "VERB"), ("*", "ADV"),
    ("FW-NN", "X"), ("FW-IN+AT-TL", "X"), ("PP$", "PRON"), ("PP$$", "PRON"), ("WP$", "PRON"),
    ("CS", "ADP"), ("IN-TL", "ADP"), ("OD", "ADJ"), ("JJT", "ADJ"), ("AT", "DET"), ("AP", "DET"),
    ("EX", "DET"), ("RP", "PRT"), ("TO", "PRT"), ("CD", "NUM"), ("CD$", "NUM"), ("``", "."), ("--", "."),
    ("UH", "X"), ("NIL", "X"), ("QL", "ADV"), ("WRB", "ADV"), ("CC", "CONJ"), ("HVD", "VERB"),
    ("no-such-tag", "X"),
])
def test_brown_tags_map_to_the_universal_tags_by_the_stated_rule(brown, universal):
    assert data.brown_to_universal(brown) == universal
    assert data.brown_to_universal(brown.lower()) == universal


def test_every_universal_tag_is_reachable():
    reached = {data.brown_to_universal(tag) for tags in data._BROWN_BASE.values() for tag in tags}
    assert reached == set(data.UNIVERSAL_TAGS)


# -- readers and splits ----------------------------------------------------------------


def test_brown_lines_split_at_the_last_slash():
    text = "\n\n\tThe/at 1/2/cd cup/nn ./.\n\n\tIt's/pps+bez over/rp\n"
    assert data.parse_brown_document(text) == [
        (["The", "1/2", "cup", "."], ["AT", "CD", "NN", "."]),
        (["It's", "over"], ["PPS+BEZ", "RP"])]
    with pytest.raises(ValueError, match="line 1: 'cup' is not word/tag"):
        data.parse_brown_document("The/at cup")


CONLLU = """# newdoc id = x
# sent_id = FOLHA_DOC000007_SENT001
# text = Moro na casa.
1\tMoro\tmorar\tVERB\t_\t_\t_\t_\t_\t_
2-3\tna\t_\t_\t_\t_\t_\t_\t_\t_
2\tem\tem\tADP\t_\t_\t_\t_\t_\t_
3\ta\to\tDET\t_\t_\t_\t_\t_\t_
4\tcasa\tcasa\tNOUN\t_\t_\t_\t_\t_\t_\textra
4.1\tx\tx\tX\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t_\t_\t_\t_\t_\t_

# sent_id = tweet_1
1\tOi\toi\tINTJ\t_\t_\t_\t_\t_\t_
"""


def test_conllu_reads_syntactic_words_and_documents():
    words, tags, documents = data.parse_conllu(CONLLU)
    assert words == [["Moro", "em", "a", "casa", "."], ["Oi"]]
    assert tags == [["VERB", "ADP", "DET", "NOUN", "PUNCT"], ["INTJ"]]
    assert documents == ["FOLHA_DOC000007", "x"]
    with pytest.raises(ValueError, match="line 2: 3 fields"):
        data.parse_conllu("# sent_id = a\n1\tx\tX\n")


def _toy_corpus():
    words, documents, groups = [], [], []
    for genre, count in (("news", 10), ("humor", 6), ("lore", 9)):
        for d in range(count):
            for s in range(3):
                words.append([f"{genre}{d}", "word", str(s)])
                documents.append(f"{genre}-{d}")
                groups.append(genre)
    tags = [["NN", "NN", "CD"] for _ in words]
    return data.TaggedSentences(words, {"brown": tags}, documents, groups, "toy")


def test_brown_splits_are_by_document_with_every_genre_in_every_split():
    splits = data.load_brown(seed=3, corpus=_toy_corpus())
    seen = [set(s.documents) for s in splits.values()]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    for split in splits.values():
        assert set(split.groups) == {"news", "humor", "lore"}
    assert sum(len(s) for s in splits.values()) == len(_toy_corpus())
    held = data.load_brown(seed=3, heldout_genres=("humor",), corpus=_toy_corpus())
    assert set(held["heldout_genres"].groups) == {"humor"} and len(held["heldout_genres"]) == 18
    assert all("humor" not in held[n].groups for n in ("train", "validation", "test"))
    with pytest.raises(ValueError, match="unknown Brown genre"):
        data.load_brown(heldout_genres=("poetry",), corpus=_toy_corpus())


def test_real_corpora_have_the_documented_sizes():
    brown = data.read_brown()
    assert (len(brown), brown.tokens(), len(set(brown.documents)), len(set(brown.groups))) == \
        (57340, 1161192, 500, 15)
    news = data.read_portuguese_set("porttinari")
    assert (len(news), news.tokens()) == (8420, 168400)
    splits = data.load_portuguese()
    assert not set(splits["train"].documents) & set(splits["test"].documents)
    assert {"petrogold", "dantestocks"} <= set(splits)


# -- tokeniser ---------------------------------------------------------------------------


def test_tokenizer_keeps_inner_hyphens_apostrophes_and_numbers_whole():
    assert tagging.tokenize(["Atlanta's well-known 1,119 (7.5%) ...so--``hi''", "", "a\x00b\u200bc"]) == [
        ["Atlanta's", "well-known", "1,119", "(", "7.5", "%", ")", "...", "so", "--", "``", "hi", "''"],
        [], ["a", "b", "c"]]


# -- model ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    model, split, _ = train_tiny_tagger(suffix_length=3, suffix_dim=4, shape=True)
    return model, split


def test_padding_does_not_change_a_sentences_tags(tiny_model):
    model, _ = tiny_model
    import tensorflow as tf

    batch = model(tf.constant([["The", "cat", "runs", "."], ["Dogs", "run", "", ""]]), training=False)
    alone = model(tf.constant([["Dogs", "run"]]), training=False)
    np.testing.assert_allclose(batch["universal"][1, :2], alone["universal"][0], atol=1e-6)


def test_word_characters_keep_the_prefix_and_the_suffix_of_long_words():
    import tensorflow as tf

    chars = tagging.WordCharacters(max_chars=6, prefix=2)(tf.constant([["antidisestablishment", "ab", ""]]))
    rows = [[c.decode() for c in row] for row in chars.numpy()[0]]
    assert rows == [list("anment"), ["a", "b", "", "", "", ""], [""] * 6]


def test_word_suffixes_are_lower_cased_endings_and_empty_past_the_word():
    import tensorflow as tf

    endings = tagging.WordSuffixes(3)(tf.constant([["Walked", "Ok", "é", ""]]))
    rows = [[e.decode() for e in row] for row in endings.numpy()[0]]
    assert rows == [["d", "ed", "ked"], ["k", "ok", ""], ["é", "", ""], ["", "", ""]]
    assert tagging.suffix_vocabulary([["walked", "Talked"], ["ok"]], 3, min_count=2) == ["d", "ed", "ked"]


def test_word_shape_marks_capitals_digits_hyphens_and_punctuation():
    import tensorflow as tf

    words = ["Paris", "NASA", "1,119", "well-known", "...", "São", "ÉCOLE", "-", "x", ""]
    shape = np.asarray(tagging.WordShape()(tf.constant([words])))[0]
    marked = {name: [w for w, row in zip(words, shape) if row[i]] for i, name in enumerate(tagging.WORD_SHAPES)}
    assert marked == {"capitalised": ["Paris", "NASA", "São", "ÉCOLE"], "all_capitals": ["NASA", "ÉCOLE"],
                      "has_digit": ["1,119"], "has_hyphen": ["well-known"], "no_letter_or_digit": ["...", "-"]}


def test_word_dropout_acts_only_in_training():
    import tensorflow as tf

    layer = tagging.WordDropout(0.5, seed=0)
    ids = tf.constant([[0, 1, 5, 6, 7, 8, 9, 10]] * 50)
    np.testing.assert_array_equal(layer(ids, training=False), ids)
    dropped = np.asarray(layer(ids, training=True))
    assert (dropped[:, :2] == ids.numpy()[:, :2]).all()  # padding and OOV stay
    assert 0.3 < (dropped[:, 2:] == 1).mean() < 0.7


def test_rare_word_dropout_drops_rare_words_most_and_only_in_training():
    import tensorflow as tf

    from zoo.layers import RareWordDropout

    counts = [0, 0, 1, 1000]  # ids 2 (seen once) and 3 (seen 1,000 times)
    layer = RareWordDropout(1.0, 4, counts=counts, seed=0)
    ids = tf.constant([[0, 1, 2, 3]] * 4000)
    np.testing.assert_array_equal(layer(ids, training=False), ids)
    dropped = np.asarray(layer(ids, training=True))
    assert (dropped[:, :2] == ids.numpy()[:, :2]).all()  # padding and unknown stay
    assert abs((dropped[:, 2] == 1).mean() - 0.5) < 0.05  # 1 / (1 + 1)
    assert (dropped[:, 3] == 1).mean() < 0.01            # 1 / (1 + 1000)
    with pytest.raises(ValueError, match="alpha"):
        RareWordDropout(0.0, 4)
    with pytest.raises(ValueError, match="counts must be 4"):
        RareWordDropout(1.0, 4, counts=[1, 2])


def test_lexicon_classes_reach_words_the_training_text_lacks(tmp_path):
    import keras
    import tensorflow as tf

    lexicon = {"The": "c9", "the": "c1", "Dogs": "c2", "dogs": "c3", "zebra": "c2", "Quokka": "c4"}
    words, class_ids, classes = tagging.lexicon_table(lexicon)
    assert classes == ["c1", "c2", "c3", "c4"]  # "The" (c9) gives way to "the"
    # lower-cased once; the lower-case form's class wins over a capitalised one
    assert dict(zip(words, class_ids)) == {"the": 1, "dogs": 3, "zebra": 2, "quokka": 4}
    train = [["The", "dog", "runs", "."]]
    model = tagging.build_model(train, {"universal": ["DET", "NOUN", "VERB", "."]}, units=4, char_units=2,
                                word_dim=4, min_count=1, lexicon=lexicon, lexicon_dim=3, rare_word_alpha=0.25)
    lookup = keras.Model(model.input, model.get_layer("lexicon_classes").output)
    found = np.asarray(lookup(tf.constant([["THE", "Zebra", "quokka", "unheard", ""]])))
    np.testing.assert_array_equal(found, [[1, 2, 4, 0, 0]])  # "unheard" is not in the lexicon; "" pads
    path = tmp_path / "tagger.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    text = tf.constant([["Zebra", "runs", "."]])
    np.testing.assert_allclose(loaded(text)["universal"], model(text)["universal"], atol=1e-6)
    np.testing.assert_array_equal(loaded.get_layer("rare_word_dropout").counts.numpy(), [0, 0, 1, 1, 1, 1])


def test_predict_and_tag_texts_answer_every_input(tiny_model):
    model, split = tiny_model
    out = tagging.predict(model, [["The", "dog"], [], ["Zyx"] * 3])
    assert [len(o["universal"][0]) for o in out] == [2, 0, 3]
    tagged = tagging.tag_texts(model, ["The dog runs.", "", "ϕ∂ \x07 日本語"])
    assert [t for t, _ in tagged[0]] == ["The", "dog", "runs", "."] and tagged[1] == []
    assert all(tags["universal"][0] in model.tag_sets["universal"] for _, tags in tagged[2])
    long = tagging.tag_texts(model, [" ".join(["dog"] * 5000)])[0]
    assert len(long) == 5000
    with pytest.raises(ValueError, match="non-blank string"):
        tagging.tag_texts(model, [["ok", " "]], pretokenized=True)


# -- baselines -------------------------------------------------------------------------------


def test_most_frequent_tag_falls_back_to_the_most_frequent_open_class_tag():
    tagger = baselines.MostFrequentTag([["the", "the", "run", "a"]], [["DET", "DET", "VERB", "DET"]], "universal")
    assert tagger.tag([["the", "run", "unseen"]]) == [["DET", "VERB", "VERB"]]


def test_crf_and_perceptron_learn_a_toy_pattern():
    words = [["the", "dog", "barks"], ["a", "cat", "meows"], ["the", "cat", "barks"]] * 10
    tags = [["DET", "NOUN", "VERB"]] * 30
    for tagger in (baselines.train_crf(words, tags, iterations=30), baselines.train_perceptron(words, tags)):
        assert tagger([["a", "dog", "meows"], []]) == [["DET", "NOUN", "VERB"], []]


def test_score_counts_unseen_words_and_groups():
    split = data.TaggedSentences([["a", "b"], ["c"]], {"u": [["X", "Y"], ["Z"]]}, ["d1", "d2"], ["g1", "g2"])
    result = baselines.score([["X", "N"], ["Z"]], split, "u", {"a", "b"})
    assert result["accuracy"] == pytest.approx(2 / 3) and result["unseen_word_accuracy"] == 1.0
    assert result["per_group"] == {"g1": 0.5, "g2": 1.0} and result["unseen_tokens"] == 1


# -- the recipe, serving and the command line -------------------------------------------------


def test_validation_only_scores_validation_and_exports_nothing(tmp_path, brown_read_once):
    from recipe_helpers import load_recipe

    options = ["--max-sentences", "20", "--epochs", "2", "--units", "4", "--char-units", "2", "--word-dim", "4",
               "--char-dim", "4", "--heldout-genres", "", "--baselines", "most_frequent", "--validation-only",
               "--average-epochs", "2",
               "--name", "tagging-choice", "--output-dir", str(tmp_path / "hub"), "--run-dir", str(tmp_path / "run")]
    result = load_recipe("tagging").main(options)
    assert {row["split"] for row in result["validation"]} == {"validation"}  # no test or other-domain rows
    assert {"model", "model_unseen", "most_frequent", "most_frequent_unseen"} <= set(result["validation"][0])
    assert not (tmp_path / "hub").exists()  # nothing exported
    saved = json.loads((tmp_path / "run" / "validation.json").read_text())
    assert saved["rows"] == result["validation"] and saved["settings"]["validation_only"] is True
    average = saved["training"]["weight_average"]  # the mean of both epochs, tried against the best one
    assert average["epochs"] == [1, 2] and isinstance(average["kept"], bool)
    assert (average["validation_loss"] < average["best_epoch_validation_loss"]) == average["kept"]


@pytest.mark.slow  # a recipe path (scoring or training twice): make test-slow
def test_document_folds_hold_out_whole_training_documents_and_export_nothing(tmp_path):
    from recipe_helpers import load_recipe

    recipe = load_recipe("tagging")
    corpus = _toy_corpus()
    splits = {"train": corpus, "validation": corpus.head(2)}
    folds = list(recipe.fold_splits(splits, 3, seed=5))
    held = [set(f["fold"].documents) for f in folds]
    assert set().union(*held) == set(corpus.documents) and sum(len(h) for h in held) == len(set(corpus.documents))
    for fold, documents in zip(folds, held):
        assert not documents & set(fold["train"].documents)  # whole documents, never in both
        assert len(fold["train"]) + len(fold["fold"]) == len(corpus)
    assert [set(f["fold"].documents) for f in recipe.fold_splits(splits, 3, seed=5)] == held  # seeded

    with pytest.raises(ValueError, match="3 folds of 2 training documents"):
        list(recipe.fold_splits({"train": corpus.head(6), "validation": corpus.head(2)}, 3, seed=5))

    args = recipe.parse_args(["--epochs", "1", "--units", "4", "--char-units", "2", "--word-dim", "4",
                              "--char-dim", "4", "--baselines", "most_frequent", "--document-folds", "2",
                              "--name", "tagging-folds", "--output-dir", str(tmp_path / "hub"),
                              "--run-dir", str(tmp_path / "run")])
    result = recipe.document_folds(splits, args)
    assert [f["fold"] for f in result["folds"]] == [1, 2]
    assert {row["split"] for f in result["folds"] for row in f["rows"]} == {"fold"}
    margins = result["summary"]["brown vs most_frequent"]["unseen_word_margins"]
    row = result["folds"][0]["rows"][0]
    assert margins[0] == round(row["model_unseen"] - row["most_frequent_unseen"], 4)
    assert not (tmp_path / "hub").exists()  # nothing exported
    assert json.loads((tmp_path / "run" / "folds.json").read_text())["summary"] == result["summary"]


def test_smoke_card_reports_model_baselines_and_transfer(smoke_hub):
    _, card = smoke_hub
    assert card["task"] == "tagging" and set(card["tag_sets"]) == {"universal", "brown"}
    for split in ("validation", "test"):
        assert 0 <= card["metrics"][split]["universal"]["unseen_word_accuracy"] <= 1
    assert set(card["baselines"]["universal"]) == {"most_frequent", "perceptron", "crf"}
    assert set(card["baselines"]["brown"]) == {"most_frequent"}  # too many tags for the costly ones
    assert card["transfer"]["heldout_genres"] == ["humor"]
    assert {r["split"] for r in card["transfer"]["rows"]} == {"test", "heldout_genres"}
    assert any("Brown test split" in v for v in card["verdicts"])


def test_verify_reproduces_the_smoke_card(use_hub, capsys):
    assert cli.main(["verify", SMOKE]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_serving_signatures_tokenise_tag_and_answer_empty_batches(use_hub):
    import tensorflow as tf

    serving = hub.load_serving(SMOKE)
    out = serving.signatures["serving_default"](texts=tf.constant(["The old man the boats.", ""]))
    assert [t.decode() for t in out["tokens"].numpy()[0]] == ["The", "old", "man", "the", "boats", "."]
    assert list(out["lengths"].numpy()) == [6, 0]
    assert all(t == b"" for t in out["universal_tags"].numpy()[1])
    assert out["brown_probabilities"].shape[:2] == (2, 6)
    empty = serving.signatures["serving_default"](texts=tf.constant([], tf.string))
    assert all(value.shape[0] == 0 for value in empty.values())
    tagged = serving.signatures["tag"](tokens=tf.constant([["Time", "flies"]]))
    assert tagged["universal_tags"].shape == (1, 2)


def test_serving_runs_under_the_tf1_session_loader_and_stores_each_weight_once(use_hub):
    check_session_loader(SMOKE)
    assert_weights_saved_once(use_hub[0] / SMOKE / "saved_model", use_hub[1]["parameters"])


def test_zoo_tag_prints_token_slash_tag_and_conllu(use_hub, capsys):
    assert cli.main(["tag", SMOKE, "The old man the boats.", "Ϙ\x01 ..."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("The/") and len(lines[0].split()) == 6
    assert cli.main(["tag", SMOKE, "Time flies", "--format", "conllu", "--tag-set", "brown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# sent_id = 1\n1\tTime\t_\t_\t")
    assert cli.main(["tag", SMOKE, "x", "--tag-set", "upos"]) == 2
    assert "--tag-set must be one of universal, brown" in capsys.readouterr().err
    assert cli.main(["tag", SMOKE, ""]) == 2


def test_zoo_tag_refuses_a_model_of_another_task(capsys):
    assert cli.main(["tag", "sentiment-bilstm-mr", "x"]) == 2  # the repository's hub
    assert "this command runs part-of-speech taggers; sentiment-bilstm-mr is a sentiment model" in \
        capsys.readouterr().err


def test_a_hub_tagger_fine_tunes_in_keras(use_hub):
    model = tagging.load_tagger(SMOKE)
    before = [np.array(w) for w in model.get_weights()]
    tagging.compile_model(model, learning_rate=1e-2)
    mine = data.TaggedSentences([["Zorblat", "runs", "."]] * 8,
                                {n: [[tags[0]] * 3] * 8 for n, tags in model.tag_sets.items()}, ["d"] * 8, ["g"] * 8)
    history = model.fit(tagging.as_dataset(mine, model.tag_sets, 4, shuffle=True, seed=0), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_load_tagger_refuses_another_tasks_model(monkeypatch):
    monkeypatch.setattr(hub, "info", lambda name: {"task": "sentiment"})
    with pytest.raises(ValueError, match="sentiment-bilstm-mr is a sentiment model, not a tagger"):
        tagging.load_tagger("sentiment-bilstm-mr")
