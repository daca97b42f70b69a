"""The canonical IMDB movie-review data set (``imdb_reviews`` in TensorFlow Datasets).

50,000 full-length reviews (25,000 train, 25,000 test, balanced). TFDS
downloads them from ai.stanford.edu the first time, which needs internet
access; elsewhere, prepare the data set once on a connected machine
(``tfds build imdb_reviews --data_dir DIR`` or ``tfds.load(..., data_dir=DIR)``)
and pass that ``data_dir``. The packaged movie-review snippets
(:mod:`zoo.data.movie_reviews`) are the default that works without internet.

:func:`load_imdb_splits` returns the same structure as
:func:`zoo.data.movie_reviews.movie_review_splits`: a dict of
``(list of str, int64 label array)`` per split, so a recipe can use either
source unchanged (and :func:`zoo.data.movie_reviews.as_dataset` turns a split
into a ``tf.data.Dataset``).

TensorFlow and TFDS are imported only when the loader is called.
"""

from __future__ import annotations

import numpy as np

from zoo.data.splits import SPLIT_NAMES, stratified_split
from zoo.data.tfds_source import check_reachable as _check_reachable
from zoo.data.tfds_source import read_tfds_splits

__all__ = ["IMDB_DOWNLOAD_URL", "TFDS_NAME", "load_imdb_splits"]

TFDS_NAME = "imdb_reviews"
#: Where TFDS fetches the raw archive from (used for a quick reachability check).
IMDB_DOWNLOAD_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
#: Seconds to wait for a TCP connection to the download host before giving up.
PROBE_TIMEOUT = 10.0


def _unavailable_message(data_dir, reason: str) -> str:
    if data_dir is None:
        where = "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    else:
        where = data_dir
    return (
        f"The TFDS data set '{TFDS_NAME}' is not prepared in {where} and could not be "
        f"prepared: {reason}\n"
        f"On a machine with internet access run `tfds build {TFDS_NAME} --data_dir DIR` "
        f"(or `tfds.load('{TFDS_NAME}', data_dir=DIR)`), copy DIR here and pass "
        f"data_dir=DIR. Without internet, use the packaged 'movie-reviews' source "
        f"(zoo.data.load_sentiment_splits('movie-reviews'))."
    )


def _to_lists(ds, max_examples: int | None) -> tuple[list[str], np.ndarray]:
    import tensorflow_datasets as tfds

    if max_examples is not None:
        ds = ds.take(max_examples)
    texts: list[str] = []
    labels: list[np.ndarray] = []
    for text_batch, label_batch in tfds.as_numpy(ds.batch(1024)):
        texts.extend(t.decode("utf-8", errors="replace") for t in text_batch)
        labels.append(np.asarray(label_batch, dtype=np.int64))
    return texts, (np.concatenate(labels) if labels else np.zeros(0, np.int64))


def load_imdb_splits(
    data_dir=None,
    validation_fraction: float = 0.1,
    seed: int | None = None,
    max_examples: int | None = None,
    download: bool = True,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """IMDB reviews as ``{"train", "validation", "test"}`` -> ``(texts, labels)``.

    Args:
        data_dir: TFDS data directory (``None``: the TFDS default).
        validation_fraction: share of the TFDS ``train`` split held out for
            validation; the TFDS ``test`` split is the test set.
        seed: ``None`` (default) takes the validation set as the last
            ``validation_fraction`` of TFDS ``train`` by TFDS slicing
            (``train[:90%]`` / ``train[90%:]``), the same for every TFDS user.
            An integer instead draws a label-stratified validation set with
            :func:`zoo.data.splits.stratified_split` and that seed.
        max_examples: keep at most this many examples per split (the first
            ones; handy for smoke tests).
        download: if the data are not prepared, let TFDS download and prepare
            them (after a quick check that the download host is reachable).

    Returns:
        A dict of ``(texts, labels)``: ``texts`` a list of ``str``, ``labels`` an
        ``int64`` array of 0 (negative) / 1 (positive).

    Raises:
        DataUnavailableError: the data are not prepared in ``data_dir`` and
            downloading is disabled or fails. Fails within seconds when the
            download host cannot be reached.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be >= 0, got {max_examples}")

    train_pct = round(100.0 * (1.0 - validation_fraction), 6)
    if seed is None:
        tfds_splits = {
            "train": f"train[:{train_pct:g}%]",
            "validation": f"train[{train_pct:g}%:]",
            "test": "test",
        }
    else:
        tfds_splits = {"train": "train", "test": "test"}

    datasets = read_tfds_splits(
        TFDS_NAME,
        tfds_splits,
        data_dir=data_dir,
        download=download,
        download_url=IMDB_DOWNLOAD_URL,
        probe=lambda: _check_reachable(IMDB_DOWNLOAD_URL, timeout=PROBE_TIMEOUT),
        unavailable_message=lambda reason: _unavailable_message(data_dir, reason),
        as_supervised=True,
    )

    if seed is None:
        return {name: _to_lists(datasets[name], max_examples) for name in SPLIT_NAMES}

    train_texts, train_labels = _to_lists(datasets["train"], None)
    train_idx, val_idx = stratified_split(
        train_labels, fractions=(1.0 - validation_fraction, validation_fraction), seed=seed
    )
    cap = slice(None) if max_examples is None else slice(0, max_examples)
    return {
        "train": ([train_texts[i] for i in train_idx[cap]], train_labels[train_idx[cap]]),
        "validation": ([train_texts[i] for i in val_idx[cap]], train_labels[val_idx[cap]]),
        "test": _to_lists(datasets["test"], max_examples),
    }
