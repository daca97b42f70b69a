"""One-to-many melody generation: a key name in, a melody in that key out.

The model (`build_model`) is a recurrent decoder whose starting state is
computed from the key:

    key id → Embedding → Dense(tanh) per state ──────────────┐ initial h (and c)
    tokens → Embedding ─┬─ Concatenate ─→ Dropout → zoo LSTM | GRU | SimpleRNN
    key embedding ──────┘ (at every step, optional)           → Dropout → Dense(VOCAB_SIZE)

It is trained with teacher forcing: the input row is ``BOS e_1 ... e_n`` and
the target row ``e_1 ... e_n EOS`` (tokens of `zoo.music`), PAD positions
carry zero weight in the loss. The Keras model returns next-token logits.

Generation runs inside one TensorFlow graph (`MelodyGenerator`): the key
string is parsed by a lookup table over every spelling `zoo.music.parse_key`
accepts, and the shared decoding engine `zoo.generation` steps the trained
layer's cell (embed → cell → head) in one `tf.while_loop`, sampling each
event with `tf.random.stateless_categorical` seeded by ``(seed, step)``, so
the same seed gives the same melody. PAD and BOS are never sampled; EOS ends
a melody (PAD follows) once `min_events` events exist. The exported
SavedModel (`write_serving`) has the signatures

* ``generate`` (also ``serving_default``): ``keys`` string ``[batch]``,
  ``num_events`` int32, ``temperature`` float32 (0 = greedy), ``seed`` int64,
  ``min_events`` int32 → ``tokens``, ``pitches`` (MIDI, -1 for a rest or no
  event), ``durations`` (sixteenth-note steps, 0 for no event), ``lengths``
  (events per melody), ``key_ids``;
* ``score``: ``keys`` string ``[batch]``, ``tokens`` int32 ``[batch, time]``
  (teacher-forced input rows starting with BOS) → ``log_probs``
  ``[batch, time, VOCAB_SIZE]``.

Both run with plain `tf.saved_model.load` and under the TF1 session loader
(`saved_model_cli run`), without zoo, on CPU.
"""

from zoo import _backend  # noqa: F401

import functools
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo import generation, music

TASK = "music"
IO_TYPE = "one-to-many"
CELLS = ("lstm", "gru", "rnn")
SHIPPED = "music-lstm-chorales"

#: Longest melody one `generate` call may ask for (events per melody).
MAX_EVENTS = 4096
#: Settings of the in-key measurement written in the card (recipes may override).
IN_KEY_DEFAULTS = {"seeds": 8, "num_events": 64, "min_events": 64, "temperature": 1.0}
#: Tokens the model can be asked to predict: every event token and EOS.
PREDICTED_TOKENS = music.VOCAB_SIZE - 2
_STATE_NAMES = {"lstm": ("h", "c"), "gru": ("h",), "rnn": ("h",)}


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def recurrent_layer(cell, units, **kwargs):
    """The zoo sequence layer for `cell` ("lstm", "gru" or "rnn")."""
    from zoo import layers

    return layers.sequence_layer_class(cell)(units, **kwargs)


@keras.saving.register_keras_serializable(package="zoo.music", name="RepeatOverTime")
class RepeatOverTime(keras.layers.Layer):
    """Repeat a `(batch, features)` vector at every step of a `(batch, time, ...)` sequence.

    Call arguments:
        inputs: `[vector, sequence]`; the output has shape
            `(batch, time, features)`, the number of steps taken from `sequence`.
    """

    def call(self, inputs):
        vector, sequence = inputs
        steps = ops.shape(sequence)[1]
        return ops.repeat(ops.expand_dims(vector, 1), steps, axis=1)

    def compute_output_shape(self, input_shape):
        vector_shape, sequence_shape = input_shape
        return (vector_shape[0], sequence_shape[1], vector_shape[-1])


def register_custom_objects():
    """This task's Keras layer, registered when the module is imported (`zoo.load` calls this)."""
    return RepeatOverTime


def build_model(cell="lstm", units=256, key_embedding_dim=32, token_embedding_dim=64,
                dropout=0.2, key_every_step=True):
    """The key-conditioned decoder, trained with teacher forcing.

    Args:
        cell: "lstm", "gru" or "rnn" (zoo.layers.LSTM / GRU / SimpleRNN).
        units: Size of the recurrent state.
        key_embedding_dim: Size of the learned key vector.
        token_embedding_dim: Size of the event-token embedding.
        dropout: Dropout on the step inputs and on the decoder outputs.
        key_every_step: Also concatenate the key vector to every step's input
            (the key then conditions every step, not only the initial state).

    Returns:
        A `keras.Model` with inputs `{"key_id": int32 (batch,), "tokens":
        int32 (batch, time)}` and next-token logits `(batch, time,
        VOCAB_SIZE)` as output. Layers are named (`key_embedding`,
        `initial_h`, `initial_c`, `token_embedding`, `decoder`, `next_token`)
        so that `MelodyGenerator` can step them one event at a time.
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    key_id = keras.Input(shape=(), dtype="int32", name="key_id")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    key_vector = keras.layers.Embedding(music.NUM_KEYS, key_embedding_dim, name="key_embedding")(key_id)
    initial_state = [
        keras.layers.Dense(units, activation="tanh", name=f"initial_{state}")(key_vector)
        for state in _STATE_NAMES[cell]
    ]
    steps = keras.layers.Embedding(music.VOCAB_SIZE, token_embedding_dim, name="token_embedding")(tokens)
    if key_every_step:
        repeated = RepeatOverTime(name="key_every_step")([key_vector, steps])
        steps = keras.layers.Concatenate(name="step_input")([steps, repeated])
    steps = keras.layers.Dropout(dropout, name="input_dropout")(steps)
    decoded = recurrent_layer(cell, units, return_sequences=True, name="decoder")(
        steps, initial_state=initial_state
    )
    decoded = keras.layers.Dropout(dropout, name="output_dropout")(decoded)
    logits = keras.layers.Dense(music.VOCAB_SIZE, name="next_token")(decoded)
    return keras.Model({"key_id": key_id, "tokens": tokens}, logits, name=f"melody_{cell}")


def model_settings(model):
    """What `MelodyGenerator` needs to know about a model built by `build_model`."""
    decoder = model.get_layer("decoder")
    cell = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}.get(type(decoder).__name__)
    if cell is None:
        raise ValueError(f"the 'decoder' layer is a {type(decoder).__name__}, not a zoo LSTM/GRU/SimpleRNN")
    names = [layer.name for layer in model.layers]
    return {"cell": cell, "units": decoder.units, "key_every_step": "key_every_step" in names}


def fresh_copy(model, learning_rate=6e-3, clipnorm=1.0):
    """The same architecture and weights, compiled with a new optimizer.

    What the hub ships: the optimizer's moment estimates would double the
    size of `model.keras` and do not help fine-tuning on new data.
    """
    return compile_model(_weights_only_copy(model), learning_rate=learning_rate, clipnorm=clipnorm)


def _weights_only_copy(model):
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def compile_model(model, learning_rate=6e-3, clipnorm=1.0):
    """Adam with global-norm clipping; loss = mean −log p over the non-PAD targets."""

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def examples(melodies, max_len=None):
    """Key ids and ``BOS events EOS PAD...`` rows (see `zoo.data.chorales.make_examples`)."""
    from zoo.data import chorales

    if max_len is None:
        max_len = max(len(m["events"]) for m in melodies) + 1
    return chorales.make_examples(melodies, max_len=max_len)


def make_dataset(melodies, batch_size, shuffle=False, seed=0):
    """A `tf.data` pipeline of `({"key_id", "tokens"}, targets, weights)` batches.

    Melodies of similar length are batched together (each batch is padded to
    its longest row, not to the longest melody), and with `shuffle` the
    order of melodies and batches changes every epoch (seeded).
    """
    key_ids, rows = examples(melodies)
    lengths = (rows != music.PAD).sum(axis=1).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((key_ids, rows, lengths))
    data = data.map(lambda key, row, length: (key, row[:length]))
    if shuffle:
        data = data.shuffle(len(key_ids), seed=seed, reshuffle_each_iteration=True)
    longest = int(lengths.max())
    boundaries = [b for b in (24, 32, 40, 48, 56, 64, 80, 96, 128) if b < longest]
    data = data.bucket_by_sequence_length(
        element_length_func=lambda key, row: tf.shape(row)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([], [None]),
        padding_values=(0, music.PAD),
    )
    if shuffle:
        data = data.shuffle(64, seed=seed + 1, reshuffle_each_iteration=True)

    def split(key, row):
        inputs, targets = row[:, :-1], row[:, 1:]
        weights = tf.cast(targets != music.PAD, tf.float32)
        return {"key_id": key, "tokens": inputs}, targets, weights

    return data.map(split).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Held-out likelihood and the n-gram baselines
# --------------------------------------------------------------------------


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def nll_per_event(model, melodies, batch_size=64):
    """Mean negative log-likelihood (nats) of the model on `melodies`, in their own keys.

    Every predicted token counts: each event and the closing EOS of each
    melody (PAD never does). Returns `{"nll_per_event", "perplexity",
    "tokens", "pieces"}`. Deterministic: fixed batches, float64 reduction.
    """
    key_ids, rows = examples(melodies)
    total, count = 0.0, 0
    for start in range(0, len(key_ids), batch_size):
        keys = key_ids[start : start + batch_size]
        batch = rows[start : start + batch_size]
        logits = model({"key_id": keys, "tokens": batch[:, :-1]}, training=False)
        log_p = _log_softmax(np.asarray(logits))
        targets = batch[:, 1:]
        picked = np.take_along_axis(log_p, targets[..., None].astype(np.int64), axis=-1)[..., 0]
        mask = targets != music.PAD
        total -= float(picked[mask].sum())
        count += int(mask.sum())
    nll = total / count
    return {"nll_per_event": round(nll, 6), "perplexity": round(math.exp(nll), 4),
            "tokens": count, "pieces": len(melodies)}


def _target_pairs(melodies):
    """(previous, next) token pairs of the teacher-forced targets of `melodies`."""
    pairs = []
    for melody in melodies:
        row = music.encode_events(melody["events"], bos_eos=True)
        pairs.extend(zip(row[:-1], row[1:]))
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def _predicted_index(tokens):
    """Index 0..PREDICTED_TOKENS-1 of a predictable token (EOS = 0, events after it)."""
    return np.where(tokens == music.EOS, 0, tokens - music.NUM_SPECIAL + 1)


def _ngram_tables(train_pairs, k_unigram, k_bigram):
    nxt = _predicted_index(train_pairs[:, 1])
    unigram = np.bincount(nxt, minlength=PREDICTED_TOKENS).astype(np.float64)
    bigram = np.zeros((music.VOCAB_SIZE, PREDICTED_TOKENS), np.float64)
    np.add.at(bigram, (train_pairs[:, 0], nxt), 1.0)
    p_unigram = (unigram + k_unigram) / (unigram.sum() + k_unigram * PREDICTED_TOKENS)
    p_bigram = (bigram + k_bigram) / (bigram.sum(axis=1, keepdims=True) + k_bigram * PREDICTED_TOKENS)
    return p_unigram, p_bigram


def _ngram_nll(tables, pairs):
    p_unigram, p_bigram = tables
    nxt = _predicted_index(pairs[:, 1])
    return (float(-np.log(p_unigram[nxt]).mean()), float(-np.log(p_bigram[pairs[:, 0], nxt]).mean()))


SMOOTHING_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def ngram_baselines(train, validation, test, grid=SMOOTHING_GRID):
    """Unigram and bigram next-event models, add-k smoothed, fitted on `train`.

    Same units and tokens as `nll_per_event` (every event and the closing
    EOS; the bigram conditions on the previous token, BOS for the first
    event). `k` is chosen per model from `grid` on `validation`; both are
    reported on `validation` and `test`. They ignore the key.
    """
    train_pairs = _target_pairs(train)
    val_pairs, test_pairs = _target_pairs(validation), _target_pairs(test)
    val_scores = {k: _ngram_nll(_ngram_tables(train_pairs, k, k), val_pairs) for k in grid}
    k_uni = min(grid, key=lambda k: val_scores[k][0])
    k_bi = min(grid, key=lambda k: val_scores[k][1])
    tables = _ngram_tables(train_pairs, k_uni, k_bi)
    val_uni, val_bi = _ngram_nll(tables, val_pairs)
    test_uni, test_bi = _ngram_nll(tables, test_pairs)
    return {
        "unigram": {"k": k_uni, "validation_nll_per_event": round(val_uni, 6),
                    "test_nll_per_event": round(test_uni, 6)},
        "bigram": {"k": k_bi, "validation_nll_per_event": round(val_bi, 6),
                   "test_nll_per_event": round(test_bi, 6)},
    }


# --------------------------------------------------------------------------
# Keys inside the graph
# --------------------------------------------------------------------------


def _case_variants(word):
    variants = [""]
    for letter in word:
        variants = [v + c for v in variants for c in {letter.lower(), letter.upper()}]
    return sorted(set(variants))


def key_spellings():
    """Every key string `zoo.music.parse_key` accepts, up to white space, with its key id.

    Tonic: letter A-G in either case, then nothing, ``#``, ``♯``, ``b`` or
    ``♭``; mode: ``major``/``minor`` in any mix of cases; one space between
    (the graph first collapses and trims white space). 4,480 entries.
    """
    table = {}
    for letter in "ABCDEFG":
        for case in (letter, letter.lower()):
            for accidental in ("", "#", "\u266f", "b", "\u266d"):
                for mode in music.MODES:
                    index = music.key_index(f"{letter}{accidental} {mode}")
                    for spelled in _case_variants(mode):
                        table[f"{case}{accidental} {spelled}"] = index
    return table


@functools.lru_cache(maxsize=None)
def _whitespace_class():
    """An RE2 character class of the characters Python's `str.isspace` accepts."""
    spaces = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()]
    return "[" + "".join(f"\\x{{{ord(c):04X}}}" for c in spaces) + "]"


# --------------------------------------------------------------------------
# Generation inside the graph
# --------------------------------------------------------------------------


class MelodyGenerator(tf.Module):
    """Sample melodies from a model built by `build_model`, entirely in TensorFlow.

    Args:
        model: The trained Keras model (its layers and weights are used,
            not copied).

    `generate(keys, num_events, temperature, seed, min_events)` and
    `score(keys, tokens)` are `tf.function`s with fixed signatures (see
    the module docstring); `write_serving` saves them.
    """

    def __init__(self, model):
        super().__init__(name="melody_generator")
        settings = model_settings(model)
        self.model = model
        # A Keras variable is saved as a copy of the `tf.Variable` it wraps, and the traced
        # functions capture the wrapped one: `tf.saved_model.load` maps the two, the TF1
        # session loader (`saved_model_cli run`) restores only what the SavedModel's saver
        # holds. Tracking the wrapped variables themselves puts them in that saver.
        self.restorable_variables = [variable.value for variable in model.variables]
        self._cell_name = settings["cell"]
        self._key_every_step = settings["key_every_step"]
        spellings = key_spellings()
        self.key_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(spellings)), tf.constant(list(spellings.values()), tf.int32)
            ),
            default_value=-1,
        )
        self._space = _whitespace_class()

    # -- keys ------------------------------------------------------------
    def key_ids(self, keys):
        """Key ids 0..23 of a batch of key strings; an invalid one raises InvalidArgumentError."""
        keys = tf.convert_to_tensor(keys, tf.string)
        normalized = tf.strings.regex_replace(keys, self._space + "+", " ")
        normalized = tf.strings.regex_replace(normalized, "^ | $", "")
        ids = self.key_table.lookup(normalized)
        bad = tf.boolean_mask(keys, ids < 0)
        check = tf.debugging.Assert(
            tf.size(bad) == 0,
            ["invalid key: expected '<tonic> <major|minor>' with a tonic letter A-G and "
             "an optional '#' or 'b', e.g. 'G major', 'F# minor', 'Bb major'; received:", bad],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    # -- the sampling loop -----------------------------------------------
    def _start(self, key_ids):
        key_vector = self.model.get_layer("key_embedding")(key_ids)
        states = [self.model.get_layer(f"initial_{s}")(key_vector)
                  for s in _STATE_NAMES[self._cell_name]]
        return key_vector, states

    def _step(self, tokens, states, key_vector, t):
        """One event of the decoder for `zoo.generation.decode`: embed → cell → next-event logits."""
        inputs = self.model.get_layer("token_embedding")(tokens)
        if self._key_every_step:
            inputs = tf.concat([inputs, key_vector], axis=-1)
        output, new_states = self.model.get_layer("decoder").cell(inputs, list(states), training=False)
        return self.model.get_layer("next_token")(output), list(new_states), {}

    def sample(self, key_ids, num_events, temperature, seed, min_events):
        """Tokens `[batch, num_events]` for key ids `[batch]` (`zoo.generation`'s sampler)."""
        key_ids = tf.cast(key_ids, tf.int32)
        num_events = tf.cast(num_events, tf.int32)
        temperature = tf.cast(temperature, tf.float32)
        checks = [
            tf.debugging.assert_greater_equal(num_events, 1, message="num_events must be >= 1"),
            tf.debugging.assert_less_equal(num_events, MAX_EVENTS,
                                           message=f"num_events must be <= {MAX_EVENTS}"),
            tf.debugging.assert_greater_equal(temperature, 0.0,
                                              message="temperature must be >= 0 (0 = greedy)"),
        ]
        with tf.control_dependencies(checks):
            batch = tf.shape(key_ids)[0]

        def melodies():
            key_vector, states = self._start(key_ids)
            result = generation.decode(
                self._step, states, tf.fill([batch], tf.constant(music.BOS, tf.int32)),
                method="sample", max_length=num_events, end_token=music.EOS, pad_token=music.PAD,
                context=key_vector, temperature=temperature, seed=tf.cast(seed, tf.int64),
                forbidden_tokens=(music.PAD, music.BOS),
                min_length=tf.minimum(tf.cast(min_events, tf.int32), num_events),
            )
            return result["tokens"]

        # an empty batch has a defined, empty answer (the decoding loop cannot stack zero rows)
        return tf.cond(batch > 0, melodies, lambda: tf.zeros([0, 0], tf.int32))

    @staticmethod
    def describe(tokens):
        """Pitches (-1 = rest or none), durations (0 = none) and lengths of token rows."""
        is_event = tokens >= music.NUM_SPECIAL
        slot, dur_index = (tf.math.floordiv(tokens - music.NUM_SPECIAL, len(music.DURATIONS)),
                           tf.math.floormod(tokens - music.NUM_SPECIAL, len(music.DURATIONS)))
        pitches = tf.where(is_event & (slot > 0), music.PITCH_MIN + slot - 1, -1)
        durations = tf.where(is_event, tf.gather(tf.constant(music.DURATIONS, tf.int32),
                                                 tf.maximum(dur_index, 0)), 0)
        lengths = tf.reduce_sum(tf.cast(is_event, tf.int32), axis=1)
        return pitches, durations, lengths

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.string, name="keys"),
        tf.TensorSpec([], tf.int32, name="num_events"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int64, name="seed"),
        tf.TensorSpec([], tf.int32, name="min_events"),
    ])
    def generate(self, keys, num_events, temperature, seed, min_events):
        key_ids = self.key_ids(keys)
        tokens = self.sample(key_ids, num_events, temperature, seed, min_events)
        pitches, durations, lengths = self.describe(tokens)
        return {"tokens": tokens, "pitches": pitches, "durations": durations,
                "lengths": lengths, "key_ids": key_ids}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.int32, name="key_ids"),
        tf.TensorSpec([], tf.int32, name="num_events"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int64, name="seed"),
        tf.TensorSpec([], tf.int32, name="min_events"),
    ])
    def generate_from_ids(self, key_ids, num_events, temperature, seed, min_events):
        return self.sample(key_ids, num_events, temperature, seed, min_events)

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.string, name="keys"),
        tf.TensorSpec([None, None], tf.int32, name="tokens"),
    ])
    def score(self, keys, tokens):
        key_ids = self.key_ids(keys)
        logits = self.model({"key_id": key_ids, "tokens": tokens}, training=False)
        return {"log_probs": tf.nn.log_softmax(logits, axis=-1)}


def _check_request(num_events, temperature, seed, min_events):
    if isinstance(num_events, bool) or not isinstance(num_events, (int, np.integer)) \
            or not 1 <= num_events <= MAX_EVENTS:
        raise ValueError(f"number of events must be an integer in 1..{MAX_EVENTS}, got {num_events!r}")
    if min_events is None:
        min_events = num_events
    if isinstance(min_events, bool) or not isinstance(min_events, (int, np.integer)) or min_events < 0:
        raise ValueError(f"min_events must be a non-negative integer, got {min_events!r}")
    try:
        temperature = float(temperature)
    except (TypeError, ValueError):
        temperature = float("nan")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -2**63 <= seed < 2**63:
        raise ValueError(f"seed must be a 64-bit integer, got {seed!r}")
    return int(num_events), float(temperature), int(seed), int(min(min_events, num_events))


def _as_key_list(keys):
    if isinstance(keys, str):
        keys = [keys]
    keys = list(keys)
    if not keys:
        raise ValueError("no key given: pass a key name like 'G major' or a list of them")
    for key in keys:
        music.parse_key(key)  # ValueError with a clear message
    return keys


def generate(source, keys, num_events=64, temperature=1.0, seed=0, min_events=None):
    """Generate melodies for one key name or a list of them.

    Args:
        source: a `MelodyGenerator`, a Keras model from `build_model`, or a
            loaded serving SavedModel (`zoo.load_serving(name)`).
        keys: ``"D major"`` or a list of key names (one melody each).
        num_events: events per melody (at most; see `min_events`).
        temperature: softmax temperature; 0 picks the most likely event.
        seed: the same seed gives the same melodies. A melody depends on the
            seed, its key and its position in the list, not on the other
            keys (the first melody of any list equals a one-key call).
        min_events: EOS is not sampled before this many events; default
            `num_events`, i.e. exactly `num_events` events. 0 lets the model
            end a melody whenever it samples EOS.

    Returns:
        A list of melodies, each a list of events ``(pitch | None, steps)``.

    Raises:
        ValueError: an invalid key (e.g. "H major", ""), or a bad setting.
    """
    keys = _as_key_list(keys)
    num_events, temperature, seed, min_events = _check_request(num_events, temperature, seed, min_events)
    if not hasattr(source, "signatures") and not hasattr(source, "generate"):
        source = MelodyGenerator(source)
    fn = source.signatures["generate"] if hasattr(source, "signatures") else source.generate
    result = fn(keys=tf.constant(keys), num_events=tf.constant(num_events, tf.int32),
                temperature=tf.constant(temperature, tf.float32),
                seed=tf.constant(seed, tf.int64), min_events=tf.constant(min_events, tf.int32))
    return [music.decode_tokens(row) for row in result["tokens"].numpy()]


def _standard_error(values):
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def sampling_standard_errors(rates, majors, minors, per_key, counts):
    """Standard errors of `generated_in_key_rate`'s figures over its melodies: of each mean rate; of
    the lowest key's rate, the largest standard error of one key's mean; of the event and note
    totals, √n times their spread per melody."""
    counts = np.asarray(counts, np.float64).reshape(-1, 2)
    return {
        "in_key_rate": _standard_error(rates),
        "in_key_rate_major": _standard_error(majors),
        "in_key_rate_minor": _standard_error(minors),
        "lowest_key_rate": max((_standard_error(v) for v in per_key.values() if v), default=0.0),
        "events": _standard_error(counts[:, 0]) * len(counts),
        "notes": _standard_error(counts[:, 1]) * len(counts),
    }


def generated_in_key_rate(generator, seeds=8, num_events=64, min_events=64, temperature=1.0, sampling_errors=None):
    """In-key rate of melodies sampled for all 24 keys × `seeds` seeds (0..seeds-1).

    One batched call per seed (the 24 keys in `zoo.music.ALL_KEYS` order).
    The rate of each melody is the share of its notes in the requested key
    (`zoo.music.in_key_rate`, all three minor scales count for minor keys);
    `in_key_rate` is the mean over melodies, like
    `zoo.data.chorales.real_in_key_rate` for real ones.

    `sampling_errors` (a dict), when given, receives the standard error of each figure over the
    melodies (`sampling_standard_errors`): how far a second draw of the same number of melodies
    would typically land. The melodies are sampled, so float rounding that differs between machines
    (TensorFlow's thread count changes the order of its sums) changes them.
    """
    if not hasattr(generator, "generate_from_ids"):
        generator = MelodyGenerator(generator)
    rates, per_key = [], {k: [] for k in music.ALL_KEYS}
    counts = []  # (events, notes) per melody
    for seed in range(seeds):
        tokens = generator.generate_from_ids(
            tf.range(music.NUM_KEYS, dtype=tf.int32), tf.constant(num_events, tf.int32),
            tf.constant(temperature, tf.float32), tf.constant(seed, tf.int64),
            tf.constant(min_events, tf.int32)).numpy()
        for key, row in zip(music.ALL_KEYS, tokens):
            events = music.decode_tokens(row)
            counts.append((len(events), sum(p is not None for p, _ in events)))
            rate = music.in_key_rate(events, key)
            if not math.isnan(rate):
                rates.append(rate)
                per_key[key].append(rate)
    by_key = {k: float(np.mean(v)) for k, v in per_key.items() if v}
    majors = [r for k, v in per_key.items() if k.endswith("major") for r in v]
    minors = [r for k, v in per_key.items() if k.endswith("minor") for r in v]
    if sampling_errors is not None:
        sampling_errors.update(sampling_standard_errors(rates, majors, minors, per_key, counts))
    return {
        "in_key_rate": round(float(np.mean(rates)), 6),
        "in_key_rate_major": round(float(np.mean(majors)), 6),
        "in_key_rate_minor": round(float(np.mean(minors)), 6),
        "lowest_key_rate": round(min(by_key.values()), 6),
        "lowest_key": min(by_key, key=by_key.get),
        "melodies": len(rates),
        "events": sum(events for events, _ in counts),
        "notes": sum(notes for _, notes in counts),
    }


# --------------------------------------------------------------------------
# Serving, throughput, the card
# --------------------------------------------------------------------------


def write_serving(model, path):
    """Save the generation graph as a SavedModel: `generate` (= `serving_default`) and `score`.

    Every signature also runs under the TF1 session loader (`saved_model_cli
    run`, `tf.compat.v1.saved_model.loader.load`): see `MelodyGenerator`.
    """
    generator = MelodyGenerator(_weights_only_copy(model))  # no optimizer variables
    generate_fn = generator.generate.get_concrete_function()
    tf.saved_model.save(
        generator, str(path),
        signatures={"serving_default": generate_fn, "generate": generate_fn,
                    "score": generator.score.get_concrete_function()},
    )


def serving_examples():
    """Small valid inputs for each signature of the SavedModel, as plain Python values."""
    generate_inputs = {"keys": ["D major", "f# minor"], "num_events": 6, "temperature": 1.0,
                       "seed": 7, "min_events": 3}
    tokens = [music.BOS] + music.encode_events([(62, 4), (64, 2), (None, 2), (66, 8)])
    return {
        "generate": generate_inputs,
        "serving_default": dict(generate_inputs, temperature=0.0),
        "score": {"keys": ["D major", "Bb minor"], "tokens": [tokens, tokens]},
    }


def measure_throughput(serving, batch_sizes=(1, 64), num_events=256, repeats=3):
    """Events per second of the serving `generate` signature (best of `repeats` timed calls).

    Every melody is made exactly `num_events` long (`min_events = num_events`)
    so the work per call is fixed; keys cycle through all 24.
    """
    generate_fn = serving.signatures["generate"]
    results = {}
    for batch in batch_sizes:
        keys = tf.constant([music.ALL_KEYS[i % music.NUM_KEYS] for i in range(batch)])
        arguments = dict(keys=keys, num_events=tf.constant(num_events, tf.int32),
                         temperature=tf.constant(1.0), min_events=tf.constant(num_events, tf.int32))
        generate_fn(seed=tf.constant(0, tf.int64), **arguments)  # warm-up
        best = float("inf")
        for repeat in range(repeats):
            started = time.perf_counter()
            generate_fn(seed=tf.constant(repeat + 1, tf.int64), **arguments)["tokens"].numpy()
            best = min(best, time.perf_counter() - started)
        results[f"batch_{batch}_events_per_second"] = round(batch * num_events / best, 1)
    results["method"] = (f"SavedModel signature 'generate', {num_events} events per melody, "
                         f"best of {repeats} timed calls after one warm-up, batch sizes "
                         f"{list(batch_sizes)}, this process's TensorFlow threads")
    return results


def _card_splits(card_dataset):
    from zoo.data import chorales

    splits = chorales.load_splits(seed=card_dataset["split_seed"], augment_train=False, quiet=True)
    limit = card_dataset.get("max_train_pieces")
    if limit:
        splits["train"] = splits["train"][:limit]
    return splits


def measure(model, splits, in_key=None, sampling_errors=None):
    """Every deterministic number of the card's `metrics` (what `zoo verify` re-measures).

    `splits` holds the raw (not augmented) train/validation/test melodies;
    the baselines are fitted on the augmented training split.
    """
    from zoo.data import chorales

    in_key = {**IN_KEY_DEFAULTS, **(in_key or {})}
    baselines = ngram_baselines(chorales.augment_all_keys(splits["train"]),
                                splits["validation"], splits["test"])
    metrics = {}
    for split in ("validation", "test"):
        scores = nll_per_event(model, splits[split])
        scores["unigram_nll_per_event"] = baselines["unigram"][f"{split}_nll_per_event"]
        scores["bigram_nll_per_event"] = baselines["bigram"][f"{split}_nll_per_event"]
        scores["real_in_key_rate"] = round(chorales.real_in_key_rate(splits[split]), 6)
        metrics[split] = scores
    metrics["generated"] = generated_in_key_rate(
        model, seeds=in_key["seeds"], num_events=in_key["num_events"],
        min_events=in_key["min_events"], temperature=in_key["temperature"], sampling_errors=sampling_errors)
    return metrics, baselines


def remeasure(model, card):
    """Re-measure the card's deterministic metrics from scratch (used by `zoo verify`)."""
    return remeasure_with_tolerances(model, card)[0]


#: How many standard errors of sampling a re-measured figure of the sampled melodies may lie from the card.
SAMPLING_TOLERANCE_Z = 4.0


def remeasure_with_tolerances(model, card):
    """`remeasure`'s metrics, and `{metric path: tolerance}` for the figures of sampled melodies.

    The card's likelihoods are reproduced to float precision anywhere; its sampled melodies only
    where TensorFlow rounds exactly as on the machine that wrote the card (the same thread count).
    Elsewhere a melody can take another path at one near-tie, so those figures are compared within
    `SAMPLING_TOLERANCE_Z` standard errors of sampling (measured over the re-sampled melodies).
    """
    errors = {}
    metrics, _ = measure(model, _card_splits(card["dataset"]), card.get("evaluation", {}).get("in_key"),
                         sampling_errors=errors)
    return metrics, {f"generated.{key}": SAMPLING_TOLERANCE_Z * error for key, error in errors.items()}


# --------------------------------------------------------------------------
# Command line and demo
# --------------------------------------------------------------------------


def write_melody(events, path, title=None, tempo_bpm=90.0):
    """Write `events` as a MIDI file at `path` and a piano roll next to it (same name, .png)."""
    path = Path(path)
    if path.suffix.lower() not in (".mid", ".midi"):
        raise ValueError(f"the output file must end in .mid or .midi, got {str(path)!r}")
    if path.parent and not path.parent.exists():
        raise ValueError(f"the output directory {str(path.parent)!r} does not exist")
    midi = music.events_to_midi(events, path, tempo_bpm=tempo_bpm, track_name=title)
    png = music.piano_roll_png(events, path.with_suffix(".png"), title=title)
    return midi, png


def generate_cli(name, args):
    """`zoo generate NAME --key K --length N --temperature T --seed S --out FILE.mid`."""
    from zoo import hub

    if args.key is None:
        raise ValueError('a music model generates in a key: pass --key, e.g. --key "D major"')
    if getattr(args, "prompt", None) is not None:
        raise ValueError("--prompt is for language models; a music model takes --key")
    (key,) = _as_key_list([args.key])
    length = 64 if args.length is None else args.length
    length, temperature, seed, _ = _check_request(length, args.temperature, args.seed, None)
    serving = hub.load_serving(name)
    (events,) = generate(serving, [key], num_events=length, temperature=temperature, seed=seed)
    pc, mode = music.parse_key(key)
    title = f"{name}: {music.key_name(pc, mode)}, seed {seed}, temperature {temperature:g}"
    midi, png = write_melody(events, args.out, title=title)
    rate = music.in_key_rate(events, key)
    print(f"wrote {midi} ({len(events)} events, {music.total_steps(events) / 4:g} quarter notes "
          f"at 90 bpm, {rate:.0%} of the notes in {music.key_name(pc, mode)}) and the piano roll {png}")
    return 0


def demo(out_dir=".", name=SHIPPED, key="D major", length=32, seed=7, temperature=1.0):
    """Load `name` from the hub, generate a melody in `key` into `out_dir`; return the MIDI path.

    Writes ``melody-<key>-seed<seed>.mid`` and the piano-roll ``.png`` beside
    it, prints where, and returns the MIDI file's path.
    """
    from zoo import hub

    serving = hub.load_serving(name)
    (events,) = generate(serving, [key], num_events=length, temperature=temperature, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = key.strip().replace(" ", "-").replace("#", "sharp").lower()
    midi, png = write_melody(events, out_dir / f"melody-{slug}-seed{seed}.mid",
                             title=f"{name}: {key}, seed {seed}")
    notes = [music.pitch_name(p) for p, _ in events if p is not None]
    print(f"{name}: {len(events)} events in {key}: {' '.join(notes[:16])}"
          f"{' ...' if len(notes) > 16 else ''}")
    print(f"wrote {midi} and {png}")
    return midi
