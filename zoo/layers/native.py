"""Native CPU kernels of the fused path: building, loading and running them.

`kernels/recurrence.cc` holds two TensorFlow ops, a recurrence over a
whole sequence and its backpropagation through time (see the comment at
its top). They are compiled on first use against the installed TensorFlow, for
the host CPU (`-march=native`), and cached under `kernel_dir()`; the file
name carries a hash of everything the build depends on (source, TensorFlow
version and flags, compiler, CPU features), so a changed input rebuilds and
a library is never loaded on a machine it was not built for. The build
writes a temporary file and renames it, under a file lock, next to a
`.sha256` file recording the library's checksum. A library is loaded only
when its checksum matches (loading a truncated or damaged shared object
would crash the process); one that does not is rebuilt, and if that fails
the graph kernels run, with one warning saying why. Temporary files left
by killed builds are removed by the next build.

How a call runs on this path (`run`):

1. `ZooRecurrenceForward`: the whole recurrence (states, and what the
   backward pass needs when `save=True`);
2. for gradients, `ZooRecurrenceBackward` gives every gradient (inputs,
   weights, initial states), attached with `tf.custom_gradient` to just the
   outputs the layer uses, so that TensorFlow never builds zero gradients
   for the others.

The native path is used when the library loads (a C++ compiler is
present), no GPU is visible (there, training uses cuDNN and inference the
graph kernels), the graph is not being compiled by XLA, and the graph is not
traced for export: inside `portable()` (what `zoo.hub` uses), while
`tf.saved_model.save` traces, or while Keras's `model.export` /
`keras.export.ExportArchive` traces (recognised by its frames on the call
stack), the graph is built from standard TensorFlow ops, so exported models
run without zoo. `ZOO_NATIVE_KERNELS=0` (or `false`, `no`, `off`) turns the
native path off; the graph kernels of `zoo.layers.fused` then run instead.
`1`, `true`, `yes`, `on` or an empty value keep it on; any other value is
rejected with a `ValueError`.

Everything is float32: under a mixed policy the recurrence still runs in
float32 here (on a CPU without AMX, bfloat16 products are slower than
float32 ones).

Threads: the batch is cut into blocks of rows, about eight per thread (whole
8-row tiles of the step product, at least two tiles when the weights outgrow
a core's cache), and the calling thread and the kernels' own helper threads
take blocks from a shared queue, each block running the whole sequence. A
core that is busy with another program, or slower, takes fewer blocks
instead of holding the step; the last blocks, one per thread, are halved
where the halves keep whole tiles. During a call the helper threads keep off the
calling thread's CPU (their affinity, within the CPUs they started with):
woken while every core is busy, Linux would often put a helper on its
waker's core, and the two would share that core while the other core ran
only the other program (measured: about half the quiet speed with one core
busy, instead of about three quarters). The threads are as many as the CPUs this
process may use (or TensorFlow's intra-op threads, if more), or
`$ZOO_KERNEL_THREADS` (a positive integer). `row_block_plan` and `row_blocks`
tell how a shape is cut.
"""

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "kernels" / "recurrence.cc"
SWITCH = "ZOO_NATIVE_KERNELS"
DIRECTORY = "ZOO_KERNEL_DIR"
EXTRA_FLAGS = "ZOO_KERNEL_FLAGS"
THREADS = "ZOO_KERNEL_THREADS"

#: The cell names of the native kernels.
CELLS = ("rnn_tanh", "rnn_sigmoid", "rnn_relu", "rnn_linear", "lstm", "gru",
         "gru_reset_after")

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded = {}  # "library" -> module, or "error" -> why not
_portable = threading.local()


class NativeKernelError(RuntimeError):
    """The native kernels could not be built or loaded."""


def kernel_dir():
    """Where compiled kernels are cached: `$ZOO_KERNEL_DIR`, else `~/.cache/zoo/kernels`."""
    if os.environ.get(DIRECTORY):
        return Path(os.environ[DIRECTORY])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "zoo" / "kernels"


#: Accepted values of `ZOO_NATIVE_KERNELS` (compared lower-case, stripped).
SWITCH_ON = ("1", "true", "yes", "on", "")
SWITCH_OFF = ("0", "false", "no", "off")


def native_switch_on():
    """Whether `ZOO_NATIVE_KERNELS` allows the native kernels; `ValueError` for an unclear value."""
    value = os.environ.get(SWITCH)
    if value is None:
        return True
    cleaned = value.strip().lower()
    if cleaned in SWITCH_ON:
        return True
    if cleaned in SWITCH_OFF:
        return False
    raise ValueError(f"{SWITCH} must be one of 1, true, yes, on (use the native kernels) or "
                     f"0, false, no, off (use the graph kernels); received {value!r}")


def kernel_threads():
    """Threads the kernels use per call from `$ZOO_KERNEL_THREADS`; 0 (unset or empty): automatic."""
    value = os.environ.get(THREADS, "").strip()
    if not value:
        return 0
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS} must be a positive integer (threads per kernel call) or "
                         f"empty (as many as the CPUs); received {os.environ[THREADS]!r}")
    return threads


def checksum_path(library):
    """The file recording the sha256 of `library`, written by the build."""
    return Path(library).with_name(Path(library).name + ".sha256")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_problem(library):
    """Why the library file at `library` must not be loaded, or None when its checksum matches."""
    library = Path(library)
    record = checksum_path(library)
    if not library.exists():
        return "it does not exist"
    try:
        expected = record.read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return f"its checksum file {record.name} is missing or unreadable"
    try:
        actual = _sha256(library)
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    if actual != expected:
        return (f"its sha256 {actual[:16]}... differs from the one recorded at build time "
                f"{expected[:16]}... (truncated or damaged)")
    return None


def _remove_stray_temporaries(directory):
    """Remove `tmp*.so` files of killed builds (call with the build lock held)."""
    for stray in Path(directory).glob("tmp*.so"):
        try:
            stray.unlink()
        except OSError:
            pass


def _compiler():
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _cpu_features():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _build_inputs():
    """(compiler, flags, a digest of everything the library depends on)."""
    import tensorflow as tf

    compiler = _compiler()
    if compiler is None:
        raise NativeKernelError("no C++ compiler found (g++ or $CXX)")
    features = _cpu_features()
    flags = ["-shared", "-fPIC", "-O3", "-w", *tf.sysconfig.get_compile_flags()]
    if sys.platform.startswith("linux"):
        flags.append("-march=native")
        # Eigen's half-precision AVX512-FP16 code does not compile with GCC.
        if "avx512_fp16" in features.split():
            flags.append("-mno-avx512fp16")
    # Extra compiler flags, e.g. "-mno-avx512f" to build (and test) the
    # portable product path on an AVX-512 machine.
    flags += os.environ.get(EXTRA_FLAGS, "").split()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    # The key names TensorFlow by its release and build, not by where it is installed: a fresh clone
    # (a new virtual environment with the same TensorFlow) reuses the library built for another one
    # (the library links to TensorFlow's framework by name; no install path is stored in it).
    where = os.path.dirname(tf.sysconfig.get_include())
    portable = [" ".join(flags).replace(where, "<tensorflow>"),
                " ".join(tf.sysconfig.get_link_flags()).replace(where, "<tensorflow>")]
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__, tf.version.GIT_VERSION, tf.version.COMPILER_VERSION,
                 *portable, version, features):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return compiler, flags, digest.hexdigest()[:16]


def library_path():
    """The path of the compiled library for this machine (built or not)."""
    return kernel_dir() / f"zoo_recurrence-{_build_inputs()[2]}.so"


def build(verbose=False, notify=False):
    """Compiles the kernels unless an intact library is cached; returns its path.

    A cached library whose checksum does not match the one recorded when it
    was built is removed and compiled again. `notify` prints a one-line
    notice before compiling (on first use). Raises `NativeKernelError`.
    """
    compiler, flags, digest = _build_inputs()
    target = kernel_dir() / f"zoo_recurrence-{digest}.so"
    if library_problem(target) is None:
        return target
    try:
        return _build_locked(target, compiler, flags, verbose, notify)
    except OSError as error:
        raise NativeKernelError(
            f"cannot write the kernel cache {target.parent}: {error.strerror or error}; set "
            f"{DIRECTORY} to a writable directory"
        ) from None


def _build_locked(target, compiler, flags, verbose, notify):
    import fcntl

    import tensorflow as tf

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_stray_temporaries(target.parent)
        problem = library_problem(target)
        if problem is None:  # built by another process meanwhile
            return target
        if target.exists():
            _log.warning("zoo native kernels: rebuilding %s: %s", target, problem)
            target.unlink()
        if notify:
            print("zoo: compiling the native recurrence kernels for this machine "
                  "(once, about 30 s)", file=sys.stderr)
        handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(handle)
        command = [compiler, *flags, str(SOURCE), "-o", temporary,
                   *tf.sysconfig.get_link_flags()]
        if verbose:
            print(" ".join(command), file=sys.stderr)
        try:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise NativeKernelError(
                    f"compiling {SOURCE.name} failed ({compiler}, exit {result.returncode}):\n"
                    + result.stderr[-4000:]
                )
            record = checksum_path(target)
            record_temporary = record.with_name(f".tmp-{os.getpid()}-{record.name}")
            record_temporary.write_text(f"{_sha256(temporary)}  {target.name}\n", encoding="utf-8")
            os.replace(record_temporary, record)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return target


def load():
    """The loaded op library, building it on first use; raises NativeKernelError."""
    with _lock:
        if "library" in _loaded:
            return _loaded["library"]
        if "error" in _loaded:
            raise NativeKernelError(_loaded["error"])
        try:
            import tensorflow as tf

            library = tf.load_op_library(str(build(notify=True)))
            _register_gradient_errors(tf)
        except Exception as error:  # noqa: BLE001 - any failure means: not available
            _loaded["error"] = f"{type(error).__name__}: {error}"
            _log.warning("zoo native kernels unavailable, using graph kernels: %s",
                         _loaded["error"])
            raise NativeKernelError(_loaded["error"]) from error
        _loaded["library"] = library
        return library


def unavailable_reason():
    """Why the native kernels cannot run in this process, or None."""
    if not native_switch_on():
        return f"turned off by {SWITCH}={os.environ[SWITCH]}"
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return "a GPU is visible (training uses cuDNN, inference the graph kernels)"
    try:
        load()
    except NativeKernelError as error:
        return str(error).splitlines()[0]
    return None


@contextlib.contextmanager
def portable():
    """Graphs traced inside use only standard TensorFlow ops (for export)."""
    _portable.depth = getattr(_portable, "depth", 0) + 1
    try:
        yield
    finally:
        _portable.depth -= 1


# Modules whose frames on the stack mean "this graph is traced for export":
# Keras's `model.export` / `ExportArchive` and `tf.saved_model.save`.
_EXPORT_MODULES = ("keras.src.export", "tensorflow.python.saved_model")


def _tracing_for_export():
    if getattr(_portable, "depth", 0) > 0:
        return True
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.saved_model import save_context

        if save_context.in_save_context():
            return True
    except ImportError:  # pragma: no cover
        pass
    # Keras's export traces its endpoints when they are added, before any
    # save context exists: look for its frames (only while tracing a graph).
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_EXPORT_MODULES):
            return True
        frame = frame.f_back
    return False


def _in_xla_context():
    import tensorflow as tf

    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover
        return False
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def usable():
    """Whether a graph traced now may use the native kernels."""
    return (
        not _tracing_for_export()
        and not _in_xla_context()
        and unavailable_reason() is None
    )


# ---------------------------------------------------------------------------
# Running and differentiating
# ---------------------------------------------------------------------------


def run(cell, x, params, states, mask=None, *, return_sequences=True, save=True,
        need_dx=True):
    """Runs a recurrence on the native kernels.

    Args:
        cell: one of `CELLS`.
        x: `(T, B, I)` time-major inputs.
        params: `(kernel, bias, recurrent_kernel)`, plus the recurrent bias
            for `gru_reset_after` (Keras layouts).
        states: `(h0,)`, or `(h0, c0)` for the LSTM.
        mask: optional `(T, B, 1)` boolean tensor (False: the step is skipped).
        return_sequences: also return the sequence of states (time-major).
        save: keep what the backward pass needs and attach the gradient;
            otherwise the forward kernel alone runs (inference).
        need_dx: compute the gradient with respect to `x` (otherwise `x` is
            treated as a constant).

    Returns:
        `(sequence or None, final_states)` in float32, like `fused.run`.
    """
    import tensorflow as tf

    from zoo.layers import fused

    library = load()
    threads = kernel_threads()
    f32 = tf.float32
    lstm = cell == "lstm"
    kernel, bias, recurrent_kernel = (tf.cast(p, f32) for p in params[:3])
    units = recurrent_kernel.shape[0]
    if cell == "gru_reset_after":
        recurrent_bias = tf.cast(params[3], f32)
        # z and r add both biases before the nonlinearity; the candidate's
        # recurrent bias sits inside the reset gate's product.
        bias = bias + tf.concat([recurrent_bias[: 2 * units], tf.zeros([units], f32)], 0)
        candidate_bias = recurrent_bias[2 * units :]
    else:
        candidate_bias = tf.zeros([0], f32)
    x = tf.cast(x, f32)
    h0 = tf.cast(states[0], f32)
    c0 = tf.cast(states[1], f32) if lstm else tf.zeros([0], f32)
    step_mask = tf.zeros([0], f32) if mask is None else tf.cast(
        tf.reshape(mask, tf.shape(x)[:2]), f32)

    def forward(x, kernel, bias, recurrent_kernel, candidate_bias, h0, c0):
        return library.zoo_recurrence_forward(
            x, kernel, bias, recurrent_kernel, candidate_bias, h0, c0, step_mask,
            cell=cell, save=bool(save), threads=threads,
        )

    def outputs(h_seq, h_last, c_last):
        final = (h_last, c_last) if lstm else (h_last,)
        return ((h_seq,) if return_sequences else ()) + final

    weights = (kernel, bias, recurrent_kernel, candidate_bias, h0, c0)
    if not save:
        result = outputs(*forward(x, *weights)[:3])
    else:
        # Only the outputs the caller uses are outputs of the gradient
        # function: TensorFlow would otherwise fill the gradients of the
        # others (the state sequence, what is saved) with zeros.
        def recurrence(x, weights):
            h_seq, h_last, c_last, saved = forward(x, *weights)

            def gradient(*upstream):
                upstream = list(upstream)
                d_h_seq = upstream.pop(0) if return_sequences else None
                d_h_last = upstream.pop(0)
                d_c_last = upstream.pop(0) if lstm else None
                d_h_seq = tf.zeros([0], f32) if d_h_seq is None else d_h_seq
                d_h_last = tf.zeros_like(h_last) if d_h_last is None else d_h_last
                d_c_last = tf.zeros_like(c_last) if d_c_last is None else d_c_last
                kernel, _, recurrent_kernel, _, h0, c0 = weights
                dx, *d_weights = library.zoo_recurrence_backward(
                    x, kernel, recurrent_kernel, h0, c0, h_seq, saved, step_mask,
                    d_h_seq, d_h_last, d_c_last, cell=cell, input_gradient=need_dx,
                    threads=threads,
                )
                return dx, tuple(d_weights)

            return outputs(h_seq, h_last, c_last), gradient

        result = fused.with_gradient(recurrence, x, weights, need_dx)
    result = list(result)
    sequence = result.pop(0) if return_sequences else None
    return sequence, tuple(result)


def _gates(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; received {cell!r}")
    return {"lstm": 4, "gru": 3, "gru_reset_after": 3}.get(cell, 1)


def row_block_plan(cell, batch, inputs, units, threads=None):
    """How the native kernels cut `batch` rows into blocks for one call.

    Args:
        cell: one of `CELLS`.
        batch: batch rows of the call.
        inputs: input features per step.
        units: state size.
        threads: threads to plan for; None for those a call would use in
            this process (see `kernel_threads`).

    Returns:
        `(rows_per_block, blocks, threads)`: the threads take the blocks
        from a shared queue. `rows_per_block` is the size of the first
        blocks; the last ones may be shorter (see `row_blocks`). Under
        `tf.config.experimental.enable_op_determinism()` blocks have 16 rows
        whatever the number of threads.
    """
    rows, blocks, threads = _plan(cell, batch, inputs, units, threads)[:3]
    return rows, blocks, threads


def row_blocks(cell, batch, inputs, units, threads=None):
    """The blocks of `row_block_plan` as `(first_row, rows)` pairs, in queue order.

    The last blocks, one per thread, are half as large where the halves
    keep whole 8-row tiles, so that the wait for the slowest thread at the
    end of a call is shorter.
    """
    ranges = _plan(cell, batch, inputs, units, threads)[3:]
    return list(zip(ranges[0::2], ranges[1::2]))


def _plan(cell, batch, inputs, units, threads):
    for name, value in (("batch", batch), ("inputs", inputs), ("units", units)):
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0; received {value!r}")
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1 or None; received {threads!r}")
    weights = (int(inputs) + int(units)) * _gates(cell) * int(units)
    plan = load().zoo_recurrence_block_plan(batch=int(batch), weights=weights,
                                            threads=int(threads or kernel_threads()))
    return tuple(int(v) for v in plan.numpy())


def _register_gradient_errors(tf):
    """Clear errors where TensorFlow would look for a gradient `run` did not attach."""

    @tf.RegisterGradient("ZooRecurrenceForward")
    def _forward_without_saved(op, *upstream):
        raise ValueError(
            "zoo native recurrence: a gradient was requested through a forward "
            "pass that ran without keeping its intermediates (save=False); call "
            "the layer with training=True or under a GradientTape"
        )

    @tf.RegisterGradient("ZooRecurrenceBackward")
    def _second_order(op, *upstream):
        raise ValueError(
            "zoo native recurrence: second derivatives are not implemented by the "
            f"native kernels; set {SWITCH}=0 to use the graph kernels"
        )


def main(argv=None):
    """`python -m zoo.layers.native`: build the kernels now and print where they are."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--verbose", action="store_true", help="print the compile command")
    args = parser.parse_args(argv)
    from zoo._backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        path = build(verbose=args.verbose)
    except (NativeKernelError, OSError) as error:
        print(f"zoo native kernels: not built: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
