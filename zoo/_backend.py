"""Quiet, predictable backend set-up, applied before Keras is first imported."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up banner (oneDNN notices, CPU feature lists) is noise
# for library users; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
