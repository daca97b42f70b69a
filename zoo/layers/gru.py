"""The gated recurrent unit, written the way our documents write it.

    z  = σ(x_t W_z + h_{t-1} U_z + b_z)              update gate
    r  = σ(x_t W_r + h_{t-1} U_r + b_r)              reset gate
    h~ = tanh(x_t W_h + (r * h_{t-1}) U_h + b_h)     candidate
    h_t = (1 - z) * h_{t-1} + z * h~

`z` is the share of the *new* candidate in the next state, and the reset gate
acts on `h_{t-1}` before the recurrent matrix product. With
`reset_after=True` the reset gate acts after it, the placement cuDNN and
PyTorch use:

    h~ = tanh(x_t W_h + b_h^x + r * (h_{t-1} U_h + b_h^h))

still with the update convention above. Keras and PyTorch use the opposite
update convention (`h_t = z * h_{t-1} + (1 - z) * h~`); `zoo.convert` turns
their weights into ours exactly by negating the update-gate block, since
σ(-a) = 1 - σ(a).

Weights use Keras's layout: blocks z, r, h; `bias` has shape `(3 * units,)`,
or `(2, 3 * units)` (input bias row, recurrent bias row) when
`reset_after=True`.
"""

import keras
from keras import ops

from zoo.layers import base
from zoo.layers.base import (
    RecurrentCell,
    RecurrentSequence,
    keras_cell_implementation,
    standard_gates_blocker,
)


@keras.saving.register_keras_serializable(package="zoo")
class GRUCell(RecurrentCell):
    """One step of the GRU with the update `h_t = (1-z)*h_{t-1} + z*h~`.

    Args:
        units: Positive integer, size of the hidden state.
        activation: Activation of the candidate (default `tanh`).
        recurrent_activation: Activation of the update and reset gates
            (default sigmoid).
        use_bias: Whether to use biases.
        reset_after: `False` (default, as documented): `r` multiplies
            `h_{t-1}` before the recurrent product. `True`: `r` multiplies the
            recurrent product (cuDNN/PyTorch placement), with separate input
            and recurrent biases.
        kernel_initializer, recurrent_initializer, bias_initializer,
        *_regularizer, *_constraint, dropout, recurrent_dropout, seed: As in
            `keras.layers.GRUCell`.
        implementation: Keras's integer setting, accepted and kept as Keras
            keeps it (default 2; 1 whenever `recurrent_dropout` is nonzero).
            It does not change the computation: both values give the same
            equations, with one dropout mask shared by the three gates.

    Call arguments:
        inputs: Tensor `(batch, features)`.
        states: List holding `h_{t-1}`, shape `(batch, units)`.
        training: Whether dropout is active.

    Example:

    >>> cell = GRUCell(8)
    >>> h, [h] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))])
    """

    gate_count = 3

    def __init__(self, units, reset_after=False, implementation=2, **kwargs):
        super().__init__(units, **kwargs)
        self.implementation = keras_cell_implementation(
            type(self).__name__, implementation, self.recurrent_dropout
        )
        self.reset_after = bool(reset_after)
        self.state_size = self.units
        self.output_size = self.units

    def _bias_shape(self):
        if self.reset_after:
            return (2, 3 * self.units)
        return (3 * self.units,)

    def call(self, inputs, states, training=False):
        self.check_step_input(inputs)
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        units = self.units
        x = self.dropped_inputs(inputs, training)
        h_in = self.dropped_state(h_tm1, training)

        x_proj = ops.matmul(x, self.kernel)
        if self.use_bias:
            input_bias = self.bias[0] if self.reset_after else self.bias
            x_proj = x_proj + input_bias
        x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)

        if self.reset_after:
            h_proj = ops.matmul(h_in, self.recurrent_kernel)
            if self.use_bias:
                h_proj = h_proj + self.bias[1]
            h_z, h_r, h_h = ops.split(h_proj, 3, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + r * h_h)
        else:
            h_zr = ops.matmul(h_in, self.recurrent_kernel[:, : 2 * units])
            h_z, h_r = ops.split(h_zr, 2, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            recurrent_h = ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * units :])
            candidate = self.activation(x_h + recurrent_h)

        h = h_tm1 + z * (candidate - h_tm1)
        return h, ([h] if nested else h)

    def get_config(self):
        return {
            **super().get_config(),
            "reset_after": self.reset_after,
            "implementation": self.implementation,
        }


@keras.saving.register_keras_serializable(package="zoo")
class GRU(RecurrentSequence):
    """GRU over a sequence; a drop-in for `keras.layers.GRU`.

    Same arguments and defaults as `keras.layers.GRU`, except `reset_after`
    (default `False`, as our documents write the GRU) and the update-gate
    convention `h_t = (1-z)*h_{t-1} + z*h~` (see the module docstring).

    Args:
        units: Positive integer, size of the hidden state.
        activation, recurrent_activation, use_bias, *_initializer,
            *_regularizer, *_constraint, dropout, recurrent_dropout, seed,
            reset_after, implementation: As in `GRUCell` (`implementation` is
            Keras's integer setting, default 2; a legacy string is read as
            `recurrence_path`, see `RecurrentSequence`).
        activity_regularizer: Regularizer of the layer's output.
        return_sequences, return_state, go_backwards, stateful, unroll: As in
            `keras.layers.RNN`.
        use_cudnn: `"auto"` (default) or `True`: on a GPU, train through
            Keras's cuDNN kernel when the equations match (`reset_after=True`,
            `use_bias=True`, no mask; weights converted to Keras's update
            convention on the fly); inference stays on the fused path, so a
            model exported on a GPU runs on a CPU. `False`: never.
        recurrence_path: `"auto"` (default), `"fused"` or `"loop"`, as
            described in `RecurrentSequence`; the fused path needs tanh and
            sigmoid activations here.

    Call arguments:
        sequences: Tensor `(batch, timesteps, features)`.
        initial_state: Optional list with one tensor `(batch, units)`.
        mask: Optional boolean tensor `(batch, timesteps)` or
            `(batch, timesteps, 1)`.
        training: Whether dropout is active.

    Example:

    >>> layer = GRU(16, return_sequences=True)
    >>> layer(keras.ops.ones((4, 10, 3))).shape
    (4, 10, 16)
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
        reset_after=False,
        use_cudnn="auto",
        recurrence_path="auto",
        implementation=None,
        **kwargs,
    ):
        self._init_from_arguments(GRUCell, "gru_cell", locals())

    _cell_class = GRUCell
    _keras_takes_implementation = True

    def _fused_cell_blocker(self):
        return standard_gates_blocker(self.cell)

    def _fused_math(self, batch_size=None):
        from zoo.layers import fused

        return fused.make_math("gru", self.cell.units, reset_after=self.reset_after)

    def _fused_params(self):
        cell = self.cell
        width = 3 * cell.units
        if not cell.reset_after:
            return (
                cell.kernel.value,
                self._weight_value(cell.bias, width),
                cell.recurrent_kernel.value,
            )
        bias = cell.bias.value if cell.bias is not None else None
        zeros = ops.zeros((width,), dtype="float32")
        return (
            cell.kernel.value,
            zeros if bias is None else bias[0],
            cell.recurrent_kernel.value,
            zeros if bias is None else bias[1],
        )

    def keras_convention_weights(self):
        """Kernel, recurrent kernel and bias in Keras's update convention.

        Keras (and cuDNN) weight the old state by `z`; we weight the new
        candidate. With a sigmoid gate, negating the z block of every weight
        maps one onto the other exactly (σ(-a) = 1 - σ(a)). The results are
        differentiable functions of the layer's variables.
        """
        cell = self.cell
        units = cell.units
        sign = ops.concatenate(
            [-ops.ones((units,), "float32"), ops.ones((2 * units,), "float32")]
        )
        bias = None if cell.bias is None else cell.bias.value * ops.cast(sign, cell.bias.dtype)
        return (
            cell.kernel.value * ops.cast(sign, cell.kernel.dtype),
            cell.recurrent_kernel.value * ops.cast(sign, cell.recurrent_kernel.dtype),
            bias,
        )

    def _call_cudnn(self, sequences, initial_state):
        cell = self.cell
        if not cell.reset_after or cell.bias is None:
            raise NotImplementedError
        kernel, recurrent_kernel, bias = self.keras_convention_weights()
        return base.cudnn_backend.gru(
            sequences,
            initial_state[0],
            None,
            kernel=kernel,
            recurrent_kernel=recurrent_kernel,
            bias=bias,
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=False,
            reset_after=True,
        )

    @property
    def reset_after(self):
        return self.cell.reset_after

    @property
    def implementation(self):
        """Keras's `implementation` setting, as the cell keeps it."""
        return self.cell.implementation
