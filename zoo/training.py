"""Training machinery every recipe shares.

- `select_strategy(kind)`: the `tf.distribute` strategy ("auto": default
  on CPU or one GPU, `MirroredStrategy` over all local GPUs,
  `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers; or
  "default", "mirrored", "multi-worker" by name). `is_chief(strategy)`: whether
  this process writes the shared outputs (checkpoints, logs, the exported model).
- `seed_everything(seed)`: Python, NumPy, TensorFlow and Keras seeds.
- `fit(...)`: `model.fit` with the recipe callbacks: Keras progress bar,
  TensorBoard logs, a checkpoint every epoch that a rerun of the same command
  resumes from (losing at most one epoch), early stopping whose state
  survives the resume, `TerminateOnNaN`, a CSV history and a training-curve
  PNG. Gradient clipping is the optimizer's `global_clipnorm`. The trained
  state outlives `fit`: a rerun of a finished run loads its final weights
  instead of training again, until the recipe publishes the model and calls
  `clear_checkpoints(run_dir)`.
- `hardware_description()`: what the card says the model was trained on.
"""

from zoo import _backend  # noqa: F401

import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np

from zoo.data.cache import atomic_write_text


#: The values `select_strategy` accepts (the recipes' `--strategy`).
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


class ClusterConfigError(ValueError):
    """`TF_CONFIG` does not describe a cluster this process can join; the message says why."""


def cluster_workers():
    """The worker addresses `TF_CONFIG` names (an empty list without `TF_CONFIG`).

    Raises `ClusterConfigError` for a `TF_CONFIG` that is not JSON, whose
    cluster is not a mapping of job names to lists of "host:port" addresses,
    or whose task names a job or an index the cluster does not have.
    """
    if not os.environ.get("TF_CONFIG"):
        return []
    try:
        config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ClusterConfigError(f"TF_CONFIG must be a JSON object, received {config!r}")
    cluster = config.get("cluster", {})
    if not isinstance(cluster, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) and ":" in a for a in v) for v in cluster.values()):
        raise ClusterConfigError(f"TF_CONFIG's cluster must map job names to lists of 'host:port' "
                                 f"addresses, received {cluster!r}")
    task = config.get("task")
    if cluster and task is not None:
        if not isinstance(task, dict) or task.get("type") not in cluster:
            raise ClusterConfigError(f"TF_CONFIG's task must name a job of the cluster "
                                     f"({', '.join(sorted(cluster))}), received {task!r}")
        index, size = task.get("index", 0), len(cluster[task["type"]])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise ClusterConfigError(f"TF_CONFIG's task index must be a whole number in 0..{size - 1} "
                                     f"(the cluster has {size} {task['type']}(s)), received {index!r}")
    return list(cluster.get("worker", []))


def _multi_worker_strategy():
    import tensorflow as tf

    # On CPUs the collectives run as rings over gRPC; on GPUs TensorFlow picks (NCCL).
    # (Physical devices: listing logical ones would start TensorFlow's runtime, after
    # which the collectives can no longer be configured.)
    implementation = (tf.distribute.experimental.CommunicationImplementation.AUTO
                      if tf.config.list_physical_devices("GPU")
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


def _single_worker_strategy(kind):
    """The strategy `kind` names for this machine alone, and its description."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored":
        devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, f"MirroredStrategy ({len(devices)} {'GPU' if gpus else 'CPU'} device(s))"
    if kind == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"MirroredStrategy ({len(gpus)} GPUs)"
    if kind == "auto" and len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0"), "OneDeviceStrategy (1 GPU)"
    return tf.distribute.get_strategy(), f"default strategy ({'GPU' if gpus else 'CPU'})"


def select_strategy(kind="auto", verbose=True):
    """The `tf.distribute` strategy to train with, and a line saying which one runs.

    Args:
        kind: One of `STRATEGIES`:
            - "auto": `MultiWorkerMirroredStrategy` when `TF_CONFIG` names
              several workers, else `MirroredStrategy` over all local GPUs
              when there are several, `OneDeviceStrategy` on one GPU, and
              TensorFlow's default strategy on the CPU.
            - "default": TensorFlow's default strategy (no distribution).
            - "mirrored": `MirroredStrategy` over every local GPU, or over
              every logical CPU device when no GPU is visible.
            - "multi-worker": `MultiWorkerMirroredStrategy` over the cluster
              `TF_CONFIG` describes (this process alone without it); the
              collectives are rings over gRPC on CPUs.
        verbose: Print which strategy runs, with its replica count.

    Returns:
        A `tf.distribute.Strategy`; build and compile the model in its `scope()`.

    Raises:
        ValueError: `kind` is not one of `STRATEGIES`, or `TF_CONFIG` is not
            a JSON object.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; received {kind!r}")
    workers = cluster_workers()
    if kind == "multi-worker" or (kind == "auto" and len(workers) > 1):
        # Created before anything starts TensorFlow's runtime (see `_multi_worker_strategy`).
        strategy = _multi_worker_strategy()
        resolver = strategy.cluster_resolver
        count = max(len(workers), 1)
        role = (f"this is {resolver.task_type} {resolver.task_id}"
                if resolver is not None and resolver.task_type else "this process alone")
        description = (f"MultiWorkerMirroredStrategy ({count} worker{'s' if count > 1 else ''}, "
                       f"{role}{', the chief' if count > 1 and is_chief(strategy) else ''})")
    else:
        strategy, description = _single_worker_strategy(kind)
    if verbose:
        print(f"[zoo] strategy {kind!r}: {description}; "
              f"{strategy.num_replicas_in_sync} replica(s) in sync")
    return strategy


def is_chief(strategy=None):
    """Whether this process writes the shared outputs (checkpoints, logs, exported model).

    In a multi-worker cluster the chief is the task of type "chief", or worker
    0 when the cluster has no "chief" task; every other worker trains alongside
    it but must write only to a directory of its own (see `fit`) and must not
    export. A process that is not part of a cluster is always the chief.

    Args:
        strategy: The `tf.distribute.Strategy` in use (default: the current one).
    """
    import tensorflow as tf

    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def worker_scratch_dir(run_dir, strategy):
    """The directory a non-chief worker writes `run_dir`'s checkpoints and logs to.

    Worker-specific (task type and index) and specific to `run_dir`, under the
    system's temporary directory, so a rerun finds and replaces what a killed
    run left there.
    """
    import hashlib
    import tempfile

    resolver = strategy.cluster_resolver
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / (
        f"zoo-{resolver.task_type}-{resolver.task_id}-{Path(run_dir).name}-{digest}")


def seed_everything(seed, deterministic_ops=False):
    """Seed Python, NumPy, TensorFlow and Keras; optionally force deterministic kernels."""
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def hardware_description():
    import tensorflow as tf

    from zoo.machine import cpu_model

    gpus = tf.config.list_physical_devices("GPU")
    description = {"cpu": cpu_model(), "cpu_count": os.cpu_count()}
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        description["gpus"] = names
    else:
        description["gpus"] = []
    return description


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Early stopping + best-weights checkpoint whose state survives a kill.

    Keras's `EarlyStopping` and `ModelCheckpoint(save_best_only=True)` keep
    the best value in memory, so after a resume they would forget it. This
    callback writes its state (best value, best epoch, patience counter) to
    `early_stopping.json` next to `best.weights.h5` at every epoch end, atomically.

    It also steers the learning rate, with the same resumable state:
    `lr_decay` (a factor in (0, 1]; None or 1: no decay) multiplies the
    learning rate after every epoch without improvement, and `warmup_steps`
    raises it linearly from `1/warmup_steps` of its value over the first
    optimizer steps.
    """

    def __init__(self, run_dir, monitor="val_loss", mode="auto", patience=3,
                 restore_best_weights=True, lr_decay=None, warmup_steps=0):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "auc")) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', received {mode!r}")
        self.mode = mode
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        if lr_decay is not None and not 0.0 < float(lr_decay) <= 1.0:
            raise ValueError(f"lr_decay must be a factor in (0, 1] or None, received {lr_decay!r}")
        if int(warmup_steps) < 0:
            raise ValueError(f"warmup_steps must be >= 0, received {warmup_steps!r}")
        self.lr_decay = None if lr_decay is None or float(lr_decay) == 1.0 else float(lr_decay)
        self.warmup_steps = int(warmup_steps)
        self.state_path = self.run_dir / "early_stopping.json"
        self.best_path = self.run_dir / "best.weights.h5"
        self.state = {"best": None, "best_epoch": None, "wait": 0, "seconds": 0.0, "lr_scale": 1.0}

    def on_train_begin(self, logs=None):
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        self._started = time.time()
        self._seconds_before = self.state.get("seconds", 0.0)
        self._steers_lr = bool(self.lr_decay or self.warmup_steps)
        if self._steers_lr:
            if self.state.get("base_lr") is None:  # a fresh run: the compiled rate is the base
                self.state["base_lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self._set_learning_rate()

    def _set_learning_rate(self):
        rate = self.state["base_lr"] * self.state.get("lr_scale", 1.0)
        if self._step < self.warmup_steps:
            rate *= (self._step + 1) / self.warmup_steps
        self.model.optimizer.learning_rate.assign(rate)

    def on_train_batch_begin(self, batch, logs=None):
        # `_step` counts optimizer steps through the warm-up only: the step after it sets the full rate.
        if self._steers_lr and self._step <= self.warmup_steps:
            self._set_learning_rate()
            self._step += 1

    def _improved(self, value):
        best = self.state["best"]
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"early stopping monitors {self.monitor!r}, but the epoch logs "
                f"have only {sorted(logs)}"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            tmp = self.best_path.with_name(f".tmp-{os.getpid()}.weights.h5")
            self.model.save_weights(tmp)
            os.replace(tmp, self.best_path)
            self.state.update(best=value, best_epoch=epoch, wait=0)
        else:
            self.state["wait"] += 1
            if self.lr_decay:
                self.state["lr_scale"] = self.state.get("lr_scale", 1.0) * self.lr_decay
                self._set_learning_rate()
                print(f"[zoo] no {self.monitor} improvement: learning rate x{self.lr_decay} → "
                      f"{self.state['base_lr'] * self.state['lr_scale']:.3g}")
            if self.state["wait"] >= self.patience:
                print(f"[zoo] early stop: no {self.monitor} improvement in "
                      f"{self.patience} epochs (best epoch {self.state['best_epoch'] + 1})")
                self.model.stop_training = True
        self.state["seconds"] = self._seconds_before + time.time() - self._started
        atomic_write_text(self.state_path, json.dumps(self.state))

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_path.exists():
            self.model.load_weights(self.best_path)


FINAL_WEIGHTS = "final.weights.h5"


def has_resume_checkpoint(run_dir):
    """Whether `fit(..., run_dir=run_dir)` would resume an interrupted run or reuse a finished one."""
    return (Path(run_dir) / "resume").exists()


def finished_run(run_dir):
    """The summary of a finished, not yet cleared run in `run_dir`, or None.

    Such a run kept its checkpoint directory and saved its final weights;
    `fit` on it loads those weights instead of training.
    """
    run_dir = Path(run_dir)
    summary = load_run_summary(run_dir)
    if (summary and summary.get("finished") and (run_dir / "resume").exists()
            and (run_dir / FINAL_WEIGHTS).exists()):
        return summary
    return None


def clear_checkpoints(run_dir):
    """Drop the resume checkpoints and final weights of every run under `run_dir`.

    Recipes call this once the model is published: the next run of the
    command then trains afresh. Logs (history, curves, TensorBoard) stay.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for backup in sorted(run_dir.rglob("resume"), reverse=True):
        if backup.is_dir():
            shutil.rmtree(backup, ignore_errors=True)
    for final in run_dir.rglob(FINAL_WEIGHTS):
        final.unlink(missing_ok=True)


def _load_weights_quietly(model, path):
    import warnings

    with warnings.catch_warnings():
        # The optimizer of a freshly compiled model has no variables yet to restore into.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


LOCK_FILE = ".lock"


class RunDirectoryBusyError(RuntimeError):
    """Another live process is training in the same run directory; the message names it."""


class RunDirectoryMismatchError(ValueError):
    """The run directory holds the training of another model; the message says what to do."""


#: The run directory's record of the model it trains (what a resume must match).
MODEL_RECORD = "model.json"


def model_fingerprint(model):
    """sha256 of what a resume must match: the shapes of the weights, in order, and every
    vocabulary the layers hold (layer names are left out: Keras numbers unnamed layers by
    how many were made before in the process)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(repr(tuple(weight.shape)).encode())

    def layers(container):
        for layer in getattr(container, "layers", ()):
            yield layer
            yield from layers(layer)

    for layer in layers(model):
        for attribute in ("vocabulary", "pieces"):
            value = getattr(layer, attribute, None)
            if isinstance(value, (list, tuple)):
                digest.update(json.dumps([str(v) for v in value]).encode("utf-8"))
        if hasattr(layer, "get_vocabulary"):
            digest.update(json.dumps([str(v) for v in layer.get_vocabulary()]).encode("utf-8"))
    return digest.hexdigest()


def check_model_record(run_dir, model, starting):
    """Record `model`'s fingerprint in a fresh run; refuse to resume or reuse a run of another model.

    A resumed run rebuilds its model from the data and settings of the new
    command; if they changed (other data, another vocabulary, other sizes),
    the checkpoint's weights would be loaded into another model, silently
    wrong where the shapes happen to agree.
    """
    path = Path(run_dir) / MODEL_RECORD
    fingerprint = model_fingerprint(model)
    if starting or not path.exists():  # runs from before the record resume as they did
        atomic_write_text(path, json.dumps({"model": model.name, "fingerprint": fingerprint}) + "\n")
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != fingerprint:
        raise RunDirectoryMismatchError(
            f"{run_dir} holds the training of another model (its configuration differs from this one's: "
            f"the data, the vocabulary or the settings changed since it started), so it cannot be resumed "
            f"or reused. Delete {run_dir} to start afresh, or pass another --run-dir.")


@contextlib.contextmanager
def run_directory_lock(run_dir):
    """Hold an exclusive lock on `run_dir` (a `.lock` file in it) for the duration of the block.

    A second training in the same directory gets `RunDirectoryBusyError`
    naming the process that holds it (its PID, host and command). The lock is
    the kernel's (`flock`): it goes with its process, even after `kill -9`,
    so no stale lock is ever left behind.
    """
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunDirectoryBusyError(
                f"run directory {run_dir} is in use by {holder}; wait for that training to end, or "
                f"give this one another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} on {platform.node()} ({' '.join(sys.argv)[:200]})\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock


def main_guard(main):
    """Run a recipe's `main()`; a busy run directory or a bad `TF_CONFIG` is a one-line error, exit 2."""
    try:
        main()
    except (RunDirectoryBusyError, RunDirectoryMismatchError, ClusterConfigError) as error:
        print(f"{Path(sys.argv[0]).name}: {error}", file=sys.stderr)
        sys.exit(2)


def fit(model, train_data, validation_data, *, epochs, run_dir, monitor="val_loss",
        patience=3, verbose=1, tensorboard=True, extra_callbacks=(), lr_decay=None, warmup_steps=0):
    """Train with checkpoints, resume, early stopping and logs under `run_dir`.

    Rerunning the same call after a kill continues from the last finished
    epoch. Returns a dict with the full history (all epochs, across resumes),
    the best epoch, the number of epochs run and the training time of every
    run of the command (killed ones included).

    `lr_decay` multiplies the learning rate after each epoch without
    improvement of `monitor`; `warmup_steps` ramps it up linearly over the
    first optimizer steps (both resume exactly: `ResumableEarlyStopping`).

    When training ends, the model holds the best weights, which are also
    saved as `final.weights.h5`, and the run is marked finished; the resume
    checkpoint is kept. Calling `fit` again on a finished run (say, after a
    kill during evaluation or export) loads those weights and returns the
    same summary (with `"reused": True`) without training. Call
    `clear_checkpoints(run_dir)` once the model is published, so that the
    next run of the command starts afresh.

    Under a multi-worker strategy (the model's `distribute_strategy`), only
    the chief (`is_chief`) writes to `run_dir`. Every other worker reads the
    chief's state there (whether to resume, the checkpoint to resume from, a
    finished run's weights: `run_dir` must be on storage all workers see for
    a resume across machines) and writes its own checkpoints and logs to
    `worker_scratch_dir(run_dir, strategy)`, removed when its training ends.
    """
    shared_dir = Path(run_dir)
    if shared_dir.exists() and not shared_dir.is_dir():
        raise ValueError(f"run directory {shared_dir} is a file: name a directory (or a path where one "
                         f"can be made) for the checkpoints and logs")
    strategy = getattr(model, "distribute_strategy", None)
    chief = is_chief(strategy)
    if chief:
        shared_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_run(shared_dir)
    if chief:
        check_model_record(shared_dir, model, starting=finished is None and not (shared_dir / "resume").exists())
    if finished is not None:
        print(f"[zoo] training in {shared_dir} already finished; loading its final weights "
              f"(no training)")
        _load_weights_quietly(model, shared_dir / FINAL_WEIGHTS)
        return {"history": read_history(shared_dir / "history.csv"), **finished, "reused": True}
    resuming = (shared_dir / "resume").exists()
    if chief:
        run_dir = shared_dir
    else:
        run_dir = worker_scratch_dir(shared_dir, strategy)
        shutil.rmtree(run_dir, ignore_errors=True)  # what a killed run of this worker left
        run_dir.mkdir(parents=True)
        if resuming:  # start from the chief's state, as the chief does
            shutil.copytree(shared_dir / "resume", run_dir / "resume")
            for name in ("history.csv", "early_stopping.json", "best.weights.h5"):
                if (shared_dir / name).exists():
                    shutil.copy2(shared_dir / name, run_dir / name)
        print(f"[zoo] not the chief worker: checkpoints and logs go to {run_dir} "
              f"(removed when training ends)")
    try:
        with run_directory_lock(run_dir):
            return _fit_in(model, train_data, validation_data, epochs=epochs, run_dir=run_dir,
                           resuming=resuming, publish=chief, kill_name=shared_dir.name,
                           monitor=monitor, patience=patience, verbose=verbose,
                           tensorboard=tensorboard, extra_callbacks=extra_callbacks,
                           lr_decay=lr_decay, warmup_steps=warmup_steps)
    finally:
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _fit_in(model, train_data, validation_data, *, epochs, run_dir, resuming, publish, kill_name,
            monitor, patience, verbose, tensorboard, extra_callbacks, lr_decay=None, warmup_steps=0):
    """The body of `fit`, writing to `run_dir`; `publish` marks the run finished there."""
    history_path = run_dir / "history.csv"
    backup_dir = run_dir / "resume"
    if not resuming:
        for stale in (history_path, run_dir / "early_stopping.json", run_dir / "best.weights.h5",
                      run_dir / RANDOM_STATE_FILE,
                      run_dir / "run.json", run_dir / FINAL_WEIGHTS):
            if stale.exists():
                stale.unlink()
    else:
        print(f"[zoo] resuming from the checkpoint in {backup_dir}")
    train_data, steps_per_epoch = _continuing(train_data, len(read_history(history_path)) if resuming else 0)
    early = ResumableEarlyStopping(run_dir, monitor=monitor, patience=patience, lr_decay=lr_decay,
                                   warmup_steps=warmup_steps)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=False),
        early,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        RandomStateCheckpoint(run_dir, resuming),
        *extra_callbacks,
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    stop_on_sigterm = StopAfterEpochOnSigterm()
    callbacks.append(stop_on_sigterm)  # after every callback that checkpoints at the epoch's end
    kill = os.environ.get("ZOO_KILL_AFTER_EPOCH")  # test hook: "[run-dir name:]epoch"
    if kill:
        target, _, epoch_number = kill.rpartition(":")
        if not target or target == kill_name:
            callbacks.append(_KillAfterEpoch(int(epoch_number)))
    _ready_for_multi_worker(model)
    started = time.time()
    with stop_on_sigterm.listening():
        model.fit(train_data, validation_data=validation_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)  # tf.data shuffles
    elapsed = time.time() - started
    history = read_history(history_path)
    if history:
        plot_history(history, run_dir / "training_curve.png", monitor=monitor)
    summary = {
        "best_epoch": None if early.state["best_epoch"] is None else early.state["best_epoch"] + 1,
        "best_value": early.state["best"],
        "epochs_run": len(history),
        # training time across every run of this command, killed ones included
        "seconds": early.state.get("seconds", elapsed),
        "resumed": resuming,
    }
    if not publish:
        return {"history": history, **summary}
    # The trained state outlives this call until the model is published: the final
    # weights first, then the summary that marks the run finished (both atomic).
    backup_dir.mkdir(exist_ok=True)
    temporary = run_dir / f".tmp-{os.getpid()}-{FINAL_WEIGHTS}"
    model.save_weights(temporary)
    os.replace(temporary, run_dir / FINAL_WEIGHTS)
    atomic_write_text(run_dir / "run.json", json.dumps({**summary, "finished": True}))
    return {"history": history, **summary}


def _continuing(train_data, finished_epochs):
    """The training data as one endless stream, started where epoch `finished_epochs + 1` starts.

    A reshuffling `Dataset.shuffle(..., seed=...)` draws each epoch's order
    from a seeded generator that starts afresh in every process: a resumed run
    would replay epoch 1's order. Repeated into one stream (each repetition
    reshuffled) and skipped past the finished epochs, it gives a resumed run
    exactly the batches an uninterrupted run sees. Returns `(data,
    steps_per_epoch)`; data whose size is unknown come back unchanged (None).
    """
    import tensorflow as tf

    if not isinstance(train_data, tf.data.Dataset):
        return train_data, None
    steps = int(train_data.cardinality())
    if steps == tf.data.UNKNOWN_CARDINALITY:
        # e.g. bucketed batches: their number per epoch does not depend on the order, so one
        # counting pass (the same in an uninterrupted and a resumed run) gives it
        steps = int(train_data.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    if steps <= 0:  # empty or infinite: nothing to align
        return train_data, None
    return train_data.repeat().skip(finished_epochs * steps), steps


def _ready_for_multi_worker(model):
    """Work around two Keras 3 problems of `fit`/`evaluate` under `MultiWorkerMirroredStrategy`.

    In Keras 3 (3.15 at least; tensorflow/tensorflow#72388) a model made in the
    scope of a multi-worker strategy cannot train with `fit`:

    1. The model is built from the first batch averaged over replicas with
       one `strategy.reduce` call on the whole `(x, y)` structure, which this
       strategy refuses ("Attempt to convert a value (PerReplica...)"), and
       string inputs could not be averaged anyway. Only shapes and dtypes
       matter for the build: this model builds from its own worker's share
       of the batch instead (an override on this model instance).
    2. The logs of every train/test step (scalar metric results) are reduced
       across workers with `axis=0`, which fails on scalars ("Invalid
       reduction dimension 0 for input with 0 dimensions"). Keras's reducer
       is wrapped (once per process) to average them across workers with
       `axis=None` instead, for this strategy only; every other case goes to
       Keras's own code unchanged.

    Does nothing for a model made under any other strategy.
    """
    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer as keras_trainer

    strategy = getattr(model, "_distribute_strategy", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    keras_reduce = getattr(keras_trainer, "reduce_per_replica", None)
    if keras_reduce is not None and not getattr(keras_reduce, "zoo_across_workers", False):

        def reduce_per_replica(values, strategy, reduction):
            multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            if reduction == "auto" and multi_worker and strategy.extended._in_multi_worker_mode():
                return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None),
                                          values)
            return keras_reduce(values, strategy, reduction)

        reduce_per_replica.zoo_across_workers = True
        keras_trainer.reduce_per_replica = reduce_per_replica

    keras_build = getattr(model, "_maybe_symbolic_build", None)
    if keras_build is None or getattr(keras_build, "zoo_local_batches", False):
        return

    def local_share(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local_share, next(batches))
                break
        return keras_build(data_batch=data_batch)

    build.zoo_local_batches = True
    model._maybe_symbolic_build = build

def run_artifacts(run_dir):
    """(path, name in the model directory) of a run's training curve and history, for `hub.export_model`."""
    return [(os.path.join(run_dir, "training_curve.png"), "training_curve.png"),
            (os.path.join(run_dir, "history.csv"), "history.csv")]


def load_run_summary(run_dir):
    """The summary `fit` wrote at the end of its last run in `run_dir` (None if none)."""
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


class EpochWeights(keras.callbacks.Callback):
    """Writes the weights of every finished epoch to `directory` as ``epoch-NNN.weights.h5`` (1-based,
    atomically), for `average_epoch_weights`. Files on disk survive a kill, so a resumed run keeps
    the epochs it had; `clear` removes those of an earlier run."""

    def __init__(self, directory):
        super().__init__()
        self.directory = Path(directory)

    def path(self, epoch_number):
        return self.directory / f"epoch-{int(epoch_number):03d}.weights.h5"

    def clear(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".tmp-{os.getpid()}.weights.h5"
        self.model.save_weights(temporary)
        os.replace(temporary, self.path(epoch + 1))


def average_epoch_weights(model, saved, epoch_numbers):
    """Sets `model`'s weights to the mean of those `saved` (an `EpochWeights`) holds for
    `epoch_numbers` (1-based); weights that are not floating point (lookup tables, counts) are
    taken from the first of them. Raises FileNotFoundError naming a missing epoch."""
    epoch_numbers = list(epoch_numbers)
    if not epoch_numbers:
        raise ValueError("name at least one epoch to average")
    missing = [n for n in epoch_numbers if not saved.path(n).exists()]
    if missing:
        raise FileNotFoundError(f"no saved weights for epoch(s) {missing} in {saved.directory}")
    totals = None
    for number in epoch_numbers:
        model.load_weights(saved.path(number))
        weights = model.get_weights()
        totals = weights if totals is None else [t + w if np.issubdtype(w.dtype, np.floating) else t
                                                 for t, w in zip(totals, weights)]
    model.set_weights([t / len(epoch_numbers) if np.issubdtype(t.dtype, np.floating) else t for t in totals])


class StopAfterEpochOnSigterm(keras.callbacks.Callback):
    """A scheduler's stop (SIGTERM) ends training cleanly: the current epoch finishes, its
    checkpoint is written, and the process exits with status 143 (128 + SIGTERM). Rerunning
    the command resumes from that epoch, with the weights an uninterrupted run would have."""

    def __init__(self):
        super().__init__()
        self.requested = False

    @contextlib.contextmanager
    def listening(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def request(number, _frame):
            if not self.requested:
                print("[zoo] SIGTERM: stopping when this epoch ends (its checkpoint is written first)",
                      flush=True)
            self.requested = True

        previous = signal.signal(signal.SIGTERM, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def on_epoch_end(self, epoch, logs=None):
        if self.requested:
            print(f"[zoo] stopped after epoch {epoch + 1} on SIGTERM; rerun the same command to resume",
                  flush=True)
            raise SystemExit(128 + signal.SIGTERM)


RANDOM_STATE_FILE = "random_state.json"


def _seed_generators(model):
    """Every Keras `SeedGenerator` the model's layers draw from, and the global one (if made)."""
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    found, seen = {}, set()
    for index, layer in enumerate(model._flatten_layers(include_self=True)):
        for number, generator in enumerate(getattr(layer, "_seed_generators", [])):
            if id(generator) not in seen:
                seen.add(id(generator))
                found[f"{index}:{layer.name}#{number}"] = generator
    global_generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    if global_generator is not None and id(global_generator) not in seen:
        found["global"] = global_generator
    return found


class RandomStateCheckpoint(keras.callbacks.Callback):
    """Saves the state of every random generator (dropout, augmentation) at each epoch's end,
    and restores it when a run resumes, so a resumed run draws the masks an uninterrupted
    one would (the weights and optimizer come back through `BackupAndRestore`)."""

    def __init__(self, run_dir, resuming):
        super().__init__()
        self.path = Path(run_dir) / RANDOM_STATE_FILE
        self.resuming = resuming

    def on_train_begin(self, logs=None):
        if not (self.resuming and self.path.exists()):
            return
        saved = json.loads(self.path.read_text())
        for name, generator in _seed_generators(self.model).items():
            if name in saved:
                generator.state.assign(np.asarray(saved[name], dtype=generator.state.dtype))

    def on_epoch_end(self, epoch, logs=None):
        states = {name: np.asarray(generator.state.numpy()).tolist()
                  for name, generator in _seed_generators(self.model).items()}
        atomic_write_text(self.path, json.dumps(states))


class _KillAfterEpoch(keras.callbacks.Callback):
    """Test hook: SIGKILL this process at the end of epoch `epoch_number` (1-based),
    after every other callback has written its checkpoint: a real, abrupt kill."""

    def __init__(self, epoch_number):
        super().__init__()
        self.epoch_number = epoch_number

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch_number:
            print(f"[zoo] ZOO_KILL_AFTER_EPOCH={self.epoch_number}: killing the process", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def read_history(path):
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            # A torn last line (a kill mid-write) or a repeated header (an old run that appended
            # twice) is skipped, so a rerun can always read its own history.
            try:
                rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()
                             if k is not None and v not in ("", "NA", None)})
            except (TypeError, ValueError):
                continue
            if "epoch" not in rows[-1]:
                rows.pop()
    return rows


def plot_history(history, path, monitor="val_loss"):
    """Training curves (loss and every metric, train vs validation) as a PNG, written atomically."""
    from zoo.figures import new_figure, write_png

    keys = [k for k in history[0] if k not in ("epoch", "learning_rate") and not k.startswith("val_")]
    fig = new_figure(4.5 * len(keys), 3.5)
    axes = fig.subplots(1, len(keys), squeeze=False)
    epochs = [row["epoch"] + 1 for row in history]
    for axis, key in zip(axes[0], keys):
        axis.plot(epochs, [row.get(key) for row in history], marker="o", label=f"train {key}")
        if f"val_{key}" in history[0]:
            axis.plot(epochs, [row.get(f"val_{key}") for row in history], marker="o",
                      label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend()
    return write_png(fig, path, dpi=100)
