"""Word dropout: training text read as if some of its words were unknown."""

import keras


@keras.saving.register_keras_serializable(package="zoo")
class WordDropout(keras.layers.Layer):
    """While training, each known word id (> 1) becomes the unknown-word id 1 with probability
    `rate`; padding (0) stays, and at inference the layer is the identity.

    Text from another domain, or a rare word, is full of ids the model never learned; a model
    trained with word dropout learns to read those from what else it has (spelling, context, a
    lexicon). The tagger and the sentiment reader use it.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"WordDropout rate must be in [0, 1), received {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or self.rate <= 0:
            return ids
        drop = keras.random.uniform(keras.ops.shape(ids), seed=self.seed_generator) < self.rate
        return keras.ops.where(keras.ops.logical_and(drop, ids > 1), keras.ops.ones_like(ids), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class RareWordDropout(keras.layers.Layer):
    """While training, word id `i` (> 1) becomes the unknown-word id 1 with probability
    `alpha / (alpha + count[i])`, where `count[i]` is how often the word occurs in the training text
    (Kiperwasser & Goldberg 2016): rare words, the ones most like words never seen, are read as
    unknown often, frequent ones almost never. Padding (0) and unknown (1) stay; at inference the
    layer is the identity.

    `counts` (one per id, ids 0 and 1 included) is a non-trainable weight, saved with the model;
    give it at construction or assign `layer.counts` after building.
    """

    def __init__(self, alpha, vocabulary_size, counts=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not float(alpha) > 0:
            raise ValueError(f"RareWordDropout alpha must be > 0, received {alpha!r}")
        if int(vocabulary_size) < 2:
            raise ValueError(f"vocabulary_size counts ids 0 and 1 too: >= 2, received {vocabulary_size!r}")
        self.alpha, self.vocabulary_size, self.seed = float(alpha), int(vocabulary_size), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.counts = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", trainable=False,
                                      name="counts")
        if counts is not None:
            counts = keras.ops.convert_to_numpy(counts).astype("float32").reshape(-1)
            if counts.shape != (self.vocabulary_size,) or (counts < 0).any():
                raise ValueError(f"counts must be {self.vocabulary_size} non-negative numbers, "
                                 f"received shape {counts.shape}")
            self.counts.assign(counts)

    def call(self, ids, training=False):
        if not training:
            return ids
        counts = keras.ops.take(self.counts, keras.ops.clip(ids, 0, self.vocabulary_size - 1))
        rate = self.alpha / (self.alpha + counts)
        drop = keras.random.uniform(keras.ops.shape(ids), seed=self.seed_generator) < rate
        return keras.ops.where(keras.ops.logical_and(drop, ids > 1), keras.ops.ones_like(ids), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "vocabulary_size": self.vocabulary_size,
                "seed": self.seed}
