"""The fused fast path of the zoo sequence layers (TensorFlow backend): graph kernels.

On a CPU with a C++ compiler the layers run the native kernels of
`zoo.layers.native` instead; the graph kernels here are used where those
cannot run (no compiler, XLA, a GPU) and whenever a graph is traced for
export, since they consist of standard TensorFlow ops only. The cell
classes here (`make_math`) also name the native kernel of each cell
(`native_cell`).

The generic path (`keras.layers.RNN`) calls a cell once per time step inside a
`while_loop` and lets TensorFlow differentiate every step op by op. This
module computes the same equations as one differentiable operation over the
whole sequence:

* Forward, a step is a handful of ops. Each gate is one product
  `activation(bias_add([x_t, h_{t-1}] @ [W_k; U_k], b_k))`, the form
  TensorFlow's oneDNN remapper fuses into a single kernel (product, bias and
  sigmoid/tanh, vectorized for the host CPU, unlike TensorFlow's generic
  element-wise kernels); the gates' products are independent, so they run
  side by side on the cores. (A small SimpleRNN instead projects its inputs
  for all steps at once; a larger one splits its product in two halves.)
* Backpropagation through time is written out (`tf.custom_gradient`). The
  forward loop keeps only what the backward pass needs (gate activations and
  states). The backward pass walks the sequence in chunks of `K` steps,
  last chunk first: the derivative factors of a chunk are computed in a few
  vectorized ops; the loop itself only carries the state gradients, through
  one product per gate (again side by side, and without joining the gates'
  gradients, since a concat over the feature axis costs more than it saves);
  the weight gradients of the chunk are then products over `K * batch` rows
  instead of `K` small ones, free to overlap with the next chunk's loop.
* The gradient with respect to the inputs is computed only when a tape
  watches them (not for raw model inputs).
* Under a mixed policy (`mixed_bfloat16`, `mixed_float16`) the matrix
  products run in the compute dtype while states, gate arithmetic and the
  accumulation of gradients stay in float32.
* When no gradient can be requested (no tape is recording and
  `training=False`, e.g. `predict` or an exported serving function) the
  forward loop keeps nothing and attaches no custom gradient: the graph is
  plain TensorFlow ops (still differentiable by TensorFlow itself), so an
  exported model runs without `zoo` installed.

Everything here is time-major: sequences are `(T, B, features)`, masks are
`(T, B, 1)` booleans. `run` returns the state sequence (or only the final
states) in float32; the sequence layer casts them back.
"""

import tensorflow as tf

try:  # Whether a GradientTape records the ops traced now.
    from tensorflow.python.eager import record as _record
except ImportError:  # pragma: no cover - layout of a future TensorFlow
    _record = None

F32 = tf.float32

# Rows (chunk steps x batch) aimed at per weight-gradient matrix product, and
# the bounds of the chunk length of the backward pass.
TARGET_CHUNK_ROWS = 2048
MIN_CHUNK, MAX_CHUNK = 4, 64


def gradients_may_be_requested():
    """True unless no GradientTape (or accumulator) records the ops built now."""
    if _record is None:  # pragma: no cover
        return True
    try:
        return bool(_record.could_possibly_record())
    except Exception:  # pragma: no cover - be safe: keep the gradient path
        return True


def gradient_needed_for(tensor):
    """Whether an active tape would propagate a gradient into `tensor`."""
    if _record is None:  # pragma: no cover
        return True
    try:
        return bool(_record.should_record_backprop([tensor]))
    except Exception:  # pragma: no cover
        return True


def default_chunk(batch_size):
    """Backward chunk length: about `TARGET_CHUNK_ROWS` rows per product."""
    if batch_size is None:
        return 32
    steps = TARGET_CHUNK_ROWS // max(int(batch_size), 1)
    return int(min(MAX_CHUNK, max(MIN_CHUNK, steps)))


class _Ops:
    """Matrix products in the compute dtype, with float32 results."""

    def __init__(self, compute_dtype):
        self.dtype = tf.as_dtype(compute_dtype)
        self.low = self.dtype != F32

    def weight(self, w):
        return tf.cast(w, self.dtype) if self.low else w

    def _in(self, a):
        return tf.cast(a, self.dtype) if self.low else a

    def _out(self, a):
        return tf.cast(a, F32) if self.low else a

    def join(self, parts):
        """`concat(parts, axis=1)` in the compute dtype."""
        if len(parts) == 1:
            return self._in(parts[0])
        return tf.concat([self._in(p) for p in parts], 1)

    def dense(self, a, w, b, activation=None):
        """`activation(a @ w + b)` (`a` from `join`), in the form oneDNN fuses."""
        y = tf.nn.bias_add(tf.matmul(a, w), b)
        if activation == "sigmoid":
            y = tf.sigmoid(y)
        elif activation == "tanh":
            y = tf.tanh(y)
        elif activation == "relu":
            y = tf.nn.relu(y)
        return self._out(y)

    def mm(self, a, w):
        """`a @ w` with `a` float32 and `w` already in the compute dtype."""
        return self._out(tf.matmul(self._in(a), w))

    def outer(self, a, b):
        """`a^T @ b` for two `(rows, ...)` operands."""
        return self._out(tf.matmul(self._in(a), self._in(b), transpose_a=True))


def _rows(t):
    """(K, B, n) -> (K*B, n)."""
    return tf.reshape(t, [-1, tf.shape(t)[-1]])


def _sum_rows(rows):
    """Column sums of a (rows, n) float32 matrix, as a matrix product.

    A (1, rows) x (rows, n) product is far cheaper here than `reduce_sum`.
    """
    ones = tf.ones([1, tf.shape(rows)[0]], F32)
    return tf.matmul(ones, rows)[0]


# `y' * dy` for y = sigmoid(a) or tanh(a), written from the output y in one op.
_sigmoid_grad = tf.raw_ops.SigmoidGrad
_tanh_grad = tf.raw_ops.TanhGrad


# ---------------------------------------------------------------------------
# Per-cell mathematics. Each class knows
#   * `context(ops, *params)`: the parameters prepared once per call, and
#     `backward_context(ctx)`: what the backward pass adds;
#   * `precompute(ctx, x)`: per-step inputs computed for all steps at once;
#   * `step(ctx, x_t, pre_t, states)`: one step -> new states and the
#     tensors to keep for the backward pass;
#   * `factors(...)`: a chunk's derivative factors, vectorized;
#   * `back_step(...)`: one step of the backward loop, returning the state
#     gradients of the previous step and the gradients of the pre-activation
#     blocks (kept for the weight gradients);
#   * `weight_grads(...)`: a chunk's parameter gradients (and input gradient).
# Gradients of pre-activation blocks travel as separate tensors: joining
# them per step (a concat over the feature axis) costs more than the extra
# matrix product it saves.
# ---------------------------------------------------------------------------


class _SimpleRNNMath:
    """`h_t = act(x_t W + h_{t-1} U + b)`.

    Two step forms, picked by size: small products (`project=True`) add a
    projection of the inputs computed for all steps at once; larger ones
    fuse `[x_t, h] @ [W; U]` with bias and activation, split into
    `parts` column blocks that run side by side.
    """

    n_states = 1
    n_saved = 0
    n_dpre = 1
    needs_current = True  # the activation's derivative is written from h_t

    def __init__(self, units, activation, project=False, parts=1):
        self.units = units
        self.activation = activation
        self.native_cell = f"rnn_{activation}"
        self.project = project
        self.parts = parts

    def _cuts(self):
        width = self.units // self.parts
        return [
            slice(k * width, self.units if k == self.parts - 1 else (k + 1) * width)
            for k in range(self.parts)
        ]

    def context(self, ops, kernel, bias, recurrent_kernel):
        ctx = {"ops": ops, "W": kernel, "U": recurrent_kernel}
        if self.project:
            ctx.update(W_c=ops.weight(kernel), b_c=ops.weight(bias),
                       U_c=ops.weight(recurrent_kernel))
        else:
            stacked = tf.concat([kernel, recurrent_kernel], axis=0)
            ctx.update(WU=[ops.weight(stacked[:, cut]) for cut in self._cuts()],
                       b=[ops.weight(bias[cut]) for cut in self._cuts()])
        return ctx

    def backward_context(self, ctx):
        ops = ctx["ops"]
        u_t = tf.transpose(ctx["U"])
        return {**ctx, "W_t": ops.weight(tf.transpose(ctx["W"])),
                "U_t": [ops.weight(u_t[:, cut]) for cut in self._cuts()]}

    def precompute(self, ctx, x):
        if not self.project:
            return ()
        ops = ctx["ops"]
        projected = ops.dense(ops.join([_rows(x)]), ctx["W_c"], ctx["b_c"])
        return (tf.reshape(projected, [tf.shape(x)[0], -1, self.units]),)

    def _activate(self, a):
        if self.activation == "tanh":
            return tf.tanh(a)
        if self.activation == "sigmoid":
            return tf.sigmoid(a)
        if self.activation == "relu":
            return tf.nn.relu(a)
        return a

    def step(self, ctx, x_t, pre_t, states):
        ops = ctx["ops"]
        if self.project:
            return (self._activate(pre_t[0] + ops.mm(states[0], ctx["U_c"])),), ()
        activation = None if self.activation == "linear" else self.activation
        xh = ops.join([x_t, states[0]])
        parts = [ops.dense(xh, w, b, activation) for w, b in zip(ctx["WU"], ctx["b"])]
        return (parts[0] if len(parts) == 1 else tf.concat(parts, axis=1),), ()

    def factors(self, saved, current, previous, mask):
        # The derivative is written from the output h inside the loop.
        if mask is None:
            return (current[0],)
        return (current[0], mask, 1.0 - mask)

    def back_step(self, ctx, factors, dh, carry):
        h = factors[0]
        d_in = dh if len(factors) == 1 else dh * factors[1]
        if self.activation == "tanh":
            dpre = _tanh_grad(y=h, dy=d_in)
        elif self.activation == "sigmoid":
            dpre = _sigmoid_grad(y=h, dy=d_in)
        elif self.activation == "relu":
            dpre = tf.raw_ops.ReluGrad(gradients=d_in, features=h)
        else:
            dpre = d_in
        parts = [ctx["ops"].mm(dpre, u) for u in ctx["U_t"]]
        dh_prev = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        if len(factors) > 1:  # masked steps pass the gradient straight through
            dh_prev = dh_prev + dh * factors[2]
        return (dh_prev,), (dpre,)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d = _rows(dpre[0])
        grads = (ops.outer(x_rows, d), _sum_rows(d), ops.outer(_rows(previous[0]), d))
        return grads, (ops.mm(d, ctx["W_t"]) if need_dx else None)


def _block_grads(ops, x_rows, x_blocks, recurrent):
    """Weight gradients assembled from per-gate blocks.

    `x_blocks`: gradients of the pre-activation blocks fed by `x W`, in the
    kernel's column order; `recurrent`: (source rows, block gradient) pairs
    in the recurrent kernel's column order. Returns (d kernel, d bias of the
    x blocks, d recurrent kernel, d bias of the recurrent blocks).
    """
    return (
        tf.concat([ops.outer(x_rows, d) for d in x_blocks], axis=1),
        tf.concat([_sum_rows(d) for d in x_blocks], axis=0),
        tf.concat([ops.outer(source, d) for source, d in recurrent], axis=1),
        tf.concat([_sum_rows(d) for _, d in recurrent], axis=0),
    )


def _input_grad(ops, x_blocks, kernel_t_blocks, need_dx):
    if not need_dx:
        return None
    return tf.add_n([ops.mm(d, w) for d, w in zip(x_blocks, kernel_t_blocks)])


def _transposed_blocks(ops, w, units, count):
    """The `count` gate blocks of `w` (columns), each transposed: (units, rows)."""
    w_t = tf.transpose(w)
    return [ops.weight(w_t[k * units : (k + 1) * units]) for k in range(count)]


class _PerGateMath:
    """What the LSTM and GRU maths share: one `[W; U]` product per gate block.

    Subclasses set `gates`, the number of `units`-wide blocks in the weights.
    """

    gates = 1

    def __init__(self, units):
        self.units = units

    def context(self, ops, kernel, bias, recurrent_kernel):
        units = self.units
        stacked = tf.concat([kernel, recurrent_kernel], axis=0)
        blocks = [slice(k * units, (k + 1) * units) for k in range(self.gates)]
        return {
            "ops": ops,
            "WU": [ops.weight(stacked[:, cut]) for cut in blocks],
            "b": [ops.weight(bias[cut]) for cut in blocks],
            "W": kernel,
            "U": recurrent_kernel,
        }

    def backward_context(self, ctx):
        ops, units = ctx["ops"], self.units
        return {
            **ctx,
            "W_t": _transposed_blocks(ops, ctx["W"], units, self.gates),
            "U_t": _transposed_blocks(ops, ctx["U"], units, self.gates),
        }

    def precompute(self, ctx, x):
        return ()


class _LSTMMath(_PerGateMath):
    """One fused product per gate, so that the four run side by side.

    Gate blocks in the weights: i, f, c (candidate g), o.
    """

    gates = 4
    native_cell = "lstm"
    n_states = 2
    needs_current = False
    n_saved = 5  # sigmoid i, f, o; tanh candidate g; tanh(c)
    n_dpre = 4  # d pre-activations of i, f, c, o

    def step(self, ctx, x_t, pre_t, states):
        h, c = states
        ops, w, b = ctx["ops"], ctx["WU"], ctx["b"]
        xh = ops.join([x_t, h])
        i = ops.dense(xh, w[0], b[0], "sigmoid")
        f = ops.dense(xh, w[1], b[1], "sigmoid")
        g = ops.dense(xh, w[2], b[2], "tanh")
        o = ops.dense(xh, w[3], b[3], "sigmoid")
        c = f * c + i * g
        tanh_c = tf.tanh(c)
        return (o * tanh_c, c), (i, f, o, g, tanh_c)

    def factors(self, saved, current, previous, mask):
        i, f, o, g, tanh_c = saved
        # d pre-activation of i, f, c = dc * factor; of o = dh * factor.
        by_dc = [
            _sigmoid_grad(y=i, dy=g),
            _sigmoid_grad(y=f, dy=previous[1]),
            _tanh_grad(y=g, dy=i),
        ]
        by_dh = _sigmoid_grad(y=o, dy=tanh_c)
        dc_from_dh = _tanh_grad(y=tanh_c, dy=o)
        if mask is None:
            return (*by_dc, by_dh, dc_from_dh, f)
        keep = 1.0 - mask
        return (
            *(t * mask for t in by_dc),
            by_dh * mask,
            dc_from_dh * mask,
            f * mask + keep,
            keep,
        )

    def back_step(self, ctx, factors, dh, carry):
        by_i, by_f, by_c, by_o, dc_from_dh, forget = factors[:6]
        mm, u_t = ctx["ops"].mm, ctx["U_t"]
        dc = carry[0] + dh * dc_from_dh
        d = (dc * by_i, dc * by_f, dc * by_c, dh * by_o)
        dh_prev = tf.add_n([mm(block, u) for block, u in zip(d, u_t)])
        if len(factors) > 6:  # masked steps pass the gradient straight through
            dh_prev = dh_prev + dh * factors[6]
        return (dh_prev, dc * forget), d

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d = [_rows(t) for t in dpre]
        h_prev = _rows(previous[0])
        d_kernel, d_bias, d_recurrent, _ = _block_grads(
            ops, x_rows, d, [(h_prev, block) for block in d]
        )
        return (d_kernel, d_bias, d_recurrent), _input_grad(ops, d, ctx["W_t"], need_dx)


class _GRUMath(_PerGateMath):
    """`reset_after=False`: the reset gate scales `h` before the product with U_h.

    Gate blocks in the weights: z, r, h (candidate).
    """

    gates = 3
    native_cell = "gru"
    n_states = 1
    needs_current = False
    n_saved = 3  # sigmoid z, sigmoid r, the candidate h~
    n_dpre = 3  # d pre-activations of z, r and the candidate

    def step(self, ctx, x_t, pre_t, states):
        h = states[0]
        ops, w, b = ctx["ops"], ctx["WU"], ctx["b"]
        xh = ops.join([x_t, h])
        z = ops.dense(xh, w[0], b[0], "sigmoid")
        r = ops.dense(xh, w[1], b[1], "sigmoid")
        candidate = ops.dense(ops.join([x_t, r * h]), w[2], b[2], "tanh")
        return (h + z * (candidate - h),), (z, r, candidate)

    def _common_factors(self, saved, previous, mask, reset_source):
        z, r, candidate = saved[:3]
        to_candidate = _tanh_grad(y=candidate, dy=z)
        to_update = _sigmoid_grad(y=z, dy=candidate - previous[0])
        to_reset = _sigmoid_grad(y=r, dy=reset_source)
        to_prev = 1.0 - z
        if mask is not None:
            to_candidate = to_candidate * mask
            to_update = to_update * mask
            to_prev = to_prev * mask + (1.0 - mask)
        return to_candidate, to_update, to_reset, r, to_prev

    def factors(self, saved, current, previous, mask):
        return self._common_factors(saved, previous, mask, previous[0])

    def back_step(self, ctx, factors, dh, carry):
        to_candidate, to_update, to_reset, r, to_prev = factors
        mm, u_t = ctx["ops"].mm, ctx["U_t"]
        d_candidate = dh * to_candidate
        d_z = dh * to_update
        d_reset_h = mm(d_candidate, u_t[2])
        d_r = d_reset_h * to_reset
        dh_prev = tf.add_n(
            [dh * to_prev, d_reset_h * r, mm(d_z, u_t[0]), mm(d_r, u_t[1])]
        )
        return (dh_prev,), (d_z, d_r, d_candidate)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d = [_rows(t) for t in dpre]
        h_prev = _rows(previous[0])
        reset_h = _rows(saved[1]) * h_prev
        d_kernel, d_bias, d_recurrent, _ = _block_grads(
            ops, x_rows, d, [(h_prev, d[0]), (h_prev, d[1]), (reset_h, d[2])]
        )
        return (d_kernel, d_bias, d_recurrent), _input_grad(ops, d, ctx["W_t"], need_dx)


class _GRUResetAfterMath(_GRUMath):
    """`reset_after=True`: the reset gate scales `h U_h + b_h^h` (cuDNN placement).

    The z and r blocks of both biases act together; the input part of the
    candidate, `x W_h + b_h^x`, is projected for all steps before the loop.
    """

    native_cell = "gru_reset_after"
    n_saved = 4  # sigmoid z, sigmoid r, the candidate h~, and h U_h + b_h^h
    n_dpre = 4  # d pre-activations of z, r, the candidate's recurrent part, the candidate

    def context(self, ops, kernel, bias, recurrent_kernel, recurrent_bias):
        units = self.units
        stacked = tf.concat([kernel, recurrent_kernel], axis=0)
        both = bias + recurrent_bias
        blocks = [slice(k * units, (k + 1) * units) for k in range(2)]
        return {
            "ops": ops,
            "WU": [ops.weight(stacked[:, cut]) for cut in blocks],
            "b": [ops.weight(both[cut]) for cut in blocks],
            "W_h": ops.weight(kernel[:, 2 * units :]),
            "b_xh": ops.weight(bias[2 * units :]),
            "U_h": ops.weight(recurrent_kernel[:, 2 * units :]),
            "b_hh": ops.weight(recurrent_bias[2 * units :]),
            "W": kernel,
            "U": recurrent_kernel,
        }

    def precompute(self, ctx, x):
        steps = tf.shape(x)[0]
        ops = ctx["ops"]
        projected = ops.dense(ops.join([_rows(x)]), ctx["W_h"], ctx["b_xh"])
        return (tf.reshape(projected, [steps, -1, self.units]),)

    def step(self, ctx, x_t, pre_t, states):
        h = states[0]
        ops, w, b = ctx["ops"], ctx["WU"], ctx["b"]
        xh = ops.join([x_t, h])
        z = ops.dense(xh, w[0], b[0], "sigmoid")
        r = ops.dense(xh, w[1], b[1], "sigmoid")
        recurrent_h = ops.dense(ops.join([h]), ctx["U_h"], ctx["b_hh"])
        candidate = tf.tanh(pre_t[0] + r * recurrent_h)
        return (h + z * (candidate - h),), (z, r, candidate, recurrent_h)

    def factors(self, saved, current, previous, mask):
        return self._common_factors(saved, previous, mask, saved[3])

    def back_step(self, ctx, factors, dh, carry):
        to_candidate, to_update, to_reset, r, to_prev = factors
        mm, u_t = ctx["ops"].mm, ctx["U_t"]
        d_candidate = dh * to_candidate
        d_z = dh * to_update
        d_r = d_candidate * to_reset
        d_recurrent_h = d_candidate * r
        dh_prev = tf.add_n(
            [dh * to_prev, mm(d_z, u_t[0]), mm(d_r, u_t[1]), mm(d_recurrent_h, u_t[2])]
        )
        return (dh_prev,), (d_z, d_r, d_recurrent_h, d_candidate)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d_z, d_r, d_recurrent_h, d_candidate = [_rows(t) for t in dpre]
        h_prev = _rows(previous[0])
        x_blocks = [d_z, d_r, d_candidate]
        grads = _block_grads(
            ops, x_rows, x_blocks, [(h_prev, d_z), (h_prev, d_r), (h_prev, d_recurrent_h)]
        )
        return grads, _input_grad(ops, x_blocks, ctx["W_t"], need_dx)


# Multiply-adds of one step's product below which the SimpleRNN projects its
# inputs for all steps up front (tuned on a 2-core CPU).
SMALL_STEP_PRODUCT = 2_000_000


def make_math(kind, units, activation="tanh", reset_after=False, batch_size=None,
              input_dim=None):
    """The fused equations of a cell: `kind` in simple_rnn, lstm, gru.

    `batch_size` and `input_dim` (when known) choose between equivalent
    forms of the step.
    """
    if kind == "simple_rnn":
        size = (batch_size or 32) * ((input_dim or units) + units) * units
        if size < SMALL_STEP_PRODUCT:
            return _SimpleRNNMath(units, activation, project=True)
        return _SimpleRNNMath(units, activation, parts=2 if units >= 64 else 1)
    if kind == "lstm":
        return _LSTMMath(units)
    if kind == "gru":
        return _GRUResetAfterMath(units) if reset_after else _GRUMath(units)
    raise ValueError(f"Unknown fused cell kind {kind!r}")


# ---------------------------------------------------------------------------
# The driver: the forward loop, and the chunked BPTT loop.
# ---------------------------------------------------------------------------


def _forward(math, ctx, x, states, mask, keep_sequence, stash):
    """Runs the recurrence; returns (final states, state TensorArrays, saved TensorArrays)."""
    total = tf.shape(x)[0]
    pre = math.precompute(ctx, x)
    if stash:
        # Entry 0 holds the initial state, entry t + 1 the state after step t,
        # so the backward pass reads "previous" and "current" chunks directly.
        state_tas = tuple(
            tf.TensorArray(F32, size=total + 1, element_shape=s.shape).write(0, s)
            for s in states
        )
        offset = 1
    else:
        state_tas = tuple(
            tf.TensorArray(F32, size=total, element_shape=states[0].shape)
            for _ in range(1 if keep_sequence else 0)
        )
        offset = 0
    # Saved tensors are (batch, some width): give the arrays that rank, so
    # that the backward products stay plain 2-D MatMuls.
    saved_shape = tf.TensorShape([states[0].shape[0], None])
    saved_tas = tuple(
        tf.TensorArray(F32, size=total, element_shape=saved_shape, infer_shape=False)
        for _ in range(math.n_saved if stash else 0)
    )

    def body(t, states, state_tas, saved_tas):
        new, saved = math.step(ctx, x[t], tuple(p[t] for p in pre), states)
        if mask is not None:
            m = mask[t]
            new = tuple(tf.where(m, n, s) for n, s in zip(new, states))
        for n, s in zip(new, states):
            n.set_shape(s.shape)
        state_tas = tuple(ta.write(t + offset, v) for ta, v in zip(state_tas, new))
        saved_tas = tuple(ta.write(t, v) for ta, v in zip(saved_tas, saved))
        return t + 1, new, state_tas, saved_tas

    _, states, state_tas, saved_tas = tf.while_loop(
        lambda t, *_: t < total,
        body,
        (tf.constant(0), tuple(states), state_tas, saved_tas),
    )
    return states, state_tas, saved_tas


def _backward(math, ctx, x, state_tas, saved_tas, mask, chunk,
              d_sequence, d_final, param_shapes, need_dx):
    """BPTT over chunks, last chunk first. Returns (dx or None, param grads, d initial)."""
    total = tf.shape(x)[0]
    n_chunks = (total + chunk - 1) // chunk
    accumulators = tuple(tf.zeros(shape, F32) for shape in param_shapes)
    dx_ta = tf.TensorArray(x.dtype, size=total if need_dx else 0, element_shape=x.shape[1:])

    def chunk_body(k, carry, accumulators, dx_ta):
        start = k * chunk
        steps = tf.minimum(chunk, total - start)
        index = tf.range(start, start + steps)
        current = None
        if math.needs_current:  # one gather, two views
            both = tuple(ta.gather(tf.range(start, start + steps + 1)) for ta in state_tas)
            previous = tuple(t[:-1] for t in both)
            current = tuple(t[1:] for t in both)
        else:
            previous = tuple(ta.gather(index) for ta in state_tas)
        saved = tuple(ta.gather(index) for ta in saved_tas)
        chunk_mask = None
        if mask is not None:
            chunk_mask = tf.cast(mask[start : start + steps], F32)
        factors = math.factors(saved, current, previous, chunk_mask)
        d_seq = None if d_sequence is None else d_sequence[start : start + steps]
        dpre_tas = tuple(tf.TensorArray(F32, size=steps) for _ in range(math.n_dpre))

        def step_body(j, carry, dpre_tas):
            dh = carry[0] if d_seq is None else carry[0] + d_seq[j]
            new, dpre = math.back_step(ctx, tuple(f[j] for f in factors), dh, carry[1:])
            for n, o in zip(new, carry):
                n.set_shape(o.shape)
            dpre_tas = tuple(ta.write(j, d) for ta, d in zip(dpre_tas, dpre))
            return j - 1, tuple(new), dpre_tas

        _, carry, dpre_tas = tf.while_loop(
            lambda j, *_: j >= 0, step_body, (steps - 1, carry, dpre_tas)
        )
        dpre = tuple(ta.stack() for ta in dpre_tas)
        x_rows = _rows(x[start : start + steps])
        grads, dx_rows = math.weight_grads(ctx, x_rows, previous, saved, dpre, need_dx)
        accumulators = tuple(a + g for a, g in zip(accumulators, grads))
        if need_dx:
            dx = tf.reshape(tf.cast(dx_rows, x.dtype), [steps, -1, tf.shape(x)[-1]])
            dx_ta = dx_ta.scatter(index, dx)
        return k - 1, carry, accumulators, dx_ta

    _, carry, accumulators, dx_ta = tf.while_loop(
        lambda k, *_: k >= 0,
        chunk_body,
        (n_chunks - 1, tuple(d_final), accumulators, dx_ta),
    )
    dx = tf.reshape(dx_ta.stack(), tf.shape(x)) if need_dx else None
    return dx, accumulators, carry


def with_gradient(forward, x, inputs, need_dx):
    """Runs `forward(x, inputs)` under a hand-written gradient.

    `forward` returns `(outputs, gradient)`, where `gradient(*upstream)`
    returns `(dx, gradients of inputs)`. With `need_dx=False`, `x` is
    treated as a constant (its gradient is neither requested nor returned).
    """
    if need_dx:
        @tf.custom_gradient
        def with_dx(x, *inputs):
            outputs, gradient = forward(x, inputs)

            def all_gradients(*upstream):
                dx, d_inputs = gradient(*upstream)
                return (dx,) + tuple(d_inputs)

            return outputs, all_gradients

        return with_dx(x, *inputs)

    @tf.custom_gradient
    def without_dx(*inputs):
        outputs, gradient = forward(x, inputs)
        return outputs, lambda *upstream: tuple(gradient(*upstream)[1])

    return without_dx(*inputs)


def run(math, x, params, states, mask=None, *, compute_dtype="float32",
        return_sequences=True, chunk=32, stash=True, need_dx=True):
    """Runs a fused recurrence.

    Args:
        math: from `make_math`.
        x: `(T, B, I)` time-major inputs, in the compute dtype.
        params: float32 tensors, in the order of `math.context`.
        states: tuple of `(B, H)` initial states.
        mask: optional `(T, B, 1)` boolean tensor.
        compute_dtype: dtype of the matrix products.
        return_sequences: also return the sequence of `h` (time-major).
        chunk: steps per chunk of the backward pass (Python int).
        stash: keep what the backward pass needs and attach the hand-written
            gradient; otherwise build the plain forward loop only.
        need_dx: compute the gradient with respect to `x` (otherwise `x` is
            treated as a constant).

    Returns:
        `(sequence or None, final_states)`, all float32.
    """
    ops = _Ops(compute_dtype)
    states = tuple(tf.cast(s, F32) for s in states)
    params = tuple(tf.cast(p, F32) for p in params)

    if not stash:
        ctx = math.context(ops, *params)
        final, state_tas, _ = _forward(math, ctx, x, states, mask, return_sequences, False)
        return (state_tas[0].stack() if return_sequences else None), tuple(final)

    n_params, n_states = len(params), len(states)

    def fused(x, flat):
        params, initial = flat[:n_params], flat[n_params:]
        ctx = math.context(ops, *params)
        final, state_tas, saved_tas = _forward(math, ctx, x, initial, mask, True, True)
        outputs = tuple(final)
        if return_sequences:
            sequence = state_tas[0].gather(tf.range(1, tf.shape(x)[0] + 1))
            outputs = (sequence,) + outputs

        def grad(*upstream):
            back_ctx = math.backward_context(ctx)
            upstream = list(upstream)
            d_sequence = upstream.pop(0) if return_sequences else None
            if d_sequence is not None:
                d_sequence = tf.cast(d_sequence, F32)
            d_final = tuple(
                tf.zeros_like(s) if d is None else tf.cast(d, F32)
                for d, s in zip(upstream, final)
            )
            dx, param_grads, d_initial = _backward(
                math, back_ctx, x, state_tas, saved_tas, mask, chunk,
                d_sequence, d_final, [p.shape for p in params], need_dx,
            )
            return dx, tuple(param_grads) + tuple(d_initial)

        return outputs, grad

    outputs = with_gradient(fused, x, (*params, *states), need_dx)

    if return_sequences:
        return outputs[0], tuple(outputs[1 : 1 + n_states])
    return None, tuple(outputs[:n_states])
