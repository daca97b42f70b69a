"""Serialization, export and bad-input handling of zoo.layers."""

import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from zoo import layers
from layer_cases import CELLS

LAYER_CLASSES = [layers.SimpleRNN, layers.LSTM, layers.GRU]
CELL_CLASSES = [layers.SimpleRNNCell, layers.LSTMCell, layers.GRUCell]


@pytest.mark.parametrize("cls", LAYER_CLASSES)
def test_config_round_trip(cls):
    layer = cls(7, dropout=0.25, recurrent_dropout=0.1, return_sequences=True,
                go_backwards=True, kernel_regularizer="l2", seed=5)
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    assert again.units == 7 and again.dropout == 0.25 and again.go_backwards


@pytest.mark.parametrize("cls", CELL_CLASSES)
def test_cell_config_round_trip_and_works_in_keras_rnn(cls, rng):
    cell = cls(5)
    again = cls.from_config(cell.get_config())
    assert again.get_config() == cell.get_config()
    out = keras.layers.RNN(cell)(rng.normal(size=(2, 4, 3)).astype("float32"))
    assert out.shape == (2, 5)


def test_keras_defaults_are_kept():
    for ours, theirs in [(layers.LSTM(3), keras.layers.LSTM(3)),
                         (layers.SimpleRNN(3), keras.layers.SimpleRNN(3))]:
        mine, keras_config = ours.get_config(), theirs.get_config()
        for key, value in keras_config.items():
            if key != "name":
                assert mine[key] == value, key
    assert layers.GRU(3).reset_after is False


def _tiny_model(name):
    cls, extra, _ = CELLS[name]
    inputs = keras.Input((None, 3))
    hidden = keras.layers.Bidirectional(cls(4, return_sequences=True, **extra))(inputs)
    outputs = keras.layers.Dense(2)(cls(5, **extra)(hidden))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name", list(CELLS))
def test_keras_file_round_trip(name, tmp_path, rng):
    model = _tiny_model(name)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert isinstance(loaded.layers[-2], CELLS[name][0])


def test_saved_model_runs_in_fresh_process_without_zoo(tmp_path, rng):
    model = _tiny_model("gru")
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    export_dir = tmp_path / "exported"
    model.export(str(export_dir), verbose=False)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", np.asarray(model(x)))
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(export_dir)!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        got = loaded.serve(tf.constant(x)).numpy()
        assert not any(m == 'zoo' or m.startswith('zoo.') for m in sys.modules), 'zoo was imported'
        np.testing.assert_allclose(got, np.load({str(tmp_path / 'want.npy')!r}), atol=1e-5)
        print('ok')
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize("cls", LAYER_CLASSES + CELL_CLASSES)
@pytest.mark.parametrize("units", [0, -3, 2.5, None, True])
def test_bad_units(cls, units):
    with pytest.raises(ValueError, match=r"units.*positive integer.*Received"):
        cls(units)


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "a lot"])
def test_bad_dropout(cls, argument, value):
    with pytest.raises(ValueError, match=rf"{argument}.*\[0, 1\).*Received"):
        cls(4, **{argument: value})


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5)])
def test_wrong_rank(cls, shape):
    layer = cls(4, name="my_rnn")
    with pytest.raises(ValueError, match=r"my_rnn.*rank 3.*Received shape"):
        layer(np.zeros(shape, "float32"))


@pytest.mark.parametrize("cls", LAYER_CLASSES)
def test_wrong_feature_dim_on_built_layer(cls):
    layer = cls(4, name="built_rnn")
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"built_rnn.*built for 3 input features, received 7"):
        layer(np.zeros((2, 5, 7), "float32"))


@pytest.mark.parametrize("cls", CELL_CLASSES)
def test_cell_wrong_feature_dim(cls):
    cell = cls(4, name="cell")
    states = [np.zeros((2, 4), "float32")] * (2 if cls is layers.LSTMCell else 1)
    cell(np.zeros((2, 3), "float32"), states)
    with pytest.raises(ValueError, match="built for 3 input features, received 5"):
        cell(np.zeros((2, 5), "float32"), states)


@pytest.mark.parametrize("name", list(CELLS))
def test_initial_state_wrong_count(name):
    cls, extra, n_states = CELLS[name]
    layer = cls(4, name="r", **extra)
    x = np.zeros((2, 5, 3), "float32")
    states = [np.zeros((2, 4), "float32")] * (n_states + 1)
    with pytest.raises(ValueError, match=rf"expected {n_states} initial state.*received {n_states + 1}"):
        layer(x, initial_state=states)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("bad_shape", [(2, 5), (3, 4), (2, 4, 1)])
def test_initial_state_wrong_shape(name, bad_shape):
    cls, extra, n_states = CELLS[name]
    layer = cls(4, name="r", **extra)
    x = np.zeros((2, 5, 3), "float32")
    states = [np.zeros(bad_shape, "float32")] + [np.zeros((2, 4), "float32")] * (n_states - 1)
    with pytest.raises(ValueError, match=r"initial state 0 must have shape \(batch, 4\)"):
        layer(x, initial_state=states)


def test_bad_use_cudnn():
    with pytest.raises(ValueError, match="use_cudnn"):
        layers.LSTM(3, use_cudnn="sometimes")


@pytest.mark.parametrize("recurrence_path", ["fused", "loop"])
def test_to_keras_accepts_any_recurrence_path(recurrence_path, rng):
    from zoo import convert

    ours = layers.LSTM(4, recurrence_path=recurrence_path, implementation=1,
                       return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    want = ours(x)
    theirs = convert.to_keras(ours)
    assert isinstance(theirs, keras.layers.LSTM)
    assert theirs.cell.implementation == 1
    np.testing.assert_allclose(theirs(x), want, atol=1e-5)
    assert ours.get_config()["recurrence_path"] == recurrence_path
    assert convert.from_keras(theirs).implementation == 1


# -- Keras's `implementation` and the zoo's `recurrence_path` -------------------


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
@pytest.mark.parametrize("value", [0, 1, 2])
def test_keras_implementation_is_kept_as_keras_keeps_it(cls, value, rng):
    keras_cls = getattr(keras.layers, cls.__name__)
    for recurrent_dropout in (0.0, 0.2):
        ours = cls(3, implementation=value, recurrent_dropout=recurrent_dropout)
        theirs = keras_cls(3, implementation=value, recurrent_dropout=recurrent_dropout)
        assert ours.implementation == ours.cell.implementation == theirs.cell.implementation
        again = cls.from_config(ours.get_config())
        assert again.implementation == ours.implementation
        assert again.get_config() == ours.get_config()
    assert cls(3).implementation == keras_cls(3).cell.implementation == 2
    # Same equations whatever the value: identical outputs.
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    one, two = cls(3, implementation=1), cls(3, implementation=2)
    one.build(x.shape)
    two.build(x.shape)
    two.set_weights(one.get_weights())
    np.testing.assert_array_equal(one(x), two(x))


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.LSTMCell, layers.GRUCell])
@pytest.mark.parametrize("value", [1.5, "2", "fast", True])
def test_bad_keras_implementation(cls, value):
    with pytest.raises(ValueError, match=r"implementation.*recurrence_path.*Received: implementation="):
        cls(3, implementation=value)


def test_simple_rnn_has_no_integer_implementation():
    # keras.layers.SimpleRNN has none either.
    with pytest.raises(ValueError, match=r"SimpleRNN.*recurrence_path.*Received: implementation=2"):
        layers.SimpleRNN(3, implementation=2)
    assert "implementation" not in layers.SimpleRNN(3).get_config()


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("old_value", ["auto", "fused", "loop"])
def test_previous_path_strings_still_read_with_a_warning(cls, old_value):
    with pytest.warns(DeprecationWarning, match=rf"implementation='{old_value}'.*recurrence_path"):
        layer = cls(3, implementation=old_value)
    assert layer.recurrence_path == old_value
    config = layer.get_config()
    assert config["recurrence_path"] == old_value
    assert config.get("implementation", 2) == 2  # Keras's default (LSTM, GRU)


def test_previous_path_string_conflicting_with_recurrence_path():
    with pytest.raises(ValueError, match=r"contradicts.*recurrence_path='loop'"):
        layers.GRU(3, implementation="fused", recurrence_path="loop")


def test_renamed_introspection_keeps_its_old_names(rng):
    layer = layers.GRU(3, recurrence_path="fused")
    assert layer.last_recurrence_path is None and layer.last_recurrence_kernel is None
    layer(rng.normal(size=(2, 4, 3)).astype("float32"))
    assert layer.last_recurrence_path == "fused"
    assert layer.last_recurrence_kernel in ("native", "graph")
    assert layer.last_implementation == layer.last_recurrence_path
    assert layer.last_kernel == layer.last_recurrence_kernel


CONFIG_BEFORE_RECURRENCE_PATH = (
    pathlib.Path(__file__).parent / "data" / "model_config_before_recurrence_path.json"
)


def test_model_config_of_the_previous_version_loads(rng):
    """A functional model written before `recurrence_path` existed: GRU
    (Bidirectional, implementation="fused"), SimpleRNN ("auto"), LSTM ("loop")."""
    text = CONFIG_BEFORE_RECURRENCE_PATH.read_text()
    assert '"implementation": "fused"' in text  # the file is what the old version wrote
    with pytest.warns(DeprecationWarning, match="recurrence_path"):
        model = keras.models.model_from_json(text)
    bidirectional, simple_rnn, lstm = model.layers[1:]
    assert bidirectional.forward_layer.recurrence_path == "fused"
    assert bidirectional.backward_layer.recurrence_path == "fused"
    assert bidirectional.forward_layer.reset_after is True
    assert simple_rnn.recurrence_path == "auto"
    assert lstm.recurrence_path == "loop"
    assert lstm.implementation == 1  # recurrent_dropout=0.1, as Keras keeps it
    out = model(rng.normal(size=(2, 5, 3)).astype("float32"))
    assert out.shape == (2, 2)
    assert lstm.last_recurrence_path == "loop"
    assert bidirectional.forward_layer.last_recurrence_path == "fused"
    # Saved again, the config uses the new name only.
    again = keras.models.model_from_json(model.to_json())
    assert again.layers[-1].get_config()["recurrence_path"] == "loop"
    assert again.layers[-1].get_config()["implementation"] == 1


def test_shipped_model_saved_with_path_strings_loads():
    """`saved_models/*/model.keras` were written with `implementation="auto"`."""
    import zoo

    with pytest.warns(DeprecationWarning, match="recurrence_path"):
        model = zoo.load("sentiment-bilstm-mr")
    recurrent = [layer for layer in model._flatten_layers() if isinstance(layer, layers.LSTM)]
    assert recurrent and all(layer.recurrence_path == "auto" for layer in recurrent)
    assert all(layer.implementation == 2 for layer in recurrent)


# -- masks -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("recurrence_path", ["fused", "loop"])
def test_mask_with_trailing_unit_axis_is_accepted(name, recurrence_path, rng):
    """Keras accepts a `(batch, timesteps, 1)` mask; it means the same as `(batch, timesteps)`."""
    cls, extra, _ = CELLS[name]
    layer = cls(4, return_sequences=True, recurrence_path=recurrence_path, **extra)
    x = rng.normal(size=(3, 6, 2)).astype("float32")
    mask = np.ones((3, 6), dtype=bool)
    mask[0, 4:] = False
    mask[1, 2] = False
    want = layer(x, mask=mask)
    got = layer(x, mask=mask[:, :, None])
    assert layer.last_recurrence_path == recurrence_path
    np.testing.assert_array_equal(got, want)
    assert not np.allclose(want, layer(x))  # the mask matters


def test_mask_of_another_shape_is_refused():
    layer = layers.LSTM(4, name="masked")
    with pytest.raises(ValueError, match=r"masked.*mask of shape.*Received mask shape \(2, 5, 3\)"):
        layer(np.zeros((2, 5, 3), "float32"), mask=np.ones((2, 5, 3), bool))
