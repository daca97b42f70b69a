"""Attention over a memory, and a recurrent decoder that attends at every step.

A memory is any tensor `values` of shape `(batch, S, dv)` (encoder outputs,
the cells of a CNN's spatial grid) with optional `keys` `(batch, S, dk)`
(default: the values) and an optional boolean `mask` `(batch, S)` that marks
the real positions. A query `q` (one per example, or one per target step)
scores every key, the scores become weights by a softmax over `S`, and the
context is the weighted sum of the values:

    additive (Bahdanau):        score(q, k) = v^T tanh(W_q q + W_k k)
    dot (Luong):                score(q, k) = q . k          (needs dq == dk)
    general (Luong):            score(q, k) = q^T W_a k
    weights = softmax over S of the scores (exactly 0 where the mask is False)
    context = sum_s weights_s * values_s

A row whose mask is all False gets all-zero weights and a zero context.

The part of the score that depends only on the keys (`W_k k`, `W_a k`) is
computed once by `prepare`; `attend` then costs one query projection per
step, which is what a step-wise decoder (greedy, sampling, beam search) needs.

`AttentionDecoder` is the decoder of Luong et al. (2015) built on the zoo
cells:

    h_t  = cell(x_t [; h~_{t-1}], h_{t-1})     ([; h~] with input feeding)
    c_t  = attend(h_t, memory)
    h~_t = tanh(W_c [c_t ; h_t])               the attentional vector, its output
"""

from zoo import _backend  # noqa: F401  (sets the Keras backend before import)

import keras
from keras import initializers, ops

from zoo.layers.base import static_shape, validate_rate, validate_units

#: Attention kinds by the names `attention_layer` and `AttentionDecoder` take.
ATTENTION_KINDS = ("additive", "dot", "general")

# Score given to masked positions before the softmax: far below any real
# score, yet finite, so that a row with no real position gives no NaN.
_MASKED_SCORE = -1e9


def _keras_mask(tensor):
    """The mask Keras attached to `tensor` (e.g. by `Embedding(mask_zero=True)`), or None."""
    try:
        from keras.src.backend import get_keras_mask
    except ImportError:  # pragma: no cover - layout of a future Keras
        return getattr(tensor, "_keras_mask", None)
    return get_keras_mask(tensor)


def masked_softmax(scores, mask):
    """Softmax over the last axis that gives exactly 0.0 where `mask` is False.

    Args:
        scores: Float tensor `(..., S)`.
        mask: Boolean tensor broadcastable to `scores`.

    Returns:
        Float32 weights of the shape of `scores`; a row without any True
        position is all zeros (never NaN).
    """
    scores = ops.cast(scores, "float32")
    mask = ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(scores))
    kept = ops.where(mask, scores, ops.full_like(scores, _MASKED_SCORE))
    kept = kept - ops.stop_gradient(ops.max(kept, axis=-1, keepdims=True))
    exponentials = ops.exp(kept) * ops.cast(mask, "float32")
    total = ops.sum(exponentials, axis=-1, keepdims=True)
    return exponentials / ops.where(total > 0, total, ops.ones_like(total))


class _Attention(keras.layers.Layer):
    """What the three score functions share: masks, softmax, context, shapes.

    Subclasses implement `_build_scores(query_dim, key_dim)`,
    `_prepare_keys(keys)` (the part of the score that depends on the keys
    only) and `_scores(query, prepared_keys)` for queries `(batch, T, dq)`.
    """

    # Whether the layer has weights whose shape depends on the query size
    # (then `prepare` needs a built layer).
    _needs_query_dim = True

    def __init__(self, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = initializers.get(kernel_initializer)

    def _describe(self):
        return f"{type(self).__name__} '{self.name}'"

    # -- shapes -------------------------------------------------------------
    def _check_query_shape(self, shape):
        if shape is None:
            return
        if len(shape) not in (2, 3) or shape[-1] is None:
            raise ValueError(
                f"{self._describe()}: `query` must have shape (batch, dq) or "
                f"(batch, T, dq) with a known dq. Received shape {tuple(shape)}"
            )

    def _check_memory_shape(self, argument, shape):
        if shape is None:
            return
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(
                f"{self._describe()}: `{argument}` must have shape (batch, S, d) "
                f"with a known d. Received shape {tuple(shape)}"
            )

    def build(self, query_shape, values_shape, keys_shape=None):
        query_shape = tuple(query_shape)
        values_shape = tuple(values_shape)
        self._check_query_shape(query_shape)
        self._check_memory_shape("values", values_shape)
        if keys_shape is not None:
            keys_shape = tuple(keys_shape)
            self._check_memory_shape("keys", keys_shape)
        key_dim = (keys_shape or values_shape)[-1]
        self._build_scores(int(query_shape[-1]), int(key_dim))
        self.built = True

    def _build_scores(self, query_dim, key_dim):
        pass

    def compute_output_shape(self, query_shape, values_shape, keys_shape=None):
        query_shape = tuple(query_shape)
        values_shape = tuple(values_shape)
        context_shape = query_shape[:-1] + (values_shape[-1],)
        weights_shape = query_shape[:-1] + (values_shape[1],)
        return context_shape, weights_shape

    def compute_mask(self, query, previous_mask=None):
        # `previous_mask` is the source `mask` argument when one is passed;
        # the outputs follow the query's own mask (per target step) instead.
        query_mask = _keras_mask(query)
        return [query_mask, query_mask]

    # -- the computation ------------------------------------------------------
    def prepare(self, values, keys=None, mask=None):
        """Computes once what every query reuses.

        Args:
            values: Tensor `(batch, S, dv)`.
            keys: Optional tensor `(batch, S, dk)`; default `values`.
            mask: Optional boolean tensor `(batch, S)`, True at real positions.

        Returns:
            A dict of tensors with leading dimension `batch` (so beam search
            can repeat every entry): `"keys"` (the keys as the score function
            needs them), `"values"` and `"mask"` (all True when `mask` is None).
        """
        values = ops.convert_to_tensor(values)
        keys = values if keys is None else ops.convert_to_tensor(keys)
        self._check_memory_shape("values", static_shape(values))
        self._check_memory_shape("keys", static_shape(keys))
        if not self.built:
            if self._needs_query_dim:
                raise ValueError(
                    f"{self._describe()}: the layer is not built yet, so the size "
                    f"of its queries is unknown. Call the layer once, or "
                    f"`build(query_shape, values_shape)`, before `prepare`."
                )
            self.build((None, keys.shape[-1]), values.shape, keys.shape)
        if mask is None:
            mask = ops.ones_like(values[:, :, 0], dtype="bool")
        else:
            mask = ops.cast(ops.convert_to_tensor(mask), "bool")
            mask_shape = static_shape(mask)
            if mask_shape is not None and len(mask_shape) != 2:
                raise ValueError(
                    f"{self._describe()}: `mask` must have shape (batch, S). "
                    f"Received shape {mask_shape}"
                )
        return {"keys": self._prepare_keys(keys), "values": values, "mask": mask}

    def attend(self, query, memory):
        """Attends over a prepared memory.

        Args:
            query: Tensor `(batch, dq)` or `(batch, T, dq)`.
            memory: The dict returned by `prepare`.

        Returns:
            `(context, weights)`: `(batch, dv)` and `(batch, S)` for a query
            `(batch, dq)`; `(batch, T, dv)` and `(batch, T, S)` for
            `(batch, T, dq)`.
        """
        query = ops.convert_to_tensor(query)
        shape = static_shape(query)
        self._check_query_shape(shape)
        single_step = len(shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
        scores = self._scores(query, memory["keys"])
        weights = masked_softmax(scores, ops.expand_dims(memory["mask"], 1))
        values = memory["values"]
        weights = ops.cast(weights, values.dtype)
        context = ops.matmul(weights, values)
        if single_step:
            return context[:, 0, :], weights[:, 0, :]
        return context, weights

    def call(self, query, values, keys=None, mask=None):
        return self.attend(query, self.prepare(values, keys=keys, mask=mask))

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="zoo")
class AdditiveAttention(_Attention):
    """Bahdanau attention, `score(q, k) = v^T tanh(W_q q + W_k k)`.

    Args:
        units: Positive integer, size of the hidden layer of the score.
        kernel_initializer: Initializer of `W_q`, `W_k` and `v`.

    Call arguments:
        query: Tensor `(batch, dq)` or `(batch, T, dq)`.
        values: Tensor `(batch, S, dv)`, the memory.
        keys: Optional tensor `(batch, S, dk)`; default `values`.
        mask: Optional boolean tensor `(batch, S)`, True at real positions.

    Returns:
        `(context, weights)`: `(batch, [T,] dv)` and `(batch, [T,] S)`; the
        weights are 0.0 exactly at masked positions.

    Example:

    >>> attention = AdditiveAttention(16)
    >>> context, weights = attention(keras.ops.ones((2, 8)), keras.ops.ones((2, 5, 4)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 4), (2, 5))
    """

    def __init__(self, units, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(kernel_initializer=kernel_initializer, **kwargs)
        self.units = validate_units(type(self).__name__, units)

    def _build_scores(self, query_dim, key_dim):
        self.query_kernel = self.add_weight(
            shape=(query_dim, self.units), name="query_kernel",
            initializer=self.kernel_initializer,
        )
        self.key_kernel = self.add_weight(
            shape=(key_dim, self.units), name="key_kernel",
            initializer=self.kernel_initializer,
        )
        self.score_vector = self.add_weight(
            shape=(self.units,), name="score_vector",
            initializer=self.kernel_initializer,
        )

    def _prepare_keys(self, keys):
        return ops.matmul(keys, self.key_kernel)

    def _scores(self, query, prepared_keys):
        projected = ops.matmul(query, self.query_kernel)  # (batch, T, units)
        hidden = ops.tanh(
            ops.expand_dims(projected, 2) + ops.expand_dims(prepared_keys, 1)
        )  # (batch, T, S, units)
        return ops.einsum("btsu,u->bts", hidden, self.score_vector)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="zoo")
class DotAttention(_Attention):
    """Luong's "dot" attention, `score(q, k) = q . k`; no weights, needs `dq == dk`.

    Call arguments, returns: as `AdditiveAttention`.

    Example:

    >>> context, weights = DotAttention()(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 5, 4)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 3, 4), (2, 3, 5))
    """

    _needs_query_dim = False

    def _build_scores(self, query_dim, key_dim):
        if query_dim != key_dim:
            raise ValueError(
                f"{self._describe()}: dot attention needs queries and keys of the "
                f"same size. Received query size {query_dim} and key size {key_dim}"
            )

    def _prepare_keys(self, keys):
        return keys

    def _scores(self, query, prepared_keys):
        query_dim, key_dim = query.shape[-1], prepared_keys.shape[-1]
        if query_dim is not None and key_dim is not None and query_dim != key_dim:
            raise ValueError(
                f"{self._describe()}: dot attention needs queries and keys of the "
                f"same size. Received query size {query_dim} and key size {key_dim}"
            )
        return ops.matmul(query, ops.swapaxes(prepared_keys, 1, 2))


@keras.saving.register_keras_serializable(package="zoo")
class GeneralAttention(_Attention):
    """Luong's "general" attention, `score(q, k) = q^T W_a k`.

    Args:
        kernel_initializer: Initializer of `W_a`.

    Call arguments, returns: as `AdditiveAttention`.

    Example:

    >>> context, weights = GeneralAttention()(keras.ops.ones((2, 8)), keras.ops.ones((2, 5, 4)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 4), (2, 5))
    """

    def _build_scores(self, query_dim, key_dim):
        # Stored as (dk, dq), so that `prepare` computes `k W_a^T` in one product.
        self.kernel = self.add_weight(
            shape=(key_dim, query_dim), name="kernel",
            initializer=self.kernel_initializer,
        )

    def _prepare_keys(self, keys):
        return ops.matmul(keys, self.kernel)

    def _scores(self, query, prepared_keys):
        return ops.matmul(query, ops.swapaxes(prepared_keys, 1, 2))


_ATTENTION_CLASSES = {
    "additive": AdditiveAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
}


def attention_layer(kind, units=None, **kwargs):
    """An attention layer by name.

    Args:
        kind: `"additive"`, `"dot"` or `"general"`.
        units: Size of the hidden layer of additive attention (required
            there); ignored by the other kinds, which have none.
        **kwargs: Passed to the layer (`name`, `kernel_initializer`, ...).

    Returns:
        An `AdditiveAttention`, `DotAttention` or `GeneralAttention`.
    """
    if not isinstance(kind, str) or kind not in _ATTENTION_CLASSES:
        raise ValueError(
            f"unknown attention {kind!r}; expected one of "
            f"{', '.join(ATTENTION_KINDS)}. Received: kind={kind!r}"
        )
    if kind == "additive":
        if units is None:
            raise ValueError(
                "attention_layer: additive attention needs `units` (its hidden "
                "size). Received: units=None"
            )
        return AdditiveAttention(units, **kwargs)
    return _ATTENTION_CLASSES[kind](**kwargs)


@keras.saving.register_keras_serializable(package="zoo")
class AttentionDecoder(keras.layers.Layer):
    """A zoo recurrent cell that attends over a memory at every step (Luong et al., 2015).

    The recurrence is a zoo sequence layer (`self.recurrent`, an `LSTM`,
    `GRU` or `SimpleRNN` with `return_sequences=True`); `self.cell` is its
    cell, so weights trained through the sequence layer are the weights
    `step` uses. Without input feeding the training call runs the whole
    target sequence through the sequence layer (its fused kernels) and then
    attends for all steps in one batched product; with input feeding it
    loops over time in the graph (in Python under the PyTorch and JAX
    backends), calling `step`. Both give the numbers of
    calling `step` once per target position.

    Args:
        cell: `"lstm"`, `"gru"` or `"rnn"`, the zoo cell of the recurrence.
        units: Positive integer, size of the cell state and of the outputs.
        attention: `"additive"`, `"dot"`, `"general"`, or None for a plain
            decoder whose outputs are the cell outputs (it attends to nothing:
            its weights are all zeros, of the usual shape).
            `"dot"` needs values of size `units`.
        attention_units: Hidden size of additive attention (default `units`).
        input_feeding: Concatenate the previous attentional vector `h~_{t-1}`
            (zeros at the first step) to each step input.
        dropout: Float in [0, 1), dropout rate on the attentional vector while
            training (the fed-back vector is the dropped one).

    Call arguments:
        inputs: Tensor `(batch, T, e)`, the embedded target sequence
            (teacher forcing). A Keras mask on it (from
            `Embedding(mask_zero=True)`) is passed on to the outputs; the
            recurrence itself runs over every step.
        values: Tensor `(batch, S, dv)`, the encoder outputs.
        initial_state: Optional list of `(batch, units)` tensors, the cell's
            state (`[h, c]` for the LSTM, `[h]` otherwise); default zeros.
        mask: Optional boolean tensor `(batch, S)`, True at real source positions.
        training: Whether dropout is active.

    Returns:
        `(outputs, weights)`: the attentional vectors `(batch, T, units)` and
        the attention weights `(batch, T, S)`.

    Example:

    >>> decoder = AttentionDecoder("gru", 8, attention="general")
    >>> outputs, weights = decoder(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 5, 6)))
    >>> tuple(outputs.shape), tuple(weights.shape)
    ((2, 3, 8), (2, 3, 5))

    Step by step (what a decoding loop calls):

    >>> memory = decoder.prepare(keras.ops.ones((2, 5, 6)), None)
    >>> state = decoder.initial_step_state(None, memory)
    >>> output, state, weights = decoder.step(keras.ops.ones((2, 4)), state, memory)
    """

    def __init__(
        self,
        cell="lstm",
        units=256,
        attention="additive",
        attention_units=None,
        input_feeding=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from zoo.layers import sequence_layer_class

        owner = type(self).__name__
        self.units = validate_units(owner, units)
        try:
            sequence_class = sequence_layer_class(cell)
        except (ValueError, TypeError):
            raise ValueError(
                f"{owner}: unknown cell {cell!r}; expected one of lstm, gru, rnn. "
                f"Received: cell={cell!r}"
            ) from None
        if attention is not None and attention not in ATTENTION_KINDS:
            raise ValueError(
                f"{owner}: unknown attention {attention!r}; expected one of "
                f"{', '.join(ATTENTION_KINDS)} or None. Received: attention={attention!r}"
            )
        if attention_units is not None:
            validate_units(f"{owner} (attention_units)", attention_units)
        if input_feeding and attention is None:
            raise ValueError(
                f"{owner}: input feeding feeds back the attentional vector, so it "
                f"needs an attention. Received: input_feeding={input_feeding!r} "
                f"with attention=None"
            )
        self.cell_name = cell
        self.attention_kind = attention
        self.attention_units = attention_units
        self.input_feeding = bool(input_feeding)
        self.dropout = validate_rate(owner, "dropout", dropout)

        self.recurrent = sequence_class(
            self.units, return_sequences=True, dtype=self.dtype_policy, name="recurrent"
        )
        if attention is None:
            self.attention = None
            self.combine = None
        else:
            self.attention = attention_layer(
                attention, units=attention_units or self.units,
                dtype=self.dtype_policy, name="attention",
            )
            self.combine = keras.layers.Dense(
                self.units, activation="tanh", use_bias=False,
                dtype=self.dtype_policy, name="combine",
            )
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        if self.input_feeding:
            # The time loop writes TensorArrays sized by the (dynamic) target
            # length, which XLA cannot compile.
            self.supports_jit = False

    @property
    def cell(self):
        """The zoo cell of the recurrence (the sequence layer's own cell)."""
        return self.recurrent.cell

    def _describe(self):
        return f"{type(self).__name__} '{self.name}'"

    # -- building -------------------------------------------------------------
    def _build_memory_side(self, values_shape):
        values_shape = tuple(values_shape)
        if len(values_shape) != 3 or values_shape[-1] is None:
            raise ValueError(
                f"{self._describe()}: `values` must have shape (batch, S, dv) with a "
                f"known dv. Received shape {values_shape}"
            )
        if self.attention is None:
            return
        if not self.attention.built:
            self.attention.build((None, self.units), values_shape)
        if not self.combine.built:
            self.combine.build((None, values_shape[-1] + self.units))

    def _build_step_side(self, input_dim):
        if input_dim is None:
            raise ValueError(
                f"{self._describe()}: the feature size of `inputs` must be known."
            )
        if not self.recurrent.built:
            step_dim = input_dim + (self.units if self.input_feeding else 0)
            self.recurrent.build((None, None, step_dim))

    def build(self, inputs_shape, values_shape, initial_state_shape=None):
        inputs_shape = tuple(inputs_shape)
        if len(inputs_shape) != 3:
            raise ValueError(
                f"{self._describe()}: `inputs` must have shape (batch, T, e). "
                f"Received shape {inputs_shape}"
            )
        self._build_step_side(inputs_shape[-1])
        self._build_memory_side(values_shape)
        self.built = True

    def compute_output_shape(self, inputs_shape, values_shape, initial_state_shape=None):
        inputs_shape = tuple(inputs_shape)
        return (
            inputs_shape[:-1] + (self.units,),
            inputs_shape[:-1] + (tuple(values_shape)[1],),
        )

    def compute_mask(self, inputs, previous_mask=None):
        # The target mask (on `inputs`) goes to the outputs, not the source mask.
        target_mask = _keras_mask(inputs)
        return [target_mask, target_mask]

    # -- step-wise decoding ---------------------------------------------------
    def prepare(self, values, mask=None):
        """The memory `step` attends over (computed once per source batch).

        Args:
            values: Tensor `(batch, S, dv)`, the encoder outputs.
            mask: Optional boolean tensor `(batch, S)`.

        Returns:
            A dict of tensors, each with leading dimension `batch`.
        """
        values = ops.convert_to_tensor(values)
        self._build_memory_side(static_shape(values))
        if self.attention is None:
            if mask is None:
                mask = ops.ones_like(values[:, :, 0], dtype="bool")
            return {"values": values, "mask": ops.cast(mask, "bool")}
        return self.attention.prepare(values, mask=mask)

    def initial_step_state(self, initial_state, memory):
        """The state `step` starts from.

        Args:
            initial_state: None (zeros) or the cell's state, a list of
                `(batch, units)` tensors.
            memory: The dict returned by `prepare` (gives the batch size).

        Returns:
            A list of `(batch, units)` tensors: the cell's state, then
            `h~_0 = 0` when `input_feeding` is on.
        """
        values = memory["values"]
        zeros = ops.zeros((ops.shape(values)[0], self.units), dtype=self.compute_dtype)
        state_count = len(self.recurrent.state_size) if isinstance(
            self.recurrent.state_size, (list, tuple)
        ) else 1
        if initial_state is None:
            states = [zeros] * state_count
        else:
            states = list(initial_state) if isinstance(
                initial_state, (list, tuple)
            ) else [initial_state]
            if len(states) != state_count:
                raise ValueError(
                    f"{self._describe()}: the {self.cell_name} cell has "
                    f"{state_count} state tensor(s) of shape (batch, {self.units}). "
                    f"Received {len(states)} initial state tensor(s)"
                )
        if self.input_feeding:
            states = states + [zeros]
        return states

    def step(self, inputs_t, state, memory, training=False):
        """One decoding step.

        Args:
            inputs_t: Tensor `(batch, e)`, the embedded current target token.
            state: List from `initial_step_state` or a previous `step`.
            memory: The dict returned by `prepare`.
            training: Whether dropout is active.

        Returns:
            `(output, new_state, weights)`: the attentional vector `(batch,
            units)` (the cell output for a plain decoder), the next state, and
            the attention weights `(batch, S)` (zeros for a plain decoder).
        """
        inputs_t = ops.convert_to_tensor(inputs_t)
        self._build_step_side(static_shape(inputs_t)[-1])
        state = list(state)
        if self.input_feeding:
            cell_state, previous = state[:-1], state[-1]
            inputs_t = ops.concatenate([inputs_t, previous], axis=-1)
        else:
            cell_state = state
        hidden, cell_state = self.cell(inputs_t, cell_state, training=training)
        cell_state = list(cell_state) if isinstance(cell_state, (list, tuple)) else [
            cell_state
        ]
        if self.attention is None:
            return hidden, cell_state, self._no_weights(memory, hidden)
        output, weights = self._attentional(hidden, memory, training)
        if self.input_feeding:
            cell_state = cell_state + [output]
        return output, cell_state, weights

    def _no_weights(self, memory, hidden):
        """All-zero weights `(batch, [T,] S)`: what a plain decoder attends to."""
        nothing = ops.zeros_like(memory["mask"], dtype=hidden.dtype)
        if len(hidden.shape) == 3:
            nothing = ops.expand_dims(nothing, 1) * ops.zeros_like(hidden[:, :, :1])
        return nothing

    def _attentional(self, hidden, memory, training):
        """`h~ = tanh(W_c [c ; h])` (with dropout while training) and the weights."""
        context, weights = self.attention.attend(hidden, memory)
        output = self.combine(ops.concatenate([context, hidden], axis=-1))
        return self.output_dropout(output, training=training), weights

    # -- teacher forcing ------------------------------------------------------
    def call(self, inputs, values, initial_state=None, mask=None, training=False):
        memory = self.prepare(values, mask)
        if not self.input_feeding:
            if _keras_mask(inputs) is not None:
                # Run the recurrence over every step, exactly as `step` does.
                inputs = ops.copy(inputs)
            hidden = self.recurrent(inputs, initial_state=initial_state, training=training)
            if self.attention is None:
                return hidden, self._no_weights(memory, hidden)
            return self._attentional(hidden, memory, training)
        return self._feeding_loop(inputs, initial_state, memory, training)

    def _feeding_loop(self, inputs, initial_state, memory, training):
        if keras.backend.backend() != "tensorflow":
            return self._feeding_loop_in_python(inputs, initial_state, memory, training)
        import tensorflow as tf

        state = self.initial_step_state(initial_state, memory)
        steps = ops.shape(inputs)[1]
        inputs_by_time = tf.transpose(inputs, [1, 0, 2])
        source_length = ops.shape(memory["values"])[1]
        outputs = tf.TensorArray(self.compute_dtype, size=steps)
        weights = tf.TensorArray(memory["values"].dtype, size=steps)

        def body(t, state, outputs, weights):
            output, state, step_weights = self.step(
                inputs_by_time[t], state, memory, training=training
            )
            return t + 1, state, outputs.write(t, output), weights.write(t, step_weights)

        _, _, outputs, weights = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), state, outputs, weights)
        )
        batch = ops.shape(inputs)[0]
        outputs = tf.reshape(
            tf.transpose(outputs.stack(), [1, 0, 2]), [batch, steps, self.units]
        )
        weights = tf.reshape(
            tf.transpose(weights.stack(), [1, 0, 2]), [batch, steps, source_length]
        )
        return outputs, weights

    def _feeding_loop_in_python(self, inputs, initial_state, memory, training):
        """Input feeding as a Python loop over `step`, for the other Keras backends.

        PyTorch runs eagerly and JAX traces with static shapes, so the number
        of target steps is known here; TensorFlow uses the graph loop above.
        """
        state = self.initial_step_state(initial_state, memory)
        outputs, weights = [], []
        for t in range(static_shape(inputs)[1]):
            output, state, step_weights = self.step(inputs[:, t], state, memory, training=training)
            outputs.append(output)
            weights.append(step_weights)
        return ops.stack(outputs, axis=1), ops.stack(weights, axis=1)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell_name,
            "units": self.units,
            "attention": self.attention_kind,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout,
        }
