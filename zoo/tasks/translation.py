"""Sequence-to-sequence translation (German → English) with attention: raw text in, raw text out.

The Keras model (`build_model`) carries its own tokenization, so it takes raw
German strings; teacher forcing feeds it the English word ids:

    German text → SourceTokenizer (words and punctuation, lower-cased, at most
    MAX_SOURCE_TOKENS) → StringLookup → Embedding(mask_zero) →
    Bidirectional(zoo GRU | LSTM | SimpleRNN)  ─→ encoder outputs (attention memory)
                                               └→ final states → Dense(tanh) → decoder initial state
    English word ids (BOS w_1 ... w_n) → Embedding → AttentionDecoder (zoo cell + attention,
    Luong form h~_t = tanh(W_c [c_t; h_t])) → Dropout → WordLogits (one logit per English word)

Vocabularies come from the training split only. A source word seen fewer than
`min_count` times becomes [UNK]; so does an English word. When the decoder
writes [UNK], the translation copies the source word (original casing) that the
attention weighs most at that step, so names and numbers survive.

The first word of an English target is lower-cased for training when its
lower-case form is the more frequent one elsewhere in a sentence ("He" → "he",
but "Tom" and "I" stay); the output's first letter is upper-cased again.

Decoding runs inside one TensorFlow graph through `zoo.generation.decode`
(greedy, sampling or beam search): `Translator` is the `tf.Module` that the
serving SavedModel saves, with the signatures

* ``serving_default``: ``texts`` string ``[batch]`` → ``translations`` string
  ``[batch]``, ``scores`` float32 ``[batch]`` (beam search, width
  `DEFAULT_BEAM_WIDTH`, GNMT length penalty `DEFAULT_LENGTH_PENALTY`);
* ``translate``: ``texts``, ``beam_width`` int32, ``max_length`` int32 → also
  ``attention`` float32 ``[batch, target, source]``, ``source_tokens`` and
  ``target_tokens`` (strings, "" where there is none).

Defined results for odd inputs: an empty (or blank) text translates to "" with
score 0; a text longer than MAX_SOURCE_TOKENS tokens is truncated to its first
MAX_SOURCE_TOKENS tokens; `beam_width` must be 1..MAX_BEAM_WIDTH and
`max_length` 1..MAX_DECODE_LENGTH (an InvalidArgumentError naming the bound
otherwise; the Python API raises ValueError first).
"""

from zoo import _backend  # noqa: F401

import collections
import time

import keras
import numpy as np
import tensorflow as tf

from zoo.tasks.word_decoding import (  # noqa: F401  (re-exported: the task's public names)
    ATTENTIONS, BOS, BOS_TOKEN, CELLS, EOS, EOS_TOKEN, MAX_BEAM_WIDTH, PAD, PAD_TOKEN, SPECIAL_TOKENS,
    STATE_NAMES, UNK,
    UNK_TOKEN, TiedWordEmbedding, WordLogits, check_decoder_choice, check_whole_number, checked_bounds,
    compile_model, decode_words, fresh_copy, hold_model, restorable_variables, word_head)

TASK = "translation"
IO_TYPE = "many-to-many"

#: Source tokens kept per text; longer inputs are truncated to their first MAX_SOURCE_TOKENS tokens.
MAX_SOURCE_TOKENS = 100
#: Most texts one call of a translation signature takes: with at most MAX_SOURCE_TOKENS source
#: tokens each and MAX_DECODE_LENGTH steps, a call's work and memory are bounded.
MAX_SIGNATURE_BATCH = 256
#: Subword pieces of one source text a subword model reads (the rest is cut).
MAX_SOURCE_PIECES = 200
#: Upper bound of `max_length` (target tokens per translation) in one call.
MAX_DECODE_LENGTH = 256
DEFAULT_BEAM_WIDTH = 4
#: GNMT length penalty exponent ((5 + length) / 6) ** alpha used by beam search.
DEFAULT_LENGTH_PENALTY = 0.6


# Every character that is not a letter, digit, white space, apostrophe or hyphen is a token of its own.
_PUNCTUATION = r"([^\pL\pN\s'’\-])"


# --------------------------------------------------------------------------
# Tokenization (TensorFlow ops, shared by training, the model and serving)
# --------------------------------------------------------------------------


def tokenizable_text(texts):
    """Texts made safe for the tokenizer's two paths: NUL bytes as spaces (`tf.strings.lower`
    stops at a NUL, so the lower-cased tokens would be fewer than the original ones and every
    signature of the batch would fail) and bytes that are not UTF-8 as U+FFFD (as `lower`
    reads them), so both paths split a text into the same tokens."""
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                         replacement_char=0xFFFD)
    return tf.strings.regex_replace(texts, "\\x00", " ")


def split_tokens(texts, max_tokens=MAX_SOURCE_TOKENS):
    """Words and punctuation marks of a batch of strings: a `tf.RaggedTensor` `[batch, None]`.

    Letters, digits, apostrophes (' and ’) and hyphens form words ("don't", "E-Mail");
    every other non-space character is a token of its own. Only the first
    `max_tokens` tokens of a text are kept (None: all).
    """
    texts = tokenizable_text(tf.convert_to_tensor(texts, tf.string))
    spaced = tf.strings.regex_replace(texts, _PUNCTUATION, r" \1 ")
    tokens = tf.strings.split(spaced)
    if max_tokens is not None:
        tokens = tokens[:, :max_tokens]
    return tokens


def detokenize(words, subwords=False):
    """Join word strings `[batch, time]` ("" = none) into sentences with natural spacing and a capital first letter.

    With `subwords`, the strings are pieces and a "##" piece continues the word before it.
    """
    text = tf.strings.reduce_join(words, axis=-1, separator=" ")
    if subwords:
        text = tf.strings.regex_replace(text, r"\s*##", "")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    text = tf.strings.strip(text)
    text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}…])", r"\1")
    text = tf.strings.regex_replace(text, r"([(\[{¿¡]) ", r"\1")
    first = tf.strings.substr(text, 0, 1, unit="UTF8_CHAR")
    rest = tf.strings.regex_replace(text, r"^(?s).", "")  # all but the first character ("" stays "")
    return tf.strings.join([tf.strings.upper(first, encoding="utf-8"), rest])


def tokenize_python(texts, max_tokens=None):
    """`split_tokens` for a Python list of strings: a list of token lists (str)."""
    if not texts:
        return []
    ragged = split_tokens(tf.constant(list(texts)), max_tokens)
    return [[t.decode("utf-8") for t in row] for row in ragged.to_list()]


@keras.saving.register_keras_serializable(package="zoo.translation", name="SourceTokenizer")
class SourceTokenizer(keras.layers.Layer):
    """Raw strings `[batch]` → lower-cased token strings `[batch, tokens]` padded with "".

    At least one column is returned (an all-empty batch gives one "" column).

    Args:
        max_tokens: Tokens kept per text (the rest is cut).
        first_word_rule: The English side's sentence-initial case rule
            (`first_word_rule()`), kept here so that it travels with the
            model for fine-tuning data; not used by the layer itself.
        lexicon: `{lower-cased German word: English}` used when the decoder
            writes [UNK] (see `build_lexicon`); travels with the model, not
            used by the layer itself.
        target_subwords: Whether the model writes English in subword pieces
            (its output vocabulary is `zoo.tasks.subwords` pieces); travels
            with the model so fine-tuning data is cut the same way.
    """

    def __init__(self, max_tokens=MAX_SOURCE_TOKENS, first_word_rule=None, lexicon=None,
                 target_subwords=False, **kwargs):
        super().__init__(**kwargs)
        if int(max_tokens) < 1:
            raise ValueError(f"max_tokens must be >= 1, received {max_tokens!r}")
        self.max_tokens = int(max_tokens)
        self.first_word_rule = dict(first_word_rule or {})
        self.lexicon = dict(lexicon or {})
        self.target_subwords = bool(target_subwords)

    def call(self, texts):
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        tokens = split_tokens(tf.strings.lower(tokenizable_text(texts), encoding="utf-8"), self.max_tokens)
        dense = tokens.to_tensor(default_value=PAD_TOKEN)
        width = tf.maximum(tf.shape(dense)[1], 1)
        return tf.pad(dense, [[0, 0], [0, width - tf.shape(dense)[1]]], constant_values=PAD_TOKEN)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)

    def compute_output_spec(self, texts):
        return keras.KerasTensor((texts.shape[0], None), dtype="string")

    def get_config(self):
        return {**super().get_config(), "max_tokens": self.max_tokens,
                "first_word_rule": dict(self.first_word_rule), "lexicon": dict(self.lexicon),
                "target_subwords": self.target_subwords}


@keras.saving.register_keras_serializable(package="zoo.translation", name="NonPadding")
class NonPadding(keras.layers.Layer):
    """`ids != 0` as a boolean mask (the source padding mask the attention needs)."""

    def call(self, ids):
        return keras.ops.not_equal(ids, 0)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


def register_custom_objects():
    """This task's Keras layers (registered on import; `zoo.load` calls this)."""
    import zoo.layers  # noqa: F401  (AttentionDecoder and the cells)
    from zoo.tasks.subwords import SubwordSegmenter

    return SourceTokenizer, NonPadding, WordLogits, TiedWordEmbedding, SubwordSegmenter


# --------------------------------------------------------------------------
# Vocabularies and training data
# --------------------------------------------------------------------------


def first_word_rule(target_token_lists):
    """Lower-case-first decisions: `{word: lower}` for capitalized first words whose lower form is more common."""
    elsewhere = collections.Counter(tok for tokens in target_token_lists for tok in tokens[1:])
    rule = {}
    for tokens in target_token_lists:
        if not tokens:
            continue
        word = tokens[0]
        lower = word.lower()
        if lower != word and elsewhere[lower] > elsewhere[word]:
            rule[word] = lower
    return rule


def target_tokens(english_texts, rule):
    """Training-side English tokens, with the sentence-initial word case rule applied."""
    out = []
    for tokens in tokenize_python(english_texts):
        if tokens and tokens[0] in rule:
            tokens = [rule[tokens[0]]] + tokens[1:]
        out.append(tokens)
    return out


def build_vocabularies(train_pairs, min_count=2, max_source_words=12000, max_target_words=8000,
                       source_min_count=None, subwords=False):
    """Source and target vocabularies from the training pairs only.

    Returns `(source_words, target_words, first_word_rule)`: `source_words` is
    what the model's StringLookup holds (ids 2.. ; 0 = padding, 1 = [UNK]),
    `target_words` starts with PAD, UNK, BOS, EOS. Words seen fewer than
    `min_count` times (`source_min_count` on the German side, default the
    same) are left out (they become [UNK]); ties in frequency are broken
    alphabetically, so the vocabularies are deterministic. With `subwords`,
    both vocabularies are subword pieces learned by merges from the training
    words (`zoo.tasks.subwords.learn_subwords`), `max_source_words` German and
    `max_target_words` English pieces (specials included), so no word is [UNK].
    """
    source_min_count = min_count if source_min_count is None else source_min_count
    for name, value in (("min_count", min_count), ("source_min_count", source_min_count)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, received {value!r}")
    sources = [de for de, _ in train_pairs]
    source_counts = collections.Counter(
        tok for tokens in tokenize_python([s.lower() for s in sources]) for tok in tokens)
    english = target_tokens([en for _, en in train_pairs], {})
    rule = first_word_rule(english)
    target_counts = collections.Counter(
        tok for tokens in target_tokens([en for _, en in train_pairs], rule) for tok in tokens)

    def frequent(counts, limit, least):
        words = [w for w, c in counts.items() if c >= least and w not in (PAD_TOKEN, UNK_TOKEN)]
        words.sort(key=lambda w: (-counts[w], w))
        return words[:limit]

    if subwords:
        from zoo.tasks.subwords import learn_subwords

        source_pieces = learn_subwords(source_counts, max_source_words, min_count=source_min_count)
        target_pieces = learn_subwords(target_counts, max_target_words - len(SPECIAL_TOKENS), min_count=min_count)
        return source_pieces, SPECIAL_TOKENS + target_pieces, rule

    source_words = frequent(source_counts, max_source_words, source_min_count)
    target_words = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN] + [
        w for w in frequent(target_counts, max_target_words, min_count) if w not in (BOS_TOKEN, EOS_TOKEN)]
    return source_words, target_words, rule


#: German inflection endings tried, longest first, when a word is not in the lexicon as it is.
_GERMAN_ENDINGS = ("en", "em", "er", "es", "e", "n", "s")


def build_lexicon(dictionary_pairs, train_pairs):
    """A German → English word lexicon for the words the decoder cannot write ([UNK]).

    From the dictionary's one-word entries: for each lower-cased German word,
    the English candidate (of its entries) seen most often in the English
    training sentences, ties to the first entry in the file (Luong et al.
    2015 replace unknown words through a dictionary the same way).
    """
    english_counts = collections.Counter(
        tok.lower() for tokens in tokenize_python([en for _, en in train_pairs]) for tok in tokens)
    candidates = collections.defaultdict(list)
    for german, english in dictionary_pairs:
        if " " in german.strip() or not english.strip():
            continue
        candidates[german.strip().lower()].append(english.strip())
    lexicon = {}
    for german, options in candidates.items():
        best = max(range(len(options)), key=lambda i: (english_counts[options[i].lower()], -i))
        lexicon[german] = options[best]
    return lexicon


def select_dictionary_pairs(entries, train_pairs, count, seed=0):
    """Up to `count` dictionary entries as extra training pairs.

    Entries whose German words all occur in the training sentences come first
    (they teach the words the sentences use), the rest after; each group in a
    seeded random order.
    """
    known = {tok for tokens in tokenize_python([de.lower() for de, _ in train_pairs]) for tok in tokens}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(entries))
    relevant, other = [], []
    for index in order:
        german, english = entries[index]
        words = german.lower().split()
        (relevant if words and all(w in known for w in words) else other).append((german, english))
    return (relevant + other)[: int(count)]


def lookup_lexicon(table, words):
    """English for German `words` (any shape): the word as it is, else without an inflection ending; "" if none."""
    lowered = tf.strings.lower(words, encoding="utf-8")
    found = table.lookup(lowered)
    for ending in _GERMAN_ENDINGS:
        stem = tf.strings.regex_replace(lowered, f"(..){ending}$", r"\1")
        found = tf.where(tf.equal(found, ""), table.lookup(stem), found)
    return found


def model_vocabularies(model):
    """`(source_words, target_words, first_word_rule)` of a model built by `build_model`."""
    head = word_head(model)
    rule = model.get_layer("source_tokens").first_word_rule
    source_words = [w for w in model.get_layer("source_ids").get_vocabulary()[2:]]
    return source_words, list(head.vocabulary), rule


def writes_subwords(model):
    """Whether `model` writes English in subword pieces (`build_model(..., subwords=...)`)."""
    return bool(getattr(model.get_layer("source_tokens"), "target_subwords", False))


def encode_targets(english_texts, target_words, rule, max_length=None, subwords=False):
    """`(decoder input ids, target ids, weights)` arrays `[n, time]`: BOS w_1..w_n / w_1..w_n EOS / 1s.

    With `subwords`, each English word is first cut into pieces of `target_words`.
    """
    index = {w: i for i, w in enumerate(target_words)}
    token_rows = target_tokens(english_texts, rule)
    if subwords:
        from zoo.tasks.subwords import segment_words

        pieces = target_words[len(SPECIAL_TOKENS):]
        token_rows = [[p for cut in segment_words(tokens, pieces) for p in cut] for tokens in token_rows]
    rows = [[index.get(tok, UNK) for tok in tokens] for tokens in token_rows]
    if max_length is not None:
        rows = [row[: max_length - 1] for row in rows]
    width = max((len(r) for r in rows), default=0) + 1
    inputs = np.zeros((len(rows), width), np.int32)
    targets = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        inputs[i, : len(row) + 1] = [BOS] + row
        targets[i, : len(row) + 1] = row + [EOS]
    return inputs, targets, (targets != PAD).astype(np.float32)


def make_dataset(model, pairs, batch_size=64, shuffle=False, seed=0, max_target_tokens=64):
    """A `tf.data` pipeline of `({"source", "target_in"}, target ids, weights)` for `model`'s vocabulary.

    Works for a freshly built model and for one loaded with `zoo.load`, so the
    same call prepares fine-tuning data from a user's own `(german, english)`
    pairs. Pairs are batched by similar target length.
    """
    pairs = _check_pairs(pairs)
    _, target_words, rule = model_vocabularies(model)
    rule = rule or {}
    sources = [de for de, _ in pairs]
    inputs, targets, weights = encode_targets([en for _, en in pairs], target_words, rule,
                                              max_length=max_target_tokens, subwords=writes_subwords(model))
    lengths = weights.sum(axis=1).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((sources, inputs, targets, weights, lengths))
    if shuffle:
        data = data.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
    data = data.map(lambda s, i, t, w, n: (s, i[:n], t[:n], w[:n]))
    boundaries = [b for b in (8, 12, 16, 24, 32, 48) if b < inputs.shape[1]]
    data = data.bucket_by_sequence_length(
        element_length_func=lambda s, i, t, w: tf.shape(i)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([], [None], [None], [None]),
    )
    if shuffle:
        data = data.shuffle(32, seed=seed + 1, reshuffle_each_iteration=True)
    return data.map(lambda s, i, t, w: ({"source": s, "target_in": i}, t, w)).prefetch(tf.data.AUTOTUNE)


def _check_pairs(pairs):
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no sentence pairs given: expected a list of (german, english) string pairs")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"pair {i} must be a (german, english) pair of strings, received {pair!r}")
    return pairs


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def build_model(train_pairs, cell="gru", attention="additive", embedding_dim=256, units=256,
                dropout=0.3, input_feeding=False, min_count=2, max_source_words=40000,
                max_target_words=8000, lexicon=None, source_min_count=None, tie_embeddings=False,
                subwords=False):
    """The encoder-decoder with vocabularies from `train_pairs`.

    Args:
        train_pairs: `(german, english)` training pairs (vocabularies only).
        cell: "gru", "lstm" or "rnn": the zoo cell of encoder and decoder.
        attention: "additive" (Bahdanau), "dot" or "general" (Luong), or
            "none" (plain encoder-decoder: the final encoder states only).
        embedding_dim: Word embedding size (source and target).
        units: Decoder state size; the encoder has `units // 2` per direction,
            so its outputs have `units` features.
        dropout: Dropout on embeddings and on the attentional vector.
        input_feeding: Feed the previous attentional vector to the decoder
            cell (Luong); slower to train (a step-wise loop).
        min_count, max_source_words, max_target_words, source_min_count: Vocabulary
            limits (`source_min_count`: German words, default `min_count`).
        lexicon: Optional `{German word: English}` (`build_lexicon`) for [UNK] outputs.
        subwords: German and English in subword pieces (`build_vocabularies`):
            a `SubwordSegmenter` named `source_pieces` cuts the German words
            inside the model, the decoder writes English pieces.
        tie_embeddings: One matrix for the English words in and out
            (`TiedWordEmbedding`, named `target_embedding`, in place of a
            separate `next_word` head).

    Returns:
        A `keras.Model` with inputs `{"source": string (batch,), "target_in":
        int32 (batch, time)}` and next-word logits `(batch, time, words)`.
        Layers are named (`source_tokens`, `source_ids`, `source_embedding`,
        `encoder`, `bridge_h`/`bridge_c`, `target_embedding`, `decoder`,
        `next_word`) so `Translator` can step them.
    """
    from zoo import layers

    check_decoder_choice(cell, attention)
    for name, value in (("embedding_dim", embedding_dim), ("units", units)):
        if int(value) < 2:
            raise ValueError(f"{name} must be >= 2, received {value!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
    train_pairs = _check_pairs(train_pairs)
    source_words, target_words, rule = build_vocabularies(
        train_pairs, min_count=min_count, max_source_words=max_source_words,
        max_target_words=max_target_words, source_min_count=source_min_count, subwords=subwords)

    source = keras.Input(shape=(), dtype="string", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    tokenizer = SourceTokenizer(MAX_SOURCE_TOKENS, first_word_rule=rule, lexicon=lexicon,
                                target_subwords=subwords, name="source_tokens")
    tokens = tokenizer(source)
    if subwords:
        from zoo.tasks.subwords import SubwordSegmenter

        tokens = SubwordSegmenter(source_words, max_pieces=MAX_SOURCE_PIECES, name="source_pieces")(tokens)
    ids = keras.layers.StringLookup(vocabulary=source_words, mask_token=PAD_TOKEN,
                                    oov_token=UNK_TOKEN, name="source_ids")(tokens)
    source_mask = NonPadding(name="source_mask")(ids)
    embedded = keras.layers.Embedding(len(source_words) + 2, embedding_dim, mask_zero=True,
                                      name="source_embedding")(ids)
    embedded = keras.layers.Dropout(dropout, name="source_dropout")(embedded)
    encoder_layer = layers.sequence_layer_class(cell)(
        units // 2, return_sequences=True, return_state=True)
    encoded = keras.layers.Bidirectional(encoder_layer, name="encoder")(embedded)
    values, final_states = encoded[0], encoded[1:]
    per_direction = len(final_states) // 2
    initial_state = []
    for i, state in enumerate(STATE_NAMES[cell]):
        both = keras.layers.Concatenate(name=f"final_{state}")(
            [final_states[i], final_states[per_direction + i]])
        initial_state.append(keras.layers.Dense(units, activation="tanh", name=f"bridge_{state}")(both))

    if tie_embeddings:
        target_embedding = TiedWordEmbedding(target_words, embedding_dim, units, name="target_embedding")
    else:
        target_embedding = keras.layers.Embedding(len(target_words), embedding_dim, name="target_embedding")
    embedded_target = target_embedding(target_in)
    embedded_target = keras.layers.Dropout(dropout, name="target_dropout")(embedded_target)
    decoder = layers.AttentionDecoder(
        cell=cell, units=units, attention=None if attention == "none" else attention,
        input_feeding=input_feeding, dropout=dropout, name="decoder")
    outputs, _ = decoder(embedded_target, values, initial_state=initial_state, mask=source_mask)
    outputs = keras.layers.Dropout(dropout, name="output_dropout")(outputs)
    head = target_embedding if tie_embeddings else WordLogits(target_words, name="next_word")
    logits = head(outputs)
    model = keras.Model({"source": source, "target_in": target_in}, logits,
                        name=f"translation_{cell}_{attention}")
    return model


def model_settings(model):
    """What `Translator` needs to know about a model built by `build_model`."""
    decoder = model.get_layer("decoder")
    config = decoder.get_config()
    return {"cell": config["cell"], "attention": config.get("attention") or "none",
            "units": config["units"]}


# --------------------------------------------------------------------------
# Decoding inside the graph
# --------------------------------------------------------------------------


class Translator(tf.Module):
    """Translate with a model built by `build_model`, entirely in TensorFlow.

    Args:
        model: The trained Keras model (its layers and weights are used, not copied).
        beam_width: Beam width of `serve` (the SavedModel's `serving_default`).
        length_penalty: GNMT length-penalty exponent of beam search.

    `serve(texts)`, `translate(texts, beam_width, max_length)` and
    `translate_greedy(texts, max_length)` are `tf.function`s with fixed
    signatures (see the module docstring); `write_serving` saves them.
    """

    def __init__(self, model, beam_width=DEFAULT_BEAM_WIDTH, length_penalty=DEFAULT_LENGTH_PENALTY,
                 use_lexicon=True, no_repeat_ngram_size=0):
        super().__init__(name="translator")
        hold_model(self, model)  # every weight saved once, restorable by TF1 session loaders too
        settings = model_settings(model)
        self._cell = settings["cell"]
        self._has_attention = settings["attention"] != "none"
        self._target_words = list(word_head(model).vocabulary)
        self._subwords = writes_subwords(model)
        self.beam_width = int(beam_width)
        self.length_penalty = float(length_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        lexicon = model.get_layer("source_tokens").lexicon if use_lexicon else {}
        self.lexicon_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(lexicon), tf.string),
                                                tf.constant(list(lexicon.values()), tf.string)),
            default_value="") if lexicon else None

    # -- the encoder -----------------------------------------------------------
    def encode(self, texts):
        """Source tokens (original casing), padding mask, encoder outputs and decoder initial state."""
        model = self.model
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        lowered = model.get_layer("source_tokens")(texts)
        if self._subwords:  # the pieces are what the attention looks at (and what it shows)
            lowered = model.get_layer("source_pieces")(lowered)
            raw = lowered
        else:
            width = tf.shape(lowered)[1]
            raw = split_tokens(texts).to_tensor(default_value=PAD_TOKEN)
            raw = tf.pad(raw, [[0, 0], [0, width - tf.shape(raw)[1]]], constant_values=PAD_TOKEN)
        ids = model.get_layer("source_ids")(lowered)
        mask = tf.not_equal(ids, 0)
        embedded = model.get_layer("source_embedding")(ids)
        encoded = model.get_layer("encoder")(embedded, mask=mask, training=False)
        values, finals = encoded[0], encoded[1:]
        per_direction = len(finals) // 2
        initial = [
            model.get_layer(f"bridge_{state}")(tf.concat([finals[i], finals[per_direction + i]], -1))
            for i, state in enumerate(STATE_NAMES[self._cell])
        ]
        return raw, mask, values, initial

    def _decode(self, texts, method, beam_width, max_length):
        """`_decode_batch`, or for an empty batch a defined, empty result (the decoding loop
        cannot stack zero rows)."""
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        check = tf.debugging.assert_less_equal(
            tf.size(texts), MAX_SIGNATURE_BATCH,
            message=f"at most {MAX_SIGNATURE_BATCH} texts per call (send more in several calls)")
        with tf.control_dependencies([check]):
            texts = tf.identity(texts)

        def empty():
            return {"translations": tf.zeros([0], tf.string), "scores": tf.zeros([0], tf.float32),
                    "attention": tf.zeros([0, 0, 0], tf.float32), "source_tokens": tf.zeros([0, 0], tf.string),
                    "target_tokens": tf.zeros([0, 0], tf.string), "lengths": tf.zeros([0], tf.int32)}

        return tf.cond(tf.size(texts) > 0,
                       lambda: self._decode_batch(texts, method, beam_width, max_length), empty)

    def _decode_batch(self, texts, method, beam_width, max_length):
        raw, mask, values, initial = self.encode(texts)
        result = decode_words(self.model, values, mask, initial, embedding="target_embedding",
                              method=method, beam_width=beam_width, max_length=max_length,
                              length_penalty=self.length_penalty, forbidden_tokens=(PAD, BOS),
                              no_repeat_ngram_size=self.no_repeat_ngram_size)
        tokens, words, attention = result["tokens"], result["words"], result["attention"]
        if self._has_attention and not self._subwords:
            # [UNK] → the source word the attention weighs most at that step: its lexicon
            # translation when there is one, else the word itself (names, numbers).
            copied = tf.gather(raw, tf.argmax(attention, axis=-1, output_type=tf.int32), batch_dims=1)
            if self.lexicon_table is not None:
                translated = lookup_lexicon(self.lexicon_table, copied)
                copied = tf.where(tf.equal(translated, ""), copied, translated)
            words = tf.where(tf.equal(tokens, UNK) & result["valid"], copied, words)
        else:
            words = tf.where(tf.equal(tokens, UNK), tf.constant(PAD_TOKEN), words)
        empty = tf.logical_not(tf.reduce_any(mask, axis=1))
        translations = tf.where(empty, tf.constant(""), detokenize(words, subwords=self._subwords))
        scores = tf.where(empty, tf.zeros_like(result["scores"]), result["scores"])
        return {"translations": translations, "scores": scores, "attention": attention,
                "source_tokens": raw, "target_tokens": words, "lengths": result["lengths"]}

    def default_max_length(self, texts):
        """Twice the longest source plus 10 tokens (three times for subword pieces), at most MAX_DECODE_LENGTH."""
        tokens = split_tokens(tf.reshape(texts, [-1]))
        longest = tf.cast(tf.reduce_max(tf.concat([tokens.row_lengths(), [0]], 0)), tf.int32)
        return tf.minimum((3 if self._subwords else 2) * longest + 10, MAX_DECODE_LENGTH)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        result = self._decode(texts, "beam", self.beam_width, self.default_max_length(texts))
        return {"translations": result["translations"], "scores": result["scores"]}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.string, name="texts"),
        tf.TensorSpec([], tf.int32, name="beam_width"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def translate(self, texts, beam_width, max_length):
        beam_width, max_length = checked_bounds(beam_width, max_length, MAX_BEAM_WIDTH, MAX_DECODE_LENGTH)
        result = self._decode(texts, "beam", beam_width, max_length)
        result.pop("lengths")
        return result

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None], tf.string, name="texts"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def translate_greedy(self, texts, max_length):
        _, max_length = checked_bounds(1, max_length, MAX_BEAM_WIDTH, MAX_DECODE_LENGTH)
        result = self._decode(texts, "greedy", 1, max_length)
        return {"translations": result["translations"], "scores": result["scores"]}


def _check_request(texts, beam_width, max_length):
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no text given: pass a German sentence or a list of them")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} must be a string, received {text!r} ({type(text).__name__})")
    # SavedModels exported before the in-graph NUL fix (`tokenizable_text`) need it done here
    texts = [text.replace("\x00", " ") for text in texts]
    beam_width = check_whole_number("beam_width", beam_width, 1, MAX_BEAM_WIDTH)
    if max_length is not None:
        max_length = check_whole_number("max_length", max_length, 1, MAX_DECODE_LENGTH,
                                        " (or None: twice the source length plus 10)")
    return texts, beam_width, max_length


def translate(source, texts, beam_width=DEFAULT_BEAM_WIDTH, max_length=None, details=False):
    """Translate German text(s) to English.

    Args:
        source: a `Translator`, a Keras model from `build_model` / `zoo.load`,
            or a loaded serving SavedModel (`zoo.load_serving(name)`).
        texts: a string or a list of strings.
        beam_width: 1 (greedy, through beam search of width 1) .. MAX_BEAM_WIDTH.
        max_length: most target tokens; None = twice the longest source + 10.
        details: also return scores, attention and tokens.

    Returns:
        A list of translations, or with `details` a list of dicts with
        `translation`, `score`, `source_tokens`, `target_tokens` and
        `attention` (`[target, source]` NumPy array).
    """
    texts, beam_width, max_length = _check_request(texts, beam_width, max_length)
    if len(texts) > MAX_SIGNATURE_BATCH:  # the signatures take at most that many per call
        return [result for start in range(0, len(texts), MAX_SIGNATURE_BATCH)
                for result in translate(source, texts[start : start + MAX_SIGNATURE_BATCH], beam_width,
                                        max_length, details)]
    if max_length is None:
        longest = max(len(t) for t in tokenize_python(texts, MAX_SOURCE_TOKENS))
        max_length = min(2 * longest + 10, MAX_DECODE_LENGTH)
    arguments = (tf.constant(texts), tf.constant(beam_width, tf.int32), tf.constant(max_length, tf.int32))
    if hasattr(source, "signatures"):  # a loaded SavedModel: signatures take keyword arguments
        result = source.signatures["translate"](texts=arguments[0], beam_width=arguments[1],
                                                max_length=arguments[2])
    else:
        translator = source if isinstance(source, Translator) else Translator(source)
        result = translator.translate(*arguments)
    translations = [t.decode("utf-8") for t in result["translations"].numpy()]
    if not details:
        return translations
    out = []
    for i, translation in enumerate(translations):
        source_tokens = [t.decode("utf-8") for t in result["source_tokens"][i].numpy() if t]
        target_tokens = [t.decode("utf-8") for t in result["target_tokens"][i].numpy() if t]
        attention = result["attention"][i].numpy()[: len(target_tokens), : len(source_tokens)]
        out.append({"translation": translation, "score": float(result["scores"][i]),
                    "source_tokens": source_tokens, "target_tokens": target_tokens,
                    "attention": attention})
    return out


def decode_corpus(source, texts, beam_width=1, batch_size=64):
    """Translations of many texts, in batches (greedy for `beam_width` 1)."""
    translator = source if isinstance(source, Translator) else Translator(source)
    outputs = []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(list(texts[start : start + batch_size]))
        max_length = translator.default_max_length(batch)
        if beam_width == 1:
            result = translator.translate_greedy(batch, max_length)
        else:
            result = translator.translate(batch, tf.constant(beam_width, tf.int32), max_length)
        outputs.extend(t.decode("utf-8") for t in result["translations"].numpy())
    return outputs


def python_loop_greedy(model, texts, max_length):
    """Greedy decoding the way the tutorials do it: one `model(...)` call per step on the whole prefix.

    Used only to measure what the in-graph engine saves; gives the same
    tokens as `Translator.translate_greedy` (before [UNK] copying).
    """
    batch = len(texts)
    source = tf.constant(list(texts))
    prefix = np.full((batch, 1), BOS, np.int32)
    finished = np.zeros(batch, bool)
    for _ in range(max_length):
        logits = np.array(model({"source": source, "target_in": tf.constant(prefix)}, training=False)[:, -1])
        logits[:, [PAD, BOS]] = -np.inf
        chosen = np.where(finished, PAD, logits.argmax(-1)).astype(np.int32)
        prefix = np.concatenate([prefix, chosen[:, None]], axis=1)
        finished |= chosen == EOS
        if finished.all():
            break
    return prefix[:, 1:]


# --------------------------------------------------------------------------
# Evaluation, serving, throughput
# --------------------------------------------------------------------------


def evaluate(source, pairs, beam_widths=(1, DEFAULT_BEAM_WIDTH)):
    """Corpus BLEU and chrF (sacrebleu) of greedy and beam decoding on `(german, english)` pairs."""
    from zoo.tasks import translation_metrics

    sources = [de for de, _ in pairs]
    references = [en for _, en in pairs]
    translator = source if isinstance(source, Translator) else Translator(source)
    scores = {"sentences": len(pairs)}
    for width in beam_widths:
        hypotheses = decode_corpus(translator, sources, beam_width=width)
        measured = translation_metrics.corpus_scores(hypotheses, references)
        label = "greedy" if width == 1 else f"beam{width}"
        scores[f"bleu_{label}"] = round(float(measured["bleu"]), 4)
        scores[f"chrf_{label}"] = round(float(measured["chrf"]), 4)
        scores["bleu_signature"] = measured["bleu_signature"]
        scores["chrf_signature"] = measured["chrf_signature"]
    return scores


def write_serving(model, path, beam_width=DEFAULT_BEAM_WIDTH, length_penalty=DEFAULT_LENGTH_PENALTY,
                  no_repeat_ngram_size=0):
    """Save the translation graph: `serving_default`, `translate` and `translate_greedy`."""
    translator = Translator(fresh_copy(model), beam_width=beam_width, length_penalty=length_penalty,
                            no_repeat_ngram_size=no_repeat_ngram_size)
    serve = translator.serve.get_concrete_function()
    tf.saved_model.save(
        translator, str(path),
        signatures={"serving_default": serve,
                    "translate": translator.translate.get_concrete_function(),
                    "translate_greedy": translator.translate_greedy.get_concrete_function()},
    )


def serving_examples():
    """Small valid inputs for every signature of the serving SavedModel, as plain Python values."""
    texts = ["Ich bin müde.", "Wo ist der Bahnhof?", ""]
    return {
        "serving_default": {"texts": texts},
        "translate": {"texts": texts, "beam_width": 2, "max_length": 12},
        "translate_greedy": {"texts": texts, "max_length": 12},
    }


def measure_throughput(serving, sentences, batch_sizes=(1, 64), repeats=3):
    """Sentences per second of the SavedModel, greedy and beam, best of `repeats` timed calls."""
    results = {}
    for batch in batch_sizes:
        texts = tf.constant([sentences[i % len(sentences)] for i in range(batch)])
        calls = {
            "greedy": lambda: serving.signatures["translate_greedy"](
                texts=texts, max_length=tf.constant(40, tf.int32)),
            f"beam{DEFAULT_BEAM_WIDTH}": lambda: serving.signatures["translate"](
                texts=texts, beam_width=tf.constant(DEFAULT_BEAM_WIDTH, tf.int32),
                max_length=tf.constant(40, tf.int32)),
        }
        for label, call in calls.items():
            call()  # warm-up
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                call()["translations"].numpy()
                best = min(best, time.perf_counter() - started)
            results[f"batch_{batch}_{label}_sentences_per_second"] = round(batch / best, 2)
    results["method"] = (f"SavedModel signatures translate_greedy / translate (beam {DEFAULT_BEAM_WIDTH}), "
                         f"max_length 40, test sentences, best of {repeats} timed calls after a warm-up")
    return results


def python_loop_speedup(model, sentences, count=16):
    """Greedy, batch 1: sentences/s of the in-graph decoder vs a Python loop (one model call per step)."""
    translator = Translator(model)
    sentences = list(sentences[:count])

    def in_graph():
        for text in sentences:
            batch = tf.constant([text])
            translator.translate_greedy(batch, translator.default_max_length(batch))["translations"].numpy()

    def python_loop():
        for text in sentences:
            python_loop_greedy(model, [text], int(translator.default_max_length(tf.constant([text]))))

    in_graph()  # trace once
    python_loop()
    timings = {}
    for label, run in (("in_graph", in_graph), ("python_loop", python_loop)):
        started = time.perf_counter()
        run()
        timings[label] = time.perf_counter() - started
    return {
        "in_graph_sentences_per_second": round(len(sentences) / timings["in_graph"], 2),
        "python_loop_sentences_per_second": round(len(sentences) / timings["python_loop"], 2),
        "speedup": round(timings["python_loop"] / timings["in_graph"], 2),
        "method": f"greedy, batch 1, {len(sentences)} test sentences, same Keras weights; the Python "
                  "loop calls the training model on the whole prefix once per step (as tutorials do)",
    }


# --------------------------------------------------------------------------
# The card and `zoo verify`
# --------------------------------------------------------------------------


def held_out_domains(card_dataset):
    """The whole-domain test sets a card's dataset entry names (`held_out_domains`), e.g. Wesnoth campaigns."""
    names = list(card_dataset.get("held_out_domains") or [])
    if not names:
        return {}
    from zoo.data import wesnoth

    campaigns = [name.split("-", 1)[1] for name in names]
    domains = wesnoth.load_domain_splits(held_out=campaigns)
    return {name: domains[name] for name in names}


def load_card_splits(card_dataset):
    """The splits a card's dataset entry describes (what `zoo verify` re-measures on)."""
    from zoo import data

    splits = data.load_translation_splits(card_dataset["name"], seed=card_dataset.get("split_seed", 1337))
    splits.update(held_out_domains(card_dataset))
    limit = card_dataset.get("max_examples_per_split")
    if limit:
        splits = {k: v[:limit] for k, v in splits.items()}
    return splits


def evaluation_splits(splits):
    """Every split but the training one, validation and test first (the card's order)."""
    first = [name for name in ("validation", "test") if name in splits]
    return first + [name for name in splits if name not in first and name != "train"]


def measure(model, splits, use_lexicon=True, length_penalty=DEFAULT_LENGTH_PENALTY, no_repeat_ngram_size=0):
    """The card's deterministic model metrics: BLEU/chrF, greedy and beam, on every split but training."""
    translator = Translator(model, use_lexicon=use_lexicon, length_penalty=length_penalty,
                            no_repeat_ngram_size=no_repeat_ngram_size)
    return {split: evaluate(translator, splits[split]) for split in evaluation_splits(splits)}


#: Floors of the held-out-domain comparison: BLEU as a multiple of IBM Model 1's on the same split.
BLEU_FLOOR_OVER_IBM = {"test": 2.0, "default": 1.5}


def compare_with_ibm(metrics, baselines, beam_width=DEFAULT_BEAM_WIDTH):
    """Per test split: the model's BLEU (beam) and chrF beside IBM Model 1 trained on the same data.

    `metrics` as `measure` returns, `baselines` as
    `translation_metrics.baselines_by_split`. Every split but validation gets
    `{"bleu", "chrf", "ibm_model1_bleu", "ibm_model1_chrf",
    "bleu_ratio_to_ibm_model1", "floor_ratio", "meets_floor"}`; the floor is
    `BLEU_FLOOR_OVER_IBM` (2x on the Ding test, 1.5x elsewhere) and chrF above IBM Model 1's.
    """
    rows = {}
    for split, scores in metrics.items():
        if split == "validation" or split not in baselines:
            continue
        label = f"beam{beam_width}" if f"bleu_beam{beam_width}" in scores else "greedy"
        bleu, chrf = scores[f"bleu_{label}"], scores[f"chrf_{label}"]
        ibm = baselines[split]["ibm_model1"]
        ratio = round(bleu / ibm["bleu"], 3) if ibm["bleu"] > 0 else None
        floor = BLEU_FLOOR_OVER_IBM.get(split, BLEU_FLOOR_OVER_IBM["default"])
        rows[split] = {"decoding": label, "bleu": bleu, "chrf": chrf,
                       "ibm_model1_bleu": round(ibm["bleu"], 4), "ibm_model1_chrf": round(ibm["chrf"], 4),
                       "bleu_ratio_to_ibm_model1": ratio, "floor_ratio": floor,
                       "meets_floor": bool(ratio is not None and ratio >= floor and chrf > ibm["chrf"])}
    return rows


def choose_decoding(model, pairs, length_penalties, no_repeat_sizes=(0,), beam_width=DEFAULT_BEAM_WIDTH):
    """The GNMT length-penalty exponent, then the no-repeat n-gram size, with the best beam BLEU on `pairs`.

    The length penalty is chosen first (no blocking), then `no_repeat_sizes`
    (0 = off) are tried with it. Returns `(alpha, n, {alpha: bleu},
    {n: bleu})`; choose on validation pairs, never on test.
    """
    from zoo.tasks import translation_metrics

    sources, references = [de for de, _ in pairs], [en for _, en in pairs]

    def bleu(alpha, n):
        translator = Translator(model, length_penalty=alpha, no_repeat_ngram_size=n)
        hypotheses = decode_corpus(translator, sources, beam_width=beam_width)
        return round(float(translation_metrics.corpus_scores(hypotheses, references)["bleu"]), 4)

    alpha_scores = {float(alpha): bleu(alpha, 0) for alpha in length_penalties}
    alpha = max(alpha_scores, key=lambda a: (alpha_scores[a], -a))
    size_scores = {int(n): (alpha_scores[alpha] if n == 0 else bleu(alpha, n)) for n in no_repeat_sizes}
    size = max(size_scores, key=lambda n: (size_scores[n], n == 0, -n))
    return alpha, size, alpha_scores, size_scores


def choose_length_penalty(model, pairs, grid, beam_width=DEFAULT_BEAM_WIDTH):
    """The GNMT length-penalty exponent of `grid` with the best corpus BLEU of beam search on `pairs`.

    Returns `(best, {alpha: bleu})`; choose on validation pairs, never on test.
    """
    alpha, _, scores, _ = choose_decoding(model, pairs, grid, beam_width=beam_width)
    return alpha, scores


def remeasure(model, card):
    """Re-measure the card's model metrics from scratch (used by `zoo verify`)."""
    decoding = card.get("decoding", {})
    return measure(model, load_card_splits(card["dataset"]),
                   length_penalty=decoding.get("length_penalty", DEFAULT_LENGTH_PENALTY),
                   no_repeat_ngram_size=decoding.get("no_repeat_ngram_size", 0))


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def attention_map_png(result, path, title=None):
    """Heat map of target words (rows) against source words (columns), written atomically."""
    from zoo.figures import new_figure, write_png

    attention = result["attention"]
    source, target = result["source_tokens"], result["target_tokens"] or ["(empty)"]
    if attention.size == 0:
        attention = np.zeros((len(target), max(len(source), 1)))
    fig = new_figure(max(4.0, 0.55 * len(source) + 2), max(3.0, 0.45 * len(target) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)))
    ax.set_xticklabels(source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)))
    ax.set_yticklabels(target)
    ax.set_xlabel("source (German)")
    ax.set_ylabel("translation (English)")
    fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_title(title or result["translation"], fontsize=9)
    return write_png(fig, path)


#: Lines `zoo translate` sends to the model at once: memory stays bounded whatever the input's size,
#: and translations appear batch by batch, in order.
CLI_BATCH_SIZE = 32


def translate_cli(name, texts, beam_width=DEFAULT_BEAM_WIDTH, attention_map=None, batch_size=CLI_BATCH_SIZE):
    """`zoo translate NAME TEXT... [--beam N] [--attention-map out.png]`: one translation per line.

    Texts go to the model `batch_size` at a time and each batch's translations
    are printed (and flushed) before the next starts. A text longer than
    `MAX_SOURCE_TOKENS` tokens is cut there, and stderr says so.
    """
    import sys
    from pathlib import Path

    from zoo import hub

    if attention_map and Path(attention_map).suffix.lower() != ".png":
        raise ValueError(f"the attention map must be a .png file, received {str(attention_map)!r}")
    serving = hub.load_serving(name)
    written = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        for offset, tokens in enumerate(tokenize_python(batch)):
            if len(tokens) > MAX_SOURCE_TOKENS:
                print(f"zoo translate: line {start + offset + 1} has {len(tokens)} tokens; only the first "
                      f"{MAX_SOURCE_TOKENS} are translated", file=sys.stderr)
        results = translate(serving, batch, beam_width=beam_width, details=bool(attention_map))
        for result in results:
            print(result["translation"] if attention_map else result, flush=True)
        if attention_map:
            path = Path(attention_map)
            for offset, result in enumerate(results):
                number = start + offset
                target = path if len(texts) == 1 else path.with_name(f"{path.stem}-{number + 1}{path.suffix}")
                written.append(attention_map_png(result, target, title=f"{texts[number]} → {result['translation']}"))
    if written:
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
