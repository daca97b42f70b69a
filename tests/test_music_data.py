"""Tests for zoo.music (keys, tokens, MIDI, piano roll) and zoo.data.chorales.

Fast by default: corpus tests parse only the first few chorales (or read them
from the full cache when it already exists). Parsing the whole corpus is
marked ``slow``.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from zoo import music
from zoo.data import chorales

N_PIECES = 5


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def few_chorales():
    pytest.importorskip("music21")
    melodies = chorales.load_chorale_melodies(limit=N_PIECES, quiet=True)
    assert len(melodies) == N_PIECES
    return melodies


def _random_events(rng, n):
    events = []
    for _ in range(n):
        pitch = None if rng.random() < 0.15 else int(rng.integers(music.PITCH_MIN, music.PITCH_MAX + 1))
        events.append((pitch, int(rng.choice(music.DURATIONS))))
    return events


def _fake_melodies(rng, n):
    melodies = []
    for i in range(n):
        tonic = int(rng.integers(12))
        melodies.append(
            {
                "id": f"piece{i:03d}",
                "key": music.key_name(tonic, "major" if i % 2 else "minor"),
                "events": [(p, d) for p, d in _random_events(rng, 20) if p is not None],
                "transposition": 0,
            }
        )
    return melodies


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("C major", (0, "major")),
        ("F# minor", (6, "minor")),
        ("f# minor", (6, "minor")),
        ("Bb major", (10, "major")),
        ("bb minor", (10, "minor")),
        ("E\u266d major", (3, "major")),
        ("C\u266f minor", (1, "minor")),
        ("  G   Major ", (7, "major")),
        ("A# minor", (10, "minor")),
        ("Cb major", (11, "major")),
    ],
)
def test_parse_key_accepts(text, expected):
    assert music.parse_key(text) == expected


@pytest.mark.parametrize("bad", ["H major", "", "C dorian", "C", "major", "C## major", "C major x", None, 5])
def test_parse_key_rejects_with_clear_message(bad):
    with pytest.raises(ValueError) as info:
        music.parse_key(bad)
    message = str(info.value)
    assert repr(bad) in message  # says what it received
    assert "major" in message and "minor" in message and "A-G" in message  # and what it expects


def test_key_names_and_indices():
    assert len(music.ALL_KEYS) == len(set(music.ALL_KEYS)) == 24
    for i, name in enumerate(music.ALL_KEYS):
        assert music.key_index(name) == i
        assert music.key_from_index(i) == name
        assert music.key_name(*music.parse_key(name)) == name
    assert music.key_name(10, "major") == "Bb major"
    assert music.key_name(6, "minor") == "F# minor"
    assert music.key_name(5, "major") == "F major"
    assert music.key_index("A# minor") == music.key_index("Bb minor")
    assert music.transpose_key("F# minor", 4) == "Bb minor"
    assert music.transpose_key("C major", -1) == "B major"
    with pytest.raises(ValueError):
        music.key_from_index(24)
    with pytest.raises(ValueError):
        music.key_name(0, "dorian")


def test_scale_pitch_classes():
    assert music.scale_pitch_classes(0, "major") == {0, 2, 4, 5, 7, 9, 11}
    a_minor = music.scale_pitch_classes(9, "minor")
    assert 8 in a_minor and 6 in a_minor  # G# (harmonic/melodic), F# (melodic)
    assert 7 in a_minor and 5 in a_minor  # G, F (natural)
    assert len(a_minor) == 9
    assert music.in_key_rate([60, 62, 61, None], "C major") == pytest.approx(2 / 3)
    assert music.in_key_rate([(60, 4), (None, 4), (66, 2)], (0, "major")) == 0.5
    assert math.isnan(music.in_key_rate([None], "C major"))


# --------------------------------------------------------------------------
# Events, tokens, MIDI
# --------------------------------------------------------------------------


def test_vocabulary_layout():
    assert (music.PAD, music.BOS, music.EOS) == (0, 1, 2)
    pitches = [None, *range(music.PITCH_MIN, music.PITCH_MAX + 1)]
    tokens = [music.event_to_token(p, d) for p in pitches for d in music.DURATIONS]
    assert sorted(tokens) == list(range(music.NUM_SPECIAL, music.VOCAB_SIZE))


def test_token_round_trip(rng):
    events = _random_events(rng, 300)
    tokens = music.encode_events(events)
    assert len(tokens) == len(events)
    assert all(music.NUM_SPECIAL <= t < music.VOCAB_SIZE for t in tokens)
    assert music.decode_tokens(tokens) == events
    wrapped = music.encode_events(events, bos_eos=True)
    assert wrapped[0] == music.BOS and wrapped[-1] == music.EOS
    # PAD/BOS are skipped, EOS stops decoding; arrays are accepted.
    padded = np.array([music.PAD, music.BOS, *tokens[:5], music.EOS, *tokens[5:9], music.PAD])
    assert music.decode_tokens(padded) == events[:5]


def test_encode_rejects_unencodable_events():
    with pytest.raises(ValueError, match="outside the encodable range"):
        music.encode_events([(music.PITCH_MAX + 1, 4)])
    with pytest.raises(ValueError, match="quantize_events"):
        music.encode_events([(60, 5)])
    with pytest.raises(ValueError):
        music.encode_events([(60, 0)])
    with pytest.raises(ValueError):
        music.decode_tokens([music.VOCAB_SIZE])


def test_quantize_events_keeps_onsets():
    raw = [(60, 5), (62, 4), (64, 24), (None, 4), (65, 9), (None, 3), (None, 2), (67, 4)]
    quantized = music.quantize_events(raw)
    assert quantized == [
        (60, 4), (None, 1), (62, 4), (64, 16), (None, 12), (65, 8), (None, 6), (67, 4),
    ]
    assert music.total_steps(quantized) == music.total_steps(raw)
    assert music.quantize_events(quantized) == quantized
    assert all(d in music.DURATIONS for _, d in quantized)


def test_midi_round_trip(tmp_path, rng):
    mido = pytest.importorskip("mido")
    events = [(None, 3), (67, 4), (67, 4), (69, 2), (None, 2), (71, 16), (72, 1)] + _random_events(rng, 60)
    events.append((None, 8))  # trailing rest is kept
    events = music.quantize_events(events)
    path = tmp_path / "melody.mid"
    returned = music.events_to_midi(events, path, tempo_bpm=100, program=73)
    assert returned == path and path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["melody.mid"]  # no temp file left behind
    assert music.midi_to_events(path) == events

    midi = mido.MidiFile(path)
    assert midi.ticks_per_beat == 480
    messages = list(midi.tracks[0])
    tempo = next(m for m in messages if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo.tempo) == pytest.approx(100)
    assert next(m for m in messages if m.type == "program_change").program == 73
    first_off = next(m for m in messages if m.type == "note_off")
    assert first_off.time == 4 * music.TICKS_PER_STEP  # a quarter note lasts 480 ticks
    steps = music.total_steps(events)
    assert midi.length == pytest.approx(steps / music.STEPS_PER_QUARTER * 60 / 100)


def test_piano_roll_png(tmp_path):
    pytest.importorskip("matplotlib")
    events = [(60, 4), (None, 2), (64, 2), (67, 8)]
    path = music.piano_roll_png(events, tmp_path / "roll.png", title="C major")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_imports_stay_light():
    code = (
        "import sys, zoo.music, zoo.data.chorales; "
        "heavy = [m for m in ('tensorflow', 'keras', 'music21', 'mido', 'matplotlib') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# Transposition, splits, examples
# --------------------------------------------------------------------------


def test_transposition_keeps_key_consistent(few_chorales):
    for melody in few_chorales:
        tonic, mode = music.parse_key(melody["key"])
        rate = music.in_key_rate(melody["events"], melody["key"])
        for semitones in range(-6, 6):
            moved = chorales.transpose_melody(melody, semitones)
            if moved is None:
                continue
            assert moved["key"] == music.key_name(tonic + semitones, mode)
            assert moved["transposition"] == semitones
            assert moved["id"] == melody["id"]
            assert music.in_key_rate(moved["events"], moved["key"]) == pytest.approx(rate)
            assert [d for _, d in moved["events"]] == [d for _, d in melody["events"]]
        assert chorales.transpose_melody(melody, 40) is None  # leaves the pitch range
        assert melody["transposition"] == 0  # the original is untouched


def test_augment_all_keys(few_chorales):
    augmented = chorales.augment_all_keys(few_chorales)
    for melody in few_chorales:
        copies = [m for m in augmented if m["id"] == melody["id"]]
        assert copies[0] == melody
        keys = [m["key"] for m in copies]
        assert len(keys) == len(set(keys)) == 12  # every key once
        modes = {music.parse_key(k)[1] for k in keys}
        assert modes == {music.parse_key(melody["key"])[1]}
        for m in copies:
            pitches = [p for p, _ in m["events"] if p is not None]
            assert music.PITCH_MIN <= min(pitches) and max(pitches) <= music.PITCH_MAX


def test_split_by_piece_disjoint_and_deterministic(rng):
    melodies = _fake_melodies(rng, 60)
    splits = chorales.split_by_piece(melodies, seed=3)
    assert list(splits) == ["train", "validation", "test"]
    ids = {name: {m["id"] for m in part} for name, part in splits.items()}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert set().union(*ids.values()) == {m["id"] for m in melodies}
    assert [len(p) for p in splits.values()] == [48, 6, 6]

    again = chorales.split_by_piece(list(reversed(melodies)), seed=3)
    assert {k: {m["id"] for m in v} for k, v in again.items()} == ids
    other = chorales.split_by_piece(melodies, seed=4)
    assert {k: {m["id"] for m in v} for k, v in other.items()} != ids

    # Transposed copies follow their piece.
    augmented = chorales.augment_all_keys(melodies)
    aug_splits = chorales.split_by_piece(augmented, seed=3)
    assert {k: {m["id"] for m in v} for k, v in aug_splits.items()} == ids


def test_split_keeps_shared_tunes_together(rng):
    melodies = _fake_melodies(rng, 40)
    # The same tune in another key, under another piece id.
    twin = dict(melodies[0], id="piece999", events=music.transpose_events(melodies[0]["events"], 2))
    melodies.append(twin)
    for seed in range(10):
        splits = chorales.split_by_piece(melodies, seed=seed)
        where = {m["id"]: name for name, part in splits.items() for m in part}
        assert where["piece000"] == where["piece999"]


def test_make_examples(few_chorales):
    key_ids, tokens = chorales.make_examples(few_chorales, max_len=chorales.DEFAULT_MAX_LEN)
    assert key_ids.dtype == np.int32 and tokens.dtype == np.int32
    assert tokens.shape == (len(few_chorales), chorales.DEFAULT_MAX_LEN + 1)
    for row, melody in enumerate(few_chorales):
        n = len(melody["events"])
        assert key_ids[row] == music.key_index(melody["key"])
        assert tokens[row, 0] == music.BOS
        assert tokens[row, n + 1] == music.EOS
        assert (tokens[row, n + 2 :] == music.PAD).all()
        assert music.decode_tokens(tokens[row]) == melody["events"]
    # Truncation: first max_len events kept after BOS, no EOS.
    _, short = chorales.make_examples(few_chorales[:1], max_len=10)
    assert short.shape == (1, 11)
    assert music.decode_tokens(short[0]) == few_chorales[0]["events"][:10]
    assert music.EOS not in short[0]


# --------------------------------------------------------------------------
# Real chorales
# --------------------------------------------------------------------------


def test_real_chorales_are_in_their_key(few_chorales):
    for melody in few_chorales:
        assert melody["id"].startswith("bwv")
        music.parse_key(melody["key"])  # a valid canonical key name
        assert melody["key"] in music.ALL_KEYS
        assert music.in_key_rate(melody["events"], melody["key"]) > 0.85
        assert all(d in music.DURATIONS for _, d in melody["events"])
        assert melody["events"][0][0] is not None and melody["events"][-1][0] is not None
        music.encode_events(melody["events"])  # encodable
    assert chorales.real_in_key_rate(few_chorales) > 0.9


def test_first_chorale_details(few_chorales):
    # Riemenschneider no. 1 is BWV 269, "Aus meines Herzens Grunde", in G major.
    first = few_chorales[0]
    assert first["id"] == "bwv269"
    assert first["key"] == "G major"
    assert first["events"][0] == (67, 4)  # the tune starts on G4, a quarter note


def test_cache_written_once_and_invalidated(tmp_path, monkeypatch):
    pytest.importorskip("music21")
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    names = chorales.chorale_files()[:3]
    monkeypatch.setattr(chorales, "chorale_files", lambda: names)

    first = chorales.load_chorale_melodies(quiet=True)
    path = chorales.cache_path()
    assert path.exists() and path.parent == tmp_path / "chorales"
    doc = json.loads(path.read_text())
    assert doc["music21_version"] == chorales._music21_version()
    assert len(doc["melodies"]) == len(first) == 3

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(chorales, "_parse_all", no_parsing)
    assert chorales.load_chorale_melodies(quiet=True) == first
    assert chorales.load_chorale_melodies(limit=2, quiet=True) == first[:2]

    doc["music21_version"] = "0.0.1"
    path.write_text(json.dumps(doc))
    with pytest.raises(AssertionError, match="cache should have been used"):
        chorales.load_chorale_melodies(quiet=True)  # stale: it tries to parse again


def _full_cache_available():
    try:
        return chorales._read_cache(chorales._music21_version()) is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _full_cache_available(), reason="full chorale cache not built yet")
def test_full_corpus_from_cache():
    _check_full_corpus()


@pytest.mark.slow
def test_full_corpus_parse(tmp_path, monkeypatch, request):
    # About a minute: runs only when slow tests are selected (make test-slow).
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("parses all chorales; select with -m slow")
    pytest.importorskip("music21")
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    chorales.load_chorale_melodies(quiet=True)
    _check_full_corpus()


def _check_full_corpus():
    melodies = chorales.load_chorale_melodies(quiet=True)
    assert len(melodies) > 330
    assert len({m["id"] for m in melodies}) == len(melodies)
    info = chorales.describe()
    assert info["pieces"] == len(melodies)
    assert sum(info["split_pieces"].values()) == len(melodies)
    assert info["vocab_size"] == music.VOCAB_SIZE
    assert info["real_in_key_rate"]["test"] > 0.9
    splits = chorales.load_splits(quiet=True)
    assert len(splits["train"]) == info["train_augmented_examples"]
    assert {music.parse_key(m["key"]) for m in splits["train"]} == {
        music.parse_key(k) for k in music.ALL_KEYS
    }
    key_ids, tokens = chorales.make_examples(splits["test"], chorales.DEFAULT_MAX_LEN)
    assert (tokens == music.EOS).sum() == len(splits["test"])  # nothing truncated
