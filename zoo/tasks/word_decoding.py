"""What every word-writing task shares: the word head, its training set-up, and stepping an attention decoder.

Translation and captioning both end in a `zoo.layers.AttentionDecoder` whose
outputs go through `WordLogits` (a Dense layer that keeps its vocabulary).
`decode_words` runs such a decoder on `zoo.generation.decode` (greedy, sampling
or beam search in one `tf.while_loop`) and turns the ids back into words; the
task modules add only what is particular to them (the encoder, [UNK] handling,
detokenization).

Word ids 0..3 are the same in every vocabulary: PAD, UNK, BOS, EOS.
"""

from zoo import _backend  # noqa: F401

import keras
import tensorflow as tf

#: Decoder cells and attention kinds the word-writing tasks build (`--cell`, `--attention`).
CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("additive", "dot", "general", "none")
#: The recurrent states of each cell, named as the `bridge_<state>` layers that initialise them.
STATE_NAMES = {"lstm": ("h", "c"), "gru": ("h",), "rnn": ("h",)}
#: Upper bound of `beam_width`.
MAX_BEAM_WIDTH = 16

PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = "", "[UNK]", "<s>", "</s>"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]


# Registered under the name it was first published with, so saved models keep loading.
@keras.saving.register_keras_serializable(package="zoo.translation", name="WordLogits")
class WordLogits(keras.layers.Dense):
    """A `Dense` layer with one output per word of `vocabulary`, which it keeps (for decoding).

    Args:
        vocabulary: The output words; index 0..3 are PAD, UNK, BOS, EOS.
    """

    def __init__(self, vocabulary, **kwargs):
        kwargs.pop("units", None)
        super().__init__(units=len(vocabulary), **kwargs)
        self.vocabulary = [str(word) for word in vocabulary]

    def get_config(self):
        config = super().get_config()
        config.pop("units", None)
        return {**config, "vocabulary": self.vocabulary}


@keras.saving.register_keras_serializable(package="zoo", name="TiedWordEmbedding")
class TiedWordEmbedding(keras.layers.Layer):
    """One matrix for the target words in and out: ids → embeddings, and decoder outputs → word logits.

    Called on integer ids `[..., time]` it returns their embeddings `[..., time,
    embedding_dim]`; called on float decoder outputs `[..., input_dim]` it
    projects them to `embedding_dim` and scores every word against the same
    matrix, plus a bias: `logits = (x W_p + b_p) Eᵀ + b` (Press & Wolf 2017;
    Inan et al. 2017). Sharing the matrix halves the word parameters of a
    decoder and gives rare output words the training signal of their inputs.
    The layer is shared in the functional graph (called twice), so a model
    saves and loads it as one layer. Keeps its `vocabulary` like `WordLogits`.
    The matrix starts at N(0, 1/embedding_dim), so the first logits are of
    order one (at Keras's embedding scale, ±0.05, a tied decoder learns many
    times slower).

    Args:
        vocabulary: The words; index 0..3 are PAD, UNK, BOS, EOS.
        embedding_dim: Size of each word vector.
        input_dim: Feature size of the decoder outputs it scores.
    """

    def __init__(self, vocabulary, embedding_dim, input_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = [str(word) for word in vocabulary]
        self.embedding_dim, self.input_dim = int(embedding_dim), int(input_dim)
        if self.embedding_dim < 1 or self.input_dim < 1 or len(self.vocabulary) < len(SPECIAL_TOKENS):
            raise ValueError(f"TiedWordEmbedding needs embedding_dim >= 1, input_dim >= 1 and the four "
                             f"special words; received {embedding_dim!r}, {input_dim!r}, "
                             f"{len(self.vocabulary)} words")

    def build(self, input_shape=None):
        words = len(self.vocabulary)
        self.embeddings = self.add_weight(shape=(words, self.embedding_dim), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(
                                              stddev=self.embedding_dim ** -0.5))
        self.projection = self.add_weight(shape=(self.input_dim, self.embedding_dim), name="projection",
                                          initializer="glorot_uniform")
        self.projection_bias = self.add_weight(shape=(self.embedding_dim,), name="projection_bias",
                                               initializer="zeros")
        self.bias = self.add_weight(shape=(words,), name="bias", initializer="zeros")
        self.built = True

    def call(self, inputs):
        if "int" in keras.backend.standardize_dtype(inputs.dtype):
            return keras.ops.take(self.embeddings, inputs, axis=0)
        projected = keras.ops.matmul(inputs, self.projection) + self.projection_bias
        return keras.ops.matmul(projected, keras.ops.transpose(self.embeddings)) + self.bias

    def compute_output_spec(self, inputs):
        if "int" in keras.backend.standardize_dtype(inputs.dtype):
            return keras.KerasTensor(tuple(inputs.shape) + (self.embedding_dim,), dtype=self.compute_dtype)
        return keras.KerasTensor(tuple(inputs.shape[:-1]) + (len(self.vocabulary),), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary,
                "embedding_dim": self.embedding_dim, "input_dim": self.input_dim}


def word_head(model):
    """The layer that scores the next word: `next_word` (WordLogits) or, when tied, the target embedding."""
    names = {layer.name for layer in model.layers}
    if "next_word" in names:
        return model.get_layer("next_word")
    for layer in model.layers:
        if isinstance(layer, TiedWordEmbedding):
            return layer
    raise ValueError(f"model {model.name!r} has no word head (a 'next_word' layer or a TiedWordEmbedding)")


def check_decoder_choice(cell, attention):
    """ValueError naming `cell` or `attention` when it is not one the tasks build."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, received {cell!r}")
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, received {attention!r}")


def check_whole_number(name, value, low, high, note=""):
    """`value` as an int when it is a whole number (not a bool) in low..high, else a ValueError naming `name`."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}{note}, received {value!r}")
    return int(value)


def smoothed_sparse_crossentropy(y_true, y_pred, label_smoothing=0.1):
    """Cross-entropy of integer targets against logits, with `label_smoothing` of the mass spread evenly.

    `(1 - ε)·(−log p[target]) + ε·mean_v(−log p[v])`: the loss against the target
    distribution `(1 - ε)·onehot + ε/V` (Szegedy et al. 2016), per position.
    """
    log_probs = keras.ops.log_softmax(y_pred, axis=-1)
    targets = keras.ops.expand_dims(keras.ops.cast(y_true, "int32"), -1)
    target_nll = -keras.ops.squeeze(keras.ops.take_along_axis(log_probs, targets, axis=-1), -1)
    uniform_nll = -keras.ops.mean(log_probs, axis=-1)
    return (1.0 - label_smoothing) * target_nll + label_smoothing * uniform_nll


@keras.saving.register_keras_serializable(package="zoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """`SparseCategoricalCrossentropy(from_logits=True)` with label smoothing (Keras's takes none)."""

    def __init__(self, label_smoothing=0.1, reduction="mean_with_sample_weight",
                 name="smoothed_sparse_crossentropy", dtype=None):
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), received {label_smoothing!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return smoothed_sparse_crossentropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_model(model, learning_rate=2e-3, clipnorm=1.0, label_smoothing=0.0):
    """Adam with global-norm clipping; loss = mean −log p of the non-PAD target words.

    With `label_smoothing` > 0 the loss is `SmoothedSparseCrossentropy`.
    """
    if label_smoothing:
        loss = SmoothedSparseCrossentropy(label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                          reduction="mean_with_sample_weight")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        loss=loss,
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def fresh_copy(model, learning_rate=2e-3, clipnorm=1.0, label_smoothing=0.0):
    """Same architecture and weights, a new optimizer (what the hub ships: no Adam moments)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return compile_model(copy, learning_rate=learning_rate, clipnorm=clipnorm, label_smoothing=label_smoothing)


def restorable_variables(model):
    """The `tf.Variable`s a serving module must track so TF1 session loaders restore them.

    A Keras 3 variable is saved as a copy of the `tf.Variable` it wraps, while
    traced functions read the wrapped one; `tf.saved_model.load` maps the two,
    but `saved_model_cli run` / TF Serving restore only what the saver holds.
    """
    return [variable.value for variable in model.variables]


def hold_model(module, model, stored_elsewhere=(), **more_models):
    """Give a serving `tf.Module` its Keras model(s) so that a SavedModel stores every weight once.

    A module that tracked the Keras model would save each weight twice: the
    Keras variable's copy, and the wrapped `tf.Variable` that its traced
    functions read and that TF1 session loaders need (`restorable_variables`).
    The models are held as plain, untracked attributes; what the functions
    capture is tracked: the wrapped variables and the lookup tables of
    `StringLookup`-like layers. `stored_elsewhere` lists Keras variables of
    `model` that the module stores in another form (and its functions never
    read): they are left out.
    """
    for name, held in {"model": model, **more_models}.items():
        object.__setattr__(module, name, held)
    left_out = {id(variable.value) for variable in stored_elsewhere}
    module.restorable_variables = [v for v in restorable_variables(model) if id(v) not in left_out]

    def tables(layers):
        for layer in layers:
            if getattr(layer, "lookup_table", None) is not None:
                yield layer.lookup_table
            yield from tables(getattr(layer, "layers", ()))

    module.lookup_tables = list(tables(model.layers))


def checked_bounds(beam_width, max_length, max_beam_width, max_length_limit):
    """`beam_width` and `max_length` after in-graph checks of their bounds (clear InvalidArgumentErrors)."""
    checks = [
        tf.debugging.assert_greater_equal(beam_width, 1, message="beam_width must be >= 1"),
        tf.debugging.assert_less_equal(beam_width, max_beam_width,
                                       message=f"beam_width must be <= {max_beam_width}"),
        tf.debugging.assert_greater_equal(max_length, 1, message="max_length must be >= 1"),
        tf.debugging.assert_less_equal(max_length, max_length_limit,
                                       message=f"max_length must be <= {max_length_limit}"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(beam_width), tf.identity(max_length)


def decode_words(model, values, mask, initial_state, *, embedding, method, beam_width, max_length,
                 length_penalty=0.0, forbidden_tokens=(PAD, BOS), no_repeat_ngram_size=0):
    """Step the model's `decoder` over a memory with the generation engine and return words.

    Args:
        model: A Keras model with layers `decoder` (AttentionDecoder), `next_word`
            (WordLogits) and `embedding` (the name of its word embedding).
        values: The memory `[batch, cells, features]` (encoder outputs, an image grid).
        mask: bool `[batch, cells]` or None (every cell valid).
        initial_state: The decoder's initial state (a list of `[batch, units]`).
        method, beam_width, max_length, length_penalty, forbidden_tokens,
            no_repeat_ngram_size: as in `zoo.generation.decode` (the length
            penalty applies to beam search only).

    Returns:
        `{"tokens", "lengths", "scores", "attention" [batch, steps, cells], "words"}`,
        with "" in `words` and zeros in `attention` past each row's end.
    """
    from zoo import generation

    decoder = model.get_layer("decoder")
    embed = model.get_layer(embedding)
    head = word_head(model)
    memory = decoder.prepare(values, mask)
    state = decoder.initial_step_state(initial_state, memory)
    batch, cells = tf.shape(values)[0], tf.shape(values)[1]

    def step(tokens, state, context, t):
        output, new_state, weights = decoder.step(embed(tokens), state, context, training=False)
        if weights is None:
            weights = tf.zeros([tf.shape(tokens)[0], cells], tf.float32)
        return head(output), new_state, {"attention": weights}

    result = generation.decode(
        step, state, tf.fill([batch], tf.constant(BOS, tf.int32)), method=method,
        max_length=max_length, end_token=EOS, pad_token=PAD, context=memory, beam_width=beam_width,
        length_penalty=length_penalty if method == "beam" else 0.0, forbidden_tokens=forbidden_tokens,
        no_repeat_ngram_size=no_repeat_ngram_size)
    tokens, lengths = result["tokens"], result["lengths"]
    valid = tf.sequence_mask(lengths, tf.shape(tokens)[1])
    words = tf.gather(tf.constant(head.vocabulary), tokens)
    return {"tokens": tokens, "lengths": lengths, "scores": result["scores"],
            "attention": result["extras"]["attention"] * tf.cast(valid, tf.float32)[:, :, None],
            "words": tf.where(valid, words, tf.constant(PAD_TOKEN)), "valid": valid}
