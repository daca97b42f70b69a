"""Pinned Debian packages as data sources: download with apt-get, check the sha256, read members.

Several data sets of the zoo ship inside Debian packages (the Ding dictionary,
the translation catalogs of Battle for Wesnoth). A :class:`DebianPackage`
names one exact build and the sha256 of its ``.deb``; :func:`fetch_deb`
returns the checked file from ``data_dir()/downloads/``, downloading it with
``apt-get download NAME=VERSION`` on first use (after ``apt-get update`` when
apt does not know the package yet). A ``.deb`` copied there by hand is used as
well, so machines without apt work too. :func:`read_deb_members` reads files
out of the package's ``data.tar`` in Python, without dpkg.

Nothing is downloaded at import time.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from zoo.data.cache import (
    DataUnavailableError,
    downloads_dir,
    move_verified_download,
    output_tail,
    run_with_timeout,
    verify_cached_download,
)

__all__ = ["DebianPackage", "fetch_deb", "read_deb_members"]

log = logging.getLogger(__name__)

#: Seconds ``apt-get download`` (and ``apt-get update``) may run before it is stopped.
DEFAULT_FETCH_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class DebianPackage:
    """One build of a Debian package: ``name``, ``version`` (with its epoch, if any) and its sha256.

    Args:
        name: The binary package, e.g. ``"trans-de-en"``.
        version: Its Debian version as apt spells it, e.g. ``"1:1.16.9-1"``.
        sha256: The sha256 of the ``.deb`` served by the Debian archive.
        pool: The archive folder, e.g. ``"main/t/trans-de-en"`` (for the
            download address printed when apt cannot fetch it).
        architecture: ``"all"`` for data packages.
        what: A few words for error messages ("the Ding German-English dictionary").
    """

    name: str
    version: str
    sha256: str
    pool: str
    architecture: str = "all"
    what: str = ""

    @property
    def filename(self) -> str:
        """The file name in the Debian archive (the epoch is not part of it)."""
        return f"{self.name}_{self.version.split(':', 1)[-1]}_{self.architecture}.deb"

    @property
    def url(self) -> str:
        return f"https://deb.debian.org/debian/pool/{self.pool}/{self.filename}"

    @property
    def snapshot_url(self) -> str:
        return f"https://snapshot.debian.org/package/{self.pool.rsplit('/', 1)[-1]}/{self.version}/"

    def describe(self) -> dict:
        """A JSON-ready record for a model card."""
        return {"package": self.name, "version": self.version, "distribution": "Debian",
                "url": self.url, "sha256": self.sha256}


def _which(tool: str) -> str | None:
    """Path of ``tool`` on PATH (a function so tests can pretend a tool is missing)."""
    return shutil.which(tool)


def _apt_get_download_command(apt_get: str, package: DebianPackage) -> list[str]:
    return [apt_get, "-q", "download", f"{package.name}={package.version}"]


def _apt_get_update_command(apt_get: str) -> list[str]:
    return [apt_get, "-q", "update"]


def _unavailable(package: DebianPackage, reason: str) -> DataUnavailableError:
    what = f" ({package.what})" if package.what else ""
    return DataUnavailableError(
        f"Could not obtain the Debian package {package.name} {package.version}{what}: {reason}\n"
        f"On Debian or Ubuntu: install apt (it is there by default), run `apt-get update` as root "
        f"if the package lists are empty, then `apt-get download {package.name}={package.version}`.\n"
        f"Elsewhere: download {package.url} (older copies: {package.snapshot_url}) on a machine with "
        f"network access and copy it to {downloads_dir() / package.filename} (the 'downloads' "
        f"folder of the zoo data dir: $ZOO_DATA_DIR, else $XDG_CACHE_HOME/zoo or ~/.cache/zoo). "
        f"Its sha256 must be {package.sha256}."
    )


def _saved_deb(folder: Path, package: DebianPackage) -> Path | None:
    """The file apt-get saved in ``folder`` (apt writes an epoch's ':' as '%3a' in the name)."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith(f"{package.name}_") and path.name.endswith(".deb"):
            return path
    return None


def _download_deb(package: DebianPackage, timeout: float) -> Path:
    """Fetch ``package`` with apt-get into the downloads folder, check it, return its path."""
    apt_get = _which("apt-get")
    if apt_get is None:
        raise _unavailable(package, "apt-get is not installed and no copy of the package is cached.")
    directory = downloads_dir()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".apt-download-") as tmp:
        tmp = Path(tmp)

        def download() -> tuple[int, str]:
            return run_with_timeout(_apt_get_download_command(apt_get, package), timeout, cwd=tmp)

        try:
            returncode, output = download()
            if returncode != 0:
                # Empty or stale package lists: apt does not know the package yet.
                log.info("apt-get download failed; running apt-get update and retrying.")
                update_code, update_output = run_with_timeout(
                    _apt_get_update_command(apt_get), timeout, cwd=tmp)
                if update_code != 0:
                    raise _unavailable(
                        package,
                        f"apt-get download exited with status {returncode}:\n{output_tail(output)}\n"
                        f"and apt-get update exited with status {update_code}:\n"
                        f"{output_tail(update_output)}")
                returncode, output = download()
        except subprocess.TimeoutExpired:
            raise _unavailable(package, f"apt-get did not finish within {timeout:g} s.") from None
        except OSError as exc:
            raise _unavailable(package, f"could not run apt-get ({exc}).") from exc
        if returncode != 0:
            raise _unavailable(
                package, f"apt-get download exited with status {returncode}:\n{output_tail(output)}")
        saved = _saved_deb(tmp, package)
        if saved is None:
            found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise _unavailable(package, f"apt-get succeeded but saved no {package.filename} (found: {found}).")
        if saved.name != package.filename:
            saved = saved.rename(tmp / package.filename)
        return move_verified_download(saved, package.sha256, directory)


def fetch_deb(package: DebianPackage, timeout: float = DEFAULT_FETCH_TIMEOUT) -> Path:
    """The checked ``.deb`` of ``package`` in ``data_dir()/downloads/``, downloaded on first use.

    Raises:
        ChecksumError: the cached or downloaded file is not the pinned one (a
            bad cached file is deleted, a bad download discarded).
        DataUnavailableError: not cached and apt-get cannot fetch it; the
            message says how to provide the file by hand.
    """
    path = downloads_dir() / package.filename
    if not path.is_file():
        return _download_deb(package, timeout)
    return verify_cached_download(path, package.sha256)


def _ar_members(deb: Path):
    """Yield ``(name, offset, size)`` of the members of an ``ar`` archive (a ``.deb``)."""
    with open(deb, "rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not a Debian package (no ar header)")
        while True:
            header = handle.read(60)
            if len(header) < 60:
                return
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            offset = handle.tell()
            yield name, offset, size
            handle.seek(offset + size + (size % 2))


def read_deb_members(deb: Path, select: Callable[[str], bool]) -> dict[str, bytes]:
    """The bytes of the files of ``deb``'s ``data.tar`` whose path (without ``./``) ``select`` accepts.

    Returns:
        ``{path: bytes}`` in archive order, e.g. ``{"usr/share/trans/de-en": b"..."}``.

    Raises:
        ValueError: ``deb`` is not a Debian package or has no ``data.tar``.
        DataUnavailableError: its ``data.tar`` uses a compression Python cannot read.
    """
    deb = Path(deb)
    for name, offset, size in _ar_members(deb):
        if not name.startswith("data.tar"):
            continue
        with open(deb, "rb") as handle:
            handle.seek(offset)
            blob = handle.read(size)
        try:
            archive = tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
        except tarfile.ReadError as exc:
            raise DataUnavailableError(f"{deb}: cannot read {name} ({exc}).") from exc
        found = {}
        with archive:
            for member in archive.getmembers():
                path = member.name[2:] if member.name.startswith("./") else member.name
                if member.isfile() and select(path):
                    found[path] = archive.extractfile(member).read()
        return found
    raise ValueError(f"{deb} has no data.tar member")
