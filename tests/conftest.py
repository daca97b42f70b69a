import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


#: The test files that take longest, longest first (measured on 2 CPU cores). `make test` runs
#: `--dist loadfile`: each file runs whole on one of two workers, files handed out in collection
#: order; starting the long files first lets the two workers end close together. Other files
#: follow in their usual order. A stale list only costs balance, never a test.
LONGEST_FILES = (
    "test_translation.py", "test_captioning.py", "test_speech.py", "test_sentiment.py", "test_training.py",
    "test_serving_compat.py", "test_language_model.py", "test_lab.py", "test_tagging.py",
    "test_native.py", "test_music.py", "test_generation.py", "test_distributed.py",
    "test_timeseries_classification.py", "test_forecasting.py", "test_crf.py", "test_backends.py",
    "test_serve.py", "test_export_formats.py", "test_sentiment_domains.py", "test_translation_data.py",
    "test_reliability.py",
)


def pytest_configure(config):
    # xdist sorts the files by their number of tests unless told otherwise; keep the order above.
    if getattr(config.option, "loadscopereorder", None) and \
            "--loadscope-reorder" not in config.invocation_params.args:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))  # stable: files stay whole
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    skip = pytest.mark.skip(reason="PyTorch is not installed (pip install 'zoo[torch]')")
    for item in items:
        if "torch" in item.keywords and not have_torch:
            item.add_marker(skip)


_BROWN = {}


@pytest.fixture(scope="module")
def brown_read_once():
    """`zoo.data.tagging.read_brown()` (the whole Brown corpus, parsed from its tarball: seconds) reads
    the tarball once per test process; every call returns a fresh copy of what it read. The tagging
    recipe, `zoo verify` and the language model's out-of-domain text each read Brown anew."""
    from zoo.data import tagging

    original = tagging.read_brown

    def read_brown(tarball=None):
        if tarball is not None:
            return original(tarball)
        if "corpus" not in _BROWN:
            _BROWN["corpus"] = original()
        corpus = _BROWN["corpus"]
        return tagging.TaggedSentences([list(w) for w in corpus.words],
                                       {k: [list(t) for t in v] for k, v in corpus.tags.items()},
                                       list(corpus.documents), list(corpus.groups), corpus.name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tagging, "read_brown", read_brown)
        yield
