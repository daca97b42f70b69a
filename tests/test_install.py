"""Models that install and load anywhere: paths and URLs, model packages, a non-editable install.

The fast tests use a tiny fake model directory (files and a card, no network
weights); the shipped sentiment model is loaded from a path and a `ram://`
URL, and packaged into a wheel that a fresh virtual environment installs.
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from zoo import cli, hub, packaging
from zoo.data.cache import ChecksumError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = "sentiment-bilstm-mr"
shipped = pytest.mark.skipif(not (ROOT / "saved_models" / SHIPPED / hub.CARD_FILE).exists(),
                             reason=f"the shipped model {SHIPPED} is not in saved_models/")


def _fake_model_dir(parent, name="fake-model"):
    directory = Path(parent) / name
    (directory / "saved_model").mkdir(parents=True)
    (directory / "model.keras").write_bytes(b"weights of " + name.encode())
    (directory / "saved_model" / "saved_model.pb").write_bytes(b"graph")
    card = {"name": name, "task": "sentiment", "io": "many-to-one",
            "metrics": {"test": {"accuracy": 0.75, "examples": 4}}, "versions": {"zoo": "0.1.0"},
            "files": hub.file_checksums(directory)}
    (directory / hub.CARD_FILE).write_text(hub.card_json(card))
    return directory


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty local hub and data cache; returns a directory outside the hub for model copies."""
    monkeypatch.setenv("ZOO_MODELS_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "hub").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


# -- a model directory named by a path or a file:// URL ----------------------------------------


def test_path_and_file_url_name_a_model_directory(isolated, capsys):
    directory = _fake_model_dir(isolated)
    for model in (directory, str(directory), directory.as_uri()):
        source = hub.locate(model)
        assert source.origin == "path" and Path(source.location) == directory
        assert hub.info(model)["name"] == "fake-model"
        assert sorted(hub.verify_files(model)) == ["model.keras", "saved_model/saved_model.pb"]
        assert hub.model_dir(model) == directory
    assert hub.list_models() == []  # a path is not added to the hub
    assert cli.main(["info", directory.as_uri()]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "sentiment"


def test_a_damaged_model_directory_named_by_path_is_refused(isolated, capsys):
    directory = _fake_model_dir(isolated)
    (directory / "model.keras").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"sha256 mismatch for .*model\.keras"):
        hub.verify_files(str(directory))
    import zoo

    with pytest.raises(ChecksumError, match=r"model\.keras"):
        zoo.load(directory.as_uri())
    assert cli.main(["verify", str(directory)]) == 1
    assert "model.keras" in capsys.readouterr().err


def test_a_directory_that_is_not_a_model_gets_a_clear_error(isolated, capsys):
    empty = isolated / "empty"
    empty.mkdir()
    with pytest.raises(hub.NotAModelError, match=r"empty is not a zoo model directory: it has no "
                                                 r"card\.json"):
        hub.info(str(empty))
    bare = isolated / "bare"
    bare.mkdir()
    (bare / "saved_model.pb").write_bytes(b"graph")
    with pytest.raises(hub.NotAModelError, match="bare SavedModel"):
        hub.load_serving(bare)
    with pytest.raises(hub.NotAModelError, match="does not exist"):
        hub.verify_files(str(isolated / "missing"))
    with pytest.raises(hub.NotAModelError, match="is a file"):
        hub.info(str(bare / "saved_model.pb"))
    with pytest.raises(hub.UnknownModelError, match=r"unknown model 'nope'.*path such as \./nope"):
        hub.info("nope")
    assert cli.main(["info", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a zoo model directory" in err


# -- a remote model directory (tf.io.gfile; the in-memory ram:// file system stands in for gs://) --


def _upload(local, url):
    import tensorflow as tf

    for path in sorted(Path(local).rglob("*")):
        target = f"{url}/{path.relative_to(local).as_posix()}"
        if path.is_dir():
            tf.io.gfile.makedirs(target)
        else:
            tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), target, overwrite=True)


def test_a_remote_model_directory_is_fetched_verified_and_cached(isolated):
    import tensorflow as tf

    url = f"ram://zoo-{uuid.uuid4().hex}/fake-model"
    _upload(_fake_model_dir(isolated), url)
    assert hub.locate(url).origin == "url"
    assert hub.info(url)["name"] == "fake-model"
    assert sorted(hub.verify_files(url)) == ["model.keras", "saved_model/saved_model.pb"]
    local = hub.model_dir(url)
    assert local.parent == Path(os.environ["ZOO_DATA_DIR"]) / hub.REMOTE_CACHE_DIR
    assert (local / "model.keras").read_bytes() == b"weights of fake-model"
    assert hub.model_dir(url + "/") == local  # fetched once, found again
    (local / "model.keras").write_bytes(b"damaged copy")  # a damaged local copy is fetched again
    assert hub.model_dir(url) == local and (local / "model.keras").read_bytes() == b"weights of fake-model"

    tampered = url.replace("fake-model", "tampered-model")  # a file changed at the source
    _upload(local, tampered)
    with tf.io.gfile.GFile(f"{tampered}/model.keras", "wb") as handle:
        handle.write(b"tampered")
    with pytest.raises(ChecksumError, match=rf"^{tampered}/model\.keras: sha256 mismatch"):
        hub.verify_files(tampered)
    stray = url.replace("fake-model", "stray-model")
    _upload(local, stray)
    with tf.io.gfile.GFile(f"{stray}/extra.bin", "wb") as handle:
        handle.write(b"?")
    with pytest.raises(ChecksumError, match=rf"^{stray}/extra\.bin: the file is not listed"):
        hub.load_serving(stray)
    cache = Path(os.environ["ZOO_DATA_DIR"]) / hub.REMOTE_CACHE_DIR
    assert sorted(p.name for p in cache.iterdir()) == [local.name]  # nothing unverified is kept

    tf.io.gfile.makedirs(url.replace("fake-model", "not-a-model"))
    with pytest.raises(hub.NotAModelError, match="not a zoo model directory"):
        hub.info(url.replace("fake-model", "not-a-model"))
    with pytest.raises(hub.NotAModelError, match="does not exist"):
        hub.info(url.replace("fake-model", "missing"))


@shipped
def test_the_shipped_model_serves_from_a_path_and_a_url(isolated):
    """(The Keras model is loaded from a path in the fresh-environment test below.)"""
    import tensorflow as tf

    import zoo

    directory = shutil.copytree(ROOT / "saved_models" / SHIPPED, isolated / "deploy" / SHIPPED)
    url = f"ram://zoo-{uuid.uuid4().hex}/{SHIPPED}"
    _upload(directory, url)
    texts = tf.constant(["a gorgeous, witty film", "a tedious mess"])
    from_path = zoo.load_serving(str(directory)).signatures["serving_default"](texts=texts)
    from_url = zoo.load_serving(url).signatures["serving_default"](texts=texts)
    expected = from_path["probability"].numpy()
    assert expected[0] > 0.5 > expected[1]
    np.testing.assert_allclose(from_url["probability"].numpy(), expected, atol=1e-6)


# -- model packages -------------------------------------------------------------------------------


def _wheel_record_is_consistent(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in archive.read(record_name).decode().splitlines()]
        assert sorted(row[0] for row in rows) == sorted(names)
        for name, digest, size in rows:
            if name == record_name:
                assert digest == size == ""
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), name
    return names


def test_package_builds_a_reproducible_wheel_of_the_verified_model(isolated, tmp_path, capsys):
    directory = _fake_model_dir(isolated)
    assert cli.main(["package", str(directory), "--out", str(tmp_path / "dist")]) == 0
    wheel = tmp_path / "dist" / "zoo_model_fake_model-0.1.0-py3-none-any.whl"
    assert str(wheel) in capsys.readouterr().out
    names = _wheel_record_is_consistent(wheel)
    assert sorted(n for n in names if "/model/" in n) == [
        "zoo_model_fake_model/model/card.json", "zoo_model_fake_model/model/model.keras",
        "zoo_model_fake_model/model/saved_model/saved_model.pb"]
    with zipfile.ZipFile(wheel) as archive:
        info = "zoo_model_fake_model-0.1.0.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: zoo-model-fake-model\n" in metadata and "Version: 0.1.0\n" in metadata
        assert "Requires-Dist: zoo>=0.1.0\n" in metadata and "test accuracy 0.7500" in metadata
        assert archive.read(f"{info}/entry_points.txt").decode() == (
            "[zoo.models]\nfake-model = zoo_model_fake_model:model_dir\n")
        for path in directory.rglob("*"):  # the model directory, byte for byte
            if path.is_file():
                member = f"zoo_model_fake_model/model/{path.relative_to(directory).as_posix()}"
                assert archive.read(member) == path.read_bytes(), member
        assert {member.date_time for member in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    again = packaging.build_wheel(directory, tmp_path / "again")
    assert again.read_bytes() == wheel.read_bytes()
    custom = packaging.build_wheel(directory, tmp_path / "custom", version="2.0.1")
    assert custom.name == "zoo_model_fake_model-2.0.1-py3-none-any.whl"
    with pytest.raises(ValueError, match=r"version must be a public PEP 440 version.*'1\.0\+local'"):
        packaging.build_wheel(directory, tmp_path / "bad", version="1.0+local")

    (directory / "model.keras").write_bytes(b"tampered")
    assert cli.main(["package", str(directory), "--out", str(tmp_path / "refused")]) == 1
    assert "model.keras" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").iterdir())


def test_an_installed_model_package_is_found_beside_the_hub(isolated, tmp_path, monkeypatch, capsys):
    name = f"pkg-{uuid.uuid4().hex[:8]}"
    wheel = packaging.build_wheel(_fake_model_dir(isolated, name), tmp_path / "dist", version="1.2.0")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # what pip does with a pure-Python wheel
        archive.extractall(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, packaging.module_name(name), raising=False)
    _fake_model_dir(Path(os.environ["ZOO_MODELS_DIR"]), "hub-model")

    assert hub.list_models() == sorted(["hub-model", name])
    source = hub.locate(name)
    assert source.origin == "package" and source.package == f"zoo-model-{name} 1.2.0"
    assert source.location == site / packaging.module_name(name) / "model"
    assert hub.info(name)["name"] == name and sorted(hub.verify_files(name))[0] == "model.keras"
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l for l in lines if l.startswith("hub-model")][0].endswith("[hub]")
    assert [l for l in lines if l.startswith(name)][0].endswith(f"[package zoo-model-{name} 1.2.0]")

    shadow = _fake_model_dir(Path(os.environ["ZOO_MODELS_DIR"]), name)  # the hub wins on a name
    assert hub.locate(name).origin == "hub" and hub.model_dir(name) == shadow
    assert cli.main(["list", "pkg-*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("[hub]") and "the hub model of this name is the one loaded" in lines[1]


def test_recipes_come_from_the_checkout_here():
    assert cli.recipes_dir() == ROOT / "recipes"
    assert {"sentiment", "music"} <= set(cli.known_recipes())


# -- a fresh virtual environment: zoo installed from a wheel, a model package beside it ----------

_IN_FRESH_ENVIRONMENT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import tensorflow as tf
    import zoo
    from zoo import cli, hub

    name = sys.argv[1]
    site = Path(sys.argv[2]).resolve()
    assert Path(zoo.__file__).resolve().is_relative_to(site), zoo.__file__  # not the checkout
    assert hub.source_checkout() is None
    assert cli.recipes_dir() == site / "zoo" / "_recipes", cli.recipes_dir()
    assert zoo.list_models() == [name], zoo.list_models()
    source = hub.locate(name)
    assert source.origin == "package" and Path(source.location).is_relative_to(site)
    assert len(hub.verify_files(name)) > 5
    texts = ["a gorgeous, witty film", "a tedious mess"]
    keras_model = zoo.load(name)
    expected = np.asarray(keras_model.predict(tf.constant(texts), verbose=0))[:, 0]
    served = zoo.load_serving(name).signatures["serving_default"](texts=tf.constant(texts))
    np.testing.assert_allclose(served["probability"].numpy(), expected, atol=1e-5)
    assert expected[0] > 0.5 > expected[1], expected
    assert cli.main(["verify", name]) == 0
    print(json.dumps({"recipes": cli.known_recipes(), "probabilities": expected.tolist()}))
""")


def _fresh_environment(tmp_path):
    """A virtual environment whose heavy dependencies come from this one (a .pth file), no network."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_zoo_test_base_environment.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return python, site


def _source_copy(tmp_path):
    """What `pip install .` builds from, copied so the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "zoo", source / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "recipes", source / "recipes", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    return source


def test_the_build_ships_the_recipes_inside_the_package(tmp_path):
    """Fast stand-in for the install below: the wheel's build step puts recipes/*.py in zoo/_recipes/."""
    source = _source_copy(tmp_path)
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path / "lib")],
                           cwd=source, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    shipped_recipes = tmp_path / "lib" / "zoo" / "_recipes"
    for recipe in (ROOT / "recipes").glob("*.py"):
        assert (shipped_recipes / recipe.name).read_bytes() == recipe.read_bytes(), recipe.name
    assert (tmp_path / "lib" / "zoo" / "hub.py").is_file()
    assert (tmp_path / "lib" / "zoo" / "layers" / "kernels" / "recurrence.cc").is_file()


@pytest.mark.slow  # about 35 s: a venv, a non-editable install, TensorFlow started twice
@shipped
def test_a_model_package_installs_loads_verifies_and_runs_in_a_fresh_environment(tmp_path, monkeypatch):
    for variable in ("PYTHONPATH", "ZOO_MODELS_DIR", "PIP_REQUIRE_VIRTUALENV", "VIRTUAL_ENV"):
        monkeypatch.delenv(variable, raising=False)
    python, site = _fresh_environment(tmp_path)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
           "--no-build-isolation", "--disable-pip-version-check"]
    built = subprocess.run([*pip, str(_source_copy(tmp_path))], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = packaging.build_wheel(SHIPPED, tmp_path / "dist")
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]

    env = {**os.environ, "ZOO_MODELS_DIR": str(tmp_path / "empty-hub"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = tmp_path / "in_fresh_environment.py"
    script.write_text(_IN_FRESH_ENVIRONMENT)
    run = subprocess.run([str(python), str(script), SHIPPED, str(site)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "card metrics reproduced" in run.stdout
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"sentiment", "music"} <= set(report["recipes"])
    assert sorted(report["recipes"]) == sorted(p.stem for p in (ROOT / "recipes").glob("*.py"))

    console = python.parent / "zoo"
    listed = subprocess.run([str(console), "list"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"[package zoo-model-{SHIPPED} " in listed.stdout
    recipe = subprocess.run([str(console), "train", "sentiment", "--help"], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env=env)
    assert recipe.returncode == 0 and "--cell" in recipe.stdout, recipe.stderr[-2000:]
