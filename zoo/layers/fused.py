"""The fused fast path of the zoo sequence layers (TensorFlow backend).

The generic path (`keras.layers.RNN`) calls a cell once per time step inside a
`while_loop` and lets TensorFlow differentiate every step op by op. This
module computes the same equations as one differentiable operation over the
whole sequence:

* Forward, each step is a handful of ops. The gate pre-activations are one
  matrix product of `[x_t, h_{t-1}]` with the stacked `[W; U]`, written as
  `activation(bias_add(matmul(...)))` so that TensorFlow's oneDNN remapper
  fuses product, bias and sigmoid/tanh into a single kernel (vectorized for
  the host CPU, unlike the generic element-wise ops).
* Backpropagation through time is written out (`tf.custom_gradient`). The
  forward loop keeps only what the backward pass needs (gate activations and
  states). The backward pass walks the sequence in chunks of `K` steps,
  last chunk first: the derivative factors of a chunk are computed in a few
  vectorized ops, the loop itself only carries the state gradients through
  one matrix product per step, and the weight gradients of the chunk are
  matrix products over `K * batch` rows instead of `K` small ones.
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


def _sum_rows(t):
    return tf.reduce_sum(t, axis=0)


# `y' * dy` for y = sigmoid(a) or tanh(a), written from the output y in one op.
_sigmoid_grad = tf.raw_ops.SigmoidGrad
_tanh_grad = tf.raw_ops.TanhGrad


def _swap_last_blocks(w, units):
    """[a, b, c, d] <-> [a, b, d, c] along the last axis (blocks of `units`)."""
    return tf.concat(
        [w[..., : 2 * units], w[..., 3 * units :], w[..., 2 * units : 3 * units]],
        axis=-1,
    )


# ---------------------------------------------------------------------------
# Per-cell mathematics. Each class knows
#   * `context(ops, *params)`: the parameters prepared once per call, and
#     `backward_context(ctx)`: what the backward pass adds;
#   * `precompute(ctx, x)`: per-step inputs computed for all steps at once;
#   * `step(ctx, x_t, pre_t, states)`: one step -> new states and the
#     tensors to keep for the backward pass;
#   * `factors(...)`: a chunk's derivative factors, vectorized;
#   * `back_step(...)`: one step of the backward loop;
#   * `weight_grads(...)`: a chunk's parameter gradients (and input gradient).
# ---------------------------------------------------------------------------


class _SimpleRNNMath:
    n_states = 1
    n_saved = 0
    n_dpre = 1

    def __init__(self, units, activation):
        self.units = units
        self.activation = activation

    def context(self, ops, kernel, bias, recurrent_kernel):
        return {
            "ops": ops,
            "WU": ops.weight(tf.concat([kernel, recurrent_kernel], axis=0)),
            "b": ops.weight(bias),
            "W": kernel,
            "U": recurrent_kernel,
        }

    def backward_context(self, ctx):
        ops = ctx["ops"]
        return {**ctx, "W_t": ops.weight(tf.transpose(ctx["W"])),
                "U_t": ops.weight(tf.transpose(ctx["U"]))}

    def precompute(self, ctx, x):
        return ()

    def step(self, ctx, x_t, pre_t, states):
        activation = None if self.activation == "linear" else self.activation
        ops = ctx["ops"]
        h = ops.dense(ops.join([x_t, states[0]]), ctx["WU"], ctx["b"], activation)
        return (h,), ()

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
        dh_prev = ctx["ops"].mm(dpre, ctx["U_t"])
        if len(factors) > 1:  # masked steps pass the gradient straight through
            dh_prev = dh_prev + dh * factors[2]
        return (dh_prev,), (dpre,)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d = _rows(dpre[0])
        grads = (ops.outer(x_rows, d), _sum_rows(d), ops.outer(_rows(previous[0]), d))
        return grads, (ops.mm(d, ctx["W_t"]) if need_dx else None)

    def finish(self, grads):
        return grads


class _LSTMMath:
    """Internally the gate blocks are ordered i, f, o, c (sigmoid gates first)."""

    n_states = 2
    n_saved = 3  # sigmoid(i, f, o), tanh candidate g, tanh(c)
    n_dpre = 1

    def __init__(self, units):
        self.units = units

    def context(self, ops, kernel, bias, recurrent_kernel):
        units = self.units
        kernel = _swap_last_blocks(kernel, units)
        recurrent_kernel = _swap_last_blocks(recurrent_kernel, units)
        bias = _swap_last_blocks(bias, units)
        stacked = tf.concat([kernel, recurrent_kernel], axis=0)
        return {
            "ops": ops,
            "WU_ifo": ops.weight(stacked[:, : 3 * units]),
            "WU_g": ops.weight(stacked[:, 3 * units :]),
            "b_ifo": ops.weight(bias[: 3 * units]),
            "b_g": ops.weight(bias[3 * units :]),
            "W": kernel,
            "U": recurrent_kernel,
        }

    backward_context = _SimpleRNNMath.backward_context
    precompute = _SimpleRNNMath.precompute

    def step(self, ctx, x_t, pre_t, states):
        h, c = states
        ops = ctx["ops"]
        xh = ops.join([x_t, h])
        ifo = ops.dense(xh, ctx["WU_ifo"], ctx["b_ifo"], "sigmoid")
        g = ops.dense(xh, ctx["WU_g"], ctx["b_g"], "tanh")
        i, f, o = tf.split(ifo, 3, axis=-1)
        c = f * c + i * g
        tanh_c = tf.tanh(c)
        return (o * tanh_c, c), (ifo, g, tanh_c)

    def factors(self, saved, current, previous, mask):
        ifo, g, tanh_c = saved
        i, f, o = tf.split(ifo, 3, axis=-1)
        # d pre-activations [i, f, o, c] = [dc, dc, dh, dc] * gate_factor
        gate_factor = tf.concat(
            [
                _sigmoid_grad(y=i, dy=g),
                _sigmoid_grad(y=f, dy=previous[1]),
                _sigmoid_grad(y=o, dy=tanh_c),
                _tanh_grad(y=g, dy=i),
            ],
            axis=-1,
        )
        dc_from_dh = _tanh_grad(y=tanh_c, dy=o)
        if mask is None:
            return gate_factor, dc_from_dh, f
        keep = 1.0 - mask
        return gate_factor * mask, dc_from_dh * mask, f * mask + keep, keep

    def back_step(self, ctx, factors, dh, carry):
        gate_factor, dc_from_dh, forget = factors[:3]
        dc = carry[0] + dh * dc_from_dh
        dpre = tf.concat([dc, dc, dh, dc], axis=-1) * gate_factor
        dh_prev = ctx["ops"].mm(dpre, ctx["U_t"])
        if len(factors) > 3:  # masked steps pass the gradient straight through
            dh_prev = dh_prev + dh * factors[3]
        return (dh_prev, dc * forget), (dpre,)

    weight_grads = _SimpleRNNMath.weight_grads

    def finish(self, grads):
        return tuple(_swap_last_blocks(g, self.units) for g in grads)


class _GRUMath:
    """`reset_after=False`: the reset gate scales `h` before the product with U_h."""

    n_states = 1
    n_saved = 2  # sigmoid(z, r), the candidate h~
    n_dpre = 2  # d[z, r] pre-activations, d candidate pre-activation

    def __init__(self, units):
        self.units = units

    def context(self, ops, kernel, bias, recurrent_kernel):
        units = self.units
        return {
            "ops": ops,
            "WU_zr": ops.weight(
                tf.concat([kernel[:, : 2 * units], recurrent_kernel[:, : 2 * units]], 0)
            ),
            "WU_h": ops.weight(
                tf.concat([kernel[:, 2 * units :], recurrent_kernel[:, 2 * units :]], 0)
            ),
            "b_zr": ops.weight(bias[: 2 * units]),
            "b_h": ops.weight(bias[2 * units :]),
            "W": kernel,
            "U": recurrent_kernel,
        }

    def backward_context(self, ctx):
        ops, units = ctx["ops"], self.units
        u_t = tf.transpose(ctx["U"])
        return {
            **ctx,
            "W_t": ops.weight(tf.transpose(ctx["W"])),
            "U_zr_t": ops.weight(u_t[: 2 * units]),
            "U_h_t": ops.weight(u_t[2 * units :]),
        }

    precompute = _SimpleRNNMath.precompute

    def step(self, ctx, x_t, pre_t, states):
        h = states[0]
        ops = ctx["ops"]
        zr = ops.dense(ops.join([x_t, h]), ctx["WU_zr"], ctx["b_zr"], "sigmoid")
        z, r = tf.split(zr, 2, axis=-1)
        candidate = ops.dense(ops.join([x_t, r * h]), ctx["WU_h"], ctx["b_h"], "tanh")
        return (h + z * (candidate - h),), (zr, candidate)

    def _common_factors(self, saved, previous, mask, reset_source):
        zr, candidate = saved[0], saved[1]
        z, r = tf.split(zr, 2, axis=-1)
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
        mm = ctx["ops"].mm
        d_candidate = dh * to_candidate
        d_reset_h = mm(d_candidate, ctx["U_h_t"])
        d_zr = tf.concat([dh * to_update, d_reset_h * to_reset], axis=-1)
        dh_prev = dh * to_prev + d_reset_h * r + mm(d_zr, ctx["U_zr_t"])
        return (dh_prev,), (d_zr, d_candidate)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d_zr, d_candidate = _rows(dpre[0]), _rows(dpre[1])
        d_x = tf.concat([d_zr, d_candidate], axis=-1)
        h_prev = _rows(previous[0])
        r = _rows(saved[0])[:, self.units :]
        d_recurrent = tf.concat(
            [ops.outer(h_prev, d_zr), ops.outer(r * h_prev, d_candidate)], axis=-1
        )
        grads = (ops.outer(x_rows, d_x), _sum_rows(d_x), d_recurrent)
        return grads, (ops.mm(d_x, ctx["W_t"]) if need_dx else None)

    finish = _SimpleRNNMath.finish


class _GRUResetAfterMath(_GRUMath):
    """`reset_after=True`: the reset gate scales `h U_h + b_h^h` (cuDNN placement).

    The z and r blocks of both biases act together; the input part of the
    candidate, `x W_h + b_h^x`, is projected for all steps before the loop.
    """

    n_saved = 3  # sigmoid(z, r), the candidate h~, and h U_h + b_h^h
    n_dpre = 2  # d[z, r, recurrent candidate part], d candidate pre-activation

    def context(self, ops, kernel, bias, recurrent_kernel, recurrent_bias):
        units = self.units
        return {
            "ops": ops,
            "WU_zr": ops.weight(
                tf.concat([kernel[:, : 2 * units], recurrent_kernel[:, : 2 * units]], 0)
            ),
            "b_zr": ops.weight(bias[: 2 * units] + recurrent_bias[: 2 * units]),
            "W_h": ops.weight(kernel[:, 2 * units :]),
            "b_xh": ops.weight(bias[2 * units :]),
            "U_h": ops.weight(recurrent_kernel[:, 2 * units :]),
            "b_hh": ops.weight(recurrent_bias[2 * units :]),
            "W": kernel,
            "U": recurrent_kernel,
        }

    backward_context = _SimpleRNNMath.backward_context

    def precompute(self, ctx, x):
        steps = tf.shape(x)[0]
        ops = ctx["ops"]
        projected = ops.dense(ops.join([_rows(x)]), ctx["W_h"], ctx["b_xh"])
        return (tf.reshape(projected, [steps, -1, self.units]),)

    def step(self, ctx, x_t, pre_t, states):
        h = states[0]
        ops = ctx["ops"]
        zr = ops.dense(ops.join([x_t, h]), ctx["WU_zr"], ctx["b_zr"], "sigmoid")
        z, r = tf.split(zr, 2, axis=-1)
        recurrent_h = ops.dense(ops.join([h]), ctx["U_h"], ctx["b_hh"])
        candidate = tf.tanh(pre_t[0] + r * recurrent_h)
        return (h + z * (candidate - h),), (zr, candidate, recurrent_h)

    def factors(self, saved, current, previous, mask):
        return self._common_factors(saved, previous, mask, saved[2])

    def back_step(self, ctx, factors, dh, carry):
        to_candidate, to_update, to_reset, r, to_prev = factors
        d_candidate = dh * to_candidate
        d_hp = tf.concat(
            [dh * to_update, d_candidate * to_reset, d_candidate * r], axis=-1
        )
        dh_prev = dh * to_prev + ctx["ops"].mm(d_hp, ctx["U_t"])
        return (dh_prev,), (d_hp, d_candidate)

    def weight_grads(self, ctx, x_rows, previous, saved, dpre, need_dx):
        ops = ctx["ops"]
        d_hp, d_candidate = _rows(dpre[0]), _rows(dpre[1])
        d_x = tf.concat([d_hp[:, : 2 * self.units], d_candidate], axis=-1)
        grads = (
            ops.outer(x_rows, d_x),
            _sum_rows(d_x),
            ops.outer(_rows(previous[0]), d_hp),
            _sum_rows(d_hp),
        )
        return grads, (ops.mm(d_x, ctx["W_t"]) if need_dx else None)


def make_math(kind, units, activation="tanh", reset_after=False):
    """The fused equations of a cell: `kind` in simple_rnn, lstm, gru."""
    if kind == "simple_rnn":
        return _SimpleRNNMath(units, activation)
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
    n_state_tas = math.n_states if stash else (1 if keep_sequence else 0)
    state_tas = tuple(
        tf.TensorArray(F32, size=total, element_shape=states[0].shape)
        for _ in range(n_state_tas)
    )
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
        state_tas = tuple(ta.write(t, v) for ta, v in zip(state_tas, new))
        saved_tas = tuple(ta.write(t, v) for ta, v in zip(saved_tas, saved))
        return t + 1, new, state_tas, saved_tas

    _, states, state_tas, saved_tas = tf.while_loop(
        lambda t, *_: t < total,
        body,
        (tf.constant(0), tuple(states), state_tas, saved_tas),
    )
    return states, state_tas, saved_tas


def _backward(math, ctx, x, initial, read_states, saved_tas, mask, chunk,
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
        current = read_states(index)
        first = read_states(tf.maximum(start - 1, 0)[None])
        previous = tuple(
            tf.concat([tf.where(start > 0, f[0], init)[None], cur[:-1]], axis=0)
            for cur, f, init in zip(current, first, initial)
        )
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
    return dx, math.finish(accumulators), carry


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

    def fused(x, params, initial):
        ctx = math.context(ops, *params)
        final, state_tas, saved_tas = _forward(math, ctx, x, initial, mask, True, True)
        outputs = tuple(final)
        sequence = None
        if return_sequences:
            sequence = state_tas[0].stack()
            outputs = (sequence,) + outputs

        def read_states(index):
            return tuple(
                tf.gather(sequence, index) if (i == 0 and sequence is not None)
                else ta.gather(index)
                for i, ta in enumerate(state_tas)
            )

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
                math, back_ctx, x, initial, read_states, saved_tas, mask, chunk,
                d_sequence, d_final, [p.shape for p in params], need_dx,
            )
            return dx, tuple(param_grads), tuple(d_initial)

        return outputs, grad

    if need_dx:
        @tf.custom_gradient
        def with_dx(x, *flat):
            outputs, grad = fused(x, flat[:n_params], flat[n_params:])

            def grad_all(*upstream):
                dx, d_params, d_initial = grad(*upstream)
                return (dx,) + d_params + d_initial

            return outputs, grad_all

        outputs = with_dx(x, *params, *states)
    else:
        @tf.custom_gradient
        def without_dx(*flat):
            outputs, grad = fused(x, flat[:n_params], flat[n_params:])

            def grad_all(*upstream):
                _, d_params, d_initial = grad(*upstream)
                return d_params + d_initial

            return outputs, grad_all

        outputs = without_dx(*params, *states)

    if return_sequences:
        return outputs[0], tuple(outputs[1 : 1 + n_states])
    return None, tuple(outputs[:n_states])
