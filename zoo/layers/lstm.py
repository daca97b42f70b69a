"""The long short-term memory cell and its sequence layer.

From the step input `x_t` and the previous state `(h_{t-1}, c_{t-1})`:

    i = σ(x_t W_i + h_{t-1} U_i + b_i)        input gate
    f = σ(x_t W_f + h_{t-1} U_f + b_f)        forget gate
    g = tanh(x_t W_c + h_{t-1} U_c + b_c)     candidate
    o = σ(x_t W_o + h_{t-1} U_o + b_o)        output gate
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

i.e. every gate reads `[h_{t-1}, x_t]`. Weights use the layout of
`keras.layers.LSTM` (gate blocks in the order i, f, c, o), so copying a Keras
layer's weights reproduces its outputs.
"""

import keras
from keras import initializers, ops

from zoo.layers import base
from zoo.layers.base import (
    RecurrentCell,
    RecurrentSequence,
    keras_cell_implementation,
    standard_gates_blocker,
)


class _ForgetGateOnes(initializers.Initializer):
    """Bias initializer: the base initializer everywhere, ones on the forget block."""

    def __init__(self, base, units):
        self.base = base
        self.units = units

    def __call__(self, shape, dtype=None):
        units = self.units
        return ops.concatenate(
            [
                self.base((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                self.base((2 * units,), dtype=dtype),
            ]
        )


@keras.saving.register_keras_serializable(package="zoo")
class LSTMCell(RecurrentCell):
    """One step of the LSTM (forget, input and output gates, candidate, cell).

    Args:
        units: Positive integer, size of `h` and `c`.
        activation: Activation of the candidate and of the cell output
            (default `tanh`).
        recurrent_activation: Activation of the three gates (default sigmoid).
        use_bias: Whether the gates have biases.
        unit_forget_bias: Add 1 to the forget-gate bias at initialization
            (Jozefowicz et al., 2015); the bias initializer becomes zeros.
        kernel_initializer, recurrent_initializer, bias_initializer,
        *_regularizer, *_constraint: As in `keras.layers.LSTMCell`.
        dropout: Float in [0, 1), dropout rate on the step inputs.
        recurrent_dropout: Float in [0, 1), dropout rate on `h_{t-1}` as it
            enters the gates.
        seed: Seed of the dropout masks.
        implementation: Keras's integer setting, accepted and kept as Keras
            keeps it (default 2; 1 whenever `recurrent_dropout` is nonzero).
            It does not change the computation: both values give the same
            equations, with one dropout mask shared by the four gates.

    Call arguments:
        inputs: Tensor `(batch, features)`.
        states: List `[h_{t-1}, c_{t-1}]`, each `(batch, units)`.
        training: Whether dropout is active.

    Example:

    >>> cell = LSTMCell(8)
    >>> h, [h, c] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))] * 2)
    """

    gate_count = 4

    def __init__(self, units, unit_forget_bias=True, implementation=2, **kwargs):
        super().__init__(units, **kwargs)
        self.implementation = keras_cell_implementation(
            type(self).__name__, implementation, self.recurrent_dropout
        )
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def _bias_initializer_for_build(self):
        if self.unit_forget_bias:
            return _ForgetGateOnes(self.bias_initializer, self.units)
        return self.bias_initializer

    def call(self, inputs, states, training=False):
        self.check_step_input(inputs)
        h_tm1, c_tm1 = states[0], states[1]
        x = self.dropped_inputs(inputs, training)
        h_in = self.dropped_state(h_tm1, training)
        pre = ops.matmul(x, self.kernel) + ops.matmul(h_in, self.recurrent_kernel)
        if self.use_bias:
            pre = pre + self.bias
        pre_i, pre_f, pre_c, pre_o = ops.split(pre, 4, axis=-1)
        i = self.recurrent_activation(pre_i)
        f = self.recurrent_activation(pre_f)
        g = self.activation(pre_c)
        o = self.recurrent_activation(pre_o)
        c = f * c_tm1 + i * g
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "unit_forget_bias": self.unit_forget_bias,
            "implementation": self.implementation,
        }


@keras.saving.register_keras_serializable(package="zoo")
class LSTM(RecurrentSequence):
    """LSTM over a sequence; a drop-in for `keras.layers.LSTM`.

    Args:
        units: Positive integer, size of `h` and `c`.
        activation, recurrent_activation, use_bias, unit_forget_bias,
            *_initializer, *_regularizer, *_constraint, dropout,
            recurrent_dropout, seed, implementation: As in `LSTMCell`
            (`implementation` is Keras's integer setting, default 2; a legacy
            string is read as `recurrence_path`, see `RecurrentSequence`).
        activity_regularizer: Regularizer of the layer's output.
        return_sequences: Return the whole output sequence.
        return_state: Also return the final `h` and `c`.
        go_backwards: Process the sequence backwards (outputs reversed, as in
            Keras).
        stateful: Carry the final states into the next batch.
        unroll: Unroll the loop (short sequences only).
        use_cudnn: `"auto"` (default) or `True`: on a GPU, train through
            Keras's cuDNN kernel (no mask, `use_bias=True`); inference stays
            on the fused path, so a model exported on a GPU runs on a CPU.
            `False`: never.
        recurrence_path: `"auto"` (default), `"fused"` or `"loop"`, as
            described in `RecurrentSequence`; the fused path needs tanh and
            sigmoid activations here.

    Call arguments:
        sequences: Tensor `(batch, timesteps, features)`.
        initial_state: Optional list `[h_0, c_0]`, each `(batch, units)`.
        mask: Optional boolean tensor `(batch, timesteps)` or
            `(batch, timesteps, 1)`.
        training: Whether dropout is active.

    Example:

    >>> layer = LSTM(16, return_state=True)
    >>> out, h, c = layer(keras.ops.ones((4, 10, 3)))
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        recurrence_path="auto",
        implementation=None,
        **kwargs,
    ):
        self._init_from_arguments(LSTMCell, "lstm_cell", locals())

    _cell_class = LSTMCell
    _keras_takes_implementation = True

    def _fused_cell_blocker(self):
        return standard_gates_blocker(self.cell)

    def _fused_math(self, batch_size=None):
        from zoo.layers import fused

        return fused.make_math("lstm", self.cell.units)

    def _fused_params(self):
        cell = self.cell
        return (
            cell.kernel.value,
            self._weight_value(cell.bias, 4 * cell.units),
            cell.recurrent_kernel.value,
        )

    def _call_cudnn(self, sequences, initial_state):
        # Same equations and weight layout as Keras's LSTM.
        cell = self.cell
        if cell.bias is None:
            raise NotImplementedError
        return base.cudnn_backend.lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            None,
            kernel=cell.kernel.value,
            recurrent_kernel=cell.recurrent_kernel.value,
            bias=cell.bias.value,
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=False,
        )

    @property
    def unit_forget_bias(self):
        return self.cell.unit_forget_bias

    @property
    def implementation(self):
        """Keras's `implementation` setting, as the cell keeps it."""
        return self.cell.implementation
