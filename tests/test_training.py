"""The shared training machinery: strategy choice, resumable early stopping, curves."""

import json

import keras
import numpy as np
import pytest

from zoo import training


def test_strategy_on_cpu_is_the_default_one(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = training.select_strategy(verbose=False)
    assert strategy.num_replicas_in_sync == 1
    assert strategy is tf.distribute.get_strategy()


def test_bad_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        training.select_strategy(verbose=False)


def _tiny_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 5, 3)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _tiny_model():
    from zoo import layers

    model = keras.Sequential([keras.Input((5, 3)), layers.GRU(4), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0), loss="binary_crossentropy")
    return model


def test_fit_writes_history_curve_and_best_weights(tmp_path):
    training.seed_everything(0)
    data = _tiny_problem()
    model = _tiny_model()
    run = training.fit(model, data, data, epochs=3, run_dir=tmp_path, patience=5, verbose=0,
                       tensorboard=False)
    assert run["epochs_run"] == 3 and not run["resumed"]
    assert (tmp_path / "training_curve.png").stat().st_size > 1000
    assert (tmp_path / "best.weights.h5").exists()
    # The trained state is kept (until the recipe publishes the model) and the run marked finished.
    assert (tmp_path / "resume").is_dir() and (tmp_path / training.FINAL_WEIGHTS).exists()
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["epochs_run"] == 3 and summary["best_epoch"] in (1, 2, 3)
    assert summary["finished"] is True


def test_epoch_weights_are_saved_each_epoch_and_averaged(tmp_path):
    training.seed_everything(0)
    data = _tiny_problem()
    model = _tiny_model()
    saved = training.EpochWeights(tmp_path / "epochs")
    training.fit(model, data, data, epochs=3, run_dir=tmp_path / "run", patience=5, verbose=0, tensorboard=False,
                 extra_callbacks=[saved])
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == [
        "epoch-001.weights.h5", "epoch-002.weights.h5", "epoch-003.weights.h5"]
    per_epoch = []
    for number in (2, 3):
        model.load_weights(saved.path(number))
        per_epoch.append(model.get_weights())
    assert not all(np.allclose(a, b) for a, b in zip(*per_epoch))  # training moved the weights
    training.average_epoch_weights(model, saved, [2, 3])
    for averaged, second, third in zip(model.get_weights(), *per_epoch):
        np.testing.assert_allclose(averaged, (second + third) / 2, rtol=1e-6, atol=1e-7)
    with pytest.raises(FileNotFoundError, match=r"epoch\(s\) \[7\]"):
        training.average_epoch_weights(model, saved, [3, 7])
    saved.clear()
    assert not (tmp_path / "epochs").exists()


def test_rerun_of_a_finished_run_loads_its_weights_without_training(tmp_path, capsys):
    training.seed_everything(0)
    data = _tiny_problem()
    trained = _tiny_model()
    first = training.fit(trained, data, data, epochs=2, run_dir=tmp_path, patience=5, verbose=0,
                         tensorboard=False)
    history_before = (tmp_path / "history.csv").read_text()
    fresh = _tiny_model()  # another initialization, as in a new process
    assert any(not np.array_equal(a, b) for a, b in zip(trained.get_weights(), fresh.get_weights()))
    again = training.fit(fresh, data, data, epochs=2, run_dir=tmp_path, patience=5, verbose=0,
                         tensorboard=False)
    assert "already finished" in capsys.readouterr().out
    assert again["reused"] and again["epochs_run"] == first["epochs_run"] == 2
    assert again["best_epoch"] == first["best_epoch"]
    assert (tmp_path / "history.csv").read_text() == history_before  # no epoch was trained
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cleared_checkpoints_start_a_fresh_run(tmp_path):
    training.seed_everything(0)
    data = _tiny_problem()
    training.fit(_tiny_model(), data, data, epochs=1, run_dir=tmp_path / "stage", patience=5,
                 verbose=0, tensorboard=False)
    training.clear_checkpoints(tmp_path)
    assert not (tmp_path / "stage" / "resume").exists()
    assert not (tmp_path / "stage" / training.FINAL_WEIGHTS).exists()
    assert training.finished_run(tmp_path / "stage") is None
    run = training.fit(_tiny_model(), data, data, epochs=2, run_dir=tmp_path / "stage", patience=5,
                       verbose=0, tensorboard=False)
    assert not run["resumed"] and "reused" not in run and run["epochs_run"] == 2


def test_early_stopping_state_survives_a_restart(tmp_path):
    """A run that stops early, then a second run in the same directory, continues the patience count."""
    data = _tiny_problem()
    state = {"best": -1.0, "best_epoch": 0, "wait": 1, "seconds": 5.0}  # an unbeatable best value
    (tmp_path / "early_stopping.json").write_text(json.dumps(state))
    (tmp_path / "resume").mkdir()  # pretend a killed run left its checkpoint directory
    model = _tiny_model()
    run = training.fit(model, data, data, epochs=10, run_dir=tmp_path, patience=2, verbose=0,
                       tensorboard=False)
    assert run["resumed"]
    assert run["epochs_run"] == 1  # wait went 1 -> 2 = patience after one more epoch
    assert run["seconds"] >= 5.0  # time of the earlier run is counted


def test_early_stopping_rejects_unknown_monitor(tmp_path):
    data = _tiny_problem()
    with pytest.raises(ValueError, match="monitors 'val_auc'"):
        training.fit(_tiny_model(), data, data, epochs=1, run_dir=tmp_path, monitor="val_auc",
                     verbose=0, tensorboard=False)


class _RecordLearningRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_warmup_ramps_the_learning_rate_linearly(tmp_path):
    training.seed_everything(0)
    data = _tiny_problem()  # 4 batches an epoch
    record = _RecordLearningRate()
    training.fit(_tiny_model(), data, data, epochs=2, run_dir=tmp_path, patience=5, verbose=0,
                 tensorboard=False, warmup_steps=5, extra_callbacks=[record])
    np.testing.assert_allclose(record.rates, [2e-3, 4e-3, 6e-3, 8e-3, 1e-2, 1e-2, 1e-2, 1e-2], rtol=1e-6)


def test_learning_rate_decays_after_each_epoch_without_improvement_and_resumes(tmp_path):
    data = _tiny_problem()
    # An unbeatable best value: every epoch is one without improvement.
    state = {"best": -1.0, "best_epoch": 0, "wait": 0, "seconds": 0.0, "lr_scale": 0.5, "base_lr": 1e-2}
    (tmp_path / "early_stopping.json").write_text(json.dumps(state))
    (tmp_path / "resume").mkdir()
    record = _RecordLearningRate()
    run = training.fit(_tiny_model(), data, data, epochs=10, run_dir=tmp_path, patience=2, verbose=0,
                       tensorboard=False, lr_decay=0.5, extra_callbacks=[record])
    assert run["epochs_run"] == 2
    # The resumed scale (0.5) applies from the first step, then halves after the first epoch.
    np.testing.assert_allclose(record.rates, [5e-3] * 4 + [2.5e-3] * 4, rtol=1e-6)
    saved = json.loads((tmp_path / "early_stopping.json").read_text())
    assert saved["lr_scale"] == 0.125 and saved["base_lr"] == 1e-2


def test_learning_rate_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="lr_decay must be a factor in"):
        training.ResumableEarlyStopping(tmp_path, lr_decay=1.5)
    assert training.ResumableEarlyStopping(tmp_path, lr_decay=1.0).lr_decay is None  # 1: no decay
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        training.ResumableEarlyStopping(tmp_path, warmup_steps=-1)


# -- one training per run directory; a history a rerun can always read ----------------------

HOLD_LOCK = """
import sys, time
from zoo.training import run_directory_lock
with run_directory_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_training_in_a_busy_run_directory_is_refused(tmp_path, capsys):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        model = _tiny_model()
        with pytest.raises(training.RunDirectoryBusyError, match=f"PID {holder.pid}"):
            training.fit(model, _tiny_problem(), _tiny_problem(), epochs=1, run_dir=tmp_path, verbose=0,
                         tensorboard=False)
        assert not (tmp_path / "history.csv").exists()  # nothing of the busy run was touched

        def recipe_main():
            training.fit(model, _tiny_problem(), _tiny_problem(), epochs=1, run_dir=tmp_path, verbose=0,
                         tensorboard=False)

        with pytest.raises(SystemExit) as raised:
            training.main_guard(recipe_main)
        assert raised.value.code == 2
        assert f"in use by PID {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # the holder died (as after kill -9): the lock went with it
    run = training.fit(_tiny_model(), _tiny_problem(), _tiny_problem(), epochs=1, run_dir=tmp_path,
                       verbose=0, tensorboard=False)
    assert run["epochs_run"] == 1


def test_history_with_a_repeated_header_or_a_torn_line_still_reads(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.9,1.0\nepoch,loss,val_loss\n1,0.8,0.95\n2,0.7")
    history = training.read_history(path)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert "val_loss" not in history[2]
    path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.")
    assert len(training.read_history(path)) == 3
    path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,x")
    assert [row["epoch"] for row in training.read_history(path)] == [0, 1]


@pytest.mark.parametrize("config, problem", [
    ({"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 2}}, "0..1"),
    ({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": -1}}, "0..0"),
    ({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": "0"}}, "whole number"),
    ({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "chief", "index": 0}}, "job of the cluster"),
    ({"cluster": {"worker": "localhost:1"}}, "host:port"),
])
def test_a_cluster_this_process_cannot_join_is_a_clear_error(monkeypatch, capsys, config, problem):
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(training.ClusterConfigError, match=problem):
        training.select_strategy("multi-worker", verbose=False)
    with pytest.raises(SystemExit) as raised:
        training.main_guard(lambda: training.select_strategy("multi-worker", verbose=False))
    assert raised.value.code == 2 and problem in capsys.readouterr().err


# -- a resumed run ends with the weights of an uninterrupted one ---------------------------

RESUMABLE_RUN = """
import os, sys, time, numpy as np, keras, tensorflow as tf
from zoo import layers, training
training.seed_everything(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 6, 3)).astype("float32")
y = (x[:, :, 0].sum(1) > 0).astype("float32")
train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256, seed=1, reshuffle_each_iteration=True).batch(32)
val = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32)
model = keras.Sequential([keras.Input((6, 3)), layers.GRU(8, dropout=0.2), keras.layers.Dropout(0.3),
                          keras.layers.Dense(1, activation="sigmoid")])
class Announce(keras.callbacks.Callback):  # says when each epoch begins; with EPOCH_PAUSE, lingers at the second
    def on_epoch_begin(self, epoch, logs=None):
        print('epoch', epoch, flush=True)
        time.sleep(float(os.environ.get("EPOCH_PAUSE", "0")) if epoch == 1 else 0)
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
training.fit(model, train, val, epochs=4, run_dir=sys.argv[1], patience=10, verbose=0, tensorboard=False,
             extra_callbacks=[Announce()])
np.save(sys.argv[2], np.concatenate([w.ravel() for w in model.get_weights()]))
"""


def _start_run(directory, name, kill=None, pause=None):
    """RESUMABLE_RUN in a subprocess (stdout and stderr piped together) on the run directory
    `directory/name`; it saves its final weights to `directory/name.npy`."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1"}
    env.pop("ZOO_KILL_AFTER_EPOCH", None)
    env.pop("EPOCH_PAUSE", None)
    if kill:
        env["ZOO_KILL_AFTER_EPOCH"] = str(kill)
    if pause:
        env["EPOCH_PAUSE"] = str(pause)
    return subprocess.Popen([sys.executable, "-u", "-c", RESUMABLE_RUN, str(directory / name),
                             str(directory / f"{name}.npy")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def uninterrupted_weights(tmp_path_factory):
    """The final weights of RESUMABLE_RUN run once without interruption (both resume tests compare
    with it)."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    whole = _start_run(directory, "whole")
    out, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, out[-2000:]
    return np.load(directory / "whole.npy")


def test_a_killed_and_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, uninterrupted_weights):
    """Shuffled data (each epoch reshuffled) and dropout: the resumed run must see the same batches
    and draw the same masks as an uninterrupted one (data order and random state restored)."""
    killed = _start_run(tmp_path, "resumed", kill=1)
    killed.communicate(timeout=300)
    assert killed.returncode == -9
    finished = _start_run(tmp_path, "resumed")
    out, _ = finished.communicate(timeout=300)
    assert finished.returncode == 0 and "resuming from the checkpoint" in out, out[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "resumed.npy"), uninterrupted_weights, rtol=0, atol=1e-6)


def test_sigterm_finishes_the_epoch_checkpoints_and_resumes_exactly(tmp_path, uninterrupted_weights):
    import signal

    stopped = _start_run(tmp_path, "stopped", pause=1.5)  # epoch 1 waits 1.5 s: time for the signal
    for line in stopped.stdout:  # wait until the second epoch has begun, then stop it as a scheduler would
        if line.startswith("epoch 1"):
            stopped.send_signal(signal.SIGTERM)
            break
    out, _ = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, out[-2000:]
    assert "stopped after epoch 2 on SIGTERM" in out
    rerun = _start_run(tmp_path, "stopped")
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "resuming from the checkpoint" in out, out[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "stopped.npy"), uninterrupted_weights, rtol=0, atol=1e-6)
