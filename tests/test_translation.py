"""Translation task: tokenization, the model, in-graph decoding, the recipe, serving and the CLI."""

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recipe_helpers import ROOT, train_smoke_model

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from zoo.tasks import translation as task  # noqa: E402

SMOKE = ["--data", "ding+wesnoth", "--max-examples", "96", "--epochs", "1", "--units", "32",
         "--embedding-dim", "16", "--tie-embeddings", "--subwords", "--max-source-words", "400",
         "--max-target-words", "300", "--no-repeat-sizes", "0,2", "--length-penalties", "1.0",
         "--batch-size", "32", "--no-ablation", "--no-dictionary-ablation", "--dictionary-pairs", "300",
         "--loop-timing-sentences", "0"]  # the loop timing is tested on the toy model (eager subwords are slow)

# A tiny parallel corpus with a learnable word-for-word structure (no data download needed).
_DE = {"ich": "i", "du": "you", "wir": "we", "sehe": "see", "habe": "have", "den": "the",
       "hund": "dog", "ball": "ball", "baum": "tree", "nicht": "not"}


def toy_pairs(count=160, seed=0):
    rng = np.random.default_rng(seed)
    subjects = [("Ich", "I"), ("Du", "You"), ("Wir", "We")]
    verbs = [("sehe", "see"), ("habe", "have")]
    objects = [("Hund", "dog"), ("Ball", "ball"), ("Baum", "tree")]
    pairs = []
    for _ in range(count):
        (sd, se), (vd, ve), (od, oe) = (subjects[rng.integers(3)], verbs[rng.integers(2)],
                                        objects[rng.integers(3)])
        pairs.append((f"{sd} {vd} den {od}.", f"{se} {ve} the {oe}."))
    return pairs


# -- tokenization ----------------------------------------------------------------


@pytest.mark.parametrize("sentence", [
    "Mein Entschluss steht fest.",
    "My mind is made up.",
    "Where is it, Tom?",
    "Don't worry: it's only 5% (at most)!",
    "Das ist ein E-Mail-Programm.",
])
def test_detokenize_inverts_split_tokens(sentence):
    tokens = task.split_tokens(tf.constant([sentence])).to_tensor("")
    assert task.detokenize(tokens).numpy()[0].decode("utf-8") == sentence


def test_detokenize_empty_and_capitalizes():
    words = tf.constant([["", ""], ["über", "."], ["i", "see"]])
    assert [t.decode("utf-8") for t in task.detokenize(words).numpy()] == ["", "Über.", "I see"]


def test_split_tokens_separates_punctuation_keeps_words():
    (tokens,) = task.tokenize_python(["„Wo bist du?“, fragte er; don't go."])
    assert tokens == ["„", "Wo", "bist", "du", "?", "“", ",", "fragte", "er", ";", "don't", "go", "."]


def test_split_tokens_truncates():
    (tokens,) = task.tokenize_python(["wort " * 500], max_tokens=task.MAX_SOURCE_TOKENS)
    assert len(tokens) == task.MAX_SOURCE_TOKENS


def test_first_word_rule_lowercases_only_common_words():
    english = task.target_tokens(["He is here.", "Tom said he is here.", "Tom is here.",
                                  "I said I am here."], {})
    rule = task.first_word_rule(english)
    assert rule == {"He": "he"}


def test_vocabularies_are_deterministic_and_from_training_pairs_only():
    pairs = toy_pairs()
    first = task.build_vocabularies(pairs)
    second = task.build_vocabularies(list(reversed(pairs)))
    assert first == second
    source_words, target_words, _ = first
    assert target_words[:4] == ["", "[UNK]", "<s>", "</s>"]
    assert "hund" in source_words and "Hund" not in source_words  # source is lower-cased
    assert "dog" in target_words


def test_encode_targets_rows():
    _, target_words, rule = task.build_vocabularies(toy_pairs())
    inputs, targets, weights = task.encode_targets(["I see the zebra."], target_words, rule)
    index = {w: i for i, w in enumerate(target_words)}
    words = ["i" if "i" in index else "I", "see", "the"]
    assert inputs[0, 0] == task.BOS
    assert list(targets[0, :3]) == [index[w] for w in words]
    assert targets[0, 3] == task.UNK and targets[0, 5] == task.EOS
    assert weights[0].sum() == 6


def test_lexicon_prefers_words_of_the_training_english_and_strips_endings():
    entries = [("Bad", "swim"), ("Bad", "bath"), ("Hund", "dog"), ("ursprünglich", "original"),
               ("zwei Wörter", "two words")]
    train = [("Das Bad ist kalt.", "The bath is cold."), ("Ein Bad.", "A bath.")]
    lexicon = task.build_lexicon(entries, train)
    assert lexicon == {"bad": "bath", "hund": "dog", "ursprünglich": "original"}
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(lexicon)), tf.constant(list(lexicon.values()))),
        default_value="")
    found = task.lookup_lexicon(table, tf.constant(["Hunde", "ursprünglichen", "BAD", "Tom", "es"]))
    assert [w.decode() for w in found.numpy()] == ["dog", "original", "bath", "", ""]


def test_dictionary_pairs_selection_prefers_training_words():
    entries = [("Hund", "dog"), ("Zebra", "zebra"), ("Baum", "tree"), ("Qualle", "jellyfish")]
    chosen = task.select_dictionary_pairs(entries, [("Der Hund und der Baum.", "The dog and the tree.")], 2)
    assert sorted(chosen) == [("Baum", "tree"), ("Hund", "dog")]


# -- model and decoding ------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_model():
    import keras

    keras.utils.set_random_seed(3)
    pairs = toy_pairs()
    model = task.build_model(pairs, cell="gru", attention="additive", embedding_dim=16, units=32,
                             dropout=0.0, min_count=1)
    task.compile_model(model, learning_rate=1e-2)
    model.fit(task.make_dataset(model, pairs, batch_size=32, shuffle=True), epochs=12, verbose=0)
    return model, pairs


def test_tied_embedding_model_learns_and_shares_one_matrix(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    pairs = toy_pairs()
    model = task.build_model(pairs, cell="gru", attention="additive", embedding_dim=16, units=32,
                             dropout=0.0, min_count=1, tie_embeddings=True)
    names = [layer.name for layer in model.layers]
    assert "next_word" not in names and isinstance(model.get_layer("target_embedding"), task.TiedWordEmbedding)
    tied = model.get_layer("target_embedding")
    # logits = (x W_p + b_p) E^T + b, with E the very matrix the decoder's inputs are read from
    x = np.random.default_rng(0).normal(size=(2, 32)).astype("float32")
    expected = (x @ np.array(tied.projection) + np.array(tied.projection_bias)) @ np.array(tied.embeddings).T
    np.testing.assert_allclose(np.array(tied(x)), expected + np.array(tied.bias), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(tied(np.array([[4, 5]], "int32")))[0],
                               np.array(tied.embeddings)[[4, 5]])
    untied = task.build_model(pairs, cell="gru", attention="additive", embedding_dim=16, units=32, min_count=1)
    words = len(tied.vocabulary)
    assert untied.count_params() - model.count_params() == words * 32 + words - (32 * 16 + 16 + words)
    # (that a tied decoder learns is checked by the subword test below, which ties too)
    model.save(tmp_path / "tied.keras")
    loaded = keras.saving.load_model(tmp_path / "tied.keras")
    np.testing.assert_allclose(np.array(loaded.get_layer("target_embedding")(x)), np.array(tied(x)), rtol=1e-6)


@pytest.mark.slow  # 15 s of training; the fast smoke run (SMOKE) trains, exports and serves with --subwords
def test_subword_model_learns_unseen_words_piece_by_piece(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    pairs = toy_pairs()
    model = task.build_model(pairs, cell="gru", attention="additive", embedding_dim=32, units=32,
                             dropout=0.0, min_count=1, tie_embeddings=True, subwords=True,
                             max_source_words=60, max_target_words=60)
    assert task.writes_subwords(model) and "source_pieces" in [layer.name for layer in model.layers]
    source_pieces, target_pieces, _ = task.model_vocabularies(model)
    assert len(source_pieces) <= 60 and len(target_pieces) <= 60
    # a word never seen in training ("hall") is written in pieces, not as [UNK]
    inputs, targets, weights = task.encode_targets(["We see the hall."], target_pieces, {}, subwords=True)
    pieces = [target_pieces[i] for i in targets[0] if i not in (task.PAD, task.EOS)]
    assert task.UNK not in targets[0] and "".join(p.replace("##", "") for p in pieces) == "Weseethehall."
    task.compile_model(model, learning_rate=1e-2)
    model.fit(task.make_dataset(model, pairs, batch_size=32, shuffle=True), epochs=24, verbose=0)
    assert task.translate(model, ["Wir haben den Ball.", "Ich sehe den Baum."], beam_width=2) == [
        "We have the ball.", "I see the tree."]
    (result,) = task.translate(model, ["Ich sehe den Baum."], beam_width=2, details=True)
    assert all(piece for piece in result["source_tokens"])  # the pieces the attention looked at
    model.save(tmp_path / "pieces.keras")
    loaded = keras.saving.load_model(tmp_path / "pieces.keras")
    assert task.translate(loaded, ["Ich sehe den Baum."], beam_width=2) == ["I see the tree."]


def test_compare_with_ibm_applies_the_floor_of_each_split():
    metrics = {"validation": {"bleu_beam4": 9.0, "chrf_beam4": 30.0},
               "test": {"bleu_beam4": 14.0, "chrf_beam4": 35.0},
               "wesnoth-did": {"bleu_beam4": 15.0, "chrf_beam4": 31.0}}
    baselines = {split: {"ibm_model1": {"bleu": 7.0, "chrf": 32.0}} for split in metrics}
    rows = task.compare_with_ibm(metrics, baselines, beam_width=4)
    assert set(rows) == {"test", "wesnoth-did"}
    assert rows["test"]["bleu_ratio_to_ibm_model1"] == 2.0 and rows["test"]["meets_floor"]
    assert rows["wesnoth-did"]["floor_ratio"] == 1.5
    assert not rows["wesnoth-did"]["meets_floor"]  # BLEU 2.14x, but chrF below IBM Model 1's


def test_choose_decoding_tries_no_repeat_sizes_after_the_length_penalty(toy_model):
    model, pairs = toy_model
    alpha, size, alpha_scores, size_scores = task.choose_decoding(model, pairs[:20], [0.0, 1.0], [0, 2],
                                                                  beam_width=2)
    assert set(alpha_scores) == {0.0, 1.0} and set(size_scores) == {0, 2}
    assert alpha in alpha_scores and size in size_scores
    assert size_scores[0] == alpha_scores[alpha]


def test_toy_model_learns_to_translate(toy_model):
    model, pairs = toy_model
    out = task.translate(model, ["Wir haben den Ball.", "Ich sehe den Baum."], beam_width=1)
    assert out == ["We have the ball.", "I see the tree."]


def test_in_graph_greedy_equals_python_loop_decoder(toy_model):
    model, pairs = toy_model
    texts = [de for de, _ in pairs[:5]] + ["Du siehst den Hund nicht."]
    translator = task.Translator(model)
    graph = translator._decode(tf.constant(texts), "greedy", 1, 12)
    loop = task.python_loop_greedy(model, texts, 12)
    index = {w: i for i, w in enumerate(model.get_layer("next_word").vocabulary)}
    lengths = graph["lengths"].numpy()
    for row, length, tokens in zip(loop, lengths, graph["target_tokens"].numpy()):
        expected = [int(t) for t in row[:length]]
        got = [index.get(w.decode("utf-8"), task.UNK) for w in tokens[:length]]
        assert got == expected


def test_python_loop_timing_reports_both_rates(toy_model):
    model, pairs = toy_model
    timing = task.python_loop_speedup(model, [de for de, _ in pairs], count=2)
    assert timing["in_graph_sentences_per_second"] > 0 and timing["python_loop_sentences_per_second"] > 0
    assert timing["speedup"] > 0 and "2 test sentences" in timing["method"]


def test_unknown_words_are_copied_from_the_source(toy_model):
    model, _ = toy_model
    result = task.translate(model, ["Ich sehe den Zebrastreifen."], beam_width=1, details=True)[0]
    assert result["source_tokens"] == ["Ich", "sehe", "den", "Zebrastreifen", "."]
    attention = result["attention"]
    assert attention.shape == (len(result["target_tokens"]), 5)
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    # the unknown German noun is either translated as [UNK] and copied, or not produced at all
    assert "[UNK]" not in result["translation"]


def test_beam_one_equals_greedy_and_beam_scores_are_finite(toy_model):
    model, pairs = toy_model
    texts = [de for de, _ in pairs[:6]]
    translator = task.Translator(model)
    greedy = translator.translate_greedy(tf.constant(texts), tf.constant(12))
    beam1 = translator.translate(tf.constant(texts), tf.constant(1), tf.constant(12))
    assert list(greedy["translations"].numpy()) == list(beam1["translations"].numpy())
    beam4 = translator.translate(tf.constant(texts), tf.constant(4), tf.constant(12))
    assert np.all(np.isfinite(beam4["scores"].numpy()))


#: One character of every Unicode general category a str can hold (no surrogates), control
#: characters (NUL among them) included.
CODE_POINT_CLASSES = {
    "Lu": "Ä", "Ll": "ß", "Lt": "ǅ", "Lm": "ʰ", "Lo": "中", "Mn": "\u0301", "Mc": "\u0903", "Me": "\u20dd",
    "Nd": "٣", "Nl": "Ⅻ", "No": "½", "Pc": "_", "Pd": "–", "Ps": "(", "Pe": ")", "Pi": "«", "Pf": "»",
    "Po": "!", "Sm": "+", "Sc": "€", "Sk": "^", "So": "☺", "Zs": "\u3000", "Zl": "\u2028", "Zp": "\u2029",
    "Cc-NUL": "\x00", "Cc-SOH": "\x01", "Cc-US": "\x1f", "Cc-DEL": "\x7f", "Cf": "\u200b", "Co": "\ue000",
    "Cn": "\U000e0080",
}


def test_every_code_point_class_tokenizes_alike_in_both_paths_and_translates(toy_model):
    import unicodedata

    model, _ = toy_model
    for name, char in CODE_POINT_CLASSES.items():
        assert unicodedata.category(char) == name.split("-")[0], name
    texts = [f"Guten{char}Morgen {char} Hund" for char in CODE_POINT_CLASSES.values()]
    raw = task.split_tokens(tf.constant(texts)).row_lengths().numpy()
    lowered = task.split_tokens(tf.strings.lower(task.tokenizable_text(tf.constant(texts)), encoding="utf-8"))
    np.testing.assert_array_equal(lowered.row_lengths().numpy(), raw)
    # the whole batch translates (a NUL in one text used to fail every text of the batch)
    translator = task.Translator(model)
    out = translator.translate(tf.constant(texts), tf.constant(2), tf.constant(8))["translations"].numpy()
    assert len(out) == len(texts)
    assert len(task.translate(model, texts, beam_width=1, max_length=8)) == len(texts)
    not_utf8 = translator.translate(tf.constant([b"caf\xff \x00 Hund"]), tf.constant(1), tf.constant(5))
    assert not_utf8["translations"].shape == (1,)


def test_empty_batches_give_empty_results(toy_model):
    model, _ = toy_model
    translator = task.Translator(model)
    empty = tf.constant([], tf.string)
    assert translator.serve(empty)["translations"].shape == (0,)
    result = translator.translate(empty, tf.constant(3), tf.constant(5))
    assert result["translations"].shape == (0,) and result["attention"].shape[0] == 0
    assert translator.translate_greedy(empty, tf.constant(5))["scores"].shape == (0,)
    many = ["Ich sehe Hund"] * (task.MAX_SIGNATURE_BATCH + 3)
    assert len(task.translate(model, many, beam_width=1, max_length=4)) == len(many)  # chunked for the caller
    too_many = tf.constant(["Hund"] * (task.MAX_SIGNATURE_BATCH + 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at most {task.MAX_SIGNATURE_BATCH} texts"):
        translator.translate_greedy(too_many, tf.constant(3))


def test_bad_inputs_get_clear_errors_or_defined_results(toy_model):
    model, _ = toy_model
    assert task.translate(model, ["", "   "], beam_width=2) == ["", ""]
    long_text = " ".join(["Hund"] * 10_000)
    (result,) = task.translate(model, [long_text], beam_width=1, max_length=5, details=True)
    assert len(result["source_tokens"]) == task.MAX_SOURCE_TOKENS
    with pytest.raises(ValueError, match="beam_width"):
        task.translate(model, ["Ich sehe."], beam_width=0)
    with pytest.raises(ValueError, match="max_length"):
        task.translate(model, ["Ich sehe."], max_length=0)
    with pytest.raises(ValueError, match="max_length"):
        task.translate(model, ["Ich sehe."], max_length=100_000)
    with pytest.raises(ValueError, match="text 1 must be a string"):
        task.translate(model, ["Ich sehe.", 3])
    translator = task.Translator(model)
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_width must be >= 1"):
        translator.translate(tf.constant(["Ich sehe."]), tf.constant(0), tf.constant(5))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_length must be <="):
        translator.translate(tf.constant(["Ich sehe."]), tf.constant(2), tf.constant(10_000))


def test_keras_round_trip_and_fine_tuning(toy_model, tmp_path):
    import keras

    model, pairs = toy_model
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    batch = {"source": tf.constant(["Ich sehe den Hund."]), "target_in": tf.constant([[task.BOS, 4, 5]])}
    np.testing.assert_allclose(model(batch), loaded(batch), atol=1e-5)
    assert task.model_vocabularies(loaded) == task.model_vocabularies(model)
    # fine-tune on new pairs with the model's own vocabulary: the loss on them goes down
    new_pairs = [("Ich habe den Hund nicht.", "I do not have the dog.")] * 32
    data = task.make_dataset(loaded, new_pairs, batch_size=16)
    task.compile_model(loaded, learning_rate=1e-2)
    before = loaded.evaluate(data, verbose=0)[0]
    loaded.fit(data, epochs=3, verbose=0)
    assert loaded.evaluate(data, verbose=0)[0] < before


def test_attention_map_png(toy_model, tmp_path):
    model, _ = toy_model
    (result,) = task.translate(model, ["Ich sehe den Hund."], beam_width=2, details=True)
    path = task.attention_map_png(result, tmp_path / "map.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the recipe, the exported model, the CLI -----------------------------------------


@pytest.fixture(scope="module")
def smoke_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    try:
        card = train_smoke_model("translation", SMOKE, "translation-smoke", root)
    except Exception as error:  # the dictionary package cannot be fetched on this machine
        from zoo.data.cache import DataUnavailableError

        if isinstance(error, DataUnavailableError):
            pytest.skip(f"translation data unavailable: {error}")
        raise
    return root, card


def test_recipe_smoke_card(smoke_hub):
    root, card = smoke_hub
    assert card["task"] == "translation"
    for split in ("validation", "test"):
        for key in ("bleu_greedy", "chrf_greedy", "bleu_beam4", "chrf_beam4"):
            assert np.isfinite(card["metrics"][split][key])
    assert set(card["baselines"]["test"]) == {"copy", "ibm_model1", "nearest_neighbour"}
    # the held-out campaigns and the seen campaigns' test split are scored beside IBM Model 1
    assert {"wesnoth-test", "wesnoth-did", "wesnoth-sotbe"} <= set(card["metrics"])
    assert set(card["comparison"]["by_split"]) == {"test", "wesnoth-test", "wesnoth-did", "wesnoth-sotbe"}
    assert card["dataset"]["held_out_domains"] == ["wesnoth-did", "wesnoth-sotbe"]
    assert card["decoding"]["no_repeat_ngram_size"] in (0, 2)
    assert "python_loop_comparison" not in card["throughput"]  # --loop-timing-sentences 0 skips it
    assert (root / "translation-smoke" / "saved_model" / "saved_model.pb").exists()
    json.loads((root / "translation-smoke" / "card.json").read_text())  # strict JSON


def test_saved_model_runs_in_a_fresh_process_without_zoo(smoke_hub):
    root, _ = smoke_hub
    script = textwrap.dedent(f"""
        import sys, tensorflow as tf
        serving = tf.saved_model.load({str(root / 'translation-smoke' / 'saved_model')!r})
        texts = tf.constant(["Ich bin müde.", "", "Wo ist der Bahnhof?"])
        out = serving.signatures["serving_default"](texts=texts)
        assert out["translations"].shape == (3,) and out["scores"].dtype == tf.float32
        assert out["translations"].numpy()[1] == b""
        full = serving.signatures["translate"](texts=texts, beam_width=tf.constant(3),
                                               max_length=tf.constant(9))
        assert full["attention"].shape[0] == 3 and full["attention"].shape[1] <= 9
        assert full["source_tokens"].numpy()[2][0].startswith(b"w")  # the smoke model reads lower-cased pieces
        greedy = serving.signatures["translate_greedy"](texts=texts, max_length=tf.constant(9))
        assert greedy["translations"].shape == (3,)
        assert not any(name.startswith("zoo") for name in sys.modules), "zoo was imported"
        print("ok")
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd=str(root), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_zoo_translate_cli(smoke_hub, tmp_path, monkeypatch, capsys):
    root, _ = smoke_hub
    from zoo import cli  # in this process (no second TensorFlow start-up): `python -m zoo.cli` itself
                         # runs in the sentiment and serving tests

    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    capsys.readouterr()
    assert cli.main(["translate", "translation-smoke", "Ich bin müde.", "Wo ist der Bahnhof?", "--beam", "2",
                     "--attention-map", str(tmp_path / "a.png")]) in (0, None)
    assert len(capsys.readouterr().out.splitlines()) == 2  # one line per text (an untrained model may write "")
    assert (tmp_path / "a-1.png").exists() and (tmp_path / "a-2.png").exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ich bin müde.\n\nGuten Morgen!\n"))
    assert cli.main(["translate", "translation-smoke"]) in (0, None)
    assert len(capsys.readouterr().out.splitlines()) == 3  # one output line per input line, blank stays blank
    assert cli.main(["translate", "translation-smoke", "Hallo.", "--beam", "0"]) == 2
    assert "beam" in capsys.readouterr().err


def test_every_signature_runs_under_the_tf1_session_loader(smoke_hub, monkeypatch):
    from serving_helpers import check_session_loader

    root, _ = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    check_session_loader("translation-smoke")


def test_saved_model_stores_every_weight_once(smoke_hub):
    from serving_helpers import assert_weights_saved_once

    root, card = smoke_hub
    assert_weights_saved_once(root / "translation-smoke" / "saved_model", card["parameters"])


def test_verify_reproduces_the_smoke_card(smoke_hub, monkeypatch, capsys):
    from zoo import cli  # in process, as the other tasks' verify tests (no second TensorFlow start-up)

    root, _ = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    code = cli.main(["verify", "translation-smoke"])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    assert "card metrics reproduced" in out


@pytest.mark.slow  # the fast suite checks resume on sentiment and on a tiny model (test_training.py)
def test_recipe_resumes_after_a_kill(tmp_path):
    options = ["--max-examples", "120", "--epochs", "3", "--units", "16", "--embedding-dim", "8",
               "--no-ablation", "--no-dictionary-ablation", "--dictionary-pairs", "0", "--patience", "5", "--name", "translation-resume",
               "--output-dir", str(tmp_path), "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "ZOO_KILL_AFTER_EPOCH": "run:1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(ROOT / "recipes" / "translation.py"), *options]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    if "DataUnavailableError" in killed.stderr:
        pytest.skip("translation data unavailable")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "run" / "resume").exists()
    env.pop("ZOO_KILL_AFTER_EPOCH")
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from the checkpoint" in resumed.stdout
    card = json.loads((tmp_path / "translation-resume" / "card.json").read_text())
    assert card["training"]["resumed"] is True and card["training"]["epochs_run"] == 3


def test_smoothed_cross_entropy_matches_numpy_and_round_trips():
    from zoo.tasks.word_decoding import SmoothedSparseCrossentropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    targets = rng.integers(0, 5, size=(2, 3))
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    smoothed = 0.9 * np.eye(5)[targets] + 0.1 / 5
    per_position = -(smoothed * log_probs).sum(-1)
    expected = (per_position * weights).sum() / weights.sum()
    loss = SmoothedSparseCrossentropy(0.1)
    np.testing.assert_allclose(float(loss(targets, logits, sample_weight=weights)), expected, rtol=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    np.testing.assert_allclose(float(SmoothedSparseCrossentropy(0.0)(targets, logits, sample_weight=weights)),
                               float(plain(targets, logits, sample_weight=weights)), rtol=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SmoothedSparseCrossentropy) and again.label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        SmoothedSparseCrossentropy(1.0)
