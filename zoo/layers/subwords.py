"""Hashed character n-grams of each word: a vector for every word, including words never seen."""

import keras

#: What Keras's `TextVectorization` strips by default after lower-casing (its
#: "lower_and_strip_punctuation"), so that the words here are the words it counts.
STRIP_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


@keras.saving.register_keras_serializable(package="zoo")
class HashedSubwordEmbedding(keras.layers.Layer):
    """Raw strings `[batch]` → one vector per word `[batch, sequence_length, dim]`: the mean of the
    learned vectors of the word's character n-grams (widths `min_n`..`max_n` of "<word>", at most
    `max_grams` of them), each hashed into one of `buckets` rows; zeros at padding.

    Words are split as `TextVectorization` splits them (lower-cased, punctuation stripped, split at
    whitespace, the first `sequence_length` kept), so the vectors line up with its word ids. A word
    the vocabulary never saw ("unwearable", "mouthfeel") still gets a vector from its pieces
    (fastText's subword vectors, Bojanowski et al. 2017).
    """

    def __init__(self, buckets=20000, dim=24, sequence_length=64, min_n=3, max_n=5, max_grams=32, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("buckets", buckets), ("dim", dim), ("sequence_length", sequence_length),
                            ("min_n", min_n), ("max_grams", max_grams)):
            if int(value) < 1:
                raise ValueError(f"HashedSubwordEmbedding {name} must be >= 1, received {value!r}")
        if int(max_n) < int(min_n):
            raise ValueError(f"HashedSubwordEmbedding max_n must be >= min_n, received {max_n!r} < {min_n!r}")
        self.buckets, self.dim, self.sequence_length = int(buckets), int(dim), int(sequence_length)
        self.min_n, self.max_n, self.max_grams = int(min_n), int(max_n), int(max_grams)

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=(self.buckets + 1, self.dim),
                                     initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def gram_ids(self, texts):
        """The n-gram rows of each word, `[batch, sequence_length, max_grams]` int64 (0: none)."""
        import tensorflow as tf

        texts = tf.strings.regex_replace(tf.strings.lower(texts), STRIP_PUNCTUATION, "")
        words = tf.strings.split(texts)
        marked = tf.strings.join(["<", words, ">"])
        chars = tf.strings.unicode_split(marked, "UTF-8")
        grams = tf.strings.ngrams(chars, ngram_width=tuple(range(self.min_n, self.max_n + 1)), separator="")
        rows = tf.strings.to_hash_bucket_fast(grams, self.buckets) + 1
        batch = tf.shape(texts, out_type=tf.int64)[0]
        return rows.to_tensor(0, shape=tf.stack([batch, self.sequence_length, self.max_grams]))

    def call(self, texts):
        import tensorflow as tf

        ids = self.gram_ids(texts)
        present = tf.cast(ids > 0, self.compute_dtype)[..., None]
        vectors = tf.gather(tf.cast(self.table, self.compute_dtype), ids) * present
        return tf.reduce_sum(vectors, axis=2) / tf.maximum(tf.reduce_sum(present, axis=2), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.sequence_length, self.dim)

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "dim": self.dim,
                "sequence_length": self.sequence_length, "min_n": self.min_n, "max_n": self.max_n,
                "max_grams": self.max_grams}
