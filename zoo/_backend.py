"""Quiet, predictable backend set-up, applied before Keras is first imported."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up banner (oneDNN notices, CPU feature lists) is noise
# for library users; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (CUDA probing, oneDNN notices) hidden.

    TensorFlow writes them to file descriptor 2 before its log level is read, so
    the level setting above cannot hide them. Used by the command line and the
    demo, where they are noise; Python errors still propagate normally.
    """
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs here, once
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
