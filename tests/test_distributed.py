"""Training under tf.distribute for real: two worker processes on 127.0.0.1, and MirroredStrategy.

Every worker is a separate process (`tests/distributed_worker.py`) with its own
`TF_CONFIG`, on free localhost ports. Each process runs under a timeout, in a
process group of its own that the test kills on any failure, so a hung
collective cannot outlive the test.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zoo import training

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
#: Seconds a cluster may take to start, train and export on a busy 2-core machine.
CLUSTER_TIMEOUT = 300
#: Largest difference allowed between the weights of the two-worker run and of one process with
#: the same global batch (observed: 6e-8; the sums are only ordered differently).
WEIGHT_TOLERANCE = 1e-5

sys.path.insert(0, str(HERE))
import distributed_worker  # noqa: E402


def free_localhost_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


class Cluster:
    """Two worker processes of one training job on 127.0.0.1; `stop()` kills whatever still runs."""

    def __init__(self, tmp_path, label, run_dir, hub, epochs, extra_args=((), ())):
        ports = free_localhost_ports(2)
        addresses = [f"127.0.0.1:{port}" for port in ports]
        self.processes, self.logs, self.reports, self.scratch = [], [], [], []
        for index in range(2):
            scratch = tmp_path / f"worker{index}-tmp"  # this worker's TMPDIR
            scratch.mkdir(exist_ok=True)
            log = tmp_path / f"{label}-worker{index}.log"
            report = tmp_path / f"{label}-worker{index}.json"
            env = dict(os.environ, TMPDIR=str(scratch), TF_CPP_MIN_LOG_LEVEL="2",
                       KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="",
                       TF_CONFIG=json.dumps({"cluster": {"worker": addresses},
                                             "task": {"type": "worker", "index": index}}))
            env.pop("ZOO_KILL_AFTER_EPOCH", None)
            command = [sys.executable, str(WORKER), "--run-dir", str(run_dir), "--hub", str(hub),
                       "--report", str(report), "--epochs", str(epochs), *extra_args[index]]
            with open(log, "w") as handle:
                self.processes.append(subprocess.Popen(
                    command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True))
            self.logs.append(log)
            self.reports.append(report)
            self.scratch.append(scratch)

    def wait(self, indices=(0, 1), timeout=CLUSTER_TIMEOUT):
        """Wait for the workers `indices` to exit; kill the cluster and fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        for index in indices:
            try:
                self.processes[index].wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                pytest.fail(f"worker {index} still running after {timeout} s\n{self.output()}")
        return [self.processes[index].returncode for index in indices]

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=30)

    def log(self, index):
        return self.logs[index].read_text(errors="replace")

    def output(self):
        return "\n".join(f"--- worker {i} ---\n{self.log(i)[-4000:]}" for i in range(2))

    def report(self, index):
        return json.loads(self.reports[index].read_text())


@pytest.fixture
def clusters():
    started = []
    yield started
    for cluster in started:  # stops by itself, whatever happened in the test
        cluster.stop()


def single_process_run(run_dir, epochs):
    """The same training in this process, without distribution: the reference weights."""
    model, run, _ = distributed_worker.train("default", run_dir, epochs)
    return model.get_weights(), run


def assert_weights_close(report, reference):
    assert len(report["weights"]) == len(reference)
    for got, expected in zip(report["weights"], reference):
        np.testing.assert_allclose(np.asarray(got, dtype="float32"), expected, rtol=0,
                                   atol=WEIGHT_TOLERANCE)


def test_two_workers_train_like_one_process_and_only_the_chief_writes(tmp_path, clusters):
    run_dir, hub = tmp_path / "run", tmp_path / "hub"
    epochs = 2
    cluster = Cluster(tmp_path, "train", run_dir, hub, epochs)
    clusters.append(cluster)
    returncodes = cluster.wait()
    assert returncodes == [0, 0], cluster.output()
    chief, other = cluster.report(0), cluster.report(1)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["history_epochs"] == other["history_epochs"] == list(range(epochs))
    assert "MultiWorkerMirroredStrategy (2 workers, this is worker 0, the chief)" in cluster.log(0)

    # The chief alone writes checkpoints, curves and the exported model ...
    for name in ("history.csv", "training_curve.png", "run.json", training.FINAL_WEIGHTS,
                 "best.weights.h5", "resume/training_metadata.json", "tensorboard"):
        assert (run_dir / name).exists(), name
    assert sorted(path.name for path in hub.iterdir()) == ["tiny-gru"]
    assert (hub / "tiny-gru" / "card.json").exists()
    # ... the other worker wrote to a directory of its own under its TMPDIR, removed at the end.
    assert f"checkpoints and logs go to {cluster.scratch[1]}" in cluster.log(1)
    assert list(cluster.scratch[1].iterdir()) == []
    assert "not the chief" not in cluster.log(0)

    # Same global batch in one process: the same weights, the same kernels.
    reference, run = single_process_run(tmp_path / "single", epochs)
    assert_weights_close(chief, reference)
    assert_weights_close(other, reference)
    assert chief["run"]["kernel"] == other["run"]["kernel"] == run["kernel"]
    assert chief["run"]["best_value"] == pytest.approx(run["best_value"], abs=1e-5)


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_resumes_both_from_the_last_checkpoint(tmp_path, clusters):
    run_dir, hub = tmp_path / "run", tmp_path / "hub"
    epochs = 3
    # Worker 1 is killed in the middle of epoch 2; the chief is then killed too (a restart of
    # the whole job, as a cluster manager does).
    first = Cluster(tmp_path, "killed", run_dir, hub, epochs, extra_args=((), ("--kill-at", "2:1")))
    clusters.append(first)
    assert first.wait(indices=(1,)) == [-signal.SIGKILL], first.output()
    assert "killing this worker at epoch 2, batch 1" in first.log(1)
    first.stop()
    metadata = json.loads((run_dir / "resume" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1  # the checkpoint holds the one finished epoch
    assert not hub.exists() and not (run_dir / "run.json").exists()
    assert list((first.scratch[1]).iterdir())  # the killed worker left its scratch directory

    second = Cluster(tmp_path, "restarted", run_dir, hub, epochs)
    clusters.append(second)
    assert second.wait() == [0, 0], second.output()
    for index in range(2):
        assert "resuming from the checkpoint" in second.log(index)
        assert second.report(index)["run"]["resumed"] is True
        # Epoch 1 was not trained again: its row was written once, by the first run.
        assert second.report(index)["history_epochs"] == list(range(epochs))
    assert list(second.scratch[1].iterdir()) == []  # the leftover was replaced, then removed
    assert (hub / "tiny-gru" / "card.json").exists()

    reference, _ = single_process_run(tmp_path / "single", epochs)
    assert_weights_close(second.report(0), reference)
    assert_weights_close(second.report(1), reference)


@pytest.mark.slow  # 11 s; the two-worker test above runs the same kernels under a multi-worker strategy
def test_native_kernels_under_mirrored_strategy_match_the_default_strategy(tmp_path):
    report_path = tmp_path / "mirrored.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, str(WORKER), "--compare-mirrored", "--report", str(report_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=CLUSTER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the MirroredStrategy comparison ran past {CLUSTER_TIMEOUT} s")
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]
    report = json.loads(report_path.read_text())
    assert report["replicas"] == {"default": 1, "mirrored": 2}
    expected = "native" if report["native_usable"] else "graph"
    # Forward pass in two replica threads, then training: the native kernels ran each time.
    assert report["kernels"] == {"default": [expected, expected], "mirrored": [expected, expected]}
    assert report["forward_difference"] <= 1e-6
    assert report["weights_moved"] > 1e-3  # training changed the weights ...
    assert report["weight_difference"] <= WEIGHT_TOLERANCE  # ... the same way under both


def test_select_strategy_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="strategy must be one of auto, default, mirrored, "
                                         "multi-worker; received 'ring'"):
        training.select_strategy("ring", verbose=False)


def test_select_strategy_default_prints_which_ran(monkeypatch, capsys):
    import tensorflow as tf

    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    strategy = training.select_strategy("default")  # names a cluster, but "default" wins
    assert strategy is tf.distribute.get_strategy()
    assert "[zoo] strategy 'default': default strategy (CPU); 1 replica(s) in sync" in (
        capsys.readouterr().out)


def test_tf_config_must_be_a_json_object(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "[1, 2]")
    with pytest.raises(ValueError, match=r"TF_CONFIG must be a JSON object, received \[1, 2\]"):
        training.select_strategy(verbose=False)


class _Resolved:
    """A stand-in strategy carrying only a cluster resolver."""

    def __init__(self, cluster, task_type, task_id):
        import tensorflow as tf

        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)


@pytest.mark.parametrize("cluster, task_type, task_id, chief", [
    ({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "worker", 0, True),
    ({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "worker", 1, False),
    ({"chief": ["127.0.0.1:0"], "worker": ["127.0.0.1:1"]}, "worker", 0, False),
    ({"chief": ["127.0.0.1:0"], "worker": ["127.0.0.1:1"]}, "chief", 0, True),
    ({"worker": ["127.0.0.1:1"], "evaluator": ["127.0.0.1:3"]}, "evaluator", 0, False),
])
def test_is_chief_follows_tensorflows_convention(cluster, task_type, task_id, chief):
    assert training.is_chief(_Resolved(cluster, task_type, task_id)) is chief


def test_a_process_outside_any_cluster_is_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert training.is_chief() is True
    assert training.is_chief(training.select_strategy("default", verbose=False)) is True


@pytest.mark.parametrize("recipe", ["sentiment", "music", "translation"])
def test_recipes_take_a_strategy(recipe, capsys):
    from recipe_helpers import load_recipe

    module = load_recipe(recipe)
    assert module.parse_args([]).strategy == "auto"
    assert module.parse_args(["--strategy", "multi-worker"]).strategy == "multi-worker"
    with pytest.raises(SystemExit) as stopped:
        module.parse_args(["--strategy", "ring"])
    assert stopped.value.code == 2
    assert ("--strategy must be one of 'auto', 'default', 'mirrored', 'multi-worker', "
            "received 'ring'") in capsys.readouterr().err
