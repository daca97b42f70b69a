"""Training machinery every recipe shares.

- `select_strategy()`: the `tf.distribute` strategy for this machine (default
  on CPU or one GPU, `MirroredStrategy` over all local GPUs,
  `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers).
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

import csv
import json
import os
import platform
import shutil
import signal
import time
from pathlib import Path

import keras

from zoo.data.cache import atomic_write_text


def select_strategy(verbose=True):
    """The `tf.distribute` strategy for the devices this process sees."""
    import tensorflow as tf

    workers = []
    if os.environ.get("TF_CONFIG"):
        try:
            workers = json.loads(os.environ["TF_CONFIG"]).get("cluster", {}).get("worker", [])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    gpus = tf.config.list_logical_devices("GPU")
    if len(workers) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        kind = f"MultiWorkerMirroredStrategy ({len(workers)} workers)"
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        kind = f"MirroredStrategy ({len(gpus)} GPUs)"
    elif len(gpus) == 1:
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
        kind = "OneDeviceStrategy (1 GPU)"
    else:
        strategy = tf.distribute.get_strategy()
        kind = "default strategy (CPU)"
    if verbose:
        print(f"[zoo] distribution: {kind}; {strategy.num_replicas_in_sync} replica(s)")
    return strategy


def seed_everything(seed, deterministic_ops=False):
    """Seed Python, NumPy, TensorFlow and Keras; optionally force deterministic kernels."""
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description():
    import tensorflow as tf

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
    """

    def __init__(self, run_dir, monitor="val_loss", mode="auto", patience=3,
                 restore_best_weights=True):
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
        self.state_path = self.run_dir / "early_stopping.json"
        self.best_path = self.run_dir / "best.weights.h5"
        self.state = {"best": None, "best_epoch": None, "wait": 0, "seconds": 0.0}

    def on_train_begin(self, logs=None):
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        self._started = time.time()
        self._seconds_before = self.state.get("seconds", 0.0)

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


def fit(model, train_data, validation_data, *, epochs, run_dir, monitor="val_loss",
        patience=3, verbose=1, tensorboard=True, extra_callbacks=()):
    """Train with checkpoints, resume, early stopping and logs under `run_dir`.

    Rerunning the same call after a kill continues from the last finished
    epoch. Returns a dict with the full history (all epochs, across resumes),
    the best epoch, the number of epochs run and the training time of every
    run of the command (killed ones included).

    When training ends, the model holds the best weights, which are also
    saved as `final.weights.h5`, and the run is marked finished; the resume
    checkpoint is kept. Calling `fit` again on a finished run (say, after a
    kill during evaluation or export) loads those weights and returns the
    same summary (with `"reused": True`) without training. Call
    `clear_checkpoints(run_dir)` once the model is published, so that the
    next run of the command starts afresh.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / "history.csv"
    backup_dir = run_dir / "resume"
    finished = finished_run(run_dir)
    if finished is not None:
        print(f"[zoo] training in {run_dir} already finished; loading its final weights "
              f"(no training)")
        _load_weights_quietly(model, run_dir / FINAL_WEIGHTS)
        return {"history": read_history(history_path), **finished, "reused": True}
    resuming = backup_dir.exists()
    if not resuming:
        for stale in (history_path, run_dir / "early_stopping.json", run_dir / "best.weights.h5",
                      run_dir / "run.json", run_dir / FINAL_WEIGHTS):
            if stale.exists():
                stale.unlink()
    else:
        print(f"[zoo] resuming from the checkpoint in {backup_dir}")
    early = ResumableEarlyStopping(run_dir, monitor=monitor, patience=patience)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=False),
        early,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        *extra_callbacks,
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    kill = os.environ.get("ZOO_KILL_AFTER_EPOCH")  # test hook: "[run-dir name:]epoch"
    if kill:
        target, _, epoch_number = kill.rpartition(":")
        if not target or target == run_dir.name:
            callbacks.append(_KillAfterEpoch(int(epoch_number)))
    started = time.time()
    model.fit(train_data, validation_data=validation_data, epochs=epochs,
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
    # The trained state outlives this call until the model is published: the final
    # weights first, then the summary that marks the run finished (both atomic).
    backup_dir.mkdir(exist_ok=True)
    temporary = run_dir / f".tmp-{os.getpid()}-{FINAL_WEIGHTS}"
    model.save_weights(temporary)
    os.replace(temporary, run_dir / FINAL_WEIGHTS)
    atomic_write_text(run_dir / "run.json", json.dumps({**summary, "finished": True}))
    return {"history": history, **summary}


def load_run_summary(run_dir):
    """The summary `fit` wrote at the end of its last run in `run_dir` (None if none)."""
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


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
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""})
    return rows


def plot_history(history, path, monitor="val_loss"):
    """Training curves (loss and every metric, train vs validation) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("epoch", "learning_rate") and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
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
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
