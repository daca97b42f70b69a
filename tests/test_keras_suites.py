"""Keras's own RNN test files, run with the zoo layers swapped in.

The test classes of `keras/src/layers/rnn/{simple_rnn,lstm,gru}_test.py` (from
the installed keras package) are subclassed here, so pytest collects and runs
every one of their tests; a fixture replaces the `layers` name those modules
read (`layers.LSTM(...)`) with a namespace where `SimpleRNN`, `LSTM` and `GRU`
are ours and everything else is Keras's.

* SimpleRNN and LSTM: the files pass as they are.
* GRU: Keras's fixed expected numbers encode Keras's update convention
  (`h_t = z*h_{t-1} + (1-z)*h~`) and its default `reset_after=True`. The
  whole file passes with our GRU configured the Keras way (`KerasWayGRU`:
  `reset_after=True` by default, weights initialized as Keras initializes
  them and converted by `zoo.convert.from_keras`). It also runs with our GRU
  as it is, where exactly the tests listed in `DIFFERS_IN_OUR_CONVENTION`
  must fail, for the reason given there.
"""

import types

import keras
import numpy as np
import pytest

from zoo import convert, layers

simple_rnn_test = pytest.importorskip("keras.src.layers.rnn.simple_rnn_test")
lstm_test = pytest.importorskip("keras.src.layers.rnn.lstm_test")
gru_test = pytest.importorskip("keras.src.layers.rnn.gru_test")


@keras.saving.register_keras_serializable(package="zoo_tests")
class KerasWayGRU(layers.GRU):
    """Our GRU set up to compute what `keras.layers.GRU` computes with the same arguments.

    `reset_after` defaults to True, as in Keras; at build time the weights
    come from a Keras GRU with the same configuration (so the initializers
    draw what Keras draws), converted to our update convention by
    `zoo.convert.from_keras`.
    """

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, reset_after=reset_after, **kwargs)

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        config = {k: v for k, v in self.get_config().items() if k != "recurrence_path"}
        theirs = keras.layers.GRU.from_config({**config, "stateful": False})
        theirs.build(tuple(sequences_shape))
        self.set_weights(convert.from_keras(theirs).get_weights())


def _keras_layers_with(**ours):
    """Keras's `layers` namespace with the given classes replaced."""
    names = {name: getattr(keras.src.layers, name) for name in dir(keras.src.layers)
             if not name.startswith("__")}
    return types.SimpleNamespace(**{**names, **ours})


@pytest.fixture(autouse=True)
def _zoo_layers_in_keras_suite(request, monkeypatch):
    suite = request.cls
    if suite is None or not hasattr(suite, "KERAS_TEST_MODULE"):
        return
    monkeypatch.setattr(suite.KERAS_TEST_MODULE, "layers", _keras_layers_with(**suite.SWAP))


def test_swap_reaches_keras_test_modules(monkeypatch):
    """The mechanism the suites rely on: a Keras test module builds our layer."""
    monkeypatch.setattr(lstm_test, "layers", _keras_layers_with(LSTM=layers.LSTM))
    assert isinstance(lstm_test.layers.LSTM(2), layers.LSTM)
    assert lstm_test.layers.Dense is keras.layers.Dense


class TestKerasSimpleRNNSuite(simple_rnn_test.SimpleRNNTest):
    KERAS_TEST_MODULE = simple_rnn_test
    SWAP = {"SimpleRNN": layers.SimpleRNN}


class TestKerasLSTMSuite(lstm_test.LSTMTest):
    KERAS_TEST_MODULE = lstm_test
    SWAP = {"LSTM": layers.LSTM}


class TestKerasGRUSuiteKerasWay(gru_test.GRUTest):
    KERAS_TEST_MODULE = gru_test
    SWAP = {"GRU": KerasWayGRU}


_KERAS_NUMBERS = (
    "fixed numbers computed with Keras's update convention h = z*h_prev + (1-z)*h~ "
    "(ours: h = (1-z)*h_prev + z*h~; zoo.convert flips one into the other)"
)
_KERAS_NUMBERS_AND_DEFAULT = _KERAS_NUMBERS + " and Keras's default reset_after=True (ours: False)"

# Tests of Keras's gru_test.py that our GRU, as it is, fails, and why.
DIFFERS_IN_OUR_CONVENTION = {
    "test_correctness0": _KERAS_NUMBERS_AND_DEFAULT,
    "test_correctness1": _KERAS_NUMBERS_AND_DEFAULT,
    "test_statefulness": _KERAS_NUMBERS_AND_DEFAULT,
    "test_pass_initial_state": _KERAS_NUMBERS_AND_DEFAULT,
    "test_pass_return_state": _KERAS_NUMBERS_AND_DEFAULT,
    "test_masking": _KERAS_NUMBERS_AND_DEFAULT,
    "test_legacy_implementation_argument": _KERAS_NUMBERS_AND_DEFAULT
    + "; the `implementation=0` it adds is accepted",
}


def _expected_to_differ(name, reason):
    keras_test = getattr(gru_test.GRUTest, name)

    def test(self):
        keras_test(self)

    test.__name__ = name
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)(test)


class TestKerasGRUSuiteOurConvention(gru_test.GRUTest):
    KERAS_TEST_MODULE = gru_test
    SWAP = {"GRU": layers.GRU}

    for _name, _reason in DIFFERS_IN_OUR_CONVENTION.items():
        locals()[_name] = _expected_to_differ(_name, _reason)
    del _name, _reason


def test_keras_way_gru_is_keras_gru(rng):
    """The adapter itself, on seeded random weights: Keras's GRU's outputs."""
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    for reset_after in (True, False):
        arguments = dict(
            reset_after=reset_after,
            return_sequences=True,
            kernel_initializer=keras.initializers.RandomNormal(seed=1),
            recurrent_initializer=keras.initializers.RandomNormal(seed=2),
            bias_initializer=keras.initializers.RandomNormal(seed=3),
        )
        want = keras.layers.GRU(4, **arguments)(x)
        ours = KerasWayGRU(4, **arguments)
        np.testing.assert_allclose(ours(x), want, atol=1e-5)
        assert not np.allclose(layers.GRU(4, **arguments)(x), want, atol=1e-3)
