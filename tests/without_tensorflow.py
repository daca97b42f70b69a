"""Importing this module makes TensorFlow look uninstalled for the rest of the process.

For tests that check what works on a machine with PyTorch (or JAX) and the
`keras` wheel but no TensorFlow. A `sys.meta_path` finder answers every
`tensorflow*` (and `tf_keras`, `tensorboard`) import with `ModuleNotFoundError`.
`importlib.util.find_spec` still gets a spec (without an origin) rather than
an exception: PyTorch's compiler probes optional libraries that way while
Keras imports it. Import this before anything imports TensorFlow.
"""

import importlib.abc
import importlib.machinery
import sys

HIDDEN = ("tensorflow", "tf_keras", "tensorboard")


class _UninstalledLoader(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden by the test)", name=spec.name)

    def exec_module(self, module):  # pragma: no cover - create_module always raises
        raise ModuleNotFoundError(module.__name__)


class _HideTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return importlib.machinery.ModuleSpec(name, _UninstalledLoader())
        return None


already = sorted(name for name in sys.modules if name.split(".")[0] in HIDDEN)
if already:
    raise RuntimeError(f"without_tensorflow imported too late: {already[:3]} already loaded")
sys.meta_path.insert(0, _HideTensorFlow())


def tensorflow_modules_loaded():
    """The TensorFlow modules imported so far (should stay empty)."""
    return sorted(name for name in sys.modules if name.split(".")[0] in HIDDEN)
