"""A run directory remembers the model it trains: resuming or reusing it with another model is a clear error.

Found by a resumed translation run whose training data had changed between the
two commands: the rebuilt model had another vocabulary of the same size, so the
checkpoint loaded without complaint into a model it did not belong to.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import training


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, (x[:, :, 0].sum(1) > 0).astype("float32"))).batch(16)


def _model(units=4, words=("a", "b")):
    from zoo import layers

    inputs = keras.Input((4, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(layers.GRU(units)(inputs))
    model = keras.Model(inputs, outputs)
    model.vocabulary = list(words)  # stands for a vocabulary held by a layer
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def test_fingerprint_ignores_layer_names_but_not_sizes_or_vocabularies():
    assert training.model_fingerprint(_model()) == training.model_fingerprint(_model())  # other auto names
    assert training.model_fingerprint(_model(units=5)) != training.model_fingerprint(_model())
    lookup = keras.layers.StringLookup(vocabulary=["x", "y"])
    other = keras.layers.StringLookup(vocabulary=["y", "x"])
    first = keras.Sequential([keras.Input((1,), dtype="string"), lookup])
    second = keras.Sequential([keras.Input((1,), dtype="string"), other])
    assert training.model_fingerprint(first) != training.model_fingerprint(second)


def test_reusing_or_resuming_a_run_of_another_model_is_refused(tmp_path):
    training.fit(_model(), _data(), _data(), epochs=1, run_dir=tmp_path, verbose=0, tensorboard=False)
    assert json.loads((tmp_path / training.MODEL_RECORD).read_text())["fingerprint"]
    # the same model again: the finished run is reused
    assert training.fit(_model(), _data(), _data(), epochs=1, run_dir=tmp_path, verbose=0,
                        tensorboard=False)["reused"]
    with pytest.raises(training.RunDirectoryMismatchError, match="holds the training of another model"):
        training.fit(_model(units=6), _data(), _data(), epochs=1, run_dir=tmp_path, verbose=0, tensorboard=False)
    # an interrupted run (a resume checkpoint) of another model is refused the same way
    (tmp_path / "run.json").unlink()
    (tmp_path / "resume").mkdir(exist_ok=True)
    with pytest.raises(training.RunDirectoryMismatchError, match="Delete .* or pass another --run-dir"):
        training.fit(_model(units=6), _data(), _data(), epochs=1, run_dir=tmp_path, verbose=0, tensorboard=False)


def test_a_run_from_before_the_record_still_resumes(tmp_path):
    (tmp_path / "resume").mkdir()
    run = training.fit(_model(), _data(), _data(), epochs=1, run_dir=tmp_path, verbose=0, tensorboard=False)
    assert run["epochs_run"] == 1 and (tmp_path / training.MODEL_RECORD).exists()
