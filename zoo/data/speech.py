"""Speech for character-level (CTC) recognisers: real prompts to test on, synthetic speech to train on.

Two sources, kept strictly apart:

**Real human speech, test only.** The English core prompts of the Asterisk
telephony server, recorded by one professional speaker (Allison Smith, en_US,
"Allison"), as packaged by Debian:

* ``asterisk-core-sounds-en-wav`` 1.6.1-1: the recordings, 16-bit mono WAV at
  8 kHz under ``usr/share/asterisk/sounds/en_US_f_Allison/`` (568 files, in
  folders such as ``digits/``, ``letters/``, ``phonetic/``, ``dictate/``);
* ``asterisk-core-sounds-en`` 1.6.1-1: their transcripts, one ``name: text``
  line per prompt in ``usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``
  (569 lines after a ``;`` comment line; ``name`` is the file path without ``.wav``).

License CC-BY-SA-3.0, (c) 2003-2010 Allison Smith (http://www.theivrvoice.com),
financial contributions by Digium, Inc. :func:`load_asterisk_prompts` pairs
each transcript with its recording. Left out: prompts that are not speech
(their transcript is only a bracketed description such as ``[ascending
tones]`` or ``(1 second of silence)``: the ``silence/`` files, tones, beeps,
monkeys) and the one transcript without a recording (``pls-try-call-later``).
That leaves 551 spoken prompts: 11 isolated spoken digits (``digits/0`` ...
``digits/9`` and ``digits/oh``), 26 isolated spoken letters (``letters/a`` ...
``letters/z``), and 514 other prompts (numbers such as "twenty", ordinals,
days, months, symbol names, the NATO alphabet, and sentences). A prompt whose
written transcript does not pin down the words spoken (a numeral of three or
more digits, an acronym, letters and digits in one token) carries a *caveat*,
so that error rates can be reported with and without those prompts.

**Synthetic speech, for training (and synthetic validation and test).** The
formant synthesiser ``espeak-ng`` (Debian package ``espeak-ng``, GPL-3+) reads
English text in seven accents that need no non-free voice data
(:data:`ACCENTS`), each with any of the voice variants of :data:`VARIANTS`,
at a random speed and pitch, as 16-bit mono WAV at 22.05 kHz. It must be
installed by hand (``sudo apt-get install espeak-ng``); this module never
installs anything. All voices come from one engine: the number of
accent/variant combinations overstates the real speaker diversity by far.
Every clip of :func:`build_synthetic_corpus` is synthetic, including its
validation and test splits.

The texts spoken (:func:`corpus_texts`) are of seven kinds: isolated digits
("zero" ... "nine", "oh"), digit sequences ("three seven nine"), isolated
letters and letter sequences (spoken by their names, written as letters: "m g
c p"), numbers written as words ("four hundred twelve", "twenty first"),
single words and short sentences. Words and sentences come from the English
side of the Ding German-English dictionary (:mod:`zoo.data.ding`, Debian
``trans-de-en`` 1.9-6, GPL-2+), already used by the zoo's translation task:
its one-word dictionary entries, and its example sentences of 3 to 12 words
that hold only letters and plain punctuation (no digits, slashes or
brackets). Words and sentences equal to a transcript of an Asterisk prompt are
dropped, so no real test prompt is ever spoken in training; digits, letters
and number words form a closed vocabulary and are shared on purpose.

**Transcripts** of both sources follow one rule, :func:`normalize_transcript`
(:data:`NORMALIZATION_RULE`); the characters of a normalised transcript are
those of :data:`ALPHABET` (a-z, space, apostrophe).

**Splits** (:func:`plan_corpus`, :func:`speech_splits`) hold out whole accents
and whole voice variants: validation is spoken only in
:data:`VALIDATION_ACCENTS` with :data:`VALIDATION_VARIANTS`, test only in
:data:`TEST_ACCENTS` with :data:`TEST_VARIANTS`, training never in any of
them. Sentences, words, digit and letter sequences and numbers are held out by
text too: each distinct text belongs to one split. Speed and pitch are drawn
at random (seeded) for every clip, from the same ranges in every split.

**Caches.** Nothing happens at import time. The Debian packages are fetched
with :func:`zoo.data.debian.fetch_deb` (``apt-get download``, sha256-checked)
into ``data_dir()/downloads/``. The paired Asterisk prompts are cached in
``data_dir()/speech/`` as an ``.npz`` file with a JSON manifest (sources,
sha256 of the arrays); the synthetic corpus as one WAV file per clip plus a
``manifest.json`` listing every clip with its text, voice settings and sha256,
checked whenever a clip is read. Manifests are written atomically and last, so
a cache is either complete or rebuilt.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unicodedata
import wave
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from zoo.data.cache import (
    ChecksumError,
    DataUnavailableError,
    atomic_write_bytes,
    atomic_write_text,
    data_dir,
    output_tail,
    run_with_timeout,
    sha256_file,
)
from zoo.data.debian import DebianPackage, fetch_deb, read_deb_members
from zoo.data.splits import SPLIT_NAMES, check_fractions, split_counts

__all__ = [
    "ACCENTS",
    "ALPHABET",
    "ASTERISK_KINDS",
    "ASTERISK_SAMPLE_RATE",
    "CACHE_VERSION",
    "NORMALIZATION_RULE",
    "SOUNDS_PACKAGE",
    "SYNTHETIC_KINDS",
    "SYNTHETIC_SAMPLE_RATE",
    "TEST_ACCENTS",
    "TEST_VARIANTS",
    "TRANSCRIPTS_PACKAGE",
    "VALIDATION_ACCENTS",
    "VALIDATION_VARIANTS",
    "VARIANTS",
    "asterisk_transcripts",
    "build_synthetic_corpus",
    "corpus_texts",
    "describe_corpus",
    "espeak_ng_version",
    "espeak_variants",
    "load_asterisk_prompts",
    "load_waveform",
    "load_waveforms",
    "normalize_transcript",
    "number_to_words",
    "ordinal_to_words",
    "pair_prompts",
    "parse_transcripts",
    "plan_corpus",
    "prompt_kind",
    "read_wav",
    "resample",
    "speech_splits",
    "synthesize",
    "transcript_caveats",
]

log = logging.getLogger(__name__)

#: Bumped whenever parsing, planning or caching changes; older caches are rebuilt.
CACHE_VERSION = 1

#: The characters of a normalised transcript.
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"

# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------

#: The recordings (sha256 of the .deb measured when pinning; it equals the archive's SHA256 field).
SOUNDS_PACKAGE = DebianPackage(
    "asterisk-core-sounds-en-wav", "1.6.1-1",
    "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
    pool="main/a/asterisk-core-sounds",
    what="the English Asterisk prompts as WAV, speaker Allison Smith")
#: The transcripts of the recordings.
TRANSCRIPTS_PACKAGE = DebianPackage(
    "asterisk-core-sounds-en", "1.6.1-1",
    "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
    pool="main/a/asterisk-core-sounds",
    what="the transcripts of the English Asterisk prompts")
#: Where the recordings lie inside the package.
SOUNDS_ROOT = "usr/share/asterisk/sounds/en_US_f_Allison/"
#: The transcript file inside its package, and the sha256 of that (gzip) member.
TRANSCRIPT_MEMBER = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
TRANSCRIPT_SHA256 = "436538195b7c7361bd227036686f1a4039f694648c76573bdaca956655d34450"
#: Sample rate of every Asterisk recording.
ASTERISK_SAMPLE_RATE = 8000
#: What the pinned packages yield: spoken prompts and, of those, isolated digits and letters.
EXPECTED_PROMPTS = 551
EXPECTED_DIGITS = 11
EXPECTED_LETTERS = 26

#: License and attribution of each source, for model cards.
LICENSES = {
    "asterisk-core-sounds-en-wav": {
        "license": "CC-BY-SA-3.0",
        "attribution": "Asterisk core sound prompts (English), recorded by Allison Smith "
                       "(http://www.theivrvoice.com), (c) 2003-2010 Allison Smith; financial "
                       "contributions by Digium, Inc.; Debian package asterisk-core-sounds-en-wav "
                       "1.6.1-1.",
    },
    "asterisk-core-sounds-en": {
        "license": "CC-BY-SA-3.0",
        "attribution": "Transcripts of the Asterisk core sound prompts (English), (c) 2003-2010 "
                       "Allison Smith; Debian package asterisk-core-sounds-en 1.6.1-1.",
    },
    "espeak-ng": {
        "license": "GPL-3.0-or-later (the program and its voice data)",
        "attribution": "eSpeak NG text-to-speech (Jonathan Duddington, Reece H. Dunn and "
                       "contributors), https://github.com/espeak-ng/espeak-ng; Debian package espeak-ng.",
    },
    "trans-de-en": {
        "license": "GPL-2+",
        "attribution": "Frank Richter, Ding German-English word list (devel 2023-01-30), "
                       "TU Chemnitz, https://dict.tu-chemnitz.de/; Debian package trans-de-en 1.9-6.",
    },
}

# --------------------------------------------------------------------------
# Transcript normalisation
# --------------------------------------------------------------------------

NORMALIZATION_RULE = (
    "1. Unicode NFKC; curly and other apostrophe signs become \"'\". "
    "2. Bracketed text ([...], (...), <...>) is removed: in the Asterisk transcripts it describes "
    "sounds or adds notes, it is not spoken. "
    "3. Accents are dropped (e with acute -> e; ss, ae, oe for sharp s and ligatures). "
    "4. The symbols # * & % + @ become the words pound, star, and, percent, plus, at. "
    "5. Numbers become words: a thousands separator (1,000) is dropped; a decimal (28.8) reads "
    "'twenty eight point eight' (digits after the point one by one); an ordinal with suffix "
    "(1st, 22nd, 3rd, 4th) reads 'first', 'twenty second', ...; any other run of digits is a "
    "cardinal number without 'and' (21 -> 'twenty one', 1234 -> 'one thousand two hundred thirty "
    "four'), except that a run with a leading zero (007) or of more than 15 digits is read digit by "
    "digit; digits are split from adjacent letters (3D -> 'three d'). "
    "6. Lower case. 7. An apostrophe stays only between two letters (don't, o'clock); elsewhere it "
    "is removed. 8. Every other character outside a-z, space and apostrophe becomes a space "
    "(hyphens, periods, commas: A.M. -> 'a m'). 9. Whitespace is collapsed and trimmed."
)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                       "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_MAX_CARDINAL = 10 ** 15 - 1
_SYMBOL_WORDS = (("#", "pound"), ("*", "star"), ("&", "and"), ("%", "percent"), ("+", "plus"),
                 ("@", "at"))
_LETTER_FOLDS = {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
                 "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i"}
_APOSTROPHES = "\u2019\u2018\u02bc\u02b9`\u00b4\u2032"

_BRACKETED = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_THOUSANDS = re.compile(r"(?<![\d,.])\d{1,3}(?:,\d{3})+(?![\d]|,\d)")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?!\.?\d)")
_ORDINAL = re.compile(r"(?<![\d])(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")
_OUTSIDE_ALPHABET = re.compile(r"[^a-z' ]")


def number_to_words(n: int) -> str:
    """The cardinal ``n`` in words, as the normalisation reads it: ``21`` -> ``"twenty one"``.

    No "and" and no hyphens: ``105`` -> ``"one hundred five"``, ``1234`` ->
    ``"one thousand two hundred thirty four"``.

    Raises:
        ValueError: ``n`` is negative, not an integer, or above 10**15 - 1.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"number_to_words needs an integer, got {n!r}")
    n = int(n)
    if n < 0 or n > _MAX_CARDINAL:
        raise ValueError(f"number_to_words reads 0 to {_MAX_CARDINAL}, got {n}")
    if n == 0:
        return "zero"
    words = []
    for value, name in _SCALES:
        if n >= value:
            words += [_below_thousand(n // value), name]
            n %= value
    if n:
        words.append(_below_thousand(n))
    return " ".join(words)


def _below_thousand(n: int) -> str:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """The ordinal ``n`` in words: ``1`` -> ``"first"``, ``22`` -> ``"twenty second"``.

    ``40`` -> ``"fortieth"``; raises ``ValueError`` like :func:`number_to_words`.
    """
    words = number_to_words(n).split()
    last = words[-1]
    if last in _IRREGULAR_ORDINALS:
        words[-1] = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _digit_run_words(digits: str) -> str:
    if (len(digits) > 1 and digits[0] == "0") or int(digits) > _MAX_CARDINAL:
        return " ".join(_ONES[int(d)] for d in digits)
    return number_to_words(int(digits))


def normalize_transcript(text: str) -> str:
    """``text`` as a transcript over :data:`ALPHABET`, by the rule of :data:`NORMALIZATION_RULE`.

    Example: ``"Press 1, then #. It's 28.8 kbit/s at 9:30 A.M."`` ->
    ``"press one then pound it's twenty eight point eight kbit s at nine thirty a m"``.
    """
    if not isinstance(text, str):
        raise ValueError(f"normalize_transcript needs a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    for mark in _APOSTROPHES:
        text = text.replace(mark, "'")
    text = _BRACKETED.sub(" ", text)
    text = "".join(_LETTER_FOLDS.get(c, c) for c in text)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    for symbol, word in _SYMBOL_WORDS:
        text = text.replace(symbol, f" {word} ")
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _DECIMAL.sub(
        lambda m: f" {_digit_run_words(m.group(1))} point "
                  f"{' '.join(_ONES[int(d)] for d in m.group(2))} ", text)
    text = _ORDINAL.sub(lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = _DIGITS.sub(lambda m: f" {_digit_run_words(m.group(0))} ", text)
    text = text.lower()
    text = _STRAY_APOSTROPHE.sub("", text)
    text = _OUTSIDE_ALPHABET.sub(" ", text)
    return " ".join(text.split())


def transcript_caveats(raw: str) -> list[str]:
    """Why the words spoken may differ from the normalised ``raw`` transcript (empty when no doubt).

    Flags a numeral of three or more digits (it may be spoken digit by digit,
    as an extension "1234" often is, while the rule reads a cardinal), letters
    and digits in one token ("H.323", "3D"), and a word in capitals of two or
    more letters (an acronym such as "SIP" may be spelled out or read as a word).
    """
    text = _BRACKETED.sub(" ", raw)
    caveats = []
    if re.search(r"\d{3,}", text):
        caveats.append("numeral of three or more digits (read as a cardinal; may be spoken digit by digit)")
    if re.search(r"[A-Za-z]\.?\d|\d[A-Za-z]", _ORDINAL.sub(" ", text)):
        caveats.append("letters and digits in one token")
    if re.search(r"\b[A-Z]{2,}\b", text):
        caveats.append("word in capitals (an acronym may be spelled out or read as a word)")
    return caveats


# --------------------------------------------------------------------------
# WAV files
# --------------------------------------------------------------------------


def read_wav(source) -> tuple[np.ndarray, int]:
    """Decode a PCM WAV file into a float32 mono waveform in [-1, 1] and its sample rate.

    Args:
        source: the file's bytes, or a path to it.

    Returns:
        ``(waveform, sample_rate)``. 8-bit (unsigned), 16-, 24- and 32-bit
        (signed) samples are scaled by 2**(bits - 1); several channels are
        averaged into one.

    Raises:
        ValueError: not a PCM WAV file the :mod:`wave` module can read (the
            message names the source).
    """
    in_memory = isinstance(source, (bytes, bytearray))
    name = "<bytes>" if in_memory else str(source)
    try:
        handle = wave.open(io.BytesIO(source) if in_memory else str(source), "rb")
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{name}: not a PCM WAV file ({exc})") from exc
    with handle:
        channels, width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
        raw = handle.readframes(handle.getnframes())
    if channels < 1 or rate <= 0:
        raise ValueError(f"{name}: bad WAV header ({channels} channels, {rate} Hz)")
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend 24 bits
        samples = value.astype(np.float32) / float(1 << 23)
    elif width == 4:
        samples = (np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    else:
        raise ValueError(f"{name}: unsupported sample width of {width} bytes")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False), int(rate)


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """``waveform`` at ``rate`` Hz resampled to ``target_rate`` Hz (polyphase filter, float32).

    E.g. espeak-ng's 22,050 Hz to the 8,000 Hz of the Asterisk recordings.
    """
    if rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {rate} and {target_rate}")
    waveform = np.asarray(waveform, dtype=np.float32)
    if rate == target_rate:
        return waveform
    from scipy.signal import resample_poly  # scipy comes with scikit-learn

    divisor = np.gcd(int(rate), int(target_rate))
    out = resample_poly(waveform, int(target_rate) // divisor, int(rate) // divisor)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# Asterisk prompts: parsing and pairing
# --------------------------------------------------------------------------

#: The kinds of Asterisk prompt.
ASTERISK_KINDS = ("digit", "letter", "prompt")
#: What an isolated spoken digit says.
DIGIT_WORDS = tuple(_ONES[:10]) + ("oh",)
_TRANSCRIPT_LINE = re.compile(r"^([^\s:]+):(?:\s+(.*))?$")


def parse_transcripts(text: str) -> dict[str, str]:
    """The ``{name: raw transcript}`` of an Asterisk transcript file, in file order.

    Lines are ``name: text``; blank lines and lines starting with ``;`` are
    skipped.

    Raises:
        ValueError: a line is not ``name: text``, or a name appears twice (the
            message gives the line number).
    """
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        match = _TRANSCRIPT_LINE.match(line)
        if match is None:
            raise ValueError(f"transcript line {number} is not 'name: text': {line[:80]!r}")
        name, transcript = match.group(1), (match.group(2) or "").strip()
        if name in found:
            raise ValueError(f"transcript line {number}: {name!r} appears twice")
        found[name] = transcript
    return found


def prompt_kind(name: str, transcript: str) -> str:
    """``"digit"``, ``"letter"`` or ``"prompt"`` for the prompt ``name`` with normalised ``transcript``.

    Isolated digits are the ``digits/`` files that say one of :data:`DIGIT_WORDS`;
    isolated letters the ``letters/`` files whose transcript is one letter a-z.
    """
    if name.startswith("digits/") and transcript in DIGIT_WORDS:
        return "digit"
    if name.startswith("letters/") and len(transcript) == 1 and "a" <= transcript <= "z":
        return "letter"
    return "prompt"


def pair_prompts(wavs: Mapping[str, bytes], transcripts: Mapping[str, str]) -> dict:
    """Pair recordings with transcripts: the parsed data of :func:`load_asterisk_prompts`.

    Args:
        wavs: ``{name: WAV bytes}``, ``name`` the path below the sounds folder
            without ``.wav`` (``"digits/5"``).
        transcripts: ``{name: raw transcript}`` (:func:`parse_transcripts`).

    Returns:
        ``{"waveforms", "sample_rate", "names", "transcripts", "raw_transcripts",
        "kinds", "caveats", "skipped"}``, sorted by name; ``skipped`` maps
        ``"non_speech"``, ``"no_audio"`` and ``"no_transcript"`` to names.

    Raises:
        ValueError: a recording cannot be decoded or has another sample rate
            than the others.
    """
    out = {"waveforms": [], "sample_rate": None, "names": [], "transcripts": [],
           "raw_transcripts": [], "kinds": [], "caveats": []}
    skipped = {"non_speech": [], "no_audio": [], "no_transcript": sorted(set(wavs) - set(transcripts))}
    for name in sorted(transcripts):
        raw = transcripts[name]
        transcript = normalize_transcript(raw)
        if not transcript:
            skipped["non_speech"].append(name)
            continue
        if name not in wavs:
            skipped["no_audio"].append(name)
            continue
        try:
            waveform, rate = read_wav(wavs[name])
        except ValueError as exc:
            raise ValueError(f"Asterisk prompt {name!r}: {exc}") from exc
        if out["sample_rate"] is None:
            out["sample_rate"] = rate
        elif rate != out["sample_rate"]:
            raise ValueError(f"Asterisk prompt {name!r} is at {rate} Hz, "
                             f"the others at {out['sample_rate']} Hz")
        out["waveforms"].append(waveform)
        out["names"].append(name)
        out["transcripts"].append(transcript)
        out["raw_transcripts"].append(raw)
        out["kinds"].append(prompt_kind(name, transcript))
        out["caveats"].append(transcript_caveats(raw))
    out["skipped"] = skipped
    return out


def _fetch_transcripts_deb() -> Path:
    return fetch_deb(TRANSCRIPTS_PACKAGE)


def _fetch_sounds_deb() -> Path:
    return fetch_deb(SOUNDS_PACKAGE)


def asterisk_transcripts() -> dict[str, str]:
    """The raw ``{name: transcript}`` of the pinned transcript file (fetches a 23 kB package on first use).

    Raises:
        ChecksumError: the package or its transcript member is not the pinned one.
        DataUnavailableError: the package cannot be fetched (see :func:`zoo.data.debian.fetch_deb`).
    """
    deb = _fetch_transcripts_deb()
    members = read_deb_members(deb, lambda path: path == TRANSCRIPT_MEMBER)
    if TRANSCRIPT_MEMBER not in members:
        raise ValueError(f"{deb} has no file {TRANSCRIPT_MEMBER}")
    blob = members[TRANSCRIPT_MEMBER]
    actual = hashlib.sha256(blob).hexdigest()
    if actual != TRANSCRIPT_SHA256:
        raise ChecksumError(f"{TRANSCRIPT_MEMBER} in {deb.name}", TRANSCRIPT_SHA256, actual)
    return parse_transcripts(gzip.decompress(blob).decode("utf-8", errors="replace"))


def _read_sounds(deb: Path) -> dict[str, bytes]:
    members = read_deb_members(deb, lambda p: p.startswith(SOUNDS_ROOT) and p.endswith(".wav"))
    if not members:
        raise ValueError(f"{deb} holds no .wav file under {SOUNDS_ROOT}")
    return {path[len(SOUNDS_ROOT):-len(".wav")]: blob for path, blob in members.items()}


def _asterisk_cache_paths() -> tuple[Path, Path]:
    stem = f"asterisk-en-{SOUNDS_PACKAGE.version}-v{CACHE_VERSION}"
    directory = data_dir() / "speech"
    return directory / f"{stem}.npz", directory / f"{stem}.json"


def _asterisk_sources() -> dict:
    return {package.name: {"version": package.version, "sha256": package.sha256}
            for package in (SOUNDS_PACKAGE, TRANSCRIPTS_PACKAGE)} | {
        "transcript_member": {"path": TRANSCRIPT_MEMBER, "sha256": TRANSCRIPT_SHA256}}


def _read_asterisk_cache() -> dict | None:
    array_path, manifest_path = _asterisk_cache_paths()
    if not (array_path.is_file() and manifest_path.is_file()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (manifest.get("cache_version") != CACHE_VERSION
            or manifest.get("sources") != _asterisk_sources()
            or manifest.get("sha256") != sha256_file(array_path)):
        log.info("The Asterisk prompt cache is stale or damaged; rebuilding it.")
        return None
    with np.load(array_path, allow_pickle=False) as arrays:
        audio, offsets = arrays["audio"], arrays["offsets"]
        names, raws = arrays["names"].tolist(), arrays["raw_transcripts"].tolist()
    return {
        "waveforms": [audio[offsets[i]:offsets[i + 1]] for i in range(len(names))],
        "sample_rate": int(manifest["sample_rate"]),
        "names": names,
        "raw_transcripts": raws,
        "skipped": manifest["skipped"],
    }


def _build_asterisk_cache() -> dict:
    started = time.perf_counter()
    paired = pair_prompts(_read_sounds(_fetch_sounds_deb()), asterisk_transcripts())
    if paired["sample_rate"] != ASTERISK_SAMPLE_RATE:
        raise ValueError(f"the Asterisk recordings are at {paired['sample_rate']} Hz, "
                         f"expected {ASTERISK_SAMPLE_RATE} Hz")
    kinds = paired["kinds"]
    counts = (len(kinds), kinds.count("digit"), kinds.count("letter"))
    if counts != (EXPECTED_PROMPTS, EXPECTED_DIGITS, EXPECTED_LETTERS):
        raise ValueError(f"the pinned Asterisk packages gave {counts[0]} prompts, {counts[1]} digits and "
                         f"{counts[2]} letters; expected {EXPECTED_PROMPTS}, {EXPECTED_DIGITS} and "
                         f"{EXPECTED_LETTERS}")
    lengths = [len(w) for w in paired["waveforms"]]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, audio=np.concatenate(paired["waveforms"]).astype(np.float32), offsets=offsets,
             names=np.array(paired["names"], dtype=str),
             raw_transcripts=np.array(paired["raw_transcripts"], dtype=str))
    array_path, manifest_path = _asterisk_cache_paths()
    atomic_write_bytes(array_path, buffer.getvalue())
    manifest = {
        "cache_version": CACHE_VERSION,
        "sources": _asterisk_sources(),
        "sha256": sha256_file(array_path),
        "sample_rate": paired["sample_rate"],
        "count": len(paired["names"]),
        "seconds_of_audio": round(float(offsets[-1]) / paired["sample_rate"], 1),
        "skipped": paired["skipped"],
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    log.info("Cached %d Asterisk prompts in %.1f s.", manifest["count"], manifest["build_seconds"])
    return paired


_asterisk_lock = threading.Lock()


def load_asterisk_prompts(kinds: Iterable[str] | None = None) -> dict:
    """The real test speech: the spoken Asterisk prompts with normalised transcripts.

    The first call fetches both packages (18 MB; see the module docstring),
    pairs and decodes the 551 prompts (a few seconds) and caches them in
    ``data_dir()/speech/``; later calls read the cache (under a second).

    Args:
        kinds: keep only these of :data:`ASTERISK_KINDS` (all when None).

    Returns:
        ``{"waveforms": list of float32 arrays in [-1, 1], "sample_rate": 8000,
        "names": ["digits/5", ...], "transcripts": normalised, "raw_transcripts":
        as written, "kinds": "digit" | "letter" | "prompt", "caveats": list of
        reasons per prompt (see :func:`transcript_caveats`)}``, sorted by name.

    Raises:
        ValueError: an unknown kind.
        ChecksumError, DataUnavailableError: see :func:`zoo.data.debian.fetch_deb`.
    """
    wanted = set(ASTERISK_KINDS if kinds is None else kinds)
    unknown = wanted - set(ASTERISK_KINDS)
    if unknown:
        raise ValueError(f"kinds must be among {ASTERISK_KINDS}, got {sorted(unknown)}")
    with _asterisk_lock:
        cached = _read_asterisk_cache()
        if cached is None:
            cached = _build_asterisk_cache()
    out = {"waveforms": [], "sample_rate": cached["sample_rate"], "names": [], "transcripts": [],
           "raw_transcripts": [], "kinds": [], "caveats": []}
    for name, raw, waveform in zip(cached["names"], cached["raw_transcripts"], cached["waveforms"]):
        transcript = normalize_transcript(raw)
        kind = prompt_kind(name, transcript)
        if kind not in wanted:
            continue
        out["waveforms"].append(waveform)
        out["names"].append(name)
        out["transcripts"].append(transcript)
        out["raw_transcripts"].append(raw)
        out["kinds"].append(kind)
        out["caveats"].append(transcript_caveats(raw))
    return out


# --------------------------------------------------------------------------
# espeak-ng
# --------------------------------------------------------------------------

#: English accents of espeak-ng that need no non-free (MBROLA) voice data.
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
#: Voice variants used (names as after "+" in ``-v en-us+m3``). Picked from the 102 that
#: ``espeak-ng --voices=variant`` lists in 1.51: human-sounding ones, one per family of near copies
#: (steph/steph2/steph3, edward/edward2, iven..iven4; klatt, klatt2 and klatt3 are kept: each selects
#: another mode of the Klatt synthesiser, though they stay alike), leaving out the novelty voices (whisper,
#: croak, robots, Demonic, Tweaky, announcer, fast) and those whose output clipped at default
#: settings on a test sentence (e.g. Andrea, Gene, iven, Jacky, john, paul, pedro, Marco, Storm).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "adam", "Alex", "Alicia", "Andy", "Annie", "aunty", "belinda", "benjamin", "boris", "caleb",
    "david", "Denis", "edward", "grandma", "grandpa", "klatt", "klatt2", "klatt3", "Lee", "linda",
    "marcelo", "max", "Michael", "Mike", "norbert", "quincy", "rob", "robert", "shelby", "steph",
    "travis", "zac",
)
#: Held-out accents and variants (never used in training; see the module docstring).
VALIDATION_ACCENTS = ("en-gb-x-gbcwmd",)
TEST_ACCENTS = ("en-gb-scotland",)
#: klatt, klatt2 and klatt3 sound alike, so all three stay in training (a held-out variant must be new).
VALIDATION_VARIANTS = ("m5", "f4", "Andy", "belinda", "grandpa", "quincy")
TEST_VARIANTS = ("m3", "f2", "Annie", "benjamin", "linda", "travis")
#: espeak-ng's output rate.
SYNTHETIC_SAMPLE_RATE = 22050
#: Speed (words per minute, espeak-ng -s) and pitch (0-99, -p) are drawn uniformly from these ranges.
SPEED_RANGE = (130, 200)
PITCH_RANGE = (25, 75)
#: Seconds one espeak-ng call may take.
SYNTHESIS_TIMEOUT = 60.0

_INSTALL_HINT = "Install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu) and try again."


def _program(name: str, purpose: str) -> str:
    """The path of the installed program `name`, else a DataUnavailableError naming `purpose` and how to
    install it."""
    path = shutil.which(name)
    if path is None:
        raise DataUnavailableError(
            f"{name} is not installed (no `{name}` on PATH); {purpose}. Install it with `sudo apt-get "
            f"install {name}` (Debian/Ubuntu) and try again. This module never installs software itself.")
    return path


def _espeak() -> str:
    return _program("espeak-ng", "the synthetic speech corpus is generated with it")


def _run(cmd: list[str], what: str, timeout: float = SYNTHESIS_TIMEOUT) -> str:
    try:
        code, output = run_with_timeout(cmd, timeout)
    except subprocess.TimeoutExpired:
        raise DataUnavailableError(f"{what}: espeak-ng did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise DataUnavailableError(f"{what}: could not run espeak-ng ({exc}). {_INSTALL_HINT}") from exc
    if code != 0:
        raise DataUnavailableError(f"{what}: espeak-ng exited with status {code}:\n{output_tail(output)}")
    return output


_espeak_info: dict[str, object] = {}


def espeak_ng_version() -> dict:
    """``{"program": "1.51", "debian_package": "1.51+dfsg-10+deb12u2" or None}`` of the installed espeak-ng.

    Raises:
        DataUnavailableError: espeak-ng is not installed.
    """
    espeak = _espeak()
    key = f"version:{espeak}"
    if key not in _espeak_info:
        output = _run([espeak, "--version"], "espeak-ng --version", timeout=30)
        match = re.search(r"text-to-speech:\s*(\S+)", output)
        if match is None:
            raise DataUnavailableError(f"cannot read the version of {espeak} from: {output_tail(output, 3)}")
        package = None
        dpkg_query = shutil.which("dpkg-query")
        if dpkg_query:
            try:
                code, out = run_with_timeout([dpkg_query, "-W", "-f=${Version}", "espeak-ng"], 30)
                package = out.strip() if code == 0 and out.strip() else None
            except (OSError, subprocess.TimeoutExpired):
                package = None
        _espeak_info[key] = {"program": match.group(1), "debian_package": package}
    return dict(_espeak_info[key])


def espeak_variants() -> tuple[str, ...]:
    """The voice variants the installed espeak-ng offers (``espeak-ng --voices=variant``, file names)."""
    espeak = _espeak()
    key = f"variants:{espeak}"
    if key not in _espeak_info:
        output = _run([espeak, "--voices=variant"], "espeak-ng --voices=variant", timeout=30)
        names = []
        for line in output.splitlines()[1:]:
            fields = line.split()
            path = next((f for f in fields if f.startswith("!v/")), None)
            if path:
                names.append(path[len("!v/"):])
        if not names:
            raise DataUnavailableError(f"{espeak} lists no voice variants: {output_tail(output, 3)}")
        _espeak_info[key] = tuple(names)
    return _espeak_info[key]


def _check_voice(accent: str, variant: str | None, speed: int, pitch: int) -> None:
    if accent not in ACCENTS:
        raise ValueError(f"accent must be one of {ACCENTS}, got {accent!r}")
    if variant is not None and variant not in espeak_variants():
        raise ValueError(f"espeak-ng has no voice variant {variant!r} (see `espeak-ng --voices=variant`)")
    if not (isinstance(speed, (int, np.integer)) and 80 <= speed <= 450):
        raise ValueError(f"speed must be an integer from 80 to 450 words per minute, got {speed!r}")
    if not (isinstance(pitch, (int, np.integer)) and 0 <= pitch <= 99):
        raise ValueError(f"pitch must be an integer from 0 to 99, got {pitch!r}")


def _espeak_command(espeak: str, text: str, accent: str, variant: str | None, speed: int,
                    pitch: int, spell: bool, out: Path) -> list[str]:
    voice = accent if variant is None else f"{accent}+{variant}"
    cmd = [espeak, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-w", str(out)]
    if spell:
        # SSML: read the letters by their names ("m g c p" -> em gee see pee).
        letters = html.escape("".join(text.split()))
        return cmd + ["-m", "--", f'<say-as interpret-as="characters">{letters}</say-as>']
    return cmd + ["--", text]


def _synthesize_to(espeak: str, out: Path, text: str, accent: str, variant: str | None, speed: int,
                   pitch: int, spell: bool) -> bytes:
    _run(_espeak_command(espeak, text, accent, variant, speed, pitch, spell, out),
         f"speaking {text[:40]!r} with {accent}+{variant}")
    if not out.is_file() or out.stat().st_size <= 44:
        raise DataUnavailableError(f"espeak-ng wrote no audio for {text[:40]!r} with {accent}+{variant}")
    return out.read_bytes()


def synthesize(text: str, accent: str = "en-us", variant: str | None = "f3", speed: int = 160,
               pitch: int = 50, spell: bool = False) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng: a synthetic float32 waveform in [-1, 1] and its rate (22,050 Hz).

    Args:
        text: what to say, as given (pass normalised text to get audio that
            matches its transcript).
        accent: one of :data:`ACCENTS`.
        variant: a voice variant of :func:`espeak_variants` (``"m3"``,
            ``"f2"``, ``"klatt"``, ...), or None for the accent's own voice.
        speed: words per minute (``-s``), 80 to 450.
        pitch: 0 to 99 (``-p``).
        spell: read ``text`` letter by letter, by the letters' names (for
            texts such as ``"m g c p"``).

    Raises:
        ValueError: empty text, unknown accent or variant, speed or pitch out of range.
        DataUnavailableError: espeak-ng is missing (the message says how to
            install it) or fails.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    espeak = _espeak()
    _check_voice(accent, variant, speed, pitch)
    with tempfile.TemporaryDirectory(prefix="zoo-espeak-") as tmp:
        blob = _synthesize_to(espeak, Path(tmp) / "out.wav", text, accent, variant, speed, pitch, spell)
    return read_wav(blob)


# --------------------------------------------------------------------------
# Synthetic corpus: texts and plan
# --------------------------------------------------------------------------

#: The kinds of synthetic clip, and the share of each in every split.
SYNTHETIC_KINDS = ("digit", "digit_sequence", "letter", "letter_sequence", "number", "word", "sentence")
KIND_SHARES = {"digit": 0.08, "digit_sequence": 0.14, "letter": 0.08, "letter_sequence": 0.10,
               "number": 0.10, "word": 0.15, "sentence": 0.35}
#: Kinds with a small closed vocabulary, spoken in every split (the others are held out by text).
CLOSED_KINDS = ("digit", "letter")
#: Kinds read letter by letter.
SPELLED_KINDS = ("letter", "letter_sequence")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")
DEFAULT_SIZE = 6000
FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 1337
#: Processes of espeak-ng run at once while building a corpus.
DEFAULT_WORKERS = 2
#: Sentence filter: words after normalisation, and the characters the raw sentence may hold.
MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS = 3, 12
_SENTENCE_CHARS = re.compile(r"[A-Za-z ,.?!'\u2019\";:-]+")
_WORD_CHARS = re.compile(r"[A-Za-z]{2,14}")
#: How many candidate digit sequences, letter sequences and large numbers are drawn.
GENERATED_POOL = 20000


def _split_voices() -> dict[str, dict[str, tuple[str, ...]]]:
    held_accents = set(VALIDATION_ACCENTS) | set(TEST_ACCENTS)
    held_variants = set(VALIDATION_VARIANTS) | set(TEST_VARIANTS)
    return {
        "train": {"accents": tuple(a for a in ACCENTS if a not in held_accents),
                  "variants": tuple(v for v in VARIANTS if v not in held_variants)},
        "validation": {"accents": VALIDATION_ACCENTS, "variants": VALIDATION_VARIANTS},
        "test": {"accents": TEST_ACCENTS, "variants": TEST_VARIANTS},
    }


def _generated_texts(seed: int) -> dict[str, list[str]]:
    """Digit sequences, letter sequences and numbers: seeded, distinct, in draw order."""
    rng = np.random.default_rng([seed, 7])
    digits: dict[str, None] = {}
    letters: dict[str, None] = {}
    for _ in range(GENERATED_POOL * 3):
        if len(digits) >= GENERATED_POOL:
            break
        length = int(rng.integers(2, 8))
        words = [_ONES[d] for d in rng.integers(0, 10, size=length)]
        words = ["oh" if w == "zero" and rng.random() < 0.3 else w for w in words]
        digits.setdefault(" ".join(words), None)
    for _ in range(GENERATED_POOL * 3):
        if len(letters) >= GENERATED_POOL:
            break
        length = int(rng.integers(2, 6))
        letters.setdefault(" ".join(LETTERS[i] for i in rng.integers(0, 26, size=length)), None)
    numbers: dict[str, None] = {}
    for n in range(10, 1000):  # every two- and three-digit number
        numbers.setdefault(number_to_words(n), None)
    for n in range(1, 101):  # ordinals first .. hundredth
        numbers.setdefault(ordinal_to_words(n), None)
    for n in np.unique(np.exp(rng.uniform(np.log(1000), np.log(10 ** 7), size=3000)).astype(np.int64)):
        numbers.setdefault(number_to_words(int(n)), None)
    for whole, tenths in zip(rng.integers(0, 100, size=300), rng.integers(1, 10, size=300)):
        numbers.setdefault(normalize_transcript(f"{whole}.{tenths}"), None)
    return {"digit_sequence": list(digits), "letter_sequence": list(letters), "number": list(numbers)}


def _ding_texts() -> dict[str, list[str]]:
    from zoo.data import ding

    sentences: dict[str, None] = {}
    for _, english in ding.sentence_pairs():
        if not _SENTENCE_CHARS.fullmatch(english):
            continue
        text = normalize_transcript(english)
        if MIN_SENTENCE_WORDS <= len(text.split()) <= MAX_SENTENCE_WORDS:
            sentences.setdefault(text, None)
    words: dict[str, None] = {}
    for _, english in ding.dictionary_pairs(max_words=1):
        if _WORD_CHARS.fullmatch(english):
            words.setdefault(english.lower(), None)
    return {"word": list(words), "sentence": list(sentences)}


def corpus_texts(seed: int = SPLIT_SEED, exclude: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The candidate texts of each kind of :data:`SYNTHETIC_KINDS`, normalised and distinct.

    Args:
        seed: seeds the generated digit sequences, letter sequences and numbers.
        exclude: normalised texts never to offer as a word or sentence; by
            default the transcripts of all the Asterisk prompts (fetches the
            23 kB transcript package), so no real test prompt is spoken in training.

    Returns:
        ``{kind: [text, ...]}``; words and sentences come from the Ding
        dictionary (see the module docstring), which may be downloaded on first use.
    """
    if exclude is None:
        exclude = [normalize_transcript(raw) for raw in asterisk_transcripts().values()]
    excluded = set(exclude)
    texts = {"digit": list(DIGIT_WORDS), "letter": list(LETTERS)}
    texts.update(_generated_texts(seed))
    for kind, pool in _ding_texts().items():
        texts[kind] = [t for t in pool if t not in excluded]
    return {kind: texts[kind] for kind in SYNTHETIC_KINDS}


def _allocate(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """``total`` items shared out by ``shares`` (largest remainders get the leftovers)."""
    kinds = list(shares)
    weights = np.array([shares[k] for k in kinds], dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(kinds, counts.tolist()))


def plan_corpus(
    texts: Mapping[str, Sequence[str]],
    size: int = DEFAULT_SIZE,
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
    shares: Mapping[str, float] | None = None,
    voices: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> list[dict]:
    """Decide every clip of a synthetic corpus (text, split, voice, speed, pitch), without audio.

    Rules: ``size`` clips are cut into splits by ``fractions``
    (:func:`zoo.data.splits.split_counts`) and each split into kinds by
    ``shares``. The texts of each kind outside :data:`CLOSED_KINDS` are
    shuffled and cut into three disjoint parts by ``fractions``, so a text
    lies in one split only; a split draws its texts from its part (again in a
    new order when the part runs out). Each clip draws its accent and variant
    from its split's own lists in ``voices`` and its speed and pitch from
    :data:`SPEED_RANGE` and :data:`PITCH_RANGE`, all with
    ``numpy.random.default_rng(seed)``.

    Args:
        texts: ``{kind: candidate texts}`` (:func:`corpus_texts`).
        size: clips in all.
        seed: the seed of every random choice.
        fractions: train, validation and test shares.
        shares: the share of each kind (default :data:`KIND_SHARES`).
        voices: ``{split: {"accents": [...], "variants": [...]}}`` (default:
            the held-out lists of this module).

    Returns:
        Records ``{"id", "split", "kind", "text", "spell", "accent", "variant",
        "speed", "pitch"}`` in id order.

    Raises:
        ValueError: bad sizes or fractions, a kind without texts, or a voice
            shared between training and a held-out split.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    fractions = check_fractions(fractions)
    shares = dict(KIND_SHARES if shares is None else shares)
    unknown = set(shares) - set(SYNTHETIC_KINDS)
    if unknown or any(s < 0 for s in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError(f"shares must map kinds of {SYNTHETIC_KINDS} to non-negative numbers, got {shares}")
    voices = _split_voices() if voices is None else voices
    for split in SPLIT_NAMES:
        if not voices.get(split, {}).get("accents") or not voices.get(split, {}).get("variants"):
            raise ValueError(f"voices[{split!r}] needs non-empty 'accents' and 'variants'")
    for held in ("validation", "test"):
        for field in ("accents", "variants"):
            shared = set(voices["train"][field]) & set(voices[held][field])
            if shared:
                raise ValueError(f"{field} {sorted(shared)} are both in train and in {held}")
    rng = np.random.default_rng(seed)
    parts: dict[str, dict[str, list[str]]] = {}
    for kind in SYNTHETIC_KINDS:
        if shares.get(kind, 0) <= 0:
            continue
        pool = list(dict.fromkeys(texts.get(kind, ())))
        if not pool:
            raise ValueError(f"no texts of kind {kind!r}")
        if kind in CLOSED_KINDS:
            parts[kind] = {split: pool for split in SPLIT_NAMES}
            continue
        order = rng.permutation(len(pool))
        cut, start = {}, 0
        for split, count in zip(SPLIT_NAMES, split_counts(len(pool), fractions)):
            cut[split] = [pool[i] for i in order[start:start + count]]
            start += count
        parts[kind] = cut
    records = []
    for split, split_size in zip(SPLIT_NAMES, split_counts(int(size), fractions)):
        accents, variants = list(voices[split]["accents"]), list(voices[split]["variants"])
        for kind, count in _allocate(split_size, {k: shares[k] for k in parts}).items():
            part = parts[kind][split]
            if count and not part:
                raise ValueError(f"the {split} split has no {kind} texts (too few candidates)")
            chosen = []
            while len(chosen) < count:
                chosen += [part[i] for i in rng.permutation(len(part))[: count - len(chosen)]]
            for text in chosen:
                records.append({
                    "id": f"{len(records):06d}",
                    "split": split,
                    "kind": kind,
                    "text": text,
                    "spell": kind in SPELLED_KINDS,
                    "accent": accents[int(rng.integers(len(accents)))],
                    "variant": variants[int(rng.integers(len(variants)))],
                    "speed": int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                    "pitch": int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                })
    return records


# --------------------------------------------------------------------------
# Synthetic corpus: generation and cache
# --------------------------------------------------------------------------


def _corpus_config(size: int, seed: int, fractions: Sequence[float]) -> dict:
    """Everything that decides a corpus's content, short of the espeak-ng build."""
    from zoo.data import ding

    return {
        "cache_version": CACHE_VERSION,
        "size": int(size),
        "seed": int(seed),
        "fractions": list(check_fractions(fractions)),
        "kind_shares": KIND_SHARES,
        "voices": {split: {k: list(v) for k, v in d.items()} for split, d in _split_voices().items()},
        "speed_range": list(SPEED_RANGE),
        "pitch_range": list(PITCH_RANGE),
        "sentence_words": [MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS],
        "generated_pool": GENERATED_POOL,
        "text_sources": {"trans-de-en": ding.DEB_SHA256,
                         "asterisk-core-sounds-en": TRANSCRIPTS_PACKAGE.sha256},
    }


def _corpus_dir(config: dict) -> Path:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return data_dir() / "speech" / f"synthetic-v{CACHE_VERSION}-n{config['size']}-s{config['seed']}-{digest}"


def _read_corpus_manifest(directory: Path, config: dict) -> dict | None:
    path = directory / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("config") != config:
        return None
    for record in manifest.get("records", ()):
        file = directory / record["file"]
        if not file.is_file() or file.stat().st_size != record["bytes"]:
            log.warning("Synthetic speech corpus %s lacks %s or it changed; rebuilding.",
                        directory, record["file"])
            return None
    return manifest


def _render(espeak: str, directory: Path, batch: list[dict]) -> list[dict]:
    """Speak a batch of planned records into ``directory/wav/``; the records with file, sha256, size."""
    wav_dir = directory / "wav"
    done = []
    with tempfile.TemporaryDirectory(dir=wav_dir, prefix=".render-") as tmp:
        for record in batch:
            scratch = Path(tmp) / f"{record['id']}.wav"
            blob = _synthesize_to(espeak, scratch, record["text"], record["accent"], record["variant"],
                                  record["speed"], record["pitch"], record["spell"])
            waveform, rate = read_wav(blob)
            if rate != SYNTHETIC_SAMPLE_RATE or waveform.size == 0:
                raise DataUnavailableError(
                    f"espeak-ng gave {waveform.size} samples at {rate} Hz for {record['text'][:40]!r}; "
                    f"expected audio at {SYNTHETIC_SAMPLE_RATE} Hz")
            file = f"wav/{record['id']}.wav"
            os.replace(scratch, directory / file)  # atomic; the manifest, written last, is fsync'ed
            done.append(dict(record, file=file, sha256=hashlib.sha256(blob).hexdigest(),
                             bytes=len(blob), samples=int(waveform.size)))
    return done


_corpus_lock = threading.Lock()


def build_synthetic_corpus(
    seed: int = SPLIT_SEED,
    size: int = DEFAULT_SIZE,
    fractions: Sequence[float] = FRACTIONS,
    workers: int = DEFAULT_WORKERS,
    batch_size: int = 100,
    rebuild: bool = False,
) -> dict:
    """The synthetic speech corpus, generated with espeak-ng into the cache on first use.

    Every clip is synthetic (see the module docstring); the plan is
    :func:`plan_corpus` over :func:`corpus_texts`. The default corpus (6,000
    clips, about 3 hours of audio, 0.48 GB of WAV files) took 70 s with two
    espeak-ng processes on a busy two-core machine; later calls only read the
    manifest and check that every file is there with its recorded size (the
    sha256 of a clip is checked when it is loaded).

    Args:
        seed: seeds the texts, the splits and every voice setting.
        size: clips in all.
        fractions: train, validation and test shares of the clips.
        workers: espeak-ng processes run at once (each handles batches of
            ``batch_size`` clips).
        batch_size: clips per batch.
        rebuild: generate again even when a complete cache exists.

    Returns:
        The manifest: ``{"config", "espeak_ng", "sample_rate", "directory"
        (added at run time, not stored), "records": [{"id", "split", "kind",
        "text", "spell", "accent", "variant", "speed", "pitch", "file",
        "sha256", "bytes", "samples", "espeak_ng_version"}, ...]}``.

    Raises:
        DataUnavailableError: espeak-ng is missing (the message says how to
            install it) or lacks a planned variant; Ding or the Asterisk
            transcripts cannot be fetched.
        ValueError: bad arguments.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    config = _corpus_config(size, seed, fractions)
    directory = _corpus_dir(config)
    with _corpus_lock:
        manifest = None if rebuild else _read_corpus_manifest(directory, config)
        if manifest is None:
            manifest = _generate_corpus(directory, config, workers, batch_size)
    manifest["directory"] = str(directory)
    return manifest


def _generate_corpus(directory: Path, config: dict, workers: int, batch_size: int) -> dict:
    espeak = _espeak()
    version = espeak_ng_version()
    records = plan_corpus(corpus_texts(config["seed"]), size=config["size"], seed=config["seed"],
                          fractions=config["fractions"])
    missing = sorted({r["variant"] for r in records} - set(espeak_variants()))
    if missing:
        raise DataUnavailableError(f"this espeak-ng ({version['program']}) lacks the voice variants "
                                   f"{missing}; the corpus needs all of {VARIANTS}")
    started = time.perf_counter()
    (directory / "wav").mkdir(parents=True, exist_ok=True)
    batches = [records[i:i + batch_size] for i in range(0, len(records), batch_size)]
    log.info("Generating %d synthetic clips with espeak-ng %s in %s ...", len(records),
             version["program"], directory)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        rendered = [r for batch in pool.map(lambda b: _render(espeak, directory, b), batches) for r in batch]
    for record in rendered:
        record["espeak_ng_version"] = version["program"]
    seconds = sum(r["samples"] for r in rendered) / SYNTHETIC_SAMPLE_RATE
    manifest = {
        "description": "Synthetic speech: every clip is spoken by the espeak-ng formant synthesiser.",
        "config": config,
        "espeak_ng": version,
        "sample_rate": SYNTHETIC_SAMPLE_RATE,
        "seconds_of_audio": round(seconds, 1),
        "bytes": sum(r["bytes"] for r in rendered),
        "build_seconds": round(time.perf_counter() - started, 1),
        "records": rendered,
    }
    atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=0) + "\n")
    log.info("Generated %d clips (%.0f s of audio) in %.0f s.", len(rendered), seconds,
             manifest["build_seconds"])
    return manifest


def load_waveform(record: Mapping, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """The audio of one corpus record (its sha256 checked), optionally resampled.

    Args:
        record: a record of :func:`speech_splits` (it carries ``"path"``).
        sample_rate: resample to this rate (e.g. 8000 like the Asterisk
            prompts); the stored rate when None.

    Raises:
        ChecksumError: the file is not the one the manifest recorded; rebuild
            with ``build_synthetic_corpus(rebuild=True)``.
    """
    path = Path(record["path"])
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != record["sha256"]:
        raise ChecksumError(path, record["sha256"], actual,
                            "The synthetic clip changed since it was generated; "
                            "rebuild the corpus with build_synthetic_corpus(rebuild=True).")
    waveform, rate = read_wav(blob)
    if sample_rate is not None and sample_rate != rate:
        return resample(waveform, rate, sample_rate), int(sample_rate)
    return waveform, rate


def load_waveforms(records: Iterable[Mapping], sample_rate: int | None = None) -> list[np.ndarray]:
    """:func:`load_waveform` of each record, waveforms only (all at ``sample_rate`` when given)."""
    return [load_waveform(record, sample_rate)[0] for record in records]


def speech_splits(
    seed: int = SPLIT_SEED,
    size: int = DEFAULT_SIZE,
    fractions: Sequence[float] = FRACTIONS,
    workers: int = DEFAULT_WORKERS,
) -> dict[str, list[dict]]:
    """Train/validation/test splits of the synthetic corpus (generated on first use).

    All three splits are synthetic. Validation and test are spoken only by
    held-out accents and voice variants, and their sentences, words, digit and
    letter sequences and numbers never occur in training (module docstring).
    The real test speech is :func:`load_asterisk_prompts`.

    Returns:
        ``{"train": [record, ...], "validation": [...], "test": [...]}``; each
        record as in :func:`build_synthetic_corpus` plus ``"path"``, the
        absolute path of its WAV file; read audio with :func:`load_waveform`.
    """
    manifest = build_synthetic_corpus(seed=seed, size=size, fractions=fractions, workers=workers)
    directory = Path(manifest["directory"])
    splits: dict[str, list[dict]] = {name: [] for name in SPLIT_NAMES}
    for record in manifest["records"]:
        splits[record["split"]].append(dict(record, path=str(directory / record["file"])))
    return splits


# --------------------------------------------------------------------------
# A second synthesiser, never trained on: flite
# --------------------------------------------------------------------------

#: The English voices built into Debian's ``flite`` 2.2: three statistical parametric voices built
#: from recordings of real speakers of CMU ARCTIC (slt: US female; rms: US male; awb: Scottish male)
#: and one diphone voice (kal16: US male). A different engine from espeak-ng, closer to recorded
#: speech: clips spoken by it tell how a recogniser trained on espeak-ng carries over to another voice
#: source without touching the real test speech.
FLITE_VOICES = ("slt", "rms", "awb", "kal16")
FLITE_SAMPLE_RATE = 16000
FLITE_CLIPS_PER_VOICE = 100


def _flite() -> str:
    return _program("flite", "the held-out-synthesiser set is spoken with it")


def flite_text(text: str, spell: bool) -> str:
    """What flite is given to say a normalised transcript: spelled letters as capitals with full
    stops (``"m g c p"`` → ``"M. G. C. P."``, which flite reads by the letters' names)."""
    if spell:
        return " ".join(f"{letter.upper()}." for letter in text.split())
    return text


def _flite_version(flite: str) -> str:
    code, output = run_with_timeout([flite, "--version"], 30)
    match = re.search(r"flite-(\S+)", output)
    return match.group(1) if code == 0 and match else "unknown"


def build_flite_set(seed: int = SPLIT_SEED, size: int = DEFAULT_SIZE, per_voice: int = FLITE_CLIPS_PER_VOICE,
                    rebuild: bool = False) -> dict:
    """Texts of the synthetic corpus's *validation* split spoken again by each voice of
    :data:`FLITE_VOICES`, `per_voice` clips per voice (chosen at random, seeded, with the same kind
    shares as the split), generated into the cache on first use (WAV files and a manifest with
    their sha256, like :func:`build_synthetic_corpus`).

    No clip is ever trained on: the texts are held out of training (validation texts), the
    engine too. Returns the manifest; its records carry ``"path"`` for :func:`load_waveform`.

    Raises:
        DataUnavailableError: flite is not installed (the message says how to install it) or fails.
    """
    flite = _flite()
    validation = speech_splits(seed=seed, size=size)["validation"]
    rng = np.random.default_rng([seed, 7])
    config = {"cache_version": CACHE_VERSION, "corpus": _corpus_config(size, seed, FRACTIONS),
              "voices": list(FLITE_VOICES), "per_voice": int(per_voice)}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    directory = data_dir() / "speech" / f"flite-v{CACHE_VERSION}-n{size}-s{seed}-{digest}"
    with _corpus_lock:
        manifest = None if rebuild else _read_corpus_manifest(directory, config)
        if manifest is None:
            version = _flite_version(flite)
            (directory / "wav").mkdir(parents=True, exist_ok=True)
            records = []
            for voice in FLITE_VOICES:
                chosen = rng.choice(len(validation), size=min(per_voice, len(validation)), replace=False)
                for number, index in enumerate(sorted(chosen.tolist())):
                    source = validation[index]
                    file = f"wav/{voice}-{number:04d}.wav"
                    scratch = directory / "wav" / f".{voice}-{number:04d}.tmp.wav"
                    code, output = run_with_timeout(
                        [flite, "-voice", voice, "-t", flite_text(source["text"], source["spell"]),
                         "-o", str(scratch)], SYNTHESIS_TIMEOUT)
                    if code != 0 or not scratch.is_file():
                        raise DataUnavailableError(f"flite failed on {source['text'][:40]!r} with voice "
                                                   f"{voice}:\n{output_tail(output)}")
                    blob = scratch.read_bytes()
                    waveform, rate = read_wav(blob)
                    if rate != FLITE_SAMPLE_RATE or waveform.size == 0:
                        raise DataUnavailableError(f"flite gave {waveform.size} samples at {rate} Hz for "
                                                   f"{source['text'][:40]!r}; expected {FLITE_SAMPLE_RATE} Hz")
                    os.replace(scratch, directory / file)
                    records.append({"id": f"flite-{voice}-{number:04d}", "split": "validation_flite",
                                    "kind": source["kind"], "text": source["text"], "spell": source["spell"],
                                    "voice": voice, "source_id": source["id"], "file": file,
                                    "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                                    "samples": int(waveform.size)})
            manifest = {"description": "Held-out synthesiser: validation texts spoken by flite's voices.",
                        "config": config, "flite": version, "sample_rate": FLITE_SAMPLE_RATE,
                        "records": records}
            atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=0) + "\n")
    for record in manifest["records"]:
        record["path"] = str(directory / record["file"])
    manifest["directory"] = str(directory)
    return manifest


# --------------------------------------------------------------------------
# Model-card description
# --------------------------------------------------------------------------


def _counts(records: Sequence[Mapping], field: str) -> dict:
    out: dict[str, dict[str, int]] = {}
    for record in records:
        per_split = out.setdefault(record["split"], {})
        per_split[record[field]] = per_split.get(record[field], 0) + 1
    return {split: dict(sorted(out.get(split, {}).items())) for split in SPLIT_NAMES}


def describe_corpus(seed: int = SPLIT_SEED, size: int = DEFAULT_SIZE,
                    fractions: Sequence[float] = FRACTIONS) -> dict:
    """A JSON-ready description of the speech data, for a model card.

    Builds the synthetic corpus and the Asterisk cache when they are not
    cached yet (see :func:`build_synthetic_corpus`, :func:`load_asterisk_prompts`).
    """
    manifest = build_synthetic_corpus(seed=seed, size=size, fractions=fractions)
    records = manifest["records"]
    real = load_asterisk_prompts()
    from zoo.data import ding

    seconds = {split: round(sum(r["samples"] for r in records if r["split"] == split)
                            / SYNTHETIC_SAMPLE_RATE, 1) for split in SPLIT_NAMES}
    return {
        "name": "zoo-speech",
        "cache_version": CACHE_VERSION,
        "alphabet": ALPHABET,
        "normalization_rule": NORMALIZATION_RULE,
        "synthetic": {
            "description": "Synthetic speech only: every clip (train, validation and test) is spoken "
                           "by the espeak-ng formant synthesiser; one engine, so the speaker diversity "
                           "is far below the number of accent/variant combinations.",
            "generator": {"program": "espeak-ng", **manifest["espeak_ng"], **LICENSES["espeak-ng"]},
            "text_sources": {
                "ding": {"package": ding.DEB_NAME, "version": ding.DEB_VERSION, "sha256": ding.DEB_SHA256,
                         **LICENSES["trans-de-en"],
                         "use": f"English one-word entries (words) and example sentences of "
                                f"{MIN_SENTENCE_WORDS}-{MAX_SENTENCE_WORDS} words (sentences), minus "
                                f"any text equal to an Asterisk transcript"},
                "generated": "digits, digit sequences (2-7 digits), letters and letter sequences "
                             "(2-5 letters, spoken by name), numbers 10-999, ordinals 1-100, "
                             "log-uniform numbers 1,000-10,000,000 and decimals, written as words",
            },
            "sample_rate": SYNTHETIC_SAMPLE_RATE,
            "seed": int(seed),
            "size": len(records),
            "seconds_of_audio": seconds,
            "split_rule": (
                "Whole accents and whole voice variants are held out: validation uses only "
                f"{list(VALIDATION_ACCENTS)} x {list(VALIDATION_VARIANTS)}, test only "
                f"{list(TEST_ACCENTS)} x {list(TEST_VARIANTS)}, training the other accents and "
                "variants. Sentences, words, digit and letter sequences and numbers are held out by "
                "text (each distinct text in one split); isolated digits and letters are a closed "
                "set spoken in every split. Speed (words per minute) and pitch are drawn uniformly "
                f"from {list(SPEED_RANGE)} and {list(PITCH_RANGE)} for every clip, all with "
                f"numpy default_rng({int(seed)})."
            ),
            "fractions": dict(zip(SPLIT_NAMES, check_fractions(fractions))),
            "counts": {split: sum(r["split"] == split for r in records) for split in SPLIT_NAMES},
            "counts_by_kind": _counts(records, "kind"),
            "counts_by_accent": _counts(records, "accent"),
            "counts_by_variant": _counts(records, "variant"),
        },
        "real_test": {
            "description": "Real human speech, used for testing only: the English Asterisk telephony "
                           "prompts, one professional female speaker (en_US, Allison Smith).",
            "sources": [dict(SOUNDS_PACKAGE.describe(), **LICENSES[SOUNDS_PACKAGE.name]),
                        dict(TRANSCRIPTS_PACKAGE.describe(), **LICENSES[TRANSCRIPTS_PACKAGE.name],
                             transcript_member=TRANSCRIPT_MEMBER, transcript_sha256=TRANSCRIPT_SHA256)],
            "sample_rate": real["sample_rate"],
            "count": len(real["names"]),
            "counts_by_kind": {kind: real["kinds"].count(kind) for kind in ASTERISK_KINDS},
            "with_caveats": sum(bool(c) for c in real["caveats"]),
            "seconds_of_audio": round(sum(len(w) for w in real["waveforms"]) / real["sample_rate"], 1),
            "left_out": "prompts whose transcript is only a bracketed sound description (silence, "
                        "tones, beeps) and the transcript without a recording (pls-try-call-later)",
        },
    }
