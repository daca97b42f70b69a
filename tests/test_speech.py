"""Speech recognition with CTC: features, the model's padding, CTC decoding and loss, in-graph
resampling and WAV decoding, error rates, the DTW and PocketSphinx baselines, the serving bounds,
and a recipe smoke run shared by the SavedModel, `zoo transcribe` and `zoo verify` tests.

The smoke run reads a 160-clip synthetic corpus (generated with espeak-ng into the zoo cache on
first use, a few seconds) and the cached Asterisk prompts; it is skipped, with the reason, when
they cannot be had (DataUnavailableError).
"""

import base64
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from zoo import cli, hub  # noqa: E402
from zoo.data import speech as speech_data  # noqa: E402
from zoo.tasks import speech as task  # noqa: E402
from recipe_helpers import load_recipe, smoke_hub_fixtures  # noqa: E402
from serving_helpers import assert_weights_saved_once, check_session_loader  # noqa: E402

SMOKE = "speech-smoke"
SMOKE_OPTIONS = ["--corpus-size", "160", "--max-examples", "16", "--epochs", "1", "--units", "8",
                 "--conv-filters", "8", "--layers", "1", "--baselines", "dtw", "--beam-width", "4"]


def tone(seconds, rate, pitch=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return task.build_model(mel_bins=40, conv_filters=4, units=4, layers=1, seed=0)


# -- features and the model's padding -----------------------------------------------------------


def test_log_mel_counts_frames_and_normalises_each_clip_over_its_own_frames():
    layer = task.LogMel(mel_bins=40)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.normal(size=(3, 4000))).astype(np.float32)
    lengths = np.array([4000, 1601, 0], np.int32)
    features, frames = layer(tf.constant(audio), tf.constant(lengths))
    features, frames = features.numpy(), frames.numpy()
    assert features.shape == (3, 25, 40) and list(frames) == [25, 11, 0]  # ceil(length / 160)
    np.testing.assert_allclose(features[0].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(features[0].var(axis=0), 1, atol=1e-2)
    assert not features[1, 11:].any() and not features[2].any()
    alone, _ = layer(tf.constant(audio[1:2, :1601]), tf.constant([1601]))
    np.testing.assert_allclose(features[1, :11], alone.numpy()[0], atol=1e-5)
    assert np.all(layer.mel_matrix().numpy().sum(axis=0) > 0)  # no empty mel filter


def test_waveform_augment_delays_each_clip_by_a_random_silence_only_while_training():
    layer = task.WaveformAugment(gain_db=0.0, noise_probability=0.0, lead_samples=300, seed=3)
    rng = np.random.default_rng(2)
    audio = rng.uniform(-0.5, 0.5, size=(4, 500)).astype(np.float32)
    lengths = np.array([500, 321, 1, 0], np.int32)
    audio[np.arange(500)[None, :] >= lengths[:, None]] = 0.0
    same, same_lengths = layer(tf.constant(audio), tf.constant(lengths), training=False)
    np.testing.assert_array_equal(same.numpy(), audio)
    np.testing.assert_array_equal(same_lengths.numpy(), lengths)
    moved, new_lengths = (t.numpy() for t in layer(tf.constant(audio), tf.constant(lengths), training=True))
    assert moved.shape == (4, 800)
    leads = new_lengths - lengths
    assert np.all((leads >= 0) & (leads <= 300)) and len(set(leads.tolist())) > 1
    for row, (lead, length) in enumerate(zip(leads, lengths)):
        assert not moved[row, :lead].any() and not moved[row, lead + length:].any()
        np.testing.assert_array_equal(moved[row, lead:lead + length], audio[row, :length])


def test_log_mel_warps_frequencies_only_while_training():
    rng = np.random.default_rng(4)
    audio = tf.constant((0.1 * rng.normal(size=(2, 3200))).astype(np.float32))
    lengths = tf.constant([3200, 2000], tf.int32)
    plain, warped = task.LogMel(mel_bins=20), task.LogMel(mel_bins=20, warp=0.2, seed=1)
    reference, frames = plain(audio, lengths)
    np.testing.assert_array_equal(warped(audio, lengths)[0].numpy(), reference.numpy())
    trained, trained_frames = warped(audio, lengths, training=True)
    np.testing.assert_array_equal(trained_frames.numpy(), frames.numpy())
    assert not np.allclose(trained.numpy(), reference.numpy(), atol=1e-3)
    # a 1 kHz tone (FFT bin 32) moves to bin 32 / factor, each clip by its own factor in [0.7, 1.3]
    tone = np.sin(2 * np.pi * 1000 * np.arange(400) / task.SAMPLE_RATE)
    power = np.abs(np.fft.rfft(tone * np.hanning(400), task.FFT_LENGTH)) ** 2
    assert power.argmax() == 32
    layer = task.LogMel(mel_bins=40, warp=0.3, seed=5)
    peaks = layer._warped(tf.constant(np.tile(power, (8, 1, 1)), tf.float32)).numpy()[:, 0].argmax(axis=-1)
    assert np.all((peaks >= np.floor(32 / 1.3)) & (peaks <= np.ceil(32 / 0.7))) and len(set(peaks.tolist())) > 2
    with pytest.raises(ValueError, match="warp"):
        task.LogMel(warp=0.7)


def test_the_model_ignores_padding_and_pads_with_certain_blanks(tiny_model):
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.normal(size=(2, 16000))).astype(np.float32)
    lengths = np.array([16000, 7000], np.int32)
    logits = tiny_model({"waveforms": audio, "lengths": lengths}).numpy()
    counts = task.output_frame_counts(lengths)
    assert logits.shape == (2, 25, task.CLASSES) and list(counts) == [25, 11]
    alone = tiny_model({"waveforms": audio[1:, :7000], "lengths": lengths[1:]}).numpy()
    np.testing.assert_allclose(logits[1, :11], alone[0], atol=1e-5)
    blank = tf.nn.softmax(logits[1, 11:]).numpy()[:, task.BLANK]
    np.testing.assert_allclose(blank, 1.0)


def test_ctc_loss_over_the_padded_batch_is_the_loss_over_each_clips_frames(tiny_model):
    rng = np.random.default_rng(2)
    audio = (0.1 * rng.normal(size=(2, 8000))).astype(np.float32)
    lengths = np.array([8000, 3200], np.int32)
    logits = tiny_model({"waveforms": audio, "lengths": lengths})
    labels = np.array([[3, 4, 4, 5], [6, 7, -1, -1]], np.int32)
    padded = task.ctc_loss(labels, logits).numpy()
    counts = task.output_frame_counts(lengths)
    own = [tf.nn.ctc_loss(labels[i:i + 1, :n], logits[i:i + 1, :counts[i]], [n], [counts[i]],
                          logits_time_major=False, blank_index=task.BLANK).numpy()[0]
           for i, n in enumerate((4, 2))]
    np.testing.assert_allclose(padded, own, rtol=1e-5)
    too_long = np.full((1, 40), 3, np.int32)  # more labels than the 13 frames can emit
    assert task.ctc_loss(too_long, logits[:1, :13]).numpy()[0] == 0.0
    assert task.required_frames([3, 3, 4]) == 4


# -- decoding ----------------------------------------------------------------------------------------


def peaked(paths, low=-9.0, high=6.0):
    logits = np.full((len(paths), max(len(p) for p in paths), task.CLASSES), low, np.float32)
    for b, path in enumerate(paths):
        for t, c in enumerate(path):
            logits[b, t, c] = high
    return tf.nn.log_softmax(logits)


def ids(text):
    return task.encode_text(text)


def test_greedy_decoding_merges_repeats_drops_blanks_and_tidies_spaces():
    B = task.BLANK
    paths = [ids("hh") + [B] + ids("i") + [B, B] + ids("  ") + ids("yoo") + [B] + ids("o"),
             [B] * 5 + ids(" a ") + [B] * 3,
             [B] * 12]
    texts, scores = task.decode(peaked(paths), tf.constant([13, 11, 12]), 1)
    assert [t.decode() for t in texts.numpy()] == ["hi yoo", "a", ""]
    assert np.all(scores.numpy() <= 0) and scores.numpy()[0] > -1e-2
    cut, _ = task.decode(peaked(paths), tf.constant([4, 0, 12]), 1)  # frame lengths cut the paths
    assert [t.decode() for t in cut.numpy()] == ["hi", "", ""]
    with pytest.raises(ValueError, match="not in the alphabet"):
        task.encode_text("Hello")


def test_beam_search_agrees_with_greedy_on_peaked_logits():
    B = task.BLANK
    paths = [ids("seven") + [B] + ids("zero"), ids("b") + [B] * 7 + ids("ee"), [B] * 10]
    log_probs, lengths = peaked(paths), tf.constant([10, 10, 10])
    greedy, _ = task.decode(log_probs, lengths, 1)
    for width in (2, 8, tf.constant(5), tf.constant(1)):
        texts, scores = task.decode(log_probs, lengths, width)
        assert list(texts.numpy()) == list(greedy.numpy()) == [b"sevenzero", b"be", b""]
        assert np.all(scores.numpy() <= 1e-6)


class PeakedTranscriber:
    """Stands in for a Transcriber: each clip's log-probabilities are a peaked path chosen by the
    clip's first sample (the clip's index into `paths`)."""

    def __init__(self, paths):
        self.paths = paths

    def log_probabilities(self, waveforms, lengths, sample_rate):
        chosen = [self.paths[int(w[0])] for w in waveforms.numpy()]
        return peaked(chosen), tf.constant([len(p) for p in chosen], tf.int32)


def test_closed_vocabulary_decoding_chooses_the_likeliest_word_of_the_vocabulary():
    B = task.BLANK
    # "sevn": no such word, but "seven" is the vocabulary word the path makes likeliest; "bee" reads
    # as "be" (repeats merge), and "b" alone is too short a path for "eight" (no alignment at all).
    paths = [ids("sevn") + [B] * 4, ids("b") + [B] * 3 + ids("ee"), ids("b")]
    vocabulary = ["b", "be", "eight", "seven", "six"]
    clips = [np.full(100 + i, float(i), np.float32) for i in range(3)]
    scores = task.word_log_likelihoods(PeakedTranscriber(paths), clips, 16000, vocabulary, batch_size=2)
    assert scores.shape == (3, 5) and np.isneginf(scores[2, vocabulary.index("eight")])
    assert task.choose_words(PeakedTranscriber(paths), clips, 16000, vocabulary) == ["seven", "be", "b"]
    with pytest.raises(ValueError, match="at least one word"):
        task.word_log_likelihoods(PeakedTranscriber(paths), clips, 16000, [])
    assert task.isolated_word_vocabulary({"train": {"texts": ["seven", "a", "a cat sat", "b", "a"],
                                                    "kinds": ["digit", "letter", "sentence", "letter", "letter"]}}) \
        == ["a", "b", "seven"]


# -- resampling and WAV files in the graph -----------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_resampling_in_the_graph_matches_zoo_data_speech_resample(rate):
    rng = np.random.default_rng(rate)
    t = np.arange(int(0.5 * rate)) / rate
    clip = sum(0.2 * np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(100, 3500, 4),
                                                                    rng.uniform(0, 6, 4))).astype(np.float32)
    reference = speech_data.resample(clip, rate, task.SAMPLE_RATE)
    batch = np.stack([clip, np.where(np.arange(len(clip)) < len(clip) // 2, clip, 0.0)]).astype(np.float32)
    out, lengths = task.resample_waveforms(batch, [len(clip), len(clip) // 2], tf.constant(rate))
    out = out.numpy()
    assert out.shape[1] == len(reference) and lengths.numpy()[0] == len(reference)
    inner = slice(len(reference) // 10, -len(reference) // 10)
    np.testing.assert_allclose(out[0, inner], reference[inner], atol=3e-3)
    assert not out[1, lengths.numpy()[1]:].any()


def test_wav_files_decode_in_the_graph_and_other_formats_are_refused():
    clip = tone(0.05, 8000)
    audio, rate = task.decode_wav_bytes(tf.constant(task.wav_bytes(clip, 8000)))
    assert int(rate) == 8000
    np.testing.assert_allclose(audio.numpy(), clip, atol=1 / 32767)
    eight_bit = bytearray(task.wav_bytes(clip, 8000))
    eight_bit[34:36] = (8).to_bytes(2, "little")
    with pytest.raises(tf.errors.InvalidArgumentError, match="16-bit PCM WAV files only"):
        task.decode_wav_bytes(tf.constant(bytes(eight_bit)))
    for junk in (b"hello, not audio", b""):
        with pytest.raises(tf.errors.InvalidArgumentError, match="not a WAV file"):
            task.decode_wav_bytes(tf.constant(junk))


# -- metrics --------------------------------------------------------------------------------------


def test_edit_distance_and_error_rates_on_known_cases():
    assert task.edit_distance("kitten", "sitting") == 3
    assert task.edit_distance("", "abc") == 3 and task.edit_distance("flaw", "lawn") == 2
    assert task.edit_distance("the cat sat".split(), "the cat sat down".split()) == 1
    rates = task.error_rates(["the cat sat", "hello"], ["the bat sat down", ""])
    assert rates["wer"] == pytest.approx(3 / 4)  # cat->bat, +down, -hello over 4 words
    assert rates["cer"] == pytest.approx((1 + 5 + 5) / 16)  # c->b, " down", "hello"
    assert rates["exact_match"] == 0 and rates["count"] == 2
    words = task.word_accuracy(["a", "b", "one"], ["a", "d", "one"], ["letter", "letter", "digit"])
    assert words == {"accuracy": pytest.approx(2 / 3), "count": 3, "digit_accuracy": 1.0, "letter_accuracy": 0.5}


def test_sets_with_several_kinds_of_text_are_also_scored_kind_by_kind():
    clip = np.zeros(160, np.float32)
    texts = ["one two", "the cat sat", "a"]
    data = {"validation": {"texts": texts, "kinds": ["digit_sequence", "sentence", "letter"], "waveforms": [clip] * 3},
            "test": {"texts": texts[1:2], "kinds": ["sentence"], "waveforms": [clip]}}
    hypotheses = {"validation": {0: "one two", 1: "the bat sat", 2: "b"}, "test": {0: "the cat"}}
    scores = task.score_sets(data, hypotheses)
    by_kind = scores["validation"]["by_kind"]
    assert list(by_kind) == ["digit_sequence", "letter", "sentence"]
    assert by_kind["digit_sequence"]["cer"] == 0 and by_kind["letter"]["cer"] == 1
    assert by_kind["sentence"] == task.error_rates(["the cat sat"], ["the bat sat"])
    assert scores["validation"]["cer"] == round(2 / 19, 6)  # the whole set as before
    assert "by_kind" not in scores["test"]  # one kind: nothing to break down


def test_rescore_compares_every_figure_the_card_holds_and_names_what_it_adds():
    recipe = load_recipe("speech")
    held = {"test": {"beam8": {"cer": 0.2, "wer": 0.5}}, "asterisk": {"greedy": {"cer": 0.6}}}
    measured = {"test": {"beam8": {"cer": 0.2, "wer": 0.5, "by_kind": {"digit": {"cer": 0.0}}}},
                "asterisk": {"greedy": {"cer": 0.6}, "closed_vocabulary": {"accuracy": 0.3}}, "new_set": {}}
    assert recipe.changed_figures(held, measured) == []
    assert recipe.added_entries(held, measured) == ["asterisk.closed_vocabulary", "new_set", "test.beam8.by_kind"]
    measured["test"]["beam8"]["wer"] = 0.4
    del measured["asterisk"]["greedy"]
    assert recipe.changed_figures(held, measured) == ["asterisk.greedy", "test.beam8.wer"]


# -- baselines ---------------------------------------------------------------------------------------


def test_dtw_matches_the_plain_recurrence_and_ignores_time_stretching():
    rng = np.random.default_rng(3)
    query = rng.normal(size=(6, 2))
    templates = [rng.normal(size=(n, 2)) for n in (1, 4, 6, 9)]
    np.testing.assert_allclose(task.dtw_distances(query, templates),
                               [task.dtw_distance(query, t) for t in templates], rtol=1e-9)
    stretched = np.repeat(query, 2, axis=0)
    assert task.dtw_distance(query, stretched) == pytest.approx(0.0, abs=1e-12)
    rising, falling = np.linspace(0, 1, 8)[:, None], np.linspace(1, 0, 8)[:, None]
    classifier = task.DTWClassifier([rising, falling], ["up", "down"])
    assert classifier.predict([np.linspace(0, 1, 13)[:, None], np.linspace(1, 0, 5)[:, None]]) == ["up", "down"]


def test_mfcc_frames_trim_silence_and_remove_the_mean():
    clip = np.concatenate([np.zeros(3200), tone(0.3, 16000), np.zeros(3200)]).astype(np.float32)
    frames = task.mfcc(clip)
    assert frames.shape[1] == 26 and 28 <= len(frames) <= 34  # 0.3 s of tone, silence trimmed
    np.testing.assert_allclose(frames[:, :13].mean(axis=0), 0, atol=1e-4)
    assert task.mfcc(tone(0.3, 8000), 8000).shape[1] == 26


def test_pocketsphinx_decodes_a_clip_or_says_why_not():
    available, detail = task.pocketsphinx_status()
    if not available:
        assert "pip install pocketsphinx" in detail or "did not load" in detail
        pytest.skip(detail)
    texts = task.pocketsphinx_transcribe([tone(0.4, 8000), np.zeros(800, np.float32)], 8000)
    assert len(texts) == 2 and all(t == speech_data.normalize_transcript(t) for t in texts)


# -- the recipe, serving and the command line --------------------------------------------------------


def test_recipe_settings_are_checked():
    recipe = load_recipe("speech")
    with pytest.raises(SystemExit):
        recipe.parse_args(["--subsampling", "3"])
    with pytest.raises(SystemExit):
        recipe.parse_args(["--baselines", "dtw,whisper"])
    assert recipe.parse_args(["--cell", "lstm"]).name == "speech-bilstm-ctc"


smoke_hub, use_hub = smoke_hub_fixtures("speech", SMOKE_OPTIONS, SMOKE)  # skipped when the data is unavailable


@pytest.fixture(scope="module")
def serving(smoke_hub):
    return tf.saved_model.load(str(smoke_hub[0] / SMOKE / hub.SERVING_DIR))


def test_smoke_card_reports_every_set_beside_the_baselines(smoke_hub):
    _, card = smoke_hub
    assert card["task"] == "speech" and card["blank_index"] == 28 and card["alphabet"] == speech_data.ALPHABET
    flite = {"validation_flite"} if shutil.which("flite") else set()  # the held-out synthesiser, when installed
    assert set(card["metrics"]) == {"validation", "test", "test_isolated_words", "asterisk",
                                    "asterisk_without_caveats", "asterisk_digits_letters"} | flite
    if flite:
        assert card["metrics"]["validation_flite"]["beam4"]["count"] == 16
        assert card["dataset"]["validation_flite"]["voices"] == list(speech_data.FLITE_VOICES)
    assert set(card["metrics"]["test"]) == {"greedy", "beam4"}
    assert card["metrics"]["asterisk_digits_letters"]["beam4"]["count"] == 11 + 16
    closed = card["metrics"]["asterisk_digits_letters"]["closed_vocabulary"]  # as DTW chooses: a closed set
    assert closed["count"] == 27 and closed["vocabulary"] == len(task.isolated_word_vocabulary(
        task.load_data(card["dataset"]["seed"], card["dataset"]["size"], 16, asterisk=False, flite=False)))
    assert set(card["metrics"]["test_isolated_words"]) == {"greedy", "beam4", "closed_vocabulary"}
    assert any("choosing among the" in v for v in card["verdicts"])
    assert card["baselines"]["dtw"]["asterisk_digits_letters"]["count"] == 27
    assert "synthetic" in card["note"] and card["dataset"]["max_examples_per_split"] == 16
    assert "synthetic_test_cer_at_most_0.10" in card["floors"]
    assert any(v.startswith("goal: lower WER than PocketSphinx") and "not measured" in v for v in card["verdicts"])


@pytest.mark.slow  # a recipe path (scoring or training twice): make test-slow
def test_rescore_adds_a_new_decoding_to_a_card_without_touching_the_model(smoke_hub, tmp_path):
    """A card written before the closed-vocabulary decoding existed gains it from --rescore; the
    figures it held come out the same, the model files are unchanged, and the checksums hold."""
    root, card = smoke_hub
    shutil.copytree(root / SMOKE, tmp_path / SMOKE)
    older = json.loads((tmp_path / SMOKE / hub.CARD_FILE).read_text())
    for name in ("asterisk_digits_letters", "test_isolated_words"):
        del older["metrics"][name]["closed_vocabulary"]
    (tmp_path / SMOKE / hub.CARD_FILE).write_text(hub.card_json(older))
    keras_bytes = (tmp_path / SMOKE / hub.KERAS_FILE).read_bytes()
    rescored = load_recipe("speech").main(["--rescore", "--name", SMOKE, "--output-dir", str(tmp_path)])
    assert rescored["metrics"] == card["metrics"] and rescored["verdicts"] == card["verdicts"]
    assert rescored["rescored"][-1]["added"] == ["asterisk_digits_letters.closed_vocabulary",
                                                "test_isolated_words.closed_vocabulary"]
    assert (tmp_path / SMOKE / hub.KERAS_FILE).read_bytes() == keras_bytes
    hub.verify_directory(tmp_path / SMOKE)
    assert "closed vocabulary" in (tmp_path / SMOKE / "results.md").read_text()
    older["metrics"]["test"]["greedy"]["cer"] += 0.5  # a figure the model does not give
    (tmp_path / SMOKE / hub.CARD_FILE).write_text(hub.card_json(older))
    with pytest.raises(RuntimeError, match="changed figures the card already holds .test.greedy"):
        load_recipe("speech").main(["--rescore", "--name", SMOKE, "--output-dir", str(tmp_path)])


def test_demo_transcribes_two_real_prompts_from_their_wav_bytes(use_hub, capsys):
    from zoo import demo

    texts = demo.speech_demo()
    out = capsys.readouterr().out
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert "digits/7.wav" in out and "(said: 'seven')" in out and SMOKE in out


def test_verify_reproduces_the_smoke_card(use_hub, capsys):
    assert cli.main(["verify", SMOKE]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_serving_bounds_give_clear_errors_and_an_empty_batch_gives_nothing(serving):
    run = serving.signatures["serving_default"]
    one = tf.constant(tone(0.1, 8000)[None])
    for rate in (1, 0, 1_000_000):
        with pytest.raises(tf.errors.InvalidArgumentError, match="sample_rate must be from 4000 to 96000 Hz"):
            run(waveforms=one, lengths=tf.constant([800]), sample_rate=tf.constant(rate))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths must be >= 0"):
        run(waveforms=one, lengths=tf.constant([-1]), sample_rate=tf.constant(8000))
    long = tf.zeros([1, 31 * 4000])
    with pytest.raises(tf.errors.InvalidArgumentError, match="clips of at most 30 s"):
        run(waveforms=long, lengths=tf.constant([31 * 4000]), sample_rate=tf.constant(4000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths must hold one entry per waveform"):
        run(waveforms=one, lengths=tf.constant([800, 800]), sample_rate=tf.constant(8000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 64 clips per call"):
        run(waveforms=tf.zeros([65, 10]), lengths=tf.zeros([65], tf.int32), sample_rate=tf.constant(8000))
    empty = run(waveforms=tf.zeros([0, 0]), lengths=tf.zeros([0], tf.int32), sample_rate=tf.constant(8000))
    assert empty["texts"].shape == (0,) and empty["scores"].shape == (0,)
    nothing = serving.signatures["transcribe_bytes"](wav_bytes=tf.constant([], tf.string))
    assert nothing["texts"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than 30 s"):
        serving.signatures["transcribe_bytes"](wav_bytes=tf.constant([task.wav_bytes(np.zeros(31 * 4000), 4000)]))
    with pytest.raises(ValueError, match="clip 2 lasts 31.0 s; at most 30 s"):
        task.transcribe(serving, [np.zeros(800), np.zeros(31 * 4000)], 4000)
    with pytest.raises(ValueError, match="sample_rate must be an integer in 4000..96000 Hz"):
        task.transcribe(serving, [np.zeros(800)], 1)
    assert task.transcribe(serving, [], 8000) == []
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_width must be <= 16"):
        serving.signatures["transcribe"](waveforms=one, lengths=tf.constant([800]), sample_rate=tf.constant(8000),
                                         beam_width=tf.constant(17))


def test_signatures_agree_on_the_same_audio(serving):
    clips = [tone(0.3, 8000), tone(0.2, 8000, 330.0)]
    audio = np.zeros((2, len(clips[0])), np.float32)
    audio[0], audio[1, :len(clips[1])] = clips
    arguments = dict(waveforms=tf.constant(audio), lengths=tf.constant([len(c) for c in clips]),
                     sample_rate=tf.constant(8000))
    default = serving.signatures["serving_default"](**arguments)
    detailed = serving.signatures["transcribe"](**arguments, beam_width=tf.constant(4))  # the smoke card's width
    files = serving.signatures["transcribe_bytes"](wav_bytes=tf.constant([task.wav_bytes(c, 8000) for c in clips]))
    assert list(default["texts"].numpy()) == list(detailed["texts"].numpy())
    assert len(files["texts"].numpy()) == 2
    probabilities, frames = detailed["probabilities"].numpy(), detailed["frame_lengths"].numpy()
    assert list(frames) == list(task.output_frame_counts([4800, 3200]))  # 8 kHz clips at 16 kHz
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


FRESH_PROCESS = textwrap.dedent("""
    import base64, json, sys
    import tensorflow as tf
    serving = tf.saved_model.load(sys.argv[1])
    files = [base64.b64decode(f) for f in json.loads(sys.stdin.read())]
    out = serving.signatures["transcribe_bytes"](wav_bytes=tf.constant(files))
    assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules)
    print(json.dumps([t.decode() for t in out["texts"].numpy()]))
""")


def test_savedmodel_runs_in_a_fresh_process_without_zoo(smoke_hub, serving):
    files = [task.wav_bytes(tone(0.25, 22050), 22050), task.wav_bytes(tone(0.1, 8000), 8000)]
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(smoke_hub[0] / SMOKE / hub.SERVING_DIR)],
                          input=json.dumps([base64.b64encode(f).decode() for f in files]), capture_output=True,
                          text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    here = serving.signatures["transcribe_bytes"](wav_bytes=tf.constant(files))["texts"].numpy()
    assert json.loads(done.stdout.splitlines()[-1]) == [t.decode() for t in here]


def test_serving_runs_under_the_tf1_session_loader_and_stores_each_weight_once(use_hub, serving):
    check_session_loader(SMOKE, serving)
    assert_weights_saved_once(use_hub[0] / SMOKE / hub.SERVING_DIR, use_hub[1]["parameters"])


def test_zoo_transcribe_prints_one_line_per_file_and_refuses_bad_files(use_hub, tmp_path, capsys, monkeypatch):
    import io

    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    first.write_bytes(task.wav_bytes(tone(0.3, 8000), 8000))
    second.write_bytes(task.wav_bytes(tone(0.2, 22050), 22050))
    assert cli.main(["transcribe", SMOKE, str(first), str(second), "--beam", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == [str(first), str(second)]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{second}\n\n{first}\n"))
    assert cli.main(["transcribe", SMOKE]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == [str(second), str(first)]
    empty, text, silent = tmp_path / "empty.wav", tmp_path / "notes.wav", tmp_path / "silent.wav"
    empty.write_bytes(b"")
    text.write_text("not audio at all")
    silent.write_bytes(task.wav_bytes(np.zeros(0), 8000))
    for bad, message in ((empty, "the file is empty"), (text, "not a WAV file"),
                         (silent, "holds no audio samples"), (tmp_path / "missing.wav", "no such file")):
        assert cli.main(["transcribe", SMOKE, str(first), str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert cli.main(["transcribe", SMOKE, str(first), "--beam", "0"]) == 2
    assert "--beam must be in 1..16" in capsys.readouterr().err


def test_zoo_transcribe_plots_the_spectrogram_and_the_ctc_alignment(use_hub, serving, tmp_path, capsys):
    from PIL import Image

    clip = tmp_path / "a.wav"
    clip.write_bytes(task.wav_bytes(tone(0.5, 8000), 8000))
    picture = tmp_path / "alignment.png"
    assert cli.main(["transcribe", SMOKE, str(clip), "--plot", str(picture), "--beam", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith(f"\t{clip}\n") and str(picture) in captured.err
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 600 and image.height >= 400
    # the plot's transcript is the command's
    waveform, rate = task.read_audio_file(clip)
    assert task.alignment_png(serving, waveform, rate, tmp_path / "again.png", 1) + f"\t{clip}\n" == captured.out


def test_zoo_transcribe_refuses_a_model_of_another_task(capsys):
    assert cli.main(["transcribe", "sentiment-bilstm-mr", "x.wav"]) == 2  # the repository's hub
    assert "this command runs speech recognisers; sentiment-bilstm-mr is a sentiment model" in \
        capsys.readouterr().err
