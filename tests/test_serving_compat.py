"""Every signature of every hub SavedModel runs under the TF1 session loader, with the same outputs.

One case per model in `zoo.hub.list_models()`, so a new model is covered from
its first day; what is checked is in `serving_helpers.check_session_loader`.
"""

import pytest

from zoo import hub
from zoo.tasks import get_task
from serving_helpers import check_session_loader


@pytest.fixture(scope="module")
def loaded():
    """name -> the model's serving SavedModel (hub.load_serving: checksums verified), loaded once for
    both tests of this file."""
    models = {}
    yield lambda name: models[name] if name in models else models.setdefault(name, hub.load_serving(name))
    models.clear()


#: Shipped models whose session-loader check runs in `make test-slow` only: each takes 4 to 11 s, and
#: a smoke model of the same task runs the same signatures under the session loader in the fast
#: suite (tests/test_<task>.py), so the fast suite still catches an exporter that breaks the loader.
#: A shipped SavedModel changes only when its recipe re-exports it (and then `make test-slow` runs).
SLOW_SESSION_CHECKS = {"speech-bigru-ctc", "captioning-gru-emoji", "translation-gru-de-en", "lm-lstm-ptb",
                       "lm-lstm-shakespeare", "tagging-bilstm-brown", "tagging-bilstm-porttinari",
                       "timeseries-classification-japanesevowels"}


#: Shipped models whose empty-batch check runs in `make test-slow` only (2.5 to 6 s each): a smoke
#: model of the task answers an empty batch in the fast suite (tests/test_<task>.py), or another
#: shipped model of the task does here (lm-lstm-shakespeare, tagging-bilstm-porttinari).
SLOW_EMPTY_BATCH_CHECKS = {"speech-bigru-ctc", "captioning-gru-emoji", "translation-gru-de-en", "lm-lstm-ptb",
                           "tagging-bilstm-brown"}


def _fast_or_slow(names, slow):
    return [pytest.param(name, marks=pytest.mark.slow) if name in slow else name for name in names]


@pytest.mark.parametrize("name", _fast_or_slow(hub.list_models(), SLOW_SESSION_CHECKS))
def test_every_signature_runs_in_a_tf1_session_like_under_saved_model_load(name, loaded):
    check_session_loader(name, serving=loaded(name))


def test_slow_session_checks_name_shipped_models():
    for slow in (SLOW_SESSION_CHECKS, SLOW_EMPTY_BATCH_CHECKS):
        assert slow <= set(hub.list_models()), "a stale name would hide no check: remove it"




def _empty_inputs(function, examples=None):
    """An empty batch for `function`; its scalar settings from `examples` (the task's
    `serving_examples()` for this signature) where given, else a small valid value."""
    import tensorflow as tf

    examples = examples or {}
    inputs = {}
    for key, spec in function.structured_input_signature[1].items():
        shape = spec.shape.as_list()
        if shape and shape[0] is None:  # the batch axis: empty
            shape = [0] + [2 if size is None else size for size in shape[1:]]
            inputs[key] = tf.zeros(shape, spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")
        elif key in examples:  # a scalar setting: the task's example value
            inputs[key] = tf.constant(examples[key], spec.dtype)
        else:  # a scalar setting: a small valid value
            inputs[key] = tf.constant(1, spec.dtype) if spec.dtype.is_integer else tf.constant(0.0, spec.dtype)
    return inputs


@pytest.mark.parametrize("name", _fast_or_slow(hub.list_models(), SLOW_EMPTY_BATCH_CHECKS))
def test_every_signature_answers_an_empty_batch_with_an_empty_result(name, loaded):
    task = hub.info(name)["task"]
    serving = loaded(name)
    examples = getattr(get_task(task), "serving_examples", dict)()
    for signature, function in serving.signatures.items():
        batched = [spec for spec in function.structured_input_signature[1].values()
                   if spec.shape.rank and spec.shape[0] is None]
        if not batched:
            continue  # e.g. a settings signature
        outputs = function(**_empty_inputs(function, examples.get(signature)))
        for key, value in outputs.items():
            assert value.shape[0] == 0, (signature, key, value.shape)
