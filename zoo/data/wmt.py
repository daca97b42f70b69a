"""German-English news translation from WMT (``wmt14_translate/de-en`` in TensorFlow Datasets).

The canonical German-English benchmark: about 4.5 million training pairs
(Europarl v7, Common Crawl, News Commentary v9), validation on newstest2013
(with newsdev2014 where TFDS has it) and test on newstest2014 (3,003 pairs).
TFDS downloads about 1.4 GB from statmt.org the first time and prepares the
data, which needs internet access and hours of CPU; elsewhere, prepare it
once on a connected machine (``tfds build wmt14_translate/de-en --data_dir
DIR``) and pass that ``data_dir``. The packaged Ding sentence pairs
(:mod:`zoo.data.ding`) are the default that works without internet.

:func:`load_wmt_splits` returns the same structure as
:func:`zoo.data.ding.load_translation_splits`: ``{"train", "validation",
"test"}`` -> a list of ``(german, english)`` string pairs.

TensorFlow and TFDS are imported only when the loader is called.
"""

from __future__ import annotations

from zoo.data.splits import SPLIT_NAMES
from zoo.data.tfds_source import check_reachable as _check_reachable
from zoo.data.tfds_source import read_tfds_splits

__all__ = ["DEFAULT_NAME", "WMT_DOWNLOAD_URL", "load_wmt_splits"]

DEFAULT_NAME = "wmt14_translate/de-en"
#: A file TFDS fetches for the WMT14 training data (used for a quick reachability check).
WMT_DOWNLOAD_URL = "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz"
#: Seconds to wait for a TCP connection to the download host before giving up.
PROBE_TIMEOUT = 5.0


def _language_pair(name: str) -> tuple[str, str]:
    """The (source, target) languages of a TFDS WMT name, checked to be German-English."""
    builder, _, config = name.partition("/")
    languages = tuple(config.split("-"))
    if not builder.startswith("wmt") or len(languages) != 2 or set(languages) != {"de", "en"}:
        raise ValueError(
            f"name must be a German-English TFDS WMT data set such as {DEFAULT_NAME!r}, "
            f"got {name!r}"
        )
    return languages


def _unavailable_message(name: str, data_dir, reason: str) -> str:
    if data_dir is None:
        where = "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    else:
        where = data_dir
    return (
        f"The TFDS data set '{name}' is not prepared in {where} and could not be prepared: "
        f"{reason}\n"
        f"On a machine with internet access run `tfds build {name} --data_dir DIR` (about "
        f"1.4 GB of downloads), copy DIR here and pass data_dir=DIR. Without internet, use the "
        f"packaged Ding sentence pairs (zoo.data.load_translation_splits('ding'))."
    )


def _decode(text: bytes) -> str:
    return text.decode("utf-8", errors="replace")


def _to_pairs(ds, max_examples: int | None) -> list[tuple[str, str]]:
    import tensorflow_datasets as tfds

    if max_examples is not None:
        ds = ds.take(max_examples)
    pairs: list[tuple[str, str]] = []
    for batch in tfds.as_numpy(ds.batch(4096)):
        for german, english in zip(batch["de"], batch["en"]):
            pairs.append((_decode(german), _decode(english)))
    return pairs


def load_wmt_splits(
    name: str = DEFAULT_NAME,
    data_dir=None,
    max_examples: int | None = None,
    download: bool = True,
    seed: int | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """A TFDS WMT German-English data set as ``{"train", "validation", "test"}`` pairs.

    Args:
        name: the TFDS name, a German-English WMT configuration (default
            ``"wmt14_translate/de-en"``).
        data_dir: TFDS data directory (``None``: the TFDS default).
        max_examples: keep at most this many pairs per split (the first ones,
            in TFDS order; handy for smoke tests and small experiments).
        download: if the data are not prepared, let TFDS download and prepare
            them (after a quick check that the download host is reachable).
        seed: accepted so that every translation loader takes the same
            keywords (:func:`zoo.data.load_translation_splits`); it changes
            nothing, since the WMT splits are fixed by the benchmark
            (validation newstest2013, test newstest2014).

    Returns:
        A dict of lists of ``(german, english)`` string pairs, the TFDS
        ``train`` / ``validation`` / ``test`` splits.

    Raises:
        ValueError: ``name`` is not a German-English WMT set, or
            ``max_examples`` is negative.
        DataUnavailableError: the data are not prepared in ``data_dir`` and
            downloading is disabled or fails. Fails within seconds when the
            download host cannot be reached.
    """
    _language_pair(name)
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be >= 0, got {max_examples}")

    datasets = read_tfds_splits(
        name,
        {split: split for split in SPLIT_NAMES},
        data_dir=data_dir,
        download=download,
        download_url=WMT_DOWNLOAD_URL,
        probe=lambda: _check_reachable(WMT_DOWNLOAD_URL, timeout=PROBE_TIMEOUT),
        unavailable_message=lambda reason: _unavailable_message(name, data_dir, reason),
    )
    return {split: _to_pairs(datasets[split], max_examples) for split in SPLIT_NAMES}
