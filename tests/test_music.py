"""Key-conditioned melody generation: recipe smoke run, in-graph generation, CLI, verify."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("mido")

from zoo import cli, hub, music  # noqa: E402
from zoo.tasks import music as task  # noqa: E402
from recipe_helpers import load_recipe, train_smoke_model  # noqa: E402
from serving_helpers import check_session_loader  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMOKE = "music-smoke"
SMOKE_OPTIONS = ["--max-train-pieces", "12", "--epochs", "1", "--units", "16",
                 "--key-embedding-dim", "8", "--token-embedding-dim", "16",
                 "--in-key-seeds", "2", "--in-key-length", "16", "--throughput-events", "16"]


def _recipe():
    return load_recipe("music")


@pytest.fixture(scope="module")
def smoke_hub(tmp_path_factory):
    """A hub directory holding one melody model trained by a seconds-long recipe run."""
    root = tmp_path_factory.mktemp("hub")
    card = train_smoke_model("music", SMOKE_OPTIONS, SMOKE, root)
    return root, card


@pytest.fixture
def use_hub(smoke_hub, monkeypatch):
    root, card = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    return root, card


@pytest.fixture(scope="module")
def smoke_serving(smoke_hub):
    import tensorflow as tf

    root, _ = smoke_hub
    return tf.saved_model.load(str(root / SMOKE / "saved_model"))


def _biased_model(bias):
    """A tiny untrained model whose next-event logits are `bias` plus a negligible term."""
    import keras

    keras.utils.set_random_seed(0)
    model = task.build_model("gru", units=4, key_embedding_dim=2, token_embedding_dim=3)
    head = model.get_layer("next_token")
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(np.asarray(bias, "float32"))
    return model


def _merge_rests(events):
    merged = []
    for pitch, steps in events:
        if pitch is None and merged and merged[-1][0] is None:
            merged[-1] = (None, merged[-1][1] + steps)
        else:
            merged.append((pitch, steps))
    return merged


# -- the recipe and its card -----------------------------------------------------


def test_recipe_writes_a_complete_card(smoke_hub):
    root, card = smoke_hub
    directory = root / SMOKE
    on_disk = json.loads((directory / "card.json").read_text())
    assert on_disk == card
    for key in ("task", "io", "architecture", "parameters", "dataset", "metrics", "baselines",
                "evaluation", "training", "throughput", "command", "versions", "license", "files"):
        assert key in on_disk, key
    assert on_disk["io"] == "one-to-many" and on_disk["task"] == "music"
    assert on_disk["dataset"]["split_seed"] == 1337 and on_disk["dataset"]["max_train_pieces"] == 12
    test = on_disk["metrics"]["test"]
    assert test["pieces"] == on_disk["dataset"]["split_pieces"]["test"]
    assert test["real_in_key_rate"] == pytest.approx(0.979, abs=1e-3)
    assert 0 < test["bigram_nll_per_event"] < test["unigram_nll_per_event"] < np.log(music.VOCAB_SIZE)
    generated = on_disk["metrics"]["generated"]
    assert generated["melodies"] == 24 * 2 and generated["events"] == 24 * 2 * 16
    assert 0.0 <= generated["in_key_rate"] <= 1.0
    assert on_disk["throughput"]["batch_1_events_per_second"] > 0
    assert on_disk["throughput"]["batch_64_events_per_second"] > 0
    assert "saved_model/saved_model.pb" in on_disk["files"] and "model.keras" in on_disk["files"]
    assert (directory / "training_curve.png").stat().st_size > 1000
    assert not list(root.glob(".staging-*"))


def test_recipe_rejects_bad_settings():
    with pytest.raises(SystemExit):
        _recipe().parse_args(["--cell", "transformer"])
    with pytest.raises(SystemExit):
        _recipe().parse_args(["--units", "0"])


def test_nll_is_log_vocab_for_uniform_logits():
    from zoo.data import chorales

    melodies = chorales.load_chorale_melodies(limit=3, quiet=True)
    scores = task.nll_per_event(_biased_model(np.zeros(music.VOCAB_SIZE)), melodies)
    assert scores["nll_per_event"] == pytest.approx(np.log(music.VOCAB_SIZE), abs=1e-5)
    assert scores["tokens"] == sum(len(m["events"]) + 1 for m in melodies)  # events + EOS


def test_ngram_baselines_count_events_and_eos():
    melody = {"events": [(60, 4), (62, 4), (60, 4)], "key": "C major"}
    scores = task.ngram_baselines([melody] * 10, [melody], [melody], grid=(1.0,))
    # Unigram with add-1: counts 60→20, 62→10, EOS→10 out of 40 tokens + 265.
    p = np.array([21, 11, 21, 11]) / (40 + task.PREDICTED_TOKENS)
    assert scores["unigram"]["test_nll_per_event"] == pytest.approx(-np.log(p).mean(), abs=1e-6)
    # Bigram with add-1: BOS→60, 60→62, 62→60, 60→EOS, ten times each (context 60 seen 20 times).
    p = np.array([11 / 275, 11 / 285, 11 / 275, 11 / 285]) * (275 / (10 + task.PREDICTED_TOKENS))
    assert scores["bigram"]["test_nll_per_event"] == pytest.approx(-np.log(p).mean(), abs=1e-6)


def test_loaded_model_fine_tunes(use_hub):
    from zoo.data import chorales

    model = hub.load(SMOKE)
    melodies = chorales.load_chorale_melodies(limit=4, quiet=True)
    data = task.make_dataset(melodies, batch_size=4)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(data, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


# -- keys inside the graph -------------------------------------------------------------


def test_key_table_agrees_with_parse_key():
    spellings = task.key_spellings()
    assert len(spellings) == 7 * 2 * 5 * 2 * 32
    for text, index in spellings.items():
        assert music.key_index(text) == index


def test_graph_key_parsing_matches_python(smoke_serving):
    import tensorflow as tf

    generate = smoke_serving.signatures["generate"]
    fixed = dict(num_events=tf.constant(1), temperature=tf.constant(0.0),
                 seed=tf.constant(0, tf.int64), min_events=tf.constant(1))
    good = ["C major", "f# minor", " Bb   MAJOR ", "E\u266d major", "c\u266f Minor", "A#\tminor",
            "\u3000G\u00a0major\n", "Cb major", "B# minor"]
    ids = generate(keys=tf.constant(good), **fixed)["key_ids"].numpy()
    assert ids.tolist() == [music.key_index(k) for k in good]
    for bad in ["H major", "", "C", "C dorian", "BB major", "C# majorr", "Cmajor", "C ## major"]:
        with pytest.raises(ValueError, match="invalid key"):
            music.parse_key(bad)
        with pytest.raises(tf.errors.InvalidArgumentError, match="invalid key"):
            generate(keys=tf.constant(["G major", bad]), **fixed)


# -- generation --------------------------------------------------------------------------


def test_generate_is_deterministic_under_a_seed(smoke_serving):
    keys = ["D major", "F# minor", "Bb major"]
    first = task.generate(smoke_serving, keys, num_events=24, seed=7)
    again = task.generate(smoke_serving, keys, num_events=24, seed=7)
    other = task.generate(smoke_serving, keys, num_events=24, seed=8)
    assert first == again
    assert first != other
    assert [len(m) for m in first] == [24, 24, 24]
    # A row depends on the seed and its position, not on the other rows' keys.
    assert task.generate(smoke_serving, "D major", num_events=24, seed=7)[0] == first[0]
    assert task.generate(smoke_serving, ["G minor", "F# minor"], num_events=24, seed=7)[1] == first[1]


def test_every_signature_runs_under_the_tf1_session_loader(use_hub):
    """`saved_model_cli run` restores the variables the signatures read (issue 11, item 1)."""
    check_session_loader(SMOKE)


def test_saved_model_and_keras_model_generate_the_same(use_hub, smoke_serving):
    model = hub.load(SMOKE)
    from_keras = task.generate(model, ["G minor", "E major"], num_events=20, seed=3, min_events=0)
    from_saved = task.generate(smoke_serving, ["G minor", "E major"], num_events=20, seed=3,
                               min_events=0)
    assert from_keras == from_saved


def test_decoding_masks_pad_bos_and_stops_at_eos():
    bias = np.zeros(music.VOCAB_SIZE)
    bias[[music.PAD, music.BOS]] = 50.0  # would win every draw if they were not masked
    bias[music.EOS] = 20.0               # wins as soon as it is allowed
    generator = task.MelodyGenerator(_biased_model(bias))
    result = generator.generate(keys=["C major", "A minor"], num_events=8, temperature=1.0,
                                seed=1, min_events=3)
    tokens = result["tokens"].numpy()
    assert tokens.shape == (2, 8)
    assert np.all(tokens[:, :3] >= music.NUM_SPECIAL)
    assert np.all(tokens[:, 3] == music.EOS) and np.all(tokens[:, 4:] == music.PAD)
    assert result["lengths"].numpy().tolist() == [3, 3]
    assert np.all(result["durations"].numpy()[:, 3:] == 0)
    assert np.all(result["pitches"].numpy()[:, 3:] == -1)
    events = [music.token_to_event(t) for t in tokens[0, :3]]
    assert [p if p is not None else -1 for p, _ in events] == result["pitches"].numpy()[0, :3].tolist()
    assert [d for _, d in events] == result["durations"].numpy()[0, :3].tolist()
    greedy = generator.generate(keys=["C major"], num_events=5, temperature=0.0, seed=0, min_events=5)
    assert np.all(greedy["tokens"].numpy() >= music.NUM_SPECIAL)


def _sample_one_step_at_a_time(model, key_ids, num_events, temperature, seed, min_events):
    """The melody sampler as it was before `zoo.generation`: eager, one Python step per event."""
    import tensorflow as tf

    settings = task.model_settings(model)
    key_vector = model.get_layer("key_embedding")(key_ids)
    states = [model.get_layer(f"initial_{s}")(key_vector) for s in task._STATE_NAMES[settings["cell"]]]
    never = np.zeros(music.VOCAB_SIZE, np.float32)
    never[[music.PAD, music.BOS]] = -1e9
    token = tf.fill([len(key_ids)], music.BOS)
    finished = np.zeros(len(key_ids), bool)
    rows = []
    for t in range(num_events):
        inputs = model.get_layer("token_embedding")(token)
        if settings["key_every_step"]:
            inputs = tf.concat([inputs, key_vector], axis=-1)
        output, states = model.get_layer("decoder").cell(inputs, list(states), training=False)
        logits = model.get_layer("next_token")(output)
        bias = never.copy()
        if t < min(min_events, num_events):
            bias[music.EOS] = -1e9
        if temperature > 0:
            scaled = logits / tf.maximum(tf.constant(temperature, tf.float32), 1e-6) + bias
            chosen = tf.random.stateless_categorical(
                scaled, 1, seed=tf.constant([seed, t], tf.int64), dtype=tf.int32)[:, 0].numpy()
        else:
            chosen = tf.argmax(logits + bias, axis=-1, output_type=tf.int32).numpy()
        chosen = np.where(finished, music.PAD, chosen)
        rows.append(chosen)
        finished |= chosen == music.EOS
        token = tf.constant(chosen, tf.int32)
        if finished.all():
            break
    tokens = np.stack(rows, axis=1)
    return np.pad(tokens, [(0, 0), (0, num_events - tokens.shape[1])], constant_values=music.PAD)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_events, temperature, seed, min_events",
                         [(12, 1.0, 7, 12), (16, 0.8, 3, 0), (10, 0.0, 0, 4), (14, 1.5, -2, 2)])
def test_engine_sampler_matches_the_one_step_at_a_time_sampler(cell, num_events, temperature,
                                                                 seed, min_events):
    """`MelodyGenerator` on `zoo.generation` draws exactly the tokens of the former per-step loop."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    model = task.build_model(cell, units=8, key_embedding_dim=3, token_embedding_dim=4)
    head = model.get_layer("next_token")
    bias = np.zeros(music.VOCAB_SIZE, np.float32)
    bias[music.EOS] = 4.0  # melodies end early when they may
    head.bias.assign(bias)
    key_ids = np.array([0, 5, 13, 23], np.int32)
    generator = task.MelodyGenerator(model)
    generated = generator.generate_from_ids(
        tf.constant(key_ids), tf.constant(num_events), tf.constant(temperature, tf.float32),
        tf.constant(seed, tf.int64), tf.constant(min_events)).numpy()
    expected = _sample_one_step_at_a_time(model, key_ids, num_events, temperature, seed, min_events)
    np.testing.assert_array_equal(generated, expected)
    if min_events < num_events:
        assert (generated == music.EOS).any()  # the end of a melody is exercised too


@pytest.mark.parametrize("kwargs, message", [
    (dict(keys="H major"), "invalid key 'H major'"),
    (dict(keys=""), "invalid key ''"),
    (dict(keys=[]), "no key given"),
    (dict(keys="C major", num_events=0), "number of events"),
    (dict(keys="C major", temperature=-1.0), "temperature"),
])
def test_python_api_rejects_bad_requests(smoke_serving, kwargs, message):
    with pytest.raises(ValueError, match=message):
        task.generate(smoke_serving, **kwargs)


def test_generate_signature_in_a_fresh_process_without_zoo(smoke_hub):
    root, _ = smoke_hub
    path = root / SMOKE / "saved_model"
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        model = tf.saved_model.load({str(path)!r})
        generate = model.signatures["generate"]
        def run(seed, keys=("D major", "e minor")):
            return generate(keys=tf.constant(list(keys)), num_events=tf.constant(12),
                            temperature=tf.constant(1.0), seed=tf.constant(seed, tf.int64),
                            min_events=tf.constant(12))
        out = run(7)
        assert out["tokens"].shape == (2, 12) and out["lengths"].numpy().tolist() == [12, 12]
        assert (run(7)["tokens"].numpy() == out["tokens"].numpy()).all()
        assert (run(8)["tokens"].numpy() != out["tokens"].numpy()).any()
        assert "serving_default" in model.signatures and "score" in model.signatures
        scored = model.signatures["score"](keys=tf.constant(["D major"]),
                                           tokens=tf.constant([[1, 100, 120]], tf.int32))
        assert scored["log_probs"].shape == (1, 3, {music.VOCAB_SIZE})
        try:
            run(7, keys=("H major",))
            raise SystemExit("bad key accepted")
        except tf.errors.InvalidArgumentError as error:
            assert "invalid key" in str(error)
        assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules)
        print(json.dumps(out["tokens"].numpy().tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = json.loads(result.stdout.strip().splitlines()[-1])
    import tensorflow as tf

    here = tf.saved_model.load(str(path))
    expected = task.generate(here, ["D major", "e minor"], num_events=12, seed=7)
    assert [music.decode_tokens(row) for row in tokens] == expected


# -- the CLI and the demo -------------------------------------------------------------------


def test_cli_generate_writes_a_readable_midi_and_a_piano_roll(use_hub, tmp_path, capsys, smoke_serving):
    out = tmp_path / "melody.mid"
    argv = ["generate", SMOKE, "--key", "D major", "--length", "24", "--temperature", "1.0",
            "--seed", "7", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and str(out.with_suffix(".png")) in printed
    events = music.midi_to_events(out)
    expected = task.generate(smoke_serving, "D major", num_events=24, seed=7)[0]
    assert len(expected) == 24
    # MIDI has no rest events: adjacent rests come back as one silence.
    assert events == _merge_rests(expected)
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("key", ["H major", ""])
def test_cli_generate_rejects_bad_keys(use_hub, tmp_path, capsys, key):
    out = tmp_path / "melody.mid"
    assert cli.main(["generate", SMOKE, "--key", key, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "invalid key" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_verify_reproduces_the_card(use_hub, capsys):
    assert cli.main(["verify", SMOKE]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_cli_list_shows_the_headline(use_hub, capsys):
    assert cli.main(["list"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith(SMOKE)][0]
    nll = hub.info(SMOKE)["metrics"]["test"]["nll_per_event"]
    assert "one-to-many" in line and f"test NLL/event {nll:.3f}" in line


def test_demo_writes_a_melody(use_hub, tmp_path, capsys):
    path = task.demo(tmp_path, name=SMOKE, length=16)
    assert path.exists() and path.with_suffix(".png").exists()
    assert sum(d for _, d in music.midi_to_events(path)) > 0
    assert str(path) in capsys.readouterr().out


@pytest.mark.slow
def test_resume_after_a_kill(tmp_path):
    """SIGKILL the recipe after epoch 1; rerunning the same command continues at epoch 2."""
    command = [sys.executable, str(ROOT / "recipes" / "music.py"), *SMOKE_OPTIONS,
               "--epochs", "2", "--patience", "5", "--name", "resume-test",
               "--output-dir", str(tmp_path / "hub"), "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "ZOO_KILL_AFTER_EPOCH": "1"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    env.pop("ZOO_KILL_AFTER_EPOCH")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    card = json.loads((tmp_path / "hub" / "resume-test" / "card.json").read_text())
    assert card["training"]["resumed"] is True and card["training"]["epochs_run"] == 2


# -- the shipped model -------------------------------------------------------------------------

shipped = pytest.mark.skipif(not (hub.models_dir() / task.SHIPPED / "card.json").exists(),
                             reason="the shipped melody model has not been trained yet")


@shipped
def test_shipped_model_verifies_and_meets_the_floors(monkeypatch, capsys):
    monkeypatch.delenv("ZOO_MODELS_DIR", raising=False)
    assert cli.main(["verify", task.SHIPPED]) == 0
    metrics = hub.info(task.SHIPPED)["metrics"]
    real, generated = metrics["test"]["real_in_key_rate"], metrics["generated"]["in_key_rate"]
    assert generated >= 0.90 and generated >= real - 0.03, (generated, real)
    assert metrics["generated"]["melodies"] >= 24 * 4
    test = metrics["test"]
    assert test["nll_per_event"] < test["bigram_nll_per_event"] < test["unigram_nll_per_event"]


def test_verify_allows_sampled_figures_their_sampling_error_and_nothing_else():
    card = {"generated": {"in_key_rate": 0.98, "notes": 12000}, "test": {"nll_per_event": 2.0}}
    close = {"generated": {"in_key_rate": 0.975, "notes": 11950}, "test": {"nll_per_event": 2.0}}
    tolerances = {"generated.in_key_rate": 0.008, "generated.notes": 60.0}
    assert cli.compare_metrics(card, close, tolerances=tolerances) == []
    assert cli.compare_metrics(card, close) != []  # without them: exact to float noise
    far = {"generated": {"in_key_rate": 0.96, "notes": 12000}, "test": {"nll_per_event": 2.01}}
    problems = cli.compare_metrics(card, far, tolerances=tolerances)
    assert [p.split(":")[0] for p in problems] == ["generated.in_key_rate", "test.nll_per_event"]
    assert "allowed ±0.008" in problems[0]


def test_sampling_standard_errors_are_those_of_the_means_and_totals():
    rates = [1.0, 0.9, 0.8, 0.7]
    per_key = {"C major": [1.0, 0.9], "A minor": [0.8, 0.7]}
    errors = task.sampling_standard_errors(rates, [1.0, 0.9], [0.8, 0.7], per_key, [(10, 8), (12, 8), (10, 6), (12, 6)])
    assert errors["in_key_rate"] == pytest.approx(np.std(rates, ddof=1) / 2)
    assert errors["in_key_rate_major"] == pytest.approx(0.05) and errors["lowest_key_rate"] == pytest.approx(0.05)
    assert errors["events"] == pytest.approx(np.std([10, 12, 10, 12], ddof=1) / 2 * 4)


@shipped
def test_shipped_model_generates_in_key(monkeypatch, tmp_path):
    monkeypatch.delenv("ZOO_MODELS_DIR", raising=False)
    path = task.demo(tmp_path, key="F# minor", length=32, seed=11)
    events = music.midi_to_events(path)
    assert music.in_key_rate(events, "F# minor") >= 0.8


def test_an_empty_batch_of_keys_gives_empty_melodies():
    import tensorflow as tf

    generator = task.MelodyGenerator(_biased_model(np.zeros(267)))
    out = generator.generate(tf.constant([], tf.string), tf.constant(8), tf.constant(1.0), tf.constant(0, tf.int64),
                             tf.constant(1))
    assert all(value.shape[0] == 0 for value in out.values()), {k: v.shape for k, v in out.items()}
    tokens = generator.generate_from_ids(tf.zeros([0], tf.int32), tf.constant(8), tf.constant(0.0),
                                         tf.constant(0, tf.int64), tf.constant(1))
    assert tokens.shape[0] == 0


@shipped
@pytest.mark.slow  # 30 s: a second TensorFlow start-up and every sample re-drawn
def test_shipped_model_verifies_under_another_thread_count():
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("ZOO_MODELS_DIR", None)
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "verify", task.SHIPPED], capture_output=True,
                            text=True, timeout=600, env=env, cwd=str(ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "card metrics reproduced" in result.stdout
