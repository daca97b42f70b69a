"""Language models: the tokeniser, the state carried across windows and chunks, exact scoring,
seeded generation on the shared engine, the serving signatures, the CLI and a smoke run of the recipe."""

import math

import numpy as np
import pytest

from zoo import cli, hub
from zoo.tasks import language_model as lm
from recipe_helpers import smoke_hub_fixtures
from serving_helpers import check_session_loader

SMOKE = "lm-smoke-ptb"
SMOKE_OPTIONS = ["--data", "ptb", "--max-tokens", "3000", "--epochs", "2", "--units", "16", "--batch-size", "4",
                 "--steps", "10", "--samples-length", "6"]
smoke_hub, use_hub = smoke_hub_fixtures("language_model", SMOKE_OPTIONS, SMOKE)


@pytest.fixture(scope="module", autouse=True)
def _read_brown_once(brown_read_once):
    """Brown is parsed once per test process (see conftest.brown_read_once)."""


WORDS = ["<pad>", "<unk>", "<eos>", "the", "cat", "sat", "n't", "'s", "N", "$", "do"]


@pytest.fixture(scope="module")
def word_codec():
    return lm.TextCodec("word", WORDS, "<eos>")


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(3)
    return lm.build_model(len(WORDS), units=8, num_layers=2, cell="lstm")


def test_word_tokeniser_follows_the_ptb_conventions(word_codec):
    assert word_codec.split(["Don't pay $1,000.50 for the cat's 3 mats, OK?\nThe end"]) == [
        ["do", "n't", "pay", "$", "N", "for", "the", "cat", "'s", "N", "mats", "ok", "<eos>", "the", "end", "<eos>"]]
    assert word_codec.split(["", "a\n"]) == [["<eos>"], ["a", "<eos>"]]
    assert list(word_codec.encode(["the", "dog"])) == [3, 1]  # unknown → <unk>
    assert word_codec.join(["the", "cat", "<eos>", "sat"]) == "the cat\nsat"


def test_the_ptb_text_passes_through_the_tokeniser_unchanged():
    from zoo.data import language

    text = language.ptb_texts()["validation"]
    lines = [line for line in text.splitlines() if line.strip()][:400]
    codec = lm.TextCodec.from_training_tokens("word", language.ptb_tokens(text), "<eos>")
    assert codec.split(["\n".join(lines)])[0] == language.ptb_tokens("\n".join(lines))


def test_character_codec_maps_rare_characters_to_unk():
    codec = lm.TextCodec.from_training_tokens("char", list("aab\nab\n~"), "\n", min_count=2)
    assert codec.vocabulary[:2] == ["<pad>", "<unk>"] and "~" not in codec.ids
    assert codec.split(["ab~é"]) == [["a", "b", "~", "é"]]
    assert list(codec.encode(["a", "~"])) == [codec.ids["a"], codec.unk_id]
    with pytest.raises(ValueError, match="must start with '<pad>'"):
        lm.TextCodec("char", ["a", "<unk>", "\n"], "\n")
    with pytest.raises(ValueError, match="lacks"):
        lm.TextCodec("char", ["<pad>", "a"], "\n")


def test_stream_windows_continue_each_row_from_the_last_window():
    ids = np.arange(1, 42)
    windows = list(lm.stream_windows(ids, batch_size=2, steps=5).as_numpy_iterator())
    assert len(windows) == 4  # rows of 20 tokens: 4 windows of 5
    (x0, y0), (x1, _) = windows[:2]
    assert list(x0[0]) == [1, 2, 3, 4, 5] and list(y0[0]) == [2, 3, 4, 5, 6]
    assert list(x1[0]) == [6, 7, 8, 9, 10] and list(x0[1]) == [21, 22, 23, 24, 25]
    with pytest.raises(ValueError, match="too few"):
        lm.stream_windows(ids[:5], batch_size=2, steps=5)


def test_stateful_training_model_equals_the_explicit_state_model(tiny_model):
    x = np.random.default_rng(0).integers(1, len(WORDS), (2, 12)).astype("int32")
    trainer = lm.build_training_model(tiny_model, batch_size=2)
    first, second = trainer(x[:, :7]), trainer(x[:, 7:])  # the state runs on from window to window
    whole = tiny_model({"tokens": x, **lm.zero_states(tiny_model, 2)})["logits"]
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    assert lm.architecture(tiny_model) == {"vocab_size": len(WORDS), "units": 8, "embedding_dim": 8,
                                           "num_layers": 2, "cell": "lstm", "dropout": 0.0, "tie": True}


def test_an_untied_model_with_a_small_embedding_reads_and_trains_alike():
    x = np.random.default_rng(4).integers(1, len(WORDS), (2, 9)).astype("int32")
    model = lm.build_model(len(WORDS), units=8, num_layers=1, cell="gru", tie=False, embedding_dim=3)
    assert lm.architecture(model)["embedding_dim"] == 3 and model.get_layer("output").units == len(WORDS)
    whole = model({"tokens": x, **lm.zero_states(model, 2)})["logits"]
    trainer = lm.build_training_model(model, batch_size=2)
    np.testing.assert_allclose(trainer(x), whole, atol=1e-5)
    logits, _ = lm.ModelReader(model).run(x, lm.ModelReader(model).zero_states(2))
    np.testing.assert_allclose(logits, whole, atol=1e-5)
    with pytest.raises(ValueError, match="tied output layer needs embedding_dim == units"):
        lm.build_model(len(WORDS), units=8, tie=True, embedding_dim=3)


def test_stream_log_likelihood_is_exact_across_chunks(tiny_model):
    import tensorflow as tf

    ids = np.random.default_rng(1).integers(1, len(WORDS), 50).astype("int32")
    chunked = lm.stream_log_likelihood(tiny_model, ids, start_id=2, chunk=7)
    # by hand: one call over the whole stream, the start token first
    inputs = np.concatenate([[2], ids[:-1]])[None]
    logits = tiny_model({"tokens": inputs, **lm.zero_states(tiny_model, 1)})["logits"][0]
    logp = tf.nn.log_softmax(logits).numpy()
    nll = -np.mean(logp[np.arange(len(ids)), ids])
    assert chunked["tokens"] == 50
    assert chunked["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert chunked["bits_per_token"] == pytest.approx(nll / math.log(2), rel=1e-5)


def test_scoring_texts_matches_the_stream_and_ignores_batch_padding(tiny_model, word_codec):
    texts = ["the cat sat", "do n't", ""]
    scored = lm.score_texts(tiny_model, word_codec, texts)
    alone = [lm.score_texts(tiny_model, word_codec, [t])[0] for t in texts]
    for together, single in zip(scored, alone):
        assert together["tokens"] == single["tokens"]
        assert together["log_prob"] == pytest.approx(single["log_prob"], abs=1e-4)
    # a budget of 2 tokens per call: longer texts go through the chunked stream, with the same result
    bounded = lm.score_texts(tiny_model, word_codec, texts, max_logits=2 * len(WORDS))
    for small, big in zip(bounded, scored):
        assert small["log_prob"] == pytest.approx(big["log_prob"], abs=1e-4) and small["tokens"] == big["tokens"]
    stream = lm.stream_log_likelihood(tiny_model, word_codec.encode(["the", "cat", "sat", "<eos>"]), 2)
    assert scored[0]["tokens"] == 4
    assert scored[0]["perplexity"] == pytest.approx(stream["perplexity"], rel=1e-4)


def test_generation_is_seeded_and_independent_of_the_other_prompts(tiny_model, word_codec):
    one = lm.generate_texts(tiny_model, word_codec, ["the cat"], max_length=6, temperature=1.0, seed=5)
    batch = lm.generate_texts(tiny_model, word_codec, ["the cat", "do n't do the cat sat"], max_length=6,
                              temperature=1.0, seed=5)
    assert batch[0] == one[0]
    assert lm.generate_texts(tiny_model, word_codec, ["the cat"], max_length=6, seed=5) == one
    assert "<pad>" not in one[0]
    greedy = lm.generate_texts(tiny_model, word_codec, [""], max_length=1, temperature=0)
    logits = tiny_model({"tokens": np.array([[2]], "int32"), **lm.zero_states(tiny_model, 1)})["logits"][0, 0]
    logits = np.array(logits)
    logits[0] = -np.inf  # padding is never chosen
    assert greedy[0] == word_codec.join([WORDS[int(np.argmax(logits))]])


def test_beam_search_continues_with_the_likeliest_sequence(tiny_model, word_codec):
    import tensorflow as tf

    greedy_text = lm.generate_texts(tiny_model, word_codec, ["the cat"], max_length=4, temperature=0)
    assert lm.generate_texts(tiny_model, word_codec, ["the cat"], max_length=4, beam_width=1,
                             temperature=0) == greedy_text
    beams = lm.generate_texts(tiny_model, word_codec, ["the cat", "sat"], max_length=4, beam_width=4)
    assert beams == lm.generate_texts(tiny_model, word_codec, ["the cat", "sat"], max_length=4, beam_width=4,
                                      seed=9)  # no sampling: the seed plays no part
    prompt = lm._left_pad(lm.prompt_token_ids(word_codec, word_codec.lookup_table(), ["the cat"]))
    greedy = lm.generate_ids(tiny_model, prompt, max_length=4, method="greedy").numpy()[0]
    beam = lm.generate_ids(tiny_model, prompt, max_length=4, method="beam", beam_width=4).numpy()[0]

    def log_prob(continuation):  # of the 4 continuation tokens after the prompt
        sequence = np.concatenate([prompt.numpy()[0], continuation])[None].astype("int32")
        logits = tiny_model({"tokens": sequence[:, :-1], **lm.zero_states(tiny_model, 1)})["logits"][0]
        logp = tf.nn.log_softmax(logits).numpy()[-4:]
        return float(sum(logp[i, t] for i, t in enumerate(continuation)))

    assert log_prob(beam) >= log_prob(greedy) - 1e-5  # a wider search finds nothing less likely
    with pytest.raises(ValueError, match="beam width must be"):
        lm.generate_texts(tiny_model, word_codec, ["x"], max_length=2, beam_width=0)


@pytest.mark.parametrize("arguments, message", [
    (dict(max_length=0), "length must be"), (dict(temperature=-1.0), "temperature must be"),
    (dict(top_p=0.0), "top_p must be"), (dict(top_p=1.5), "top_p must be"), (dict(top_k=-1), "top_k must be"),
    (dict(temperature=float("nan")), "temperature must be")])
def test_bad_sampling_arguments_are_refused(tiny_model, word_codec, arguments, message):
    settings = {**dict(max_length=4, temperature=1.0, top_k=0, top_p=1.0), **arguments}
    with pytest.raises(ValueError, match=message):
        lm.generate_texts(tiny_model, word_codec, ["the"], **settings)


def test_the_model_fine_tunes_in_keras(tiny_model):
    import keras

    model = keras.Model.from_config(tiny_model.get_config())
    model.set_weights(tiny_model.get_weights())
    lm.compile_model(model, learning_rate=1e-2)
    x = np.random.default_rng(2).integers(1, len(WORDS), (4, 9)).astype("int32")
    history = model.fit({"tokens": x[:, :-1], **lm.zero_states(model, 4)}, {"logits": x[:, 1:]}, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(tiny_model.get_weights(), model.get_weights()))


# -- the recipe's smoke run: card, verify, serving, command line ----------------------------------


def test_smoke_card_reports_the_model_the_ngram_and_samples(smoke_hub):
    _, card = smoke_hub
    assert card["task"] == "language-model" and card["codec"]["level"] == "word"
    for split in ("validation", "test", "brown"):  # brown: the out-of-domain text, never trained on
        assert card["metrics"][split]["perplexity"] > 1
        assert split == "validation" or card["baselines"]["kneser_ney"][split]["perplexity"] > 1
    assert card["baselines"]["kneser_ney"]["order"] == 5 and "brown" in card["dataset"]["out_of_domain"]
    assert card["dataset"]["tokens"]["brown"] == 3000  # --max-tokens cuts every split
    assert card["metrics"]["samples"]["reproduced"] == 1.0 and len(card["samples"]) == 4
    assert 0 <= card["throughput"]["softmax_share_of_step"] <= 1
    assert "KN-5 (Mikolov et al. 2011)" in card["published"]


def test_verify_reproduces_the_smoke_card(use_hub, capsys):
    assert cli.main(["verify", SMOKE]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_serving_signatures_score_and_generate_raw_text(use_hub):
    import tensorflow as tf

    serving = hub.load_serving(SMOKE)
    model, codec = lm.load_language_model(SMOKE)
    texts = ["The company said it expects sales to rise.", ""]
    out = serving.signatures["score"](texts=tf.constant(texts))
    direct = lm.score_texts(model, codec, texts)
    np.testing.assert_allclose(out["log_prob"].numpy(), [d["log_prob"] for d in direct], rtol=1e-4)
    assert list(out["tokens"].numpy()) == [9, 1]
    sample = serving.signatures["generate"](
        prompts=tf.constant(["the company said"]), max_length=tf.constant(5), temperature=tf.constant(0.9),
        top_k=tf.constant(0), top_p=tf.constant(0.9), seed=tf.constant(3, tf.int64))["texts"].numpy()[0].decode()
    assert sample == lm.generate_texts(model, codec, ["the company said"], max_length=5, temperature=0.9,
                                       top_p=0.9, seed=3)[0]
    budget = lm.MAX_SCORE_LOGITS // len(codec.vocabulary)
    with pytest.raises(tf.errors.InvalidArgumentError, match="texts too long for one call"):
        serving.signatures["score"](texts=tf.constant(["the " * (budget + 1)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_p must be in"):
        serving.signatures["generate"](prompts=tf.constant(["x"]), max_length=tf.constant(5),
                                       temperature=tf.constant(1.0), top_k=tf.constant(0),
                                       top_p=tf.constant(0.0), seed=tf.constant(3, tf.int64))


def test_serving_runs_under_the_tf1_session_loader(use_hub):
    check_session_loader(SMOKE)


def test_zoo_generate_and_zoo_score(use_hub, capsys, monkeypatch):
    import io

    assert cli.main(["generate", SMOKE, "--prompt", "the company", "--length", "5", "--seed", "7",
                     "--top-k", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the company ") and len(out.split()) >= 4
    assert cli.main(["generate", SMOKE, "--prompt", "x", "--top-p", "0"]) == 2
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    assert cli.main(["generate", SMOKE, "--temperature", "-1"]) == 2
    assert cli.main(["generate", SMOKE, "--key", "D major"]) == 2
    assert "--key is for music models" in capsys.readouterr().err
    assert cli.main(["score", SMOKE, "the company said", "it"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tokens\tlog_prob") and len(lines) == 4 and lines[1].startswith("4\t")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"the company said\nit rose\n")))
    assert cli.main(["score", SMOKE]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("7\t")  # one text: two sentences, 5 words + 2 <eos>


def test_zoo_score_refuses_a_model_of_another_task(capsys):
    assert cli.main(["score", "sentiment-bilstm-mr", "x"]) == 2
    assert "this command runs language models" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_litert_and_onnx_step_reproduce_greedy_generation_and_scores(use_hub, fmt, tmp_path):
    from zoo import export_formats

    if export_formats.missing_runtime(fmt):
        pytest.skip(f"the {fmt} runtime is not installed (the 'export' extra)")
    target, measured = export_formats.export(SMOKE, tmp_path / "deploy", fmt)
    assert measured["greedy_texts_equal"] is True
    assert measured["max_abs_difference_log_prob"] <= export_formats.TOLERANCE
    assert (target / export_formats.CONTRACT_FILE).exists()


def test_demo_continues_a_prompt_and_scores_a_sentence(use_hub, capsys):
    from zoo import demo

    shown = demo.language_model_demo()
    out = capsys.readouterr().out
    assert len(shown) == 1 and shown[0].startswith("the company said ")
    assert f"{SMOKE}: test perplexity" in out and "zoo score" in out and "perplexity" in out


def test_a_batch_of_only_empty_texts_scores_in_python_and_in_a_rewritten_savedmodel(tmp_path):
    """A character model reads nothing for "": a batch of only such texts has zero time steps, which
    once broke `score_ids` (and the SavedModels written with it). `hub.rewrite_serving` writes the
    serving graph again from model.keras, keeping the weights and every other file byte for byte."""
    import keras
    import tensorflow as tf

    codec = lm.TextCodec.from_training_tokens("char", list("the cat sat\nthe hat\n"), "\n", min_count=1)
    keras.utils.set_random_seed(5)
    model = lm.build_model(len(codec.vocabulary), units=8, num_layers=1, cell="lstm")
    scored = lm.score_texts(model, codec, [""])[0]
    assert scored["tokens"] == 0 and scored["log_prob"] == 0.0 and math.isnan(scored["perplexity"])
    log_probs, counts = lm.score_ids(model, tf.ragged.constant([[], []], dtype=tf.int32), codec.start_id)
    assert log_probs.numpy().tolist() == [0.0, 0.0] and counts.numpy().tolist() == [0, 0]

    def old_writer(keras_model, path):  # stands in for the graph of an earlier version
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"an older serving graph")

    hub.export_model("lm-tiny-char", model, {"task": lm.TASK, "codec": codec.config()}, old_writer,
                     root=tmp_path)
    before = hub.read_card(tmp_path / "lm-tiny-char" / hub.CARD_FILE)
    keras_bytes = (tmp_path / "lm-tiny-char" / hub.KERAS_FILE).read_bytes()
    with pytest.raises(ValueError, match="needs a reason"):
        lm.rewrite_serving("lm-tiny-char", " ", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no hub model 'lm-missing'"):
        hub.rewrite_serving("lm-missing", old_writer, "a fix", root=tmp_path)
    path = lm.rewrite_serving("lm-tiny-char", "a batch of only empty texts", root=tmp_path)
    after = hub.read_card(path / hub.CARD_FILE)
    assert (path / hub.KERAS_FILE).read_bytes() == keras_bytes
    assert after["files"][hub.KERAS_FILE] == before["files"][hub.KERAS_FILE]
    assert after["serving_rewritten"][0]["reason"] == "a batch of only empty texts"
    hub.verify_directory(path)  # the new checksums match the new files
    serving = tf.saved_model.load(str(path / hub.SERVING_DIR))
    out = serving.signatures["score"](texts=tf.constant([""]))
    assert out["tokens"].numpy().tolist() == [0] and out["log_prob"].numpy().tolist() == [0.0]
    assert np.isnan(out["perplexity"].numpy()[0])
    both = serving.signatures["score"](texts=tf.constant(["", "the cat"]))
    direct = lm.score_texts(model, codec, ["", "the cat"])
    np.testing.assert_allclose(both["log_prob"].numpy(), [d["log_prob"] for d in direct], rtol=1e-4)
