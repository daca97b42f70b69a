"""Emoji artwork with their Unicode CLDR names: a small, real image-captioning data set.

The same emoji are drawn by several artists. Each drawing is paired with the
emoji's English CLDR name ("face with tears of joy", "waving hand: medium skin
tone", "flag: Japan"), so a captioning model can be trained on some art styles
and tested on another one it has never seen.

Sources (npm packages, fetched with ``npm pack NAME@VERSION`` into
``data_dir()/downloads/`` on first use, sha256 checked, read with
:mod:`tarfile`; a tarball copied there by hand is used too):

* ``google``: ``emoji-datasource-google@16.0.0``, the Noto Color Emoji
  drawings by Google (Apache-2.0), 64x64 PNGs under ``img/google/64/``
  indexed by ``emoji.json``.
* ``twitter``: ``emoji-datasource-twitter@16.0.0``, Twemoji (CC-BY-4.0),
  same layout.
* ``openmoji``: ``openmoji@17.0.0`` (CC-BY-SA-4.0), the colour SVGs under
  ``color/svg/`` rendered with ``cairosvg``. The black-outline set
  (``black/svg/``) is the same line art and is never read. An SVG that fails
  to render is skipped (and listed in the cache manifest).
* ``fluent``: ``@iconify-json/fluent-emoji-flat@1.2.6``, Microsoft Fluent
  Emoji (flat, MIT): SVG bodies in ``icons.json``, code points in
  ``chars.json``. Each body is wrapped into a complete SVG document with the
  icon's width, height and view box (and the flips of an alias), then
  rendered like OpenMoji. Fluent has no country flags.
* Captions: ``emojibase-data@17.0.0``, ``en/data.json``: the ``label`` of every
  entry and of its skin-tone variants (``skins``).

Every drawing is rendered once to RGB 64x64 ``uint8``, composited on white
(alpha blending), and cached per style in ``data_dir()/emoji/`` as a
compressed ``.npz`` (images, code points, captions) with a JSON manifest
(cache version, the sha256 of the ``.npz`` and of the source tarballs, counts,
skipped files). Both are written atomically; a cache whose manifest does not
match is rebuilt. The first build takes about a minute for all four styles;
later loads take well under a second per style.

Code points and FE0F. An emoji is identified by its code-point sequence in
lower-case hex joined by ``-`` (``"1f600"``, ``"1f469-200d-1f4bb"``). The
variation selector U+FE0F is dropped everywhere (image file names, index
entries and emojibase hexcodes alike) before sequences are compared, because
the sources disagree on where they write it (``2764-fe0f`` vs ``2764``).
:func:`normalize_codepoints` is that rule; every ``codepoints`` value
returned by this module is normalised.

API::

    STYLES = ("google", "twitter", "openmoji", "fluent")

    load_style(style) -> {"images": uint8 [n, 64, 64, 3],
                          "codepoints": list[str], "captions": list[str]}

    load_captioning_splits(test_style="twitter", seed=1337, heldout_fraction=0.1,
                           validation_fraction=0.1) -> {
        "train": ..., "validation": ..., "test": ..., "heldout_emoji": ...}
        # each: load_style's dict plus "styles": list[str], one per image

    describe_split(...) -> dict   # sources, versions, sha256, licenses, counts, rules
    caption_group(codepoints, caption) -> "base" | "skin_tone" | "flag"

Splits (:func:`load_captioning_splits`), made by emoji (normalised code
points) with ``numpy.random.default_rng(seed)``:

1. ``heldout_emoji``: a random ``heldout_fraction`` of the emoji drawn in the
   test style. None of their drawings, in any style, is in ``train`` or
   ``validation``; the split holds their test-style drawings. Their captions
   can contain words never seen in training, so report BLEU/CIDEr on it, not
   exact match.
2. ``test``: every other test-style drawing. No drawing of the test style is
   in ``train`` or ``validation``.
3. ``validation``: among the remaining emoji that have at least two drawings in
   the training styles, a random ``validation_fraction`` is chosen; for each,
   one of its training-style drawings (the style drawn at random) is moved out
   of ``train`` into ``validation``. Its other drawings stay in training, so
   validation asks what the test asks (name a known emoji from a drawing not
   seen in training) without touching the test style.
4. ``train``: all other drawings of the three training styles.

With ``test_style=None`` every style trains (the model a user gets after the
leave-one-style-out rotations have measured the method): ``heldout_emoji`` is a
seeded share of all emoji, held out of every style and scored in every style;
``test`` is empty; validation and train follow rules 3 and 4 over all four styles.

Nothing is fetched, rendered or read at import time.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.data.cache import (
    NpmPackage,
    fetch_npm_package,
    atomic_write_bytes,
    atomic_write_text,
    data_dir,
    sha256_file,
)

__all__ = [
    "CACHE_VERSION",
    "CAPTIONS_PACKAGE",
    "IMAGE_SIZE",
    "PACKAGES",
    "SPLIT_NAMES",
    "SPLIT_SEED",
    "STYLES",
    "NpmPackage",
    "caption_group",
    "describe_split",
    "fetch_npm_package",
    "load_captioning_splits",
    "load_style",
    "normalize_codepoints",
    "read_captions",
    "split_by_style",
]

log = logging.getLogger(__name__)

#: The art styles, in the order their caches are built.
STYLES = ("google", "twitter", "openmoji", "fluent")
#: Height and width of every image.
IMAGE_SIZE = 64
#: Bumped whenever rendering or caching changes; older caches are rebuilt.
CACHE_VERSION = 1
#: The splits :func:`load_captioning_splits` returns.
SPLIT_NAMES = ("train", "validation", "test", "heldout_emoji")
SPLIT_SEED = 1337
DEFAULT_TEST_STYLE = "twitter"
HELDOUT_FRACTION = 0.1
VALIDATION_FRACTION = 0.1

#: The variation selector dropped from every code-point sequence.
VARIATION_SELECTOR = "fe0f"
SKIN_TONE_MODIFIERS = frozenset({"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"})
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F1FF + 1)
_TAG_CHARACTERS = range(0xE0020, 0xE007F + 1)
#: The group names :func:`caption_group` returns.
CAPTION_GROUPS = ("base", "skin_tone", "flag")


#: The image packages by style. The sha256 values are those of the tarballs
#: ``npm pack`` returned when the data set was pinned.
PACKAGES = {
    "google": NpmPackage(
        name="emoji-datasource-google",
        version="16.0.0",
        sha256="fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
        license="Apache-2.0 (the Noto Color Emoji images); the package's code and index: MIT",
        attribution=(
            "Noto Color Emoji, Copyright Google LLC, Apache License 2.0; packaged by "
            "Cal Henderson's emoji-data (emoji-datasource-google)."
        ),
        homepage="https://github.com/googlefonts/noto-emoji",
    ),
    "twitter": NpmPackage(
        name="emoji-datasource-twitter",
        version="16.0.0",
        sha256="f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        license="CC-BY-4.0 (the Twemoji graphics); the package's code and index: MIT",
        attribution=(
            "Twemoji graphics, Copyright Twitter, Inc. and other contributors, licensed under "
            "CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/); packaged by Cal "
            "Henderson's emoji-data (emoji-datasource-twitter)."
        ),
        homepage="https://github.com/jdecked/twemoji",
    ),
    "openmoji": NpmPackage(
        name="openmoji",
        version="17.0.0",
        sha256="55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68",
        license="CC-BY-SA-4.0",
        attribution=(
            "All emojis designed by OpenMoji, the open-source emoji and icon project "
            "(HfG Schwaebisch Gmuend; Benedikt Gross, Daniel Utz and the OpenMoji contributors). "
            "License: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/). "
            "Rendered here from the colour SVGs to 64x64 PNG on white."
        ),
        homepage="https://openmoji.org",
    ),
    "fluent": NpmPackage(
        name="@iconify-json/fluent-emoji-flat",
        version="1.2.6",
        sha256="7d064769dee690815f823bc5bcc511d957198caf9f5edd8dd9c1aa48a6aeb175",
        license="MIT",
        attribution=(
            "Fluent Emoji (flat), Copyright (c) Microsoft Corporation, MIT License; "
            "packaged as an Iconify icon set (@iconify-json/fluent-emoji-flat). "
            "Rendered here from SVG to 64x64 on white."
        ),
        homepage="https://github.com/microsoft/fluentui-emoji",
    ),
}

#: The captions: English CLDR names as packaged by emojibase.
CAPTIONS_PACKAGE = NpmPackage(
    name="emojibase-data",
    version="17.0.0",
    sha256="d01d0e2ca4e22cb402679532155342c71e2e871f25c32223c013b8b166ebdf5a",
    license="MIT (emojibase-data); the names come from Unicode CLDR (Unicode License v3)",
    attribution=(
        "Emoji names from the Unicode Common Locale Data Repository (CLDR), as packaged by "
        "Miles Johnson's emojibase (emojibase-data, en/data.json, field 'label')."
    ),
    homepage="https://emojibase.dev",
)

_CAPTIONS_MEMBER = "package/en/data.json"
_DATASOURCE_INDEX = "package/emoji.json"
_OPENMOJI_SVG_DIR = "package/color/svg/"
_FLUENT_ICONS = "package/icons.json"
_FLUENT_CHARS = "package/chars.json"



# --------------------------------------------------------------------------
# Code points, captions, groups
# --------------------------------------------------------------------------


def normalize_codepoints(sequence: str) -> str:
    """The canonical form of a code-point sequence: lower-case hex joined by ``-``, FE0F dropped.

    Accepts ``-``, ``_`` or spaces as separators and an optional ``U+`` prefix
    on each code point, e.g. ``"2764-FE0F-200D-1F525"`` -> ``"2764-200d-1f525"``.

    Raises:
        ValueError: ``sequence`` holds no code point or something that is not hex.
    """
    if not isinstance(sequence, str):
        raise ValueError(f"sequence must be a str of hex code points, got {sequence!r}")
    parts = sequence.replace("_", "-").replace(" ", "-").lower().split("-")
    kept = []
    for part in parts:
        if not part:
            continue
        part = part[2:] if part.startswith("u+") else part
        try:
            value = int(part, 16)
        except ValueError:
            raise ValueError(
                f"sequence must hold hex code points, got {sequence!r} (bad part {part!r})"
            ) from None
        hexcode = f"{value:x}"
        if hexcode != VARIATION_SELECTOR:
            kept.append(hexcode.rjust(4, "0"))
    if not kept:
        raise ValueError(
            f"sequence must hold at least one code point besides FE0F, got {sequence!r}"
        )
    return "-".join(kept)


def caption_group(codepoints: str, caption: str = "") -> str:
    """The evaluation group of an emoji: ``"flag"``, ``"skin_tone"`` or ``"base"``.

    * ``"flag"``: country and region flags, i.e. a pair of regional indicators
      (``1f1ef-1f1f5``, "flag: Japan") or a black flag followed by tag
      characters (``1f3f4-e0067-...``, "flag: England"); a caption starting with
      ``"flag:"`` counts too. "chequered flag" or "rainbow flag" are ``base``.
    * ``"skin_tone"``: a sequence of more than one code point holding a
      skin-tone modifier (U+1F3FB..U+1F3FF), e.g. "waving hand: dark skin tone".
      The modifier drawn alone ("light skin tone") is ``base``.
    * ``"base"``: everything else.
    """
    points = normalize_codepoints(codepoints).split("-")
    values = [int(point, 16) for point in points]
    if len(values) == 2 and all(value in _REGIONAL_INDICATORS for value in values):
        return "flag"
    if len(values) > 2 and values[0] == 0x1F3F4 and all(v in _TAG_CHARACTERS for v in values[1:]):
        return "flag"
    if caption.startswith("flag:"):
        return "flag"
    if len(points) > 1 and SKIN_TONE_MODIFIERS.intersection(points):
        return "skin_tone"
    return "base"


def _read_member(archive: tarfile.TarFile, name: str, tarball) -> bytes:
    try:
        member = archive.getmember(name)
    except KeyError:
        raise ValueError(f"{tarball}: no member {name}") from None
    handle = archive.extractfile(member)
    if handle is None:
        raise ValueError(f"{tarball}: member {name} is not a file")
    return handle.read()


def read_captions(tarball) -> dict[str, str]:
    """Caption of every emoji in an ``emojibase-data`` tarball, by normalised code points.

    Reads ``package/en/data.json``: each entry's ``label`` under its
    ``hexcode``, and the same for each of its ``skins``. When two hexcodes
    normalise to the same sequence the first one read wins.
    """
    with tarfile.open(tarball, mode="r:*") as archive:
        entries = json.loads(_read_member(archive, _CAPTIONS_MEMBER, tarball))
    captions: dict[str, str] = {}
    for entry in entries:
        for item in [entry, *entry.get("skins", ())]:
            hexcode, label = item.get("hexcode"), item.get("label")
            if hexcode and label:
                captions.setdefault(normalize_codepoints(hexcode), label)
    return captions


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _on_white(image) -> np.ndarray:
    """A PIL image as RGB ``uint8 [64, 64, 3]``: alpha-composited on white, then resized."""
    from PIL import Image

    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
    alpha = rgba[..., 3:4]
    rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    rgb = rgb.astype(np.uint8)
    if rgb.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        resized = Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
        rgb = np.asarray(resized, dtype=np.uint8)
    return rgb


def _png_to_rgb(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return _on_white(image)


def _svg_to_rgb(svg: bytes) -> np.ndarray:
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg, output_width=IMAGE_SIZE, output_height=IMAGE_SIZE)
    with Image.open(io.BytesIO(png)) as image:
        return _on_white(image)


# Each reader yields (raw code-point sequence, render callable); failures of
# the callable are recorded and the drawing skipped.
_Drawing = tuple[str, Callable[[], np.ndarray]]


def _datasource_drawings(tarball, style: str) -> list[_Drawing]:
    """PNG drawings of an ``emoji-datasource-<style>`` tarball, listed by ``emoji.json``."""
    prefix = f"package/img/{style}/64/"
    pngs: dict[str, bytes] = {}
    index = None
    with tarfile.open(tarball, mode="r:*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            if member.name == _DATASOURCE_INDEX:
                index = json.loads(archive.extractfile(member).read())
            elif member.name.startswith(prefix) and member.name.endswith(".png"):
                pngs[member.name[len(prefix) :]] = archive.extractfile(member).read()
    if index is None:
        raise ValueError(f"{tarball}: no member {_DATASOURCE_INDEX}")
    drawings: list[_Drawing] = []
    flag = f"has_img_{style}"
    for entry in index:
        variants = [entry, *(entry.get("skin_variations") or {}).values()]
        for variant in variants:
            image_name = variant.get("image")
            if not variant.get(flag, True) or image_name not in pngs:
                continue
            data = pngs[image_name]
            drawings.append((variant["unified"], lambda data=data: _png_to_rgb(data)))
    return drawings


def _openmoji_drawings(tarball) -> list[_Drawing]:
    """The colour SVGs of an ``openmoji`` tarball, named by their code points."""
    drawings: list[_Drawing] = []
    with tarfile.open(tarball, mode="r:*") as archive:
        for member in archive:
            name = member.name
            is_colour_svg = name.startswith(_OPENMOJI_SVG_DIR) and name.endswith(".svg")
            if not (member.isfile() and is_colour_svg):
                continue
            stem = name[len(_OPENMOJI_SVG_DIR) : -len(".svg")]
            if "/" in stem:
                continue
            svg = archive.extractfile(member).read()
            drawings.append((stem, lambda svg=svg: _svg_to_rgb(svg)))
    return drawings


def _fluent_icon(icons: dict, name: str) -> tuple[dict, bool, bool, int]:
    """An icon's own entry, following aliases; returns it with the accumulated flips and turns."""
    horizontal = vertical = False
    quarter_turns = 0
    seen = set()
    while name not in icons["icons"]:
        alias = icons.get("aliases", {}).get(name)
        if alias is None or name in seen:
            raise KeyError(f"no icon or alias named {name!r}")
        seen.add(name)
        horizontal ^= bool(alias.get("hFlip", False))
        vertical ^= bool(alias.get("vFlip", False))
        quarter_turns += int(alias.get("rotate", 0))
        name = alias["parent"]
    icon = icons["icons"][name]
    horizontal ^= bool(icon.get("hFlip", False))
    vertical ^= bool(icon.get("vFlip", False))
    quarter_turns += int(icon.get("rotate", 0))
    return icon, horizontal, vertical, quarter_turns % 4


def fluent_svg(icons: dict, name: str) -> bytes:
    """A complete SVG document for icon ``name`` of an Iconify ``icons.json``.

    The icon's ``body`` goes inside an ``<svg>`` with the icon's (or the
    set's) ``width``, ``height``, ``left`` and ``top`` as its size and view box;
    flips and quarter turns of the icon or of an alias chain become a
    ``transform`` on a group around the body.
    """
    icon, horizontal, vertical, quarter_turns = _fluent_icon(icons, name)
    width = icon.get("width", icons.get("width", 16))
    height = icon.get("height", icons.get("height", 16))
    left, top = icon.get("left", icons.get("left", 0)), icon.get("top", icons.get("top", 0))
    transforms = []
    cx, cy = left + width / 2, top + height / 2
    if quarter_turns:
        transforms.append(f"rotate({90 * quarter_turns} {cx:g} {cy:g})")
    if horizontal or vertical:
        sx, sy = (-1 if horizontal else 1), (-1 if vertical else 1)
        transforms.append(
            f"translate({cx:g} {cy:g}) scale({sx} {sy}) translate({-cx:g} {-cy:g})"
        )
    body = icon["body"]
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:g}" height="{height:g}" viewBox="{left:g} {top:g} {width:g} {height:g}">'
        f"{body}</svg>"
    ).encode("utf-8")


def _fluent_drawings(tarball) -> list[_Drawing]:
    """The Fluent icons named in ``chars.json`` (code points -> icon name)."""
    with tarfile.open(tarball, mode="r:*") as archive:
        icons = json.loads(_read_member(archive, _FLUENT_ICONS, tarball))
        chars = json.loads(_read_member(archive, _FLUENT_CHARS, tarball))
    drawings: list[_Drawing] = []
    for codepoints, name in chars.items():
        drawings.append((codepoints, lambda name=name: _svg_to_rgb(fluent_svg(icons, name))))
    return drawings


def _drawings(style: str, tarball) -> list[_Drawing]:
    if style in ("google", "twitter"):
        return _datasource_drawings(tarball, style)
    if style == "openmoji":
        return _openmoji_drawings(tarball)
    return _fluent_drawings(tarball)


# --------------------------------------------------------------------------
# The per-style cache
# --------------------------------------------------------------------------


def _check_style(style) -> str:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    return style


def _cache_paths(style: str) -> tuple[Path, Path]:
    directory = data_dir() / "emoji"
    stem = f"{style}-v{CACHE_VERSION}"
    return directory / f"{stem}.npz", directory / f"{stem}.json"


def _expected_sources(style: str) -> dict:
    return {
        "images": {"package": PACKAGES[style].spec, "sha256": PACKAGES[style].sha256},
        "captions": {"package": CAPTIONS_PACKAGE.spec, "sha256": CAPTIONS_PACKAGE.sha256},
    }


def _read_cache(style: str) -> dict | None:
    """The cached arrays of ``style``, or None when absent, stale or corrupt."""
    array_path, manifest_path = _cache_paths(style)
    if not (array_path.is_file() and manifest_path.is_file()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        manifest.get("cache_version") != CACHE_VERSION
        or manifest.get("sources") != _expected_sources(style)
        or manifest.get("sha256") != sha256_file(array_path)
    ):
        log.info("The %s emoji cache is stale or damaged; rebuilding it.", style)
        return None
    with np.load(array_path, allow_pickle=False) as arrays:
        return {
            "images": arrays["images"],
            "codepoints": arrays["codepoints"].tolist(),
            "captions": arrays["captions"].tolist(),
        }


def _build_cache(style: str) -> dict:
    """Render every captioned drawing of ``style`` and write the cache; returns the arrays."""
    started = time.perf_counter()
    tarball = fetch_npm_package(PACKAGES[style])
    captions = read_captions(fetch_npm_package(CAPTIONS_PACKAGE))
    rendered: dict[str, np.ndarray] = {}
    failed, uncaptioned, duplicates = [], [], []
    for raw, render in _drawings(style, tarball):
        try:
            key = normalize_codepoints(raw)
        except ValueError:
            uncaptioned.append(raw)
            continue
        if key not in captions:
            uncaptioned.append(raw)
            continue
        if key in rendered:
            duplicates.append(raw)
            continue
        try:
            rendered[key] = render()
        except Exception as exc:  # a drawing the renderer cannot draw is skipped
            failed.append({"codepoints": raw, "error": f"{type(exc).__name__}: {exc}"[:300]})
    if not rendered:
        raise ValueError(f"{tarball}: no captioned drawing of style {style!r} was found")
    keys = sorted(rendered)
    images = np.stack([rendered[key] for key in keys]).astype(np.uint8)
    arrays = {
        "images": images,
        "codepoints": keys,
        "captions": [captions[key] for key in keys],
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=images,
        codepoints=np.array(keys, dtype=str),
        captions=np.array(arrays["captions"], dtype=str),
    )
    array_path, manifest_path = _cache_paths(style)
    atomic_write_bytes(array_path, buffer.getvalue())
    manifest = {
        "cache_version": CACHE_VERSION,
        "style": style,
        "sources": _expected_sources(style),
        "sha256": sha256_file(array_path),
        "count": len(keys),
        "image_size": IMAGE_SIZE,
        "skipped_failed_to_render": failed,
        "skipped_without_caption": len(uncaptioned),
        "skipped_duplicate_codepoints": duplicates,
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    log.info("Cached %d %s drawings in %.1f s.", len(keys), style, manifest["build_seconds"])
    return arrays


def cache_manifest(style: str) -> dict:
    """The manifest of the cache of ``style`` (built first if needed): counts, skips, timings."""
    load_style(style)
    return json.loads(_cache_paths(style)[1].read_text(encoding="utf-8"))


def load_style(style: str) -> dict:
    """Every captioned drawing of one art style.

    The first call fetches the tarballs (see :func:`fetch_npm_package`) and
    renders and caches the style (seconds to a minute); later calls read the
    cache.

    Args:
        style: one of :data:`STYLES`.

    Returns:
        ``{"images": uint8 [n, 64, 64, 3], "codepoints": list[str],
        "captions": list[str]}``, sorted by code points, e.g. code points
        ``"1f600"`` with caption ``"grinning face"``.

    Raises:
        ValueError: ``style`` is not one of :data:`STYLES`.
        ChecksumError, DataUnavailableError: see :func:`fetch_npm_package`.
    """
    _check_style(style)
    cached = _read_cache(style)
    return cached if cached is not None else _build_cache(style)


# --------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------


def _check_fraction(value, argument: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{argument} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{argument} must be in [0, 1), got {value!r}")
    return value


def _share(count: int, fraction: float) -> int:
    """``round(count * fraction)`` with halves rounded up."""
    return int(np.floor(count * fraction + 0.5))


def _empty_split() -> dict:
    return {
        "images": np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
        "codepoints": [],
        "captions": [],
        "styles": [],
    }


def split_by_style(
    styles: dict[str, dict],
    test_style: str = DEFAULT_TEST_STYLE,
    seed: int = SPLIT_SEED,
    heldout_fraction: float = HELDOUT_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
) -> dict[str, dict]:
    """Split the drawings of several styles by style and by emoji (rules in the module docstring).

    Args:
        styles: ``{style: load_style(style)}`` for the test style and the
            training styles (every other key).
        test_style: the style kept out of training and validation.
        seed: seed of ``numpy.random.default_rng`` for the held-out and
            validation choices.
        heldout_fraction: share of the test style's emoji held out of training
            in every style.
        validation_fraction: share of the eligible emoji that give one
            training-style drawing to validation.

    Returns:
        ``{"train", "validation", "test", "heldout_emoji"}``, each
        ``{"images", "codepoints", "captions", "styles"}``; within a split the
        drawings are ordered by style (in the order of ``styles``), then code points.
    """
    if test_style is not None and test_style not in styles:
        raise ValueError(f"test_style must be one of {tuple(styles)} or None, got {test_style!r}")
    heldout_fraction = _check_fraction(heldout_fraction, "heldout_fraction")
    validation_fraction = _check_fraction(validation_fraction, "validation_fraction")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    training_styles = [style for style in styles if style != test_style]
    if not training_styles:
        raise ValueError(
            f"styles must hold at least one style besides {test_style!r}, got {tuple(styles)}"
        )
    rng = np.random.default_rng(int(seed))

    if test_style is None:  # every style trains; held-out emoji are drawn from all of them
        test_keys = sorted({key for data in styles.values() for key in data["codepoints"]})
    else:
        test_keys = sorted(set(styles[test_style]["codepoints"]))
    order = rng.permutation(len(test_keys))
    heldout = {test_keys[i] for i in order[: _share(len(test_keys), heldout_fraction)]}

    drawn_in: dict[str, list[str]] = {}
    for style in training_styles:
        for key in styles[style]["codepoints"]:
            if key not in heldout:
                drawn_in.setdefault(key, []).append(style)
    eligible = sorted(key for key, found in drawn_in.items() if len(found) >= 2)
    order = rng.permutation(len(eligible))
    chosen = [eligible[i] for i in order[: _share(len(eligible), validation_fraction)]]
    validation_pairs = {
        (key, drawn_in[key][int(rng.integers(len(drawn_in[key])))]) for key in sorted(chosen)
    }

    picks: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLIT_NAMES}
    for style, data in styles.items():
        for index, key in enumerate(data["codepoints"]):
            if style == test_style:
                name = "heldout_emoji" if key in heldout else "test"
            elif key in heldout:
                if test_style is None:
                    picks["heldout_emoji"].append((style, index))
                continue
            elif (key, style) in validation_pairs:
                name = "validation"
            else:
                name = "train"
            picks[name].append((style, index))

    splits = {}
    for name in SPLIT_NAMES:
        split = _empty_split()
        chosen_items = sorted(
            picks[name],
            key=lambda item: (list(styles).index(item[0]), styles[item[0]]["codepoints"][item[1]]),
        )
        if chosen_items:
            split["images"] = np.stack([styles[s]["images"][i] for s, i in chosen_items])
        split["codepoints"] = [styles[s]["codepoints"][i] for s, i in chosen_items]
        split["captions"] = [styles[s]["captions"][i] for s, i in chosen_items]
        split["styles"] = [s for s, _ in chosen_items]
        splits[name] = split
    return splits


def _load_all(test_style: str | None) -> dict[str, dict]:
    if test_style is not None:
        _check_style(test_style)
    return {style: load_style(style) for style in STYLES}


def load_captioning_splits(
    test_style: str = DEFAULT_TEST_STYLE,
    seed: int = SPLIT_SEED,
    heldout_fraction: float = HELDOUT_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
) -> dict[str, dict]:
    """Train/validation/test/held-out-emoji splits of the four styles.

    Training and validation use the three styles other than ``test_style``;
    ``test`` and ``heldout_emoji`` are drawings of ``test_style`` only
    (``test_style=None``: all four styles train, ``test`` is empty and
    ``heldout_emoji`` holds the held-out emoji in every style). No
    emoji of ``heldout_emoji`` appears, in any style, in ``train`` or
    ``validation``. See the module docstring for how each split is built.

    Returns:
        ``{"train", "validation", "test", "heldout_emoji"}``, each like
        :func:`load_style`'s dict plus ``"styles"``: the style of each image.
        With the defaults, identical on every machine.
    """
    return split_by_style(
        _load_all(test_style),
        test_style=test_style,
        seed=seed,
        heldout_fraction=heldout_fraction,
        validation_fraction=validation_fraction,
    )


def _package_record(package: NpmPackage) -> dict:
    return {
        "package": package.name,
        "version": package.version,
        "sha256": package.sha256,
        "tarball": package.tarball_url,
        "license": package.license,
        "attribution": package.attribution,
        "homepage": package.homepage,
    }


def _counts(split: dict) -> dict:
    by_style: dict[str, int] = {}
    for style in split["styles"]:
        by_style[style] = by_style.get(style, 0) + 1
    by_group = {group: 0 for group in CAPTION_GROUPS}
    for key, caption in zip(split["codepoints"], split["captions"]):
        by_group[caption_group(key, caption)] += 1
    return {
        "images": len(split["codepoints"]),
        "emoji": len(set(split["codepoints"])),
        "by_style": by_style,
        "by_group": by_group,
    }


def describe_split(
    test_style: str = DEFAULT_TEST_STYLE,
    seed: int = SPLIT_SEED,
    heldout_fraction: float = HELDOUT_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
) -> dict:
    """A JSON-ready description of the data and the splits, for a model card.

    Holds the source packages (versions, sha256, licenses, attributions), the
    drawings per style and what the renderer skipped, the split rules and the
    counts per split, style and caption group.
    """
    styles = _load_all(test_style)
    splits = split_by_style(
        styles,
        test_style=test_style,
        seed=seed,
        heldout_fraction=heldout_fraction,
        validation_fraction=validation_fraction,
    )
    manifests = {style: cache_manifest(style) for style in STYLES}
    return {
        "name": "emoji-cldr",
        "description": (
            "Emoji drawings by four artists (Google Noto, Twitter Twemoji, OpenMoji, Microsoft "
            "Fluent flat), RGB 64x64 composited on white, captioned with their English Unicode "
            "CLDR names; skin-tone variants included."
        ),
        "image_size": [IMAGE_SIZE, IMAGE_SIZE, 3],
        "cache_version": CACHE_VERSION,
        "sources": {style: _package_record(PACKAGES[style]) for style in STYLES},
        "captions": {
            **_package_record(CAPTIONS_PACKAGE),
            "member": "en/data.json",
            "field": "label",
        },
        "codepoint_rule": (
            "code points in lower-case hex joined by '-', U+FE0F dropped on both sides "
            "(zoo.data.emoji.normalize_codepoints) before images and names are matched"
        ),
        "styles": {
            style: {
                "drawings": manifests[style]["count"],
                "failed_to_render": [
                    item["codepoints"] for item in manifests[style]["skipped_failed_to_render"]
                ],
                "without_caption": manifests[style]["skipped_without_caption"],
            }
            for style in STYLES
        },
        "test_style": test_style,
        "training_styles": [style for style in STYLES if style != test_style],
        "split_seed": int(seed),
        "heldout_fraction": float(heldout_fraction),
        "validation_fraction": float(validation_fraction),
        "split_method": (
            "zoo.data.emoji.split_by_style: heldout_emoji = a seeded share of the test style's "
            "emoji, removed from every style's training data and evaluated in the test style; "
            "test = every other test-style drawing; validation = for a seeded share of the "
            "remaining emoji with >= 2 training-style drawings, one training-style drawing "
            "(style drawn at random) moved out of train; train = all other drawings of the "
            "training styles. The test style never appears in train or validation."
            if test_style is not None else
            "zoo.data.emoji.split_by_style with no test style: every style trains; heldout_emoji = "
            "a seeded share of all emoji, removed from training in every style and evaluated in "
            "every style; test is empty; validation = for a seeded share of the remaining emoji "
            "with >= 2 drawings, one drawing (style drawn at random) moved out of train; train = "
            "all other drawings."
        ),
        "splits": {name: _counts(split) for name, split in splits.items()},
        "groups": {
            "flag": "country/region flags (regional-indicator pairs, tag sequences, 'flag:' names)",
            "skin_tone": "sequences holding a skin-tone modifier U+1F3FB..U+1F3FF",
            "base": "every other emoji",
        },
    }
