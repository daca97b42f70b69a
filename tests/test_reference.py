"""Tests for the NumPy reference cells in ``zoo.reference``.

These tests need NumPy only. They check the hand-written backward passes
against finite differences, check the forward passes against values that can
be worked out by hand, and check masking and argument validation.
"""

import math

import numpy as np
import pytest

from zoo import reference as ref

B, T, I, H = 2, 4, 3, 5

# Masks of shape (B, T); 1 = real step, 0 = masked step.
MASKS = {
    "no_mask": None,
    "middle": np.array([[1, 1, 0, 1], [1, 0, 0, 1]], dtype=bool),
    "start": np.array([[0, 1, 1, 1], [0, 0, 1, 1]], dtype=bool),
    "end_and_all": np.array([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=bool),
}

# (cell, options) combinations exercised by the generic tests.
CELLS = [
    pytest.param("simple_rnn", {"activation": "tanh"}, id="simple_rnn-tanh"),
    pytest.param("simple_rnn", {"activation": "relu"}, id="simple_rnn-relu"),
    pytest.param("simple_rnn", {"activation": "sigmoid"}, id="simple_rnn-sigmoid"),
    pytest.param("simple_rnn", {"activation": "linear"}, id="simple_rnn-linear"),
    pytest.param("lstm", {}, id="lstm"),
    pytest.param("gru", {"reset_after": False}, id="gru-reset_before"),
    pytest.param("gru", {"reset_after": True}, id="gru-reset_after"),
]

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def make_params(cell, options, use_bias=True, seed=0, units=H):
    """Random float64 inputs, states and weights for ``cell``."""
    rng = np.random.default_rng(seed)
    k = GATES[cell]
    params = {
        "x": rng.normal(size=(B, T, I)),
        "h0": rng.normal(scale=0.5, size=(B, units)),
        "kernel": rng.normal(scale=0.6, size=(I, k * units)),
        "recurrent_kernel": rng.normal(scale=0.6, size=(units, k * units)),
        "bias": None,
    }
    if cell == "lstm":
        params["c0"] = rng.normal(scale=0.5, size=(B, units))
    if use_bias:
        if cell == "gru" and options.get("reset_after"):
            params["bias"] = rng.normal(scale=0.3, size=(2, k * units))
        else:
            params["bias"] = rng.normal(scale=0.3, size=(k * units,))
    return params


def forward(cell, params, options, mask=None):
    """Run the forward pass of ``cell``; return (outputs, final_states tuple, cache)."""
    p = params
    if cell == "simple_rnn":
        out, h, cache = ref.simple_rnn_forward(
            p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["bias"],
            activation=options.get("activation", "tanh"), mask=mask,
        )
        return out, (h,), cache
    if cell == "lstm":
        out, (h, c), cache = ref.lstm_forward(
            p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"], p["bias"], mask=mask,
        )
        return out, (h, c), cache
    out, h, cache = ref.gru_forward(
        p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["bias"],
        reset_after=options.get("reset_after", False), mask=mask,
    )
    return out, (h,), cache


def backward(cell, d_outputs, d_finals, cache):
    if cell == "simple_rnn":
        return ref.simple_rnn_backward(d_outputs, d_finals[0], cache)
    if cell == "lstm":
        return ref.lstm_backward(d_outputs, d_finals, cache)
    return ref.gru_backward(d_outputs, d_finals[0], cache)


def state_keys(cell):
    return ("h0", "c0") if cell == "lstm" else ("h0",)


def relative_error(a, b):
    """||a - b|| / (||a|| + ||b||), defined as 0 when both are zero."""
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    if denominator == 0.0:
        return 0.0
    return np.linalg.norm(a - b) / denominator


# ---------------------------------------------------------------------------
# Finite-difference gradient checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("cell, options", CELLS)
def test_gradients_match_finite_differences(cell, options, use_bias, mask_name):
    mask = MASKS[mask_name]
    params = make_params(cell, options, use_bias=use_bias, seed=1)
    rng = np.random.default_rng(2)

    # Loss = sum(outputs * w_out) + sum_s sum(final_s * w_s): every output and
    # every final state contributes with a random, non-symmetric weight.
    w_out = rng.normal(size=(B, T, H))
    w_finals = tuple(rng.normal(size=(B, H)) for _ in state_keys(cell))

    def loss():
        outputs, finals, _ = forward(cell, params, options, mask)
        return np.sum(outputs * w_out) + sum(np.sum(f * w) for f, w in zip(finals, w_finals))

    _, _, cache = forward(cell, params, options, mask)
    if options.get("activation") == "relu":
        # Finite differences are only meaningful away from relu's kink.
        assert np.min(np.abs(cache["pre"])) > 1e-4
    grads = backward(cell, w_out, w_finals, cache)

    keys = ("x",) + state_keys(cell) + ("kernel", "recurrent_kernel", "bias")
    assert set(grads) == set(keys)
    for key in keys:
        if params[key] is None:
            assert grads[key] is None, key
            continue
        numeric = ref.numerical_gradient(loss, params[key])
        assert grads[key].shape == params[key].shape, key
        assert grads[key].dtype == np.float64, key
        err = relative_error(grads[key], numeric)
        assert err < 1e-7, f"{key}: relative error {err:.3g}"
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("cell, options", CELLS)
def test_incoming_gradients_may_be_none(cell, options):
    """Each incoming gradient may be None; the result is then as for zeros."""
    params = make_params(cell, options, seed=3)
    mask = MASKS["middle"]
    _, _, cache = forward(cell, params, options, mask)
    rng = np.random.default_rng(4)
    d_out = rng.normal(size=(B, T, H))
    d_finals = tuple(rng.normal(size=(B, H)) for _ in state_keys(cell))
    zeros_finals = tuple(np.zeros((B, H)) for _ in state_keys(cell))

    only_out = backward(cell, d_out, (None,) * len(d_finals), cache)
    only_out_zeros = backward(cell, d_out, zeros_finals, cache)
    only_finals = backward(cell, None, d_finals, cache)
    only_finals_zeros = backward(cell, np.zeros((B, T, H)), d_finals, cache)
    both = backward(cell, d_out, d_finals, cache)
    nothing = backward(cell, None, (None,) * len(d_finals), cache)

    for key in both:
        np.testing.assert_array_equal(only_out[key], only_out_zeros[key])
        np.testing.assert_array_equal(only_finals[key], only_finals_zeros[key])
        # The backward pass is linear in the incoming gradients.
        np.testing.assert_allclose(both[key], only_out[key] + only_finals[key], atol=1e-12)
        assert np.all(nothing[key] == 0.0)


def test_lstm_backward_accepts_none_for_all_final_states():
    params = make_params("lstm", {}, seed=5)
    _, _, cache = forward("lstm", params, {})
    d_out = np.ones((B, T, H))
    a = ref.lstm_backward(d_out, None, cache)
    b = ref.lstm_backward(d_out, (None, None), cache)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("cell, options", CELLS)
def test_none_initial_states_mean_zeros_and_still_get_gradients(cell, options):
    params = make_params(cell, options, seed=6)
    zero_params = dict(params)
    none_params = dict(params)
    for key in state_keys(cell):
        zero_params[key] = np.zeros((B, H))
        none_params[key] = None

    out_z, fin_z, cache_z = forward(cell, zero_params, options)
    out_n, fin_n, cache_n = forward(cell, none_params, options)
    np.testing.assert_array_equal(out_z, out_n)
    for a, b in zip(fin_z, fin_n):
        np.testing.assert_array_equal(a, b)

    d_out = np.random.default_rng(7).normal(size=(B, T, H))
    grads_z = backward(cell, d_out, (None,) * len(fin_z), cache_z)
    grads_n = backward(cell, d_out, (None,) * len(fin_n), cache_n)
    for key in state_keys(cell):
        assert isinstance(grads_n[key], np.ndarray) and grads_n[key].shape == (B, H)
        np.testing.assert_array_equal(grads_n[key], grads_z[key])


@pytest.mark.parametrize("cell, options", CELLS)
def test_backward_does_not_modify_cache(cell, options):
    params = make_params(cell, options, seed=8)
    _, finals, cache = forward(cell, params, options, MASKS["middle"])
    d_out = np.ones((B, T, H))
    d_finals = tuple(np.ones((B, H)) for _ in finals)
    first = backward(cell, d_out, d_finals, cache)
    second = backward(cell, d_out, d_finals, cache)
    for key in first:
        if first[key] is not None:
            np.testing.assert_array_equal(first[key], second[key])


# ---------------------------------------------------------------------------
# Hand-checkable forward values
# ---------------------------------------------------------------------------


def _activation(name, a):
    return {
        "tanh": np.tanh,
        "relu": lambda v: np.maximum(v, 0.0),
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "linear": lambda v: v,
    }[name](a)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_simple_rnn_two_steps_by_hand(activation):
    params = make_params("simple_rnn", {}, seed=9)
    x, h0, W, U, b = (params[k] for k in ("x", "h0", "kernel", "recurrent_kernel", "bias"))
    outputs, final_h, _ = ref.simple_rnn_forward(x[:, :2], h0, W, U, b, activation=activation)
    h1 = _activation(activation, x[:, 0] @ W + h0 @ U + b)
    h2 = _activation(activation, x[:, 1] @ W + h1 @ U + b)
    np.testing.assert_allclose(outputs[:, 0], h1, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(outputs[:, 1], h2, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(final_h, outputs[:, -1])


def test_simple_rnn_scalar_step_by_hand():
    # One unit, one input: h1 = tanh(2 * 0.5 + 1 * (-0.25) + 0.1) = tanh(0.85).
    x = np.array([[[2.0]]])
    outputs, final_h, _ = ref.simple_rnn_forward(
        x, np.array([[1.0]]), np.array([[0.5]]), np.array([[-0.25]]), np.array([0.1])
    )
    assert outputs.shape == (1, 1, 1)
    assert final_h[0, 0] == pytest.approx(math.tanh(0.85), abs=1e-15)


@pytest.mark.parametrize("use_bias", [True, False], ids=["zero_bias", "no_bias"])
def test_lstm_zero_weights_closed_form(use_bias):
    # All weights zero: i = f = o = sigma(0) = 1/2 and g = tanh(0) = 0, so
    # c_t = c0 / 2**t and h_t = tanh(c_t) / 2, whatever x and h0 are.
    rng = np.random.default_rng(10)
    x = rng.normal(size=(B, T, I))
    h0 = rng.normal(size=(B, H))
    c0 = rng.normal(size=(B, H))
    bias = np.zeros(4 * H) if use_bias else None
    outputs, (h, c), _ = ref.lstm_forward(
        x, h0, c0, np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), bias
    )
    for t in range(T):
        c_t = c0 * 0.5 ** (t + 1)
        np.testing.assert_allclose(outputs[:, t], 0.5 * np.tanh(c_t), rtol=1e-14)
    np.testing.assert_allclose(c, c0 / 2 ** T, rtol=1e-14)
    np.testing.assert_array_equal(h, outputs[:, -1])


def test_lstm_single_unit_step_by_hand():
    # x = 1, h0 = 0, c0 = 1, one unit. Pre-activations (i, f, c, o) are
    # (ln 3, 0, ln 2, ln 3), so i = o = 3/4, f = 1/2, g = tanh(ln 2) = 3/5:
    #   c1 = 1/2 * 1 + 3/4 * 3/5 = 0.95,   h1 = 3/4 * tanh(0.95).
    kernel = np.array([[math.log(3.0), 0.0, math.log(2.0), math.log(3.0)]])
    outputs, (h, c), _ = ref.lstm_forward(
        np.ones((1, 1, 1)), np.zeros((1, 1)), np.ones((1, 1)),
        kernel, np.zeros((1, 4)), np.zeros(4),
    )
    assert c[0, 0] == pytest.approx(0.95, abs=1e-14)
    assert h[0, 0] == pytest.approx(0.75 * math.tanh(0.95), abs=1e-14)
    assert outputs[0, 0, 0] == h[0, 0]


def test_lstm_gate_order_is_i_f_c_o():
    # Only the candidate block of the bias is non-zero: with zero states the
    # first step gives c1 = sigma(0) * tanh(b_c) and h1 = sigma(0) * tanh(c1).
    bias = np.zeros(4 * H)
    bias[2 * H:3 * H] = 0.7
    _, (h, c), _ = ref.lstm_forward(
        np.zeros((1, 1, I)), None, None, np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), bias
    )
    np.testing.assert_allclose(c, 0.5 * np.tanh(0.7) * np.ones((1, H)), rtol=1e-14)
    np.testing.assert_allclose(h, 0.5 * np.tanh(c), rtol=1e-14)


def _gru_bias(reset_after, z=0.0, r=0.0, h_in=None, h_rec=None, rng=None):
    """A GRU bias whose z and r blocks are the constants ``z`` and ``r``."""
    rng = rng or np.random.default_rng(11)
    h_in = rng.normal(size=H) if h_in is None else h_in
    if reset_after:
        h_rec = rng.normal(size=H) if h_rec is None else h_rec
        rows = np.zeros((2, 3 * H))
        rows[0, :H], rows[0, H:2 * H], rows[0, 2 * H:] = z, r, h_in
        rows[1, 2 * H:] = h_rec
        return rows
    flat = np.zeros(3 * H)
    flat[:H], flat[H:2 * H], flat[2 * H:] = z, r, h_in
    return flat


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_update_gate_closed_keeps_h0(reset_after):
    # z = sigma(-60) == 0 to double precision: h_t = h_{t-1} = h0 for all t.
    params = make_params("gru", {"reset_after": reset_after}, seed=12)
    bias = _gru_bias(reset_after, z=-60.0)
    outputs, final_h, _ = ref.gru_forward(
        params["x"], params["h0"], params["kernel"] * 0.1, params["recurrent_kernel"] * 0.1,
        bias, reset_after=reset_after,
    )
    for t in range(T):
        np.testing.assert_allclose(outputs[:, t], params["h0"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(final_h, params["h0"], rtol=0, atol=1e-14)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reset", ["closed", "open"])
def test_gru_update_gate_open_gives_candidate(reset_after, reset):
    # z = 1 so h1 = h~. With r = 0 the candidate ignores h0's recurrent term;
    # with r = 1 it is tanh of the full input and recurrent sums.
    rng = np.random.default_rng(13)
    x = rng.normal(size=(B, 1, I))
    h0 = rng.normal(size=(B, H))
    W = rng.normal(size=(I, 3 * H))
    U = rng.normal(size=(H, 3 * H))
    # Keep the z and r columns out of play so the bias alone sets the gates.
    W[:, :2 * H] = 0.0
    U[:, :2 * H] = 0.0
    b_in, b_rec = rng.normal(size=H), rng.normal(size=H)
    r_value = -60.0 if reset == "closed" else 60.0
    bias = _gru_bias(reset_after, z=60.0, r=r_value, h_in=b_in, h_rec=b_rec)

    _, h1, _ = ref.gru_forward(x, h0, W, U, bias, reset_after=reset_after)

    W_h, U_h = W[:, 2 * H:], U[:, 2 * H:]
    expected = x[:, 0] @ W_h + b_in
    if reset == "open":
        expected = expected + h0 @ U_h + (b_rec if reset_after else 0.0)
    np.testing.assert_allclose(h1, np.tanh(expected), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_zero_weights_halve_the_state(reset_after):
    # All weights zero: z = r = 1/2 and h~ = tanh(0) = 0, so h_t = h0 / 2**t.
    rng = np.random.default_rng(14)
    h0 = rng.normal(size=(B, H))
    outputs, final_h, _ = ref.gru_forward(
        rng.normal(size=(B, T, I)), h0, np.zeros((I, 3 * H)), np.zeros((H, 3 * H)),
        None, reset_after=reset_after,
    )
    for t in range(T):
        np.testing.assert_allclose(outputs[:, t], h0 * 0.5 ** (t + 1), rtol=1e-14)
    np.testing.assert_allclose(final_h, h0 / 2 ** T, rtol=1e-14)


def test_gru_reset_variants_agree_for_a_single_unit():
    # With one unit, (r * h) * U == r * (h * U), so reset_after only changes
    # where the recurrent bias sits; with a zero recurrent bias the two agree.
    rng = np.random.default_rng(15)
    x = rng.normal(size=(B, T, I))
    h0 = rng.normal(size=(B, 1))
    W, U, b = rng.normal(size=(I, 3)), rng.normal(size=(1, 3)), rng.normal(size=3)
    mask = MASKS["middle"]
    out_before, h_before, cache_before = ref.gru_forward(x, h0, W, U, b, reset_after=False, mask=mask)
    out_after, h_after, cache_after = ref.gru_forward(
        x, h0, W, U, np.stack([b, np.zeros(3)]), reset_after=True, mask=mask
    )
    np.testing.assert_allclose(out_before, out_after, rtol=1e-13)
    np.testing.assert_allclose(h_before, h_after, rtol=1e-13)

    d_out = rng.normal(size=(B, T, 1))
    g_before = ref.gru_backward(d_out, None, cache_before)
    g_after = ref.gru_backward(d_out, None, cache_after)
    for key in ("x", "h0", "kernel", "recurrent_kernel"):
        np.testing.assert_allclose(g_before[key], g_after[key], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_before["bias"], g_after["bias"][0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell, options", CELLS)
def test_float32_inputs_are_computed_in_float64(cell, options):
    params = make_params(cell, options, seed=16)
    params32 = {k: None if v is None else v.astype(np.float32) for k, v in params.items()}
    out32, finals32, cache = forward(cell, params32, options)
    out64, finals64, _ = forward(cell, {k: None if v is None else v.astype(np.float32).astype(np.float64)
                                        for k, v in params.items()}, options)
    assert out32.dtype == np.float64
    np.testing.assert_array_equal(out32, out64)
    for a, b in zip(finals32, finals64):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    grads = backward(cell, np.ones((B, T, H), dtype=np.float32), (None,) * len(finals32), cache)
    assert all(g.dtype == np.float64 for g in grads.values() if g is not None)


@pytest.mark.parametrize("cell, options", CELLS)
def test_forward_does_not_modify_inputs(cell, options):
    params = make_params(cell, options, seed=17)
    copies = {k: None if v is None else v.copy() for k, v in params.items()}
    outputs, _, _ = forward(cell, params, options, MASKS["middle"])
    outputs += 1.0  # returned arrays are not views of the caller's data or the cache
    for key, value in params.items():
        if value is not None:
            np.testing.assert_array_equal(value, copies[key])


# ---------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask_name", [name for name in MASKS if name != "no_mask"])
@pytest.mark.parametrize("cell, options", CELLS)
def test_masked_steps_repeat_previous_state(cell, options, mask_name):
    mask = MASKS[mask_name]
    params = make_params(cell, options, seed=18)
    outputs, finals, _ = forward(cell, params, options, mask)
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                previous = params["h0"][b] if t == 0 else outputs[b, t - 1]
                np.testing.assert_array_equal(outputs[b, t], previous)
    np.testing.assert_array_equal(finals[0], outputs[:, -1])


@pytest.mark.parametrize("mask_name", [name for name in MASKS if name != "no_mask"])
@pytest.mark.parametrize("cell, options", CELLS)
def test_masked_run_equals_run_on_real_steps_only(cell, options, mask_name):
    """Dropping the masked steps and running without a mask gives the same states."""
    mask = MASKS[mask_name]
    params = make_params(cell, options, seed=19)
    outputs, finals, _ = forward(cell, params, options, mask)
    for b in range(B):
        single = dict(params)
        single["x"] = params["x"][b:b + 1, mask[b]]
        for key in state_keys(cell):
            single[key] = params[key][b:b + 1]
        if not mask[b].any():
            # Nothing to run: the final states are the initial states.
            for final, key in zip(finals, state_keys(cell)):
                np.testing.assert_array_equal(final[b], params[key][b])
            continue
        sub_outputs, sub_finals, _ = forward(cell, single, options)
        np.testing.assert_allclose(outputs[b, mask[b]], sub_outputs[0], rtol=1e-13, atol=1e-15)
        for final, sub_final in zip(finals, sub_finals):
            np.testing.assert_allclose(final[b], sub_final[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell, options", CELLS)
def test_masked_steps_get_no_input_gradient(cell, options):
    mask = MASKS["middle"]
    params = make_params(cell, options, seed=20)
    _, finals, cache = forward(cell, params, options, mask)
    grads = backward(cell, np.ones((B, T, H)), tuple(np.ones((B, H)) for _ in finals), cache)
    assert np.all(grads["x"][~mask] == 0.0)
    assert np.all(np.abs(grads["x"][mask]) > 0.0)


@pytest.mark.parametrize("cell, options", CELLS)
def test_fully_masked_sequence_passes_gradient_straight_to_initial_state(cell, options):
    mask = np.zeros((B, T), dtype=bool)
    params = make_params(cell, options, seed=21)
    _, finals, cache = forward(cell, params, options, mask)
    rng = np.random.default_rng(22)
    d_out = rng.normal(size=(B, T, H))
    d_finals = tuple(rng.normal(size=(B, H)) for _ in finals)
    grads = backward(cell, d_out, d_finals, cache)
    # Every output and the final h are h0 itself; the final c is c0.
    np.testing.assert_allclose(grads["h0"], d_out.sum(axis=1) + d_finals[0], rtol=1e-14)
    if cell == "lstm":
        np.testing.assert_array_equal(grads["c0"], d_finals[1])
    for key in ("x", "kernel", "recurrent_kernel", "bias"):
        assert np.all(grads[key] == 0.0), key


def test_mask_accepts_integers():
    params = make_params("lstm", {}, seed=23)
    as_bool = forward("lstm", params, {}, MASKS["middle"])[0]
    as_int = forward("lstm", params, {}, MASKS["middle"].astype(int))[0]
    np.testing.assert_array_equal(as_bool, as_int)


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------


def _good_args(cell, reset_after=False):
    params = make_params(cell, {"reset_after": reset_after}, seed=24)
    params["mask"] = None
    return params


def _call_forward(cell, args, **options):
    if cell == "simple_rnn":
        return ref.simple_rnn_forward(
            args["x"], args["h0"], args["kernel"], args["recurrent_kernel"], args["bias"],
            mask=args["mask"], **options,
        )
    if cell == "lstm":
        return ref.lstm_forward(
            args["x"], args["h0"], args["c0"], args["kernel"], args["recurrent_kernel"],
            args["bias"], mask=args["mask"],
        )
    return ref.gru_forward(
        args["x"], args["h0"], args["kernel"], args["recurrent_kernel"], args["bias"],
        mask=args["mask"], **options,
    )


@pytest.mark.parametrize(
    "cell, options, name, bad_shape, expected_text",
    [
        ("simple_rnn", {}, "x", (B, T), "3-D"),
        ("simple_rnn", {}, "h0", (B, H - 1), f"({B}, {H})"),
        ("simple_rnn", {}, "h0", (H,), f"({B}, {H})"),
        ("simple_rnn", {}, "kernel", (I, H + 1), f"({I}, {H})"),
        ("simple_rnn", {}, "kernel", (I + 1, H), f"({I}, {H})"),
        ("simple_rnn", {}, "recurrent_kernel", (H, H - 1), f"({H}, {H})"),
        ("simple_rnn", {}, "recurrent_kernel", (H,), "2-D"),
        ("simple_rnn", {}, "bias", (H + 1,), f"({H},)"),
        ("simple_rnn", {}, "mask", (B, T - 1), f"({B}, {T})"),
        ("lstm", {}, "kernel", (I, 3 * H), f"({I}, {4 * H})"),
        ("lstm", {}, "recurrent_kernel", (H, 3 * H), f"({H}, {4 * H})"),
        ("lstm", {}, "c0", (B + 1, H), f"({B}, {H})"),
        ("lstm", {}, "bias", (H,), f"({4 * H},)"),
        ("gru", {}, "recurrent_kernel", (H, 4 * H), f"({H}, {3 * H})"),
        ("gru", {"reset_after": False}, "bias", (2, 3 * H), f"({3 * H},)"),
        ("gru", {"reset_after": True}, "bias", (3 * H,), f"(2, {3 * H})"),
    ],
)
def test_bad_shapes_raise_informative_errors(cell, options, name, bad_shape, expected_text):
    args = _good_args(cell, reset_after=options.get("reset_after", False))
    args[name] = np.zeros(bad_shape)
    with pytest.raises(ValueError) as info:
        _call_forward(cell, args, **options)
    message = str(info.value)
    assert message.startswith(f"{name} has shape"), message
    assert str(tuple(bad_shape)) in message, message   # what was received
    assert expected_text in message, message           # what was expected


def test_unknown_activation_is_rejected():
    args = _good_args("simple_rnn")
    with pytest.raises(ValueError, match="activation.*'softmax'"):
        _call_forward("simple_rnn", args, activation="softmax")


@pytest.mark.parametrize("cell, options", CELLS)
def test_bad_incoming_gradient_shapes_are_rejected(cell, options):
    params = make_params(cell, options, seed=25)
    _, finals, cache = forward(cell, params, options)
    good_finals = tuple(np.zeros((B, H)) for _ in finals)
    with pytest.raises(ValueError, match=r"^d_outputs has shape \(2, 4, 4\)"):
        backward(cell, np.zeros((B, T, H - 1)), good_finals, cache)
    bad_h = (np.zeros((B, H + 1)),) + good_finals[1:]
    with pytest.raises(ValueError, match=r"d_final_h.*has shape \(2, 6\)"):
        backward(cell, None, bad_h, cache)
    if cell == "lstm":
        with pytest.raises(ValueError, match=r"d_final_c.*has shape \(2, 6\)"):
            backward(cell, None, (None, np.zeros((B, H + 1))), cache)
        with pytest.raises(ValueError, match="pair"):
            ref.lstm_backward(None, (None, None, None), cache)


# ---------------------------------------------------------------------------
# numerical_gradient itself
# ---------------------------------------------------------------------------


def test_numerical_gradient_of_a_cubic():
    a = np.random.default_rng(26).normal(size=(3, 4))
    before = a.copy()
    grad = ref.numerical_gradient(lambda: np.sum(a ** 3), a)
    np.testing.assert_allclose(grad, 3.0 * before ** 2, rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(a, before)  # restored after perturbing


def test_numerical_gradient_needs_float64():
    a = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        ref.numerical_gradient(lambda: float(a.sum()), a)
