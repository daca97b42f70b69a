"""A polyphonic piano roll of the Bach chorales in music21's corpus (for experiment 5).

Chung et al. (2014) modelled the JSB Chorales of Boulanger-Lewandowski et
al. (2012): 88 binary keys per frame, one frame per quarter note. That file
is not in our data; this module rebuilds a set like it from the chorales the
zoo already reads (`zoo.data.chorales.chorale_files`: music21's
Riemenschneider list, 350 distinct files for 371 numbers).

* Voices: the four vocal parts, i.e. the parts whose name starts with
  Soprano, Alto, Tenor or Bass (scores that also list instruments keep
  only those), or all parts of a score with exactly four unnamed parts (the
  Humdrum files). A score with neither is skipped.
* Frames: one per quarter note (`FRAMES_PER_QUARTER`), from the start of
  the score to its end. A key is on in frame f when one of the voices
  sounds it at the frame's start (time f quarters); notes that begin and
  end between two frame starts (passing eighths) leave no trace, as in the
  quarter-note JSB set. Keys are MIDI 21 (A0) to 108 (C8).
* Duplicates: a chorale whose roll equals an earlier one's is dropped.
* Split: by chorale, shuffled with `SPLIT_SEED`, 60 / 20 / 20 % (about the
  proportions of JSB's 229 / 76 / 77).

Parsing takes seconds to a minute, so the rolls are cached in
`zoo.data.cache.data_dir()/lab/` (written atomically), together with the
music21 version; a cache written by another version is rebuilt.
"""

from __future__ import annotations

import io
import math
import time
from importlib import metadata

import numpy as np

from zoo.data.cache import atomic_write_bytes, data_dir
from zoo.data.splits import split_counts

CACHE_VERSION = 1
FRAMES_PER_QUARTER = 1
LOWEST_KEY, KEYS = 21, 88
VOICES = ("soprano", "alto", "tenor", "bass")
SPLIT_SEED = 2014
FRACTIONS = (0.6, 0.2, 0.2)


def _first_word(part):
    words = str(part.partName or "").strip().lower().split()
    return words[0] if words else ""


def _voices(score):
    """The four vocal parts of a score, or None."""
    parts = list(score.parts)
    named = [p for p in parts if _first_word(p) in VOICES]
    if len(named) == 4:
        return named
    if len(parts) == 4 and not named:
        return parts
    return None


def chorale_roll(score):
    """`(frames, 88)` uint8 piano roll of the vocal parts of a music21 score, or None (no four voices)."""
    voices = _voices(score)
    if voices is None:
        return None
    frames = int(math.ceil(float(score.highestTime) * FRAMES_PER_QUARTER))
    roll = np.zeros((frames, KEYS), dtype="uint8")
    for part in voices:
        for note in part.flatten().notes:
            start = float(note.offset) * FRAMES_PER_QUARTER
            end = start + float(note.quarterLength) * FRAMES_PER_QUARTER
            first, last = int(math.ceil(start)), int(math.ceil(end))  # frames f with start <= f < end
            for pitch in note.pitches:
                key = int(pitch.midi) - LOWEST_KEY
                if 0 <= key < KEYS:
                    roll[first:min(last, frames), key] = 1
    return roll


def _music21_version():
    return metadata.version("music21")


def cache_path(limit=None):
    suffix = "all" if limit is None else f"first{int(limit)}"
    return data_dir() / "lab" / f"bach-pianoroll-v{CACHE_VERSION}-{suffix}.npz"


def build(limit=None):
    """Parse the chorales (the first `limit` files, or all) into rolls; returns the dataset dict."""
    from music21 import corpus

    from zoo.data.chorales import chorale_files

    names = chorale_files()
    if limit is not None:
        names = names[: int(limit)]
    rolls, ids, skipped, duplicates, seen = [], [], [], 0, set()
    for name in names:
        roll = chorale_roll(corpus.parse(name))
        if roll is None:
            skipped.append(name)
            continue
        fingerprint = roll.tobytes()
        if fingerprint in seen:
            duplicates += 1
            continue
        seen.add(fingerprint)
        rolls.append(roll)
        ids.append(str(name))
    return {"rolls": rolls, "ids": ids, "skipped": skipped, "duplicates": duplicates,
            "files": len(names)}


def _encode(data):
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        frames=np.concatenate(data["rolls"]) if data["rolls"] else np.zeros((0, KEYS), "uint8"),
        lengths=np.array([len(r) for r in data["rolls"]], dtype="int64"),
        ids=np.array(data["ids"]), skipped=np.array(data["skipped"], dtype=str),
        duplicates=np.array(data["duplicates"]), files=np.array(data["files"]),
        music21=np.array(_music21_version()), version=np.array(CACHE_VERSION))
    return buffer.getvalue()


def _decode(path):
    with np.load(path, allow_pickle=False) as stored:
        if str(stored["music21"]) != _music21_version() or int(stored["version"]) != CACHE_VERSION:
            return None
        bounds = np.cumsum(stored["lengths"])[:-1]
        return {"rolls": np.split(stored["frames"], bounds) if len(stored["lengths"]) else [],
                "ids": [str(v) for v in stored["ids"]], "skipped": [str(v) for v in stored["skipped"]],
                "duplicates": int(stored["duplicates"]), "files": int(stored["files"])}


def load(limit=None):
    """The rolls, from the cache when it holds them for this music21 version, else parsed and cached.

    `data["source"]` says which ("cache" or "parsed"), `data["seconds"]` how long it took.
    """
    started = time.perf_counter()
    path = cache_path(limit)
    data = None
    if path.is_file():
        try:
            data = _decode(path)
        except (OSError, ValueError, KeyError):
            data = None
    source = "cache"
    if data is None:
        data = build(limit)
        atomic_write_bytes(path, _encode(data))
        source = "parsed"
    return {**data, "source": source, "seconds": round(time.perf_counter() - started, 2)}


def split(data, seed=SPLIT_SEED, fractions=FRACTIONS):
    """`{"train", "validation", "test"}` -> lists of rolls, split by chorale."""
    order = np.random.default_rng(seed).permutation(len(data["rolls"]))
    counts = split_counts(len(order), fractions)
    parts, start = {}, 0
    for name, count in zip(("train", "validation", "test"), counts):
        parts[name] = [data["rolls"][i] for i in order[start:start + count]]
        start += count
    return parts


def describe(data, parts):
    frames = {name: int(sum(len(r) for r in rolls)) for name, rolls in parts.items()}
    every = np.concatenate(data["rolls"])
    return {"files": data["files"], "chorales": len(data["rolls"]), "skipped": len(data["skipped"]),
            "duplicates": data["duplicates"],
            "chorales_per_split": {name: len(rolls) for name, rolls in parts.items()},
            "frames_per_split": frames, "mean_keys_on": round(float(every.sum(axis=1).mean()), 4),
            "frames_per_quarter": FRAMES_PER_QUARTER}
