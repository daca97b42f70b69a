"""Tests for the German-English data (Ding dictionary, WMT via TFDS) and the translation baselines.

Parsing, splitting, fetching failures and the baselines run offline on small
fixtures and temporary data dirs. The real-dictionary tests use the default
zoo cache: the first run downloads the Debian package with apt-get (6.3 MB),
later runs reuse it; where that is impossible they are skipped with the reason.
"""

import os
import sys
import time

import pytest

from zoo.data import (
    TRANSLATION_DATASETS,
    ChecksumError,
    DataUnavailableError,
    debian,
    ding,
    load_translation_splits,
    sha256_file,
    wmt,
)
from zoo.data.cache import downloads_dir
from zoo.tasks import translation_metrics as tm

FIXTURE = """\
# Version :: devel 2023-01-30
# License :: GPL Version 2 or later; GNU General Public License
Haus {n} | Das Haus ist sehr groß. :: house | The house is very big.
Baum {m} | Der Baum ist alt. | Bäume {pl} :: tree | The tree is old and tall.
Er kommt morgen.; Er wird morgen kommen. :: He is coming tomorrow.; He will come tomorrow.
Das ist mir egal. [ugs.] :: I don't care about it. [coll.]
Sie gab ihm {Dat.} das Buch. :: She gave him {indirect} the book.
Komm her! :: Come here!
Das ist eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn. :: That is a very long sentence indeed.
Das ist gut. :: That is very good indeed.
Das ist gut. :: That is really quite good.
Es regnet heute sehr stark :: It is raining very hard today.
Wo ist der Bahnhof? :: Where is the station?
Wo ist der Bahnhof? :: Where is the station?
ein langer Weg nach Hause :: a long way home
Aalsuppe {f} (Gericht) [cook.] | Aalsuppen {pl} :: eel soup <eelsoup> | eel soups
"""

EXPECTED_FIXTURE_SENTENCES = [
    ("Das Haus ist sehr groß.", "The house is very big."),
    ("Er kommt morgen.", "He is coming tomorrow."),
    ("Das ist mir egal.", "I don't care about it."),
    ("Sie gab ihm das Buch.", "She gave him the book."),
    ("Das ist gut.", "That is very good indeed."),
    ("Das ist gut.", "That is really quite good."),
    ("Wo ist der Bahnhof?", "Where is the station?"),
]


@pytest.fixture
def fixture_file(tmp_path):
    path = tmp_path / "de-en"
    path.write_text(FIXTURE, encoding="utf-8")
    return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    root = tmp_path / "zoo-data"
    monkeypatch.setenv("ZOO_DATA_DIR", str(root))
    monkeypatch.setattr(ding, "_sentence_pairs", None)
    return root


# --------------------------------------------------------------------------
# parsing (fixture file)
# --------------------------------------------------------------------------


def test_sentence_pairs_from_fixture(fixture_file):
    # Checks, in order: zipping by position; the 3-vs-2 "Baum" line skipped;
    # first "; " alternative; {} and [] removed; "Komm her!" too short in English;
    # 16 German words too long; no final "." on the German side; duplicates once;
    # one German sentence with two translations kept twice; phrases are not sentences.
    assert ding.read_sentence_pairs(fixture_file) == EXPECTED_FIXTURE_SENTENCES


def test_dictionary_pairs_from_fixture(fixture_file):
    pairs = ding.read_dictionary_pairs(fixture_file)
    assert ("Haus", "house") in pairs
    assert ("Aalsuppe", "eel soup") in pairs  # (...), {...}, [...] and <...> removed
    assert ("Aalsuppen", "eel soups") in pairs
    assert ("Baum", "tree") not in pairs  # that line's sub-entries do not line up
    assert ("Komm her!", "Come here!") not in pairs  # sentence-like, not a phrase
    assert not any(german == "ein langer Weg nach Hause" for german, _ in pairs)  # 5 words > 4
    assert ("ein langer Weg nach Hause", "a long way home") in ding.read_dictionary_pairs(
        fixture_file, max_words=5
    )
    # German sides that are held-out sentences are left out (case and final punctuation ignored).
    held_out = ding.read_dictionary_pairs(fixture_file, exclude_german=["haus."])
    assert ("Haus", "house") not in held_out and ("Aalsuppe", "eel soup") in held_out
    with pytest.raises(ValueError, match="max_words must be >= 1, got 0"):
        ding.read_dictionary_pairs(fixture_file, max_words=0)


# --------------------------------------------------------------------------
# splitting by German sentence
# --------------------------------------------------------------------------


def _synthetic_pairs():
    pairs = []
    for i in range(300):
        pairs.append((f"Satz Nummer {i}.", f"Sentence number {i}."))
        if i % 3 == 0:  # a second translation of the same sentence
            pairs.append((f"Satz Nummer {i}.", f"This is sentence {i}."))
        if i % 7 == 0:  # the same sentence with other case and final punctuation
            pairs.append((f"satz nummer {i}!", f"Sentence number {i}!"))
    return pairs


def _source_keys(pairs):
    return {ding._sentence_key(german) for german, _ in pairs}


def test_split_keeps_each_german_sentence_in_one_split():
    pairs = _synthetic_pairs()
    splits = ding.split_by_source(pairs, seed=5)
    assert list(splits) == ["train", "validation", "test"]
    keys = {name: _source_keys(part) for name, part in splits.items()}
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    assert sorted(p for part in splits.values() for p in part) == sorted(pairs)
    assert [len(keys[name]) for name in splits] == [240, 30, 30]  # 80/10/10 of 300 sentences
    # Pairs keep their input order within a split.
    assert splits["test"] == [p for p in pairs if ding._sentence_key(p[0]) in keys["test"]]


def test_split_is_deterministic_and_depends_on_seed():
    pairs = _synthetic_pairs()
    assert ding.split_by_source(pairs, seed=5) == ding.split_by_source(pairs, seed=5)
    other_seed = ding.split_by_source(pairs, seed=6)
    assert ding.split_by_source(pairs, seed=5)["test"] != other_seed["test"]
    with pytest.raises(ValueError, match="sum to 1"):
        ding.split_by_source(pairs, fractions=(0.8, 0.1, 0.2))


# --------------------------------------------------------------------------
# fetching: failures (temporary data dir, no network)
# --------------------------------------------------------------------------


def test_cached_package_with_wrong_sha256_raises_naming_the_file(tmp_data_dir):
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    bad = downloads / ding.DEB_FILENAME
    bad.write_bytes(b"not a Debian package")
    actual = sha256_file(bad)
    with pytest.raises(ChecksumError) as info:
        ding.dictionary_path()
    message = str(info.value)
    assert ding.DEB_FILENAME in message and ding.DEB_SHA256 in message and actual in message
    assert not bad.exists()  # deleted, so the next call downloads again


def test_downloaded_package_with_wrong_sha256_is_discarded(tmp_data_dir, monkeypatch):
    def fake_apt_get(apt_get, package):
        code = f"open({ding.DEB_FILENAME!r}, 'wb').write(b'tampered')"
        return [sys.executable, "-c", code]

    monkeypatch.setattr(debian, "_which", lambda tool: "/usr/bin/" + tool)
    monkeypatch.setattr(debian, "_apt_get_download_command", fake_apt_get)
    with pytest.raises(ChecksumError, match=f"{ding.DEB_FILENAME}.*discarded"):
        ding.dictionary_path()
    assert os.listdir(tmp_data_dir / "downloads") == []  # no file, no temp dir left


def test_no_apt_get_and_no_cached_copy_explains_what_to_do(tmp_data_dir, monkeypatch):
    monkeypatch.setattr(debian, "_which", lambda tool: None)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        ding.sentence_pairs()
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "apt-get is not installed" in message
    assert f"apt-get download {ding.DEB_NAME}={ding.DEB_VERSION}" in message
    assert ding.DEB_URL in message
    assert os.path.join("downloads", ding.DEB_FILENAME) in message
    assert ding.DEB_SHA256 in message


def test_apt_get_failure_runs_update_then_reports_both(tmp_data_dir, monkeypatch):
    calls = []

    def failing(what):
        def command(apt_get, package=None):
            calls.append(what)
            return [sys.executable, "-c", f"import sys; print('E: {what} failed'); sys.exit(100)"]

        return command

    monkeypatch.setattr(debian, "_which", lambda tool: "/usr/bin/" + tool)
    monkeypatch.setattr(debian, "_apt_get_download_command", failing("download"))
    monkeypatch.setattr(debian, "_apt_get_update_command", failing("update"))
    with pytest.raises(DataUnavailableError) as info:
        ding.dictionary_path()
    assert calls == ["download", "update"]
    assert "E: download failed" in str(info.value) and "E: update failed" in str(info.value)


# --------------------------------------------------------------------------
# the real dictionary (default cache; downloads once with apt-get)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dictionary():
    try:
        path = ding.dictionary_path()
    except DataUnavailableError as exc:
        pytest.skip(f"the Ding dictionary could not be fetched: {str(exc).splitlines()[0]}")
    return path


@pytest.fixture(scope="module")
def real_deb(real_dictionary):
    """The cached package in the default zoo cache (found before any test changes the cache)."""
    return downloads_dir() / ding.DEB_FILENAME


@pytest.fixture(scope="module")
def real_splits(real_dictionary):
    return ding.load_translation_splits()


def test_real_sentence_pairs(real_dictionary):
    assert sha256_file(real_dictionary) == ding.DICTIONARY_SHA256
    pairs = ding.sentence_pairs()
    assert len(pairs) == ding.EXPECTED_SENTENCE_PAIRS == 18_143
    assert len(set(pairs)) == len(pairs)
    assert ("Mein Entschluss steht fest.", "My mind is made up.") in pairs
    for german, english in pairs:
        assert german[-1] in ".?!" and english[-1] in ".?!"
        assert 4 <= len(english.split()) <= 15 and len(german.split()) <= 15
        assert "{" not in german + english and "[" not in german + english


def test_real_splits_are_disjoint_by_german_sentence(real_splits):
    sizes = {name: len(pairs) for name, pairs in real_splits.items()}
    assert sizes == {"train": 14_513, "validation": 1_813, "test": 1_817}
    keys = {name: _source_keys(pairs) for name, pairs in real_splits.items()}
    assert not keys["train"] & (keys["validation"] | keys["test"])
    assert not keys["validation"] & keys["test"]
    assert ding.load_translation_splits()["test"] == real_splits["test"]
    assert load_translation_splits("ding")["validation"] == real_splits["validation"]

    card = ding.describe_split()
    assert card["counts"] == sizes and card["sha256"] == ding.DEB_SHA256
    assert card["license"].startswith("GPL-2+") and card["split_seed"] == 1337


def test_real_dictionary_pairs_leave_out_held_out_sentences(real_splits):
    held_out = [german for name in ("validation", "test") for german, _ in real_splits[name]]
    pairs = ding.dictionary_pairs(exclude_german=held_out)
    assert len(pairs) > 300_000
    assert ("Aalsuppe", "eel soup") in pairs
    assert not {ding._sentence_key(g) for g, _ in pairs} & {ding._sentence_key(g) for g in held_out}


def test_a_package_copied_by_hand_is_used_without_apt_get(real_deb, tmp_data_dir, monkeypatch):
    # A .deb copied by hand is used without apt-get (and read in Python, without dpkg-deb).
    if not real_deb.is_file():
        pytest.skip(f"no cached {real_deb} (the package was removed after unpacking)")
    downloads = tmp_data_dir / "downloads"
    downloads.mkdir(parents=True)
    (downloads / ding.DEB_FILENAME).write_bytes(real_deb.read_bytes())
    monkeypatch.setattr(debian, "_which", lambda tool: None)
    path = ding.dictionary_path()
    assert path.is_relative_to(tmp_data_dir)
    assert sha256_file(path) == ding.DICTIONARY_SHA256


def test_real_baselines_beat_copying(real_splits):
    scores = tm.baselines(real_splits["train"], real_splits["validation"])
    assert set(scores) == {"copy", "ibm_model1", "nearest_neighbour"}
    assert all(s["sentences"] == 1_813 for s in scores.values())
    # Measured 0.3 / 7.0 / 4.3 BLEU when written; the floors leave room for library drift.
    assert scores["copy"]["bleu"] < 2
    assert scores["ibm_model1"]["bleu"] > 5
    assert scores["nearest_neighbour"]["bleu"] > 3
    assert scores["ibm_model1"]["chrf"] > scores["copy"]["chrf"]


# --------------------------------------------------------------------------
# WMT via TFDS
# --------------------------------------------------------------------------


def test_wmt_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        splits = wmt.load_wmt_splits(data_dir=tmp_path, max_examples=5)
        assert list(splits) == ["train", "validation", "test"]
        for pairs in splits.values():
            assert len(pairs) == 5
            assert all(isinstance(de, str) and isinstance(en, str) for de, en in pairs)
        everything = load_translation_splits("wmt14", data_dir=tmp_path, seed=1337)
        assert len(everything["train"]) == 7
        assert everything["train"][:5] == splits["train"]


def test_wmt_offline_fails_fast(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(*args, **kwargs):
        raise OSError("no route to host (simulated)")

    def must_not_download(self, *args, **kwargs):
        raise AssertionError("download_and_prepare must not be called")

    monkeypatch.setattr(wmt, "_check_reachable", unreachable)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_download)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError, match="www.statmt.org is unreachable"):
        wmt.load_wmt_splits(data_dir=tmp_path / "empty")
    with pytest.raises(DataUnavailableError, match="download=False"):
        wmt.load_wmt_splits(data_dir=tmp_path / "empty", download=False)
    assert time.monotonic() - start < 10


def test_translation_registry_and_argument_checks():
    assert set(TRANSLATION_DATASETS) == {"ding", "ding+wesnoth", "wmt14"}
    with pytest.raises(ValueError, match="'ding'.*'wmt14'"):
        load_translation_splits("europarl")
    with pytest.raises(ValueError, match="German-English.*'wmt14_translate/fr-en'"):
        wmt.load_wmt_splits("wmt14_translate/fr-en")
    with pytest.raises(ValueError, match="max_examples must be >= 0, got -1"):
        wmt.load_wmt_splits(max_examples=-1)


# --------------------------------------------------------------------------
# metrics and baselines (toy data)
# --------------------------------------------------------------------------

TOY_CORPUS = [
    ("das Haus", "the house"),
    ("das Buch", "the book"),
    ("ein Buch", "a book"),
    ("ein Haus", "a house"),
    ("das kleine Haus", "the small house"),
    ("ein kleines Buch", "a small book"),
    ("dann lese ich", "then I read"),
    ("ich lese das Buch", "I read the book"),
    ("lese ein Buch", "read a book"),
    ("dann schlafe ich", "then I sleep"),
]


def test_ibm_model1_learns_the_obvious_words():
    model = tm.IBMModel1().fit(TOY_CORPUS, iterations=8)
    expected = {
        "das": "the", "ein": "a", "haus": "house", "buch": "book",
        "ich": "i", "lese": "read", "dann": "then", "schlafe": "sleep",
    }
    for german, english in expected.items():
        assert model.best_target[german] == english, german
    # Unknown words are copied, casing of the first letter and "I" restored, punctuation kept.
    assert model.translate(["Das Haus, ich lese Zeitung!"]) == ["The house, I read Zeitung!"]
    with pytest.raises(ValueError, match="iterations must be a positive integer, got 0"):
        tm.IBMModel1().fit(TOY_CORPUS, iterations=0)


def test_nearest_neighbour_returns_the_training_translation():
    pairs = [
        ("Der Hund schläft im Garten.", "The dog is sleeping in the garden."),
        ("Die Katze trinkt Milch.", "The cat is drinking milk."),
        ("Wir fahren morgen nach Berlin.", "We are going to Berlin tomorrow."),
    ]
    nearest = tm.NearestNeighbourBaseline().fit(pairs)
    assert nearest.translate([source for source, _ in pairs]) == [target for _, target in pairs]
    assert nearest.translate(["Die Katze schläft."]) == ["The cat is drinking milk."]
    assert nearest.translate(["Xylophon!"]) == ["Xylophon!"]  # no shared term: copied


def test_corpus_scores_match_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hypotheses = ["The house is big.", "He is coming tomorrow.", "Where station?"]
    references = ["The house is very big.", "He will come tomorrow.", "Where is the station?"]
    scores = tm.corpus_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert 0 < scores["bleu"] < 100 and 0 < scores["chrf"] < 100
    assert "tok:13a" in scores["bleu_signature"] and "nc:6" in scores["chrf_signature"]
    assert scores["sentences"] == 3
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        tm.corpus_scores(hypotheses, references[:2])


def test_copy_baseline_and_baselines_on_toy_data():
    sources = ["Das Haus.", "Berlin ist groß."]
    assert tm.copy_baseline(sources) == sources
    assert tm.corpus_scores(tm.copy_baseline(sources), sources)["bleu"] == pytest.approx(100)
    scores = tm.baselines(TOY_CORPUS, [("das Buch", "the book"), ("ein Haus", "a house")])
    assert set(scores) == {"copy", "ibm_model1", "nearest_neighbour"}
    assert scores["nearest_neighbour"]["chrf"] == pytest.approx(100)  # both are training pairs
    assert scores["copy"]["chrf"] < scores["ibm_model1"]["chrf"]
