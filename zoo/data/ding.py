"""German-English sentence pairs from the Ding dictionary (Debian package ``trans-de-en``).

Source: the German-English word list of the Ding dictionary by Frank Richter
(TU Chemnitz, https://dict.tu-chemnitz.de/, GPL-2+), as packaged by Debian in
``trans-de-en`` 1.9-6 (list version "devel 2023-01-30"). The package holds one
text file, ``usr/share/trans/de-en``, with one entry per line::

    german :: english

Both sides hold sub-entries separated by `` | `` (a headword, its inflected
forms, example phrases and example sentences), and each sub-entry lists
alternatives separated by ``; ``. Many entries carry example sentences, e.g.
``Mein Entschluss steht fest. :: My mind is made up.``.

Parsing (:func:`read_sentence_pairs`, :func:`read_dictionary_pairs`):

* the sub-entries of a line are paired up position by position, and only when
  both sides have the same number of them (otherwise the pairing is unknown and
  the line is skipped);
* of each sub-entry the first ``; `` alternative is kept;
* annotations in ``{...}`` (grammar: ``{n}``, ``{vt}``) and ``[...]`` (usage:
  ``[coll.]``, ``[Br.]``) are removed and whitespace is collapsed.

A pair is a *sentence pair* when both sides end in ``.``, ``?`` or ``!``, the
English side has at least 4 words and neither side has more than 15 words
(words are whitespace-separated). Repeated pairs are kept once, in file order:
18,143 pairs with 18,033 distinct German sentences. Every other pair of the
file is a *dictionary pair* (words and short phrases such as
``Aalsuppe :: eel soup``), offered as extra training data by
:func:`dictionary_pairs`.

Splits (:func:`load_translation_splits`) are made by German sentence: all the
pairs of one source sentence go to the same split, so no source sentence of
the validation or test set is seen in training. Two German sentences that
differ only in case or in their final punctuation count as one sentence.

Fetching (:func:`dictionary_path`): the package is downloaded with
``apt-get download trans-de-en=1.9-6`` into ``data_dir()/downloads/`` (after
``apt-get update`` if apt does not know the package yet), its sha256 is
checked (:mod:`zoo.data.debian`), and the word list is read out of the
``.deb`` archive in Python into ``data_dir()/ding/``. A ``.deb`` copied by hand into the downloads folder is
used as well, so machines without apt work too. Nothing happens at import time.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from zoo.data.cache import ChecksumError, atomic_write_bytes, data_dir, sha256_file
from zoo.data.debian import DebianPackage, fetch_deb, read_deb_members
from zoo.data.splits import SPLIT_NAMES, check_fractions, split_counts

__all__ = [
    "DEB_NAME",
    "DEB_SHA256",
    "DEB_VERSION",
    "FRACTIONS",
    "SOURCE",
    "SPLIT_SEED",
    "describe_split",
    "dictionary_pairs",
    "dictionary_path",
    "load_translation_splits",
    "read_dictionary_pairs",
    "read_sentence_pairs",
    "sentence_pairs",
    "split_by_source",
]

log = logging.getLogger(__name__)

DEB_NAME, DEB_VERSION = "trans-de-en", "1.9-6"
#: sha256 of trans-de-en_1.9-6_all.deb as served by the Debian archive (measured when pinning).
DEB_SHA256 = "45f6b4cf1c434776fba6811d7bc522efabb5425c43ba8afd0e289bf9e2e53df4"
DEB_FILENAME = f"{DEB_NAME}_{DEB_VERSION}_all.deb"
#: The dictionary inside the package, and its sha256 (checked after unpacking).
DICTIONARY_MEMBER = "usr/share/trans/de-en"
DICTIONARY_SHA256 = "34052c6021d09eadfee7a893a789204265954df70fe9c36d38fa00058d79d326"
#: Where the package can be downloaded by hand.
DEB_URL = f"https://deb.debian.org/debian/pool/main/t/{DEB_NAME}/{DEB_FILENAME}"
SNAPSHOT_URL = f"https://snapshot.debian.org/package/{DEB_NAME}/{DEB_VERSION}/"
PACKAGE = DebianPackage(DEB_NAME, DEB_VERSION, DEB_SHA256, pool=f"main/t/{DEB_NAME}",
                        what="the Ding German-English dictionary")


#: Sentence filters (see the module docstring).
SENTENCE_END = (".", "?", "!")
MIN_ENGLISH_WORDS = 4
MAX_WORDS = 15
#: What the pinned file yields with these filters.
EXPECTED_SENTENCE_PAIRS = 18_143

SPLIT_SEED = 1337
FRACTIONS = (0.8, 0.1, 0.1)

SOURCE = {
    "name": "ding-de-en",
    "version": f"{DEB_NAME}-{DEB_VERSION}",
    "description": (
        "German-English example sentences of the Ding dictionary (Frank Richter, TU Chemnitz), "
        "taken from the entries of its de-en word list: sub-entries paired by position when both "
        "sides have as many, first '; ' alternative, {...} and [...] annotations removed; both "
        "sides end in . ? or !, English >= 4 words, both <= 15 words; duplicates removed."
    ),
    "origin": {
        "package": DEB_NAME,
        "version": DEB_VERSION,
        "distribution": "Debian (bookworm) binary package",
        "url": DEB_URL,
        "sha256": DEB_SHA256,
        "data_member": DICTIONARY_MEMBER,
        "data_sha256": DICTIONARY_SHA256,
        "list_version": "devel 2023-01-30",
        "homepage": "https://dict.tu-chemnitz.de/",
    },
    "license": "GPL-2+ (GNU General Public License, version 2 or later)",
    "citation": [
        "Frank Richter. Ding: a dictionary lookup program, German-English word list "
        "(version devel 2023-01-30). TU Chemnitz, https://dict.tu-chemnitz.de/.",
    ],
}

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
# Dictionary pairs also lose (...) explanations and <...> search keys.
_PHRASE_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_TRAILING_PUNCTUATION = re.compile(r"[\s.?!]+$")

_lock = threading.Lock()
_sentence_pairs: tuple[tuple[str, str], ...] | None = None


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _clean(text: str, annotation: re.Pattern = _ANNOTATION) -> str:
    """The first ``; `` alternative of a sub-entry, annotations removed, spaces collapsed."""
    first = text.split("; ", 1)[0]
    return " ".join(annotation.sub(" ", first).split())


def _aligned_sub_entries(lines: Iterable[str]):
    """Yield ``(german, english)`` raw sub-entries of each line whose sides have equal counts."""
    for line in lines:
        line = line.rstrip("\r\n")
        if not line or line.startswith("#") or " :: " not in line:
            continue
        german, english = line.split(" :: ", 1)
        german_parts, english_parts = german.split(" | "), english.split(" | ")
        if len(german_parts) != len(english_parts):
            continue
        yield from zip(german_parts, english_parts)


def _is_sentence_pair(german: str, english: str) -> bool:
    if not (german.endswith(SENTENCE_END) and english.endswith(SENTENCE_END)):
        return False
    english_words, german_words = len(english.split()), len(german.split())
    return MIN_ENGLISH_WORDS <= english_words <= MAX_WORDS and german_words <= MAX_WORDS


def _read_lines(path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readlines()


def read_sentence_pairs(path) -> list[tuple[str, str]]:
    """The sentence pairs of a Ding word list at ``path`` (rules in the module docstring).

    Args:
        path: a file in the Ding ``german :: english`` format.

    Returns:
        Distinct ``(german, english)`` pairs in file order.
    """
    pairs: dict[tuple[str, str], None] = {}
    for german_raw, english_raw in _aligned_sub_entries(_read_lines(path)):
        german, english = _clean(german_raw), _clean(english_raw)
        if german and english and _is_sentence_pair(german, english):
            pairs.setdefault((german, english), None)
    return list(pairs)


def _sentence_key(german: str) -> str:
    """What makes two German sentences "the same" for splitting and exclusion."""
    return " ".join(_TRAILING_PUNCTUATION.sub("", german).casefold().split())


def read_dictionary_pairs(
    path,
    exclude_german: Iterable[str] = (),
    max_words: int = 4,
) -> list[tuple[str, str]]:
    """The word and phrase pairs of a Ding word list at ``path``.

    These are the aligned sub-entries that are not sentence-like (not both sides
    ending in ``.``, ``?`` or ``!``), cleaned like sentences and additionally
    stripped of ``(...)`` explanations and ``<...>`` search keys, with at most
    ``max_words`` words on each side.

    Args:
        path: a file in the Ding ``german :: english`` format.
        exclude_german: German sentences whose pairs must not be returned (e.g.
            the validation and test sources); compared ignoring case and final
            punctuation.
        max_words: the longest phrase kept, in words, on either side.

    Returns:
        Distinct ``(german, english)`` pairs in file order.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    excluded = {_sentence_key(g) for g in exclude_german}
    pairs: dict[tuple[str, str], None] = {}
    for german_raw, english_raw in _aligned_sub_entries(_read_lines(path)):
        german = _clean(german_raw, _PHRASE_ANNOTATION)
        english = _clean(english_raw, _PHRASE_ANNOTATION)
        if not german or not english:
            continue
        if german.endswith(SENTENCE_END) and english.endswith(SENTENCE_END):
            continue
        if len(german.split()) > max_words or len(english.split()) > max_words:
            continue
        if _sentence_key(german) in excluded:
            continue
        pairs.setdefault((german, english), None)
    return list(pairs)


# --------------------------------------------------------------------------
# Fetching and unpacking the package
# --------------------------------------------------------------------------


def _unpacked_dir() -> Path:
    return data_dir() / "ding" / f"{DEB_NAME}_{DEB_VERSION}"


def dictionary_path() -> Path:
    """The unpacked Ding word list ``usr/share/trans/de-en``, fetched and unpacked on first use.

    The first call downloads the 6.3 MB package with apt-get (see the module
    docstring) unless ``data_dir()/downloads/`` already holds it, checks its
    sha256, and unpacks it into ``data_dir()/ding/``. Later calls only check
    the unpacked file's sha256.

    Raises:
        ChecksumError: the package (cached or downloaded) or the unpacked file
            is not the pinned one; a bad cached package is deleted.
        DataUnavailableError: the package is not cached and cannot be fetched
            (no apt-get, no network, apt-get failed); the message says how to
            provide it by hand.
    """
    final_dir = _unpacked_dir()
    dictionary = final_dir / DICTIONARY_MEMBER
    if dictionary.is_file():
        if sha256_file(dictionary) == DICTIONARY_SHA256:
            return dictionary
        log.warning("Unpacked %s does not match its pinned sha256; unpacking again.", dictionary)
        shutil.rmtree(final_dir, ignore_errors=True)

    deb = fetch_deb(PACKAGE)
    members = read_deb_members(deb, lambda path: path == DICTIONARY_MEMBER)
    if DICTIONARY_MEMBER not in members:
        raise ValueError(f"{deb} has no file {DICTIONARY_MEMBER}")
    actual = hashlib.sha256(members[DICTIONARY_MEMBER]).hexdigest()
    if actual != DICTIONARY_SHA256:
        raise ChecksumError(f"{DICTIONARY_MEMBER} in {deb.name}", DICTIONARY_SHA256, actual)
    atomic_write_bytes(dictionary, members[DICTIONARY_MEMBER])
    return dictionary


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def sentence_pairs() -> list[tuple[str, str]]:
    """All 18,143 ``(german, english)`` sentence pairs of the pinned dictionary, in file order.

    Example: ``("Mein Entschluss steht fest.", "My mind is made up.")``. Parsed
    once per process (about a second); see :func:`dictionary_path` for what
    the first call may download and raise.
    """
    global _sentence_pairs
    with _lock:
        if _sentence_pairs is None:
            pairs = read_sentence_pairs(dictionary_path())
            if len(pairs) != EXPECTED_SENTENCE_PAIRS:
                raise ValueError(
                    f"{DICTIONARY_MEMBER}: expected {EXPECTED_SENTENCE_PAIRS} sentence pairs, "
                    f"parsed {len(pairs)}"
                )
            _sentence_pairs = tuple(pairs)
        return list(_sentence_pairs)


def split_by_source(
    pairs: Sequence[tuple[str, str]],
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, list[tuple[str, str]]]:
    """Split translation pairs so that each German sentence lies in one split only.

    The distinct source sentences (ignoring case and final punctuation), in
    order of first appearance, are shuffled with
    ``numpy.random.default_rng(seed)`` and cut by
    :func:`zoo.data.splits.split_counts`; every pair follows its source
    sentence. Within a split the pairs keep their input order.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    fractions = check_fractions(fractions)
    keys: dict[str, int] = {}
    for german, _ in pairs:
        keys.setdefault(_sentence_key(german), len(keys))
    order = np.random.default_rng(seed).permutation(len(keys))
    split_of_group = np.empty(len(keys), dtype=np.int64)
    start = 0
    for split_index, count in enumerate(split_counts(len(keys), fractions)):
        split_of_group[order[start : start + count]] = split_index
        start += count
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLIT_NAMES}
    for german, english in pairs:
        name = SPLIT_NAMES[split_of_group[keys[_sentence_key(german)]]]
        splits[name].append((german, english))
    return splits


def load_translation_splits(
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, list[tuple[str, str]]]:
    """Train/validation/test splits of :func:`sentence_pairs`, made by German sentence.

    Returns:
        ``{"train": [(german, english), ...], "validation": ..., "test": ...}``;
        with the defaults, identical on every machine.
    """
    return split_by_source(sentence_pairs(), seed=seed, fractions=fractions)


def dictionary_pairs(
    exclude_german: Iterable[str] = (),
    max_words: int = 4,
) -> list[tuple[str, str]]:
    """Word and phrase pairs of the dictionary (not sentences), for extra training data.

    Args:
        exclude_german: German sentences to leave out, e.g. the sources of the
            validation and test splits (compared ignoring case and final
            punctuation).
        max_words: the longest phrase kept, in words, on either side.

    Returns:
        Distinct ``(german, english)`` pairs in file order, such as
        ``("Aalsuppe", "eel soup")``; see :func:`read_dictionary_pairs`.
    """
    return read_dictionary_pairs(
        dictionary_path(), exclude_german=exclude_german, max_words=max_words
    )


def describe_split(seed: int = SPLIT_SEED, fractions: Sequence[float] = FRACTIONS) -> dict:
    """A JSON-ready description of the splits, for a model card."""
    fractions = check_fractions(fractions)
    splits = load_translation_splits(seed=seed, fractions=fractions)
    return {
        "name": SOURCE["name"],
        "version": SOURCE["version"],
        "source": SOURCE,
        "license": SOURCE["license"],
        "sha256": DEB_SHA256,
        "split_seed": int(seed),
        "fractions": dict(zip(SPLIT_NAMES, fractions)),
        "split_method": (
            "zoo.data.ding.split_by_source: distinct German sentences (ignoring case and final "
            "punctuation) shuffled with numpy default_rng(seed) and cut by "
            "zoo.data.splits.split_counts; each pair follows its German sentence, so no source "
            "sentence is in two splits"
        ),
        "filters": {
            "sentence_end": list(SENTENCE_END),
            "min_english_words": MIN_ENGLISH_WORDS,
            "max_words": MAX_WORDS,
        },
        "total_pairs": sum(len(pairs) for pairs in splits.values()),
        "counts": {name: len(pairs) for name, pairs in splits.items()},
        "source_sentences": {
            name: len({_sentence_key(german) for german, _ in pairs})
            for name, pairs in splits.items()
        },
    }
