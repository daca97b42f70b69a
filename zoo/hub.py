"""The pretrained-model hub: `saved_models/<name>/`, each written by its recipe.

A model directory holds:

- `model.keras`: the Keras model, fine-tunable (`zoo.load(name)` then `fit`);
- `saved_model/`: a TensorFlow SavedModel for serving, taking raw inputs, that
  loads with plain `tf.saved_model.load` (no zoo import needed);
- `card.json`: what the model is and how well it does, every number measured
  by code, and under `files` the sha256 and size of every other file in the
  directory;
- the training curve and history of the run that produced it.

`list_models()`, `info(name)`, `load(name)` and `load_serving(name)` read it;
`export_model(...)` writes it atomically (built in a temporary directory, then
swapped in). Checksums are verified on every load.
"""

from zoo import _backend  # noqa: F401

import json
import os
import shutil
from pathlib import Path

from zoo.data.cache import ChecksumError, atomic_write_text, sha256_file

CARD_FILE = "card.json"
KERAS_FILE = "model.keras"
SERVING_DIR = "saved_model"


class UnknownModelError(ValueError):
    """Raised for a model name that is not in the hub."""


def models_dir():
    """Where pretrained models live: `$ZOO_MODELS_DIR`, else the repository's `saved_models/`."""
    override = os.environ.get("ZOO_MODELS_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "saved_models"


def list_models(pattern=None):
    """Names of the models in the hub (those with a card), optionally filtered by a glob pattern."""
    import fnmatch

    root = models_dir()
    if not root.is_dir():
        return []
    names = sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and (entry / CARD_FILE).exists()
    )
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def model_dir(name):
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"a model name must be a non-empty string, received {name!r}")
    known = list_models()
    if name not in known:
        listing = ", ".join(known) if known else "(none)"
        raise UnknownModelError(f"unknown model {name!r}; known models: {listing}")
    return models_dir() / name


def info(name):
    """The model card of `name` as a dict."""
    return json.loads((model_dir(name) / CARD_FILE).read_text(encoding="utf-8"))


def verify_files(name):
    """Check the sha256 of every file the card lists; raise `ChecksumError` naming the first bad one."""
    directory = model_dir(name)
    card = info(name)
    files = card.get("files", {})
    if not files:
        raise ChecksumError(directory / CARD_FILE, "a 'files' table", "none",
                            note="the card lists no file checksums")
    for relative, entry in sorted(files.items()):
        expected = entry["sha256"]
        path = directory / relative
        if not path.exists():
            raise ChecksumError(path, expected, "missing", note="the file is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(path, expected, actual)
    return files


def load(name, verify=True, compile=True):
    """The Keras model of `name`, checksums verified, ready for `predict`/`fit`."""
    import keras

    import zoo.layers  # noqa: F401  (registers the zoo layers for deserialization)

    from zoo.tasks import get_task

    if verify:
        verify_files(name)
    task = get_task(info(name)["task"])
    if hasattr(task, "register_custom_objects"):
        task.register_custom_objects()
    import warnings

    with warnings.catch_warnings():
        # Models are exported with a fresh (unbuilt) optimizer to keep the file small; Keras
        # warns that it has no optimizer state to restore, which is the intent.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(model_dir(name) / KERAS_FILE, compile=compile)


def load_serving(name, verify=True):
    """The serving SavedModel of `name` (`tf.saved_model.load`), checksums verified."""
    import tensorflow as tf

    if verify:
        verify_files(name)
    return tf.saved_model.load(str(model_dir(name) / SERVING_DIR))


def file_checksums(directory):
    """`{relative path: {"sha256": hex digest, "bytes": size}}` for every file but the card."""
    directory = Path(directory)
    return {
        path.relative_to(directory).as_posix(): {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != CARD_FILE
    }


def software_versions():
    import platform

    import keras
    import tensorflow as tf

    import zoo

    return {
        "zoo": zoo.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def export_model(name, model, card, write_serving, extra_files=(), root=None):
    """Write `root/name/` atomically: model.keras, saved_model/, extra files and the card.

    Args:
        name: Directory name, e.g. "sentiment-bilstm-mr".
        model: The trained Keras model.
        card: Dict of card fields measured by the recipe; `name`, `files`
            and `versions` are filled in here.
        write_serving: Callable `(model, path)` writing the serving
            SavedModel to `path` (task-specific: it sets the raw-input
            signatures).
        extra_files: Paths (or `(path, name_in_model_dir)` pairs) copied next
            to the model (curves, history).
        root: Hub directory (default `models_dir()`).

    Returns:
        The path of the written model directory.
    """
    root = Path(root) if root is not None else models_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    staging = root / f".staging-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        model.save(staging / KERAS_FILE)
        from zoo.layers import native

        with native.portable():  # serving graphs of standard TensorFlow ops only
            write_serving(model, staging / SERVING_DIR)
        for extra in extra_files:
            source, target_name = extra if isinstance(extra, (tuple, list)) else (extra, Path(extra).name)
            source = Path(source)
            if source.exists():
                shutil.copy2(source, staging / target_name)
        card = dict(card)
        card["name"] = name
        card.setdefault("versions", software_versions())
        card["files"] = file_checksums(staging)
        atomic_write_text(staging / CARD_FILE, json.dumps(card, indent=2, sort_keys=False) + "\n")
        retired = root / f".retired-{name}-{os.getpid()}"
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
