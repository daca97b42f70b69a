"""Movie-review snippets with human sentiment ratings, shipped inside vaderSentiment.

The vaderSentiment 3.3.2 source distribution on PyPI carries the evaluation
data of Hutto & Gilbert (2014) in
``vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz``. Its
``movieReviewSnippets_GroundTruth.txt`` holds 10,605 sentences from Pang &
Lee's rotten-tomatoes snippets, one per line as ``id<TAB>score<TAB>text``,
where the score is the mean of at least 20 human ratings on a -4..+4 scale.

Here a sentence is positive (label 1) when its mean rating is above zero and
negative (label 0) when below; the 37 sentences rated exactly 0 are dropped,
leaving 10,568 (49.6 % positive).

The sdist (2.4 MB) is fetched once with pip and checked against a pinned
sha256 (see :func:`zoo.data.cache.fetch_sdist`); the parsed lines are cached
as JSON next to it, so later loads read neither the network nor the archives.
Nothing is downloaded at import time, and TensorFlow is imported only by
:func:`as_dataset`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.data.cache import atomic_write_text, data_dir, fetch_sdist
from zoo.data.splits import SPLIT_NAMES, stratified_split

__all__ = [
    "FRACTIONS",
    "SOURCE",
    "SPLIT_NAMES",
    "SPLIT_SEED",
    "as_dataset",
    "describe_split",
    "load_movie_reviews",
    "movie_review_splits",
]

log = logging.getLogger(__name__)

SDIST_NAME = "vaderSentiment"
SDIST_VERSION = "3.3.2"
#: sha256 of vaderSentiment-3.3.2.tar.gz as served by PyPI (measured when pinning).
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
ARCHIVE_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
DATA_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

#: Lines in the ground-truth file, and lines with a non-zero mean rating.
EXPECTED_LINES = 10_605
EXPECTED_NONZERO = 10_568

SPLIT_SEED = 1337
FRACTIONS = (0.8, 0.1, 0.1)

SOURCE = {
    "name": "movie-review-snippets",
    "version": f"{SDIST_NAME}-{SDIST_VERSION}",
    "description": (
        "10,605 English movie-review sentences (Pang & Lee's rotten-tomatoes snippets), "
        "each with the mean of at least 20 human sentiment ratings on a -4..+4 scale. "
        "Label 1 if the mean is > 0, 0 if < 0; sentences with a mean of exactly 0 are dropped."
    ),
    "origin": {
        "package": SDIST_NAME,
        "version": SDIST_VERSION,
        "distribution": "sdist",
        "url": f"https://pypi.org/project/{SDIST_NAME}/{SDIST_VERSION}/",
        "sha256": SDIST_SHA256,
        "archive_member": ARCHIVE_MEMBER,
        "data_member": DATA_MEMBER,
    },
    "license": (
        "MIT (the license of the vaderSentiment package that distributes the file); "
        "the sentences come from Pang & Lee's sentence polarity data."
    ),
    "citation": [
        "C. J. Hutto and E. Gilbert. VADER: A Parsimonious Rule-based Model for Sentiment "
        "Analysis of Social Media Text. Eighth International AAAI Conference on Weblogs and "
        "Social Media (ICWSM-14), 2014.",
        "B. Pang and L. Lee. Seeing stars: Exploiting class relationships for sentiment "
        "categorization with respect to rating scales. Proceedings of ACL 2005.",
    ],
}

_CACHE_FORMAT = 1
_CACHE_NAME = f"movie-review-snippets-{SDIST_NAME}-{SDIST_VERSION}.v{_CACHE_FORMAT}.json"

_lock = threading.Lock()
_records: tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]] | None = None


# --------------------------------------------------------------------------
# Reading the archive and the parsed cache
# --------------------------------------------------------------------------


def _cache_path() -> Path:
    return data_dir() / "movie_reviews" / _CACHE_NAME


def _content_sha256(ids, scores, texts) -> str:
    payload = json.dumps([list(ids), list(scores), list(texts)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def parse_rated_lines(raw: bytes, member: str, expected_lines: int):
    """``(ids, scores, texts)`` of ``id<TAB>score<TAB>text`` lines (CRLF endings, a few bad
    UTF-8 bytes), the format of every ground-truth file of the archive; ``ValueError`` names
    the member and line of anything else, or a count other than ``expected_lines``."""
    ids, scores, texts = [], [], []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise ValueError(f"{member}, line {number}: expected 3 tab-separated fields: {line!r}")
        ids.append(fields[0].strip())
        scores.append(float(fields[1]))
        texts.append(fields[2].strip())
    if len(texts) != expected_lines:
        raise ValueError(f"{member}: expected {expected_lines} lines, parsed {len(texts)}")
    return ids, scores, texts


def _parse_ground_truth(raw: bytes):
    return parse_rated_lines(raw, DATA_MEMBER, EXPECTED_LINES)


def _read_sdist(path: Path):
    with tarfile.open(path, mode="r:gz") as outer:
        try:
            inner_bytes = outer.extractfile(ARCHIVE_MEMBER).read()
        except (KeyError, AttributeError) as exc:
            raise ValueError(f"{path} has no member {ARCHIVE_MEMBER}") from exc
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        try:
            raw = inner.extractfile(DATA_MEMBER).read()
        except (KeyError, AttributeError) as exc:
            raise ValueError(f"{ARCHIVE_MEMBER} in {path} has no member {DATA_MEMBER}") from exc
    return _parse_ground_truth(raw)


def _read_cache(path: Path):
    """The cached records, or None if the file is missing, stale or damaged."""
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
        ids, scores, texts = blob["ids"], blob["scores"], blob["texts"]
        valid = (
            blob.get("format") == _CACHE_FORMAT
            and blob.get("source_sha256") == SDIST_SHA256
            and blob.get("archive_member") == ARCHIVE_MEMBER
            and blob.get("data_member") == DATA_MEMBER
            and len(ids) == len(scores) == len(texts) == EXPECTED_LINES
            and blob.get("content_sha256") == _content_sha256(ids, scores, texts)
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("Ignoring unreadable cache %s (%s); re-reading the sdist.", path, exc)
        return None
    if not valid:
        log.warning("Ignoring stale or damaged cache %s; re-reading the sdist.", path)
        return None
    return ids, [float(s) for s in scores], texts


def _write_cache(path: Path, ids, scores, texts) -> None:
    blob = {
        "format": _CACHE_FORMAT,
        "name": SOURCE["name"],
        "source": f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz",
        "source_sha256": SDIST_SHA256,
        "archive_member": ARCHIVE_MEMBER,
        "data_member": DATA_MEMBER,
        "content_sha256": _content_sha256(ids, scores, texts),
        "ids": ids,
        "scores": scores,
        "texts": texts,
    }
    atomic_write_text(path, json.dumps(blob, ensure_ascii=False))


def _all_records():
    """All 10,605 (ids, scores, texts), from memory, the JSON cache, or the sdist."""
    global _records
    with _lock:
        if _records is None:
            path = _cache_path()
            parsed = _read_cache(path)
            if parsed is None:
                parsed = _read_sdist(fetch_sdist(SDIST_NAME, SDIST_VERSION, SDIST_SHA256))
                _write_cache(path, *parsed)
            _records = tuple(tuple(column) for column in parsed)
        return _records


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_movie_reviews() -> tuple[list[str], np.ndarray, np.ndarray]:
    """All movie-review sentences with a non-zero mean rating, in file order.

    Returns:
        ``(texts, scores, labels)``: a list of 10,568 ``str``; their mean
        ratings (``float64``, in -4..+4, never 0); and ``int64`` labels,
        1 where the score is positive, else 0.

    The first call may download the 2.4 MB vaderSentiment sdist (see the
    module docstring); it raises :class:`zoo.data.cache.DataUnavailableError`
    if that is impossible and :class:`zoo.data.cache.ChecksumError` if the
    archive is not the pinned one.
    """
    _, all_scores, all_texts = _all_records()
    scores = np.asarray(all_scores, dtype=np.float64)
    keep = scores != 0
    texts = [t for t, k in zip(all_texts, keep) if k]
    scores = scores[keep]
    labels = (scores > 0).astype(np.int64)
    return texts, scores, labels


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLIT_NAMES):
        raise ValueError(f"need one fraction per split {SPLIT_NAMES}, got {fractions}")
    return fractions


def movie_review_splits(
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Stratified train/validation/test splits of :func:`load_movie_reviews`.

    Returns:
        ``{"train": (texts, labels), "validation": ..., "test": ...}`` with
        ``texts`` a list of ``str`` and ``labels`` an ``int64`` array of 0/1.
        With the defaults the sizes are 8,454 / 1,057 / 1,057, identical on
        every machine.
    """
    fractions = _check_fractions(fractions)
    texts, _, labels = load_movie_reviews()
    indices = stratified_split(labels, fractions=fractions, seed=seed)
    return {
        name: ([texts[i] for i in idx], labels[idx])
        for name, idx in zip(SPLIT_NAMES, indices)
    }


def movie_review_scores(
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, np.ndarray]:
    """The mean human ratings (-4..+4) behind each split's labels, aligned with
    :func:`movie_review_splits` (same seed, same order)."""
    fractions = _check_fractions(fractions)
    _, scores, labels = load_movie_reviews()
    indices = stratified_split(labels, fractions=fractions, seed=seed)
    return {name: scores[idx] for name, idx in zip(SPLIT_NAMES, indices)}


def describe_split(
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict:
    """A JSON-ready description of the splits, for a model card."""
    fractions = _check_fractions(fractions)
    splits = movie_review_splits(seed=seed, fractions=fractions)
    return {
        "name": SOURCE["name"],
        "version": SOURCE["version"],
        "source": SOURCE,
        "split_seed": int(seed),
        "fractions": dict(zip(SPLIT_NAMES, fractions)),
        "split_method": (
            "zoo.data.splits.stratified_split: stratified by label, numpy default_rng(seed)"
        ),
        "counts": {name: int(len(labels)) for name, (_, labels) in splits.items()},
        "positive_rate": {
            name: round(float(np.mean(labels)), 4) if len(labels) else None
            for name, (_, labels) in splits.items()
        },
    }


def as_dataset(
    texts: Sequence[str],
    labels,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(text, label)`` pairs.

    Texts become ``tf.string``; integer (or bool) labels ``int64``, float
    labels ``float32``. With ``shuffle=True`` the whole set is reshuffled each
    epoch (``seed`` makes the order reproducible). The last batch may be smaller.
    """
    import tensorflow as tf

    labels = np.asarray(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if np.issubdtype(labels.dtype, np.floating):
        labels = labels.astype(np.float32)
    else:
        labels = labels.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(texts), dtype=tf.string, shape=[len(texts)]), labels)
    )
    if shuffle and len(texts) > 1:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
