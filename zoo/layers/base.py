"""Shared machinery for the zoo recurrent cells and sequence layers.

A cell computes one time step; a sequence layer (a `keras.layers.RNN`
subclass) owns the loop over time, masking, statefulness and the choice of
recurrence path (fused fast path, cuDNN, or the generic loop). The helpers
here hold what the three cell families share: argument validation, the common
constructor arguments, and the checks that turn bad input into a `ValueError`
at the API boundary instead of a crash deep inside TensorFlow.

Two arguments are easy to confuse:

* `recurrence_path` (`"auto"`, `"fused"`, `"loop"`) is the zoo's choice of
  how the sequence is run;
* `implementation` (LSTM and GRU only) is Keras's argument of the same name,
  accepted and kept for compatibility exactly as Keras 3 keeps it (default
  2, set to 1 by a nonzero `recurrent_dropout`). It does not change what the
  zoo layers compute.

Configurations saved before `recurrence_path` existed carry the path choice
as `implementation="auto"|"fused"|"loop"`; those strings are still read, as
`recurrence_path`, with a `DeprecationWarning`.
"""

from zoo import _backend  # noqa: F401  (sets the Keras backend before import)

import numbers
import sys
import warnings

import keras
from keras import activations, constraints, initializers, ops, regularizers

RECURRENCE_PATHS = ("auto", "fused", "loop")
# Keras's default `implementation` of its LSTM and GRU cells.
KERAS_DEFAULT_IMPLEMENTATION = 2

try:  # The marker Keras's RNN layer uses to prepare per-sequence dropout masks.
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
except ImportError:  # pragma: no cover - layout of a future Keras
    DropoutRNNCell = object

try:  # Keras's cuDNN entry points (`lstm`, `gru`); they raise NotImplementedError off GPU.
    from keras.src import backend as cudnn_backend
except ImportError:  # pragma: no cover - layout of a future Keras
    cudnn_backend = None


def validate_units(owner, units):
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(
            f"{owner}: `units` must be a positive integer. Received: units={units!r}"
        )
    return units


def validate_rate(owner, name, value):
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = None
    if rate is None or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"{owner}: `{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return rate


def validate_use_cudnn(owner, use_cudnn):
    if use_cudnn not in ("auto", True, False):
        raise ValueError(
            f"{owner}: `use_cudnn` must be 'auto', True or False. "
            f"Received: use_cudnn={use_cudnn!r}"
        )
    return use_cudnn


def standard_gates_blocker(cell):
    """Why a gated cell (LSTM, GRU) cannot take the fused path, or None: it needs tanh/sigmoid."""
    if activation_name(cell.activation) != "tanh":
        return "activation is not tanh"
    if activation_name(cell.recurrent_activation) != "sigmoid":
        return "recurrent_activation is not sigmoid"
    return None


def validate_recurrence_path(owner, recurrence_path):
    if not isinstance(recurrence_path, str) or recurrence_path not in RECURRENCE_PATHS:
        raise ValueError(
            f"{owner}: `recurrence_path` must be one of "
            f"{', '.join(repr(v) for v in RECURRENCE_PATHS)}. "
            f"Received: recurrence_path={recurrence_path!r}"
        )
    return recurrence_path


def validate_keras_implementation(owner, implementation):
    """Keras's `implementation` of an LSTM or GRU: any integer (its own tests pass the legacy 0)."""
    if isinstance(implementation, bool) or not isinstance(implementation, numbers.Integral):
        raise ValueError(
            f"{owner}: `implementation` is Keras's integer setting (1 or 2, kept for "
            f"compatibility); the zoo's choice of fast path is `recurrence_path`, one of "
            f"{', '.join(repr(v) for v in RECURRENCE_PATHS)}. "
            f"Received: implementation={implementation!r}"
        )
    return int(implementation)


def keras_cell_implementation(owner, implementation, recurrent_dropout):
    """The value a Keras LSTM/GRU cell keeps for `implementation`.

    Keras keeps 1 whenever `recurrent_dropout` (the validated rate) is
    nonzero, the given integer otherwise; so do we.
    """
    implementation = validate_keras_implementation(owner, implementation)
    return 1 if recurrent_dropout != 0.0 else implementation


def resolve_recurrence_arguments(owner, implementation, recurrence_path, keras_takes_implementation):
    """Split `implementation` into Keras's setting and the zoo's recurrence path.

    Args:
        owner: Class name for error messages.
        implementation: What the caller passed as `implementation`: Keras's
            integer, a path string of a configuration saved before
            `recurrence_path` existed, or None (not given).
        recurrence_path: What the caller passed as `recurrence_path`.
        keras_takes_implementation: Whether the Keras counterpart has an
            `implementation` argument (LSTM, GRU; not SimpleRNN).

    Returns:
        `(implementation, recurrence_path)`: the integer to keep (the Keras
        default where none was given; None for SimpleRNN) and the validated
        path.
    """
    if isinstance(implementation, str):
        if implementation not in RECURRENCE_PATHS:
            raise ValueError(
                f"{owner}: `implementation` is Keras's integer setting; the zoo's choice of "
                f"fast path is `recurrence_path`, one of "
                f"{', '.join(repr(v) for v in RECURRENCE_PATHS)}. "
                f"Received: implementation={implementation!r}"
            )
        if recurrence_path not in ("auto", implementation):
            raise ValueError(
                f"{owner}: `implementation={implementation!r}` (the previous name of "
                f"`recurrence_path`) contradicts `recurrence_path={recurrence_path!r}`; "
                f"pass `recurrence_path` alone. Received: implementation={implementation!r}, "
                f"recurrence_path={recurrence_path!r}"
            )
        warnings.warn(
            f"{owner}: implementation={implementation!r} is read as "
            f"recurrence_path={implementation!r}, its new name (saving the model again "
            f"updates its config).",
            DeprecationWarning,
            stacklevel=4,
        )
        recurrence_path = implementation
        implementation = None
    if not keras_takes_implementation and implementation is not None:
        raise ValueError(
            f"{owner}: takes no integer `implementation` (neither does its Keras "
            f"counterpart); the zoo's choice of fast path is `recurrence_path`. "
            f"Received: implementation={implementation!r}"
        )
    if keras_takes_implementation:
        implementation = (
            KERAS_DEFAULT_IMPLEMENTATION
            if implementation is None
            else validate_keras_implementation(owner, implementation)
        )
    return implementation, validate_recurrence_path(owner, recurrence_path)


def _same_function(fn, *candidates):
    return any(fn is c for c in candidates if c is not None)


def activation_name(fn):
    """'tanh', 'sigmoid', 'relu' or 'linear' for the standard functions, else None.

    Identity checks (not names): a user function that happens to be called
    `tanh` keeps the generic path. TensorFlow's own functions count only where
    TensorFlow is already imported (a function from it implies that), so this
    works under every Keras backend, with or without TensorFlow installed.
    """
    known = {
        "tanh": (activations.tanh, ops.tanh),
        "sigmoid": (activations.sigmoid, ops.sigmoid),
        "relu": (activations.relu, ops.relu),
        "linear": (activations.linear,),
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        known["tanh"] += (tf.tanh, tf.math.tanh)
        known["sigmoid"] += (tf.sigmoid, tf.math.sigmoid)
        known["relu"] += (tf.nn.relu,)
    for name, functions in known.items():
        if _same_function(fn, *functions):
            return name
    return None


def static_shape(tensor):
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    return tuple(shape)


class RecurrentCell(DropoutRNNCell, keras.layers.Layer):
    """Base class of the zoo cells: common arguments, dropout, input checks.

    Subclasses set `gate_count` (number of `units`-wide blocks in the kernel)
    and implement `call(inputs, states, training=False)`.
    """

    gate_count = 1

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = validate_units(owner, units)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validate_rate(owner, "dropout", dropout)
        self.recurrent_dropout = validate_rate(
            owner, "recurrent_dropout", recurrent_dropout
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    # -- weights ---------------------------------------------------------
    def _bias_shape(self):
        return (self.gate_count * self.units,)

    def _bias_initializer_for_build(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected step inputs of "
                f"shape (batch, features) with a known feature size. "
                f"Received input_shape={input_shape}"
            )
        input_dim = input_shape[-1]
        width = self.gate_count * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_initializer_for_build(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.built = True

    @property
    def input_dim(self):
        return None if not self.built else int(self.kernel.shape[0])

    # -- checks and dropout ---------------------------------------------
    def check_step_input(self, inputs):
        shape = static_shape(inputs)
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected a step input of "
                f"rank 2 (batch, features). Received shape {shape}"
            )
        if (
            shape is not None
            and self.built
            and shape[-1] is not None
            and shape[-1] != self.input_dim
        ):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': was built for "
                f"{self.input_dim} input features, received {shape[-1]} "
                f"(input shape {shape})"
            )

    def dropped_inputs(self, inputs, training):
        if training and self.dropout > 0:
            return inputs * self.get_dropout_mask(inputs)
        return inputs

    def dropped_state(self, h_tm1, training):
        if training and self.recurrent_dropout > 0:
            return h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return h_tm1

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype)
            for size in self._state_sizes()
        ]

    def _state_sizes(self):
        size = self.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(
                self.recurrent_regularizer
            ),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


# Cell arguments a sequence layer forwards to its cell and exposes as
# read-only properties, like `keras.layers.LSTM` does.
CELL_PROPERTIES = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
)


def _cell_property(name):
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


class RecurrentSequence(keras.layers.RNN):
    """Base class of the zoo sequence layers.

    It adds boundary checks (rank, feature size, initial states) to
    `keras.layers.RNN` and chooses, in `inner_loop`, how the sequence is run:

    * `"cudnn"`: on a GPU, while training, Keras's cuDNN kernels where the
      equations match (LSTM; GRU with `reset_after=True`, weights converted);
    * `"fused"`: the fast path whenever the configuration allows it: the
      native kernels of `zoo.layers.native` on a CPU
      (`last_recurrence_kernel == "native"`), else the graph kernels of `zoo.layers.fused` (`"graph"`);
      both run the whole sequence as one operation with a hand-written BPTT;
    * `"loop"`: the generic step-by-step loop of `keras.layers.RNN`.

    Every zoo sequence layer takes `recurrence_path`: `"auto"` (default) runs
    the fused path whenever the configuration allows it and the generic loop
    otherwise; `"fused"` requires the fused path (a `ValueError` names what
    rules it out); `"loop"` always runs the generic loop. The fused path needs
    the TensorFlow backend, `unroll=False`, activations its kernels implement
    and (while training) `recurrent_dropout=0`. `last_recurrence_path` tells
    which path the latest call (or trace) used, `last_recurrence_kernel` which
    kernels ran the fused path, and `fused_blocker(training)` why the fused
    path would not run.

    A configuration saved before `recurrence_path` existed holds the path
    choice as `implementation="auto"|"fused"|"loop"`; such a string is read as
    `recurrence_path`, with a `DeprecationWarning`. An integer `implementation`
    is Keras's own setting, which only LSTM and GRU take (and keep).

    LSTM and GRU also take `use_cudnn` (`"auto"`, `True` or `False`), which
    allows or forbids the cuDNN kernels while training on a GPU.
    """

    # Whether the Keras counterpart takes Keras's `implementation` (LSTM, GRU).
    _keras_takes_implementation = False

    for _name in CELL_PROPERTIES:
        locals()[_name] = _cell_property(_name)
    del _name

    # The cell class the fused kernels implement (set by each subclass).
    _cell_class = None
    # Steps per backward chunk of the fused path; None picks it from the
    # batch size.
    _fused_chunk = None

    # Arguments of `keras.layers.RNN` that a zoo sequence layer takes itself.
    _LAYER_ARGUMENTS = (
        "return_sequences",
        "return_state",
        "go_backwards",
        "stateful",
        "unroll",
        "activity_regularizer",
    )

    def _init_from_arguments(self, cell_class, cell_name, arguments):
        """Split a sequence layer's constructor arguments into cell and layer.

        `arguments` is the constructor's `locals()`; everything that is not a
        layer argument (or `**kwargs`, which go to `keras.layers.Layer`) is a
        cell argument. `implementation` and `recurrence_path` are resolved
        with `resolve_recurrence_arguments`; `use_cudnn`, where the layer
        takes it, is checked and kept on the layer.
        """
        arguments = dict(arguments)
        arguments.pop("self", None)
        arguments.pop("__class__", None)
        kwargs = dict(arguments.pop("kwargs", {}))
        owner = type(self).__name__
        if "use_cudnn" in arguments:
            self.use_cudnn = validate_use_cudnn(owner, arguments.pop("use_cudnn"))
        implementation, recurrence_path = resolve_recurrence_arguments(
            owner,
            arguments.pop("implementation", kwargs.pop("implementation", None)),
            arguments.pop("recurrence_path", "auto"),
            self._keras_takes_implementation,
        )
        if implementation is not None:
            arguments["implementation"] = implementation
        layer_arguments = {
            key: arguments.pop(key) for key in self._LAYER_ARGUMENTS if key in arguments
        }
        cell = cell_class(
            **arguments,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=cell_name,
        )
        super().__init__(cell, **layer_arguments, **kwargs)
        self.recurrence_path = recurrence_path
        self.last_recurrence_path = None
        self.last_recurrence_kernel = None
        if recurrence_path != "loop" and self._fused_config_blocker() is None:
            # The fused backward pass uses dynamically sized TensorArrays that
            # XLA cannot compile; keep `jit_compile="auto"` from choosing XLA.
            self.supports_jit = False
        if recurrence_path == "fused":
            reason = self._fused_config_blocker()
            if reason is None and self.cell.recurrent_dropout > 0:
                reason = "recurrent_dropout > 0 needs the generic loop while training"
            if reason is not None:
                raise ValueError(
                    f"{owner}: recurrence_path='fused' is not available "
                    f"for this configuration: {reason}. Use recurrence_path='auto' to "
                    f"fall back to the generic loop where needed. "
                    f"Received: recurrence_path={recurrence_path!r}"
                )

    @property
    def last_implementation(self):
        """Deprecated alias of `last_recurrence_path` (its name before `recurrence_path`)."""
        return self.last_recurrence_path

    @property
    def last_kernel(self):
        """Deprecated alias of `last_recurrence_kernel` (its name before `recurrence_path`)."""
        return self.last_recurrence_kernel

    def _describe(self):
        return f"{type(self).__name__} '{self.name}'"

    def _check_sequence_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(
                f"{self._describe()}: expected inputs of rank 3 "
                f"(batch, timesteps, features). Received shape {shape}"
            )
        if shape[-1] is None:
            raise ValueError(
                f"{self._describe()}: the feature dimension of the inputs must "
                f"be known. Received shape {shape}"
            )
        if self.cell.built and shape[-1] != self.cell.input_dim:
            raise ValueError(
                f"{self._describe()}: was built for {self.cell.input_dim} input "
                f"features, received {shape[-1]} (input shape {shape})"
            )

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_sequence_shape(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def _check_initial_state(self, sequences, initial_state):
        states = initial_state if isinstance(initial_state, (list, tuple)) else [
            initial_state
        ]
        expected = list(self.state_size)
        if len(states) != len(expected):
            raise ValueError(
                f"{self._describe()}: expected {len(expected)} initial state "
                f"tensor(s) of shape (batch, units) = (batch, {self.cell.units}), "
                f"received {len(states)}"
            )
        batch = static_shape(sequences)[0]
        for index, (state, size) in enumerate(zip(states, expected)):
            shape = static_shape(state)
            if shape is None:
                continue
            ok = len(shape) == 2 and shape[-1] in (None, size)
            if ok and batch is not None and shape[0] is not None:
                ok = shape[0] == batch
            if not ok:
                raise ValueError(
                    f"{self._describe()}: initial state {index} must have shape "
                    f"(batch, {size}) with batch={batch}. Received shape {shape}"
                )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_sequence_shape(static_shape(sequences))
        if initial_state is not None:
            self._check_initial_state(sequences, initial_state)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    # -- choice of recurrence path ---------------------------------------------
    # Subclasses describe their cell to the fused kernels (`zoo.layers.fused`):
    # `_fused_cell_blocker` (why their cell settings rule it out, or None),
    # `_fused_math` and `_fused_params`.

    def _fused_cell_blocker(self):
        return None

    def _fused_config_blocker(self):
        """Why the layer's configuration rules out the fused path, or None."""
        if keras.backend.backend() != "tensorflow":
            return f"the Keras backend is {keras.backend.backend()!r}, not 'tensorflow'"
        if self.unroll:
            return "unroll=True"
        if type(self.cell) is not self._cell_class:
            return f"the cell is a {type(self.cell).__name__}"
        if self.compute_dtype not in ("float32", "bfloat16", "float16"):
            return f"compute dtype {self.compute_dtype}"
        return self._fused_cell_blocker()

    def fused_blocker(self, training=False):
        """Why a call with this `training` flag would use the generic loop, or None.

        `None` means the fused path runs (unless `recurrence_path="loop"`).
        """
        reason = self._fused_config_blocker()
        if reason is None and training and self.cell.recurrent_dropout > 0:
            reason = "recurrent_dropout > 0 while training"
        return reason

    def _step_mask(self, mask):
        """The mask as `(batch, timesteps)`; Keras also accepts `(batch, timesteps, 1)`."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            return None
        shape = static_shape(mask)
        if shape is not None and len(shape) == 3 and shape[-1] == 1:
            return ops.squeeze(mask, axis=-1)
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"{self._describe()}: expected a mask of shape (batch, timesteps) or "
                f"(batch, timesteps, 1). Received mask shape {shape}"
            )
        return mask

    def inner_loop(self, sequences, initial_state, mask, training=False):
        mask = self._step_mask(mask)
        if self.recurrence_path != "loop" and self.fused_blocker(training) is None:
            result = self._cudnn_inner_loop(sequences, initial_state, mask, training)
            if result is not None:
                self.last_recurrence_path = "cudnn"
                return result
            self.last_recurrence_path = "fused"
            return self._fused_inner_loop(sequences, initial_state, mask, training)
        self.last_recurrence_path = "loop"
        return super().inner_loop(sequences, initial_state, mask=mask, training=training)

    def _cudnn_inner_loop(self, sequences, initial_state, mask, training):
        """The cuDNN kernel through Keras's backend, or None where it does not apply.

        Used only on a GPU, while training, without a mask, and when
        `use_cudnn` allows it. Inference (and so every exported serving
        function, traced with `training=False`) stays on the fused path built
        from standard TensorFlow ops, so a model exported on a GPU still runs
        on a CPU.
        """
        if (
            getattr(self, "use_cudnn", False) is False
            or not training
            or mask is not None
            or cudnn_backend is None
            or self.cell.compute_dtype not in ("float32", "float16")
        ):
            return None
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        cell = self.cell
        sequences_in = sequences
        if cell.dropout > 0:
            sequences_in = sequences * ops.expand_dims(
                cell.get_dropout_mask(sequences[:, 0, :]), 1
            )
        try:
            return self._call_cudnn(sequences_in, initial_state)
        except NotImplementedError:
            return None

    def _call_cudnn(self, sequences, initial_state):
        raise NotImplementedError

    def _fused_inner_loop(self, sequences, initial_state, mask, training):
        import tensorflow as tf

        from zoo.layers import fused, native

        cell = self.cell
        x = sequences
        if training and cell.dropout > 0:
            # The generic loop multiplies every step by the same mask.
            x = x * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        x = tf.transpose(x, [1, 0, 2])
        step_mask = None
        if mask is not None:
            step_mask = tf.transpose(tf.cast(mask, "bool"))[:, :, None]
        if self.go_backwards:
            x = tf.reverse(x, [0])
            if step_mask is not None:
                step_mask = tf.reverse(step_mask, [0])
        math = self._fused_math(static_shape(sequences)[0])
        stash = bool(training) or fused.gradients_may_be_requested()
        need_dx = stash and fused.gradient_needed_for(x)
        arguments = (x, self._fused_params(), tuple(initial_state), step_mask)
        if native.usable():
            self.last_recurrence_kernel = "native"
            sequence, final = native.run(
                math.native_cell, *arguments, return_sequences=self.return_sequences,
                save=stash, need_dx=need_dx,
            )
        else:
            self.last_recurrence_kernel = "graph"
            sequence, final = fused.run(
                math, *arguments, compute_dtype=cell.compute_dtype,
                return_sequences=self.return_sequences,
                chunk=self._fused_chunk or fused.default_chunk(static_shape(sequences)[0]),
                stash=stash, need_dx=need_dx,
            )
        last_output = final[0]
        if step_mask is not None:
            # As the generic loop: a masked step repeats the last output,
            # zeros before the first real step (or always, with
            # `zero_output_for_mask`).
            if self.zero_output_for_mask:
                emitted = tf.cast(step_mask, "float32")
            else:
                emitted = tf.cast(
                    tf.cumsum(tf.cast(step_mask, "int32"), axis=0) > 0, "float32"
                )
            last_output = last_output * emitted[-1]
            if sequence is not None:
                sequence = sequence * emitted
        if sequence is None:
            outputs = last_output[:, None, :]
        else:
            outputs = tf.transpose(sequence, [1, 0, 2])
        return last_output, outputs, list(final)

    def _weight_value(self, variable, size):
        if variable is None:
            return ops.zeros((size,), dtype="float32")
        return variable.value

    def get_config(self):
        config = {
            key: value
            for key, value in self.cell.get_config().items()
            if key not in ("name", "trainable", "dtype")
        }
        config["recurrence_path"] = self.recurrence_path
        config["activity_regularizer"] = regularizers.serialize(
            self.activity_regularizer
        )
        base = super().get_config()
        del base["cell"]
        config = {**base, **config}
        if hasattr(self, "use_cudnn"):
            config["use_cudnn"] = self.use_cudnn
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
