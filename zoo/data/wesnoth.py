"""German-English dialogue from the translation catalogs of Battle for Wesnoth's campaigns (Debian).

Source: the 16 official campaigns of Battle for Wesnoth 1.16 as packaged by
Debian (``wesnoth-1.16-did``, ``-dm``, … ``-utbs``, version ``1:1.16.9-1``,
GPL-2+). Each package holds its campaign's gettext catalogs; the German one,
``usr/share/games/wesnoth/1.16/locale/de/LC_MESSAGES/wesnoth-<id>.mo``, pairs
every English string of the campaign (dialogue, narration, objectives, unit
names) with its German translation, e.g. ``"What dangers may lurk in this
fog?"`` → ``"Was für Gefahren mögen sich in dem Nebel verstecken?"``. This is
another domain than the Ding dictionary's example sentences: fantasy
dialogue, archaic register, names never seen elsewhere.

Which entries become sentence pairs (:func:`catalog_sentence_pairs`, a stated
rule, tested):

* singular entries only (plural forms are skipped); a gettext context
  (``context\\x04text``) is dropped;
* entries holding markup or placeholders on either side are skipped (``$``,
  ``%``, ``{``, ``}``, ``[``, ``]``, ``|``, ``^``, ``@``, ``#``, ``=``,
  ``_``, ``\\``); HTML-like tags such as ``<i>…</i>`` are removed, line
  breaks count as spaces;
* typography is made plain: curly quotes and apostrophes become ``"`` and
  ``'``, ``…`` becomes ``...``, en and em dashes become ``-``, non-breaking
  spaces become spaces, runs of whitespace one space;
* an entry of several sentences is cut after each ``.``, ``?`` or ``!`` that
  is followed by a space and a capital letter (or a quote); when both sides
  have the same number of sentences, they are paired by position, otherwise
  the entry stays whole;
* each pair: both sides end in ``.``, ``?`` or ``!`` (before closing quotes), the English
  side has 4 to 25 words, the German at most 25, and the German has 0.5 to 2
  times as many words as the English (loose, rewritten translations out);
* repeated pairs are kept once, in catalog order.

Splits (:func:`load_domain_splits`): two whole campaigns, *Descent into
Darkness* (``did``) and *Son of the Black-Eye* (``sotbe``), are held out as
test domains and never enter training or model selection; the pairs of the
other 14 are split 80/10/10 by German sentence
(:func:`zoo.data.ding.split_by_source`).

Fetching: each package is downloaded once with apt-get into
``data_dir()/downloads/`` (:mod:`zoo.data.debian`, sha256-checked; 5–20 MB
each, 143 MB in all), and its German catalog is copied into
``data_dir()/wesnoth/`` and checked against its own pinned sha256; later
calls read only the catalogs. (The core game's package, ``wesnoth-1.16-data``,
146 MB, would add about 1,300 pairs of help and unit texts; it is not used.)
"""

from __future__ import annotations

import gettext
import hashlib
import io
import re
import threading
from typing import Iterable, Mapping, Sequence

from zoo.data.cache import ChecksumError, atomic_write_bytes, data_dir, sha256_file
from zoo.data.debian import DebianPackage, fetch_deb, read_deb_members
from zoo.data.ding import FRACTIONS, SPLIT_SEED, split_by_source

__all__ = [
    "CAMPAIGNS",
    "HELD_OUT_CAMPAIGNS",
    "VERSION",
    "campaign_pairs",
    "catalog_sentence_pairs",
    "clean_text",
    "describe_source",
    "load_domain_splits",
]

VERSION = "1:1.16.9-1"

#: Campaign id → (title, sha256 of the .deb, sha256 of its German catalog).
CAMPAIGNS: dict[str, tuple[str, str, str]] = {
    "did": ("Descent Into Darkness",
            "774619f5aaeb7eb4c848e1cc1758795a8c58e96bd270cceecc9d847dbcc769b3",
            "24b7ac71fcc77e4ec9952c762fed01ea370ee79d986f5852d67486737e83f3d2"),
    "dm": ("Delfador's Memoirs",
           "1997ad4d91e8de36415db2a3445904288f588a76d75111222d2aace409ace5c6",
           "98e97637d1e86021fe5b1d6c22ce9fc19260e09147c97f767e0bbd9076f0337d"),
    "dw": ("Dead Water",
           "47982e08b2a5d5fd79f400a5453f32c6d7dd56f2ccc10412a9e47dec8a9b3ca4",
           "a1c9a623bd525db42fab7327a1b40315e7646e5d6aaf73d3b77d1df696f37c03"),
    "ei": ("The Eastern Invasion",
           "687abe111ee662b7324336ddadc209758f68d2eeb1ccbf630238f27a0e3c6404",
           "cfed3e691437c04fd30cfb6d3f96cd5d31f37b76452484bf7ebf4ac7c4dffecd"),
    "httt": ("Heir to the Throne",
             "05b16a3f8f8204278794aae14d8e6a7c95d2b2faef7337c4997c827a146d1bbd",
             "14ed2b7beeee02736550253a28713864161f1e6ddc325405ad424bd6e637ccb9"),
    "l": ("Liberty",
          "5383c79046df6121929bc36a8ec3f970ab4cf9c1239ed9b31868201c27f4266d",
          "df8c35dc80786be89190925afde31f3c839652f42cf3e08ecaa04dd3e7e47539"),
    "low": ("Legend of Wesmere",
            "2f304551b97b7fb76a2adb5ad8ffcac3e78476bc8ade17532c90714065c9bf9f",
            "3e40c2b029b04fdf9e4911389cf4d81a3d7731db00d6cbce07a43282504a32a5"),
    "nr": ("Northern Rebirth",
           "13edcf1bdd23708f531ba81c67100c5800363a119f10155c7f9e146fe7dced34",
           "36682a5acb5adbb5620080ffd9242a26381d73ac8d98d1067530aa20616d039c"),
    "sof": ("The Sceptre of Fire",
            "b6f1ddffdbd1a977f3965dae944e4fb11c147627471f1cfc71c92d1e69efb555",
            "f53457f837d677442ce64706a920b749e7e8bf11c1cf10ce7b5bad8001f11185"),
    "sota": ("Secrets of the Ancients",
             "fa44304ff53d259f3c5fe13c03cb8166e55e9c307807d1a5663048c396645ba6",
             "4e3d6c5b2a9088326803077176e863fa2e2389819a9b6c40e3d955ccb3ddd47b"),
    "sotbe": ("Son of the Black-Eye",
              "877a2f4a7fd8df54fd3b4561ffbd5fa95d0390d7c7372f3cb66367c8007918cb",
              "ef9061d4bb7ffdef737bd5d996f017040beb25ee2a183d60be806c2db9c1fb57"),
    "thot": ("The Hammer of Thursagan",
             "79d9ec6e43300ea9f41295ccf3fb451e8eeaefc17007123f65d77eb05cb88695",
             "534f63204e6b010fea285c4c1de95faadc511d3ddb264031d4db51ab9a4a8618"),
    "trow": ("The Rise of Wesnoth",
             "b5009e964ac7157a46d50de911e4f56f5bb4389d60b82a513b5f382671d180d7",
             "bf8a503d462db1ebff5c0951fb76020b5a5337bc353878aa6b3184148b24166a"),
    "tsg": ("The South Guard",
            "38b5f564253b8e0d9c093b2b7c58aabfef24f688968d9cbaf42abfc1e76d8288",
            "5e95c7051bfb7e8ab6fc603128e40c06335c0069e1cb1834a0e449b953cdefb1"),
    "ttb": ("A Tale of Two Brothers",
            "d0d45693665305191488553ade8dc1d0aa26ab17d4bffae3bf6969db4a766329",
            "80b49c938049d5321b285727f90f32dcde9a9855965cab3490eb668a4a1a14e5"),
    "utbs": ("Under the Burning Suns",
             "81e05717bebbfb6348c0bed2cd6ce2560c4fd9205ed419c2e7bc039b4a70e228",
             "79a8a11a398bf3bfc29adcfd21973e14b4b487b5d3319751fbc0416ee7b80281"),
}

#: Whole campaigns kept out of training and model selection: test domains only.
HELD_OUT_CAMPAIGNS = ("did", "sotbe")

#: Sentence-pair filters (see the module docstring).
SENTENCE_END = (".", "?", "!")
MIN_ENGLISH_WORDS, MAX_WORDS = 4, 25
WORD_RATIO = (0.5, 2.0)
#: What the pinned catalogs yield with these filters (checked on load).
EXPECTED_PAIRS = {
    "did": 899, "dm": 637, "dw": 446, "ei": 366, "httt": 1299, "l": 430, "low": 723, "nr": 1165,
    "sof": 627, "sota": 679, "sotbe": 520, "thot": 272, "trow": 1064, "tsg": 517, "ttb": 160,
    "utbs": 2392,
}

_MARKUP_OR_PLACEHOLDER = re.compile(r"[$%{}\[\]|^@#=_\\]")
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"']))\s+(?=[\"']?[A-ZÄÖÜ])")
_TAG = re.compile(r"<[^<>]*>")
_PLAIN = str.maketrans({
    "\u2019": "'", "\u2018": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2026": "...", "\u2013": "-", "\u2014": "-", "\u00a0": " ",
})

_lock = threading.Lock()
_pairs_by_campaign: dict[str, list[tuple[str, str]]] = {}


def clean_text(text: str) -> str:
    """Tags removed, typography made plain, whitespace collapsed (see the module docstring)."""
    return " ".join(_TAG.sub("", text).translate(_PLAIN).split())


def _is_sentence_pair(german: str, english: str) -> bool:
    if not all(side.rstrip("\"'").endswith(SENTENCE_END) for side in (german, english)):
        return False
    english_words, german_words = len(english.split()), len(german.split())
    if not MIN_ENGLISH_WORDS <= english_words <= MAX_WORDS or german_words > MAX_WORDS:
        return False
    return WORD_RATIO[0] <= german_words / english_words <= WORD_RATIO[1]


def catalog_sentence_pairs(catalog: Mapping) -> list[tuple[str, str]]:
    """``(german, english)`` sentence pairs of a gettext catalog ``{msgid: msgstr}``, by the stated rule.

    ``catalog`` is what :class:`gettext.GNUTranslations` reads from a ``.mo``
    file (its ``_catalog``): plural entries have tuple keys and are skipped,
    the header (empty msgid) too.
    """
    pairs = []
    for msgid, msgstr in catalog.items():
        if not isinstance(msgid, str) or not msgid or not isinstance(msgstr, str):
            continue
        english = msgid.split("\x04")[-1]
        if _MARKUP_OR_PLACEHOLDER.search(english) or _MARKUP_OR_PLACEHOLDER.search(msgstr):
            continue
        german, english = clean_text(msgstr), clean_text(english)
        german_sentences, english_sentences = _SENTENCE_BREAK.split(german), _SENTENCE_BREAK.split(english)
        if len(german_sentences) == len(english_sentences) > 1:
            candidates = zip(german_sentences, english_sentences)
        else:
            candidates = [(german, english)]
        pairs.extend(pair for pair in candidates if _is_sentence_pair(*pair))
    return list(dict.fromkeys(pairs))


def _package(campaign: str) -> DebianPackage:
    title, deb_sha256, _ = CAMPAIGNS[campaign]
    return DebianPackage(f"wesnoth-1.16-{campaign}", VERSION, deb_sha256, pool="main/w/wesnoth-1.16",
                         what=f"the Battle for Wesnoth campaign '{title}'")


def _catalog_bytes(campaign: str) -> bytes:
    """The German catalog of ``campaign``, from the cache or out of its package."""
    _, _, catalog_sha256 = CAMPAIGNS[campaign]
    cached = data_dir() / "wesnoth" / f"{campaign}.de.mo"
    if cached.is_file() and sha256_file(cached) == catalog_sha256:
        return cached.read_bytes()
    deb = fetch_deb(_package(campaign))
    members = read_deb_members(deb, lambda path: "/locale/de/LC_MESSAGES/" in path and path.endswith(".mo"))
    if len(members) != 1:
        raise ValueError(f"{deb.name}: expected one German catalog, found {sorted(members)}")
    (member, data), = members.items()
    actual = hashlib.sha256(data).hexdigest()
    if actual != catalog_sha256:
        raise ChecksumError(f"{member} in {deb.name}", catalog_sha256, actual)
    atomic_write_bytes(cached, data)
    return data


def campaign_pairs(campaign: str) -> list[tuple[str, str]]:
    """The sentence pairs of one campaign (fetched on first use; see the module docstring)."""
    if campaign not in CAMPAIGNS:
        raise ValueError(f"unknown Wesnoth campaign {campaign!r}; expected one of {sorted(CAMPAIGNS)}")
    with _lock:
        if campaign not in _pairs_by_campaign:
            catalog = gettext.GNUTranslations(io.BytesIO(_catalog_bytes(campaign)))._catalog
            pairs = catalog_sentence_pairs(catalog)
            if len(pairs) != EXPECTED_PAIRS[campaign]:
                raise ValueError(f"Wesnoth campaign {campaign!r}: expected {EXPECTED_PAIRS[campaign]} "
                                 f"sentence pairs, parsed {len(pairs)}")
            _pairs_by_campaign[campaign] = pairs
        return list(_pairs_by_campaign[campaign])


def load_domain_splits(
    held_out: Iterable[str] = HELD_OUT_CAMPAIGNS,
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, list[tuple[str, str]]]:
    """Train/validation/test of the campaigns not held out, plus one test split per held-out campaign.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...],
        "wesnoth-did": [...], "wesnoth-sotbe": [...]}``: the first three split
        by German sentence (seeded, identical on every machine), the others
        whole campaigns.
    """
    held_out = tuple(held_out)
    for campaign in held_out:
        if campaign not in CAMPAIGNS:
            raise ValueError(f"unknown Wesnoth campaign {campaign!r}; expected one of {sorted(CAMPAIGNS)}")
    seen = [pair for campaign in CAMPAIGNS if campaign not in held_out for pair in campaign_pairs(campaign)]
    # A pair repeated in two campaigns is kept once (and held-out sentences never train).
    held_out_german = {german for campaign in held_out for german, _ in campaign_pairs(campaign)}
    seen = [pair for pair in dict.fromkeys(seen) if pair[0] not in held_out_german]
    splits = split_by_source(seen, seed=seed, fractions=fractions)
    for campaign in held_out:
        splits[f"wesnoth-{campaign}"] = campaign_pairs(campaign)
    return splits


def describe_source(held_out: Iterable[str] = HELD_OUT_CAMPAIGNS) -> dict:
    """A JSON-ready record of the source, its filters and packages, for a model card."""
    return {
        "name": "wesnoth-de-en",
        "description": ("German-English strings of the translation catalogs of Battle for Wesnoth's 16 "
                        "official campaigns (Debian wesnoth-1.16-*), kept where both sides "
                        "are sentences (zoo.data.wesnoth.catalog_sentence_pairs: markup and placeholders out, "
                        "plain typography, multi-sentence entries paired sentence by sentence when both "
                        "sides have as many, 4-25 English words, German/English word ratio 0.5-2)"),
        "license": "GPL-2+ (Battle for Wesnoth and its translations)",
        "held_out_campaigns": {c: CAMPAIGNS[c][0] for c in held_out},
        "packages": [_package(c).describe() for c in CAMPAIGNS],
        "catalog_sha256": {c: CAMPAIGNS[c][2] for c in CAMPAIGNS},
        "pairs": dict(EXPECTED_PAIRS),
    }


def ding_and_wesnoth_splits(seed: int = SPLIT_SEED, fractions: Sequence[float] = FRACTIONS,
                            held_out: Iterable[str] = HELD_OUT_CAMPAIGNS) -> dict[str, list[tuple[str, str]]]:
    """Two training domains in one: the Ding sentences and the dialogue of the campaigns not held out.

    Returns:
        ``{"train", "validation"}``: both domains' splits concatenated (Ding
        first), so model selection sees both; ``"test"``: the Ding test split
        (as for ``"ding"`` alone); ``"wesnoth-test"``: the test split of the
        campaigns that train. The held-out campaigns are not included: a
        recipe adds them as test domains (:func:`load_domain_splits`).
    """
    from zoo.data import ding

    dictionary = ding.load_translation_splits(seed=seed, fractions=fractions)
    campaigns = load_domain_splits(held_out=held_out, seed=seed, fractions=fractions)
    return {"train": dictionary["train"] + campaigns["train"],
            "validation": dictionary["validation"] + campaigns["validation"],
            "test": dictionary["test"], "wesnoth-test": campaigns["test"]}
