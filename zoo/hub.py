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
swapped in; staging directories left by killed exports are removed by the next
export). Cards are strict JSON, and a card holding a non-finite number (a NaN
metric) is refused. Checksums are verified on every load: every file in the
directory must be listed in the card, and every listed file must be present
and match.
"""

from zoo import _backend  # noqa: F401

import json
import math
import os
import re
import shutil
import signal
from pathlib import Path

from zoo.data.cache import ChecksumError, atomic_write_text, sha256_file

CARD_FILE = "card.json"
KERAS_FILE = "model.keras"
SERVING_DIR = "saved_model"


class UnknownModelError(ValueError):
    """Raised for a model name that is not in the hub."""


class CardError(ValueError):
    """A model card that cannot be read or used; the message names the file and the problem."""


class ModelFilesError(ChecksumError):
    """A model directory whose files do not match its card's `files` table (beyond a checksum)."""

    def __init__(self, path, problem):
        self.problem = problem
        super().__init__(path, "", "", note=problem)
        RuntimeError.__init__(self, f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


#: A model name usable as one hub directory (same rule as `zoo.settings.model_name`).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: Test hook: SIGKILL the process inside `export_model`, once the staging directory holds the
#: model and before it is published (any non-empty value).
KILL_DURING_EXPORT = "ZOO_KILL_DURING_EXPORT"


def read_card(path):
    """The card at `path` as a dict; `CardError` names the file and what is wrong with it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CardError(f"cannot read model card {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CardError(f"model card {path} is not valid UTF-8: byte 0x{raw[error.start]:02x} at "
                        f"offset {error.start}") from None
    try:
        card = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise CardError(f"model card {path} is not valid JSON: {error.msg} at line {error.lineno} "
                        f"column {error.colno}") from None
    except ValueError as error:
        raise CardError(f"model card {path} is not strict JSON: {error}") from None
    if not isinstance(card, dict):
        raise CardError(f"model card {path} must hold a JSON object, found {type(card).__name__}")
    return card


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def non_finite_fields(value, where=""):
    """Dotted paths of every NaN or infinite float inside `value` (nested dicts and lists)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where or '(value)'} = {value}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_fields(v, f"{where}[{i}]")]
    return []


def card_json(card):
    """`card` as strict JSON text; `CardError` if it holds a non-finite number."""
    bad = non_finite_fields(card)
    if bad:
        raise CardError("the card holds non-finite numbers (" + ", ".join(bad) + "); "
                        "a model whose metrics are not finite is not published")
    return json.dumps(card, indent=2, sort_keys=False, allow_nan=False) + "\n"


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
    """The model card of `name` as a dict (`CardError` if it is unreadable)."""
    return read_card(model_dir(name) / CARD_FILE)


def _present_files(directory):
    return {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if (path.is_file() or path.is_symlink()) and path.relative_to(directory).as_posix() != CARD_FILE
    }


def verify_files(name):
    """Check the model directory against the card's `files` table.

    Every file in the directory (but the card) must be listed, every listed
    file must be present, and its sha256 must match; the first problem
    raises `ChecksumError` (or its subclass `ModelFilesError`) naming the file.
    """
    directory = model_dir(name)
    card = info(name)
    card_path = directory / CARD_FILE
    files = card.get("files", {})
    if not files or not isinstance(files, dict):
        raise ModelFilesError(card_path, "the card has no 'files' table of checksums")
    unlisted = sorted(_present_files(directory) - set(files))
    if unlisted:
        raise ModelFilesError(directory / unlisted[0],
                              f"the file is not listed in the 'files' table of {card_path}"
                              + (f" ({len(unlisted) - 1} more unlisted)" if len(unlisted) > 1 else ""))
    for relative, entry in sorted(files.items()):
        path = directory / relative
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(expected, str):
            raise ModelFilesError(path, f"its entry in {card_path} has no sha256")
        if not path.is_file():
            raise ChecksumError(path, expected, "missing",
                                note=f"the file is listed in {card_path} but missing")
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
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"a model name must be a plain directory name (letters, digits, '.', '_', "
                         f"'-', starting with a letter or digit), received {name!r}")
    bad = non_finite_fields(card)
    if bad:  # refuse before any file is written
        raise CardError(f"refusing to publish {name}: its card holds non-finite numbers ("
                        + ", ".join(bad) + ")")
    root = Path(root) if root is not None else models_dir()
    root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(root)
    final = root / name
    staging = root / f".staging-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        model.save(staging / KERAS_FILE)
        if os.environ.get(KILL_DURING_EXPORT):
            print(f"[zoo] {KILL_DURING_EXPORT}: killing the process during the export", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
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
        atomic_write_text(staging / CARD_FILE, card_json(card))
        retired = root / f".retired-{name}-{os.getpid()}"
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_abandoned_staging(root):
    """Remove `.staging-*` / `.retired-*` directories in `root` whose exporting process is gone.

    They are left by exports that were killed; a directory whose process
    still runs (a concurrent export) is kept. Returns the removed paths.
    """
    removed = []
    for entry in Path(root).iterdir():
        match = re.fullmatch(r"\.(?:staging|retired)-.+-(\d+)", entry.name)
        if not match or not entry.is_dir():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _process_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
