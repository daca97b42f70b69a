"""Music utilities: keys, a note-event token encoding, MIDI files and piano rolls.

A melody is a list of *events* ``(pitch, duration)``:

* ``pitch`` is a MIDI note number (60 = middle C) or :data:`REST` (``None``);
* ``duration`` is a whole number of grid steps. The grid is the sixteenth
  note: a quarter note is :data:`STEPS_PER_QUARTER` = 4 steps.

For a model, every event becomes one integer token (see :func:`encode_events`):

* three special tokens come first: :data:`PAD` = 0, :data:`BOS` = 1, :data:`EOS` = 2;
* then ``NUM_SPECIAL + pitch_index * len(DURATIONS) + duration_index``, where
  ``pitch_index`` 0 is the rest and ``1 + (pitch - PITCH_MIN)`` a pitch of the
  fixed range :data:`PITCH_MIN`..:data:`PITCH_MAX`, and ``duration_index`` is
  the position of the duration in :data:`DURATIONS`.

Durations outside :data:`DURATIONS` are made to fit by :func:`quantize_events`
(a note keeps the longest allowed duration that does not exceed its own and
the remaining time becomes a rest, so the onsets of later notes never move).

Keys are written ``"<tonic> <mode>"`` (``"G major"``, ``"F# minor"``); the 24
canonical names are in :data:`ALL_KEYS`.

Importing this module loads only numpy. ``mido`` (MIDI files) and matplotlib
(piano rolls) are imported by the functions that need them.
"""

from __future__ import annotations

import io
import math
import re
from typing import Iterable

import numpy as np

__all__ = [
    "ALL_KEYS",
    "BOS",
    "DURATIONS",
    "EOS",
    "MODES",
    "NUM_KEYS",
    "NUM_SPECIAL",
    "PAD",
    "PITCH_MAX",
    "PITCH_MIN",
    "REST",
    "STEPS_PER_QUARTER",
    "TICKS_PER_BEAT",
    "TICKS_PER_STEP",
    "VOCAB_SIZE",
    "decode_tokens",
    "encode_events",
    "encoding_spec",
    "event_to_token",
    "events_to_midi",
    "in_key_rate",
    "is_event_token",
    "key_from_index",
    "key_index",
    "key_name",
    "midi_to_events",
    "parse_key",
    "piano_roll_png",
    "pitch_name",
    "quantize_events",
    "scale_pitch_classes",
    "token_to_event",
    "total_steps",
    "transpose_events",
    "transpose_key",
]

# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------

MODES = ("major", "minor")

_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "#": 1, "\u266f": 1, "b": -1, "\u266d": -1}

# Conventional spelling: the tonic whose key signature has the fewest
# accidentals. The two six-accidental keys are spelled F# major and Eb minor.
_MAJOR_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

_KEY_RE = re.compile(r"^([A-Ga-g])([#b\u266f\u266d]?)\s+([A-Za-z]+)$")
_EXPECTED_KEY_FORM = (
    "expected '<tonic> <major|minor>' with a tonic letter A-G and an optional "
    "'#' or 'b', e.g. 'G major', 'F# minor', 'Bb major'"
)

#: The 24 canonical key names: the 12 major keys by tonic pitch class
#: (C major first), then the 12 minor keys. ``ALL_KEYS[key_index(k)] == k``.
ALL_KEYS = [f"{t} major" for t in _MAJOR_TONICS] + [f"{t} minor" for t in _MINOR_TONICS]
NUM_KEYS = len(ALL_KEYS)

_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
# Natural (0 2 3 5 7 8 10), harmonic (adds 11) and melodic (adds 9, 11) minor.
_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 9, 10, 11)


def parse_key(text) -> tuple[int, str]:
    """Parse a key name into ``(tonic_pitch_class, mode)``.

    Args:
        text: ``"<tonic> <mode>"``: a tonic letter A-G (either case) with an
            optional sharp (``#`` or ``♯``) or flat (``b`` or ``♭``), white
            space, then ``major`` or ``minor`` (either case). Surrounding
            white space is ignored. Enharmonic spellings are accepted
            (``"A# minor"`` is the same key as ``"Bb minor"``).

    Returns:
        ``(pc, mode)`` with ``pc`` in 0..11 (C = 0) and ``mode`` ``"major"``
        or ``"minor"``.

    Raises:
        ValueError: for anything else (``"H major"``, ``""``, ``"C dorian"``,
            ``"C"``, ``None``, a number, ...). The message repeats what was
            received and states the expected form.

    Example:
        >>> parse_key("F# minor")
        (6, 'minor')
        >>> parse_key("Bb major")
        (10, 'major')
    """
    if not isinstance(text, str):
        raise ValueError(
            f"key must be a string, got {text!r} ({type(text).__name__}); {_EXPECTED_KEY_FORM}"
        )
    match = _KEY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"invalid key {text!r}: {_EXPECTED_KEY_FORM}")
    letter, accidental, mode = match.groups()
    mode = mode.lower()
    if mode not in MODES:
        raise ValueError(
            f"invalid key {text!r}: unsupported mode {match.group(3)!r} "
            f"(only 'major' and 'minor'); {_EXPECTED_KEY_FORM}"
        )
    pc = (_LETTER_PC[letter.upper()] + _ACCIDENTAL[accidental]) % 12
    return pc, mode


def _check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")
    return mode


def _check_pc(tonic_pc) -> int:
    if isinstance(tonic_pc, (bool, np.bool_)) or not isinstance(tonic_pc, (int, np.integer)):
        raise ValueError(f"tonic_pc must be an integer pitch class, got {tonic_pc!r}")
    return int(tonic_pc) % 12


def key_name(tonic_pc: int, mode: str) -> str:
    """The canonical name of a key, e.g. ``key_name(6, "minor") == "F# minor"``.

    Spelling is fixed per key: the tonic with the fewest accidentals in its
    key signature (Db major rather than C# major, G# minor rather than Ab
    minor); the six-accidental keys are "F# major" and "Eb minor".
    ``tonic_pc`` is taken modulo 12.
    """
    pc = _check_pc(tonic_pc)
    tonics = _MAJOR_TONICS if _check_mode(mode) == "major" else _MINOR_TONICS
    return f"{tonics[pc]} {mode}"


def _as_key(key) -> tuple[int, str]:
    """Accept a key name or a ``(pc, mode)`` pair."""
    if isinstance(key, str):
        return parse_key(key)
    if isinstance(key, tuple) and len(key) == 2:
        return _check_pc(key[0]), _check_mode(key[1])
    raise ValueError(f"key must be a name like 'G major' or a (pc, mode) pair, got {key!r}")


def key_index(name) -> int:
    """Index 0..23 of a key: major keys 0..11 by tonic pitch class, minor 12..23.

    Any accepted spelling works (``key_index("A# minor") == key_index("Bb minor")``).
    The inverse is :func:`key_from_index`.
    """
    pc, mode = _as_key(name)
    return pc + (0 if mode == "major" else 12)


def key_from_index(index: int) -> str:
    """Canonical key name for an index 0..23 (inverse of :func:`key_index`)."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"key index must be an integer in 0..23, got {index!r}")
    if not 0 <= int(index) < NUM_KEYS:
        raise ValueError(f"key index must be in 0..23, got {index}")
    return ALL_KEYS[int(index)]


def transpose_key(key, semitones: int) -> str:
    """Canonical name of ``key`` moved by ``semitones`` (the mode is kept)."""
    pc, mode = _as_key(key)
    return key_name((pc + int(semitones)) % 12, mode)


def scale_pitch_classes(tonic_pc: int, mode: str) -> frozenset[int]:
    """Pitch classes that count as "in the key".

    Major: the seven notes of the major scale. Minor: the union of the
    natural, harmonic and melodic minor scales (nine pitch classes: both the
    lowered and the raised sixth and seventh degrees), since minor-key melodies
    use all of them.

    Example:
        >>> sorted(scale_pitch_classes(0, "major"))
        [0, 2, 4, 5, 7, 9, 11]
    """
    pc = _check_pc(tonic_pc)
    steps = _MAJOR_STEPS if _check_mode(mode) == "major" else _MINOR_STEPS
    return frozenset((pc + s) % 12 for s in steps)


def in_key_rate(pitches: Iterable, key) -> float:
    """Share of the sounding notes whose pitch class belongs to ``key``.

    Args:
        pitches: MIDI numbers, or events ``(pitch, duration)``; rests
            (``None``) are ignored. Every note counts once, whatever its length.
        key: a key name (``"G major"``) or a ``(pc, mode)`` pair.

    Returns:
        A float in [0, 1]; ``nan`` when there is no note at all.
    """
    pc, mode = _as_key(key)
    allowed = scale_pitch_classes(pc, mode)
    total = hits = 0
    for item in pitches:
        pitch = item[0] if isinstance(item, (tuple, list)) else item
        if pitch is None:
            continue
        total += 1
        hits += int(pitch) % 12 in allowed
    return hits / total if total else math.nan


# --------------------------------------------------------------------------
# Events and tokens
# --------------------------------------------------------------------------

#: The pitch of a rest event.
REST = None
#: Grid steps per quarter note: the grid is the sixteenth note.
STEPS_PER_QUARTER = 4
#: Allowed event durations in grid steps: sixteenth, eighth, dotted eighth,
#: quarter, dotted quarter, half, dotted half, whole. Together they cover
#: 99.9 % of the notes of the Bach chorale soprano lines.
DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)
#: Lowest and highest encodable MIDI pitch (G3..D6). The chorale soprano lines
#: span A3..A5 (57..81; all but one stay within C4..A5) and at most 17
#: semitones each, so every chorale fits in this range in all 12 keys.
PITCH_MIN = 55
PITCH_MAX = 86

PAD = 0
BOS = 1
EOS = 2
NUM_SPECIAL = 3

_N_DUR = len(DURATIONS)
_N_PITCH_SLOTS = 1 + (PITCH_MAX - PITCH_MIN + 1)  # slot 0 is the rest
#: Number of distinct tokens (specials included).
VOCAB_SIZE = NUM_SPECIAL + _N_PITCH_SLOTS * _N_DUR
_DUR_INDEX = {d: i for i, d in enumerate(DURATIONS)}

_NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def encoding_spec() -> dict:
    """The encoding constants as plain data (for caches and model cards)."""
    return {
        "grid": "sixteenth note",
        "steps_per_quarter": STEPS_PER_QUARTER,
        "durations": list(DURATIONS),
        "pitch_min": PITCH_MIN,
        "pitch_max": PITCH_MAX,
        "pitch_range": f"{pitch_name(PITCH_MIN)}..{pitch_name(PITCH_MAX)}",
        "special_tokens": {"PAD": PAD, "BOS": BOS, "EOS": EOS},
        "vocab_size": VOCAB_SIZE,
        "token": "NUM_SPECIAL + pitch_index * len(durations) + duration_index "
        "(pitch_index 0 = rest, 1 + pitch - pitch_min otherwise)",
    }


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number: ``pitch_name(60) == "C4"``."""
    pitch = int(pitch)
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _check_steps(value, what="duration") -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be a positive whole number of grid steps, got {value!r}")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive whole number of grid steps, got {value!r}")
    return int(value)


def _check_pitch(pitch):
    if pitch is None:
        return None
    if isinstance(pitch, (bool, np.bool_)) or not isinstance(pitch, (int, np.integer)):
        raise ValueError(f"pitch must be a MIDI number or None (rest), got {pitch!r}")
    if not 0 <= pitch <= 127:
        raise ValueError(f"pitch must be a MIDI number in 0..127, got {pitch}")
    return int(pitch)


def _normalize(events) -> list[tuple]:
    out = []
    for i, event in enumerate(events):
        try:
            pitch, duration = event
        except (TypeError, ValueError):
            raise ValueError(f"event {i} must be a (pitch, duration) pair, got {event!r}") from None
        out.append((_check_pitch(pitch), _check_steps(duration, f"duration of event {i}")))
    return out


def total_steps(events) -> int:
    """Length of a melody in grid steps."""
    return sum(d for _, d in _normalize(events))


def _split_rest(steps: int) -> list[int]:
    parts = []
    for d in reversed(DURATIONS):
        while steps >= d:
            parts.append(d)
            steps -= d
    return parts


def quantize_events(events) -> list[tuple]:
    """Make every duration one of :data:`DURATIONS`, keeping all onsets in place.

    * A note longer than, or between, allowed values keeps the longest allowed
      duration not above its own; the rest of its time becomes silence
      (a 5-step note becomes a 4-step note and a 1-step rest, a 24-step final
      note a whole note and a half rest). Notes are never re-struck.
    * Adjacent rests are merged, then written as a sum of allowed durations,
      longest first.

    Durations must already be whole grid steps (no rounding happens here).
    Quantizing quantized events changes nothing.
    """
    out: list[tuple] = []
    pending_rest = 0

    def flush():
        nonlocal pending_rest
        out.extend((REST, d) for d in _split_rest(pending_rest))
        pending_rest = 0

    for pitch, duration in _normalize(events):
        if pitch is None:
            pending_rest += duration
            continue
        flush()
        kept = max(d for d in DURATIONS if d <= duration)
        out.append((pitch, kept))
        pending_rest += duration - kept
    flush()
    return out


def transpose_events(events, semitones: int) -> list[tuple]:
    """Events with every pitch moved by ``semitones`` (rests unchanged)."""
    semitones = int(semitones)
    return [(None if p is None else p + semitones, d) for p, d in _normalize(events)]


def event_to_token(pitch, duration: int) -> int:
    """Token of one event; raises ``ValueError`` if it is not encodable."""
    pitch = _check_pitch(pitch)
    duration = _check_steps(duration)
    if duration not in _DUR_INDEX:
        raise ValueError(
            f"duration {duration} is not in DURATIONS {DURATIONS}; run quantize_events() first"
        )
    if pitch is None:
        slot = 0
    elif PITCH_MIN <= pitch <= PITCH_MAX:
        slot = 1 + pitch - PITCH_MIN
    else:
        raise ValueError(
            f"pitch {pitch} ({pitch_name(pitch)}) is outside the encodable range "
            f"{PITCH_MIN}..{PITCH_MAX} ({pitch_name(PITCH_MIN)}..{pitch_name(PITCH_MAX)})"
        )
    return NUM_SPECIAL + slot * _N_DUR + _DUR_INDEX[duration]


def is_event_token(token: int) -> bool:
    """True for tokens that stand for an event (not PAD/BOS/EOS)."""
    return NUM_SPECIAL <= int(token) < VOCAB_SIZE


def token_to_event(token: int) -> tuple:
    """The event ``(pitch | None, duration)`` of an event token."""
    token = int(token)
    if not is_event_token(token):
        raise ValueError(f"token {token} is not an event token ({NUM_SPECIAL}..{VOCAB_SIZE - 1})")
    slot, dur_index = divmod(token - NUM_SPECIAL, _N_DUR)
    pitch = None if slot == 0 else PITCH_MIN + slot - 1
    return pitch, DURATIONS[dur_index]


def encode_events(events, bos_eos: bool = False) -> list[int]:
    """Tokens of a melody, one per event.

    Args:
        events: ``(pitch | None, duration)`` pairs with durations in
            :data:`DURATIONS` and pitches in ``PITCH_MIN..PITCH_MAX`` (use
            :func:`quantize_events` first for arbitrary durations).
        bos_eos: wrap the tokens in :data:`BOS` ... :data:`EOS`.

    Raises:
        ValueError: an event that cannot be encoded (the message says which).
    """
    tokens = [event_to_token(p, d) for p, d in _normalize(events)]
    return [BOS, *tokens, EOS] if bos_eos else tokens


def decode_tokens(tokens: Iterable[int]) -> list[tuple]:
    """Events of a token sequence: PAD and BOS are skipped, EOS ends the melody.

    Accepts lists or 1-D integer arrays (e.g. a model's sampled output).
    Raises ``ValueError`` for a token outside ``0..VOCAB_SIZE - 1``.
    """
    events = []
    for token in np.asarray(tokens, dtype=np.int64).reshape(-1).tolist():
        if token == EOS:
            break
        if token in (PAD, BOS):
            continue
        if not 0 <= token < VOCAB_SIZE:
            raise ValueError(f"token {token} is outside the vocabulary 0..{VOCAB_SIZE - 1}")
        events.append(token_to_event(token))
    return events


# --------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------

#: MIDI resolution used for written files: 480 ticks per quarter note,
#: so one sixteenth-note grid step is 120 ticks.
TICKS_PER_BEAT = 480
TICKS_PER_STEP = TICKS_PER_BEAT // STEPS_PER_QUARTER


def _atomic_write_bytes(path, data: bytes):
    from zoo.data.cache import atomic_write_bytes

    return atomic_write_bytes(path, data)


def events_to_midi(
    events,
    path,
    tempo_bpm: float = 90.0,
    program: int = 0,
    velocity: int = 80,
    track_name: str | None = None,
):
    """Write a melody as a one-track MIDI file (type 1), atomically.

    Each grid step is :data:`TICKS_PER_STEP` = 120 ticks at
    :data:`TICKS_PER_BEAT` = 480 ticks per quarter note. Rests, including
    leading and trailing ones, are kept as silence (a trailing rest moves the
    end-of-track marker). The file is written to a temporary name in the same
    directory and renamed over ``path``, so a reader never sees half a file.

    Args:
        events: ``(pitch | None, duration)`` pairs; any MIDI pitch 0..127 and
            any positive whole number of steps.
        path: the ``.mid`` file to write.
        tempo_bpm: quarter notes per minute.
        program: General MIDI program, 0..127 (0 = acoustic grand piano).
        velocity: note-on velocity, 1..127.
        track_name: optional track name meta message.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    import mido

    events = _normalize(events)
    if not (isinstance(tempo_bpm, (int, float)) and 0 < tempo_bpm <= 1000):
        raise ValueError(f"tempo_bpm must be a number in (0, 1000], got {tempo_bpm!r}")
    if not (isinstance(program, (int, np.integer)) and 0 <= program <= 127):
        raise ValueError(f"program must be an integer in 0..127, got {program!r}")
    if not (isinstance(velocity, (int, np.integer)) and 1 <= velocity <= 127):
        raise ValueError(f"velocity must be an integer in 1..127, got {velocity!r}")

    track = mido.MidiTrack()
    if track_name:
        track.append(mido.MetaMessage("track_name", name=str(track_name), time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=int(program), channel=0, time=0))
    delay = 0  # ticks since the last written message
    for pitch, duration in events:
        ticks = duration * TICKS_PER_STEP
        if pitch is None:
            delay += ticks
            continue
        track.append(mido.Message("note_on", note=pitch, velocity=int(velocity), channel=0, time=delay))
        track.append(mido.Message("note_off", note=pitch, velocity=0, channel=0, time=ticks))
        delay = 0
    track.append(mido.MetaMessage("end_of_track", time=delay))

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return _atomic_write_bytes(path, buffer.getvalue())


def midi_to_events(path) -> list[tuple]:
    """Read a monophonic MIDI file back into events on the sixteenth grid.

    All tracks and channels are merged. Times are rounded to the nearest grid
    step (so files written by :func:`events_to_midi` come back exactly). If a
    note starts while another still sounds, the earlier one is cut there
    (the line is kept monophonic). Silences become rest events, including a
    trailing one up to the end of the track. Durations are returned as whole
    steps without :func:`quantize_events`.
    """
    import mido

    midi = mido.MidiFile(path)
    per_beat = midi.ticks_per_beat

    def to_steps(ticks: int) -> int:
        return int(round(ticks * STEPS_PER_QUARTER / per_beat))

    notes = []  # (onset, end, pitch) in ticks
    sounding = {}  # pitch -> onset
    now = 0
    for message in mido.merge_tracks(midi.tracks):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            for other, onset in list(sounding.items()):
                notes.append((onset, now, other))
                del sounding[other]
            sounding[message.note] = now
        elif message.type in ("note_off", "note_on") and message.note in sounding:
            notes.append((sounding.pop(message.note), now, message.note))
    for pitch, onset in sounding.items():
        notes.append((onset, now, pitch))
    notes.sort()

    events = []
    cursor = 0  # in steps
    for onset, end, pitch in notes:
        start, stop = to_steps(onset), to_steps(end)
        if stop <= start:
            continue
        if start < cursor:  # overlap left after rounding: keep the line monophonic
            start = cursor
            if stop <= start:
                continue
        if start > cursor:
            events.append((REST, start - cursor))
        events.append((pitch, stop - start))
        cursor = stop
    final = to_steps(now)
    if final > cursor:
        events.append((REST, final - cursor))
    return events


# --------------------------------------------------------------------------
# Piano roll
# --------------------------------------------------------------------------


def piano_roll_png(events, path, title: str | None = None, dpi: int = 100):
    """Draw a melody as a piano roll (time in quarter notes on x, pitch on y).

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed)
    and writes the PNG atomically. Returns ``path`` as a :class:`pathlib.Path`.
    """
    from zoo.figures import new_figure, write_png

    events = _normalize(events)
    notes, time = [], 0
    for pitch, duration in events:
        if pitch is not None:
            notes.append((time / STEPS_PER_QUARTER, duration / STEPS_PER_QUARTER, pitch))
        time += duration
    length = max(time / STEPS_PER_QUARTER, 1.0)

    width = min(max(6.0, length * 0.18), 30.0)
    fig = new_figure(width, 4.0, dpi)
    ax = fig.add_subplot(1, 1, 1)
    if notes:
        low = min(p for _, _, p in notes) - 2
        high = max(p for _, _, p in notes) + 2
    else:
        low, high = 58, 74
    for start, duration, pitch in notes:
        ax.broken_barh([(start, duration * 0.95)], (pitch - 0.4, 0.8), facecolors="tab:blue")
    ax.set_xlim(0, length)
    ax.set_ylim(low - 0.5, high + 0.5)
    ticks = [p for p in range(low, high + 1) if p % 12 in (0, 4, 7)]
    ax.set_yticks(ticks)
    ax.set_yticklabels([pitch_name(p) for p in ticks])
    ax.set_xlabel("time (quarter notes)")
    ax.set_ylabel("pitch")
    ax.grid(True, axis="x", alpha=0.3)
    for p in range(low, high + 1):
        if p % 12 in (1, 3, 6, 8, 10):  # black keys shaded
            ax.axhspan(p - 0.5, p + 0.5, color="0.93", zorder=0)
    if title:
        ax.set_title(str(title))
    return write_png(fig, path)
