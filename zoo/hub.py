"""The pretrained-model hub: model directories, each written by its recipe.

A model directory holds:

- `model.keras`: the Keras model, fine-tunable (`zoo.load(name)` then `fit`);
- `saved_model/`: a TensorFlow SavedModel for serving, taking raw inputs, that
  loads with plain `tf.saved_model.load` (no zoo import needed);
- `card.json`: what the model is and how well it does, every number measured
  by code, and under `files` the sha256 and size of every other file in the
  directory;
- the training curve and history of the run that produced it.

A model is named in one of three ways, tried in this order:

- a name in the local hub, `models_dir()` (`saved_models/` of a source
  checkout, else `$ZOO_MODELS_DIR` or `~/.local/share/zoo/models`);
- a name registered by an installed model package (a wheel built by
  `zoo package`, which registers its model directory under the entry-point
  group `zoo.models`);
- a path or URL of a model directory: a local directory (a `pathlib.Path`, or
  a string holding a `/` or naming an existing directory), `file://...`, or
  any URL that `tf.io.gfile` reads (`gs://`, `s3://`, `hdfs://`, `ram://`).
  A remote directory is copied to `data_dir()/remote-models/` and verified
  there before anything loads from it.

`list_models()`, `info(model)`, `load(model)` and `load_serving(model)` read
models; `export_model(...)` writes them atomically (built in a temporary
directory, then swapped in; staging directories left by killed exports are
removed by the next export). Cards are strict JSON, and a card holding a
non-finite number (a NaN metric) is refused. Checksums are verified on every
load: every file in the directory must be listed in the card, and every listed
file must be present and match.
"""

from zoo import _backend  # noqa: F401

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import signal
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from zoo.data.cache import ChecksumError, atomic_write_text, data_dir, sha256_file

CARD_FILE = "card.json"
KERAS_FILE = "model.keras"
SERVING_DIR = "saved_model"

#: Entry-point group under which an installed model package registers its model directory
#: (`<model name> = <module>:model_dir`, a function returning the directory's path).
ENTRY_POINT_GROUP = "zoo.models"

#: Under `zoo.data.cache.data_dir()`: verified local copies of remote model directories.
REMOTE_CACHE_DIR = "remote-models"


class UnknownModelError(ValueError):
    """Raised for a model name that is neither in the hub nor in an installed model package."""


class NotAModelError(UnknownModelError):
    """Raised for a path or URL that does not hold a model directory; the message says why."""


class CardError(ValueError):
    """A model card that cannot be read or used; the message names the file and the problem."""


class ModelFilesError(ChecksumError):
    """A model directory whose files do not match its card's `files` table (beyond a checksum)."""

    def __init__(self, path, problem, expected="", actual=""):
        self.problem = problem
        super().__init__(path, expected, actual, note=problem)
        if is_url(path):
            self.path = str(path)  # a URL: `Path` would fold its "//"
        RuntimeError.__init__(self, f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.expected, self.actual))


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, as `locate` resolved it.

    Attributes:
        name: The model's name in the hub or its package; for a path or URL,
            the location as it was given.
        location: The model directory: a `Path`, or the URL of a remote one.
        origin: "hub", "package", "path" or "url".
        package: For an installed model package, "<distribution> <version>".
    """

    name: str
    location: object
    origin: str
    package: str = None

    @property
    def remote(self):
        return self.origin == "url"

    def describe(self):
        """Where the model comes from, in a few words (`zoo list`)."""
        if self.origin == "package":
            return f"package {self.package}"
        if self.origin == "hub":
            return "hub"
        return str(self.location)


#: A model name usable as one hub directory (same rule as `zoo.settings.model_name`).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: A URL scheme followed by "://" (`gs://bucket/m`, `file:///tmp/m`).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

#: Test hook: SIGKILL the process inside `export_model`, once the staging directory holds the
#: model and before it is published (any non-empty value).
KILL_DURING_EXPORT = "ZOO_KILL_DURING_EXPORT"


def is_url(location):
    """Whether `location` is a string with a URL scheme (`gs://...`, `file://...`)."""
    return isinstance(location, str) and _URL.match(location) is not None


def read_card(path):
    """The card at `path` (a local path or a `tf.io.gfile` URL) as a dict.

    `CardError` names the file and what is wrong with it.
    """
    shown = path if is_url(path) else Path(path)
    try:
        raw = _read_remote_bytes(path) if is_url(path) else Path(path).read_bytes()
    except OSError as error:
        raise CardError(f"cannot read model card {shown}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CardError(f"model card {shown} is not valid UTF-8: byte 0x{raw[error.start]:02x} at "
                        f"offset {error.start}") from None
    try:
        card = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise CardError(f"model card {shown} is not valid JSON: {error.msg} at line {error.lineno} "
                        f"column {error.colno}") from None
    except ValueError as error:
        raise CardError(f"model card {shown} is not strict JSON: {error}") from None
    if not isinstance(card, dict):
        raise CardError(f"model card {shown} must hold a JSON object, found {type(card).__name__}")
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


# -- where models are --------------------------------------------------------------------------


def source_checkout():
    """The root of the source checkout zoo runs from, or None for an installed (non-editable) zoo.

    A checkout is recognised by `setup.cfg` and `recipes/` next to the `zoo` package.
    """
    root = Path(__file__).resolve().parent.parent
    if (root / "setup.cfg").is_file() and (root / "recipes").is_dir():
        return root
    return None


def models_dir():
    """The local hub directory.

    `$ZOO_MODELS_DIR` when set; else `saved_models/` of the source checkout
    zoo runs from; else, for an installed zoo, `$XDG_DATA_HOME/zoo/models`
    (`~/.local/share/zoo/models`), where recipes then publish what they train.
    """
    override = os.environ.get("ZOO_MODELS_DIR")
    if override:
        return Path(override).expanduser()
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "saved_models"
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "zoo" / "models"


def _hub_names():
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and (entry / CARD_FILE).exists()
    )


def installed_models():
    """The models of installed model packages: `{name: ModelSource}`, from the `zoo.models` group.

    A package whose entry point fails to load is left out with a `RuntimeWarning` naming it.
    """
    from importlib import metadata

    found = {}
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in found:
            continue  # the first on sys.path wins, as for imports
        distribution = getattr(entry_point, "dist", None)
        package = (f"{distribution.metadata['Name']} {distribution.version}" if distribution is not None
                   else entry_point.value)
        try:
            directory = Path(entry_point.load()())
        except Exception as error:  # a broken package must not hide the others
            warnings.warn(f"model package {package} (entry point {entry_point.name!r} = "
                          f"{entry_point.value!r}) cannot be loaded: {error}", RuntimeWarning)
            continue
        found[entry_point.name] = ModelSource(entry_point.name, directory, "package", package)
    return found


def list_sources(pattern=None):
    """Every model of the hub and of the installed model packages, as `ModelSource`s.

    Sorted by name, a hub model before a package model of the same name
    (the hub one is what `load(name)` gives). Optionally filtered by a glob
    pattern on the name.
    """
    import fnmatch

    root = models_dir()
    sources = [ModelSource(name, root / name, "hub") for name in _hub_names()]
    sources += installed_models().values()
    if pattern:
        sources = [s for s in sources if fnmatch.fnmatch(s.name, pattern)]
    return sorted(sources, key=lambda s: (s.name, s.origin != "hub"))


def list_models(pattern=None):
    """Names of the models in the hub and in installed model packages, optionally glob-filtered."""
    return sorted({source.name for source in list_sources(pattern)})


def _looks_like_path(text):
    return os.sep in text or "/" in text or text.startswith(("~", ".")) or (
        os.altsep is not None and os.altsep in text)


def locate(model):
    """Where `model` (a hub or package name, a path or a URL) is, as a `ModelSource`.

    Names are looked up in the hub first, then in the installed model
    packages; a string that is no known name but holds a `/`, starts with `~`
    or `.`, or names an existing directory is a path. The location must hold
    a model directory (a `card.json`), else `NotAModelError` says what is
    there instead.
    """
    if isinstance(model, os.PathLike):
        return _checked(ModelSource(os.fspath(model), Path(model).expanduser(), "path"))
    if not isinstance(model, str) or not model:
        raise UnknownModelError(f"a model must be a name, a path or a URL (a non-empty string or a "
                                f"path object), received {model!r}")
    if is_url(model):
        parsed = urllib.parse.urlparse(model)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise NotAModelError(f"a file:// URL must name a local directory (file:///path), "
                                     f"received {model!r}")
            local = Path(urllib.request.url2pathname(parsed.path))
            return _checked(ModelSource(model, local, "path"))
        return _checked(ModelSource(model, model.rstrip("/"), "url"))
    if _SAFE_NAME.fullmatch(model):
        if model in _hub_names():
            return ModelSource(model, models_dir() / model, "hub")
        packaged = installed_models().get(model)
        if packaged is not None:
            return _checked(packaged)
    if _looks_like_path(model) or Path(model).is_dir():
        return _checked(ModelSource(model, Path(model).expanduser(), "path"))
    known = list_models()
    listing = ", ".join(known) if known else "(none)"
    raise UnknownModelError(f"unknown model {model!r}; known models: {listing} (a model directory "
                            f"can also be named by a path such as ./{model} or a URL)")


def _checked(source):
    """`source` if its location holds a model card, else `NotAModelError` saying what is there."""
    location = source.location
    if source.remote:
        import tensorflow as tf

        try:
            exists, is_dir = tf.io.gfile.exists(location), tf.io.gfile.isdir(location)
            has_card = is_dir and tf.io.gfile.exists(f"{location}/{CARD_FILE}")
            has_saved_model = is_dir and tf.io.gfile.exists(f"{location}/saved_model.pb")
        except tf.errors.OpError as error:  # no file system for the scheme, no access, ...
            raise OSError(f"cannot read {location}: {error.message or type(error).__name__}") from None
    else:
        exists, is_dir = location.exists(), location.is_dir()
        has_card = is_dir and (location / CARD_FILE).is_file()
        has_saved_model = is_dir and (location / "saved_model.pb").is_file()
    if has_card:
        return source
    what = f"model directory {location}" if source.origin != "package" else (
        f"model directory {location} of package {source.package}")
    if not exists:
        raise NotAModelError(f"no {what}: it does not exist")
    if not is_dir:
        raise NotAModelError(f"{location} is a file, not a model directory")
    hint = (" It holds a bare SavedModel: pass the model directory around it, or load it with "
            "tf.saved_model.load." if has_saved_model else "")
    raise NotAModelError(f"{location} is not a zoo model directory: it has no {CARD_FILE} (a model "
                         f"directory holds {CARD_FILE}, {KERAS_FILE} and {SERVING_DIR}/, as a recipe or "
                         f"'zoo export' writes it).{hint}")


def model_dir(model):
    """The local directory of `model` (a name, path or URL).

    For a remote URL this is the verified local copy (see `fetch_remote`).
    """
    source = locate(model)
    if source.remote:
        return fetch_remote(source.location)
    return source.location


def info(model):
    """The model card of `model` (a name, path or URL) as a dict; `CardError` if it is unreadable."""
    source = locate(model)
    if source.remote:
        return read_card(f"{source.location}/{CARD_FILE}")
    return read_card(source.location / CARD_FILE)


# -- checksums ---------------------------------------------------------------------------------


def _present_files(directory):
    return {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if (path.is_file() or path.is_symlink()) and path.relative_to(directory).as_posix() != CARD_FILE
    }


def _unsafe_entry(relative, directory, root):
    """Why a card's `files` key may not be trusted (None when it names a file inside the directory)."""
    if not isinstance(relative, str) or not relative:
        return "is not a file name"
    if "\x00" in relative or "\\" in relative:
        return "holds a NUL byte or a backslash"
    if relative.startswith("/") or Path(relative).is_absolute() or re.match(r"^[A-Za-z]:", relative):
        return "is an absolute path"
    if ".." in relative.split("/"):
        return "climbs out with '..'"
    resolved = (directory / relative).resolve()
    if resolved != root and root not in resolved.parents:
        return f"resolves (through a symbolic link) to {resolved}, outside the directory"
    return None


def verify_directory(directory, shown_as=None):
    """Check a local model directory against its card's `files` table.

    Every file in the directory (but the card) must be listed, every listed
    file must be present, and its sha256 must match; the first problem
    raises `ChecksumError` (or its subclass `ModelFilesError`) naming the file.

    Args:
        directory: The local model directory.
        shown_as: The location to name in errors instead of `directory` (the
            URL a local copy was fetched from).

    Returns:
        The card's `files` table.
    """
    directory = Path(directory)
    card_path = directory / CARD_FILE
    card = read_card(card_path)

    def shown(relative):
        return f"{shown_as}/{relative}" if shown_as is not None else directory / relative

    files = card.get("files", {})
    if not files or not isinstance(files, dict):
        raise ModelFilesError(shown(CARD_FILE), "the card has no 'files' table of checksums")
    unlisted = sorted(_present_files(directory) - set(files))
    if unlisted:
        raise ModelFilesError(shown(unlisted[0]),
                              f"the file is not listed in the 'files' table of {shown(CARD_FILE)}"
                              + (f" ({len(unlisted) - 1} more unlisted)" if len(unlisted) > 1 else ""))
    root = directory.resolve()
    for relative in sorted(files):
        problem = _unsafe_entry(relative, directory, root)
        if problem:
            raise ModelFilesError(shown(CARD_FILE), f"its 'files' entry {relative!r} {problem}; every "
                                  f"entry must name a file inside the model directory")
    for relative, entry in sorted(files.items()):
        path = directory / relative
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(expected, str):
            raise ModelFilesError(shown(relative), f"its entry in {shown(CARD_FILE)} has no sha256")
        if not path.is_file():
            if shown_as is not None:
                raise ModelFilesError(shown(relative), f"the file is listed in {shown(CARD_FILE)} "
                                      f"but missing", expected, "missing")
            raise ChecksumError(path, expected, "missing",
                                note=f"the file is listed in {card_path} but missing")
        actual = sha256_file(path)
        if actual != expected:
            if shown_as is not None:
                raise ModelFilesError(shown(relative), f"sha256 mismatch: expected {expected}, got "
                                      f"{actual}", expected, actual)
            raise ChecksumError(path, expected, actual)
    return files


def verify_files(model):
    """Check the directory of `model` (a name, path or URL) against its card's `files` table.

    See `verify_directory`; a remote directory is checked on its local copy
    (`fetch_remote`), errors naming the remote files. Returns the `files` table.
    """
    source = locate(model)
    if source.remote:
        return verify_directory(fetch_remote(source.location), shown_as=source.location)
    return verify_directory(source.location)


# -- remote model directories ------------------------------------------------------------------


def _read_remote_bytes(url):
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(url, "rb") as handle:
            return handle.read()
    except tf.errors.OpError as error:
        raise OSError(error.message or type(error).__name__) from None


def fetch_remote(url, verify=True):
    """A verified local copy of the model directory at `url` (anything `tf.io.gfile` reads).

    The copy lives in `data_dir()/remote-models/`, keyed by the URL and the
    bytes of its card, so a model republished at the same URL is fetched
    again. An existing copy is re-verified and fetched again if damaged; a
    new one is built in a staging directory, verified, then renamed into
    place. Checksum problems name the remote files.
    """
    import tensorflow as tf

    url = url.rstrip("/")
    card_bytes = _read_remote_bytes(f"{url}/{CARD_FILE}")
    key = hashlib.sha256(url.encode("utf-8") + b"\0" + card_bytes).hexdigest()[:20]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rsplit("/", 1)[-1])[:48] or "model"
    root = data_dir() / REMOTE_CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(root)
    local = root / f"{label}-{key}"
    if local.is_dir():
        if not verify:
            return local
        try:
            verify_directory(local, shown_as=url)
            return local
        except (ChecksumError, CardError):
            shutil.rmtree(local, ignore_errors=True)  # a damaged copy: fetch it again
    staging = root / f".staging-{local.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            for folder, _, names in tf.io.gfile.walk(url):
                relative = folder[len(url):].strip("/")
                target = staging / relative
                target.mkdir(parents=True, exist_ok=True)
                for name in names:
                    if not relative and name == CARD_FILE:
                        (target / name).write_bytes(card_bytes)  # exactly the card the key was made of
                    else:
                        tf.io.gfile.copy(f"{folder.rstrip('/')}/{name}", str(target / name), overwrite=True)
        except tf.errors.OpError as error:
            raise OSError(f"cannot copy the model directory {url}: "
                          f"{error.message or type(error).__name__}") from None
        if verify:
            verify_directory(staging, shown_as=url)
        try:
            os.replace(staging, local)
        except OSError:  # another process published the same copy meanwhile
            if not local.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return local


# -- loading -----------------------------------------------------------------------------------


def load(model, verify=True, compile=True):
    """The Keras model of `model` (a name, path or URL), checksums verified, ready for `predict`/`fit`."""
    import keras

    import zoo.layers  # noqa: F401  (registers the zoo layers for deserialization)

    from zoo.tasks import get_task

    directory = verified_dir(model, verify)
    task = get_task(read_card(directory / CARD_FILE)["task"])
    if hasattr(task, "register_custom_objects"):
        task.register_custom_objects()
    with warnings.catch_warnings():
        # Models are exported with a fresh (unbuilt) optimizer to keep the file small; Keras
        # warns that it has no optimizer state to restore, which is the intent.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(directory / KERAS_FILE, compile=compile)


def load_serving(model, verify=True):
    """The serving SavedModel of `model` (a name, path or URL), checksums verified."""
    import tensorflow as tf

    return tf.saved_model.load(str(verified_dir(model, verify) / SERVING_DIR))


def verified_dir(model, verify=True):
    """The local directory of `model` (a name, path or URL; a remote one fetched), checked against its
    card when `verify`."""
    source = locate(model)
    if source.remote:
        return fetch_remote(source.location, verify=verify)
    if verify:
        verify_directory(source.location)
    return source.location


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


def deflate_keras_archive(path):
    """Rewrite the `.keras` zip at `path` with its members deflated (Keras stores them
    uncompressed); the members, their order and their dates are kept, so Keras loads it as
    before. Float weights shrink by about a tenth, the JSON config by far more. Atomic."""
    import zipfile

    path = Path(path)
    temporary = path.with_name(f".{path.name}.deflating-{os.getpid()}")
    try:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(
                temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as target:
            for info in source.infolist():
                member = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                member.compress_type = zipfile.ZIP_DEFLATED
                member.external_attr = info.external_attr
                with source.open(info) as reader, target.open(member, "w") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


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
        deflate_keras_archive(staging / KERAS_FILE)
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
        _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _swap_in(staging, final):
    """Put the finished directory `staging` in the place of `final` (which may not exist yet): two
    renames, so a reader sees the old directory or the new one, never a mix."""
    retired = final.with_name(f".retired-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)


def rewrite_serving(model, write_serving, reason, root=None):
    """Write the serving SavedModel of the hub model `model` (a name in `root`) again from its
    `model.keras`, for a fix in the serving graph that leaves the trained weights alone.

    `write_serving(keras_model, path)` is the task's writer. `model.keras`, the card's measured
    figures and every other file are kept byte for byte; the card gains a `serving_rewritten` entry
    (date, `reason`, software versions) and new checksums. The directory is swapped atomically, as
    `export_model` does. Returns its path.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("rewrite_serving needs a reason (it is recorded in the card)")
    root = Path(root) if root is not None else models_dir()
    final = root / model
    if not (final / CARD_FILE).is_file():
        raise FileNotFoundError(f"no hub model {model!r} in {root}")
    verify_directory(final, shown_as=model)
    remove_abandoned_staging(root)
    staging = root / f".staging-{model}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(final, staging, ignore=shutil.ignore_patterns(SERVING_DIR))
    try:
        keras_model = load(str(final), verify=False, compile=False)  # verified just above
        from zoo.layers import native

        with native.portable():
            write_serving(keras_model, staging / SERVING_DIR)
        card = read_card(staging / CARD_FILE)
        card.setdefault("serving_rewritten", []).append(
            {"date": time.strftime("%Y-%m-%d"), "reason": reason.strip(), "versions": software_versions()})
        card["files"] = file_checksums(staging)
        atomic_write_text(staging / CARD_FILE, card_json(card))
        _swap_in(staging, final)
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
