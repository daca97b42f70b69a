"""Reading a TensorFlow Datasets (TFDS) data set, preparing it first when allowed.

The TFDS loaders (:mod:`zoo.data.imdb`, :mod:`zoo.data.wmt`) share one way of
getting at their data: read the prepared data set; if it is not prepared and
downloading is allowed, check quickly that the download host answers (so a
machine without a route out fails in seconds rather than in the download
manager's retries), let TFDS download and prepare it, and read it again.
Every failure becomes a :class:`~zoo.data.cache.DataUnavailableError` whose
message the loader writes (what failed, and how to prepare the data by hand).

TensorFlow and TFDS are imported only when a loader is called.
"""

from __future__ import annotations

import socket
from typing import Callable, Mapping
from urllib.parse import urlsplit

from zoo.data.cache import DataUnavailableError

__all__ = ["check_reachable", "read_tfds_splits"]


def check_reachable(url: str, timeout: float) -> None:
    """Raise OSError unless a TCP connection to the host of ``url`` opens in time.

    Without this check a machine with no route out can spend minutes in the
    download manager's retries before failing.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=timeout):
        pass


def read_tfds_splits(
    name: str,
    splits: Mapping[str, str],
    *,
    data_dir,
    download: bool,
    download_url: str,
    probe: Callable[[], None],
    unavailable_message: Callable[[str], str],
    as_supervised: bool = False,
) -> dict:
    """The TFDS data set ``name`` as one unshuffled ``tf.data.Dataset`` per split.

    Args:
        name: The TFDS name (e.g. ``"imdb_reviews"``).
        splits: Our split name -> the TFDS split it reads (e.g.
            ``{"validation": "train[90%:]"}``).
        data_dir: TFDS data directory (``None``: the TFDS default).
        download: Whether TFDS may download and prepare the data set when it
            is not prepared in ``data_dir``.
        download_url: A file TFDS fetches; its host names the download host
            in the message when ``probe`` fails.
        probe: Raises OSError when the download host cannot be reached
            (usually :func:`check_reachable` on ``download_url``); called
            before any download.
        unavailable_message: Turns the reason of a failure into the whole
            message of the :class:`DataUnavailableError`.
        as_supervised: Passed to ``builder.as_dataset``: ``(input, label)``
            tuples instead of feature dicts.

    Returns:
        ``{split name: tf.data.Dataset}``, in the order of ``splits``.

    Raises:
        DataUnavailableError: TFDS is not installed, or the data set is not
            prepared and downloading is disabled, the host is unreachable,
            or preparing it fails.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataUnavailableError(
            f"tensorflow-datasets is needed for the '{name}' loader "
            f"(pip install tensorflow-datasets): {exc}"
        ) from exc

    builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))

    def read_all():
        # builder.as_dataset raises AssertionError when nothing is prepared.
        return {
            split: builder.as_dataset(split=spec, as_supervised=as_supervised, shuffle_files=False)
            for split, spec in splits.items()
        }

    try:
        return read_all()
    except AssertionError as not_prepared:
        if not download:
            reason = f"downloading is disabled (download=False). TFDS said: {not_prepared}"
            raise DataUnavailableError(unavailable_message(reason)) from None
    try:
        probe()
    except OSError as exc:
        host = urlsplit(download_url).hostname
        reason = f"the download host {host} is unreachable ({exc})."
        raise DataUnavailableError(unavailable_message(reason)) from exc
    try:
        builder.download_and_prepare()
        return read_all()
    except Exception as exc:  # TFDS raises many kinds; all mean "no data"
        reason = f"download_and_prepare failed with {type(exc).__name__}: {exc}"
        if isinstance(exc, ModuleNotFoundError) and exc.name == "importlib_resources":
            # TFDS 4.9 needs it to prepare data sets on Python >= 3.9 but does not
            # declare it (tensorflow/datasets#11212).
            reason += " (pip install importlib_resources; see tensorflow/datasets#11212)"
        raise DataUnavailableError(unavailable_message(reason)) from exc
