"""Plain NumPy reference implementations of SimpleRNN, LSTM and GRU cells.

This module has two jobs:

1. It is the *oracle* that the test-suite compares the Keras layers in
   ``zoo.layers`` against, so it depends on NumPy only and is written to be
   obviously correct rather than fast.
2. It is teaching code: every forward pass is a readable loop over time, and
   every backward pass is the matching loop of backpropagation through time
   (BPTT), written out by hand.

Fixes relative to the textbook NumPy RNN
----------------------------------------
The NumPy RNN that circulates in tutorials has three well-known bugs. This
module avoids all of them:

* **Overwriting the hidden state.** The textbook loop does ``h = f(..., h)``
  and keeps only the last ``h``, so BPTT later has nothing to differentiate
  through. Here every step's state (and every gate activation) is stored in
  arrays of shape ``(batch, time, ...)`` inside the ``cache``.
* **Reading ``dh`` before it is defined.** The textbook backward loop uses
  the gradient flowing in from step ``t + 1`` before ever initialising it.
  Here the running state gradient is initialised explicitly from
  ``d_final_h`` (zeros if not given) before the loop starts.
* **Adding the hidden-state gradient to the output bias.** The textbook code
  accumulates ``dh`` into the gradient of an output-layer bias. The cells in
  this module have no output layer; the gradient of the cell's own bias is
  the sum over batch and time of the gradient of the *pre-activation*.

Weight layout
-------------
The weights use exactly the layout Keras stores, with ``H`` = ``units`` and
``k`` gate blocks of width ``H`` placed side by side along the last axis:

* ``kernel``            shape ``(input_dim, k*H)``  (input-to-hidden, ``W``)
* ``recurrent_kernel``  shape ``(H, k*H)``          (hidden-to-hidden, ``U``)
* ``bias``              shape ``(k*H,)``, or ``None`` for ``use_bias=False``.
  A GRU with ``reset_after=True`` instead takes a bias of shape ``(2, 3*H)``:
  row 0 is the input bias, row 1 the recurrent bias.

Every array is converted to float64 on entry and all arithmetic is done in
float64. Shapes: ``x`` is ``(B, T, I)``, states are ``(B, H)``, the output
sequence is ``(B, T, H)``.

Equations
---------
``sigma`` is the logistic sigmoid ``1 / (1 + exp(-a))`` and ``*`` is the
element-wise product; ``@`` is matrix multiplication.

SimpleRNN (``k = 1``)::

    h_t = act(x_t @ W + h_{t-1} @ U + b)        act in {tanh, relu, sigmoid, linear}

LSTM (``k = 4``, gate blocks in the order i, f, c, o)::

    i_t = sigma(x_t @ W_i + h_{t-1} @ U_i + b_i)     input gate
    f_t = sigma(x_t @ W_f + h_{t-1} @ U_f + b_f)     forget gate
    g_t = tanh (x_t @ W_c + h_{t-1} @ U_c + b_c)     candidate cell
    o_t = sigma(x_t @ W_o + h_{t-1} @ U_o + b_o)     output gate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

GRU (``k = 3``, gate blocks in the order z, r, h). Note the convention: in
this project ``z`` is the weight of the *new* candidate, i.e.
``h_t = (1 - z) * h_{t-1} + z * h~``. (Keras weights the *old* state by ``z``
instead; the two differ only by ``z <-> 1 - z``.)

``reset_after=False`` (reset gate applied before the recurrent matmul)::

    z_t = sigma(x_t @ W_z + h_{t-1} @ U_z + b_z)
    r_t = sigma(x_t @ W_r + h_{t-1} @ U_r + b_r)
    h~  = tanh (x_t @ W_h + (r_t * h_{t-1}) @ U_h + b_h)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~

``reset_after=True`` (reset gate applied after the recurrent matmul; the bias
is split into an input part ``bi`` and a recurrent part ``br``)::

    z_t = sigma(x_t @ W_z + bi_z + h_{t-1} @ U_z + br_z)
    r_t = sigma(x_t @ W_r + bi_r + h_{t-1} @ U_r + br_r)
    h~  = tanh (x_t @ W_h + bi_h + r_t * (h_{t-1} @ U_h + br_h))
    h_t = (1 - z_t) * h_{t-1} + z_t * h~

Masking
-------
Every forward function accepts ``mask`` of shape ``(B, T)`` (booleans; True
means "this step is real"). At a masked step (False) the state(s) are carried
over unchanged and the output at that step equals the carried hidden state,
so the output sequence simply repeats the previous hidden state (``h0`` if
the very first steps are masked). Callers who prefer zeros at masked steps
can multiply the outputs by the mask themselves.

Written with ``m`` = 1.0 for a real step and 0.0 for a masked one, every cell
computes its candidate state ``h_new`` as above and then::

    h_t = m * h_new + (1 - m) * h_{t-1}          (likewise for the LSTM's c_t)

which is also how the backward passes route gradients: through the cell for
real steps, straight to the previous step for masked ones.

Backward passes
---------------
Each ``*_backward`` function takes the gradient of a scalar loss with respect
to the output sequence (``d_outputs``, shape ``(B, T, H)``) and with respect to
the final state(s), and returns a dict with the gradients of that loss with
respect to ``x``, the initial state(s), ``kernel``, ``recurrent_kernel`` and
``bias``. Either incoming gradient may be ``None``, meaning zeros. The
gradient of ``bias`` is ``None`` when the forward pass had ``bias=None``.
Gradients for ``h0`` / ``c0`` are returned as arrays even when the forward pass
was given ``None`` (i.e. zeros) for them.

``numerical_gradient`` computes central finite differences and is what the
tests use to check the hand-written backward passes.
"""

import numpy as np

__all__ = [
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "numerical_gradient",
    "sigmoid",
]

_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def sigmoid(a):
    """Logistic sigmoid ``1 / (1 + exp(-a))``, without overflow for large ``|a|``.

    Uses the identity ``sigma(a) = (1 + tanh(a / 2)) / 2``.
    """
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(a, dtype=np.float64)))


def _activation(name, a):
    """Apply the activation called ``name`` to the pre-activation ``a``."""
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "sigmoid":
        return sigmoid(a)
    return a.copy()  # "linear"


def _activation_grad(name, a, y):
    """Derivative of activation ``name`` at pre-activation ``a`` (output ``y``)."""
    if name == "tanh":
        return 1.0 - y * y
    if name == "relu":
        return (a > 0.0).astype(np.float64)
    if name == "sigmoid":
        return y * (1.0 - y)
    return np.ones_like(a)  # "linear"


def _as_float64(name, value):
    """Convert ``value`` to a float64 ndarray, naming the argument on failure."""
    try:
        return np.array(value, dtype=np.float64)  # always a fresh copy
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} could not be converted to a float array: {err}") from None


def _check_shape(name, array, expected, meaning):
    """Raise a ValueError naming ``name`` unless ``array.shape == expected``."""
    expected = tuple(expected)
    if array.shape != expected:
        raise ValueError(
            f"{name} has shape {array.shape}, expected {expected} = {meaning}"
        )


def _validate_inputs(x, kernel, recurrent_kernel, gates):
    """Convert and validate ``x``, ``kernel`` and ``recurrent_kernel``.

    ``gates`` is the number ``k`` of gate blocks (1, 3 or 4). Returns the
    converted arrays and the sizes ``(B, T, I, H)``.
    """
    x = _as_float64("x", x)
    if x.ndim != 3:
        raise ValueError(
            f"x has shape {x.shape}, expected a 3-D array "
            "(batch, time, input_dim)"
        )
    batch, steps, input_dim = x.shape

    recurrent_kernel = _as_float64("recurrent_kernel", recurrent_kernel)
    if recurrent_kernel.ndim != 2:
        raise ValueError(
            f"recurrent_kernel has shape {recurrent_kernel.shape}, expected a 2-D "
            f"array (units, {gates}*units)"
        )
    rows = recurrent_kernel.shape[0]
    _check_shape(
        "recurrent_kernel", recurrent_kernel, (rows, gates * rows),
        f"(units, {gates}*units) with units={rows} taken from its first axis",
    )
    units = recurrent_kernel.shape[0]

    kernel = _as_float64("kernel", kernel)
    _check_shape(
        "kernel", kernel, (input_dim, gates * units),
        f"(input_dim, {gates}*units) with input_dim={input_dim} taken from x "
        f"and units={units} taken from recurrent_kernel",
    )
    return x, kernel, recurrent_kernel, (batch, steps, input_dim, units)


def _validate_state(name, state, batch, units):
    """Return ``state`` as float64 ``(B, H)``; ``None`` means zeros."""
    if state is None:
        return np.zeros((batch, units))
    state = _as_float64(name, state)
    _check_shape(name, state, (batch, units), "(batch, units)")
    return state


def _validate_bias(bias, expected, meaning):
    if bias is None:
        return None
    bias = _as_float64("bias", bias)
    _check_shape("bias", bias, expected, meaning)
    return bias


def _validate_mask(mask, batch, steps):
    """Return the mask as a float64 ``(B, T)`` array of 0.0 / 1.0 (all ones if None)."""
    if mask is None:
        return np.ones((batch, steps))
    mask = np.asarray(mask)
    _check_shape("mask", mask, (batch, steps), "(batch, time)")
    return mask.astype(bool).astype(np.float64)


def _validate_incoming(name, grad, shape, meaning):
    """Incoming gradient as float64 of ``shape``; ``None`` means zeros."""
    if grad is None:
        return np.zeros(shape)
    grad = _as_float64(name, grad)
    _check_shape(name, grad, shape, meaning)
    return grad


# ---------------------------------------------------------------------------
# SimpleRNN
# ---------------------------------------------------------------------------


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias=None, activation="tanh", mask=None):
    """Run a SimpleRNN over a batch of sequences.

    ``h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``

    Args:
        x: inputs, shape ``(B, T, I)``.
        h0: initial hidden state ``(B, H)``, or ``None`` for zeros.
        kernel: ``(I, H)``.
        recurrent_kernel: ``(H, H)``.
        bias: ``(H,)`` or ``None`` (no bias).
        activation: one of ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"linear"``.
        mask: optional ``(B, T)`` booleans; False steps carry the state over.

    Returns:
        ``(outputs, final_h, cache)``: ``outputs`` is ``(B, T, H)`` (the hidden
        state after every step), ``final_h`` is ``(B, H)``, and ``cache`` holds
        what :func:`simple_rnn_backward` needs.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(repr(a) for a in _ACTIVATIONS)}; "
            f"received {activation!r}"
        )
    x, kernel, recurrent_kernel, (batch, steps, _, units) = _validate_inputs(
        x, kernel, recurrent_kernel, gates=1
    )
    h0 = _validate_state("h0", h0, batch, units)
    bias = _validate_bias(bias, (units,), "(units,)")
    m = _validate_mask(mask, batch, steps)

    pre = np.zeros((batch, steps, units))      # pre-activation a_t
    new = np.zeros((batch, steps, units))      # act(a_t), before masking
    outputs = np.zeros((batch, steps, units))  # h_t for every t (never overwritten)

    h_prev = h0
    for t in range(steps):
        a = x[:, t] @ kernel + h_prev @ recurrent_kernel
        if bias is not None:
            a = a + bias
        h_new = _activation(activation, a)
        keep = m[:, t, None]
        h_t = keep * h_new + (1.0 - keep) * h_prev
        pre[:, t], new[:, t], outputs[:, t] = a, h_new, h_t
        h_prev = h_t

    cache = {
        "x": x, "h0": h0, "kernel": kernel, "recurrent_kernel": recurrent_kernel,
        "bias": bias, "activation": activation, "mask": m,
        "pre": pre, "new": new, "outputs": outputs,
    }
    return outputs.copy(), h_prev.copy(), cache


def simple_rnn_backward(d_outputs, d_final_h, cache):
    """Backpropagation through time for :func:`simple_rnn_forward`.

    Args:
        d_outputs: gradient of the loss w.r.t. ``outputs``, ``(B, T, H)``, or
            ``None`` for zeros.
        d_final_h: gradient w.r.t. ``final_h``, ``(B, H)``, or ``None``.
        cache: the third value returned by :func:`simple_rnn_forward`.

    Returns:
        dict with keys ``'x'``, ``'h0'``, ``'kernel'``, ``'recurrent_kernel'``
        and ``'bias'`` (``None`` if the forward pass had no bias).
    """
    x, h0, m = cache["x"], cache["h0"], cache["mask"]
    kernel, recurrent_kernel, bias = cache["kernel"], cache["recurrent_kernel"], cache["bias"]
    outputs = cache["outputs"]
    batch, steps, _ = x.shape
    units = h0.shape[1]

    d_outputs = _validate_incoming("d_outputs", d_outputs, (batch, steps, units), "(batch, time, units)")
    # The running gradient w.r.t. h_t, defined *before* the loop starts.
    dh = _validate_incoming("d_final_h", d_final_h, (batch, units), "(batch, units)")

    dx = np.zeros_like(x)
    dkernel = np.zeros_like(kernel)
    drecurrent = np.zeros_like(recurrent_kernel)
    dbias = None if bias is None else np.zeros_like(bias)

    for t in reversed(range(steps)):
        h_prev = h0 if t == 0 else outputs[:, t - 1]
        keep = m[:, t, None]
        dh = dh + d_outputs[:, t]                  # h_t feeds the output and step t+1
        da = keep * dh * _activation_grad(cache["activation"], cache["pre"][:, t], cache["new"][:, t])
        dkernel += x[:, t].T @ da
        drecurrent += h_prev.T @ da
        if dbias is not None:
            dbias += da.sum(axis=0)
        dx[:, t] = da @ kernel.T
        dh = da @ recurrent_kernel.T + (1.0 - keep) * dh

    return {"x": dx, "h0": dh, "kernel": dkernel, "recurrent_kernel": drecurrent, "bias": dbias}


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias=None, mask=None):
    """Run an LSTM over a batch of sequences (gate order i, f, c, o).

    Args:
        x: inputs, shape ``(B, T, I)``.
        h0, c0: initial hidden and cell states ``(B, H)``, or ``None`` for zeros.
        kernel: ``(I, 4H)``.
        recurrent_kernel: ``(H, 4H)``.
        bias: ``(4H,)`` or ``None``.
        mask: optional ``(B, T)`` booleans; False steps carry both states over.

    Returns:
        ``(outputs, (final_h, final_c), cache)`` with ``outputs`` of shape
        ``(B, T, H)``.
    """
    x, kernel, recurrent_kernel, (batch, steps, _, units) = _validate_inputs(
        x, kernel, recurrent_kernel, gates=4
    )
    h0 = _validate_state("h0", h0, batch, units)
    c0 = _validate_state("c0", c0, batch, units)
    bias = _validate_bias(bias, (4 * units,), "(4*units,)")
    m = _validate_mask(mask, batch, steps)

    H = units
    gates = np.zeros((batch, steps, 4 * H))   # activated i, f, g, o side by side
    c_new_all = np.zeros((batch, steps, H))   # c_t before masking
    outputs = np.zeros((batch, steps, H))     # h_t
    cells = np.zeros((batch, steps, H))       # c_t

    h_prev, c_prev = h0, c0
    for t in range(steps):
        a = x[:, t] @ kernel + h_prev @ recurrent_kernel
        if bias is not None:
            a = a + bias
        i = sigmoid(a[:, 0 * H:1 * H])
        f = sigmoid(a[:, 1 * H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:4 * H])
        c_new = f * c_prev + i * g
        h_new = o * np.tanh(c_new)

        keep = m[:, t, None]
        c_t = keep * c_new + (1.0 - keep) * c_prev
        h_t = keep * h_new + (1.0 - keep) * h_prev

        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        c_new_all[:, t], outputs[:, t], cells[:, t] = c_new, h_t, c_t
        h_prev, c_prev = h_t, c_t

    cache = {
        "x": x, "h0": h0, "c0": c0, "kernel": kernel,
        "recurrent_kernel": recurrent_kernel, "bias": bias, "mask": m,
        "gates": gates, "c_new": c_new_all, "outputs": outputs, "cells": cells,
    }
    return outputs.copy(), (h_prev.copy(), c_prev.copy()), cache


def lstm_backward(d_outputs, d_final_states, cache):
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        d_outputs: gradient w.r.t. ``outputs`` ``(B, T, H)``, or ``None``.
        d_final_states: ``(d_final_h, d_final_c)``; either item (or the whole
            argument) may be ``None``, meaning zeros.
        cache: the third value returned by :func:`lstm_forward`.

    Returns:
        dict with keys ``'x'``, ``'h0'``, ``'c0'``, ``'kernel'``,
        ``'recurrent_kernel'`` and ``'bias'``.
    """
    x, h0, c0, m = cache["x"], cache["h0"], cache["c0"], cache["mask"]
    kernel, recurrent_kernel, bias = cache["kernel"], cache["recurrent_kernel"], cache["bias"]
    outputs, cells = cache["outputs"], cache["cells"]
    batch, steps, _ = x.shape
    H = h0.shape[1]

    if d_final_states is None:
        d_final_states = (None, None)
    if len(d_final_states) != 2:
        raise ValueError(
            "d_final_states must be a pair (d_final_h, d_final_c); "
            f"received {len(d_final_states)} items"
        )
    d_outputs = _validate_incoming("d_outputs", d_outputs, (batch, steps, H), "(batch, time, units)")
    dh = _validate_incoming("d_final_states[0] (d_final_h)", d_final_states[0], (batch, H), "(batch, units)")
    dc = _validate_incoming("d_final_states[1] (d_final_c)", d_final_states[1], (batch, H), "(batch, units)")

    dx = np.zeros_like(x)
    dkernel = np.zeros_like(kernel)
    drecurrent = np.zeros_like(recurrent_kernel)
    dbias = None if bias is None else np.zeros_like(bias)

    for t in reversed(range(steps)):
        h_prev = h0 if t == 0 else outputs[:, t - 1]
        c_prev = c0 if t == 0 else cells[:, t - 1]
        keep = m[:, t, None]
        i, f, g, o = np.split(cache["gates"][:, t], 4, axis=1)
        tanh_c = np.tanh(cache["c_new"][:, t])

        dh = dh + d_outputs[:, t]
        dh_new = keep * dh                          # only real steps reach the cell
        dc_new = keep * dc + dh_new * o * (1.0 - tanh_c ** 2)

        # Gradients w.r.t. the gate pre-activations.
        da = np.concatenate(
            [
                dc_new * g * i * (1.0 - i),         # input gate
                dc_new * c_prev * f * (1.0 - f),    # forget gate
                dc_new * i * (1.0 - g ** 2),        # candidate
                dh_new * tanh_c * o * (1.0 - o),    # output gate
            ],
            axis=1,
        )
        dkernel += x[:, t].T @ da
        drecurrent += h_prev.T @ da
        if dbias is not None:
            dbias += da.sum(axis=0)
        dx[:, t] = da @ kernel.T

        dh = da @ recurrent_kernel.T + (1.0 - keep) * dh
        dc = dc_new * f + (1.0 - keep) * dc

    return {
        "x": dx, "h0": dh, "c0": dc, "kernel": dkernel,
        "recurrent_kernel": drecurrent, "bias": dbias,
    }


# ---------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------


def gru_forward(x, h0, kernel, recurrent_kernel, bias=None, reset_after=False, mask=None):
    """Run a GRU over a batch of sequences (gate order z, r, h).

    Convention: ``h_t = (1 - z) * h_{t-1} + z * h~`` (see the module
    docstring; Keras swaps the roles of ``z`` and ``1 - z``).

    Args:
        x: inputs, shape ``(B, T, I)``.
        h0: initial hidden state ``(B, H)``, or ``None`` for zeros.
        kernel: ``(I, 3H)``.
        recurrent_kernel: ``(H, 3H)``.
        bias: ``None``; else ``(3H,)`` when ``reset_after`` is False, or
            ``(2, 3H)`` (row 0 input bias, row 1 recurrent bias) when True.
        reset_after: apply the reset gate after the recurrent matmul.
        mask: optional ``(B, T)`` booleans; False steps carry the state over.

    Returns:
        ``(outputs, final_h, cache)`` with ``outputs`` of shape ``(B, T, H)``.
    """
    x, kernel, recurrent_kernel, (batch, steps, _, units) = _validate_inputs(
        x, kernel, recurrent_kernel, gates=3
    )
    H = units
    h0 = _validate_state("h0", h0, batch, units)
    if reset_after:
        bias = _validate_bias(bias, (2, 3 * H), "(2, 3*units) for reset_after=True: [input bias; recurrent bias]")
    else:
        bias = _validate_bias(bias, (3 * H,), "(3*units,) for reset_after=False")
    m = _validate_mask(mask, batch, steps)

    if bias is None:
        input_bias = recurrent_bias = np.zeros(3 * H)
    elif reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None  # not used for reset_after=False

    z_all = np.zeros((batch, steps, H))
    r_all = np.zeros((batch, steps, H))
    cand_all = np.zeros((batch, steps, H))      # h~
    rec_h_all = np.zeros((batch, steps, H))     # reset_after=True: h_{t-1} @ U_h + br_h
    outputs = np.zeros((batch, steps, H))

    U_zr, U_h = recurrent_kernel[:, :2 * H], recurrent_kernel[:, 2 * H:]
    h_prev = h0
    for t in range(steps):
        xa = x[:, t] @ kernel + input_bias     # input contribution, all 3 blocks
        if reset_after:
            ra = h_prev @ recurrent_kernel + recurrent_bias
            z = sigmoid(xa[:, :H] + ra[:, :H])
            r = sigmoid(xa[:, H:2 * H] + ra[:, H:2 * H])
            rec_h = ra[:, 2 * H:]
            cand = np.tanh(xa[:, 2 * H:] + r * rec_h)
            rec_h_all[:, t] = rec_h
        else:
            ra = h_prev @ U_zr
            z = sigmoid(xa[:, :H] + ra[:, :H])
            r = sigmoid(xa[:, H:2 * H] + ra[:, H:])
            cand = np.tanh(xa[:, 2 * H:] + (r * h_prev) @ U_h)
        h_new = (1.0 - z) * h_prev + z * cand

        keep = m[:, t, None]
        h_t = keep * h_new + (1.0 - keep) * h_prev
        z_all[:, t], r_all[:, t], cand_all[:, t], outputs[:, t] = z, r, cand, h_t
        h_prev = h_t

    cache = {
        "x": x, "h0": h0, "kernel": kernel, "recurrent_kernel": recurrent_kernel,
        "bias": bias, "reset_after": bool(reset_after), "mask": m,
        "z": z_all, "r": r_all, "cand": cand_all, "rec_h": rec_h_all, "outputs": outputs,
    }
    return outputs.copy(), h_prev.copy(), cache


def gru_backward(d_outputs, d_final_h, cache):
    """Backpropagation through time for :func:`gru_forward`.

    Args:
        d_outputs: gradient w.r.t. ``outputs`` ``(B, T, H)``, or ``None``.
        d_final_h: gradient w.r.t. ``final_h`` ``(B, H)``, or ``None``.
        cache: the third value returned by :func:`gru_forward`.

    Returns:
        dict with keys ``'x'``, ``'h0'``, ``'kernel'``, ``'recurrent_kernel'``
        and ``'bias'`` (same shape as the forward ``bias``, or ``None``).
    """
    x, h0, m = cache["x"], cache["h0"], cache["mask"]
    kernel, recurrent_kernel, bias = cache["kernel"], cache["recurrent_kernel"], cache["bias"]
    reset_after, outputs = cache["reset_after"], cache["outputs"]
    batch, steps, _ = x.shape
    H = h0.shape[1]

    d_outputs = _validate_incoming("d_outputs", d_outputs, (batch, steps, H), "(batch, time, units)")
    dh = _validate_incoming("d_final_h", d_final_h, (batch, H), "(batch, units)")

    dx = np.zeros_like(x)
    dkernel = np.zeros_like(kernel)
    drecurrent = np.zeros_like(recurrent_kernel)
    dbias = None if bias is None else np.zeros_like(bias)
    U_zr, U_h = recurrent_kernel[:, :2 * H], recurrent_kernel[:, 2 * H:]

    for t in reversed(range(steps)):
        h_prev = h0 if t == 0 else outputs[:, t - 1]
        keep = m[:, t, None]
        z, r, cand = cache["z"][:, t], cache["r"][:, t], cache["cand"][:, t]

        dh = dh + d_outputs[:, t]
        dh_new = keep * dh
        # h_new = (1 - z) * h_prev + z * cand
        dz = dh_new * (cand - h_prev)
        dcand = dh_new * z
        dh_prev = dh_new * (1.0 - z) + (1.0 - keep) * dh

        da_z = dz * z * (1.0 - z)
        da_h = dcand * (1.0 - cand ** 2)          # pre-activation of h~

        if reset_after:
            rec_h = cache["rec_h"][:, t]
            da_r = da_h * rec_h * r * (1.0 - r)
            # Gradient w.r.t. the recurrent pre-activations h_prev @ U + br.
            d_rec = np.concatenate([da_z, da_r, da_h * r], axis=1)
            drecurrent += h_prev.T @ d_rec
            dh_prev = dh_prev + d_rec @ recurrent_kernel.T
            if dbias is not None:
                dbias[1] += d_rec.sum(axis=0)
        else:
            d_rh = da_h @ U_h.T                    # gradient w.r.t. r * h_prev
            da_r = d_rh * h_prev * r * (1.0 - r)
            d_zr = np.concatenate([da_z, da_r], axis=1)
            drecurrent[:, :2 * H] += h_prev.T @ d_zr
            drecurrent[:, 2 * H:] += (r * h_prev).T @ da_h
            dh_prev = dh_prev + d_zr @ U_zr.T + d_rh * r

        # Gradient w.r.t. the input pre-activations x_t @ W + bi.
        d_in = np.concatenate([da_z, da_r, da_h], axis=1)
        dkernel += x[:, t].T @ d_in
        dx[:, t] = d_in @ kernel.T
        if dbias is not None:
            if reset_after:
                dbias[0] += d_in.sum(axis=0)
            else:
                dbias += d_in.sum(axis=0)
        dh = dh_prev

    return {"x": dx, "h0": dh, "kernel": dkernel, "recurrent_kernel": drecurrent, "bias": dbias}


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------


def numerical_gradient(f, array, eps=1e-6):
    """Central-difference estimate of the gradient of ``f()`` w.r.t. ``array``.

    ``f`` takes no arguments and returns a scalar; it must read ``array``
    (typically through a closure), which this function perturbs *in place*,
    one element at a time, as ``(f(a + eps) - f(a - eps)) / (2 * eps)``.
    Every element is restored afterwards. ``array`` must therefore be a
    writeable float64 ndarray (a float32 array would swallow the small
    perturbations).

    Returns an array of the same shape as ``array``.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        raise TypeError(
            "numerical_gradient needs a float64 numpy array to perturb in place; "
            f"received {type(array).__name__}"
            + (f" of dtype {array.dtype}" if isinstance(array, np.ndarray) else "")
        )
    grad = np.zeros_like(array)
    flat = array.reshape(-1)  # a view for contiguous arrays; checked below
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient needs a contiguous array")
    grad_flat = grad.reshape(-1)
    for index in range(flat.size):
        original = flat[index]
        flat[index] = original + eps
        plus = float(f())
        flat[index] = original - eps
        minus = float(f())
        flat[index] = original
        grad_flat[index] = (plus - minus) / (2.0 * eps)
    return grad
