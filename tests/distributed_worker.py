"""One worker of the multi-worker tests (`tests/test_distributed.py`), run as its own process.

Trains a tiny zoo GRU classifier with `zoo.training.fit` under the strategy
named on the command line (`TF_CONFIG` describes the cluster), exports it
with `zoo.hub.export_model` when this worker is the chief, and writes what
the test checks (role, weights, kernel used, the summary of `fit`) as JSON.

    python tests/distributed_worker.py --run-dir RUN --hub HUB --report OUT.json \
        [--strategy multi-worker] [--epochs 3] [--kill-at EPOCH:BATCH]

`--kill-at 2:1` SIGKILLs this process at the end of batch 1 (0-based) of
epoch 2 (1-based): a worker lost in the middle of an epoch.

    python tests/distributed_worker.py --compare-mirrored --report OUT.json

splits this machine's CPU into two logical devices and runs the tiny model
(a forward pass inside replica contexts, then two epochs of `fit`) under the
default strategy and under `MirroredStrategy` over both devices, reporting the
kernels each used and the largest differences between the two.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo import _backend  # noqa: E402,F401

#: The tiny problem: EXAMPLES sequences of STEPS steps of FEATURES features, GLOBAL_BATCH per step.
EXAMPLES, STEPS, FEATURES, UNITS, GLOBAL_BATCH = 64, 5, 3, 4, 16


def tiny_dataset():
    """The same batches of the same examples in every process (no shuffling)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x = rng.normal(size=(EXAMPLES, STEPS, FEATURES)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    # Each worker takes its share of every global batch (the examples are in memory, not files).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def tiny_model():
    """A zoo GRU(4) + Dense(1) classifier (a few dozen weights), compiled with Adam."""
    import keras

    from zoo import layers

    model = keras.Sequential([
        keras.Input((STEPS, FEATURES)),
        layers.GRU(UNITS, name="recurrent"),
        keras.layers.Dense(1, activation="sigmoid", name="classifier"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0),
                  loss="binary_crossentropy")
    return model


def kill_callback(epoch_number, batch):
    """A callback that SIGKILLs this process at the end of `batch` of epoch `epoch_number`."""
    import keras

    class KillMidEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_end(self, index, logs=None):
            if self.epoch == epoch_number and index == batch:
                print(f"[worker] killing this worker at epoch {epoch_number}, batch {batch}",
                      flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    return KillMidEpoch()


def train(strategy_kind, run_dir, epochs, extra_callbacks=(), hub_dir=None):
    """Train the tiny model in this process; returns (model, summary of `fit`, strategy).

    The summary also says which kernels ran the recurrence while training (`"kernel"`).
    """
    from zoo import training

    training.seed_everything(0)
    strategy = training.select_strategy(strategy_kind)
    with strategy.scope():
        model = tiny_model()
    run = training.fit(model, tiny_dataset(), tiny_dataset(), epochs=epochs, run_dir=run_dir,
                       patience=epochs, verbose=0, tensorboard=True,
                       extra_callbacks=extra_callbacks)
    run["kernel"] = model.get_layer("recurrent").last_recurrence_kernel  # before export retraces
    if hub_dir is not None and training.is_chief(strategy):
        from zoo import hub

        card = {"task": "test", "description": "tiny multi-worker test model",
                "epochs_run": run["epochs_run"]}
        hub.export_model("tiny-gru", model, card, lambda keras_model, path: keras_model.export(
            str(path), verbose=False), root=hub_dir)
    return model, run, strategy


def compare_mirrored(report_path):
    """Default strategy vs `MirroredStrategy` over two logical CPU devices, in this process."""
    import numpy as np
    import tensorflow as tf

    from zoo import training
    from zoo.data.cache import atomic_write_text
    from zoo.layers import native

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    inputs = next(iter(tiny_dataset()))[0]
    results = {}
    for kind in ("default", "mirrored"):
        training.seed_everything(0)
        strategy = training.select_strategy(kind)
        with strategy.scope():
            model = tiny_model()
        model(inputs[:1])  # build
        # The forward pass in replica contexts: each replica runs the layer on its own thread.
        replica_inputs = strategy.experimental_distribute_values_from_function(lambda _: inputs)
        per_replica = strategy.run(model, args=(replica_inputs,))
        outputs = [np.asarray(value) for value in strategy.experimental_local_results(per_replica)]
        forward_kernel = model.get_layer("recurrent").last_recurrence_kernel
        model.fit(tiny_dataset(), epochs=2, verbose=0, shuffle=False)
        results[kind] = {
            "replicas": strategy.num_replicas_in_sync,
            "forward_kernel": forward_kernel,
            "fit_kernel": model.get_layer("recurrent").last_recurrence_kernel,
            "outputs": outputs,
            "weights": model.get_weights(),
        }
    default, mirrored = results["default"], results["mirrored"]
    report = {
        "native_usable": native.usable(),
        "replicas": {kind: results[kind]["replicas"] for kind in results},
        "kernels": {kind: [results[kind]["forward_kernel"], results[kind]["fit_kernel"]]
                    for kind in results},
        "forward_difference": max(float(np.abs(output - default["outputs"][0]).max())
                                  for output in mirrored["outputs"]),
        "weight_difference": max(float(np.abs(a - b).max())
                                 for a, b in zip(default["weights"], mirrored["weights"])),
        "weights_moved": max(float(np.abs(a - b).max()) for a, b in zip(
            default["weights"], _initial_weights())),
    }
    atomic_write_text(Path(report_path), json.dumps(report))


def _initial_weights():
    from zoo import training

    training.seed_everything(0)
    return tiny_model().get_weights()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True)
    parser.add_argument("--compare-mirrored", action="store_true")
    parser.add_argument("--run-dir")
    parser.add_argument("--hub")
    parser.add_argument("--strategy", default="multi-worker")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--kill-at", default=None)
    args = parser.parse_args()
    if args.compare_mirrored:
        compare_mirrored(args.report)
        return
    if not (args.run_dir and args.hub):
        parser.error("--run-dir and --hub are required to train")
    callbacks = []
    if args.kill_at:
        epoch_number, batch = (int(part) for part in args.kill_at.split(":"))
        callbacks.append(kill_callback(epoch_number, batch))
    model, run, strategy = train(args.strategy, args.run_dir, args.epochs, callbacks, args.hub)
    from zoo import training
    from zoo.data.cache import atomic_write_text

    report = {
        "chief": training.is_chief(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "weights": [weight.tolist() for weight in model.get_weights()],
        "run": {key: value for key, value in run.items() if key != "history"},
        "history_epochs": [row["epoch"] for row in run["history"]],
    }
    atomic_write_text(Path(args.report), json.dumps(report))


if __name__ == "__main__":
    main()
