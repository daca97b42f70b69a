"""Attention layers and the attention decoder of zoo.layers, against NumPy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import layers

BATCH, TARGET, SOURCE = 3, 4, 6
QUERY_DIM, KEY_DIM, VALUE_DIM = 5, 7, 2
# Row 0: the last two source positions are padding; row 1: none; row 2: all.
SOURCE_MASK = np.array(
    [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=bool
)


def _normal(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def _attention(kind):
    return layers.attention_layer(kind, units=8)


def _memory(rng, kind):
    """(values, keys) for `kind`; dot attention scores the values themselves."""
    values = _normal(rng, BATCH, SOURCE, VALUE_DIM)
    if kind == "dot":
        return _normal(rng, BATCH, SOURCE, QUERY_DIM), None
    return values, _normal(rng, BATCH, SOURCE, KEY_DIM)


def _reference_scores(layer, query, keys):
    """NumPy scores (batch, T, S) for a query (batch, T, dq)."""
    if isinstance(layer, layers.AdditiveAttention):
        hidden = np.tanh(
            (query @ layer.query_kernel.numpy())[:, :, None, :]
            + (keys @ layer.key_kernel.numpy())[:, None, :, :]
        )
        return hidden @ layer.score_vector.numpy()
    if isinstance(layer, layers.GeneralAttention):
        # q^T W_a k with W_a = kernel^T (the layer stores it as (dk, dq)).
        return np.einsum("btq,qk,bsk->bts", query, layer.kernel.numpy().T, keys)
    return np.einsum("btd,bsd->bts", query, keys)


def _reference(layer, query, values, keys, mask):
    keys = values if keys is None else keys
    scores = _reference_scores(layer, query, keys).astype("float64")
    mask = np.broadcast_to(mask[:, None, :], scores.shape)
    shifted = np.where(mask, scores, -np.inf)
    top = shifted.max(axis=-1, keepdims=True)
    exponentials = np.where(mask, np.exp(shifted - np.where(np.isfinite(top), top, 0)), 0.0)
    total = exponentials.sum(axis=-1, keepdims=True)
    weights = np.divide(exponentials, total, out=np.zeros_like(exponentials), where=total > 0)
    return weights @ values, weights


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
@pytest.mark.parametrize("query_rank", [2, 3])
def test_forward_matches_numpy_reference(kind, query_rank, rng):
    layer = _attention(kind)
    values, keys = _memory(rng, kind)
    query = _normal(rng, BATCH, TARGET, QUERY_DIM)
    if query_rank == 2:
        query = query[:, 0, :]
    context, weights = layer(query, values, keys=keys, mask=SOURCE_MASK)
    expected_query = query if query_rank == 3 else query[:, None, :]
    expected_context, expected_weights = _reference(
        layer, expected_query, values, keys, SOURCE_MASK
    )
    if query_rank == 2:
        expected_context, expected_weights = expected_context[:, 0], expected_weights[:, 0]
    assert context.shape == expected_context.shape
    assert weights.shape == expected_weights.shape
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_context, rtol=1e-5, atol=1e-6)
    # The real rows sum to one; the all-padding row is all zeros.
    sums = np.asarray(weights).sum(axis=-1)
    np.testing.assert_allclose(sums[:2], 1.0, rtol=1e-6)
    assert np.all(sums[2] == 0.0)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_masked_positions_get_exactly_zero_weight_and_do_not_matter(kind, rng):
    layer = _attention(kind)
    values, keys = _memory(rng, kind)
    query = _normal(rng, BATCH, TARGET, QUERY_DIM)
    context, weights = (np.asarray(t) for t in layer(query, values, keys=keys, mask=SOURCE_MASK))
    assert np.all(weights[:, :, ~SOURCE_MASK[0]][0] == 0.0)
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(context))

    # Huge values and keys at the padded positions change nothing.
    padded = ~SOURCE_MASK[:, :, None]
    other_values = np.where(padded, 1e6, values).astype("float32")
    other_keys = None if keys is None else np.where(padded, -1e6, keys).astype("float32")
    context_again, weights_again = layer(query, other_values, keys=other_keys, mask=SOURCE_MASK)
    np.testing.assert_array_equal(weights_again, weights)
    np.testing.assert_array_equal(context_again, context)


@pytest.mark.parametrize("kind", ["additive", "general"])
def test_gradients_reach_every_weight_and_stay_finite(kind, rng):
    layer = _attention(kind)
    values, keys = _memory(rng, kind)
    query = tf.constant(_normal(rng, BATCH, TARGET, QUERY_DIM))
    probe = _normal(rng, BATCH, TARGET, VALUE_DIM)
    layer(query, values, keys=keys, mask=SOURCE_MASK)
    with tf.GradientTape() as tape:
        tape.watch(query)
        context, _ = layer(query, values, keys=keys, mask=SOURCE_MASK)
        loss = tf.reduce_sum(context * probe)
    gradients = tape.gradient(loss, [query] + layer.trainable_weights)
    assert len(gradients) == 1 + (3 if kind == "additive" else 1)
    for gradient in gradients:
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient))
        assert np.abs(gradient).max() > 0
    # The all-padding row gets no gradient at all (and no NaN).
    assert np.all(np.asarray(gradients[0])[2] == 0.0)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attend_on_prepared_memory_equals_the_call_and_steps_equal_the_sequence(kind, rng):
    layer = _attention(kind)
    values, keys = _memory(rng, kind)
    query = _normal(rng, BATCH, TARGET, QUERY_DIM)
    context, weights = layer(query, values, keys=keys, mask=SOURCE_MASK)
    memory = layer.prepare(values, keys=keys, mask=SOURCE_MASK)
    assert all(tensor.shape[0] == BATCH for tensor in memory.values())
    prepared_context, prepared_weights = layer.attend(query, memory)
    np.testing.assert_allclose(prepared_context, context, atol=1e-6)
    np.testing.assert_allclose(prepared_weights, weights, atol=1e-6)
    for t in range(TARGET):
        step_context, step_weights = layer(query[:, t], values, keys=keys, mask=SOURCE_MASK)
        np.testing.assert_allclose(step_context, np.asarray(context)[:, t], atol=1e-6)
        np.testing.assert_allclose(step_weights, np.asarray(weights)[:, t], atol=1e-6)


def test_without_mask_every_position_counts(rng):
    layer = layers.GeneralAttention()
    values = _normal(rng, BATCH, SOURCE, VALUE_DIM)
    query = _normal(rng, BATCH, QUERY_DIM)
    _, weights = layer(query, values)
    assert np.all(np.asarray(weights) > 0)
    memory = layer.prepare(values)
    assert memory["mask"].dtype == "bool" and bool(np.all(memory["mask"]))


# -- the decoder ----------------------------------------------------------------

DECODER_CASES = [
    ("lstm", "additive", False),
    ("lstm", "general", True),
    ("gru", "dot", False),
    ("gru", "additive", True),
    ("rnn", "general", True),
]


def _decoder_inputs(rng, embed_dim=3):
    inputs = _normal(rng, BATCH, TARGET, embed_dim)
    values = _normal(rng, BATCH, SOURCE, 6)
    return inputs, values


@pytest.mark.parametrize("cell,attention,feeding", DECODER_CASES)
def test_teacher_forcing_equals_stepping(cell, attention, feeding, rng):
    units = 6  # equal to the values' size, as dot attention needs
    decoder = layers.AttentionDecoder(
        cell, units, attention=attention, attention_units=5, input_feeding=feeding, dropout=0.3
    )
    inputs, values = _decoder_inputs(rng)
    state_count = 2 if cell == "lstm" else 1
    initial_state = [_normal(rng, BATCH, units) for _ in range(state_count)]
    outputs, weights = decoder(inputs, values, initial_state=initial_state, mask=SOURCE_MASK)
    assert outputs.shape == (BATCH, TARGET, units) and weights.shape == (BATCH, TARGET, SOURCE)
    if not feeding:  # the fast path: the sequence layer's fused kernels, not a step loop
        recurrent = decoder.recurrent
        path = getattr(recurrent, "last_recurrence_path", None) or getattr(
            recurrent, "last_implementation", None
        )
        assert path in ("fused", "cudnn")
    assert decoder.cell is decoder.recurrent.cell

    memory = decoder.prepare(values, SOURCE_MASK)
    assert all(tensor.shape[0] == BATCH for tensor in memory.values())
    state = decoder.initial_step_state(initial_state, memory)
    assert len(state) == state_count + int(feeding)
    for t in range(TARGET):
        output, state, step_weights = decoder.step(inputs[:, t], state, memory)
        np.testing.assert_allclose(output, np.asarray(outputs)[:, t], atol=2e-6)
        np.testing.assert_allclose(step_weights, np.asarray(weights)[:, t], atol=2e-6)
    weights = np.asarray(weights)
    assert np.all(weights[0, :, 4:] == 0.0) and np.all(weights[2] == 0.0)
    np.testing.assert_allclose(weights[:2].sum(-1), 1.0, rtol=1e-5)


def test_decoder_outputs_are_the_luong_attentional_vectors(rng):
    decoder = layers.AttentionDecoder("gru", 4, attention="general")
    inputs, values = _decoder_inputs(rng)
    outputs, weights = decoder(inputs, values, mask=SOURCE_MASK)
    hidden = np.asarray(decoder.recurrent(inputs))
    context, expected_weights = _reference(decoder.attention, hidden, values, None, SOURCE_MASK)
    combine = decoder.combine.kernel.numpy()
    expected = np.tanh(np.concatenate([context, hidden], axis=-1) @ combine)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_input_feeding_concatenates_the_previous_attentional_vector(rng):
    decoder = layers.AttentionDecoder("lstm", 4, attention="dot", input_feeding=True)
    inputs, values = _decoder_inputs(rng)
    values = values[..., :4]
    outputs, _ = decoder(inputs, values, mask=SOURCE_MASK)
    assert decoder.cell.input_dim == 3 + 4
    combine = decoder.combine.kernel.numpy()
    previous = np.zeros((BATCH, 4), "float32")
    state = [np.zeros((BATCH, 4), "float32")] * 2
    for t in range(TARGET):
        hidden, state = decoder.cell(np.concatenate([inputs[:, t], previous], -1), state)
        hidden = np.asarray(hidden)
        context, _ = _reference(decoder.attention, hidden[:, None], values, None, SOURCE_MASK)
        previous = np.tanh(np.concatenate([context[:, 0], hidden], -1) @ combine)
        np.testing.assert_allclose(outputs[:, t], previous, atol=1e-5)


def test_plain_decoder_outputs_the_cell_and_attends_to_nothing(rng):
    decoder = layers.AttentionDecoder("lstm", 5, attention=None)
    inputs, values = _decoder_inputs(rng)
    outputs, weights = decoder(inputs, values)
    np.testing.assert_allclose(outputs, decoder.recurrent(inputs), atol=1e-6)
    assert weights.shape == (BATCH, TARGET, SOURCE) and not np.any(weights)
    memory = decoder.prepare(values)
    output, _, step_weights = decoder.step(
        inputs[:, 0], decoder.initial_step_state(None, memory), memory
    )
    np.testing.assert_allclose(output, np.asarray(outputs)[:, 0], atol=1e-6)
    assert step_weights.shape == (BATCH, SOURCE)


@pytest.mark.parametrize("feeding", [False, True])
def test_decoder_gradients_and_training_dropout(feeding, rng):
    decoder = layers.AttentionDecoder(
        "lstm", 4, attention="additive", input_feeding=feeding, dropout=0.5
    )
    inputs, values = _decoder_inputs(rng)
    values = tf.constant(values)
    probe = _normal(rng, BATCH, TARGET, 4)
    with tf.GradientTape() as tape:
        tape.watch(values)
        outputs, _ = decoder(inputs, values, mask=SOURCE_MASK, training=True)
        loss = tf.reduce_sum(outputs * probe)
    gradients = tape.gradient(loss, [values] + decoder.trainable_weights)
    assert len(decoder.trainable_weights) == 3 + 3 + 1  # cell, attention, W_c
    for gradient in gradients:
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
    # Dropout acts while training only; it zeroes whole entries.
    evaluated, _ = decoder(inputs, values, mask=SOURCE_MASK)
    assert np.any(np.asarray(outputs) == 0.0) and not np.any(np.asarray(evaluated) == 0.0)


def test_input_feeding_decoder_trains_in_a_compiled_model(rng):
    source = keras.Input((None, 3))
    target = keras.Input((None, 2))
    outputs, _ = layers.AttentionDecoder(
        "gru", 4, attention="additive", input_feeding=True, dropout=0.1
    )(target, source)
    model = keras.Model([source, target], keras.layers.Dense(1)(outputs))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    assert not model.jit_compile
    batch = [_normal(rng, 8, SOURCE, 3), _normal(rng, 8, TARGET, 2)]
    labels = _normal(rng, 8, TARGET, 1)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(batch, labels, epochs=4, batch_size=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    assert all(np.any(b != np.asarray(a)) for b, a in zip(before, model.trainable_weights))


def test_target_mask_reaches_the_outputs(rng):
    tokens = np.array([[3, 4, 0, 0], [5, 0, 0, 0], [1, 2, 3, 4]])
    embedded = keras.layers.Embedding(8, 3, mask_zero=True)(tokens)
    _, values = _decoder_inputs(rng)
    decoder = layers.AttentionDecoder("gru", 4, attention="dot", input_feeding=False)
    outputs, _ = decoder(embedded, values[..., :4])
    plain, _ = decoder(tf.constant(np.asarray(embedded)), values[..., :4])
    np.testing.assert_array_equal(keras.src.backend.get_keras_mask(outputs), tokens != 0)
    np.testing.assert_allclose(outputs, plain, atol=1e-6)  # the recurrence ignores it


# -- serialization and errors -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_config_round_trip(kind):
    layer = layers.attention_layer(kind, units=9, name="att")
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    decoder = layers.AttentionDecoder("gru", 7, attention=kind, attention_units=3,
                                      input_feeding=True, dropout=0.25)
    assert layers.AttentionDecoder.from_config(decoder.get_config()).get_config() == (
        decoder.get_config()
    )


def test_keras_file_round_trip(tmp_path, rng):
    source = keras.Input((None, 5), name="source")
    source_mask = keras.Input((None,), dtype="bool", name="source_mask")
    target = keras.Input((None, 3), name="target")
    encoded = layers.GRU(6, return_sequences=True)(source)
    outputs, weights = layers.AttentionDecoder(
        "lstm", 6, attention="general", input_feeding=True, name="decoder"
    )(target, encoded, mask=source_mask)
    summary, _ = layers.AdditiveAttention(4, name="pool")(
        keras.layers.GlobalAveragePooling1D()(outputs), encoded, mask=source_mask
    )
    model = keras.Model([source, source_mask, target], [outputs, weights, summary])
    batch = [_normal(rng, BATCH, SOURCE, 5), SOURCE_MASK, _normal(rng, BATCH, TARGET, 3)]
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("decoder"), layers.AttentionDecoder)
    for before, after in zip(model(batch), loaded(batch)):
        np.testing.assert_array_equal(before, after)


def test_bad_arguments_raise_value_errors_naming_them(rng):
    with pytest.raises(ValueError, match="kind='luong'"):
        layers.attention_layer("luong", units=4)
    with pytest.raises(ValueError, match="units=None"):
        layers.attention_layer("additive")
    with pytest.raises(ValueError, match="units=0"):
        layers.AdditiveAttention(0)
    with pytest.raises(ValueError, match="attention='bahdanau'"):
        layers.AttentionDecoder("lstm", 4, attention="bahdanau")
    with pytest.raises(ValueError, match="cell='transformer'"):
        layers.AttentionDecoder("transformer", 4)
    with pytest.raises(ValueError, match="units=-1"):
        layers.AttentionDecoder("gru", -1)
    with pytest.raises(ValueError, match="dropout=1.5"):
        layers.AttentionDecoder("gru", 4, dropout=1.5)
    with pytest.raises(ValueError, match="input_feeding=True"):
        layers.AttentionDecoder("gru", 4, attention=None, input_feeding=True)
    values = _normal(rng, BATCH, SOURCE, 6)
    with pytest.raises(ValueError, match="query size 5 and key size 6"):
        layers.DotAttention()(_normal(rng, BATCH, 5), values)
    with pytest.raises(ValueError, match="query size 4 and key size 6"):
        layers.AttentionDecoder("gru", 4, attention="dot")(_normal(rng, BATCH, 2, 3), values)
    with pytest.raises(ValueError, match="not built"):
        layers.GeneralAttention().prepare(values)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        layers.DotAttention().prepare(values, mask=np.ones((BATCH,), bool))
    decoder = layers.AttentionDecoder("lstm", 4, attention="additive")
    with pytest.raises(ValueError, match="Received 1 initial state"):
        decoder.initial_step_state([np.zeros((BATCH, 4), "float32")], decoder.prepare(values))
