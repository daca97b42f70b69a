"""Tests for the Wesnoth catalog pairs (zoo.data.wesnoth) and the generic Debian fetching (zoo.data.debian).

The filter rule runs on a hand-written catalog; the real-catalog tests use the
default zoo cache (the first run downloads 16 packages with apt-get, 143 MB)
and are skipped with the reason where that is impossible.
"""

import gettext
import io
import struct

import pytest

from zoo.data import DataUnavailableError, debian, wesnoth
from zoo.data.ding import _sentence_key


def _mo_bytes(entries):
    """A little-endian GNU .mo file holding ``{msgid: msgstr}`` (what msgfmt writes)."""
    keys = sorted(entries)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(entries[k].encode() + b"\0" for k in keys)
    header = 7 * 4
    table = header + 16 * len(keys)
    id_offset, str_offset = table, table + len(ids)
    out_ids, out_strs, pos_i, pos_s = [], [], id_offset, str_offset
    for k in keys:
        out_ids += [len(k.encode()), pos_i]
        out_strs += [len(entries[k].encode()), pos_s]
        pos_i += len(k.encode()) + 1
        pos_s += len(entries[k].encode()) + 1
    head = struct.pack("<7I", 0x950412DE, 0, len(keys), header, header + 8 * len(keys), 0, 0)
    return head + struct.pack(f"<{2 * len(keys)}I", *out_ids) + struct.pack(f"<{2 * len(keys)}I", *out_strs) + ids + strs


def test_catalog_rule_keeps_plain_sentences_only():
    catalog = {
        "": "Content-Type: text/plain; charset=UTF-8\n",
        "What dangers may lurk in this fog?": "Was für Gefahren mögen sich in dem Nebel verstecken?",
        "female\x04I will not let you pass.": "Ich werde Euch nicht vorbeilassen.",
        "It <i>is</i> fitting, don\u2019t you think?": "Es <i>ist</i> angemessen, meint Ihr nicht?",
        "Move $unit.name to the signpost.": "Bewegt $unit.name zum Wegweiser.",
        "Defeat all enemy leaders": "Besiegt alle feindlichen Anführer",
        "Go!": "Los!",
        "We march at dawn, and we shall not stop until the last of them has fallen.": "Los.",
        "\u201cHalt,\u201d he cried\u2026 \u201cwho goes there?\u201d": "\u201eHalt\u201c, rief er\u2026 \u201ewer da?\u201c",
        "The river is high.\nWe cross at the old bridge! Who follows me?":
            "Der Fluss ist hoch. Wir gehen über die alte Brücke! Wer folgt mir?",
        "Two sentences here. But only one there.": "Zwei Sätze hier, aber dort nur einer.",
        ("One orc remains.", "Some orcs remain."): {0: "Ein Ork bleibt.", 1: "Einige Orks bleiben."},
    }
    pairs = wesnoth.catalog_sentence_pairs(catalog)
    assert pairs == [
        ("Was für Gefahren mögen sich in dem Nebel verstecken?", "What dangers may lurk in this fog?"),
        ("Ich werde Euch nicht vorbeilassen.", "I will not let you pass."),
        ("Es ist angemessen, meint Ihr nicht?", "It is fitting, don't you think?"),
        ('"Halt", rief er... "wer da?"', '"Halt," he cried... "who goes there?"'),
        # several sentences on both sides: paired by position (each pair then filtered: 3 words are too few)
        ("Der Fluss ist hoch.", "The river is high."),
        ("Wir gehen über die alte Brücke!", "We cross at the old bridge!"),
        # as many sentences on both sides or none: the entry stays whole
        ("Zwei Sätze hier, aber dort nur einer.", "Two sentences here. But only one there."),
    ]


def test_catalog_rule_reads_a_real_mo_file_format():
    data = _mo_bytes({"": "Content-Type: text/plain; charset=UTF-8\n",
                      "This castle seems as dark as a cave!": "In dieser Burg ist es so dunkel wie in einer Höhle!"})
    catalog = gettext.GNUTranslations(io.BytesIO(data))._catalog
    assert wesnoth.catalog_sentence_pairs(catalog) == [
        ("In dieser Burg ist es so dunkel wie in einer Höhle!", "This castle seems as dark as a cave!")]


def test_package_file_name_drops_the_epoch():
    package = wesnoth._package("did")
    assert package.filename == "wesnoth-1.16-did_1.16.9-1_all.deb"
    assert package.url == "https://deb.debian.org/debian/pool/main/w/wesnoth-1.16/wesnoth-1.16-did_1.16.9-1_all.deb"


def test_unknown_campaign_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Wesnoth campaign 'nope'"):
        wesnoth.campaign_pairs("nope")
    with pytest.raises(ValueError, match="unknown Wesnoth campaign"):
        wesnoth.load_domain_splits(held_out=("did", "xyz"))


def test_no_apt_get_names_the_package_and_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(debian, "_which", lambda tool: None)
    with pytest.raises(DataUnavailableError) as info:
        debian.fetch_deb(wesnoth._package("ttb"))
    message = str(info.value)
    assert "wesnoth-1.16-ttb 1:1.16.9-1" in message and "A Tale of Two Brothers" in message
    assert "apt-get download wesnoth-1.16-ttb=1:1.16.9-1" in message
    assert wesnoth.CAMPAIGNS["ttb"][1] in message


@pytest.fixture(scope="module")
def real_splits():
    try:
        return wesnoth.load_domain_splits()
    except DataUnavailableError as exc:
        pytest.skip(f"the Wesnoth packages could not be fetched: {str(exc).splitlines()[0]}")


def test_real_splits_hold_out_whole_campaigns(real_splits):
    counts = {name: len(pairs) for name, pairs in real_splits.items()}
    assert counts["wesnoth-did"] == 899 and counts["wesnoth-sotbe"] == 520
    assert sum(counts[s] for s in ("train", "validation", "test")) == 10_761  # the 14 training campaigns
    held_out = {_sentence_key(g) for s in ("wesnoth-did", "wesnoth-sotbe") for g, _ in real_splits[s]}
    keys = {s: {_sentence_key(g) for g, _ in real_splits[s]} for s in ("train", "validation", "test")}
    assert not keys["train"] & keys["validation"] and not keys["train"] & keys["test"]
    # An exact German sentence of a held-out campaign never trains.
    assert not {g for g, _ in real_splits["train"]} & {g for s in ("wesnoth-did", "wesnoth-sotbe")
                                                        for g, _ in real_splits[s]}
    assert held_out  # non-empty
    assert wesnoth.load_domain_splits()["validation"] == real_splits["validation"]  # deterministic
