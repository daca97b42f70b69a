"""GPU check: the zoo layers on a GPU against the CPU, the kernels that ran, speed, recipes.

On a machine where the active Keras backend sees a GPU, this script

1. runs every zoo cell (SimpleRNN, LSTM, GRU, GRU with `reset_after=True`) in
   every configuration of `CONFIGURATIONS` on the GPU and on the CPU with the
   same weights and inputs, and compares the outputs (within 1e-4) and the
   gradients of a fixed random loss with respect to the inputs, the initial
   states and every weight (within 1e-3; both as `|gpu - cpu| <= tol * (1 +
   |cpu|)`). Matrix products run in full float32 for these checks (TF32 off);
2. says which recurrence ran on the GPU: `cudnn` (Keras's cuDNN kernels),
   `fused/graph` (the zoo graph kernels), `fused/native` or `loop` (Keras's
   generic loop), from the layers' `last_recurrence_path` and
   `last_recurrence_kernel`;
3. times a training step (`train_on_batch` of recurrent layer -> Dense(1),
   MSE, SGD) of each zoo layer against the same `keras.layers` layer;
4. under the TensorFlow backend, runs each recipe's smoke settings (the
   command its docstring marks `# smoke run`) end to end in a subprocess
   (TensorFlow places the model on the GPU by itself).

Steps 1-3 work under every Keras backend (`KERAS_BACKEND=tensorflow`, `torch`
or `jax`); they need only Keras, NumPy and the backend itself, so a machine
with PyTorch and the `keras` wheel but no TensorFlow runs them too. Where no
GPU is visible the script says so and exits 0. Exit status 1 means a check
failed; the report says which.

Usage:

    python benchmarks/gpu_check.py                          # TensorFlow: everything
    KERAS_BACKEND=torch python benchmarks/gpu_check.py      # layers and timing under PyTorch
    KERAS_BACKEND=jax python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --quick --output benchmarks/gpu-results.md
    python benchmarks/gpu_check.py --cells lstm --skip-recipes --skip-timing
    KERAS_BACKEND=torch python benchmarks/gpu_check.py --cpu-stand-in --quick   # test the script itself

`--cpu-stand-in` lets the CPU play the GPU's part where none is visible: every
comparison then holds trivially, but every code path of the script runs (the
tests use it to keep the script from rotting).
"""

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _choose_backend():
    """Keep `KERAS_BACKEND` if set; else TensorFlow, or PyTorch/JAX where TensorFlow is missing."""
    if os.environ.get("KERAS_BACKEND"):
        return
    for backend, module in (("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax")):
        if importlib.util.find_spec(module) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


_choose_backend()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FORWARD_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-3

# name -> (zoo.layers / keras.layers class name, extra constructor arguments)
CELLS = {
    "rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {"reset_after": False}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
}

# name -> what differs from the default call (training=True, zero initial
# states, no mask, full sequence and final states returned, recurrence_path="auto").
CONFIGURATIONS = {
    "default": {},
    "go_backwards": {"layer": {"go_backwards": True}},
    "initial_state": {"initial_state": True},
    "masked": {"masked": True},
    "last_output": {"layer": {"return_sequences": False}},
    "inference": {"training": False},
    "keras_loop": {"layer": {"recurrence_path": "loop"}},
}

# (batch, timesteps, input features, units) of the layer checks.
CHECK_SHAPE = (6, 17, 5, 12)
# (batch, timesteps, input features, units) of the training-step timing.
TIMING_SHAPE = (64, 100, 64, 256)
QUICK_TIMING_SHAPE = (16, 20, 8, 16)

# The marker of the smoke-run command in a recipe's docstring.
SMOKE_MARKER = "# smoke run"


# -- the active backend ------------------------------------------------------


def backend_name():
    import keras

    return keras.backend.backend()


def visible_gpu(backend):
    """A description of the first GPU the backend sees (`"NVIDIA H100 ..."`), or None."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", gpus[0].name)
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_name(0)
    if backend == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    raise ValueError(f"gpu_check supports the tensorflow, torch and jax backends. Received: {backend!r}")


def device_names(backend):
    """`(cpu, gpu)` device names for `keras.device` on this backend.

    PyTorch gets the names Keras itself uses ("cpu", "cuda"): under Keras's
    torch backend a variable created inside `keras.device("cpu:0")` fails
    (torch 2.13, Keras 3.15).
    """
    if backend == "torch":
        return "cpu", "cuda"
    return "cpu:0", "gpu:0"


def set_full_float32_products(backend, full):
    """Turn TF32 matrix products off (`full=True`) for the checks, or back to the default."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(not full)
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = not full
        torch.backends.cudnn.allow_tf32 = not full
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest" if full else None)


def backend_versions(backend):
    import keras

    versions = [f"Keras {keras.__version__}"]
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}[backend]
    versions.append(f"{module} {__import__(module).__version__}")
    return ", ".join(versions)


# -- forward and gradients on any backend -------------------------------------


def run_with_gradients(layer, x, initial_state, mask, cotangents, training=True):
    """Call `layer` and differentiate `sum(output_i * cotangent_i)` on the active backend.

    Runs on the current device (inside `keras.device(...)`). The layer is
    called as in ordinary use: with its own variables under TensorFlow and
    PyTorch, through `stateless_call` under JAX (the only way to
    differentiate there).

    Args:
        layer: A built layer returning a list of outputs
            (`return_state=True`).
        x: NumPy array `(batch, timesteps, features)`.
        initial_state: List of NumPy arrays `(batch, units)`, or None (zeros,
            no gradient reported for them).
        mask: Boolean NumPy array `(batch, timesteps)`, or None.
        cotangents: One NumPy array per output, of the output's shape.
        training: The `training` flag of the call.

    Returns:
        `(outputs, gradients)`: the outputs as NumPy arrays, and a dict of
        NumPy gradients keyed `"x"`, `"state0"`, `"state1"`... and by weight
        name (`"kernel"`, `"recurrent_kernel"`, `"bias"`).
    """
    import keras

    backend = keras.backend.backend()
    states = list(initial_state or [])
    weights = list(layer.trainable_variables)
    weight_names = [weight.path.split("/")[-1] for weight in weights]
    input_names = ["x"] + [f"state{index}" for index in range(len(states))]
    if backend == "tensorflow":
        outputs, grads = _tensorflow_gradients(layer, x, states, mask, cotangents, training)
    elif backend == "torch":
        outputs, grads = _torch_gradients(layer, x, states, mask, cotangents, training)
    elif backend == "jax":
        outputs, grads = _jax_gradients(layer, x, states, mask, cotangents, training)
    else:
        raise ValueError(f"no gradient helper for the Keras backend {backend!r}")
    gradients = {
        name: None if grad is None else keras.ops.convert_to_numpy(grad)
        for name, grad in zip(input_names + weight_names, grads)
    }
    return [keras.ops.convert_to_numpy(output) for output in outputs], gradients


def _loss(outputs, cotangents):
    from keras import ops

    total = 0.0
    for output, cotangent in zip(outputs, cotangents):
        total = total + ops.sum(output * ops.convert_to_tensor(cotangent, dtype=output.dtype))
    return total


def _tensorflow_gradients(layer, x, states, mask, cotangents, training):
    import tensorflow as tf

    x_t = tf.constant(x)
    states_t = [tf.constant(state) for state in states]
    mask_t = None if mask is None else tf.constant(mask)
    with tf.GradientTape() as tape:
        tape.watch([x_t] + states_t)
        outputs = layer(x_t, initial_state=states_t or None, mask=mask_t, training=training)
        loss = _loss(outputs, cotangents)
    grads = tape.gradient(loss, [x_t] + states_t + list(layer.trainable_variables))
    return outputs, grads


def _torch_gradients(layer, x, states, mask, cotangents, training):
    import torch
    from keras import ops

    x_t = ops.convert_to_tensor(x).detach().clone().requires_grad_(True)
    states_t = [ops.convert_to_tensor(s).detach().clone().requires_grad_(True) for s in states]
    mask_t = None if mask is None else ops.convert_to_tensor(mask)
    outputs = layer(x_t, initial_state=states_t or None, mask=mask_t, training=training)
    loss = _loss(outputs, cotangents)
    sources = [x_t] + states_t + [weight.value for weight in layer.trainable_variables]
    grads = torch.autograd.grad(loss, sources, allow_unused=True)
    return [output.detach() for output in outputs], grads


def _jax_gradients(layer, x, states, mask, cotangents, training):
    import jax
    from keras import ops

    trainable = [weight.value for weight in layer.trainable_variables]
    non_trainable = [weight.value for weight in layer.non_trainable_variables]
    mask_t = None if mask is None else ops.convert_to_tensor(mask)

    def loss_function(trainable, x, states):
        outputs, _ = layer.stateless_call(
            trainable, non_trainable, x,
            initial_state=list(states) or None, mask=mask_t, training=training,
        )
        return _loss(outputs, cotangents), outputs

    arguments = (trainable, ops.convert_to_tensor(x), [ops.convert_to_tensor(s) for s in states])
    (_, outputs), (d_trainable, d_x, d_states) = jax.value_and_grad(
        loss_function, argnums=(0, 1, 2), has_aux=True
    )(*arguments)
    # `stateless_call` does not record which path ran; one ordinary call does.
    layer(arguments[1], initial_state=arguments[2] or None, mask=mask_t, training=training)
    return outputs, [d_x] + list(d_states) + list(d_trainable)


# -- the layer checks ----------------------------------------------------------


def make_case(cell, configuration, shape, seed=0):
    """Inputs, states, mask, weights and loss cotangents of one check (NumPy)."""
    batch, timesteps, input_dim, units = shape
    settings = CONFIGURATIONS[configuration]
    rng = np.random.default_rng(seed)
    layer = build_layer(cell, configuration, input_dim, units)
    weights = [rng.normal(0.0, 0.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    x = rng.normal(size=(batch, timesteps, input_dim)).astype("float32")
    state_count = 2 if cell == "lstm" else 1
    states = None
    if settings.get("initial_state"):
        states = [rng.normal(size=(batch, units)).astype("float32") for _ in range(state_count)]
    mask = None
    if settings.get("masked"):
        mask = np.ones((batch, timesteps), dtype=bool)
        for row in range(batch):
            mask[row, int(rng.integers(1, timesteps + 1)):] = False
        mask[0, timesteps // 2] = False
    returns_sequence = settings.get("layer", {}).get("return_sequences", True)
    first_shape = (batch, timesteps, units) if returns_sequence else (batch, units)
    cotangents = [rng.normal(size=first_shape).astype("float32")]
    cotangents += [rng.normal(size=(batch, units)).astype("float32") for _ in range(state_count)]
    return {"x": x, "states": states, "mask": mask, "weights": weights,
            "cotangents": cotangents, "training": settings.get("training", True)}


def build_layer(cell, configuration, input_dim, units, use_cudnn="auto"):
    """A built zoo layer for one cell and configuration (on the current device)."""
    from zoo import layers

    class_name, extra = CELLS[cell]
    arguments = {"return_sequences": True, "return_state": True, **extra}
    arguments.update(CONFIGURATIONS[configuration].get("layer", {}))
    if class_name != "SimpleRNN":
        arguments["use_cudnn"] = use_cudnn
    layer = getattr(layers, class_name)(units, **arguments)
    layer.build((None, None, input_dim))
    return layer


def path_label(layer):
    """`cudnn`, `fused/graph`, `fused/native` or `loop`: what the layer's latest call ran."""
    path = layer.last_recurrence_path
    if path == "fused":
        return f"fused/{layer.last_recurrence_kernel}"
    return str(path)


def run_case_on(device, cell, configuration, case, shape, use_cudnn="auto"):
    """Build the layer on `device`, load the case's weights, run it; returns (outputs, grads, path)."""
    import keras

    with keras.device(device):
        layer = build_layer(cell, configuration, shape[2], shape[3], use_cudnn=use_cudnn)
        layer.set_weights(case["weights"])
        outputs, gradients = run_with_gradients(
            layer, case["x"], case["states"], case["mask"], case["cotangents"], case["training"]
        )
    return outputs, gradients, path_label(layer)


def worst_relative_error(got, want):
    """max |got - want| / (1 + |want|): the smallest `tol` with `|got - want| <= tol (1 + |want|)`."""
    got = np.asarray(got, dtype="float64")
    want = np.asarray(want, dtype="float64")
    if got.shape != want.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want) / (1.0 + np.abs(want))))


def compare(gpu_outputs, gpu_gradients, cpu_outputs, cpu_gradients):
    """(forward error, gradient error, name of the worst gradient) of one check."""
    forward = max(worst_relative_error(g, c) for g, c in zip(gpu_outputs, cpu_outputs))
    gradient, worst = -1.0, "-"
    for name, want in cpu_gradients.items():
        got = gpu_gradients.get(name)
        if want is None or got is None:
            error = 0.0 if want is None and got is None else float("inf")
        else:
            error = worst_relative_error(got, want)
        if error > gradient:
            gradient, worst = error, name
    return forward, max(gradient, 0.0), worst if gradient > 0 else "-"


def check_layers(cells, gpu_device, cpu_device, shape=CHECK_SHAPE):
    """Every cell in every configuration on the GPU against the CPU; one result dict per check."""
    results = []
    for cell in cells:
        for configuration in CONFIGURATIONS:
            case = make_case(cell, configuration, shape)
            row = {"cell": cell, "configuration": configuration}
            try:
                # The CPU side never asks for cuDNN (with a GPU visible,
                # TensorFlow could otherwise quietly place that op on it).
                cpu = run_case_on(cpu_device, cell, configuration, case, shape, use_cudnn=False)
                gpu = run_case_on(gpu_device, cell, configuration, case, shape)
            except Exception as error:  # a failure is a result to report, not a crash
                row.update(ok=False, error=f"{type(error).__name__}: {str(error).splitlines()[0][:160]}")
                results.append(row)
                continue
            forward, gradient, worst = compare(gpu[0], gpu[1], cpu[0], cpu[1])
            row.update(
                gpu_path=gpu[2], cpu_path=cpu[2], forward_error=forward,
                gradient_error=gradient, worst_gradient=worst,
                ok=forward <= FORWARD_TOLERANCE and gradient <= GRADIENT_TOLERANCE,
            )
            results.append(row)
    return results


# -- training-step timing -------------------------------------------------------


def time_training_step(make_layer, shape, steps, device, seed=0):
    """Median seconds of one `train_on_batch` of `make_layer(units)` -> Dense(1); and the layer."""
    import keras

    batch, timesteps, input_dim, units = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, timesteps, input_dim)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")
    with keras.device(device):
        keras.utils.set_random_seed(seed)
        recurrent = make_layer(units)
        inputs = keras.Input((timesteps, input_dim))
        model = keras.Model(inputs, keras.layers.Dense(1)(recurrent(inputs)))
        model.compile(optimizer="sgd", loss="mse")
        for _ in range(3):  # tracing and warm-up
            model.train_on_batch(x, y)
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)  # returns the loss as a number: waits for the device
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), recurrent


def time_layers(cells, device, shape, steps):
    """zoo against keras.layers, one training step each; GRUs with `reset_after=True` (Keras's default)."""
    import keras

    from zoo import layers

    rows = []
    for cell in cells:
        if cell == "gru":
            continue  # timed as gru_reset_after, the configuration Keras and cuDNN use
        class_name, extra = CELLS[cell]
        row = {"cell": cell}
        try:
            zoo_seconds, zoo_layer = time_training_step(
                lambda units: getattr(layers, class_name)(units, **extra), shape, steps, device
            )
            keras_seconds, _ = time_training_step(
                lambda units: getattr(keras.layers, class_name)(units, **extra), shape, steps, device
            )
        except Exception as error:
            row.update(error=f"{type(error).__name__}: {str(error).splitlines()[0][:160]}")
            rows.append(row)
            continue
        row.update(zoo_ms=1000 * zoo_seconds, keras_ms=1000 * keras_seconds,
                   zoo_path=path_label(zoo_layer), ratio=keras_seconds / zoo_seconds)
        rows.append(row)
    return rows


# -- recipes ---------------------------------------------------------------------


def recipe_smoke_settings(recipes_dir=ROOT / "recipes"):
    """Each recipe's smoke settings, read from the command its docstring marks `# smoke run`.

    Returns `{recipe name: [arguments]}` without `--output-dir` (the check
    sets its own). A recipe whose docstring has no such command is left out.
    """
    import ast
    import shlex

    settings = {}
    for path in sorted(recipes_dir.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        command = ""
        for line in docstring.splitlines():
            command += line.strip()
            if command.endswith("\\"):
                command = command[:-1] + " "
                continue
            if SMOKE_MARKER in command and f"recipes/{path.name}" in command:
                words = shlex.split(command.split(SMOKE_MARKER)[0])
                arguments = words[words.index(f"recipes/{path.name}") + 1:]
                if "--output-dir" in arguments:
                    index = arguments.index("--output-dir")
                    del arguments[index:index + 2]
                settings[path.stem] = arguments
                break
            command = ""
    return settings


def run_recipe_smoke(recipe, arguments, timeout):
    """Run one recipe's smoke settings in a subprocess; returns a result dict."""
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{recipe}-") as scratch:
        command = [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"),
                   *arguments, "--name", f"{recipe}-gpu-check",
                   "--output-dir", os.path.join(scratch, "hub"),
                   "--run-dir", os.path.join(scratch, "run")]
        environment = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        start = time.perf_counter()
        try:
            completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True,
                                       text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"recipe": recipe, "ok": False, "seconds": time.perf_counter() - start,
                    "last_line": f"stopped after {timeout} s"}
        lines = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
        return {"recipe": recipe, "ok": completed.returncode == 0,
                "seconds": time.perf_counter() - start,
                "last_line": f"exit {completed.returncode}: {lines[-1][:120] if lines else ''}"}


# -- report -------------------------------------------------------------------------


def format_report(header, checks, timings, timing_shape, recipes):
    lines = [f"# gpu_check, {header['date']}", ""]
    lines += [f"- {key}: {value}" for key, value in header.items() if key != "date"]
    lines += ["", f"## zoo layers on the GPU against the CPU (forward within {FORWARD_TOLERANCE:g}, "
              f"gradients within {GRADIENT_TOLERANCE:g}, relative to 1 + |cpu|; TF32 off)", "",
              "| cell | configuration | GPU path | CPU path | forward error "
              "| gradient error (worst) | result |",
              "|---|---|---|---|---:|---:|---|"]
    for row in checks:
        if "error" in row:
            lines.append(f"| {row['cell']} | {row['configuration']} | - | - | - | - | "
                         f"FAILED: {row['error']} |")
            continue
        lines.append(
            f"| {row['cell']} | {row['configuration']} | {row['gpu_path']} | {row['cpu_path']} | "
            f"{row['forward_error']:.1e} | {row['gradient_error']:.1e} ({row['worst_gradient']}) | "
            f"{'ok' if row['ok'] else 'FAILED'} |"
        )
    if timings is not None:
        lines += ["", f"## One training step, zoo against keras.layers, (B, T, I, H) = {timing_shape}, "
                  "median ms (GRU with reset_after=True)", "",
                  "| cell | zoo ms | zoo path | keras ms | keras/zoo time |", "|---|---:|---|---:|---:|"]
        for row in timings:
            if "error" in row:
                lines.append(f"| {row['cell']} | - | - | - | FAILED: {row['error']} |")
            else:
                lines.append(f"| {row['cell']} | {row['zoo_ms']:.2f} | {row['zoo_path']} | "
                             f"{row['keras_ms']:.2f} | {row['ratio']:.2f}x |")
    if recipes is not None:
        lines += ["", "## Recipes' smoke settings, end to end", ""]
        if isinstance(recipes, str):
            lines.append(recipes)
        else:
            lines += ["| recipe | result | seconds | last line |", "|---|---|---:|---|"]
            for row in recipes:
                last = row["last_line"].replace("|", "/")
                lines.append(f"| {row['recipe']} | {'ok' if row['ok'] else 'FAILED'} | "
                             f"{row['seconds']:.0f} | {last} |")
    return "\n".join(lines) + "\n"


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default=",".join(CELLS),
                        help=f"comma-separated cells to check, of {', '.join(CELLS)}")
    parser.add_argument("--quick", action="store_true",
                        help=f"time at {QUICK_TIMING_SHAPE} with few steps instead of {TIMING_SHAPE}")
    parser.add_argument("--timing-steps", type=int, default=None,
                        help="timed training steps per layer (default 20; 3 with --quick)")
    parser.add_argument("--skip-timing", action="store_true", help="no training-step timing")
    parser.add_argument("--skip-recipes", action="store_true", help="no recipe smoke runs")
    parser.add_argument("--recipe-timeout", type=int, default=1800,
                        help="seconds one recipe smoke run may take (default 1800)")
    parser.add_argument("--cpu-stand-in", action="store_true",
                        help="without a GPU, let the CPU play its part (tests the script; "
                             "recipes are skipped)")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    args = parser.parse_args(argv)
    args.cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = [cell for cell in args.cells if cell not in CELLS]
    if unknown or not args.cells:
        parser.error(f"--cells must name cells of {', '.join(CELLS)}. "
                     f"Received: --cells={','.join(args.cells)!r}")
    if args.timing_steps is not None and args.timing_steps <= 0:
        parser.error(f"--timing-steps must be a positive integer. "
                     f"Received: --timing-steps={args.timing_steps}")
    return args


def main(argv=None):
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    backend = backend_name()
    gpu = visible_gpu(backend)
    if gpu is None and not args.cpu_stand_in:
        print(f"gpu_check: no GPU is visible to the Keras backend {backend!r}; nothing to check. "
              f"Run it where one is: `python benchmarks/gpu_check.py` "
              f"(or with KERAS_BACKEND=torch or jax for the layer checks).")
        return 0
    cpu_device, gpu_device = device_names(backend)
    if gpu is None:
        gpu_device = cpu_device
    header = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "GPU": gpu if gpu is not None else "none: the CPU stands in for it (--cpu-stand-in), "
                                           "so the comparisons hold trivially",
        "backend": f"{backend} ({backend_versions(backend)})",
        "host": f"{platform.node()} / {platform.processor() or platform.machine()}",
    }
    if gpu is None:
        print(f"gpu_check: no GPU is visible to the Keras backend {backend!r}; "
              f"the CPU stands in for it (--cpu-stand-in).", flush=True)
    else:
        print(f"gpu_check: {gpu}, backend {header['backend']}", flush=True)

    set_full_float32_products(backend, True)
    try:
        checks = check_layers(args.cells, gpu_device, cpu_device)
    finally:
        set_full_float32_products(backend, False)
    timings = None
    timing_shape = QUICK_TIMING_SHAPE if args.quick else TIMING_SHAPE
    if not args.skip_timing:
        steps = args.timing_steps or (3 if args.quick else 20)
        timings = time_layers(args.cells, gpu_device, timing_shape, steps)
    recipes = None
    if not args.skip_recipes:
        if backend != "tensorflow":
            recipes = f"Not run: the recipes need the TensorFlow backend (this run: {backend})."
        elif gpu is None:
            recipes = "Not run: no GPU (--cpu-stand-in); the test suite runs the recipes on the CPU."
        else:
            recipes = [run_recipe_smoke(recipe, arguments, args.recipe_timeout)
                       for recipe, arguments in recipe_smoke_settings().items()]

    report = format_report(header, checks, timings, timing_shape, recipes)
    print(report)
    if args.output:
        from zoo.data.cache import atomic_write_text

        atomic_write_text(Path(args.output), report)
    failed = [row for row in checks if not row["ok"]]
    failed += [row for row in timings or [] if "error" in row]
    failed += [row for row in recipes if not row["ok"]] if isinstance(recipes, list) else []
    if failed:
        print(f"gpu_check: {len(failed)} check(s) FAILED (see the report).")
        return 1
    print("gpu_check: all checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
