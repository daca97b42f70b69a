"""Shared cases for the layer tests: zoo layer ↔ NumPy reference adapters."""

import numpy as np

from zoo import layers, reference

# name -> (layer class, extra constructor kwargs, number of states)
CELLS = {
    "rnn": (layers.SimpleRNN, {}, 1),
    "lstm": (layers.LSTM, {}, 2),
    "gru": (layers.GRU, {"reset_after": False}, 1),
    "gru_reset_after": (layers.GRU, {"reset_after": True}, 1),
}


def make_layer(name, units, input_dim, rng, **kwargs):
    """A built zoo layer with random (non-trivial) weights, biases included."""
    cls, extra, _ = CELLS[name]
    layer = cls(units, return_sequences=True, return_state=True, **extra, **kwargs)
    layer.build((None, None, input_dim))
    layer.set_weights(
        [rng.normal(0.0, 0.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer


def reference_forward(name, layer, x, initial_states, mask):
    """Run the NumPy oracle with the layer's weights; returns (outputs, [final states], cache)."""
    weights = layer.get_weights()
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    if name == "rnn":
        out, h, cache = reference.simple_rnn_forward(
            x, initial_states[0], kernel, recurrent, bias, mask=mask
        )
        return out, [h], cache
    if name == "lstm":
        out, (h, c), cache = reference.lstm_forward(
            x, initial_states[0], initial_states[1], kernel, recurrent, bias, mask=mask
        )
        return out, [h, c], cache
    out, h, cache = reference.gru_forward(
        x,
        initial_states[0],
        kernel,
        recurrent,
        bias,
        reset_after=(name == "gru_reset_after"),
        mask=mask,
    )
    return out, [h], cache


def reference_backward(name, d_outputs, d_states, cache):
    if name == "rnn":
        grads = reference.simple_rnn_backward(d_outputs, d_states[0], cache)
        return grads, ["h0"]
    if name == "lstm":
        grads = reference.lstm_backward(d_outputs, tuple(d_states), cache)
        return grads, ["h0", "c0"]
    grads = reference.gru_backward(d_outputs, d_states[0], cache)
    return grads, ["h0"]


def random_mask(rng, batch, timesteps):
    """A mask with padding at the end of some rows and a hole in the middle; step 0 is kept."""
    mask = np.ones((batch, timesteps), dtype=bool)
    for row in range(batch):
        keep = int(rng.integers(1, timesteps + 1))
        mask[row, keep:] = False
    if timesteps >= 3:
        mask[0, timesteps // 2] = False
    return mask
