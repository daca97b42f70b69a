"""Nothing lost, nothing silently wrong: settings checked up front, strict cards, complete
checksums, damaged kernel libraries refused, one output line per input line."""

import io
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from zoo import cli, hub, settings
from zoo.data.cache import ChecksumError
from recipe_helpers import ROOT, load_recipe

# -- settings: every recipe validates every setting before it runs --------------------


@pytest.mark.parametrize("recipe", ["sentiment", "music", "forecasting"])
@pytest.mark.parametrize("argv,flag", [
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--epochs", "-3"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--units", "0"], "--units"),
    (["--dropout", "1.5"], "--dropout"),
    (["--name", "../escaped"], "--name"),
    (["--name", "a/b"], "--name"),
    (["--cell", "transformer"], "--cell"),
])
def test_recipes_reject_settings_that_cannot_work(recipe, argv, flag, capsys):
    with pytest.raises(SystemExit) as raised:
        load_recipe(recipe).parse_args(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and repr(argv[1]).strip("'") in err


@pytest.mark.parametrize("recipe", ["sentiment", "translation", "captioning", "music", "forecasting"])
@pytest.mark.parametrize("flag", ["--run-dir", "--output-dir"])
def test_a_directory_setting_naming_a_file_is_a_usage_error(recipe, flag, tmp_path, capsys):
    existing_file = tmp_path / "notes.txt"
    existing_file.write_text("not a directory")
    for bad in (existing_file, existing_file / "below"):
        with pytest.raises(SystemExit) as raised:
            load_recipe(recipe).parse_args([flag, str(bad)])
        assert raised.value.code == 2
        err = capsys.readouterr().err
        assert flag in err and "existing file" in err and str(bad) in err
    args = load_recipe(recipe).parse_args([flag, str(tmp_path / "new" / "deeper")])  # can be made: fine
    assert args


def test_fit_refuses_a_run_directory_that_is_a_file(tmp_path):
    from zoo import training

    path = tmp_path / "run"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        training.fit(None, None, None, epochs=1, run_dir=path)


def test_sentiment_rejects_zero_max_examples(capsys):
    with pytest.raises(SystemExit):
        load_recipe("sentiment").parse_args(["--max-examples", "0"])
    assert "--max-examples must be > 0, received 0" in capsys.readouterr().err


def test_recipe_defaults_pass_their_own_checks():
    for recipe in ("sentiment", "music"):
        args = load_recipe(recipe).parse_args([])
        assert args.name and args.run_dir


def test_settings_parser_without_checks_is_unchanged():
    parser = settings.settings_parser(dict(units=4, wide=True, limit=None), "Doc.",
                                      optional_types={"limit": int})
    args = parser.parse_args(["--units", "-1", "--no-wide", "--limit", "3"])
    assert (args.units, args.wide, args.limit) == (-1, False, 3)


def test_float_settings_must_be_finite_even_without_checks(capsys):
    parser = settings.settings_parser(dict(rate=0.1), "Doc.")
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "nan"])
    assert "--rate must be a finite number, received nan" in capsys.readouterr().err


def test_recipe_command_keeps_what_was_trained_and_drops_where_files_went():
    argv = ["--data", "porttinari", "--output-dir", "/some/hub", "--run-dir=/some/run", "--epochs", "3",
            "--name", "my tagger"]
    assert settings.recipe_command("recipes/tagging.py", argv) == (
        "python recipes/tagging.py --data porttinari --epochs 3 --name 'my tagger'")
    assert settings.recipe_command("recipes/music.py", []) == "python recipes/music.py"


def test_checks_must_name_known_settings():
    with pytest.raises(ValueError, match="unitz"):
        settings.settings_parser(dict(units=4), "Doc.", checks=dict(unitz=settings.positive))


def test_check_helpers():
    assert settings.setting_problems({"k": 3}, {"k": 1}, {"k": settings.at_least(4)}) == [
        "--k must be >= 4, received 3"]
    assert settings.setting_problems({"c": "gru"}, {"c": "lstm"}, {"c": settings.choices("lstm", "gru")}) == []
    assert settings.model_name.problem("sentiment-bilstm-mr") is None
    for bad in ("..", ".hidden", "a/b", "", "x" * 200, "-rf"):
        assert settings.model_name.problem(bad), bad


# -- hub: strict cards, no non-finite metric, clean staging -------------------------------


def test_export_refuses_a_card_with_a_nan_metric(tmp_path):
    card = {"task": "sentiment", "metrics": {"test": {"accuracy": 0.5, "log_loss": math.nan}}}
    with pytest.raises(hub.CardError, match=r"metrics\.test\.log_loss"):
        hub.export_model("nan-model", None, card, None, root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written, nothing published


def test_export_refuses_a_name_outside_the_hub(tmp_path):
    with pytest.raises(ValueError, match="received '../escaped'"):
        hub.export_model("../escaped", None, {}, None, root=tmp_path / "hub")
    assert not (tmp_path / "escaped").exists()


def test_card_json_is_strict():
    assert json.loads(hub.card_json({"a": [1.5, {"b": None}]})) == {"a": [1.5, {"b": None}]}
    with pytest.raises(hub.CardError, match=r"a\[1\]\.b = inf"):
        hub.card_json({"a": [1.0, {"b": math.inf}]})


def test_abandoned_staging_directories_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f".staging-some-model-{dead.pid}"
    retired = tmp_path / f".retired-some-model-{dead.pid}"
    running = tmp_path / f".staging-other-model-{os.getppid()}"  # a live process: kept
    for directory in (abandoned, retired, running, tmp_path / "some-model"):
        directory.mkdir()
    removed = hub.remove_abandoned_staging(tmp_path)
    assert sorted(removed) == sorted([abandoned, retired])
    assert running.is_dir() and (tmp_path / "some-model").is_dir()


# -- cards and checksums -------------------------------------------------------------------


def _fake_model_dir(root, name="fake-model"):
    directory = root / name
    (directory / "saved_model").mkdir(parents=True)
    (directory / "model.keras").write_bytes(b"weights")
    (directory / "saved_model" / "saved_model.pb").write_bytes(b"graph")
    card = {"task": "sentiment", "io": "many-to-one", "metrics": {},
            "files": hub.file_checksums(directory)}
    (directory / hub.CARD_FILE).write_text(hub.card_json(card))
    return directory


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_MODELS_DIR", str(tmp_path))
    return _fake_model_dir(tmp_path)


@pytest.mark.parametrize("damage,expected", [
    (lambda text: text.replace('"task"', "task", 1), "is not valid JSON: Expecting property name"),
    (lambda text: text.encode("utf-8")[:10] + b"\xff" + text.encode("utf-8")[10:],
     "is not valid UTF-8: byte 0xff at offset 10"),
    (lambda text: text.replace("{}", "NaN", 1), "is not strict JSON: NaN"),
])
def test_damaged_card_names_the_file(fake_hub, damage, expected, capsys):
    card_path = fake_hub / hub.CARD_FILE
    damaged = damage(card_path.read_text())
    card_path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode("utf-8"))
    with pytest.raises(hub.CardError) as raised:
        hub.info("fake-model")
    assert str(card_path) in str(raised.value) and expected in str(raised.value)
    import zoo

    with pytest.raises(hub.CardError, match="model card"):
        zoo.load("fake-model")
    assert cli.main(["verify", "fake-model"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(card_path) in err


def test_verify_accepts_a_complete_directory(fake_hub):
    assert sorted(hub.verify_files("fake-model")) == ["model.keras", "saved_model/saved_model.pb"]


def test_verify_rejects_an_unlisted_file(fake_hub):
    card = json.loads((fake_hub / hub.CARD_FILE).read_text())
    del card["files"]["model.keras"]
    (fake_hub / hub.CARD_FILE).write_text(hub.card_json(card))
    (fake_hub / "model.keras").write_bytes(b"corrupted")
    with pytest.raises(ChecksumError, match=r"model\.keras: the file is not listed"):
        hub.verify_files("fake-model")


def test_verify_rejects_a_listed_file_that_is_missing(fake_hub):
    (fake_hub / "saved_model" / "saved_model.pb").unlink()
    with pytest.raises(ChecksumError, match="listed in .* but missing"):
        hub.verify_files("fake-model")


def test_verify_rejects_a_stray_file(fake_hub, capsys):
    (fake_hub / "saved_model" / "extra.bin").write_bytes(b"?")
    assert cli.main(["verify", "fake-model"]) == 1
    assert "extra.bin: the file is not listed" in capsys.readouterr().err


# -- music: re-measuring works from the parsed-melody cache without music21 ------------


def test_chorales_cache_serves_without_music21(tmp_path, monkeypatch):
    from zoo import music
    from zoo.data import chorales

    def missing():
        raise ImportError("zoo.data.chorales needs music21 to parse the chorales: pip install "
                          "'zoo[music]'")

    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(chorales, "_music21_version", missing)
    with pytest.raises(ImportError, match=r"zoo\[music\]"):
        chorales._load_doc(quiet=True)
    doc = {"cache_version": chorales.CACHE_VERSION, "music21_version": "9.9.9",
           "encoding": music.encoding_spec(), "melodies": []}
    chorales.cache_path().parent.mkdir(parents=True, exist_ok=True)
    chorales.cache_path().write_text(json.dumps(doc))
    assert chorales._load_doc(quiet=True)["music21_version"] == "9.9.9"


# -- the command line: stdin decoding, blank lines, native noise ----------------------------


class _ByteStdin:
    def __init__(self, data):
        self.buffer = io.BytesIO(data)

    def isatty(self):
        return False


def test_predict_inputs_keep_blank_lines_and_replace_bad_bytes(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _ByteStdin(b"good film\n\n\xff bad\r\nlast"))
    texts = cli._read_inputs([])
    assert texts == ["good film", "", "\ufffd bad", "last"]
    assert "line 3 is not valid UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("data", [b"one\rtwo\r\rfour\r", b"one\ntwo\n\nfour\n", b"one\r\ntwo\r\n\r\nfour",
                                  b"one\rtwo\n\r\nfour"])
def test_cr_only_line_endings_split_lines_like_lf_and_crlf(monkeypatch, data):
    monkeypatch.setattr(sys, "stdin", _ByteStdin(data))
    assert cli._read_inputs([]) == ["one", "two", "", "four"]


def test_predict_arguments_with_undecodable_bytes(capsys):
    argument = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python passes such argv
    assert cli._read_inputs([argument, "ok"]) == ["caf\ufffd", "ok"]
    assert "argument 1 is not valid UTF-8" in capsys.readouterr().err


def test_native_noise_is_dropped_from_stderr(capfd):
    with cli.filtered_native_stderr(cli.NATIVE_NOISE):
        os.write(2, b"E0000 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.\n")
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "a real problem" in err and "oneDNN" not in err


# -- native kernels: a damaged library is never loaded ---------------------------------------

_DAMAGED_LIBRARY_SCRIPT = textwrap.dedent("""
    import subprocess, sys
    import numpy as np
    from zoo.layers import native

    real_run = subprocess.run

    def no_compiler(command, **kwargs):  # compiling fails fast; `g++ --version` still works
        if "-o" in command:
            return subprocess.CompletedProcess(command, 1, "", "simulated compiler failure")
        return real_run(command, **kwargs)

    native.subprocess.run = no_compiler
    import zoo.layers as zl

    layer = zl.LSTM(4)
    print(layer(np.ones((1, 3, 2), "float32")).shape, layer.last_recurrence_kernel)
""")


def test_truncated_library_is_refused_not_loaded(tmp_path):
    from zoo.layers import native

    built = native.build()
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    copy = kernels / built.name
    shutil.copy(built, copy)
    shutil.copy(native.checksum_path(built), native.checksum_path(copy))
    os.truncate(copy, 100000)
    (kernels / "tmpabc123.so").write_bytes(b"left by a killed build")
    env = {**os.environ, native.DIRECTORY: str(kernels)}
    env.pop(native.SWITCH, None)
    result = subprocess.run([sys.executable, "-c", _DAMAGED_LIBRARY_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 4) graph" in result.stdout
    assert "truncated or damaged" in result.stderr
    assert result.stderr.count("using graph kernels") == 1
    assert not (kernels / "tmpabc123.so").exists()


def test_library_problem_detects_damage(tmp_path):
    from zoo.layers import native

    library = tmp_path / "zoo_recurrence-x.so"
    assert "does not exist" in native.library_problem(library)
    library.write_bytes(b"0123456789")
    assert "checksum file" in native.library_problem(library)
    native.checksum_path(library).write_text(native._sha256(library) + "  x\n")
    assert native.library_problem(library) is None
    library.write_bytes(b"01234")
    assert "truncated or damaged" in native.library_problem(library)


@pytest.mark.parametrize("value,on", [("1", True), ("on", True), ("", True), (" TRUE ", True),
                                      ("0", False), ("off", False), ("No", False)])
def test_native_switch_values(monkeypatch, value, on):
    from zoo.layers import native

    monkeypatch.setenv(native.SWITCH, value)
    assert native.native_switch_on() is on


def test_native_switch_rejects_unclear_values(monkeypatch):
    from zoo.layers import native

    monkeypatch.setenv(native.SWITCH, "maybe")
    with pytest.raises(ValueError, match="ZOO_NATIVE_KERNELS must be one of .* received 'maybe'"):
        native.unavailable_reason()


def test_native_module_on_an_unwritable_directory_prints_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**os.environ, "ZOO_KERNEL_DIR": str(blocker / "kernels")}
    result = subprocess.run([sys.executable, "-m", "zoo.layers.native"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "zoo native kernels: not built: cannot write the kernel cache" in result.stderr


# -- `zoo train` runs its recipe as a child that cannot outlive it ---------------------------

PARENT = """
import sys
from zoo.cli import run_child
child = [sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)",
         sys.argv[1]]
print("status", run_child(child), flush=True)
"""


def _wait_for(predicate, seconds=20.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead
        return handle.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_when_zoo_is_killed_outright(tmp_path):
    import signal

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], cwd=ROOT)
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text())
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_for(lambda: not _alive(child)), "the recipe outlived `zoo train` (an orphan)"
    finally:
        parent.kill()


def test_sigterm_to_zoo_reaches_the_child(tmp_path):
    import signal

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text())
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGTERM)
        out, _ = parent.communicate(timeout=30)
        assert "status -15" in out  # the child got the SIGTERM and ended by it; zoo reported it
        assert not _alive(child)
    finally:
        parent.kill()


# -- the command lines work in bounded batches, printing as they go --------------------------


def test_zoo_translate_works_in_bounded_batches_and_says_when_it_cuts(monkeypatch, capsys):
    from zoo import hub
    from zoo.tasks import translation

    batches = []

    def fake_translate(serving, texts, beam_width, details):
        batches.append(len(texts))
        return [f"T:{t[:12]}" for t in texts]

    monkeypatch.setattr(hub, "load_serving", lambda name: object())
    monkeypatch.setattr(translation, "translate", fake_translate)
    texts = [f"Satz {i}" for i in range(100)]
    texts[70] = " ".join(["Wort"] * 150)
    assert translation.translate_cli("any", texts, beam_width=1) == 0
    captured = capsys.readouterr()
    assert max(batches) <= translation.CLI_BATCH_SIZE and sum(batches) == 100
    assert captured.out.splitlines() == [f"T:{t[:12]}" for t in texts]  # one line each, in order
    assert "line 71 has 150 tokens; only the first 100 are translated" in captured.err


def test_zoo_predict_classifies_in_bounded_batches(monkeypatch, capsys):
    from zoo import hub
    from zoo.tasks import sentiment

    batches = []

    def fake_predictions(serving, texts):
        batches.append(len(texts))
        return np.full(len(texts), 0.75)

    monkeypatch.setattr(sentiment, "serve_predictions", fake_predictions)
    monkeypatch.setattr(hub, "load_serving", lambda name: object())
    lines = ["good" if i % 7 else "" for i in range(1000)]
    monkeypatch.setattr(sys, "stdin", _ByteStdin("\n".join(lines).encode()))
    assert cli.main(["predict", "sentiment-bilstm-mr"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1000 and out[0].startswith(cli.BLANK_PREDICTION)
    assert max(batches) <= cli.PREDICT_BATCH_SIZE


def test_zoo_caption_reads_and_captions_in_bounded_batches(monkeypatch, tmp_path, capsys):
    from zoo import hub
    from zoo.tasks import captioning

    batches, reads = [], []
    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"stand-in")
        paths.append(str(path))

    def fake_read(path):
        reads.append(path)
        return np.zeros((4, 4, 3), np.uint8)

    def fake_caption(serving, images, beam_width):
        batches.append(len(images))
        assert len(reads) - sum(batches[:-1]) == len(images)  # only this batch is held in memory
        return [{"caption": "a picture"} for _ in images]

    monkeypatch.setattr(hub, "load_serving", lambda name: object())
    monkeypatch.setattr(captioning, "read_image_file", fake_read)
    monkeypatch.setattr(captioning, "caption", fake_caption)
    assert captioning.caption_cli("any", paths + [str(tmp_path / "missing.png")][:0], beam_width=1) == 0
    assert max(batches) <= captioning.CLI_BATCH_SIZE and sum(batches) == 40
    assert capsys.readouterr().out.splitlines()[-1] == f"a picture\t{paths[-1]}"
    with pytest.raises(ValueError, match="no such file"):  # checked before any output
        captioning.caption_cli("any", paths[:3] + [str(tmp_path / "missing.png")], beam_width=1)
    assert capsys.readouterr().out == ""
