"""Subword units: a vocabulary learned by byte-pair merges, words cut by greedy longest match in the graph.

A word the vocabulary has never seen ("Drachenreiter", "Wesmere") is not one
[UNK]: it is spelt in the pieces it is made of ("drachen", "##reiter").
`learn_subwords` learns the pieces from word counts with byte-pair encoding
(Sennrich et al. 2016): start from single characters, repeatedly merge the
most frequent adjacent pair (ties broken alphabetically, so the result is
deterministic) until the vocabulary has `size` pieces. A piece that does not
start a word carries the prefix `##` (as WordPiece writes it), so joining the
pieces of a word back is unambiguous.

Cutting a word (`segment_words` in Python, `SubwordSegmenter` inside a
TensorFlow graph, the same rule): from the start of the word, take the longest
piece of the vocabulary that matches there, continue after it; a character
that no piece covers becomes `[UNK]` on its own. Greedy longest match is what
WordPiece does at inference (Wu et al. 2016); with a vocabulary learned by
merges it gives the merge segmentation for almost every word, and it needs no
merge table at run time, only a lookup, which a SavedModel holds as a hash
table. Words longer than `MAX_WORD_CHARACTERS` are cut there first.
"""

from __future__ import annotations

import collections
import heapq
from typing import Iterable, Mapping

import keras
import tensorflow as tf

CONTINUATION = "##"
UNKNOWN_PIECE = "[UNK]"
#: Characters of a word looked at (the rest is cut into further words of this length).
MAX_WORD_CHARACTERS = 24


def _symbols(word: str) -> tuple[str, ...]:
    return tuple(word[:1]) + tuple(CONTINUATION + ch for ch in word[1:])


def learn_subwords(word_counts: Mapping[str, int], size: int, min_count: int = 2) -> list[str]:
    """Pieces learned by byte-pair merges from `{word: count}`, most useful first.

    Args:
        word_counts: How often each (already lower-cased, if wanted) word occurs.
        size: The number of pieces wanted (the single characters seen at least
            `min_count` times always come first, then merges until `size`).
        min_count: Characters and merges seen fewer times are left out.

    Returns:
        The pieces: characters first (by frequency), then merged pieces in the
        order they were merged; continuation pieces start with "##".
    """
    if int(size) < 1:
        raise ValueError(f"size must be >= 1, received {size!r}")
    words = {}
    for word, count in word_counts.items():
        if word and count > 0:
            chunk_counts = _chunks(word)
            for chunk in chunk_counts:
                key = _symbols(chunk)
                words[key] = words.get(key, 0) + int(count)
    symbol_counts = collections.Counter()
    for symbols, count in words.items():
        for symbol in symbols:
            symbol_counts[symbol] += count
    pieces = sorted((s for s, c in symbol_counts.items() if c >= min_count),
                    key=lambda s: (-symbol_counts[s], s))
    known = set(pieces)
    # Words as lists of symbols, with the pair counts kept up to date after each merge.
    vocab = [[list(symbols), count] for symbols, count in words.items()]
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for index, (symbols, count) in enumerate(vocab):
        for a, b in zip(symbols, symbols[1:]):
            pair_counts[a, b] += count
            where[a, b].add(index)
    # The most frequent pair from a heap of (−count, pair); entries made stale by later count
    # changes are skipped when they come up (each change pushes the new count).
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(pieces) < size and heap:
        negative, (a, b) = heapq.heappop(heap)
        if pair_counts.get((a, b), 0) != -negative:
            continue
        if -negative < min_count:
            break
        merged = a + b[len(CONTINUATION):]
        changed = set()
        for index in list(where[a, b]):
            symbols, word_count = vocab[index]
            if not any(x == a and y == b for x, y in zip(symbols, symbols[1:])):
                continue
            for x, y in zip(symbols, symbols[1:]):
                pair_counts[x, y] -= word_count
                changed.add((x, y))
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            vocab[index][0] = out
            for x, y in zip(out, out[1:]):
                pair_counts[x, y] += word_count
                where[x, y].add(index)
                changed.add((x, y))
        for pair in changed:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
            else:
                del pair_counts[pair]
        pair_counts.pop((a, b), None)
        if merged not in known:
            known.add(merged)
            pieces.append(merged)
    return pieces[: int(size)]


def _chunks(word: str) -> list[str]:
    return [word[i: i + MAX_WORD_CHARACTERS] for i in range(0, len(word), MAX_WORD_CHARACTERS)]


def segment_words(words: Iterable[str], pieces: Iterable[str]) -> list[list[str]]:
    """Each word cut into pieces by greedy longest match (the rule `SubwordSegmenter` runs in the graph)."""
    vocabulary = set(pieces)
    longest = max((len(p) - (len(CONTINUATION) if p.startswith(CONTINUATION) else 0) for p in vocabulary),
                  default=1)
    out = []
    for word in words:
        cut = []
        for chunk_index, chunk in enumerate(_chunks(word)):
            start = 0
            while start < len(chunk):
                for end in range(min(len(chunk), start + longest), start, -1):
                    piece = chunk[start:end] if start == 0 else CONTINUATION + chunk[start:end]
                    if piece in vocabulary:
                        cut.append(piece)
                        start = end
                        break
                else:
                    cut.append(UNKNOWN_PIECE)
                    start += 1
        out.append(cut)
    return out


def join_pieces(pieces: Iterable[str]) -> list[str]:
    """Pieces back into words: a "##" piece continues the word before it."""
    words = []
    for piece in pieces:
        if piece.startswith(CONTINUATION) and words:
            words[-1] += piece[len(CONTINUATION):]
        else:
            words.append(piece[len(CONTINUATION):] if piece.startswith(CONTINUATION) else piece)
    return words


@keras.saving.register_keras_serializable(package="zoo", name="SubwordSegmenter")
class SubwordSegmenter(keras.layers.Layer):
    """Words `[batch, words]` (string, "" = padding) → pieces `[batch, pieces]` (string, "" = padding).

    Greedy longest match against `pieces`, inside the graph (a hash table of
    the pieces, one `tf.while_loop` over character positions), the same rule as
    `segment_words`. Output rows keep the order of the words; at least one
    column is returned.

    Args:
        pieces: The subword vocabulary (`learn_subwords`).
        max_pieces: Pieces kept per row (the rest is cut).
    """

    def __init__(self, pieces, max_pieces=256, **kwargs):
        super().__init__(**kwargs)
        self.pieces = [str(p) for p in pieces]
        if not self.pieces:
            raise ValueError("SubwordSegmenter needs at least one piece")
        self.max_pieces = int(max_pieces)
        self.longest = max(len(p) - (len(CONTINUATION) if p.startswith(CONTINUATION) else 0)
                           for p in self.pieces)
        # Made outside any graph being traced (and named as StringLookup names its table, so a
        # serving module finds and saves it).
        with tf.init_scope():
            self.lookup_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(self.pieces),
                                                    tf.ones([len(self.pieces)], tf.bool)),
                default_value=False)

    def call(self, words):
        words = tf.convert_to_tensor(words, tf.string)
        batch = tf.shape(words)[0]
        flat = tf.reshape(words, [-1])
        present = tf.not_equal(flat, "")
        chars = tf.strings.unicode_split(flat, "UTF-8")
        # Chunks of MAX_WORD_CHARACTERS: a longer word continues as a further "word".
        width = MAX_WORD_CHARACTERS
        lengths = chars.row_lengths()
        chunks_per_word = tf.maximum((lengths + width - 1) // width, 1)
        dense = chars.to_tensor(default_value="")
        dense = tf.pad(dense, [[0, 0], [0, width]])
        chunk_count = tf.reduce_max(tf.concat([chunks_per_word, [1]], 0))
        dense = dense[:, : tf.cast(chunk_count, tf.int32) * width]
        dense = tf.reshape(dense, [tf.size(flat), -1, width])        # [words, chunks, width]
        chunk_lengths = tf.clip_by_value(
            lengths[:, None] - tf.range(tf.cast(chunk_count, tf.int64))[None, :] * width, 0, width)
        chunk_valid = tf.range(tf.cast(chunk_count, tf.int64))[None, :] < chunks_per_word[:, None]
        rows = tf.reshape(dense, [-1, width])
        row_lengths = tf.cast(tf.reshape(chunk_lengths, [-1]), tf.int32)
        row_valid = tf.reshape(chunk_valid & present[:, None], [-1])
        table = self.lookup_table
        longest = min(self.longest, width)
        n = tf.shape(rows)[0]

        # candidate[r, s, k]: the piece rows[r, s:s+k+1] (with "##" unless s == 0) is in the vocabulary
        starts = tf.range(width)
        candidates = []
        for k in range(longest):
            ends = starts + k + 1
            texts = tf.strings.reduce_join(
                tf.stack([tf.roll(rows, -j, axis=1) for j in range(k + 1)], axis=-1), axis=-1)
            texts = tf.where(starts[None, :] == 0, texts, CONTINUATION + texts)
            ok = table.lookup(texts) & (ends[None, :] <= row_lengths[:, None])
            candidates.append(ok)
        candidate = tf.stack(candidates, axis=-1)                       # [rows, width, longest]
        # the longest match at each start (k + 1 characters), 0 when none
        best = tf.where(tf.reduce_any(candidate, -1),
                        longest - tf.argmax(tf.reverse(tf.cast(candidate, tf.int32), [-1]), -1,
                                            output_type=tf.int32), 0)

        def step(position, taken, t):
            here = tf.gather(best, tf.minimum(position, width - 1), batch_dims=1)
            active = position < row_lengths
            size = tf.where(active, tf.maximum(here, 1), 0)
            piece = tf.where(here > 0,
                             tf.strings.reduce_join(
                                 tf.where(tf.range(width)[None, :] < size[:, None],
                                          _shift_left(rows, position),
                                          ""), axis=-1),
                             UNKNOWN_PIECE)
            piece = tf.where((position > 0) & (here > 0), CONTINUATION + piece, piece)
            piece = tf.where(active, piece, "")
            return position + size, taken.write(t, piece), t + 1

        position = tf.zeros([n], tf.int32)
        taken = tf.TensorArray(tf.string, size=width)
        _, taken, _ = tf.while_loop(lambda p, a, t: t < width, step, (position, taken, 0),
                                    maximum_iterations=width)
        pieces = tf.transpose(taken.stack())                            # [rows, width]
        pieces = tf.where(row_valid[:, None], pieces, "")
        per_word = tf.reshape(pieces, [batch, -1])                      # [batch, words * chunks * width]
        keep = tf.not_equal(per_word, "")
        ragged = tf.ragged.boolean_mask(per_word, keep)
        dense_out = ragged[:, : self.max_pieces].to_tensor(default_value="")
        columns = tf.maximum(tf.shape(dense_out)[1], 1)
        return tf.pad(dense_out, [[0, 0], [0, columns - tf.shape(dense_out)[1]]])

    def compute_output_spec(self, words):
        return keras.KerasTensor((words.shape[0], None), dtype="string")

    def get_config(self):
        return {**super().get_config(), "pieces": list(self.pieces), "max_pieces": self.max_pieces}


def _shift_left(rows, position):
    """Each row of `rows` [n, width] shifted left by its own `position` (the tail filled with "")."""
    width = tf.shape(rows)[1]
    index = tf.range(width)[None, :] + position[:, None]
    shifted = tf.gather(rows, tf.minimum(index, width - 1), batch_dims=1)
    return tf.where(index < width, shifted, "")
