"""Soprano melodies of the Bach chorales in music21's corpus, labelled with their key.

Source: the chorales of music21's corpus in Riemenschneider's numbering,
``corpus.chorales.Iterator(numberingSystem='riemenschneider',
returnType='filename')``. That list has 371 numbers but only 350 distinct
files (some numbers point at the same file); each file is read once, and a
melody that is note-for-note identical to an earlier one in the same key is
dropped as well. ``corpus.getComposer('bach')`` was not used: it also holds
non-chorale works and several versions of some files.

Melody: the soprano part of each score, i.e. the first part whose name
starts with "Soprano" (16 scores list instrumental parts first), or
``parts[0]`` when no part has such a name (the Humdrum-derived files have
unnamed parts). Tied notes are merged; where the part has two notes at once
(divisi) the higher one is kept; grace notes are dropped; leading and
trailing silence is dropped. Onsets and durations must lie on the
sixteenth-note grid, otherwise the piece is skipped (2 chorales, BWV 36.4-2
and BWV 432). Durations are then fitted to :data:`zoo.music.DURATIONS` with
:func:`zoo.music.quantize_events` (onsets never move; see there).

Key label ("key signature + final bass note", falling back to music21's
analysis): the key signature names a major key and its relative minor; if the
lowest note of the last event of the bass part is the tonic of one of them,
that key is the label. Otherwise (for instance a Phrygian ending, or a minor
key written with one flat fewer than usual) the label is
``score.analyze('key')`` (Krumhansl-Schmuckler on all voices); that happens
for 70 of the 344 melodies. Why not the analysis alone: the two agree on 320
of the 344 and give the same soprano in-key rate (0.988 on average), so that
rate cannot tell them apart; but where they differ, the analysis mostly
names the dominant or the relative key of the key that the signature and the
final chord agree on (e.g. "Es ist genug", BWV 60.5: three sharps, ends on A,
analysed as E major). Both labels are kept in each record (``"key"`` and
``"analyzed_key"``), with ``"key_source"`` saying which rule produced
``"key"``.

Parsing takes about a minute, so the result is cached as JSON in
``data_dir()/chorales/melodies-v1.json`` (written atomically) together with
the music21 version and the encoding constants; the cache is reused only when
both match.

Splits (:func:`split_by_piece`) are made by piece, and pieces that share a hymn
tune (same opening intervals) stay together, so a held-out melody is not a
re-harmonisation of a training melody. Transposition to all keys
(:func:`augment_all_keys`) is meant for the training split only; validation and
test stay in their original keys, so their in-key rate
(:func:`real_in_key_rate`) is the reference for generated melodies.

Nothing is parsed or written at import time; music21 is imported only when
chorales are actually parsed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo import music
from zoo.data.cache import atomic_write_text, data_dir
from zoo.data.splits import split_counts

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_MAX_LEN",
    "FRACTIONS",
    "SPLIT_NAMES",
    "SPLIT_SEED",
    "augment_all_keys",
    "cache_path",
    "chorale_files",
    "describe",
    "load_chorale_melodies",
    "load_splits",
    "make_examples",
    "parse_chorale",
    "real_in_key_rate",
    "split_by_piece",
    "transpose_melody",
    "tune_signature",
]

log = logging.getLogger(__name__)

#: Bumped whenever the extraction rules change; part of the cache file name.
CACHE_VERSION = 1
SPLIT_SEED = 1337
SPLIT_NAMES = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
#: Default sequence length for :func:`make_examples` (tokens per input row).
#: The longest chorale melody has 187 events, so nothing is truncated.
DEFAULT_MAX_LEN = 192
#: Notes (after merging repeated pitches) whose intervals identify a hymn tune.
TUNE_PREFIX = 12

SOURCE = (
    "music21 corpus, Bach chorales: corpus.chorales.Iterator("
    "numberingSystem='riemenschneider', returnType='filename')"
)


class _Skip(Exception):
    """A chorale that cannot be used; the message is the reason."""


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _music21_version() -> str:
    try:
        return metadata.version("music21")
    except metadata.PackageNotFoundError:
        raise ImportError(
            "zoo.data.chorales needs music21 to parse the chorales: "
            "pip install 'music21==10.5.1' (or pip install 'zoo[music]')"
        ) from None


def chorale_files() -> list[str]:
    """Corpus names (``"bach/bwv66.6"``) of the Riemenschneider chorales, each once.

    In the order of the Riemenschneider numbering, a file listed under several
    numbers kept at its first number.
    """
    from music21 import corpus

    names = corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")
    return list(dict.fromkeys(str(name) for name in names))


def _label(part) -> str:
    return " ".join(str(part.partName or part.id or "").split()).lower()


def _soprano_and_bass(score):
    parts = list(score.parts)
    if not parts:
        raise _Skip("no parts")
    soprano_at = next((i for i, p in enumerate(parts) if _label(p).startswith("soprano")), 0)
    later = parts[soprano_at + 1 :]
    bass = next((p for p in later if _label(p).startswith("bass")), parts[-1])
    return parts[soprano_at], bass


def _steps(value: Fraction) -> int:
    steps = value * music.STEPS_PER_QUARTER
    if steps.denominator != 1:
        raise _Skip("rhythm off the sixteenth-note grid")
    return int(steps)


def _soprano_events(part) -> list[tuple]:
    onsets: dict[Fraction, tuple[Fraction, int]] = {}
    for note in part.flatten().stripTies().notes:
        if note.duration.isGrace or note.quarterLength == 0:
            continue
        onset = Fraction(note.offset)
        end = onset + Fraction(note.quarterLength)
        pitch = max(p.midi for p in note.pitches)
        if onset not in onsets or pitch > onsets[onset][1]:
            onsets[onset] = (end, pitch)
    if not onsets:
        raise _Skip("no notes in the soprano part")
    ordered = sorted(onsets.items())
    events, cursor = [], None
    for i, (onset, (end, pitch)) in enumerate(ordered):
        if i + 1 < len(ordered):
            end = min(end, ordered[i + 1][0])
        if cursor is not None and onset > cursor:
            events.append((music.REST, _steps(onset - cursor)))
        events.append((pitch, _steps(end - onset)))
        cursor = end
    return music.quantize_events(events)


def _final_bass_pc(bass) -> int | None:
    notes = list(bass.flatten().notes)
    if not notes:
        return None
    last = max(notes, key=lambda n: n.offset)
    return min(p.midi for p in last.pitches) % 12


def _key_signature_sharps(soprano, score) -> int:
    from music21 import key as m21key

    for stream in (soprano, score):
        found = list(stream.recurse().getElementsByClass(m21key.KeySignature))
        if found:
            return int(found[-1].sharps)
    return 0


def _label_key(score, soprano, bass) -> tuple[str, str, str]:
    """(key, analyzed_key, key_source) of a chorale; see the module docstring."""
    analysis = score.analyze("key")
    if analysis.mode not in music.MODES:
        raise _Skip(f"key analysis returned mode {analysis.mode!r}")
    analyzed = music.key_name(analysis.tonic.pitchClass, analysis.mode)
    sharps = _key_signature_sharps(soprano, score)
    major_pc = (7 * sharps) % 12
    minor_pc = (major_pc + 9) % 12
    final = _final_bass_pc(bass)
    if final == major_pc:
        return music.key_name(major_pc, "major"), analyzed, "signature+final"
    if final == minor_pc:
        return music.key_name(minor_pc, "minor"), analyzed, "signature+final"
    return analyzed, analyzed, "analyzed"


def _piece_id(name: str) -> str:
    return str(name).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".mxl", 1)[0].rsplit(".krn", 1)[0]


def parse_chorale(name: str) -> dict:
    """Parse one chorale of the corpus (``"bach/bwv66.6"``) into a melody record.

    Returns ``{"id", "key", "events", "analyzed_key", "key_source",
    "time_signature", "transposition": 0}``. Raises ``ValueError`` (with the
    reason) for a chorale that cannot be used.
    """
    from music21 import corpus, meter

    try:
        score = corpus.parse(name)
    except Exception as exc:  # music21 raises many kinds of errors
        raise ValueError(f"{name}: parse error ({type(exc).__name__}: {exc})") from exc
    try:
        soprano, bass = _soprano_and_bass(score)
        events = _soprano_events(soprano)
        pitches = [p for p, _ in events if p is not None]
        if min(pitches) < music.PITCH_MIN or max(pitches) > music.PITCH_MAX:
            raise _Skip(
                f"soprano range {music.pitch_name(min(pitches))}..{music.pitch_name(max(pitches))} "
                f"outside {music.pitch_name(music.PITCH_MIN)}..{music.pitch_name(music.PITCH_MAX)}"
            )
        key, analyzed, source = _label_key(score, soprano, bass)
        signatures = list(soprano.recurse().getElementsByClass(meter.TimeSignature))
    except _Skip as exc:
        raise ValueError(f"{name}: {exc}") from None
    return {
        "id": _piece_id(name),
        "key": key,
        "events": events,
        "analyzed_key": analyzed,
        "key_source": source,
        "time_signature": signatures[0].ratioString if signatures else None,
        "transposition": 0,
    }


def _parse_all(names: Sequence[str], quiet: bool, progress_every: int):
    melodies, skipped, duplicates, seen = [], [], [], {}
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        try:
            melody = parse_chorale(name)
        except ValueError as exc:
            skipped.append({"file": str(name), "reason": str(exc).split(": ", 1)[-1]})
            log.info("skipping %s", exc)
        else:
            fingerprint = (melody["key"], tuple(melody["events"]))
            if fingerprint in seen:
                duplicates.append({"id": melody["id"], "same_as": seen[fingerprint]})
            else:
                seen[fingerprint] = melody["id"]
                melodies.append(melody)
        if not quiet and (i % progress_every == 0 or i == len(names)):
            rate = i / max(time.perf_counter() - start, 1e-9)
            print(
                f"chorales: parsed {i}/{len(names)} ({rate:.1f} pieces/s), "
                f"{len(melodies)} kept, {len(skipped)} skipped",
                file=sys.stderr,
                flush=True,
            )
    seconds = time.perf_counter() - start
    if skipped:
        log.warning("chorales: skipped %d of %d files", len(skipped), len(names))
    return melodies, skipped, duplicates, seconds


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------


def cache_path() -> Path:
    """``data_dir()/chorales/melodies-v1.json``."""
    return data_dir() / "chorales" / f"melodies-v{CACHE_VERSION}.json"


def _read_cache(m21_version: str) -> dict | None:
    path = cache_path()
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("chorales: ignoring unreadable cache %s (%s)", path, exc)
        return None
    if not isinstance(doc, dict):
        return None
    expected = {
        "cache_version": CACHE_VERSION,
        "music21_version": m21_version,
        "encoding": music.encoding_spec(),
    }
    if m21_version is None:  # music21 is not installed: any parse of the same encoding serves
        del expected["music21_version"]
    for field, value in expected.items():
        if doc.get(field) != value:
            log.info("chorales: cache %s is stale (%s differs); parsing again", path, field)
            return None
    return doc


def _from_json(record: dict) -> dict:
    melody = dict(record)
    melody["events"] = [(p, int(d)) for p, d in record["events"]]
    return melody


def _load_doc(refresh: bool = False, quiet: bool = False, progress_every: int = 25) -> dict:
    try:
        version = _music21_version()
    except ImportError:
        # Without music21 nothing can be parsed, but melodies parsed earlier still serve.
        doc = None if refresh else _read_cache(None)
        if doc is not None:
            return doc
        raise
    doc = None if refresh else _read_cache(version)
    if doc is not None:
        return doc
    names = chorale_files()
    if not quiet:
        print(
            f"chorales: parsing {len(names)} chorales with music21 {version} "
            f"(once; cached in {cache_path()})",
            file=sys.stderr,
            flush=True,
        )
    melodies, skipped, duplicates, seconds = _parse_all(names, quiet, progress_every)
    doc = {
        "cache_version": CACHE_VERSION,
        "music21_version": version,
        "encoding": music.encoding_spec(),
        "source": SOURCE,
        "n_files": len(names),
        "parse_seconds": round(seconds, 1),
        "skipped": skipped,
        "duplicates": duplicates,
        "melodies": [
            {**m, "events": [[p, d] for p, d in m["events"]]} for m in melodies
        ],
    }
    atomic_write_text(cache_path(), json.dumps(doc, separators=(",", ":")) + "\n")
    return doc


def load_chorale_melodies(
    limit: int | None = None,
    *,
    quiet: bool = False,
    refresh: bool = False,
    progress_every: int = 25,
) -> list[dict]:
    """Soprano melodies of the Bach chorales, each with its key label.

    Args:
        limit: only the first ``limit`` chorales (in Riemenschneider order).
            If the full cache exists they are read from it; otherwise only
            these are parsed and nothing is written (for quick tests).
        quiet: do not print parsing progress (to stderr) when parsing.
        refresh: parse again even if a valid cache exists.
        progress_every: print progress after this many pieces.

    Returns:
        A list of dicts ``{"id": "bwv66.6", "key": "F# minor", "events":
        [(pitch | None, steps), ...], "analyzed_key", "key_source",
        "time_signature", "transposition": 0}``.
    """
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        doc = None if refresh else _read_cache(_music21_version())
        if doc is None:
            melodies, _, _, _ = _parse_all(chorale_files()[:limit], quiet, progress_every)
            return melodies
        # The cache holds the files in order, minus skipped and duplicate ones.
        return [_from_json(r) for r in doc["melodies"][:limit]]
    doc = _load_doc(refresh=refresh, quiet=quiet, progress_every=progress_every)
    return [_from_json(r) for r in doc["melodies"]]


# --------------------------------------------------------------------------
# Splits, transposition, examples
# --------------------------------------------------------------------------


def tune_signature(melody: dict, prefix: int = TUNE_PREFIX) -> tuple:
    """Intervals between the first ``prefix`` distinct successive pitches.

    Independent of key and rhythm, so two harmonisations of one hymn tune
    usually share it.
    """
    pitches = []
    for pitch, _ in melody["events"]:
        if pitch is not None and (not pitches or pitch != pitches[-1]):
            pitches.append(pitch)
            if len(pitches) == prefix:
                break
    return tuple(b - a for a, b in zip(pitches, pitches[1:]))


def split_by_piece(
    melodies: Sequence[dict],
    fractions: Sequence[float] = FRACTIONS,
    seed: int = SPLIT_SEED,
    group_tunes: bool = True,
) -> dict[str, list[dict]]:
    """Deterministic train/validation/test split in which no piece id is in two splits.

    Pieces are grouped (all records with one ``"id"`` form a group, so
    transposed copies follow their original; with ``group_tunes`` pieces with
    the same :func:`tune_signature` join one group too). Groups are ordered by
    their smallest id, shuffled with ``numpy.random.default_rng(seed)`` and
    dealt out in that order so that the number of pieces in each split is as
    close as groups allow to :func:`zoo.data.splits.split_counts`. The result
    depends only on the set of melodies, ``fractions`` and ``seed``, not on
    the input order; within a split the input order is kept.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}`` (for three
        fractions; names beyond three are ``"split3"``, ...).
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    names = list(SPLIT_NAMES[: len(fractions)]) + [
        f"split{i}" for i in range(len(SPLIT_NAMES), len(fractions))
    ]

    ids = sorted({m["id"] for m in melodies})
    parent = {i: i for i in ids}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if group_tunes:
        by_tune: dict[tuple, str] = {}
        for melody in sorted(melodies, key=lambda m: m["id"]):
            signature = tune_signature(melody)
            if len(signature) < 4:  # too short to identify a tune
                continue
            if signature in by_tune:
                a, b = find(by_tune[signature]), find(melody["id"])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                by_tune[signature] = melody["id"]

    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: g[0])
    order = np.random.default_rng(seed).permutation(len(ordered))

    bounds = np.cumsum(split_counts(len(ids), fractions))
    assignment, dealt = {}, 0
    for g in order:
        group = ordered[g]
        # The split whose target range contains the middle of this group.
        middle = dealt + len(group) / 2
        split = int(min(np.searchsorted(bounds, middle, side="right"), len(fractions) - 1))
        for i in group:
            assignment[i] = split
        dealt += len(group)

    result = {name: [] for name in names}
    for melody in melodies:
        result[names[assignment[melody["id"]]]].append(melody)
    return result


def transpose_melody(melody: dict, semitones: int) -> dict | None:
    """A copy of ``melody`` moved by ``semitones``, with its key label moved too.

    The key keeps its mode and gets the canonical name of the new tonic
    (``"F# minor"`` + 4 = ``"Bb minor"``); ``"analyzed_key"`` follows, and
    ``"transposition"`` accumulates. Returns ``None`` if a note would leave
    ``PITCH_MIN..PITCH_MAX``.
    """
    semitones = int(semitones)
    events = music.transpose_events(melody["events"], semitones)
    pitches = [p for p, _ in events if p is not None]
    if pitches and (min(pitches) < music.PITCH_MIN or max(pitches) > music.PITCH_MAX):
        return None
    moved = dict(melody)
    moved["events"] = events
    moved["key"] = music.transpose_key(melody["key"], semitones)
    if melody.get("analyzed_key"):
        moved["analyzed_key"] = music.transpose_key(melody["analyzed_key"], semitones)
    moved["transposition"] = int(melody.get("transposition", 0)) + semitones
    return moved


def augment_all_keys(melodies: Sequence[dict]) -> list[dict]:
    """Every melody in (up to) all 12 transpositions that fit the pitch range.

    For each pitch-class shift the interval in -6..+5 semitones is tried
    first, then the same shift an octave the other way (e.g. +7 when -5 does
    not fit); each melody thus appears at most once per key, its original
    (shift 0) included and listed first. Use it on the training split only.
    """
    out = []
    for melody in melodies:
        for shift in range(12):
            near = (shift + 6) % 12 - 6  # in -6..+5
            far = near + 12 if near < 0 else near - 12
            for semitones in (near, far) if near else (0,):
                moved = transpose_melody(melody, semitones)
                if moved is not None:
                    out.append(moved)
                    break
    return out


def make_examples(melodies: Sequence[dict], max_len: int = DEFAULT_MAX_LEN):
    """Arrays for teacher forcing: key ids and ``BOS + events + EOS`` token rows.

    Args:
        melodies: melody records (any keys; e.g. augmented).
        max_len: tokens per model input row. Rows hold ``max_len + 1``
            tokens so that ``tokens[:, :-1]`` is the input and ``tokens[:, 1:]``
            the target. Shorter melodies are padded with :data:`zoo.music.PAD`
            after EOS; a melody with more than ``max_len - 1`` events is
            truncated to its first ``max_len`` events and loses its EOS (a
            warning says how many). There is no windowing: every row starts at
            the beginning of a melody, as generation does.

    Returns:
        ``(key_ids, tokens)``: ``int32 [N]`` (see :func:`zoo.music.key_index`)
        and ``int32 [N, max_len + 1]``.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
    key_ids = np.zeros(len(melodies), np.int32)
    tokens = np.full((len(melodies), max_len + 1), music.PAD, np.int32)
    truncated = 0
    for row, melody in enumerate(melodies):
        key_ids[row] = music.key_index(melody["key"])
        sequence = music.encode_events(melody["events"], bos_eos=True)
        if len(sequence) > max_len + 1:
            sequence = sequence[: max_len + 1]
            truncated += 1
        tokens[row, : len(sequence)] = sequence
    if truncated:
        log.warning(
            "make_examples: %d of %d melodies longer than max_len=%d were truncated (no EOS)",
            truncated,
            len(melodies),
            max_len,
        )
    return key_ids, tokens


def real_in_key_rate(melodies: Sequence[dict]) -> float:
    """Mean over melodies of the share of notes in the melody's own labelled key.

    The reference for generated melodies (see :func:`zoo.music.in_key_rate`).
    Melodies without notes are ignored; ``nan`` for an empty list.
    """
    rates = [music.in_key_rate(m["events"], m["key"]) for m in melodies]
    rates = [r for r in rates if not np.isnan(r)]
    return float(np.mean(rates)) if rates else float("nan")


def load_splits(
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = FRACTIONS,
    augment_train: bool = True,
    quiet: bool = False,
) -> dict[str, list[dict]]:
    """Load (or parse once) the melodies, split them by piece, augment the training split.

    Only ``"train"`` is transposed to all keys (:func:`augment_all_keys`);
    ``"validation"`` and ``"test"`` keep the original keys.
    """
    splits = split_by_piece(load_chorale_melodies(quiet=quiet), fractions=fractions, seed=seed)
    if augment_train:
        splits["train"] = augment_all_keys(splits["train"])
    return splits


def describe(seed: int = SPLIT_SEED, fractions: Sequence[float] = FRACTIONS, quiet: bool = True) -> dict:
    """Facts about the data for a model card (parses the corpus if not cached)."""
    doc = _load_doc(quiet=quiet)
    melodies = [_from_json(r) for r in doc["melodies"]]
    splits = split_by_piece(melodies, fractions=fractions, seed=seed)
    augmented = augment_all_keys(splits["train"])
    keys: dict[str, int] = {}
    for m in melodies:
        keys[m["key"]] = keys.get(m["key"], 0) + 1
    lengths = [len(m["events"]) for m in melodies]
    spec = music.encoding_spec()
    return {
        "source": doc["source"],
        "music21_version": doc["music21_version"],
        "files": doc["n_files"],
        "pieces": len(melodies),
        "skipped": len(doc["skipped"]),
        "skip_reasons": sorted({s["reason"] for s in doc["skipped"]}),
        "duplicates_dropped": len(doc["duplicates"]),
        "parse_seconds": doc["parse_seconds"],
        "key_method": "key signature + final bass note, else music21 analyze('key')",
        "key_sources": {
            s: sum(m["key_source"] == s for m in melodies) for s in ("signature+final", "analyzed")
        },
        "keys": dict(sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))),
        "major_pieces": sum(m["key"].endswith("major") for m in melodies),
        "minor_pieces": sum(m["key"].endswith("minor") for m in melodies),
        "events_per_piece": {
            "min": int(min(lengths)),
            "median": float(np.median(lengths)),
            "max": int(max(lengths)),
        },
        "split_seed": seed,
        "split_fractions": list(fractions),
        "split_rule": "by piece, pieces sharing a hymn tune kept together",
        "split_pieces": {name: len(part) for name, part in splits.items()},
        "train_augmented_examples": len(augmented),
        "augmentation": "train split only: all 12 transpositions inside the pitch range",
        "grid": spec["grid"],
        "steps_per_quarter": spec["steps_per_quarter"],
        "durations": spec["durations"],
        "pitch_range": [spec["pitch_min"], spec["pitch_max"]],
        "pitch_range_names": spec["pitch_range"],
        "vocab_size": spec["vocab_size"],
        "special_tokens": spec["special_tokens"],
        "real_in_key_rate": {name: real_in_key_rate(part) for name, part in splits.items()},
    }
