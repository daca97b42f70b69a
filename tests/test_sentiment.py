"""Sentiment end to end: recipe smoke run, resume after a kill, hub, export, CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from zoo import cli, hub
from zoo.data.cache import ChecksumError
from recipe_helpers import ROOT, load_recipe, train_smoke_model

SHIPPED = "sentiment-bilstm-mr"
# One held-out domain read from the sdist the movie reviews come from (no other download).
SMOKE_OPTIONS = ["--held-out", "amazon-snippets", "--ngram-folds", "2", "--max-examples", "240", "--epochs", "2",
                 "--units", "8", "--embedding-dim", "16", "--max-tokens", "1500", "--batch-size", "32"]


def _recipe():
    return load_recipe("sentiment")


@pytest.fixture(scope="module")
def smoke_hub(tmp_path_factory):
    """A hub directory holding one model trained by a seconds-long recipe run."""
    root = tmp_path_factory.mktemp("hub")
    card = train_smoke_model("sentiment", SMOKE_OPTIONS, "sentiment-smoke", root)
    return root, card


@pytest.fixture
def use_hub(smoke_hub, monkeypatch):
    root, card = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    return root, card


def test_recipe_writes_a_complete_card(smoke_hub):
    root, card = smoke_hub
    directory = root / "sentiment-smoke"
    on_disk = json.loads((directory / "card.json").read_text())
    assert on_disk == card | {"files": on_disk["files"], "versions": on_disk["versions"], "name": "sentiment-smoke"}
    for key in ("task", "io", "architecture", "parameters", "dataset", "metrics", "baseline",
                "training", "command", "versions", "license", "files"):
        assert key in on_disk, key
    assert on_disk["io"] == "many-to-one"
    assert on_disk["dataset"]["split_seed"] == 1337
    assert on_disk["metrics"]["test"]["examples"] == 240
    # Every domain is scored beside the baselines trained on the same data in the same run.
    domains = on_disk["metrics"]["domains"]
    assert {d: e["kind"] for d, e in domains.items()} == {"mr": "in-domain test split",
                                                          "amazon-snippets": "held-out domain"}
    for entry in domains.values():
        assert {"model", "ngram_path_only", "tfidf_logistic", "lexicon_sum"} <= set(entry)
    assert domains["mr"]["model"] == on_disk["metrics"]["test"]
    assert on_disk["dataset"]["held_out_domains"] == ["amazon-snippets"]
    assert 0.0 <= on_disk["metrics"]["test"]["accuracy"] <= 1.0
    assert "model.keras" in on_disk["files"] and "saved_model/saved_model.pb" in on_disk["files"]
    assert (directory / "training_curve.png").stat().st_size > 1000
    assert not list(root.glob(".staging-*"))


def test_hub_lists_loads_and_verifies(use_hub):
    assert hub.list_models() == ["sentiment-smoke"]
    assert hub.info("sentiment-smoke")["task"] == "sentiment"
    model = hub.load("sentiment-smoke")
    import tensorflow as tf

    probabilities = np.asarray(model.predict(tf.constant(["a fine film", "a boring mess"]), verbose=0))
    assert probabilities.shape == (2, 1) and np.all((probabilities >= 0) & (probabilities <= 1))
    serving = hub.load_serving("sentiment-smoke")
    served = serving.signatures["serving_default"](texts=tf.constant(["a fine film"]))
    np.testing.assert_allclose(served["probability"].numpy(), probabilities[:1, 0], atol=1e-5)


def test_unknown_model_lists_known_ones(use_hub):
    with pytest.raises(hub.UnknownModelError, match=r"unknown model 'nope'.*sentiment-smoke"):
        hub.load("nope")


def test_checksum_mismatch_names_the_file(use_hub, tmp_path, monkeypatch):
    root, _ = use_hub
    import shutil

    copy = tmp_path / "hub"
    shutil.copytree(root / "sentiment-smoke", copy / "sentiment-smoke")
    monkeypatch.setenv("ZOO_MODELS_DIR", str(copy))
    history = copy / "sentiment-smoke" / "history.csv"
    history.write_text(history.read_text() + "tampered\n")
    with pytest.raises(ChecksumError, match="history.csv"):
        hub.load("sentiment-smoke")
    assert cli.main(["verify", "sentiment-smoke"]) == 1


def test_fine_tuning_lowers_loss_and_changes_weights(use_hub):
    import keras
    import tensorflow as tf

    model = hub.load("sentiment-smoke")
    texts = tf.constant(["what a wonderful, moving film", "dreadful and dull",
                      "a triumph", "a waste of time"] * 8)
    labels = np.array([1, 0, 1, 0] * 8, "float32")
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    history = model.fit(texts, labels, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.slow  # two recipe runs (~25 s); tests/test_training.py checks resume in the fast suite
def test_resume_after_a_kill(tmp_path):
    """SIGKILL the recipe after epoch 2 of its recurrent stage; rerunning the same command skips the
    finished n-gram stage and continues the recurrent stage at epoch 3."""
    command = [sys.executable, str(ROOT / "recipes" / "sentiment.py"), *SMOKE_OPTIONS,
               "--epochs", "3", "--patience", "5", "--name", "resume-test",
               "--output-dir", str(tmp_path / "hub"), "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "ZOO_KILL_AFTER_EPOCH": "recurrent:2"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "run" / "recurrent" / "resume").is_dir()
    ngram_history = (tmp_path / "run" / "ngram" / "history.csv").read_text()
    assert not (tmp_path / "hub" / "resume-test").exists()

    env.pop("ZOO_KILL_AFTER_EPOCH")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resuming from the checkpoint" in finished.stdout
    card = json.loads((tmp_path / "hub" / "resume-test" / "card.json").read_text())
    assert card["training"]["resumed"] is True
    assert card["training"]["epochs_run"] == 3
    history = (tmp_path / "run" / "recurrent" / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    assert (tmp_path / "run" / "ngram" / "history.csv").read_text() == ngram_history
    assert card["training"]["ngram_stage"]["epochs_run"] >= 1


@pytest.mark.slow
def test_kill_during_export_resumes_into_export(tmp_path):
    """SIGKILL the recipe while it exports; the rerun trains nothing (both stages are finished),
    evaluates and publishes, removes the killed export's staging directory, then clears the
    run's checkpoints so that the next run trains afresh."""
    command = [sys.executable, str(ROOT / "recipes" / "sentiment.py"), *SMOKE_OPTIONS,
               "--name", "export-kill", "--output-dir", str(tmp_path / "hub"),
               "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, hub.KILL_DURING_EXPORT: "1"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert list((tmp_path / "hub").glob(".staging-export-kill-*"))
    assert not (tmp_path / "hub" / "export-kill").exists()
    histories = {stage: (tmp_path / "run" / stage / "history.csv").read_text()
                 for stage in ("ngram", "recurrent")}

    env.pop(hub.KILL_DURING_EXPORT)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "already finished; loading its final weights" in rerun.stdout
    assert "Epoch 1/" not in rerun.stdout
    for stage, text in histories.items():
        assert (tmp_path / "run" / stage / "history.csv").read_text() == text
    card = json.loads((tmp_path / "hub" / "export-kill" / "card.json").read_text())
    assert card["training"]["epochs_run"] == 2
    assert not list((tmp_path / "hub").glob(".staging-*"))
    assert not list((tmp_path / "run").rglob("resume"))


def test_recipe_rejects_nan_learning_rate_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        _recipe().main([*SMOKE_OPTIONS, "--learning-rate", "nan", "--output-dir", str(tmp_path)])
    assert raised.value.code == 2
    assert "--learning-rate must be a finite number, received nan" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_imdb_recipe_path_with_mocked_tfds(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        card = _recipe().main(["--data", "imdb", "--held-out", "amazon-snippets", "--no-ablation",
                               "--ngram-folds", "2", "--epochs", "1", "--units", "4",
                               "--embedding-dim", "8", "--max-tokens", "500",
                               "--output-dir", str(tmp_path / "hub"),
                               "--run-dir", str(tmp_path / "run")])
    assert card["dataset"]["training_domains"] == ["imdb"]
    assert (tmp_path / "hub" / "sentiment-bilstm-imdb" / "card.json").exists()


def test_recipe_rejects_bad_cell():
    with pytest.raises(SystemExit):
        _recipe().parse_args(["--cell", "transformer"])


# -- the CLI ---------------------------------------------------------------------


def test_cli_list_info_predict(use_hub, capsys):
    assert cli.main(["list"]) == 0
    assert "sentiment-smoke" in capsys.readouterr().out
    assert cli.main(["info", "sentiment-smoke"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "sentiment-smoke"
    assert cli.main(["predict", "sentiment-smoke", "a gem", "a dud"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("positive", "negative")


def test_cli_verify_reproduces_the_card(use_hub, capsys):
    assert cli.main(["verify", "sentiment-smoke"]) == 0
    assert "card metrics reproduced" in capsys.readouterr().out


def test_cli_export(use_hub, tmp_path, capsys):
    target = tmp_path / "deploy"
    assert cli.main(["export", "sentiment-smoke", str(target)]) == 0
    assert (target / "saved_model" / "saved_model.pb").exists()
    assert cli.main(["export", "sentiment-smoke", str(target)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["info", "no-such-model"], "unknown model 'no-such-model'"),
    (["predict", "no-such-model", "text"], "unknown model"),
    (["train", "no-such-recipe"], "unknown recipe 'no-such-recipe'; known recipes: "),
])
def test_cli_bad_input_one_line_errors(use_hub, capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_predict_empty_input(use_hub, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    assert cli.main(["predict", "sentiment-smoke"]) == 2
    assert "no input" in capsys.readouterr().err


def test_cli_predict_keeps_one_output_per_input_line(use_hub):
    """Blank lines give '-' fields, undecodable bytes are replaced (and the line named), and
    TensorFlow's oneDNN DT_BOOL notice does not reach stderr."""
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "predict", "sentiment-smoke"],
                            input=b"a gem of a film\n\n\xff a dud\n  \nfine\n", capture_output=True,
                            timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.decode("utf-8").split("\n")[:-1]
    assert len(lines) == 5
    assert lines[1] == "-\t-\t" and lines[3] == "-\t-\t  "
    assert lines[2].split("\t")[0] in ("positive", "negative") and lines[2].endswith("\ufffd a dud")
    err = result.stderr.decode("utf-8")
    assert "line 3 is not valid UTF-8" in err
    assert "oneDNN" not in err and "Error converting" not in err


@pytest.mark.slow  # a second `python -m zoo.cli` process (seconds of imports): the entry point and the
# ZOO_MODELS_DIR hub are covered fast by test_cli_predict_keeps_one_output_per_input_line, `list` by
# test_cli_list_info_predict
def test_console_script_runs(use_hub):
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "list"], capture_output=True,
                            text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0 and "sentiment-smoke" in result.stdout


# -- the shipped model --------------------------------------------------------------

shipped = pytest.mark.skipif(not (hub.models_dir() / SHIPPED / "card.json").exists(),
                             reason="the shipped model has not been trained yet")


@shipped
def test_shipped_model_verifies(monkeypatch, capsys):
    monkeypatch.delenv("ZOO_MODELS_DIR", raising=False)
    assert cli.main(["verify", SHIPPED]) == 0
    card = hub.info(SHIPPED)
    assert card["metrics"]["test"]["accuracy"] >= 0.80
    assert card["metrics"]["test"]["examples"] == 1057


@shipped
def test_shipped_serving_model_in_fresh_process_without_zoo(monkeypatch):
    monkeypatch.delenv("ZOO_MODELS_DIR", raising=False)
    path = hub.models_dir() / SHIPPED / "saved_model"
    script = textwrap.dedent(f"""
        import sys, tensorflow as tf
        serving = tf.saved_model.load({str(path)!r})
        out = serving.signatures["serving_default"](texts=tf.constant(
            ["an utterly delightful, moving film", "a tedious, lifeless mess"]))["probability"].numpy()
        assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules)
        assert out[0] > 0.5 > out[1], out
        print("ok", out)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]


def test_demo_shows_each_domain_and_product_reviews(use_hub, capsys):
    from zoo import demo

    demo.sentiment_demo("sentiment-smoke")
    out = capsys.readouterr().out
    assert "amazon-snippets (held-out domain):" in out and "mr (in-domain test split):" in out
    for text in demo.SENTENCES + demo.PRODUCT_REVIEWS:
        assert text in out
