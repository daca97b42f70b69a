"""Pip-installable model packages: one wheel per pretrained model.

`zoo package sentiment-bilstm-mr --out dist/` (or `build_wheel`) writes
`dist/zoo_model_sentiment_bilstm_mr-<version>-py3-none-any.whl`, the
distribution `zoo-model-sentiment-bilstm-mr`. Installed with pip, it holds

- the Python package `zoo_model_sentiment_bilstm_mr`, whose `model_dir()`
  returns the installed model directory and `load()` the Keras model;
- that model directory (`card.json`, `model.keras`, `saved_model/`, curves),
  copied byte for byte after its checksums were verified;
- the entry point `sentiment-bilstm-mr = zoo_model_sentiment_bilstm_mr:model_dir`
  in the group `zoo.models`, through which `zoo.load("sentiment-bilstm-mr")`
  and `zoo list` find it.

The wheel is written with the standard library alone (no build backend, no
network) and is reproducible: the same model directory and version give the
same bytes. Its version defaults to the zoo version that trained the model
(the card's `versions.zoo`), the convention of spaCy's model packages.
"""

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

from zoo import hub
from zoo.data.cache import ChecksumError

#: Distribution names are `zoo-model-<model name>`.
DISTRIBUTION_PREFIX = "zoo-model-"

#: Timestamp of every wheel member (the earliest a zip file can hold), for reproducible wheels.
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

#: Public PEP 440 versions ("1.0", "0.1.0", "2.1.0rc1", "1.0.post2"); no local "+..." part.
_VERSION = re.compile(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")


def distribution_name(model_name):
    """The pip distribution of a model: "sentiment-bilstm-mr" -> "zoo-model-sentiment-bilstm-mr"."""
    return DISTRIBUTION_PREFIX + re.sub(r"[-_.]+", "-", model_name).lower()


def module_name(model_name):
    """The importable package of a model: "sentiment-bilstm-mr" -> "zoo_model_sentiment_bilstm_mr"."""
    return "zoo_model_" + re.sub(r"[^A-Za-z0-9]+", "_", model_name).lower()


def wheel_filename(model_name, version):
    """The wheel's file name (PEP 427: the distribution name with `_` for its separators)."""
    return f"{distribution_name(model_name).replace('-', '_')}-{version}-py3-none-any.whl"


_INIT_TEMPLATE = '''"""The zoo model {name}, packaged by `zoo package`.

    import zoo
    model = zoo.load("{name}")            # found through the `zoo.models` entry point
    serving = zoo.load_serving("{name}")

The model directory (card.json, model.keras, saved_model/) is `model_dir()`;
its SavedModel loads with plain TensorFlow:
`tf.saved_model.load(str(model_dir() / "saved_model"))`.
"""

from pathlib import Path

MODEL_NAME = {name!r}


def model_dir():
    """The installed model directory."""
    return Path(__file__).resolve().parent / "model"


def load(**kwargs):
    """The Keras model, checksums verified (`zoo.load` arguments pass through)."""
    import zoo

    return zoo.load(model_dir(), **kwargs)
'''


def _record_hash(data):
    return f"sha256={_urlsafe(hashlib.sha256(data).digest())}"


def _metadata(model_name, version, card):
    task, io_kind = card.get("task", "?"), card.get("io", "?")
    zoo_version = card.get("versions", {}).get("zoo") if isinstance(card.get("versions"), dict) else None
    requirement = f"zoo>={zoo_version}" if isinstance(zoo_version, str) and _VERSION.fullmatch(
        zoo_version) else "zoo"
    from zoo.report import headline

    lines = [
        "Metadata-Version: 2.1",
        f"Name: {distribution_name(model_name)}",
        f"Version: {version}",
        f"Summary: Pretrained zoo model {model_name} ({task}, {io_kind})",
        "Requires-Python: >=3.10",
        f"Requires-Dist: {requirement}",
        "Description-Content-Type: text/markdown",
    ]
    if isinstance(card.get("license"), str):
        lines.append("License: " + " ".join(card["license"].split()))  # one header line
    measured = headline(card)
    description = (f"# {model_name}\n\nA {task} model ({io_kind}) of the zoo model hub, with its "
                   f"card and checksums.\n\n" + (f"Measured: {measured}.\n\n" if measured else "")
                   + f"```python\nimport zoo\nmodel = zoo.load({model_name!r})\n```\n")
    return "\n".join(lines) + "\n\n" + description


def build_wheel(model, out_dir, version=None):
    """Build the wheel of a model package.

    Args:
        model: The model: a hub or package name, a path or a URL (anything
            `zoo.hub.locate` accepts). Its directory is verified against its
            card, and every file is checked again as it goes into the wheel.
        out_dir: Directory the wheel is written to (created if needed).
        version: The package version (public PEP 440, e.g. "1.0.0"); default
            the card's `versions.zoo`.

    Returns:
        The path of the written wheel.
    """
    directory = hub.model_dir(model)
    files = hub.verify_directory(directory, shown_as=model if hub.is_url(model) else None)
    card_bytes = (directory / hub.CARD_FILE).read_bytes()
    card = hub.read_card(directory / hub.CARD_FILE)
    model_name = card.get("name") or directory.name
    if not isinstance(model_name, str) or not hub._SAFE_NAME.fullmatch(model_name):
        raise ValueError(f"the card's name must be a plain model name (letters, digits, '.', '_', '-'), "
                         f"received {model_name!r}")
    if version is None:
        versions = card.get("versions")
        version = versions.get("zoo") if isinstance(versions, dict) else None
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ValueError(f"the card of {model_name} records no usable zoo version ({version!r}); "
                             f"pass version, e.g. '1.0.0'")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(f"version must be a public PEP 440 version such as '1.0.0', received {version!r}")

    package = module_name(model_name)
    dist_info = f"{distribution_name(model_name).replace('-', '_')}-{version}.dist-info"
    small = [(f"{package}/__init__.py", _INIT_TEMPLATE.format(name=model_name).encode("utf-8")),
             (f"{package}/model/{hub.CARD_FILE}", card_bytes)]
    trailer = [
        (f"{dist_info}/METADATA", _metadata(model_name, version, card).encode("utf-8")),
        (f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: zoo {_zoo_version()}\n"
                                f"Root-Is-Purelib: true\nTag: py3-none-any\n").encode("utf-8")),
        (f"{dist_info}/entry_points.txt",
         f"[{hub.ENTRY_POINT_GROUP}]\n{model_name} = {package}:model_dir\n".encode("utf-8")),
        (f"{dist_info}/top_level.txt", f"{package}\n".encode("utf-8")),
    ]
    target = Path(out_dir) / wheel_filename(model_name, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    record = []
    try:
        # The wheel is written to disk as it is built, each model file streamed in chunks
        # (memory stays flat whatever the model's size), then renamed into place.
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
            for name, data in small:
                _write_member(wheel, name, data)
                record.append(f"{name},{_record_hash(data)},{len(data)}\n")
            for relative, entry in sorted(files.items()):
                name = f"{package}/model/{relative}"
                digest, size = _stream_member(wheel, name, directory / relative)
                if digest.hex() != entry["sha256"]:  # changed since it was verified
                    raise ChecksumError(directory / relative, entry["sha256"], digest.hex())
                record.append(f"{name},sha256={_urlsafe(digest)},{size}\n")
            for name, data in trailer:
                _write_member(wheel, name, data)
                record.append(f"{name},{_record_hash(data)},{len(data)}\n")
            _write_member(wheel, f"{dist_info}/RECORD",
                          ("".join(record) + f"{dist_info}/RECORD,,\n").encode("utf-8"))
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def _zip_info(name):
    member = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
    member.external_attr = 0o644 << 16
    member.compress_type = zipfile.ZIP_DEFLATED
    return member


def _write_member(wheel, name, data):
    wheel.writestr(_zip_info(name), data)


#: Bytes read at a time when a model file is streamed into the wheel.
_CHUNK = 1 << 20


def _stream_member(wheel, name, path):
    """Copy `path` into the wheel as `name`, chunk by chunk; returns (sha256 digest, size)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as source, wheel.open(_zip_info(name), "w", force_zip64=True) as member:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            member.write(chunk)
            size += len(chunk)
    return digest.digest(), size


def _urlsafe(digest):
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _zoo_version():
    import zoo

    return zoo.__version__
