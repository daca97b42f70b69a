"""Language models: the probability of the next token given every token before it.

One model family serves both granularities the zoo ships: words (Mikolov's
Penn Treebank, 10k words) and characters (Shakespeare). The network is the
classic one of Zaremba et al. (2014) with the output embedding tied to the
input embedding (Press & Wolf 2017):

    token ids [batch, time] → Embedding(units) → Dropout
      → zoo LSTM | GRU | SimpleRNN (units) × layers, each followed by Dropout
      → logits = h · Eᵀ + b   (E: the input embedding, shared; `tie=False`: a separate output matrix,
                               and the embedding may be smaller than the state)

Training is truncated backpropagation through time over contiguous text: the
training stream is cut into `batch_size` equal rows, and consecutive windows
of `steps` tokens of every row make consecutive batches; the recurrent layers
are stateful, so each window starts from the state the previous window of its
row ended in (gradients stop at the window's edge), and the state is reset at
the start of every epoch and of every evaluation (`build_training_model`,
`stream_windows`, `ResetStatesEachEpoch`).

Everything after training uses the same layers with the state made explicit
(`build_model`): inputs ``tokens`` plus one tensor per state (``rnn_0_h``,
``rnn_0_c``, ...), outputs ``logits`` plus the final states. Id 0 is padding
and masked out (the state carries over a padded step), which lets a batch of
prompts of different lengths be left-padded and primed exactly as if each were
alone. The model is what the hub ships and what `zoo verify` measures:

* `stream_log_likelihood`: the exact log-likelihood of a held-out text read as
  one stream from the start token, the state carried across chunks (the
  perplexity over every token, none dropped);
* `generate_texts`: prompt priming, then any method of `zoo.generation.decode`
  (greedy, sampling with temperature / top-k / top-p, beam);
* `write_serving`: a SavedModel with ``generate`` and ``score`` signatures that
  take raw text and tokenise it in the graph exactly as the training text was.

A `TextCodec` turns raw text into ids and back: for words it lower-cases, maps
numbers to ``N`` and splits off clitics as Mikolov's PTB does (the PTB text
itself passes through unchanged, a test checks it); for characters it maps
every character outside the training alphabet to ``<unk>``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

import keras

TASK = "language-model"
IO_TYPE = "many-to-many (next-token prediction); one-to-many generation from a prompt"
PAD, PAD_TOKEN, UNK_TOKEN = 0, "<pad>", "<unk>"
#: The split of text from outside the training domain (Brown; see zoo.data.language), and every
#: split a model is scored on.
OUT_OF_DOMAIN = "brown"
HELD_OUT = ("validation", "test", OUT_OF_DOMAIN)
#: Token ids scored per call of the Keras model in `stream_log_likelihood` (memory: steps × vocab floats).
SCORE_CHUNK = 1024
#: Bounds of the serving signatures (an InvalidArgumentError names the one broken): logits per `score`
#: call (batch × longest text × vocabulary: 2**26 floats, 256 MiB), prompt tokens per `generate` call.
MAX_SCORE_LOGITS = 2 ** 26
MAX_PROMPT_TOKENS = 2 ** 20
MAX_GENERATE_LENGTH = 4096
MAX_TOP_K = 1000
MAX_BEAM_WIDTH = 16
#: Published test perplexities on Mikolov's PTB split (the same split as ours).
PUBLISHED_PTB = {
    "KN-5 (Mikolov et al. 2011)": 141.2,
    "LSTM small, 2×200, no dropout (Zaremba et al. 2014)": 114.5,
    "LSTM medium, 2×650, dropout 0.5 (Zaremba et al. 2014)": 82.7,
    "LSTM large, 2×1500, dropout 0.65 (Zaremba et al. 2014)": 78.4,
    "AWD-LSTM (Merity et al. 2017)": 57.3,
}


def _tf():
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------------
# Text ↔ ids


class TextCodec:
    """The vocabulary of a language model and the rules that turn raw text into its tokens.

    `level` is ``"word"`` or ``"char"``; `vocabulary` lists the tokens by id
    (id 0 is ``<pad>``, and ``<unk>`` must be present); `start_token` is what
    every text is read after (``<eos>`` for words: a text starts as a
    sentence does; ``"\\n"`` for characters).
    """

    def __init__(self, level, vocabulary, start_token):
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', received {level!r}")
        vocabulary = list(vocabulary)
        if not vocabulary or vocabulary[0] != PAD_TOKEN:
            raise ValueError(f"the vocabulary must start with {PAD_TOKEN!r} (id {PAD})")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary has repeated tokens")
        for required in (UNK_TOKEN, start_token):
            if required not in vocabulary:
                raise ValueError(f"the vocabulary lacks {required!r}")
        self.level, self.vocabulary, self.start_token = level, vocabulary, start_token
        self.ids = {token: i for i, token in enumerate(vocabulary)}
        self.unk_id, self.start_id = self.ids[UNK_TOKEN], self.ids[start_token]

    @classmethod
    def from_training_tokens(cls, level, tokens, start_token, min_count=1):
        """Tokens seen at least `min_count` times, most frequent first (ties by the token), after
        ``<pad>`` and ``<unk>``."""
        import collections

        counts = collections.Counter(tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in (PAD_TOKEN, UNK_TOKEN)),
                      key=lambda t: (-counts[t], t))
        if start_token not in kept:
            kept.append(start_token)
        return cls(level, [PAD_TOKEN, UNK_TOKEN] + kept, start_token)

    def config(self):
        return {"level": self.level, "vocabulary": self.vocabulary, "start_token": self.start_token}

    @classmethod
    def from_config(cls, config):
        return cls(config["level"], config["vocabulary"], config["start_token"])

    @property
    def unit(self):
        return "word" if self.level == "word" else "character"

    def encode(self, tokens) -> np.ndarray:
        """Ids of already-split tokens (unknown ones → ``<unk>``)."""
        return np.array([self.ids.get(t, self.unk_id) for t in tokens], dtype=np.int32)

    # -- the tokeniser of raw text, in TensorFlow (the same graph code runs in the SavedModel) --

    def split_tensor(self, texts, table=None):
        """Raw texts string [batch] → their tokens as a RaggedTensor of strings (`table`: this
        codec's `lookup_table()`, made afresh when not given).

        Words: lower-cased; a line break ends a sentence (``<eos>``); numbers become ``N``;
        ``n't`` and the clitics ``'s 're 've 'll 'd 'm`` are split off, ``$ % & #`` stand alone,
        other punctuation is dropped (Mikolov's PTB has none) and so are ``. - '`` at the edges of
        a word the vocabulary does not know as written (``u.s.`` stays, ``rise.`` is ``rise``);
        every text ends with ``<eos>``. The PTB text itself passes through unchanged.
        Characters: the Unicode characters of the text (invalid UTF-8 is replaced)."""
        tf = _tf()
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.level == "char":
            return tf.strings.unicode_split(texts, "UTF-8", errors="replace")
        table = table if table is not None else self.lookup_table()
        x = tf.strings.lower(texts, encoding="utf-8")
        x = tf.strings.regex_replace(x, r"[\x{2018}\x{2019}`]", "'")
        x = tf.strings.regex_replace(x, r"\r\n?|[\x{2028}\x{2029}]", "\n")
        x = tf.strings.regex_replace(x, r"\n", " <eos> ")
        words = tf.strings.split(x)
        # a word the vocabulary knows as written stays; any other is taken apart
        flat = words.flat_values
        x = tf.strings.regex_replace(flat, r"(\pL)n't$", r"\1 n't")
        x = tf.strings.regex_replace(x, r"(\pL)'(s|re|ve|ll|d|m)$", r"\1 '\2")
        x = tf.strings.regex_replace(x, r"([$%&#])", r" \1 ")
        x = tf.strings.regex_replace(x, r"[^\pL\pN\s'.,/:+\-&$%#]", " ")
        for _ in range(2):  # twice: neighbouring matches share their space
            x = tf.strings.regex_replace(x, r"(^|\s)[+-]?\d[\d,./:-]*(\s|$)", r"\1N\2")  # a number
        x = tf.strings.regex_replace(x, r"^n$", "N")  # PTB's N, lower-cased
        x = tf.strings.regex_replace(x, r"[,/:+]", " ")
        flat = tf.where(self._known(table, flat), flat, x)
        words = tf.strings.split(tf.strings.reduce_join(words.with_flat_values(flat), axis=1, separator=" "))
        # then ' . - at the edges of a word it does not know are dropped
        flat = words.flat_values
        bare = tf.strings.regex_replace(flat, r"^[.'\-]+|[.'\-]+$", "")
        flat = tf.where(self._known(table, flat), flat, bare)
        words = tf.ragged.boolean_mask(words.with_flat_values(flat), words.with_flat_values(flat != ""))
        # every text ends a sentence exactly once
        last = words[:, -1:]
        needs_end = tf.logical_not(tf.reduce_any(tf.equal(last, "<eos>"), axis=1))
        end = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(needs_end, tf.int64))], "<eos>"), tf.cast(needs_end, tf.int64))
        return tf.concat([words, end], axis=1)

    def _known(self, table, tokens):
        return (table.lookup(tokens) != self.unk_id) | (tokens == UNK_TOKEN)

    def lookup_table(self):
        tf = _tf()
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.vocabulary), tf.range(len(self.vocabulary))),
            default_value=self.unk_id)

    def split(self, texts) -> list:
        """Raw texts → token lists, by the same graph code as the SavedModel."""
        ragged = self.split_tensor(list(texts))
        return [[t.decode("utf-8") for t in row] for row in ragged.to_list()]

    def join_tensor(self, tokens):
        """Token strings [batch, n] → texts [batch]: characters concatenated; words joined by spaces,
        ``<eos>`` as a line break (without the spaces around it)."""
        tf = _tf()
        if self.level == "char":
            return tf.strings.reduce_join(tokens, axis=1)
        words = tf.where(tokens == "<eos>", "\n", tokens)
        return tf.strings.regex_replace(tf.strings.reduce_join(words, axis=1, separator=" "), " ?\n ?", "\n")

    def join(self, tokens) -> str:
        """Tokens → text, by the same graph code as the SavedModel (`join_tensor`)."""
        tokens = list(tokens)
        row = _tf().constant([tokens], _tf().string, shape=[1, len(tokens)])
        return self.join_tensor(row).numpy()[0].decode("utf-8")


# ---------------------------------------------------------------------------
# The model


@keras.saving.register_keras_serializable(package="zoo.language_model", name="LogitBias")
class LogitBias(keras.layers.Layer):
    """Adds a learned bias per vocabulary entry to the logits (the tied embedding has none)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, logits):
        return logits + keras.ops.cast(self.bias, logits.dtype)


@keras.saving.register_keras_serializable(package="zoo.language_model", name="TiedEmbedding")
class TiedEmbedding(keras.layers.ReversibleEmbedding):
    """`keras.layers.ReversibleEmbedding` that reads masked sequences when reversed (the logits of a
    padded step are computed and ignored by the loss), without Keras's warning that it drops the mask."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_masking = True


def state_names(cell, num_layers):
    """The names of the explicit state tensors, layer by layer (LSTM: h and c; GRU, RNN: h)."""
    parts = ("h", "c") if cell == "lstm" else ("h",)
    return [f"rnn_{i}_{p}" for i in range(num_layers) for p in parts]


class _Layers:
    """The layers of one language model (built afresh for the explicit-state and the stateful model)."""

    def __init__(self, vocab_size, units, num_layers, cell, dropout, tie, stateful, embedding_dim=None):
        from zoo import layers

        embedding_dim = embedding_dim or units
        if tie and embedding_dim != units:
            raise ValueError(f"a tied output layer needs embedding_dim == units, received {embedding_dim} and "
                             f"{units}")
        sequence_layer = layers.sequence_layer_class(cell)
        self.embedding = TiedEmbedding(
            vocab_size, embedding_dim, tie_weights=tie,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1), name="embedding")
        self.rnns = [sequence_layer(units, return_sequences=True, return_state=True, stateful=stateful,
                                    name=f"rnn_{i}") for i in range(num_layers)]
        self.drops = [keras.layers.Dropout(dropout, name=f"dropout_{i}") for i in range(num_layers + 1)]
        # untied: a separate output matrix (units may differ from the embedding size)
        self.output = None if tie else keras.layers.Dense(vocab_size, use_bias=False, name="output")
        self.bias = LogitBias(name="logit_bias")

    def logits(self, x):
        return self.bias(self.embedding(x, reverse=True) if self.output is None else self.output(x))


def _check_architecture(vocab_size, units, num_layers, cell, dropout):
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be at least 3 (<pad>, <unk>, a token), received {vocab_size}")
    if units < 1 or num_layers < 1:
        raise ValueError(f"units and num_layers must be positive, received {units}, {num_layers}")
    if cell not in ("lstm", "gru", "rnn"):
        raise ValueError(f"cell must be 'lstm', 'gru' or 'rnn', received {cell!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout}")


def build_model(vocab_size, units=200, num_layers=2, cell="lstm", dropout=0.0, tie=True, embedding_dim=None,
                name="language_model"):
    """The explicit-state language model (what the hub ships): inputs ``tokens`` int32 [batch, time]
    (0 = padding, masked) and the states ``rnn_<i>_h`` (``_c``) float32 [batch, units]; outputs
    ``logits`` [batch, time, vocab] and the final states under the same names. Tied (`tie`), the
    logits are the last outputs times the embedding transposed, and the embedding size is `units`;
    untied, a separate output matrix reads them and the embedding has `embedding_dim` (default units)."""
    _check_architecture(vocab_size, units, num_layers, cell, dropout)
    parts = _Layers(vocab_size, units, num_layers, cell, dropout, tie, stateful=False, embedding_dim=embedding_dim)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    names = state_names(cell, num_layers)
    states = {n: keras.Input((units,), name=n) for n in names}
    mask = keras.ops.not_equal(tokens, PAD)
    x = parts.drops[0](parts.embedding(tokens))
    outputs = {}
    per_layer = len(names) // num_layers
    for i, rnn in enumerate(parts.rnns):
        mine = names[i * per_layer:(i + 1) * per_layer]
        x, *final = rnn(x, initial_state=[states[n] for n in mine], mask=mask)
        outputs.update(zip(mine, final))
        x = parts.drops[i + 1](x)
    outputs["logits"] = parts.logits(x)
    return keras.Model({"tokens": tokens, **states}, outputs, name=name)


def build_training_model(model, batch_size):
    """A stateful copy of `model` for truncated BPTT over [batch_size, steps] windows (same weights,
    copied in; `copy_weights` copies them back). Outputs the logits only."""
    config = architecture(model)
    parts = _Layers(config["vocab_size"], config["units"], config["num_layers"], config["cell"], config["dropout"],
                    config["tie"], stateful=True, embedding_dim=config["embedding_dim"])
    tokens = keras.Input((None,), batch_size=batch_size, dtype="int32", name="tokens")
    x = parts.drops[0](parts.embedding(tokens))
    for i, rnn in enumerate(parts.rnns):
        x, *_ = rnn(x)
        x = parts.drops[i + 1](x)
    trainer = keras.Model(tokens, parts.logits(x), name=f"{model.name}_stateful")
    copy_weights(model, trainer)
    return trainer


def round_embedding_to_float16(model):
    """Round the input embedding to float16 values (kept in float32): what the SavedModel stores, so
    that the Keras model measured for the card and the SavedModel compute the same numbers."""
    layer = model.get_layer("embedding")
    layer.embeddings.assign(np.asarray(layer.embeddings).astype(np.float16).astype(np.float32))
    return model


def copy_weights(source, target):
    """Copy every layer's weights by layer name (the explicit and the stateful model share names)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def architecture(model) -> dict:
    """vocab_size, units, embedding_dim, num_layers, cell, dropout and tie of a model built by `build_model`."""
    from zoo import layers
    from zoo.layers.base import RecurrentSequence

    embedding = model.get_layer("embedding")
    rnns = [layer for layer in model.layers if isinstance(layer, RecurrentSequence)]
    cells = {cls: short for short, cls in layers.SEQUENCE_LAYERS.items()}
    return {"vocab_size": int(embedding.input_dim), "units": int(rnns[0].cell.units),
            "embedding_dim": int(embedding.output_dim), "num_layers": len(rnns), "cell": cells[type(rnns[0])],
            "dropout": float(model.get_layer("dropout_0").rate), "tie": bool(embedding.tie_weights)}


def compile_training(trainer, learning_rate, clipnorm, optimizer="sgd"):
    """SGD (Zaremba et al.) or Adam on the mean −log p per token, clipped to a global norm."""
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate, global_clipnorm=clipnorm)
    elif optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}")
    trainer.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return trainer


def compile_model(model, learning_rate=1e-3, clipnorm=0.25):
    """The shipped model compiled for fine-tuning: Adam on the logits' cross-entropy (padding weighs 0
    when passed as sample weights)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    return model


class ResetStatesEachEpoch(keras.callbacks.Callback):
    """Zero the recurrent states of a stateful model before every epoch and every evaluation."""

    def _reset(self):
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()

    def on_test_end(self, logs=None):
        self._reset()


class EpochLearningRate(keras.callbacks.Callback):
    """Zaremba et al.'s schedule: `base` for the first `decay_start` epochs, then × `decay` per epoch
    (a function of the epoch number alone, so a resumed run continues it exactly)."""

    def __init__(self, base, decay_start, decay):
        super().__init__()
        self.base, self.decay_start, self.decay = float(base), int(decay_start), float(decay)

    def rate(self, epoch):
        return self.base * self.decay ** max(0, epoch + 1 - self.decay_start)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate(epoch))


# ---------------------------------------------------------------------------
# Data for truncated BPTT


def stream_windows(ids, batch_size, steps):
    """A contiguous stream cut for stateful truncated BPTT: a tf.data.Dataset of (inputs, targets)
    int32 [batch_size, steps], window k of every row continuing window k-1 of that row; the tail that
    does not fill a window is dropped."""
    tf = _tf()
    ids = np.asarray(ids, dtype=np.int32)
    row_length = (len(ids) - 1) // batch_size
    windows = row_length // steps
    if windows < 1:
        raise ValueError(f"{len(ids)} tokens are too few for one window of {batch_size} rows × {steps} steps")
    rows_in = ids[: batch_size * row_length].reshape(batch_size, row_length)
    rows_out = ids[1: batch_size * row_length + 1].reshape(batch_size, row_length)
    used = windows * steps
    x = rows_in[:, :used].reshape(batch_size, windows, steps).transpose(1, 0, 2)
    y = rows_out[:, :used].reshape(batch_size, windows, steps).transpose(1, 0, 2)
    return tf.data.Dataset.from_tensor_slices((x, y))


def zero_states(model, batch):
    units = architecture(model)["units"]
    return {n: np.zeros((batch, units), np.float32) for n in model.input if n != "tokens"}


def stream_log_likelihood(model, ids, start_id, chunk=SCORE_CHUNK) -> dict:
    """Exact log-likelihood of `ids` read as one stream after `start_id`, the state carried across
    chunks: ``{"tokens", "nll", "perplexity", "bits_per_token"}`` (natural-log nll per token)."""
    tf = _tf()
    ids = np.asarray(ids, dtype=np.int32)
    if ids.size == 0:
        raise ValueError("nothing to score: the token stream is empty")
    inputs = np.concatenate([[start_id], ids[:-1]]).astype(np.int32)
    states = zero_states(model, 1)

    @tf.function(reduce_retracing=True)
    def score(tokens, targets, states):
        out = model({"tokens": tokens, **states}, training=False)
        logp = tf.nn.log_softmax(tf.cast(out["logits"], tf.float32))
        picked = tf.gather(logp, targets, batch_dims=2)
        return tf.reduce_sum(tf.cast(picked, tf.float64)), {n: out[n] for n in states}

    total = 0.0
    for start in range(0, len(ids), chunk):
        piece = slice(start, start + chunk)
        value, states = score(inputs[None, piece], ids[None, piece], states)
        total += float(value)
    nll = -total / len(ids)
    return {"tokens": int(len(ids)), "nll": nll, "perplexity": math.exp(nll), "bits_per_token": nll / math.log(2)}


# ---------------------------------------------------------------------------
# Generation and scoring on raw text (the same functions run eagerly and in the SavedModel)


class ModelReader:
    """The layers of a language model as functions of explicit states: `states_after(tokens, states)`
    (no output layer), `run(tokens, states)` (logits too) and `zero_states(batch)`.

    `embedding_matrix` (a callable returning a float32 [vocabulary, units] tensor) replaces the
    embedding layer's matrix, in the lookup and, when tied, in the output layer: the SavedModel
    stores that matrix in float16 (`write_serving`) and reads it through this.
    """

    def __init__(self, model, embedding_matrix=None):
        settings = architecture(model)
        self.model, self.units, self.tie = model, settings["units"], settings["tie"]
        self.names = state_names(settings["cell"], settings["num_layers"])
        self.per_layer = len(self.names) // settings["num_layers"]
        self.embedding = model.get_layer("embedding")
        self.bias = model.get_layer("logit_bias")
        self.rnns = [model.get_layer(f"rnn_{i}") for i in range(settings["num_layers"])]
        self.embedding_matrix = embedding_matrix

    def zero_states(self, batch):
        tf = _tf()
        return {n: tf.zeros([batch, self.units]) for n in self.names}

    def _embed(self, tokens):
        if self.embedding_matrix is None:
            return self.embedding(tokens)
        return _tf().gather(self.embedding_matrix(), tokens)

    def _logits(self, x):
        tf = _tf()
        if not self.tie:
            logits = self.model.get_layer("output")(x)
        elif self.embedding_matrix is None:
            logits = self.embedding(x, reverse=True)
        else:
            logits = tf.matmul(x, self.embedding_matrix(), transpose_b=True)
        return tf.cast(self.bias(logits), tf.float32)

    def _read(self, tokens, states):
        tf = _tf()
        tokens = tf.cast(tokens, tf.int32)
        x, mask, final = self._embed(tokens), tokens != PAD, {}
        for i, rnn in enumerate(self.rnns):
            mine = self.names[i * self.per_layer:(i + 1) * self.per_layer]
            x, *after = rnn(x, initial_state=[states[n] for n in mine], mask=mask, training=False)
            final.update(zip(mine, after))
        return x, final

    def states_after(self, tokens, states):
        """The states after reading `tokens` (int [batch, time], 0 = padding, masked) from `states`
        (memory: batch × time × units, no logits)."""
        return self._read(tokens, states)[1]

    def run(self, tokens, states):
        """(logits float32 [batch, time, vocabulary], final states)."""
        outputs, final = self._read(tokens, states)
        return self._logits(outputs), final


def _reader(model):
    return model if isinstance(model, ModelReader) else ModelReader(model)


def _prime(reader, prompt_ids):
    """Run the prompt (left-padded ids [batch, time], every row ending in a real token) through the
    model: the state after all but the last token, and that last token (the first decoding input)."""
    tf = _tf()
    states = reader.zero_states(tf.shape(prompt_ids)[0])
    history = prompt_ids[:, :-1]
    out = tf.cond(tf.shape(history)[1] > 0, lambda: reader.states_after(history, states), lambda: states)
    return {n: out[n] for n in reader.names}, prompt_ids[:, -1]


def _left_pad(ragged):
    tf = _tf()
    width = tf.reduce_max(ragged.row_lengths())
    pad = width - ragged.row_lengths()
    pads = tf.RaggedTensor.from_row_lengths(tf.zeros([tf.reduce_sum(pad)], ragged.dtype), pad)
    return tf.concat([pads, ragged], axis=1).to_tensor(PAD)


def generate_ids(model, prompt_ids, *, max_length, method="sample", temperature=1.0, top_k=0, top_p=1.0,
                 seed=0, beam_width=1):
    """Continue every prompt (left-padded ids, each row starting with the start token) by
    `max_length` tokens: the tokens [batch, max_length] (padding never chosen, no end token).
    `model`: a model built by `build_model`, or a `ModelReader` of one."""
    from zoo import generation

    reader = _reader(model)
    state, last = _prime(reader, prompt_ids)

    def step(tokens, state, context, t):
        logits, new_state = reader.run(tokens[:, None], state)
        return logits[:, 0], new_state, {}

    result = generation.decode(step, state, last, method=method, max_length=max_length, pad_token=PAD,
                               temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                               beam_width=beam_width, forbidden_tokens=(PAD,))
    return result["tokens"]


def score_ids(model, ragged_ids, start_id):
    """Per text: the summed natural-log probability of its tokens read after the start token, and the
    number of tokens. `ragged_ids` int [batch, (tokens)]; `model` as in `generate_ids`."""
    tf = _tf()
    reader = _reader(model)
    batch = ragged_ids.nrows()
    targets = ragged_ids.to_tensor(PAD)

    def read():
        inputs = tf.concat([tf.fill([batch, 1], tf.constant(start_id, targets.dtype)), targets[:, :-1]], axis=1)
        inputs = tf.where(targets == PAD, tf.zeros_like(inputs), inputs)
        logits, _ = reader.run(inputs, reader.zero_states(batch))
        picked = tf.gather(tf.nn.log_softmax(logits), tf.cast(targets, tf.int32), batch_dims=2)
        return tf.reduce_sum(picked * tf.cast(targets != PAD, tf.float32), axis=1)

    # a batch of only empty texts (a character model reads nothing for ""): no step to run
    log_prob = tf.cond(tf.shape(targets)[1] > 0, read, lambda: tf.zeros([batch], tf.float32))
    return log_prob, tf.cast(ragged_ids.row_lengths(), tf.int32)


def text_token_ids(codec, table, texts):
    """Raw texts → their token ids (RaggedTensor int32), tokenised as the training text was read."""
    tokens = codec.split_tensor(texts, table)
    return tokens.with_flat_values(table.lookup(tokens.flat_values))


def check_sampling(max_length, temperature, top_k, top_p):
    """Clear errors for sampling arguments out of range (Python values; the CLI and Python API)."""
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) \
            or not 1 <= max_length <= MAX_GENERATE_LENGTH:
        raise ValueError(f"length must be an integer in 1..{MAX_GENERATE_LENGTH}, received {max_length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), received {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 0 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be an integer in 0..{MAX_TOP_K} (0 = no limit), received {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus), received {top_p!r}")


def generate_texts(model, codec, prompts, *, max_length, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                   beam_width=1):
    """Continue each prompt (raw text; "" starts from nothing) by `max_length` tokens sampled at
    `temperature` (0 = greedy) within `top_k` / `top_p`, seeded; or, with `beam_width` > 1, the most
    likely continuation of that length by beam search (no sampling). The continuations as text."""
    check_sampling(max_length, temperature, top_k, top_p)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or not 1 <= beam_width <= MAX_BEAM_WIDTH:
        raise ValueError(f"beam width must be an integer in 1..{MAX_BEAM_WIDTH}, received {beam_width!r}")
    prompts = [_as_text(p, "prompt") for p in prompts]
    table = codec.lookup_table()
    ids = _left_pad(prompt_token_ids(codec, table, prompts))
    method = "beam" if beam_width > 1 else "greedy" if temperature == 0 else "sample"
    tokens = generate_ids(model, ids, max_length=max_length, method=method, temperature=float(temperature),
                          top_k=int(top_k), top_p=float(top_p), seed=int(seed), beam_width=int(beam_width)).numpy()
    texts = codec.join_tensor(_tf().gather(_tf().constant(codec.vocabulary), tokens)).numpy()
    return [text.decode("utf-8") for text in texts]


def prompt_token_ids(codec, table, prompts):
    """[start] + each prompt's token ids (RaggedTensor int32); a word prompt gets no closing ``<eos>``
    (it is to be continued)."""
    tf = _tf()
    tokens = codec.split_tensor(prompts, table)
    if codec.level == "word":  # drop the <eos> the tokeniser closes every text with
        tokens = tokens[:, :-1]
    ids = tokens.with_flat_values(table.lookup(tokens.flat_values))
    start = tf.fill([ids.nrows(), 1], tf.constant(codec.start_id, ids.dtype))
    return tf.concat([start, ids], axis=1)


def _as_text(value, what):
    if not isinstance(value, str):
        raise ValueError(f"a {what} must be a string, received {type(value).__name__}")
    return value


def score_texts(model, codec, texts, max_logits=None):
    """Per text: ``{"tokens", "log_prob", "perplexity", "bits_per_token"}`` under the model.

    Texts are scored in batches of at most `max_logits` (default `MAX_SCORE_LOGITS`) logits (batch ×
    longest text × vocabulary); a text longer than that alone is scored as a stream in chunks, the
    state carried across them (`stream_log_likelihood`): memory stays bounded whatever the input."""
    texts = [_as_text(t, "text") for t in texts]
    budget = max(1, (max_logits or MAX_SCORE_LOGITS) // len(codec.vocabulary))  # tokens per call
    table = codec.lookup_table()
    token_ids = text_token_ids(codec, table, texts).to_list() if texts else []
    results = [None] * len(texts)
    batch, longest = [], 0
    for index in sorted(range(len(texts)), key=lambda i: len(token_ids[i])):
        ids = token_ids[index]
        if len(ids) > budget:  # too long for one call: a stream in chunks
            stream = stream_log_likelihood(model, ids, codec.start_id, chunk=min(SCORE_CHUNK, budget))
            results[index] = _per_text(-stream["nll"] * stream["tokens"], stream["tokens"])
            continue
        if batch and (len(batch) + 1) * max(longest, len(ids)) > budget:
            _score_batch(model, codec, token_ids, batch, results)
            batch, longest = [], 0
        batch.append(index)
        longest = max(longest, len(ids))
    if batch:
        _score_batch(model, codec, token_ids, batch, results)
    return results


def _score_batch(model, codec, token_ids, indices, results):
    tf = _tf()
    ragged = tf.ragged.constant([token_ids[i] for i in indices], dtype=tf.int32, ragged_rank=1)
    log_probs, counts = score_ids(model, ragged, codec.start_id)
    for i, lp, n in zip(indices, log_probs.numpy(), counts.numpy()):
        results[i] = _per_text(float(lp), int(n))


def _per_text(log_prob, tokens):
    if tokens == 0:
        return {"tokens": 0, "log_prob": 0.0, "perplexity": float("nan"), "bits_per_token": float("nan")}
    return {"tokens": tokens, "log_prob": log_prob, "perplexity": math.exp(-log_prob / tokens),
            "bits_per_token": -log_prob / tokens / math.log(2)}


# ---------------------------------------------------------------------------
# Serving


def write_serving(model, path, codec):
    """SavedModel with two signatures (raw text in, tokenised in the graph as the training text was):

    * ``score`` (also ``serving_default``): ``texts`` string [batch] → ``log_prob`` float32 (natural
      log of the probability of the text's tokens), ``tokens`` int32, ``perplexity`` float32 and
      ``bits_per_token`` float32 (bits per character for a character model), per text;
    * ``generate``: ``prompts`` string [batch], ``max_length`` int32, ``temperature`` float32
      (0 = greedy), ``top_k`` int32 (0 = all), ``top_p`` float32 (1 = all), ``seed`` int64 →
      ``texts`` string [batch], the continuations.
    """
    tf = _tf()
    from zoo.tasks.word_decoding import hold_model

    module = tf.Module(name="language_model")
    # The embedding is stored once, in float16 (the recipe rounds it to float16 values before
    # measuring, so both files give the same numbers); the functions read it through a ModelReader.
    embedding = model.get_layer("embedding").embeddings
    hold_model(module, model, stored_elsewhere=[embedding])
    module.embedding_float16 = tf.Variable(tf.cast(embedding, tf.float16), trainable=False,
                                           name="embedding_float16")
    reader = ModelReader(model, embedding_matrix=lambda: tf.cast(module.embedding_float16, tf.float32))
    module.table = codec.lookup_table()
    module.vocabulary = tf.constant(codec.vocabulary)

    def score(texts):
        empty = {"log_prob": tf.zeros([0]), "tokens": tf.zeros([0], tf.int32), "perplexity": tf.zeros([0]),
                 "bits_per_token": tf.zeros([0])}
        return tf.cond(tf.size(texts) > 0, lambda: score_batch(texts), lambda: empty)

    def score_batch(texts):
        ids = text_token_ids(codec, module.table, texts)
        logits = tf.cast(ids.nrows(), tf.int64) * tf.reduce_max(ids.row_lengths()) * len(codec.vocabulary)
        check = tf.debugging.assert_less_equal(
            logits, tf.constant(MAX_SCORE_LOGITS, tf.int64),
            message=f"texts too long for one call: batch x longest text x vocabulary must be <= "
                    f"{MAX_SCORE_LOGITS} logits ({MAX_SCORE_LOGITS // len(codec.vocabulary)} tokens); send "
                    f"fewer or shorter texts (zoo score and score_texts split them for you)")
        with tf.control_dependencies([check]):
            ids = ids.with_flat_values(tf.identity(ids.flat_values))
        log_prob, tokens = score_ids(reader, ids, codec.start_id)
        per_token = -log_prob / tf.cast(tf.maximum(tokens, 1), tf.float32)
        nan = tf.fill(tf.shape(per_token), float("nan"))
        per_token = tf.where(tokens > 0, per_token, nan)
        return {"log_prob": log_prob, "tokens": tokens, "perplexity": tf.exp(per_token),
                "bits_per_token": per_token / math.log(2)}

    def generate(prompts, max_length, temperature, top_k, top_p, seed):
        # the bounds of this signature; zoo.generation.decode checks the rest (max_length >= 1,
        # temperature >= 0, top_k >= 0, top_p in (0, 1])
        checks = [
            tf.debugging.assert_less_equal(max_length, MAX_GENERATE_LENGTH,
                                           message=f"max_length must be <= {MAX_GENERATE_LENGTH}"),
            tf.debugging.assert_equal(tf.math.is_finite(temperature), True, message="temperature must be finite"),
            tf.debugging.assert_less_equal(top_k, MAX_TOP_K, message=f"top_k must be <= {MAX_TOP_K}"),
        ]
        with tf.control_dependencies(checks):
            prompts = tf.identity(prompts)
        return {"texts": tf.cond(tf.size(prompts) > 0,
                                 lambda: generate_batch(prompts, max_length, temperature, top_k, top_p, seed),
                                 lambda: tf.zeros([0], tf.string))}

    def generate_batch(prompts, max_length, temperature, top_k, top_p, seed):
        ids = _left_pad(prompt_token_ids(codec, module.table, prompts))
        check = tf.debugging.assert_less_equal(
            tf.size(ids, out_type=tf.int64), tf.constant(MAX_PROMPT_TOKENS, tf.int64),
            message=f"prompts too long for one call: batch x longest prompt must be <= {MAX_PROMPT_TOKENS} tokens")
        with tf.control_dependencies([check]):
            ids = tf.identity(ids)
        tokens = generate_ids(reader, ids, max_length=max_length, method="sample", temperature=temperature,
                              top_k=top_k, top_p=top_p, seed=seed)
        return codec.join_tensor(tf.gather(module.vocabulary, tokens))

    module.score = tf.function(score, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    module.generate = tf.function(generate, input_signature=[
        tf.TensorSpec([None], tf.string, name="prompts"), tf.TensorSpec([], tf.int32, name="max_length"),
        tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"), tf.TensorSpec([], tf.int64, name="seed")])
    score_fn = module.score.get_concrete_function()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": score_fn, "score": score_fn, "generate": module.generate.get_concrete_function()})


def serving_examples():
    text = "the company said it expects sales to rise"
    return {"score": {"texts": [text, ""]},
            "generate": {"prompts": [text, ""], "max_length": 8, "temperature": 0.8, "top_k": 40,
                         "top_p": 0.95, "seed": 7}}


# ---------------------------------------------------------------------------
# Measurements for the card


def measure_throughput(trainer, dataset, steps=8):
    """Training tokens per second of the stateful model, and the share of a training step spent in the
    output layer (the softmax over the vocabulary): a step of the same model whose loss reads the last
    recurrent layer's outputs directly (no output layer) takes the rest."""
    tf = _tf()
    batches = list(dataset.take(steps + 2))
    optimizer = keras.optimizers.SGD(1e-9)
    variables = trainer.trainable_variables
    from zoo.layers.base import RecurrentSequence

    last_rnn = [layer for layer in trainer.layers if isinstance(layer, RecurrentSequence)][-1]
    recurrent_part = keras.Model(trainer.input, last_rnn.output[0])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def full_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, trainer(x, training=True))
        optimizer.apply(tape.gradient(loss, variables), variables)

    @tf.function
    def recurrent_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(recurrent_part(x, training=True)))
        grads = tape.gradient(loss, variables)
        optimizer.apply([g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)], variables)

    def timed(step):
        for x, y in batches[:2]:
            step(x, y)
        started = time.perf_counter()
        for x, y in batches[2:]:
            step(x, y)
        return (time.perf_counter() - started) / steps

    weights = trainer.get_weights()
    full, recurrent = timed(full_step), timed(recurrent_step)
    trainer.set_weights(weights)
    for layer in trainer.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()
    tokens = int(np.prod(batches[0][0].shape))
    return {"train_tokens_per_second": round(tokens / full, 1),
            "softmax_share_of_step": round(max(0.0, 1.0 - recurrent / full), 3),
            "step_seconds": round(full, 4), "tokens_per_step": tokens}


# ---------------------------------------------------------------------------
# Loading, zoo verify and the command line


def load_language_model(name):
    """(Keras model, TextCodec) of a hub language model."""
    from zoo import hub

    card = hub.info(name)
    return hub.load(name, compile=False), TextCodec.from_config(card["codec"])


def rewrite_serving(name, reason, root=None):
    """Write the SavedModel of the hub language model `name` again from its model.keras with this
    version's serving graph (`hub.rewrite_serving`); the weights and measured figures stay."""
    from zoo import hub

    root = Path(root) if root is not None else hub.models_dir()
    codec = TextCodec.from_config(hub.read_card(root / name / hub.CARD_FILE)["codec"])
    return hub.rewrite_serving(name, lambda keras_model, path: write_serving(keras_model, path, codec),
                               reason, root=root)


#: The granularity of each data set and the token every text is read after.
LEVELS = {"ptb": ("word", "<eos>"), "shakespeare": ("char", "\n")}


def load_tokens(data, split_seed=1337, max_tokens=None):
    """The token lists of `data` ("ptb" or "shakespeare": characters of the works of each split, one
    stream per split), by split name, the first `max_tokens` of each when given (smoke runs); and what a
    card says of the split (Shakespeare: the seed and the works of each split; both: the out-of-domain
    text, which `out_of_domain_tokens` reads once the model's codec is known)."""
    from zoo.data import language

    if data == "ptb":
        tokens, split = language.load_ptb(), {}
    elif data == "shakespeare":
        splits = language.load_shakespeare(seed=split_seed)
        tokens = {name: list(language.join_works(works)) for name, works in splits.items()}
        split = {"split_seed": split_seed, "works": {name: sorted(works) for name, works in splits.items()},
                 "split_rule": "whole works: validation and test are plays drawn with the seed; the poems train"}
    else:
        raise ValueError(f"data must be one of {', '.join(LEVELS)}, received {data!r}")
    split["out_of_domain"] = {
        OUT_OF_DOMAIN: f"{language.BROWN_LICENSE}: the first document of each of its 15 genres (American "
                       "English of 1961, news to fiction) as running text, a sentence per line "
                       "(zoo.data.language.brown_plain_text), read by the model's own tokeniser as any text "
                       "it is given; never trained on nor used to choose anything"}
    return {name: t[:max_tokens] if max_tokens else t for name, t in tokens.items()}, split


def out_of_domain_tokens(codec, max_tokens=None) -> list:
    """The Brown text (see `load_tokens`) as `codec` reads it: through the same tokeniser as the
    SavedModel's `score` (words: PTB conventions, unknown words kept for `encode` to map to <unk>)."""
    from zoo.data import language

    text = language.brown_plain_text(language.brown_sample())
    tokens = [t.decode("utf-8") for t in codec.split_tensor([text]).flat_values.numpy()]
    return tokens[:max_tokens] if max_tokens else tokens


def held_out_tokens(dataset, codec, names=HELD_OUT) -> dict:
    """The token lists of the held-out splits `names` of a card's data set, exactly as its recipe
    scored them."""
    tokens, _ = load_tokens(dataset["name"], dataset.get("split_seed", 1337), dataset.get("max_tokens"))
    if OUT_OF_DOMAIN in names:
        tokens[OUT_OF_DOMAIN] = out_of_domain_tokens(codec, dataset.get("max_tokens"))
    return {name: tokens[name] for name in names}


def remeasure(model, card):
    """`zoo verify`: the held-out perplexity (bits per token) and the seeded samples."""
    codec = TextCodec.from_config(card["codec"])
    measured = {}
    names = [name for name in HELD_OUT if name in card["metrics"]]
    for name, tokens in held_out_tokens(card["dataset"], codec, names).items():
        result = stream_log_likelihood(model, codec.encode(tokens), codec.start_id)
        measured[name] = {k: result[k] for k in ("perplexity", "bits_per_token")}
    if card.get("samples"):
        measured["samples"] = {"reproduced": reproduced_samples(model, codec, card["samples"])}
    return measured


def reproduced_samples(model, codec, samples):
    """The share of `samples` (card entries) that `model` regenerates exactly from their settings."""
    same = 0
    for sample in samples:
        (text,) = generate_texts(model, codec, [sample["prompt"]], max_length=sample["length"],
                                 temperature=sample["temperature"], top_k=sample["top_k"],
                                 top_p=sample["top_p"], seed=sample["seed"])
        same += text == sample["text"]
    return same / len(samples)


def make_samples(model, codec, prompts, temperatures, length, seed=7, top_k=0, top_p=1.0):
    """Seeded samples for the card: one per prompt and temperature."""
    samples = []
    for temperature in temperatures:
        for prompt in prompts:
            (text,) = generate_texts(model, codec, [prompt], max_length=length, temperature=temperature,
                                     top_k=top_k, top_p=top_p, seed=seed)
            samples.append({"prompt": prompt, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                            "seed": seed, "length": length, "text": text})
    return samples


def generate_cli(name, args):
    """`zoo generate NAME --prompt TEXT --length N --temperature T --top-k K --top-p P --seed S`."""
    if getattr(args, "key", None) is not None:
        raise ValueError("--key is for music models; a language model continues a --prompt")
    prompt = args.prompt if args.prompt is not None else ""
    length = 200 if args.length is None else args.length
    check_sampling(length, args.temperature, args.top_k, args.top_p)
    model, codec = load_language_model(name)
    unknown = _unknown_tokens(codec, prompt)
    if unknown:
        print(f"note: {', '.join(repr(t) for t in unknown)} not in the model's vocabulary; read as {UNK_TOKEN}",
              file=sys.stderr)
    (text,) = generate_texts(model, codec, [prompt], max_length=length, temperature=args.temperature,
                             top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                             beam_width=getattr(args, "beam", 1))
    joiner = "" if codec.level == "char" or not prompt or prompt[-1:].isspace() else " "
    print(prompt + joiner + text)
    return 0


def _unknown_tokens(codec, text):
    tokens = codec.split([text])[0]
    return sorted({t for t in tokens if t not in codec.ids})


def score_cli(name, texts):
    """`zoo score NAME < text.txt`: one line per input text, then the total over all of them."""
    model, codec = load_language_model(name)
    unit = "bits_per_char" if codec.level == "char" else "bits_per_word"
    print(f"tokens\tlog_prob\tperplexity\t{unit}")
    results = score_texts(model, codec, texts)
    for result in results:
        print(f"{result['tokens']}\t{result['log_prob']:.4f}\t{result['perplexity']:.4f}\t"
              f"{result['bits_per_token']:.4f}")
    if len(results) > 1:
        tokens = sum(r["tokens"] for r in results)
        total = _per_text(sum(r["log_prob"] for r in results), tokens)
        print(f"# all {len(results)} texts: {tokens}\t{total['log_prob']:.4f}\t{total['perplexity']:.4f}\t"
              f"{total['bits_per_token']:.4f}")
    return 0
