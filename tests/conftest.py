import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    skip = pytest.mark.skip(reason="PyTorch is not installed (pip install 'zoo[torch]')")
    for item in items:
        if "torch" in item.keywords and not have_torch:
            item.add_marker(skip)
