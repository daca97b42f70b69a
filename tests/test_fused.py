"""The fused fast path against the generic loop, and the choice between them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import layers
from layer_cases import CELLS, random_mask


def _pair(name, units, input_dim, rng, **kwargs):
    """The same layer twice, forced to the fused path and to the generic loop."""
    cls, extra, _ = CELLS[name]
    fused = cls(units, recurrence_path="fused", **extra, **kwargs)
    loop = cls(units, recurrence_path="loop", **extra, **kwargs)
    for layer in (fused, loop):
        layer.build((None, None, input_dim))
    weights = [rng.normal(0.0, 0.5, size=w.shape).astype("float32")
               for w in fused.get_weights()]
    fused.set_weights(weights)
    loop.set_weights(weights)
    return fused, loop


def _run(layer, x, states, mask, chunk=None):
    """Outputs and gradients (x, states, weights) of a fixed random loss."""
    layer._fused_chunk = chunk
    x = tf.constant(x)
    states = None if states is None else [tf.constant(s) for s in states]
    watched = [x] + (states or [])
    with tf.GradientTape() as tape:
        tape.watch(watched)
        outputs = layer(x, initial_state=states, mask=mask)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        seed = np.random.default_rng(7)
        loss = 0.0
        for out in outputs:
            loss += tf.reduce_sum(out * seed.normal(size=out.shape).astype("float32"))
    grads = tape.gradient(loss, watched + layer.trainable_weights)
    return [np.asarray(o) for o in outputs], [np.asarray(g) for g in grads]


VARIANTS = [  # go_backwards, masked, initial_state, return_sequences, chunk
    (False, False, False, True, None),
    (True, False, True, True, 3),
    (False, True, True, True, 4),
    (True, True, False, False, 2),
    (False, True, False, False, None),
]


@pytest.mark.parametrize("kernel", ["native", "graph"])
@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("go_backwards,masked,initial,sequences,chunk", VARIANTS)
def test_fused_matches_loop(name, go_backwards, masked, initial, sequences, chunk, kernel,
                            rng, monkeypatch):
    monkeypatch.setenv("ZOO_NATIVE_KERNELS", "1" if kernel == "native" else "0")
    batch, steps, input_dim, units = 3, 9, 4, 5
    fused, loop = _pair(name, units, input_dim, rng, go_backwards=go_backwards,
                        return_sequences=sequences, return_state=True)
    x = rng.normal(size=(batch, steps, input_dim)).astype("float32")
    n_states = CELLS[name][2]
    states = ([rng.normal(size=(batch, units)).astype("float32") for _ in range(n_states)]
              if initial else None)
    mask = tf.constant(random_mask(rng, batch, steps)) if masked else None
    out_f, grads_f = _run(fused, x, states, mask, chunk)
    out_l, grads_l = _run(loop, x, states, mask)
    assert fused.last_recurrence_path == "fused" and loop.last_recurrence_path == "loop"
    assert fused.last_recurrence_kernel == kernel
    for a, b in zip(out_f, out_l):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(grads_f, grads_l):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_simple_rnn_activations(activation, rng):
    fused, loop = _pair("rnn", 4, 3, rng, activation=activation, return_sequences=True)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = tf.constant(random_mask(rng, 2, 6))
    out_f, grads_f = _run(fused, x, None, mask, 4)
    out_l, grads_l = _run(loop, x, None, mask)
    np.testing.assert_allclose(out_f[0], out_l[0], atol=1e-5)
    for a, b in zip(grads_f, grads_l):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_zero_output_for_mask(rng):
    fused, loop = _pair("lstm", 4, 3, rng, return_sequences=True, zero_output_for_mask=True)
    x = rng.normal(size=(3, 7, 3)).astype("float32")
    mask = tf.constant(random_mask(rng, 3, 7))
    out_f, _ = _run(fused, x, None, mask)
    out_l, _ = _run(loop, x, None, mask)
    np.testing.assert_allclose(out_f[0], out_l[0], atol=1e-5)
    assert np.all(out_f[0][~mask.numpy()] == 0.0)


@pytest.mark.parametrize("name", list(CELLS))
def test_inference_graph_matches_and_dropout_is_off(name, rng):
    """`predict`-style calls (no tape) take the stash-free variant; dropout is inactive."""
    cls, extra, _ = CELLS[name]
    fused, loop = _pair(name, 5, 3, rng, return_sequences=True, dropout=0.3)
    # "auto" with recurrent dropout: the fused path at inference.
    fused = cls(5, return_sequences=True, dropout=0.3, recurrent_dropout=0.4, **extra)
    fused.build((None, None, 3))
    fused.set_weights(loop.get_weights())
    x = rng.normal(size=(4, 8, 3)).astype("float32")
    mask = tf.constant(random_mask(rng, 4, 8))
    got = tf.function(lambda x, m: fused(x, mask=m, training=False))(x, mask)
    assert fused.last_recurrence_path == "fused"  # recurrent_dropout is off at inference
    want = loop(x, mask=mask, training=False)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru_reset_after"])
def test_input_dropout_in_training_matches_loop(name, rng):
    """Same seed, same mask: the fused path drops the same input features at every step."""
    fused, loop = _pair(name, 5, 3, rng, return_sequences=True, dropout=0.5, seed=11)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    got = fused(x, training=True)
    want = loop(x, training=True)
    assert fused.last_recurrence_path == "fused"
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, fused(x, training=False), atol=1e-3)


def test_recurrent_dropout_falls_back_while_training(rng):
    layer = layers.GRU(4, recurrent_dropout=0.5, return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    layer(x, training=True)
    assert layer.last_recurrence_path == "loop"
    assert layer.fused_blocker(training=True) == "recurrent_dropout > 0 while training"
    layer(x, training=False)
    assert layer.last_recurrence_path == "fused"


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"unroll": True}, "unroll=True"),
        ({"activation": "relu"}, "activation"),
        ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
        ({"dtype": "float64"}, "float64"),
    ],
)
def test_auto_falls_back_and_fused_refuses(kwargs, reason, rng):
    layer = layers.LSTM(3, **kwargs)
    assert reason in layer.fused_blocker()
    x = rng.normal(size=(2, 4, 3)).astype(layer.compute_dtype)
    layer(x)
    assert layer.last_recurrence_path == "loop"
    with pytest.raises(ValueError, match=rf"recurrence_path='fused'.*{reason}"):
        layers.LSTM(3, recurrence_path="fused", **kwargs)


def test_fused_refuses_recurrent_dropout():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        layers.SimpleRNN(3, recurrence_path="fused", recurrent_dropout=0.2)


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
@pytest.mark.parametrize("value", ["fast", None, 1, "FUSED"])
def test_bad_recurrence_path(cls, value):
    with pytest.raises(ValueError, match=r"recurrence_path.*'auto', 'fused', 'loop'.*Received"):
        cls(3, recurrence_path=value)


@pytest.mark.parametrize("value", ["auto", "fused", "loop"])
def test_recurrence_path_in_config(value, rng):
    layer = layers.GRU(3, recurrence_path=value)
    config = layer.get_config()
    assert config["recurrence_path"] == value
    again = layers.GRU.from_config(config)
    assert again.recurrence_path == value
    again(rng.normal(size=(2, 4, 3)).astype("float32"))
    assert again.last_recurrence_path == ("loop" if value == "loop" else "fused")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bidirectional_and_fit_match_loop(name, rng):
    """A model trained by `fit` (graph mode) ends with the same weights on both paths."""
    cls, extra, _ = CELLS[name]
    x = rng.normal(size=(16, 7, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")

    def model(recurrence_path):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((7, 3))
        h = keras.layers.Bidirectional(
            cls(4, return_sequences=True, recurrence_path=recurrence_path, **extra)
        )(inputs)
        h = cls(5, recurrence_path=recurrence_path, **extra)(h)
        m = keras.Model(inputs, keras.layers.Dense(1)(h))
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return m

    fused, loop = model("fused"), model("loop")
    loop.set_weights(fused.get_weights())
    history_f = fused.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    history_l = loop.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    np.testing.assert_allclose(history_f.history["loss"], history_l.history["loss"], rtol=1e-4)
    for a, b in zip(fused.get_weights(), loop.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_mixed_bfloat16(name, rng):
    """bfloat16 products with float32 states: close to float32, finite gradients."""
    cls, extra, _ = CELLS[name]
    x = rng.normal(size=(4, 12, 3)).astype("float32")
    ref = cls(6, return_sequences=True, **extra)
    low = cls(6, return_sequences=True, dtype="mixed_bfloat16", **extra)
    ref.build((None, None, 3))
    low.build((None, None, 3))
    low.set_weights(ref.get_weights())
    with tf.GradientTape() as tape:
        out = low(x)
        loss = tf.reduce_sum(tf.cast(out, "float32") ** 2)
    grads = tape.gradient(loss, low.trainable_weights)
    assert low.last_recurrence_path == "fused" and out.dtype == "bfloat16"
    np.testing.assert_allclose(np.asarray(out, "float32"), ref(x), atol=3e-2)
    assert all(np.all(np.isfinite(g)) for g in grads)


class _FakeCudnn:
    """Stands in for Keras's cuDNN entry points: Keras's equations, any device."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def _loop(step, inputs, states, return_sequences, go_backwards):
        steps = range(inputs.shape[1])
        outputs = []
        for t in (reversed(steps) if go_backwards else steps):
            states = step(inputs[:, t], states)
            outputs.append(states[0])
        sequence = tf.stack(outputs, axis=1)
        if not return_sequences:
            sequence = sequence[:, -1:]
        return outputs[-1], sequence, list(states)

    def lstm(self, inputs, h, c, mask, kernel, recurrent_kernel, bias, activation,
             recurrent_activation, return_sequences, go_backwards, unroll):
        self.calls.append("lstm")

        def step(x, states):
            z = tf.matmul(x, kernel) + tf.matmul(states[0], recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f) * states[1] + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        return self._loop(step, inputs, (h, c), return_sequences, go_backwards)

    def gru(self, inputs, h, mask, kernel, recurrent_kernel, bias, activation,
            recurrent_activation, return_sequences, go_backwards, unroll, reset_after):
        self.calls.append("gru")
        assert reset_after

        def step(x, states):
            xz, xr, xh = tf.split(tf.matmul(x, kernel) + bias[0], 3, axis=-1)
            hz, hr, hh = tf.split(tf.matmul(states[0], recurrent_kernel) + bias[1], 3, axis=-1)
            z, r = tf.sigmoid(xz + hz), tf.sigmoid(xr + hr)
            candidate = tf.tanh(xh + r * hh)
            return (z * states[0] + (1.0 - z) * candidate,)  # Keras's convention

        return self._loop(step, inputs, (h,), return_sequences, go_backwards)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
@pytest.mark.parametrize("go_backwards,sequences", [(False, True), (True, False)])
def test_cudnn_dispatch_on_gpu(name, go_backwards, sequences, rng, monkeypatch):
    """On a GPU, training goes to Keras's cuDNN kernels with converted weights;
    inference (what an export traces) stays on the portable fused path."""
    from zoo.layers import base

    fake = _FakeCudnn()
    monkeypatch.setattr(base, "cudnn_backend", fake)
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    fused, loop = _pair(name, 4, 3, rng, go_backwards=go_backwards,
                        return_sequences=sequences, return_state=True)
    fused.recurrence_path = "auto"
    x = rng.normal(size=(3, 6, 3)).astype("float32")
    states = [rng.normal(size=(3, 4)).astype("float32") for _ in range(CELLS[name][2])]

    def run(layer, training):
        xt, st = tf.constant(x), [tf.constant(s) for s in states]
        with tf.GradientTape() as tape:
            tape.watch([xt] + st)
            outputs = layer(xt, initial_state=st, training=training)
            loss = sum(tf.reduce_sum(o * (k + 1.0)) for k, o in enumerate(outputs))
        return outputs, tape.gradient(loss, [xt] + st + layer.trainable_weights)

    out_gpu, grads_gpu = run(fused, True)
    assert fused.last_recurrence_path == "cudnn" and fake.calls
    out_ref, grads_ref = run(loop, True)
    for a, b in zip(list(out_gpu) + grads_gpu, list(out_ref) + grads_ref):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    fused(x, training=False)
    assert fused.last_recurrence_path == "fused"
    fused.use_cudnn = False
    fused(x, training=True)
    assert fused.last_recurrence_path == "fused"


@pytest.mark.parametrize("form", [{"project": True}, {"parts": 1}, {"parts": 2}, {"parts": 3}])
def test_simple_rnn_step_forms_agree(form, rng):
    """The SimpleRNN step has equivalent forms picked by size; all give the loop's numbers."""
    from zoo.layers import fused

    layer = layers.SimpleRNN(7, return_sequences=True, recurrence_path="loop")
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    layer.build(x.shape)
    layer.set_weights([rng.normal(0, 0.5, size=w.shape).astype("float32")
                       for w in layer.get_weights()])
    x_t = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t)
        want = layer(x_t)
        params = layer._fused_params()
        got, _ = fused.run(fused._SimpleRNNMath(7, "tanh", **form), tf.transpose(x_t, [1, 0, 2]),
                           params, (tf.zeros((3, 7)),), chunk=2)
        got = tf.transpose(got, [1, 0, 2])
        loss_want, loss_got = tf.reduce_sum(want * want), tf.reduce_sum(got * got)
    np.testing.assert_allclose(got, want, atol=1e-5)
    for a, b in zip(tape.gradient(loss_got, [x_t] + list(layer.trainable_weights)),
                    tape.gradient(loss_want, [x_t] + list(layer.trainable_weights))):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def _benchmark_module():
    from recipe_helpers import load_script

    return load_script("benchmarks/rnn_speed.py", "rnn_speed")


def test_benchmark_assessment_reads_its_report():
    """The targets table is computed from the report's own rows, not typed in."""
    bench = _benchmark_module()
    header = ("| cell | mode | B, T, I, H | zoo f32 | zoo bf16 | keras f32 | torch f32 "
              "| zoo/keras | zoo/torch | bf16/keras | f32 peak |")
    lines = [header, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for shape, ratio in zip(bench.SHAPES, ("1.60x", "1.40x", "2.10x")):
        shape = ", ".join(str(v) for v in shape)
        lines.append(f"| LSTM | train | {shape} | 1 | 1 | 1 | 1 | {ratio} | 0.90x | 1.00x | 50% |")
    lines += ["", "| cell | zoo MB | keras MB | zoo/keras |", "|---|---:|---:|---:|",
              "| LSTM | 120 | 100 | 1.20 |", "", "largest relative gap 0.50% -> within 2%"]
    table = "\n".join(bench.assess("\n".join(lines)))
    assert "| LSTM 1.60x, 1.40x, 2.10x; GRU -, -, - | LSTM 2/3 shapes; GRU 0/0 shapes |" in table
    assert "| LSTM 0.90x, 0.90x, 0.90x | LSTM 0/3 shapes |" in table
    assert "| 0.50% | met |" in table
    assert "LSTM 1.20x | missed |" in table


def test_benchmark_assessment_names_shapes_beyond_the_float32_bound():
    """A missed floor that a kernel at the float32 peak could not reach either (the `f32 bound`
    column is below it) is named as such; one within the bound is not."""
    bench = _benchmark_module()
    lines = ["| cell | mode | B, T, I, H | zoo f32 | zoo bf16 | keras f32 | torch f32 | zoo/keras "
             "| zoo/torch | bf16/keras | f32 peak | keras f32 peak | f32 bound |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    shapes = [", ".join(str(v) for v in shape) for shape in bench.SHAPES]
    for shape, ratio, bound in zip(shapes, ("1.46x", "2.01x", "1.22x"), ("1.84x", "2.98x", "1.25x")):
        lines.append(f"| SimpleRNN | train | {shape} | 1 | - | 1 | - | {ratio} | - | - | 90% | 50% "
                     f"| {bound} |")
    lines.append(f"| LSTM | train | {shapes[0]} | 1 | - | 1 | - | 1.40x | - | - | 90% | 50% | 2.00x |")
    table = "\n".join(bench.assess("\n".join(lines)))
    assert (f"SimpleRNN 1/3 shapes (beyond the f32 bound at {shapes[0]}; {shapes[2]}) |"
            in table)
    assert "| LSTM 0/1 shapes; GRU 0/0 shapes |" in table  # 1.40x < 1.5x, but within its bound


@pytest.mark.slow
def test_mixed_bfloat16_loss_curve_tracks_float32():
    """A short real training run (the benchmark's check): bf16 within 2% of f32."""
    bench = _benchmark_module()
    result = bench.loss_curve_check(60, seeds=(1,), units=128, batch=32, steps=64)
    assert result["final_f32"] < 0.8 * result["first_loss"]  # it really trains
    assert result["ok"], result


def test_benchmark_bound_counts_the_products_zoo_performs():
    """Training: three forward passes' products, less the input gradient zoo skips; the bound is
    the zoo/keras ratio of a zoo kernel doing those products at the measured peak."""
    bench = _benchmark_module()
    shape = (256, 50, 128, 512)
    forward = 2 * (128 + 512) * 4 * 512 * 50
    assert bench.flops_per_sample("lstm", shape, "infer") == forward
    assert bench.flops_per_sample("lstm", shape, "train") == 3 * forward
    zoo_flops = 3 * forward - 2 * 128 * 4 * 512 * 50
    assert bench.flops_per_sample("lstm", shape, "train", input_gradient=False) == zoo_flops
    row = {"cell": "lstm", "shape": shape, "mode": "train", "rates": {"zoo": 500.0, "keras": 400.0},
           "flops": 3 * forward}
    line = bench._table([row], {"peak_f32": 200.0})[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[-3] == f"{zoo_flops * 500 / 200e9:.0%}"  # zoo's share of the peak
    assert cells[-2] == f"{3 * forward * 400 / 200e9:.0%}"  # Keras's, on the full count
    assert cells[-1] == f"{200e9 / (zoo_flops * 400):.2f}x"
