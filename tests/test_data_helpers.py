"""Tests for the helpers the data loaders share.

`zoo.data.cache` runs download tools (`run_with_timeout`, `output_tail`) and
checks and installs what they fetch (`verify_cached_download`,
`move_verified_download`); `zoo.data.tfds_source` reads a TFDS data set,
preparing it when allowed (`read_tfds_splits`). Everything runs offline, with
a fake TFDS builder where TFDS is involved.
"""

import hashlib
import os
import subprocess
import sys
import time

import pytest

from zoo.data import tfds_source
from zoo.data.cache import (
    ChecksumError,
    DataUnavailableError,
    move_verified_download,
    output_tail,
    run_with_timeout,
    verify_cached_download,
)

# --------------------------------------------------------------------------
# running a download tool
# --------------------------------------------------------------------------


def test_run_with_timeout_returns_exit_code_and_both_streams_in_cwd(tmp_path):
    script = (
        "import os, sys; print(os.getcwd()); "
        "print('to stderr', file=sys.stderr); sys.exit(3)"
    )
    returncode, output = run_with_timeout([sys.executable, "-c", script], 30, cwd=tmp_path)
    assert returncode == 3
    lines = output.splitlines()
    assert os.path.samefile(lines[0], tmp_path)
    assert "to stderr" in lines


@pytest.mark.skipif(os.name != "posix", reason="process groups are a POSIX feature")
def test_run_with_timeout_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    # The child starts a grandchild that would outlive it, then waits forever.
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); "
        "time.sleep(60)"
    )
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_with_timeout([sys.executable, "-c", script], 3)
    assert time.monotonic() - start < 20
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _is_running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _is_running(grandchild)


def _is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel directly
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_run_with_timeout_missing_program_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        run_with_timeout([str(tmp_path / "no-such-program")], 5)


def test_output_tail_keeps_the_last_lines():
    output = "\n".join(f"line {i}" for i in range(40)) + "\n\n"
    assert output_tail(output) == "\n".join(f"line {i}" for i in range(25, 40))
    assert output_tail(output, lines=2) == "line 38\nline 39"
    assert output_tail("") == ""


# --------------------------------------------------------------------------
# checking and installing downloads
# --------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_verify_cached_download_accepts_the_pinned_file(tmp_path):
    path = tmp_path / "package.tar.gz"
    path.write_bytes(b"good bytes")
    assert verify_cached_download(path, _sha256(b"good bytes")) == path
    assert path.read_bytes() == b"good bytes"


def test_verify_cached_download_deletes_a_wrong_file(tmp_path):
    path = tmp_path / "package.tar.gz"
    path.write_bytes(b"bad bytes")
    with pytest.raises(ChecksumError, match="package.tar.gz.*next call downloads it again"):
        verify_cached_download(path, _sha256(b"good bytes"))
    assert not path.exists()


@pytest.fixture
def folders(tmp_path):
    """A staging folder (where a tool downloads) and the downloads folder."""
    staging, downloads = tmp_path / "staging", tmp_path / "downloads"
    staging.mkdir()
    downloads.mkdir()
    return staging, downloads


def test_move_verified_download_moves_the_file_keeping_its_name(folders):
    staging, downloads = folders
    downloaded = staging / "package-1.0.tar.gz"
    downloaded.write_bytes(b"payload")
    final = move_verified_download(downloaded, _sha256(b"payload"), downloads)
    assert final == downloads / "package-1.0.tar.gz"
    assert final.read_bytes() == b"payload"
    assert not downloaded.exists()


def test_move_verified_download_refuses_wrong_bytes(folders):
    staging, downloads = folders
    downloaded = staging / "package-1.0.tar.gz"
    downloaded.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="download was discarded"):
        move_verified_download(downloaded, _sha256(b"payload"), downloads)
    assert list(downloads.iterdir()) == []


# --------------------------------------------------------------------------
# reading a TFDS data set (fake builder)
# --------------------------------------------------------------------------


class _FakeBuilder:
    """Not prepared until `download_and_prepare` runs (unless that is told to fail)."""

    def __init__(self, prepare_error=None):
        self.prepared = False
        self.prepare_calls = 0
        self.prepare_error = prepare_error
        self.read_calls = []

    def as_dataset(self, split, as_supervised, shuffle_files):
        if not self.prepared:
            raise AssertionError("Dataset not found (fake)")
        self.read_calls.append((split, as_supervised, shuffle_files))
        return f"dataset of {split}"

    def download_and_prepare(self):
        self.prepare_calls += 1
        if self.prepare_error is not None:
            raise self.prepare_error
        self.prepared = True


@pytest.fixture
def fake_builder(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = _FakeBuilder()
    requested = []

    def fake_tfds_builder(name, data_dir=None):
        requested.append((name, data_dir))
        return builder

    monkeypatch.setattr(tfds, "builder", fake_tfds_builder)
    builder.requested = requested
    return builder


def _read(probe=lambda: None, download=True, **kwargs):
    return tfds_source.read_tfds_splits(
        "fake_set",
        {"train": "train[:90%]", "validation": "train[90%:]"},
        data_dir="fake-tfds-dir",
        download=download,
        download_url="http://downloads.example.org/fake.tar.gz",
        probe=probe,
        unavailable_message=lambda reason: f"fake_set unavailable: {reason}",
        **kwargs,
    )


def test_read_tfds_splits_prepares_then_reads_every_split(fake_builder):
    datasets = _read(as_supervised=True)
    assert datasets == {
        "train": "dataset of train[:90%]",
        "validation": "dataset of train[90%:]",
    }
    assert fake_builder.requested == [("fake_set", "fake-tfds-dir")]
    assert fake_builder.prepare_calls == 1
    assert fake_builder.read_calls == [
        ("train[:90%]", True, False),
        ("train[90%:]", True, False),
    ]


def test_read_tfds_splits_without_download_says_so(fake_builder):
    with pytest.raises(DataUnavailableError, match=r"fake_set unavailable: .*download=False"):
        _read(download=False)
    assert fake_builder.prepare_calls == 0


def test_read_tfds_splits_unreachable_host_does_not_download(fake_builder):
    def unreachable():
        raise OSError("no route to host (simulated)")

    with pytest.raises(
        DataUnavailableError,
        match=r"download host downloads.example.org is unreachable \(no route",
    ):
        _read(probe=unreachable)
    assert fake_builder.prepare_calls == 0


def test_read_tfds_splits_reports_a_failed_preparation(fake_builder):
    fake_builder.prepare_error = RuntimeError("checksum mismatch (simulated)")
    with pytest.raises(
        DataUnavailableError,
        match="download_and_prepare failed with RuntimeError: checksum mismatch",
    ):
        _read()
    assert fake_builder.prepare_calls == 1
