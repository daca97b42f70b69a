"""zoo: a Keras 3 model zoo of recurrent networks.

Importing ``zoo`` is cheap: TensorFlow and Keras load only when a submodule
that needs them (``zoo.layers``, ``zoo.convert``, ...) is first used.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("layers", "reference", "convert", "data", "hub", "training")
_HUB_FUNCTIONS = ("list_models", "info", "load", "load_serving")

__all__ = list(_SUBMODULES) + list(_HUB_FUNCTIONS) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    if name in _HUB_FUNCTIONS:
        return getattr(importlib.import_module("zoo.hub"), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
