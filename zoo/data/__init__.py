"""Data sets for the zoo's recipes.

Importing this package is cheap: it loads numpy but not TensorFlow, and it
touches neither the network nor the disk. Data are fetched on first use into
the cache described in :mod:`zoo.data.cache`.

Sentiment (many-to-one) sources, all returning
``{"train": (texts, labels), "validation": ..., "test": ...}`` with ``texts``
a list of ``str`` and ``labels`` an ``int64`` array of 0/1:

* ``"movie-reviews"``: :func:`movie_review_splits`, 10,568 rated movie-review
  sentences shipped in the vaderSentiment sdist on PyPI (works anywhere PyPI
  is reachable, or offline once cached).
* ``"imdb"``: :func:`load_imdb_splits`, TFDS ``imdb_reviews`` (needs internet
  or a prepared TFDS ``data_dir``).

Translation (German -> English) sources, all returning
``{"train": [(german, english), ...], "validation": ..., "test": ...}``:

* ``"ding"``: :func:`zoo.data.ding.load_translation_splits`, 18,143 example
  sentence pairs of the Ding dictionary (Debian package ``trans-de-en``).
* ``"ding+wesnoth"``: :func:`zoo.data.wesnoth.ding_and_wesnoth_splits`, the
  Ding sentences plus the dialogue of 14 Battle for Wesnoth campaigns (two
  more, :data:`zoo.data.wesnoth.HELD_OUT_CAMPAIGNS`, are test domains only);
  adds ``"wesnoth-test"``.
* ``"wmt14"``: :func:`load_wmt_splits`, TFDS ``wmt14_translate/de-en``
  (needs internet or a prepared TFDS ``data_dir``).

Captioning: :mod:`zoo.data.emoji`, emoji drawings in four art styles with
their CLDR names (npm packages), split by art style:
``emoji.load_captioning_splits()`` returns ``{"train", "validation", "test",
"heldout_emoji"}``, each ``{"images", "codepoints", "captions", "styles"}``
(``test_style=None``: every style trains, ``test`` is empty).

Speech: :mod:`zoo.data.speech`, synthetic training speech spoken by
``espeak-ng`` (held-out accents, voice variants and sentences for validation
and test) and, for testing only, the real recorded Asterisk prompts (Debian
packages) with normalised transcripts.
"""

from zoo.data.cache import (
    ChecksumError,
    DataUnavailableError,
    atomic_write_bytes,
    atomic_write_text,
    data_dir,
    fetch_sdist,
    sha256_file,
)
from zoo.data.imdb import load_imdb_splits
from zoo.data.movie_reviews import (
    as_dataset,
    describe_split,
    load_movie_reviews,
    movie_review_scores,
    movie_review_splits,
)
from zoo.data.splits import stratified_split
from zoo.data import debian, ding, emoji, wesnoth
from zoo.data.wmt import load_wmt_splits

#: Sentiment data sets by name: each value returns the splits dict.
SENTIMENT_DATASETS = {
    "movie-reviews": movie_review_splits,
    "imdb": load_imdb_splits,
}


def load_sentiment_splits(name: str, **kwargs):
    """Splits of the sentiment data set ``name`` (a key of ``SENTIMENT_DATASETS``).

    Keyword arguments go to the loader (e.g. ``seed=`` for both,
    ``data_dir=`` / ``max_examples=`` for ``"imdb"``).
    """
    try:
        loader = SENTIMENT_DATASETS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in sorted(SENTIMENT_DATASETS))
        raise ValueError(f"unknown sentiment data set {name!r}; known: {known}") from None
    return loader(**kwargs)


#: Translation data sets by name: each value returns the splits dict.
TRANSLATION_DATASETS = {
    "ding": ding.load_translation_splits,
    "ding+wesnoth": wesnoth.ding_and_wesnoth_splits,
    "wmt14": load_wmt_splits,
}


def load_translation_splits(name: str, **kwargs):
    """Splits of the translation data set ``name`` (a key of ``TRANSLATION_DATASETS``).

    Keyword arguments go to the loader (e.g. ``seed=`` for ``"ding"``,
    ``data_dir=`` / ``max_examples=`` for ``"wmt14"``).
    """
    try:
        loader = TRANSLATION_DATASETS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in sorted(TRANSLATION_DATASETS))
        raise ValueError(f"unknown translation data set {name!r}; known: {known}") from None
    return loader(**kwargs)


__all__ = [
    "movie_review_scores",
    "ChecksumError",
    "DataUnavailableError",
    "SENTIMENT_DATASETS",
    "TRANSLATION_DATASETS",
    "as_dataset",
    "atomic_write_bytes",
    "atomic_write_text",
    "data_dir",
    "describe_split",
    "emoji",
    "fetch_sdist",
    "load_imdb_splits",
    "load_movie_reviews",
    "load_sentiment_splits",
    "load_translation_splits",
    "load_wmt_splits",
    "movie_review_splits",
    "sha256_file",
    "stratified_split",
]
