"""Sequence labelling, the synchronised many-to-many: one tag per word (part-of-speech tagging).

The model (`build_model`) takes words as strings and does everything else
itself, so the exported model needs no preprocessing code:

    words string [batch, time] ("" pads)
      ├─ lower-case → StringLookup (training words seen ≥ min_count times; others → OOV)
      │    → word dropout (training only: a known word becomes OOV with probability p)
      │    → Embedding(mask_zero)
      ├─ characters (the first 4 and last 12 of a longer word) → StringLookup
      │    → CharacterEncoder: Embedding → Bidirectional(zoo LSTM) per word (final states)
      ├─ optional: lower-cased endings of 1..n characters → StringLookup → Embedding (one per ending)
      └─ optional: spelling indicators (WordShape: capitals, digits, hyphens, punctuation)
    concat → Dropout → Bidirectional(zoo LSTM, return_sequences) → Dropout
      → one Dense softmax per tag set ({"universal": ..., "brown": ...} or {"upos": ...}),
        or (crf=True) tag scores decoded by a linear-chain CRF (zoo.tasks.crf)

The character encoder reads each word's spelling, so a word never seen in
training (a name, a rare inflection) is tagged from its suffix, its
capitalisation and its context. Padding words are taken out before the
character encoder runs and put back as zeros.

Free text is split into words by `tokenize` (inside the serving graph too):
control characters become spaces; a word is a run of letters, digits and
underscores, joined across inner hyphens and apostrophes (``well-known``,
``Atlanta's``, ``1,119`` and ``7.5`` stay whole); ``...``, ``--``, ``````
and ``''`` are single tokens; every other non-space character is a token of
its own.
"""

from __future__ import annotations

import collections
import sys

import numpy as np

import keras

from zoo import layers
from zoo.tasks.crf import ChainCRF, CRFLoss

TASK = "tagging"
IO_TYPE = "many-to-many (synchronised: one tag per word)"

#: Characters of a word the character encoder reads: all of a short word, else the first
#: PREFIX_CHARS and the last MAX_CHARS - PREFIX_CHARS.
MAX_CHARS = 16
PREFIX_CHARS = 4
#: The spelling indicators of `WordShape` (RE2 patterns matched against the whole word).
WORD_SHAPES = {
    "capitalised": r"\p{Lu}.*",
    "all_capitals": r"[^\p{Ll}]*\p{Lu}[^\p{Ll}]*",
    "has_digit": r".*\p{N}.*",
    "has_hyphen": r".+-.+",
    "no_letter_or_digit": r"[^\pL\pN]+",
}
#: A CRF (`build_model(crf=True)`) decodes tag sets of at most this many tags; a larger one (Brown's
#: ~450 full tags) keeps its softmax: the CRF's cost per word grows with the square of the tag count.
CRF_MAX_TAGS = 50
#: Words per text that `tag_texts` tags in one piece; a longer text is tagged in windows of this size.
MAX_WORDS = 400
#: Texts per call of the serving signature from the Python helpers and the CLI.
BATCH_SIZE = 64
#: Published UPOS accuracy (%) of UDPipe 2 on the official UD splits of the Portuguese sets
#: (the UD 2.x model documentation); our splits of Porttinari are not the official ones.
PUBLISHED = {"UDPipe 2": {"test": 99.2, "petrogold": 99.1, "dantestocks": 97.7}}

_WORD = r"[\pL\pN_]+(?:[-'’.,][\pL\pN_]+)*"
TOKEN_PATTERN = r"(\.\.\.|--|``|''|" + _WORD + r"|[^\pL\pN_\s])"
CONTROL_CHARACTERS = r"[\p{Cc}\p{Cf}\x{2028}\x{2029}]"


def _tf():
    import tensorflow as tf

    return tf


def tokenize_tensor(texts):
    """RaggedTensor of tokens [batch, (words)] of a string tensor [batch] (the rule in the module notes)."""
    tf = _tf()
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    texts = tf.strings.regex_replace(texts, CONTROL_CHARACTERS, " ")
    spaced = tf.strings.regex_replace(texts, TOKEN_PATTERN, r" \1 ")
    return tf.strings.split(spaced)


def tokenize(texts):
    """Token lists of Python strings (the same rule as the serving graph)."""
    tf = _tf()
    texts = [str(t) for t in texts]
    if not texts:
        return []
    tokens = tokenize_tensor(tf.constant(texts, tf.string))
    return [[w.decode("utf-8") for w in row] for row in tokens.to_list()]


# ---------------------------------------------------------------------------
# Layers


@keras.saving.register_keras_serializable(package="zoo")
class LowerCase(keras.layers.Layer):
    """Unicode lower-casing of a string tensor (keeps the shape)."""

    def call(self, words):
        return _tf().strings.lower(words, encoding="utf-8")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="zoo")
class PresentWords(keras.layers.Layer):
    """The padding mask of a words tensor: True where the word is not ""."""

    def call(self, words):
        return _tf().not_equal(words, "")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="zoo")
class WordCharacters(keras.layers.Layer):
    """The characters of each word, [batch, time] → [batch, time, max_chars] strings ("" pads).

    A word longer than `max_chars` keeps its first `prefix` and last
    `max_chars - prefix` characters (the suffix carries most of a word's tag).
    """

    def __init__(self, max_chars=MAX_CHARS, prefix=PREFIX_CHARS, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= prefix < max_chars:
            raise ValueError(f"prefix must be in [0, max_chars), received {prefix} and {max_chars}")
        self.max_chars, self.prefix = int(max_chars), int(prefix)

    def call(self, words):
        tf = _tf()
        words = tf.strings.unicode_transcode(words, "UTF-8", "UTF-8", errors="replace")
        length = tf.strings.length(words, unit="UTF8_CHAR")
        suffix = self.max_chars - self.prefix
        start = tf.maximum(length - suffix, 0)
        clipped = tf.strings.join([tf.strings.substr(words, 0, self.prefix, unit="UTF8_CHAR"),
                                   tf.strings.substr(words, start, tf.fill(tf.shape(words), suffix), unit="UTF8_CHAR")])
        words = tf.where(length > self.max_chars, clipped, words)
        chars = tf.strings.unicode_split(words, "UTF-8")
        shape = tf.shape(words)
        return chars.to_tensor(default_value="", shape=[shape[0], shape[1], self.max_chars])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.max_chars,)

    def get_config(self):
        return {**super().get_config(), "max_chars": self.max_chars, "prefix": self.prefix}


@keras.saving.register_keras_serializable(package="zoo")
class WordSuffixes(keras.layers.Layer):
    """The lower-cased last 1..`length` characters of each word, [batch, time] → [batch, time, length]
    strings; "" where the word is shorter than the suffix (and at padding)."""

    def __init__(self, length=3, **kwargs):
        super().__init__(**kwargs)
        if int(length) < 1:
            raise ValueError(f"length must be >= 1, received {length}")
        self.length = int(length)

    def call(self, words):
        tf = _tf()
        words = tf.strings.lower(tf.strings.unicode_transcode(words, "UTF-8", "UTF-8", errors="replace"),
                                 encoding="utf-8")
        size = tf.strings.length(words, unit="UTF8_CHAR")
        suffixes = []
        for k in range(1, self.length + 1):
            tail = tf.strings.substr(words, tf.maximum(size - k, 0), tf.fill(tf.shape(words), k), unit="UTF8_CHAR")
            suffixes.append(tf.where(size >= k, tail, ""))
        return tf.stack(suffixes, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.length,)

    def get_config(self):
        return {**super().get_config(), "length": self.length}


@keras.saving.register_keras_serializable(package="zoo")
class WordShape(keras.layers.Layer):
    """Spelling indicators of each word, [batch, time] → [batch, time, len(WORD_SHAPES)] float32 (1 or 0):
    starts with a capital, all capitals, has a digit, has a hyphen, has no letter or digit."""

    def call(self, words):
        tf = _tf()
        words = tf.strings.unicode_transcode(words, "UTF-8", "UTF-8", errors="replace")
        present = tf.not_equal(words, "")
        flags = [tf.logical_and(present, tf.strings.regex_full_match(words, pattern))
                 for pattern in WORD_SHAPES.values()]
        return tf.cast(tf.stack(flags, axis=-1), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (len(WORD_SHAPES),)


WordDropout = layers.WordDropout  # lifted into zoo.layers (the sentiment reader uses it too)


@keras.saving.register_keras_serializable(package="zoo")
class CharacterEncoder(keras.layers.Layer):
    """Character ids [batch, time, chars] (0 pads) → one vector per word [batch, time, 2 * units]:
    the final states of a bidirectional zoo recurrent layer over the word's characters."""

    def __init__(self, vocabulary_size, embedding_dim=32, units=32, cell="gru", **kwargs):
        super().__init__(**kwargs)
        from zoo import layers

        self.vocabulary_size, self.embedding_dim = int(vocabulary_size), int(embedding_dim)
        self.units, self.cell = int(units), cell
        self.embedding = keras.layers.Embedding(self.vocabulary_size, self.embedding_dim, name="embedding")
        self.reader = keras.layers.Bidirectional(layers.sequence_layer_class(cell)(self.units), name="reader")

    def build(self, input_shape):
        self.embedding.build((None, input_shape[-1]))
        self.reader.build((None, input_shape[-1], self.embedding_dim))
        self.built = True

    def call(self, char_ids, training=False):
        tf = _tf()
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, shape[2]])
        present = tf.where(tf.reduce_any(flat > 0, axis=1))[:, 0]  # padding words are skipped
        words = tf.gather(flat, present)
        encoded = self.reader(self.embedding(words), mask=words > 0, training=training)
        out = tf.scatter_nd(present[:, None], encoded, [tf.shape(flat)[0], 2 * self.units])
        return tf.reshape(out, [shape[0], shape[1], 2 * self.units])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2]) + (2 * self.units,)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell}


# ---------------------------------------------------------------------------
# Vocabularies and the model


def _frequent_first(counts, min_count):
    """The items of a Counter seen at least `min_count` times, most frequent first (ties in order)."""
    return [item for item, n in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])) if n >= min_count]


def word_counts(sentences):
    """How often each lower-cased word occurs in `sentences` (token lists)."""
    return collections.Counter(w.lower() for words in sentences for w in words if w)


def word_vocabulary(sentences, min_count=2, counts=None):
    """Lower-cased training words seen at least `min_count` times, most frequent first (`counts`:
    `word_counts(sentences)` when already at hand)."""
    return _frequent_first(counts if counts is not None else word_counts(sentences), min_count)


def character_vocabulary(sentences, min_count=2):
    return _frequent_first(collections.Counter(c for words in sentences for w in words for c in w), min_count)


def suffix_vocabulary(sentences, length=3, min_count=2):
    """Lower-cased word endings of 1..`length` characters seen at least `min_count` times in training."""
    lowered = (w.lower() for words in sentences for w in words)
    endings = (w[-k:] for w in lowered for k in range(1, min(length, len(w)) + 1))
    return _frequent_first(collections.Counter(endings), min_count)


def tag_vocabularies(split):
    """Each tag set's tags in the training split, sorted."""
    return {name: sorted({t for tags in split.tags[name] for t in tags}) for name in split.label_sets}


def lexicon_table(word_classes):
    """(words, class ids, classes) of a `{word: class}` lexicon, looked up lower-cased: each
    lower-cased form once (the class of the form that is already lower case, else of the first form
    in sorted order); class ids count from 1 (0: padding, or a word not in the lexicon)."""
    lowered = {}
    for word in sorted(word_classes):
        key = word.lower()
        if key and (key not in lowered or word == key):
            lowered[key] = word_classes[word]
    classes = sorted(set(lowered.values()))
    number = {c: i + 1 for i, c in enumerate(classes)}
    words = sorted(lowered)
    return words, [number[lowered[w]] for w in words], classes


@keras.saving.register_keras_serializable(package="zoo")
class LexiconClasses(keras.layers.Layer):
    """Lexicon ids (a `StringLookup` over the lexicon's words: 0 padding, 1 not in it) → class ids
    (0 for padding and for words not in the lexicon). The table is a non-trainable weight, saved with
    the model."""

    def __init__(self, vocabulary_size, class_ids=None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.table = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", dtype="int32",
                                     trainable=False, name="class_ids")
        if class_ids is not None:
            class_ids = np.asarray(class_ids, dtype="int32")
            if class_ids.shape != (self.vocabulary_size,):
                raise ValueError(f"class_ids must hold {self.vocabulary_size} ids, received {class_ids.shape}")
            self.table.assign(class_ids)

    def call(self, ids):
        return keras.ops.take(self.table, keras.ops.clip(keras.ops.cast(ids, "int32"), 0, self.vocabulary_size - 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


def build_model(train_words, tag_sets, cell="lstm", char_cell="lstm", units=200, layers=1, char_units=64,
                word_dim=100, char_dim=50, min_count=2, dropout=0.5, word_dropout=0.15, seed=None,
                characters=True, suffix_length=0, suffix_dim=16, shape=False, crf=False, rare_word_alpha=0.0,
                lexicon=None, lexicon_dim=16):
    """The tagger, with word, character and suffix vocabularies from `train_words` (token lists).

    `suffix_length` > 0 adds an embedding (`suffix_dim`) of each of the word's last 1..suffix_length
    characters, lower-cased (endings seen fewer than `min_count` times share one id); `shape` adds the
    `WordShape` indicators. Both go beside the word embedding and the character encoder.

    `crf` puts a linear-chain CRF (`zoo.tasks.crf.ChainCRF`) on every tag set of at most `CRF_MAX_TAGS`
    tags: that output is then the tags' scores, trained by the CRF's sequence likelihood and decoded by
    Viterbi (`tag_scores`); the other tag sets keep a softmax per word.

    `rare_word_alpha` > 0 adds `zoo.layers.RareWordDropout`: in training, a word seen `n` times is
    also read as unknown with probability alpha / (alpha + n).

    `lexicon` ({word: class}, e.g. `zoo.data.lexicons.word_classes`) adds an embedding (`lexicon_dim`)
    of each word's class in that lexicon, looked up lower-cased (`LexiconClasses`): words the tagged
    training text never holds still get one when the lexicon has them.

    `tag_sets` maps each output name to its tags: {"universal": [...], "brown": [...]}.
    """
    from zoo import layers as zoo_layers

    if not tag_sets:
        raise ValueError("tag_sets must name at least one tag set")
    words = keras.Input(shape=(None,), dtype="string", name="words")
    counts = word_counts(train_words)
    vocabulary = word_vocabulary(train_words, min_count, counts)
    word_ids = keras.layers.StringLookup(vocabulary=vocabulary, mask_token="", num_oov_indices=1,
                                         name="word_ids")(LowerCase(name="lower_case")(words))
    word_ids = WordDropout(word_dropout, seed=seed, name="word_dropout")(word_ids)
    if rare_word_alpha:
        word_ids = zoo_layers.RareWordDropout(
            rare_word_alpha, len(vocabulary) + 2, counts=[0, 0] + [counts[w] for w in vocabulary],
            seed=None if seed is None else seed + 1, name="rare_word_dropout")(word_ids)
    features = [keras.layers.Embedding(len(vocabulary) + 2, word_dim, mask_zero=True,
                                       name="word_embedding")(word_ids)]
    if characters:
        chars = character_vocabulary(train_words, min_count)
        char_ids = keras.layers.StringLookup(vocabulary=chars, mask_token="", num_oov_indices=1,
                                             name="char_ids")(WordCharacters(name="characters")(words))
        features.append(CharacterEncoder(len(chars) + 2, char_dim, char_units, char_cell,
                                         name="character_encoder")(char_ids))
    if suffix_length:
        endings = suffix_vocabulary(train_words, suffix_length, min_count)
        ending_ids = keras.layers.StringLookup(vocabulary=endings, mask_token="", num_oov_indices=1,
                                               name="suffix_ids")(WordSuffixes(suffix_length, name="suffixes")(words))
        embedded = keras.layers.Embedding(len(endings) + 2, suffix_dim, name="suffix_embedding")(ending_ids)
        features.append(keras.layers.Reshape((-1, suffix_length * suffix_dim), name="suffix_features")(embedded))
    if shape:
        features.append(WordShape(name="word_shape")(words))
    if lexicon:
        lexicon_words, class_ids, classes = lexicon_table(lexicon)
        known = keras.layers.StringLookup(vocabulary=lexicon_words, mask_token="", num_oov_indices=1,
                                          name="lexicon_ids")(LowerCase(name="lexicon_lower_case")(words))
        word_classes = LexiconClasses(len(lexicon_words) + 2, class_ids=[0, 0] + class_ids,
                                      name="lexicon_classes")(known)
        features.append(keras.layers.Embedding(len(classes) + 1, lexicon_dim, name="lexicon_embedding")(word_classes))
    x = keras.layers.Concatenate(name="word_features")(features) if len(features) > 1 else features[0]
    x = keras.layers.Dropout(dropout, name="feature_dropout")(x)
    # The padding mask is passed explicitly: Keras's Concatenate ORs the masks of its inputs, and the
    # character features carry none, so an implicit mask would let padding into the reader.
    present = PresentWords(name="present_words")(words)
    for i in range(layers):
        x = keras.layers.Bidirectional(
            zoo_layers.sequence_layer_class(cell)(units, return_sequences=True),
            name=f"sentence_bi{cell}" + (f"_{i + 1}" if layers > 1 else ""))(x, mask=present)
        x = keras.layers.Dropout(dropout, name=f"sentence_dropout{'_' + str(i + 1) if layers > 1 else ''}")(x)
    outputs = {}
    for name, tags in tag_sets.items():
        if crf and len(tags) <= CRF_MAX_TAGS:
            scores = keras.layers.Dense(len(tags), name=f"{name}_scores")(x)
            outputs[name] = ChainCRF(len(tags), name=name)(scores)
        else:
            outputs[name] = keras.layers.Dense(len(tags), activation="softmax", name=name)(x)
    model = keras.Model(words, outputs, name=f"tagger_bi{cell}")
    model.tag_sets = {name: list(tags) for name, tags in tag_sets.items()}
    return model


def lexicon_sample(word_classes, per_class=20000, seed=0):
    """(words, class ids, classes) of `word_classes` ({word: class}) with at most `per_class` words of
    any one class (a seeded sample of the larger ones), shuffled with `seed`; classes sorted."""
    rng = np.random.default_rng(seed)
    by_class = collections.defaultdict(list)
    for word, name in sorted(word_classes.items()):
        by_class[name].append(word)
    classes = sorted(by_class)
    words, ids = [], []
    for i, name in enumerate(classes):
        members = by_class[name]
        if len(members) > per_class:
            members = [members[j] for j in sorted(rng.choice(len(members), per_class, replace=False))]
        words += members
        ids += [i] * len(members)
    order = rng.permutation(len(words))
    return [words[i] for i in order], np.asarray(ids, np.int32)[order], classes


def pretrain_character_reader(model, word_classes, epochs=2, batch_size=256, per_class=20000, seed=0,
                              learning_rate=2e-3, verbose=2):
    """Train the character reader of the tagger `model` (its `characters`, `char_ids` and
    `character_encoder` layers, shared, so the tagger keeps what they learn) to predict the class of
    each word of an external lexicon (`zoo.data.lexicons.word_classes`) through a softmax head that is
    then dropped. The lexicon's word types far outnumber the tagged corpus's, so the reader sees many
    more spellings before it learns the tags. Returns what ran: words, classes, epochs, seconds and
    the head's training accuracy in the last epoch."""
    import time

    tf = _tf()
    names = {layer.name for layer in model.layers}
    if "character_encoder" not in names:
        raise ValueError("pretrain_character_reader needs a tagger built with characters=True")
    if not word_classes:
        raise ValueError("word_classes is empty: no lexicon to pretrain the character reader on")
    words, labels, classes = lexicon_sample(word_classes, per_class, seed)
    single = keras.Input(shape=(1,), dtype="string", name="lexicon_word")
    encoded = model.get_layer("character_encoder")(model.get_layer("char_ids")(model.get_layer("characters")(single)))
    head = keras.layers.Dense(len(classes), activation="softmax", name="lexicon_class")(
        keras.layers.Flatten(name="lexicon_flatten")(encoded))
    reader = keras.Model(single, head, name="character_reader_pretraining")
    reader.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=5.0),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((np.asarray(words, dtype=object)[:, None], labels))
    data = data.shuffle(len(words), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    started = time.time()
    history = reader.fit(data, epochs=epochs, verbose=verbose)
    return {"words": len(words), "classes": len(classes), "per_class": per_class, "epochs": epochs,
            "seconds": round(time.time() - started, 1),
            "accuracy": round(float(history.history["accuracy"][-1]), 4)}


def crf_layers(model) -> dict:
    """The tag sets of `model` that a CRF decodes, with their `ChainCRF` layers."""
    names = list(model.output.keys()) if isinstance(model.output, dict) else list(model.output_names)
    return {n: model.get_layer(n) for n in names if isinstance(model.get_layer(n), ChainCRF)}


def compile_model(model, learning_rate=2e-3, clipnorm=5.0):
    names = list(model.output.keys()) if isinstance(model.output, dict) else list(model.output_names)
    crfs = crf_layers(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
                  loss={n: CRFLoss(crfs[n]) if n in crfs else "sparse_categorical_crossentropy" for n in names},
                  weighted_metrics={n: ["sparse_categorical_accuracy"] for n in names})


def describe_architecture(model, cell, char_cell, units, layers, char_units, word_dim, char_dim, dropout,
                          word_dropout, characters=True, suffix_length=0, suffix_dim=16, shape=False,
                          lexicon=None):
    crfs = crf_layers(model)
    heads = ", ".join(f"{n} ({len(t)} tags{', linear-chain CRF' if n in crfs else ''})"
                      for n, t in model.tag_sets.items())
    words = model.get_layer("word_ids").vocabulary_size()
    text = (f"words → lower-case → {words:,} word ids → Embedding({word_dim}, word dropout {word_dropout}")
    layer_names = {layer.name for layer in model.layers}
    if "rare_word_dropout" in layer_names:
        alpha = model.get_layer("rare_word_dropout").alpha
        text += f", and a word seen n times dropped with probability {alpha:g}/({alpha:g}+n)"
    text += ")"
    if "lexicon_classes" in layer_names:
        embedding = model.get_layer("lexicon_embedding")
        text += (f" ⊕ lower-cased word → its class in an external lexicon "
                 f"({model.get_layer('lexicon_ids').vocabulary_size() - 2:,} words, {embedding.input_dim - 1} classes)"
                 f" → Embedding({embedding.output_dim})")
    if characters:
        chars = model.get_layer("char_ids").vocabulary_size()
        text += (f" ⊕ characters ({chars} ids; first {PREFIX_CHARS} + last {MAX_CHARS - PREFIX_CHARS} of a "
                 f"longer word) → Embedding({char_dim}) → Bidirectional(zoo {char_cell.upper()}({char_units})) "
                 "final states")
        if lexicon:
            text += (f" (first trained for {lexicon['epochs']} epochs to name the {lexicon['classes']} classes of "
                     f"{lexicon['words']:,} words of an external lexicon: {lexicon['source']})")
    if suffix_length:
        endings = model.get_layer("suffix_ids").vocabulary_size()
        text += f" ⊕ endings of 1..{suffix_length} characters ({endings:,} ids) → Embedding({suffix_dim}) each"
    if shape:
        text += f" ⊕ {len(WORD_SHAPES)} spelling indicators ({', '.join(WORD_SHAPES)})"
    text += (f" → Dropout({dropout}) → {layers} × Bidirectional(zoo {cell.upper()}({units}), per word)"
             f" → Dropout({dropout}) → " + ("scores per tag set" if crfs else "softmax per tag set") + f": {heads}")
    return text


# ---------------------------------------------------------------------------
# Data pipeline


def _tag_ids(split, tag_sets):
    ids = {}
    for name, tags in tag_sets.items():
        index = {t: i for i, t in enumerate(tags)}
        # a tag never seen in training cannot be predicted: it is trained on as nothing (weight 0)
        ids[name] = [[index.get(t, -1) for t in sentence] for sentence in split.tags[name]]
    return ids


def length_batches(lengths, batch_size, seed=None):
    """Sentence indices cut into batches of similar length (sorted by length; ties by a seeded draw)."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(lengths)), lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def as_dataset(split, tag_sets, batch_size=32, shuffle=False, seed=None):
    """(words [b, t], {set: tag ids [b, t]}, {set: weights [b, t]}) batches of similar-length sentences;
    `shuffle` reorders the batches every epoch (seeded)."""
    tf = _tf()
    lengths = [len(w) for w in split.words]
    flat_words = np.array([w for words in split.words for w in words] or [""], dtype=object)[:sum(lengths)]
    words = tf.RaggedTensor.from_row_lengths(tf.constant(flat_words, tf.string), lengths)
    tag_ids = {name: tf.RaggedTensor.from_row_lengths(
        tf.constant(np.array([t for s in ids for t in s], np.int32)), lengths)
        for name, ids in _tag_ids(split, tag_sets).items()}
    batches = length_batches(lengths, batch_size, seed)
    batch_rows = tf.ragged.constant([b.tolist() for b in batches], dtype=tf.int64)

    def make_batch(i):
        rows = batch_rows[i]
        batch_words = tf.gather(words, rows).to_tensor("")
        targets, weights = {}, {}
        for name, ragged in tag_ids.items():
            ids = tf.gather(ragged, rows).to_tensor(-1)
            weights[name] = tf.cast(ids >= 0, tf.float32)
            targets[name] = tf.maximum(ids, 0)
        return batch_words, targets, weights

    data = tf.data.Dataset.range(len(batches))
    if shuffle:
        data = data.shuffle(len(batches), seed=seed, reshuffle_each_iteration=True)
    return data.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


# ---------------------------------------------------------------------------
# Prediction and evaluation


def tag_scores(model, words):
    """Per tag set of `model`, for words string [batch, time] ("" pads at the end): the chosen tag ids
    int32 [batch, time] and every tag's probability float32 [batch, time, tags]. A softmax head takes
    each word's most probable tag; a CRF head the best sequence (Viterbi) and the CRF's marginals."""
    tf = _tf()
    outputs = model(words, training=False)
    crfs = crf_layers(model)
    present = tf.not_equal(words, "")
    chosen = {}
    for name, out in outputs.items():
        out = tf.cast(out, tf.float32)
        if name in crfs:
            chosen[name] = (crfs[name].decode(out, present), crfs[name].tag_probabilities(out, present))
        else:
            chosen[name] = (tf.argmax(out, axis=-1, output_type=tf.int32), out)
    return chosen


def _predictor(model):
    tf = _tf()
    function = getattr(model, "_zoo_tag_function", None)
    if function is None:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string)], reduce_retracing=True)
        def function(words):
            return tag_scores(model, words)
        model._zoo_tag_function = function
    return function


def predict(model, sentences, batch_size=BATCH_SIZE):
    """Per sentence (token lists): {tag set: (tags, probabilities of the chosen tags)}."""
    tf = _tf()
    tag_sets = model.tag_sets
    function = _predictor(model)
    results = [{name: ([], []) for name in tag_sets} for _ in sentences]
    for batch in length_batches([len(s) for s in sentences], batch_size):
        rows = [list(sentences[i]) for i in batch]
        longest = max((len(r) for r in rows), default=0)
        if longest == 0:
            continue
        padded = np.array([r + [""] * (longest - len(r)) for r in rows], dtype=object)
        out = function(tf.constant(padded, tf.string))
        for name, tags in tag_sets.items():
            best, probabilities = (np.asarray(t) for t in out[name])
            for j, i in enumerate(batch):
                n = len(rows[j])
                results[i][name] = ([tags[k] for k in best[j, :n]],
                                    [float(p) for p in probabilities[j, np.arange(n), best[j, :n]]])
    return results


def evaluate(model, splits, train_words):
    """Scores of every tag set on every split (see `tagging_baselines.score`)."""
    from zoo.tasks.tagging_baselines import score

    results = {}
    for split_name, split in splits.items():
        predictions = predict(model, split.words)
        results[split_name] = {name: score([p[name][0] for p in predictions], split, name, train_words)
                               for name in model.tag_sets}
    return results


# ---------------------------------------------------------------------------
# Serving


def _tagger_module(model):
    """A `tf.Module` with the two serving functions; it holds `model` so that the SavedModel
    stores every weight once (see `zoo.tasks.word_decoding.hold_model`)."""
    tf = _tf()
    from zoo.tasks.word_decoding import hold_model

    module = tf.Module(name="tagger")
    hold_model(module, model)
    module.tag_names = {name: tf.constant(tags) for name, tags in model.tag_sets.items()}

    def tag_tokens(tokens):
        lengths = tf.reduce_sum(tf.cast(tokens != "", tf.int32), axis=1)
        empty = tf.logical_or(tf.shape(tokens)[0] == 0, tf.shape(tokens)[1] == 0)
        out = {"tokens": tokens, "lengths": lengths}
        scored = tf.cond(
            empty,
            lambda: {n: (tf.zeros(tf.shape(tokens), tf.int32),
                         tf.zeros([tf.shape(tokens)[0], tf.shape(tokens)[1], tf.shape(t)[0]], tf.float32))
                     for n, t in module.tag_names.items()},
            lambda: tag_scores(module.model, tokens))
        for name, names in module.tag_names.items():
            best, p = scored[name]
            out[f"{name}_tags"] = tf.where(tokens != "", tf.gather(names, best), "")
            out[f"{name}_probabilities"] = p
        return out

    module.tag = tf.function(tag_tokens, input_signature=[
        tf.TensorSpec(shape=(None, None), dtype=tf.string, name="tokens")])
    module.serve = tf.function(lambda texts: tag_tokens(tokenize_tensor(texts).to_tensor("")), input_signature=[
        tf.TensorSpec(shape=(None,), dtype=tf.string, name="texts")])
    return module


def write_serving(model, path):
    """SavedModel with two signatures:

    * ``serving_default``: ``texts`` string [batch] → ``tokens`` string [batch, words] ("" pads),
      ``lengths`` int32 [batch], and per tag set ``<set>_tags`` string [batch, words] ("" at
      padding) and ``<set>_probabilities`` float32 [batch, words, tags] (tags in the order of the
      card's ``tag_sets``).
    * ``tag``: pre-tokenised ``tokens`` string [batch, words] ("" pads) → the same, without tokenising.

    Every weight is stored once; TF1 session loaders (`saved_model_cli run`) restore them too.
    """
    tf = _tf()
    module = _tagger_module(model)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function(),
                                                       "tag": module.tag.get_concrete_function()})


def serving_examples():
    return {"serving_default": {"texts": ["The old man the boats.", "Ela mora em São Paulo."]},
            "tag": {"tokens": [["The", "old", "man", "the", "boats", "."], ["Time", "flies", "", "", "", ""]]}}


def tag_texts(model, texts, pretokenized=False, batch_size=BATCH_SIZE):
    """Tag free texts (or token lists with `pretokenized`): one list of (token, {set: (tag, p)}) per text.

    Empty texts give empty lists. A text of more than `MAX_WORDS` words is tagged in consecutive
    windows of `MAX_WORDS` (each window sees only its own words)."""
    token_lists = [list(t) for t in texts] if pretokenized else tokenize(texts)
    for tokens in token_lists:
        for token in tokens:
            if not isinstance(token, str) or not token.strip():
                raise ValueError(f"a pre-tokenised token must be a non-blank string, received {token!r}")
    pieces, owners = [], []
    for i, tokens in enumerate(token_lists):
        for start in range(0, max(len(tokens), 1), MAX_WORDS):
            pieces.append(tokens[start:start + MAX_WORDS])
            owners.append(i)
    predictions = predict(model, pieces, batch_size)
    results = [[] for _ in token_lists]
    for owner, piece, prediction in zip(owners, pieces, predictions):
        for k, token in enumerate(piece):
            results[owner].append((token, {n: (prediction[n][0][k], prediction[n][1][k]) for n in prediction}))
    return results


def format_tagged(tagged, tag_set, output_format="slash"):
    """One text's tags as `token/TAG token/TAG` or CoNLL-U lines (ID, FORM, UPOS/XPOS by tag set)."""
    if output_format == "slash":
        return " ".join(f"{token}/{tags[tag_set][0]}" for token, tags in tagged)
    if output_format == "conllu":
        lines = []
        for i, (token, tags) in enumerate(tagged, 1):
            upos = tags[tag_set][0] if tag_set in ("upos",) else "_"
            xpos = "_" if tag_set == "upos" else tags[tag_set][0]
            lines.append(f"{i}\t{token}\t_\t{upos}\t{xpos}\t_\t_\t_\t_\t_")
        return "\n".join(lines) + "\n"
    raise ValueError(f"output format must be 'slash' or 'conllu', received {output_format!r}")


# ---------------------------------------------------------------------------
# zoo verify


def load_splits(data, seed, heldout_genres=(), max_sentences=None):
    """The splits of `data` ("brown" or "porttinari") with `seed` (and Brown's held-out genres),
    each cut to its first `max_sentences` sentences when given (smoke runs)."""
    from zoo.data import tagging

    if data == "brown":
        splits = tagging.load_brown(seed=seed, heldout_genres=heldout_genres)
    else:
        splits = tagging.load_portuguese(seed=seed)
    if max_sentences:
        splits = {k: v.head(max_sentences) for k, v in splits.items()}
    return splits


def remeasure(model, card):
    """Re-measure every split the card's metrics name (`zoo verify`)."""
    dataset = card["dataset"]
    splits = load_splits(dataset["name"], dataset["seed"], dataset.get("heldout_genres", ()),
                         dataset.get("max_sentences_per_split"))
    model.tag_sets = card["tag_sets"]
    names = [n for n in card["metrics"] if n in splits]
    return evaluate(model, {n: splits[n] for n in names}, splits["train"].word_forms())


def unseen_share(split, train_words):
    total = split.tokens()
    return sum(w not in train_words for words in split.words for w in words) / max(total, 1)


# ---------------------------------------------------------------------------
# zoo tag


def load_tagger(name, compile=False):
    """A hub tagger as a Keras model that `predict`, `tag_texts` and `as_dataset` accept (its tag
    sets, from the card, attached as `model.tag_sets`); fine-tune it after `compile_model(model)`."""
    from zoo import hub

    card = hub.info(name)
    if card.get("task") != TASK:
        raise ValueError(f"{name} is a {card.get('task')} model, not a tagger")
    model = hub.load(name, compile=compile)
    model.tag_sets = card["tag_sets"]
    return model


def tag_cli(name, texts, output_format="slash", tag_set=None, pretokenized=False):
    """`zoo tag`: one output line per input text (CoNLL-U: one block per text)."""
    from zoo import hub

    tag_sets = hub.info(name)["tag_sets"]
    tag_set = tag_set or next(iter(tag_sets))
    if tag_set not in tag_sets:
        raise ValueError(f"--tag-set must be one of {', '.join(tag_sets)}, received {tag_set!r}")
    model = load_tagger(name)
    for start in range(0, len(texts), BATCH_SIZE):
        batch = texts[start:start + BATCH_SIZE]
        if pretokenized:
            batch = [t.split() for t in batch]
        for index, tagged in enumerate(tag_texts(model, batch, pretokenized=pretokenized), start + 1):
            if output_format == "conllu":
                print(f"# sent_id = {index}")
                print(format_tagged(tagged, tag_set, "conllu"))
            else:
                print(format_tagged(tagged, tag_set))
        sys.stdout.flush()
    return 0
