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
