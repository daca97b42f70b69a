"""zoo.layers against the NumPy oracle (forward and BPTT) and against Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import convert, layers
from layer_cases import CELLS, make_layer, random_mask, reference_backward, reference_forward

SHAPES = [  # (batch, timesteps, input_dim, units)
    (2, 5, 3, 4),
    (3, 1, 2, 6),
    (4, 12, 5, 8),
]


def _prepare(name, shape, rng, go_backwards, masked, with_initial_state):
    batch, timesteps, input_dim, units = shape
    layer = make_layer(name, units, input_dim, rng, go_backwards=go_backwards)
    x = rng.normal(size=(batch, timesteps, input_dim)).astype("float32")
    n_states = CELLS[name][2]
    if with_initial_state:
        states = [rng.normal(size=(batch, units)).astype("float32") for _ in range(n_states)]
    else:
        states = [np.zeros((batch, units), "float32") for _ in range(n_states)]
    mask = random_mask(rng, batch, timesteps) if masked else None
    return layer, x, states, mask


def _oracle(name, layer, x, states, mask, go_backwards):
    x_ref = x[:, ::-1] if go_backwards else x
    mask_ref = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    return reference_forward(name, layer, x_ref, states, mask_ref)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "go_backwards,masked,with_initial_state",
    [(False, False, False), (True, False, True), (False, True, True), (True, True, False)],
)
def test_forward_matches_reference(name, shape, go_backwards, masked, with_initial_state, rng):
    layer, x, states, mask = _prepare(name, shape, rng, go_backwards, masked, with_initial_state)
    outputs = layer(
        x,
        initial_state=states if with_initial_state else None,
        mask=None if mask is None else tf.constant(mask),
    )
    expected_seq, expected_states, _ = _oracle(name, layer, x, states, mask, go_backwards)
    np.testing.assert_allclose(outputs[0], expected_seq, atol=1e-5)
    for got, want in zip(outputs[1:], expected_states):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("shape", SHAPES[:1] + SHAPES[2:])
@pytest.mark.parametrize("go_backwards,masked", [(False, False), (True, True), (False, True)])
def test_gradients_match_reference_bptt(name, shape, go_backwards, masked, rng):
    layer, x, states, mask = _prepare(name, shape, rng, go_backwards, masked, True)
    n_states = len(states)
    d_seq = rng.normal(size=(shape[0], shape[1], shape[3]))
    if mask is not None:
        # Keras emits zeros (not h0) at masked steps before the first real one;
        # outputs at masked steps are a convention, so only real steps carry loss.
        processed = mask[:, ::-1] if go_backwards else mask
        d_seq = d_seq * processed[:, :, None]
    d_states = [rng.normal(size=(shape[0], shape[3])) for _ in range(n_states)]

    x_t = tf.constant(x)
    state_t = [tf.constant(s) for s in states]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x_t] + state_t)
        outputs = layer(x_t, initial_state=state_t, mask=None if mask is None else tf.constant(mask))
        loss = tf.reduce_sum(outputs[0] * d_seq.astype("float32"))
        for out, d in zip(outputs[1:], d_states):
            loss += tf.reduce_sum(out * d.astype("float32"))
    weights = layer.trainable_weights
    grads = tape.gradient(loss, [x_t] + state_t + weights)

    _, _, cache = _oracle(name, layer, x, states, mask, go_backwards)
    expected, state_keys = reference_backward(name, d_seq, d_states, cache)
    expected_x = expected["x"][:, ::-1] if go_backwards else expected["x"]
    np.testing.assert_allclose(grads[0], expected_x, atol=1e-4, rtol=1e-4)
    for got, key in zip(grads[1 : 1 + n_states], state_keys):
        np.testing.assert_allclose(got, expected[key], atol=1e-4, rtol=1e-4)
    by_name = {w.path.split("/")[-1]: g for w, g in zip(weights, grads[1 + n_states :])}
    for key in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(by_name[key], expected[key], atol=1e-4, rtol=1e-4)


# -- against Keras's own layers -------------------------------------------

KERAS_CASES = {
    "rnn": (keras.layers.SimpleRNN, {}),
    "lstm": (keras.layers.LSTM, {}),
    "gru": (keras.layers.GRU, {"reset_after": False}),
    "gru_reset_after": (keras.layers.GRU, {"reset_after": True}),
}


def _randomized_keras_layer(name, units, input_dim, rng, **kwargs):
    cls, extra = KERAS_CASES[name]
    layer = cls(units, return_sequences=True, return_state=True, **extra, **kwargs)
    layer.build((None, None, input_dim))
    layer.set_weights(
        [rng.normal(0, 0.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer


@pytest.mark.parametrize("name", list(KERAS_CASES))
@pytest.mark.parametrize("go_backwards,masked", [(False, False), (True, False), (False, True)])
def test_matches_keras_with_converted_weights(name, go_backwards, masked, rng):
    keras_layer = _randomized_keras_layer(name, 6, 3, rng, go_backwards=go_backwards)
    ours = convert.from_keras(keras_layer)
    assert type(ours).__name__ == type(keras_layer).__name__
    assert ours.__class__.__module__.startswith("zoo.layers")
    x = rng.normal(size=(4, 9, 3)).astype("float32")
    mask = tf.constant(random_mask(rng, 4, 9)) if masked else None
    want = keras_layer(x, mask=mask)
    got = ours(x, mask=mask)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5)
    back = convert.to_keras(ours)
    assert type(back) is type(keras_layer)
    for a, b in zip(back(x, mask=mask), want):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(back.get_weights(), keras_layer.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_same_weights_same_outputs_without_conversion(name, rng):
    """SimpleRNN and LSTM share Keras's equations, so set_weights alone reproduces Keras.
    The GRU does not (opposite z convention): a plain copy must differ."""
    keras_layer = _randomized_keras_layer(name, 5, 3, rng)
    cls, extra, _ = CELLS[name]
    ours = cls(5, return_sequences=True, **extra)
    ours.build((None, None, 3))
    ours.set_weights(keras_layer.get_weights())
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    close = np.allclose(ours(x), keras_layer(x)[0], atol=1e-5)
    assert close == (name != "gru")


def test_bidirectional_converts(rng):
    keras_bi = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    want = keras_bi(x)
    ours = convert.from_keras(keras_bi)
    assert isinstance(ours.forward_layer, layers.LSTM)
    np.testing.assert_allclose(ours(x), want, atol=1e-5)


def test_gru_conversion_rejects_asymmetric_gate(rng):
    layer = keras.layers.GRU(3, recurrent_activation="relu")
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match="recurrent_activation"):
        convert.from_keras(layer)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 2)])
def test_from_torch_matches_torch(kind, bidirectional, num_layers, rng):
    import torch

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(
        input_size=3, hidden_size=5, num_layers=num_layers, batch_first=True,
        bidirectional=bidirectional,
    )
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0].numpy()
    ours = convert.from_torch(module)
    np.testing.assert_allclose(np.asarray(ours(x)), want, atol=1e-5)


# -- behaviour of the sequence layers ---------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_stateful_continues_across_batches_and_resets(name, rng):
    cls, extra, _ = CELLS[name]
    stateful = cls(4, stateful=True, return_sequences=True, **extra)
    stateless = cls(4, return_sequences=True, **extra)
    x = rng.normal(size=(3, 8, 2)).astype("float32")
    stateful.build((3, 8, 2))
    stateless.build((3, 8, 2))
    stateless.set_weights(stateful.get_weights())
    whole = stateless(x)
    first = stateful(x[:, :4])
    second = stateful(x[:, 4:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(x[:, :4]), whole[:, :4], atol=1e-5)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("rates", [(0.5, 0.0), (0.0, 0.5)])
def test_dropout_only_when_training(name, rates, rng):
    cls, extra, _ = CELLS[name]
    plain = cls(6, return_sequences=True, **extra)
    dropped = cls(6, return_sequences=True, dropout=rates[0], recurrent_dropout=rates[1],
                  seed=3, **extra)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    plain.build(x.shape)
    dropped.build(x.shape)
    dropped.set_weights(plain.get_weights())
    reference_out = plain(x)
    np.testing.assert_allclose(dropped(x, training=False), reference_out, atol=1e-6)
    assert not np.allclose(dropped(x, training=True), reference_out, atol=1e-3)


def test_masking_layer_feeds_mask(rng):
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    x[1, 3:] = 0.0
    inputs = keras.Input((None, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    model = keras.Model(inputs, layers.LSTM(4)(masked))
    full = model(x)
    truncated = model(x[1:2, :3])
    np.testing.assert_allclose(full[1:2], truncated, atol=1e-5)


# -- clipping ------------------------------------------------------------------


def test_gradient_clipping_tames_exploding_bptt(rng):
    """A long linear RNN with a recurrent gain > 1 explodes; global_clipnorm bounds the step."""
    timesteps, units = 200, 16

    def build():
        layer = layers.SimpleRNN(
            units, activation="linear",
            recurrent_initializer=keras.initializers.Identity(gain=1.03),
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=1),
        )
        model = keras.Sequential([keras.Input((timesteps, 4)), layer, keras.layers.Dense(1)])
        return model

    x = np.abs(rng.normal(size=(8, timesteps, 4))).astype("float32")
    y = np.ones((8, 1), "float32")

    def step_size(optimizer):
        model = build()
        before = [w.numpy().copy() for w in model.trainable_weights]
        with tf.GradientTape() as tape:
            loss = keras.losses.mean_squared_error(y, model(x))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
        raw = float(tf.linalg.global_norm(grads))
        moved = np.sqrt(sum(np.sum((w.numpy() - b) ** 2)
                            for w, b in zip(model.trainable_weights, before)))
        return raw, moved

    raw, unclipped_step = step_size(keras.optimizers.SGD(0.01))
    assert np.isfinite(raw) and raw > 1e9  # the gradient really explodes
    assert unclipped_step > 1e6
    raw, clipped_step = step_size(keras.optimizers.SGD(0.01, global_clipnorm=1.0))
    assert clipped_step <= 0.01 * 1.0 + 1e-6
    assert np.isfinite(clipped_step) and clipped_step > 0
