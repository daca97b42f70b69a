"""The vanilla (Elman) recurrent cell and its sequence layer.

    h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)

with `activation` = tanh by default. Weights use the layout of
`keras.layers.SimpleRNN`, so `set_weights` with a Keras layer's weights
reproduces its outputs.
"""

import keras
from keras import ops

from zoo.layers.base import RecurrentCell, RecurrentSequence, activation_name


@keras.saving.register_keras_serializable(package="zoo")
class SimpleRNNCell(RecurrentCell):
    """One step of the vanilla RNN, `h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)`.

    Args:
        units: Positive integer, size of the hidden state.
        activation: Activation applied to the pre-activation (default `tanh`).
        use_bias: Whether to add the bias `b`.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers
            of `W_xh` (`kernel`), `W_hh` (`recurrent_kernel`) and `b`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Optional
            regularizers of the same three weights.
        kernel_constraint, recurrent_constraint, bias_constraint: Optional
            constraints of the same three weights.
        dropout: Float in [0, 1), dropout rate on the step inputs.
        recurrent_dropout: Float in [0, 1), dropout rate on `h_{t-1}`.
        seed: Seed of the dropout masks.

    Call arguments:
        inputs: Tensor `(batch, features)`, the step input `x_t`.
        states: List holding `h_{t-1}`, shape `(batch, units)`.
        training: Whether dropout is active.

    Example:

    >>> cell = SimpleRNNCell(8)
    >>> h, [h_again] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))])
    """

    gate_count = 1

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)
        self.state_size = self.units
        self.output_size = self.units

    def call(self, inputs, states, training=False):
        self.check_step_input(inputs)
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        x = self.dropped_inputs(inputs, training)
        h_in = self.dropped_state(h_tm1, training)
        pre = ops.matmul(x, self.kernel) + ops.matmul(h_in, self.recurrent_kernel)
        if self.use_bias:
            pre = pre + self.bias
        h = self.activation(pre)
        return h, ([h] if isinstance(states, (list, tuple)) else h)

    def get_config(self):
        config = super().get_config()
        del config["recurrent_activation"]
        return config


@keras.saving.register_keras_serializable(package="zoo")
class SimpleRNN(RecurrentSequence):
    """Vanilla RNN over a sequence; a drop-in for `keras.layers.SimpleRNN`.

    Args:
        units: Positive integer, size of the hidden state.
        activation: Activation of the cell (default `tanh`).
        use_bias, *_initializer, *_regularizer, *_constraint, dropout,
            recurrent_dropout, seed: As in `SimpleRNNCell`.
        activity_regularizer: Regularizer of the layer's output.
        return_sequences: Return the whole output sequence instead of the last
            output.
        return_state: Also return the final state.
        go_backwards: Process the sequence backwards (outputs come in the
            reversed order, as in Keras).
        stateful: Carry the final state of a batch into the next batch;
            `reset_state()` zeroes it.
        unroll: Unroll the loop (short sequences only).
        recurrence_path: `"auto"` (default), `"fused"` or `"loop"`, as
            described in `RecurrentSequence`; the fused path needs an
            activation among tanh, relu, sigmoid, linear here. Like
            `keras.layers.SimpleRNN`, the layer takes no integer
            `implementation` (a legacy string one is read as
            `recurrence_path`).

    Call arguments:
        sequences: Tensor `(batch, timesteps, features)`.
        initial_state: Optional list with one tensor `(batch, units)`.
        mask: Optional boolean tensor `(batch, timesteps)` or
            `(batch, timesteps, 1)`; masked steps keep the previous state.
        training: Whether dropout is active.

    Example:

    >>> layer = SimpleRNN(16, return_sequences=True)
    >>> layer(keras.ops.ones((4, 10, 3))).shape
    (4, 10, 16)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        recurrence_path="auto",
        **kwargs,
    ):
        self._init_from_arguments(SimpleRNNCell, "simple_rnn_cell", locals())

    _cell_class = SimpleRNNCell

    def _fused_cell_blocker(self):
        if activation_name(self.cell.activation) is None:
            return "the activation is not one of tanh, relu, sigmoid, linear"
        return None

    def _fused_math(self, batch_size=None):
        from zoo.layers import fused

        return fused.make_math(
            "simple_rnn",
            self.cell.units,
            activation_name(self.cell.activation),
            batch_size=batch_size,
            input_dim=self.cell.input_dim,
        )

    def _fused_params(self):
        cell = self.cell
        return (
            cell.kernel.value,
            self._weight_value(cell.bias, cell.units),
            cell.recurrent_kernel.value,
        )
