"""Exact weight conversion between zoo layers, Keras layers and PyTorch modules.

- SimpleRNN and LSTM share Keras's layout: weights copy as they are.
- GRU: Keras and PyTorch write `h_t = z*h_{t-1} + (1-z)*h~`; we write
  `h_t = (1-z)*h_{t-1} + z*h~`. With a sigmoid-like gate that is symmetric
  (σ(-a) = 1 - σ(a)), negating the update-gate block of the kernel, the
  recurrent kernel and the bias turns one convention into the other with no
  rounding at all.
- PyTorch stores `weight_ih` as `(gates*units, input)` in its own gate order
  (LSTM i, f, g, o; GRU r, z, n) and two biases; they are transposed,
  reordered and (LSTM, SimpleRNN) summed into Keras's single bias.

Example:

>>> keras_gru = keras.layers.GRU(8)           # reset_after=True in Keras
>>> keras_gru.build((None, None, 3))
>>> ours = from_keras(keras_gru)              # zoo.layers.GRU(reset_after=True)
>>> back = to_keras(ours)                     # same outputs as keras_gru
"""

from zoo import _backend  # noqa: F401

import keras
import numpy as np

from zoo import layers as zoo_layers

_SYMMETRIC_GATES = ("sigmoid", "hard_sigmoid")

_PAIRS = (
    (keras.layers.SimpleRNN, zoo_layers.SimpleRNN),
    (keras.layers.LSTM, zoo_layers.LSTM),
    (keras.layers.GRU, zoo_layers.GRU),
)


def _negate_update_gate(kernel, recurrent_kernel, bias, units):
    """Flip the GRU update convention: negate the z block (the first `units` columns)."""
    kernel = np.array(kernel, copy=True)
    recurrent_kernel = np.array(recurrent_kernel, copy=True)
    kernel[:, :units] *= -1
    recurrent_kernel[:, :units] *= -1
    weights = [kernel, recurrent_kernel]
    if bias is not None:
        bias = np.array(bias, copy=True)
        bias[..., :units] *= -1
        weights.append(bias)
    return weights


def _check_gru_convertible(layer):
    name = keras.activations.serialize(layer.recurrent_activation)
    name = name if isinstance(name, str) else str(name)
    if name not in _SYMMETRIC_GATES:
        raise ValueError(
            f"Cannot convert GRU '{layer.name}' exactly: the update-gate flip needs a "
            f"recurrent_activation with f(-a) = 1 - f(a) ({', '.join(_SYMMETRIC_GATES)}). "
            f"Received recurrent_activation={name!r}"
        )


def _require_built(layer):
    if not layer.built:
        raise ValueError(
            f"Layer '{layer.name}' is not built: call it on data or call "
            f"`layer.build((None, None, input_dim))` before converting its weights."
        )


def _bidirectional(forward, backward, merge_mode, name=None):
    """Wrap two built layers; Keras re-creates the forward one, so copy its weights back."""
    wrapper = keras.layers.Bidirectional(
        forward, backward_layer=backward, merge_mode=merge_mode, name=name
    )
    wrapper.build((None, None, int(forward.cell.kernel.shape[0])))
    wrapper.forward_layer.set_weights(forward.get_weights())
    return wrapper


def _translate(layer, source_classes, target_for):
    if isinstance(layer, keras.layers.Bidirectional):
        forward = _translate(layer.forward_layer, source_classes, target_for)
        backward = _translate(layer.backward_layer, source_classes, target_for)
        return _bidirectional(forward, backward, layer.merge_mode, name=layer.name)
    source = next((s for s in source_classes if type(layer) is s), None)
    if source is None:
        raise ValueError(
            f"Cannot convert {type(layer).__name__} '{getattr(layer, 'name', '?')}': "
            f"expected one of {[c.__name__ for c in source_classes]} "
            f"(or a Bidirectional wrapper of one)."
        )
    _require_built(layer)
    target_class = target_for[source]
    config = layer.get_config()
    if target_class is keras.layers.SimpleRNN:
        config.pop("recurrent_activation", None)
    if not issubclass(target_class, zoo_layers.base.RecurrentSequence):
        config.pop("recurrence_path", None)  # the zoo's choice of fast path
    if target_class in (keras.layers.LSTM, keras.layers.GRU, zoo_layers.LSTM, zoo_layers.GRU):
        # Keras keeps `implementation` on the cell and leaves it out of its config.
        config["implementation"] = layer.cell.implementation
    target = target_class.from_config(config)
    input_dim = int(layer.cell.kernel.shape[0])
    target.build((None, None, input_dim))
    weights = layer.get_weights()
    if isinstance(layer, (keras.layers.GRU, zoo_layers.GRU)):
        _check_gru_convertible(layer)
        bias = weights[2] if len(weights) > 2 else None
        weights = _negate_update_gate(weights[0], weights[1], bias, layer.units)
    target.set_weights(weights)
    return target


def from_keras(layer):
    """A zoo layer computing exactly what the Keras RNN layer `layer` computes.

    Args:
        layer: A built `keras.layers.SimpleRNN`, `LSTM` or `GRU`, or a
            `keras.layers.Bidirectional` wrapping one.

    Returns:
        The matching `zoo.layers` layer (same configuration, converted
        weights). A Keras GRU becomes a zoo GRU with the same `reset_after`.
    """
    return _translate(layer, [k for k, _ in _PAIRS], {k: z for k, z in _PAIRS})


def to_keras(layer):
    """The Keras RNN layer computing exactly what the zoo layer `layer` computes."""
    return _translate(layer, [z for _, z in _PAIRS], {z: k for k, z in _PAIRS})


# -- PyTorch ---------------------------------------------------------------

# Column blocks of PyTorch's stacked gate weights, in the order Keras wants.
_TORCH_GATE_ORDER = {"RNN": [0], "LSTM": [0, 1, 2, 3], "GRU": [1, 0, 2]}


def _torch_blocks(array, order, units):
    return np.concatenate([array[g * units : (g + 1) * units] for g in order], axis=0)


def from_torch(module):
    """Zoo layers computing exactly what a `torch.nn.RNN/LSTM/GRU` computes.

    PyTorch's GRU is the `reset_after=True` placement. Inputs to the returned
    layers are batch-major `(batch, time, features)` whatever the module's
    `batch_first`. `proj_size` and `dropout` between layers are not supported.

    Returns:
        A zoo layer for a one-layer module (wrapped in
        `keras.layers.Bidirectional(merge_mode="concat")` when the module is
        bidirectional), or a `keras.Sequential` of such layers, all returning
        sequences, for a multi-layer module.
    """
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "zoo.convert.from_torch needs PyTorch: pip install 'zoo[torch]'"
        ) from error
    kind = type(module).__name__
    if kind not in _TORCH_GATE_ORDER or not isinstance(module, torch.nn.RNNBase):
        raise ValueError(
            f"from_torch: expected a torch.nn.RNN, LSTM or GRU module, received {kind}"
        )
    if getattr(module, "proj_size", 0):
        raise ValueError(f"from_torch: LSTM proj_size={module.proj_size} is not supported")
    units = module.hidden_size
    stack = []
    for layer_index in range(module.num_layers):
        directions = []
        for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
            tag = f"l{layer_index}{suffix}"
            get = lambda name: getattr(module, f"{name}_{tag}").detach().cpu().numpy()
            order = _TORCH_GATE_ORDER[kind]
            kernel = _torch_blocks(get("weight_ih"), order, units).T
            recurrent = _torch_blocks(get("weight_hh"), order, units).T
            bias = None
            if module.bias:
                b_ih = _torch_blocks(get("bias_ih"), order, units)
                b_hh = _torch_blocks(get("bias_hh"), order, units)
                bias = np.stack([b_ih, b_hh]) if kind == "GRU" else b_ih + b_hh
            common = dict(units=units, use_bias=module.bias, return_sequences=True)
            if kind == "RNN":
                layer = zoo_layers.SimpleRNN(activation=module.nonlinearity, **common)
            elif kind == "LSTM":
                layer = zoo_layers.LSTM(unit_forget_bias=False, **common)
            else:
                layer = zoo_layers.GRU(reset_after=True, **common)
                kernel, recurrent, *rest = _negate_update_gate(kernel, recurrent, bias, units)
                bias = rest[0] if rest else None
            if suffix:
                layer = type(layer).from_config({**layer.get_config(), "go_backwards": True})
            layer.build((None, None, kernel.shape[0]))
            layer.set_weights([kernel, recurrent] + ([bias] if bias is not None else []))
            directions.append(layer)
        if module.bidirectional:
            stack.append(_bidirectional(directions[0], directions[1], "concat"))
        else:
            stack.append(directions[0])
    if len(stack) == 1:
        return stack[0]
    return keras.Sequential(stack)
