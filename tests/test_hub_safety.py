"""A card's `files` table may only name files inside its model directory (issue: path traversal).

An entry such as `../../../../etc/passwd` with the right sha256, or a symbolic
link inside the directory that points outside it, must fail `zoo verify`,
`zoo.load`, `zoo export` and `zoo package` with an error naming the entry.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo import cli, hub
from zoo.data.cache import sha256_file

SMALL_MODEL = "forecasting-gru-seattle-weather"

pytestmark = pytest.mark.skipif(SMALL_MODEL not in hub.list_models(), reason=f"{SMALL_MODEL} not in the hub")


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "models" / "copy"
    shutil.copytree(hub.model_dir(SMALL_MODEL), target)
    return target


def _add_entry(directory, relative, outside_file):
    card_path = directory / hub.CARD_FILE
    card = json.loads(card_path.read_text())
    card["files"][relative] = {"sha256": sha256_file(outside_file), "bytes": outside_file.stat().st_size}
    card_path.write_text(json.dumps(card))


def _secret(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of any model\n")
    return secret


@pytest.mark.parametrize("entry", ["../../secret.txt", "{absolute}", "saved_model/../../../secret.txt"])
def test_entries_outside_the_directory_are_refused(model_copy, tmp_path, entry, capsys):
    secret = _secret(tmp_path)
    relative = str(secret) if entry == "{absolute}" else entry
    _add_entry(model_copy, relative, secret)
    assert (model_copy / relative).resolve() == secret.resolve()  # the entry really reaches the file
    with pytest.raises(hub.ModelFilesError, match="inside the model directory"):
        hub.verify_directory(model_copy)
    assert cli.main(["verify", str(model_copy)]) == 1
    assert "inside the model directory" in capsys.readouterr().err
    with pytest.raises(hub.ModelFilesError):
        hub.load(str(model_copy))
    assert cli.main(["export", str(model_copy), str(tmp_path / "deploy")]) == 1
    assert not (tmp_path / "deploy").exists()
    assert cli.main(["package", str(model_copy), "--out", str(tmp_path / "dist")]) == 1
    assert not list((tmp_path / "dist").glob("*.whl")) if (tmp_path / "dist").exists() else True


def test_a_symbolic_link_out_of_the_directory_is_refused(model_copy, tmp_path):
    secret = _secret(tmp_path)
    (model_copy / "notes.txt").symlink_to(secret)
    _add_entry(model_copy, "notes.txt", secret)
    with pytest.raises(hub.ModelFilesError, match="symbolic link"):
        hub.verify_directory(model_copy)


def test_the_untouched_copy_still_verifies(model_copy):
    files = hub.verify_directory(model_copy)
    assert "model.keras" in files and all(not Path(k).is_absolute() for k in files)


def test_package_streams_large_files_into_the_wheel(model_copy, tmp_path):
    """A 64 MB file goes into the wheel without 64 MB (let alone twice that) held in memory."""
    import tracemalloc
    import zipfile

    from zoo import packaging

    big = model_copy / "weights-extra.bin"
    with open(big, "wb") as handle:
        for _ in range(64):
            handle.write(bytes(range(256)) * 4096)  # 1 MB a write
    _add_entry(model_copy, "weights-extra.bin", big)
    tracemalloc.start()
    try:
        wheel = packaging.build_wheel(str(model_copy), tmp_path / "dist", version="1.0.0")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, f"peak Python memory {peak / 2 ** 20:.0f} MB"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        inner = next(n for n in names if n.endswith("/model/weights-extra.bin"))
        assert archive.getinfo(inner).file_size == 64 * 2 ** 20
        record = archive.read(next(n for n in names if n.endswith("RECORD"))).decode()
        assert inner in record and archive.testzip() is None
    assert not list((tmp_path / "dist").glob(".*partial"))


#: The most a shipped model directory may hold (the repository keeps every committed model for good).
MODEL_DIRECTORY_LIMIT = 20_000_000
#: Shipped directories known to be over it, each with the issue that shrinks it.
OVER_THE_LIMIT = {}  # name -> why it is over, while a smaller re-export is pending


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "saved_models").iterdir()
                                        if (p / "card.json").exists()))
def test_a_shipped_model_directory_holds_at_most_20_mb(name):
    directory = Path(__file__).parents[1] / "saved_models" / name
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    if name in OVER_THE_LIMIT:
        pytest.xfail(f"{size / 1e6:.1f} MB; {OVER_THE_LIMIT[name]}")
    assert size <= MODEL_DIRECTORY_LIMIT, f"{name} holds {size / 1e6:.1f} MB"


def test_keras_archives_are_written_deflated_and_load(tmp_path):
    """`export_model` deflates `model.keras` (Keras stores it uncompressed): same members, same
    weights after loading, fewer bytes."""
    import zipfile

    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    before = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        members = [(i.filename, i.compress_type) for i in archive.infolist()]
    assert {kind for _, kind in members} == {zipfile.ZIP_STORED}
    hub.deflate_keras_archive(path)
    with zipfile.ZipFile(path) as archive:
        assert [(i.filename, i.compress_type) for i in archive.infolist()] == \
            [(name, zipfile.ZIP_DEFLATED) for name, _ in members]
    assert path.stat().st_size < before
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".*deflating*"))
