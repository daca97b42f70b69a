"""Tests for zoo.data.speech: transcripts, WAV reading, the Asterisk prompts, espeak-ng, splits.

The fast tests need no network: the Asterisk packages are replaced by tiny
``.deb`` files built here (WAVs written with :mod:`wave`, a gzip'ed transcript
file), and the corpus plan runs on small made-up text pools. The espeak-ng
tests run when espeak-ng is installed and are skipped, with the reason,
otherwise. The test marked ``slow`` reads the real packages from the default
zoo cache, downloading them with apt-get on first use.
"""

import gzip
import hashlib
import io
import json
import shutil
import struct
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest

from zoo.data import speech
from zoo.data.cache import ChecksumError, DataUnavailableError

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed "
                                  "(sudo apt-get install espeak-ng)")


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    root = tmp_path / "zoo-data"
    monkeypatch.setenv("ZOO_DATA_DIR", str(root))
    return root


# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("raw,expected", [
    # numbers
    ("5", "five"),
    ("21", "twenty one"),
    ("Press 0 for help", "press zero for help"),
    ("dial 500", "dial five hundred"),
    ("extension 1234", "extension one thousand two hundred thirty four"),
    ("1,000,000 users", "one million users"),
    ("4, 6, or 8", "four six or eight"),
    ("a 28.8 kilobit modem", "a twenty eight point eight kilobit modem"),
    ("3.14", "three point one four"),
    ("version 1.2.3", "version one two three"),
    ("agent 007", "agent zero zero seven"),
    ("the 1st, 2nd, 3rd and 4th", "the first second third and fourth"),
    ("21st 12th 40th 101st", "twenty first twelfth fortieth one hundred first"),
    ("3D audio", "three d audio"),
    ("H.323", "h three hundred twenty three"),
    ("dial 600.", "dial six hundred"),
    # punctuation, symbols and brackets
    ("Call-Forward on No Answer.", "call forward on no answer"),
    ("Enter your number, followed by the pound key!", "enter your number followed by the pound key"),
    ("press * to pause, # to exit", "press star to pause pound to exit"),
    ("AT&T 50%", "at and t fifty percent"),
    ("at [@]", "at"),
    ("IAX (note: does not say \"2\")", "iax"),
    ("[ascending tones]", ""),
    ("<beep ascending>", ""),
    ("   ", ""),
    ("A.M.", "a m"),
    # apostrophes
    ("Waldo's premier provider", "waldo's premier provider"),
    ("I\u2019ll be there at 9 o'clock", "i'll be there at nine o'clock"),
    ("the students' 'best' rock 'n' roll", "the students best rock n roll"),
    ("don't", "don't"),
    ("'tis", "tis"),
    # letters and case
    ("M I S D N", "m i s d n"),
    ("Q", "q"),
    ("Caf\u00e9 na\u00efve Stra\u00dfe", "cafe naive strasse"),
    ("  several   spaces\tand\nlines ", "several spaces and lines"),
])
def test_normalize_transcript(raw, expected):
    assert speech.normalize_transcript(raw) == expected
    assert set(speech.normalize_transcript(raw)) <= set(speech.ALPHABET)


def test_alphabet_and_idempotence():
    assert speech.ALPHABET == " '" + "abcdefghijklmnopqrstuvwxyz"
    for text in ("Press 1, then #. It's 28.8 kbit/s at 9:30 A.M.", "o'clock 21st 3D"):
        once = speech.normalize_transcript(text)
        assert speech.normalize_transcript(once) == once
    assert speech.normalize_transcript("Press 1, then #. It's 28.8 kbit/s at 9:30 A.M.") == \
        "press one then pound it's twenty eight point eight kbit s at nine thirty a m"
    with pytest.raises(ValueError, match="needs a str"):
        speech.normalize_transcript(5)


def test_number_words():
    cases = {0: "zero", 7: "seven", 13: "thirteen", 40: "forty", 99: "ninety nine", 100: "one hundred",
             105: "one hundred five", 1000: "one thousand", 8500: "eight thousand five hundred",
             1_000_001: "one million one", 2_000_300_000: "two billion three hundred thousand"}
    for n, words in cases.items():
        assert speech.number_to_words(n) == words
    ordinals = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth",
                20: "twentieth", 40: "fortieth", 22: "twenty second", 100: "one hundredth", 0: "zeroth"}
    for n, words in ordinals.items():
        assert speech.ordinal_to_words(n) == words
    for bad in (-1, 10 ** 15, 2.5, True):
        with pytest.raises(ValueError, match="number_to_words"):
            speech.number_to_words(bad)
    # Runs beyond the cardinal range are read digit by digit.
    assert speech.normalize_transcript("1" * 16) == " ".join(["one"] * 16)


def test_transcript_caveats():
    assert speech.transcript_caveats("Press 1 to accept.") == []
    assert speech.transcript_caveats("the 21st caller") == []
    assert speech.transcript_caveats("A.M.") == []
    assert len(speech.transcript_caveats("H.323")) == 2
    assert speech.transcript_caveats("3D audio") == ["letters and digits in one token"]
    assert "digit by digit" in speech.transcript_caveats("dial 1234")[0]
    assert "acronym" in speech.transcript_caveats("the SIP channel")[0]
    assert speech.transcript_caveats("IAX (note: does not say \"2\")") == speech.transcript_caveats("IAX")


# --------------------------------------------------------------------------
# Transcript file and kinds
# --------------------------------------------------------------------------

TRANSCRIPTS = """\
; Core Asterisk Sounds in English

activated: Activated.
agent-pass: Please enter your password followed by the pound key.
beep: [this is a simple beep tone]
digits/5: five
digits/oh: oh
digits/20: twenty
digits/h-1: first
letters/a: a
letters/at: at [@]
letters/zed: zed
silence/1: (1 second of silence)
spy-sip: SIP
pls-try-call-later: Please try your call later.
"""


def test_parse_transcripts():
    parsed = speech.parse_transcripts(TRANSCRIPTS)
    assert list(parsed)[:3] == ["activated", "agent-pass", "beep"]
    assert parsed["letters/at"] == "at [@]"
    assert parsed["silence/1"] == "(1 second of silence)"
    assert len(parsed) == 13
    assert speech.parse_transcripts("empty:\n") == {"empty": ""}
    with pytest.raises(ValueError, match="line 2 is not 'name: text'"):
        speech.parse_transcripts("a: b\nno colon here\n")
    with pytest.raises(ValueError, match="line 3: 'a' appears twice"):
        speech.parse_transcripts("a: b\n\na: c\n")


def test_prompt_kind():
    assert speech.prompt_kind("digits/5", "five") == "digit"
    assert speech.prompt_kind("digits/oh", "oh") == "digit"
    assert speech.prompt_kind("digits/20", "twenty") == "prompt"
    assert speech.prompt_kind("letters/q", "q") == "letter"
    assert speech.prompt_kind("letters/zed", "zed") == "prompt"
    assert speech.prompt_kind("letters/at", "at") == "prompt"
    assert speech.prompt_kind("vm-cust", "five") == "prompt"


# --------------------------------------------------------------------------
# WAV files
# --------------------------------------------------------------------------


def _wav_bytes(frames: bytes, rate=8000, width=2, channels=1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(frames)
    return buffer.getvalue()


def _tone(n=80, rate=8000, amplitude=0.5, freq=440.0):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float64)


def test_read_wav_bit_depths(tmp_path):
    x = _tone()
    eight = np.round(x * 127 + 128).astype(np.uint8).tobytes()
    sixteen = np.round(x * 32767).astype("<i2").tobytes()
    as24 = np.round(x * (2 ** 23 - 1)).astype(np.int32)
    twentyfour = b"".join(struct.pack("<i", int(v))[:3] for v in as24)
    thirtytwo = np.round(x * (2 ** 31 - 1)).astype("<i4").tobytes()
    for width, frames, tolerance in ((1, eight, 1 / 64), (2, sixteen, 1e-4), (3, twentyfour, 1e-6),
                                     (4, thirtytwo, 1e-6)):
        waveform, rate = speech.read_wav(_wav_bytes(frames, width=width))
        assert rate == 8000 and waveform.dtype == np.float32 and waveform.shape == (80,)
        np.testing.assert_allclose(waveform, x, atol=tolerance)
    # Extremes of 16 and 24 bits stay in [-1, 1]; 8-bit silence is 128.
    extremes = speech.read_wav(_wav_bytes(np.array([-32768, 32767], "<i2").tobytes()))[0]
    assert extremes.min() == -1.0 and extremes.max() < 1.0
    negative24 = speech.read_wav(_wav_bytes(b"\x00\x00\x80\xff\xff\x7f", width=3))[0]
    assert negative24[0] == -1.0 and 0.999 < negative24[1] < 1.0
    assert speech.read_wav(_wav_bytes(bytes([128, 128]), width=1))[0].tolist() == [0.0, 0.0]
    # From a path as well as from bytes.
    path = tmp_path / "x.wav"
    path.write_bytes(_wav_bytes(sixteen, rate=22050))
    assert speech.read_wav(path)[1] == 22050


def test_read_wav_stereo_and_errors():
    left, right = np.full(10, 1000, "<i2"), np.full(10, -3000, "<i2")
    stereo = np.stack([left, right], axis=1).reshape(-1).tobytes()
    waveform, rate = speech.read_wav(_wav_bytes(stereo, rate=16000, channels=2))
    assert rate == 16000 and waveform.shape == (10,)
    np.testing.assert_allclose(waveform, -1000 / 32768)
    with pytest.raises(ValueError, match="<bytes>: not a PCM WAV file"):
        speech.read_wav(b"RIFF....not a wave file")


def test_resample():
    x = _tone(n=22050, rate=22050, amplitude=0.4, freq=300.0).astype(np.float32)
    y = speech.resample(x, 22050, 8000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) - 300) <= 1  # 1 Hz bins over one second
    np.testing.assert_array_equal(speech.resample(x, 8000, 8000), x)
    with pytest.raises(ValueError, match="positive"):
        speech.resample(x, 0, 8000)


# --------------------------------------------------------------------------
# The Asterisk reader on fixture packages
# --------------------------------------------------------------------------


def _ar(members):
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return out


def _deb(path, files):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for member, raw in files.items():
            info = tarfile.TarInfo("./" + member)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b""),
                          ("data.tar.xz", data.getvalue())]))
    return path


def _prompt_wav(index: int) -> bytes:
    """A short recording whose first sample tells which file it is."""
    samples = np.full(40 + index, 100 * (index + 1), "<i2")
    return _wav_bytes(samples.tobytes())


#: The recordings of the fixture: every transcript but pls-try-call-later, plus one with no transcript.
FIXTURE_WAVS = ["activated", "agent-pass", "beep", "digits/5", "digits/oh", "digits/20", "digits/h-1",
                "letters/a", "letters/at", "letters/zed", "silence/1", "spy-sip", "extra-untranscribed"]


@pytest.fixture
def fake_asterisk(tmp_path, monkeypatch):
    blob = gzip.compress(TRANSCRIPTS.encode())
    transcripts = _deb(tmp_path / "asterisk-core-sounds-en_1.6.1-1_all.deb",
                       {speech.TRANSCRIPT_MEMBER: blob,
                        "usr/share/doc/asterisk-core-sounds-en/copyright": b"x"})
    sounds = _deb(tmp_path / "asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
                  {speech.SOUNDS_ROOT + name + ".wav": _prompt_wav(i) for i, name in enumerate(FIXTURE_WAVS)}
                  | {"usr/share/doc/asterisk-core-sounds-en-wav/copyright": b"x"})
    calls = []

    def fetch(path):
        def fetcher():
            calls.append(path.name)
            return path
        return fetcher

    monkeypatch.setattr(speech, "_fetch_transcripts_deb", fetch(transcripts))
    monkeypatch.setattr(speech, "_fetch_sounds_deb", fetch(sounds))
    monkeypatch.setattr(speech, "TRANSCRIPT_SHA256", hashlib.sha256(blob).hexdigest())
    monkeypatch.setattr(speech, "EXPECTED_PROMPTS", 10)
    monkeypatch.setattr(speech, "EXPECTED_DIGITS", 2)
    monkeypatch.setattr(speech, "EXPECTED_LETTERS", 1)
    return calls


def test_asterisk_prompts_from_fixture_debs(tmp_data_dir, fake_asterisk):
    data = speech.load_asterisk_prompts()
    assert data["sample_rate"] == 8000
    expected = {  # name -> (transcript, kind)
        "activated": ("activated", "prompt"),
        "agent-pass": ("please enter your password followed by the pound key", "prompt"),
        "digits/20": ("twenty", "prompt"),
        "digits/5": ("five", "digit"),
        "digits/h-1": ("first", "prompt"),
        "digits/oh": ("oh", "digit"),
        "letters/a": ("a", "letter"),
        "letters/at": ("at", "prompt"),
        "letters/zed": ("zed", "prompt"),
        "spy-sip": ("sip", "prompt"),
    }
    assert data["names"] == sorted(expected)
    assert data["transcripts"] == [expected[n][0] for n in data["names"]]
    assert data["kinds"] == [expected[n][1] for n in data["names"]]
    assert data["raw_transcripts"][data["names"].index("letters/at")] == "at [@]"
    assert data["caveats"][data["names"].index("spy-sip")] and not data["caveats"][0]
    # Each waveform is the recording of its own name (first sample and length identify the file).
    for name, waveform in zip(data["names"], data["waveforms"]):
        index = FIXTURE_WAVS.index(name)
        assert waveform.dtype == np.float32 and waveform.shape == (40 + index,)
        assert waveform[0] == pytest.approx(100 * (index + 1) / 32768)
    manifest_path = tmp_data_dir / "speech" / f"asterisk-en-1.6.1-1-v{speech.CACHE_VERSION}.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["skipped"] == {"non_speech": ["beep", "silence/1"], "no_audio": ["pls-try-call-later"],
                                   "no_transcript": ["extra-untranscribed"]}
    assert fake_asterisk == ["asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
                             "asterisk-core-sounds-en_1.6.1-1_all.deb"]


def test_asterisk_cache_is_reused_and_checked(tmp_data_dir, fake_asterisk, monkeypatch):
    first = speech.load_asterisk_prompts()
    fake_asterisk.clear()
    second = speech.load_asterisk_prompts()
    assert fake_asterisk == []  # read from the cache, no package opened
    assert second["names"] == first["names"] and second["transcripts"] == first["transcripts"]
    for a, b in zip(first["waveforms"], second["waveforms"]):
        np.testing.assert_array_equal(a, b)
    # Only some kinds.
    digits = speech.load_asterisk_prompts(kinds=["digit"])
    assert digits["names"] == ["digits/5", "digits/oh"] and set(digits["kinds"]) == {"digit"}
    with pytest.raises(ValueError, match="kinds must be among"):
        speech.load_asterisk_prompts(kinds=["word"])
    # A damaged cache is rebuilt from the packages.
    array_path = tmp_data_dir / "speech" / f"asterisk-en-1.6.1-1-v{speech.CACHE_VERSION}.npz"
    array_path.write_bytes(array_path.read_bytes()[:-10] + b"0123456789")
    assert speech.load_asterisk_prompts()["names"] == first["names"]
    assert fake_asterisk  # rebuilt


def test_asterisk_checks_transcript_sha_and_counts(tmp_data_dir, fake_asterisk, monkeypatch):
    monkeypatch.setattr(speech, "EXPECTED_PROMPTS", 11)
    with pytest.raises(ValueError, match="gave 10 prompts, 2 digits and 1 letters; expected 11"):
        speech.load_asterisk_prompts()
    monkeypatch.setattr(speech, "TRANSCRIPT_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match="core-sounds-en.txt.gz"):
        speech.asterisk_transcripts()


def test_pair_prompts_rejects_mixed_rates():
    wavs = {"a": _wav_bytes(b"\x00\x00" * 4, rate=8000), "b": _wav_bytes(b"\x00\x00" * 4, rate=16000)}
    with pytest.raises(ValueError, match="'b' is at 16000 Hz, the others at 8000 Hz"):
        speech.pair_prompts(wavs, {"a": "one", "b": "two"})
    with pytest.raises(ValueError, match="Asterisk prompt 'a': <bytes>: not a PCM WAV"):
        speech.pair_prompts({"a": b"junk"}, {"a": "one"})


# --------------------------------------------------------------------------
# Splits (the plan, without audio)
# --------------------------------------------------------------------------


def _small_texts():
    return {
        "digit": list(speech.DIGIT_WORDS),
        "digit_sequence": [f"{a} {b}" for a in speech.DIGIT_WORDS[:10] for b in speech.DIGIT_WORDS[:10]],
        "letter": list(speech.LETTERS),
        "letter_sequence": [f"{a} {b}" for a in "abcdefgh" for b in "xyz"],
        "number": [speech.number_to_words(n) for n in range(10, 200)],
        "word": [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(300)],
        "sentence": [f"this is sentence {speech.number_to_words(i)}" for i in range(400)],
    }


def test_corpus_texts_drop_asterisk_prompts(monkeypatch):
    monkeypatch.setattr(speech, "_ding_texts", lambda: {
        "word": ["activated", "apple", "calling"],
        "sentence": ["thank you for calling", "the cat sat on the mat"]})
    monkeypatch.setattr(speech, "asterisk_transcripts", lambda: {
        "auth-thankyou": "Thank you for calling.", "activated": "Activated.", "digits/5": "five"})
    texts = speech.corpus_texts(seed=1)
    assert list(texts) == list(speech.SYNTHETIC_KINDS)
    assert texts["word"] == ["apple", "calling"] and texts["sentence"] == ["the cat sat on the mat"]
    assert "five" in texts["digit"]  # the closed vocabulary stays
    assert speech.corpus_texts(seed=1, exclude=[])["word"] == ["activated", "apple", "calling"]
    # Generated texts: distinct, normalised, seeded.
    for kind in ("digit_sequence", "letter_sequence", "number"):
        pool = texts[kind]
        assert len(pool) == len(set(pool)) > 1000
        assert all(speech.normalize_transcript(t) == t for t in pool)
    assert all(set(t.split()) <= set(speech.DIGIT_WORDS) for t in texts["digit_sequence"])
    assert all(all(len(w) == 1 for w in t.split()) for t in texts["letter_sequence"])
    assert {"twenty one", "one hundred five", "twenty first"} <= set(texts["number"])
    assert speech.corpus_texts(seed=1, exclude=[])["number"] == texts["number"]
    assert speech.corpus_texts(seed=2, exclude=[])["digit_sequence"] != texts["digit_sequence"]


def test_plan_holds_out_texts_accents_and_variants():
    records = speech.plan_corpus(_small_texts(), size=2000, seed=3)
    assert len(records) == 2000 and [r["id"] for r in records] == [f"{i:06d}" for i in range(2000)]
    by_split = {name: [r for r in records if r["split"] == name] for name in speech.SPLIT_NAMES}
    assert [len(v) for v in by_split.values()] == [1600, 200, 200]
    train = by_split["train"]
    train_texts = {r["text"] for r in train if r["kind"] not in speech.CLOSED_KINDS}
    held_accents = set(speech.VALIDATION_ACCENTS) | set(speech.TEST_ACCENTS)
    held_variants = set(speech.VALIDATION_VARIANTS) | set(speech.TEST_VARIANTS)
    assert not {r["accent"] for r in train} & held_accents
    assert not {r["variant"] for r in train} & held_variants
    for held in ("validation", "test"):
        part = by_split[held]
        accents = speech.VALIDATION_ACCENTS if held == "validation" else speech.TEST_ACCENTS
        variants = speech.VALIDATION_VARIANTS if held == "validation" else speech.TEST_VARIANTS
        assert {r["accent"] for r in part} <= set(accents)
        assert {r["variant"] for r in part} <= set(variants)
        held_texts = {r["text"] for r in part if r["kind"] not in speech.CLOSED_KINDS}
        assert held_texts and not held_texts & train_texts  # no held-out sentence, word, sequence in train
    val_texts = {r["text"] for r in by_split["validation"] if r["kind"] not in speech.CLOSED_KINDS}
    test_texts = {r["text"] for r in by_split["test"] if r["kind"] not in speech.CLOSED_KINDS}
    assert not val_texts & test_texts
    # Every kind in every split; spelled kinds flagged; speed and pitch in range and varied.
    for part in by_split.values():
        assert {r["kind"] for r in part} == set(speech.SYNTHETIC_KINDS)
    assert all(r["spell"] == (r["kind"] in ("letter", "letter_sequence")) for r in records)
    speeds, pitches = [r["speed"] for r in records], [r["pitch"] for r in records]
    assert speech.SPEED_RANGE[0] <= min(speeds) and max(speeds) <= speech.SPEED_RANGE[1]
    assert speech.PITCH_RANGE[0] <= min(pitches) and max(pitches) <= speech.PITCH_RANGE[1]
    assert len(set(speeds)) > 30 and len(set(pitches)) > 30
    # Texts are drawn again when a split's part runs out (small pools), still never across splits.
    counts = {}
    for r in train:
        counts[r["text"]] = counts.get(r["text"], 0) + 1
    assert max(counts.values()) > 1


def test_plan_is_seeded():
    texts = _small_texts()
    first = speech.plan_corpus(texts, size=300, seed=11)
    assert speech.plan_corpus(texts, size=300, seed=11) == first
    assert speech.plan_corpus(texts, size=300, seed=12) != first
    # The held-out sentences depend on the seed only, not on the corpus size.
    def test_sentences(records):
        return {r["text"] for r in records if r["split"] == "test" and r["kind"] == "sentence"}
    small, large = speech.plan_corpus(texts, size=300, seed=11), speech.plan_corpus(texts, size=3000, seed=11)
    train_large = {r["text"] for r in large if r["split"] == "train"}
    assert not test_sentences(small) & train_large


def test_plan_rejects_bad_arguments():
    texts = _small_texts()
    with pytest.raises(ValueError, match="size must be a positive integer"):
        speech.plan_corpus(texts, size=0)
    with pytest.raises(ValueError, match="fractions must be non-negative and sum to 1"):
        speech.plan_corpus(texts, size=10, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="no texts of kind 'word'"):
        speech.plan_corpus(dict(texts, word=[]), size=100)
    voices = {"train": {"accents": ["en-us"], "variants": ["m1", "f2"]},
              "validation": {"accents": ["en-gb"], "variants": ["m2"]},
              "test": {"accents": ["en-029"], "variants": ["f2"]}}
    with pytest.raises(ValueError, match=r"variants \['f2'\] are both in train and in test"):
        speech.plan_corpus(texts, size=100, voices=voices)
    # The module's own lists are disjoint and cover known accents.
    assert set(speech.ACCENTS) == {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                                   "en-gb-x-gbcwmd", "en-029"}
    assert set(speech.VALIDATION_VARIANTS) | set(speech.TEST_VARIANTS) <= set(speech.VARIANTS)
    assert not set(speech.VALIDATION_VARIANTS) & set(speech.TEST_VARIANTS)


# --------------------------------------------------------------------------
# espeak-ng
# --------------------------------------------------------------------------


def test_missing_espeak_says_how_to_install(tmp_data_dir, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda tool, *a, **k: None if tool == "espeak-ng" else real_which(tool, *a, **k))
    with pytest.raises(DataUnavailableError, match=r"sudo apt-get install espeak-ng"):
        speech.synthesize("three")
    with pytest.raises(DataUnavailableError, match=r"espeak-ng is not installed"):
        speech.build_synthetic_corpus(size=10)
    with pytest.raises(DataUnavailableError, match=r"sudo apt-get install espeak-ng"):
        speech.espeak_ng_version()


@needs_espeak
def test_synthesize_short_text():
    waveform, rate = speech.synthesize("three seven nine", accent="en-gb", variant="m3", speed=170, pitch=40)
    assert rate == speech.SYNTHETIC_SAMPLE_RATE == 22050
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 0.3 * rate < waveform.size < 4 * rate
    assert 0.01 < np.abs(waveform).max() <= 1.0
    again, _ = speech.synthesize("three seven nine", accent="en-gb", variant="m3", speed=170, pitch=40)
    np.testing.assert_array_equal(again, waveform)  # espeak-ng is deterministic
    spelled, _ = speech.synthesize("m g", accent="en-us", variant=None, spell=True)
    assert spelled.size > 0.2 * rate
    assert set(speech.VARIANTS) <= set(speech.espeak_variants())
    assert speech.espeak_ng_version()["program"][0].isdigit()
    with pytest.raises(ValueError, match="accent must be one of"):
        speech.synthesize("three", accent="en-xx")
    with pytest.raises(ValueError, match="no voice variant 'nosuchvoice'"):
        speech.synthesize("three", variant="nosuchvoice")
    with pytest.raises(ValueError, match="speed must be"):
        speech.synthesize("three", speed=20)
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        speech.synthesize("  ")


@needs_espeak
def test_small_corpus_end_to_end(tmp_data_dir, monkeypatch):
    texts = _small_texts()
    monkeypatch.setattr(speech, "corpus_texts", lambda seed=speech.SPLIT_SEED, exclude=None: texts)
    manifest = speech.build_synthetic_corpus(seed=5, size=24, workers=2, batch_size=5)
    records = manifest["records"]
    assert len(records) == 24 and manifest["sample_rate"] == 22050
    assert manifest["config"]["size"] == 24 and manifest["espeak_ng"]["program"]
    stored = json.loads((Path(manifest["directory"]) / "manifest.json").read_text())
    assert "directory" not in stored and str(tmp_data_dir) not in json.dumps(stored)  # no machine paths
    assert [{k: r[k] for k in ("text", "accent", "variant", "speed", "pitch")} for r in records] == \
        [{k: r[k] for k in ("text", "accent", "variant", "speed", "pitch")}
         for r in speech.plan_corpus(texts, size=24, seed=5)]
    for record in records:
        assert record["espeak_ng_version"] == manifest["espeak_ng"]["program"]
        blob = (Path(manifest["directory"]) / record["file"]).read_bytes()
        assert record["sha256"] == hashlib.sha256(blob).hexdigest()
    # A second call reads the cache: nothing is spoken.
    monkeypatch.setattr(speech, "_render", lambda *a: (_ for _ in ()).throw(AssertionError("re-rendered")))
    splits = speech.speech_splits(seed=5, size=24)
    assert [len(splits[s]) for s in speech.SPLIT_NAMES] == [20, 2, 2]
    waveform, rate = speech.load_waveform(splits["test"][0])
    assert rate == 22050 and waveform.dtype == np.float32 and waveform.size == splits["test"][0]["samples"]
    low = speech.load_waveforms(splits["validation"], sample_rate=8000)
    assert len(low) == 2 and all(w.dtype == np.float32 for w in low)
    # A changed clip is caught when it is loaded.
    path = Path(splits["train"][0]["path"])
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="rebuild the corpus"):
        speech.load_waveform(splits["train"][0])
    assert Path(manifest["directory"]).parent == tmp_data_dir / "speech"


def test_flite_text_spells_letters_by_name():
    assert speech.flite_text("m g c p", spell=True) == "M. G. C. P."
    assert speech.flite_text("a", spell=True) == "A."
    assert speech.flite_text("three seven nine", spell=False) == "three seven nine"


def test_missing_flite_says_how_to_install(tmp_data_dir, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(speech.shutil, "which",
                        lambda tool, *a, **k: None if tool == "flite" else real_which(tool, *a, **k))
    with pytest.raises(DataUnavailableError, match=r"sudo apt-get install flite"):
        speech.build_flite_set(seed=5, size=24)


@needs_espeak
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (sudo apt-get install flite)")
def test_flite_set_speaks_validation_texts_with_every_voice(tmp_data_dir, monkeypatch):
    texts = _small_texts()
    monkeypatch.setattr(speech, "corpus_texts", lambda seed=speech.SPLIT_SEED, exclude=None: texts)
    manifest = speech.build_flite_set(seed=5, size=24, per_voice=2)
    records = manifest["records"]
    validation = {r["id"]: r for r in speech.speech_splits(seed=5, size=24)["validation"]}
    assert [r["voice"] for r in records] == [v for v in speech.FLITE_VOICES for _ in range(2)]
    for record in records:
        assert record["text"] == validation[record["source_id"]]["text"]  # held-out texts only
        waveform, rate = speech.load_waveform(record)
        assert rate == speech.FLITE_SAMPLE_RATE and waveform.size == record["samples"]
    stored = json.loads((Path(manifest["directory"]) / "manifest.json").read_text())
    assert str(tmp_data_dir) not in json.dumps(stored)  # no machine paths
    again = speech.build_flite_set(seed=5, size=24, per_voice=2)  # read from the cache
    assert [r["sha256"] for r in again["records"]] == [r["sha256"] for r in records]


# --------------------------------------------------------------------------
# The real packages (downloaded on first use)
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_real_asterisk_prompts():
    try:
        data = speech.load_asterisk_prompts()
    except DataUnavailableError as exc:
        pytest.skip(f"the Asterisk packages cannot be fetched here: {exc}")
    kinds = data["kinds"]
    assert (len(kinds), kinds.count("digit"), kinds.count("letter")) == (551, 11, 26)
    assert data["sample_rate"] == 8000
    index = data["names"].index("digits/7")
    assert data["transcripts"][index] == "seven" and kinds[index] == "digit"
    assert data["transcripts"][data["names"].index("letters/q")] == "q"
    assert all(set(t) <= set(speech.ALPHABET) and t for t in data["transcripts"])
    assert all(w.dtype == np.float32 and w.size and np.abs(w).max() <= 1 for w in data["waveforms"])
