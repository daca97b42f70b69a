"""A linear-chain conditional random field over per-token scores (Lafferty et al. 2001), for taggers.

A sentence of n tokens with emission scores ``e[t, k]`` (the network's score
of tag k at token t) gets the tag sequence y the score

    s(y) = start[y_0] + Σ_t e[t, y_t] + Σ_{t≥1} transitions[y_{t-1}, y_t] + end[y_{n-1}]

and the probability p(y) = exp s(y) / Z, Z summing exp s over every sequence.
Training minimises −log p(gold) (`negative_log_likelihood`, Z by the forward
algorithm in log space); tagging takes the best sequence by Viterbi
(`viterbi_decode`); the probability of each tag at each token (`marginals`)
is the gradient of log Z with respect to the emissions.

Every function takes ``mask`` bool [batch, time]: True on the real tokens of a
sentence, which come first (padding only at the end). Masked steps add
nothing; a sentence with no token has log Z = 0 and an empty path. The tests
check all three against brute force over every sequence of tiny inputs.
"""

from __future__ import annotations

import keras


def _tf():
    import tensorflow as tf

    return tf


def _time_major(x):
    tf = _tf()
    rank = len(x.shape)
    return tf.transpose(x, [1, 0] + list(range(2, rank)))


#: Masked steps added at the end of every input: each loop over time (from the second step on) then
#: has a step to run even for a batch of no token (a graph loop cannot stack zero steps of unknown shape).
PADDING_STEPS = 2


def _with_padding_steps(emissions, mask):
    tf = _tf()
    emissions = tf.convert_to_tensor(emissions, tf.float32)
    mask = tf.convert_to_tensor(mask, tf.bool)
    return (tf.pad(emissions, [[0, 0], [0, PADDING_STEPS], [0, 0]]),
            tf.pad(mask, [[0, 0], [0, PADDING_STEPS]]))


def log_partition(emissions, mask, transitions, start, end):
    """log Z per sentence, float32 [batch] (the forward algorithm)."""
    tf = _tf()
    emissions, mask = _with_padding_steps(emissions, mask)
    alpha = start[None, :] + emissions[:, 0]

    def step(alpha, inputs):
        scores, present = inputs
        stepped = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + scores
        return tf.where(present[:, None], stepped, alpha)

    alpha = tf.foldl(step, (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:])), initializer=alpha)
    return tf.where(mask[:, 0], tf.reduce_logsumexp(alpha + end[None, :], axis=1), 0.0)


def sequence_score(emissions, tags, mask, transitions, start, end):
    """s(tags) per sentence, float32 [batch]; `tags` int [batch, time] (any value at padding)."""
    tf = _tf()
    emissions = tf.convert_to_tensor(emissions, tf.float32)
    mask = tf.convert_to_tensor(mask, tf.bool)
    tags = tf.where(mask, tf.cast(tags, tf.int32), 0)
    weights = tf.cast(mask, tf.float32)
    unary = tf.reduce_sum(tf.gather(emissions, tags, batch_dims=2) * weights, axis=1)
    pairs = tf.gather_nd(transitions, tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1))
    binary = tf.reduce_sum(pairs * weights[:, 1:], axis=1)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    last = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)
    edges = tf.gather(start, tags[:, 0]) + tf.gather(end, last)
    return tf.where(lengths > 0, unary + binary + edges, 0.0)


def negative_log_likelihood(emissions, tags, mask, transitions, start, end):
    """−log p(tags) per sentence, float32 [batch]."""
    return (log_partition(emissions, mask, transitions, start, end)
            - sequence_score(emissions, tags, mask, transitions, start, end))


def viterbi_decode(emissions, mask, transitions, start, end):
    """The best tag sequence per sentence, int32 [batch, time] (0 at padding)."""
    tf = _tf()
    emissions, mask = _with_padding_steps(emissions, mask)
    num_tags = tf.shape(transitions)[0]
    delta = start[None, :] + emissions[:, 0]
    stay = tf.range(num_tags)[None, :]

    def step(carry, inputs):
        delta, _ = carry
        scores, present = inputs
        candidates = delta[:, :, None] + transitions[None]
        best = tf.argmax(candidates, axis=1, output_type=tf.int32)
        stepped = tf.reduce_max(candidates, axis=1) + scores
        # at padding the best path stays where it is: the back pointer of tag k is k
        return (tf.where(present[:, None], stepped, delta),
                tf.where(present[:, None], best, tf.broadcast_to(stay, tf.shape(best))))

    initial = (delta, tf.zeros_like(delta, tf.int32))
    deltas, pointers = tf.scan(step, (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:])),
                               initializer=initial)
    last = tf.argmax(deltas[-1] + end[None, :], axis=1, output_type=tf.int32)
    earlier = tf.scan(lambda tag, back: tf.gather(back, tag, batch_dims=1), pointers, initializer=last,
                      reverse=True)  # earlier[t] is the tag at t, from the pointer of step t + 1
    path = tf.concat([_time_major(earlier), last[:, None]], axis=1)
    return tf.where(mask, path, 0)[:, :-PADDING_STEPS]


def marginals(emissions, mask, transitions, start, end):
    """p(tag k at token t) per sentence, float32 [batch, time, tags] (0 at padding): ∂ log Z / ∂ e."""
    tf = _tf()
    emissions = tf.convert_to_tensor(emissions, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(emissions)
        total = tf.reduce_sum(log_partition(emissions, mask, transitions, start, end))
    return tape.gradient(total, emissions)


@keras.saving.register_keras_serializable(package="zoo")
class ChainCRF(keras.layers.Layer):
    """Holds a linear-chain CRF's transition, start and end scores for `num_tags` tags; called on the
    emission scores [batch, time, tags], it returns them unchanged (the CRF acts in the loss and in
    decoding: `CRFLoss`, `decode`, `tag_probabilities`)."""

    def __init__(self, num_tags, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = int(num_tags)
        self.supports_masking = True  # the padding mask passes through to the loss and the metrics

    def build(self, input_shape):
        zeros = keras.initializers.Zeros()
        self.transitions = self.add_weight(shape=(self.num_tags, self.num_tags), initializer=zeros,
                                           name="transitions")
        self.start = self.add_weight(shape=(self.num_tags,), initializer=zeros, name="start")
        self.end = self.add_weight(shape=(self.num_tags,), initializer=zeros, name="end")
        self.built = True

    def call(self, emissions):
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    def parameters(self):
        return self.transitions, self.start, self.end

    def decode(self, emissions, mask):
        return viterbi_decode(emissions, mask, *self.parameters())

    def tag_probabilities(self, emissions, mask):
        return marginals(emissions, mask, *self.parameters())

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}


class CRFLoss(keras.losses.Loss):
    """−log p(gold tags) under `crf` (a `ChainCRF`), summed over the batch's sentences and divided by its
    tokens (the per-token scale of cross-entropy). The sample weights mark the tokens: a sentence runs
    to its last token of weight > 0 (padding has weight 0)."""

    def __init__(self, crf, name="crf_loss"):
        super().__init__(name=name)
        self.crf = crf

    def __call__(self, y_true, y_pred, sample_weight=None):
        tf = _tf()
        tags = tf.cast(y_true, tf.int32)
        if sample_weight is None:
            mask = tf.ones_like(tags, tf.bool)
        else:
            mask = tf.cumsum(tf.cast(sample_weight > 0, tf.int32), axis=1, reverse=True) > 0
        nll = negative_log_likelihood(y_pred, tags, mask, *self.crf.parameters())
        return tf.reduce_sum(nll) / tf.maximum(tf.reduce_sum(tf.cast(mask, tf.float32)), 1.0)

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)
